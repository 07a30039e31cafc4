"""@tool marking, discovery and the manifest built from signatures."""

import functools
import json
from typing import Dict, List, Optional

from snakepit_bridge import _host
from snakepit_bridge.base_adapter import BaseAdapter, get_tool_metadata, iter_tools, tool
from snakepit_bridge.base_adapter_threaded import ThreadSafeAdapter, thread_safe_method


def plain_wrapper(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        return fn(*args, **kwargs)
    return wrapper


class Marked(BaseAdapter):
    @tool
    def bare(self):
        """First line of the docstring.

        Second paragraph is not part of the description."""
        return 1

    @tool(description="with args", supports_streaming=True)
    def streaming(self):
        return 2

    @tool("positional description")
    def positional(self):
        return 3

    @thread_safe_method
    @tool(description="tool under thread_safe_method")
    def tsm_outer(self):
        return 4

    @tool(description="tool over thread_safe_method")
    @thread_safe_method
    def tsm_inner(self):
        return 5

    @plain_wrapper
    @tool(description="wrapped by functools.wraps")
    def wrapped(self):
        return 6

    @thread_safe_method
    def not_a_tool(self):
        return 7

    def helper(self):
        return 8

    @property
    def prop(self):
        raise AssertionError("discovery must not evaluate properties")


def test_only_marked_methods_are_tools():
    names = [name for name, _fn, _meta in iter_tools(Marked())]
    assert names == ["bare", "positional", "streaming", "tsm_inner", "tsm_outer", "wrapped"]


def test_metadata_and_descriptions():
    tools = Marked.list_tools()
    assert tools["bare"]["description"] == "First line of the docstring."
    assert tools["bare"]["supports_streaming"] is False
    assert tools["streaming"] == {"name": "streaming", "description": "with args",
                                  "supports_streaming": True}
    assert tools["positional"]["description"] == "positional description"
    assert tools["tsm_outer"]["description"] == "tool under thread_safe_method"
    assert tools["tsm_inner"]["description"] == "tool over thread_safe_method"
    assert get_tool_metadata(Marked.wrapped)["description"] == "wrapped by functools.wraps"
    assert get_tool_metadata(Marked.helper) is None
    assert get_tool_metadata(Marked.not_a_tool) is None


def test_wrapped_tools_still_run_through_host():
    host = _host.Host(Marked(), "x.Marked")
    assert host.invoke("tsm_outer", "{}") == (0, "4")
    assert host.invoke("tsm_inner", "{}") == (0, "5")
    assert host.invoke("wrapped", "{}") == (0, "6")
    status, msg = host.invoke("helper", "{}")
    assert status == _host.STATUS_NO_TOOL and msg.startswith("unknown tool 'helper'")


class Typed(ThreadSafeAdapter):
    __thread_safe__ = True

    @thread_safe_method
    @tool(description="typed")
    def typed(self, i: int, f: float, s: str, b: bool, l: list, d: dict, anything,
              opt: Optional[int] = None, gl: List[int] = (), gd: Dict[str, int] = None,
              dflt: str = "x", flag: bool = False, *, kw_only: float = 1.5, **extra):
        return None


class Untyped:
    @tool
    def go(self, x, y=3):
        return x


def _manifest(adapter, spec="mod.Cls"):
    return json.loads(_host.Host(adapter, spec).manifest())


def test_manifest_shape_and_parameter_types():
    m = _manifest(Typed(), "pkg.mod.Typed")
    assert m["adapter"] == "pkg.mod.Typed"
    assert m["thread_safe"] is True
    [t] = m["tools"]
    assert t["name"] == "typed" and t["description"] == "typed"
    assert t["supports_streaming"] is False
    params = {p["name"]: p for p in t["parameters"]}
    assert list(params) == ["i", "f", "s", "b", "l", "d", "anything", "opt", "gl", "gd",
                            "dflt", "flag", "kw_only"]  # no self, no **extra
    types = {n: p["type"] for n, p in params.items()}
    assert types == {"i": "int", "f": "float", "s": "str", "b": "bool", "l": "list",
                     "d": "dict", "anything": "any", "opt": "int", "gl": "list",
                     "gd": "dict", "dflt": "str", "flag": "bool", "kw_only": "float"}
    for name in ["i", "f", "s", "b", "l", "d", "anything"]:
        assert params[name] == {"name": name, "type": types[name], "required": True}
    assert params["opt"] == {"name": "opt", "type": "int", "required": False, "default": None}
    assert params["gl"]["default"] == []          # tuple default -> JSON list
    assert params["dflt"]["default"] == "x"
    assert params["flag"]["default"] is False
    assert params["kw_only"]["default"] == 1.5


def test_thread_safe_flag_values():
    class NotDeclared(ThreadSafeAdapter):
        @tool
        def t(self):
            return 1

    assert _manifest(NotDeclared())["thread_safe"] is False
    assert _manifest(Marked())["thread_safe"] is False           # BaseAdapter default
    m = _manifest(Untyped())                                       # not a BaseAdapter
    assert m["thread_safe"] is None
    assert m["tools"][0]["parameters"] == [
        {"name": "x", "type": "any", "required": True},
        {"name": "y", "type": "any", "required": False, "default": 3}]


def test_string_annotations_are_resolved():
    ns = {}
    exec("from __future__ import annotations\n"
         "from snakepit_bridge.base_adapter import tool\n"
         "class A:\n"
         "    @tool\n"
         "    def f(self, n: int, xs: list[int] | None = None, q: Undefined = 1):\n"
         "        return n\n", ns)
    params = _manifest(ns["A"]())["tools"][0]["parameters"]
    assert [(p["name"], p["type"]) for p in params] == [("n", "int"), ("xs", "list"), ("q", "any")]
    host = _host.Host(ns["A"](), "a.A")
    assert host.invoke("f", '{"n": "1"}') == (1, "argument 'n' of tool 'f' must be int, got str")

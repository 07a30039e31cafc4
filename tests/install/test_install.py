"""Snakepit as a newcomer installs it: `make install` into a prefix of one's own
(and under DESTDIR), examples built against it through pkg-config and CMake and
run with no environment variables, the installed library finding its installed
worker and SDK (and the build-tree library its build-tree ones), the Python SDK
installed with pip, and the Debian package built and installed with dpkg.

Environment (set by ctest): SP_SOURCE_DIR, SP_BUILD_DIR, SP_PROJECT_VERSION.
"""

import json
import os
import re
import shutil
import subprocess
import sys

import pytest

SRC = os.environ["SP_SOURCE_DIR"]
BUILD = os.environ["SP_BUILD_DIR"]
VERSION = os.environ["SP_PROJECT_VERSION"]
SOVERSION = os.environ["SP_SOVERSION"]
DEBIAN_PYTHON = "/usr/bin/python3"

# The environment a user's shell has: no SNAKEPIT_*, no LD_LIBRARY_PATH, no PYTHONPATH.
CLEAN_ENV = {"PATH": "/usr/bin:/bin", "HOME": os.environ.get("HOME", "/root"), "LANG": "C.UTF-8"}

PROBE_ADAPTER = '''
import os
import snakepit_bridge
from snakepit_bridge import BaseAdapter, tool

class Probe(BaseAdapter):
    @tool(description="Where the worker program and the SDK it imported are")
    def where(self):
        return {"worker": os.path.realpath("/proc/self/exe"),
                "sdk": os.path.realpath(snakepit_bridge.__file__)}
'''


def run(cmd, env=None, cwd=None, timeout=300):
    p = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert p.returncode == 0, f"{cmd} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}"
    return p.stdout


def probe(snakepit, tmp_path, extra_env=None):
    """Runs the probe adapter with the `snakepit` program given; returns where its
    worker and SDK came from."""
    (tmp_path / "probe_adapter.py").write_text(PROBE_ADAPTER)
    (tmp_path / "probe.yaml").write_text(
        "pools:\n  - name: probe\n    pool_size: 1\n    adapter: probe_adapter.Probe\n")
    env = dict(CLEAN_ENV, **(extra_env or {}))
    out = run([snakepit, "-q", "exec", "-c", str(tmp_path / "probe.yaml"), "probe", "where"],
              env=env, timeout=120)
    return json.loads(out)


@pytest.fixture(scope="module")
def prefix(tmp_path_factory):
    """`make install PREFIX=/opt/snakepit DESTDIR=...`: the tree lands under DESTDIR
    and, being relocatable, works from there."""
    destdir = tmp_path_factory.mktemp("destdir")
    run(["make", "-s", "-C", SRC, "install", f"BUILD={BUILD}", "PREFIX=/opt/snakepit",
         f"DESTDIR={destdir}"], timeout=600)
    root = destdir / "opt" / "snakepit"
    assert root.is_dir(), "make install ignored DESTDIR or PREFIX"
    return root


def test_install_lays_out_a_c_library(prefix):
    lib = prefix / "lib"
    assert (prefix / "include" / "snakepit.h").is_file()
    assert os.readlink(lib / "libsnakepit.so") == f"libsnakepit.so.{SOVERSION}"
    assert os.readlink(lib / f"libsnakepit.so.{SOVERSION}") == f"libsnakepit.so.{VERSION}"
    soname = run(["readelf", "-d", str(lib / f"libsnakepit.so.{VERSION}")])
    assert f"[libsnakepit.so.{SOVERSION}]" in soname
    assert os.access(prefix / "bin" / "snakepit", os.X_OK)
    assert os.access(prefix / "libexec" / "snakepit" / "snakepit-worker", os.X_OK)
    assert (prefix / "share" / "snakepit" / "python" / "snakepit_bridge" / "compatibility.json").is_file()
    assert (lib / "pkgconfig" / "snakepit.pc").is_file()
    assert (lib / "cmake" / "Snakepit" / "SnakepitConfig.cmake").is_file()
    assert (lib / "cmake" / "Snakepit" / "SnakepitConfigVersion.cmake").is_file()
    docs = prefix / "share" / "doc" / "snakepit"
    for f in ("README.md", "architecture.md", "examples/quickstart.c", "examples/callbacks.c",
              "examples/pools.yaml",
              "examples/CMakeLists.txt", "examples/Makefile"):
        assert (docs / f).is_file(), f
    # The worker carries no path of the source tree: the library tells it where the SDK is.
    worker = (prefix / "libexec" / "snakepit" / "snakepit-worker").read_bytes()
    assert (SRC + "/python").encode() not in worker


def test_versions_agree(prefix):
    pc = run(["pkg-config", "--modversion", "snakepit"],
             env=dict(CLEAN_ENV, PKG_CONFIG_PATH=str(prefix / "lib" / "pkgconfig")))
    assert pc.strip() == VERSION
    assert run([str(prefix / "bin" / "snakepit"), "version"], env=CLEAN_ENV).strip() == f"snakepit {VERSION}"
    pyproject = open(os.path.join(SRC, "python", "pyproject.toml")).read()
    assert re.search(r'^version = "([^"]+)"', pyproject, re.M).group(1) == VERSION
    init = open(os.path.join(SRC, "python", "snakepit_bridge", "__init__.py")).read()
    assert f'__version__ = "{VERSION}"' in init


def test_installed_library_uses_installed_worker_and_sdk(prefix, tmp_path):
    where = probe(str(prefix / "bin" / "snakepit"), tmp_path)
    assert where["worker"] == str(prefix / "libexec" / "snakepit" / "snakepit-worker")
    assert where["sdk"].startswith(str(prefix / "share" / "snakepit" / "python") + "/")


def test_build_tree_library_uses_build_tree_worker_and_sdk(tmp_path):
    where = probe(os.path.join(BUILD, "snakepit"), tmp_path)
    assert where["worker"] == os.path.realpath(os.path.join(BUILD, "snakepit-worker"))
    assert where["sdk"].startswith(os.path.realpath(os.path.join(SRC, "python")) + "/")


def test_environment_still_overrides(prefix, tmp_path):
    where = probe(str(prefix / "bin" / "snakepit"), tmp_path,
                  {"SNAKEPIT_WORKER": os.path.join(BUILD, "snakepit-worker")})
    assert where["worker"] == os.path.realpath(os.path.join(BUILD, "snakepit-worker"))


def copy_examples(prefix, dest):
    shutil.copytree(prefix / "share" / "doc" / "snakepit" / "examples", dest)
    return dest


def run_examples(folder, cwd):
    """Runs the built examples of folder with no environment and checks what they print."""
    out = run([str(folder / "quickstart")], env=CLEAN_ENV, cwd=cwd, timeout=120)
    assert "quickstart: OK" in out
    out = run([str(folder / "callbacks")], env=CLEAN_ENV, cwd=cwd, timeout=120)
    assert "callbacks: OK" in out
    # The host function's results through one and two tools, then its own error.
    assert '"result":{"seat":1,"left":1,"for":{"name":"Ada"}}' in out
    assert '"result":{"function":"reserve","result":{"seat":2,"left":0,"for":{"name":"Grace"}}}' in out
    assert "SP_EINVAL: host function 'reserve' failed: no seats left: all 2 are reserved" in out
    # The session keeps its history on one worker until it is ended.
    turns = [json.loads(line.split("-> ", 1)[1]) for line in out.splitlines()
             if line.startswith("  -> {\"session\"")]
    assert [t["turn"] for t in turns] == [1, 2, 1], out
    assert turns[1]["history"] == ["Which seats are left?", "Then two for tomorrow."]
    assert turns[0]["worker"] == turns[1]["worker"] and turns[2]["history"] == ["Hello again."]


def test_examples_build_with_pkg_config_and_run_without_environment(prefix, tmp_path):
    ex = copy_examples(prefix, tmp_path / "examples")
    run(["make", "-s"], cwd=ex,
        env=dict(CLEAN_ENV, PKG_CONFIG_PATH=str(prefix / "lib" / "pkgconfig")))
    run_examples(ex, tmp_path)


def test_examples_build_with_cmake_and_run_without_environment(prefix, tmp_path):
    ex = copy_examples(prefix, tmp_path / "examples")
    run(["cmake", "-S", str(ex), "-B", str(tmp_path / "b"), f"-DCMAKE_PREFIX_PATH={prefix}"],
        env=CLEAN_ENV)
    run(["cmake", "--build", str(tmp_path / "b")], env=CLEAN_ENV)
    run_examples(tmp_path / "b", tmp_path)


def test_cmake_package_refuses_another_minor_version(prefix, tmp_path):
    (tmp_path / "CMakeLists.txt").write_text(
        "cmake_minimum_required(VERSION 3.18)\nproject(v LANGUAGES C)\n"
        "find_package(Snakepit 9.0 REQUIRED)\n")
    p = subprocess.run(["cmake", "-S", str(tmp_path), "-B", str(tmp_path / "b"),
                        f"-DCMAKE_PREFIX_PATH={prefix}"], env=CLEAN_ENV, capture_output=True, text=True)
    assert p.returncode != 0 and "Snakepit" in p.stderr


def test_sdk_installs_with_pip_and_runs_the_seed_examples(tmp_path):
    """An adapter author's path: Debian's pip and setuptools, offline, into a venv."""
    venv = tmp_path / "venv"
    run([DEBIAN_PYTHON, "-m", "venv", "--system-site-packages", str(venv)], env=CLEAN_ENV)
    py = str(venv / "bin" / "python")
    work = tmp_path / "src"
    shutil.copytree(os.path.join(SRC, "python"), work, ignore=shutil.ignore_patterns("__pycache__"))
    run([py, "-m", "pip", "install", "--no-build-isolation", "--no-index", str(work)],
        env=CLEAN_ENV, cwd=tmp_path)
    where = run([py, "-c", "import snakepit_bridge; print(snakepit_bridge.__file__)"],
                env=CLEAN_ENV, cwd=tmp_path)
    assert where.startswith(str(venv) + "/")
    # The seed guide's "Testing for Thread Safety" examples, run from a folder of
    # their own (no conftest adding the source tree to the path).
    tests = tmp_path / "seed"
    tests.mkdir()
    shutil.copy(os.path.join(SRC, "tests", "python", "test_seed_examples.py"), tests)
    out = run([py, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tests)],
              env=dict(CLEAN_ENV, PYTHONDONTWRITEBYTECODE="1"), cwd=tests, timeout=180)
    assert re.search(r"\d+ passed", out) and "failed" not in out


@pytest.mark.skipif(shutil.which("dpkg-shlibdeps") is None, reason="dpkg-dev not installed")
def test_debian_package(tmp_path):
    """`make deb`, then dpkg installs it (into a root of its own, so the test leaves
    the system alone) and the installed programs run from there."""
    deb_build = tmp_path / "deb-build"
    out = run(["make", "-s", "-C", SRC, "deb", f"DEB_BUILD={deb_build}"], timeout=900)
    deb = out.strip().splitlines()[-1]
    assert deb.startswith(str(deb_build) + "/") and deb.endswith(f"snakepit_{VERSION}_amd64.deb")
    assert os.path.isfile(deb)
    info = run(["dpkg-deb", "-f", deb, "Package", "Version", "Depends"])
    assert f"Version: {VERSION}" in info
    depends = re.search(r"Depends: (.*)", info).group(1)
    for pkg in ("libuv1", "libyaml-0-2", "libjansson4", "libpython3.11", "libmicrohttpd12",
                "libcurl4", "python3"):
        assert re.search(rf"(^|, ){re.escape(pkg)}\b", depends), (pkg, depends)
    # Every dependency is satisfiable here, so `apt install ./snakepit_*.deb` would work.
    for dep in depends.split(", "):
        name = dep.split(" ")[0]
        run(["dpkg-query", "-W", name])
    root = tmp_path / "root"
    for d in ("var/lib/dpkg/info", "var/lib/dpkg/updates", "var/lib/dpkg/triggers"):
        (root / d).mkdir(parents=True)
    (root / "var/lib/dpkg/status").write_text("")
    run(["dpkg", f"--root={root}", "--force-depends", "--force-script-chrootless",
         "--force-not-root", "-i", deb])
    listed = run(["dpkg", f"--root={root}", "-L", "snakepit"])
    multiarch = run(["dpkg-architecture", "-qDEB_HOST_MULTIARCH"]).strip()
    for f in ("/usr/bin/snakepit", "/usr/include/snakepit.h",
              f"/usr/lib/{multiarch}/libsnakepit.so.{SOVERSION}", f"/usr/lib/{multiarch}/pkgconfig/snakepit.pc",
              f"/usr/lib/{multiarch}/cmake/Snakepit/SnakepitConfig.cmake",
              "/usr/libexec/snakepit/snakepit-worker",
              "/usr/lib/python3/dist-packages/snakepit_bridge/__init__.py",
              "/usr/share/doc/snakepit/examples/quickstart.c",
              "/usr/share/doc/snakepit/examples/callbacks.c"):
        assert f in listed.splitlines(), f
    usr = root / "usr"
    assert "prefix=/usr" in (usr / "lib" / multiarch / "pkgconfig" / "snakepit.pc").read_text()
    where = probe(str(usr / "bin" / "snakepit"), tmp_path)
    assert where["worker"] == str(usr / "libexec" / "snakepit" / "snakepit-worker")
    assert where["sdk"].startswith(str(usr / "lib" / "python3" / "dist-packages") + "/")

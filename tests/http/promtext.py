"""A strict parser of the Prometheus text exposition format (version 0.0.4),
used to check that GET /metrics is well formed.

It rejects what Prometheus' own parser rejects (bad names, label syntax or
escapes, values that are not floats, TYPE after samples, a family split in two,
duplicate series) and also checks the rules a scraper relies on without always
enforcing them: histogram buckets sorted and cumulative, a +Inf bucket equal to
_count, _sum and _count present, counters named *_total and never negative.
"""

import math
import re

NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
LABEL = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
TYPES = {"counter", "gauge", "histogram", "summary", "untyped"}


class ParseError(Exception):
    pass


def _value(text, line):
    if text in ("+Inf", "Inf"):
        return math.inf
    if text == "-Inf":
        return -math.inf
    if text == "NaN":
        return math.nan
    if not re.fullmatch(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?", text):
        raise ParseError(f"bad value {text!r} in {line!r}")
    return float(text)


def _labels(s, i, line):
    """Parses {a="x",b="y"} starting at s[i] == '{'; returns (dict, index after '}')."""
    labels = {}
    i += 1
    while True:
        if s[i] == "}":
            return labels, i + 1
        m = LABEL.match(s, i)
        if not m:
            raise ParseError(f"bad label name at {i} in {line!r}")
        name = m.group(0)
        i = m.end()
        if s[i:i + 2] != '="':
            raise ParseError(f"expected =\" after label {name} in {line!r}")
        i += 2
        out = []
        while True:
            if i >= len(s):
                raise ParseError(f"unterminated label value in {line!r}")
            c = s[i]
            if c == "\\":
                nxt = s[i + 1:i + 2]
                if nxt not in ("\\", '"', "n"):
                    raise ParseError(f"bad escape \\{nxt} in {line!r}")
                out.append("\n" if nxt == "n" else nxt)
                i += 2
            elif c == '"':
                i += 1
                break
            elif c == "\n":
                raise ParseError(f"raw newline in label value in {line!r}")
            else:
                out.append(c)
                i += 1
        if name in labels:
            raise ParseError(f"label {name} repeated in {line!r}")
        labels[name] = "".join(out)
        if s[i] == ",":
            i += 1
        elif s[i] != "}":
            raise ParseError(f"expected , or }} in {line!r}")


def _family_of(name, types):
    for suffix in ("_bucket", "_sum", "_count"):
        base = name[: -len(suffix)] if name.endswith(suffix) else None
        if base and types.get(base) in ("histogram", "summary"):
            return base
    return name


def parse(text):
    """Returns {family: {"type", "help", "samples": [(name, labels, value)]}}; raises ParseError."""
    if text and not text.endswith("\n"):
        raise ParseError("the exposition must end with a newline")
    families, types, order, seen = {}, {}, [], set()
    closed = set()
    current = None

    def enter(fam):
        nonlocal current
        if fam != current:
            if fam in closed:
                raise ParseError(f"family {fam} appears in two separate groups")
            if current is not None:
                closed.add(current)
            current = fam
        return families.setdefault(fam, {"type": "untyped", "help": None, "samples": []})

    for line in text.split("\n")[:-1]:
        if line.strip() == "":
            continue
        if line.startswith("#"):
            parts = line.split(None, 3)
            if len(parts) >= 3 and parts[1] in ("HELP", "TYPE"):
                name = parts[2]
                if not NAME.fullmatch(name):
                    raise ParseError(f"bad metric name in {line!r}")
                fam = enter(name)
                if parts[1] == "TYPE":
                    if name in types:
                        raise ParseError(f"second TYPE for {name}")
                    if fam["samples"]:
                        raise ParseError(f"TYPE for {name} after its samples")
                    t = parts[3] if len(parts) > 3 else ""
                    if t not in TYPES:
                        raise ParseError(f"bad type {t!r} for {name}")
                    types[name] = fam["type"] = t
                else:
                    if fam["help"] is not None:
                        raise ParseError(f"second HELP for {name}")
                    fam["help"] = parts[3] if len(parts) > 3 else ""
            continue
        m = NAME.match(line)
        if not m:
            raise ParseError(f"bad sample line {line!r}")
        name, i = m.group(0), m.end()
        labels = {}
        if i < len(line) and line[i] == "{":
            labels, i = _labels(line, i, line)
        rest = line[i:]
        if not rest.startswith(" "):
            raise ParseError(f"expected a space before the value in {line!r}")
        fields = rest.split()
        if len(fields) not in (1, 2):
            raise ParseError(f"expected value [timestamp] in {line!r}")
        v = _value(fields[0], line)
        if len(fields) == 2 and not re.fullmatch(r"-?\d+", fields[1]):
            raise ParseError(f"bad timestamp in {line!r}")
        fam_name = _family_of(name, types)
        fam = enter(fam_name)
        key = (name, tuple(sorted(labels.items())))
        if key in seen:
            raise ParseError(f"duplicate series {name}{labels}")
        seen.add(key)
        fam["samples"].append((name, labels, v))
        if fam_name not in order:
            order.append(fam_name)
    _check_semantics(families)
    return families


def _check_semantics(families):
    for fam, f in families.items():
        if f["type"] == "counter":
            if not fam.endswith("_total"):
                raise ParseError(f"counter {fam} should be named *_total")
            for name, labels, v in f["samples"]:
                if name != fam or v < 0 or math.isnan(v):
                    raise ParseError(f"bad counter sample {name}{labels} {v}")
        if f["type"] == "histogram":
            _check_histogram(fam, f["samples"])


def _check_histogram(fam, samples):
    groups = {}
    for name, labels, v in samples:
        base = tuple(sorted((k, x) for k, x in labels.items() if k != "le"))
        g = groups.setdefault(base, {"buckets": [], "sum": None, "count": None})
        if name == fam + "_bucket":
            if "le" not in labels:
                raise ParseError(f"{name} without le")
            g["buckets"].append((_value(labels["le"], name), v))
        elif name == fam + "_sum":
            g["sum"] = v
        elif name == fam + "_count":
            g["count"] = v
        else:
            raise ParseError(f"unexpected sample {name} in histogram {fam}")
    for base, g in groups.items():
        if g["sum"] is None or g["count"] is None:
            raise ParseError(f"histogram {fam}{dict(base)} lacks _sum or _count")
        les = [le for le, _ in g["buckets"]]
        if not les or les[-1] != math.inf:
            raise ParseError(f"histogram {fam}{dict(base)} lacks a final +Inf bucket")
        if les != sorted(les) or len(set(les)) != len(les):
            raise ParseError(f"histogram {fam}{dict(base)} buckets not in increasing le order")
        counts = [c for _, c in g["buckets"]]
        if any(b < a for a, b in zip(counts, counts[1:])):
            raise ParseError(f"histogram {fam}{dict(base)} buckets are not cumulative")
        if counts[-1] != g["count"]:
            raise ParseError(f"histogram {fam}{dict(base)}: +Inf bucket {counts[-1]} != count {g['count']}")


def value(families, name, **labels):
    """The value of the sample `name` whose labels include `labels` (exactly one must match)."""
    fam = families.get(_family_of(name, {k: f["type"] for k, f in families.items()}))
    hits = [v for n, l, v in (fam["samples"] if fam else [])
            if n == name and all(l.get(k) == str(x) for k, x in labels.items())]
    if len(hits) != 1:
        raise KeyError(f"{name}{labels}: {len(hits)} samples")
    return hits[0]

"""`snakepit exec --array NAME=FILE.npy [--out DIR]`: .npy files in as array
arguments, returned arrays out as .npy files, bit-exact, with the real binary,
real workers and NumPy (Debian's python3-numpy) on both sides.
"""

import json
import os
import subprocess
from pathlib import Path

import pytest

# The array front ends are tested with NumPy-made arrays and NumPy tools; a
# Python without NumPy (3.14t here) skips this file with the reason.
np = pytest.importorskip("numpy", reason="NumPy is not installed for this Python")

from npy_util import same_bits, sample

REPO = Path(__file__).resolve().parents[2]
BIN = os.environ.get("SNAKEPIT_BIN") or str(REPO / "build" / "snakepit")
ADAPTERS = os.environ.get("SP_TEST_ADAPTERS") or str(REPO / "tests" / "adapters")
EXIT_OK, EXIT_PYTHON, EXIT_USAGE, EXIT_CONFIG, EXIT_INVALID = range(5)

# Every dtype the arrays carry, each with values that use its whole range
# (NaN payloads, infinities, negative zero, extremes).
DTYPES = ["?", "i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8", "f2", "f4", "f8", "c8", "c16"]


@pytest.fixture(scope="module")
def cfg(tmp_path_factory):
    d = tmp_path_factory.mktemp("arrays")
    body = "pools:\n"
    for name, profile in (("ap", "process"), ("at", "thread")):
        body += (f"  - name: {name}\n    worker_profile: {profile}\n    pool_size: 1\n"
                 f"    adapter: frontend_array_adapter.FrontendArrayAdapter\n"
                 f"    python_path: [{json.dumps(ADAPTERS)}]\n    timeout: 20s\n")
        if profile == "thread":
            body += "    threads_per_worker: 2\n"
    (d / "pools.yaml").write_text(body)
    return str(d / "pools.yaml")


def run(cfg, *args):
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    return subprocess.run([BIN, "-q", "-c", cfg, "exec", *args], capture_output=True, text=True,
                          timeout=60, env=env)


def ok(proc):
    assert proc.returncode == EXIT_OK, f"rc={proc.returncode}\n{proc.stderr}"
    return json.loads(proc.stdout)


@pytest.mark.parametrize("pool", ["ap", "at"])
def test_every_dtype_round_trips_bit_exact(cfg, tmp_path, pool):
    """Fourteen dtypes, big-endian files and a Fortran-ordered file go in
    (eight arrays per call) and come back as .npy files with the same bits."""
    arrays = {f"x{i}": sample(dt, seed=i) for i, dt in enumerate(DTYPES)}
    arrays["big_f8"] = sample(">f8", (2, 5), seed=20)
    arrays["big_c16"] = sample(">c16", (3,), seed=21)
    arrays["big_u2"] = sample(">u2", (4, 1), seed=22)
    arrays["fortran"] = np.asfortranarray(sample("i4", (3, 5), seed=23))
    assert arrays["fortran"].flags.f_contiguous and not arrays["fortran"].flags.c_contiguous
    names = list(arrays)
    letters = "abcdefgh"
    for start in range(0, len(names), 8):
        chunk = names[start:start + 8]
        args = []
        for letter, name in zip(letters, chunk):
            np.save(tmp_path / f"{name}.npy", arrays[name])
            args += ["--array", f"{letter}={tmp_path / name}.npy"]
        out = tmp_path / f"out{start}"
        doc = ok(run(cfg, pool, "several", *args, "--out", str(out)))
        assert set(doc) == set(letters[:len(chunk)])
        for letter, name in zip(letters, chunk):
            place = doc[letter]
            assert place["$array"] == f"{out}/{letter}.npy"
            want = arrays[name]
            assert place["shape"] == list(want.shape)
            assert place["dtype"] == want.dtype.newbyteorder("=").name
            got = np.load(place["$array"])
            assert got.flags.c_contiguous
            same_bits(got, want)


def test_nested_result_paths(cfg, tmp_path):
    a = np.arange(6, dtype=np.float64).reshape(2, 3) / 7
    np.save(tmp_path / "a.npy", a)
    out = tmp_path / "out"
    doc = ok(run(cfg, "ap", "nested", "--out", f"{out}//", "--array", f"a={tmp_path}/a.npy"))
    assert doc["n"] == 1
    assert doc["c"] == {"$array": f"{out}/c.npy", "dtype": "float64", "shape": [2, 3]}
    assert doc["items"][0] == {"$array": f"{out}/items.0.npy", "dtype": "float64", "shape": [2, 3]}
    assert doc["items"][1]["$array"] == f"{out}/items.1.npy"
    assert sorted(os.listdir(out)) == ["c.npy", "items.0.npy", "items.1.npy"]
    same_bits(np.load(out / "c.npy"), a)
    same_bits(np.load(out / "items.0.npy"), a)
    assert np.load(out / "items.1.npy").tobytes() == b"raw"


def test_paths_that_map_to_one_file_name_keep_both(cfg, tmp_path):
    a = np.arange(3, dtype=np.int64)
    np.save(tmp_path / "a.npy", a)
    out = tmp_path / "out"
    doc = ok(run(cfg, "ap", "collide", "--array", f"a={tmp_path}/a.npy", "--out", str(out)))
    first, second = doc["a.b"]["$array"], doc["a"]["b"]["$array"]
    assert first != second and {first, second} == {f"{out}/a.b.npy", f"{out}/a.b~1.npy"}
    same_bits(np.load(first), a)
    same_bits(np.load(second), a * 2)


def test_other_values_print_exactly(cfg, tmp_path):
    """Only the array's place changes: big integers, decimals and strings that
    look like places print as the tool wrote them."""
    np.save(tmp_path / "a.npy", np.zeros(2))
    out = tmp_path / "out"
    p = run(cfg, "ap", "mixed", "--array", f"a={tmp_path}/a.npy", "--out", str(out))
    doc = ok(p)
    assert doc == {"a": {"$array": f"{out}/a.npy", "dtype": "float64", "shape": [2]},
                   "big": 2 ** 70, "x": 0.1, "s": '{"$array": 0} \\ "q"', "d": {"$arrayx": 0}}
    assert str(2 ** 70) in p.stdout and "0.1" in p.stdout


def test_whole_result_array_and_json_arguments(cfg, tmp_path):
    a = sample("f8", (5,), seed=3)
    b = sample("f8", (5,), seed=4)
    a[~np.isfinite(a)] = 1.0
    b[~np.isfinite(b)] = 2.0
    np.save(tmp_path / "a.npy", a)
    np.save(tmp_path / "b.npy", b)
    out = tmp_path / "out"
    doc = ok(run(cfg, "at", "axpy", '{"scale": 0.5}', "--array", f"a={tmp_path}/a.npy",
                 f"--array=b={tmp_path}/b.npy", f"--out={out}"))
    assert doc == {"$array": f"{out}/result.npy", "dtype": "float64", "shape": [5]}
    same_bits(np.load(out / "result.npy"), a + b * 0.5)


def test_without_out_arrays_print_as_lists(cfg, tmp_path):
    a = np.arange(12, dtype=np.int32).reshape(3, 4)
    np.save(tmp_path / "a.npy", a)
    doc = ok(run(cfg, "ap", "double", "--array", f"a={tmp_path}/a.npy"))
    assert doc == (a * 2).tolist()
    doc = ok(run(cfg, "ap", "nested_arrays", "--array", f"a={tmp_path}/a.npy"))
    assert doc == {"c": a.tolist(), "items": [a.tolist(), (a * 2).tolist()], "n": 1}


def test_bad_files_are_refused_with_their_name(cfg, tmp_path):
    np.save(tmp_path / "obj.npy", np.array([{"x": 1}, None], dtype=object), allow_pickle=True)
    np.save(tmp_path / "rec.npy", np.zeros(3, dtype=[("x", "<i4"), ("y", "<f8")]))
    np.save(tmp_path / "str.npy", np.array(["ab", "c"]))
    np.save(tmp_path / "good.npy", np.arange(100, dtype=np.float64))
    data = (tmp_path / "good.npy").read_bytes()
    (tmp_path / "trunc.npy").write_bytes(data[:-8])
    (tmp_path / "magic.npy").write_bytes(b"PK\x03\x04" + data[4:])
    cases = [("obj.npy", "object arrays"), ("rec.npy", "structured dtypes"),
             ("str.npy", "unsupported .npy dtype '<U2'"), ("trunc.npy", "truncated .npy data"),
             ("magic.npy", "bad magic")]
    for name, want in cases:
        p = run(cfg, "ap", "echo", "--array", f"a={tmp_path / name}")
        assert p.returncode == EXIT_INVALID, (name, p.returncode, p.stderr)
        assert f"--array a: {tmp_path / name}: " in p.stderr and want in p.stderr, (name, p.stderr)
        assert p.stdout == ""


def test_bad_command_lines(cfg, tmp_path):
    np.save(tmp_path / "a.npy", np.zeros(2))
    for args, want in [(["--array", "a"], "--array needs NAME=FILE.npy, got 'a'"),
                       (["--array", "=x.npy"], "--array needs NAME=FILE.npy"),
                       (["--array"], "--array needs a value"),
                       (["--out"], "--out needs a value"),
                       (["--out="], "--out needs a directory")]:
        p = run(cfg, "ap", "echo", *args)
        assert p.returncode == EXIT_USAGE and want in p.stderr, (args, p.stderr)
    p = run(cfg, "ap", "echo", "--array", f"a={tmp_path}/missing.npy")
    assert p.returncode == EXIT_USAGE and "cannot read" in p.stderr and "missing.npy" in p.stderr
    p = run(cfg, "ap", "echo", "--array", f"a={tmp_path}/a.npy", "--array", f"a={tmp_path}/a.npy")
    assert p.returncode == EXIT_USAGE and "--array a is given twice" in p.stderr
    # A tool error is still the tool's error.
    p = run(cfg, "ap", "digest", '{"a": 1}')
    assert p.returncode == EXIT_PYTHON and "TypeError" in p.stderr

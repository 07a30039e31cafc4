"""Arrays for the tests of arrays in the front ends (tests/cli, tests/http):
samples whose bytes are random, and a bit-exact comparison."""

import numpy as np


def sample(dtype, shape=(3, 4), seed=0):
    """An array of dtype whose bytes are random: every bit pattern is fair game."""
    dt = np.dtype(dtype)
    rng = np.random.default_rng(seed)
    n = int(np.prod(shape))
    if dt.kind == "b":
        return rng.integers(0, 2, size=shape).astype(dt)
    raw = rng.integers(0, 256, size=n * dt.itemsize, dtype=np.uint8)
    return raw.view(dt).reshape(shape)


def native_bytes(a):
    """The bytes of a in C order and this machine's byte order, without any
    value conversion (a byte swap keeps NaN payloads as they are)."""
    a = np.ascontiguousarray(a)
    if a.dtype.byteorder == ">":
        a = a.byteswap().view(a.dtype.newbyteorder("<"))
    return a.tobytes()


def same_bits(got, want):
    """Same dtype (as NumPy names it), shape and bits."""
    assert got.dtype.name == want.dtype.name and got.shape == want.shape, (got.dtype, want.dtype)
    assert got.dtype.byteorder in "=|<"
    assert got.tobytes() == native_bytes(want)

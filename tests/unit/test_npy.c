/*
 * test_npy.c - the .npy reader and writer of the front ends: every dtype
 * round-trips bit-exactly, big-endian data is swapped, format versions 2.0 and
 * 3.0 and Fortran order are read, and every malformed file gets its error.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "npy.h"

static const int all_dtypes[] = {
    SP_DTYPE_BOOL,    SP_DTYPE_INT8,    SP_DTYPE_INT16,     SP_DTYPE_INT32,     SP_DTYPE_INT64,
    SP_DTYPE_UINT8,   SP_DTYPE_UINT16,  SP_DTYPE_UINT32,    SP_DTYPE_UINT64,    SP_DTYPE_FLOAT16,
    SP_DTYPE_FLOAT32, SP_DTYPE_FLOAT64, SP_DTYPE_COMPLEX64, SP_DTYPE_COMPLEX128};
#define NALL (sizeof(all_dtypes) / sizeof(all_dtypes[0]))

/* Descriptor characters of each dtype above, for hand-made headers. */
static const char *kinds[] = {"b1", "i1", "i2", "i4", "i8", "u1", "u2",
                              "u4", "u8", "f2", "f4", "f8", "c8", "c16"};

/* Deterministic bytes covering every bit pattern, including NaN payloads. */
static void fill(uint8_t *p, size_t n, uint32_t seed) {
  for (size_t i = 0; i < n; i++) {
    seed = seed * 1103515245u + 12345u;
    p[i] = (uint8_t)(seed >> 16);
  }
}

/* A .npy image of any version with the given dict text and data. */
static uint8_t *make_npy(unsigned major, unsigned minor, const char *dict, const void *data,
                         size_t n, size_t *len) {
  size_t dl = strlen(dict), lenbytes = major == 1 ? 2 : 4;
  *len = 8 + lenbytes + dl + n;
  uint8_t *b = malloc(*len);
  memcpy(b, "\x93NUMPY", 6);
  b[6] = (uint8_t)major;
  b[7] = (uint8_t)minor;
  for (size_t i = 0; i < lenbytes; i++) b[8 + i] = (uint8_t)(dl >> (8 * i));
  memcpy(b + 8 + lenbytes, dict, dl);
  if (n) memcpy(b + 8 + lenbytes + dl, data, n);
  return b;
}

static void roundtrip_every_dtype(void **state) {
  (void)state;
  const int64_t shapes[][3] = {{2, 3, 0}, {5, 0, 0}, {0, 0, 0}, {0, 4, 0}, {2, 2, 3}};
  const int ndims[] = {2, 1, 0, 2, 3};
  for (size_t t = 0; t < NALL; t++) {
    for (size_t s = 0; s < sizeof(ndims) / sizeof(ndims[0]); s++) {
      size_t item = sp_dtype_size(all_dtypes[t]), count = 1;
      for (int d = 0; d < ndims[s]; d++) count *= (size_t)shapes[s][d];
      size_t n = item * count;
      uint8_t *data = malloc(n + 1);
      fill(data, n, (uint32_t)(t * 31 + s));
      sp__buf_t b = {0};
      assert_int_equal(sp_npy_header_write(&b, all_dtypes[t], ndims[s], shapes[s]), 0);
      assert_int_equal(b.len % 64, 0); /* data aligned as NumPy aligns it */
      assert_int_equal(sp__buf_append(&b, data, n), 0);
      sp_npy_t a;
      char msg[256] = "";
      assert_int_equal(sp_npy_parse(b.data, b.len, &a, msg, sizeof(msg)), 0);
      assert_int_equal(a.dtype, all_dtypes[t]);
      assert_int_equal(a.ndim, ndims[s]);
      for (int d = 0; d < ndims[s]; d++) assert_int_equal(a.shape[d], shapes[s][d]);
      assert_int_equal(a.fortran_order, 0);
      if (ndims[s] > 0) assert_int_equal(a.strides[ndims[s] - 1], (int64_t)item);
      assert_int_equal(a.nbytes, n);
      if (n) assert_memory_equal(a.data, data, n);
      sp__buf_free(&b);
      free(data);
    }
  }
}

static void big_endian_is_swapped(void **state) {
  (void)state;
  for (size_t t = 0; t < NALL; t++) {
    size_t item = sp_dtype_size(all_dtypes[t]);
    size_t unit = all_dtypes[t] == SP_DTYPE_COMPLEX64    ? 4
                  : all_dtypes[t] == SP_DTYPE_COMPLEX128 ? 8
                                                         : item;
    size_t n = item * 6;
    uint8_t le[6 * 16], be[6 * 16];
    fill(le, n, (uint32_t)t + 7);
    for (size_t off = 0; off < n; off += unit)
      for (size_t i = 0; i < unit; i++) be[off + i] = le[off + unit - 1 - i];
    char dict[128];
    snprintf(dict, sizeof(dict), "{'descr': '%c%s', 'fortran_order': False, 'shape': (2, 3), }\n",
             item == 1 ? '|' : '>', kinds[t]);
    size_t len;
    uint8_t *img = make_npy(1, 0, dict, be, n, &len);
    sp_npy_t a;
    char msg[256] = "";
    assert_int_equal(sp_npy_parse(img, len, &a, msg, sizeof(msg)), 0);
    assert_int_equal(a.dtype, all_dtypes[t]);
    assert_memory_equal(a.data, le, n);
    free(img);
    /* The same data stated little-endian is taken as it is. */
    snprintf(dict, sizeof(dict), "{'descr': '%c%s', 'fortran_order': False, 'shape': (6,), }",
             item == 1 ? '|' : '<', kinds[t]);
    img = make_npy(1, 0, dict, le, n, &len);
    assert_int_equal(sp_npy_parse(img, len, &a, msg, sizeof(msg)), 0);
    assert_memory_equal(a.data, le, n);
    free(img);
  }
}

static void versions_2_and_3(void **state) {
  (void)state;
  double v[3] = {1.5, -2.25, 1e300};
  for (unsigned major = 2; major <= 3; major++) {
    size_t len;
    uint8_t *img =
        make_npy(major, 0, "{\"descr\": \"<f8\", \"fortran_order\": False, \"shape\": (3L,)}", v,
                 sizeof(v), &len);
    sp_npy_t a;
    char msg[256] = "";
    assert_int_equal(sp_npy_parse(img, len, &a, msg, sizeof(msg)), 0);
    assert_int_equal(a.dtype, SP_DTYPE_FLOAT64);
    assert_int_equal(a.ndim, 1);
    assert_int_equal(a.shape[0], 3);
    assert_memory_equal(a.data, v, sizeof(v));
    free(img);
  }
}

static void fortran_order_gives_strides(void **state) {
  (void)state;
  int32_t v[24];
  for (int i = 0; i < 24; i++) v[i] = i;
  size_t len;
  uint8_t *img = make_npy(1, 0, "{'descr': '<i4', 'fortran_order': True, 'shape': (2, 3, 4), }", v,
                          sizeof(v), &len);
  sp_npy_t a;
  char msg[256] = "";
  assert_int_equal(sp_npy_parse(img, len, &a, msg, sizeof(msg)), 0);
  assert_int_equal(a.fortran_order, 1);
  assert_int_equal(a.strides[0], 4);
  assert_int_equal(a.strides[1], 8);
  assert_int_equal(a.strides[2], 24);
  free(img);
  /* C order of the same shape. */
  img = make_npy(1, 0, "{'descr': '<i4', 'fortran_order': False, 'shape': (2, 3, 4), }", v,
                 sizeof(v), &len);
  assert_int_equal(sp_npy_parse(img, len, &a, msg, sizeof(msg)), 0);
  assert_int_equal(a.strides[0], 48);
  assert_int_equal(a.strides[1], 16);
  assert_int_equal(a.strides[2], 4);
  free(img);
}

/* Parses an image made of dict and n data bytes (version major) and expects
 * SP_EINVAL with want in the message. */
static void expect_error(unsigned major, unsigned minor, const char *dict, size_t n,
                         const char *want) {
  uint8_t data[64] = {0};
  size_t len;
  uint8_t *img = make_npy(major, minor, dict, data, n, &len);
  sp_npy_t a;
  char msg[512] = "";
  int rc = sp_npy_parse(img, len, &a, msg, sizeof(msg));
  if (rc != SP_EINVAL || strstr(msg, want) == NULL)
    fail_msg("dict %s: rc %d, message '%s', wanted '%s'", dict, rc, msg, want);
  free(img);
}

static void every_error(void **state) {
  (void)state;
  char msg[512];
  sp_npy_t a;
  uint8_t junk[] = "PK\x03\x04 not an array at all";
  assert_int_equal(sp_npy_parse(junk, sizeof(junk), &a, msg, sizeof(msg)), SP_EINVAL);
  assert_non_null(strstr(msg, "bad magic"));
  assert_int_equal(sp_npy_parse(junk, 0, &a, msg, sizeof(msg)), SP_EINVAL);
  assert_non_null(strstr(msg, "bad magic"));
  uint8_t shortv[] = "\x93NUMPY\x01";
  assert_int_equal(sp_npy_parse(shortv, 7, &a, msg, sizeof(msg)), SP_EINVAL);
  assert_non_null(strstr(msg, "no format version"));
  uint8_t shortl[] = "\x93NUMPY\x01\x00\x10";
  assert_int_equal(sp_npy_parse(shortl, 9, &a, msg, sizeof(msg)), SP_EINVAL);
  assert_non_null(strstr(msg, "no header length"));

  const char *ok = "{'descr': '<f8', 'fortran_order': False, 'shape': (2,), }";
  expect_error(4, 0, ok, 16, "unsupported .npy format version 4.0");
  expect_error(1, 1, ok, 16, "unsupported .npy format version 1.1");
  expect_error(1, 0, ok, 15, "truncated .npy data: the header describes 16 bytes");
  expect_error(1, 0, ok, 0, "truncated .npy data");
  expect_error(1, 0, ok, 17, "1 bytes of trailing data");
  expect_error(1, 0, "{'descr': '|O', 'fortran_order': False, 'shape': (2,), }", 16,
               "object arrays (dtype '|O') are not supported");
  expect_error(1, 0,
               "{'descr': [('a', '<i4'), ('b', '<f8')], 'fortran_order': False, 'shape': (2,), }",
               16, "structured dtypes");
  expect_error(1, 0, "{'descr': '<U3', 'fortran_order': False, 'shape': (2,), }", 16,
               "unsupported .npy dtype '<U3'");
  expect_error(1, 0, "{'descr': '<f3', 'fortran_order': False, 'shape': (2,), }", 16,
               "unsupported .npy dtype '<f3'");
  expect_error(1, 0, "{'descr': '|i4', 'fortran_order': False, 'shape': (2,), }", 16,
               "byte order '|' is only for 1-byte types");
  expect_error(1, 0, "{'descr': 'f8', 'fortran_order': False, 'shape': (2,), }", 16,
               "no byte order character");
  expect_error(1, 0, "{'descr': '<f8', 'shape': (2,), }", 16, "missing key 'fortran_order'");
  expect_error(1, 0, "{'descr': '<f8', 'fortran_order': False}", 16, "missing key 'shape'");
  expect_error(1, 0, "{'fortran_order': False, 'shape': (2,), }", 16, "missing key 'descr'");
  expect_error(1, 0, "{'descr': '<f8', 'fortran_order': False, 'shape': (2,), 'x': 1}", 16,
               "unknown key 'x'");
  expect_error(1, 0, "{'descr': '<f8', 'descr': '<f8', 'fortran_order': False, 'shape': (2,)}", 16,
               "repeated key 'descr'");
  expect_error(1, 0, "{'descr': '<f8', 'fortran_order': 0, 'shape': (2,), }", 16,
               "'fortran_order' must be True or False");
  expect_error(1, 0, "{'descr': '<f8', 'fortran_order': False, 'shape': [2], }", 16,
               "'shape' must be a tuple");
  expect_error(1, 0, "{'descr': '<f8', 'fortran_order': False, 'shape': (-2,), }", 16,
               "non-negative integers");
  expect_error(1, 0, "{'descr': '<f8', 'fortran_order': False, 'shape': (2 3), }", 16,
               "expected ',' or ')'");
  expect_error(1, 0, "{'descr': '<f8', 'fortran_order': False, 'shape': (99999999999999999999,)}",
               16, "dimension too large");
  expect_error(
      1, 0,
      "{'descr': '<f8', 'fortran_order': False, 'shape': (4294967296, 4294967296, 4294967296)}", 16,
      "more bytes than fit in memory");
  expect_error(1, 0, "'descr': '<f8'", 16, "expected '{'");
  expect_error(1, 0, "{'descr: '<f8'", 16, "expected ':'");
  expect_error(1, 0, "{'descr': '<f8', 'fortran_order': False, 'shape': (2,)} x", 16,
               "text after the dict");
  expect_error(1, 0, "{'descr': '<f8' 'fortran_order': False}", 16, "expected ',' or '}'");

  /* A header that declares more bytes than there are. */
  size_t len;
  uint8_t *img = make_npy(1, 0, ok, NULL, 0, &len);
  assert_int_equal(sp_npy_parse(img, len - 5, &a, msg, sizeof(msg)), SP_EINVAL);
  assert_non_null(strstr(msg, "truncated .npy header"));
  free(img);
}

static void header_write_refuses_bad_input(void **state) {
  (void)state;
  sp__buf_t b = {0};
  int64_t shape[1] = {1};
  assert_int_equal(sp_npy_header_write(&b, (sp_dtype_t)0, 1, shape), SP_EINVAL);
  assert_int_equal(sp_npy_header_write(&b, SP_DTYPE_INT8, SP_MAX_NDIM + 1, shape), SP_EINVAL);
  sp__buf_free(&b);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(roundtrip_every_dtype), cmocka_unit_test(big_endian_is_swapped),
      cmocka_unit_test(versions_2_and_3),      cmocka_unit_test(fortran_order_gives_strides),
      cmocka_unit_test(every_error),           cmocka_unit_test(header_write_refuses_bad_input),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

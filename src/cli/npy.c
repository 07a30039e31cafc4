/*
 * npy.c - NumPy's .npy format (numpy.lib.format): a magic string, a version, a
 * header that is a Python dict literal {'descr', 'fortran_order', 'shape'},
 * then the raw data. Only what sp_array_t can carry is accepted; everything
 * else is refused with a message that says what and where.
 */
#include "npy.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAGIC "\x93NUMPY"
#define MAGIC_LEN 6

/*
 * The dtypes of sp_dtype_t with their NumPy kind character: the descriptor is
 * byte order + kind + size ("<f8", "|b1"); sizes and names are the library's
 * (sp_dtype_size, sp_dtype_name).
 */
static const struct {
  sp_dtype_t dtype;
  char kind;
} dtypes[] = {
    {SP_DTYPE_BOOL, 'b'},      {SP_DTYPE_INT8, 'i'},       {SP_DTYPE_INT16, 'i'},
    {SP_DTYPE_INT32, 'i'},     {SP_DTYPE_INT64, 'i'},      {SP_DTYPE_UINT8, 'u'},
    {SP_DTYPE_UINT16, 'u'},    {SP_DTYPE_UINT32, 'u'},     {SP_DTYPE_UINT64, 'u'},
    {SP_DTYPE_FLOAT16, 'f'},   {SP_DTYPE_FLOAT32, 'f'},    {SP_DTYPE_FLOAT64, 'f'},
    {SP_DTYPE_COMPLEX64, 'c'}, {SP_DTYPE_COMPLEX128, 'c'},
};
#define NDTYPES (sizeof(dtypes) / sizeof(dtypes[0]))

static int find_dtype(int dtype) {
  for (size_t i = 0; i < NDTYPES; i++)
    if ((int)dtypes[i].dtype == dtype) return (int)i;
  return -1;
}

static int host_little_endian(void) {
  const uint16_t one = 1;
  return *(const uint8_t *)&one == 1;
}

static int fail(char *msg, size_t msglen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(char *msg, size_t msglen, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  if (msglen > 0) vsnprintf(msg, msglen, fmt, ap);
  va_end(ap);
  return SP_EINVAL;
}

/* ---- the header dict ------------------------------------------------------ */

typedef struct {
  const char *p, *start, *end;
  char *msg;
  size_t msglen;
} lexer_t;

static void skip_ws(lexer_t *lx) {
  while (lx->p < lx->end && (*lx->p == ' ' || *lx->p == '\t' || *lx->p == '\n' || *lx->p == '\r'))
    lx->p++;
}

static int bad(lexer_t *lx, const char *what) {
  return fail(lx->msg, lx->msglen, "bad .npy header at offset %d of the dict: %s (header: %.120s)",
              (int)(lx->p - lx->start), what, lx->start);
}

static int eat(lexer_t *lx, char c) {
  skip_ws(lx);
  if (lx->p < lx->end && *lx->p == c) {
    lx->p++;
    return 1;
  }
  return 0;
}

/* A Python string literal in '' or "" (the header never needs escapes). */
static int string_lit(lexer_t *lx, char *out, size_t outlen) {
  skip_ws(lx);
  if (lx->p >= lx->end || (*lx->p != '\'' && *lx->p != '"')) return bad(lx, "expected a string");
  char q = *lx->p++;
  size_t n = 0;
  while (lx->p < lx->end && *lx->p != q) {
    if (n + 1 >= outlen) return bad(lx, "string too long");
    out[n++] = *lx->p++;
  }
  if (lx->p >= lx->end) return bad(lx, "unterminated string");
  lx->p++;
  out[n] = '\0';
  return 0;
}

/* Maps a descriptor ("<f8") to a dtype; *swap says whether its bytes need swapping. */
static int parse_descr(lexer_t *lx, const char *d, sp_dtype_t *dtype, int *swap) {
  char order = d[0];
  if (order != '<' && order != '>' && order != '|' && order != '=')
    return fail(lx->msg, lx->msglen, "unsupported .npy dtype '%s': no byte order character", d);
  char kind = d[1];
  if (kind == 'O')
    return fail(lx->msg, lx->msglen,
                "object arrays (dtype '%s') are not supported: only numeric and bool arrays travel "
                "as arrays",
                d);
  char *end = NULL;
  long size = kind ? strtol(d + 2, &end, 10) : 0;
  for (size_t i = 0; kind && end && *end == '\0' && end != d + 2 && i < NDTYPES; i++) {
    if (dtypes[i].kind != kind || sp_dtype_size(dtypes[i].dtype) != (size_t)size) continue;
    if (order == '|' && size > 1)
      return fail(lx->msg, lx->msglen,
                  "unsupported .npy dtype '%s': byte order '|' is only for 1-byte types", d);
    int little = order == '<' || (order == '=' && host_little_endian());
    *swap = size > 1 && order != '=' && little != host_little_endian();
    *dtype = dtypes[i].dtype;
    return 0;
  }
  return fail(
      lx->msg, lx->msglen,
      "unsupported .npy dtype '%s' (supported: |b1, i1, i2, i4, i8, u1, u2, u4, u8, f2, f4, "
      "f8, c8, c16 in either byte order)",
      d);
}

static int parse_shape(lexer_t *lx, sp_npy_t *out) {
  if (!eat(lx, '(')) return bad(lx, "'shape' must be a tuple");
  out->ndim = 0;
  for (;;) {
    if (eat(lx, ')')) return 0;
    skip_ws(lx);
    if (lx->p >= lx->end || !isdigit((unsigned char)*lx->p))
      return bad(lx, "'shape' must hold non-negative integers");
    if (out->ndim == SP_MAX_NDIM) return bad(lx, "more than 32 dimensions");
    int64_t v = 0;
    while (lx->p < lx->end && isdigit((unsigned char)*lx->p)) {
      if (v > (INT64_MAX - 9) / 10) return bad(lx, "dimension too large");
      v = v * 10 + (*lx->p++ - '0');
    }
    if (lx->p < lx->end && *lx->p == 'L') lx->p++; /* written by Python 2 */
    out->shape[out->ndim++] = v;
    if (!eat(lx, ',')) {
      if (eat(lx, ')')) return 0;
      return bad(lx, "expected ',' or ')' in 'shape'");
    }
  }
}

static int parse_header(lexer_t *lx, sp_npy_t *out, int *swap) {
  int seen_descr = 0, seen_order = 0, seen_shape = 0;
  if (!eat(lx, '{')) return bad(lx, "expected '{'");
  while (!eat(lx, '}')) {
    char key[32], val[64];
    if (string_lit(lx, key, sizeof(key)) != 0) return SP_EINVAL;
    if (!eat(lx, ':')) return bad(lx, "expected ':'");
    if (strcmp(key, "descr") == 0 && !seen_descr) {
      seen_descr = 1;
      skip_ws(lx);
      if (lx->p < lx->end && *lx->p == '[')
        return fail(lx->msg, lx->msglen,
                    "structured dtypes (a list of fields as 'descr') are not supported: save each "
                    "field as its own array");
      if (string_lit(lx, val, sizeof(val)) != 0) return SP_EINVAL;
      if (parse_descr(lx, val, &out->dtype, swap) != 0) return SP_EINVAL;
    } else if (strcmp(key, "fortran_order") == 0 && !seen_order) {
      seen_order = 1;
      skip_ws(lx);
      size_t left = (size_t)(lx->end - lx->p);
      if (left >= 4 && memcmp(lx->p, "True", 4) == 0) {
        out->fortran_order = 1;
        lx->p += 4;
      } else if (left >= 5 && memcmp(lx->p, "False", 5) == 0) {
        out->fortran_order = 0;
        lx->p += 5;
      } else {
        return bad(lx, "'fortran_order' must be True or False");
      }
    } else if (strcmp(key, "shape") == 0 && !seen_shape) {
      seen_shape = 1;
      if (parse_shape(lx, out) != 0) return SP_EINVAL;
    } else {
      return fail(lx->msg, lx->msglen,
                  "bad .npy header: %s key '%s' (expected descr, fortran_order, shape)",
                  (strcmp(key, "descr") && strcmp(key, "fortran_order") && strcmp(key, "shape"))
                      ? "unknown"
                      : "repeated",
                  key);
    }
    if (!eat(lx, ',')) {
      if (eat(lx, '}')) break;
      return bad(lx, "expected ',' or '}'");
    }
  }
  skip_ws(lx);
  if (lx->p != lx->end) return bad(lx, "text after the dict");
  if (!seen_descr || !seen_order || !seen_shape)
    return fail(lx->msg, lx->msglen, "bad .npy header: missing key '%s'",
                !seen_descr   ? "descr"
                : !seen_order ? "fortran_order"
                              : "shape");
  return 0;
}

/* Reverses every `size`-byte unit of n bytes (a complex number is two units). */
static void swap_bytes(uint8_t *p, size_t n, unsigned size) {
  for (size_t off = 0; off + size <= n; off += size)
    for (unsigned i = 0; i < size / 2; i++) {
      uint8_t t = p[off + i];
      p[off + i] = p[off + size - 1 - i];
      p[off + size - 1 - i] = t;
    }
}

int sp_npy_parse(void *buf, size_t len, sp_npy_t *out, char *msg, size_t msglen) {
  uint8_t *b = buf;
  memset(out, 0, sizeof(*out));
  if (len < MAGIC_LEN || memcmp(b, MAGIC, MAGIC_LEN) != 0)
    return fail(msg, msglen, "not a .npy file: bad magic (it must start with \\x93NUMPY)");
  if (len < MAGIC_LEN + 2) return fail(msg, msglen, "truncated .npy file: no format version");
  unsigned major = b[6], minor = b[7];
  if (!((major == 1 || major == 2 || major == 3) && minor == 0))
    return fail(msg, msglen, "unsupported .npy format version %u.%u (supported: 1.0, 2.0, 3.0)",
                major, minor);
  size_t lenbytes = major == 1 ? 2 : 4;
  if (len < 8 + lenbytes) return fail(msg, msglen, "truncated .npy file: no header length");
  size_t hlen = b[8] | (size_t)b[9] << 8;
  if (lenbytes == 4) hlen |= (size_t)b[10] << 16 | (size_t)b[11] << 24;
  size_t hstart = 8 + lenbytes;
  if (len - hstart < hlen)
    return fail(msg, msglen, "truncated .npy header: it declares %zu bytes, the file has %zu", hlen,
                len - hstart);
  /* The dict is ASCII (UTF-8 in 3.0); a NUL would end the quoted copy in errors early. */
  if (memchr(b + hstart, '\0', hlen) != NULL)
    return fail(msg, msglen, "bad .npy header: it contains a NUL byte");
  char text[4096];
  if (hlen >= sizeof(text))
    return fail(msg, msglen, "bad .npy header: %zu bytes is too long", hlen);
  memcpy(text, b + hstart, hlen);
  text[hlen] = '\0';
  lexer_t lx = {text, text, text + hlen, msg, msglen};
  int swap = 0;
  if (parse_header(&lx, out, &swap) != 0) return SP_EINVAL;

  size_t item = sp_dtype_size(out->dtype), nbytes = item;
  for (int i = 0; i < out->ndim; i++)
    if (__builtin_mul_overflow(nbytes, (size_t)out->shape[i], &nbytes))
      return fail(msg, msglen,
                  "bad .npy header: the shape describes more bytes than fit in memory");
  /* Strides of the data as it lies: the last axis varies fastest in C order,
   * the first in Fortran order. */
  int64_t step = (int64_t)item;
  for (int k = 0; k < out->ndim; k++) {
    int i = out->fortran_order ? k : out->ndim - 1 - k;
    out->strides[i] = step;
    step *= out->shape[i] ? out->shape[i] : 1;
  }
  size_t have = len - hstart - hlen;
  if (have < nbytes)
    return fail(msg, msglen,
                "truncated .npy data: the header describes %zu bytes (%s), the file has %zu",
                nbytes, sp_dtype_name(out->dtype), have);
  if (have > nbytes)
    return fail(msg, msglen, "%zu bytes of trailing data after the .npy array (%zu bytes of %s)",
                have - nbytes, nbytes, sp_dtype_name(out->dtype));
  out->data = b + hstart + hlen;
  out->nbytes = nbytes;
  if (swap)
    swap_bytes(out->data, nbytes,
               out->dtype == SP_DTYPE_COMPLEX64    ? 4
               : out->dtype == SP_DTYPE_COMPLEX128 ? 8
                                                   : (unsigned)item);
  return 0;
}

int sp_npy_header_write(sp__buf_t *b, sp_dtype_t dtype, int ndim, const int64_t *shape) {
  int i = find_dtype(dtype);
  if (i < 0 || ndim < 0 || ndim > SP_MAX_NDIM) return SP_EINVAL;
  char dict[1024];
  size_t size = sp_dtype_size(dtype);
  int n = snprintf(dict, sizeof(dict), "{'descr': '%c%c%zu', 'fortran_order': False, 'shape': (",
                   size == 1              ? '|'
                   : host_little_endian() ? '<'
                                          : '>',
                   dtypes[i].kind, size);
  for (int d = 0; d < ndim; d++)
    n += snprintf(dict + n, sizeof(dict) - (size_t)n, "%s%lld%s", d ? ", " : "",
                  (long long)shape[d], ndim == 1 ? "," : "");
  n += snprintf(dict + n, sizeof(dict) - (size_t)n, "), }");
  /* Pad with spaces and a newline so the data starts 64-byte aligned, as NumPy does. */
  size_t total = MAGIC_LEN + 4 + (size_t)n + 1;
  size_t pad = (64 - total % 64) % 64;
  size_t hlen = (size_t)n + pad + 1;
  uint8_t pre[10] = {
      0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (uint8_t)(hlen & 0xff), (uint8_t)(hlen >> 8)};
  if (sp__buf_reserve(b, sizeof(pre) + hlen) != 0) return SP_ENOMEM;
  sp__buf_append(b, pre, sizeof(pre));
  sp__buf_append(b, dict, (size_t)n);
  memset(b->data + b->len, ' ', pad);
  b->len += pad;
  sp__buf_append(b, "\n", 1);
  return 0;
}

void sp_npy_file_base(const char *path, char *out, size_t outlen) {
  size_t n = 0;
  if (outlen == 0) return;
  for (; path[n] && n + 1 < outlen; n++) out[n] = path[n] == '/' ? '.' : path[n];
  out[n] = '\0';
  if (n == 0 && outlen > 1) strcpy(out, "_");
}

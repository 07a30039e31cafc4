/*
 * npy.h - NumPy's .npy file format, read and written by the front ends: the CLI
 * (`exec --array` / `--out`) and the HTTP server (multipart .npy parts).
 */
#ifndef SP_CLI_NPY_H
#define SP_CLI_NPY_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "snakepit.h"

/** A parsed .npy image: header fields plus where its data lies. */
typedef struct sp_npy_s {
  sp_dtype_t dtype;
  int ndim;
  int64_t shape[SP_MAX_NDIM];
  int fortran_order;            /* the data is in Fortran (column-major) order */
  int64_t strides[SP_MAX_NDIM]; /* byte strides of the data as it lies (C or Fortran) */
  void *data;                   /* points into the parsed buffer, host byte order */
  size_t nbytes;
} sp_npy_t;

/**
 * Parses a whole .npy image (format versions 1.0, 2.0 and 3.0; the dtypes of
 * sp_dtype_t in either byte order; C or Fortran order). Data stored in the
 * other byte order is swapped in place, so buf must be writable; out->data
 * points into buf. Returns 0, or SP_EINVAL with what is wrong and where in msg
 * (NUL-terminated, at most msglen bytes). Pure function; any thread.
 */
int sp_npy_parse(void *buf, size_t len, sp_npy_t *out, char *msg, size_t msglen);

/**
 * Appends the .npy header (version 1.0, host byte order, C order, 64-byte
 * aligned) of an array of dtype and shape; the caller appends the data after
 * it. Returns 0, SP_EINVAL for a bad dtype or ndim, or SP_ENOMEM.
 */
int sp_npy_header_write(sp__buf_t *b, sp_dtype_t dtype, int ndim, const int64_t *shape);

/**
 * The file name (without ".npy") of an array that sat at path in a result:
 * "/" becomes "." ("items/0" -> "items.0"), "" becomes "_". Writes at most
 * outlen bytes, NUL-terminated.
 */
void sp_npy_file_base(const char *path, char *out, size_t outlen);

#endif

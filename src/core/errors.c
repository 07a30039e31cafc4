/*
 * errors.c - the error-code table (names, descriptions, categories) and the
 * functions that fill caller-supplied sp_error_t structs: texts live in one
 * heap block per error, bounded in size, released by sp_error_free().
 */
#include "errors.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STR_(x) #x
#define STR(x) STR_(x)

const char *sp_err_name(int code) {
  switch (code) {
    case 0: return "SP_OK";
#define X(name, value, cat, desc) \
  case value: return "SP_E" #name;
    SP_ERRNO_MAP(X)
#undef X
    default: return "SP_EUNKNOWN";
  }
}

const char *sp_strerror(int code) {
  switch (code) {
    case 0: return "success";
#define X(name, value, cat, desc) \
  case value: return desc;
    SP_ERRNO_MAP(X)
#undef X
    default: return "unknown error";
  }
}

sp_category_t sp_err_category(int code) {
  switch (code) {
    case 0: return SP_CAT_NONE;
#define X(name, value, cat, desc) \
  case value: return SP_CAT_##cat;
    SP_ERRNO_MAP(X)
#undef X
    default: return SP_CAT_INTERNAL;
  }
}

int sp__err_is_known(int code) {
  switch (code) {
#define X(name, value, cat, desc) \
  case value: return 1;
    SP_ERRNO_MAP(X)
#undef X
    default: return 0;
  }
}

const char *sp_category_name(sp_category_t cat) {
  switch (cat) {
    case SP_CAT_NONE: return "none";
    case SP_CAT_VALIDATION: return "validation";
    case SP_CAT_POOL: return "pool";
    case SP_CAT_TIMEOUT: return "timeout";
    case SP_CAT_WORKER: return "worker";
    case SP_CAT_PYTHON: return "python";
    case SP_CAT_PROTOCOL: return "protocol";
    case SP_CAT_INTERNAL: return "internal";
  }
  return "internal";
}

const char *sp_version(void) {
  return STR(SP_VERSION_MAJOR) "." STR(SP_VERSION_MINOR) "." STR(SP_VERSION_PATCH);
}

/* ---- sp_error_t ---------------------------------------------------------- */

/* Used when even the error's own block cannot be allocated. */
static const char k_nomem[] = "out of memory describing an error";

static void set_empty(sp_error_t *err) {
  err->message = err->python_type = err->traceback = "";
  err->priv_ = NULL;
}

void sp__error_clear(sp_error_t *err) {
  if (err == NULL) return;
  err->code = 0;
  err->category = SP_CAT_NONE;
  set_empty(err);
}

void sp_error_free(sp_error_t *err) {
  if (err == NULL) return;
  free(err->priv_);
  sp__error_clear(err);
}

/* Length of text kept: all of it, or its last `cap` bytes behind "...\n". */
static const char k_marker[] = "...\n";

static size_t kept_len(size_t len, size_t cap) {
  return len <= cap ? len : cap;
}

static char *put_tail(char *dst, const char *src, size_t len, size_t cap) {
  if (len > cap) {
    size_t keep = cap - (sizeof(k_marker) - 1);
    memcpy(dst, k_marker, sizeof(k_marker) - 1);
    memcpy(dst + sizeof(k_marker) - 1, src + (len - keep), keep);
    dst[cap] = '\0';
    return dst + cap + 1;
  }
  if (len > 0) memcpy(dst, src, len);
  dst[len] = '\0';
  return dst + len + 1;
}

/* Fills err from texts of the given lengths (not NUL-terminated). */
static int fill(sp_error_t *err, int code, const char *msg, size_t mlen, const char *type,
                size_t tlen, const char *tb, size_t blen) {
  if (err == NULL) return code;
  err->code = code;
  err->category = sp_err_category(code);
  set_empty(err);
  if (mlen == 0 && tlen == 0 && blen == 0) return code;
  size_t mk = kept_len(mlen, SP__ERR_MESSAGE_MAX), tk = kept_len(tlen, SP__ERR_TYPE_MAX);
  size_t bk = kept_len(blen, SP__ERR_TRACEBACK_MAX);
  char *block = malloc(mk + tk + bk + 3);
  if (block == NULL) {
    err->message = k_nomem;
    return code;
  }
  err->priv_ = block;
  /* The message keeps its beginning (it says what failed); a traceback its end. */
  memcpy(block, msg, mk);
  block[mk] = '\0';
  err->message = block;
  char *p = block + mk + 1;
  err->python_type = p;
  p = put_tail(p, type, tlen, SP__ERR_TYPE_MAX);
  err->traceback = p;
  put_tail(p, tb, blen, SP__ERR_TRACEBACK_MAX);
  return code;
}

int sp__error_setn(sp_error_t *err, int code, const char *msg, size_t mlen, const char *type,
                   size_t tlen, const char *tb, size_t blen) {
  return fill(err, code, msg ? msg : "", msg ? mlen : 0, type ? type : "", type ? tlen : 0,
              tb ? tb : "", tb ? blen : 0);
}

int sp_error_set(sp_error_t *err, int code, const char *message, const char *python_type,
                 const char *traceback) {
  return sp__error_setn(err, code, message, message ? strlen(message) : 0, python_type,
                        python_type ? strlen(python_type) : 0, traceback,
                        traceback ? strlen(traceback) : 0);
}

int sp_error_setf(sp_error_t *err, int code, const char *fmt, ...) {
  if (err == NULL) return code;
  char small[512];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(small, sizeof(small), fmt, ap);
  va_end(ap);
  if (n < 0) return fill(err, code, "", 0, "", 0, "", 0);
  if ((size_t)n < sizeof(small)) return fill(err, code, small, (size_t)n, "", 0, "", 0);
  size_t cap = (size_t)n < SP__ERR_MESSAGE_MAX ? (size_t)n : SP__ERR_MESSAGE_MAX;
  char *big = malloc(cap + 1);
  if (big == NULL) return fill(err, code, small, sizeof(small) - 1, "", 0, "", 0);
  va_start(ap, fmt);
  vsnprintf(big, cap + 1, fmt, ap);
  va_end(ap);
  fill(err, code, big, cap, "", 0, "", 0);
  free(big);
  return code;
}

int sp_error_copy(sp_error_t *dst, const sp_error_t *src) {
  if (dst == NULL) return src ? src->code : 0;
  if (src == NULL) {
    sp__error_clear(dst);
    return 0;
  }
  if (dst == src) return src->code;
  int rc = sp_error_set(dst, src->code, src->message, src->python_type, src->traceback);
  if (dst->message == k_nomem && src->message != k_nomem) {
    dst->code = SP_ENOMEM;
    dst->category = sp_err_category(SP_ENOMEM);
    return SP_ENOMEM;
  }
  dst->category = src->category;
  return rc;
}

void sp__error_move(sp_error_t *dst, sp_error_t *src) {
  if (dst == NULL || src == NULL || dst == src) return;
  *dst = *src;
  sp__error_clear(src);
}

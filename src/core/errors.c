/*
 * error.c - the error-code table (names, descriptions, categories) and the
 * helpers that fill caller-supplied sp_error_t structs.
 */
#include "errors.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

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

const char *sp_version(void) { return "0.1.0"; }

void sp__error_clear(sp_error_t *err) {
  if (err == NULL) return;
  err->code = 0;
  err->category = SP_CAT_NONE;
  err->message[0] = '\0';
  err->python_type[0] = '\0';
  err->traceback[0] = '\0';
}

int sp__error_set(sp_error_t *err, int code, const char *fmt, ...) {
  if (err == NULL) return code;
  sp__error_clear(err);
  err->code = code;
  err->category = sp_err_category(code);
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err->message, sizeof(err->message), fmt, ap);
  va_end(ap);
  return code;
}

void sp__error_copy(sp_error_t *dst, const sp_error_t *src) {
  if (dst == NULL || src == NULL || dst == src) return;
  memcpy(dst, src, sizeof(*dst));
}

void sp__copy_tail(char *dst, size_t cap, const char *src, size_t len) {
  static const char marker[] = "...\n";
  if (cap == 0) return;
  if (src == NULL) len = 0;
  if (len < cap) {
    if (len > 0) memcpy(dst, src, len);
    dst[len] = '\0';
    return;
  }
  size_t keep = cap - 1 - (sizeof(marker) - 1);
  memcpy(dst, marker, sizeof(marker) - 1);
  memcpy(dst + sizeof(marker) - 1, src + (len - keep), keep);
  dst[cap - 1] = '\0';
}

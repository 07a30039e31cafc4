/*
 * fuzz_upload.c - libFuzzer target for what `snakepit serve` reads from an
 * array upload: a multipart body (boundary "B") and every part as a .npy file,
 * and the whole input as a .npy file. Parts must lie inside the body; an
 * accepted .npy must describe exactly the bytes it has; every refusal says why.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "multipart.h"
#include "npy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_npy(const char *p, size_t n) {
  /* A copy of exactly n bytes, so ASan sees any read past them. */
  char *copy = malloc(n ? n : 1);
  if (copy == NULL) return;
  if (n) memcpy(copy, p, n);
  sp_npy_t a;
  char msg[256] = "";
  if (sp_npy_parse(copy, n, &a, msg, sizeof(msg)) == 0) {
    size_t want = sp_dtype_size(a.dtype);
    for (int i = 0; i < a.ndim; i++) want *= (size_t)a.shape[i];
    if (a.ndim < 0 || a.ndim > SP_MAX_NDIM || want != a.nbytes ||
        (char *)a.data + a.nbytes != copy + n)
      __builtin_trap();
  } else if (msg[0] == '\0') {
    __builtin_trap();
  }
  free(copy);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *body = malloc(size ? size : 1);
  if (body == NULL) return 0;
  if (size) memcpy(body, data, size);
  sp__part_t *parts = NULL;
  size_t n = 0;
  char msg[256] = "";
  if (sp__multipart_parse(body, size, "B", &parts, &n, msg, sizeof(msg)) == 0) {
    if (n > SP__MULTIPART_MAX_PARTS) __builtin_trap();
    for (size_t i = 0; i < n; i++) {
      if (parts[i].data < body || parts[i].data + parts[i].len > body + size) __builtin_trap();
      if (strnlen(parts[i].name, sizeof(parts[i].name)) == sizeof(parts[i].name)) __builtin_trap();
      check_npy(parts[i].data, parts[i].len);
    }
    free(parts);
  } else if (msg[0] == '\0' || parts != NULL) {
    __builtin_trap();
  }
  check_npy((const char *)data, size);
  free(body);
  return 0;
}

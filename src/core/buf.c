/*
 * buf.c - the growable byte buffer (buf.h). No I/O; capacity doubles from 256.
 */
#include "buf.h"

#include <stdlib.h>
#include <string.h>

int sp__buf_reserve(sp__buf_t *b, size_t extra) {
  if (b->cap - b->len >= extra) return 0;
  if (extra > SIZE_MAX / 2 - b->len) return -1;
  size_t ncap = b->cap ? b->cap : 256;
  while (ncap - b->len < extra) ncap *= 2;
  uint8_t *nd = realloc(b->data, ncap);
  if (nd == NULL) return -1;
  b->data = nd;
  b->cap = ncap;
  return 0;
}

int sp__buf_append(sp__buf_t *b, const void *p, size_t n) {
  if (sp__buf_reserve(b, n) != 0) return -1;
  if (n > 0) memcpy(b->data + b->len, p, n);
  b->len += n;
  return 0;
}

int sp__buf_append_str(sp__buf_t *b, const void *p, size_t n) {
  if (n == SIZE_MAX || sp__buf_reserve(b, n + 1) != 0) return -1;
  sp__buf_append(b, p, n);
  b->data[b->len] = '\0';
  return 0;
}

void sp__buf_consume(sp__buf_t *b, size_t n) {
  if (n >= b->len) {
    b->len = 0;
    return;
  }
  memmove(b->data, b->data + n, b->len - n);
  b->len -= n;
}

void sp__buf_shrink(sp__buf_t *b, size_t keep) {
  if (b->len == 0 && b->cap > keep) sp__buf_free(b);
}

void sp__buf_free(sp__buf_t *b) {
  free(b->data);
  b->data = NULL;
  b->len = b->cap = 0;
}

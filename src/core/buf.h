/*
 * buf.h - the growable byte buffer every part builds output in: frames in the
 * manager and the worker, HTTP bodies and CLI input in the front ends.
 */
#ifndef SP_CORE_BUF_H
#define SP_CORE_BUF_H

#include <stddef.h>
#include <stdint.h>

/** Growable byte buffer; zero-initialise to start empty. */
typedef struct sp__buf_s {
  uint8_t *data;
  size_t len;
  size_t cap;
} sp__buf_t;

/** Ensures room for `extra` more bytes. 0, or -1 when memory ran out (or the size overflows). */
int sp__buf_reserve(sp__buf_t *b, size_t extra);
/** Appends bytes. 0 or -1. */
int sp__buf_append(sp__buf_t *b, const void *p, size_t n);
/** Appends bytes and keeps a NUL after them (not counted in len), for text. 0 or -1. */
int sp__buf_append_str(sp__buf_t *b, const void *p, size_t n);
/** Drops the first n bytes. */
void sp__buf_consume(sp__buf_t *b, size_t n);
/** Releases the memory when more than keep bytes are allocated (after a large use). */
void sp__buf_shrink(sp__buf_t *b, size_t keep);
void sp__buf_free(sp__buf_t *b);

#endif /* SP_CORE_BUF_H */

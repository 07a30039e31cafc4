/*
 * fuzz_frame.c - libFuzzer target for the incremental frame decoder and CALL body
 * parser: arbitrary bytes, cut into arbitrary reads, must decode the same way.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "protocol.h"

/* Small, so the fuzzer reaches both the size limit and whole frames quickly. */
#define MAX_BODY 4096

/* What one decoded frame looked like; the body itself is gone once the decoder moves on. */
typedef struct {
  uint8_t type;
  uint8_t flags;
  uint32_t length;
  uint64_t id;
  uint64_t body_hash;
  int call_rc;
} record_t;

typedef struct {
  record_t *frames;
  size_t count;
  int rc; /* 0, or the negative code that ended the stream */
  size_t leftover;
} outcome_t;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* FNV-1a: reading every body byte also lets ASan check that the body is in bounds. */
static uint64_t hash_bytes(const uint8_t *p, size_t n) {
  uint64_t h = UINT64_C(14695981039346656037);
  for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * UINT64_C(1099511628211);
  return h;
}

/* Checks one frame as the worker and manager would use it, and records it. */
static void take_frame(const sp__decoder_t *d, const sp__frame_t *f, record_t *rec) {
  uint32_t timeout_ms = 0;
  const char *tool = NULL;
  const char *args = NULL;
  size_t tool_len = 0;
  size_t args_len = 0;
  if (f->type == 0 || f->type > SP__FRAME_TYPE_MAX || f->length > MAX_BODY) __builtin_trap();
  if (f->body < d->buf || f->body + f->length > d->buf + d->end) __builtin_trap();
  rec->type = f->type;
  rec->flags = f->flags;
  rec->length = f->length;
  rec->id = f->id;
  rec->body_hash = hash_bytes(f->body, f->length);
  rec->call_rc = 0;
  if (f->type != SP__FRAME_CALL) return;
  rec->call_rc =
      sp__call_body_parse(f->body, f->length, &timeout_ms, &tool, &tool_len, &args, &args_len);
  if (rec->call_rc != 0) {
    if (rec->call_rc != SP_EPROTOCOL) __builtin_trap();
    return;
  }
  /* The parts must tile the body exactly: prefix, a non-empty tool name, then args. */
  if (tool_len == 0 || (const uint8_t *)tool != f->body + SP__CALL_PREFIX_SIZE) __builtin_trap();
  if (SP__CALL_PREFIX_SIZE + tool_len + args_len != f->length) __builtin_trap();
  if (args != tool + tool_len) __builtin_trap();
  rec->body_hash ^= hash_bytes((const uint8_t *)tool, tool_len) + timeout_ms;
}

/*
 * Feeds data through a fresh decoder in reads whose sizes come from seed (0: one
 * read of everything), draining whole frames after every read as the event loop does.
 */
static void decode(const uint8_t *data, size_t size, unsigned seed, outcome_t *out) {
  sp__decoder_t d;
  sp__frame_t f;
  sp_error_t err;
  uint32_t state = seed * 2654435761u + 1u;
  size_t pos = 0;
  sp__decoder_init(&d, MAX_BODY);
  while (pos < size && out->rc == 0) {
    uint8_t *dst = NULL;
    size_t avail = 0;
    size_t chunk = size - pos;
    size_t want = chunk;
    if (seed != 0) {
      state = state * 1103515245u + 12345u;
      chunk = 1 + (state >> 16) % (seed + 1u);
      if (chunk > size - pos) chunk = size - pos;
      /*
       * Like the event loop, often ask for more room than the read fills (worker.c
       * asks for 64 KiB): that is what drives the buffer's compaction and growth.
       */
      switch ((state >> 8) & 3u) {
        case 0: want = chunk; break;
        case 1: want = 65536; break;
        default: want = chunk + (state >> 4) % 4096; break;
      }
    }
    if (sp__decoder_space(&d, want, &dst, &avail) != 0 || avail < want) __builtin_trap();
    memcpy(dst, data + pos, chunk);
    sp__decoder_commit(&d, chunk);
    pos += chunk;
    for (;;) {
      int rc = sp__decoder_next(&d, &f, &err);
      if (rc == 0) break;
      if (rc < 0) {
        /* A failure must explain itself, and the stream is not read any further. */
        if (err.message[0] == '\0' || memchr(err.message, '\0', sizeof(err.message)) == NULL) {
          __builtin_trap();
        }
        out->rc = rc;
        break;
      }
      take_frame(&d, &f, &out->frames[out->count++]);
    }
  }
  out->leftover = d.end - d.start;
  sp__decoder_free(&d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  outcome_t chunked = {NULL, 0, 0, 0};
  outcome_t whole = {NULL, 0, 0, 0};
  size_t max_frames = 0;
  if (size == 0) return 0;
  /* Every frame takes at least a header, which bounds how many can be recorded. */
  max_frames = size / SP__FRAME_HEADER_SIZE + 1;
  chunked.frames = calloc(max_frames, sizeof(record_t));
  whole.frames = calloc(max_frames, sizeof(record_t));
  if (chunked.frames == NULL || whole.frames == NULL) goto cleanup;
  decode(data + 1, size - 1, data[0], &chunked);
  decode(data + 1, size - 1, 0, &whole);
  /* How the bytes were split into reads must never change what was decoded. */
  if (chunked.count != whole.count || chunked.rc != whole.rc) __builtin_trap();
  if (chunked.rc == 0 && chunked.leftover != whole.leftover) __builtin_trap();
  for (size_t i = 0; i < whole.count; i++) {
    const record_t *a = &chunked.frames[i];
    const record_t *b = &whole.frames[i];
    if (a->type != b->type || a->flags != b->flags || a->length != b->length || a->id != b->id ||
        a->body_hash != b->body_hash || a->call_rc != b->call_rc) {
      __builtin_trap();
    }
  }
cleanup:
  free(chunked.frames);
  free(whole.frames);
  return 0;
}

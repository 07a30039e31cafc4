/*
 * fuzz_frame.c - libFuzzer target for the incremental frame decoder and every
 * body decoder (CALL, ERROR, PING, PONG, array tables): arbitrary bytes, cut into arbitrary
 * reads, must decode the same way, and each body decoder must stay inside the
 * body, tile it exactly when it accepts it, and re-encode to the same bytes.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "errors.h"
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
  int error_rc;
  int pong_rc;
  int arrays_rc;
  int hostcall_rc;
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

/* CALL: the parts tile the body, and encoding them again gives the same bytes. */
static int check_call(const uint8_t *body, size_t len, uint64_t *hash) {
  sp__call_view_t v;
  int rc = sp__call_body_parse(body, len, 0, &v);
  if (rc != 0) {
    if (rc != SP_EPROTOCOL) __builtin_trap();
    return rc;
  }
  if (v.tool_len == 0 || (const uint8_t *)v.tool != body + SP__CALL_PREFIX_SIZE) __builtin_trap();
  if (SP__CALL_PREFIX_SIZE + v.tool_len + v.args_len != len) __builtin_trap();
  if (v.args != v.tool + v.tool_len) __builtin_trap();
  size_t size = sp__call_frame_size(v.tool_len, v.args_len, 0);
  uint8_t *frame = malloc(size);
  if (frame == NULL) return rc;
  sp__call_frame_write(frame, 0, v.tool, v.tool_len, v.args, v.args_len, 0);
  sp__call_frame_dispatch(frame, 1, v.timeout_ms);
  if (memcmp(frame + SP__FRAME_HEADER_SIZE, body, len) != 0) __builtin_trap();
  size_t tl;
  if (sp__call_frame_tool(frame, &tl) != (const char *)frame + SP__FRAME_HEADER_SIZE +
                                             SP__CALL_PREFIX_SIZE ||
      tl != v.tool_len)
    __builtin_trap();
  free(frame);
  *hash ^= hash_bytes((const uint8_t *)v.tool, v.tool_len) + v.timeout_ms;
  return 0;
}

/* ERROR: accepted only with a known kind and code; re-encodes to the same bytes. */
static int check_error(const uint8_t *body, size_t len) {
  sp__error_view_t v;
  int rc = sp__error_body_parse(body, len, &v);
  if (rc != 0) {
    if (rc != SP_EPROTOCOL) __builtin_trap();
    return rc;
  }
  if (v.code >= 0 || sp_err_name(v.code)[3] == 'U') __builtin_trap(); /* SP_EUNKNOWN */
  if ((const uint8_t *)v.text != body + SP__ERROR_PREFIX_SIZE ||
      v.text_len != len - SP__ERROR_PREFIX_SIZE)
    __builtin_trap();
  sp__buf_t b = {0};
  if (sp__buf_append_error(&b, 1, (sp__error_kind_t)v.kind, v.code, v.text, v.text_len) == 0 &&
      (b.len != SP__FRAME_HEADER_SIZE + len || memcmp(b.data + SP__FRAME_HEADER_SIZE, body, len)))
    __builtin_trap();
  sp__buf_free(&b);
  return 0;
}

/* An arrays part (CALL and RESULT with flag ARRAYS): every accepted descriptor
 * is consistent and inside the part or the region. */
#define FUZZ_REGION (UINT64_C(1) << 30)

static int check_arrays(const uint8_t *body, size_t len) {
  static sp__array_desc_t d[64];
  size_t n = 0;
  const uint8_t *inline_base = NULL;
  int rc = sp__arrays_parse(body, len, FUZZ_REGION, d, 64, &n, &inline_base);
  if (rc != 0) {
    if (rc != SP_EPROTOCOL || n != 0) __builtin_trap();
    return rc;
  }
  if (inline_base < body || inline_base > body + len) __builtin_trap();
  size_t inline_len = (size_t)(body + len - inline_base);
  for (size_t i = 0; i < n; i++) {
    if (sp__array_nbytes(d[i].dtype, d[i].ndim, d[i].shape) != (int64_t)d[i].nbytes) __builtin_trap();
    if ((const uint8_t *)d[i].name < body || (const uint8_t *)d[i].name + d[i].name_len > inline_base)
      __builtin_trap();
    if (d[i].where == SP__ARR_INLINE) {
      if (d[i].offset + d[i].nbytes > inline_len) __builtin_trap();
      if (d[i].nbytes > 0) (void)hash_bytes(inline_base + d[i].offset, (size_t)d[i].nbytes);
    } else if (d[i].offset < SP__SHM_DATA_START || d[i].offset + d[i].nbytes > FUZZ_REGION) {
      __builtin_trap();
    }
  }
  /* The same part as a RESULT: its JSON length prefix must stay inside. */
  sp__result_view_t v;
  if (sp__result_body_parse(body, len, SP__FLAG_ARRAYS, &v) == 0 &&
      ((const uint8_t *)v.json + v.json_len != v.arrays || v.arrays + v.arrays_len != body + len))
    __builtin_trap();
  return 0;
}

/* PING and PONG: fixed prefixes; what was read encodes back to the prefix. */
static int check_pong(const uint8_t *body, size_t len) {
  sp__pong_t p;
  int rc = sp__pong_body_parse(body, len, &p);
  if (rc != 0) {
    if (rc != SP_EPROTOCOL || len >= SP__PONG_BODY_SIZE) __builtin_trap();
  } else {
    sp__buf_t b = {0};
    /* The GIL byte is a flag: any non-zero value reads (and encodes back) as 1. */
    if (sp__buf_append_pong(&b, 1, &p) == 0 &&
        (memcmp(b.data + SP__FRAME_HEADER_SIZE, body, SP__PONG_BODY_SIZE - 1) != 0 ||
         b.data[SP__FRAME_HEADER_SIZE + SP__PONG_BODY_SIZE - 1] != (body[SP__PONG_BODY_SIZE - 1] != 0)))
      __builtin_trap();
    sp__buf_free(&b);
  }
  sp__pong_t ping;
  int prc = sp__ping_body_parse(body, len, &ping);
  if ((prc == 0) != (len >= SP__PING_BODY_SIZE)) __builtin_trap();
  /* A session (CALL flag SESSION) lies inside the body; SESSION_END is 1..128 bytes. */
  sp__call_view_t v;
  if (sp__call_body_parse(body, len, SP__FLAG_SESSION | SP__FLAG_ARRAYS, &v) == 0 &&
      (v.session_len == 0 || v.session_len > SP__SESSION_ID_MAX ||
       (const uint8_t *)v.session < body || (const uint8_t *)v.session + v.session_len > body + len ||
       hash_bytes((const uint8_t *)v.session, v.session_len) == 0))
    __builtin_trap();
  const char *sid;
  size_t sid_len;
  if ((sp__session_end_body_parse(body, len, &sid, &sid_len) == 0) !=
      (len >= 1 && len <= SP__SESSION_ID_MAX))
    __builtin_trap();
  /* A credit (CHUNK M->W) is exactly its 4 bytes. */
  uint32_t credit;
  if ((sp__credit_body_parse(body, len, &credit) == 0) != (len == SP__CREDIT_BODY_SIZE))
    __builtin_trap();
  return rc;
}

/* HOSTCALL and HOSTREPLY: what decodes stays inside the body and encodes back to it. */
static int check_hostcall(const uint8_t *body, size_t len) {
  sp__hostcall_view_t v;
  int rc = sp__hostcall_body_parse(body, len, &v);
  if (rc == 0) {
    if ((const uint8_t *)v.args + v.args_len != body + len) __builtin_trap();
    sp__buf_t b = {0};
    /* Byte 9 is padding the decoder ignores; everything else encodes back. */
    const uint8_t *enc = b.data + SP__FRAME_HEADER_SIZE;
    if (sp__buf_append_hostcall(&b, 1, &v) == 0 &&
        (b.len != SP__FRAME_HEADER_SIZE + len || memcmp(enc, body, 9) != 0 ||
         memcmp(enc + 10, body + 10, len - 10) != 0))
      __builtin_trap();
    sp__buf_free(&b);
  } else if (rc != SP_EPROTOCOL) {
    __builtin_trap();
  }
  int code;
  const char *text;
  size_t n;
  if (sp__hostreply_body_parse(body, len, &code, &text, &n) == 0 &&
      ((const uint8_t *)text + n != body + len || code > 0))
    __builtin_trap();
  return rc;
}

/*
 * Checks one frame as the worker and manager would use it, and records it.
 * Every body decoder runs on every body: a peer can send any bytes under any
 * type, so none of them may read outside the body whatever it is given.
 */
static void take_frame(const sp__decoder_t *d, const sp__frame_t *f, record_t *rec) {
  if (f->type == 0 || f->type > SP__FRAME_TYPE_MAX || f->length > MAX_BODY) __builtin_trap();
  if (f->body < d->buf || f->body + f->length > d->buf + d->end) __builtin_trap();
  rec->type = f->type;
  rec->flags = f->flags;
  rec->length = f->length;
  rec->id = f->id;
  rec->body_hash = hash_bytes(f->body, f->length);
  /* Copied to a buffer of exactly its size, so ASan sees any read past the end. */
  uint8_t *body = malloc(f->length ? f->length : 1);
  if (body == NULL) return;
  memcpy(body, f->body, f->length);
  rec->call_rc = check_call(body, f->length, &rec->body_hash);
  rec->error_rc = check_error(body, f->length);
  rec->pong_rc = check_pong(body, f->length);
  rec->arrays_rc = check_arrays(body, f->length);
  rec->hostcall_rc = check_hostcall(body, f->length);
  free(body);
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
  sp__error_clear(&err);
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
        if (err.message == NULL || err.message[0] == '\0') __builtin_trap();
        sp_error_free(&err);
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
        a->body_hash != b->body_hash || a->call_rc != b->call_rc || a->error_rc != b->error_rc ||
        a->pong_rc != b->pong_rc || a->arrays_rc != b->arrays_rc ||
        a->hostcall_rc != b->hostcall_rc) {
      __builtin_trap();
    }
  }
cleanup:
  free(chunked.frames);
  free(whole.frames);
  return 0;
}

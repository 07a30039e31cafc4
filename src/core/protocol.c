/*
 * protocol.c - every frame's encoder and decoder and the incremental frame
 * decoder (layouts in protocol.h). Shared by libsnakepit and snakepit-worker;
 * no I/O happens here.
 */
#include "protocol.h"

#include <stdlib.h>
#include <string.h>

#include "errors.h"

static const char *const type_names[] = {
    "UNKNOWN", "HELLO", "CALL",  "RESULT", "ERROR",   "CHUNK",
    "CANCEL",  "PING",  "PONG",  "STATS",  "SHUTDOWN"};

const char *sp__frame_type_name(unsigned type) {
  return type <= SP__FRAME_TYPE_MAX ? type_names[type] : type_names[0];
}

void sp__frame_header_write(uint8_t *hdr, unsigned type, unsigned flags, uint32_t length,
                            uint64_t id) {
  hdr[0] = SP__FRAME_MAGIC;
  hdr[1] = SP__PROTOCOL_VERSION;
  hdr[2] = (uint8_t)type;
  hdr[3] = (uint8_t)flags;
  sp__put_u32(hdr + 4, length);
  sp__put_u64(hdr + 8, id);
}

int sp__frame_header_parse(const uint8_t *hdr, size_t max_body, sp__frame_t *out,
                           sp_error_t *err) {
  if (hdr[0] != SP__FRAME_MAGIC)
    return sp__error_set(err, SP_EPROTOCOL, "bad frame header: magic byte 0x%02x, expected 0x%02x",
                         hdr[0], SP__FRAME_MAGIC);
  if (hdr[1] != SP__PROTOCOL_VERSION)
    return sp__error_set(err, SP_EPROTOCOL,
                         "protocol version mismatch: peer speaks version %u, this side %u", hdr[1],
                         SP__PROTOCOL_VERSION);
  if (hdr[2] == 0 || hdr[2] > SP__FRAME_TYPE_MAX)
    return sp__error_set(err, SP_EPROTOCOL, "bad frame header: unknown frame type %u", hdr[2]);
  out->type = hdr[2];
  out->flags = hdr[3];
  out->length = sp__get_u32(hdr + 4);
  out->id = sp__get_u64(hdr + 8);
  out->body = NULL;
  if (out->length > max_body)
    return sp__error_set(err, SP_ETOOLARGE,
                         "%s frame of %u bytes exceeds the frame size limit of %zu bytes",
                         sp__frame_type_name(out->type), out->length, max_body);
  return 0;
}

/* Reserves a frame of `body` bytes and writes its header; the body follows at *p. */
static int start_frame(sp__buf_t *b, unsigned type, uint64_t id, size_t body, uint8_t **p) {
  if (body > UINT32_MAX || sp__buf_reserve(b, SP__FRAME_HEADER_SIZE + body) != 0)
    return SP_ENOMEM;
  sp__frame_header_write(b->data + b->len, type, 0, (uint32_t)body, id);
  *p = b->data + b->len + SP__FRAME_HEADER_SIZE;
  b->len += SP__FRAME_HEADER_SIZE + body;
  return 0;
}

int sp__buf_append_frame(sp__buf_t *b, unsigned type, uint64_t id, const void *body, size_t len) {
  uint8_t *p;
  if (start_frame(b, type, id, len, &p) != 0) return SP_ENOMEM;
  if (len > 0) memcpy(p, body, len);
  return 0;
}

int sp__buf_append_text_frame(sp__buf_t *b, unsigned type, uint64_t id, const void *text,
                              size_t len) {
  return sp__buf_append_frame(b, type, id, text, len);
}

/* ---- CALL ---------------------------------------------------------------- */

size_t sp__call_frame_size(size_t tool_len, size_t args_len) {
  return SP__FRAME_HEADER_SIZE + SP__CALL_PREFIX_SIZE + tool_len + args_len;
}

void sp__call_frame_write(uint8_t *frame, const char *tool, size_t tool_len, const char *args,
                          size_t args_len) {
  size_t body = SP__CALL_PREFIX_SIZE + tool_len + args_len;
  sp__frame_header_write(frame, SP__FRAME_CALL, 0, (uint32_t)body, 0);
  uint8_t *p = frame + SP__FRAME_HEADER_SIZE;
  sp__put_u32(p, 0);
  sp__put_u16(p + 4, (uint16_t)tool_len);
  sp__put_u32(p + 6, (uint32_t)args_len);
  memcpy(p + SP__CALL_PREFIX_SIZE, tool, tool_len);
  memcpy(p + SP__CALL_PREFIX_SIZE + tool_len, args, args_len);
}

void sp__call_frame_dispatch(uint8_t *frame, uint64_t id, uint32_t timeout_ms) {
  sp__put_u64(frame + 8, id);
  sp__put_u32(frame + SP__FRAME_HEADER_SIZE, timeout_ms);
}

const char *sp__call_frame_tool(const uint8_t *frame, size_t *tool_len) {
  *tool_len = sp__get_u16(frame + SP__FRAME_HEADER_SIZE + 4);
  return (const char *)frame + SP__FRAME_HEADER_SIZE + SP__CALL_PREFIX_SIZE;
}

int sp__call_body_parse(const uint8_t *body, size_t len, sp__call_view_t *out) {
  if (len < SP__CALL_PREFIX_SIZE) return SP_EPROTOCOL;
  size_t tl = sp__get_u16(body + 4);
  size_t al = sp__get_u32(body + 6);
  if (tl == 0 || SP__CALL_PREFIX_SIZE + tl + al != len) return SP_EPROTOCOL;
  out->timeout_ms = sp__get_u32(body);
  out->tool = (const char *)body + SP__CALL_PREFIX_SIZE;
  out->tool_len = tl;
  out->args = out->tool + tl;
  out->args_len = al;
  return 0;
}

/* ---- ERROR --------------------------------------------------------------- */

int sp__buf_append_error(sp__buf_t *b, uint64_t id, sp__error_kind_t kind, int code,
                         const void *text, size_t len) {
  uint8_t *p;
  if (start_frame(b, SP__FRAME_ERROR, id, SP__ERROR_PREFIX_SIZE + len, &p) != 0) return SP_ENOMEM;
  p[0] = (uint8_t)kind;
  p[1] = (uint8_t)(code < 0 && code > -256 ? -code : -SP_EPROTOCOL);
  if (len > 0) memcpy(p + SP__ERROR_PREFIX_SIZE, text, len);
  return 0;
}

int sp__error_body_parse(const uint8_t *body, size_t len, sp__error_view_t *out) {
  if (len < SP__ERROR_PREFIX_SIZE) return SP_EPROTOCOL;
  int kind = body[0], code = -(int)body[1];
  if (kind < SP__ERRKIND_VALIDATION || kind > SP__ERRKIND_STARTUP || !sp__err_is_known(code))
    return SP_EPROTOCOL;
  out->kind = kind;
  out->code = code;
  out->text = (const char *)body + SP__ERROR_PREFIX_SIZE;
  out->text_len = len - SP__ERROR_PREFIX_SIZE;
  return 0;
}

/* ---- PING / PONG --------------------------------------------------------- */

int sp__buf_append_ping(sp__buf_t *b, int64_t sent_ms) {
  uint8_t *p;
  if (start_frame(b, SP__FRAME_PING, 0, SP__PING_BODY_SIZE, &p) != 0) return SP_ENOMEM;
  sp__put_u64(p, (uint64_t)sent_ms);
  return 0;
}

int sp__ping_body_parse(const uint8_t *body, size_t len, sp__pong_t *out) {
  memset(out, 0, sizeof(*out));
  if (len < SP__PING_BODY_SIZE) return SP_EPROTOCOL;
  out->sent_ms = (int64_t)sp__get_u64(body);
  return 0;
}

int sp__buf_append_pong(sp__buf_t *b, uint64_t id, const sp__pong_t *pong) {
  uint8_t *p;
  if (start_frame(b, SP__FRAME_PONG, id, SP__PONG_BODY_SIZE, &p) != 0) return SP_ENOMEM;
  sp__put_u64(p, (uint64_t)pong->sent_ms);
  sp__put_u64(p + 8, pong->attach_wait_ns);
  sp__put_u64(p + 16, pong->calls_done);
  return 0;
}

int sp__pong_body_parse(const uint8_t *body, size_t len, sp__pong_t *out) {
  memset(out, 0, sizeof(*out));
  if (len < SP__PONG_BODY_SIZE) return SP_EPROTOCOL;
  out->sent_ms = (int64_t)sp__get_u64(body);
  out->attach_wait_ns = sp__get_u64(body + 8);
  out->calls_done = sp__get_u64(body + 16);
  return 0;
}

/* ---- the incremental decoder ---------------------------------------------- */

void sp__decoder_init(sp__decoder_t *d, size_t max_body) {
  memset(d, 0, sizeof(*d));
  d->max_body = max_body;
}

void sp__decoder_free(sp__decoder_t *d) {
  free(d->buf);
  d->buf = NULL;
  d->start = d->end = d->cap = 0;
}

int sp__decoder_space(sp__decoder_t *d, size_t want, uint8_t **p, size_t *avail) {
  if (d->start == d->end) d->start = d->end = 0;
  if (d->cap - d->end < want && d->start > 0) {
    /* Compact: unconsumed bytes move to the front so the buffer stays bounded. */
    memmove(d->buf, d->buf + d->start, d->end - d->start);
    d->end -= d->start;
    d->start = 0;
  }
  if (d->cap - d->end < want) {
    size_t ncap = d->cap ? d->cap : 4096;
    while (ncap - d->end < want) ncap *= 2;
    uint8_t *nb = realloc(d->buf, ncap);
    if (nb == NULL) return SP_ENOMEM;
    d->buf = nb;
    d->cap = ncap;
  }
  *p = d->buf + d->end;
  *avail = d->cap - d->end;
  return 0;
}

void sp__decoder_commit(sp__decoder_t *d, size_t n) { d->end += n; }

int sp__decoder_next(sp__decoder_t *d, sp__frame_t *f, sp_error_t *err) {
  size_t have = d->end - d->start;
  if (have < SP__FRAME_HEADER_SIZE) return 0;
  int rc = sp__frame_header_parse(d->buf + d->start, d->max_body, f, err);
  if (rc != 0) return rc;
  if (have - SP__FRAME_HEADER_SIZE < f->length) return 0;
  f->body = d->buf + d->start + SP__FRAME_HEADER_SIZE;
  d->start += SP__FRAME_HEADER_SIZE + f->length;
  return 1;
}

void sp__decoder_shrink(sp__decoder_t *d, size_t keep) {
  if (d->cap <= keep) return;
  size_t have = d->end - d->start;
  if (have == 0) {
    sp__decoder_free(d);
    return;
  }
  /* The start of the next frame came in with the end of a large one (the peer
   * writes back to back): move it to a buffer of its own size, unless the
   * frame it starts is itself larger than keep. */
  size_t need = have;
  if (have >= SP__FRAME_HEADER_SIZE) {
    sp__frame_t f;
    sp_error_t err = SP_ERROR_INIT;
    if (sp__frame_header_parse(d->buf + d->start, d->max_body, &f, &err) != 0) {
      sp_error_free(&err);
      return; /* the next read reports it */
    }
    need = SP__FRAME_HEADER_SIZE + (size_t)f.length;
  }
  if (need > keep) return;
  size_t cap = 4096;
  while (cap < need) cap *= 2;
  uint8_t *nb = malloc(cap);
  if (nb == NULL) return;
  memcpy(nb, d->buf + d->start, have);
  free(d->buf);
  d->buf = nb;
  d->cap = cap;
  d->start = 0;
  d->end = have;
}

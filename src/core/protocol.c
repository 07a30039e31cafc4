/*
 * protocol.c - frame header encoding, the incremental frame decoder and the byte
 * buffer. Shared by libsnakepit and snakepit-worker; no I/O happens here.
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

static void put_u32(uint8_t *p, uint32_t v) {
  for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static void put_u64(uint8_t *p, uint64_t v) {
  for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get_u32(const uint8_t *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get_u64(const uint8_t *p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; i--) v = v << 8 | p[i];
  return v;
}

void sp__frame_header_write(uint8_t *hdr, unsigned type, unsigned flags, uint32_t length,
                            uint64_t id) {
  hdr[0] = SP__FRAME_MAGIC;
  hdr[1] = SP__PROTOCOL_VERSION;
  hdr[2] = (uint8_t)type;
  hdr[3] = (uint8_t)flags;
  put_u32(hdr + 4, length);
  put_u64(hdr + 8, id);
}

void sp__frame_set_id(uint8_t *hdr, uint64_t id) { put_u64(hdr + 8, id); }

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
  out->length = get_u32(hdr + 4);
  out->id = get_u64(hdr + 8);
  out->body = NULL;
  if (out->length > max_body)
    return sp__error_set(err, SP_ETOOLARGE,
                         "%s frame of %u bytes exceeds the frame size limit of %zu bytes",
                         sp__frame_type_name(out->type), out->length, max_body);
  return 0;
}

int sp__call_body_parse(const uint8_t *body, size_t len, uint32_t *timeout_ms, const char **tool,
                        size_t *tool_len, const char **args, size_t *args_len) {
  if (len < SP__CALL_PREFIX_SIZE) return SP_EPROTOCOL;
  uint32_t t = get_u32(body);
  size_t tl = (size_t)body[4] | (size_t)body[5] << 8;
  if (tl == 0 || SP__CALL_PREFIX_SIZE + tl > len) return SP_EPROTOCOL;
  *timeout_ms = t;
  *tool = (const char *)body + SP__CALL_PREFIX_SIZE;
  *tool_len = tl;
  *args = *tool + tl;
  *args_len = len - SP__CALL_PREFIX_SIZE - tl;
  return 0;
}

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

int sp__buf_reserve(sp__buf_t *b, size_t extra) {
  if (b->cap - b->len >= extra) return 0;
  size_t ncap = b->cap ? b->cap : 256;
  while (ncap - b->len < extra) ncap *= 2;
  uint8_t *nd = realloc(b->data, ncap);
  if (nd == NULL) return SP_ENOMEM;
  b->data = nd;
  b->cap = ncap;
  return 0;
}

int sp__buf_append(sp__buf_t *b, const void *p, size_t n) {
  if (sp__buf_reserve(b, n) != 0) return SP_ENOMEM;
  if (n > 0) memcpy(b->data + b->len, p, n);
  b->len += n;
  return 0;
}

int sp__buf_append_frame(sp__buf_t *b, unsigned type, unsigned flags, uint64_t id,
                         const void *body, size_t len) {
  if (sp__buf_reserve(b, SP__FRAME_HEADER_SIZE + len) != 0) return SP_ENOMEM;
  sp__frame_header_write(b->data + b->len, type, flags, (uint32_t)len, id);
  b->len += SP__FRAME_HEADER_SIZE;
  return sp__buf_append(b, body, len);
}

int sp__buf_append_kind_frame(sp__buf_t *b, unsigned type, uint64_t id, int kind, const void *text,
                              size_t len) {
  size_t body = len + (kind ? 1 : 0);
  if (sp__buf_reserve(b, SP__FRAME_HEADER_SIZE + body) != 0) return SP_ENOMEM;
  sp__frame_header_write(b->data + b->len, type, 0, (uint32_t)body, id);
  b->len += SP__FRAME_HEADER_SIZE;
  if (kind) b->data[b->len++] = (uint8_t)kind;
  return sp__buf_append(b, text, len);
}

void sp__buf_consume(sp__buf_t *b, size_t n) {
  if (n >= b->len) {
    b->len = 0;
    return;
  }
  memmove(b->data, b->data + n, b->len - n);
  b->len -= n;
}

void sp__buf_free(sp__buf_t *b) {
  free(b->data);
  b->data = NULL;
  b->len = b->cap = 0;
}

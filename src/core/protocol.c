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
    "CANCEL",  "PING",  "PONG",  "STATS",  "SHUTDOWN", "SESSION_END",
    "HOSTCALL", "HOSTREPLY"};

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

size_t sp__call_frame_size(size_t tool_len, size_t args_len, size_t extra) {
  return SP__FRAME_HEADER_SIZE + SP__CALL_PREFIX_SIZE + tool_len + args_len + extra;
}

uint8_t *sp__call_frame_write(uint8_t *frame, unsigned flags, const char *tool, size_t tool_len,
                              const char *args, size_t args_len, size_t extra) {
  size_t body = SP__CALL_PREFIX_SIZE + tool_len + args_len + extra;
  sp__frame_header_write(frame, SP__FRAME_CALL, flags, (uint32_t)body, 0);
  uint8_t *p = frame + SP__FRAME_HEADER_SIZE;
  sp__put_u32(p, 0);
  sp__put_u16(p + 4, (uint16_t)tool_len);
  sp__put_u32(p + 6, (uint32_t)args_len);
  memcpy(p + SP__CALL_PREFIX_SIZE, tool, tool_len);
  memcpy(p + SP__CALL_PREFIX_SIZE + tool_len, args, args_len);
  return p + SP__CALL_PREFIX_SIZE + tool_len + args_len;
}

void sp__call_frame_dispatch(uint8_t *frame, uint64_t id, uint32_t timeout_ms) {
  sp__put_u64(frame + 8, id);
  sp__put_u32(frame + SP__FRAME_HEADER_SIZE, timeout_ms);
}

const char *sp__call_frame_tool(const uint8_t *frame, size_t *tool_len) {
  *tool_len = sp__get_u16(frame + SP__FRAME_HEADER_SIZE + 4);
  return (const char *)frame + SP__FRAME_HEADER_SIZE + SP__CALL_PREFIX_SIZE;
}

int sp__call_body_parse(const uint8_t *body, size_t len, unsigned flags, sp__call_view_t *out) {
  if (len < SP__CALL_PREFIX_SIZE) return SP_EPROTOCOL;
  size_t tl = sp__get_u16(body + 4);
  size_t al = sp__get_u32(body + 6);
  size_t used = SP__CALL_PREFIX_SIZE + tl + al;
  if (tl == 0 || used > len) return SP_EPROTOCOL;
  out->session = NULL;
  out->session_len = 0;
  out->session_flags = 0;
  if (flags & SP__FLAG_SESSION) {
    if (len - used < SP__SESSION_PREFIX_SIZE) return SP_EPROTOCOL;
    size_t sl = sp__get_u16(body + used);
    if (sl == 0 || sl > SP__SESSION_ID_MAX || len - used - SP__SESSION_PREFIX_SIZE < sl)
      return SP_EPROTOCOL;
    out->session_flags = body[used + 2];
    out->session = (const char *)body + used + SP__SESSION_PREFIX_SIZE;
    out->session_len = sl;
    used += SP__SESSION_PREFIX_SIZE + sl;
  }
  if (!(flags & SP__FLAG_ARRAYS) && used != len) return SP_EPROTOCOL;
  out->timeout_ms = sp__get_u32(body);
  out->tool = (const char *)body + SP__CALL_PREFIX_SIZE;
  out->tool_len = tl;
  out->args = out->tool + tl;
  out->args_len = al;
  out->arrays = flags & SP__FLAG_ARRAYS ? body + used : NULL;
  out->arrays_len = flags & SP__FLAG_ARRAYS ? len - used : 0;
  return 0;
}

/* ---- sessions ------------------------------------------------------------ */

size_t sp__call_session_size(size_t len) { return SP__SESSION_PREFIX_SIZE + len; }

uint8_t *sp__call_session_write(uint8_t *p, const char *id, size_t len) {
  sp__put_u16(p, (uint16_t)len);
  p[2] = 0;
  memcpy(p + SP__SESSION_PREFIX_SIZE, id, len);
  return p + SP__SESSION_PREFIX_SIZE + len;
}

void sp__call_frame_session_flags(uint8_t *frame, unsigned session_flags) {
  const uint8_t *prefix = frame + SP__FRAME_HEADER_SIZE;
  size_t at = SP__FRAME_HEADER_SIZE + SP__CALL_PREFIX_SIZE + sp__get_u16(prefix + 4) +
              sp__get_u32(prefix + 6);
  frame[at + 2] = (uint8_t)session_flags;
}

int sp__buf_append_session_end(sp__buf_t *b, const char *id, size_t len) {
  return sp__buf_append_frame(b, SP__FRAME_SESSION_END, 0, id, len);
}

int sp__session_end_body_parse(const uint8_t *body, size_t len, const char **id,
                               size_t *id_len) {
  if (len == 0 || len > SP__SESSION_ID_MAX) return SP_EPROTOCOL;
  *id = (const char *)body;
  *id_len = len;
  return 0;
}

/* ---- arrays -------------------------------------------------------------- */

#define ARRAY_ENTRY_FIXED 24u /* name_len, dtype, ndim, where, pad, offset, nbytes */

static const struct {
  const char *name;
  size_t size;
} dtypes[] = {
    [SP_DTYPE_BOOL] = {"bool", 1},         [SP_DTYPE_INT8] = {"int8", 1},
    [SP_DTYPE_INT16] = {"int16", 2},       [SP_DTYPE_INT32] = {"int32", 4},
    [SP_DTYPE_INT64] = {"int64", 8},       [SP_DTYPE_UINT8] = {"uint8", 1},
    [SP_DTYPE_UINT16] = {"uint16", 2},     [SP_DTYPE_UINT32] = {"uint32", 4},
    [SP_DTYPE_UINT64] = {"uint64", 8},     [SP_DTYPE_FLOAT16] = {"float16", 2},
    [SP_DTYPE_FLOAT32] = {"float32", 4},   [SP_DTYPE_FLOAT64] = {"float64", 8},
    [SP_DTYPE_COMPLEX64] = {"complex64", 8}, [SP_DTYPE_COMPLEX128] = {"complex128", 16},
};

size_t sp_dtype_size(int dtype) {
  return dtype >= SP_DTYPE_BOOL && dtype <= SP_DTYPE_COMPLEX128 ? dtypes[dtype].size : 0;
}

const char *sp_dtype_name(int dtype) {
  return dtype >= SP_DTYPE_BOOL && dtype <= SP_DTYPE_COMPLEX128 ? dtypes[dtype].name : "unknown";
}

int64_t sp__array_nbytes(int dtype, int ndim, const int64_t *shape) {
  uint64_t n = sp_dtype_size(dtype);
  if (n == 0 || ndim < 0 || ndim > SP_MAX_NDIM) return -1;
  for (int i = 0; i < ndim; i++) {
    if (shape[i] < 0) return -1;
    if (shape[i] != 0 && n > (uint64_t)INT64_MAX / (uint64_t)shape[i]) return -1;
    n *= (uint64_t)shape[i];
  }
  return (int64_t)n;
}

size_t sp__arrays_size(const sp__array_desc_t *d, size_t n) {
  size_t total = 4;
  for (size_t i = 0; i < n; i++) {
    total += ARRAY_ENTRY_FIXED + 8u * (size_t)d[i].ndim + d[i].name_len;
    if (d[i].where == SP__ARR_INLINE) total += d[i].nbytes;
  }
  return total;
}

void sp__arrays_write(uint8_t *p, sp__array_desc_t *d, size_t n) {
  sp__put_u32(p, (uint32_t)n);
  p += 4;
  uint64_t inline_at = 0;
  for (size_t i = 0; i < n; i++) {
    if (d[i].where == SP__ARR_INLINE) {
      d[i].offset = inline_at;
      inline_at += d[i].nbytes;
    }
    sp__put_u16(p, (uint16_t)d[i].name_len);
    p[2] = (uint8_t)d[i].dtype;
    p[3] = (uint8_t)d[i].ndim;
    p[4] = (uint8_t)d[i].where;
    p[5] = p[6] = p[7] = 0;
    sp__put_u64(p + 8, d[i].offset);
    sp__put_u64(p + 16, d[i].nbytes);
    p += ARRAY_ENTRY_FIXED;
    for (int k = 0; k < d[i].ndim; k++, p += 8) sp__put_u64(p, (uint64_t)d[i].shape[k]);
    memcpy(p, d[i].name, d[i].name_len);
    p += d[i].name_len;
  }
  for (size_t i = 0; i < n; i++) {
    if (d[i].where != SP__ARR_INLINE) continue;
    if (d[i].nbytes > 0) memcpy(p, d[i].data, d[i].nbytes);
    p += d[i].nbytes;
  }
}

int sp__arrays_parse(const uint8_t *p, size_t len, uint64_t region_size, sp__array_desc_t *out,
                     size_t max, size_t *n, const uint8_t **inline_base) {
  *n = 0;
  if (len < 4) return SP_EPROTOCOL;
  uint32_t count = sp__get_u32(p);
  if (count > SP__MAX_ARRAYS || count > max) return SP_EPROTOCOL;
  size_t at = 4;
  for (uint32_t i = 0; i < count; i++) {
    sp__array_desc_t *d = &out[i];
    if (len - at < ARRAY_ENTRY_FIXED) return SP_EPROTOCOL;
    const uint8_t *e = p + at;
    d->name_len = sp__get_u16(e);
    d->dtype = e[2];
    d->ndim = e[3];
    d->where = e[4];
    d->offset = sp__get_u64(e + 8);
    d->nbytes = sp__get_u64(e + 16);
    d->data = NULL;
    at += ARRAY_ENTRY_FIXED;
    if (sp_dtype_size(d->dtype) == 0 || d->ndim > SP_MAX_NDIM || d->name_len == 0 ||
        d->name_len > SP__MAX_ARRAY_NAME || (d->where != SP__ARR_SHARED && d->where != SP__ARR_INLINE))
      return SP_EPROTOCOL;
    if ((len - at) / 8 < (size_t)d->ndim) return SP_EPROTOCOL;
    for (int k = 0; k < d->ndim; k++, at += 8) d->shape[k] = (int64_t)sp__get_u64(p + at);
    int64_t nb = sp__array_nbytes(d->dtype, d->ndim, d->shape);
    if (nb < 0 || (uint64_t)nb != d->nbytes) return SP_EPROTOCOL;
    if (len - at < d->name_len) return SP_EPROTOCOL;
    d->name = (const char *)p + at;
    at += d->name_len;
  }
  size_t inline_len = len - at;
  for (uint32_t i = 0; i < count; i++) {
    const sp__array_desc_t *d = &out[i];
    if (d->where == SP__ARR_INLINE) {
      if (d->offset > inline_len || d->nbytes > inline_len - d->offset) return SP_EPROTOCOL;
    } else if (region_size == 0 || d->offset < SP__SHM_DATA_START || d->offset > region_size ||
               d->nbytes > region_size - d->offset) {
      return SP_EPROTOCOL;
    }
  }
  *n = count;
  *inline_base = p + at;
  return 0;
}

/* ---- RESULT -------------------------------------------------------------- */

int sp__buf_append_result_arrays(sp__buf_t *b, uint64_t id, const char *json, size_t json_len,
                                 sp__array_desc_t *d, size_t n) {
  size_t arrays = sp__arrays_size(d, n);
  size_t body = 4 + json_len + arrays;
  if (body > UINT32_MAX || sp__buf_reserve(b, SP__FRAME_HEADER_SIZE + body) != 0)
    return SP_ENOMEM;
  uint8_t *p = b->data + b->len;
  sp__frame_header_write(p, SP__FRAME_RESULT, SP__FLAG_ARRAYS, (uint32_t)body, id);
  p += SP__FRAME_HEADER_SIZE;
  sp__put_u32(p, (uint32_t)json_len);
  memcpy(p + 4, json, json_len);
  sp__arrays_write(p + 4 + json_len, d, n);
  b->len += SP__FRAME_HEADER_SIZE + body;
  return 0;
}

int sp__result_body_parse(const uint8_t *body, size_t len, unsigned flags, sp__result_view_t *out) {
  if (!(flags & SP__FLAG_ARRAYS)) {
    out->json = (const char *)body;
    out->json_len = len;
    out->arrays = NULL;
    out->arrays_len = 0;
    return 0;
  }
  if (len < 4) return SP_EPROTOCOL;
  size_t jl = sp__get_u32(body);
  if (jl > len - 4) return SP_EPROTOCOL;
  out->json = (const char *)body + 4;
  out->json_len = jl;
  out->arrays = body + 4 + jl;
  out->arrays_len = len - 4 - jl;
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

/* ---- CHUNK --------------------------------------------------------------- */

int sp__buf_append_chunk(sp__buf_t *b, uint64_t id, const char *json, size_t len) {
  return sp__buf_append_frame(b, SP__FRAME_CHUNK, id, json, len);
}

int sp__buf_append_credit(sp__buf_t *b, uint64_t id, uint32_t n) {
  uint8_t *p;
  if (start_frame(b, SP__FRAME_CHUNK, id, SP__CREDIT_BODY_SIZE, &p) != 0) return SP_ENOMEM;
  sp__put_u32(p, n);
  return 0;
}

int sp__credit_body_parse(const uint8_t *body, size_t len, uint32_t *n) {
  if (len != SP__CREDIT_BODY_SIZE) return SP_EPROTOCOL;
  *n = sp__get_u32(body);
  return 0;
}

/* ---- HOSTCALL / HOSTREPLY ---------------------------------------------- */

int sp__buf_append_hostcall(sp__buf_t *b, uint64_t id, const sp__hostcall_view_t *v) {
  if (v->pool_len > UINT16_MAX || v->name_len > UINT16_MAX || v->args_len > UINT32_MAX)
    return SP_EINVAL;
  uint8_t *p;
  size_t body = SP__HOSTCALL_PREFIX_SIZE + v->pool_len + v->name_len + v->args_len;
  if (start_frame(b, SP__FRAME_HOSTCALL, id, body, &p) != 0) return SP_ENOMEM;
  sp__put_u64(p, v->parent);
  p[8] = (uint8_t)v->kind;
  p[9] = 0;
  sp__put_u16(p + 10, (uint16_t)v->pool_len);
  sp__put_u16(p + 12, (uint16_t)v->name_len);
  sp__put_u32(p + 14, (uint32_t)v->args_len);
  p += SP__HOSTCALL_PREFIX_SIZE;
  if (v->pool_len > 0) memcpy(p, v->pool, v->pool_len);
  if (v->name_len > 0) memcpy(p + v->pool_len, v->name, v->name_len);
  if (v->args_len > 0) memcpy(p + v->pool_len + v->name_len, v->args, v->args_len);
  return 0;
}

int sp__hostcall_body_parse(const uint8_t *body, size_t len, sp__hostcall_view_t *out) {
  if (len < SP__HOSTCALL_PREFIX_SIZE) return SP_EPROTOCOL;
  size_t pl = sp__get_u16(body + 10), nl = sp__get_u16(body + 12), al = sp__get_u32(body + 14);
  int kind = body[8];
  if (SP__HOSTCALL_PREFIX_SIZE + pl + nl + al != len || nl == 0) return SP_EPROTOCOL;
  if (kind != SP__HOSTCALL_TOOL && kind != SP__HOSTCALL_FUNCTION) return SP_EPROTOCOL;
  if (kind == SP__HOSTCALL_TOOL && pl == 0) return SP_EPROTOCOL;
  out->parent = sp__get_u64(body);
  out->kind = kind;
  out->pool = (const char *)body + SP__HOSTCALL_PREFIX_SIZE;
  out->pool_len = pl;
  out->name = out->pool + pl;
  out->name_len = nl;
  out->args = out->name + nl;
  out->args_len = al;
  return 0;
}

int sp__buf_append_hostreply(sp__buf_t *b, uint64_t id, int code, const char *text, size_t len) {
  uint8_t *p;
  if (start_frame(b, SP__FRAME_HOSTREPLY, id, 1 + len, &p) != 0) return SP_ENOMEM;
  p[0] = (uint8_t)(code < 0 && code > -256 ? -code : code == 0 ? 0 : -SP_EPROTOCOL);
  if (len > 0) memcpy(p + 1, text, len);
  return 0;
}

int sp__hostreply_body_parse(const uint8_t *body, size_t len, int *code, const char **text,
                             size_t *text_len) {
  if (len < 1) return SP_EPROTOCOL;
  int c = -(int)body[0];
  if (c != 0 && !sp__err_is_known(c)) return SP_EPROTOCOL;
  *code = c;
  *text = (const char *)body + 1;
  *text_len = len - 1;
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
  p[24] = (uint8_t)(pong->gil_enabled != 0);
  return 0;
}

int sp__pong_body_parse(const uint8_t *body, size_t len, sp__pong_t *out) {
  memset(out, 0, sizeof(*out));
  if (len < SP__PONG_BODY_SIZE) return SP_EPROTOCOL;
  out->sent_ms = (int64_t)sp__get_u64(body);
  out->attach_wait_ns = sp__get_u64(body + 8);
  out->calls_done = sp__get_u64(body + 16);
  out->gil_enabled = body[24] != 0;
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

void sp__array_view_from_desc(sp_array_t *a, const sp__array_desc_t *d, char **names,
                              int64_t **shapes) {
  memcpy(*names, d->name, d->name_len);
  (*names)[d->name_len] = '\0';
  a->name = *names;
  *names += d->name_len + 1;
  a->dtype = (sp_dtype_t)d->dtype;
  a->ndim = d->ndim;
  memcpy(*shapes, d->shape, (size_t)d->ndim * sizeof(int64_t));
  a->shape = *shapes;
  *shapes += d->ndim;
}

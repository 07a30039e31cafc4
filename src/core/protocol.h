/*
 * protocol.h - the framed wire protocol between the pool manager and its workers,
 * and the growable byte buffer both ends build frames in.
 *
 * Every frame is a 16-byte header followed by `length` body bytes:
 *   u8 magic 'S' | u8 version | u8 type | u8 flags | u32 length | u64 request id
 * (integers little-endian). Many requests are in flight on one connection at
 * once; the request id pairs a RESULT/ERROR with its CALL.
 */
#ifndef SP_CORE_PROTOCOL_H
#define SP_CORE_PROTOCOL_H

#include <stddef.h>
#include <stdint.h>

#include "snakepit.h"

#define SP__FRAME_MAGIC 0x53u /* 'S' */
#define SP__PROTOCOL_VERSION 1u
#define SP__FRAME_HEADER_SIZE 16u
/** Body of a CALL before the tool name: u32 timeout_ms, u16 tool length. */
#define SP__CALL_PREFIX_SIZE 6u

typedef enum {
  SP__FRAME_HELLO = 1,    /* worker -> manager: JSON {pid, python_version, gil_enabled, threads, manifest} */
  SP__FRAME_CALL = 2,     /* manager -> worker: u32 timeout_ms, u16 tool_len, tool, args JSON */
  SP__FRAME_RESULT = 3,   /* worker -> manager: result JSON */
  SP__FRAME_ERROR = 4,    /* worker -> manager: u8 kind (sp__error_kind_t), then text */
  SP__FRAME_CHUNK = 5,    /* worker -> manager: one streamed chunk (JSON) */
  SP__FRAME_CANCEL = 6,   /* manager -> worker: cancel request id */
  SP__FRAME_PING = 7,     /* manager -> worker: body echoed in PONG */
  SP__FRAME_PONG = 8,     /* worker -> manager: PING body, attach wait ns, calls, GIL on (1 byte) */
  SP__FRAME_STATS = 9,    /* both ways: request (empty) / reply (JSON) */
  SP__FRAME_SHUTDOWN = 10 /* manager -> worker: finish in-flight calls, run atexit, exit */
} sp__frame_type_t;

#define SP__FRAME_TYPE_MAX 10

/** Kind byte at the start of an ERROR body. */
typedef enum {
  SP__ERRKIND_VALIDATION = 1, /* text: one-line message */
  SP__ERRKIND_PYTHON = 2,     /* text: JSON {type, message, traceback} */
  SP__ERRKIND_PROTOCOL = 3,   /* text: one-line message */
  SP__ERRKIND_STARTUP = 4     /* text: JSON {type, message, traceback}; request id 0 */
} sp__error_kind_t;

/** A decoded frame; body points into the decoder's buffer until its next use. */
typedef struct sp__frame_s {
  uint8_t type;
  uint8_t flags;
  uint32_t length;
  uint64_t id;
  const uint8_t *body;
} sp__frame_t;

/** Incremental decoder: read bytes into it, then take whole frames out. */
typedef struct sp__decoder_s {
  uint8_t *buf;
  size_t start; /* first unconsumed byte */
  size_t end;   /* one past the last received byte */
  size_t cap;
  size_t max_body; /* bodies above this are a protocol error */
} sp__decoder_t;

/** Growable byte buffer. */
typedef struct sp__buf_s {
  uint8_t *data;
  size_t len;
  size_t cap;
} sp__buf_t;

/** Name of a frame type ("CALL"), or "UNKNOWN". */
const char *sp__frame_type_name(unsigned type);

/** Writes a header into hdr[SP__FRAME_HEADER_SIZE]. */
void sp__frame_header_write(uint8_t *hdr, unsigned type, unsigned flags, uint32_t length,
                            uint64_t id);

/** Overwrites the request id of an encoded frame. */
void sp__frame_set_id(uint8_t *hdr, uint64_t id);

/**
 * Validates and decodes a header. Returns 0, SP_EPROTOCOL for a bad magic,
 * version or type, or SP_ETOOLARGE when length exceeds max_body; err explains.
 */
int sp__frame_header_parse(const uint8_t *hdr, size_t max_body, sp__frame_t *out,
                           sp_error_t *err);

/**
 * Splits a CALL body into its parts (pointers into body). Returns SP_EPROTOCOL
 * when the body is shorter than its declared tool name.
 */
int sp__call_body_parse(const uint8_t *body, size_t len, uint32_t *timeout_ms, const char **tool,
                        size_t *tool_len, const char **args, size_t *args_len);

void sp__decoder_init(sp__decoder_t *d, size_t max_body);
void sp__decoder_free(sp__decoder_t *d);

/**
 * Returns a writable region of at least `want` bytes (more when available) at the
 * end of the buffer, compacting or growing it. SP_ENOMEM on failure.
 */
int sp__decoder_space(sp__decoder_t *d, size_t want, uint8_t **p, size_t *avail);

/** Records that n bytes were written into the region from sp__decoder_space(). */
void sp__decoder_commit(sp__decoder_t *d, size_t n);

/**
 * Takes the next whole frame: returns 1 and fills *f, 0 when more bytes are
 * needed, or a negative code (the stream is unusable afterwards) with err set.
 */
int sp__decoder_next(sp__decoder_t *d, sp__frame_t *f, sp_error_t *err);

/** Ensures room for `extra` more bytes. 0 or SP_ENOMEM. */
int sp__buf_reserve(sp__buf_t *b, size_t extra);
/** Appends bytes. 0 or SP_ENOMEM. */
int sp__buf_append(sp__buf_t *b, const void *p, size_t n);
/** Appends one whole frame (header + body). 0 or SP_ENOMEM. */
int sp__buf_append_frame(sp__buf_t *b, unsigned type, unsigned flags, uint64_t id,
                         const void *body, size_t len);
/**
 * Appends one frame whose body is an optional kind byte (omitted when kind is 0,
 * as in RESULT) followed by text. 0 or SP_ENOMEM.
 */
int sp__buf_append_kind_frame(sp__buf_t *b, unsigned type, uint64_t id, int kind, const void *text,
                              size_t len);
/** Drops the first n bytes. */
void sp__buf_consume(sp__buf_t *b, size_t n);
void sp__buf_free(sp__buf_t *b);

#endif /* SP_CORE_PROTOCOL_H */

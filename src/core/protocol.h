/*
 * protocol.h - the framed wire protocol between the pool manager and its
 * workers: every frame's encoder and decoder, and the incremental decoder that
 * cuts a byte stream into frames. The only place that knows the byte layout;
 * both programs (libsnakepit and snakepit-worker) link it.
 *
 * Every frame is a 16-byte header followed by `length` body bytes:
 *   u8 magic 'S' | u8 version | u8 type | u8 flags | u32 length | u64 request id
 * Integers are little-endian everywhere. Many requests are in flight on one
 * connection at once; the request id pairs a reply with its request.
 *
 * Bodies (all lengths in bytes):
 *   HELLO    W->M  JSON {protocol, pid, python_version, gil_enabled, threads, manifest}
 *   CALL     M->W  u32 timeout_ms | u16 tool_len | u32 args_len | tool | args JSON
 *                  [| array table | inline array bytes]      (flag ARRAYS)
 *   RESULT   W->M  result JSON, or with flag ARRAYS:
 *                  u32 json_len | JSON | array table | inline array bytes
 *   ERROR    W->M  u8 kind (sp__error_kind_t) | u8 code (-SP_E*) | text (plain or JSON, by kind)
 *   CHUNK    W->M  one streamed item's JSON (CALL flag STREAM); the RESULT or
 *                  ERROR of the same id ends the stream
 *            M->W  u32 credit: the consumer took that many more chunks
 *   CANCEL   M->W  empty: cancel request `id`
 *   PING     M->W  u64 sent_ms
 *   PONG     W->M  u64 sent_ms echoed | u64 attach_wait_ns | u64 calls_done | u8 gil_enabled
 *   STATS    M->W  JSON report arguments; W->M the worker's report (JSON)
 *   SHUTDOWN M->W  empty: finish in-flight calls, run atexit, exit
 *   SESSION_END M->W  session id: the worker drops that session's state
 *
 * A CALL with flag SESSION carries, after the args JSON (before any arrays
 * part), u16 session_len | u8 session_flags | session id: the session whose
 * state the tool sees (SP__SESSION_EPHEMERAL: a fresh state for this call
 * only, dropped when it ends).
 *   HOSTCALL W->M  u64 parent request id | u8 kind (sp__hostcall_kind_t) | u8 0 |
 *                  u16 pool_len | u16 name_len | u32 args_len | pool | name | args JSON;
 *                  request id: the worker's own id for this nested call
 *   HOSTREPLY M->W u8 code (0, or -SP_E*) | result JSON, or with a code the error
 *                  as JSON {code, category, message, python_type, traceback}
 *
 * An array table is u32 count, then per array: u16 name_len | u8 dtype |
 * u8 ndim | u8 where | 3 zero bytes | u64 offset | u64 nbytes | i64 shape[ndim]
 * | name. `where` says where its bytes are: in shared memory (the pool's input
 * region for a CALL, the worker's output region for a RESULT) at `offset`, or
 * inline, at `offset` from the start of the inline bytes that follow the
 * table. The same descriptors could travel over a network with inline bytes.
 */
#ifndef SP_CORE_PROTOCOL_H
#define SP_CORE_PROTOCOL_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "snakepit.h"

#define SP__FRAME_MAGIC 0x53u /* 'S' */
#define SP__PROTOCOL_VERSION 2u
#define SP__FRAME_HEADER_SIZE 16u
/** CALL body before the tool name: u32 timeout_ms, u16 tool_len, u32 args_len. */
#define SP__CALL_PREFIX_SIZE 10u
/** ERROR body before the text: u8 kind, u8 code. */
#define SP__ERROR_PREFIX_SIZE 2u
#define SP__PING_BODY_SIZE 8u
#define SP__PONG_BODY_SIZE 25u

/* The fds a worker process gets from the manager: the socket, the pool's
 * input memory (read-only) and its own output memory; stdout and stderr are
 * its output pipe. */
#define SP__FD_SOCK 3
#define SP__FD_IN_SHM 4
#define SP__FD_OUT_SHM 5

/* Limits both programs agree on (the config loader enforces them too). */
#define SP__THREADS_MAX 1024                /* execution threads per worker */
#define SP__MIN_FRAME_BYTES 4096            /* smallest max_frame_bytes */
#define SP__MAX_FRAME_BYTES (1024u << 20)   /* largest max_frame_bytes (1 GiB) */

typedef enum {
  SP__FRAME_HELLO = 1,
  SP__FRAME_CALL = 2,
  SP__FRAME_RESULT = 3,
  SP__FRAME_ERROR = 4,
  SP__FRAME_CHUNK = 5,
  SP__FRAME_CANCEL = 6,
  SP__FRAME_PING = 7,
  SP__FRAME_PONG = 8,
  SP__FRAME_STATS = 9,
  SP__FRAME_SHUTDOWN = 10,
  SP__FRAME_SESSION_END = 11,
  SP__FRAME_HOSTCALL = 12,
  SP__FRAME_HOSTREPLY = 13
} sp__frame_type_t;

#define SP__FRAME_TYPE_MAX 13

/** Shared memory below this offset holds a region's allocator table (shm.h). */
#define SP__SHM_DATA_START (64u * 1024u)

/* Frame flags. */
#define SP__FLAG_ARRAYS 0x01u /* CALL, RESULT: an array table follows the JSON */
#define SP__FLAG_LISTS 0x02u  /* CALL: return arrays as nested JSON lists instead */
#define SP__FLAG_WRITABLE 0x04u /* CALL: the tool may write into its array arguments */
#define SP__FLAG_STREAM 0x08u /* CALL: send the tool's items as CHUNK frames */
#define SP__FLAG_SESSION 0x10u /* CALL: a session id follows the args JSON */

/*
 * Stream flow control: a worker sends at most SP__STREAM_WINDOW chunks of a
 * stream beyond what the manager acknowledged; the manager grants
 * SP__STREAM_CREDIT_EVERY more each time its consumer took that many. So at
 * most SP__STREAM_WINDOW chunks of one stream are in flight (in the socket or
 * the manager's read buffer), and a slow consumer pauses the generator.
 */
#define SP__STREAM_WINDOW 128
#define SP__STREAM_CREDIT_EVERY 32
#define SP__CREDIT_BODY_SIZE 4u

/** How an ERROR body's text reads; its code byte says which SP_E* error it is. */
typedef enum {
  SP__ERRKIND_VALIDATION = 1, /* text: one-line message (code NOTOOL, BADARGS, BADJSON) */
  SP__ERRKIND_PYTHON = 2,     /* text: JSON {type, message, traceback} (code PYTHON) */
  SP__ERRKIND_PROTOCOL = 3,   /* text: one-line message (code PROTOCOL, TOOLARGE, CANCELLED,
                                 NOMEM) */
  SP__ERRKIND_STARTUP = 4     /* text: JSON {type, message, traceback}; request id 0 */
} sp__error_kind_t;

/* ---- little-endian integers -------------------------------------------- */

static inline void sp__put_u16(uint8_t *p, uint16_t v) {
  p[0] = (uint8_t)v;
  p[1] = (uint8_t)(v >> 8);
}
static inline void sp__put_u32(uint8_t *p, uint32_t v) {
  for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static inline void sp__put_u64(uint8_t *p, uint64_t v) {
  for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static inline uint16_t sp__get_u16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static inline uint32_t sp__get_u32(const uint8_t *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static inline uint64_t sp__get_u64(const uint8_t *p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; i--) v = v << 8 | p[i];
  return v;
}

/* ---- frames -------------------------------------------------------------- */

/** A decoded frame; body points into the decoder's buffer until its next use. */
typedef struct sp__frame_s {
  uint8_t type;
  uint8_t flags;
  uint32_t length;
  uint64_t id;
  const uint8_t *body;
} sp__frame_t;

/** Name of a frame type ("CALL"), or "UNKNOWN". */
const char *sp__frame_type_name(unsigned type);

/** Writes a header into hdr[SP__FRAME_HEADER_SIZE]. */
void sp__frame_header_write(uint8_t *hdr, unsigned type, unsigned flags, uint32_t length,
                            uint64_t id);

/**
 * Validates and decodes a header. Returns 0, SP_EPROTOCOL for a bad magic,
 * version or type, or SP_ETOOLARGE when length exceeds max_body; err explains.
 */
int sp__frame_header_parse(const uint8_t *hdr, size_t max_body, sp__frame_t *out,
                           sp_error_t *err);

/** Appends one whole frame (header + body). 0, or SP_ENOMEM. */
int sp__buf_append_frame(sp__buf_t *b, unsigned type, uint64_t id, const void *body, size_t len);

/* ---- CALL ---------------------------------------------------------------- */

/** Size of a whole encoded CALL frame (header included), with `extra` bytes of arrays. */
size_t sp__call_frame_size(size_t tool_len, size_t args_len, size_t extra);

/**
 * Encodes a CALL frame into frame[sp__call_frame_size()] with request id 0 and
 * timeout 0 (sp__call_frame_dispatch() fills both when the call is sent) and
 * the given flags; returns where the `extra` bytes (array table and inline
 * bytes, see sp__array_table_write) go.
 */
uint8_t *sp__call_frame_write(uint8_t *frame, unsigned flags, const char *tool, size_t tool_len,
                              const char *args, size_t args_len, size_t extra);

/** Sets an encoded CALL frame's request id and the time its worker has left. */
void sp__call_frame_dispatch(uint8_t *frame, uint64_t id, uint32_t timeout_ms);

/** The tool name inside an encoded CALL frame (not NUL-terminated). */
const char *sp__call_frame_tool(const uint8_t *frame, size_t *tool_len);

/** A decoded CALL body; pointers into the body. */
typedef struct sp__call_view_s {
  uint32_t timeout_ms;
  const char *tool;
  size_t tool_len;
  const char *args;
  size_t args_len;
  const uint8_t *arrays; /* array table and inline bytes (flag ARRAYS), else NULL */
  size_t arrays_len;
  const char *session; /* the session id (flag SESSION), else NULL */
  size_t session_len;
  unsigned session_flags; /* SP__SESSION_* */
} sp__call_view_t;

/**
 * Decodes a CALL body with its frame flags. Returns 0, or SP_EPROTOCOL when
 * the lengths do not tile the body (with ARRAYS, the rest is the arrays part),
 * the tool name is empty, or a session id (flag SESSION) is empty or longer
 * than SP__SESSION_ID_MAX.
 */
int sp__call_body_parse(const uint8_t *body, size_t len, unsigned flags, sp__call_view_t *out);

/* ---- sessions ------------------------------------------------------------ */

/** Longest session id in bytes (the public API documents the same limit). */
#define SP__SESSION_ID_MAX 128u
/** The session part of a CALL body before the id: u16 length, u8 flags. */
#define SP__SESSION_PREFIX_SIZE 3u
/** Session flag: the call runs away from the session's worker, on a fresh state of its own. */
#define SP__SESSION_EPHEMERAL 0x01u

/** Bytes the session part of a CALL body takes for an id of len bytes. */
size_t sp__call_session_size(size_t len);

/**
 * Writes the session part (flags 0) at p, where sp__call_frame_write() puts
 * its `extra` bytes, before any arrays part; returns where the arrays go. The
 * frame needs flag SP__FLAG_SESSION.
 */
uint8_t *sp__call_session_write(uint8_t *p, const char *id, size_t len);

/** Sets the session flags of an encoded CALL frame that has flag SESSION. */
void sp__call_frame_session_flags(uint8_t *frame, unsigned session_flags);

/** Appends a SESSION_END frame for session id. 0 or SP_ENOMEM. */
int sp__buf_append_session_end(sp__buf_t *b, const char *id, size_t len);

/** Decodes a SESSION_END body. 0, or SP_EPROTOCOL for an empty or too long id. */
int sp__session_end_body_parse(const uint8_t *body, size_t len, const char **id,
                               size_t *id_len);

/* ---- arrays -------------------------------------------------------------- */

/** Where an array's bytes are. */
typedef enum { SP__ARR_SHARED = 1, SP__ARR_INLINE = 2 } sp__array_where_t;

/** Most arrays one frame carries, and the longest name. */
#define SP__MAX_ARRAYS 4096
#define SP__MAX_ARRAY_NAME 1024

/** One array descriptor. */
typedef struct sp__array_desc_s {
  const char *name; /* not NUL-terminated */
  size_t name_len;
  int dtype; /* sp_dtype_t */
  int ndim;
  int where; /* sp__array_where_t */
  uint64_t offset; /* SHARED: in the region; INLINE: into the inline bytes */
  uint64_t nbytes;
  int64_t shape[SP_MAX_NDIM];
  const void *data; /* encoding only: the bytes of an INLINE array */
} sp__array_desc_t;

/**
 * nbytes of an array of dtype and shape, or -1 when the dtype or ndim is bad,
 * a size is negative, or the product overflows.
 */
int64_t sp__array_nbytes(int dtype, int ndim, const int64_t *shape);

/** Bytes the table and inline bytes of these arrays take. */
size_t sp__arrays_size(const sp__array_desc_t *d, size_t n);

/**
 * Writes the table and the inline bytes of n arrays at p (sp__arrays_size()
 * bytes). INLINE descriptors get their offsets assigned here, in order.
 */
void sp__arrays_write(uint8_t *p, sp__array_desc_t *d, size_t n);

/**
 * Decodes an arrays part (table then inline bytes) into out[] (at most max
 * entries; *n set). Every descriptor is checked: known dtype and where, ndim
 * at most SP_MAX_NDIM, non-negative sizes whose product matches nbytes, a name
 * of 1..SP__MAX_ARRAY_NAME bytes, inline bytes inside the part, shared bytes
 * inside the data area of a region of region_size bytes (0: none allowed).
 * *inline_base is where the inline bytes start. 0 or SP_EPROTOCOL.
 */
int sp__arrays_parse(const uint8_t *p, size_t len, uint64_t region_size, sp__array_desc_t *out,
                     size_t max, size_t *n, const uint8_t **inline_base);

/**
 * Fills a's name, dtype, ndim and shape from the descriptor d: the name is
 * copied NUL-terminated to *names and the shape to *shapes, and both cursors
 * advance past what was written. data and nbytes are the caller's.
 */
void sp__array_view_from_desc(sp_array_t *a, const sp__array_desc_t *d, char **names,
                              int64_t **shapes);

/** Appends a RESULT frame with arrays: json and the arrays part. 0 or SP_ENOMEM. */
int sp__buf_append_result_arrays(sp__buf_t *b, uint64_t id, const char *json, size_t json_len,
                                 sp__array_desc_t *d, size_t n);

/** A RESULT body split into its JSON and its arrays part (NULL without flag ARRAYS). */
typedef struct sp__result_view_s {
  const char *json;
  size_t json_len;
  const uint8_t *arrays;
  size_t arrays_len;
} sp__result_view_t;

/** Decodes a RESULT body with its frame flags. 0, or SP_EPROTOCOL. */
int sp__result_body_parse(const uint8_t *body, size_t len, unsigned flags, sp__result_view_t *out);

/* ---- RESULT and ERROR ---------------------------------------------------- */

/** Appends a frame whose whole body is text (RESULT, HELLO, STATS). 0 or SP_ENOMEM. */
int sp__buf_append_text_frame(sp__buf_t *b, unsigned type, uint64_t id, const void *text,
                              size_t len);

/**
 * Appends an ERROR frame: kind, code (an SP_E* value) and text. 0 or SP_ENOMEM.
 */
int sp__buf_append_error(sp__buf_t *b, uint64_t id, sp__error_kind_t kind, int code,
                         const void *text, size_t len);

/** A decoded ERROR body; text points into the body. */
typedef struct sp__error_view_s {
  int kind; /* sp__error_kind_t */
  int code; /* SP_E* value */
  const char *text;
  size_t text_len;
} sp__error_view_t;

/**
 * Decodes an ERROR body. Returns 0, or SP_EPROTOCOL for a body shorter than
 * its prefix, an unknown kind or a code that is not an SP_E* error.
 */
int sp__error_body_parse(const uint8_t *body, size_t len, sp__error_view_t *out);

/* ---- CHUNK ---------------------------------------------------------------- */

/** Appends a CHUNK frame (W->M) carrying one item's JSON. 0 or SP_ENOMEM. */
int sp__buf_append_chunk(sp__buf_t *b, uint64_t id, const char *json, size_t len);
/** Appends a credit CHUNK frame (M->W) granting n more chunks. 0 or SP_ENOMEM. */
int sp__buf_append_credit(sp__buf_t *b, uint64_t id, uint32_t n);
/** Decodes a credit CHUNK body. 0, or SP_EPROTOCOL when its length is wrong. */
int sp__credit_body_parse(const uint8_t *body, size_t len, uint32_t *n);

/* ---- HOSTCALL and HOSTREPLY ---------------------------------------------- */

/** What a HOSTCALL asks for: a tool of a pool, or a function the host registered. */
typedef enum { SP__HOSTCALL_TOOL = 1, SP__HOSTCALL_FUNCTION = 2 } sp__hostcall_kind_t;

/** HOSTCALL body before the names: u64 parent, u8 kind, u8 0, u16, u16, u32. */
#define SP__HOSTCALL_PREFIX_SIZE 18u

/** A HOSTCALL body; pointers into the body (or the encoder's inputs). */
typedef struct sp__hostcall_view_s {
  uint64_t parent; /* request id of the call whose tool asks */
  int kind;        /* sp__hostcall_kind_t */
  const char *pool; /* kind TOOL: the pool; FUNCTION: empty */
  size_t pool_len;
  const char *name; /* the tool or the host function */
  size_t name_len;
  const char *args; /* JSON object */
  size_t args_len;
} sp__hostcall_view_t;

/** Appends a HOSTCALL frame with request id id. 0, SP_EINVAL (a name too long) or SP_ENOMEM. */
int sp__buf_append_hostcall(sp__buf_t *b, uint64_t id, const sp__hostcall_view_t *v);
/**
 * Decodes a HOSTCALL body. 0, or SP_EPROTOCOL when the lengths do not tile
 * it, the kind is unknown, the name is empty, or a tool call names no pool.
 */
int sp__hostcall_body_parse(const uint8_t *body, size_t len, sp__hostcall_view_t *out);

/** Appends a HOSTREPLY: code 0 and the result JSON, or a code and the error JSON. */
int sp__buf_append_hostreply(sp__buf_t *b, uint64_t id, int code, const char *text, size_t len);
/** Decodes a HOSTREPLY body. 0, or SP_EPROTOCOL (empty, or a code that is not an SP_E*). */
int sp__hostreply_body_parse(const uint8_t *body, size_t len, int *code, const char **text,
                             size_t *text_len);

/* ---- PING and PONG ------------------------------------------------------- */

/** Appends a PING carrying the manager's clock. 0 or SP_ENOMEM. */
int sp__buf_append_ping(sp__buf_t *b, int64_t sent_ms);

/** What a PONG carries. */
typedef struct sp__pong_s {
  int64_t sent_ms;         /* the PING's clock, echoed */
  uint64_t attach_wait_ns; /* total time execution threads waited to attach to Python */
  uint64_t calls_done;     /* calls the worker completed */
  int gil_enabled;         /* the worker's GIL state now (it can come back on at run time) */
} sp__pong_t;

/** Decodes a PING body into the PONG that answers it (only sent_ms is set). */
int sp__ping_body_parse(const uint8_t *body, size_t len, sp__pong_t *out);
/** Appends the PONG answering request id. 0 or SP_ENOMEM. */
int sp__buf_append_pong(sp__buf_t *b, uint64_t id, const sp__pong_t *p);
/** Decodes a PONG body. 0, or SP_EPROTOCOL when it is too short. */
int sp__pong_body_parse(const uint8_t *body, size_t len, sp__pong_t *out);

/* ---- the incremental decoder ---------------------------------------------- */

/** Incremental decoder: read bytes into it, then take whole frames out. */
typedef struct sp__decoder_s {
  uint8_t *buf;
  size_t start; /* first unconsumed byte */
  size_t end;   /* one past the last received byte */
  size_t cap;
  size_t max_body; /* bodies above this are a protocol error */
} sp__decoder_t;

/** The room a reader asks for per read (sp__decoder_space's `want`). */
#define SP__READ_CHUNK 65536u

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
 * needed, or a negative code (the stream is unusable afterwards) with err set
 * (release it with sp_error_free).
 */
int sp__decoder_next(sp__decoder_t *d, sp__frame_t *f, sp_error_t *err);

/**
 * Gives memory back after a large frame: when nothing is buffered and the
 * buffer grew past `keep` bytes, it is freed (the next read allocates anew).
 */
void sp__decoder_shrink(sp__decoder_t *d, size_t keep);

#endif /* SP_CORE_PROTOCOL_H */

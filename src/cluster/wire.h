/*
 * wire.h - the one wire format of calls over NATS, shared by the calling side
 * (remote pools, src/cluster/remote.c) and the serving side (the node,
 * src/nats/): subjects, header names, and the encoding of a call and of its
 * reply. A call is a NATS message whose headers carry the tool, the time left
 * and the call's identity, and whose body is the JSON arguments; the reply's
 * Sp-Code header says how it ended and its body is the result JSON, or an
 * error object.
 */
#ifndef SP_CLUSTER_WIRE_H
#define SP_CLUSTER_WIRE_H

#include <nats/nats.h>
#include <stddef.h>
#include <stdint.h>

#include "snakepit.h"

/* Subjects: PREFIX.KIND.POOL. A node takes calls on "call" only while it has a
 * free slot for the pool; "wait" is where every node of the pool listens, for
 * calls that found every node full; "tools" answers the pool's manifest. */
#define SP__WIRE_PREFIX "snakepit"
#define SP__WIRE_CALL "call"
#define SP__WIRE_WAIT "wait"
#define SP__WIRE_TOOLS "tools"
/* Nodes' private subjects: PREFIX.node.ID.KIND ("alive" answers liveness checks). */
#define SP__WIRE_NODE "node"
/* The service name nodes announce under $SRV (the NATS micro protocol). */
#define SP__WIRE_SERVICE "snakepit"

/* Request headers. */
#define SP__HDR_TOOL "Sp-Tool"
#define SP__HDR_TIMEOUT "Sp-Timeout-Ms" /* time left, not a clock time: hosts' clocks differ */
#define SP__HDR_IDEMPOTENT "Sp-Idempotent"
#define SP__HDR_ID "Sp-Id"
#define SP__HDR_STREAM "Sp-Stream" /* 1: a streaming call; chunks come before the reply */
#define SP__HDR_LISTS "Sp-Lists"   /* 1: arrays the tool returns come back as JSON lists */
/* On calls and replies that carry arrays: the body is the JSON (this many
 * bytes) followed by the arrays part of src/core/protocol.h (sp__arrays_write:
 * a table, then every array's bytes inline), the one encoding of arrays. */
#define SP__HDR_JSON_LEN "Sp-Json-Len"
/* Reply headers. */
#define SP__HDR_CODE "Sp-Code"   /* 0, or the negative SP_E* code */
#define SP__HDR_NODE "Sp-Node"   /* id of the node that ran the call */
#define SP__HDR_KIND "Sp-Kind"   /* "accepted": the node took the call (no result yet) */
#define SP__WIRE_ACCEPTED "accepted"
#define SP__WIRE_CHUNK "chunk" /* one item of a stream; the body is its JSON */
/* Flow control of streams: a node pauses its stream once this many chunks are
 * sent and not yet consumed by the caller; "REQ_ID COUNT" on the node's
 * "credit" subject says how many the caller consumed, on "cancel" ends it. */
#define SP__WIRE_STREAM_WINDOW 128

/* Durable jobs (JetStream): a work-queue stream of calls, de-duplicated by job
 * id (Nats-Msg-Id), and a key-value bucket of their outcomes keyed by job id. */
#define SP__JOBS_STREAM "SNAKEPIT_JOBS"
#define SP__JOBS_SUBJECTS SP__WIRE_PREFIX ".jobs.>"
#define SP__WIRE_JOBS "jobs" /* PREFIX.jobs.POOL */
#define SP__JOBS_BUCKET "snakepit_results"
/* How long a job and its outcome are kept, and the window of de-duplication. */
#define SP__JOBS_KEEP_MS (24LL * 3600 * 1000)
/* A node that stops confirming a job for this long lost it: JetStream hands it to another. */
#define SP__JOBS_ACK_WAIT_MS 5000
/* Deliveries of a job before JetStream gives up on it (snakepit serve --job-deliveries). */
#define SP__JOBS_MAX_DELIVER 10
/* What the server publishes when it gives up on a job of a pool's consumer. */
#define SP__JOBS_LOST_ADVISORY "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES." SP__JOBS_STREAM ".*"

/** Longest subject this module builds. */
#define SP__WIRE_SUBJECT_MAX 256

/** A decoded call; the strings point into the message (valid while it lives). */
typedef struct sp__wire_call_s {
  const char *tool;
  int64_t timeout_ms; /* 0: the pool's timeout (jobs); calls always carry their time left */
  int idempotent;
  const char *id;   /* "" when absent */
  const char *args; /* NUL-terminated copy owned by the caller of decode (free) */
  size_t args_len;  /* encode: the whole body (JSON and arrays part); decode: the JSON */
  int stream; /* a streaming call (sp_execute_stream) */
  size_t json_len;  /* encode: bytes of JSON at the start of args when an arrays part follows
                       (0: args is all JSON) */
  int lists;        /* the caller wants returned arrays as JSON lists */
  /* decode: the arrays of the call, pointing into args (freed with it and arrays) */
  sp_array_t *arrays;
  size_t array_count;
} sp__wire_call_t;

/** PREFIX.kind.pool into buf; 0, or SP_EINVAL when it does not fit. */
int sp__wire_subject(char *buf, size_t cap, const char *kind, const char *pool);

/** A call message to subject with replies to reply. 0 or SP_ENOMEM. */
int sp__wire_call_encode(natsMsg **out, const char *subject, const char *reply,
                         const sp__wire_call_t *c);

/**
 * Reads a call message: fills *c (c->args is a fresh NUL-terminated copy of
 * the body, c->arrays views into it; release both with sp__wire_call_free).
 * SP_EPROTOCOL with err saying what is missing or malformed.
 */
int sp__wire_call_decode(natsMsg *m, sp__wire_call_t *c, sp_error_t *err);

/**
 * Views of the arrays in an arrays part (sp__arrays_write's format, every
 * array inline): *out is one allocation (free()) whose data point into part.
 * 0, SP_EPROTOCOL or SP_ENOMEM.
 */
int sp__wire_arrays_view(const uint8_t *part, size_t len, sp_array_t **out, size_t *n);

/** The arrays part of C-contiguous arrays (a result's), all inline; *part is the caller's. */
int sp__wire_arrays_part(const sp_array_t *arrays, size_t n, uint8_t **part, size_t *len);

/** Releases what sp__wire_call_decode allocated. */
void sp__wire_call_free(sp__wire_call_t *c);

/**
 * The reply to a call: res->json on success, else res->error as an object
 * {"code","name","message","python_type","traceback"}. 0 or SP_ENOMEM.
 */
int sp__wire_reply_encode(natsMsg **out, const char *subject, const char *node,
                          const sp_result_t *res);

/** A reply carrying only an error (code, message); what a node says before running. */
int sp__wire_error_encode(natsMsg **out, const char *subject, const char *node, int code,
                          const char *message);

/** An "accepted" notice: the node took the call and will reply later. */
int sp__wire_accepted_encode(natsMsg **out, const char *subject, const char *node);

/** A chunk of a stream: json (len bytes) to the reply subject. 0 or SP_ENOMEM. */
int sp__wire_chunk_encode(natsMsg **out, const char *subject, const char *json, size_t len);

/** True for a chunk of a stream. */
int sp__wire_is_chunk(natsMsg *m);

/** True for an "accepted" notice. */
int sp__wire_is_accepted(natsMsg *m);

/** The Sp-Node header of a reply, or "" (points into m). */
const char *sp__wire_node(natsMsg *m);

/**
 * Fills res (zeroed by the caller) from a reply: res->json on success, the
 * error otherwise (a malformed reply is SP_EPROTOCOL naming `where`).
  * *arrays and *arrays_len (may be NULL) get the reply's arrays part (pointing
 * into m; NULL when none): the library turns it into res->arrays.
 * Returns res->error.code.
 */
int sp__wire_reply_decode(natsMsg *m, const char *where, sp_result_t *res,
                          const uint8_t **arrays, size_t *arrays_len);

/** True for a job id: [A-Za-z0-9_-]{1,64} (a key of the results bucket). */
int sp__wire_job_id_valid(const char *id);

/** The job outcome stored in the results bucket: {"code","node","result"|"error"}. Fresh string. */
char *sp__wire_job_outcome(const char *node, const sp_result_t *res);

/**
 * Creates the jobs stream and the results bucket unless they exist. *kv (may
 * be NULL) gets the bucket. 0, or an error naming JetStream (e.g. a server
 * started without -js).
 */
int sp__wire_jobs_setup(jsCtx *js, kvStore **kv, sp_error_t *err);

/** A NATS status as an SP_E* code and a sentence: "NATS: <text>". */
int sp__wire_nats_error(sp_error_t *err, natsStatus s, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

#endif /* SP_CLUSTER_WIRE_H */

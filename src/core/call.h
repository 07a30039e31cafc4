/*
 * call.h - one call's life from sp_execute*() to its completion: the message
 * header of the client -> loop queue, the call record with its encoded CALL
 * frame, and completion and expiry (call.c). Loop-thread owned while in flight.
 */
#ifndef SP_CORE_CALL_H
#define SP_CORE_CALL_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "protocol.h"
#include "scheduler.h"
#include "snakepit.h"

typedef struct sp__worker_s sp__worker_t;
typedef struct sp__pool_s sp__pool_t;
typedef struct sp__tool_stats_s sp__tool_stats_t;
struct sp__shm_s;

/** Header shared by everything that travels the client -> loop queue. */
typedef struct sp__msg_s {
  struct sp__msg_s *next;
  int kind; /* SP__MSG_* */
} sp__msg_t;

enum {
  SP__MSG_CALL = 1,
  SP__MSG_STATS,
  SP__MSG_STOP,
  SP__MSG_ATTACH,
  SP__MSG_DETACH,
  SP__MSG_REPORT,
  SP__MSG_CANCEL,
  SP__MSG_RESUME,
  SP__MSG_SESSION_END,
  SP__MSG_REMOTE /* a remote pool's async call finished (src/cluster/remote.c) */
};

enum { SP__CALL_NEW = 0, SP__CALL_QUEUED, SP__CALL_RUNNING, SP__CALL_DONE };

/**
 * One call, from sp_execute*() to its completion. Allocated by the client thread
 * together with its encoded CALL frame; the loop thread owns it while it is in
 * flight. Sync calls are freed by the waiting client, async ones by the loop.
 */
typedef struct sp__call_s {
  sp__msg_t msg;
  sp__sched_item_t item; /* pool FIFO + deadline heap */
  sp__pool_t *pool;
  int tool_index;
  int state;
  int64_t deadline_ms; /* absolute (sp__now_ms clock) */
  uint64_t start_ns;
  sp__worker_t *worker;
  uint32_t slot; /* index in its worker's in-flight table */
  int idempotent; /* may be retried once on another worker after a crash */
  int retried;
  sp_done_cb cb; /* async completion, or NULL for sync */
  void *ud;
  sp_result_t *res;    /* where the outcome goes: the caller's (sync) or own (async) */
  sp_result_t own;
  _Atomic uint32_t done; /* sync: set to 1 by the loop (waiting.c) */
  int wait_bit;          /* sync: the caller's bit of rt->wake_seq */
  /* Streams (sp_execute_stream): the chunk callback (NULL for other calls),
   * the id sp_cancel() names it by, the runtime's list of streams, chunks
   * delivered, and those not yet acknowledged to the worker with credit. */
  sp_chunk_cb chunk_cb;
  uint64_t call_id;
  struct sp__call_s *snext, *sprev;
  uint64_t chunks;
  uint32_t unacked;
  int paused; /* the consumer returned SP_CHUNK_PAUSE: no credit until it resumes */
  /* Sessions: the id inside frame (NULL: none), the mode, the session once the
   * loop thread found it, whether it runs away from the session's worker on a
   * state of its own, and whether it counts among the session's calls there. */
  const char *sid;
  size_t sid_len;
  int session_mode;
  struct sp__session_s *session;
  int session_ephemeral;
  int session_counted;
  uint64_t *inputs; /* blocks of the pool's input region this call owns (its arrays) */
  size_t ninputs;
  /* Nested calls (hostcall.c): how deep in a chain of tools calling tools
   * this call is (0: a caller's own), the record of the HOSTCALL that made it
   * (NULL for a caller's own), the nested calls and host functions its tool
   * waits for, and how many of those are tool calls. */
  int depth;
  struct sp__hostcall_s *origin;
  struct sp__hostcall_s *nested;
  int nested_tools;
  size_t frame_len;
  uint8_t frame[]; /* header + CALL body, id patched at dispatch */
} sp__call_t;

/** The call that carries scheduler item it. */
#define SP__CALL_OF(it) ((sp__call_t *)((char *)(it) - offsetof(sp__call_t, item)))

/** The tool name inside a call's encoded frame (not NUL-terminated; *len bytes). */
const char *sp__call_tool(const sp__call_t *c, size_t *len);
/** The counters of c's tool, or NULL while the pool has no manifest. */
sp__tool_stats_t *sp__call_tool_stats(const sp__call_t *c);
/** How many calls c may find queued ahead of it inside a busy worker (see scheduler.h). */
int sp__call_depth_cap(const sp__call_t *c);

/**
 * Completes a call: success when code == 0 (json/len the result, copied), else
 * the error, whose texts move into the call's result (err is left empty; NULL
 * means a bare code). Counts it, then runs the async callback and frees the
 * call, or marks a sync call done for its waiting caller.
 */
void sp__call_finish(sp__call_t *c, int code, const char *json, size_t len, sp_error_t *err);

/**
 * Completes c with a result: json (copied) and, when arrays is not NULL, the
 * arrays part of its RESULT frame, whose shared arrays are in region (they
 * become the caller's views; see arrays.h). Returns the code c completed
 * with: SP_EPROTOCOL for malformed array descriptors.
 */
int sp__call_succeed(sp__call_t *c, const char *json, size_t len, struct sp__shm_s *region,
                     const uint8_t *arrays, size_t arrays_len);

/** Frees the input blocks c still owns (done when it completes). */
void sp__call_release_inputs(sp__call_t *c);

/** The deadline of c passed: fails it with a queue or run timeout. */
void sp__call_expire(sp__call_t *c);

/**
 * Cancels c (queued or running; `by` says who, for the message): its worker
 * is told to stop it, and c completes with SP_ECANCELLED.
 */
void sp__call_cancel(sp__call_t *c, const char *by);

#endif /* SP_CORE_CALL_H */

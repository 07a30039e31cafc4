/*
 * runtime.h - the runtime (runtime.c): the loop thread, the client -> loop
 * queue, start/stop phases and the helpers every loop-thread callback ends
 * with. Everything here is owned by the loop thread unless a field says
 * otherwise.
 *
 * Inside src/core calls go one way: runtime.c (start/stop, loop thread) and
 * execute.c (the call entry points) ->
 * pool.c (scheduling, supervision) -> worker.c (one process, frames) ->
 * protocol.c (bytes). call.c completes calls for all of them; stats.c reads
 * pools and workers; waiting.c wakes client threads; source.c serves an
 * attached event source; report.c collects per-worker reports. Lower layers
 * call back up only through the sp__rt_* and sp__pool_* hooks declared for it.
 */
#ifndef SP_CORE_RUNTIME_H
#define SP_CORE_RUNTIME_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <uv.h>

#include "call.h"
#include "clock.h"
#include "config.h"
#include "pool.h"
#include "protocol.h"
#include "scheduler.h"
#include "snakepit.h"
#include "waiting.h"

/** Control request from a client thread (stats, stop). */
typedef struct sp__ctl_s {
  sp__msg_t msg;
  sp__pool_t *pool; /* STATS: NULL = all pools */
  int graceful_ms;  /* STOP */
  int owned;        /* heap-allocated by sp_runtime_drain: the loop frees it */
  char *json;       /* STATS reply, handed to the caller */
  const sp_loop_source_t *src; /* ATTACH */
  int rc;
  _Atomic uint32_t done;
} sp__ctl_t;

struct sp_runtime_s {
  sp__config_t cfg;
  sp__pool_t *pools;
  size_t pool_count;
  char *worker_path;
  char *sdk_dir;

  uv_loop_t loop;
  uv_async_t wakeup;
  uv_timer_t deadline_timer;
  uv_timer_t phase_timer; /* startup timeout, graceful-stop and kill deadlines */
  uv_timer_t maint_timer; /* pings, recycling, stuck calls, degraded recovery */
  uv_thread_t thread;
  uv_thread_t loop_tid; /* identity of the loop thread, for misuse checks */

  pthread_mutex_t qmu; /* guards qhead/qtail */
  sp__msg_t *qhead, *qtail;
  int qclosed; /* under qmu: the loop thread reads the queue no more */

  sp__dheap_t deadlines;
  int64_t timer_due; /* due time the deadline timer is armed for, or -1 */
  sp__worker_t *dirty; /* workers with unflushed output */

  /* Sync callers (waiting.c): they sleep on wake_seq, each on its bit. */
  _Atomic uint32_t wake_seq; /* futex word, bumped by every wake-up */
  atomic_int sleepers;       /* callers in (or entering) the futex wait */
  uint32_t wake_bits;        /* loop thread: bits of the calls finished this turn */

  int phase; /* SP__PHASE_* */
  atomic_int stopping;
  int graceful_done;
  sp__ctl_t *stop_ctl;
  int live_workers; /* spawned and not yet freed */
  size_t active_calls; /* received by the loop and not yet finished */

  /* The attached event source (source.c); loop thread, except source_kicked. */
  sp_loop_source_t source;
  int source_on;      /* attached; its handles are open */
  int close_deferred; /* the runtime's handles close once the source is gone */
  int in_source;      /* inside the source's run(): calls are submitted directly */
  uv_poll_t source_poll;
  uv_timer_t source_timer;
  uv_check_t source_check; /* runs a kicked source at the end of a loop turn */
  atomic_int source_kicked;
  atomic_int source_attached; /* readable from any thread */

  /* Busy-polling after activity (see before_poll in runtime.c). */
  uv_prepare_t hot_prep;
  uv_idle_t hot_idle;
  uint64_t events;      /* calls taken in or finished, ever */
  uint64_t events_seen; /* value of events at the last check */
  uint64_t hot_since_ns; /* when events last moved */
  int hot;              /* hot_idle is running: the loop polls without sleeping */
  uint64_t hot_window_ns; /* SNAKEPIT_LOOP_SPIN_US at start; 0 = never */

  /* Streams in flight (stream.c; loop thread) and the ids sp_cancel() takes. */
  sp__call_t *streams;
  _Atomic uint64_t next_call_id;

  /* Host functions tools may call (hostcall.c): guarded by hfmu, any thread. */
  pthread_mutex_t hfmu;
  pthread_cond_t hfcond; /* a running host function returned */
  struct sp__hostfn_s *hostfns;

  /* Startup handshake with the starting thread. */
  _Atomic uint32_t start_done;
  int start_rc;
  sp_error_t start_err;

  struct sp__remote_s *remote; /* remote pools (src/cluster/remote.c), or NULL */
};

/** A stopping runtime gives no worker more than this to exit (or its drain_timeout). */
#define SP__STOP_DRAIN_MAX_MS 5000

/** Period of the maintenance timer: pings, recycling, stuck calls, recovery. */
#define SP__MAINT_PERIOD_MS 100

enum { SP__PHASE_STARTING = 0, SP__PHASE_RUNNING, SP__PHASE_DRAINING, SP__PHASE_SHUTDOWN };

/** Re-arms the deadline timer for the earliest deadline. Loop thread. */
void sp__rt_arm_deadlines(sp_runtime_t *rt);
/** Queues w for a flush at the end of this loop turn. Loop thread. */
void sp__rt_mark_dirty(sp_runtime_t *rt, sp__worker_t *w);
/** Writes out every dirty worker's buffer. Loop thread. */
void sp__rt_flush(sp_runtime_t *rt);
/** End of a loop-thread callback: flush what it queued and re-arm the deadline timer. */
void sp__rt_settle(sp_runtime_t *rt);
/** Called when the calls in flight may have dropped to zero (graceful stop). */
void sp__rt_check_drained(sp_runtime_t *rt);
/** Startup progress: a pool became ready or failed (err != NULL). */
void sp__rt_startup_event(sp_runtime_t *rt, const sp_error_t *err);
/** A worker's handles are all closed and it was freed. */
void sp__rt_worker_gone(sp_runtime_t *rt);
/** The event source was detached: close the runtime's handles if that waited for it. */
void sp__rt_source_gone(sp_runtime_t *rt);
/**
 * Posts a message to the loop thread. Any thread. 0, or SP_ESTOPPED once the
 * loop thread takes no more messages (it stopped): the message is then still
 * the caller's, and nothing will answer it.
 */
int sp__rt_post(sp_runtime_t *rt, sp__msg_t *m);
/** The pool named `name`, or NULL with err naming the pools there are. Any thread. */
sp__pool_t *sp__rt_find_pool(sp_runtime_t *rt, const char *name, sp_error_t *err);
/** True on the runtime's loop thread. */
int sp__rt_on_loop_thread(sp_runtime_t *rt);
/** Takes a new call in on the loop thread (what the client queue's handler does). */
void sp__rt_accept_call(sp_runtime_t *rt, sp__call_t *c);
/**
 * Validates a call on the calling thread and builds it with its encoded CALL
 * frame (what sp_execute*() share); refusals count against the pool. Any thread.
 */
int sp__rt_make_call(sp_runtime_t *rt, const char *pool, const char *tool, const char *args,
                     const sp_call_opts_t *opts, sp__call_t **out, sp_error_t *err);

#endif /* SP_CORE_RUNTIME_H */

/*
 * runtime.h - internal types shared by the runtime, its pools and the
 * manager-side workers: calls, pools, the runtime and the loop-thread helpers.
 * Everything here is owned by the loop thread unless a field says otherwise.
 */
#ifndef SP_CORE_RUNTIME_H
#define SP_CORE_RUNTIME_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <uv.h>

#include "config.h"
#include "protocol.h"
#include "scheduler.h"
#include "snakepit.h"

typedef struct sp__worker_s sp__worker_t;
typedef struct sp__pool_s sp__pool_t;

/** Header shared by everything that travels the client -> loop queue. */
typedef struct sp__msg_s {
  struct sp__msg_s *next;
  int kind; /* SP__MSG_* */
} sp__msg_t;

enum { SP__MSG_CALL = 1, SP__MSG_STATS, SP__MSG_STOP, SP__MSG_ATTACH, SP__MSG_DETACH };

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
  uint32_t slot;
  int idempotent; /* may be retried once on another worker after a crash */
  int retried;
  sp_done_cb cb; /* async completion, or NULL for sync */
  void *ud;
  sp_result_t *res;    /* where the outcome goes: the caller's (sync) or own (async) */
  sp_result_t own;
  _Atomic uint32_t done; /* sync: set to 1 by the loop (waiting.c) */
  int wait_bit;          /* sync: the caller's bit of rt->wake_seq */
  size_t frame_len;
  uint8_t frame[]; /* header + CALL body, id patched at dispatch */
} sp__call_t;

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

/** Per-pool counters, loop-thread owned. */
/** Why a worker was recycled; indexes sp__pool_stats_t.recycles. */
typedef enum {
  SP__RECYCLE_MAX_REQUESTS = 0,
  SP__RECYCLE_TTL,
  SP__RECYCLE_RSS,
  SP__RECYCLE_CANCEL_GRACE,
  SP__RECYCLE_COUNT
} sp__recycle_reason_t;

const char *sp__recycle_reason_name(sp__recycle_reason_t r);

/** Upper bounds (microseconds) of the cumulative latency histogram exported as metrics. */
#define SP__HIST_BOUNDS_US \
  {50, 100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000, \
   1000000, 2500000, 5000000, 10000000}
#define SP__HIST_NBOUNDS 17

/** Per-tool counters. */
typedef struct sp__tool_stats_s {
  uint64_t gap_ewma_ns; /* its recent per-call time in a worker; 0 = not measured yet */
  uint64_t calls;
  uint64_t ok;
  uint64_t failed[8]; /* by sp_category_t */
} sp__tool_stats_t;

typedef struct sp__pool_stats_s {
  uint64_t hist[SP__HIST_NBOUNDS + 1]; /* calls per bound; the last is +Inf */
  uint64_t latency_sum_us;
  uint64_t calls;
  uint64_t recycles[SP__RECYCLE_COUNT];
  uint64_t retries;       /* idempotent calls retried after a crash */
  uint64_t ping_kills;    /* workers killed for missing pings */
  uint64_t ok;
  uint64_t failed[8]; /* by sp_category_t */
  uint64_t crashes;
  uint64_t restarts;
  uint64_t queue_peak;
  uint64_t latency_buckets[256]; /* see stats.c */
} sp__pool_stats_t;

/** A position in a pool: the worker occupying it and its respawn state. */
typedef struct sp__pool_slot_s {
  sp__worker_t *worker;
  uv_timer_t respawn;
  int crashes_in_row;
  sp__pool_t *pool;
  int index;
} sp__pool_slot_t;

struct sp__pool_s {
  sp_runtime_t *rt;
  const sp__pool_config_t *cfg;
  int index;
  sp__pool_slot_t *slots; /* cfg->pool_size */
  sp__slots_t **views;    /* slots[i].worker->slots, or NULL; for sp__sched_pick */
  size_t cursor;
  sp__fifo_t queue;
  unsigned next_serial; /* worker names w1, w2, ... never reused */
  int ready_once;       /* every position said HELLO at least once */
  int next_spawn;       /* startup: next position to spawn (startup_batch_size at a time) */
  sp__worker_t *retiring; /* recycled workers still draining */
  int degraded;         /* crash loop: calls fail fast until a worker stays up */
  char degraded_reason[512];
  int64_t *crash_times; /* ring of the last crash_loop_max crash times */
  unsigned crash_next;
  /* Set at start from the first HELLO, immutable afterwards (read by clients). */
  char *tools_json;
  char **tool_names;
  size_t tool_count;
  sp__tool_stats_t *tool_stats; /* tool_count entries, loop-thread owned */
  _Atomic uint64_t rejected[8];  /* calls refused on the client thread, by category */
  char *python_version;
  int gil_enabled;             /* of the first worker; stats use the live workers' */
  int free_threaded;
  uint64_t gil_reenabled;      /* free-threaded workers found running with the GIL */
  sp__pool_stats_t stats;
  struct sp__forkserver_s *fs; /* worker_start: fork; NULL until needed and after it exits */
  int fork_unsafe;             /* its fork server was not single-threaded: exec from now on */
  uint64_t fork_server_starts; /* fork servers started for this pool */
};

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

  /* Startup handshake with the starting thread. */
  _Atomic uint32_t start_done;
  int start_rc;
  sp_error_t start_err;
};

enum { SP__PHASE_STARTING = 0, SP__PHASE_RUNNING, SP__PHASE_DRAINING, SP__PHASE_SHUTDOWN };

/** Monotonic milliseconds (the clock all deadlines use). */
int64_t sp__now_ms(void);
uint64_t sp__now_ns(void);

/** Blocks until sp__wake_word(word) (spinning briefly first). waiting.c */
void sp__wait_word(_Atomic uint32_t *word);
/** Sets *word and wakes its waiter. */
void sp__wake_word(_Atomic uint32_t *word);
/** The calling thread's bit of a runtime's wake word, for sp__wait_call. */
int sp__wait_bit(void);
/** Blocks until the loop thread finished the sync call c (c->wait_bit set). */
void sp__wait_call(sp_runtime_t *rt, sp__call_t *c);
/** Loop thread: marks the sync call c done; its caller wakes at the end of the turn. */
void sp__rt_call_done(sp_runtime_t *rt, sp__call_t *c);
/** Loop thread: wakes the callers of every call marked done since the last time. */
void sp__rt_wake_callers(sp_runtime_t *rt);

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
/** Posts a message to the loop thread. Any thread. */
void sp__rt_post(sp_runtime_t *rt, sp__msg_t *m);
/** True on the runtime's loop thread. */
int sp__rt_on_loop_thread(sp_runtime_t *rt);
/** Takes a new call in on the loop thread (what the client queue's handler does). */
void sp__rt_accept_call(sp_runtime_t *rt, sp__call_t *c);

/* source.c (loop thread) */
void sp__source_attach(sp_runtime_t *rt, const sp_loop_source_t *src);
void sp__source_detach(sp_runtime_t *rt);


/* pool.c */
int sp__pool_init(sp__pool_t *p, sp_runtime_t *rt, const sp__pool_config_t *cfg, int index);
void sp__pool_free(sp__pool_t *p);
int sp__pool_spawn_all(sp__pool_t *p, sp_error_t *err);
/** Submits a NEW call: dispatches, queues or completes it with an error. */
void sp__pool_submit(sp__pool_t *p, sp__call_t *c);
/** The counters of c's tool, or NULL while the pool has no manifest. */
sp__tool_stats_t *sp__call_tool_stats(const sp__call_t *c);
/** How many calls c may find queued ahead of it inside a busy worker (see scheduler.h). */
int sp__call_depth_cap(const sp__call_t *c);
/** Dispatches queued calls while slots are free. */
void sp__pool_pump(sp__pool_t *p);
/** The tool name inside a call's encoded frame (not NUL-terminated; *len bytes). */
const char *sp__call_tool(const sp__call_t *c, int *len);
/** Completes a call (success when code == 0, json/len the result). Frees or wakes. */
void sp__call_finish(sp__call_t *c, int code, const char *json, size_t len, const sp_error_t *err);
/** The deadline of c passed. */
void sp__call_expire(sp__call_t *c);
/** Fails every queued call with code (stop). */
void sp__pool_fail_queued(sp__pool_t *p, int code, const char *why);
/** Recycles w: a replacement starts first, w drains and exits. */
void sp__pool_recycle(sp__pool_t *p, sp__worker_t *w, sp__recycle_reason_t reason);
/** Periodic checks of every worker of the pool. */
void sp__pool_maintain(sp__pool_t *p, int64_t now);
/** Worker hooks. */
void sp__pool_worker_ready(sp__pool_t *p, sp__worker_t *w);
void sp__pool_worker_exited(sp__pool_t *p, sp__worker_t *w, const sp_error_t *why);
int sp__pool_find_tool(const sp__pool_t *p, const char *tool);

/* stats.c */
void sp__stats_record_latency(sp__pool_stats_t *s, uint64_t ns);
char *sp__stats_pool_json(const sp__pool_t *p);
char *sp__stats_all_json(const sp_runtime_t *rt);

#endif /* SP_CORE_RUNTIME_H */

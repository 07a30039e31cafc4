/*
 * pool.h - one pool of workers (pool.c): its positions, the wait queue,
 * dispatch, recycling, respawning, crash-loop protection and its counters.
 * Loop thread only, except the fields marked as read by clients.
 */
#ifndef SP_CORE_POOL_H
#define SP_CORE_POOL_H

#include <stdatomic.h>
#include <stdint.h>
#include <uv.h>

#include "call.h"
#include "config.h"
#include "scheduler.h"
#include "session.h"

/** Number of sp_category_t values, for counters by category. */
#define SP__CATEGORY_COUNT 8
/** Buckets of the latency histogram behind the quantiles (stats.c). */
#define SP__LATENCY_BUCKETS 256

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
struct sp__tool_stats_s {
  uint64_t gap_ewma_ns; /* its recent per-call time in a worker; 0 = not measured yet */
  uint64_t calls;
  uint64_t ok;
  uint64_t failed[SP__CATEGORY_COUNT]; /* by sp_category_t */
};

/** Per-pool counters, loop-thread owned. */
typedef struct sp__pool_stats_s {
  uint64_t hist[SP__HIST_NBOUNDS + 1]; /* calls per bound; the last is +Inf */
  uint64_t latency_sum_us;
  uint64_t calls;
  uint64_t recycles[SP__RECYCLE_COUNT];
  uint64_t retries;       /* idempotent calls retried after a crash */
  uint64_t ping_kills;    /* workers killed for missing pings */
  uint64_t ok;
  uint64_t failed[SP__CATEGORY_COUNT]; /* by sp_category_t */
  uint64_t crashes;
  uint64_t restarts;
  uint64_t queue_peak;
  uint64_t latency_buckets[SP__LATENCY_BUCKETS]; /* see stats.c */
} sp__pool_stats_t;

/** A position in a pool (pool_size of them): the worker occupying it and its respawn state. */
typedef struct sp__position_s {
  sp__worker_t *worker;
  uv_timer_t respawn;
  int crashes_in_row;
  int active;       /* part of the pool's current size: a worker runs or is on its way */
  int64_t busy_ms;  /* last time its worker was seen with a call (scaling down) */
  sp__pool_t *pool;
  int index;
} sp__position_t;

/** A pool: loop-thread owned, except what the comments mark as read by clients. */
struct sp__pool_s {
  sp_runtime_t *rt;
  const sp__pool_config_t *cfg;
  int index;
  sp__position_t *positions; /* cfg->pool_size */
  sp__load_t **loads;        /* positions[i].worker->load, or NULL; for sp__sched_pick */
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
  char *methods_without_tool;   /* JSON array: the adapter's public methods not marked @tool */
  _Atomic uint64_t rejected[SP__CATEGORY_COUNT]; /* refused on the client thread, by category */
  char *python_version;
  int gil_enabled;             /* of the first worker; stats use the live workers' */
  int free_threaded;
  uint64_t gil_reenabled;      /* free-threaded workers found running with the GIL */
  uint64_t streams_active;     /* streams in flight (loop thread) */
  uint64_t chunks_sent;        /* stream chunks delivered to callers, ever */
  sp__pool_stats_t stats;
  struct sp__forkserver_s *fs; /* worker_start: fork; NULL until needed and after it exits */
  int fork_unsafe;             /* its fork server was not single-threaded: exec from now on */
  int preload_off;             /* preload: auto met an adapter that cannot be preloaded */
  char preload_note[256];      /* why, for the stats */
  uint64_t fork_server_starts; /* fork servers started for this pool */
  /* Sizing between min_workers and pool_size (autoscale.c). */
  int desired;                 /* active positions */
  int64_t wait_window_ms;      /* longest queue wait of a call dispatched since the last tick */
  int64_t last_scale_up_ms;
  uint64_t scale_ups, scale_downs; /* workers added and removed by scaling */
  struct sp__shm_s *input;     /* shared input memory for arrays, mapped by its workers */
  sp__sessions_t sessions;     /* its sessions and the workers they are bound to (session.c) */
  /* Tools calling back (hostcall.c): calls of this pool waiting for a nested
   * tool call, nested tool calls and host function calls its tools made, and
   * those refused before they ran (depth, deadlock, unknown pool, tool or function). */
  int waiting_calls;
  uint64_t nested_calls;
  uint64_t host_calls;
  uint64_t nested_refused;
};

/** Sets up pool p (its positions, timers and shared input memory). 0, or an error in err. */
int sp__pool_init(sp__pool_t *p, sp_runtime_t *rt, const sp__pool_config_t *cfg, int index,
                  sp_error_t *err);
void sp__pool_free(sp__pool_t *p);
int sp__pool_spawn_all(sp__pool_t *p, sp_error_t *err);
/** Submits a NEW call: dispatches, queues or completes it with an error. */
void sp__pool_submit(sp__pool_t *p, sp__call_t *c);
/** Dispatches queued calls while workers have room. */
void sp__pool_pump(sp__pool_t *p);
/** Fails every queued call with code (stop). */
void sp__pool_fail_queued(sp__pool_t *p, int code, const char *why);
/** Recycles w: a replacement starts first, w drains and exits. */
void sp__pool_recycle(sp__pool_t *p, sp__worker_t *w, sp__recycle_reason_t reason);
/** Scaling: adds a worker at a free position (forked when the pool forks). 0 or an error. */
int sp__pool_grow(sp__pool_t *p, sp_error_t *err);
/** Scaling: w (ready, idle) leaves the pool; it drains and exits as a recycled worker does. */
void sp__pool_shrink(sp__pool_t *p, sp__worker_t *w);
/** Periodic checks of every worker of the pool. */
void sp__pool_maintain(sp__pool_t *p, int64_t now);
/** Worker hooks. */
void sp__pool_worker_ready(sp__pool_t *p, sp__worker_t *w);
void sp__pool_worker_exited(sp__pool_t *p, sp__worker_t *w, const sp_error_t *why);
int sp__pool_find_tool(const sp__pool_t *p, const char *tool);

#endif /* SP_CORE_POOL_H */

/*
 * scheduler.h - scheduling decisions with no I/O: which worker gets a call (the
 * ready one with the most free slots), the bounded FIFO of calls waiting for a
 * slot, and the deadline heap that times calls out.
 */
#ifndef SP_CORE_SCHEDULER_H
#define SP_CORE_SCHEDULER_H

#include <stddef.h>
#include <stdint.h>

/** The scheduler's view of one worker. */
typedef struct sp__load_s {
  int capacity; /* 1 per process worker, threads_per_worker per thread worker */
  int inflight; /* slots in use, including calls abandoned by a timeout */
  int ready;    /* accepts new calls (false while starting, draining, dead) */
  int depth;    /* extra calls it may hold queued when every worker is busy */
} sp__load_t;

/** Intrusive link a call carries for the FIFO and the deadline heap. */
typedef struct sp__sched_item_s {
  struct sp__sched_item_s *next;
  struct sp__sched_item_s *prev;
  int64_t due_ms;  /* heap key: when this item must be timed out */
  size_t heap_idx; /* SP__NOT_IN_HEAP when not in a heap */
  int in_fifo;
} sp__sched_item_t;

#define SP__NOT_IN_HEAP ((size_t)-1)

typedef struct sp__fifo_s {
  sp__sched_item_t *head;
  sp__sched_item_t *tail;
  size_t len;
} sp__fifo_t;

typedef struct sp__dheap_s {
  sp__sched_item_t **items;
  size_t len;
  size_t cap;
} sp__dheap_t;

/** Prepares an item that is in no FIFO and no heap. */
void sp__sched_item_init(sp__sched_item_t *it);

/**
 * Picks the ready worker with the most free threads; among equals the first at
 * or after *cursor, so equal workers share load round-robin. When no worker has
 * a free thread, picks the one with the most pipeline room, counting at most
 * depth_cap of each worker's depth (the call's own limit, from its tool's call
 * length): the call then waits inside that worker rather than in the manager's
 * queue, so the worker goes straight on to it. Returns the index and advances
 * *cursor past it, or -1 when every ready worker is full for this call.
 */
int sp__sched_pick(sp__load_t *const *workers, size_t n, size_t *cursor, int depth_cap);

/** How much queued work a call may find ahead of it inside a worker. */
#define SP__PIPELINE_BUDGET_NS 1000000u

/**
 * Folds one completion into a worker's average time between completions (an
 * exponentially weighted mean, 1/8 weight per sample). gap_ns: time from the
 * later of the call's dispatch and the worker's previous completion to this one,
 * i.e. what a call queued inside the worker waits per call ahead of it.
 */
uint64_t sp__sched_gap_update(uint64_t ewma_ns, uint64_t gap_ns);

/**
 * Pipeline depth for calls that complete every ewma_ns: as many queued calls
 * as fit in SP__PIPELINE_BUDGET_NS, at most max_depth. Short calls get the
 * whole depth (fewer wake-ups, batched I/O); calls of a millisecond or more get
 * none, so no call waits behind a long one in a busy worker while another
 * worker may free up first. Used for each worker (from its recent completions;
 * 0, nothing measured yet, gives max_depth) and for each call (from its tool's
 * recent completions; a tool not measured yet is not pipelined).
 */
int sp__sched_depth(uint64_t ewma_ns, int max_depth);

void sp__fifo_push(sp__fifo_t *q, sp__sched_item_t *it);
/** Removes and returns the oldest item, or NULL. */
sp__sched_item_t *sp__fifo_pop(sp__fifo_t *q);
/** Removes an item known to be in q. */
void sp__fifo_remove(sp__fifo_t *q, sp__sched_item_t *it);

/** Adds it keyed by it->due_ms. 0 or SP_ENOMEM. */
int sp__dheap_push(sp__dheap_t *h, sp__sched_item_t *it);
/** Removes it if present. */
void sp__dheap_remove(sp__dheap_t *h, sp__sched_item_t *it);
/** Earliest item, or NULL. */
sp__sched_item_t *sp__dheap_top(const sp__dheap_t *h);
void sp__dheap_free(sp__dheap_t *h);

#endif /* SP_CORE_SCHEDULER_H */

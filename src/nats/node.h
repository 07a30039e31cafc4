/*
 * node.h - a NATS node (`snakepit serve --nats URL`): serves the runtime's
 * pools to a NATS cluster through the public API, the way src/http/ serves
 * them over HTTP. The wire format is src/cluster/wire.h; the service protocol
 * answers ($SRV.PING/INFO/STATS) are service.c.
 */
#ifndef SP_NATS_NODE_H
#define SP_NATS_NODE_H

#include <nats/nats.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "snakepit.h"
#include "wire.h"

#define SP__NODE_MAX_POOLS 64
/* The queue group of every subject a message of which one node should take. */
#define SP__NODE_QUEUE_GROUP "snakepit"

/** One served pool: its subscriptions and counters. */
typedef struct sp__node_pool_s {
  struct sp__node_s *node;
  char name[128];
  char call_subject[SP__WIRE_SUBJECT_MAX];
  char wait_subject[SP__WIRE_SUBJECT_MAX];
  char tools_subject[SP__WIRE_SUBJECT_MAX];
  int capacity; /* calls it runs at once at most (max_workers x threads_per_worker) */
  atomic_int in_flight;
  natsSubscription *call_sub; /* present only while in_flight < capacity (under node->mu) */
  natsSubscription *wait_sub, *tools_sub;
  /* Counters of the service protocol's STATS (under node->mu). */
  uint64_t num_requests, num_errors;
  int64_t processing_ns;
  char last_error[256];
} sp__node_pool_t;

typedef struct sp__node_s {
  sp_runtime_t *rt;
  natsConnection *nc;
  char id[32];    /* unique per process run */
  char name[128]; /* --nats-name, or HOST-PID */
  char host[96];
  char started[40]; /* RFC 3339, UTC */
  pthread_mutex_t mu;
  sp__node_pool_t pools[SP__NODE_MAX_POOLS];
  size_t npools;
  natsSubscription *own_subs[16]; /* $SRV.* and the node's private subjects */
  size_t nown;
  natsSubscription *retired[256]; /* call subscriptions draining after the node filled up */
  size_t nretired;
  atomic_int draining;
  struct sp__node_jobs_s *jobs; /* durable jobs (jobs.c), NULL without JetStream */
  struct job_s *streams;        /* streams running here (node.c), under mu */
} sp__node_t;

/**
 * Connects to NATS and starts serving every local pool of rt. name may be NULL.
 * job_max_deliver: deliveries of a durable job before it counts as lost (0:
 * SP__JOBS_MAX_DELIVER); the first node to create a pool's consumer sets it.
 * On failure err says why (URL, reachability, auth). *out is released by
 * sp__node_destroy(). rt must outlive the node.
 */
int sp__node_start(sp_runtime_t *rt, const sp_nats_opts_t *opts, const char *name,
                   int job_max_deliver, sp__node_t **out, sp_error_t *err);

/**
 * Stops taking calls (the pools' subscriptions go; calls already delivered
 * still run), waits up to wait_ms for the calls in flight to be answered.
 * Returns the number of calls still in flight (0: drained).
 */
int sp__node_drain(sp__node_t *n, int64_t wait_ms);

/** Closes the connection and frees the node. NULL is fine. */
void sp__node_destroy(sp__node_t *n);

/** Subscribes to or drains the pool's "call" subject to match its free slots. Any thread. */
void sp__node_gate(sp__node_pool_t *p);
/** Counts a finished call (ns it took, its error or NULL) for the service STATS. */
void sp__node_account(sp__node_pool_t *p, int64_t ns, const sp_error_t *e);
/** Monotonic nanoseconds. */
int64_t sp__node_now_ns(void);

/* jobs.c */
/**
 * Starts taking durable jobs of every pool, each delivered at most max_deliver
 * times (0: SP__JOBS_MAX_DELIVER); logs and does nothing without JetStream.
 */
void sp__node_jobs_start(sp__node_t *n, int max_deliver);
/** Stops taking jobs, stores and acknowledges the finished ones, ends the threads. Idempotent. */
void sp__node_jobs_stop(sp__node_t *n);

/* service.c */
/** Subscribes the node's $SRV.PING/INFO/STATS subjects (all three name forms). */
natsStatus sp__node_service_start(sp__node_t *n);

#endif /* SP_NATS_NODE_H */

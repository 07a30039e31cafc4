/*
 * session.h - sessions with worker affinity (session.c): which worker each
 * session of a pool is bound to, where a session's call goes in each mode,
 * idle expiry, explicit ends, and what happens when the worker goes away.
 * The table is loop-thread owned; only sp__session_id_check runs anywhere.
 */
#ifndef SP_CORE_SESSION_H
#define SP_CORE_SESSION_H

#include <stddef.h>
#include <stdint.h>

#include "call.h"

/** One live session of a pool. */
typedef struct sp__session_s {
  struct sp__session_s *next; /* hash chain */
  sp__worker_t *worker;       /* the worker holding its state; NULL unbound or lost */
  int lost;                   /* its worker went away: strict calls fail until it ends */
  char lost_why[192];         /* e.g. "its worker w2 (pid 41) was recycled (max_requests)" */
  int ended;                  /* out of the table; freed once no call refers to it */
  int end_pending;            /* ended with calls running on its worker: SESSION_END after them */
  int inflight;               /* its calls running on its worker (not the ephemeral ones) */
  int refs;                   /* calls that point at it (queued or running) */
  int64_t last_used_ms;       /* last dispatch or completion */
  uint64_t calls;             /* calls dispatched in it */
  size_t id_len;
  char id[]; /* NUL-terminated */
} sp__session_t;

/** A pool's sessions: a chained hash table and the pool's session counters. */
typedef struct sp__sessions_s {
  sp__session_t **buckets;
  size_t nbuckets; /* a power of two */
  size_t count;
  uint64_t started, ended, expired, lost, busy; /* counters since start */
} sp__sessions_t;

/** How a session call is placed (sp__session_place). */
enum { SP__PLACE_WAIT = -1, SP__PLACE_DONE = -2 };

/**
 * Checks a session id (any thread): 1..SP_SESSION_ID_MAX bytes of valid UTF-8
 * without control characters (C0, DEL, C1). 0, or SP_EINVAL with what is
 * wrong and where in why (never quoting the id's bad bytes).
 */
int sp__session_id_check(const char *id, size_t *len, char *why, size_t cap);

/** Releases every session of p (runtime stop). */
void sp__sessions_free(sp__pool_t *p);

/**
 * Where session call c goes now: a position index to dispatch it to,
 * SP__PLACE_WAIT (it waits in the pool's queue) or SP__PLACE_DONE (it failed
 * and completed: SP_ESESSIONBUSY, SP_ESESSIONLOST). The first call of a
 * session binds it to the worker the scheduler picks.
 */
int sp__session_place(sp__pool_t *p, sp__call_t *c);

/** Whether a queued session call that could not be placed waits for its own worker only. */
int sp__session_waits_for_worker(const sp__call_t *c);

/** c, a session call, goes to its worker now (sets the frame's session flags). */
void sp__session_dispatched(sp__call_t *c);

/** c, a session call, left its worker (completed or about to be retried). */
void sp__session_call_done(sp__call_t *c);

/** w leaves the pool (exit, recycle, scaling down): its sessions are lost, with why. */
void sp__sessions_worker_gone(sp__pool_t *p, sp__worker_t *w, const char *why);

/** Ends session id of p (loop thread). No-op for an unknown id. */
void sp__session_end(sp__pool_t *p, const char *id, size_t len);

/** Maintenance tick: expires sessions idle for session_ttl. */
void sp__sessions_tick(sp__pool_t *p, int64_t now);

/** The pool's sessions for the stats: counts, counters and the first sessions. */
struct json_t *sp__sessions_json(const sp__pool_t *p, int64_t now);

/** An sp_session_end() request posted from a client thread (SP__MSG_SESSION_END). */
void sp__session_msg(sp_runtime_t *rt, sp__msg_t *m);

#endif /* SP_CORE_SESSION_H */

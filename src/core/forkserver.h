/*
 * forkserver.h - a pool's fork server, seen from the manager (see forkserver.c).
 */
#ifndef SP_CORE_FORKSERVER_H
#define SP_CORE_FORKSERVER_H

#include "runtime.h"

typedef struct sp__forkserver_s sp__forkserver_t;

/**
 * Has pool p's fork server fork worker w, starting the fork server when the
 * pool has none. Takes over fds (the child's ends: SP__CHILD_* of worker.h) in
 * every case. The request waits here until the fork server
 * imported the adapter's module; w's exit is reported as for an exec'd worker.
 * Returns 0, or a negative code with err set when no fork server could start.
 */
int sp__forkserver_request(sp__pool_t *p, sp__worker_t *w, int fds[4], sp_error_t *err);

/** w is being finalised: its fork server forgets it. */
void sp__forkserver_forget(sp__worker_t *w);

/** A kill of w was asked for before its pid is known: done once the pid arrives,
 * or at once (w never starts) when its request is still queued. */
void sp__forkserver_kill_early(sp__worker_t *w);

/** Runtime stop: the pool's fork server exits once its workers did, or is killed
 * after drain_timeout (at most 5 s) plus a second. */
void sp__forkserver_stop(sp__pool_t *p);

/** The fork server for the stats: pid and whether it is ready; 0 and 0 when there is none. */
void sp__forkserver_state(const sp__pool_t *p, int *pid, int *ready);

#endif /* SP_CORE_FORKSERVER_H */

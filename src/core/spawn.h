/*
 * spawn.h - starting snakepit-worker processes (exec'd workers and fork servers).
 */
#ifndef SP_CORE_SPAWN_H
#define SP_CORE_SPAWN_H

#include "runtime.h"

/**
 * Starts snakepit-worker for pool p in its own session and process group,
 * with `sock` as fd 3, `out` as stdout and stderr, and the shared memory fds
 * in_shm and out_shm as fds 4 and 5 (-1: none; all stay open in the caller).
 * worker_id names the worker; NULL starts the pool's fork server
 * (--fork-server, same pool-level options and environment). Returns 0 with
 * *proc running, or a negative code with err set.
 */
int sp__spawn_worker_process(sp__pool_t *p, const char *worker_id, uv_process_t *proc,
                             uv_exit_cb on_exit, int sock, int out, int in_shm, int out_shm,
                             sp_error_t *err);

#endif /* SP_CORE_SPAWN_H */

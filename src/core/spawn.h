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

/**
 * Runs snakepit-worker for the pool configured by cfg with flag (e.g.
 * "--choose-profile") and no socket, waiting for it at most startup_timeout:
 * *out gets its stdout, *diag its stderr (both NUL-terminated, caller frees;
 * either may stay NULL when empty), *status its exit code (128 + signal).
 * Returns 0, or a negative code with err set when it could not run or timed
 * out. Blocking: only before the runtime's loop starts.
 */
int sp__spawn_probe(sp_runtime_t *rt, const sp__pool_config_t *cfg, const char *flag,
                    char **out, char **diag, int *status, sp_error_t *err);

#endif /* SP_CORE_SPAWN_H */

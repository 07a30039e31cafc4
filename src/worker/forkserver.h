/*
 * forkserver.h - the fork-server mode of snakepit-worker (see forkserver.c).
 */
#ifndef SP_WORKER_FORKSERVER_H
#define SP_WORKER_FORKSERVER_H

#include "pyhost.h"

/**
 * Imports the adapter's module (pyhost_preload) and serves fork requests on
 * the control socket ctl until the manager closes it and every child exited;
 * then exits the process. Returns only in a forked child: its worker id
 * (malloc'd), with the worker's socket on fd 3, its output on fds 1 and 2,
 * the GIL held, and its parent-death signal armed.
 */
char *forkserver_run(const pyhost_opts_t *po, int ctl);

#endif /* SP_WORKER_FORKSERVER_H */

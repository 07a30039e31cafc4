/*
 * process.h - the worker process around its threads: its command line,
 * dying with the manager (and taking what its tools started along), malloc
 * thresholds for array work, and the process title `ps` shows.
 */
#ifndef SP_WORKER_PROCESS_H
#define SP_WORKER_PROCESS_H

#include <stddef.h>

/** The command line (libsnakepit writes it; see proc_parse_args). Strings
 * point into argv; paths and aargs are the caller's to free. */
typedef struct proc_args_s {
  int fd;           /* --fd: the socket to the manager (-1 with --choose-profile) */
  int threads;      /* --threads, 1..SP__THREADS_MAX */
  size_t max_frame; /* --max-frame, at least SP__MIN_FRAME_BYTES */
  char *worker_id;  /* --worker-id, default "w1" */
  const char *adapter, *pool, *profile; /* profile defaults by threads */
  const char **paths; /* --python-path..., npaths of them */
  size_t npaths;
  const char **aargs; /* --adapter-arg..., naargs of them */
  size_t naargs;
  int fork_server, preload, choose;
} proc_args_t;

/**
 * Parses the command line into *a: 0 to go on; 1 when --help was printed;
 * 2 when it is wrong (usage printed to stderr); -1 when memory ran out.
 * --thread-safety-check sets SNAKEPIT_THREAD_SAFETY_CHECK=1 for the SDK.
 */
int proc_parse_args(int argc, char **argv, proc_args_t *a);

/** Fixed malloc thresholds for array temporaries, unless the environment sets its own. */
void proc_tune_malloc(void);

/**
 * Remembers the kernel's argv strings as the place for the title and returns
 * a copy of argv to parse (the title overwrites the original), or NULL when
 * memory ran out.
 */
char **proc_title_init(int argc, char **argv);

/** Sets the title (`ps`, /proc/PID/cmdline) and the short name (`top`). */
void proc_title_set(const char *pool, const char *worker_id, const char *profile, int threads,
                    const char *adapter);

/**
 * Never outlive the manager: a parent-death signal (and SIGTERM) ends the
 * process through proc_die(); starts with a clean signal mask and SIGPIPE
 * ignored. Dies at once when the manager is already gone.
 */
void proc_die_with_manager(void);

/**
 * The manager is gone: when this worker leads its own process group, end what
 * its tools started (also what left the group), then the group; then exit.
 * Async-signal-safe.
 */
void proc_die(void) __attribute__((noreturn));

/** From here on this process (a worker, not a fork server) ends its tools'
 * children when it ends. */
void proc_sweep_on(void);

/** At a clean exit: what the tools started and left the group goes now. */
void proc_sweep(void);

#endif /* SP_WORKER_PROCESS_H */

/*
 * snakepit.h - the public C API of libsnakepit.
 *
 * A runtime owns pools of Python worker processes and runs "tools" (methods of a
 * Python adapter) on them. Workers run either one call at a time (process profile)
 * or many at once on native threads (thread profile).
 *
 *   sp_runtime_t *rt;
 *   sp_error_t err;
 *   if (sp_runtime_start_file(&rt, "pools.yaml", &err) != 0) { puts(err.message); }
 *   sp_result_t res;
 *   if (sp_execute(rt, "hpc_pool", "ping", "{}", NULL, &res) == 0) puts(res.json);
 *   sp_result_free(&res);
 *   sp_runtime_stop(rt, 5000);
 *
 * Conventions: every int function returns 0 on success or a negative SP_E* code.
 * Detail goes into a caller-supplied sp_error_t. Strings handed to the caller are
 * owned by the caller and released with the function named in the comment.
 */
#ifndef SNAKEPIT_H
#define SNAKEPIT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(SP_BUILDING_LIBRARY) && defined(__GNUC__)
#define SP_EXTERN __attribute__((visibility("default")))
#else
#define SP_EXTERN
#endif

#define SP_VERSION_MAJOR 0
#define SP_VERSION_MINOR 1
#define SP_VERSION_PATCH 0

/*
 * Error codes: X(NAME, value, category, description). The category groups codes
 * the way callers usually react to them.
 */
#define SP_ERRNO_MAP(X)                                                               \
  X(INVAL, -1, VALIDATION, "invalid argument")                                        \
  X(NOMEM, -2, INTERNAL, "out of memory")                                             \
  X(CONFIG, -3, VALIDATION, "invalid configuration")                                  \
  X(BADJSON, -4, VALIDATION, "invalid JSON arguments")                                \
  X(BADARGS, -5, VALIDATION, "arguments do not match the tool")                       \
  X(NOTOOL, -6, VALIDATION, "unknown tool")                                           \
  X(NOPOOL, -7, POOL, "unknown pool")                                                 \
  X(SATURATED, -8, POOL, "pool saturated")                                            \
  X(QUEUETIMEOUT, -9, TIMEOUT, "timed out waiting for a free worker")                 \
  X(TIMEOUT, -10, TIMEOUT, "call timed out")                                          \
  X(CRASHED, -11, WORKER, "worker crashed")                                           \
  X(STARTUP, -12, WORKER, "worker failed to start")                                   \
  X(PYTHON, -13, PYTHON, "the tool raised an exception")                              \
  X(PROTOCOL, -14, PROTOCOL, "protocol error")                                        \
  X(TOOLARGE, -15, PROTOCOL, "frame too large")                                       \
  X(STOPPED, -16, POOL, "runtime is stopping")                                        \
  X(IO, -17, INTERNAL, "system call failed")                                          \
  X(DEGRADED, -18, POOL, "pool degraded")                                             \
  X(CANCELLED, -19, TIMEOUT, "call cancelled")                                        \
  X(BADTHREAD, -20, VALIDATION, "blocking call made from the runtime's own thread")

/** Negative error codes returned by every int function of this API. */
typedef enum {
#define SP__ERRNO_ENUM(name, value, cat, desc) SP_E##name = value,
  SP_ERRNO_MAP(SP__ERRNO_ENUM)
#undef SP__ERRNO_ENUM
} sp_errno_t;

/** How a caller should treat an error; see sp_category_name(). */
typedef enum {
  SP_CAT_NONE = 0,
  SP_CAT_VALIDATION, /* bad config, bad arguments, unknown tool */
  SP_CAT_POOL,       /* unknown pool, saturated, stopping */
  SP_CAT_TIMEOUT,    /* the deadline passed (queue + run time) */
  SP_CAT_WORKER,     /* the worker crashed or failed to start */
  SP_CAT_PYTHON,     /* the tool raised an exception */
  SP_CAT_PROTOCOL,   /* malformed or oversized frames */
  SP_CAT_INTERNAL    /* out of memory, failed system call */
} sp_category_t;

/**
 * Error detail filled by any function that takes an sp_error_t *. Plain value
 * type: the caller owns it (stack is fine), nothing inside needs freeing. Long
 * texts are truncated; a traceback keeps its last lines.
 */
typedef struct sp_error_s {
  int code;                 /* SP_E* value, 0 when no error */
  sp_category_t category;   /* derived from code */
  char message[1024];       /* what happened and where, one or more lines */
  char python_type[128];    /* e.g. "ValueError" for SP_EPYTHON, else "" */
  char traceback[8192];     /* Python traceback for SP_EPYTHON, else "" */
} sp_error_t;

/**
 * Outcome of one call. On success json holds the tool's result as JSON text
 * (NUL-terminated, len bytes) and error.code is 0; on failure json is NULL.
 * Release with sp_result_free(); the struct itself is the caller's.
 */
typedef struct sp_result_s {
  char *json;
  size_t len;
  sp_error_t error;
} sp_result_t;

/** Per-call options. Zero-initialise and set what you need; NULL means defaults. */
typedef struct sp_call_opts_s {
  int64_t timeout_ms; /* queue + run time; 0 = the pool's `timeout` */
  int idempotent;     /* non-zero: if the worker crashes under the call, retry it once
                         on another worker instead of failing with SP_ECRASHED */
} sp_call_opts_t;

typedef struct sp_runtime_s sp_runtime_t;

/**
 * Completion callback of sp_execute_async(). Runs on the runtime's loop thread:
 * it must not block and must not call sp_execute() (use sp_execute_async()).
 * The result is borrowed for the duration of the callback; take res->json
 * (set res->json = NULL) to keep it, and then free it with sp_free().
 */
typedef void (*sp_done_cb)(sp_result_t *res, void *userdata);

/**
 * Log sink for the runtime and worker output (worker stderr lines arrive with a
 * "[pool/wN pid P]" prefix). level: 0 debug, 1 info, 2 warning, 3 error. The line
 * is borrowed. Called from any thread; must be thread-safe. NULL restores the
 * default (stderr).
 */
typedef void (*sp_log_cb)(int level, const char *line, void *userdata);

/** Name of an error code, e.g. "SP_ETIMEOUT". Static string; never NULL. */
SP_EXTERN const char *sp_err_name(int code);
/** Human description of an error code. Static string; never NULL. */
SP_EXTERN const char *sp_strerror(int code);
/** Category of an error code. */
SP_EXTERN sp_category_t sp_err_category(int code);
/** Lower-case category name: "validation", "pool", "timeout", "worker", "python", ... */
SP_EXTERN const char *sp_category_name(sp_category_t cat);
/** Library version string, e.g. "0.1.0". Static. */
SP_EXTERN const char *sp_version(void);

/** Sets the process-wide log sink. Thread-safe. */
SP_EXTERN void sp_set_log_handler(sp_log_cb cb, void *userdata);

/**
 * Starts a runtime from a YAML file; path NULL means the built-in default pools
 * (hpc_pool: thread profile 2 x 4, default: process profile 2 x 1, both with the
 * showcase adapter). Blocks until every worker has said HELLO or one failed; on
 * failure *rt is NULL and err says which file/line/key or which worker and why
 * (including the adapter's ImportError text). The runtime is released by
 * sp_runtime_stop().
 */
SP_EXTERN int sp_runtime_start_file(sp_runtime_t **rt, const char *path, sp_error_t *err);

/** As sp_runtime_start_file() with YAML text; origin names it in error messages. */
SP_EXTERN int sp_runtime_start_yaml(sp_runtime_t **rt, const char *yaml, size_t len,
                                    const char *origin, sp_error_t *err);

/**
 * Stops the runtime: new calls fail with SP_ESTOPPED, calls in flight and queued
 * get up to graceful_ms to finish (then fail with SP_ESTOPPED), workers are shut
 * down (then killed), and all memory is released. rt is invalid afterwards. Must
 * not be called from a completion callback. Not safe to race with other calls on
 * the same runtime: stop only after your calling threads are done.
 */
SP_EXTERN int sp_runtime_stop(sp_runtime_t *rt, int graceful_ms);

/**
 * Begins a graceful stop and returns at once: new calls fail with SP_ESTOPPED,
 * calls in flight and queued get up to graceful_ms to finish, then workers shut
 * down. Thread-safe (a signal-handling thread may call it while others wait in
 * sp_execute). sp_runtime_stop() must still be called to release the runtime.
 */
SP_EXTERN int sp_runtime_drain(sp_runtime_t *rt, int graceful_ms);

/**
 * Runs tool on pool with args_json (a JSON object text, NULL means "{}") and waits
 * for the outcome. Thread-safe: any number of threads may call it at once. Always
 * fills *res (release it with sp_result_free()) and returns 0 or res->error.code.
 */
SP_EXTERN int sp_execute(sp_runtime_t *rt, const char *pool, const char *tool,
                         const char *args_json, const sp_call_opts_t *opts, sp_result_t *res);

/**
 * Queues a call and returns at once. On 0, cb runs exactly once on the loop thread
 * with the outcome. On a negative return (bad pool, tool or JSON, runtime stopping)
 * cb never runs and err says why. Thread-safe.
 */
SP_EXTERN int sp_execute_async(sp_runtime_t *rt, const char *pool, const char *tool,
                               const char *args_json, const sp_call_opts_t *opts,
                               sp_done_cb cb, void *userdata, sp_error_t *err);

/**
 * Statistics as JSON: one pool's when pool is non-NULL, else {"pools":[...]}.
 * *json is the caller's; free it with sp_free(). Thread-safe.
 */
SP_EXTERN int sp_stats_json(sp_runtime_t *rt, const char *pool, char **json, sp_error_t *err);

/** sp_stats_text() flag: a line per worker (pid, state, calls, running, RSS, uptime). */
#define SP_STATS_TEXT_WORKERS 1u

/**
 * Statistics JSON (from sp_stats_json(), or `snakepit serve`'s /v1/pools[/POOL])
 * as a table for people: per pool its ready workers, threads, busy slots, queue,
 * calls (ok, failed by category), latency p50/p90/p99 and thread utilisation
 * since its workers started. *text is the caller's; free it with sp_free().
 * Needs no runtime; thread-safe.
 */
SP_EXTERN int sp_stats_text(const char *stats_json, unsigned flags, char **text, sp_error_t *err);

/**
 * The pool's tool manifest as a JSON array of {name, description, parameters,
 * supports_streaming}. *json is the caller's; free it with sp_free(). Thread-safe.
 */
SP_EXTERN int sp_tools_json(sp_runtime_t *rt, const char *pool, char **json, sp_error_t *err);

/** Names of the runtime's pools as a JSON array. Free with sp_free(). Thread-safe. */
SP_EXTERN int sp_pools_json(sp_runtime_t *rt, char **json, sp_error_t *err);

/**
 * An event source served by the runtime's own loop thread (advanced use). A
 * server that makes calls on behalf of its clients, like `snakepit serve`, can
 * do its I/O on the thread that completes those calls, so no request pays a
 * hand-off between threads. run(ud) is called on the loop thread when fd is
 * readable, when timeout_ms(ud) milliseconds have passed (asked again after
 * every run; -1 = no timeout), and soon after sp_runtime_kick_source(). Inside
 * run and in completion callbacks, sp_execute_async, sp_stats_json,
 * sp_tools_json and sp_pools_json work; sp_execute does not (it would wait for
 * the thread it runs on).
 */
typedef struct sp_loop_source_s {
  int fd;
  void (*run)(void *ud);
  long long (*timeout_ms)(void *ud);
  void *ud;
} sp_loop_source_t;

/**
 * Attaches src (copied) to the runtime; one source per runtime. While a source
 * is attached the loop thread keeps serving it, also after the runtime drained.
 * Not from the loop thread. Returns 0, or SP_EINVAL when one is attached already
 * (or the arguments are bad), SP_EBADTHREAD on the loop thread.
 */
SP_EXTERN int sp_runtime_attach_source(sp_runtime_t *rt, const sp_loop_source_t *src,
                                       sp_error_t *err);

/** Asks for the source's run() soon, on the loop thread. Any thread. */
SP_EXTERN void sp_runtime_kick_source(sp_runtime_t *rt);

/**
 * Detaches the source: once this returns, run() and timeout_ms() are never
 * called again. Not from the loop thread. sp_runtime_stop() detaches it too.
 */
SP_EXTERN int sp_runtime_detach_source(sp_runtime_t *rt);

/** Releases what sp_execute() put into res; res may be reused afterwards. */
SP_EXTERN void sp_result_free(sp_result_t *res);

/** Frees a string this API handed to the caller. NULL is fine. */
SP_EXTERN void sp_free(void *p);

#ifdef __cplusplus
}
#endif
#endif /* SNAKEPIT_H */

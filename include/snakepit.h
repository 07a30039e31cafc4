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

/*
 * The version: these three lines are its one source of truth (CMake reads them
 * for the library's version and the package files; sp_version() returns them).
 */
#define SP_VERSION_MAJOR 0
#define SP_VERSION_MINOR 2
#define SP_VERSION_PATCH 0
/** The version as one comparable number, e.g. 0x000200 for 0.2.0. */
#define SP_VERSION_HEX ((SP_VERSION_MAJOR << 16) | (SP_VERSION_MINOR << 8) | SP_VERSION_PATCH)

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
  X(BADTHREAD, -20, VALIDATION, "blocking call made from the runtime's own thread")    \
  X(SESSIONBUSY, -21, POOL, "the session's worker is busy")                            \
  X(SESSIONLOST, -22, WORKER, "the session's worker is gone")                          \
  X(DEPTH, -23, VALIDATION, "callback chain too deep")                                \
  X(DEADLOCK, -24, POOL, "nested call would deadlock")                                \
  X(NOFUNC, -25, VALIDATION, "unknown host function")

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
 * Error detail filled by every function that takes an sp_error_t *.
 *
 * The struct is small and caller-owned (the stack is fine); its texts live in
 * one block the library allocates on failure. Rules:
 * - A function that takes sp_error_t *err overwrites it without reading what
 *   was there, so an uninitialised struct is fine. On success it is cleared
 *   (nothing to free). On failure it owns its texts until sp_error_free(err);
 *   overwriting a failed error without freeing it leaks its texts.
 * - message, python_type and traceback are never NULL once a function filled
 *   the struct ("" when absent). Texts are bounded: message 4 KiB, python_type
 *   256 bytes, traceback 64 KiB (a long traceback keeps its last lines).
 * - The struct may grow at its end in later versions; callers never depend on
 *   sizeof(sp_error_t) beyond allocating one.
 */
typedef struct sp_error_s {
  int code;                /* SP_E* value, 0 when no error */
  sp_category_t category;  /* derived from code */
  const char *message;     /* what happened and where, one or more lines */
  const char *python_type; /* e.g. "ValueError" for SP_EPYTHON, else "" */
  const char *traceback;   /* Python traceback for SP_EPYTHON, else "" */
  void *priv_;             /* private: the block the texts live in */
} sp_error_t;

/** An sp_error_t holding no error (nothing to free). */
#define SP_ERROR_INIT {0, SP_CAT_NONE, "", "", "", NULL}

/** Releases err's texts and leaves it holding no error. NULL is fine. Any thread. */
SP_EXTERN void sp_error_free(sp_error_t *err);

/**
 * Fills dst (overwritten, as above) with a deep copy of src, so that dst owns
 * its own texts. Returns src->code, or SP_ENOMEM when the texts could not be
 * copied (dst then holds SP_ENOMEM). Any thread.
 */
SP_EXTERN int sp_error_copy(sp_error_t *dst, const sp_error_t *src);

/**
 * Fills err (overwritten) with code and copies of the texts (NULL means ""):
 * for applications and front ends that report their own errors in the same
 * shape. Returns code. err may be NULL. Any thread.
 */
SP_EXTERN int sp_error_set(sp_error_t *err, int code, const char *message,
                           const char *python_type, const char *traceback);

/** As sp_error_set() with a printf-style message and no Python details. */
SP_EXTERN int sp_error_setf(sp_error_t *err, int code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/** Element types of arrays (the NumPy dtype of the same name). */
typedef enum {
  SP_DTYPE_BOOL = 1,
  SP_DTYPE_INT8,
  SP_DTYPE_INT16,
  SP_DTYPE_INT32,
  SP_DTYPE_INT64,
  SP_DTYPE_UINT8,
  SP_DTYPE_UINT16,
  SP_DTYPE_UINT32,
  SP_DTYPE_UINT64,
  SP_DTYPE_FLOAT16,
  SP_DTYPE_FLOAT32,
  SP_DTYPE_FLOAT64,
  SP_DTYPE_COMPLEX64,
  SP_DTYPE_COMPLEX128
} sp_dtype_t;

/** Most dimensions an array may have (NumPy's limit). */
#define SP_MAX_NDIM 32

/**
 * An n-dimensional array travelling with a call, or returned by one. Arrays
 * cross between the host and its workers through shared memory (or as raw
 * bytes in the frame when they do not fit), never as JSON.
 *
 * As a call input (sp_call_opts_t.arrays): `name` is the tool argument it
 * binds to; `data` points at the first element, `shape` holds `ndim` sizes and
 * `strides` (bytes per step in each dimension, negative allowed) may be NULL
 * for C-contiguous data. Everything is borrowed for the duration of the
 * submitting call only: the data is copied before it returns, except data
 * allocated with sp_array_alloc(), which the worker reads in place.
 *
 * As a result (sp_result_t.arrays): `name` is where the array sat in the
 * result ("result" for the result itself, "c" for key c, "items/0" for the
 * first element of list items); `data` is a read-only view of C-contiguous
 * data, `strides` is NULL, and everything stays valid until sp_result_free().
 * In the result's JSON each array's place holds {"$array": INDEX}.
 */
typedef struct sp_array_s {
  const char *name;
  sp_dtype_t dtype;
  int ndim;              /* 0 (a scalar) .. SP_MAX_NDIM */
  const int64_t *shape;  /* ndim sizes */
  const int64_t *strides; /* byte strides, or NULL for C-contiguous */
  const void *data;
  size_t nbytes; /* results: size of data; inputs: ignored (computed from shape) */
  void *reserved_[2];
} sp_array_t;

/** Bytes per element of dtype, or 0 for a value that is not an sp_dtype_t. */
SP_EXTERN size_t sp_dtype_size(int dtype);
/** NumPy name of dtype ("float64"), or "unknown". Static string. */
SP_EXTERN const char *sp_dtype_name(int dtype);

/**
 * Outcome of one call, filled by sp_execute() (or lent to an sp_done_cb). On
 * success json holds the tool's result as JSON text (NUL-terminated, len bytes)
 * and error.code is 0; on failure json is NULL and error says why. The struct
 * is the caller's; everything it points to is released by sp_result_free().
 * Fields may be added in later versions by using the reserved slots, so a
 * compiled caller's struct keeps its size.
 */
typedef struct sp_result_s {
  char *json;
  size_t len;
  sp_error_t error;
  const sp_array_t *arrays; /* the arrays the tool returned, in the order of their
                               {"$array": INDEX} places in json; read-only views */
  size_t array_count;
  void *priv_;        /* the library's: what the arrays point into */
  void *reserved_[3]; /* zero; for fields of later versions */
} sp_result_t;

/**
 * Per-call options. NULL means defaults. The struct can grow: fields added
 * after version 0.2 are read only when `size` covers them, so a caller
 * compiled against an older header keeps working. Start from SP_CALL_OPTS_INIT
 * (or zero the struct: size 0 means the 0.2 layout) and set what you need.
 */
typedef struct sp_call_opts_s {
  uint32_t size;      /* sizeof(sp_call_opts_t) as compiled by the caller, or 0 */
  int idempotent;     /* non-zero: if the worker crashes under the call, retry it once
                         on another worker instead of failing with SP_ECRASHED */
  int64_t timeout_ms; /* queue + run time; 0 = the pool's `timeout` */
  const sp_array_t *arrays; /* array arguments, bound by name next to the JSON ones
                               (borrowed until the submitting function returns) */
  size_t array_count;
  int arrays_as_lists; /* non-zero: arrays the tool returns become nested JSON lists in
                          res->json (for JSON-only consumers) instead of res->arrays */
  int arrays_writable; /* non-zero: the tool's array arguments are writable (its own
                          copies, or sp_array_alloc blocks); needed by DLPack consumers
                          such as np.from_dlpack. Default: read-only views */
  /* Since 0.3: sessions (see "Sessions" below). */
  const char *session; /* session id (borrowed until the submitting function returns), or
                          NULL for none: 1..SP_SESSION_ID_MAX bytes of UTF-8, no control
                          characters */
  int session_mode;    /* SP_SESSION_HINT (default), SP_SESSION_STRICT or
                          SP_SESSION_STRICT_FAIL_FAST; ignored without a session */
} sp_call_opts_t;

/** An sp_call_opts_t with every option at its default and size set. */
#define SP_CALL_OPTS_INIT {sizeof(sp_call_opts_t), 0, 0, NULL, 0, 0, 0, NULL, 0}

/*
 * Sessions. A call that names a session (sp_call_opts_t.session) runs with
 * that session's state: a dict the worker keeps for it (`current().session`
 * in the tool), shared by the session's calls. The first call of a session
 * goes where the scheduler sends any call, and binds the session to that
 * worker; later calls go to the same worker, as the mode says when it has no
 * free thread:
 * - SP_SESSION_HINT: the call runs on another worker (or waits in the queue
 *   when none is free) with a fresh, empty state of its own that is dropped
 *   when the call ends; the session stays bound to its worker, whose state is
 *   untouched. Nothing the call writes into current().session survives.
 * - SP_SESSION_STRICT: the call waits for the session's worker, at most the
 *   pool's queue_timeout (then SP_EQUEUETIMEOUT).
 * - SP_SESSION_STRICT_FAIL_FAST: the call fails at once with SP_ESESSIONBUSY.
 * A session ends when sp_session_end() ends it, or when it had no call for the
 * pool's session_ttl; its worker then drops its state. When its worker exits
 * (crash, kill, recycling, scaling down) the state is gone: strict calls fail
 * with SP_ESESSIONLOST until the session is ended (or expires), and hint calls
 * bind it to a new worker with a fresh state. Streams (sp_execute_stream) take
 * sessions the same way.
 */
enum {
  SP_SESSION_HINT = 0,
  SP_SESSION_STRICT = 1,
  SP_SESSION_STRICT_FAIL_FAST = 2
};

/** Longest session id in bytes. */
#define SP_SESSION_ID_MAX 128

typedef struct sp_runtime_s sp_runtime_t;

/**
 * Completion callback of sp_execute_async(). Runs on the runtime's loop thread:
 * it must not block and must not call sp_execute() (use sp_execute_async()).
 * The result is borrowed for the duration of the callback: take res->json
 * (set res->json = NULL) to keep it, and then free it with sp_free(); keep the
 * error with sp_error_copy(); keep everything (arrays too) by copying *res into
 * a struct of your own and zeroing *res, then sp_result_free() your copy later.
 * Whatever is left in res is freed after the callback.
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
/**
 * Version of the library actually loaded, "MAJOR.MINOR.PATCH" (static string);
 * compare with the SP_VERSION_* macros of the header you compiled against.
 */
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

/** What a chunk callback returns. */
enum {
  SP_CHUNK_CONTINUE = 0, /* go on */
  SP_CHUNK_STOP = 1,     /* cancel the stream (any value but 0 and 2 does too) */
  SP_CHUNK_PAUSE = 2     /* chunk taken, but send no more until sp_stream_resume() */
};

/**
 * Chunk callback of sp_execute_stream(): one streamed item as JSON text, len
 * bytes, NOT NUL-terminated, borrowed for the duration of the callback. Runs
 * on the loop thread: it must not block (a slow consumer holds up every call
 * of the runtime). A consumer that hands chunks to a slower one (a network
 * client) copies the chunk and returns SP_CHUNK_PAUSE once it holds enough:
 * the worker then pauses the generator after at most 128 more chunks, until
 * sp_stream_resume(). SP_CHUNK_STOP cancels the stream (its generator is
 * closed) and on_done gets SP_ECANCELLED.
 */
typedef int (*sp_chunk_cb)(const char *json, size_t len, void *userdata);

/**
 * Runs a streaming tool (a generator, sync or async, declared
 * @tool(supports_streaming=True)) and returns at once. On 0, on_chunk runs once
 * per yielded item as it is produced, in order, then on_done exactly once
 * (loop thread, like sp_execute_async's callback): on success with res->json
 * {"chunks": N}; on failure with the error (SP_EPYTHON when the generator
 * raised, with its traceback: the chunks before it stay delivered;
 * SP_ETIMEOUT when the call's deadline, which covers the whole stream,
 * passed; SP_ECANCELLED after sp_cancel() or a non-zero on_chunk;
 * SP_ECRASHED when the worker died). A tool that is not a generator streams
 * its result as one chunk. Flow control: at most 128 chunks of a stream are
 * in flight between the worker and on_chunk; a consumer that falls behind
 * pauses the generator. Calls are never retried (opts->idempotent is
 * ignored). *call_id (may be NULL) names the call for sp_cancel(). On a
 * negative return neither callback runs and err says why. Thread-safe.
 */
SP_EXTERN int sp_execute_stream(sp_runtime_t *rt, const char *pool, const char *tool,
                                const char *args_json, const sp_call_opts_t *opts,
                                sp_chunk_cb on_chunk, sp_done_cb on_done, void *userdata,
                                uint64_t *call_id, sp_error_t *err);

/**
 * Cancels the stream call_id of sp_execute_stream(): its generator is closed
 * in the worker (GeneratorExit: its finally blocks run), the worker's thread
 * is free again, and on_done gets SP_ECANCELLED, unless it completed first
 * (then nothing happens). Returns 0 once the request is posted (the outcome
 * arrives through on_done), SP_EINVAL, SP_ESTOPPED. Any thread, including
 * the loop thread (the cancellation then happens after the callback returns).
 */
SP_EXTERN int sp_cancel(sp_runtime_t *rt, uint64_t call_id);

/**
 * Lets a stream paused by SP_CHUNK_PAUSE go on (no-op for one that is not
 * paused or finished). Returns 0 once posted, SP_EINVAL, SP_ESTOPPED. Any thread.
 */
SP_EXTERN int sp_stream_resume(sp_runtime_t *rt, uint64_t call_id);

/**
 * Ends session session_id of pool: it is unbound from its worker, and the
 * worker drops its state (at once, or when the session's calls still running
 * there are done). A later call of the same id starts a new session. Ending a
 * session that does not exist (never started, expired, ended) is not an
 * error. Returns 0 once the request is posted (calls submitted afterwards by
 * the same thread see it done), SP_EINVAL for a bad id (err says why),
 * SP_ENOPOOL, SP_ESTOPPED. Any thread, including the loop thread (completion
 * callbacks, event sources), where it takes effect at once. err may be NULL.
 */
SP_EXTERN int sp_session_end(sp_runtime_t *rt, const char *pool, const char *session_id,
                             sp_error_t *err);

/**
 * Checks a session id the way the calls do (1..SP_SESSION_ID_MAX bytes of
 * UTF-8, no control characters), for front ends that carry it elsewhere first
 * (an HTTP header). Returns 0, or SP_EINVAL with err saying what is wrong and
 * at which byte. Any thread; err may be NULL.
 */
SP_EXTERN int sp_session_check(const char *session_id, sp_error_t *err);

/**
 * The mode named text ("hint", "strict", "strict_fail_fast") into *mode.
 * Returns 0, or SP_EINVAL with err naming the accepted names. Any thread.
 */
SP_EXTERN int sp_session_mode_parse(const char *text, int *mode, sp_error_t *err);

/** Name of a session mode ("hint", ...), or "unknown". Static string. */
SP_EXTERN const char *sp_session_mode_name(int mode);

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
 * Options of sp_worker_reports*(). NULL means defaults; like sp_call_opts_t it
 * can grow (fields are read only when `size` covers them; 0 = the 0.2 layout).
 */
typedef struct sp_report_opts_s {
  uint32_t size;      /* sizeof(sp_report_opts_t) as compiled by the caller, or 0 */
  int reset;          /* non-zero: each worker starts its thread-safety findings afresh
                         after reporting them */
  int64_t timeout_ms; /* how long to wait for every worker; 0 = 5000 */
  int with_stats;     /* non-zero: deliver the sp_stats_json() document instead (one pool's,
                         or {"pools": [...]}), each pool with its "thread_safety" (when
                         thread_safety_checks is on) and each worker with its "report" */
} sp_report_opts_t;

/** An sp_report_opts_t with every option at its default and size set. */
#define SP_REPORT_OPTS_INIT {sizeof(sp_report_opts_t), 0, 0, 0}

/**
 * Asks every live worker of `pool` (NULL: of every pool) for its own report,
 * exactly once each (a STATS request the worker answers on an execution thread
 * as soon as one is free), and delivers all of them together. cb runs exactly
 * once on the loop thread; on success res->json is
 *   {"pools": [{"name": P, "workers": {ID: report}, "missing": {ID: why},
 *               "thread_safety": merged report or null}]}
 * where each report is {worker_id, pool, pid, python_version, gil_enabled,
 * profile, threads, thread_safety} as the worker sees itself now, "missing"
 * names workers that exited or did not answer within the timeout, and
 * "thread_safety" merges the workers' thread-safety findings (null for pools
 * that run without thread_safety_checks). A negative return (bad pool, runtime
 * stopping) means cb never runs; err says why. Thread-safe, and allowed on the
 * loop thread (completion callbacks, event sources).
 */
SP_EXTERN int sp_worker_reports_async(sp_runtime_t *rt, const char *pool,
                                      const sp_report_opts_t *opts, sp_done_cb cb,
                                      void *userdata, sp_error_t *err);

/**
 * sp_worker_reports_async() that waits for the outcome: always fills *res
 * (release it with sp_result_free()) and returns 0 or res->error.code. Not on
 * the loop thread (SP_EBADTHREAD). Thread-safe.
 */
SP_EXTERN int sp_worker_reports(sp_runtime_t *rt, const char *pool, const sp_report_opts_t *opts,
                                sp_result_t *res);

/**
 * Merges thread-safety reports into one, the way sp_worker_reports() merges a
 * pool's workers: reports_json is a JSON object {key: report}, each report a
 * worker's "thread_safety" value. Unlocked writes of the same kind, attribute,
 * file and line are summed (each keeps the key it came from as "worker_id"),
 * the highest concurrency per method is kept, and warnings, unsafe libraries
 * and undeclared adapters are united. *merged_json is the caller's (free with
 * sp_free()). Pure function; any thread.
 */
SP_EXTERN int sp_thread_safety_merge(const char *reports_json, char **merged_json,
                                     sp_error_t *err);

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

/**
 * Allocates nbytes in the pool's shared input memory, for a caller that fills
 * an input array in place: an sp_array_t whose data is such a block is read by
 * the worker where it is, without any copy. *data is the caller's until
 * sp_array_free(); it must not change while a call that uses it runs, and it
 * may serve any number of calls. Returns SP_ETOOLARGE when the pool's
 * max_shared_memory has no room (the message says how to raise it),
 * SP_ENOPOOL, SP_ESTOPPED. Thread-safe.
 */
SP_EXTERN int sp_array_alloc(sp_runtime_t *rt, const char *pool, size_t nbytes, void **data,
                             sp_error_t *err);

/** Releases a block of sp_array_alloc() (NULL is fine). Thread-safe. */
SP_EXTERN void sp_array_free(sp_runtime_t *rt, void *data);

/**
 * A function the host application offers to tools: a tool calls it with
 * `current().call_host(NAME, **args)` and gets its result. args_json is the
 * arguments as a JSON object text (NUL-terminated, borrowed for the call).
 * On success return 0 and set *result_json to JSON text allocated with
 * malloc() (the library frees it; NULL means JSON null; text that is not
 * JSON fails the tool's call with SP_EBADJSON). On failure return a negative
 * SP_E* code (any other non-zero value counts as SP_EIO) and describe it with
 * sp_error_set() / sp_error_setf() on err; the tool gets CallError with that
 * code and message.
 *
 * Threading: it runs on one of libuv's thread-pool threads (uv_queue_work;
 * UV_THREADPOOL_SIZE, 4 by default, shared by the process), never on the
 * runtime's loop thread, so it may block; calls run concurrently, so it must
 * be thread-safe. It may call sp_execute() (it is not the loop thread). It is
 * not interrupted: when the tool that called it is cancelled, times out or
 * its worker dies meanwhile, the function runs to its end and its result is
 * dropped; sp_runtime_stop() waits for running host functions to return.
 */
typedef int (*sp_host_fn)(const char *args_json, char **result_json, sp_error_t *err,
                          void *userdata);

/**
 * Registers fn under name (1..128 characters of A-Z a-z 0-9 _ . -) for the
 * runtime's tools. userdata is passed to every call; it stays the caller's
 * and must stay valid until sp_unregister_host_function() returned (or the
 * runtime stopped). Returns 0, SP_EINVAL (bad name, NULL fn, or the name is
 * registered already: unregister it first). Thread-safe; any time while the
 * runtime runs (calls made before see SP_ENOFUNC).
 */
SP_EXTERN int sp_register_host_function(sp_runtime_t *rt, const char *name, sp_host_fn fn,
                                        void *userdata, sp_error_t *err);

/**
 * Removes the host function name: calls made afterwards fail with SP_ENOFUNC.
 * Waits until calls of it that are running have returned, so userdata may be
 * released afterwards; except from inside the function itself and from the
 * runtime's loop thread (a completion callback), where it returns at once
 * and running calls finish on their own. Returns 0, or SP_EINVAL when no
 * such function is registered. Thread-safe.
 */
SP_EXTERN int sp_unregister_host_function(sp_runtime_t *rt, const char *name);

/** Releases what sp_execute() put into res (result, arrays and error); res may be reused. */
SP_EXTERN void sp_result_free(sp_result_t *res);

/** Frees a string this API handed to the caller. NULL is fine. */
SP_EXTERN void sp_free(void *p);

/*
 * Cluster (NATS). A pool in the config may be remote: `remote: nats://HOST:4222`
 * makes sp_execute()/sp_execute_async() send its calls to whichever node
 * (`snakepit serve --nats URL`) serving a pool of that name has free capacity.
 * The functions below reach such nodes without a runtime.
 */

/**
 * How to reach a NATS server. Every string is borrowed for the duration of the
 * call that takes the struct; NULL means "not used". Can grow like
 * sp_call_opts_t (fields read only when `size` covers them).
 */
typedef struct sp_nats_opts_s {
  uint32_t size;          /* sizeof(sp_nats_opts_t) as compiled by the caller, or 0 */
  const char *url;        /* nats://HOST:PORT or tls://...; comma-separated for several
                             servers; may carry TOKEN@ or USER:PASSWORD@ */
  const char *token;      /* authentication token */
  const char *user;       /* user name (with password) */
  const char *password;
  const char *creds_file; /* NATS credentials file (JWT + NKey seed) */
  const char *ca_file;    /* CA certificates (PEM) that sign the server's TLS certificate;
                             setting it turns TLS on */
  int64_t timeout_ms;     /* connecting and waiting for answers; 0 = 2000 */
  const char *cert_file;  /* client certificate chain (PEM) for mutual TLS; with key_file,
                             both or neither; turns TLS on */
  const char *key_file;   /* the client certificate's private key (PEM) */
} sp_nats_opts_t;

/** An sp_nats_opts_t with every option at its default and size set. */
#define SP_NATS_OPTS_INIT {sizeof(sp_nats_opts_t), NULL, NULL, NULL, NULL, NULL, NULL, 0, NULL, NULL}

/**
 * Discovers the nodes serving pools on the NATS server of opts: asks every
 * node for its statistics ($SRV.STATS.snakepit) and collects the answers that
 * arrive within opts->timeout_ms (it returns as soon as answers stop coming
 * for a short while). On success *json (the caller's; free with sp_free()) is
 *   {"nodes": [{"id", "name", "host", "version", "started", "draining",
 *               "pools": [{"name", "capacity", "in_flight", "calls", "errors",
 *                          "stats": the node's sp_stats_json() of the pool}]}]}
 * sorted by node name; an empty list when no node answered. SP_EIO with the
 * URL and the reason when the server cannot be reached. Thread-safe.
 */
SP_EXTERN int sp_cluster_nodes_json(const sp_nats_opts_t *opts, char **json, sp_error_t *err);

/*
 * Durable jobs (NATS JetStream; the server runs with -js). A job is a call
 * kept in a work-queue stream until a node ran it: at-least-once, handed to
 * another node when the one running it goes away, de-duplicated by its id.
 * Its outcome is kept (24 h) for sp_job_result().
 */

/**
 * Submits tool(args_json) on pool as a job. job_id names it ([A-Za-z0-9_-],
 * 1..64 characters; NULL: a fresh unique id); submitting an id again within
 * 24 h adds nothing (the first job stands). opts may set timeout_ms (the run
 * time a node gives it, from when it starts; 0 = the pool's timeout),
 * idempotent and arrays (carried inline in the job, up to the server's
 * max_payload, else SP_ETOOLARGE; arrays the tool returns are stored as lists). *job_id_out (may be NULL) gets the id; free with sp_free().
 * Connects to opts->url for the call. Thread-safe.
 */
SP_EXTERN int sp_job_submit(const sp_nats_opts_t *nats, const char *pool, const char *tool,
                            const char *args_json, const sp_call_opts_t *opts,
                            const char *job_id, char **job_id_out, sp_error_t *err);

/**
 * The outcome of job_id, waiting up to wait_ms for it (0: just look). Fills
 * *res like sp_execute() when the job finished (*done = 1) and returns
 * res->error.code; while it has not, *done = 0, res holds nothing and 0 is
 * returned. A job never submitted looks like a pending one. Thread-safe.
 */
SP_EXTERN int sp_job_result(const sp_nats_opts_t *nats, const char *job_id, int64_t wait_ms,
                            int *done, sp_result_t *res);

#ifdef __cplusplus
}
#endif
#endif /* SNAKEPIT_H */

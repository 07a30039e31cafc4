/*
 * pyhost.h - the embedded CPython of snakepit-worker. The only module that
 * touches the Python C API; it owns the GIL (or thread-state attach) discipline.
 */
#ifndef SP_WORKER_PYHOST_H
#define SP_WORKER_PYHOST_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "protocol.h"
#include "shm.h"

typedef struct pyhost_opts_s {
  const char *adapter;           /* module.Class */
  const char *const *paths;      /* prepended to sys.path, in order */
  size_t path_count;
  const char *const *adapter_args;
  size_t adapter_arg_count;
  const char *worker_id;
  const char *pool;
  const char *profile;
  int threads;
  int preload; /* fork server: build the adapter once, before forking (preload) */
  /* Nested calls (current().call / call_host): sends the HOSTCALL req (its
   * parent set) and waits for its HOSTREPLY, on the calling execution thread,
   * detached. Returns 0 with *code (0 or an SP_E* code) and the reply's text
   * in *reply, SP_ECANCELLED when the parent call was cancelled meanwhile,
   * SP_EINVAL, SP_ETOOLARGE (over max_frame_bytes) or SP_ENOMEM when the
   * frame could not be built. */
  int (*hostcall)(const sp__hostcall_view_t *req, sp__buf_t *reply, int *code);
} pyhost_opts_t;

/** An execution thread's Python identity: one thread state for its whole life. */
typedef struct pyhost_thread_s pyhost_thread_t;

/**
 * Fork-server start: starts the interpreter, sets sys.path and imports the
 * SDK and the adapter's module (resolving its class without building it).
 * Returns 0 with the GIL held by the calling thread, or SP_ESTARTUP with
 * *failure as for pyhost_start (traceback also written to stderr).
 */
int pyhost_preload(const pyhost_opts_t *opts, char **failure);

/**
 * worker_profile: auto, in a probe process: starts the interpreter, imports
 * the adapter's module and decides the profile (_host.choose_profile). Returns
 * 0 with *json (JSON {profile, reason, ...}; caller frees), or SP_ESTARTUP
 * with *failure as for pyhost_start.
 */
int pyhost_choose_profile(const pyhost_opts_t *opts, char **json, char **failure);

/**
 * Fork server with preload, after pyhost_preload: builds the adapter instance
 * (constructor, initialize()) that every forked worker then shares, and
 * freezes the garbage collector's view of everything built so far. Returns 0
 * with the GIL still held, or SP_ESTARTUP with *failure as for pyhost_start.
 */
int pyhost_preload_adapter(const pyhost_opts_t *opts, char **failure);

/**
 * fork() with CPython's before/after hooks, from the thread that holds the GIL
 * after pyhost_preload. Returns as fork() does; the child keeps the GIL and
 * continues with pyhost_start, which then only builds the adapter.
 */
pid_t pyhost_fork(void);

/**
 * Starts the interpreter (unless a fork server already did) and loads the
 * adapter on the calling (main) thread.
 * On success fills *hello (JSON text, caller frees with free()) and returns 0
 * with the GIL released. On failure returns SP_ESTARTUP and fills *failure with
 * JSON {type, message, traceback} (caller frees); the interpreter is left as is.
 */
int pyhost_start(const pyhost_opts_t *opts, char **hello, char **failure);

/**
 * Gives the calling native thread its thread state and Python name (visible as
 * threading.current_thread().name). Returns NULL on failure. Leaves the GIL
 * released.
 */
pyhost_thread_t *pyhost_thread_enter(const char *name);

/** Releases the thread's state; the thread must not call Python afterwards. */
void pyhost_thread_leave(pyhost_thread_t *t);

/** One CALL as the worker received it (pointers into its job). */
typedef struct pyhost_call_s {
  uint64_t id;
  unsigned flags; /* SP__FLAG_* of the CALL frame */
  const char *tool;
  size_t tool_len;
  const char *args;
  size_t args_len;
  const uint8_t *arrays; /* the arrays part (flag ARRAYS) */
  size_t arrays_len;
  /* Flag STREAM: writes one whole CHUNK frame to the manager (any thread,
   * blocking while the socket is full). */
  void (*send)(const uint8_t *frame, size_t len);
  const char *session; /* the session id (CALL flag SESSION), else NULL */
  size_t session_len;
  unsigned session_flags; /* SP__SESSION_* */
} pyhost_call_t;

/**
 * Gives the embedded host the shared memory for arrays: the pool's input
 * (read-only) and this worker's output. Before any call; the host keeps both.
 */
void pyhost_set_shm(sp__shm_t *in, sp__shm_t *out);

/**
 * Runs one tool call. The outcome is appended to out as one whole frame
 * (RESULT, with its arrays, or ERROR) for the call's request id; results above
 * max_body become an SP_ETOOLARGE error. Attaches to Python only for the
 * duration of the call. Returns 0, or SP_ENOMEM when out cannot grow.
 */
int pyhost_invoke(pyhost_thread_t *t, const pyhost_call_t *call, size_t max_body, sp__buf_t *out);

/** Drops the state of session id (len bytes) kept in this worker; no-op when it has none. */
void pyhost_session_end(pyhost_thread_t *t, const char *id, size_t len);

/**
 * Builds this worker's report (Host.report with the JSON arguments args, e.g.
 * {"reset": true}) and appends it to out as a STATS frame for request id.
 * Attaches to Python only for its duration. Returns 0, or SP_ENOMEM.
 */
int pyhost_report(pyhost_thread_t *t, uint64_t id, const char *args, size_t args_len,
                  size_t max_body, sp__buf_t *out);

/**
 * Cancels request id if an execution thread is running it, by raising
 * CallCancelled in that thread (takes effect in pure-Python code only). Briefly
 * attaches to Python. Safe from any thread. Returns 1 if the call was found.
 */
int pyhost_cancel(uint64_t id);

/**
 * Whether request id is running on an execution thread that a CANCEL has
 * claimed (delivered or being delivered). Any thread, detached.
 */
int pyhost_cancelled(uint64_t id);

/** The manager granted n more chunks to the stream of request id (any thread). */
void pyhost_credit(uint64_t id, uint32_t n);

/**
 * Totals since start, readable from any thread: nanoseconds execution threads
 * spent waiting to attach to the interpreter before a call (on a GIL build:
 * waiting for the GIL; on a free-threaded build: for a stop-the-world pause to
 * end, or for the GIL once it was turned back on) and calls completed.
 */
void pyhost_counters(uint64_t *attach_wait_ns, uint64_t *calls);

/**
 * 1 while the interpreter runs with the GIL, 0 while it runs without (a
 * free-threaded build, until something turns the GIL on). Refreshed after the
 * adapter loads and after every call; readable from any thread without Python.
 */
int pyhost_gil_enabled(void);

/**
 * Runs the adapter's shutdown hook and finalises the interpreter (atexit
 * handlers run). Called on the main thread after every execution thread left.
 * Returns 0 when finalisation was clean.
 */
int pyhost_finish(void);

#endif /* SP_WORKER_PYHOST_H */

/*
 * harness.h - helpers for integration tests: YAML for one-pool runtimes on the
 * test adapters, timing, and many concurrent calls from real client threads.
 */
#ifndef SP_TEST_HARNESS_H
#define SP_TEST_HARNESS_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <jansson.h>

#include "snakepit.h"

#define TESTING_ADAPTER "testing_adapter.TestingAdapter"
#define PATTERNS_ADAPTER "patterns_adapter.PatternsAdapter"

/**
 * Writes a one-pool config into buf: pool `name`, profile "process"/"thread",
 * size workers (0: no pool_size line) x threads, adapter, the test adapters on python_path, then
 * `extra` (more "    key: value\n" lines, may be NULL).
 */
void h_yaml(char *buf, size_t cap, const char *name, const char *profile, int size, int threads,
            const char *adapter, const char *extra);

/** Starts a runtime from YAML and fails the test (printing why) if it does not start. */
sp_runtime_t *h_start(const char *yaml);

/**
 * Starts the two pools most tests run against, both of adapter: "proc"
 * (process, proc_size workers) and "thr" (thread, 1 worker x thr_threads).
 * Fails the test if they do not start.
 */
sp_runtime_t *h_start_proc_thr(const char *adapter, int proc_size, int thr_threads);

/** Starts a one-pool runtime; see h_yaml. */
sp_runtime_t *h_start_pool(const char *name, const char *profile, int size, int threads,
                           const char *adapter, const char *extra);

/**
 * Starts pool "hang" (size process workers of adapter, startup_timeout 1s) and
 * asserts that the start fails after about a second naming startup_timeout.
 */
void h_expect_startup_timeout(int size, const char *adapter);

/** Monotonic seconds. */
double h_now(void);

/** Sleeps ms milliseconds. */
void h_sleep_ms(int ms);

/** One pool's statistics, parsed (caller decrefs); fails the test if unavailable. */
json_t *h_pool_stats(sp_runtime_t *rt, const char *pool);

/** The outcome of an asynchronous operation, filled by h_async_done on the loop thread. */
typedef struct {
  _Atomic int done;
  int code;
  char *json; /* taken from the result; free with sp_free */
} h_async_t;

/** sp_done_cb that stores the outcome in the h_async_t passed as userdata. */
void h_async_done(sp_result_t *res, void *ud);

/** Waits until a is done, at most timeout_s seconds; returns whether it is. */
int h_async_wait(h_async_t *a, double timeout_s);

/** Runs one call; asserts it succeeds and returns the result JSON (caller frees). */
char *h_call_ok(sp_runtime_t *rt, const char *pool, const char *tool, const char *args);

/** Runs one call expected to fail with code; returns it in *err (its texts stay valid
 * until the next h_call_fails). Not thread-safe. */
void h_call_fails(sp_runtime_t *rt, const char *pool, const char *tool, const char *args,
                  int code, sp_error_t *err);

/**
 * threads client threads each make `calls` sync calls; returns the wall time in
 * seconds. *ok and *failed (may be NULL) receive the counts; codes[] (may be
 * NULL, length threads*calls) receives each result code.
 */
double h_concurrent(sp_runtime_t *rt, const char *pool, const char *tool, const char *args,
                    int threads, int calls, int *ok, int *failed);

/**
 * State letter ('R', 'S', 'Z', ...) and parent pid of process pid, read from
 * /proc/PID/stat. Returns 0, or -1 when there is no such process.
 */
int h_proc_stat(long pid, char *state, long *ppid);

/** Starts thread-profile pools "one" (1 worker x 1 thread) and "two" (1 x 2), testing adapter. */
sp_runtime_t *h_start_one_and_two(void);

/** Best (shortest) wall time, over `trials`, of 2 concurrent calls of tool; asserts both succeed. */
double h_best_pair(sp_runtime_t *rt, const char *pool, const char *tool, const char *args,
                   int trials);

/**
 * CPUs this process really gets right now: CPU time / wall time of 2 busy
 * threads over 0.3 s (2.0: both ran all the time; lower on a shared machine).
 */
double h_available_cpus(void);

/**
 * Skips the running test, printing why, when the workers of `pool` (testing
 * adapter) cannot import `module` (NumPy on a free-threaded 3.14t, say).
 */
void h_skip_without_module(sp_runtime_t *rt, const char *pool, const char *module);

/**
 * Waits up to timeout_s for the file at path to hold text (a tool writes it),
 * removes it, and fails the test unless the text starts with prefix. Returns
 * the seconds it waited.
 */
double h_assert_marker(const char *path, const char *prefix, double timeout_s);

/** Integer field of a JSON object text, or fails the test. */
long long h_json_int(const char *json, const char *key);

#endif

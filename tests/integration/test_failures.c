/*
 * test_failures.c - what goes wrong, and that every failure reaches the caller
 * as a clear error while the pool keeps serving: adapters that fail to load,
 * broken configs, oversized frames, workers that exit, segfault or are killed
 * mid-call, saturation, queue and call timeouts, cancellation, stop.
 */
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

static void adapter_import_error_fails_start(void **state) {
  (void)state;
  char yaml[2048];
  h_yaml(yaml, sizeof(yaml), "broken", "process", 2, 1, "broken_adapter.BrokenAdapter", NULL);
  sp_runtime_t *rt = NULL;
  sp_error_t err;
  double t0 = h_now();
  assert_int_equal(sp_runtime_start_yaml(&rt, yaml, strlen(yaml), "t.yaml", &err), SP_ESTARTUP);
  assert_true(h_now() - t0 < 10.0);
  assert_null(rt);
  assert_int_equal(err.category, SP_CAT_WORKER);
  assert_non_null(strstr(err.message, "pool 'broken'"));
  assert_non_null(strstr(err.message, "ModuleNotFoundError"));
  assert_non_null(strstr(err.message, "snakepit_nonexistent_module_xyz"));
  assert_string_equal(err.python_type, "ModuleNotFoundError");
  assert_non_null(strstr(err.traceback, "broken_adapter.py"));
  sp_error_free(&err);
}

static void missing_adapter_class_fails_start(void **state) {
  (void)state;
  char yaml[2048];
  h_yaml(yaml, sizeof(yaml), "p", "thread", 1, 2, "testing_adapter.NoSuchAdapter", NULL);
  sp_runtime_t *rt = NULL;
  sp_error_t err;
  assert_int_equal(sp_runtime_start_yaml(&rt, yaml, strlen(yaml), "t.yaml", &err), SP_ESTARTUP);
  assert_non_null(strstr(err.message, "NoSuchAdapter"));
  sp_error_free(&err);
}

static void worker_without_hello_hits_startup_timeout(void **state) {
  (void)state;
  h_expect_startup_timeout(1, "hanging_start_adapter.HangingStartAdapter");
}

static void config_errors(void **state) {
  (void)state;
  sp_runtime_t *rt = NULL;
  sp_error_t err;
  assert_int_equal(sp_runtime_start_file(&rt, "/nonexistent/pools.yaml", &err), SP_ECONFIG);
  assert_non_null(strstr(err.message, "/nonexistent/pools.yaml"));
  assert_int_equal(err.category, SP_CAT_VALIDATION);
  sp_error_free(&err);

  const char *bad_key = "pools:\n  - name: a\n    pool_sise: 2\n";
  assert_int_equal(sp_runtime_start_yaml(&rt, bad_key, strlen(bad_key), "bad.yaml", &err), SP_ECONFIG);
  assert_non_null(strstr(err.message, "bad.yaml:3"));
  assert_non_null(strstr(err.message, "pool_sise"));
  sp_error_free(&err);

  const char *bad_type = "pools:\n  - name: a\n    pool_size: many\n";
  assert_int_equal(sp_runtime_start_yaml(&rt, bad_type, strlen(bad_type), "bad.yaml", &err), SP_ECONFIG);
  assert_non_null(strstr(err.message, "bad.yaml:3"));
  assert_non_null(strstr(err.message, "pool_size"));
  sp_error_free(&err);
  assert_null(rt);
}

static void missing_worker_program(void **state) {
  (void)state;
  setenv("SNAKEPIT_WORKER", "/nonexistent/snakepit-worker", 1);
  char yaml[2048];
  h_yaml(yaml, sizeof(yaml), "p", "process", 1, 1, TESTING_ADAPTER, NULL);
  sp_runtime_t *rt = NULL;
  sp_error_t err;
  int rc = sp_runtime_start_yaml(&rt, yaml, strlen(yaml), "t.yaml", &err);
  unsetenv("SNAKEPIT_WORKER");
  assert_int_equal(rc, SP_ESTARTUP);
  assert_non_null(strstr(err.message, "/nonexistent/snakepit-worker"));
  sp_error_free(&err);
}

static void oversized_arguments(void **state) {
  (void)state;
  sp_runtime_t *rt = h_start_pool("p", "thread", 1, 2, TESTING_ADAPTER, "    max_frame_bytes: 64KiB\n");
  size_t n = 100 * 1024;
  char *args = malloc(n + 64);
  strcpy(args, "{\"value\": \"");
  memset(args + 11, 'x', n);
  strcpy(args + 11 + n, "\"}");
  sp_error_t e;
  h_call_fails(rt, "p", "echo", args, SP_ETOOLARGE, &e);
  assert_non_null(strstr(e.message, "max_frame_bytes"));
  assert_int_equal(e.category, SP_CAT_PROTOCOL);
  /* Just under the limit works, and so does the next small call. */
  args[11 + 60 * 1024] = '\0';
  strcat(args, "\"}");
  char *r = h_call_ok(rt, "p", "echo", args);
  assert_int_equal(strlen(r), 60 * 1024 + 2);
  free(r);
  free(args);
  r = h_call_ok(rt, "p", "noop", "{}");
  free(r);
  sp_runtime_stop(rt, 1000);
}

static long long worker_pid(sp_runtime_t *rt, const char *pool) {
  char *r = h_call_ok(rt, pool, "pid", "{}");
  long long pid = atoll(r);
  free(r);
  assert_true(pid > 1);
  return pid;
}

static void exit_during_call(const char *profile, int threads) {
  sp_runtime_t *rt = h_start_pool("p", profile, 1, threads, TESTING_ADAPTER, NULL);
  sp_error_t e;
  double t0 = h_now();
  h_call_fails(rt, "p", "exit_now", "{\"code\": 7}", SP_ECRASHED, &e);
  assert_true(h_now() - t0 < 3.0);
  assert_int_equal(e.category, SP_CAT_WORKER);
  assert_non_null(strstr(e.message, "exited with code 7"));
  /* The replacement serves the next call (it waits in the queue meanwhile). */
  char *r = h_call_ok(rt, "p", "add", "{\"a\": 1, \"b\": 1}");
  assert_string_equal(r, "2");
  free(r);
  char *stats = NULL;
  assert_int_equal(sp_stats_json(rt, "p", &stats, &e), 0);
  assert_true(h_json_int(stats, "crashes") >= 1);
  assert_true(h_json_int(stats, "restarts") >= 1);
  sp_free(stats);
  sp_runtime_stop(rt, 1000);
}

static void exit_during_call_process(void **state) {
  (void)state;
  exit_during_call("process", 1);
}

static void exit_during_call_thread(void **state) {
  (void)state;
  exit_during_call("thread", 4);
}

static void segfault_quotes_signal_and_output(void **state) {
  (void)state;
  sp_runtime_t *rt = h_start_pool("p", "thread", 1, 2, TESTING_ADAPTER, NULL);
  char *r = h_call_ok(rt, "p", "write_stderr", "{\"text\": \"last words before the crash\"}");
  free(r);
  sp_error_t e;
  h_call_fails(rt, "p", "segfault", "{}", SP_ECRASHED, &e);
  assert_non_null(strstr(e.message, "signal 11"));
  assert_non_null(strstr(e.message, "last words before the crash"));
  r = h_call_ok(rt, "p", "noop", "{}");
  free(r);
  sp_runtime_stop(rt, 1000);
}

typedef struct {
  pthread_mutex_t mu;
  int done;
  int code;
  double at;
} one_t;

static void one_done(sp_result_t *res, void *ud) {
  one_t *o = ud;
  pthread_mutex_lock(&o->mu);
  o->done = 1;
  o->code = res->error.code;
  o->at = h_now();
  pthread_mutex_unlock(&o->mu);
}

static int wait_one(one_t *o, double seconds) {
  double end = h_now() + seconds;
  while (h_now() < end) {
    pthread_mutex_lock(&o->mu);
    int d = o->done;
    pthread_mutex_unlock(&o->mu);
    if (d) return 1;
    h_sleep_ms(5);
  }
  return 0;
}

static void sigkill_during_call(const char *profile, int threads) {
  sp_runtime_t *rt = h_start_pool("p", profile, 1, threads, TESTING_ADAPTER, NULL);
  long long pid = worker_pid(rt, "p");
  one_t o = {PTHREAD_MUTEX_INITIALIZER, 0, 0, 0};
  sp_error_t err;
  assert_int_equal(sp_execute_async(rt, "p", "sleep", "{\"seconds\": 30}", NULL, one_done, &o, &err), 0);
  h_sleep_ms(300);
  double t0 = h_now();
  assert_int_equal(kill((pid_t)pid, SIGKILL), 0);
  assert_true(wait_one(&o, 5.0));
  assert_int_equal(o.code, SP_ECRASHED);
  assert_true(o.at - t0 < 2.0); /* fails at once, not at the 30 s timeout */
  long long pid2 = worker_pid(rt, "p");
  assert_true(pid2 != pid);
  sp_runtime_stop(rt, 1000);
}

static void sigkill_during_call_process(void **state) {
  (void)state;
  sigkill_during_call("process", 1);
}

static void sigkill_during_call_thread(void **state) {
  (void)state;
  sigkill_during_call("thread", 4);
}

static void saturated_pool_rejects_at_once(void **state) {
  (void)state;
  sp_runtime_t *rt = h_start_pool("p", "process", 1, 1, TESTING_ADAPTER,
                                  "    max_queue: 0\n    pipeline_depth: 0\n");
  one_t o = {PTHREAD_MUTEX_INITIALIZER, 0, 0, 0};
  sp_error_t err;
  assert_int_equal(sp_execute_async(rt, "p", "sleep", "{\"seconds\": 1.0}", NULL, one_done, &o, &err), 0);
  h_sleep_ms(100);
  double t0 = h_now();
  sp_error_t e;
  h_call_fails(rt, "p", "noop", "{}", SP_ESATURATED, &e);
  assert_true(h_now() - t0 < 0.5);
  assert_int_equal(e.category, SP_CAT_POOL);
  assert_non_null(strstr(e.message, "saturated"));
  assert_true(wait_one(&o, 5.0));
  assert_int_equal(o.code, 0);
  char *r = h_call_ok(rt, "p", "noop", "{}");
  free(r);
  sp_runtime_stop(rt, 1000);
}

static void queue_timeout(void **state) {
  (void)state;
  sp_runtime_t *rt = h_start_pool("p", "process", 1, 1, TESTING_ADAPTER,
                                  "    queue_timeout: 300ms\n    pipeline_depth: 0\n");
  one_t o = {PTHREAD_MUTEX_INITIALIZER, 0, 0, 0};
  sp_error_t err;
  assert_int_equal(sp_execute_async(rt, "p", "sleep", "{\"seconds\": 2.0}", NULL, one_done, &o, &err), 0);
  h_sleep_ms(100);
  double t0 = h_now();
  sp_error_t e;
  h_call_fails(rt, "p", "noop", "{}", SP_EQUEUETIMEOUT, &e);
  double t = h_now() - t0;
  assert_true(t > 0.25 && t < 1.5);
  assert_int_equal(e.category, SP_CAT_TIMEOUT);
  assert_non_null(strstr(e.message, "queue_timeout"));
  assert_true(wait_one(&o, 5.0));
  sp_runtime_stop(rt, 1000);
}

static void many_queued_calls_time_out_cleanly(void **state) {
  (void)state;
  /* 1,000 queued calls whose timeout is shorter than the wait: all fail with a
   * timeout, none hangs, and the pool serves afterwards. */
  sp_runtime_t *rt = h_start_pool("p", "process", 1, 1, TESTING_ADAPTER,
                                  "    max_queue: 2000\n    timeout: 200ms\n    queue_timeout: 60s\n");
  one_t o = {PTHREAD_MUTEX_INITIALIZER, 0, 0, 0};
  sp_error_t err;
  sp_call_opts_t long_call = {.timeout_ms = 20000};
  assert_int_equal(sp_execute_async(rt, "p", "sleep", "{\"seconds\": 5}", &long_call, one_done, &o, &err), 0);
  h_sleep_ms(100);
  int ok = 0, failed = 0;
  double t = h_concurrent(rt, "p", "noop", "{}", 100, 10, &ok, &failed);
  assert_int_equal(failed, 1000);
  assert_int_equal(ok, 0);
  assert_true(t < 10.0);
  char *stats = NULL;
  assert_int_equal(sp_stats_json(rt, "p", &stats, &err), 0);
  json_t *s = json_loads(stats, 0, NULL);
  assert_int_equal(json_integer_value(json_object_get(json_object_get(json_object_get(s, "calls"), "failed"), "timeout")), 1000);
  json_decref(s);
  sp_free(stats);
  assert_true(wait_one(&o, 10.0));
  assert_int_equal(o.code, 0);
  char *r = h_call_ok(rt, "p", "noop", "{}");
  free(r);
  sp_runtime_stop(rt, 1000);
}

static void call_timeout_and_cancellation(void **state) {
  (void)state;
  sp_runtime_t *rt = h_start_pool("p", "process", 1, 1, TESTING_ADAPTER, NULL);
  sp_call_opts_t opts = {.timeout_ms = 300};
  sp_result_t res;
  double t0 = h_now();
  /* A pure-Python loop: the timeout cancels it inside the worker, so the single
   * slot frees long before the loop's 20 s would have ended. */
  assert_int_equal(sp_execute(rt, "p", "spin", "{\"seconds\": 20}", &opts, &res), SP_ETIMEOUT);
  assert_true(h_now() - t0 < 1.5);
  assert_int_equal(res.error.category, SP_CAT_TIMEOUT);
  assert_non_null(strstr(res.error.message, "timed out"));
  sp_result_free(&res);
  t0 = h_now();
  char *r = h_call_ok(rt, "p", "add", "{\"a\": 2, \"b\": 3}");
  assert_string_equal(r, "5");
  free(r);
  assert_true(h_now() - t0 < 5.0);
  sp_runtime_stop(rt, 1000);
}

static void stop_fails_calls_still_running(void **state) {
  (void)state;
  sp_runtime_t *rt = h_start_pool("p", "thread", 1, 2, TESTING_ADAPTER, NULL);
  one_t o = {PTHREAD_MUTEX_INITIALIZER, 0, 0, 0};
  sp_error_t err;
  assert_int_equal(sp_execute_async(rt, "p", "sleep", "{\"seconds\": 20}", NULL, one_done, &o, &err), 0);
  h_sleep_ms(200);
  double t0 = h_now();
  assert_int_equal(sp_runtime_stop(rt, 200), 0);
  assert_true(h_now() - t0 < 8.0);
  assert_int_equal(o.done, 1);
  assert_int_equal(o.code, SP_ESTOPPED);
}

static void stop_waits_for_short_calls(void **state) {
  (void)state;
  sp_runtime_t *rt = h_start_pool("p", "thread", 1, 2, TESTING_ADAPTER, NULL);
  one_t o = {PTHREAD_MUTEX_INITIALIZER, 0, 0, 0};
  sp_error_t err;
  assert_int_equal(sp_execute_async(rt, "p", "sleep", "{\"seconds\": 0.3}", NULL, one_done, &o, &err), 0);
  h_sleep_ms(50);
  assert_int_equal(sp_runtime_stop(rt, 5000), 0);
  assert_int_equal(o.done, 1);
  assert_int_equal(o.code, 0); /* drained, not cut off */
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(adapter_import_error_fails_start),
      cmocka_unit_test(missing_adapter_class_fails_start),
      cmocka_unit_test(worker_without_hello_hits_startup_timeout),
      cmocka_unit_test(config_errors),
      cmocka_unit_test(missing_worker_program),
      cmocka_unit_test(oversized_arguments),
      cmocka_unit_test(exit_during_call_process),
      cmocka_unit_test(exit_during_call_thread),
      cmocka_unit_test(segfault_quotes_signal_and_output),
      cmocka_unit_test(sigkill_during_call_process),
      cmocka_unit_test(sigkill_during_call_thread),
      cmocka_unit_test(saturated_pool_rejects_at_once),
      cmocka_unit_test(queue_timeout),
      cmocka_unit_test(many_queued_calls_time_out_cleanly),
      cmocka_unit_test(call_timeout_and_cancellation),
      cmocka_unit_test(stop_fails_calls_still_running),
      cmocka_unit_test(stop_waits_for_short_calls),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

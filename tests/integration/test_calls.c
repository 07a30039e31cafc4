/*
 * test_calls.c - calls through the public API against real workers in both
 * profiles: results, bad input of every kind (each answered with a clear error
 * while the pool keeps serving), manifests, stats, async calls, worker output.
 */
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

static sp_runtime_t *rt;
static const char *const POOLS[] = {"proc", "thr"};

static int setup(void **state) {
  (void)state;
  rt = h_start_proc_thr(TESTING_ADAPTER, 2, 4);
  return rt ? 0 : -1;
}

static int teardown(void **state) {
  (void)state;
  return sp_runtime_stop(rt, 5000);
}

static void results_in_both_profiles(void **state) {
  (void)state;
  for (int i = 0; i < 2; i++) {
    char *r = h_call_ok(rt, POOLS[i], "add", "{\"a\": 2, \"b\": 40}");
    assert_string_equal(r, "42");
    free(r);
    r = h_call_ok(rt, POOLS[i], "echo", "{\"value\": {\"k\": [1, \"two\", null, true, 2.5]}}");
    json_t *v = json_loads(r, JSON_DECODE_ANY, NULL);
    assert_non_null(v);
    assert_int_equal(json_array_size(json_object_get(v, "k")), 5);
    assert_string_equal(json_string_value(json_array_get(json_object_get(v, "k"), 1)), "two");
    json_decref(v);
    free(r);
    r = h_call_ok(rt, POOLS[i], "noop", NULL); /* NULL args mean {} */
    free(r);
  }
}

static void unicode_round_trip(void **state) {
  (void)state;
  char *r = h_call_ok(rt, "thr", "echo", "{\"value\": \"h\\u00e9llo \xe2\x9c\x93 \\ud83d\\udc0d\"}");
  json_t *v = json_loads(r, JSON_DECODE_ANY, NULL);
  assert_string_equal(json_string_value(v), "h\xc3\xa9llo \xe2\x9c\x93 \xf0\x9f\x90\x8d");
  json_decref(v);
  free(r);
}

static void threads_are_named(void **state) {
  (void)state;
  char *r = h_call_ok(rt, "thr", "thread_name", "{}");
  /* "snakepit-w1-t3": the worker's name and the thread's index. */
  assert_non_null(strstr(r, "\"snakepit-w1-t"));
  free(r);
}

static void unknown_pool_and_tool(void **state) {
  (void)state;
  sp_error_t e;
  h_call_fails(rt, "nope", "add", "{}", SP_ENOPOOL, &e);
  assert_non_null(strstr(e.message, "'nope'"));
  assert_non_null(strstr(e.message, "proc, thr"));
  for (int i = 0; i < 2; i++) {
    h_call_fails(rt, POOLS[i], "no_such_tool", "{}", SP_ENOTOOL, &e);
    assert_non_null(strstr(e.message, "'no_such_tool'"));
    assert_non_null(strstr(e.message, "add")); /* lists what exists */
    assert_int_equal(e.category, SP_CAT_VALIDATION);
  }
}

static void bad_json_and_non_objects(void **state) {
  (void)state;
  sp_error_t e;
  h_call_fails(rt, "proc", "add", "{\"a\": 1,", SP_EBADJSON, &e);
  assert_non_null(strstr(e.message, "not valid JSON"));
  assert_non_null(strstr(e.message, "line 1"));
  h_call_fails(rt, "proc", "add", "[1, 2]", SP_EBADARGS, &e);
  assert_non_null(strstr(e.message, "must be a JSON object, got an array"));
  h_call_fails(rt, "thr", "add", "\"text\"", SP_EBADARGS, &e);
  assert_non_null(strstr(e.message, "got a string"));
  h_call_fails(rt, "thr", "add", "", SP_EBADJSON, NULL);
}

static void wrong_arguments_are_named(void **state) {
  (void)state;
  sp_error_t e;
  for (int i = 0; i < 2; i++) {
    h_call_fails(rt, POOLS[i], "add", "{\"a\": 1}", SP_EBADARGS, &e);
    assert_non_null(strstr(e.message, "missing required argument 'b'"));
    h_call_fails(rt, POOLS[i], "add", "{\"a\": 1, \"b\": 2, \"c\": 3}", SP_EBADARGS, &e);
    assert_non_null(strstr(e.message, "unknown argument 'c'"));
    h_call_fails(rt, POOLS[i], "add", "{\"a\": 1, \"b\": \"2\"}", SP_EBADARGS, &e);
    assert_non_null(strstr(e.message, "argument 'b'"));
    assert_non_null(strstr(e.message, "must be int"));
    char *r = h_call_ok(rt, POOLS[i], "add", "{\"a\": 1, \"b\": 2}"); /* still serving */
    assert_string_equal(r, "3");
    free(r);
  }
}

static void python_exceptions_reach_the_caller(void **state) {
  (void)state;
  for (int i = 0; i < 2; i++) {
    sp_error_t e;
    h_call_fails(rt, POOLS[i], "fail", "{\"message\": \"kaboom 42\"}", SP_EPYTHON, &e);
    assert_string_equal(e.python_type, "ValueError");
    assert_non_null(strstr(e.message, "kaboom 42"));
    assert_non_null(strstr(e.message, "'fail'"));
    assert_non_null(strstr(e.traceback, "Traceback (most recent call last)"));
    assert_non_null(strstr(e.traceback, "testing_adapter.py"));
    assert_non_null(strstr(e.traceback, "ValueError: kaboom 42"));
    char *r = h_call_ok(rt, POOLS[i], "noop", "{}");
    free(r);
  }
}

static void tools_manifest(void **state) {
  (void)state;
  char *json = NULL;
  sp_error_t err;
  memset(&err, 0x5a, sizeof(err)); /* overwritten without being read: cleared on success */
  assert_int_equal(sp_tools_json(rt, "thr", &json, &err), 0);
  assert_int_equal(err.code, 0);
  assert_null(err.priv_);
  json_t *tools = json_loads(json, 0, NULL);
  assert_true(json_is_array(tools));
  int found = 0;
  size_t i;
  json_t *t;
  json_array_foreach(tools, i, t) {
    if (strcmp(json_string_value(json_object_get(t, "name")), "add") != 0) continue;
    found = 1;
    assert_string_equal(json_string_value(json_object_get(t, "description")), "Add two integers");
    json_t *params = json_object_get(t, "parameters");
    assert_int_equal(json_array_size(params), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(params, 0), "name")), "a");
    assert_string_equal(json_string_value(json_object_get(json_array_get(params, 0), "type")), "int");
    assert_true(json_is_true(json_object_get(json_array_get(params, 0), "required")));
  }
  assert_true(found);
  json_decref(tools);
  sp_free(json);
  assert_int_equal(sp_tools_json(rt, "zzz", &json, &err), SP_ENOPOOL);
  sp_error_free(&err);
  memset(&err, 0x5a, sizeof(err));
  assert_int_equal(sp_pools_json(rt, &json, &err), 0);
  assert_int_equal(err.code, 0);
  assert_null(err.priv_);
  assert_string_equal(json, "[\"proc\",\"thr\"]");
  sp_free(json);
}

static void stats_json(void **state) {
  (void)state;
  char *r = h_call_ok(rt, "thr", "noop", "{}");
  free(r);
  char *json = NULL;
  sp_error_t err;
  assert_int_equal(sp_stats_json(rt, "thr", &json, &err), 0);
  json_t *o = json_loads(json, 0, NULL);
  assert_non_null(o);
  assert_string_equal(json_string_value(json_object_get(o, "profile")), "thread");
  assert_int_equal(json_integer_value(json_object_get(o, "capacity")), 4);
  assert_true(json_integer_value(json_object_get(json_object_get(o, "calls"), "ok")) >= 1);
  json_t *w = json_array_get(json_object_get(o, "workers"), 0);
  assert_string_equal(json_string_value(json_object_get(w, "state")), "ready");
  assert_true(json_integer_value(json_object_get(w, "pid")) > 0);
  assert_true(json_integer_value(json_object_get(w, "rss_kb")) > 1000);
  assert_true(json_integer_value(json_object_get(w, "requests")) >= 1);
  assert_true(json_is_real(json_object_get(w, "attach_wait_ms")));
  /* Per-tool counters, the cumulative histogram, and refusals counted before dispatch
   * (earlier tests sent unknown tools and bad JSON to this pool). */
  json_t *noop = json_object_get(json_object_get(o, "tools"), "noop");
  assert_true(json_integer_value(json_object_get(noop, "ok")) >= 1);
  json_t *hist = json_object_get(o, "latency_histogram");
  json_t *buckets = json_object_get(hist, "buckets");
  long long count = json_integer_value(json_object_get(hist, "count"));
  assert_true(count >= 1);
  assert_int_equal(json_integer_value(json_array_get(json_array_get(buckets, json_array_size(buckets) - 1), 1)), count);
  json_t *calls = json_object_get(o, "calls");
  assert_true(json_integer_value(json_object_get(calls, "rejected_before_dispatch")) >= 2);
  assert_true(json_integer_value(json_object_get(json_object_get(calls, "failed"), "validation")) >= 2);
  json_decref(o);
  sp_free(json);
  assert_int_equal(sp_stats_json(rt, NULL, &json, &err), 0);
  o = json_loads(json, 0, NULL);
  assert_int_equal(json_array_size(json_object_get(o, "pools")), 2);
  json_decref(o);
  sp_free(json);
  assert_int_equal(sp_stats_json(rt, "zzz", &json, &err), SP_ENOPOOL);
  sp_error_free(&err);
}

typedef struct {
  pthread_mutex_t mu;
  int done, ok, sum;
} async_state_t;

static void on_done(sp_result_t *res, void *ud) {
  async_state_t *s = ud;
  pthread_mutex_lock(&s->mu);
  s->done++;
  if (res->error.code == 0) {
    s->ok++;
    s->sum += atoi(res->json);
  }
  pthread_mutex_unlock(&s->mu);
}

static void async_calls(void **state) {
  (void)state;
  async_state_t s = {PTHREAD_MUTEX_INITIALIZER, 0, 0, 0};
  char args[64];
  int expected = 0;
  for (int i = 0; i < 200; i++) {
    snprintf(args, sizeof(args), "{\"a\": %d, \"b\": 1}", i);
    expected += i + 1;
    /* err is overwritten without being read; an accepted call leaves no error. */
    sp_error_t err;
    memset(&err, 0x5a, sizeof(err));
    assert_int_equal(sp_execute_async(rt, POOLS[i % 2], "add", args, NULL, on_done, &s, &err), 0);
    assert_int_equal(err.code, 0);
    assert_string_equal(err.message, "");
    assert_null(err.priv_);
  }
  /* A failing submission never runs the callback. */
  sp_error_t err;
  assert_int_equal(sp_execute_async(rt, "thr", "add", "{bad", NULL, on_done, &s, &err), SP_EBADJSON);
  sp_error_free(&err);
  for (int spin = 0; spin < 3000; spin++) {
    pthread_mutex_lock(&s.mu);
    int d = s.done;
    pthread_mutex_unlock(&s.mu);
    if (d == 200) break;
    struct timespec ts = {0, 5000000};
    nanosleep(&ts, NULL);
  }
  assert_int_equal(s.done, 200);
  assert_int_equal(s.ok, 200);
  assert_int_equal(s.sum, expected);
}

typedef struct {
  pthread_mutex_t mu;
  char lines[8192];
} log_capture_t;

static void capture(int level, const char *line, void *ud) {
  log_capture_t *c = ud;
  (void)level;
  pthread_mutex_lock(&c->mu);
  strncat(c->lines, line, sizeof(c->lines) - strlen(c->lines) - 2);
  strcat(c->lines, "\n");
  pthread_mutex_unlock(&c->mu);
}

static void worker_output_is_forwarded(void **state) {
  (void)state;
  static log_capture_t cap = {PTHREAD_MUTEX_INITIALIZER, ""};
  sp_set_log_handler(capture, &cap);
  char *r = h_call_ok(rt, "thr", "write_stderr", "{\"text\": \"hello from python\"}");
  free(r);
  int seen = 0;
  for (int i = 0; i < 200 && !seen; i++) {
    pthread_mutex_lock(&cap.mu);
    seen = strstr(cap.lines, "[thr/w1 pid ") != NULL && strstr(cap.lines, "hello from python");
    pthread_mutex_unlock(&cap.mu);
    struct timespec ts = {0, 10000000};
    nanosleep(&ts, NULL);
  }
  sp_set_log_handler(NULL, NULL);
  if (!seen) print_error("captured: %s\n", cap.lines);
  assert_true(seen);
}

static void misuse_is_rejected(void **state) {
  (void)state;
  sp_result_t res;
  assert_int_equal(sp_execute(NULL, "thr", "noop", "{}", NULL, &res), SP_EINVAL);
  sp_result_free(&res);
  assert_int_equal(sp_execute(rt, NULL, "noop", "{}", NULL, &res), SP_EINVAL);
  sp_result_free(&res);
  assert_int_equal(sp_execute(rt, "thr", "noop", "{}", NULL, NULL), SP_EINVAL);
  sp_error_t err;
  assert_int_equal(sp_execute_async(rt, "thr", "noop", "{}", NULL, NULL, NULL, &err), SP_EINVAL);
  sp_error_free(&err);
}

/* An event source: counts its runs, drains its pipe, and from inside run()
 * makes an async call and reads stats (both must work on the loop thread). */
typedef struct {
  sp_runtime_t *rt;
  int fds[2];
  atomic_int runs;
  atomic_int calls_done;
  atomic_int stats_ok;
  atomic_int call_now;
  long long timeout;
} source_t;

static void source_call_done(sp_result_t *res, void *ud) {
  source_t *s = ud;
  if (res->error.code == 0) atomic_fetch_add(&s->calls_done, 1);
}

static void source_run(void *ud) {
  source_t *s = ud;
  char buf[64];
  while (read(s->fds[0], buf, sizeof(buf)) > 0) {
  }
  atomic_fetch_add(&s->runs, 1);
  if (atomic_exchange(&s->call_now, 0)) {
    sp_error_t err;
    if (sp_execute_async(s->rt, "src", "add", "{\"a\": 2, \"b\": 3}", NULL, source_call_done, s,
                         &err) != 0)
      print_message("async from run(): %s\n", err.message);
    sp_error_free(&err);
    char *json = NULL;
    if (sp_stats_json(s->rt, "src", &json, &err) == 0 && strstr(json, "\"workers\"") != NULL)
      atomic_fetch_add(&s->stats_ok, 1);
    sp_error_free(&err);
    sp_free(json);
  }
}

static long long source_timeout(void *ud) { return ((source_t *)ud)->timeout; }

static int wait_for(atomic_int *v, int at_least) {
  for (int i = 0; i < 400 && atomic_load(v) < at_least; i++) h_sleep_ms(5);
  return atomic_load(v) >= at_least;
}

static void event_source_runs_on_the_loop(void **state) {
  (void)state;
  source_t s = {.timeout = -1};
  s.rt = h_start_pool("src", "process", 1, 1, TESTING_ADAPTER, NULL);
  assert_int_equal(pipe2(s.fds, O_NONBLOCK | O_CLOEXEC), 0);
  sp_loop_source_t src = {.fd = s.fds[0], .run = source_run, .timeout_ms = source_timeout,
                          .ud = &s};
  sp_error_t err;
  assert_int_equal(sp_runtime_attach_source(s.rt, &src, &err), 0);
  /* Attaching runs it once; a second source is refused. */
  assert_true(wait_for(&s.runs, 1));
  assert_int_equal(sp_runtime_attach_source(s.rt, &src, &err), SP_EINVAL);
  sp_error_free(&err);
  /* Readable fd -> run; inside run, async calls and stats work. */
  int before = atomic_load(&s.runs);
  atomic_store(&s.call_now, 1);
  assert_int_equal(write(s.fds[1], "x", 1), 1);
  assert_true(wait_for(&s.runs, before + 1));
  assert_true(wait_for(&s.calls_done, 1));
  assert_int_equal(atomic_load(&s.stats_ok), 1);
  /* A kick from this thread -> run. */
  before = atomic_load(&s.runs);
  sp_runtime_kick_source(s.rt);
  assert_true(wait_for(&s.runs, before + 1));
  /* Detached: neither data nor kicks run it any more. */
  assert_int_equal(sp_runtime_detach_source(s.rt), 0);
  int after = atomic_load(&s.runs);
  assert_int_equal(write(s.fds[1], "y", 1), 1);
  sp_runtime_kick_source(s.rt);
  h_sleep_ms(100);
  assert_int_equal(atomic_load(&s.runs), after);
  /* A timeout source, left attached: sp_runtime_stop detaches it. */
  s.timeout = 10;
  assert_int_equal(sp_runtime_attach_source(s.rt, &src, &err), 0);
  before = atomic_load(&s.runs);
  assert_true(wait_for(&s.runs, before + 5)); /* runs on its 10 ms timeout alone */
  assert_int_equal(sp_runtime_stop(s.rt, 1000), 0);
  close(s.fds[0]);
  close(s.fds[1]);
}

static double process_cpu_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void landed(sp_result_t *res, void *ud) {
  (void)res;
  atomic_store((atomic_int *)ud, 1);
}

static void loop_sleeps_when_quiet(void **state) {
  (void)state;
  /* With SNAKEPIT_LOOP_SPIN_US the loop thread polls without sleeping for a
   * moment after a burst of calls; it must not keep a CPU busy while nothing
   * happens: neither idle nor while one long call is in flight. */
  setenv("SNAKEPIT_LOOP_SPIN_US", "100", 1); /* read when a runtime starts */
  sp_runtime_t *qrt = h_start_pool("quiet", "process", 1, 1, TESTING_ADAPTER, NULL);
  unsetenv("SNAKEPIT_LOOP_SPIN_US");
  for (int i = 0; i < 200; i++) free(h_call_ok(qrt, "quiet", "noop", "{}"));
  double c0 = process_cpu_s(), t0 = h_now();
  h_sleep_ms(500);
  double idle = (process_cpu_s() - c0) / (h_now() - t0);
  atomic_int done = 0;
  sp_error_t err;
  assert_int_equal(sp_execute_async(qrt, "quiet", "sleep", "{\"seconds\": 1.0}", NULL, landed,
                                    &done, &err),
                   0);
  c0 = process_cpu_s();
  t0 = h_now();
  while (!atomic_load(&done)) h_sleep_ms(10);
  double waiting = (process_cpu_s() - c0) / (h_now() - t0);
  print_message("CPU of this process: idle %.3f, one long call in flight %.3f (CPUs)\n", idle,
                waiting);
  assert_true(idle < 0.2);
  assert_true(waiting < 0.2);
  sp_runtime_stop(qrt, 1000);
}

/* Waits up to 3 s (several pings) for the pool's stats to report the GIL on. */
static json_t *stats_once_gil_on(sp_runtime_t *r, const char *pool) {
  json_t *st = NULL;
  for (int i = 0; i < 60; i++) {
    json_decref(st);
    st = h_pool_stats(r, pool);
    if (json_is_true(json_object_get(st, "gil_enabled"))) break;
    h_sleep_ms(50);
  }
  return st;
}

static void gil_state_is_live(void **state) {
  (void)state;
  /* A worker reports the GIL state with every PONG: importing an extension
   * without free-threading support turns a free-threaded build's GIL back on,
   * which stats, the log and the counters must show (a GIL build: always on). */
  static log_capture_t cap = {PTHREAD_MUTEX_INITIALIZER, ""};
  char extra[512];
  snprintf(extra, sizeof(extra),
           "    ping_interval: 100ms\n    adapter_env: {PYTHONPATH: \"%s\"}\n", SP_TEST_EXT_DIR);
  sp_runtime_t *g = h_start_pool("gil", "thread", 1, 2, TESTING_ADAPTER, extra);
  json_t *st = h_pool_stats(g, "gil");
  int ft = json_is_true(json_object_get(st, "free_threaded_build"));
  print_message("free-threaded build: %s\n", ft ? "yes" : "no");
  assert_int_equal(json_is_true(json_object_get(st, "gil_enabled")), !ft);
  assert_int_equal(json_integer_value(json_object_get(st, "gil_enabled_workers")), !ft);
  json_decref(st);

  sp_set_log_handler(capture, &cap);
  char *r = h_call_ok(g, "gil", "import_module", "{\"name\": \"sp_gil_user\"}");
  assert_string_equal(r, "true");
  free(r);
  st = stats_once_gil_on(g, "gil");
  sp_set_log_handler(NULL, NULL);
  json_t *w = json_array_get(json_object_get(st, "workers"), 0);
  assert_true(json_is_true(json_object_get(st, "gil_enabled")));
  assert_true(json_is_true(json_object_get(w, "gil_enabled")));
  assert_int_equal(json_integer_value(json_object_get(st, "gil_enabled_workers")), 1);
  assert_int_equal(json_integer_value(json_object_get(st, "gil_reenabled")), ft);
  char expect[96];
  snprintf(expect, sizeof(expect), "[gil/w1 pid %lld] the GIL is enabled again (at run time)",
           json_integer_value(json_object_get(w, "pid")));
  pthread_mutex_lock(&cap.mu);
  int logged = strstr(cap.lines, expect) != NULL;
  if (logged != ft) print_error("captured: %s\n", cap.lines);
  pthread_mutex_unlock(&cap.mu);
  assert_int_equal(logged, ft);
  json_decref(st);
  sp_runtime_stop(g, 1000);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(gil_state_is_live),
      cmocka_unit_test(results_in_both_profiles),
      cmocka_unit_test(unicode_round_trip),
      cmocka_unit_test(threads_are_named),
      cmocka_unit_test(unknown_pool_and_tool),
      cmocka_unit_test(bad_json_and_non_objects),
      cmocka_unit_test(wrong_arguments_are_named),
      cmocka_unit_test(python_exceptions_reach_the_caller),
      cmocka_unit_test(tools_manifest),
      cmocka_unit_test(stats_json),
      cmocka_unit_test(async_calls),
      cmocka_unit_test(worker_output_is_forwarded),
      cmocka_unit_test(misuse_is_rejected),
      cmocka_unit_test(event_source_runs_on_the_loop),
      cmocka_unit_test(loop_sleeps_when_quiet),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}

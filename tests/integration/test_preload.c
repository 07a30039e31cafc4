/*
 * test_preload.c - preload: the fork server builds the adapter once and every
 * worker shares its model copy-on-write. Workers answer from the preloaded
 * instance (built in the fork server, post_fork() run in each worker) with the
 * right data; the pool's PSS is a fraction of what building it per worker
 * costs, and each worker's USS stays small; worker_max_rss_mb counts what a
 * worker owns (USS), not the shared model; a replacement forks from the same
 * state. Adapters that cannot be preloaded (a thread or a socket left by the
 * constructor) fall back with a warning under `auto` and fail the start under
 * `true`; a post_fork() that raises fails the start with its traceback; bad
 * values are config errors naming file, line and key.
 */
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

#define MODEL "model_adapter.ModelAdapter"
#define MODEL_MIB 64
#define WORKERS 4

static long long jint(json_t *o, const char *key) {
  return (long long)json_integer_value(json_object_get(o, key));
}

static json_t *call_json(sp_runtime_t *rt, const char *pool, const char *tool, const char *args) {
  char *r = h_call_ok(rt, pool, tool, args);
  json_t *o = json_loads(r, 0, NULL);
  free(r);
  assert_non_null(o);
  return o;
}

/* What the worker sums for checksum(start, 4096) over arange(MODEL_MIB MiB / 8). */
static double expected_sum(long long start) {
  long long n = (long long)MODEL_MIB * 131072, count = 0;
  double sum = 0;
  for (long long i = start; i < n; i += 4096, count++) sum += (double)i;
  return sum;
}

static sp_runtime_t *start_model_pool(const char *name, const char *preload, int workers,
                                      const char *more) {
  char extra[512];
  snprintf(extra, sizeof(extra),
           "    preload: %s\n    adapter_args: [\"%d\"]\n    pipeline_depth: 0\n%s", preload,
           MODEL_MIB, more ? more : "");
  return h_start_pool(name, "process", workers, 1, MODEL, extra);
}

/* Total PSS (KiB) of a pool's processes, fork server included. */
static long long pool_pss_kb(sp_runtime_t *rt, const char *pool) {
  json_t *o = h_pool_stats(rt, pool);
  long long kb = jint(json_object_get(o, "memory"), "pss_kb");
  json_decref(o);
  return kb;
}

/* Distinct pids answering info within `calls` calls of 0.2 s from WORKERS threads. */
typedef struct {
  sp_runtime_t *rt;
  json_t *info;
} info_t;

static void *info_main(void *arg) {
  info_t *t = arg;
  /* checksum first, so the call overlaps the others and reaches its own worker. */
  char *r = h_call_ok(t->rt, "m", "checksum", "{\"start\": 7}");
  json_t *o = json_loads(r, 0, NULL);
  assert_true(json_real_value(json_object_get(o, "sum")) == expected_sum(7));
  json_decref(o);
  free(r);
  t->info = call_json(t->rt, "m", "info", "{}");
  return NULL;
}

static void workers_share_one_preloaded_model(void **state) {
  (void)state;
  sp_runtime_t *rt = start_model_pool("m", "true", WORKERS, NULL);
  json_t *st = h_pool_stats(rt, "m");
  assert_string_equal(json_string_value(json_object_get(st, "preload")), "on");
  long long server = jint(json_object_get(st, "fork_server"), "pid");
  assert_true(server > 1);
  /* Each worker: RSS counts the model, USS (what it owns) does not. */
  json_t *ws = json_object_get(st, "workers");
  assert_int_equal(json_array_size(ws), WORKERS);
  for (size_t i = 0; i < json_array_size(ws); i++) {
    json_t *w = json_array_get(ws, i);
    assert_true(jint(w, "rss_kb") > MODEL_MIB * 1024);
    assert_true(jint(w, "uss_kb") >= 0 && jint(w, "uss_kb") < MODEL_MIB * 1024 / 4);
    assert_true(jint(w, "pss_kb") < jint(w, "rss_kb"));
  }
  json_decref(st);
  for (int round = 0; round < 3; round++) {
    pthread_t th[WORKERS];
    info_t t[WORKERS];
    for (int i = 0; i < WORKERS; i++) {
      t[i] = (info_t){rt, NULL};
      assert_int_equal(pthread_create(&th[i], NULL, info_main, &t[i]), 0);
    }
    for (int i = 0; i < WORKERS; i++) pthread_join(th[i], NULL);
    for (int i = 0; i < WORKERS; i++) {
      json_t *o = t[i].info;
      assert_int_equal(jint(o, "built_in"), server);       /* one constructor: the fork server's */
      assert_int_equal(jint(o, "post_fork_pid"), jint(o, "pid")); /* the hook ran in the worker */
      assert_int_equal(jint(o, "ppid"), server);
      json_decref(o);
    }
  }
  sp_runtime_stop(rt, 2000);
}

static void preload_costs_a_fraction_of_per_worker_models(void **state) {
  (void)state;
  sp_runtime_t *rt = start_model_pool("m", "true", WORKERS, NULL);
  long long shared = pool_pss_kb(rt, "m");
  sp_runtime_stop(rt, 2000);
  rt = start_model_pool("m", "false", WORKERS, NULL);
  long long own = pool_pss_kb(rt, "m");
  json_t *o = call_json(rt, "m", "info", "{}");
  assert_int_equal(jint(o, "built_in"), jint(o, "pid")); /* without preload: built in the worker */
  assert_int_equal(jint(o, "post_fork_pid"), jint(o, "pid")); /* and the hook still runs */
  json_decref(o);
  sp_runtime_stop(rt, 2000);
  print_message("pool PSS with %d workers: %lld KiB preloaded, %lld KiB without\n", WORKERS,
                shared, own);
  /* Four models against one (plus interpreters on both sides). */
  assert_true(shared > 0 && own > 0);
  assert_true(shared * 2 < own);
}

/* worker_max_rss_mb half the model: RSS would recycle every preloaded worker at
 * once; USS only the one that grew by holding memory of its own. */
static void max_rss_counts_what_a_worker_owns(void **state) {
  (void)state;
  char more[128];
  snprintf(more, sizeof(more), "    worker_max_rss_mb: %d\n    min_lifetime: 0\n", MODEL_MIB / 2);
  sp_runtime_t *rt = start_model_pool("m", "true", 2, more);
  h_sleep_ms(1500); /* three memory checks */
  json_t *st = h_pool_stats(rt, "m");
  assert_int_equal(jint(json_object_get(st, "recycles"), "max_rss"), 0);
  json_decref(st);
  char args[64];
  snprintf(args, sizeof(args), "{\"mib\": %d}", MODEL_MIB);
  free(h_call_ok(rt, "m", "hold", args));
  long long recycled = 0;
  for (int i = 0; i < 60 && recycled == 0; i++) {
    h_sleep_ms(100);
    st = h_pool_stats(rt, "m");
    recycled = jint(json_object_get(st, "recycles"), "max_rss");
    json_decref(st);
  }
  assert_int_equal(recycled, 1);
  sp_runtime_stop(rt, 2000);
}

static void replacement_forks_from_the_preloaded_state(void **state) {
  (void)state;
  sp_runtime_t *rt = start_model_pool("m", "true", 1, NULL);
  json_t *a = call_json(rt, "m", "info", "{}");
  kill((pid_t)jint(a, "pid"), SIGKILL);
  json_t *b = NULL;
  for (int i = 0; i < 100; i++) {
    h_sleep_ms(50);
    sp_result_t res;
    int rc = sp_execute(rt, "m", "info", "{}", NULL, &res);
    if (rc == 0) b = json_loads(res.json, 0, NULL);
    sp_result_free(&res);
    if (b != NULL && jint(b, "pid") != jint(a, "pid")) break;
    json_decref(b);
    b = NULL;
  }
  assert_non_null(b);
  assert_int_equal(jint(b, "built_in"), jint(a, "built_in")); /* the same preloaded model */
  assert_int_equal(jint(b, "post_fork_pid"), jint(b, "pid"));
  assert_true(jint(b, "seed") != jint(a, "seed"));
  json_decref(a);
  json_decref(b);
  sp_runtime_stop(rt, 2000);
}

static pthread_mutex_t g_log_mu = PTHREAD_MUTEX_INITIALIZER;
static char g_warning[1024];

static void capture_log(int level, const char *line, void *ud) {
  (void)ud;
  pthread_mutex_lock(&g_log_mu);
  if (level >= 2 && strstr(line, "preload")) snprintf(g_warning, sizeof(g_warning), "%s", line);
  pthread_mutex_unlock(&g_log_mu);
}

static void auto_falls_back_for_a_thread_in_the_constructor(void **state) {
  (void)state;
  sp_set_log_handler(capture_log, NULL);
  sp_runtime_t *rt = h_start_pool("m", "process", 2, 1, "model_adapter.ThreadInInitAdapter",
                                  "    preload: auto\n");
  json_t *o = call_json(rt, "m", "info", "{}");
  assert_int_equal(jint(o, "built_in"), jint(o, "pid")); /* each worker built its own */
  json_decref(o);
  json_t *st = h_pool_stats(rt, "m");
  assert_string_equal(json_string_value(json_object_get(st, "preload")), "fallback");
  assert_non_null(strstr(json_string_value(json_object_get(st, "preload_note")), "thread"));
  json_decref(st);
  sp_runtime_stop(rt, 2000);
  sp_set_log_handler(NULL, NULL);
  assert_non_null(strstr(g_warning, "pool 'm'"));
  assert_non_null(strstr(g_warning, "cannot be preloaded"));
  assert_non_null(strstr(g_warning, "post_fork()"));
}

/* Starting pool "m" of adapter with `extra` fails; the error's message and
 * traceback together contain every one of want (NULL-terminated). */
static void expect_start_error(const char *adapter, const char *extra, int code,
                               const char *const *want) {
  char yaml[2048];
  h_yaml(yaml, sizeof(yaml), "m", "process", 2, 1, adapter, extra);
  sp_runtime_t *rt = NULL;
  sp_error_t err;
  int rc = sp_runtime_start_yaml(&rt, yaml, strlen(yaml), "preload.yaml", &err);
  assert_int_equal(rc, code);
  assert_null(rt);
  char all[8192];
  snprintf(all, sizeof(all), "%s\n%s", err.message ? err.message : "",
           err.traceback ? err.traceback : "");
  for (const char *const *w = want; *w; w++) {
    if (strstr(all, *w) == NULL) print_error("missing \"%s\" in: %s\n", *w, all);
    assert_non_null(strstr(all, *w));
  }
  sp_error_free(&err);
}

static void explicit_preload_fails_for_a_thread_or_a_socket(void **state) {
  (void)state;
  const char *thread[] = {"ThreadInInitAdapter", "cannot be preloaded", "thread", NULL};
  expect_start_error("model_adapter.ThreadInInitAdapter", "    preload: true\n", SP_ESTARTUP,
                     thread);
  const char *sock[] = {"SocketInInitAdapter", "cannot be preloaded", "socket", NULL};
  expect_start_error("model_adapter.SocketInInitAdapter", "    preload: true\n", SP_ESTARTUP,
                     sock);
}

static void raising_post_fork_fails_the_start(void **state) {
  (void)state;
  const char *want[] = {"RuntimeError", "no GPU context for worker w", "post_fork", NULL};
  expect_start_error("model_adapter.BadPostForkAdapter", "    preload: true\n", SP_ESTARTUP,
                     want);
}

/* Replacements whose post_fork() raises: the crash-loop guard marks the pool
 * degraded and calls fail fast naming the hook's error. */
static void raising_post_fork_in_replacements_trips_the_crash_loop_guard(void **state) {
  (void)state;
  sp_runtime_t *rt = h_start_pool("m", "process", 1, 1, "model_adapter.FirstWorkerOnlyAdapter",
                                  "    preload: true\n    crash_loop_max: 3\n");
  json_t *a = call_json(rt, "m", "info", "{}");
  kill((pid_t)jint(a, "pid"), SIGKILL);
  json_decref(a);
  int degraded = 0;
  for (int i = 0; i < 100 && !degraded; i++) {
    h_sleep_ms(50);
    json_t *st = h_pool_stats(rt, "m");
    degraded = json_is_true(json_object_get(st, "degraded"));
    json_decref(st);
  }
  assert_true(degraded);
  sp_error_t err;
  h_call_fails(rt, "m", "info", "{}", SP_EDEGRADED, &err);
  assert_non_null(strstr(err.message, "no GPU context for worker w"));
  sp_runtime_stop(rt, 2000);
}

static void bad_preload_values_are_config_errors(void **state) {
  (void)state;
  const char *exec[] = {"preload.yaml:", "key 'preload'", "worker_start: fork", "\"exec\"", NULL};
  expect_start_error(MODEL, "    worker_start: exec\n    preload: true\n", SP_ECONFIG, exec);
  const char *word[] = {"preload.yaml:", "key 'preload'", "true, false or \"auto\"", "maybe",
                        NULL};
  expect_start_error(MODEL, "    preload: maybe\n", SP_ECONFIG, word);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(workers_share_one_preloaded_model),
      cmocka_unit_test(preload_costs_a_fraction_of_per_worker_models),
      cmocka_unit_test(max_rss_counts_what_a_worker_owns),
      cmocka_unit_test(replacement_forks_from_the_preloaded_state),
      cmocka_unit_test(auto_falls_back_for_a_thread_in_the_constructor),
      cmocka_unit_test(explicit_preload_fails_for_a_thread_or_a_socket),
      cmocka_unit_test(raising_post_fork_fails_the_start),
      cmocka_unit_test(raising_post_fork_in_replacements_trips_the_crash_loop_guard),
      cmocka_unit_test(bad_preload_values_are_config_errors),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

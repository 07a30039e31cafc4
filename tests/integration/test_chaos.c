/*
 * test_chaos.c - 16 callers against both profiles for ~16 s while a random
 * worker is SIGKILLed every 2 s and workers recycle every 200 calls. Every call
 * must end in a result or a clear error within its timeout, and the pools must
 * be back to full capacity at the end.
 */
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "harness.h"

#define RUN_SECONDS 16.0
#define CALL_TIMEOUT_MS 3000

static sp_runtime_t *rt;
static atomic_int stop_flag;
static atomic_int ok_calls, late_calls, by_cat[8];
static const char *const pools[] = {"proc", "thr"};

static void *caller(void *arg) {
  unsigned seed = (unsigned)(uintptr_t)arg;
  sp_call_opts_t opts = {.timeout_ms = CALL_TIMEOUT_MS};
  while (!atomic_load(&stop_flag)) {
    const char *pool = pools[rand_r(&seed) % 2];
    char args[64];
    snprintf(args, sizeof(args), "{\"seconds\": 0.00%d}", 1 + rand_r(&seed) % 9);
    double t0 = h_now();
    sp_result_t res;
    int rc = sp_execute(rt, pool, "sleep", args, &opts, &res);
    if (h_now() - t0 > CALL_TIMEOUT_MS / 1000.0 + 1.0) atomic_fetch_add(&late_calls, 1);
    if (rc == 0) atomic_fetch_add(&ok_calls, 1);
    else atomic_fetch_add(&by_cat[res.error.category], 1);
    sp_result_free(&res);
  }
  return NULL;
}

static long random_worker_pid(unsigned *seed) {
  char *json = NULL;
  sp_error_t err;
  if (sp_stats_json(rt, pools[rand_r(seed) % 2], &json, &err) != 0) return 0;
  json_t *o = json_loads(json, 0, NULL);
  sp_free(json);
  json_t *ws = json_object_get(o, "workers");
  long pid = 0;
  if (json_array_size(ws) > 0) {
    json_t *w = json_array_get(ws, (size_t)rand_r(seed) % json_array_size(ws));
    if (strcmp(json_string_value(json_object_get(w, "state")), "ready") == 0)
      pid = (long)json_integer_value(json_object_get(w, "pid"));
  }
  json_decref(o);
  return pid;
}

static long long sum_field(const char *key, const char *sub) {
  char *json = NULL;
  sp_error_t err;
  assert_int_equal(sp_stats_json(rt, NULL, &json, &err), 0);
  json_t *o = json_loads(json, 0, NULL);
  sp_free(json);
  long long total = 0;
  size_t i;
  json_t *p;
  json_array_foreach(json_object_get(o, "pools"), i, p) {
    json_t *v = json_object_get(p, key);
    if (sub) {
      const char *k;
      json_t *x;
      json_object_foreach(v, k, x) total += json_integer_value(x);
    } else {
      total += json_integer_value(v);
    }
  }
  json_decref(o);
  return total;
}

static void chaos(void **state) {
  (void)state;
  char yaml[4096];
  snprintf(yaml, sizeof(yaml),
           "pools:\n"
           "  - name: proc\n    worker_profile: process\n    pool_size: 3\n"
           "    adapter: lifecycle_adapter.LifecycleAdapter\n    python_path: [\"%s\"]\n"
           "    worker_max_requests: 200\n    min_lifetime: 0s\n    crash_loop_max: 100\n"
           "  - name: thr\n    worker_profile: thread\n    pool_size: 2\n    threads_per_worker: 4\n"
           "    adapter: lifecycle_adapter.LifecycleAdapter\n    python_path: [\"%s\"]\n"
           "    worker_max_requests: 200\n    min_lifetime: 0s\n    crash_loop_max: 100\n",
           SP_TEST_ADAPTERS, SP_TEST_ADAPTERS);
  rt = h_start(yaml);
  pthread_t th[16];
  for (int i = 0; i < 16; i++) pthread_create(&th[i], NULL, caller, (void *)(uintptr_t)(i + 1));
  unsigned seed = 42;
  int kills = 0;
  double end = h_now() + RUN_SECONDS;
  while (h_now() < end) {
    struct timespec ts = {2, 0};
    nanosleep(&ts, NULL);
    long pid = 0;
    for (int tries = 0; tries < 50 && pid == 0; tries++) pid = random_worker_pid(&seed);
    if (pid > 0 && kill((pid_t)pid, SIGKILL) == 0) kills++;
  }
  atomic_store(&stop_flag, 1);
  for (int i = 0; i < 16; i++) pthread_join(th[i], NULL);

  /* Capacity returns: every position has a ready worker again. */
  long long ready = 0;
  for (int i = 0; i < 100 && ready != 5; i++) {
    ready = sum_field("ready_workers", NULL);
    struct timespec ts = {0, 100000000};
    nanosleep(&ts, NULL);
  }
  long long recycled = sum_field("recycles", "*"), crashes = sum_field("crashes", NULL);
  int failed = 0;
  for (int c = 0; c < 8; c++) failed += atomic_load(&by_cat[c]);
  printf("chaos: %d calls ok, %d failed (worker %d, timeout %d, pool %d, other %d), "
         "%d kills, %lld crashes seen, %lld recycles, %d late\n",
         atomic_load(&ok_calls), failed, atomic_load(&by_cat[SP_CAT_WORKER]),
         atomic_load(&by_cat[SP_CAT_TIMEOUT]), atomic_load(&by_cat[SP_CAT_POOL]),
         failed - atomic_load(&by_cat[SP_CAT_WORKER]) - atomic_load(&by_cat[SP_CAT_TIMEOUT]) -
             atomic_load(&by_cat[SP_CAT_POOL]),
         kills, crashes, recycled, atomic_load(&late_calls));
  assert_int_equal(atomic_load(&late_calls), 0);  /* nothing hung past its timeout */
  assert_int_equal(ready, 5);                      /* full capacity again */
  assert_true(kills >= 6);
  assert_true(crashes >= kills - 1);               /* a kill may hit a worker as it exits */
  assert_true(recycled >= 5);
  assert_true(atomic_load(&ok_calls) > 20 * failed); /* failures are the killed calls only */
  /* Only the kinds of failure chaos can cause: crashed workers (and timeouts). */
  assert_int_equal(atomic_load(&by_cat[SP_CAT_VALIDATION]), 0);
  assert_int_equal(atomic_load(&by_cat[SP_CAT_PYTHON]), 0);
  assert_int_equal(atomic_load(&by_cat[SP_CAT_PROTOCOL]), 0);
  assert_int_equal(atomic_load(&by_cat[SP_CAT_INTERNAL]), 0);
  assert_int_equal(sp_runtime_stop(rt, 2000), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(chaos)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * test_autoscale.c - pool_size: MIN..MAX. A burst against a 1..4 pool grows it
 * to 4 (forked workers) and, once they sat idle for scale_down_idle, back to 1,
 * with no failed call and a latency p99 during the burst well under a fixed
 * pool of 1's; a load that comes and goes faster than scale_down_idle keeps
 * its workers instead of shrinking and growing again; ranges and
 * min_workers/max_workers that make no sense are config errors naming file,
 * line and key.
 */
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

#define CLIENTS 8
#define CALLS 6
#define SLEEP "{\"seconds\": 0.05}"

static long long jint(json_t *o, const char *key) {
  return (long long)json_integer_value(json_object_get(o, key));
}

static long long pool_int(sp_runtime_t *rt, const char *pool, const char *key) {
  json_t *o = h_pool_stats(rt, pool);
  long long v = jint(o, key);
  json_decref(o);
  return v;
}

typedef struct {
  sp_runtime_t *rt;
  const char *pool;
  int calls, failed;
  double *latency; /* calls entries, seconds */
} client_t;

static void *client(void *arg) {
  client_t *c = arg;
  for (int i = 0; i < c->calls; i++) {
    sp_result_t res;
    double t0 = h_now();
    if (sp_execute(c->rt, c->pool, "sleep", SLEEP, NULL, &res) != 0) c->failed++;
    c->latency[i] = h_now() - t0;
    sp_result_free(&res);
  }
  return NULL;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

/* CLIENTS threads x `calls` sleep calls at once; returns the latency p99 (s). */
static double burst(sp_runtime_t *rt, const char *pool, int calls, int *failed) {
  pthread_t th[CLIENTS];
  client_t cl[CLIENTS];
  double lat[CLIENTS * CALLS];
  for (int i = 0; i < CLIENTS; i++) {
    cl[i] = (client_t){rt, pool, calls, 0, lat + i * calls};
    assert_int_equal(pthread_create(&th[i], NULL, client, &cl[i]), 0);
  }
  *failed = 0;
  for (int i = 0; i < CLIENTS; i++) {
    pthread_join(th[i], NULL);
    *failed += cl[i].failed;
  }
  int n = CLIENTS * calls;
  qsort(lat, (size_t)n, sizeof(double), cmp_double);
  return lat[(int)(0.99 * (n - 1))];
}

static void burst_grows_to_max_then_idle_shrinks_to_min(void **state) {
  (void)state;
  sp_runtime_t *fixed = h_start_pool("f", "process", 1, 1, TESTING_ADAPTER,
                                     "    pipeline_depth: 0\n");
  int failed = 0;
  double p99_fixed = burst(fixed, "f", CALLS, &failed);
  assert_int_equal(failed, 0);
  sp_runtime_stop(fixed, 2000);

  sp_runtime_t *rt = h_start_pool("a", "process", 0, 1, TESTING_ADAPTER,
                                  "    pool_size: 1..4\n    pipeline_depth: 0\n"
                                  "    scale_up_wait: 50ms\n    scale_down_idle: 1s\n");
  json_t *st = h_pool_stats(rt, "a");
  assert_int_equal(jint(st, "pool_size"), 1);
  assert_int_equal(jint(st, "min_workers"), 1);
  assert_int_equal(jint(st, "max_workers"), 4);
  assert_int_equal(json_array_size(json_object_get(st, "workers")), 1);
  json_decref(st);

  double p99_auto = burst(rt, "a", CALLS, &failed);
  assert_int_equal(failed, 0);
  assert_int_equal(pool_int(rt, "a", "pool_size"), 4);
  assert_int_equal(pool_int(rt, "a", "scale_ups"), 3);
  print_message("burst of %d x %d calls of 50 ms: p99 %.0f ms on 1..4, %.0f ms on a fixed 1\n",
                CLIENTS, CALLS, p99_auto * 1e3, p99_fixed * 1e3);
  assert_true(p99_auto * 4 < p99_fixed * 3);

  /* Idle: back to one worker, one at a time, each drained, none failed. */
  long long size = 4;
  for (int i = 0; i < 80 && size > 1; i++) {
    h_sleep_ms(100);
    size = pool_int(rt, "a", "pool_size");
  }
  assert_int_equal(size, 1);
  st = h_pool_stats(rt, "a");
  assert_int_equal(jint(st, "scale_downs"), 3);
  json_t *calls = json_object_get(st, "calls");
  assert_int_equal(jint(calls, "ok"), CLIENTS * CALLS);
  assert_int_equal(jint(st, "crashes"), 0);
  json_decref(st);
  /* The pool still serves, and the drained workers are gone. */
  free(h_call_ok(rt, "a", "sleep", "{\"seconds\": 0}"));
  long long current = 4;
  for (int i = 0; i < 50 && current > 1; i++) {
    h_sleep_ms(50);
    st = h_pool_stats(rt, "a");
    current = (long long)json_array_size(json_object_get(st, "workers"));
    json_decref(st);
  }
  assert_int_equal(current, 1);
  sp_runtime_stop(rt, 2000);
}

static void flapping_load_keeps_its_workers(void **state) {
  (void)state;
  sp_runtime_t *rt = h_start_pool("a", "process", 0, 1, TESTING_ADAPTER,
                                  "    pool_size: 1..4\n    pipeline_depth: 0\n"
                                  "    scale_up_wait: 50ms\n    scale_down_idle: 1500ms\n");
  int failed = 0;
  for (int cycle = 0; cycle < 6; cycle++) {
    burst(rt, "a", 2, &failed); /* 16 calls of 50 ms, then a pause */
    assert_int_equal(failed, 0);
    h_sleep_ms(400);
  }
  json_t *st = h_pool_stats(rt, "a");
  long long ups = jint(st, "scale_ups"), downs = jint(st, "scale_downs");
  print_message("flapping load: %lld workers added, %lld removed\n", ups, downs);
  assert_true(ups >= 1 && ups <= 3); /* grew, never beyond its maximum once */
  assert_int_equal(downs, 0);        /* and never shrank between the swings */
  json_decref(st);
  sp_runtime_stop(rt, 2000);
}

static void expect_config_error(const char *extra, const char *const *want) {
  char yaml[2048];
  h_yaml(yaml, sizeof(yaml), "a", "process", 0, 1, TESTING_ADAPTER, extra);
  sp_runtime_t *rt = NULL;
  sp_error_t err;
  assert_int_equal(sp_runtime_start_yaml(&rt, yaml, strlen(yaml), "scale.yaml", &err),
                   SP_ECONFIG);
  assert_null(rt);
  for (const char *const *w = want; *w; w++) {
    if (strstr(err.message, *w) == NULL) print_error("missing \"%s\" in: %s\n", *w, err.message);
    assert_non_null(strstr(err.message, *w));
  }
  sp_error_free(&err);
}

static void bad_ranges_are_config_errors(void **state) {
  (void)state;
  const char *inverted[] = {"scale.yaml:", "key 'pool_size'", "4..1", "minimum above its maximum",
                            NULL};
  expect_config_error("    pool_size: 4..1\n", inverted);
  const char *too_big[] = {"key 'pool_size'", "1..300", "limit of 256", NULL};
  expect_config_error("    pool_size: 1..300\n", too_big);
  const char *junk[] = {"key 'pool_size'", "MIN..MAX", "1..x", NULL};
  expect_config_error("    pool_size: 1..x\n", junk);
  const char *minmax[] = {"key 'min_workers'", "is 5, above max_workers 3", NULL};
  expect_config_error("    min_workers: 5\n    max_workers: 3\n", minmax);
  const char *max_bound[] = {"key 'max_workers'", "between 1 and 256", NULL};
  expect_config_error("    max_workers: 1000\n", max_bound);
  const char *both[] = {"key 'min_workers'", "together with pool_size", NULL};
  expect_config_error("    pool_size: 2\n    min_workers: 1\n", both);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(burst_grows_to_max_then_idle_shrinks_to_min),
      cmocka_unit_test(flapping_load_keeps_its_workers),
      cmocka_unit_test(bad_ranges_are_config_errors),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * test_reports.c - sp_worker_reports*(): every live worker answers exactly
 * once, in both profiles; thread-safety findings of a racy adapter are
 * reported and merged; busy and dying workers are named as missing within the
 * timeout instead of holding the caller; the loop-thread rules; merging.
 */
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

#define RACY_ADAPTER "racy_adapter.RacyAdapter"

static sp_runtime_t *rt;

static int setup(void **state) {
  (void)state;
  char yaml[4096];
  snprintf(yaml, sizeof(yaml),
           "pools:\n"
           "  - name: proc\n"
           "    worker_profile: process\n"
           "    pool_size: 3\n"
           "    adapter: " TESTING_ADAPTER "\n"
           "    python_path: [\"%s\"]\n"
           "  - name: thr\n"
           "    worker_profile: thread\n"
           "    pool_size: 1\n"
           "    threads_per_worker: 4\n"
           "    pipeline_depth: 0\n"
           "    adapter: " TESTING_ADAPTER "\n"
           "    python_path: [\"%s\"]\n"
           "  - name: racy\n"
           "    worker_profile: thread\n"
           "    pool_size: 1\n"
           "    threads_per_worker: 4\n"
           "    thread_safety_checks: true\n"
           "    adapter: " RACY_ADAPTER "\n"
           "    python_path: [\"%s\"]\n",
           SP_TEST_ADAPTERS, SP_TEST_ADAPTERS, SP_TEST_ADAPTERS);
  rt = h_start(yaml);
  return rt ? 0 : -1;
}

static int teardown(void **state) {
  (void)state;
  return sp_runtime_stop(rt, 5000);
}

/* The reports of one pool (new reference), asserting the operation succeeded. */
static json_t *reports_of(const char *pool, const sp_report_opts_t *opts) {
  sp_result_t res;
  int rc = sp_worker_reports(rt, pool, opts, &res);
  if (rc != 0) fprintf(stderr, "sp_worker_reports: %s\n", res.error.message);
  assert_int_equal(rc, 0);
  json_t *doc = json_loads(res.json, 0, NULL);
  sp_result_free(&res);
  assert_non_null(doc);
  json_t *pools = json_object_get(doc, "pools");
  assert_int_equal(json_array_size(pools), pool ? 1 : 3);
  json_t *p = json_incref(json_array_get(pools, 0));
  json_decref(doc);
  return p;
}

static void every_worker_answers_once_in_both_profiles(void **state) {
  (void)state;
  const char *pools[] = {"proc", "thr"};
  for (int i = 0; i < 2; i++) {
    json_t *stats = h_pool_stats(rt, pools[i]);
    json_t *p = reports_of(pools[i], NULL);
    assert_string_equal(json_string_value(json_object_get(p, "name")), pools[i]);
    json_t *workers = json_object_get(p, "workers");
    json_t *listed = json_object_get(stats, "workers");
    assert_int_equal(json_object_size(workers), json_array_size(listed));
    assert_int_equal(json_object_size(workers), i == 0 ? 3 : 1);
    assert_int_equal(json_object_size(json_object_get(p, "missing")), 0);
    assert_true(json_is_null(json_object_get(p, "thread_safety"))); /* checks are off */
    size_t k;
    json_t *w;
    json_array_foreach(listed, k, w) {
      /* Each worker answered for itself: its own id and pid. */
      json_t *r = json_object_get(workers, json_string_value(json_object_get(w, "id")));
      assert_non_null(r);
      assert_int_equal(json_integer_value(json_object_get(r, "pid")),
                       json_integer_value(json_object_get(w, "pid")));
      assert_string_equal(json_string_value(json_object_get(r, "worker_id")),
                          json_string_value(json_object_get(w, "id")));
      assert_int_equal(json_integer_value(json_object_get(r, "threads")), i == 0 ? 1 : 4);
      assert_true(json_is_boolean(json_object_get(r, "gil_enabled")));
    }
    json_decref(p);
    json_decref(stats);
  }
}

static void all_pools_and_stats_shapes(void **state) {
  (void)state;
  json_t *first = reports_of(NULL, NULL);
  assert_string_equal(json_string_value(json_object_get(first, "name")), "proc");
  json_decref(first);
  /* with_stats: one pool's stats document, each worker carrying its report. */
  sp_report_opts_t opts = SP_REPORT_OPTS_INIT;
  opts.with_stats = 1;
  sp_result_t res;
  assert_int_equal(sp_worker_reports(rt, "proc", &opts, &res), 0);
  json_t *doc = json_loads(res.json, 0, NULL);
  sp_result_free(&res);
  assert_string_equal(json_string_value(json_object_get(doc, "name")), "proc");
  assert_null(json_object_get(doc, "thread_safety"));
  size_t k;
  json_t *w;
  json_array_foreach(json_object_get(doc, "workers"), k, w) {
    json_t *r = json_object_get(w, "report");
    assert_non_null(r);
    assert_int_equal(json_integer_value(json_object_get(r, "pid")),
                     json_integer_value(json_object_get(w, "pid")));
  }
  assert_int_equal(k, 3);
  json_decref(doc);
  /* Unknown pool: refused at once, with the pools there are. */
  assert_int_equal(sp_worker_reports(rt, "nope", NULL, &res), SP_ENOPOOL);
  assert_non_null(strstr(res.error.message, "proc"));
  sp_result_free(&res);
}

typedef struct {
  const char *tool, *args;
  int calls;
} load_t;

static void *hammer(void *arg) {
  load_t *l = arg;
  for (int i = 0; i < l->calls; i++) free(h_call_ok(rt, "racy", l->tool, l->args));
  return NULL;
}

static void racy_adapter_findings_are_reported_and_reset(void **state) {
  (void)state;
  /* Overlapping calls append to a shared list without the lock. */
  load_t l = {"record", "{\"value\": 1, \"work_ms\": 2}", 12};
  pthread_t th[8];
  for (int i = 0; i < 8; i++) pthread_create(&th[i], NULL, hammer, &l);
  for (int i = 0; i < 8; i++) pthread_join(th[i], NULL);
  json_t *p = reports_of("racy", NULL);
  json_t *ts = json_object_get(p, "thread_safety");
  assert_true(json_is_true(json_object_get(ts, "enabled")));
  assert_true(json_integer_value(json_object_get(ts, "problems")) >= 1);
  int history = 0;
  size_t k;
  json_t *w;
  json_array_foreach(json_object_get(ts, "unlocked_writes"), k, w)
    history |= strcmp(json_string_value(json_object_get(w, "attribute")), "history") == 0;
  assert_true(history);
  assert_int_equal(json_object_size(json_object_get(ts, "workers")), 1);
  json_decref(p);

  /* reset: reported once more, then forgotten. */
  sp_report_opts_t opts = SP_REPORT_OPTS_INIT;
  opts.reset = 1;
  p = reports_of("racy", &opts);
  assert_true(json_integer_value(json_object_get(json_object_get(p, "thread_safety"), "problems")) >=
              1);
  json_decref(p);
  p = reports_of("racy", NULL);
  assert_int_equal(
      json_array_size(json_object_get(json_object_get(p, "thread_safety"), "unlocked_writes")), 0);
  json_decref(p);
}

static void busy_worker_is_missing_within_the_timeout(void **state) {
  (void)state;
  /* Occupy every execution thread of thr for 3 s. */
  h_async_t outs[4];
  for (int i = 0; i < 4; i++) {
    atomic_init(&outs[i].done, 0);
    assert_int_equal(sp_execute_async(rt, "thr", "sleep", "{\"seconds\": 3}", NULL, h_async_done,
                                      &outs[i], NULL),
                     0);
  }
  h_sleep_ms(300);
  sp_report_opts_t opts = SP_REPORT_OPTS_INIT;
  opts.timeout_ms = 300;
  double t0 = h_now();
  json_t *p = reports_of("thr", &opts);
  double took = h_now() - t0;
  /* Answered by its timeout, long before a thread frees up. */
  assert_true(took < 3.0 / 2);
  assert_int_equal(json_object_size(json_object_get(p, "workers")), 0);
  json_t *missing = json_object_get(p, "missing");
  assert_int_equal(json_object_size(missing), 1);
  const char *why = json_string_value(json_object_get(missing, "w1"));
  assert_non_null(why);
  assert_non_null(strstr(why, "within 300 ms"));
  json_decref(p);
  for (int i = 0; i < 4; i++) assert_true(h_async_wait(&outs[i], 30));
  for (int i = 0; i < 4; i++) assert_int_equal(outs[i].code, 0);
  for (int i = 0; i < 4; i++) sp_free(outs[i].json);
  /* Its late answer is ignored, and the next report is whole again. */
  p = reports_of("thr", NULL);
  assert_int_equal(json_object_size(json_object_get(p, "workers")), 1);
  json_decref(p);
}

static void dying_worker_is_missing_at_once(void **state) {
  (void)state;
  json_t *stats = h_pool_stats(rt, "proc");
  int pids[3];
  size_t k;
  json_t *w;
  json_array_foreach(json_object_get(stats, "workers"), k, w) pids[k] =
      (int)json_integer_value(json_object_get(w, "pid"));
  json_decref(stats);
  /* Each process worker busy for 5 s, so the report waits; then one dies. */
  h_async_t outs[3];
  for (int i = 0; i < 3; i++) {
    atomic_init(&outs[i].done, 0);
    sp_execute_async(rt, "proc", "sleep", "{\"seconds\": 5}", NULL, h_async_done, &outs[i], NULL);
  }
  h_sleep_ms(300);
  h_async_t r = {0};
  sp_report_opts_t opts = SP_REPORT_OPTS_INIT;
  opts.timeout_ms = 20000;
  double t0 = h_now();
  assert_int_equal(sp_worker_reports_async(rt, "proc", &opts, h_async_done, &r, NULL), 0);
  h_sleep_ms(200);
  assert_int_equal(atomic_load(&r.done), 0);
  for (int i = 0; i < 3; i++) kill(pids[i], SIGKILL);
  while (!atomic_load(&r.done) && h_now() - t0 < 20) h_sleep_ms(10);
  assert_true(atomic_load(&r.done));
  assert_true(h_now() - t0 < 5.0); /* not held until the sleeps or the timeout */
  assert_int_equal(r.code, 0);
  json_t *doc = json_loads(r.json, 0, NULL);
  json_t *missing = json_object_get(json_array_get(json_object_get(doc, "pools"), 0), "missing");
  assert_int_equal(json_object_size(missing), 3);
  const char *name;
  json_object_foreach(missing, name, w) assert_non_null(strstr(json_string_value(w), "exited"));
  json_decref(doc);
  sp_free(r.json);
  for (int i = 0; i < 3; i++) assert_true(h_async_wait(&outs[i], 30));
  for (int i = 0; i < 3; i++) assert_int_equal(outs[i].code, SP_ECRASHED);
  /* The pool comes back; reports reach the replacements. */
  for (int tries = 0; tries < 100; tries++) {
    json_t *s = h_pool_stats(rt, "proc");
    json_int_t ready = json_integer_value(json_object_get(s, "ready_workers"));
    json_decref(s);
    if (ready == 3) break;
    h_sleep_ms(100);
  }
  json_t *p = reports_of("proc", NULL);
  assert_int_equal(json_object_size(json_object_get(p, "workers")), 3);
  json_decref(p);
}

/* From a completion callback (the loop thread): async works, sync is refused. */
typedef struct {
  atomic_int done;
  int sync_rc;
  h_async_t inner;
} nested_t;

static void on_call_then_report(sp_result_t *res, void *ud) {
  nested_t *n = ud;
  (void)res;
  sp_result_t sync;
  n->sync_rc = sp_worker_reports(rt, "thr", NULL, &sync);
  sp_result_free(&sync);
  sp_error_t err;
  if (sp_worker_reports_async(rt, "thr", NULL, h_async_done, &n->inner, &err) != 0) {
    n->inner.code = err.code;
    sp_error_free(&err);
    atomic_store(&n->inner.done, 1);
  }
  atomic_store(&n->done, 1);
}

static void loop_thread_rules(void **state) {
  (void)state;
  nested_t n = {0};
  assert_int_equal(sp_execute_async(rt, "thr", "noop", "{}", NULL, on_call_then_report, &n, NULL),
                   0);
  while (!atomic_load(&n.inner.done)) h_sleep_ms(5);
  assert_int_equal(n.sync_rc, SP_EBADTHREAD);
  assert_int_equal(n.inner.code, 0);
  assert_non_null(strstr(n.inner.json, "\"thr\""));
  sp_free(n.inner.json);
  sp_error_t err;
  assert_int_equal(sp_worker_reports_async(rt, NULL, NULL, NULL, NULL, &err), SP_EINVAL);
  sp_error_free(&err);
}

static void merge_sums_and_rejects_bad_input(void **state) {
  (void)state;
  const char *two =
      "{\"a\": {\"unlocked_writes\": [{\"kind\": \"attribute\", \"attribute\": \"x\", \"file\": "
      "\"f.py\", \"line\": 3, \"count\": 2}], \"warnings\": [\"w\"], \"concurrent_accesses\": {\"m\": "
      "2}},"
      " \"b\": {\"unlocked_writes\": [{\"kind\": \"attribute\", \"attribute\": \"x\", \"file\": "
      "\"f.py\", \"line\": 3, \"count\": 5}], \"warnings\": [\"w\"], \"concurrent_accesses\": {\"m\": "
      "7}}}";
  char *out = NULL;
  sp_error_t err;
  assert_int_equal(sp_thread_safety_merge(two, &out, &err), 0);
  json_t *m = json_loads(out, 0, NULL);
  sp_free(out);
  json_t *writes = json_object_get(m, "unlocked_writes");
  assert_int_equal(json_array_size(writes), 1);
  assert_int_equal(json_integer_value(json_object_get(json_array_get(writes, 0), "count")), 7);
  assert_int_equal(json_array_size(json_object_get(m, "warnings")), 1);
  assert_int_equal(json_integer_value(json_object_get(json_object_get(m, "concurrent_accesses"), "m")),
                   7);
  assert_int_equal(json_integer_value(json_object_get(m, "problems")), 1);
  json_decref(m);
  assert_int_equal(sp_thread_safety_merge("[1]", &out, &err), SP_EBADJSON);
  assert_null(out);
  assert_non_null(strstr(err.message, "JSON object"));
  sp_error_free(&err);
  assert_int_equal(sp_thread_safety_merge("{oops", &out, &err), SP_EBADJSON);
  sp_error_free(&err);
}

static void refused_once_stopping(void **state) {
  (void)state;
  sp_runtime_t *other = h_start_pool("p", "process", 1, 1, TESTING_ADAPTER, NULL);
  assert_int_equal(sp_runtime_drain(other, 1000), 0);
  sp_result_t res;
  assert_int_equal(sp_worker_reports(other, NULL, NULL, &res), SP_ESTOPPED);
  sp_result_free(&res);
  sp_runtime_stop(other, 1000);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(every_worker_answers_once_in_both_profiles),
      cmocka_unit_test(all_pools_and_stats_shapes),
      cmocka_unit_test(racy_adapter_findings_are_reported_and_reset),
      cmocka_unit_test(busy_worker_is_missing_within_the_timeout),
      cmocka_unit_test(loop_thread_rules),
      cmocka_unit_test(merge_sums_and_rejects_bad_input),
      cmocka_unit_test(dying_worker_is_missing_at_once),
      cmocka_unit_test(refused_once_stopping),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}

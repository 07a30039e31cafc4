/*
 * test_chaos.c - 16 callers and 4 streams against both profiles for ~16 s
 * while a random worker is SIGKILLed every 2 s and workers recycle every 200
 * calls. Every call and stream must end in a result or a clear error within its
 * timeout, and the pools must be back to full capacity at the end.
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
    if (rc == 0)
      atomic_fetch_add(&ok_calls, 1);
    else
      atomic_fetch_add(&by_cat[res.error.category], 1);
    sp_result_free(&res);
  }
  return NULL;
}

/* Streams next to the calls: every stream must end (done callback) within its
 * deadline, its chunks in order, with a result or a worker/timeout error. */
#define STREAMERS 4
static atomic_int streams_ok, streams_late, streams_failed_badly, stream_disorder;
static atomic_long stream_chunks;

/* The userdata of both callbacks: h_async_done takes it as its h_async_t. */
typedef struct {
  h_async_t a; /* first */
  int next;    /* the item expected next */
} stream_seen_t;

static int chaos_chunk(const char *json, size_t len, void *ud) {
  stream_seen_t *seen = ud;
  char buf[32];
  snprintf(buf, sizeof(buf), "%.*s", (int)(len < 31 ? len : 31), json);
  if (atoi(buf) != seen->next++) atomic_fetch_add(&stream_disorder, 1);
  atomic_fetch_add(&stream_chunks, 1);
  return SP_CHUNK_CONTINUE;
}

static void *streamer(void *arg) {
  unsigned seed = (unsigned)(uintptr_t)arg;
  sp_call_opts_t opts = SP_CALL_OPTS_INIT;
  opts.timeout_ms = CALL_TIMEOUT_MS;
  while (!atomic_load(&stop_flag)) {
    const char *pool = pools[rand_r(&seed) % 2];
    stream_seen_t seen = {0};
    h_async_t *a = &seen.a;
    sp_error_t err;
    if (sp_execute_stream(rt, pool, "ticks", "{\"n\": 20, \"seconds\": 0.005}", &opts,
                          chaos_chunk, h_async_done, &seen, NULL, &err) != 0) {
      atomic_fetch_add(&streams_failed_badly, 1);
      sp_error_free(&err);
      continue;
    }
    if (!h_async_wait(a, CALL_TIMEOUT_MS / 1000.0 + 1.0)) {
      atomic_fetch_add(&streams_late, 1);
      h_async_wait(a, 60.0); /* `seen` must outlive the stream's callbacks */
    }
    sp_category_t cat = sp_err_category(a->code);
    if (a->code == 0)
      atomic_fetch_add(&streams_ok, 1);
    else if (cat != SP_CAT_WORKER && cat != SP_CAT_TIMEOUT)
      atomic_fetch_add(&streams_failed_badly, 1);
    sp_free(a->json);
  }
  return NULL;
}

static long random_worker_pid(unsigned *seed) {
  char *json = NULL;
  sp_error_t err;
  if (sp_stats_json(rt, pools[rand_r(seed) % 2], &json, &err) != 0) {
    sp_error_free(&err);
    return 0;
  }
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
  snprintf(
      yaml, sizeof(yaml),
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
  pthread_t st[STREAMERS];
  for (int i = 0; i < STREAMERS; i++)
    pthread_create(&st[i], NULL, streamer, (void *)(uintptr_t)(i + 100));
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
  for (int i = 0; i < STREAMERS; i++) pthread_join(st[i], NULL);

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
  printf(
      "chaos: %d calls ok, %d failed (worker %d, timeout %d, pool %d, other %d), "
      "%d kills, %lld crashes seen, %lld recycles, %d late\n",
      atomic_load(&ok_calls), failed, atomic_load(&by_cat[SP_CAT_WORKER]),
      atomic_load(&by_cat[SP_CAT_TIMEOUT]), atomic_load(&by_cat[SP_CAT_POOL]),
      failed - atomic_load(&by_cat[SP_CAT_WORKER]) - atomic_load(&by_cat[SP_CAT_TIMEOUT]) -
          atomic_load(&by_cat[SP_CAT_POOL]),
      kills, crashes, recycled, atomic_load(&late_calls));
  printf("chaos: %d streams ok (%ld chunks), %d late, %d failed otherwise, %d out of order\n",
         atomic_load(&streams_ok), atomic_load(&stream_chunks), atomic_load(&streams_late),
         atomic_load(&streams_failed_badly), atomic_load(&stream_disorder));
  assert_int_equal(atomic_load(&late_calls), 0); /* nothing hung past its timeout */
  assert_int_equal(atomic_load(&streams_late), 0); /* no stream open past its deadline */
  assert_int_equal(atomic_load(&streams_failed_badly), 0);
  assert_int_equal(atomic_load(&stream_disorder), 0);
  assert_true(atomic_load(&streams_ok) > 10);
  assert_int_equal(ready, 5);                    /* full capacity again */
  assert_true(kills >= 6);
  assert_true(crashes >= kills - 1); /* a kill may hit a worker as it exits */
  assert_true(recycled >= 5);
  assert_true(atomic_load(&ok_calls) > 20 * failed); /* failures are the killed calls only */
  /* Only the kinds of failure chaos can cause: crashed workers (and timeouts). */
  assert_int_equal(atomic_load(&by_cat[SP_CAT_VALIDATION]), 0);
  assert_int_equal(atomic_load(&by_cat[SP_CAT_PYTHON]), 0);
  assert_int_equal(atomic_load(&by_cat[SP_CAT_PROTOCOL]), 0);
  assert_int_equal(atomic_load(&by_cat[SP_CAT_INTERNAL]), 0);
  assert_int_equal(sp_runtime_stop(rt, 2000), 0);
}

/* ---- calls racing a drain ------------------------------------------------------ */

#define RACE_ROUNDS 3
#define RACE_THREADS 48
#define RACE_SYNC_THREADS 8 /* the others call asynchronously, as fast as they can */

typedef struct {
  sp_runtime_t *rt;
  char *args; /* large, so that each call spends a while between its checks and its post */
  atomic_int next_id;
  atomic_long accepted; /* async calls sp_execute_async took */
  atomic_long answered; /* their callbacks */
  atomic_int finished;  /* threads that saw SP_ESTOPPED and left */
} race_t;

static void race_done(sp_result_t *res, void *ud) {
  (void)res;
  atomic_fetch_add(&((race_t *)ud)->answered, 1);
}

/* Calls, sync or async, until the runtime says it is stopping. */
static void *race_caller(void *arg) {
  race_t *x = arg;
  sp_call_opts_t opts = {.timeout_ms = 2000};
  int sync = atomic_fetch_add(&x->next_id, 1) < RACE_SYNC_THREADS;
  for (;;) {
    int rc;
    if (sync) {
      sp_result_t res;
      rc = sp_execute(x->rt, "p", "echo", x->args, &opts, &res);
      sp_result_free(&res);
    } else {
      sp_error_t err = SP_ERROR_INIT;
      rc = sp_execute_async(x->rt, "p", "echo", x->args, &opts, race_done, x, &err);
      if (rc == 0) atomic_fetch_add(&x->accepted, 1);
      sp_error_free(&err);
    }
    if (rc == SP_ESTOPPED) break;
  }
  atomic_fetch_add(&x->finished, 1);
  return NULL;
}

static void calls_racing_a_drain_all_end(void **state) {
  (void)state;
  /* Callers that saw the runtime running may reach it after it stopped: each
   * call still ends (sync callers return, async callbacks run), at the latest
   * with SP_ESTOPPED, instead of waiting forever in a queue nobody reads. */
  char args[64 * 1024];
  size_t n = (size_t)snprintf(args, sizeof(args), "{\"value\": [0");
  while (n < sizeof(args) - 16) n += (size_t)snprintf(args + n, sizeof(args) - n, ",%zu", n);
  snprintf(args + n, sizeof(args) - n, "]}");
  for (int round = 0; round < RACE_ROUNDS; round++) {
    race_t x = {.rt = h_start_pool("p", "thread", 1, 4, TESTING_ADAPTER, NULL), .args = args};
    pthread_t th[RACE_THREADS];
    for (int i = 0; i < RACE_THREADS; i++)
      assert_int_equal(pthread_create(&th[i], NULL, race_caller, &x), 0);
    h_sleep_ms(50 + 20 * round);
    assert_int_equal(sp_runtime_drain(x.rt, 2000), 0);
    for (int i = 0; i < 200 && atomic_load(&x.finished) < RACE_THREADS; i++) h_sleep_ms(50);
    assert_int_equal(atomic_load(&x.finished), RACE_THREADS);
    for (int i = 0; i < RACE_THREADS; i++) pthread_join(th[i], NULL);
    for (int i = 0; i < 100 && atomic_load(&x.answered) < atomic_load(&x.accepted); i++)
      h_sleep_ms(50);
    assert_int_equal(atomic_load(&x.answered), atomic_load(&x.accepted));
    sp_runtime_stop(x.rt, 2000);
  }
}

/* A caller that passed the runtime's checks before a drain began and posts
 * only after the loop thread finished: its call must still end. A large
 * argument keeps it between its checks and its post (parsing 48 MiB of JSON)
 * for longer than the drain and the workers' exit take. */
typedef struct {
  sp_runtime_t *rt;
  const char *args;
  atomic_int started, rc, done;
} slow_caller_t;

static void *slow_caller(void *arg) {
  slow_caller_t *s = arg;
  sp_result_t res;
  atomic_store(&s->started, 1);
  sp_call_opts_t opts = {.timeout_ms = 2000};
  atomic_store(&s->rc, sp_execute(s->rt, "p", "echo", s->args, &opts, &res));
  sp_result_free(&res);
  atomic_store(&s->done, 1);
  return NULL;
}

static void call_posted_after_the_loop_ended_still_ends(void **state) {
  (void)state;
  size_t cap = 48u << 20;
  char *args = malloc(cap);
  assert_non_null(args);
  size_t n = (size_t)snprintf(args, cap, "{\"value\": [0");
  while (n < cap - 8) {
    memcpy(args + n, ",0", 2);
    n += 2;
  }
  memcpy(args + n, "]}", 3);
  slow_caller_t s = {.rt = h_start_pool("p", "thread", 1, 2, TESTING_ADAPTER,
                                        "    max_frame_bytes: 64MiB\n    drain_timeout: 1s\n"),
                     .args = args};
  pthread_t th;
  assert_int_equal(pthread_create(&th, NULL, slow_caller, &s), 0);
  while (!atomic_load(&s.started)) h_sleep_ms(1);
  h_sleep_ms(5);
  assert_int_equal(sp_runtime_drain(s.rt, 0), 0);
  for (int i = 0; i < 200 && !atomic_load(&s.done); i++) h_sleep_ms(50);
  assert_true(atomic_load(&s.done)); /* not waiting forever */
  assert_int_equal(atomic_load(&s.rc), SP_ESTOPPED);
  pthread_join(th, NULL);
  sp_runtime_stop(s.rt, 1000);
  free(args);
}

int main(void) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(chaos),
                                     cmocka_unit_test(calls_racing_a_drain_all_end),
                                     cmocka_unit_test(call_posted_after_the_loop_ended_still_ends)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}

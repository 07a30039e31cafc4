/*
 * test_streams.c - streaming calls (sp_execute_stream, sp_cancel) against a
 * process pool and a thread pool of real workers: chunks arrive in order and
 * as they are produced, errors after some chunks keep them delivered,
 * cancellation (caller, chunk callback, deadline) closes the generator so its
 * finally block runs, a slow consumer pauses the generator, and a worker
 * killed mid-stream ends the stream with an error.
 */
#include <jansson.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

static sp_runtime_t *rt;
static const char *const pools[] = {"proc", "thr"};

#define MAX_KEPT 4096

/* What a stream delivered, filled on the loop thread. */
typedef struct {
  atomic_int nchunks;
  char *chunks[MAX_KEPT]; /* the first MAX_KEPT chunks, NUL-terminated copies */
  double first_at;        /* h_now() at the first chunk */
  int stop_after;         /* on_chunk returns 1 at this chunk count (0: never) */
  int stall_ms;           /* on_chunk sleeps this long at the first chunk (a slow consumer) */
  double stall_end;
  h_async_t done;
  char message[1024];
  char traceback[4096];
} stream_t;

static int on_chunk(const char *json, size_t len, void *ud) {
  stream_t *s = ud;
  int n = atomic_load(&s->nchunks);
  if (n == 0) s->first_at = h_now();
  if (n < MAX_KEPT) {
    s->chunks[n] = malloc(len + 1);
    memcpy(s->chunks[n], json, len);
    s->chunks[n][len] = '\0';
  }
  atomic_store(&s->nchunks, n + 1);
  if (n == 0 && s->stall_ms > 0) {
    h_sleep_ms(s->stall_ms); /* blocks the loop on purpose: the slowest consumer */
    s->stall_end = h_now();
  }
  return s->stop_after > 0 && n + 1 >= s->stop_after;
}

static void on_done(sp_result_t *res, void *ud) {
  stream_t *s = ud;
  snprintf(s->message, sizeof(s->message), "%s", res->error.message ? res->error.message : "");
  snprintf(s->traceback, sizeof(s->traceback), "%s",
           res->error.traceback ? res->error.traceback : "");
  h_async_done(res, &s->done);
}

static stream_t *stream_new(void) { return calloc(1, sizeof(stream_t)); }

static void stream_free(stream_t *s) {
  for (int i = 0; i < MAX_KEPT && i < atomic_load(&s->nchunks); i++) free(s->chunks[i]);
  sp_free(s->done.json);
  free(s);
}

static uint64_t start(const char *pool, const char *tool, const char *args, int64_t timeout_ms,
                      stream_t *s) {
  sp_call_opts_t opts = SP_CALL_OPTS_INIT;
  opts.timeout_ms = timeout_ms;
  uint64_t id = 0;
  sp_error_t err;
  memset(&err, 0x5a, sizeof(err)); /* overwritten without being read */
  int rc = sp_execute_stream(rt, pool, tool, args, &opts, on_chunk, on_done, s, &id, &err);
  if (rc != 0) fail_msg("sp_execute_stream(%s.%s): %s", pool, tool, err.message);
  assert_true(id != 0);
  /* An accepted stream leaves err holding no error. */
  assert_int_equal(err.code, 0);
  assert_string_equal(err.message, "");
  assert_null(err.priv_);
  return id;
}

static void wait_chunks(stream_t *s, int n, double timeout_s) {
  double t0 = h_now();
  while (atomic_load(&s->nchunks) < n && h_now() - t0 < timeout_s) h_sleep_ms(2);
  assert_true(atomic_load(&s->nchunks) >= n);
}

static char *marker_path(const char *pool, const char *what) {
  static char buf[256];
  snprintf(buf, sizeof(buf), "/tmp/sp-stream-%d-%s-%s", (int)getpid(), pool, what);
  unlink(buf);
  return buf;
}


/* The pool still serves plain calls. */
static void still_serves(const char *pool) {
  char *json = h_call_ok(rt, pool, "add", "{\"a\": 2, \"b\": 3}");
  assert_string_equal(json, "5");
  sp_free(json);
}

static void chunks_arrive_in_order(void **state) {
  (void)state;
  for (int p = 0; p < 2; p++) {
    stream_t *s = stream_new();
    start(pools[p], "count", "{\"n\": 5}", 0, s);
    assert_true(h_async_wait(&s->done, 10));
    assert_int_equal(s->done.code, 0);
    assert_int_equal(atomic_load(&s->nchunks), 5);
    for (int i = 0; i < 5; i++) {
      char want[32];
      snprintf(want, sizeof(want), "{\"i\":%d}", i);
      assert_string_equal(s->chunks[i], want);
    }
    assert_string_equal(s->done.json, "{\"chunks\":5}");
    stream_free(s);

    /* An async generator streams the same way. */
    s = stream_new();
    start(pools[p], "count_async", "{\"n\": 3}", 0, s);
    assert_true(h_async_wait(&s->done, 10));
    assert_int_equal(s->done.code, 0);
    assert_int_equal(atomic_load(&s->nchunks), 3);
    assert_string_equal(s->chunks[2], "2");
    stream_free(s);

    /* A plain call of a streaming tool still gets every item as one array. */
    char *json = h_call_ok(rt, pools[p], "count", "{\"n\": 3}");
    assert_string_equal(json, "[{\"i\":0},{\"i\":1},{\"i\":2}]");
    sp_free(json);
  }
}

static void first_chunk_comes_before_the_generator_ends(void **state) {
  (void)state;
  for (int p = 0; p < 2; p++) {
    stream_t *s = stream_new();
    double t0 = h_now();
    start(pools[p], "count", "{\"n\": 4, \"delay\": 0.2}", 0, s);
    assert_true(h_async_wait(&s->done, 10));
    double total = h_now() - t0;
    assert_int_equal(s->done.code, 0);
    /* The first item is made after 1 of 4 delays: it must not wait for all 4. */
    assert_true(s->first_at - t0 < total * 0.6);
    stream_free(s);
  }
}

static void non_generator_is_one_chunk(void **state) {
  (void)state;
  for (int p = 0; p < 2; p++) {
    stream_t *s = stream_new();
    start(pools[p], "add", "{\"a\": 1, \"b\": 41}", 0, s);
    assert_true(h_async_wait(&s->done, 10));
    assert_int_equal(s->done.code, 0);
    assert_int_equal(atomic_load(&s->nchunks), 1);
    assert_string_equal(s->chunks[0], "42");
    stream_free(s);
  }
}

static void error_after_chunks_keeps_them(void **state) {
  (void)state;
  for (int p = 0; p < 2; p++) {
    stream_t *s = stream_new();
    start(pools[p], "stream_then_fail", "{\"n\": 2}", 0, s);
    assert_true(h_async_wait(&s->done, 10));
    assert_int_equal(s->done.code, SP_EPYTHON);
    assert_int_equal(atomic_load(&s->nchunks), 2);
    assert_non_null(strstr(s->message, "stream_then_fail"));
    assert_non_null(strstr(s->message, "failed after 2 chunks"));
    assert_non_null(strstr(s->traceback, "ValueError"));
    stream_free(s);

    /* Bad arguments fail before any chunk, with the validation error. */
    s = stream_new();
    start(pools[p], "count", "{\"n\": \"many\"}", 0, s);
    assert_true(h_async_wait(&s->done, 10));
    assert_int_equal(s->done.code, SP_EBADARGS);
    assert_int_equal(atomic_load(&s->nchunks), 0);
    stream_free(s);
    still_serves(pools[p]);
  }
}

static void cancel_closes_the_generator(void **state) {
  (void)state;
  for (int p = 0; p < 2; p++) {
    /* By the caller, from another thread. */
    const char *marker = marker_path(pools[p], "cancel");
    char args[512];
    snprintf(args, sizeof(args), "{\"n\": 100000, \"delay\": 0.005, \"marker\": \"%s\"}", marker);
    stream_t *s = stream_new();
    uint64_t id = start(pools[p], "count", args, 0, s);
    wait_chunks(s, 3, 10);
    double t0 = h_now();
    assert_int_equal(sp_cancel(rt, id), 0);
    assert_true(h_async_wait(&s->done, 5));
    assert_true(h_now() - t0 < 2.0);
    assert_int_equal(s->done.code, SP_ECANCELLED);
    h_assert_marker(marker, "closed", 5);
    stream_free(s);
    still_serves(pools[p]);

    /* By the chunk callback's return value. */
    marker = marker_path(pools[p], "stop");
    snprintf(args, sizeof(args), "{\"n\": 100000, \"delay\": 0.002, \"marker\": \"%s\"}", marker);
    s = stream_new();
    s->stop_after = 4;
    start(pools[p], "count", args, 0, s);
    assert_true(h_async_wait(&s->done, 10));
    assert_int_equal(s->done.code, SP_ECANCELLED);
    h_assert_marker(marker, "closed", 5);
    stream_free(s);

    /* By the deadline. */
    marker = marker_path(pools[p], "deadline");
    snprintf(args, sizeof(args), "{\"n\": 100000, \"delay\": 0.01, \"marker\": \"%s\"}", marker);
    s = stream_new();
    start(pools[p], "count", args, 300, s);
    assert_true(h_async_wait(&s->done, 10));
    assert_int_equal(s->done.code, SP_ETIMEOUT);
    assert_true(atomic_load(&s->nchunks) > 0);
    h_assert_marker(marker, "closed", 5);
    stream_free(s);

    /* An async generator gets aclose(). */
    marker = marker_path(pools[p], "async");
    snprintf(args, sizeof(args), "{\"n\": 100000, \"delay\": 0.005, \"marker\": \"%s\"}", marker);
    s = stream_new();
    id = start(pools[p], "count_async", args, 0, s);
    wait_chunks(s, 2, 10);
    assert_int_equal(sp_cancel(rt, id), 0);
    assert_true(h_async_wait(&s->done, 5));
    assert_int_equal(s->done.code, SP_ECANCELLED);
    h_assert_marker(marker, "aclosed", 5);
    stream_free(s);
    still_serves(pools[p]);
  }
  /* Cancelling what finished already is harmless. */
  assert_int_equal(sp_cancel(rt, 1), 0);
  assert_int_equal(sp_cancel(rt, 0), SP_EINVAL);
}

static void slow_consumer_pauses_the_generator(void **state) {
  (void)state;
  for (int p = 0; p < 2; p++) {
    stream_t *s = stream_new();
    s->stall_ms = 400;
    start(pools[p], "timed", "{\"n\": 1000}", 0, s);
    assert_true(h_async_wait(&s->done, 20));
    assert_int_equal(s->done.code, 0);
    assert_int_equal(atomic_load(&s->nchunks), 1000);
    /* Without flow control all 1000 items would be made during the stall;
     * with it, the worker stops after a window of chunks and waits. */
    int made_during_stall = 0;
    for (int i = 0; i < 1000; i++) {
      json_t *o = json_loads(s->chunks[i], 0, NULL);
      if (json_real_value(json_object_get(o, "t")) < s->stall_end - 0.05) made_during_stall++;
      json_decref(o);
    }
    if (made_during_stall > 300)
      fail_msg("%d of 1000 chunks were made while the consumer stalled", made_during_stall);
    assert_true(made_during_stall >= 1);
    stream_free(s);
  }
}

static void killed_worker_ends_the_stream(void **state) {
  (void)state;
  for (int p = 0; p < 2; p++) {
    stream_t *s = stream_new();
    start(pools[p], "timed", "{\"n\": 100000, \"delay\": 0.01}", 5000, s);
    wait_chunks(s, 1, 10);
    json_t *o = json_loads(s->chunks[0], 0, NULL);
    long pid = (long)json_integer_value(json_object_get(o, "pid"));
    json_decref(o);
    assert_true(pid > 0);
    double t0 = h_now();
    kill((pid_t)pid, SIGKILL);
    assert_true(h_async_wait(&s->done, 5));
    assert_true(h_now() - t0 < 3.0);
    assert_int_equal(s->done.code, SP_ECRASHED);
    stream_free(s);
  }
  /* Both pools respawn and serve again. */
  h_sleep_ms(500);
  for (int p = 0; p < 2; p++) {
    double t0 = h_now();
    sp_result_t res;
    while (sp_execute(rt, pools[p], "add", "{\"a\": 2, \"b\": 3}", NULL, &res) != 0 &&
           h_now() - t0 < 15) {
      sp_result_free(&res);
      h_sleep_ms(100);
    }
    assert_int_equal(res.error.code, 0);
    sp_result_free(&res);
  }
}

static void streams_are_counted(void **state) {
  (void)state;
  json_t *st = h_pool_stats(rt, "proc");
  assert_true(json_integer_value(json_object_get(st, "chunks_sent")) > 0);
  assert_int_equal(json_integer_value(json_object_get(st, "streams_active")), 0);
  json_decref(st);
}

static int setup(void **state) {
  (void)state;
  rt = h_start_proc_thr(TESTING_ADAPTER, 1, 2);
  return rt ? 0 : -1;
}

static int teardown(void **state) {
  (void)state;
  return sp_runtime_stop(rt, 5000);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(chunks_arrive_in_order),
      cmocka_unit_test(first_chunk_comes_before_the_generator_ends),
      cmocka_unit_test(non_generator_is_one_chunk),
      cmocka_unit_test(error_after_chunks_keeps_them),
      cmocka_unit_test(cancel_closes_the_generator),
      cmocka_unit_test(slow_consumer_pauses_the_generator),
      cmocka_unit_test(streams_are_counted),
      cmocka_unit_test(killed_worker_ends_the_stream),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}

/*
 * test_sessions.c - sessions with worker affinity against real workers, in
 * the process profile (2 x 1) and the thread profile (2 x 2): calls of one
 * session land on one worker and share its state; the three modes at a busy
 * worker; idle expiry; explicit ends; a worker killed or recycled under a
 * session; concurrent calls of sessions on a thread worker; streams; stats;
 * and bad session ids and modes.
 */
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <unistd.h>

#include "harness.h"

#define SESSION_ADAPTER "session_adapter.SessionAdapter"

typedef struct {
  const char *profile;
  int threads; /* per worker */
} profile_t;

static profile_t proc_profile = {"process", 1};
static profile_t thread_profile = {"thread", 2};

static sp_runtime_t *start(void **state, int size, const char *extra) {
  profile_t *pr = *state;
  return h_start_pool("s", pr->profile, size, pr->threads, SESSION_ADAPTER, extra);
}

/* One session call; returns its code, and the parsed result in *out (caller decrefs). */
static int scall(sp_runtime_t *rt, const char *tool, const char *args, const char *session,
                 int mode, json_t **out, sp_error_t *err_out) {
  sp_call_opts_t o = SP_CALL_OPTS_INIT;
  o.session = session;
  o.session_mode = mode;
  sp_result_t res;
  int rc = sp_execute(rt, "s", tool, args, &o, &res);
  if (out) *out = rc == 0 ? json_loads(res.json, 0, NULL) : NULL;
  if (err_out) sp_error_copy(err_out, &res.error);
  else if (rc != 0) print_message("call %s failed: %s\n", tool, res.error.message);
  sp_result_free(&res);
  return rc;
}

static json_t *scall_ok(sp_runtime_t *rt, const char *tool, const char *args, const char *session,
                        int mode) {
  json_t *j = NULL;
  assert_int_equal(scall(rt, tool, args, session, mode, &j, NULL), 0);
  assert_non_null(j);
  return j;
}

static long long jint(json_t *j, const char *key) {
  json_t *v = json_object_get(j, key);
  assert_true(json_is_integer(v));
  return json_integer_value(v);
}

/* The pool's "sessions" object of the stats (caller decrefs the whole stats). */
static json_t *session_stats(sp_runtime_t *rt, json_t **all) {
  *all = h_pool_stats(rt, "s");
  json_t *s = json_object_get(*all, "sessions");
  assert_non_null(s);
  return s;
}

static long long stat_of(sp_runtime_t *rt, const char *key) {
  json_t *all;
  long long v = jint(session_stats(rt, &all), key);
  json_decref(all);
  return v;
}

/* Waits until the sessions counter key reaches at least want (at most 5 s). */
static void wait_stat(sp_runtime_t *rt, const char *key, long long want) {
  for (int i = 0; i < 500 && stat_of(rt, key) < want; i++) h_sleep_ms(10);
  assert_true(stat_of(rt, key) >= want);
}

static void test_affinity(void **state) {
  sp_runtime_t *rt = start(state, 2, NULL);
  json_t *first = scall_ok(rt, "add", "{\"x\": 1}", "alpha", SP_SESSION_HINT);
  long long pid = jint(first, "pid");
  assert_string_equal(json_string_value(json_object_get(first, "session_id")), "alpha");
  json_decref(first);
  for (int i = 2; i <= 30; i++) {
    json_t *j = scall_ok(rt, "add", "{\"x\": 1}", "alpha", SP_SESSION_STRICT);
    assert_int_equal(jint(j, "pid"), pid);
    assert_int_equal(jint(j, "total"), i);
    json_decref(j);
  }
  /* Another session has a state of its own; plain calls have none. */
  json_t *b = scall_ok(rt, "add", "{\"x\": 5}", "beta", SP_SESSION_HINT);
  assert_int_equal(jint(b, "total"), 5);
  json_decref(b);
  json_t *plain = scall_ok(rt, "peek", "{}", NULL, 0);
  assert_true(json_is_null(json_object_get(plain, "session_id")));
  assert_false(json_is_true(json_object_get(plain, "has_state")));
  json_decref(plain);
  sp_runtime_stop(rt, 5000);
}

typedef struct {
  sp_runtime_t *rt;
  const char *session;
  const char *args;
  int mode;
  int rc;
  double elapsed;
} bg_t;

static void *bg_hold(void *arg) {
  bg_t *b = arg;
  double t0 = h_now();
  b->rc = scall(b->rt, "hold", b->args, b->session, b->mode, NULL, NULL);
  b->elapsed = h_now() - t0;
  return NULL;
}

/* Makes the session's worker busy: `threads` calls of hold(seconds) in it. */
static void occupy(sp_runtime_t *rt, int threads, pthread_t *th, bg_t *bg, const char *args) {
  for (int i = 0; i < threads; i++) {
    bg[i] = (bg_t){rt, "m", args, SP_SESSION_STRICT, -1, 0};
    pthread_create(&th[i], NULL, bg_hold, &bg[i]);
  }
  /* Until the worker runs all of them. */
  for (int k = 0; k < 500; k++) {
    json_t *all = h_pool_stats(rt, "s");
    long long busy = json_integer_value(json_object_get(all, "busy_slots"));
    json_decref(all);
    if (busy >= threads) return;
    h_sleep_ms(5);
  }
  fail_msg("the session's worker never got busy");
}

static void test_modes_at_busy_worker(void **state) {
  profile_t *pr = *state;
  sp_runtime_t *rt = start(state, 2, NULL);
  json_t *j = scall_ok(rt, "add", "{\"x\": 100}", "m", SP_SESSION_HINT);
  long long home = jint(j, "pid");
  json_decref(j);
  const double hold_s = 1.5;
  pthread_t th[4];
  bg_t bg[4];
  occupy(rt, pr->threads, th, bg, "{\"seconds\": 1.5}");

  /* strict_fail_fast: at once, SESSIONBUSY naming the session and the pool. */
  sp_error_t err;
  double t0 = h_now();
  assert_int_equal(scall(rt, "peek", "{}", "m", SP_SESSION_STRICT_FAIL_FAST, NULL, &err),
                   SP_ESESSIONBUSY);
  double fail_fast = h_now() - t0;
  assert_non_null(strstr(err.message, "session 'm'"));
  assert_non_null(strstr(err.message, "pool 's'"));
  assert_int_equal(err.category, SP_CAT_POOL);
  sp_error_free(&err);

  /* hint: runs elsewhere at once, on a fresh state of its own. */
  t0 = h_now();
  j = scall_ok(rt, "add", "{\"x\": 7}", "m", SP_SESSION_HINT);
  double hint = h_now() - t0;
  assert_int_not_equal(jint(j, "pid"), home);
  assert_int_equal(jint(j, "total"), 7);
  assert_string_equal(json_string_value(json_object_get(j, "session_id")), "m");
  json_decref(j);

  /* strict: waits for the session's worker, then runs there on its state. */
  t0 = h_now();
  j = scall_ok(rt, "peek", "{}", "m", SP_SESSION_STRICT);
  double strict = h_now() - t0;
  assert_int_equal(jint(j, "pid"), home);
  assert_int_equal(jint(j, "total"), 100 + pr->threads); /* the hint call's 7 stayed away */
  json_decref(j);
  for (int i = 0; i < pr->threads; i++) {
    pthread_join(th[i], NULL);
    assert_int_equal(bg[i].rc, 0);
  }
  /* Ratios against the hold, never absolute times. */
  assert_true(fail_fast < hold_s * 0.2);
  assert_true(hint < hold_s * 0.2);
  assert_true(strict > (hold_s - fail_fast - hint) * 0.5);
  assert_true(stat_of(rt, "busy") >= 1);
  sp_runtime_stop(rt, 5000);
}

/* A strict call waiting for a busy session worker does not hold up the calls behind it. */
static void test_strict_wait_lets_others_pass(void **state) {
  profile_t *pr = *state;
  sp_runtime_t *rt = start(state, 2, NULL);
  json_t *j = scall_ok(rt, "add", "{}", "m", SP_SESSION_HINT);
  json_decref(j);
  pthread_t th[4], waiter;
  bg_t bg[4];
  occupy(rt, pr->threads, th, bg, "{\"seconds\": 1.0}");
  bg_t w = {rt, "m", "{\"seconds\": 0}", SP_SESSION_STRICT, -1, 0};
  pthread_create(&waiter, NULL, bg_hold, &w);
  h_sleep_ms(50);
  double t0 = h_now();
  j = scall_ok(rt, "peek", "{}", NULL, 0); /* the other worker is free */
  assert_true(h_now() - t0 < 0.5);
  json_decref(j);
  pthread_join(waiter, NULL);
  assert_int_equal(w.rc, 0);
  for (int i = 0; i < pr->threads; i++) pthread_join(th[i], NULL);
  sp_runtime_stop(rt, 5000);
}

/* strict waits at most queue_timeout, and then says which session it waited for. */
static void test_strict_queue_timeout(void **state) {
  profile_t *pr = *state;
  sp_runtime_t *rt = start(state, 2, "    queue_timeout: 200ms\n");
  json_decref(scall_ok(rt, "add", "{}", "m", SP_SESSION_HINT));
  pthread_t th[4];
  bg_t bg[4];
  occupy(rt, pr->threads, th, bg, "{\"seconds\": 1.5}");
  sp_error_t err;
  double t0 = h_now();
  assert_int_equal(scall(rt, "peek", "{}", "m", SP_SESSION_STRICT, NULL, &err), SP_EQUEUETIMEOUT);
  double waited = h_now() - t0;
  assert_non_null(strstr(err.message, "session 'm'"));
  sp_error_free(&err);
  for (int i = 0; i < pr->threads; i++) pthread_join(th[i], NULL);
  assert_true(waited < 1.5 * 0.6); /* the queue timeout, not the hold */
  json_decref(scall_ok(rt, "peek", "{}", "m", SP_SESSION_STRICT));
  sp_runtime_stop(rt, 5000);
}

static void test_ttl_expiry(void **state) {
  sp_runtime_t *rt = start(state, 1, "    session_ttl: 300ms\n");
  json_t *j = scall_ok(rt, "add", "{\"x\": 3}", "t", SP_SESSION_STRICT);
  assert_int_equal(jint(j, "total"), 3);
  json_decref(j);
  assert_int_equal(stat_of(rt, "live"), 1);
  wait_stat(rt, "expired", 1);
  assert_int_equal(stat_of(rt, "live"), 0);
  /* The worker dropped the state too. */
  j = scall_ok(rt, "held", "{}", NULL, 0);
  assert_int_equal(json_array_size(json_object_get(j, "sessions")), 0);
  json_decref(j);
  j = scall_ok(rt, "add", "{\"x\": 1}", "t", SP_SESSION_STRICT);
  assert_int_equal(jint(j, "total"), 1);
  json_decref(j);
  sp_runtime_stop(rt, 5000);
}

static void test_explicit_end(void **state) {
  sp_runtime_t *rt = start(state, 1, NULL);
  for (int i = 0; i < 3; i++) json_decref(scall_ok(rt, "add", "{}", "e", SP_SESSION_STRICT));
  json_decref(scall_ok(rt, "add", "{}", "keep", SP_SESSION_STRICT));
  json_t *j = scall_ok(rt, "held", "{}", NULL, 0);
  assert_int_equal(json_array_size(json_object_get(j, "sessions")), 2);
  json_decref(j);
  sp_error_t err;
  assert_int_equal(sp_session_end(rt, "s", "e", &err), 0);
  /* Ending what does not exist is fine. */
  assert_int_equal(sp_session_end(rt, "s", "never-started", &err), 0);
  j = scall_ok(rt, "held", "{}", NULL, 0);
  json_t *held = json_object_get(j, "sessions");
  assert_int_equal(json_array_size(held), 1);
  assert_string_equal(json_string_value(json_array_get(held, 0)), "keep");
  json_decref(j);
  j = scall_ok(rt, "add", "{}", "e", SP_SESSION_STRICT);
  assert_int_equal(jint(j, "total"), 1);
  json_decref(j);
  j = scall_ok(rt, "peek", "{}", "keep", SP_SESSION_STRICT);
  assert_int_equal(jint(j, "total"), 1);
  json_decref(j);
  assert_int_equal(stat_of(rt, "ended"), 1);
  sp_runtime_stop(rt, 5000);
}

static void test_lost_after_kill(void **state) {
  sp_runtime_t *rt = start(state, 2, NULL);
  json_t *j = scall_ok(rt, "add", "{\"x\": 4}", "k", SP_SESSION_STRICT);
  long long pid = jint(j, "pid");
  json_decref(j);
  assert_int_equal(kill((pid_t)pid, SIGKILL), 0);
  wait_stat(rt, "lost", 1);
  sp_error_t err;
  assert_int_equal(scall(rt, "peek", "{}", "k", SP_SESSION_STRICT, NULL, &err), SP_ESESSIONLOST);
  assert_non_null(strstr(err.message, "session 'k'"));
  assert_non_null(strstr(err.message, "pool 's'"));
  assert_int_equal(err.category, SP_CAT_WORKER);
  sp_error_free(&err);
  assert_int_equal(scall(rt, "peek", "{}", "k", SP_SESSION_STRICT_FAIL_FAST, NULL, &err),
                   SP_ESESSIONLOST);
  sp_error_free(&err);
  /* Ended, it starts afresh; strict calls work again. */
  assert_int_equal(sp_session_end(rt, "s", "k", &err), 0);
  j = scall_ok(rt, "add", "{}", "k", SP_SESSION_STRICT);
  assert_int_equal(jint(j, "total"), 1);
  assert_int_not_equal(jint(j, "pid"), pid);
  json_decref(j);
  /* Hint calls go on after a loss, on a fresh state. */
  j = scall_ok(rt, "add", "{}", "h", SP_SESSION_HINT);
  pid = jint(j, "pid");
  json_decref(j);
  assert_int_equal(kill((pid_t)pid, SIGKILL), 0);
  wait_stat(rt, "lost", 2);
  j = scall_ok(rt, "add", "{}", "h", SP_SESSION_HINT);
  assert_int_equal(jint(j, "total"), 1);
  assert_int_not_equal(jint(j, "pid"), pid);
  json_decref(j);
  sp_runtime_stop(rt, 5000);
}

static void test_recycled_worker(void **state) {
  sp_runtime_t *rt = start(state, 1, "    worker_max_requests: 4\n    recycle_jitter: 0\n");
  long long pid = 0;
  for (int i = 1; i <= 4; i++) {
    json_t *j = scall_ok(rt, "add", "{}", "r", SP_SESSION_STRICT);
    assert_int_equal(jint(j, "total"), i);
    pid = jint(j, "pid");
    json_decref(j);
  }
  /* The fourth call recycled the worker: the state did not move. */
  sp_error_t err;
  assert_int_equal(scall(rt, "peek", "{}", "r", SP_SESSION_STRICT, NULL, &err), SP_ESESSIONLOST);
  assert_non_null(strstr(err.message, "recycled"));
  assert_non_null(strstr(err.message, "session 'r'"));
  sp_error_free(&err);
  json_t *j = scall_ok(rt, "peek", "{}", "r", SP_SESSION_HINT);
  assert_int_equal(jint(j, "total"), 0);
  assert_int_not_equal(jint(j, "pid"), pid);
  json_decref(j);
  sp_runtime_stop(rt, 5000);
}

typedef struct {
  sp_runtime_t *rt;
  char session[32];
  const char *tool, *args;
  int calls;
  int failures;
} client_t;

static void *client_main(void *arg) {
  client_t *c = arg;
  for (int i = 0; i < c->calls; i++)
    if (scall(c->rt, c->tool, c->args, c->session, SP_SESSION_STRICT, NULL, NULL) != 0)
      c->failures++;
  return NULL;
}

/* Thread profile: sessions side by side on one worker, and calls of one session at once. */
static void test_concurrent_sessions(void **state) {
  (void)state;
  sp_runtime_t *rt = h_start_pool("s", "thread", 1, 4, SESSION_ADAPTER, NULL);
  enum { N = 4, CALLS = 40 };
  pthread_t th[N];
  client_t cl[N];
  for (int i = 0; i < N; i++) {
    cl[i] = (client_t){rt, "", "add", "{}", CALLS, 0};
    snprintf(cl[i].session, sizeof(cl[i].session), "c%d", i);
    pthread_create(&th[i], NULL, client_main, &cl[i]);
  }
  for (int i = 0; i < N; i++) pthread_join(th[i], NULL);
  for (int i = 0; i < N; i++) {
    assert_int_equal(cl[i].failures, 0);
    json_t *j = scall_ok(rt, "peek", "{}", cl[i].session, SP_SESSION_STRICT);
    assert_int_equal(jint(j, "total"), CALLS);
    json_decref(j);
  }
  /* One session, four calls at once, each adding under the session's lock. */
  for (int i = 0; i < N; i++) {
    cl[i] = (client_t){rt, "shared", "bump", "{\"n\": 50}", 5, 0};
    pthread_create(&th[i], NULL, client_main, &cl[i]);
  }
  for (int i = 0; i < N; i++) pthread_join(th[i], NULL);
  for (int i = 0; i < N; i++) assert_int_equal(cl[i].failures, 0);
  json_t *j = scall_ok(rt, "peek", "{}", "shared", SP_SESSION_STRICT);
  assert_int_equal(jint(j, "total"), N * 5 * 50);
  json_decref(j);
  sp_runtime_stop(rt, 5000);
}

typedef struct {
  h_async_t done;
  int chunks;
} stream_state_t;

static int count_chunk(const char *json, size_t len, void *ud) {
  (void)json, (void)len;
  ((stream_state_t *)ud)->chunks++;
  return SP_CHUNK_CONTINUE;
}

static void stream_done(sp_result_t *res, void *ud) {
  h_async_done(res, &((stream_state_t *)ud)->done);
}

static void test_stream_in_session(void **state) {
  sp_runtime_t *rt = start(state, 2, NULL);
  json_decref(scall_ok(rt, "add", "{\"x\": 10}", "st", SP_SESSION_STRICT));
  sp_call_opts_t o = SP_CALL_OPTS_INIT;
  o.session = "st";
  o.session_mode = SP_SESSION_STRICT;
  stream_state_t s = {0};
  sp_error_t err;
  assert_int_equal(sp_execute_stream(rt, "s", "stream_add", "{\"n\": 3}", &o, count_chunk,
                                     stream_done, &s, NULL, &err),
                   0);
  assert_true(h_async_wait(&s.done, 10));
  assert_int_equal(s.done.code, 0);
  assert_int_equal(s.chunks, 3);
  sp_free(s.done.json);
  json_t *j = scall_ok(rt, "peek", "{}", "st", SP_SESSION_STRICT);
  assert_int_equal(jint(j, "total"), 13);
  json_decref(j);
  sp_runtime_stop(rt, 5000);
}

static void test_stats(void **state) {
  sp_runtime_t *rt = start(state, 2, NULL);
  json_decref(scall_ok(rt, "add", "{}", "one", SP_SESSION_HINT));
  json_decref(scall_ok(rt, "add", "{}", "two", SP_SESSION_HINT));
  json_decref(scall_ok(rt, "add", "{}", "two", SP_SESSION_HINT));
  json_t *all;
  json_t *s = session_stats(rt, &all);
  assert_int_equal(jint(s, "live"), 2);
  assert_int_equal(jint(s, "ttl_ms"), 3600000);
  json_t *list = json_object_get(s, "list");
  assert_int_equal(json_array_size(list), 2);
  long long calls = 0;
  for (size_t i = 0; i < 2; i++) calls += jint(json_array_get(list, i), "calls");
  assert_int_equal(calls, 3);
  long long per_worker = 0;
  json_t *workers = json_object_get(all, "workers");
  for (size_t i = 0; i < json_array_size(workers); i++)
    per_worker += jint(json_array_get(workers, i), "sessions");
  assert_int_equal(per_worker, 2);
  json_decref(all);
  char *text = NULL;
  char *doc = NULL;
  assert_int_equal(sp_stats_json(rt, NULL, &doc, NULL), 0);
  assert_int_equal(sp_stats_text(doc, SP_STATS_TEXT_WORKERS, &text, NULL), 0);
  assert_non_null(strstr(text, "sessions"));
  sp_free(text);
  sp_free(doc);
  assert_int_equal(sp_session_end(rt, "s", "one", NULL), 0);
  json_decref(scall_ok(rt, "peek", "{}", NULL, 0)); /* after the end, in order */
  assert_int_equal(stat_of(rt, "live"), 1);
  sp_runtime_stop(rt, 5000);
}

static void expect_bad(sp_runtime_t *rt, const char *session, int mode, const char *what) {
  sp_error_t err;
  assert_int_equal(scall(rt, "peek", "{}", session, mode, NULL, &err), SP_EINVAL);
  if (strstr(err.message, what) == NULL) fail_msg("'%s' lacks '%s'", err.message, what);
  assert_non_null(strstr(err.message, "pool 's'"));
  assert_non_null(strstr(err.message, "tool 'peek'"));
  sp_error_free(&err);
}

static void test_bad_input(void **state) {
  sp_runtime_t *rt = start(state, 1, NULL);
  char long_id[SP_SESSION_ID_MAX + 2];
  memset(long_id, 'x', sizeof(long_id) - 1);
  long_id[sizeof(long_id) - 1] = '\0';
  expect_bad(rt, "", SP_SESSION_HINT, "is empty");
  expect_bad(rt, long_id, SP_SESSION_HINT, "longer than 128 bytes");
  expect_bad(rt, "a\nb", SP_SESSION_HINT, "control character (U+000A) at byte 1");
  expect_bad(rt, "a\x7f", SP_SESSION_HINT, "control character");
  expect_bad(rt, "ok\xc2\x85", SP_SESSION_HINT, "control character (U+0085)");
  expect_bad(rt, "bad\xff", SP_SESSION_HINT, "not valid UTF-8 (byte 3)");
  expect_bad(rt, "\xc0\xaf", SP_SESSION_HINT, "not valid UTF-8");
  expect_bad(rt, "fine", 7, "unknown session mode 7");
  expect_bad(rt, "fine", -1, "unknown session mode -1");
  /* The longest id, and any UTF-8, are fine. */
  long_id[SP_SESSION_ID_MAX] = '\0';
  json_decref(scall_ok(rt, "peek", "{}", long_id, SP_SESSION_HINT));
  json_t *j = scall_ok(rt, "peek", "{}", "caf\xc3\xa9 \xe2\x9c\x93", SP_SESSION_HINT);
  assert_string_equal(json_string_value(json_object_get(j, "session_id")), "caf\xc3\xa9 \xe2\x9c\x93");
  json_decref(j);
  /* A caller compiled before sessions (a smaller struct) gets none. */
  sp_call_opts_t o = SP_CALL_OPTS_INIT;
  o.size = (uint32_t)offsetof(sp_call_opts_t, session);
  o.session = "ignored";
  sp_result_t res;
  assert_int_equal(sp_execute(rt, "s", "peek", "{}", &o, &res), 0);
  json_t *none = json_loads(res.json, 0, NULL);
  assert_true(json_is_null(json_object_get(none, "session_id")));
  json_decref(none);
  sp_result_free(&res);
  sp_error_t err;
  assert_int_equal(sp_session_end(rt, "s", "a\tb", &err), SP_EINVAL);
  assert_non_null(strstr(err.message, "control character"));
  sp_error_free(&err);
  assert_int_equal(sp_session_end(rt, "nope", "x", &err), SP_ENOPOOL);
  sp_error_free(&err);
  int mode = -1;
  assert_int_equal(sp_session_mode_parse("strict_fail_fast", &mode, NULL), 0);
  assert_int_equal(mode, SP_SESSION_STRICT_FAIL_FAST);
  assert_int_equal(sp_session_mode_parse("sticky", &mode, &err), SP_EINVAL);
  assert_non_null(strstr(err.message, "'sticky'"));
  sp_error_free(&err);
  /* And the pool keeps serving. */
  json_decref(scall_ok(rt, "add", "{}", "after", SP_SESSION_STRICT));
  sp_runtime_stop(rt, 5000);
}

#define BOTH(fn)                                              \
  cmocka_unit_test_prestate(fn, &proc_profile),               \
      cmocka_unit_test_prestate(fn, &thread_profile)

int main(void) {
  const struct CMUnitTest tests[] = {
      BOTH(test_affinity),       BOTH(test_modes_at_busy_worker),
      BOTH(test_strict_wait_lets_others_pass), BOTH(test_strict_queue_timeout),
      BOTH(test_ttl_expiry),     BOTH(test_explicit_end),
      BOTH(test_lost_after_kill), BOTH(test_recycled_worker),
      BOTH(test_stream_in_session), BOTH(test_stats),
      BOTH(test_bad_input),
      cmocka_unit_test(test_concurrent_sessions),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * test_callbacks.c - tools that call back into the host, in both profiles:
 * a chain A -> B -> host function, the nested call's deadline bounded by the
 * caller's, cancelling the outer call cancels the inner one, a self-call at
 * full capacity and a cycle of waits across pools fail fast (SP_EDEADLOCK),
 * the depth limit, host functions
 * that fail or are not registered, unknown pools and tools, and workers
 * killed during nested calls (no call outlives its deadline, pools serve on).
 */
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

#define CALLBACK_ADAPTER "callback_adapter.CallbackAdapter"

static sp_runtime_t *rt;
static int b_threads; /* pool b's capacity: 1 (process profile) or 2 (thread profile) */
static pthread_t loop_thread_seen; /* a thread a host function ran on */
static _Atomic int host_calls;

/* Host function "scale": {"x": N} -> {"y": 2N}. */
static int scale_fn(const char *args, char **out, sp_error_t *err, void *ud) {
  (void)ud;
  json_t *a = json_loads(args, 0, NULL);
  json_t *x = json_object_get(a, "x");
  if (!json_is_integer(x)) {
    json_decref(a);
    return sp_error_setf(err, SP_EBADARGS, "scale needs an integer x");
  }
  loop_thread_seen = pthread_self();
  atomic_fetch_add(&host_calls, 1);
  if (asprintf(out, "{\"y\": %lld}", 2 * (long long)json_integer_value(x)) < 0) *out = NULL;
  json_decref(a);
  return 0;
}

/* Host function "fail": always fails with SP_EINVAL and a message of its own. */
static int fail_fn(const char *args, char **out, sp_error_t *err, void *ud) {
  (void)args;
  (void)out;
  (void)ud;
  return sp_error_setf(err, SP_EINVAL, "the disk is on fire");
}

/* Host function "garbage": returns text that is not JSON. */
static int garbage_fn(const char *args, char **out, sp_error_t *err, void *ud) {
  (void)args;
  (void)err;
  (void)ud;
  *out = strdup("{not json");
  return 0;
}

/* Host function "slow": sleeps 800 ms, then counts itself done. */
static _Atomic int slow_done;
static int slow_fn(const char *args, char **out, sp_error_t *err, void *ud) {
  (void)args;
  (void)err;
  (void)ud;
  h_sleep_ms(800);
  atomic_fetch_add(&slow_done, 1);
  *out = strdup("\"slow\"");
  return 0;
}

/*
 * Pools "a" (2 slots) and "b" (1 slot), both of one profile; pool "b" allows
 * chains of two levels, so a -> b -> host function works and a -> b -> a ->
 * anything is too deep (the strictest pool of a chain sets its limit).
 */
static int setup_profile(void **state, const char *profile) {
  (void)state;
  int thread = strcmp(profile, "thread") == 0;
  char yaml[2048];
  snprintf(yaml, sizeof(yaml),
           "pools:\n"
           "  - name: a\n"
           "    worker_profile: %s\n"
           "    pool_size: %d\n"
           "    threads_per_worker: %d\n"
           "    adapter: %s\n"
           "    python_path: [\"%s\"]\n"
           "    queue_timeout: 10s\n"
           "    max_frame_bytes: 64KiB\n"
           "  - name: b\n"
           "    worker_profile: %s\n"
           "    pool_size: 1\n"
           "    threads_per_worker: %d\n"
           "    adapter: %s\n"
           "    python_path: [\"%s\"]\n"
           "    max_call_depth: 2\n"
           "    queue_timeout: 10s\n",
           profile, thread ? 1 : 2, thread ? 2 : 1, CALLBACK_ADAPTER, SP_TEST_ADAPTERS, profile,
           thread ? 2 : 1, CALLBACK_ADAPTER, SP_TEST_ADAPTERS);
  rt = h_start(yaml);
  b_threads = thread ? 2 : 1;
  sp_error_t err;
  assert_int_equal(sp_register_host_function(rt, "scale", scale_fn, NULL, &err), 0);
  assert_int_equal(sp_register_host_function(rt, "fail", fail_fn, NULL, &err), 0);
  assert_int_equal(sp_register_host_function(rt, "garbage", garbage_fn, NULL, &err), 0);
  return 0;
}

static int setup_process(void **state) { return setup_profile(state, "process"); }
static int setup_thread(void **state) { return setup_profile(state, "thread"); }

static int teardown(void **state) {
  (void)state;
  sp_runtime_stop(rt, 5000);
  rt = NULL;
  return 0;
}

/* Runs a.relay with args and returns its result JSON (caller frees). */
static char *relay_ok(const char *args) { return h_call_ok(rt, "a", "relay", args); }

/* The "error" object a relay/host call with catch=true returned. */
static json_t *caught(const char *pool, const char *tool, const char *args) {
  char *json = h_call_ok(rt, pool, tool, args);
  json_t *o = json_loads(json, 0, NULL);
  sp_free(json);
  json_t *e = json_object_get(o, "error");
  if (e == NULL) fail_msg("expected an error object from %s.%s(%s)", pool, tool, args);
  json_incref(e);
  json_decref(o);
  return e;
}

static void assert_caught(const char *pool, const char *tool, const char *args, const char *code,
                          const char *in_message) {
  json_t *e = caught(pool, tool, args);
  const char *c = json_string_value(json_object_get(e, "code"));
  const char *m = json_string_value(json_object_get(e, "message"));
  if (c == NULL || strcmp(c, code) != 0 || m == NULL || strstr(m, in_message) == NULL)
    fail_msg("%s.%s(%s): got %s \"%s\", expected %s with \"%s\"", pool, tool, args,
             c ? c : "?", m ? m : "?", code, in_message);
  json_decref(e);
}

static char *marker_path(const char *what) {
  static char buf[256];
  snprintf(buf, sizeof(buf), "/tmp/sp-callbacks-%d-%s", (int)getpid(), what);
  unlink(buf);
  return buf;
}


/* ---- the tests ------------------------------------------------------------ */

static void chain_a_to_b_to_host_function(void **state) {
  (void)state;
  int before = atomic_load(&host_calls);
  char *json = relay_ok(
      "{\"pool\": \"b\", \"tool\": \"host\", \"args\": {\"name\": \"scale\", \"args\": {\"x\": 21}}}");
  assert_string_equal(json, "{\"y\":42}");
  sp_free(json);
  assert_int_equal(atomic_load(&host_calls), before + 1);
  /* Host functions run on libuv's thread pool, not on this (calling) thread. */
  assert_false(pthread_equal(loop_thread_seen, pthread_self()));
  /* A self-call with a free slot works. */
  json = relay_ok("{\"pool\": \"a\", \"tool\": \"add\", \"args\": {\"a\": 2, \"b\": 3}}");
  assert_string_equal(json, "5");
  sp_free(json);
  json_t *a = h_pool_stats(rt, "a"), *b = h_pool_stats(rt, "b");
  assert_true(json_integer_value(json_object_get(a, "nested_calls")) >= 2);
  assert_true(json_integer_value(json_object_get(b, "host_function_calls")) >= 1);
  json_decref(a);
  json_decref(b);
}

/* The "calls back:" line sp_stats_text() prints for pool, or NULL (caller frees). */
static char *calls_back_line(const char *pool) {
  char *doc = NULL, *text = NULL;
  assert_int_equal(sp_stats_json(rt, pool, &doc, NULL), 0);
  assert_int_equal(sp_stats_text(doc, 0, &text, NULL), 0);
  sp_free(doc);
  char *line = strstr(text, "  calls back: ");
  char *out = line ? strndup(line, strcspn(line, "\n")) : NULL;
  sp_free(text);
  return out;
}

/* Runs after the chain: a made two nested calls, b one host function call. */
static void stats_text_shows_calls_back(void **state) {
  (void)state;
  json_t *a = h_pool_stats(rt, "a"), *b = h_pool_stats(rt, "b");
  char want[256];
  char *line = calls_back_line("a");
  snprintf(want, sizeof(want),
           "  calls back: %lld to tools, %lld to host functions, 0 waiting now, %lld refused",
           (long long)json_integer_value(json_object_get(a, "nested_calls")),
           (long long)json_integer_value(json_object_get(a, "host_function_calls")),
           (long long)json_integer_value(json_object_get(a, "nested_refused")));
  assert_non_null(line);
  assert_string_equal(line, want);
  assert_non_null(strstr(line, "2 to tools"));
  free(line);
  line = calls_back_line("b");
  assert_non_null(line);
  assert_string_equal(line,
                      "  calls back: 0 to tools, 1 to host functions, 0 waiting now, 0 refused");
  free(line);
  json_decref(a);
  json_decref(b);
}

static void nested_call_gets_at_most_the_callers_time(void **state) {
  (void)state;
  char *marker = marker_path("deadline");
  char args[512];
  snprintf(args, sizeof(args),
           "{\"pool\": \"b\", \"tool\": \"nap\", \"args\": {\"seconds\": 60, \"marker\": \"%s\"}}",
           marker);
  sp_call_opts_t opts = SP_CALL_OPTS_INIT;
  opts.timeout_ms = 1500;
  sp_result_t res;
  double t0 = h_now();
  int rc = sp_execute(rt, "a", "relay", args, &opts, &res);
  double took = h_now() - t0;
  assert_int_equal(rc, SP_ETIMEOUT);
  sp_result_free(&res);
  /* Pool b's own timeout is 30 s: the nested call ended with its caller's. */
  assert_true(took < 1.5 * 2);
  /* The nested tool was cancelled (its thread freed) soon after, not at 60 s. */
  double waited = h_assert_marker(marker, "cancelled", 10);
  assert_true(took + waited < 1.5 * 3);
  char *json = h_call_ok(rt, "b", "add", "{\"a\": 1, \"b\": 1}");
  assert_string_equal(json, "2");
  sp_free(json);
}

/* Stream of a.relay_stream: cancel it with sp_cancel while its nested call runs. */
typedef struct {
  atomic_int chunks;
  h_async_t done;
} stream_t;

static int on_chunk(const char *json, size_t len, void *ud) {
  (void)json;
  (void)len;
  atomic_fetch_add(&((stream_t *)ud)->chunks, 1);
  return SP_CHUNK_CONTINUE;
}

static void on_done(sp_result_t *res, void *ud) { h_async_done(res, &((stream_t *)ud)->done); }

static void cancelling_the_outer_call_cancels_the_inner(void **state) {
  (void)state;
  char *inner = strdup(marker_path("inner"));
  char *outer = strdup(marker_path("outer"));
  char args[768];
  snprintf(args, sizeof(args),
           "{\"pool\": \"b\", \"tool\": \"nap\", \"args\": {\"seconds\": 60, \"marker\": \"%s\"},"
           " \"marker\": \"%s\"}",
           inner, outer);
  stream_t *s = calloc(1, sizeof(*s));
  uint64_t id = 0;
  sp_error_t err;
  sp_call_opts_t opts = SP_CALL_OPTS_INIT;
  opts.timeout_ms = 30000;
  assert_int_equal(
      sp_execute_stream(rt, "a", "relay_stream", args, &opts, on_chunk, on_done, s, &id, &err), 0);
  double t0 = h_now();
  while (atomic_load(&s->chunks) < 1 && h_now() - t0 < 10) h_sleep_ms(2);
  assert_int_equal(atomic_load(&s->chunks), 1);
  h_sleep_ms(300); /* the nested nap is running in pool b */
  double tc = h_now();
  assert_int_equal(sp_cancel(rt, id), 0);
  assert_true(h_async_wait(&s->done, 5));
  assert_int_equal(s->done.code, SP_ECANCELLED);
  /* Both threads saw CallCancelled: the outer while it waited, the inner in its nap. */
  h_assert_marker(outer, "cancelled", 5);
  h_assert_marker(inner, "cancelled", 5);
  assert_true(h_now() - tc < 0.1 * 30);
  char *json = h_call_ok(rt, "b", "add", "{\"a\": 2, \"b\": 2}");
  assert_string_equal(json, "4");
  sp_free(json);
  sp_free(s->done.json);
  free(s);
  free(inner);
  free(outer);
}

/* Runs a.relay asynchronously (for concurrent callers). */
static void relay_async(const char *args, int64_t timeout_ms, h_async_t *a) {
  sp_call_opts_t opts = SP_CALL_OPTS_INIT;
  opts.timeout_ms = timeout_ms;
  sp_error_t err;
  if (sp_execute_async(rt, "a", "relay", args, &opts, h_async_done, a, &err) != 0)
    fail_msg("sp_execute_async: %s", err.message);
}

static void self_call_at_full_capacity_fails_fast(void **state) {
  (void)state;
  /* Every slot of pool a calls into pool a at once: none can ever get a slot. */
  h_async_t calls[2];
  memset(calls, 0, sizeof(calls));
  const char *args =
      "{\"pool\": \"a\", \"tool\": \"add\", \"args\": {\"a\": 1, \"b\": 1}, \"delay\": 0.3,"
      " \"catch\": true}";
  double t0 = h_now();
  for (int i = 0; i < 2; i++) relay_async(args, 20000, &calls[i]);
  int deadlocked = 0;
  for (int i = 0; i < 2; i++) {
    assert_true(h_async_wait(&calls[i], 20));
    assert_int_equal(calls[i].code, 0);
    if (strstr(calls[i].json, "SP_EDEADLOCK") != NULL) deadlocked++;
    sp_free(calls[i].json);
  }
  /* At least the call that found every slot taken was refused, and fast. */
  assert_true(deadlocked >= 1);
  assert_true(h_now() - t0 < 0.1 * 20);
  /* A slot busy with a long call plus the caller's own: the same, for one caller. */
  h_async_t nap;
  memset(&nap, 0, sizeof(nap));
  sp_call_opts_t opts = SP_CALL_OPTS_INIT;
  sp_error_t err;
  assert_int_equal(sp_execute_async(rt, "a", "nap", "{\"seconds\": 1.5}", &opts, h_async_done,
                                    &nap, &err),
                   0);
  h_sleep_ms(200);
  t0 = h_now();
  assert_caught("a", "relay", "{\"pool\": \"a\", \"tool\": \"add\", \"args\": {\"a\": 1, \"b\": 1},"
                " \"catch\": true}", "SP_EDEADLOCK", "would deadlock");
  assert_true(h_now() - t0 < 0.1 * 20);
  assert_true(h_async_wait(&nap, 10));
  assert_int_equal(nap.code, 0);
  sp_free(nap.json);
  json_t *a = h_pool_stats(rt, "a");
  assert_true(json_integer_value(json_object_get(a, "nested_refused")) >= 2);
  assert_int_equal(json_integer_value(json_object_get(a, "calls_waiting_nested")), 0);
  json_decref(a);
}

/*
 * Pool a's two slots wait (one after the other) for pool b, whose only slot
 * waits for pool a: a cycle across pools. The call that would close it is
 * refused at once, the others complete. With two threads in b (thread
 * profile) there is no cycle: everything completes.
 */
static void cross_pool_cycle_fails_fast(void **state) {
  (void)state;
  h_async_t a1, a2, bb;
  memset(&a1, 0, sizeof(a1));
  memset(&a2, 0, sizeof(a2));
  memset(&bb, 0, sizeof(bb));
  const char *to_b = "{\"pool\": \"b\", \"tool\": \"add\", \"args\": {\"a\": 1, \"b\": 1},"
                     " \"delay\": 0.6, \"catch\": true}";
  double t0 = h_now();
  relay_async(to_b, 20000, &a1);
  relay_async(to_b, 20000, &a2);
  h_sleep_ms(150); /* a's slots are taken (sleeping); b's call queues in a */
  sp_call_opts_t opts = SP_CALL_OPTS_INIT;
  opts.timeout_ms = 20000;
  sp_error_t err;
  assert_int_equal(sp_execute_async(rt, "b", "relay",
                                    "{\"pool\": \"a\", \"tool\": \"add\", \"args\": {\"a\": 1, "
                                    "\"b\": 1}, \"catch\": true}",
                                    &opts, h_async_done, &bb, &err),
                   0);
  h_async_t *all[] = {&a1, &a2, &bb};
  int deadlocked = 0;
  for (int i = 0; i < 3; i++) {
    assert_true(h_async_wait(all[i], 20));
    assert_int_equal(all[i]->code, 0);
    if (strstr(all[i]->json, "SP_EDEADLOCK") != NULL) deadlocked++;
    else assert_string_equal(all[i]->json, "2");
  }
  /* Nobody waited for a deadline: the whole exchange takes a fraction of it. */
  assert_true(h_now() - t0 < 0.2 * 20);
  /* b's call got through; with one thread in b exactly one of a's was refused. */
  assert_string_equal(bb.json, "2");
  assert_int_equal(deadlocked, b_threads == 1 ? 1 : 0);
  for (int i = 0; i < 3; i++) sp_free(all[i]->json);
}

static void chain_deeper_than_max_call_depth_fails(void **state) {
  (void)state;
  /* a -> b is level 1, b -> a level 2, a -> host function would be level 3. */
  json_t *e = caught("a", "relay",
                     "{\"pool\": \"b\", \"tool\": \"relay\", \"catch\": true, \"args\": "
                     "{\"pool\": \"a\", \"tool\": \"host\", \"catch\": true, \"args\": "
                     "{\"name\": \"scale\", \"args\": {\"x\": 1}, \"catch\": true}}}");
  assert_string_equal(json_string_value(json_object_get(e, "code")), "SP_EDEPTH");
  assert_string_equal(json_string_value(json_object_get(e, "category")), "validation");
  const char *m = json_string_value(json_object_get(e, "message"));
  assert_non_null(strstr(m, "level 3"));
  assert_non_null(strstr(m, "max_call_depth (2) of pool 'b'"));
  json_decref(e);
}

static void host_function_failures(void **state) {
  (void)state;
  assert_caught("a", "host", "{\"name\": \"fail\", \"catch\": true}", "SP_EINVAL",
                "the disk is on fire");
  assert_caught("a", "host", "{\"name\": \"nope\", \"catch\": true}", "SP_ENOFUNC",
                "unknown host function 'nope'");
  assert_caught("a", "host", "{\"name\": \"garbage\", \"catch\": true}", "SP_EBADJSON",
                "not JSON");
  assert_caught("a", "host", "{\"name\": \"scale\", \"args\": {\"x\": \"z\"}, \"catch\": true}",
                "SP_EBADARGS", "integer x");
  /* Unregistered: calls fail, and registering it again works. */
  assert_int_equal(sp_unregister_host_function(rt, "scale"), 0);
  assert_int_equal(sp_unregister_host_function(rt, "scale"), SP_EINVAL);
  assert_caught("a", "host", "{\"name\": \"scale\", \"args\": {\"x\": 1}, \"catch\": true}",
                "SP_ENOFUNC", "'scale'");
  sp_error_t err;
  assert_int_equal(sp_register_host_function(rt, "bad name!", scale_fn, NULL, &err), SP_EINVAL);
  assert_non_null(strstr(err.message, "bad name!"));
  sp_error_free(&err);
  assert_int_equal(sp_register_host_function(rt, "scale", scale_fn, NULL, &err), 0);
  assert_int_equal(sp_register_host_function(rt, "scale", scale_fn, NULL, &err), SP_EINVAL);
  sp_error_free(&err);
  /* Uncaught, the tool's CallError reaches the caller with the nested message. */
  sp_error_t e;
  h_call_fails(rt, "a", "host", "{\"name\": \"fail\"}", SP_EPYTHON, &e);
  assert_non_null(strstr(e.message, "CallError"));
  assert_non_null(strstr(e.message, "the disk is on fire"));
  char *json = h_call_ok(rt, "a", "add", "{\"a\": 1, \"b\": 2}");
  assert_string_equal(json, "3");
  sp_free(json);
}

/* Pool a's max_frame_bytes is 64 KiB: nested results and arguments past it are
 * refused with an error, and the worker (which would refuse such a frame) lives. */
static void frame_limits_of_nested_calls(void **state) {
  (void)state;
  assert_caught("a", "relay",
                "{\"pool\": \"b\", \"tool\": \"big\", \"args\": {\"n\": 100000}, \"catch\": true}",
                "SP_ETOOLARGE", "exceeds max_frame_bytes");
  char *json = h_call_ok(rt, "a", "relay_padded", "{\"pool\": \"b\", \"tool\": \"big\", \"n\": 100000}");
  assert_non_null(strstr(json, "exceed this pool's max_frame_bytes"));
  sp_free(json);
  json = h_call_ok(rt, "a", "relay", "{\"pool\": \"b\", \"tool\": \"big\", \"args\": {\"n\": 3}}");
  assert_string_equal(json, "\"xxx\"");
  sp_free(json);
  json_t *a = h_pool_stats(rt, "a");
  assert_int_equal(json_integer_value(json_object_get(a, "crashes")), 0);
  json_decref(a);
}

static void host_function_outliving_its_caller(void **state) {
  (void)state;
  sp_error_t err;
  int before = atomic_load(&slow_done);
  assert_int_equal(sp_register_host_function(rt, "slow", slow_fn, NULL, &err), 0);
  sp_call_opts_t opts = SP_CALL_OPTS_INIT;
  opts.timeout_ms = 200;
  sp_result_t res;
  double t0 = h_now();
  assert_int_equal(sp_execute(rt, "a", "host", "{\"name\": \"slow\"}", &opts, &res), SP_ETIMEOUT);
  sp_result_free(&res);
  /* The caller's deadline is not held up by the function it called. */
  assert_true(h_now() - t0 < 0.8);
  assert_int_equal(atomic_load(&slow_done), before);
  /* Unregistering waits for the running call; its late result is dropped. */
  assert_int_equal(sp_unregister_host_function(rt, "slow"), 0);
  assert_int_equal(atomic_load(&slow_done), before + 1);
  char *json = h_call_ok(rt, "a", "add", "{\"a\": 5, \"b\": 5}");
  assert_string_equal(json, "10");
  sp_free(json);
}

/* Thread profile: while one thread of the worker waits for a nested call,
 * the other runs Python (the waiting thread holds no GIL). */
static void waiting_thread_lets_others_run(void **state) {
  (void)state;
  h_async_t outer;
  memset(&outer, 0, sizeof(outer));
  relay_async("{\"pool\": \"b\", \"tool\": \"nap\", \"args\": {\"seconds\": 1.5}}", 10000,
              &outer);
  h_sleep_ms(300);
  double t0 = h_now();
  char *json = h_call_ok(rt, "a", "add", "{\"a\": 1, \"b\": 2}");
  double took = h_now() - t0;
  assert_string_equal(json, "3");
  sp_free(json);
  assert_false(atomic_load(&outer.done)); /* it really was still waiting */
  assert_true(took < 1.5 / 3);
  assert_true(h_async_wait(&outer, 10));
  assert_int_equal(outer.code, 0);
  sp_free(outer.json);
}

static void unknown_pool_tool_and_bad_arguments(void **state) {
  (void)state;
  assert_caught("a", "relay", "{\"pool\": \"nope\", \"tool\": \"add\", \"catch\": true}",
                "SP_ENOPOOL", "unknown pool 'nope'");
  assert_caught("a", "relay", "{\"pool\": \"b\", \"tool\": \"nope\", \"catch\": true}",
                "SP_ENOTOOL", "unknown tool 'nope' in pool 'b'");
  assert_caught("a", "relay",
                "{\"pool\": \"b\", \"tool\": \"add\", \"args\": {\"a\": 1}, \"catch\": true}",
                "SP_EBADARGS", "");
  /* The nested tool raised: its type and traceback come along. */
  json_t *e = caught("a", "relay",
                     "{\"pool\": \"b\", \"tool\": \"boom\", \"args\": {\"message\": \"kaput\"},"
                     " \"catch\": true}");
  assert_string_equal(json_string_value(json_object_get(e, "code")), "SP_EPYTHON");
  assert_string_equal(json_string_value(json_object_get(e, "python_type")), "ValueError");
  assert_non_null(strstr(json_string_value(json_object_get(e, "traceback")), "kaput"));
  json_decref(e);
  /* Arrays are refused as nested arguments, with a clear error. */
  char *json = h_call_ok(rt, "a", "relay_bytes", "{\"pool\": \"b\", \"tool\": \"add\"}");
  assert_non_null(strstr(json, "arrays are not passed to nested calls"));
  sp_free(json);
}

/* ---- chaos ----------------------------------------------------------------- */

static long worker_pid(const char *pool, unsigned *seed) {
  json_t *o = h_pool_stats(rt, pool);
  json_t *ws = json_object_get(o, "workers");
  long pid = 0;
  if (json_array_size(ws) > 0) {
    json_t *w = json_array_get(ws, (size_t)rand_r(seed) % json_array_size(ws));
    const char *st = json_string_value(json_object_get(w, "state"));
    if (st != NULL && strcmp(st, "ready") == 0)
      pid = (long)json_integer_value(json_object_get(w, "pid"));
  }
  json_decref(o);
  return pid;
}

/* Waits until every worker of pool is ready (none restarting). */
static void wait_all_ready(const char *pool, int n) {
  double t0 = h_now();
  while (h_now() - t0 < 20) {
    json_t *o = h_pool_stats(rt, pool);
    json_t *ws = json_object_get(o, "workers");
    int ready = 0;
    for (size_t i = 0; i < json_array_size(ws); i++) {
      const char *st = json_string_value(json_object_get(json_array_get(ws, i), "state"));
      ready += st != NULL && strcmp(st, "ready") == 0;
    }
    int all = ready == n && json_array_size(ws) == (size_t)n;
    json_decref(o);
    if (all) return;
    h_sleep_ms(20);
  }
  fail_msg("pool %s did not get its %d workers back", pool, n);
}

static void workers_killed_during_nested_calls(void **state) {
  (void)state;
  unsigned seed = 1234;
  enum { ROUNDS = 9, CALLS = 2 };
  json_t *st = h_pool_stats(rt, "a");
  int a_workers = (int)json_array_size(json_object_get(st, "workers"));
  json_decref(st);
  const int64_t timeout_ms = 3000;
  int kills = 0, ok = 0;
  for (int round = 0; round < ROUNDS; round++) {
    h_async_t calls[CALLS];
    memset(calls, 0, sizeof(calls));
    wait_all_ready("a", a_workers);
    wait_all_ready("b", 1);
    double t0 = h_now();
    for (int i = 0; i < CALLS; i++)
      relay_async("{\"pool\": \"b\", \"tool\": \"nap\", \"args\": {\"seconds\": 0.5}}", timeout_ms,
                  &calls[i]);
    h_sleep_ms(50 + (int)(rand_r(&seed) % 250));
    /* Every third round kills nobody: the pools must serve between kills. */
    long pid = round % 3 == 2 ? 0 : worker_pid(round % 2 ? "a" : "b", &seed);
    if (pid > 0 && kill((pid_t)pid, SIGKILL) == 0) kills++;
    for (int i = 0; i < CALLS; i++) {
      /* Every call returns within its deadline (and a little grace). */
      if (!h_async_wait(&calls[i], timeout_ms / 1000.0 + 2)) fail_msg("round %d: a call hung", round);
      if (calls[i].code == 0) ok++;
      if (getenv("SP_TEST_VERBOSE"))
        print_message("round %d call %d: %s %s\n", round, i, sp_err_name(calls[i].code),
                      calls[i].json ? calls[i].json : "");
      sp_free(calls[i].json);
    }
    assert_true(h_now() - t0 < timeout_ms / 1000.0 + 2);
  }
  assert_true(kills >= ROUNDS / 2);
  assert_true(ok >= CALLS * (ROUNDS / 3)); /* at least the rounds without a kill */
  /* The pools serve again once their workers are back. */
  double t0 = h_now();
  char *json = NULL;
  while (h_now() - t0 < 30) {
    sp_result_t res;
    if (sp_execute(rt, "a", "relay", "{\"pool\": \"b\", \"tool\": \"add\", \"args\": {\"a\": 3, \"b\": 4}}",
                   NULL, &res) == 0) {
      json = res.json;
      res.json = NULL;
      sp_result_free(&res);
      break;
    }
    sp_result_free(&res);
    h_sleep_ms(100);
  }
  assert_non_null(json);
  assert_string_equal(json, "7");
  sp_free(json);
  print_message("chaos: %d kills, %d of %d nested calls succeeded\n", kills, ok, ROUNDS * CALLS);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(chain_a_to_b_to_host_function),
      cmocka_unit_test(stats_text_shows_calls_back),
      cmocka_unit_test(nested_call_gets_at_most_the_callers_time),
      cmocka_unit_test(cancelling_the_outer_call_cancels_the_inner),
      cmocka_unit_test(self_call_at_full_capacity_fails_fast),
      cmocka_unit_test(cross_pool_cycle_fails_fast),
      cmocka_unit_test(chain_deeper_than_max_call_depth_fails),
      cmocka_unit_test(host_function_failures),
      cmocka_unit_test(unknown_pool_tool_and_bad_arguments),
      cmocka_unit_test(frame_limits_of_nested_calls),
      cmocka_unit_test(host_function_outliving_its_caller),
      cmocka_unit_test(waiting_thread_lets_others_run),
      cmocka_unit_test(workers_killed_during_nested_calls),
  };
  int failed = cmocka_run_group_tests_name("process profile", tests, setup_process, teardown);
  failed += cmocka_run_group_tests_name("thread profile", tests, setup_thread, teardown);
  return failed;
}

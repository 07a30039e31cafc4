/*
 * remote_api.c - the C API against a remote pool, for test_remote_api.py:
 * argv[1] is the NATS URL of a server where a node serves pool "work" (the
 * testing adapter). Prints one line "ok NAME" or "FAIL NAME: why" per check
 * and exits 1 if any failed.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "snakepit.h"

static int failures;

static void check(int ok, const char *name, const char *why) {
  if (ok) printf("ok %s\n", name);
  else printf("FAIL %s: %s\n", name, why ? why : "");
  failures += !ok;
}

typedef struct {
  atomic_int done;
  int code;
  char json[256];
  int nested_rc; /* sp_execute from the callback: refused on the loop thread */
  sp_runtime_t *rt;
} async_t;

static void on_done(sp_result_t *res, void *ud) {
  async_t *a = ud;
  a->code = res->error.code;
  snprintf(a->json, sizeof(a->json), "%s", res->json ? res->json : res->error.message);
  sp_result_t inner;
  a->nested_rc = sp_execute(a->rt, "work", "noop", "{}", NULL, &inner);
  sp_result_free(&inner);
  atomic_store(&a->done, 1);
}

/* Streams: chunks counted; the consumer stops at stop_at, or pauses at pause_at. */
typedef struct {
  atomic_int chunks, done;
  int stop_at, pause_at, code;
  char json[256];
} stream_t;

static int on_chunk(const char *json, size_t len, void *ud) {
  stream_t *s = ud;
  int n = atomic_fetch_add(&s->chunks, 1) + 1;
  if (s->stop_at && n == s->stop_at) return SP_CHUNK_STOP;
  if (s->pause_at && n == s->pause_at) return SP_CHUNK_PAUSE;
  return SP_CHUNK_CONTINUE;
}

static void on_stream_done(sp_result_t *res, void *ud) {
  stream_t *s = ud;
  s->code = res->error.code;
  snprintf(s->json, sizeof(s->json), "%s", res->json ? res->json : res->error.message);
  atomic_store(&s->done, 1);
}

static void wait_done(atomic_int *done, int ms) {
  for (int i = 0; i < ms / 10 && !atomic_load(done); i++) usleep(10000);
}

int main(int argc, char **argv) {
  if (argc < 2) return 2;
  char yaml[512];
  snprintf(yaml, sizeof(yaml), "pools:\n  - name: work\n    remote: \"%s\"\n    timeout: 10s\n", argv[1]);
  sp_runtime_t *rt = NULL;
  sp_error_t err;
  if (sp_runtime_start_yaml(&rt, yaml, strlen(yaml), "test", &err) != 0) {
    printf("FAIL start: %s\n", err.message);
    sp_error_free(&err);
    return 1;
  }
  sp_result_t res;
  int rc = sp_execute(rt, "work", "add", "{\"a\": 20, \"b\": 22}", NULL, &res);
  check(rc == 0 && res.json && strcmp(res.json, "42") == 0, "sync", res.error.message);
  sp_result_free(&res);

  async_t a = {.rt = rt};
  rc = sp_execute_async(rt, "work", "add", "{\"a\": 1, \"b\": 2}", NULL, on_done, &a, &err);
  check(rc == 0, "async accepted", err.message);
  sp_error_free(&err);
  for (int i = 0; i < 500 && !atomic_load(&a.done); i++) usleep(10000);
  check(atomic_load(&a.done) && a.code == 0 && strcmp(a.json, "3") == 0, "async result", a.json);
  check(a.nested_rc == SP_EBADTHREAD, "async callback runs on the loop thread", "sp_execute was not refused");

  rc = sp_execute(rt, "work", "fail", "{\"message\": \"remote boom\"}", NULL, &res);
  check(rc == SP_EPYTHON && strstr(res.error.message, "remote boom") &&
            strcmp(res.error.python_type, "ValueError") == 0 && strstr(res.error.traceback, "Traceback"),
        "python error with type and traceback", res.error.message);
  sp_result_free(&res);

  sp_call_opts_t opts = SP_CALL_OPTS_INIT;
  opts.timeout_ms = 300;
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  rc = sp_execute(rt, "work", "sleep", "{\"seconds\": 3}", &opts, &res);
  clock_gettime(CLOCK_MONOTONIC, &t1);
  double took = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
  /* The node's runtime ends the call at the caller's deadline: "timed out on worker". */
  check(rc == SP_ETIMEOUT && took < 2.0 && strstr(res.error.message, "timed out on worker"),
        "deadline travels", res.error.message);
  sp_result_free(&res);

  /* Arrays travel inline both ways; a strided (reversed) input arrives C-ordered. */
  int64_t shape[1] = {4}, back[1] = {-8};
  double data[4] = {1, 2, 3, 4};
  sp_array_t arr = {.name = "value", .dtype = SP_DTYPE_FLOAT64, .ndim = 1, .shape = shape,
                    .strides = back, .data = &data[3]};
  opts.timeout_ms = 0;
  opts.arrays = &arr;
  opts.array_count = 1;
  rc = sp_execute(rt, "work", "echo", "{}", &opts, &res);
  const double *got = res.array_count == 1 ? res.arrays[0].data : NULL;
  check(rc == 0 && got && res.arrays[0].dtype == SP_DTYPE_FLOAT64 && res.arrays[0].shape[0] == 4 &&
            got[0] == 4 && got[3] == 1 && strstr(res.json, "$array"),
        "arrays both ways", rc ? res.error.message : res.json);
  sp_result_free(&res);
  opts.arrays_as_lists = 1;
  rc = sp_execute(rt, "work", "echo", "{}", &opts, &res);
  check(rc == 0 && res.array_count == 0 && strstr(res.json, "4.0") && strstr(res.json, "["),
        "returned arrays as lists", rc ? res.error.message : res.json);
  sp_result_free(&res);
  opts.arrays_as_lists = 0;
  arr.name = "nope\x01";
  rc = sp_execute(rt, "work", "echo", "{}", &opts, &res);
  check(rc != 0, "a bad array refused before sending", res.error.message);
  sp_result_free(&res);

  /* A stream: every chunk, in order, then {"chunks": N}. */
  uint64_t id = 0;
  stream_t st = {0};
  rc = sp_execute_stream(rt, "work", "count", "{\"n\": 50}", NULL, on_chunk, on_stream_done, &st, &id, &err);
  wait_done(&st.done, 10000);
  check(rc == 0 && st.code == 0 && atomic_load(&st.chunks) == 50 && strstr(st.json, "50"),
        "stream", rc ? err.message : st.json);
  sp_error_free(&err);

  /* A consumer that stops: the generator is closed on its node (marker file). */
  char args[512];
  snprintf(args, sizeof(args), "{\"n\": 100000, \"delay\": 0.005, \"marker\": \"%s\"}", argc > 2 ? argv[2] : "/dev/null");
  stream_t stop = {.stop_at = 3};
  rc = sp_execute_stream(rt, "work", "count", args, NULL, on_chunk, on_stream_done, &stop, &id, &err);
  wait_done(&stop.done, 10000);
  check(rc == 0 && stop.code == SP_ECANCELLED, "stream stopped by its consumer", stop.json);
  sp_error_free(&err);
  int closed = 0;
  for (int i = 0; i < 500 && !closed && argc > 2; i++) {
    FILE *f = fopen(argv[2], "r");
    char buf[64] = "";
    if (f) {
      closed = fgets(buf, sizeof(buf), f) != NULL && strncmp(buf, "closed", 6) == 0;
      fclose(f);
    }
    if (!closed) usleep(10000);
  }
  check(closed, "the node closes the generator of a stopped stream", "no 'closed' marker");

  /* A consumer that pauses: the node stops sending a window ahead; resume finishes it. */
  stream_t pz = {.pause_at = 1};
  rc = sp_execute_stream(rt, "work", "count", "{\"n\": 3000}", NULL, on_chunk, on_stream_done, &pz, &id, &err);
  usleep(1500000);
  int during = atomic_load(&pz.chunks);
  check(rc == 0 && during < 600 && !atomic_load(&pz.done), "a paused stream stops a window ahead",
        "too many chunks while paused");
  sp_error_free(&err);
  sp_stream_resume(rt, id);
  wait_done(&pz.done, 20000);
  check(pz.code == 0 && atomic_load(&pz.chunks) == 3000, "a resumed stream finishes", pz.json);

  /* sp_cancel() of a remote stream. */
  stream_t cc = {0};
  rc = sp_execute_stream(rt, "work", "count", "{\"n\": 100000, \"delay\": 0.01}", NULL, on_chunk,
                         on_stream_done, &cc, &id, &err);
  usleep(200000);
  int crc = sp_cancel(rt, id);
  wait_done(&cc.done, 5000);
  check(rc == 0 && crc == 0 && cc.code == SP_ECANCELLED, "sp_cancel of a remote stream", cc.json);
  sp_error_free(&err);

  char *json = NULL;
  rc = sp_tools_json(rt, "work", &json, &err);
  check(rc == 0 && strstr(json, "\"whoami\""), "tools", rc ? err.message : json);
  sp_error_free(&err);
  sp_free(json);
  rc = sp_pools_json(rt, &json, &err);
  check(rc == 0 && strcmp(json, "[\"work\"]") == 0, "pools", rc ? err.message : json);
  sp_error_free(&err);
  sp_free(json);
  rc = sp_stats_json(rt, "work", &json, &err);
  check(rc == 0 && strstr(json, "\"remote\"") && strstr(json, "\"calls_ok\""), "stats", rc ? err.message : json);
  sp_error_free(&err);
  sp_free(json);

  sp_nats_opts_t no = SP_NATS_OPTS_INIT;
  no.url = argv[1];
  rc = sp_cluster_nodes_json(&no, &json, &err);
  check(rc == 0 && strstr(json, "\"nodes\"") && strstr(json, "\"work\""), "nodes", rc ? err.message : json);
  sp_error_free(&err);
  sp_free(json);

  sp_runtime_stop(rt, 2000);
  return failures ? 1 : 0;
}

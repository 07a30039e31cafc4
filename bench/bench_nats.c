/*
 * bench_nats.c - a load driver for pools reached through NATS (and, for
 * comparison, local ones): C threads each run sp_execute() in a loop until N
 * calls are done, then one JSON line reports throughput, latency percentiles,
 * errors by code and which worker pids answered (for results carrying "pid").
 * The cluster tests use it to put load on nodes; bench/report.py for figures.
 *
 *   bench_nats --nats URL --pool P --tool T [--args JSON] [--concurrency C]
 *              [--calls N] [--timeout MS] [--idempotent] [--token T]
 *   bench_nats --config FILE --pool P ...      (the pool runs here)
 */
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "benchutil.h"
#include "snakepit.h"

#define MAX_THREADS 256

typedef struct {
  sp_runtime_t *rt;
  const char *pool, *tool, *args;
  long calls, timeout_ms;
  int idempotent;
  atomic_long next;
  double *lat_us; /* per call */
  int *codes;
  long *pids;
} load_t;

static void *run(void *arg) {
  load_t *l = arg;
  sp_call_opts_t opts = SP_CALL_OPTS_INIT;
  opts.timeout_ms = l->timeout_ms;
  opts.idempotent = l->idempotent;
  for (;;) {
    long i = atomic_fetch_add(&l->next, 1);
    if (i >= l->calls) return NULL;
    sp_result_t res;
    double t0 = bench_now_s();
    int rc = sp_execute(l->rt, l->pool, l->tool, l->args, &opts, &res);
    l->lat_us[i] = (bench_now_s() - t0) * 1e6;
    l->codes[i] = rc;
    if (rc == 0) {
      json_t *o = json_loads(res.json, 0, NULL);
      l->pids[i] = (long)json_integer_value(json_object_get(o, "pid"));
      json_decref(o);
    } else if (getenv("BENCH_NATS_VERBOSE")) {
      fprintf(stderr, "call %ld: %s\n", i, res.error.message);
    }
    sp_result_free(&res);
  }
}

int main(int argc, char **argv) {
  const char *url = NULL, *config = NULL, *token = NULL;
  load_t l = {.args = "{}", .calls = 1000};
  long conc = 8;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (strcmp(a, "--idempotent") == 0) { l.idempotent = 1; continue; }
    if (v == NULL) { fprintf(stderr, "bench_nats: %s needs a value\n", a); return 2; }
    i++;
    if (strcmp(a, "--nats") == 0) url = v;
    else if (strcmp(a, "--config") == 0) config = v;
    else if (strcmp(a, "--token") == 0) token = v;
    else if (strcmp(a, "--pool") == 0) l.pool = v;
    else if (strcmp(a, "--tool") == 0) l.tool = v;
    else if (strcmp(a, "--args") == 0) l.args = v;
    else if (strcmp(a, "--concurrency") == 0) conc = atol(v);
    else if (strcmp(a, "--calls") == 0) l.calls = atol(v);
    else if (strcmp(a, "--timeout") == 0) l.timeout_ms = atol(v);
    else { fprintf(stderr, "bench_nats: unknown option %s\n", a); return 2; }
  }
  if ((url == NULL) == (config == NULL) || !l.pool || !l.tool || conc < 1 || conc > MAX_THREADS ||
      l.calls < 1) {
    fprintf(stderr, "usage: bench_nats (--nats URL | --config FILE) --pool P --tool T [--args JSON]"
                    " [--concurrency C] [--calls N] [--timeout MS] [--idempotent] [--token T]\n");
    return 2;
  }
  sp_error_t err;
  int rc;
  if (url) {
    char yaml[2048];
    snprintf(yaml, sizeof(yaml), "pools:\n  - name: \"%s\"\n    remote: \"%s\"\n%s%s%s", l.pool, url,
             token ? "    remote_token: \"" : "", token ? token : "", token ? "\"\n" : "");
    rc = sp_runtime_start_yaml(&l.rt, yaml, strlen(yaml), "bench_nats", &err);
  } else {
    rc = sp_runtime_start_file(&l.rt, config, &err);
  }
  if (rc != 0) {
    fprintf(stderr, "bench_nats: %s\n", err.message);
    return 3;
  }
  l.lat_us = calloc((size_t)l.calls, sizeof(double));
  l.codes = calloc((size_t)l.calls, sizeof(int));
  l.pids = calloc((size_t)l.calls, sizeof(long));
  pthread_t th[MAX_THREADS];
  double t0 = bench_now_s();
  for (long i = 0; i < conc; i++) pthread_create(&th[i], NULL, run, &l);
  for (long i = 0; i < conc; i++) pthread_join(th[i], NULL);
  double secs = bench_now_s() - t0;
  json_t *errors = json_object(), *pids = json_object();
  long ok = 0;
  for (long i = 0; i < l.calls; i++) {
    if (l.codes[i] == 0) {
      ok++;
      char key[24];
      snprintf(key, sizeof(key), "%ld", l.pids[i]);
      json_object_set_new(pids, key, json_integer(json_integer_value(json_object_get(pids, key)) + 1));
    } else {
      const char *name = sp_err_name(l.codes[i]);
      json_object_set_new(errors, name, json_integer(json_integer_value(json_object_get(errors, name)) + 1));
    }
  }
  qsort(l.lat_us, (size_t)l.calls, sizeof(double), bench_cmp_double);
  json_t *out = json_pack("{s:I, s:I, s:f, s:f, s:f, s:f, s:f, s:o, s:o}", "calls",
                          (json_int_t)l.calls, "ok", (json_int_t)ok, "secs", secs, "calls_per_s",
                          (double)l.calls / secs, "p50_us", l.lat_us[l.calls / 2], "p99_us",
                          l.lat_us[(l.calls * 99) / 100 < l.calls ? (l.calls * 99) / 100 : l.calls - 1],
                          "max_ms", l.lat_us[l.calls - 1] / 1000.0, "errors", errors, "pids", pids);
  char *text = json_dumps(out, JSON_COMPACT);
  puts(text);
  free(text);
  json_decref(out);
  sp_runtime_stop(l.rt, 2000);
  free(l.lat_us);
  free(l.codes);
  free(l.pids);
  return 0;
}

/*
 * bench_stream.c - streaming through the C API: chunks per second of a tight
 * generator of small JSON items ({"n": i}, the showcase's count_up with
 * interval 0) delivered to an sp_execute_stream chunk callback, and the
 * first-chunk latency (sp_execute_stream to the first on_chunk) of a
 * one-chunk stream. Process 1x1 pool, like bench_capi's sequential figure.
 *
 * Usage: bench_stream [--quick] [--json PATH]
 * Prints a table, then {"chunks", "runs", "chunks_per_s", "first_chunk_us":
 * {p50, p99}} as its last line (and into PATH with --json).
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "benchutil.h"
#include "snakepit.h"

typedef struct {
  atomic_long chunks;
  atomic_int done;
  int code;
  double first_at;
} run_t;

static int on_chunk(const char *json, size_t len, void *ud) {
  run_t *r = ud;
  (void)json;
  (void)len;
  if (atomic_fetch_add_explicit(&r->chunks, 1, memory_order_relaxed) == 0) r->first_at = bench_now_s();
  return 0;
}

static void on_done(sp_result_t *res, void *ud) {
  run_t *r = ud;
  r->code = res->error.code;
  atomic_store(&r->done, 1);
}

/* Runs one stream of count_up(count, interval 0); its wall time, or -1. */
static double one_stream(sp_runtime_t *rt, long count, run_t *r) {
  char args[96];
  snprintf(args, sizeof(args), "{\"count\": %ld, \"interval\": 0}", count);
  memset(r, 0, sizeof(*r));
  sp_call_opts_t opts = SP_CALL_OPTS_INIT;
  opts.timeout_ms = 120000;
  sp_error_t err;
  double t0 = bench_now_s();
  if (sp_execute_stream(rt, "bench", "count_up", args, &opts, on_chunk, on_done, r, NULL, &err) !=
      0) {
    fprintf(stderr, "bench_stream: %s\n", err.message);
    sp_error_free(&err);
    return -1;
  }
  while (!atomic_load(&r->done)) {
    struct timespec ts = {0, 20000};
    nanosleep(&ts, NULL);
  }
  double t = bench_now_s() - t0;
  if (r->code != 0 || atomic_load(&r->chunks) != count) {
    fprintf(stderr, "bench_stream: stream ended with %s after %ld chunks\n", sp_err_name(r->code),
            atomic_load(&r->chunks));
    return -1;
  }
  r->first_at -= t0;
  return t;
}

int main(int argc, char **argv) {
  int quick;
  const char *json_path;
  if (bench_args(argc, argv, "bench_stream", &quick, &json_path) != 0) return 2;
  static const char yaml[] =
      "pools:\n"
      "  - name: bench\n"
      "    worker_profile: process\n"
      "    pool_size: 1\n"
      "    threads_per_worker: 1\n";
  sp_runtime_t *rt;
  sp_error_t err;
  if (sp_runtime_start_yaml(&rt, yaml, sizeof(yaml) - 1, "bench_stream", &err) != 0) {
    fprintf(stderr, "bench_stream: cannot start: %s\n", err.message);
    return 2;
  }
  long count = quick ? 50000 : 500000;
  int runs = quick ? 1 : 5;
  run_t r;
  if (one_stream(rt, quick ? 5000 : 50000, &r) < 0) return 1; /* warm-up */
  double rates[16];
  for (int i = 0; i < runs; i++) {
    double t = one_stream(rt, count, &r);
    if (t < 0) return 1;
    rates[i] = (double)count / t;
  }
  qsort(rates, (size_t)runs, sizeof(double), bench_cmp_double);
  double rate = rates[runs / 2];

  int nlat = quick ? 200 : 2000;
  double *lat = malloc(sizeof(double) * (size_t)nlat);
  if (lat == NULL) return 2;
  for (int i = 0; i < nlat; i++) {
    if (one_stream(rt, 1, &r) < 0) return 1;
    lat[i] = r.first_at * 1e6;
  }
  qsort(lat, (size_t)nlat, sizeof(double), bench_cmp_double);
  double p50 = lat[nlat / 2], p99 = lat[nlat * 99 / 100];
  free(lat);
  sp_runtime_stop(rt, 5000);

  printf("snakepit streaming benchmark (libsnakepit %s), process 1x1 pool\n", sp_version());
  printf("  chunks/s, tight generator of {\"n\": i}, %ld chunks, median of %d: %.0f\n", count,
         runs, rate);
  printf("  first-chunk latency (sp_execute_stream -> on_chunk), %d streams: p50 %.1f us, "
         "p99 %.1f us\n", nlat, p50, p99);
  printf("target: >= 200000 chunks/s: %s\n", rate >= 200000 ? "met" : "NOT met");
  char json[256];
  snprintf(json, sizeof(json),
           "{\"chunks\": %ld, \"runs\": %d, \"chunks_per_s\": %.0f, "
           "\"first_chunk_us\": {\"p50\": %.2f, \"p99\": %.2f}}\n",
           count, runs, rate, p50, p99);
  return bench_emit(json, json_path);
}

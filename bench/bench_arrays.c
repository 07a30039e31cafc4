/*
 * bench_arrays.c - arrays through shared memory against their floor, side by
 * side in one run: a tool that returns its float64 input (8 MB in, 8 MB out)
 * timed through sp_execute; the floor, two memcpys of the same bytes (one in,
 * one out) into warm buffers; the JSON path (the same values as a JSON list
 * argument and result); a tool computing a * 2 (NumPy allocates) and into an
 * output array allocated in shared memory; 4 KB, 1 MB and 64 MB points; and a
 * no-op call with no arrays, which arrays must not slow down.
 *
 * Prints one JSON object. Usage: bench_arrays ADAPTERS_DIR [--quick]
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "benchutil.h"
#include "cpuprobe.h"
#include "snakepit.h"

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static double median(double *v, int n) {
  qsort(v, (size_t)n, sizeof(double), cmp);
  return v[n / 2];
}

static int failures;

/* Median ms of `reps` calls of tool on one float64 array of n elements. */
static double time_array_call(sp_runtime_t *rt, const char *tool, double *data, size_t n,
                              int reps) {
  int64_t shape[1] = {(int64_t)n};
  sp_array_t a = {.name = "a", .dtype = SP_DTYPE_FLOAT64, .ndim = 1, .shape = shape, .data = data};
  sp_call_opts_t opts = SP_CALL_OPTS_INIT;
  opts.arrays = &a;
  opts.array_count = 1;
  opts.timeout_ms = 600000;
  double *ms = malloc(sizeof(double) * (size_t)reps);
  for (int i = -2; i < reps; i++) { /* two warm-up calls */
    sp_result_t res;
    double t0 = bench_now_s();
    int rc = sp_execute(rt, "p", tool, "{}", &opts, &res);
    double t = (bench_now_s() - t0) * 1e3;
    if (rc != 0 || res.array_count != 1 || res.arrays[0].nbytes != n * sizeof(double)) {
      fprintf(stderr, "%s: %s\n", tool, rc ? res.error.message : "wrong result");
      failures++;
    }
    sp_result_free(&res);
    if (i >= 0) ms[i] = t;
  }
  double m = median(ms, reps);
  free(ms);
  return m;
}

/* Median ms of the floor: memcpy in, memcpy out, into warm buffers. */
static double time_floor(const double *data, size_t n, int reps) {
  size_t bytes = n * sizeof(double);
  char *shared = malloc(bytes), *back = malloc(bytes);
  memset(shared, 1, bytes);
  memset(back, 1, bytes);
  double *ms = malloc(sizeof(double) * (size_t)reps);
  for (int i = -2; i < reps; i++) {
    double t0 = bench_now_s();
    memcpy(shared, data, bytes);
    memcpy(back, shared, bytes);
    double t = (bench_now_s() - t0) * 1e3;
    if (i >= 0) ms[i] = t;
  }
  if (back[bytes - 1] != ((const char *)data)[bytes - 1]) failures++;
  double m = median(ms, reps);
  free(ms);
  free(shared);
  free(back);
  return m;
}

/* Median ms of the same values as JSON: a list argument, a list result. */
static double time_json(sp_runtime_t *rt, const double *data, size_t n, int reps) {
  size_t cap = n * 26 + 16, len = 0;
  char *args = malloc(cap);
  len += (size_t)snprintf(args, cap, "{\"a\": [");
  for (size_t i = 0; i < n; i++)
    len += (size_t)snprintf(args + len, cap - len, "%s%.17g", i ? "," : "", data[i]);
  snprintf(args + len, cap - len, "]}");
  double *ms = malloc(sizeof(double) * (size_t)reps);
  for (int i = -1; i < reps; i++) {
    sp_result_t res;
    double t0 = bench_now_s();
    int rc = sp_execute(rt, "p", "echo", args, &(sp_call_opts_t){.timeout_ms = 600000}, &res);
    double t = (bench_now_s() - t0) * 1e3;
    if (rc != 0 || res.len < n) {
      fprintf(stderr, "json echo: %s\n", rc ? res.error.message : "short result");
      failures++;
    }
    sp_result_free(&res);
    if (i >= 0) ms[i] = t;
  }
  double m = median(ms, reps);
  free(ms);
  free(args);
  return m;
}

static double noop_p50_us(sp_runtime_t *rt, int calls) {
  double *us = malloc(sizeof(double) * (size_t)calls);
  for (int i = -100; i < calls; i++) {
    sp_result_t res;
    double t0 = bench_now_s();
    if (sp_execute(rt, "p", "noop", "{}", NULL, &res) != 0) failures++;
    double t = (bench_now_s() - t0) * 1e6;
    sp_result_free(&res);
    if (i >= 0) us[i] = t;
  }
  double m = median(us, calls);
  free(us);
  return m;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: bench_arrays ADAPTERS_DIR [--quick]\n");
    return 2;
  }
  int quick = argc > 2 && strcmp(argv[2], "--quick") == 0;
  int reps = quick ? 3 : 15;
  sp_set_log_handler(NULL, NULL);
  char yaml[2048];
  snprintf(yaml, sizeof(yaml),
           "pools:\n  - name: p\n    worker_profile: process\n    pool_size: 1\n"
           "    adapter: array_adapter.ArrayAdapter\n    python_path: [\"%s\"]\n"
           "    max_shared_memory: 1GiB\n    max_frame_bytes: 512MiB\n    timeout: 10m\n",
           argv[1]);
  sp_runtime_t *rt;
  sp_error_t err;
  if (sp_runtime_start_yaml(&rt, yaml, strlen(yaml), "bench_arrays.yaml", &err) != 0) {
    fprintf(stderr, "start failed: %s\n", err.message);
    return 1;
  }
  double cpu = bench_cpu_available(200);
  size_t big = (size_t)64 << 17; /* 64 MiB of float64 */
  double *data = malloc(big * sizeof(double));
  for (size_t i = 0; i < big; i++) data[i] = (double)i * 0.5;

  json_t *points = json_array();
  size_t sizes[] = {512, 131072, 1048576, big}; /* 4 KB, 1 MB, 8 MB, 64 MB */
  for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
    size_t n = sizes[k];
    int r = n > 1048576 ? (quick ? 2 : 5) : reps;
    double ours = time_array_call(rt, "echo", data, n, r);
    double floor_ms = time_floor(data, n, r);
    json_array_append_new(points, json_pack("{s:I, s:f, s:f, s:f}", "bytes",
                                            (json_int_t)(n * sizeof(double)), "ours_ms", ours,
                                            "floor_ms", floor_ms, "ratio", ours / floor_ms));
  }
  size_t n8 = 1048576;
  double json_ms = time_json(rt, data, n8, quick ? 1 : 3);
  double double_ms = time_array_call(rt, "double", data, n8, reps);
  double into_ms = time_array_call(rt, "double_into", data, n8, reps);
  double noop_us = noop_p50_us(rt, quick ? 2000 : 20000);
  json_t *out = json_pack("{s:o, s:f, s:f, s:f, s:f, s:f, s:i}", "echo", points, "json_8mb_ms",
                          json_ms, "double_8mb_ms", double_ms, "double_into_8mb_ms", into_ms,
                          "noop_p50_us", noop_us, "cpu_available", cpu, "failed", failures);
  char *s = json_dumps(out, JSON_COMPACT);
  puts(s);
  free(s);
  json_decref(out);
  free(data);
  sp_runtime_stop(rt, 2000);
  return failures ? 1 : 0;
}

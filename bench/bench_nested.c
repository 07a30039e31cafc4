/*
 * bench_nested.c - what a tool pays to call back into the host: sequential
 * latency of a plain call (a.add), of a call whose tool makes one nested call
 * (a.relay -> b.add) and of one whose tool calls a host function (a.host ->
 * "echo", run on libuv's thread pool). Two process 1x1 pools of the test
 * callback adapter.
 *
 * Usage: bench_nested ADAPTERS_DIR [--quick] [--json PATH]
 * Prints a table, then {"calls", "plain_p50_us", "nested_p50_us",
 * "host_fn_p50_us", "nested_overhead_us", "host_fn_overhead_us"} as its last
 * line (and into PATH with --json).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "benchutil.h"
#include "snakepit.h"

static double now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static int echo_fn(const char *args, char **out, sp_error_t *err, void *ud) {
  (void)err;
  (void)ud;
  *out = strdup(args);
  return *out ? 0 : SP_ENOMEM;
}

/* Median latency of n sequential calls, in microseconds; -1 on a failure. */
static double p50_us(sp_runtime_t *rt, const char *tool, const char *args, int n) {
  double *lat = malloc(sizeof(double) * (size_t)n);
  if (lat == NULL) return -1;
  for (int i = 0; i < n; i++) {
    sp_result_t res;
    double t0 = now_us();
    int rc = sp_execute(rt, "a", tool, args, NULL, &res);
    lat[i] = now_us() - t0;
    if (rc != 0) {
      fprintf(stderr, "bench_nested: %s: %s\n", tool, res.error.message);
      sp_result_free(&res);
      free(lat);
      return -1;
    }
    sp_result_free(&res);
  }
  qsort(lat, (size_t)n, sizeof(double), bench_cmp_double);
  double p = lat[n / 2];
  free(lat);
  return p;
}

int main(int argc, char **argv) {
  const char *adapters = NULL, *json_path = NULL;
  int quick = 0;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--quick") == 0) quick = 1;
    else if (strcmp(argv[i], "--json") == 0 && i + 1 < argc) json_path = argv[++i];
    else if (adapters == NULL) adapters = argv[i];
    else adapters = NULL;
  }
  if (adapters == NULL) {
    fprintf(stderr, "usage: bench_nested ADAPTERS_DIR [--quick] [--json PATH]\n");
    return 2;
  }
  char yaml[1024];
  snprintf(yaml, sizeof(yaml),
           "pools:\n"
           "  - name: a\n    worker_profile: process\n    pool_size: 1\n"
           "    adapter: callback_adapter.CallbackAdapter\n    python_path: [\"%s\"]\n"
           "  - name: b\n    worker_profile: process\n    pool_size: 1\n"
           "    adapter: callback_adapter.CallbackAdapter\n    python_path: [\"%s\"]\n",
           adapters, adapters);
  sp_runtime_t *rt;
  sp_error_t err;
  if (sp_runtime_start_yaml(&rt, yaml, strlen(yaml), "bench_nested", &err) != 0) {
    fprintf(stderr, "bench_nested: cannot start: %s\n", err.message);
    return 2;
  }
  if (sp_register_host_function(rt, "echo", echo_fn, NULL, &err) != 0) return 2;
  int n = quick ? 300 : 5000;
  static const char plain[] = "{\"a\": 1, \"b\": 2}";
  static const char nested[] = "{\"pool\": \"b\", \"tool\": \"add\", \"args\": {\"a\": 1, \"b\": 2}}";
  static const char host[] = "{\"name\": \"echo\", \"args\": {\"a\": 1}}";
  /* Warm-up: tool timings, pages, the thread pool's threads. */
  if (p50_us(rt, "add", plain, 200) < 0 || p50_us(rt, "relay", nested, 200) < 0 ||
      p50_us(rt, "host", host, 200) < 0)
    return 1;
  double tp = p50_us(rt, "add", plain, n);
  double tn = p50_us(rt, "relay", nested, n);
  double th = p50_us(rt, "host", host, n);
  sp_runtime_stop(rt, 5000);
  if (tp < 0 || tn < 0 || th < 0) return 1;
  printf("snakepit nested call benchmark (libsnakepit %s), two process 1x1 pools, %d calls each\n",
         sp_version(), n);
  printf("  plain call a.add, p50:                          %8.1f us\n", tp);
  printf("  a.relay -> nested b.add, p50:                   %8.1f us (+%.1f us)\n", tn, tn - tp);
  printf("  a.host -> host function on libuv's pool, p50:   %8.1f us (+%.1f us)\n", th, th - tp);
  char json[256];
  snprintf(json, sizeof(json),
           "{\"calls\": %d, \"plain_p50_us\": %.1f, \"nested_p50_us\": %.1f, "
           "\"host_fn_p50_us\": %.1f, \"nested_overhead_us\": %.1f, \"host_fn_overhead_us\": %.1f}\n",
           n, tp, tn, th, tn - tp, th - tp);
  return bench_emit(json, json_path);
}

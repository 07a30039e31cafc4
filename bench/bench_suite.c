/*
 * bench_suite.c - the benchmark figures beyond call overhead: NumPy scaling
 * across threads, memory of a thread pool vs a process pool of the same
 * capacity, pool start-up time, and pure-Python CPU scaling across threads (which
 * needs a free-threaded Python to scale). Prints one JSON object.
 * Usage: bench_suite numpy|memory|startup|purepy [--quick]
 */
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "benchutil.h"
#include "cpuprobe.h"
#include "snakepit.h"

#define SHOWCASE "snakepit_bridge.adapters.threaded_showcase.ThreadedShowcaseAdapter"

static sp_runtime_t *start_pool(const char *profile, int size, int threads) {
  char yaml[512];
  snprintf(yaml, sizeof(yaml),
           "pools:\n  - name: p\n    worker_profile: %s\n    pool_size: %d\n"
           "    threads_per_worker: %d\n    adapter: " SHOWCASE "\n    pipeline_depth: 0\n",
           profile, size, threads);
  sp_runtime_t *rt = NULL;
  sp_error_t err;
  if (sp_runtime_start_yaml(&rt, yaml, strlen(yaml), "bench", &err) != 0) {
    fprintf(stderr, "bench_suite: start failed: %s\n", err.message);
    exit(1);
  }
  return rt;
}

typedef struct {
  sp_runtime_t *rt;
  const char *tool, *args;
  int calls;
  int failed;
} client_t;

static void *client(void *arg) {
  client_t *c = arg;
  for (int i = 0; i < c->calls; i++) {
    sp_result_t r;
    if (sp_execute(c->rt, "p", c->tool, c->args, NULL, &r) != 0) c->failed++;
    sp_result_free(&r);
  }
  return NULL;
}

/* Seconds for `clients` threads each making `calls` calls. */
static double timed_calls(sp_runtime_t *rt, const char *tool, const char *args, int clients,
                          int calls, int *failed) {
  pthread_t th[64];
  client_t cl[64];
  double t0 = bench_now_s();
  for (int i = 0; i < clients; i++) {
    cl[i] = (client_t){rt, tool, args, calls, 0};
    pthread_create(&th[i], NULL, client, &cl[i]);
  }
  for (int i = 0; i < clients; i++) {
    pthread_join(th[i], NULL);
    *failed += cl[i].failed;
  }
  return bench_now_s() - t0;
}

/*
 * NumPy scaling: 2 callers of a 200x200 matmul against thread 1x1, thread 1x2
 * and process 2x1 pools. All three pools stay up and the measurement goes
 * round-robin over them in short chunks, so that a stretch of the run where
 * the (shared, virtual) machine lent out its second CPU weighs on every pool
 * alike instead of on whichever was measured then. Each pool's rate is its
 * calls over its own measured time. A CPU probe runs before and after.
 */
typedef struct {
  const char *name, *profile;
  int size, threads;
} bench_pool_t;

/*
 * Calls/s of 2 callers of `tool` against each of the pools, measured
 * round-robin in chunks (see above), with a CPU probe before and after.
 * Returns the failed calls.
 */
static int round_robin(const bench_pool_t *pools, int n, const char *tool, const char *args,
                       int rounds, int chunk, double *rate, double cpu[2]) {
  sp_runtime_t *rt[8];
  double secs[8] = {0}, calls[8] = {0};
  int failed = 0;
  for (int k = 0; k < n; k++) {
    rt[k] = start_pool(pools[k].profile, pools[k].size, pools[k].threads);
    timed_calls(rt[k], tool, args, 2, 5, &failed); /* warm-up */
  }
  cpu[0] = bench_cpu_available(200);
  for (int i = 0; i < rounds; i++) {
    for (int k = 0; k < n; k++) {
      secs[k] += timed_calls(rt[k], tool, args, 2, chunk, &failed);
      calls[k] += 2.0 * chunk;
    }
  }
  cpu[1] = bench_cpu_available(200);
  for (int k = 0; k < n; k++) {
    rate[k] = calls[k] / secs[k];
    sp_runtime_stop(rt[k], 2000);
  }
  return failed;
}

static void numpy_bench(int quick) {
  static const bench_pool_t pools[] = {{"thread_1x1", "thread", 1, 1},
                                       {"thread_1x2", "thread", 1, 2},
                                       {"process_2x1", "process", 2, 1}};
  double r[3], cpu[2];
  int rounds = quick ? 1 : 6;
  int failed = round_robin(pools, 3, "matrix_multiply", "{\"size\": 200}", rounds, quick ? 20 : 40,
                           r, cpu);
  printf("{\"matmul_200_calls_per_s\": {\"%s\": %.1f, \"%s\": %.1f, \"%s\": %.1f}, "
         "\"thread_speedup_2_vs_1\": %.3f, \"cpu_avail\": [%.2f, %.2f], \"rounds\": %d, "
         "\"failed\": %d}\n",
         pools[0].name, r[0], pools[1].name, r[1], pools[2].name, r[2], r[1] / r[0], cpu[0], cpu[1],
         rounds, failed);
}

/*
 * Pure-Python CPU scaling: 2 callers of the showcase's stress_test (a
 * pure-Python loop, ~15 ms per call) against thread 1x1 and 1x2 pools. On a GIL
 * build the two threads of 1x2 take turns (about 1.0x); on a free-threaded one
 * they run at once (up to 2x with 2 CPUs free).
 */
static void purepy_bench(int quick) {
  static const bench_pool_t pools[] = {{"thread_1x1", "thread", 1, 1},
                                       {"thread_1x2", "thread", 1, 2}};
  double r[2], cpu[2];
  int rounds = quick ? 1 : 6;
  int failed = round_robin(pools, 2, "stress_test", "{\"iterations\": 200000}", rounds,
                           quick ? 4 : 10, r, cpu);
  printf("{\"stress_test_calls_per_s\": {\"%s\": %.1f, \"%s\": %.1f}, "
         "\"thread_speedup_2_vs_1\": %.3f, \"cpu_avail\": [%.2f, %.2f], \"python\": \"%s\", "
         "\"rounds\": %d, \"failed\": %d}\n",
         pools[0].name, r[0], pools[1].name, r[1], r[1] / r[0], cpu[0], cpu[1], SP_BENCH_PYTHON,
         rounds, failed);
}

/* Sum of the workers' RSS (KiB) after every slot ran a call. */
static long pool_rss_kb(const char *profile, int size, int threads) {
  sp_runtime_t *rt = start_pool(profile, size, threads);
  int failed = 0;
  timed_calls(rt, "matrix_multiply", "{\"size\": 50}", 16, 4, &failed);
  char *json = NULL;
  sp_error_t err;
  long total = 0;
  if (sp_stats_json(rt, "p", &json, &err) == 0) {
    json_t *o = json_loads(json, 0, NULL);
    size_t i;
    json_t *w;
    json_array_foreach(json_object_get(o, "workers"), i, w) total += (long)json_integer_value(json_object_get(w, "rss_kb"));
    json_decref(o);
    sp_free(json);
  }
  sp_runtime_stop(rt, 2000);
  return total;
}

static void memory_bench(void) {
  long thread_kb = pool_rss_kb("thread", 1, 16);
  long process_kb = pool_rss_kb("process", 16, 1);
  printf("{\"thread_1x16_rss_mib\": %.1f, \"process_16x1_rss_mib\": %.1f, \"ratio\": %.3f}\n",
         thread_kb / 1024.0, process_kb / 1024.0, (double)thread_kb / (double)process_kb);
}

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* Time until `size` process workers are ready, in ms. */
static double ready_ms(int size) {
  double t0 = bench_now_s();
  sp_runtime_t *rt = start_pool("process", size, 1);
  double ms = (bench_now_s() - t0) * 1e3;
  sp_runtime_stop(rt, 2000);
  return ms;
}

/* 8 workers against 1, interleaved so both see the same machine. */
static void startup_bench(int quick) {
  int runs = quick ? 1 : 5;
  double ms8[16], ms1[16];
  for (int i = 0; i < runs; i++) {
    ms1[i] = ready_ms(1);
    ms8[i] = ready_ms(8);
  }
  qsort(ms8, (size_t)runs, sizeof(double), cmp);
  qsort(ms1, (size_t)runs, sizeof(double), cmp);
  printf("{\"process_8_ready_ms_median\": %.1f, \"process_1_ready_ms_median\": %.1f, "
         "\"runs\": %d, \"min_ms\": %.1f, \"max_ms\": %.1f}\n",
         ms8[runs / 2], ms1[runs / 2], runs, ms8[0], ms8[runs - 1]);
}

int main(int argc, char **argv) {
  int quick = argc > 2 && strcmp(argv[2], "--quick") == 0;
  if (argc < 2) goto usage;
  sp_set_log_handler(NULL, NULL);
  if (strcmp(argv[1], "numpy") == 0) numpy_bench(quick);
  else if (strcmp(argv[1], "memory") == 0) memory_bench();
  else if (strcmp(argv[1], "startup") == 0) startup_bench(quick);
  else if (strcmp(argv[1], "purepy") == 0) purepy_bench(quick);
  else goto usage;
  return 0;
usage:
  fprintf(stderr, "usage: bench_suite numpy|memory|startup|purepy [--quick]\n");
  return 2;
}

/*
 * quickstart.c - the C API in one page: start the built-in pools (or a YAML
 * config given as argv[1]), call tools in both profiles, run calls concurrently,
 * print results and a summary of the pool statistics, stop. `make run` runs this
 * program; `examples/Makefile` and `examples/CMakeLists.txt` build it against an
 * installed snakepit.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <snakepit.h>

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Calls one tool and prints its result or its error. Returns 0 on success. */
static int show(sp_runtime_t *rt, const char *pool, const char *tool, const char *args) {
  sp_result_t res;
  int rc = sp_execute(rt, pool, tool, args, NULL, &res);
  if (rc == 0) {
    printf("%-9s %-18s %s\n          -> %s\n", pool, tool, args, res.json);
  } else {
    printf("%-9s %-18s %s\n          -> %s error: %s\n", pool, tool, args,
           sp_category_name(res.error.category), res.error.message);
  }
  sp_result_free(&res);
  return rc;
}

typedef struct {
  int pending;
  int failed;
} batch_t;

static void on_done(sp_result_t *res, void *ud) {
  batch_t *b = ud; /* runs on the runtime's loop thread, one at a time */
  if (res->error.code != 0) b->failed++;
  __atomic_sub_fetch(&b->pending, 1, __ATOMIC_RELEASE);
}

/* Runs n sleep(seconds) calls at once with sp_execute_async; returns wall time. */
static double concurrent_sleeps(sp_runtime_t *rt, const char *pool, int n, double seconds) {
  batch_t b = {n, 0};
  char args[64];
  snprintf(args, sizeof(args), "{\"seconds\": %.2f}", seconds);
  double t0 = now_s();
  for (int i = 0; i < n; i++) {
    sp_error_t err;
    if (sp_execute_async(rt, pool, "sleep", args, NULL, on_done, &b, &err) != 0) {
      fprintf(stderr, "async call failed: %s\n", err.message);
      sp_error_free(&err);
      __atomic_sub_fetch(&b.pending, 1, __ATOMIC_RELEASE);
      b.failed++;
    }
  }
  while (__atomic_load_n(&b.pending, __ATOMIC_ACQUIRE) > 0) {
    struct timespec ts = {0, 1000000};
    nanosleep(&ts, NULL);
  }
  return b.failed ? -1.0 : now_s() - t0;
}

int main(int argc, char **argv) {
  sp_runtime_t *rt = NULL;
  sp_error_t err;
  const char *config = argc > 1 ? argv[1] : NULL;

  printf("Starting %s ...\n", config ? config : "the built-in pools (hpc_pool: thread 2x4, default: process 2x1)");
  double t0 = now_s();
  if (sp_runtime_start_file(&rt, config, &err) != 0) {
    fprintf(stderr, "start failed: %s\n%s", err.message, err.traceback);
    sp_error_free(&err);
    return 1;
  }
  printf("Ready in %.0f ms\n\n", (now_s() - t0) * 1e3);

  int failures = 0;
  failures += show(rt, "default", "ping", "{}") != 0;
  failures += show(rt, "hpc_pool", "ping", "{}") != 0;
  failures += show(rt, "hpc_pool", "compute_intensive", "{\"data\": [1, 2, 3]}") != 0;
  failures += show(rt, "hpc_pool", "matrix_multiply", "{\"a\": [[1, 2], [3, 4]], \"b\": [[5, 6], [7, 8]]}") != 0;
  failures += show(rt, "default", "batch_process", "{\"items\": [1, 2, 3, 4]}") != 0;

  printf("\nErrors are values, and the pools keep serving:\n");
  show(rt, "hpc_pool", "no_such_tool", "{}");
  show(rt, "hpc_pool", "compute_intensive", "{\"data\": [1, 2,");
  show(rt, "hpc_pool", "compute_intensive", "{}");
  show(rt, "nowhere", "ping", "{}");

  printf("\n8 calls of sleep(0.25 s) at once:\n");
  double thread_s = concurrent_sleeps(rt, "hpc_pool", 8, 0.25);
  double process_s = concurrent_sleeps(rt, "default", 8, 0.25);
  printf("  hpc_pool (thread, 2 workers x 4 threads): %.2f s\n", thread_s);
  printf("  default  (process, 2 workers x 1 thread): %.2f s\n", process_s);
  if (thread_s < 0 || process_s < 0) failures++;

  printf("\nThread statistics reported by the adapter (get_thread_stats):\n");
  failures += show(rt, "hpc_pool", "get_thread_stats", "{}") != 0;

  /* sp_stats_json() is the statistics for programs; sp_stats_text() renders them
   * for people (`snakepit stats` prints the same table). */
  char *stats = NULL, *table = NULL;
  if (sp_stats_json(rt, NULL, &stats, &err) == 0 && sp_stats_text(stats, 0, &table, &err) == 0) {
    printf("\nPool statistics (sp_stats_json + sp_stats_text; UTIL: share of thread time in calls):\n%s",
           table);
  } else {
    fprintf(stderr, "statistics: %s\n", err.message);
    sp_error_free(&err);
    failures++;
  }
  sp_free(table);
  sp_free(stats);

  sp_runtime_stop(rt, 5000);
  printf("\n%s\n", failures ? "quickstart: FAILED" : "quickstart: OK");
  return failures ? 1 : 0;
}

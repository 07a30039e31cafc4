/*
 * bench_session.c - what a session costs: the showcase's no-op `ping` called
 * plainly and in a session, in the same run, on the same runtime, in
 * alternating rounds (so drift of a shared machine hits both alike):
 *  - sequential: one caller, process 2x1 pool, hint mode; p50 and mean;
 *  - 4 callers: thread 1x4 pool, each caller its own session (strict); calls/s.
 *
 * Usage: bench_session [--quick] [--json PATH]
 * Prints a table, then the figures as one JSON line (and into PATH with --json):
 * {"seq": {"plain": {p50_us, mean_us}, "session": {...}}, "par4": {"plain":
 * calls_per_s, "session": calls_per_s}, "rounds": N}.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "benchutil.h"
#include "snakepit.h"

static sp_runtime_t *start(const char *profile, int size, int threads) {
  char yaml[512];
  snprintf(yaml, sizeof(yaml),
           "pools:\n  - name: bench\n    worker_profile: %s\n    pool_size: %d\n"
           "    threads_per_worker: %d\n",
           profile, size, threads);
  sp_runtime_t *rt = NULL;
  sp_error_t err;
  if (sp_runtime_start_yaml(&rt, yaml, strlen(yaml), "bench_session", &err) != 0) {
    fprintf(stderr, "bench_session: %s\n", err.message);
    exit(2);
  }
  return rt;
}

static long failures;

static int call(sp_runtime_t *rt, const sp_call_opts_t *o) {
  sp_result_t res;
  int rc = sp_execute(rt, "bench", "ping", "{}", o, &res);
  if (rc != 0 && failures++ == 0) fprintf(stderr, "bench_session: %s\n", res.error.message);
  sp_result_free(&res);
  return rc;
}

typedef struct {
  double p50_us, mean_us;
} seq_t;

/* One caller: rounds of `per` plain calls then `per` session calls. */
static void sequential(int rounds, int per, seq_t *plain, seq_t *sess) {
  sp_runtime_t *rt = start("process", 2, 1);
  sp_call_opts_t so = SP_CALL_OPTS_INIT;
  so.session = "bench-seq";
  so.session_mode = SP_SESSION_HINT;
  for (int i = 0; i < 2000; i++) call(rt, i % 2 ? &so : NULL); /* warm-up */
  size_t n = (size_t)rounds * (size_t)per;
  double *lat[2] = {malloc(n * sizeof(double)), malloc(n * sizeof(double))};
  double sum[2] = {0, 0};
  size_t k[2] = {0, 0};
  for (int r = 0; r < rounds; r++) {
    for (int which = 0; which < 2; which++) {
      for (int i = 0; i < per; i++) {
        double t0 = bench_now_s();
        call(rt, which ? &so : NULL);
        double us = (bench_now_s() - t0) * 1e6;
        lat[which][k[which]++] = us;
        sum[which] += us;
      }
    }
  }
  seq_t *out[2] = {plain, sess};
  for (int w = 0; w < 2; w++) {
    qsort(lat[w], k[w], sizeof(double), bench_cmp_double);
    out[w]->p50_us = lat[w][k[w] / 2];
    out[w]->mean_us = sum[w] / (double)k[w];
    free(lat[w]);
  }
  sp_runtime_stop(rt, 5000);
}

typedef struct {
  sp_runtime_t *rt;
  int session; /* 0: plain calls */
  int index;
  double seconds;
  long calls;
} caller_t;

static void *caller_main(void *p) {
  caller_t *c = p;
  char sid[32];
  snprintf(sid, sizeof(sid), "bench-par-%d", c->index);
  sp_call_opts_t so = SP_CALL_OPTS_INIT;
  so.session = sid;
  so.session_mode = SP_SESSION_STRICT;
  double end = bench_now_s() + c->seconds;
  while (bench_now_s() < end)
    if (call(c->rt, c->session ? &so : NULL) == 0) c->calls++;
  return NULL;
}

/* 4 callers for `seconds`, plain or in sessions; calls/s. */
static double parallel(sp_runtime_t *rt, int session, double seconds) {
  enum { N = 4 };
  pthread_t th[N];
  caller_t c[N];
  double t0 = bench_now_s();
  for (int i = 0; i < N; i++) {
    c[i] = (caller_t){rt, session, i, seconds, 0};
    pthread_create(&th[i], NULL, caller_main, &c[i]);
  }
  long total = 0;
  for (int i = 0; i < N; i++) {
    pthread_join(th[i], NULL);
    total += c[i].calls;
  }
  return (double)total / (bench_now_s() - t0);
}

int main(int argc, char **argv) {
  int quick;
  const char *json_path;
  if (bench_args(argc, argv, "bench_session", &quick, &json_path) != 0) return 2;
  sp_set_log_handler(NULL, NULL);
  int rounds = quick ? 4 : 20;
  seq_t plain, sess;
  sequential(rounds, quick ? 250 : 1000, &plain, &sess);

  sp_runtime_t *rt = start("thread", 1, 4);
  parallel(rt, 1, quick ? 0.2 : 1.0); /* warm-up, sessions bound */
  parallel(rt, 0, quick ? 0.2 : 1.0);
  double par[2] = {0, 0};
  int par_rounds = quick ? 2 : 6;
  for (int r = 0; r < par_rounds; r++)
    for (int s = 0; s < 2; s++) par[s] += parallel(rt, s, quick ? 0.3 : 1.5) / par_rounds;
  sp_runtime_stop(rt, 5000);

  printf("%-44s %12s %12s %8s\n", "figure", "plain", "session", "ratio");
  printf("%-44s %10.1f us %10.1f us %7.3fx\n", "sequential p50, process 2x1 (hint)", plain.p50_us,
         sess.p50_us, sess.p50_us / plain.p50_us);
  printf("%-44s %10.1f us %10.1f us %7.3fx\n", "sequential mean, process 2x1 (hint)",
         plain.mean_us, sess.mean_us, sess.mean_us / plain.mean_us);
  printf("%-44s %12.0f %12.0f %7.3fx\n", "4 callers, thread 1x4 (strict), calls/s", par[0], par[1],
         par[1] / par[0]);
  char line[512];
  snprintf(line, sizeof(line),
           "{\"seq\": {\"plain\": {\"p50_us\": %.2f, \"mean_us\": %.2f}, \"session\": {\"p50_us\": "
           "%.2f, \"mean_us\": %.2f}}, \"par4\": {\"plain\": %.1f, \"session\": %.1f}, "
           "\"rounds\": %d, \"failures\": %ld}",
           plain.p50_us, plain.mean_us, sess.p50_us, sess.mean_us, par[0], par[1], rounds,
           failures);
  puts(line);
  if (json_path != NULL) {
    FILE *f = fopen(json_path, "w");
    if (f != NULL) {
      fprintf(f, "%s\n", line);
      fclose(f);
    }
  }
  return failures ? 1 : 0;
}

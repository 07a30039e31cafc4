/*
 * bench_preload.c - one copy of a model per pool: a process pool whose
 * adapter's constructor fills a NumPy array of MODEL MiB (tests/adapters/
 * model_adapter.py), with 1 and 8 workers, with and without preload. For each:
 * the time until every worker is ready (sp_runtime_start), the pool's total
 * PSS (fork server included) and 32 checksum calls spread over the workers,
 * each compared with the sum computed here. Prints one JSON object.
 * Usage: bench_preload ADAPTERS_DIR [--quick]
 */
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "benchutil.h"
#include "snakepit.h"

static int g_mib;

/* What checksum(start, 4096) returns for arange(g_mib MiB / 8). */
static double expected_sum(long long start) {
  long long n = (long long)g_mib * 131072;
  double sum = 0;
  for (long long i = start; i < n; i += 4096) sum += (double)i;
  return sum;
}

typedef struct {
  sp_runtime_t *rt;
  int calls, wrong;
} client_t;

static void *client(void *arg) {
  client_t *c = arg;
  for (int i = 0; i < c->calls; i++) {
    char args[64];
    int start = rand() % 4096;
    snprintf(args, sizeof(args), "{\"start\": %d}", start);
    sp_result_t res;
    int rc = sp_execute(c->rt, "m", "checksum", args, NULL, &res);
    json_t *o = rc == 0 ? json_loads(res.json, 0, NULL) : NULL;
    if (o == NULL || json_real_value(json_object_get(o, "sum")) != expected_sum(start)) c->wrong++;
    json_decref(o);
    sp_result_free(&res);
  }
  return NULL;
}

static json_t *measure(const char *adapters, int size, int preload) {
  char yaml[1024];
  snprintf(yaml, sizeof(yaml),
           "pools:\n  - name: m\n    pool_size: %d\n    preload: %s\n"
           "    adapter: model_adapter.ModelAdapter\n    adapter_args: [\"%d\"]\n"
           "    python_path: [\"%s\"]\n    pipeline_depth: 0\n",
           size, preload ? "true" : "false", g_mib, adapters);
  sp_runtime_t *rt = NULL;
  sp_error_t err;
  double t0 = bench_now_s();
  if (sp_runtime_start_yaml(&rt, yaml, strlen(yaml), "bench", &err) != 0) {
    fprintf(stderr, "bench_preload: start failed: %s\n", err.message);
    exit(1);
  }
  double ready_ms = (bench_now_s() - t0) * 1e3;
  enum { CLIENTS = 4 };
  pthread_t th[CLIENTS];
  client_t cl[CLIENTS];
  for (int i = 0; i < CLIENTS; i++) {
    cl[i] = (client_t){rt, 8, 0};
    pthread_create(&th[i], NULL, client, &cl[i]);
  }
  int wrong = 0;
  for (int i = 0; i < CLIENTS; i++) {
    pthread_join(th[i], NULL);
    wrong += cl[i].wrong;
  }
  char *text = NULL;
  sp_stats_json(rt, "m", &text, &err);
  json_t *st = text ? json_loads(text, 0, NULL) : NULL;
  sp_free(text);
  json_t *mem = json_object_get(st, "memory");
  json_t *out = json_pack("{s:i, s:b, s:f, s:f, s:f, s:i}", "workers", size, "preload", preload,
                          "ready_ms", ready_ms, "pss_mib",
                          (double)json_integer_value(json_object_get(mem, "pss_kb")) / 1024,
                          "rss_mib",
                          (double)json_integer_value(json_object_get(mem, "rss_kb")) / 1024,
                          "wrong_results", wrong);
  json_decref(st);
  sp_runtime_stop(rt, 5000);
  return out;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: bench_preload ADAPTERS_DIR [--quick]\n");
    return 2;
  }
  int quick = argc > 2 && strcmp(argv[2], "--quick") == 0;
  g_mib = quick ? 50 : 200;
  json_t *runs = json_array();
  int wrong = 0;
  for (int preload = 1; preload >= 0; preload--) {
    for (int size = 1; size <= 8; size += 7) {
      json_t *m = measure(argv[1], size, preload);
      wrong += (int)json_integer_value(json_object_get(m, "wrong_results"));
      json_array_append_new(runs, m);
    }
  }
  json_t *out = json_pack("{s:i, s:o, s:i}", "model_mib", g_mib, "runs", runs, "failed", wrong);
  char *s = json_dumps(out, JSON_COMPACT);
  puts(s);
  free(s);
  json_decref(out);
  return wrong ? 1 : 0;
}

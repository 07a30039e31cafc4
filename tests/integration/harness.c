/*
 * harness.c - integration test helpers (see harness.h).
 */
#include <stdatomic.h>

#include "harness.h"

#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

void h_yaml(char *buf, size_t cap, const char *name, const char *profile, int size, int threads,
            const char *adapter, const char *extra) {
  char sized[32] = "";
  if (size > 0) snprintf(sized, sizeof(sized), "    pool_size: %d\n", size);
  snprintf(buf, cap,
           "pools:\n"
           "  - name: %s\n"
           "    worker_profile: %s\n"
           "%s"
           "    threads_per_worker: %d\n"
           "    adapter: %s\n"
           "    python_path: [\"%s\"]\n"
           "%s",
           name, profile, sized, threads, adapter, SP_TEST_ADAPTERS, extra ? extra : "");
}

sp_runtime_t *h_start(const char *yaml) {
  sp_runtime_t *rt = NULL;
  sp_error_t err;
  int rc = sp_runtime_start_yaml(&rt, yaml, strlen(yaml), "test.yaml", &err);
  if (rc != 0) {
    print_error("start failed: %s\n%s\n", err.message, err.traceback);
    sp_error_free(&err);
    fail();
  }
  return rt;
}

sp_runtime_t *h_start_pool(const char *name, const char *profile, int size, int threads,
                           const char *adapter, const char *extra) {
  char yaml[2048];
  h_yaml(yaml, sizeof(yaml), name, profile, size, threads, adapter, extra);
  return h_start(yaml);
}

sp_runtime_t *h_start_proc_thr(const char *adapter, int proc_size, int thr_threads) {
  char proc[1024], thr[1024], yaml[2048];
  h_yaml(proc, sizeof(proc), "proc", "process", proc_size, 1, adapter, NULL);
  h_yaml(thr, sizeof(thr), "thr", "thread", 1, thr_threads, adapter, NULL);
  /* The second config's entry without its own "pools:" line. */
  snprintf(yaml, sizeof(yaml), "%s%s", proc, thr + strlen("pools:\n"));
  return h_start(yaml);
}

double h_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void h_sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

json_t *h_pool_stats(sp_runtime_t *rt, const char *pool) {
  char *text = NULL;
  sp_error_t err;
  assert_int_equal(sp_stats_json(rt, pool, &text, &err), 0);
  json_t *o = json_loads(text, 0, NULL);
  sp_free(text);
  assert_non_null(o);
  return o;
}

char *h_call_ok(sp_runtime_t *rt, const char *pool, const char *tool, const char *args) {
  sp_result_t res;
  int rc = sp_execute(rt, pool, tool, args, NULL, &res);
  if (rc != 0) {
    print_error("%s/%s(%s) failed: %s %s\n", pool, tool, args, sp_err_name(rc), res.error.message);
    fail();
  }
  assert_non_null(res.json);
  return res.json;
}

void h_call_fails(sp_runtime_t *rt, const char *pool, const char *tool, const char *args,
                  int code, sp_error_t *err) {
  sp_result_t res;
  int rc = sp_execute(rt, pool, tool, args, NULL, &res);
  if (rc != code) {
    print_error("%s/%s(%s): expected %s, got %s: %s\n", pool, tool, args, sp_err_name(code),
                sp_err_name(rc), rc ? res.error.message : res.json);
    sp_result_free(&res);
    fail();
  }
  assert_null(res.json);
  assert_int_equal(res.error.code, code);
  assert_int_equal(res.error.category, sp_err_category(code));
  assert_true(res.error.message[0] != '\0');
  /* The texts stay in one slot until the next failing call replaces them. */
  static sp_error_t last = SP_ERROR_INIT;
  sp_error_free(&last);
  last = res.error;
  if (err) *err = last;
}

typedef struct {
  sp_runtime_t *rt;
  const char *pool, *tool, *args;
  int calls;
  int ok, failed;
} client_t;

static void *client_main(void *arg) {
  client_t *c = arg;
  for (int i = 0; i < c->calls; i++) {
    sp_result_t res;
    if (sp_execute(c->rt, c->pool, c->tool, c->args, NULL, &res) == 0) c->ok++;
    else c->failed++;
    sp_result_free(&res);
  }
  return NULL;
}

double h_concurrent(sp_runtime_t *rt, const char *pool, const char *tool, const char *args,
                    int threads, int calls, int *ok, int *failed) {
  pthread_t *th = calloc((size_t)threads, sizeof(*th));
  client_t *cl = calloc((size_t)threads, sizeof(*cl));
  assert_non_null(th);
  assert_non_null(cl);
  double t0 = h_now();
  for (int i = 0; i < threads; i++) {
    cl[i] = (client_t){rt, pool, tool, args, calls, 0, 0};
    assert_int_equal(pthread_create(&th[i], NULL, client_main, &cl[i]), 0);
  }
  int nok = 0, nfail = 0;
  for (int i = 0; i < threads; i++) {
    pthread_join(th[i], NULL);
    nok += cl[i].ok;
    nfail += cl[i].failed;
  }
  double t = h_now() - t0;
  if (ok) *ok = nok;
  if (failed) *failed = nfail;
  free(th);
  free(cl);
  return t;
}

long long h_json_int(const char *json, const char *key) {
  json_error_t jerr;
  json_t *o = json_loads(json, 0, &jerr);
  if (o == NULL || !json_is_integer(json_object_get(o, key))) {
    print_error("no integer '%s' in %s\n", key, json);
    fail();
  }
  long long v = json_integer_value(json_object_get(o, key));
  json_decref(o);
  return v;
}

int h_proc_stat(long pid, char *state, long *ppid) {
  char path[64], buf[512];
  snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
  FILE *f = fopen(path, "r");
  if (f == NULL) return -1;
  size_t n = fread(buf, 1, sizeof(buf) - 1, f);
  fclose(f);
  buf[n] = '\0';
  /* "PID (COMM) S PPID ...": COMM may hold spaces and parentheses, so parse after the last ')'. */
  const char *p = strrchr(buf, ')');
  if (p == NULL || sscanf(p + 1, " %c %ld", state, ppid) != 2) return -1;
  return 0;
}

void h_expect_startup_timeout(int size, const char *adapter) {
  char yaml[2048];
  h_yaml(yaml, sizeof(yaml), "hang", "process", size, 1, adapter, "    startup_timeout: 1s\n");
  sp_runtime_t *rt = NULL;
  sp_error_t err;
  double t0 = h_now();
  assert_int_equal(sp_runtime_start_yaml(&rt, yaml, strlen(yaml), "t.yaml", &err), SP_ESTARTUP);
  double t = h_now() - t0;
  assert_true(t >= 0.9 && t < 8.0);
  assert_non_null(strstr(err.message, "startup_timeout"));
  assert_non_null(strstr(err.message, "'hang'"));
  sp_error_free(&err);
}

void h_async_done(sp_result_t *res, void *ud) {
  h_async_t *a = ud;
  a->code = res->error.code;
  a->json = res->json;
  res->json = NULL;
  atomic_store(&a->done, 1);
}

int h_async_wait(h_async_t *a, double timeout_s) {
  double t0 = h_now();
  while (!atomic_load(&a->done) && h_now() - t0 < timeout_s) h_sleep_ms(5);
  return atomic_load(&a->done);
}

static double cpu_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void *burn(void *arg) {
  double end = h_now() + *(double *)arg;
  volatile unsigned long x = 0;
  while (h_now() < end) x++;
  return NULL;
}

double h_available_cpus(void) {
  double span = 0.3;
  pthread_t a, b;
  double c0 = cpu_seconds(), t0 = h_now();
  pthread_create(&a, NULL, burn, &span);
  pthread_create(&b, NULL, burn, &span);
  pthread_join(a, NULL);
  pthread_join(b, NULL);
  return (cpu_seconds() - c0) / (h_now() - t0);
}

void h_skip_without_module(sp_runtime_t *rt, const char *pool, const char *module) {
  char args[256];
  snprintf(args, sizeof(args), "{\"name\": \"%s\"}", module);
  char *r = h_call_ok(rt, pool, "has_module", args);
  int have = strcmp(r, "true") == 0;
  free(r);
  if (have) return;
  sp_runtime_stop(rt, 1000);
  print_message("skipped: the workers' Python cannot import %s (none is installed for it)\n",
                module);
  skip();
}

sp_runtime_t *h_start_one_and_two(void) {
  char yaml[4096];
  snprintf(yaml, sizeof(yaml),
           "pools:\n"
           "  - name: two\n    worker_profile: thread\n    pool_size: 1\n    threads_per_worker: 2\n"
           "    adapter: " TESTING_ADAPTER "\n    python_path: [\"%s\"]\n"
           "  - name: one\n    worker_profile: thread\n    pool_size: 1\n    threads_per_worker: 1\n"
           "    adapter: " TESTING_ADAPTER "\n    python_path: [\"%s\"]\n",
           SP_TEST_ADAPTERS, SP_TEST_ADAPTERS);
  return h_start(yaml);
}

double h_best_pair(sp_runtime_t *rt, const char *pool, const char *tool, const char *args,
                   int trials) {
  double best = 1e9;
  for (int i = 0; i < trials; i++) {
    int ok = 0, failed = 0;
    double t = h_concurrent(rt, pool, tool, args, 2, 1, &ok, &failed);
    assert_int_equal(ok, 2);
    if (t < best) best = t;
  }
  return best;
}

double h_assert_marker(const char *path, const char *prefix, double timeout_s) {
  double t0 = h_now();
  char text[64] = "";
  while (h_now() - t0 < timeout_s) {
    FILE *f = fopen(path, "r");
    if (f != NULL) {
      size_t n = fread(text, 1, sizeof(text) - 1, f);
      text[n] = '\0';
      fclose(f);
      if (n > 0) break;
    }
    h_sleep_ms(5);
  }
  double took = h_now() - t0;
  unlink(path);
  if (strncmp(text, prefix, strlen(prefix)) != 0)
    fail_msg("marker %s holds '%s', expected '%s'", path, text, prefix);
  return took;
}

/*
 * bench_capi.c - per-call overhead and throughput of the libsnakepit C API.
 *
 * The tool is the showcase adapter's `ping` (a no-op returning a small dict), so
 * the figures measure the runtime itself: queueing, framing, the pipe round trip,
 * the worker's dispatch and JSON on both sides.
 *
 *   (a) sequential latency: one caller, sp_execute in a loop, process pool 1 x 1;
 *   (b) throughput with 16 calling threads doing sp_execute in a loop, against a
 *       process pool (2 workers) and a thread pool (1 worker x 16 threads);
 *   (c) the same pools driven by sp_execute_async with 64 calls kept in flight
 *       (each completion callback submits the next call).
 *
 * Usage: bench_capi [--quick] [--json FILE] [--duration SEC] [--calls N]
 *                   [--tool NAME] [--args JSON]
 * Exit status: 0 when every call succeeded, 1 when any call failed, 2 on bad usage
 * or when a runtime could not start.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cpuprobe.h"
#include "snakepit.h"

/* The tool and arguments every call uses; --tool / --args change them. */
static const char *TOOL = "ping";
static const char *ARGS = "{}";
#define SYNC_CALLERS 16
#define ASYNC_INFLIGHT 64

/* ---- small helpers ------------------------------------------------------ */

static void sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

/* Growable array of latencies in microseconds. */
typedef struct {
  float *v;
  size_t n, cap;
} lat_t;

static void lat_push(lat_t *l, float us) {
  if (l->n == l->cap) {
    size_t cap = l->cap ? l->cap * 2 : 4096;
    float *nv = realloc(l->v, cap * sizeof(*nv));
    if (nv == NULL) return; /* drop the sample rather than abort the run */
    l->v = nv;
    l->cap = cap;
  }
  l->v[l->n++] = us;
}

static void lat_append(lat_t *dst, const lat_t *src) {
  for (size_t i = 0; i < src->n; i++) lat_push(dst, src->v[i]);
}

static int cmp_float(const void *a, const void *b) {
  float x = *(const float *)a, y = *(const float *)b;
  return (x > y) - (x < y);
}

typedef struct {
  double p50, p99, mean, min, max;
} lat_summary_t;

/* Nearest-rank percentiles of the samples (sorts them in place). */
static lat_summary_t lat_summary(lat_t *l) {
  lat_summary_t s = {0, 0, 0, 0, 0};
  if (l->n == 0) return s;
  qsort(l->v, l->n, sizeof(float), cmp_float);
  double sum = 0;
  for (size_t i = 0; i < l->n; i++) sum += l->v[i];
  s.mean = sum / (double)l->n;
  s.min = l->v[0];
  s.max = l->v[l->n - 1];
  s.p50 = l->v[(size_t)((double)(l->n - 1) * 0.50 + 0.5)];
  s.p99 = l->v[(size_t)((double)(l->n - 1) * 0.99 + 0.5)];
  return s;
}

/* First error seen in a run, for the report. */
typedef struct {
  pthread_mutex_t mu;
  int have;
  char text[1200];
} first_err_t;

static void first_err_set(first_err_t *f, int code, const char *message) {
  pthread_mutex_lock(&f->mu);
  if (!f->have) {
    f->have = 1;
    (void)snprintf(f->text, sizeof(f->text), "%s: %s", sp_err_name(code), message);
  }
  pthread_mutex_unlock(&f->mu);
}

/* ---- runtimes ----------------------------------------------------------- */

typedef struct {
  const char *label; /* for the table */
  const char *key;   /* for JSON */
  const char *profile;
  int pool_size;
  int threads;
} pool_spec_t;

static const pool_spec_t POOL_SEQ = {"process 1x1", "process_1x1", "process", 1, 1};
static const pool_spec_t POOL_PROC = {"process 2x1", "process_2x1", "process", 2, 1};
static const pool_spec_t POOL_THR = {"thread 1x16", "thread_1x16", "thread", 1, 16};

static sp_runtime_t *start_pool(const pool_spec_t *ps) {
  char yaml[512];
  int n = snprintf(yaml, sizeof(yaml),
                   "pools:\n"
                   "  - name: bench\n"
                   "    worker_profile: %s\n"
                   "    pool_size: %d\n"
                   "    threads_per_worker: %d\n"
                   "    max_queue: 10000\n",
                   ps->profile, ps->pool_size, ps->threads);
  sp_runtime_t *rt = NULL;
  sp_error_t err;
  if (sp_runtime_start_yaml(&rt, yaml, (size_t)n, "bench_capi", &err) != 0) {
    (void)fprintf(stderr, "bench_capi: cannot start %s pool: %s: %s\n%s", ps->label,
                  sp_err_name(err.code), err.message, err.traceback);
    return NULL;
  }
  return rt;
}

/* ---- (a) sequential latency --------------------------------------------- */

typedef struct {
  long calls, errors;
  lat_summary_t lat;
  double wall_s;
  double cpu_avail; /* the CPU probe taken just before this run */
  char first_error[1200];
} seq_result_t;

static int run_sequential(const pool_spec_t *ps, long warmup, long calls, seq_result_t *out) {
  memset(out, 0, sizeof(*out));
  out->cpu_avail = bench_cpu_available(200);
  sp_runtime_t *rt = start_pool(ps);
  if (rt == NULL) return -1;
  lat_t lat = {0};
  sp_result_t res;
  for (long i = 0; i < warmup; i++) {
    if (sp_execute(rt, "bench", TOOL, ARGS, NULL, &res) != 0 && out->errors++ == 0)
      (void)snprintf(out->first_error, sizeof(out->first_error), "%s: %s",
                     sp_err_name(res.error.code), res.error.message);
    sp_result_free(&res);
  }
  uint64_t t_begin = bench_now_ns();
  for (long i = 0; i < calls; i++) {
    uint64_t t0 = bench_now_ns();
    int rc = sp_execute(rt, "bench", TOOL, ARGS, NULL, &res);
    uint64_t t1 = bench_now_ns();
    if (rc == 0) {
      lat_push(&lat, (float)((double)(t1 - t0) / 1e3));
    } else if (out->errors++ == 0) {
      (void)snprintf(out->first_error, sizeof(out->first_error), "%s: %s", sp_err_name(rc),
                     res.error.message);
    }
    sp_result_free(&res);
  }
  out->wall_s = (double)(bench_now_ns() - t_begin) / 1e9;
  out->calls = (long)lat.n;
  out->lat = lat_summary(&lat);
  free(lat.v);
  sp_runtime_stop(rt, 5000);
  return 0;
}

/* ---- throughput runs ---------------------------------------------------- */

typedef struct {
  const pool_spec_t *pool;
  const char *mode; /* "sync" or "async" */
  long ok, errors;
  double wall_s, calls_per_s, client_cpu;
  double cpu_avail; /* the CPU probe taken just before this run */
  lat_summary_t lat;
  char first_error[1200];
} tp_result_t;

/* (b) synchronous callers */
typedef struct {
  sp_runtime_t *rt;
  pthread_barrier_t *start;
  atomic_int *stop;
  first_err_t *ferr;
  long ok, errors;
  lat_t lat;
} caller_t;

static void *caller_main(void *p) {
  caller_t *c = p;
  pthread_barrier_wait(c->start);
  sp_result_t res;
  while (!atomic_load_explicit(c->stop, memory_order_relaxed)) {
    uint64_t t0 = bench_now_ns();
    int rc = sp_execute(c->rt, "bench", TOOL, ARGS, NULL, &res);
    uint64_t t1 = bench_now_ns();
    if (rc == 0) {
      c->ok++;
      lat_push(&c->lat, (float)((double)(t1 - t0) / 1e3));
    } else {
      c->errors++;
      first_err_set(c->ferr, rc, res.error.message);
    }
    sp_result_free(&res);
  }
  return NULL;
}

static void sync_phase(sp_runtime_t *rt, double seconds, tp_result_t *out, first_err_t *ferr) {
  caller_t c[SYNC_CALLERS];
  pthread_t t[SYNC_CALLERS];
  pthread_barrier_t start;
  atomic_int stop = 0;
  pthread_barrier_init(&start, NULL, SYNC_CALLERS + 1);
  for (int i = 0; i < SYNC_CALLERS; i++) {
    c[i] = (caller_t){.rt = rt, .start = &start, .stop = &stop, .ferr = ferr};
    pthread_create(&t[i], NULL, caller_main, &c[i]);
  }
  pthread_barrier_wait(&start);
  uint64_t w0 = bench_now_ns(), c0 = bench_cpu_ns();
  sleep_ms((long)(seconds * 1000));
  atomic_store(&stop, 1);
  lat_t all = {0};
  out->ok = out->errors = 0;
  for (int i = 0; i < SYNC_CALLERS; i++) {
    pthread_join(t[i], NULL);
    out->ok += c[i].ok;
    out->errors += c[i].errors;
    lat_append(&all, &c[i].lat);
    free(c[i].lat.v);
  }
  uint64_t w1 = bench_now_ns(), c1 = bench_cpu_ns();
  pthread_barrier_destroy(&start);
  out->wall_s = (double)(w1 - w0) / 1e9;
  out->client_cpu = (double)(c1 - c0) / (double)(w1 - w0);
  out->calls_per_s = (double)out->ok / out->wall_s;
  out->lat = lat_summary(&all);
  free(all.v);
}

/* (c) asynchronous pipeline */
typedef struct pipe_s pipe_t;
typedef struct {
  pipe_t *p;
  uint64_t t0;
} pipe_slot_t;

struct pipe_s {
  sp_runtime_t *rt;
  atomic_int stop;
  atomic_long ok, errors;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int inflight; /* under mu */
  lat_t lat;    /* appended by callbacks only (they run on the one loop thread) */
  first_err_t *ferr;
  pipe_slot_t slots[ASYNC_INFLIGHT];
};

static void pipe_slot_done(pipe_t *p) {
  pthread_mutex_lock(&p->mu);
  if (--p->inflight == 0) pthread_cond_broadcast(&p->cv);
  pthread_mutex_unlock(&p->mu);
}

static void pipe_cb(sp_result_t *res, void *ud) {
  pipe_slot_t *s = ud;
  pipe_t *p = s->p;
  uint64_t t1 = bench_now_ns();
  if (res->error.code == 0) {
    atomic_fetch_add_explicit(&p->ok, 1, memory_order_relaxed);
    lat_push(&p->lat, (float)((double)(t1 - s->t0) / 1e3));
  } else {
    atomic_fetch_add_explicit(&p->errors, 1, memory_order_relaxed);
    first_err_set(p->ferr, res->error.code, res->error.message);
  }
  if (!atomic_load_explicit(&p->stop, memory_order_relaxed)) {
    sp_error_t err;
    s->t0 = bench_now_ns();
    if (sp_execute_async(p->rt, "bench", TOOL, ARGS, NULL, pipe_cb, s, &err) == 0) return;
    atomic_fetch_add_explicit(&p->errors, 1, memory_order_relaxed);
    first_err_set(p->ferr, err.code, err.message);
  }
  pipe_slot_done(p);
}

static void async_phase(sp_runtime_t *rt, double seconds, tp_result_t *out, first_err_t *ferr) {
  pipe_t *p = calloc(1, sizeof(*p));
  if (p == NULL) {
    out->errors = 1;
    (void)snprintf(out->first_error, sizeof(out->first_error), "out of memory");
    return;
  }
  p->rt = rt;
  p->ferr = ferr;
  pthread_mutex_init(&p->mu, NULL);
  pthread_cond_init(&p->cv, NULL);
  p->inflight = ASYNC_INFLIGHT;
  uint64_t w0 = bench_now_ns(), c0 = bench_cpu_ns();
  for (int i = 0; i < ASYNC_INFLIGHT; i++) {
    sp_error_t err;
    p->slots[i].p = p;
    p->slots[i].t0 = bench_now_ns();
    if (sp_execute_async(rt, "bench", TOOL, ARGS, NULL, pipe_cb, &p->slots[i], &err) != 0) {
      atomic_fetch_add(&p->errors, 1);
      first_err_set(ferr, err.code, err.message);
      pipe_slot_done(p);
    }
  }
  sleep_ms((long)(seconds * 1000));
  atomic_store(&p->stop, 1);
  pthread_mutex_lock(&p->mu);
  while (p->inflight > 0) pthread_cond_wait(&p->cv, &p->mu);
  pthread_mutex_unlock(&p->mu); /* orders the callbacks' writes to p->lat before our reads */
  uint64_t w1 = bench_now_ns(), c1 = bench_cpu_ns();
  out->ok = atomic_load(&p->ok);
  out->errors = atomic_load(&p->errors);
  out->wall_s = (double)(w1 - w0) / 1e9;
  out->client_cpu = (double)(c1 - c0) / (double)(w1 - w0);
  out->calls_per_s = (double)out->ok / out->wall_s;
  out->lat = lat_summary(&p->lat);
  free(p->lat.v);
  pthread_cond_destroy(&p->cv);
  pthread_mutex_destroy(&p->mu);
  free(p);
}

/* Starts the pool, warms up with a short run of the same kind, then measures. */
static int run_throughput(const pool_spec_t *ps, int async, double warmup_s, double seconds,
                          tp_result_t *out) {
  memset(out, 0, sizeof(*out));
  out->pool = ps;
  out->mode = async ? "async" : "sync";
  out->cpu_avail = bench_cpu_available(200);
  sp_runtime_t *rt = start_pool(ps);
  if (rt == NULL) return -1;
  first_err_t ferr = {.mu = PTHREAD_MUTEX_INITIALIZER};
  tp_result_t warm;
  memset(&warm, 0, sizeof(warm));
  if (async) {
    async_phase(rt, warmup_s, &warm, &ferr);
    async_phase(rt, seconds, out, &ferr);
  } else {
    sync_phase(rt, warmup_s, &warm, &ferr);
    sync_phase(rt, seconds, out, &ferr);
  }
  out->errors += warm.errors; /* a failure during warm-up is a failure too */
  if (ferr.have) (void)snprintf(out->first_error, sizeof(out->first_error), "%s", ferr.text);
  sp_runtime_stop(rt, 5000);
  return 0;
}

/* ---- output ------------------------------------------------------------- */

static void json_str(FILE *f, const char *s) {
  (void)fputc('"', f);
  for (; *s; s++) {
    unsigned char ch = (unsigned char)*s;
    if (ch == '"' || ch == '\\')
      (void)fprintf(f, "\\%c", ch);
    else if (ch < 0x20)
      (void)fprintf(f, "\\u%04x", ch);
    else
      (void)fputc(ch, f);
  }
  (void)fputc('"', f);
}

static void json_lat(FILE *f, const lat_summary_t *l) {
  (void)fprintf(f, "{\"p50\": %.2f, \"p99\": %.2f, \"mean\": %.2f, \"min\": %.2f, \"max\": %.2f}",
                l->p50, l->p99, l->mean, l->min, l->max);
}

static void usage(FILE *f) {
  (void)fputs(
      "usage: bench_capi [--quick] [--json FILE] [--duration SEC] [--calls N]\n"
      "  --quick          short runs for CI smoke tests (whole run < 15 s)\n"
      "  --json FILE      also write the figures as JSON to FILE\n"
      "  --duration SEC   seconds per throughput run (default 10, quick 1)\n"
      "  --calls N        calls of the sequential latency run (default 50000, quick 3000)\n"
      "  --tool NAME      showcase tool to call (default ping)\n"
      "  --args JSON      its arguments (default {})\n",
      f);
}

int main(int argc, char **argv) {
  int quick = 0;
  const char *json_path = NULL;
  double duration = -1;
  long calls = -1;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--quick") == 0) {
      quick = 1;
    } else if (strcmp(argv[i], "--json") == 0 && i + 1 < argc) {
      json_path = argv[++i];
    } else if (strcmp(argv[i], "--duration") == 0 && i + 1 < argc) {
      char *end;
      duration = strtod(argv[++i], &end);
      if (*end || duration <= 0 || duration > 3600) {
        (void)fprintf(stderr, "bench_capi: bad --duration '%s'\n", argv[i]);
        return 2;
      }
    } else if (strcmp(argv[i], "--calls") == 0 && i + 1 < argc) {
      char *end;
      calls = strtol(argv[++i], &end, 10);
      if (*end || calls <= 0) {
        (void)fprintf(stderr, "bench_capi: bad --calls '%s'\n", argv[i]);
        return 2;
      }
    } else if (strcmp(argv[i], "--tool") == 0 && i + 1 < argc) {
      TOOL = argv[++i];
    } else if (strcmp(argv[i], "--args") == 0 && i + 1 < argc) {
      ARGS = argv[++i];
    } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
      usage(stdout);
      return 0;
    } else {
      usage(stderr);
      return 2;
    }
  }
  if (duration < 0) duration = quick ? 1.0 : 10.0;
  if (calls < 0) calls = quick ? 3000 : 50000;
  long warm_calls = quick ? 300 : 2000;
  double warm_s = quick ? 0.3 : 1.0;

  long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
  cpu_set_t set;
  int naff = sched_getaffinity(0, sizeof(set), &set) == 0 ? CPU_COUNT(&set) : (int)ncpu;
  double avail = bench_cpu_available(200);

  printf("snakepit C API benchmark (libsnakepit %s), tool '%s' of the showcase adapter\n",
         sp_version(), TOOL);
  printf(
      "machine: %ld CPUs online (sysconf), %d in the affinity mask; 2 busy threads got "
      "%.2f CPUs over 200 ms\n",
      ncpu, naff, avail);
  printf(
      "mode: %s (sequential: %ld calls after %ld warm-up; throughput: %.1f s per run after "
      "%.1f s warm-up)\n\n",
      quick ? "quick" : "full", calls, warm_calls, duration, warm_s);
  (void)fflush(stdout);

  seq_result_t seq;
  if (run_sequential(&POOL_SEQ, warm_calls, calls, &seq) != 0) return 2;
  printf("(a) sequential latency of '%s', sp_execute, %s pool, %ld calls (%.0f calls/s):\n", TOOL,
         POOL_SEQ.label, seq.calls, seq.calls / seq.wall_s);
  printf(
      "    p50 %.1f us   p99 %.1f us   mean %.1f us   min %.1f us   max %.1f us   errors %ld"
      "   CPU avail %.2f\n\n",
      seq.lat.p50, seq.lat.p99, seq.lat.mean, seq.lat.min, seq.lat.max, seq.errors, seq.cpu_avail);
  (void)fflush(stdout);

  const pool_spec_t *pools[2] = {&POOL_PROC, &POOL_THR};
  tp_result_t tp[4];
  int ntp = 0;
  printf("(b) %d threads calling sp_execute, (c) sp_execute_async with %d calls in flight:\n",
         SYNC_CALLERS, ASYNC_INFLIGHT);
  printf("    %-5s %-22s %10s %9s %7s %8s %8s %10s %9s\n", "", "pool", "calls/s", "calls", "errors",
         "p50 us", "p99 us", "client CPU", "CPU avail");
  for (int async = 0; async < 2; async++) {
    for (int k = 0; k < 2; k++) {
      tp_result_t *r = &tp[ntp];
      if (run_throughput(pools[k], async, warm_s, duration, r) != 0) return 2;
      ntp++;
      printf("    (%c)   %-22s %10.0f %9ld %7ld %8.1f %8.1f %10.2f %9.2f\n", async ? 'c' : 'b',
             pools[k]->label, r->calls_per_s, r->ok, r->errors, r->lat.p50, r->lat.p99,
             r->client_cpu, r->cpu_avail);
      (void)fflush(stdout);
    }
  }
  printf(
      "    (latencies are per call as seen by the caller, queueing included; client CPU is\n"
      "     this process's CPU time / wall time, the workers' CPU is not included; CPU avail\n"
      "     is the 2-thread probe taken just before the run)\n\n");

  long errors = seq.errors;
  for (int i = 0; i < ntp; i++) errors += tp[i].errors;
  double best_sync = tp[0].calls_per_s > tp[1].calls_per_s ? tp[0].calls_per_s : tp[1].calls_per_s;
  /* A target only counts as met when it was measured on successful calls. */
  int p50_met = seq.calls > 0 && seq.lat.p50 <= 60.0;
  int tput_met = best_sync >= 50000.0;
  printf("targets: sequential p50 <= 60 us: %s (%.1f us)\n",
         seq.calls == 0 ? "not measured"
         : p50_met      ? "met"
                        : "NOT met",
         seq.lat.p50);
  printf("         >= 50000 calls/s with 16 callers: %s (process 2x1 %.0f, thread 1x16 %.0f)\n",
         tput_met ? "met" : "NOT met", tp[0].calls_per_s, tp[1].calls_per_s);

  if (errors > 0) {
    printf("\nFAILED: %ld call(s) failed\n", errors);
    if (seq.first_error[0]) printf("  sequential: %s\n", seq.first_error);
    for (int i = 0; i < ntp; i++)
      if (tp[i].first_error[0])
        printf("  %s %s: %s\n", tp[i].mode, tp[i].pool->label, tp[i].first_error);
  } else {
    printf("\nall calls succeeded\n");
  }

  if (json_path != NULL) {
    FILE *f = fopen(json_path, "w");
    if (f == NULL) {
      (void)fprintf(stderr, "bench_capi: cannot write %s: %s\n", json_path, strerror(errno));
      return 2;
    }
    (void)fprintf(f, "{\n  \"version\": ");
    json_str(f, sp_version());
    (void)fprintf(f, ",\n  \"mode\": \"%s\",\n  \"tool\": ", quick ? "quick" : "full");
    json_str(f, TOOL);
    (void)fprintf(f, ",\n  \"args\": ");
    json_str(f, ARGS);
    (void)fprintf(f, ",\n");
    (void)fprintf(f,
                  "  \"machine\": {\"cpus_online\": %ld, \"cpus_affinity\": %d, "
                  "\"cpu_available_2_threads\": %.3f},\n",
                  ncpu, naff, avail);
    (void)fprintf(f,
                  "  \"sequential\": {\"pool\": \"%s\", \"calls\": %ld, \"errors\": %ld, "
                  "\"calls_per_s\": %.1f, \"cpu_available\": %.3f, \"latency_us\": ",
                  POOL_SEQ.key, seq.calls, seq.errors, seq.calls / seq.wall_s, seq.cpu_avail);
    json_lat(f, &seq.lat);
    (void)fprintf(f, "},\n  \"throughput\": [\n");
    for (int i = 0; i < ntp; i++) {
      tp_result_t *r = &tp[i];
      (void)fprintf(f,
                    "    {\"mode\": \"%s\", \"pool\": \"%s\", \"callers\": %d, \"in_flight\": %d, "
                    "\"seconds\": %.3f, \"calls\": %ld, \"errors\": %ld, \"calls_per_s\": %.1f, "
                    "\"client_cpu\": %.3f, \"cpu_available\": %.3f, \"latency_us\": ",
                    r->mode, r->pool->key, strcmp(r->mode, "sync") == 0 ? SYNC_CALLERS : 1,
                    strcmp(r->mode, "sync") == 0 ? SYNC_CALLERS : ASYNC_INFLIGHT, r->wall_s, r->ok,
                    r->errors, r->calls_per_s, r->client_cpu, r->cpu_avail);
      json_lat(f, &r->lat);
      (void)fprintf(f, ", \"first_error\": ");
      json_str(f, r->first_error);
      (void)fprintf(f, "}%s\n", i + 1 < ntp ? "," : "");
    }
    (void)fprintf(f,
                  "  ],\n  \"targets\": {\"sequential_p50_le_60us\": %s, "
                  "\"sync16_ge_50k_calls_per_s\": %s},\n  \"errors\": %ld\n}\n",
                  p50_met ? "true" : "false", tput_met ? "true" : "false", errors);
    if (fclose(f) != 0) {
      (void)fprintf(stderr, "bench_capi: cannot write %s: %s\n", json_path, strerror(errno));
      return 2;
    }
  }
  return errors > 0 ? 1 : 0;
}

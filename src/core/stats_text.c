/*
 * stats_text.c - the statistics JSON (sp_stats_json(), or `snakepit serve`'s
 * /v1/pools) as a table a person reads: per pool its workers, calls, latency
 * quantiles and how busy its threads have been; optionally a line per worker.
 * The JSON stays the interface for programs; this is for terminals and logs.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errors.h"
#include "snakepit.h"

static json_int_t jint(const json_t *o, const char *key) {
  return json_integer_value(json_object_get(o, key));
}

/* Microseconds as "850 us", "12.4 ms", "1.02 s". */
static void fmt_us(char *buf, size_t cap, json_int_t us) {
  if (us < 1000)
    snprintf(buf, cap, "%lld us", (long long)us);
  else if (us < 1000000)
    snprintf(buf, cap, "%.3g ms", (double)us / 1e3);
  else
    snprintf(buf, cap, "%.3g s", (double)us / 1e6);
}

static void fmt_kib(char *buf, size_t cap, json_int_t kib) {
  if (kib < 0)
    snprintf(buf, cap, "-");
  else if (kib < 10240)
    snprintf(buf, cap, "%lld KiB", (long long)kib);
  else
    snprintf(buf, cap, "%.1f MiB", (double)kib / 1024.0);
}

/*
 * Thread utilisation since the workers started: the pool's summed call time over
 * its threads times the oldest worker's uptime. Call time is measured by the
 * caller, so it includes time queued; the figure is capped at 100%.
 */
static double utilisation(const json_t *pool) {
  json_int_t sum_us = jint(json_object_get(pool, "latency_histogram"), "sum_us");
  json_int_t up_ms = 0;
  size_t i;
  json_t *w;
  json_array_foreach(json_object_get(pool, "workers"), i, w) {
    if (jint(w, "uptime_ms") > up_ms) up_ms = jint(w, "uptime_ms");
  }
  double slots = (double)(jint(pool, "pool_size") * jint(pool, "threads_per_worker"));
  if (up_ms <= 0 || slots <= 0) return 0;
  double u = (double)sum_us / (slots * (double)up_ms * 1000.0);
  return u > 1 ? 1 : u;
}

/*
 * Calls this pool's tools made back through the host (current().call and
 * call_host): counted against the calling pool, so a pool that only serves
 * nested calls shows them as ordinary calls instead. Only printed once a tool
 * called back, like the sessions line, so pools that never do stay one line.
 */
static void callback_row(FILE *f, const json_t *p) {
  json_int_t nested = jint(p, "nested_calls"), host = jint(p, "host_function_calls");
  json_int_t waiting = jint(p, "calls_waiting_nested"), refused = jint(p, "nested_refused");
  if (nested == 0 && host == 0 && waiting == 0 && refused == 0) return;
  fprintf(f,
          "  calls back: %lld to tools, %lld to host functions, %lld waiting now, %lld refused\n",
          (long long)nested, (long long)host, (long long)waiting, (long long)refused);
}

/* A remote pool (served over NATS): what this runtime's calls to it count. */
static void remote_rows(FILE *f, const json_t *p) {
  const json_t *calls = json_object_get(p, "calls");
  const char *name = json_string_value(json_object_get(p, "name"));
  const char *url = json_string_value(json_object_get(p, "url"));
  fprintf(f, "%-16s %-8s %7s %7s %7lld %6s %8lld %8lld %7lld %9s %9s %9s %6s\n", name ? name : "?",
          "remote", "-", "-", (long long)jint(p, "in_flight"), "-", (long long)jint(calls, "total"),
          (long long)jint(calls, "ok"), (long long)jint(calls, "errors"), "-", "-", "-", "-");
  fprintf(f, "  remote: %s, %s; %lld retried on another node\n", url ? url : "?",
          json_is_true(json_object_get(p, "connected")) ? "connected" : "NOT CONNECTED",
          (long long)jint(p, "retried"));
}

static void pool_rows(FILE *f, const json_t *p, unsigned flags) {
  const char *kind = json_string_value(json_object_get(p, "kind"));
  if (kind != NULL && !strcmp(kind, "remote")) {
    remote_rows(f, p);
    return;
  }
  const json_t *calls = json_object_get(p, "calls");
  const json_t *lat = json_object_get(p, "latency_us");
  json_int_t failed = 0;
  const char *cat;
  json_t *v;
  json_object_foreach(json_object_get((json_t *)calls, "failed"), cat, v) failed +=
      json_integer_value(v);
  char workers[48], busy[48], p50[32], p90[32], p99[32];
  snprintf(workers, sizeof(workers), "%lld/%lld", (long long)jint(p, "ready_workers"),
           (long long)jint(p, "pool_size"));
  snprintf(busy, sizeof(busy), "%lld/%lld", (long long)jint(p, "busy_slots"),
           (long long)jint(p, "capacity"));
  fmt_us(p50, sizeof(p50), jint(lat, "p50"));
  fmt_us(p90, sizeof(p90), jint(lat, "p90"));
  fmt_us(p99, sizeof(p99), jint(lat, "p99"));
  if (jint(json_object_get(p, "latency_histogram"), "count") == 0) /* no call measured yet */
    strcpy(p50, "-"), strcpy(p90, "-"), strcpy(p99, "-");
  const char *name = json_string_value(json_object_get(p, "name"));
  const char *profile = json_string_value(json_object_get(p, "profile"));
  fprintf(f, "%-16s %-8s %7s %7lld %7s %6lld %8lld %8lld %7lld %9s %9s %9s %5.0f%%\n",
          name ? name : "?", profile ? profile : "?", workers,
          (long long)jint(p, "threads_per_worker"), busy, (long long)jint(p, "queue_depth"),
          (long long)jint(calls, "total"), (long long)jint(calls, "ok"), (long long)failed, p50,
          p90, p99, 100.0 * utilisation(p));
  if (failed > 0) {
    fprintf(f, "  failed:");
    json_object_foreach(json_object_get((json_t *)calls, "failed"), cat, v) {
      if (json_integer_value(v) > 0) fprintf(f, " %s %lld", cat, (long long)json_integer_value(v));
    }
    fputc('\n', f);
  }
  if (json_is_true(json_object_get(p, "profile_auto"))) {
    const char *why = json_string_value(json_object_get(p, "profile_reason"));
    fprintf(f, "  worker_profile auto chose %s: %s\n",
            json_string_value(json_object_get(p, "profile")), why ? why : "");
  }
  if (jint(p, "min_workers") != jint(p, "max_workers")) {
    fprintf(f, "  scaling: %lld..%lld workers, %lld wanted, %lld running; %lld added, %lld removed\n",
            (long long)jint(p, "min_workers"), (long long)jint(p, "max_workers"),
            (long long)jint(p, "pool_size"), (long long)jint(p, "workers_current"),
            (long long)jint(p, "scale_ups"), (long long)jint(p, "scale_downs"));
  }
  const char *preload = json_string_value(json_object_get(p, "preload"));
  if (preload != NULL && strcmp(preload, "off") != 0) {
    char pss[32];
    fmt_kib(pss, sizeof(pss), jint(json_object_get(p, "memory"), "pss_kb"));
    const char *note = json_string_value(json_object_get(p, "preload_note"));
    fprintf(f, "  preload: %s, memory %s PSS (fork server and workers)%s%s\n", preload, pss,
            note ? ": " : "", note ? note : "");
  }
  if (json_is_true(json_object_get(p, "degraded"))) {
    const char *why = json_string_value(json_object_get(p, "degraded_reason"));
    fprintf(f, "  DEGRADED: %s\n", why ? why : "crash loop");
  }
  json_t *sess = json_object_get(p, "sessions");
  if (json_is_object(sess) && jint(sess, "started") > 0) {
    char ttl[32];
    fmt_us(ttl, sizeof(ttl), jint(sess, "ttl_ms") * 1000);
    fprintf(f,
            "  sessions: %lld live (ttl %s); %lld started, %lld ended, %lld expired, %lld lost, "
            "%lld refused busy\n",
            (long long)jint(sess, "live"), ttl, (long long)jint(sess, "started"),
            (long long)jint(sess, "ended"), (long long)jint(sess, "expired"),
            (long long)jint(sess, "lost"), (long long)jint(sess, "busy"));
  }
  callback_row(f, p);
  if (!(flags & SP_STATS_TEXT_WORKERS)) return;
  size_t i;
  json_t *w;
  json_array_foreach(json_object_get(p, "workers"), i, w) {
    char rss[32], pss[32], uss[32], up[32];
    fmt_kib(rss, sizeof(rss), jint(w, "rss_kb"));
    fmt_kib(pss, sizeof(pss), jint(w, "pss_kb"));
    fmt_kib(uss, sizeof(uss), jint(w, "uss_kb"));
    fmt_us(up, sizeof(up), jint(w, "uptime_ms") * 1000);
    const char *id = json_string_value(json_object_get(w, "id"));
    const char *state = json_string_value(json_object_get(w, "state"));
    fprintf(f,
            "  %-6s pid %-8lld %-9s calls %-8lld running %lld/%-4lld rss %-10s pss %-10s uss "
            "%-10s up %s",
            id ? id : "?", (long long)jint(w, "pid"), state ? state : "?",
            (long long)jint(w, "requests"), (long long)jint(w, "inflight"),
            (long long)jint(w, "capacity"), rss, pss, uss, up);
    if (jint(w, "sessions") > 0) fprintf(f, " sessions %lld", (long long)jint(w, "sessions"));
    fputc('\n', f);
  }
}

int sp_stats_text(const char *stats_json, unsigned flags, char **text, sp_error_t *err) {
  *text = NULL;
  json_error_t jerr;
  json_t *doc = stats_json ? json_loads(stats_json, 0, &jerr) : NULL;
  if (doc == NULL) return sp__error_set(err, SP_EINVAL, "statistics are not JSON");
  json_t *pools = json_object_get(doc, "pools");
  if (!json_is_array(pools) && json_object_get(doc, "name") == NULL) {
    json_decref(doc);
    return sp__error_set(err, SP_EINVAL, "statistics have neither \"pools\" nor a pool \"name\"");
  }
  size_t len = 0;
  FILE *f = open_memstream(text, &len);
  if (f == NULL) {
    json_decref(doc);
    return sp__error_set(err, SP_ENOMEM, "out of memory formatting statistics");
  }
  fprintf(f, "%-16s %-8s %7s %7s %7s %6s %8s %8s %7s %9s %9s %9s %6s\n", "POOL", "PROFILE",
          "WORKERS", "THREADS", "BUSY", "QUEUE", "CALLS", "OK", "FAILED", "P50", "P90", "P99",
          "UTIL");
  if (json_is_array(pools)) {
    size_t i;
    json_t *p;
    json_array_foreach(pools, i, p) pool_rows(f, p, flags);
  } else {
    pool_rows(f, doc, flags);
  }
  int bad = ferror(f);
  fclose(f);
  json_decref(doc);
  if (bad) {
    free(*text);
    *text = NULL;
    return sp__error_set(err, SP_ENOMEM, "out of memory formatting statistics");
  }
  sp__error_clear(err);
  return 0;
}

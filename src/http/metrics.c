/*
 * metrics.c - GET /metrics: the pools' statistics JSON and the server's request
 * counters rendered in the Prometheus text exposition format (version 0.0.4).
 * Each family is written whole (HELP, TYPE, then every pool's samples) because
 * the format wants a family's samples together.
 */
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "http_internal.h"

typedef struct {
  const char *k, *v;
} label_t;

/* States a worker can be in (src/core/worker.c); always listed, so a state's
 * series exists at 0 before the first worker enters it. */
static const char *const worker_states[] = {"starting", "ready", "draining", "stopping", "dead"};
/* Outcomes of a call: ok, or the category of its error. */
static const char *const outcomes[] = {"ok",     "validation", "pool",     "timeout",
                                       "worker", "python",     "protocol", "internal"};

static void family(FILE *f, const char *name, const char *type, const char *help) {
  fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* Label values escape backslash, double quote and newline; nothing else. */
static void label_value(FILE *f, const char *v) {
  for (; v && *v; v++) {
    if (*v == '\\')
      fputs("\\\\", f);
    else if (*v == '"')
      fputs("\\\"", f);
    else if (*v == '\n')
      fputs("\\n", f);
    else
      fputc(*v, f);
  }
}

static void value(FILE *f, double v) {
  if (isnan(v))
    fputs("NaN", f);
  else if (isinf(v))
    fputs(v > 0 ? "+Inf" : "-Inf", f);
  else if (v == floor(v) && fabs(v) < 9007199254740992.0)
    fprintf(f, "%.0f", v);
  else
    fprintf(f, "%.9g", v);
}

static void sample(FILE *f, const char *name, const label_t *l, size_t n, double v) {
  fputs(name, f);
  for (size_t i = 0; i < n; i++) {
    fprintf(f, "%s%s=\"", i ? "," : "{", l[i].k);
    label_value(f, l[i].v);
    fputc('"', f);
  }
  fputs(n ? "} " : " ", f);
  value(f, v);
  fputc('\n', f);
}

/* A number from the stats JSON: integers, reals and booleans (as 0/1). */
static double num(json_t *o, const char *key) {
  json_t *v = json_object_get(o, key);
  if (json_is_boolean(v)) return json_is_true(v) ? 1 : 0;
  return json_is_number(v) ? json_number_value(v) : 0;
}

static const char *str(json_t *o, const char *key) {
  const char *s = json_string_value(json_object_get(o, key));
  return s ? s : "";
}

/* Microseconds as a decimal number of seconds, exactly: 50 -> "0.00005". */
static void seconds_text(char *buf, size_t len, long long us) {
  snprintf(buf, len, "%lld.%06lld", us / 1000000, us % 1000000);
  char *end = buf + strlen(buf) - 1;
  while (*end == '0') *end-- = '\0';
  if (*end == '.') *end = '\0';
}

/* ---- families from the stats ---------------------------------------------- */

/* Per-pool gauges and counters read straight from one key of the pool object
 * (or of its "calls" object), scaled. */
static const struct {
  const char *key, *sub, *name, *type, *help;
  double scale;
} pool_series[] = {
    {"pool_size", NULL, "snakepit_pool_size", "gauge",
     "Workers the pool wants now (its desired size; fixed pools: the configured size).", 1},
    {"workers_current", NULL, "snakepit_pool_workers_current", "gauge",
     "Worker processes the pool has now, starting or ready.", 1},
    {"min_workers", NULL, "snakepit_pool_min_workers", "gauge", "Smallest size of the pool.", 1},
    {"max_workers", NULL, "snakepit_pool_max_workers", "gauge", "Largest size of the pool.", 1},
    {"scale_ups", NULL, "snakepit_pool_scale_ups_total", "counter",
     "Workers added because calls waited for one (pool_size: MIN..MAX).", 1},
    {"scale_downs", NULL, "snakepit_pool_scale_downs_total", "counter",
     "Workers removed after scale_down_idle without a call.", 1},
    {"threads_per_worker", NULL, "snakepit_pool_threads_per_worker", "gauge",
     "Execution threads per worker.", 1},
    {"ready_workers", NULL, "snakepit_pool_ready_workers", "gauge", "Workers ready for calls.", 1},
    {"capacity", NULL, "snakepit_pool_capacity_slots", "gauge",
     "Call slots (threads) of the ready workers.", 1},
    {"busy_slots", NULL, "snakepit_pool_busy_slots", "gauge", "Slots running a call.", 1},
    {"idle_slots", NULL, "snakepit_pool_idle_slots", "gauge", "Slots free for a call.", 1},
    {"queue_depth", NULL, "snakepit_pool_queue_depth", "gauge", "Calls waiting for a free slot.",
     1},
    {"queue_peak", NULL, "snakepit_pool_queue_peak", "gauge", "Most calls ever waiting at once.",
     1},
    {"max_queue", NULL, "snakepit_pool_queue_limit", "gauge",
     "Calls allowed to wait before new ones are refused.", 1},
    {"degraded", NULL, "snakepit_pool_degraded", "gauge",
     "1 while the pool is in a crash loop and fails calls at once.", 1},
    {"attach_wait_ms", NULL, "snakepit_pool_attach_wait_seconds", "gauge",
     "Time the pool's live workers' threads waited to attach to Python before calls: for the "
     "GIL on a GIL build, for stop-the-world pauses on a free-threaded one (drops when a worker "
     "is replaced).",
     1e-3},
    {"gil_enabled_workers", NULL, "snakepit_pool_gil_enabled_workers", "gauge",
     "Ready workers whose Python runs with the GIL (on a free-threaded build: turned back on).",
     1},
    {"gil_reenabled", NULL, "snakepit_pool_gil_reenabled_total", "counter",
     "Free-threaded workers found running with the GIL: an extension module without "
     "free-threading support was imported.",
     1},
    {"rejected_before_dispatch", "calls", "snakepit_calls_rejected_total", "counter",
     "Calls refused before reaching a worker (bad arguments, unknown tool, saturated).", 1},
    {"crashes", NULL, "snakepit_worker_crashes_total", "counter",
     "Workers that exited unexpectedly.", 1},
    {"restarts", NULL, "snakepit_worker_restarts_total", "counter",
     "Workers started to replace others.", 1},
    {"fork_server_starts", NULL, "snakepit_fork_server_starts_total", "counter",
     "Fork servers started for the pool (more than one: a fork server died and was replaced).", 1},
    {"pss_kb", "memory", "snakepit_pool_pss_bytes", "gauge",
     "Proportional memory of the pool's processes, fork server included: shared pages split "
     "among the processes that map them, so this adds up across pools.",
     1024},
    {"uss_kb", "memory", "snakepit_pool_uss_bytes", "gauge",
     "Memory only the pool's processes use, each page counted once per process that owns it.",
     1024},
    {"ping_kills", NULL, "snakepit_worker_ping_kills_total", "counter",
     "Workers killed for missing liveness pings.", 1},
    {"retries", NULL, "snakepit_call_retries_total", "counter",
     "Idempotent calls retried after their worker crashed.", 1},
    {"streams_active", NULL, "snakepit_pool_streams_active", "gauge",
     "Streaming calls in flight.", 1},
    {"chunks_sent", NULL, "snakepit_stream_chunks_total", "counter",
     "Chunks of streaming calls delivered to their callers.", 1},
    {"live", "sessions", "snakepit_pool_sessions", "gauge",
     "Live sessions (calls with a session id bound to a worker, not ended or expired).", 1},
    {"started", "sessions", "snakepit_sessions_started_total", "counter", "Sessions started.", 1},
    {"ended", "sessions", "snakepit_sessions_ended_total", "counter",
     "Sessions ended explicitly (API, CLI, HTTP DELETE).", 1},
    {"expired", "sessions", "snakepit_sessions_expired_total", "counter",
     "Sessions ended after session_ttl without a call.", 1},
    {"lost", "sessions", "snakepit_sessions_lost_total", "counter",
     "Sessions whose worker exited or was recycled, with their state.", 1},
    {"busy", "sessions", "snakepit_session_busy_total", "counter",
     "strict_fail_fast calls refused because their session's worker was busy.", 1},
    {"nested_calls", NULL, "snakepit_nested_calls_total", "counter",
     "Nested tool calls the pool's tools made (current().call).", 1},
    {"host_function_calls", NULL, "snakepit_host_function_calls_total", "counter",
     "Host function calls the pool's tools made (current().call_host).", 1},
    {"nested_refused", NULL, "snakepit_nested_refused_total", "counter",
     "Nested calls and host function calls refused before they ran (depth, deadlock, unknown "
     "pool, tool or function).", 1},
};

static void write_pool_series(FILE *f, json_t *pools) {
  json_t *p;
  size_t i;
  for (size_t k = 0; k < sizeof(pool_series) / sizeof(pool_series[0]); k++) {
    family(f, pool_series[k].name, pool_series[k].type, pool_series[k].help);
    json_array_foreach(pools, i, p) {
      json_t *o = pool_series[k].sub ? json_object_get(p, pool_series[k].sub) : p;
      label_t l[] = {{"pool", str(p, "name")}};
      sample(f, pool_series[k].name, l, 1, num(o, pool_series[k].key) * pool_series[k].scale);
    }
  }
}

/* Outcome counts of an object {ok, failed:{category: n}}, in `outcomes` order. */
static double outcome_count(json_t *o, size_t idx) {
  return idx == 0 ? num(o, "ok") : num(json_object_get(o, "failed"), outcomes[idx]);
}

static void write_calls(FILE *f, json_t *pools) {
  json_t *p, *t;
  size_t i;
  const char *tool;
  family(f, "snakepit_pool_calls_total", "counter",
         "Calls by outcome (ok or error category), including those refused before dispatch.");
  json_array_foreach(pools, i, p) {
    for (size_t k = 0; k < sizeof(outcomes) / sizeof(outcomes[0]); k++) {
      label_t l[] = {{"pool", str(p, "name")}, {"outcome", outcomes[k]}};
      sample(f, "snakepit_pool_calls_total", l, 2, outcome_count(json_object_get(p, "calls"), k));
    }
  }
  family(f, "snakepit_calls_total", "counter",
         "Calls dispatched to a worker, by pool, tool and outcome (ok or error category).");
  json_array_foreach(pools, i, p) {
    json_object_foreach(json_object_get(p, "tools"), tool, t) {
      for (size_t k = 0; k < sizeof(outcomes) / sizeof(outcomes[0]); k++) {
        label_t l[] = {{"pool", str(p, "name")}, {"tool", tool}, {"outcome", outcomes[k]}};
        sample(f, "snakepit_calls_total", l, 3, outcome_count(t, k));
      }
    }
  }
}

static void write_latency(FILE *f, json_t *pools) {
  json_t *p, *b;
  size_t i, j;
  char le[32];
  family(f, "snakepit_call_duration_seconds", "histogram",
         "Call latency as the caller sees it (queue plus run time).");
  json_array_foreach(pools, i, p) {
    json_t *h = json_object_get(p, "latency_histogram");
    const char *pool = str(p, "name");
    int inf_seen = 0;
    json_array_foreach(json_object_get(h, "buckets"), j, b) {
      json_t *bound = json_array_get(b, 0);
      if (json_is_integer(bound)) {
        seconds_text(le, sizeof(le), (long long)json_integer_value(bound));
      } else {
        strcpy(le, "+Inf");
        inf_seen = 1;
      }
      label_t l[] = {{"pool", pool}, {"le", le}};
      sample(f, "snakepit_call_duration_seconds_bucket", l, 2,
             json_number_value(json_array_get(b, 1)));
    }
    label_t l[] = {{"pool", pool}, {"le", "+Inf"}};
    if (!inf_seen) sample(f, "snakepit_call_duration_seconds_bucket", l, 2, num(h, "count"));
    sample(f, "snakepit_call_duration_seconds_sum", l, 1, num(h, "sum_us") / 1e6);
    sample(f, "snakepit_call_duration_seconds_count", l, 1, num(h, "count"));
  }
}

static void write_workers(FILE *f, json_t *pools) {
  json_t *p, *w, *v;
  size_t i, j;
  const char *reason;
  family(f, "snakepit_workers", "gauge", "Worker processes by state.");
  json_array_foreach(pools, i, p) {
    json_t *workers = json_object_get(p, "workers");
    for (size_t k = 0; k < sizeof(worker_states) / sizeof(worker_states[0]); k++) {
      int n = 0;
      json_array_foreach(workers, j, w) n += strcmp(str(w, "state"), worker_states[k]) == 0;
      label_t l[] = {{"pool", str(p, "name")}, {"state", worker_states[k]}};
      sample(f, "snakepit_workers", l, 2, n);
    }
  }
  family(f, "snakepit_worker_recycles_total", "counter",
         "Workers replaced on purpose, by reason (max_requests, ttl, max_rss, cancel_grace).");
  json_array_foreach(pools, i, p) {
    json_object_foreach(json_object_get(p, "recycles"), reason, v) {
      label_t l[] = {{"pool", str(p, "name")}, {"reason", reason}};
      sample(f, "snakepit_worker_recycles_total", l, 2, json_number_value(v));
    }
  }
  /* Per process: a recycled worker and its replacement share an id for a while,
   * so the pid is a label too. */
  static const struct {
    const char *key, *name, *type, *help;
    double scale;
  } per_worker[] = {
      {"rss_kb", "snakepit_worker_rss_bytes", "gauge",
       "Resident memory of the worker process, pages shared with other processes included.",
       1024},
      {"pss_kb", "snakepit_worker_pss_bytes", "gauge",
       "Proportional memory of the worker: each shared page divided by the processes mapping it.",
       1024},
      {"uss_kb", "snakepit_worker_uss_bytes", "gauge",
       "Memory only the worker maps (what its exit frees); worker_max_rss_mb compares this.",
       1024},
      {"inflight", "snakepit_worker_inflight_calls", "gauge", "Calls the worker is running.", 1},
      {"capacity", "snakepit_worker_capacity_slots", "gauge", "Calls the worker runs at once.", 1},
      {"requests", "snakepit_worker_requests_total", "counter", "Calls sent to the worker.", 1},
      {"uptime_ms", "snakepit_worker_uptime_seconds", "gauge", "Time since the worker started.",
       1e-3},
      {"attach_wait_ms", "snakepit_worker_attach_wait_seconds_total", "counter",
       "Time the worker's threads waited to attach to Python (the GIL, or a stop-the-world "
       "pause on a free-threaded build).", 1e-3},
      {"gil_enabled", "snakepit_worker_gil_enabled", "gauge",
       "1 while the worker's Python runs with the GIL.", 1},
      {"sessions", "snakepit_worker_sessions", "gauge",
       "Sessions bound to the worker (their state lives in it).", 1},
  };
  char pid[24];
  for (size_t k = 0; k < sizeof(per_worker) / sizeof(per_worker[0]); k++) {
    family(f, per_worker[k].name, per_worker[k].type, per_worker[k].help);
    json_array_foreach(pools, i, p) {
      json_array_foreach(json_object_get(p, "workers"), j, w) {
        snprintf(pid, sizeof(pid), "%.0f", num(w, "pid"));
        label_t l[] = {{"pool", str(p, "name")}, {"worker", str(w, "id")}, {"pid", pid}};
        sample(f, per_worker[k].name, l, 3, num(w, per_worker[k].key) * per_worker[k].scale);
      }
    }
  }
}

/* ---- the server's own counters --------------------------------------------- */

static void write_http(FILE *f, const sp__http_t *s) {
  char code[8];
  family(f, "snakepit_http_requests_total", "counter",
         "HTTP requests answered, by route and status.");
  for (int r = 0; r < SP__ROUTE_COUNT; r++) {
    for (int c = 0; c < SP__HTTP_NSTATUS; c++) {
      uint64_t n = atomic_load_explicit(&((sp__http_t *)s)->counts[r][c], memory_order_relaxed);
      if (n == 0) continue;
      snprintf(code, sizeof(code), "%d", c + 100);
      label_t l[] = {{"route", sp__http_route_name((sp__route_t)r)}, {"code", code}};
      sample(f, "snakepit_http_requests_total", l, 2, (double)n);
    }
  }
  family(f, "snakepit_http_requests_in_flight", "gauge", "HTTP requests being read or answered.");
  sample(f, "snakepit_http_requests_in_flight", NULL, 0,
         (double)atomic_load(&((sp__http_t *)s)->active));
  sp__guard_t *g = &((sp__http_t *)s)->guard;
  family(f, "snakepit_http_connections_shed_total", "counter",
         "Connections the server closed to keep its limits, by reason.");
  const struct {
    const char *reason;
    _Atomic uint64_t *n;
  } shed[] = {
      {"request_timeout", &g->timed_out}, {"displaced", &g->evicted}, {"refused", &g->refused}};
  for (size_t k = 0; k < sizeof(shed) / sizeof(shed[0]); k++) {
    label_t l[] = {{"reason", shed[k].reason}};
    sample(f, "snakepit_http_connections_shed_total", l, 1, (double)atomic_load(shed[k].n));
  }
  family(f, "snakepit_http_draining", "gauge", "1 once the server stopped accepting connections.");
  sample(f, "snakepit_http_draining", NULL, 0, atomic_load(&((sp__http_t *)s)->draining));
}

/* Remote pools (served by NATS nodes): what this process's calls to them count. */
static void write_remote(FILE *f, json_t *remote) {
  static const struct {
    const char *key, *sub, *name, *type, *help;
  } series[] = {
      {"connected", NULL, "snakepit_remote_pool_connected", "gauge",
       "1 while the connection to the remote pool's NATS server is up."},
      {"in_flight", NULL, "snakepit_remote_pool_in_flight", "gauge",
       "Calls of this process to the remote pool not answered yet."},
      {"ok", "calls", "snakepit_remote_pool_calls_ok_total", "counter",
       "Calls to the remote pool that succeeded."},
      {"errors", "calls", "snakepit_remote_pool_calls_failed_total", "counter",
       "Calls to the remote pool that failed (on the node or on the way)."},
      {"retried", NULL, "snakepit_remote_pool_retries_total", "counter",
       "Idempotent calls sent again to another node after theirs went away."},
  };
  json_t *p;
  size_t i;
  if (json_array_size(remote) == 0) return;
  family(f, "snakepit_remote_pool_info", "gauge", "Always 1; the remote pool's NATS URL is a label.");
  json_array_foreach(remote, i, p) {
    label_t l[] = {{"pool", str(p, "name")}, {"url", str(p, "url")}};
    sample(f, "snakepit_remote_pool_info", l, 2, 1);
  }
  for (size_t k = 0; k < sizeof(series) / sizeof(series[0]); k++) {
    family(f, series[k].name, series[k].type, series[k].help);
    json_array_foreach(remote, i, p) {
      label_t l[] = {{"pool", str(p, "name")}};
      sample(f, series[k].name, l, 1,
             num(series[k].sub ? json_object_get(p, series[k].sub) : p, series[k].key));
    }
  }
}

int sp__metrics_write(FILE *f, const char *stats_json, const sp__http_t *srv) {
  json_t *doc = json_loads(stats_json, 0, NULL);
  json_t *all = json_object_get(doc, "pools");
  if (!json_is_array(all)) {
    json_decref(doc);
    return SP_EPROTOCOL;
  }
  /* Local pools have the pool families below; remote ones their own. */
  json_t *pools = json_array(), *remote = json_array(), *q;
  size_t n;
  json_array_foreach(all, n, q)
    json_array_append(strcmp(str(q, "kind"), "remote") ? pools : remote, q);
  label_t info[] = {{"version", sp_version()}};
  family(f, "snakepit_build_info", "gauge", "Always 1; the version is a label.");
  sample(f, "snakepit_build_info", info, 1, 1);
  family(f, "snakepit_pool_info", "gauge", "Always 1; the pool's settings are labels.");
  json_t *p;
  size_t i;
  json_array_foreach(pools, i, p) {
    label_t l[] = {
        {"pool", str(p, "name")},
        {"profile", str(p, "profile")},
        {"adapter", str(p, "adapter")},
        {"python_version", str(p, "python_version")},
        {"gil_enabled", json_is_true(json_object_get(p, "gil_enabled")) ? "true" : "false"}};
    sample(f, "snakepit_pool_info", l, 5, 1);
  }
  write_pool_series(f, pools);
  write_calls(f, pools);
  write_latency(f, pools);
  write_workers(f, pools);
  write_remote(f, remote);
  write_http(f, srv);
  json_decref(pools);
  json_decref(remote);
  json_decref(doc);
  return ferror(f) ? SP_ENOMEM : 0;
}

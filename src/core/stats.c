/*
 * stats.c - pool statistics: a log-bucketed latency histogram (3 significant
 * bits, so quantiles are within 12.5%) and the stats JSON documents.
 */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "forkserver.h"
#include "procmem.h"
#include "runtime.h"
#include "stats.h"
#include "worker.h"

#define NBUCKETS 256

static unsigned bucket_of(uint64_t us) {
  if (us < 16) return (unsigned)us;
  if (us > (1ull << 31)) us = 1ull << 31;
  unsigned e = 63u - (unsigned)__builtin_clzll(us); /* 4..31 */
  unsigned sub = (unsigned)(us >> (e - 3)) & 7u;
  unsigned idx = 16 + (e - 4) * 8 + sub;
  return idx < NBUCKETS ? idx : NBUCKETS - 1;
}

static uint64_t bucket_value(unsigned idx) {
  if (idx < 16) return idx;
  unsigned e = (idx - 16) / 8 + 4, sub = (idx - 16) % 8;
  uint64_t lo = (uint64_t)(8 + sub) << (e - 3);
  uint64_t width = 1ull << (e - 3);
  return lo + width / 2; /* middle of the bucket */
}

static const uint64_t hist_bounds[SP__HIST_NBOUNDS] = SP__HIST_BOUNDS_US;

void sp__stats_record_latency(sp__pool_stats_t *s, uint64_t ns) {
  uint64_t us = ns / 1000;
  s->latency_buckets[bucket_of(us)]++;
  s->latency_sum_us += us;
  unsigned i = 0;
  while (i < SP__HIST_NBOUNDS && us > hist_bounds[i]) i++;
  s->hist[i]++;
}

static uint64_t quantile(const sp__pool_stats_t *s, double q) {
  uint64_t total = 0;
  for (unsigned i = 0; i < NBUCKETS; i++) total += s->latency_buckets[i];
  if (total == 0) return 0;
  uint64_t rank = (uint64_t)(q * (double)(total - 1)) + 1, seen = 0;
  for (unsigned i = 0; i < NBUCKETS; i++) {
    seen += s->latency_buckets[i];
    if (seen >= rank) return bucket_value(i);
  }
  return bucket_value(NBUCKETS - 1);
}

/* Sets rss_kb, pss_kb and uss_kb of o from pid's memory; adds them to sum. */
static void memory_json(json_t *o, int pid, sp__procmem_t *sum) {
  sp__procmem_t m;
  sp__procmem_read(pid, &m);
  json_object_set_new(o, "rss_kb", json_integer(m.rss_kb));
  json_object_set_new(o, "pss_kb", json_integer(m.pss_kb));
  json_object_set_new(o, "uss_kb", json_integer(m.uss_kb));
  if (m.rss_kb > 0) sum->rss_kb += m.rss_kb;
  if (m.pss_kb > 0) sum->pss_kb += m.pss_kb;
  if (m.uss_kb > 0) sum->uss_kb += m.uss_kb;
}

static json_t *worker_json(const sp__worker_t *w, int64_t now, sp__procmem_t *sum) {
  json_t *o = json_object();
  json_object_set_new(o, "id", json_string(w->name));
  json_object_set_new(o, "pid", json_integer(w->pid));
  json_object_set_new(o, "state", json_string(sp__worker_state_name(w->state)));
  json_object_set_new(o, "uptime_ms", json_integer(now - w->spawned_ms));
  json_object_set_new(o, "requests", json_integer((json_int_t)w->requests));
  json_object_set_new(o, "inflight", json_integer(w->load.inflight));
  json_object_set_new(o, "capacity", json_integer(w->load.capacity));
  memory_json(o, w->exited ? 0 : w->pid, sum);
  json_object_set_new(o, "attach_wait_ms", json_real((double)w->attach_wait_ns / 1e6));
  json_object_set_new(o, "gil_enabled", json_boolean(w->gil_enabled));
  json_object_set_new(o, "sessions", json_integer(w->sessions));
  return o;
}

json_t *sp__stats_pool(const sp__pool_t *p) {
  const sp__pool_config_t *c = p->cfg;
  const sp__pool_stats_t *s = &p->stats;
  int64_t now = sp__now_ms();
  json_t *o = json_object();
  json_object_set_new(o, "name", json_string(c->name));
  json_object_set_new(o, "profile", json_string(c->profile == SP__PROFILE_THREAD ? "thread" : "process"));
  json_object_set_new(o, "adapter", json_string(c->adapter));
  if (c->profile_auto) {
    json_object_set_new(o, "profile_auto", json_true());
    json_object_set_new(o, "profile_reason", json_string(c->profile_reason ? c->profile_reason : ""));
  }
  /* pool_size is the size the pool has now (between min_workers and
   * max_workers, the same three numbers for a fixed pool). */
  int current = 0;
  for (int i = 0; i < c->pool_size; i++) current += p->positions[i].worker != NULL;
  json_object_set_new(o, "pool_size", json_integer(p->desired));
  json_object_set_new(o, "min_workers", json_integer(c->min_workers));
  json_object_set_new(o, "max_workers", json_integer(c->pool_size));
  json_object_set_new(o, "workers_current", json_integer(current));
  json_object_set_new(o, "scale_ups", json_integer((json_int_t)p->scale_ups));
  json_object_set_new(o, "scale_downs", json_integer((json_int_t)p->scale_downs));
  json_object_set_new(o, "threads_per_worker", json_integer(c->threads_per_worker));
  json_object_set_new(o, "python_version", json_string(p->python_version ? p->python_version : ""));
  json_object_set_new(o, "free_threaded_build", json_boolean(p->free_threaded));
  int fs_pid, fs_ready;
  sp__forkserver_state(p, &fs_pid, &fs_ready);
  int forking = c->worker_start == SP__START_FORK && !p->fork_unsafe;
  json_object_set_new(o, "worker_start", json_string(forking ? "fork" : "exec"));
  /* Memory of the pool's processes together, fork server included (with
   * preload it holds the adapter every worker shares). */
  sp__procmem_t mem = {0, 0, 0};
  json_t *fsj = json_null();
  if (fs_pid) {
    fsj = json_pack("{s:i, s:b}", "pid", fs_pid, "ready", fs_ready);
    memory_json(fsj, fs_pid, &mem);
  }
  json_object_set_new(o, "fork_server", fsj);
  json_object_set_new(o, "preload",
                      json_string(c->preload == SP__PRELOAD_OFF ? "off"
                                  : !forking || p->preload_off ? "fallback"
                                                               : "on"));
  if (p->preload_off) json_object_set_new(o, "preload_note", json_string(p->preload_note));
  json_object_set_new(o, "fork_server_starts", json_integer((json_int_t)p->fork_server_starts));

  int ready = 0, capacity = 0, busy = 0, gil_on = 0;
  double attach_ms = 0;
  json_t *workers = json_array();
  for (const sp__worker_t *w = p->retiring; w; w = w->retire_next)
    json_array_append_new(workers, worker_json(w, now, &mem));
  for (int i = 0; i < c->pool_size; i++) {
    const sp__worker_t *w = p->positions[i].worker;
    if (w == NULL) continue;
    if (w->state == SP__W_READY) {
      ready++;
      capacity += w->load.capacity;
      busy += w->load.inflight;
      gil_on += w->gil_enabled;
    }
    attach_ms += (double)w->attach_wait_ns / 1e6;
    json_array_append_new(workers, worker_json(w, now, &mem));
  }
  json_object_set_new(o, "attach_wait_ms", json_real(attach_ms));
  /* Any ready worker with the GIL on means calls of this pool may not run
   * Python in parallel; with none ready, what the first HELLO said. */
  json_object_set_new(o, "gil_enabled", json_boolean(ready ? gil_on > 0 : p->gil_enabled));
  json_object_set_new(o, "gil_enabled_workers", json_integer(gil_on));
  json_object_set_new(o, "gil_reenabled", json_integer((json_int_t)p->gil_reenabled));
  json_object_set_new(o, "memory", json_pack("{s:I, s:I, s:I}", "rss_kb", (json_int_t)mem.rss_kb,
                                             "pss_kb", (json_int_t)mem.pss_kb, "uss_kb",
                                             (json_int_t)mem.uss_kb));
  json_object_set_new(o, "ready_workers", json_integer(ready));
  json_object_set_new(o, "capacity", json_integer(capacity));
  /* Calls beyond the threads wait inside their worker (pipeline_depth). */
  int running = busy < capacity ? busy : capacity;
  json_object_set_new(o, "busy_slots", json_integer(running));
  json_object_set_new(o, "idle_slots", json_integer(capacity - running));
  json_object_set_new(o, "pipelined", json_integer(busy - running));
  json_object_set_new(o, "queue_depth", json_integer((json_int_t)p->queue.len));
  json_object_set_new(o, "queue_peak", json_integer((json_int_t)s->queue_peak));
  json_object_set_new(o, "max_queue", json_integer(c->max_queue));
  json_object_set_new(o, "sessions", sp__sessions_json(p, now));

  json_t *failed = json_object();
  uint64_t rejected = 0;
  for (int cat = SP_CAT_VALIDATION; cat <= SP_CAT_INTERNAL; cat++) {
    uint64_t r = atomic_load_explicit(&((sp__pool_t *)p)->rejected[cat], memory_order_relaxed);
    rejected += r;
    json_object_set_new(failed, sp_category_name((sp_category_t)cat),
                        json_integer((json_int_t)(s->failed[cat] + r)));
  }
  json_t *calls = json_object();
  json_object_set_new(calls, "total", json_integer((json_int_t)(s->calls + rejected)));
  json_object_set_new(calls, "rejected_before_dispatch", json_integer((json_int_t)rejected));
  json_object_set_new(calls, "ok", json_integer((json_int_t)s->ok));
  json_object_set_new(calls, "failed", failed);
  json_object_set_new(o, "calls", calls);

  json_t *lat = json_object();
  json_object_set_new(lat, "p50", json_integer((json_int_t)quantile(s, 0.50)));
  json_object_set_new(lat, "p90", json_integer((json_int_t)quantile(s, 0.90)));
  json_object_set_new(lat, "p99", json_integer((json_int_t)quantile(s, 0.99)));
  json_object_set_new(o, "latency_us", lat);

  /* Cumulative histogram for Prometheus: [[le_us, count], ...], last le is null (+Inf). */
  json_t *hist = json_array();
  uint64_t cum = 0;
  for (unsigned i = 0; i <= SP__HIST_NBOUNDS; i++) {
    cum += s->hist[i];
    json_t *pair = json_array();
    json_array_append_new(pair, i < SP__HIST_NBOUNDS ? json_integer((json_int_t)hist_bounds[i]) : json_null());
    json_array_append_new(pair, json_integer((json_int_t)cum));
    json_array_append_new(hist, pair);
  }
  json_t *h = json_object();
  json_object_set_new(h, "buckets", hist);
  json_object_set_new(h, "count", json_integer((json_int_t)cum));
  json_object_set_new(h, "sum_us", json_integer((json_int_t)s->latency_sum_us));
  json_object_set_new(o, "latency_histogram", h);

  json_t *tools = json_object();
  for (size_t i = 0; p->tool_stats != NULL && i < p->tool_count; i++) {
    const sp__tool_stats_t *ts = &p->tool_stats[i];
    json_t *t = json_object();
    json_t *tf = json_object();
    for (int cat = SP_CAT_VALIDATION; cat <= SP_CAT_INTERNAL; cat++)
      json_object_set_new(tf, sp_category_name((sp_category_t)cat), json_integer((json_int_t)ts->failed[cat]));
    json_object_set_new(t, "calls", json_integer((json_int_t)ts->calls));
    json_object_set_new(t, "ok", json_integer((json_int_t)ts->ok));
    json_object_set_new(t, "failed", tf);
    json_object_set_new(tools, p->tool_names[i], t);
  }
  json_object_set_new(o, "tools", tools);
  json_t *rec = json_object();
  for (int r = 0; r < SP__RECYCLE_COUNT; r++)
    json_object_set_new(rec, sp__recycle_reason_name((sp__recycle_reason_t)r),
                        json_integer((json_int_t)s->recycles[r]));
  json_object_set_new(o, "recycles", rec);
  json_object_set_new(o, "retries", json_integer((json_int_t)s->retries));
  json_object_set_new(o, "streams_active", json_integer((json_int_t)p->streams_active));
  json_object_set_new(o, "chunks_sent", json_integer((json_int_t)p->chunks_sent));
  json_object_set_new(o, "nested_calls", json_integer((json_int_t)p->nested_calls));
  json_object_set_new(o, "host_function_calls", json_integer((json_int_t)p->host_calls));
  json_object_set_new(o, "nested_refused", json_integer((json_int_t)p->nested_refused));
  json_object_set_new(o, "calls_waiting_nested", json_integer(p->waiting_calls));
  json_object_set_new(o, "ping_kills", json_integer((json_int_t)s->ping_kills));
  json_object_set_new(o, "degraded", json_boolean(p->degraded));
  if (p->degraded) json_object_set_new(o, "degraded_reason", json_string(p->degraded_reason));
  json_object_set_new(o, "crashes", json_integer((json_int_t)s->crashes));
  json_object_set_new(o, "restarts", json_integer((json_int_t)s->restarts));
  json_object_set_new(o, "workers", workers);
  return o;
}

/* 15 significant digits: 0.1 prints as 0.1, not 0.10000000000000001 (17 digits
 * would round-trip every double, but these are measurements, not keys). */
#define STATS_DUMP_FLAGS (JSON_COMPACT | JSON_REAL_PRECISION(15))

char *sp__stats_pool_json(const sp__pool_t *p) {
  json_t *o = sp__stats_pool(p);
  char *s = json_dumps(o, STATS_DUMP_FLAGS);
  json_decref(o);
  return s;
}

char *sp__stats_all_json(const sp_runtime_t *rt) {
  json_t *a = json_array();
  for (size_t i = 0; i < rt->pool_count; i++) json_array_append_new(a, sp__stats_pool(&rt->pools[i]));
  json_t *o = json_object();
  json_object_set_new(o, "pools", a);
  char *s = json_dumps(o, STATS_DUMP_FLAGS);
  json_decref(o);
  return s;
}

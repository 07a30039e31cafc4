/*
 * report.c - sp_worker_reports*(): every live worker of the asked pools gets
 * one STATS request; each answers with its own report (Host.report in the
 * SDK) on an execution thread. The operation completes once every worker
 * answered, exited or let the timeout pass, with one JSON document. Workers
 * keep a list of the asks they have not answered, so an exit ends them at
 * once. Loop thread, except the entry points at the bottom.
 */
#include <stdlib.h>
#include <string.h>

#include "errors.h"
#include "log.h"
#include "remote.h"
#include "report.h"
#include "runtime.h"
#include "stats.h"
#include "worker.h"

#define DEFAULT_TIMEOUT_MS 5000

struct sp__report_s {
  sp__msg_t msg;
  sp_runtime_t *rt;
  sp__pool_t *pool; /* NULL: every pool */
  int reset;
  int with_stats;
  int64_t timeout_ms;
  sp_done_cb cb;          /* async completion, or NULL for a waiting caller */
  void *ud;
  sp_result_t *res;       /* sync: the caller's */
  _Atomic uint32_t *done; /* sync: the caller's wake word */
  uv_timer_t timer;
  sp__report_ask_t *asks;
  size_t nasks;
  size_t outstanding;
  int finished;
};

static uint64_t g_next_id; /* loop threads only; the id bit keeps them apart from calls */

static void op_closed(uv_handle_t *h) {
  sp__report_t *op = h->data;
  for (size_t i = 0; i < op->nasks; i++) {
    json_decref(op->asks[i].reply);
    free(op->asks[i].missing);
  }
  free(op->asks);
  free(op);
}

/* Unlinks an ask from its worker's list. */
static void unlink_ask(sp__report_ask_t *a) {
  sp__worker_t *w = a->worker;
  if (w == NULL) return;
  for (sp__report_ask_t **pp = &w->report_asks; *pp; pp = &(*pp)->next) {
    if (*pp == a) {
      *pp = a->next;
      break;
    }
  }
  a->worker = NULL;
  a->next = NULL;
}

static json_t *pool_entry(sp__report_t *op, sp__pool_t *p, size_t pool_index) {
  json_t *workers = json_object(), *missing = json_object(), *ts = json_object();
  for (size_t i = 0; i < op->nasks; i++) {
    sp__report_ask_t *a = &op->asks[i];
    if (a->pool != pool_index) continue;
    if (a->reply != NULL) {
      json_object_set(workers, a->name, a->reply);
      json_t *t = json_object_get(a->reply, "thread_safety");
      if (json_is_object(t)) json_object_set(ts, a->name, t);
    } else {
      json_object_set_new(missing, a->name, json_string(a->missing ? a->missing : "no answer"));
    }
  }
  json_t *merged = json_object_size(ts) > 0 ? sp__ts_merge(ts) : NULL;
  if (merged == NULL && p->cfg->thread_safety_checks) {
    /* Checks are on but no worker could say anything: say why. */
    merged = json_pack("{s:b, s:s}", "enabled", 1, "error",
                       json_object_size(missing) ? "no worker answered the report request"
                                                 : "the pool has no live worker");
  }
  json_decref(ts);
  return json_pack("{s:s, s:o, s:o, s:o}", "name", p->cfg->name, "workers", workers, "missing",
                   missing, "thread_safety", merged ? merged : json_null());
}

/* The pool's stats object with "thread_safety" and each worker's "report" added. */
static json_t *pool_stats_entry(sp__report_t *op, sp__pool_t *p, size_t pool_index) {
  json_t *o = sp__stats_pool(p);
  json_t *e = pool_entry(op, p, pool_index);
  if (o == NULL || e == NULL) {
    json_decref(o);
    json_decref(e);
    return NULL;
  }
  json_t *ts = json_object_get(e, "thread_safety");
  if (!json_is_null(ts)) json_object_set(o, "thread_safety", ts);
  json_t *reports = json_object_get(e, "workers"), *w;
  size_t i;
  json_array_foreach(json_object_get(o, "workers"), i, w) {
    json_t *r = json_object_get(reports, json_string_value(json_object_get(w, "id")));
    if (r != NULL) json_object_set(w, "report", r);
  }
  json_decref(e);
  return o;
}

/* The document delivered on success. */
static json_t *build_doc(sp__report_t *op) {
  sp_runtime_t *rt = op->rt;
  json_t *pools = json_array();
  for (size_t k = 0, n = 0; k < rt->pool_count; k++) {
    sp__pool_t *p = &rt->pools[k];
    if (op->pool != NULL && op->pool != p) continue;
    json_t *entry = op->with_stats ? pool_stats_entry(op, p, n) : pool_entry(op, p, n);
    n++;
    if (op->with_stats && op->pool != NULL) {
      json_decref(pools);
      return entry; /* one pool's stats, as sp_stats_json(rt, pool) */
    }
    json_array_append_new(pools, entry);
  }
  return json_pack("{s:o}", "pools", pools);
}

/* Delivers the outcome (code 0: the document) and schedules the op's release. */
static void finish(sp__report_t *op, int code, const char *why) {
  if (op->finished) return;
  op->finished = 1;
  uv_timer_stop(&op->timer);
  for (size_t i = 0; i < op->nasks; i++) unlink_ask(&op->asks[i]);
  sp_result_t own;
  sp_result_t *res = op->res ? op->res : &own;
  memset(res, 0, sizeof(*res));
  sp__error_clear(&res->error);
  if (code == 0) {
    json_t *doc = build_doc(op);
    res->json = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
    json_decref(doc);
    if (res->json == NULL) code = SP_ENOMEM, why = "out of memory building the worker reports";
    if (res->json != NULL && op->with_stats && op->pool == NULL) {
      /* As sp_stats_json(rt, NULL): remote pools too; without them when that fails. */
      sp_error_t ignored = SP_ERROR_INIT;
      sp__remote_stats_merge(op->rt->remote, &res->json, &ignored);
      sp_error_free(&ignored);
    }
    if (res->json != NULL) res->len = strlen(res->json);
  }
  if (code != 0) sp__error_set(&res->error, code, "%s", why);
  if (op->cb != NULL) {
    op->cb(res, op->ud);
    sp_result_free(res);
  } else {
    sp__wake_word(op->done); /* the caller owns res now; op is not theirs */
  }
  uv_close((uv_handle_t *)&op->timer, op_closed);
}

static void ask_done(sp__report_ask_t *a) {
  unlink_ask(a);
  sp__report_t *op = a->op;
  if (--op->outstanding == 0) finish(op, 0, NULL);
}

static void timed_out(uv_timer_t *t) {
  sp__report_t *op = t->data;
  char why[96];
  snprintf(why, sizeof(why), "no answer within %lld ms (every execution thread busy?)",
           (long long)op->timeout_ms);
  for (size_t i = 0; i < op->nasks; i++) {
    sp__report_ask_t *a = &op->asks[i];
    if (a->reply == NULL && a->missing == NULL) a->missing = strdup(why);
  }
  finish(op, 0, NULL);
}

/* Whether a worker takes part: ready, or draining after a recycle. */
static int reportable(const sp__worker_t *w) {
  return w != NULL && (w->state == SP__W_READY || w->state == SP__W_DRAINING);
}

static size_t count_workers(const sp__pool_t *p) {
  size_t n = 0;
  for (int k = 0; k < p->cfg->pool_size; k++) n += reportable(p->positions[k].worker);
  for (const sp__worker_t *w = p->retiring; w; w = w->retire_next) n += reportable(w);
  return n;
}

/* Sends worker w its STATS request as ask a. */
static void ask_worker(sp__report_t *op, sp__report_ask_t *a, sp__worker_t *w, size_t pool) {
  static const char reset_args[] = "{\"reset\":true}", plain_args[] = "{}";
  a->op = op;
  a->pool = pool;
  a->id = SP__REPORT_ID_BIT | ++g_next_id;
  snprintf(a->name, sizeof(a->name), "%s", w->name);
  const char *args = op->reset ? reset_args : plain_args;
  size_t len = op->reset ? sizeof(reset_args) - 1 : sizeof(plain_args) - 1;
  if (sp__worker_send(w, SP__FRAME_STATS, a->id, args, len) != 0) {
    a->missing = strdup("out of memory sending the request");
    return;
  }
  a->worker = w;
  a->next = w->report_asks;
  w->report_asks = a;
  op->outstanding++;
}

void sp__report_accept(sp_runtime_t *rt, sp__msg_t *m) {
  sp__report_t *op = (sp__report_t *)m;
  uv_timer_init(&rt->loop, &op->timer);
  op->timer.data = op;
  if (rt->phase != SP__PHASE_RUNNING) {
    finish(op, SP_ESTOPPED, "the runtime is stopping");
    return;
  }
  size_t total = 0;
  for (size_t k = 0; k < rt->pool_count; k++)
    if (op->pool == NULL || op->pool == &rt->pools[k]) total += count_workers(&rt->pools[k]);
  op->asks = calloc(total ? total : 1, sizeof(*op->asks));
  if (op->asks == NULL) {
    finish(op, SP_ENOMEM, "out of memory asking the workers for reports");
    return;
  }
  for (size_t k = 0, n = 0; k < rt->pool_count; k++) {
    sp__pool_t *p = &rt->pools[k];
    if (op->pool != NULL && op->pool != p) continue;
    for (int i = 0; i < p->cfg->pool_size; i++) {
      sp__worker_t *w = p->positions[i].worker;
      if (reportable(w)) ask_worker(op, &op->asks[op->nasks++], w, n);
    }
    for (sp__worker_t *w = p->retiring; w; w = w->retire_next)
      if (reportable(w)) ask_worker(op, &op->asks[op->nasks++], w, n);
    n++;
  }
  if (op->outstanding == 0) {
    finish(op, 0, NULL);
    return;
  }
  uv_timer_start(&op->timer, timed_out, (uint64_t)op->timeout_ms, 0);
}

void sp__report_reply(sp__worker_t *w, uint64_t id, const uint8_t *body, size_t len, int failed) {
  for (sp__report_ask_t *a = w->report_asks; a; a = a->next) {
    if (a->id != id) continue;
    json_error_t jerr;
    json_t *r = failed ? NULL : json_loadb((const char *)body, len, 0, &jerr);
    if (json_is_object(r)) {
      a->reply = r;
    } else {
      json_decref(r);
      a->missing = strdup(failed ? "the worker failed to build its report"
                                 : "the worker's report is not a JSON object");
    }
    ask_done(a);
    return;
  }
  sp__log(SP__LOG_DEBUG, "[%s/%s] late report %llu ignored", w->pool->cfg->name, w->name,
          (unsigned long long)(id & ~SP__REPORT_ID_BIT));
}

void sp__report_worker_gone(sp__worker_t *w, const char *why) {
  while (w->report_asks != NULL) {
    sp__report_ask_t *a = w->report_asks;
    if (a->missing == NULL) a->missing = strdup(why);
    ask_done(a);
  }
}

/* ---- entry points (any thread) ------------------------------------------ */

static int make_op(sp_runtime_t *rt, const char *pool, const sp_report_opts_t *opts,
                   sp__report_t **out, sp_error_t *err) {
  *out = NULL;
  if (rt == NULL) return sp__error_set(err, SP_EINVAL, "sp_worker_reports: rt must not be NULL");
  if (atomic_load(&rt->stopping)) return sp__error_set(err, SP_ESTOPPED, "the runtime is stopping");
  sp__pool_t *p = NULL;
  if (pool != NULL && (p = sp__rt_find_pool(rt, pool, err)) == NULL) return SP_ENOPOOL;
  sp__report_t *op = calloc(1, sizeof(*op));
  if (op == NULL) return sp__error_set(err, SP_ENOMEM, "out of memory asking for reports");
  op->msg.kind = SP__MSG_REPORT;
  op->rt = rt;
  op->pool = p;
  op->reset = opts ? opts->reset : 0;
  op->with_stats = opts ? opts->with_stats : 0;
  /* Fields added to sp_report_opts_t after 0.2 are read only when opts->size covers them. */
  op->timeout_ms = opts && opts->timeout_ms > 0 ? opts->timeout_ms : DEFAULT_TIMEOUT_MS;
  *out = op;
  return 0;
}

int sp_worker_reports_async(sp_runtime_t *rt, const char *pool, const sp_report_opts_t *opts,
                            sp_done_cb cb, void *userdata, sp_error_t *err) {
  if (cb == NULL) return sp__error_set(err, SP_EINVAL, "sp_worker_reports_async: cb is NULL");
  sp__report_t *op;
  int rc = make_op(rt, pool, opts, &op, err);
  if (rc != 0) return rc;
  op->cb = cb;
  op->ud = userdata;
  if (sp__rt_post(rt, &op->msg) != 0) {
    free(op);
    return sp__error_set(err, SP_ESTOPPED, "the runtime is stopping");
  }
  sp__error_clear(err);
  return 0;
}

int sp_worker_reports(sp_runtime_t *rt, const char *pool, const sp_report_opts_t *opts,
                      sp_result_t *res) {
  if (res == NULL) return SP_EINVAL;
  memset(res, 0, sizeof(*res));
  sp__error_clear(&res->error);
  if (rt != NULL && sp__rt_on_loop_thread(rt))
    return sp__error_set(&res->error, SP_EBADTHREAD,
                         "sp_worker_reports called on the loop thread; use sp_worker_reports_async");
  sp__report_t *op;
  int rc = make_op(rt, pool, opts, &op, &res->error);
  if (rc != 0) return rc;
  _Atomic uint32_t done;
  atomic_init(&done, 0);
  op->res = res;
  op->done = &done;
  if (sp__rt_post(rt, &op->msg) != 0) {
    free(op);
    return sp__error_set(&res->error, SP_ESTOPPED, "the runtime is stopping");
  }
  sp__wait_word(&done);
  return res->error.code;
}

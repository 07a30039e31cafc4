/*
 * call.c - completing a call: its result or error into the caller's
 * sp_result_t, the pool's and tool's counters, then the async callback or the
 * sync caller's wake-up; and expiry when its deadline passes. Loop thread.
 */
#include <stdlib.h>
#include <string.h>

#include "arrays.h"
#include "errors.h"
#include "hostcall.h"
#include "pool.h"
#include "runtime.h"
#include "session.h"
#include "stats.h"
#include "stream.h"
#include "worker.h"

sp__tool_stats_t *sp__call_tool_stats(const sp__call_t *c) {
  const sp__pool_t *p = c->pool;
  if (p->tool_stats == NULL || c->tool_index < 0 || (size_t)c->tool_index >= p->tool_count)
    return NULL;
  return &p->tool_stats[c->tool_index];
}

int sp__call_depth_cap(const sp__call_t *c) {
  const sp__tool_stats_t *ts = sp__call_tool_stats(c);
  /* A nested call waits behind no running call: that one may be its own caller. */
  if (c->depth > 0) return 0;
  uint64_t g = ts ? ts->gap_ewma_ns : 0;
  return g == 0 ? 0 : sp__sched_depth(g, c->pool->cfg->pipeline_depth);
}

const char *sp__call_tool(const sp__call_t *c, size_t *len) {
  return sp__call_frame_tool(c->frame, len);
}

void sp__call_release_inputs(sp__call_t *c) {
  if (c->inputs == NULL) return;
  sp__inputs_release(c->pool->input, c->inputs, c->ninputs);
  free(c->inputs);
  c->inputs = NULL;
  c->ninputs = 0;
}

/* Counts the outcome already in c->res, then hands it over. */
static void complete(sp__call_t *c, int code) {
  sp__pool_t *p = c->pool;
  sp_runtime_t *rt = p->rt;
  sp_result_t *res = c->res;
  if (c->nested != NULL) sp__hostcall_caller_done(c);
  sp__call_release_inputs(c); /* the worker has read them (or never will) */
  if (c->chunk_cb != NULL) sp__stream_forget(rt, c);
  if (c->session != NULL) sp__session_call_done(c);

  p->stats.calls++;
  if (code == 0) p->stats.ok++;
  else p->stats.failed[sp_err_category(code)]++;
  sp__tool_stats_t *ts = sp__call_tool_stats(c);
  if (ts != NULL) {
    ts->calls++;
    if (code == 0) ts->ok++;
    else ts->failed[sp_err_category(code)]++;
  }
  sp__stats_record_latency(&p->stats, sp__now_ns() - c->start_ns);
  rt->active_calls--;

  if (c->cb != NULL) {
    c->cb(res, c->ud);
    sp_result_free(res);
    free(c);
  } else {
    sp__rt_call_done(rt, c); /* the waiting client frees c */
  }
  if (rt->phase == SP__PHASE_DRAINING) sp__rt_check_drained(rt);
}

/* Takes c out of the queue and the deadline heap; its result starts empty. */
static sp_result_t *settle(sp__call_t *c) {
  sp__pool_t *p = c->pool;
  sp_runtime_t *rt = p->rt;
  rt->events++;
  sp__dheap_remove(&rt->deadlines, &c->item);
  if (c->state == SP__CALL_QUEUED) sp__fifo_remove(&p->queue, &c->item);
  c->state = SP__CALL_DONE;
  sp_result_t *res = c->res;
  memset(res, 0, sizeof(*res));
  sp__error_clear(&res->error);
  return res;
}

/* Copies the result JSON into res; the code to complete with. */
static int take_json(sp_result_t *res, const char *json, size_t len) {
  res->json = malloc(len + 1);
  if (res->json == NULL) return sp__error_set(&res->error, SP_ENOMEM, "out of memory copying the result");
  memcpy(res->json, json, len);
  res->json[len] = '\0';
  res->len = len;
  return 0;
}

void sp__call_finish(sp__call_t *c, int code, const char *json, size_t len, sp_error_t *err) {
  sp_result_t *res = settle(c);
  if (code == 0) {
    code = take_json(res, json, len);
  } else if (err != NULL) {
    sp__error_move(&res->error, err);
    res->error.code = code;
    res->error.category = sp_err_category(code);
  } else {
    sp__error_set(&res->error, code, "%s", sp_strerror(code));
  }
  complete(c, code);
}

int sp__call_succeed(sp__call_t *c, const char *json, size_t len, sp__shm_t *region,
                     const uint8_t *arrays, size_t arrays_len) {
  sp_result_t *res = settle(c);
  int code = take_json(res, json, len);
  if (code == 0 && arrays != NULL) {
    code = sp__result_arrays(region, arrays, arrays_len, res);
    if (code != 0) {
      sp__result_arrays_discard(region, arrays, arrays_len);
      free(res->json);
      res->json = NULL;
      res->len = 0;
      size_t tl;
      const char *tool = sp__call_tool(c, &tl);
      sp__error_set(&res->error, code, "the arrays of the result of tool '%.*s' in pool '%s' %s",
                    (int)tl, tool, c->pool->cfg->name,
                    code == SP_ENOMEM ? "could not be kept: out of memory"
                                      : "are malformed (protocol error)");
    }
  }
  complete(c, code);
  return code;
}

void sp__call_cancel(sp__call_t *c, const char *by) {
  if (c->state == SP__CALL_DONE) return;
  size_t tool_len;
  const char *tool = sp__call_tool(c, &tool_len);
  sp_error_t e;
  sp__error_set(&e, SP_ECANCELLED, "call to tool '%.*s' in pool '%s' was cancelled %s%s",
                (int)tool_len, tool, c->pool->cfg->name, by,
                c->chunk_cb != NULL && c->chunks > 0 ? " (after its first chunks)" : "");
  if (c->state == SP__CALL_RUNNING && c->worker != NULL) sp__worker_abandon(c->worker, c);
  sp__call_finish(c, SP_ECANCELLED, NULL, 0, &e);
}

void sp__call_expire(sp__call_t *c) {
  sp__pool_t *p = c->pool;
  size_t tool_len;
  const char *tool = sp__call_tool(c, &tool_len);
  int tl = (int)tool_len;
  sp_error_t e;
  if (c->state == SP__CALL_QUEUED) {
    if (c->item.due_ms < c->deadline_ms && sp__session_waits_for_worker(c)) {
      sp__error_set(&e, SP_EQUEUETIMEOUT,
                    "call to tool '%.*s' in pool '%s' waited %lld ms (queue_timeout) for the "
                    "worker of session '%s' (mode strict), which stayed busy",
                    tl, tool, p->cfg->name, (long long)p->cfg->queue_timeout_ms, c->session->id);
    } else if (c->item.due_ms < c->deadline_ms) {
      sp__error_set(&e, SP_EQUEUETIMEOUT,
                    "call to tool '%.*s' in pool '%s' waited %lld ms (queue_timeout) for a free "
                    "worker slot; %zu calls queued",
                    tl, tool, p->cfg->name, (long long)p->cfg->queue_timeout_ms, p->queue.len);
    } else {
      sp__error_set(&e, SP_ETIMEOUT,
                    "call to tool '%.*s' in pool '%s' timed out while waiting in the queue",
                    tl, tool, p->cfg->name);
    }
  } else {
    sp__worker_t *w = c->worker;
    sp__error_set(&e, SP_ETIMEOUT, "call to tool '%.*s' in pool '%s' timed out on worker %s",
                  tl, tool, p->cfg->name, w ? w->name : "?");
    if (w != NULL) sp__worker_abandon(w, c);
  }
  sp__call_finish(c, e.code, NULL, 0, &e);
}


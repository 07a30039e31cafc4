/*
 * hostcall.c - tools that call back into the host: a HOSTCALL frame becomes a
 * nested call (of a tool of any pool) or a call of a host function on libuv's
 * thread pool; the outcome goes back to the waiting thread as HOSTREPLY.
 * Nested calls get at most their caller's remaining time, are cancelled when
 * their caller ends, and are refused when the chain is too deep or waiting
 * for a slot could never end (see "No deadlock" below). Loop thread, except
 * fn_work (a thread-pool thread). The registry of host functions is hostfn.c.
 */
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errors.h"
#include "hostcall.h"
#include "hostfn.h"
#include "jsonargs.h"
#include "log.h"
#include "pool.h"
#include "runtime.h"
#include "worker.h"

/* ---- nested calls (loop thread) ------------------------------------------ */

/* One HOSTCALL in flight: a nested tool call or a host function call. */
typedef struct sp__hostcall_s {
  struct sp__hostcall_s *next, *prev; /* in its caller's list (c->nested) */
  sp__call_t *caller; /* the call whose tool waits for it; NULL once that call ended */
  sp_runtime_t *rt;
  sp__pool_t *caller_pool;
  uint64_t id; /* the worker's request id for it (HOSTREPLY's) */
  int kind;    /* sp__hostcall_kind_t */
  sp__call_t *child; /* TOOL: the nested call, until it completes */
  /* FUNCTION: the function, its arguments, its outcome. */
  uv_work_t work;
  sp__hostfn_t *fn;
  char *args;
  char *result;
  int code;
  sp_error_t err;
} sp__hostcall_t;

static void attach(sp__hostcall_t *h, sp__call_t *caller) {
  h->caller = caller;
  h->prev = NULL;
  h->next = caller->nested;
  if (caller->nested != NULL) caller->nested->prev = h;
  caller->nested = h;
  if (h->kind == SP__HOSTCALL_TOOL && caller->nested_tools++ == 0) caller->pool->waiting_calls++;
}

static void detach(sp__hostcall_t *h) {
  sp__call_t *c = h->caller;
  if (c == NULL) return;
  if (h->prev != NULL) h->prev->next = h->next;
  else c->nested = h->next;
  if (h->next != NULL) h->next->prev = h->prev;
  h->next = h->prev = NULL;
  if (h->kind == SP__HOSTCALL_TOOL && --c->nested_tools == 0) c->pool->waiting_calls--;
  h->caller = NULL;
}

/* Sends a HOSTREPLY to worker w (NULL: the caller's worker is gone). */
static void reply(sp__worker_t *w, uint64_t id, int code, const char *text, size_t len) {
  if (w == NULL || w->exited || w->state == SP__W_DEAD) return;
  size_t max = (size_t)w->pool->cfg->max_frame_bytes;
  char *big = NULL;
  if (code == 0 && len + 1 > max) {
    /* The waiting worker would refuse a frame past its limit (and die of it). */
    code = SP_ETOOLARGE;
    if (asprintf(&big,
                 "{\"code\":\"SP_ETOOLARGE\",\"category\":\"protocol\",\"message\":\"the nested "
                 "call's result of %zu bytes exceeds max_frame_bytes (%zu) of pool '%s'\"}",
                 len, max, w->pool->cfg->name) < 0)
      big = NULL;
    text = big ? big : "{}";
    len = strlen(text);
  }
  if (sp__buf_append_hostreply(&w->wbuf, id, code, text, len) == 0)
    sp__rt_mark_dirty(w->pool->rt, w);
  free(big);
}

/* Sends err as a HOSTREPLY error: JSON {code, category, message, python_type, traceback}. */
static char *error_json(int code, const char *message, size_t message_len, const char *type,
                        const char *traceback) {
  json_t *o = json_pack("{s:s, s:s, s:s#, s:s, s:s}", "code", sp_err_name(code), "category",
                        sp_category_name(sp_err_category(code)), "message", message, message_len,
                        "python_type", type, "traceback", traceback);
  char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
  json_decref(o);
  return text;
}

static void reply_error(sp__worker_t *w, uint64_t id, const sp_error_t *e) {
  int code = e->code ? e->code : SP_EIO;
  const char *msg = e->message ? e->message : "";
  size_t max = w != NULL ? (size_t)w->pool->cfg->max_frame_bytes : 0;
  char *text = error_json(code, msg, strlen(msg), e->python_type ? e->python_type : "",
                          e->traceback ? e->traceback : "");
  if (text != NULL && strlen(text) + 1 > max && max > 0) {
    /* Past the waiting worker's frame limit: no traceback, and the message cut
     * (at a character boundary) to fit, which max_frame_bytes >= 4 KiB allows. */
    size_t n = strlen(msg), keep = max / 8; /* escaping may grow it 6x */
    if (n > keep) {
      n = keep;
      while (n > 0 && ((unsigned char)msg[n] & 0xC0) == 0x80) n--;
    }
    free(text);
    text = error_json(code, msg, n, e->python_type ? e->python_type : "", "");
  }
  reply(w, id, code, text ? text : "{}", text ? strlen(text) : 2);
  free(text);
}

/* Answers HOSTCALL id from worker w with an error, counted against its pool. */
static void refuse(sp__worker_t *w, uint64_t id, int code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;
static void refuse(sp__worker_t *w, uint64_t id, int code, const char *fmt, ...) {
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  w->pool->nested_refused++;
  sp_error_t e;
  sp_error_set(&e, code, msg, NULL, NULL);
  reply_error(w, id, &e);
  sp_error_free(&e);
}

/* ---- No deadlock ----------------------------------------------------------
 * A nested call holds its caller's slot while it waits for one of its own, so
 * waiting for a slot can be waiting for itself. Two rules keep every wait
 * finite; both fail the nested call at once with SP_EDEADLOCK:
 * - A nested call into a pool its chain already holds a slot of (its own
 *   pool, or one further up) must find a free thread at once.
 * - A nested call that would wait in a pool's queue must not close a cycle of
 *   waits: it is refused when every thread of that pool is blocked by a call
 *   that waits (through nested calls queued or running, in any pools) on a
 *   pool in the same state, counting this call's caller as waiting on the
 *   pool it asks for (would_deadlock). Every wait edge is checked when it is
 *   made, so no cycle forms.
 * Nested calls are never pipelined behind a busy worker's running call
 * (sp__call_depth_cap), so "a free thread" really is one. */

static int free_thread(const sp__pool_t *p) {
  for (int i = 0; i < p->cfg->pool_size; i++) {
    const sp__load_t *l = p->loads[i];
    if (l != NULL && l->ready && l->inflight < l->capacity) return 1;
  }
  return 0;
}

static int in_chain(const sp__call_t *c, const sp__pool_t *p) {
  for (; c != NULL; c = c->origin ? c->origin->caller : NULL)
    if (c->pool == p) return 1;
  return 0;
}

/* The config of the pool with the smallest max_call_depth along c's chain:
 * every pool a chain passes through bounds how deep it may go. */
static const sp__pool_config_t *chain_limit(const sp__call_t *c) {
  const sp__pool_config_t *strict = c->pool->cfg;
  for (; c != NULL; c = c->origin ? c->origin->caller : NULL)
    if (c->pool->cfg->max_call_depth < strict->max_call_depth) strict = c->pool->cfg;
  return strict;
}

/* The search of would_deadlock: the pools on the current path, and the wait
 * being asked for (caller would wait on target). */
#define WAIT_PATH_MAX 64
typedef struct {
  const sp__pool_t *path[WAIT_PATH_MAX];
  int n;
  const sp__call_t *caller;
  const sp__pool_t *target;
} waits_t;

static int pool_stuck(waits_t *g, const sp__pool_t *p);

/* Whether call c waits, directly or through its nested calls, on a stuck pool. */
static int call_stuck(waits_t *g, const sp__call_t *c) {
  if (c == g->caller) return pool_stuck(g, g->target);
  for (const sp__hostcall_t *h = c->nested; h != NULL; h = h->next) {
    const sp__call_t *child = h->child; /* NULL: a host function, which moves on */
    if (child == NULL) continue;
    if (child->state == SP__CALL_QUEUED && pool_stuck(g, child->pool)) return 1;
    if (child->state == SP__CALL_RUNNING && call_stuck(g, child)) return 1;
  }
  return 0;
}

/*
 * Whether no thread of p can ever free: each active position has a ready
 * worker, and at least `capacity` of each worker's calls are stuck. A pool
 * met again on the path is a cycle of waits, stuck by definition; a position
 * whose worker is starting or respawning is capacity on its way, not stuck.
 */
static int pool_stuck(waits_t *g, const sp__pool_t *p) {
  for (int i = 0; i < g->n; i++)
    if (g->path[i] == p) return 1;
  if (g->n == WAIT_PATH_MAX) return 0; /* too long to follow: assume it moves */
  g->path[g->n++] = p;
  int stuck = 1;
  for (int i = 0; i < p->cfg->pool_size && stuck; i++) {
    const sp__position_t *pos = &p->positions[i];
    if (!pos->active) continue;
    const sp__worker_t *w = pos->worker;
    if (w == NULL || w->state != SP__W_READY) {
      stuck = 0;
      break;
    }
    int blocked = 0;
    for (int s = 0; s < w->nslots && blocked < w->load.capacity; s++) {
      const sp__call_t *c = w->slot_calls[s];
      if (c != NULL && c->state == SP__CALL_RUNNING && (c->nested != NULL || c == g->caller) &&
          call_stuck(g, c))
        blocked++;
    }
    if (blocked < w->load.capacity) stuck = 0;
  }
  g->n--;
  return stuck;
}

/* Whether caller waiting in target's queue would close a cycle of waits. */
static int would_deadlock(const sp__call_t *caller, const sp__pool_t *target) {
  waits_t g;
  g.n = 0;
  g.caller = caller;
  g.target = target;
  return pool_stuck(&g, target);
}

/* The nested tool call completed: its outcome goes to the waiting thread. */
static void nested_done(sp_result_t *res, void *ud) {
  sp__hostcall_t *h = ud;
  h->child = NULL;
  if (h->caller != NULL) {
    if (res->error.code == 0) reply(h->caller->worker, h->id, 0, res->json, res->len);
    else reply_error(h->caller->worker, h->id, &res->error);
    detach(h);
  }
  free(h);
}

static void start_tool(sp__worker_t *w, sp__call_t *caller, uint64_t id,
                       const sp__hostcall_view_t *v, int64_t left_ms) {
  sp_runtime_t *rt = w->pool->rt;
  char pool[256], tool[256];
  if (v->pool_len >= sizeof(pool) || v->name_len >= sizeof(tool)) {
    refuse(w, id, SP_EINVAL, "nested call: pool or tool name longer than 255 bytes");
    return;
  }
  memcpy(pool, v->pool, v->pool_len);
  pool[v->pool_len] = '\0';
  memcpy(tool, v->name, v->name_len);
  tool[v->name_len] = '\0';
  char *args = strndup(v->args, v->args_len);
  if (args == NULL) {
    refuse(w, id, SP_ENOMEM, "out of memory starting a nested call");
    return;
  }
  /* Nested results come as JSON lists (tools read JSON), within the caller's time. */
  sp_call_opts_t opts = SP_CALL_OPTS_INIT;
  opts.timeout_ms = left_ms;
  opts.arrays_as_lists = 1;
  sp__call_t *child = NULL;
  sp_error_t e;
  int rc = sp__rt_make_call(rt, pool, tool, args, &opts, &child, &e);
  free(args);
  if (rc != 0) {
    char msg[1200];
    size_t tl;
    const char *ct = sp__call_tool(caller, &tl);
    snprintf(msg, sizeof(msg), "nested call from tool '%.*s' of pool '%s': %s", (int)tl, ct,
             caller->pool->cfg->name, e.message);
    refuse(w, id, rc, "%s", msg);
    sp_error_free(&e);
    return;
  }
  sp__pool_t *target = child->pool;
  const char *why = NULL;
  if (!free_thread(target) || target->queue.len > 0) {
    if (in_chain(caller, target))
      why = "every slot of it is busy and this call's chain already holds one";
    else if (would_deadlock(caller, target))
      why = "every slot of it is held by a call that waits, through nested calls, for this one";
  }
  if (why != NULL) {
    free(child);
    refuse(w, id, SP_EDEADLOCK,
           "nested call to tool '%s' in pool '%s' would deadlock: %s (add workers or threads "
           "to pool '%s', or call fewer tools from tools)",
           tool, target->cfg->name, why, target->cfg->name);
    return;
  }
  sp__hostcall_t *h = calloc(1, sizeof(*h));
  if (h == NULL) {
    free(child);
    refuse(w, id, SP_ENOMEM, "out of memory starting a nested call");
    return;
  }
  h->rt = rt;
  h->caller_pool = caller->pool;
  h->id = id;
  h->kind = SP__HOSTCALL_TOOL;
  h->child = child;
  child->depth = caller->depth + 1;
  child->origin = h;
  child->idempotent = 0;
  child->cb = nested_done;
  child->ud = h;
  child->res = &child->own;
  caller->pool->nested_calls++;
  attach(h, caller);
  sp__rt_accept_call(rt, child);
}

/* ---- host functions on libuv's thread pool -------------------------------- */

static void fn_work(uv_work_t *req) {
  sp__hostcall_t *h = req->data;
  sp__hostfn_t *f = h->fn;
  const char *name = sp__hostfn_name(f);
  sp_error_t e;
  sp__error_clear(&e);
  char *out = NULL;
  int rc = sp__hostfn_run(f, h->args, &out, &e);
  if (rc == 0) {
    json_error_t jerr;
    json_t *check = out ? json_loads(out, JSON_DECODE_ANY, &jerr) : NULL;
    if (out != NULL && check == NULL) {
      rc = sp__error_set(&h->err, SP_EBADJSON,
                         "host function '%s' returned text that is not JSON: %s", name, jerr.text);
      free(out);
      out = NULL;
    }
    json_decref(check);
    h->result = out ? out : strdup("null");
  } else {
    int code = rc < 0 && sp__err_is_known(rc) ? rc : SP_EIO;
    char *msg = NULL;
    if (asprintf(&msg, "host function '%s' failed: %s", name,
                 e.code != 0 && e.message && *e.message ? e.message : sp_strerror(code)) < 0)
      msg = NULL;
    sp_error_set(&h->err, code, msg ? msg : "host function failed", NULL, NULL);
    free(msg);
    free(out);
    rc = code;
  }
  if (e.code != 0) sp_error_free(&e);
  h->code = rc;
  sp__hostfn_release(h->rt, f);
  h->fn = NULL;
}

static void fn_after(uv_work_t *req, int status) {
  sp__hostcall_t *h = req->data;
  (void)status;
  if (h->caller != NULL) {
    sp__worker_t *w = h->caller->worker;
    if (h->code == 0 && h->result != NULL) reply(w, h->id, 0, h->result, strlen(h->result));
    else reply_error(w, h->id, &h->err);
    detach(h);
  } /* else: its caller is gone; the result is dropped */
  sp_error_free(&h->err);
  free(h->result);
  free(h->args);
  sp_runtime_t *rt = h->rt;
  free(h);
  sp__rt_settle(rt);
}

static void start_function(sp__worker_t *w, sp__call_t *caller, uint64_t id,
                           const sp__hostcall_view_t *v) {
  sp_runtime_t *rt = w->pool->rt;
  char top, why[256];
  if (sp__json_args_check(v->args, v->args_len, &top, why, sizeof(why)) != 0 || top != '{') {
    refuse(w, id, SP_EBADARGS, "arguments for host function '%.*s' must be a JSON object",
           (int)v->name_len, v->name);
    return;
  }
  sp__hostcall_t *h = calloc(1, sizeof(*h));
  if (h == NULL || (h->args = strndup(v->args, v->args_len)) == NULL) {
    free(h);
    refuse(w, id, SP_ENOMEM, "out of memory calling a host function");
    return;
  }
  h->fn = sp__hostfn_acquire(rt, v->name, v->name_len);
  if (h->fn == NULL) {
    free(h->args);
    free(h);
    refuse(w, id, SP_ENOFUNC,
           "unknown host function '%.*s' (the host registers them with sp_register_host_function)",
           (int)v->name_len, v->name);
    return;
  }
  h->rt = rt;
  h->caller_pool = caller->pool;
  h->id = id;
  h->kind = SP__HOSTCALL_FUNCTION;
  h->work.data = h;
  sp__error_clear(&h->err);
  int urc = uv_queue_work(&rt->loop, &h->work, fn_work, fn_after);
  if (urc != 0) {
    sp__hostfn_release(rt, h->fn);
    free(h->args);
    free(h);
    refuse(w, id, SP_EIO, "cannot queue the host function: %s", uv_strerror(urc));
    return;
  }
  caller->pool->host_calls++;
  attach(h, caller);
}

/* ---- frames and completion ------------------------------------------------ */

int sp__hostcall_on_frame(sp__worker_t *w, const sp__frame_t *f) {
  sp__hostcall_view_t v;
  if (sp__hostcall_body_parse(f->body, f->length, &v) != 0 || f->id == 0) {
    sp__log(SP__LOG_ERROR, "[%s/%s] malformed HOSTCALL frame; killing the worker",
            w->pool->cfg->name, w->name);
    sp__worker_kill(w, "it sent a malformed HOSTCALL frame");
    return -1;
  }
  uint32_t slot = (uint32_t)(v.parent & 0xffff);
  sp__call_t *caller = NULL;
  if (slot < (uint32_t)w->nslots && w->slot_ids[slot] == v.parent) caller = w->slot_calls[slot];
  if (caller == NULL || caller->state != SP__CALL_RUNNING) {
    /* Its caller timed out or was cancelled: its thread is being told too. */
    refuse(w, f->id, SP_ECANCELLED, "the call that made this nested call has ended");
    return 0;
  }
  const sp__pool_config_t *strict = chain_limit(caller);
  if (caller->depth + 1 > strict->max_call_depth) {
    refuse(w, f->id, SP_EDEPTH,
           "callback chain too deep: this nested call would be level %d, beyond max_call_depth "
           "(%d) of pool '%s'",
           caller->depth + 1, strict->max_call_depth, strict->name);
    return 0;
  }
  int64_t left = caller->deadline_ms - sp__now_ms();
  if (left < 1) {
    refuse(w, f->id, SP_ETIMEOUT, "the calling tool has no time left for a nested call");
    return 0;
  }
  if (w->pool->rt->phase != SP__PHASE_RUNNING) {
    refuse(w, f->id, SP_ESTOPPED, "the runtime is stopping");
    return 0;
  }
  if (v.kind == SP__HOSTCALL_TOOL) start_tool(w, caller, f->id, &v, left);
  else start_function(w, caller, f->id, &v);
  return 0;
}

void sp__hostcall_caller_done(sp__call_t *c) {
  while (c->nested != NULL) {
    sp__hostcall_t *h = c->nested;
    detach(h);
    /* A nested tool call ends with its caller (its own nested calls follow);
     * a host function runs on, and its result is dropped. */
    if (h->child != NULL) sp__call_cancel(h->child, "because the call that made it ended");
  }
}

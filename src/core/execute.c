/*
 * execute.c - the public call entry points: finding the pool and tool,
 * checking the arguments and arrays on the calling thread, building the call
 * with its encoded CALL frame, and handing it to the loop thread (sp_execute,
 * sp_execute_async); results, arrays and their release.
 */
#include <stdlib.h>
#include <string.h>

#include "arrays.h"
#include "errors.h"
#include "jsonargs.h"
#include "remote.h"
#include "runtime.h"
#include "session.h"
#include "stream.h"

sp__pool_t *sp__rt_find_pool(sp_runtime_t *rt, const char *name, sp_error_t *err) {
  for (size_t i = 0; i < rt->pool_count; i++)
    if (strcmp(rt->pools[i].cfg->name, name) == 0) return &rt->pools[i];
  char names[512] = "";
  size_t used = 0;
  for (size_t i = 0; i < rt->pool_count && used < sizeof(names); i++)
    used += (size_t)snprintf(names + used, sizeof(names) - used, "%s%s", i ? ", " : "",
                             rt->pools[i].cfg->name);
  sp__remote_pool_t *rp = sp__remote_find(rt->remote, name);
  if (rp != NULL)
    sp__error_set(err, SP_ENOPOOL, "pool '%s' is remote (%s): calls, streams, tools and "
                  "statistics reach it, not sp_array_alloc or worker reports", name,
                  sp__remote_url(rp));
  else
    sp__error_set(err, SP_ENOPOOL, "unknown pool '%s' (pools: %s)", name, names);
  return NULL;
}

/* The one definition of valid arguments (jsonargs.c), shared with the worker's decoder. */
static int check_args(const sp__pool_t *p, const char *tool, const char *args, size_t len,
                      sp_error_t *err) {
  char why[256], top;
  if (sp__json_args_check(args, len, &top, why, sizeof(why)) != 0)
    return sp__error_set(err, SP_EBADJSON, "arguments for tool '%s' in pool '%s' are not valid JSON: %s",
                         tool, p->cfg->name, why);
  int ok = top == '{';
  const char *kind = top == '[' ? "an array" : top == '"' ? "a string" : top == '0' ? "a number"
                     : top == 't' || top == 'f' ? "a boolean" : "null";
  if (!ok)
    return sp__error_set(err, SP_EBADARGS,
                         "arguments for tool '%s' in pool '%s' must be a JSON object, got %s", tool,
                         p->cfg->name, kind);
  return 0;
}

/* The call's session (sp_call_opts_t.session, since 0.3) and its mode, checked. */
static int check_session(const sp__pool_t *p, const char *tool, const sp_call_opts_t *opts,
                         const char **sid, size_t *len, int *mode, sp_error_t *err) {
  if (opts == NULL || opts->size < offsetof(sp_call_opts_t, session_mode) + sizeof(int) ||
      opts->session == NULL)
    return 0;
  char why[96];
  if (sp__session_id_check(opts->session, len, why, sizeof(why)) != 0)
    return sp__error_set(err, SP_EINVAL, "session id of the call to tool '%s' in pool '%s' %s",
                         tool, p->cfg->name, why);
  if (opts->session_mode < SP_SESSION_HINT || opts->session_mode > SP_SESSION_STRICT_FAIL_FAST)
    return sp__error_set(err, SP_EINVAL,
                         "unknown session mode %d of the call to tool '%s' in pool '%s' (expected "
                         "SP_SESSION_HINT, SP_SESSION_STRICT or SP_SESSION_STRICT_FAIL_FAST)",
                         opts->session_mode, tool, p->cfg->name);
  *sid = opts->session;
  *mode = opts->session_mode;
  return 0;
}

/* Validates on the calling thread and builds the call with its encoded frame. */
static int build_call(sp_runtime_t *rt, const char *pool, const char *tool, const char *args,
                      const sp_call_opts_t *opts, sp__call_t **out, sp__pool_t **found,
                      sp_error_t *err) {
  *out = NULL;
  if (rt == NULL || pool == NULL || tool == NULL)
    return sp__error_set(err, SP_EINVAL, "runtime, pool and tool must not be NULL");
  if (atomic_load_explicit(&rt->stopping, memory_order_relaxed))
    return sp__error_set(err, SP_ESTOPPED, "the runtime is stopping");
  sp__pool_t *p = *found = sp__rt_find_pool(rt, pool, err);
  if (p == NULL) return SP_ENOPOOL;
  int tool_index = sp__pool_find_tool(p, tool);
  if (tool_index < 0) {
    char names[768] = "";
    size_t used = 0;
    for (size_t i = 0; i < p->tool_count && used < sizeof(names); i++)
      used += (size_t)snprintf(names + used, sizeof(names) - used, "%s%s", i ? ", " : "",
                               p->tool_names[i]);
    /* The seed's snippets define methods without @tool: say what is missing. */
    char quoted[160];
    snprintf(quoted, sizeof(quoted), "\"%s\"", tool);
    if (p->methods_without_tool != NULL && strstr(p->methods_without_tool, quoted) != NULL)
      return sp__error_set(err, SP_ENOTOOL,
                           "'%s' is a method of the adapter of pool '%s' but not a tool: mark it with "
                           "@tool (from snakepit_bridge import tool) to call it (tools: %s)",
                           tool, pool, names);
    return sp__error_set(err, SP_ENOTOOL, "unknown tool '%s' in pool '%s' (tools: %s)", tool, pool,
                         names);
  }
  if (args == NULL) args = "{}";
  size_t alen = strlen(args);
  size_t tlen = strlen(tool);
  int rc = check_args(p, tool, args, alen, err);
  if (rc != 0) return rc;
  const char *sid = NULL;
  size_t sid_len = 0;
  int mode = 0;
  rc = check_session(p, tool, opts, &sid, &sid_len, &mode, err);
  if (rc != 0) return rc;
  size_t sess_extra = sid ? sp__call_session_size(sid_len) : 0;
  size_t frame_len = sp__call_frame_size(tlen, alen, sess_extra);
  if (frame_len - SP__FRAME_HEADER_SIZE > (size_t)p->cfg->max_frame_bytes)
    return sp__error_set(err, SP_ETOOLARGE,
                         "arguments of %zu bytes for tool '%s' exceed max_frame_bytes (%lld) of "
                         "pool '%s'",
                         alen, tool, (long long)p->cfg->max_frame_bytes, pool);
  /* Fields added to sp_call_opts_t after 0.2 are read only when opts->size covers them. */
  size_t narrays = opts ? opts->array_count : 0;
  unsigned flags = (opts && opts->arrays_as_lists ? SP__FLAG_LISTS : 0) |
                   (opts && opts->arrays_writable ? SP__FLAG_WRITABLE : 0) |
                   (sid ? SP__FLAG_SESSION : 0);
  sp__inputs_t in;
  memset(&in, 0, sizeof(in));
  if (narrays > 0) {
    rc = sp__inputs_prepare(p->input, p->cfg->name, tool, opts->arrays, narrays, args, alen,
                            frame_len - SP__FRAME_HEADER_SIZE, (size_t)p->cfg->max_frame_bytes,
                            &in, err);
    if (rc != 0) return rc;
    frame_len += in.extra;
    flags |= SP__FLAG_ARRAYS;
  }
  sp__call_t *c = malloc(sizeof(*c) + frame_len);
  if (c == NULL) {
    sp__inputs_release(p->input, in.owned, in.nowned);
    sp__inputs_clear(&in, NULL, NULL);
    return sp__error_set(err, SP_ENOMEM, "out of memory building the call");
  }
  memset(c, 0, sizeof(*c));
  c->msg.kind = SP__MSG_CALL;
  sp__sched_item_init(&c->item);
  c->pool = p;
  c->tool_index = tool_index;
  c->idempotent = opts ? opts->idempotent : 0;
  int64_t timeout = opts && opts->timeout_ms > 0 ? opts->timeout_ms : p->cfg->timeout_ms;
  c->start_ns = sp__now_ns();
  c->deadline_ms = sp__now_ms() + timeout;
  atomic_init(&c->done, 0);
  c->frame_len = frame_len;
  uint8_t *extra = sp__call_frame_write(c->frame, flags, tool, tlen, args, alen,
                                        sess_extra + in.extra);
  if (sid != NULL) {
    c->sid = (const char *)extra + SP__SESSION_PREFIX_SIZE;
    c->sid_len = sid_len;
    c->session_mode = mode;
    extra = sp__call_session_write(extra, sid, sid_len);
  }
  if (narrays > 0) {
    sp__inputs_encode(&in, extra);
    sp__inputs_clear(&in, &c->inputs, &c->ninputs);
  }
  *out = c;
  return 0;
}

/* build_call, counting refusals against the pool they were meant for. */
int sp__rt_make_call(sp_runtime_t *rt, const char *pool, const char *tool, const char *args,
                     const sp_call_opts_t *opts, sp__call_t **out, sp_error_t *err) {
  sp__pool_t *p = NULL;
  int rc = build_call(rt, pool, tool, args, opts, out, &p, err);
  if (rc != 0 && p != NULL)
    atomic_fetch_add_explicit(&p->rejected[sp_err_category(rc)], 1, memory_order_relaxed);
  return rc;
}

int sp_execute(sp_runtime_t *rt, const char *pool, const char *tool, const char *args_json,
               const sp_call_opts_t *opts, sp_result_t *res) {
  if (res == NULL) return SP_EINVAL;
  memset(res, 0, sizeof(*res));
  sp__error_clear(&res->error);
  if (rt != NULL && sp__rt_on_loop_thread(rt))
    return sp__error_set(&res->error, SP_EBADTHREAD,
                         "sp_execute called from a completion callback; use sp_execute_async");
  sp__remote_pool_t *rp = rt ? sp__remote_find(rt->remote, pool) : NULL;
  if (rp != NULL) return sp__remote_execute(rt->remote, rp, tool, args_json, opts, res);
  sp__call_t *c = NULL;
  int rc = sp__rt_make_call(rt, pool, tool, args_json, opts, &c, &res->error);
  if (rc != 0) return rc;
  c->res = res;
  c->wait_bit = sp__wait_bit();
  if (sp__rt_post(rt, &c->msg) != 0) {
    free(c);
    return sp__error_set(&res->error, SP_ESTOPPED, "the runtime is stopping");
  }
  sp__wait_call(rt, c);
  free(c);
  return res->error.code;
}

int sp_execute_async(sp_runtime_t *rt, const char *pool, const char *tool, const char *args_json,
                     const sp_call_opts_t *opts, sp_done_cb cb, void *userdata, sp_error_t *err) {
  sp__error_clear(err); /* accepted calls leave it holding no error */
  if (cb == NULL) return sp__error_set(err, SP_EINVAL, "sp_execute_async: cb must not be NULL");
  sp__remote_pool_t *rp = rt ? sp__remote_find(rt->remote, pool) : NULL;
  if (rp != NULL) return sp__remote_execute_async(rt->remote, rp, tool, args_json, opts, cb, userdata, err);
  sp__call_t *c = NULL;
  int rc = sp__rt_make_call(rt, pool, tool, args_json, opts, &c, err);
  if (rc != 0) return rc;
  c->cb = cb;
  c->ud = userdata;
  c->res = &c->own;
  /* From an event source's run() the call goes straight in (the source's turn
   * flushes it); everywhere else through the queue. */
  if (rt->in_source && sp__rt_on_loop_thread(rt)) {
    sp__rt_accept_call(rt, c);
  } else if (sp__rt_post(rt, &c->msg) != 0) {
    free(c); /* not accepted: its callback never runs */
    return sp__error_set(err, SP_ESTOPPED, "the runtime is stopping");
  }
  return 0;
}

void sp_result_free(sp_result_t *res) {
  if (res == NULL) return;
  free(res->json);
  res->json = NULL;
  res->len = 0;
  sp_error_free(&res->error);
  sp__result_arrays_free(res);
}

int sp_array_alloc(sp_runtime_t *rt, const char *pool, size_t nbytes, void **data,
                   sp_error_t *err) {
  if (data == NULL) return sp__error_set(err, SP_EINVAL, "sp_array_alloc: data is NULL");
  *data = NULL;
  if (rt == NULL || pool == NULL)
    return sp__error_set(err, SP_EINVAL, "sp_array_alloc: rt and pool must not be NULL");
  if (atomic_load(&rt->stopping)) return sp__error_set(err, SP_ESTOPPED, "the runtime is stopping");
  sp__pool_t *p = sp__rt_find_pool(rt, pool, err);
  if (p == NULL) return SP_ENOPOOL;
  uint64_t off;
  if (nbytes == 0 || sp__shm_alloc(p->input, nbytes, &off) != 0) {
    size_t used = 0, largest = 0;
    sp__shm_usage(p->input, &used, &largest);
    return sp__error_set(err, nbytes == 0 ? SP_EINVAL : SP_ETOOLARGE,
                         "cannot allocate %zu bytes in the shared memory of pool '%s' "
                         "(max_shared_memory %zu bytes, %zu in use, largest free block %zu)%s",
                         nbytes, pool, p->input->size, used, largest,
                         nbytes == 0 ? "" : "; raise max_shared_memory of the pool");
  }
  *data = p->input->base + off;
  sp__error_clear(err);
  return 0;
}

void sp_array_free(sp_runtime_t *rt, void *data) {
  if (rt == NULL || data == NULL) return;
  for (size_t i = 0; i < rt->pool_count; i++) {
    sp__shm_t *r = rt->pools[i].input;
    if (r != NULL && (uint8_t *)data >= r->base && (uint8_t *)data < r->base + r->size) {
      sp__shm_free(r, (uint64_t)((uint8_t *)data - r->base));
      return;
    }
  }
}

void sp_free(void *p) { free(p); }


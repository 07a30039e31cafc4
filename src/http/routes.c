/*
 * routes.c - the endpoints of `snakepit serve`: path routing, the GET endpoints
 * (dashboard, probes, metrics, pools, stats, tools) and tool calls, which run
 * asynchronously while their connection is suspended.
 */
#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "clock.h"
#include "http_internal.h"

#define MAX_TIMEOUT_MS (24LL * 3600 * 1000) /* the config's own bound for `timeout` */

static const struct {
  const char *name;
  const char *methods;
} route_info[SP__ROUTE_COUNT] = {
    [SP__ROUTE_UNKNOWN] = {"unknown", "GET, HEAD"},
    [SP__ROUTE_DASHBOARD] = {"dashboard", "GET, HEAD"},
    [SP__ROUTE_HEALTHZ] = {"healthz", "GET, HEAD"},
    [SP__ROUTE_READYZ] = {"readyz", "GET, HEAD"},
    [SP__ROUTE_METRICS] = {"metrics", "GET, HEAD"},
    [SP__ROUTE_POOLS] = {"pools", "GET, HEAD"},
    [SP__ROUTE_POOL] = {"pool", "GET, HEAD"},
    [SP__ROUTE_TOOLS] = {"tools", "GET, HEAD"},
    [SP__ROUTE_CALL] = {"call", "POST"},
    [SP__ROUTE_SESSION] = {"session", "DELETE"},
};

const char *sp__http_route_methods(sp__route_t route) { return route_info[route].methods; }
const char *sp__http_route_name(sp__route_t route) { return route_info[route].name; }

/* ---- routing ------------------------------------------------------------- */

/* Splits "/a/b/c" into at most max segments; 0 if there are more, or an empty one. */
static size_t split_path(const char *path, const char **seg, size_t *seglen, size_t max) {
  size_t n = 0;
  const char *p = path;
  while (*p == '/') {
    p++;
    if (*p == '\0' && n > 0) break; /* one trailing slash is fine */
    const char *end = strchr(p, '/');
    size_t len = end ? (size_t)(end - p) : strlen(p);
    if (len == 0 || n == max) return 0;
    seg[n] = p;
    seglen[n++] = len;
    p += len;
  }
  return *p == '\0' ? n : 0;
}

static int seg_is(const char *seg, size_t len, const char *word) {
  return len == strlen(word) && memcmp(seg, word, len) == 0;
}

int sp__http_route(sp__req_t *r, const char *path) {
  const char *seg[5];
  size_t len[5];
  r->route = SP__ROUTE_UNKNOWN;
  if (strcmp(path, "/") == 0) {
    r->route = SP__ROUTE_DASHBOARD;
    return 0;
  }
  size_t n = split_path(path, seg, len, 5);
  if (n == 1) {
    if (seg_is(seg[0], len[0], "healthz")) r->route = SP__ROUTE_HEALTHZ;
    if (seg_is(seg[0], len[0], "readyz")) r->route = SP__ROUTE_READYZ;
    if (seg_is(seg[0], len[0], "metrics")) r->route = SP__ROUTE_METRICS;
    return 0;
  }
  if (n < 2 || !seg_is(seg[0], len[0], "v1") || !seg_is(seg[1], len[1], "pools")) return 0;
  if (n == 2) r->route = SP__ROUTE_POOLS;
  if (n == 3) r->route = SP__ROUTE_POOL;
  if (n >= 4 && seg_is(seg[3], len[3], "tools"))
    r->route = n == 4 ? SP__ROUTE_TOOLS : SP__ROUTE_CALL;
  if (n == 5 && seg_is(seg[3], len[3], "sessions")) r->route = SP__ROUTE_SESSION;
  if (r->route == SP__ROUTE_UNKNOWN || n < 3) return 0;
  /* Pool and tool names (or the session id), NUL-terminated, in one allocation. */
  size_t tlen = n == 5 ? len[4] : 0;
  if ((r->pool = malloc(len[2] + tlen + 2)) == NULL) return SP_ENOMEM;
  memcpy(r->pool, seg[2], len[2]);
  r->pool[len[2]] = '\0';
  r->tool = r->pool + len[2] + 1;
  memcpy(r->tool, n == 5 ? seg[4] : "", tlen);
  r->tool[tlen] = '\0';
  return 0;
}

/* ---- GET endpoints -------------------------------------------------------- */

static enum MHD_Result reply_json(sp__req_t *r, unsigned status, json_t *o) {
  char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
  json_decref(o);
  if (s == NULL) return MHD_NO;
  return sp__http_reply(r, status, "application/json", s, strlen(s), free);
}

/* Library JSON text (freed with sp_free) as a 200, or the error. */
static enum MHD_Result reply_lib(sp__req_t *r, int rc, char *json, sp_error_t *err) {
  if (rc != 0) return sp__http_reply_sp_error(r, err);
  return sp__http_reply(r, MHD_HTTP_OK, "application/json", json, strlen(json), sp_free);
}

static enum MHD_Result get_healthz(sp__req_t *r) {
  int draining = atomic_load(&r->srv->draining);
  json_int_t uptime = (json_int_t)((sp__now_ms() - r->srv->started_ms) / 1000);
  return reply_json(r, MHD_HTTP_OK,
                    json_pack("{s:s, s:s, s:I}", "status", draining ? "draining" : "ok", "version",
                              sp_version(), "uptime_s", uptime));
}

/* Ready: not draining, and every pool has a ready worker and is not degraded
 * (a degraded pool fails its calls at once, so traffic should go elsewhere);
 * a remote pool, while its NATS connection is up. */
static enum MHD_Result get_readyz(sp__req_t *r) {
  sp_error_t err;
  char *stats = NULL;
  if (atomic_load(&r->srv->draining))
    return reply_json(r, MHD_HTTP_SERVICE_UNAVAILABLE,
                      json_pack("{s:b, s:s}", "ready", 0, "reason", "draining"));
  if (sp_stats_json(r->srv->rt, NULL, &stats, &err) != 0) return sp__http_reply_sp_error(r, &err);
  json_t *doc = json_loads(stats, 0, NULL);
  sp_free(stats);
  json_t *pools = json_object(), *p;
  size_t i;
  int all = doc != NULL;
  json_array_foreach(json_object_get(doc, "pools"), i, p) {
    const char *kind = json_string_value(json_object_get(p, "kind"));
    if (kind != NULL && !strcmp(kind, "remote")) {
      /* A remote pool is ready while its NATS connection is up (nodes answer for the rest). */
      int up = json_is_true(json_object_get(p, "connected"));
      all = all && up;
      json_object_set_new(pools, json_string_value(json_object_get(p, "name")),
                          json_pack("{s:b, s:s, s:O}", "ready", up, "kind", "remote", "url",
                                    json_object_get(p, "url")));
      continue;
    }
    json_int_t ready = json_integer_value(json_object_get(p, "ready_workers"));
    int degraded = json_is_true(json_object_get(p, "degraded"));
    int ok = ready > 0 && !degraded;
    all = all && ok;
    json_object_set_new(
        pools, json_string_value(json_object_get(p, "name")),
        json_pack("{s:b, s:I, s:O, s:b}", "ready", ok, "ready_workers", ready, "pool_size",
                  json_object_get(p, "pool_size"), "degraded", degraded));
  }
  json_decref(doc);
  return reply_json(r, all ? MHD_HTTP_OK : MHD_HTTP_SERVICE_UNAVAILABLE,
                    json_pack("{s:b, s:o}", "ready", all, "pools", pools));
}

static enum MHD_Result get_metrics(sp__req_t *r) {
  sp_error_t err;
  char *stats = NULL, *text = NULL;
  size_t len = 0;
  if (sp_stats_json(r->srv->rt, NULL, &stats, &err) != 0) return sp__http_reply_sp_error(r, &err);
  FILE *f = open_memstream(&text, &len);
  int rc = f ? sp__metrics_write(f, stats, r->srv) : SP_ENOMEM;
  if (f) fclose(f);
  sp_free(stats);
  if (rc != 0) {
    free(text);
    sp_error_setf(&err, rc, "cannot render metrics: %s", sp_strerror(rc));
    return sp__http_reply_sp_error(r, &err);
  }
  return sp__http_reply(r, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8", text, len,
                        free);
}

/* True for a remote pool (served over NATS): it has no workers to report, only its statistics. */
static int is_remote(sp__req_t *r, const char *pool) {
  sp_error_t err = SP_ERROR_INIT;
  char *json = NULL;
  if (pool == NULL || sp_stats_json(r->srv->rt, pool, &json, &err) != 0) {
    sp_error_free(&err);
    return 0;
  }
  json_t *doc = json_loads(json, 0, NULL);
  const char *kind = json_string_value(json_object_get(doc, "kind"));
  int remote = kind != NULL && !strcmp(kind, "remote");
  json_decref(doc);
  sp_free(json);
  return remote;
}

static void call_landed(sp__req_t *r);
static enum MHD_Result stats_with_reports(sp__req_t *r, const char *pool);

enum MHD_Result sp__http_get(sp__req_t *r) {
  sp_error_t err;
  char *json = NULL;
  switch (r->route) {
    case SP__ROUTE_DASHBOARD: {
      enum MHD_Result rc = MHD_queue_response(r->conn, MHD_HTTP_OK, r->srv->dashboard);
      r->status = MHD_HTTP_OK;
      r->state = SP__REQ_REPLIED;
      return rc;
    }
    case SP__ROUTE_HEALTHZ: return get_healthz(r);
    case SP__ROUTE_READYZ: return get_readyz(r);
    case SP__ROUTE_METRICS: return get_metrics(r);
    case SP__ROUTE_POOLS:
    case SP__ROUTE_POOL: {
      const char *pool = r->route == SP__ROUTE_POOL ? r->pool : NULL;
      /* ?thread_safety=1 adds every worker's own report and the checker's
       * merged findings of pools that run with thread_safety_checks, as
       * `snakepit stats` does. Asked for, not by default: it is a request to
       * every worker, answered when each has a free thread. */
      const char *ts = MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, "thread_safety");
      if (ts != NULL && (!strcmp(ts, "1") || !strcasecmp(ts, "true")) && !is_remote(r, pool))
        return stats_with_reports(r, pool);
      int rc = sp_stats_json(r->srv->rt, pool, &json, &err);
      return reply_lib(r, rc, json, &err);
    }
    case SP__ROUTE_TOOLS: {
      int rc = sp_tools_json(r->srv->rt, r->pool, &json, &err);
      return reply_lib(r, rc, json, &err);
    }
    case SP__ROUTE_SESSION: {
      /* r->tool holds the session id. Ending one that does not exist is fine. */
      if (sp_session_end(r->srv->rt, r->pool, r->tool, &err) != 0)
        return sp__http_reply_sp_error(r, &err);
      return reply_json(r, MHD_HTTP_OK,
                        json_pack("{s:s, s:s, s:b}", "pool", r->pool, "session", r->tool, "ended", 1));
    }
    default: return MHD_NO;
  }
}

/* ---- tool calls ------------------------------------------------------------ */

/* A request value from a header or else the query string. */
static const char *param(sp__req_t *r, const char *header, const char *query) {
  const char *v = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, header);
  return v ? v : MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, query);
}

/* The call's session from X-Snakepit-Session / ?session= and its mode from
 * X-Snakepit-Session-Mode / ?session_mode=. */
static int session_opts(sp__req_t *r, sp_call_opts_t *opts, sp_error_t *err) {
  const char *sid = param(r, "X-Snakepit-Session", "session");
  const char *mode = param(r, "X-Snakepit-Session-Mode", "session_mode");
  if (mode != NULL && sp_session_mode_parse(mode, &opts->session_mode, err) != 0) {
    sp_error_free(err);
    return sp_error_setf(err, SP_EINVAL,
                         "unknown session mode '%.64s' (X-Snakepit-Session-Mode header or "
                         "session_mode parameter: hint, strict or strict_fail_fast)",
                         mode);
  }
  if (sid == NULL && mode != NULL)
    return sp_error_setf(err, SP_EINVAL,
                         "a session mode (X-Snakepit-Session-Mode header or session_mode "
                         "parameter) needs a session (X-Snakepit-Session header or session "
                         "parameter)");
  if (sid == NULL) return 0;
  if (sp_session_check(sid, err) != 0) {
    char why[160];
    snprintf(why, sizeof(why), "%s", err->message);
    sp_error_free(err);
    return sp_error_setf(err, SP_EINVAL, "%s (X-Snakepit-Session header or session parameter)",
                         why);
  }
  opts->session = sid;
  return 0;
}

/* Per-call options from X-Timeout-Ms / ?timeout_ms= and X-Idempotent / ?idempotent=. */
static int call_opts(sp__req_t *r, sp_call_opts_t *opts, sp_error_t *err) {
  if (session_opts(r, opts, err) != 0) return SP_EINVAL;
  const char *t = param(r, "X-Timeout-Ms", "timeout_ms");
  if (t != NULL) {
    char *end = NULL;
    errno = 0;
    long long ms = strtoll(t, &end, 10);
    if (errno != 0 || end == t || *end != '\0' || ms <= 0 || ms > MAX_TIMEOUT_MS) {
      sp_error_setf(err, SP_EINVAL,
                         "timeout must be a whole number of milliseconds between 1 and %lld, got "
                         "'%.64s' (X-Timeout-Ms header or timeout_ms parameter)",
                         MAX_TIMEOUT_MS, t);
      return SP_EINVAL;
    }
    opts->timeout_ms = ms;
  }
  const char *i = param(r, "X-Idempotent", "idempotent");
  if (i != NULL) {
    if (!strcasecmp(i, "1") || !strcasecmp(i, "true") || !strcasecmp(i, "yes")) {
      opts->idempotent = 1;
    } else if (!strcasecmp(i, "0") || !strcasecmp(i, "false") || !strcasecmp(i, "no")) {
      opts->idempotent = 0;
    } else {
      sp_error_setf(err, SP_EINVAL, "idempotent must be true or false, got '%.64s'", i);
      return SP_EINVAL;
    }
  }
  return 0;
}

/* The outcome is in r: wake the connection. r belongs to MHD again once
 * resumed, so it is not touched after. */
static void call_landed(sp__req_t *r) {
  sp__http_t *s = r->srv;
  r->state = SP__REQ_DONE;
  MHD_resume_connection(r->conn);
  atomic_fetch_sub(&s->pending, 1);
  /* MHD without threads of its own learns of the resume in its next run. */
  if (s->on_loop) sp_runtime_kick_source(s->rt);
}

/* Completion of a call, on the runtime's loop thread: keep the outcome. */
static void on_call_done(sp_result_t *res, void *ud) {
  sp__req_t *r = ud;
  if (res->error.code == 0 && r->multipart != NULL) {
    /* The arrays are lent for this callback only: they go into the reply now. */
    if (sp__http_result_multipart(res, r->multipart, &r->result, &r->result_len, r->result_ctype,
                                  sizeof(r->result_ctype)) == 0)
      r->result_free = free;
  } else if (res->error.code == 0) {
    r->result = res->json;
    r->result_len = res->len ? res->len : strlen(res->json);
    r->result_free = sp_free;
    res->json = NULL;
  } else if ((r->error = malloc(sizeof(*r->error))) != NULL) {
    sp_error_copy(r->error, &res->error);
  }
  call_landed(r);
}

/*
 * Suspends the connection before an asynchronous operation is submitted: its
 * completion may resume the connection before the submitting call returns.
 */
static void suspend(sp__req_t *r) {
  r->state = SP__REQ_WAITING;
  atomic_fetch_add(&r->srv->pending, 1);
  MHD_suspend_connection(r->conn);
}

/* The operation was refused at once: err (its texts taken) is the outcome. */
static void land_error(sp__req_t *r, sp_error_t *err) {
  if ((r->error = malloc(sizeof(*r->error))) != NULL) *r->error = *err;
  else sp_error_free(err);
  call_landed(r);
}

/* Stats with every worker's report: collected asynchronously while the
 * connection is suspended, then replied like a call's result. */
static enum MHD_Result stats_with_reports(sp__req_t *r, const char *pool) {
  sp_error_t err;
  sp_report_opts_t opts = SP_REPORT_OPTS_INIT;
  opts.with_stats = 1;
  suspend(r);
  if (sp_worker_reports_async(r->srv->rt, pool, &opts, on_call_done, r, &err) != 0)
    land_error(r, &err);
  return MHD_YES;
}

enum MHD_Result sp__http_call_start(sp__req_t *r) {
  sp__http_t *s = r->srv;
  sp_error_t err;
  sp_call_opts_t opts = SP_CALL_OPTS_INIT;
  opts.timeout_ms = s->opts.call_timeout_ms;
  if (call_opts(r, &opts, &err) != 0) return sp__http_reply_sp_error(r, &err);
  /* A multipart/form-data body brings arrays; plain JSON does not. */
  sp__http_inputs_t in;
  int multipart = sp__http_inputs_parse(r, &in, &err);
  if (multipart < 0) {
    sp__http_inputs_free(&in);
    return sp__http_reply_sp_error(r, &err);
  }
  if (!multipart && r->len > 0 && memchr(r->body, '\0', r->len) != NULL) {
    sp_error_setf(&err, SP_EBADJSON, "the request body contains a NUL byte: not JSON text");
    return sp__http_reply_sp_error(r, &err);
  }
  opts.arrays = in.arrays;
  opts.array_count = in.count;
  /* Returned arrays come back as .npy parts only to a client that takes them. */
  r->multipart = sp__http_accepts_multipart(r);
  opts.arrays_as_lists = r->multipart == NULL;
  /* An empty body (or no "args" part) means no arguments. */
  const char *args = multipart ? (in.args ? in.args : "{}") : r->len > 0 ? r->body : "{}";
  int stream = sp__http_stream_wanted(r);
  if (stream != 0) {
    enum MHD_Result rc = sp__http_stream_start(r, stream, args, &opts);
    sp__http_inputs_free(&in);
    return rc;
  }
  suspend(r);
  /* The library copies the arrays before it returns, so the body may go after. */
  if (sp_execute_async(s->rt, r->pool, r->tool, args, &opts, on_call_done, r, &err) != 0)
    land_error(r, &err);
  sp__http_inputs_free(&in);
  return MHD_YES;
}

enum MHD_Result sp__http_call_reply(sp__req_t *r) {
  if (r->result != NULL) {
    char *body = r->result;
    r->result = NULL;
    return sp__http_reply(r, MHD_HTTP_OK, r->result_ctype[0] ? r->result_ctype : "application/json",
                          body, r->result_len, r->result_free);
  }
  if (r->error != NULL) return sp__http_reply_sp_error(r, r->error);
  return sp__http_reply_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal", "SP_ENOMEM",
                              "out of memory keeping the call's outcome", NULL, NULL);
}

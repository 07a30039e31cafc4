/*
 * server.c - the libmicrohttpd daemon of `snakepit serve`: request lifecycle
 * (routing, bearer auth, body limits, suspend while a call runs), replies and
 * graceful stop. The endpoints themselves are in routes.c.
 *
 * Threading: by default (threads = 0) MHD has no thread of its own: its epoll
 * set is an event source of the runtime's loop thread (sp_runtime_attach_source),
 * so a request is parsed, its call dispatched to a worker, the result taken in
 * and the response written all on one thread, with no hand-off between threads
 * per request. With threads = N, MHD runs N event-loop threads of its own, each
 * with its own epoll set, all accepting from one listening socket (for machines
 * with CPUs to spare for HTTP parsing). Either way a tool call never blocks an
 * event loop: the request is suspended, the call goes to the runtime with
 * sp_execute_async, and its completion callback (on the runtime's loop thread)
 * resumes the connection, so a few threads keep thousands of calls in flight.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "http_internal.h"

extern const unsigned char sp__dashboard_html[];
extern const size_t sp__dashboard_html_len;

static int64_t now_ns(void) { return (int64_t)sp__now_ns(); }

/* ---- errors and replies -------------------------------------------------- */

unsigned sp__http_status_of(int code) {
  switch (code) {
    case SP_ENOPOOL:
    case SP_ENOTOOL: return MHD_HTTP_NOT_FOUND;
    /* A queue that stays full is overload, like a full one: both say "come back". */
    case SP_ESATURATED:
    case SP_EQUEUETIMEOUT:
    case SP_EDEGRADED:
    case SP_ESTOPPED: return MHD_HTTP_SERVICE_UNAVAILABLE;
    case SP_ETIMEOUT:
    case SP_ECANCELLED: return MHD_HTTP_GATEWAY_TIMEOUT;
    case SP_ETOOLARGE: return MHD_HTTP_CONTENT_TOO_LARGE;
    case SP_EPROTOCOL: return MHD_HTTP_BAD_GATEWAY;
    /* The session's worker is taken: try again later, or in another mode. */
    case SP_ESESSIONBUSY: return MHD_HTTP_CONFLICT;
    /* The session's state is gone for good: end it and start afresh. */
    case SP_ESESSIONLOST: return MHD_HTTP_GONE;
    default: break;
  }
  return sp_err_category(code) == SP_CAT_VALIDATION ? MHD_HTTP_BAD_REQUEST
                                                    : MHD_HTTP_INTERNAL_SERVER_ERROR;
}

/* What a browser needs told about a local API: never sniff a type, never frame
 * or embed it, never send its address on as a referrer. */
static void add_security_headers(struct MHD_Response *resp) {
  MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
  MHD_add_response_header(resp, "X-Frame-Options", "DENY");
  MHD_add_response_header(resp, "Referrer-Policy", "no-referrer");
  MHD_add_response_header(resp, "Cross-Origin-Resource-Policy", "same-origin");
}

enum MHD_Result sp__http_reply(sp__req_t *r, unsigned status, const char *ctype, char *body,
                               size_t len, void (*free_fn)(void *)) {
  struct MHD_Response *resp =
      free_fn ? MHD_create_response_from_buffer_with_free_callback(len, body, free_fn)
              : MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_COPY);
  if (resp == NULL) {
    if (free_fn) free_fn(body);
    return MHD_NO; /* MHD closes the connection */
  }
  return sp__http_queue(r, status, ctype, resp);
}

enum MHD_Result sp__http_queue(sp__req_t *r, unsigned status, const char *ctype,
                               struct MHD_Response *resp) {
  MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
  add_security_headers(resp);
  if (r->cors_origin != NULL) {
    MHD_add_response_header(resp, MHD_HTTP_HEADER_ACCESS_CONTROL_ALLOW_ORIGIN, r->cors_origin);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_VARY, "Origin");
  }
  /* Statistics change every moment; a POST answer is never cached anyway. */
  if (r->route != SP__ROUTE_DASHBOARD && r->route != SP__ROUTE_CALL)
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
  if (atomic_load_explicit(&r->srv->draining, memory_order_relaxed))
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
  if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
    MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, sp__http_route_methods(r->route));
  else if (status == MHD_HTTP_NO_CONTENT && r->cors_origin != NULL) { /* a preflight */
    MHD_add_response_header(resp, MHD_HTTP_HEADER_ACCESS_CONTROL_ALLOW_METHODS,
                            sp__http_route_methods(r->route));
    MHD_add_response_header(resp, "Access-Control-Allow-Headers",
                            "Authorization, Content-Type, X-Timeout-Ms, X-Idempotent, "
                            "X-Snakepit-Session, X-Snakepit-Session-Mode");
    MHD_add_response_header(resp, MHD_HTTP_HEADER_ACCESS_CONTROL_MAX_AGE, "600");
  }
  if (status == MHD_HTTP_UNAUTHORIZED)
    MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer realm=\"snakepit\"");
  if (status == MHD_HTTP_SERVICE_UNAVAILABLE) {
    /* Overload clears in a moment; a degraded or stopping pool takes longer. */
    int busy =
        r->error != NULL && (r->error->code == SP_ESATURATED || r->error->code == SP_EQUEUETIMEOUT);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, busy ? "1" : "5");
  }
  enum MHD_Result rc = MHD_queue_response(r->conn, status, resp);
  MHD_destroy_response(resp);
  r->status = status;
  r->state = SP__REQ_REPLIED;
  return rc;
}

/* JSON text must be UTF-8, and an error may quote what a client sent (a path
 * of raw bytes): bytes that are not UTF-8 become '?', so the error still goes out. */
static const char *utf8_or_copy(const char *s, char *buf, size_t len) {
  if (s == NULL || sp__utf8_valid((const unsigned char *)s, strlen(s))) return s;
  size_t n = 0;
  for (const unsigned char *p = (const unsigned char *)s; *p && n + 1 < len; p++)
    buf[n++] = *p < 0x80 ? (char)*p : '?';
  buf[n] = '\0';
  return buf;
}

enum MHD_Result sp__http_reply_error(sp__req_t *r, unsigned status, const char *category,
                                     const char *code, const char *message, const char *python_type,
                                     const char *traceback) {
  char *s = sp__http_error_json(category, code, message, python_type, traceback);
  if (s == NULL) return MHD_NO;
  return sp__http_reply(r, status, "application/json", s, strlen(s), free);
}

char *sp__http_error_json(const char *category, const char *code, const char *message,
                          const char *python_type, const char *traceback) {
  char mbuf[1024], tbuf[8192]; /* a message, a Python traceback */
  message = utf8_or_copy(message, mbuf, sizeof(mbuf));
  traceback = utf8_or_copy(traceback, tbuf, sizeof(tbuf));
  json_t *o = json_pack("{s:{s:s, s:s, s:s, s:s?, s:s?}}", "error", "category", category, "code",
                        code, "message", message ? message : "", "python_type",
                        python_type && *python_type ? python_type : NULL, "traceback",
                        traceback && *traceback ? traceback : NULL);
  char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
  json_decref(o);
  return s;
}

enum MHD_Result sp__http_reply_sp_error(sp__req_t *r, sp_error_t *e) {
  enum MHD_Result rc =
      sp__http_reply_error(r, sp__http_status_of(e->code), sp_category_name(e->category),
                           sp_err_name(e->code), e->message, e->python_type, e->traceback);
  sp_error_free(e);
  return rc;
}

/* ---- authentication ------------------------------------------------------- */

/* Compares in time independent of where the strings differ, so response timing
 * does not reveal how much of a guessed token was right. */
static int token_equal(const char *given, size_t glen, const char *want, size_t wlen) {
  unsigned char diff = (unsigned char)(glen != wlen);
  for (size_t i = 0; i < wlen; i++) diff |= (unsigned char)(want[i] ^ (i < glen ? given[i] : 0));
  return diff == 0;
}

static int authorized(sp__req_t *r) {
  const sp__http_t *s = r->srv;
  if (s->token == NULL) return 1;
  /* Probes and the dashboard's static page carry no data; the page asks for the
   * token itself and sends it with its API requests. */
  if (r->route == SP__ROUTE_HEALTHZ || r->route == SP__ROUTE_READYZ ||
      r->route == SP__ROUTE_DASHBOARD)
    return 1;
  const char *h = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Authorization");
  if (h == NULL || strncasecmp(h, "Bearer ", 7) != 0) return 0;
  h += 7;
  while (*h == ' ') h++;
  size_t len = strlen(h);
  while (len > 0 && (h[len - 1] == ' ' || h[len - 1] == '\t')) len--;
  return token_equal(h, len, s->token, s->token_len);
}

/* ---- the request state machine -------------------------------------------- */

static int is_get(const char *method) {
  return strcmp(method, MHD_HTTP_METHOD_GET) == 0 || strcmp(method, MHD_HTTP_METHOD_HEAD) == 0;
}

/* A refusal decided from the headers, replied once the request is complete:
 * answering earlier makes MHD close the connection, which a client that sent
 * a bad path should not pay for. */
static void refuse(sp__req_t *r, unsigned status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void refuse(sp__req_t *r, unsigned status, const char *code, const char *fmt, ...) {
  r->refuse_status = status;
  r->refuse_code = code;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(r->refuse_msg, sizeof(r->refuse_msg), fmt, ap);
  va_end(ap);
}

/* First callback of a request: its headers are in. Routes and checks the token
 * and the method. Only an oversized body is refused at once, so that it is never
 * read (MHD then closes the connection after the 413). */
static enum MHD_Result on_headers(sp__req_t *r, const char *url, const char *method) {
  char msg[400];
  /* Answered at once, so MHD closes the connection: with its framing in doubt
   * nothing after these headers can be trusted to be the next request. */
  if (sp__http_check_framing(r->conn, msg, sizeof(msg)) != 0)
    return sp__http_reply_error(r, MHD_HTTP_BAD_REQUEST, "http", "BAD_FRAMING", msg, NULL, NULL);
  if (sp__http_route(r, url) != 0) return MHD_NO;
  int want_post = r->route == SP__ROUTE_CALL;
  if (sp__http_check_origin(r->srv, r->conn, method, r->route == SP__ROUTE_DASHBOARD, msg,
                            sizeof(msg)) != 0)
    return sp__http_reply_error(r, MHD_HTTP_FORBIDDEN, "http", "FORBIDDEN_ORIGIN", msg, NULL, NULL);
  const char *origin = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Origin");
  if (origin != NULL && sp__http_origin_allowed(r->srv, origin)) r->cors_origin = origin;
  /* A preflight carries no credentials; it only asks which methods may follow. */
  if (r->cors_origin != NULL && r->route != SP__ROUTE_UNKNOWN &&
      strcmp(method, MHD_HTTP_METHOD_OPTIONS) == 0) {
    r->preflight = 1;
    return MHD_YES;
  }
  if (!sp__utf8_valid((const unsigned char *)url, strlen(url)))
    refuse(r, MHD_HTTP_BAD_REQUEST, "BAD_PATH", "the path is not valid UTF-8 once decoded");
  else if (!authorized(r))
    refuse(r, MHD_HTTP_UNAUTHORIZED, "UNAUTHORIZED",
           "missing or wrong bearer token (Authorization: Bearer TOKEN)");
  else if (r->route == SP__ROUTE_UNKNOWN)
    refuse(r, MHD_HTTP_NOT_FOUND, "NOT_FOUND", "no such endpoint: %s %.300s", method, url);
  else if (r->route == SP__ROUTE_SESSION ? strcmp(method, MHD_HTTP_METHOD_DELETE) != 0
           : want_post                    ? strcmp(method, MHD_HTTP_METHOD_POST) != 0
                                          : !is_get(method))
    refuse(r, MHD_HTTP_METHOD_NOT_ALLOWED, "METHOD_NOT_ALLOWED",
           "method %.32s not allowed on %.300s (allowed: %s)", method, url,
           sp__http_route_methods(r->route));
  if (!want_post || r->refuse_status != 0) return MHD_YES;
  /* multipart/form-data brings arrays (arrays.c checks it once the body is in). */
  if (!sp__http_is_multipart_call(r) && sp__http_check_json_type(r->conn, msg, sizeof(msg)) != 0) {
    refuse(r, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE, "UNSUPPORTED_MEDIA_TYPE", "%s", msg);
    return MHD_YES;
  }
  const char *cl = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Content-Length");
  if (cl != NULL) {
    char *end = NULL;
    errno = 0;
    unsigned long long n = strtoull(cl, &end, 10);
    if (errno == 0 && end != cl && n > r->srv->opts.max_body) {
      snprintf(msg, sizeof(msg), "request body of %llu bytes exceeds the limit of %zu bytes", n,
               r->srv->opts.max_body);
      return sp__http_reply_error(r, MHD_HTTP_CONTENT_TOO_LARGE, "http", "PAYLOAD_TOO_LARGE", msg,
                                  NULL, NULL);
    }
  }
  return MHD_YES;
}

/* A piece of the body. Only tool calls keep theirs. A chunked body that grows
 * past the limit is read and dropped (so the client gets its 413) up to once
 * more the limit, then the connection is cut. */
static enum MHD_Result on_body(sp__req_t *r, const char *data, size_t size) {
  size_t max = r->srv->opts.max_body;
  if (r->route != SP__ROUTE_CALL || r->refuse_status != 0 || r->dropped > 0 ||
      r->len + size > max) {
    r->dropped += size;
    return r->dropped > max + (1u << 20) ? MHD_NO : MHD_YES;
  }
  if (r->len + size + 1 > r->cap) {
    size_t cap = r->cap ? r->cap : 1024;
    while (cap < r->len + size + 1) cap *= 2;
    char *nb = realloc(r->body, cap);
    if (nb == NULL) return MHD_NO;
    r->body = nb;
    r->cap = cap;
  }
  memcpy(r->body + r->len, data, size);
  r->len += size;
  r->body[r->len] = '\0';
  return MHD_YES;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **ctx) {
  sp__http_t *s = cls;
  sp__req_t *r = *ctx;
  if (r == NULL) {
    r = calloc(1, sizeof(*r));
    if (r == NULL) return MHD_NO;
    r->srv = s;
    r->conn = conn;
    r->method = method;
    r->start_ns = now_ns();
    if (s->opts.access_log) r->path = strdup(url);
    *ctx = r;
    atomic_fetch_add(&s->active, 1);
    return on_headers(r, url, method);
  }
  if (*upload_data_size != 0) {
    enum MHD_Result rc = on_body(r, upload_data, *upload_data_size);
    *upload_data_size = 0;
    return rc;
  }
  switch (r->state) {
    case SP__REQ_READING:
      sp__guard_request_read(conn);
      if (r->preflight) return sp__http_reply(r, MHD_HTTP_NO_CONTENT, "text/plain", "", 0, NULL);
      if (r->refuse_status != 0)
        return sp__http_reply_error(r, r->refuse_status, "http", r->refuse_code, r->refuse_msg,
                                    NULL, NULL);
      if (r->route != SP__ROUTE_CALL) return sp__http_get(r);
      if (r->dropped > 0) {
        char msg[256];
        snprintf(msg, sizeof(msg), "request body exceeds the limit of %zu bytes", s->opts.max_body);
        return sp__http_reply_error(r, MHD_HTTP_CONTENT_TOO_LARGE, "http", "PAYLOAD_TOO_LARGE", msg,
                                    NULL, NULL);
      }
      return sp__http_call_start(r);
    case SP__REQ_DONE: return sp__http_call_reply(r);
    default: return MHD_YES; /* WAITING cannot be called; REPLIED: MHD is sending */
  }
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **ctx,
                         enum MHD_RequestTerminationCode why) {
  sp__http_t *s = cls;
  sp__req_t *r = *ctx;
  if (r == NULL) return;
  *ctx = NULL;
  sp__guard_request_done(conn);
  if (r->status >= 100 && r->status < 100 + SP__HTTP_NSTATUS)
    atomic_fetch_add_explicit(&s->counts[r->route][r->status - 100], 1, memory_order_relaxed);
  if (s->opts.access_log) {
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    char host[64] = "-";
    if (ci && ci->client_addr && ci->client_addr->sa_family == AF_INET)
      inet_ntop(AF_INET, &((const struct sockaddr_in *)ci->client_addr)->sin_addr, host,
                sizeof(host));
    else if (ci && ci->client_addr && ci->client_addr->sa_family == AF_INET6)
      inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)ci->client_addr)->sin6_addr, host,
                sizeof(host));
    fprintf(stderr, "snakepit: http %s %s %s %u %.3f ms%s\n", host, r->method,
            r->path ? r->path : "?", r->status, (double)(now_ns() - r->start_ns) / 1e6,
            why == MHD_REQUEST_TERMINATED_COMPLETED_OK ? "" : " (aborted)");
  }
  if (r->result != NULL) r->result_free(r->result);
  sp_error_free(r->error);
  free(r->error);
  free(r->body);
  free(r->pool);
  free(r->path);
  free(r);
  atomic_fetch_sub(&s->active, 1);
}

/* MHD's own diagnostics (bad requests it answers itself, socket errors). */
static void on_mhd_log(void *cls, const char *fmt, va_list ap) {
  (void)cls;
  char line[512];
  vsnprintf(line, sizeof(line), fmt, ap);
  size_t n = strlen(line);
  while (n > 0 && line[n - 1] == '\n') line[--n] = '\0';
  fprintf(stderr, "snakepit: http: %s\n", line);
}

/* ---- lifecycle ------------------------------------------------------------- */

/* Quiesce for real: MHD hands the listening socket back; closing it makes new
 * connections fail at once instead of waiting in the kernel's backlog. On the
 * thread that runs MHD (the runtime's loop thread when MHD has none). */
static void quiesce_now(sp__http_t *h) {
  if (atomic_load(&h->quiesced)) return;
  MHD_socket fd = MHD_quiesce_daemon(h->daemon);
  if (fd != MHD_INVALID_SOCKET) close(fd);
  atomic_store(&h->quiesced, 1);
}

/* MHD as an event source of the runtime's loop thread. */
static unsigned connections(struct MHD_Daemon *d) {
  const union MHD_DaemonInfo *i = MHD_get_daemon_info(d, MHD_DAEMON_INFO_CURRENT_CONNECTIONS);
  return i ? i->num_connections : 0;
}

/* MHD takes its listening socket out of its epoll set while it is at its
 * connection limit or out of file descriptors, and puts it back only at the
 * start of its next run. A run that closed the last connections would leave
 * nothing to make the epoll set readable and no timeout to wait for: so a run
 * that closed connections is followed at once by another, which re-arms it. */
static void source_run(void *ud) {
  sp__http_t *h = ud;
  if (atomic_load_explicit(&h->draining, memory_order_relaxed)) quiesce_now(h);
  unsigned before = connections(h->daemon);
  MHD_run(h->daemon);
  if (connections(h->daemon) < before) MHD_run(h->daemon);
}

static long long source_timeout(void *ud) {
  sp__http_t *h = ud;
  MHD_UNSIGNED_LONG_LONG ms = 0;
  return MHD_get_timeout(h->daemon, &ms) == MHD_YES ? (long long)ms : -1;
}

/* Connections MHD may hold past --max-connections: the guard sheds down to the
 * limit, but the connections it shuts down take a moment to be closed. */
#define GUARD_HEADROOM 64

/* Everything but the daemon (stopped first: its close notices touch the guard). */
static void free_server(sp__http_t *s) {
  if (s == NULL) return;
  sp__guard_stop(&s->guard);
  if (s->dashboard) MHD_destroy_response(s->dashboard);
  for (size_t i = 0; s->origins && i < s->opts.n_allowed_origins; i++) free(s->origins[i]);
  free(s->origins);
  free(s->token);
  free(s);
}

int sp__http_start(sp__http_t **out, sp_runtime_t *rt, const sp__http_opts_t *o, sp_error_t *err) {
  int rc = SP_ENOMEM;
  *out = NULL;
  sp__http_t *s = calloc(1, sizeof(*s));
  if (s == NULL) goto fail;
  s->rt = rt;
  s->opts = *o;
  s->opts.token = NULL;
  s->started_ms = now_ns() / 1000000;
  if (o->token != NULL && o->token[0] != '\0') {
    if ((s->token = strdup(o->token)) == NULL) goto fail;
    s->token_len = strlen(s->token);
  }
  /* The page is built into the binary; one persistent response serves it. */
  s->dashboard = MHD_create_response_from_buffer(sp__dashboard_html_len, (void *)sp__dashboard_html,
                                                 MHD_RESPMEM_PERSISTENT);
  if (s->dashboard == NULL) goto fail;
  MHD_add_response_header(s->dashboard, MHD_HTTP_HEADER_CONTENT_TYPE, "text/html; charset=utf-8");
  MHD_add_response_header(s->dashboard, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
  /* Everything the page needs is inline; forbid any other origin outright. */
  MHD_add_response_header(s->dashboard, "Content-Security-Policy",
                          "default-src 'none'; script-src 'unsafe-inline'; "
                          "style-src 'unsafe-inline'; connect-src 'self'; img-src data:; "
                          "frame-ancestors 'none'; base-uri 'none'; form-action 'none'");
  add_security_headers(s->dashboard);
  s->opts.allowed_origins = NULL;
  if (o->n_allowed_origins > 0) {
    if ((s->origins = calloc(o->n_allowed_origins, sizeof(char *))) == NULL) goto fail;
    for (size_t i = 0; i < o->n_allowed_origins; i++)
      if ((s->origins[i] = strdup(o->allowed_origins[i])) == NULL) goto fail;
    s->opts.allowed_origins = (const char *const *)s->origins;
  }
  unsigned max_conn = o->max_connections ? o->max_connections : 1024;
  if (sp__guard_start(&s->guard, max_conn, o->max_per_client, o->read_timeout_s) != 0) goto fail;
  /* A pool of event loops only with more than one thread (MHD warns about a
   * pool of size 0 or 1 and then runs one loop anyway). */
  unsigned threads = o->threads;
  unsigned flags = (threads ? MHD_USE_EPOLL_INTERNAL_THREAD : MHD_USE_EPOLL) |
                   MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
  struct MHD_OptionItem pool[] = {
      {threads > 1 ? MHD_OPTION_THREAD_POOL_SIZE : MHD_OPTION_END, threads, NULL},
      {MHD_OPTION_END, 0, NULL}};
  s->daemon = MHD_start_daemon(
      flags, 0, NULL, NULL, on_request, s, MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, s,
      MHD_OPTION_LISTEN_SOCKET, (MHD_socket)o->listen_fd, MHD_OPTION_CONNECTION_TIMEOUT,
      o->read_timeout_s, MHD_OPTION_CONNECTION_LIMIT, max_conn + GUARD_HEADROOM,
      MHD_OPTION_NOTIFY_COMPLETED, on_completed, s, MHD_OPTION_NOTIFY_CONNECTION, sp__guard_notify,
      &s->guard, MHD_OPTION_SIGPIPE_HANDLED_BY_APP, 1, MHD_OPTION_ARRAY, pool, MHD_OPTION_END);
  if (s->daemon == NULL) {
    rc = SP_EIO;
    sp_error_setf(err, rc, "cannot start the HTTP server (libmicrohttpd refused the options)");
    goto fail;
  }
  s->opts.listen_fd = -1; /* MHD owns it now (and closes it, unless quiesced) */
  if (threads == 0) {
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_EPOLL_FD);
    sp_loop_source_t src = {
        .fd = di ? di->epoll_fd : -1, .run = source_run, .timeout_ms = source_timeout, .ud = s};
    if (src.fd < 0 || sp_runtime_attach_source(rt, &src, err) != 0) {
      if (src.fd < 0) sp_error_setf(err, SP_EIO, "libmicrohttpd gave no epoll descriptor");
      MHD_stop_daemon(s->daemon);
      free_server(s);
      return SP_EIO;
    }
    s->on_loop = 1;
  }
  *out = s;
  return 0;
fail:
  if (rc == SP_ENOMEM) sp_error_setf(err, rc, "out of memory starting the HTTP server");
  if (o->listen_fd >= 0) close(o->listen_fd);
  free_server(s);
  return rc;
}

void sp__http_quiesce(sp__http_t *h) {
  if (h == NULL || atomic_exchange(&h->draining, 1)) return;
  if (!h->on_loop) {
    quiesce_now(h);
    return;
  }
  /* The loop thread quiesces; once this returns, new connections are refused. */
  sp_runtime_kick_source(h->rt);
  struct timespec tick = {0, 1000000};
  for (int i = 0; i < 5000 && !atomic_load(&h->quiesced); i++) nanosleep(&tick, NULL);
}

int sp__http_wait_idle(sp__http_t *h, int timeout_ms) {
  /* Pending calls always end (the runtime answers each, at the latest with
   * SP_ESTOPPED when its drain period is over), and MHD must not stop while a
   * connection is suspended, so this first wait has no limit. */
  struct timespec tick = {0, 5 * 1000000};
  while (atomic_load(&h->pending) > 0) nanosleep(&tick, NULL);
  int64_t deadline = now_ns() + (int64_t)timeout_ms * 1000000;
  while (atomic_load(&h->active) > 0) {
    if (now_ns() >= deadline) return SP_ETIMEOUT;
    nanosleep(&tick, NULL);
  }
  return 0;
}

void sp__http_destroy(sp__http_t *h) {
  if (h == NULL) return;
  if (h->on_loop) sp_runtime_detach_source(h->rt); /* MHD runs on no thread from here */
  if (h->daemon) MHD_stop_daemon(h->daemon);       /* closes the listening socket unless quiesced */
  free_server(h);
}

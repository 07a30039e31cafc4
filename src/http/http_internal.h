/*
 * http_internal.h - what the HTTP server's files share: the server and request
 * structs, the reply helpers of server.c, the endpoints of routes.c and the
 * Prometheus renderer of metrics.c.
 */
#ifndef SP_HTTP_INTERNAL_H
#define SP_HTTP_INTERNAL_H

#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>

#include "http.h"
#include "utf8.h" /* src/core: shared with the argument check */

/** What a request path names; indexes the per-route counters. */
typedef enum {
  SP__ROUTE_UNKNOWN = 0,
  SP__ROUTE_DASHBOARD, /* GET / */
  SP__ROUTE_HEALTHZ,   /* GET /healthz */
  SP__ROUTE_READYZ,    /* GET /readyz */
  SP__ROUTE_METRICS,   /* GET /metrics */
  SP__ROUTE_POOLS,     /* GET /v1/pools */
  SP__ROUTE_POOL,      /* GET /v1/pools/{pool} */
  SP__ROUTE_TOOLS,     /* GET /v1/pools/{pool}/tools */
  SP__ROUTE_CALL,      /* POST /v1/pools/{pool}/tools/{tool} */
  SP__ROUTE_SESSION,   /* DELETE /v1/pools/{pool}/sessions/{id} */
  SP__ROUTE_COUNT
} sp__route_t;

/** Statuses are counted per route; 100..599 index [status - 100]. */
#define SP__HTTP_NSTATUS 500

/** One open connection as the guard sees it (guard.c). */
typedef struct sp__conn_s sp__conn_t;

/** Bounds on connections: total, per client address, time to deliver a request. */
typedef struct {
  pthread_mutex_t mu; /* the list; MHD's threads and the reaper */
  pthread_cond_t cv;
  pthread_t thread;
  sp__conn_t *head, *tail;
  unsigned count; /* connections not shut down by the guard */
  unsigned max_total, max_per_client;
  int64_t request_ns;
  int stop, running;
  _Atomic uint64_t timed_out; /* request not complete in time */
  _Atomic uint64_t evicted;   /* displaced by a newer connection */
  _Atomic uint64_t refused;   /* turned away on arrival */
} sp__guard_t;

struct sp__http_s {
  sp_runtime_t *rt;
  struct MHD_Daemon *daemon;
  sp__http_opts_t opts;
  char *token; /* owned copy, NULL when no token is required */
  size_t token_len;
  struct MHD_Response *dashboard; /* built once, shared by every GET / */
  int64_t started_ms;
  atomic_int draining;
  atomic_int quiesced; /* set by the thread that runs MHD once the socket is closed */
  int on_loop;  /* MHD runs as an event source of the runtime's loop thread */
  atomic_long active;  /* requests between their first callback and completion */
  atomic_long pending; /* tool calls handed to the runtime and not yet answered */
  _Atomic uint64_t counts[SP__ROUTE_COUNT][SP__HTTP_NSTATUS];
  char **origins; /* owned copies of opts.allowed_origins */
  sp__guard_t guard;
};

/** Where a request is: reading its body, waiting for its call, or answered. */
typedef enum {
  SP__REQ_READING = 0,
  SP__REQ_WAITING,
  SP__REQ_DONE,
  SP__REQ_REPLIED
} sp__req_state_t;

/** One request, from its first callback to MHD's completion notice. */
typedef struct sp__req_s {
  sp__http_t *srv;
  struct MHD_Connection *conn;
  sp__route_t route;
  sp__req_state_t state;
  char *pool; /* both point into one allocation owned through pool */
  char *tool;
  char *body; /* request body, NUL-terminated once complete */
  size_t len, cap;
  size_t dropped;         /* bytes discarded: not a call, refused, or over max_body */
  unsigned refuse_status; /* non-zero: reply this error once the request is read */
  const char *refuse_code;
  char refuse_msg[400];
  unsigned status; /* the status replied, for counters and the access log */
  int64_t start_ns;
  char *path; /* copy for the access log, else NULL */
  const char *method;
  int preflight;           /* an allowed origin's OPTIONS request */
  const char *cors_origin; /* an allowed Origin to echo in Access-Control-Allow-Origin */
  /* Outcome of the tool call, written on the runtime's loop thread before it
   * resumes the connection (the resume orders these writes before our reads). */
  char *result; /* owned, free with result_free */
  size_t result_len;
  void (*result_free)(void *); /* sp_free for the library's JSON, free for a multipart body */
  const char *multipart;       /* the client accepts returned arrays as multipart/<this>, or NULL */
  char result_ctype[128];      /* Content-Type of a multipart result (with its boundary) */
  sp_error_t *error; /* owned copy when the call failed */
} sp__req_t;

/* ---- server.c: replies ---------------------------------------------------- */

/**
 * Queues a response. body is copied unless free_fn is non-NULL, in which case the
 * response owns it and releases it with free_fn. Adds Content-Type, and
 * "Connection: close" while draining. Records the status.
 */
enum MHD_Result sp__http_reply(sp__req_t *r, unsigned status, const char *ctype, char *body,
                               size_t len, void (*free_fn)(void *));

/**
 * Queues resp with the headers every reply gets (sp__http_reply) and releases
 * the caller's reference to it; records the status.
 */
enum MHD_Result sp__http_queue(sp__req_t *r, unsigned status, const char *ctype,
                               struct MHD_Response *resp);

/** {"error": {category, code, message, python_type, traceback}} as text (free()), or NULL. */
char *sp__http_error_json(const char *category, const char *code, const char *message,
                          const char *python_type, const char *traceback);

/** Replies {"error": {category, code, message, python_type, traceback}}; NULLs become null. */
enum MHD_Result sp__http_reply_error(sp__req_t *r, unsigned status, const char *category,
                                     const char *code, const char *message, const char *python_type,
                                     const char *traceback);

/** Replies with a library error, its status chosen by sp__http_status_of(); frees e's texts. */
enum MHD_Result sp__http_reply_sp_error(sp__req_t *r, sp_error_t *e);

/** HTTP status for an SP_E* code: 400 validation, 404 unknown pool/tool, 503, 504, 500, ... */
unsigned sp__http_status_of(int code);


/* ---- guard.c: connection bounds ------------------------------------------ */

/** Starts the reaper. max_per_client 0 means max_total. 0, or SP_ENOMEM. */
int sp__guard_start(sp__guard_t *g, unsigned max_total, unsigned max_per_client,
                    unsigned request_timeout_s);
/** Stops the reaper; after MHD stopped (its close notices touch the guard). */
void sp__guard_stop(sp__guard_t *g);
/** MHD_OPTION_NOTIFY_CONNECTION callback; cls is the guard. */
void sp__guard_notify(void *cls, struct MHD_Connection *mc, void **socket_context,
                      enum MHD_ConnectionNotificationCode toe);
/** The connection's request is fully read: its clock stops. */
void sp__guard_request_read(struct MHD_Connection *mc);
/** Its response was sent: it waits for the next request, and the clock runs again. */
void sp__guard_request_done(struct MHD_Connection *mc);

/* ---- policy.c: request checks --------------------------------------------- */

/** 0, or -1 with msg set when Content-Length / Transfer-Encoding are ambiguous. */
int sp__http_check_framing(struct MHD_Connection *c, char *msg, size_t len);
/** 0, or -1 with msg set for a foreign Host (on loopback) or a cross-origin request. */
int sp__http_check_origin(const sp__http_t *s, struct MHD_Connection *c, const char *method,
                          int dashboard, char *msg, size_t len);
/** 1 if origin was allowed with --allow-origin. */
int sp__http_origin_allowed(const sp__http_t *s, const char *origin);
/** 0, or -1 with msg set when a call's body is not declared application/json. */
int sp__http_check_json_type(struct MHD_Connection *c, char *msg, size_t len);

/* ---- routes.c: endpoints -------------------------------------------------- */

/** Sets r->route (and r->pool / r->tool) from the decoded path. 0, or SP_ENOMEM. */
int sp__http_route(sp__req_t *r, const char *path);
/** The methods a route accepts, for Allow headers: "GET, HEAD" or "POST". */
const char *sp__http_route_methods(sp__route_t route);
/** Stable name of a route, used as a metrics label ("call", "pools", ...). */
const char *sp__http_route_name(sp__route_t route);
/** Answers a GET route at once. */
enum MHD_Result sp__http_get(sp__req_t *r);
/** Starts the tool call of a complete POST: suspends the connection until it is answered. */
enum MHD_Result sp__http_call_start(sp__req_t *r);
/** Replies with the outcome of the call once the connection was resumed. */
enum MHD_Result sp__http_call_reply(sp__req_t *r);

/* ---- streaming.c: SSE and NDJSON replies ------------------------------------ */

/** 1 when the request's Accept asks for text/event-stream, 2 for application/x-ndjson, else 0. */
int sp__http_stream_wanted(sp__req_t *r);
/** Starts a streaming call and replies with its chunks as they come (kind as above). */
enum MHD_Result sp__http_stream_start(sp__req_t *r, int kind, const char *args,
                                      const sp_call_opts_t *opts);

/* ---- arrays.c: arrays in calls (multipart bodies of .npy parts) --------- */

/** A call's inputs from a multipart/form-data body; everything points into the body. */
typedef struct sp__http_inputs_s {
  struct sp__part_s *parts;
  size_t nparts;
  sp_array_t *arrays; /* the .npy parts, bound by part name */
  struct sp_npy_s *npy;
  size_t count;
  char *args; /* the "args" part as text, or NULL */
} sp__http_inputs_t;

/**
 * Decodes a multipart/form-data call body: 0 when the request is not
 * multipart (plain JSON), 1 with in filled, or a negative code with err
 * naming the part that is wrong (400). in is released by sp__http_inputs_free.
 */
int sp__http_inputs_parse(sp__req_t *r, sp__http_inputs_t *in, sp_error_t *err);
void sp__http_inputs_free(sp__http_inputs_t *in);
/** Whether a call's Content-Type is multipart/form-data (a call with arrays). */
int sp__http_is_multipart_call(sp__req_t *r);
/** "form-data" or "mixed" when the client's Accept takes a multipart reply, else NULL. */
const char *sp__http_accepts_multipart(sp__req_t *r);
/**
 * A multipart/<subtype> body of a result: the part "result" (its JSON) first,
 * then one .npy part per array in index order, each named by its path. *body
 * is the caller's (free()); ctype gets the Content-Type. 0, or SP_ENOMEM.
 */
int sp__http_result_multipart(const sp_result_t *res, const char *subtype, char **body, size_t *len,
                              char *ctype, size_t ctypelen);

/* ---- metrics.c: Prometheus text format ------------------------------------ */

/**
 * Writes the Prometheus text exposition (format 0.0.4) of the stats JSON of every
 * pool ({"pools":[...]}, as sp_stats_json returns it) and of the server's own
 * request counters to out. Returns 0, or SP_EPROTOCOL if the JSON is not stats.
 */
int sp__metrics_write(FILE *out, const char *stats_json, const sp__http_t *srv);

#endif

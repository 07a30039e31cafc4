/*
 * streaming.c - POST /v1/pools/P/tools/T with `Accept: text/event-stream`
 * (Server-Sent Events) or `Accept: application/x-ndjson` (one JSON value per
 * line, chunked): the chunks of sp_execute_stream() go out as they come.
 *
 * SSE: each chunk is `data: JSON`, then `event: done` with {"chunks": N}, or
 * `event: error` with {"error": {...}} (the same object an error reply has).
 * NDJSON: each chunk is a line, then {"$done": {"chunks": N}} or
 * {"$error": {...}}. Errors after the first chunk arrive as that final event:
 * the status (200) has gone out already.
 *
 * Who does what: the runtime's loop thread appends events to the stream's
 * buffer (on_chunk, on_done) and resumes the connection when MHD waits for
 * them; MHD's content reader takes bytes out and suspends the connection when
 * there are none. A buffer above HIGH_WATER makes on_chunk answer
 * SP_CHUNK_PAUSE, and the reader resumes the stream below LOW_WATER, so a slow
 * client pauses the generator instead of growing the buffer. A client that
 * goes away cancels the stream (its generator is closed), noticed at the next
 * write to it, or, while the stream waits for its next chunk (a tool busy in
 * a nested call, say), by the disconnect watcher within WATCH_MS.
 */
#include <errno.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "buf.h"
#include "http_internal.h"

#define HIGH_WATER (256u * 1024u)
#define LOW_WATER (64u * 1024u)

typedef struct hstream_s {
  pthread_mutex_t mu; /* guards the fields up to `paused` */
  sp__buf_t out;      /* events not yet taken by MHD, from `taken` on */
  size_t taken;
  int finished;  /* the final event is in out */
  int suspended; /* the reader suspended the connection waiting for events */
  int paused;    /* on_chunk answered SP_CHUNK_PAUSE */
  int sse;
  atomic_int gone; /* MHD released the response: the client is gone or was answered */
  atomic_int refs; /* the response and the call */
  uint64_t call_id;
  sp__http_t *srv;
  struct MHD_Connection *conn;
  int fd;                 /* the client's socket, for the disconnect watcher; -1 if unknown */
  int cancelled;          /* the watcher cancelled it (watch_mu) */
  struct hstream_s *wnext; /* in the watcher's list (watch_mu) */
} hstream_t;

static void unref(hstream_t *st) {
  if (atomic_fetch_sub(&st->refs, 1) != 1) return;
  sp__buf_free(&st->out);
  pthread_mutex_destroy(&st->mu);
  free(st);
}

/*
 * The disconnect watcher: MHD does not look at a suspended connection, so a
 * client that leaves while its stream waits for the next chunk would be
 * noticed only at that chunk, and the tool (and any nested call it waits
 * for) would run on until its deadline. One thread, alive while streams are,
 * peeks at each waiting stream's socket every WATCH_MS: end of file or an
 * error means the client is gone, and the stream is cancelled. (A client
 * that half-closes its side while still reading looks gone too; HTTP clients
 * do not do that.)
 */
#define WATCH_MS 200

static pthread_mutex_t watch_mu = PTHREAD_MUTEX_INITIALIZER;
static hstream_t *watched;
static int watcher_on;

static void *watch_main(void *arg) {
  (void)arg;
  struct timespec period = {0, WATCH_MS * 1000000L};
  pthread_mutex_lock(&watch_mu);
  while (watched != NULL) {
    for (hstream_t *st = watched; st != NULL; st = st->wnext) {
      pthread_mutex_lock(&st->mu);
      int waiting = st->suspended;
      pthread_mutex_unlock(&st->mu);
      if (st->cancelled || st->fd < 0 || !waiting) continue; /* MHD notices the others */
      char c;
      ssize_t n = recv(st->fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
      if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
        st->cancelled = 1;
        sp_cancel(st->srv->rt, st->call_id); /* any thread; no-op once it finished */
      }
    }
    pthread_mutex_unlock(&watch_mu);
    nanosleep(&period, NULL);
    pthread_mutex_lock(&watch_mu);
  }
  watcher_on = 0;
  pthread_mutex_unlock(&watch_mu);
  return NULL;
}

/* Lists st for the watcher (holding a reference), starting it if needed. */
static void watch(hstream_t *st) {
  const union MHD_ConnectionInfo *ci =
      MHD_get_connection_info(st->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
  st->fd = ci != NULL ? ci->connect_fd : -1;
  atomic_fetch_add(&st->refs, 1);
  pthread_mutex_lock(&watch_mu);
  st->wnext = watched;
  watched = st;
  if (!watcher_on) {
    pthread_t t;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    watcher_on = pthread_create(&t, &attr, watch_main, NULL) == 0;
    pthread_attr_destroy(&attr);
  }
  pthread_mutex_unlock(&watch_mu);
}

/* Takes st off the watcher's list (its socket is about to go) and drops that reference. */
static void unwatch(hstream_t *st) {
  int listed = 0;
  pthread_mutex_lock(&watch_mu);
  for (hstream_t **pp = &watched; *pp != NULL; pp = &(*pp)->wnext) {
    if (*pp == st) {
      *pp = st->wnext;
      listed = 1;
      break;
    }
  }
  pthread_mutex_unlock(&watch_mu);
  if (listed) unref(st);
}

/* Events were added: a reader waiting for them goes on. st->mu held. */
static void wake_locked(hstream_t *st) {
  if (!st->suspended || atomic_load(&st->gone)) return;
  st->suspended = 0;
  MHD_resume_connection(st->conn);
  if (st->srv->on_loop) sp_runtime_kick_source(st->srv->rt);
}

/* Appends one event: SSE `[event: NAME\n]data: JSON\n\n`, NDJSON `JSON\n`. */
static int append_event(hstream_t *st, const char *event, const char *json, size_t len) {
  sp__buf_t *b = &st->out;
  if (st->sse && event != NULL &&
      (sp__buf_append_str(b, "event: ", 7) != 0 || sp__buf_append_str(b, event, strlen(event)) != 0 ||
       sp__buf_append_str(b, "\n", 1) != 0))
    return -1;
  if (st->sse && sp__buf_append_str(b, "data: ", 6) != 0) return -1;
  if (sp__buf_append_str(b, json, len) != 0) return -1;
  return sp__buf_append_str(b, st->sse ? "\n\n" : "\n", st->sse ? 2 : 1);
}

static int on_chunk(const char *json, size_t len, void *ud) {
  hstream_t *st = ud;
  if (atomic_load(&st->gone)) return SP_CHUNK_STOP;
  pthread_mutex_lock(&st->mu);
  int rc = append_event(st, NULL, json, len) == 0 ? SP_CHUNK_CONTINUE : SP_CHUNK_STOP;
  if (rc == SP_CHUNK_CONTINUE && st->out.len - st->taken > HIGH_WATER) {
    st->paused = 1;
    rc = SP_CHUNK_PAUSE;
  }
  wake_locked(st);
  pthread_mutex_unlock(&st->mu);
  return rc;
}

static void on_done(sp_result_t *res, void *ud) {
  hstream_t *st = ud;
  sp_error_t *e = &res->error;
  char *text = NULL;
  if (e->code == 0) {
    text = strdup(res->json ? res->json : "null");
  } else {
    text = sp__http_error_json(sp_category_name(e->category), sp_err_name(e->code), e->message,
                               e->python_type, e->traceback);
  }
  pthread_mutex_lock(&st->mu);
  if (text != NULL) {
    if (st->sse) {
      append_event(st, e->code == 0 ? "done" : "error", text, strlen(text));
    } else {
      /* {"$done": RESULT} or {"$error": {...}} (the error text without its outer braces' key). */
      const char *body = e->code == 0 ? text : strchr(text, ':') + 1;
      size_t blen = strlen(body) - (e->code == 0 ? 0 : 1);
      const char *key = e->code == 0 ? "{\"$done\":" : "{\"$error\":";
      if (sp__buf_append_str(&st->out, key, strlen(key)) == 0 &&
          sp__buf_append_str(&st->out, body, blen) == 0)
        sp__buf_append_str(&st->out, "}\n", 2);
    }
  }
  st->finished = 1;
  wake_locked(st);
  pthread_mutex_unlock(&st->mu);
  free(text);
  atomic_fetch_sub(&st->srv->pending, 1);
  unref(st);
}

/* MHD's content reader: hands out what is buffered, or waits (suspended). */
static ssize_t reader(void *cls, uint64_t pos, char *buf, size_t max) {
  hstream_t *st = cls;
  (void)pos;
  int resume = 0;
  pthread_mutex_lock(&st->mu);
  size_t have = st->out.len - st->taken;
  if (have == 0) {
    int end = st->finished;
    if (!end) {
      st->suspended = 1;
      MHD_suspend_connection(st->conn);
    }
    pthread_mutex_unlock(&st->mu);
    return end ? MHD_CONTENT_READER_END_OF_STREAM : 0;
  }
  size_t n = have < max ? have : max;
  memcpy(buf, st->out.data + st->taken, n);
  st->taken += n;
  if (st->taken == st->out.len) {
    st->out.len = 0;
    st->taken = 0;
  } else if (st->taken > LOW_WATER) {
    sp__buf_consume(&st->out, st->taken);
    st->taken = 0;
  }
  if (st->paused && st->out.len - st->taken < LOW_WATER) {
    st->paused = 0;
    resume = 1;
  }
  pthread_mutex_unlock(&st->mu);
  if (resume) sp_stream_resume(st->srv->rt, st->call_id);
  return (ssize_t)n;
}

/* MHD released the response: the reply ended, or the client went away first. */
static void released(void *cls) {
  hstream_t *st = cls;
  unwatch(st);
  atomic_store(&st->gone, 1);
  sp_cancel(st->srv->rt, st->call_id); /* no-op once the stream finished */
  unref(st);
}

int sp__http_stream_wanted(sp__req_t *r) {
  const char *accept = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Accept");
  if (accept == NULL) return 0;
  if (strstr(accept, "text/event-stream") != NULL) return 1;
  if (strstr(accept, "application/x-ndjson") != NULL) return 2;
  return 0;
}

enum MHD_Result sp__http_stream_start(sp__req_t *r, int kind, const char *args,
                                      const sp_call_opts_t *opts) {
  sp__http_t *s = r->srv;
  hstream_t *st = calloc(1, sizeof(*st));
  if (st == NULL) return MHD_NO;
  pthread_mutex_init(&st->mu, NULL);
  st->sse = kind == 1;
  st->srv = s;
  st->conn = r->conn;
  atomic_init(&st->refs, 2);
  /* The response exists before the call, so that its chunks have a reader. */
  struct MHD_Response *resp =
      MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16 * 1024, reader, st, released);
  if (resp == NULL) {
    pthread_mutex_destroy(&st->mu);
    free(st);
    return MHD_NO;
  }
  sp_error_t err;
  atomic_fetch_add(&s->pending, 1);
  if (sp_execute_stream(s->rt, r->pool, r->tool, args, opts, on_chunk, on_done, st, &st->call_id,
                        &err) != 0) {
    atomic_fetch_sub(&s->pending, 1);
    atomic_store(&st->refs, 1); /* the call never runs: only the response holds it */
    MHD_destroy_response(resp); /* calls released(): frees st */
    return sp__http_reply_sp_error(r, &err);
  }
  /* The read timeout is for clients that stall a request; a stream's pauses
   * between chunks are the generator's, bounded by the call's deadline. */
  MHD_set_connection_option(r->conn, MHD_CONNECTION_OPTION_TIMEOUT, 0u);
  MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
  MHD_add_response_header(resp, "X-Accel-Buffering", "no");
  watch(st);
  return sp__http_queue(r, MHD_HTTP_OK, st->sse ? "text/event-stream" : "application/x-ndjson",
                        resp);
}

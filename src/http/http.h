/*
 * http.h - the HTTP front end of `snakepit serve`, as the CLI sees it: bind a
 * listening socket, start the server on a running sp_runtime_t, drain it, stop it.
 */
#ifndef SP_HTTP_H
#define SP_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include "snakepit.h"

typedef struct sp__http_s sp__http_t;

/** Server settings. Zero-initialise, then set; sp__http_start() copies what it needs. */
typedef struct sp__http_opts_s {
  int listen_fd;            /* bound and listening (sp__http_listen); the server owns it */
  const char *token;        /* bearer token for the API and /metrics; NULL or "" = none */
  size_t max_body;          /* largest request body in bytes; larger ones get 413 */
  unsigned read_timeout_s;  /* a connection idle (or a client this slow) for this long closes */
  unsigned threads;         /* 0: on the runtime's loop thread; N: N threads of its own */
  unsigned max_connections; /* open connections at most (the guard keeps to it, see guard.c) */
  unsigned max_per_client;  /* open connections of one client address at most; 0 = no own limit */
  int loopback;             /* listening on loopback: Host must name a loopback address */
  const char *const *allowed_origins; /* browser origins allowed to call; copied */
  size_t n_allowed_origins;
  int64_t call_timeout_ms;  /* per-call timeout when a request sets none; 0 = the pool's */
  int access_log;           /* one line per request on stderr */
} sp__http_opts_t;

/**
 * Parses "HOST:PORT" ("[V6]:PORT", "localhost:PORT", ":PORT" for every address;
 * port 0 picks a free one), binds and listens. Unless allow_public is set, an
 * address that is not a loopback one is refused before anything is bound. On 0,
 * *fd is a non-blocking listening socket, *loopback says whether the address is
 * a loopback one, and url receives the address the server really listens on
 * ("http://127.0.0.1:43121"). On failure err says why; SP_EINVAL for a bad or
 * refused address, SP_EIO when bind/listen failed.
 */
int sp__http_listen(const char *spec, int allow_public, int *fd, int *loopback, char *url,
                    size_t url_len, sp_error_t *err);

/**
 * Starts serving rt on o->listen_fd. rt must outlive the server (stop the server
 * first, then the runtime). On failure the listening socket is closed.
 */
int sp__http_start(sp__http_t **out, sp_runtime_t *rt, const sp__http_opts_t *o, sp_error_t *err);

/**
 * First step of a graceful stop: closes the listening socket (new connections are
 * refused), makes /readyz answer 503 and asks clients on open connections to
 * close after their response. Calls keep being served. Thread-safe, idempotent.
 */
void sp__http_quiesce(sp__http_t *h);

/**
 * Waits until no tool call is waiting for the runtime (always: the runtime answers
 * every call, at the latest when its drain period ends) and then until no request
 * is being processed, or timeout_ms passed. Returns 0 when idle, SP_ETIMEOUT if
 * requests were still open (a slow upload, a client not reading its response).
 */
int sp__http_wait_idle(sp__http_t *h, int timeout_ms);

/** Stops the server (open connections are closed) and frees it. NULL is fine. */
void sp__http_destroy(sp__http_t *h);

#endif

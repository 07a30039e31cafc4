/*
 * guard.c - keeps slow or hoarding clients from holding the HTTP server's
 * connections: every connection gets a bounded time to deliver each complete
 * request, and a new connection displaces the oldest one still waiting for its
 * request when its client address, or the whole server, is at its share.
 *
 * libmicrohttpd's own connection timeout is an idle timeout: a client that sends
 * one header line every few seconds never trips it (slowloris). The guard sees
 * every connection through MHD_OPTION_NOTIFY_CONNECTION and a small reaper
 * thread shuts down (shutdown(2), never close: the socket stays MHD's) those
 * whose request is overdue; MHD then sees the end of the stream and closes them
 * on whatever thread runs it.
 */
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "http_internal.h"

struct sp__conn_s {
  struct sp__conn_s *prev, *next;
  int fd;
  int family;
  unsigned char addr[16]; /* the client's IP address, without the port */
  /* When the connection started waiting for a request (its accept, or the end
   * of its previous response); 0 while a request is being answered. */
  _Atomic int64_t reading_since;
  int shut; /* shut down by the guard; no longer counted */
};

static int64_t mono_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void address_of(sp__conn_t *c, const struct sockaddr *sa) {
  c->family = sa ? sa->sa_family : AF_UNSPEC;
  if (c->family == AF_INET)
    memcpy(c->addr, &((const struct sockaddr_in *)sa)->sin_addr, 4);
  else if (c->family == AF_INET6)
    memcpy(c->addr, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
}

static int same_client(const sp__conn_t *a, const sp__conn_t *b) {
  return a->family == b->family && memcmp(a->addr, b->addr, sizeof(a->addr)) == 0;
}

/* Under g->mu. */
static void shut(sp__guard_t *g, sp__conn_t *c, _Atomic uint64_t *counter) {
  c->shut = 1;
  g->count--;
  shutdown(c->fd, SHUT_RDWR);
  atomic_fetch_add_explicit(counter, 1, memory_order_relaxed);
}

/* Admits c (already linked and counted), displacing the oldest connection still
 * waiting for its request of the same client when that client is over its
 * share, else of anyone when the server is over its limit. With no such
 * connection to displace, c itself is turned away. Under g->mu. */
static void admit(sp__guard_t *g, sp__conn_t *c) {
  unsigned mine = 0;
  sp__conn_t *oldest_mine = NULL, *oldest = NULL;
  int64_t t_mine = INT64_MAX, t_any = INT64_MAX;
  for (sp__conn_t *p = g->head; p != NULL; p = p->next) {
    if (p->shut) continue;
    int same = same_client(p, c);
    mine += (unsigned)same;
    int64_t since = atomic_load_explicit(&p->reading_since, memory_order_relaxed);
    if (p == c || since == 0) continue;
    if (since < t_any) t_any = since, oldest = p;
    if (same && since < t_mine) t_mine = since, oldest_mine = p;
  }
  sp__conn_t *victim = NULL;
  if (mine > g->max_per_client)
    victim = oldest_mine ? oldest_mine : c;
  else if (g->count > g->max_total)
    victim = oldest ? oldest : c;
  if (victim != NULL) shut(g, victim, victim == c ? &g->refused : &g->evicted);
}

void sp__guard_notify(void *cls, struct MHD_Connection *mc, void **socket_context,
                      enum MHD_ConnectionNotificationCode toe) {
  sp__guard_t *g = cls;
  if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
    sp__conn_t *c = calloc(1, sizeof(*c));
    const union MHD_ConnectionInfo *fi =
        MHD_get_connection_info(mc, MHD_CONNECTION_INFO_CONNECTION_FD);
    const union MHD_ConnectionInfo *ai =
        MHD_get_connection_info(mc, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    if (c == NULL || fi == NULL) {
      /* Untracked, it would escape the limits: refuse it instead. */
      if (fi != NULL) shutdown(fi->connect_fd, SHUT_RDWR);
      free(c);
      *socket_context = NULL;
      return;
    }
    c->fd = fi->connect_fd;
    address_of(c, ai ? ai->client_addr : NULL);
    atomic_init(&c->reading_since, mono_ns());
    pthread_mutex_lock(&g->mu);
    c->prev = g->tail;
    if (g->tail)
      g->tail->next = c;
    else
      g->head = c;
    g->tail = c;
    if (g->count++ == 0) pthread_cond_signal(&g->cv); /* the reaper may sleep without a deadline */
    admit(g, c);
    pthread_mutex_unlock(&g->mu);
    *socket_context = c;
  } else if (toe == MHD_CONNECTION_NOTIFY_CLOSED) {
    sp__conn_t *c = *socket_context;
    if (c == NULL) return;
    *socket_context = NULL;
    pthread_mutex_lock(&g->mu);
    if (c->prev)
      c->prev->next = c->next;
    else
      g->head = c->next;
    if (c->next)
      c->next->prev = c->prev;
    else
      g->tail = c->prev;
    if (!c->shut) g->count--;
    pthread_mutex_unlock(&g->mu);
    free(c);
  }
}

static sp__conn_t *conn_of(struct MHD_Connection *mc) {
  const union MHD_ConnectionInfo *i =
      MHD_get_connection_info(mc, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
  return i ? i->socket_context : NULL;
}

void sp__guard_request_read(struct MHD_Connection *mc) {
  sp__conn_t *c = conn_of(mc);
  if (c) atomic_store_explicit(&c->reading_since, 0, memory_order_relaxed);
}

void sp__guard_request_done(struct MHD_Connection *mc) {
  sp__conn_t *c = conn_of(mc);
  if (c) atomic_store_explicit(&c->reading_since, mono_ns(), memory_order_relaxed);
}

/* Shuts down every connection whose request is overdue; sleeps until the next
 * one can be, or until a connection arrives when there is none. */
static void *reaper(void *arg) {
  sp__guard_t *g = arg;
  pthread_mutex_lock(&g->mu);
  while (!g->stop) {
    int64_t now = mono_ns(), next = INT64_MAX;
    for (sp__conn_t *p = g->head; p != NULL; p = p->next) {
      int64_t since = atomic_load_explicit(&p->reading_since, memory_order_relaxed);
      if (p->shut || since == 0) continue;
      if (now - since >= g->request_ns)
        shut(g, p, &g->timed_out);
      else if (since + g->request_ns < next)
        next = since + g->request_ns;
    }
    /* A connection busy with a request now may be reading again later: look
     * again within the period even when no deadline is known. */
    if (next == INT64_MAX && g->count > 0) next = now + g->request_ns;
    if (next == INT64_MAX) {
      pthread_cond_wait(&g->cv, &g->mu);
    } else {
      struct timespec ts;
      clock_gettime(CLOCK_MONOTONIC, &ts);
      int64_t wake = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec + (next - now);
      ts.tv_sec = wake / 1000000000;
      ts.tv_nsec = wake % 1000000000;
      pthread_cond_timedwait(&g->cv, &g->mu, &ts);
    }
  }
  pthread_mutex_unlock(&g->mu);
  return NULL;
}

int sp__guard_start(sp__guard_t *g, unsigned max_total, unsigned max_per_client,
                    unsigned request_timeout_s) {
  memset(g, 0, sizeof(*g));
  g->max_total = max_total;
  g->max_per_client = max_per_client ? max_per_client : max_total;
  g->request_ns = (int64_t)request_timeout_s * 1000000000;
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  int rc = pthread_cond_init(&g->cv, &ca);
  pthread_condattr_destroy(&ca);
  if (rc != 0) return SP_ENOMEM;
  pthread_mutex_init(&g->mu, NULL);
  if (pthread_create(&g->thread, NULL, reaper, g) != 0) {
    pthread_cond_destroy(&g->cv);
    pthread_mutex_destroy(&g->mu);
    return SP_ENOMEM;
  }
  g->running = 1;
  return 0;
}

void sp__guard_stop(sp__guard_t *g) {
  if (!g->running) return;
  pthread_mutex_lock(&g->mu);
  g->stop = 1;
  pthread_cond_signal(&g->cv);
  pthread_mutex_unlock(&g->mu);
  pthread_join(g->thread, NULL);
  pthread_cond_destroy(&g->cv);
  pthread_mutex_destroy(&g->mu);
  g->running = 0;
}

/*
 * remote.c - calls to remote pools over NATS (remote.h). A call is published
 * on the pool's "call" subject, which only nodes with a free slot subscribe
 * to; when no node has one (NATS answers "no responders") it goes to the
 * pool's "wait" subject, where every node of the pool listens and queues it;
 * when nobody listens there either, no node serves the pool and the call fails
 * at once. Replies come back on one inbox per connection. The timer thread
 * (rwatch.c) fails late calls and calls of nodes that went away; streams are
 * rstream.c.
 */
#include "remote.h"

#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <stddef.h>
#include <string.h>

#include "arrays.h"
#include "body.h"
#include "clock.h"
#include "config.h"
#include "errors.h"
#include "jsonargs.h"
#include "natsconn.h"
#include "remote_int.h"
#include "runtime.h"

/* ---- the table of calls waiting for a reply ---------------------------- */

static void table_put(sp__remote_t *r, rcall_t *c) {
  rcall_t **b = &r->table[c->seq & (TABLE_SIZE - 1)];
  c->next = *b;
  *b = c;
  r->pending++;
}

/* Removes and returns the call, or NULL when it finished already. Under r->mu. */
rcall_t *sp__rcall_take(sp__remote_t *r, uint64_t seq) {
  for (rcall_t **p = &r->table[seq & (TABLE_SIZE - 1)]; *p; p = &(*p)->next) {
    if ((*p)->seq == seq) {
      rcall_t *c = *p;
      *p = c->next;
      r->pending--;
      pthread_cond_broadcast(&r->cond);
      return c;
    }
  }
  return NULL;
}

rcall_t *sp__rcall_get(sp__remote_t *r, uint64_t seq) {
  for (rcall_t *c = r->table[seq & (TABLE_SIZE - 1)]; c; c = c->next)
    if (c->seq == seq) return c;
  return NULL;
}

/* ---- completion ---------------------------------------------------------- */

void sp__rcall_free(rcall_t *c) {
  free(c->tool);
  free(c->args);
  sem_destroy(&c->done);
  free(c);
}

void sp__rcall_unref(rcall_t *c) {
  if (atomic_fetch_sub(&c->refs, 1) == 1) sp__rcall_free(c);
}

/* The call (taken out of the table) ended; res is filled. Any thread. */
void sp__rcall_finish(sp__remote_t *r, rcall_t *c) {
  atomic_fetch_add(c->res->error.code == 0 ? &c->pool->calls_ok : &c->pool->calls_failed, 1);
  if (c->cb == NULL) {
    sem_post(&c->done); /* the waiting caller frees it */
    return;
  }
  c->msg.kind = SP__MSG_REMOTE;
  c->what = RMSG_DONE;
  if (sp__rt_post(r->rt, &c->msg) != 0) { /* the loop thread is gone: nobody to tell */
    sp_result_free(&c->own);
    sp__rcall_unref(c);
  }
}

void sp__rcall_fail(sp__remote_t *r, rcall_t *c, int code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;
void sp__rcall_fail(sp__remote_t *r, rcall_t *c, int code, const char *fmt, ...) {
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  sp_error_set(&c->res->error, code, msg, NULL, NULL);
  sp__rcall_finish(r, c);
}

void sp__remote_msg(sp_runtime_t *rt, sp__msg_t *m) {
  if (((rchunk_t *)m)->what == RMSG_CHUNK) {
    sp__rstream_deliver(rt->remote, (rchunk_t *)m);
    return;
  }
  rcall_t *c = (rcall_t *)m;
  c->completed = 1;
  c->cb(&c->own, c->ud);
  sp_result_free(&c->own);
  sp__rcall_unref(c);
}

/* ---- sending --------------------------------------------------------------- */

/* Publishes the call on the subject of its stage with the time it has left. */
natsStatus sp__rcall_send(rcall_t *c) {
  sp__remote_pool_t *p = c->pool;
  char reply[96], id[96];
  snprintf(reply, sizeof(reply), "%s.%" PRIu64, p->conn->inbox, c->seq);
  snprintf(id, sizeof(id), "%s-%" PRIu64, p->conn->inbox + 7, c->seq);
  snprintf(c->req_id, sizeof(c->req_id), "%s", id);
  int64_t left = c->deadline_ms - sp__now_ms();
  sp__wire_call_t w = {c->tool, left > 1 ? left : 1, c->idempotent, id, c->args, c->args_len,
                       c->on_chunk != NULL, c->json_len, c->lists, NULL, 0};
  natsMsg *m = NULL;
  if (sp__wire_call_encode(&m, c->stage ? p->wait_subject : p->call_subject, reply, &w) != 0)
    return NATS_NO_MEMORY;
  natsStatus s = natsConnection_PublishMsg(p->conn->nc, m);
  natsMsg_Destroy(m);
  return s;
}

/* A reply or notice on a connection's inbox (a NATS delivery thread). */
static void on_reply(natsConnection *nc, natsSubscription *sub, natsMsg *m, void *ud) {
  (void)nc;
  (void)sub;
  rconn_t *conn = ud;
  sp__remote_t *r = conn->r;
  const char *subj = natsMsg_GetSubject(m);
  const char *dot = strrchr(subj, '.');
  uint64_t seq = dot ? strtoull(dot + 1, NULL, 10) : 0;
  pthread_mutex_lock(&r->mu);
  rcall_t *c = sp__rcall_get(r, seq);
  if (c == NULL) { /* late: the call timed out or its node was given up */
    pthread_mutex_unlock(&r->mu);
    natsMsg_Destroy(m);
    return;
  }
  if (natsMsg_IsNoResponders(m)) {
    if (c->stage == 0) {
      /* Every node of the pool is full (or there is none): queue on one of them. */
      c->stage = 1;
      natsStatus s = sp__rcall_send(c);
      if (s == NATS_OK) {
        pthread_mutex_unlock(&r->mu);
        natsMsg_Destroy(m);
        return;
      }
    }
    sp__rcall_take(r, seq);
    pthread_mutex_unlock(&r->mu);
    natsMsg_Destroy(m);
    sp__rcall_fail(r, c, SP_ENOPOOL, "no node serves pool '%s' on %s (nothing subscribes to %s)",
         c->pool->cfg->name, conn->shown, c->pool->wait_subject);
    return;
  }
  if (sp__wire_is_chunk(m)) {
    int len = natsMsg_GetDataLength(m);
    rchunk_t *k = c->on_chunk ? malloc(sizeof(*k) + (size_t)len + 1) : NULL;
    if (k != NULL) {
      k->msg.kind = SP__MSG_REMOTE;
      k->what = RMSG_CHUNK;
      k->c = c;
      k->len = (size_t)len;
      memcpy(k->data, natsMsg_GetData(m), (size_t)len);
      k->data[len] = '\0';
      atomic_fetch_add(&c->refs, 1);
      if (sp__rt_post(r->rt, &k->msg) != 0) {
        atomic_fetch_sub(&c->refs, 1);
        free(k);
      }
    }
    pthread_mutex_unlock(&r->mu);
    natsMsg_Destroy(m);
    return;
  }
  if (sp__wire_is_accepted(m)) {
    snprintf(c->node, sizeof(c->node), "%s", sp__wire_node(m));
    c->accepted_ms = sp__now_ms();
    pthread_mutex_unlock(&r->mu);
    natsMsg_Destroy(m);
    return;
  }
  sp__rcall_take(r, seq);
  pthread_mutex_unlock(&r->mu);
  char where[160];
  snprintf(where, sizeof(where), "pool '%s' (node %s)", c->pool->cfg->name, sp__wire_node(m));
  const uint8_t *part = NULL;
  size_t plen = 0;
  /* Returned arrays become res->arrays, freed by sp_result_free like local ones. */
  if (sp__wire_reply_decode(m, where, c->res, &part, &plen) == 0 && part != NULL &&
      sp__result_arrays(NULL, part, plen, c->res) != 0) {
    free(c->res->json);
    c->res->json = NULL;
    sp_error_setf(&c->res->error, SP_EPROTOCOL, "%s: a reply with malformed arrays", where);
  }
  natsMsg_Destroy(m);
  sp__rcall_finish(r, c);
}

/* ---- creating ----------------------------------------------------------- */

/* A path of the config, relative to the config's folder (a fresh string). */
static char *config_path(const sp__config_t *cfg, const char *path) {
  if (path == NULL) return NULL;
  char *out = NULL;
  if (path[0] == '/' || cfg->base_dir == NULL) return strdup(path);
  if (asprintf(&out, "%s/%s", cfg->base_dir, path) < 0) return NULL;
  return out;
}

static int same_server(const sp__pool_config_t *a, const sp__pool_config_t *b) {
#define SAME(f) ((a->f == NULL && b->f == NULL) || (a->f && b->f && strcmp(a->f, b->f) == 0))
  return SAME(remote) && SAME(remote_token) && SAME(remote_user) && SAME(remote_password) &&
         SAME(remote_creds) && SAME(remote_ca) && SAME(remote_cert) && SAME(remote_key);
#undef SAME
}

static int conn_open(sp__remote_t *r, rconn_t *c, const sp__pool_config_t *pc, sp_error_t *err) {
  c->r = r;
  c->opts.size = sizeof(c->opts);
  c->opts.url = pc->remote;
  c->opts.token = pc->remote_token;
  c->opts.user = pc->remote_user;
  c->opts.password = pc->remote_password;
  c->opts.creds_file = pc->remote_creds;
  c->opts.ca_file = pc->remote_ca;
  c->opts.cert_file = pc->remote_cert;
  c->opts.key_file = pc->remote_key;
  sp__nats_url_shown(pc->remote, c->shown, sizeof(c->shown));
  snprintf(c->name, sizeof(c->name), "snakepit-client %d", (int)getpid());
  int rc = sp__nats_connect(&c->opts, c->name, &c->nc, err);
  if (rc != 0) {
    char msg[1200];
    snprintf(msg, sizeof(msg), "remote pool '%s': %s", pc->name, err ? err->message : "");
    return sp_error_set(err, rc, msg, NULL, NULL);
  }
  natsInbox *inbox = NULL;
  if (natsInbox_Create(&inbox) != NATS_OK) return sp__error_set(err, SP_ENOMEM, "out of memory");
  snprintf(c->inbox, sizeof(c->inbox), "%.60s", (const char *)inbox);
  natsInbox_Destroy(inbox);
  char all[80];
  snprintf(all, sizeof(all), "%s.*", c->inbox);
  natsStatus s = natsConnection_Subscribe(&c->inbox_sub, c->nc, all, on_reply, c);
  /* Replies must never be dropped for a slow consumer: no pending limits. */
  if (s == NATS_OK) s = natsSubscription_SetPendingLimits(c->inbox_sub, -1, -1);
  if (s != NATS_OK) return sp__wire_nats_error(err, s, "remote pool '%s': subscribing to replies", pc->name);
  return 0;
}

int sp__remote_create(sp_runtime_t *rt, sp__remote_t **out, sp_error_t *err) {
  sp__config_t *cfg = &rt->cfg;
  size_t n = 0;
  *out = NULL;
  for (size_t i = 0; i < cfg->pool_count; i++) n += cfg->pools[i].remote != NULL;
  if (n == 0) return 0;
  sp__remote_t *r = calloc(1, sizeof(*r));
  if (r == NULL) return sp__error_set(err, SP_ENOMEM, "out of memory");
  r->rt = rt;
  pthread_mutex_init(&r->mu, NULL);
  pthread_cond_init(&r->cond, NULL);
  r->cfg.pools = calloc(n, sizeof(*r->cfg.pools));
  r->pools = calloc(n, sizeof(*r->pools));
  r->conns = calloc(n, sizeof(*r->conns));
  if (!r->cfg.pools || !r->pools || !r->conns) {
    sp__remote_destroy(r);
    return sp__error_set(err, SP_ENOMEM, "out of memory");
  }
  /* Move the remote entries; the local ones close up in the runtime's config. */
  size_t kept = 0;
  for (size_t i = 0; i < cfg->pool_count; i++) {
    if (cfg->pools[i].remote != NULL) r->cfg.pools[r->cfg.pool_count++] = cfg->pools[i];
    else cfg->pools[kept++] = cfg->pools[i];
  }
  cfg->pool_count = kept;
  int rc = 0;
  for (size_t i = 0; i < n && rc == 0; i++) {
    sp__pool_config_t *pc = &r->cfg.pools[i];
    /* Files named in the config are relative to its folder. */
    char **files[] = {&pc->remote_creds, &pc->remote_ca, &pc->remote_cert, &pc->remote_key};
    for (size_t f = 0; f < sizeof(files) / sizeof(files[0]); f++) {
      char *path = config_path(cfg, *files[f]);
      free(*files[f]);
      *files[f] = path;
    }
    sp__remote_pool_t *p = &r->pools[i];
    p->cfg = pc;
    if (sp__wire_subject(p->call_subject, sizeof(p->call_subject), SP__WIRE_CALL, pc->name) ||
        sp__wire_subject(p->wait_subject, sizeof(p->wait_subject), SP__WIRE_WAIT, pc->name) ||
        sp__wire_subject(p->tools_subject, sizeof(p->tools_subject), SP__WIRE_TOOLS, pc->name))
      rc = sp__error_set(err, SP_ECONFIG, "remote pool '%s': name too long for a subject", pc->name);
    for (size_t k = 0; k < r->nconns && p->conn == NULL; k++)
      if (same_server(r->pools[k].cfg, pc)) p->conn = r->pools[k].conn;
    if (rc == 0 && p->conn == NULL) {
      p->conn = &r->conns[r->nconns++];
      rc = conn_open(r, p->conn, pc, err);
    }
  }
  if (rc == 0 && pthread_create(&r->timer, NULL, sp__rwatch_main, r) != 0)
    rc = sp__error_set(err, SP_EIO, "cannot start the remote pools' timer thread");
  r->timer_on = rc == 0;
  if (rc != 0) {
    sp__remote_destroy(r);
    return rc;
  }
  *out = r;
  return 0;
}

sp__remote_pool_t *sp__remote_find(sp__remote_t *r, const char *name) {
  if (r == NULL || name == NULL) return NULL;
  for (size_t i = 0; i < r->cfg.pool_count; i++)
    if (strcmp(r->pools[i].cfg->name, name) == 0) return &r->pools[i];
  return NULL;
}

const char *sp__remote_url(const sp__remote_pool_t *p) { return p->conn->shown; }

/* ---- calls ------------------------------------------------------------------ */

/* Checks the call and builds it; on failure err says why and nothing is sent. */
int sp__rcall_make(sp__remote_t *r, sp__remote_pool_t *p, const char *tool, const char *args,
                     const sp_call_opts_t *opts, rcall_t **out, sp_error_t *err) {
  *out = NULL;
  const char *pool = p->cfg->name;
  if (tool == NULL) return sp__error_set(err, SP_EINVAL, "tool must not be NULL");
  if (opts != NULL && opts->size >= offsetof(sp_call_opts_t, session) + sizeof(opts->session) &&
      opts->session != NULL)
    return sp__error_set(err, SP_EINVAL,
                         "pool '%s' is remote (%s): sessions do not travel over NATS; call tool "
                         "'%s' without a session, or on a local pool",
                         pool, p->cfg->remote, tool);
  sp__nats_body_t body;
  int rc = sp__nats_body_build(pool, tool, args, opts, p->conn->nc, p->conn->shown, &body, err);
  if (rc != 0) return rc;
  rcall_t *c = calloc(1, sizeof(*c));
  if (c == NULL || (c->tool = strdup(tool)) == NULL) {
    sp__nats_body_free(&body);
    if (c) sp__rcall_free(c);
    return sp__error_set(err, SP_ENOMEM, "out of memory");
  }
  c->args = body.data; /* the call owns the body now */
  c->args_len = body.len;
  c->json_len = body.json_len;
  c->lists = opts ? opts->arrays_as_lists : 0;
  sem_init(&c->done, 0, 0);
  c->pool = p;
  c->idempotent = opts ? opts->idempotent : 0;
  c->attempts = 1;
  c->timeout_ms = opts && opts->timeout_ms > 0 ? opts->timeout_ms : p->cfg->timeout_ms;
  c->deadline_ms = sp__now_ms() + c->timeout_ms;
  *out = c;
  return 0;
}

/* Registers and sends the call; on failure it is not registered and err says why. */
int sp__rcall_start(sp__remote_t *r, rcall_t *c, sp_error_t *err) {
  pthread_mutex_lock(&r->mu);
  if (r->stopping || atomic_load(&r->rt->stopping)) {
    pthread_mutex_unlock(&r->mu);
    return sp__error_set(err, SP_ESTOPPED, "the runtime is stopping");
  }
  /* The runtime's call ids: unique next to local streams, so sp_cancel() finds either. */
  c->seq = atomic_fetch_add(&r->rt->next_call_id, 1) + 1;
  table_put(r, c);
  natsStatus s = sp__rcall_send(c);
  if (s != NATS_OK) sp__rcall_take(r, c->seq);
  pthread_mutex_unlock(&r->mu);
  if (s != NATS_OK)
    return sp__wire_nats_error(err, s, "pool '%s': sending the call to %s", c->pool->cfg->name,
                               c->pool->conn->shown);
  return 0;
}

int sp__remote_execute(sp__remote_t *r, sp__remote_pool_t *p, const char *tool,
                       const char *args, const sp_call_opts_t *opts, sp_result_t *res) {
  rcall_t *c = NULL;
  int rc = sp__rcall_make(r, p, tool, args, opts, &c, &res->error);
  if (rc != 0) return rc;
  c->res = res;
  if ((rc = sp__rcall_start(r, c, &res->error)) != 0) {
    sp__rcall_free(c);
    return rc;
  }
  while (sem_wait(&c->done) != 0) {
  }
  sp__rcall_free(c);
  return res->error.code;
}

int sp__remote_execute_async(sp__remote_t *r, sp__remote_pool_t *p, const char *tool,
                             const char *args, const sp_call_opts_t *opts, sp_done_cb cb,
                             void *ud, sp_error_t *err) {
  rcall_t *c = NULL;
  int rc = sp__rcall_make(r, p, tool, args, opts, &c, err);
  if (rc != 0) return rc;
  c->res = &c->own;
  c->cb = cb;
  c->ud = ud;
  atomic_init(&c->refs, 1);
  if ((rc = sp__rcall_start(r, c, err)) != 0) {
    sp__rcall_free(c);
    return rc;
  }
  sp__error_clear(err);
  return 0;
}

/* ---- introspection ------------------------------------------------------------ */

int sp__remote_tools_json(sp__remote_t *r, sp__remote_pool_t *p, char **json, sp_error_t *err) {
  pthread_mutex_lock(&r->mu);
  *json = p->tools_json ? strdup(p->tools_json) : NULL;
  pthread_mutex_unlock(&r->mu);
  if (*json) return 0;
  natsMsg *m = NULL;
  natsStatus s = natsConnection_RequestString(&m, p->conn->nc, p->tools_subject, "",
                                              sp__nats_timeout(&p->conn->opts));
  if (s == NATS_NO_RESPONDERS)
    return sp__error_set(err, SP_ENOPOOL, "no node serves pool '%s' on %s", p->cfg->name,
                         p->conn->shown);
  if (s != NATS_OK)
    return sp__wire_nats_error(err, s, "pool '%s': asking a node for its tools on %s",
                               p->cfg->name, p->conn->shown);
  sp_result_t res;
  memset(&res, 0, sizeof(res));
  char where[128];
  snprintf(where, sizeof(where), "tools of pool '%s'", p->cfg->name);
  int rc = sp__wire_reply_decode(m, where, &res, NULL, NULL);
  natsMsg_Destroy(m);
  if (rc != 0) {
    sp_error_copy(err, &res.error);
    sp_result_free(&res);
    return rc;
  }
  pthread_mutex_lock(&r->mu);
  if (p->tools_json == NULL) p->tools_json = strdup(res.json);
  pthread_mutex_unlock(&r->mu);
  *json = res.json;
  res.json = NULL;
  sp_result_free(&res);
  return 0;
}

/* This runtime's view of one remote pool: what the caller side counts. */
static json_t *pool_stats(sp__remote_t *r, sp__remote_pool_t *p) {
  size_t pending = 0;
  pthread_mutex_lock(&r->mu);
  for (size_t b = 0; b < TABLE_SIZE; b++)
    for (rcall_t *c = r->table[b]; c; c = c->next) pending += c->pool == p;
  pthread_mutex_unlock(&r->mu);
  json_int_t ok = (json_int_t)atomic_load(&p->calls_ok);
  json_int_t failed = (json_int_t)atomic_load(&p->calls_failed);
  int connected = natsConnection_Status(p->conn->nc) == NATS_CONN_STATUS_CONNECTED;
  return json_pack("{s:s, s:s, s:s, s:s, s:b, s:b, s:I, s:{s:I, s:I, s:I}, s:I, s:I, s:I}", "name",
                   p->cfg->name, "kind", "remote", "url", p->conn->shown, "remote", p->conn->shown,
                   "connected", connected, "ready", connected, "in_flight", (json_int_t)pending,
                   "calls", "total", ok + failed, "ok", ok, "errors", failed, "calls_ok", ok,
                   "calls_failed", failed, "retried", (json_int_t)atomic_load(&p->retried));
}

int sp__remote_stats_json(sp__remote_t *r, sp__remote_pool_t *p, char **json, sp_error_t *err) {
  json_t *o = pool_stats(r, p);
  *json = o ? json_dumps(o, JSON_COMPACT) : NULL;
  json_decref(o);
  return *json ? 0 : sp__error_set(err, SP_ENOMEM, "out of memory");
}

int sp__remote_stats_merge(sp__remote_t *r, char **json, sp_error_t *err) {
  if (r == NULL || r->cfg.pool_count == 0) return 0;
  json_t *doc = json_loads(*json, 0, NULL);
  json_t *pools = json_object_get(doc, "pools");
  int rc = json_is_array(pools) ? 0 : SP_EPROTOCOL;
  for (size_t i = 0; rc == 0 && i < r->cfg.pool_count; i++)
    if (json_array_append_new(pools, pool_stats(r, &r->pools[i])) != 0) rc = SP_ENOMEM;
  char *text = rc == 0 ? json_dumps(doc, JSON_COMPACT) : NULL;
  json_decref(doc);
  if (text == NULL) {
    if (rc == 0) rc = SP_ENOMEM;
    return sp__error_set(err, rc, "cannot build statistics: %s", sp_strerror(rc));
  }
  free(*json); /* both come from jansson's allocator, like every JSON the library returns */
  *json = text;
  return 0;
}

void sp__remote_names(sp__remote_t *r, void *json_array) {
  for (size_t i = 0; r != NULL && i < r->cfg.pool_count; i++)
    json_array_append_new((json_t *)json_array, json_string(r->pools[i].cfg->name));
}

/* ---- stopping --------------------------------------------------------------- */

void sp__remote_stop(sp__remote_t *r, int graceful_ms) {
  if (r == NULL) return;
  pthread_mutex_lock(&r->mu);
  r->stopping = 1;
  int64_t until = sp__now_ms() + (graceful_ms > 0 ? graceful_ms : 0);
  while (r->pending > 0 && sp__now_ms() < until) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += 20 * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
      ts.tv_sec++;
      ts.tv_nsec -= 1000000000L;
    }
    pthread_cond_timedwait(&r->cond, &r->mu, &ts);
  }
  rcall_t *left = NULL;
  for (size_t b = 0; b < TABLE_SIZE; b++) {
    while (r->table[b]) {
      rcall_t *c = r->table[b];
      r->table[b] = c->next;
      c->next = left;
      left = c;
    }
  }
  r->pending = 0;
  pthread_mutex_unlock(&r->mu);
  while (left) {
    rcall_t *c = left;
    left = c->next;
    sp__rcall_fail(r, c, SP_ESTOPPED, "pool '%s': the runtime stopped before the node replied",
         c->pool->cfg->name);
  }
}

void sp__remote_destroy(sp__remote_t *r) {
  if (r == NULL) return;
  sp__remote_stop(r, 0);
  if (r->timer_on) {
    pthread_mutex_lock(&r->mu);
    r->quit = 1;
    pthread_mutex_unlock(&r->mu);
    pthread_join(r->timer, NULL);
  }
  for (size_t i = 0; i < r->nconns; i++) {
    natsSubscription_Destroy(r->conns[i].inbox_sub);
    natsConnection_Destroy(r->conns[i].nc);
  }
  for (size_t i = 0; r->pools && i < r->cfg.pool_count; i++) free(r->pools[i].tools_json);
  sp__config_free(&r->cfg);
  free(r->pools);
  free(r->conns);
  pthread_mutex_destroy(&r->mu);
  pthread_cond_destroy(&r->cond);
  free(r);
}

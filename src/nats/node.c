/*
 * node.c - serves the runtime's pools over NATS (node.h).
 *
 * Load balancing: a plain queue group hands each message to a random member,
 * whatever its load, so a full node would keep receiving calls that another
 * node could run at once. Instead a node subscribes to a pool's "call" subject
 * only while it has a free slot for it (in flight < capacity) and drains that
 * subscription the moment it fills up: calls then go only to nodes with room.
 * When every node is full, NATS answers the caller "no responders" and the
 * caller sends the call to the pool's "wait" subject, which every node of the
 * pool always subscribes to: one of them queues it (the pool's own queue and
 * queue_timeout apply). Nobody on "wait" means no node serves the pool.
 */
#include "node.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "natsconn.h"

#define QUEUE_GROUP SP__NODE_QUEUE_GROUP

/* A call being run for a caller: where its reply goes. */
typedef struct job_s {
  sp__node_pool_t *pool;
  int64_t start_ns;
  /* Streams, listed in node->streams (under node->mu) for "cancel" and "credit". */
  struct job_s *next;
  int stream, paused;
  uint64_t call_id;
  long sent, credited;
  char id[96];
  char reply[];
} job_t;

/* ---- capacity gate ------------------------------------------------------------ */

static void on_call(natsConnection *nc, natsSubscription *sub, natsMsg *m, void *ud);

/* Drained subscriptions are destroyed once their drain completed. Under n->mu. */
static void sweep_retired(sp__node_t *n) {
  size_t kept = 0;
  for (size_t i = 0; i < n->nretired; i++) {
    if (natsSubscription_DrainCompletionStatus(n->retired[i]) != NATS_ILLEGAL_STATE)
      natsSubscription_Destroy(n->retired[i]);
    else
      n->retired[kept++] = n->retired[i];
  }
  n->nretired = kept;
}

/* Subscribes to or drains the pool's "call" subject to match its free slots. */
void sp__node_gate(sp__node_pool_t *p) {
  sp__node_t *n = p->node;
  pthread_mutex_lock(&n->mu);
  int room = atomic_load(&p->in_flight) < p->capacity && !atomic_load(&n->draining);
  if (room && p->call_sub == NULL) {
    if (natsConnection_QueueSubscribe(&p->call_sub, n->nc, p->call_subject, QUEUE_GROUP, on_call,
                                      p) != NATS_OK)
      p->call_sub = NULL; /* retried at the next call's end */
    else
      natsSubscription_SetPendingLimits(p->call_sub, -1, -1);
  } else if (!room && p->call_sub != NULL) {
    sweep_retired(n);
    /* Drain, not unsubscribe: calls the server already routed here still run. */
    natsSubscription_Drain(p->call_sub);
    if (n->nretired < sizeof(n->retired) / sizeof(n->retired[0]))
      n->retired[n->nretired++] = p->call_sub;
    p->call_sub = NULL;
  }
  pthread_mutex_unlock(&n->mu);
}

/* ---- calls ----------------------------------------------------------------------- */

static void publish(sp__node_t *n, natsMsg *m) {
  if (m == NULL) return;
  natsConnection_PublishMsg(n->nc, m); /* a caller gone or the server away: nothing to do */
  natsMsg_Destroy(m);
}

void sp__node_account(sp__node_pool_t *p, int64_t ns, const sp_error_t *e) {
  pthread_mutex_lock(&p->node->mu);
  p->num_requests++;
  p->processing_ns += ns;
  if (e && e->code != 0) {
    p->num_errors++;
    snprintf(p->last_error, sizeof(p->last_error), "%s: %s", sp_err_name(e->code), e->message);
  }
  pthread_mutex_unlock(&p->node->mu);
}

int64_t sp__node_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* The runtime finished a call (its loop thread): reply, free the slot. */
static void on_done(sp_result_t *res, void *ud) {
  job_t *j = ud;
  sp__node_pool_t *p = j->pool;
  if (j->stream) {
    pthread_mutex_lock(&p->node->mu);
    for (job_t **pp = &p->node->streams; *pp; pp = &(*pp)->next)
      if (*pp == j) {
        *pp = j->next;
        break;
      }
    pthread_mutex_unlock(&p->node->mu);
  }
  natsMsg *m = NULL;
  sp__wire_reply_encode(&m, j->reply, p->node->id, res);
  publish(p->node, m);
  sp__node_account(p, sp__node_now_ns() - j->start_ns, &res->error);
  atomic_fetch_sub(&p->in_flight, 1);
  free(j);
  sp__node_gate(p);
}

static void reply_error(sp__node_pool_t *p, const char *reply, const sp_error_t *e) {
  natsMsg *m = NULL;
  if (reply && *reply) sp__wire_error_encode(&m, reply, p->node->id, e->code, e->message);
  publish(p->node, m);
  sp__node_account(p, 0, e);
}

/* A chunk of a stream (loop thread): to the caller, pausing when it is a window ahead. */
static int on_chunk(const char *json, size_t len, void *ud) {
  job_t *j = ud;
  sp__node_t *n = j->pool->node;
  natsMsg *m = NULL;
  sp__wire_chunk_encode(&m, j->reply, json, len);
  publish(n, m);
  pthread_mutex_lock(&n->mu);
  int pause = ++j->sent - j->credited >= SP__WIRE_STREAM_WINDOW;
  j->paused |= pause;
  pthread_mutex_unlock(&n->mu);
  return pause ? SP_CHUNK_PAUSE : SP_CHUNK_CONTINUE;
}

/* "REQ_ID COUNT" on the node's cancel or credit subject (a NATS delivery thread). */
static void on_stream_ctl(natsConnection *nc, natsSubscription *sub, natsMsg *m, void *ud) {
  (void)nc;
  (void)sub;
  sp__node_t *n = ud;
  char id[96] = "";
  long count = 0;
  int cancel = strstr(natsMsg_GetSubject(m), ".cancel") != NULL;
  char body[160];
  snprintf(body, sizeof(body), "%.*s", natsMsg_GetDataLength(m), natsMsg_GetData(m));
  if (sscanf(body, "%95s %ld", id, &count) >= 1) {
    uint64_t call_id = 0;
    int act = 0;
    pthread_mutex_lock(&n->mu);
    for (job_t *j = n->streams; j; j = j->next) {
      if (strcmp(j->id, id) != 0) continue;
      call_id = j->call_id;
      if (cancel) {
        act = 1;
      } else {
        if (count > j->credited) j->credited = count;
        act = j->paused && j->sent - j->credited < SP__WIRE_STREAM_WINDOW;
        if (act) j->paused = 0;
      }
      break;
    }
    pthread_mutex_unlock(&n->mu);
    /* A stream that finished meanwhile: both are no-ops for a finished id. */
    if (act && cancel) sp_cancel(n->rt, call_id);
    else if (act) sp_stream_resume(n->rt, call_id);
  }
  natsMsg_Destroy(m);
}

/* A call on the pool's "call" or "wait" subject (a NATS delivery thread). */
static void on_call(natsConnection *nc, natsSubscription *sub, natsMsg *m, void *ud) {
  (void)nc;
  (void)sub;
  sp__node_pool_t *p = ud;
  sp__node_t *n = p->node;
  const char *reply = natsMsg_GetReply(m);
  sp__wire_call_t w;
  sp_error_t err = SP_ERROR_INIT;
  if (sp__wire_call_decode(m, &w, &err) != 0) {
    reply_error(p, reply, &err);
    goto out;
  }
  size_t rlen = reply ? strlen(reply) : 0;
  job_t *j = calloc(1, sizeof(*j) + rlen + 1);
  if (j == NULL) {
    sp_error_setf(&err, SP_ENOMEM, "node %s: out of memory", n->id);
    reply_error(p, reply, &err);
    goto out;
  }
  j->pool = p;
  j->start_ns = sp__node_now_ns();
  memcpy(j->reply, reply ? reply : "", rlen + 1);
  atomic_fetch_add(&p->in_flight, 1);
  sp__node_gate(p);
  /* Tell the caller who has its call, so it can notice if this node goes away. */
  natsMsg *ack = NULL;
  if (rlen) sp__wire_accepted_encode(&ack, j->reply, n->id);
  publish(n, ack);
  sp_call_opts_t opts = SP_CALL_OPTS_INIT;
  opts.timeout_ms = w.timeout_ms;
  opts.idempotent = w.idempotent;
  opts.arrays = w.arrays; /* copied by the runtime before it returns */
  opts.array_count = w.array_count;
  opts.arrays_as_lists = w.lists;
  int rc;
  if (w.stream) {
    j->stream = 1;
    snprintf(j->id, sizeof(j->id), "%s", w.id);
    pthread_mutex_lock(&n->mu);
    j->next = n->streams;
    n->streams = j;
    pthread_mutex_unlock(&n->mu);
    rc = sp_execute_stream(n->rt, p->name, w.tool, w.args, &opts, on_chunk, on_done, j,
                           &j->call_id, &err);
    if (rc != 0) {
      pthread_mutex_lock(&n->mu);
      for (job_t **pp = &n->streams; *pp; pp = &(*pp)->next)
        if (*pp == j) {
          *pp = j->next;
          break;
        }
      pthread_mutex_unlock(&n->mu);
    }
  } else {
    rc = sp_execute_async(n->rt, p->name, w.tool, w.args, &opts, on_done, j, &err);
  }
  if (rc != 0) {
    reply_error(p, j->reply, &err);
    atomic_fetch_sub(&p->in_flight, 1);
    free(j);
    sp__node_gate(p);
  }
out:
  sp__wire_call_free(&w);
  sp_error_free(&err);
  natsMsg_Destroy(m);
}

static void on_tools(natsConnection *nc, natsSubscription *sub, natsMsg *m, void *ud) {
  (void)sub;
  sp__node_pool_t *p = ud;
  char *json = NULL;
  sp_error_t err;
  natsMsg *r = NULL;
  const char *reply = natsMsg_GetReply(m);
  if (reply && sp_tools_json(p->node->rt, p->name, &json, &err) == 0) {
    sp_result_t res = {.json = json, .len = strlen(json)};
    sp__wire_reply_encode(&r, reply, p->node->id, &res);
  } else if (reply) {
    sp__wire_error_encode(&r, reply, p->node->id, err.code, err.message);
    sp_error_free(&err);
  }
  if (r) natsConnection_PublishMsg(nc, r);
  natsMsg_Destroy(r);
  sp_free(json);
  natsMsg_Destroy(m);
}

/* "Are you alive?" from a caller holding a long call: any answer says yes. */
static void on_alive(natsConnection *nc, natsSubscription *sub, natsMsg *m, void *ud) {
  (void)sub;
  (void)ud;
  if (natsMsg_GetReply(m)) natsConnection_PublishString(nc, natsMsg_GetReply(m), "{}");
  natsMsg_Destroy(m);
}

/* ---- start / drain / stop ------------------------------------------------------- */

/* max_workers x threads_per_worker from the pool's statistics. */
static int pool_capacity(sp_runtime_t *rt, const char *pool, int *remote) {
  char *json = NULL;
  sp_error_t err;
  int cap = 1;
  *remote = 0;
  if (sp_stats_json(rt, pool, &json, &err) != 0) {
    sp_error_free(&err);
    return cap;
  }
  json_t *o = json_loads(json, 0, NULL);
  sp_free(json);
  if (json_object_get(o, "remote")) *remote = 1;
  json_int_t w = json_integer_value(json_object_get(o, "max_workers"));
  json_int_t t = json_integer_value(json_object_get(o, "threads_per_worker"));
  if (w > 0 && t > 0) cap = (int)(w * t);
  json_decref(o);
  return cap;
}

static natsStatus own_sub(sp__node_t *n, const char *subject, natsMsgHandler cb, void *ud) {
  if (n->nown >= sizeof(n->own_subs) / sizeof(n->own_subs[0])) return NATS_INSUFFICIENT_BUFFER;
  return natsConnection_Subscribe(&n->own_subs[n->nown++], n->nc, subject, cb, ud);
}

static int serve_pools(sp__node_t *n, sp_error_t *err) {
  char *json = NULL;
  if (sp_pools_json(n->rt, &json, err) != 0) return err->code;
  json_t *names = json_loads(json, 0, NULL);
  sp_free(json);
  size_t i;
  json_t *v;
  natsStatus s = NATS_OK;
  json_array_foreach(names, i, v) {
    const char *name = json_string_value(v);
    int remote = 0;
    int cap = pool_capacity(n->rt, name, &remote);
    if (remote || n->npools >= SP__NODE_MAX_POOLS) continue; /* a node serves its own pools only */
    sp__node_pool_t *p = &n->pools[n->npools++];
    p->node = n;
    p->capacity = cap;
    snprintf(p->name, sizeof(p->name), "%s", name);
    sp__wire_subject(p->call_subject, sizeof(p->call_subject), SP__WIRE_CALL, name);
    sp__wire_subject(p->wait_subject, sizeof(p->wait_subject), SP__WIRE_WAIT, name);
    sp__wire_subject(p->tools_subject, sizeof(p->tools_subject), SP__WIRE_TOOLS, name);
    if (s == NATS_OK)
      s = natsConnection_QueueSubscribe(&p->wait_sub, n->nc, p->wait_subject, QUEUE_GROUP, on_call, p);
    if (s == NATS_OK) s = natsSubscription_SetPendingLimits(p->wait_sub, -1, -1);
    if (s == NATS_OK)
      s = natsConnection_QueueSubscribe(&p->tools_sub, n->nc, p->tools_subject, QUEUE_GROUP,
                                        on_tools, p);
    if (s == NATS_OK) sp__node_gate(p);
  }
  json_decref(names);
  if (s != NATS_OK) return sp__wire_nats_error(err, s, "node %s: subscribing", n->name);
  if (n->npools == 0)
    return sp_error_setf(err, SP_ECONFIG, "node %s: no local pool to serve (remote pools are "
                         "served by their own nodes)", n->name);
  return 0;
}

int sp__node_start(sp_runtime_t *rt, const sp_nats_opts_t *opts, const char *name,
                   int job_max_deliver, sp__node_t **out, sp_error_t *err) {
  *out = NULL;
  sp__node_t *n = calloc(1, sizeof(*n));
  if (n == NULL) return sp_error_setf(err, SP_ENOMEM, "out of memory");
  n->rt = rt;
  pthread_mutex_init(&n->mu, NULL);
  natsInbox *inbox = NULL;
  natsInbox_Create(&inbox);
  /* "_INBOX.<nuid>": the nuid is unique enough to name this node. */
  snprintf(n->id, sizeof(n->id), "%s", inbox ? (const char *)inbox + 7 : "node");
  natsInbox_Destroy(inbox);
  gethostname(n->host, sizeof(n->host) - 1);
  if (name && *name) snprintf(n->name, sizeof(n->name), "%s", name);
  else snprintf(n->name, sizeof(n->name), "%s-%d", n->host, (int)getpid());
  time_t now = time(NULL);
  strftime(n->started, sizeof(n->started), "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
  int rc = sp__nats_connect(opts, n->name, &n->nc, err);
  if (rc == 0) rc = serve_pools(n, err);
  if (rc == 0) {
    char subject[SP__WIRE_SUBJECT_MAX];
    snprintf(subject, sizeof(subject), "%s.%s.%s.alive", SP__WIRE_PREFIX, SP__WIRE_NODE, n->id);
    natsStatus s = own_sub(n, subject, on_alive, n);
    snprintf(subject, sizeof(subject), "%s.%s.%s.cancel", SP__WIRE_PREFIX, SP__WIRE_NODE, n->id);
    if (s == NATS_OK) s = own_sub(n, subject, on_stream_ctl, n);
    snprintf(subject, sizeof(subject), "%s.%s.%s.credit", SP__WIRE_PREFIX, SP__WIRE_NODE, n->id);
    if (s == NATS_OK) s = own_sub(n, subject, on_stream_ctl, n);
    if (s == NATS_OK) s = sp__node_service_start(n);
    if (s == NATS_OK) s = natsConnection_FlushTimeout(n->nc, sp__nats_timeout(opts));
    if (s != NATS_OK) rc = sp__wire_nats_error(err, s, "node %s: subscribing", n->name);
  }
  if (rc == 0) sp__node_jobs_start(n, job_max_deliver); /* without JetStream the node serves calls only */
  if (rc != 0) {
    sp__node_destroy(n);
    return rc;
  }
  *out = n;
  return 0;
}

static int in_flight(sp__node_t *n) {
  int total = 0;
  for (size_t i = 0; i < n->npools; i++) total += atomic_load(&n->pools[i].in_flight);
  return total;
}

int sp__node_drain(sp__node_t *n, int64_t wait_ms) {
  atomic_store(&n->draining, 1);
  pthread_mutex_lock(&n->mu);
  for (size_t i = 0; i < n->npools; i++) {
    sp__node_pool_t *p = &n->pools[i];
    natsSubscription *subs[3] = {p->call_sub, p->wait_sub, p->tools_sub};
    for (int k = 0; k < 3; k++) {
      if (subs[k] == NULL) continue;
      natsSubscription_Drain(subs[k]);
      if (n->nretired < sizeof(n->retired) / sizeof(n->retired[0])) n->retired[n->nretired++] = subs[k];
    }
    p->call_sub = p->wait_sub = p->tools_sub = NULL;
  }
  pthread_mutex_unlock(&n->mu);
  natsConnection_FlushTimeout(n->nc, 1000);
  /* Calls the server routed here before the unsubscribe arrive still; then wait for answers. */
  int64_t until = nats_Now() + wait_ms;
  for (size_t i = 0; i < n->nretired; i++) {
    int64_t left = until - nats_Now();
    natsSubscription_WaitForDrainCompletion(n->retired[i], left > 0 ? left : 1);
  }
  while (in_flight(n) > 0 && nats_Now() < until) nats_Sleep(10);
  sp__node_jobs_stop(n); /* stores and acknowledges the jobs that finished */
  natsConnection_FlushTimeout(n->nc, 1000);
  return in_flight(n);
}

void sp__node_destroy(sp__node_t *n) {
  if (n == NULL) return;
  sp__node_jobs_stop(n);
  if (n->nc) natsConnection_Close(n->nc);
  for (size_t i = 0; i < n->npools; i++) {
    natsSubscription_Destroy(n->pools[i].call_sub);
    natsSubscription_Destroy(n->pools[i].wait_sub);
    natsSubscription_Destroy(n->pools[i].tools_sub);
  }
  for (size_t i = 0; i < n->nretired; i++) natsSubscription_Destroy(n->retired[i]);
  for (size_t i = 0; i < n->nown; i++) natsSubscription_Destroy(n->own_subs[i]);
  natsConnection_Destroy(n->nc);
  pthread_mutex_destroy(&n->mu);
  free(n);
}

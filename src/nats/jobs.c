/*
 * jobs.c - a node's share of the durable jobs: one thread per pool pulls jobs
 * from the JetStream work queue, as many as the pool has free slots (pulling
 * is capacity-aware by nature: a full node asks for none), runs them through
 * sp_execute_async(), stores each outcome in the results bucket and only then
 * acknowledges the job. While a job runs the thread tells JetStream it is in
 * progress every second; a node that dies stops doing so, and after
 * SP__JOBS_ACK_WAIT_MS JetStream hands the job to another node. A job whose
 * outcome is already stored (a redelivery after its node finished it) is
 * acknowledged without running again. A job JetStream gives up on (it reached
 * its maximum deliveries, every node that took it went away) gets an
 * SP_ECRASHED outcome from whichever node hears the server's advisory.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "node.h"

#define FETCH_WAIT_MS 200
#define FETCH_MAX 16
#define PROGRESS_EVERY_MS 1000
#define IDLE_SLEEP_MS 20

typedef struct jrun_s {
  struct jrun_s *next;
  natsMsg *msg;
  struct jpool_s *jp;
  char id[80];
  int final; /* its last allowed delivery: the node noted itself under ID.last */
  int64_t start_ns;
  sp_result_t res;
} jrun_t;

typedef struct jpool_s {
  struct sp__node_jobs_s *jobs;
  sp__node_pool_t *p;
  natsSubscription *sub;
  pthread_t th;
  int th_on;
  pthread_mutex_t mu; /* guards running, finished */
  jrun_t *running, *finished;
} jpool_t;

struct sp__node_jobs_s {
  sp__node_t *n;
  jsCtx *js;
  kvStore *kv;
  jpool_t pools[SP__NODE_MAX_POOLS];
  size_t npools;
  int max_deliver;             /* deliveries of a job before JetStream gives up on it */
  natsSubscription *lost_sub;  /* the server's "maximum deliveries" advisories */
  atomic_int quit;
};

/* Key of the results bucket that names the node holding a job's final delivery. */
static void last_key(char *buf, size_t size, const char *id) { snprintf(buf, size, "%s.last", id); }

/*
 * The final delivery of a job: notes in the results bucket which node took it,
 * so that the outcome of a job lost on it can say where it was last. 1 when
 * it noted itself.
 */
static int note_final_delivery(jpool_t *jp, natsMsg *m, const char *id) {
  jsMsgMetaData *meta = NULL;
  if (natsMsg_GetMetaData(&meta, m) != NATS_OK) return 0;
  uint64_t delivery = meta->NumDelivered;
  jsMsgMetaData_Destroy(meta);
  if (delivery < (uint64_t)jp->jobs->max_deliver) return 0;
  sp__node_t *n = jp->jobs->n;
  char key[96], text[320];
  last_key(key, sizeof(key), id);
  snprintf(text, sizeof(text), "node %s (id %s) took it on delivery %llu and went away without "
           "an outcome", n->name, n->id, (unsigned long long)delivery);
  return kvStore_PutString(NULL, jp->jobs->kv, key, text) == NATS_OK;
}

/*
 * JetStream gave up on a job (io.nats.jetstream.advisory.v1.max_deliver): unless
 * it has an outcome, its outcome is SP_ECRASHED saying so, and its message
 * leaves the stream. Runs on the advisory subscription's thread.
 */
static void on_lost_job(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure) {
  struct sp__node_jobs_s *j = closure;
  (void)nc, (void)sub;
  json_t *adv = json_loadb(natsMsg_GetData(msg), (size_t)natsMsg_GetDataLength(msg), 0, NULL);
  json_int_t seq = json_integer_value(json_object_get(adv, "stream_seq"));
  json_int_t deliveries = json_integer_value(json_object_get(adv, "deliveries"));
  json_decref(adv);
  natsMsg_Destroy(msg);
  natsMsg *jm = NULL;
  jsErrCode jerr = 0;
  if (seq <= 0 || js_GetMsg(&jm, j->js, SP__JOBS_STREAM, (uint64_t)seq, NULL, &jerr) != NATS_OK)
    return; /* gone already: another node settled it */
  sp__wire_call_t w;
  sp_error_t err = SP_ERROR_INIT;
  if (sp__wire_call_decode(jm, &w, &err) == 0 && sp__wire_job_id_valid(w.id)) {
    const char *subject = natsMsg_GetSubject(jm);
    const char *pool = strlen(subject) > sizeof(SP__WIRE_PREFIX ".jobs")
                           ? subject + sizeof(SP__WIRE_PREFIX ".jobs") : "?";
    char key[96];
    kvEntry *last = NULL;
    last_key(key, sizeof(key), w.id);
    int known = kvStore_Get(&last, j->kv, key) == NATS_OK;
    sp_result_t res;
    memset(&res, 0, sizeof(res));
    sp_error_setf(&res.error, SP_ECRASHED, "job %s (tool '%s' in pool '%s') failed on every one "
                  "of its %lld deliveries; last: %.*s", w.id, w.tool, pool, (long long)deliveries,
                  known ? kvEntry_ValueLen(last) : 60,
                  known ? kvEntry_ValueString(last) : "the node running it went away without an outcome");
    kvEntry_Destroy(last);
    char *text = sp__wire_job_outcome(j->n->id, &res);
    uint64_t rev = 0;
    /* Create, not put: an outcome stored meanwhile (a slow node finishing late) stands. */
    if (text) kvStore_CreateString(&rev, j->kv, w.id, text);
    fprintf(stderr, "snakepit: %s\n", res.error.message);
    if (known) kvStore_Delete(j->kv, key);
    free(text);
    sp_result_free(&res);
    sp__wire_call_free(&w);
  }
  sp_error_free(&err);
  js_DeleteMsg(j->js, SP__JOBS_STREAM, (uint64_t)seq, NULL, &jerr);
  natsMsg_Destroy(jm);
}

static void unlink_run(jrun_t **list, jrun_t *r) {
  for (jrun_t **pp = list; *pp; pp = &(*pp)->next)
    if (*pp == r) {
      *pp = r->next;
      return;
    }
}

/* The runtime finished a job (its loop thread): hand it to the pool's thread. */
static void on_job_done(sp_result_t *res, void *ud) {
  jrun_t *r = ud;
  jpool_t *jp = r->jp;
  if (atomic_load(&jp->jobs->quit)) {
    /* Jobs stopped: not stored, not acknowledged; JetStream hands it out again. */
    atomic_fetch_sub(&jp->p->in_flight, 1);
    pthread_mutex_lock(&jp->mu);
    unlink_run(&jp->running, r);
    pthread_mutex_unlock(&jp->mu);
    natsMsg_Destroy(r->msg);
    free(r);
    return;
  }
  r->res = *res;
  memset(res, 0, sizeof(*res));
  sp__node_account(jp->p, sp__node_now_ns() - r->start_ns, &r->res.error);
  pthread_mutex_lock(&jp->mu);
  unlink_run(&jp->running, r);
  r->next = jp->finished;
  jp->finished = r;
  pthread_mutex_unlock(&jp->mu);
  atomic_fetch_sub(&jp->p->in_flight, 1);
  sp__node_gate(jp->p);
}

/* Stores the outcomes of finished jobs, then acknowledges them. */
static void settle(jpool_t *jp) {
  pthread_mutex_lock(&jp->mu);
  jrun_t *done = jp->finished;
  jp->finished = NULL;
  pthread_mutex_unlock(&jp->mu);
  while (done) {
    jrun_t *r = done;
    done = r->next;
    char *text = sp__wire_job_outcome(jp->jobs->n->id, &r->res);
    natsStatus s = text ? kvStore_PutString(NULL, jp->jobs->kv, r->id, text) : NATS_NO_MEMORY;
    /* Not stored: no acknowledgement, so JetStream gives the job to a node again. */
    if (s == NATS_OK && r->final) { /* finished after all: the note has served */
      char key[96];
      last_key(key, sizeof(key), r->id);
      kvStore_Delete(jp->jobs->kv, key);
    }
    if (s == NATS_OK) natsMsg_Ack(r->msg, NULL);
    else fprintf(stderr, "snakepit: job %s: cannot store its outcome: %s\n", r->id, natsStatus_GetText(s));
    free(text);
    sp_result_free(&r->res);
    natsMsg_Destroy(r->msg);
    free(r);
  }
}

static void start_job(jpool_t *jp, natsMsg *m) {
  sp__node_t *n = jp->jobs->n;
  sp__wire_call_t w;
  sp_error_t err = SP_ERROR_INIT;
  jrun_t *r = calloc(1, sizeof(*r));
  if (r == NULL) {
    natsMsg_Nak(m, NULL);
    natsMsg_Destroy(m);
    return;
  }
  r->msg = m;
  r->jp = jp;
  r->start_ns = sp__node_now_ns();
  int rc = sp__wire_call_decode(m, &w, &err);
  snprintf(r->id, sizeof(r->id), "%s", rc == 0 && w.id[0] ? w.id : "unnamed");
  kvEntry *e = NULL;
  if (rc == 0 && kvStore_Get(&e, jp->jobs->kv, r->id) == NATS_OK) {
    /* Finished already (by a node that died before acknowledging): once is enough. */
    kvEntry_Destroy(e);
    natsMsg_Ack(m, NULL);
    natsMsg_Destroy(m);
    sp__wire_call_free(&w);
    free(r);
    return;
  }
  if (rc == 0) r->final = note_final_delivery(jp, m, r->id);
  atomic_fetch_add(&jp->p->in_flight, 1);
  sp__node_gate(jp->p);
  pthread_mutex_lock(&jp->mu);
  r->next = jp->running;
  jp->running = r;
  pthread_mutex_unlock(&jp->mu);
  if (rc == 0) {
    sp_call_opts_t opts = SP_CALL_OPTS_INIT;
    opts.timeout_ms = w.timeout_ms;
    opts.idempotent = w.idempotent;
    opts.arrays_as_lists = 1; /* the outcome is JSON: arrays a tool returns become lists */
    opts.arrays = w.arrays;
    opts.array_count = w.array_count;
    rc = sp_execute_async(n->rt, jp->p->name, w.tool, w.args, &opts, on_job_done, r, &err);
  }
  sp__wire_call_free(&w);
  if (rc != 0) { /* refused before running (unknown tool, bad arguments): that is its outcome */
    sp_result_t res;
    memset(&res, 0, sizeof(res));
    sp_error_copy(&res.error, &err);
    on_job_done(&res, r);
  }
  sp_error_free(&err);
}

static void *pool_main(void *arg) {
  jpool_t *jp = arg;
  sp__node_t *n = jp->jobs->n;
  int64_t progress_at = nats_Now() + PROGRESS_EVERY_MS;
  while (!atomic_load(&jp->jobs->quit)) {
    settle(jp);
    if (nats_Now() >= progress_at) {
      pthread_mutex_lock(&jp->mu);
      for (jrun_t *r = jp->running; r; r = r->next) natsMsg_InProgress(r->msg, NULL);
      pthread_mutex_unlock(&jp->mu);
      progress_at = nats_Now() + PROGRESS_EVERY_MS;
    }
    int room = jp->p->capacity - atomic_load(&jp->p->in_flight);
    if (atomic_load(&n->draining) || room <= 0) {
      nats_Sleep(IDLE_SLEEP_MS);
      continue;
    }
    natsMsgList list = {0};
    jsErrCode jerr = 0;
    natsStatus s = natsSubscription_Fetch(&list, jp->sub, room < FETCH_MAX ? room : FETCH_MAX,
                                          FETCH_WAIT_MS, &jerr);
    if (s != NATS_OK) {
      if (s != NATS_TIMEOUT) nats_Sleep(FETCH_WAIT_MS); /* disconnected: the client reconnects */
      continue;
    }
    for (int i = 0; i < list.Count; i++) {
      start_job(jp, list.Msgs[i]);
      list.Msgs[i] = NULL; /* the job owns it now */
    }
    natsMsgList_Destroy(&list);
  }
  settle(jp);
  return NULL;
}

void sp__node_jobs_start(sp__node_t *n, int max_deliver) {
  sp_error_t err = SP_ERROR_INIT;
  struct sp__node_jobs_s *j = calloc(1, sizeof(*j));
  if (j == NULL) return;
  j->n = n;
  j->max_deliver = max_deliver > 0 ? max_deliver : SP__JOBS_MAX_DELIVER;
  if (natsConnection_JetStream(&j->js, n->nc, NULL) != NATS_OK ||
      sp__wire_jobs_setup(j->js, &j->kv, &err) != 0) {
    fprintf(stderr, "snakepit: node %s takes no durable jobs: %s\n", n->name,
            err.message && *err.message ? err.message : "no JetStream context");
    sp_error_free(&err);
    kvStore_Destroy(j->kv);
    jsCtx_Destroy(j->js);
    free(j);
    return;
  }
  n->jobs = j;
  /* Before any pull: the server sends the advisory when a node asks for more jobs. */
  if (natsConnection_QueueSubscribe(&j->lost_sub, n->nc, SP__JOBS_LOST_ADVISORY, SP__NODE_QUEUE_GROUP,
                                    on_lost_job, j) != NATS_OK)
    fprintf(stderr, "snakepit: node %s will not record jobs JetStream gives up on: %s\n", n->name,
            nats_GetLastError(NULL));
  for (size_t i = 0; i < n->npools; i++) {
    jpool_t *jp = &j->pools[j->npools];
    char subject[SP__WIRE_SUBJECT_MAX], durable[160];
    jp->jobs = j;
    jp->p = &n->pools[i];
    pthread_mutex_init(&jp->mu, NULL);
    sp__wire_subject(subject, sizeof(subject), SP__WIRE_JOBS, jp->p->name);
    /* One durable consumer per pool, shared by every node: each job goes to one of them. */
    snprintf(durable, sizeof(durable), "snakepit-%s", jp->p->name);
    for (char *c = durable; *c; c++)
      if (*c == '.') *c = '_';
    jsSubOptions so;
    jsSubOptions_Init(&so);
    so.Config.AckPolicy = js_AckExplicit;
    so.Config.AckWait = (int64_t)SP__JOBS_ACK_WAIT_MS * 1000000; /* nanoseconds */
    so.Config.MaxDeliver = j->max_deliver;
    jsErrCode jerr = 0;
    natsStatus s = js_PullSubscribe(&jp->sub, j->js, subject, durable, NULL, &so, &jerr);
    if (s != NATS_OK) {
      fprintf(stderr, "snakepit: node %s takes no jobs of pool '%s': %s (error %d)\n", n->name,
              jp->p->name, natsStatus_GetText(s), (int)jerr);
      pthread_mutex_destroy(&jp->mu);
      continue;
    }
    jp->th_on = pthread_create(&jp->th, NULL, pool_main, jp) == 0;
    j->npools++;
  }
}

void sp__node_jobs_stop(sp__node_t *n) {
  struct sp__node_jobs_s *j = n->jobs;
  if (j == NULL) return;
  atomic_store(&j->quit, 1);
  if (j->lost_sub) {
    natsSubscription_Drain(j->lost_sub);
    natsSubscription_WaitForDrainCompletion(j->lost_sub, 2000);
  }
  for (size_t i = 0; i < j->npools; i++)
    if (j->pools[i].th_on) pthread_join(j->pools[i].th, NULL);
  n->jobs = NULL;
  int running = 0;
  for (size_t i = 0; i < j->npools; i++) {
    pthread_mutex_lock(&j->pools[i].mu);
    running |= j->pools[i].running != NULL;
    pthread_mutex_unlock(&j->pools[i].mu);
  }
  /* Jobs still running stay unacknowledged (JetStream redelivers them); their
   * completions still arrive, so their state stays until the process ends. */
  if (running) return;
  for (size_t i = 0; i < j->npools; i++) {
    natsSubscription_Destroy(j->pools[i].sub);
    pthread_mutex_destroy(&j->pools[i].mu);
  }
  natsSubscription_Destroy(j->lost_sub);
  kvStore_Destroy(j->kv);
  jsCtx_Destroy(j->js);
  free(j);
}

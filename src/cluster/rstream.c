/*
 * rstream.c - streams of remote pools: sp_execute_stream() on a remote pool,
 * its chunks handed to the consumer on the loop thread in order, the credits
 * that let the node go on (flow control) and cancellation (SP_CHUNK_STOP,
 * sp_cancel(), the deadline) told to the node.
 */
#include <stdio.h>
#include <string.h>

#include "errors.h"
#include "remote_int.h"
#include "runtime.h"

static void stream_cancel(sp__remote_t *r, rcall_t *c, int code, const char *why);

/* Publishes "REQ_ID [COUNT]" to the node's private subject `verb` (cancel, credit). */
void sp__rcall_tell(rcall_t *c, const char *verb, long count) {
  char subject[SP__WIRE_SUBJECT_MAX], body[128], node[NODE_ID_MAX];
  pthread_mutex_t *mu = &c->pool->conn->r->mu;
  pthread_mutex_lock(mu);
  snprintf(node, sizeof(node), "%s", c->node);
  pthread_mutex_unlock(mu);
  if (!node[0]) return; /* not accepted yet: nothing runs anywhere */
  snprintf(subject, sizeof(subject), "%s.%s.%s.%s", SP__WIRE_PREFIX, SP__WIRE_NODE, node, verb);
  snprintf(body, sizeof(body), "%s %ld", c->req_id, count);
  natsConnection_PublishString(c->pool->conn->nc, subject, body);
}


/* A chunk reaches the consumer (loop thread). */
void sp__rstream_deliver(sp__remote_t *r, rchunk_t *k) {
  rcall_t *c = k->c;
  if (!c->completed) {
    int rc = c->on_chunk(k->data, k->len, c->ud);
    long consumed = atomic_fetch_add(&c->consumed, 1) + 1;
    if (rc == SP_CHUNK_PAUSE) {
      atomic_store(&c->paused, 1);
    } else if (rc != SP_CHUNK_CONTINUE) {
      stream_cancel(r, c, SP_ECANCELLED, "the chunk callback stopped the stream");
    } else if (!atomic_load(&c->paused) && consumed - c->credited >= CREDIT_EVERY) {
      c->credited = consumed;
      sp__rcall_tell(c, "credit", consumed);
    }
  }
  sp__rcall_unref(c);
  free(k);
}

int sp__remote_execute_stream(sp__remote_t *r, sp__remote_pool_t *p, const char *tool,
                              const char *args, const sp_call_opts_t *opts, sp_chunk_cb on_chunk,
                              sp_done_cb on_done, void *ud, uint64_t *call_id, sp_error_t *err) {
  rcall_t *c = NULL;
  sp_call_opts_t once = opts ? *opts : (sp_call_opts_t)SP_CALL_OPTS_INIT;
  once.idempotent = 0; /* streams are never retried */
  int rc = sp__rcall_make(r, p, tool, args, &once, &c, err);
  if (rc != 0) return rc;
  c->res = &c->own;
  c->cb = on_done;
  c->ud = ud;
  c->on_chunk = on_chunk;
  atomic_init(&c->refs, 1);
  if ((rc = sp__rcall_start(r, c, err)) != 0) {
    sp__rcall_free(c);
    return rc;
  }
  if (call_id) *call_id = c->seq;
  sp__error_clear(err);
  return 0;
}

/* Ends a stream here and on its node; no-op when it already finished. Any thread. */
static void stream_cancel(sp__remote_t *r, rcall_t *c, int code, const char *why) {
  pthread_mutex_lock(&r->mu);
  rcall_t *taken = sp__rcall_take(r, c->seq);
  pthread_mutex_unlock(&r->mu);
  if (taken == NULL) return;
  sp__rcall_tell(c, "cancel", 0);
  sp__rcall_fail(r, c, code, "pool '%s': %s", c->pool->cfg->name, why);
}

int sp__remote_cancel(sp__remote_t *r, uint64_t call_id) {
  if (r == NULL) return SP_EINVAL;
  pthread_mutex_lock(&r->mu);
  rcall_t *c = sp__rcall_get(r, call_id);
  int stream = c != NULL && c->on_chunk != NULL;
  if (stream) atomic_fetch_add(&c->refs, 1); /* kept while being cancelled */
  pthread_mutex_unlock(&r->mu);
  if (!stream) return SP_EINVAL;
  stream_cancel(r, c, SP_ECANCELLED, "the stream was cancelled");
  sp__rcall_unref(c);
  return 0;
}

int sp__remote_resume(sp__remote_t *r, uint64_t call_id) {
  if (r == NULL) return SP_EINVAL;
  pthread_mutex_lock(&r->mu);
  rcall_t *c = sp__rcall_get(r, call_id);
  int stream = c != NULL && c->on_chunk != NULL;
  if (stream) atomic_fetch_add(&c->refs, 1);
  pthread_mutex_unlock(&r->mu);
  if (!stream) return SP_EINVAL;
  if (atomic_exchange(&c->paused, 0)) sp__rcall_tell(c, "credit", atomic_load(&c->consumed));
  sp__rcall_unref(c);
  return 0;
}

/*
 * rwatch.c - the remote pools' timer thread: fails calls whose deadline passed
 * (a backstop EXPIRE_GRACE_MS after the node's own timeout), and asks the
 * node holding a long call whether it is still alive; NATS answers "no
 * responders" at once for a node whose connection is gone, and its calls then
 * fail as SP_ECRASHED, or go to another node when idempotent.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "clock.h"
#include "remote_int.h"


/* Fails (or resends) the calls accepted by a node that no longer answers. */
static void node_gone(sp__remote_t *r, const char *node) {
  rcall_t *failed = NULL;
  pthread_mutex_lock(&r->mu);
  for (size_t b = 0; b < TABLE_SIZE; b++) {
    for (rcall_t **pp = &r->table[b]; *pp;) {
      rcall_t *c = *pp;
      if (strcmp(c->node, node) != 0) {
        pp = &c->next;
        continue;
      }
      if (c->idempotent && !c->on_chunk && c->attempts < MAX_ATTEMPTS) {
        c->attempts++;
        c->stage = 0;
        c->node[0] = '\0';
        c->accepted_ms = 0;
        atomic_fetch_add(&c->pool->retried, 1);
        if (sp__rcall_send(c) == NATS_OK) {
          pp = &c->next;
          continue;
        }
      }
      *pp = c->next;
      r->pending--;
      c->next = failed;
      failed = c;
    }
  }
  pthread_cond_broadcast(&r->cond);
  pthread_mutex_unlock(&r->mu);
  while (failed) {
    rcall_t *c = failed;
    failed = c->next;
    sp__rcall_fail(r, c, SP_ECRASHED,
         "pool '%s': node %s went away during the call (it no longer answers on %s)%s",
         c->pool->cfg->name, node, c->pool->conn->shown,
         c->idempotent ? "; the retry on another node failed too" : "; mark the call idempotent "
                                                                   "to have it retried on another node");
  }
}

/* Asks each node holding a long call whether it is alive; NATS says "no
 * responders" at once for a node whose connection is gone. */
static void check_nodes(sp__remote_t *r, int64_t now) {
  char nodes[8][NODE_ID_MAX];
  rconn_t *conns[8];
  int n = 0;
  pthread_mutex_lock(&r->mu);
  for (size_t b = 0; b < TABLE_SIZE && n < 8; b++) {
    for (rcall_t *c = r->table[b]; c && n < 8; c = c->next) {
      if (!c->node[0] || now - c->accepted_ms < ALIVE_AFTER_MS) continue;
      int seen = 0;
      for (int i = 0; i < n; i++) seen |= strcmp(nodes[i], c->node) == 0;
      if (seen) continue;
      snprintf(nodes[n], NODE_ID_MAX, "%s", c->node);
      conns[n++] = c->pool->conn;
      c->accepted_ms = now; /* next check in ALIVE_AFTER_MS */
    }
  }
  pthread_mutex_unlock(&r->mu);
  for (int i = 0; i < n; i++) {
    char subject[SP__WIRE_SUBJECT_MAX];
    natsMsg *reply = NULL;
    snprintf(subject, sizeof(subject), "%s.%s.%.64s.alive", SP__WIRE_PREFIX, SP__WIRE_NODE, nodes[i]);
    /* A node reconnecting after a NATS server restart is briefly unsubscribed
     * too: it is gone only when it stays silent over ALIVE_TRIES checks. */
    natsStatus s = NATS_NO_RESPONDERS;
    for (int k = 0; k < ALIVE_TRIES && s == NATS_NO_RESPONDERS; k++) {
      if (k > 0) nats_Sleep(ALIVE_RETRY_MS);
      s = natsConnection_RequestString(&reply, conns[i]->nc, subject, "", ALIVE_WAIT_MS);
      natsMsg_Destroy(reply);
      reply = NULL;
    }
    if (s == NATS_NO_RESPONDERS) node_gone(r, nodes[i]);
  }
}

static void expire(sp__remote_t *r, int64_t now) {
  rcall_t *late = NULL;
  pthread_mutex_lock(&r->mu);
  for (size_t b = 0; b < TABLE_SIZE; b++) {
    for (rcall_t **pp = &r->table[b]; *pp;) {
      rcall_t *c = *pp;
      if (c->deadline_ms + EXPIRE_GRACE_MS > now) {
        pp = &c->next;
        continue;
      }
      *pp = c->next;
      r->pending--;
      c->next = late;
      late = c;
    }
  }
  pthread_cond_broadcast(&r->cond);
  pthread_mutex_unlock(&r->mu);
  while (late) {
    rcall_t *c = late;
    late = c->next;
    if (c->on_chunk) sp__rcall_tell(c, "cancel", 0); /* the generator stops on its node too */
    if (c->node[0])
      sp__rcall_fail(r, c, SP_ETIMEOUT, "pool '%s': call timed out after %" PRId64 " ms on node %s",
           c->pool->cfg->name, c->timeout_ms, c->node);
    else
      sp__rcall_fail(r, c, SP_ETIMEOUT,
           "pool '%s': call timed out after %" PRId64 " ms with no node taking it (NATS %s)",
           c->pool->cfg->name, c->timeout_ms, c->pool->conn->shown);
  }
}

void *sp__rwatch_main(void *arg) {
  sp__remote_t *r = arg;
  for (;;) {
    pthread_mutex_lock(&r->mu);
    if (r->quit) {
      pthread_mutex_unlock(&r->mu);
      return NULL;
    }
    pthread_mutex_unlock(&r->mu);
    int64_t now = sp__now_ms();
    expire(r, now);
    check_nodes(r, now);
    nats_Sleep(TICK_MS);
  }
}

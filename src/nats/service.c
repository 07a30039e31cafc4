/*
 * service.c - the NATS service protocol of a node: $SRV.PING, $SRV.INFO and
 * $SRV.STATS, each on its three subjects ($SRV.VERB, $SRV.VERB.snakepit,
 * $SRV.VERB.snakepit.ID), answered with the JSON documents of the NATS micro
 * specification (io.nats.micro.v1.*_response), so that standard NATS tooling
 * (`nats micro ls`) lists nodes. Every pool is one endpoint; STATS carries the
 * pool's capacity, load and sp_stats_json() in the endpoint's "data".
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "node.h"

enum { VERB_PING, VERB_INFO, VERB_STATS };
static const char *const verbs[] = {"PING", "INFO", "STATS"};
static const char *const types[] = {"io.nats.micro.v1.ping_response",
                                    "io.nats.micro.v1.info_response",
                                    "io.nats.micro.v1.stats_response"};

static json_t *metadata(sp__node_t *n) {
  char pid[16];
  snprintf(pid, sizeof(pid), "%d", (int)getpid());
  return json_pack("{s:s, s:s, s:s, s:s}", "node", n->name, "host", n->host, "pid", pid,
                   "draining", atomic_load(&n->draining) ? "true" : "false");
}

static json_t *endpoint(sp__node_t *n, sp__node_pool_t *p, int verb) {
  char cap[16];
  snprintf(cap, sizeof(cap), "%d", p->capacity);
  json_t *e = json_pack("{s:s, s:s, s:s}", "name", p->name, "subject", p->call_subject,
                        "queue_group", "snakepit");
  if (verb == VERB_INFO) json_object_set_new(e, "metadata", json_pack("{s:s}", "capacity", cap));
  if (verb != VERB_STATS) return e;
  pthread_mutex_lock(&n->mu);
  uint64_t reqs = p->num_requests, errs = p->num_errors;
  int64_t ns = p->processing_ns;
  json_object_set_new(e, "num_requests", json_integer((json_int_t)reqs));
  json_object_set_new(e, "num_errors", json_integer((json_int_t)errs));
  json_object_set_new(e, "last_error", json_string(p->last_error));
  pthread_mutex_unlock(&n->mu);
  json_object_set_new(e, "processing_time", json_integer(ns));
  json_object_set_new(e, "average_processing_time", json_integer(reqs ? ns / (int64_t)reqs : 0));
  char *stats = NULL;
  sp_error_t err;
  json_t *sj = NULL;
  if (sp_stats_json(n->rt, p->name, &stats, &err) == 0) sj = json_loads(stats, 0, NULL);
  else sp_error_free(&err);
  sp_free(stats);
  json_object_set_new(e, "data", json_pack("{s:i, s:i, s:o}", "capacity", p->capacity,
                                           "in_flight", atomic_load(&p->in_flight), "stats",
                                           sj ? sj : json_null()));
  return e;
}

static void on_srv(natsConnection *nc, natsSubscription *sub, natsMsg *m, void *ud) {
  (void)sub;
  sp__node_t *n = ud;
  const char *subj = natsMsg_GetSubject(m);
  int verb = strncmp(subj, "$SRV.PING", 9) == 0 ? VERB_PING
             : strncmp(subj, "$SRV.INFO", 9) == 0 ? VERB_INFO
                                                  : VERB_STATS;
  const char *reply = natsMsg_GetReply(m);
  if (reply == NULL) goto out;
  json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:o}", "type", types[verb], "name",
                        SP__WIRE_SERVICE, "id", n->id, "version", sp_version(), "metadata",
                        metadata(n));
  if (verb != VERB_PING) {
    json_t *eps = json_array();
    for (size_t i = 0; i < n->npools; i++) json_array_append_new(eps, endpoint(n, &n->pools[i], verb));
    json_object_set_new(o, "endpoints", eps);
  }
  if (verb == VERB_INFO)
    json_object_set_new(o, "description", json_string("Snakepit node: pools of Python workers"));
  if (verb == VERB_STATS) json_object_set_new(o, "started", json_string(n->started));
  char *text = json_dumps(o, JSON_COMPACT);
  json_decref(o);
  if (text) natsConnection_PublishString(nc, reply, text);
  free(text);
out:
  natsMsg_Destroy(m);
}

natsStatus sp__node_service_start(sp__node_t *n) {
  natsStatus s = NATS_OK;
  for (int v = 0; v < 3 && s == NATS_OK; v++) {
    char subject[SP__WIRE_SUBJECT_MAX];
    const char *forms[] = {"$SRV.%s", "$SRV.%s." SP__WIRE_SERVICE, "$SRV.%s." SP__WIRE_SERVICE ".%s"};
    for (int f = 0; f < 3 && s == NATS_OK; f++) {
      snprintf(subject, sizeof(subject), forms[f], verbs[v], n->id);
      if (n->nown >= sizeof(n->own_subs) / sizeof(n->own_subs[0])) return NATS_INSUFFICIENT_BUFFER;
      s = natsConnection_Subscribe(&n->own_subs[n->nown++], n->nc, subject, on_srv, n);
    }
  }
  return s;
}

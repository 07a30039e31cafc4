/*
 * discover.c - sp_cluster_nodes_json(): asks every node for its statistics
 * over the NATS service protocol ($SRV.STATS.snakepit) and gathers the
 * answers into one document.
 */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "natsconn.h"
#include "wire.h"

/* After the first answer, answers stop being awaited once none came for this long. */
#define QUIET_MS 300

static json_t *node_of(json_t *stats) {
  json_t *md = json_object_get(stats, "metadata");
  json_t *pools = json_array();
  json_t *eps = json_object_get(stats, "endpoints");
  size_t i;
  json_t *ep;
  json_array_foreach(eps, i, ep) {
    json_t *data = json_object_get(ep, "data");
    json_array_append_new(
        pools, json_pack("{s:O, s:O, s:O, s:O, s:O, s:O}", "name", json_object_get(ep, "name"),
                         "capacity", json_object_get(data, "capacity") ?: json_null(),
                         "in_flight", json_object_get(data, "in_flight") ?: json_null(), "calls",
                         json_object_get(ep, "num_requests") ?: json_null(), "errors",
                         json_object_get(ep, "num_errors") ?: json_null(), "stats",
                         json_object_get(data, "stats") ?: json_null()));
  }
  json_t *draining = json_object_get(md, "draining");
  return json_pack("{s:O, s:O, s:O, s:O, s:O, s:b, s:o}", "id", json_object_get(stats, "id"),
                   "name", json_object_get(md, "node") ?: json_object_get(stats, "id"), "host",
                   json_object_get(md, "host") ?: json_string(""), "version",
                   json_object_get(stats, "version"), "started",
                   json_object_get(stats, "started") ?: json_null(), "draining",
                   draining && json_is_string(draining) &&
                       strcmp(json_string_value(draining), "true") == 0,
                   "pools", pools);
}

static int by_name(const void *a, const void *b) {
  const json_t *x = *(json_t *const *)a, *y = *(json_t *const *)b;
  const char *nx = json_string_value(json_object_get(x, "name"));
  const char *ny = json_string_value(json_object_get(y, "name"));
  return strcmp(nx ? nx : "", ny ? ny : "");
}

int sp_cluster_nodes_json(const sp_nats_opts_t *opts, char **json, sp_error_t *err) {
  natsConnection *nc = NULL;
  natsSubscription *sub = NULL;
  natsInbox *inbox = NULL;
  json_t *nodes = json_array();
  json_t **list = NULL;
  if (json == NULL) return sp_error_setf(err, SP_EINVAL, "json must not be NULL");
  *json = NULL;
  int rc = sp__nats_connect(opts, "snakepit-discovery", &nc, err);
  if (rc != 0) goto done;
  natsStatus s = natsInbox_Create(&inbox);
  if (s == NATS_OK) s = natsConnection_SubscribeSync(&sub, nc, (const char *)inbox);
  if (s == NATS_OK)
    s = natsConnection_PublishRequestString(nc, "$SRV.STATS." SP__WIRE_SERVICE, (const char *)inbox, "");
  if (s != NATS_OK) {
    rc = sp__wire_nats_error(err, s, "asking for nodes");
    goto done;
  }
  int64_t until = nats_Now() + sp__nats_timeout(opts);
  int64_t wait = sp__nats_timeout(opts);
  for (;;) {
    natsMsg *m = NULL;
    int64_t left = until - nats_Now();
    if (left <= 0) break;
    if (natsSubscription_NextMsg(&m, sub, wait < left ? wait : left) != NATS_OK) break;
    json_t *stats = json_loadb(natsMsg_GetData(m), (size_t)natsMsg_GetDataLength(m), 0, NULL);
    natsMsg_Destroy(m);
    if (stats && json_object_get(stats, "endpoints")) json_array_append_new(nodes, node_of(stats));
    json_decref(stats);
    wait = QUIET_MS;
  }
  size_t n = json_array_size(nodes);
  list = calloc(n + 1, sizeof(*list));
  for (size_t i = 0; list && i < n; i++) list[i] = json_array_get(nodes, i);
  if (list) qsort(list, n, sizeof(*list), by_name);
  json_t *sorted = json_array();
  for (size_t i = 0; list && i < n; i++) json_array_append(sorted, list[i]);
  json_t *doc = json_pack("{s:o}", "nodes", sorted);
  *json = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
  json_decref(doc);
  rc = *json ? 0 : sp_error_setf(err, SP_ENOMEM, "out of memory");
  if (rc == 0) sp_error_set(err, 0, NULL, NULL, NULL);
done:
  free(list);
  json_decref(nodes);
  natsSubscription_Destroy(sub);
  natsInbox_Destroy(inbox);
  natsConnection_Destroy(nc);
  return rc;
}

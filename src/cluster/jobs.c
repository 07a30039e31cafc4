/*
 * jobs.c - durable jobs from the calling side: sp_job_submit() publishes the
 * call (JSON arguments and inline arrays, as body.c lays out a call) to the
 * JetStream work queue (src/nats/jobs.c runs it on a node), and
 * sp_job_result() reads its outcome from the results bucket.
 */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "body.h"
#include "natsconn.h"
#include "wire.h"

static int open_js(const sp_nats_opts_t *o, natsConnection **nc, jsCtx **js, sp_error_t *err) {
  int rc = sp__nats_connect(o, "snakepit-jobs", nc, err);
  if (rc != 0) return rc;
  jsOptions jo;
  jsOptions_Init(&jo);
  jo.Wait = sp__nats_timeout(o);
  natsStatus s = natsConnection_JetStream(js, *nc, &jo);
  return s == NATS_OK ? 0 : sp__wire_nats_error(err, s, "JetStream context");
}

int sp_job_submit(const sp_nats_opts_t *nats, const char *pool, const char *tool,
                  const char *args_json, const sp_call_opts_t *opts, const char *job_id,
                  char **job_id_out, sp_error_t *err) {
  natsConnection *nc = NULL;
  jsCtx *js = NULL;
  natsMsg *m = NULL;
  jsPubAck *ack = NULL;
  sp__nats_body_t body = {NULL, 0, 0};
  char id[80], subject[SP__WIRE_SUBJECT_MAX];
  int rc = 0;
  if (job_id_out) *job_id_out = NULL;
  if (pool == NULL || tool == NULL)
    return sp_error_setf(err, SP_EINVAL, "sp_job_submit: pool and tool must not be NULL");
  if (job_id != NULL && !sp__wire_job_id_valid(job_id))
    return sp_error_setf(err, SP_EINVAL, "job id '%.80s' must be 1 to 64 characters from "
                         "A-Z a-z 0-9 _ -", job_id);
  if (sp__wire_subject(subject, sizeof(subject), SP__WIRE_JOBS, pool) != 0)
    return sp_error_setf(err, SP_EINVAL, "pool name '%.80s' is too long", pool);
  if ((rc = open_js(nats, &nc, &js, err)) != 0) goto done;
  /* Arguments and arrays as for a call to a remote pool (arrays inline, up to max_payload). */
  char shown[256];
  sp__nats_url_shown(nats && nats->url ? nats->url : "", shown, sizeof(shown));
  if ((rc = sp__nats_body_build(pool, tool, args_json, opts, nc, shown, &body, err)) != 0) goto done;
  if ((rc = sp__wire_jobs_setup(js, NULL, err)) != 0) goto done;
  if (job_id == NULL) {
    natsInbox *inbox = NULL;
    natsInbox_Create(&inbox);
    snprintf(id, sizeof(id), "%s", inbox ? (const char *)inbox + 7 : "job");
    natsInbox_Destroy(inbox);
  } else {
    snprintf(id, sizeof(id), "%s", job_id);
  }
  sp__wire_call_t w = {tool, opts && opts->timeout_ms > 0 ? opts->timeout_ms : 0,
                       opts ? opts->idempotent : 0, id, body.data, body.len, 0, body.json_len, 0,
                       NULL, 0};
  if (sp__wire_call_encode(&m, subject, NULL, &w) != 0) {
    rc = sp_error_setf(err, SP_ENOMEM, "out of memory");
    goto done;
  }
  jsPubOptions po;
  jsPubOptions_Init(&po);
  po.MsgId = id; /* JetStream drops a second message with the same id */
  jsErrCode jerr = 0;
  natsStatus s = js_PublishMsg(&ack, js, m, &po, &jerr);
  if (s != NATS_OK) {
    rc = sp__wire_nats_error(err, s, "submitting job %s to pool '%s'", id, pool);
    goto done;
  }
  if (job_id_out && (*job_id_out = strdup(id)) == NULL) rc = sp_error_setf(err, SP_ENOMEM, "out of memory");
  if (rc == 0) sp_error_set(err, 0, NULL, NULL, NULL);
done:
  sp__nats_body_free(&body);
  jsPubAck_Destroy(ack);
  natsMsg_Destroy(m);
  jsCtx_Destroy(js);
  natsConnection_Destroy(nc);
  return rc;
}

/* Fills res from a stored outcome; returns its code. */
static int outcome(const char *text, int len, const char *id, sp_result_t *res) {
  json_t *o = json_loadb(text, (size_t)len, 0, NULL);
  json_t *code = json_object_get(o, "code");
  int rc;
  if (!json_is_integer(code)) {
    rc = sp_error_setf(&res->error, SP_EPROTOCOL, "job %s: unreadable outcome", id);
  } else if (json_integer_value(code) == 0) {
    res->json = json_dumps(json_object_get(o, "result"), JSON_COMPACT | JSON_ENCODE_ANY);
    res->len = res->json ? strlen(res->json) : 0;
    rc = res->json ? 0 : sp_error_setf(&res->error, SP_ENOMEM, "out of memory");
    if (rc == 0) sp_error_set(&res->error, 0, NULL, NULL, NULL);
  } else {
    json_t *e = json_object_get(o, "error");
    rc = sp_error_set(&res->error, (int)json_integer_value(code),
                      json_string_value(json_object_get(e, "message")),
                      json_string_value(json_object_get(e, "python_type")),
                      json_string_value(json_object_get(e, "traceback")));
  }
  json_decref(o);
  return rc;
}

int sp_job_result(const sp_nats_opts_t *nats, const char *job_id, int64_t wait_ms, int *done,
                  sp_result_t *res) {
  natsConnection *nc = NULL;
  jsCtx *js = NULL;
  kvStore *kv = NULL;
  if (res == NULL || done == NULL) return SP_EINVAL;
  memset(res, 0, sizeof(*res));
  sp_error_set(&res->error, 0, NULL, NULL, NULL);
  *done = 0;
  if (job_id == NULL || !sp__wire_job_id_valid(job_id))
    return sp_error_setf(&res->error, SP_EINVAL, "job id '%.80s' must be 1 to 64 characters from "
                         "A-Z a-z 0-9 _ -", job_id ? job_id : "(null)");
  int rc = open_js(nats, &nc, &js, &res->error);
  if (rc == 0) rc = sp__wire_jobs_setup(js, &kv, &res->error);
  int64_t until = nats_Now() + (wait_ms > 0 ? wait_ms : 0);
  while (rc == 0) {
    kvEntry *e = NULL;
    natsStatus s = kvStore_Get(&e, kv, job_id);
    if (s == NATS_OK) {
      *done = 1;
      rc = outcome((const char *)kvEntry_Value(e), kvEntry_ValueLen(e), job_id, res);
      kvEntry_Destroy(e);
      break;
    }
    if (s != NATS_NOT_FOUND) {
      rc = sp__wire_nats_error(&res->error, s, "reading the outcome of job %s", job_id);
      break;
    }
    if (nats_Now() >= until) break;
    nats_Sleep(100);
  }
  kvStore_Destroy(kv);
  jsCtx_Destroy(js);
  natsConnection_Destroy(nc);
  return rc;
}

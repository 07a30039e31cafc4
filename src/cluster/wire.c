/*
 * wire.c - encodes and decodes calls and replies over NATS (see wire.h): the
 * one place that knows the subjects, header names and error object.
 */
#include "wire.h"

#include "protocol.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int sp__wire_subject(char *buf, size_t cap, const char *kind, const char *pool) {
  int n = snprintf(buf, cap, "%s.%s.%s", SP__WIRE_PREFIX, kind, pool);
  return n < 0 || (size_t)n >= cap ? SP_EINVAL : 0;
}

static int nomem(natsMsg *m) {
  natsMsg_Destroy(m);
  return SP_ENOMEM;
}

int sp__wire_call_encode(natsMsg **out, const char *subject, const char *reply,
                         const sp__wire_call_t *c) {
  natsMsg *m = NULL;
  char num[32];
  *out = NULL;
  if (natsMsg_Create(&m, subject, reply, c->args, (int)c->args_len) != NATS_OK) return SP_ENOMEM;
  snprintf(num, sizeof(num), "%" PRId64, c->timeout_ms);
  if (natsMsgHeader_Set(m, SP__HDR_TOOL, c->tool) != NATS_OK ||
      natsMsgHeader_Set(m, SP__HDR_TIMEOUT, num) != NATS_OK ||
      (c->idempotent && natsMsgHeader_Set(m, SP__HDR_IDEMPOTENT, "1") != NATS_OK) ||
      (c->stream && natsMsgHeader_Set(m, SP__HDR_STREAM, "1") != NATS_OK) ||
      (c->lists && natsMsgHeader_Set(m, SP__HDR_LISTS, "1") != NATS_OK) ||
      (c->id && *c->id && natsMsgHeader_Set(m, SP__HDR_ID, c->id) != NATS_OK))
    return nomem(m);
  if (c->json_len > 0) {
    snprintf(num, sizeof(num), "%zu", c->json_len);
    if (natsMsgHeader_Set(m, SP__HDR_JSON_LEN, num) != NATS_OK) return nomem(m);
  }
  *out = m;
  return 0;
}

static const char *header(natsMsg *m, const char *name) {
  const char *v = NULL;
  return natsMsgHeader_Get(m, name, &v) == NATS_OK && v != NULL ? v : NULL;
}

int sp__wire_call_decode(natsMsg *m, sp__wire_call_t *c, sp_error_t *err) {
  memset(c, 0, sizeof(*c));
  c->tool = header(m, SP__HDR_TOOL);
  const char *t = header(m, SP__HDR_TIMEOUT);
  char *end = NULL;
  if (c->tool == NULL || *c->tool == '\0')
    return sp_error_setf(err, SP_EPROTOCOL, "call on '%s' without the %s header",
                         natsMsg_GetSubject(m), SP__HDR_TOOL);
  c->timeout_ms = t ? strtoll(t, &end, 10) : 0;
  if (t == NULL || end == t || *end != '\0' || c->timeout_ms < 0)
    return sp_error_setf(err, SP_EPROTOCOL, "call on '%s': %s must be a number of "
                         "milliseconds (0: the pool's timeout), got '%s'", natsMsg_GetSubject(m), SP__HDR_TIMEOUT,
                         t ? t : "(missing)");
  const char *idem = header(m, SP__HDR_IDEMPOTENT);
  c->idempotent = idem != NULL && strcmp(idem, "1") == 0;
  const char *stream = header(m, SP__HDR_STREAM), *lists = header(m, SP__HDR_LISTS);
  c->stream = stream != NULL && strcmp(stream, "1") == 0;
  c->lists = lists != NULL && strcmp(lists, "1") == 0;
  c->id = header(m, SP__HDR_ID);
  if (c->id == NULL) c->id = "";
  int len = natsMsg_GetDataLength(m);
  char *args = malloc((size_t)len + 1);
  if (args == NULL) return sp_error_setf(err, SP_ENOMEM, "out of memory reading a call");
  if (len > 0) memcpy(args, natsMsg_GetData(m), (size_t)len);
  args[len] = '\0';
  c->args = args;
  c->args_len = (size_t)len;
  const char *jl = header(m, SP__HDR_JSON_LEN);
  if (jl == NULL) return 0;
  size_t json_len = (size_t)strtoull(jl, &end, 10);
  if (end == jl || *end != '\0' || json_len > (size_t)len)
    return sp_error_setf(err, SP_EPROTOCOL, "call on '%s': bad %s '%s'", natsMsg_GetSubject(m),
                         SP__HDR_JSON_LEN, jl);
  int rc = sp__wire_arrays_view((const uint8_t *)args + json_len, (size_t)len - json_len,
                                &c->arrays, &c->array_count);
  if (rc != 0)
    return sp_error_setf(err, rc, "call on '%s': malformed arrays part", natsMsg_GetSubject(m));
  args[json_len] = '\0'; /* the JSON ends where the arrays part begins */
  c->args_len = json_len;
  return 0;
}

int sp__wire_arrays_view(const uint8_t *part, size_t len, sp_array_t **out, size_t *n) {
  *out = NULL;
  *n = 0;
  size_t cap = len / 24 + 1; /* every table entry takes at least 24 bytes */
  if (cap > SP__MAX_ARRAYS) cap = SP__MAX_ARRAYS;
  sp__array_desc_t *d = calloc(cap, sizeof(*d));
  const uint8_t *base = NULL;
  size_t count = 0;
  if (d == NULL) return SP_ENOMEM;
  if (sp__arrays_parse(part, len, 0, d, cap, &count, &base) != 0) {
    free(d);
    return SP_EPROTOCOL;
  }
  /* One block: the views, then their shapes and NUL-terminated names. */
  size_t names = 0;
  for (size_t i = 0; i < count; i++) names += d[i].name_len + 1;
  sp_array_t *a = calloc(1, count * (sizeof(sp_array_t) + SP_MAX_NDIM * sizeof(int64_t)) + names + 1);
  if (a == NULL) {
    free(d);
    return SP_ENOMEM;
  }
  int64_t *shapes = (int64_t *)(a + count);
  char *name = (char *)(shapes + count * SP_MAX_NDIM);
  for (size_t i = 0; i < count; i++) {
    sp__array_view_from_desc(&a[i], &d[i], &name, &shapes);
    a[i].data = base + d[i].offset;
    a[i].nbytes = (size_t)d[i].nbytes;
  }
  free(d);
  *out = a;
  *n = count;
  return 0;
}

int sp__wire_arrays_part(const sp_array_t *arrays, size_t n, uint8_t **part, size_t *len) {
  *part = NULL;
  *len = 0;
  sp__array_desc_t *d = calloc(n ? n : 1, sizeof(*d));
  if (d == NULL) return SP_ENOMEM;
  for (size_t i = 0; i < n; i++) { /* results: C-contiguous views */
    d[i].name = arrays[i].name;
    d[i].name_len = strlen(arrays[i].name);
    d[i].dtype = (int)arrays[i].dtype;
    d[i].ndim = arrays[i].ndim;
    d[i].where = SP__ARR_INLINE;
    d[i].nbytes = arrays[i].nbytes;
    if (arrays[i].ndim > 0) memcpy(d[i].shape, arrays[i].shape, (size_t)arrays[i].ndim * sizeof(int64_t));
    d[i].data = arrays[i].data;
  }
  *len = sp__arrays_size(d, n);
  *part = malloc(*len);
  if (*part == NULL) {
    free(d);
    return SP_ENOMEM;
  }
  sp__arrays_write(*part, d, n);
  free(d);
  return 0;
}

void sp__wire_call_free(sp__wire_call_t *c) {
  free((char *)c->args);
  free(c->arrays);
  c->args = NULL;
  c->arrays = NULL;
}

static int reply_msg(natsMsg **out, const char *subject, const char *node, int code,
                     const char *data, size_t len) {
  natsMsg *m = NULL;
  char num[16];
  *out = NULL;
  if (natsMsg_Create(&m, subject, NULL, data, (int)len) != NATS_OK) return SP_ENOMEM;
  snprintf(num, sizeof(num), "%d", code);
  if (natsMsgHeader_Set(m, SP__HDR_CODE, num) != NATS_OK ||
      natsMsgHeader_Set(m, SP__HDR_NODE, node) != NATS_OK)
    return nomem(m);
  *out = m;
  return 0;
}

/* A successful reply whose result has arrays: JSON, then the arrays part. */
static int reply_with_arrays(natsMsg **out, const char *subject, const char *node,
                             const sp_result_t *res) {
  uint8_t *part = NULL;
  size_t plen = 0;
  int rc = sp__wire_arrays_part(res->arrays, res->array_count, &part, &plen);
  char *body = rc == 0 ? malloc(res->len + plen) : NULL;
  if (body == NULL) {
    free(part);
    return SP_ENOMEM;
  }
  memcpy(body, res->json, res->len);
  memcpy(body + res->len, part, plen);
  rc = reply_msg(out, subject, node, 0, body, res->len + plen);
  free(body);
  free(part);
  char num[24];
  snprintf(num, sizeof(num), "%zu", res->len);
  if (rc == 0 && natsMsgHeader_Set(*out, SP__HDR_JSON_LEN, num) != NATS_OK) {
    natsMsg_Destroy(*out);
    *out = NULL;
    rc = SP_ENOMEM;
  }
  return rc;
}

static int error_msg(natsMsg **out, const char *subject, const char *node, const sp_error_t *e) {
  json_t *o = json_pack("{s:i, s:s, s:s, s:s, s:s}", "code", e->code, "name",
                        sp_err_name(e->code), "message", e->message ? e->message : "",
                        "python_type", e->python_type ? e->python_type : "", "traceback",
                        e->traceback ? e->traceback : "");
  char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
  json_decref(o);
  if (text == NULL) return SP_ENOMEM;
  int rc = reply_msg(out, subject, node, e->code, text, strlen(text));
  free(text);
  return rc;
}

int sp__wire_reply_encode(natsMsg **out, const char *subject, const char *node,
                          const sp_result_t *res) {
  if (res->error.code == 0 && res->array_count > 0) return reply_with_arrays(out, subject, node, res);
  if (res->error.code == 0) return reply_msg(out, subject, node, 0, res->json, res->len);
  return error_msg(out, subject, node, &res->error);
}

int sp__wire_error_encode(natsMsg **out, const char *subject, const char *node, int code,
                          const char *message) {
  sp_error_t e = {code, sp_err_category(code), message, "", "", NULL};
  return error_msg(out, subject, node, &e);
}

int sp__wire_accepted_encode(natsMsg **out, const char *subject, const char *node) {
  int rc = reply_msg(out, subject, node, 0, NULL, 0);
  if (rc == 0 && natsMsgHeader_Set(*out, SP__HDR_KIND, SP__WIRE_ACCEPTED) != NATS_OK) {
    natsMsg_Destroy(*out);
    *out = NULL;
    return SP_ENOMEM;
  }
  return rc;
}

int sp__wire_chunk_encode(natsMsg **out, const char *subject, const char *json, size_t len) {
  natsMsg *m = NULL;
  *out = NULL;
  if (natsMsg_Create(&m, subject, NULL, json, (int)len) != NATS_OK) return SP_ENOMEM;
  if (natsMsgHeader_Set(m, SP__HDR_KIND, SP__WIRE_CHUNK) != NATS_OK) return nomem(m);
  *out = m;
  return 0;
}

int sp__wire_is_chunk(natsMsg *m) {
  const char *k = header(m, SP__HDR_KIND);
  return k != NULL && strcmp(k, SP__WIRE_CHUNK) == 0;
}

int sp__wire_is_accepted(natsMsg *m) {
  const char *k = header(m, SP__HDR_KIND);
  return k != NULL && strcmp(k, SP__WIRE_ACCEPTED) == 0;
}

const char *sp__wire_node(natsMsg *m) {
  const char *n = header(m, SP__HDR_NODE);
  return n ? n : "";
}

int sp__wire_reply_decode(natsMsg *m, const char *where, sp_result_t *res,
                          const uint8_t **arrays, size_t *arrays_len) {
  const char *c = header(m, SP__HDR_CODE);
  const char *data = natsMsg_GetData(m);
  int len = natsMsg_GetDataLength(m);
  char *end = NULL;
  if (arrays) *arrays = NULL;
  if (arrays_len) *arrays_len = 0;
  const char *jl = header(m, SP__HDR_JSON_LEN);
  if (jl != NULL) {
    size_t json_len = (size_t)strtoull(jl, &end, 10);
    if (end == jl || *end != '\0' || json_len > (size_t)len || arrays == NULL)
      return sp_error_setf(&res->error, SP_EPROTOCOL, "%s: a reply with a bad %s", where,
                           SP__HDR_JSON_LEN);
    *arrays = (const uint8_t *)data + json_len;
    *arrays_len = (size_t)len - json_len;
    len = (int)json_len;
  }
  long code = c ? strtol(c, &end, 10) : 1;
  if (c == NULL || end == c || *end != '\0' || code > 0)
    return sp_error_setf(&res->error, SP_EPROTOCOL, "%s: a reply without a valid %s header",
                         where, SP__HDR_CODE);
  if (code == 0) {
    res->json = malloc((size_t)len + 1);
    if (res->json == NULL) return sp_error_setf(&res->error, SP_ENOMEM, "out of memory");
    if (len > 0) memcpy(res->json, data, (size_t)len);
    res->json[len] = '\0';
    res->len = (size_t)len;
    sp_error_set(&res->error, 0, NULL, NULL, NULL);
    return 0;
  }
  json_error_t jerr;
  json_t *o = json_loadb(data ? data : "", (size_t)len, 0, &jerr);
  const char *msg = NULL, *pytype = "", *tb = "";
  if (o == NULL || json_unpack(o, "{s:s, s?s, s?s}", "message", &msg, "python_type", &pytype,
                               "traceback", &tb) != 0) {
    json_decref(o);
    return sp_error_setf(&res->error, (int)code, "%s: %s (the node sent no readable detail)",
                         where, sp_strerror((int)code));
  }
  sp_error_set(&res->error, (int)code, msg, pytype, tb);
  json_decref(o);
  return (int)code;
}

int sp__wire_nats_error(sp_error_t *err, natsStatus s, const char *fmt, ...) {
  char what[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(what, sizeof(what), fmt, ap);
  va_end(ap);
  int code = s == NATS_TIMEOUT          ? SP_ETIMEOUT
             : s == NATS_NO_RESPONDERS  ? SP_ENOPOOL
             : s == NATS_MAX_PAYLOAD    ? SP_ETOOLARGE
             : s == NATS_NO_MEMORY      ? SP_ENOMEM
             : s == NATS_INVALID_ARG    ? SP_EINVAL
                                        : SP_EIO;
  const char *detail = nats_GetLastError(NULL);
  return sp_error_setf(err, code, "%s: %s%s%s", what, natsStatus_GetText(s),
                       detail && *detail ? ": " : "", detail && *detail ? detail : "");
}

int sp__wire_job_id_valid(const char *id) {
  size_t n = 0;
  for (const char *p = id; p && *p; p++, n++)
    if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
          *p == '_' || *p == '-'))
      return 0;
  return n >= 1 && n <= 64;
}

char *sp__wire_job_outcome(const char *node, const sp_result_t *res) {
  json_t *o = json_pack("{s:i, s:s}", "code", res->error.code, "node", node);
  if (o == NULL) return NULL;
  if (res->error.code == 0) {
    json_t *r = json_loadb(res->json ? res->json : "null", res->json ? res->len : 4,
                           JSON_DECODE_ANY, NULL);
    json_object_set_new(o, "result", r ? r : json_null());
  } else {
    json_object_set_new(o, "error",
                        json_pack("{s:i, s:s, s:s, s:s, s:s}", "code", res->error.code, "name",
                                  sp_err_name(res->error.code), "message", res->error.message,
                                  "python_type", res->error.python_type, "traceback",
                                  res->error.traceback));
  }
  char *text = json_dumps(o, JSON_COMPACT);
  json_decref(o);
  return text;
}

int sp__wire_jobs_setup(jsCtx *js, kvStore **kv, sp_error_t *err) {
  jsStreamConfig sc;
  jsStreamInfo *si = NULL;
  jsErrCode jerr = 0;
  const char *subjects[] = {SP__JOBS_SUBJECTS};
  jsStreamConfig_Init(&sc);
  sc.Name = SP__JOBS_STREAM;
  sc.Subjects = subjects;
  sc.SubjectsLen = 1;
  sc.Retention = js_WorkQueuePolicy;
  sc.Storage = js_FileStorage;
  sc.MaxAge = SP__JOBS_KEEP_MS * 1000000LL;     /* nanoseconds */
  sc.Duplicates = SP__JOBS_KEEP_MS * 1000000LL; /* a job id counts for as long as its job */
  natsStatus s = js_AddStream(&si, js, &sc, NULL, &jerr);
  jsStreamInfo_Destroy(si);
  if (s != NATS_OK && jerr != JSStreamNameExistErr) {
    if (jerr == JSNotEnabledErr || jerr == JSNotEnabledForAccountErr || s == NATS_NO_RESPONDERS)
      return sp_error_setf(err, SP_EIO, "durable jobs need JetStream: start nats-server with -js "
                           "(or enable JetStream for the account)");
    return sp__wire_nats_error(err, s, "creating the JetStream stream %s (error %d)",
                               SP__JOBS_STREAM, (int)jerr);
  }
  if (kv == NULL) return 0;
  *kv = NULL;
  s = js_KeyValue(kv, js, SP__JOBS_BUCKET);
  if (s == NATS_NOT_FOUND) {
    kvConfig kc;
    kvConfig_Init(&kc);
    kc.Bucket = SP__JOBS_BUCKET;
    kc.History = 1;
    kc.TTL = SP__JOBS_KEEP_MS * 1000000LL; /* nanoseconds, like every JetStream duration */
    s = js_CreateKeyValue(kv, js, &kc);
    if (s != NATS_OK) s = js_KeyValue(kv, js, SP__JOBS_BUCKET); /* another node made it first */
  }
  if (s != NATS_OK)
    return sp__wire_nats_error(err, s, "opening the JetStream bucket %s", SP__JOBS_BUCKET);
  return 0;
}

/*
 * report.h - collecting every live worker's own report (report.c): one STATS
 * request per worker, answered on one of its execution threads, gathered into
 * one JSON document; and merging thread-safety findings (tsmerge.c).
 */
#ifndef SP_CORE_REPORT_H
#define SP_CORE_REPORT_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "call.h"

/**
 * Request ids of STATS requests have this bit set, so they never collide with
 * call ids (sequence << 16 | slot, far below it).
 */
#define SP__REPORT_ID_BIT (UINT64_C(1) << 63)

typedef struct sp__report_s sp__report_t;

/** One worker's part of a report operation, linked into the worker's list. */
typedef struct sp__report_ask_s {
  struct sp__report_ask_s *next; /* in the worker's list of unanswered asks */
  sp__report_t *op;
  sp__worker_t *worker; /* NULL once answered or given up */
  uint64_t id;
  size_t pool; /* index of its pool in the operation */
  char name[24];
  json_t *reply; /* the worker's report, once answered */
  char *missing; /* why it has none */
} sp__report_ask_t;

/** Loop thread: starts a report operation taken from the client queue. */
void sp__report_accept(sp_runtime_t *rt, sp__msg_t *m);

/** Loop thread: the worker answered request id with a STATS body (or an ERROR). */
void sp__report_reply(sp__worker_t *w, uint64_t id, const uint8_t *body, size_t len, int failed);

/** Loop thread: the worker is gone; its unanswered asks become "missing". */
void sp__report_worker_gone(sp__worker_t *w, const char *why);

/** Merges per-worker thread-safety reports {key: report} into a new object. */
json_t *sp__ts_merge(json_t *by_worker);

#endif /* SP_CORE_REPORT_H */

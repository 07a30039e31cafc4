/*
 * body.h - the body of a call or a job sent over NATS (body.c): the JSON
 * arguments, then, when the call has array arguments, the worker protocol's
 * arrays part (table and bytes), checked against the server's max_payload.
 * Calls to remote pools (remote.c) and durable jobs (jobs.c) build it alike.
 */
#ifndef SP_CLUSTER_BODY_H
#define SP_CLUSTER_BODY_H

#include <nats/nats.h>
#include <stddef.h>

#include "snakepit.h"

typedef struct sp__nats_body_s {
  char *data;      /* malloc'd; NUL-terminated after the JSON when there are no arrays */
  size_t len;      /* the whole body */
  size_t json_len; /* bytes of JSON before the arrays part; 0 when there is none */
} sp__nats_body_t;

/**
 * Checks args (a JSON object; NULL is "{}") and opts' arrays (names, dtypes,
 * strided views made C-contiguous, as for a local pool) and lays them out in
 * *b. nc (may be NULL) gives the server's max_payload: a body above it fails
 * with SP_ETOOLARGE naming the limit, url (for messages, credentials hidden)
 * and how to raise it. On failure b holds nothing and err says why.
 */
int sp__nats_body_build(const char *pool, const char *tool, const char *args,
                        const sp_call_opts_t *opts, natsConnection *nc, const char *url,
                        sp__nats_body_t *b, sp_error_t *err);

/** Frees b->data. */
void sp__nats_body_free(sp__nats_body_t *b);

#endif /* SP_CLUSTER_BODY_H */

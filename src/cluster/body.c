/*
 * body.c - the body of a call or a job over NATS: JSON arguments checked,
 * array arguments laid out inline after them, the whole held to the server's
 * max_payload before anything is sent.
 */
#include "body.h"

#include <inttypes.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "arrays.h"
#include "errors.h"
#include "jsonargs.h"

/* Room for the headers (tool, timeout, id, ...) next to the body in one message. */
#define HEADER_ROOM 256

int sp__nats_body_build(const char *pool, const char *tool, const char *args,
                        const sp_call_opts_t *opts, natsConnection *nc, const char *url,
                        sp__nats_body_t *b, sp_error_t *err) {
  memset(b, 0, sizeof(*b));
  if (args == NULL) args = "{}";
  size_t alen = strlen(args);
  char why[256], top = 0;
  if (sp__json_args_check(args, alen, &top, why, sizeof(why)) != 0)
    return sp__error_set(err, SP_EBADJSON,
                         "arguments for tool '%s' in pool '%s' are not valid JSON: %s", tool, pool, why);
  if (top != '{')
    return sp__error_set(err, SP_EBADARGS, "arguments for tool '%s' in pool '%s' must be a JSON object",
                         tool, pool);
  sp__inputs_t in;
  memset(&in, 0, sizeof(in));
  size_t narrays = opts ? opts->array_count : 0;
  if (narrays > 0) {
    int rc = sp__inputs_prepare(NULL, pool, tool, opts->arrays, narrays, args, alen, 0, SIZE_MAX,
                                &in, err);
    if (rc != 0) return rc;
  }
  /* The server refuses a message above its max_payload; say so before sending. */
  int64_t limit = nc ? natsConnection_GetMaxPayload(nc) : 0;
  if (limit > 0 && (int64_t)(alen + in.extra + strlen(tool) + HEADER_ROOM) > limit) {
    sp__inputs_clear(&in, NULL, NULL);
    return sp__error_set(err, SP_ETOOLARGE,
                         "arguments of %zu bytes%s for tool '%s' in pool '%s' exceed the NATS "
                         "server's max_payload of %" PRId64 " bytes (%s); raise max_payload in "
                         "the nats-server configuration",
                         alen + in.extra, narrays ? " (with arrays)" : "", tool, pool, limit, url);
  }
  if ((b->data = malloc(alen + in.extra + 1)) == NULL) {
    sp__inputs_clear(&in, NULL, NULL);
    return sp__error_set(err, SP_ENOMEM, "out of memory");
  }
  memcpy(b->data, args, alen + 1);
  b->len = alen + in.extra; /* before sp__inputs_clear zeroes in */
  if (narrays > 0) {
    sp__inputs_encode(&in, (uint8_t *)b->data + alen);
    sp__inputs_clear(&in, NULL, NULL);
    b->json_len = alen;
  }
  return 0;
}

void sp__nats_body_free(sp__nats_body_t *b) {
  free(b->data);
  b->data = NULL;
}

/*
 * natsconn.h - connecting to NATS from sp_nats_opts_t, the same way for the
 * calling side and for nodes: authentication and TLS pass through, and the
 * connection reconnects by itself for as long as it lives.
 */
#ifndef SP_CLUSTER_NATSCONN_H
#define SP_CLUSTER_NATSCONN_H

#include <nats/nats.h>

#include "snakepit.h"

/** Default of sp_nats_opts_t.timeout_ms. */
#define SP__NATS_TIMEOUT_MS 2000
/* How often a lost connection is retried; with no limit on attempts. */
#define SP__NATS_RECONNECT_WAIT_MS 250
/* What a connection buffers while reconnecting; publishing past it fails at once. */
#define SP__NATS_RECONNECT_BUF (8 * 1024 * 1024)

/** opts->timeout_ms, or the default; opts may be NULL. */
int64_t sp__nats_timeout(const sp_nats_opts_t *opts);

/**
 * Connects to opts->url as `name` (shown by the server's monitoring). Fails
 * within opts->timeout_ms with err naming the URL and the reason (bad URL,
 * unreachable, authorisation refused, TLS), and at once with SP_EINVAL naming
 * the file for a client certificate without its key (or the reverse) or one
 * that cannot be read. *nc is the caller's
 * (natsConnection_Destroy). Any thread.
 */
int sp__nats_connect(const sp_nats_opts_t *opts, const char *name, natsConnection **nc,
                     sp_error_t *err);

/** The URL of opts with any TOKEN@ or USER:PASSWORD@ part replaced by "***@", for messages. */
void sp__nats_url_shown(const char *url, char *buf, size_t cap);

#endif /* SP_CLUSTER_NATSCONN_H */

/*
 * natsconn.c - one way to connect to NATS (natsconn.h), so a node and a
 * remote pool accept the same URLs and authentication options.
 */
#include "natsconn.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "wire.h"

int64_t sp__nats_timeout(const sp_nats_opts_t *opts) {
  return opts && opts->timeout_ms > 0 ? opts->timeout_ms : SP__NATS_TIMEOUT_MS;
}

void sp__nats_url_shown(const char *url, char *buf, size_t cap) {
  const char *scheme = strstr(url, "://");
  const char *start = scheme ? scheme + 3 : url;
  const char *at = strchr(start, '@');
  const char *comma = strchr(start, ',');
  if (at == NULL || (comma && comma < at)) {
    snprintf(buf, cap, "%s", url);
    return;
  }
  snprintf(buf, cap, "%.*s***%s", (int)(start - url), url, at);
}

/* Lost and regained connections are worth a line in the log of a long-running process. */
static void on_disconnected(natsConnection *nc, void *ud) {
  if (natsConnection_IsClosed(nc)) return; /* closed on purpose */
  fprintf(stderr, "snakepit: NATS connection of %s lost; reconnecting\n", (const char *)ud);
}

static void on_reconnected(natsConnection *nc, void *ud) {
  char url[256] = "";
  natsConnection_GetConnectedUrl(nc, url, sizeof(url));
  fprintf(stderr, "snakepit: NATS connection of %s restored (%s)\n", (const char *)ud, url);
}

static int check_url(const char *url, sp_error_t *err) {
  /* nats.c takes anything and fails later with "no server available": name the
   * real problem (a typo in the scheme) instead. */
  if (url == NULL || *url == '\0')
    return sp_error_setf(err, SP_EINVAL, "no NATS URL given (expected nats://HOST:PORT)");
  const char *p = url;
  while (p != NULL && *p) {
    while (*p == ' ') p++;
    if (strncmp(p, "nats://", 7) != 0 && strncmp(p, "tls://", 6) != 0) {
      char shown[256];
      sp__nats_url_shown(url, shown, sizeof(shown));
      return sp_error_setf(err, SP_EINVAL,
                           "bad NATS URL '%s': expected nats://HOST:PORT or tls://HOST:PORT", shown);
    }
    p = strchr(p, ',');
    if (p) p++;
  }
  return 0;
}

/* The client certificate and key of opts (fields past an older caller's size read as NULL). */
static void client_cert(const sp_nats_opts_t *o, const char **cert, const char **key) {
  int has = o->size >= offsetof(sp_nats_opts_t, key_file) + sizeof(o->key_file);
  *cert = has ? o->cert_file : NULL;
  *key = has ? o->key_file : NULL;
}

/* Mutual TLS needs both files, readable; say which is missing before OpenSSL's terser words. */
static int check_client_cert(const char *cert, const char *key, sp_error_t *err) {
  if ((cert == NULL) != (key == NULL))
    return sp_error_setf(err, SP_EINVAL, "a NATS client certificate needs its key and the key its "
                         "certificate (--nats-cert with --nats-key, remote_cert with remote_key)");
  const char *files[] = {cert, key}, *what[] = {"client certificate", "client key"};
  for (int i = 0; i < 2 && cert != NULL; i++)
    if (access(files[i], R_OK) != 0)
      return sp_error_setf(err, SP_EINVAL, "NATS %s file '%s': %s", what[i], files[i], strerror(errno));
  return 0;
}

int sp__nats_connect(const sp_nats_opts_t *opts, const char *name, natsConnection **nc,
                     sp_error_t *err) {
  natsOptions *no = NULL;
  natsStatus s;
  char shown[256];
  *nc = NULL;
  if (opts == NULL) return sp_error_setf(err, SP_EINVAL, "no NATS options given");
  const char *cert = NULL, *key = NULL;
  client_cert(opts, &cert, &key);
  int rc = check_url(opts->url, err);
  if (rc == 0) rc = check_client_cert(cert, key, err);
  if (rc != 0) return rc;
  sp__nats_url_shown(opts->url, shown, sizeof(shown));
  s = natsOptions_Create(&no);
  if (s == NATS_OK) s = natsOptions_SetURL(no, opts->url);
  if (s == NATS_OK && opts->token) s = natsOptions_SetToken(no, opts->token);
  if (s == NATS_OK && opts->user) s = natsOptions_SetUserInfo(no, opts->user, opts->password);
  if (s == NATS_OK && opts->creds_file)
    s = natsOptions_SetUserCredentialsFromFiles(no, opts->creds_file, NULL);
  if (s == NATS_OK && opts->ca_file) {
    s = natsOptions_SetSecure(no, true);
    if (s == NATS_OK) s = natsOptions_LoadCATrustedCertificates(no, opts->ca_file);
  }
  if (s == NATS_OK && cert != NULL) {
    s = natsOptions_SetSecure(no, true);
    if (s == NATS_OK) s = natsOptions_LoadCertificatesChain(no, cert, key);
  }
  if (s != NATS_OK) {
    rc = sp__wire_nats_error(err, s, "NATS options for %s", shown);
    if (s == NATS_SSL_ERROR && err != NULL) { /* a CA, certificate or key file OpenSSL refused */
      char msg[1024];
      snprintf(msg, sizeof(msg), "%s", err->message);
      rc = sp_error_set(err, SP_EINVAL, msg, NULL, NULL);
    }
    goto done;
  }
  natsOptions_SetName(no, name);
  natsOptions_SetTimeout(no, sp__nats_timeout(opts));
  natsOptions_SetMaxReconnect(no, -1);
  natsOptions_SetReconnectWait(no, SP__NATS_RECONNECT_WAIT_MS);
  natsOptions_SetReconnectBufSize(no, SP__NATS_RECONNECT_BUF);
  /* A call is one request and one reply: nats.c would hold each publish up to
   * a millisecond to batch it with others, which doubles a no-op call's time. */
  natsOptions_SetSendAsap(no, true);
  /* Detect a dead server within a few seconds, not the default two minutes. */
  natsOptions_SetPingInterval(no, 2000);
  natsOptions_SetMaxPingsOut(no, 2);
  natsOptions_SetDisconnectedCB(no, on_disconnected, (void *)name);
  natsOptions_SetReconnectedCB(no, on_reconnected, (void *)name);
  s = natsConnection_Connect(nc, no);
  if (s != NATS_OK) {
    *nc = NULL;
    rc = sp__wire_nats_error(err, s, "cannot connect to NATS at %s", shown);
    if (rc == SP_ETIMEOUT && err != NULL) { /* not a call's timeout: the server is unreachable */
      char msg[1024];
      snprintf(msg, sizeof(msg), "%s", err->message);
      rc = sp_error_set(err, SP_EIO, msg, NULL, NULL);
    }
  }
done:
  natsOptions_Destroy(no);
  return rc;
}

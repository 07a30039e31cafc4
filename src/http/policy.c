/*
 * policy.c - what a request must satisfy before it is routed: unambiguous body
 * framing (no request smuggling), a Host that names this server when it listens
 * on loopback (no DNS rebinding), no cross-origin browser requests unless the
 * origin was allowed, and JSON bodies for calls (a browser can send text/plain
 * or a form to any address without asking first; it cannot send JSON).
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "http_internal.h"

/* ---- body framing ---------------------------------------------------------- */

typedef struct {
  unsigned content_length, transfer_encoding;
  const char *te;
  const char *cl;
} framing_t;

static enum MHD_Result count_framing(void *cls, enum MHD_ValueKind kind, const char *key,
                                     const char *value) {
  (void)kind;
  framing_t *f = cls;
  if (strcasecmp(key, "Content-Length") == 0) f->content_length++, f->cl = value;
  if (strcasecmp(key, "Transfer-Encoding") == 0) f->transfer_encoding++, f->te = value;
  return MHD_YES;
}

int sp__http_check_framing(struct MHD_Connection *c, char *msg, size_t len) {
  framing_t f = {0, 0, NULL, NULL};
  MHD_get_connection_values(c, MHD_HEADER_KIND, count_framing, &f);
  /* Two framings let a proxy in front and this server disagree on where the
   * request ends, and so on what the next request is. */
  if (f.content_length > 0 && f.transfer_encoding > 0)
    snprintf(msg, len,
             "both Content-Length and Transfer-Encoding given: the body's length is ambiguous");
  else if (f.content_length > 1)
    snprintf(msg, len, "%u Content-Length headers: the body's length is ambiguous",
             f.content_length);
  else if (f.cl != NULL && strchr(f.cl, ',') != NULL)
    snprintf(msg, len, "Content-Length '%.64s' lists several values", f.cl);
  else if (f.transfer_encoding > 1 || (f.te != NULL && strcasecmp(f.te, "chunked") != 0))
    snprintf(msg, len, "Transfer-Encoding '%.64s': only one header, 'chunked', is understood",
             f.te ? f.te : "");
  else
    return 0;
  return -1;
}

/* ---- origin ---------------------------------------------------------------- */

/* The host part of a Host header value or of an origin's authority (no port,
 * no brackets), into out; 0 if it does not fit. */
static int host_part(const char *v, char *out, size_t len) {
  const char *end;
  if (*v == '[') {
    v++;
    end = strchr(v, ']');
    if (end == NULL) return 0;
  } else {
    end = strchr(v, ':');
    if (end == NULL) end = v + strlen(v);
  }
  if ((size_t)(end - v) >= len) return 0;
  memcpy(out, v, (size_t)(end - v));
  out[end - v] = '\0';
  return 1;
}

static int loopback_name(const char *host) {
  if (strcasecmp(host, "localhost") == 0 || strcmp(host, "::1") == 0) return 1;
  if (strncmp(host, "127.", 4) != 0) return 0;
  for (const char *p = host + 4; *p; p++)
    if (!isdigit((unsigned char)*p) && *p != '.') return 0;
  return 1;
}

int sp__http_origin_allowed(const sp__http_t *s, const char *origin) {
  for (size_t i = 0; i < s->opts.n_allowed_origins; i++)
    if (strcasecmp(origin, s->opts.allowed_origins[i]) == 0) return 1;
  return 0;
}

/* Host of an allowed origin ("http://dev.local:3000" gives "dev.local"). */
static int allowed_host(const sp__http_t *s, const char *host) {
  char h[256];
  for (size_t i = 0; i < s->opts.n_allowed_origins; i++) {
    const char *o = strstr(s->opts.allowed_origins[i], "://");
    if (o && host_part(o + 3, h, sizeof(h)) && strcasecmp(h, host) == 0) return 1;
  }
  return 0;
}

int sp__http_check_origin(const sp__http_t *s, struct MHD_Connection *c, const char *method,
                          int dashboard, char *msg, size_t len) {
  const char *host = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Host");
  const char *origin = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Origin");
  const char *site = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Sec-Fetch-Site");
  /* On loopback, a page whose name was made to resolve to 127.0.0.1 (DNS
   * rebinding) is same-origin in the browser's eyes; its Host header still
   * carries the foreign name. */
  char h[256];
  if (s->opts.loopback && host != NULL &&
      (!host_part(host, h, sizeof(h)) || (!loopback_name(h) && !allowed_host(s, h)))) {
    snprintf(msg, len,
             "Host '%.100s' is not a loopback name; this server answers localhost, 127.0.0.1 "
             "and [::1] (or the hosts of --allow-origin)",
             host);
    return -1;
  }
  if (origin != NULL) {
    if (sp__http_origin_allowed(s, origin)) return 0;
    /* Same origin: the scheme is http and the authority is the Host. */
    if (host != NULL && strncasecmp(origin, "http://", 7) == 0 && strcasecmp(origin + 7, host) == 0)
      return 0;
    snprintf(msg, len, "cross-origin request from '%.100s' refused (allow it with --allow-origin)",
             origin);
    return -1;
  }
  /* No Origin: a browser still says where a request came from. Following a
   * link to the dashboard page is fine: the page holds no data. */
  if (site != NULL && (strcasecmp(site, "cross-site") == 0 || strcasecmp(site, "same-site") == 0)) {
    const char *mode = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Sec-Fetch-Mode");
    if (dashboard && mode != NULL && strcasecmp(mode, "navigate") == 0 &&
        strcmp(method, MHD_HTTP_METHOD_GET) == 0)
      return 0;
    snprintf(msg, len, "cross-site request refused (Sec-Fetch-Site: %.32s)", site);
    return -1;
  }
  return 0;
}

/* ---- content type ----------------------------------------------------------- */

int sp__http_check_json_type(struct MHD_Connection *c, char *msg, size_t len) {
  const char *ct = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Type");
  const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
  const char *te = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Transfer-Encoding");
  int has_body = te != NULL || (cl != NULL && strspn(cl, "0") != strlen(cl));
  if (ct == NULL) {
    if (!has_body) return 0; /* no arguments, nothing a browser form could carry */
    snprintf(msg, len,
             "a call's body must be sent with Content-Type: application/json (or "
             "multipart/form-data with array parts)");
    return -1;
  }
  size_t n = strcspn(ct, ";");
  while (n > 0 && (ct[n - 1] == ' ' || ct[n - 1] == '\t')) n--;
  if (n == 16 && strncasecmp(ct, "application/json", 16) == 0) return 0;
  snprintf(msg, len,
           "Content-Type '%.100s' is not accepted: a call's body must be application/json (or "
           "multipart/form-data with array parts)",
           ct);
  return -1;
}

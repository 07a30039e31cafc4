/*
 * listen.c - `--listen HOST:PORT` for `snakepit serve`: parse, resolve, bind and
 * listen, and say whether the address is a loopback one (anything else needs a
 * bearer token).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "http.h"

static int is_loopback(const struct sockaddr *sa) {
  if (sa->sa_family == AF_INET)
    return (ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr) >> 24) == 127;
  if (sa->sa_family == AF_INET6) {
    const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
    if (IN6_IS_ADDR_LOOPBACK(a)) return 1;
    /* ::ffff:127.x.y.z is IPv4 loopback seen through an IPv6 socket. */
    return IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127;
  }
  return 0;
}

/* Splits "host:port" / "[v6]:port" into its parts (host may come back empty). */
static int split(const char *spec, char *host, size_t hlen, char *port, size_t plen) {
  const char *colon;
  if (spec[0] == '[') {
    const char *close = strchr(spec, ']');
    if (close == NULL || close[1] != ':') return -1;
    if ((size_t)(close - spec - 1) >= hlen) return -1;
    memcpy(host, spec + 1, (size_t)(close - spec - 1));
    host[close - spec - 1] = '\0';
    colon = close + 1;
  } else {
    colon = strrchr(spec, ':');
    if (colon == NULL || (size_t)(colon - spec) >= hlen) return -1;
    memcpy(host, spec, (size_t)(colon - spec));
    host[colon - spec] = '\0';
    if (strchr(host, ':') != NULL) return -1; /* a bare IPv6 address needs brackets */
  }
  if (strlen(colon + 1) == 0 || strlen(colon + 1) >= plen) return -1;
  strcpy(port, colon + 1);
  for (const char *c = port; *c; c++)
    if (*c < '0' || *c > '9') return -1;
  return strtol(port, NULL, 10) <= 65535 ? 0 : -1; /* at most 15 digits: no overflow */
}

static void set_err(sp_error_t *err, int code, const char *fmt, const char *a, const char *b) {
  char msg[1024];
  snprintf(msg, sizeof(msg), fmt, a, b);
  sp_error_set(err, code, msg, NULL, NULL);
}

int sp__http_listen(const char *spec, int allow_public, int *fd_out, int *loopback, char *url,
                    size_t url_len, sp_error_t *err) {
  char host[256], port[16], msg[256];
  struct addrinfo hints, *res = NULL;
  int fd = -1, rc = SP_EINVAL;
  *fd_out = -1;
  if (split(spec, host, sizeof(host), port, sizeof(port)) != 0) {
    set_err(err, rc, "--listen '%s': expected HOST:PORT, [IPV6]:PORT or :PORT%s", spec, "");
    goto done;
  }
  memset(&hints, 0, sizeof(hints));
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  int gai = getaddrinfo(host[0] ? host : NULL, port, &hints, &res);
  if (gai != 0) {
    set_err(err, rc, "--listen '%s': %s", spec, gai_strerror(gai));
    goto done;
  }
  const struct addrinfo *ai = res;
  /* Checked before binding, so a refused address is never opened, not even briefly. */
  if (!allow_public && !is_loopback(ai->ai_addr)) {
    set_err(err, rc,
            "refusing to serve on non-loopback address %s without authentication: give "
            "--token-file FILE (or --insecure to serve anyway)%s",
            spec, "");
    goto done;
  }
  rc = SP_EIO;
  fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
  if (fd < 0) {
    set_err(err, rc, "--listen '%s': socket: %s", spec, strerror(errno));
    goto done;
  }
  /* Restarting the server must not wait for old connections in TIME_WAIT. */
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, SOMAXCONN) != 0) {
    set_err(err, rc, "cannot listen on %s: %s", spec, strerror(errno));
    goto done;
  }
  struct sockaddr_storage ss;
  socklen_t sl = sizeof(ss);
  if (getsockname(fd, (struct sockaddr *)&ss, &sl) != 0) {
    set_err(err, rc, "--listen '%s': getsockname: %s", spec, strerror(errno));
    goto done;
  }
  char addr[INET6_ADDRSTRLEN] = "?";
  int p = 0;
  if (ss.ss_family == AF_INET6) {
    inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, addr, sizeof(addr));
    p = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    snprintf(msg, sizeof(msg), "http://[%s]:%d", addr, p);
  } else {
    inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, addr, sizeof(addr));
    p = ntohs(((struct sockaddr_in *)&ss)->sin_port);
    snprintf(msg, sizeof(msg), "http://%s:%d", addr, p);
  }
  snprintf(url, url_len, "%s", msg);
  *loopback = is_loopback((struct sockaddr *)&ss);
  *fd_out = fd;
  fd = -1;
  rc = 0;
done:
  if (fd >= 0) close(fd);
  if (res) freeaddrinfo(res);
  return rc;
}

/*
 * multipart.c - multipart bodies over complete buffers: the server has the
 * whole request body (bounded by --max-body) before it parses it, and the
 * client the whole reply, so no incremental state is needed.
 */

#include "multipart.h"

#include <ctype.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#define MAX_PART_HEADERS 8192 /* bytes of headers one part may have */

static int fail(char *msg, size_t msglen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(char *msg, size_t msglen, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  if (msglen > 0) vsnprintf(msg, msglen, fmt, ap);
  va_end(ap);
  return -1;
}

/* Boundary characters of RFC 2046 (bchars), space only inside. */
static int bchar(int c) { return isalnum(c) || strchr("'()+_,-./:=? ", c) != NULL; }

/*
 * Reads one `; key=value` parameter at *p (value a token or a quoted string
 * with backslash escapes). Returns 1 with key and value filled, 0 at the end,
 * -1 when malformed.
 */
static int next_param(const char **p, char *key, size_t klen, char *val, size_t vlen) {
  const char *s = *p;
  while (*s == ' ' || *s == '\t') s++;
  if (*s == '\0') return 0;
  if (*s != ';') return -1;
  s++;
  while (*s == ' ' || *s == '\t') s++;
  size_t k = 0;
  while (*s && *s != '=' && *s != ';' && *s != ' ') {
    if (k + 1 >= klen) return -1;
    key[k++] = (char)tolower((unsigned char)*s++);
  }
  key[k] = '\0';
  while (*s == ' ') s++;
  if (*s != '=') return -1;
  s++;
  while (*s == ' ') s++;
  size_t v = 0;
  if (*s == '"') {
    for (s++; *s && *s != '"'; s++) {
      if (*s == '\\' && s[1]) s++;
      if (v + 1 >= vlen) return -1;
      val[v++] = *s;
    }
    if (*s != '"') return -1;
    s++;
  } else {
    while (*s && *s != ';' && *s != ' ' && *s != '\t') {
      if (v + 1 >= vlen) return -1;
      val[v++] = *s++;
    }
  }
  val[v] = '\0';
  *p = s;
  return 1;
}

/* Copies the media type of a Content-Type value, lower case, without parameters. */
static const char *media_type(const char *value, char *out, size_t outlen) {
  while (*value == ' ' || *value == '\t') value++;
  size_t n = 0;
  while (*value && *value != ';' && *value != ' ' && *value != '\t' && n + 1 < outlen)
    out[n++] = (char)tolower((unsigned char)*value++);
  out[n] = '\0';
  while (*value && *value != ';') value++;
  return value;
}

int sp__multipart_content_type(const char *value, char subtype[32],
                               char boundary[SP__MULTIPART_BOUNDARY_MAX + 1], char *msg,
                               size_t msglen) {
  char type[128], key[32], val[128];
  const char *p = media_type(value ? value : "", type, sizeof(type));
  if (strncmp(type, "multipart/", 10) != 0 || strlen(type + 10) >= 32)
    return fail(msg, msglen, "Content-Type '%.100s' is not multipart", value ? value : "");
  strcpy(subtype, type + 10);
  boundary[0] = '\0';
  int rc;
  while ((rc = next_param(&p, key, sizeof(key), val, sizeof(val))) == 1) {
    if (strcmp(key, "boundary") != 0) continue;
    size_t n = strlen(val);
    int ok = n >= 1 && n <= SP__MULTIPART_BOUNDARY_MAX && val[n - 1] != ' ';
    for (size_t i = 0; ok && i < n; i++) ok = bchar((unsigned char)val[i]);
    if (!ok)
      return fail(msg, msglen,
                  "multipart boundary '%.80s' is not valid (1 to 70 characters of "
                  "RFC 2046's set)",
                  val);
    strcpy(boundary, val);
  }
  if (rc < 0) return fail(msg, msglen, "malformed parameters in Content-Type '%.100s'", value);
  if (boundary[0] == '\0')
    return fail(msg, msglen, "Content-Type '%.100s' has no boundary parameter", value);
  return 0;
}

/* Fills a part from its header block [h, end) (CRLF-separated lines). */
static int part_headers(sp__part_t *pt, const char *h, const char *end, size_t index, char *msg,
                        size_t msglen) {
  char line[MAX_PART_HEADERS + 1];
  while (h < end) {
    const char *eol = memmem(h, (size_t)(end - h), "\r\n", 2);
    if (eol == NULL) eol = end;
    size_t n = (size_t)(eol - h);
    memcpy(line, h, n);
    line[n] = '\0';
    h = eol + 2;
    char *colon = strchr(line, ':');
    if (colon == NULL)
      return fail(msg, msglen, "multipart part %zu: header line without ':' ('%.80s')", index,
                  line);
    *colon = '\0';
    const char *value = colon + 1;
    if (strcasecmp(line, "Content-Type") == 0) {
      media_type(value, pt->ctype, sizeof(pt->ctype));
    } else if (strcasecmp(line, "Content-Disposition") == 0) {
      char disp[64], key[32], val[256];
      const char *p = media_type(value, disp, sizeof(disp));
      int rc;
      while ((rc = next_param(&p, key, sizeof(key), val, sizeof(val))) == 1) {
        if (strcmp(key, "name") == 0) strcpy(pt->name, val);
        if (strcmp(key, "filename") == 0) strcpy(pt->filename, val);
      }
      if (rc < 0)
        return fail(msg, msglen,
                    "multipart part %zu: malformed Content-Disposition (or a name over 255 bytes)",
                    index);
    }
  }
  return 0;
}

int sp__multipart_parse(char *body, size_t len, const char *boundary, sp__part_t **parts,
                        size_t *count, char *msg, size_t msglen) {
  char delim[SP__MULTIPART_BOUNDARY_MAX + 5];
  int dl = snprintf(delim, sizeof(delim), "\r\n--%s", boundary);
  *parts = NULL;
  *count = 0;
  /* The first delimiter may open the body without the CRLF before it. */
  char *p;
  if (len >= (size_t)dl - 2 && memcmp(body, delim + 2, (size_t)dl - 2) == 0) {
    p = body + dl - 2;
  } else {
    p = memmem(body, len, delim, (size_t)dl);
    if (p == NULL)
      return fail(msg, msglen, "multipart body without its boundary '--%.70s'", boundary);
    p += dl;
  }
  char *end = body + len;
  sp__part_t *list = NULL;
  size_t n = 0;
  for (;;) {
    /* After a delimiter: "--" closes the body, else optional padding and CRLF. */
    if (end - p >= 2 && p[0] == '-' && p[1] == '-') break;
    while (p < end && (*p == ' ' || *p == '\t')) p++;
    if (end - p < 2 || p[0] != '\r' || p[1] != '\n') {
      free(list);
      return fail(msg, msglen, "multipart part %zu: delimiter not followed by CRLF", n + 1);
    }
    p += 2;
    if (n == SP__MULTIPART_MAX_PARTS) {
      free(list);
      return fail(msg, msglen, "more than %d multipart parts", SP__MULTIPART_MAX_PARTS);
    }
    char *hend = (end - p >= 2 && p[0] == '\r' && p[1] == '\n')
                     ? p
                     : memmem(p, (size_t)(end - p), "\r\n\r\n", 4);
    if (hend == NULL || hend - p > MAX_PART_HEADERS) {
      free(list);
      return fail(msg, msglen, "multipart part %zu: %s", n + 1,
                  hend ? "headers over 8 KiB" : "headers not ended by an empty line");
    }
    char *data = hend == p ? p + 2 : hend + 4;
    char *next = memmem(data, (size_t)(end - data), delim, (size_t)dl);
    if (next == NULL) {
      free(list);
      return fail(msg, msglen, "multipart part %zu: no delimiter after its data (truncated body?)",
                  n + 1);
    }
    sp__part_t *grown = realloc(list, (n + 1) * sizeof(*list));
    if (grown == NULL) {
      free(list);
      return fail(msg, msglen, "out of memory parsing a multipart body");
    }
    list = grown;
    sp__part_t *pt = &list[n++];
    memset(pt, 0, sizeof(*pt));
    pt->data = data;
    pt->len = (size_t)(next - data);
    if (part_headers(pt, p, hend, n, msg, msglen) != 0) {
      free(list);
      return -1;
    }
    p = next + dl;
  }
  *parts = list;
  *count = n;
  return 0;
}

void sp__multipart_new_boundary(char boundary[SP__MULTIPART_BOUNDARY_MAX + 1]) {
  uint8_t r[16];
  if (getrandom(r, sizeof(r), GRND_NONBLOCK) != (ssize_t)sizeof(r)) {
    /* No entropy yet (early boot): the clock and a counter keep it unique
     * enough for a boundary, which only has to miss the data it frames. */
    static _Atomic uint64_t counter;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t a = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 30),
             b = ++counter ^ (uint64_t)getpid();
    memcpy(r, &a, 8);
    memcpy(r + 8, &b, 8);
  }
  int n = snprintf(boundary, SP__MULTIPART_BOUNDARY_MAX + 1, "snakepit-");
  for (size_t i = 0; i < sizeof(r); i++)
    n += snprintf(boundary + n, SP__MULTIPART_BOUNDARY_MAX + 1 - (size_t)n, "%02x", r[i]);
}

int sp__multipart_part_begin(sp__buf_t *b, const char *boundary, const char *name,
                             const char *filename, const char *ctype) {
  char head[1024];
  /* Quotes and line breaks cannot be escaped portably in these headers (RFC
   * 7578 4.2): names are argument and result paths, so they never need them;
   * anything else is replaced rather than let through. */
  char safe_name[256], safe_file[256];
  const char *src[2] = {name, filename ? filename : ""};
  char *dst[2] = {safe_name, safe_file};
  for (int k = 0; k < 2; k++) {
    size_t i = 0;
    for (; src[k][i] && i + 1 < sizeof(safe_name); i++)
      dst[k][i] = (src[k][i] == '"' || src[k][i] == '\r' || src[k][i] == '\n') ? '_' : src[k][i];
    dst[k][i] = '\0';
  }
  int n = snprintf(head, sizeof(head),
                   "--%s\r\nContent-Disposition: form-data; name=\"%s\"%s%s%s\r\n"
                   "Content-Type: %s\r\n\r\n",
                   boundary, safe_name, filename ? "; filename=\"" : "", filename ? safe_file : "",
                   filename ? "\"" : "", ctype);
  return sp__buf_append(b, head, (size_t)n);
}

int sp__multipart_part_end(sp__buf_t *b) { return sp__buf_append(b, "\r\n", 2); }

int sp__multipart_finish(sp__buf_t *b, const char *boundary) {
  char tail[SP__MULTIPART_BOUNDARY_MAX + 8];
  int n = snprintf(tail, sizeof(tail), "--%s--\r\n", boundary);
  return sp__buf_append(b, tail, (size_t)n);
}

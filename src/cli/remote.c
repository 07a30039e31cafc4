/*
 * remote.c - exec/tools/stats/pools against a running `snakepit serve` (--url)
 * instead of starting pools: same output and exit codes as the local commands.
 *
 * The HTTP client is libcurl (Debian's libcurl4-openssl-dev) rather than a
 * hand-written one: it already gets right what a small client tends to get
 * wrong (chunked and keep-alive responses, IPv6 literals, proxies from the
 * environment, https:// to a TLS-terminating proxy in front of the server) and
 * it gives precise connection error messages, for one well-kept dependency.
 */
#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "buf.h"
#include "cli.h"
#include "multipart.h"
#include "npy.h"

typedef sp__buf_t buf_t;

/* A response body as text: buf_append_str keeps it NUL-terminated. */
#define TEXT(b) ((char *)(b).data)

typedef struct {
  CURL *curl;
  const char *base; /* without a trailing slash */
  size_t base_len;
  char auth[4200]; /* "Authorization: Bearer ..." or "" */
  long timeout_ms;
  const char *query; /* appended to the next URL, e.g. "?thread_safety=1", or NULL */
  int json;          /* --json */
  /* The body writer of the next request and its argument: on_data (into the
   * out buffer) unless exec --stream sets its own. */
  size_t (*writer)(char *, size_t, size_t, void *);
  void *writer_ud;
  const char *method; /* DELETE, or NULL: GET, or POST with a body */
  const char *session, *session_mode; /* exec --session, --session-mode (checked), or NULL */
} client_t;

static size_t on_data(char *ptr, size_t size, size_t n, void *ud) {
  buf_t *b = ud;
  size_t add = size * n;
  /* 0 makes curl fail with CURLE_WRITE_ERROR. */
  return sp__buf_append_str(b, ptr, add) == 0 ? add : 0;
}

/* The token comes from the environment (SNAKEPIT_TOKEN, or a file named by
 * SNAKEPIT_TOKEN_FILE), never from the command line, where `ps` shows it. */
static int load_token(client_t *c) {
  const char *tok = getenv("SNAKEPIT_TOKEN");
  char buf[4097];
  const char *path = getenv("SNAKEPIT_TOKEN_FILE");
  if ((tok == NULL || *tok == '\0') && path != NULL && *path != '\0') {
    FILE *f = fopen(path, "r");
    if (f == NULL) {
      fprintf(stderr, "snakepit: cannot read SNAKEPIT_TOKEN_FILE %s: %s\n", path, strerror(errno));
      return -1;
    }
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' '))
      buf[--n] = '\0';
    tok = buf;
  }
  c->auth[0] = '\0';
  if (tok != NULL && *tok != '\0')
    snprintf(c->auth, sizeof(c->auth), "Authorization: Bearer %s", tok);
  return 0;
}

/* Appends a URL-escaped path segment. */
static int add_segment(CURL *curl, char *url, size_t len, const char *seg) {
  char *esc = curl_easy_escape(curl, seg, 0);
  if (esc == NULL) return -1;
  size_t used = strlen(url);
  int n = snprintf(url + used, len - used, "/%s", esc);
  curl_free(esc);
  return n < 0 || (size_t)n >= len - used ? -1 : 0;
}

/* A request body: len bytes of ctype. */
typedef struct {
  const char *data;
  size_t len;
  const char *ctype;
} body_t;

/* One request; *status is the HTTP status, or 0 when the server could not be reached. */
/* POSTs body when it is non-NULL, else GETs. accept NULL means application/json. */
static int request(client_t *c, const char *path_segs[], size_t nseg, const body_t *body,
                   const char *accept, buf_t *out, long *status) {
  char url[2048];
  snprintf(url, sizeof(url), "%.*s/v1/pools", (int)c->base_len, c->base);
  for (size_t i = 0; i < nseg; i++)
    if (add_segment(c->curl, url, sizeof(url), path_segs[i]) != 0) {
      fprintf(stderr, "snakepit: URL too long\n");
      return SP_EXIT_USAGE;
    }
  if (c->query != NULL) strncat(url, c->query, sizeof(url) - strlen(url) - 1);
  struct curl_slist *hdrs = NULL;
  char timeout_hdr[64];
  char accept_hdr[160], ctype_hdr[160];
  snprintf(accept_hdr, sizeof(accept_hdr), "Accept: %s", accept ? accept : "application/json");
  hdrs = curl_slist_append(hdrs, accept_hdr);
  if (body) {
    snprintf(ctype_hdr, sizeof(ctype_hdr), "Content-Type: %s", body->ctype);
    hdrs = curl_slist_append(hdrs, ctype_hdr);
  }
  /* No "Expect: 100-continue" round trip for large arguments. */
  if (body) hdrs = curl_slist_append(hdrs, "Expect:");
  if (c->auth[0]) hdrs = curl_slist_append(hdrs, c->auth);
  if (c->timeout_ms > 0) {
    snprintf(timeout_hdr, sizeof(timeout_hdr), "X-Timeout-Ms: %ld", c->timeout_ms);
    hdrs = curl_slist_append(hdrs, timeout_hdr);
  }
  /* Checked (sp_session_check): no control character can end the header early. */
  char session_hdr[64 + SP_SESSION_ID_MAX], mode_hdr[64];
  if (c->session != NULL) {
    snprintf(session_hdr, sizeof(session_hdr), "X-Snakepit-Session: %s", c->session);
    hdrs = curl_slist_append(hdrs, session_hdr);
  }
  if (c->session_mode != NULL) {
    snprintf(mode_hdr, sizeof(mode_hdr), "X-Snakepit-Session-Mode: %.32s", c->session_mode);
    hdrs = curl_slist_append(hdrs, mode_hdr);
  }
  curl_easy_setopt(c->curl, CURLOPT_CUSTOMREQUEST, c->method);
  curl_easy_setopt(c->curl, CURLOPT_URL, url);
  curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, hdrs);
  curl_easy_setopt(c->curl, CURLOPT_WRITEFUNCTION, c->writer ? c->writer : on_data);
  curl_easy_setopt(c->curl, CURLOPT_WRITEDATA, c->writer ? c->writer_ud : out);
  curl_easy_setopt(c->curl, CURLOPT_NOSIGNAL, 1L);
  /* A proxy from the environment cannot reach this machine's loopback server. */
  curl_easy_setopt(c->curl, CURLOPT_NOPROXY, "localhost,127.0.0.1,::1");
  curl_easy_setopt(c->curl, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
  /* The server enforces the call's deadline; this only guards against a server
   * that stopped answering, so it leaves the server time to say "timeout". */
  curl_easy_setopt(c->curl, CURLOPT_TIMEOUT_MS, c->timeout_ms > 0 ? c->timeout_ms + 10000 : 0L);
  if (body) {
    curl_easy_setopt(c->curl, CURLOPT_POSTFIELDS, body->data);
    curl_easy_setopt(c->curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body->len);
  } else {
    curl_easy_setopt(c->curl, CURLOPT_HTTPGET, 1L);
  }
  CURLcode cc = curl_easy_perform(c->curl);
  curl_slist_free_all(hdrs);
  *status = 0;
  if (cc != CURLE_OK) {
    fprintf(stderr, "snakepit: cannot reach %s: %s\n", c->base, curl_easy_strerror(cc));
    return SP_EXIT_CONFIG;
  }
  curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, status);
  return -1;
}

/* SP_E* value of a code name ("SP_ETIMEOUT"), or 0 if it names none. */
static int code_of(const char *name) {
#define SP__CODE_LOOKUP(n, value, cat, desc) \
  if (strcmp(name, "SP_E" #n) == 0) return value;
  SP_ERRNO_MAP(SP__CODE_LOOKUP)
#undef SP__CODE_LOOKUP
  return 0;
}

/* Prints the server's error object e ({code, message, ...}, NULL if the answer
 * had none; raw is the answer's text) the way the local commands print
 * errors; returns the exit code. */
static int report_error_object(long status, json_t *e, const char *raw) {
  const char *code = json_string_value(json_object_get(e, "code"));
  int rc;
  if (code != NULL && code_of(code) != 0) {
    sp_error_t err;
    sp_error_set(&err, code_of(code), json_string_value(json_object_get(e, "message")),
                 json_string_value(json_object_get(e, "python_type")),
                 json_string_value(json_object_get(e, "traceback")));
    rc = sp_cli_report(&err);
  } else if (code != NULL) {
    /* The server's own refusals (token, endpoint, body size): a problem with
     * how it was reached rather than with the call. */
    const char *msg = json_string_value(json_object_get(e, "message"));
    fprintf(stderr, "snakepit: http error %ld (%s): %s\n", status, code, msg ? msg : "");
    rc = status == 413 ? SP_EXIT_INVALID : SP_EXIT_CONFIG;
  } else {
    fprintf(stderr, "snakepit: unexpected HTTP %ld answer: %.300s\n", status,
            raw ? raw : "(empty)");
    rc = status >= 500 ? SP_EXIT_WORKER : SP_EXIT_CONFIG;
  }
  return rc;
}

/* Prints a non-2xx answer the way the local commands print errors; returns the exit code. */
static int report_http_error(long status, const buf_t *b) {
  json_t *doc = TEXT(*b) ? json_loads(TEXT(*b), 0, NULL) : NULL;
  int rc = report_error_object(status, json_object_get(doc, "error"), TEXT(*b));
  json_decref(doc);
  return rc;
}

/* GETs /v1/pools[/segs...] into *b; returns -1 on a 2xx, else the exit code. */
static int get(client_t *c, const char *segs[], size_t n, buf_t *b) {
  long status = 0;
  int rc = request(c, segs, n, NULL, NULL, b, &status);
  if (rc >= 0) return rc;
  return status >= 200 && status < 300 ? -1 : report_http_error(status, b);
}

static char *read_stdin(void) {
  buf_t b = {0};
  char chunk[65536];
  size_t n;
  while ((n = fread(chunk, 1, sizeof(chunk), stdin)) > 0)
    if (on_data(chunk, 1, n, &b) != n) {
      sp__buf_free(&b);
      return NULL;
    }
  return TEXT(b) ? TEXT(b) : strdup("");
}

/* The multipart/form-data body of a call with arrays: the JSON arguments as
 * part "args", then each --array file as it is (the server checks it and names
 * the part in its errors). Returns -1 to go on, else the exit code. */
static int call_body(const sp_cli_opts_t *o, const char *args, buf_t *b, char *ctype,
                     size_t ctlen) {
  char boundary[SP__MULTIPART_BOUNDARY_MAX + 1];
  sp__multipart_new_boundary(boundary);
  int bad = sp__multipart_part_begin(b, boundary, "args", NULL, "application/json") ||
            sp__buf_append(b, args, strlen(args)) || sp__multipart_part_end(b);
  for (int i = 0; i < o->array_count && !bad; i++) {
    const char *spec = o->arrays[i], *path = strchr(spec, '=') + 1;
    const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    char name[256];
    snprintf(name, sizeof(name), "%.*s", (int)(path - 1 - spec), spec);
    char *data = NULL;
    size_t len = 0;
    if (sp_cli_read_file(path, &data, &len) != 0) {
      fprintf(stderr, "snakepit: --array %s: cannot read %s: %s\n", name, path, strerror(errno));
      return SP_EXIT_USAGE;
    }
    bad = sp__multipart_part_begin(b, boundary, name, base, "application/octet-stream") ||
          sp__buf_append(b, data, len) || sp__multipart_part_end(b);
    free(data);
  }
  if (bad || sp__multipart_finish(b, boundary) != 0) {
    fprintf(stderr, "snakepit: out of memory building the request\n");
    return SP_EXIT_WORKER;
  }
  snprintf(ctype, ctlen, "multipart/form-data; boundary=%s", boundary);
  return -1;
}

/* Prints a 200 answer: JSON, or a multipart result whose .npy parts go to
 * --out like the local command's arrays. */
static int print_reply(client_t *c, const sp_cli_opts_t *o, buf_t *b) {
  char *ct = NULL;
  curl_easy_getinfo(c->curl, CURLINFO_CONTENT_TYPE, &ct);
  if (ct == NULL || strncasecmp(ct, "multipart/", 10) != 0) {
    sp_cli_print_json(TEXT(*b) ? TEXT(*b) : "null");
    return SP_EXIT_OK;
  }
  char subtype[32], boundary[SP__MULTIPART_BOUNDARY_MAX + 1], msg[600] = "";
  sp__part_t *parts = NULL;
  size_t n = 0;
  sp_array_t *arrays = NULL;
  sp_npy_t *npy = NULL;
  char *json = NULL;
  int rc = SP_EXIT_WORKER;
  if (sp__multipart_content_type(ct, subtype, boundary, msg, sizeof(msg)) != 0 ||
      sp__multipart_parse(TEXT(*b) ? TEXT(*b) : "", b->len, boundary, &parts, &n, msg,
                          sizeof(msg)) != 0)
    goto done;
  if (n == 0 || strcmp(parts[0].name, "result") != 0) {
    snprintf(msg, sizeof(msg), "its first part is not 'result'");
    goto done;
  }
  arrays = calloc(n, sizeof(*arrays));
  npy = calloc(n, sizeof(*npy));
  json = strndup(parts[0].data, parts[0].len);
  if (arrays == NULL || npy == NULL || json == NULL) {
    snprintf(msg, sizeof(msg), "out of memory");
    goto done;
  }
  for (size_t i = 1; i < n; i++) {
    char why[256];
    if (sp_npy_parse(parts[i].data, parts[i].len, &npy[i], why, sizeof(why)) != 0 ||
        npy[i].fortran_order) {
      snprintf(msg, sizeof(msg), "part '%s': %s", parts[i].name,
               npy[i].fortran_order ? "Fortran order" : why);
      goto done;
    }
    arrays[i - 1] = (sp_array_t){.name = parts[i].name,
                                 .dtype = npy[i].dtype,
                                 .ndim = npy[i].ndim,
                                 .shape = npy[i].shape,
                                 .data = npy[i].data,
                                 .nbytes = npy[i].nbytes};
  }
  rc = sp_cli_print_result(json, arrays, n - 1, o->out_dir);
done:
  if (rc == SP_EXIT_WORKER && msg[0])
    fprintf(stderr, "snakepit: the server's multipart reply is malformed: %s\n", msg);
  free(json);
  free(npy);
  free(arrays);
  free(parts);
  return rc;
}

/*
 * exec --stream: the server's NDJSON stream (docs/http.md), one chunk per
 * line, printed the moment its line is complete; the final line is
 * {"$done": ...} or {"$error": {...}}. An answer other than 200 (refused
 * before the stream started) is collected whole into `other` and reported
 * like any error reply.
 */
typedef struct {
  CURL *curl;
  buf_t line;  /* the incomplete line so far */
  buf_t other; /* a non-200 answer */
  int ended;   /* the final event arrived */
  int rc;      /* the exit code it gave */
} ndjson_t;

/* One complete line of the stream; returns 0, or -1 to stop the transfer. */
static int ndjson_line(ndjson_t *st, char *line, size_t len) {
  static const char done_key[] = "{\"$done\":", error_key[] = "{\"$error\":";
  if (st->ended) return -1; /* nothing may follow the final event */
  if (len >= sizeof(done_key) - 1 && memcmp(line, done_key, sizeof(done_key) - 1) == 0) {
    st->ended = 1;
    st->rc = SP_EXIT_OK;
    return 0;
  }
  if (len >= sizeof(error_key) - 1 && memcmp(line, error_key, sizeof(error_key) - 1) == 0) {
    json_t *doc = json_loadb(line, len, 0, NULL);
    fflush(stdout);
    st->ended = 1;
    st->rc = report_error_object(200, json_object_get(doc, "$error"), line);
    json_decref(doc);
    return 0;
  }
  fwrite(line, 1, len, stdout);
  fputc('\n', stdout);
  return fflush(stdout) == 0 ? 0 : -1; /* stdout gone (EPIPE): hang up, which cancels */
}

static size_t on_ndjson(char *ptr, size_t size, size_t n, void *ud) {
  ndjson_t *st = ud;
  size_t add = size * n;
  long status = 0;
  curl_easy_getinfo(st->curl, CURLINFO_RESPONSE_CODE, &status);
  if (status != 200) return on_data(ptr, size, n, &st->other);
  if (sp__buf_append_str(&st->line, ptr, add) != 0) return 0;
  char *start = (char *)st->line.data, *end = start + st->line.len, *nl;
  while ((nl = memchr(start, '\n', (size_t)(end - start))) != NULL) {
    if (nl > start && ndjson_line(st, start, (size_t)(nl - start)) != 0) return 0;
    start = nl + 1;
  }
  size_t rest = (size_t)(end - start);
  memmove(st->line.data, start, rest);
  st->line.len = rest;
  st->line.data[rest] = '\0';
  return add;
}

static int exec_ndjson(client_t *c, const char *segs[], const body_t *body) {
  ndjson_t st = {.curl = c->curl, .rc = SP_EXIT_WORKER};
  buf_t unused = {0};
  long status = 0;
  c->writer = on_ndjson;
  c->writer_ud = &st;
  int rc = request(c, segs, 3, body, "application/x-ndjson", &unused, &status);
  c->writer = NULL;
  if (rc < 0 && status != 200) rc = report_http_error(status, &st.other);
  if (rc < 0 && st.ended) rc = st.rc;
  if (rc < 0) {
    fprintf(stderr, "snakepit: the server's stream ended without its final event\n");
    rc = SP_EXIT_WORKER;
  }
  sp__buf_free(&st.line);
  sp__buf_free(&st.other);
  sp__buf_free(&unused);
  return rc;
}

static int cmd_exec(client_t *c, const sp_cli_opts_t *o, int argc, char **argv) {
  if (argc < 3 || argc > 4) {
    fprintf(stderr, "snakepit: exec needs POOL TOOL [JSON]\n");
    return SP_EXIT_USAGE;
  }
  char *owned = NULL;
  const char *args = argc == 4 ? argv[3] : "{}";
  if (strcmp(args, "-") == 0) {
    if ((owned = read_stdin()) == NULL) {
      fprintf(stderr, "snakepit: cannot read arguments from stdin: %s\n", strerror(errno));
      return SP_EXIT_USAGE;
    }
    args = owned;
  }
  const char *segs[] = {argv[1], "tools", argv[2]};
  buf_t b = {0}, req = {0};
  char ctype[160] = "application/json";
  body_t body = {args, strlen(args), ctype};
  long status = 0;
  int rc = o->array_count > 0 ? call_body(o, args, &req, ctype, sizeof(ctype)) : -1;
  if (rc < 0 && o->array_count > 0) body = (body_t){(const char *)req.data, req.len, ctype};
  /* Arrays come back as .npy parts only when there is a directory for them;
   * errors are JSON either way. */
  if (rc < 0 && o->stream)
    rc = exec_ndjson(c, segs, &body);
  else if (rc < 0)
    rc = request(c, segs, 3, &body,
                 o->out_dir ? "multipart/form-data, application/json" : "application/json", &b,
                 &status);
  if (rc < 0) rc = status == 200 ? print_reply(c, o, &b) : report_http_error(status, &b);
  sp__buf_free(&b);
  sp__buf_free(&req);
  free(owned);
  return rc;
}

static int cmd_get(client_t *c, const char *cmd, int argc, char **argv) {
  if (argc > 2 || (argc > 1 && strcmp(cmd, "pools") == 0)) {
    fprintf(stderr, "snakepit: %s takes %s\n", cmd,
            strcmp(cmd, "pools") ? "at most one POOL" : "no arguments");
    return SP_EXIT_USAGE;
  }
  buf_t b = {0};
  int rc;
  if (strcmp(cmd, "stats") == 0) {
    const char *segs[] = {argc == 2 ? argv[1] : NULL};
    c->query = "?thread_safety=1"; /* like the local command: the checker's report too */
    rc = get(c, segs, argc == 2 ? 1 : 0, &b);
    c->query = NULL;
    if (rc < 0) {
      sp_cli_print_stats(c->json, TEXT(b));
      rc = SP_EXIT_OK;
    }
    sp__buf_free(&b);
    return rc;
  }
  if (strcmp(cmd, "tools") == 0 && argc == 2) {
    const char *segs[] = {argv[1], "tools"};
    if ((rc = get(c, segs, 2, &b)) < 0) {
      sp_cli_print_json(TEXT(b));
      rc = SP_EXIT_OK;
    }
    sp__buf_free(&b);
    return rc;
  }
  /* pools, and tools of every pool: both start from the list of pools. */
  if ((rc = get(c, NULL, 0, &b)) >= 0) {
    sp__buf_free(&b);
    return rc;
  }
  json_t *doc = json_loads(TEXT(b), 0, NULL);
  sp__buf_free(&b);
  json_t *out = strcmp(cmd, "pools") == 0 ? json_array() : json_object();
  json_t *p;
  size_t i;
  rc = SP_EXIT_OK;
  json_array_foreach(json_object_get(doc, "pools"), i, p) {
    const char *name = json_string_value(json_object_get(p, "name"));
    if (name == NULL) continue;
    if (json_is_array(out)) {
      json_array_append_new(out, json_string(name));
      continue;
    }
    buf_t tb = {0};
    const char *segs[] = {name, "tools"};
    if ((rc = get(c, segs, 2, &tb)) >= 0) break;
    rc = SP_EXIT_OK;
    json_object_set_new(out, name, json_loads(TEXT(tb), 0, NULL));
    sp__buf_free(&tb);
  }
  if (rc == SP_EXIT_OK) {
    char *s = json_dumps(out, JSON_INDENT(2));
    puts(s ? s : "null");
    free(s);
  }
  json_decref(out);
  json_decref(doc);
  return rc;
}

/* Sets up a client for url; returns -1, or an exit code (printed). */
static int client_open(client_t *c, const char *url, long timeout_ms) {
  *c = (client_t){.base = url, .timeout_ms = timeout_ms};
  if (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0) {
    fprintf(stderr, "snakepit: --url must start with http:// or https://, got '%s'\n", url);
    return SP_EXIT_USAGE;
  }
  c->base_len = strlen(url);
  while (c->base_len > 0 && url[c->base_len - 1] == '/') c->base_len--;
  if (load_token(c) != 0) return SP_EXIT_USAGE;
  if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0 || (c->curl = curl_easy_init()) == NULL) {
    fprintf(stderr, "snakepit: cannot initialise libcurl\n");
    return SP_EXIT_WORKER;
  }
  return -1;
}

static void client_close(client_t *c) {
  curl_easy_cleanup(c->curl);
  curl_global_cleanup();
}

int sp_cli_remote(const sp_cli_opts_t *o, int argc, char **argv) {
  client_t c;
  int rc = client_open(&c, o->url, o->timeout_ms);
  if (rc >= 0) return rc;
  c.json = o->json;
  c.session = o->session;
  c.session_mode = o->session_mode;
  rc = strcmp(argv[0], "exec") == 0 ? cmd_exec(&c, o, argc, argv) : cmd_get(&c, argv[0], argc, argv);
  client_close(&c);
  return rc;
}

int sp_cli_remote_session_end(const sp_cli_opts_t *o, const char *pool, const char *id) {
  client_t c;
  buf_t b = {0};
  int rc = client_open(&c, o->url, o->timeout_ms);
  if (rc >= 0) return rc;
  const char *segs[] = {pool, "sessions", id};
  long status = 0;
  c.method = "DELETE";
  rc = request(&c, segs, 3, NULL, NULL, &b, &status);
  if (rc < 0 && status >= 200 && status < 300) {
    sp_cli_print_json(TEXT(b));
    rc = SP_EXIT_OK;
  } else if (rc < 0) {
    rc = report_http_error(status, &b);
  }
  sp__buf_free(&b);
  client_close(&c);
  return rc;
}

int sp_cli_remote_stats(const sp_cli_opts_t *o, const char *pool, char **json) {
  client_t c;
  buf_t b = {0};
  *json = NULL;
  int rc = client_open(&c, o->url, o->timeout_ms);
  if (rc >= 0) return rc;
  const char *segs[] = {pool};
  if ((rc = get(&c, segs, pool ? 1 : 0, &b)) < 0) {
    *json = TEXT(b);
    b.data = NULL;
  }
  sp__buf_free(&b);
  client_close(&c);
  return rc;
}

int sp_cli_server_answers(const char *url) {
  client_t c;
  if (client_open(&c, url, 0) >= 0) return 0;
  char probe[512];
  buf_t b = {0};
  snprintf(probe, sizeof(probe), "%.*s/healthz", (int)c.base_len, c.base);
  curl_easy_setopt(c.curl, CURLOPT_URL, probe);
  curl_easy_setopt(c.curl, CURLOPT_WRITEFUNCTION, on_data);
  curl_easy_setopt(c.curl, CURLOPT_WRITEDATA, &b);
  curl_easy_setopt(c.curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c.curl, CURLOPT_NOPROXY, "localhost,127.0.0.1,::1");
  /* Loopback answers in microseconds; nobody listening is refused at once. */
  curl_easy_setopt(c.curl, CURLOPT_TIMEOUT_MS, 500L);
  long status = 0;
  int ok = curl_easy_perform(c.curl) == CURLE_OK &&
           curl_easy_getinfo(c.curl, CURLINFO_RESPONSE_CODE, &status) == CURLE_OK &&
           status == 200 && b.data != NULL;
  /* Some other program on the port is not a snakepit server. */
  json_t *doc = ok ? json_loads(TEXT(b), 0, NULL) : NULL;
  ok = doc != NULL && json_is_string(json_object_get(doc, "version")) &&
       json_is_string(json_object_get(doc, "status"));
  json_decref(doc);
  sp__buf_free(&b);
  client_close(&c);
  return ok;
}

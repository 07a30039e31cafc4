/*
 * serve.c - `snakepit serve`: starts the pools of a config and serves them over
 * HTTP (src/http/) until SIGINT/SIGTERM, then stops gracefully: stop accepting,
 * let calls in flight finish, stop the server, stop the workers.
 */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "http.h"
#include "node.h"

static const char serve_usage[] =
    "usage: snakepit serve [-c FILE | --adapter MODULE.CLASS [POOL OPTIONS]]\n"
    "                      [--listen HOST:PORT] [--token-file FILE] [--insecure]\n"
    "                      [--timeout MS] [--max-body SIZE] [--read-timeout SEC]\n"
    "                      [--http-threads N] [--max-connections N] [--max-connections-per-client N]\n"
    "                      [--allow-origin ORIGIN]... [--drain-timeout SEC] [--access-log] [-q]\n"
    "                      [--nats URL [NATS OPTIONS] [--nats-name NAME]]\n"
    "\n"
    "Serves the pools over HTTP/1.1 (keep-alive): POST /v1/pools/POOL/tools/TOOL,\n"
    "GET /v1/pools[/POOL[/tools]], /healthz, /readyz, /metrics, and the dashboard at /.\n"
    "\n"
    "  -c, --config FILE        pools configuration (default: the built-in pools)\n"
    SP_CLI_POOL_USAGE
    "  -l, --listen HOST:PORT   address to listen on (default 127.0.0.1:8080; port 0 = any free)\n"
    "      --token-file FILE    require 'Authorization: Bearer TOKEN' (the file's content) on\n"
    "                           the API and /metrics; needed to listen on a non-loopback address\n"
    "      --insecure           allow a non-loopback address without a token\n"
    "  -t, --timeout MS         per-call timeout when a request sets none (default: the pool's)\n"
    "      --max-body SIZE      largest request body (default 8MiB; KiB, MiB suffixes)\n"
    "      --read-timeout SEC   time a connection gets to send each complete request, and\n"
    "                           to stay idle or stalled (default 30)\n"
    "      --http-threads N     HTTP event-loop threads; 0 runs HTTP on the runtime's own\n"
    "                           loop thread (default: 0 below 4 CPUs, else half the CPUs,\n"
    "                           at most 4)\n"
    "      --max-connections N  open connections at most (default 1024); when full, a new\n"
    "                           connection displaces the oldest one still sending its request\n"
    "      --max-connections-per-client N\n"
    "                           open connections of one client address at most (default:\n"
    "                           half of --max-connections)\n"
    "      --allow-origin ORIGIN  let browser pages from ORIGIN (http://host:port) call the\n"
    "                           API; other cross-origin requests are refused (repeatable)\n"
    "      --drain-timeout SEC  on SIGTERM, time calls in flight get to finish (default 30)\n"
    "      --access-log         log every request to stderr\n"
    "      --nats URL           also serve the local pools to a NATS cluster as a node (HTTP\n"
    "                           then listens only when --listen is given); remote pools of\n"
    "                           the config are served over HTTP, never re-exported\n"
    SP_CLI_NATS_USAGE
    "      --nats-name NAME     the node's name in `snakepit nodes` (default HOST-PID)\n"
    "      --job-deliveries N   deliveries of a durable job before it fails as lost (its\n"
    "                           nodes kept going away; default 10); set by the first node\n"
    "                           of a pool on a NATS server, the others must agree\n"
    "  -q, --quiet              do not forward worker output to stderr\n"
    "\n"
    "SIGINT/SIGTERM stop gracefully; a second signal exits at once.\n";

#define SERVE_MAX_ORIGINS 16

typedef struct {
  sp_cli_opts_t cli; /* -c, or --adapter and its pool */
  const char *listen;
  const char *token_file;
  int insecure, quiet, access_log;
  int listen_given; /* --listen: with --nats, HTTP listens only then */
  long timeout_ms;
  unsigned long long max_body;
  long read_timeout_s, threads, max_connections, max_per_client, drain_s;
  long job_deliveries; /* --job-deliveries; 0: the default */
  const char *origins[SERVE_MAX_ORIGINS];
  size_t n_origins;
} serve_opts_t;

static void quiet_log(int level, const char *line, void *ud) {
  (void)ud;
  if (level >= 3) fprintf(stderr, "%s\n", line);
}

/* "65536", "512KiB", "8MiB", "1GiB" (KB/MB/GB and K/M/G mean the same powers of 1024). */
static int parse_size(const char *s, unsigned long long *out) {
  char *end = NULL;
  errno = 0;
  unsigned long long v = strtoull(s, &end, 10);
  if (errno || end == s || s[0] == '-') goto bad;
  unsigned long long mul = 1;
  if (*end == 'K' || *end == 'k')
    mul = 1ull << 10;
  else if (*end == 'M' || *end == 'm')
    mul = 1ull << 20;
  else if (*end == 'G' || *end == 'g')
    mul = 1ull << 30;
  else if (*end != '\0' && strcmp(end, "B") != 0)
    goto bad;
  if (mul > 1) {
    end++;
    if (strcmp(end, "") && strcmp(end, "B") && strcmp(end, "iB")) goto bad;
  }
  if (v == 0 || v > (1ull << 30) / mul) goto bad;
  *out = v * mul;
  return 0;
bad:
  fprintf(stderr,
          "snakepit: --max-body needs a size from 1 byte to 1GiB (e.g. 65536, 512KiB, 8MiB), got "
          "'%s'\n",
          s);
  return -1;
}

/* An origin is a scheme and an authority, exactly as a browser sends it. */
static int add_origin(serve_opts_t *o, const char *origin) {
  size_t n = strlen(origin);
  int scheme = strncmp(origin, "http://", 7) == 0 || strncmp(origin, "https://", 8) == 0;
  if (!scheme || strchr(strchr(origin, ':') + 3, '/') != NULL || n > 200 || origin[n - 1] == '/') {
    fprintf(stderr,
            "snakepit: --allow-origin '%s': expected SCHEME://HOST[:PORT] with no path, "
            "e.g. http://localhost:3000\n",
            origin);
    return -1;
  }
  if (o->n_origins == SERVE_MAX_ORIGINS) {
    fprintf(stderr, "snakepit: --allow-origin given more than %d times\n", SERVE_MAX_ORIGINS);
    return -1;
  }
  o->origins[o->n_origins++] = origin;
  return 0;
}

/* Each connection is a file descriptor: raise the soft limit as far as the hard
 * one allows, and keep the connection limit below it (with room for the
 * workers' sockets and pipes), so accept() never runs out of descriptors. */
#define FD_RESERVE 64

static long fit_connections(long want) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return want;
  if (rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    getrlimit(RLIMIT_NOFILE, &rl);
  }
  if (rl.rlim_cur == RLIM_INFINITY || (rlim_t)want + FD_RESERVE <= rl.rlim_cur) return want;
  long fit = rl.rlim_cur > 2 * FD_RESERVE ? (long)rl.rlim_cur - FD_RESERVE : (long)rl.rlim_cur / 2;
  fprintf(stderr,
          "snakepit: warning: %ld connections need more file descriptors than the limit of %llu; "
          "serving at most %ld\n",
          want, (unsigned long long)rl.rlim_cur, fit);
  return fit;
}

static int parse_opts(const sp_cli_opts_t *g, int argc, char **argv, serve_opts_t *o) {
  enum { O_TOKEN = 256, O_INSECURE, O_MAXBODY, O_READTO, O_THREADS, O_MAXCONN, O_DRAIN, O_ALOG,
         O_PERCLIENT, O_ORIGIN, O_JOBDELIV };
  static const struct option longopts[] = {{"config", required_argument, NULL, 'c'},
                                           {"listen", required_argument, NULL, 'l'},
                                           {"timeout", required_argument, NULL, 't'},
                                           {"quiet", no_argument, NULL, 'q'},
                                           {"help", no_argument, NULL, 'h'},
                                           {"token-file", required_argument, NULL, O_TOKEN},
                                           {"insecure", no_argument, NULL, O_INSECURE},
                                           {"max-body", required_argument, NULL, O_MAXBODY},
                                           {"read-timeout", required_argument, NULL, O_READTO},
                                           {"http-threads", required_argument, NULL, O_THREADS},
                                           {"max-connections", required_argument, NULL, O_MAXCONN},
                                           {"drain-timeout", required_argument, NULL, O_DRAIN},
                                           {"access-log", no_argument, NULL, O_ALOG},
                                           {"max-connections-per-client", required_argument, NULL,
                                            O_PERCLIENT},
                                           {"allow-origin", required_argument, NULL, O_ORIGIN},
                                           {"job-deliveries", required_argument, NULL, O_JOBDELIV},
                                           SP_CLI_POOL_OPTIONS,
                                           SP_CLI_NATS_OPTIONS,
                                           {NULL, 0, NULL, 0}};
  *o = (serve_opts_t){.cli = *g,
                      .listen = "127.0.0.1:8080",
                      .quiet = g->quiet,
                      .timeout_ms = g->timeout_ms,
                      .max_body = 8ull << 20,
                      .read_timeout_s = 30,
                      .threads = -1,
                      .max_connections = 1024,
                      .drain_s = 30};
  optind = 0; /* 0 makes glibc re-initialise getopt; argv[0] is "serve" */
  int c;
  while ((c = getopt_long(argc, argv, "c:l:t:qh", longopts, NULL)) != -1) {
    int bad = 0;
    switch (c) {
      case 'c': o->cli.config = optarg; break;
      case 'l': o->listen = optarg; o->listen_given = 1; break;
      case 't': bad = sp_cli_parse_long("--timeout", optarg, 1, 86400000, &o->timeout_ms); break;
      case 'q': o->quiet = 1; break;
      case 'h': fputs(serve_usage, stdout); return SP_EXIT_OK;
      case O_TOKEN: o->token_file = optarg; break;
      case O_INSECURE: o->insecure = 1; break;
      case O_MAXBODY: bad = parse_size(optarg, &o->max_body); break;
      case O_READTO: bad = sp_cli_parse_long("--read-timeout", optarg, 1, 3600, &o->read_timeout_s); break;
      case O_THREADS: bad = sp_cli_parse_long("--http-threads", optarg, 0, 64, &o->threads); break;
      case O_MAXCONN:
        bad = sp_cli_parse_long("--max-connections", optarg, 1, 65536, &o->max_connections);
        break;
      case O_PERCLIENT:
        bad = sp_cli_parse_long("--max-connections-per-client", optarg, 1, 65536, &o->max_per_client);
        break;
      case O_ORIGIN: bad = add_origin(o, optarg); break;
      case O_DRAIN: bad = sp_cli_parse_long("--drain-timeout", optarg, 0, 3600, &o->drain_s); break;
      case O_ALOG: o->access_log = 1; break;
      case O_JOBDELIV:
        bad = sp_cli_parse_long("--job-deliveries", optarg, 1, 1000, &o->job_deliveries);
        break;
      default: {
        if (sp_cli_nats_option(c, optarg, &o->cli)) break;
        int taken = sp_cli_pool_option(c, optarg, &o->cli.pool);
        bad = taken <= 0;
        if (taken < 0) {
          fprintf(stderr, "\n");
          fputs(serve_usage, stderr);
          return SP_EXIT_USAGE;
        }
        break;
      }
    }
    if (bad) {
      fputs(serve_usage, stderr);
      return SP_EXIT_USAGE;
    }
  }
  if (optind < argc) {
    fprintf(stderr, "snakepit: serve takes no arguments, got '%s'\n\n%s", argv[optind],
            serve_usage);
    return SP_EXIT_USAGE;
  }
  if (sp_cli_pool_check(&o->cli.pool, o->cli.config) != 0) return SP_EXIT_USAGE;
  return -1;
}

/* Reads the token: the file's content without surrounding whitespace. */
static char *read_token(const char *path) {
  char *tok = NULL;
  FILE *f = fopen(path, "r");
  if (f == NULL) {
    fprintf(stderr, "snakepit: cannot read --token-file %s: %s\n", path, strerror(errno));
    return NULL;
  }
  struct stat st;
  if (fstat(fileno(f), &st) == 0 && (st.st_mode & 077) != 0)
    fprintf(stderr, "snakepit: warning: token file %s is readable by other users (chmod 600 it)\n",
            path);
  char buf[4097];
  size_t n = fread(buf, 1, sizeof(buf) - 1, f);
  buf[n] = '\0';
  char *s = buf, *e = buf + n;
  while (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r') s++;
  while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\n' || e[-1] == '\r')) *--e = '\0';
  int ok = e > s && n < sizeof(buf) - 1;
  for (const char *c = s; ok && *c; c++) ok = *c > ' ' && *c < 127;
  if (!ok)
    fprintf(stderr,
            "snakepit: --token-file %s must hold one token of printable characters "
            "without spaces (at most 4096)\n",
            path);
  else
    tok = strdup(s);
  fclose(f);
  return tok;
}

/* The second SIGINT/SIGTERM (the first one is taken by the main thread) exits at once. */
static sigset_t g_signals;

static void *force_exit_main(void *arg) {
  (void)arg;
  int sig;
  if (sigwait(&g_signals, &sig) == 0) {
    fprintf(stderr, "snakepit: %s received again: exiting now\n", strsignal(sig));
    _exit(128 + sig);
  }
  return NULL;
}

static void print_pools(sp_runtime_t *rt, char *buf, size_t len) {
  sp_error_t err;
  char *json = NULL;
  snprintf(buf, len, "?");
  if (sp_pools_json(rt, &json, &err) != 0) return;
  /* ["a","b"] -> a, b: the names are [A-Za-z0-9_.-], nothing to unescape. */
  size_t j = 0;
  for (const char *c = json; *c && j + 3 < len; c++) {
    if (*c == '"' || *c == '[' || *c == ']') continue;
    buf[j++] = *c;
    if (*c == ',') buf[j++] = ' ';
  }
  buf[j] = '\0';
  sp_free(json);
}

int sp_cli_serve(const sp_cli_opts_t *g, int argc, char **argv) {
  serve_opts_t o;
  int rc = parse_opts(g, argc, argv, &o);
  if (rc >= 0) return rc;

  char *token = NULL;
  int fd = -1, loopback = 0;
  char url[128], pools[512];
  sp_runtime_t *rt = NULL;
  sp__http_t *srv = NULL;
  sp__node_t *node = NULL;
  sp_error_t err;
  int use_http = o.cli.nats.url == NULL || o.listen_given;
  rc = SP_EXIT_USAGE;
  const char *nats_tok = getenv("SNAKEPIT_NATS_TOKEN");
  if (o.cli.nats.token == NULL && nats_tok && *nats_tok) o.cli.nats.token = nats_tok;
  if (o.token_file != NULL && (token = read_token(o.token_file)) == NULL) goto done;
  /* Bind before starting workers: a busy port fails in milliseconds, not after startup. */
  if (use_http && sp__http_listen(o.listen, token != NULL || o.insecure, &fd, &loopback, url, sizeof(url),
                      &err) != 0) {
    fprintf(stderr, "snakepit: %s\n", err.message);
    rc = err.code == SP_EINVAL ? SP_EXIT_USAGE : SP_EXIT_CONFIG;
    sp_error_free(&err);
    goto done;
  }
  if (use_http && !loopback && token == NULL)
    fprintf(stderr, "snakepit: warning: serving on %s without authentication (--insecure)\n", url);
  if (o.quiet) sp_set_log_handler(quiet_log, NULL);

  /* SIGINT/SIGTERM are taken with sigwait; blocking them here makes every thread
   * started below (the runtime's, MHD's) inherit the mask. A write to a client
   * that went away must fail with EPIPE, not end the process. */
  sigemptyset(&g_signals);
  sigaddset(&g_signals, SIGINT);
  sigaddset(&g_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &g_signals, NULL);
  signal(SIGPIPE, SIG_IGN);

  if (sp_cli_start(&o.cli, &rt, &err) != 0) {
    rc = sp_cli_report(&err);
    goto done;
  }
  if (o.cli.nats.url != NULL) {
    if (sp__node_start(rt, &o.cli.nats, o.cli.nats_name, (int)o.job_deliveries, &node,
                       &err) != 0) {
      fprintf(stderr, "snakepit: %s\n", err.message);
      rc = err.code == SP_EINVAL ? SP_EXIT_USAGE : SP_EXIT_CONFIG;
      sp_error_free(&err);
      goto done;
    }
    print_pools(rt, pools, sizeof(pools));
    fprintf(stderr, "snakepit: node %s (id %s) serving pools %s on NATS\n", node->name, node->id,
            pools);
  }
  if (!use_http) goto serving;
  /* On a small machine every hand-off between threads costs more than HTTP
   * parsing itself: run HTTP on the runtime's loop thread. With CPUs to spare,
   * half of them parse HTTP (the loop thread and the workers need the rest). */
  if (o.threads < 0) {
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    o.threads = cpus >= 8 ? 4 : cpus >= 4 ? cpus / 2 : 0;
  }
  sp__http_opts_t ho = {
      .listen_fd = fd,
      .token = token,
      .max_body = (size_t)o.max_body,
      .read_timeout_s = (unsigned)o.read_timeout_s,
      .threads = (unsigned)o.threads,
      .max_connections = (unsigned)fit_connections(o.max_connections),
      .max_per_client =
          (unsigned)(o.max_per_client ? o.max_per_client : (o.max_connections + 1) / 2),
      .loopback = loopback,
      .allowed_origins = o.origins,
      .n_allowed_origins = o.n_origins,
      .call_timeout_ms = o.timeout_ms,
      .access_log = o.access_log};
  fd = -1; /* the server owns it now, also when it fails to start */
  if (sp__http_start(&srv, rt, &ho, &err) != 0) {
    fprintf(stderr, "snakepit: %s\n", err.message);
    rc = SP_EXIT_CONFIG;
    sp_error_free(&err);
    goto done;
  }
  print_pools(rt, pools, sizeof(pools));
  fprintf(stderr, "snakepit: listening on %s (pools: %s; auth: %s)\n", url, pools,
          token ? "bearer token" : "none");

serving:;
  int sig = 0;
  while (sigwait(&g_signals, &sig) != 0) {
  }
  pthread_t force;
  if (pthread_create(&force, NULL, force_exit_main, NULL) == 0) pthread_detach(force);
  /* Stop accepting, let the runtime finish what it has (new calls get 503), wait
   * for every answer to be handed to MHD, then stop MHD and only then the
   * runtime, which must not be called while being stopped. */
  /* New connections are refused before the notice says so. */
  if (srv) sp__http_quiesce(srv);
  fprintf(stderr, "snakepit: %s received: draining (up to %lds; again to exit at once)\n",
          strsignal(sig), o.drain_s);
  /* The node stops taking calls from NATS and answers those it has. */
  if (node && sp__node_drain(node, o.drain_s * 1000) > 0)
    fprintf(stderr, "snakepit: NATS calls still running after the drain timeout\n");
  sp_runtime_drain(rt, (int)(o.drain_s * 1000));
  if (srv && sp__http_wait_idle(srv, 5000) != 0)
    fprintf(stderr, "snakepit: closing connections still open after the drain\n");
  rc = SP_EXIT_OK;
done:
  sp__http_destroy(srv);
  if (rt) sp_runtime_stop(rt, (int)(o.drain_s * 1000));
  sp__node_destroy(node); /* after the runtime: no completion can reach it any more */
  if (fd >= 0) close(fd);
  free(token);
  sp_cli_pool_free(&o.cli.pool);
  if (rc == SP_EXIT_OK) fprintf(stderr, "snakepit: stopped\n");
  return rc;
}

/*
 * main.c - the `snakepit` command: starts the pools of a config (or the built-in
 * default), runs one command against them (exec, tools, stats, pools) and stops.
 * Results go to stdout as JSON; errors go to stderr; the exit code says which.
 */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "cli.h"
#include "snakepit.h"

static const char usage_text[] =
    "usage: snakepit [-c FILE | --adapter MODULE.CLASS [POOL OPTIONS] | --url URL | --local]\n"
    "                [--timeout MS] [-q] [--json] COMMAND [ARGS]\n"
    "\n"
    "Commands:\n"
    "  exec POOL TOOL [JSON]   call TOOL on POOL with JSON object arguments ('{}' if omitted,\n"
    "                          '-' reads them from stdin) and print the result as JSON;\n"
    "                          with --stream, each chunk of a streaming tool as one JSON\n"
    "                          line the moment it arrives\n"
    "       [--array NAME=FILE.npy]...  also pass FILE.npy as the array argument NAME\n"
    "       [--out DIR]        write returned arrays as DIR/<path>.npy (path: where the array\n"
    "                          sat, e.g. result, c, items.0) and print the rest of the result\n"
    "                          with {\"$array\": FILE, \"dtype\", \"shape\"} in their places;\n"
    "                          without --out, returned arrays print as nested JSON lists\n"
    "  tools [POOL]            print the tools (name, description, parameters) of POOL or all\n"
    "  stats [POOL]            pool statistics: a table on a terminal, JSON when piped or\n"
    "                          with --json\n"
    "  pools                   print the pool names\n"
    "  nodes --nats URL        the nodes serving pools on a NATS server: their pools,\n"
    "                          capacity, load and version (JSON when piped or --json)\n"
    "  submit --nats URL [--job-id ID] POOL TOOL [JSON]\n"
    "                          run the call as a durable job (JetStream): kept until a node\n"
    "                          ran it, handed to another node if its node dies; prints its id\n"
    "       [--array NAME=FILE.npy]...  array arguments, inline in the job (up to the NATS\n"
    "                          server's max_payload); arrays the tool returns come as lists\n"
    "  result --nats URL [-t MS] JOB\n"
    "                          a job's outcome, waiting up to MS for it (exit 5: not finished)\n"
    "  serve [OPTIONS]         serve the pools over HTTP: JSON API, /metrics, live dashboard\n"
    "                          (options: snakepit serve --help)\n"
    "  top [--url URL]         a running server's statistics, refreshed live in the terminal\n"
    "                          (options: snakepit top --help)\n"
    "  check ADAPTER [OPTIONS] load ADAPTER (module.Class) with thread-safety checks, run\n"
    "                          its tools concurrently and report races; exit 8 if any\n"
    "                          (options: snakepit check --help)\n"
    "  doctor [POOL...]        start the pools and tell whether they can run as configured:\n"
    "                          Python build, GIL, NumPy/BLAS threads, flagged libraries,\n"
    "                          CPUs, /dev/shm, open-file limit (options: doctor --help)\n"
    "  session end POOL ID     end session ID of POOL: its worker drops the session's\n"
    "                          state (use with --url: a server's sessions)\n"
    "  version                 print the version\n"
    "\n"
    "Which pools exec/tools/stats/pools use:\n"
    "  -c, --config FILE   pools of a configuration file (YAML), started for this command\n"
    SP_CLI_POOL_USAGE
    "      --url URL       the pools of a running `snakepit serve` (bearer token from\n"
    "                      SNAKEPIT_TOKEN or SNAKEPIT_TOKEN_FILE)\n"
    "      --nats URL      the pools served by nodes (`snakepit serve --nats`) on this NATS\n"
    "                      server; auth: --nats-token T (or SNAKEPIT_NATS_TOKEN), --nats-user U\n"
    "                      --nats-password P, --nats-creds FILE, --nats-ca FILE (TLS),\n"
    "                      --nats-cert FILE --nats-key FILE (mutual TLS)\n"
    "      --local         the built-in pools, started for this command: hpc_pool (thread\n"
    "                      profile, 2 workers x 4 threads) and default (process, 2 workers)\n"
    "  With none of these: the server at SNAKEPIT_URL if set, else a server answering at\n"
    "  " SP_CLI_DEFAULT_URL ", else the built-in pools (--local).\n"
    "\n"
    "Other options:\n"
    "  -t, --timeout MS    per-call timeout in milliseconds (default: the pool's timeout)\n"
    "      --stream        exec: print each chunk of a streaming tool as one JSON line\n"
    "      --session ID    exec: run the call in session ID (its worker and its state;\n"
    "                      with --url, the server's session; else it lasts this command)\n"
    "      --session-mode MODE  hint (default), strict or strict_fail_fast\n"
    "  -q, --quiet         do not forward worker output and runtime notices to stderr\n"
    "      --json          stats as JSON also on a terminal\n"
    "  -h, --help          show this help\n"
    "\n"
    "Exit codes: 0 ok, 1 the tool raised, 2 usage, 3 config/startup error,\n"
    "            4 invalid call (unknown pool/tool, bad arguments), 5 timeout,\n"
    "            6 worker crashed, session lost or protocol error,\n"
    "            7 pool saturated or stopping, or the session's worker busy,\n"
    "            8 check found thread-safety problems\n";

int sp_cli_exit_code(int code) {
  switch (sp_err_category(code)) {
    case SP_CAT_NONE: return SP_EXIT_OK;
    case SP_CAT_PYTHON: return SP_EXIT_PYTHON;
    case SP_CAT_VALIDATION: return code == SP_ECONFIG ? SP_EXIT_CONFIG : SP_EXIT_INVALID;
    case SP_CAT_TIMEOUT: return SP_EXIT_TIMEOUT;
    case SP_CAT_POOL: return code == SP_ENOPOOL ? SP_EXIT_INVALID : SP_EXIT_BUSY;
    case SP_CAT_WORKER: return code == SP_ESTARTUP ? SP_EXIT_CONFIG : SP_EXIT_WORKER;
    default: return SP_EXIT_WORKER;
  }
}

int sp_cli_report(sp_error_t *e) {
  fprintf(stderr, "snakepit: %s error (%s): %s\n", sp_category_name(e->category),
          sp_err_name(e->code), e->message);
  if (e->traceback[0]) fprintf(stderr, "%s%s", e->traceback,
                               e->traceback[strlen(e->traceback) - 1] == '\n' ? "" : "\n");
  int rc = sp_cli_exit_code(e->code);
  sp_error_free(e);
  return rc;
}

const char *sp_cli_jstr(const json_t *o, const char *key, const char *dflt) {
  const char *s = json_string_value(json_object_get(o, key));
  return s ? s : dflt;
}

static void quiet_log(int level, const char *line, void *ud) {
  (void)ud;
  if (level >= 3) fprintf(stderr, "%s\n", line);
}

const char *sp_cli_default_url(void) {
  const char *env = getenv("SNAKEPIT_URL");
  return env && *env ? env : SP_CLI_DEFAULT_URL;
}

static char *read_stdin(void) {
  sp__buf_t b = {0};
  char chunk[4096];
  size_t n;
  while ((n = fread(chunk, 1, sizeof(chunk), stdin)) > 0) {
    if (sp__buf_append_str(&b, chunk, n) != 0) {
      sp__buf_free(&b);
      return NULL;
    }
  }
  if (b.data == NULL && sp__buf_append_str(&b, "", 0) != 0) return NULL;
  return (char *)b.data;
}

/* exec --stream: the outcome, handed from the loop thread to the waiting main thread. */
typedef struct {
  pthread_mutex_t mu;
  pthread_cond_t cond;
  int done;
  sp_result_t *res;
} stream_wait_t;

/* Each chunk is one line on stdout at once. Writing may block on a full pipe:
 * that holds up the loop, and so the generator too (flow control), which is
 * what a reader that falls behind should get from a one-call command. */
static int print_chunk(const char *json, size_t len, void *ud) {
  (void)ud;
  fwrite(json, 1, len, stdout);
  fputc('\n', stdout);
  return fflush(stdout) != 0; /* stdout gone (EPIPE): stop the stream */
}

static void stream_done(sp_result_t *res, void *ud) {
  stream_wait_t *w = ud;
  pthread_mutex_lock(&w->mu);
  *w->res = *res; /* keep everything; the caller frees it */
  memset(res, 0, sizeof(*res));
  w->done = 1;
  pthread_cond_signal(&w->cond);
  pthread_mutex_unlock(&w->mu);
}

static int exec_stream(sp_runtime_t *rt, const char *pool, const char *tool, const char *args,
                       const sp_call_opts_t *opts, sp_result_t *res) {
  stream_wait_t w = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, res};
  memset(res, 0, sizeof(*res));
  int rc = sp_execute_stream(rt, pool, tool, args, opts, print_chunk, stream_done, &w, NULL,
                             &res->error);
  if (rc != 0) return rc;
  pthread_mutex_lock(&w.mu);
  while (!w.done) pthread_cond_wait(&w.cond, &w.mu);
  pthread_mutex_unlock(&w.mu);
  return res->error.code;
}

static int cmd_exec(sp_runtime_t *rt, int argc, char **argv, const sp_cli_opts_t *o,
                    const sp_cli_inputs_t *in) {
  char *owned = NULL;
  const char *args = argc == 3 ? argv[2] : "{}";
  if (strcmp(args, "-") == 0) {
    owned = read_stdin();
    if (owned == NULL) {
      fprintf(stderr, "snakepit: cannot read arguments from stdin: %s\n", strerror(errno));
      return SP_EXIT_USAGE;
    }
    args = owned;
  }
  sp_call_opts_t opts = SP_CALL_OPTS_INIT;
  opts.timeout_ms = o->timeout_ms;
  opts.arrays = in->arrays;
  opts.array_count = in->count;
  /* Without a directory to write them to, returned arrays print as JSON lists. */
  opts.arrays_as_lists = o->out_dir == NULL;
  opts.session = o->session;
  if (o->session_mode != NULL) sp_session_mode_parse(o->session_mode, &opts.session_mode, NULL);
  sp_result_t res;
  int stream = o->stream;
  int rc = stream ? exec_stream(rt, argv[0], argv[1], args, &opts, &res)
                  : sp_execute(rt, argv[0], argv[1], args, &opts, &res);
  free(owned);
  if (stream && rc == 0) {
    sp_result_free(&res);
    return SP_EXIT_OK;
  }
  if (rc != 0) return sp_cli_report(&res.error);
  rc = sp_cli_print_result(res.json, res.arrays, res.array_count, o->out_dir);
  sp_result_free(&res);
  return rc;
}

static int cmd_tools(sp_runtime_t *rt, int argc, char **argv) {
  sp_error_t err;
  char *json = NULL;
  if (argc == 1) {
    if (sp_tools_json(rt, argv[0], &json, &err) != 0) return sp_cli_report(&err);
    sp_cli_print_json(json);
    sp_free(json);
    return SP_EXIT_OK;
  }
  char *pools = NULL;
  if (sp_pools_json(rt, &pools, &err) != 0) return sp_cli_report(&err);
  json_t *names = json_loads(pools, 0, NULL);
  json_t *all = json_object();
  size_t i;
  json_t *name;
  json_array_foreach(names, i, name) {
    if (sp_tools_json(rt, json_string_value(name), &json, &err) != 0) return sp_cli_report(&err);
    json_object_set_new(all, json_string_value(name), json_loads(json, 0, NULL));
    sp_free(json);
  }
  char *s = json_dumps(all, JSON_INDENT(2));
  puts(s);
  free(s);
  json_decref(all);
  json_decref(names);
  sp_free(pools);
  return SP_EXIT_OK;
}

static int cmd_stats(sp_runtime_t *rt, int argc, char **argv, int as_json) {
  /* With every worker's own report: pools running with thread_safety_checks
   * also get the checker's merged findings. */
  sp_report_opts_t opts = SP_REPORT_OPTS_INIT;
  opts.with_stats = 1;
  sp_result_t res;
  if (sp_worker_reports(rt, argc == 1 ? argv[0] : NULL, &opts, &res) != 0)
    return sp_cli_report(&res.error);
  sp_cli_print_stats(as_json, res.json);
  sp_result_free(&res);
  return SP_EXIT_OK;
}

/*
 * SIGINT/SIGTERM: the first drains (calls in flight finish, new ones are
 * refused, then workers stop); a second one exits at once. The signals are
 * blocked in every thread and taken here with sigwait, so no handler runs
 * inside the library.
 */
static sigset_t g_stop_signals;

static void *signal_main(void *arg) {
  sp_runtime_t *rt = arg;
  int sig, count = 0;
  while (sigwait(&g_stop_signals, &sig) == 0) {
    if (++count == 1) {
      fprintf(stderr, "snakepit: %s received: finishing calls in flight (again to force)\n",
              strsignal(sig));
      sp_runtime_drain(rt, 30000);
    } else {
      fprintf(stderr, "snakepit: %s received again: exiting now\n", strsignal(sig));
      _exit(128 + sig);
    }
  }
  return NULL;
}

/* Parses -c/-t/-q/--url/-h from argv (getopt_long, stopping at the first
 * non-option). Returns -1 to go on, or an exit code. */
static int parse_common(int argc, char **argv, sp_cli_opts_t *o) {
  static const struct option opts[] = {{"config", required_argument, NULL, 'c'},
                                       {"timeout", required_argument, NULL, 't'},
                                       {"quiet", no_argument, NULL, 'q'},
                                       {"url", required_argument, NULL, 'u'},
                                       {"local", no_argument, NULL, 'L'},
                                       {"json", no_argument, NULL, 'j'},
                                       {"stream", no_argument, NULL, 'S'},
                                       {"session", required_argument, NULL, 's'},
                                       {"session-mode", required_argument, NULL, 'm'},
                                       {"help", no_argument, NULL, 'h'},
                                       SP_CLI_POOL_OPTIONS,
                                       SP_CLI_NATS_OPTIONS,
                                       {NULL, 0, NULL, 0}};
  int c;
  /* '+' stops at the first non-option so a command's own arguments (JSON) stay. */
  while ((c = getopt_long(argc, argv, "+c:t:qh", opts, NULL)) != -1) {
    switch (c) {
      case 'c': o->config = optarg; break;
      case 't': {
        char *end = NULL;
        o->timeout_ms = strtol(optarg, &end, 10);
        if (end == optarg || *end != '\0' || o->timeout_ms <= 0) {
          fprintf(stderr, "snakepit: --timeout needs a positive number of milliseconds, got '%s'\n",
                  optarg);
          return SP_EXIT_USAGE;
        }
        break;
      }
      case 'q': o->quiet = 1; break;
      case 'u': o->url = optarg; break;
      case 'L': o->local = 1; break;
      case 'j': o->json = 1; break;
      case 'S': o->stream = 1; break;
      case 's': o->session = optarg; break;
      case 'm': o->session_mode = optarg; break;
      case 'h': fputs(usage_text, stdout); return SP_EXIT_OK;
      default: {
        if (sp_cli_nats_option(c, optarg, o)) break;
        int taken = sp_cli_pool_option(c, optarg, &o->pool);
        if (taken < 0) return SP_EXIT_USAGE;
        if (taken == 0) {
          fputs(usage_text, stderr);
          return SP_EXIT_USAGE;
        }
      }
    }
  }
  return -1;
}

/*
 * Local pools or a running server: --url, -c, --adapter and --local say so; else
 * SNAKEPIT_URL names a server; else a server answering on the default address is
 * used (so `stats` shows its live figures); else the built-in pools start here.
 */
static int choose_mode(sp_cli_opts_t *o) {
  if (sp_cli_pool_check(&o->pool, o->config) != 0) return -1;
  const char *local = o->config ? "-c FILE" : o->pool.adapter ? "--adapter" : o->local ? "--local" : NULL;
  if (o->url != NULL && local != NULL) {
    fprintf(stderr, "snakepit: --url and %s are alternatives: a running server's pools, or "
                    "pools started by this command\n", local);
    sp_cli_pool_free(&o->pool);
    return -1;
  }
  if (o->url != NULL || local != NULL) return 0;
  const char *env = getenv("SNAKEPIT_URL");
  if (env && *env) {
    o->url = env;
    return 0;
  }
  if (sp_cli_server_answers(SP_CLI_DEFAULT_URL)) {
    o->url = SP_CLI_DEFAULT_URL;
    if (!o->quiet)
      fprintf(stderr, "snakepit: using the server at %s (--local starts pools of its own)\n",
              o->url);
  }
  return 0;
}

/* What main's options own once parsed and checked. */
static void opts_free(sp_cli_opts_t *o) {
  free(o->arrays);
  sp_cli_pool_free(&o->pool);
}

int main(int argc, char **argv) {
  sp_cli_opts_t o = {0};
  int rc = parse_common(argc, argv, &o);
  if (rc >= 0) return rc;
  if (optind >= argc) {
    fputs(usage_text, stderr);
    return SP_EXIT_USAGE;
  }
  const char *cmd = argv[optind];
  /* check and serve parse their own options. */
  if (strcmp(cmd, "check") == 0) return sp_cli_check(&o, argc - optind, argv + optind);
  if (strcmp(cmd, "serve") == 0) return sp_cli_serve(&o, argc - optind, argv + optind);
  if (strcmp(cmd, "top") == 0) return sp_cli_top(&o, argc - optind, argv + optind);
  if (strcmp(cmd, "doctor") == 0) return sp_cli_doctor(&o, argc - optind, argv + optind);

  /* Options may also follow the command: `snakepit exec -c f.yaml POOL TOOL`. */
  int sub_argc = argc - optind;
  char **sub_argv = argv + optind;
  /* exec's (and submit's) own --array/--out may stand anywhere after it. */
  if ((strcmp(cmd, "exec") == 0 || strcmp(cmd, "submit") == 0) &&
      (rc = sp_cli_exec_options(&sub_argc, sub_argv, &o)) >= 0)
    return rc;
  optind = 0; /* 0 makes glibc re-initialise getopt */
  rc = parse_common(sub_argc, sub_argv, &o);
  if (rc >= 0) return rc;
  int cargc = sub_argc - optind;
  char **cargv = sub_argv + optind;

  if (strcmp(cmd, "help") == 0) {
    fputs(usage_text, stdout);
    return SP_EXIT_OK;
  }
  if (strcmp(cmd, "version") == 0) {
    printf("snakepit %s\n", sp_version());
    return SP_EXIT_OK;
  }
  if (sp_cli_session_options(&o, cmd) != 0) return SP_EXIT_USAGE;
  if (strcmp(cmd, "session") == 0) {
    if (choose_mode(&o) != 0) return SP_EXIT_USAGE;
    rc = sp_cli_session(&o, cargc, cargv);
    sp_cli_pool_free(&o.pool);
    return rc;
  }
  int via_nats = strcmp(cmd, "nodes") == 0 || strcmp(cmd, "submit") == 0 || strcmp(cmd, "result") == 0;
  if (strcmp(cmd, "exec") && strcmp(cmd, "tools") && strcmp(cmd, "stats") && strcmp(cmd, "pools") &&
      !via_nats) {
    fprintf(stderr, "snakepit: unknown command '%s'\n\n%s", cmd, usage_text);
    return SP_EXIT_USAGE;
  }
  /* Count the arguments before starting any worker. */
  int min_args = strcmp(cmd, "exec") == 0 || strcmp(cmd, "submit") == 0 ? 2
                 : strcmp(cmd, "result") == 0                          ? 1
                                                                       : 0;
  int max_args = strcmp(cmd, "exec") == 0 || strcmp(cmd, "submit") == 0 ? 3
                 : strcmp(cmd, "pools") == 0 || strcmp(cmd, "nodes") == 0 ? 0
                                                                           : 1;
  if (cargc < min_args || cargc > max_args) {
    fprintf(stderr, "snakepit: %s %s\n\n%s", cmd,
            min_args == 2 ? "needs POOL TOOL [JSON]" : min_args ? "needs JOB"
            : max_args ? "takes at most one POOL" : "takes no arguments",
            usage_text);
    return SP_EXIT_USAGE;
  }
  /* Through NATS, exec and tools POOL run on a runtime whose one pool is the
   * remote POOL (below, like local pools); the other commands ask the nodes. */
  const char *nats_pool = NULL;
  if (o.nats.url != NULL || via_nats) {
    if (o.nats.url == NULL || o.url || o.config || o.pool.adapter || o.local) {
      fprintf(stderr, "snakepit: %s\n", o.nats.url == NULL
                                           ? "this command needs --nats URL (the NATS server the nodes use)"
                                           : "--nats reaches pools through NATS: it does not go with "
                                             "--url, -c, --adapter or --local");
      return SP_EXIT_USAGE;
    }
    const char *tok = getenv("SNAKEPIT_NATS_TOKEN");
    if (o.nats.token == NULL && tok && *tok) o.nats.token = tok;
    if (strcmp(cmd, "exec") != 0 && !(strcmp(cmd, "tools") == 0 && cargc == 1)) {
      cargv[-1] = (char *)cmd;
      rc = sp_cli_cluster(&o, cargc + 1, cargv - 1);
      free(o.arrays);
      return rc;
    }
    nats_pool = cargv[0];
  } else if (choose_mode(&o) != 0) {
    return SP_EXIT_USAGE;
  }
  if (o.url != NULL) {
    /* Hand the command and its arguments (without the options) to the client. */
    cargv[-1] = (char *)cmd;
    rc = sp_cli_remote(&o, cargc + 1, cargv - 1);
    opts_free(&o);
    return rc;
  }
  if (o.quiet) sp_set_log_handler(quiet_log, NULL);

  sigemptyset(&g_stop_signals);
  sigaddset(&g_stop_signals, SIGINT);
  sigaddset(&g_stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &g_stop_signals, NULL); /* inherited by the runtime's threads */

  /* Array files are read and checked before any worker starts. */
  sp_cli_inputs_t in;
  if ((rc = sp_cli_inputs_load(&o, &in)) >= 0) {
    sp_cli_inputs_free(&in);
    opts_free(&o);
    return rc;
  }
  sp_runtime_t *rt = NULL;
  sp_error_t err;
  if ((nats_pool ? sp_cli_cluster_start(&o, nats_pool, &rt, &err) : sp_cli_start(&o, &rt, &err)) != 0) {
    sp_cli_inputs_free(&in);
    opts_free(&o);
    return sp_cli_report(&err);
  }
  pthread_t sig_thread;
  pthread_create(&sig_thread, NULL, signal_main, rt);
  pthread_detach(sig_thread);
  if (strcmp(cmd, "exec") == 0) {
    rc = cmd_exec(rt, cargc, cargv, &o, &in);
  } else if (strcmp(cmd, "tools") == 0) {
    rc = cmd_tools(rt, cargc, cargv);
  } else if (strcmp(cmd, "stats") == 0) {
    rc = cmd_stats(rt, cargc, cargv, o.json);
  } else {
    char *json = NULL;
    rc = sp_pools_json(rt, &json, &err) == 0 ? (sp_cli_print_json(json), SP_EXIT_OK)
                                             : sp_cli_report(&err);
    sp_free(json);
  }
  sp_runtime_stop(rt, 5000);
  sp_cli_inputs_free(&in);
  opts_free(&o);
  return rc;
}

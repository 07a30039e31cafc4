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

#include "cli.h"
#include "snakepit.h"

static const char usage_text[] =
    "usage: snakepit [-c FILE | --url URL] [--timeout MS] [-q] COMMAND [ARGS]\n"
    "\n"
    "Commands:\n"
    "  exec POOL TOOL [JSON]   call TOOL on POOL with JSON object arguments ('{}' if omitted,\n"
    "                          '-' reads them from stdin) and print the result as JSON\n"
    "  tools [POOL]            print the tools (name, description, parameters) of POOL or all\n"
    "  stats [POOL]            print pool statistics as JSON\n"
    "  pools                   print the configured pool names\n"
    "  serve [OPTIONS]         serve the pools over HTTP: JSON API, /metrics, live dashboard\n"
    "                          (options: snakepit serve --help)\n"
    "  check ADAPTER [OPTIONS] load ADAPTER (module.Class) with thread-safety checks, run\n"
    "                          its tools concurrently and report races; exit 8 if any\n"
    "                          (options: snakepit check --help)\n"
    "  doctor [POOL...]        start the pools and tell whether they can run as configured:\n"
    "                          Python build, GIL, NumPy/BLAS threads, flagged libraries,\n"
    "                          CPUs, /dev/shm, open-file limit (options: doctor --help)\n"
    "  version                 print the version\n"
    "\n"
    "Options:\n"
    "  -c, --config FILE   pools configuration (YAML); default: built-in pools\n"
    "                      hpc_pool (thread profile, 2 workers x 4 threads) and\n"
    "                      default (process profile, 2 workers)\n"
    "  -t, --timeout MS    per-call timeout in milliseconds (default: the pool's timeout)\n"
    "  -q, --quiet         do not forward worker output and runtime notices to stderr\n"
    "      --url URL       run exec/tools/stats/pools against a running `snakepit serve`\n"
    "                      (bearer token from SNAKEPIT_TOKEN or SNAKEPIT_TOKEN_FILE)\n"
    "  -h, --help          show this help\n"
    "\n"
    "Exit codes: 0 ok, 1 the tool raised, 2 usage, 3 config/startup error,\n"
    "            4 invalid call (unknown pool/tool, bad arguments), 5 timeout,\n"
    "            6 worker crashed or protocol error, 7 pool saturated or stopping,\n"
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

int sp_cli_report(const sp_error_t *e) {
  fprintf(stderr, "snakepit: %s error (%s): %s\n", sp_category_name(e->category),
          sp_err_name(e->code), e->message);
  if (e->traceback[0]) fprintf(stderr, "%s%s", e->traceback,
                               e->traceback[strlen(e->traceback) - 1] == '\n' ? "" : "\n");
  return sp_cli_exit_code(e->code);
}

static void quiet_log(int level, const char *line, void *ud) {
  (void)ud;
  if (level >= 3) fprintf(stderr, "%s\n", line);
}

/* Pretty-prints JSON text to stdout (falls back to the raw text). */
void sp_cli_print_json(const char *text) {
  json_error_t jerr;
  json_t *v = json_loads(text, JSON_DECODE_ANY, &jerr);
  if (v == NULL) {
    puts(text);
    return;
  }
  char *s = json_dumps(v, JSON_INDENT(2) | JSON_ENCODE_ANY);
  puts(s ? s : text);
  free(s);
  json_decref(v);
}

static char *read_stdin(void) {
  size_t cap = 4096, len = 0;
  char *buf = malloc(cap);
  while (buf != NULL) {
    size_t n = fread(buf + len, 1, cap - len - 1, stdin);
    len += n;
    if (n == 0) break;
    if (cap - len < 2) {
      char *nb = realloc(buf, cap * 2);
      if (nb == NULL) {
        free(buf);
        return NULL;
      }
      buf = nb;
      cap *= 2;
    }
  }
  if (buf) buf[len] = '\0';
  return buf;
}

static int cmd_exec(sp_runtime_t *rt, int argc, char **argv, long timeout_ms) {
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
  sp_call_opts_t opts = {.timeout_ms = timeout_ms};
  sp_result_t res;
  int rc = sp_execute(rt, argv[0], argv[1], args, &opts, &res);
  free(owned);
  if (rc != 0) return sp_cli_report(&res.error);
  sp_cli_print_json(res.json);
  sp_result_free(&res);
  return SP_EXIT_OK;
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

static int cmd_stats(sp_runtime_t *rt, int argc, char **argv) {
  sp_error_t err;
  char *json = NULL;
  if (sp_stats_json(rt, argc == 1 ? argv[0] : NULL, &json, &err) != 0) return sp_cli_report(&err);
  /* Pools running with thread_safety_checks also get the checker's report. */
  sp_cli_thread_safety_report(rt, argc == 1 ? argv[0] : NULL, &json);
  sp_cli_print_json(json);
  sp_free(json);
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
                                       {"help", no_argument, NULL, 'h'},
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
      case 'h': fputs(usage_text, stdout); return SP_EXIT_OK;
      default: fputs(usage_text, stderr); return SP_EXIT_USAGE;
    }
  }
  return -1;
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
  if (strcmp(cmd, "doctor") == 0) return sp_cli_doctor(&o, argc - optind, argv + optind);

  /* Options may also follow the command: `snakepit exec -c f.yaml POOL TOOL`. */
  int sub_argc = argc - optind;
  char **sub_argv = argv + optind;
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
  if (strcmp(cmd, "exec") && strcmp(cmd, "tools") && strcmp(cmd, "stats") && strcmp(cmd, "pools")) {
    fprintf(stderr, "snakepit: unknown command '%s'\n\n%s", cmd, usage_text);
    return SP_EXIT_USAGE;
  }
  /* Count the arguments before starting any worker. */
  int min_args = strcmp(cmd, "exec") == 0 ? 2 : 0;
  int max_args = strcmp(cmd, "exec") == 0 ? 3 : strcmp(cmd, "pools") == 0 ? 0 : 1;
  if (cargc < min_args || cargc > max_args) {
    fprintf(stderr, "snakepit: %s %s\n\n%s", cmd,
            min_args ? "needs POOL TOOL [JSON]" : max_args ? "takes at most one POOL" : "takes no arguments",
            usage_text);
    return SP_EXIT_USAGE;
  }
  if (o.url != NULL) {
    /* Hand the command and its arguments (without the options) to the client. */
    cargv[-1] = (char *)cmd;
    return sp_cli_remote(&o, cargc + 1, cargv - 1);
  }
  if (o.quiet) sp_set_log_handler(quiet_log, NULL);

  sigemptyset(&g_stop_signals);
  sigaddset(&g_stop_signals, SIGINT);
  sigaddset(&g_stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &g_stop_signals, NULL); /* inherited by the runtime's threads */

  sp_runtime_t *rt = NULL;
  sp_error_t err;
  if (sp_runtime_start_file(&rt, o.config, &err) != 0) return sp_cli_report(&err);
  pthread_t sig_thread;
  pthread_create(&sig_thread, NULL, signal_main, rt);
  pthread_detach(sig_thread);
  if (strcmp(cmd, "exec") == 0) {
    rc = cmd_exec(rt, cargc, cargv, o.timeout_ms);
  } else if (strcmp(cmd, "tools") == 0) {
    rc = cmd_tools(rt, cargc, cargv);
  } else if (strcmp(cmd, "stats") == 0) {
    rc = cmd_stats(rt, cargc, cargv);
  } else {
    char *json = NULL;
    rc = sp_pools_json(rt, &json, &err) == 0 ? (sp_cli_print_json(json), SP_EXIT_OK)
                                             : sp_cli_report(&err);
    sp_free(json);
  }
  sp_runtime_stop(rt, 5000);
  return rc;
}

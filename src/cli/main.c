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

#include "snakepit.h"

/* Exit codes, documented in `snakepit --help` and the README. */
enum {
  EXIT_OK = 0,
  EXIT_PYTHON = 1,   /* the tool raised */
  EXIT_USAGE = 2,    /* bad command line */
  EXIT_CONFIG = 3,   /* bad config or workers failed to start */
  EXIT_INVALID = 4,  /* unknown pool/tool, bad JSON or arguments */
  EXIT_TIMEOUT = 5,  /* deadline passed */
  EXIT_WORKER = 6,   /* worker crashed, protocol or internal error */
  EXIT_BUSY = 7      /* pool saturated or stopping */
};

static const char usage_text[] =
    "usage: snakepit [-c FILE] [--timeout MS] [-q] COMMAND [ARGS]\n"
    "\n"
    "Commands:\n"
    "  exec POOL TOOL [JSON]   call TOOL on POOL with JSON object arguments ('{}' if omitted,\n"
    "                          '-' reads them from stdin) and print the result as JSON\n"
    "  tools [POOL]            print the tools (name, description, parameters) of POOL or all\n"
    "  stats [POOL]            print pool statistics as JSON\n"
    "  pools                   print the configured pool names\n"
    "  version                 print the version\n"
    "\n"
    "Options:\n"
    "  -c, --config FILE   pools configuration (YAML); default: built-in pools\n"
    "                      hpc_pool (thread profile, 2 workers x 4 threads) and\n"
    "                      default (process profile, 2 workers)\n"
    "  -t, --timeout MS    per-call timeout in milliseconds (default: the pool's timeout)\n"
    "  -q, --quiet         do not forward worker output and runtime notices to stderr\n"
    "  -h, --help          show this help\n"
    "\n"
    "Exit codes: 0 ok, 1 the tool raised, 2 usage, 3 config/startup error,\n"
    "            4 invalid call (unknown pool/tool, bad arguments), 5 timeout,\n"
    "            6 worker crashed or protocol error, 7 pool saturated or stopping\n";

static int exit_code_for(int code) {
  switch (sp_err_category(code)) {
    case SP_CAT_NONE: return EXIT_OK;
    case SP_CAT_PYTHON: return EXIT_PYTHON;
    case SP_CAT_VALIDATION: return code == SP_ECONFIG ? EXIT_CONFIG : EXIT_INVALID;
    case SP_CAT_TIMEOUT: return EXIT_TIMEOUT;
    case SP_CAT_POOL: return code == SP_ENOPOOL ? EXIT_INVALID : EXIT_BUSY;
    case SP_CAT_WORKER: return code == SP_ESTARTUP ? EXIT_CONFIG : EXIT_WORKER;
    default: return EXIT_WORKER;
  }
}

static int report(const sp_error_t *e) {
  fprintf(stderr, "snakepit: %s error (%s): %s\n", sp_category_name(e->category),
          sp_err_name(e->code), e->message);
  if (e->traceback[0]) fprintf(stderr, "%s%s", e->traceback,
                               e->traceback[strlen(e->traceback) - 1] == '\n' ? "" : "\n");
  return exit_code_for(e->code);
}

static void quiet_log(int level, const char *line, void *ud) {
  (void)ud;
  if (level >= 3) fprintf(stderr, "%s\n", line);
}

/* Pretty-prints JSON text to stdout (falls back to the raw text). */
static void print_json(const char *text) {
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
  if (argc < 2 || argc > 3) {
    fprintf(stderr, "snakepit: exec needs POOL TOOL [JSON]\n\n%s", usage_text);
    return EXIT_USAGE;
  }
  char *owned = NULL;
  const char *args = argc == 3 ? argv[2] : "{}";
  if (strcmp(args, "-") == 0) {
    owned = read_stdin();
    if (owned == NULL) {
      fprintf(stderr, "snakepit: cannot read arguments from stdin: %s\n", strerror(errno));
      return EXIT_USAGE;
    }
    args = owned;
  }
  sp_call_opts_t opts = {.timeout_ms = timeout_ms};
  sp_result_t res;
  int rc = sp_execute(rt, argv[0], argv[1], args, &opts, &res);
  free(owned);
  if (rc != 0) return report(&res.error);
  print_json(res.json);
  sp_result_free(&res);
  return EXIT_OK;
}

static int cmd_tools(sp_runtime_t *rt, int argc, char **argv) {
  sp_error_t err;
  char *json = NULL;
  if (argc > 1) {
    fprintf(stderr, "snakepit: tools takes at most one POOL\n");
    return EXIT_USAGE;
  }
  if (argc == 1) {
    if (sp_tools_json(rt, argv[0], &json, &err) != 0) return report(&err);
    print_json(json);
    sp_free(json);
    return EXIT_OK;
  }
  char *pools = NULL;
  if (sp_pools_json(rt, &pools, &err) != 0) return report(&err);
  json_t *names = json_loads(pools, 0, NULL);
  json_t *all = json_object();
  size_t i;
  json_t *name;
  json_array_foreach(names, i, name) {
    if (sp_tools_json(rt, json_string_value(name), &json, &err) != 0) return report(&err);
    json_object_set_new(all, json_string_value(name), json_loads(json, 0, NULL));
    sp_free(json);
  }
  char *s = json_dumps(all, JSON_INDENT(2));
  puts(s);
  free(s);
  json_decref(all);
  json_decref(names);
  sp_free(pools);
  return EXIT_OK;
}

static int cmd_stats(sp_runtime_t *rt, int argc, char **argv) {
  sp_error_t err;
  char *json = NULL;
  if (argc > 1) {
    fprintf(stderr, "snakepit: stats takes at most one POOL\n");
    return EXIT_USAGE;
  }
  if (sp_stats_json(rt, argc == 1 ? argv[0] : NULL, &json, &err) != 0) return report(&err);
  print_json(json);
  sp_free(json);
  return EXIT_OK;
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

int main(int argc, char **argv) {
  const char *config = NULL;
  long timeout_ms = 0;
  int quiet = 0;
  static const struct option opts[] = {{"config", required_argument, NULL, 'c'},
                                       {"timeout", required_argument, NULL, 't'},
                                       {"quiet", no_argument, NULL, 'q'},
                                       {"help", no_argument, NULL, 'h'},
                                       {NULL, 0, NULL, 0}};
  int c;
  /* '+' stops at the command so its own arguments (e.g. JSON) are left alone. */
  while ((c = getopt_long(argc, argv, "+c:t:qh", opts, NULL)) != -1) {
    switch (c) {
      case 'c': config = optarg; break;
      case 't': {
        char *end = NULL;
        timeout_ms = strtol(optarg, &end, 10);
        if (end == optarg || *end != '\0' || timeout_ms <= 0) {
          fprintf(stderr, "snakepit: --timeout needs a positive number of milliseconds, got '%s'\n",
                  optarg);
          return EXIT_USAGE;
        }
        break;
      }
      case 'q': quiet = 1; break;
      case 'h': fputs(usage_text, stdout); return EXIT_OK;
      default: fputs(usage_text, stderr); return EXIT_USAGE;
    }
  }
  if (optind >= argc) {
    fputs(usage_text, stderr);
    return EXIT_USAGE;
  }
  const char *cmd = argv[optind];
  int cargc = argc - optind - 1;
  char **cargv = argv + optind + 1;
  /* Options may also follow the command: `snakepit exec -c f.yaml POOL TOOL`. */
  optind = 0; /* 0 makes glibc re-initialise getopt */
  int sub_argc = cargc + 1;
  char **sub_argv = cargv - 1;
  while ((c = getopt_long(sub_argc, sub_argv, "+c:t:qh", opts, NULL)) != -1) {
    switch (c) {
      case 'c': config = optarg; break;
      case 't': timeout_ms = strtol(optarg, NULL, 10); break;
      case 'q': quiet = 1; break;
      case 'h': fputs(usage_text, stdout); return EXIT_OK;
      default: fputs(usage_text, stderr); return EXIT_USAGE;
    }
  }
  cargc = sub_argc - optind;
  cargv = sub_argv + optind;

  if (strcmp(cmd, "help") == 0) {
    fputs(usage_text, stdout);
    return EXIT_OK;
  }
  if (strcmp(cmd, "version") == 0) {
    printf("snakepit %s\n", sp_version());
    return EXIT_OK;
  }
  if (strcmp(cmd, "exec") && strcmp(cmd, "tools") && strcmp(cmd, "stats") && strcmp(cmd, "pools")) {
    fprintf(stderr, "snakepit: unknown command '%s'\n\n%s", cmd, usage_text);
    return EXIT_USAGE;
  }
  if (quiet) sp_set_log_handler(quiet_log, NULL);

  sigemptyset(&g_stop_signals);
  sigaddset(&g_stop_signals, SIGINT);
  sigaddset(&g_stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &g_stop_signals, NULL); /* inherited by the runtime's threads */

  sp_runtime_t *rt = NULL;
  sp_error_t err;
  if (sp_runtime_start_file(&rt, config, &err) != 0) return report(&err);
  pthread_t sig_thread;
  pthread_create(&sig_thread, NULL, signal_main, rt);
  pthread_detach(sig_thread);
  int rc;
  if (strcmp(cmd, "exec") == 0) {
    rc = cmd_exec(rt, cargc, cargv, timeout_ms);
  } else if (strcmp(cmd, "tools") == 0) {
    rc = cmd_tools(rt, cargc, cargv);
  } else if (strcmp(cmd, "stats") == 0) {
    rc = cmd_stats(rt, cargc, cargv);
  } else {
    char *json = NULL;
    rc = sp_pools_json(rt, &json, &err) == 0 ? (print_json(json), EXIT_OK) : report(&err);
    sp_free(json);
  }
  sp_runtime_stop(rt, 5000);
  return rc;
}

/*
 * pooldef.c - one pool from the command line (`--adapter MODULE.CLASS
 * [--profile thread] [--workers N] [--threads N] ...`), the way the seed's
 * threaded server starts with one command: the flags become a one-pool YAML
 * document handed to sp_runtime_start_yaml(), so they are checked exactly as a
 * file's keys are. Also the YAML quoting that `snakepit check` uses.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

int sp_cli_yaml_add(char *buf, size_t cap, size_t *len, const char *text) {
  size_t n = strlen(text);
  if (*len + n >= cap) return -1;
  memcpy(buf + *len, text, n + 1);
  *len += n;
  return 0;
}

int sp_cli_yaml_quote(char *buf, size_t cap, size_t *len, const char *s) {
  if (*len + 1 >= cap) return -1;
  buf[(*len)++] = '"';
  for (const char *p = s; *p; p++) {
    if ((unsigned char)*p < 0x20) return -1;
    if (*len + 3 >= cap) return -1;
    if (*p == '"' || *p == '\\') buf[(*len)++] = '\\';
    buf[(*len)++] = *p;
  }
  buf[(*len)++] = '"';
  buf[*len] = '\0';
  return 0;
}

int sp_cli_parse_long(const char *opt, const char *s, long lo, long hi, long *out) {
  char *end = NULL;
  errno = 0;
  long v = strtol(s, &end, 10);
  if (errno || end == s || *end != '\0' || v < lo || v > hi) {
    fprintf(stderr, "snakepit: %s needs a whole number between %ld and %ld, got '%s'\n", opt, lo,
            hi, s);
    return -1;
  }
  *out = v;
  return 0;
}

static int whole(const char *opt, const char *s, int lo, int hi, int *out) {
  long v;
  if (sp_cli_parse_long(opt, s, lo, hi, &v) != 0) return -1;
  *out = (int)v;
  return 0;
}

int sp_cli_pool_option(int ch, const char *arg, sp_cli_pool_t *p) {
  switch (ch) {
    case SP_CLI_OPT_ADAPTER: p->adapter = arg; return 1;
    case SP_CLI_OPT_NAME: p->name = arg; return 1;
    case SP_CLI_OPT_PROFILE:
      if (strcmp(arg, "thread") != 0 && strcmp(arg, "process") != 0 && strcmp(arg, "auto") != 0) {
        fprintf(stderr, "snakepit: --profile must be thread, process or auto, got '%s'\n", arg);
        return -1;
      }
      p->profile = arg;
      return 1;
    case SP_CLI_OPT_WORKERS: {
      /* MIN..MAX: a pool that sizes itself; the configuration checks the bounds. */
      const char *dots = strstr(arg, "..");
      long lo, hi;
      if (dots == NULL) return whole("--workers", arg, 1, 256, &p->workers) ? -1 : 1;
      char head[24];
      size_t n = (size_t)(dots - arg);
      snprintf(head, sizeof(head), "%.*s", (int)(n < sizeof(head) ? n : sizeof(head) - 1), arg);
      if (sp_cli_parse_long("--workers MIN..MAX", head, 1, 256, &lo) != 0 ||
          sp_cli_parse_long("--workers MIN..MAX", dots + 2, 1, 256, &hi) != 0)
        return -1;
      if (lo > hi) {
        fprintf(stderr, "snakepit: --workers %s has its minimum above its maximum\n", arg);
        return -1;
      }
      p->workers = (int)hi;
      p->min_workers = (int)lo;
      return 1;
    }
    case SP_CLI_OPT_THREADS: return whole("--threads", arg, 1, 1024, &p->threads) ? -1 : 1;
    case SP_CLI_OPT_TSCHECK: p->thread_safety_check = 1; return 1;
    case SP_CLI_OPT_PRELOAD: p->preload = 1; return 1;
    case SP_CLI_OPT_PYPATH:
    case SP_CLI_OPT_ADAPTER_ARG: {
      const char **list = ch == SP_CLI_OPT_PYPATH ? p->paths : p->args;
      size_t *n = ch == SP_CLI_OPT_PYPATH ? &p->npaths : &p->nargs;
      if (*n >= SP_CLI_MAX_LIST) {
        fprintf(stderr, "snakepit: at most %d --python-path and --adapter-arg each\n",
                SP_CLI_MAX_LIST);
        return -1;
      }
      list[(*n)++] = arg;
      return 1;
    }
    default: return 0;
  }
}

/* The flags that only mean something with --adapter. */
static const char *stray_flag(const sp_cli_pool_t *p) {
  if (p->name) return "--name";
  if (p->profile) return "--profile";
  if (p->workers) return "--workers";
  if (p->threads) return "--threads";
  if (p->thread_safety_check) return "--thread-safety-check";
  if (p->preload) return "--preload";
  if (p->npaths) return "--python-path";
  if (p->nargs) return "--adapter-arg";
  return NULL;
}

static int build_yaml(const sp_cli_pool_t *p, char *buf, size_t cap);

int sp_cli_pool_check(sp_cli_pool_t *p, const char *config) {
  const char *stray = stray_flag(p);
  if (p->adapter == NULL && stray != NULL) {
    fprintf(stderr,
            "snakepit: %s describes the pool of --adapter MODULE.CLASS; without "
            "--adapter, set it in the configuration file\n",
            stray);
    return -1;
  }
  if (p->adapter != NULL && config != NULL) {
    fprintf(stderr,
            "snakepit: -c FILE and --adapter are alternatives: the file defines its "
            "pools, --adapter defines one\n");
    return -1;
  }
  if (p->profile && strcmp(p->profile, "process") == 0 && p->threads > 1) {
    fprintf(stderr,
            "snakepit: --threads %d needs --profile thread (a process-profile worker "
            "runs one call at a time)\n",
            p->threads);
    return -1;
  }
  if (p->adapter == NULL) return 0;
  free(p->yaml);
  if ((p->yaml = malloc(SP_CLI_YAML_CAP)) == NULL || build_yaml(p, p->yaml, SP_CLI_YAML_CAP) != 0) {
    fprintf(stderr,
            "snakepit: --adapter, --name, --python-path or --adapter-arg has control "
            "characters or is too long\n");
    free(p->yaml);
    p->yaml = NULL;
    return -1;
  }
  return 0;
}

void sp_cli_pool_free(sp_cli_pool_t *p) {
  free(p->yaml);
  p->yaml = NULL;
}

/* The one-pool YAML document; -1 if it does not fit or a value has control characters. */
const char *sp_cli_pool_name(const sp_cli_pool_t *p) { return p->name ? p->name : "default"; }

static int build_yaml(const sp_cli_pool_t *p, char *buf, size_t cap) {
  size_t len = 0;
  char line[256];
  buf[0] = '\0';
  const char *profile = p->profile ? p->profile : p->threads > 1 ? "thread" : "process";
  if (sp_cli_yaml_add(buf, cap, &len, "pools:\n  - name: ") ||
      sp_cli_yaml_quote(buf, cap, &len, sp_cli_pool_name(p)) ||
      sp_cli_yaml_add(buf, cap, &len, "\n    adapter: ") ||
      sp_cli_yaml_quote(buf, cap, &len, p->adapter))
    return -1;
  snprintf(line, sizeof(line), "\n    worker_profile: %s\n", profile);
  if (sp_cli_yaml_add(buf, cap, &len, line)) return -1;
  if (p->workers && p->min_workers)
    snprintf(line, sizeof(line), "    pool_size: %d..%d\n", p->min_workers, p->workers);
  else if (p->workers)
    snprintf(line, sizeof(line), "    pool_size: %d\n", p->workers);
  if (p->workers && sp_cli_yaml_add(buf, cap, &len, line)) return -1;
  if (p->threads) snprintf(line, sizeof(line), "    threads_per_worker: %d\n", p->threads);
  if (p->threads && sp_cli_yaml_add(buf, cap, &len, line)) return -1;
  if (p->thread_safety_check && sp_cli_yaml_add(buf, cap, &len, "    thread_safety_checks: true\n"))
    return -1;
  if (p->preload && sp_cli_yaml_add(buf, cap, &len, "    preload: true\n")) return -1;
  for (int list = 0; list < 2; list++) {
    size_t n = list ? p->nargs : p->npaths;
    if (n == 0) continue;
    if (sp_cli_yaml_add(buf, cap, &len, list ? "    adapter_args: [" : "    python_path: ["))
      return -1;
    for (size_t i = 0; i < n; i++) {
      char abs[PATH_MAX];
      const char *v = list ? p->args[i] : p->paths[i];
      /* The workers' folder is ours, but an absolute path reads better in errors. */
      if (!list && realpath(v, abs) != NULL) v = abs;
      if ((i && sp_cli_yaml_add(buf, cap, &len, ", ")) || sp_cli_yaml_quote(buf, cap, &len, v))
        return -1;
    }
    if (sp_cli_yaml_add(buf, cap, &len, "]\n")) return -1;
  }
  return 0;
}

int sp_cli_start(const sp_cli_opts_t *o, sp_runtime_t **rt, sp_error_t *err) {
  if (o->pool.yaml == NULL) return sp_runtime_start_file(rt, o->config, err);
  return sp_runtime_start_yaml(rt, o->pool.yaml, strlen(o->pool.yaml), "command line", err);
}

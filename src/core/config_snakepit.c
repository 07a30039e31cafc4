/*
 * config_snakepit.c - Snakepit's configuration names mapped onto this project's:
 * adapter_module, adapter_args as grpc_server flags, worker_ttl as [N, unit], and
 * a refusal that says what to write for the keys that have no equivalent.
 */
#if !defined(_GNU_SOURCE) && !defined(_XOPEN_SOURCE)
#define _XOPEN_SOURCE 700 /* strdup */
#endif

#include "config_snakepit.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Snakepit keys with no equivalent, and what to do instead. */
static const struct {
  const char *key;
  bool top; /* a key of the file's top level (else of a pool entry) */
  const char *refusal;
} refusals[] = {
    {"pool_config", false,
     "is Snakepit's legacy pool map: write its keys (pool_size, startup_batch_size, ...) "
     "directly in this pool entry"},
    {"pool_config", true,
     "is Snakepit's legacy single-pool map: write 'pools:' with one entry "
     "(- name: default) holding its keys"},
    {"pooling_enabled", true, "remove it: every configured pool is started"},
    {"adapter_module", true,
     "belongs in a pool entry; for a Python class write 'adapter: module.Class' there"},
    {"startup_batch_delay_ms", false,
     "remove it: workers start startup_batch_size at a time, each batch as soon as the "
     "previous one is up"},
    {"capacity_strategy", false,
     "remove it: a pool's capacity is its own, pool_size x threads_per_worker"},
    {"heartbeat", false, "write ping_interval and ping_misses instead (liveness probes)"},
    {"memory_threshold_mb", false, "write worker_max_rss_mb instead"},
    {"worker_module", false, "remove it: worker_profile chooses how workers run"},
};

const char *sp__snakepit_refusal(const char *key, bool top) {
  for (size_t i = 0; i < sizeof(refusals) / sizeof(refusals[0]); i++) {
    if (refusals[i].top == top && strcmp(refusals[i].key, key) == 0) return refusals[i].refusal;
  }
  return NULL;
}

/* "Elixir.Snakepit.Adapters.GRPCPython", ":..." and the plain name are the same atom. */
static const char *elixir_name(const char *v) {
  if (v[0] == ':') v++;
  if (strncmp(v, "Elixir.", 7) == 0) v += 7;
  return v;
}

bool sp__snakepit_adapter_module(const char *value, char *why, size_t cap) {
  const char *name = elixir_name(value);
  if (strcmp(name, "Snakepit.Adapters.GRPCPython") == 0) return true;
  if (islower((unsigned char)name[0]) && strchr(name, '.') != NULL) {
    snprintf(why, cap,
             "names Snakepit's Elixir adapter, not a Python class: write 'adapter: %s' instead",
             name);
  } else {
    snprintf(why, cap,
             "only Snakepit.Adapters.GRPCPython (Python workers) has an equivalent here, got "
             "\"%s\": remove adapter_module and name the Python class with "
             "'adapter: module.Class'",
             name);
  }
  return false;
}

bool sp__snakepit_infinity(const char *text) {
  return strcmp(text, "infinity") == 0 || strcmp(text, ":infinity") == 0;
}

bool sp__snakepit_ttl(const char *number, const char *unit, char *out, size_t cap, char *why,
                      size_t whycap) {
  static const struct {
    const char *name;
    const char *suffix;
  } units[] = {{"seconds", "s"}, {"minutes", "m"}, {"hours", "h"},
               {"second", "s"},  {"minute", "m"},  {"hour", "h"}};
  const char *u = unit[0] == ':' ? unit + 1 : unit;
  for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
    if (strcmp(u, units[i].name) == 0) {
      snprintf(out, cap, "%s%s", number, units[i].suffix);
      return true;
    }
  }
  snprintf(why, whycap,
           "the unit of [%s, %s] must be seconds, minutes or hours (or write a duration such "
           "as %s%s)",
           number, unit, number, "s");
  return false;
}

/* The flags Snakepit's gRPC server took that only make sense there. */
static const char *const server_only[] = {"--port", "--elixir-address", "--snakepit-run-id",
                                          "--run-id", "--grpc-port", NULL};

static bool is_server_only(const char *flag) {
  for (size_t i = 0; server_only[i] != NULL; i++) {
    size_t n = strlen(server_only[i]);
    if (strncmp(flag, server_only[i], n) == 0 && (flag[n] == '\0' || flag[n] == '=')) return true;
  }
  return false;
}

/* "--flag value" or "--flag=value": the value, advancing *i past it; NULL if missing. */
static const char *flag_value(char **args, size_t count, size_t *i, const char *flag) {
  size_t n = strlen(flag);
  if (args[*i][n] == '=') return args[*i] + n + 1;
  if (*i + 1 >= count) return NULL;
  return args[++*i];
}

static bool flag_is(const char *arg, const char *flag) {
  size_t n = strlen(flag);
  return strncmp(arg, flag, n) == 0 && (arg[n] == '\0' || arg[n] == '=');
}

int sp__snakepit_flags(sp__pool_config_t *pc, sp__snakepit_set_t *set, char *why, size_t cap) {
  const char *last = "";
  char **args = pc->adapter_args;
  size_t count = pc->adapter_args_count;
  bool flags = false;
  const char *adapter = NULL;
  int profile = -1;
  long threads = 0;
  bool checks = false;
  for (size_t i = 0; i < count; i++) flags |= flag_is(args[i], "--adapter");
  if (!flags) return 0;
  for (size_t i = 0; i < count; i++) {
    const char *arg = last = args[i];
    const char *v = NULL;
    char *end = NULL;
    if (flag_is(arg, "--adapter")) {
      if ((v = flag_value(args, count, &i, "--adapter")) == NULL) goto missing;
      adapter = v;
    } else if (flag_is(arg, "--mode")) {
      if ((v = flag_value(args, count, &i, "--mode")) == NULL) goto missing;
      if (strcmp(v, "threaded") == 0 || strcmp(v, "thread") == 0) {
        profile = SP__PROFILE_THREAD;
      } else if (strcmp(v, "process") == 0) {
        profile = SP__PROFILE_PROCESS;
      } else {
        snprintf(why, cap, "--mode %s: write worker_profile: thread or process instead", v);
        return -1;
      }
    } else if (flag_is(arg, "--max-workers")) {
      if ((v = flag_value(args, count, &i, "--max-workers")) == NULL) goto missing;
      threads = strtol(v, &end, 10);
      if (end == v || *end != '\0' || threads < 1 || threads > 1024) {
        snprintf(why, cap, "--max-workers %s: write threads_per_worker: N (1..1024) instead", v);
        return -1;
      }
    } else if (flag_is(arg, "--thread-safety-check")) {
      checks = true;
    } else if (is_server_only(arg)) {
      snprintf(why, cap,
               "%s configured Snakepit's gRPC server; workers here talk to the manager over "
               "their own socket: remove it",
               arg);
      return -1;
    } else {
      snprintf(why, cap,
               "holds Snakepit's server flags (it has --adapter), and '%s' is not one this "
               "project maps (--adapter, --mode, --max-workers, --thread-safety-check); "
               "Snakepit never passed them to the adapter: remove it",
               arg);
      return -1;
    }
  }
  if (adapter != NULL && set->adapter && strcmp(adapter, pc->adapter) != 0) {
    snprintf(why, cap, "--adapter %s contradicts adapter: %s; keep one of them", adapter,
             pc->adapter);
    return -1;
  }
  if (profile >= 0 && set->profile && (int)pc->profile != profile) {
    snprintf(why, cap, "--mode contradicts worker_profile; keep worker_profile");
    return -1;
  }
  if (threads > 0) {
    if (set->threads && pc->threads_per_worker != threads) {
      snprintf(why, cap, "--max-workers %ld contradicts threads_per_worker: %d; keep one",
               threads, pc->threads_per_worker);
      return -1;
    }
    if ((profile >= 0 ? profile : (int)pc->profile) == SP__PROFILE_PROCESS && threads > 1) {
      snprintf(why, cap,
               "--max-workers %ld sized Snakepit's gRPC thread pool; a process worker runs one "
               "call at a time: remove it, or write worker_profile: thread and "
               "threads_per_worker: %ld",
               threads, threads);
      return -1;
    }
  }
  if (adapter != NULL && !set->adapter) {
    char *copy = strdup(adapter);
    if (copy == NULL) return -2;
    free(pc->adapter);
    pc->adapter = copy;
  }
  if (profile >= 0) pc->profile = (sp__profile_t)profile;
  if (threads > 0) {
    pc->threads_per_worker = (int)threads;
    set->threads = true; /* so the profile's default does not replace it */
  }
  if (checks) pc->thread_safety_checks = 1;
  for (size_t i = 0; i < count; i++) free(args[i]);
  pc->adapter_args_count = 0;
  return 0;
missing:
  snprintf(why, cap, "%s needs a value after it", last);
  return -1;
}

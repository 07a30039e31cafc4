/*
 * doctor.c - `snakepit doctor [POOL...]`: whether this machine and the configured
 * pools can do what the configuration asks. It starts the pools, asks one worker
 * of each for its Python's facts (the "environment" of its worker's report: build,
 * GIL at start / after the adapter's imports / now, NumPy and BLAS threads,
 * libraries the compatibility matrix flags) and adds the machine's (CPUs,
 * /dev/shm, open-file limit); then a verdict per finding, with what to do.
 */
#include <getopt.h>
#include <jansson.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "cli.h"

/* File descriptors a worker costs the manager (socket, output pipe, fork-server
 * hand-over, process handles) with room to spare, plus the manager's own. */
#define FDS_PER_WORKER 8
#define FDS_BASE 64
/* `snakepit serve --max-connections` default. */
#define SERVE_CONNECTIONS 1024
/* Docker's default /dev/shm; below it shared-memory users (multiprocessing,
 * PyTorch data loaders) fail. */
#define SHM_SMALL (64ull << 20)

static const char doctor_usage[] =
    "usage: snakepit [-c FILE] doctor [POOL...] [--json]\n"
    "\n"
    "Starts the pools (all, or the ones named) and tells whether they can run as\n"
    "configured: the embedded Python and its build (free-threaded or not), the GIL\n"
    "at start, after each pool's adapter imports and now, NumPy and its BLAS thread\n"
    "settings, installed libraries the compatibility matrix flags, CPUs, /dev/shm and\n"
    "the open-file limit; each finding with what to do.\n"
    "\n"
    "  --json   print the facts and findings as JSON\n"
    "\n"
    "Exit codes: 0 the pools run as configured (warnings say where they fall short),\n"
    "            3 a pool cannot start or cannot run as configured, 2 usage.\n";

typedef struct {
  json_t *findings; /* [{level, pool, message, advice}] */
  int fails, warns;
} report_t;

static void add(report_t *r, const char *level, const char *pool, const char *advice,
                const char *fmt, ...) {
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  json_array_append_new(r->findings, json_pack("{s:s, s:s?, s:s, s:s?}", "level", level, "pool",
                                               pool, "message", msg, "advice", advice));
  r->fails += strcmp(level, "fail") == 0;
  r->warns += strcmp(level, "warn") == 0;
}

static json_t *machine_facts(void) {
  json_t *m = json_object();
  long online = sysconf(_SC_NPROCESSORS_ONLN);
  cpu_set_t set;
  long usable = sched_getaffinity(0, sizeof(set), &set) == 0 ? CPU_COUNT(&set) : online;
  json_object_set_new(m, "cpus", json_integer(online));
  json_object_set_new(m, "cpus_usable", json_integer(usable));
  struct statvfs vfs;
  if (statvfs("/dev/shm", &vfs) == 0) {
    json_object_set_new(m, "shm_bytes", json_integer((json_int_t)(vfs.f_blocks * vfs.f_frsize)));
    json_object_set_new(m, "shm_free_bytes", json_integer((json_int_t)(vfs.f_bavail * vfs.f_frsize)));
  } else {
    json_object_set_new(m, "shm_bytes", json_null());
  }
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
    json_object_set_new(m, "open_files_soft",
                        rl.rlim_cur == RLIM_INFINITY ? json_null() : json_integer((json_int_t)rl.rlim_cur));
    json_object_set_new(m, "open_files_hard",
                        rl.rlim_max == RLIM_INFINITY ? json_null() : json_integer((json_int_t)rl.rlim_max));
  }
  return m;
}

static long long jint(const json_t *o, const char *key) {
  return (long long)json_integer_value(json_object_get(o, key));
}

static int jtrue(const json_t *o, const char *key) { return json_is_true(json_object_get(o, key)); }

static void check_machine(report_t *r, const json_t *m, long long workers) {
  long long need = FDS_BASE + FDS_PER_WORKER * workers;
  json_t *soft = json_object_get(m, "open_files_soft");
  if (json_is_integer(soft) && json_integer_value(soft) < need) {
    char adv[128];
    snprintf(adv, sizeof(adv), "raise it: ulimit -n %lld (LimitNOFILE= in a systemd unit)", need);
    add(r, "fail", NULL, adv,
        "open-file limit %lld is below the ~%lld the configured %lld workers need", 
        (long long)json_integer_value(soft), need, workers);
  } else if (json_is_integer(soft) && json_integer_value(soft) < need + SERVE_CONNECTIONS) {
    char adv[160];
    snprintf(adv, sizeof(adv), "ulimit -n %lld, or a lower `snakepit serve --max-connections`",
             need + SERVE_CONNECTIONS);
    add(r, "warn", NULL, adv,
        "open-file limit %lld: enough for the pools, but `snakepit serve` (up to %d connections "
        "by default) could run out of files", (long long)json_integer_value(soft),
        SERVE_CONNECTIONS);
  }
  json_t *shm = json_object_get(m, "shm_bytes");
  if (!json_is_integer(shm)) {
    add(r, "warn", NULL, "mount a tmpfs on /dev/shm (containers: --shm-size)",
        "no /dev/shm: Python's multiprocessing and shared_memory cannot work here");
  } else if ((unsigned long long)json_integer_value(shm) < SHM_SMALL) {
    add(r, "warn", NULL, "give it more (docker run --shm-size=1g)",
        "/dev/shm is only %.0f MiB: tools that share memory between processes may fail",
        (double)json_integer_value(shm) / (1 << 20));
  }
}

/* The library names of `facts.libraries` with the given status and imported flag. */
static void flagged_list(const json_t *facts, const char *status, int imported, char *out,
                         size_t cap) {
  size_t used = 0;
  json_t *lib;
  size_t i;
  out[0] = '\0';
  json_array_foreach(json_object_get(facts, "libraries"), i, lib) {
    if (strcmp(sp_cli_jstr(lib, "status", ""), status) != 0) continue;
    if (imported >= 0 && jtrue(lib, "imported") != imported) continue;
    if (used < cap)
      used += (size_t)snprintf(out + used, cap - used, "%s%s", used ? ", " : "",
                               sp_cli_jstr(lib, "library", "?"));
  }
}

static void check_gil(report_t *r, const char *name, const json_t *st, const json_t *facts,
                      int threads) {
  int ft = jtrue(facts, "free_threaded_build");
  if (!ft) {
    add(r, "warn", name,
        "for parallel pure Python, build against a free-threaded CPython: make build "
        "PYTHON_CONFIG=/path/to/python3.14t-config; or use the process profile",
        "GIL build: the %d threads of a worker run pure-Python code one at a time; only waits "
        "and GIL-releasing code (NumPy, I/O) overlap", threads);
    return;
  }
  int now = jtrue(facts, "gil_enabled_now") || jtrue(st, "gil_enabled");
  if (!now) {
    add(r, "ok", name, NULL, "no GIL: pure-Python calls run in parallel on each worker's %d threads",
        threads);
    return;
  }
  const char *advice =
      "use versions of those modules built for free-threading (cp314t wheels), or run this pool "
      "on a GIL build; PYTHON_GIL=0 forces the GIL off at your own risk";
  if (jtrue(facts, "gil_enabled_at_start")) {
    add(r, "warn", name, "remove PYTHON_GIL=1 / -X gil=1 from the environment",
        "the GIL is on from the start (PYTHON_GIL=1 or -X gil=1): calls do not run Python in "
        "parallel");
  } else if (jtrue(facts, "gil_enabled_after_adapter_import")) {
    char mods[512] = "";
    size_t used = 0, i;
    json_t *m;
    json_array_foreach(json_object_get(facts, "adapter_extension_modules"), i, m)
      if (used < sizeof(mods))
        used += (size_t)snprintf(mods + used, sizeof(mods) - used, "%s%s", used ? ", " : "",
                                 json_string_value(m));
    add(r, "warn", name, advice,
        "importing the adapter turned the GIL back on: an extension module without "
        "free-threading support (among: %s); calls no longer run Python in parallel",
        mods[0] ? mods : "?");
  } else {
    add(r, "warn", name, advice,
        "the GIL came back on at run time: a call imported an extension module without "
        "free-threading support; calls no longer run Python in parallel");
  }
}

static void check_pool(report_t *r, const char *name, const json_t *st, const json_t *facts,
                       const json_t *machine) {
  int thread = strcmp(sp_cli_jstr(st, "profile", ""), "thread") == 0;
  long long size = jint(st, "pool_size"), threads = jint(st, "threads_per_worker");
  if (thread && threads > 1) check_gil(r, name, st, facts, (int)threads);
  int parallel_threads = thread && jtrue(facts, "free_threaded_build") &&
                         !jtrue(facts, "gil_enabled_now");
  long long busy = parallel_threads ? size * threads : size;
  long long usable = jint(machine, "cpus_usable");
  if (usable > 0 && busy > usable)
    add(r, "info", name, NULL,
        "up to %lld calls can compute at once, on %lld usable CPUs: CPU-bound calls share them",
        busy, usable);

  const json_t *np = json_object_get(facts, "numpy");
  if (!jtrue(np, "installed")) {
    add(r, "info", name, "install NumPy for this Python, or keep NumPy tools on a GIL-build pool",
        "NumPy is not installed for Python %s: tools that need it fail alone (MissingDependency)",
        sp_cli_jstr(facts, "python_version", "?"));
  } else if (jtrue(np, "imported")) {
    const json_t *env = json_object_get(np, "blas_thread_env");
    const char *ob = sp_cli_jstr(env, "OPENBLAS_NUM_THREADS", NULL);
    const char *omp = sp_cli_jstr(env, "OMP_NUM_THREADS", NULL);
    long blas = ob ? atol(ob) : omp ? atol(omp) : 0;
    if (blas > 1 && usable > 0 && busy * blas > usable)
      add(r, "warn", name, "set OPENBLAS_NUM_THREADS=1 (the default) in adapter_env",
          "BLAS runs %ld threads per call with %lld calls at once on %lld CPUs: oversubscribed",
          blas, busy, usable);
  }
  char libs[512];
  flagged_list(facts, "unsafe", 1, libs, sizeof(libs));
  if (libs[0] && thread && threads > 1)
    add(r, "warn", name,
        "lock around every use, keep per-thread objects, or use the process profile "
        "(`snakepit check ADAPTER` shows where)",
        "the adapter imported libraries the compatibility matrix marks unsafe with threads: %s",
        libs);
}

static void print_pool(const json_t *p) {
  const json_t *st = json_object_get(p, "stats"), *f = json_object_get(p, "python");
  printf("\npool %s: %s profile, %lld workers x %lld threads, adapter %s\n",
         sp_cli_jstr(st, "name", "?"), sp_cli_jstr(st, "profile", "?"), jint(st, "pool_size"),
         jint(st, "threads_per_worker"), sp_cli_jstr(st, "adapter", "?"));
  if (f == NULL) return;
  printf("  Python %s, %s; GIL %s at start, %s after the adapter's imports, %s now\n",
         sp_cli_jstr(f, "python_version", "?"),
         jtrue(f, "free_threaded_build") ? "free-threaded build" : "GIL build",
         jtrue(f, "gil_enabled_at_start") ? "on" : "off",
         jtrue(f, "gil_enabled_after_adapter_import") ? "on" : "off",
         jtrue(f, "gil_enabled_now") ? "on" : "off");
  const json_t *np = json_object_get(f, "numpy");
  if (!jtrue(np, "installed")) {
    printf("  NumPy: not installed for this Python\n");
  } else {
    const json_t *env = json_object_get(np, "blas_thread_env");
    printf("  NumPy: %s%s; BLAS threads: OPENBLAS_NUM_THREADS=%s OMP_NUM_THREADS=%s "
           "MKL_NUM_THREADS=%s\n",
           jtrue(np, "imported") ? sp_cli_jstr(np, "version", "?") : "installed",
           jtrue(np, "imported") ? " (imported by the adapter)" : ", not imported by the adapter",
           sp_cli_jstr(env, "OPENBLAS_NUM_THREADS", "unset"),
           sp_cli_jstr(env, "OMP_NUM_THREADS", "unset"), sp_cli_jstr(env, "MKL_NUM_THREADS", "unset"));
    size_t i;
    json_t *lib;
    json_array_foreach(json_object_get(np, "blas_libraries"), i, lib)
      printf("    BLAS library loaded: %s\n", json_string_value(lib));
  }
  char unsafe[512], conditional[512];
  flagged_list(f, "unsafe", -1, unsafe, sizeof(unsafe));
  flagged_list(f, "conditional", -1, conditional, sizeof(conditional));
  printf("  installed libraries the compatibility matrix flags: unsafe: %s; conditional: %s\n",
         unsafe[0] ? unsafe : "none", conditional[0] ? conditional : "none");
}

static void print_findings(const json_t *findings, const char *pool) {
  size_t i;
  json_t *f;
  json_array_foreach(findings, i, f) {
    const char *fp = sp_cli_jstr(f, "pool", NULL);
    if ((pool == NULL) != (fp == NULL) || (pool && strcmp(pool, fp) != 0)) continue;
    printf("  [%s] %s\n", sp_cli_jstr(f, "level", "?"), sp_cli_jstr(f, "message", ""));
    const char *adv = sp_cli_jstr(f, "advice", NULL);
    if (adv) printf("         -> %s\n", adv);
  }
}

/* Facts of one pool's worker (its report's "environment"), or NULL with a fail finding. */
static json_t *ask_pool(sp_runtime_t *rt, report_t *r, const char *name) {
  sp_result_t res;
  if (sp_worker_reports(rt, name, NULL, &res) != 0) {
    add(r, "fail", name, NULL, "its workers did not answer: %s", res.error.message);
    sp_result_free(&res);
    return NULL;
  }
  json_t *doc = json_loads(res.json, 0, NULL);
  sp_result_free(&res);
  json_t *pool = json_array_get(json_object_get(doc, "pools"), 0), *w;
  json_t *facts = NULL;
  const char *id;
  json_object_foreach(json_object_get(pool, "workers"), id, w) {
    if (facts == NULL) facts = json_incref(json_object_get(w, "environment"));
  }
  if (facts == NULL) {
    const char *why = "no worker is running";
    json_object_foreach(json_object_get(pool, "missing"), id, w) why = json_string_value(w);
    add(r, "fail", name, NULL, "its workers did not answer: %s", why ? why : "?");
  }
  json_decref(doc);
  return facts;
}

int sp_cli_doctor(const sp_cli_opts_t *o, int argc, char **argv) {
  static const struct option opts[] = {{"json", no_argument, NULL, 'j'},
                                       {"help", no_argument, NULL, 'h'},
                                       {NULL, 0, NULL, 0}};
  int as_json = 0, c;
  optind = 1;
  while ((c = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
    if (c == 'j') as_json = 1;
    else if (c == 'h') return fputs(doctor_usage, stdout), SP_EXIT_OK;
    else return fputs(doctor_usage, stderr), SP_EXIT_USAGE;
  }
  report_t r = {json_array(), 0, 0};
  json_t *machine = machine_facts(), *pools = json_array();

  sp_runtime_t *rt = NULL;
  sp_error_t err;
  int started = sp_runtime_start_file(&rt, o->config, &err) == 0;
  long long workers = 0;
  if (!started) {
    add(&r, "fail", NULL, "fix the configuration or the adapter (the error above says where)",
        "the pools cannot start: %s", err.message);
    if (err.traceback[0]) fprintf(stderr, "%s", err.traceback);
  } else {
    char *names_json = NULL;
    json_t *names = NULL;
    if (sp_pools_json(rt, &names_json, &err) == 0) names = json_loads(names_json, 0, NULL);
    sp_free(names_json);
    for (int i = optind; i < argc; i++) {
      int known = 0;
      size_t k;
      json_t *n;
      json_array_foreach(names, k, n) known |= strcmp(json_string_value(n), argv[i]) == 0;
      if (!known) {
        fprintf(stderr, "snakepit doctor: no pool named '%s'\n", argv[i]);
        json_decref(names);
        sp_runtime_stop(rt, 5000);
        json_decref(machine);
        json_decref(pools);
        json_decref(r.findings);
        return SP_EXIT_INVALID;
      }
    }
    size_t k;
    json_t *n;
    json_array_foreach(names, k, n) {
      const char *name = json_string_value(n);
      int wanted = optind >= argc;
      for (int i = optind; i < argc; i++) wanted |= strcmp(argv[i], name) == 0;
      char *stats = NULL;
      if (sp_stats_json(rt, name, &stats, &err) != 0) continue;
      json_t *st = json_loads(stats, 0, NULL);
      sp_free(stats);
      workers += jint(st, "pool_size");
      if (!wanted) {
        json_decref(st);
        continue;
      }
      json_t *facts = ask_pool(rt, &r, name);
      if (facts != NULL) check_pool(&r, name, st, facts, machine);
      json_array_append_new(pools, json_pack("{s:s, s:o, s:o?}", "name", name, "stats", st,
                                             "python", facts));
    }
    json_decref(names);
    sp_runtime_stop(rt, 5000);
  }
  check_machine(&r, machine, workers);

  const char *verdict = r.fails   ? "cannot run as configured"
                        : r.warns ? "runs as configured, with warnings"
                                  : "runs as configured";
  if (as_json) {
    json_t *out = json_pack("{s:o, s:o, s:O, s:s, s:b}", "machine", machine, "pools", pools,
                            "findings", r.findings, "verdict", verdict, "ok", r.fails == 0);
    char *s = json_dumps(out, JSON_INDENT(2));
    puts(s ? s : "{}");
    free(s);
    json_decref(out);
  } else {
    printf("machine: %lld CPUs (%lld usable by this process), /dev/shm ", jint(machine, "cpus"),
           jint(machine, "cpus_usable"));
    if (json_is_integer(json_object_get(machine, "shm_bytes")))
      printf("%.0f MiB (%.0f MiB free)", (double)jint(machine, "shm_bytes") / (1 << 20),
             (double)jint(machine, "shm_free_bytes") / (1 << 20));
    else
      printf("missing");
    printf(", open files %lld (hard %lld)\n", jint(machine, "open_files_soft"),
           jint(machine, "open_files_hard"));
    print_findings(r.findings, NULL);
    size_t i;
    json_t *p;
    json_array_foreach(pools, i, p) {
      print_pool(p);
      print_findings(r.findings, sp_cli_jstr(p, "name", ""));
    }
    printf("\nverdict: %s (%d problem%s, %d warning%s)\n", verdict, r.fails, r.fails == 1 ? "" : "s",
           r.warns, r.warns == 1 ? "" : "s");
    json_decref(machine);
    json_decref(pools);
  }
  json_decref(r.findings);
  return r.fails ? SP_EXIT_CONFIG : SP_EXIT_OK;
}

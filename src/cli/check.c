/*
 * check.c - `snakepit check ADAPTER`: loads an adapter in a worker with the SDK's
 * thread-safety checks on, runs each tool concurrently and reports what the checker
 * found (unlocked shared-state writes, unsafe libraries, a missing declaration).
 */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "cli.h"
#include "clock.h"

static const char check_usage[] =
    "usage: snakepit check ADAPTER [options]\n"
    "\n"
    "Loads ADAPTER (module.Class) in a worker with thread-safety checks on, then runs\n"
    "each of its tools concurrently and reports: the __thread_safe__ declaration, the\n"
    "tools, the libraries the adapter imported (compatibility matrix), unlocked writes\n"
    "to shared adapter state (attribute, function, file:line, threads), unsafe\n"
    "libraries, and tools that fail only under concurrent load.\n"
    "\n"
    "Options:\n"
    "  --profile thread|process  worker profile (default thread)\n"
    "  --threads N         threads of the worker (thread profile; default 8), or\n"
    "                      workers (process profile; default 2)\n"
    "  --calls N           concurrent calls per tool (default 16 per thread)\n"
    "  --args FILE         JSON object: tool name -> arguments object, or a list of\n"
    "                      them used in turn (default: each tool's defaults; required\n"
    "                      parameters get a simple value of their type)\n"
    "  --python-path DIR   add DIR to the adapter's import path (repeatable; the\n"
    "                      current directory is always searched)\n"
    "  --adapter-arg ARG   pass ARG to the adapter's constructor (repeatable)\n"
    "  --tool NAME         run only this tool (repeatable)\n"
    "  --skip NAME         do not run this tool (repeatable)\n"
    "  --allow LIB         do not count unsafe library LIB as a problem (you lock around it)\n"
    "  --strict            strict checks: the first finding raises inside the call\n"
    "  --json              print the report as JSON\n"
    "  -v, --verbose       show the worker's output (warnings as they happen)\n"
    "  -t, --timeout MS    per-call timeout (default 30000)\n"
    "\n"
    "Exit codes: 0 no problem found and every tool exercised, 8 problems found,\n"
    "            9 no problem found but some tools could not be exercised (their\n"
    "            arguments were rejected: give them with --args, or --skip them),\n"
    "            3 the adapter failed to load, 2 usage, 6 the worker failed while checking.\n";

/* ---- small helpers -------------------------------------------------------------- */

int sp_check_in_list(const char *const *list, size_t n, const char *s) {
  for (size_t i = 0; i < n; i++)
    if (strcmp(list[i], s) == 0) return 1;
  return 0;
}

static int parse_int(const char *s, int lo, int hi, int *out) {
  char *end = NULL;
  errno = 0;
  long v = strtol(s, &end, 10);
  if (errno || end == s || *end != '\0' || v < lo || v > hi) return -1;
  *out = (int)v;
  return 0;
}

static double now_s(void) { return (double)sp__now_ns() / 1e9; }

/* ---- options and the pool ------------------------------------------------------------ */

static int usage_error(const char *msg) {
  fprintf(stderr, "snakepit check: %s\n", msg);
  return -1;
}

static int parse_check(int argc, char **argv, check_opts_t *c) {
  static const struct option opts[] = {{"profile", required_argument, NULL, 'P'},
                                       {"threads", required_argument, NULL, 'n'},
                                       {"calls", required_argument, NULL, 'k'},
                                       {"args", required_argument, NULL, 'a'},
                                       {"python-path", required_argument, NULL, 'y'},
                                       {"tool", required_argument, NULL, 'T'},
                                       {"skip", required_argument, NULL, 'S'},
                                       {"allow", required_argument, NULL, 'A'},
                                       {"adapter-arg", required_argument, NULL, 'R'},
                                       {"strict", no_argument, NULL, 's'},
                                       {"json", no_argument, NULL, 'j'},
                                       {"verbose", no_argument, NULL, 'v'},
                                       {"timeout", required_argument, NULL, 't'},
                                       {"quiet", no_argument, NULL, 'q'},
                                       {"help", no_argument, NULL, 'h'},
                                       {NULL, 0, NULL, 0}};
  int ch, calls = 0;
  optind = 0; /* 0 makes glibc re-initialise getopt */
  while ((ch = getopt_long(argc, argv, "vqht:", opts, NULL)) != -1) {
    switch (ch) {
      case 'P':
        if (strcmp(optarg, "thread") != 0 && strcmp(optarg, "process") != 0)
          return usage_error("--profile must be thread or process");
        c->thread_profile = strcmp(optarg, "thread") == 0;
        break;
      case 'n':
        if (parse_int(optarg, 1, 1024, &c->threads) != 0)
          return usage_error("--threads must be 1..1024");
        break;
      case 'k':
        if (parse_int(optarg, 1, 1000000, &calls) != 0)
          return usage_error("--calls must be 1..1000000");
        break;
      case 't': {
        int ms;
        if (parse_int(optarg, 1, INT_MAX, &ms) != 0)
          return usage_error("--timeout needs a positive number of milliseconds");
        c->timeout_ms = ms;
        break;
      }
      case 'a': c->args_file = optarg; break;
      case 'y':
      case 'T':
      case 'S':
      case 'R':
      case 'A': {
        const char **list = ch == 'y'   ? c->paths
                            : ch == 'T' ? c->only
                            : ch == 'S' ? c->skip
                            : ch == 'R' ? c->aargs
                                        : c->allow;
        size_t *n = ch == 'y'   ? &c->npaths
                    : ch == 'T' ? &c->nonly
                    : ch == 'S' ? &c->nskip
                    : ch == 'R' ? &c->naargs
                                : &c->nallow;
        if (*n >= MAX_LIST - 1)
          return usage_error("too many --python-path/--tool/--skip/--allow/--adapter-arg");
        list[(*n)++] = optarg;
        break;
      }
      case 's': c->strict = 1; break;
      case 'j': c->json = 1; break;
      case 'v': c->verbose = 1; break;
      case 'q': c->quiet = 1; break;
      case 'h': fputs(check_usage, stdout); return 1;
      default: fputs(check_usage, stderr); return -1;
    }
  }
  if (optind + 1 != argc) {
    fprintf(stderr, "snakepit check: needs exactly one ADAPTER (module.Class)\n\n%s", check_usage);
    return -1;
  }
  c->adapter = argv[optind];
  if (c->threads == 0) c->threads = c->thread_profile ? 8 : 2;
  c->calls = calls ? calls : 16 * c->threads;
  return 0;
}

/* The one-pool configuration, as YAML text in buf. */
static int build_yaml(const check_opts_t *c, char *buf, size_t cap) {
  size_t len = 0;
  char line[256], cwd[PATH_MAX];
  buf[0] = '\0';
  snprintf(line, sizeof(line),
           "pools:\n  - name: " CHECK_POOL
           "\n    worker_profile: %s\n    pool_size: %d\n"
           "    threads_per_worker: %d\n    thread_safety_checks: true\n"
           "    startup_timeout: 60s\n    timeout: %ldms\n    max_queue: 100000\n    adapter: ",
           c->thread_profile ? "thread" : "process", c->thread_profile ? 1 : c->threads,
           c->thread_profile ? c->threads : 1, c->timeout_ms > 0 ? c->timeout_ms : 30000);
  if (sp_cli_yaml_add(buf, cap, &len, line) || sp_cli_yaml_quote(buf, cap, &len, c->adapter)) return -1;
  if (sp_cli_yaml_add(buf, cap, &len, "\n    python_path: [")) return -1;
  for (size_t i = 0; i <= c->npaths; i++) {
    char abs[PATH_MAX];
    const char *dir = i < c->npaths ? c->paths[i] : getcwd(cwd, sizeof(cwd));
    if (dir == NULL || realpath(dir, abs) == NULL) {
      fprintf(stderr, "snakepit check: --python-path %s: %s\n", dir ? dir : ".", strerror(errno));
      return -2;
    }
    if ((i && sp_cli_yaml_add(buf, cap, &len, ", ")) || sp_cli_yaml_quote(buf, cap, &len, abs)) return -1;
  }
  if (c->naargs && sp_cli_yaml_add(buf, cap, &len, "]\n    adapter_args: [")) return -1;
  for (size_t i = 0; i < c->naargs; i++)
    if ((i && sp_cli_yaml_add(buf, cap, &len, ", ")) || sp_cli_yaml_quote(buf, cap, &len, c->aargs[i]))
      return -1;
  /* Each checked call pauses 200 us once it counts as running, so calls queued behind
   * it start too: short tools overlap even on a GIL build (see _host.py). */
  snprintf(line, sizeof(line),
           "]\n    adapter_env: {SNAKEPIT_THREAD_SAFETY_STAGGER_US: \"200\"%s}\n",
           c->strict ? ", SNAKEPIT_THREAD_SAFETY_CHECK: strict" : "");
  return sp_cli_yaml_add(buf, cap, &len, line);
}

/* Worker output (level 1) only with -v: the report says what the checker saw. */
static void check_log(int level, const char *line, void *ud) {
  const check_opts_t *c = ud;
  if (c->verbose || (level >= 3 && !c->quiet)) fprintf(stderr, "%s\n", line);
}

/* ---- running the tools ------------------------------------------------------------ */


/* Arguments for a tool without an --args entry: defaults, else a simple value by type. */
static json_t *default_args(const json_t *tool, const char **why) {
  json_t *args = json_object();
  size_t i;
  json_t *p;
  json_array_foreach(json_object_get(tool, "parameters"), i, p) {
    if (!json_is_true(json_object_get(p, "required"))) continue;
    const char *type = sp_cli_jstr(p, "type", "any");
    json_t *v = strcmp(type, "int") == 0     ? json_integer(1)
                : strcmp(type, "float") == 0 ? json_real(0.001)
                : strcmp(type, "str") == 0   ? json_string("snakepit-check")
                : strcmp(type, "bool") == 0  ? json_false()
                : strcmp(type, "list") == 0  ? json_array()
                : strcmp(type, "dict") == 0  ? json_object()
                                             : NULL;
    if (v == NULL) {
      *why = "a required parameter has no type to make a value from (give it with --args FILE)";
      json_decref(args);
      return NULL;
    }
    json_object_set_new(args, sp_cli_jstr(p, "name", "?"), v);
  }
  return args;
}

static void *tool_thread(void *arg) {
  tool_run_t *t = arg;
  sp_call_opts_t opts = {0};
  size_t nargs = json_array_size(t->args);
  for (;;) {
    int i = atomic_fetch_add(&t->next, 1);
    if (i >= t->calls) break;
    char *args = json_dumps(json_array_get(t->args, (size_t)i % nargs), JSON_COMPACT);
    sp_result_t res;
    int rc = sp_execute(t->rt, CHECK_POOL, t->name, args ? args : "{}", &opts, &res);
    free(args);
    pthread_mutex_lock(&t->mu);
    if (rc == 0) {
      t->ok++;
    } else {
      t->failed++;
      if (rc == SP_ECRASHED) t->crashed++;
      if (!t->first_error[0])
        snprintf(t->first_error, sizeof(t->first_error), "%s%s%s", res.error.python_type,
                 res.error.python_type[0] ? ": " : "", res.error.message);
    }
    pthread_mutex_unlock(&t->mu);
    sp_result_free(&res);
  }
  return NULL;
}

/* One call alone, then `calls` calls from `clients` threads at once. */
static void run_tool(tool_run_t *t, int clients) {
  char *args = json_dumps(json_array_get(t->args, 0), JSON_COMPACT);
  sp_result_t res;
  int rc = sp_execute(t->rt, CHECK_POOL, t->name, args ? args : "{}", NULL, &res);
  free(args);
  if (rc != 0) {
    snprintf(t->alone_error, sizeof(t->alone_error), "%s%s%s", res.error.python_type,
             res.error.python_type[0] ? ": " : "", res.error.message);
    sp_result_free(&res);
    t->skipped = "fails when called alone";
    return;
  }
  sp_result_free(&res);
  pthread_t th[256];
  if (clients > 256) clients = 256;
  if (clients > t->calls) clients = t->calls;
  atomic_store(&t->next, 0);
  double t0 = now_s();
  int started = 0;
  for (int i = 0; i < clients; i++)
    if (pthread_create(&th[started], NULL, tool_thread, t) == 0) started++;
  if (started == 0) tool_thread(t);
  for (int i = 0; i < started; i++) pthread_join(th[i], NULL);
  t->seconds = now_s() - t0;
}

static json_t *load_args_file(const char *path) {
  json_error_t jerr;
  json_t *o = json_load_file(path, 0, &jerr);
  if (o == NULL) {
    if (jerr.line > 0)
      fprintf(stderr, "snakepit check: --args %s:%d: %s\n", path, jerr.line, jerr.text);
    else
      fprintf(stderr, "snakepit check: --args %s\n", jerr.text);
    return NULL;
  }
  const char *k;
  json_t *v;
  int bad = !json_is_object(o);
  json_object_foreach(o, k, v) {
    if (json_is_object(v)) continue;
    size_t i;
    json_t *e;
    if (!json_is_array(v) || json_array_size(v) == 0) bad = 1;
    json_array_foreach(v, i, e) bad |= !json_is_object(e);
  }
  if (bad) {
    fprintf(stderr,
            "snakepit check: --args %s: must map each tool name to an arguments object "
            "or a non-empty list of them\n",
            path);
    json_decref(o);
    return NULL;
  }
  return o;
}

/*
 * Every worker's checker report, read and reset: a new object {worker id:
 * report}, or NULL with err set when no worker answered.
 */
static json_t *collect_reports(sp_runtime_t *rt, sp_error_t *err) {
  sp_report_opts_t opts = SP_REPORT_OPTS_INIT;
  opts.reset = 1;
  sp_result_t res;
  if (sp_worker_reports(rt, CHECK_POOL, &opts, &res) != 0) {
    sp_error_copy(err, &res.error);
    sp_result_free(&res);
    return NULL;
  }
  json_t *doc = json_loads(res.json, 0, NULL);
  sp_result_free(&res);
  json_t *pool = json_array_get(json_object_get(doc, "pools"), 0);
  json_t *by_worker = json_object(), *r;
  const char *wid;
  json_object_foreach(json_object_get(pool, "workers"), wid, r) {
    json_t *ts = json_object_get(r, "thread_safety");
    if (json_is_object(ts)) json_object_set(by_worker, wid, ts);
  }
  if (json_object_size(by_worker) == 0) {
    json_t *missing = json_object_get(pool, "missing");
    const char *why = "no worker is running";
    json_object_foreach(missing, wid, r) why = json_string_value(r);
    sp_error_setf(err, SP_ECRASHED, "no worker reported its findings (%s)", why ? why : "?");
    json_decref(by_worker);
    by_worker = NULL;
  }
  json_decref(doc);
  return by_worker;
}

/* The reports {key: report} merged into one (new reference), or NULL with err set. */
static json_t *merge_reports(json_t *reports, sp_error_t *err) {
  char *text = json_dumps(reports, JSON_COMPACT), *merged = NULL;
  if (text == NULL) {
    sp_error_setf(err, SP_ENOMEM, "out of memory");
    return NULL;
  }
  int rc = sp_thread_safety_merge(text, &merged, err);
  free(text);
  if (rc != 0) return NULL;
  json_t *out = json_loads(merged, 0, NULL);
  sp_free(merged);
  if (out == NULL) sp_error_setf(err, SP_ENOMEM, "out of memory");
  return out;
}

int sp_cli_check(const sp_cli_opts_t *o, int argc, char **argv) {
  check_opts_t c;
  memset(&c, 0, sizeof(c));
  c.thread_profile = 1;
  c.quiet = o->quiet;
  c.timeout_ms = o->timeout_ms;
  int rc = parse_check(argc, argv, &c);
  if (rc != 0) return rc > 0 ? SP_EXIT_OK : SP_EXIT_USAGE;
  if (o->config != NULL)
    fprintf(stderr, "snakepit check: -c %s ignored: check runs the adapter in a pool of its own\n",
            o->config);

  sp_runtime_t *rt = NULL;
  json_t *file_args = NULL, *tools = NULL, *reports = NULL, *merged = NULL, *rep = NULL;
  tool_run_t *runs = NULL;
  size_t nruns = 0;
  char *tools_text = NULL;
  char yaml[16384];
  sp_error_t err;
  int exit_code = SP_EXIT_USAGE;
  size_t i;
  json_t *t;

  if (c.args_file && (file_args = load_args_file(c.args_file)) == NULL) goto done;
  if ((rc = build_yaml(&c, yaml, sizeof(yaml))) != 0) {
    if (rc == -1)
      fprintf(stderr, "snakepit check: adapter name or path is not usable in a config\n");
    goto done;
  }
  sp_set_log_handler(check_log, &c);
  if (sp_runtime_start_yaml(&rt, yaml, strlen(yaml), "snakepit check", &err) != 0) {
    if (err.code == SP_ECONFIG) {
      fprintf(stderr, "snakepit check: %s\n", err.message);
    } else {
      fprintf(stderr, "snakepit check: %s failed to load\n", c.adapter);
      sp_cli_report(&err);
      exit_code = SP_EXIT_CONFIG;
    }
    goto done;
  }
  exit_code = SP_EXIT_WORKER;
  if (sp_tools_json(rt, CHECK_POOL, &tools_text, &err) != 0) {
    sp_cli_report(&err);
    goto done;
  }
  tools = json_loads(tools_text, 0, NULL);
  if (file_args) {
    const char *k;
    json_t *v;
    json_object_foreach(file_args, k, v) {
      int known = 0;
      json_array_foreach(tools, i, t) known |= strcmp(sp_cli_jstr(t, "name", ""), k) == 0;
      if (!known) {
        fprintf(stderr, "snakepit check: --args names tool '%s', which %s does not have\n", k,
                c.adapter);
        exit_code = SP_EXIT_USAGE;
        goto done;
      }
    }
  }
  runs = calloc(json_array_size(tools) + 1, sizeof(*runs));
  if (runs == NULL) goto done;
  json_array_foreach(tools, i, t) {
    const char *name = sp_cli_jstr(t, "name", "");
    if (name[0] == '_' || sp_check_in_list(c.skip, c.nskip, name) ||
        (c.nonly && !sp_check_in_list(c.only, c.nonly, name)))
      continue;
    tool_run_t *r = &runs[nruns++];
    r->name = name;
    r->rt = rt;
    r->calls = c.calls;
    pthread_mutex_init(&r->mu, NULL);
    json_t *given = file_args ? json_object_get(file_args, name) : NULL;
    if (given) {
      r->args = json_is_array(given) ? json_incref(given) : json_pack("[O]", given);
    } else {
      const char *why = NULL;
      json_t *a = default_args(t, &why);
      if (a == NULL) {
        r->skipped = why;
        continue;
      }
      r->generated = json_object_size(a) > 0;
      r->args = json_pack("[o]", a);
    }
  }
  for (i = 0; i < c.nonly; i++) {
    int found = 0;
    for (size_t k = 0; k < nruns; k++) found |= strcmp(runs[k].name, c.only[i]) == 0;
    if (!found) {
      fprintf(stderr, "snakepit check: --tool %s: %s has no such tool\n", c.only[i], c.adapter);
      exit_code = SP_EXIT_USAGE;
      goto done;
    }
  }
  /* The workers' reports are read (and reset) after loading and after each tool, so
   * a worker that crashes in one tool loses only that tool's findings. */
  int clients = 2 * c.threads, want = c.thread_profile ? 1 : c.threads;
  json_t *pids = json_object(); /* every worker process seen: more than `want` means restarts */
  reports = json_object();
  /* A large adapter takes a while: on a terminal, a line that says how far it got. */
  int progress = !c.quiet && isatty(STDERR_FILENO);
  for (i = 0; i <= nruns; i++) {
    if (progress && i > 0 && !runs[i - 1].skipped) {
      fprintf(stderr, "\r\033[Ksnakepit check: tool %zu/%zu: %s (%d calls)", i, nruns,
              runs[i - 1].name, runs[i - 1].calls);
      fflush(stderr);
    }
    if (i > 0 && !runs[i - 1].skipped) run_tool(&runs[i - 1], clients);
    if (i > 0 && runs[i - 1].skipped) continue;
    json_t *batch = collect_reports(rt, &err);
    if (batch == NULL) {
      fprintf(stderr, "snakepit check: cannot read the checker's report: %s\n", err.message);
      sp_error_free(&err);
      json_decref(pids);
      goto done;
    }
    const char *wid;
    json_object_foreach(batch, wid, t) {
      char key[160];
      snprintf(key, sizeof(key), "%lld", json_integer_value(json_object_get(t, "pid")));
      json_object_set_new(pids, key, json_true());
      snprintf(key, sizeof(key), "%s#%zu", wid, i);
      json_object_set(reports, key, t);
    }
    json_decref(batch);
  }
  if (progress) fputs("\r\033[K", stderr); /* the report replaces the progress line */
  int restarted = (int)json_object_size(pids) > want;
  json_decref(pids);
  merged = merge_reports(reports, &err);
  if (merged == NULL) {
    fprintf(stderr, "snakepit check: cannot merge the checker's reports: %s\n", err.message);
    sp_error_free(&err);
    goto done;
  }
  json_object_del(merged, "workers");
  json_t *first = NULL;
  const char *key;
  json_object_foreach(reports, key, t) {
    if (first == NULL) first = t;
  }
  rep = sp_check_build_report(&c, merged, first, runs, nruns);
  if (restarted)
    json_array_append_new(json_object_get(rep, "notes"),
                          json_string("a worker restarted during the check (it crashed or was "
                                      "killed); the findings of the call that killed it are lost"));
  exit_code = json_integer_value(json_object_get(rep, "problems"))     ? SP_EXIT_FINDINGS
              : json_array_size(json_object_get(rep, "not_exercised")) ? SP_EXIT_INCOMPLETE
                                                                       : SP_EXIT_OK;
  json_object_set_new(rep, "exit_code", json_integer(exit_code));
  if (c.json) {
    char *s = json_dumps(rep, JSON_INDENT(2));
    if (s) puts(s);
    free(s);
  } else {
    sp_check_print_text(&c, rep);
  }
  fflush(stdout);

done:
  if (rt) sp_runtime_stop(rt, 5000);
  sp_set_log_handler(NULL, NULL);
  for (i = 0; runs && i < nruns; i++) {
    json_decref(runs[i].args);
    pthread_mutex_destroy(&runs[i].mu);
  }
  free(runs);
  json_decref(rep);
  json_decref(merged);
  json_decref(reports);
  json_decref(tools);
  json_decref(file_args);
  sp_free(tools_text);
  return exit_code;
}

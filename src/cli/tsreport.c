/*
 * tsreport.c - the thread-safety checker's reports: asked of every worker of a
 * pool through the built-in report tool, merged into one, and added to
 * `snakepit stats` for pools that run with thread_safety_checks.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

/* The built-in tool a worker exposes while thread_safety_checks is on (_host.py). */
#define REPORT_TOOL "_snakepit_thread_safety_report"

const char *sp_cli_jstr(const json_t *o, const char *key, const char *dflt) {
  const char *s = json_string_value(json_object_get(o, key));
  return s ? s : dflt;
}

/* ---- per-worker reports ----------------------------------------------------------- */

static int pool_has_report_tool(sp_runtime_t *rt, const char *pool) {
  char *tools = NULL;
  sp_error_t err;
  int found = 0;
  if (sp_tools_json(rt, pool, &tools, &err) != 0) return 0;
  json_t *a = json_loads(tools, 0, NULL);
  size_t i;
  json_t *t;
  json_array_foreach(a, i, t) {
    if (strcmp(sp_cli_jstr(t, "name", ""), REPORT_TOOL) == 0) found = 1;
  }
  json_decref(a);
  sp_free(tools);
  return found;
}

/*
 * Collects the report of each of the pool's `want` workers into a new object keyed by
 * worker id. A call reaches one worker; idle workers tie and the scheduler rotates
 * ties, so a few calls in a row visit them all. `args` is the report tool's arguments
 * ("{}", or {"reset": true} to start each worker's next report afresh). Returns NULL
 * (err filled) if no call succeeded.
 */
json_t *sp_cli_collect_reports(sp_runtime_t *rt, const char *pool, int want, const char *args,
                               sp_error_t *err) {
  json_t *by_worker = json_object();
  int attempts = 4 * (want > 0 ? want : 1) + 2;
  for (int i = 0; i < attempts && (int)json_object_size(by_worker) < (want > 0 ? want : 1); i++) {
    sp_result_t res;
    if (sp_execute(rt, pool, REPORT_TOOL, args, NULL, &res) != 0) {
      *err = res.error;
      sp_result_free(&res);
      continue;
    }
    json_t *r = json_loads(res.json, 0, NULL);
    sp_result_free(&res);
    if (json_is_object(r)) json_object_set(by_worker, sp_cli_jstr(r, "worker_id", "?"), r);
    json_decref(r);
  }
  if (json_object_size(by_worker) == 0) {
    json_decref(by_worker);
    return NULL;
  }
  return by_worker;
}

static void add_unique_string(json_t *arr, const char *s) {
  size_t i;
  json_t *v;
  json_array_foreach(arr, i, v) {
    if (strcmp(json_string_value(v), s) == 0) return;
  }
  json_array_append_new(arr, json_string(s));
}

/*
 * Merges per-worker reports: findings of all workers (unlocked writes keyed by kind,
 * attribute, file and line, with counts summed), the highest concurrency per method,
 * the union of warnings, unsafe libraries and undeclared adapters.
 */
json_t *sp_cli_merge_reports(json_t *by_worker) {
  json_t *out = json_object(), *writes = json_array(), *warnings = json_array();
  json_t *unsafe = json_array(), *undeclared = json_array(), *conc = json_object();
  json_t *libs = json_object();
  int strict = 0;
  const char *wid;
  json_t *r;
  json_object_foreach(by_worker, wid, r) {
    strict |= json_is_true(json_object_get(r, "strict_mode"));
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(r, "warnings"), i, v)
        add_unique_string(warnings, json_string_value(v));
    json_array_foreach(json_object_get(r, "unsafe_libraries"), i, v)
        add_unique_string(unsafe, json_string_value(v));
    json_array_foreach(json_object_get(r, "undeclared_adapters"), i, v)
        add_unique_string(undeclared, json_string_value(v));
    /* What the adapter brought in, with the import site where the hook saw it. */
    json_array_foreach(json_object_get(r, "imported_libraries"), i, v) {
      if (json_object_get(libs, sp_cli_jstr(v, "library", "?")) == NULL)
        json_object_set(libs, sp_cli_jstr(v, "library", "?"), v);
    }
    json_array_foreach(json_object_get(r, "libraries"), i, v) {
      const char *lib = sp_cli_jstr(v, "library", "?");
      if ((json_object_get(libs, lib) != NULL &&
           json_string_value(json_object_get(v, "imported_at"))) ||
          (json_object_get(libs, lib) == NULL && strcmp(sp_cli_jstr(v, "status", ""), "unsafe") == 0))
        json_object_set(libs, lib, v);
    }
    const char *m;
    json_object_foreach(json_object_get(r, "concurrent_accesses"), m, v) {
      json_t *have = json_object_get(conc, m);
      if (have == NULL || json_integer_value(v) > json_integer_value(have))
        json_object_set(conc, m, v);
    }
    json_array_foreach(json_object_get(r, "unlocked_writes"), i, v) {
      size_t j;
      json_t *w;
      int merged = 0;
      json_array_foreach(writes, j, w) {
        if (strcmp(sp_cli_jstr(w, "kind", ""), sp_cli_jstr(v, "kind", "")) == 0 &&
            strcmp(sp_cli_jstr(w, "attribute", ""), sp_cli_jstr(v, "attribute", "")) == 0 &&
            strcmp(sp_cli_jstr(w, "file", ""), sp_cli_jstr(v, "file", "")) == 0 &&
            json_integer_value(json_object_get(w, "line")) ==
                json_integer_value(json_object_get(v, "line"))) {
          json_object_set_new(w, "count",
                              json_integer(json_integer_value(json_object_get(w, "count")) +
                                           json_integer_value(json_object_get(v, "count"))));
          merged = 1;
        }
      }
      if (!merged) {
        json_t *c = json_deep_copy(v);
        json_object_set_new(c, "worker_id", json_string(wid));
        json_array_append_new(writes, c);
      }
    }
  }
  json_t *lib_list = json_array();
  const char *name;
  json_t *v;
  json_object_foreach(libs, name, v) json_array_append(lib_list, v);
  json_decref(libs);
  json_object_set_new(out, "enabled", json_true());
  json_object_set_new(out, "strict_mode", json_boolean(strict));
  size_t problems = json_array_size(writes) + json_array_size(unsafe) + json_array_size(undeclared);
  json_object_set_new(out, "problems", json_integer((json_int_t)problems));
  json_object_set_new(out, "unlocked_writes", writes);
  json_object_set_new(out, "unsafe_libraries", unsafe);
  json_object_set_new(out, "undeclared_adapters", undeclared);
  json_object_set_new(out, "concurrent_accesses", conc);
  json_object_set_new(out, "imported_libraries", lib_list);
  json_object_set_new(out, "warnings", warnings);
  json_object_set(out, "workers", by_worker);
  return out;
}

/* "thread_safety" for one pool's stats object: merged reports, or NULL if checks are off. */
static json_t *pool_thread_safety(sp_runtime_t *rt, json_t *pool_stats) {
  const char *pool = sp_cli_jstr(pool_stats, "name", NULL);
  if (pool == NULL || !pool_has_report_tool(rt, pool)) return NULL;
  sp_error_t err;
  memset(&err, 0, sizeof(err));
  int want = (int)json_integer_value(json_object_get(pool_stats, "ready_workers"));
  json_t *by_worker = sp_cli_collect_reports(rt, pool, want, "{}", &err);
  if (by_worker == NULL) {
    json_t *o = json_object();
    json_object_set_new(o, "enabled", json_true());
    json_object_set_new(o, "error", json_string(err.message));
    return o;
  }
  json_t *merged = sp_cli_merge_reports(by_worker);
  json_decref(by_worker);
  return merged;
}

int sp_cli_thread_safety_report(sp_runtime_t *rt, const char *pool, char **json) {
  json_t *stats = json_loads(*json, 0, NULL);
  if (!json_is_object(stats)) {
    json_decref(stats);
    return SP_EINVAL;
  }
  int changed = 0;
  json_t *pools = json_object_get(stats, "pools");
  if (json_is_array(pools)) {
    size_t i;
    json_t *p;
    json_array_foreach(pools, i, p) {
      if (pool != NULL && strcmp(sp_cli_jstr(p, "name", ""), pool) != 0) continue;
      json_t *ts = pool_thread_safety(rt, p);
      if (ts != NULL) changed = json_object_set_new(p, "thread_safety", ts) == 0 || changed;
    }
  } else {
    json_t *ts = pool_thread_safety(rt, stats);
    if (ts != NULL) changed = json_object_set_new(stats, "thread_safety", ts) == 0;
  }
  if (changed) {
    char *s = json_dumps(stats, JSON_COMPACT);
    if (s == NULL) {
      json_decref(stats);
      return SP_ENOMEM;
    }
    sp_free(*json);
    *json = s;
  }
  json_decref(stats);
  return 0;
}


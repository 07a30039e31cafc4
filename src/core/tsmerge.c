/*
 * tsmerge.c - merging the thread-safety checker's reports of several workers
 * (or of several rounds of one check) into one: the "thread_safety" of a
 * pool's worker reports, and sp_thread_safety_merge() for clients.
 */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "errors.h"
#include "report.h"

/* String member of a JSON object, or dflt. */
static const char *jstr(const json_t *o, const char *key, const char *dflt) {
  const char *s = json_string_value(json_object_get(o, key));
  return s ? s : dflt;
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
json_t *sp__ts_merge(json_t *by_worker) {
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
      if (json_object_get(libs, jstr(v, "library", "?")) == NULL)
        json_object_set(libs, jstr(v, "library", "?"), v);
    }
    json_array_foreach(json_object_get(r, "libraries"), i, v) {
      const char *lib = jstr(v, "library", "?");
      if ((json_object_get(libs, lib) != NULL &&
           json_string_value(json_object_get(v, "imported_at"))) ||
          (json_object_get(libs, lib) == NULL && strcmp(jstr(v, "status", ""), "unsafe") == 0))
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
        if (strcmp(jstr(w, "kind", ""), jstr(v, "kind", "")) == 0 &&
            strcmp(jstr(w, "attribute", ""), jstr(v, "attribute", "")) == 0 &&
            strcmp(jstr(w, "file", ""), jstr(v, "file", "")) == 0 &&
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


int sp_thread_safety_merge(const char *reports_json, char **merged_json, sp_error_t *err) {
  if (reports_json == NULL || merged_json == NULL)
    return sp__error_set(err, SP_EINVAL, "sp_thread_safety_merge: arguments must not be NULL");
  *merged_json = NULL;
  json_error_t jerr;
  json_t *in = json_loads(reports_json, 0, &jerr);
  if (!json_is_object(in)) {
    json_decref(in);
    return sp__error_set(err, SP_EBADJSON,
                         "thread-safety reports must be a JSON object {key: report}: %s",
                         in ? "got another JSON value" : jerr.text);
  }
  json_t *out = sp__ts_merge(in);
  json_decref(in);
  *merged_json = out ? json_dumps(out, JSON_COMPACT) : NULL;
  json_decref(out);
  if (*merged_json == NULL) return sp__error_set(err, SP_ENOMEM, "out of memory merging reports");
  sp__error_clear(err);
  return 0;
}

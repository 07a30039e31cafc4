/*
 * config.c - turns a pools.yaml file (read with libyaml's document API) into a
 * validated sp__config_t: walks the document, applies defaults and cross-key rules,
 * and reports "FILE:LINE: key 'KEY': ..." errors. Single values: config_values.c.
 */
#if !defined(_GNU_SOURCE) && !defined(_XOPEN_SOURCE)
#define _XOPEN_SOURCE 700 /* realpath and strdup without GNU extensions */
#endif

#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <yaml.h>

#include "config_keys.h"
#include "config_snakepit.h"
#include "config_values.h"
#include "errors.h"
#include "protocol.h"

/*
 * Sanity limits that are not per-pool settings. They keep a hostile or broken file
 * (and the fuzzer) from making the loader allocate without bound, and are far above
 * anything a real deployment writes.
 */
#define MAX_POOLS 256
#define MAX_LIST_ITEMS 1024
/* A pools file is a few KiB; these bounds keep a hostile one cheap to refuse. */
#define MAX_DEPTH 64 /* mappings and sequences inside each other; a config needs 4 */


/* The only top-level key; a table so unknown top-level keys share the suggestion code. */
static const sp__key_spec_t top_keys[] = {{"pools", SP__KIND_ARGS, 0, 0, 0, false}};

/* What every reader needs: the document, where it came from, and where to report. */
typedef struct {
  yaml_document_t *doc;
  const char *origin;
  const char *base_dir;
  sp_error_t *err;
} loader_t;

static int nomem(sp_error_t *err) {
  return sp__error_set(err, SP_ENOMEM, "out of memory while loading the configuration");
}

static unsigned long line_of(const yaml_node_t *node) {
  return node == NULL ? 1UL : (unsigned long)node->start_mark.line + 1UL;
}

/* Formats "ORIGIN:LINE: key 'KEY': WHAT" (or without the key part) and returns SP_ECONFIG. */
static int fail(const loader_t *ld, const yaml_node_t *node, const char *key, const char *fmt, ...)
    SP__PRINTF(4, 5);

static int fail(const loader_t *ld, const yaml_node_t *node, const char *key, const char *fmt,
                ...) {
  char what[900];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(what, sizeof(what), fmt, ap);
  va_end(ap);
  if (key != NULL) {
    return sp__error_set(ld->err, SP_ECONFIG, "%s:%lu: key '%s': %s", ld->origin, line_of(node),
                         key, what);
  }
  return sp__error_set(ld->err, SP_ECONFIG, "%s:%lu: %s", ld->origin, line_of(node), what);
}

/* An empty plain scalar ("key:" with nothing after it) or "~": YAML's null. */
static bool is_null(const yaml_node_t *node) {
  if (node == NULL || node->type != YAML_SCALAR_NODE) return false;
  if (node->data.scalar.style != YAML_PLAIN_SCALAR_STYLE) return false;
  return node->data.scalar.length == 0 || strcmp((const char *)node->data.scalar.value, "~") == 0;
}

/* The text of a scalar, or NULL for collections and for text with an embedded NUL. */
static const char *scalar_text(const yaml_node_t *node) {
  const char *s = NULL;
  if (node == NULL || node->type != YAML_SCALAR_NODE) return NULL;
  s = (const char *)node->data.scalar.value;
  return strlen(s) == node->data.scalar.length ? s : NULL;
}

/* What the user actually wrote, for the "got ..." part of a message. */
static const char *describe_node(const yaml_node_t *node, char *buf, size_t cap) {
  char text[64];
  if (node == NULL) return "nothing";
  switch (node->type) {
    case YAML_SEQUENCE_NODE: return "a list";
    case YAML_MAPPING_NODE: return "a mapping";
    case YAML_SCALAR_NODE:
      if (is_null(node)) return "an empty value";
      if (scalar_text(node) == NULL) return "text containing a NUL character";
      sp__value_sanitize(text, sizeof(text), (const char *)node->data.scalar.value,
                         node->data.scalar.length);
      snprintf(buf, cap, "\"%s\"", text);
      return buf;
    default: return "nothing";
  }
}

/* "unknown key 'X' (did you mean 'Y'?)", or the full list when nothing is close. */
static int unknown_key(const loader_t *ld, const yaml_node_t *key, const char *text,
                       const sp__key_spec_t *specs, size_t count, const char *hint) {
  char shown[80];
  char list[720];
  size_t close = sp__key_suggest(text, specs, count, list, sizeof(list));
  sp__value_sanitize(shown, sizeof(shown), text, strlen(text));
  if (close > 0) {
    return fail(ld, key, NULL, "unknown key '%s' (did you mean %s?)%s", shown, list,
                hint != NULL ? hint : "");
  }
  return fail(ld, key, NULL, "unknown key '%s' (%s)%s", shown, list, hint != NULL ? hint : "");
}

static int store_copy(const loader_t *ld, char **field, const char *text) {
  *field = strdup(text);
  return *field == NULL ? nomem(ld->err) : 0;
}

/* Reads one scalar-valued key into its field; the key node gives the reported line. */
static int read_scalar(const loader_t *ld, const sp__key_spec_t *spec, const yaml_node_t *key,
                       const yaml_node_t *value, sp__pool_config_t *pc) {
  char *field = (char *)pc + spec->offset;
  const char *text = NULL;
  char expected[256];
  char shown[96];
  sp__value_t v;
  if (is_null(value) || (text = scalar_text(value)) == NULL) goto bad;
  if (!sp__value_parse(spec, text, &v)) goto bad;
  switch (spec->kind) {
    case SP__KIND_NAME:
    case SP__KIND_TEXT:
    case SP__KIND_ADAPTER: return store_copy(ld, (char **)(void *)field, text);
    case SP__KIND_PROFILE: pc->profile = (sp__profile_t)v.integer; return 0;
    case SP__KIND_START: pc->worker_start = (sp__worker_start_t)v.integer; return 0;
    case SP__KIND_PRELOAD: pc->preload = (sp__preload_t)v.integer; return 0;
    case SP__KIND_INT:
    case SP__KIND_BOOL: *(int *)(void *)field = (int)v.integer; return 0;
    case SP__KIND_I64:
    case SP__KIND_DURATION:
    case SP__KIND_SIZE: *(int64_t *)(void *)field = v.integer; return 0;
    case SP__KIND_FRACTION: *(double *)(void *)field = v.fraction; return 0;
    case SP__KIND_ARGS:
    case SP__KIND_PATHS:
    case SP__KIND_ENV: break;
  }
bad:
  sp__value_describe(spec, expected, sizeof(expected));
  return fail(ld, key, spec->name, "%s, got %s", expected,
              describe_node(value, shown, sizeof(shown)));
}

/* adapter_args and python_path: a list of scalars (numbers keep their text). */
static int read_list(const loader_t *ld, const sp__key_spec_t *spec, const yaml_node_t *key,
                     const yaml_node_t *value, char ***items, size_t *count) {
  char expected[128];
  char shown[96];
  bool paths = spec->kind == SP__KIND_PATHS;
  size_t n = 0;
  if (is_null(value)) return 0;
  if (value == NULL || value->type != YAML_SEQUENCE_NODE) {
    sp__value_describe(spec, expected, sizeof(expected));
    return fail(ld, key, spec->name, "%s, got %s", expected,
                describe_node(value, shown, sizeof(shown)));
  }
  n = (size_t)(value->data.sequence.items.top - value->data.sequence.items.start);
  if (n > MAX_LIST_ITEMS) {
    return fail(ld, key, spec->name, "has %zu items; at most %d are allowed", n, MAX_LIST_ITEMS);
  }
  *items = calloc(n > 0 ? n : 1, sizeof(char *));
  if (*items == NULL) return nomem(ld->err);
  for (size_t i = 0; i < n; i++) {
    const yaml_node_t *item = yaml_document_get_node(ld->doc, value->data.sequence.items.start[i]);
    const char *text = scalar_text(item);
    if (text == NULL || is_null(item) || (paths && text[0] == '\0')) {
      return fail(ld, item != NULL ? item : key, spec->name, "item %zu must be %s, got %s", i + 1,
                  paths ? "a non-empty path" : "a string",
                  describe_node(item, shown, sizeof(shown)));
    }
    (*items)[i] = paths ? sp__value_resolve_path(ld->base_dir, text) : strdup(text);
    if ((*items)[i] == NULL) return nomem(ld->err);
    *count = i + 1;
  }
  return 0;
}

/* adapter_env: NAME: value pairs; values are kept as written, an empty value is "". */
static int read_env(const loader_t *ld, const yaml_node_t *key, const yaml_node_t *value,
                    sp__pool_config_t *pc) {
  char shown[96];
  size_t n = 0;
  if (is_null(value)) return 0;
  if (value == NULL || value->type != YAML_MAPPING_NODE) {
    return fail(ld, key, "adapter_env", "must be a mapping of VARIABLE: value, got %s",
                describe_node(value, shown, sizeof(shown)));
  }
  n = (size_t)(value->data.mapping.pairs.top - value->data.mapping.pairs.start);
  if (n > MAX_LIST_ITEMS) {
    return fail(ld, key, "adapter_env", "has %zu variables; at most %d are allowed", n,
                MAX_LIST_ITEMS);
  }
  pc->env_keys = calloc(n > 0 ? n : 1, sizeof(char *));
  pc->env_values = calloc(n > 0 ? n : 1, sizeof(char *));
  if (pc->env_keys == NULL || pc->env_values == NULL) return nomem(ld->err);
  for (size_t i = 0; i < n; i++) {
    const yaml_node_pair_t *pair = &value->data.mapping.pairs.start[i];
    const yaml_node_t *k = yaml_document_get_node(ld->doc, pair->key);
    const yaml_node_t *v = yaml_document_get_node(ld->doc, pair->value);
    const char *name = scalar_text(k);
    const char *text = is_null(v) ? "" : scalar_text(v);
    if (name == NULL || !sp__value_env_name_valid(name)) {
      return fail(ld, k != NULL ? k : key, "adapter_env",
                  "variable names must match [A-Za-z_][A-Za-z0-9_]* (at most 128 characters), "
                  "got %s",
                  describe_node(k, shown, sizeof(shown)));
    }
    for (size_t j = 0; j < i; j++) {
      if (strcmp(pc->env_keys[j], name) == 0) {
        return fail(ld, k, "adapter_env", "variable '%s' is set twice", name);
      }
    }
    if (text == NULL) {
      return fail(ld, v != NULL ? v : k, "adapter_env",
                  "the value of '%s' must be a string or number, got %s", name,
                  describe_node(v, shown, sizeof(shown)));
    }
    pc->env_keys[i] = strdup(name);
    if (pc->env_keys[i] == NULL) return nomem(ld->err);
    pc->env_count = i + 1;
    pc->env_values[i] = strdup(text);
    if (pc->env_values[i] == NULL) return nomem(ld->err);
  }
  return 0;
}

static int read_value(const loader_t *ld, const sp__key_spec_t *spec, const yaml_node_t *key,
                      const yaml_node_t *value, sp__pool_config_t *pc) {
  switch (spec->kind) {
    case SP__KIND_ARGS:
      return read_list(ld, spec, key, value, &pc->adapter_args, &pc->adapter_args_count);
    case SP__KIND_PATHS:
      return read_list(ld, spec, key, value, &pc->python_path, &pc->python_path_count);
    case SP__KIND_ENV: return read_env(ld, key, value, pc);
    default: return read_scalar(ld, spec, key, value, pc);
  }
}

/* The key node of a plain-string key in a mapping (for its line), or NULL. */
static const yaml_node_t *mapping_key(const loader_t *ld, const yaml_node_t *map,
                                      const char *name) {
  if (map == NULL || map->type != YAML_MAPPING_NODE) return NULL;
  for (const yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
       p++) {
    const char *text = scalar_text(yaml_document_get_node(ld->doc, p->key));
    if (text != NULL && strcmp(text, name) == 0) return yaml_document_get_node(ld->doc, p->key);
  }
  return NULL;
}

/* pool_size: MIN..MAX, a pool that sizes itself between the two. */
static int read_range(const loader_t *ld, const yaml_node_t *key, const char *text,
                      sp__pool_config_t *pc) {
  static const sp__key_spec_t bound = {"pool_size", SP__KIND_INT, 0, 0, INT64_C(1) << 40, false};
  const char *dots = strstr(text, "..");
  char lo[32];
  size_t n = (size_t)(dots - text);
  sp__value_t a, b;
  if (n == 0 || n >= sizeof(lo)) goto bad;
  memcpy(lo, text, n);
  lo[n] = '\0';
  if (!sp__value_parse(&bound, lo, &a) || !sp__value_parse(&bound, dots + 2, &b)) goto bad;
  if (a.integer < 1)
    return fail(ld, key, "pool_size", "the range %s must start at 1 worker or more", text);
  if (b.integer > SP__MAX_WORKERS)
    return fail(ld, key, "pool_size", "the range %s goes above the limit of %d workers per pool",
                text, SP__MAX_WORKERS);
  if (a.integer > b.integer)
    return fail(ld, key, "pool_size",
                "the range %s has its minimum above its maximum (write MIN..MAX, e.g. 1..4)", text);
  pc->min_workers = (int)a.integer;
  pc->pool_size = (int)b.integer;
  return 0;
bad:
  return fail(ld, key, "pool_size",
              "must be a number of workers between 1 and %d, or a range MIN..MAX such as 1..4, "
              "got \"%s\"",
              SP__MAX_WORKERS, text);
}

/* The pool's size: fixed (pool_size: N), a range (pool_size: MIN..MAX), or
 * min_workers / max_workers (each defaults to the other end's pool_size). */
static int check_workers(const loader_t *ld, const yaml_node_t *const *seen, int ranged,
                         sp__pool_config_t *pc) {
  const yaml_node_t *min = seen[KEY_MIN_WORKERS], *max = seen[KEY_MAX_WORKERS];
  if (seen[KEY_POOL_SIZE] != NULL && (min != NULL || max != NULL)) {
    return fail(ld, min != NULL ? min : max, min != NULL ? "min_workers" : "max_workers",
                "is set together with pool_size (line %lu); use pool_size: MIN..MAX or "
                "min_workers and max_workers",
                line_of(seen[KEY_POOL_SIZE]));
  }
  if (ranged) return 0;
  if (min == NULL) {
    pc->min_workers = pc->pool_size; /* fixed, or max_workers alone: a fixed pool of that size */
    return 0;
  }
  if (max == NULL) pc->pool_size = pc->min_workers > 2 ? pc->min_workers : 2;
  if (pc->min_workers > pc->pool_size) {
    return fail(ld, min, "min_workers", "is %d, above max_workers %d (line %lu)",
                pc->min_workers, pc->pool_size, line_of(max));
  }
  return 0;
}

/*
 * Snakepit's names (config_snakepit.c). A key this table does not know: 1 when it
 * is adapter_module naming Snakepit's Python adapter (accepted, nothing to set),
 * else a negative code with the refusal, or the unknown-key message.
 */
static int read_snakepit_key(const loader_t *ld, const yaml_node_t *key, const char *text,
                             const yaml_node_t *value) {
  char why[512];
  const char *refusal = sp__snakepit_refusal(text, false);
  if (refusal != NULL) return fail(ld, key, text, "%s", refusal);
  if (strcmp(text, "adapter_module") != 0) {
    return unknown_key(ld, key, text, sp__pool_keys, KEY_COUNT, NULL);
  }
  if (scalar_text(value) == NULL || is_null(value)) {
    return fail(ld, key, text, "must be Snakepit.Adapters.GRPCPython; name the Python class "
                               "with 'adapter: module.Class'");
  }
  if (!sp__snakepit_adapter_module(scalar_text(value), why, sizeof(why))) {
    return fail(ld, key, text, "%s", why);
  }
  return 1;
}

/* worker_ttl as Snakepit's [N, unit], and infinity (no limit) for worker_ttl and
 * worker_max_requests: 0 when read, 1 when the value is this project's own form. */
static int read_snakepit_limit(const loader_t *ld, const sp__key_spec_t *spec,
                               const yaml_node_t *key, const yaml_node_t *value,
                               sp__pool_config_t *pc) {
  char text[96], why[256], expected[256];
  const char *parts[2] = {NULL, NULL};
  sp__value_t v;
  if (scalar_text(value) != NULL && sp__snakepit_infinity(scalar_text(value))) {
    *(int64_t *)(void *)((char *)pc + spec->offset) = 0;
    return 0;
  }
  if (spec->kind != SP__KIND_DURATION || value == NULL || value->type != YAML_SEQUENCE_NODE) {
    return 1;
  }
  if (value->data.sequence.items.top - value->data.sequence.items.start == 2) {
    for (int i = 0; i < 2; i++) {
      parts[i] = scalar_text(yaml_document_get_node(ld->doc, value->data.sequence.items.start[i]));
    }
  }
  if (parts[0] == NULL || parts[1] == NULL) {
    return fail(ld, key, spec->name,
                "a list must be Snakepit's [N, unit] (e.g. [3600, seconds]); or write a "
                "duration such as 1h");
  }
  if (!sp__snakepit_ttl(parts[0], parts[1], text, sizeof(text), why, sizeof(why))) {
    return fail(ld, key, spec->name, "%s", why);
  }
  if (!sp__value_parse(spec, text, &v)) {
    sp__value_describe(spec, expected, sizeof(expected));
    return fail(ld, key, spec->name, "%s, got [%s, %s]", expected, parts[0], parts[1]);
  }
  *(int64_t *)(void *)((char *)pc + spec->offset) = v.integer;
  return 0;
}

/* adapter_args holding Snakepit's grpc_server flags become pool settings. */
static int read_snakepit_flags(const loader_t *ld, const yaml_node_t *const *seen,
                               sp__pool_config_t *pc, bool *threads_set) {
  char why[512];
  sp__snakepit_set_t set = {seen[KEY_ADAPTER] != NULL, seen[KEY_WORKER_PROFILE] != NULL,
                            seen[KEY_THREADS_PER_WORKER] != NULL,
                            seen[KEY_THREAD_SAFETY_CHECKS] != NULL};
  int rc = sp__snakepit_flags(pc, &set, why, sizeof(why));
  if (rc == -2) return nomem(ld->err);
  if (rc != 0) return fail(ld, seen[KEY_ADAPTER_ARGS], "adapter_args", "%s", why);
  *threads_set = set.threads;
  return 0;
}

/*
 * A remote pool runs nowhere here: of the pool keys only name, timeout and the
 * remote_* ones mean something for it; the remote_* keys need remote.
 */
static int check_remote(const loader_t *ld, const yaml_node_t *const *seen) {
  for (size_t k = KEY_REMOTE_TOKEN; k <= KEY_REMOTE_KEY; k++)
    if (seen[k] != NULL && seen[KEY_REMOTE] == NULL)
      return fail(ld, seen[k], sp__pool_keys[k].name,
                  "only applies to a remote pool (add remote: nats://HOST:PORT)");
  if (seen[KEY_REMOTE] == NULL) return 0;
  for (size_t k = 0; k < KEY_REMOTE; k++)
    if (seen[k] != NULL && k != KEY_NAME && k != KEY_TIMEOUT)
      return fail(ld, seen[k], sp__pool_keys[k].name,
                  "does not apply to a remote pool (its nodes run the workers; a remote pool "
                  "takes name, timeout, remote and remote_token/user/password/creds/ca/cert/key)");
  return 0;
}

/*
 * One `pools:` entry. Profile-dependent defaults (threads_per_worker) and the
 * process/threads rule are applied after the whole entry is read, because YAML
 * does not promise that worker_profile comes first.
 */
static int read_pool(const loader_t *ld, const yaml_node_t *entry, size_t index,
                     sp__pool_config_t *pc) {
  const yaml_node_t *seen[KEY_COUNT] = {NULL};
  char shown[96];
  int rc = 0, ranged = 0;
  bool threads_set = false; /* threads_per_worker, or Snakepit's --max-workers */
  if (entry == NULL || entry->type != YAML_MAPPING_NODE) {
    return fail(ld, entry, "pools", "entry %zu must be a mapping of pool settings, got %s",
                index + 1, describe_node(entry, shown, sizeof(shown)));
  }
  sp__pool_config_defaults(pc, SP__PROFILE_PROCESS);
  for (const yaml_node_pair_t *p = entry->data.mapping.pairs.start;
       p < entry->data.mapping.pairs.top; p++) {
    const yaml_node_t *key = yaml_document_get_node(ld->doc, p->key);
    const yaml_node_t *value = yaml_document_get_node(ld->doc, p->value);
    const char *text = scalar_text(key);
    size_t k = 0;
    if (text == NULL || is_null(key)) {
      return fail(ld, key != NULL ? key : entry, NULL,
                  "pool settings must be named by plain keys, got %s",
                  describe_node(key, shown, sizeof(shown)));
    }
    while (k < KEY_COUNT && strcmp(text, sp__pool_keys[k].name) != 0) k++;
    if (k == KEY_COUNT) {
      rc = read_snakepit_key(ld, key, text, value);
      if (rc <= 0) return rc;
      continue;
    }
    if (seen[k] != NULL) {
      return fail(ld, key, sp__pool_keys[k].name, "duplicate key (first set on line %lu)",
                  line_of(seen[k]));
    }
    seen[k] = key;
    if (k == KEY_POOL_SIZE && scalar_text(value) != NULL && strstr(scalar_text(value), "..")) {
      rc = read_range(ld, key, scalar_text(value), pc);
      ranged = 1;
    } else if ((k == KEY_WORKER_TTL || k == KEY_WORKER_MAX_REQUESTS) &&
               (rc = read_snakepit_limit(ld, &sp__pool_keys[k], key, value, pc)) <= 0) {
      /* Snakepit's [3600, seconds] or infinity: read (rc 0) or refused (rc < 0) */
    } else {
      rc = read_value(ld, &sp__pool_keys[k], key, value, pc);
    }
    if (rc != 0) return rc;
  }
  rc = read_snakepit_flags(ld, seen, pc, &threads_set);
  if (rc != 0) return rc;
  if (seen[KEY_NAME] == NULL) {
    return fail(ld, entry, "name",
                "missing in pool entry %zu (expected a name matching [A-Za-z0-9_.-]{1,%d})",
                index + 1, SP__CONFIG_MAX_NAME_LEN);
  }
  if ((rc = check_remote(ld, seen)) != 0) return rc;
  if (pc->profile == SP__PROFILE_AUTO) {
    /* Decided when the pool starts; 0 = the chosen profile's default. */
    if (seen[KEY_THREADS_PER_WORKER] == NULL) pc->threads_per_worker = 0;
  } else if (!threads_set) {
    pc->threads_per_worker = pc->profile == SP__PROFILE_THREAD ? 4 : 1;
  } else if (pc->profile == SP__PROFILE_PROCESS && pc->threads_per_worker > 1) {
    return fail(ld, seen[KEY_THREADS_PER_WORKER], "threads_per_worker",
                "must be 1 when worker_profile is \"process\", got %d (use worker_profile: "
                "thread for multi-threaded workers)",
                pc->threads_per_worker);
  }
  rc = check_workers(ld, seen, ranged, pc);
  if (rc != 0) return rc;
  if (pc->preload != SP__PRELOAD_OFF && pc->worker_start == SP__START_EXEC) {
    return fail(ld, seen[KEY_PRELOAD], "preload",
                "needs worker_start: fork (the fork server builds the adapter once and forks "
                "every worker from it), but worker_start is \"exec\" (line %lu)",
                line_of(seen[KEY_WORKER_START]));
  }
  if (pc->adapter == NULL) return store_copy(ld, &pc->adapter, SP__DEFAULT_ADAPTER);
  return 0;
}

static int read_root(const loader_t *ld, const yaml_node_t *root, sp__config_t *cfg) {
  const yaml_node_t *pools = NULL;
  const yaml_node_t *pools_key = NULL;
  char shown[96];
  size_t n = 0;
  int rc = 0;
  if (root->type != YAML_MAPPING_NODE) {
    return fail(ld, root, NULL, "the top level must be a mapping with a 'pools' list, got %s",
                describe_node(root, shown, sizeof(shown)));
  }
  for (const yaml_node_pair_t *p = root->data.mapping.pairs.start; p < root->data.mapping.pairs.top;
       p++) {
    const yaml_node_t *key = yaml_document_get_node(ld->doc, p->key);
    const char *text = scalar_text(key);
    if (text == NULL || is_null(key)) {
      return fail(ld, key != NULL ? key : root, NULL, "top-level keys must be plain keys, got %s",
                  describe_node(key, shown, sizeof(shown)));
    }
    if (strcmp(text, "pools") != 0) {
      bool pool_setting = false;
      const char *refusal = sp__snakepit_refusal(text, true);
      if (refusal != NULL) return fail(ld, key, text, "%s", refusal);
      for (size_t k = 0; k < KEY_COUNT; k++) pool_setting |= strcmp(text, sp__pool_keys[k].name) == 0;
      return unknown_key(
          ld, key, text, top_keys, 1,
          pool_setting ? "; pool settings belong inside an entry of the 'pools' list" : NULL);
    }
    if (pools_key != NULL) {
      return fail(ld, key, "pools", "duplicate key (first set on line %lu)", line_of(pools_key));
    }
    pools_key = key;
    pools = yaml_document_get_node(ld->doc, p->value);
  }
  if (pools_key == NULL) {
    return fail(ld, root, "pools", "missing (expected a list of pool entries)");
  }
  if (pools == NULL || pools->type != YAML_SEQUENCE_NODE) {
    return fail(ld, pools_key, "pools", "must be a list of pool entries, got %s",
                describe_node(pools, shown, sizeof(shown)));
  }
  n = (size_t)(pools->data.sequence.items.top - pools->data.sequence.items.start);
  if (n == 0) return fail(ld, pools_key, "pools", "must list at least one pool");
  if (n > MAX_POOLS) {
    return fail(ld, pools_key, "pools", "lists %zu pools; at most %d are allowed", n, MAX_POOLS);
  }
  /* Zeroed entries are safe to free, so the count can cover them from the start. */
  cfg->pools = calloc(n, sizeof(*cfg->pools));
  if (cfg->pools == NULL) return nomem(ld->err);
  cfg->pool_count = n;
  for (size_t i = 0; i < n; i++) {
    const yaml_node_t *entry = yaml_document_get_node(ld->doc, pools->data.sequence.items.start[i]);
    rc = read_pool(ld, entry, i, &cfg->pools[i]);
    if (rc != 0) return rc;
    for (size_t j = 0; j < i; j++) {
      if (strcmp(cfg->pools[j].name, cfg->pools[i].name) == 0) {
        const yaml_node_t *first =
            yaml_document_get_node(ld->doc, pools->data.sequence.items.start[j]);
        return fail(ld, mapping_key(ld, entry, "name"), "name",
                    "duplicate pool name \"%s\" (first defined on line %lu)", cfg->pools[i].name,
                    line_of(mapping_key(ld, first, "name")));
      }
    }
  }
  return 0;
}

/* libyaml's own words and position; reader errors only know a byte offset. */
static int syntax_error(const loader_t *ld, const yaml_parser_t *parser, const char *text,
                        size_t len) {
  const char *problem = parser->problem != NULL ? parser->problem : "malformed YAML";
  unsigned long line = (unsigned long)parser->problem_mark.line + 1UL;
  if (parser->error == YAML_MEMORY_ERROR) return nomem(ld->err);
  if (parser->error == YAML_READER_ERROR) {
    line = 1;
    for (size_t i = 0; i < parser->problem_offset && i < len; i++) line += text[i] == '\n';
    return sp__error_set(ld->err, SP_ECONFIG, "%s:%lu: YAML syntax error: %s (at byte %zu)",
                         ld->origin, line, problem, parser->problem_offset);
  }
  if (parser->context != NULL) {
    return sp__error_set(ld->err, SP_ECONFIG, "%s:%lu: YAML syntax error: %s (%s on line %lu)",
                         ld->origin, line, problem, parser->context,
                         (unsigned long)parser->context_mark.line + 1UL);
  }
  return sp__error_set(ld->err, SP_ECONFIG, "%s:%lu: YAML syntax error: %s", ld->origin, line,
                       problem);
}

/* libyaml's scanner does work in proportion to the flow nesting for every
 * token, so deep nesting costs quadratic time (100,000 levels: half a minute)
 * before the document exists. Walking its events first stops at the first
 * level too deep, having done bounded work. */
static int check_depth(const loader_t *ld, const char *text, size_t len) {
  yaml_parser_t parser;
  yaml_event_t ev;
  int depth = 0, rc = 0;
  if (len > SP__CONFIG_MAX_BYTES)
    return sp__error_set(ld->err, SP_ECONFIG, "%s: config of %zu bytes is larger than %d KiB",
                         ld->origin, len, SP__CONFIG_MAX_BYTES / 1024);
  if (!yaml_parser_initialize(&parser)) return nomem(ld->err);
  yaml_parser_set_input_string(&parser, (const unsigned char *)(text != NULL ? text : ""), len);
  for (;;) {
    if (!yaml_parser_parse(&parser, &ev)) {
      rc = syntax_error(ld, &parser, text, len);
      break;
    }
    yaml_event_type_t type = ev.type;
    unsigned long line = (unsigned long)ev.start_mark.line + 1UL;
    yaml_event_delete(&ev);
    if (type == YAML_SEQUENCE_START_EVENT || type == YAML_MAPPING_START_EVENT) {
      if (++depth > MAX_DEPTH) {
        rc = sp__error_set(ld->err, SP_ECONFIG,
                           "%s:%lu: lists and mappings nested more than %d levels deep", ld->origin,
                           line, MAX_DEPTH);
        break;
      }
    } else if (type == YAML_SEQUENCE_END_EVENT || type == YAML_MAPPING_END_EVENT) {
      depth--;
    } else if (type == YAML_STREAM_END_EVENT) {
      break;
    }
  }
  yaml_parser_delete(&parser);
  return rc;
}

/* Parses text into cfg, whose origin and base_dir are already set. */
static int load_text(sp__config_t *cfg, const char *text, size_t len, sp_error_t *err) {
  yaml_parser_t parser;
  yaml_document_t doc;
  yaml_document_t extra;
  bool parser_ready = false;
  bool doc_ready = false;
  bool extra_ready = false;
  loader_t ld = {&doc, cfg->origin, cfg->base_dir, err};
  const yaml_node_t *root = NULL;
  int rc = check_depth(&ld, text, len);
  if (rc != 0) return rc;
  if (!yaml_parser_initialize(&parser)) {
    rc = nomem(err);
    goto cleanup;
  }
  parser_ready = true;
  yaml_parser_set_input_string(&parser, (const unsigned char *)(text != NULL ? text : ""), len);
  if (!yaml_parser_load(&parser, &doc)) {
    rc = syntax_error(&ld, &parser, text, len);
    goto cleanup;
  }
  doc_ready = true;
  root = yaml_document_get_root_node(&doc);
  if (root == NULL || is_null(root)) {
    rc = sp__error_set(err, SP_ECONFIG,
                       "%s: config is empty (expected a top-level 'pools:' list with at least "
                       "one pool)",
                       cfg->origin);
    goto cleanup;
  }
  /* A second document would silently be ignored otherwise; say so instead. */
  if (!yaml_parser_load(&parser, &extra)) {
    rc = syntax_error(&ld, &parser, text, len);
    goto cleanup;
  }
  extra_ready = true;
  if (yaml_document_get_root_node(&extra) != NULL) {
    rc = sp__error_set(err, SP_ECONFIG,
                       "%s:%lu: only one YAML document is supported (found a second one here)",
                       cfg->origin, (unsigned long)extra.start_mark.line + 1UL);
    goto cleanup;
  }
  rc = read_root(&ld, root, cfg);
cleanup:
  if (extra_ready) yaml_document_delete(&extra);
  if (doc_ready) yaml_document_delete(&doc);
  if (parser_ready) yaml_parser_delete(&parser);
  return rc;
}

int sp__config_load_string(sp__config_t *cfg, const char *yaml, size_t len, const char *origin,
                           sp_error_t *err) {
  int rc = 0;
  sp__error_clear(err);
  if (cfg == NULL || (yaml == NULL && len > 0)) {
    return sp__error_set(err, SP_EINVAL, "sp__config_load_string: cfg and yaml are required");
  }
  memset(cfg, 0, sizeof(*cfg));
  cfg->origin = strdup(origin != NULL ? origin : "<string>");
  if (cfg->origin == NULL) {
    rc = nomem(err);
    goto cleanup;
  }
  rc = sp__config_current_dir(&cfg->base_dir, err);
  if (rc != 0) goto cleanup;
  rc = load_text(cfg, yaml, len, err);
cleanup:
  if (rc != 0) sp__config_free(cfg);
  return rc;
}

int sp__config_load_file(sp__config_t *cfg, const char *path, sp_error_t *err) {
  char *text = NULL;
  size_t len = 0;
  int rc = 0;
  sp__error_clear(err);
  if (cfg == NULL || path == NULL) {
    return sp__error_set(err, SP_EINVAL, "sp__config_load_file: cfg and path are required");
  }
  memset(cfg, 0, sizeof(*cfg));
  rc = sp__config_read_file(path, &text, &len, err);
  if (rc != 0) goto cleanup;
  cfg->origin = strdup(path);
  if (cfg->origin == NULL) {
    rc = nomem(err);
    goto cleanup;
  }
  rc = sp__config_folder_of(path, &cfg->base_dir, err);
  if (rc != 0) goto cleanup;
  rc = load_text(cfg, text, len, err);
cleanup:
  free(text);
  if (rc != 0) sp__config_free(cfg);
  return rc;
}


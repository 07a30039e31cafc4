/*
 * config.c - turns a pools.yaml file (read with libyaml's document API) into a
 * validated sp__config_t: defaults, bounds, and "FILE:LINE: key 'KEY': ..." errors.
 */
#if !defined(_GNU_SOURCE) && !defined(_XOPEN_SOURCE)
#define _XOPEN_SOURCE 700 /* realpath, strdup, strcasecmp without GNU extensions */
#endif

#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <yaml.h>

#include "errors.h"

#define MS_PER_S INT64_C(1000)
#define MS_PER_M (60 * MS_PER_S)
#define MS_PER_H (60 * MS_PER_M)
#define KIB INT64_C(1024)
#define MIB (1024 * KIB)
#define GIB (1024 * MIB)

/*
 * Sanity limits that are not per-pool settings. They keep a hostile or broken file
 * (and the fuzzer) from making the loader allocate without bound, and are far above
 * anything a real deployment writes.
 */
#define MAX_POOLS 256
#define MAX_LIST_ITEMS 1024
#define MAX_FILE_BYTES (16 * 1024 * 1024)
#define MAX_NAME_LEN 64
#define MAX_ADAPTER_LEN 256

/* How a key's value is read; scalar kinds share one reader, lists have their own. */
typedef enum {
  K_NAME,
  K_PROFILE,
  K_INT,
  K_I64,
  K_DURATION,
  K_SIZE,
  K_FRACTION,
  K_BOOL,
  K_ADAPTER,
  K_ARGS,
  K_PATHS,
  K_ENV
} kind_t;

typedef struct {
  const char *name;
  kind_t kind;
  size_t offset; /* field in sp__pool_config_t for scalar kinds */
  int64_t min;
  int64_t max;
  bool zero_disables; /* 0 is accepted even though it is below min */
} key_spec_t;

/* Indexes into pool_keys; the few the loader needs by name after reading an entry. */
enum {
  KEY_NAME,
  KEY_WORKER_PROFILE,
  KEY_POOL_SIZE,
  KEY_THREADS_PER_WORKER,
  KEY_ADAPTER,
  KEY_ADAPTER_ARGS,
  KEY_ADAPTER_ENV,
  KEY_PYTHON_PATH,
  KEY_WORKER_TTL,
  KEY_WORKER_MAX_REQUESTS,
  KEY_WORKER_MAX_RSS_MB,
  KEY_RECYCLE_JITTER,
  KEY_MIN_LIFETIME,
  KEY_TIMEOUT,
  KEY_QUEUE_TIMEOUT,
  KEY_MAX_QUEUE,
  KEY_STARTUP_TIMEOUT,
  KEY_STARTUP_BATCH_SIZE,
  KEY_DRAIN_TIMEOUT,
  KEY_CANCEL_GRACE,
  KEY_PING_INTERVAL,
  KEY_PING_MISSES,
  KEY_CRASH_LOOP_MAX,
  KEY_CRASH_LOOP_WINDOW,
  KEY_MAX_FRAME_BYTES,
  KEY_THREAD_SAFETY_CHECKS,
  KEY_COUNT
};

#define FIELD(f) offsetof(sp__pool_config_t, f)

/* Every key a pool entry accepts, in the order they are listed in messages. */
static const key_spec_t pool_keys[KEY_COUNT] = {
    [KEY_NAME] = {"name", K_NAME, FIELD(name), 0, 0, false},
    [KEY_WORKER_PROFILE] = {"worker_profile", K_PROFILE, FIELD(profile), 0, 0, false},
    [KEY_POOL_SIZE] = {"pool_size", K_INT, FIELD(pool_size), 1, 256, false},
    [KEY_THREADS_PER_WORKER] = {"threads_per_worker", K_INT, FIELD(threads_per_worker), 1, 1024,
                                false},
    [KEY_ADAPTER] = {"adapter", K_ADAPTER, FIELD(adapter), 0, 0, false},
    [KEY_ADAPTER_ARGS] = {"adapter_args", K_ARGS, 0, 0, 0, false},
    [KEY_ADAPTER_ENV] = {"adapter_env", K_ENV, 0, 0, 0, false},
    [KEY_PYTHON_PATH] = {"python_path", K_PATHS, 0, 0, 0, false},
    [KEY_WORKER_TTL] = {"worker_ttl", K_DURATION, FIELD(worker_ttl_ms), 0, 8760 * MS_PER_H, false},
    [KEY_WORKER_MAX_REQUESTS] = {"worker_max_requests", K_I64, FIELD(worker_max_requests), 0,
                                 INT64_C(1000000000000), false},
    [KEY_WORKER_MAX_RSS_MB] = {"worker_max_rss_mb", K_I64, FIELD(worker_max_rss_mb), 0, 1048576,
                               false},
    [KEY_RECYCLE_JITTER] = {"recycle_jitter", K_FRACTION, FIELD(recycle_jitter), 0, 1, false},
    [KEY_MIN_LIFETIME] = {"min_lifetime", K_DURATION, FIELD(min_lifetime_ms), 0, 24 * MS_PER_H,
                          false},
    [KEY_TIMEOUT] = {"timeout", K_DURATION, FIELD(timeout_ms), 1, 24 * MS_PER_H, false},
    [KEY_QUEUE_TIMEOUT] = {"queue_timeout", K_DURATION, FIELD(queue_timeout_ms), 0, 24 * MS_PER_H,
                           false},
    [KEY_MAX_QUEUE] = {"max_queue", K_INT, FIELD(max_queue), 0, 1000000, false},
    [KEY_STARTUP_TIMEOUT] = {"startup_timeout", K_DURATION, FIELD(startup_timeout_ms), 100,
                             10 * MS_PER_M, false},
    [KEY_STARTUP_BATCH_SIZE] = {"startup_batch_size", K_INT, FIELD(startup_batch_size), 1, 256,
                                false},
    [KEY_DRAIN_TIMEOUT] = {"drain_timeout", K_DURATION, FIELD(drain_timeout_ms), 0, MS_PER_H,
                           false},
    [KEY_CANCEL_GRACE] = {"cancel_grace", K_DURATION, FIELD(cancel_grace_ms), 0, MS_PER_H, false},
    [KEY_PING_INTERVAL] = {"ping_interval", K_DURATION, FIELD(ping_interval_ms), 50, MS_PER_H,
                           true},
    [KEY_PING_MISSES] = {"ping_misses", K_INT, FIELD(ping_misses), 1, 100, false},
    [KEY_CRASH_LOOP_MAX] = {"crash_loop_max", K_INT, FIELD(crash_loop_max), 1, 1000, false},
    [KEY_CRASH_LOOP_WINDOW] = {"crash_loop_window", K_DURATION, FIELD(crash_loop_window_ms),
                               MS_PER_S, 24 * MS_PER_H, false},
    [KEY_MAX_FRAME_BYTES] = {"max_frame_bytes", K_SIZE, FIELD(max_frame_bytes), 4 * KIB, GIB,
                             false},
    [KEY_THREAD_SAFETY_CHECKS] = {"thread_safety_checks", K_BOOL, FIELD(thread_safety_checks), 0, 1,
                                  false},
};

/* The only top-level key; a table so unknown top-level keys share the suggestion code. */
static const key_spec_t top_keys[] = {{"pools", K_ARGS, 0, 0, 0, false}};

typedef struct {
  const char *suffix;
  int64_t scale;
} unit_t;

static const unit_t duration_units[] = {
    {"ms", 1}, {"s", MS_PER_S}, {"m", MS_PER_M}, {"h", MS_PER_H}};

static const unit_t size_units[] = {{"B", 1},     {"KiB", KIB},    {"MiB", MIB},      {"GiB", GIB},
                                    {"KB", 1000}, {"MB", 1000000}, {"GB", 1000000000}};

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

/*
 * Copies user text into a message buffer. Control bytes become '?' so a message is
 * always one clean line, and long text is cut (on a UTF-8 boundary) behind "...".
 */
static void sanitize(char *buf, size_t cap, const char *s, size_t len) {
  size_t limit = cap > 4 ? cap - 4 : 0;
  size_t n = len < limit ? len : limit;
  if (cap == 0) return;
  if (n < len) {
    while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80) n--;
  }
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    buf[i] = (c < 0x20 || c == 0x7F) ? '?' : (char)c;
  }
  if (n < len && cap > 4) {
    memcpy(buf + n, "...", 3);
    n += 3;
  }
  buf[n] = '\0';
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
      sanitize(text, sizeof(text), (const char *)node->data.scalar.value, node->data.scalar.length);
      snprintf(buf, cap, "\"%s\"", text);
      return buf;
    default: return "nothing";
  }
}

static void format_duration(char *buf, size_t cap, int64_t ms) {
  if (ms == 0) {
    snprintf(buf, cap, "0");
  } else if (ms % MS_PER_H == 0) {
    snprintf(buf, cap, "%lldh", (long long)(ms / MS_PER_H));
  } else if (ms % MS_PER_M == 0) {
    snprintf(buf, cap, "%lldm", (long long)(ms / MS_PER_M));
  } else if (ms % MS_PER_S == 0) {
    snprintf(buf, cap, "%llds", (long long)(ms / MS_PER_S));
  } else {
    snprintf(buf, cap, "%lldms", (long long)ms);
  }
}

static void format_size(char *buf, size_t cap, int64_t bytes) {
  if (bytes != 0 && bytes % GIB == 0) {
    snprintf(buf, cap, "%lldGiB", (long long)(bytes / GIB));
  } else if (bytes != 0 && bytes % MIB == 0) {
    snprintf(buf, cap, "%lldMiB", (long long)(bytes / MIB));
  } else if (bytes != 0 && bytes % KIB == 0) {
    snprintf(buf, cap, "%lldKiB", (long long)(bytes / KIB));
  } else {
    snprintf(buf, cap, "%lld bytes", (long long)bytes);
  }
}

/* The "(expected ...)" half of a value error, phrased as "must be ...". */
static void describe_expected(const key_spec_t *spec, char *buf, size_t cap) {
  char lo[32];
  char hi[32];
  switch (spec->kind) {
    case K_NAME:
      snprintf(buf, cap, "must be 1 to %d characters from A-Z a-z 0-9 _ . -", MAX_NAME_LEN);
      break;
    case K_PROFILE: snprintf(buf, cap, "must be \"process\" or \"thread\""); break;
    case K_INT:
    case K_I64:
      snprintf(buf, cap, "must be an integer between %lld and %lld", (long long)spec->min,
               (long long)spec->max);
      break;
    case K_DURATION:
      format_duration(lo, sizeof(lo), spec->min);
      format_duration(hi, sizeof(hi), spec->max);
      snprintf(buf, cap,
               "must be %sa duration between %s and %s (e.g. 500ms, 30s, 5m, 2h; a bare number "
               "means seconds)",
               spec->zero_disables ? "0 (disabled) or " : "", lo, hi);
      break;
    case K_SIZE:
      format_size(lo, sizeof(lo), spec->min);
      format_size(hi, sizeof(hi), spec->max);
      snprintf(buf, cap,
               "must be a size between %s and %s (bytes, or e.g. 512KiB, 64MiB, 1GiB; KB/MB/GB "
               "are powers of 1000)",
               lo, hi);
      break;
    case K_FRACTION: snprintf(buf, cap, "must be a number between 0 and 1"); break;
    case K_BOOL: snprintf(buf, cap, "must be true or false (or yes/no)"); break;
    case K_ADAPTER:
      snprintf(buf, cap, "must be a Python class path like \"package.module.ClassName\"");
      break;
    case K_ARGS: snprintf(buf, cap, "must be a list of strings"); break;
    case K_PATHS: snprintf(buf, cap, "must be a list of folder paths"); break;
    case K_ENV: snprintf(buf, cap, "must be a mapping of VARIABLE: value"); break;
  }
}

static bool is_digit(char c) { return c >= '0' && c <= '9'; }

/* A plain decimal integer; signs, exponents and separators are not accepted. */
static bool parse_int(const char *s, int64_t *out) {
  int64_t v = 0;
  size_t n = 0;
  for (; is_digit(s[n]); n++) {
    if (n >= 18) return false;
    v = v * 10 + (s[n] - '0');
  }
  if (n == 0 || s[n] != '\0') return false;
  *out = v;
  return true;
}

/*
 * "NUMBER[ ]UNIT" where NUMBER may have a fraction, computed in integers so "1.5s"
 * is exactly 1500. A bare number is multiplied by bare_scale. Results that are not
 * whole base units ("0.5ms") and overflows are rejected rather than rounded.
 */
static bool parse_quantity(const char *s, const unit_t *units, size_t unit_count,
                           int64_t bare_scale, int64_t *out) {
  int64_t whole = 0;
  int64_t frac = 0;
  int64_t frac_div = 1;
  int64_t scale = bare_scale;
  size_t digits = 0;
  const char *p = s;
  for (; is_digit(*p); p++, digits++) {
    if (digits >= 15) return false;
    whole = whole * 10 + (*p - '0');
  }
  if (*p == '.') {
    p++;
    for (; is_digit(*p); p++, digits++) {
      if (frac_div >= INT64_C(1000000000)) return false;
      frac = frac * 10 + (*p - '0');
      frac_div *= 10;
    }
  }
  if (digits == 0) return false;
  while (*p == ' ') p++;
  if (*p != '\0') {
    size_t i = 0;
    while (i < unit_count && strcasecmp(p, units[i].suffix) != 0) i++;
    if (i == unit_count) return false;
    scale = units[i].scale;
  }
  if (whole > INT64_MAX / scale) return false;
  /* frac < 1e9 and scale <= 1e9, so the product fits in 63 bits. */
  if ((frac * scale) % frac_div != 0) return false;
  if (whole * scale > INT64_MAX - (frac * scale) / frac_div) return false;
  *out = whole * scale + (frac * scale) / frac_div;
  return true;
}

/* "0.1", "1", ".5": a non-negative decimal without exponent. */
static bool parse_fraction(const char *s, double *out) {
  uint64_t mantissa = 0;
  uint64_t divisor = 1;
  size_t digits = 0;
  bool seen_dot = false;
  const char *p = s;
  for (;; p++) {
    if (is_digit(*p)) {
      if (digits++ >= 18) return false;
      mantissa = mantissa * 10 + (uint64_t)(*p - '0');
      if (seen_dot) divisor *= 10;
    } else if (*p == '.' && !seen_dot) {
      seen_dot = true;
    } else {
      break;
    }
  }
  if (digits == 0 || *p != '\0') return false;
  *out = (double)mantissa / (double)divisor;
  return true;
}

static bool parse_bool(const char *s, int *out) {
  static const char *const yes[] = {"true", "yes", "on"};
  static const char *const no[] = {"false", "no", "off"};
  for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
    if (strcasecmp(s, yes[i]) == 0) {
      *out = 1;
      return true;
    }
    if (strcasecmp(s, no[i]) == 0) {
      *out = 0;
      return true;
    }
  }
  return false;
}

static bool valid_name(const char *s) {
  size_t n = strlen(s);
  if (n == 0 || n > MAX_NAME_LEN) return false;
  for (size_t i = 0; i < n; i++) {
    char c = s[i];
    bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || is_digit(c) || c == '_' ||
              c == '.' || c == '-';
    if (!ok) return false;
  }
  return true;
}

static bool is_ident_start(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
}

/* Dotted identifiers with at least a module and a class: the worker imports it as is. */
static bool valid_adapter(const char *s) {
  size_t parts = 0;
  size_t n = strlen(s);
  const char *p = s;
  if (n == 0 || n > MAX_ADAPTER_LEN) return false;
  for (;;) {
    if (!is_ident_start(*p)) return false;
    while (is_ident_start(*p) || is_digit(*p)) p++;
    parts++;
    if (*p == '\0') break;
    if (*p != '.') return false;
    p++;
  }
  return parts >= 2;
}

/* Environment names as shells accept them, so a typo like "MY VAR" is caught here. */
static bool valid_env_name(const char *s) {
  if (!is_ident_start(*s)) return false;
  for (const char *p = s; *p != '\0'; p++) {
    if (!is_ident_start(*p) && !is_digit(*p)) return false;
  }
  return strlen(s) <= 128;
}

/* Levenshtein distance; valid keys are short, so one row on the stack is enough. */
static size_t edit_distance(const char *a, size_t alen, const char *b, size_t blen) {
  size_t row[32];
  if (blen >= sizeof(row) / sizeof(row[0])) return (size_t)-1;
  for (size_t j = 0; j <= blen; j++) row[j] = j;
  for (size_t i = 1; i <= alen; i++) {
    size_t diag = row[0];
    row[0] = i;
    for (size_t j = 1; j <= blen; j++) {
      size_t up = row[j];
      size_t best = diag + (a[i - 1] == b[j - 1] ? 0 : 1);
      if (up + 1 < best) best = up + 1;
      if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
      row[j] = best;
      diag = up;
    }
  }
  return row[blen];
}

/* Close enough to suggest: a small typo, or one name containing the other ("timeout_ms"). */
static bool is_close(const char *typed, const char *valid) {
  size_t tl = strlen(typed);
  size_t vl = strlen(valid);
  if (tl >= 4 && vl >= 4 && (strstr(typed, valid) != NULL || strstr(valid, typed) != NULL)) {
    return true;
  }
  if (tl > vl + 3 || vl > tl + 3) return false;
  return edit_distance(typed, tl, valid, vl) <= (vl >= 12 ? 3 : 2);
}

/* "unknown key 'X' (did you mean 'Y'?)", or the full list when nothing is close. */
static int unknown_key(const loader_t *ld, const yaml_node_t *key, const char *text,
                       const key_spec_t *specs, size_t count, const char *hint) {
  char shown[80];
  char list[720];
  size_t used = 0;
  size_t close = 0;
  list[0] = '\0';
  for (size_t i = 0; i < count && used < sizeof(list); i++) {
    if (!is_close(text, specs[i].name)) continue;
    used += (size_t)snprintf(list + used, sizeof(list) - used, "%s'%s'", close > 0 ? ", " : "",
                             specs[i].name);
    close++;
  }
  if (close == 0) {
    used = (size_t)snprintf(list, sizeof(list), "valid keys: ");
    for (size_t i = 0; i < count && used < sizeof(list); i++) {
      used += (size_t)snprintf(list + used, sizeof(list) - used, "%s%s", i > 0 ? ", " : "",
                               specs[i].name);
    }
  }
  sanitize(shown, sizeof(shown), text, strlen(text));
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

/* Relative entries are taken from the config's folder so the file works from any cwd. */
static char *resolve_path(const char *base_dir, const char *entry) {
  char *out = NULL;
  size_t base_len = strlen(base_dir);
  size_t entry_len = 0;
  bool need_slash = false;
  if (entry[0] == '/') return strdup(entry);
  while (entry[0] == '.' && entry[1] == '/') {
    entry += 2;
    while (entry[0] == '/') entry++;
  }
  if (entry[0] == '\0' || strcmp(entry, ".") == 0) return strdup(base_dir);
  entry_len = strlen(entry);
  need_slash = base_len == 0 || base_dir[base_len - 1] != '/';
  out = malloc(base_len + (need_slash ? 1 : 0) + entry_len + 1);
  if (out == NULL) return NULL;
  memcpy(out, base_dir, base_len);
  if (need_slash) out[base_len++] = '/';
  memcpy(out + base_len, entry, entry_len + 1);
  return out;
}

/* Reads one scalar-valued key into its field; the key node gives the reported line. */
static int read_scalar(const loader_t *ld, const key_spec_t *spec, const yaml_node_t *key,
                       const yaml_node_t *value, sp__pool_config_t *pc) {
  char *field = (char *)pc + spec->offset;
  const char *text = NULL;
  char expected[256];
  char shown[96];
  int64_t n = 0;
  double d = 0;
  int b = 0;
  if (is_null(value) || (text = scalar_text(value)) == NULL) goto bad;
  switch (spec->kind) {
    case K_NAME:
      if (!valid_name(text)) goto bad;
      return store_copy(ld, (char **)(void *)field, text);
    case K_ADAPTER:
      if (!valid_adapter(text)) goto bad;
      return store_copy(ld, (char **)(void *)field, text);
    case K_PROFILE:
      if (strcmp(text, "process") == 0) {
        pc->profile = SP__PROFILE_PROCESS;
      } else if (strcmp(text, "thread") == 0) {
        pc->profile = SP__PROFILE_THREAD;
      } else {
        goto bad;
      }
      return 0;
    case K_INT:
    case K_I64:
    case K_DURATION:
    case K_SIZE:
      if (spec->kind == K_DURATION) {
        if (!parse_quantity(text, duration_units,
                            sizeof(duration_units) / sizeof(duration_units[0]), MS_PER_S, &n)) {
          goto bad;
        }
      } else if (spec->kind == K_SIZE) {
        if (!parse_quantity(text, size_units, sizeof(size_units) / sizeof(size_units[0]), 1, &n)) {
          goto bad;
        }
      } else if (!parse_int(text, &n)) {
        goto bad;
      }
      if ((n < spec->min || n > spec->max) && !(spec->zero_disables && n == 0)) goto bad;
      if (spec->kind == K_INT) {
        *(int *)(void *)field = (int)n;
      } else {
        *(int64_t *)(void *)field = n;
      }
      return 0;
    case K_FRACTION:
      if (!parse_fraction(text, &d) || d < (double)spec->min || d > (double)spec->max) goto bad;
      *(double *)(void *)field = d;
      return 0;
    case K_BOOL:
      if (!parse_bool(text, &b)) goto bad;
      *(int *)(void *)field = b;
      return 0;
    case K_ARGS:
    case K_PATHS:
    case K_ENV: break;
  }
bad:
  describe_expected(spec, expected, sizeof(expected));
  return fail(ld, key, spec->name, "%s, got %s", expected,
              describe_node(value, shown, sizeof(shown)));
}

/* adapter_args and python_path: a list of scalars (numbers keep their text). */
static int read_list(const loader_t *ld, const key_spec_t *spec, const yaml_node_t *key,
                     const yaml_node_t *value, char ***items, size_t *count) {
  char expected[128];
  char shown[96];
  bool paths = spec->kind == K_PATHS;
  size_t n = 0;
  if (is_null(value)) return 0;
  if (value == NULL || value->type != YAML_SEQUENCE_NODE) {
    describe_expected(spec, expected, sizeof(expected));
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
    (*items)[i] = paths ? resolve_path(ld->base_dir, text) : strdup(text);
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
    if (name == NULL || !valid_env_name(name)) {
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

static int read_value(const loader_t *ld, const key_spec_t *spec, const yaml_node_t *key,
                      const yaml_node_t *value, sp__pool_config_t *pc) {
  switch (spec->kind) {
    case K_ARGS: return read_list(ld, spec, key, value, &pc->adapter_args, &pc->adapter_args_count);
    case K_PATHS: return read_list(ld, spec, key, value, &pc->python_path, &pc->python_path_count);
    case K_ENV: return read_env(ld, key, value, pc);
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

/*
 * One `pools:` entry. Profile-dependent defaults (threads_per_worker) and the
 * process/threads rule are applied after the whole entry is read, because YAML
 * does not promise that worker_profile comes first.
 */
static int read_pool(const loader_t *ld, const yaml_node_t *entry, size_t index,
                     sp__pool_config_t *pc) {
  const yaml_node_t *seen[KEY_COUNT] = {NULL};
  char shown[96];
  int rc = 0;
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
    while (k < KEY_COUNT && strcmp(text, pool_keys[k].name) != 0) k++;
    if (k == KEY_COUNT) return unknown_key(ld, key, text, pool_keys, KEY_COUNT, NULL);
    if (seen[k] != NULL) {
      return fail(ld, key, pool_keys[k].name, "duplicate key (first set on line %lu)",
                  line_of(seen[k]));
    }
    seen[k] = key;
    rc = read_value(ld, &pool_keys[k], key, value, pc);
    if (rc != 0) return rc;
  }
  if (seen[KEY_NAME] == NULL) {
    return fail(ld, entry, "name",
                "missing in pool entry %zu (expected a name matching [A-Za-z0-9_.-]{1,%d})",
                index + 1, MAX_NAME_LEN);
  }
  if (seen[KEY_THREADS_PER_WORKER] == NULL) {
    pc->threads_per_worker = pc->profile == SP__PROFILE_THREAD ? 4 : 1;
  } else if (pc->profile == SP__PROFILE_PROCESS && pc->threads_per_worker > 1) {
    return fail(ld, seen[KEY_THREADS_PER_WORKER], "threads_per_worker",
                "must be 1 when worker_profile is \"process\", got %d (use worker_profile: "
                "thread for multi-threaded workers)",
                pc->threads_per_worker);
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
      for (size_t k = 0; k < KEY_COUNT; k++) pool_setting |= strcmp(text, pool_keys[k].name) == 0;
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
  int rc = 0;
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

/* getcwd with a growing buffer (getcwd(NULL, 0) is a GNU extension). */
static int current_dir(char **out, sp_error_t *err) {
  char *buf = NULL;
  size_t cap = 256;
  int rc = 0;
  for (;;) {
    char *bigger = realloc(buf, cap);
    if (bigger == NULL) {
      rc = nomem(err);
      goto cleanup;
    }
    buf = bigger;
    if (getcwd(buf, cap) != NULL) break;
    if (errno != ERANGE || cap >= 65536) {
      rc =
          sp__error_set(err, SP_EIO, "cannot determine the current directory: %s", strerror(errno));
      goto cleanup;
    }
    cap *= 2;
  }
  *out = buf;
  buf = NULL;
cleanup:
  free(buf);
  return rc;
}

/* The absolute folder holding path; the file itself is not followed if it is a symlink. */
static int folder_of(const char *path, char **out, sp_error_t *err) {
  char *dir = NULL;
  const char *slash = strrchr(path, '/');
  int rc = 0;
  if (slash == NULL) {
    dir = strdup(".");
  } else if (slash == path) {
    dir = strdup("/");
  } else {
    dir = malloc((size_t)(slash - path) + 1);
    if (dir != NULL) {
      memcpy(dir, path, (size_t)(slash - path));
      dir[slash - path] = '\0';
    }
  }
  if (dir == NULL) {
    rc = nomem(err);
    goto cleanup;
  }
  *out = realpath(dir, NULL);
  if (*out == NULL) {
    rc = errno == ENOMEM
             ? nomem(err)
             : sp__error_set(err, SP_ECONFIG, "cannot resolve the folder of config '%s': %s", path,
                             strerror(errno));
  }
cleanup:
  free(dir);
  return rc;
}

/* Reads the whole file; pipes and /dev/stdin work too, so no size is taken from stat. */
static int read_file(const char *path, char **out, size_t *out_len, sp_error_t *err) {
  int fd = -1;
  char *buf = NULL;
  size_t cap = 0;
  size_t len = 0;
  int rc = 0;
  fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    rc = sp__error_set(err, SP_ECONFIG, "cannot read config '%s': %s", path, strerror(errno));
    goto cleanup;
  }
  for (;;) {
    ssize_t got = 0;
    if (len == cap) {
      size_t new_cap = cap == 0 ? 4096 : cap * 2;
      char *bigger = NULL;
      if (cap >= MAX_FILE_BYTES) {
        rc = sp__error_set(err, SP_ECONFIG, "cannot read config '%s': larger than %d MiB", path,
                           MAX_FILE_BYTES / (1024 * 1024));
        goto cleanup;
      }
      bigger = realloc(buf, new_cap);
      if (bigger == NULL) {
        rc = nomem(err);
        goto cleanup;
      }
      buf = bigger;
      cap = new_cap;
    }
    got = read(fd, buf + len, cap - len);
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) {
      rc = sp__error_set(err, SP_ECONFIG, "cannot read config '%s': %s", path, strerror(errno));
      goto cleanup;
    }
    if (got == 0) break;
    len += (size_t)got;
  }
  *out = buf;
  *out_len = len;
  buf = NULL;
cleanup:
  free(buf);
  if (fd >= 0) close(fd);
  return rc;
}

void sp__pool_config_defaults(sp__pool_config_t *pc, sp__profile_t profile) {
  /*
   * Strings stay NULL, adapter included: this function cannot report allocation
   * failure, so the loaders store their own copy of SP__DEFAULT_ADAPTER when the
   * entry names none. Nothing already in *pc is freed.
   */
  memset(pc, 0, sizeof(*pc));
  pc->profile = profile;
  pc->pool_size = 2;
  pc->threads_per_worker = profile == SP__PROFILE_THREAD ? 4 : 1;
  pc->worker_ttl_ms = 0;
  pc->worker_max_requests = 0;
  pc->worker_max_rss_mb = 0;
  pc->recycle_jitter = 0.1;
  pc->min_lifetime_ms = 1 * MS_PER_S;
  pc->timeout_ms = 30 * MS_PER_S;
  pc->queue_timeout_ms = 5 * MS_PER_S;
  pc->max_queue = 1000;
  pc->startup_timeout_ms = 30 * MS_PER_S;
  pc->startup_batch_size = 8;
  pc->drain_timeout_ms = 10 * MS_PER_S;
  pc->cancel_grace_ms = 2 * MS_PER_S;
  pc->ping_interval_ms = 2 * MS_PER_S;
  pc->ping_misses = 3;
  pc->crash_loop_max = 5;
  pc->crash_loop_window_ms = 30 * MS_PER_S;
  pc->max_frame_bytes = 64 * MIB;
  pc->thread_safety_checks = 0;
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
  rc = current_dir(&cfg->base_dir, err);
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
  rc = read_file(path, &text, &len, err);
  if (rc != 0) goto cleanup;
  cfg->origin = strdup(path);
  if (cfg->origin == NULL) {
    rc = nomem(err);
    goto cleanup;
  }
  rc = folder_of(path, &cfg->base_dir, err);
  if (rc != 0) goto cleanup;
  rc = load_text(cfg, text, len, err);
cleanup:
  free(text);
  if (rc != 0) sp__config_free(cfg);
  return rc;
}

/* Fills one built-in pool; the caller frees the whole config on failure. */
static int default_pool(sp__pool_config_t *pc, const char *name, sp__profile_t profile,
                        sp_error_t *err) {
  sp__pool_config_defaults(pc, profile);
  pc->name = strdup(name);
  pc->adapter = strdup(SP__DEFAULT_ADAPTER);
  return pc->name == NULL || pc->adapter == NULL ? nomem(err) : 0;
}

int sp__config_default(sp__config_t *cfg, sp_error_t *err) {
  int rc = 0;
  sp__error_clear(err);
  if (cfg == NULL) return sp__error_set(err, SP_EINVAL, "sp__config_default: cfg is required");
  memset(cfg, 0, sizeof(*cfg));
  cfg->origin = strdup("<built-in default>");
  cfg->pools = calloc(2, sizeof(*cfg->pools));
  if (cfg->origin == NULL || cfg->pools == NULL) {
    rc = nomem(err);
    goto cleanup;
  }
  cfg->pool_count = 2;
  rc = current_dir(&cfg->base_dir, err);
  if (rc != 0) goto cleanup;
  rc = default_pool(&cfg->pools[0], "hpc_pool", SP__PROFILE_THREAD, err);
  if (rc != 0) goto cleanup;
  cfg->pools[0].pool_size = 2;
  cfg->pools[0].threads_per_worker = 4;
  rc = default_pool(&cfg->pools[1], "default", SP__PROFILE_PROCESS, err);
  if (rc != 0) goto cleanup;
  cfg->pools[1].pool_size = 2;
cleanup:
  if (rc != 0) sp__config_free(cfg);
  return rc;
}

static void free_strings(char **items, size_t count) {
  if (items == NULL) return;
  for (size_t i = 0; i < count; i++) free(items[i]);
  free(items);
}

void sp__config_free(sp__config_t *cfg) {
  if (cfg == NULL) return;
  for (size_t i = 0; cfg->pools != NULL && i < cfg->pool_count; i++) {
    sp__pool_config_t *pc = &cfg->pools[i];
    free(pc->name);
    free(pc->adapter);
    free_strings(pc->adapter_args, pc->adapter_args_count);
    free_strings(pc->env_keys, pc->env_count);
    free_strings(pc->env_values, pc->env_count);
    free_strings(pc->python_path, pc->python_path_count);
  }
  free(cfg->pools);
  free(cfg->origin);
  free(cfg->base_dir);
  memset(cfg, 0, sizeof(*cfg));
}

const sp__pool_config_t *sp__config_find(const sp__config_t *cfg, const char *name) {
  if (cfg == NULL || name == NULL) return NULL;
  for (size_t i = 0; i < cfg->pool_count; i++) {
    if (cfg->pools[i].name != NULL && strcmp(cfg->pools[i].name, name) == 0) return &cfg->pools[i];
  }
  return NULL;
}

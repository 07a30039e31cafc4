/*
 * config_values.c - the scalar half of the config loader: turns the text of one value
 * into a bounded number, duration, size, flag or checked name, and words the errors.
 */
#if !defined(_GNU_SOURCE) && !defined(_XOPEN_SOURCE)
#define _XOPEN_SOURCE 700 /* strdup and strcasecmp without GNU extensions */
#endif

#include "config_values.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config.h"

#define MAX_ADAPTER_LEN 256
#define MAX_ENV_NAME_LEN 128

typedef struct {
  const char *suffix;
  int64_t scale;
} unit_t;

static const unit_t duration_units[] = {
    {"ms", 1}, {"s", SP__MS_PER_S}, {"m", SP__MS_PER_M}, {"h", SP__MS_PER_H}};

static const unit_t size_units[] = {{"B", 1},          {"KiB", SP__KIB}, {"MiB", SP__MIB},
                                    {"GiB", SP__GIB},  {"KB", 1000},     {"MB", 1000000},
                                    {"GB", 1000000000}};

static bool is_digit(char c) { return c >= '0' && c <= '9'; }

static bool is_ident_start(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
}

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
  if (n == 0 || n > SP__CONFIG_MAX_NAME_LEN) return false;
  for (size_t i = 0; i < n; i++) {
    char c = s[i];
    bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || is_digit(c) || c == '_' ||
              c == '.' || c == '-';
    if (!ok) return false;
  }
  return true;
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

/* URLs and file paths: anything printable, at most a line (4 KiB). */
static bool valid_text(const char *s) {
  size_t n = 0;
  for (const char *p = s; *p != '\0'; p++, n++)
    if ((unsigned char)*p < 0x20 || *p == 0x7F) return false;
  return n > 0 && n <= 4096;
}

/* Environment names as shells accept them, so a typo like "MY VAR" is caught here. */
bool sp__value_env_name_valid(const char *s) {
  if (!is_ident_start(*s)) return false;
  for (const char *p = s; *p != '\0'; p++) {
    if (!is_ident_start(*p) && !is_digit(*p)) return false;
  }
  return strlen(s) <= MAX_ENV_NAME_LEN;
}

/* Words of the two-valued keys, indexed by their enum value. */
static const char *const k_profiles[3] = {[SP__PROFILE_PROCESS] = "process",
                                          [SP__PROFILE_THREAD] = "thread",
                                          [SP__PROFILE_AUTO] = "auto"};
static const char *const k_starts[2] = {[SP__START_FORK] = "fork", [SP__START_EXEC] = "exec"};

static bool parse_choice(const char *text, const char *const *words, int count, int64_t *out) {
  for (int i = 0; i < count; i++) {
    if (strcmp(text, words[i]) == 0) {
      *out = i;
      return true;
    }
  }
  return false;
}

bool sp__value_parse(const sp__key_spec_t *spec, const char *text, sp__value_t *out) {
  int64_t n = 0;
  double d = 0;
  int b = 0;
  switch (spec->kind) {
    case SP__KIND_NAME: return valid_name(text);
    case SP__KIND_ADAPTER: return valid_adapter(text);
    case SP__KIND_TEXT: return valid_text(text);
    case SP__KIND_PROFILE: return parse_choice(text, k_profiles, 3, &out->integer);
    case SP__KIND_START: return parse_choice(text, k_starts, 2, &out->integer);
    case SP__KIND_INT:
    case SP__KIND_I64:
      if (!parse_int(text, &n)) return false;
      break;
    case SP__KIND_DURATION:
      /* A bare number means seconds: that is what people write for timeouts. */
      if (!parse_quantity(text, duration_units, sizeof(duration_units) / sizeof(duration_units[0]),
                          SP__MS_PER_S, &n)) {
        return false;
      }
      break;
    case SP__KIND_SIZE:
      if (!parse_quantity(text, size_units, sizeof(size_units) / sizeof(size_units[0]), 1, &n)) {
        return false;
      }
      break;
    case SP__KIND_FRACTION:
      if (!parse_fraction(text, &d) || d < (double)spec->min || d > (double)spec->max) {
        return false;
      }
      out->fraction = d;
      return true;
    case SP__KIND_PRELOAD:
      if (strcmp(text, "auto") == 0) {
        out->integer = 2;
        return true;
      }
      if (!parse_bool(text, &b)) return false;
      out->integer = b;
      return true;
    case SP__KIND_BOOL:
      if (!parse_bool(text, &b)) return false;
      out->integer = b;
      return true;
    case SP__KIND_ARGS:
    case SP__KIND_PATHS:
    case SP__KIND_ENV: return false;
  }
  if ((n < spec->min || n > spec->max) && !(spec->zero_disables && n == 0)) return false;
  out->integer = n;
  return true;
}

/* Bounds are shown in the largest unit that divides them, as a user would write them. */
static void format_duration(char *buf, size_t cap, int64_t ms) {
  if (ms == 0) {
    snprintf(buf, cap, "0");
  } else if (ms % SP__MS_PER_H == 0) {
    snprintf(buf, cap, "%lldh", (long long)(ms / SP__MS_PER_H));
  } else if (ms % SP__MS_PER_M == 0) {
    snprintf(buf, cap, "%lldm", (long long)(ms / SP__MS_PER_M));
  } else if (ms % SP__MS_PER_S == 0) {
    snprintf(buf, cap, "%llds", (long long)(ms / SP__MS_PER_S));
  } else {
    snprintf(buf, cap, "%lldms", (long long)ms);
  }
}

static void format_size(char *buf, size_t cap, int64_t bytes) {
  if (bytes != 0 && bytes % SP__GIB == 0) {
    snprintf(buf, cap, "%lldGiB", (long long)(bytes / SP__GIB));
  } else if (bytes != 0 && bytes % SP__MIB == 0) {
    snprintf(buf, cap, "%lldMiB", (long long)(bytes / SP__MIB));
  } else if (bytes != 0 && bytes % SP__KIB == 0) {
    snprintf(buf, cap, "%lldKiB", (long long)(bytes / SP__KIB));
  } else {
    snprintf(buf, cap, "%lld bytes", (long long)bytes);
  }
}

void sp__value_describe(const sp__key_spec_t *spec, char *buf, size_t cap) {
  char lo[32];
  char hi[32];
  switch (spec->kind) {
    case SP__KIND_NAME:
      snprintf(buf, cap, "must be 1 to %d characters from A-Z a-z 0-9 _ . -",
               SP__CONFIG_MAX_NAME_LEN);
      break;
    case SP__KIND_PROFILE:
      snprintf(buf, cap, "must be \"process\", \"thread\" or \"auto\"");
      break;
    case SP__KIND_START: snprintf(buf, cap, "must be \"fork\" or \"exec\""); break;
    case SP__KIND_PRELOAD: snprintf(buf, cap, "must be true, false or \"auto\""); break;
    case SP__KIND_INT:
    case SP__KIND_I64:
      snprintf(buf, cap, "must be an integer between %lld and %lld", (long long)spec->min,
               (long long)spec->max);
      break;
    case SP__KIND_DURATION:
      format_duration(lo, sizeof(lo), spec->min);
      format_duration(hi, sizeof(hi), spec->max);
      snprintf(buf, cap,
               "must be %sa duration between %s and %s (e.g. 500ms, 30s, 5m, 2h; a bare number "
               "means seconds)",
               spec->zero_disables ? "0 (disabled) or " : "", lo, hi);
      break;
    case SP__KIND_SIZE:
      format_size(lo, sizeof(lo), spec->min);
      format_size(hi, sizeof(hi), spec->max);
      snprintf(buf, cap,
               "must be a size between %s and %s (bytes, or e.g. 512KiB, 64MiB, 1GiB; KB/MB/GB "
               "are powers of 1000)",
               lo, hi);
      break;
    case SP__KIND_FRACTION: snprintf(buf, cap, "must be a number between 0 and 1"); break;
    case SP__KIND_BOOL: snprintf(buf, cap, "must be true or false (or yes/no)"); break;
    case SP__KIND_ADAPTER:
      snprintf(buf, cap, "must be a Python class path like \"package.module.ClassName\"");
      break;
    case SP__KIND_ARGS: snprintf(buf, cap, "must be a list of strings"); break;
    case SP__KIND_PATHS: snprintf(buf, cap, "must be a list of folder paths"); break;
    case SP__KIND_ENV: snprintf(buf, cap, "must be a mapping of VARIABLE: value"); break;
    case SP__KIND_TEXT: snprintf(buf, cap, "must be a non-empty string"); break;
  }
}

void sp__value_sanitize(char *buf, size_t cap, const char *s, size_t len) {
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

char *sp__value_resolve_path(const char *base_dir, const char *entry) {
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

size_t sp__key_suggest(const char *typed, const sp__key_spec_t *specs, size_t count, char *buf,
                       size_t cap) {
  size_t used = 0;
  size_t close = 0;
  if (cap == 0) return 0;
  buf[0] = '\0';
  /*
   * snprintf reports the length it wanted, so used can pass cap; the loop tests stop
   * before cap - used would wrap, and the text is then simply cut.
   */
  for (size_t i = 0; i < count && used < cap; i++) {
    if (!is_close(typed, specs[i].name)) continue;
    used +=
        (size_t)snprintf(buf + used, cap - used, "%s'%s'", close > 0 ? ", " : "", specs[i].name);
    close++;
  }
  if (close == 0) {
    used = (size_t)snprintf(buf, cap, "valid keys: ");
    for (size_t i = 0; i < count && used < cap; i++) {
      used += (size_t)snprintf(buf + used, cap - used, "%s%s", i > 0 ? ", " : "", specs[i].name);
    }
  }
  return close;
}

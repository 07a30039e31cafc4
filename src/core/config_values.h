/*
 * config_values.h - reading one configuration value from its text: integers with
 * bounds, durations, sizes, fractions, booleans, names, and the wording of errors.
 */
#ifndef SP_CORE_CONFIG_VALUES_H
#define SP_CORE_CONFIG_VALUES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Base units: durations are stored in milliseconds and sizes in bytes. */
#define SP__MS_PER_S INT64_C(1000)
#define SP__MS_PER_M (60 * SP__MS_PER_S)
#define SP__MS_PER_H (60 * SP__MS_PER_M)
#define SP__KIB INT64_C(1024)
#define SP__MIB (1024 * SP__KIB)
#define SP__GIB (1024 * SP__MIB)

/** Longest pool name; names are [A-Za-z0-9_.-]{1,SP__CONFIG_MAX_NAME_LEN}. */
#define SP__CONFIG_MAX_NAME_LEN 64

/** How a key's value is read; scalar kinds go through sp__value_parse, lists do not. */
typedef enum {
  SP__KIND_NAME,     /* pool name */
  SP__KIND_PROFILE,  /* "process" | "thread" */
  SP__KIND_START,    /* "fork" | "exec" (worker_start) */
  SP__KIND_PRELOAD,  /* a bool or "auto" (preload): 0, 1, 2 */
  SP__KIND_INT,      /* plain integer stored as int */
  SP__KIND_I64,      /* plain integer stored as int64_t */
  SP__KIND_DURATION, /* "500ms", "30s", "5m", "2h", bare seconds; milliseconds */
  SP__KIND_SIZE,     /* "512KiB", "64MiB", "1GB", bare bytes; bytes */
  SP__KIND_FRACTION, /* non-negative decimal, stored as double */
  SP__KIND_BOOL,     /* true/false, yes/no, on/off */
  SP__KIND_ADAPTER,  /* Python class path "package.module.Class" */
  SP__KIND_ARGS,     /* list of strings */
  SP__KIND_PATHS,    /* list of folder paths */
  SP__KIND_ENV,      /* mapping of VARIABLE: value */
  SP__KIND_TEXT      /* a non-empty string without control characters (URLs, file paths) */
} sp__value_kind_t;

/**
 * One accepted key: its name, how its value is read and the inclusive bounds for
 * numeric kinds (in base units). offset is where a scalar lands in the owner's
 * struct; this module never uses it. The name is borrowed and must be static.
 */
typedef struct sp__key_spec_s {
  const char *name;
  sp__value_kind_t kind;
  size_t offset;
  int64_t min;
  int64_t max;
  bool zero_disables; /* 0 is accepted even though it is below min */
} sp__key_spec_t;

/** A parsed scalar; which member is set depends on the key's kind. */
typedef union sp__value_u {
  int64_t integer; /* INT, I64, DURATION (ms), SIZE (bytes), BOOL (0/1), PROFILE, START (enums) */
  double fraction; /* FRACTION */
} sp__value_t;

/**
 * Parses text as a value of spec's kind and checks spec's bounds. Returns true and
 * fills *out, or false when the text is not acceptable. NAME and ADAPTER are only
 * validated (*out is untouched: the caller keeps the text itself); list and mapping
 * kinds always return false. text must be NUL-terminated; it is not retained.
 */
bool sp__value_parse(const sp__key_spec_t *spec, const char *text, sp__value_t *out);

/**
 * Writes what spec's key accepts, phrased "must be ..." with the bounds in the
 * units a user would write ("between 1s and 24h"), into buf[cap] (always
 * terminated, truncated when it does not fit).
 */
void sp__value_describe(const sp__key_spec_t *spec, char *buf, size_t cap);

/** True for an environment variable name a shell accepts, at most 128 characters. */
bool sp__value_env_name_valid(const char *s);

/**
 * Resolves a python_path entry: absolute entries are copied, relative ones are
 * joined to base_dir (leading "./" dropped) so a config works from any cwd.
 * Returns a malloc'd string the caller frees, or NULL when out of memory.
 */
char *sp__value_resolve_path(const char *base_dir, const char *entry);

/**
 * Copies len bytes of user text s into buf[cap] for an error message: control bytes
 * become '?' so a message is always one line, and text that does not fit is cut on
 * a UTF-8 boundary behind "...". buf is always terminated when cap > 0.
 */
void sp__value_sanitize(char *buf, size_t cap, const char *s, size_t len);

/**
 * Finds the keys in specs[count] close to the unknown key typed (a small typo, or
 * one name containing the other) and writes them to buf[cap] as "'a', 'b'". When
 * none is close, writes "valid keys: a, b, ..." instead. Returns the number of close
 * keys, so 0 means buf holds the full list.
 */
size_t sp__key_suggest(const char *typed, const sp__key_spec_t *specs, size_t count, char *buf,
                       size_t cap);

#endif /* SP_CORE_CONFIG_VALUES_H */

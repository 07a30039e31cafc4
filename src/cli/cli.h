/*
 * cli.h - what the `snakepit` command's parts share: global options, exit codes,
 * error reporting and JSON printing. Each command family lives in its own file.
 */
#ifndef SP_CLI_H
#define SP_CLI_H

#include <jansson.h>

#include "snakepit.h"

/* Exit codes, documented in `snakepit --help` and the README. */
enum {
  SP_EXIT_OK = 0,
  SP_EXIT_PYTHON = 1,  /* the tool raised */
  SP_EXIT_USAGE = 2,   /* bad command line */
  SP_EXIT_CONFIG = 3,  /* bad config or workers failed to start */
  SP_EXIT_INVALID = 4, /* unknown pool/tool, bad JSON or arguments */
  SP_EXIT_TIMEOUT = 5, /* deadline passed */
  SP_EXIT_WORKER = 6,  /* worker crashed, protocol or internal error */
  SP_EXIT_BUSY = 7,    /* pool saturated or stopping */
  SP_EXIT_FINDINGS = 8 /* `check` found thread-safety problems */
};

/** Options given before or after the command. */
typedef struct sp_cli_opts_s {
  const char *config; /* -c FILE, or NULL for the built-in pools */
  long timeout_ms;    /* -t MS, 0 = the pool's */
  int quiet;          /* -q */
  const char *url;    /* --url: talk to a running `snakepit serve` instead */
} sp_cli_opts_t;

/** Exit code for an SP_E* code. */
int sp_cli_exit_code(int code);
/** Prints an error (category, code, message, traceback) to stderr; returns its exit code. */
int sp_cli_report(const sp_error_t *e);
/** Pretty-prints JSON text to stdout (the raw text if it does not parse). */
void sp_cli_print_json(const char *text);

/** `snakepit check ADAPTER [...]`: argv[0] is "check". */
int sp_cli_check(const sp_cli_opts_t *o, int argc, char **argv);
/**
 * Adds the thread-safety checker's report, as "thread_safety", to each pool of the
 * stats JSON `*json` (from sp_stats_json(); one pool, or {"pools": [...]}) that runs
 * with thread_safety_checks on; pool non-NULL limits it to that pool. The report is
 * collected from every ready worker (workers: {id: report}) and merged (problems,
 * unlocked_writes, unsafe_libraries, warnings ...). On a change *json is replaced by
 * a new string (free with sp_free) and the old one freed; pools without checks are
 * left as they are. Returns 0, or SP_EINVAL/SP_ENOMEM with *json untouched.
 */
int sp_cli_thread_safety_report(sp_runtime_t *rt, const char *pool, char **json);
/** `snakepit doctor [POOL...] [--json]`: argv[0] is "doctor". */
int sp_cli_doctor(const sp_cli_opts_t *o, int argc, char **argv);
/** `snakepit serve [...]`: argv[0] is "serve". */
int sp_cli_serve(const sp_cli_opts_t *o, int argc, char **argv);
/** exec/tools/stats/pools against o->url; argv[0] is the command. */
int sp_cli_remote(const sp_cli_opts_t *o, int argc, char **argv);

/* tsreport.c: the thread-safety checker's reports. */

/** String member of a JSON object, or dflt. */
const char *sp_cli_jstr(const json_t *o, const char *key, const char *dflt);
/**
 * Asks each of the pool's `want` workers for its checker report (args: the report
 * tool's JSON arguments); a new object keyed by worker id, or NULL with err set.
 */
json_t *sp_cli_collect_reports(sp_runtime_t *rt, const char *pool, int want, const char *args,
                               sp_error_t *err);
/** Merges per-worker reports into one (new reference). */
json_t *sp_cli_merge_reports(json_t *by_worker);

#endif

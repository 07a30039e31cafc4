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
  SP_EXIT_FINDINGS = 8,  /* `check` found thread-safety problems */
  SP_EXIT_INCOMPLETE = 9 /* `check` found none, but could not exercise some tools */
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
/** Prints an error (category, code, message, traceback) to stderr and frees its
 * texts; returns its exit code. */
int sp_cli_report(sp_error_t *e);
/** Pretty-prints JSON text to stdout (the raw text if it does not parse). */
void sp_cli_print_json(const char *text);

/** `snakepit check ADAPTER [...]`: argv[0] is "check". */
int sp_cli_check(const sp_cli_opts_t *o, int argc, char **argv);
/** `snakepit serve [...]`: argv[0] is "serve". */
int sp_cli_serve(const sp_cli_opts_t *o, int argc, char **argv);
/** exec/tools/stats/pools against o->url; argv[0] is the command. */
int sp_cli_remote(const sp_cli_opts_t *o, int argc, char **argv);

/** String member of a JSON object, or dflt. */
const char *sp_cli_jstr(const json_t *o, const char *key, const char *dflt);

#endif

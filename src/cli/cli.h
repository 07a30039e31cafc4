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

#define SP_CLI_MAX_LIST 64
/* Where `snakepit serve` listens unless told otherwise (src/cli/serve.c). */
#define SP_CLI_DEFAULT_URL "http://127.0.0.1:8080"
#define SP_CLI_YAML_CAP 16384

/** One pool described on the command line (--adapter ...) instead of by a file. */
typedef struct sp_cli_pool_s {
  const char *adapter; /* --adapter MODULE.CLASS; NULL: no command-line pool */
  const char *name;    /* --name; NULL: "default" */
  const char *profile; /* --profile thread|process; NULL: thread if --threads > 1 */
  int workers;         /* --workers, 0 = the config default; with a range, its maximum */
  int min_workers;     /* --workers MIN..MAX: MIN; 0 = a fixed size */
  int threads;         /* --threads, 0 = the config default */
  int thread_safety_check;
  int preload; /* --preload: preload: true */
  const char *paths[SP_CLI_MAX_LIST]; /* --python-path */
  size_t npaths;
  const char *args[SP_CLI_MAX_LIST]; /* --adapter-arg */
  size_t nargs;
  char *yaml; /* built by sp_cli_pool_check() */
} sp_cli_pool_t;

/* getopt values of the pool options; SP_CLI_POOL_OPTIONS lists them for a struct option[]. */
enum {
  SP_CLI_OPT_ADAPTER = 1000,
  SP_CLI_OPT_NAME,
  SP_CLI_OPT_PROFILE,
  SP_CLI_OPT_WORKERS,
  SP_CLI_OPT_THREADS,
  SP_CLI_OPT_TSCHECK,
  SP_CLI_OPT_PYPATH,
  SP_CLI_OPT_ADAPTER_ARG,
  SP_CLI_OPT_PRELOAD
};
#define SP_CLI_POOL_OPTIONS                                                 \
  {"adapter", required_argument, NULL, SP_CLI_OPT_ADAPTER},                 \
      {"name", required_argument, NULL, SP_CLI_OPT_NAME},                   \
      {"profile", required_argument, NULL, SP_CLI_OPT_PROFILE},             \
      {"workers", required_argument, NULL, SP_CLI_OPT_WORKERS},             \
      {"threads", required_argument, NULL, SP_CLI_OPT_THREADS},             \
      {"thread-safety-check", no_argument, NULL, SP_CLI_OPT_TSCHECK},       \
      {"python-path", required_argument, NULL, SP_CLI_OPT_PYPATH},          \
      {"adapter-arg", required_argument, NULL, SP_CLI_OPT_ADAPTER_ARG},     \
      {"preload", no_argument, NULL, SP_CLI_OPT_PRELOAD}

/** Usage text of the pool options. */
#define SP_CLI_POOL_USAGE                                                                  \
  "  --adapter MODULE.CLASS   one pool running this adapter, instead of -c FILE\n"        \
  "    --name NAME            its name (default: default)\n"                              \
  "    --profile P            thread, process or auto (default: process, thread if\n"  \
  "                           --threads > 1); auto: thread on a free-threaded Python\n"  \
  "                           for an adapter declaring __thread_safe__ = True\n"         \
  "    --workers N            worker processes (default 2); MIN..MAX: as many as the\n"   \
  "                           load needs between the two (e.g. 1..4)\n"                 \
  "    --threads N            calls at once per worker, thread profile (default 4)\n"     \
  "    --thread-safety-check  run the SDK's thread-safety checker on every call\n"        \
  "    --python-path DIR      add DIR to the adapter's import path (repeatable; the\n"    \
  "                           current directory is always searched)\n"                    \
  "    --adapter-arg ARG      pass ARG to the adapter's constructor (repeatable)\n"     \
  "    --preload              build the adapter once in the fork server; workers share\n" \
  "                           its memory (a model's weights) copy-on-write\n"

/** Options given before or after the command. */
typedef struct sp_cli_opts_s {
  const char *config; /* -c FILE, or NULL for the built-in pools */
  long timeout_ms;    /* -t MS, 0 = the pool's */
  int quiet;          /* -q */
  const char *url;    /* --url: talk to a running `snakepit serve` instead */
  int json;           /* --json: JSON output even on a terminal */
  int local;          /* --local: start the built-in pools even if a server runs */
  int stream;         /* --stream: exec prints each chunk of a streaming tool as it comes */
  sp_cli_pool_t pool; /* --adapter ... */
  /* exec only: */
  const char **arrays; /* --array NAME=FILE.npy values (argv strings), owned array */
  int array_count;
  const char *out_dir; /* --out DIR: returned arrays become DIR/<path>.npy files */
  const char *session;      /* exec --session ID, or NULL */
  const char *session_mode; /* exec --session-mode MODE as given, or NULL (hint) */
  sp_nats_opts_t nats;   /* --nats URL and its auth options (cluster.c); url NULL: not used */
  const char *nats_name; /* serve --nats-name */
  const char *job_id;    /* submit --job-id */
} sp_cli_opts_t;

/* ---- cluster.c: the NATS options and the commands that go through NATS ---- */

enum {
  SP_CLI_OPT_NATS = 1100,
  SP_CLI_OPT_NATS_TOKEN,
  SP_CLI_OPT_NATS_USER,
  SP_CLI_OPT_NATS_PASSWORD,
  SP_CLI_OPT_NATS_CREDS,
  SP_CLI_OPT_NATS_CA,
  SP_CLI_OPT_NATS_NAME,
  SP_CLI_OPT_NATS_CERT,
  SP_CLI_OPT_NATS_KEY,
  SP_CLI_OPT_JOB_ID
};
#define SP_CLI_NATS_OPTIONS                                                  \
  {"nats", required_argument, NULL, SP_CLI_OPT_NATS},                        \
      {"nats-token", required_argument, NULL, SP_CLI_OPT_NATS_TOKEN},        \
      {"nats-user", required_argument, NULL, SP_CLI_OPT_NATS_USER},          \
      {"nats-password", required_argument, NULL, SP_CLI_OPT_NATS_PASSWORD},  \
      {"nats-creds", required_argument, NULL, SP_CLI_OPT_NATS_CREDS},        \
      {"nats-ca", required_argument, NULL, SP_CLI_OPT_NATS_CA},              \
      {"nats-name", required_argument, NULL, SP_CLI_OPT_NATS_NAME},          \
      {"nats-cert", required_argument, NULL, SP_CLI_OPT_NATS_CERT},          \
      {"nats-key", required_argument, NULL, SP_CLI_OPT_NATS_KEY},            \
      {"job-id", required_argument, NULL, SP_CLI_OPT_JOB_ID}

#define SP_CLI_NATS_USAGE                                                                    \
  "      --nats URL           NATS server (nats://HOST:4222; comma-separated for several)\n" \
  "      --nats-token T       NATS token (default: SNAKEPIT_NATS_TOKEN)\n"                  \
  "      --nats-user U --nats-password P   NATS user and password\n"                         \
  "      --nats-creds FILE    NATS credentials file;  --nats-ca FILE  CA for TLS\n"          \
  "      --nats-cert FILE --nats-key FILE   client certificate and key (mutual TLS)\n"

/** Takes getopt's ch/optarg if it is a NATS option: 1 taken, 0 not ours. */
int sp_cli_nats_option(int ch, const char *arg, sp_cli_opts_t *o);
/** Starts a runtime whose one pool is the remote `pool` on o's NATS server (exec, tools). */
int sp_cli_cluster_start(const sp_cli_opts_t *o, const char *pool, sp_runtime_t **rt,
                         sp_error_t *err);
/** stats/pools/nodes/submit/result (and tools of every pool) through NATS (o->nats.url set); argv[0] is the command. */
int sp_cli_cluster(const sp_cli_opts_t *o, int argc, char **argv);

/** Array arguments of one exec, loaded from their .npy files. */
typedef struct sp_cli_inputs_s {
  sp_array_t *arrays; /* count arrays for sp_call_opts_t.arrays */
  struct sp_npy_s *npy;
  char **files; /* the files' bytes, which the arrays point into */
  char **names;
  size_t count;
} sp_cli_inputs_t;

/* pooldef.c: the command-line pool. */

/** Takes getopt's ch/optarg if it is a pool option: 1 taken, 0 not ours, -1 bad (printed). */
int sp_cli_pool_option(int ch, const char *arg, sp_cli_pool_t *p);
/** Checks the pool options against -c and each other and builds p->yaml; -1 if bad (printed). */
int sp_cli_pool_check(sp_cli_pool_t *p, const char *config);
/** Frees what sp_cli_pool_check() built (p->yaml); the options themselves are argv's. */
void sp_cli_pool_free(sp_cli_pool_t *p);
/** The command-line pool's name. */
const char *sp_cli_pool_name(const sp_cli_pool_t *p);
/** Starts the runtime: the --adapter pool, else -c FILE, else the built-in pools. */
int sp_cli_start(const sp_cli_opts_t *o, sp_runtime_t **rt, sp_error_t *err);
/** Parses a whole number lo..hi for option opt; -1 (printed) if it is not one. */
int sp_cli_parse_long(const char *opt, const char *s, long lo, long hi, long *out);
/** Appends text to buf (cap bytes, *len used); -1 if it does not fit. */
int sp_cli_yaml_add(char *buf, size_t cap, size_t *len, const char *text);
/** Appends s as a YAML double-quoted scalar; -1 if it has control characters or does not fit. */
int sp_cli_yaml_quote(char *buf, size_t cap, size_t *len, const char *s);

/** Exit code for an SP_E* code. */
int sp_cli_exit_code(int code);
/** Prints an error (category, code, message, traceback) to stderr and frees its
 * texts; returns its exit code. */
int sp_cli_report(sp_error_t *e);
/** Pretty-prints JSON text to stdout (the raw text if it does not parse). */
void sp_cli_print_json(const char *text);

/** `snakepit check ADAPTER [...]`: argv[0] is "check". */
int sp_cli_check(const sp_cli_opts_t *o, int argc, char **argv);
/** Prints stats JSON: a table on a terminal, the JSON when piped or as_json. */
void sp_cli_print_stats(int as_json, const char *json);
/** `snakepit top [...]`: argv[0] is "top". */
int sp_cli_top(const sp_cli_opts_t *o, int argc, char **argv);
/** DELETEs session id of pool at o->url and prints the answer; returns the exit code. */
int sp_cli_remote_session_end(const sp_cli_opts_t *o, const char *pool, const char *id);

/* session.c: the session options of exec and `snakepit session`. */

/**
 * Takes argv[*i] (and its value) if it is --session[=]ID or --session-mode[=]MODE,
 * advancing *i past the value: 1 taken, 0 not one of them, -1 value missing (printed).
 */
int sp_cli_session_option(int argc, char **argv, int *i, sp_cli_opts_t *o);
/** Checks --session/--session-mode for cmd (printed when bad): 0, or -1. */
int sp_cli_session_options(const sp_cli_opts_t *o, const char *cmd);
/** `snakepit session end POOL ID` (argv: "end", POOL, ID), local or against o->url. */
int sp_cli_session(const sp_cli_opts_t *o, int argc, char **argv);

/** GETs the stats of pool (NULL: all) from o->url into *json (free()); -1 ok, else exit code. */
int sp_cli_remote_stats(const sp_cli_opts_t *o, const char *pool, char **json);
/** 1 if a snakepit server answers /healthz at url (within half a second). */
int sp_cli_server_answers(const char *url);
/** SNAKEPIT_URL, else the address `snakepit serve` listens on by default. */
const char *sp_cli_default_url(void);
/** `snakepit doctor [POOL...] [--json]`: argv[0] is "doctor". */
int sp_cli_doctor(const sp_cli_opts_t *o, int argc, char **argv);
/** `snakepit serve [...]`: argv[0] is "serve". */
int sp_cli_serve(const sp_cli_opts_t *o, int argc, char **argv);
/** exec/tools/stats/pools against o->url; argv[0] is the command. */
int sp_cli_remote(const sp_cli_opts_t *o, int argc, char **argv);

/* ---- arrays.c: exec --array / --out ---- */

/** Takes exec's --array and --out out of argv[1..*argc) into o (argv is
 * compacted); returns -1 to go on, or an exit code after printing why. */
int sp_cli_exec_options(int *argc, char **argv, sp_cli_opts_t *o);
/** Reads a whole file into *data (free with free()); 0, or -1 with errno. */
int sp_cli_read_file(const char *path, char **data, size_t *len);
/** Loads o's --array files as arrays; returns -1 to go on, else the exit code
 * after printing the file's problem. in is released by sp_cli_inputs_free. */
int sp_cli_inputs_load(const sp_cli_opts_t *o, sp_cli_inputs_t *in);
void sp_cli_inputs_free(sp_cli_inputs_t *in);
/**
 * Prints a result: with out_dir, writes each array as out_dir/<path>.npy and
 * prints json with each {"$array": i} replaced by {"$array": FILE, "dtype",
 * "shape"}; without, prints json. Returns the exit code.
 */
int sp_cli_print_result(const char *json, const sp_array_t *arrays, size_t count,
                        const char *out_dir);

/** String member of a JSON object, or dflt. */
const char *sp_cli_jstr(const json_t *o, const char *key, const char *dflt);

#endif

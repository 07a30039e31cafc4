/*
 * check.h - what `snakepit check` shares between running the tools (check.c)
 * and writing its report (checkreport.c).
 */
#ifndef SP_CLI_CHECK_H
#define SP_CLI_CHECK_H

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>

#include "snakepit.h"

#define CHECK_POOL "check"
#define MAX_LIST 64

typedef struct check_opts_s {
  const char *adapter;
  int thread_profile; /* 1: thread profile (default), 0: process profile */
  int threads;        /* threads per worker (thread) or workers (process) */
  int calls;          /* concurrent calls per tool */
  const char *args_file;
  const char *paths[MAX_LIST];
  size_t npaths;
  const char *only[MAX_LIST]; /* --tool */
  size_t nonly;
  const char *skip[MAX_LIST]; /* --skip */
  size_t nskip;
  const char *allow[MAX_LIST]; /* --allow LIB */
  size_t nallow;
  const char *aargs[MAX_LIST]; /* --adapter-arg ARG */
  size_t naargs;
  int strict, json, verbose, quiet;
  long timeout_ms;
} check_opts_t;

/** One tool's run: its arguments, the calls made and how they ended. */
typedef struct tool_run_s {
  const char *name;
  json_t *args;        /* array of argument objects, used in turn */
  int generated;       /* arguments were made up from the parameter types */
  const char *skipped; /* reason, or NULL */
  int calls, ok, failed, crashed;
  char first_error[1280]; /* python_type + ": " + message */
  char alone_error[1280];
  double seconds;
  sp_runtime_t *rt;
  atomic_int next;
  pthread_mutex_t mu;
} tool_run_t;

/**
 * The report (new reference): the declaration, tools with their peak
 * overlap, libraries, findings, notes and problem count, from the merged
 * checker reports and the first worker's report.
 */
json_t *sp_check_build_report(const check_opts_t *c, json_t *merged, json_t *first_worker,
                              tool_run_t *runs, size_t nruns);

/** Whether s is one of the n strings of list. */
int sp_check_in_list(const char *const *list, size_t n, const char *s);

/** Prints the report for a person. */
void sp_check_print_text(const check_opts_t *c, json_t *rep);

#endif /* SP_CLI_CHECK_H */

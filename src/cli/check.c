/*
 * check.c - `snakepit check ADAPTER`: thread-safety report for an adapter.
 */
#include <stdio.h>

#include "cli.h"

int sp_cli_check(const sp_cli_opts_t *o, int argc, char **argv) {
  (void)o;
  (void)argc;
  (void)argv;
  fprintf(stderr, "snakepit: check is not available in this build\n");
  return SP_EXIT_USAGE;
}

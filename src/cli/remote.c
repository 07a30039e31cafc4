/*
 * remote.c - exec/tools/stats/pools against a running `snakepit serve` (--url).
 */
#include <stdio.h>

#include "cli.h"

int sp_cli_remote(const sp_cli_opts_t *o, int argc, char **argv) {
  (void)o;
  (void)argc;
  (void)argv;
  fprintf(stderr, "snakepit: --url is not available in this build\n");
  return SP_EXIT_USAGE;
}

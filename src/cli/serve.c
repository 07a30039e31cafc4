/*
 * serve.c - `snakepit serve`: the HTTP/JSON front end.
 */
#include <stdio.h>

#include "cli.h"

int sp_cli_serve(const sp_cli_opts_t *o, int argc, char **argv) {
  (void)o;
  (void)argc;
  (void)argv;
  fprintf(stderr, "snakepit: serve is not available in this build\n");
  return SP_EXIT_USAGE;
}

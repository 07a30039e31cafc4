/*
 * session.c - sessions on the command line: checking exec's --session and
 * --session-mode before anything starts, and `snakepit session end POOL ID`
 * (against a server with --url, or on pools started for the command).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

int sp_cli_session_option(int argc, char **argv, int *i, sp_cli_opts_t *o) {
  static const char *const names[] = {"--session", "--session-mode"};
  const char **dest[] = {&o->session, &o->session_mode};
  for (int k = 0; k < 2; k++) {
    size_t n = strlen(names[k]);
    const char *a = argv[*i];
    if (strncmp(a, names[k], n) != 0 || (a[n] != '\0' && a[n] != '=')) continue;
    if (a[n] == '=') {
      *dest[k] = a + n + 1;
    } else if (*i + 1 < argc) {
      *dest[k] = argv[++*i];
    } else {
      fprintf(stderr, "snakepit: %s needs a value\n", names[k]);
      return -1;
    }
    return 1;
  }
  return 0;
}

int sp_cli_session_options(const sp_cli_opts_t *o, const char *cmd) {
  if (o->session == NULL && o->session_mode == NULL) return 0;
  sp_error_t err;
  if (strcmp(cmd, "exec") != 0) {
    fprintf(stderr, "snakepit: --session and --session-mode are options of exec, not of %s\n",
            cmd);
    return -1;
  }
  if (o->session == NULL) {
    fprintf(stderr, "snakepit: --session-mode needs --session ID\n");
    return -1;
  }
  const char *option = "--session";
  int rc = sp_session_check(o->session, &err);
  if (rc == 0 && o->session_mode != NULL) {
    option = "--session-mode";
    rc = sp_session_mode_parse(o->session_mode, NULL, &err);
  }
  if (rc != 0) {
    fprintf(stderr, "snakepit: %s: %s\n", option, err.message);
    sp_error_free(&err);
    return -1;
  }
  return 0;
}

int sp_cli_session(const sp_cli_opts_t *o, int argc, char **argv) {
  if (argc != 3 || strcmp(argv[0], "end") != 0) {
    fprintf(stderr, "snakepit: session needs: session end POOL ID\n");
    return SP_EXIT_USAGE;
  }
  const char *pool = argv[1], *id = argv[2];
  sp_error_t err;
  if (sp_session_check(id, &err) != 0) {
    fprintf(stderr, "snakepit: session end: %s\n", err.message);
    sp_error_free(&err);
    return SP_EXIT_USAGE;
  }
  if (o->url != NULL) return sp_cli_remote_session_end(o, pool, id);
  /* Pools started for this command hold no session yet: ending one is a no-op
   * that still checks the pool, so scripts behave the same either way. */
  sp_runtime_t *rt = NULL;
  if (sp_cli_start(o, &rt, &err) != 0) return sp_cli_report(&err);
  int rc = sp_session_end(rt, pool, id, &err);
  if (rc == 0) {
    json_t *out = json_pack("{s:s, s:s, s:b}", "pool", pool, "session", id, "ended", 1);
    char *s = json_dumps(out, JSON_INDENT(2));
    puts(s ? s : "null");
    free(s);
    json_decref(out);
  }
  sp_runtime_stop(rt, 5000);
  return rc == 0 ? SP_EXIT_OK : sp_cli_report(&err);
}

/*
 * profile.c - worker_profile: auto. The choice depends on the interpreter
 * (free-threaded, GIL off) and on the adapter (its __thread_safe__
 * declaration, the libraries its module imports), so a short-lived
 * `snakepit-worker --choose-profile` imports the module and answers, before
 * the pool's first worker or fork server starts with the chosen profile.
 */
#include "profile.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "errors.h"
#include "log.h"
#include "spawn.h"

int sp__profile_resolve(sp_runtime_t *rt, sp__pool_config_t *pc, sp_error_t *err) {
  if (pc->profile != SP__PROFILE_AUTO) return 0;
  sp__pool_config_t probe = *pc;
  probe.profile = SP__PROFILE_PROCESS;
  probe.threads_per_worker = 1;
  char *out = NULL, *diag = NULL;
  int status = -1;
  int rc = sp__spawn_probe(rt, &probe, "--choose-profile", &out, &diag, &status, err);
  if (rc != 0) goto done;
  /* The decision is the last line of its output; anything the module printed comes first. */
  const char *line = out ? out : "";
  for (const char *q = line; (q = strstr(q, "\n{")) != NULL; q++) line = q + 1;
  json_t *o = status == 0 ? json_loads(line, 0, NULL) : NULL;
  const char *profile = json_string_value(json_object_get(o, "profile"));
  const char *reason = json_string_value(json_object_get(o, "reason"));
  if (profile == NULL || reason == NULL) {
    const char *tb = diag ? diag : "";
    char msg[512];
    snprintf(msg, sizeof(msg),
             "pool '%s': worker_profile auto could not import adapter %s to choose a profile "
             "(exit code %d; traceback below)",
             pc->name, pc->adapter, status);
    rc = sp__error_setn(err, SP_ESTARTUP, msg, strlen(msg), "", 0, tb, strlen(tb));
    json_decref(o);
    goto done;
  }
  pc->profile = strcmp(profile, "thread") == 0 ? SP__PROFILE_THREAD : SP__PROFILE_PROCESS;
  if (pc->profile == SP__PROFILE_PROCESS) pc->threads_per_worker = 1;
  else if (pc->threads_per_worker == 0) pc->threads_per_worker = 4;
  pc->profile_auto = 1;
  free(pc->profile_reason);
  pc->profile_reason = strdup(reason);
  sp__log(SP__LOG_INFO, "pool '%s': worker_profile auto chose %s (%d thread%s per worker): %s",
          pc->name, profile, pc->threads_per_worker, pc->threads_per_worker == 1 ? "" : "s",
          reason);
  json_decref(o);
done:
  free(out);
  free(diag);
  return rc;
}

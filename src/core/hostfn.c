/*
 * hostfn.c - the functions a host application offers to tools
 * (sp_register_host_function): a registry any thread may change, and the
 * bookkeeping that lets sp_unregister_host_function wait for calls of a
 * function still running on libuv's thread pool (hostcall.c runs them).
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "errors.h"
#include "hostfn.h"
#include "runtime.h"

struct sp__hostfn_s {
  struct sp__hostfn_s *next;
  char *name;
  sp_host_fn fn;
  void *ud;
  int running; /* calls of it on the thread pool now */
  int removed; /* unregistered: freed once running drops to 0 */
  int waited;  /* an unregistering thread waits for running to drop to 0 and frees it */
};

/* The host function the calling thread-pool thread runs, to let it unregister itself. */
static _Thread_local sp__hostfn_t *tl_running;

#define HOSTFN_NAME_MAX 128

void sp__hostfns_init(sp_runtime_t *rt) {
  pthread_mutex_init(&rt->hfmu, NULL);
  pthread_cond_init(&rt->hfcond, NULL);
}

static void hostfn_free(sp__hostfn_t *f) {
  free(f->name);
  free(f);
}

void sp__hostfns_free(sp_runtime_t *rt) {
  /* The loop has ended: no host function runs any more. */
  for (sp__hostfn_t *f = rt->hostfns, *next; f != NULL; f = next) {
    next = f->next;
    hostfn_free(f);
  }
  rt->hostfns = NULL;
  pthread_cond_destroy(&rt->hfcond);
  pthread_mutex_destroy(&rt->hfmu);
}

static int name_ok(const char *name) {
  size_t n = 0;
  for (const char *p = name; *p; p++, n++) {
    char c = *p;
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
          c == '.' || c == '-'))
      return 0;
  }
  return n >= 1 && n <= HOSTFN_NAME_MAX;
}

/* The live entry called name (rt->hfmu held), or NULL. */
static sp__hostfn_t **find_fn(sp_runtime_t *rt, const char *name, size_t len) {
  for (sp__hostfn_t **pp = &rt->hostfns; *pp != NULL; pp = &(*pp)->next)
    if (strlen((*pp)->name) == len && memcmp((*pp)->name, name, len) == 0) return pp;
  return NULL;
}

int sp_register_host_function(sp_runtime_t *rt, const char *name, sp_host_fn fn, void *userdata,
                              sp_error_t *err) {
  if (rt == NULL || name == NULL || fn == NULL)
    return sp__error_set(err, SP_EINVAL, "sp_register_host_function: rt, name and fn must not be NULL");
  if (!name_ok(name))
    return sp__error_set(err, SP_EINVAL,
                         "host function name '%.200s' is not 1..%d characters of A-Z a-z 0-9 _ . -",
                         name, HOSTFN_NAME_MAX);
  sp__hostfn_t *f = calloc(1, sizeof(*f));
  if (f == NULL || (f->name = strdup(name)) == NULL) {
    free(f);
    return sp__error_set(err, SP_ENOMEM, "out of memory registering host function '%s'", name);
  }
  f->fn = fn;
  f->ud = userdata;
  pthread_mutex_lock(&rt->hfmu);
  int taken = find_fn(rt, name, strlen(name)) != NULL;
  if (!taken) {
    f->next = rt->hostfns;
    rt->hostfns = f;
  }
  pthread_mutex_unlock(&rt->hfmu);
  if (taken) {
    hostfn_free(f);
    return sp__error_set(err, SP_EINVAL,
                         "host function '%s' is registered already (unregister it first)", name);
  }
  sp__error_clear(err);
  return 0;
}

int sp_unregister_host_function(sp_runtime_t *rt, const char *name) {
  if (rt == NULL || name == NULL) return SP_EINVAL;
  pthread_mutex_lock(&rt->hfmu);
  sp__hostfn_t **pp = find_fn(rt, name, strlen(name));
  if (pp == NULL) {
    pthread_mutex_unlock(&rt->hfmu);
    return SP_EINVAL;
  }
  sp__hostfn_t *f = *pp;
  *pp = f->next;
  f->removed = 1;
  /* Inside the function itself, or on the loop thread (which the function
   * may be waiting for through sp_execute), waiting could never end. */
  int wait = tl_running != f && !sp__rt_on_loop_thread(rt);
  if (f->running > 0 && !wait) {
    pthread_mutex_unlock(&rt->hfmu);
    return 0; /* the last running call frees it */
  }
  f->waited = 1;
  while (f->running > 0) pthread_cond_wait(&rt->hfcond, &rt->hfmu);
  pthread_mutex_unlock(&rt->hfmu);
  hostfn_free(f);
  return 0;
}

sp__hostfn_t *sp__hostfn_acquire(sp_runtime_t *rt, const char *name, size_t len) {
  pthread_mutex_lock(&rt->hfmu);
  sp__hostfn_t **pp = find_fn(rt, name, len);
  sp__hostfn_t *f = pp != NULL ? *pp : NULL;
  if (f != NULL) f->running++;
  pthread_mutex_unlock(&rt->hfmu);
  return f;
}

const char *sp__hostfn_name(const sp__hostfn_t *f) { return f->name; }

int sp__hostfn_run(sp__hostfn_t *f, const char *args, char **out, sp_error_t *err) {
  tl_running = f;
  int rc = f->fn(args, out, err, f->ud);
  tl_running = NULL;
  return rc;
}

void sp__hostfn_release(sp_runtime_t *rt, sp__hostfn_t *f) {
  pthread_mutex_lock(&rt->hfmu);
  if (--f->running == 0 && f->removed) {
    if (f->waited) pthread_cond_broadcast(&rt->hfcond); /* the unregistering thread frees it */
    else hostfn_free(f);
  }
  pthread_mutex_unlock(&rt->hfmu);
}

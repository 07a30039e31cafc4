/*
 * spawn.c - starting a snakepit-worker process for a pool: its command line,
 * its environment, and uv_spawn in its own session. Used for exec'd workers
 * and for the pool's fork server, which takes the same pool-level options.
 */
#include "spawn.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errors.h"

extern char **environ;

static int env_has(char **env, size_t n, const char *key) {
  size_t kl = strlen(key);
  for (size_t i = 0; i < n; i++)
    if (strncmp(env[i], key, kl) == 0 && env[i][kl] == '=') return 1;
  return 0;
}

static char *kv(const char *k, const char *v) {
  size_t n = strlen(k) + strlen(v) + 2;
  char *s = malloc(n);
  if (s) snprintf(s, n, "%s=%s", k, v);
  return s;
}

/*
 * Worker environment: adapter_env first, then the SNAKEPIT_* variables, then the
 * manager's environment (minus PYTHONHOME, which would point the embedded
 * interpreter at another Python's library), then thread-count defaults for
 * BLAS/OpenMP that apply only when nobody set them.
 */
static char **build_env(const sp__pool_t *p, const char *worker_id, size_t *count) {
  const sp__pool_config_t *cfg = p->cfg;
  size_t n_env = 0;
  while (environ[n_env]) n_env++;
  size_t cap = n_env + cfg->env_count + 16;
  char **env = calloc(cap, sizeof(char *));
  size_t n = 0;
  if (env == NULL) return NULL;
  char threads[16];
  snprintf(threads, sizeof(threads), "%d", cfg->threads_per_worker);
  for (size_t i = 0; i < cfg->env_count; i++) env[n++] = kv(cfg->env_keys[i], cfg->env_values[i]);
  const char *ours[][2] = {{"SNAKEPIT_POOL", cfg->name},
                           {"SNAKEPIT_WORKER_ID", worker_id},
                           {"SNAKEPIT_THREADS", threads},
                           {"SNAKEPIT_PROFILE", cfg->profile == SP__PROFILE_THREAD ? "thread" : "process"},
                           {"PYTHONUNBUFFERED", "1"},
                           {"SNAKEPIT_THREAD_SAFETY_CHECK", cfg->thread_safety_checks ? "1" : "0"}};
  for (size_t i = 0; i < sizeof(ours) / sizeof(ours[0]); i++)
    if (!env_has(env, n, ours[i][0])) env[n++] = kv(ours[i][0], ours[i][1]);
  for (size_t i = 0; i < n_env; i++) {
    const char *eq = strchr(environ[i], '=');
    if (eq == NULL || strncmp(environ[i], "PYTHONHOME=", 11) == 0) continue;
    char key[256];
    size_t kl = (size_t)(eq - environ[i]);
    if (kl >= sizeof(key)) continue;
    memcpy(key, environ[i], kl);
    key[kl] = '\0';
    if (!env_has(env, n, key)) env[n++] = strdup(environ[i]);
  }
  static const char *defaults[] = {"OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"};
  for (size_t i = 0; i < 3; i++)
    if (!env_has(env, n, defaults[i])) env[n++] = kv(defaults[i], "1");
  for (size_t i = 0; i < n; i++) {
    if (env[i] == NULL) { /* an allocation failed */
      for (size_t j = 0; j < n; j++) free(env[j]);
      free(env);
      return NULL;
    }
  }
  *count = n;
  return env;
}

static void free_strv(char **v, size_t n) {
  if (v == NULL) return;
  for (size_t i = 0; i < n; i++) free(v[i]);
  free(v);
}

/* A worker's command line; without worker_id, the pool's fork server's. */
static char **build_args(const sp__pool_t *p, const char *worker_id, size_t *count) {
  const sp__pool_config_t *cfg = p->cfg;
  const sp_runtime_t *rt = p->rt;
  size_t cap = 20 + 2 * (cfg->python_path_count + cfg->adapter_args_count);
  char **a = calloc(cap, sizeof(char *));
  size_t n = 0;
  if (a == NULL) return NULL;
  char num[32];
  a[n++] = strdup(rt->worker_path);
  a[n++] = strdup("--fd");
  a[n++] = strdup("3");
  a[n++] = strdup("--adapter");
  a[n++] = strdup(cfg->adapter);
  a[n++] = strdup("--threads");
  snprintf(num, sizeof(num), "%d", cfg->threads_per_worker);
  a[n++] = strdup(num);
  a[n++] = strdup("--pool");
  a[n++] = strdup(cfg->name);
  if (worker_id != NULL) {
    a[n++] = strdup("--worker-id");
    a[n++] = strdup(worker_id);
  } else {
    a[n++] = strdup("--fork-server");
    if (cfg->preload != SP__PRELOAD_OFF && !p->preload_off) a[n++] = strdup("--preload");
  }
  a[n++] = strdup("--profile");
  a[n++] = strdup(cfg->profile == SP__PROFILE_THREAD ? "thread" : "process");
  a[n++] = strdup("--max-frame");
  snprintf(num, sizeof(num), "%lld", (long long)cfg->max_frame_bytes);
  a[n++] = strdup(num);
  a[n++] = strdup("--python-path");
  a[n++] = strdup(rt->sdk_dir);
  for (size_t i = 0; i < cfg->python_path_count; i++) {
    a[n++] = strdup("--python-path");
    a[n++] = strdup(cfg->python_path[i]);
  }
  a[n++] = strdup("--python-path");
  a[n++] = strdup(rt->cfg.base_dir ? rt->cfg.base_dir : ".");
  for (size_t i = 0; i < cfg->adapter_args_count; i++) {
    a[n++] = strdup("--adapter-arg");
    a[n++] = strdup(cfg->adapter_args[i]);
  }
  for (size_t i = 0; i < n; i++) {
    if (a[i] == NULL) {
      free_strv(a, n);
      return NULL;
    }
  }
  *count = n;
  return a;
}

int sp__spawn_worker_process(sp__pool_t *p, const char *worker_id, uv_process_t *proc,
                             uv_exit_cb on_exit, int sock, int out, int in_shm, int out_shm,
                             sp_error_t *err) {
  sp_runtime_t *rt = p->rt;
  size_t nargs = 0, nenv = 0;
  char **args = build_args(p, worker_id, &nargs);
  char **env = build_env(p, worker_id ? worker_id : "fork-server", &nenv);
  /* uv_spawn wants NULL-terminated vectors; ours have room for the NULL. */
  char **argv = calloc(nargs + 1, sizeof(char *));
  char **envp = calloc(nenv + 1, sizeof(char *));
  int rc = 0;
  if (args == NULL || env == NULL || argv == NULL || envp == NULL) {
    rc = sp__error_set(err, SP_ENOMEM, "out of memory spawning a worker");
    goto out;
  }
  memcpy(argv, args, nargs * sizeof(char *));
  memcpy(envp, env, nenv * sizeof(char *));

  uv_stdio_container_t stdio[6];
  stdio[0].flags = UV_IGNORE;
  stdio[1].flags = UV_INHERIT_FD;
  stdio[1].data.fd = out;
  stdio[2].flags = UV_INHERIT_FD;
  stdio[2].data.fd = out;
  stdio[3].flags = UV_INHERIT_FD;
  stdio[3].data.fd = sock;
  stdio[4].flags = in_shm >= 0 ? UV_INHERIT_FD : UV_IGNORE;
  stdio[4].data.fd = in_shm;
  stdio[5].flags = out_shm >= 0 ? UV_INHERIT_FD : UV_IGNORE;
  stdio[5].data.fd = out_shm;
  uv_process_options_t o;
  memset(&o, 0, sizeof(o));
  o.file = rt->worker_path;
  o.args = argv;
  o.env = envp;
  o.exit_cb = on_exit;
  o.stdio = stdio;
  o.stdio_count = in_shm >= 0 ? 6 : 4;
  /* Own session and process group: signals to the manager's terminal do not hit
   * workers directly, and a kill of the group also takes the worker's children. */
  o.flags = UV_PROCESS_DETACHED;
  int urc = uv_spawn(&rt->loop, proc, &o);
  if (urc != 0)
    rc = sp__error_set(err, SP_ESTARTUP, "pool '%s': cannot start worker program '%s': %s",
                       p->cfg->name, rt->worker_path, uv_strerror(urc));
out:
  free(argv);
  free(envp);
  free_strv(args, nargs);
  free_strv(env, nenv);
  return rc;
}

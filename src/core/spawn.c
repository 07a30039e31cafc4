/*
 * spawn.c - starting a snakepit-worker process for a pool: its command line,
 * its environment, and uv_spawn in its own session. Used for exec'd workers
 * and for the pool's fork server, which takes the same pool-level options,
 * and (sp__spawn_probe) for a short-lived run that answers one question.
 */
#include "spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "clock.h"
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

/* A worker's command line; without worker_id, the pool's fork server's; flag
 * (may be NULL) is one more option at its end. */
static char **build_args(const sp__pool_t *p, const char *worker_id, const char *flag,
                         size_t *count) {
  const sp__pool_config_t *cfg = p->cfg;
  const sp_runtime_t *rt = p->rt;
  size_t cap = 22 + 2 * (cfg->python_path_count + cfg->adapter_args_count);
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
  if (flag != NULL) a[n++] = strdup(flag);
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
  char **args = build_args(p, worker_id, NULL, &nargs);
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

/* Reads fd into *buf (grown as needed, at most 1 MiB kept); 0 at EOF, 1 more to come. */
static int read_some(int fd, char **buf, size_t *len, size_t *cap) {
  if (*cap - *len < 4096) {
    size_t ncap = *cap ? *cap * 2 : 8192;
    if (ncap > (1u << 20)) ncap = 1u << 20;
    char *nb = ncap > *cap ? realloc(*buf, ncap) : *buf;
    if (nb == NULL) return 0;
    *buf = nb;
    *cap = ncap;
    if (*cap - *len < 2) *len = 0; /* full: keep the latest output */
  }
  ssize_t n = read(fd, *buf + *len, *cap - *len - 1);
  if (n < 0 && errno == EINTR) return 1;
  if (n <= 0) return 0;
  *len += (size_t)n;
  (*buf)[*len] = '\0';
  return 1;
}

int sp__spawn_probe(sp_runtime_t *rt, const sp__pool_config_t *cfg, const char *flag,
                    char **out, char **diag, int *status, sp_error_t *err) {
  sp__pool_t tmp;
  memset(&tmp, 0, sizeof(tmp));
  tmp.rt = rt;
  tmp.cfg = cfg;
  size_t nargs = 0, nenv = 0;
  char **args = build_args(&tmp, "probe", flag, &nargs);
  char **env = build_env(&tmp, "probe", &nenv);
  char **argv = calloc(nargs + 1, sizeof(char *)), **envp = calloc(nenv + 1, sizeof(char *));
  int po[2] = {-1, -1}, pe[2] = {-1, -1}, rc = 0;
  size_t olen = 0, ocap = 0, elen = 0, ecap = 0;
  *out = *diag = NULL;
  *status = -1;
  if (args == NULL || env == NULL || argv == NULL || envp == NULL || pipe2(po, O_CLOEXEC) != 0 ||
      pipe2(pe, O_CLOEXEC) != 0) {
    rc = sp__error_set(err, SP_ENOMEM, "pool '%s': cannot start the worker program: %s",
                       cfg->name, strerror(errno));
    goto out;
  }
  memcpy(argv, args, nargs * sizeof(char *));
  memcpy(envp, env, nenv * sizeof(char *));
  /* Only async-signal-safe calls between fork and exec: the caller may have threads. */
  pid_t pid = fork();
  if (pid == 0) {
    int null = open("/dev/null", O_RDONLY);
    if (null < 0 || dup2(null, 0) < 0 || dup2(po[1], 1) < 0 || dup2(pe[1], 2) < 0) _exit(127);
    execve(rt->worker_path, argv, envp);
    _exit(127);
  }
  int src = pid < 0 ? errno : 0;
  close(po[1]);
  close(pe[1]);
  po[1] = pe[1] = -1;
  if (src != 0) {
    rc = sp__error_set(err, SP_ESTARTUP, "pool '%s': cannot start worker program '%s': %s",
                       cfg->name, rt->worker_path, strerror(src));
    goto out;
  }
  int64_t deadline = sp__now_ms() + cfg->startup_timeout_ms;
  int open_o = 1, open_e = 1;
  while (open_o || open_e) {
    int64_t left = deadline - sp__now_ms();
    struct pollfd pf[2] = {{open_o ? po[0] : -1, POLLIN, 0}, {open_e ? pe[0] : -1, POLLIN, 0}};
    if (left <= 0 || poll(pf, 2, (int)left) == 0) {
      kill(pid, SIGKILL);
      waitpid(pid, NULL, 0);
      rc = sp__error_set(err, SP_ESTARTUP,
                         "pool '%s': importing adapter %s to choose its profile took longer than "
                         "startup_timeout (%lld ms)",
                         cfg->name, cfg->adapter, (long long)cfg->startup_timeout_ms);
      goto out;
    }
    if (pf[0].revents && !read_some(po[0], out, &olen, &ocap)) open_o = 0;
    if (pf[1].revents && !read_some(pe[0], diag, &elen, &ecap)) open_e = 0;
  }
  int st = 0;
  while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
  }
  *status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
out:
  for (int i = 0; i < 2; i++) {
    if (po[i] >= 0) close(po[i]);
    if (pe[i] >= 0) close(pe[i]);
  }
  free(argv);
  free(envp);
  free_strv(args, nargs);
  free_strv(env, nenv);
  return rc;
}

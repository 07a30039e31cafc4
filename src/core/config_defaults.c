/*
 * config_defaults.c - the configuration without YAML: each key's default, the
 * built-in pools (hpc_pool and default), and freeing and finding pools.
 */
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "config_values.h"
#include "errors.h"

static int nomem(sp_error_t *err) {
  return sp__error_set(err, SP_ENOMEM, "out of memory while loading the configuration");
}

void sp__pool_config_defaults(sp__pool_config_t *pc, sp__profile_t profile) {
  /*
   * Strings stay NULL, adapter included: this function cannot report allocation
   * failure, so the loaders store their own copy of SP__DEFAULT_ADAPTER when the
   * entry names none. Nothing already in *pc is freed.
   */
  memset(pc, 0, sizeof(*pc));
  pc->profile = profile;
  pc->pool_size = 2;
  pc->min_workers = 2;
  pc->scale_up_wait_ms = 50;
  pc->scale_down_idle_ms = 60 * SP__MS_PER_S;
  pc->threads_per_worker = profile == SP__PROFILE_THREAD ? 4 : 1;
  pc->worker_ttl_ms = 0;
  pc->worker_max_requests = 0;
  pc->worker_max_rss_mb = 0;
  pc->recycle_jitter = 0.1;
  pc->min_lifetime_ms = 1 * SP__MS_PER_S;
  pc->timeout_ms = 30 * SP__MS_PER_S;
  pc->queue_timeout_ms = 5 * SP__MS_PER_S;
  pc->max_queue = 1000;
  pc->startup_timeout_ms = 30 * SP__MS_PER_S;
  pc->startup_batch_size = 8;
  pc->drain_timeout_ms = 10 * SP__MS_PER_S;
  pc->cancel_grace_ms = 2 * SP__MS_PER_S;
  pc->ping_interval_ms = 2 * SP__MS_PER_S;
  pc->ping_misses = 3;
  pc->crash_loop_max = 5;
  pc->crash_loop_window_ms = 30 * SP__MS_PER_S;
  pc->max_frame_bytes = 64 * SP__MIB;
  pc->max_shared_memory = 512 * SP__MIB;
  pc->thread_safety_checks = 0;
  pc->pipeline_depth = 8;
  pc->worker_start = SP__START_FORK;
  pc->session_ttl_ms = SP__MS_PER_H;
  pc->max_call_depth = SP__DEFAULT_MAX_CALL_DEPTH;
}

/* Fills one built-in pool; the caller frees the whole config on failure. */
static int default_pool(sp__pool_config_t *pc, const char *name, sp__profile_t profile,
                        sp_error_t *err) {
  sp__pool_config_defaults(pc, profile);
  pc->name = strdup(name);
  pc->adapter = strdup(SP__DEFAULT_ADAPTER);
  return pc->name == NULL || pc->adapter == NULL ? nomem(err) : 0;
}

int sp__config_default(sp__config_t *cfg, sp_error_t *err) {
  int rc = 0;
  sp__error_clear(err);
  if (cfg == NULL) return sp__error_set(err, SP_EINVAL, "sp__config_default: cfg is required");
  memset(cfg, 0, sizeof(*cfg));
  cfg->origin = strdup("<built-in default>");
  cfg->pools = calloc(2, sizeof(*cfg->pools));
  if (cfg->origin == NULL || cfg->pools == NULL) {
    rc = nomem(err);
    goto cleanup;
  }
  cfg->pool_count = 2;
  rc = sp__config_current_dir(&cfg->base_dir, err);
  if (rc != 0) goto cleanup;
  rc = default_pool(&cfg->pools[0], "hpc_pool", SP__PROFILE_THREAD, err);
  if (rc != 0) goto cleanup;
  cfg->pools[0].pool_size = 2;
  cfg->pools[0].threads_per_worker = 4;
  rc = default_pool(&cfg->pools[1], "default", SP__PROFILE_PROCESS, err);
  if (rc != 0) goto cleanup;
  cfg->pools[1].pool_size = 2;
cleanup:
  if (rc != 0) sp__config_free(cfg);
  return rc;
}

static void free_strings(char **items, size_t count) {
  if (items == NULL) return;
  for (size_t i = 0; i < count; i++) free(items[i]);
  free(items);
}

void sp__config_free(sp__config_t *cfg) {
  if (cfg == NULL) return;
  for (size_t i = 0; cfg->pools != NULL && i < cfg->pool_count; i++) {
    sp__pool_config_t *pc = &cfg->pools[i];
    free(pc->name);
    free(pc->adapter);
    free(pc->profile_reason);
    free_strings(pc->adapter_args, pc->adapter_args_count);
    free_strings(pc->env_keys, pc->env_count);
    free_strings(pc->env_values, pc->env_count);
    free_strings(pc->python_path, pc->python_path_count);
    free(pc->remote);
    free(pc->remote_token);
    free(pc->remote_user);
    free(pc->remote_password);
    free(pc->remote_creds);
    free(pc->remote_ca);
    free(pc->remote_cert);
    free(pc->remote_key);
  }
  free(cfg->pools);
  free(cfg->origin);
  free(cfg->base_dir);
  memset(cfg, 0, sizeof(*cfg));
}

const sp__pool_config_t *sp__config_find(const sp__config_t *cfg, const char *name) {
  if (cfg == NULL || name == NULL) return NULL;
  for (size_t i = 0; i < cfg->pool_count; i++) {
    if (cfg->pools[i].name != NULL && strcmp(cfg->pools[i].name, name) == 0) return &cfg->pools[i];
  }
  return NULL;
}

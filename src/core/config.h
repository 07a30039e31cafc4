/*
 * config.h - pool configuration: the YAML file format, the built-in default and
 * the validated in-memory form the runtime starts from.
 */
#ifndef SP_CORE_CONFIG_H
#define SP_CORE_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "snakepit.h"

/** AUTO lives only between loading and starting: the runtime resolves it to one of
 * the others (profile.c) before the pool starts. */
typedef enum { SP__PROFILE_PROCESS = 0, SP__PROFILE_THREAD = 1, SP__PROFILE_AUTO = 2 } sp__profile_t;

/** How workers start: forked from the pool's fork server, or each exec'd afresh. */
typedef enum { SP__START_FORK = 0, SP__START_EXEC = 1 } sp__worker_start_t;

/** Whether the fork server builds the adapter once for every worker (preload). */
typedef enum {
  SP__PRELOAD_OFF = 0, /* each worker builds its own adapter after the fork */
  SP__PRELOAD_ON = 1,  /* asked for: an adapter that cannot be preloaded is a startup error */
  SP__PRELOAD_AUTO = 2 /* tried: an adapter that cannot be preloaded falls back, with a warning */
} sp__preload_t;

/** Showcase adapter used by the built-in default pools and when `adapter` is absent. */
#define SP__DEFAULT_ADAPTER "snakepit_bridge.adapters.threaded_showcase.ThreadedShowcaseAdapter"

/** One `pools:` entry. Every string is owned by the config (freed by sp__config_free). */
typedef struct sp__pool_config_s {
  char *name;                  /* required; [A-Za-z0-9_.-]{1,64}, unique */
  sp__profile_t profile;       /* worker_profile: process | thread | auto (default process) */
  int profile_auto;            /* worker_profile: auto; profile holds what was chosen */
  char *profile_reason;        /* auto: why it chose profile (one sentence); owned */
  int pool_size;               /* default 2; 1..256; with a range, its maximum (positions) */
  int min_workers;             /* = pool_size for a fixed pool; a range "MIN..MAX" or
                                  min_workers/max_workers scales between the two */
  int64_t scale_up_wait_ms;    /* grow when a call waited this long for a worker; 50ms */
  int64_t scale_down_idle_ms;  /* shrink by a worker idle this long; default 60s */
  int threads_per_worker;      /* default 1 (process; must be 1) / 4 (thread); 1..1024 */
  char *adapter;               /* module.Class; default SP__DEFAULT_ADAPTER */
  char **adapter_args;         /* list of strings passed to the worker; may be empty */
  size_t adapter_args_count;
  char **env_keys;             /* adapter_env mapping, parallel arrays */
  char **env_values;
  size_t env_count;
  char **python_path;          /* list; relative entries resolved against the config's folder */
  size_t python_path_count;
  int64_t worker_ttl_ms;       /* 0 = never; "3600s", "30m", "2h", "500ms" or integer seconds */
  int64_t worker_max_requests; /* 0 = unlimited; 0..1e12 */
  int64_t worker_max_rss_mb;   /* 0 = unlimited; 0..1048576 */
  double recycle_jitter;       /* fraction 0..1, default 0.1 */
  int64_t min_lifetime_ms;     /* default 1s; duration */
  int64_t timeout_ms;          /* default 30s; 1ms..24h; duration */
  int64_t queue_timeout_ms;    /* default 5s; 0..24h; duration */
  int max_queue;               /* default 1000; 0..1000000 (0: reject when all slots busy) */
  int64_t startup_timeout_ms;  /* default 30s; 100ms..10m */
  int startup_batch_size;      /* default 8; 1..256 */
  int64_t drain_timeout_ms;    /* default 10s; 0..1h */
  int64_t cancel_grace_ms;     /* default 2s; 0..1h */
  int64_t ping_interval_ms;    /* default 2s; 0 disables; 50ms..1h */
  int ping_misses;             /* default 3; 1..100 */
  int crash_loop_max;          /* crashes within crash_loop_window that mark the pool degraded; default 5; 1..1000 */
  int64_t crash_loop_window_ms;/* default 30s */
  int64_t max_frame_bytes;     /* default 64 MiB; 4 KiB..1 GiB; accepts "64MiB", "512KiB", integers */
  int64_t max_shared_memory;   /* default 512 MiB; 1 MiB..64 GiB: each region for arrays (the
                                  pool's input memory, each worker's output memory) */
  int thread_safety_checks;    /* bool, default false */
  int pipeline_depth;          /* calls a busy worker may hold beyond its threads when every
                                  worker is busy; default 2; 0..64 */
  sp__worker_start_t worker_start; /* worker_start: fork | exec (default fork) */
  sp__preload_t preload;           /* preload: false | true | auto (default false); needs fork */
  int64_t session_ttl_ms;      /* a session idle this long ends; default 1h; 100ms..30d */
  int max_call_depth;          /* longest chain of tools calling tools from this pool; default 8; 1..64 */
  /* A remote pool (served by nodes over NATS, src/cluster/remote.c) sets remote and
   * only name, timeout and the remote_* keys; all NULL for a local pool. */
  char *remote;          /* remote: nats://HOST:PORT */
  char *remote_token;    /* remote_token, remote_user + remote_password: NATS auth */
  char *remote_user;
  char *remote_password;
  char *remote_creds;    /* remote_creds: credentials file; relative to the config's folder */
  char *remote_ca;       /* remote_ca: CA file for TLS; relative to the config's folder */
  char *remote_cert;     /* remote_cert + remote_key: client certificate and key (mutual TLS) */
  char *remote_key;
} sp__pool_config_t;

/* A chain of tools calling tools (A -> B -> ...) longer than this fails with
 * SP_EDEPTH: deep enough for real pipelines, short enough that a tool calling
 * itself by mistake fails fast instead of holding a slot per level. */
#define SP__DEFAULT_MAX_CALL_DEPTH 8

/** A whole configuration. */
typedef struct sp__config_s {
  sp__pool_config_t *pools;
  size_t pool_count;
  char *origin;   /* file path or caller-given origin, for messages; owned */
  char *base_dir; /* folder of the config file (absolute), or the cwd for text/default; owned */
} sp__config_t;

/** Fills every field of one pool with its default (strings NULL, adapter default). */
void sp__pool_config_defaults(sp__pool_config_t *pc, sp__profile_t profile);

/**
 * Parses and validates a YAML file. On error returns SP_ECONFIG (or SP_ENOMEM) and
 * err->message reads "FILE:LINE: key 'KEY': what is wrong" (a missing file names
 * the file and the errno text). On success the caller owns *cfg: sp__config_free.
 */
int sp__config_load_file(sp__config_t *cfg, const char *path, sp_error_t *err);

/** As sp__config_load_file for YAML text; origin replaces FILE in messages. */
int sp__config_load_string(sp__config_t *cfg, const char *yaml, size_t len, const char *origin,
                           sp_error_t *err);

/** The built-in default: hpc_pool (thread, 2 x 4) and default (process, 2 x 1). */
int sp__config_default(sp__config_t *cfg, sp_error_t *err);

/** Releases everything the config owns and zeroes it. Safe on a zeroed config. */
void sp__config_free(sp__config_t *cfg);

/** Finds a pool by name, or NULL. */
const sp__pool_config_t *sp__config_find(const sp__config_t *cfg, const char *name);

/* config_io.c: what the loader reads from the system. */

/** Configs larger than this are refused, as files and as text (a config is a few KiB). */
#define SP__CONFIG_MAX_BYTES (1024 * 1024)

/** The current directory (a fresh string in *out). 0, or SP_ENOMEM / SP_EIO in err. */
int sp__config_current_dir(char **out, sp_error_t *err);
/** The absolute folder of a file path (a fresh string in *out). 0, or an error in err. */
int sp__config_folder_of(const char *path, char **out, sp_error_t *err);
/** A whole config file, NUL-terminated (*out is the caller's), at most 1 MiB. 0 or an error. */
int sp__config_read_file(const char *path, char **out, size_t *out_len, sp_error_t *err);

#endif /* SP_CORE_CONFIG_H */

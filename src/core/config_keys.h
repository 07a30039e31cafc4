/*
 * config_keys.h - every key a pool entry of a pools file accepts: its name,
 * kind, field and bounds (config_keys.c), indexed by KEY_*. config.c reads
 * entries against it.
 */
#ifndef SP_CORE_CONFIG_KEYS_H
#define SP_CORE_CONFIG_KEYS_H

#include "config_values.h"

/* Workers of one pool, its hard bound (pool_size, max_workers). */
#define SP__MAX_WORKERS 256

/* Indexes into sp__pool_keys; the few the loader needs by name after reading an entry. */
enum {
  KEY_NAME,
  KEY_WORKER_PROFILE,
  KEY_POOL_SIZE,
  KEY_THREADS_PER_WORKER,
  KEY_ADAPTER,
  KEY_ADAPTER_ARGS,
  KEY_ADAPTER_ENV,
  KEY_PYTHON_PATH,
  KEY_WORKER_TTL,
  KEY_WORKER_MAX_REQUESTS,
  KEY_WORKER_MAX_RSS_MB,
  KEY_RECYCLE_JITTER,
  KEY_MIN_LIFETIME,
  KEY_TIMEOUT,
  KEY_QUEUE_TIMEOUT,
  KEY_MAX_QUEUE,
  KEY_STARTUP_TIMEOUT,
  KEY_STARTUP_BATCH_SIZE,
  KEY_DRAIN_TIMEOUT,
  KEY_CANCEL_GRACE,
  KEY_PING_INTERVAL,
  KEY_PING_MISSES,
  KEY_CRASH_LOOP_MAX,
  KEY_CRASH_LOOP_WINDOW,
  KEY_MAX_FRAME_BYTES,
  KEY_THREAD_SAFETY_CHECKS,
  KEY_PIPELINE_DEPTH,
  KEY_WORKER_START,
  KEY_MAX_SHARED_MEMORY,
  KEY_PRELOAD,
  KEY_MIN_WORKERS,
  KEY_MAX_WORKERS,
  KEY_SCALE_UP_WAIT,
  KEY_SCALE_DOWN_IDLE,
  KEY_SESSION_TTL,
  KEY_MAX_CALL_DEPTH,
  KEY_REMOTE,
  KEY_REMOTE_TOKEN,
  KEY_REMOTE_USER,
  KEY_REMOTE_PASSWORD,
  KEY_REMOTE_CREDS,
  KEY_REMOTE_CA,
  KEY_REMOTE_CERT,
  KEY_REMOTE_KEY,
  KEY_COUNT
};

/** Every key a pool entry accepts, in the order they are listed in messages. */
extern const sp__key_spec_t sp__pool_keys[KEY_COUNT];

#endif /* SP_CORE_CONFIG_KEYS_H */

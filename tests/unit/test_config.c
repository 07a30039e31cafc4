/*
 * test_config.c - unit tests of the pools.yaml loader (src/core/config.c): values,
 * defaults, units, bounds, and the exact FILE:LINE: key 'KEY' of every error.
 *
 * Most tests feed YAML text through sp__config_load_string. File tests write into
 * a fresh mkdtemp folder, and the checked-in configs are found through
 * $SP_TEST_CONFIGS (set by CMake), $SP_SOURCE_DIR, or by looking for the source tree
 * from the current directory, so the binary runs from anywhere.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "errors.h"

#define ORIGIN "pools.yaml"

static char temp_dir[PATH_MAX];
static char source_dir[PATH_MAX];

/* Loads text that must parse; fails the test with the loader's message otherwise. */
static void load_ok(sp__config_t *cfg, const char *yaml) {
  sp_error_t err;
  int rc = sp__config_load_string(cfg, yaml, strlen(yaml), ORIGIN, &err);
  if (rc != 0) {
    print_error("unexpected error %d: %s\nfor:\n%s\n", rc, err.message, yaml);
    fail();
  }
}

/*
 * Loads text that must fail with SP_ECONFIG, a message starting "pools.yaml:LINE: "
 * and containing each of the given fragments (NULL-terminated list).
 */
static void expect_error(const char *yaml, int line, ...) {
  sp__config_t cfg;
  sp_error_t err;
  char prefix[64];
  const char *fragment = NULL;
  va_list ap;
  int rc = sp__config_load_string(&cfg, yaml, strlen(yaml), ORIGIN, &err);
  snprintf(prefix, sizeof(prefix), ORIGIN ":%d: ", line);
  if (rc != SP_ECONFIG || strncmp(err.message, prefix, strlen(prefix)) != 0) {
    print_error("expected SP_ECONFIG at \"%s\", got %d: \"%s\"\nfor:\n%s\n", prefix, rc,
                err.message, yaml);
    fail();
  }
  va_start(ap, line);
  while ((fragment = va_arg(ap, const char *)) != NULL) {
    if (strstr(err.message, fragment) == NULL) {
      print_error("message \"%s\" lacks \"%s\"\n", err.message, fragment);
      va_end(ap);
      fail();
    }
  }
  va_end(ap);
  assert_int_equal(err.code, SP_ECONFIG);
  /* A failed load leaves nothing behind, so callers need no cleanup. */
  assert_null(cfg.pools);
  assert_int_equal(cfg.pool_count, 0);
  assert_null(cfg.origin);
  sp_error_free(&err);
}

/* One pool "p" with a single extra "key: value" line (line 3 of the text). */
static void pool_with(char *buf, size_t cap, const char *profile, const char *key,
                      const char *value) {
  snprintf(buf, cap, "pools:\n  - name: p\n    %s: %s\n    worker_profile: %s\n", key, value,
           profile);
}

static void write_file(const char *path, const char *text) {
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  assert_int_equal(fwrite(text, 1, strlen(text), f), strlen(text));
  assert_int_equal(fclose(f), 0);
}

/* dir + "/" + name, without doubling the slash when dir is "/". */
static void join_path(char *buf, size_t cap, const char *dir, const char *name) {
  size_t n = strlen(dir);
  assert_true(snprintf(buf, cap, "%s%s%s", dir, n > 0 && dir[n - 1] == '/' ? "" : "/", name) <
              (int)cap);
}

static void temp_path(char *buf, size_t cap, const char *name) {
  assert_true(snprintf(buf, cap, "%s/%s", temp_dir, name) < (int)cap);
}

static void config_path(char *buf, size_t cap, const char *rel) {
  if (source_dir[0] == '\0') skip();
  assert_true(snprintf(buf, cap, "%s/%s", source_dir, rel) < (int)cap);
}

static void test_full_example(void **state) {
  static const char *const yaml =
      "pools:\n"
      "  - name: hpc_pool\n"
      "    worker_profile: thread        # or process\n"
      "    pool_size: 4\n"
      "    threads_per_worker: 16\n"
      "    adapter: snakepit_bridge.adapters.threaded_showcase.ThreadedShowcaseAdapter\n"
      "    adapter_args: [\"--x\", \"1\"]\n"
      "    adapter_env: { OPENBLAS_NUM_THREADS: \"1\" }\n"
      "    python_path: [adapters, /abs/path]\n"
      "    worker_ttl: 3600s\n"
      "    worker_max_requests: 1000\n"
      "    timeout: 30s\n"
      "    queue_timeout: 5s\n"
      "    max_queue: 1000\n"
      "    worker_max_rss_mb: 2048\n"
      "    recycle_jitter: 0.25\n"
      "    min_lifetime: 2s\n"
      "    startup_timeout: 1m\n"
      "    startup_batch_size: 2\n"
      "    drain_timeout: 15s\n"
      "    cancel_grace: 500ms\n"
      "    ping_interval: 1.5s\n"
      "    ping_misses: 5\n"
      "    crash_loop_max: 7\n"
      "    crash_loop_window: 2m\n"
      "    max_frame_bytes: 128MiB\n"
      "    thread_safety_checks: true\n"
      "  - name: default\n"
      "    adapter: tests.adapters.echo.EchoAdapter\n";
  sp__config_t cfg;
  char cwd[PATH_MAX];
  char expected[PATH_MAX + 32];
  const sp__pool_config_t *p = NULL;
  (void)state;
  load_ok(&cfg, yaml);
  assert_non_null(getcwd(cwd, sizeof(cwd)));
  assert_string_equal(cfg.origin, ORIGIN);
  assert_string_equal(cfg.base_dir, cwd);
  assert_int_equal(cfg.pool_count, 2);
  p = &cfg.pools[0];
  assert_string_equal(p->name, "hpc_pool");
  assert_int_equal(p->profile, SP__PROFILE_THREAD);
  assert_int_equal(p->pool_size, 4);
  assert_int_equal(p->threads_per_worker, 16);
  assert_string_equal(p->adapter, SP__DEFAULT_ADAPTER);
  assert_int_equal(p->adapter_args_count, 2);
  assert_string_equal(p->adapter_args[0], "--x");
  assert_string_equal(p->adapter_args[1], "1");
  assert_int_equal(p->env_count, 1);
  assert_string_equal(p->env_keys[0], "OPENBLAS_NUM_THREADS");
  assert_string_equal(p->env_values[0], "1");
  assert_int_equal(p->python_path_count, 2);
  join_path(expected, sizeof(expected), cwd, "adapters");
  assert_string_equal(p->python_path[0], expected);
  assert_string_equal(p->python_path[1], "/abs/path");
  assert_int_equal(p->worker_ttl_ms, 3600000);
  assert_int_equal(p->worker_max_requests, 1000);
  assert_int_equal(p->timeout_ms, 30000);
  assert_int_equal(p->queue_timeout_ms, 5000);
  assert_int_equal(p->max_queue, 1000);
  assert_int_equal(p->worker_max_rss_mb, 2048);
  assert_true(p->recycle_jitter > 0.2499 && p->recycle_jitter < 0.2501);
  assert_int_equal(p->min_lifetime_ms, 2000);
  assert_int_equal(p->startup_timeout_ms, 60000);
  assert_int_equal(p->startup_batch_size, 2);
  assert_int_equal(p->drain_timeout_ms, 15000);
  assert_int_equal(p->cancel_grace_ms, 500);
  assert_int_equal(p->ping_interval_ms, 1500);
  assert_int_equal(p->ping_misses, 5);
  assert_int_equal(p->crash_loop_max, 7);
  assert_int_equal(p->crash_loop_window_ms, 120000);
  assert_int_equal(p->max_frame_bytes, 128 * 1024 * 1024);
  assert_int_equal(p->thread_safety_checks, 1);
  p = &cfg.pools[1];
  assert_string_equal(p->name, "default");
  assert_int_equal(p->profile, SP__PROFILE_PROCESS);
  assert_int_equal(p->threads_per_worker, 1);
  assert_string_equal(p->adapter, "tests.adapters.echo.EchoAdapter");
  assert_ptr_equal(sp__config_find(&cfg, "default"), p);
  assert_ptr_equal(sp__config_find(&cfg, "hpc_pool"), &cfg.pools[0]);
  assert_null(sp__config_find(&cfg, "nope"));
  assert_null(sp__config_find(&cfg, NULL));
  sp__config_free(&cfg);
  assert_null(cfg.pools);
}

static void assert_default_values(const sp__pool_config_t *p) {
  assert_int_equal(p->pool_size, 2);
  assert_string_equal(p->adapter, SP__DEFAULT_ADAPTER);
  assert_int_equal(p->adapter_args_count, 0);
  assert_int_equal(p->env_count, 0);
  assert_int_equal(p->python_path_count, 0);
  assert_int_equal(p->worker_ttl_ms, 0);
  assert_int_equal(p->worker_max_requests, 0);
  assert_int_equal(p->worker_max_rss_mb, 0);
  assert_true(p->recycle_jitter > 0.0999 && p->recycle_jitter < 0.1001);
  assert_int_equal(p->min_lifetime_ms, 1000);
  assert_int_equal(p->timeout_ms, 30000);
  assert_int_equal(p->queue_timeout_ms, 5000);
  assert_int_equal(p->max_queue, 1000);
  assert_int_equal(p->startup_timeout_ms, 30000);
  assert_int_equal(p->startup_batch_size, 8);
  assert_int_equal(p->drain_timeout_ms, 10000);
  assert_int_equal(p->cancel_grace_ms, 2000);
  assert_int_equal(p->ping_interval_ms, 2000);
  assert_int_equal(p->ping_misses, 3);
  assert_int_equal(p->crash_loop_max, 5);
  assert_int_equal(p->crash_loop_window_ms, 30000);
  assert_int_equal(p->max_frame_bytes, 64 * 1024 * 1024);
  assert_int_equal(p->thread_safety_checks, 0);
}

static void test_defaults(void **state) {
  sp__config_t cfg;
  sp__pool_config_t pc;
  (void)state;
  /* threads_per_worker follows the profile even when the profile comes last. */
  load_ok(&cfg, "pools:\n  - name: a\n  - name: b\n    worker_profile: thread\n");
  assert_int_equal(cfg.pool_count, 2);
  assert_default_values(&cfg.pools[0]);
  assert_default_values(&cfg.pools[1]);
  assert_int_equal(cfg.pools[0].profile, SP__PROFILE_PROCESS);
  assert_int_equal(cfg.pools[0].threads_per_worker, 1);
  assert_int_equal(cfg.pools[1].profile, SP__PROFILE_THREAD);
  assert_int_equal(cfg.pools[1].threads_per_worker, 4);
  sp__config_free(&cfg);

  /* Empty values of list keys mean "none", not an error. */
  load_ok(&cfg, "pools:\n  - name: a\n    adapter_args:\n    adapter_env:\n    python_path: []\n");
  assert_int_equal(cfg.pools[0].adapter_args_count, 0);
  assert_int_equal(cfg.pools[0].env_count, 0);
  assert_int_equal(cfg.pools[0].python_path_count, 0);
  sp__config_free(&cfg);

  sp__pool_config_defaults(&pc, SP__PROFILE_THREAD);
  assert_int_equal(pc.threads_per_worker, 4);
  assert_null(pc.name);
  assert_null(pc.adapter);
  sp__pool_config_defaults(&pc, SP__PROFILE_PROCESS);
  assert_int_equal(pc.threads_per_worker, 1);
  assert_int_equal(pc.max_frame_bytes, 64 * 1024 * 1024);
}

static void test_flow_style_and_values(void **state) {
  sp__config_t cfg;
  (void)state;
  load_ok(&cfg,
          "pools: [{name: a.b-c_1, adapter_args: [1, 2.50, true, '', \"x y\"],\n"
          "         adapter_env: {N: 1, F: 1.50, B: yes, E: , Q: 'a: b'},\n"
          "         thread_safety_checks: no, recycle_jitter: 1, worker_profile: process,\n"
          "         threads_per_worker: 1}]\n");
  assert_string_equal(cfg.pools[0].name, "a.b-c_1");
  assert_int_equal(cfg.pools[0].adapter_args_count, 5);
  assert_string_equal(cfg.pools[0].adapter_args[0], "1");
  assert_string_equal(cfg.pools[0].adapter_args[1], "2.50");
  assert_string_equal(cfg.pools[0].adapter_args[2], "true");
  assert_string_equal(cfg.pools[0].adapter_args[3], "");
  assert_string_equal(cfg.pools[0].adapter_args[4], "x y");
  assert_int_equal(cfg.pools[0].env_count, 5);
  assert_string_equal(cfg.pools[0].env_values[0], "1");
  assert_string_equal(cfg.pools[0].env_values[1], "1.50");
  assert_string_equal(cfg.pools[0].env_values[2], "yes");
  assert_string_equal(cfg.pools[0].env_keys[3], "E");
  assert_string_equal(cfg.pools[0].env_values[3], "");
  assert_string_equal(cfg.pools[0].env_values[4], "a: b");
  assert_int_equal(cfg.pools[0].thread_safety_checks, 0);
  assert_true(cfg.pools[0].recycle_jitter == 1.0);
  sp__config_free(&cfg);

  static const struct {
    const char *text;
    int value;
  } bools[] = {{"true", 1},  {"True", 1},  {"yes", 1}, {"on", 1},
               {"false", 0}, {"FALSE", 0}, {"no", 0},  {"off", 0}};
  for (size_t i = 0; i < sizeof(bools) / sizeof(bools[0]); i++) {
    char yaml[256];
    pool_with(yaml, sizeof(yaml), "thread", "thread_safety_checks", bools[i].text);
    load_ok(&cfg, yaml);
    assert_int_equal(cfg.pools[0].thread_safety_checks, bools[i].value);
    sp__config_free(&cfg);
  }
  expect_error("pools:\n  - name: p\n    thread_safety_checks: 1\n", 3,
               "key 'thread_safety_checks'", "must be true or false", "got \"1\"", NULL);
  expect_error("pools:\n  - name: p\n    recycle_jitter: 1.5\n", 3, "key 'recycle_jitter'",
               "between 0 and 1", NULL);
  expect_error("pools:\n  - name: p\n    recycle_jitter: -0.1\n", 3, "key 'recycle_jitter'", NULL);
  expect_error("pools:\n  - name: p\n    recycle_jitter: 1e-1\n", 3, "key 'recycle_jitter'", NULL);
}

static void test_durations(void **state) {
  static const struct {
    const char *text;
    int64_t ms;
  } good[] = {
      {"500ms", 500}, {"3600s", 3600000}, {"30m", 1800000},  {"2h", 7200000},
      {"1.5s", 1500}, {"45", 45000},      {"0.25h", 900000}, {"1.5m", 90000},
      {"2 s", 2000},  {"1.001s", 1001},   {"24h", 86400000}, {"\"10s\"", 10000},
      {"10S", 10000}, {".5s", 500},       {"1ms", 1},        {"0.5", 500},
  };
  static const char *const bad[] = {
      "abc",
      "5x",
      "-1s",
      "0.5ms",
      "1.0001s",
      "",
      "ms",
      "1..5s",
      "5 5s",
      "1e3",
      "99999999999999999999h",
      "1s5",
      "+5s",
      "[1s]",
      "{a: 1}",
      "10 d",
  };
  sp__config_t cfg;
  char yaml[256];
  (void)state;
  for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
    pool_with(yaml, sizeof(yaml), "process", "timeout", good[i].text);
    load_ok(&cfg, yaml);
    if (cfg.pools[0].timeout_ms != good[i].ms) {
      print_error("%s: got %lld ms\n", good[i].text, (long long)cfg.pools[0].timeout_ms);
      fail();
    }
    sp__config_free(&cfg);
  }
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    pool_with(yaml, sizeof(yaml), "process", "timeout", bad[i]);
    expect_error(yaml, 3, "key 'timeout'", "must be a duration between 1ms and 24h", "got ", NULL);
  }
  expect_error("pools:\n  - name: p\n    timeout: zero\n", 3,
               "key 'timeout': must be a duration between 1ms and 24h", "got \"zero\"", NULL);
  /* Leaving the value out is reported on the key's own line. */
  expect_error("pools:\n  - name: p\n    timeout:\n    pool_size: 1\n", 3, "key 'timeout'",
               "got an empty value", NULL);
}

static void test_sizes(void **state) {
  static const struct {
    const char *text;
    int64_t bytes;
  } good[] = {
      {"4096", 4096},
      {"512KiB", 512 * 1024},
      {"64MiB", 64 * 1024 * 1024},
      {"1GiB", 1073741824},
      {"8KB", 8000},
      {"5MB", 5000000},
      {"1GB", 1000000000},
      {"1.5MiB", 3 * 512 * 1024},
      {"4 KiB", 4096},
      {"65536B", 65536},
      {"2mib", 2 * 1024 * 1024},
  };
  static const char *const bad[] = {"64XB", "-1",     "1.5", "2GiB", "1KiB",        "4095",
                                    "MiB",  "1.5KB5", "0",   "yes",  "1.0000001KiB"};
  sp__config_t cfg;
  char yaml[256];
  (void)state;
  for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
    pool_with(yaml, sizeof(yaml), "process", "max_frame_bytes", good[i].text);
    load_ok(&cfg, yaml);
    if (cfg.pools[0].max_frame_bytes != good[i].bytes) {
      print_error("%s: got %lld bytes\n", good[i].text, (long long)cfg.pools[0].max_frame_bytes);
      fail();
    }
    sp__config_free(&cfg);
  }
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    pool_with(yaml, sizeof(yaml), "process", "max_frame_bytes", bad[i]);
    expect_error(yaml, 3, "key 'max_frame_bytes'", "must be a size between 4KiB and 1GiB", NULL);
  }
}

/* For each bounded key: the bounds themselves load, one step outside does not. */
static void test_bounds(void **state) {
  static const struct {
    const char *key;
    const char *low_ok, *high_ok, *too_low, *too_high;
    const char *phrase;
  } cases[] = {
      {"pool_size", "1", "256", "0", "257", "must be an integer between 1 and 256"},
      {"threads_per_worker", "1", "1024", "0", "1025", "must be an integer between 1 and 1024"},
      {"worker_ttl", "0", "8760h", "-1", "8761h", "between 0 and 8760h"},
      {"worker_max_requests", "0", "1000000000000", "-1", "1000000000001",
       "between 0 and 1000000000000"},
      {"worker_max_rss_mb", "0", "1048576", "-1", "1048577", "between 0 and 1048576"},
      {"recycle_jitter", "0", "1", "-0.01", "1.01", "between 0 and 1"},
      {"min_lifetime", "0", "24h", "-1s", "86401s", "between 0 and 24h"},
      {"timeout", "1ms", "24h", "0", "86400001ms", "between 1ms and 24h"},
      {"queue_timeout", "0", "24h", "-1ms", "1441m", "between 0 and 24h"},
      {"max_queue", "0", "1000000", "-1", "1000001", "between 0 and 1000000"},
      {"startup_timeout", "100ms", "10m", "99ms", "601s", "between 100ms and 10m"},
      {"startup_batch_size", "1", "256", "0", "257", "between 1 and 256"},
      {"drain_timeout", "0", "1h", "-1", "3601s", "between 0 and 1h"},
      {"cancel_grace", "0", "1h", "-1", "3600001ms", "between 0 and 1h"},
      {"ping_interval", "50ms", "1h", "49ms", "61m",
       "0 (disabled) or a duration between 50ms and 1h"},
      {"ping_misses", "1", "100", "0", "101", "between 1 and 100"},
      {"crash_loop_max", "1", "1000", "0", "1001", "between 1 and 1000"},
      {"crash_loop_window", "1s", "24h", "999ms", "25h", "between 1s and 24h"},
      {"max_frame_bytes", "4KiB", "1GiB", "4095", "1073741825", "between 4KiB and 1GiB"},
  };
  sp__config_t cfg;
  char yaml[256];
  char key[64];
  (void)state;
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    pool_with(yaml, sizeof(yaml), "thread", cases[i].key, cases[i].low_ok);
    load_ok(&cfg, yaml);
    sp__config_free(&cfg);
    pool_with(yaml, sizeof(yaml), "thread", cases[i].key, cases[i].high_ok);
    load_ok(&cfg, yaml);
    sp__config_free(&cfg);
    snprintf(key, sizeof(key), "key '%s': ", cases[i].key);
    pool_with(yaml, sizeof(yaml), "thread", cases[i].key, cases[i].too_low);
    expect_error(yaml, 3, key, cases[i].phrase, cases[i].too_low, NULL);
    pool_with(yaml, sizeof(yaml), "thread", cases[i].key, cases[i].too_high);
    expect_error(yaml, 3, key, cases[i].phrase, cases[i].too_high, NULL);
  }
  /* ping_interval alone accepts 0 below its minimum: it turns pings off. */
  pool_with(yaml, sizeof(yaml), "thread", "ping_interval", "0");
  load_ok(&cfg, yaml);
  assert_int_equal(cfg.pools[0].ping_interval_ms, 0);
  sp__config_free(&cfg);
  expect_error("pools:\n  - name: p\n    pool_size: zero\n", 3,
               "key 'pool_size': must be an integer between 1 and 256, got \"zero\"", NULL);
  expect_error("pools:\n  - name: p\n    pool_size: 2.0\n", 3, "key 'pool_size'", NULL);
  expect_error("pools:\n  - name: p\n    pool_size: 99999999999999999999999\n", 3,
               "key 'pool_size'", NULL);
}

static void test_unknown_key(void **state) {
  (void)state;
  expect_error("pools:\n  - name: p\n    pool_sise: 4\n", 3, "unknown key 'pool_sise'",
               "did you mean 'pool_size'?", NULL);
  expect_error("pools:\n  - name: p\n    timeout_ms: 4\n", 3, "unknown key 'timeout_ms'",
               "'timeout'", NULL);
  expect_error("pools:\n  - name: p\n\n    zzz: 1\n", 4, "unknown key 'zzz'",
               "valid keys: name, worker_profile, pool_size, threads_per_worker", "max_frame_bytes",
               "thread_safety_checks", NULL);
  expect_error("pool:\n  - name: p\n", 1, "unknown key 'pool'", "did you mean 'pools'?", NULL);
  expect_error("pools:\n  - name: p\npool_size: 2\n", 3, "unknown key 'pool_size'",
               "belong inside an entry of the 'pools' list", NULL);
  /* Control characters never reach the message. */
  expect_error("pools:\n  - name: p\n    \"bad\\tkey\\n\": 1\n", 3, "unknown key 'bad?key?'", NULL);
}

static void test_duplicates(void **state) {
  (void)state;
  expect_error("pools:\n  - name: p\n    pool_size: 1\n    timeout: 1s\n    pool_size: 2\n", 5,
               "key 'pool_size': duplicate key (first set on line 3)", NULL);
  expect_error("pools:\n  - name: p\npools:\n  - name: q\n", 3,
               "key 'pools': duplicate key (first set on line 1)", NULL);
  expect_error("pools:\n  - name: twin\n  - name: other\n  - pool_size: 1\n    name: twin\n", 5,
               "key 'name': duplicate pool name \"twin\" (first defined on line 2)", NULL);
  expect_error("pools:\n  - name: p\n    adapter_env:\n      A: 1\n      A: 2\n", 5,
               "key 'adapter_env': variable 'A' is set twice", NULL);
}

static void test_wrong_types(void **state) {
  (void)state;
  expect_error("pools:\n  - name: p\n    pool_size: [1, 2]\n", 3, "key 'pool_size'", "got a list",
               NULL);
  expect_error("pools:\n  - name: p\n    timeout:\n      a: 1\n", 3, "key 'timeout'",
               "got a mapping", NULL);
  expect_error("pools:\n  - name: [p]\n", 2, "key 'name'", "got a list", NULL);
  expect_error("pools:\n  - name: p\n    adapter_args: --x\n", 3, "key 'adapter_args'",
               "must be a list of strings, got \"--x\"", NULL);
  expect_error("pools:\n  - name: p\n    adapter_args:\n      - a\n      - [b]\n", 5,
               "key 'adapter_args': item 2 must be a string, got a list", NULL);
  expect_error("pools:\n  - name: p\n    adapter_env: [A]\n", 3, "key 'adapter_env'",
               "must be a mapping of VARIABLE: value, got a list", NULL);
  expect_error("pools:\n  - name: p\n    adapter_env:\n      A: [1]\n", 4,
               "key 'adapter_env': the value of 'A' must be a string or number, got a list", NULL);
  expect_error("pools:\n  - name: p\n    adapter_env:\n      1A: x\n", 4, "key 'adapter_env'",
               "variable names must match", "got \"1A\"", NULL);
  expect_error("pools:\n  - name: p\n    python_path: {a: b}\n", 3, "key 'python_path'",
               "must be a list of folder paths, got a mapping", NULL);
  expect_error("pools:\n  - name: p\n    python_path: [a, '']\n", 3,
               "key 'python_path': item 2 must be a non-empty path", NULL);
  expect_error("pools: {name: p}\n", 1,
               "key 'pools': must be a list of pool entries, got a mapping", NULL);
  expect_error("pools:\n", 1, "key 'pools'", "got an empty value", NULL);
  expect_error("pools: []\n", 1, "key 'pools': must list at least one pool", NULL);
  expect_error("pools:\n  - name: p\n  - just a string\n", 3,
               "key 'pools': entry 2 must be a mapping of pool settings, got \"just a string\"",
               NULL);
  expect_error("- name: p\n", 1, "the top level must be a mapping with a 'pools' list, got a list",
               NULL);
  expect_error("hello\n", 1, "the top level must be a mapping", "got \"hello\"", NULL);
  expect_error("{}\n", 1, "key 'pools': missing (expected a list of pool entries)", NULL);
  expect_error("pools:\n  - name: p\n    [a]: 1\n", 3, "must be named by plain keys, got a list",
               NULL);
  expect_error("pools:\n  - name: p\n    adapter: NotDotted\n", 3, "key 'adapter'",
               "must be a Python class path", NULL);
  expect_error("pools:\n  - name: p\n    adapter: pkg..Cls\n", 3, "key 'adapter'", NULL);
  expect_error("pools:\n  - name: p\n    adapter: pkg.9Cls\n", 3, "key 'adapter'", NULL);
  expect_error("pools:\n  - name: \"a\\0b\"\n", 2, "key 'name'", "NUL", NULL);
}

static void test_missing_name(void **state) {
  (void)state;
  expect_error("pools:\n  - name: a\n\n  - pool_size: 2\n    worker_profile: thread\n", 4,
               "key 'name': missing in pool entry 2", NULL);
  expect_error("pools:\n  - {}\n", 2, "key 'name': missing in pool entry 1", NULL);
}

static void test_bad_names(void **state) {
  static const char *const bad[] = {
      "\"has space\"",
      "''",
      "a/b",
      "x:y",
      "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
      "é"};
  sp__config_t cfg;
  char yaml[256];
  (void)state;
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    snprintf(yaml, sizeof(yaml), "pools:\n  - pool_size: 1\n    name: %s\n", bad[i]);
    expect_error(yaml, 3, "key 'name': must be 1 to 64 characters from A-Z a-z 0-9 _ . -", NULL);
  }
  /* Exactly 64 characters is fine. */
  load_ok(&cfg,
          "pools:\n  - name: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n");
  assert_int_equal(strlen(cfg.pools[0].name), 64);
  sp__config_free(&cfg);
}

static void test_profiles(void **state) {
  sp__config_t cfg;
  (void)state;
  expect_error("pools:\n  - name: p\n    worker_profile: fork\n", 3,
               "key 'worker_profile': must be \"process\", \"thread\" or \"auto\", got \"fork\"",
               NULL);
  expect_error("pools:\n  - name: p\n    worker_profile: Thread\n", 3, "key 'worker_profile'",
               NULL);
  /* The rule is checked after the entry, whichever order the keys come in. */
  expect_error("pools:\n  - name: p\n    threads_per_worker: 4\n    worker_profile: process\n", 3,
               "key 'threads_per_worker': must be 1 when worker_profile is \"process\", got 4",
               NULL);
  expect_error("pools:\n  - name: p\n    threads_per_worker: 2\n", 3, "key 'threads_per_worker'",
               "got 2", NULL);
  load_ok(&cfg, "pools:\n  - name: p\n    threads_per_worker: 1\n");
  assert_int_equal(cfg.pools[0].threads_per_worker, 1);
  sp__config_free(&cfg);
  load_ok(&cfg, "pools:\n  - threads_per_worker: 8\n    name: p\n    worker_profile: thread\n");
  assert_int_equal(cfg.pools[0].threads_per_worker, 8);
  sp__config_free(&cfg);
  /* auto: decided at start; threads_per_worker 0 = the chosen profile's default. */
  load_ok(&cfg, "pools:\n  - name: p\n    worker_profile: auto\n");
  assert_int_equal(cfg.pools[0].profile, SP__PROFILE_AUTO);
  assert_int_equal(cfg.pools[0].threads_per_worker, 0);
  sp__config_free(&cfg);
}

static void test_sizes_and_preload(void **state) {
  sp__config_t cfg;
  (void)state;
  load_ok(&cfg, "pools:\n  - name: p\n    pool_size: 2..5\n");
  assert_int_equal(cfg.pools[0].min_workers, 2);
  assert_int_equal(cfg.pools[0].pool_size, 5);
  assert_int_equal(cfg.pools[0].scale_up_wait_ms, 50);
  assert_int_equal(cfg.pools[0].scale_down_idle_ms, 60000);
  sp__config_free(&cfg);
  load_ok(&cfg, "pools:\n  - name: p\n    pool_size: 3\n");
  assert_int_equal(cfg.pools[0].min_workers, 3);
  assert_int_equal(cfg.pools[0].pool_size, 3);
  sp__config_free(&cfg);
  load_ok(&cfg, "pools:\n  - name: p\n    min_workers: 1\n    max_workers: 6\n"
                "    scale_down_idle: 2s\n    preload: auto\n");
  assert_int_equal(cfg.pools[0].min_workers, 1);
  assert_int_equal(cfg.pools[0].pool_size, 6);
  assert_int_equal(cfg.pools[0].scale_down_idle_ms, 2000);
  assert_int_equal(cfg.pools[0].preload, SP__PRELOAD_AUTO);
  sp__config_free(&cfg);
  expect_error("pools:\n  - name: p\n    pool_size: 0..2\n", 3, "key 'pool_size'",
               "start at 1 worker", NULL);
  expect_error("pools:\n  - name: p\n    preload: yes please\n", 3, "key 'preload'",
               "true, false or \"auto\"", NULL);
  expect_error("pools:\n  - name: p\n    preload: on\n    worker_start: exec\n", 3,
               "key 'preload'", "worker_start is \"exec\" (line 4)", NULL);
}

static void test_syntax_errors(void **state) {
  (void)state;
  expect_error("pools:\n  - name: broken\n    pool_size: 2\n\tthreads_per_worker: 2\n", 4,
               "YAML syntax error: found a tab character that violates indentation", NULL);
  expect_error("pools:\n  - name: p\n    adapter_args: [a, b\n    timeout: 1s\n", 4,
               "YAML syntax error: did not find expected ',' or ']'",
               "while parsing a flow sequence on line 3", NULL);
  expect_error("pools:\n  - name: *nowhere\n", 2, "YAML syntax error: found undefined alias", NULL);
  expect_error("pools:\n  - name: p\n---\npools:\n  - name: q\n", 3,
               "only one YAML document is supported", NULL);
  /* An invalid UTF-8 byte is a reader error: libyaml knows the offset, we count the line. */
  expect_error("pools:\n  - name: p\n    adapter_args: [\"\xff\"]\n", 3,
               "YAML syntax error:", NULL);
}

/* Text of n opening brackets then n closing ones, after a valid start. */
static char *nested(size_t n, char open, char close) {
  const char *head = "pools:\n  - name: p\n    adapter_args: ";
  size_t h = strlen(head);
  char *t = malloc(h + 2 * n + 2);
  assert_non_null(t);
  memcpy(t, head, h);
  memset(t + h, open, n);
  memset(t + h + n, close, n);
  strcpy(t + h + 2 * n, "\n");
  return t;
}

static void test_nesting_and_size_bounds(void **state) {
  (void)state;
  /* Deep flow nesting is refused after bounded work, with its line. */
  char *deep = nested(20000, '[', ']');
  expect_error(deep, 3, "nested more than 64 levels deep", NULL);
  free(deep);
  deep = nested(20000, '{', '}');
  expect_error(deep, 3, "nested more than 64 levels deep", NULL);
  free(deep);
  /* Block nesting counts the same. */
  char block[8192] = "pools:\n  - name: p\n    env:\n";
  for (int i = 0; i < 70; i++) {
    size_t n = strlen(block);
    snprintf(block + n, sizeof(block) - n, "%*sk%d:\n", 6 + 2 * i, "", i);
  }
  expect_error(block, 65, "nested more than 64 levels deep", NULL);
  /* 64 levels are still read (and then judged on their content). */
  deep = nested(61, '[', ']');
  expect_error(deep, 3, "adapter_args", NULL);
  free(deep);
  /* Text past 1 MiB is refused before it is parsed. */
  size_t big = (1u << 20) + 1;
  char *text = malloc(big + 1);
  assert_non_null(text);
  memset(text, '#', big);
  text[big] = '\0';
  sp__config_t cfg;
  sp_error_t err;
  assert_int_equal(sp__config_load_string(&cfg, text, big, ORIGIN, &err), SP_ECONFIG);
  assert_non_null(strstr(err.message, "larger than 1024 KiB"));
  char path[PATH_MAX + 32];
  temp_path(path, sizeof(path), "big.yaml");
  write_file(path, text);
  sp_error_free(&err);
  assert_int_equal(sp__config_load_file(&cfg, path, &err), SP_ECONFIG);
  assert_non_null(strstr(err.message, "larger than 1024 KiB"));
  sp_error_free(&err);
  free(text);
}

static void test_missing_file(void **state) {
  sp__config_t cfg;
  sp_error_t err;
  char path[PATH_MAX + 32];
  char expected[2 * PATH_MAX];
  (void)state;
  temp_path(path, sizeof(path), "does-not-exist.yaml");
  assert_int_equal(sp__config_load_file(&cfg, path, &err), SP_ECONFIG);
  snprintf(expected, sizeof(expected), "cannot read config '%s': No such file or directory", path);
  assert_string_equal(err.message, expected);
  assert_null(cfg.pools);
  /* A folder opens but cannot be read. */
  sp_error_free(&err);
  assert_int_equal(sp__config_load_file(&cfg, temp_dir, &err), SP_ECONFIG);
  assert_non_null(strstr(err.message, "cannot read config '"));
  assert_non_null(strstr(err.message, "Is a directory"));
  sp_error_free(&err);
  assert_int_equal(sp__config_load_file(&cfg, NULL, &err), SP_EINVAL);
  sp_error_free(&err);
}

static void test_empty_file(void **state) {
  sp__config_t cfg;
  sp_error_t err;
  char path[PATH_MAX + 32];
  (void)state;
  temp_path(path, sizeof(path), "empty.yaml");
  write_file(path, "");
  assert_int_equal(sp__config_load_file(&cfg, path, &err), SP_ECONFIG);
  assert_non_null(strstr(err.message, path));
  assert_non_null(strstr(err.message, "config is empty"));
  assert_null(cfg.pools);
  write_file(path, "# only a comment\n\n");
  sp_error_free(&err);
  assert_int_equal(sp__config_load_file(&cfg, path, &err), SP_ECONFIG);
  assert_non_null(strstr(err.message, "config is empty"));
  sp_error_free(&err);
  assert_int_equal(sp__config_load_string(&cfg, "", 0, ORIGIN, &err), SP_ECONFIG);
  assert_string_equal(err.message, ORIGIN
                      ": config is empty (expected a top-level 'pools:' list with at least "
                      "one pool)");
  sp_error_free(&err);
  assert_int_equal(sp__config_load_string(&cfg, NULL, 0, NULL, &err), SP_ECONFIG);
  assert_non_null(strstr(err.message, "<string>: config is empty"));
  sp_error_free(&err);
  assert_int_equal(sp__config_load_string(&cfg, "---\n...\n", 8, ORIGIN, &err), SP_ECONFIG);
  assert_non_null(strstr(err.message, "config is empty"));
  sp_error_free(&err);
}

static void test_file_errors_name_the_file(void **state) {
  sp__config_t cfg;
  sp_error_t err;
  char path[PATH_MAX + 32];
  char expected[2 * PATH_MAX];
  (void)state;
  temp_path(path, sizeof(path), "bad.yaml");
  write_file(path, "pools:\n  - name: p\n\n    pool_size: zero\n");
  assert_int_equal(sp__config_load_file(&cfg, path, &err), SP_ECONFIG);
  snprintf(expected, sizeof(expected),
           "%s:4: key 'pool_size': must be an integer between 1 and 256, got \"zero\"", path);
  assert_string_equal(err.message, expected);
  assert_int_equal(err.category, SP_CAT_VALIDATION);
  sp_error_free(&err);
}

static void test_python_path_resolution(void **state) {
  sp__config_t cfg;
  sp_error_t err;
  char path[PATH_MAX + 32];
  char real_dir[PATH_MAX];
  char expected[2 * PATH_MAX];
  char cwd[PATH_MAX];
  (void)state;
  temp_path(path, sizeof(path), "paths.yaml");
  write_file(path,
             "pools:\n  - name: p\n    python_path: [adapters, ./lib/x, /abs/path, ., .//y, "
             "../up]\n");
  assert_non_null(realpath(temp_dir, real_dir));
  assert_int_equal(sp__config_load_file(&cfg, path, &err), 0);
  assert_string_equal(cfg.origin, path);
  assert_string_equal(cfg.base_dir, real_dir);
  assert_int_equal(cfg.pools[0].python_path_count, 6);
  snprintf(expected, sizeof(expected), "%s/adapters", real_dir);
  assert_string_equal(cfg.pools[0].python_path[0], expected);
  snprintf(expected, sizeof(expected), "%s/lib/x", real_dir);
  assert_string_equal(cfg.pools[0].python_path[1], expected);
  assert_string_equal(cfg.pools[0].python_path[2], "/abs/path");
  assert_string_equal(cfg.pools[0].python_path[3], real_dir);
  snprintf(expected, sizeof(expected), "%s/y", real_dir);
  assert_string_equal(cfg.pools[0].python_path[4], expected);
  snprintf(expected, sizeof(expected), "%s/../up", real_dir);
  assert_string_equal(cfg.pools[0].python_path[5], expected);
  sp__config_free(&cfg);

  /* A relative path to the file: base_dir is still absolute. */
  assert_non_null(getcwd(cwd, sizeof(cwd)));
  assert_int_equal(chdir(temp_dir), 0);
  assert_int_equal(sp__config_load_file(&cfg, "paths.yaml", &err), 0);
  assert_int_equal(chdir(cwd), 0);
  assert_string_equal(cfg.base_dir, real_dir);
  assert_string_equal(cfg.origin, "paths.yaml");
  sp__config_free(&cfg);

  /* Text has no folder of its own: the current directory stands in. */
  load_ok(&cfg, "pools:\n  - name: p\n    python_path: [adapters]\n");
  join_path(expected, sizeof(expected), cwd, "adapters");
  assert_string_equal(cfg.base_dir, cwd);
  assert_string_equal(cfg.pools[0].python_path[0], expected);
  sp__config_free(&cfg);
}

static void test_builtin_default(void **state) {
  sp__config_t cfg;
  sp_error_t err;
  char cwd[PATH_MAX];
  const sp__pool_config_t *hpc = NULL;
  const sp__pool_config_t *def = NULL;
  (void)state;
  assert_int_equal(sp__config_default(&cfg, &err), 0);
  assert_non_null(getcwd(cwd, sizeof(cwd)));
  assert_string_equal(cfg.origin, "<built-in default>");
  assert_string_equal(cfg.base_dir, cwd);
  assert_int_equal(cfg.pool_count, 2);
  hpc = sp__config_find(&cfg, "hpc_pool");
  def = sp__config_find(&cfg, "default");
  assert_non_null(hpc);
  assert_non_null(def);
  assert_int_equal(hpc->profile, SP__PROFILE_THREAD);
  assert_int_equal(hpc->pool_size, 2);
  assert_int_equal(hpc->threads_per_worker, 4);
  assert_string_equal(hpc->adapter, SP__DEFAULT_ADAPTER);
  assert_int_equal(def->profile, SP__PROFILE_PROCESS);
  assert_int_equal(def->pool_size, 2);
  assert_int_equal(def->threads_per_worker, 1);
  assert_string_equal(def->adapter, SP__DEFAULT_ADAPTER);
  assert_int_equal(def->timeout_ms, 30000);
  sp__config_free(&cfg);
}

static void test_free_is_safe(void **state) {
  sp__config_t cfg;
  (void)state;
  memset(&cfg, 0, sizeof(cfg));
  sp__config_free(&cfg);
  sp__config_free(&cfg);
  sp__config_free(NULL);
  /* A partly filled config, as an error path might leave it. */
  cfg.pools = calloc(3, sizeof(*cfg.pools));
  assert_non_null(cfg.pools);
  cfg.pool_count = 3;
  cfg.pools[1].name = strdup("half");
  cfg.pools[1].adapter_args = calloc(2, sizeof(char *));
  cfg.pools[1].adapter_args[0] = strdup("x");
  cfg.pools[1].adapter_args_count = 1;
  cfg.origin = strdup("o");
  sp__config_free(&cfg);
  assert_null(cfg.pools);
  assert_int_equal(cfg.pool_count, 0);
}

static void test_checked_in_configs(void **state) {
  sp__config_t cfg;
  sp_error_t err;
  char path[PATH_MAX + 64];
  char expected[2 * PATH_MAX];
  (void)state;
  config_path(path, sizeof(path), "examples/pools.yaml");
  if (sp__config_load_file(&cfg, path, &err) != 0) {
    print_error("%s\n", err.message);
    fail();
  }
  assert_int_equal(cfg.pool_count, 2);
  assert_int_equal(cfg.pools[0].profile, SP__PROFILE_THREAD);
  assert_string_equal(cfg.pools[0].name, "hpc_pool");
  assert_int_equal(cfg.pools[0].pool_size, 2);
  assert_int_equal(cfg.pools[0].threads_per_worker, 4);
  assert_string_equal(cfg.pools[1].name, "default");
  assert_int_equal(cfg.pools[1].profile, SP__PROFILE_PROCESS);
  assert_int_equal(cfg.pools[1].pool_size, 2);
  assert_int_equal(cfg.pools[1].threads_per_worker, 1);
  assert_default_values(&cfg.pools[1]);
  sp__config_free(&cfg);

  config_path(path, sizeof(path), "tests/configs/full.yaml");
  assert_int_equal(sp__config_load_file(&cfg, path, &err), 0);
  assert_int_equal(cfg.pools[0].threads_per_worker, 16);
  assert_int_equal(cfg.pools[0].max_frame_bytes, 128 * 1024 * 1024);
  assert_int_equal(cfg.pools[0].thread_safety_checks, 1);
  sp__config_free(&cfg);

  config_path(path, sizeof(path), "tests/configs/minimal.yaml");
  assert_int_equal(sp__config_load_file(&cfg, path, &err), 0);
  assert_default_values(&cfg.pools[0]);
  sp__config_free(&cfg);

  static const struct {
    const char *file;
    int line;
    const char *fragment;
  } bad[] = {
      {"bad_unknown_key.yaml", 5, "unknown key 'pool_sise' (did you mean 'pool_size'?)"},
      {"bad_syntax.yaml", 5, "YAML syntax error"},
      {"bad_duplicate_pool.yaml", 6,
       "key 'name': duplicate pool name \"twin\" (first defined on line 3)"},
  };
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    char rel[128];
    snprintf(rel, sizeof(rel), "tests/configs/%s", bad[i].file);
    config_path(path, sizeof(path), rel);
    assert_int_equal(sp__config_load_file(&cfg, path, &err), SP_ECONFIG);
    snprintf(expected, sizeof(expected), "%s:%d: ", path, bad[i].line);
    if (strncmp(err.message, expected, strlen(expected)) != 0 ||
        strstr(err.message, bad[i].fragment) == NULL) {
      print_error("%s: unexpected message \"%s\"\n", bad[i].file, err.message);
      fail();
    }
    sp_error_free(&err);
  }
}

static void test_error_message_is_bounded(void **state) {
  sp__config_t cfg;
  sp_error_t err;
  size_t n = 5000;
  size_t prefix = 0;
  char *yaml = malloc(n + 64);
  (void)state;
  assert_non_null(yaml);
  /* A huge unknown key and a huge bad value are cut short in the message. */
  strcpy(yaml, "pools:\n  - name: p\n    pool_size: ");
  prefix = strlen(yaml);
  memset(yaml + prefix, 'x', n);
  yaml[prefix + n] = '\0';
  assert_int_equal(sp__config_load_string(&cfg, yaml, strlen(yaml), ORIGIN, &err), SP_ECONFIG);
  assert_true(strlen(err.message) < 300);
  assert_non_null(strstr(err.message, "xxx...\""));
  sp_error_free(&err);
  free(yaml);
}

/*
 * The source tree holds examples/ and tests/configs/. CMake names the configs folder
 * (SP_TEST_CONFIGS, as an environment variable and a compile-time define); by hand,
 * SP_SOURCE_DIR or a look upwards from the current directory finds it.
 */
static int find_source_dir(void) {
  static const char *const candidates[] = {".", "..", "../..", "../../.."};
  const char *env = getenv("SP_SOURCE_DIR");
  const char *configs = getenv("SP_TEST_CONFIGS");
  char probe[PATH_MAX + 32];
  struct stat st;
  if (env != NULL && env[0] != '\0') {
    snprintf(source_dir, sizeof(source_dir), "%s", env);
    return 0;
  }
#ifdef SP_TEST_CONFIGS
  if (configs == NULL || configs[0] == '\0') configs = SP_TEST_CONFIGS;
#endif
  if (configs != NULL && configs[0] != '\0') {
    snprintf(probe, sizeof(probe), "%s/../..", configs);
    if (realpath(probe, source_dir) != NULL) return 0;
  }
  for (size_t i = 0; i < sizeof(candidates) / sizeof(candidates[0]); i++) {
    snprintf(probe, sizeof(probe), "%s/src/core/config.h", candidates[i]);
    if (stat(probe, &st) == 0 && realpath(candidates[i], source_dir) != NULL) return 0;
  }
  source_dir[0] = '\0';
  return 0;
}

static int make_temp_dir(void **state) {
  const char *tmp = getenv("TMPDIR");
  (void)state;
  snprintf(temp_dir, sizeof(temp_dir), "%s/sp_test_config.XXXXXX",
           tmp != NULL && tmp[0] != '\0' ? tmp : "/tmp");
  if (mkdtemp(temp_dir) == NULL) return -1;
  return find_source_dir();
}

static int remove_temp_dir(void **state) {
  static const char *const files[] = {"empty.yaml", "bad.yaml", "paths.yaml", "big.yaml"};
  char path[PATH_MAX + 32];
  (void)state;
  for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
    temp_path(path, sizeof(path), files[i]);
    unlink(path);
  }
  return rmdir(temp_dir) == 0 ? 0 : -1;
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_full_example),
      cmocka_unit_test(test_defaults),
      cmocka_unit_test(test_flow_style_and_values),
      cmocka_unit_test(test_durations),
      cmocka_unit_test(test_sizes),
      cmocka_unit_test(test_bounds),
      cmocka_unit_test(test_unknown_key),
      cmocka_unit_test(test_duplicates),
      cmocka_unit_test(test_wrong_types),
      cmocka_unit_test(test_missing_name),
      cmocka_unit_test(test_bad_names),
      cmocka_unit_test(test_profiles),
      cmocka_unit_test(test_sizes_and_preload),
      cmocka_unit_test(test_syntax_errors),
      cmocka_unit_test(test_missing_file),
      cmocka_unit_test(test_nesting_and_size_bounds),
      cmocka_unit_test(test_empty_file),
      cmocka_unit_test(test_file_errors_name_the_file),
      cmocka_unit_test(test_python_path_resolution),
      cmocka_unit_test(test_builtin_default),
      cmocka_unit_test(test_free_is_safe),
      cmocka_unit_test(test_checked_in_configs),
      cmocka_unit_test(test_error_message_is_bounded),
  };
  return cmocka_run_group_tests(tests, make_temp_dir, remove_temp_dir);
}

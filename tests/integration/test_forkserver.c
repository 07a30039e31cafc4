/*
 * test_forkserver.c - worker_start: fork. Workers are forks of the pool's fork
 * server (distinct pids, each its own SNAKEPIT_WORKER_ID and random state);
 * a worker killed mid-call fails that call naming the signal and is replaced;
 * a killed fork server is replaced too; worker_start: exec and an adapter that
 * starts a thread at import (fallback to exec) still serve; an import that
 * hangs hits startup_timeout; bad values are config errors naming file, line
 * and key.
 */
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

#define POOL_SIZE 3


/* worker_start, the fork server's pid (0 when null) and fork_server_starts of a pool. */
static void fork_stats(sp_runtime_t *rt, const char *pool, const char **start, long long *pid,
                       long long *starts) {
  json_t *o = h_pool_stats(rt, pool);
  const char *ws = json_string_value(json_object_get(o, "worker_start"));
  *start = ws && strcmp(ws, "fork") == 0 ? "fork" : ws && strcmp(ws, "exec") == 0 ? "exec" : "?";
  json_t *fs = json_object_get(o, "fork_server");
  *pid = json_is_object(fs) ? json_integer_value(json_object_get(fs, "pid")) : 0;
  *starts = json_integer_value(json_object_get(o, "fork_server_starts"));
  json_decref(o);
}

/* Parent pid of a live (not zombie) process, or -1. */
static long parent_of(long pid) {
  char state;
  long ppid;
  return h_proc_stat(pid, &state, &ppid) == 0 && state != 'Z' ? ppid : -1;
}

/* True when pid's command line has the argument arg. */
static int has_arg(long pid, const char *arg) {
  char path[64], buf[8192];
  snprintf(path, sizeof(path), "/proc/%ld/cmdline", pid);
  FILE *f = fopen(path, "r");
  if (f == NULL) return 0;
  size_t n = fread(buf, 1, sizeof(buf), f);
  fclose(f);
  for (size_t i = 0; i < n; i += strlen(buf + i) + 1)
    if (strcmp(buf + i, arg) == 0) return 1;
  return 0;
}

typedef struct {
  sp_runtime_t *rt;
  const char *pool;
  char *json;
} who_t;

static void *who_main(void *arg) {
  who_t *w = arg;
  w->json = h_call_ok(w->rt, w->pool, "whoami", "{\"delay\": 0.4}");
  return NULL;
}

/* POOL_SIZE overlapping whoami calls: with pipeline_depth 0, one per worker. */
static void whoami_all(sp_runtime_t *rt, const char *pool, json_t *out[POOL_SIZE]) {
  pthread_t th[POOL_SIZE];
  who_t w[POOL_SIZE];
  for (int i = 0; i < POOL_SIZE; i++) {
    w[i] = (who_t){rt, pool, NULL};
    assert_int_equal(pthread_create(&th[i], NULL, who_main, &w[i]), 0);
  }
  for (int i = 0; i < POOL_SIZE; i++) {
    pthread_join(th[i], NULL);
    out[i] = json_loads(w[i].json, 0, NULL);
    assert_non_null(out[i]);
    free(w[i].json);
  }
}

static long long jint(json_t *o, const char *key) {
  return (long long)json_integer_value(json_object_get(o, key));
}

static void forked_workers_are_distinct(void **state) {
  (void)state;
  sp_runtime_t *rt =
      h_start_pool("p", "process", POOL_SIZE, 1, TESTING_ADAPTER, "    pipeline_depth: 0\n");
  json_t *who[POOL_SIZE];
  whoami_all(rt, "p", who);
  long long server = jint(who[0], "ppid");
  assert_true(server > 1 && server != getpid());
  assert_true(has_arg(server, "--fork-server"));
  for (int i = 0; i < POOL_SIZE; i++) {
    long long pid = jint(who[i], "pid");
    assert_true(pid > 1 && pid != server);
    assert_int_equal(jint(who[i], "ppid"), server); /* every worker is a fork of it */
    const char *id = json_string_value(json_object_get(who[i], "worker_id"));
    assert_true(id != NULL && id[0] == 'w');
    for (int k = 0; k < i; k++) {
      assert_true(pid != jint(who[k], "pid"));
      assert_string_not_equal(id, json_string_value(json_object_get(who[k], "worker_id")));
      /* The after-fork hooks ran: random was reseeded in every child. */
      assert_true(json_real_value(json_object_get(who[i], "random")) !=
                  json_real_value(json_object_get(who[k], "random")));
    }
  }
  for (int i = 0; i < POOL_SIZE; i++) json_decref(who[i]);
  sp_runtime_stop(rt, 2000);
}

typedef struct {
  pthread_mutex_t mu;
  int done;
  int code;
  char message[1024];
} one_t;

static void one_done(sp_result_t *res, void *ud) {
  one_t *o = ud;
  pthread_mutex_lock(&o->mu);
  o->code = res->error.code;
  snprintf(o->message, sizeof(o->message), "%s", res->error.message);
  o->done = 1;
  pthread_mutex_unlock(&o->mu);
}

static long long call_pid(sp_runtime_t *rt, const char *pool, long long *ppid) {
  char *r = h_call_ok(rt, pool, "whoami", "{}");
  json_t *o = json_loads(r, 0, NULL);
  long long pid = jint(o, "pid");
  if (ppid) *ppid = jint(o, "ppid");
  json_decref(o);
  free(r);
  return pid;
}

static void sigkilled_worker_fails_its_call_and_is_replaced(void **state) {
  (void)state;
  sp_runtime_t *rt = h_start_pool("p", "process", 1, 1, TESTING_ADAPTER, NULL);
  long long server = 0;
  long long pid = call_pid(rt, "p", &server);
  one_t o = {PTHREAD_MUTEX_INITIALIZER, 0, 0, ""};
  sp_error_t err;
  assert_int_equal(
      sp_execute_async(rt, "p", "sleep", "{\"seconds\": 30}", NULL, one_done, &o, &err), 0);
  h_sleep_ms(300);
  assert_int_equal(kill((pid_t)pid, SIGKILL), 0);
  for (int i = 0; i < 500; i++, h_sleep_ms(10)) {
    pthread_mutex_lock(&o.mu);
    int d = o.done;
    pthread_mutex_unlock(&o.mu);
    if (d) break;
  }
  assert_true(o.done);
  assert_int_equal(o.code, SP_ECRASHED);
  assert_non_null(strstr(o.message, "signal 9"));
  long long ppid2 = 0;
  long long pid2 = call_pid(rt, "p", &ppid2);
  assert_true(pid2 != pid);
  assert_int_equal(ppid2, server); /* the replacement came from the same fork server */
  sp_runtime_stop(rt, 2000);
}

static void killed_fork_server_is_replaced(void **state) {
  (void)state;
  sp_runtime_t *rt = h_start_pool("p", "process", 2, 1, TESTING_ADAPTER, NULL);
  long long server = 0;
  long long pid = call_pid(rt, "p", &server);
  assert_true(has_arg(server, "--fork-server"));
  assert_int_equal(kill((pid_t)server, SIGKILL), 0);
  /* Its workers die with it (parent-death signal); calls succeed again once the
   * respawn started a new fork server and new workers. */
  int ok = 0;
  long long pid2 = 0, server2 = 0;
  for (int i = 0; i < 100 && !ok; i++) {
    sp_result_t res;
    if (sp_execute(rt, "p", "whoami", "{}", NULL, &res) == 0) {
      json_t *o = json_loads(res.json, 0, NULL);
      pid2 = jint(o, "pid");
      server2 = jint(o, "ppid");
      json_decref(o);
      /* An old worker may still answer between its fork server's death and its
       * own (its parent is then init or a subreaper): not a replacement yet. */
      ok = server2 != server && has_arg(server2, "--fork-server");
    } else {
      assert_int_equal(res.error.category, SP_CAT_WORKER);
      h_sleep_ms(100);
    }
    sp_result_free(&res);
  }
  assert_true(ok);
  assert_true(pid2 != pid);
  assert_true(has_arg(server2, "--fork-server"));
  assert_true(parent_of(pid) != server); /* the old worker is gone */
  /* The stats name the new fork server and count both. */
  const char *start;
  long long fs_pid, starts;
  fork_stats(rt, "p", &start, &fs_pid, &starts);
  assert_string_equal(start, "fork");
  assert_int_equal(fs_pid, server2);
  assert_int_equal(starts, 2);
  sp_runtime_stop(rt, 2000);
}

static void exec_pool_still_works(void **state) {
  (void)state;
  sp_runtime_t *rt =
      h_start_pool("p", "process", 2, 1, TESTING_ADAPTER, "    worker_start: exec\n");
  long long ppid = 0;
  long long pid = call_pid(rt, "p", &ppid);
  assert_true(pid > 1);
  assert_int_equal(ppid, getpid()); /* exec'd by the manager itself */
  char *r = h_call_ok(rt, "p", "add", "{\"a\": 2, \"b\": 3}");
  assert_string_equal(r, "5");
  free(r);
  const char *start;
  long long fs_pid, starts;
  fork_stats(rt, "p", &start, &fs_pid, &starts);
  assert_string_equal(start, "exec");
  assert_int_equal(fs_pid, 0);
  assert_int_equal(starts, 0);
  sp_runtime_stop(rt, 2000);
}

static pthread_mutex_t g_log_mu = PTHREAD_MUTEX_INITIALIZER;
static char g_warning[1024];
static int g_server_line;

static void capture_log(int level, const char *line, void *ud) {
  (void)ud;
  pthread_mutex_lock(&g_log_mu);
  if (level >= 2 && strstr(line, "exec") && strstr(line, "fork server"))
    snprintf(g_warning, sizeof(g_warning), "%s", line);
  if (strstr(line, "[tp/fork-server pid ")) g_server_line = 1;
  pthread_mutex_unlock(&g_log_mu);
}

static void thread_at_import_falls_back_to_exec(void **state) {
  (void)state;
  sp_set_log_handler(capture_log, NULL);
  sp_runtime_t *rt =
      h_start_pool("tp", "process", 2, 1, "thread_at_import_adapter.ThreadAtImportAdapter", NULL);
  char *r = h_call_ok(rt, "tp", "whoami", "{}");
  json_t *o = json_loads(r, 0, NULL);
  assert_int_equal(jint(o, "ppid"), getpid());
  json_decref(o);
  free(r);
  const char *start;
  long long fs_pid, starts;
  fork_stats(rt, "tp", &start, &fs_pid, &starts);
  assert_string_equal(start, "exec"); /* what the pool really does now */
  assert_int_equal(fs_pid, 0);
  sp_runtime_stop(rt, 2000);
  sp_set_log_handler(NULL, NULL);
  assert_non_null(strstr(g_warning, "pool 'tp'"));
  assert_non_null(strstr(g_warning, "threads"));
  assert_true(g_server_line); /* its output reached the log under its own name */
}

static void hang_at_import_hits_startup_timeout(void **state) {
  (void)state;
  /* The fork server never says READY; stopping it does not hold up the failure. */
  h_expect_startup_timeout(2, "hanging_import_adapter.HangingImportAdapter");
}

static void bad_worker_start_is_a_config_error(void **state) {
  (void)state;
  const char *yaml = "pools:\n  - name: a\n    worker_start: spoon\n";
  sp_runtime_t *rt = NULL;
  sp_error_t err;
  assert_int_equal(sp_runtime_start_yaml(&rt, yaml, strlen(yaml), "ws.yaml", &err), SP_ECONFIG);
  assert_null(rt);
  assert_non_null(strstr(err.message, "ws.yaml:3"));
  assert_non_null(strstr(err.message, "key 'worker_start'"));
  assert_non_null(strstr(err.message, "\"fork\" or \"exec\""));
  assert_non_null(strstr(err.message, "spoon"));
  sp_error_free(&err);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(forked_workers_are_distinct),
      cmocka_unit_test(sigkilled_worker_fails_its_call_and_is_replaced),
      cmocka_unit_test(killed_fork_server_is_replaced),
      cmocka_unit_test(exec_pool_still_works),
      cmocka_unit_test(thread_at_import_falls_back_to_exec),
      cmocka_unit_test(hang_at_import_hits_startup_timeout),
      cmocka_unit_test(bad_worker_start_is_a_config_error),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * runtime.c - the public API: runtime start/stop, the loop thread, the
 * client -> loop queue (mutex + uv_async), sync and async execute, stats.
 * Client threads only validate and enqueue; the loop thread owns all state.
 */
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "arrays.h"
#include "errors.h"
#include "forkserver.h"
#include "log.h"
#include "report.h"
#include "paths.h"
#include "profile.h"
#include "runtime.h"
#include "source.h"
#include "stats.h"
#include "stream.h"
#include "jsonargs.h"
#include "worker.h"

#ifndef SP_WORKER_PATH
#define SP_WORKER_PATH "snakepit-worker"
#endif
#ifndef SP_SDK_DIR
#define SP_SDK_DIR "python"
#endif
/* Where the build put the library, and where the installed worker and SDK lie
 * relative to the installed library (cmake/SnakepitInstall.cmake). */
#ifndef SP_LIB_BUILD_DIR
#define SP_LIB_BUILD_DIR "."
#endif
#ifndef SP_REL_WORKER
#define SP_REL_WORKER "../libexec/snakepit/snakepit-worker"
#endif
#ifndef SP_REL_SDK
#define SP_REL_SDK "../share/snakepit/python"
#endif

/* ---- loop-thread helpers ------------------------------------------------ */

void sp__rt_mark_dirty(sp_runtime_t *rt, sp__worker_t *w) {
  if (w->dirty) return;
  w->dirty = 1;
  w->dirty_next = rt->dirty;
  rt->dirty = w;
}

void sp__rt_flush(sp_runtime_t *rt) {
  while (rt->dirty != NULL) {
    sp__worker_t *w = rt->dirty;
    rt->dirty = w->dirty_next;
    w->dirty = 0;
    w->dirty_next = NULL;
    sp__worker_flush(w);
  }
  /* Once stopping, the loop may end (and before_poll stop running) at any
   * callback: no batching of wake-ups then. */
  if (rt->phase == SP__PHASE_SHUTDOWN) sp__rt_wake_callers(rt);
}

void sp__rt_settle(sp_runtime_t *rt) {
  sp__rt_flush(rt);
  sp__rt_arm_deadlines(rt);
}

static void deadline_cb(uv_timer_t *t) {
  sp_runtime_t *rt = t->data;
  rt->timer_due = -1;
  int64_t now = sp__now_ms();
  sp__sched_item_t *it;
  while ((it = sp__dheap_top(&rt->deadlines)) != NULL && it->due_ms <= now)
    sp__call_expire(SP__CALL_OF(it));
  sp__rt_settle(rt);
}

void sp__rt_arm_deadlines(sp_runtime_t *rt) {
  sp__sched_item_t *top = sp__dheap_top(&rt->deadlines);
  if (top == NULL) {
    if (rt->timer_due >= 0) uv_timer_stop(&rt->deadline_timer);
    rt->timer_due = -1;
    return;
  }
  if (top->due_ms == rt->timer_due) return;
  int64_t delay = top->due_ms - sp__now_ms();
  rt->timer_due = top->due_ms;
  uv_timer_start(&rt->deadline_timer, deadline_cb, delay > 0 ? (uint64_t)delay : 0, 0);
}

/* ---- shutdown ----------------------------------------------------------- */

static void noop_close(uv_handle_t *h) { (void)h; }

static void wakeup_cb(uv_async_t *a);

static void close_rt_handles(sp_runtime_t *rt) {
  sp__rt_wake_callers(rt);
  /* An attached source keeps being served (a server sends its last responses
   * after the runtime drained); the handles close once it is detached. */
  if (rt->source_on) {
    rt->close_deferred = 1;
    return;
  }
  /* A caller that saw the runtime running may post after its wake-up handle
   * closed: close the queue, so such a post fails at once, and answer what
   * already is in it (calls fail with SP_ESTOPPED). */
  pthread_mutex_lock(&rt->qmu);
  rt->qclosed = 1;
  pthread_mutex_unlock(&rt->qmu);
  wakeup_cb(&rt->wakeup);
  for (size_t i = 0; i < rt->pool_count; i++) {
    sp__pool_t *p = &rt->pools[i];
    for (int k = 0; k < p->cfg->pool_size; k++) {
      uv_timer_stop(&p->positions[k].respawn);
      if (!uv_is_closing((uv_handle_t *)&p->positions[k].respawn))
        uv_close((uv_handle_t *)&p->positions[k].respawn, noop_close);
    }
  }
  uv_close((uv_handle_t *)&rt->hot_prep, noop_close);
  uv_close((uv_handle_t *)&rt->hot_idle, noop_close);
  uv_close((uv_handle_t *)&rt->wakeup, noop_close);
  uv_close((uv_handle_t *)&rt->deadline_timer, noop_close);
  uv_close((uv_handle_t *)&rt->phase_timer, noop_close);
  uv_close((uv_handle_t *)&rt->maint_timer, noop_close);
}

/*
 * How long a stopping worker may take to exit: its drain timeout (at most 5 s),
 * but no longer than cancel_grace after a timed-out call that is still running,
 * since nobody waits for that call any more.
 */
static int64_t stop_kill_ms(const sp__pool_t *p, const sp__worker_t *w) {
  int64_t ms = p->cfg->drain_timeout_ms < SP__STOP_DRAIN_MAX_MS ? p->cfg->drain_timeout_ms
                                                             : SP__STOP_DRAIN_MAX_MS;
  int64_t now = sp__now_ms();
  for (int i = 0; i < w->nslots; i++) {
    if (w->slot_abandoned_ms[i] == 0) continue;
    int64_t left = p->cfg->cancel_grace_ms - (now - w->slot_abandoned_ms[i]);
    if (left < ms) ms = left > 1 ? left : 1;
  }
  return ms;
}

/* Fails the calls a worker still holds and asks it to exit. */
static void stop_worker(sp__pool_t *p, sp__worker_t *w, const char *why) {
  for (uint32_t j = 0; j < (uint32_t)w->nslots; j++) {
    sp__call_t *c = w->slot_calls[j];
    if (c == NULL) continue;
    sp__worker_abandon(w, c);
    sp_error_t e;
    sp__error_set(&e, SP_ESTOPPED, "pool '%s': %s", p->cfg->name, why);
    sp__call_finish(c, SP_ESTOPPED, NULL, 0, &e);
  }
  if (w->state == SP__W_STARTING) sp__worker_kill(w, "the runtime stopped during its startup");
  else if (w->state != SP__W_STOPPING) sp__worker_shutdown(w, stop_kill_ms(p, w));
}

/* Fails what is left, asks every worker to exit, and lets the loop run dry. */
static void shutdown_all(sp_runtime_t *rt, const char *why) {
  if (rt->phase == SP__PHASE_SHUTDOWN) return;
  rt->phase = SP__PHASE_SHUTDOWN;
  uv_timer_stop(&rt->phase_timer);
  uv_timer_stop(&rt->maint_timer);
  for (size_t i = 0; i < rt->pool_count; i++) {
    sp__pool_t *p = &rt->pools[i];
    sp__pool_fail_queued(p, SP_ESTOPPED, why);
    for (int k = 0; k < p->cfg->pool_size; k++) {
      uv_timer_stop(&p->positions[k].respawn);
      if (p->positions[k].worker != NULL) stop_worker(p, p->positions[k].worker, why);
    }
    for (sp__worker_t *w = p->retiring; w; w = w->retire_next) stop_worker(p, w, why);
    sp__forkserver_stop(p); /* it leaves after the workers it forked */
  }
  sp__rt_flush(rt);
  if (rt->live_workers == 0) close_rt_handles(rt);
}

void sp__rt_worker_gone(sp_runtime_t *rt) {
  rt->live_workers--;
  if (rt->phase == SP__PHASE_SHUTDOWN && rt->live_workers == 0) close_rt_handles(rt);
}

void sp__rt_source_gone(sp_runtime_t *rt) {
  if (rt->close_deferred) {
    rt->close_deferred = 0;
    close_rt_handles(rt);
  }
}

void sp__rt_check_drained(sp_runtime_t *rt) {
  if (rt->phase == SP__PHASE_DRAINING && rt->active_calls == 0)
    shutdown_all(rt, "the runtime is stopping");
}

static void phase_timeout(uv_timer_t *t) {
  sp_runtime_t *rt = t->data;
  if (rt->phase == SP__PHASE_DRAINING) {
    shutdown_all(rt, "the runtime stopped before the call finished (graceful period over)");
    return;
  }
  if (rt->phase == SP__PHASE_STARTING) {
    sp_error_t e;
    char tail[1024] = "";
    const char *pool = "?", *wname = "?";
    int missing = 0;
    for (size_t i = 0; i < rt->pool_count; i++) {
      sp__pool_t *p = &rt->pools[i];
      for (int k = 0; k < p->cfg->pool_size; k++) {
        if (p->loads[k] != NULL || !p->positions[k].active) continue;
        if (missing++ == 0 && p->positions[k].worker) {
          pool = p->cfg->name;
          wname = p->positions[k].worker->name;
          sp__worker_tail(p->positions[k].worker, tail, sizeof(tail));
        }
      }
    }
    sp__error_set(&e, SP_ESTARTUP,
                  "%d worker(s) not ready within startup_timeout (first: pool '%s' worker %s)%s%s",
                  missing, pool, wname, tail[0] ? "; last output:\n" : "", tail);
    sp__rt_startup_event(rt, &e);
    sp_error_free(&e);
  }
}

static void maint_cb(uv_timer_t *t) {
  sp_runtime_t *rt = t->data;
  int64_t now = sp__now_ms();
  for (size_t i = 0; i < rt->pool_count; i++) sp__pool_maintain(&rt->pools[i], now);
  sp__rt_settle(rt);
}

void sp__rt_startup_event(sp_runtime_t *rt, const sp_error_t *err) {
  if (rt->phase != SP__PHASE_STARTING) return;
  if (err != NULL) {
    sp_error_copy(&rt->start_err, err);
    rt->start_rc = err->code ? err->code : SP_ESTARTUP;
    shutdown_all(rt, "startup failed");
    sp__wake_word(&rt->start_done);
    return;
  }
  for (size_t i = 0; i < rt->pool_count; i++)
    if (!rt->pools[i].ready_once) return;
  uv_timer_stop(&rt->phase_timer);
  rt->phase = SP__PHASE_RUNNING;
  uv_timer_start(&rt->maint_timer, maint_cb, SP__MAINT_PERIOD_MS, SP__MAINT_PERIOD_MS);
  rt->start_rc = 0;
  sp__wake_word(&rt->start_done);
}

/* ---- the loop thread ---------------------------------------------------- */

static void handle_ctl(sp_runtime_t *rt, sp__ctl_t *ctl) {
  if (ctl->msg.kind == SP__MSG_ATTACH || ctl->msg.kind == SP__MSG_DETACH) {
    if (ctl->msg.kind == SP__MSG_ATTACH) sp__source_attach(rt, ctl->src);
    else sp__source_detach(rt);
    sp__wake_word(&ctl->done);
    return;
  }
  if (ctl->msg.kind == SP__MSG_STATS) {
    ctl->json = ctl->pool ? sp__stats_pool_json(ctl->pool) : sp__stats_all_json(rt);
    ctl->rc = ctl->json ? 0 : SP_ENOMEM;
    sp__wake_word(&ctl->done);
    return;
  }
  /* STOP: the stopping thread joins the loop thread instead of waiting on ctl. */
  int graceful_ms = ctl->graceful_ms;
  if (ctl->owned) free(ctl);
  if (rt->phase == SP__PHASE_RUNNING) {
    rt->phase = SP__PHASE_DRAINING;
    uv_timer_start(&rt->phase_timer, phase_timeout, (uint64_t)(graceful_ms > 0 ? graceful_ms : 0),
                   0);
    sp__rt_check_drained(rt);
  } else if (rt->phase == SP__PHASE_STARTING) {
    shutdown_all(rt, "the runtime is stopping");
  }
}

void sp__rt_accept_call(sp_runtime_t *rt, sp__call_t *c) {
  rt->active_calls++;
  rt->events++;
  if (c->chunk_cb != NULL) sp__stream_track(rt, c);
  if (rt->phase != SP__PHASE_RUNNING) {
    sp_error_t e;
    sp__error_set(&e, SP_ESTOPPED, "pool '%s': the runtime is stopping", c->pool->cfg->name);
    sp__call_finish(c, SP_ESTOPPED, NULL, 0, &e);
  } else {
    sp__pool_submit(c->pool, c);
  }
}

static void wakeup_cb(uv_async_t *a) {
  sp_runtime_t *rt = a->data;
  pthread_mutex_lock(&rt->qmu);
  sp__msg_t *m = rt->qhead;
  rt->qhead = rt->qtail = NULL;
  pthread_mutex_unlock(&rt->qmu);
  while (m != NULL) {
    sp__msg_t *next = m->next;
    if (m->kind == SP__MSG_CALL) {
      sp__rt_accept_call(rt, (sp__call_t *)m);
    } else if (m->kind == SP__MSG_REPORT) {
      sp__report_accept(rt, m);
    } else if (m->kind == SP__MSG_CANCEL || m->kind == SP__MSG_RESUME) {
      sp__stream_msg(rt, m);
    } else {
      handle_ctl(rt, (sp__ctl_t *)m);
    }
    m = next;
  }
  sp__rt_settle(rt);
}

int sp__rt_post(sp_runtime_t *rt, sp__msg_t *m) {
  m->next = NULL;
  pthread_mutex_lock(&rt->qmu);
  if (rt->qclosed) {
    pthread_mutex_unlock(&rt->qmu);
    return SP_ESTOPPED;
  }
  if (rt->qtail) rt->qtail->next = m;
  else rt->qhead = m;
  rt->qtail = m;
  pthread_mutex_unlock(&rt->qmu);
  uv_async_send(&rt->wakeup);
  return 0;
}

/*
 * Before each poll, when SNAKEPIT_LOOP_SPIN_US is set: while calls are in
 * flight and something happened in the last that many microseconds, poll
 * without sleeping (an active idle handle makes libuv's poll timeout 0). The
 * next reply or submission then finds the loop thread running: no wake-up of
 * the loop, and its CPU does not halt. Off by default because on 2 CPUs it is
 * a trade (bench/README.md, step 11): with 100 us, 16 synchronous callers on 2
 * process workers went from 95.9k to 105k calls/s (medians of 5) and a 64-deep
 * async pipeline on a 1 x 16 thread worker from ~51k to ~110k, but 16
 * synchronous callers on that thread worker fell from 52k to 28k and the
 * sequential p50 from ~41 to ~60 us: the polling thread holds a CPU the
 * workers need. With nothing in flight, or once things go quiet, the loop
 * sleeps as usual.
 */
static void idle_noop(uv_idle_t *h) { (void)h; }

static void before_poll(uv_prepare_t *h) {
  sp_runtime_t *rt = h->data;
  /* The callers of the calls finished in this loop turn, all at once. */
  sp__rt_wake_callers(rt);
  uint64_t window = rt->hot_window_ns;
  if (window == 0) return;
  uint64_t now = sp__now_ns();
  if (rt->events != rt->events_seen) {
    rt->events_seen = rt->events;
    rt->hot_since_ns = now;
  }
  /* Not with an event source attached: an HTTP server keeps this thread busy
   * already, and polling there only took CPU from the workers (p99 of the HTTP
   * benchmark 0.6 -> 2.4 ms at the same requests/s). */
  int want = rt->active_calls > 0 && !rt->source_on && now - rt->hot_since_ns < window;
  if (want && !rt->hot) uv_idle_start(&rt->hot_idle, idle_noop);
  else if (!want && rt->hot) uv_idle_stop(&rt->hot_idle);
  rt->hot = want;
}

static void loop_main(void *arg) {
  sp_runtime_t *rt = arg;
  rt->loop_tid = uv_thread_self();
  /* This thread writes every worker socket. A write to a worker that just died
   * must fail with EPIPE, not kill the host process; blocking SIGPIPE here does
   * that without touching the application's own signal dispositions. */
  sigset_t pipe_set;
  sigemptyset(&pipe_set);
  sigaddset(&pipe_set, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &pipe_set, NULL);
  for (size_t i = 0; i < rt->pool_count && rt->phase == SP__PHASE_STARTING; i++) {
    sp_error_t err;
    if (sp__pool_spawn_all(&rt->pools[i], &err) != 0) {
      sp__rt_startup_event(rt, &err);
      sp_error_free(&err);
    }
  }
  if (rt->phase == SP__PHASE_STARTING) {
    int64_t t = 0;
    for (size_t i = 0; i < rt->pool_count; i++)
      if (rt->pools[i].cfg->startup_timeout_ms > t) t = rt->pools[i].cfg->startup_timeout_ms;
    uv_timer_start(&rt->phase_timer, phase_timeout, (uint64_t)t, 0);
  }
  uv_run(&rt->loop, UV_RUN_DEFAULT);
  sp__rt_wake_callers(rt); /* calls failed by the last callbacks */
}

/* ---- start / stop ------------------------------------------------------- */

static void rt_free(sp_runtime_t *rt) {
  if (rt == NULL) return;
  for (size_t i = 0; i < rt->pool_count; i++) sp__pool_free(&rt->pools[i]);
  free(rt->pools);
  sp__dheap_free(&rt->deadlines);
  sp__config_free(&rt->cfg);
  sp_error_free(&rt->start_err);
  free(rt->worker_path);
  free(rt->sdk_dir);
  pthread_mutex_destroy(&rt->qmu);
  free(rt);
}

static int start_with_config(sp_runtime_t **out, sp_runtime_t *rt, sp_error_t *err) {
  int rc = 0;
  const char *wp = getenv("SNAKEPIT_WORKER");
  const char *sdk = getenv("SNAKEPIT_SDK_DIR");
  char self[PATH_MAX], found_wp[PATH_MAX], found_sdk[PATH_MAX];
  sp__self_path((const void *)sp_version, self, sizeof(self));
  sp__locate(self, SP_LIB_BUILD_DIR, SP_WORKER_PATH, SP_REL_WORKER, found_wp, sizeof(found_wp));
  sp__locate(self, SP_LIB_BUILD_DIR, SP_SDK_DIR, SP_REL_SDK, found_sdk, sizeof(found_sdk));
  rt->worker_path = strdup(wp && *wp ? wp : found_wp);
  rt->sdk_dir = strdup(sdk && *sdk ? sdk : found_sdk);
  rt->timer_due = -1;
  rt->pools = calloc(rt->cfg.pool_count, sizeof(*rt->pools));
  if (!rt->worker_path || !rt->sdk_dir || !rt->pools) {
    rc = sp__error_set(err, SP_ENOMEM, "out of memory starting the runtime");
    goto fail_noloop;
  }
  if (access(rt->worker_path, X_OK) != 0) {
    rc = sp__error_set(err, SP_ESTARTUP,
                       "worker program '%s' is not executable: %s (set SNAKEPIT_WORKER)",
                       rt->worker_path, strerror(errno));
    goto fail_noloop;
  }
  for (size_t i = 0; i < rt->cfg.pool_count; i++)
    if ((rc = sp__profile_resolve(rt, &rt->cfg.pools[i], err)) != 0) goto fail_noloop;
  int urc = uv_loop_init(&rt->loop);
  if (urc != 0) {
    rc = sp__error_set(err, SP_EIO, "cannot create the event loop: %s", uv_strerror(urc));
    goto fail_noloop;
  }
  uv_async_init(&rt->loop, &rt->wakeup, wakeup_cb);
  uv_timer_init(&rt->loop, &rt->deadline_timer);
  uv_timer_init(&rt->loop, &rt->phase_timer);
  uv_timer_init(&rt->loop, &rt->maint_timer);
  uv_prepare_init(&rt->loop, &rt->hot_prep);
  uv_idle_init(&rt->loop, &rt->hot_idle);
  rt->wakeup.data = rt->deadline_timer.data = rt->phase_timer.data = rt->maint_timer.data = rt;
  rt->hot_prep.data = rt;
  /* How long the loop keeps polling after its last activity (see before_poll);
   * read per runtime, off unless set. */
  const char *hot = getenv("SNAKEPIT_LOOP_SPIN_US");
  rt->hot_window_ns = hot && atoi(hot) > 0 ? (uint64_t)atoi(hot) * 1000u : 0;
  uv_prepare_start(&rt->hot_prep, before_poll);
  /* Neither keeps the loop alive: it ends when the runtime's handles close. */
  uv_unref((uv_handle_t *)&rt->hot_prep);
  uv_unref((uv_handle_t *)&rt->hot_idle);
  rt->pool_count = rt->cfg.pool_count;
  for (size_t i = 0; i < rt->pool_count; i++) {
    if ((rc = sp__pool_init(&rt->pools[i], rt, &rt->cfg.pools[i], (int)i, err)) != 0) {
      rt->pool_count = i + 1;
      goto fail_loop;
    }
  }
  if (uv_thread_create(&rt->thread, loop_main, rt) != 0) {
    rc = sp__error_set(err, SP_EIO, "cannot start the runtime's loop thread");
    goto fail_loop;
  }
  sp__wait_word(&rt->start_done);
  if (rt->start_rc != 0) {
    rc = rt->start_rc;
    if (err) sp__error_move(err, &rt->start_err);
    uv_thread_join(&rt->thread);
    uv_loop_close(&rt->loop);
    rt_free(rt);
    *out = NULL;
    return rc;
  }
  sp__error_clear(err);
  *out = rt;
  return 0;

fail_loop:
  close_rt_handles(rt);
  uv_run(&rt->loop, UV_RUN_DEFAULT);
  uv_loop_close(&rt->loop);
fail_noloop:
  rt_free(rt);
  *out = NULL;
  return rc;
}

static sp_runtime_t *rt_alloc(void) {
  sp_runtime_t *rt = calloc(1, sizeof(*rt));
  if (rt == NULL) return NULL;
  pthread_mutex_init(&rt->qmu, NULL);
  atomic_init(&rt->stopping, 0);
  atomic_init(&rt->start_done, 0);
  return rt;
}

int sp_runtime_start_file(sp_runtime_t **out, const char *path, sp_error_t *err) {
  if (out == NULL) return sp__error_set(err, SP_EINVAL, "sp_runtime_start_file: rt is NULL");
  *out = NULL;
  sp_runtime_t *rt = rt_alloc();
  if (rt == NULL) return sp__error_set(err, SP_ENOMEM, "out of memory starting the runtime");
  int rc = path ? sp__config_load_file(&rt->cfg, path, err) : sp__config_default(&rt->cfg, err);
  if (rc != 0) {
    rt_free(rt);
    return rc;
  }
  return start_with_config(out, rt, err);
}

int sp_runtime_start_yaml(sp_runtime_t **out, const char *yaml, size_t len, const char *origin,
                          sp_error_t *err) {
  if (out == NULL || yaml == NULL)
    return sp__error_set(err, SP_EINVAL, "sp_runtime_start_yaml: rt and yaml must not be NULL");
  *out = NULL;
  sp_runtime_t *rt = rt_alloc();
  if (rt == NULL) return sp__error_set(err, SP_ENOMEM, "out of memory starting the runtime");
  int rc = sp__config_load_string(&rt->cfg, yaml, len, origin ? origin : "<yaml>", err);
  if (rc != 0) {
    rt_free(rt);
    return rc;
  }
  return start_with_config(out, rt, err);
}

int sp_runtime_drain(sp_runtime_t *rt, int graceful_ms) {
  if (rt == NULL) return SP_EINVAL;
  if (atomic_exchange(&rt->stopping, 1)) return 0; /* already stopping */
  sp__ctl_t *ctl = calloc(1, sizeof(*ctl));
  if (ctl == NULL) return SP_ENOMEM;
  ctl->msg.kind = SP__MSG_STOP;
  ctl->graceful_ms = graceful_ms;
  ctl->owned = 1;
  if (sp__rt_post(rt, &ctl->msg) != 0) free(ctl); /* already stopped */
  return 0;
}

int sp_runtime_stop(sp_runtime_t *rt, int graceful_ms) {
  if (rt == NULL) return SP_EINVAL;
  if (uv_thread_equal(&rt->loop_tid, &(uv_thread_t){uv_thread_self()})) return SP_EBADTHREAD;
  sp_runtime_detach_source(rt);
  atomic_store(&rt->stopping, 1);
  sp__ctl_t ctl;
  memset(&ctl, 0, sizeof(ctl));
  ctl.msg.kind = SP__MSG_STOP;
  ctl.graceful_ms = graceful_ms;
  (void)sp__rt_post(rt, &ctl.msg); /* refused: the loop thread is ending already */
  uv_thread_join(&rt->thread);
  uv_loop_close(&rt->loop);
  rt_free(rt);
  return 0;
}

/* ---- calls -------------------------------------------------------------- */

sp__pool_t *sp__rt_find_pool(sp_runtime_t *rt, const char *name, sp_error_t *err) {
  for (size_t i = 0; i < rt->pool_count; i++)
    if (strcmp(rt->pools[i].cfg->name, name) == 0) return &rt->pools[i];
  char names[512] = "";
  size_t used = 0;
  for (size_t i = 0; i < rt->pool_count && used < sizeof(names); i++)
    used += (size_t)snprintf(names + used, sizeof(names) - used, "%s%s", i ? ", " : "",
                             rt->pools[i].cfg->name);
  sp__error_set(err, SP_ENOPOOL, "unknown pool '%s' (pools: %s)", name, names);
  return NULL;
}

/* The one definition of valid arguments (jsonargs.c), shared with the worker's decoder. */
static int check_args(const sp__pool_t *p, const char *tool, const char *args, size_t len,
                      sp_error_t *err) {
  char why[256], top;
  if (sp__json_args_check(args, len, &top, why, sizeof(why)) != 0)
    return sp__error_set(err, SP_EBADJSON, "arguments for tool '%s' in pool '%s' are not valid JSON: %s",
                         tool, p->cfg->name, why);
  int ok = top == '{';
  const char *kind = top == '[' ? "an array" : top == '"' ? "a string" : top == '0' ? "a number"
                     : top == 't' || top == 'f' ? "a boolean" : "null";
  if (!ok)
    return sp__error_set(err, SP_EBADARGS,
                         "arguments for tool '%s' in pool '%s' must be a JSON object, got %s", tool,
                         p->cfg->name, kind);
  return 0;
}

/* Validates on the calling thread and builds the call with its encoded frame. */
static int build_call(sp_runtime_t *rt, const char *pool, const char *tool, const char *args,
                      const sp_call_opts_t *opts, sp__call_t **out, sp__pool_t **found,
                      sp_error_t *err) {
  *out = NULL;
  if (rt == NULL || pool == NULL || tool == NULL)
    return sp__error_set(err, SP_EINVAL, "runtime, pool and tool must not be NULL");
  if (atomic_load_explicit(&rt->stopping, memory_order_relaxed))
    return sp__error_set(err, SP_ESTOPPED, "the runtime is stopping");
  sp__pool_t *p = *found = sp__rt_find_pool(rt, pool, err);
  if (p == NULL) return SP_ENOPOOL;
  int tool_index = sp__pool_find_tool(p, tool);
  if (tool_index < 0) {
    char names[768] = "";
    size_t used = 0;
    for (size_t i = 0; i < p->tool_count && used < sizeof(names); i++)
      used += (size_t)snprintf(names + used, sizeof(names) - used, "%s%s", i ? ", " : "",
                               p->tool_names[i]);
    /* The seed's snippets define methods without @tool: say what is missing. */
    char quoted[160];
    snprintf(quoted, sizeof(quoted), "\"%s\"", tool);
    if (p->methods_without_tool != NULL && strstr(p->methods_without_tool, quoted) != NULL)
      return sp__error_set(err, SP_ENOTOOL,
                           "'%s' is a method of the adapter of pool '%s' but not a tool: mark it with "
                           "@tool (from snakepit_bridge import tool) to call it (tools: %s)",
                           tool, pool, names);
    return sp__error_set(err, SP_ENOTOOL, "unknown tool '%s' in pool '%s' (tools: %s)", tool, pool,
                         names);
  }
  if (args == NULL) args = "{}";
  size_t alen = strlen(args);
  size_t tlen = strlen(tool);
  int rc = check_args(p, tool, args, alen, err);
  if (rc != 0) return rc;
  size_t frame_len = sp__call_frame_size(tlen, alen, 0);
  if (frame_len - SP__FRAME_HEADER_SIZE > (size_t)p->cfg->max_frame_bytes)
    return sp__error_set(err, SP_ETOOLARGE,
                         "arguments of %zu bytes for tool '%s' exceed max_frame_bytes (%lld) of "
                         "pool '%s'",
                         alen, tool, (long long)p->cfg->max_frame_bytes, pool);
  /* Fields added to sp_call_opts_t after 0.2 are read only when opts->size covers them. */
  size_t narrays = opts ? opts->array_count : 0;
  unsigned flags = (opts && opts->arrays_as_lists ? SP__FLAG_LISTS : 0) |
                   (opts && opts->arrays_writable ? SP__FLAG_WRITABLE : 0);
  sp__inputs_t in;
  memset(&in, 0, sizeof(in));
  if (narrays > 0) {
    rc = sp__inputs_prepare(p->input, p->cfg->name, tool, opts->arrays, narrays, args, alen,
                            frame_len - SP__FRAME_HEADER_SIZE, (size_t)p->cfg->max_frame_bytes,
                            &in, err);
    if (rc != 0) return rc;
    frame_len += in.extra;
    flags |= SP__FLAG_ARRAYS;
  }
  sp__call_t *c = malloc(sizeof(*c) + frame_len);
  if (c == NULL) {
    sp__inputs_release(p->input, in.owned, in.nowned);
    sp__inputs_clear(&in, NULL, NULL);
    return sp__error_set(err, SP_ENOMEM, "out of memory building the call");
  }
  memset(c, 0, sizeof(*c));
  c->msg.kind = SP__MSG_CALL;
  sp__sched_item_init(&c->item);
  c->pool = p;
  c->tool_index = tool_index;
  c->idempotent = opts ? opts->idempotent : 0;
  int64_t timeout = opts && opts->timeout_ms > 0 ? opts->timeout_ms : p->cfg->timeout_ms;
  c->start_ns = sp__now_ns();
  c->deadline_ms = sp__now_ms() + timeout;
  atomic_init(&c->done, 0);
  c->frame_len = frame_len;
  uint8_t *extra = sp__call_frame_write(c->frame, flags, tool, tlen, args, alen, in.extra);
  if (narrays > 0) {
    sp__inputs_encode(&in, extra);
    sp__inputs_clear(&in, &c->inputs, &c->ninputs);
  }
  *out = c;
  return 0;
}

/* build_call, counting refusals against the pool they were meant for. */
int sp__rt_make_call(sp_runtime_t *rt, const char *pool, const char *tool, const char *args,
                     const sp_call_opts_t *opts, sp__call_t **out, sp_error_t *err) {
  sp__pool_t *p = NULL;
  int rc = build_call(rt, pool, tool, args, opts, out, &p, err);
  if (rc != 0 && p != NULL)
    atomic_fetch_add_explicit(&p->rejected[sp_err_category(rc)], 1, memory_order_relaxed);
  return rc;
}

int sp__rt_on_loop_thread(sp_runtime_t *rt) {
  uv_thread_t self = uv_thread_self();
  return uv_thread_equal(&rt->loop_tid, &self);
}

int sp_execute(sp_runtime_t *rt, const char *pool, const char *tool, const char *args_json,
               const sp_call_opts_t *opts, sp_result_t *res) {
  if (res == NULL) return SP_EINVAL;
  memset(res, 0, sizeof(*res));
  sp__error_clear(&res->error);
  if (rt != NULL && sp__rt_on_loop_thread(rt))
    return sp__error_set(&res->error, SP_EBADTHREAD,
                         "sp_execute called from a completion callback; use sp_execute_async");
  sp__call_t *c = NULL;
  int rc = sp__rt_make_call(rt, pool, tool, args_json, opts, &c, &res->error);
  if (rc != 0) return rc;
  c->res = res;
  c->wait_bit = sp__wait_bit();
  if (sp__rt_post(rt, &c->msg) != 0) {
    free(c);
    return sp__error_set(&res->error, SP_ESTOPPED, "the runtime is stopping");
  }
  sp__wait_call(rt, c);
  free(c);
  return res->error.code;
}

int sp_execute_async(sp_runtime_t *rt, const char *pool, const char *tool, const char *args_json,
                     const sp_call_opts_t *opts, sp_done_cb cb, void *userdata, sp_error_t *err) {
  if (cb == NULL) return sp__error_set(err, SP_EINVAL, "sp_execute_async: cb must not be NULL");
  sp__call_t *c = NULL;
  int rc = sp__rt_make_call(rt, pool, tool, args_json, opts, &c, err);
  if (rc != 0) return rc;
  c->cb = cb;
  c->ud = userdata;
  c->res = &c->own;
  /* From an event source's run() the call goes straight in (the source's turn
   * flushes it); everywhere else through the queue. */
  if (rt->in_source && sp__rt_on_loop_thread(rt)) {
    sp__rt_accept_call(rt, c);
  } else if (sp__rt_post(rt, &c->msg) != 0) {
    free(c); /* not accepted: its callback never runs */
    return sp__error_set(err, SP_ESTOPPED, "the runtime is stopping");
  }
  return 0;
}

void sp_result_free(sp_result_t *res) {
  if (res == NULL) return;
  free(res->json);
  res->json = NULL;
  res->len = 0;
  sp_error_free(&res->error);
  sp__result_arrays_free(res);
}

int sp_array_alloc(sp_runtime_t *rt, const char *pool, size_t nbytes, void **data,
                   sp_error_t *err) {
  if (data == NULL) return sp__error_set(err, SP_EINVAL, "sp_array_alloc: data is NULL");
  *data = NULL;
  if (rt == NULL || pool == NULL)
    return sp__error_set(err, SP_EINVAL, "sp_array_alloc: rt and pool must not be NULL");
  if (atomic_load(&rt->stopping)) return sp__error_set(err, SP_ESTOPPED, "the runtime is stopping");
  sp__pool_t *p = sp__rt_find_pool(rt, pool, err);
  if (p == NULL) return SP_ENOPOOL;
  uint64_t off;
  if (nbytes == 0 || sp__shm_alloc(p->input, nbytes, &off) != 0) {
    size_t used = 0, largest = 0;
    sp__shm_usage(p->input, &used, &largest);
    return sp__error_set(err, nbytes == 0 ? SP_EINVAL : SP_ETOOLARGE,
                         "cannot allocate %zu bytes in the shared memory of pool '%s' "
                         "(max_shared_memory %zu bytes, %zu in use, largest free block %zu)%s",
                         nbytes, pool, p->input->size, used, largest,
                         nbytes == 0 ? "" : "; raise max_shared_memory of the pool");
  }
  *data = p->input->base + off;
  sp__error_clear(err);
  return 0;
}

void sp_array_free(sp_runtime_t *rt, void *data) {
  if (rt == NULL || data == NULL) return;
  for (size_t i = 0; i < rt->pool_count; i++) {
    sp__shm_t *r = rt->pools[i].input;
    if (r != NULL && (uint8_t *)data >= r->base && (uint8_t *)data < r->base + r->size) {
      sp__shm_free(r, (uint64_t)((uint8_t *)data - r->base));
      return;
    }
  }
}

void sp_free(void *p) { free(p); }

/* ---- introspection ------------------------------------------------------ */

int sp_stats_json(sp_runtime_t *rt, const char *pool, char **json, sp_error_t *err) {
  if (rt == NULL || json == NULL) return sp__error_set(err, SP_EINVAL, "rt and json must not be NULL");
  *json = NULL;
  if (atomic_load(&rt->stopping)) return sp__error_set(err, SP_ESTOPPED, "the runtime is stopping");
  sp__ctl_t ctl;
  memset(&ctl, 0, sizeof(ctl));
  ctl.msg.kind = SP__MSG_STATS;
  if (pool != NULL && (ctl.pool = sp__rt_find_pool(rt, pool, err)) == NULL) return SP_ENOPOOL;
  if (sp__rt_on_loop_thread(rt)) {
    /* Already where the state lives (a completion callback, an event source). */
    ctl.json = ctl.pool ? sp__stats_pool_json(ctl.pool) : sp__stats_all_json(rt);
    ctl.rc = ctl.json ? 0 : SP_ENOMEM;
  } else {
    if (sp__rt_post(rt, &ctl.msg) != 0)
      return sp__error_set(err, SP_ESTOPPED, "the runtime is stopping");
    sp__wait_word(&ctl.done);
  }
  if (ctl.rc != 0) return sp__error_set(err, ctl.rc, "cannot build statistics: %s", sp_strerror(ctl.rc));
  *json = ctl.json;
  sp__error_clear(err);
  return 0;
}

int sp_tools_json(sp_runtime_t *rt, const char *pool, char **json, sp_error_t *err) {
  if (rt == NULL || pool == NULL || json == NULL)
    return sp__error_set(err, SP_EINVAL, "rt, pool and json must not be NULL");
  *json = NULL;
  sp__pool_t *p = sp__rt_find_pool(rt, pool, err);
  if (p == NULL) return SP_ENOPOOL;
  *json = strdup(p->tools_json ? p->tools_json : "[]");
  return *json ? 0 : sp__error_set(err, SP_ENOMEM, "out of memory");
}

int sp_pools_json(sp_runtime_t *rt, char **json, sp_error_t *err) {
  if (rt == NULL || json == NULL) return sp__error_set(err, SP_EINVAL, "rt and json must not be NULL");
  json_t *a = json_array();
  for (size_t i = 0; i < rt->pool_count; i++)
    json_array_append_new(a, json_string(rt->pools[i].cfg->name));
  *json = json_dumps(a, JSON_COMPACT);
  json_decref(a);
  return *json ? 0 : sp__error_set(err, SP_ENOMEM, "out of memory");
}

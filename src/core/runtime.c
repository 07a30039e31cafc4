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
#include "hostfn.h"
#include "log.h"
#include "report.h"
#include "paths.h"
#include "profile.h"
#include "remote.h"
#include "runtime.h"
#include "source.h"
#include "stats.h"
#include "stream.h"
#include "session.h"
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
    } else if (m->kind == SP__MSG_SESSION_END) {
      sp__session_msg(rt, m);
    } else if (m->kind == SP__MSG_REMOTE) {
      sp__remote_msg(rt, m);
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
  if (rt->pool_count == 0) sp__rt_startup_event(rt, NULL); /* only remote pools */
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
  sp__remote_destroy(rt->remote);
  sp__dheap_free(&rt->deadlines);
  sp__hostfns_free(rt);
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
  if ((rc = sp__remote_create(rt, &rt->remote, err)) != 0) goto fail_noloop;
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
  sp__hostfns_init(rt);
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
  sp__remote_stop(rt->remote, graceful_ms);
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

int sp__rt_on_loop_thread(sp_runtime_t *rt) {
  uv_thread_t self = uv_thread_self();
  return uv_thread_equal(&rt->loop_tid, &self);
}

/* ---- introspection ------------------------------------------------------ */

int sp_stats_json(sp_runtime_t *rt, const char *pool, char **json, sp_error_t *err) {
  if (rt == NULL || json == NULL) return sp__error_set(err, SP_EINVAL, "rt and json must not be NULL");
  *json = NULL;
  if (atomic_load(&rt->stopping)) return sp__error_set(err, SP_ESTOPPED, "the runtime is stopping");
  sp__ctl_t ctl;
  memset(&ctl, 0, sizeof(ctl));
  ctl.msg.kind = SP__MSG_STATS;
  sp__remote_pool_t *rp = sp__remote_find(rt->remote, pool);
  if (rp != NULL) return sp__remote_stats_json(rt->remote, rp, json, err);
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
  /* The whole runtime's statistics list its remote pools too (their caller-side figures). */
  int rc = pool == NULL ? sp__remote_stats_merge(rt->remote, json, err) : 0;
  if (rc != 0) {
    sp_free(*json);
    *json = NULL;
  }
  return rc;
}

int sp_tools_json(sp_runtime_t *rt, const char *pool, char **json, sp_error_t *err) {
  sp__error_clear(err);
  if (rt == NULL || pool == NULL || json == NULL)
    return sp__error_set(err, SP_EINVAL, "rt, pool and json must not be NULL");
  *json = NULL;
  sp__remote_pool_t *rp = sp__remote_find(rt->remote, pool);
  if (rp != NULL) return sp__remote_tools_json(rt->remote, rp, json, err);
  sp__pool_t *p = sp__rt_find_pool(rt, pool, err);
  if (p == NULL) return SP_ENOPOOL;
  *json = strdup(p->tools_json ? p->tools_json : "[]");
  return *json ? 0 : sp__error_set(err, SP_ENOMEM, "out of memory");
}

int sp_pools_json(sp_runtime_t *rt, char **json, sp_error_t *err) {
  sp__error_clear(err);
  if (rt == NULL || json == NULL) return sp__error_set(err, SP_EINVAL, "rt and json must not be NULL");
  json_t *a = json_array();
  for (size_t i = 0; i < rt->pool_count; i++)
    json_array_append_new(a, json_string(rt->pools[i].cfg->name));
  sp__remote_names(rt->remote, a);
  *json = json_dumps(a, JSON_COMPACT);
  json_decref(a);
  return *json ? 0 : sp__error_set(err, SP_ENOMEM, "out of memory");
}

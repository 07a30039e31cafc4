/*
 * pool.c - one pool of workers: dispatch to the least-loaded ready worker, the
 * bounded wait queue, deadlines, call completion, and respawning crashed
 * workers with exponential backoff. Runs on the loop thread only.
 */
#include <stdlib.h>
#include <string.h>

#include "errors.h"
#include "log.h"
#include "pool.h"
#include "autoscale.h"
#include "procmem.h"
#include "runtime.h"
#include "shm.h"
#include "worker.h"


static void respawn_cb(uv_timer_t *t);

/* Respawn backoff: the first delay, doubled per consecutive failure up to the cap. */
#define RESPAWN_FIRST_MS 100
#define RESPAWN_MAX_MS 5000

/* Starts the position's replacement after an exponential backoff; returns the
 * delay chosen. */
static int64_t schedule_respawn(sp__position_t *s) {
  int64_t delay = (int64_t)RESPAWN_FIRST_MS << (s->crashes_in_row < 6 ? s->crashes_in_row : 6);
  if (delay > RESPAWN_MAX_MS) delay = RESPAWN_MAX_MS;
  s->crashes_in_row++;
  uv_timer_start(&s->respawn, respawn_cb, (uint64_t)delay, 0);
  return delay;
}

int sp__pool_init(sp__pool_t *p, sp_runtime_t *rt, const sp__pool_config_t *cfg, int index,
                  sp_error_t *err) {
  memset(p, 0, sizeof(*p));
  p->desired = cfg->min_workers;
  p->rt = rt;
  p->cfg = cfg;
  p->index = index;
  p->positions = calloc((size_t)cfg->pool_size, sizeof(*p->positions));
  p->loads = calloc((size_t)cfg->pool_size, sizeof(*p->loads));
  p->crash_times = calloc((size_t)cfg->crash_loop_max, sizeof(*p->crash_times));
  if (p->positions == NULL || p->loads == NULL || p->crash_times == NULL)
    return sp__error_set(err, SP_ENOMEM, "out of memory starting pool '%s'", cfg->name);
  char name[96];
  snprintf(name, sizeof(name), "snakepit-%s-in", cfg->name);
  int rc = sp__shm_create(&p->input, name, (size_t)cfg->max_shared_memory, err);
  if (rc != 0) return rc;
  for (int i = 0; i < cfg->pool_size; i++) {
    sp__position_t *s = &p->positions[i];
    s->pool = p;
    s->index = i;
    s->active = i < cfg->min_workers; /* a range starts at its minimum */
    uv_timer_init(&rt->loop, &s->respawn);
    s->respawn.data = s;
  }
  return 0;
}

void sp__pool_free(sp__pool_t *p) {
  for (size_t i = 0; i < p->tool_count; i++) free(p->tool_names[i]);
  free(p->tool_names);
  free(p->tool_stats);
  free(p->tools_json);
  free(p->methods_without_tool);
  free(p->python_version);
  free(p->positions);
  free(p->loads);
  free(p->crash_times);
  sp__sessions_free(p);
  sp__shm_unref(p->input);
  memset(p, 0, sizeof(*p));
}

int sp__pool_find_tool(const sp__pool_t *p, const char *tool) {
  for (size_t i = 0; i < p->tool_count; i++)
    if (strcmp(p->tool_names[i], tool) == 0) return (int)i;
  return -1;
}

static int spawn_at(sp__pool_t *p, sp__position_t *s, sp_error_t *err) {
  sp__worker_t *w = NULL;
  int rc = sp__worker_spawn(p, s, &w, err);
  if (rc != 0) return rc;
  s->worker = w;
  p->loads[s->index] = NULL; /* not schedulable until HELLO */
  return 0;
}

/* Starts workers until startup_batch_size of them are starting at once. */
static int spawn_batch(sp__pool_t *p, sp_error_t *err) {
  int starting = 0;
  for (int i = 0; i < p->next_spawn; i++)
    if (p->positions[i].worker && p->positions[i].worker->state == SP__W_STARTING) starting++;
  while (p->next_spawn < p->cfg->min_workers && starting < p->cfg->startup_batch_size) {
    int rc = spawn_at(p, &p->positions[p->next_spawn], err);
    if (rc != 0) return rc;
    p->next_spawn++;
    starting++;
  }
  return 0;
}

int sp__pool_spawn_all(sp__pool_t *p, sp_error_t *err) { return spawn_batch(p, err); }

static void dispatch(sp__pool_t *p, int idx, sp__call_t *c) {
  sp__worker_t *w = p->positions[idx].worker;
  sp_runtime_t *rt = p->rt;
  if (c->item.heap_idx != SP__NOT_IN_HEAP) sp__dheap_remove(&rt->deadlines, &c->item);
  c->item.due_ms = c->deadline_ms;
  if (sp__dheap_push(&rt->deadlines, &c->item) != 0) {
    sp_error_t e;
    sp__error_set(&e, SP_ENOMEM, "out of memory tracking the call's deadline");
    sp__call_finish(c, SP_ENOMEM, NULL, 0, &e);
    return;
  }
  if (c->sid != NULL) sp__session_dispatched(c);
  sp__worker_dispatch(w, c);
  p->positions[idx].busy_ms = sp__now_ms();
  if (w->max_requests > 0 && w->requests >= w->max_requests)
    sp__pool_recycle(p, w, SP__RECYCLE_MAX_REQUESTS);
}

/* How long a worker must have been ready for its death not to be part of a
 * crash loop, and for a degraded pool to recover: min_lifetime, at least 1 s. */
static int64_t stay_up_ms(const sp__pool_t *p) {
  return p->cfg->min_lifetime_ms > 1000 ? p->cfg->min_lifetime_ms : 1000;
}

static int has_ready_worker(const sp__pool_t *p) {
  for (int i = 0; i < p->cfg->pool_size; i++)
    if (p->positions[i].worker && p->positions[i].worker->state == SP__W_READY) return 1;
  return 0;
}

void sp__pool_submit(sp__pool_t *p, sp__call_t *c) {
  /* Degraded refuses calls only while no worker could take them: the workers
   * that are ready serve, whatever their siblings do. */
  if (p->degraded && !has_ready_worker(p)) {
    sp_error_t d;
    sp__error_set(&d, SP_EDEGRADED,
                  "pool '%s' is degraded (%s); calls fail until a worker stays up", p->cfg->name,
                  p->degraded_reason);
    sp__call_finish(c, SP_EDEGRADED, NULL, 0, &d);
    return;
  }
  int idx;
  if (c->sid != NULL) {
    /* A session's call: its worker, by its mode (session.c). */
    idx = sp__session_place(p, c);
    if (idx == SP__PLACE_DONE) return;
  } else {
    idx = sp__sched_pick(p->loads, (size_t)p->cfg->pool_size, &p->cursor, sp__call_depth_cap(c));
  }
  if (idx >= 0 && p->queue.len == 0) {
    dispatch(p, idx, c);
    return;
  }
  sp_error_t e;
  if (p->queue.len >= (size_t)p->cfg->max_queue) {
    sp__error_set(&e, SP_ESATURATED,
                  "pool '%s' is saturated: all %d worker slots are busy and %zu calls are queued "
                  "(max_queue %d)",
                  p->cfg->name, p->cfg->pool_size * p->cfg->threads_per_worker, p->queue.len,
                  p->cfg->max_queue);
    sp__call_finish(c, SP_ESATURATED, NULL, 0, &e);
    return;
  }
  int64_t qdue = sp__now_ms() + p->cfg->queue_timeout_ms;
  c->item.due_ms = qdue < c->deadline_ms ? qdue : c->deadline_ms;
  if (sp__dheap_push(&p->rt->deadlines, &c->item) != 0) {
    sp__error_set(&e, SP_ENOMEM, "out of memory queueing the call");
    sp__call_finish(c, SP_ENOMEM, NULL, 0, &e);
    return;
  }
  c->state = SP__CALL_QUEUED;
  sp__fifo_push(&p->queue, &c->item);
  if (p->queue.len > p->stats.queue_peak) p->stats.queue_peak = p->queue.len;
  if (idx >= 0) sp__pool_pump(p);
}

void sp__pool_pump(sp__pool_t *p) {
  /* In order, except that a strict session call waiting for its own busy
   * worker lets the calls behind it pass. A call that finds no room for itself
   * means no free thread anywhere, so nothing behind it fits either. After a
   * call leaves the queue the walk starts again at its head: completing a call
   * runs its callback, which may submit calls of its own. */
  for (sp__sched_item_t *it = p->queue.head; it != NULL;) {
    sp__call_t *c = SP__CALL_OF(it);
    int idx;
    if (c->sid != NULL) {
      idx = sp__session_place(p, c);
      if (idx == SP__PLACE_DONE) {
        it = p->queue.head;
        continue;
      }
      if (idx < 0 && sp__session_waits_for_worker(c)) {
        it = it->next;
        continue;
      }
    } else {
      idx = sp__sched_pick(p->loads, (size_t)p->cfg->pool_size, &p->cursor, sp__call_depth_cap(c));
    }
    if (idx < 0) return;
    sp__fifo_remove(&p->queue, it);
    /* Scaling's measure; calls queued before the last growth waited for it. */
    int64_t start_ms = (int64_t)(c->start_ns / 1000000u);
    int64_t waited = sp__now_ms() - start_ms;
    if (start_ms >= p->last_scale_up_ms && waited > p->wait_window_ms) p->wait_window_ms = waited;
    dispatch(p, idx, c);
    it = p->queue.head;
  }
}

void sp__pool_fail_queued(sp__pool_t *p, int code, const char *why) {
  sp__fifo_t *q = &p->queue;
  while (q->len > 0) {
    sp__call_t *c = SP__CALL_OF(q->head);
    sp_error_t e;
    sp__error_set(&e, code, "pool '%s': %s", p->cfg->name, why);
    sp__call_finish(c, code, NULL, 0, &e);
  }
}

void sp__pool_worker_ready(sp__pool_t *p, sp__worker_t *w) {
  sp__position_t *s = w->pos;
  if (s == NULL) return;
  s->crashes_in_row = 0;
  p->loads[s->index] = &w->load;
  sp__log(SP__LOG_DEBUG, "[%s/%s pid %d] ready (Python %s, GIL %s, %d threads)", p->cfg->name,
          w->name, w->pid, w->python_version, w->gil_enabled ? "enabled" : "disabled",
          w->load.capacity);
  if (!p->ready_once) {
    sp_error_t err;
    if (spawn_batch(p, &err) != 0) {
      sp__rt_startup_event(p->rt, &err);
      return;
    }
    for (int i = 0; i < p->cfg->min_workers; i++)
      if (p->loads[i] == NULL) return;
    p->ready_once = 1;
    sp__rt_startup_event(p->rt, NULL);
  }
  sp__pool_pump(p);
}

void sp__pool_worker_exited(sp__pool_t *p, sp__worker_t *w, const sp_error_t *why) {
  sp__position_t *s = w->pos;
  sp_runtime_t *rt = p->rt;
  if (w->retiring) {
    for (sp__worker_t **pp = &p->retiring; *pp; pp = &(*pp)->retire_next) {
      if (*pp == w) {
        *pp = w->retire_next;
        break;
      }
    }
    w->retiring = 0;
    return;
  }
  if (s == NULL) return;
  w->pos = NULL;
  s->worker = NULL;
  p->loads[s->index] = NULL;
  if (rt->phase == SP__PHASE_STARTING) {
    sp__rt_startup_event(rt, why);
    return;
  }
  if (rt->phase != SP__PHASE_RUNNING && rt->phase != SP__PHASE_DRAINING) return;
  char gone[64];
  if (w->term_signal > 0) snprintf(gone, sizeof(gone), "was killed by signal %d", w->term_signal);
  else snprintf(gone, sizeof(gone), "exited with code %lld", (long long)w->exit_status);
  sp__sessions_worker_gone(p, w, gone);
  p->stats.crashes++;
  int64_t now = sp__now_ms();
  /* A crash loop is workers dying soon after they start (a broken adapter, a
   * tool that kills every worker it reaches). A worker that served for a while
   * and was then killed from outside is replaced, and says nothing about the
   * next one. */
  int soon = w->ready_ms == 0 || now - w->ready_ms < stay_up_ms(p);
  if (soon) p->crash_times[p->crash_next++ % (unsigned)p->cfg->crash_loop_max] = now;
  int recent = 0;
  for (int i = 0; i < p->cfg->crash_loop_max; i++)
    if (p->crash_times[i] != 0 && now - p->crash_times[i] <= p->cfg->crash_loop_window_ms) recent++;
  if (!p->degraded && recent >= p->cfg->crash_loop_max) {
    p->degraded = 1;
    snprintf(p->degraded_reason, sizeof(p->degraded_reason),
             "%d workers died less than %lld ms after starting, within %lld ms; last: %.340s",
             recent, (long long)stay_up_ms(p), (long long)p->cfg->crash_loop_window_ms,
             why->message);
    sp__log(SP__LOG_ERROR, "pool '%s' is degraded: %s", p->cfg->name, p->degraded_reason);
    if (!has_ready_worker(p)) sp__pool_fail_queued(p, SP_EDEGRADED, p->degraded_reason);
  }
  int64_t delay = schedule_respawn(s);
  sp__log(SP__LOG_WARN, "%s; replacing it in %lld ms", why->message, (long long)delay);
}

static void respawn_cb(uv_timer_t *t) {
  sp__position_t *s = t->data;
  sp__pool_t *p = s->pool;
  if (p->rt->phase != SP__PHASE_RUNNING && p->rt->phase != SP__PHASE_DRAINING) return;
  if (!s->active) return; /* scaled down meanwhile */
  sp_error_t err;
  if (spawn_at(p, s, &err) != 0) {
    int64_t delay = schedule_respawn(s);
    sp__log(SP__LOG_ERROR, "%s; retrying in %lld ms", err.message, (long long)delay);
    return;
  }
  p->stats.restarts++;
}

const char *sp__recycle_reason_name(sp__recycle_reason_t r) {
  switch (r) {
    case SP__RECYCLE_MAX_REQUESTS: return "max_requests";
    case SP__RECYCLE_TTL: return "ttl";
    case SP__RECYCLE_RSS: return "max_rss";
    case SP__RECYCLE_CANCEL_GRACE: return "cancel_grace";
    default: return "unknown";
  }
}

/* w leaves its position: it gets no new calls and drains like a stopping worker
 * (SHUTDOWN once its last call is answered). */
static void retire(sp__pool_t *p, sp__worker_t *w, const char *why) {
  sp__sessions_worker_gone(p, w, why);
  sp__position_t *s = w->pos;
  w->pos = NULL;
  s->worker = NULL;
  p->loads[s->index] = NULL;
  w->state = SP__W_DRAINING;
  w->load.ready = 0;
  w->drain_started_ms = sp__now_ms();
  w->retiring = 1;
  w->retire_next = p->retiring;
  p->retiring = w;
}

void sp__pool_recycle(sp__pool_t *p, sp__worker_t *w, sp__recycle_reason_t reason) {
  sp__position_t *s = w->pos;
  if (s == NULL || w->state != SP__W_READY || p->rt->phase != SP__PHASE_RUNNING) return;
  p->stats.recycles[reason]++;
  sp__log(SP__LOG_INFO, "[%s/%s pid %d] recycling (%s) after %llu requests; %d calls to drain",
          p->cfg->name, w->name, w->pid, sp__recycle_reason_name(reason),
          (unsigned long long)w->requests, w->load.inflight);
  /* Detach first so the replacement takes the position while w drains. */
  char why[64];
  snprintf(why, sizeof(why), "was recycled (%s)", sp__recycle_reason_name(reason));
  retire(p, w, why);
  sp_error_t err;
  if (spawn_at(p, s, &err) != 0) {
    int64_t delay = schedule_respawn(s);
    sp__log(SP__LOG_ERROR, "%s; retrying in %lld ms", err.message, (long long)delay);
  }
  if (w->load.inflight == 0) sp__worker_shutdown(w, p->cfg->drain_timeout_ms);
}

int sp__pool_grow(sp__pool_t *p, sp_error_t *err) {
  for (int i = 0; i < p->cfg->pool_size; i++) {
    sp__position_t *s = &p->positions[i];
    if (s->active || s->worker != NULL) continue;
    s->active = 1;
    s->crashes_in_row = 0;
    s->busy_ms = sp__now_ms();
    p->desired++;
    int rc = spawn_at(p, s, err);
    if (rc != 0) schedule_respawn(s);
    return rc;
  }
  return sp__error_set(err, SP_EINVAL, "pool '%s' has no free position", p->cfg->name);
}

void sp__pool_shrink(sp__pool_t *p, sp__worker_t *w) {
  sp__position_t *s = w->pos;
  if (s == NULL || w->state != SP__W_READY) return;
  s->active = 0;
  uv_timer_stop(&s->respawn);
  p->desired--;
  retire(p, w, "left the pool (scaling down)");
  if (w->load.inflight == 0) sp__worker_shutdown(w, p->cfg->drain_timeout_ms);
}

/* worker_max_rss_mb is looked at every RSS_IDLE_PERIOD_MS, and while calls run
 * every RSS_BUSY_PERIOD_MS (a call can grow by a GiB in a second); a worker
 * still over it RSS_GRACE_MS after its recycle began, with calls running, is
 * killed: the recycle waits for the very calls that make it grow. */
#define RSS_IDLE_PERIOD_MS 500
#define RSS_BUSY_PERIOD_MS 100
#define RSS_GRACE_MS 500

/* Enforces worker_max_rss_mb on w, busy or draining. 1 if w was killed. */
static int enforce_rss(sp__pool_t *p, sp__worker_t *w, int64_t now) {
  const sp__pool_config_t *c = p->cfg;
  int busy = w->load.inflight > 0;
  if (c->worker_max_rss_mb <= 0 ||
      now - w->rss_checked_ms < (busy ? RSS_BUSY_PERIOD_MS : RSS_IDLE_PERIOD_MS))
    return 0;
  w->rss_checked_ms = now;
  /* What the worker owns (USS): pages it shares with its fork server and the
   * other workers, a preloaded model's above all, would not come back if it
   * were replaced, so they do not count against it. RSS where USS is unknown. */
  sp__procmem_t m;
  sp__procmem_read(w->pid, &m);
  long kb = m.uss_kb >= 0 ? m.uss_kb : m.rss_kb;
  if (kb <= c->worker_max_rss_mb * 1024) {
    w->rss_over_ms = 0;
    return 0;
  }
  if (w->rss_over_ms == 0) {
    w->rss_over_ms = now;
    sp__log(SP__LOG_WARN,
            "[%s/%s pid %d] USS (private memory) %ld MiB over worker_max_rss_mb %lld (RSS %ld "
            "MiB)",
            c->name, w->name, w->pid, kb / 1024, (long long)c->worker_max_rss_mb,
            m.rss_kb / 1024);
  }
  if (busy && now - w->rss_over_ms >= RSS_GRACE_MS) {
    snprintf(w->exit_note, sizeof(w->exit_note),
             "was killed: its USS (private memory) of %ld MiB exceeded worker_max_rss_mb "
             "(%lld MiB) while calls ran",
             kb / 1024, (long long)c->worker_max_rss_mb);
    sp__log(SP__LOG_ERROR, "[%s/%s pid %d] %s", c->name, w->name, w->pid, w->exit_note);
    if (!w->retiring) p->stats.recycles[SP__RECYCLE_RSS]++;
    sp__worker_kill(w, "its USS (private memory) exceeded worker_max_rss_mb");
    return 1;
  }
  /* Young workers are spared a recycle (min_lifetime), not the limit. */
  if (w->state == SP__W_READY && (busy || now - w->ready_ms >= c->min_lifetime_ms))
    sp__pool_recycle(p, w, SP__RECYCLE_RSS);
  return 0;
}

/* Checks one live worker: liveness, lifetime limits, calls stuck past cancel_grace. */
static void maintain_worker(sp__pool_t *p, sp__worker_t *w, int64_t now) {
  const sp__pool_config_t *c = p->cfg;
  if (w->exited || w->state == SP__W_STARTING || w->state == SP__W_STOPPING) return;
  if (c->ping_interval_ms > 0) {
    if (now - w->last_pong_ms > c->ping_interval_ms * c->ping_misses) {
      p->stats.ping_kills++;
      sp__log(SP__LOG_ERROR, "[%s/%s pid %d] missed %d pings; killing it", c->name, w->name, w->pid,
              c->ping_misses);
      sp__worker_kill(w, "it stopped answering pings");
      return;
    }
    if (now - w->last_ping_ms >= c->ping_interval_ms) sp__worker_ping(w, now);
  }
  if (enforce_rss(p, w, now)) return;
  if (w->state == SP__W_DRAINING) {
    if (now - w->drain_started_ms > c->drain_timeout_ms)
      sp__worker_kill(w, "it did not finish draining within drain_timeout");
    return;
  }
  for (int i = 0; i < w->nslots; i++) {
    if (w->slot_abandoned_ms[i] == 0 || now - w->slot_abandoned_ms[i] < c->cancel_grace_ms) continue;
    if (w->load.capacity == 1) {
      /* Nothing else runs on this worker: replace it now. */
      p->stats.recycles[SP__RECYCLE_CANCEL_GRACE]++;
      sp__worker_kill(w, "a cancelled call was still running after cancel_grace");
    } else {
      sp__pool_recycle(p, w, SP__RECYCLE_CANCEL_GRACE);
    }
    return;
  }
  int64_t age = now - w->ready_ms;
  if (age < c->min_lifetime_ms) return;
  if (w->ttl_ms > 0 && now - w->spawned_ms >= w->ttl_ms) {
    sp__pool_recycle(p, w, SP__RECYCLE_TTL);
    return;
  }
}

void sp__pool_maintain(sp__pool_t *p, int64_t now) {
  for (int i = 0; i < p->cfg->pool_size; i++) {
    sp__worker_t *w = p->positions[i].worker;
    if (w == NULL) continue;
    if (w->load.inflight > 0) p->positions[i].busy_ms = now;
    maintain_worker(p, w, now);
  }
  sp__autoscale_tick(p, now);
  sp__sessions_tick(p, now);
  for (sp__worker_t *w = p->retiring, *next; w; w = next) {
    next = w->retire_next;
    maintain_worker(p, w, now);
  }
  if (p->degraded) {
    /* A worker that stayed up for min_lifetime (at least 1 s) ends the crash loop. */
    int64_t needed = stay_up_ms(p);
    for (int i = 0; i < p->cfg->pool_size; i++) {
      sp__worker_t *w = p->positions[i].worker;
      if (w && w->state == SP__W_READY && now - w->ready_ms >= needed) {
        p->degraded = 0;
        sp__log(SP__LOG_INFO, "pool '%s' recovered: worker %s stayed up", p->cfg->name, w->name);
        break;
      }
    }
  }
}

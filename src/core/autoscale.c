/*
 * autoscale.c - pools that size themselves (pool_size: MIN..MAX).
 *
 * Growing: every maintenance tick (100 ms) looks at how long calls waited for
 * a worker: the longest wait of a call dispatched from the queue since the
 * last tick (among calls submitted after the last growth: older ones were
 * waiting for it), and the age of the oldest call still queued. At
 * scale_up_wait or more the pool adds as many workers as the queue would keep
 * busy (queued calls over threads per worker), at least one, up to the
 * maximum, then waits until they are ready before it looks again. With
 * worker_start: fork they are forks of the fork server, ready in milliseconds.
 *
 * Shrinking: one worker per tick leaves, the last position's first, once it
 * has had no call for scale_down_idle, nothing is queued, and the pool did
 * not grow within that time either. It drains like a recycled worker, so no
 * call fails. The two thresholds are far apart on purpose (a wait of tens of
 * milliseconds against an idle time of seconds): a load that comes and goes
 * faster than the idle time keeps the workers it needed instead of making the
 * pool grow and shrink on every swing.
 */
#include "autoscale.h"

#include "clock.h"
#include "errors.h"
#include "log.h"
#include "runtime.h"
#include "worker.h"

static int starting_workers(const sp__pool_t *p) {
  int n = 0;
  for (int i = 0; i < p->cfg->pool_size; i++) {
    const sp__position_t *s = &p->positions[i];
    if (s->active && (s->worker == NULL || s->worker->state == SP__W_STARTING)) n++;
  }
  return n;
}

static void grow(sp__pool_t *p, int64_t waited, int64_t now) {
  const sp__pool_config_t *c = p->cfg;
  int threads = c->threads_per_worker > 0 ? c->threads_per_worker : 1;
  int add = (int)((p->queue.len + (size_t)threads - 1) / (size_t)threads);
  if (add < 1) add = 1;
  if (add > c->pool_size - p->desired) add = c->pool_size - p->desired;
  if (add <= 0) return;
  int from = p->desired;
  for (int i = 0; i < add; i++) {
    sp_error_t err;
    if (sp__pool_grow(p, &err) != 0) {
      sp__log(SP__LOG_ERROR, "pool '%s': cannot add a worker: %s", c->name, err.message);
      sp_error_free(&err);
      break;
    }
    p->scale_ups++;
  }
  p->last_scale_up_ms = now;
  sp__log(SP__LOG_INFO,
          "pool '%s': scaling up %d -> %d workers (a call waited %lld ms for a worker, "
          "scale_up_wait %lld ms; %zu queued)",
          c->name, from, p->desired, (long long)waited, (long long)c->scale_up_wait_ms,
          p->queue.len);
}

static void shrink(sp__pool_t *p, int64_t now) {
  const sp__pool_config_t *c = p->cfg;
  if (p->queue.len > 0 || now - p->last_scale_up_ms < c->scale_down_idle_ms) return;
  for (int i = c->pool_size - 1; i >= 0; i--) {
    sp__position_t *s = &p->positions[i];
    sp__worker_t *w = s->worker;
    if (!s->active || w == NULL || w->state != SP__W_READY || w->load.inflight > 0) continue;
    if (now - s->busy_ms < c->scale_down_idle_ms) continue;
    sp__log(SP__LOG_INFO,
            "pool '%s': scaling down %d -> %d workers ([%s pid %d] had no call for %lld ms, "
            "scale_down_idle %lld ms)",
            c->name, p->desired, p->desired - 1, w->name, w->pid, (long long)(now - s->busy_ms),
            (long long)c->scale_down_idle_ms);
    sp__pool_shrink(p, w);
    p->scale_downs++;
    return;
  }
}

void sp__autoscale_tick(sp__pool_t *p, int64_t now) {
  const sp__pool_config_t *c = p->cfg;
  int64_t waited = p->wait_window_ms;
  p->wait_window_ms = 0;
  /* Workers still starting are capacity on its way: wait for them first. */
  if (c->min_workers == c->pool_size || !p->ready_once || p->degraded ||
      p->rt->phase != SP__PHASE_RUNNING || starting_workers(p) > 0)
    return;
  if (p->queue.len > 0) {
    int64_t oldest = (int64_t)((sp__now_ns() - SP__CALL_OF(p->queue.head)->start_ns) / 1000000u);
    if (oldest > waited) waited = oldest;
  }
  if (waited >= c->scale_up_wait_ms && p->desired < c->pool_size) {
    grow(p, waited, now);
    return;
  }
  if (p->desired > c->min_workers) shrink(p, now);
}

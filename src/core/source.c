/*
 * source.c - an application's event source served by the runtime's loop thread
 * (sp_runtime_attach_source): a readable fd, a timeout and kicks from other
 * threads all end in one run() on the loop thread. `snakepit serve` puts its
 * HTTP server here, so a request and the call it makes never change threads.
 */
#include <string.h>

#include "errors.h"
#include "log.h"
#include "runtime.h"
#include "source.h"

static void run_source(sp_runtime_t *rt);

static void on_readable(uv_poll_t *h, int status, int events) {
  (void)status;
  (void)events;
  run_source(h->data);
}

static void on_timeout(uv_timer_t *t) { run_source(t->data); }

/* Runs the source and re-arms its timeout. */
static void run_source(sp_runtime_t *rt) {
  if (!rt->source_on) return;
  rt->in_source = 1;
  rt->source.run(rt->source.ud);
  rt->in_source = 0;
  /* Calls the source made go out in this turn, not the next. */
  sp__rt_settle(rt);
  if (!rt->source_on) return;
  long long ms = rt->source.timeout_ms ? rt->source.timeout_ms(rt->source.ud) : -1;
  if (ms < 0) uv_timer_stop(&rt->source_timer);
  else uv_timer_start(&rt->source_timer, on_timeout, (uint64_t)ms, 0);
}

/* End of every loop turn: run the source if it was kicked during the turn. */
static void on_check(uv_check_t *h) {
  sp_runtime_t *rt = h->data;
  if (atomic_exchange_explicit(&rt->source_kicked, 0, memory_order_acq_rel)) run_source(rt);
}

void sp__source_attach(sp_runtime_t *rt, const sp_loop_source_t *src) {
  rt->source = *src;
  uv_poll_init(&rt->loop, &rt->source_poll, src->fd);
  uv_timer_init(&rt->loop, &rt->source_timer);
  uv_check_init(&rt->loop, &rt->source_check);
  rt->source_poll.data = rt->source_timer.data = rt->source_check.data = rt;
  rt->source_on = 1;
  uv_poll_start(&rt->source_poll, UV_READABLE, on_readable);
  uv_check_start(&rt->source_check, on_check);
  run_source(rt); /* it may have work already, and it arms its first timeout */
}

static void on_closed(uv_handle_t *h) { (void)h; }

void sp__source_detach(sp_runtime_t *rt) {
  if (!rt->source_on) return;
  rt->source_on = 0;
  uv_close((uv_handle_t *)&rt->source_poll, on_closed);
  uv_close((uv_handle_t *)&rt->source_timer, on_closed);
  uv_close((uv_handle_t *)&rt->source_check, on_closed);
  memset(&rt->source, 0, sizeof(rt->source));
  sp__rt_source_gone(rt);
}

/* Sends ATTACH or DETACH to the loop thread and waits until it was handled. */
static void source_ctl(sp_runtime_t *rt, int kind, const sp_loop_source_t *src) {
  sp__ctl_t ctl;
  memset(&ctl, 0, sizeof(ctl));
  ctl.msg.kind = kind;
  ctl.src = src;
  if (sp__rt_post(rt, &ctl.msg) == 0) sp__wait_word(&ctl.done); /* else: stopped, nothing to do */
}

int sp_runtime_attach_source(sp_runtime_t *rt, const sp_loop_source_t *src, sp_error_t *err) {
  if (rt == NULL || src == NULL || src->run == NULL || src->fd < 0)
    return sp__error_set(err, SP_EINVAL, "sp_runtime_attach_source: rt, src, src->run and src->fd");
  if (sp__rt_on_loop_thread(rt))
    return sp__error_set(err, SP_EBADTHREAD, "sp_runtime_attach_source called on the loop thread");
  if (atomic_exchange(&rt->source_attached, 1))
    return sp__error_set(err, SP_EINVAL, "this runtime already has an event source");
  source_ctl(rt, SP__MSG_ATTACH, src);
  sp__error_clear(err);
  return 0;
}

void sp_runtime_kick_source(sp_runtime_t *rt) {
  if (rt == NULL || !atomic_load(&rt->source_attached)) return;
  if (atomic_exchange_explicit(&rt->source_kicked, 1, memory_order_acq_rel)) return;
  /* On the loop thread the check at the end of this turn sees the flag. */
  if (!sp__rt_on_loop_thread(rt)) uv_async_send(&rt->wakeup);
}

int sp_runtime_detach_source(sp_runtime_t *rt) {
  if (rt == NULL) return SP_EINVAL;
  if (sp__rt_on_loop_thread(rt)) return SP_EBADTHREAD;
  if (!atomic_exchange(&rt->source_attached, 0)) return 0;
  source_ctl(rt, SP__MSG_DETACH, NULL);
  return 0;
}

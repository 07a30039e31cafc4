/*
 * stream.c - streaming calls: sp_execute_stream() and sp_cancel(), delivery of
 * CHUNK frames to the caller's chunk callback with credit-based flow control
 * (protocol.h: SP__STREAM_WINDOW), and cancellation on the loop thread. A
 * stream is a call whose CALL frame has flag STREAM; its RESULT or ERROR ends
 * it through the call's ordinary completion (call.c).
 */
#include <stdlib.h>
#include <string.h>

#include "call.h"
#include "errors.h"
#include "log.h"
#include "pool.h"
#include "runtime.h"
#include "stream.h"
#include "remote.h"
#include "worker.h"

/* A request about stream `id` (SP__MSG_CANCEL, SP__MSG_RESUME), posted from any thread. */
typedef struct sp__stream_msg_s {
  sp__msg_t msg;
  uint64_t id;
} sp__stream_msg_t;

static int post_stream_msg(sp_runtime_t *rt, int kind, uint64_t call_id) {
  if (rt == NULL || call_id == 0) return SP_EINVAL;
  sp__stream_msg_t *m = calloc(1, sizeof(*m));
  if (m == NULL) return SP_ENOMEM;
  m->msg.kind = kind;
  m->id = call_id;
  if (sp__rt_post(rt, &m->msg) != 0) {
    free(m);
    return SP_ESTOPPED;
  }
  return 0;
}

/* Grants the worker credit for the chunks c's consumer took since the last grant. */
static void grant(sp__call_t *c) {
  sp__worker_t *w = c->worker;
  if (w == NULL || c->unacked == 0) return;
  if (sp__buf_append_credit(&w->wbuf, w->slot_ids[c->slot], c->unacked) == 0) {
    c->unacked = 0;
    sp__rt_mark_dirty(w->pool->rt, w);
  }
}

int sp_execute_stream(sp_runtime_t *rt, const char *pool, const char *tool, const char *args_json,
                      const sp_call_opts_t *opts, sp_chunk_cb on_chunk, sp_done_cb on_done,
                      void *userdata, uint64_t *call_id, sp_error_t *err) {
  sp__error_clear(err); /* accepted calls leave it holding no error */
  if (on_chunk == NULL || on_done == NULL)
    return sp__error_set(err, SP_EINVAL, "sp_execute_stream: on_chunk and on_done must not be NULL");
  sp__remote_pool_t *rp = rt ? sp__remote_find(rt->remote, pool) : NULL;
  if (rp != NULL)
    return sp__remote_execute_stream(rt->remote, rp, tool, args_json, opts, on_chunk, on_done,
                                     userdata, call_id, err);
  sp__call_t *c = NULL;
  int rc = sp__rt_make_call(rt, pool, tool, args_json, opts, &c, err);
  if (rc != 0) return rc;
  c->frame[3] |= SP__FLAG_STREAM; /* the header's flags byte */
  c->idempotent = 0; /* delivered chunks cannot be taken back: never retried */
  c->chunk_cb = on_chunk;
  c->cb = on_done;
  c->ud = userdata;
  c->res = &c->own;
  c->call_id = atomic_fetch_add_explicit(&rt->next_call_id, 1, memory_order_relaxed) + 1;
  if (call_id != NULL) *call_id = c->call_id;
  if (rt->in_source && sp__rt_on_loop_thread(rt)) {
    sp__rt_accept_call(rt, c);
  } else if (sp__rt_post(rt, &c->msg) != 0) {
    free(c);
    return sp__error_set(err, SP_ESTOPPED, "the runtime is stopping");
  }
  return 0;
}

int sp_cancel(sp_runtime_t *rt, uint64_t call_id) {
  if (rt != NULL && sp__remote_cancel(rt->remote, call_id) == 0) return 0;
  return post_stream_msg(rt, SP__MSG_CANCEL, call_id);
}

int sp_stream_resume(sp_runtime_t *rt, uint64_t call_id) {
  if (rt != NULL && sp__remote_resume(rt->remote, call_id) == 0) return 0;
  return post_stream_msg(rt, SP__MSG_RESUME, call_id);
}

void sp__stream_track(sp_runtime_t *rt, sp__call_t *c) {
  c->sprev = NULL;
  c->snext = rt->streams;
  if (rt->streams != NULL) rt->streams->sprev = c;
  rt->streams = c;
  c->pool->streams_active++;
}

void sp__stream_forget(sp_runtime_t *rt, sp__call_t *c) {
  if (c->sprev != NULL) c->sprev->snext = c->snext;
  else if (rt->streams == c) rt->streams = c->snext;
  else return; /* never tracked */
  if (c->snext != NULL) c->snext->sprev = c->sprev;
  c->snext = c->sprev = NULL;
  c->pool->streams_active--;
}

void sp__stream_msg(sp_runtime_t *rt, sp__msg_t *m) {
  uint64_t id = ((sp__stream_msg_t *)m)->id;
  int kind = m->kind;
  free(m);
  for (sp__call_t *c = rt->streams; c != NULL; c = c->snext) {
    if (c->call_id != id) continue;
    if (kind == SP__MSG_CANCEL) {
      sp__call_cancel(c, "by the caller");
    } else if (c->paused) {
      c->paused = 0;
      grant(c);
    }
    return;
  }
  /* Finished already (or never existed): nothing to do. */
}

int sp__stream_on_chunk(sp__worker_t *w, const sp__frame_t *f) {
  uint32_t slot = (uint32_t)(f->id & 0xffff);
  if (slot >= (uint32_t)w->nslots || w->slot_ids[slot] != f->id) {
    sp__log(SP__LOG_WARN, "[%s/%s] chunk for unknown request %llu ignored", w->pool->cfg->name,
            w->name, (unsigned long long)f->id);
    return 0;
  }
  sp__call_t *c = w->slot_calls[slot];
  if (c == NULL) return 0; /* abandoned (cancelled, timed out): the worker is told */
  if (c->chunk_cb == NULL) {
    sp__log(SP__LOG_ERROR, "[%s/%s] chunk for a call that does not stream; killing the worker",
            w->pool->cfg->name, w->name);
    sp__worker_kill(w, "it sent a CHUNK frame for a call that does not stream");
    return -1;
  }
  c->chunks++;
  c->unacked++;
  w->pool->chunks_sent++;
  int rc = c->chunk_cb((const char *)f->body, f->length, c->ud);
  if (rc == SP_CHUNK_PAUSE) {
    c->paused = 1; /* no credit until sp_stream_resume() */
  } else if (rc != SP_CHUNK_CONTINUE) {
    sp__call_cancel(c, "by its chunk callback");
    return 0;
  }
  if (!c->paused && c->unacked >= SP__STREAM_CREDIT_EVERY) grant(c);
  return 0;
}

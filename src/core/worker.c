/*
 * worker.c - manager side of one worker process: spawn over a socketpair, frame
 * I/O with batched writes, output forwarding with a tail of recent lines, and
 * exit handling that fails the worker's calls at once with the exit reason.
 */
#include "worker.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "errors.h"
#include "forkserver.h"
#include "log.h"
#include "spawn.h"

static void on_handle_closed(uv_handle_t *h);
static void proc_exited(uv_process_t *p, int64_t status, int sig);
static void finalize(sp__worker_t *w);
static void finalize_timer(uv_timer_t *t);

const char *sp__worker_state_name(sp__worker_state_t s) {
  switch (s) {
    case SP__W_STARTING: return "starting";
    case SP__W_READY: return "ready";
    case SP__W_DRAINING: return "draining";
    case SP__W_STOPPING: return "stopping";
    case SP__W_DEAD: return "dead";
  }
  return "unknown";
}

/* ---- output forwarding ------------------------------------------------- */

static void push_tail(sp__worker_t *w, const char *line, size_t len) {
  char *copy = malloc(len + 1);
  if (copy == NULL) return;
  memcpy(copy, line, len);
  copy[len] = '\0';
  unsigned i = w->tail_next % SP__TAIL_LINES;
  free(w->tail[i]);
  w->tail[i] = copy;
  w->tail_next++;
}

static void emit_line(sp__worker_t *w, const char *line, size_t len) {
  sp__log(SP__LOG_INFO, "[%s/%s pid %d] %.*s", w->pool->cfg->name, w->name, w->pid, (int)len,
          line);
  push_tail(w, line, len);
}

void sp__worker_tail(const sp__worker_t *w, char *buf, size_t cap) {
  size_t used = 0;
  if (cap == 0) return;
  buf[0] = '\0';
  unsigned n = w->tail_next < SP__TAIL_LINES ? w->tail_next : SP__TAIL_LINES;
  for (unsigned k = 0; k < n; k++) {
    const char *line = w->tail[(w->tail_next - n + k) % SP__TAIL_LINES];
    if (line == NULL) continue;
    int m = snprintf(buf + used, cap - used, "%s%s", used ? "\n" : "", line);
    if (m < 0 || (size_t)m >= cap - used) break;
    used += (size_t)m;
  }
}

static void out_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  sp__worker_t *w = h->data;
  (void)suggested;
  buf->base = w->lines.buf + w->lines.len;
  buf->len = sizeof(w->lines.buf) - w->lines.len;
}

static void emit_cb(void *ctx, const char *line, size_t len) { emit_line(ctx, line, len); }

static void out_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
  sp__worker_t *w = s->data;
  (void)buf;
  sp__linebuf_feed(&w->lines, n < 0 ? -1 : (long)n, emit_cb, w);
  if (n < 0) {
    uv_read_stop(s);
    w->out_eof = 1;
    if (w->exited && !w->finalized) finalize(w);
  }
}

/* ---- writing ------------------------------------------------------------ */

static void on_write(uv_write_t *req, int status) {
  sp__worker_t *w = req->data;
  w->writing = 0;
  w->wflight.len = 0;
  if (status < 0 && status != UV_ECANCELED)
    sp__log(SP__LOG_DEBUG, "[%s/%s] write failed: %s", w->pool->cfg->name, w->name,
            uv_strerror(status));
  if (status == 0) sp__worker_flush(w);
}

void sp__worker_flush(sp__worker_t *w) {
  if (w->writing || w->wbuf.len == 0) return;
  if (w->exited || uv_is_closing((uv_handle_t *)&w->sock)) {
    w->wbuf.len = 0; /* nobody will read it; the exit path fails the calls */
    return;
  }
  uv_buf_t b = uv_buf_init((char *)w->wbuf.data, (unsigned)w->wbuf.len);
  int n = uv_try_write((uv_stream_t *)&w->sock, &b, 1);
  if (n == (int)w->wbuf.len) {
    w->wbuf.len = 0;
    return;
  }
  if (n < 0 && n != UV_EAGAIN) {
    w->wbuf.len = 0;
    return;
  }
  if (n > 0) sp__buf_consume(&w->wbuf, (size_t)n);
  /* The rest goes through uv_write, which owns its bytes until on_write. */
  sp__buf_t t = w->wflight;
  w->wflight = w->wbuf;
  w->wbuf = t;
  w->wbuf.len = 0;
  w->writing = 1;
  w->wreq.data = w;
  b = uv_buf_init((char *)w->wflight.data, (unsigned)w->wflight.len);
  if (uv_write(&w->wreq, (uv_stream_t *)&w->sock, &b, 1, on_write) != 0) {
    w->writing = 0;
    w->wflight.len = 0;
  }
}

static void send_frame(sp__worker_t *w, unsigned type, uint64_t id, const void *body,
                       size_t len) {
  if (sp__buf_append_frame(&w->wbuf, type, 0, id, body, len) == 0)
    sp__rt_mark_dirty(w->pool->rt, w);
}

/* ---- calls -------------------------------------------------------------- */

static void release_slot(sp__worker_t *w, uint32_t slot) {
  w->slot_ids[slot] = 0;
  w->slot_abandoned_ms[slot] = 0;
  w->slot_calls[slot] = NULL;
  w->free_list[w->free_count++] = slot;
  w->slots.inflight--;
}

void sp__worker_dispatch(sp__worker_t *w, sp__call_t *c) {
  uint32_t slot = w->free_list[--w->free_count];
  uint64_t id = (++w->seq << 16) | slot;
  w->slot_ids[slot] = id;
  w->slot_calls[slot] = c;
  w->slots.inflight++;
  w->requests++;
  uint64_t now_ns = sp__now_ns();
  w->slot_sent_ns[slot] = now_ns;
  c->worker = w;
  c->slot = slot;
  c->state = SP__CALL_RUNNING;
  sp__frame_set_id(c->frame, id);
  int64_t left = c->deadline_ms - (int64_t)(now_ns / 1000000u); /* sp__now_ms() */
  uint32_t t = left < 1 ? 1u : left > UINT32_MAX ? UINT32_MAX : (uint32_t)left;
  for (int i = 0; i < 4; i++) c->frame[SP__FRAME_HEADER_SIZE + i] = (uint8_t)(t >> (8 * i));
  if (sp__buf_append(&w->wbuf, c->frame, c->frame_len) != 0) {
    /* Undo the slot and fail the call: nothing was sent. */
    release_slot(w, slot);
    c->worker = NULL;
    sp_error_t e;
    sp__error_set(&e, SP_ENOMEM, "out of memory queueing the call for worker %s", w->name);
    sp__call_finish(c, SP_ENOMEM, NULL, 0, &e);
    return;
  }
  sp__rt_mark_dirty(w->pool->rt, w);
}

void sp__worker_abandon(sp__worker_t *w, sp__call_t *c) {
  uint32_t slot = c->slot;
  uint64_t id = w->slot_ids[slot];
  w->slot_calls[slot] = NULL; /* the slot stays busy until the worker answers */
  w->slot_abandoned_ms[slot] = sp__now_ms();
  c->worker = NULL;
  send_frame(w, SP__FRAME_CANCEL, id, NULL, 0);
}

/* Returns the call owning request id (NULL if it was abandoned) and frees its slot. */
static int take_slot(sp__worker_t *w, uint64_t id, sp__call_t **call) {
  uint32_t slot = (uint32_t)(id & 0xffff);
  if (slot >= (uint32_t)w->nslots || w->slot_ids[slot] != id) return -1;
  *call = w->slot_calls[slot];
  uint64_t now = sp__now_ns();
  uint64_t from = w->slot_sent_ns[slot] > w->last_done_ns ? w->slot_sent_ns[slot] : w->last_done_ns;
  uint64_t gap = now > from ? now - from : 0;
  w->gap_ewma_ns = sp__sched_gap_update(w->gap_ewma_ns, gap);
  w->last_done_ns = now;
  sp__tool_stats_t *ts = *call ? sp__call_tool_stats(*call) : NULL;
  if (ts != NULL) ts->gap_ewma_ns = sp__sched_gap_update(ts->gap_ewma_ns, gap);
  w->slots.depth = sp__sched_depth(w->gap_ewma_ns, w->pool->cfg->pipeline_depth);
  release_slot(w, slot);
  return 0;
}

static void python_error(sp_error_t *e, const sp__call_t *c, const char *json, size_t len) {
  json_error_t jerr;
  json_t *o = json_loadb(json, len, 0, &jerr);
  const char *type = o ? json_string_value(json_object_get(o, "type")) : NULL;
  const char *msg = o ? json_string_value(json_object_get(o, "message")) : NULL;
  const char *tb = o ? json_string_value(json_object_get(o, "traceback")) : NULL;
  int tool_len;
  const char *tool = sp__call_tool(c, &tool_len);
  sp__error_set(e, SP_EPYTHON, "tool '%.*s' in pool '%s' raised %s: %s", tool_len, tool,
                c->pool->cfg->name, type ? type : "an exception", msg ? msg : "");
  snprintf(e->python_type, sizeof(e->python_type), "%s", type ? type : "");
  if (tb) sp__copy_tail(e->traceback, sizeof(e->traceback), tb, strlen(tb));
  json_decref(o);
}

static void on_result(sp__worker_t *w, const sp__frame_t *f) {
  sp__call_t *c = NULL;
  if (take_slot(w, f->id, &c) != 0) {
    sp__log(SP__LOG_WARN, "[%s/%s] reply for unknown request %llu ignored", w->pool->cfg->name,
            w->name, (unsigned long long)f->id);
    return;
  }
  if (c != NULL) {
    c->worker = NULL;
    if (f->type == SP__FRAME_RESULT) {
      sp__call_finish(c, 0, (const char *)f->body, f->length, NULL);
    } else {
      sp_error_t e;
      int kind = f->length > 0 ? f->body[0] : 0;
      const char *text = f->length > 0 ? (const char *)f->body + 1 : "";
      int tlen = f->length > 0 ? (int)f->length - 1 : 0;
      if (kind == SP__ERRKIND_PYTHON) {
        python_error(&e, c, text, (size_t)tlen);
      } else if (kind == SP__ERRKIND_VALIDATION) {
        int code = tlen > 13 && memcmp(text, "unknown tool ", 13) == 0 ? SP_ENOTOOL : SP_EBADARGS;
        sp__error_set(&e, code, "%.*s", tlen, text);
      } else {
        int code = tlen > 10 && memcmp(text, "result of ", 10) == 0 ? SP_ETOOLARGE : SP_EPROTOCOL;
        sp__error_set(&e, code, "worker %s: %.*s", w->name, tlen, text);
      }
      sp__call_finish(c, e.code, NULL, 0, &e);
    }
  }
  if (w->state == SP__W_DRAINING && w->slots.inflight == 0) {
    int64_t left = w->pool->cfg->drain_timeout_ms - (sp__now_ms() - w->drain_started_ms);
    sp__worker_shutdown(w, left > 0 ? left : 1);
  }
  sp__pool_pump(w->pool);
}

/* A free-threaded worker runs with the GIL after all: CPython turns it back on
 * when code imports an extension module that does not declare free-threading
 * support, and from then on its threads no longer run Python in parallel. */
static void gil_came_back(sp__worker_t *w, const char *when) {
  w->pool->gil_reenabled++;
  sp__log(SP__LOG_WARN,
          "[%s/%s pid %d] the GIL is enabled again (%s): an extension module without "
          "free-threading support was imported; this worker's threads no longer run Python "
          "in parallel", w->pool->cfg->name, w->name, w->pid, when);
}

static void on_hello(sp__worker_t *w, const sp__frame_t *f) {
  json_error_t jerr;
  json_t *o = json_loadb((const char *)f->body, f->length, 0, &jerr);
  if (o == NULL || !json_is_object(json_object_get(o, "manifest"))) {
    sp__log(SP__LOG_ERROR, "[%s/%s] bad HELLO: %s", w->pool->cfg->name, w->name, jerr.text);
    json_decref(o);
    sp__worker_kill(w, "it sent a malformed HELLO");
    return;
  }
  if (w->pid <= 0) w->pid = (int)json_integer_value(json_object_get(o, "pid")); /* forked */
  const char *ver = json_string_value(json_object_get(o, "python_version"));
  snprintf(w->python_version, sizeof(w->python_version), "%s", ver ? ver : "?");
  w->gil_enabled = json_is_true(json_object_get(o, "gil_enabled"));
  w->free_threaded = json_is_true(json_object_get(o, "free_threaded_build"));
  if (w->free_threaded && w->gil_enabled) gil_came_back(w, "when the adapter loaded");
  w->state = SP__W_READY;
  w->slots.ready = 1;
  w->ready_ms = w->last_pong_ms = w->last_ping_ms = sp__now_ms();
  if (w->pool->tools_json == NULL) {
    json_t *tools = json_object_get(json_object_get(o, "manifest"), "tools");
    size_t n = json_array_size(tools);
    w->pool->tools_json = json_dumps(tools ? tools : json_array(), JSON_COMPACT);
    w->pool->tool_names = calloc(n ? n : 1, sizeof(char *));
    if (w->pool->tool_names != NULL) {
      for (size_t i = 0; i < n; i++) {
        const char *name = json_string_value(json_object_get(json_array_get(tools, i), "name"));
        w->pool->tool_names[w->pool->tool_count++] = strdup(name ? name : "");
      }
    }
    w->pool->tool_stats = calloc(n ? n : 1, sizeof(*w->pool->tool_stats));
    w->pool->python_version = strdup(w->python_version);
    w->pool->gil_enabled = w->gil_enabled;
    w->pool->free_threaded = w->free_threaded;
  }
  json_decref(o);
  sp__pool_worker_ready(w->pool, w);
}

static void on_frame(sp__worker_t *w, const sp__frame_t *f) {
  switch (f->type) {
    case SP__FRAME_HELLO:
      if (w->state == SP__W_STARTING) on_hello(w, f);
      return;
    case SP__FRAME_RESULT:
      on_result(w, f);
      return;
    case SP__FRAME_ERROR:
      if (f->id == 0) {
        /* Worker-level failure (adapter import, protocol): remember it for the exit. */
        free(w->failure);
        size_t n = f->length > 0 ? f->length - 1 : 0;
        w->failure = malloc(n + 2);
        if (w->failure) {
          w->failure[0] = f->length > 0 ? (char)f->body[0] : 0;
          memcpy(w->failure + 1, f->body + (f->length > 0), n);
          w->failure[n + 1] = '\0';
        }
        return;
      }
      on_result(w, f);
      return;
    case SP__FRAME_PONG:
      w->last_pong_ms = sp__now_ms();
      if (f->length >= 24) {
        uint64_t a = 0, b = 0;
        for (int i = 7; i >= 0; i--) {
          a = a << 8 | f->body[8 + i];
          b = b << 8 | f->body[16 + i];
        }
        w->attach_wait_ns = a;
        w->calls_done = b;
      }
      if (f->length >= 25) { /* the GIL state now: it can come back on at run time */
        int on = f->body[24] != 0;
        if (on && !w->gil_enabled) gil_came_back(w, "at run time");
        w->gil_enabled = on;
      }
      return;
    case SP__FRAME_CHUNK:
    case SP__FRAME_STATS:
      return;
    default:
      sp__log(SP__LOG_WARN, "[%s/%s] unexpected %s frame", w->pool->cfg->name, w->name,
              sp__frame_type_name(f->type));
  }
}

static void sock_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  sp__worker_t *w = h->data;
  uint8_t *p = NULL;
  size_t avail = 0;
  (void)suggested;
  if (sp__decoder_space(&w->dec, 65536, &p, &avail) != 0) avail = 0;
  buf->base = (char *)p;
  buf->len = avail;
}

static void sock_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
  sp__worker_t *w = s->data;
  (void)buf;
  if (n < 0) {
    uv_read_stop(s);
    /* Usually the process is dying and its exit status follows; one that closed
     * its socket but lives on is useless and gets killed. */
    if (!w->exited && !uv_is_active((uv_handle_t *)&w->timer))
      uv_timer_start(&w->timer, finalize_timer, 500, 0);
    return;
  }
  sp__decoder_commit(&w->dec, (size_t)n);
  sp__frame_t f;
  sp_error_t err;
  int rc;
  while ((rc = sp__decoder_next(&w->dec, &f, &err)) == 1) on_frame(w, &f);
  if (rc < 0) {
    sp__log(SP__LOG_ERROR, "[%s/%s] %s; killing the worker", w->pool->cfg->name, w->name,
            err.message);
    uv_read_stop(s);
    sp__worker_kill(w, "it sent a malformed frame");
  }
  sp__rt_settle(w->pool->rt);
}

/* ---- exit --------------------------------------------------------------- */

static void describe_exit(sp__worker_t *w, sp_error_t *e) {
  char tail[2048];
  char how[256];
  sp__worker_tail(w, tail, sizeof(tail));
  if (w->exit_note[0])
    snprintf(how, sizeof(how), "%s", w->exit_note);
  else if (w->term_signal)
    snprintf(how, sizeof(how), "was killed by signal %d (%s)%s%s", w->term_signal,
             strsignal(w->term_signal), w->kill_reason ? " because " : "",
             w->kill_reason ? w->kill_reason : "");
  else
    snprintf(how, sizeof(how), "exited with code %lld", (long long)w->exit_status);

  if (w->state == SP__W_STARTING && w->failure && w->failure[0] == SP__ERRKIND_STARTUP) {
    json_error_t jerr;
    json_t *o = json_loads(w->failure + 1, 0, &jerr);
    const char *type = json_string_value(json_object_get(o, "type"));
    const char *msg = json_string_value(json_object_get(o, "message"));
    const char *tb = json_string_value(json_object_get(o, "traceback"));
    sp__error_set(e, SP_ESTARTUP,
                  "pool '%s': worker %s failed to start: adapter '%s' could not be loaded: %s: %s",
                  w->pool->cfg->name, w->name, w->pool->cfg->adapter, type ? type : "Error",
                  msg ? msg : "");
    snprintf(e->python_type, sizeof(e->python_type), "%s", type ? type : "");
    if (tb) sp__copy_tail(e->traceback, sizeof(e->traceback), tb, strlen(tb));
    json_decref(o);
    return;
  }
  if (w->state == SP__W_STARTING) {
    sp__error_set(e, SP_ESTARTUP, "pool '%s': worker %s (pid %d) %s before it was ready%s%s",
                  w->pool->cfg->name, w->name, w->pid, how, tail[0] ? "; last output:\n" : "",
                  tail);
    return;
  }
  sp__error_set(e, SP_ECRASHED, "pool '%s': worker %s (pid %d) %s%s%s", w->pool->cfg->name,
                w->name, w->pid, how, tail[0] ? "; last output:\n" : "", tail);
}

static void close_handle(sp__worker_t *w, uv_handle_t *h) {
  if (!uv_is_closing(h)) uv_close(h, on_handle_closed);
}

static void finalize(sp__worker_t *w) {
  w->finalized = 1;
  if (w->fs != NULL) sp__forkserver_forget(w);
  uv_timer_stop(&w->timer);
  sp_error_t e;
  describe_exit(w, &e);
  int was_starting = w->state == SP__W_STARTING;
  w->state = SP__W_DEAD;
  w->slots.ready = 0;
  if (!was_starting || w->slots.inflight > 0) {
    for (uint32_t s = 0; s < (uint32_t)w->nslots; s++) {
      sp__call_t *c = w->slot_calls[s];
      if (w->slot_ids[s] == 0) continue;
      release_slot(w, s);
      if (c != NULL) {
        c->worker = NULL;
        if (c->idempotent && !c->retried && w->pool->rt->phase == SP__PHASE_RUNNING &&
            c->deadline_ms > sp__now_ms()) {
          /* The caller said the call is safe to repeat: give it one more worker. */
          c->retried = 1;
          c->state = SP__CALL_NEW;
          w->pool->stats.retries++;
          sp__dheap_remove(&w->pool->rt->deadlines, &c->item);
          sp__pool_submit(w->pool, c);
          continue;
        }
        sp_error_t ce;
        sp__error_copy(&ce, &e);
        if (ce.code == SP_ESTARTUP) ce.code = SP_ECRASHED;
        ce.category = sp_err_category(ce.code);
        sp__call_finish(c, ce.code, NULL, 0, &ce);
      }
    }
  }
  sp__pool_worker_exited(w->pool, w, &e);
  close_handle(w, (uv_handle_t *)&w->sock);
  close_handle(w, (uv_handle_t *)&w->out);
  close_handle(w, (uv_handle_t *)&w->timer);
  if (w->exec_started) close_handle(w, (uv_handle_t *)&w->proc);
}

static void finalize_timer(uv_timer_t *t) {
  sp__worker_t *w = t->data;
  if (w->exited && !w->finalized) finalize(w);
  else if (!w->exited)
    sp__worker_kill(w, w->state == SP__W_STOPPING ? "it did not exit within drain_timeout"
                                                  : "it closed its socket but kept running");
}

static void proc_exited(uv_process_t *p, int64_t status, int sig) {
  sp__worker_exited(p->data, status, sig);
}

void sp__worker_exited(sp__worker_t *w, int64_t status, int sig) {
  if (w->exited) return;
  w->exited = 1;
  w->exit_status = status;
  w->term_signal = sig;
  sp__log(w->state == SP__W_STOPPING ? SP__LOG_DEBUG : SP__LOG_WARN,
          "[%s/%s pid %d] exited (code %lld, signal %d)", w->pool->cfg->name, w->name, w->pid,
          (long long)status, sig);
  if (w->out_eof) {
    finalize(w);
  } else {
    /* Give the output pipe a moment so the error can quote the last lines. */
    uv_timer_start(&w->timer, finalize_timer, 100, 0);
  }
  sp__rt_settle(w->pool->rt);
}

static void on_handle_closed(uv_handle_t *h) {
  sp__worker_t *w = h->data;
  if (--w->open_handles > 0) return;
  sp_runtime_t *rt = w->pool->rt;
  sp__decoder_free(&w->dec);
  sp__buf_free(&w->wbuf);
  sp__buf_free(&w->wflight);
  for (int i = 0; i < SP__TAIL_LINES; i++) free(w->tail[i]);
  free(w->slot_calls);
  free(w->slot_ids);
  free(w->slot_abandoned_ms);
  free(w->slot_sent_ns);
  free(w->free_list);
  free(w->failure);
  free(w);
  sp__rt_worker_gone(rt);
}

void sp__worker_kill(sp__worker_t *w, const char *reason) {
  if (w->exited) return;
  if (w->kill_reason == NULL) w->kill_reason = reason;
  if (w->pid <= 0) {
    /* Forked worker whose pid has not arrived yet: its fork server kills it. */
    if (w->fs != NULL) sp__forkserver_kill_early(w);
    return;
  }
  /* The worker leads its own process group: take any children it started too. */
  if (kill(-w->pid, SIGKILL) != 0) kill(w->pid, SIGKILL);
}

void sp__worker_ping(sp__worker_t *w, int64_t now) {
  uint8_t body[8];
  for (int i = 0; i < 8; i++) body[i] = (uint8_t)((uint64_t)now >> (8 * i));
  w->last_ping_ms = now;
  send_frame(w, SP__FRAME_PING, 0, body, sizeof(body));
}

void sp__worker_shutdown(sp__worker_t *w, int64_t kill_ms) {
  if (w->exited) return;
  w->state = SP__W_STOPPING;
  w->slots.ready = 0;
  send_frame(w, SP__FRAME_SHUTDOWN, 0, NULL, 0);
  uv_timer_start(&w->timer, finalize_timer, (uint64_t)(kill_ms > 0 ? kill_ms : 1), 0);
}

long sp__worker_rss_kb(const sp__worker_t *w) {
  char path[64];
  long pages = -1, rss = -1;
  if (w->pid <= 0 || w->exited) return -1;
  snprintf(path, sizeof(path), "/proc/%d/statm", w->pid);
  FILE *f = fopen(path, "r");
  if (f == NULL) return -1;
  if (fscanf(f, "%ld %ld", &pages, &rss) != 2) rss = -1;
  fclose(f);
  return rss < 0 ? -1 : rss * (sysconf(_SC_PAGESIZE) / 1024);
}

/* ---- spawn -------------------------------------------------------------- */

int sp__worker_exec(sp__worker_t *w, int sock, int out, sp_error_t *err) {
  int rc = sp__spawn_worker_process(w->pool, w->name, &w->proc, proc_exited, sock, out, err);
  close(sock);
  close(out);
  if (rc != 0) return rc;
  w->exec_started = 1;
  w->open_handles++;
  w->pid = w->proc.pid;
  return 0;
}

int sp__worker_spawn(sp__pool_t *p, sp__pool_slot_t *pos, sp__worker_t **out, sp_error_t *err) {
  sp_runtime_t *rt = p->rt;
  int sv[2] = {-1, -1}, op[2] = {-1, -1};
  int rc = 0;
  int cap = p->cfg->threads_per_worker + p->cfg->pipeline_depth;

  sp__worker_t *w = calloc(1, sizeof(*w));
  if (w == NULL) return sp__error_set(err, SP_ENOMEM, "out of memory spawning a worker");
  w->pool = p;
  w->pos = pos;
  w->child_fds[0] = w->child_fds[1] = -1;
  w->serial = ++p->next_serial;
  snprintf(w->name, sizeof(w->name), "w%u", w->serial);
  w->slots.capacity = p->cfg->threads_per_worker;
  w->slots.depth = p->cfg->pipeline_depth;
  w->nslots = cap;
  w->slot_calls = calloc((size_t)cap, sizeof(*w->slot_calls));
  w->slot_ids = calloc((size_t)cap, sizeof(*w->slot_ids));
  w->free_list = calloc((size_t)cap, sizeof(*w->free_list));
  w->slot_abandoned_ms = calloc((size_t)cap, sizeof(*w->slot_abandoned_ms));
  w->slot_sent_ns = calloc((size_t)cap, sizeof(*w->slot_sent_ns));
  if (!w->slot_calls || !w->slot_ids || !w->free_list || !w->slot_abandoned_ms ||
      !w->slot_sent_ns) {
    free(w->slot_calls);
    free(w->slot_sent_ns);
    free(w->slot_abandoned_ms);
    free(w->slot_ids);
    free(w->free_list);
    free(w);
    return sp__error_set(err, SP_ENOMEM, "out of memory spawning a worker");
  }
  for (int i = cap; i-- > 0;) w->free_list[w->free_count++] = (uint32_t)i;
  sp__decoder_init(&w->dec, (size_t)p->cfg->max_frame_bytes);
  w->spawned_ms = sp__now_ms();
  /* Jitter only shortens the limits, so workers started together spread out
   * their recycling and none outlives what the config promises. */
  double j = p->cfg->recycle_jitter;
  if (p->cfg->worker_max_requests > 0) {
    double f = 1.0 - j * ((double)rand() / ((double)RAND_MAX + 1.0));
    w->max_requests = (uint64_t)((double)p->cfg->worker_max_requests * f);
    if (w->max_requests == 0) w->max_requests = 1;
  }
  if (p->cfg->worker_ttl_ms > 0) {
    double f = 1.0 - j * ((double)rand() / ((double)RAND_MAX + 1.0));
    w->ttl_ms = (int64_t)((double)p->cfg->worker_ttl_ms * f);
  }
  rt->live_workers++;

  /* From here on the handles exist and release goes through uv_close. */
  uv_pipe_init(&rt->loop, &w->sock, 0);
  uv_pipe_init(&rt->loop, &w->out, 0);
  uv_timer_init(&rt->loop, &w->timer);
  w->sock.data = w->out.data = w->timer.data = w->proc.data = w;
  w->open_handles = 3;

  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0 || pipe2(op, O_CLOEXEC) != 0) {
    rc = sp__error_set(err, SP_EIO, "cannot create the worker's socket: %s", strerror(errno));
    goto fail;
  }
  /* Both paths take over the child's ends of the socket and the pipe. */
  int child_sock = sv[1], child_out = op[1];
  sv[1] = op[1] = -1;
  if (p->cfg->worker_start == SP__START_FORK && !p->fork_unsafe)
    rc = sp__forkserver_request(p, w, child_sock, child_out, err);
  else
    rc = sp__worker_exec(w, child_sock, child_out, err);
  if (rc != 0) goto fail;
  uv_pipe_open(&w->sock, sv[0]);
  uv_pipe_open(&w->out, op[0]);
  uv_read_start((uv_stream_t *)&w->sock, sock_alloc, sock_read);
  uv_read_start((uv_stream_t *)&w->out, out_alloc, out_read);
  *out = w;
  return 0;

fail:
  for (int i = 0; i < 2; i++) {
    if (sv[i] >= 0) close(sv[i]);
    if (op[i] >= 0) close(op[i]);
  }
  w->finalized = 1;
  w->exited = 1;
  w->state = SP__W_DEAD;
  close_handle(w, (uv_handle_t *)&w->sock);
  close_handle(w, (uv_handle_t *)&w->out);
  close_handle(w, (uv_handle_t *)&w->timer);
  *out = NULL;
  return rc;
}

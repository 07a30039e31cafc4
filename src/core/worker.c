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

#include "arrays.h"
#include "errors.h"
#include "forkserver.h"
#include "hostcall.h"
#include "log.h"
#include "report.h"
#include "spawn.h"
#include "stream.h"

/* After the exit status, how long the output pipe may take to deliver its last
 * lines (quoted in the error); after EOF on the socket, how long the process
 * may take to exit before it is killed. */
#define OUTPUT_DRAIN_MS 100
#define CLOSED_SOCKET_GRACE_MS 500

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

int sp__worker_send(sp__worker_t *w, unsigned type, uint64_t id, const void *body, size_t len) {
  if (sp__buf_append_frame(&w->wbuf, type, id, body, len) != 0) return SP_ENOMEM;
  sp__rt_mark_dirty(w->pool->rt, w);
  return 0;
}

/* ---- calls -------------------------------------------------------------- */

/* Input blocks of a call abandoned while its worker may still read them. */
typedef struct sp__slot_inputs_s {
  uint64_t *offs;
  size_t n;
} sp__slot_inputs_t;

static void release_slot(sp__worker_t *w, uint32_t slot) {
  sp__slot_inputs_t *held = &w->slot_inputs[slot];
  if (held->offs != NULL) {
    sp__inputs_release(w->pool->input, held->offs, held->n);
    free(held->offs);
    held->offs = NULL;
    held->n = 0;
  }
  w->slot_ids[slot] = 0;
  w->slot_abandoned_ms[slot] = 0;
  w->slot_calls[slot] = NULL;
  w->free_list[w->free_count++] = slot;
  w->load.inflight--;
}

void sp__worker_dispatch(sp__worker_t *w, sp__call_t *c) {
  uint32_t slot = w->free_list[--w->free_count];
  uint64_t id = (++w->seq << 16) | slot;
  w->slot_ids[slot] = id;
  w->slot_calls[slot] = c;
  w->load.inflight++;
  w->requests++;
  uint64_t now_ns = sp__now_ns();
  w->slot_sent_ns[slot] = now_ns;
  c->worker = w;
  c->slot = slot;
  c->state = SP__CALL_RUNNING;
  int64_t left = c->deadline_ms - (int64_t)(now_ns / 1000000u); /* sp__now_ms() */
  sp__call_frame_dispatch(c->frame, id,
                          left < 1 ? 1u : left > UINT32_MAX ? UINT32_MAX : (uint32_t)left);
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
  /* Its input arrays stay until then too: the tool may still be reading them. */
  w->slot_inputs[slot].offs = c->inputs;
  w->slot_inputs[slot].n = c->ninputs;
  c->inputs = NULL;
  c->ninputs = 0;
  c->worker = NULL;
  sp__worker_send(w, SP__FRAME_CANCEL, id, NULL, 0);
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
  w->load.depth = sp__sched_depth(w->gap_ewma_ns, w->pool->cfg->pipeline_depth);
  release_slot(w, slot);
  return 0;
}

/*
 * Fills e from a Python exception described as JSON {type, message, traceback}
 * (an ERROR frame of kind PYTHON or STARTUP), with `what` ("tool 'x' in pool
 * 'p' raised", ...) in front of the message.
 */
static void python_error(sp_error_t *e, int code, const char *what, const char *json, size_t len) {
  json_error_t jerr;
  json_t *o = json_loadb(json, len, 0, &jerr);
  const char *type = o ? json_string_value(json_object_get(o, "type")) : NULL;
  const char *msg = o ? json_string_value(json_object_get(o, "message")) : NULL;
  const char *tb = o ? json_string_value(json_object_get(o, "traceback")) : NULL;
  char *text = NULL;
  if (asprintf(&text, "%s %s: %s", what, type ? type : "an exception", msg ? msg : "") < 0)
    text = NULL;
  sp_error_set(e, code, text ? text : what, type, tb);
  free(text);
  json_decref(o);
}

/* Returns 0, or -1 when the worker sent a malformed frame (it is being killed). */
static int on_result(sp__worker_t *w, const sp__frame_t *f) {
  sp__call_t *c = NULL;
  if (f->id & SP__REPORT_ID_BIT) {
    sp__report_reply(w, f->id, f->body, f->length, f->type == SP__FRAME_ERROR);
    return 0;
  }
  sp__result_view_t rv = {0};
  if (f->type == SP__FRAME_RESULT && sp__result_body_parse(f->body, f->length, f->flags, &rv) != 0) {
    sp__log(SP__LOG_ERROR, "[%s/%s] malformed RESULT frame; killing the worker",
            w->pool->cfg->name, w->name);
    sp__worker_kill(w, "it sent a malformed RESULT frame");
    return -1;
  }
  if (take_slot(w, f->id, &c) != 0) {
    sp__log(SP__LOG_WARN, "[%s/%s] reply for unknown request %llu ignored", w->pool->cfg->name,
            w->name, (unsigned long long)f->id);
    if (rv.arrays != NULL) sp__result_arrays_discard(w->output, rv.arrays, rv.arrays_len);
    return 0;
  }
  if (c == NULL && rv.arrays != NULL) {
    /* Nobody waits for this result any more: its arrays are nobody's. */
    sp__result_arrays_discard(w->output, rv.arrays, rv.arrays_len);
  }
  int rc = 0;
  if (c != NULL) {
    c->worker = NULL;
    if (f->type == SP__FRAME_RESULT) {
      if (sp__call_succeed(c, rv.json, rv.json_len, w->output, rv.arrays, rv.arrays_len) ==
          SP_EPROTOCOL) {
        sp__log(SP__LOG_ERROR, "[%s/%s] malformed array descriptors; killing the worker",
                w->pool->cfg->name, w->name);
        sp__worker_kill(w, "it sent malformed array descriptors");
        rc = -1;
      }
    } else {
      sp_error_t e;
      sp__error_view_t v;
      if (sp__error_body_parse(f->body, f->length, &v) != 0) {
        sp__error_set(&e, SP_EPROTOCOL, "worker %s: malformed ERROR frame (%u bytes)", w->name,
                      f->length);
      } else if (v.kind == SP__ERRKIND_PYTHON) {
        size_t tool_len;
        const char *tool = sp__call_tool(c, &tool_len);
        char what[384];
        snprintf(what, sizeof(what), "tool '%.*s' in pool '%s' raised", (int)tool_len, tool,
                 c->pool->cfg->name);
        python_error(&e, SP_EPYTHON, what, v.text, v.text_len);
      } else if (v.kind == SP__ERRKIND_VALIDATION) {
        sp__error_set(&e, v.code, "%.*s", (int)v.text_len, v.text);
      } else {
        sp__error_set(&e, v.code, "worker %s: %.*s", w->name, (int)v.text_len, v.text);
      }
      sp__call_finish(c, e.code, NULL, 0, &e);
    }
  }
  if (w->state == SP__W_DRAINING && w->load.inflight == 0) {
    int64_t left = w->pool->cfg->drain_timeout_ms - (sp__now_ms() - w->drain_started_ms);
    sp__worker_shutdown(w, left > 0 ? left : 1);
  }
  sp__pool_pump(w->pool);
  return rc;
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
  w->load.ready = 1;
  w->ready_ms = w->last_pong_ms = w->last_ping_ms = sp__now_ms();
  if (w->pool->tools_json == NULL) {
    json_t *tools = json_object_get(json_object_get(o, "manifest"), "tools");
    size_t n = json_array_size(tools);
    w->pool->tools_json = tools ? json_dumps(tools, JSON_COMPACT) : strdup("[]");
    w->pool->tool_names = calloc(n ? n : 1, sizeof(char *));
    if (w->pool->tool_names != NULL) {
      for (size_t i = 0; i < n; i++) {
        const char *name = json_string_value(json_object_get(json_array_get(tools, i), "name"));
        w->pool->tool_names[w->pool->tool_count++] = strdup(name ? name : "");
      }
    }
    w->pool->tool_stats = calloc(n ? n : 1, sizeof(*w->pool->tool_stats));
    json_t *plain = json_object_get(json_object_get(o, "manifest"), "methods_without_tool");
    w->pool->methods_without_tool = plain ? json_dumps(plain, JSON_COMPACT) : strdup("[]");
    w->pool->python_version = strdup(w->python_version);
    w->pool->gil_enabled = w->gil_enabled;
    w->pool->free_threaded = w->free_threaded;
  }
  json_decref(o);
  sp__pool_worker_ready(w->pool, w);
}

/* Handles one frame; -1 when the worker is being killed for it. */
static int on_frame(sp__worker_t *w, const sp__frame_t *f) {
  switch (f->type) {
    case SP__FRAME_HELLO:
      if (w->state == SP__W_STARTING) on_hello(w, f);
      return 0;
    case SP__FRAME_RESULT:
      return on_result(w, f);
    case SP__FRAME_ERROR:
      if (f->id == 0) {
        /* Worker-level failure (adapter import, protocol): remember it for the
         * exit, as its kind byte followed by its text. */
        sp__error_view_t v;
        if (sp__error_body_parse(f->body, f->length, &v) != 0) return 0;
        free(w->failure);
        w->failure = malloc(v.text_len + 2);
        if (w->failure) {
          w->failure[0] = (char)v.kind;
          memcpy(w->failure + 1, v.text, v.text_len);
          w->failure[v.text_len + 1] = '\0';
        }
        return 0;
      }
      return on_result(w, f);
    case SP__FRAME_PONG: {
      sp__pong_t pong;
      w->last_pong_ms = sp__now_ms();
      if (sp__pong_body_parse(f->body, f->length, &pong) == 0) {
        w->attach_wait_ns = pong.attach_wait_ns;
        w->calls_done = pong.calls_done;
        /* The GIL state now: it can come back on at run time. */
        if (pong.gil_enabled && !w->gil_enabled) gil_came_back(w, "at run time");
        w->gil_enabled = pong.gil_enabled;
      }
      return 0;
    }
    case SP__FRAME_STATS:
      return on_result(w, f);
    case SP__FRAME_CHUNK:
      return sp__stream_on_chunk(w, f);
    case SP__FRAME_HOSTCALL:
      return sp__hostcall_on_frame(w, f);
    default:
      sp__log(SP__LOG_WARN, "[%s/%s] unexpected %s frame", w->pool->cfg->name, w->name,
              sp__frame_type_name(f->type));
  }
  return 0;
}

static void sock_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  sp__worker_t *w = h->data;
  uint8_t *p = NULL;
  size_t avail = 0;
  (void)suggested;
  if (sp__decoder_space(&w->dec, SP__READ_CHUNK, &p, &avail) != 0) avail = 0;
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
      uv_timer_start(&w->timer, finalize_timer, CLOSED_SOCKET_GRACE_MS, 0);
    return;
  }
  sp__decoder_commit(&w->dec, (size_t)n);
  sp__frame_t f;
  sp_error_t err;
  int rc;
  while ((rc = sp__decoder_next(&w->dec, &f, &err)) == 1) {
    if (on_frame(w, &f) != 0) {
      uv_read_stop(s);
      rc = 0;
      break;
    }
  }
  if (rc < 0) {
    sp__log(SP__LOG_ERROR, "[%s/%s] %s; killing the worker", w->pool->cfg->name, w->name,
            err.message);
    sp_error_free(&err);
    uv_read_stop(s);
    sp__worker_kill(w, "it sent a malformed frame");
  } else {
    /* After a large result, give the memory back instead of keeping the peak. */
    sp__decoder_shrink(&w->dec, SP__DECODER_KEEP);
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
    char what[512];
    snprintf(what, sizeof(what),
             "pool '%s': worker %s failed to start: adapter '%s' could not be loaded:",
             w->pool->cfg->name, w->name, w->pool->cfg->adapter);
    python_error(e, SP_ESTARTUP, what, w->failure + 1, strlen(w->failure + 1));
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
  w->load.ready = 0;
  if (!was_starting || w->load.inflight > 0) {
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
        sp_error_copy(&ce, &e);
        if (ce.code == SP_ESTARTUP) ce.code = SP_ECRASHED;
        ce.category = sp_err_category(ce.code);
        sp__call_finish(c, ce.code, NULL, 0, &ce);
      }
    }
  }
  sp__report_worker_gone(w, "the worker exited before it answered");
  sp__pool_worker_exited(w->pool, w, &e);
  sp_error_free(&e);
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
  /* The worker led its own process group: whatever its tools started there
   * ends with it, whether it exited, crashed or was killed from outside. */
  if (w->pid > 0) kill(-w->pid, SIGKILL);
  sp__log(w->state == SP__W_STOPPING ? SP__LOG_DEBUG : SP__LOG_WARN,
          "[%s/%s pid %d] exited (code %lld, signal %d)", w->pool->cfg->name, w->name, w->pid,
          (long long)status, sig);
  if (w->out_eof) {
    finalize(w);
  } else {
    /* Give the output pipe a moment so the error can quote the last lines. */
    uv_timer_start(&w->timer, finalize_timer, OUTPUT_DRAIN_MS, 0);
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
  free(w->slot_inputs);
  free(w->free_list);
  free(w->failure);
  sp__shm_unref(w->output); /* results still holding its arrays keep it mapped */
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
  w->last_ping_ms = now;
  if (sp__buf_append_ping(&w->wbuf, now) == 0) sp__rt_mark_dirty(w->pool->rt, w);
}

void sp__worker_shutdown(sp__worker_t *w, int64_t kill_ms) {
  if (w->exited) return;
  w->state = SP__W_STOPPING;
  w->load.ready = 0;
  sp__worker_send(w, SP__FRAME_SHUTDOWN, 0, NULL, 0);
  uv_timer_start(&w->timer, finalize_timer, (uint64_t)(kill_ms > 0 ? kill_ms : 1), 0);
}

/* ---- spawn -------------------------------------------------------------- */

int sp__worker_exec(sp__worker_t *w, int fds[SP__CHILD_FDS], sp_error_t *err) {
  int rc = sp__spawn_worker_process(w->pool, w->name, &w->proc, proc_exited, fds[SP__CHILD_SOCK],
                                    fds[SP__CHILD_OUT], fds[SP__CHILD_IN_SHM],
                                    fds[SP__CHILD_OUT_SHM], err);
  for (int i = 0; i < SP__CHILD_FDS; i++) close(fds[i]);
  if (rc != 0) return rc;
  w->exec_started = 1;
  w->open_handles++;
  w->pid = w->proc.pid;
  return 0;
}

int sp__worker_spawn(sp__pool_t *p, sp__position_t *pos, sp__worker_t **out, sp_error_t *err) {
  sp_runtime_t *rt = p->rt;
  int sv[2] = {-1, -1}, op[2] = {-1, -1};
  int rc = 0;
  int cap = p->cfg->threads_per_worker + p->cfg->pipeline_depth;

  sp__worker_t *w = calloc(1, sizeof(*w));
  if (w == NULL) return sp__error_set(err, SP_ENOMEM, "out of memory spawning a worker");
  w->pool = p;
  w->pos = pos;
  for (int i = 0; i < SP__CHILD_FDS; i++) w->child_fds[i] = -1;
  w->serial = ++p->next_serial;
  snprintf(w->name, sizeof(w->name), "w%u", w->serial);
  w->load.capacity = p->cfg->threads_per_worker;
  w->load.depth = p->cfg->pipeline_depth;
  w->nslots = cap;
  w->slot_calls = calloc((size_t)cap, sizeof(*w->slot_calls));
  w->slot_ids = calloc((size_t)cap, sizeof(*w->slot_ids));
  w->free_list = calloc((size_t)cap, sizeof(*w->free_list));
  w->slot_abandoned_ms = calloc((size_t)cap, sizeof(*w->slot_abandoned_ms));
  w->slot_sent_ns = calloc((size_t)cap, sizeof(*w->slot_sent_ns));
  w->slot_inputs = calloc((size_t)cap, sizeof(*w->slot_inputs));
  if (!w->slot_calls || !w->slot_ids || !w->free_list || !w->slot_abandoned_ms ||
      !w->slot_sent_ns || !w->slot_inputs) {
    free(w->slot_calls);
    free(w->slot_inputs);
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

  char shm_name[96];
  snprintf(shm_name, sizeof(shm_name), "snakepit-%s-%s-out", p->cfg->name, w->name);
  if ((rc = sp__shm_create(&w->output, shm_name, (size_t)p->cfg->max_shared_memory, err)) != 0)
    goto fail;
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0 || pipe2(op, O_CLOEXEC) != 0) {
    rc = sp__error_set(err, SP_EIO, "cannot create the worker's socket: %s", strerror(errno));
    goto fail;
  }
  /* Both paths take over the child's ends: socket, pipe and its own copies of
   * the shared memory descriptors. */
  int fds[SP__CHILD_FDS] = {sv[1], op[1], fcntl(p->input->fd, F_DUPFD_CLOEXEC, 10),
                            fcntl(w->output->fd, F_DUPFD_CLOEXEC, 10)};
  sv[1] = op[1] = -1;
  if (fds[SP__CHILD_IN_SHM] < 0 || fds[SP__CHILD_OUT_SHM] < 0) {
    rc = sp__error_set(err, SP_EIO, "cannot pass shared memory to the worker: %s", strerror(errno));
    for (int i = 0; i < SP__CHILD_FDS; i++)
      if (fds[i] >= 0) close(fds[i]);
    goto fail;
  }
  if (p->cfg->worker_start == SP__START_FORK && !p->fork_unsafe)
    rc = sp__forkserver_request(p, w, fds, err);
  else
    rc = sp__worker_exec(w, fds, err);
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

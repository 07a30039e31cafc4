/*
 * session.c - sessions with worker affinity: the pool's table of sessions and
 * the worker each is bound to, placing a session's call by its mode (hint,
 * strict, strict_fail_fast), idle expiry, explicit ends (SESSION_END to the
 * worker), and losing sessions when their worker leaves. Loop thread, except
 * sp__session_id_check and the public entry points that post to the loop.
 */
#include "session.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "errors.h"
#include "log.h"
#include "pool.h"
#include "runtime.h"
#include "worker.h"

/* ---- ids ------------------------------------------------------------------ */

/* Length of the UTF-8 sequence at s (n bytes left) and its code point, or 0
 * when it is not valid UTF-8 (overlong forms, surrogates, past U+10FFFF). */
static size_t utf8_next(const unsigned char *s, size_t n, uint32_t *cp) {
  unsigned char b = s[0];
  size_t len;
  uint32_t min;
  if (b < 0x80) {
    *cp = b;
    return 1;
  } else if (b >= 0xC2 && b <= 0xDF) {
    len = 2, min = 0x80, *cp = b & 0x1Fu;
  } else if (b >= 0xE0 && b <= 0xEF) {
    len = 3, min = 0x800, *cp = b & 0x0Fu;
  } else if (b >= 0xF0 && b <= 0xF4) {
    len = 4, min = 0x10000, *cp = b & 0x07u;
  } else {
    return 0;
  }
  if (n < len) return 0;
  for (size_t i = 1; i < len; i++) {
    if ((s[i] & 0xC0) != 0x80) return 0;
    *cp = (*cp << 6) | (s[i] & 0x3Fu);
  }
  if (*cp < min || *cp > 0x10FFFF || (*cp >= 0xD800 && *cp <= 0xDFFF)) return 0;
  return len;
}

int sp__session_id_check(const char *id, size_t *len, char *why, size_t cap) {
  size_t n = strnlen(id, SP_SESSION_ID_MAX + 1);
  *len = n;
  if (n == 0) {
    snprintf(why, cap, "is empty (1 to %d bytes of UTF-8)", SP_SESSION_ID_MAX);
    return SP_EINVAL;
  }
  if (n > SP_SESSION_ID_MAX) {
    snprintf(why, cap, "is longer than %d bytes", SP_SESSION_ID_MAX);
    return SP_EINVAL;
  }
  const unsigned char *s = (const unsigned char *)id;
  for (size_t i = 0; i < n;) {
    uint32_t cp;
    size_t k = utf8_next(s + i, n - i, &cp);
    if (k == 0) {
      snprintf(why, cap, "is not valid UTF-8 (byte %zu)", i);
      return SP_EINVAL;
    }
    if (cp < 0x20 || (cp >= 0x7F && cp <= 0x9F)) {
      snprintf(why, cap, "has a control character (U+%04X) at byte %zu", (unsigned)cp, i);
      return SP_EINVAL;
    }
    i += k;
  }
  return 0;
}

int sp_session_check(const char *session_id, sp_error_t *err) {
  char why[96];
  size_t len;
  if (session_id == NULL) return sp__error_set(err, SP_EINVAL, "session id is NULL");
  if (sp__session_id_check(session_id, &len, why, sizeof(why)) != 0)
    return sp__error_set(err, SP_EINVAL, "session id %s", why);
  sp__error_clear(err);
  return 0;
}

static const char *const mode_names[] = {"hint", "strict", "strict_fail_fast"};

const char *sp_session_mode_name(int mode) {
  return mode >= 0 && mode <= SP_SESSION_STRICT_FAIL_FAST ? mode_names[mode] : "unknown";
}

int sp_session_mode_parse(const char *text, int *mode, sp_error_t *err) {
  for (int m = 0; m <= SP_SESSION_STRICT_FAIL_FAST && text != NULL; m++) {
    if (strcmp(text, mode_names[m]) == 0) {
      if (mode != NULL) *mode = m;
      sp__error_clear(err);
      return 0;
    }
  }
  return sp__error_set(err, SP_EINVAL,
                       "unknown session mode '%.64s' (expected hint, strict or strict_fail_fast)",
                       text ? text : "(null)");
}

/* ---- the table ------------------------------------------------------------ */

#define FIRST_BUCKETS 64

static uint64_t hash_id(const char *id, size_t len) {
  uint64_t h = 1469598103934665603u; /* FNV-1a */
  for (size_t i = 0; i < len; i++) h = (h ^ (unsigned char)id[i]) * 1099511628211u;
  return h;
}

static sp__session_t **slot_of(sp__sessions_t *t, const char *id, size_t len) {
  sp__session_t **pp = &t->buckets[hash_id(id, len) & (t->nbuckets - 1)];
  while (*pp && ((*pp)->id_len != len || memcmp((*pp)->id, id, len) != 0)) pp = &(*pp)->next;
  return pp;
}

static sp__session_t *find(sp__sessions_t *t, const char *id, size_t len) {
  return t->buckets ? *slot_of(t, id, len) : NULL;
}

/* Doubles the buckets when the table is full; a failed growth keeps it as it is. */
static int grow(sp__sessions_t *t) {
  if (t->buckets != NULL && t->count < t->nbuckets) return 0;
  size_t n = t->buckets ? t->nbuckets * 2 : FIRST_BUCKETS;
  sp__session_t **b = calloc(n, sizeof(*b));
  if (b == NULL) return t->buckets ? 0 : SP_ENOMEM;
  for (size_t i = 0; i < t->nbuckets; i++) {
    for (sp__session_t *s = t->buckets[i], *next; s; s = next) {
      next = s->next;
      sp__session_t **head = &b[hash_id(s->id, s->id_len) & (n - 1)];
      s->next = *head;
      *head = s;
    }
  }
  free(t->buckets);
  t->buckets = b;
  t->nbuckets = n;
  return 0;
}

static sp__session_t *create(sp__sessions_t *t, const char *id, size_t len) {
  if (grow(t) != 0) return NULL;
  sp__session_t *s = calloc(1, sizeof(*s) + len + 1);
  if (s == NULL) return NULL;
  memcpy(s->id, id, len);
  s->id_len = len;
  s->last_used_ms = sp__now_ms();
  sp__session_t **head = &t->buckets[hash_id(id, len) & (t->nbuckets - 1)];
  s->next = *head;
  *head = s;
  t->count++;
  t->started++;
  return s;
}

static void unlink_session(sp__sessions_t *t, sp__session_t *s) {
  sp__session_t **pp = slot_of(t, s->id, s->id_len);
  if (*pp == s) {
    *pp = s->next;
    t->count--;
  }
  s->next = NULL;
}

void sp__sessions_free(sp__pool_t *p) {
  sp__sessions_t *t = &p->sessions;
  for (size_t i = 0; i < t->nbuckets; i++) {
    for (sp__session_t *s = t->buckets[i], *next; s; s = next) {
      next = s->next;
      free(s);
    }
  }
  free(t->buckets);
  memset(t, 0, sizeof(*t));
}

/* ---- binding -------------------------------------------------------------- */

static void bind_to(sp__session_t *s, sp__worker_t *w) {
  s->worker = w;
  s->lost = 0;
  s->lost_why[0] = '\0';
  w->sessions++;
}

static void unbind(sp__session_t *s) {
  if (s->worker != NULL) s->worker->sessions--;
  s->worker = NULL;
}

/* The session leaves the table; its worker forgets its state once none of its
 * calls runs there any more. Freed once no call refers to it. */
static void finish_session(sp__pool_t *p, sp__session_t *s) {
  unlink_session(&p->sessions, s);
  s->ended = 1;
  if (s->worker != NULL) {
    if (s->inflight == 0) sp__worker_send(s->worker, SP__FRAME_SESSION_END, 0, s->id, s->id_len);
    else s->end_pending = 1;
    if (!s->end_pending) unbind(s);
  }
  if (s->refs == 0 && !s->end_pending) free(s);
}

static void release(sp__session_t *s) {
  if (--s->refs == 0 && s->ended && !s->end_pending) free(s);
}

/* The session call c's session, found or started now (NULL: out of memory). */
static sp__session_t *session_of(sp__pool_t *p, sp__call_t *c) {
  sp__session_t *s = c->session;
  if (s != NULL && !s->ended) return s;
  if (s != NULL) { /* ended while c waited: c starts the next session of that id */
    c->session = NULL;
    release(s);
  }
  s = find(&p->sessions, c->sid, c->sid_len);
  if (s == NULL) s = create(&p->sessions, c->sid, c->sid_len);
  if (s == NULL) return NULL;
  s->refs++;
  c->session = s;
  return s;
}

static int fail(sp__call_t *c, int code, const char *fmt_why, const sp__session_t *s) {
  size_t tl;
  const char *tool = sp__call_tool(c, &tl);
  sp_error_t e;
  if (code == SP_ESESSIONBUSY)
    sp__error_set(&e, code,
                  "session '%s' of pool '%s' is busy: its worker %s runs %d of its %d calls at "
                  "once (mode strict_fail_fast; call to tool '%.*s')",
                  s->id, c->pool->cfg->name, s->worker->name, s->worker->load.inflight,
                  s->worker->load.capacity, (int)tl, tool);
  else if (code == SP_ESESSIONLOST)
    sp__error_set(&e, code,
                  "session '%s' of pool '%s' is lost: %s; its state is gone (end the session to "
                  "start it afresh; call to tool '%.*s', mode %s)",
                  s->id, c->pool->cfg->name, s->lost_why, (int)tl, tool,
                  sp_session_mode_name(c->session_mode));
  else
    sp__error_set(&e, code, "%s", fmt_why);
  sp__call_finish(c, code, NULL, 0, &e);
  return SP__PLACE_DONE;
}

/* A worker the session may stay bound to: ready and in its position. */
static int usable(const sp__worker_t *w) {
  return w->state == SP__W_READY && w->pos != NULL && !w->exited;
}

static void lose(sp__pool_t *p, sp__session_t *s, const char *why) {
  snprintf(s->lost_why, sizeof(s->lost_why), "%s", why);
  unbind(s);
  s->lost = 1;
  p->sessions.lost++;
}

int sp__session_place(sp__pool_t *p, sp__call_t *c) {
  if (c->session_counted) sp__session_call_done(c); /* retried after its worker died */
  sp__session_t *s = session_of(p, c);
  if (s == NULL) return fail(c, SP_ENOMEM, "out of memory starting a session", NULL);
  size_t n = (size_t)p->cfg->pool_size;
  int cap = sp__call_depth_cap(c);
  c->session_ephemeral = 0;
  if (s->worker != NULL && !usable(s->worker)) {
    char why[160];
    snprintf(why, sizeof(why), "its worker %s (pid %d) is gone", s->worker->name, s->worker->pid);
    lose(p, s, why);
  }
  if (s->lost) {
    if (c->session_mode != SP_SESSION_HINT) return fail(c, SP_ESESSIONLOST, NULL, s);
    s->lost = 0; /* hint: the session starts afresh wherever the scheduler sends it */
  }
  if (s->worker == NULL) {
    int idx = sp__sched_pick(p->loads, n, &p->cursor, cap);
    if (idx < 0) return SP__PLACE_WAIT;
    bind_to(s, p->positions[idx].worker);
    return idx;
  }
  sp__worker_t *w = s->worker;
  if (w->load.inflight < w->load.capacity) return w->pos->index;
  if (c->session_mode == SP_SESSION_STRICT_FAIL_FAST) {
    p->sessions.busy++;
    return fail(c, SP_ESESSIONBUSY, NULL, s);
  }
  if (c->session_mode == SP_SESSION_STRICT) return SP__PLACE_WAIT;
  int idx = sp__sched_pick(p->loads, n, &p->cursor, cap);
  if (idx < 0) return SP__PLACE_WAIT;
  c->session_ephemeral = p->positions[idx].worker != w;
  return idx;
}

int sp__session_waits_for_worker(const sp__call_t *c) {
  const sp__session_t *s = c->session;
  return c->session_mode == SP_SESSION_STRICT && s != NULL && !s->ended && s->worker != NULL;
}

void sp__session_dispatched(sp__call_t *c) {
  sp__session_t *s = c->session;
  sp__call_frame_session_flags(c->frame, c->session_ephemeral ? SP__SESSION_EPHEMERAL : 0);
  s->last_used_ms = sp__now_ms();
  s->calls++;
  if (!c->session_ephemeral) {
    s->inflight++;
    c->session_counted = 1;
  }
}

void sp__session_call_done(sp__call_t *c) {
  sp__session_t *s = c->session;
  if (s == NULL) return;
  if (c->session_counted) {
    c->session_counted = 0;
    s->inflight--;
    s->last_used_ms = sp__now_ms();
    if (s->inflight == 0 && s->end_pending) {
      /* Ended while its calls ran: the worker forgets the state now. */
      s->end_pending = 0;
      if (s->worker != NULL && usable(s->worker))
        sp__worker_send(s->worker, SP__FRAME_SESSION_END, 0, s->id, s->id_len);
      unbind(s);
    }
  }
  if (c->state == SP__CALL_DONE) { /* completed, not retried */
    c->session = NULL;
    release(s);
  }
}

void sp__sessions_worker_gone(sp__pool_t *p, sp__worker_t *w, const char *why) {
  sp__sessions_t *t = &p->sessions;
  if (w->sessions == 0) return;
  char text[192];
  snprintf(text, sizeof(text), "its worker %s (pid %d) %s", w->name, w->pid, why);
  for (size_t i = 0; i < t->nbuckets; i++)
    for (sp__session_t *s = t->buckets[i]; s; s = s->next)
      if (s->worker == w) lose(p, s, text);
  sp__log(SP__LOG_INFO, "[%s/%s pid %d] %s: its sessions are lost", p->cfg->name, w->name, w->pid,
          why);
}

void sp__session_end(sp__pool_t *p, const char *id, size_t len) {
  sp__session_t *s = find(&p->sessions, id, len);
  if (s == NULL) return;
  p->sessions.ended++;
  finish_session(p, s);
}

void sp__sessions_tick(sp__pool_t *p, int64_t now) {
  sp__sessions_t *t = &p->sessions;
  int64_t ttl = p->cfg->session_ttl_ms;
  if (t->count == 0 || ttl <= 0) return;
  for (size_t i = 0; i < t->nbuckets; i++) {
    for (sp__session_t *s = t->buckets[i], *next; s; s = next) {
      next = s->next;
      if (s->refs == 0 && now - s->last_used_ms >= ttl) {
        t->expired++;
        finish_session(p, s);
      }
    }
  }
}

/* ---- stats ------------------------------------------------------------------ */

/* The most sessions the stats list one by one (the counts cover all of them). */
#define STATS_LIST_MAX 100

json_t *sp__sessions_json(const sp__pool_t *p, int64_t now) {
  const sp__sessions_t *t = &p->sessions;
  json_t *o = json_object();
  json_object_set_new(o, "live", json_integer((json_int_t)t->count));
  json_object_set_new(o, "ttl_ms", json_integer(p->cfg->session_ttl_ms));
  json_object_set_new(o, "started", json_integer((json_int_t)t->started));
  json_object_set_new(o, "ended", json_integer((json_int_t)t->ended));
  json_object_set_new(o, "expired", json_integer((json_int_t)t->expired));
  json_object_set_new(o, "lost", json_integer((json_int_t)t->lost));
  json_object_set_new(o, "busy", json_integer((json_int_t)t->busy));
  json_t *list = json_array();
  for (size_t i = 0; i < t->nbuckets && json_array_size(list) < STATS_LIST_MAX; i++) {
    for (const sp__session_t *s = t->buckets[i]; s && json_array_size(list) < STATS_LIST_MAX;
         s = s->next) {
      json_t *e = json_object();
      json_object_set_new(e, "id", json_stringn(s->id, s->id_len));
      json_object_set_new(e, "worker", s->worker ? json_string(s->worker->name) : json_null());
      json_object_set_new(e, "calls", json_integer((json_int_t)s->calls));
      json_object_set_new(e, "running", json_integer(s->inflight));
      json_object_set_new(e, "idle_ms", json_integer(s->inflight ? 0 : now - s->last_used_ms));
      json_object_set_new(e, "lost", json_boolean(s->lost));
      json_array_append_new(list, e);
    }
  }
  json_object_set_new(o, "list", list);
  return o;
}

/* ---- the public entry point ------------------------------------------------- */

typedef struct {
  sp__msg_t msg;
  sp__pool_t *pool;
  size_t len;
  char id[SP_SESSION_ID_MAX + 1];
} end_msg_t;

void sp__session_msg(sp_runtime_t *rt, sp__msg_t *m) {
  (void)rt;
  end_msg_t *e = (end_msg_t *)m;
  sp__session_end(e->pool, e->id, e->len);
  free(e);
}

int sp_session_end(sp_runtime_t *rt, const char *pool, const char *session_id, sp_error_t *err) {
  if (rt == NULL || pool == NULL || session_id == NULL)
    return sp__error_set(err, SP_EINVAL, "sp_session_end: rt, pool and session_id must not be NULL");
  if (atomic_load(&rt->stopping)) return sp__error_set(err, SP_ESTOPPED, "the runtime is stopping");
  sp__pool_t *p = sp__rt_find_pool(rt, pool, err);
  if (p == NULL) return SP_ENOPOOL;
  char why[96];
  size_t len;
  if (sp__session_id_check(session_id, &len, why, sizeof(why)) != 0)
    return sp__error_set(err, SP_EINVAL, "session id to end in pool '%s' %s", pool, why);
  if (sp__rt_on_loop_thread(rt)) {
    sp__session_end(p, session_id, len);
  } else {
    end_msg_t *m = calloc(1, sizeof(*m));
    if (m == NULL) return sp__error_set(err, SP_ENOMEM, "out of memory ending a session");
    m->msg.kind = SP__MSG_SESSION_END;
    m->pool = p;
    m->len = len;
    memcpy(m->id, session_id, len);
    if (sp__rt_post(rt, &m->msg) != 0) {
      free(m);
      return sp__error_set(err, SP_ESTOPPED, "the runtime is stopping");
    }
  }
  sp__error_clear(err);
  return 0;
}

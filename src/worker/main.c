/*
 * main.c - snakepit-worker: hosts one adapter instance and runs its tools on N
 * native execution threads. Socket reads, framing and pings never touch Python,
 * so a worker busy in a long tool still answers.
 *
 * Who reads the socket (leader/follower): an idle execution thread. It reads,
 * queues what it read, and runs the first call itself, so a call that arrives
 * at an idle worker costs one wake-up (that thread's) instead of two (a reader
 * thread's, then an executor's). Other idle threads wait; one of them takes
 * over reading when the reader leaves to run a call. A watcher thread looks
 * every check period (2 ms) while every execution thread is busy: when none
 * has started a call since its last look, it reads until one is idle again,
 * so pings, cancellations and pipelined calls still get through during long
 * tools.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "errors.h"
#include "descendants.h"
#include "process.h"
#include "forkserver.h"
#include "protocol.h"
#include "pyhost.h"
#include "shm.h"

/* A thread waiting for the HOSTREPLY of a nested call (hostcall_wait); W.mu. */
typedef struct hc_wait_s {
  struct hc_wait_s *next;
  uint64_t id;     /* this nested call's request id */
  uint64_t parent; /* the request id of the call whose tool waits */
  int done;        /* the reply arrived: code and *reply are set */
  int cancelled;   /* a CANCEL of the parent arrived */
  int code;
  sp__buf_t *reply;
} hc_wait_t;

/* What a queued job asks for. */
enum { JOB_CALL = 0, JOB_REPORT, JOB_SESSION_END };

typedef struct job_s {
  struct job_s *next;
  uint64_t id;
  int kind;        /* JOB_* */
  unsigned flags;  /* the CALL frame's flags (SP__FLAG_*) */
  size_t tool_len; /* JOB_CALL: tool bytes; JOB_REPORT: 0 */
  size_t args_len;
  size_t arrays_len; /* the CALL's arrays part (table and inline bytes) */
  size_t session_len;     /* the CALL's session id (flag SESSION), or the id to end */
  unsigned session_flags; /* SP__SESSION_* */
  char data[];       /* tool bytes, args bytes (JSON), arrays part, session id */
} job_t;

typedef struct worker_s {
  int fd;
  size_t max_frame;
  int threads;
  char *worker_id;
  pthread_mutex_t write_mu; /* one writer at a time on fd */

  sp__decoder_t dec; /* used only by the thread that holds the reading role */
  sp__buf_t held;    /* results held back for one write (W.write_mu) */
  atomic_int queued; /* jobs in the queue, readable without W.mu */
  uint64_t held_since_ns;

  pthread_mutex_t mu; /* guards the fields below */
  pthread_cond_t cond;
  job_t *head, *tail;
  int closed;  /* SHUTDOWN received: no more jobs */
  int entered; /* execution threads that finished their Python set-up */

  /* Reading roles (see the top of the file). */
  int solo;         /* one execution thread: it may hold back results */
  int role;         /* ROLE_*: who reads the socket now */
  int running;      /* execution threads running a call */
  int waiting;      /* execution threads waiting in cond for a job or the role */
  uint64_t started; /* calls started, to tell one long call from many short ones */
  int64_t last_start_ms;
  int watcher_sleeping; /* the watcher waits without a timeout: signal it */
  pthread_cond_t watcher_cond;

  /* Nested calls (hostcall_wait): threads waiting for their replies. */
  hc_wait_t *hc_waits;
  int hc_waiting;
  pthread_cond_t hc_cond; /* a reply or cancel arrived, or the reading role is free */
  _Atomic uint64_t hc_next; /* last nested call request id */
} worker_t;

enum { ROLE_NONE = 0, ROLE_EXEC, ROLE_WATCHER };

/* How often the watcher looks at a running call, and how long after the last
 * call it keeps looking before it sleeps until the next one. */
#define WATCH_PERIOD_MS 2
#define WATCH_LINGER_MS 50

/*
 * Exit codes of snakepit-worker (the manager quotes them when a worker dies):
 * 0 clean shutdown, 1 could not start its threads, 2 bad command line,
 * 3 the adapter failed to load, 4 the manager sent a malformed frame or memory
 * ran out while reading, 5 Python did not finalise cleanly.
 */
enum {
  EXIT_OK = 0,
  EXIT_THREADS = 1,
  EXIT_USAGE = 2,
  EXIT_ADAPTER = 3,
  EXIT_PROTOCOL = 4,
  EXIT_FINALIZE = 5
};

static worker_t W;
/* Writes all of buf, retrying on short writes. W.write_mu held. */
static int write_locked(const uint8_t *buf, size_t len) {
  while (len > 0) {
    ssize_t n = send(W.fd, buf, len, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    buf += n;
    len -= (size_t)n;
  }
  return 0;
}

/* Writes all of buf; the write lock keeps frames whole. */
static int send_all(const uint8_t *buf, size_t len) {
  pthread_mutex_lock(&W.write_mu);
  int rc = write_locked(buf, len);
  pthread_mutex_unlock(&W.write_mu);
  return rc;
}

/*
 * Results of a lone execution thread may be held back while more calls are
 * already queued in this worker, and sent together: one write and one wake-up
 * of the manager for a batch instead of one per call. Held results go out
 * before the thread waits for anything, once HOLD_MAX_NS old or HOLD_MAX_BYTES
 * big, and from the watcher when a call runs long.
 */
#define HOLD_MAX_NS 100000u
#define HOLD_MAX_BYTES 65536u

/* Sends what is held. W.write_mu held. */
static int flush_held_locked(void) {
  int rc = W.held.len ? write_locked(W.held.data, W.held.len) : 0;
  W.held.len = 0;
  W.held_since_ns = 0;
  if (W.held.cap > HOLD_MAX_BYTES * 4) sp__buf_free(&W.held);
  return rc;
}

static void flush_held(void) {
  pthread_mutex_lock(&W.write_mu);
  int rc = flush_held_locked();
  pthread_mutex_unlock(&W.write_mu);
  if (rc != 0) proc_die(); /* manager gone */
}

/* Sends a finished call's frame, or holds it when more calls are queued. */
static void emit_result(const sp__buf_t *out, int more_queued) {
  int rc = 0;
  pthread_mutex_lock(&W.write_mu);
  if (!more_queued && W.held.len == 0) {
    rc = write_locked(out->data, out->len);
  } else if (sp__buf_append(&W.held, out->data, out->len) != 0) {
    rc = flush_held_locked();
    if (rc == 0) rc = write_locked(out->data, out->len);
  } else {
    uint64_t now = sp__now_ns();
    if (W.held_since_ns == 0) W.held_since_ns = now;
    if (!more_queued || W.held.len >= HOLD_MAX_BYTES || now - W.held_since_ns >= HOLD_MAX_NS)
      rc = flush_held_locked();
  }
  pthread_mutex_unlock(&W.write_mu);
  if (rc != 0) proc_die(); /* manager gone */
}

/* Sends one CHUNK frame of a stream (pyhost_call_t.send); its ordering before
 * the stream's RESULT is kept because both come from the same thread. */
static void send_chunk(const uint8_t *frame, size_t len) {
  if (send_all(frame, len) != 0) proc_die(); /* manager gone */
}

/* Sends an ERROR frame for request id (0: the worker as a whole). */
static void send_error(uint64_t id, sp__error_kind_t kind, int code, const char *text, size_t len) {
  sp__buf_t b = {0};
  if (sp__buf_append_error(&b, id, kind, code, text, len) == 0) send_all(b.data, b.len);
  sp__buf_free(&b);
}

static void send_text_frame(unsigned type, uint64_t id, const char *text, size_t len) {
  sp__buf_t b = {0};
  if (sp__buf_append_text_frame(&b, type, id, text, len) == 0) send_all(b.data, b.len);
  sp__buf_free(&b);
}

/* Queues j at the end, or at the front (reports go before queued calls). */
static void push_job(job_t *j, int front) {
  pthread_mutex_lock(&W.mu);
  j->next = NULL;
  if (front && W.head != NULL) {
    j->next = W.head;
    W.head = j;
  } else {
    if (W.tail) W.tail->next = j;
    else W.head = j;
    W.tail = j;
  }
  atomic_fetch_add_explicit(&W.queued, 1, memory_order_relaxed);
  /* A waiting thread takes this job, or the reading role if the reader takes
   * the job itself. */
  if (W.waiting > 0) pthread_cond_signal(&W.cond);
  pthread_mutex_unlock(&W.mu);
}

static int read_frames(int timeout_ms);

/*
 * Takes the free reading role, reads once (blocking until bytes arrive), and
 * lets the role go: threads waiting for a nested call's reply may take it
 * next, and with wake_idle so may idle execution threads (the caller will not
 * run what it read). W.mu held on entry and on return.
 */
static void read_in_role(int wake_idle) {
  W.role = ROLE_EXEC;
  pthread_mutex_unlock(&W.mu);
  read_frames(-1);
  pthread_mutex_lock(&W.mu);
  W.role = ROLE_NONE;
  if (wake_idle && W.waiting > 0) pthread_cond_broadcast(&W.cond);
  if (W.hc_waiting > 0) pthread_cond_broadcast(&W.hc_cond);
}

/* Every execution thread is running a call: nobody idle can read. W.mu held. */
static int all_busy_locked(void) { return W.running == W.threads; }

/* Takes the first queued job for the calling execution thread. W.mu held. */
static job_t *take_job_locked(void) {
  job_t *j = W.head;
  W.head = j->next;
  if (W.head == NULL) W.tail = NULL;
  atomic_fetch_sub_explicit(&W.queued, 1, memory_order_relaxed);
  W.running++;
  W.started++;
  W.last_start_ms = sp__now_ms();
  if (W.watcher_sleeping && all_busy_locked()) pthread_cond_signal(&W.watcher_cond);
  /* More jobs, or nobody left reading: hand on to a waiting thread. */
  if (W.waiting > 0 && (W.head != NULL || W.role == ROLE_NONE)) pthread_cond_signal(&W.cond);
  return j;
}

/*
 * An execution thread's next job (finished: it just ran one): a queued one
 * first; otherwise it takes the reading role, if free, and reads (blocking)
 * until something arrives; otherwise it waits for the reader to queue a job or
 * leave the role. NULL once SHUTDOWN arrived and the queue is empty.
 */
static job_t *next_job(int finished) {
  pthread_mutex_lock(&W.mu);
  if (finished) W.running--;
  for (;;) {
    if (W.head != NULL) {
      job_t *j = take_job_locked();
      pthread_mutex_unlock(&W.mu);
      return j;
    }
    if (W.closed) break;
    if (W.solo) {
      /* About to wait: nothing may stay held while this thread sleeps. */
      pthread_mutex_unlock(&W.mu);
      flush_held();
      pthread_mutex_lock(&W.mu);
      if (W.head != NULL || W.closed) continue;
    }
    if (W.role == ROLE_NONE) {
      read_in_role(0); /* this thread takes what it read itself */
      continue;
    }
    W.waiting++;
    pthread_cond_wait(&W.cond, &W.mu);
    W.waiting--;
  }
  /* Another waiting thread must see the end too. */
  pthread_cond_broadcast(&W.cond);
  pthread_mutex_unlock(&W.mu);
  flush_held();
  return NULL;
}

/* The watcher's nap of one check period. W.mu held. */
static void watch_wait(void) {
  struct timespec until;
  clock_gettime(CLOCK_MONOTONIC, &until);
  until.tv_nsec += WATCH_PERIOD_MS * 1000000L;
  if (until.tv_nsec >= 1000000000L) {
    until.tv_sec++;
    until.tv_nsec -= 1000000000L;
  }
  pthread_cond_timedwait(&W.watcher_cond, &W.mu, &until);
}

/*
 * The watcher: takes over reading while every execution thread is busy and
 * none started a call for WATCH_PERIOD_MS (long calls), and for good once
 * SHUTDOWN arrived (the manager may still ping while the adapter closes and
 * Python finalises).
 */
static void *watcher_main(void *arg) {
  (void)arg;
  pthread_mutex_lock(&W.mu);
  for (;;) {
    int take = 0;
    if (W.role == ROLE_NONE && W.closed) {
      take = 1;
    } else if (all_busy_locked() && W.role == ROLE_NONE) {
      uint64_t seen = W.started;
      watch_wait();
      take = all_busy_locked() && W.started == seen && W.role == ROLE_NONE;
      if (take) {
        /* A long call: results held before it go out now. */
        pthread_mutex_unlock(&W.mu);
        flush_held();
        pthread_mutex_lock(&W.mu);
        take = all_busy_locked() && W.started == seen && W.role == ROLE_NONE;
      }
    } else if (sp__now_ms() - W.last_start_ms < WATCH_LINGER_MS) {
      watch_wait();
    } else {
      W.watcher_sleeping = 1;
      pthread_cond_wait(&W.watcher_cond, &W.mu);
      W.watcher_sleeping = 0;
    }
    if (!take) continue;
    W.role = ROLE_WATCHER;
    /* Read until an execution thread is idle with nothing queued, then hand
     * the role back. */
    while (all_busy_locked() || W.head != NULL || W.closed) {
      pthread_mutex_unlock(&W.mu);
      read_frames(WATCH_PERIOD_MS);
      /* A result held because a call it read was queued must not wait for
       * the end of that call, which may run long now. */
      flush_held();
      pthread_mutex_lock(&W.mu);
    }
    W.role = ROLE_NONE;
    pthread_cond_broadcast(&W.cond);
    if (W.hc_waiting > 0) pthread_cond_broadcast(&W.hc_cond);
  }
  return NULL;
}

/*
 * A tool's nested call (pyhost_opts_t.hostcall): sends the HOSTCALL and waits
 * for its HOSTREPLY or a CANCEL of the call that makes it. Somebody must read
 * the socket meanwhile (in the process profile this is the only execution
 * thread): the waiting thread takes the reading role itself whenever it is
 * free, and otherwise sleeps until the reader wakes it. Detached from Python.
 */
static int hostcall_wait(const sp__hostcall_view_t *req, sp__buf_t *reply, int *code) {
  hc_wait_t me = {.id = atomic_fetch_add(&W.hc_next, 1) + 1, .parent = req->parent,
                  .reply = reply};
  sp__buf_t frame = {0};
  int rc = sp__buf_append_hostcall(&frame, me.id, req);
  if (rc == 0 && frame.len - SP__FRAME_HEADER_SIZE > W.max_frame) rc = SP_ETOOLARGE;
  if (rc != 0) {
    /* Too large a frame would be a protocol error to the manager: refuse it here. */
    sp__buf_free(&frame);
    return rc;
  }
  pthread_mutex_lock(&W.mu);
  me.next = W.hc_waits;
  W.hc_waits = &me;
  W.hc_waiting++;
  pthread_mutex_unlock(&W.mu);
  /* A CANCEL handled before we were listed reached only the thread's flag. */
  int cancelled = pyhost_cancelled(req->parent);
  if (!cancelled) {
    flush_held();
    if (send_all(frame.data, frame.len) != 0) proc_die(); /* manager gone */
  }
  sp__buf_free(&frame);
  pthread_mutex_lock(&W.mu);
  while (!me.done && !me.cancelled && !cancelled) {
    if (W.role == ROLE_NONE) {
      read_in_role(1); /* jobs it read are for idle threads */
      continue;
    }
    pthread_cond_wait(&W.hc_cond, &W.mu);
  }
  for (hc_wait_t **pp = &W.hc_waits; *pp; pp = &(*pp)->next) {
    if (*pp == &me) {
      *pp = me.next;
      break;
    }
  }
  W.hc_waiting--;
  pthread_mutex_unlock(&W.mu);
  if (!me.done) return SP_ECANCELLED;
  *code = me.code;
  return 0;
}

/* A HOSTREPLY: wakes the thread waiting for it (none: its call was cancelled). */
static void hostreply_arrived(const sp__frame_t *f) {
  int code;
  const char *text;
  size_t n;
  if (sp__hostreply_body_parse(f->body, f->length, &code, &text, &n) != 0) {
    fprintf(stderr, "snakepit-worker: ignoring a malformed HOSTREPLY frame\n");
    return;
  }
  pthread_mutex_lock(&W.mu);
  for (hc_wait_t *w = W.hc_waits; w != NULL; w = w->next) {
    if (w->id != f->id || w->done) continue;
    w->reply->len = 0;
    if (sp__buf_append(w->reply, text, n) != 0) {
      static const char oom[] = "{\"code\":\"SP_ENOMEM\",\"category\":\"internal\","
                                "\"message\":\"worker out of memory taking a nested result\"}";
      w->reply->len = 0;
      code = SP_ENOMEM;
      (void)sp__buf_append(w->reply, oom, sizeof(oom) - 1); /* small; may still fit */
    }
    w->code = code;
    w->done = 1;
    pthread_cond_broadcast(&W.hc_cond);
    break;
  }
  pthread_mutex_unlock(&W.mu);
}

/* The call `parent` was cancelled: its thread stops waiting for nested calls. */
static void hostcall_cancel_parent(uint64_t parent) {
  pthread_mutex_lock(&W.mu);
  int hit = 0;
  for (hc_wait_t *w = W.hc_waits; w != NULL; w = w->next)
    if (w->parent == parent) w->cancelled = hit = 1;
  if (hit) pthread_cond_broadcast(&W.hc_cond);
  pthread_mutex_unlock(&W.mu);
}

/* An execution thread's result buffer is released once it grew past this. */
#define RESULT_BUF_KEEP (1u << 20)

static void *exec_main(void *arg) {
  int index = (int)(intptr_t)arg;
  char name[96];
  snprintf(name, sizeof(name), "snakepit-%s-t%d", W.worker_id, index + 1);
  pyhost_thread_t *py = pyhost_thread_enter(name);
  pthread_mutex_lock(&W.mu);
  W.entered++;
  pthread_cond_broadcast(&W.cond);
  pthread_mutex_unlock(&W.mu);
  if (py == NULL) return NULL;

  sp__buf_t out = {0};
  job_t *j;
  for (int finished = 0; (j = next_job(finished)) != NULL; finished = 1) {
    out.len = 0;
    pyhost_call_t call = {.id = j->id,
                          .flags = j->flags,
                          .tool = j->data,
                          .tool_len = j->tool_len,
                          .args = j->data + j->tool_len,
                          .args_len = j->args_len,
                          .arrays = (const uint8_t *)j->data + j->tool_len + j->args_len,
                          .arrays_len = j->arrays_len,
                          .send = send_chunk};
    if (j->session_len > 0) {
      call.session = j->data + j->tool_len + j->args_len + j->arrays_len;
      call.session_len = j->session_len;
      call.session_flags = j->session_flags;
    }
    if (j->kind == JOB_SESSION_END) {
      /* No reply: the manager forgot the session already. */
      pyhost_session_end(py, j->data, j->session_len);
      free(j);
      continue;
    }
    int rc = j->kind == JOB_REPORT
                 ? pyhost_report(py, j->id, j->data, j->args_len, W.max_frame, &out)
                 : pyhost_invoke(py, &call, W.max_frame, &out);
    if (rc == 0) {
      emit_result(&out, W.solo && atomic_load_explicit(&W.queued, memory_order_relaxed) > 0);
    } else {
      static const char msg[] = "worker out of memory building the result";
      send_error(j->id, SP__ERRKIND_PROTOCOL, SP_ENOMEM, msg, sizeof(msg) - 1);
    }
    free(j);
    /* Do not keep a huge result buffer around for the thread's whole life. */
    sp__buf_shrink(&out, RESULT_BUF_KEEP);
  }
  sp__buf_free(&out);
  pyhost_thread_leave(py);
  return NULL;
}

/* Queues a job for an execution thread; answers with an ERROR without memory. */
static void queue_job(uint64_t id, int kind, unsigned flags, const char *tool, size_t tool_len,
                      const char *args, size_t args_len, const uint8_t *arrays,
                      size_t arrays_len, const char *session, size_t session_len,
                      unsigned session_flags) {
  job_t *j = malloc(sizeof(*j) + tool_len + args_len + arrays_len + session_len);
  if (j == NULL) {
    static const char msg[] = "worker out of memory queueing the call";
    send_error(id, SP__ERRKIND_PROTOCOL, SP_ENOMEM, msg, sizeof(msg) - 1);
    return;
  }
  j->id = id;
  j->kind = kind;
  j->flags = flags;
  j->tool_len = tool_len;
  j->args_len = args_len;
  j->arrays_len = arrays_len;
  if (tool_len > 0) memcpy(j->data, tool, tool_len);
  if (args_len > 0) memcpy(j->data + tool_len, args, args_len);
  if (arrays_len > 0) memcpy(j->data + tool_len + args_len, arrays, arrays_len);
  j->session_len = session_len;
  j->session_flags = session_flags;
  if (session_len > 0) memcpy(j->data + tool_len + args_len + arrays_len, session, session_len);
  push_job(j, kind == JOB_REPORT);
}

static void handle_frame(const sp__frame_t *f) {
  switch (f->type) {
    case SP__FRAME_CALL: {
      sp__call_view_t v;
      if (sp__call_body_parse(f->body, f->length, f->flags, &v) != 0) {
        static const char msg[] = "malformed CALL frame";
        send_error(f->id, SP__ERRKIND_PROTOCOL, SP_EPROTOCOL, msg, sizeof(msg) - 1);
        return;
      }
      queue_job(f->id, JOB_CALL, f->flags, v.tool, v.tool_len, v.args, v.args_len, v.arrays,
                v.arrays_len, v.session, v.session_len, v.session_flags);
      return;
    }
    case SP__FRAME_SESSION_END: {
      /* Queued behind the calls that arrived before it, so they still see the state. */
      const char *sid;
      size_t sid_len;
      if (sp__session_end_body_parse(f->body, f->length, &sid, &sid_len) == 0)
        queue_job(0, JOB_SESSION_END, 0, NULL, 0, NULL, 0, NULL, 0, sid, sid_len, 0);
      return;
    }
    case SP__FRAME_STATS:
      /* The manager asks for this worker's report (JSON arguments in the body). */
      queue_job(f->id, JOB_REPORT, 0, NULL, 0, (const char *)f->body, f->length, NULL, 0, NULL,
                0, 0);
      return;
    case SP__FRAME_PING: {
      sp__pong_t pong;
      sp__buf_t b = {0};
      sp__ping_body_parse(f->body, f->length, &pong);
      pyhost_counters(&pong.attach_wait_ns, &pong.calls_done);
      pong.gil_enabled = pyhost_gil_enabled();
      if (sp__buf_append_pong(&b, f->id, &pong) == 0) send_all(b.data, b.len);
      sp__buf_free(&b);
      return;
    }
    case SP__FRAME_CANCEL: {
      /* Not started yet (pipelined behind another call): drop it and free its slot. */
      job_t *found = NULL;
      pthread_mutex_lock(&W.mu);
      for (job_t **pp = &W.head, *prev = NULL; *pp; prev = *pp, pp = &(*pp)->next) {
        if ((*pp)->id == f->id) {
          found = *pp;
          *pp = found->next;
          if (W.tail == found) W.tail = prev;
          atomic_fetch_sub_explicit(&W.queued, 1, memory_order_relaxed);
          break;
        }
      }
      pthread_mutex_unlock(&W.mu);
      if (found != NULL) {
        static const char msg[] = "cancelled before it started";
        send_error(f->id, SP__ERRKIND_PROTOCOL, SP_ECANCELLED, msg, sizeof(msg) - 1);
        free(found);
      } else {
        pyhost_cancel(f->id);
        hostcall_cancel_parent(f->id);
      }
      return;
    }
    case SP__FRAME_HOSTREPLY:
      hostreply_arrived(f);
      return;
    case SP__FRAME_CHUNK: {
      /* Credit: the manager's consumer took more chunks of this stream. */
      uint32_t n;
      if (sp__credit_body_parse(f->body, f->length, &n) == 0) pyhost_credit(f->id, n);
      return;
    }
    case SP__FRAME_SHUTDOWN:
      pthread_mutex_lock(&W.mu);
      W.closed = 1;
      pthread_cond_broadcast(&W.cond);
      /* A sleeping watcher must wake to read while Python finalises. */
      pthread_cond_signal(&W.watcher_cond);
      pthread_mutex_unlock(&W.mu);
      return;
    default:
      fprintf(stderr, "snakepit-worker: ignoring unexpected %s frame\n",
              sp__frame_type_name(f->type));
  }
}

/*
 * Reads what the socket has (waiting up to timeout_ms for it, -1 = no limit)
 * and handles every whole frame. Only the holder of the reading role calls it.
 * Waiting is done in poll() rather than a blocking read: a thread blocked in
 * read() on a Unix socket is also woken each time the manager consumes one of
 * our results, a wake-up for nothing per call; poll() filters those out.
 * Returns 1 when bytes were read, 0 on timeout; EOF and framing errors end the
 * process.
 */
/* The read buffer is released once empty after it grew past this (a large CALL). */
#define READ_BUF_KEEP (1u << 20)

static int read_frames(int timeout_ms) {
  uint8_t *p;
  size_t avail;
  if (sp__decoder_space(&W.dec, SP__READ_CHUNK, &p, &avail) != 0) {
    fprintf(stderr, "snakepit-worker: out of memory reading frames\n");
    _exit(EXIT_PROTOCOL);
  }
  ssize_t n;
  for (;;) {
    n = recv(W.fd, p, avail, MSG_DONTWAIT);
    if (n >= 0) break;
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) break;
    struct pollfd pfd = {.fd = W.fd, .events = POLLIN};
    int pr = poll(&pfd, 1, timeout_ms);
    if (pr == 0) return 0;
    if (pr < 0 && errno != EINTR) break;
  }
  if (n <= 0) {
    /* EOF: the manager is gone (or closed us); nobody can receive results. */
    proc_die();
  }
  sp__decoder_commit(&W.dec, (size_t)n);
  sp__frame_t f;
  sp_error_t err;
  int rc;
  while ((rc = sp__decoder_next(&W.dec, &f, &err)) == 1) handle_frame(&f);
  if (rc < 0) {
    fprintf(stderr, "snakepit-worker: %s; closing the connection\n", err.message);
    send_error(0, SP__ERRKIND_PROTOCOL, rc, err.message, strlen(err.message));
    _exit(EXIT_PROTOCOL);
  }
  sp__decoder_shrink(&W.dec, READ_BUF_KEEP);
  return 1;
}

int main(int argc, char **argv) {
  proc_tune_malloc();
  if ((argv = proc_title_init(argc, argv)) == NULL) return 1;
  proc_args_t args;
  int parsed = proc_parse_args(argc, argv, &args);
  if (parsed != 0) return parsed == 1 ? EXIT_OK : parsed == 2 ? EXIT_USAGE : EXIT_THREADS;
  W.fd = args.fd;
  W.threads = args.threads;
  W.max_frame = args.max_frame;
  W.worker_id = args.worker_id;
  const char *adapter = args.adapter, *pool = args.pool, *profile = args.profile;

  /* Never outlive the manager: die with it, even if the socket EOF is missed. */
  proc_die_with_manager();

  pthread_mutex_init(&W.write_mu, NULL);
  pthread_mutex_init(&W.mu, NULL);
  pthread_cond_init(&W.cond, NULL);
  pthread_cond_init(&W.hc_cond, NULL);
  pthread_condattr_t mono;
  pthread_condattr_init(&mono);
  pthread_condattr_setclock(&mono, CLOCK_MONOTONIC);
  pthread_cond_init(&W.watcher_cond, &mono);
  pthread_condattr_destroy(&mono);
  sp__decoder_init(&W.dec, W.max_frame);
  W.solo = W.threads == 1;

  pyhost_opts_t po = {.adapter = adapter,
                      .paths = args.paths,
                      .path_count = args.npaths,
                      .adapter_args = args.aargs,
                      .adapter_arg_count = args.naargs,
                      .worker_id = W.worker_id,
                      .pool = pool,
                      .profile = profile,
                      .threads = W.threads,
                      .preload = args.preload,
                      .hostcall = hostcall_wait};
  if (args.choose) {
    /* worker_profile: auto: the manager reads the decision from stdout. */
    char *json = NULL, *failure = NULL;
    if (pyhost_choose_profile(&po, &json, &failure) != 0) {
      fprintf(stderr, "snakepit-worker: adapter %s failed to load (traceback above)\n", adapter);
      _exit(EXIT_ADAPTER);
    }
    printf("%s\n", json);
    fflush(stdout);
    _exit(EXIT_OK);
  }
  if (args.fork_server) {
    /* Returns only in a forked worker: its socket is fd 3, the rest as above. */
    W.worker_id = forkserver_run(&po, W.fd);
    po.worker_id = W.worker_id;
    W.fd = 3;
    proc_title_set(pool, W.worker_id, profile, W.threads, adapter);
  }
  /* The shared memory for arrays: the pool's input (read-only) and our output. */
  if (fcntl(SP__FD_IN_SHM, F_GETFD) >= 0 && fcntl(SP__FD_OUT_SHM, F_GETFD) >= 0) {
    sp_error_t err;
    sp__shm_t *in = NULL, *out = NULL;
    if (sp__shm_attach(&in, SP__FD_IN_SHM, 1, &err) != 0 || sp__shm_protect_table(in) != 0 ||
        sp__shm_attach(&out, SP__FD_OUT_SHM, 1, &err) != 0) {
      fprintf(stderr, "snakepit-worker: %s\n", err.message);
      return EXIT_USAGE;
    }
    pyhost_set_shm(in, out);
  }
  descendants_adopt();
  proc_sweep_on();
  char *hello = NULL, *failure = NULL;
  if (pyhost_start(&po, &hello, &failure) != 0) {
    const char *f =
        failure ? failure : "{\"type\":\"MemoryError\",\"message\":\"\",\"traceback\":\"\"}";
    fprintf(stderr, "snakepit-worker: adapter %s failed to load (traceback above)\n", adapter);
    send_error(0, SP__ERRKIND_STARTUP, SP_ESTARTUP, f, strlen(f));
    return EXIT_ADAPTER;
  }

  pthread_t *th = calloc((size_t)W.threads, sizeof(*th));
  if (th == NULL) return EXIT_THREADS;
  for (int i = 0; i < W.threads; i++) {
    if (pthread_create(&th[i], NULL, exec_main, (void *)(intptr_t)i) != 0) {
      fprintf(stderr, "snakepit-worker: cannot start execution thread %d\n", i + 1);
      return EXIT_THREADS;
    }
  }
  pthread_mutex_lock(&W.mu);
  while (W.entered < W.threads) pthread_cond_wait(&W.cond, &W.mu);
  pthread_mutex_unlock(&W.mu);

  send_text_frame(SP__FRAME_HELLO, 0, hello, strlen(hello));
  free(hello);

  pthread_t watcher;
  if (pthread_create(&watcher, NULL, watcher_main, NULL) != 0) return EXIT_THREADS;

  /* Execution threads leave once SHUTDOWN closed the queue and it is empty. */
  for (int i = 0; i < W.threads; i++) pthread_join(th[i], NULL);
  int rc = pyhost_finish();
  /* The manager kills our process group once we are gone; what left it goes now. */
  proc_sweep();
  free(th);
  free(args.paths);
  free(args.aargs);
  fflush(NULL);
  _exit(rc == 0 ? EXIT_OK : EXIT_FINALIZE);
}

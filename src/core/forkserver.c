/*
 * forkserver.c - manager side of a pool's fork server (worker_start: fork).
 * One snakepit-worker --fork-server per pool imports the adapter's module once;
 * each worker is then a fork of it, handed its socket and output pipe over a
 * SOCK_SEQPACKET control socket (messages in forkproto.h). The fork server
 * reaps its children and reports their exits here, and they go down the same
 * exit path as exec'd workers. Loop thread only.
 */
#include "forkserver.h"

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
#include "forkproto.h"
#include "log.h"
#include "spawn.h"
#include "worker.h"

_Static_assert(SP__CHILD_FDS == SP__FS_FORK_FDS, "a FORK carries every fd of a worker");

/* After the fork server exits, how long its output may take to arrive; after a
 * stop, how much longer than its workers' drain it may live. */
#define FS_OUTPUT_DRAIN_MS 100
#define FS_EXIT_SLACK_MS 1000

struct sp__forkserver_s {
  sp__pool_t *pool;
  uv_process_t proc;
  uv_pipe_t out;
  uv_poll_t poll;
  uv_timer_t timer; /* stop deadline, then the grace for its last output */
  int open_handles;
  int fd; /* the manager's end of the control socket */
  int pid;
  int ready;    /* READY came: requests go out at once */
  int stopping; /* runtime stop: exits once its workers did */
  int exited;
  sp__worker_t *workers; /* every worker it serves, forked or still queued here */
  sp__linebuf_t lines;
  char rbuf[sizeof(sp__fs_msg_t) + SP__FS_MAX_TEXT + 1];
};

static void unlink_worker(sp__forkserver_t *fs, sp__worker_t *w) {
  for (sp__worker_t **pp = &fs->workers; *pp; pp = &(*pp)->fs_next) {
    if (*pp == w) {
      *pp = w->fs_next;
      break;
    }
  }
  w->fs = NULL;
  w->fs_next = NULL;
  for (int i = 0; i < SP__CHILD_FDS; i++) {
    if (w->child_fds[i] >= 0) close(w->child_fds[i]);
    w->child_fds[i] = -1;
  }
}

/* Ends a worker that never ran; its exit_note says why, in place of an exit code. */
static void worker_not_started(sp__forkserver_t *fs, sp__worker_t *w, int64_t status, int sig) {
  unlink_worker(fs, w);
  sp__worker_exited(w, status, sig);
}

static void detach(sp__forkserver_t *fs) {
  if (fs->pool->fs == fs) fs->pool->fs = NULL;
}

/* ---- handles ------------------------------------------------------------ */

static void on_closed(uv_handle_t *h) {
  sp__forkserver_t *fs = h->data;
  if (--fs->open_handles > 0) return;
  sp_runtime_t *rt = fs->pool->rt;
  if (fs->fd >= 0) close(fs->fd);
  free(fs);
  sp__rt_worker_gone(rt);
}

static void close_handle(sp__forkserver_t *fs, void *h) {
  (void)fs;
  if (!uv_is_closing(h)) uv_close(h, on_closed);
}

static void emit_line(void *ctx, const char *line, size_t len) {
  sp__forkserver_t *fs = ctx;
  sp__log(SP__LOG_INFO, "[%s/fork-server pid %d] %.*s", fs->pool->cfg->name, fs->pid, (int)len,
          line);
}

static void out_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  sp__forkserver_t *fs = h->data;
  (void)suggested;
  buf->base = fs->lines.buf + fs->lines.len;
  buf->len = sizeof(fs->lines.buf) - fs->lines.len;
}

static void out_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
  sp__forkserver_t *fs = s->data;
  (void)buf;
  sp__linebuf_feed(&fs->lines, n < 0 ? -1 : (long)n, emit_line, fs);
  if (n < 0) close_handle(fs, s);
}

/* ---- requests ----------------------------------------------------------- */

static void send_fork(sp__forkserver_t *fs, sp__worker_t *w) {
  char buf[sizeof(sp__fs_msg_t) + sizeof(w->name)];
  sp__fs_msg_t m = {SP__FS_FORK, w->serial, 0, 0, 0, (uint32_t)strlen(w->name)};
  memcpy(buf, &m, sizeof(m));
  memcpy(buf + sizeof(m), w->name, m.len);
  union {
    char buf[CMSG_SPACE(SP__CHILD_FDS * sizeof(int))];
    struct cmsghdr align;
  } cm;
  memset(&cm, 0, sizeof(cm));
  struct iovec iov = {buf, sizeof(m) + m.len};
  struct msghdr mh = {
      .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cm.buf, .msg_controllen = sizeof(cm.buf)};
  struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(SP__CHILD_FDS * sizeof(int));
  memcpy(CMSG_DATA(c), w->child_fds, SP__CHILD_FDS * sizeof(int));
  ssize_t n;
  do n = sendmsg(fs->fd, &mh, MSG_DONTWAIT | MSG_NOSIGNAL);
  while (n < 0 && errno == EINTR);
  if (n < 0) {
    snprintf(w->exit_note, sizeof(w->exit_note), "could not be handed to its fork server: %s",
             strerror(errno));
    worker_not_started(fs, w, 0, 0);
    return;
  }
  /* The fork server holds its own copies now; ours would hide the worker's EOF. */
  for (int i = 0; i < SP__CHILD_FDS; i++) {
    close(w->child_fds[i]);
    w->child_fds[i] = -1;
  }
  w->fork_sent = 1;
}

static void fail_queued(sp__forkserver_t *fs, const char *json, size_t len);

/* This fork server will not fork: its queued workers start another way, with
 * exec or (use_exec 0) from the pool's next fork server. */
static void restart_queued(sp__forkserver_t *fs, int use_exec) {
  sp__pool_t *p = fs->pool;
  detach(fs);
  for (sp__worker_t *w = fs->workers, *next; w; w = next) {
    next = w->fs_next;
    if (w->fork_sent) continue;
    int fds[SP__CHILD_FDS];
    memcpy(fds, w->child_fds, sizeof(fds));
    for (int i = 0; i < SP__CHILD_FDS; i++) w->child_fds[i] = -1;
    unlink_worker(fs, w);
    sp_error_t err;
    int rc = use_exec ? sp__worker_exec(w, fds, &err) : sp__forkserver_request(p, w, fds, &err);
    if (rc != 0) {
      snprintf(w->exit_note, sizeof(w->exit_note), "could not be started: %.130s", err.message);
      sp_error_free(&err);
      sp__worker_exited(w, 0, 0);
    }
  }
}

/* The fork server was not single-threaded: this pool execs its workers from now on. */
static void fall_back_to_exec(sp__forkserver_t *fs, int threads) {
  sp__pool_t *p = fs->pool;
  if (p->cfg->preload == SP__PRELOAD_ON) {
    char json[400];
    snprintf(json, sizeof(json),
             "{\"type\":\"PreloadError\",\"message\":\"adapter %.100s cannot be preloaded: "
             "%d threads run after importing its module (forking is only safe "
             "single-threaded)\",\"traceback\":\"\"}",
             p->cfg->adapter, threads);
    fail_queued(fs, json, strlen(json));
    return;
  }
  sp__log(SP__LOG_WARN,
          "pool '%s': %d threads run in its fork server after importing the adapter module "
          "(forking is only safe single-threaded); its workers start with exec instead",
          p->cfg->name, threads);
  p->fork_unsafe = 1;
  if (p->cfg->preload != SP__PRELOAD_OFF) {
    p->preload_off = 1;
    snprintf(p->preload_note, sizeof(p->preload_note),
             "%d threads run after importing the adapter module; workers start with exec",
             threads);
  }
  restart_queued(fs, 1);
}

/* The adapter module failed to import: every queued worker fails with its error. */
static void fail_queued(sp__forkserver_t *fs, const char *json, size_t len) {
  detach(fs);
  for (sp__worker_t *w = fs->workers, *next; w; w = next) {
    next = w->fs_next;
    if (w->fork_sent) continue;
    unlink_worker(fs, w);
    free(w->failure);
    w->failure = malloc(len + 2);
    if (w->failure != NULL) {
      w->failure[0] = SP__ERRKIND_STARTUP;
      memcpy(w->failure + 1, json, len);
      w->failure[len + 1] = '\0';
    }
    sp__worker_exited(w, 3, 0);
  }
}

/*
 * The adapter cannot be preloaded (text: JSON saying why). Asked for with
 * preload: true, that is the pool's startup error; with auto, the pool goes on
 * without it: a fork server that only imports replaces this one.
 */
static void preload_refused(sp__forkserver_t *fs, const char *json, size_t len) {
  sp__pool_t *p = fs->pool;
  if (p->cfg->preload == SP__PRELOAD_ON) {
    fail_queued(fs, json, len);
    return;
  }
  json_t *doc = json_loadb(json, len, 0, NULL);
  const char *msg = json_string_value(json_object_get(doc, "message"));
  snprintf(p->preload_note, sizeof(p->preload_note), "%s",
           msg ? msg : "the adapter cannot be preloaded");
  json_decref(doc);
  sp__log(SP__LOG_WARN,
          "pool '%s': %s; preload: auto falls back to building the adapter in each worker",
          p->cfg->name, p->preload_note);
  p->preload_off = 1;
  fs->stopping = 1; /* its exit is expected */
  restart_queued(fs, 0);
}

static sp__worker_t *find_worker(sp__forkserver_t *fs, uint32_t serial, int pid) {
  for (sp__worker_t *w = fs->workers; w; w = w->fs_next)
    if (pid > 0 ? w->pid == pid : w->serial == serial) return w;
  return NULL;
}

static void on_message(sp__forkserver_t *fs, const sp__fs_msg_t *m, const char *text) {
  sp__worker_t *w;
  switch (m->type) {
    case SP__FS_READY:
      fs->ready = 1;
      for (sp__worker_t *q = fs->workers, *next; q; q = next) {
        next = q->fs_next;
        if (!q->fork_sent) send_fork(fs, q);
      }
      return;
    case SP__FS_UNSAFE: fall_back_to_exec(fs, m->a); return;
    case SP__FS_FAILED: fail_queued(fs, text, m->len); return;
    case SP__FS_NO_PRELOAD: preload_refused(fs, text, m->len); return;
    case SP__FS_FORKED:
      if ((w = find_worker(fs, m->serial, 0)) == NULL) return;
      if (w->pid <= 0) w->pid = m->a;
      /* A kill asked for before the pid was known happens now. */
      if (w->kill_reason != NULL) sp__worker_kill(w, w->kill_reason);
      return;
    case SP__FS_FORK_FAILED:
      if ((w = find_worker(fs, m->serial, 0)) == NULL) return;
      snprintf(w->exit_note, sizeof(w->exit_note), "could not be forked by its fork server: %s",
               strerror(m->a));
      worker_not_started(fs, w, 0, 0);
      return;
    case SP__FS_EXITED:
      if ((w = find_worker(fs, 0, m->a)) == NULL) return;
      unlink_worker(fs, w);
      sp__worker_exited(w, m->b, m->c);
      return;
    default:
      sp__log(SP__LOG_WARN, "[%s/fork-server pid %d] unknown message %u ignored",
              fs->pool->cfg->name, fs->pid, m->type);
  }
}

/* Reads every message waiting on the control socket. */
static void drain(sp__forkserver_t *fs) {
  while (fs->fd >= 0 && uv_is_active((uv_handle_t *)&fs->poll)) {
    ssize_t n = recv(fs->fd, fs->rbuf, sizeof(fs->rbuf) - 1, MSG_DONTWAIT);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    if (n <= 0) {
      uv_poll_stop(&fs->poll); /* it closed its end: its exit follows */
      return;
    }
    sp__fs_msg_t m;
    if ((size_t)n < sizeof(m)) continue;
    memcpy(&m, fs->rbuf, sizeof(m));
    if (sizeof(m) + m.len > (size_t)n) continue;
    fs->rbuf[sizeof(m) + m.len] = '\0';
    on_message(fs, &m, fs->rbuf + sizeof(m));
  }
}

static void on_ctl(uv_poll_t *h, int status, int events) {
  (void)status;
  (void)events;
  sp__forkserver_t *fs = h->data;
  drain(fs);
  sp__rt_settle(fs->pool->rt);
}

/* ---- exit --------------------------------------------------------------- */

static void on_timer(uv_timer_t *t) {
  sp__forkserver_t *fs = t->data;
  if (!fs->exited) {
    sp__log(SP__LOG_WARN,
            "[%s/fork-server pid %d] still running after its workers stopped; "
            "killing it",
            fs->pool->cfg->name, fs->pid);
    kill(-fs->pid, SIGKILL);
    return;
  }
  close_handle(fs, &fs->out); /* its output had its grace period */
  close_handle(fs, &fs->timer);
}

static void server_exited(uv_process_t *proc, int64_t status, int sig) {
  sp__forkserver_t *fs = proc->data;
  fs->exited = 1;
  drain(fs); /* the reports it sent before exiting */
  detach(fs);
  sp__log(fs->stopping ? SP__LOG_DEBUG : SP__LOG_WARN,
          "[%s/fork-server pid %d] exited (code %lld, signal %d)", fs->pool->cfg->name, fs->pid,
          (long long)status, sig);
  for (sp__worker_t *w = fs->workers, *next; w; w = next) {
    next = w->fs_next;
    if (w->pid > 0) {
      /* Its parent-death signal takes it down; make sure, then report it. */
      unlink_worker(fs, w);
      kill(-w->pid, SIGKILL);
      if (w->kill_reason == NULL) w->kill_reason = "its fork server exited";
      sp__worker_exited(w, 0, SIGKILL);
    } else {
      snprintf(w->exit_note, sizeof(w->exit_note),
               "could not be started: its fork server exited (code %lld, signal %d)",
               (long long)status, sig);
      worker_not_started(fs, w, status, sig);
    }
  }
  close_handle(fs, &fs->poll);
  close_handle(fs, &fs->proc);
  uv_timer_start(&fs->timer, on_timer, FS_OUTPUT_DRAIN_MS, 0);
  sp__rt_settle(fs->pool->rt);
}

/* ---- start / stop ------------------------------------------------------- */

static sp__forkserver_t *start_server(sp__pool_t *p, sp_error_t *err) {
  sp_runtime_t *rt = p->rt;
  sp__forkserver_t *fs = calloc(1, sizeof(*fs));
  if (fs == NULL) {
    sp__error_set(err, SP_ENOMEM, "out of memory starting the fork server of pool '%s'",
                  p->cfg->name);
    return NULL;
  }
  int sv[2] = {-1, -1}, op[2] = {-1, -1};
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0 || pipe2(op, O_CLOEXEC) != 0) {
    sp__error_set(err, SP_EIO, "pool '%s': cannot create the fork server's socket: %s",
                  p->cfg->name, strerror(errno));
    for (int i = 0; i < 2; i++) {
      if (sv[i] >= 0) close(sv[i]);
      if (op[i] >= 0) close(op[i]);
    }
    free(fs);
    return NULL;
  }
  fs->pool = p;
  fs->fd = sv[0];
  rt->live_workers++;
  uv_pipe_init(&rt->loop, &fs->out, 0);
  uv_timer_init(&rt->loop, &fs->timer);
  fs->out.data = fs->timer.data = fs->proc.data = fs->poll.data = fs;
  fs->open_handles = 2;
  int rc = sp__spawn_worker_process(p, NULL, &fs->proc, server_exited, sv[1], op[1], -1, -1,
                                    err);
  close(sv[1]);
  close(op[1]);
  if (rc != 0) {
    close(op[0]);
    fs->exited = 1;
    close_handle(fs, &fs->out);
    close_handle(fs, &fs->timer);
    return NULL;
  }
  fs->open_handles++;
  fs->pid = fs->proc.pid;
  p->fork_server_starts++;
  fcntl(fs->fd, F_SETFL, fcntl(fs->fd, F_GETFL) | O_NONBLOCK);
  uv_poll_init(&rt->loop, &fs->poll, fs->fd);
  fs->open_handles++;
  uv_poll_start(&fs->poll, UV_READABLE, on_ctl);
  uv_pipe_open(&fs->out, op[0]);
  uv_read_start((uv_stream_t *)&fs->out, out_alloc, out_read);
  sp__log(SP__LOG_DEBUG, "[%s/fork-server pid %d] started", p->cfg->name, fs->pid);
  return fs;
}

int sp__forkserver_request(sp__pool_t *p, sp__worker_t *w, int fds[SP__CHILD_FDS],
                           sp_error_t *err) {
  if (p->fs == NULL && (p->fs = start_server(p, err)) == NULL) {
    for (int i = 0; i < SP__CHILD_FDS; i++) close(fds[i]);
    return err->code;
  }
  sp__forkserver_t *fs = p->fs;
  w->fs = fs;
  memcpy(w->child_fds, fds, SP__CHILD_FDS * sizeof(int));
  w->fs_next = fs->workers;
  fs->workers = w;
  if (fs->ready) send_fork(fs, w);
  return 0;
}

void sp__forkserver_state(const sp__pool_t *p, int *pid, int *ready) {
  const sp__forkserver_t *fs = p->fs;
  *pid = fs && !fs->exited ? fs->pid : 0;
  *ready = fs && !fs->exited && fs->ready;
}

void sp__forkserver_forget(sp__worker_t *w) { unlink_worker(w->fs, w); }

void sp__forkserver_kill_early(sp__worker_t *w) {
  /* Sent: the kill follows its FORKED report. Still queued here: it never runs. */
  if (w->fork_sent) return;
  unlink_worker(w->fs, w);
  sp__worker_exited(w, 0, SIGKILL);
}

void sp__forkserver_stop(sp__pool_t *p) {
  sp__forkserver_t *fs = p->fs;
  if (fs == NULL) return;
  detach(fs);
  fs->stopping = 1;
  if (!fs->ready || fs->workers == NULL) {
    kill(-fs->pid, SIGKILL); /* nothing of value in it yet */
    return;
  }
  /* End of requests: it leaves once its workers (being stopped now) exited. */
  shutdown(fs->fd, SHUT_WR);
  int64_t ms = p->cfg->drain_timeout_ms < SP__STOP_DRAIN_MAX_MS ? p->cfg->drain_timeout_ms
                                                           : SP__STOP_DRAIN_MAX_MS;
  uv_timer_start(&fs->timer, on_timer, (uint64_t)ms + FS_EXIT_SLACK_MS, 0);
}

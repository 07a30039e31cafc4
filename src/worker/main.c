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
#include <getopt.h>
#include <malloc.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "errors.h"
#include "forkserver.h"
#include "protocol.h"
#include "pyhost.h"

#ifndef SP_SDK_DIR
#define SP_SDK_DIR ""
#endif

typedef struct job_s {
  struct job_s *next;
  uint64_t id;
  size_t tool_len;
  size_t args_len;
  char data[]; /* tool bytes then args bytes */
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
  int closed;     /* SHUTDOWN received: no more jobs */
  int entered;    /* execution threads that finished their Python set-up */

  /* Reading roles (see the top of the file). */
  int solo;             /* one execution thread: it may hold back results */
  int role;             /* ROLE_*: who reads the socket now */
  int running;          /* execution threads running a call */
  int waiting;          /* execution threads waiting in cond for a job or the role */
  uint64_t started;     /* calls started, to tell one long call from many short ones */
  int64_t last_start_ms;
  int watcher_sleeping; /* the watcher waits without a timeout: signal it */
  pthread_cond_t watcher_cond;
} worker_t;

enum { ROLE_NONE = 0, ROLE_EXEC, ROLE_WATCHER };

/* How often the watcher looks at a running call, and how long after the last
 * call it keeps looking before it sleeps until the next one. */
#define WATCH_PERIOD_MS 2
#define WATCH_LINGER_MS 50

static worker_t W;
static int g_group_leader; /* this worker leads its own process group */

/*
 * The manager is gone. When we lead our own process group, take the whole group
 * down so that processes a tool started do not outlive us; kill() is
 * async-signal-safe, so this also serves as the parent-death signal handler.
 */
static void die_with_group(void) {
  if (g_group_leader) kill(0, SIGKILL);
  _exit(0);
}

static void on_parent_death(int sig) {
  (void)sig;
  die_with_group();
}

static void usage(FILE *f) {
  fprintf(f,
          "usage: snakepit-worker --adapter MODULE.CLASS (--fd N | --listen HOST:PORT)\n"
          "                       [--threads N] [--pool NAME] [--worker-id ID]\n"
          "                       [--profile process|thread] [--python-path DIR]...\n"
          "                       [--adapter-arg ARG]... [--max-frame BYTES]\n"
          "                       [--thread-safety-check] [--fork-server]\n"
          "Runs the adapter's tools for a snakepit pool manager over a framed socket.\n");
}

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

static uint64_t mono_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

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
  if (rc != 0) die_with_group(); /* manager gone */
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
    uint64_t now = mono_ns();
    if (W.held_since_ns == 0) W.held_since_ns = now;
    if (!more_queued || W.held.len >= HOLD_MAX_BYTES || now - W.held_since_ns >= HOLD_MAX_NS)
      rc = flush_held_locked();
  }
  pthread_mutex_unlock(&W.write_mu);
  if (rc != 0) die_with_group(); /* manager gone */
}

static void send_frame(unsigned type, uint64_t id, int kind, const char *text, size_t len) {
  sp__buf_t b = {0};
  if (sp__buf_append_kind_frame(&b, type, id, kind, text, len) == 0) send_all(b.data, b.len);
  sp__buf_free(&b);
}

static void push_job(job_t *j) {
  pthread_mutex_lock(&W.mu);
  j->next = NULL;
  if (W.tail) W.tail->next = j;
  else W.head = j;
  W.tail = j;
  atomic_fetch_add_explicit(&W.queued, 1, memory_order_relaxed);
  /* A waiting thread takes this job, or the reading role if the reader takes
   * the job itself. */
  if (W.waiting > 0) pthread_cond_signal(&W.cond);
  pthread_mutex_unlock(&W.mu);
}

static int64_t mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int read_frames(int timeout_ms);

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
  W.last_start_ms = mono_ms();
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
      W.role = ROLE_EXEC;
      pthread_mutex_unlock(&W.mu);
      read_frames(-1);
      pthread_mutex_lock(&W.mu);
      W.role = ROLE_NONE;
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
    } else if (mono_ms() - W.last_start_ms < WATCH_LINGER_MS) {
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
      pthread_mutex_lock(&W.mu);
    }
    W.role = ROLE_NONE;
    pthread_cond_broadcast(&W.cond);
  }
  return NULL;
}

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
    if (pyhost_invoke(py, j->id, j->data, j->tool_len, j->data + j->tool_len, j->args_len,
                      W.max_frame, &out) == 0) {
      emit_result(&out, W.solo && atomic_load_explicit(&W.queued, memory_order_relaxed) > 0);
    } else {
      static const char msg[] = "worker out of memory building the result";
      send_frame(SP__FRAME_ERROR, j->id, SP__ERRKIND_PROTOCOL, msg, sizeof(msg) - 1);
    }
    free(j);
    /* Do not keep a huge result buffer around for the thread's whole life. */
    if (out.cap > (1u << 20)) sp__buf_free(&out);
  }
  sp__buf_free(&out);
  pyhost_thread_leave(py);
  return NULL;
}

static void handle_frame(const sp__frame_t *f) {
  switch (f->type) {
    case SP__FRAME_CALL: {
      uint32_t timeout_ms;
      const char *tool, *args;
      size_t tool_len, args_len;
      if (sp__call_body_parse(f->body, f->length, &timeout_ms, &tool, &tool_len, &args,
                              &args_len) != 0) {
        static const char msg[] = "malformed CALL frame";
        send_frame(SP__FRAME_ERROR, f->id, SP__ERRKIND_PROTOCOL, msg, sizeof(msg) - 1);
        return;
      }
      job_t *j = malloc(sizeof(*j) + tool_len + args_len);
      if (j == NULL) {
        static const char msg[] = "worker out of memory queueing the call";
        send_frame(SP__FRAME_ERROR, f->id, SP__ERRKIND_PROTOCOL, msg, sizeof(msg) - 1);
        return;
      }
      j->id = f->id;
      j->tool_len = tool_len;
      j->args_len = args_len;
      memcpy(j->data, tool, tool_len);
      memcpy(j->data + tool_len, args, args_len);
      push_job(j);
      return;
    }
    case SP__FRAME_PING: {
      /* PONG: the 8-byte PING body echoed, then attach wait (ns) and calls
       * done, then 1 byte: the GIL is on now. */
      uint8_t body[25] = {0};
      uint64_t wait_ns, calls;
      pyhost_counters(&wait_ns, &calls);
      memcpy(body, f->body, f->length < 8 ? f->length : 8);
      for (int i = 0; i < 8; i++) {
        body[8 + i] = (uint8_t)(wait_ns >> (8 * i));
        body[16 + i] = (uint8_t)(calls >> (8 * i));
      }
      body[24] = (uint8_t)pyhost_gil_enabled();
      send_frame(SP__FRAME_PONG, f->id, 0, (const char *)body, sizeof(body));
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
        send_frame(SP__FRAME_ERROR, f->id, SP__ERRKIND_PROTOCOL, msg, sizeof(msg) - 1);
        free(found);
      } else {
        pyhost_cancel(f->id);
      }
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
static int read_frames(int timeout_ms) {
  uint8_t *p;
  size_t avail;
  if (sp__decoder_space(&W.dec, 65536, &p, &avail) != 0) {
    fprintf(stderr, "snakepit-worker: out of memory reading frames\n");
    _exit(4);
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
    die_with_group();
  }
  sp__decoder_commit(&W.dec, (size_t)n);
  sp__frame_t f;
  sp_error_t err;
  int rc;
  while ((rc = sp__decoder_next(&W.dec, &f, &err)) == 1) handle_frame(&f);
  if (rc < 0) {
    fprintf(stderr, "snakepit-worker: %s; closing the connection\n", err.message);
    send_frame(SP__FRAME_ERROR, 0, SP__ERRKIND_PROTOCOL, err.message, strlen(err.message));
    _exit(4);
  }
  return 1;
}

static int listen_once(const char *spec) {
  char host[256];
  const char *colon = strrchr(spec, ':');
  if (colon == NULL || (size_t)(colon - spec) >= sizeof(host)) return -1;
  memcpy(host, spec, (size_t)(colon - spec));
  host[colon - spec] = '\0';
  struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                           .ai_flags = AI_PASSIVE};
  struct addrinfo *ai = NULL;
  if (getaddrinfo(host[0] ? host : NULL, colon + 1, &hints, &ai) != 0) return -1;
  int lfd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  int fd = -1;
  if (lfd < 0) goto out;
  setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (bind(lfd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(lfd, 1) != 0) goto out;
  fprintf(stderr, "snakepit-worker: listening on %s\n", spec);
  fd = accept(lfd, NULL, NULL);
out:
  if (lfd >= 0) close(lfd);
  freeaddrinfo(ai);
  return fd;
}

/*
 * Tools that work on arrays allocate and free temporaries of 100 KiB to a few
 * MiB on every call. With glibc's adaptive defaults each call gets them from
 * mmap, or trims them off the heap when freed, and then faults every page back
 * in: ~230 page faults per 200x200 matmul call, more with several threads in
 * one process. Fixed thresholds of 16 MiB keep such blocks in the heap. The
 * environment's own malloc settings win.
 */
static void tune_malloc(void) {
  if (getenv("MALLOC_MMAP_THRESHOLD_") || getenv("MALLOC_TRIM_THRESHOLD_") ||
      getenv("GLIBC_TUNABLES"))
    return;
  mallopt(M_MMAP_THRESHOLD, 16 << 20);
  mallopt(M_TRIM_THRESHOLD, 16 << 20);
}

int main(int argc, char **argv) {
  tune_malloc();
  const char *adapter = NULL, *listen_spec = NULL, *pool = "standalone", *profile = NULL;
  const char **paths = calloc((size_t)argc + 1, sizeof(char *));
  const char **aargs = calloc((size_t)argc + 1, sizeof(char *));
  size_t npaths = 0, naargs = 0;
  int fork_server = 0;
  W.fd = -1;
  W.threads = 1;
  W.max_frame = 64u << 20;
  W.worker_id = "w1";
  if (paths == NULL || aargs == NULL) return 1;

  static const struct option opts[] = {
      {"fd", required_argument, NULL, 'f'},        {"listen", required_argument, NULL, 'l'},
      {"adapter", required_argument, NULL, 'a'},   {"threads", required_argument, NULL, 't'},
      {"pool", required_argument, NULL, 'p'},      {"worker-id", required_argument, NULL, 'w'},
      {"profile", required_argument, NULL, 'P'},   {"python-path", required_argument, NULL, 'y'},
      {"adapter-arg", required_argument, NULL, 'A'}, {"max-frame", required_argument, NULL, 'm'},
      {"thread-safety-check", no_argument, NULL, 'T'}, {"fork-server", no_argument, NULL, 'F'},
      {"help", no_argument, NULL, 'h'},            {NULL, 0, NULL, 0}};
  int c;
  while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
    switch (c) {
      case 'f': W.fd = atoi(optarg); break;
      case 'l': listen_spec = optarg; break;
      case 'a': adapter = optarg; break;
      case 't': W.threads = atoi(optarg); break;
      case 'p': pool = optarg; break;
      case 'w': W.worker_id = optarg; break;
      case 'P': profile = optarg; break;
      case 'y': paths[npaths++] = optarg; break;
      case 'A': aargs[naargs++] = optarg; break;
      case 'm': W.max_frame = (size_t)strtoull(optarg, NULL, 10); break;
      case 'T': setenv("SNAKEPIT_THREAD_SAFETY_CHECK", "1", 1); break;
      case 'F': fork_server = 1; break;
      case 'h': usage(stdout); return 0;
      default: usage(stderr); return 2;
    }
  }
  if (adapter == NULL || (W.fd < 0 && listen_spec == NULL) || W.threads < 1 ||
      W.threads > 4096 || W.max_frame < 4096) {
    usage(stderr);
    return 2;
  }
  if (profile == NULL) profile = W.threads > 1 ? "thread" : "process";
  if (SP_SDK_DIR[0] != '\0') paths[npaths++] = SP_SDK_DIR;

  /* Never outlive the manager: die with it, even if the socket EOF is missed. */
  if (listen_spec == NULL) {
    g_group_leader = getpgrp() == getpid();
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL); /* a blocked mask survives exec; start clean */
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_parent_death;
    sigaction(SIGTERM, &sa, NULL);
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() == 1) die_with_group();
  }
  signal(SIGPIPE, SIG_IGN);
  if (listen_spec != NULL && (W.fd = listen_once(listen_spec)) < 0) {
    fprintf(stderr, "snakepit-worker: cannot listen on %s: %s\n", listen_spec, strerror(errno));
    return 2;
  }

  pthread_mutex_init(&W.write_mu, NULL);
  pthread_mutex_init(&W.mu, NULL);
  pthread_cond_init(&W.cond, NULL);
  pthread_condattr_t mono;
  pthread_condattr_init(&mono);
  pthread_condattr_setclock(&mono, CLOCK_MONOTONIC);
  pthread_cond_init(&W.watcher_cond, &mono);
  pthread_condattr_destroy(&mono);
  sp__decoder_init(&W.dec, W.max_frame);
  W.solo = W.threads == 1;

  pyhost_opts_t po = {.adapter = adapter, .paths = paths, .path_count = npaths,
                      .adapter_args = aargs, .adapter_arg_count = naargs,
                      .worker_id = W.worker_id, .pool = pool, .profile = profile,
                      .threads = W.threads};
  if (fork_server && listen_spec == NULL) {
    /* Returns only in a forked worker: its socket is fd 3, the rest as above. */
    W.worker_id = forkserver_run(&po, W.fd);
    po.worker_id = W.worker_id;
    W.fd = 3;
  }
  char *hello = NULL, *failure = NULL;
  if (pyhost_start(&po, &hello, &failure) != 0) {
    const char *f = failure ? failure : "{\"type\":\"MemoryError\",\"message\":\"\",\"traceback\":\"\"}";
    fprintf(stderr, "snakepit-worker: adapter %s failed to load (traceback above)\n", adapter);
    send_frame(SP__FRAME_ERROR, 0, SP__ERRKIND_STARTUP, f, strlen(f));
    return 3;
  }

  pthread_t *th = calloc((size_t)W.threads, sizeof(*th));
  if (th == NULL) return 1;
  for (int i = 0; i < W.threads; i++) {
    if (pthread_create(&th[i], NULL, exec_main, (void *)(intptr_t)i) != 0) {
      fprintf(stderr, "snakepit-worker: cannot start execution thread %d\n", i + 1);
      return 1;
    }
  }
  pthread_mutex_lock(&W.mu);
  while (W.entered < W.threads) pthread_cond_wait(&W.cond, &W.mu);
  pthread_mutex_unlock(&W.mu);

  send_frame(SP__FRAME_HELLO, 0, 0, hello, strlen(hello));
  free(hello);

  pthread_t watcher;
  if (pthread_create(&watcher, NULL, watcher_main, NULL) != 0) return 1;

  /* Execution threads leave once SHUTDOWN closed the queue and it is empty. */
  for (int i = 0; i < W.threads; i++) pthread_join(th[i], NULL);
  int rc = pyhost_finish();
  free(th);
  free(paths);
  free(aargs);
  fflush(NULL);
  _exit(rc == 0 ? 0 : 5);
}

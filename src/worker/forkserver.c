/*
 * forkserver.c - snakepit-worker --fork-server: imports the adapter's module
 * once (with --preload also builds the adapter), then forks a worker for every
 * request of the manager. A forked child returns from forkserver_run and goes
 * on as an ordinary worker (builds the adapter or takes the preloaded one,
 * starts its threads, says HELLO); the fork server itself never
 * returns. It stays single-threaded, the only state in which fork() is safe,
 * and reaps its children, reporting every exit to the manager.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "forkserver.h"

#include <dirent.h>
#include <fcntl.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "forkproto.h"

static int g_ctl = -1;

static void send_msg(uint32_t type, uint32_t serial, int32_t a, int32_t b, int32_t c,
                     const char *text) {
  size_t len = text ? strlen(text) : 0;
  if (len > SP__FS_MAX_TEXT) {
    text =
        "{\"type\":\"ImportError\",\"message\":\"the adapter failed to load; its traceback "
        "is in the log\",\"traceback\":\"\"}";
    len = strlen(text);
  }
  char buf[sizeof(sp__fs_msg_t) + SP__FS_MAX_TEXT];
  sp__fs_msg_t m = {type, serial, a, b, c, (uint32_t)len};
  memcpy(buf, &m, sizeof(m));
  if (len) memcpy(buf + sizeof(m), text, len);
  while (send(g_ctl, buf, sizeof(m) + len, MSG_NOSIGNAL) < 0) {
    if (errno == EINTR) continue;
    /* The manager is gone: our parent-death signal takes care of the rest. */
    _exit(0);
  }
}

/* Threads of this process; fork() copies only the calling one. */
static int thread_count(void) {
  DIR *d = opendir("/proc/self/task");
  int n = 0;
  if (d == NULL) return -1;
  struct dirent *e;
  while ((e = readdir(d)) != NULL)
    if (e->d_name[0] != '.') n++;
  closedir(d);
  return n;
}

/* Sockets this process has open, other than `except` (the control socket). */
static int socket_count(int except) {
  DIR *d = opendir("/proc/self/fd");
  int n = 0;
  if (d == NULL) return -1;
  struct dirent *e;
  char path[300], target[64];
  while ((e = readdir(d)) != NULL) {
    if (e->d_name[0] == '.' || atoi(e->d_name) == except) continue;
    snprintf(path, sizeof(path), "/proc/self/fd/%s", e->d_name);
    ssize_t len = readlink(path, target, sizeof(target) - 1);
    if (len > 0 && (target[len] = '\0', strncmp(target, "socket:", 7) == 0)) n++;
  }
  closedir(d);
  return n;
}

/*
 * preload: builds the adapter once. An adapter whose constructor leaves threads
 * running or sockets open cannot be shared by forking (a child inherits neither
 * the threads nor a socket it could use on its own): the fork server reports
 * NO_PRELOAD with why, and the manager decides between falling back and failing.
 */
static void preload_adapter(const pyhost_opts_t *po, int ctl) {
  int sockets = socket_count(ctl);
  char *failure = NULL;
  if (pyhost_preload_adapter(po, &failure) != 0) {
    fprintf(stderr, "snakepit-worker: adapter %s failed to build (traceback above)\n",
            po->adapter);
    send_msg(SP__FS_FAILED, 0, 0, 0, 0, failure ? failure : "{\"type\":\"MemoryError\"}");
    _exit(3);
  }
  int threads = thread_count(), now = socket_count(ctl);
  char why[512];
  if (threads != 1) {
    snprintf(why, sizeof(why),
             "its constructor left %d threads running (a forked worker would inherit none of "
             "them); start threads in post_fork() instead",
             threads - 1);
  } else if (now > sockets) {
    snprintf(why, sizeof(why),
             "its constructor left %d socket(s) open (forked workers would share one "
             "connection); open them in post_fork() instead",
             now - sockets);
  } else {
    return;
  }
  char json[700];
  snprintf(json, sizeof(json),
           "{\"type\":\"PreloadError\",\"message\":\"adapter %.100s cannot be preloaded: "
           "%s\",\"traceback\":\"\"}",
           po->adapter, why);
  fprintf(stderr, "snakepit-worker: adapter %s cannot be preloaded: %s\n", po->adapter, why);
  send_msg(SP__FS_NO_PRELOAD, 0, threads, 0, 0, json);
  _exit(0);
}

static void close_from(int lowest) {
#ifdef SYS_close_range
  if (syscall(SYS_close_range, (unsigned)lowest, ~0u, 0u) == 0) return;
#endif
  long max = sysconf(_SC_OPEN_MAX);
  for (int fd = lowest; fd < (max > 0 ? max : 1024); fd++) close(fd);
}

/*
 * In the child: its own session and process group (as the manager's exec'd
 * workers have), the manager's socket on fd 3, the output pipe on 1 and 2,
 * the shared memory on 4 and 5, nothing else open, and death when the fork
 * server dies.
 */
static void become_worker(const int fds[SP__FS_FORK_FDS], pid_t server, const char *worker_id) {
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, NULL);
  setsid();
  /* Moved above 5 first, so no dup2 below overwrites one still needed. */
  int high[SP__FS_FORK_FDS];
  for (int i = 0; i < SP__FS_FORK_FDS; i++)
    if ((high[i] = fcntl(fds[i], F_DUPFD, 10)) < 0) _exit(6);
  if (dup2(high[0], 3) < 0 || dup2(high[1], 1) < 0 || dup2(high[1], 2) < 0 ||
      dup2(high[2], 4) < 0 || dup2(high[3], 5) < 0)
    _exit(6);
  close_from(6);
  /* The SIGTERM handler installed before the fork kills this (new) group. */
  prctl(PR_SET_PDEATHSIG, SIGTERM);
  if (getppid() != server) _exit(0); /* it died before prctl took effect */
  setenv("SNAKEPIT_WORKER_ID", worker_id, 1);
}

/* Receives one request; returns its byte count (0 at EOF) and up to
 * SP__FS_FORK_FDS fds (any more are closed). */
static ssize_t recv_request(char *buf, size_t cap, int fds[SP__FS_FORK_FDS]) {
  union {
    char buf[CMSG_SPACE(8 * sizeof(int))];
    struct cmsghdr align;
  } cm;
  struct iovec iov = {buf, cap};
  struct msghdr mh = {
      .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cm.buf, .msg_controllen = sizeof(cm.buf)};
  for (int i = 0; i < SP__FS_FORK_FDS; i++) fds[i] = -1;
  ssize_t n;
  do n = recvmsg(g_ctl, &mh, MSG_CMSG_CLOEXEC);
  while (n < 0 && errno == EINTR);
  for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    int got[8];
    if (k > 8) k = 8;
    memcpy(got, CMSG_DATA(c), k * sizeof(int));
    for (size_t i = 0; i < k; i++) {
      if (i < SP__FS_FORK_FDS && fds[i] < 0) fds[i] = got[i];
      else close(got[i]);
    }
  }
  return n;
}

/* Reports every child that exited. */
static void reap(int *children) {
  int st;
  pid_t pid;
  while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
    (*children)--;
    send_msg(SP__FS_EXITED, 0, pid, WIFEXITED(st) ? WEXITSTATUS(st) : 0,
             WIFSIGNALED(st) ? WTERMSIG(st) : 0, NULL);
  }
}

char *forkserver_run(const pyhost_opts_t *po, int ctl) {
  g_ctl = ctl;
  char *failure = NULL;
  if (pyhost_preload(po, &failure) != 0) {
    fprintf(stderr, "snakepit-worker: adapter %s failed to load (traceback above)\n", po->adapter);
    send_msg(SP__FS_FAILED, 0, 0, 0, 0, failure ? failure : "{\"type\":\"MemoryError\"}");
    _exit(3);
  }
  int threads = thread_count();
  if (threads != 1) {
    fprintf(stderr,
            "snakepit-worker: %d threads run after importing %s; forking is unsafe, the pool "
            "starts its workers with exec\n",
            threads, po->adapter);
    send_msg(SP__FS_UNSAFE, 0, threads, 0, 0, NULL);
    _exit(0);
  }
  if (po->preload) preload_adapter(po, ctl);

  sigset_t chld;
  sigemptyset(&chld);
  sigaddset(&chld, SIGCHLD);
  sigprocmask(SIG_BLOCK, &chld, NULL);
  int sfd = signalfd(-1, &chld, SFD_CLOEXEC | SFD_NONBLOCK);
  if (sfd < 0) {
    fprintf(stderr, "snakepit-worker: fork server: signalfd: %s\n", strerror(errno));
    _exit(1);
  }
  pid_t self = getpid();
  send_msg(SP__FS_READY, 0, (int32_t)self, 0, 0, NULL);

  static char buf[sizeof(sp__fs_msg_t) + 256];
  int children = 0, open = 1;
  while (open || children > 0) {
    struct pollfd pf[2] = {{sfd, POLLIN, 0}, {open ? ctl : -1, POLLIN, 0}};
    if (poll(pf, 2, -1) < 0) {
      if (errno == EINTR) continue;
      _exit(1);
    }
    if (pf[0].revents) {
      struct signalfd_siginfo si;
      while (read(sfd, &si, sizeof(si)) > 0) {
      }
      reap(&children);
    }
    if (!open || !pf[1].revents) continue;
    int fds[SP__FS_FORK_FDS];
    ssize_t n = recv_request(buf, sizeof(buf) - 1, fds);
    if (n <= 0) {
      /* The manager closed its side (stop): leave once every worker exited. */
      open = 0;
      continue;
    }
    sp__fs_msg_t m;
    if ((size_t)n < sizeof(m)) continue;
    memcpy(&m, buf, sizeof(m));
    int have = 1;
    for (int i = 0; i < SP__FS_FORK_FDS; i++) have &= fds[i] >= 0;
    if (m.type != SP__FS_FORK || !have || m.len == 0 || sizeof(m) + m.len > (size_t)n) {
      if (m.type == SP__FS_FORK) send_msg(SP__FS_FORK_FAILED, m.serial, EINVAL, 0, 0, NULL);
      for (int i = 0; i < SP__FS_FORK_FDS; i++)
        if (fds[i] >= 0) close(fds[i]);
      continue;
    }
    buf[sizeof(m) + m.len] = '\0';
    fflush(NULL);
    pid_t pid = pyhost_fork();
    if (pid == 0) {
      char *id = strdup(buf + sizeof(m));
      close(sfd);
      become_worker(fds, self, id ? id : "w?");
      return id;
    }
    for (int i = 0; i < SP__FS_FORK_FDS; i++) close(fds[i]);
    if (pid < 0) {
      send_msg(SP__FS_FORK_FAILED, m.serial, errno, 0, 0, NULL);
      continue;
    }
    children++;
    send_msg(SP__FS_FORKED, m.serial, (int32_t)pid, 0, 0, NULL);
  }
  _exit(0);
}

/*
 * process.c - the worker process around its threads (process.h).
 */
#include <getopt.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "descendants.h"
#include "process.h"
#include "protocol.h"

static int g_group_leader; /* this worker leads its own process group */
/* A worker (not a fork server) that ends the children its tools started. A fork
 * server leaves its workers to their own parent-death signal, so that each
 * ends its own children first. */
static volatile sig_atomic_t g_sweep;

/*
 * The manager is gone. When we lead our own process group, take down what our
 * tools started that left the group (descendants_kill), then the whole group,
 * so that nothing a tool started outlives us; all of it is async-signal-safe,
 * so this also serves as the parent-death signal handler.
 */
void proc_die(void) {
  if (g_group_leader) {
    if (g_sweep) descendants_kill();
    kill(0, SIGKILL);
  }
  _exit(0);
}

static void on_parent_death(int sig) {
  (void)sig;
  proc_die();
}

void proc_die_with_manager(void) {
  g_group_leader = getpgrp() == getpid();
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, NULL); /* a blocked mask survives exec; start clean */
  struct sigaction sa;
  memset(&sa, 0, sizeof(sa));
  sa.sa_handler = on_parent_death;
  sigaction(SIGTERM, &sa, NULL);
  prctl(PR_SET_PDEATHSIG, SIGTERM);
  if (getppid() == 1) proc_die();
  signal(SIGPIPE, SIG_IGN);
}

void proc_sweep_on(void) { g_sweep = 1; }

void proc_sweep(void) {
  if (g_group_leader && g_sweep) descendants_kill();
}

/*
 * Tools that work on arrays allocate and free temporaries of 100 KiB to a few
 * MiB on every call. With glibc's adaptive defaults each call gets them from
 * mmap, or trims them off the heap when freed, and then faults every page back
 * in: ~230 page faults per 200x200 matmul call, more with several threads in
 * one process. Fixed thresholds of 16 MiB keep such blocks in the heap. The
 * environment's own malloc settings win.
 */
void proc_tune_malloc(void) {
  if (getenv("MALLOC_MMAP_THRESHOLD_") || getenv("MALLOC_TRIM_THRESHOLD_") ||
      getenv("GLIBC_TUNABLES"))
    return;
  mallopt(M_MMAP_THRESHOLD, 16 << 20);
  mallopt(M_TRIM_THRESHOLD, 16 << 20);
}

/*
 * The process title: a forked worker inherits its fork server's command line, so
 * `ps` would show every worker of a pool as "--fork-server". The title is written
 * over the original argv strings (what /proc/PID/cmdline shows), which is why
 * main() parses a copy of them.
 */
static char *g_title_area;
static size_t g_title_cap;

char **proc_title_init(int argc, char **argv) {
  if (argc >= 1) {
    g_title_area = argv[0];
    /* Only the contiguous run of strings the kernel laid out can be reused. */
    char *end = argv[0] + strlen(argv[0]) + 1;
    for (int i = 1; i < argc && argv[i] == end; i++) end = argv[i] + strlen(argv[i]) + 1;
    g_title_cap = (size_t)(end - argv[0]);
  }
  char **copy = calloc((size_t)argc + 1, sizeof(char *));
  for (int i = 0; copy != NULL && i < argc; i++)
    if ((copy[i] = strdup(argv[i])) == NULL) return NULL;
  return copy;
}

void proc_title_set(const char *pool, const char *worker_id, const char *profile, int threads,
                    const char *adapter) {
  if (g_title_area == NULL || g_title_cap < 2) return;
  memset(g_title_area, 0, g_title_cap);
  snprintf(g_title_area, g_title_cap, "snakepit-worker: pool %s worker %s (%s, %d thread%s) %s",
           pool, worker_id, profile, threads, threads == 1 ? "" : "s", adapter);
  char comm[16]; /* the short name top and ps -o comm show */
  snprintf(comm, sizeof(comm), "sp-%s-%s", pool, worker_id);
  prctl(PR_SET_NAME, comm);
}

static void usage(FILE *f) {
  fprintf(f,
          "usage: snakepit-worker --adapter MODULE.CLASS --fd N\n"
          "                       [--threads N] [--pool NAME] [--worker-id ID]\n"
          "                       [--profile process|thread] [--python-path DIR]...\n"
          "                       [--adapter-arg ARG]... [--max-frame BYTES]\n"
          "                       [--thread-safety-check] [--fork-server [--preload]]\n"
          "                       [--choose-profile]\n"
          "Runs the adapter's tools for a snakepit pool manager (libsnakepit starts it; it is\n"
          "not meant to be run by hand) over the socket inherited as fd N.\n");
}

int proc_parse_args(int argc, char **argv, proc_args_t *a) {
  memset(a, 0, sizeof(*a));
  a->fd = -1;
  a->threads = 1;
  a->max_frame = 64u << 20;
  a->worker_id = "w1";
  a->pool = "standalone";
  a->paths = calloc((size_t)argc + 1, sizeof(char *));
  a->aargs = calloc((size_t)argc + 1, sizeof(char *));
  if (a->paths == NULL || a->aargs == NULL) return -1;
  static const struct option opts[] = {
      {"fd", required_argument, NULL, 'f'},
      {"adapter", required_argument, NULL, 'a'},   {"threads", required_argument, NULL, 't'},
      {"pool", required_argument, NULL, 'p'},      {"worker-id", required_argument, NULL, 'w'},
      {"profile", required_argument, NULL, 'P'},   {"python-path", required_argument, NULL, 'y'},
      {"adapter-arg", required_argument, NULL, 'A'}, {"max-frame", required_argument, NULL, 'm'},
      {"thread-safety-check", no_argument, NULL, 'T'}, {"fork-server", no_argument, NULL, 'F'},
      {"preload", no_argument, NULL, 'L'},        {"choose-profile", no_argument, NULL, 'C'},
      {"help", no_argument, NULL, 'h'},            {NULL, 0, NULL, 0}};
  int c;
  while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
    switch (c) {
      case 'f': a->fd = atoi(optarg); break;
      case 'a': a->adapter = optarg; break;
      case 't': a->threads = atoi(optarg); break;
      case 'p': a->pool = optarg; break;
      case 'w': a->worker_id = optarg; break;
      case 'P': a->profile = optarg; break;
      case 'y': a->paths[a->npaths++] = optarg; break;
      case 'A': a->aargs[a->naargs++] = optarg; break;
      case 'm': a->max_frame = (size_t)strtoull(optarg, NULL, 10); break;
      case 'T': setenv("SNAKEPIT_THREAD_SAFETY_CHECK", "1", 1); break;
      case 'F': a->fork_server = 1; break;
      case 'L': a->preload = 1; break;
      case 'C': a->choose = 1; break;
      case 'h': usage(stdout); return 1;
      default: usage(stderr); return 2;
    }
  }
  if (a->adapter == NULL || (a->fd < 0 && !a->choose) || a->threads < 1 ||
      a->threads > SP__THREADS_MAX || a->max_frame < SP__MIN_FRAME_BYTES) {
    usage(stderr);
    return 2;
  }
  if (a->profile == NULL) a->profile = a->threads > 1 ? "thread" : "process";
  return 0;
}

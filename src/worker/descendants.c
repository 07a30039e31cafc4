/*
 * descendants.c - ending the processes a tool started when its worker ends.
 * The worker leads its own process group and the manager kills that group when
 * the worker exits; a process that left the group (setsid, setpgid) is found
 * here instead, as a child of the worker (directly, or adopted as an orphan
 * because the worker is a child subreaper). Runs in a signal handler on the
 * manager's death, so it reads /proc with raw system calls only.
 */
#include "descendants.h"

#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_ROUNDS 20 /* each round ends one generation of descendants */

void descendants_adopt(void) { prctl(PR_SET_CHILD_SUBREAPER, 1); }

/* The parent of pid from /proc/PID/stat, or -1 (gone, or a zombie). */
static pid_t parent_of(pid_t pid) {
  char path[32] = "/proc/", buf[512];
  char digits[16];
  int n = 0;
  for (pid_t p = pid; p > 0 && n < 15; p /= 10) digits[n++] = (char)('0' + p % 10);
  int len = 6;
  while (n > 0) path[len++] = digits[--n];
  const char *tail = "/stat";
  for (int i = 0; tail[i]; i++) path[len++] = tail[i];
  path[len] = '\0';
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  ssize_t got = read(fd, buf, sizeof(buf) - 1);
  close(fd);
  if (got <= 0) return -1;
  buf[got] = '\0';
  /* "pid (comm) S ppid ...": comm may hold anything, so find its last ')'. */
  char *p = NULL;
  for (char *q = buf; *q; q++)
    if (*q == ')') p = q;
  if (p == NULL || p[1] != ' ' || p[2] == '\0' || p[2] == 'Z' || p[3] != ' ') return -1;
  pid_t ppid = 0;
  for (p += 4; *p >= '0' && *p <= '9'; p++) ppid = ppid * 10 + (*p - '0');
  return ppid;
}

/* Kills the live children of self; 1 if there were any. */
static int kill_round(pid_t self) {
  int dfd = open("/proc", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) return 0;
  int found = 0;
  char buf[8192];
  long n;
  while ((n = syscall(SYS_getdents64, dfd, buf, sizeof(buf))) > 0) {
    for (long off = 0; off < n;) {
      struct {
        uint64_t ino;
        int64_t off;
        unsigned short reclen;
        unsigned char type;
        char name[];
      } *d = (void *)(buf + off);
      off += d->reclen;
      pid_t pid = 0;
      const char *c = d->name;
      for (; *c >= '0' && *c <= '9'; c++) pid = pid * 10 + (*c - '0');
      if (*c != '\0' || pid <= 0 || parent_of(pid) != self) continue;
      kill(-pid, SIGKILL); /* the group it leads, if it leads one */
      kill(pid, SIGKILL);
      found = 1;
    }
  }
  close(dfd);
  return found;
}

void descendants_kill(void) {
  pid_t self = getpid();
  for (int round = 0; round < MAX_ROUNDS && kill_round(self); round++) {
    /* The killed children's own children are handed to us as they die. */
    struct timespec tick = {0, 5 * 1000000};
    nanosleep(&tick, NULL);
    while (waitpid(-1, NULL, WNOHANG) > 0) {
    }
  }
}

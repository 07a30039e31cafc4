/*
 * floor.c - the floor under any IPC call: a 64-byte request/reply round trip
 * over a socketpair between two processes, blocking reads on both sides.
 * Prints JSON {"round_trips", "p50_us", "p99_us", "mean_us"}.
 * Usage: bench_floor [ROUND_TRIPS]
 */
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static int full(int fd, char *buf, size_t n, int writing) {
  size_t done = 0;
  while (done < n) {
    ssize_t k = writing ? write(fd, buf + done, n - done) : read(fd, buf + done, n - done);
    if (k <= 0) return -1;
    done += (size_t)k;
  }
  return 0;
}

int main(int argc, char **argv) {
  int n = argc > 1 ? atoi(argv[1]) : 20000;
  int warm = n / 10;
  int sv[2];
  if (n < 10 || socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) return 2;
  char buf[64] = {0};
  pid_t child = fork();
  if (child == 0) {
    close(sv[0]);
    while (full(sv[1], buf, sizeof(buf), 0) == 0)
      if (full(sv[1], buf, sizeof(buf), 1) != 0) break;
    _exit(0);
  }
  close(sv[1]);
  double *lat = malloc(sizeof(double) * (size_t)n);
  double sum = 0;
  for (int i = -warm; i < n; i++) {
    double t0 = now_us();
    if (full(sv[0], buf, sizeof(buf), 1) != 0 || full(sv[0], buf, sizeof(buf), 0) != 0) return 1;
    double t = now_us() - t0;
    if (i >= 0) {
      lat[i] = t;
      sum += t;
    }
  }
  close(sv[0]);
  waitpid(child, NULL, 0);
  qsort(lat, (size_t)n, sizeof(double), cmp);
  printf("{\"round_trips\": %d, \"p50_us\": %.2f, \"p99_us\": %.2f, \"mean_us\": %.2f}\n", n,
         lat[n / 2], lat[(int)(n * 0.99)], sum / n);
  free(lat);
  return 0;
}

/*
 * cpuprobe.c - see cpuprobe.h.
 */
#include "cpuprobe.h"

#include <pthread.h>
#include <time.h>

uint64_t bench_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t bench_cpu_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

typedef struct {
  uint64_t until;
  volatile uint64_t sink;
} spin_arg_t;

static void *spin_thread(void *p) {
  spin_arg_t *a = p;
  uint64_t x = 0;
  while (bench_now_ns() < a->until) {
    for (int i = 0; i < 1000; i++) x = x * 6364136223846793005u + 1442695040888963407u;
  }
  a->sink = x;
  return NULL;
}

double bench_cpu_available(int ms) {
  spin_arg_t a[2];
  pthread_t t[2];
  uint64_t w0 = bench_now_ns(), c0 = bench_cpu_ns();
  for (int i = 0; i < 2; i++) {
    a[i].until = w0 + (uint64_t)ms * 1000000u;
    a[i].sink = 0;
    pthread_create(&t[i], NULL, spin_thread, &a[i]);
  }
  for (int i = 0; i < 2; i++) pthread_join(t[i], NULL);
  uint64_t w1 = bench_now_ns(), c1 = bench_cpu_ns();
  return (double)(c1 - c0) / (double)(w1 - w0);
}

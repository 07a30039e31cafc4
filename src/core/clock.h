/*
 * clock.h - the one monotonic clock every part of snakepit measures with
 * (deadlines, latencies, timeouts). Header-only so the worker, the library and
 * the front ends share it without sharing symbols.
 */
#ifndef SP_CORE_CLOCK_H
#define SP_CORE_CLOCK_H

#include <stdint.h>
#include <time.h>

/** Monotonic nanoseconds. */
static inline uint64_t sp__now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/** Monotonic milliseconds (the clock all deadlines use). */
static inline int64_t sp__now_ms(void) { return (int64_t)(sp__now_ns() / 1000000u); }

#endif /* SP_CORE_CLOCK_H */

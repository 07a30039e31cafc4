/*
 * cpuprobe.h - clocks and the CPU-availability probe shared by the benchmark
 * programs.
 */
#ifndef SP_BENCH_CPUPROBE_H
#define SP_BENCH_CPUPROBE_H

#include <stdint.h>

/** Monotonic clock, nanoseconds. */
uint64_t bench_now_ns(void);
/** CPU time of this process (all threads), nanoseconds. */
uint64_t bench_cpu_ns(void);
/**
 * Runs 2 busy threads for `ms` and returns the process's CPU time divided by
 * the wall time: 2.0 means both ran all the time; on a shared or throttled
 * machine it is lower.
 */
double bench_cpu_available(int ms);

#endif

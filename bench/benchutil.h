/*
 * benchutil.h - what every benchmark program shares: a monotonic clock, a
 * comparator for sorting samples, the [--quick] [--json PATH] command line,
 * and writing its one-line JSON result to stdout and PATH.
 */
#ifndef SP_BENCH_BENCHUTIL_H
#define SP_BENCH_BENCHUTIL_H

#include <stdio.h>
#include <string.h>
#include <time.h>

/** Monotonic seconds. */
static inline double bench_now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/** qsort comparator for doubles, ascending. */
static inline int bench_cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/** Reads [--quick] [--json PATH]; 0, or 2 after printing the usage of `name`. */
static inline int bench_args(int argc, char **argv, const char *name, int *quick,
                             const char **json_path) {
  *quick = 0;
  *json_path = NULL;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--quick") == 0) *quick = 1;
    else if (strcmp(argv[i], "--json") == 0 && i + 1 < argc) *json_path = argv[++i];
    else {
      fprintf(stderr, "usage: %s [--quick] [--json PATH]\n", name);
      return 2;
    }
  }
  return 0;
}

/** Prints json and, with a path, writes it there too; 0, or 2 when the file cannot be written. */
static inline int bench_emit(const char *json, const char *json_path) {
  fputs(json, stdout);
  if (json_path == NULL) return 0;
  FILE *f = fopen(json_path, "w");
  if (f == NULL) return 2;
  fputs(json, f);
  fclose(f);
  return 0;
}

#endif /* SP_BENCH_BENCHUTIL_H */

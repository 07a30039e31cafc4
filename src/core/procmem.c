/*
 * procmem.c - a process's RSS, PSS and USS from /proc. Workers forked from a
 * preloading fork server share their model's pages: RSS counts them in every
 * worker, PSS splits them, USS leaves them out.
 */
#include "procmem.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

static int read_statm(int pid, sp__procmem_t *m) {
  char path[64];
  long pages = -1, rss = -1;
  snprintf(path, sizeof(path), "/proc/%d/statm", pid);
  FILE *f = fopen(path, "r");
  if (f == NULL) return -1;
  if (fscanf(f, "%ld %ld", &pages, &rss) != 2) rss = -1;
  fclose(f);
  m->rss_kb = rss < 0 ? -1 : rss * (sysconf(_SC_PAGESIZE) / 1024);
  return rss < 0 ? -1 : 0;
}

int sp__procmem_read(int pid, sp__procmem_t *m) {
  m->rss_kb = m->pss_kb = m->uss_kb = -1;
  if (pid <= 0) return -1;
  char path[64], line[256];
  snprintf(path, sizeof(path), "/proc/%d/smaps_rollup", pid);
  FILE *f = fopen(path, "r");
  if (f == NULL) return read_statm(pid, m);
  long clean = -1, dirty = -1, v;
  while (fgets(line, sizeof(line), f) != NULL) {
    char key[64];
    if (sscanf(line, "%63[^:]: %ld kB", key, &v) != 2) continue;
    if (strcmp(key, "Rss") == 0) m->rss_kb = v;
    else if (strcmp(key, "Pss") == 0) m->pss_kb = v;
    else if (strcmp(key, "Private_Clean") == 0) clean = v;
    else if (strcmp(key, "Private_Dirty") == 0) dirty = v;
  }
  fclose(f);
  if (clean >= 0 && dirty >= 0) m->uss_kb = clean + dirty;
  return m->rss_kb < 0 ? -1 : 0;
}

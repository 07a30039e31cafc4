/*
 * procmem.h - how much memory a process really costs (procmem.c).
 */
#ifndef SP_CORE_PROCMEM_H
#define SP_CORE_PROCMEM_H

/**
 * A process's memory in KiB; -1 where unknown. rss counts every page mapped,
 * shared ones in full; pss divides each shared page among the processes that
 * map it (so the pss of all processes adds up to what they use together); uss
 * counts only the pages no other process maps (Private_Clean + Private_Dirty):
 * what its exit would give back.
 */
typedef struct sp__procmem_s {
  long rss_kb;
  long pss_kb;
  long uss_kb;
} sp__procmem_t;

/**
 * Reads pid's memory from /proc/PID/smaps_rollup (RSS from /proc/PID/statm
 * when that file is missing, as on kernels before 4.14). Returns 0, or -1
 * with every field -1 when the process is gone.
 */
int sp__procmem_read(int pid, sp__procmem_t *m);

#endif /* SP_CORE_PROCMEM_H */

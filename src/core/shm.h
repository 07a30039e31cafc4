/*
 * shm.h - shared-memory regions for arrays (shm.c): one memfd per region,
 * mapped by the manager and by workers, with an allocator whose table lives in
 * the region itself under a process-shared robust mutex, so either side can
 * free what the other allocated. A region is a pool's input memory (the
 * manager writes, its workers read) or one worker's output memory (the worker
 * writes, the manager reads). memfd regions have no name in any file system:
 * they vanish with their last mapping and descriptor, whoever dies.
 */
#ifndef SP_CORE_SHM_H
#define SP_CORE_SHM_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "protocol.h"
#include "snakepit.h"

/** Blocks are aligned to (and sized in multiples of) this. */
#define SP__SHM_ALIGN 64u
/** Bytes at the start of a region reserved for its allocator's table. */
#define SP__SHM_HEADER_BYTES SP__SHM_DATA_START
/** Smallest region that can hold anything. */
#define SP__SHM_MIN_BYTES (SP__SHM_HEADER_BYTES + 4096u)

/** A mapping of a region in this process; reference-counted. */
typedef struct sp__shm_s {
  int fd;
  uint8_t *base;
  size_t size;
  int writable;
  atomic_int refs;
} sp__shm_t;

/**
 * Creates a region of `size` bytes (sparse: pages cost memory once touched),
 * mapped read-write, with an empty allocator. `name` shows in /proc/PID/maps
 * as memfd:NAME. The caller holds one reference. 0, or SP_EIO/SP_ENOMEM/
 * SP_EINVAL with err set.
 */
int sp__shm_create(sp__shm_t **out, const char *name, size_t size, sp_error_t *err);

/**
 * Maps a region received as fd (which it then owns), read-write or read-only.
 * Checks the allocator's table header. 0, or an error with err set.
 */
int sp__shm_attach(sp__shm_t **out, int fd, int writable, sp_error_t *err);

/**
 * Makes this process's mapping of r's allocator table read-only: a worker
 * writes into the pool's input memory (writable array arguments) but must
 * never touch the table the manager allocates with. 0 or -1.
 */
int sp__shm_protect_table(sp__shm_t *r);

void sp__shm_ref(sp__shm_t *r);
/** Drops a reference; the last one unmaps and closes. NULL is fine. Any thread. */
void sp__shm_unref(sp__shm_t *r);

/** First byte usable for data (blocks never start below it). */
static inline size_t sp__shm_data_start(void) { return SP__SHM_HEADER_BYTES; }

/**
 * Allocates n bytes (n > 0) and returns the block's offset in the region.
 * 0, or SP_ENOMEM when no free block is large enough (or the table is full or
 * damaged). The region must be mapped writable. Any thread, any process.
 */
int sp__shm_alloc(sp__shm_t *r, size_t n, uint64_t *off);

/** Frees the block at off. 0, or SP_EINVAL when no allocated block starts there. */
int sp__shm_free(sp__shm_t *r, uint64_t off);

/** The allocated size of the block at off, or 0 when none starts there. */
size_t sp__shm_block_size(sp__shm_t *r, uint64_t off);

/** Bytes allocated now, and the largest free block. */
void sp__shm_usage(sp__shm_t *r, size_t *used, size_t *largest_free);

/** Whether [off, off + len) lies inside the region's data area. */
static inline int sp__shm_contains(const sp__shm_t *r, uint64_t off, uint64_t len) {
  return off >= SP__SHM_HEADER_BYTES && off <= r->size && len <= r->size - off;
}

#endif /* SP_CORE_SHM_H */

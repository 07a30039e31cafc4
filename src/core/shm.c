/*
 * shm.c - shared-memory regions and their allocator (shm.h).
 *
 * The allocator's table sits in the first SP__SHM_HEADER_BYTES of the region:
 * a sorted, gap-free list of blocks covering the data area, each used or free,
 * guarded by a process-shared robust mutex. Both processes that map a region
 * allocate and free through it, so the manager can release a block a worker
 * allocated (a result the caller is done with) without a message, and a block
 * outlives the worker that made it. The table is untrusted input for the side
 * that did not write it: every index and offset is checked before use, and a
 * table that does not add up is declared damaged (allocations fail, frees are
 * ignored) instead of being followed.
 */
#include "shm.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "errors.h"

#define MAGIC UINT64_C(0x314d4853504b4e53) /* "SNKPSHM1" */

typedef struct block_s {
  uint64_t off;
  uint64_t len;
  uint32_t used;
  uint32_t pad;
} block_t;

#define MAX_BLOCKS ((SP__SHM_HEADER_BYTES - 256u) / sizeof(block_t))

typedef struct header_s {
  uint64_t magic;
  uint64_t size;
  pthread_mutex_t mu;
  uint32_t nblocks;
  uint32_t damaged;
  uint64_t used;
  block_t blocks[MAX_BLOCKS];
} header_t;

_Static_assert(sizeof(header_t) <= SP__SHM_HEADER_BYTES, "allocator table too large");

static header_t *hdr(sp__shm_t *r) { return (header_t *)r->base; }

/* ---- the table ----------------------------------------------------------- */

/* Whether the table covers the data area exactly, in order. */
static int table_valid(const header_t *h, size_t size) {
  if (h->nblocks == 0 || h->nblocks > MAX_BLOCKS) return 0;
  uint64_t at = SP__SHM_HEADER_BYTES, used = 0;
  for (uint32_t i = 0; i < h->nblocks; i++) {
    const block_t *b = &h->blocks[i];
    if (b->off != at || b->len == 0 || b->len > size - at || b->off % SP__SHM_ALIGN) return 0;
    at += b->len;
    if (b->used) used += b->len;
  }
  return at == (size / SP__SHM_ALIGN) * SP__SHM_ALIGN && used == h->used;
}

static int lock(sp__shm_t *r) {
  header_t *h = hdr(r);
  int rc = pthread_mutex_lock(&h->mu);
  if (rc == EOWNERDEAD) {
    /* The other side died holding the lock, perhaps mid-update. */
    pthread_mutex_consistent(&h->mu);
    if (!table_valid(h, r->size)) h->damaged = 1;
    rc = 0;
  }
  return rc;
}

static void unlock(sp__shm_t *r) { pthread_mutex_unlock(&hdr(r)->mu); }

/* Index of the block starting at off, or -1. */
static long find(const header_t *h, uint64_t off) {
  long lo = 0, hi = (long)h->nblocks - 1;
  if (h->nblocks > MAX_BLOCKS) return -1;
  while (lo <= hi) {
    long mid = (lo + hi) / 2;
    uint64_t o = h->blocks[mid].off;
    if (o == off) return mid;
    if (o < off) lo = mid + 1;
    else hi = mid - 1;
  }
  return -1;
}

static void remove_at(header_t *h, uint32_t i) {
  memmove(&h->blocks[i], &h->blocks[i + 1], (h->nblocks - i - 1) * sizeof(block_t));
  h->nblocks--;
}

int sp__shm_alloc(sp__shm_t *r, size_t n, uint64_t *off) {
  if (n == 0 || n > r->size || !r->writable) return SP_EINVAL;
  uint64_t want = ((uint64_t)n + SP__SHM_ALIGN - 1) / SP__SHM_ALIGN * SP__SHM_ALIGN;
  header_t *h = hdr(r);
  if (lock(r) != 0) return SP_EIO;
  int rc = SP_ENOMEM;
  if (!h->damaged && h->nblocks <= MAX_BLOCKS) {
    for (uint32_t i = 0; i < h->nblocks; i++) {
      block_t *b = &h->blocks[i];
      if (b->used || b->len < want) continue;
      if (b->len > want) {
        if (h->nblocks == MAX_BLOCKS) break; /* no room to split: full */
        memmove(&h->blocks[i + 2], &h->blocks[i + 1], (h->nblocks - i - 1) * sizeof(block_t));
        h->blocks[i + 1] = (block_t){b->off + want, b->len - want, 0, 0};
        h->nblocks++;
        b->len = want;
      }
      b->used = 1;
      h->used += b->len;
      *off = b->off;
      rc = 0;
      break;
    }
  }
  unlock(r);
  return rc;
}

int sp__shm_free(sp__shm_t *r, uint64_t off) {
  header_t *h = hdr(r);
  if (!r->writable) return SP_EINVAL;
  if (lock(r) != 0) return SP_EIO;
  int rc = SP_EINVAL;
  long i = h->damaged ? -1 : find(h, off);
  if (i >= 0 && h->blocks[i].used) {
    block_t *b = &h->blocks[i];
    b->used = 0;
    h->used -= b->len < h->used ? b->len : h->used;
    /* Merge with free neighbours so large blocks come back. */
    if ((uint32_t)i + 1 < h->nblocks && !h->blocks[i + 1].used) {
      b->len += h->blocks[i + 1].len;
      remove_at(h, (uint32_t)i + 1);
    }
    if (i > 0 && !h->blocks[i - 1].used) {
      h->blocks[i - 1].len += b->len;
      remove_at(h, (uint32_t)i);
    }
    rc = 0;
  }
  unlock(r);
  return rc;
}

size_t sp__shm_block_size(sp__shm_t *r, uint64_t off) {
  header_t *h = hdr(r);
  if (!r->writable || lock(r) != 0) return 0;
  long i = h->damaged ? -1 : find(h, off);
  size_t n = i >= 0 && h->blocks[i].used ? h->blocks[i].len : 0;
  unlock(r);
  return n;
}

void sp__shm_usage(sp__shm_t *r, size_t *used, size_t *largest_free) {
  header_t *h = hdr(r);
  *used = 0;
  *largest_free = 0;
  if (!r->writable || lock(r) != 0) return;
  if (!h->damaged && h->nblocks <= MAX_BLOCKS) {
    *used = h->used;
    for (uint32_t i = 0; i < h->nblocks; i++)
      if (!h->blocks[i].used && h->blocks[i].len > *largest_free) *largest_free = h->blocks[i].len;
  }
  unlock(r);
}

/* ---- regions ------------------------------------------------------------- */

static int map_fd(sp__shm_t **out, int fd, size_t size, int writable, sp_error_t *err) {
  void *p = mmap(NULL, size, writable ? PROT_READ | PROT_WRITE : PROT_READ,
                 MAP_SHARED | MAP_NORESERVE, fd, 0);
  if (p == MAP_FAILED)
    return sp__error_set(err, SP_EIO, "cannot map %zu bytes of shared memory: %s", size,
                         strerror(errno));
  sp__shm_t *r = calloc(1, sizeof(*r));
  if (r == NULL) {
    munmap(p, size);
    return sp__error_set(err, SP_ENOMEM, "out of memory mapping shared memory");
  }
  r->fd = fd;
  r->base = p;
  r->size = size;
  r->writable = writable;
  atomic_init(&r->refs, 1);
  *out = r;
  return 0;
}

int sp__shm_create(sp__shm_t **out, const char *name, size_t size, sp_error_t *err) {
  *out = NULL;
  if (size < SP__SHM_MIN_BYTES)
    return sp__error_set(err, SP_EINVAL, "shared memory of %zu bytes is below the minimum of %u",
                         size, SP__SHM_MIN_BYTES);
  int fd = memfd_create(name, MFD_CLOEXEC);
  if (fd < 0)
    return sp__error_set(err, SP_EIO, "cannot create shared memory '%s': %s", name,
                         strerror(errno));
  if (ftruncate(fd, (off_t)size) != 0) {
    int e = errno;
    close(fd);
    return sp__error_set(err, SP_EIO, "cannot size shared memory '%s' to %zu bytes: %s", name,
                         size, strerror(e));
  }
  int rc = map_fd(out, fd, size, 1, err);
  if (rc != 0) {
    close(fd);
    return rc;
  }
  header_t *h = hdr(*out);
  pthread_mutexattr_t a;
  pthread_mutexattr_init(&a);
  pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
  pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
  pthread_mutex_init(&h->mu, &a);
  pthread_mutexattr_destroy(&a);
  h->size = size;
  h->nblocks = 1;
  h->blocks[0] = (block_t){SP__SHM_HEADER_BYTES,
                           (size / SP__SHM_ALIGN) * SP__SHM_ALIGN - SP__SHM_HEADER_BYTES, 0, 0};
  h->magic = MAGIC;
  return 0;
}

int sp__shm_attach(sp__shm_t **out, int fd, int writable, sp_error_t *err) {
  *out = NULL;
  struct stat st;
  if (fstat(fd, &st) != 0)
    return sp__error_set(err, SP_EIO, "shared memory fd %d: %s", fd, strerror(errno));
  size_t size = (size_t)st.st_size;
  if (size < SP__SHM_MIN_BYTES)
    return sp__error_set(err, SP_EPROTOCOL, "shared memory fd %d is only %zu bytes", fd, size);
  int rc = map_fd(out, fd, size, writable, err);
  if (rc != 0) return rc;
  const header_t *h = (const header_t *)(*out)->base;
  if (h->magic != MAGIC || h->size != size) {
    sp__shm_unref(*out);
    *out = NULL;
    return sp__error_set(err, SP_EPROTOCOL, "shared memory fd %d has no allocator table", fd);
  }
  return 0;
}

int sp__shm_protect_table(sp__shm_t *r) {
  if (mprotect(r->base, SP__SHM_HEADER_BYTES, PROT_READ) != 0) return -1;
  r->writable = 0; /* no allocating or freeing from here */
  return 0;
}

void sp__shm_ref(sp__shm_t *r) { atomic_fetch_add(&r->refs, 1); }

void sp__shm_unref(sp__shm_t *r) {
  if (r == NULL || atomic_fetch_sub(&r->refs, 1) != 1) return;
  munmap(r->base, r->size);
  close(r->fd);
  free(r);
}

/*
 * test_shm.c - shared-memory regions and their allocator: allocation and
 * coalescing, exhaustion, frees from another process, a process dying with
 * the lock held, a damaged table, and array descriptors in frames.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "protocol.h"
#include "shm.h"

#define MIB (1024u * 1024u)

static sp__shm_t *make(size_t size) {
  sp__shm_t *r = NULL;
  sp_error_t err;
  assert_int_equal(sp__shm_create(&r, "test", size, &err), 0);
  return r;
}

static void alloc_free_and_coalesce(void **state) {
  (void)state;
  sp__shm_t *r = make(4 * MIB);
  size_t used, largest;
  sp__shm_usage(r, &used, &largest);
  size_t all = largest;
  assert_int_equal(used, 0);
  uint64_t a, b, c;
  assert_int_equal(sp__shm_alloc(r, 100, &a), 0);
  assert_int_equal(sp__shm_alloc(r, 1000, &b), 0);
  assert_int_equal(sp__shm_alloc(r, 1, &c), 0);
  assert_true(a >= SP__SHM_DATA_START);
  assert_int_equal(a % SP__SHM_ALIGN, 0);
  assert_int_equal(b % SP__SHM_ALIGN, 0);
  assert_true(b >= a + 100 && c >= b + 1000);
  assert_int_equal(sp__shm_block_size(r, b), 1024);
  memset(r->base + b, 0xAB, 1000); /* writable where it says */
  sp__shm_usage(r, &used, &largest);
  assert_int_equal(used, 128 + 1024 + 64); /* sizes round up to 64 bytes */
  /* Freeing in any order merges back into one free block. */
  assert_int_equal(sp__shm_free(r, b), 0);
  assert_int_equal(sp__shm_free(r, b), SP_EINVAL); /* not twice */
  assert_int_equal(sp__shm_free(r, b + 64), SP_EINVAL); /* not inside a block */
  assert_int_equal(sp__shm_free(r, a), 0);
  assert_int_equal(sp__shm_free(r, c), 0);
  sp__shm_usage(r, &used, &largest);
  assert_int_equal(used, 0);
  assert_int_equal(largest, all);
  sp__shm_unref(r);
}

static void exhaustion_and_limits(void **state) {
  (void)state;
  sp__shm_t *r = make(2 * MIB);
  uint64_t off;
  assert_int_equal(sp__shm_alloc(r, 4 * MIB, &off), SP_EINVAL);
  assert_int_equal(sp__shm_alloc(r, 0, &off), SP_EINVAL);
  size_t used, largest;
  sp__shm_usage(r, &used, &largest);
  assert_int_equal(sp__shm_alloc(r, largest, &off), 0);
  uint64_t other;
  assert_int_equal(sp__shm_alloc(r, 1, &other), SP_ENOMEM);
  assert_int_equal(sp__shm_free(r, off), 0);
  /* Many small blocks: the table fills before the memory; then allocation fails cleanly. */
  int n = 0;
  while (sp__shm_alloc(r, 64, &off) == 0) n++;
  assert_true(n > 1000);
  sp_error_t err;
  sp__shm_t *tiny = NULL;
  assert_int_equal(sp__shm_create(&tiny, "tiny", 1024, &err), SP_EINVAL);
  sp_error_free(&err);
  sp__shm_unref(r);
}

static void another_process_frees_and_maps(void **state) {
  (void)state;
  sp__shm_t *r = make(4 * MIB);
  uint64_t off;
  assert_int_equal(sp__shm_alloc(r, 4096, &off), 0);
  memcpy(r->base + off, "hello", 6);
  pid_t pid = fork();
  if (pid == 0) {
    /* The child maps the same memfd (as a worker does) and frees the parent's block. */
    sp__shm_t *c = NULL;
    sp_error_t err;
    if (sp__shm_attach(&c, dup(r->fd), 1, &err) != 0) _exit(1);
    if (strcmp((char *)c->base + off, "hello") != 0) _exit(2);
    uint64_t mine;
    if (sp__shm_free(c, off) != 0 || sp__shm_alloc(c, 100, &mine) != 0) _exit(3);
    memcpy(c->base + mine, "child", 6);
    _exit(mine == off ? 0 : 4); /* first fit: the freed block again */
  }
  int st;
  waitpid(pid, &st, 0);
  assert_true(WIFEXITED(st));
  assert_int_equal(WEXITSTATUS(st), 0);
  assert_string_equal((char *)r->base + off, "child");
  assert_int_equal(sp__shm_block_size(r, off), 128);
  sp__shm_unref(r);
}

static void holder_dies_with_the_lock(void **state) {
  (void)state;
  sp__shm_t *r = make(4 * MIB);
  pid_t pid = fork();
  if (pid == 0) {
    /* Take the lock (its mutex sits at the start of the table) and die holding it. */
    pthread_mutex_t *mu = (pthread_mutex_t *)(r->base + 16);
    pthread_mutex_lock(mu);
    raise(SIGKILL);
  }
  int st;
  waitpid(pid, &st, 0);
  assert_true(WIFSIGNALED(st));
  uint64_t off;
  assert_int_equal(sp__shm_alloc(r, 100, &off), 0); /* recovered, the table was intact */
  assert_int_equal(sp__shm_free(r, off), 0);
  sp__shm_unref(r);
}

static void damaged_table_is_not_followed(void **state) {
  (void)state;
  sp__shm_t *r = make(4 * MIB);
  uint64_t off;
  assert_int_equal(sp__shm_alloc(r, 100, &off), 0);
  /* Corrupt the block count, then have a holder of the lock die so the
   * next locker checks the table. */
  uint32_t *nblocks = (uint32_t *)(r->base + 16 + sizeof(pthread_mutex_t));
  pid_t pid = fork();
  if (pid == 0) {
    pthread_mutex_lock((pthread_mutex_t *)(r->base + 16));
    *nblocks = 100000;
    raise(SIGKILL);
  }
  int st;
  waitpid(pid, &st, 0);
  assert_int_equal(sp__shm_alloc(r, 100, &off), SP_ENOMEM);
  assert_int_equal(sp__shm_free(r, off), SP_EINVAL);
  sp__shm_unref(r);
}

static void array_tables_round_trip_and_reject(void **state) {
  (void)state;
  double v[3] = {1, 2, 3};
  sp__array_desc_t d[2] = {
      {.name = "a", .name_len = 1, .dtype = SP_DTYPE_FLOAT64, .ndim = 1, .shape = {3},
       .where = SP__ARR_INLINE, .nbytes = 24, .data = v},
      {.name = "big/0", .name_len = 5, .dtype = SP_DTYPE_INT32, .ndim = 2, .shape = {4, 5},
       .where = SP__ARR_SHARED, .offset = SP__SHM_DATA_START + 128, .nbytes = 80}};
  size_t size = sp__arrays_size(d, 2);
  uint8_t *p = malloc(size);
  sp__arrays_write(p, d, 2);
  sp__array_desc_t got[4];
  size_t n;
  const uint8_t *base;
  assert_int_equal(sp__arrays_parse(p, size, 1 << 20, got, 4, &n, &base), 0);
  assert_int_equal(n, 2);
  assert_memory_equal(got[0].name, "a", 1);
  assert_int_equal(got[0].where, SP__ARR_INLINE);
  assert_memory_equal(base + got[0].offset, v, 24);
  assert_memory_equal(got[1].name, "big/0", 5);
  assert_int_equal(got[1].shape[1], 5);
  assert_int_equal(got[1].offset, SP__SHM_DATA_START + 128);
  /* Shared bytes outside the region, no region, truncation, a wrong nbytes. */
  assert_int_equal(sp__arrays_parse(p, size, SP__SHM_DATA_START + 100, got, 4, &n, &base),
                   SP_EPROTOCOL);
  assert_int_equal(sp__arrays_parse(p, size, 0, got, 4, &n, &base), SP_EPROTOCOL);
  assert_int_equal(sp__arrays_parse(p, size - 1, 1 << 20, got, 4, &n, &base), SP_EPROTOCOL);
  assert_int_equal(sp__arrays_parse(p, size, 1 << 20, got, 1, &n, &base), SP_EPROTOCOL);
  p[4 + 16] ^= 1; /* first entry's nbytes */
  assert_int_equal(sp__arrays_parse(p, size, 1 << 20, got, 4, &n, &base), SP_EPROTOCOL);
  free(p);
  int64_t shape[2] = {INT64_MAX / 2, 4};
  assert_int_equal(sp__array_nbytes(SP_DTYPE_FLOAT64, 2, shape), -1); /* overflow */
  assert_int_equal(sp__array_nbytes(99, 0, NULL), -1);
  assert_int_equal(sp__array_nbytes(SP_DTYPE_COMPLEX128, 0, NULL), 16);
  assert_string_equal(sp_dtype_name(SP_DTYPE_FLOAT16), "float16");
  assert_int_equal(sp_dtype_size(SP_DTYPE_COMPLEX64), 8);
  assert_int_equal(sp_dtype_size(0), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(alloc_free_and_coalesce),
      cmocka_unit_test(exhaustion_and_limits),
      cmocka_unit_test(another_process_frees_and_maps),
      cmocka_unit_test(holder_dies_with_the_lock),
      cmocka_unit_test(damaged_table_is_not_followed),
      cmocka_unit_test(array_tables_round_trip_and_reject),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

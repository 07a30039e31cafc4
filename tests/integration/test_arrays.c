/*
 * test_arrays.c - arrays through shared memory, in both profiles: every dtype
 * round-trips bit-exactly; strided, 0-d and empty inputs; arrays anywhere in a
 * result; in-place inputs read without a copy; 16 callers at once; bad input
 * of every kind answered with a clear error; limits; nothing leaked when a
 * worker dies holding arrays; results stay valid after their worker is gone.
 */
#include <dirent.h>
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

#define ARRAY_ADAPTER "array_adapter.ArrayAdapter"

static sp_runtime_t *rt;
static const char *const POOLS[] = {"proc", "thr"};

static int setup(void **state) {
  (void)state;
  rt = h_start_proc_thr(ARRAY_ADAPTER, 2, 4);
  return rt ? 0 : -1;
}

static int teardown(void **state) {
  (void)state;
  return sp_runtime_stop(rt, 5000);
}

/* Calls tool with one array argument `a`; returns the code, result in *res. */
static int call1(sp_runtime_t *r, const char *pool, const char *tool, const sp_array_t *a,
                 sp_result_t *res) {
  sp_call_opts_t opts = SP_CALL_OPTS_INIT;
  opts.arrays = a;
  opts.array_count = a ? 1 : 0;
  int rc = sp_execute(r, pool, tool, "{}", &opts, res);
  if (rc != 0) fprintf(stderr, "%s/%s: %s\n", pool, tool, res->error.message);
  return rc;
}

/* Bytes that exercise each dtype's corners (NaN payloads, -0.0, extremes). */
static void fill_tricky(uint8_t *p, size_t n, int dtype, unsigned seed) {
  for (size_t i = 0; i < n; i++) p[i] = (uint8_t)(seed * 31 + i * 7 + (i >> 3));
  if (dtype == SP_DTYPE_BOOL)
    for (size_t i = 0; i < n; i++) p[i] &= 1; /* NumPy bools are 0 or 1 */
  if (dtype == SP_DTYPE_FLOAT64 && n >= 32) {
    double v[4] = {-0.0, NAN, INFINITY, -1e308};
    memcpy(p, v, sizeof(v));
    uint64_t payload = UINT64_C(0x7ff8dead0000beef); /* a NaN with a payload */
    memcpy(p + 8, &payload, 8);
  }
  if (dtype == SP_DTYPE_INT64 && n >= 16) {
    int64_t v[2] = {INT64_MIN, INT64_MAX};
    memcpy(p, v, sizeof(v));
  }
  if (dtype == SP_DTYPE_UINT64 && n >= 8) {
    uint64_t v = UINT64_MAX;
    memcpy(p, &v, 8);
  }
}

static void every_dtype_round_trips_bit_exactly(void **state) {
  (void)state;
  int64_t shape[2] = {3, 5};
  for (int pi = 0; pi < 2; pi++) {
    for (int dt = SP_DTYPE_BOOL; dt <= SP_DTYPE_COMPLEX128; dt++) {
      size_t n = 15 * sp_dtype_size(dt);
      uint8_t *data = malloc(n);
      fill_tricky(data, n, dt, (unsigned)dt);
      sp_array_t a = {.name = "a", .dtype = (sp_dtype_t)dt, .ndim = 2, .shape = shape,
                      .data = data};
      sp_result_t res;
      assert_int_equal(call1(rt, POOLS[pi], "echo", &a, &res), 0);
      assert_string_equal(res.json, "{\"$array\":0}");
      assert_int_equal(res.array_count, 1);
      const sp_array_t *r = &res.arrays[0];
      assert_string_equal(r->name, "result");
      assert_int_equal(r->dtype, dt);
      assert_int_equal(r->ndim, 2);
      assert_int_equal(r->shape[0], 3);
      assert_int_equal(r->shape[1], 5);
      assert_null(r->strides);
      assert_int_equal(r->nbytes, n);
      assert_memory_equal(r->data, data, n);
      sp_result_free(&res);
      assert_int_equal(res.array_count, 0);
      free(data);
    }
  }
}

static void strided_zero_d_and_empty_inputs(void **state) {
  (void)state;
  /* Every other column of a 4x6 int32 matrix, rows reversed: strides -24, 8. */
  int32_t m[4][6];
  for (int i = 0; i < 4; i++)
    for (int j = 0; j < 6; j++) m[i][j] = i * 100 + j;
  int64_t shape[2] = {4, 3}, strides[2] = {-24, 8};
  sp_array_t a = {.name = "a", .dtype = SP_DTYPE_INT32, .ndim = 2, .shape = shape,
                  .strides = strides, .data = &m[3][0]};
  for (int pi = 0; pi < 2; pi++) {
    sp_result_t res;
    assert_int_equal(call1(rt, POOLS[pi], "echo", &a, &res), 0);
    const int32_t *got = res.arrays[0].data;
    for (int i = 0; i < 4; i++)
      for (int j = 0; j < 3; j++) assert_int_equal(got[i * 3 + j], (3 - i) * 100 + 2 * j);
    sp_result_free(&res);
  }
  /* A 0-d array: one element, no shape. */
  double x = 2.5;
  sp_array_t s = {.name = "a", .dtype = SP_DTYPE_FLOAT64, .ndim = 0, .data = &x};
  sp_result_t res;
  assert_int_equal(call1(rt, "thr", "echo", &s, &res), 0);
  assert_int_equal(res.array_count, 1);
  assert_int_equal(res.arrays[0].ndim, 0);
  assert_int_equal(res.arrays[0].nbytes, 8);
  assert_true(*(const double *)res.arrays[0].data == 2.5);
  sp_result_free(&res);
  /* Arithmetic on it gives a NumPy scalar, which is a JSON number. */
  assert_int_equal(call1(rt, "thr", "double", &s, &res), 0);
  assert_int_equal(res.array_count, 0);
  assert_string_equal(res.json, "5.0");
  sp_result_free(&res);
  /* An empty 0x3 array: no bytes, shape kept. */
  int64_t eshape[2] = {0, 3};
  sp_array_t e = {.name = "a", .dtype = SP_DTYPE_FLOAT32, .ndim = 2, .shape = eshape};
  assert_int_equal(call1(rt, "proc", "echo", &e, &res), 0);
  assert_int_equal(res.arrays[0].nbytes, 0);
  assert_int_equal(res.arrays[0].shape[0], 0);
  assert_int_equal(res.arrays[0].shape[1], 3);
  sp_result_free(&res);
}

static void arrays_anywhere_in_the_result(void **state) {
  (void)state;
  int16_t v[4] = {1, -2, 3, -4};
  int64_t shape[1] = {4};
  sp_array_t a = {.name = "a", .dtype = SP_DTYPE_INT16, .ndim = 1, .shape = shape, .data = v};
  for (int pi = 0; pi < 2; pi++) {
    sp_result_t res;
    assert_int_equal(call1(rt, POOLS[pi], "nested", &a, &res), 0);
    json_t *o = json_loads(res.json, 0, NULL);
    assert_int_equal(json_integer_value(json_object_get(o, "n")), 1);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(o, "c"), "$array")), 0);
    json_t *items = json_object_get(o, "items");
    for (int i = 0; i < 3; i++)
      assert_int_equal(json_integer_value(json_object_get(json_array_get(items, (size_t)i), "$array")),
                       i + 1);
    json_decref(o);
    assert_int_equal(res.array_count, 4);
    assert_string_equal(res.arrays[0].name, "c");
    assert_string_equal(res.arrays[1].name, "items/0");
    assert_string_equal(res.arrays[2].name, "items/1");
    assert_string_equal(res.arrays[3].name, "items/2");
    assert_memory_equal(res.arrays[0].data, v, sizeof(v));
    assert_int_equal(res.arrays[1].shape[0], 1);
    assert_int_equal(res.arrays[2].dtype, SP_DTYPE_UINT8);
    assert_memory_equal(res.arrays[2].data, "raw", 3);
    assert_memory_equal(res.arrays[3].data, "xy", 2);
    sp_result_free(&res);
  }
}

static void computed_and_in_place_outputs(void **state) {
  (void)state;
  enum { N = 100000 };
  double *v = malloc(N * sizeof(double));
  for (int i = 0; i < N; i++) v[i] = i * 0.5;
  int64_t shape[1] = {N};
  sp_array_t a = {.name = "a", .dtype = SP_DTYPE_FLOAT64, .ndim = 1, .shape = shape, .data = v};
  const char *tools[] = {"double", "double_into"};
  for (int pi = 0; pi < 2; pi++) {
    for (int t = 0; t < 2; t++) {
      sp_result_t res;
      assert_int_equal(call1(rt, POOLS[pi], tools[t], &a, &res), 0);
      const double *got = res.arrays[0].data;
      for (int i = 0; i < N; i += 997) assert_true(got[i] == i * 1.0);
      sp_result_free(&res);
    }
  }
  free(v);
}

static void in_place_inputs_are_read_without_a_copy(void **state) {
  (void)state;
  void *p1 = NULL, *p2 = NULL;
  sp_error_t err;
  assert_int_equal(sp_array_alloc(rt, "thr", 4096 * sizeof(double), &p1, &err), 0);
  assert_int_equal(sp_array_alloc(rt, "thr", 4096 * sizeof(double), &p2, &err), 0);
  int64_t shape[1] = {4096};
  long long off[2];
  void *ptr[2] = {p1, p2};
  for (int k = 0; k < 2; k++) {
    for (int i = 0; i < 4096; i++) ((double *)ptr[k])[i] = k + 1;
    sp_array_t a = {.name = "a", .dtype = SP_DTYPE_FLOAT64, .ndim = 1, .shape = shape,
                    .data = ptr[k]};
    sp_result_t res;
    assert_int_equal(call1(rt, "thr", "info", &a, &res), 0);
    json_t *o = json_loads(res.json, 0, NULL);
    assert_string_equal(json_string_value(json_object_get(o, "type")), "ndarray");
    assert_false(json_is_true(json_object_get(o, "writeable")));
    assert_false(json_is_true(json_object_get(o, "owns_data")));
    assert_true(json_real_value(json_object_get(o, "sum")) == 4096.0 * (k + 1));
    assert_true(json_is_integer(json_object_get(o, "in_offset")));
    off[k] = json_integer_value(json_object_get(o, "in_offset"));
    json_decref(o);
    sp_result_free(&res);
  }
  /* The tool read the caller's own bytes: the same distance apart in both. */
  assert_int_equal(off[1] - off[0], (long long)((char *)p2 - (char *)p1));
  sp_array_free(rt, p1);
  sp_array_free(rt, p2);
  /* Writable on request: DLPack consumers take the array as it is. */
  double w[4] = {1, 2, 3, 4};
  int64_t s4[1] = {4};
  sp_array_t wa = {.name = "a", .dtype = SP_DTYPE_FLOAT64, .ndim = 1, .shape = s4, .data = w};
  sp_call_opts_t wopts = SP_CALL_OPTS_INIT;
  wopts.arrays = &wa;
  wopts.array_count = 1;
  for (int pi = 0; pi < 2; pi++) {
    sp_result_t res;
    assert_int_equal(sp_execute(rt, POOLS[pi], "dlpack", "{}", &wopts, &res), SP_EPYTHON);
    assert_non_null(strstr(res.error.message, "read-only")); /* read-only by default */
    sp_result_free(&res);
    wopts.arrays_writable = 1;
    assert_int_equal(sp_execute(rt, POOLS[pi], "dlpack", "{}", &wopts, &res), 0);
    assert_string_equal(res.json, "{\"sum\":9.0,\"shares_memory\":true}");
    sp_result_free(&res);
    wopts.arrays_writable = 0;
  }
  assert_true(w[0] == 1.0); /* the caller's own bytes were copied, never written */
  /* Copied inputs are in shared memory too. */
  double one = 1;
  int64_t s1[1] = {1};
  sp_array_t a = {.name = "a", .dtype = SP_DTYPE_FLOAT64, .ndim = 1, .shape = s1, .data = &one};
  sp_result_t res;
  assert_int_equal(call1(rt, "proc", "info", &a, &res), 0);
  assert_non_null(strstr(res.json, "\"in_offset\":"));
  assert_null(strstr(res.json, "\"in_offset\":null"));
  sp_result_free(&res);
}

static void several_arrays_and_json_together(void **state) {
  (void)state;
  float x[3] = {1, 2, 3};
  uint8_t y[2] = {10, 20};
  int64_t s3[1] = {3}, s2[1] = {2};
  sp_array_t arrs[2] = {
      {.name = "x", .dtype = SP_DTYPE_FLOAT32, .ndim = 1, .shape = s3, .data = x},
      {.name = "y", .dtype = SP_DTYPE_UINT8, .ndim = 1, .shape = s2, .data = y}};
  sp_call_opts_t opts = SP_CALL_OPTS_INIT;
  opts.arrays = arrs;
  opts.array_count = 2;
  sp_result_t res;
  assert_int_equal(sp_execute(rt, "proc", "combine", "{\"scale\": 2}", &opts, &res), 0);
  assert_string_equal(res.json, "{\"x\":12.0,\"y\":60.0}");
  sp_result_free(&res);
  /* As lists: the old JSON shape, no arrays. */
  opts.array_count = 1;
  opts.arrays_as_lists = 1;
  assert_int_equal(sp_execute(rt, "thr", "echo", "{}", &opts, &res), SP_EBADARGS);
  assert_non_null(strstr(res.error.message, "unknown argument 'x'"));
  sp_result_free(&res);
  arrs[0].name = "a";
  assert_int_equal(sp_execute(rt, "thr", "echo", "{}", &opts, &res), 0);
  assert_string_equal(res.json, "[1.0,2.0,3.0]");
  assert_int_equal(res.array_count, 0);
  sp_result_free(&res);
  /* Bytes a tool returns become a list of byte values as lists. */
  assert_int_equal(sp_execute(rt, "thr", "nested", "{}", &opts, &res), 0);
  assert_non_null(strstr(res.json, "\"items\":[[1.0],[114,97,119],[120,121]]"));
  sp_result_free(&res);
}

static void bad_input_gets_a_clear_error(void **state) {
  (void)state;
  double v[2] = {1, 2};
  int64_t shape[1] = {2}, neg[1] = {-1};
  sp_result_t res;
  struct {
    sp_array_t a;
    const char *args;
    int code;
    const char *says;
  } cases[] = {
      {{.name = "a", .dtype = (sp_dtype_t)99, .ndim = 1, .shape = shape, .data = v}, "{}",
       SP_EBADARGS, "unknown dtype"},
      {{.name = "a", .dtype = SP_DTYPE_FLOAT64, .ndim = 1, .shape = neg, .data = v}, "{}",
       SP_EBADARGS, "negative"},
      {{.name = "a", .dtype = SP_DTYPE_FLOAT64, .ndim = 40, .shape = shape, .data = v}, "{}",
       SP_EBADARGS, "ndim"},
      {{.name = "a", .dtype = SP_DTYPE_FLOAT64, .ndim = 1, .shape = shape, .data = NULL}, "{}",
       SP_EBADARGS, "data is NULL"},
      {{.name = "", .dtype = SP_DTYPE_FLOAT64, .ndim = 1, .shape = shape, .data = v}, "{}",
       SP_EBADARGS, "name"},
      {{.name = "a", .dtype = SP_DTYPE_FLOAT64, .ndim = 1, .shape = shape, .data = v},
       "{\"a\": 1}", SP_EBADARGS, "also in the JSON"},
      {{.name = "a\xff", .dtype = SP_DTYPE_FLOAT64, .ndim = 1, .shape = shape, .data = v}, "{}",
       SP_EBADARGS, "not valid UTF-8"},
      {{.name = "b", .dtype = SP_DTYPE_FLOAT64, .ndim = 1, .shape = shape, .data = v}, "{}",
       SP_EBADARGS, "unknown argument 'b'"},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    sp_call_opts_t opts = SP_CALL_OPTS_INIT;
    opts.arrays = &cases[i].a;
    opts.array_count = 1;
    int rc = sp_execute(rt, "proc", "echo", cases[i].args, &opts, &res);
    if (rc != cases[i].code || strstr(res.error.message, cases[i].says) == NULL)
      fail_msg("case %zu: got %s: %s", i, sp_err_name(rc), res.error.message);
    sp_result_free(&res);
  }
  sp_array_t two[2] = {{.name = "a", .dtype = SP_DTYPE_FLOAT64, .ndim = 1, .shape = shape, .data = v},
                       {.name = "a", .dtype = SP_DTYPE_FLOAT64, .ndim = 1, .shape = shape, .data = v}};
  sp_call_opts_t opts = SP_CALL_OPTS_INIT;
  opts.arrays = two;
  opts.array_count = 2;
  assert_int_equal(sp_execute(rt, "proc", "echo", "{}", &opts, &res), SP_EBADARGS);
  assert_non_null(strstr(res.error.message, "same name"));
  sp_result_free(&res);
  /* A result that cannot be shared: an error naming where it is and why. */
  assert_int_equal(sp_execute(rt, "thr", "objects", "{}", NULL, &res), SP_EPYTHON);
  assert_non_null(strstr(res.error.message, "'bad'"));
  assert_non_null(strstr(res.error.message, "object"));
  sp_result_free(&res);
  /* And everything keeps serving. */
  for (int pi = 0; pi < 2; pi++) {
    sp_array_t a = {.name = "a", .dtype = SP_DTYPE_FLOAT64, .ndim = 1, .shape = shape, .data = v};
    assert_int_equal(call1(rt, POOLS[pi], "echo", &a, &res), 0);
    sp_result_free(&res);
  }
}

typedef struct {
  int id;
  int ok;
} caller_t;

static void *caller_main(void *arg) {
  caller_t *c = arg;
  enum { N = 50000 };
  int64_t *v = malloc(N * sizeof(int64_t));
  int64_t shape[1] = {N};
  for (int round = 0; round < 10; round++) {
    for (int i = 0; i < N; i++) v[i] = (int64_t)c->id * 1000000 + round * 1000 + i;
    sp_array_t a = {.name = "a", .dtype = SP_DTYPE_INT64, .ndim = 1, .shape = shape, .data = v};
    sp_result_t res;
    sp_call_opts_t opts = SP_CALL_OPTS_INIT;
    opts.arrays = &a;
    opts.array_count = 1;
    if (sp_execute(rt, c->id % 2 ? "proc" : "thr", "echo", "{}", &opts, &res) == 0 &&
        res.array_count == 1 && memcmp(res.arrays[0].data, v, sizeof(int64_t) * N) == 0)
      c->ok++;
    sp_result_free(&res);
  }
  free(v);
  return NULL;
}

static void sixteen_callers_get_their_own_data(void **state) {
  (void)state;
  pthread_t th[16];
  caller_t c[16];
  for (int i = 0; i < 16; i++) {
    c[i] = (caller_t){i, 0};
    pthread_create(&th[i], NULL, caller_main, &c[i]);
  }
  for (int i = 0; i < 16; i++) pthread_join(th[i], NULL);
  for (int i = 0; i < 16; i++) assert_int_equal(c[i].ok, 10);
}

/* Mappings of this process whose name contains `what` (memfd regions show as memfd:NAME). */
static int mappings_of(const char *what) {
  FILE *f = fopen("/proc/self/maps", "r");
  char line[1024];
  int n = 0;
  while (f && fgets(line, sizeof(line), f)) n += strstr(line, what) != NULL;
  if (f) fclose(f);
  return n;
}

/* File descriptors of this process that are memfds named like `what`. */
static int memfds_of(const char *what) {
  DIR *d = opendir("/proc/self/fd");
  struct dirent *e;
  int n = 0;
  char path[300], target[256];
  while (d && (e = readdir(d)) != NULL) {
    snprintf(path, sizeof(path), "/proc/self/fd/%s", e->d_name);
    ssize_t k = readlink(path, target, sizeof(target) - 1);
    if (k <= 0) continue;
    target[k] = '\0';
    n += strstr(target, "memfd:") != NULL && strstr(target, what) != NULL;
  }
  if (d) closedir(d);
  return n;
}

static void limits_and_fallbacks(void **state) {
  (void)state;
  sp_runtime_t *small = h_start_pool("small", "process", 1, 1, ARRAY_ADAPTER,
                                     "    max_shared_memory: 1MiB\n    max_frame_bytes: 1MiB\n");
  /* 4 MB fits neither the 1 MiB region nor a 1 MiB frame: the error names both limits. */
  enum { BIG = 4 << 20 };
  uint8_t *big = calloc(1, BIG);
  int64_t bshape[1] = {BIG};
  sp_array_t a = {.name = "a", .dtype = SP_DTYPE_UINT8, .ndim = 1, .shape = bshape, .data = big};
  sp_result_t res;
  assert_int_equal(call1(small, "small", "echo", &a, &res), SP_ETOOLARGE);
  assert_non_null(strstr(res.error.message, "max_shared_memory"));
  assert_non_null(strstr(res.error.message, "max_frame_bytes"));
  sp_result_free(&res);
  void *p = NULL;
  sp_error_t err;
  assert_int_equal(sp_array_alloc(small, "small", BIG, &p, &err), SP_ETOOLARGE);
  assert_non_null(strstr(err.message, "max_shared_memory"));
  sp_error_free(&err);
  /* With the region taken, a 200 KB array travels inline in the frame. */
  assert_int_equal(sp_array_alloc(small, "small", 900 << 10, &p, &err), 0);
  bshape[0] = 200 << 10;
  for (int i = 0; i < (200 << 10); i++) big[i] = (uint8_t)(i * 13);
  assert_int_equal(call1(small, "small", "echo", &a, &res), 0);
  assert_memory_equal(res.arrays[0].data, big, 200 << 10);
  sp_result_free(&res);
  sp_array_free(small, p);
  /* Results the caller keeps do not exhaust the worker's memory: once half of
   * it is pinned, further results come inline. */
  sp_result_t kept[8];
  for (int i = 0; i < 8; i++) {
    assert_int_equal(sp_execute(small, "small", "ones", "{\"n\": 20000}", NULL, &kept[i]), 0);
    assert_int_equal(kept[i].arrays[0].nbytes, 160000);
    assert_true(((const double *)kept[i].arrays[0].data)[19999] == 1.0);
  }
  for (int i = 0; i < 8; i++) sp_result_free(&kept[i]);
  free(big);
  sp_runtime_stop(small, 2000);
}

static void dead_worker_leaks_nothing_and_results_stay_valid(void **state) {
  (void)state;
  sp_runtime_t *r = h_start_pool("leak", "process", 1, 1, ARRAY_ADAPTER, NULL);
  int before = memfds_of("snakepit-leak-");
  assert_int_equal(before, 2); /* the pool's input memory and w1's output memory */
  /* A result of w1, kept while w1 dies. */
  double v[3] = {1, 2, 3};
  int64_t shape[1] = {3};
  sp_array_t a = {.name = "a", .dtype = SP_DTYPE_FLOAT64, .ndim = 1, .shape = shape, .data = v};
  sp_result_t kept, res;
  assert_int_equal(call1(r, "leak", "echo", &a, &kept), 0);
  json_t *stats = h_pool_stats(r, "leak");
  int pid = (int)json_integer_value(json_object_get(json_array_get(json_object_get(stats, "workers"), 0), "pid"));
  json_decref(stats);
  /* SIGKILL while the worker holds a call's arrays. */
  sp_call_opts_t opts = SP_CALL_OPTS_INIT;
  opts.arrays = &a;
  opts.array_count = 1;
  h_async_t slow = {0};
  assert_int_equal(sp_execute_async(r, "leak", "slow_echo", "{\"seconds\": 5}", &opts, h_async_done,
                                    &slow, NULL),
                   0);
  h_sleep_ms(500);
  kill(pid, SIGKILL);
  assert_true(h_async_wait(&slow, 30));
  assert_int_equal(slow.code, SP_ECRASHED);
  /* The kept result still reads its data after its worker is gone. */
  assert_memory_equal(kept.arrays[0].data, v, sizeof(v));
  assert_int_equal(mappings_of("snakepit-leak-w1-out"), 1);
  sp_result_free(&kept);
  /* Freed: the dead worker's memory is gone from this process too. */
  assert_int_equal(mappings_of("snakepit-leak-w1-out"), 0);
  assert_int_equal(call1(r, "leak", "echo", &a, &res), 0);
  sp_result_free(&res);
  assert_int_equal(memfds_of("snakepit-leak-"), before);
  sp_runtime_stop(r, 2000);
  assert_int_equal(memfds_of("snakepit-leak-"), 0);
  assert_int_equal(mappings_of("snakepit-leak-"), 0);
}

/* A worker that sends malformed array descriptors: a protocol error, and it is replaced. */
static void malformed_descriptors_from_a_worker(void **state) {
  (void)state;
  char path[4096];
  snprintf(path, sizeof(path), "%s/../integration/lying_worker.py", SP_TEST_ADAPTERS);
  setenv("SNAKEPIT_WORKER", path, 1);
  sp_runtime_t *r = h_start_pool("liar", "process", 1, 1, ARRAY_ADAPTER,
                                 "    worker_start: exec\n");
  unsetenv("SNAKEPIT_WORKER");
  json_t *before = h_pool_stats(r, "liar");
  json_int_t pid = json_integer_value(
      json_object_get(json_array_get(json_object_get(before, "workers"), 0), "pid"));
  json_decref(before);
  sp_result_t res;
  assert_int_equal(sp_execute(r, "liar", "bad", "{}", NULL, &res), SP_EPROTOCOL);
  assert_non_null(strstr(res.error.message, "malformed"));
  assert_null(res.arrays);
  sp_result_free(&res);
  /* Killed and replaced: a new process in its place. */
  json_int_t now = pid;
  for (int i = 0; i < 100 && (now == pid || now == 0); i++) {
    h_sleep_ms(50);
    json_t *s = h_pool_stats(r, "liar");
    json_t *w = json_array_get(json_object_get(s, "workers"), 0);
    const char *st = json_string_value(json_object_get(w, "state"));
    now = st != NULL && strcmp(st, "ready") == 0
              ? json_integer_value(json_object_get(w, "pid"))
              : 0;
    json_decref(s);
  }
  assert_true(now != pid && now != 0);
  sp_runtime_stop(r, 1000);
}

/* A 1 GiB array, when max_shared_memory allows it. */
static void one_gib_array(void **state) {
  (void)state;
  sp_runtime_t *r = h_start_pool("huge", "thread", 1, 2, ARRAY_ADAPTER,
                                 "    max_shared_memory: 2300MiB\n");
  size_t n = (size_t)1 << 30;
  uint8_t *v = malloc(n);
  assert_non_null(v);
  for (size_t i = 0; i < n; i += 4096) v[i] = (uint8_t)(i >> 12);
  v[n - 1] = 0xAB;
  int64_t shape[1] = {(int64_t)n};
  sp_array_t a = {.name = "a", .dtype = SP_DTYPE_UINT8, .ndim = 1, .shape = shape, .data = v};
  sp_result_t res;
  sp_call_opts_t opts = SP_CALL_OPTS_INIT;
  opts.arrays = &a;
  opts.array_count = 1;
  opts.timeout_ms = 120000;
  assert_int_equal(sp_execute(r, "huge", "echo", "{}", &opts, &res), 0);
  assert_int_equal(res.arrays[0].nbytes, n);
  assert_memory_equal(res.arrays[0].data, v, n);
  sp_result_free(&res);
  free(v);
  sp_runtime_stop(r, 2000);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(every_dtype_round_trips_bit_exactly),
      cmocka_unit_test(strided_zero_d_and_empty_inputs),
      cmocka_unit_test(arrays_anywhere_in_the_result),
      cmocka_unit_test(computed_and_in_place_outputs),
      cmocka_unit_test(in_place_inputs_are_read_without_a_copy),
      cmocka_unit_test(several_arrays_and_json_together),
      cmocka_unit_test(bad_input_gets_a_clear_error),
      cmocka_unit_test(sixteen_callers_get_their_own_data),
      cmocka_unit_test(limits_and_fallbacks),
      cmocka_unit_test(dead_worker_leaks_nothing_and_results_stay_valid),
      cmocka_unit_test(malformed_descriptors_from_a_worker),
      cmocka_unit_test(one_gib_array),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}

/*
 * test_scheduler.c - least-loaded worker choice, round-robin among equals, the
 * FIFO of waiting calls and the deadline heap (against a brute-force model).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>

#include "scheduler.h"

static void picks_most_free_slots(void **state) {
  (void)state;
  sp__load_t a = {4, 3, 1, 0}, b = {4, 1, 1, 0}, c = {1, 0, 1, 0};
  sp__load_t *ws[] = {&a, &b, &c};
  size_t cur = 0;
  assert_int_equal(sp__sched_pick(ws, 3, &cur, 64), 1); /* 3 free beats 1 and 1 */
  b.inflight = 4;
  cur = 0;
  assert_int_equal(sp__sched_pick(ws, 3, &cur, 64), 0); /* a: 1 free, c: 1 free, a comes first */
  assert_int_equal(cur, 1);
  assert_int_equal(sp__sched_pick(ws, 3, &cur, 64), 2); /* tie rotates on from the cursor */
}

static void skips_not_ready_and_full(void **state) {
  (void)state;
  sp__load_t a = {8, 0, 0, 0}, b = {1, 1, 1, 0};
  sp__load_t *ws[] = {&a, &b, NULL};
  size_t cur = 0;
  assert_int_equal(sp__sched_pick(ws, 3, &cur, 64), -1);
  a.ready = 1;
  assert_int_equal(sp__sched_pick(ws, 3, &cur, 64), 0);
  assert_int_equal(sp__sched_pick(ws, 0, &cur, 64), -1);
}

static void equal_workers_share_round_robin(void **state) {
  (void)state;
  sp__load_t w[4] = {{1, 0, 1, 0}, {1, 0, 1, 0}, {1, 0, 1, 0}, {1, 0, 1, 0}};
  sp__load_t *ws[] = {&w[0], &w[1], &w[2], &w[3]};
  size_t cur = 0;
  int counts[4] = {0};
  for (int i = 0; i < 400; i++) counts[sp__sched_pick(ws, 4, &cur, 64)]++;
  for (int i = 0; i < 4; i++) assert_int_equal(counts[i], 100);
}

static void pipeline_room_only_when_all_busy(void **state) {
  (void)state;
  sp__load_t a = {1, 1, 1, 2}, b = {1, 0, 1, 2};
  sp__load_t *ws[] = {&a, &b};
  size_t cur = 0;
  assert_int_equal(sp__sched_pick(ws, 2, &cur, 64), 1); /* an idle worker beats pipelining */
  b.inflight = 1;
  cur = 0;
  assert_int_equal(sp__sched_pick(ws, 2, &cur, 64), 0); /* both busy: queue inside a worker */
  a.inflight = 3;
  b.inflight = 3;
  assert_int_equal(sp__sched_pick(ws, 2, &cur, 64), -1); /* threads + depth used up */
  b.inflight = 2;
  assert_int_equal(sp__sched_pick(ws, 2, &cur, 64), 1);
}

static void free_thread_beats_deeper_pipeline(void **state) {
  (void)state;
  /* Depths differ per worker (they follow each worker's call length): a busy
   * worker with room for 8 queued calls must not win over an idle one that
   * may queue none, nor a thread worker with 1 free thread over one with 2. */
  sp__load_t busy = {1, 1, 1, 8}, idle = {1, 0, 1, 0};
  sp__load_t *ws[] = {&busy, &idle};
  size_t cur = 0;
  for (int i = 0; i < 4; i++) assert_int_equal(sp__sched_pick(ws, 2, &cur, 64), 1);
  sp__load_t t1 = {4, 3, 1, 8}, t2 = {4, 2, 1, 0};
  sp__load_t *ts[] = {&t1, &t2};
  assert_int_equal(sp__sched_pick(ts, 2, &cur, 64), 1);
  /* Every thread busy: the pipeline with room takes it... */
  idle.inflight = 1;
  assert_int_equal(sp__sched_pick(ws, 2, &cur, 64), 0);
  /* ...only as deep as the call's own cap: 1 queued ahead is fine, 2 is not. */
  assert_int_equal(sp__sched_pick(ws, 2, &cur, 1), 0);
  busy.inflight = 2;
  assert_int_equal(sp__sched_pick(ws, 2, &cur, 1), -1);
  /* A call whose tool is slow (cap 0) is never queued inside a worker. */
  busy.inflight = 1;
  assert_int_equal(sp__sched_pick(ws, 2, &cur, 0), -1);
}

static void depth_follows_call_length(void **state) {
  (void)state;
  /* Nothing measured yet: the configured maximum. */
  assert_int_equal(sp__sched_depth(0, 8), 8);
  /* 20 us per call: 50 fit in the 1 ms budget, capped at the maximum. */
  assert_int_equal(sp__sched_depth(20000, 8), 8);
  /* 250 us per call: 4 fit. */
  assert_int_equal(sp__sched_depth(250000, 8), 4);
  /* A millisecond or more: no call may queue inside the worker. */
  assert_int_equal(sp__sched_depth(1000001, 8), 0);
  assert_int_equal(sp__sched_depth(50000000, 8), 0);
  assert_int_equal(sp__sched_depth(1000, 0), 0);

  /* The mean moves an eighth of the way per sample, both directions. */
  assert_int_equal(sp__sched_gap_update(0, 5000), 5000);
  assert_int_equal(sp__sched_gap_update(8000, 16000), 9000);
  assert_int_equal(sp__sched_gap_update(8000, 0), 7000);
  /* Fast calls, then a run of slow ones: the depth falls to 0 within ~30 calls. */
  uint64_t m = 0;
  for (int i = 0; i < 100; i++) m = sp__sched_gap_update(m, 10000);
  assert_int_equal(sp__sched_depth(m, 8), 8);
  int n = 0;
  while (sp__sched_depth(m, 8) > 0 && n < 1000) {
    m = sp__sched_gap_update(m, 100000000);
    n++;
  }
  assert_true(n > 0 && n < 30);
}

static void fifo_order_and_removal(void **state) {
  (void)state;
  sp__sched_item_t it[5];
  sp__fifo_t q = {0};
  for (int i = 0; i < 5; i++) {
    sp__sched_item_init(&it[i]);
    sp__fifo_push(&q, &it[i]);
  }
  assert_int_equal(q.len, 5);
  sp__fifo_remove(&q, &it[2]);
  sp__fifo_remove(&q, &it[2]); /* removing twice is harmless */
  sp__fifo_remove(&q, &it[4]);
  assert_int_equal(q.len, 3);
  assert_ptr_equal(sp__fifo_pop(&q), &it[0]);
  assert_ptr_equal(sp__fifo_pop(&q), &it[1]);
  assert_ptr_equal(sp__fifo_pop(&q), &it[3]);
  assert_null(sp__fifo_pop(&q));
  assert_int_equal(q.len, 0);
}

static void heap_matches_model(void **state) {
  (void)state;
  enum { N = 2000 };
  sp__sched_item_t *items = calloc(N, sizeof(*items));
  int *in = calloc(N, sizeof(int));
  sp__dheap_t h = {0};
  srand(12345);
  for (int i = 0; i < N; i++) {
    sp__sched_item_init(&items[i]);
    items[i].due_ms = rand() % 500;
  }
  for (int step = 0; step < 20000; step++) {
    int i = rand() % N;
    int op = rand() % 3;
    if (op == 0 && !in[i]) {
      assert_int_equal(sp__dheap_push(&h, &items[i]), 0);
      in[i] = 1;
    } else if (op == 1 && in[i]) {
      sp__dheap_remove(&h, &items[i]);
      assert_int_equal(items[i].heap_idx, SP__NOT_IN_HEAP);
      in[i] = 0;
    } else if (op == 2) {
      /* The top is the minimum of the model's members. */
      int64_t min = INT64_MAX;
      size_t count = 0;
      for (int k = 0; k < N; k++)
        if (in[k]) {
          count++;
          if (items[k].due_ms < min) min = items[k].due_ms;
        }
      assert_int_equal(h.len, count);
      sp__sched_item_t *top = sp__dheap_top(&h);
      if (count == 0) assert_null(top);
      else assert_int_equal(top->due_ms, min);
    }
  }
  /* Draining yields non-decreasing deadlines. */
  int64_t last = -1;
  sp__sched_item_t *t;
  while ((t = sp__dheap_top(&h)) != NULL) {
    assert_true(t->due_ms >= last);
    last = t->due_ms;
    sp__dheap_remove(&h, t);
  }
  sp__dheap_free(&h);
  free(items);
  free(in);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(picks_most_free_slots), cmocka_unit_test(skips_not_ready_and_full),
      cmocka_unit_test(equal_workers_share_round_robin), cmocka_unit_test(fifo_order_and_removal),
      cmocka_unit_test(pipeline_room_only_when_all_busy),
      cmocka_unit_test(heap_matches_model),
      cmocka_unit_test(depth_follows_call_length),
      cmocka_unit_test(free_thread_beats_deeper_pipeline),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

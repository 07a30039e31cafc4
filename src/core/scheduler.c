/*
 * sched.c - least-loaded worker choice, the intrusive FIFO of waiting calls and
 * a binary min-heap of deadlines with O(log n) removal.
 */
#include "scheduler.h"

#include <stdlib.h>

#include "snakepit.h"

void sp__sched_item_init(sp__sched_item_t *it) {
  it->next = it->prev = NULL;
  it->due_ms = 0;
  it->heap_idx = SP__NOT_IN_HEAP;
  it->in_fifo = 0;
}

/* The ready worker with the most room (free threads plus at most depth_cap of
 * its pipeline depth), ties round-robin from *cursor. */
static int pick_most(sp__load_t *const *workers, size_t n, size_t *cursor, int depth_cap) {
  int best = -1;
  int best_free = 0;
  size_t start = n ? *cursor % n : 0;
  for (size_t k = 0; k < n; k++) {
    size_t i = (start + k) % n;
    const sp__load_t *w = workers[i];
    if (w == NULL || !w->ready) continue;
    int free_slots = w->capacity + (w->depth < depth_cap ? w->depth : depth_cap) - w->inflight;
    if (free_slots > best_free) {
      best_free = free_slots;
      best = (int)i;
    }
  }
  return best;
}

int sp__sched_pick(sp__load_t *const *workers, size_t n, size_t *cursor, int depth_cap) {
  /* Free threads first; pipeline room (which differs per worker) only when no
   * worker has a free thread. */
  int best = pick_most(workers, n, cursor, 0);
  if (best < 0 && depth_cap > 0) best = pick_most(workers, n, cursor, depth_cap);
  if (best >= 0) *cursor = ((size_t)best + 1) % n;
  return best;
}

uint64_t sp__sched_gap_update(uint64_t ewma_ns, uint64_t gap_ns) {
  if (ewma_ns == 0) return gap_ns ? gap_ns : 1;
  /* ewma += (gap - ewma) / 8, in unsigned arithmetic */
  return gap_ns >= ewma_ns ? ewma_ns + (gap_ns - ewma_ns) / 8 : ewma_ns - (ewma_ns - gap_ns) / 8;
}

int sp__sched_depth(uint64_t ewma_ns, int max_depth) {
  if (ewma_ns == 0) return max_depth;
  uint64_t fit = SP__PIPELINE_BUDGET_NS / ewma_ns;
  return fit < (uint64_t)max_depth ? (int)fit : max_depth;
}

void sp__fifo_push(sp__fifo_t *q, sp__sched_item_t *it) {
  it->next = NULL;
  it->prev = q->tail;
  if (q->tail) q->tail->next = it;
  else q->head = it;
  q->tail = it;
  it->in_fifo = 1;
  q->len++;
}

void sp__fifo_remove(sp__fifo_t *q, sp__sched_item_t *it) {
  if (!it->in_fifo) return;
  if (it->prev) it->prev->next = it->next;
  else q->head = it->next;
  if (it->next) it->next->prev = it->prev;
  else q->tail = it->prev;
  it->next = it->prev = NULL;
  it->in_fifo = 0;
  q->len--;
}

sp__sched_item_t *sp__fifo_pop(sp__fifo_t *q) {
  sp__sched_item_t *it = q->head;
  if (it) sp__fifo_remove(q, it);
  return it;
}

static void heap_set(sp__dheap_t *h, size_t i, sp__sched_item_t *it) {
  h->items[i] = it;
  it->heap_idx = i;
}

static void sift_up(sp__dheap_t *h, size_t i) {
  sp__sched_item_t *it = h->items[i];
  while (i > 0) {
    size_t parent = (i - 1) / 2;
    if (h->items[parent]->due_ms <= it->due_ms) break;
    heap_set(h, i, h->items[parent]);
    i = parent;
  }
  heap_set(h, i, it);
}

static void sift_down(sp__dheap_t *h, size_t i) {
  sp__sched_item_t *it = h->items[i];
  for (;;) {
    size_t l = 2 * i + 1, r = l + 1, m = i;
    int64_t mdue = it->due_ms;
    if (l < h->len && h->items[l]->due_ms < mdue) {
      m = l;
      mdue = h->items[l]->due_ms;
    }
    if (r < h->len && h->items[r]->due_ms < mdue) m = r;
    if (m == i) break;
    heap_set(h, i, h->items[m]);
    i = m;
  }
  heap_set(h, i, it);
}

int sp__dheap_push(sp__dheap_t *h, sp__sched_item_t *it) {
  if (h->len == h->cap) {
    size_t ncap = h->cap ? h->cap * 2 : 64;
    sp__sched_item_t **ni = realloc(h->items, ncap * sizeof(*ni));
    if (ni == NULL) return SP_ENOMEM;
    h->items = ni;
    h->cap = ncap;
  }
  heap_set(h, h->len++, it);
  sift_up(h, h->len - 1);
  return 0;
}

void sp__dheap_remove(sp__dheap_t *h, sp__sched_item_t *it) {
  size_t i = it->heap_idx;
  if (i == SP__NOT_IN_HEAP || i >= h->len || h->items[i] != it) return;
  it->heap_idx = SP__NOT_IN_HEAP;
  sp__sched_item_t *last = h->items[--h->len];
  if (i == h->len) return;
  heap_set(h, i, last);
  if (i > 0 && h->items[(i - 1) / 2]->due_ms > last->due_ms) sift_up(h, i);
  else sift_down(h, i);
}

sp__sched_item_t *sp__dheap_top(const sp__dheap_t *h) { return h->len ? h->items[0] : NULL; }

void sp__dheap_free(sp__dheap_t *h) {
  free(h->items);
  h->items = NULL;
  h->len = h->cap = 0;
}

/*
 * waiting.c - how client threads wait for the loop thread, and how the loop
 * thread wakes them.
 *
 * Two kinds of waits:
 *  - a control request or the start-up handshake waits on a word of its own
 *    (sp__wait_word / sp__wake_word);
 *  - a synchronous call waits on its `done` flag, and sleeps on the runtime's
 *    shared wake word with a bit of its own (futex bitsets). The loop thread
 *    collects the bits of the calls it finished during one loop turn and wakes
 *    all their callers with a single system call, just before it polls again.
 *
 * Why one wake-up per loop turn: a woken caller preempts the thread that woke
 * it (it slept, so the scheduler favours it). Waking each caller on its own
 * made the loop thread be preempted once per call, and every preemption is
 * two context switches; one FUTEX_WAKE_BITSET wakes a whole batch before the
 * loop thread gives up its CPU.
 */
#include <limits.h>
#include <linux/futex.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "runtime.h"

/* How long a lone synchronous caller spins before sleeping. */
static int spin_us(void) {
  /* Read once; racing first readers compute the same value. */
  static atomic_int cached = -1;
  int value = atomic_load_explicit(&cached, memory_order_relaxed);
  if (value < 0) {
    const char *e = getenv("SNAKEPIT_SPIN_US");
    value = e ? atoi(e) : 50;
    if (value < 0) value = 0;
    atomic_store_explicit(&cached, value, memory_order_relaxed);
  }
  return value;
}

/* Callers waiting for a reply right now, process-wide. */
static atomic_int g_waiters;

/*
 * Counts the caller in as a waiter and, if it is the only one, spins for a
 * few tens of microseconds until *word is nonzero: that catches a fast reply
 * without a futex sleep and the wake-up latency of an idle (virtual) CPU.
 * With other callers waiting too, the CPUs are better left to the workers, and
 * replies arrive in batches anyway: no spinning. Returns whether *word is set;
 * the caller ends with waiter_leave().
 */
static int waiter_enter(_Atomic uint32_t *word) {
  int others = atomic_fetch_add_explicit(&g_waiters, 1, memory_order_relaxed);
  if (others != 0) return 0;
  uint64_t until = sp__now_ns() + (uint64_t)spin_us() * 1000u;
  while (atomic_load_explicit(&g_waiters, memory_order_relaxed) == 1) {
    for (int i = 0; i < 64; i++) {
      if (atomic_load_explicit(word, memory_order_acquire) != 0) return 1;
#if defined(__x86_64__) || defined(__i386__)
      __builtin_ia32_pause();
#endif
    }
    if (sp__now_ns() >= until) break;
  }
  return atomic_load_explicit(word, memory_order_acquire) != 0;
}

static void waiter_leave(void) { atomic_fetch_sub_explicit(&g_waiters, 1, memory_order_relaxed); }

static long futex(_Atomic uint32_t *word, int op, uint32_t val, uint32_t bits) {
  return syscall(SYS_futex, (uint32_t *)word, op, val, NULL, NULL, bits);
}

void sp__wait_word(_Atomic uint32_t *word) {
  if (!waiter_enter(word)) {
    while (atomic_load_explicit(word, memory_order_acquire) == 0)
      futex(word, FUTEX_WAIT_PRIVATE, 0, 0);
  }
  waiter_leave();
}

void sp__wake_word(_Atomic uint32_t *word) {
  atomic_store_explicit(word, 1, memory_order_release);
  /* Waking an address whose waiter already left is harmless for futexes. */
  futex(word, FUTEX_WAKE_PRIVATE, INT_MAX, 0);
}

/* Each thread sleeps on its own bit of the wake word; with more than 32
 * calling threads bits are shared, which only costs a spurious wake-up. */
static atomic_uint g_next_bit;
static _Thread_local int t_bit = -1;

int sp__wait_bit(void) {
  if (t_bit < 0) t_bit = (int)(atomic_fetch_add_explicit(&g_next_bit, 1, memory_order_relaxed) % 32u);
  return t_bit;
}

/*
 * Waits until the loop thread finished c. Ordering with sp__rt_wake_callers:
 * the caller registers as a sleeper, then reads the wake word, then checks
 * done; the loop sets done, then bumps the wake word, then reads the sleeper
 * count (all sequentially consistent). Either the loop sees the sleeper and
 * wakes its bit, or the caller sees done or a wake word that moved (and the
 * futex wait returns at once).
 */
void sp__wait_call(sp_runtime_t *rt, sp__call_t *c) {
  if (!waiter_enter(&c->done)) {
    atomic_fetch_add(&rt->sleepers, 1);
    for (;;) {
      uint32_t seen = atomic_load(&rt->wake_seq);
      if (atomic_load(&c->done) != 0) break;
      futex(&rt->wake_seq, FUTEX_WAIT_BITSET_PRIVATE, seen, 1u << c->wait_bit);
    }
    atomic_fetch_sub(&rt->sleepers, 1);
  }
  waiter_leave();
}

void sp__rt_call_done(sp_runtime_t *rt, sp__call_t *c) {
  uint32_t bit = 1u << c->wait_bit; /* c is the caller's once done is set */
  atomic_store(&c->done, 1);
  rt->wake_bits |= bit;
}

void sp__rt_wake_callers(sp_runtime_t *rt) {
  uint32_t bits = rt->wake_bits;
  if (bits == 0) return;
  rt->wake_bits = 0;
  atomic_fetch_add(&rt->wake_seq, 1);
  if (atomic_load(&rt->sleepers) > 0) futex(&rt->wake_seq, FUTEX_WAKE_BITSET_PRIVATE, INT_MAX, bits);
}

/*
 * waiting.h - how client threads wait for the loop thread and how it wakes
 * them (waiting.c): futex words, one bit per synchronous caller.
 */
#ifndef SP_CORE_WAITING_H
#define SP_CORE_WAITING_H

#include <stdint.h>

#include "call.h"

/** Blocks until sp__wake_word(word) (spinning briefly first). waiting.c */
void sp__wait_word(_Atomic uint32_t *word);
/** Sets *word and wakes its waiter. */
void sp__wake_word(_Atomic uint32_t *word);
/** The calling thread's bit of a runtime's wake word, for sp__wait_call. */
int sp__wait_bit(void);
/** Blocks until the loop thread finished the sync call c (c->wait_bit set). */
void sp__wait_call(sp_runtime_t *rt, sp__call_t *c);
/** Loop thread: marks the sync call c done; its caller wakes at the end of the turn. */
void sp__rt_call_done(sp_runtime_t *rt, sp__call_t *c);
/** Loop thread: wakes the callers of every call marked done since the last time. */
void sp__rt_wake_callers(sp_runtime_t *rt);

#endif /* SP_CORE_WAITING_H */

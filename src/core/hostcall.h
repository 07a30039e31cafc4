/*
 * hostcall.h - tools that call back into the host (hostcall.c): a HOSTCALL
 * frame from a worker becomes a nested call of another tool (or of the same
 * pool) or a call of a function the host registered; its outcome goes back
 * as HOSTREPLY. Nested calls inherit their caller's deadline, end with it,
 * and are refused when they would deadlock or the chain is too deep.
 * Loop thread.
 */
#ifndef SP_CORE_HOSTCALL_H
#define SP_CORE_HOSTCALL_H

#include "call.h"
#include "protocol.h"

typedef struct sp__worker_s sp__worker_t;

/**
 * A HOSTCALL frame from worker w: starts the nested call or host function,
 * or answers at once with a HOSTREPLY error. -1 when the frame was malformed
 * (the worker is being killed).
 */
int sp__hostcall_on_frame(sp__worker_t *w, const sp__frame_t *f);

/**
 * Call c completes: the nested calls it still waits for are cancelled and
 * host functions it called have their results dropped. No-op for a call
 * without nested calls.
 */
void sp__hostcall_caller_done(sp__call_t *c);

#endif /* SP_CORE_HOSTCALL_H */

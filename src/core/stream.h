/*
 * stream.h - streaming calls on the loop thread (stream.c): the runtime's list
 * of streams in flight (for sp_cancel and the counters), chunk delivery with
 * flow control, and cancellation requests from any thread.
 */
#ifndef SP_CORE_STREAM_H
#define SP_CORE_STREAM_H

#include "call.h"
#include "protocol.h"

/** Adds a stream the loop accepted to the runtime's list. */
void sp__stream_track(sp_runtime_t *rt, sp__call_t *c);
/** Takes a completed stream off the list (no-op for one never tracked). */
void sp__stream_forget(sp_runtime_t *rt, sp__call_t *c);
/**
 * Handles an SP__MSG_CANCEL or SP__MSG_RESUME (freed here): cancels, or lets
 * go on, that stream if it is still in flight.
 */
void sp__stream_msg(sp_runtime_t *rt, sp__msg_t *m);
/**
 * A CHUNK frame from worker w: hands it to its call's chunk callback and
 * grants credit. -1 when the frame was malformed (the worker is being killed).
 */
int sp__stream_on_chunk(sp__worker_t *w, const sp__frame_t *f);

#endif /* SP_CORE_STREAM_H */

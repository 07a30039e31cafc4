/*
 * source.h - the event source an application may hand the loop thread
 * (source.c; public side: sp_runtime_attach_source). Loop thread.
 */
#ifndef SP_CORE_SOURCE_H
#define SP_CORE_SOURCE_H

#include "snakepit.h"

/** Starts serving src (copied) on the loop thread. */
void sp__source_attach(sp_runtime_t *rt, const sp_loop_source_t *src);
/** Stops serving the source; its handles close, then sp__rt_source_gone runs. */
void sp__source_detach(sp_runtime_t *rt);

#endif /* SP_CORE_SOURCE_H */

/*
 * hostfn.h - the registry of host functions (hostfn.c): what
 * sp_register_host_function adds and tools call through current().call_host.
 * Any thread; guarded by rt->hfmu.
 */
#ifndef SP_CORE_HOSTFN_H
#define SP_CORE_HOSTFN_H

#include <stddef.h>

#include "snakepit.h"

typedef struct sp__hostfn_s sp__hostfn_t;

/** Sets up and releases the runtime's registry (rt_alloc, rt_free). */
void sp__hostfns_init(sp_runtime_t *rt);
void sp__hostfns_free(sp_runtime_t *rt);

/**
 * The function registered as name (len bytes, not NUL-terminated), counted
 * as running until sp__hostfn_release() so that unregistering waits for it;
 * NULL when there is none.
 */
sp__hostfn_t *sp__hostfn_acquire(sp_runtime_t *rt, const char *name, size_t len);

/** Runs f on the calling thread: its return value, *out and err as sp_host_fn's. */
int sp__hostfn_run(sp__hostfn_t *f, const char *args, char **out, sp_error_t *err);

/** The name f was registered under (valid until sp__hostfn_release). */
const char *sp__hostfn_name(const sp__hostfn_t *f);

/** Ends a call taken with sp__hostfn_acquire(); f may be freed (it was unregistered). */
void sp__hostfn_release(sp_runtime_t *rt, sp__hostfn_t *f);

#endif /* SP_CORE_HOSTFN_H */

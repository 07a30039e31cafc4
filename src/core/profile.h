/*
 * profile.h - worker_profile: auto (profile.c).
 */
#ifndef SP_CORE_PROFILE_H
#define SP_CORE_PROFILE_H

#include "runtime.h"

/**
 * Resolves worker_profile: auto of pool config pc before its pool starts: a
 * probe worker imports the adapter's module and decides (thread when Python
 * runs without the GIL, the adapter declares __thread_safe__ = True and it
 * imports no library the compatibility table flags unsafe; process
 * otherwise). Sets pc->profile, threads_per_worker (4 for thread unless
 * configured, 1 for process), profile_auto and profile_reason, and logs the
 * choice. Nothing to do for other profiles. 0, or SP_ESTARTUP with err set
 * (the import failed: its traceback is in err).
 */
int sp__profile_resolve(sp_runtime_t *rt, sp__pool_config_t *pc, sp_error_t *err);

#endif /* SP_CORE_PROFILE_H */

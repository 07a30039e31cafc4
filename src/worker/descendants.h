/*
 * descendants.h - the worker ends the processes its tools started (see
 * descendants.c).
 */
#ifndef SP_WORKER_DESCENDANTS_H
#define SP_WORKER_DESCENDANTS_H

/**
 * Makes this process the reaper of its orphaned descendants
 * (PR_SET_CHILD_SUBREAPER): a grandchild whose parent died becomes our child
 * instead of init's, so descendants_kill() still finds it.
 */
void descendants_adopt(void);

/**
 * SIGKILLs every child of this process and the process group each leads,
 * round after round while killing them hands us their orphans, and reaps them.
 * Only raw system calls: safe in a signal handler.
 */
void descendants_kill(void);

#endif /* SP_WORKER_DESCENDANTS_H */

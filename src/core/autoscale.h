/*
 * autoscale.h - pools that size themselves between min_workers and pool_size
 * (autoscale.c).
 */
#ifndef SP_CORE_AUTOSCALE_H
#define SP_CORE_AUTOSCALE_H

#include <stdint.h>

#include "pool.h"

/**
 * One look at pool p (from the maintenance timer): grows it when calls have
 * been waiting for a worker for scale_up_wait, shrinks it by one worker that
 * has had no call for scale_down_idle. Does nothing for a fixed-size pool.
 */
void sp__autoscale_tick(sp__pool_t *p, int64_t now);

#endif /* SP_CORE_AUTOSCALE_H */

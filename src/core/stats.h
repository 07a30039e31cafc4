/*
 * stats.h - pool statistics (stats.c): the latency histogram and the JSON
 * documents of sp_stats_json(). Loop thread.
 */
#ifndef SP_CORE_STATS_H
#define SP_CORE_STATS_H

#include <jansson.h>
#include <stdint.h>

#include "pool.h"

/** Records one call's latency (queue + run) in the pool's histogram. */
void sp__stats_record_latency(sp__pool_stats_t *s, uint64_t ns);
/** The pool's statistics as a JSON object (new reference), or NULL without memory. */
json_t *sp__stats_pool(const sp__pool_t *p);
/** The pool's statistics as JSON text (caller frees), or NULL without memory. */
char *sp__stats_pool_json(const sp__pool_t *p);
/** {"pools": [...]} for every pool of the runtime (caller frees), or NULL. */
char *sp__stats_all_json(const sp_runtime_t *rt);

#endif /* SP_CORE_STATS_H */

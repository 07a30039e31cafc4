/*
 * remote.h - remote pools (remote.c): pools of the config marked
 * `remote: nats://...`, whose calls go over NATS to the nodes serving them.
 * The runtime hands such pools here from its entry points; nothing below the
 * entry points (pool.c, worker.c) ever sees them.
 */
#ifndef SP_CLUSTER_REMOTE_H
#define SP_CLUSTER_REMOTE_H

#include "call.h"
#include "snakepit.h"

typedef struct sp__remote_s sp__remote_t;
typedef struct sp__remote_pool_s sp__remote_pool_t;

/**
 * Takes the remote entries out of rt->cfg (the local ones stay) and connects
 * to their NATS servers. *out stays NULL when the config has none. Fails with
 * err naming the pool and URL when a server cannot be reached. Starting thread.
 */
int sp__remote_create(sp_runtime_t *rt, sp__remote_t **out, sp_error_t *err);

/** The remote pool called `name`, or NULL (also when r is NULL). Any thread. */
sp__remote_pool_t *sp__remote_find(sp__remote_t *r, const char *name);

/** The NATS URL (credentials hidden) of a remote pool, for messages. */
const char *sp__remote_url(const sp__remote_pool_t *p);

/** sp_execute() for a remote pool. Any thread but the loop thread. */
int sp__remote_execute(sp__remote_t *r, sp__remote_pool_t *p, const char *tool,
                       const char *args, const sp_call_opts_t *opts, sp_result_t *res);

/** sp_execute_async() for a remote pool: cb runs on the loop thread. Any thread. */
int sp__remote_execute_async(sp__remote_t *r, sp__remote_pool_t *p, const char *tool,
                             const char *args, const sp_call_opts_t *opts, sp_done_cb cb,
                             void *ud, sp_error_t *err);

/** sp_execute_stream() for a remote pool: chunks and on_done on the loop thread. */
int sp__remote_execute_stream(sp__remote_t *r, sp__remote_pool_t *p, const char *tool,
                              const char *args, const sp_call_opts_t *opts, sp_chunk_cb on_chunk,
                              sp_done_cb on_done, void *ud, uint64_t *call_id, sp_error_t *err);

/** sp_cancel() of a remote stream: 0, or SP_EINVAL when call_id is none of them. Any thread. */
int sp__remote_cancel(sp__remote_t *r, uint64_t call_id);

/** sp_stream_resume() of a remote stream: 0, or SP_EINVAL when call_id is none of them. */
int sp__remote_resume(sp__remote_t *r, uint64_t call_id);

/** Runs the callback of a finished async call (an SP__MSG_REMOTE message). Loop thread. */
void sp__remote_msg(sp_runtime_t *rt, sp__msg_t *m);

/** sp_tools_json() of a remote pool: asked of a node once, then kept. Any thread. */
int sp__remote_tools_json(sp__remote_t *r, sp__remote_pool_t *p, char **json, sp_error_t *err);

/** This runtime's view of a remote pool (calls made, in flight) as JSON. Any thread. */
int sp__remote_stats_json(sp__remote_t *r, sp__remote_pool_t *p, char **json, sp_error_t *err);

/**
 * Appends this runtime's view of every remote pool (as sp__remote_stats_json)
 * to the "pools" of the statistics document *json, replacing *json. Any thread.
 */
int sp__remote_stats_merge(sp__remote_t *r, char **json, sp_error_t *err);

/** Appends the remote pools' names to a JSON array (a jansson json_t *). */
void sp__remote_names(sp__remote_t *r, void *json_array);

/**
 * Stops taking calls, gives calls in flight up to graceful_ms, then fails the
 * rest with SP_ESTOPPED (their callbacks are posted to the loop thread, which
 * must still be running). Not on the loop thread. NULL is fine.
 */
void sp__remote_stop(sp__remote_t *r, int graceful_ms);

/** Closes the connections and frees everything; after the loop thread ended. NULL is fine. */
void sp__remote_destroy(sp__remote_t *r);

#endif /* SP_CLUSTER_REMOTE_H */

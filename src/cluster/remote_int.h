/*
 * remote_int.h - what the parts of the remote pools share: remote.c (the
 * calls, their table and replies), rwatch.c (the timer thread: deadlines and
 * nodes that went away) and rstream.c (streams). Internal to src/cluster.
 */
#ifndef SP_CLUSTER_REMOTE_INT_H
#define SP_CLUSTER_REMOTE_INT_H

#include <nats/nats.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdint.h>

#include "config.h"
#include "remote.h"
#include "wire.h"

/* Buckets of the table of calls waiting for their reply (a power of two). */
#define TABLE_SIZE 1024
/* Period of the timer thread: how late past its deadline a call may fail. */
#define TICK_MS 20
/* The node ends a call at its deadline and says why (which worker, which tool);
 * the caller's own expiry waits this much longer, as a backstop for a node
 * that cannot answer. */
#define EXPIRE_GRACE_MS 250
/* A call accepted by a node this long ago has that node's liveness checked. */
#define ALIVE_AFTER_MS 500
/* How long a liveness check waits for the node's answer. */
#define ALIVE_WAIT_MS 1000
/* Checks a node must fail in a row, ALIVE_RETRY_MS apart, to count as gone. */
#define ALIVE_TRIES 3
#define ALIVE_RETRY_MS 400
/* Sends of one idempotent call: the first, and one more after its node died. */
#define MAX_ATTEMPTS 2
#define NODE_ID_MAX 64

typedef struct rconn_s {
  sp_nats_opts_t opts; /* strings borrowed from the pool's config */
  natsConnection *nc;
  natsSubscription *inbox_sub;
  char inbox[64];
  char shown[256]; /* URL without credentials */
  char name[96];   /* connection name the server shows */
  struct sp__remote_s *r;
} rconn_t;

struct sp__remote_pool_s {
  const sp__pool_config_t *cfg;
  rconn_t *conn;
  char call_subject[SP__WIRE_SUBJECT_MAX];
  char wait_subject[SP__WIRE_SUBJECT_MAX];
  char tools_subject[SP__WIRE_SUBJECT_MAX];
  char *tools_json; /* under r->mu once set */
  atomic_ullong calls_ok, calls_failed, retried;
};

/* What an SP__MSG_REMOTE message carries to the loop thread. */
enum { RMSG_DONE = 1, RMSG_CHUNK };

typedef struct rcall_s {
  sp__msg_t msg; /* SP__MSG_REMOTE: hands an async call's completion to the loop thread */
  int what;      /* RMSG_DONE */
  struct rcall_s *next;
  uint64_t seq;
  sp__remote_pool_t *pool;
  int64_t deadline_ms, timeout_ms, accepted_ms;
  int stage; /* 0: on the "call" subject; 1: on the "wait" subject */
  int attempts;
  int idempotent;
  char node[NODE_ID_MAX]; /* the node that accepted it, "" until one did */
  char *tool;
  char *args;      /* the body: JSON arguments, then the arrays part when json_len > 0 */
  size_t args_len;
  size_t json_len; /* 0: args is all JSON */
  int lists;       /* returned arrays as JSON lists */
  sp_result_t own;
  sp_result_t *res;
  sp_done_cb cb;
  void *ud;
  sem_t done; /* sync calls wait on it */
  /* Streams: chunks go to on_chunk on the loop thread, in order. */
  sp_chunk_cb on_chunk;
  atomic_int refs;     /* async calls: 1 for the completion + 1 per chunk on its way */
  int completed;       /* loop thread: on_done ran, later chunks are dropped */
  atomic_int paused;   /* the consumer returned SP_CHUNK_PAUSE */
  atomic_long consumed; /* chunks handed to on_chunk */
  long credited;       /* consumed count the node was last told */
  char req_id[96];     /* Sp-Id */
} rcall_t;

/* A chunk of a stream on its way to the loop thread. */
typedef struct rchunk_s {
  sp__msg_t msg;
  int what; /* RMSG_CHUNK */
  rcall_t *c;
  size_t len;
  char data[];
} rchunk_t;

/* The node pauses a stream SP__WIRE_STREAM_WINDOW chunks ahead of what its
 * caller consumed; the caller tells it how far it got every CREDIT_EVERY chunks. */
#define CREDIT_EVERY 32

struct sp__remote_s {
  sp_runtime_t *rt;
  sp__config_t cfg; /* the remote entries, moved out of the runtime's config */
  sp__remote_pool_t *pools;
  rconn_t *conns;
  size_t nconns;
  pthread_mutex_t mu; /* guards table, pending, seq, stopping, tools_json */
  pthread_cond_t cond;
  rcall_t *table[TABLE_SIZE];
  size_t pending;
  int stopping, quit;
  pthread_t timer;
  int timer_on;
};


/* remote.c */
/** Takes the call out of the table (NULL when it finished already). Under r->mu. */
rcall_t *sp__rcall_take(sp__remote_t *r, uint64_t seq);
/** The call in the table, or NULL. Under r->mu. */
rcall_t *sp__rcall_get(sp__remote_t *r, uint64_t seq);
void sp__rcall_free(rcall_t *c);
/** Drops a reference of an async call; the last one frees it. */
void sp__rcall_unref(rcall_t *c);
/** The call (out of the table) ended with c->res filled: wake or post its callback. */
void sp__rcall_finish(sp__remote_t *r, rcall_t *c);
/** sp__rcall_finish with an error. */
void sp__rcall_fail(sp__remote_t *r, rcall_t *c, int code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;
/** Publishes the call on the subject of its stage with the time it has left. */
natsStatus sp__rcall_send(rcall_t *c);
/** Checks a call and builds it; nothing is sent. */
int sp__rcall_make(sp__remote_t *r, sp__remote_pool_t *p, const char *tool, const char *args,
                   const sp_call_opts_t *opts, rcall_t **out, sp_error_t *err);
/** Registers and sends a call; on failure it is not registered and err says why. */
int sp__rcall_start(sp__remote_t *r, rcall_t *c, sp_error_t *err);

/* rstream.c */
/** Publishes "REQ_ID COUNT" to the call's node subject `verb` (cancel, credit). */
void sp__rcall_tell(rcall_t *c, const char *verb, long count);
/** Hands a chunk to the consumer (loop thread) and frees it. */
void sp__rstream_deliver(sp__remote_t *r, rchunk_t *k);

/* rwatch.c */
/** The timer thread: fails late calls, checks the nodes holding long calls. */
void *sp__rwatch_main(void *arg);

#endif /* SP_CLUSTER_REMOTE_INT_H */

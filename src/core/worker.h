/*
 * worker.h - the manager's side of one snakepit-worker process: spawning it on a
 * socketpair, framing calls out and results in, forwarding its output to the
 * log, and turning its exit into errors for the calls it held.
 */
#ifndef SP_CORE_WORKER_H
#define SP_CORE_WORKER_H

#include "log.h"
#include "runtime.h"

/* What a worker process gets: its socket, its stdout/stderr pipe, the pool's
 * input memory (read-only) and its own output memory, as fds 3, 1+2, 4, 5. */
enum { SP__CHILD_SOCK = 0, SP__CHILD_OUT, SP__CHILD_IN_SHM, SP__CHILD_OUT_SHM, SP__CHILD_FDS };

/** Read buffers above this are released once empty (after a large result). */
#define SP__DECODER_KEEP (1u << 20)

typedef enum {
  SP__W_STARTING = 0, /* spawned, no HELLO yet */
  SP__W_READY,        /* taking calls */
  SP__W_DRAINING,     /* finishing its calls, takes no new ones */
  SP__W_STOPPING,     /* SHUTDOWN sent */
  SP__W_DEAD          /* exited; handles closing */
} sp__worker_state_t;

#define SP__TAIL_LINES 20

struct sp__worker_s {
  sp__pool_t *pool;
  sp__position_t *pos; /* its position in the pool, NULL once detached */
  unsigned serial;      /* w<serial> */
  char name[24];
  sp__worker_state_t state;
  sp__load_t load; /* what the scheduler sees */
  int nslots; /* in-flight table size: threads_per_worker + pipeline_depth */

  /* In-flight calls by slot; request id = seq << 16 | slot. */
  sp__call_t **slot_calls; /* NULL entry with a live id: abandoned by a timeout */
  uint64_t *slot_ids;      /* 0 = free */
  uint32_t *free_list;
  uint32_t free_count;
  uint64_t seq;
  uint64_t *slot_sent_ns;  /* when each slot's call was dispatched */
  uint64_t last_done_ns;   /* last completion */
  uint64_t gap_ewma_ns;    /* mean time between completions: sets load.depth */

  uv_process_t proc;
  uv_pipe_t sock;
  uv_pipe_t out;
  uv_timer_t timer; /* exit finalisation and kill deadlines */
  int open_handles;
  int pid;

  sp__decoder_t dec;
  sp__buf_t wbuf;    /* frames not yet handed to the kernel */
  sp__buf_t wflight; /* bytes owned by an outstanding uv_write */
  uv_write_t wreq;
  int writing;
  sp__worker_t *dirty_next;
  int dirty;

  sp__linebuf_t lines; /* output not yet logged */
  char *tail[SP__TAIL_LINES]; /* last output lines, ring */
  unsigned tail_next;

  int64_t spawned_ms;
  int64_t ready_ms;
  int64_t last_ping_ms;   /* when the last PING went out */
  int64_t last_pong_ms;   /* when the last PONG came back (or ready_ms) */
  int64_t drain_started_ms;
  int64_t rss_checked_ms;
  int64_t rss_over_ms; /* since when its RSS is over worker_max_rss_mb, or 0 */
  uint64_t max_requests;  /* this worker's recycle threshold after jitter; 0 = none */
  int64_t ttl_ms;         /* this worker's lifetime after jitter; 0 = none */
  int64_t *slot_abandoned_ms; /* when a timed-out call's slot was abandoned, per slot */
  struct sp__slot_inputs_s *slot_inputs; /* input blocks of abandoned calls, per slot: freed
                                            when the worker answers (it may still read them) */
  struct sp__shm_s *output; /* its shared output memory (arrays of results) */
  int retiring;           /* recycled: detached from its position, draining */
  sp__worker_t *retire_next;
  const char *kill_reason; /* why the manager killed it, for the exit message */
  uint64_t attach_wait_ns; /* reported in its last PONG */
  uint64_t calls_done;
  uint64_t requests;
  int exited;
  int64_t exit_status;
  int term_signal;
  int out_eof;
  int finalized;
  char *failure; /* text of a STARTUP/PROTOCOL error the worker sent before dying */
  char python_version[32];
  int gil_enabled;        /* from HELLO, then from every PONG */
  int free_threaded;      /* a free-threaded (PEP 703) build of Python */

  /* Started by the pool's fork server (worker_start: fork) rather than exec'd. */
  struct sp__forkserver_s *fs; /* NULL once it exited or when exec'd */
  sp__worker_t *fs_next;       /* in fs's list of workers */
  int child_fds[SP__CHILD_FDS]; /* its ends until sent to fs (SP__CHILD_*), else -1 */
  int fork_sent;               /* fs was asked to fork it */
  int exec_started;            /* proc is a live uv handle */
  char exit_note[160];         /* replaces "exited with code N" when set */

  struct sp__report_ask_s *report_asks; /* STATS requests it has not answered (report.c) */
  int sessions; /* sessions bound to it (session.c) */
};

/** Spawns a worker for position pos. 0, or a negative code with err set. */
int sp__worker_spawn(sp__pool_t *p, sp__position_t *pos, sp__worker_t **out, sp_error_t *err);

/** Starts w's program with exec (uv_spawn) on the child's fds (SP__CHILD_*),
 * which it closes. 0, or a negative code with err set. */
int sp__worker_exec(sp__worker_t *w, int fds[SP__CHILD_FDS], sp_error_t *err);

/** The worker process exited (exit code or terminating signal): fails its calls
 * with the reason, once its remaining output was read. Loop thread. */
void sp__worker_exited(sp__worker_t *w, int64_t status, int sig);

/** Assigns call c to a free slot and queues its frame. Worker must have a free slot. */
void sp__worker_dispatch(sp__worker_t *w, sp__call_t *c);

/** Frees the slot of an abandoned call and tells the worker to cancel it. */
void sp__worker_abandon(sp__worker_t *w, sp__call_t *c);

/** Sends SHUTDOWN (finish calls, run atexit, exit) and kills after kill_ms. */
void sp__worker_shutdown(sp__worker_t *w, int64_t kill_ms);

/** Kills the process now (SIGKILL to its process group); reason goes into the exit message. */
void sp__worker_kill(sp__worker_t *w, const char *reason);

/** Sends a PING (liveness probe; whichever worker thread reads answers it without Python). */
void sp__worker_ping(sp__worker_t *w, int64_t now);

/** Queues one frame for w (flushed at the end of the loop turn). 0 or SP_ENOMEM. */
int sp__worker_send(sp__worker_t *w, unsigned type, uint64_t id, const void *body, size_t len);

/** Writes out queued frames. Loop thread. */
void sp__worker_flush(sp__worker_t *w);

/** Name of a worker state. */
const char *sp__worker_state_name(sp__worker_state_t s);

/** Copies the last output lines (oldest first, newline-separated) into buf. */
void sp__worker_tail(const sp__worker_t *w, char *buf, size_t cap);

#endif /* SP_CORE_WORKER_H */

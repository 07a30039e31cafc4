/*
 * forkproto.h - messages on a pool's fork-server control socket, shared by the
 * manager (forkserver.c in core) and snakepit-worker --fork-server. The socket
 * is a SOCK_SEQPACKET socketpair, so every message is one datagram: a fixed
 * header, then `len` bytes of text. FORK carries SP__FS_FORK_FDS descriptors
 * as SCM_RIGHTS, in this order: the child's socket (its fd 3), its output pipe
 * (1 and 2), the pool's shared input memory (4) and its own output memory (5).
 */
#ifndef SP_CORE_FORKPROTO_H
#define SP_CORE_FORKPROTO_H

#include <stdint.h>

enum {
  SP__FS_READY = 1,   /* F->M: adapter module imported, single-threaded; a = fork server pid */
  SP__FS_UNSAFE,      /* F->M: a threads run after the import, fork is unsafe; it exits */
  SP__FS_FAILED,      /* F->M: the import failed; text = JSON {type, message, traceback}; exits */
  SP__FS_FORK,        /* M->F: fork worker `serial`; text = its worker id; two fds attached */
  SP__FS_FORKED,      /* F->M: worker `serial` runs as pid a */
  SP__FS_FORK_FAILED, /* F->M: worker `serial` could not be forked; a = errno */
  SP__FS_EXITED,      /* F->M: child pid a exited with code b, or was killed by signal c */
  SP__FS_NO_PRELOAD   /* F->M: preload: the adapter cannot be shared; text = JSON
                         {type, message, traceback} saying why; it exits */
};

typedef struct sp__fs_msg_s {
  uint32_t type;
  uint32_t serial;
  int32_t a, b, c;
  uint32_t len; /* bytes of text after the header */
} sp__fs_msg_t;

#define SP__FS_FORK_FDS 4

/** Largest text a message carries; longer failure JSON is replaced by a short one. */
#define SP__FS_MAX_TEXT 60000

#endif /* SP_CORE_FORKPROTO_H */

/*
 * pyreply.h - a call's Python outcome as reply frames (pyreply.c). Every
 * function here runs attached to the interpreter.
 */
#ifndef SP_WORKER_PYREPLY_H
#define SP_WORKER_PYREPLY_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "protocol.h"

/** Loads the Python helper that describes exceptions. 0, or -1 with a Python error set. */
int pyreply_init(void);
/** Drops the helper (at interpreter finalisation). */
void pyreply_fini(void);

/** JSON {type, message, traceback ""} built in C, for when Python cannot
 * describe its own failure. Malloc'd (caller frees), NULL when memory ran out. */
char *pyreply_fallback(const char *type, const char *message);

/** Describes and clears the pending exception as JSON (malloc'd, caller frees);
 * with echo, also writes its traceback to stderr (the manager's log). */
char *pyreply_describe_pending(int echo);

/** Appends an ERROR frame; 0, or SP_ENOMEM when out cannot grow. */
int pyreply_error(sp__buf_t *out, uint64_t id, sp__error_kind_t kind, int code, const char *text,
                  size_t len);

/** Appends an ERROR frame describing (and clearing) the pending Python exception. */
int pyreply_pending_error(sp__buf_t *out, uint64_t id);

/** Appends a RESULT or STATS frame, or an SP_ETOOLARGE error when it exceeds max_body. */
int pyreply_reply(sp__buf_t *out, unsigned type, uint64_t id, const char *text, size_t len,
                  size_t max_body);

#endif /* SP_WORKER_PYREPLY_H */

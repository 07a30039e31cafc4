/*
 * pysession.h - the worker's session states (pysession.c): the dict each
 * session's calls share (`current().session`), kept in
 * snakepit_bridge.context._sessions and dropped on SESSION_END. Every
 * function is called while attached to the interpreter.
 */
#ifndef SP_WORKER_PYSESSION_H
#define SP_WORKER_PYSESSION_H

#include <Python.h>
#include <stddef.h>

/** Takes what it needs from the context module. 0 or -1 (exception set). */
int pysession_init(PyObject *context_module);

/**
 * Puts session id's state on the calling thread's context (current().session
 * and .session_id): the session's dict, created on its first call, or with
 * `ephemeral` a fresh one that nobody keeps. 0 or -1 (exception set).
 */
int pysession_enter(const char *id, size_t len, int ephemeral);

/** Clears the calling thread's session (both attributes None again). */
void pysession_leave(void);

/** Forgets session id's state (calls still holding it keep their reference). */
void pysession_drop(const char *id, size_t len);

/** Releases the references pysession_init took. */
void pysession_fini(void);

#endif /* SP_WORKER_PYSESSION_H */

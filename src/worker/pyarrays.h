/*
 * pyarrays.h - arrays between the worker's frames and Python (pyarrays.c).
 * Every function is called while attached to the interpreter.
 */
#ifndef SP_WORKER_PYARRAYS_H
#define SP_WORKER_PYARRAYS_H

#include <Python.h>
#include <stddef.h>
#include <stdint.h>

#include "protocol.h"
#include "shm.h"

/** The regions: the pool's input memory (read-only) and this worker's output memory. */
void pyarrays_set_shm(sp__shm_t *in, sp__shm_t *out);

/** Registers the built-in module `_snakepit_shm` in sys.modules. 0 or -1 (exception set). */
int pyarrays_init(void);

/**
 * A CALL's arrays part as a list of (name, dtype, shape, buffer) tuples:
 * memoryviews of the input memory (no copy; writable when asked) or copies of
 * inline bytes (bytes, or bytearray when writable). NULL with `why` filled
 * when the part is malformed.
 */
PyObject *pyarrays_inputs(const uint8_t *part, size_t len, int writable, char *why, size_t cap);

/**
 * Appends a RESULT frame with arrays for request id: json and the arrays
 * described by `list`, tuples (name, dtype, shape, where, offset | buffer,
 * nbytes) as the SDK gives them. 0, or an SP_E* code with `why` filled; on
 * failure the output blocks the list names are freed.
 */
int pyarrays_append_result(sp__buf_t *out, uint64_t id, const char *json, size_t json_len,
                           PyObject *list, size_t max_body, char *why, size_t cap);

#endif /* SP_WORKER_PYARRAYS_H */

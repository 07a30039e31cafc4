/*
 * arrays.h - the manager's side of arrays (arrays.c): a call's input arrays
 * checked and placed in the pool's shared input memory (or inline in the CALL
 * frame when they do not fit), and a result's arrays turned into the caller's
 * read-only views, pinned in the worker's output memory until
 * sp_result_free(). Client threads (inputs) and the loop thread (results).
 */
#ifndef SP_CORE_ARRAYS_H
#define SP_CORE_ARRAYS_H

#include <stddef.h>
#include <stdint.h>

#include "protocol.h"
#include "shm.h"
#include "snakepit.h"

/** A call's input arrays, ready to be encoded after the JSON arguments. */
typedef struct sp__inputs_s {
  sp__array_desc_t *descs;
  size_t n;
  size_t extra;     /* bytes of the arrays part of the CALL body */
  void **tmp;       /* contiguous copies of inline strided inputs, freed after encoding */
  size_t ntmp;
  uint64_t *owned;  /* blocks of the input region the call allocated */
  size_t nowned;
} sp__inputs_t;

/**
 * Checks the caller's arrays for `tool` of pool `pool_name` (names: unique,
 * not also JSON arguments; dtypes, shapes, data) and places each: in `region`
 * where it already is (sp_array_alloc) or in a new block there (copied, made
 * C-contiguous), else inline. max_body bounds the frame. On success fills *in
 * (release with sp__inputs_clear, and sp__inputs_release for the blocks).
 */
int sp__inputs_prepare(sp__shm_t *region, const char *pool_name, const char *tool,
                       const sp_array_t *arrays, size_t n, const char *args, size_t args_len,
                       size_t body_before, size_t max_body, sp__inputs_t *in, sp_error_t *err);

/** Writes the arrays part (table and inline bytes) at dst; frees the temporary copies. */
void sp__inputs_encode(sp__inputs_t *in, uint8_t *dst);

/** Frees what prepare allocated except the owned blocks (kept in *owned / *nowned). */
void sp__inputs_clear(sp__inputs_t *in, uint64_t **owned, size_t *nowned);

/** Frees input blocks of a region (the call is over, or its worker answered). */
void sp__inputs_release(sp__shm_t *region, uint64_t *owned, size_t nowned);

/**
 * Builds a result's arrays from a RESULT's arrays part: views into the
 * worker's output region (pinned) or copies of inline bytes. On success sets
 * res->arrays, res->array_count and res->priv_ (released by sp_result_free).
 * SP_EPROTOCOL for a malformed part (the caller then frees the blocks named in
 * it with sp__result_arrays_discard), SP_ENOMEM.
 */
int sp__result_arrays(sp__shm_t *region, const uint8_t *part, size_t len, sp_result_t *res);

/** Frees the shared blocks a RESULT's arrays part names (nobody will read them). */
void sp__result_arrays_discard(sp__shm_t *region, const uint8_t *part, size_t len);

/** Releases what sp__result_arrays put in res (any thread). */
void sp__result_arrays_free(sp_result_t *res);

#endif /* SP_CORE_ARRAYS_H */

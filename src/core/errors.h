/*
 * errors.h - filling sp_error_t: the formatters every module uses, so messages
 * are consistent, bounded and always NUL-terminated.
 */
#ifndef SP_CORE_ERRORS_H
#define SP_CORE_ERRORS_H

#include <stddef.h>

#include "snakepit.h"

#if defined(__GNUC__)
#define SP__PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define SP__PRINTF(a, b)
#endif

/* Bounds of an error's texts (documented in snakepit.h). */
#define SP__ERR_MESSAGE_MAX 4096u
#define SP__ERR_TYPE_MAX 256u
#define SP__ERR_TRACEBACK_MAX 65536u

/** sp_error_setf under its internal name. Returns code; err may be NULL. */
#define sp__error_set sp_error_setf

/**
 * Fills err from texts with explicit lengths (not NUL-terminated; NULL = "").
 * A traceback longer than its bound keeps its tail behind a "...\n" marker.
 * Returns code.
 */
int sp__error_setn(sp_error_t *err, int code, const char *msg, size_t mlen, const char *type,
                   size_t tlen, const char *tb, size_t blen);

/** Resets err to "no error" without freeing anything. err may be NULL. */
void sp__error_clear(sp_error_t *err);

/** Moves src's texts into dst (dst is overwritten, src left holding no error). */
void sp__error_move(sp_error_t *dst, sp_error_t *src);

/** Whether code is one of the SP_ERRNO_MAP codes. */
int sp__err_is_known(int code);

#endif /* SP_CORE_ERRORS_H */

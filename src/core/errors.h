/*
 * errors.h - filling sp_error_t: one formatter used by every module so messages
 * are consistent and always NUL-terminated.
 */
#ifndef SP_CORE_ERRORS_H
#define SP_CORE_ERRORS_H

#include "snakepit.h"

#if defined(__GNUC__)
#define SP__PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define SP__PRINTF(a, b)
#endif

/** Sets code/category and formats the message; returns code. err may be NULL. */
int sp__error_set(sp_error_t *err, int code, const char *fmt, ...) SP__PRINTF(3, 4);

/** Resets err to "no error". err may be NULL. */
void sp__error_clear(sp_error_t *err);

/** Copies src into dst (either may be NULL). */
void sp__error_copy(sp_error_t *dst, const sp_error_t *src);

/**
 * Copies a possibly long text into a fixed buffer; when it does not fit, keeps the
 * tail (the end of a traceback is the informative part) behind a "...\n" marker.
 */
void sp__copy_tail(char *dst, size_t cap, const char *src, size_t len);

#endif /* SP_CORE_ERRORS_H */

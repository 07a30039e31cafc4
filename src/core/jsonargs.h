/*
 * jsonargs.h - what counts as valid tool arguments (see jsonargs.c).
 */
#ifndef SP_CORE_JSONARGS_H
#define SP_CORE_JSONARGS_H

#include <stddef.h>

/* Deepest nesting of arrays and objects in arguments. Python's json decoder
 * recurses once per level and the interpreter stops at 1000 frames, less what
 * the worker's call already uses: 512 leaves it room. */
#define SP__ARGS_MAX_DEPTH 512
/* Most digits of an integer: CPython refuses to convert longer ones
 * (sys.int_info.default_max_str_digits). */
#define SP__ARGS_MAX_DIGITS 4300

/**
 * Checks that text[0..len) is one JSON value (RFC 8259: UTF-8, no NaN or
 * Infinity, no trailing text) within the bounds above, the same values the
 * worker's Python decoder reads without error. Returns 0 and sets *top to its
 * kind ('{', '[', '"', '0' for a number, 't'/'f' for a boolean, 'n' for
 * null); else -1 with why (a reason, then " (line L, column C)") filled.
 */
int sp__json_args_check(const char *text, size_t len, char *top, char *why, size_t why_len);

#endif

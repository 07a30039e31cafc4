/*
 * utf8.h - well-formed UTF-8, decided in one place (the argument check and the
 * HTTP server's paths and error texts).
 */
#ifndef SP_CORE_UTF8_H
#define SP_CORE_UTF8_H

#include <stddef.h>

/**
 * Length of the well-formed UTF-8 sequence at s (at most n bytes available):
 * 1 to 4, or 0 if it is not one (overlong forms, surrogates and code points
 * past U+10FFFF are not).
 */
size_t sp__utf8_seq(const unsigned char *s, size_t n);

/** 1 if s[0..n) is well-formed UTF-8. */
int sp__utf8_valid(const unsigned char *s, size_t n);

#endif

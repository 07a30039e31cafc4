/*
 * jsonargs.c - one definition of valid tool arguments, checked on the
 * caller's thread before a call is sent: JSON text (RFC 8259) nested at most
 * SP__ARGS_MAX_DEPTH deep, integers of any size up to SP__ARGS_MAX_DIGITS
 * digits. It is what the worker's Python decoder accepts without hitting its
 * recursion limit or its integer limit, so a call is refused here with a
 * validation error, or not at all. (jansson could not say it: it nests to
 * 2048 levels, more than Python, and refuses integers from 2^63, which Python
 * takes.) A validator only: nothing is built.
 */
#include "jsonargs.h"

#include <stdio.h>
#include <string.h>

#include "utf8.h"

typedef struct {
  const unsigned char *p, *start, *end;
  char *why;
  size_t why_len;
} scan_t;

static int fail(scan_t *s, const char *reason) {
  unsigned long line = 1, col = 1;
  for (const unsigned char *q = s->start; q < s->p && q < s->end; q++) {
    if (*q == '\n')
      line++, col = 1;
    else if ((*q & 0xc0) != 0x80)
      col++;
  }
  snprintf(s->why, s->why_len, "%s (line %lu, column %lu)", reason, line, col);
  return -1;
}

static void skip_ws(scan_t *s) {
  while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r')) s->p++;
}

static int is_hex(unsigned char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static int string(scan_t *s) {
  s->p++; /* the opening quote */
  while (s->p < s->end && *s->p != '"') {
    unsigned char c = *s->p;
    if (c < 0x20) return fail(s, "control character in a string");
    if (c == '\\') {
      if (s->p + 1 >= s->end) break;
      unsigned char e = s->p[1];
      if (e == 'u') {
        if (s->end - s->p < 6 || !is_hex(s->p[2]) || !is_hex(s->p[3]) || !is_hex(s->p[4]) ||
            !is_hex(s->p[5]))
          return fail(s, "\\u must be followed by four hex digits");
        s->p += 6;
      } else if (strchr("\"\\/bfnrt", e) != NULL && e != '\0') {
        s->p += 2;
      } else {
        return fail(s, "invalid escape in a string");
      }
      continue;
    }
    size_t n = sp__utf8_seq(s->p, (size_t)(s->end - s->p));
    if (n == 0) return fail(s, "invalid UTF-8 in a string");
    s->p += n;
  }
  if (s->p >= s->end) return fail(s, "unterminated string");
  s->p++;
  return 0;
}

/* A member's key and its colon, at a '"' (after whitespace). */
static int key(scan_t *s) {
  if (s->p >= s->end || *s->p != '"') return fail(s, "expected a string key");
  if (string(s) != 0) return -1;
  skip_ws(s);
  if (s->p >= s->end || *s->p != ':') return fail(s, "expected ':' after a key");
  s->p++;
  return 0;
}

static size_t digits(scan_t *s) {
  const unsigned char *from = s->p;
  while (s->p < s->end && *s->p >= '0' && *s->p <= '9') s->p++;
  return (size_t)(s->p - from);
}

static int number(scan_t *s) {
  if (*s->p == '-') s->p++;
  const unsigned char *int_start = s->p;
  size_t n = digits(s);
  if (n == 0) return fail(s, "a number needs digits");
  if (n > 1 && *int_start == '0') return fail(s, "a number may not start with 0");
  int integer = 1;
  if (s->p < s->end && *s->p == '.') {
    s->p++;
    integer = 0;
    if (digits(s) == 0) return fail(s, "a fraction needs digits");
  }
  if (s->p < s->end && (*s->p == 'e' || *s->p == 'E')) {
    s->p++;
    integer = 0;
    if (s->p < s->end && (*s->p == '+' || *s->p == '-')) s->p++;
    if (digits(s) == 0) return fail(s, "an exponent needs digits");
  }
  if (integer && n > SP__ARGS_MAX_DIGITS) {
    char msg[96];
    snprintf(msg, sizeof(msg), "integer of %zu digits (at most %d)", n, SP__ARGS_MAX_DIGITS);
    s->p = int_start;
    return fail(s, msg);
  }
  return 0;
}

static int literal(scan_t *s, const char *word) {
  size_t n = strlen(word);
  if ((size_t)(s->end - s->p) < n || memcmp(s->p, word, n) != 0) return fail(s, "invalid value");
  s->p += n;
  return 0;
}

int sp__json_args_check(const char *text, size_t len, char *top, char *why, size_t why_len) {
  scan_t s = {(const unsigned char *)text, (const unsigned char *)text,
              (const unsigned char *)text + len, why, why_len};
  char stack[SP__ARGS_MAX_DEPTH]; /* '{' or '[' per open container */
  int depth = 0;
  *top = 0;
  for (;;) {
    /* A value is expected here (at the top, after '[', ',' or ':'). */
    skip_ws(&s);
    if (s.p >= s.end) return fail(&s, "expected a JSON value");
    unsigned char c = *s.p;
    if (*top == 0) *top = c == '-' || (c >= '0' && c <= '9') ? '0' : (char)c;
    int rc;
    if (c == '{' || c == '[') {
      if (depth == SP__ARGS_MAX_DEPTH) {
        char msg[96];
        snprintf(msg, sizeof(msg), "nested more than %d levels deep", SP__ARGS_MAX_DEPTH);
        return fail(&s, msg);
      }
      stack[depth++] = (char)c;
      s.p++;
      skip_ws(&s);
      if (s.p < s.end && *s.p == (c == '{' ? '}' : ']')) {
        s.p++;
        depth--;
        rc = 0;
      } else {
        if (c == '{' && key(&s) != 0) return -1;
        continue;
      }
    } else if (c == '"') {
      rc = string(&s);
    } else if (c == '-' || (c >= '0' && c <= '9')) {
      rc = number(&s);
    } else if (c == 't' || c == 'f' || c == 'n') {
      rc = literal(&s, c == 't' ? "true" : c == 'f' ? "false" : "null");
    } else {
      return fail(&s, "invalid value");
    }
    if (rc != 0) return -1;
    /* After a value: close containers, or go on to the next member. */
    for (;;) {
      skip_ws(&s);
      if (depth == 0) {
        if (s.p != s.end) return fail(&s, "text after the JSON value");
        return 0;
      }
      char open = stack[depth - 1];
      if (s.p >= s.end)
        return fail(&s, open == '{' ? "expected ',' or '}'" : "expected ',' or ']'");
      if (*s.p == (open == '{' ? '}' : ']')) {
        s.p++;
        depth--;
        continue;
      }
      if (*s.p != ',') return fail(&s, open == '{' ? "expected ',' or '}'" : "expected ',' or ']'");
      s.p++;
      if (open == '{') {
        skip_ws(&s);
        if (key(&s) != 0) return -1;
      }
      break;
    }
  }
}

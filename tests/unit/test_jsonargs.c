/*
 * test_jsonargs.c - the one definition of valid tool arguments (jsonargs.c):
 * RFC 8259 text, at most 512 levels deep, integers up to 4300 digits.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "jsonargs.h"

static int check(const char *text, char *top, char *why) {
  return sp__json_args_check(text, strlen(text), top, why, 256);
}

static void accepts(const char *text, char want_top) {
  char top, why[256] = "";
  if (check(text, &top, why) != 0) {
    print_error("refused %.80s: %s\n", text, why);
    fail();
  }
  assert_int_equal(top, want_top);
}

static void refuses(const char *text, const char *reason) {
  char top, why[256] = "";
  assert_int_equal(check(text, &top, why), -1);
  if (strstr(why, reason) == NULL || strstr(why, "(line ") == NULL) {
    print_error("for %.80s: got \"%s\", wanted \"%s\"\n", text, why, reason);
    fail();
  }
}

static char *nested(int levels) {
  char *t = malloc((size_t)levels * 2 + 16);
  size_t n = 0;
  n += (size_t)sprintf(t, "{\"v\": ");
  for (int i = 0; i < levels - 1; i++) t[n++] = '[';
  for (int i = 0; i < levels - 1; i++) t[n++] = ']';
  strcpy(t + n, "}");
  return t;
}

static void values(void **state) {
  (void)state;
  accepts("{}", '{');
  accepts(" {\"a\": [1, -2.5e+3, true, false, null, \"x\\u00e9\\n\"], \"b\": {}} ", '{');
  accepts("[]", '[');
  accepts("\"s\"", '"');
  accepts("-0", '0');
  accepts("null", 'n');
  accepts("{\"\xc3\xa9\": \"\xf0\x9f\x90\x8d\"}", '{');
  accepts("{\"big\": 18446744073709551616, \"neg\": -9223372036854775809}", '{');
}

static void refusals(void **state) {
  (void)state;
  refuses("", "expected a JSON value");
  refuses("{\"a\": 1,", "expected a string key");
  refuses("{\"a\" 1}", "expected ':'");
  refuses("{\"a\": 1} x", "text after the JSON value");
  refuses("[1 2]", "expected ',' or ']'");
  refuses("{\"a\": 01}", "may not start with 0");
  refuses("{\"a\": 1.}", "fraction needs digits");
  refuses("{\"a\": NaN}", "invalid value");
  refuses("{\"a\": Infinity}", "invalid value");
  refuses("{\"a\": \"\\x\"}", "invalid escape");
  refuses("{\"a\": \"\\u12g4\"}", "four hex digits");
  refuses("{\"a\": \"tab\there\"}", "control character");
  refuses("{\"a\": \"\xff\"}", "invalid UTF-8");
  refuses("{\"a\": \"\xed\xa0\x80\"}", "invalid UTF-8"); /* a surrogate */
  refuses("{\"a\": \"open", "unterminated string");
  refuses("{\"a\": tru}", "invalid value");
}

static void bounds(void **state) {
  (void)state;
  char *t = nested(SP__ARGS_MAX_DEPTH);
  accepts(t, '{');
  free(t);
  t = nested(SP__ARGS_MAX_DEPTH + 1);
  refuses(t, "nested more than 512 levels deep");
  free(t);
  char num[SP__ARGS_MAX_DIGITS + 32];
  strcpy(num, "{\"n\": ");
  size_t n = strlen(num);
  memset(num + n, '7', SP__ARGS_MAX_DIGITS);
  strcpy(num + n + SP__ARGS_MAX_DIGITS, "}");
  accepts(num, '{');
  memset(num + n, '7', SP__ARGS_MAX_DIGITS + 1);
  strcpy(num + n + SP__ARGS_MAX_DIGITS + 1, "}");
  refuses(num, "integer of 4301 digits");
  /* A float may have more digits: Python reads it as a float. */
  num[n + 5] = '.';
  accepts(num, '{');
}

static void error_position(void **state) {
  (void)state;
  char top, why[256];
  assert_int_equal(check("{\n  \"a\": 1,\n  \"b\": x}", &top, why), -1);
  assert_non_null(strstr(why, "(line 3, column 8)"));
}

int main(void) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(values), cmocka_unit_test(refusals),
                                     cmocka_unit_test(bounds), cmocka_unit_test(error_position)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}

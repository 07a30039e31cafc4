/*
 * test_multipart.c - the multipart bodies of the front ends: what the builder
 * writes the parser reads back byte for byte (binary data that looks like
 * delimiters included), bodies as other clients write them (preamble,
 * epilogue, padding, quoted parameters), and every malformed body's error.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "multipart.h"

static void build_and_parse(void **state) {
  (void)state;
  char boundary[SP__MULTIPART_BOUNDARY_MAX + 1], other[SP__MULTIPART_BOUNDARY_MAX + 1];
  sp__multipart_new_boundary(boundary);
  sp__multipart_new_boundary(other);
  assert_true(strlen(boundary) > 20 && strlen(boundary) <= SP__MULTIPART_BOUNDARY_MAX);
  assert_string_not_equal(boundary, other);
  /* Data that holds CRLFs, dashes and a near-miss of the delimiter. */
  char bin[300];
  for (size_t i = 0; i < sizeof(bin); i++) bin[i] = (char)(i * 7);
  char tricky[128];
  int tl = snprintf(tricky, sizeof(tricky), "\r\n--%.20s\r\n--\r\n", boundary);
  sp__buf_t b = {0};
  assert_int_equal(sp__multipart_part_begin(&b, boundary, "result", NULL, "application/json"), 0);
  assert_int_equal(sp__buf_append(&b, "{\"$array\": 0}", 13), 0);
  assert_int_equal(sp__multipart_part_end(&b), 0);
  assert_int_equal(
      sp__multipart_part_begin(&b, boundary, "items/0", "items.0.npy", "application/octet-stream"),
      0);
  assert_int_equal(sp__buf_append(&b, bin, sizeof(bin)), 0);
  assert_int_equal(sp__multipart_part_end(&b), 0);
  assert_int_equal(sp__multipart_part_begin(&b, boundary, "q\"uote", NULL, "text/plain"), 0);
  assert_int_equal(sp__buf_append(&b, tricky, (size_t)tl), 0);
  assert_int_equal(sp__multipart_part_end(&b), 0);
  assert_int_equal(sp__multipart_part_begin(&b, boundary, "empty", NULL, "text/plain"), 0);
  assert_int_equal(sp__multipart_part_end(&b), 0);
  assert_int_equal(sp__multipart_finish(&b, boundary), 0);

  char ct[200], subtype[32], got[SP__MULTIPART_BOUNDARY_MAX + 1], msg[256] = "";
  snprintf(ct, sizeof(ct), "multipart/form-data; boundary=%s", boundary);
  assert_int_equal(sp__multipart_content_type(ct, subtype, got, msg, sizeof(msg)), 0);
  assert_string_equal(subtype, "form-data");
  assert_string_equal(got, boundary);
  sp__part_t *parts = NULL;
  size_t n = 0;
  assert_int_equal(sp__multipart_parse((char *)b.data, b.len, got, &parts, &n, msg, sizeof(msg)),
                   0);
  assert_int_equal(n, 4);
  assert_string_equal(parts[0].name, "result");
  assert_string_equal(parts[0].filename, "");
  assert_string_equal(parts[0].ctype, "application/json");
  assert_int_equal(parts[0].len, 13);
  assert_memory_equal(parts[0].data, "{\"$array\": 0}", 13);
  assert_string_equal(parts[1].name, "items/0");
  assert_string_equal(parts[1].filename, "items.0.npy");
  assert_int_equal(parts[1].len, sizeof(bin));
  assert_memory_equal(parts[1].data, bin, sizeof(bin));
  assert_string_equal(parts[2].name, "q_uote"); /* a quote cannot be sent portably */
  assert_int_equal(parts[2].len, (size_t)tl);
  assert_memory_equal(parts[2].data, tricky, (size_t)tl);
  assert_int_equal(parts[3].len, 0);
  free(parts);
  sp__buf_free(&b);
}

static void other_writers(void **state) {
  (void)state;
  /* Preamble, padding after a delimiter, header case, quoted parameters with
   * escapes, a part without headers, an epilogue. */
  char body[] =
      "this is a preamble\r\n"
      "--XyZ  \r\n"
      "content-disposition: form-data; filename=\"a \\\"b\\\".npy\"; NAME=arr\r\n"
      "CONTENT-TYPE: Application/Octet-Stream; charset=binary\r\n"
      "\r\n"
      "DATA\r\n"
      "--XyZ\r\n"
      "\r\n"
      "no headers\r\n"
      "--XyZ--\r\n"
      "epilogue --XyZ\r\n";
  char subtype[32], boundary[SP__MULTIPART_BOUNDARY_MAX + 1], msg[256] = "";
  assert_int_equal(sp__multipart_content_type("Multipart/Mixed ; charset=x; boundary=\"XyZ\"",
                                              subtype, boundary, msg, sizeof(msg)),
                   0);
  assert_string_equal(subtype, "mixed");
  assert_string_equal(boundary, "XyZ");
  sp__part_t *parts = NULL;
  size_t n = 0;
  assert_int_equal(sp__multipart_parse(body, strlen(body), boundary, &parts, &n, msg, sizeof(msg)),
                   0);
  assert_int_equal(n, 2);
  assert_string_equal(parts[0].name, "arr");
  assert_string_equal(parts[0].filename, "a \"b\".npy");
  assert_string_equal(parts[0].ctype, "application/octet-stream");
  assert_int_equal(parts[0].len, 4);
  assert_memory_equal(parts[0].data, "DATA", 4);
  assert_string_equal(parts[1].name, "");
  assert_int_equal(parts[1].len, 10);
  free(parts);
}

static void expect_parse_error(const char *body, const char *want) {
  char *copy = strdup(body);
  sp__part_t *parts = NULL;
  size_t n = 0;
  char msg[256] = "";
  int rc = sp__multipart_parse(copy, strlen(copy), "B", &parts, &n, msg, sizeof(msg));
  if (rc != -1 || strstr(msg, want) == NULL || parts != NULL)
    fail_msg("body %s: rc %d, message '%s', wanted '%s'", body, rc, msg, want);
  free(copy);
}

static void every_error(void **state) {
  (void)state;
  char subtype[32], boundary[SP__MULTIPART_BOUNDARY_MAX + 1], msg[256];
  assert_int_equal(
      sp__multipart_content_type("application/json", subtype, boundary, msg, sizeof(msg)), -1);
  assert_non_null(strstr(msg, "is not multipart"));
  assert_int_equal(sp__multipart_content_type(NULL, subtype, boundary, msg, sizeof(msg)), -1);
  assert_int_equal(
      sp__multipart_content_type("multipart/form-data", subtype, boundary, msg, sizeof(msg)), -1);
  assert_non_null(strstr(msg, "has no boundary parameter"));
  assert_int_equal(sp__multipart_content_type("multipart/form-data; boundary=a<b", subtype,
                                              boundary, msg, sizeof(msg)),
                   -1);
  assert_non_null(strstr(msg, "is not valid"));
  char longb[120] = "multipart/form-data; boundary=";
  memset(longb + strlen(longb), 'x', 71);
  assert_int_equal(sp__multipart_content_type(longb, subtype, boundary, msg, sizeof(msg)), -1);
  assert_non_null(strstr(msg, "is not valid"));
  assert_int_equal(sp__multipart_content_type("multipart/form-data; boundary=\"open", subtype,
                                              boundary, msg, sizeof(msg)),
                   -1);
  assert_non_null(strstr(msg, "malformed parameters"));

  expect_parse_error("no delimiter here", "without its boundary '--B'");
  expect_parse_error("--Bxx\r\n\r\ndata\r\n--B--", "delimiter not followed by CRLF");
  expect_parse_error("--B\r\nContent-Type: a\r\ndata", "headers not ended by an empty line");
  expect_parse_error("--B\r\n\r\ndata without end", "part 1: no delimiter after its data");
  expect_parse_error("--B\r\n\r\none\r\n--B\r\nNoColon\r\n\r\ntwo\r\n--B--",
                     "part 2: header line without ':'");
  expect_parse_error("--B\r\nContent-Disposition: form-data; name=\"x\r\n\r\nd\r\n--B--",
                     "malformed Content-Disposition");
  /* Headers bigger than a part may have. */
  size_t big = 9000;
  char *h = malloc(big + 64);
  strcpy(h, "--B\r\nX-Pad: ");
  memset(h + strlen(h), 'p', big);
  strcpy(h + 12 + big, "\r\n\r\nd\r\n--B--");
  expect_parse_error(h, "headers over 8 KiB");
  free(h);
  /* More parts than a body may have. */
  sp__buf_t b = {0};
  for (int i = 0; i <= SP__MULTIPART_MAX_PARTS; i++) {
    sp__multipart_part_begin(&b, "B", "p", NULL, "text/plain");
    sp__multipart_part_end(&b);
  }
  sp__multipart_finish(&b, "B");
  sp__buf_append_str(&b, "", 0);
  expect_parse_error((char *)b.data, "more than 1024 multipart parts");
  sp__buf_free(&b);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(build_and_parse),
      cmocka_unit_test(other_writers),
      cmocka_unit_test(every_error),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

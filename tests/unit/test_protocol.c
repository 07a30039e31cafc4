/*
 * test_protocol.c - frame header encoding, the incremental decoder (byte by byte,
 * many frames per read, bad headers, size limit) and CALL body parsing.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "errors.h"
#include "protocol.h"

static void feed(sp__decoder_t *d, const uint8_t *p, size_t n) {
  uint8_t *dst;
  size_t avail;
  assert_int_equal(sp__decoder_space(d, n, &dst, &avail), 0);
  assert_true(avail >= n);
  memcpy(dst, p, n);
  sp__decoder_commit(d, n);
}

static void header_roundtrip(void **state) {
  (void)state;
  uint8_t h[SP__FRAME_HEADER_SIZE];
  sp__frame_header_write(h, SP__FRAME_RESULT, 3, 123456, 0x1122334455667788ull);
  sp__frame_t f;
  sp_error_t err;
  assert_int_equal(sp__frame_header_parse(h, 1 << 20, &f, &err), 0);
  assert_int_equal(f.type, SP__FRAME_RESULT);
  assert_int_equal(f.flags, 3);
  assert_int_equal(f.length, 123456);
  assert_true(f.id == 0x1122334455667788ull);
  sp__frame_set_id(h, 42);
  assert_int_equal(sp__frame_header_parse(h, 1 << 20, &f, &err), 0);
  assert_true(f.id == 42);
}

static void bad_headers(void **state) {
  (void)state;
  uint8_t h[SP__FRAME_HEADER_SIZE];
  sp__frame_t f;
  sp_error_t err;
  sp__frame_header_write(h, SP__FRAME_CALL, 0, 10, 1);
  h[0] = 'X';
  assert_int_equal(sp__frame_header_parse(h, 100, &f, &err), SP_EPROTOCOL);
  assert_non_null(strstr(err.message, "magic"));

  sp__frame_header_write(h, SP__FRAME_CALL, 0, 10, 1);
  h[1] = 9;
  assert_int_equal(sp__frame_header_parse(h, 100, &f, &err), SP_EPROTOCOL);
  assert_non_null(strstr(err.message, "version"));

  sp__frame_header_write(h, 0, 0, 10, 1);
  assert_int_equal(sp__frame_header_parse(h, 100, &f, &err), SP_EPROTOCOL);
  sp__frame_header_write(h, SP__FRAME_TYPE_MAX + 1, 0, 10, 1);
  assert_int_equal(sp__frame_header_parse(h, 100, &f, &err), SP_EPROTOCOL);
  assert_non_null(strstr(err.message, "unknown frame type"));

  sp__frame_header_write(h, SP__FRAME_CALL, 0, 101, 1);
  assert_int_equal(sp__frame_header_parse(h, 100, &f, &err), SP_ETOOLARGE);
  assert_non_null(strstr(err.message, "101 bytes"));
  assert_int_equal(err.category, SP_CAT_PROTOCOL);
}

static void decoder_byte_by_byte(void **state) {
  (void)state;
  sp__buf_t b = {0};
  assert_int_equal(sp__buf_append_frame(&b, SP__FRAME_RESULT, 0, 7, "{\"a\":1}", 7), 0);
  assert_int_equal(sp__buf_append_frame(&b, SP__FRAME_PONG, 0, 8, NULL, 0), 0);
  sp__decoder_t d;
  sp__decoder_init(&d, 1024);
  sp__frame_t f;
  sp_error_t err;
  int got = 0;
  for (size_t i = 0; i < b.len; i++) {
    feed(&d, b.data + i, 1);
    int rc;
    while ((rc = sp__decoder_next(&d, &f, &err)) == 1) {
      got++;
      if (got == 1) {
        assert_int_equal(i, SP__FRAME_HEADER_SIZE + 7 - 1); /* complete exactly at its last byte */
        assert_int_equal(f.type, SP__FRAME_RESULT);
        assert_memory_equal(f.body, "{\"a\":1}", 7);
        assert_true(f.id == 7);
      } else {
        assert_int_equal(f.type, SP__FRAME_PONG);
        assert_int_equal(f.length, 0);
      }
    }
    assert_int_equal(rc, 0);
  }
  assert_int_equal(got, 2);
  sp__decoder_free(&d);
  sp__buf_free(&b);
}

static void decoder_many_frames_and_growth(void **state) {
  (void)state;
  sp__buf_t b = {0};
  static char big[100000];
  memset(big, 'x', sizeof(big));
  for (int i = 0; i < 50; i++) sp__buf_append_frame(&b, SP__FRAME_CHUNK, 0, (uint64_t)i, "abc", 3);
  sp__buf_append_frame(&b, SP__FRAME_RESULT, 0, 99, big, sizeof(big));
  sp__decoder_t d;
  sp__decoder_init(&d, 1 << 20);
  /* Feed in uneven pieces so frames straddle reads and the buffer compacts/grows. */
  size_t off = 0, step = 777;
  int count = 0;
  sp__frame_t f;
  sp_error_t err;
  while (off < b.len) {
    size_t n = b.len - off < step ? b.len - off : step;
    feed(&d, b.data + off, n);
    off += n;
    while (sp__decoder_next(&d, &f, &err) == 1) {
      if (count < 50) {
        assert_true(f.id == (uint64_t)count);
        assert_memory_equal(f.body, "abc", 3);
      } else {
        assert_int_equal(f.length, sizeof(big));
        assert_int_equal(f.body[0], 'x');
        assert_int_equal(f.body[sizeof(big) - 1], 'x');
      }
      count++;
    }
    step = step * 3 % 5000 + 1;
  }
  assert_int_equal(count, 51);
  sp__decoder_free(&d);
  sp__buf_free(&b);
}

static void decoder_rejects_oversized_and_garbage(void **state) {
  (void)state;
  sp__decoder_t d;
  sp__decoder_init(&d, 64);
  sp__buf_t b = {0};
  char body[65] = {0};
  sp__buf_append_frame(&b, SP__FRAME_CALL, 0, 1, body, sizeof(body));
  feed(&d, b.data, SP__FRAME_HEADER_SIZE); /* rejected from the header alone */
  sp__frame_t f;
  sp_error_t err;
  assert_int_equal(sp__decoder_next(&d, &f, &err), SP_ETOOLARGE);
  sp__decoder_free(&d);

  sp__decoder_init(&d, 64);
  feed(&d, (const uint8_t *)"GET / HTTP/1.1\r\n\r\n", 18);
  assert_int_equal(sp__decoder_next(&d, &f, &err), SP_EPROTOCOL);
  sp__decoder_free(&d);
  sp__buf_free(&b);
}

static void call_body(void **state) {
  (void)state;
  uint8_t body[64] = {0x10, 0x27, 0, 0, 4, 0, 'p', 'i', 'n', 'g', '{', '}'};
  uint32_t t;
  const char *tool, *args;
  size_t tl, al;
  assert_int_equal(sp__call_body_parse(body, 12, &t, &tool, &tl, &args, &al), 0);
  assert_int_equal(t, 10000);
  assert_int_equal(tl, 4);
  assert_memory_equal(tool, "ping", 4);
  assert_int_equal(al, 2);
  assert_memory_equal(args, "{}", 2);
  /* Tool name longer than the body, empty tool name, short prefix. */
  body[4] = 200;
  assert_int_equal(sp__call_body_parse(body, 12, &t, &tool, &tl, &args, &al), SP_EPROTOCOL);
  body[4] = 0;
  assert_int_equal(sp__call_body_parse(body, 12, &t, &tool, &tl, &args, &al), SP_EPROTOCOL);
  assert_int_equal(sp__call_body_parse(body, 5, &t, &tool, &tl, &args, &al), SP_EPROTOCOL);
}

static void buf_ops(void **state) {
  (void)state;
  sp__buf_t b = {0};
  for (int i = 0; i < 1000; i++) assert_int_equal(sp__buf_append(&b, "0123456789", 10), 0);
  assert_int_equal(b.len, 10000);
  sp__buf_consume(&b, 9995);
  assert_int_equal(b.len, 5);
  assert_memory_equal(b.data, "56789", 5);
  sp__buf_consume(&b, 100);
  assert_int_equal(b.len, 0);
  sp__buf_free(&b);
  assert_null(b.data);
}

static void copy_tail_keeps_end(void **state) {
  (void)state;
  char dst[16];
  sp__copy_tail(dst, sizeof(dst), "short", 5);
  assert_string_equal(dst, "short");
  const char *longtext = "Traceback...\nline\nValueError: boom";
  sp__copy_tail(dst, sizeof(dst), longtext, strlen(longtext));
  assert_int_equal(strlen(dst), sizeof(dst) - 1);
  assert_true(strncmp(dst, "...\n", 4) == 0);
  assert_non_null(strstr(dst, "boom"));
}

static void error_table(void **state) {
  (void)state;
  assert_string_equal(sp_err_name(SP_ETIMEOUT), "SP_ETIMEOUT");
  assert_string_equal(sp_category_name(sp_err_category(SP_ETIMEOUT)), "timeout");
  assert_string_equal(sp_category_name(sp_err_category(SP_EPYTHON)), "python");
  assert_string_equal(sp_category_name(sp_err_category(SP_ENOTOOL)), "validation");
  assert_string_equal(sp_category_name(sp_err_category(SP_ESATURATED)), "pool");
  assert_string_equal(sp_category_name(sp_err_category(SP_ECRASHED)), "worker");
  assert_string_equal(sp_err_name(12345), "SP_EUNKNOWN");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(header_roundtrip),      cmocka_unit_test(bad_headers),
      cmocka_unit_test(decoder_byte_by_byte),  cmocka_unit_test(decoder_many_frames_and_growth),
      cmocka_unit_test(decoder_rejects_oversized_and_garbage),
      cmocka_unit_test(call_body),             cmocka_unit_test(buf_ops),
      cmocka_unit_test(copy_tail_keeps_end),   cmocka_unit_test(error_table),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * test_protocol.c - the wire protocol (frame headers, the incremental decoder
 * byte by byte and many frames per read, bad headers, the size limit, every
 * body's encoder and decoder), the byte buffer, and sp_error_t's owned texts.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
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
  sp_error_free(&err);

  sp__frame_header_write(h, SP__FRAME_CALL, 0, 10, 1);
  h[1] = 9;
  assert_int_equal(sp__frame_header_parse(h, 100, &f, &err), SP_EPROTOCOL);
  assert_non_null(strstr(err.message, "version"));
  sp_error_free(&err);

  sp__frame_header_write(h, 0, 0, 10, 1);
  assert_int_equal(sp__frame_header_parse(h, 100, &f, &err), SP_EPROTOCOL);
  sp_error_free(&err);
  sp__frame_header_write(h, SP__FRAME_TYPE_MAX + 1, 0, 10, 1);
  assert_int_equal(sp__frame_header_parse(h, 100, &f, &err), SP_EPROTOCOL);
  assert_non_null(strstr(err.message, "unknown frame type"));
  sp_error_free(&err);

  sp__frame_header_write(h, SP__FRAME_CALL, 0, 101, 1);
  assert_int_equal(sp__frame_header_parse(h, 100, &f, &err), SP_ETOOLARGE);
  assert_non_null(strstr(err.message, "101 bytes"));
  assert_int_equal(err.category, SP_CAT_PROTOCOL);
  sp_error_free(&err);
}

static void decoder_byte_by_byte(void **state) {
  (void)state;
  sp__buf_t b = {0};
  assert_int_equal(sp__buf_append_frame(&b, SP__FRAME_RESULT, 7, "{\"a\":1}", 7), 0);
  assert_int_equal(sp__buf_append_frame(&b, SP__FRAME_PONG, 8, NULL, 0), 0);
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
  for (int i = 0; i < 50; i++) sp__buf_append_frame(&b, SP__FRAME_CHUNK, (uint64_t)i, "abc", 3);
  sp__buf_append_frame(&b, SP__FRAME_RESULT, 99, big, sizeof(big));
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
  sp__buf_append_frame(&b, SP__FRAME_CALL, 1, body, sizeof(body));
  feed(&d, b.data, SP__FRAME_HEADER_SIZE); /* rejected from the header alone */
  sp__frame_t f;
  sp_error_t err;
  assert_int_equal(sp__decoder_next(&d, &f, &err), SP_ETOOLARGE);
  sp_error_free(&err);
  sp__decoder_free(&d);

  sp__decoder_init(&d, 64);
  feed(&d, (const uint8_t *)"GET / HTTP/1.1\r\n\r\n", 18);
  assert_int_equal(sp__decoder_next(&d, &f, &err), SP_EPROTOCOL);
  sp_error_free(&err);
  sp__decoder_free(&d);
  sp__buf_free(&b);
}

static void call_frame_roundtrip(void **state) {
  (void)state;
  uint8_t frame[64];
  size_t size = sp__call_frame_size(4, 7, 0);
  assert_int_equal(size, SP__FRAME_HEADER_SIZE + SP__CALL_PREFIX_SIZE + 11);
  sp__call_frame_write(frame, 0, "ping", 4, "{\"a\": 1}", 7, 0);
  sp__call_frame_dispatch(frame, 0xABCD0001u, 10000);
  size_t tl;
  assert_memory_equal(sp__call_frame_tool(frame, &tl), "ping", 4);
  assert_int_equal(tl, 4);
  sp__frame_t f;
  sp_error_t err;
  assert_int_equal(sp__frame_header_parse(frame, 1024, &f, &err), 0);
  assert_int_equal(f.type, SP__FRAME_CALL);
  assert_true(f.id == 0xABCD0001u);
  assert_int_equal(f.length, size - SP__FRAME_HEADER_SIZE);
  sp__call_view_t v;
  assert_int_equal(sp__call_body_parse(frame + SP__FRAME_HEADER_SIZE, f.length, 0, &v), 0);
  assert_int_equal(v.timeout_ms, 10000);
  assert_int_equal(v.tool_len, 4);
  assert_memory_equal(v.tool, "ping", 4);
  assert_int_equal(v.args_len, 7);
  assert_memory_equal(v.args, "{\"a\": 1", 7);
}

static void call_body_rejects_bad_lengths(void **state) {
  (void)state;
  uint8_t frame[64];
  sp__call_frame_write(frame, 0, "ping", 4, "{}", 2, 0);
  uint8_t *body = frame + SP__FRAME_HEADER_SIZE;
  size_t len = SP__CALL_PREFIX_SIZE + 6;
  sp__call_view_t v;
  assert_int_equal(sp__call_body_parse(body, len, 0, &v), 0);
  /* The lengths must tile the body exactly: shorter, longer, empty tool, short prefix. */
  assert_int_equal(sp__call_body_parse(body, len - 1, 0, &v), SP_EPROTOCOL);
  assert_int_equal(sp__call_body_parse(body, len + 1, 0, &v), SP_EPROTOCOL);
  body[4] = 200;
  assert_int_equal(sp__call_body_parse(body, len, 0, &v), SP_EPROTOCOL);
  body[4] = 0;
  assert_int_equal(sp__call_body_parse(body, len, 0, &v), SP_EPROTOCOL);
  assert_int_equal(sp__call_body_parse(body, SP__CALL_PREFIX_SIZE - 1, 0, &v), SP_EPROTOCOL);
  body[4] = 4;
  body[6] = 0xff; /* args length far beyond the body */
  assert_int_equal(sp__call_body_parse(body, len, 0, &v), SP_EPROTOCOL);
}

/* A CALL with a session: the id after the args, the flags patched at dispatch,
 * an arrays part after it, and every malformed session part refused. */
static void call_session_roundtrip(void **state) {
  (void)state;
  uint8_t frame[128];
  size_t extra = sp__call_session_size(5) + 4;
  size_t size = sp__call_frame_size(4, 2, extra);
  uint8_t *p = sp__call_frame_write(frame, SP__FLAG_SESSION | SP__FLAG_ARRAYS, "ping", 4, "{}",
                                    2, extra);
  p = sp__call_session_write(p, "alpha", 5);
  memcpy(p, "ARRS", 4);
  sp__call_frame_session_flags(frame, SP__SESSION_EPHEMERAL);
  sp__frame_t f;
  sp_error_t err;
  assert_int_equal(sp__frame_header_parse(frame, 1024, &f, &err), 0);
  assert_int_equal(f.length, size - SP__FRAME_HEADER_SIZE);
  assert_int_equal(f.flags, SP__FLAG_SESSION | SP__FLAG_ARRAYS);
  uint8_t *body = frame + SP__FRAME_HEADER_SIZE;
  sp__call_view_t v;
  assert_int_equal(sp__call_body_parse(body, f.length, f.flags, &v), 0);
  assert_int_equal(v.session_len, 5);
  assert_memory_equal(v.session, "alpha", 5);
  assert_int_equal(v.session_flags, SP__SESSION_EPHEMERAL);
  assert_int_equal(v.arrays_len, 4);
  assert_memory_equal(v.arrays, "ARRS", 4);
  assert_memory_equal(v.args, "{}", 2);
  /* Without flag SESSION the same bytes are arrays; without ARRAYS they must tile. */
  assert_int_equal(sp__call_body_parse(body, f.length, SP__FLAG_SESSION, &v), SP_EPROTOCOL);
  assert_int_equal(sp__call_body_parse(body, f.length - 4, SP__FLAG_SESSION, &v), 0);
  /* Truncated: inside the prefix, inside the id. */
  size_t at = SP__CALL_PREFIX_SIZE + 6;
  assert_int_equal(sp__call_body_parse(body, at + 2, SP__FLAG_SESSION, &v), SP_EPROTOCOL);
  assert_int_equal(sp__call_body_parse(body, at + 5, SP__FLAG_SESSION, &v), SP_EPROTOCOL);
  /* Empty and too long ids. */
  sp__put_u16(body + at, 0);
  assert_int_equal(sp__call_body_parse(body, f.length, f.flags, &v), SP_EPROTOCOL);
  sp__put_u16(body + at, SP__SESSION_ID_MAX + 1);
  assert_int_equal(sp__call_body_parse(body, f.length, f.flags, &v), SP_EPROTOCOL);
  /* A plain call has no session. */
  sp__call_frame_write(frame, 0, "ping", 4, "{}", 2, 0);
  assert_int_equal(sp__call_body_parse(body, SP__CALL_PREFIX_SIZE + 6, 0, &v), 0);
  assert_null(v.session);
  assert_int_equal(v.session_len, 0);
}

static void session_end_roundtrip(void **state) {
  (void)state;
  sp__buf_t b = {0};
  assert_int_equal(sp__buf_append_session_end(&b, "s-1", 3), 0);
  sp__frame_t f;
  sp_error_t err;
  assert_int_equal(sp__frame_header_parse(b.data, 1024, &f, &err), 0);
  assert_int_equal(f.type, SP__FRAME_SESSION_END);
  assert_string_equal(sp__frame_type_name(f.type), "SESSION_END");
  const char *id;
  size_t len;
  assert_int_equal(sp__session_end_body_parse(b.data + SP__FRAME_HEADER_SIZE, f.length, &id, &len),
                   0);
  assert_int_equal(len, 3);
  assert_memory_equal(id, "s-1", 3);
  uint8_t big[SP__SESSION_ID_MAX + 1] = {0};
  assert_int_equal(sp__session_end_body_parse(big, 0, &id, &len), SP_EPROTOCOL);
  assert_int_equal(sp__session_end_body_parse(big, sizeof(big), &id, &len), SP_EPROTOCOL);
  sp__buf_free(&b);
}

/* Takes the single frame out of b. */
static void only_frame(const sp__buf_t *b, sp__frame_t *f) {
  sp_error_t err;
  assert_int_equal(sp__frame_header_parse(b->data, 1 << 20, f, &err), 0);
  assert_int_equal(b->len, SP__FRAME_HEADER_SIZE + f->length);
  f->body = b->data + SP__FRAME_HEADER_SIZE;
}

static void error_frame_roundtrip(void **state) {
  (void)state;
  static const struct {
    sp__error_kind_t kind;
    int code;
  } cases[] = {{SP__ERRKIND_VALIDATION, SP_ENOTOOL}, {SP__ERRKIND_VALIDATION, SP_EBADARGS},
               {SP__ERRKIND_VALIDATION, SP_EBADJSON}, {SP__ERRKIND_PYTHON, SP_EPYTHON},
               {SP__ERRKIND_PROTOCOL, SP_ETOOLARGE},  {SP__ERRKIND_PROTOCOL, SP_ECANCELLED},
               {SP__ERRKIND_STARTUP, SP_ESTARTUP}};
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    sp__buf_t b = {0};
    assert_int_equal(sp__buf_append_error(&b, 77, cases[i].kind, cases[i].code, "why", 3), 0);
    sp__frame_t f;
    only_frame(&b, &f);
    assert_int_equal(f.type, SP__FRAME_ERROR);
    assert_true(f.id == 77);
    sp__error_view_t v;
    assert_int_equal(sp__error_body_parse(f.body, f.length, &v), 0);
    assert_int_equal(v.kind, cases[i].kind);
    assert_int_equal(v.code, cases[i].code);
    assert_int_equal(v.text_len, 3);
    assert_memory_equal(v.text, "why", 3);
    sp__buf_free(&b);
  }
  sp__error_view_t v;
  const uint8_t short_body[1] = {SP__ERRKIND_PYTHON};
  const uint8_t bad_kind[3] = {9, (uint8_t)-SP_EPYTHON, 'x'};
  const uint8_t bad_code[3] = {SP__ERRKIND_PYTHON, 200, 'x'};
  const uint8_t zero_code[3] = {SP__ERRKIND_PYTHON, 0, 'x'};
  assert_int_equal(sp__error_body_parse(short_body, 1, &v), SP_EPROTOCOL);
  assert_int_equal(sp__error_body_parse(bad_kind, 3, &v), SP_EPROTOCOL);
  assert_int_equal(sp__error_body_parse(bad_code, 3, &v), SP_EPROTOCOL);
  assert_int_equal(sp__error_body_parse(zero_code, 3, &v), SP_EPROTOCOL);
}

static void ping_pong_roundtrip(void **state) {
  (void)state;
  sp__buf_t b = {0};
  assert_int_equal(sp__buf_append_ping(&b, 123456789), 0);
  sp__frame_t f;
  only_frame(&b, &f);
  assert_int_equal(f.type, SP__FRAME_PING);
  sp__pong_t pong;
  assert_int_equal(sp__ping_body_parse(f.body, f.length, &pong), 0);
  assert_true(pong.sent_ms == 123456789);
  pong.attach_wait_ns = UINT64_C(0x0102030405060708);
  pong.calls_done = 42;
  b.len = 0;
  assert_int_equal(sp__buf_append_pong(&b, 5, &pong), 0);
  only_frame(&b, &f);
  assert_int_equal(f.type, SP__FRAME_PONG);
  sp__pong_t got;
  assert_int_equal(sp__pong_body_parse(f.body, f.length, &got), 0);
  assert_true(got.sent_ms == 123456789);
  assert_true(got.attach_wait_ns == UINT64_C(0x0102030405060708));
  assert_true(got.calls_done == 42);
  assert_int_equal(sp__pong_body_parse(f.body, f.length - 1, &got), SP_EPROTOCOL);
  assert_int_equal(sp__ping_body_parse(f.body, 7, &got), SP_EPROTOCOL);
  sp__buf_free(&b);
}

static void chunk_and_credit_roundtrip(void **state) {
  (void)state;
  sp__buf_t b = {0};
  assert_int_equal(sp__buf_append_chunk(&b, 77, "{\"n\":1}", 7), 0);
  sp__frame_t f;
  only_frame(&b, &f);
  assert_int_equal(f.type, SP__FRAME_CHUNK);
  assert_true(f.id == 77);
  assert_int_equal(f.length, 7);
  assert_memory_equal(f.body, "{\"n\":1}", 7);
  b.len = 0;
  assert_int_equal(sp__buf_append_credit(&b, 78, 32), 0);
  only_frame(&b, &f);
  assert_int_equal(f.type, SP__FRAME_CHUNK);
  uint32_t n = 0;
  assert_int_equal(sp__credit_body_parse(f.body, f.length, &n), 0);
  assert_int_equal(n, 32);
  /* A credit body is exactly 4 bytes: a chunk's JSON is not read as credit. */
  assert_int_equal(sp__credit_body_parse(f.body, 3, &n), SP_EPROTOCOL);
  assert_int_equal(sp__credit_body_parse((const uint8_t *)"{\"n\":1}", 7, &n), SP_EPROTOCOL);
  sp__buf_free(&b);
}

static void hostcall_and_hostreply_roundtrip(void **state) {
  (void)state;
  sp__buf_t b = {0};
  sp__hostcall_view_t in = {.parent = 0x1234000000000007ull, .kind = SP__HOSTCALL_TOOL,
                            .pool = "b", .pool_len = 1, .name = "add", .name_len = 3,
                            .args = "{\"a\":1}", .args_len = 7};
  assert_int_equal(sp__buf_append_hostcall(&b, 99, &in), 0);
  sp__frame_t f;
  only_frame(&b, &f);
  assert_int_equal(f.type, SP__FRAME_HOSTCALL);
  assert_string_equal(sp__frame_type_name(f.type), "HOSTCALL");
  assert_true(f.id == 99);
  assert_int_equal(f.length, SP__HOSTCALL_PREFIX_SIZE + 11);
  sp__hostcall_view_t v;
  assert_int_equal(sp__hostcall_body_parse(f.body, f.length, &v), 0);
  assert_true(v.parent == in.parent);
  assert_int_equal(v.kind, SP__HOSTCALL_TOOL);
  assert_memory_equal(v.pool, "b", 1);
  assert_memory_equal(v.name, "add", 3);
  assert_int_equal(v.args_len, 7);
  assert_memory_equal(v.args, "{\"a\":1}", 7);
  /* The lengths tile the body exactly; kind, name and a tool's pool are checked. */
  assert_int_equal(sp__hostcall_body_parse(f.body, f.length - 1, &v), SP_EPROTOCOL);
  assert_int_equal(sp__hostcall_body_parse(f.body, SP__HOSTCALL_PREFIX_SIZE - 1, &v), SP_EPROTOCOL);
  uint8_t body[64];
  memcpy(body, f.body, f.length);
  body[8] = 3;
  assert_int_equal(sp__hostcall_body_parse(body, f.length, &v), SP_EPROTOCOL);
  b.len = 0;
  sp__hostcall_view_t fn = {.parent = 5, .kind = SP__HOSTCALL_FUNCTION, .pool = "", .pool_len = 0,
                            .name = "scale", .name_len = 5, .args = "{}", .args_len = 2};
  assert_int_equal(sp__buf_append_hostcall(&b, 100, &fn), 0);
  only_frame(&b, &f);
  assert_int_equal(sp__hostcall_body_parse(f.body, f.length, &v), 0);
  assert_int_equal(v.kind, SP__HOSTCALL_FUNCTION);
  assert_int_equal(v.pool_len, 0);
  memcpy(body, f.body, f.length);
  body[8] = SP__HOSTCALL_TOOL; /* a tool call must name its pool */
  assert_int_equal(sp__hostcall_body_parse(body, f.length, &v), SP_EPROTOCOL);
  /* Names longer than their u16 length field are refused by the encoder. */
  fn.name_len = 70000;
  assert_int_equal(sp__buf_append_hostcall(&b, 101, &fn), SP_EINVAL);

  /* HOSTREPLY: a result, an error with its code, and bad codes. */
  b.len = 0;
  assert_int_equal(sp__buf_append_hostreply(&b, 99, 0, "42", 2), 0);
  only_frame(&b, &f);
  assert_int_equal(f.type, SP__FRAME_HOSTREPLY);
  int code = -1;
  const char *text;
  size_t n;
  assert_int_equal(sp__hostreply_body_parse(f.body, f.length, &code, &text, &n), 0);
  assert_int_equal(code, 0);
  assert_int_equal(n, 2);
  assert_memory_equal(text, "42", 2);
  b.len = 0;
  assert_int_equal(sp__buf_append_hostreply(&b, 99, SP_EDEPTH, "{}", 2), 0);
  only_frame(&b, &f);
  assert_int_equal(sp__hostreply_body_parse(f.body, f.length, &code, &text, &n), 0);
  assert_int_equal(code, SP_EDEPTH);
  assert_int_equal(sp__hostreply_body_parse(f.body, 0, &code, &text, &n), SP_EPROTOCOL);
  uint8_t bad[1] = {200};
  assert_int_equal(sp__hostreply_body_parse(bad, 1, &code, &text, &n), SP_EPROTOCOL);
  sp__buf_free(&b);
}

static void decoder_gives_memory_back(void **state) {
  (void)state;
  sp__buf_t b = {0};
  static char big[3 << 20];
  sp__buf_append_frame(&b, SP__FRAME_RESULT, 1, big, sizeof(big));
  sp__decoder_t d;
  sp__decoder_init(&d, 4 << 20);
  feed(&d, b.data, b.len - 1);
  sp__frame_t f;
  sp_error_t err;
  assert_int_equal(sp__decoder_next(&d, &f, &err), 0);
  sp__decoder_shrink(&d, 1 << 20); /* a frame is half read: nothing may go */
  assert_non_null(d.buf);
  feed(&d, b.data + b.len - 1, 1);
  assert_int_equal(sp__decoder_next(&d, &f, &err), 1);
  assert_int_equal(f.length, sizeof(big));
  sp__decoder_shrink(&d, 1 << 20);
  assert_null(d.buf);
  assert_int_equal(d.cap, 0);
  /* A large frame read together with the start of a small one behind it: the
   * small one's bytes move to a small buffer and it still decodes. */
  size_t big_len = b.len;
  sp__buf_append_frame(&b, SP__FRAME_RESULT, 2, "{\"ok\": 1}", 9);
  feed(&d, b.data, big_len + 5);
  assert_int_equal(sp__decoder_next(&d, &f, &err), 1);
  assert_int_equal(f.length, sizeof(big));
  assert_true(d.cap > (1u << 20));
  sp__decoder_shrink(&d, 1 << 20);
  assert_true(d.cap <= 4096);
  feed(&d, b.data + big_len + 5, b.len - big_len - 5);
  assert_int_equal(sp__decoder_next(&d, &f, &err), 1);
  assert_int_equal(f.length, 9);
  assert_memory_equal(f.body, "{\"ok\": 1}", 9);
  sp__decoder_free(&d);
  sp__buf_free(&b);
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

static void error_texts_are_owned_and_bounded(void **state) {
  (void)state;
  sp_error_t e;
  assert_int_equal(sp_error_setf(&e, SP_EBADARGS, "bad %s %d", "thing", 7), SP_EBADARGS);
  assert_string_equal(e.message, "bad thing 7");
  assert_string_equal(e.python_type, "");
  assert_string_equal(e.traceback, "");
  assert_int_equal(e.category, SP_CAT_VALIDATION);
  sp_error_t copy;
  assert_int_equal(sp_error_copy(&copy, &e), SP_EBADARGS);
  sp_error_free(&e);
  assert_int_equal(e.code, 0);
  assert_string_equal(e.message, "");
  assert_string_equal(copy.message, "bad thing 7"); /* the copy owns its own texts */
  sp_error_free(&copy);
  sp_error_free(&copy); /* freeing twice is harmless */

  /* A long message keeps its beginning; a long traceback its end, behind a marker. */
  static char longtext[200000];
  memset(longtext, 'm', sizeof(longtext) - 1);
  longtext[0] = 'B';
  longtext[sizeof(longtext) - 2] = 'E';
  sp_error_set(&e, SP_EPYTHON, longtext, "ValueError", longtext);
  assert_int_equal(strlen(e.message), SP__ERR_MESSAGE_MAX);
  assert_int_equal(e.message[0], 'B');
  assert_string_equal(e.python_type, "ValueError");
  assert_int_equal(strlen(e.traceback), SP__ERR_TRACEBACK_MAX);
  assert_true(strncmp(e.traceback, "...\n", 4) == 0);
  assert_int_equal(e.traceback[SP__ERR_TRACEBACK_MAX - 1], 'E');
  sp_error_free(&e);

  /* A formatted message longer than the formatter's stack buffer. */
  sp_error_setf(&e, SP_EIO, "%s", longtext);
  assert_int_equal(strlen(e.message), SP__ERR_MESSAGE_MAX);
  sp_error_free(&e);

  sp_error_t init = SP_ERROR_INIT;
  assert_int_equal(init.code, 0);
  assert_string_equal(init.message, "");
  sp_error_free(&init);
  assert_int_equal(sp_error_setf(NULL, SP_EIO, "nowhere"), SP_EIO);
}

static void version_is_the_header_s(void **state) {
  (void)state;
  char want[32];
  snprintf(want, sizeof(want), "%d.%d.%d", SP_VERSION_MAJOR, SP_VERSION_MINOR, SP_VERSION_PATCH);
  assert_string_equal(sp_version(), want);
  assert_int_equal(SP_VERSION_HEX,
                   SP_VERSION_MAJOR << 16 | SP_VERSION_MINOR << 8 | SP_VERSION_PATCH);
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
      cmocka_unit_test(call_frame_roundtrip),  cmocka_unit_test(call_body_rejects_bad_lengths),
      cmocka_unit_test(call_session_roundtrip), cmocka_unit_test(session_end_roundtrip),
      cmocka_unit_test(error_frame_roundtrip), cmocka_unit_test(ping_pong_roundtrip),
      cmocka_unit_test(decoder_gives_memory_back), cmocka_unit_test(chunk_and_credit_roundtrip),
      cmocka_unit_test(hostcall_and_hostreply_roundtrip),
      cmocka_unit_test(buf_ops),               cmocka_unit_test(error_texts_are_owned_and_bounded),
      cmocka_unit_test(version_is_the_header_s), cmocka_unit_test(error_table),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

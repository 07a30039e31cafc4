/*
 * utf8.c - well-formed UTF-8 (RFC 3629).
 */
#include "utf8.h"

size_t sp__utf8_seq(const unsigned char *s, size_t n) {
  static const unsigned min_cp[5] = {0, 0, 0x80, 0x800, 0x10000};
  unsigned char c = s[0];
  size_t len = c < 0x80             ? 1
               : (c & 0xe0) == 0xc0 ? 2
               : (c & 0xf0) == 0xe0 ? 3
               : (c & 0xf8) == 0xf0 ? 4
                                    : 0;
  if (len == 0 || len > n) return 0;
  unsigned cp = len == 1 ? c : len == 2 ? c & 0x1fu : len == 3 ? c & 0x0fu : c & 0x07u;
  for (size_t k = 1; k < len; k++) {
    if ((s[k] & 0xc0) != 0x80) return 0;
    cp = (cp << 6) | (s[k] & 0x3fu);
  }
  if (cp < min_cp[len] || (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff) return 0;
  return len;
}

int sp__utf8_valid(const unsigned char *s, size_t n) {
  for (size_t i = 0, len; i < n; i += len)
    if ((len = sp__utf8_seq(s + i, n - i)) == 0) return 0;
  return 1;
}

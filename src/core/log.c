/*
 * log.c - process-wide log sink. The handler pair is swapped under a lock so a
 * sink can be replaced while worker output is flowing.
 */
#include "log.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static pthread_mutex_t g_log_mu = PTHREAD_MUTEX_INITIALIZER;
static sp_log_cb g_log_cb;
static void *g_log_ud;
static atomic_int g_min_level = -1; /* read once; racing first readers agree */

void sp_set_log_handler(sp_log_cb cb, void *userdata) {
  pthread_mutex_lock(&g_log_mu);
  g_log_cb = cb;
  g_log_ud = userdata;
  pthread_mutex_unlock(&g_log_mu);
}

static int min_level(void) {
  int cached = atomic_load_explicit(&g_min_level, memory_order_relaxed);
  if (cached < 0) {
    /* SNAKEPIT_LOG_LEVEL=debug|info|warning|error; info by default. */
    const char *e = getenv("SNAKEPIT_LOG_LEVEL");
    int lvl = SP__LOG_INFO;
    if (e && e[0] == 'd') lvl = SP__LOG_DEBUG;
    else if (e && e[0] == 'w') lvl = SP__LOG_WARN;
    else if (e && e[0] == 'e') lvl = SP__LOG_ERROR;
    atomic_store_explicit(&g_min_level, lvl, memory_order_relaxed);
    cached = lvl;
  }
  return cached;
}

void sp__log(int level, const char *fmt, ...) {
  if (level < min_level()) return;
  char line[2048];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(line, sizeof(line), fmt, ap);
  va_end(ap);
  pthread_mutex_lock(&g_log_mu);
  if (g_log_cb != NULL) {
    g_log_cb(level, line, g_log_ud);
  } else {
    fprintf(stderr, "%s\n", line);
  }
  pthread_mutex_unlock(&g_log_mu);
}

void sp__linebuf_feed(sp__linebuf_t *lb, long n, void (*emit)(void *ctx, const char *line, size_t len),
                      void *ctx) {
  if (n < 0) {
    if (lb->len > 0) emit(ctx, lb->buf, lb->len);
    lb->len = 0;
    return;
  }
  lb->len += (size_t)n;
  size_t start = 0;
  for (size_t i = 0; i < lb->len; i++) {
    if (lb->buf[i] == '\n') {
      emit(ctx, lb->buf + start, i - start);
      start = i + 1;
    }
  }
  if (start == 0 && lb->len == sizeof(lb->buf)) {
    emit(ctx, lb->buf, lb->len); /* a line longer than the buffer: split it */
    start = lb->len;
  }
  memmove(lb->buf, lb->buf + start, lb->len - start);
  lb->len -= start;
}

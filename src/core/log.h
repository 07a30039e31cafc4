/*
 * log.h - the runtime's log sink: runtime messages and worker output lines go
 * through here to the handler set with sp_set_log_handler() (stderr by default).
 */
#ifndef SP_CORE_LOG_H
#define SP_CORE_LOG_H

#include "errors.h"

enum { SP__LOG_DEBUG = 0, SP__LOG_INFO = 1, SP__LOG_WARN = 2, SP__LOG_ERROR = 3 };

/** Formats one line and hands it to the current sink. Thread-safe. */
void sp__log(int level, const char *fmt, ...) SP__PRINTF(2, 3);

/** A child process's output being cut into lines: the bytes of the unfinished line. */
typedef struct sp__linebuf_s {
  char buf[1024];
  size_t len;
} sp__linebuf_t;

/**
 * Takes n bytes just read into lb->buf + lb->len and calls emit for each whole
 * line (without its newline); a line longer than the buffer is split. n < 0
 * means end of output: the unfinished line, if any, is emitted.
 */
void sp__linebuf_feed(sp__linebuf_t *lb, long n, void (*emit)(void *ctx, const char *line, size_t len),
                      void *ctx);

#endif /* SP_CORE_LOG_H */

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

#endif /* SP_CORE_LOG_H */

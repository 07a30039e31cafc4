/*
 * config_io.c - what the configuration loader reads from the system: the
 * file itself (bounded in size), and the folder relative paths resolve
 * against (the file's, or the current directory for YAML text).
 */
#define _XOPEN_SOURCE 700 /* realpath and strdup without GNU extensions */

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "errors.h"

static int nomem(sp_error_t *err) {
  return sp__error_set(err, SP_ENOMEM, "out of memory while loading the configuration");
}

/* getcwd with a growing buffer (getcwd(NULL, 0) is a GNU extension). */
int sp__config_current_dir(char **out, sp_error_t *err) {
  char *buf = NULL;
  size_t cap = 256;
  int rc = 0;
  for (;;) {
    char *bigger = realloc(buf, cap);
    if (bigger == NULL) {
      rc = nomem(err);
      goto cleanup;
    }
    buf = bigger;
    if (getcwd(buf, cap) != NULL) break;
    if (errno != ERANGE || cap >= 65536) {
      rc =
          sp__error_set(err, SP_EIO, "cannot determine the current directory: %s", strerror(errno));
      goto cleanup;
    }
    cap *= 2;
  }
  *out = buf;
  buf = NULL;
cleanup:
  free(buf);
  return rc;
}

/* The absolute folder holding path; the file itself is not followed if it is a symlink. */
int sp__config_folder_of(const char *path, char **out, sp_error_t *err) {
  char *dir = NULL;
  const char *slash = strrchr(path, '/');
  int rc = 0;
  if (slash == NULL) {
    dir = strdup(".");
  } else if (slash == path) {
    dir = strdup("/");
  } else {
    dir = malloc((size_t)(slash - path) + 1);
    if (dir != NULL) {
      memcpy(dir, path, (size_t)(slash - path));
      dir[slash - path] = '\0';
    }
  }
  if (dir == NULL) {
    rc = nomem(err);
    goto cleanup;
  }
  *out = realpath(dir, NULL);
  if (*out == NULL) {
    rc = errno == ENOMEM
             ? nomem(err)
             : sp__error_set(err, SP_ECONFIG, "cannot resolve the folder of config '%s': %s", path,
                             strerror(errno));
  }
cleanup:
  free(dir);
  return rc;
}

/* Reads the whole file; pipes and /dev/stdin work too, so no size is taken from stat. */
int sp__config_read_file(const char *path, char **out, size_t *out_len, sp_error_t *err) {
  int fd = -1;
  char *buf = NULL;
  size_t cap = 0;
  size_t len = 0;
  int rc = 0;
  fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    rc = sp__error_set(err, SP_ECONFIG, "cannot read config '%s': %s", path, strerror(errno));
    goto cleanup;
  }
  for (;;) {
    ssize_t got = 0;
    if (len == cap) {
      size_t new_cap = cap == 0 ? 4096 : cap * 2;
      char *bigger = NULL;
      if (cap >= SP__CONFIG_MAX_BYTES) {
        rc = sp__error_set(err, SP_ECONFIG, "cannot read config '%s': larger than %d KiB", path,
                           SP__CONFIG_MAX_BYTES / 1024);
        goto cleanup;
      }
      bigger = realloc(buf, new_cap);
      if (bigger == NULL) {
        rc = nomem(err);
        goto cleanup;
      }
      buf = bigger;
      cap = new_cap;
    }
    got = read(fd, buf + len, cap - len);
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) {
      rc = sp__error_set(err, SP_ECONFIG, "cannot read config '%s': %s", path, strerror(errno));
      goto cleanup;
    }
    if (got == 0) break;
    len += (size_t)got;
  }
  *out = buf;
  *out_len = len;
  buf = NULL;
cleanup:
  free(buf);
  if (fd >= 0) close(fd);
  return rc;
}


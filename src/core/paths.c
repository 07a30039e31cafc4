/*
 * paths.c - where the worker program and the Python SDK are. Install-time paths
 * are relative to the binary that needs them, so an installed tree can be moved
 * (or unpacked under DESTDIR) and still find its parts without any environment.
 */
#include "paths.h"

#include <dlfcn.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int copy(char *out, size_t cap, const char *s) {
  if (strlen(s) >= cap) {
    if (cap) out[0] = '\0';
    return -1;
  }
  strcpy(out, s);
  return 0;
}

int sp__locate(const char *self, const char *build_dir, const char *build_path,
               const char *installed_rel, char *out, size_t cap) {
  char real_self[PATH_MAX], real_build[PATH_MAX];
  if (self == NULL || self[0] == '\0' || realpath(self, real_self) == NULL)
    return copy(out, cap, build_path);
  char *slash = strrchr(real_self, '/');
  if (slash == NULL) return copy(out, cap, build_path);
  *slash = '\0'; /* real_self is now the binary's folder */
  /* A build-tree binary uses the build tree, even when an installed copy exists. */
  if (realpath(build_dir, real_build) != NULL && strcmp(real_self, real_build) == 0)
    return copy(out, cap, build_path);
  char candidate[PATH_MAX];
  int n = snprintf(candidate, sizeof(candidate), "%s/%s", real_self, installed_rel);
  if (n > 0 && (size_t)n < sizeof(candidate) && access(candidate, F_OK) == 0)
    return copy(out, cap, candidate);
  return copy(out, cap, build_path);
}

void sp__self_path(const void *symbol, char *out, size_t cap) {
  Dl_info info;
  if (cap == 0) return;
  out[0] = '\0';
  if (dladdr(symbol, &info) != 0 && info.dli_fname != NULL) copy(out, cap, info.dli_fname);
}

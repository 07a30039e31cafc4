/*
 * paths.h - finding the files that ship with snakepit (the worker program, the
 * Python SDK) from wherever the library or program actually runs: an installed
 * copy finds the installed files, a build-tree copy the build-tree ones.
 */
#ifndef SP_CORE_PATHS_H
#define SP_CORE_PATHS_H

#include <stddef.h>

/**
 * Writes into out (cap bytes) where a shipped file is for a binary at `self`
 * (the running library or program; NULL or "" when unknown):
 *   - `self` lies in `build_dir` (the folder it was built in): `build_path`;
 *   - else `self`'s folder joined with `installed_rel`, if that exists;
 *   - else `build_path`.
 * Returns 0, or -1 if a result does not fit (out is then "").
 */
int sp__locate(const char *self, const char *build_dir, const char *build_path,
               const char *installed_rel, char *out, size_t cap);

/** Path of the shared object or program that contains `symbol`, or "" (dladdr). */
void sp__self_path(const void *symbol, char *out, size_t cap);

#endif /* SP_CORE_PATHS_H */

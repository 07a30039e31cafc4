/*
 * fuzz_config.c - libFuzzer target for the pools.yaml loader: any byte string must
 * either load or fail with a message, never crash, leak or read out of bounds.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  sp__config_t cfg;
  sp_error_t err;
  if (sp__config_load_string(&cfg, (const char *)data, size, "fuzz.yaml", &err) == 0) {
    /* A loaded config must be self-consistent: every pool has a name and an adapter. */
    for (size_t i = 0; i < cfg.pool_count; i++) {
      if (sp__config_find(&cfg, cfg.pools[i].name) == NULL || cfg.pools[i].adapter == NULL) {
        __builtin_trap();
      }
    }
  } else {
    /* A failure always explains itself. */
    if (err.message == NULL || err.message[0] == '\0') __builtin_trap();
    sp_error_free(&err);
  }
  sp__config_free(&cfg);
  return 0;
}

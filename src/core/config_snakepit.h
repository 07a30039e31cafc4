/*
 * config_snakepit.h - Snakepit's configuration names (its Elixir config as YAML):
 * which are accepted and what they mean here, and for the rest what to write instead.
 */
#ifndef SP_CORE_CONFIG_SNAKEPIT_H
#define SP_CORE_CONFIG_SNAKEPIT_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"

/**
 * The refusal for a Snakepit key this project has no equivalent for ("remove it:
 * ..." or "write ... instead"), or NULL when key is not one. top is true for keys
 * of the file's top level. The returned text is static.
 */
const char *sp__snakepit_refusal(const char *key, bool top);

/**
 * adapter_module: Snakepit.Adapters.GRPCPython (its Python adapter) is accepted
 * and means nothing more here; any other value is refused. Returns true when
 * accepted, else false with the reason in why[cap].
 */
bool sp__snakepit_adapter_module(const char *value, char *why, size_t cap);

/** True for Snakepit's "no limit" (infinity or :infinity), which is 0 (off) here. */
bool sp__snakepit_infinity(const char *text);

/**
 * worker_ttl written as Snakepit's {3600, :seconds}, in YAML [3600, seconds]: writes
 * the duration as text this project reads ("3600s") into out[cap]. Units: seconds,
 * minutes, hours (with or without the leading colon). Returns false with the
 * reason in why[cap] for anything else.
 */
bool sp__snakepit_ttl(const char *number, const char *unit, char *out, size_t cap, char *why,
                      size_t whycap);

/** Which pool keys the entry set itself (a flag may not contradict them). */
typedef struct {
  bool adapter, profile, threads, checks;
} sp__snakepit_set_t;

/**
 * adapter_args holding Snakepit's grpc_server flags (the list has --adapter):
 * --adapter X becomes adapter, --mode threaded|process worker_profile,
 * --max-workers N threads_per_worker, --thread-safety-check thread_safety_checks;
 * the list is then emptied (they were never constructor arguments). Other lists
 * are left alone. Returns 0, -1 with the reason (naming the flag and what to
 * write instead) in why[cap], or -2 when out of memory. Owned strings of pc are
 * replaced and freed; set->threads becomes true when --max-workers set them.
 */
int sp__snakepit_flags(sp__pool_config_t *pc, sp__snakepit_set_t *set, char *why, size_t cap);

#endif

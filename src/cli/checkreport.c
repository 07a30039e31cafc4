/*
 * checkreport.c - the report of `snakepit check`: built from the merged
 * checker reports and the tool runs (findings, notes, problem count), and
 * printed for a person (the JSON form is the same object).
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "cli.h"

static json_t *finding(const char *kind, const char *message) {
  json_t *f = json_object();
  json_object_set_new(f, "kind", json_string(kind));
  json_object_set_new(f, "message", json_string(message));
  return f;
}

static void print_indented(const char *text, const char *indent) {
  const char *p = text;
  while (*p) {
    const char *nl = strchr(p, '\n');
    int n = nl ? (int)(nl - p) : (int)strlen(p);
    printf("%s%.*s\n", indent, n, p);
    p += n + (nl != NULL);
  }
}

void sp_check_print_text(const check_opts_t *c, json_t *rep) {
  json_t *w0 = json_object_get(rep, "worker");
  printf("snakepit check %s\n", c->adapter);
  printf("  %s profile, %s, Python %s (GIL %s), thread-safety checks %s\n",
         c->thread_profile ? "thread" : "process", sp_cli_jstr(rep, "layout", ""),
         sp_cli_jstr(w0, "python_version", "?"),
         json_is_true(json_object_get(w0, "gil_enabled")) ? "enabled" : "disabled",
         c->strict ? "strict" : "on");
  json_t *decl = json_object_get(rep, "thread_safe");
  printf("\nDeclaration\n  __thread_safe__ = %s\n", json_is_true(decl)    ? "True"
                                                    : json_is_false(decl) ? "False"
                                                                          : "(not declared)");

  json_t *tools = json_object_get(rep, "tools");
  printf("\nTools (%zu)%*s calls  failed  peak overlap\n", json_array_size(tools), 22, "");
  size_t i;
  json_t *t;
  json_array_foreach(tools, i, t) {
    const char *name = sp_cli_jstr(t, "name", "?");
    const char *skipped = sp_cli_jstr(t, "skipped", NULL);
    if (skipped != NULL) {
      const char *nl = strchr(skipped, '\n');
      printf("  %-28s skipped: %.*s\n", name, nl ? (int)(nl - skipped) : (int)strlen(skipped),
             skipped);
      continue;
    }
    printf("  %-28s %7lld %7lld %7lld%s\n", name, json_integer_value(json_object_get(t, "calls")),
           json_integer_value(json_object_get(t, "failed")),
           json_integer_value(json_object_get(t, "peak_concurrency")),
           json_is_true(json_object_get(t, "generated_args")) ? "   (generated arguments)" : "");
  }

  json_t *libs = json_object_get(rep, "libraries");
  printf("\nLibraries the adapter imported (compatibility matrix)\n");
  if (json_array_size(libs) == 0) printf("  none listed in the matrix\n");
  json_array_foreach(libs, i, t) {
    const char *status = sp_cli_jstr(t, "status", "?");
    printf("  %-16s %-12s %s\n", sp_cli_jstr(t, "library", "?"), status,
           sp_cli_jstr(t, "reason", ""));
    if (strcmp(status, "safe") != 0)
      printf("  %-16s %-12s workaround: %s\n", "", "", sp_cli_jstr(t, "workaround", ""));
    const char *at = sp_cli_jstr(t, "imported_at", NULL);
    if (at != NULL && strcmp(status, "unsafe") == 0) printf("  %-29s imported at %s\n", "", at);
  }

  json_t *findings = json_object_get(rep, "findings");
  printf("\nFindings (%zu)\n", json_array_size(findings));
  if (json_array_size(findings) == 0) printf("  none\n");
  json_array_foreach(findings, i, t) {
    char num[32];
    snprintf(num, sizeof(num), "%3zu. ", i + 1);
    const char *msg = sp_cli_jstr(t, "message", "");
    const char *nl = strchr(msg, '\n');
    printf("%s%.*s\n", num, nl ? (int)(nl - msg) : (int)strlen(msg), msg);
    if (nl) print_indented(nl + 1, "     ");
    json_t *count = json_object_get(t, "count");
    if (count) printf("       seen %lld times\n", json_integer_value(count));
  }
  json_t *notes = json_object_get(rep, "notes");
  if (json_array_size(notes) > 0) {
    printf("\nNotes\n");
    json_array_foreach(notes, i, t) print_indented(json_string_value(t), "  - ");
  }
  long long problems = json_integer_value(json_object_get(rep, "problems"));
  json_t *unexercised = json_object_get(rep, "not_exercised");
  size_t n_un = json_array_size(unexercised);
  if (n_un > 0) {
    printf("\nNot exercised (%zu): these tools never ran, so nothing is known about them\n", n_un);
    json_array_foreach(unexercised, i, t) {
      const char *why = sp_cli_jstr(t, "reason", "");
      const char *nl = strchr(why, '\n');
      printf("  %-28s %.*s\n", sp_cli_jstr(t, "name", "?"), nl ? (int)(nl - why) : (int)strlen(why),
             why);
    }
    printf("  Give their arguments with --args FILE, or leave them out with --skip NAME.\n");
  }
  if (problems)
    printf("\nResult: %lld problem%s found\n", problems, problems == 1 ? "" : "s");
  else if (n_un > 0)
    printf(
        "\nResult: incomplete: no thread-safety problems found in the tools exercised, "
        "but %zu tool%s could not be exercised\n",
        n_un, n_un == 1 ? "" : "s");
  else
    printf("\nResult: no thread-safety problems found\n");
}

/* Turns the merged checker report and the tool runs into the check report. */
json_t *sp_check_build_report(const check_opts_t *c, json_t *merged, json_t *first_worker,
                            tool_run_t *runs, size_t nruns) {
  json_t *rep = json_object(), *findings = json_array(), *notes = json_array(),
         *tools = json_array();
  char layout[64];
  snprintf(layout, sizeof(layout),
           c->thread_profile ? "1 worker x %d threads" : "%d workers x 1 thread", c->threads);
  json_object_set_new(rep, "adapter", json_string(c->adapter));
  json_object_set_new(rep, "profile", json_string(c->thread_profile ? "thread" : "process"));
  json_object_set_new(rep, "layout", json_string(layout));
  json_object_set(rep, "thread_safe", json_object_get(first_worker, "thread_safe"));
  json_t *worker = json_object();
  json_object_set(worker, "python_version", json_object_get(first_worker, "python_version"));
  json_object_set(worker, "gil_enabled", json_object_get(first_worker, "gil_enabled"));
  json_object_set(worker, "free_threaded_build", json_object_get(first_worker, "free_threaded_build"));
  json_object_set_new(rep, "worker", worker);

  json_t *decl = json_object_get(first_worker, "thread_safe");
  if (!json_is_true(decl)) {
    char msg[512];
    snprintf(msg, sizeof(msg),
             "⚠️  Adapter %s does not declare thread safety.\n"
             "  Add __thread_safe__ = True to the class once its shared state is read-only, "
             "thread-local or locked%s.",
             sp_cli_jstr(first_worker, "adapter_class", c->adapter),
             c->thread_profile ? "" : " (not needed in the process profile)");
    json_array_append_new(
        c->thread_profile ? findings : notes,
        c->thread_profile ? finding("undeclared_adapter", msg) : json_string(msg));
  }

  json_t *conc = json_object_get(merged, "concurrent_accesses");
  /* A tool that never ran was not checked: the result must not read as clean. */
  json_t *unexercised = json_array();
  for (size_t i = 0; i < nruns; i++) {
    tool_run_t *t = &runs[i];
    json_t *o = json_object();
    json_object_set_new(o, "name", json_string(t->name));
    if (t->skipped) {
      char why[1600];
      snprintf(why, sizeof(why), "%s%s%s", t->skipped, t->alone_error[0] ? ": " : "",
               t->alone_error);
      json_object_set_new(o, "skipped", json_string(why));
      json_array_append_new(tools, o);
      json_array_append_new(unexercised, json_pack("{s:s, s:s}", "name", t->name, "reason", why));
      continue;
    }
    json_t *peak = json_object_get(conc, t->name);
    long long p = peak ? json_integer_value(peak) : 1;
    json_object_set_new(o, "calls", json_integer(t->calls));
    json_object_set_new(o, "ok", json_integer(t->ok));
    json_object_set_new(o, "failed", json_integer(t->failed));
    json_object_set_new(o, "peak_concurrency", json_integer(p));
    json_object_set_new(o, "seconds", json_real(t->seconds));
    json_object_set_new(o, "generated_args", json_boolean(t->generated));
    json_object_set(o, "args", json_array_get(t->args, 0));
    json_array_append_new(tools, o);
    if (t->failed) {
      char msg[2048];
      snprintf(
          msg, sizeof(msg),
          "⚠️  Tool '%s' failed %d of %d times under concurrent load%s, but not when called "
          "alone: %s",
          t->name, t->failed, t->calls, t->crashed ? " (the worker crashed)" : "", t->first_error);
      json_t *f = finding("fails_under_load", msg);
      json_object_set_new(f, "tool", json_string(t->name));
      json_array_append_new(findings, f);
    }
    if (p < 2 && c->thread_profile && c->threads > 1) {
      char note[512];
      snprintf(note, sizeof(note),
               "%s: its calls never overlapped (too short to interleave on this Python), so races "
               "inside it cannot be seen; raise --calls, or give it slower arguments with --args.",
               t->name);
      json_array_append_new(notes, json_string(note));
    }
  }
  json_object_set_new(rep, "tools", tools);

  size_t i;
  json_t *v;
  json_array_foreach(json_object_get(merged, "unlocked_writes"), i, v) {
    json_t *f = finding("unlocked_write", sp_cli_jstr(v, "message", ""));
    const char *keys[] = {"attribute", "class",  "operation",    "function",   "tool", "file",
                          "line",      "thread", "other_thread", "other_tool", "count"};
    for (size_t k = 0; k < sizeof(keys) / sizeof(keys[0]); k++)
      json_object_set(f, keys[k], json_object_get(v, keys[k]));
    json_object_set(f, "write_kind", json_object_get(v, "kind"));
    json_array_append_new(findings, f);
  }
  json_t *libs = json_object_get(merged, "imported_libraries");
  json_array_foreach(libs, i, v) {
    const char *lib = sp_cli_jstr(v, "library", "?");
    if (strcmp(sp_cli_jstr(v, "status", ""), "unsafe") != 0) continue;
    char msg[2048], site[768] = "";
    const char *at = sp_cli_jstr(v, "imported_at", NULL), *tool = sp_cli_jstr(v, "tool", NULL);
    if (at != NULL)
      snprintf(site, sizeof(site), "  Imported at: %s%s%s%s%s%s\n", at,
               tool ? " (during tool '" : "", tool ? tool : "", tool ? "' on thread '" : "",
               tool ? sp_cli_jstr(v, "thread", "?") : "", tool ? "')" : "");
    snprintf(
        msg, sizeof(msg),
        "⚠️  THREAD SAFETY: Unsafe library '%s' detected\n%s  Reason: %s\n  Workaround: %s",
        lib, site, sp_cli_jstr(v, "reason", ""), sp_cli_jstr(v, "workaround", ""));
    if (!c->thread_profile || sp_check_in_list(c->allow, c->nallow, lib)) {
      char note[256];
      snprintf(note, sizeof(note), "unsafe library '%s' not counted: %s", lib,
               c->thread_profile ? "allowed with --allow"
                                 : "the process profile runs one call per process");
      json_array_append_new(notes, json_string(note));
      continue;
    }
    json_t *f = finding("unsafe_library", msg);
    json_object_set_new(f, "library", json_string(lib));
    json_array_append_new(findings, f);
  }
  json_object_set(rep, "libraries", libs);
  if (!json_is_true(json_object_get(first_worker, "container_tracking")))
    json_array_append_new(
        notes, json_string("in-place changes of lists/dicts/sets are not tracked on this Python"));
  if (json_is_true(json_object_get(first_worker, "free_threaded_build")) &&
      json_is_true(json_object_get(first_worker, "gil_enabled")))
    json_array_append_new(
        notes, json_string("the GIL is on although this Python is free-threaded: an extension "
                           "module without free-threading support was imported, so calls did "
                           "not run Python in parallel here; without it, races show up more"));
  json_object_set_new(rep, "problems", json_integer((json_int_t)json_array_size(findings)));
  json_object_set_new(rep, "not_exercised", unexercised);
  json_object_set_new(rep, "findings", findings);
  json_object_set_new(rep, "notes", notes);
  json_object_set(rep, "checker", merged);
  return rep;
}

/* Reads --args FILE: {"tool": {args} | [{args}, ...]}. */

/*
 * statsview.c - output for people: statistics as a table on a terminal (JSON
 * when piped or with --json), `snakepit top` (the table refreshed live from a
 * running server), and JSON pretty-printed with its numbers exactly as the tool
 * wrote them (0.1 stays 0.1).
 */
#include <getopt.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

/* Copies JSON text to f re-indented by two spaces, every token verbatim. The text
 * must be valid JSON (the caller checked). */
static void reindent(FILE *f, const char *s) {
  int depth = 0;
  for (const char *p = s; *p; p++) {
    char c = *p;
    if (c == '"') {
      const char *q = p + 1;
      while (*q && *q != '"') q += *q == '\\' && q[1] ? 2 : 1;
      fwrite(p, 1, (size_t)(q - p) + (*q ? 1 : 0), f);
      p = *q ? q : q - 1;
    } else if (c == '{' || c == '[') {
      const char *q = p + 1;
      while (*q == ' ' || *q == '\t' || *q == '\n' || *q == '\r') q++;
      if (*q == (c == '{' ? '}' : ']')) { /* empty: {} or [] */
        fputc(c, f);
        fputc(*q, f);
        p = q;
        continue;
      }
      fputc(c, f);
      fprintf(f, "\n%*s", 2 * ++depth, "");
    } else if (c == '}' || c == ']') {
      fprintf(f, "\n%*s%c", 2 * --depth, "", c);
    } else if (c == ',') {
      fprintf(f, ",\n%*s", 2 * depth, "");
    } else if (c == ':') {
      fputs(": ", f);
    } else if (c != ' ' && c != '\t' && c != '\n' && c != '\r') {
      fputc(c, f);
    }
  }
  fputc('\n', f);
}

void sp_cli_print_json(const char *text) {
  json_error_t jerr;
  json_t *v = json_loads(text, JSON_DECODE_ANY, &jerr);
  if (v == NULL) {
    puts(text);
    return;
  }
  json_decref(v);
  reindent(stdout, text);
}

void sp_cli_print_stats(int as_json, const char *json) {
  char *text = NULL;
  sp_error_t err;
  if (as_json || !isatty(STDOUT_FILENO) ||
      sp_stats_text(json, SP_STATS_TEXT_WORKERS, &text, &err) != 0) {
    sp_cli_print_json(json);
    return;
  }
  fputs(text, stdout);
  sp_free(text);
}

/* ---- snakepit top ---------------------------------------------------------------- */

static const char top_usage[] =
    "usage: snakepit top [--url URL] [--interval SEC] [-n COUNT] [POOL]\n"
    "\n"
    "Shows the statistics of a running `snakepit serve` as a table, refreshed every\n"
    "SEC seconds (default 2), with calls per second since the last refresh.\n"
    "URL: --url, else SNAKEPIT_URL, else http://127.0.0.1:8080. Ctrl-C quits;\n"
    "-n stops after COUNT refreshes.\n";

/* Sum of calls.total over the pools of a stats document. */
static long long total_calls(const char *json) {
  json_t *doc = json_loads(json, 0, NULL);
  json_t *pools = json_object_get(doc, "pools");
  long long n = 0;
  size_t i;
  json_t *p;
  if (!json_is_array(pools))
    n = json_integer_value(json_object_get(json_object_get(doc, "calls"), "total"));
  json_array_foreach(pools, i, p) n +=
      json_integer_value(json_object_get(json_object_get(p, "calls"), "total"));
  json_decref(doc);
  return n;
}

int sp_cli_top(const sp_cli_opts_t *g, int argc, char **argv) {
  static const struct option opts[] = {{"url", required_argument, NULL, 'u'},
                                       {"interval", required_argument, NULL, 'i'},
                                       {"count", required_argument, NULL, 'n'},
                                       {"help", no_argument, NULL, 'h'},
                                       {NULL, 0, NULL, 0}};
  sp_cli_opts_t o = *g;
  double interval = 2.0;
  long count = 0;
  int c;
  optind = 0;
  while ((c = getopt_long(argc, argv, "+n:h", opts, NULL)) != -1) {
    char *end = NULL;
    switch (c) {
      case 'u': o.url = optarg; break;
      case 'i':
        interval = strtod(optarg, &end);
        if (end == optarg || *end != '\0' || interval < 0.1 || interval > 3600) {
          fprintf(stderr, "snakepit top: --interval needs seconds from 0.1 to 3600, got '%s'\n",
                  optarg);
          return SP_EXIT_USAGE;
        }
        break;
      case 'n':
        count = strtol(optarg, &end, 10);
        if (end == optarg || *end != '\0' || count < 1) {
          fprintf(stderr, "snakepit top: -n needs a positive count, got '%s'\n", optarg);
          return SP_EXIT_USAGE;
        }
        break;
      case 'h': fputs(top_usage, stdout); return SP_EXIT_OK;
      default: fputs(top_usage, stderr); return SP_EXIT_USAGE;
    }
  }
  if (argc - optind > 1) {
    fprintf(stderr, "snakepit top: takes at most one POOL\n\n%s", top_usage);
    return SP_EXIT_USAGE;
  }
  const char *pool = optind < argc ? argv[optind] : NULL;
  if (o.url == NULL) o.url = sp_cli_default_url();
  int tty = isatty(STDOUT_FILENO);
  long long last_calls = -1;
  struct timespec last = {0, 0};
  for (long i = 0; count == 0 || i < count; i++) {
    char *json = NULL;
    int rc = sp_cli_remote_stats(&o, pool, &json);
    if (rc >= 0) return rc;
    char *text = NULL;
    sp_error_t err;
    if (sp_stats_text(json, SP_STATS_TEXT_WORKERS, &text, &err) != 0) {
      fprintf(stderr, "snakepit top: %s\n", err.message);
      free(json);
      return SP_EXIT_WORKER;
    }
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    long long calls = total_calls(json);
    char rate[64] = "";
    if (last_calls >= 0) {
      double dt = (double)(now.tv_sec - last.tv_sec) + (double)(now.tv_nsec - last.tv_nsec) / 1e9;
      snprintf(rate, sizeof(rate), "  %.1f calls/s",
               dt > 0 ? (double)(calls - last_calls) / dt : 0.0);
    }
    last_calls = calls;
    last = now;
    time_t wall = time(NULL);
    char stamp[32];
    strftime(stamp, sizeof(stamp), "%H:%M:%S", localtime(&wall));
    if (tty) fputs("\033[H\033[2J", stdout); /* home, clear: redraw in place */
    printf("snakepit top - %s - %s%s (every %gs, Ctrl-C quits)\n\n%s", o.url, stamp, rate, interval,
           text);
    if (!tty) putchar('\n');
    fflush(stdout);
    sp_free(text);
    free(json);
    if (count != 0 && i + 1 >= count) break;
    struct timespec ts = {(time_t)interval, (long)((interval - (double)(time_t)interval) * 1e9)};
    nanosleep(&ts, NULL);
  }
  return SP_EXIT_OK;
}

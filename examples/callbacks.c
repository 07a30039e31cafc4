/*
 * callbacks.c - a host function that tools call, and calls in a session. It
 * starts the built-in pools, registers "reserve" (hands out numbered seats
 * until none are left), has the showcase's ask_host and relay tools call it,
 * then holds a conversation with the chat tool in one session and ends it.
 * Built like quickstart.c (examples/Makefile, examples/CMakeLists.txt).
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <snakepit.h>

/* The host function's state: its userdata, shared by calls running at once. */
typedef struct {
  pthread_mutex_t lock;
  int next; /* the next seat to hand out */
  int seats;
} venue_t;

/*
 * Host function "reserve": {"name": ...} -> {"seat": N, "left": M, "for": {...}}.
 * It runs on a libuv thread-pool thread, several at once, so the venue is
 * locked. args_json is borrowed for the call and is a JSON object, so it can
 * be embedded as it is; parse it with any JSON library to read its fields.
 */
static int reserve(const char *args_json, char **result_json, sp_error_t *err, void *userdata) {
  venue_t *v = userdata;
  pthread_mutex_lock(&v->lock);
  int seat = v->next <= v->seats ? v->next++ : 0;
  int left = v->seats - v->next + 1;
  pthread_mutex_unlock(&v->lock);
  if (seat == 0) /* a failure: a negative SP_E* code, and err says why */
    return sp_error_setf(err, SP_EINVAL, "no seats left: all %d are reserved", v->seats);
  /* The result is malloc'd JSON text that the library frees once sent. */
  size_t cap = strlen(args_json) + 64;
  char *json = malloc(cap);
  if (json == NULL) return sp_error_setf(err, SP_ENOMEM, "out of memory in reserve");
  snprintf(json, cap, "{\"seat\": %d, \"left\": %d, \"for\": %s}", seat, left, args_json);
  *result_json = json;
  return 0;
}

/* Calls one tool and prints its result or its error; returns the call's code. */
static int show(sp_runtime_t *rt, const char *pool, const char *tool, const char *args,
                const sp_call_opts_t *opts) {
  sp_result_t res;
  int rc = sp_execute(rt, pool, tool, args, opts, &res);
  printf("%s.%s%s%s %s\n", pool, tool, opts && opts->session ? " in session " : "",
         opts && opts->session ? opts->session : "", args);
  if (rc == 0)
    printf("  -> %s\n", res.json);
  else
    printf("  -> %s error (%s): %s\n", sp_category_name(res.error.category),
           sp_err_name(res.error.code), res.error.message);
  sp_result_free(&res); /* the result's JSON and its error */
  return rc;
}

int main(void) {
  sp_runtime_t *rt = NULL;
  sp_error_t err;
  int failures = 0;
  venue_t venue = {PTHREAD_MUTEX_INITIALIZER, 1, 2};

  if (sp_runtime_start_file(&rt, NULL, &err) != 0) { /* the built-in pools */
    fprintf(stderr, "start failed: %s\n%s", err.message, err.traceback);
    sp_error_free(&err);
    return 1;
  }
  if (sp_register_host_function(rt, "reserve", reserve, &venue, &err) != 0) {
    fprintf(stderr, "register failed: %s\n", err.message);
    sp_error_free(&err);
    sp_runtime_stop(rt, 5000);
    return 1;
  }

  printf("A tool calls the host function (current().call_host):\n");
  failures += show(rt, "default", "ask_host",
                   "{\"function\": \"reserve\", \"args\": {\"name\": \"Ada\"}}", NULL) != 0;
  printf("\nA tool calls a tool that calls the host function (current().call):\n");
  failures += show(rt, "hpc_pool", "relay",
                   "{\"pool\": \"default\", \"tool\": \"ask_host\", "
                   "\"args\": {\"function\": \"reserve\", \"args\": {\"name\": \"Grace\"}}}",
                   NULL) != 0;
  printf("\nThe host function fails: the tool gets CallError, the caller its message:\n");
  int rc = show(rt, "default", "ask_host",
                "{\"function\": \"reserve\", \"args\": {\"name\": \"Edsger\"}}", NULL);
  failures += rc != SP_EPYTHON;

  printf("\nA conversation in session \"visitor-1\" (its worker keeps the history):\n");
  sp_call_opts_t opts = SP_CALL_OPTS_INIT;
  opts.session = "visitor-1";            /* borrowed until sp_execute returns */
  opts.session_mode = SP_SESSION_STRICT; /* always the session's worker and state */
  failures += show(rt, "default", "chat", "{\"text\": \"Which seats are left?\"}", &opts) != 0;
  failures += show(rt, "default", "chat", "{\"text\": \"Then two for tomorrow.\"}", &opts) != 0;
  if (sp_session_end(rt, "default", "visitor-1", &err) != 0) {
    fprintf(stderr, "session end failed: %s\n", err.message);
    sp_error_free(&err);
    failures++;
  }
  printf("\nAfter sp_session_end, the same id starts a new session:\n");
  failures += show(rt, "default", "chat", "{\"text\": \"Hello again.\"}", &opts) != 0;

  /* Unregistering waits for calls of it still running: after it, the venue may go. */
  sp_unregister_host_function(rt, "reserve");
  sp_runtime_stop(rt, 5000);
  pthread_mutex_destroy(&venue.lock);
  printf("\n%s\n", failures ? "callbacks: FAILED" : "callbacks: OK");
  return failures ? 1 : 0;
}

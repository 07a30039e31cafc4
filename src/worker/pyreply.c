/*
 * pyreply.c - a call's Python outcome as reply frames: the pending exception
 * described as JSON {type, message, traceback} (by a small Python helper),
 * and ERROR / RESULT / STATS frames within the frame size limit. Called only
 * while attached to the interpreter (pyhost.c keeps that rule).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pyreply.h"
#include "snakepit.h"

static PyObject *g_describe; /* describe(exc) -> JSON {type, message, traceback} */

static const char k_helpers[] =
    "import json, sys, traceback\n"
    "def describe(e, echo=False):\n"
    "    t = type(e)\n"
    "    mod = getattr(t, '__module__', 'builtins')\n"
    "    name = t.__qualname__ if mod in ('builtins', '__main__') else mod + '.' + t.__qualname__\n"
    "    tb = ''.join(traceback.format_exception(t, e, e.__traceback__))\n"
    "    if echo:\n"
    "        sys.stderr.write(tb)\n"
    "    return json.dumps({'type': name, 'message': str(e), 'traceback': tb})\n";

/* Takes the pending exception (clearing it); NULL if none. */
static PyObject *take_exception(void) {
#if PY_VERSION_HEX >= 0x030C0000
  return PyErr_GetRaisedException();
#else
  PyObject *type = NULL, *value = NULL, *tb = NULL;
  PyErr_Fetch(&type, &value, &tb);
  if (type == NULL) return NULL;
  PyErr_NormalizeException(&type, &value, &tb);
  if (tb != NULL && value != NULL) PyException_SetTraceback(value, tb);
  Py_XDECREF(type);
  Py_XDECREF(tb);
  return value;
#endif
}

char *pyreply_fallback(const char *type, const char *message) {
  /* Used only when Python cannot describe its own failure. */
  size_t n = strlen(type) + 2 * strlen(message) + 64;
  char *s = malloc(n);
  if (s == NULL) return NULL;
  size_t k = (size_t)snprintf(s, n, "{\"type\":\"%s\",\"message\":\"", type);
  for (const char *p = message; *p; p++) {
    if (*p == '"' || *p == '\\') s[k++] = '\\';
    s[k++] = (unsigned char)*p < 0x20 ? ' ' : *p;
  }
  snprintf(s + k, n - k, "\",\"traceback\":\"\"}");
  return s;
}

/* Describes and clears the pending exception as JSON; with echo, also writes its
 * traceback to stderr (the manager's log) as plain lines. */
char *pyreply_describe_pending(int echo) {
  PyObject *exc = take_exception();
  if (exc == NULL) return pyreply_fallback("SystemError", "error without exception");
  char *out = NULL;
  if (g_describe != NULL) {
    PyObject *s = PyObject_CallFunction(g_describe, "OO", exc, echo ? Py_True : Py_False);
    if (s != NULL) {
      const char *u = PyUnicode_AsUTF8(s);
      if (u != NULL) out = strdup(u);
      Py_DECREF(s);
    }
    PyErr_Clear();
  }
  if (out == NULL) out = pyreply_fallback("Exception", "exception could not be described");
  Py_DECREF(exc);
  return out;
}

/* Appends an ERROR frame; SP_ENOMEM when out cannot grow. */
int pyreply_error(sp__buf_t *out, uint64_t id, sp__error_kind_t kind, int code,
                  const char *text, size_t len) {
  return sp__buf_append_error(out, id, kind, code, text, len) == 0 ? 0 : SP_ENOMEM;
}

/* Appends an ERROR frame describing (and clearing) the pending Python exception. */
int pyreply_pending_error(sp__buf_t *out, uint64_t id) {
  char *desc = pyreply_describe_pending(0);
  int rc = pyreply_error(out, id, SP__ERRKIND_PYTHON, SP_EPYTHON, desc ? desc : "{}",
                        desc ? strlen(desc) : 2);
  free(desc);
  return rc;
}

/* Appends a RESULT or STATS frame, or an SP_ETOOLARGE error when it exceeds max_body. */
int pyreply_reply(sp__buf_t *out, unsigned type, uint64_t id, const char *text, size_t len,
                  size_t max_body) {
  if (len > max_body) {
    char msg[160];
    int n = snprintf(msg, sizeof(msg),
                     "result of %zu bytes exceeds the frame size limit of %zu bytes (max_frame_bytes)",
                     len, max_body);
    return pyreply_error(out, id, SP__ERRKIND_PROTOCOL, SP_ETOOLARGE, msg, (size_t)n);
  }
  return sp__buf_append_text_frame(out, type, id, text, len) == 0 ? 0 : SP_ENOMEM;
}

int pyreply_init(void) {
  PyObject *globals = PyDict_New();
  if (globals == NULL) return -1;
  PyObject *r = PyRun_String(k_helpers, Py_file_input, globals, globals);
  if (r == NULL) goto fail;
  Py_DECREF(r);
  g_describe = PyDict_GetItemString(globals, "describe");
  Py_XINCREF(g_describe);
  Py_DECREF(globals);
  return g_describe ? 0 : -1;
fail:
  Py_DECREF(globals);
  return -1;
}

void pyreply_fini(void) { Py_CLEAR(g_describe); }

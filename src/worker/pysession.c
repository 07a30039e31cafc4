/*
 * pysession.c - per-session state in the worker: one SessionState dict per
 * session id in snakepit_bridge.context._sessions, shared by the session's
 * calls on every execution thread, and set on the running thread's context
 * for the length of a call. The dict is the SDK's (Python objects), so
 * adapters read and write it with no C in between.
 */
#include "pysession.h"

static PyObject *g_sessions; /* context._sessions: id -> SessionState */
static PyObject *g_state;    /* context.SessionState */
static PyObject *g_local;    /* context._local: the per-thread attributes current() reads */

int pysession_init(PyObject *context_module) {
  g_sessions = PyObject_GetAttrString(context_module, "_sessions");
  g_state = PyObject_GetAttrString(context_module, "SessionState");
  g_local = PyObject_GetAttrString(context_module, "_local");
  if (g_sessions == NULL || g_state == NULL || g_local == NULL) return -1;
  if (!PyDict_Check(g_sessions)) {
    PyErr_SetString(PyExc_TypeError, "snakepit_bridge.context._sessions is not a dict");
    return -1;
  }
  return 0;
}

/* The session's state: found, or created and inserted (atomically: two
 * threads starting the same session get the same dict). New reference. */
static PyObject *state_of(PyObject *id) {
  PyObject *state = NULL;
#if PY_VERSION_HEX >= 0x030D0000
  if (PyDict_GetItemRef(g_sessions, id, &state) != 0) return state; /* found, or error */
  PyObject *fresh = PyObject_CallOneArg(g_state, id);
  if (fresh == NULL) return NULL;
  PyDict_SetDefaultRef(g_sessions, id, fresh, &state);
#else
  state = PyDict_GetItemWithError(g_sessions, id);
  if (state != NULL) return Py_NewRef(state);
  if (PyErr_Occurred()) return NULL;
  PyObject *fresh = PyObject_CallOneArg(g_state, id);
  if (fresh == NULL) return NULL;
  state = Py_XNewRef(PyDict_SetDefault(g_sessions, id, fresh));
#endif
  Py_DECREF(fresh);
  return state;
}

int pysession_enter(const char *id, size_t len, int ephemeral) {
  PyObject *key = PyUnicode_DecodeUTF8(id, (Py_ssize_t)len, NULL);
  if (key == NULL) return -1;
  PyObject *state = ephemeral ? PyObject_CallOneArg(g_state, key) : state_of(key);
  int rc = -1;
  if (state != NULL && PyObject_SetAttrString(g_local, "session_id", key) == 0 &&
      PyObject_SetAttrString(g_local, "session", state) == 0)
    rc = 0;
  Py_XDECREF(state);
  Py_DECREF(key);
  return rc;
}

void pysession_leave(void) {
  if (PyObject_SetAttrString(g_local, "session", Py_None) != 0 ||
      PyObject_SetAttrString(g_local, "session_id", Py_None) != 0)
    PyErr_Clear();
}

void pysession_drop(const char *id, size_t len) {
  PyObject *key = PyUnicode_DecodeUTF8(id, (Py_ssize_t)len, NULL);
  if (key != NULL && PyDict_DelItem(g_sessions, key) != 0) PyErr_Clear(); /* KeyError: none */
  Py_XDECREF(key);
  PyErr_Clear();
}

void pysession_fini(void) {
  Py_CLEAR(g_sessions);
  Py_CLEAR(g_state);
  Py_CLEAR(g_local);
}

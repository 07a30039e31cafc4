/*
 * sp_gil_user.c - a minimal extension module that does not declare
 * free-threading support (no Py_mod_gil slot). Importing it into a
 * free-threaded CPython turns the GIL back on, as a real library that was not
 * ported yet would: the tests use it to see the worker report that live.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

static struct PyModuleDef sp_gil_user_def = {
    PyModuleDef_HEAD_INIT, "sp_gil_user",
    "Test module without free-threading support.", -1, NULL, NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit_sp_gil_user(void) { return PyModule_Create(&sp_gil_user_def); }

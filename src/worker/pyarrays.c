/*
 * pyarrays.c - arrays between the worker's frames and Python: the built-in
 * module `_snakepit_shm` (the output memory's allocator and both regions'
 * address ranges), a CALL's array descriptors turned into Python buffers
 * (read-only memoryviews of the pool's input memory, or bytes for inline
 * arrays), and the descriptors Python gives back for a result turned into a
 * RESULT frame. Every function here runs while its caller (pyhost.c, which
 * owns attaching and detaching) is attached to the interpreter.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "pyarrays.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Set before any call, read-only afterwards. */
static sp__shm_t *g_in;
static sp__shm_t *g_out;

void pyarrays_set_shm(sp__shm_t *in, sp__shm_t *out) {
  g_in = in;
  g_out = out;
}

/* ---- the _snakepit_shm module ------------------------------------------- */

/* alloc(nbytes) -> (offset, writable memoryview), or None when the output
 * memory has no room. The allocator's lock is taken detached. */
static PyObject *shm_alloc(PyObject *self, PyObject *arg) {
  (void)self;
  Py_ssize_t n = PyLong_AsSsize_t(arg);
  if (n < 0 && PyErr_Occurred()) return NULL;
  if (g_out == NULL || n <= 0) Py_RETURN_NONE;
  uint64_t off = 0;
  int rc;
  Py_BEGIN_ALLOW_THREADS rc = sp__shm_alloc(g_out, (size_t)n, &off);
  Py_END_ALLOW_THREADS if (rc != 0) Py_RETURN_NONE;
  PyObject *mv = PyMemoryView_FromMemory((char *)g_out->base + off, n, PyBUF_WRITE);
  if (mv == NULL) {
    sp__shm_free(g_out, off);
    return NULL;
  }
  return Py_BuildValue("(KN)", (unsigned long long)off, mv);
}

/* free(offset) -> bool: whether a block of the output memory started there. */
static PyObject *shm_free(PyObject *self, PyObject *arg) {
  (void)self;
  unsigned long long off = PyLong_AsUnsignedLongLong(arg);
  if (PyErr_Occurred()) return NULL;
  int rc = -1;
  if (g_out != NULL) {
    Py_BEGIN_ALLOW_THREADS rc = sp__shm_free(g_out, off);
    Py_END_ALLOW_THREADS
  }
  return PyBool_FromLong(rc == 0);
}

static PyObject *range_of(const sp__shm_t *r) {
  if (r == NULL) Py_RETURN_NONE;
  return Py_BuildValue("(Kn)", (unsigned long long)(uintptr_t)r->base, (Py_ssize_t)r->size);
}

/* out_range() / in_range() -> (address, size) or None. */
static PyObject *shm_out_range(PyObject *self, PyObject *unused) {
  (void)self;
  (void)unused;
  return range_of(g_out);
}

static PyObject *shm_in_range(PyObject *self, PyObject *unused) {
  (void)self;
  (void)unused;
  return range_of(g_in);
}

static PyMethodDef shm_methods[] = {
    {"alloc", shm_alloc, METH_O, "alloc(nbytes) -> (offset, memoryview) or None"},
    {"free", shm_free, METH_O, "free(offset) -> bool"},
    {"out_range", shm_out_range, METH_NOARGS, "(address, size) of the output memory, or None"},
    {"in_range", shm_in_range, METH_NOARGS, "(address, size) of the input memory, or None"},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef shm_module = {PyModuleDef_HEAD_INIT, "_snakepit_shm",
                                        "Shared memory of this worker (snakepit-worker).", -1,
                                        shm_methods, NULL, NULL, NULL, NULL};

int pyarrays_init(void) {
  PyObject *m = PyModule_Create(&shm_module);
  if (m == NULL) return -1;
#ifdef Py_GIL_DISABLED
  PyUnstable_Module_SetGIL(m, Py_MOD_GIL_NOT_USED);
#endif
  PyObject *modules = PyImport_GetModuleDict(); /* borrowed */
  int rc = PyDict_SetItemString(modules, "_snakepit_shm", m);
  Py_DECREF(m);
  return rc;
}

/* ---- a CALL's arrays -------------------------------------------------------- */

PyObject *pyarrays_inputs(const uint8_t *part, size_t len, int writable, char *why, size_t cap) {
  size_t max = len / 24 + 1;
  if (max > SP__MAX_ARRAYS) max = SP__MAX_ARRAYS;
  sp__array_desc_t *d = calloc(max, sizeof(*d));
  size_t n = 0;
  const uint8_t *inline_base = NULL;
  if (d == NULL) {
    snprintf(why, cap, "worker out of memory reading array descriptors");
    return NULL;
  }
  if (sp__arrays_parse(part, len, g_in ? g_in->size : 0, d, max, &n, &inline_base) != 0) {
    snprintf(why, cap, "malformed array descriptors in the CALL frame");
    free(d);
    return NULL;
  }
  PyObject *list = PyList_New((Py_ssize_t)n);
  for (size_t i = 0; list != NULL && i < n; i++) {
    PyObject *shape = PyTuple_New(d[i].ndim), *buf;
    for (int k = 0; shape != NULL && k < d[i].ndim; k++)
      PyTuple_SET_ITEM(shape, k, PyLong_FromLongLong(d[i].shape[k]));
    const char *src = (const char *)inline_base + d[i].offset;
    if (d[i].where == SP__ARR_SHARED) /* the caller's bytes where they are: no copy */
      buf = PyMemoryView_FromMemory((char *)g_in->base + d[i].offset, (Py_ssize_t)d[i].nbytes,
                                    writable ? PyBUF_WRITE : PyBUF_READ);
    else if (writable) /* the job's bytes die with the call: a tool may keep its array */
      buf = PyByteArray_FromStringAndSize(src, (Py_ssize_t)d[i].nbytes);
    else
      buf = PyBytes_FromStringAndSize(src, (Py_ssize_t)d[i].nbytes);
    PyObject *item = shape && buf ? Py_BuildValue("(s#iOO)", d[i].name, (Py_ssize_t)d[i].name_len,
                                                  d[i].dtype, shape, buf)
                                  : NULL;
    Py_XDECREF(shape);
    Py_XDECREF(buf);
    if (item == NULL) {
      Py_CLEAR(list);
      break;
    }
    PyList_SET_ITEM(list, (Py_ssize_t)i, item);
  }
  free(d);
  if (list == NULL) snprintf(why, cap, "worker could not build the array arguments");
  return list;
}

/* ---- a result's arrays -------------------------------------------------------- */

/* Frees the output blocks of the first n descriptors (the frame will not go out). */
static void free_shared(const sp__array_desc_t *d, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (d[i].where == SP__ARR_SHARED && g_out != NULL) sp__shm_free(g_out, d[i].offset);
}

/* Fills d from one (name, dtype, shape, where, offset | buffer, nbytes) tuple. */
static int one_desc(PyObject *t, sp__array_desc_t *d, Py_buffer *view, int *have_view) {
  PyObject *shape, *place;
  const char *name;
  Py_ssize_t name_len;
  int dtype, where;
  unsigned long long nbytes;
  *have_view = 0;
  if (!PyArg_ParseTuple(t, "s#iOiOK", &name, &name_len, &dtype, &shape, &where, &place, &nbytes))
    return -1;
  if (!PyTuple_Check(shape) || PyTuple_GET_SIZE(shape) > SP_MAX_NDIM || name_len == 0 ||
      name_len > SP__MAX_ARRAY_NAME || sp_dtype_size(dtype) == 0) {
    PyErr_SetString(PyExc_ValueError, "bad array descriptor");
    return -1;
  }
  d->name = name;
  d->name_len = (size_t)name_len;
  d->dtype = dtype;
  d->ndim = (int)PyTuple_GET_SIZE(shape);
  for (int k = 0; k < d->ndim; k++) {
    d->shape[k] = PyLong_AsLongLong(PyTuple_GET_ITEM(shape, k));
    if (d->shape[k] == -1 && PyErr_Occurred()) return -1;
  }
  d->nbytes = nbytes;
  d->where = where;
  if (sp__array_nbytes(dtype, d->ndim, d->shape) != (int64_t)nbytes) {
    PyErr_SetString(PyExc_ValueError, "array descriptor: shape and nbytes disagree");
    return -1;
  }
  if (where == SP__ARR_SHARED) {
    d->offset = PyLong_AsUnsignedLongLong(place);
    if (PyErr_Occurred()) return -1;
    if (g_out == NULL || !sp__shm_contains(g_out, d->offset, nbytes)) {
      PyErr_SetString(PyExc_ValueError, "array descriptor outside the output memory");
      return -1;
    }
    return 0;
  }
  if (PyObject_GetBuffer(place, view, PyBUF_C_CONTIGUOUS) != 0) return -1;
  *have_view = 1;
  if ((unsigned long long)view->len != nbytes) {
    PyErr_SetString(PyExc_ValueError, "inline array: buffer size and nbytes disagree");
    return -1;
  }
  d->where = SP__ARR_INLINE;
  d->data = view->buf;
  return 0;
}

int pyarrays_append_result(sp__buf_t *out, uint64_t id, const char *json, size_t json_len,
                           PyObject *list, size_t max_body, char *why, size_t cap) {
  Py_ssize_t n = PyList_Size(list);
  if (n < 0 || n > SP__MAX_ARRAYS) {
    PyErr_Clear();
    snprintf(why, cap, "a result may hold at most %d arrays", SP__MAX_ARRAYS);
    return SP_EBADARGS;
  }
  sp__array_desc_t *d = calloc((size_t)n + 1, sizeof(*d));
  Py_buffer *views = calloc((size_t)n + 1, sizeof(*views));
  int *have = calloc((size_t)n + 1, sizeof(*have));
  int rc = 0;
  Py_ssize_t done = 0;
  if (d == NULL || views == NULL || have == NULL) {
    rc = SP_ENOMEM;
    snprintf(why, cap, "worker out of memory building the result");
    goto out;
  }
  for (; done < n; done++) {
    if (one_desc(PyList_GET_ITEM(list, done), &d[done], &views[done], &have[done]) != 0) {
      PyErr_Clear();
      rc = SP_EPROTOCOL;
      snprintf(why, cap, "the host could not describe array %zd of the result", done);
      done++;
      goto out;
    }
  }
  size_t body = 4 + json_len + sp__arrays_size(d, (size_t)n);
  if (body > max_body) {
    rc = SP_ETOOLARGE;
    snprintf(why, cap,
             "result of %zu bytes (JSON and arrays that did not fit in max_shared_memory) exceeds "
             "the frame size limit of %zu bytes (max_frame_bytes)",
             body, max_body);
    goto out;
  }
  if (sp__buf_append_result_arrays(out, id, json, json_len, d, (size_t)n) != 0) {
    rc = SP_ENOMEM;
    snprintf(why, cap, "worker out of memory building the result");
  }
out:
  if (rc != 0 && d != NULL) free_shared(d, (size_t)done);
  for (Py_ssize_t i = 0; have != NULL && i < n; i++)
    if (have[i]) PyBuffer_Release(&views[i]);
  free(d);
  free(views);
  free(have);
  return rc;
}

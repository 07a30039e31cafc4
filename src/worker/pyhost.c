/*
 * pyhost.c - embedded CPython for snakepit-worker: interpreter start, adapter
 * loading, per-thread thread states, tool invocation and worker reports. Every
 * attach to and detach from the interpreter of the worker lives here (the
 * helpers it calls while attached: pyarrays.c converts arrays, pysession.c
 * keeps session state, pyreply.c turns outcomes into reply frames). The rule: a thread is attached to the interpreter
 * (holds the GIL on a GIL build) only while it runs Python, and never blocks on
 * a socket, queue or lock of ours while attached. On a GIL build a thread that
 * blocks while attached stalls every other thread; on a free-threaded build it
 * stalls every stop-the-world pause (garbage collection, for one), and with it
 * any thread that needs one, possibly the very thread that holds our lock. So
 * every lock of ours is taken through lock_detached(), which enforces the rule.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "pyhost.h"

#include "pyarrays.h"
#include "pyreply.h"
#include "pysession.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <time.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "snakepit.h"

struct pyhost_thread_s {
  PyGILState_STATE gstate;
  PyThreadState *ts;
  unsigned long ident;
  PyObject *ctx;        /* this thread's snakepit_bridge.context.CallContext */
  pthread_mutex_t mu;   /* guards the three fields below; taken only while detached */
  pthread_cond_t cond;  /* signalled when cancel_pending drops to 0 */
  uint64_t current;     /* request id running now, 0 when idle */
  int cancel_pending;   /* a canceller claimed the current call and is delivering */
  int cancel_sent;      /* the current call was cancelled: clean up after it */
  atomic_int credit;    /* chunks the current stream may still send (pyhost_credit) */
};

/* Set once by pyhost_start on the main thread, read-only afterwards. */
static PyObject *g_host_module; /* snakepit_bridge._host */
static PyObject *g_host;     /* snakepit_bridge._host.Host instance */
static PyObject *g_invoke;   /* bound Host.invoke */
static PyObject *g_report;   /* bound Host.report */
static PyObject *g_stream_next;  /* bound Host.stream_next */
static PyObject *g_stream_close; /* bound Host.stream_close */
static PyObject *g_register; /* bound Host.register_thread */
static PyObject *g_cancelled;/* context.CallCancelled, raised into cancelled calls */
static PyObject *g_context_current; /* context.current(): each thread's CallContext */
static PyThreadState *g_main_ts;
/* Sends a nested call and waits for its reply (main.c; pyhost_opts_t.hostcall). */
static int (*g_hostcall)(const sp__hostcall_view_t *req, sp__buf_t *reply, int *code);
/* The execution thread's own record, for nested calls made from its tool. */
static _Thread_local pyhost_thread_t *tl_self;

static _Atomic uint64_t g_attach_wait_ns;
static _Atomic uint64_t g_calls;
/* Whether the interpreter runs with the GIL now. A free-threaded build turns
 * it on at run time when code imports an extension module that does not
 * declare free-threading support; refreshed after every call. */
static atomic_int g_gil_enabled = 1;
#ifdef Py_GIL_DISABLED
static PyObject *g_is_gil_enabled; /* sys._is_gil_enabled */
#endif

void pyhost_counters(uint64_t *attach_wait_ns, uint64_t *calls) {
  *attach_wait_ns = atomic_load_explicit(&g_attach_wait_ns, memory_order_relaxed);
  *calls = atomic_load_explicit(&g_calls, memory_order_relaxed);
}

int pyhost_gil_enabled(void) { return atomic_load_explicit(&g_gil_enabled, memory_order_relaxed); }

/* Re-reads the GIL state. Attached; g_is_gil_enabled was set by pyhost_start
 * before any execution thread existed. */
static void refresh_gil_state(void) {
#ifdef Py_GIL_DISABLED
  if (g_is_gil_enabled == NULL) return;
  PyObject *r = PyObject_CallNoArgs(g_is_gil_enabled);
  if (r != NULL) atomic_store_explicit(&g_gil_enabled, r == Py_True, memory_order_relaxed);
  Py_XDECREF(r);
  PyErr_Clear();
#endif
}

/*
 * Takes one of our mutexes. The caller must be detached: an attached thread
 * waiting here could hold up a stop-the-world pause (or keep the GIL) while
 * the mutex's holder waits for that pause (or the GIL) to end, a deadlock. A
 * violation is a bug in this file, reported at once instead of hanging later.
 */
static void lock_detached(pthread_mutex_t *mu) {
  if (PyGILState_Check()) {
    fprintf(stderr, "snakepit-worker: internal error: a lock taken while attached to Python\n");
    abort();
  }
  pthread_mutex_lock(mu);
}

/* Registry of execution threads, for cancellation by request id. */
static pthread_mutex_t g_threads_mu = PTHREAD_MUTEX_INITIALIZER;
static pyhost_thread_t **g_threads;
static size_t g_thread_count;

static PyObject *string_list(const char *const *items, size_t n) {
  PyObject *list = PyList_New((Py_ssize_t)n);
  if (list == NULL) return NULL;
  for (size_t i = 0; i < n; i++) {
    PyObject *s = PyUnicode_DecodeFSDefault(items[i]);
    if (s == NULL) {
      Py_DECREF(list);
      return NULL;
    }
    PyList_SET_ITEM(list, (Py_ssize_t)i, s);
  }
  return list;
}

static char *build_hello(const pyhost_opts_t *o, const char *manifest) {
  const char *ver = Py_GetVersion();
  size_t vlen = strcspn(ver, " ");
#ifdef Py_GIL_DISABLED
  const char *ft = "true";
#else
  const char *ft = "false";
#endif
  size_t n = strlen(manifest) + strlen(o->worker_id) + vlen + 256;
  char *s = malloc(n);
  if (s == NULL) return NULL;
  snprintf(s, n,
           "{\"protocol\":%u,\"pid\":%ld,\"python_version\":\"%.*s\",\"gil_enabled\":%s,"
           "\"free_threaded_build\":%s,\"threads\":%d,\"worker_id\":\"%s\",\"manifest\":%s}",
           SP__PROTOCOL_VERSION, (long)getpid(), (int)vlen, ver,
           pyhost_gil_enabled() ? "true" : "false", ft, o->threads, o->worker_id, manifest);
  return s;
}

/* Starts the interpreter, prepends our paths to sys.path and loads the helpers.
 * Returns 0 with the GIL held, or fills *failure. */
static int start_interpreter(const pyhost_opts_t *o, char **failure) {
  PyConfig config;
  PyConfig_InitPythonConfig(&config);
  config.install_signal_handlers = 0; /* the manager signals us; Python must not catch them */
  config.parse_argv = 0;
  config.buffered_stdio = 0; /* tool output reaches the manager's log line by line */
  /* Without a program name CPython looks for "python3" on PATH and derives its
   * prefix from whatever it finds there (a pyenv or venv interpreter, say), then
   * loads that interpreter's standard library. Naming our own executable makes it
   * fall back to the prefix libpython was built for. */
  char exe[4096];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
  PyStatus st;
  if (n > 0) {
    exe[n] = '\0';
    st = PyConfig_SetBytesString(&config, &config.program_name, exe);
    if (PyStatus_Exception(st)) {
      PyConfig_Clear(&config);
      *failure = pyreply_fallback("RuntimeError", "cannot set the program name");
      return SP_ESTARTUP;
    }
  }
  st = Py_InitializeFromConfig(&config);
  PyConfig_Clear(&config);
  if (PyStatus_Exception(st)) {
    *failure = pyreply_fallback("RuntimeError", st.err_msg ? st.err_msg : "Python failed to start");
    return SP_ESTARTUP;
  }
  if (pyreply_init() != 0) goto fail;

  /* Prepend our paths in order: the SDK, the config's python_path, its folder. */
  PyObject *paths = PySys_GetObject("path"); /* borrowed */
  if (paths == NULL || !PyList_Check(paths)) goto fail;
  for (size_t i = o->path_count; i-- > 0;) {
    PyObject *p = PyUnicode_DecodeFSDefault(o->paths[i]);
    if (p == NULL || PyList_Insert(paths, 0, p) != 0) {
      Py_XDECREF(p);
      goto fail;
    }
    Py_DECREF(p);
  }
  if (pyarrays_init() != 0) goto fail;
  g_host_module = PyImport_ImportModule("snakepit_bridge._host");
  if (g_host_module == NULL) goto fail;
  return 0;
fail:
  *failure = pyreply_describe_pending(1);
  return SP_ESTARTUP;
}

int pyhost_preload(const pyhost_opts_t *o, char **failure) {
  *failure = NULL;
  int rc = start_interpreter(o, failure);
  if (rc != 0) return rc;
  PyObject *r = PyObject_CallMethod(g_host_module, "preload", "sssi", o->adapter, o->pool,
                                    o->profile, o->threads);
  if (r == NULL) {
    *failure = pyreply_describe_pending(1);
    return SP_ESTARTUP;
  }
  Py_DECREF(r);
  return 0;
}

int pyhost_choose_profile(const pyhost_opts_t *o, char **json, char **failure) {
  *json = *failure = NULL;
  int rc = start_interpreter(o, failure);
  if (rc != 0) return rc;
  PyObject *r = PyObject_CallMethod(g_host_module, "choose_profile", "ss", o->adapter, o->pool);
  const char *s = r ? PyUnicode_AsUTF8(r) : NULL;
  if (s == NULL) {
    Py_XDECREF(r);
    *failure = pyreply_describe_pending(1);
    return SP_ESTARTUP;
  }
  *json = strdup(s);
  Py_DECREF(r);
  return *json ? 0 : SP_ENOMEM;
}

int pyhost_preload_adapter(const pyhost_opts_t *o, char **failure) {
  *failure = NULL;
  PyObject *args = string_list(o->adapter_args, o->adapter_arg_count);
  PyObject *r = args ? PyObject_CallMethod(g_host_module, "preload_instance", "O", args) : NULL;
  Py_XDECREF(args);
  if (r == NULL) {
    *failure = pyreply_describe_pending(1);
    return SP_ESTARTUP;
  }
  Py_DECREF(r);
  return 0;
}

pid_t pyhost_fork(void) {
  /* The GIL is held (pyhost_preload kept it): PyOS_BeforeFork takes the import
   * lock, so the child never inherits it or the GIL mid-use; AfterFork_Child
   * runs os.register_at_fork hooks (random reseeds, for one). */
  PyOS_BeforeFork();
  pid_t pid = fork();
  int saved = errno;
  if (pid == 0) PyOS_AfterFork_Child();
  else PyOS_AfterFork_Parent();
  errno = saved;
  return pid;
}

/*
 * context._hostcall(kind, pool, name, args_json) -> (code, text): a nested
 * call of the tool running on this thread (context.py turns the outcome into
 * a value or CallError). The thread waits detached, so other threads run
 * Python meanwhile, and wakes with CallCancelled when its own call is
 * cancelled while it waits.
 */
static PyObject *py_hostcall(PyObject *self, PyObject *args) {
  (void)self;
  int kind;
  const char *pool, *name, *a;
  Py_ssize_t pl, nl, al;
  if (!PyArg_ParseTuple(args, "is#s#s#", &kind, &pool, &pl, &name, &nl, &a, &al)) return NULL;
  pyhost_thread_t *t = tl_self;
  /* current is written only by this thread, so it reads it without t->mu. */
  if (t == NULL || g_hostcall == NULL || t->current == 0) {
    PyErr_SetString(PyExc_RuntimeError,
                     "nested calls can only be made from a tool, on the thread running its call");
    return NULL;
  }
  sp__hostcall_view_t v = {.parent = t->current, .kind = kind, .pool = pool, .pool_len = (size_t)pl,
                           .name = name, .name_len = (size_t)nl, .args = a, .args_len = (size_t)al};
  sp__buf_t reply = {0};
  int code = 0;
  t->ts = PyEval_SaveThread();
  int rc = g_hostcall(&v, &reply, &code);
  PyEval_RestoreThread(t->ts);
  PyObject *r = NULL;
  if (rc == SP_ECANCELLED) {
    /* Raised here, once: the CallCancelled the canceller queued would fire again. */
    PyThreadState_SetAsyncExc(t->ident, NULL);
    PyErr_SetString(g_cancelled, "the call was cancelled while it waited for a nested call");
  } else if (rc == SP_EINVAL) {
    PyErr_SetString(PyExc_ValueError, "pool or name of a nested call longer than 65535 bytes");
  } else if (rc == SP_ETOOLARGE) {
    PyErr_SetString(PyExc_ValueError,
                    "the arguments of the nested call exceed this pool's max_frame_bytes");
  } else if (rc != 0) {
    PyErr_NoMemory();
  } else {
    r = Py_BuildValue("(is#)", code, reply.data ? (const char *)reply.data : "",
                      (Py_ssize_t)reply.len);
  }
  sp__buf_free(&reply);
  return r;
}

static PyMethodDef k_hostcall_def = {"_hostcall", py_hostcall, METH_VARARGS,
                                     "Nested call of the running tool (see context.py)."};

/* Gives context.py its way to make nested calls. Attached. */
static int install_hostcall(PyObject *ctx, const pyhost_opts_t *o) {
  g_hostcall = o->hostcall;
  PyObject *fn = PyCFunction_New(&k_hostcall_def, NULL);
  int rc = fn ? PyObject_SetAttrString(ctx, "_hostcall", fn) : -1;
  Py_XDECREF(fn);
  return rc;
}

int pyhost_start(const pyhost_opts_t *o, char **hello, char **failure) {
  PyObject *load = NULL, *args = NULL, *manifest = NULL, *ctx = NULL;
  int rc = SP_ESTARTUP;
  *hello = *failure = NULL;

  /* A forked worker inherits the interpreter its fork server started. */
  if (!Py_IsInitialized() && (rc = start_interpreter(o, failure)) != 0) return rc;
  rc = SP_ESTARTUP;
  if (g_host_module == NULL) goto fail;
  load = PyObject_GetAttrString(g_host_module, "load");
  if (load == NULL) goto fail;
  args = string_list(o->adapter_args, o->adapter_arg_count);
  if (args == NULL) goto fail;
  g_host = PyObject_CallFunction(load, "sOsssi", o->adapter, args, o->worker_id, o->pool,
                                 o->profile, o->threads);
  if (g_host == NULL) goto fail;
  g_invoke = PyObject_GetAttrString(g_host, "invoke");
  g_report = PyObject_GetAttrString(g_host, "report");
  g_register = PyObject_GetAttrString(g_host, "register_thread");
  g_stream_next = PyObject_GetAttrString(g_host, "stream_next");
  g_stream_close = PyObject_GetAttrString(g_host, "stream_close");
  if (g_invoke == NULL || g_report == NULL || g_register == NULL || g_stream_next == NULL ||
      g_stream_close == NULL)
    goto fail;
  ctx = PyImport_ImportModule("snakepit_bridge.context");
  if (ctx == NULL || (g_cancelled = PyObject_GetAttrString(ctx, "CallCancelled")) == NULL ||
      (g_context_current = PyObject_GetAttrString(ctx, "current")) == NULL ||
      pysession_init(ctx) != 0)
    goto fail;
  if (install_hostcall(ctx, o) != 0) goto fail;
  manifest = PyObject_CallMethod(g_host, "manifest", NULL);
  if (manifest == NULL) goto fail;
#ifdef Py_GIL_DISABLED
  g_is_gil_enabled = PySys_GetObject("_is_gil_enabled"); /* borrowed from sys */
  Py_XINCREF(g_is_gil_enabled);
#endif
  refresh_gil_state(); /* the adapter's imports may have turned the GIL on */
  const char *m = PyUnicode_AsUTF8(manifest);
  if (m == NULL) goto fail;
  *hello = build_hello(o, m);
  rc = *hello ? 0 : SP_ENOMEM;
  goto done;

fail:
  *failure = pyreply_describe_pending(1);
done:
  Py_XDECREF(manifest);
  Py_XDECREF(ctx);
  Py_XDECREF(args);
  Py_XDECREF(load);
  /* Execution threads attach on their own; the main thread lets go until pyhost_finish. */
  g_main_ts = PyEval_SaveThread();
  return rc;
}

pyhost_thread_t *pyhost_thread_enter(const char *name) {
  pyhost_thread_t *t = calloc(1, sizeof(*t));
  if (t == NULL) return NULL;
  pthread_mutex_init(&t->mu, NULL);
  pthread_cond_init(&t->cond, NULL);
  /* PyGILState_Ensure (not a bare PyThreadState_New) so that extension code that
   * itself calls PyGILState_Ensure, as NumPy does, finds this thread's state. */
  t->gstate = PyGILState_Ensure();
  t->ident = PyThread_get_thread_ident();
  PyObject *r = PyObject_CallFunction(g_register, "s", name);
  if (r == NULL) PyErr_Print();
  Py_XDECREF(r);
  t->ctx = PyObject_CallNoArgs(g_context_current);
  if (t->ctx == NULL) PyErr_Print();
  t->ts = PyEval_SaveThread();
  tl_self = t;

  lock_detached(&g_threads_mu);
  pyhost_thread_t **nt = realloc(g_threads, (g_thread_count + 1) * sizeof(*nt));
  if (nt != NULL) {
    g_threads = nt;
    g_threads[g_thread_count++] = t;
  }
  pthread_mutex_unlock(&g_threads_mu);
  return t;
}

void pyhost_thread_leave(pyhost_thread_t *t) {
  if (t == NULL) return;
  lock_detached(&g_threads_mu);
  for (size_t i = 0; i < g_thread_count; i++) {
    if (g_threads[i] == t) {
      g_threads[i] = g_threads[--g_thread_count];
      break;
    }
  }
  pthread_mutex_unlock(&g_threads_mu);
  PyEval_RestoreThread(t->ts);
  Py_CLEAR(t->ctx);
  PyGILState_Release(t->gstate);
  pthread_cond_destroy(&t->cond);
  pthread_mutex_destroy(&t->mu);
  free(t);
}

/* Host.invoke statuses (_host.py: STATUS_*). */
enum {
  HOST_OK = 0,
  HOST_INVALID = 1,
  HOST_ERROR = 2,
  HOST_NO_TOOL = 3,
  HOST_BAD_JSON = 4,
  HOST_STREAM = 5,
  HOST_END = 6
};

/* Whether the running call was cancelled (a CANCEL claimed it). Attached; the
 * flag is read detached, as its mutex requires. */
static int call_cancelled(pyhost_thread_t *t) {
  t->ts = PyEval_SaveThread();
  lock_detached(&t->mu);
  while (t->cancel_pending) pthread_cond_wait(&t->cond, &t->mu);
  int c = t->cancel_sent;
  pthread_mutex_unlock(&t->mu);
  PyEval_RestoreThread(t->ts);
  return c;
}

/* Waits (detached) until the stream has credit or the call is cancelled; 1 when cancelled. */
static int wait_credit(pyhost_thread_t *t) {
  t->ts = PyEval_SaveThread();
  lock_detached(&t->mu);
  while ((atomic_load(&t->credit) <= 0 && !t->cancel_sent) || t->cancel_pending)
    pthread_cond_wait(&t->cond, &t->mu);
  int c = t->cancel_sent;
  pthread_mutex_unlock(&t->mu);
  PyEval_RestoreThread(t->ts);
  return c;
}

/* Closes a stream's iterator (Host.stream_close). Attached. */
static void close_items(PyObject *items) {
  PyObject *c = PyObject_CallOneArg(g_stream_close, items);
  Py_XDECREF(c);
  PyErr_Clear();
}

/*
 * Streams the items of a streaming call: each one as a CHUNK frame through
 * call->send the moment it is produced, at most SP__STREAM_WINDOW of them
 * unacknowledged (the manager grants more with CHUNK frames as its consumer
 * takes them), then the closing RESULT {"chunks": N} or ERROR into out. A
 * cancellation closes the generator (GeneratorExit: its finally blocks run)
 * and ends the stream with SP_ECANCELLED. Attached.
 */
static int run_stream(pyhost_thread_t *t, const pyhost_call_t *call, PyObject *items,
                      size_t max_body, sp__buf_t *out) {
  uint64_t id = call->id;
  uint64_t sent = 0;
  int cancelled = 0, rc = 0;
  sp__buf_t chunk = {0};
  for (;;) {
    if (atomic_load_explicit(&t->credit, memory_order_acquire) <= 0 && wait_credit(t)) {
      cancelled = 1;
      break;
    }
    PyObject *r = PyObject_CallOneArg(g_stream_next, items);
    long status = -1;
    Py_ssize_t n = 0;
    const char *text = NULL;
    if (r != NULL && PyTuple_Check(r) && PyTuple_GET_SIZE(r) == 2) {
      status = PyLong_AsLong(PyTuple_GET_ITEM(r, 0));
      text = PyUnicode_AsUTF8AndSize(PyTuple_GET_ITEM(r, 1), &n);
    }
    if (status == HOST_OK && text != NULL && (size_t)n <= max_body) {
      chunk.len = 0;
      if (sp__buf_append_chunk(&chunk, id, text, (size_t)n) != 0) {
        Py_DECREF(r);
        rc = SP_ENOMEM;
        break;
      }
      Py_DECREF(r);
      atomic_fetch_sub_explicit(&t->credit, 1, memory_order_acq_rel);
      sent++;
      /* Detached: a consumer that falls behind fills the socket, and a
       * thread blocked on it must not hold up the others. */
      t->ts = PyEval_SaveThread();
      call->send(chunk.data, chunk.len);
      PyEval_RestoreThread(t->ts);
      continue;
    }
    if (status == HOST_END) {
      char done[48];
      int k = snprintf(done, sizeof(done), "{\"chunks\":%llu}", (unsigned long long)sent);
      rc = pyreply_reply(out, SP__FRAME_RESULT, id, done, (size_t)k, max_body);
    } else if (call_cancelled(t)) {
      cancelled = 1;
    } else if (status == HOST_OK) {
      char msg[160];
      int k = snprintf(msg, sizeof(msg),
                       "chunk %llu of %zd bytes exceeds the frame size limit of %zu bytes "
                       "(max_frame_bytes)", (unsigned long long)sent + 1, n, max_body);
      rc = pyreply_error(out, id, SP__ERRKIND_PROTOCOL, SP_ETOOLARGE, msg, (size_t)k);
    } else if (status == HOST_ERROR && text != NULL) {
      rc = pyreply_error(out, id, SP__ERRKIND_PYTHON, SP_EPYTHON, text, (size_t)n);
    } else {
      rc = pyreply_pending_error(out, id);
    }
    Py_XDECREF(r);
    PyErr_Clear();
    if (!cancelled) {
      /* Ended early (error, oversized chunk): still run its finally blocks. */
      close_items(items);
    }
    break;
  }
  if (cancelled) {
    /* The CallCancelled meant for this call must not fire inside close(). */
    PyThreadState_SetAsyncExc(t->ident, NULL);
    PyErr_Clear();
    close_items(items);
    char msg[96];
    int k = snprintf(msg, sizeof(msg), "stream cancelled after %llu chunks",
                     (unsigned long long)sent);
    out->len = 0;
    rc = pyreply_error(out, id, SP__ERRKIND_PROTOCOL, SP_ECANCELLED, msg, (size_t)k);
  } else if (rc == SP_ENOMEM) {
    close_items(items);
  }
  sp__buf_free(&chunk);
  return rc;
}

void pyhost_set_shm(sp__shm_t *in, sp__shm_t *out) { pyarrays_set_shm(in, out); }

int pyhost_invoke(pyhost_thread_t *t, const pyhost_call_t *call, size_t max_body, sp__buf_t *out) {
  int rc = 0;
  uint64_t id = call->id;
  char why[256];
  lock_detached(&t->mu);
  t->current = id;
  pthread_mutex_unlock(&t->mu);
  uint64_t t0 = sp__now_ns();
  PyEval_RestoreThread(t->ts);
  atomic_fetch_add_explicit(&g_attach_wait_ns, sp__now_ns() - t0, memory_order_relaxed);

  /* Host.invoke(tool, args_json[, arrays, lists]): the short form when the
   * call carries no arrays and wants no lists, the common case. */
  PyObject *argv[5] = {PyUnicode_FromStringAndSize(call->tool, (Py_ssize_t)call->tool_len),
                       PyUnicode_FromStringAndSize(call->args, (Py_ssize_t)call->args_len), NULL,
                       NULL, NULL};
  size_t nargs = 2;
  PyObject *r = NULL;
  if (argv[0] == NULL || argv[1] == NULL) {
    PyErr_Clear();
    static const char msg[] = "tool name and arguments must be valid UTF-8";
    rc = pyreply_error(out, id, SP__ERRKIND_VALIDATION, SP_EBADJSON, msg, sizeof(msg) - 1);
    goto done;
  }
  if (call->flags & (SP__FLAG_ARRAYS | SP__FLAG_LISTS | SP__FLAG_STREAM)) {
    if (call->flags & SP__FLAG_ARRAYS) {
      argv[2] = pyarrays_inputs(call->arrays, call->arrays_len,
                                (call->flags & SP__FLAG_WRITABLE) != 0, why, sizeof(why));
      if (argv[2] == NULL) {
        PyErr_Clear();
        rc = pyreply_error(out, id, SP__ERRKIND_PROTOCOL, SP_EPROTOCOL, why, strlen(why));
        goto done;
      }
    } else {
      argv[2] = Py_NewRef(Py_None);
    }
    argv[3] = PyBool_FromLong((call->flags & SP__FLAG_LISTS) != 0);
    nargs = 4;
    if (call->flags & SP__FLAG_STREAM) {
      argv[4] = Py_NewRef(Py_True);
      nargs = 5;
    }
  }
  if (call->session != NULL &&
      pysession_enter(call->session, call->session_len,
                      (call->session_flags & SP__SESSION_EPHEMERAL) != 0) != 0) {
    rc = pyreply_pending_error(out, id);
    goto done;
  }
  r = PyObject_Vectorcall(g_invoke, argv, nargs, NULL);
  if (r != NULL && PyTuple_Check(r) && PyTuple_GET_SIZE(r) == 2 &&
      PyLong_Check(PyTuple_GET_ITEM(r, 0)) && PyLong_AsLong(PyTuple_GET_ITEM(r, 0)) == HOST_STREAM &&
      call->send != NULL) {
    atomic_store(&t->credit, SP__STREAM_WINDOW);
    rc = run_stream(t, call, PyTuple_GET_ITEM(r, 1), max_body, out);
    goto done;
  }
  long status = -1;
  PyObject *payload = NULL, *arrays = NULL;
  if (r != NULL && PyTuple_Check(r) && (PyTuple_GET_SIZE(r) == 2 || PyTuple_GET_SIZE(r) == 3)) {
    status = PyLong_AsLong(PyTuple_GET_ITEM(r, 0));
    payload = PyTuple_GET_ITEM(r, 1);
    if (PyTuple_GET_SIZE(r) == 3 && PyList_Check(PyTuple_GET_ITEM(r, 2)))
      arrays = PyTuple_GET_ITEM(r, 2);
  }
  Py_ssize_t n = 0;
  const char *text = payload ? PyUnicode_AsUTF8AndSize(payload, &n) : NULL;
  if (text == NULL || status < HOST_OK || status > HOST_BAD_JSON) {
    /* Host.invoke never raises by contract; this covers a cancellation landing
     * between its try block and its return. */
    rc = pyreply_pending_error(out, id);
  } else if (status == HOST_OK && arrays != NULL && PyList_GET_SIZE(arrays) > 0) {
    int arc = pyarrays_append_result(out, id, text, (size_t)n, arrays, max_body, why, sizeof(why));
    if (arc == SP_ENOMEM) rc = SP_ENOMEM;
    else if (arc != 0) rc = pyreply_error(out, id, SP__ERRKIND_PROTOCOL, arc, why, strlen(why));
  } else if (status == HOST_OK) {
    rc = pyreply_reply(out, SP__FRAME_RESULT, id, text, (size_t)n, max_body);
  } else if (status == HOST_ERROR) {
    rc = pyreply_error(out, id, SP__ERRKIND_PYTHON, SP_EPYTHON, text, (size_t)n);
  } else {
    int code = status == HOST_NO_TOOL ? SP_ENOTOOL
               : status == HOST_BAD_JSON ? SP_EBADJSON : SP_EBADARGS;
    rc = pyreply_error(out, id, SP__ERRKIND_VALIDATION, code, text, (size_t)n);
  }
done:
  Py_XDECREF(r);
  for (size_t i = 0; i < 5; i++) Py_XDECREF(argv[i]);
  if (call->session != NULL) pysession_leave();
  refresh_gil_state();
  PyErr_Clear();
  t->ts = PyEval_SaveThread();

  /* Detached: no canceller can pick this call any more, and one that already
   * did finishes delivering (it needs to attach, which it can now) first. */
  lock_detached(&t->mu);
  t->current = 0;
  while (t->cancel_pending) pthread_cond_wait(&t->cond, &t->mu);
  int cancelled = t->cancel_sent;
  t->cancel_sent = 0;
  pthread_mutex_unlock(&t->mu);
  if (cancelled) {
    /* A cancellation that lost the race with completion must not hit the next
     * call, and the next call starts with ctx.cancelled false. */
    PyEval_RestoreThread(t->ts);
    PyThreadState_SetAsyncExc(t->ident, NULL);
    if (t->ctx != NULL && PyObject_SetAttrString(t->ctx, "cancelled", Py_False) != 0)
      PyErr_Clear();
    PyErr_Clear();
    t->ts = PyEval_SaveThread();
  }
  atomic_fetch_add_explicit(&g_calls, 1, memory_order_relaxed);
  return rc;
}

void pyhost_session_end(pyhost_thread_t *t, const char *id, size_t len) {
  PyEval_RestoreThread(t->ts);
  pysession_drop(id, len);
  t->ts = PyEval_SaveThread();
}

int pyhost_report(pyhost_thread_t *t, uint64_t id, const char *args, size_t args_len,
                  size_t max_body, sp__buf_t *out) {
  int rc;
  PyEval_RestoreThread(t->ts);
  PyObject *a = PyUnicode_FromStringAndSize(args, (Py_ssize_t)args_len);
  PyObject *r = a ? PyObject_CallOneArg(g_report, a) : NULL;
  Py_ssize_t n = 0;
  const char *text = r ? PyUnicode_AsUTF8AndSize(r, &n) : NULL;
  if (text != NULL) {
    rc = pyreply_reply(out, SP__FRAME_STATS, id, text, (size_t)n, max_body);
  } else {
    /* Host.report never raises by contract; report what happened anyway. */
    rc = pyreply_pending_error(out, id);
  }
  Py_XDECREF(r);
  Py_XDECREF(a);
  PyErr_Clear();
  t->ts = PyEval_SaveThread();
  return rc;
}

int pyhost_cancel(uint64_t id) {
  /* Claim the call while detached; its thread then cannot finish pyhost_invoke
   * (nor leave, nor start another call) until the claim is dropped, so the
   * exception is raised into this call and no other. */
  pyhost_thread_t *hit = NULL;
  int found = 0;
  lock_detached(&g_threads_mu);
  for (size_t i = 0; i < g_thread_count && !found; i++) {
    pyhost_thread_t *t = g_threads[i];
    lock_detached(&t->mu);
    if (t->current == id) {
      found = 1;
      if (!t->cancel_pending && !t->cancel_sent) { /* else a CANCEL is already in */
        t->cancel_pending = 1;
        hit = t;
      }
    }
    pthread_mutex_unlock(&t->mu);
  }
  pthread_mutex_unlock(&g_threads_mu);
  if (hit == NULL) return found;

  PyGILState_STATE g = PyGILState_Ensure();
  if (hit->ctx != NULL && PyObject_SetAttrString(hit->ctx, "cancelled", Py_True) != 0)
    PyErr_Clear();
  PyThreadState_SetAsyncExc(hit->ident, g_cancelled);
  PyGILState_Release(g);

  lock_detached(&hit->mu);
  hit->cancel_pending = 0;
  hit->cancel_sent = 1;
  pthread_cond_broadcast(&hit->cond);
  pthread_mutex_unlock(&hit->mu);
  return 1;
}

int pyhost_cancelled(uint64_t id) {
  int c = 0;
  lock_detached(&g_threads_mu);
  for (size_t i = 0; i < g_thread_count && !c; i++) {
    pyhost_thread_t *t = g_threads[i];
    lock_detached(&t->mu);
    if (t->current == id) c = t->cancel_pending || t->cancel_sent;
    pthread_mutex_unlock(&t->mu);
  }
  pthread_mutex_unlock(&g_threads_mu);
  return c;
}

void pyhost_credit(uint64_t id, uint32_t n) {
  lock_detached(&g_threads_mu);
  for (size_t i = 0; i < g_thread_count; i++) {
    pyhost_thread_t *t = g_threads[i];
    lock_detached(&t->mu);
    if (t->current == id) {
      atomic_fetch_add_explicit(&t->credit, (int)n, memory_order_acq_rel);
      pthread_cond_broadcast(&t->cond);
    }
    pthread_mutex_unlock(&t->mu);
  }
  pthread_mutex_unlock(&g_threads_mu);
}

int pyhost_finish(void) {
  PyEval_RestoreThread(g_main_ts);
  if (g_host != NULL) {
    PyObject *r = PyObject_CallMethod(g_host, "shutdown", NULL);
    if (r == NULL) PyErr_Print();
    Py_XDECREF(r);
  }
  Py_CLEAR(g_invoke);
  Py_CLEAR(g_report);
  Py_CLEAR(g_stream_next);
  Py_CLEAR(g_stream_close);
  Py_CLEAR(g_register);
  Py_CLEAR(g_context_current);
  pysession_fini();
  Py_CLEAR(g_host);
  pyreply_fini();
  Py_CLEAR(g_cancelled);
  Py_CLEAR(g_host_module);
#ifdef Py_GIL_DISABLED
  Py_CLEAR(g_is_gil_enabled);
#endif
  return Py_FinalizeEx();
}

/* module.c - the csp_ext module: its state, exceptions and initialisation.
 *
 * Multi-phase initialisation (PEP 489) with module state: the exceptions and
 * types live in the state of the module object (csp_state, csp.h).  The
 * exception classes live here so that every backend raises the very same
 * objects (pycsp.threads.ChannelPoisonException is
 * pycsp.greenlets.ChannelPoisonException).
 *
 * One module per process.  The core keeps process-wide state (deadlock
 * accounting over every task of the process, the shared arena, the signal
 * wakeup fd, each thread's running task), so the module is for the main
 * interpreter only: it says so with Py_mod_multiple_interpreters where that
 * exists (3.12+) and refuses other interpreters in its exec slot everywhere
 * (the slot lets legacy subinterpreters through).  A second load in the main
 * interpreter (after `del sys.modules["csp_ext"]`) gets the first module's
 * functions, types and exceptions, as single-phase modules did: two sets of
 * exception classes would make `except ChannelPoisonException` miss.
 *
 * Free-threaded CPython is not supported yet: all channel state is changed
 * under the GIL (csp.h), so the module declares Py_mod_gil = Py_MOD_GIL_USED
 * and importing it there turns the GIL back on, with CPython's warning.
 */
#include "csp.h"
#include "shared/shm.h"
#include <errno.h>
#include <pthread.h>

csp_state *csp_st;
unsigned long csp_main_thread_ident;

/* The first module object, kept for the life of the process: csp_st points
 * into its state.  Set once by its exec slot, with the GIL held. */
static PyObject *first_module;

static int
add_exception(PyObject *m, PyObject **slot, const char *name, const char *doc)
{
    char qualified[128];
    PyOS_snprintf(qualified, sizeof(qualified), "pycsp.%s", name);
    *slot = PyErr_NewExceptionWithDoc(qualified, doc, NULL, NULL);
    if (!*slot)
        return -1;
    return PyModule_AddObjectRef(m, name, *slot);
}

PyTypeObject *
csp_add_type(PyObject *m, PyType_Spec *spec, const char *name)
{
    PyObject *type = PyType_FromModuleAndSpec(m, spec, NULL);
    if (!type)
        return NULL;
    if (PyModule_AddObjectRef(m, name, type) < 0) {
        Py_DECREF(type);
        return NULL;
    }
    return (PyTypeObject *)type;
}

/* Signals reach Python only in the main thread: waits there look at them. */
static int
find_main_thread(void)
{
    PyObject *threading = PyImport_ImportModule("threading");
    if (!threading)
        return -1;
    PyObject *main = PyObject_CallMethod(threading, "main_thread", NULL);
    Py_DECREF(threading);
    if (!main)
        return -1;
    PyObject *ident = PyObject_GetAttrString(main, "ident");
    Py_DECREF(main);
    if (!ident)
        return -1;
    csp_main_thread_ident = PyLong_AsUnsignedLong(ident);
    Py_DECREF(ident);
    return PyErr_Occurred() ? -1 : 0;
}

/* A child forked by another thread than the main one (pycsp's forking
 * thread does so for processes started from threads): the forking thread is
 * the child's main thread, where its signal handlers run, so its waits must
 * watch for signals. */
static void
after_fork_in_child(void)
{
    csp_main_thread_ident = PyThread_get_thread_ident();
    csp_task_after_fork_in_child();
}

/* A second load of the module in this process: the first one's attributes
 * and state, shared. */
static int
share_first_module(PyObject *m)
{
    csp_state *st = PyModule_GetState(m);
#define CSP_STATE_SHARE(type, name) st->name = (type *)Py_XNewRef((PyObject *)csp_st->name);
    CSP_STATE_FIELDS(CSP_STATE_SHARE)
#undef CSP_STATE_SHARE
    PyObject *from = PyModule_GetDict(first_module), *to = PyModule_GetDict(m);
    PyObject *key, *value;
    Py_ssize_t pos = 0;
    while (PyDict_Next(from, &pos, &key, &value)) {
        /* __name__, __spec__, __file__ and the like are the new module's own */
        if (PyUnicode_Check(key) && PyUnicode_GET_LENGTH(key) >= 2 &&
            PyUnicode_READ_CHAR(key, 0) == '_' && PyUnicode_READ_CHAR(key, 1) == '_')
            continue;
        if (PyDict_SetItem(to, key, value) < 0)
            return -1;
    }
    return 0;
}

static int
csp_exec(PyObject *m)
{
    if (PyInterpreterState_Get() != PyInterpreterState_Main()) {
        PyErr_SetString(PyExc_ImportError,
                        "csp_ext keeps process-wide state: it can be imported only in the "
                        "main interpreter");
        return -1;
    }
    if (first_module)
        return share_first_module(m);
    csp_state *st = PyModule_GetState(m);
    csp_st = st;
    if (find_main_thread() < 0)
        goto error;
    if (add_exception(m, &st->PoisonError, "ChannelPoisonException",
                      "The channel was poisoned: every blocked and every later read or write\n"
                      "on it raises this, and its buffered messages are dropped.\n\n"
                      "Raised by a read or write on the channel and by an alternation with a\n"
                      "guard on it. A process that ends with it poisons the channel ends in its\n"
                      "arguments and ends normally: ``Parallel`` does not raise it. The same\n"
                      "class on every backend.") < 0 ||
        add_exception(m, &st->RetireError, "ChannelRetireException",
                      "The channel end was retired, or every end on the other side has retired.\n\n"
                      "Raised by a read or write on a retired end; by a write (blocked or later)\n"
                      "once every reader has retired; by a read once every writer has retired\n"
                      "and the buffer is empty. A process that ends with it retires the ends in\n"
                      "its arguments and ends normally. The same class on every backend.") < 0 ||
        add_exception(m, &st->DeadlockError, "DeadlockError",
                      "Every CSP process is blocked on a channel: the program cannot go on.\n\n"
                      "Raised in the ``Parallel`` that waits (or in the main program's blocked\n"
                      "call) instead of hanging, on every backend. The message names the\n"
                      "wait-for cycle, or the channel with no process left on its other end.\n\n"
                      "Attributes:\n"
                      "    blocked: the processes blocked on channels, as ``Blocked`` records\n"
                      "        (``id``, ``name``, ``waits``, ``channels``, ``site``, ``holds``).\n"
                      "    waiting_in_parallel: the ``Blocked`` records of the callers of\n"
                      "        ``Parallel`` that wait for them.") < 0)
        goto error;
    if (csp_task_init_module(m) < 0 || csp_channel_init_module(m) < 0 ||
        csp_alt_init_module(m) < 0 || csp_green_init_module(m) < 0 ||
        csp_shm_arena_init_module(m) < 0 || csp_shm_init_module(m) < 0 || csp_shm_channel_init_module(m) < 0 ||
        csp_shm_proxy_init_module(m) < 0 || csp_shm_quiescence_init_module(m) < 0 ||
        csp_faults_init_module(m) < 0 || csp_errors_init_module(m) < 0)
        goto error;
    int r = pthread_atfork(NULL, NULL, after_fork_in_child);
    if (r) {
        errno = r;
        PyErr_SetFromErrno(PyExc_OSError);
        goto error;
    }
    first_module = Py_NewRef(m);
    return 0;
error:
    /* The module is dropped; its state's references go with it (csp_clear). */
    csp_st = NULL;
    return -1;
}

static int
csp_traverse(PyObject *m, visitproc visit, void *arg)
{
    csp_state *st = PyModule_GetState(m);
    if (!st)
        return 0;
#define CSP_STATE_VISIT(type, name) Py_VISIT(st->name);
    CSP_STATE_FIELDS(CSP_STATE_VISIT)
#undef CSP_STATE_VISIT
    return 0;
}

static int
csp_clear(PyObject *m)
{
    csp_state *st = PyModule_GetState(m);
    if (!st)
        return 0;
#define CSP_STATE_CLEAR(type, name) Py_CLEAR(st->name);
    CSP_STATE_FIELDS(CSP_STATE_CLEAR)
#undef CSP_STATE_CLEAR
    return 0;
}

static void
csp_free(void *m)
{
    csp_clear((PyObject *)m);
}

static PyModuleDef_Slot csp_slots[] = {
    {Py_mod_exec, csp_exec},
#ifdef Py_mod_multiple_interpreters
    {Py_mod_multiple_interpreters, Py_MOD_MULTIPLE_INTERPRETERS_NOT_SUPPORTED},
#endif
#ifdef Py_mod_gil
    {Py_mod_gil, Py_MOD_GIL_USED},
#endif
    {0, NULL}
};

static struct PyModuleDef csp_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "csp_ext",
    .m_doc = "The C core of pycsp: channels, ends, alternation, tasks and waiting.",
    .m_size = sizeof(csp_state),
    .m_slots = csp_slots,
    .m_traverse = csp_traverse,
    .m_clear = csp_clear,
    .m_free = csp_free,
};

PyMODINIT_FUNC
PyInit_csp_ext(void)
{
    return PyModuleDef_Init(&csp_module);
}

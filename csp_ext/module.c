/* module.c - the csp_ext module: exceptions and initialisation.
 *
 * The exception classes live here so that every backend raises the very same
 * objects (pycsp.threads.ChannelPoisonException is
 * pycsp.greenlets.ChannelPoisonException).
 */
#include "csp.h"
#include "shared/shm.h"

unsigned long csp_main_thread_ident;
PyObject *csp_PoisonError;
PyObject *csp_RetireError;
PyObject *csp_DeadlockError;

static struct PyModuleDef csp_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "csp_ext",
    .m_doc = "The C core of pycsp: channels, ends, alternation, tasks and waiting.",
    .m_size = -1,
};

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

PyMODINIT_FUNC
PyInit_csp_ext(void)
{
    PyObject *m = PyModule_Create(&csp_module);
    if (!m)
        return NULL;
    if (find_main_thread() < 0)
        goto error;
    if (add_exception(m, &csp_PoisonError, "ChannelPoisonException",
                      "The channel was poisoned: every read and write on it fails.") < 0 ||
        add_exception(m, &csp_RetireError, "ChannelRetireException",
                      "The channel end, or every end on the other side, has retired.") < 0 ||
        add_exception(m, &csp_DeadlockError, "DeadlockError",
                      "Every CSP process is blocked on a channel: the program cannot go on.") < 0)
        goto error;
    if (csp_task_init_module(m) < 0 || csp_channel_init_module(m) < 0 ||
        csp_alt_init_module(m) < 0 || csp_green_init_module(m) < 0 ||
        csp_shm_arena_init_module(m) < 0 || csp_shm_init_module(m) < 0 || csp_shm_channel_init_module(m) < 0 ||
        csp_faults_init_module(m) < 0)
        goto error;
    return m;
error:
    Py_DECREF(m);
    return NULL;
}

/* errors.c - the exception for each way a channel operation can fail, the
 * same for every kind of channel.
 */
#include "csp.h"

void
csp_raise_end_retired(int is_writer)
{
    PyErr_SetString(csp_st->RetireError,
                    is_writer ? "this writer end is retired" : "this reader end is retired");
}

void
csp_raise_try(int code, int is_write)
{
    switch (code) {
    case CSP_TRY_ERROR:
        break;   /* set already */
    case CSP_TRY_POISONED:
        PyErr_SetString(csp_st->PoisonError, "channel is poisoned");
        break;
    case CSP_TRY_RETIRED:
        PyErr_SetString(csp_st->RetireError, is_write ? "channel is retired: every reader has retired"
                                                  : "channel is retired: every writer has retired");
        break;
    case CSP_TRY_END_RETIRED:
        csp_raise_end_retired(is_write);
        break;
    default:
        PyErr_Format(PyExc_SystemError, "pycsp: unexpected attempt outcome %d", code);
    }
}

void
csp_raise_for_status(int status)
{
    switch (status) {
    case CSP_POISONED:
        PyErr_SetString(csp_st->PoisonError, "channel is poisoned");
        break;
    case CSP_RETIRED:
        PyErr_SetString(csp_st->RetireError, "channel is retired");
        break;
    case CSP_DEADLOCK:
        PyErr_SetString(csp_st->DeadlockError,
                        "deadlock: every CSP process is blocked on a channel");
        break;
    case CSP_KILLED:
        PyErr_SetString(csp_st->PoisonError, "process stopped: its Parallel was interrupted");
        break;
    default:
        PyErr_Format(PyExc_SystemError, "pycsp: unexpected wait status %d", status);
    }
}

/* Every blocked process wakes with CSP_DEADLOCK and raises from its own
 * context, so the report of each is made there: pycsp's maker (installed
 * with _set_deadlock_report) is called with what the operation was blocked
 * on and adds who and where (the Python stack of the blocked call).  The
 * plain message stands if no maker is installed or it fails: the deadlock
 * itself must be raised whatever happens to its report. */
void
csp_raise_deadlock(PyObject *blocked_on, int is_select)
{
    PyObject *maker = Py_XNewRef(csp_st->deadlock_report), *exc = NULL;
    if (blocked_on && maker)
        exc = PyObject_CallFunction(maker, "Oi", blocked_on, is_select);
    Py_XDECREF(blocked_on);
    if (exc && PyObject_TypeCheck(exc, (PyTypeObject *)csp_st->DeadlockError)) {
        PyErr_SetObject(csp_st->DeadlockError, exc);
        Py_DECREF(exc);
        Py_XDECREF(maker);
        return;
    }
    Py_XDECREF(exc);
    if (PyErr_Occurred())   /* from describe() or the maker */
        PyErr_WriteUnraisable(maker ? maker : Py_None);
    Py_XDECREF(maker);
    csp_raise_for_status(CSP_DEADLOCK);
}

/* _set_deadlock_report(fn or None): fn(blocked_on, is_select) makes the
 * DeadlockError of a blocked operation (see csp_raise_deadlock). */
static PyObject *
set_deadlock_report(PyObject *Py_UNUSED(m), PyObject *fn)
{
    if (fn != Py_None && !PyCallable_Check(fn)) {
        PyErr_SetString(PyExc_TypeError, "_set_deadlock_report takes a callable or None");
        return NULL;
    }
    Py_XSETREF(csp_st->deadlock_report, fn == Py_None ? NULL : Py_NewRef(fn));
    Py_RETURN_NONE;
}

static PyMethodDef error_methods[] = {
    {"_set_deadlock_report", set_deadlock_report, METH_O,
     "_set_deadlock_report(fn): fn(blocked_on, is_select) -> DeadlockError, called in the "
     "blocked process"},
    {NULL}
};

int
csp_errors_init_module(PyObject *m)
{
    return PyModule_AddFunctions(m, error_methods);
}

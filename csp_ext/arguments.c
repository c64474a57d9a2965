/* arguments.c - argument checks shared by both kinds of channel. */
#include "csp.h"

void
csp_raise_bad_call(int is_writer)
{
    PyErr_SetString(PyExc_TypeError,
                    is_writer ? "a writer end takes exactly one message: cout(msg); "
                                "to read, use a reader end (ch.reader(), +ch or IN(ch))"
                              : "a reader end is called with no arguments: msg = cin(); "
                                "to write, use a writer end (ch.writer(), -ch or OUT(ch))");
}

int
csp_parse_deadline(PyObject *timeout, const char *what, double *deadline)
{
    *deadline = -1.0;
    if (timeout == Py_None)
        return 0;
    double seconds = PyFloat_AsDouble(timeout);
    if (seconds == -1.0 && PyErr_Occurred())
        return -1;
    if (!(seconds >= 0.0)) {
        PyErr_Format(PyExc_ValueError, "%s timeout must be >= 0 or None", what);
        return -1;
    }
    *deadline = csp_monotonic() + seconds;
    return 0;
}

int
csp_parse_capacity(PyObject *buffer, Py_ssize_t *capacity)
{
    *capacity = 0;
    if (!buffer || buffer == Py_None)
        return 0;
    if (PyBool_Check(buffer) || !PyLong_Check(buffer)) {
        PyErr_Format(PyExc_TypeError, "Channel buffer must be an int >= 0, not %.100s",
                     Py_TYPE(buffer)->tp_name);
        return -1;
    }
    *capacity = PyLong_AsSsize_t(buffer);
    if (*capacity == -1 && PyErr_Occurred()) {
        if (!PyErr_ExceptionMatches(PyExc_OverflowError))
            return -1;
        PyErr_Clear();
        PyErr_Format(PyExc_ValueError, "Channel buffer is too large: %R", buffer);
        return -1;
    }
    if (*capacity < 0) {
        PyErr_Format(PyExc_ValueError, "Channel buffer must be >= 0, got %zd", *capacity);
        return -1;
    }
    return 0;
}

int
csp_parse_multiplier(PyObject *a, PyObject *b, PyTypeObject *type, PyObject **chan,
                     Py_ssize_t *n)
{
    *chan = PyObject_TypeCheck(a, type) ? a : b;
    PyObject *nobj = *chan == a ? b : a;
    if (!PyLong_Check(nobj) || PyBool_Check(nobj))
        return 1;
    *n = PyLong_AsSsize_t(nobj);
    if (*n == -1 && PyErr_Occurred())
        return -1;
    if (*n < 0) {
        PyErr_Format(PyExc_ValueError, "cannot make %zd channels", *n);
        return -1;
    }
    return 0;
}


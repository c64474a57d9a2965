/* alt.c - guards and the alternation's entry point (external choice).
 *
 * select(guards, mode) puts the guards in scan order: as given (priority)
 * or, for FairSelect, least recently chosen first.  The commit itself is the
 * rules' (rules/select.h), run by the kind of channel the guards are on.
 */
#include "csp.h"

#include <math.h>
#include <structmember.h>

/* FairSelect's clock: stamps the guard or end chosen.  Process-wide (fairness
 * is among the guards of whoever selects), changed only with the GIL held. */
static uint64_t fair_clock;

/* ------------------------------------------------------------------ */
/* Guard types                                                         */

static GuardObject *
guard_alloc(PyTypeObject *type, int kind)
{
    GuardObject *g = (GuardObject *)type->tp_alloc(type, 0);
    if (!g)
        return NULL;
    g->kind = kind;
    g->end = NULL;
    g->msg = Py_NewRef(Py_None);
    g->action = Py_NewRef(Py_None);
    g->seconds = 0.0;
    g->fair_stamp = 0;
    return g;
}

static int
check_action(PyObject *action)
{
    if (action == Py_None || PyUnicode_Check(action) || PyCallable_Check(action))
        return 0;
    PyErr_Format(PyExc_TypeError,
                 "a guard action must be callable, a string of code or None, not %.100s",
                 Py_TYPE(action)->tp_name);
    return -1;
}

static int
is_shm_end(PyObject *o)
{
    return Py_IS_TYPE(o, csp_st->ShmEndReadType) || Py_IS_TYPE(o, csp_st->ShmEndWriteType);
}

static int
check_end(PyObject *end, int want_writer, const char *guard)
{
    PyTypeObject *want = want_writer ? csp_st->EndWriteType : csp_st->EndReadType;
    PyTypeObject *want_shm = want_writer ? csp_st->ShmEndWriteType : csp_st->ShmEndReadType;
    if (PyObject_TypeCheck(end, want) || Py_IS_TYPE(end, want_shm))
        return 0;
    PyErr_Format(PyExc_TypeError, "%s needs a %s, not %.100s", guard,
                 want_writer ? "writer end (ch.writer(), -ch, OUT(ch))"
                             : "reader end (ch.reader(), +ch, IN(ch))",
                 Py_TYPE(end)->tp_name);
    return -1;
}

static PyObject *
input_guard_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    PyObject *end, *action = Py_None;
    static char *kwlist[] = {"ch", "action", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O|O:InputGuard", kwlist, &end, &action))
        return NULL;
    if (check_end(end, 0, "InputGuard") < 0 || check_action(action) < 0)
        return NULL;
    GuardObject *g = guard_alloc(type, CSP_GUARD_INPUT);
    if (!g)
        return NULL;
    g->end = (EndObject *)Py_NewRef(end);
    Py_SETREF(g->action, Py_NewRef(action));
    return (PyObject *)g;
}

static PyObject *
output_guard_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    PyObject *end, *msg, *action = Py_None;
    static char *kwlist[] = {"ch", "msg", "action", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OO|O:OutputGuard", kwlist, &end, &msg, &action))
        return NULL;
    if (check_end(end, 1, "OutputGuard") < 0 || check_action(action) < 0)
        return NULL;
    GuardObject *g = guard_alloc(type, CSP_GUARD_OUTPUT);
    if (!g)
        return NULL;
    g->end = (EndObject *)Py_NewRef(end);
    Py_SETREF(g->msg, Py_NewRef(msg));
    Py_SETREF(g->action, Py_NewRef(action));
    return (PyObject *)g;
}

static PyObject *
skip_guard_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    PyObject *action = Py_None;
    static char *kwlist[] = {"action", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|O:SkipGuard", kwlist, &action))
        return NULL;
    if (check_action(action) < 0)
        return NULL;
    GuardObject *g = guard_alloc(type, CSP_GUARD_SKIP);
    if (g)
        Py_SETREF(g->action, Py_NewRef(action));
    return (PyObject *)g;
}

static PyObject *
timeout_guard_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    PyObject *seconds, *action = Py_None;
    static char *kwlist[] = {"seconds", "action", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O|O:TimeoutGuard", kwlist, &seconds, &action))
        return NULL;
    if (PyBool_Check(seconds) || !(PyLong_Check(seconds) || PyFloat_Check(seconds))) {
        PyErr_Format(PyExc_TypeError, "TimeoutGuard seconds must be a number, not %.100s",
                     Py_TYPE(seconds)->tp_name);
        return NULL;
    }
    double s = PyFloat_AsDouble(seconds);
    if (s == -1.0 && PyErr_Occurred())
        return NULL;
    if (!(s >= 0.0) || isinf(s)) {
        PyErr_Format(PyExc_ValueError, "TimeoutGuard seconds must be a finite number >= 0, got %R",
                     seconds);
        return NULL;
    }
    if (check_action(action) < 0)
        return NULL;
    GuardObject *g = guard_alloc(type, CSP_GUARD_TIMEOUT);
    if (!g)
        return NULL;
    g->seconds = s;
    Py_SETREF(g->action, Py_NewRef(action));
    return (PyObject *)g;
}

static int
guard_traverse(GuardObject *g, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(g));  /* a heap type: its instances keep it alive */
    Py_VISIT(g->end);
    Py_VISIT(g->msg);
    Py_VISIT(g->action);
    return 0;
}

static int
guard_clear(GuardObject *g)
{
    Py_CLEAR(g->end);
    Py_CLEAR(g->msg);
    Py_CLEAR(g->action);
    return 0;
}

static void
guard_dealloc(GuardObject *g)
{
    PyObject_GC_UnTrack(g);
    guard_clear(g);
    PyTypeObject *tp = Py_TYPE(g);
    tp->tp_free((PyObject *)g);
    Py_DECREF(tp);
}

static PyObject *
guard_get_end(GuardObject *g, void *Py_UNUSED(c))
{
    if (!g->end)
        Py_RETURN_NONE;
    return Py_NewRef((PyObject *)g->end);
}

static PyObject *
guard_get_seconds(GuardObject *g, void *Py_UNUSED(c))
{
    if (g->kind != CSP_GUARD_TIMEOUT)
        Py_RETURN_NONE;
    return PyFloat_FromDouble(g->seconds);
}

static PyObject *
guard_repr(GuardObject *g)
{
    switch (g->kind) {
    case CSP_GUARD_INPUT:
        return PyUnicode_FromFormat("InputGuard(%R)", (PyObject *)g->end);
    case CSP_GUARD_OUTPUT:
        return PyUnicode_FromFormat("OutputGuard(%R, %R)", (PyObject *)g->end, g->msg);
    case CSP_GUARD_SKIP:
        return PyUnicode_FromString("SkipGuard()");
    default: {
        PyObject *s = PyFloat_FromDouble(g->seconds);
        if (!s)
            return NULL;
        PyObject *r = PyUnicode_FromFormat("TimeoutGuard(%R)", s);
        Py_DECREF(s);
        return r;
    }
    }
}

static PyMemberDef guard_members[] = {
    {"msg", T_OBJECT, offsetof(GuardObject, msg), READONLY,
     "The message offered (output guards; None for the others)."},
    {"action", T_OBJECT, offsetof(GuardObject, action), READONLY,
     "The action run when this guard is chosen, or None."},
    {NULL}
};

static PyGetSetDef guard_getset[] = {
    {"ch", (getter)guard_get_end, NULL,
     "The channel end guarded (input and output guards; None for the others).", NULL},
    {"end", (getter)guard_get_end, NULL, "The same as ``ch``.", NULL},
    {"seconds", (getter)guard_get_seconds, NULL,
     "The timeout in seconds (timeout guards; None for the others).", NULL},
    {NULL}
};

#define GUARD_TYPE(cname, pyname, newfn, doc)                                          \
    static PyType_Slot cname##_slots[] = {                                             \
        {Py_tp_doc, doc},                                                              \
        {Py_tp_new, newfn},                                                            \
        {Py_tp_dealloc, guard_dealloc},                                                \
        {Py_tp_traverse, guard_traverse},                                              \
        {Py_tp_clear, guard_clear},                                                    \
        {Py_tp_repr, guard_repr},                                                      \
        {Py_tp_members, guard_members},                                                \
        {Py_tp_getset, guard_getset},                                                  \
        {0, NULL}                                                                      \
    };                                                                                 \
    static PyType_Spec cname##_spec = {                                                \
        .name = "pycsp." pyname,                                                       \
        .basicsize = sizeof(GuardObject),                                              \
        .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_BASETYPE |       \
                 Py_TPFLAGS_IMMUTABLETYPE,                                             \
        .slots = cname##_slots,                                                        \
    }

#define GUARD_ACTION_DOC                                                               \
    "    action: run when this guard is chosen by ``execute()`` or a select: a\n"     \
    "        callable, a ``@choice`` call, a string of Python code, or None.\n"
GUARD_TYPE(input_guard, "InputGuard", input_guard_new,
           "InputGuard(ch, action=None)\n--\n\n"
           "An input guard: ready when a message can be read from ``ch``; choosing it\n"
           "reads the message. A reader end alone is the same guard without action.\n\n"
           "Args:\n"
           "    ch: a reader end.\n" GUARD_ACTION_DOC "\n"
           "Raises:\n"
           "    TypeError: ``ch`` is not a reader end, or ``action`` is of no kind above.");
GUARD_TYPE(output_guard, "OutputGuard", output_guard_new,
           "OutputGuard(ch, msg, action=None)\n--\n\n"
           "An output guard: ready when ``msg`` can be written to ``ch``; choosing it\n"
           "writes the message. The tuple ``(ch, msg)`` is the same guard without action.\n\n"
           "Args:\n"
           "    ch: a writer end.\n"
           "    msg: the message to write.\n" GUARD_ACTION_DOC "\n"
           "Raises:\n"
           "    TypeError: ``ch`` is not a writer end, or ``action`` is of no kind above.");
GUARD_TYPE(skip_guard, "SkipGuard", skip_guard_new,
           "SkipGuard(action=None)\n--\n\n"
           "A guard that is always ready (``Skip`` is another name for it): an\n"
           "alternation with one never blocks.\n\n"
           "Args:\n" GUARD_ACTION_DOC "\n"
           "Raises:\n"
           "    TypeError: ``action`` is of no kind above.");
GUARD_TYPE(timeout_guard, "TimeoutGuard", timeout_guard_new,
           "TimeoutGuard(seconds, action=None)\n--\n\n"
           "A guard that becomes ready once ``seconds`` have passed since the\n"
           "alternation began to wait (``Timeout`` is another name for it).\n"
           "``Timeout(0)`` is ready at once and commits in its priority position.\n\n"
           "Args:\n"
           "    seconds: a finite number >= 0.\n" GUARD_ACTION_DOC "\n"
           "Raises:\n"
           "    TypeError: ``seconds`` is not a number, or ``action`` is of no kind above.\n"
           "    ValueError: ``seconds`` is negative, infinite or NaN.");

/* Any guard, subclasses too: they all share guard_dealloc, which nothing
 * else has (a Python subclass's tp_dealloc is subtype_dealloc, hence the
 * fallback).  No module state lookup per guard. */
static int
is_guard(PyObject *o)
{
    PyTypeObject *tp = Py_TYPE(o);
    return tp->tp_dealloc == (destructor)guard_dealloc ||
           PyObject_TypeCheck(o, csp_st->InputGuardType) ||
           PyObject_TypeCheck(o, csp_st->OutputGuardType) ||
           PyObject_TypeCheck(o, csp_st->SkipGuardType) ||
           PyObject_TypeCheck(o, csp_st->TimeoutGuardType);
}

/* ------------------------------------------------------------------ */
/* select                                                              */

/* Unpack guard i into g; 1 if it is on a shared channel's end, 0 if on an
 * in-process one or on no channel, -1 with an exception. */
static int
view_guard(PyObject *o, Py_ssize_t i, csp_alt_guard *g)
{
    g->kind = 0;
    g->end = NULL;
    g->msg = NULL;
    g->seconds = 0.0;
    g->index = i;
    if (PyObject_TypeCheck(o, csp_st->EndReadType) || Py_IS_TYPE(o, csp_st->ShmEndReadType)) {
        g->kind = CSP_GUARD_INPUT;
        g->end = o;
    }
    else if (is_guard(o)) {
        GuardObject *go = (GuardObject *)o;
        g->kind = go->kind;
        g->end = (PyObject *)go->end;
        g->msg = go->kind == CSP_GUARD_OUTPUT ? go->msg : NULL;
        g->seconds = go->seconds;
        g->stamp = &go->fair_stamp;
    }
    if (g->kind) {
        if (g->end && is_shm_end(g->end)) {
            g->stamp = shm_end_stamp(g->end);
            return 1;
        }
        if (g->end)
            g->stamp = &((EndObject *)g->end)->fair_stamp;
        return 0;
    }
    if (PyObject_TypeCheck(o, csp_st->EndWriteType) || Py_IS_TYPE(o, csp_st->ShmEndWriteType))
        PyErr_Format(PyExc_TypeError,
                     "guard %zd is a writer end with no message: use OutputGuard(cout, msg) "
                     "or the tuple (cout, msg)", i);
    else
        PyErr_Format(PyExc_TypeError,
                     "guard %zd is not a guard: expected a reader end, InputGuard, OutputGuard, "
                     "SkipGuard or TimeoutGuard, got %.100s", i, Py_TYPE(o)->tp_name);
    return -1;
}

/* The tuple (index, msg); steals msg (NULL means None).  Built by hand: a
 * format string costs hundreds of instructions per alternation. */
static PyObject *
select_result(Py_ssize_t index, PyObject *msg)
{
    PyObject *idx = PyLong_FromSsize_t(index);
    PyObject *r = idx ? PyTuple_New(2) : NULL;
    if (!r) {
        Py_XDECREF(idx);
        Py_XDECREF(msg);
        return NULL;
    }
    PyTuple_SET_ITEM(r, 0, idx);
    PyTuple_SET_ITEM(r, 1, msg ? msg : Py_NewRef(Py_None));
    return r;
}

/* Few: a greenlet copies its whole C stack at every switch. */
#define SMALL_GUARDS 8

static uint64_t
fair_key(const csp_alt_guard *g)
{
    return g->end ? *g->stamp : UINT64_MAX;
}

/* select(guards, fair=False) -> (index, msg)
 * guards: a tuple of reader ends and guard objects, in priority order. */
static PyObject *
alt_select(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs < 1 || nargs > 2 || !PyTuple_Check(args[0])) {
        PyErr_SetString(PyExc_TypeError, "select(guards: tuple, fair: bool = False)");
        return NULL;
    }
    PyObject *guards = args[0];
    int fair = nargs == 2 ? PyObject_IsTrue(args[1]) : 0;
    if (fair < 0)
        return NULL;
    Py_ssize_t n = PyTuple_GET_SIZE(guards);
    if (n == 0) {
        PyErr_SetString(PyExc_ValueError, "an alternation needs at least one guard");
        return NULL;
    }
    csp_alt_guard small[SMALL_GUARDS];
    csp_alt_guard *scan = small;
    PyObject *result = NULL;
    if (n > SMALL_GUARDS && !(scan = PyMem_Malloc((size_t)n * sizeof(csp_alt_guard)))) {
        PyErr_NoMemory();
        return NULL;
    }
    int nshared = 0, nlocal = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        int shared = view_guard(PyTuple_GET_ITEM(guards, i), i, &scan[i]);
        if (shared < 0)
            goto done;
        if (scan[i].end)
            shared ? nshared++ : nlocal++;
    }
    if (nshared && nlocal) {
        PyErr_SetString(PyExc_TypeError,
                        "an alternation cannot mix channels of pycsp.processes with channels "
                        "of the in-process backends");
        goto done;
    }
    if (fair) {
        /* Stable insertion sort: least recently chosen channel guard first;
         * Skip and Timeout guards after them (a fresh Skip() each call would
         * otherwise always look least recently chosen and starve the rest). */
        for (Py_ssize_t i = 1; i < n; i++) {
            csp_alt_guard g = scan[i];
            Py_ssize_t j = i;
            while (j > 0 && fair_key(&scan[j - 1]) > fair_key(&g)) {
                scan[j] = scan[j - 1];
                j--;
            }
            scan[j] = g;
        }
    }
    Py_ssize_t chosen;
    PyObject *msg;
    if ((nshared ? csp_shared_select(scan, n, &chosen, &msg)
                 : csp_inprocess_select(scan, n, &chosen, &msg)) < 0)
        goto done;
    *scan[chosen].stamp = ++fair_clock;
    result = select_result(scan[chosen].index, msg);

done:
    if (scan != small)
        PyMem_Free(scan);
    return result;
}

static PyMethodDef alt_methods[] = {
    {"select", (PyCFunction)(void (*)(void))alt_select, METH_FASTCALL,
     "select(guards, fair=False) -> (index, msg): commit exactly one ready guard, "
     "blocking until one is ready."},
    {NULL}
};

int
csp_alt_init_module(PyObject *m)
{
    if (!(csp_st->InputGuardType = csp_add_type(m, &input_guard_spec, "InputGuard")) ||
        !(csp_st->OutputGuardType = csp_add_type(m, &output_guard_spec, "OutputGuard")) ||
        !(csp_st->SkipGuardType = csp_add_type(m, &skip_guard_spec, "SkipGuard")) ||
        !(csp_st->TimeoutGuardType = csp_add_type(m, &timeout_guard_spec, "TimeoutGuard")))
        return -1;
    return PyModule_AddFunctions(m, alt_methods);
}

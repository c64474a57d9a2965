/* alt.c - guards and the alternation's entry point (external choice).
 *
 * select(guards, mode) puts the guards in scan order: as given (priority)
 * or, for FairSelect, least recently chosen first.  The commit itself is the
 * rules' (rules/select.h), run by the kind of channel the guards are on.
 */
#include "csp.h"

#include <math.h>
#include <structmember.h>

enum csp_select_mode { CSP_SELECT_PRI = 0, CSP_SELECT_FAIR = 1 };

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
    return Py_IS_TYPE(o, &csp_ShmEndReadType) || Py_IS_TYPE(o, &csp_ShmEndWriteType);
}

static int
check_end(PyObject *end, int want_writer, const char *guard)
{
    PyTypeObject *want = want_writer ? &csp_EndWriteType : &csp_EndReadType;
    PyTypeObject *want_shm = want_writer ? &csp_ShmEndWriteType : &csp_ShmEndReadType;
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
    Py_TYPE(g)->tp_free((PyObject *)g);
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
    {"msg", T_OBJECT, offsetof(GuardObject, msg), READONLY, "message offered (output guards)"},
    {"action", T_OBJECT, offsetof(GuardObject, action), READONLY, "action run by execute()"},
    {NULL}
};

static PyGetSetDef guard_getset[] = {
    {"ch", (getter)guard_get_end, NULL, "the channel end guarded (input/output guards)", NULL},
    {"end", (getter)guard_get_end, NULL, "the channel end guarded (input/output guards)", NULL},
    {"seconds", (getter)guard_get_seconds, NULL, "timeout in seconds (timeout guards)", NULL},
    {NULL}
};

#define GUARD_TYPE(cname, pyname, newfn, doc)                                          \
    PyTypeObject cname = {                                                             \
        PyVarObject_HEAD_INIT(NULL, 0)                                                 \
        .tp_name = "pycsp." pyname,                                                    \
        .tp_basicsize = sizeof(GuardObject),                                           \
        .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_BASETYPE,     \
        .tp_doc = doc,                                                                 \
        .tp_new = newfn,                                                               \
        .tp_dealloc = (destructor)guard_dealloc,                                       \
        .tp_traverse = (traverseproc)guard_traverse,                                   \
        .tp_clear = (inquiry)guard_clear,                                              \
        .tp_repr = (reprfunc)guard_repr,                                               \
        .tp_members = guard_members,                                                   \
        .tp_getset = guard_getset,                                                     \
    }

static GUARD_TYPE(InputGuardType, "InputGuard", input_guard_new,
                  "InputGuard(ch, action=None): ready when a message can be read from ch.");
static GUARD_TYPE(OutputGuardType, "OutputGuard", output_guard_new,
                  "OutputGuard(ch, msg, action=None): ready when msg can be written to ch.");
static GUARD_TYPE(SkipGuardType, "SkipGuard", skip_guard_new,
                  "SkipGuard(action=None): always ready.");
static GUARD_TYPE(TimeoutGuardType, "TimeoutGuard", timeout_guard_new,
                  "TimeoutGuard(seconds, action=None): ready once `seconds` have passed.");

static int
is_guard(PyObject *o)
{
    PyTypeObject *tp = Py_TYPE(o);
    return tp == &InputGuardType || tp == &OutputGuardType || tp == &SkipGuardType ||
           tp == &TimeoutGuardType || PyObject_TypeCheck(o, &InputGuardType) ||
           PyObject_TypeCheck(o, &OutputGuardType) || PyObject_TypeCheck(o, &SkipGuardType) ||
           PyObject_TypeCheck(o, &TimeoutGuardType);
}

/* ------------------------------------------------------------------ */
/* select                                                              */

/* One guard, unpacked (all borrowed). */
typedef struct {
    int kind;
    PyObject *end_obj;      /* the end (in-process or shared), or NULL */
    int shared;             /* a processes-backend end */
    PyObject *msg;
    double seconds;
    uint64_t *stamp;
} guard_view;

static int
view_guard(PyObject *o, Py_ssize_t i, guard_view *v)
{
    v->shared = 0;
    v->msg = NULL;
    v->end_obj = NULL;
    v->seconds = 0.0;
    if (PyObject_TypeCheck(o, &csp_EndReadType) || Py_IS_TYPE(o, &csp_ShmEndReadType)) {
        v->kind = CSP_GUARD_INPUT;
        v->end_obj = o;
    }
    else if (is_guard(o)) {
        GuardObject *g = (GuardObject *)o;
        v->kind = g->kind;
        v->end_obj = (PyObject *)g->end;
        v->msg = g->msg;
        v->seconds = g->seconds;
        v->stamp = &g->fair_stamp;
    }
    if (v->kind) {
        if (v->end_obj && is_shm_end(v->end_obj)) {
            v->shared = 1;
            v->stamp = shm_end_stamp(v->end_obj);
        }
        else if (v->end_obj) {
            v->stamp = &((EndObject *)v->end_obj)->fair_stamp;
        }
        return 0;
    }
    if (PyObject_TypeCheck(o, &csp_EndWriteType) || Py_IS_TYPE(o, &csp_ShmEndWriteType))
        PyErr_Format(PyExc_TypeError,
                     "guard %zd is a writer end with no message: use OutputGuard(cout, msg) "
                     "or the tuple (cout, msg)", i);
    else
        PyErr_Format(PyExc_TypeError,
                     "guard %zd is not a guard: expected a reader end, InputGuard, OutputGuard, "
                     "SkipGuard or TimeoutGuard, got %.100s", i, Py_TYPE(o)->tp_name);
    return -1;
}

#define SMALL_GUARDS 16

static uint64_t
fair_key(const guard_view *v)
{
    return v->end_obj ? *v->stamp : UINT64_MAX;
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
    int mode = fair ? CSP_SELECT_FAIR : CSP_SELECT_PRI;
    Py_ssize_t n = PyTuple_GET_SIZE(guards);
    if (n == 0) {
        PyErr_SetString(PyExc_ValueError, "an alternation needs at least one guard");
        return NULL;
    }
    guard_view small_views[SMALL_GUARDS];
    Py_ssize_t small_order[SMALL_GUARDS];
    csp_alt_guard small_scan[SMALL_GUARDS];
    guard_view *views = small_views;
    Py_ssize_t *order = small_order;
    csp_alt_guard *scan = small_scan;
    PyObject *result = NULL;
    if (n > SMALL_GUARDS) {
        views = PyMem_Malloc((size_t)n * sizeof(guard_view));
        order = PyMem_Malloc((size_t)n * sizeof(Py_ssize_t));
        scan = PyMem_Malloc((size_t)n * sizeof(csp_alt_guard));
        if (!views || !order || !scan) {
            PyErr_NoMemory();
            goto done;
        }
    }
    int nshared = 0, nlocal = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        views[i].kind = 0;
        if (view_guard(PyTuple_GET_ITEM(guards, i), i, &views[i]) < 0)
            goto done;
        order[i] = i;
        if (views[i].end_obj)
            views[i].shared ? nshared++ : nlocal++;
    }
    if (nshared && nlocal) {
        PyErr_SetString(PyExc_TypeError,
                        "an alternation cannot mix channels of pycsp.processes with channels "
                        "of the in-process backends");
        goto done;
    }
    if (mode == CSP_SELECT_FAIR) {
        /* Stable insertion sort: least recently chosen channel guard first;
         * Skip and Timeout guards after them (a fresh Skip() each call would
         * otherwise always look least recently chosen and starve the rest). */
        for (Py_ssize_t i = 1; i < n; i++) {
            Py_ssize_t k = order[i], j = i;
            while (j > 0 && fair_key(&views[order[j - 1]]) > fair_key(&views[k])) {
                order[j] = order[j - 1];
                j--;
            }
            order[j] = k;
        }
    }
    for (Py_ssize_t k = 0; k < n; k++) {
        guard_view *v = &views[order[k]];
        scan[k].kind = v->kind;
        scan[k].end = v->end_obj;
        scan[k].msg = v->kind == CSP_GUARD_OUTPUT ? v->msg : NULL;
        scan[k].seconds = v->seconds;
    }
    Py_ssize_t chosen;
    PyObject *msg;
    if ((nshared ? csp_shared_select(scan, n, &chosen, &msg)
                 : csp_inprocess_select(scan, n, &chosen, &msg)) < 0)
        goto done;
    Py_ssize_t index = order[chosen];
    *views[index].stamp = ++fair_clock;
    result = Py_BuildValue("(nN)", index, msg ? msg : Py_NewRef(Py_None));

done:
    if (views != small_views)
        PyMem_Free(views);
    if (order != small_order)
        PyMem_Free(order);
    if (scan != small_scan)
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
    PyTypeObject *types[] = {&InputGuardType, &OutputGuardType, &SkipGuardType, &TimeoutGuardType};
    const char *names[] = {"InputGuard", "OutputGuard", "SkipGuard", "TimeoutGuard"};
    for (int i = 0; i < 4; i++) {
        if (PyType_Ready(types[i]) < 0)
            return -1;
        if (PyModule_AddObjectRef(m, names[i], (PyObject *)types[i]) < 0)
            return -1;
    }
    return PyModule_AddFunctions(m, alt_methods);
}

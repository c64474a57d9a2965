/* alt.c - guards and the alternation commit (external choice).
 *
 * select(guards, mode) scans the guards in order (priority) or, for FairSelect,
 * least recently chosen first, and commits the first ready one.  If none is
 * ready it links one offer per channel guard, all pointing at the same Task;
 * the first peer to complete any of them wins and withdraws the others under
 * the GIL, so exactly one guard commits even when alternations face each other.
 */
#include "csp.h"

#include <math.h>
#include <structmember.h>

enum csp_select_mode { CSP_SELECT_PRI = 0, CSP_SELECT_FAIR = 1 };

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

GUARD_TYPE(input_guard, "InputGuard", input_guard_new,
           "InputGuard(ch, action=None): ready when a message can be read from ch.");
GUARD_TYPE(output_guard, "OutputGuard", output_guard_new,
           "OutputGuard(ch, msg, action=None): ready when msg can be written to ch.");
GUARD_TYPE(skip_guard, "SkipGuard", skip_guard_new, "SkipGuard(action=None): always ready.");
GUARD_TYPE(timeout_guard, "TimeoutGuard", timeout_guard_new,
           "TimeoutGuard(seconds, action=None): ready once `seconds` have passed.");

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

/* One guard, unpacked for the commit loop (all borrowed). */
typedef struct {
    int kind;
    EndObject *end;         /* in-process ends */
    PyObject *end_obj;      /* the end as given (in-process or shared) */
    int shared;             /* a processes-backend end */
    PyObject *msg;
    double seconds;
    uint64_t *stamp;
} guard_view;

static int
view_guard(PyObject *o, Py_ssize_t i, guard_view *v)
{
    v->shared = 0;
    if (PyObject_TypeCheck(o, csp_st->EndReadType) || Py_IS_TYPE(o, csp_st->ShmEndReadType)) {
        v->kind = CSP_GUARD_INPUT;
        v->end_obj = o;
        v->msg = NULL;
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
            v->end = NULL;
            v->stamp = shm_end_stamp(v->end_obj);
        }
        else if (v->end_obj) {
            v->end = (EndObject *)v->end_obj;
            v->stamp = &v->end->fair_stamp;
        }
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

/* Result tuple (index, msg); steals msg (NULL means None). */
static PyObject *
select_result(Py_ssize_t index, PyObject *msg, guard_view *v)
{
    *v->stamp = ++fair_clock;
    PyObject *idx = PyLong_FromSsize_t(index);
    if (!idx) {
        Py_XDECREF(msg);
        return NULL;
    }
    PyObject *r = PyTuple_New(2);
    if (!r) {
        Py_DECREF(idx);
        Py_XDECREF(msg);
        return NULL;
    }
    PyTuple_SET_ITEM(r, 0, idx);
    PyTuple_SET_ITEM(r, 1, msg ? msg : Py_NewRef(Py_None));
    return r;
}

#define SMALL_GUARDS 16

static uint64_t
fair_key(const guard_view *v)
{
    return v->end_obj ? *v->stamp : UINT64_MAX;
}

/* Alternation over channels of the processes backend (shm_channel.c). */
static PyObject *
select_shared(Py_ssize_t n, guard_view *views, Py_ssize_t *order)
{
    int *kinds = PyMem_Malloc((size_t)n * sizeof(int));
    PyObject **ends = PyMem_Malloc((size_t)n * sizeof(PyObject *));
    PyObject **msgs = PyMem_Malloc((size_t)n * sizeof(PyObject *));
    double *seconds = PyMem_Malloc((size_t)n * sizeof(double));
    PyObject *r = NULL;
    if (!kinds || !ends || !msgs || !seconds) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        kinds[i] = views[i].kind;
        ends[i] = views[i].end_obj;
        msgs[i] = views[i].msg;
        seconds[i] = views[i].seconds;
    }
    r = shm_select(n, kinds, ends, msgs, seconds, order);
    if (r) {
        Py_ssize_t index = PyLong_AsSsize_t(PyTuple_GET_ITEM(r, 0));
        *views[index].stamp = ++fair_clock;
    }
done:
    PyMem_Free(kinds);
    PyMem_Free(ends);
    PyMem_Free(msgs);
    PyMem_Free(seconds);
    return r;
}

/* select(guards, fair=False) -> (index, msg)
 * guards: a tuple of reader ends and guard objects, in priority order. */
static PyObject *
csp_select(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
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
    guard_view *views = small_views;
    Py_ssize_t *order = small_order;
    PyObject *result = NULL;
    if (n > SMALL_GUARDS) {
        views = PyMem_Malloc((size_t)n * sizeof(guard_view));
        order = PyMem_Malloc((size_t)n * sizeof(Py_ssize_t));
        if (!views || !order) {
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

    if (nshared) {
        result = select_shared(n, views, order);
        goto done;
    }

    TaskObject *t = csp_current_task();
    if (!t)
        goto done;
    if (t->killed) {
        csp_raise_for_status(CSP_KILLED);
        goto done;
    }

    double deadline = -2.0;   /* set on the first pass */
retry:;
    /* Pass 1: commit the first ready guard. */
    Py_ssize_t timeout_index = -1;
    double min_seconds = 0.0;
    Py_ssize_t nchannel = 0;
    for (Py_ssize_t k = 0; k < n; k++) {
        Py_ssize_t i = order[k];
        guard_view *v = &views[i];
        int r;
        PyObject *msg = NULL;
        switch (v->kind) {
        case CSP_GUARD_INPUT:
            if (csp_end_check_usable(v->end) < 0)
                goto done;
            r = csp_try_read(v->end->chan, &msg);
            if (r < 0)
                goto done;
            if (r > 0) {
                result = select_result(i, msg, v);
                goto done;
            }
            nchannel++;
            break;
        case CSP_GUARD_OUTPUT:
            if (csp_end_check_usable(v->end) < 0)
                goto done;
            r = csp_try_write(v->end->chan, v->msg);
            if (r < 0)
                goto done;
            if (r > 0) {
                result = select_result(i, NULL, v);
                goto done;
            }
            nchannel++;
            break;
        case CSP_GUARD_SKIP:
            result = select_result(i, NULL, v);
            goto done;
        case CSP_GUARD_TIMEOUT:
            if (v->seconds <= 0.0) {
                /* Ready at once: committed in its priority position. */
                result = select_result(i, NULL, v);
                goto done;
            }
            if (timeout_index < 0 || v->seconds < min_seconds) {
                timeout_index = i;
                min_seconds = v->seconds;
            }
            break;
        }
    }
    if (deadline == -2.0)
        deadline = timeout_index >= 0 ? csp_monotonic() + min_seconds : -1.0;
    if (timeout_index >= 0 && csp_monotonic() >= deadline) {
        result = select_result(timeout_index, NULL, &views[timeout_index]);
        goto done;
    }

    /* Pass 2: offer on every channel guard and wait for one to commit. */
    if (csp_task_prepare(t, nchannel) < 0)
        goto done;
    Py_ssize_t o = 0;
    for (Py_ssize_t k = 0; k < n; k++) {
        Py_ssize_t i = order[k];
        guard_view *v = &views[i];
        if (v->kind != CSP_GUARD_INPUT && v->kind != CSP_GUARD_OUTPUT)
            continue;
        csp_offer *of = &t->offers[o++];
        of->task = t;
        of->chan = v->end->chan;
        of->msg = v->msg;
        of->index = i;
        of->is_write = (v->kind == CSP_GUARD_OUTPUT);
        of->linked = 0;
        csp_offer_link(of);
    }
    t->noffers = o;
    int st = csp_task_wait(t, deadline, CSP_WAIT_CHANNEL);
    if (st < 0)
        goto done;
    if (st == CSP_RETRY) {
        if (t->killed) {
            csp_raise_for_status(CSP_KILLED);
            goto done;
        }
        goto retry;
    }
    if (st == CSP_DONE) {
        PyObject *msg = t->msg;
        t->msg = NULL;
        result = select_result(t->chosen, msg, &views[t->chosen]);
    }
    else if (st == CSP_TIMEOUT) {
        result = select_result(timeout_index, NULL, &views[timeout_index]);
    }
    else {
        csp_raise_for_status(st);
    }

done:
    if (views != small_views)
        PyMem_Free(views);
    if (order != small_order)
        PyMem_Free(order);
    return result;
}

static PyMethodDef alt_methods[] = {
    {"select", (PyCFunction)(void (*)(void))csp_select, METH_FASTCALL,
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

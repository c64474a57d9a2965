/* channel.c - Channel, its reader and writer ends, matching, poison, retire.
 *
 * All state here is changed with the GIL held.  A read or write first tries
 * to complete at once against a blocked peer or the buffer; only if it cannot
 * does it link an offer into the channel's queue and wait.  A writer that
 * finds a blocked reader hands it the message and goes on: one wake-up per
 * rendezvous.
 */
#include "csp.h"

#include <structmember.h>

/* ------------------------------------------------------------------ */
/* Offer queues                                                        */

void
csp_offer_link(csp_offer *o)
{
    ChannelObject *ch = o->chan;
    csp_offer **head = o->is_write ? &ch->wq_head : &ch->rq_head;
    csp_offer **tail = o->is_write ? &ch->wq_tail : &ch->rq_tail;
    o->next = NULL;
    o->prev = *tail;
    if (*tail)
        (*tail)->next = o;
    else
        *head = o;
    *tail = o;
    o->linked = 1;
}

void
csp_offer_unlink(csp_offer *o)
{
    if (!o->linked)
        return;
    ChannelObject *ch = o->chan;
    csp_offer **head = o->is_write ? &ch->wq_head : &ch->rq_head;
    csp_offer **tail = o->is_write ? &ch->wq_tail : &ch->rq_tail;
    if (o->prev)
        o->prev->next = o->next;
    else
        *head = o->next;
    if (o->next)
        o->next->prev = o->prev;
    else
        *tail = o->prev;
    o->prev = o->next = NULL;
    o->linked = 0;
}

/* ------------------------------------------------------------------ */
/* Errors                                                              */

static void
raise_poisoned(void)
{
    PyErr_SetString(csp_st->PoisonError, "channel is poisoned");
}

static void
raise_retired(const char *what)
{
    PyErr_SetString(csp_st->RetireError, what);
}

void
csp_raise_for_status(int status)
{
    switch (status) {
    case CSP_POISONED:
        raise_poisoned();
        break;
    case CSP_RETIRED:
        raise_retired("channel is retired");
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

int
csp_end_check_usable(EndObject *end)
{
    if (end->retired) {
        raise_retired(end->is_writer ? "this writer end is retired"
                                     : "this reader end is retired");
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------ */
/* Matching (GIL held)                                                 */

/* Make room for one more buffered message (the ring grows on demand, so a
 * large buffer costs nothing until it fills).  0/-1 with MemoryError. */
static int
buf_reserve(ChannelObject *ch)
{
    if (ch->count < ch->slots)
        return 0;
    Py_ssize_t slots = ch->slots ? ch->slots * 2 : 8;
    if (slots > ch->capacity)
        slots = ch->capacity;
    PyObject **buf = PyMem_Calloc((size_t)slots, sizeof(PyObject *));
    if (!buf) {
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t i = 0; i < ch->count; i++)
        buf[i] = ch->buf[(ch->head + i) % ch->slots];
    PyMem_Free(ch->buf);
    ch->buf = buf;
    ch->slots = slots;
    ch->head = 0;
    return 0;
}

/* Steals msg; the caller made room with buf_reserve() (or just popped one). */
static inline void
buf_push(ChannelObject *ch, PyObject *msg)
{
    ch->buf[(ch->head + ch->count) % ch->slots] = msg;
    ch->count++;
}

static inline PyObject *
buf_pop(ChannelObject *ch)
{
    PyObject *m = ch->buf[ch->head];
    ch->buf[ch->head] = NULL;
    ch->head = (ch->head + 1) % ch->slots;
    ch->count--;
    return m;
}

int
csp_try_read(ChannelObject *ch, PyObject **msg_out)
{
    if (ch->poisoned) {
        raise_poisoned();
        return -1;
    }
    csp_offer *w = ch->wq_head;
    if (ch->count > 0) {
        *msg_out = buf_pop(ch);
        if (w) {
            /* A blocked writer's message takes the freed slot. */
            buf_push(ch, Py_NewRef(w->msg));
            csp_task_complete(w->task, CSP_DONE, w->index, NULL);
        }
        return 1;
    }
    if (w) {
        *msg_out = Py_NewRef(w->msg);
        csp_task_complete(w->task, CSP_DONE, w->index, NULL);
        return 1;
    }
    if (ch->no_writers) {
        raise_retired("channel is retired: every writer has retired");
        return -1;
    }
    return 0;
}

int
csp_try_write(ChannelObject *ch, PyObject *msg)
{
    if (ch->poisoned) {
        raise_poisoned();
        return -1;
    }
    if (ch->no_readers) {
        raise_retired("channel is retired: every reader has retired");
        return -1;
    }
    csp_offer *r = ch->rq_head;
    if (r) {
        csp_task_complete(r->task, CSP_DONE, r->index, Py_NewRef(msg));
        return 1;
    }
    if (ch->count < ch->capacity) {
        if (buf_reserve(ch) < 0)
            return -1;
        buf_push(ch, Py_NewRef(msg));
        return 1;
    }
    return 0;
}

/* Wake every task blocked on one side of `ch` with `status`. */
static void
wake_queue(ChannelObject *ch, int writers, int status)
{
    csp_offer *o;
    while ((o = writers ? ch->wq_head : ch->rq_head) != NULL)
        csp_task_complete(o->task, status, o->index, NULL);
}

static void
channel_poison(ChannelObject *ch)
{
    if (ch->poisoned)
        return;
    ch->poisoned = 1;
    wake_queue(ch, 0, CSP_POISONED);
    wake_queue(ch, 1, CSP_POISONED);
    /* Dropped last: a message's __del__ may run arbitrary code. */
    while (ch->count > 0) {
        PyObject *m = buf_pop(ch);
        Py_DECREF(m);
    }
}

static void
end_retire_impl(EndObject *e)
{
    if (e->retired)
        return;
    e->retired = 1;
    ChannelObject *ch = e->chan;
    if (e->is_writer) {
        if (--ch->nwriters <= 0 && !ch->no_writers) {
            ch->no_writers = 1;
            /* Readers block only when nothing is buffered or offered. */
            if (ch->count == 0 && !ch->wq_head)
                wake_queue(ch, 0, CSP_RETIRED);
        }
    }
    else {
        if (--ch->nreaders <= 0 && !ch->no_readers) {
            ch->no_readers = 1;
            wake_queue(ch, 1, CSP_RETIRED);
        }
    }
}

/* ------------------------------------------------------------------ */
/* Blocking read and write                                             */

/* The task about to read or write on `end`, or NULL with an exception (the
 * end is retired or its channel poisoned, or this process was killed). */
static TaskObject *
task_for_operation(EndObject *end)
{
    if (csp_end_check_usable(end) < 0)
        return NULL;
    TaskObject *t = csp_current_task();
    if (t && t->killed) {
        csp_raise_for_status(CSP_KILLED);
        return NULL;
    }
    return t;
}

/* Offer one read (msg NULL) or write of `msg` on `ch` and wait for a peer.
 * The task's final status, CSP_RETRY (try the channel again), or -1. */
static int
offer_and_wait(TaskObject *t, ChannelObject *ch, PyObject *msg, int is_write)
{
    if (csp_task_prepare(t, 1) < 0)
        return -1;
    csp_offer *o = &t->offers[0];
    o->task = t;
    o->chan = ch;
    o->msg = msg;
    o->index = 0;
    o->is_write = is_write;
    t->noffers = 1;
    csp_offer_link(o);
    return csp_task_wait(t, -1.0, CSP_WAIT_CHANNEL);
}

static PyObject *
channel_read(EndObject *end)
{
    TaskObject *t = task_for_operation(end);
    if (!t)
        return NULL;
    PyObject *msg;
    int st;
    do {
        int r = csp_try_read(end->chan, &msg);
        if (r)
            return r < 0 ? NULL : msg;
        st = offer_and_wait(t, end->chan, NULL, 0);
    } while (st == CSP_RETRY);
    if (st == CSP_DONE) {
        msg = t->msg;
        t->msg = NULL;
        return msg;
    }
    if (st >= 0)
        csp_raise_for_status(st);
    return NULL;
}

static int
channel_write(EndObject *end, PyObject *msg)
{
    TaskObject *t = task_for_operation(end);
    if (!t)
        return -1;
    int st;
    do {
        int r = csp_try_write(end->chan, msg);
        if (r)
            return r < 0 ? -1 : 0;
        st = offer_and_wait(t, end->chan, msg, 1);
    } while (st == CSP_RETRY);
    if (st == CSP_DONE)
        return 0;
    if (st >= 0)
        csp_raise_for_status(st);
    return -1;
}

/* ------------------------------------------------------------------ */
/* Channel ends                                                        */

typedef struct {
    EndObject base;
    vectorcallfunc vectorcall;
} EndCallObject;

int
csp_check_call(size_t nargsf, PyObject *kwnames, int is_writer)
{
    if (PyVectorcall_NARGS(nargsf) == (Py_ssize_t)is_writer &&
        !(kwnames && PyTuple_GET_SIZE(kwnames)))
        return 0;
    PyErr_SetString(PyExc_TypeError,
                    is_writer ? "a writer end takes exactly one message: cout(msg); "
                                "to read, use a reader end (ch.reader(), +ch or IN(ch))"
                              : "a reader end is called with no arguments: msg = cin(); "
                                "to write, use a writer end (ch.writer(), -ch or OUT(ch))");
    return -1;
}

static PyObject *
end_read_vectorcall(PyObject *self, PyObject *const *Py_UNUSED(args), size_t nargsf,
                    PyObject *kwnames)
{
    if (csp_check_call(nargsf, kwnames, 0) < 0)
        return NULL;
    return channel_read((EndObject *)self);
}

static PyObject *
end_write_vectorcall(PyObject *self, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    if (csp_check_call(nargsf, kwnames, 1) < 0)
        return NULL;
    if (channel_write((EndObject *)self, args[0]) < 0)
        return NULL;
    Py_RETURN_NONE;
}

/* New reference: a fresh end joined to `ch`. */
static PyObject *
end_create(ChannelObject *ch, int is_writer)
{
    PyTypeObject *tp = is_writer ? csp_st->EndWriteType : csp_st->EndReadType;
    EndCallObject *e = PyObject_GC_New(EndCallObject, tp);
    if (!e)
        return NULL;
    e->base.chan = (ChannelObject *)Py_NewRef(ch);
    e->base.retired = 0;
    e->base.is_writer = (char)is_writer;
    e->base.fair_stamp = 0;
    e->vectorcall = is_writer ? end_write_vectorcall : end_read_vectorcall;
    if (is_writer)
        ch->nwriters++;
    else
        ch->nreaders++;
    PyObject_GC_Track(e);
    return (PyObject *)e;
}

static int
end_traverse(EndObject *e, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(e));  /* a heap type: its instances keep it alive */
    Py_VISIT(e->chan);
    return 0;
}

static int
end_clear(EndObject *e)
{
    Py_CLEAR(e->chan);
    return 0;
}

static void
end_dealloc(EndObject *e)
{
    PyObject_GC_UnTrack(e);
    end_clear(e);
    PyTypeObject *tp = Py_TYPE(e);
    tp->tp_free((PyObject *)e);
    Py_DECREF(tp);
}

static PyObject *
end_new_from_python(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    PyObject *ch;
    static char *kwlist[] = {"channel", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O:channel end", kwlist, &ch))
        return NULL;
    if (!PyObject_TypeCheck(ch, csp_st->ChannelType)) {
        PyErr_Format(PyExc_TypeError, "%s() takes a Channel, not %.100s",
                     type->tp_name, Py_TYPE(ch)->tp_name);
        return NULL;
    }
    return end_create((ChannelObject *)ch, type == csp_st->EndWriteType);
}

static PyObject *
end_retire(EndObject *e, PyObject *Py_UNUSED(ignored))
{
    end_retire_impl(e);
    Py_RETURN_NONE;
}

static PyObject *
end_poison(EndObject *e, PyObject *Py_UNUSED(ignored))
{
    channel_poison(e->chan);
    Py_RETURN_NONE;
}

static PyObject *
end_repr(EndObject *e)
{
    const char *kind = e->is_writer ? "ChannelEndWrite" : "ChannelEndRead";
    if (e->chan->name != Py_None)
        return PyUnicode_FromFormat("<%s on Channel %R%s>", kind, e->chan->name,
                                    e->retired ? " (retired)" : "");
    return PyUnicode_FromFormat("<%s on Channel at %p%s>", kind, (void *)e->chan,
                                e->retired ? " (retired)" : "");
}

static PyObject *
end_get_channel(EndObject *e, void *Py_UNUSED(c))
{
    return Py_NewRef((PyObject *)e->chan);
}

static PyObject *
end_get_retired(EndObject *e, void *Py_UNUSED(c))
{
    return PyBool_FromLong(e->retired);
}

static PyMethodDef end_methods[] = {
    {"retire", (PyCFunction)end_retire, METH_NOARGS,
     "Leave the channel. Harmless twice; using a retired end raises ChannelRetireException."},
    {"poison", (PyCFunction)end_poison, METH_NOARGS,
     "Poison the channel: every blocked and later operation raises ChannelPoisonException."},
    {NULL}
};

static PyGetSetDef end_getset[] = {
    {"channel", (getter)end_get_channel, NULL, "the Channel this end belongs to", NULL},
    {"retired", (getter)end_get_retired, NULL, "True once retire() was called", NULL},
    {NULL}
};

/* __vectorcalloffset__: how a heap type names tp_vectorcall_offset (3.9+). */
static PyMemberDef end_members[] = {
    {"__vectorcalloffset__", T_PYSSIZET, offsetof(EndCallObject, vectorcall), READONLY, NULL},
    {NULL}
};

static PyType_Slot end_read_slots[] = {
    {Py_tp_doc, "ChannelEndRead(channel): reader end. msg = end() blocks until a writer offers a "
                "message; raises ChannelPoisonException or ChannelRetireException."},
    {Py_tp_new, end_new_from_python},
    {Py_tp_dealloc, end_dealloc},
    {Py_tp_traverse, end_traverse},
    {Py_tp_clear, end_clear},
    {Py_tp_call, PyVectorcall_Call},
    {Py_tp_repr, end_repr},
    {Py_tp_methods, end_methods},
    {Py_tp_getset, end_getset},
    {Py_tp_members, end_members},
    {0, NULL}
};

static PyType_Slot end_write_slots[] = {
    {Py_tp_doc, "ChannelEndWrite(channel): writer end. end(msg) blocks until a reader takes the "
                "message (or it fits in the buffer); raises ChannelPoisonException or "
                "ChannelRetireException."},
    {Py_tp_new, end_new_from_python},
    {Py_tp_dealloc, end_dealloc},
    {Py_tp_traverse, end_traverse},
    {Py_tp_clear, end_clear},
    {Py_tp_call, PyVectorcall_Call},
    {Py_tp_repr, end_repr},
    {Py_tp_methods, end_methods},
    {Py_tp_getset, end_getset},
    {Py_tp_members, end_members},
    {0, NULL}
};

#define END_FLAGS (Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL | \
                   Py_TPFLAGS_IMMUTABLETYPE)

static PyType_Spec end_read_spec = {
    .name = "pycsp.ChannelEndRead",
    .basicsize = sizeof(EndCallObject),
    .flags = END_FLAGS,
    .slots = end_read_slots,
};

static PyType_Spec end_write_spec = {
    .name = "pycsp.ChannelEndWrite",
    .basicsize = sizeof(EndCallObject),
    .flags = END_FLAGS,
    .slots = end_write_slots,
};

/* ------------------------------------------------------------------ */
/* Channel                                                             */

static PyObject *
channel_alloc(PyTypeObject *type, PyObject *name, Py_ssize_t capacity)
{
    ChannelObject *ch = (ChannelObject *)type->tp_alloc(type, 0);
    if (!ch)
        return NULL;
    ch->name = Py_NewRef(name);
    ch->capacity = capacity;
    ch->buf = NULL;
    ch->slots = 0;
    return (PyObject *)ch;
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

static PyObject *
channel_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    PyObject *name = Py_None, *buffer = NULL;
    static char *kwlist[] = {"name", "buffer", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|OO:Channel", kwlist, &name, &buffer))
        return NULL;
    Py_ssize_t capacity = 0;
    if (csp_parse_capacity(buffer, &capacity) < 0)
        return NULL;
    return channel_alloc(type, name, capacity);
}

static int
channel_traverse(ChannelObject *ch, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(ch));  /* a heap type: its instances keep it alive */
    Py_VISIT(ch->name);
    for (Py_ssize_t i = 0; i < ch->count; i++)
        Py_VISIT(ch->buf[(ch->head + i) % ch->slots]);
    return 0;
}

static int
channel_clear(ChannelObject *ch)
{
    Py_CLEAR(ch->name);
    while (ch->count > 0) {
        PyObject *m = buf_pop(ch);
        Py_DECREF(m);
    }
    return 0;
}

static void
channel_dealloc(ChannelObject *ch)
{
    PyObject_GC_UnTrack(ch);
    if (ch->weakreflist)
        PyObject_ClearWeakRefs((PyObject *)ch);
    channel_clear(ch);
    PyMem_Free(ch->buf);
    PyTypeObject *tp = Py_TYPE(ch);
    tp->tp_free((PyObject *)ch);
    Py_DECREF(tp);
}

static PyObject *
channel_reader(ChannelObject *ch, PyObject *Py_UNUSED(ignored))
{
    return end_create(ch, 0);
}

static PyObject *
channel_writer(ChannelObject *ch, PyObject *Py_UNUSED(ignored))
{
    return end_create(ch, 1);
}

static PyObject *
channel_poison_method(ChannelObject *ch, PyObject *Py_UNUSED(ignored))
{
    channel_poison(ch);
    Py_RETURN_NONE;
}

/* Channel() * n and n * Channel(): n fresh channels with the same buffer. */
static PyObject *
channel_multiply(PyObject *a, PyObject *b)
{
    PyObject *chobj;
    Py_ssize_t n;
    int r = csp_parse_multiplier(a, b, csp_st->ChannelType, &chobj, &n);
    if (r)
        return r < 0 ? NULL : Py_NewRef(Py_NotImplemented);
    ChannelObject *ch = (ChannelObject *)chobj;
    PyObject *list = PyList_New(n);
    if (!list)
        return NULL;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *c = channel_alloc(Py_TYPE(ch), Py_None, ch->capacity);
        if (!c) {
            Py_DECREF(list);
            return NULL;
        }
        PyList_SET_ITEM(list, i, c);
    }
    return list;
}

static PyObject *
channel_repr(ChannelObject *ch)
{
    if (ch->name != Py_None)
        return PyUnicode_FromFormat("<Channel %R buffer=%zd>", ch->name, ch->capacity);
    return PyUnicode_FromFormat("<Channel at %p buffer=%zd>", (void *)ch, ch->capacity);
}

static PyObject *
channel_stats(ChannelObject *ch, PyObject *Py_UNUSED(ignored))
{
    Py_ssize_t nr = 0, nw = 0;
    for (csp_offer *o = ch->rq_head; o; o = o->next)
        nr++;
    for (csp_offer *o = ch->wq_head; o; o = o->next)
        nw++;
    return Py_BuildValue("{s:n,s:n,s:n,s:n,s:n,s:O,s:O,s:O}", "buffered", ch->count,
                         "blocked_readers", nr, "blocked_writers", nw, "readers", ch->nreaders,
                         "writers", ch->nwriters, "poisoned", ch->poisoned ? Py_True : Py_False,
                         "readers_retired", ch->no_readers ? Py_True : Py_False,
                         "writers_retired", ch->no_writers ? Py_True : Py_False);
}

static PyMethodDef channel_methods[] = {
    {"reader", (PyCFunction)channel_reader, METH_NOARGS, "Join as one more reader: a ChannelEndRead."},
    {"writer", (PyCFunction)channel_writer, METH_NOARGS, "Join as one more writer: a ChannelEndWrite."},
    {"poison", (PyCFunction)channel_poison_method, METH_NOARGS, "Poison the channel."},
    {"statistics", (PyCFunction)channel_stats, METH_NOARGS,
     "A dict of counts (buffered, blocked readers/writers, joined ends, flags)."},
    {NULL}
};

static PyMemberDef channel_members[] = {
    {"name", T_OBJECT, offsetof(ChannelObject, name), READONLY, "the channel's name"},
    {"buffer", T_PYSSIZET, offsetof(ChannelObject, capacity), READONLY, "buffer capacity"},
    {"__weaklistoffset__", T_PYSSIZET, offsetof(ChannelObject, weakreflist), READONLY, NULL},
    {NULL}
};

static PyObject *
channel_pos(PyObject *ch)
{
    return end_create((ChannelObject *)ch, 0);
}

static PyObject *
channel_neg(PyObject *ch)
{
    return end_create((ChannelObject *)ch, 1);
}

static PyType_Slot channel_slots[] = {
    {Py_tp_doc, "Channel(name=None, buffer=0): any-to-any channel. buffer=0 is a rendezvous; "
                "buffer=N lets N messages wait in FIFO order."},
    {Py_tp_new, channel_new},
    {Py_tp_dealloc, channel_dealloc},
    {Py_tp_traverse, channel_traverse},
    {Py_tp_clear, channel_clear},
    {Py_tp_repr, channel_repr},
    {Py_tp_methods, channel_methods},
    {Py_tp_members, channel_members},
    {Py_nb_multiply, channel_multiply},
    {Py_nb_positive, channel_pos},
    {Py_nb_negative, channel_neg},
    {0, NULL}
};

static PyType_Spec channel_spec = {
    .name = "pycsp.Channel",
    .basicsize = sizeof(ChannelObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_BASETYPE |
             Py_TPFLAGS_IMMUTABLETYPE,
    .slots = channel_slots,
};

int
csp_channel_init_module(PyObject *m)
{
    if (!(csp_st->ChannelType = csp_add_type(m, &channel_spec, "Channel")) ||
        !(csp_st->EndReadType = csp_add_type(m, &end_read_spec, "ChannelEndRead")) ||
        !(csp_st->EndWriteType = csp_add_type(m, &end_write_spec, "ChannelEndWrite")))
        return -1;
    return 0;
}

/* channel.c - the channels of the threads and greenlets backends: Channel,
 * its reader and writer ends, and the matching rules (rules/) instantiated
 * for private memory, where a handle is a pointer, a message a PyObject and
 * the GIL the lock.  A waiter is a Task (wait/task.c).
 */
#include "csp.h"

#include <structmember.h>

/* ------------------------------------------------------------------ */
/* The rules in private memory                                         */

/* Claims and results happen under the GIL, one after the other: the claim
 * needs no compare-and-swap, and a waiting thread never sees CLAIMED once it
 * holds the GIL again. */
static int
task_claim(csp_ref waiter)
{
    TaskObject *t = csp_private_ptr(waiter);
    if (atomic_load_explicit(&t->status, memory_order_relaxed) != CSP_WAITING)
        return 0;
    atomic_store_explicit(&t->status, CSP_CLAIMED_BY(0), memory_order_relaxed);
    return 1;
}

static void
task_finish(csp_ref waiter, int status, int64_t index, csp_ref msg)
{
    csp_task_complete(csp_private_ptr(waiter), status, index, csp_private_ptr(msg));
}

static csp_ref
msg_take(csp_ref msg)
{
    return csp_private_ref(Py_NewRef((PyObject *)csp_private_ptr(msg)));
}

static void
msg_drop(csp_ref msg)
{
    Py_XDECREF((PyObject *)csp_private_ptr(msg));
}

static csp_ref
ring_alloc(int64_t slots)
{
    void *ring = PyMem_Calloc((size_t)slots, sizeof(csp_ref));
    if (!ring)
        PyErr_NoMemory();
    return csp_private_ref(ring);
}

static void
ring_free(csp_ref ring)
{
    PyMem_Free(csp_private_ptr(ring));
}

static const csp_rules in_private_memory = {
    .ptr = csp_private_ptr,
    .ref = csp_private_ref,
    .lock = NULL,   /* the GIL */
    .unlock = NULL,
    .claim = task_claim,
    .finish = task_finish,
    .take = msg_take,
    .drop = msg_drop,
    .ring_alloc = ring_alloc,
    .ring_free = ring_free,
};

static csp_offer *
task_prepare(void *self, int64_t n)
{
    TaskObject *t = self;
    return csp_task_prepare(t, n) < 0 ? NULL : t->offers;
}

static void
task_blocked(void *self, int64_t noffers, double Py_UNUSED(deadline))
{
    ((TaskObject *)self)->noffers = noffers;   /* csp_task_wait counts it as blocked */
}

static int
task_wait(void *self, double deadline)
{
    return csp_task_wait(self, deadline, CSP_WAIT_CHANNEL);
}

static csp_ref
task_result(void *self, int64_t *chosen)
{
    TaskObject *t = self;
    *chosen = t->chosen;
    PyObject *msg = t->msg;
    t->msg = NULL;
    return csp_private_ref(msg);
}

static int
task_stopped(void *self)
{
    return ((TaskObject *)self)->killed ? CSP_KILLED : 0;
}

/* [(channel, is_write), ...] of the Task's offers, new reference.  The
 * offers stay in the Task after they are withdrawn, and their channels are
 * alive while the operation runs (its ends hold them). */
static PyObject *
task_offers(TaskObject *t)
{
    PyObject *waits = PyList_New(t->noffers);
    if (!waits)
        return NULL;
    for (Py_ssize_t i = 0; i < t->noffers; i++) {
        char *chan = csp_private_ptr(t->offers[i].chan);
        PyObject *ch = (PyObject *)(chan - offsetof(ChannelObject, s));
        PyObject *item = Py_BuildValue("(OO)", ch, t->offers[i].is_write ? Py_True : Py_False);
        if (!item) {
            Py_DECREF(waits);
            return NULL;
        }
        PyList_SET_ITEM(waits, i, item);
    }
    return waits;
}

/* ("local", generation, woken, [(channel, is_write), ...]) */
static PyObject *
task_describe(void *self)
{
    PyObject *waits = task_offers(self);
    if (!waits)
        return NULL;
    return Py_BuildValue("(sKnN)", "local", (unsigned long long)csp_deadlock_generation,
                         csp_deadlock_woken, waits);
}

static const csp_waiting as_task = {
    .prepare = task_prepare,
    .self_ref = csp_private_ref,
    .publishing = NULL,
    .blocked = task_blocked,
    .wait = task_wait,
    .result = task_result,
    .stopped = task_stopped,
    .describe = task_describe,
};

static void
channel_poison(ChannelObject *ch)
{
    csp_poison(&in_private_memory, &ch->s, CSP_POISONED);
}

static void
end_retire_impl(EndObject *e)
{
    if (e->retired)
        return;
    e->retired = 1;
    csp_retire(&in_private_memory, &e->chan->s, e->is_writer, CSP_RETIRED);
}

/* ------------------------------------------------------------------ */
/* Blocking read and write                                             */

/* The task about to read or write on `end`, or NULL with an exception (the
 * end is retired, or this process was killed). */
static TaskObject *
task_for_operation(EndObject *end)
{
    if (end->retired) {
        csp_raise_end_retired(end->is_writer);
        return NULL;
    }
    TaskObject *t = csp_current_task();
    if (t && t->killed) {
        csp_raise_for_status(CSP_KILLED);
        return NULL;
    }
    return t;
}

static PyObject *
channel_read(EndObject *end)
{
    TaskObject *t = task_for_operation(end);
    if (!t)
        return NULL;
    csp_ref msg;
    if (csp_communicate(&in_private_memory, &as_task, t, &end->chan->s, 0, 0, &msg) < 0)
        return NULL;
    return csp_private_ptr(msg);
}

static int
channel_write(EndObject *end, PyObject *msg)
{
    TaskObject *t = task_for_operation(end);
    if (!t)
        return -1;
    csp_ref unused;
    return csp_communicate(&in_private_memory, &as_task, t, &end->chan->s, 1,
                           csp_private_ref(msg), &unused);
}

int
csp_inprocess_select(const csp_alt_guard *alt, Py_ssize_t n, Py_ssize_t *chosen, PyObject **msg)
{
    TaskObject *t = csp_current_task();
    if (!t)
        return -1;
    if (t->killed) {
        csp_raise_for_status(CSP_KILLED);
        return -1;
    }
    /* Few on the stack: a greenlet copies its whole C stack at every switch. */
    csp_guard small[4], *gs = n <= 4 ? small : PyMem_Calloc((size_t)n, sizeof(csp_guard));
    if (!gs) {
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t k = 0; k < n; k++) {
        csp_guard *g = &gs[k];
        g->kind = alt[k].kind;
        g->seconds = alt[k].seconds;
        g->msg = csp_private_ref(alt[k].msg);
        if (alt[k].end) {
            EndObject *e = (EndObject *)alt[k].end;
            g->c = &e->chan->s;
            g->end_retired = &e->retired;
        }
        else {
            g->c = NULL;
            g->end_retired = NULL;
        }
    }
    int64_t pick;
    csp_ref got;
    int r = csp_select(&in_private_memory, &as_task, t, gs, n, NULL, &pick, &got);
    if (gs != small)
        PyMem_Free(gs);
    if (r < 0)
        return -1;
    *chosen = pick;
    *msg = csp_private_ptr(got);
    return 0;
}

/* ------------------------------------------------------------------ */
/* Channel ends                                                        */

typedef struct {
    EndObject base;
    vectorcallfunc vectorcall;
} EndCallObject;

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
        ch->s.nwriters++;
    else
        ch->s.nreaders++;
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
     "retire($self, /)\n--\n\n"
     "Leave the channel: this end no longer counts as a reader (writer).\n\n"
     "Harmless twice. Once every reader has retired, writes raise\n"
     "ChannelRetireException; once every writer has, reads do, after the buffer\n"
     "is empty. Using this end afterwards raises ChannelRetireException."},
    {"poison", (PyCFunction)end_poison, METH_NOARGS,
     "poison($self, /)\n--\n\n"
     "Poison the channel: every blocked and every later read or write on it\n"
     "raises ChannelPoisonException; buffered messages are dropped."},
    CSP_CLASS_GETITEM,
    {NULL}
};

static PyGetSetDef end_getset[] = {
    {"channel", (getter)end_get_channel, NULL, "The Channel this end belongs to.", NULL},
    {"retired", (getter)end_get_retired, NULL, "True once ``retire()`` was called on this end.", NULL},
    {NULL}
};

/* __vectorcalloffset__: how a heap type names tp_vectorcall_offset (3.9+). */
static PyMemberDef end_members[] = {
    {"__vectorcalloffset__", T_PYSSIZET, offsetof(EndCallObject, vectorcall), READONLY, NULL},
    {NULL}
};

/* The two end types differ only in their doc (and in the vectorcall each end
 * stores for itself). */
#define END_SLOTS(doc)                                                                    \
    {                                                                                     \
        {Py_tp_doc, doc}, {Py_tp_new, end_new_from_python}, {Py_tp_dealloc, end_dealloc}, \
        {Py_tp_traverse, end_traverse}, {Py_tp_clear, end_clear},                        \
        {Py_tp_call, PyVectorcall_Call}, {Py_tp_repr, end_repr},                          \
        {Py_tp_methods, end_methods}, {Py_tp_getset, end_getset},                        \
        {Py_tp_members, end_members}, {0, NULL},                                          \
    }

static PyType_Slot end_read_slots[] = END_SLOTS(
    "ChannelEndRead(channel)\n--\n\n"
    "A reader end of ``channel``: ``msg = end()`` blocks until a writer offers a\n"
    "message, and returns it.\n\n"
    "Made by ``channel.reader()``, ``+channel`` or ``IN(channel)``; each is one more\n"
    "reader of the channel. An end is itself a message: it can be sent over a\n"
    "channel and used by the receiver.\n\n"
    "Args:\n"
    "    channel: the Channel to join.\n\n"
    "Raises:\n"
    "    ChannelPoisonException: (on a read) the channel is poisoned.\n"
    "    ChannelRetireException: (on a read) this end is retired, or every writer\n"
    "        has retired and nothing is buffered.\n"
    "    DeadlockError: (on a read) every CSP process is blocked.\n"
    "    TypeError: ``channel`` is not a Channel.");

static PyType_Slot end_write_slots[] = END_SLOTS(
    "ChannelEndWrite(channel)\n--\n\n"
    "A writer end of ``channel``: ``end(msg)`` blocks until a reader takes ``msg``\n"
    "(or it fits in the buffer), and returns None. The reader gets the object\n"
    "itself (a reference).\n\n"
    "Made by ``channel.writer()``, ``-channel`` or ``OUT(channel)``; each is one more\n"
    "writer of the channel. An end is itself a message: it can be sent over a\n"
    "channel and used by the receiver.\n\n"
    "Args:\n"
    "    channel: the Channel to join.\n\n"
    "Raises:\n"
    "    ChannelPoisonException: (on a write) the channel is poisoned.\n"
    "    ChannelRetireException: (on a write) this end is retired, or every reader\n"
    "        has retired.\n"
    "    DeadlockError: (on a write) every CSP process is blocked.\n"
    "    TypeError: ``channel`` is not a Channel.");

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
    ch->s.capacity = capacity;
    return (PyObject *)ch;
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
    csp_ref *ring = csp_private_ptr(ch->s.ring);
    for (int64_t i = 0; i < ch->s.count; i++)
        Py_VISIT((PyObject *)csp_private_ptr(ring[(ch->s.head + i) % ch->s.slots]));
    return 0;
}

static int
channel_clear(ChannelObject *ch)
{
    Py_CLEAR(ch->name);
    csp_ring_drain(&in_private_memory, &ch->s);
    return 0;
}

static void
channel_dealloc(ChannelObject *ch)
{
    PyObject_GC_UnTrack(ch);
    if (ch->weakreflist)
        PyObject_ClearWeakRefs((PyObject *)ch);
    channel_clear(ch);
    PyMem_Free(csp_private_ptr(ch->s.ring));
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
        PyObject *c = channel_alloc(Py_TYPE(ch), Py_None, ch->s.capacity);
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
        return PyUnicode_FromFormat("<Channel %R buffer=%zd>", ch->name, (Py_ssize_t)ch->s.capacity);
    return PyUnicode_FromFormat("<Channel at %p buffer=%zd>", (void *)ch, (Py_ssize_t)ch->s.capacity);
}

static PyObject *
channel_stats(ChannelObject *ch, PyObject *Py_UNUSED(ignored))
{
    Py_ssize_t nr = 0, nw = 0;
    for (csp_ref o = ch->s.rq_head; o; o = ((csp_offer *)csp_private_ptr(o))->next)
        nr++;
    for (csp_ref o = ch->s.wq_head; o; o = ((csp_offer *)csp_private_ptr(o))->next)
        nw++;
    csp_chan *c = &ch->s;
    return Py_BuildValue("{s:n,s:n,s:n,s:n,s:n,s:O,s:O,s:O}", "buffered", (Py_ssize_t)c->count,
                         "blocked_readers", nr, "blocked_writers", nw, "readers",
                         (Py_ssize_t)c->nreaders, "writers", (Py_ssize_t)c->nwriters, "poisoned",
                         c->poisoned ? Py_True : Py_False, "readers_retired",
                         c->no_readers ? Py_True : Py_False, "writers_retired",
                         c->no_writers ? Py_True : Py_False);
}

static PyMethodDef channel_methods[] = {
    {"reader", (PyCFunction)channel_reader, METH_NOARGS,
     "reader($self, /)\n--\n\nJoin as one more reader: a new ChannelEndRead (also ``+ch``)."},
    {"writer", (PyCFunction)channel_writer, METH_NOARGS,
     "writer($self, /)\n--\n\nJoin as one more writer: a new ChannelEndWrite (also ``-ch``)."},
    {"poison", (PyCFunction)channel_poison_method, METH_NOARGS,
     "poison($self, /)\n--\n\n"
     "Poison the channel: every blocked and every later read or write on it\n"
     "raises ChannelPoisonException; buffered messages are dropped."},
    {"statistics", (PyCFunction)channel_stats, METH_NOARGS,
     "statistics($self, /)\n--\n\n"
     "A dict of what the channel holds now: ``buffered``, ``blocked_readers``,\n"
     "``blocked_writers``, ``readers`` and ``writers`` (joined ends), and the flags\n"
     "``poisoned``, ``readers_retired``, ``writers_retired``."},
    CSP_CLASS_GETITEM,
    {NULL}
};

static PyMemberDef channel_members[] = {
    {"name", T_OBJECT, offsetof(ChannelObject, name), READONLY,
     "The channel's name, as given (None if unnamed)."},
    {"buffer", T_LONGLONG, offsetof(ChannelObject, s.capacity), READONLY,
     "How many messages may wait in the channel; 0 for a rendezvous."},
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
    {Py_tp_doc, "Channel(name=None, buffer=0)\n--\n\n"
                "An any-to-any channel: any number of readers and writers.\n\n"
                "``buffer=0`` is a rendezvous: a write returns only when a reader has taken\n"
                "the message. ``buffer=N`` lets N messages wait in FIFO order; a write blocks\n"
                "only when N are waiting. Messages pass by reference (the object itself).\n\n"
                "``ch.reader()``, ``+ch`` and ``IN(ch)`` join one more reader;\n"
                "``ch.writer()``, ``-ch`` and ``OUT(ch)`` one more writer.\n"
                "``Channel() * n`` and ``n * Channel()`` give a list of n new channels with\n"
                "the same buffer.\n\n"
                "Args:\n"
                "    name: names the channel in its repr and in deadlock reports (any object;\n"
                "        None: unnamed).\n"
                "    buffer: how many messages may wait, an int >= 0.\n\n"
                "Raises:\n"
                "    TypeError: ``buffer`` is not an int.\n"
                "    ValueError: ``buffer`` is negative or too large."},
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

/* _blocked_on(task) -> None while it runs, or (kind, [(channel, is_write)...],
 * timed: True, False or None = unknown) while it waits: kind "channel" (a read, write or alternation; an
 * alternation of only a timeout has no channel), "parallel" or "io".  For
 * state dumps; the calling thread's own task counts as waiting while signal
 * handlers that interrupted its wait run. */
static PyObject *
blocked_on(PyObject *Py_UNUSED(m), PyObject *arg)
{
    if (!PyObject_TypeCheck(arg, csp_st->TaskType)) {
        PyErr_SetString(PyExc_TypeError, "_blocked_on(task)");
        return NULL;
    }
    TaskObject *t = (TaskObject *)arg;
    int interrupted = csp_wait_interrupted_by == (const void *)t &&
                      csp_wait_interrupted_op == t->wait_seq;
    if (!interrupted && atomic_load(&t->status) != CSP_WAITING)
        Py_RETURN_NONE;
    static const char *kinds[] = {"channel", "parallel", "io"};
    const char *kind = t->wait_kind >= 0 && t->wait_kind <= 2 ? kinds[(int)t->wait_kind] : "?";
    PyObject *waits = t->wait_kind == CSP_WAIT_CHANNEL ? task_offers(t) : PyList_New(0);
    if (!waits)
        return NULL;
    /* Interrupted, whether it had a deadline is not kept (None). */
    return Py_BuildValue("(sNO)", kind, waits,
                         interrupted ? Py_None : t->inactive ? Py_False : Py_True);
}

static PyMethodDef channel_module_methods[] = {
    {"_blocked_on", blocked_on, METH_O,
     "_blocked_on(task) -> None or (kind, [(channel, is_write)...], timed): for state dumps"},
    {NULL}
};

int
csp_channel_init_module(PyObject *m)
{
    if (PyModule_AddFunctions(m, channel_module_methods) < 0)
        return -1;
    if (!(csp_st->ChannelType = csp_add_type(m, &channel_spec, "Channel")) ||
        !(csp_st->EndReadType = csp_add_type(m, &end_read_spec, "ChannelEndRead")) ||
        !(csp_st->EndWriteType = csp_add_type(m, &end_write_spec, "ChannelEndWrite")))
        return -1;
    return 0;
}

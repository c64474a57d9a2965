/* proxy.c - proxy offers: how a party of another program that alternates
 * over channels of this arena stands in their queues (pycsp.net's agent).
 *
 * A remote party cannot be claimed from inside the core: the commit is a
 * compare-and-swap on the passive party's waiter record, and a remote party
 * has no record here.  So its agent keeps, per (channel, direction) the party
 * waits on, a proxy offer in the channel's queue, whose waiter is a proxy
 * record (shm.h) with the permanent status CSP_PROXY.  A local party that
 * pops it fails to claim it, so the pop treats it as stale and unlinks it
 * (match.h, Q1 and Q3); the failed claim pokes the record
 * (shm_waiter_claim).  The agent, woken, claims the remote party over the
 * network and makes an ordinary attempt on the channel (a select with a
 * SkipGuard), which commits with the local party if it still waits.  None of
 * the matching rules change: a proxy offer is an offer that is always stale.
 *
 * arm() is "peek or link" under the channel's lock: the channel is ready for
 * the remote party, or the proxy offer is linked and a later arrival pokes.
 * One offer per (channel, direction), made at the channel's first use and
 * kept until close(); each channel used holds a reference to the channel in
 * the arena, so that no offer outlives its channel.
 *
 * A proxy belongs to the process that made it: a forked child gets a copy of
 * the object but must never touch the parent's offers.
 */
#include "shared/shm.h"

/* The offers of one channel: a block of shm_offer[2], indexed by is_write. */
typedef struct {
    shm_off chan;
    shm_off offers;
} proxied_channel;

typedef struct {
    PyObject_HEAD
    shm_off record;              /* shm_proxy_record; 0 once freed */
    pid_t owner;                 /* the process that made it */
    char closed;
    int waiting;                 /* threads in wait(): the record outlives close() for them */
    proxied_channel *chans;      /* PyMem */
    Py_ssize_t nchans, chans_cap;
} ShmProxyObject;

static inline shm_proxy_record *
REC(ShmProxyObject *p)
{
    return SHM_PTR(shm_proxy_record, p->record);
}

/* 0, or -1 with RuntimeError (a forked child's copy) or ValueError (closed). */
static int
check_usable(ShmProxyObject *p)
{
    if (p->owner != shm_my_pid) {
        PyErr_SetString(PyExc_RuntimeError,
                        "a _ShmProxy belongs to the process that made it, not to a forked child");
        return -1;
    }
    if (p->closed) {
        PyErr_SetString(PyExc_ValueError, "the _ShmProxy is closed");
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------ */
/* Offers (channel locked)                                             */

/* 1 if a queue holds an offer a commit could claim now: its waiter is
 * WAITING.  Stale offers and proxies' offers stay where they are. */
static int
has_live_offer(shm_off head)
{
    for (shm_off off = head; off; off = SHM_PTR(shm_offer, off)->next) {
        shm_waiter *w = SHM_PTR(shm_waiter, SHM_PTR(shm_offer, off)->waiter);
        if (atomic_load_explicit(&w->status, memory_order_acquire) == CSP_WAITING)
            return 1;
    }
    return 0;
}

/* Would a read by the remote party end without waiting (a message, or an
 * exception)?  As csp_try_read decides, without taking anything. */
static int
ready_to_read(const csp_chan *c)
{
    return c->poisoned || c->count > 0 || has_live_offer(c->wq_head) || c->no_writers;
}

/* The same for a write, as csp_try_write decides. */
static int
ready_to_write(const csp_chan *c)
{
    return c->poisoned || c->no_readers || has_live_offer(c->rq_head) || c->count < c->capacity;
}

/* The entry of `chan`, made (with its offers and a reference to the channel)
 * if `create` and there is none; NULL if there is none, or with an
 * exception if it could not be made. */
static proxied_channel *
find_channel(ShmProxyObject *p, shm_off chan, int create)
{
    for (Py_ssize_t i = 0; i < p->nchans; i++)
        if (p->chans[i].chan == chan)
            return &p->chans[i];
    if (!create)
        return NULL;
    if (p->nchans == p->chans_cap) {
        Py_ssize_t cap = p->chans_cap ? p->chans_cap * 2 : 4;
        proxied_channel *grown = PyMem_Realloc(p->chans, (size_t)cap * sizeof(proxied_channel));
        if (!grown) {
            PyErr_NoMemory();
            return NULL;
        }
        p->chans = grown;
        p->chans_cap = cap;
    }
    shm_off block = shm_alloc(2 * sizeof(shm_offer));
    if (!block)
        return NULL;
    shm_offer *offers = SHM_PTR(shm_offer, block);
    memset(offers, 0, 2 * sizeof(shm_offer));
    for (int is_write = 0; is_write < 2; is_write++) {
        offers[is_write].waiter = p->record;
        offers[is_write].chan = chan;
        offers[is_write].is_write = is_write;
    }
    shm_channel_hold(chan);
    proxied_channel *e = &p->chans[p->nchans++];
    e->chan = chan;
    e->offers = block;
    return e;
}

static void
unlink_offer(proxied_channel *e, int is_write)
{
    csp_chan *c = SHM_PTR(csp_chan, e->chan);
    csp_chan_lock(shm_channel_rules, c);
    csp_offer_unlink(shm_channel_rules, c, &SHM_PTR(shm_offer, e->offers)[is_write]);
    csp_chan_unlock(shm_channel_rules, c);
}

/* Unlink every offer, free them, give the channels back.  The record stays
 * until no thread waits on it (free_record_when_idle). */
static void
release_channels(ShmProxyObject *p)
{
    for (Py_ssize_t i = 0; i < p->nchans; i++) {
        proxied_channel *e = &p->chans[i];
        unlink_offer(e, 0);
        unlink_offer(e, 1);
        shm_free(e->offers);
        shm_channel_release(e->chan);
    }
    PyMem_Free(p->chans);
    p->chans = NULL;
    p->nchans = p->chans_cap = 0;
}

/* Nothing reaches the record any more once its offers are unlinked: every
 * claim of one ran under its channel's lock. */
static void
free_record_when_idle(ShmProxyObject *p)
{
    if (p->closed && p->waiting == 0 && p->record) {
        shm_free(p->record);
        p->record = 0;
    }
}

/* ------------------------------------------------------------------ */
/* The Python type                                                     */

static PyObject *
proxy_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwds, ":_ShmProxy", kwlist))
        return NULL;
    if (!shm_base) {
        PyErr_SetString(PyExc_RuntimeError,
                        "_ShmProxy needs the shared arena: import pycsp.processes first "
                        "(or map the program's arena with csp_ext.shm_attach)");
        return NULL;
    }
    ShmProxyObject *p = (ShmProxyObject *)type->tp_alloc(type, 0);
    if (!p)
        return NULL;
    p->owner = shm_my_pid;
    p->record = shm_alloc(sizeof(shm_proxy_record));
    if (!p->record) {
        p->closed = 1;   /* dealloc: nothing to give back */
        Py_DECREF(p);
        return NULL;
    }
    shm_proxy_record *rec = REC(p);
    memset(rec, 0, sizeof(*rec));
    rec->pid = shm_my_pid;
    atomic_store(&rec->status, CSP_PROXY);
    return (PyObject *)p;
}

static void
proxy_dealloc(ShmProxyObject *p)
{
    if (p->owner == shm_my_pid && !p->closed) {
        release_channels(p);
        p->closed = 1;
        free_record_when_idle(p);
    }
    /* A forked child's copy forgets the parent's offers without touching them. */
    PyMem_Free(p->chans);
    PyTypeObject *tp = Py_TYPE(p);
    tp->tp_free((PyObject *)p);
    Py_DECREF(tp);
}

/* Parse (channel, is_write): 0 with the channel's entry (made if `create`;
 * NULL if there is none) and *is_write, or -1 with an exception. */
static int
channel_args(ShmProxyObject *p, PyObject *const *args, Py_ssize_t nargs, const char *name,
             int create, proxied_channel **entry, int *is_write)
{
    if (nargs != 2) {
        PyErr_Format(PyExc_TypeError, "%s(channel, is_write) takes 2 arguments (%zd given)", name,
                     nargs);
        return -1;
    }
    if (check_usable(p) < 0)
        return -1;
    shm_off chan = shm_channel_offset(args[0]);
    if (!chan)
        return -1;
    if ((*is_write = PyObject_IsTrue(args[1])) < 0)
        return -1;
    *entry = find_channel(p, chan, create);
    return create && !*entry ? -1 : 0;
}

static PyObject *
proxy_arm(ShmProxyObject *p, PyObject *const *args, Py_ssize_t nargs)
{
    proxied_channel *e;
    int is_write;
    if (channel_args(p, args, nargs, "arm", 1, &e, &is_write) < 0)
        return NULL;
    csp_chan *c = SHM_PTR(csp_chan, e->chan);
    shm_offer *o = &SHM_PTR(shm_offer, e->offers)[is_write];
    csp_chan_lock(shm_channel_rules, c);
    int ready = is_write ? ready_to_write(c) : ready_to_read(c);
    if (!ready && !atomic_load_explicit(&o->linked, memory_order_relaxed))
        csp_offer_link(shm_channel_rules, c, o);
    csp_chan_unlock(shm_channel_rules, c);
    return PyBool_FromLong(ready);
}

static PyObject *
proxy_disarm(ShmProxyObject *p, PyObject *const *args, Py_ssize_t nargs)
{
    proxied_channel *e;
    int is_write;
    if (channel_args(p, args, nargs, "disarm", 0, &e, &is_write) < 0)
        return NULL;
    if (e)
        unlink_offer(e, is_write);
    Py_RETURN_NONE;
}

static PyObject *
proxy_wait(ShmProxyObject *p, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"timeout", NULL};
    PyObject *timeout = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|O:wait", kwlist, &timeout))
        return NULL;
    if (check_usable(p) < 0)
        return NULL;
    double deadline;
    if (csp_parse_deadline(timeout, "_ShmProxy.wait()", &deadline) < 0)
        return NULL;
    /* Signals reach Python only in the main thread: its sleeps are sliced, so
     * that one that came just before a sleep waits at most a slice (one
     * during the sleep cuts it short). */
    int is_main = PyThread_get_thread_ident() == csp_main_thread_ident;
    _Atomic uint32_t *poked = &REC(p)->poked;
    PyObject *result = NULL;
    p->waiting++;
    for (;;) {
        if (p->closed) {   /* by another thread, which poked to wake us */
            PyErr_SetString(PyExc_ValueError, "the _ShmProxy was closed while waiting");
            break;
        }
        if (atomic_exchange_explicit(poked, 0, memory_order_acq_rel)) {
            result = Py_True;
            break;
        }
        double until = deadline;
        if (is_main) {
            double end = csp_monotonic() + CSP_SIGNAL_SLICE;
            if (until < 0 || end < until)
                until = end;
        }
        if (deadline >= 0 && csp_monotonic() >= deadline) {
            result = Py_False;
            break;
        }
        Py_BEGIN_ALLOW_THREADS
        csp_futex_wait_op((void *)poked, 0, until, 1);   /* woken, timed out, EINTR: look again */
        Py_END_ALLOW_THREADS
        if (is_main && PyErr_CheckSignals() < 0)
            break;
    }
    p->waiting--;
    free_record_when_idle(p);
    return Py_XNewRef(result);
}

static PyObject *
proxy_poke(ShmProxyObject *p, PyObject *Py_UNUSED(ignored))
{
    if (check_usable(p) < 0)
        return NULL;
    shm_proxy_poke(REC(p));
    Py_RETURN_NONE;
}

static PyObject *
proxy_close(ShmProxyObject *p, PyObject *Py_UNUSED(ignored))
{
    if (p->closed)
        Py_RETURN_NONE;
    if (check_usable(p) < 0)
        return NULL;
    release_channels(p);
    p->closed = 1;
    if (p->waiting)
        shm_proxy_poke(REC(p));   /* they see `closed` and leave; the last frees it */
    free_record_when_idle(p);
    Py_RETURN_NONE;
}

static PyObject *
proxy_get_closed(ShmProxyObject *p, void *Py_UNUSED(closure))
{
    return PyBool_FromLong(p->closed);
}

static PyMethodDef proxy_methods[] = {
    {"arm", (PyCFunction)(void (*)(void))proxy_arm, METH_FASTCALL,
     "arm($self, channel, is_write, /)\n--\n\n"
     "True if the channel is ready for a party that wants to write (is_write) or\n"
     "read it: poisoned, the other side all retired, a live offer of the other\n"
     "side queued, or the buffer has a message (reads) or room (writes).  Else\n"
     "link this proxy's offer into the channel's queue (once) and return False:\n"
     "the next party that pops it pokes the proxy.  Atomic under the channel's lock."},
    {"disarm", (PyCFunction)(void (*)(void))proxy_disarm, METH_FASTCALL,
     "disarm($self, channel, is_write, /)\n--\n\n"
     "Unlink the proxy's offer for (channel, direction) if it is linked."},
    {"wait", (PyCFunction)(void (*)(void))proxy_wait, METH_VARARGS | METH_KEYWORDS,
     "wait($self, /, timeout=None)\n--\n\n"
     "Block until poked (True) or `timeout` seconds passed (False; None: no limit).\n"
     "A poke is consumed once.  Signal handlers run while it waits (Ctrl-C raises).\n"
     "Raises ValueError if another thread closes the proxy meanwhile."},
    {"poke", (PyCFunction)proxy_poke, METH_NOARGS,
     "poke($self, /)\n--\n\nWake a wait() (now, or the next one)."},
    {"close", (PyCFunction)proxy_close, METH_NOARGS,
     "close($self, /)\n--\n\n"
     "Unlink every offer and free the proxy's memory in the arena; harmless twice.\n"
     "Any other use afterwards raises ValueError."},
    {NULL}
};

static PyGetSetDef proxy_getset[] = {
    {"closed", (getter)proxy_get_closed, NULL, "True once close() was called.", NULL},
    {NULL}
};

static PyType_Slot proxy_slots[] = {
    {Py_tp_doc, "_ShmProxy()\n--\n\n"
                "Private (pycsp.net's agent): proxy offers in shared channels for parties of\n"
                "other programs that alternate over them.  A local party that finds a proxy\n"
                "offer cannot commit with it: it unlinks it and pokes the proxy, whose\n"
                "owner then claims the remote party and tries the channel itself.  Needs\n"
                "the shared arena; belongs to the process that made it (a forked child's\n"
                "copy raises RuntimeError)."},
    {Py_tp_new, proxy_new},
    {Py_tp_dealloc, proxy_dealloc},
    {Py_tp_methods, proxy_methods},
    {Py_tp_getset, proxy_getset},
    {0, NULL}
};

static PyType_Spec proxy_spec = {
    .name = "csp_ext._ShmProxy",
    .basicsize = sizeof(ShmProxyObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE,
    .slots = proxy_slots,
};

int
csp_shm_proxy_init_module(PyObject *m)
{
    return (csp_st->ShmProxyType = csp_add_type(m, &proxy_spec, "_ShmProxy")) ? 0 : -1;
}

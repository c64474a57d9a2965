/* shm_channel.c - channels of the processes backend: the shared channel
 * record, its Python wrappers (channel and ends), reads, writes, poison,
 * retire and the alternation commit across processes.
 *
 * The rules match the in-process core (channel.c, alt.c); what differs is
 * that each channel has its own robust lock, and a commit claims the peer's
 * shared waiter with a compare-and-swap.  An alternation locks all of its
 * channels (in offset order, so alternations cannot deadlock each other)
 * while it looks for a ready guard and posts its offers, so a peer can
 * never slip in between the look and the post.
 */
#include "shared/shm.h"

#include <structmember.h>
#include <unistd.h>

shm_off shm_message_encode(PyObject *obj);
PyObject *shm_message_decode(shm_off off);
void shm_message_discard(shm_off off);
int shm_note_pickled_channel(shm_off chan);
int csp_shm_message_init_module(PyObject *m);

/* ------------------------------------------------------------------ */
/* Python objects                                                      */

typedef struct {
    PyObject_HEAD
    shm_off chan;
    pid_t owner;            /* the process whose reference this object holds */
    PyObject *name;
    PyObject *weakreflist;
} ShmChannelObject;

typedef struct {
    PyObject_HEAD
    vectorcallfunc vectorcall;
    ShmChannelObject *channel;
    char retired;
    char is_writer;
    uint64_t fair_stamp;
} ShmEndObject;

static inline shm_channel *
CH(ShmChannelObject *c)
{
    return SHM_PTR(shm_channel, c->chan);
}

/* ------------------------------------------------------------------ */
/* Queues (channel lock held)                                          */

static void
offer_link(shm_channel *c, shm_offer *o)
{
    shm_off *head = o->is_write ? &c->wq_head : &c->rq_head;
    shm_off *tail = o->is_write ? &c->wq_tail : &c->rq_tail;
    shm_off self = SHM_OFF(o);
    o->next = 0;
    o->prev = *tail;
    if (*tail)
        SHM_PTR(shm_offer, *tail)->next = self;
    else
        *head = self;
    *tail = self;
    atomic_store_explicit(&o->linked, 1, memory_order_relaxed);
}

/* The last touch of `o` by anyone but its owner: read what you need from it
 * before (see shm_offer.linked). */
static void
offer_unlink(shm_channel *c, shm_offer *o)
{
    if (!atomic_load_explicit(&o->linked, memory_order_relaxed))
        return;
    shm_off *head = o->is_write ? &c->wq_head : &c->rq_head;
    shm_off *tail = o->is_write ? &c->wq_tail : &c->rq_tail;
    if (o->prev)
        SHM_PTR(shm_offer, o->prev)->next = o->next;
    else
        *head = o->next;
    if (o->next)
        SHM_PTR(shm_offer, o->next)->prev = o->prev;
    else
        *tail = o->prev;
    o->prev = o->next = 0;
    atomic_store_explicit(&o->linked, 0, memory_order_release);
}

/* Take the first offer of a queue (the writers' or the readers') whose
 * waiter this commit can claim: 1 with that waiter (claimed: the caller
 * finishes it), the offer's index and message; 0 when the queue is empty.
 * Offers whose waiter another commit claimed, or that is done, are dropped on
 * the way.  Claim, then unlink: a committer that dies in between leaves the
 * offer where recovery (chan_recover) still finds it. */
static int
pop_claimed(shm_channel *c, int writers, shm_waiter **w, int64_t *index, shm_off *msg)
{
    shm_off off;
    while ((off = writers ? c->wq_head : c->rq_head) != 0) {
        shm_offer *o = SHM_PTR(shm_offer, off);
        shm_waiter *owner = SHM_PTR(shm_waiter, o->waiter);
        int64_t offer_index = o->index;
        shm_off offer_msg = o->msg;
        int claimed = shm_waiter_claim(owner);
        offer_unlink(c, o);
        if (claimed) {
            *w = owner;
            *index = offer_index;
            *msg = offer_msg;
            return 1;
        }
    }
    return 0;
}

/* Finish every live offer of one queue with `status`. */
static void
wake_queue(shm_channel *c, int writers, uint32_t status)
{
    shm_waiter *w;
    int64_t index;
    shm_off unused;
    while (pop_claimed(c, writers, &w, &index, &unused))
        shm_waiter_finish(w, status, index, 0);
}

static void
poison_locked(shm_channel *c)
{
    if (c->poisoned)
        return;
    c->poisoned = 1;
    wake_queue(c, 0, CSP_POISONED);
    wake_queue(c, 1, CSP_POISONED);
    shm_off *ring = SHM_PTR(shm_off, c->ring);
    while (c->count > 0) {
        shm_message_discard(ring[c->head]);
        c->head = (c->head + 1) % c->slots;
        c->count--;
    }
}

/* A process died holding the channel's lock, perhaps half-way through an
 * update: poison the channel, waking every waiter its queues still reach
 * (walked defensively: offsets checked, walk bounded), and drop the queues.
 * Buffered messages are abandoned rather than trusted. */
static void
chan_recover(shm_channel *c)
{
    uint64_t limit = shm_hdr->file_size;
    shm_off heads[2] = {c->rq_head, c->wq_head};
    for (int q = 0; q < 2; q++) {
        shm_off off = heads[q];
        for (long n = 0; off && n < 1000000; n++) {
            if (off >= limit || off % 8)
                break;
            shm_offer *o = SHM_PTR(shm_offer, off);
            shm_off next = o->next, waiter = o->waiter;
            int64_t index = o->index;
            o->prev = o->next = 0;
            atomic_store_explicit(&o->linked, 0, memory_order_release);
            if (waiter && waiter < limit) {
                shm_waiter *w = SHM_PTR(shm_waiter, waiter);
                if (shm_waiter_claim(w))
                    shm_waiter_finish(w, CSP_POISONED, index, 0);
            }
            off = next;
        }
    }
    c->rq_head = c->rq_tail = c->wq_head = c->wq_tail = 0;
    c->count = 0;
    c->poisoned = 1;
}

/* Lock a channel, recovering it if a process died holding the lock. */
static void
chan_lock(shm_channel *c)
{
    if (shm_lock_acquire(&c->lock) == 1)
        chan_recover(c);
}

static void
chan_unlock(shm_channel *c)
{
    shm_lock_release(&c->lock);
}

/* 1 = took a message (*msg), 0 = would block, -1 = poisoned, -2 = retired. */
static int
try_read_locked(shm_channel *c, shm_off *msg)
{
    if (c->poisoned)
        return -1;
    shm_off *ring = c->ring ? SHM_PTR(shm_off, c->ring) : NULL;
    shm_waiter *w;
    int64_t index;
    shm_off wmsg;
    if (c->count > 0) {
        *msg = ring[c->head];
        c->head = (c->head + 1) % c->slots;
        c->count--;
        if (pop_claimed(c, 1, &w, &index, &wmsg)) {
            /* A blocked writer's message takes the freed slot. */
            ring[(c->head + c->count) % c->slots] = wmsg;
            c->count++;
            shm_waiter_finish(w, CSP_DONE, index, 0);
        }
        return 1;
    }
    if (pop_claimed(c, 1, &w, &index, &wmsg)) {
        *msg = wmsg;
        shm_waiter_finish(w, CSP_DONE, index, 0);
        return 1;
    }
    return c->no_writers ? -2 : 0;
}

/* Make room for one more buffered message: the ring grows on demand, so a
 * large buffer costs nothing until it fills.  0, or -1 with MemoryError. */
static int
ring_reserve(shm_channel *c)
{
    if (c->count < c->slots)
        return 0;
    int64_t slots = c->slots ? c->slots * 2 : 8;
    if (slots > c->capacity)
        slots = c->capacity;
    shm_off ring = shm_alloc((uint64_t)slots * sizeof(shm_off));
    if (!ring)
        return -1;
    shm_off *to = SHM_PTR(shm_off, ring);
    for (int64_t i = 0; i < c->count; i++)
        to[i] = SHM_PTR(shm_off, c->ring)[(c->head + i) % c->slots];
    shm_free(c->ring);
    c->ring = ring;
    c->slots = slots;
    c->head = 0;
    return 0;
}

/* 1 = delivered (block now owned by the channel or reader), 0 = would block,
 * -1 = poisoned, -2 = retired, -3 = error set (no memory). */
static int
try_write_locked(shm_channel *c, shm_off msg)
{
    if (c->poisoned)
        return -1;
    if (c->no_readers)
        return -2;
    shm_waiter *w;
    int64_t index;
    shm_off unused;
    if (pop_claimed(c, 0, &w, &index, &unused)) {
        shm_waiter_finish(w, CSP_DONE, index, msg);
        return 1;
    }
    if (c->count < c->capacity) {
        if (ring_reserve(c) < 0)
            return -3;
        SHM_PTR(shm_off, c->ring)[(c->head + c->count) % c->slots] = msg;
        c->count++;
        return 1;
    }
    return 0;
}

/* Withdraw every offer of w still linked (after it woke, or after it died). */
void
shm_waiter_withdraw(shm_waiter *w)
{
    shm_offer *offers = SHM_PTR(shm_offer, w->offers);
    for (int64_t i = 0; i < w->noffers; i++) {
        shm_offer *o = &offers[i];
        /* Unlocked: 0 means unlinked for good (only we link our offers) and
         * the unlinker done with it (acquire pairs with offer_unlink). */
        if (!atomic_load_explicit(&o->linked, memory_order_acquire))
            continue;
        shm_channel *c = SHM_PTR(shm_channel, o->chan);
        chan_lock(c);
        offer_unlink(c, o);
        chan_unlock(c);
    }
    /* noffers stays: the caller clears it once it has dealt with their
     * messages, so that shm_reap() can free those of a process that died
     * before it could. */
}

/* The exception for a try_*_locked code (messages as in channel.c). */
static void
raise_code(int code, int is_write)
{
    if (code == -3)
        return;  /* the exception is set already */
    if (code == -1)
        PyErr_SetString(csp_st->PoisonError, "channel is poisoned");
    else
        PyErr_SetString(csp_st->RetireError, is_write
                                             ? "channel is retired: every reader has retired"
                                             : "channel is retired: every writer has retired");
}

static int
end_usable(ShmEndObject *e)
{
    if (e->retired) {
        PyErr_SetString(csp_st->RetireError, e->is_writer ? "this writer end is retired"
                                                      : "this reader end is retired");
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------ */
/* Read and write                                                      */

static PyObject *
shm_read(ShmEndObject *e)
{
    if (end_usable(e) < 0)
        return NULL;
    shm_waiter *w = shm_my_waiter();
    if (!w)
        return NULL;
    shm_channel *c = CH(e->channel);
    shm_off msg = 0;
    int st;
again:
    chan_lock(c);
    int r = try_read_locked(c, &msg);
    if (r == 1) {
        chan_unlock(c);
        return shm_message_decode(msg);
    }
    if (r < 0) {
        chan_unlock(c);
        raise_code(r, 0);
        return NULL;
    }
    if (shm_waiter_prepare(w, 1) < 0) {
        chan_unlock(c);
        return NULL;
    }
    shm_offer *o = SHM_PTR(shm_offer, w->offers);
    memset(o, 0, sizeof(*o));
    o->waiter = SHM_OFF(w);
    o->chan = e->channel->chan;
    w->noffers = 1;
    offer_link(c, o);
    shm_waiter_mark_blocked(w, -1.0);
    chan_unlock(c);
    st = shm_waiter_wait(w, -1.0);
    shm_waiter_withdraw(w);
    w->noffers = 0;   /* their messages are ours to handle from here on */
    if (st == CSP_RETRY)
        goto again;
    if (st == CSP_DONE) {
        msg = w->msg;
        w->msg = 0;
        return shm_message_decode(msg);
    }
    if (st >= 0)
        csp_raise_for_status(st);
    return NULL;
}

static int
shm_write(ShmEndObject *e, PyObject *obj)
{
    if (end_usable(e) < 0)
        return -1;
    shm_waiter *w = shm_my_waiter();
    if (!w)
        return -1;
    /* Pickle first: a message that cannot be pickled changes nothing. */
    shm_off msg = shm_message_encode(obj);
    if (!msg)
        return -1;
    w->pending = msg;  /* freed by the parent's reap if this process dies now */
    shm_channel *c = CH(e->channel);
again:
    chan_lock(c);
    w->pending = 0;    /* published below, or freed by us */
    int r = try_write_locked(c, msg);
    if (r != 0) {
        chan_unlock(c);
        if (r == 1)
            return 0;
        shm_message_discard(msg);
        raise_code(r, 1);
        return -1;
    }
    if (shm_waiter_prepare(w, 1) < 0) {
        chan_unlock(c);
        shm_message_discard(msg);
        return -1;
    }
    shm_offer *o = SHM_PTR(shm_offer, w->offers);
    memset(o, 0, sizeof(*o));
    o->waiter = SHM_OFF(w);
    o->chan = e->channel->chan;
    o->msg = msg;
    o->is_write = 1;
    w->noffers = 1;
    offer_link(c, o);
    shm_waiter_mark_blocked(w, -1.0);
    chan_unlock(c);
    int st = shm_waiter_wait(w, -1.0);
    shm_waiter_withdraw(w);
    w->noffers = 0;   /* their messages are ours to handle from here on */
    if (st == CSP_RETRY)
        goto again;   /* the block is still ours */
    if (st == CSP_DONE)
        return 0;   /* the reader owns the block */
    shm_message_discard(msg);
    if (st >= 0)
        csp_raise_for_status(st);
    return -1;
}

static PyObject *
read_vectorcall(PyObject *self, PyObject *const *Py_UNUSED(args), size_t nargsf, PyObject *kwnames)
{
    if (csp_check_call(nargsf, kwnames, 0) < 0)
        return NULL;
    return shm_read((ShmEndObject *)self);
}

static PyObject *
write_vectorcall(PyObject *self, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    if (csp_check_call(nargsf, kwnames, 1) < 0)
        return NULL;
    if (shm_write((ShmEndObject *)self, args[0]) < 0)
        return NULL;
    Py_RETURN_NONE;
}

/* ------------------------------------------------------------------ */
/* Channel wrapper                                                     */

/* New reference: a wrapper holding one reference to the shared channel
 * (already counted by the caller). */
static ShmChannelObject *
wrap_channel(shm_off chan, PyObject *name)
{
    ShmChannelObject *c = PyObject_GC_New(ShmChannelObject, csp_st->ShmChannelType);
    if (!c)
        return NULL;
    c->chan = chan;
    c->owner = shm_my_pid;
    c->name = Py_NewRef(name);
    c->weakreflist = NULL;
    PyObject_GC_Track(c);
    return c;
}

static shm_off
new_shared_channel(int64_t capacity)
{
    if (shm_ensure() < 0)
        return 0;
    shm_off off = shm_alloc(sizeof(shm_channel));
    if (!off)
        return 0;
    shm_channel *c = SHM_PTR(shm_channel, off);
    memset(c, 0, sizeof(*c));
    if (shm_lock_init(&c->lock) < 0) {
        PyErr_SetFromErrno(PyExc_OSError);
        shm_free(off);
        return 0;
    }
    atomic_store(&c->refs, 1);
    c->capacity = capacity;
    return off;
}

void
release_shared_channel(shm_off off)
{
    shm_channel *c = SHM_PTR(shm_channel, off);
    if (atomic_fetch_sub(&c->refs, 1) != 1)
        return;
    shm_off *ring = c->ring ? SHM_PTR(shm_off, c->ring) : NULL;
    while (c->count > 0) {
        shm_message_discard(ring[c->head]);
        c->head = (c->head + 1) % c->slots;
        c->count--;
    }
    shm_free(c->ring);
    shm_lock_destroy(&c->lock);
    shm_free(off);
}

static PyObject *
shmchan_new(PyTypeObject *Py_UNUSED(type), PyObject *args, PyObject *kwds)
{
    PyObject *name = Py_None, *buffer = NULL;
    static char *kwlist[] = {"name", "buffer", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|OO:Channel", kwlist, &name, &buffer))
        return NULL;
    Py_ssize_t capacity = 0;
    if (csp_parse_capacity(buffer, &capacity) < 0)
        return NULL;
    shm_off off = new_shared_channel(capacity);
    if (!off)
        return NULL;
    ShmChannelObject *c = wrap_channel(off, name);
    if (!c)
        release_shared_channel(off);
    return (PyObject *)c;
}

static int
shmchan_traverse(ShmChannelObject *c, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(c));  /* a heap type: its instances keep it alive */
    Py_VISIT(c->name);
    return 0;
}

/* Every cycle through a channel or its ends passes through its name: None
 * breaks it (and keeps repr and pickling working on a cleared channel). */
static int
shmchan_clear(ShmChannelObject *c)
{
    Py_SETREF(c->name, Py_NewRef(Py_None));
    return 0;
}

static void
shmchan_dealloc(ShmChannelObject *c)
{
    PyObject_GC_UnTrack(c);
    if (c->weakreflist)
        PyObject_ClearWeakRefs((PyObject *)c);
    /* A copy inherited through fork holds no reference of its own. */
    if (c->owner == shm_my_pid)
        release_shared_channel(c->chan);
    Py_XDECREF(c->name);
    PyTypeObject *tp = Py_TYPE(c);
    tp->tp_free((PyObject *)c);
    Py_DECREF(tp);
}

static PyObject *
make_end(ShmChannelObject *ch, int is_writer, int join)
{
    PyTypeObject *tp = is_writer ? csp_st->ShmEndWriteType : csp_st->ShmEndReadType;
    ShmEndObject *e = PyObject_GC_New(ShmEndObject, tp);
    if (!e)
        return NULL;
    e->vectorcall = is_writer ? write_vectorcall : read_vectorcall;
    e->channel = (ShmChannelObject *)Py_NewRef(ch);
    e->retired = 0;
    e->is_writer = (char)is_writer;
    e->fair_stamp = 0;
    if (join) {
        shm_channel *c = CH(ch);
        chan_lock(c);
        if (is_writer)
            c->nwriters++;
        else
            c->nreaders++;
        chan_unlock(c);
    }
    PyObject_GC_Track(e);
    return (PyObject *)e;
}

static PyObject *
shmchan_reader(ShmChannelObject *c, PyObject *Py_UNUSED(i))
{
    return make_end(c, 0, 1);
}

static PyObject *
shmchan_writer(ShmChannelObject *c, PyObject *Py_UNUSED(i))
{
    return make_end(c, 1, 1);
}

static PyObject *
shmchan_pos(PyObject *c)
{
    return make_end((ShmChannelObject *)c, 0, 1);
}

static PyObject *
shmchan_neg(PyObject *c)
{
    return make_end((ShmChannelObject *)c, 1, 1);
}

static void
channel_poison(shm_channel *c)
{
    chan_lock(c);
    poison_locked(c);
    chan_unlock(c);
}

static PyObject *
shmchan_poison(ShmChannelObject *c, PyObject *Py_UNUSED(i))
{
    channel_poison(CH(c));
    Py_RETURN_NONE;
}

static PyObject *
shmchan_multiply(PyObject *a, PyObject *b)
{
    PyObject *chobj;
    Py_ssize_t n;
    int r = csp_parse_multiplier(a, b, csp_st->ShmChannelType, &chobj, &n);
    if (r)
        return r < 0 ? NULL : Py_NewRef(Py_NotImplemented);
    int64_t capacity = CH((ShmChannelObject *)chobj)->capacity;
    PyObject *list = PyList_New(n);
    if (!list)
        return NULL;
    for (Py_ssize_t i = 0; i < n; i++) {
        shm_off off = new_shared_channel(capacity);
        PyObject *c = off ? (PyObject *)wrap_channel(off, Py_None) : NULL;
        if (!c) {
            Py_DECREF(list);
            return NULL;
        }
        PyList_SET_ITEM(list, i, c);
    }
    return list;
}

/* Pickling (mobility): the pickle holds its own reference to the shared
 * channel, handed to the wrapper made when it is unpickled. */

static PyObject *
shmchan_reduce(ShmChannelObject *c, PyObject *Py_UNUSED(i))
{
    if (shm_note_pickled_channel(c->chan) < 0)
        return NULL;
    atomic_fetch_add(&CH(c)->refs, 1);
    return Py_BuildValue("O(KO)", csp_st->rebuild_channel_fn, (unsigned long long)c->chan, c->name);
}

static PyObject *
rebuild_channel(PyObject *Py_UNUSED(m), PyObject *args)
{
    unsigned long long off;
    PyObject *name;
    if (!PyArg_ParseTuple(args, "KO", &off, &name))
        return NULL;
    if (!shm_base || off < sizeof(shm_header) || off >= shm_hdr->file_size) {
        PyErr_SetString(PyExc_ValueError, "pycsp: this channel belongs to another process tree");
        return NULL;
    }
    return (PyObject *)wrap_channel((shm_off)off, name);
}

static PyObject *
shmchan_repr(ShmChannelObject *c)
{
    if (c->name != Py_None)
        return PyUnicode_FromFormat("<Channel %R buffer=%lld (shared)>", c->name,
                                    (long long)CH(c)->capacity);
    return PyUnicode_FromFormat("<Channel at +%llu buffer=%lld (shared)>",
                                (unsigned long long)c->chan, (long long)CH(c)->capacity);
}

static PyObject *
shmchan_get_buffer(ShmChannelObject *c, void *Py_UNUSED(x))
{
    return PyLong_FromLongLong(CH(c)->capacity);
}

static PyObject *
shmchan_stats(ShmChannelObject *self, PyObject *Py_UNUSED(i))
{
    shm_channel *c = CH(self);
    chan_lock(c);
    long long nr = 0, nw = 0;
    for (shm_off o = c->rq_head; o; o = SHM_PTR(shm_offer, o)->next)
        nr++;
    for (shm_off o = c->wq_head; o; o = SHM_PTR(shm_offer, o)->next)
        nw++;
    /* Copied under the lock, built after: a GC run inside Py_BuildValue may
     * run code that uses this channel. */
    long long count = c->count, nreaders = c->nreaders, nwriters = c->nwriters;
    int poisoned = c->poisoned, no_readers = c->no_readers, no_writers = c->no_writers;
    chan_unlock(c);
    return Py_BuildValue("{s:L,s:L,s:L,s:L,s:L,s:O,s:O,s:O,s:L}", "buffered", count,
                         "blocked_readers", nr, "blocked_writers", nw, "readers", nreaders,
                         "writers", nwriters, "poisoned", poisoned ? Py_True : Py_False,
                         "readers_retired", no_readers ? Py_True : Py_False, "writers_retired",
                         no_writers ? Py_True : Py_False, "refs",
                         (long long)atomic_load(&c->refs));
}

static PyMethodDef shmchan_methods[] = {
    {"reader", (PyCFunction)shmchan_reader, METH_NOARGS, "Join as one more reader."},
    {"writer", (PyCFunction)shmchan_writer, METH_NOARGS, "Join as one more writer."},
    {"poison", (PyCFunction)shmchan_poison, METH_NOARGS, "Poison the channel."},
    {"statistics", (PyCFunction)shmchan_stats, METH_NOARGS, "A dict of counts (for tests)."},
    {"__reduce__", (PyCFunction)shmchan_reduce, METH_NOARGS, NULL},
    {NULL}
};

static PyMemberDef shmchan_members[] = {
    {"name", T_OBJECT, offsetof(ShmChannelObject, name), READONLY, "the channel's name"},
    {"__weaklistoffset__", T_PYSSIZET, offsetof(ShmChannelObject, weakreflist), READONLY, NULL},
    {NULL}
};

static PyGetSetDef shmchan_getset[] = {
    {"buffer", (getter)shmchan_get_buffer, NULL, "buffer capacity", NULL},
    {NULL}
};

static PyType_Slot shmchan_slots[] = {
    {Py_tp_doc, "Channel(name=None, buffer=0): an any-to-any channel between OS processes; "
                "messages travel pickled through the shared arena."},
    {Py_tp_new, shmchan_new},
    {Py_tp_dealloc, shmchan_dealloc},
    {Py_tp_traverse, shmchan_traverse},
    {Py_tp_clear, shmchan_clear},
    {Py_tp_repr, shmchan_repr},
    {Py_tp_methods, shmchan_methods},
    {Py_tp_members, shmchan_members},
    {Py_tp_getset, shmchan_getset},
    {Py_nb_multiply, shmchan_multiply},
    {Py_nb_positive, shmchan_pos},
    {Py_nb_negative, shmchan_neg},
    {0, NULL}
};

static PyType_Spec shmchan_spec = {
    .name = "pycsp.processes.Channel",
    .basicsize = sizeof(ShmChannelObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_IMMUTABLETYPE,
    .slots = shmchan_slots,
};

/* ------------------------------------------------------------------ */
/* Ends                                                                */

static void
shmend_dealloc(ShmEndObject *e)
{
    PyObject_GC_UnTrack(e);
    Py_XDECREF(e->channel);
    PyTypeObject *tp = Py_TYPE(e);
    tp->tp_free((PyObject *)e);
    Py_DECREF(tp);
}

/* No tp_clear: the end's channel is never NULL while the end lives; the
 * channel's tp_clear breaks every cycle an end is part of. */
static int
shmend_traverse(ShmEndObject *e, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(e));  /* a heap type: its instances keep it alive */
    Py_VISIT(e->channel);
    return 0;
}

static void
retire_end(ShmEndObject *e)
{
    if (e->retired)
        return;
    e->retired = 1;
    shm_channel *c = CH(e->channel);
    chan_lock(c);
    if (e->is_writer) {
        if (--c->nwriters <= 0 && !c->no_writers) {
            c->no_writers = 1;
            if (c->count == 0 && !c->wq_head)
                wake_queue(c, 0, CSP_RETIRED);
        }
    }
    else if (--c->nreaders <= 0 && !c->no_readers) {
        c->no_readers = 1;
        wake_queue(c, 1, CSP_RETIRED);
    }
    chan_unlock(c);
}

static PyObject *
shmend_retire(ShmEndObject *e, PyObject *Py_UNUSED(i))
{
    retire_end(e);
    Py_RETURN_NONE;
}

static PyObject *
shmend_poison(ShmEndObject *e, PyObject *Py_UNUSED(i))
{
    channel_poison(CH(e->channel));
    Py_RETURN_NONE;
}

static PyObject *
shmend_reduce(ShmEndObject *e, PyObject *Py_UNUSED(i))
{
    if (shm_note_pickled_channel(e->channel->chan) < 0)
        return NULL;
    atomic_fetch_add(&CH(e->channel)->refs, 1);
    return Py_BuildValue("O(KOii)", csp_st->rebuild_end_fn, (unsigned long long)e->channel->chan,
                         e->channel->name, (int)e->is_writer, (int)e->retired);
}

/* An end that arrives in a message stands for the same join as the end that
 * was sent (as passing the end object does in the other backends). */
static PyObject *
rebuild_end(PyObject *Py_UNUSED(m), PyObject *args)
{
    unsigned long long off;
    PyObject *name;
    int is_writer, retired = 0;
    if (!PyArg_ParseTuple(args, "KOi|i", &off, &name, &is_writer, &retired))
        return NULL;
    PyObject *chargs = Py_BuildValue("(KO)", off, name);
    if (!chargs)
        return NULL;
    ShmChannelObject *ch = (ShmChannelObject *)rebuild_channel(NULL, chargs);
    Py_DECREF(chargs);
    if (!ch)
        return NULL;
    PyObject *e = make_end(ch, is_writer, 0);
    Py_DECREF(ch);
    if (e)
        ((ShmEndObject *)e)->retired = (char)(retired != 0);  /* as the end it stands for */
    return e;
}

static PyObject *
shmend_repr(ShmEndObject *e)
{
    return PyUnicode_FromFormat("<%s on %R%s>", e->is_writer ? "ChannelEndWrite" : "ChannelEndRead",
                                (PyObject *)e->channel, e->retired ? " (retired)" : "");
}

static PyObject *
shmend_get_channel(ShmEndObject *e, void *Py_UNUSED(x))
{
    return Py_NewRef((PyObject *)e->channel);
}

static PyObject *
shmend_get_retired(ShmEndObject *e, void *Py_UNUSED(x))
{
    return PyBool_FromLong(e->retired);
}

static PyMethodDef shmend_methods[] = {
    {"retire", (PyCFunction)shmend_retire, METH_NOARGS, "Leave the channel."},
    {"poison", (PyCFunction)shmend_poison, METH_NOARGS, "Poison the channel."},
    {"__reduce__", (PyCFunction)shmend_reduce, METH_NOARGS, NULL},
    {NULL}
};

static PyGetSetDef shmend_getset[] = {
    {"channel", (getter)shmend_get_channel, NULL, "the Channel this end belongs to", NULL},
    {"retired", (getter)shmend_get_retired, NULL, "True once retire() was called", NULL},
    {NULL}
};

/* __vectorcalloffset__: how a heap type names tp_vectorcall_offset (3.9+). */
static PyMemberDef shmend_members[] = {
    {"__vectorcalloffset__", T_PYSSIZET, offsetof(ShmEndObject, vectorcall), READONLY, NULL},
    {NULL}
};

/* Made only by channels and unpickling, never by calling the type. */
#define SHM_END_TYPE(cname, pyname, doc)                                                   \
    static PyType_Slot cname##_slots[] = {                                                 \
        {Py_tp_doc, doc},                                                                  \
        {Py_tp_dealloc, shmend_dealloc},                                                   \
        {Py_tp_traverse, shmend_traverse},                                                 \
        {Py_tp_call, PyVectorcall_Call},                                                   \
        {Py_tp_repr, shmend_repr},                                                         \
        {Py_tp_methods, shmend_methods},                                                   \
        {Py_tp_getset, shmend_getset},                                                     \
        {Py_tp_members, shmend_members},                                                   \
        {0, NULL}                                                                          \
    };                                                                                     \
    static PyType_Spec cname##_spec = {                                                    \
        .name = "pycsp.processes." pyname,                                                 \
        .basicsize = sizeof(ShmEndObject),                                                 \
        .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL |    \
                 Py_TPFLAGS_IMMUTABLETYPE | Py_TPFLAGS_DISALLOW_INSTANTIATION,             \
        .slots = cname##_slots,                                                            \
    }

SHM_END_TYPE(shmend_read, "ChannelEndRead",
             "Reader end of a shared channel: msg = end() blocks until a message arrives.");
SHM_END_TYPE(shmend_write, "ChannelEndWrite",
             "Writer end of a shared channel: end(msg) pickles msg and blocks until it is taken.");

/* ------------------------------------------------------------------ */
/* Alternation                                                         */

uint64_t *
shm_end_stamp(PyObject *end)
{
    return &((ShmEndObject *)end)->fair_stamp;
}

/* One channel guard of a select, with its encoded message (output). */
typedef struct {
    Py_ssize_t index;
    ShmEndObject *end;
    shm_channel *c;
    shm_off chan_off;
    int is_write;
    shm_off msg;
} shm_guard;

static int
cmp_guard_chan(const void *a, const void *b)
{
    shm_off x = ((const shm_guard *const *)a)[0]->chan_off;
    shm_off y = ((const shm_guard *const *)b)[0]->chan_off;
    return x < y ? -1 : x > y;
}

/* Called by alt.c for guards on shared ends.  kinds[i]: CSP_GUARD_*;
 * ends[i]: ShmEndObject or NULL; msgs[i]: output message; order: scan order.
 * Returns (index, msg) or NULL. */
PyObject *
shm_select(Py_ssize_t n, const int *kinds, PyObject *const *ends, PyObject *const *msgs,
           const double *seconds, const Py_ssize_t *order)
{
    shm_waiter *w = shm_my_waiter();
    if (!w)
        return NULL;
    shm_guard *gs = PyMem_Calloc((size_t)n, sizeof(shm_guard));
    shm_guard **locked = PyMem_Calloc((size_t)n, sizeof(shm_guard *));
    Py_ssize_t ng = 0, nlocked = 0;
    PyObject *result = NULL;
    Py_ssize_t chosen = -1;
    shm_off got = 0;
    int error_code = 0;
    shm_guard *error_guard = NULL;
    if (!gs || !locked) {
        PyErr_NoMemory();
        goto done;
    }
    /* Encode output messages before touching any channel. */
    for (Py_ssize_t k = 0; k < n; k++) {
        Py_ssize_t i = order[k];
        if (kinds[i] != CSP_GUARD_INPUT && kinds[i] != CSP_GUARD_OUTPUT)
            continue;
        ShmEndObject *e = (ShmEndObject *)ends[i];
        shm_guard *g = &gs[ng++];
        g->index = i;
        g->end = e;
        g->c = CH(e->channel);
        g->chan_off = e->channel->chan;
        g->is_write = kinds[i] == CSP_GUARD_OUTPUT;
        /* A retired end raises when the scan reaches it, as in alt.c. */
        if (g->is_write && !e->retired && !(g->msg = shm_message_encode(msgs[i])))
            goto done;
    }
    double deadline = -2.0;   /* set on the first pass */
retry:
    nlocked = 0;
    chosen = -1;
    /* Lock each distinct channel once, in offset order. */
    for (Py_ssize_t j = 0; j < ng; j++)
        locked[j] = &gs[j];
    qsort(locked, (size_t)ng, sizeof(shm_guard *), cmp_guard_chan);
    for (Py_ssize_t j = 0; j < ng; j++) {
        if (j > 0 && locked[j]->chan_off == locked[nlocked - 1]->chan_off)
            continue;
        locked[nlocked++] = locked[j];
        chan_lock(locked[j]->c);
    }
    /* Pass 1, in scan order. */
    Py_ssize_t timeout_index = -1, gi = 0;
    double min_seconds = 0.0;
    for (Py_ssize_t k = 0; k < n && chosen < 0 && !error_code; k++) {
        Py_ssize_t i = order[k];
        switch (kinds[i]) {
        case CSP_GUARD_INPUT:
        case CSP_GUARD_OUTPUT: {
            shm_guard *g = &gs[gi++];
            if (g->end->retired) {
                error_code = -4;
                error_guard = g;
                break;
            }
            int r = g->is_write ? try_write_locked(g->c, g->msg) : try_read_locked(g->c, &got);
            if (r == 1) {
                chosen = i;
                if (g->is_write)
                    g->msg = 0;  /* delivered */
            }
            else if (r < 0) {
                error_code = r;
                error_guard = g;
            }
            break;
        }
        case CSP_GUARD_SKIP:
            chosen = i;
            break;
        case CSP_GUARD_TIMEOUT:
            if (seconds[i] <= 0.0) {
                chosen = i;  /* ready at once, in its priority position */
                break;
            }
            if (timeout_index < 0 || seconds[i] < min_seconds) {
                timeout_index = i;
                min_seconds = seconds[i];
            }
            break;
        }
    }
    if (deadline == -2.0)
        deadline = timeout_index >= 0 ? csp_monotonic() + min_seconds : -1.0;
    if (chosen < 0 && !error_code && timeout_index >= 0 && csp_monotonic() >= deadline)
        chosen = timeout_index;
    if (chosen >= 0 || error_code) {
        for (Py_ssize_t j = 0; j < nlocked; j++)
            chan_unlock(locked[j]->c);
        if (error_code == -4)
            end_usable(error_guard->end);
        else if (error_code)
            raise_code(error_code, error_guard->is_write);
        if (error_code)
            goto done;
        goto commit;
    }
    /* Pass 2: offer on every channel guard, then wait. */
    if (shm_waiter_prepare(w, ng) < 0) {
        for (Py_ssize_t j = 0; j < nlocked; j++)
            chan_unlock(locked[j]->c);
        goto done;
    }
    shm_offer *offers = SHM_PTR(shm_offer, w->offers);
    for (Py_ssize_t j = 0; j < ng; j++) {
        shm_offer *o = &offers[j];
        memset(o, 0, sizeof(*o));
        o->waiter = SHM_OFF(w);
        o->chan = gs[j].chan_off;
        o->msg = gs[j].msg;
        o->index = gs[j].index;
        o->is_write = gs[j].is_write;
        offer_link(gs[j].c, o);
    }
    w->noffers = ng;
    shm_waiter_mark_blocked(w, deadline);
    for (Py_ssize_t j = 0; j < nlocked; j++)
        chan_unlock(locked[j]->c);
    int st = shm_waiter_wait(w, deadline);
    shm_waiter_withdraw(w);
    w->noffers = 0;   /* their messages are ours to handle from here on */
    if (st < 0)
        goto done;
    if (st == CSP_RETRY)
        goto retry;
    if (st == CSP_DONE) {
        chosen = w->chosen;
        got = w->msg;
        w->msg = 0;
        for (Py_ssize_t j = 0; j < ng; j++)
            if (gs[j].index == chosen && gs[j].is_write)
                gs[j].msg = 0;  /* taken by the reader */
    }
    else if (st == CSP_TIMEOUT) {
        chosen = timeout_index;
    }
    else {
        csp_raise_for_status(st);
        goto done;
    }
commit: {
        PyObject *msg = got ? shm_message_decode(got) : Py_NewRef(Py_None);
        got = 0;
        if (msg) {
            result = Py_BuildValue("(nN)", chosen, msg);
        }
    }
done:
    shm_message_discard(got);
    for (Py_ssize_t j = 0; j < ng; j++)
        shm_message_discard(gs[j].msg);
    PyMem_Free(gs);
    PyMem_Free(locked);
    return result;
}

/* ------------------------------------------------------------------ */

static PyMethodDef shmchan_module_methods[] = {
    {"_shm_rebuild_channel", rebuild_channel, METH_VARARGS, NULL},
    {"_shm_rebuild_end", rebuild_end, METH_VARARGS, NULL},
    {NULL}
};

int
csp_shm_channel_init_module(PyObject *m)
{
    if (!(csp_st->ShmChannelType = csp_add_type(m, &shmchan_spec, "ShmChannel")) ||
        !(csp_st->ShmEndReadType = csp_add_type(m, &shmend_read_spec, "ShmChannelEndRead")) ||
        !(csp_st->ShmEndWriteType = csp_add_type(m, &shmend_write_spec, "ShmChannelEndWrite")))
        return -1;
    if (PyModule_AddFunctions(m, shmchan_module_methods) < 0)
        return -1;
    csp_st->rebuild_channel_fn = PyObject_GetAttrString(m, "_shm_rebuild_channel");
    csp_st->rebuild_end_fn = PyObject_GetAttrString(m, "_shm_rebuild_end");
    if (!csp_st->rebuild_channel_fn || !csp_st->rebuild_end_fn)
        return -1;
    return csp_shm_message_init_module(m);
}

/* channel.c - the channels of the processes backend: the shared channel
 * record, its Python wrappers (channel and ends), and the matching rules
 * (rules/) instantiated for the arena, where a handle is an offset, a
 * message a block (shared/message.c), each channel has its own robust lock,
 * and a waiter is a shared record claimed by compare-and-swap
 * (wait/process.c).
 */
#include "shared/shm.h"
#include "shared/vmread.h"

#include <structmember.h>
#include <unistd.h>

shm_off shm_message_encode(PyObject *obj);
/* New reference; NULL with an exception; NULL without one: the writer of
 * big buffers ended before we could copy them, as if it never offered. */
PyObject *shm_message_decode(shm_off off);
/* A write that will wait for its reader: big buffers may stay in this
 * process's memory, held by `hold` until shm_message_delivered (after the
 * commit, when hold->views is set) has waited for the reader's copy
 * (shared/vmread.h).  hold: zero but for hold->w (this thread's record) and
 * hold->seq (0 for a new write, or the one an earlier guard of the same
 * alternation got: the record's vm_seq names the operation). */
shm_off shm_message_encode_held(PyObject *obj, vm_hold *hold);
int shm_message_delivered(vm_hold *hold);
void shm_message_stamp_reader(shm_off handle, pid_t reader);
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
/* The rules in the arena                                              */

static void *
arena_ptr(csp_ref off)
{
    return shm_base + off;
}

static csp_ref
arena_ref(const void *p)
{
    return (csp_ref)((const char *)p - shm_base);
}

/* A process died holding the channel's lock, perhaps half-way through an
 * update: poison the channel, waking every waiter its queues still reach
 * (walked defensively: offsets checked, walk bounded), and drop the queues.
 * Buffered messages are abandoned rather than trusted. */
static void
chan_recover(csp_chan *c)
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
            /* A proxy offer's claim fails and pokes its agent, which then
             * finds the channel poisoned. */
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
chan_lock(csp_chan *c)
{
    shm_wakes_defer_begin();   /* wakes of waiters finished under it: after the unlock */
    if (shm_lock_acquire(&((shm_channel *)c)->lock) == 1)
        chan_recover(c);
}

static void
chan_unlock(csp_chan *c)
{
    shm_lock_release(&((shm_channel *)c)->lock);
    shm_wakes_defer_end();
}

static int
waiter_claim(csp_ref waiter)
{
    return shm_waiter_claim(SHM_PTR(shm_waiter, waiter));
}

static void
waiter_finish(csp_ref waiter, int status, int64_t index, csp_ref msg)
{
    shm_waiter *w = SHM_PTR(shm_waiter, waiter);
    if (SHM_MSG_IS_REMOTE(msg))
        shm_message_stamp_reader(msg, w->pid);   /* the message goes to w */
    shm_waiter_finish(w, (uint32_t)status, index, msg);
}

/* A write that is done gives its block up: the reader owns it.  Called by
 * the reader that takes a waiting writer's message (a writer that commits
 * to a waiting reader stamps the reader again in waiter_finish). */
static csp_ref
block_take(csp_ref msg)
{
    if (SHM_MSG_IS_REMOTE(msg))
        shm_message_stamp_reader(msg, shm_my_pid);
    return msg;
}

static csp_ref
ring_alloc(int64_t slots)
{
    return shm_alloc((uint64_t)slots * sizeof(shm_off));
}

static const csp_rules in_the_arena = {
    .ptr = arena_ptr,
    .ref = arena_ref,
    .lock = chan_lock,
    .unlock = chan_unlock,
    .claim = waiter_claim,
    .finish = waiter_finish,
    .take = block_take,
    .drop = shm_message_discard,
    .ring_alloc = ring_alloc,
    .ring_free = shm_free,
};
const csp_rules *const shm_channel_rules = &in_the_arena;

/* Withdraw every offer of w still linked (after it woke, or after it died). */
static void
waiter_withdraw(shm_waiter *w)
{
    shm_offer *offers = SHM_PTR(shm_offer, w->offers);
    for (int64_t i = 0; i < w->noffers; i++) {
        shm_offer *o = &offers[i];
        /* Unlocked: 0 means unlinked for good (only we link our offers) and
         * the unlinker done with it (acquire pairs with csp_offer_unlink). */
        if (!atomic_load_explicit(&o->linked, memory_order_acquire))
            continue;
        csp_chan *c = SHM_PTR(csp_chan, o->chan);
        chan_lock(c);
        csp_offer_unlink(&in_the_arena, c, o);
        chan_unlock(c);
    }
    /* noffers stays: the caller clears it once it has dealt with their
     * messages, so that shm_reap() can free those of a process that died
     * before it could. */
}

static const shm_waiter_hooks waiter_hooks = {
    .withdraw = waiter_withdraw,
    .discard = shm_message_discard,
};

static csp_offer *
record_prepare(void *self, int64_t n)
{
    shm_waiter *w = self;
    if (shm_waiter_prepare(w, n) < 0)
        return NULL;
    shm_offer *offers = SHM_PTR(shm_offer, w->offers);
    memset(offers, 0, (size_t)n * sizeof(shm_offer));
    return offers;
}

static csp_ref
record_ref(const void *self)
{
    return SHM_OFF(self);
}

/* The message being written is the channel's or an offer's from now on;
 * until here the parent's reap frees it if this process dies. */
static void
record_publishing(void *self)
{
    ((shm_waiter *)self)->pending = 0;
}

/* Whether one of w's first n offers is on a channel that other programs
 * may use (its lock held: reachable is set under it). */
static int
offers_reachable(shm_waiter *w, int64_t n)
{
    shm_offer *offers = SHM_PTR(shm_offer, w->offers);
    for (int64_t i = 0; i < n; i++)
        if (SHM_PTR(shm_channel, offers[i].chan)->reachable)
            return 1;
    return 0;
}

/* Under the locks of every channel it offers on.  A wait that a party of
 * another program may end counts as running, as one with a deadline does:
 * only waits that this program alone can end make a deadlock.  (Not a wait
 * of the agent's, which serves a party elsewhere: a process of the program
 * must come to end it.) */
static void
record_blocked(void *self, int64_t noffers, double deadline)
{
    shm_waiter *w = self;
    w->noffers = noffers;
    atomic_store_explicit(&w->idle_op, deadline < 0 ? w->op_number : 0, memory_order_release);
    if (w->service || !offers_reachable(w, noffers))
        shm_waiter_mark_blocked(w, deadline);
}

static int
record_wait(void *self, double deadline)
{
    shm_waiter *w = self;
    int st = shm_waiter_wait(w, deadline);
    waiter_withdraw(w);
    w->deadlocked_offers = st == CSP_DEADLOCK ? (int32_t)w->noffers : 0;
    w->noffers = 0;   /* their messages are ours to handle from here on */
    return st;
}

static csp_ref
record_result(void *self, int64_t *chosen)
{
    shm_waiter *w = self;
    *chosen = w->chosen;
    shm_off msg = w->msg;
    w->msg = 0;
    return msg;
}

/* The label a report gives the channel (the repr of its name, kept in the
 * arena at creation), or None: new reference.  The same string in every
 * process: surrogates pass through, and a repr has no NUL. */
static PyObject *
channel_label_in_arena(shm_off chan)
{
    shm_off label = SHM_PTR(shm_channel, chan)->name;
    if (!label)
        Py_RETURN_NONE;
    const char *text = SHM_PTR(char, label);
    return PyUnicode_DecodeUTF8(text, (Py_ssize_t)strlen(text), "surrogatepass");
}

/* [((offset, name), is_write), ...] of the first n offers of w, new
 * reference.  The offers stay in the record's block until its next
 * operation. */
static PyObject *
record_offers(shm_waiter *w, int64_t n)
{
    shm_offer *offers = SHM_PTR(shm_offer, w->offers);
    PyObject *waits = PyList_New(n);
    if (!waits)
        return NULL;
    for (int64_t i = 0; i < n; i++) {
        PyObject *name = channel_label_in_arena(offers[i].chan);
        PyObject *item = name ? Py_BuildValue("((KN)O)", (unsigned long long)offers[i].chan, name,
                                              offers[i].is_write ? Py_True : Py_False)
                              : NULL;
        if (!item) {
            Py_DECREF(waits);
            return NULL;
        }
        PyList_SET_ITEM(waits, i, item);
    }
    return waits;
}

/* ("shared", generation, woken, [((offset, name), is_write), ...]) */
static PyObject *
record_describe(void *self)
{
    shm_waiter *w = self;
    PyObject *waits = record_offers(w, w->deadlocked_offers);
    if (!waits)
        return NULL;
    shm_hdr_lock();
    unsigned long long generation = shm_hdr->deadlock_generation;
    long long woken = shm_hdr->deadlock_woken;
    const char *scope = "shared";
    if (generation && generation == shm_hdr->run_deadlock_generation) {
        scope = "run";   /* across programs: shared/quiescence.c */
        generation = shm_hdr->run_deadlock;
    }
    shm_lock_release(&shm_hdr->lock);
    return Py_BuildValue("(sKLN)", scope, generation, woken, waits);
}

static const csp_waiting as_record = {
    .prepare = record_prepare,
    .self_ref = record_ref,
    .publishing = record_publishing,
    .blocked = record_blocked,
    .wait = record_wait,
    .result = record_result,
    .stopped = NULL,
    .describe = record_describe,
};

/* ------------------------------------------------------------------ */
/* Reachable from other programs (pycsp.net): deadlock accounting         */

/* The waiters of a queue, counted as blocked, count as running again.
 * Not proxy records (parties elsewhere, never counted) nor the agent's own
 * waits (a process of the program must end those: record_blocked). */
static void
count_queue_as_running(shm_off head)
{
    for (shm_off o = head; o; o = SHM_PTR(shm_offer, o)->next) {
        shm_waiter *w = SHM_PTR(shm_waiter, SHM_PTR(shm_offer, o)->waiter);
        if (atomic_load(&w->status) != CSP_PROXY && !w->service)
            shm_waiter_count_as_running(w);
    }
}

/* Channels to mark, each with a reference of ours: the message they came in
 * may be read, and dropped, once the channel's lock is given back. */
typedef struct {
    shm_off *chans;
    uint32_t n, cap;
} channel_refs;

/* Add the channels that message `msg` carries (its holder's lock held). */
static void
refs_add_carried(channel_refs *refs, shm_off msg)
{
    uint32_t n = shm_message_channels(msg, NULL, 0);
    if (!n)
        return;
    if (refs->n + n > refs->cap) {
        uint32_t cap = (refs->n + n) * 2;
        shm_off *grown = realloc(refs->chans, cap * sizeof(shm_off));
        if (!grown)
            return;   /* no memory: those stay unmarked (deadlock detection may be early) */
        refs->chans = grown;
        refs->cap = cap;
    }
    shm_message_channels(msg, refs->chans + refs->n, n);
    for (uint32_t i = 0; i < n; i++)
        shm_channel_hold(refs->chans[refs->n + i]);
    refs->n += n;
}

/* Channel `chan` is reachable from other programs: those blocked on it count
 * as running again, and the channels whose ends wait in its buffer join
 * `todo` (referenced) to be marked in turn. */
static void
mark_one(shm_off chan, channel_refs *todo)
{
    shm_channel *ch = SHM_PTR(shm_channel, chan);
    csp_chan *c = &ch->s;
    chan_lock(c);
    if (!atomic_load(&ch->reachable)) {
        atomic_store(&ch->reachable, 1);
        count_queue_as_running(c->rq_head);
        count_queue_as_running(c->wq_head);
        csp_ref *ring = c->count ? csp_ring(&in_the_arena, c) : NULL;
        for (int64_t i = 0; i < c->count; i++)
            refs_add_carried(todo, ring[(c->head + i) % c->slots]);
    }
    chan_unlock(c);
}

/* Mark the channels of `todo` (each referenced, given back here) and what
 * their buffers carry: a worklist, for a chain may be long. */
static void
mark_referenced(channel_refs *todo)
{
    while (todo->n) {
        shm_off chan = todo->chans[--todo->n];
        mark_one(chan, todo);
        shm_channel_release(chan);
    }
    free(todo->chans);
    todo->chans = NULL;
    todo->cap = 0;
}

/* Other programs may use channel `first` from now on.  A wait on it may end
 * from afar, so it never makes a deadlock: those blocked on it count as
 * running again.  So may the channels whose ends wait in its buffer (a party
 * elsewhere may read them), and theirs.  (A queued writer's message needs
 * nothing: the writer counts as running now, and marks what its message
 * carries if it lands in the buffer.) */
static void
mark_reachable(shm_off first)
{
    channel_refs todo = {0};
    mark_one(first, &todo);
    mark_referenced(&todo);
}

/* After a write of `msg`, which carries channels, into the buffer of `chan`:
 * if `chan` is reachable and `msg` waits in its buffer, a party elsewhere may
 * read it, so what it carries is reachable too.  (Read at once by a process
 * of the program, it needs nothing; read by the agent, the agent's pickling
 * marks it; if `chan` becomes reachable later, mark_reachable finds it in the
 * buffer.  A handle reused by another message meanwhile only marks more.) */
static void
mark_carried_in_buffer(shm_off chan, shm_off msg)
{
    shm_channel *ch = SHM_PTR(shm_channel, chan);
    if (!atomic_load(&ch->reachable))
        return;
    channel_refs carried = {0};
    csp_chan *c = &ch->s;
    chan_lock(c);
    csp_ref *ring = c->count ? csp_ring(&in_the_arena, c) : NULL;
    for (int64_t i = 0; i < c->count; i++) {
        if (ring[(c->head + i) % c->slots] == msg) {
            refs_add_carried(&carried, msg);
            break;
        }
    }
    chan_unlock(c);
    mark_referenced(&carried);
}

/* ------------------------------------------------------------------ */
/* Read and write                                                      */

static PyObject *
shm_read(ShmEndObject *e)
{
    if (e->retired) {
        csp_raise_end_retired(0);
        return NULL;
    }
    shm_waiter *w = shm_my_waiter();
    if (!w)
        return NULL;
    for (;;) {
        csp_ref msg;
        if (csp_communicate(&in_the_arena, &as_record, w, &CH(e->channel)->s, 0, 0,
                            &msg) < 0)
            return NULL;
        PyObject *r = shm_message_decode(msg);
        if (r || PyErr_Occurred())
            return r;
        /* Its writer ended before we could copy: as if never offered. */
    }
}

static int
shm_write(ShmEndObject *e, PyObject *obj)
{
    if (e->retired) {
        csp_raise_end_retired(1);
        return -1;
    }
    shm_waiter *w = shm_my_waiter();
    if (!w)
        return -1;
    /* Pickle first: a message that cannot be pickled changes nothing. */
    csp_chan *c = &CH(e->channel)->s;
    vm_hold hold = {.w = w};
    shm_off msg = c->capacity == 0 ? shm_message_encode_held(obj, &hold) : shm_message_encode(obj);
    if (!msg)
        return -1;
    w->pending = msg;  /* freed by the parent's reap if this process dies now */
    int carries = c->capacity > 0 && shm_message_carries_channels(msg);
    csp_ref unused;
    if (csp_communicate(&in_the_arena, &as_record, w, c, 1, msg, &unused) < 0) {
        shm_message_discard(msg);
        vm_hold_release(&hold);
        return -1;
    }
    if (carries)
        mark_carried_in_buffer(e->channel->chan, msg);
    /* The reader or the buffer owns the block; a reader may still be
     * copying big buffers from our memory. */
    return hold.views ? shm_message_delivered(&hold) : 0;
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
    c->s.capacity = capacity;
    return off;
}

void
shm_channel_hold(shm_off off)
{
    atomic_fetch_add(&SHM_PTR(shm_channel, off)->refs, 1);
}

/* Per thread: channels whose last reference went while this thread was
 * freeing another (a buffered message holds the end of the next channel,
 * whose buffer holds the next...): freed one after the other, not by
 * recursion, which a long chain turned into a stack overflow. */
static _Thread_local int freeing_channels;
static _Thread_local shm_off *channels_to_free;
static _Thread_local size_t nchannels_to_free, channels_to_free_cap;

static void
free_channel(shm_off off)
{
    shm_channel *c = SHM_PTR(shm_channel, off);
    csp_ring_drain(&in_the_arena, &c->s);   /* may release more channels */
    shm_free(c->s.ring);
    shm_free(c->name);
    shm_lock_destroy(&c->lock);
    shm_free(off);
}

void
shm_channel_release(shm_off off)
{
    shm_channel *c = SHM_PTR(shm_channel, off);
    if (atomic_fetch_sub(&c->refs, 1) != 1)
        return;
    if (freeing_channels) {
        if (nchannels_to_free == channels_to_free_cap) {
            size_t cap = channels_to_free_cap ? channels_to_free_cap * 2 : 64;
            shm_off *grown = realloc(channels_to_free, cap * sizeof(shm_off));
            if (!grown) {
                free_channel(off);   /* no memory: recursion, as before */
                return;
            }
            channels_to_free = grown;
            channels_to_free_cap = cap;
        }
        channels_to_free[nchannels_to_free++] = off;
        return;
    }
    freeing_channels = 1;
    for (;;) {
        free_channel(off);
        if (!nchannels_to_free)
            break;
        off = channels_to_free[--nchannels_to_free];
    }
    freeing_channels = 0;
}

/* The channel's label for deadlock reports and dumps, repr(name), kept in
 * the arena: other processes know the channel by its offset only.  A name
 * whose repr fails gets no label (the report uses the offset). */
static int
keep_label_in_arena(shm_off chan, PyObject *name)
{
    PyObject *label = PyObject_Repr(name);
    PyObject *utf8 = label ? PyUnicode_AsEncodedString(label, "utf-8", "surrogatepass") : NULL;
    Py_XDECREF(label);
    if (!utf8) {
        if (PyErr_ExceptionMatches(PyExc_MemoryError))
            return -1;
        PyErr_Clear();
        return 0;
    }
    Py_ssize_t len = PyBytes_GET_SIZE(utf8);
    shm_off block = shm_alloc((uint64_t)len + 1);
    if (block) {
        memcpy(SHM_PTR(char, block), PyBytes_AS_STRING(utf8), (size_t)len + 1);
        SHM_PTR(shm_channel, chan)->name = block;
    }
    Py_DECREF(utf8);
    return block ? 0 : -1;
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
    if (name != Py_None && keep_label_in_arena(off, name) < 0) {
        shm_channel_release(off);
        return NULL;
    }
    ShmChannelObject *c = wrap_channel(off, name);
    if (!c)
        shm_channel_release(off);
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
        shm_channel_release(c->chan);
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
        csp_chan *c = &CH(ch)->s;
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
channel_poison(shm_channel *sc)
{
    csp_chan *c = &sc->s;
    chan_lock(c);
    csp_poison(&in_the_arena, c, CSP_POISONED);
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
    int64_t capacity = CH((ShmChannelObject *)chobj)->s.capacity;
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
                                    (long long)CH(c)->s.capacity);
    return PyUnicode_FromFormat("<Channel at +%llu buffer=%lld (shared)>",
                                (unsigned long long)c->chan, (long long)CH(c)->s.capacity);
}

static PyObject *
shmchan_get_buffer(ShmChannelObject *c, void *Py_UNUSED(x))
{
    return PyLong_FromLongLong(CH(c)->s.capacity);
}

shm_off
shm_channel_offset(PyObject *obj)
{
    if (!PyObject_TypeCheck(obj, csp_st->ShmChannelType)) {
        PyErr_Format(PyExc_TypeError, "expected a channel of the processes backend, not %.100s",
                     Py_TYPE(obj)->tp_name);
        return 0;
    }
    return ((ShmChannelObject *)obj)->chan;
}

/* Offers of a queue: of waiter records (blocked processes, or stale) in
 * *waiting, of proxy records (parties of other programs) in *proxies. */
static void
count_offers(shm_off head, long long *waiting, long long *proxies)
{
    for (shm_off o = head; o; o = SHM_PTR(shm_offer, o)->next) {
        shm_waiter *w = SHM_PTR(shm_waiter, SHM_PTR(shm_offer, o)->waiter);
        if (atomic_load_explicit(&w->status, memory_order_relaxed) == CSP_PROXY)
            ++*proxies;
        else
            ++*waiting;
    }
}

/* _mark_reachable(): other programs may use the channel from now on
 * (pycsp.net homes it), see mark_reachable. */
static PyObject *
shmchan_mark_reachable(ShmChannelObject *self, PyObject *Py_UNUSED(i))
{
    mark_reachable(self->chan);
    Py_RETURN_NONE;
}

static PyObject *
shmchan_stats(ShmChannelObject *self, PyObject *Py_UNUSED(i))
{
    csp_chan *c = &CH(self)->s;
    chan_lock(c);
    long long nr = 0, nw = 0, pr = 0, pw = 0;
    count_offers(c->rq_head, &nr, &pr);
    count_offers(c->wq_head, &nw, &pw);
    /* Copied under the lock, built after: a GC run inside Py_BuildValue may
     * run code that uses this channel. */
    long long count = c->count, nreaders = c->nreaders, nwriters = c->nwriters;
    int poisoned = c->poisoned, no_readers = c->no_readers, no_writers = c->no_writers;
    chan_unlock(c);
    return Py_BuildValue("{s:L,s:L,s:L,s:L,s:L,s:L,s:L,s:O,s:O,s:O,s:L}", "buffered", count,
                         "blocked_readers", nr, "blocked_writers", nw, "proxy_readers", pr,
                         "proxy_writers", pw, "readers", nreaders,
                         "writers", nwriters, "poisoned", poisoned ? Py_True : Py_False,
                         "readers_retired", no_readers ? Py_True : Py_False, "writers_retired",
                         no_writers ? Py_True : Py_False, "refs",
                         (long long)atomic_load(&CH(self)->refs));
}

static PyMethodDef shmchan_methods[] = {
    {"reader", (PyCFunction)shmchan_reader, METH_NOARGS,
     "reader($self, /)\n--\n\nJoin as one more reader: a new ChannelEndRead (also ``+ch``)."},
    {"writer", (PyCFunction)shmchan_writer, METH_NOARGS,
     "writer($self, /)\n--\n\nJoin as one more writer: a new ChannelEndWrite (also ``-ch``)."},
    {"poison", (PyCFunction)shmchan_poison, METH_NOARGS,
     "poison($self, /)\n--\n\n"
     "Poison the channel, in every OS process: every blocked and every later read\n"
     "or write on it raises ChannelPoisonException; buffered messages are dropped."},
    {"statistics", (PyCFunction)shmchan_stats, METH_NOARGS,
     "statistics($self, /)\n--\n\n"
     "A dict of what the channel holds now: ``buffered``, ``blocked_readers``,\n"
     "``blocked_writers``, ``readers`` and ``writers`` (joined ends, in every OS\n"
     "process), the flags ``poisoned``, ``readers_retired``, ``writers_retired``,\n"
     "``refs`` (references to the channel in the arena), and ``proxy_readers``,\n"
     "``proxy_writers``: queued proxy offers of parties in other programs\n"
     "(pycsp.net), not counted as blocked."},
    {"_mark_reachable", (PyCFunction)shmchan_mark_reachable, METH_NOARGS,
     "_mark_reachable($self, /)\n--\n\n"
     "Other programs may use the channel from now on (pycsp.net homes it): a\n"
     "process blocked on it counts as running for deadlock detection, since a\n"
     "party elsewhere may still serve it."},
    {"__reduce__", (PyCFunction)shmchan_reduce, METH_NOARGS, NULL},
    CSP_CLASS_GETITEM,
    {NULL}
};

static PyMemberDef shmchan_members[] = {
    {"name", T_OBJECT, offsetof(ShmChannelObject, name), READONLY,
     "The channel's name, as given (None if unnamed)."},
    {"_offset", T_ULONGLONG, offsetof(ShmChannelObject, chan), READONLY,
     "where the channel is in the arena: the same in every process (deadlock reports)"},
    {"__weaklistoffset__", T_PYSSIZET, offsetof(ShmChannelObject, weakreflist), READONLY, NULL},
    {NULL}
};

static PyObject *
shmchan_get_label(ShmChannelObject *c, void *Py_UNUSED(closure))
{
    return channel_label_in_arena(c->chan);
}

static PyGetSetDef shmchan_getset[] = {
    {"_label", (getter)shmchan_get_label, NULL,
     "repr of its name as every process sees it (reports), or None", NULL},
    {"buffer", (getter)shmchan_get_buffer, NULL,
     "How many messages may wait in the channel; 0 for a rendezvous.", NULL},
    {NULL}
};

static PyType_Slot shmchan_slots[] = {
    {Py_tp_doc, "Channel(name=None, buffer=0)\n--\n\n"
                "An any-to-any channel between OS processes (and their threads).\n\n"
                "The channel, its queues and its messages live in the shared arena. A\n"
                "message is copied: an int, float, str, None, True or False as it is, any\n"
                "other object pickled (protocol 5, large buffers copied once); the reader\n"
                "gets an equal object, the writer's is untouched. ``buffer``, the ends and\n"
                "``Channel() * n`` are as in the other backends. A channel, or an end of\n"
                "it, can be sent to another OS process, in a message or as an argument.\n\n"
                "Args:\n"
                "    name: names the channel in its repr and in deadlock reports (any object\n"
                "        that pickles; None: unnamed).\n"
                "    buffer: how many messages may wait, an int >= 0.\n\n"
                "Raises:\n"
                "    TypeError: ``buffer`` is not an int.\n"
                "    ValueError: ``buffer`` is negative or too large."},
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
    csp_chan *c = &CH(e->channel)->s;
    chan_lock(c);
    csp_retire(&in_the_arena, c, e->is_writer, CSP_RETIRED);
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
    {"retire", (PyCFunction)shmend_retire, METH_NOARGS,
     "retire($self, /)\n--\n\n"
     "Leave the channel: this end no longer counts as a reader (writer).\n\n"
     "Harmless twice. An end sent to another process stands for the same join:\n"
     "retire it in one place. Using a retired end raises ChannelRetireException."},
    {"poison", (PyCFunction)shmend_poison, METH_NOARGS,
     "poison($self, /)\n--\n\n"
     "Poison the channel, in every OS process: every blocked and every later read\n"
     "or write on it raises ChannelPoisonException; buffered messages are dropped."},
    {"__reduce__", (PyCFunction)shmend_reduce, METH_NOARGS, NULL},
    CSP_CLASS_GETITEM,
    {NULL}
};

static PyGetSetDef shmend_getset[] = {
    {"channel", (getter)shmend_get_channel, NULL, "The Channel this end belongs to.", NULL},
    {"retired", (getter)shmend_get_retired, NULL, "True once ``retire()`` was called on this end.", NULL},
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
             "A reader end of a shared channel: ``msg = end()`` blocks until a message\n"
             "arrives, and returns it (unpickled).\n\n"
             "Made by ``channel.reader()``, ``+channel`` or ``IN(channel)``, never by\n"
             "calling the type. It can be sent to another OS process.\n\n"
             "Raises:\n"
             "    ChannelPoisonException: (on a read) the channel is poisoned.\n"
             "    ChannelRetireException: (on a read) this end is retired, or every writer\n"
             "        has retired and nothing is buffered.\n"
             "    DeadlockError: (on a read) every CSP process of the program is blocked.");
SHM_END_TYPE(shmend_write, "ChannelEndWrite",
             "A writer end of a shared channel: ``end(msg)`` copies ``msg`` into the\n"
             "arena (pickled unless it is a plain int, float, str, None or bool) and\n"
             "blocks until a reader takes it (or it fits in the buffer).\n\n"
             "Made by ``channel.writer()``, ``-channel`` or ``OUT(channel)``, never by\n"
             "calling the type. It can be sent to another OS process.\n\n"
             "Raises:\n"
             "    ChannelPoisonException: (on a write) the channel is poisoned.\n"
             "    ChannelRetireException: (on a write) this end is retired, or every reader\n"
             "        has retired.\n"
             "    DeadlockError: (on a write) every CSP process of the program is blocked.\n"
             "    pickle.PicklingError: (also TypeError, AttributeError, as pickle raises\n"
             "        them) ``msg`` cannot be pickled; nothing was sent.");

/* ------------------------------------------------------------------ */
/* Alternation                                                         */

uint64_t *
shm_end_stamp(PyObject *end)
{
    return &((ShmEndObject *)end)->fair_stamp;
}

int
csp_shared_select(const csp_alt_guard *alt, Py_ssize_t n, Py_ssize_t *chosen, PyObject **msg)
{
    shm_waiter *w = shm_my_waiter();
    if (!w)
        return -1;
    csp_guard *gs = PyMem_Calloc((size_t)n, sizeof(csp_guard));
    csp_guard **locked = PyMem_Calloc((size_t)n, sizeof(csp_guard *));
    vm_hold *holds = NULL;   /* made for the first output guard of a rendezvous */
    /* made for the first buffered output guard whose message carries channels */
    char *carries = NULL;
    int64_t written = -1;    /* the output guard whose message went */
    shm_off written_msg = 0;
    int result = -1;
    if (!gs || !locked) {
        PyErr_NoMemory();
        goto done;
    }
    /* Encode output messages before touching any channel. */
    uint32_t seq = 0;
    for (Py_ssize_t k = 0; k < n; k++) {
        csp_guard *g = &gs[k];
        g->kind = alt[k].kind;
        g->seconds = alt[k].seconds;
        if (!alt[k].end)
            continue;
        ShmEndObject *e = (ShmEndObject *)alt[k].end;
        g->c = &CH(e->channel)->s;
        g->end_retired = &e->retired;
        /* A retired end raises when the scan reaches it. */
        if (g->kind != CSP_GUARD_OUTPUT || e->retired)
            continue;
        if (g->c->capacity == 0 && !holds && !(holds = PyMem_Calloc((size_t)n, sizeof(vm_hold)))) {
            PyErr_NoMemory();
            goto done;
        }
        if (g->c->capacity == 0) {
            holds[k].w = w;
            holds[k].seq = seq;
        }
        if (!(g->msg = g->c->capacity == 0 ? shm_message_encode_held(alt[k].msg, &holds[k])
                                           : shm_message_encode(alt[k].msg)))
            goto done;
        if (g->c->capacity == 0 && holds[k].views)
            seq = holds[k].seq;
        if (g->c->capacity > 0 && shm_message_carries_channels(g->msg)) {
            if (!carries && !(carries = PyMem_Calloc((size_t)n, 1))) {
                PyErr_NoMemory();
                goto done;
            }
            carries[k] = 1;   /* as for a write (shm_write) */
        }
    }
    int64_t pick;
    csp_ref got;
    do {
        if (csp_select(&in_the_arena, &as_record, w, gs, n, locked, &pick, &got) < 0)
            goto done;
        if (gs[pick].kind == CSP_GUARD_OUTPUT) {
            written = pick;
            written_msg = gs[pick].msg;
            gs[pick].msg = 0;   /* the reader's, or the buffer's */
        }
        *msg = got ? shm_message_decode(got) : NULL;
        /* A writer that ended before we could copy never offered: choose
         * again (a timeout guard starts its wait afresh). */
    } while (got && !*msg && !PyErr_Occurred());
    *chosen = pick;
    if (got && !*msg)
        goto done;
    if (holds && holds[pick].views && shm_message_delivered(&holds[pick]) < 0) {
        Py_CLEAR(*msg);
        goto done;
    }
    result = 0;
done:
    if (gs)
        for (Py_ssize_t k = 0; k < n; k++)
            shm_message_discard(gs[k].msg);
    if (holds)
        for (Py_ssize_t k = 0; k < n; k++)
            vm_hold_release(&holds[k]);
    if (carries && written >= 0 && carries[written])
        mark_carried_in_buffer(((ShmEndObject *)alt[written].end)->channel->chan, written_msg);
    PyMem_Free(carries);
    PyMem_Free(holds);
    PyMem_Free(gs);
    PyMem_Free(locked);
    return result;
}

/* ------------------------------------------------------------------ */

/* _interrupted_shared_wait() -> None, or ([((offset, name), is_write)...], None):
 * what this thread waits for on shared channels while the signal handlers
 * that interrupted that wait run (state dumps). */
static PyObject *
interrupted_shared_wait(PyObject *Py_UNUSED(m), PyObject *Py_UNUSED(ignored))
{
    shm_waiter *w = shm_base ? shm_existing_waiter() : NULL;
    if (!w || csp_wait_interrupted_by != (const void *)w ||
        csp_wait_interrupted_op != w->op_number || w->noffers == 0)
        Py_RETURN_NONE;
    /* Whether it had a deadline is not kept: giving up cleared it. */
    return Py_BuildValue("(NO)", record_offers(w, w->noffers), Py_None);
}

/* _shared_waits() -> [(pid, parent, dump_signal, [((offset, label), is_write)...] or None)]:
 * every live waiter record of the program (one per OS process, and per
 * thread of one that uses shared channels) and what it is blocked on
 * without a deadline (None: running, or waiting with one).  For state
 * dumps: a snapshot copied under the registry lock (which every free of a
 * block takes, so no channel or name goes away meanwhile); a record's own
 * process may rewrite its offers at any time, so each is checked before it
 * is followed, and one seen half-written is left out. */
enum { DUMP_RECORDS = 4096, DUMP_OFFERS = 16, DUMP_NAME = 96 };
typedef struct {
    shm_off chan;
    int is_write;
    char name[DUMP_NAME];
} dumped_offer;

typedef struct {
    int32_t pid, parent, dump_signal, n;     /* n < 0: not blocked */
    dumped_offer offers[DUMP_OFFERS];
} dumped_record;

static int
plausible_block(shm_off off, uint64_t size)
{
    return off >= shm_hdr->header_size && off + size <= shm_hdr->bump;
}

static void
copy_record(shm_waiter *w, dumped_record *d)
{
    d->pid = w->pid;
    d->parent = w->parent;
    d->dump_signal = w->dump_signal;
    d->n = -1;
    if (!(atomic_load(&w->inactive) && atomic_load(&w->status) == CSP_WAITING))
        return;
    int64_t n = w->noffers;
    if (n < 0 || n > w->offers_cap || !plausible_block(w->offers, (uint64_t)n * sizeof(shm_offer)))
        return;
    d->n = 0;
    shm_offer *offers = SHM_PTR(shm_offer, w->offers);
    for (int64_t i = 0; i < n && d->n < DUMP_OFFERS; i++) {
        shm_off chan = offers[i].chan;
        if (!plausible_block(chan, sizeof(shm_channel)))
            continue;
        dumped_offer *o = &d->offers[d->n++];
        o->chan = chan;
        o->is_write = offers[i].is_write;
        o->name[0] = 0;
        shm_off name = SHM_PTR(shm_channel, chan)->name;
        if (name && plausible_block(name, 1)) {
            uint64_t room = shm_hdr->bump - name;
            size_t len = strnlen(SHM_PTR(char, name), room < DUMP_NAME - 1 ? room : DUMP_NAME - 1);
            memcpy(o->name, SHM_PTR(char, name), len);
            o->name[len] = 0;
        }
    }
}

static PyObject *
shared_waits(PyObject *Py_UNUSED(m), PyObject *Py_UNUSED(ignored))
{
    PyObject *result = PyList_New(0);
    if (!result || !shm_base)
        return result;
    dumped_record *seen = PyMem_Malloc(sizeof(*seen) * DUMP_RECORDS);
    if (!seen) {
        Py_DECREF(result);
        return PyErr_NoMemory();
    }
    int64_t count = 0;
    shm_hdr_lock();
    for (shm_off off = shm_hdr->waiters; off && count < DUMP_RECORDS;
         off = SHM_PTR(shm_waiter, off)->next) {
        shm_waiter *w = SHM_PTR(shm_waiter, off);
        if (!w->dead)
            copy_record(w, &seen[count++]);
    }
    shm_lock_release(&shm_hdr->lock);
    for (int64_t i = 0; i < count && result; i++) {
        PyObject *waits = Py_None;
        if (seen[i].n >= 0) {
            waits = PyList_New(0);
            for (int32_t k = 0; waits && k < seen[i].n; k++) {
                /* A label cut at DUMP_NAME bytes may end inside a character. */
                const char *label = seen[i].offers[k].name;
                PyObject *text = label[0] ? PyUnicode_DecodeUTF8(label, (Py_ssize_t)strlen(label),
                                                                 "replace")
                                          : Py_NewRef(Py_None);
                PyObject *o = text ? Py_BuildValue("(KN)", (unsigned long long)seen[i].offers[k].chan,
                                                   text)
                                   : NULL;
                PyObject *item = o ? Py_BuildValue("(NO)", o, seen[i].offers[k].is_write ? Py_True
                                                                                      : Py_False)
                                   : NULL;
                if (!item || PyList_Append(waits, item) < 0)
                    Py_CLEAR(waits);
                Py_XDECREF(item);
            }
        }
        else {
            Py_INCREF(waits);
        }
        PyObject *item = waits ? Py_BuildValue("(iiiN)", seen[i].pid, seen[i].parent,
                                               seen[i].dump_signal, waits)
                               : NULL;
        if (!item || PyList_Append(result, item) < 0)
            Py_CLEAR(result);
        Py_XDECREF(item);
    }
    PyMem_Free(seen);
    return result;
}

/* _shm_answer_dump_signal(signum): this OS process answers `signum` with a
 * state dump (0: no longer); its parent passes the signal on only then.
 * Nothing to say for a thread without a waiter record. */
static PyObject *
answer_dump_signal(PyObject *Py_UNUSED(m), PyObject *arg)
{
    long signum = PyLong_AsLong(arg);
    if (signum == -1 && PyErr_Occurred())
        return NULL;
    if (signum < 0 || signum > 1024) {
        PyErr_SetString(PyExc_ValueError, "_shm_answer_dump_signal takes a signal number");
        return NULL;
    }
    /* Only a record it has: a new one would count as a running process. */
    shm_waiter *w = shm_base ? shm_existing_waiter() : NULL;
    if (w)
        w->dump_signal = (int32_t)signum;
    Py_RETURN_NONE;
}

/* _shm_die_holding_channel_lock(channel): test only.  Take the channel's
 * lock and exit without giving it back, as a process killed inside a channel
 * operation would: the next locker recovers the channel (chan_recover). */
static PyObject *
die_holding_channel_lock(PyObject *Py_UNUSED(m), PyObject *arg)
{
    shm_off chan = shm_channel_offset(arg);
    if (!chan)
        return NULL;
    shm_lock_acquire(&SHM_PTR(shm_channel, chan)->lock);   /* (raw: no recovery here) */
    _exit(0);
}

static PyMethodDef shmchan_module_methods[] = {
    {"_shm_die_holding_channel_lock", die_holding_channel_lock, METH_O,
     "Test only: exit holding the channel's lock."},
    {"_interrupted_shared_wait", interrupted_shared_wait, METH_NOARGS,
     "what this thread waits for on shared channels while signal handlers interrupt it"},
    {"_shared_waits", shared_waits, METH_NOARGS,
     "[(pid, parent, dump_signal, [((offset, label), is_write)...] or None)] of every live "
     "waiter record (at most 4096, 16 offers each): for state dumps"},
    {"_shm_answer_dump_signal", answer_dump_signal, METH_O,
     "_shm_answer_dump_signal(signum): this thread's record says it answers signum with a dump"},
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
    shm_install_waiter_hooks(&waiter_hooks);
    shm_message_install_channel_release(shm_channel_release);
    return csp_shm_message_init_module(m);
}

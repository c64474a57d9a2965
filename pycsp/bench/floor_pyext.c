/*
 * The Python floor of processes: floor_processes.c's channel, called from Python.
 *
 * A minimal CPython extension (module floor_pyext) compiled at benchmark time
 * (pycsp/bench/pyfloor.py builds and loads it) so that the benchmark kernels
 * (kernels.py: Commstime, ring) run in forked Python processes on the bare C
 * network's own primitive.  What a Python process pays above the C network here
 * is the interpreter (the kernel's loop, its int objects, one vectorcall per
 * channel operation) and nothing of a library: no message encoding beyond an
 * int's conversion, no lock, no offer, no claim, no deadlock count, no signal
 * watch, no dead-process detection, and the GIL is kept while waiting (each
 * process has one thread).
 *
 * The channel is floor_processes.c's, word for word: one 64-byte slot of
 * MAP_SHARED memory per channel, a 32-bit word (0 empty, else the value + 1) and
 * a count of sleepers; a write waits for the word to be empty and stores the
 * value, a read waits for it to be full and empties it; FUTEX_WAKE only when
 * someone sleeps on the word.  A ONE-PLACE BUFFER, not a rendezvous: a writer
 * does not wait for its reader.  Waiting modes as there: futex, spin, hybrid
 * (sched_yield for up to 50 us, then the futex; a process whose recent waits
 * averaged over 100 us sleeps at once), and as there a mode with the suffix
 * "-rv" (hybrid-rv) makes the channel a rendezvous: a write ends when a reader
 * has its value (floor_processes.c's READER_WAITING: one side waits, the other
 * finishes it).
 *
 * One addition, so that the kernels end as they do on pycsp: poison stores
 * FLOOR_POISONED in the word and wakes every sleeper; a read or write that finds
 * it raises ChannelPoisonException.  That costs one comparison per operation.
 *
 * Ints 0 .. 2**32 - 3 only (what the C network carries).  Channels are made
 * before the fork (their slots come from chunks that are never unmapped).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

#include <limits.h>
#include <linux/futex.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define FLOOR_POISONED 0xffffffffu
#define FLOOR_MAX_VALUE (FLOOR_POISONED - 2u)
#define SPIN_BUDGET 50e-6
#define SLOTS_PER_CHUNK 1024

enum { M_FUTEX, M_SPIN, M_HYBRID };

typedef struct {
    _Atomic uint32_t word;      /* 0: empty, else value + 1; FLOOR_POISONED */
    _Atomic uint32_t sleepers;  /* processes in FUTEX_WAIT on word */
    char pad[56];
} chan;

static int wait_mode = M_HYBRID;
static int rendezvous;          /* a write ends when a reader has its value */
static double recent_wait;      /* per process: moving average of waits (hybrid) */
static chan *chunk;             /* the chunk slots are taken from */
static int chunk_used = SLOTS_PER_CHUNK;
static PyObject *poison_error;

/* ------------------------------------------------------------------------ */
/* the channel of floor_processes.c (no GIL needed, no PyObject touched)     */
/* ------------------------------------------------------------------------ */

static long futex(void *addr, int op, int val)
{
    return syscall(SYS_futex, addr, op, val, NULL, NULL, 0);
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

#define READER_WAITING (FLOOR_POISONED - 1u)

enum { WANT_EMPTY, WANT_FULL, WANT_CHANGE };

static inline int ready(uint32_t v, int want, uint32_t from)
{
    if (v == FLOOR_POISONED || want == WANT_CHANGE)
        return v != from;
    if (want == WANT_EMPTY)
        return v == 0;
    return v != 0 && v != READER_WAITING;
}

/* Wait until the word is empty, full, or no longer `from`, or poisoned;
 * return it. */
static uint32_t chan_wait(chan *c, int want, uint32_t from)
{
    uint32_t v = atomic_load(&c->word);
    if (ready(v, want, from))
        return v;
    double started = 0;
    if (wait_mode == M_SPIN) {
        while (v = atomic_load_explicit(&c->word, memory_order_acquire), !ready(v, want, from))
            cpu_relax();
        return v;
    }
    if (wait_mode == M_HYBRID) {
        started = now();
        if (recent_wait <= 2 * SPIN_BUDGET) {
            while (now() - started < SPIN_BUDGET) {
                sched_yield();
                v = atomic_load(&c->word);
                if (ready(v, want, from))
                    goto got;
            }
        }
    }
    for (;;) {
        atomic_fetch_add(&c->sleepers, 1);
        futex((void *)&c->word, FUTEX_WAIT, (int)v);   /* returns at once if word != v */
        atomic_fetch_sub(&c->sleepers, 1);
        v = atomic_load(&c->word);
        if (ready(v, want, from))
            break;
    }
got:
    if (wait_mode == M_HYBRID)
        recent_wait = 0.75 * recent_wait + 0.25 * (now() - started);
    return v;
}

static void chan_set(chan *c, uint32_t v)
{
    atomic_store(&c->word, v);          /* seq_cst: ordered before the load below */
    if (atomic_load(&c->sleepers))
        futex((void *)&c->word, FUTEX_WAKE, INT_MAX);
}

/* ------------------------------------------------------------------------ */
/* the ends: callable objects (vectorcall), cin() and cout(value)            */
/* ------------------------------------------------------------------------ */

typedef struct {
    PyObject_HEAD
    chan *c;
    vectorcallfunc vectorcall;
} EndObject;

/* New reference, or NULL with ChannelPoisonException. */
static PyObject *end_read(PyObject *self, PyObject *const *Py_UNUSED(args), size_t nargsf,
                          PyObject *kwnames)
{
    if (PyVectorcall_NARGS(nargsf) != 0 || kwnames) {
        PyErr_SetString(PyExc_TypeError, "a reading end takes no arguments");
        return NULL;
    }
    chan *c = ((EndObject *)self)->c;
    uint32_t v = atomic_load(&c->word);
    if (rendezvous && v == 0 && atomic_compare_exchange_strong(&c->word, &v, READER_WAITING))
        v = READER_WAITING;
    if (!ready(v, WANT_FULL, 0))
        v = chan_wait(c, WANT_FULL, 0);
    if (v == FLOOR_POISONED) {
        PyErr_SetNone(poison_error);
        return NULL;
    }
    chan_set(c, 0);
    return PyLong_FromUnsignedLong(v - 1);
}

/* None, or NULL with ChannelPoisonException / OverflowError / TypeError. */
static PyObject *end_write(PyObject *self, PyObject *const *args, size_t nargsf,
                           PyObject *kwnames)
{
    if (PyVectorcall_NARGS(nargsf) != 1 || kwnames) {
        PyErr_SetString(PyExc_TypeError, "a writing end takes one argument");
        return NULL;
    }
    unsigned long value = PyLong_AsUnsignedLong(args[0]);
    if (value == (unsigned long)-1 && PyErr_Occurred())
        return NULL;
    if (value > FLOOR_MAX_VALUE) {
        PyErr_SetString(PyExc_OverflowError, "the floor carries ints below 2**32 - 2");
        return NULL;
    }
    chan *c = ((EndObject *)self)->c;
    uint32_t mine = (uint32_t)value + 1;
    if (!rendezvous) {
        if (chan_wait(c, WANT_EMPTY, 0) == FLOOR_POISONED)
            goto poisoned;
        chan_set(c, mine);
        Py_RETURN_NONE;
    }
    uint32_t v = atomic_load(&c->word);
    for (;;) {
        if (v == FLOOR_POISONED)
            goto poisoned;
        if (v == READER_WAITING || v == 0) {
            /* seq_cst: the store is ordered before the sleepers' load */
            if (!atomic_compare_exchange_strong(&c->word, &v, mine))
                continue;
            if (v == READER_WAITING) {
                if (atomic_load(&c->sleepers))
                    futex((void *)&c->word, FUTEX_WAKE, INT_MAX);
            }
            else if (chan_wait(c, WANT_CHANGE, mine) == FLOOR_POISONED)
                goto poisoned;
            Py_RETURN_NONE;
        }
        v = chan_wait(c, WANT_CHANGE, v);
    }
poisoned:
    PyErr_SetNone(poison_error);
    return NULL;
}

static PyMemberDef end_members[] = {
    {"__vectorcalloffset__", T_PYSSIZET, offsetof(EndObject, vectorcall), READONLY, NULL},
    {NULL},
};

static PyType_Slot end_slots[] = {
    {Py_tp_call, PyVectorcall_Call},
    {Py_tp_members, end_members},
    {0, NULL},
};

static PyType_Spec end_spec = {
    .name = "floor_pyext.End",
    .basicsize = sizeof(EndObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_VECTORCALL,
    .slots = end_slots,
};

/* ------------------------------------------------------------------------ */
/* the channel object: a slot, and its two ends                              */
/* ------------------------------------------------------------------------ */

typedef struct {
    PyObject_HEAD
    chan *c;
} ChannelObject;

static PyTypeObject *end_type;

static PyObject *make_end(PyObject *self, vectorcallfunc call)
{
    EndObject *e = PyObject_New(EndObject, end_type);
    if (e == NULL)
        return NULL;
    e->c = ((ChannelObject *)self)->c;
    e->vectorcall = call;
    return (PyObject *)e;
}

static PyObject *channel_reader(PyObject *self, PyObject *Py_UNUSED(ignored))
{
    return make_end(self, end_read);
}

static PyObject *channel_writer(PyObject *self, PyObject *Py_UNUSED(ignored))
{
    return make_end(self, end_write);
}

static PyObject *channel_new(PyTypeObject *type, PyObject *Py_UNUSED(args),
                             PyObject *Py_UNUSED(kwds))
{
    if (chunk_used == SLOTS_PER_CHUNK) {
        void *p = mmap(NULL, SLOTS_PER_CHUNK * sizeof(chan), PROT_READ | PROT_WRITE,
                       MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED)
            return PyErr_SetFromErrno(PyExc_OSError);
        chunk = p;
        chunk_used = 0;
    }
    ChannelObject *ch = (ChannelObject *)type->tp_alloc(type, 0);
    if (ch == NULL)
        return NULL;
    ch->c = &chunk[chunk_used++];
    return (PyObject *)ch;
}

static PyMethodDef channel_methods[] = {
    {"reader", channel_reader, METH_NOARGS, "The reading end: call it to read."},
    {"writer", channel_writer, METH_NOARGS, "The writing end: call it with an int."},
    {NULL},
};

static PyType_Slot channel_slots[] = {
    {Py_tp_new, channel_new},
    {Py_tp_methods, channel_methods},
    {0, NULL},
};

static PyType_Spec channel_spec = {
    .name = "floor_pyext.Channel",
    .basicsize = sizeof(ChannelObject),
    .flags = Py_TPFLAGS_DEFAULT,
    .slots = channel_slots,
};

/* ------------------------------------------------------------------------ */
/* module functions                                                          */
/* ------------------------------------------------------------------------ */

static PyObject *floor_poison(PyObject *Py_UNUSED(module), PyObject *end)
{
    if (!Py_IS_TYPE(end, end_type)) {
        PyErr_SetString(PyExc_TypeError, "poison takes a channel end");
        return NULL;
    }
    chan *c = ((EndObject *)end)->c;
    atomic_store(&c->word, FLOOR_POISONED);
    futex((void *)&c->word, FUTEX_WAKE, INT_MAX);
    Py_RETURN_NONE;
}

static PyObject *floor_set_mode(PyObject *Py_UNUSED(module), PyObject *name)
{
    static const char *const names[] = {"futex", "spin", "hybrid"};
    Py_ssize_t len;
    const char *s = PyUnicode_AsUTF8AndSize(name, &len);
    if (s == NULL)
        return NULL;
    int rv = len > 3 && !strcmp(s + len - 3, "-rv");
    for (int m = 0; m < 3; m++) {
        if ((size_t)(len - 3 * rv) == strlen(names[m]) && !strncmp(s, names[m], strlen(names[m]))) {
            wait_mode = m;
            rendezvous = rv;
            Py_RETURN_NONE;
        }
    }
    PyErr_Format(PyExc_ValueError, "mode is futex, spin or hybrid, with -rv or not, not %R",
                 name);
    return NULL;
}

static PyMethodDef module_methods[] = {
    {"poison", floor_poison, METH_O, "Poison the channel of this end."},
    {"set_mode", floor_set_mode, METH_O,
     "The waiting policy: futex, spin or hybrid; with -rv, a rendezvous."},
    {NULL},
};

static struct PyModuleDef floor_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "floor_pyext",
    .m_doc = "floor_processes.c's one-place channel for Python processes (the benchmarks' floor).",
    .m_size = -1,
    .m_methods = module_methods,
};

PyMODINIT_FUNC PyInit_floor_pyext(void)
{
    PyObject *m = PyModule_Create(&floor_module);
    if (m == NULL)
        return NULL;
    end_type = (PyTypeObject *)PyType_FromSpec(&end_spec);
    PyObject *channel_type = PyType_FromSpec(&channel_spec);
    poison_error = PyErr_NewException("floor_pyext.ChannelPoisonException", NULL, NULL);
    if (end_type == NULL || channel_type == NULL || poison_error == NULL ||
        PyModule_AddObjectRef(m, "Channel", channel_type) < 0 ||
        PyModule_AddObjectRef(m, "ChannelPoisonException", poison_error) < 0) {
        Py_XDECREF(channel_type);
        Py_DECREF(m);
        return NULL;
    }
    Py_DECREF(channel_type);
    return m;
}

/* task.c - Tasks (what blocks), thread waiting, deadlock accounting, Join.
 *
 * A Task is one CSP process as the core sees it.  Channel operations link
 * offers that point at the Task, then call csp_task_wait(); a peer that
 * commits an offer calls csp_task_complete(), which withdraws the Task's other
 * offers, stores the result and wakes it through Task.wake.
 *
 * Deadlock accounting: every counted Task is "active" unless it is blocked
 * without a deadline.  When the last active Task blocks, nobody can ever
 * complete the blocked ones, so they are woken with CSP_DEADLOCK.
 */
#include "csp.h"
#include "wait/loop.h"

#include <structmember.h>

#include <errno.h>
#include <sched.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------------ */
/* Process-wide state, protected by the GIL: deadlock accounting is over
 * every task of the process (the module is for one interpreter only). */

static Py_ssize_t n_active;          /* counted tasks not blocked without deadline */
/* Which deadlock this is, and how many channel waits it ended: the reports
 * of one deadlock are gathered by its generation (see csp_raise_deadlock). */
uint64_t csp_deadlock_generation;
Py_ssize_t csp_deadlock_woken;
_Thread_local const void *csp_wait_interrupted_by;
_Thread_local uint64_t csp_wait_interrupted_op;
static TaskObject *blocked_head;     /* tasks blocked without deadline */
/* Per thread: the running task; borrowed, owned by the thread-state dict.
 * initial-exec: read on every operation, and the default model calls
 * __tls_get_addr each time. */
_Thread_local TaskObject *csp_tls_task __attribute__((tls_model("initial-exec")));

/* Adaptive spinning.  A blocked thread first polls its status word: some
 * iterations of `pause`, then sched_yield() (so that with more threads than
 * cores the thread holding the GIL still gets a core), for at most
 * spin_budget seconds; only then does it sleep on the futex.  A sleeping
 * wake-up costs 12-16 us on the development machine, a polled one well under
 * one.  Process-wide tuning, set by csp_ext.set_spin() (GIL held) and read by
 * waiting threads without the GIL: atomics (plain loads on x86-64). */
static _Atomic int spin_pause_iterations = 0;
static _Atomic double spin_budget = 50e-6;

/* 1 while a thread that took the GIL back in thread_block() still holds it.
 * A woken thread polls this before asking for the GIL: asking while it is
 * held means sleeping on the GIL's condition variable, a full wake-up
 * instead of a hand-off.  Only a hint: the GIL may also be held by code that
 * never passes through here, hence the same budget.  Process-wide, an atomic. */
static _Atomic uint32_t gil_busy_hint = 1;

/* ------------------------------------------------------------------ */
/* Blocked list and activity counting                                  */

static inline void
blocked_list_remove(TaskObject *t)
{
    if (t->blocked_prev)
        t->blocked_prev->blocked_next = t->blocked_next;
    else if (blocked_head == t)
        blocked_head = t->blocked_next;
    if (t->blocked_next)
        t->blocked_next->blocked_prev = t->blocked_prev;
    t->blocked_prev = t->blocked_next = NULL;
}

/* The task stops blocking (woken, timed out or cancelled): count it again. */
static inline void
task_mark_active(TaskObject *t)
{
    if (!t->inactive)
        return;
    t->inactive = 0;
    blocked_list_remove(t);
    if (t->counted)
        n_active++;
}

/* Wake every blocked task that can never be woken otherwise. */
static void
break_deadlock(void)
{
    Py_ssize_t woke = 0;
    TaskObject *t, *next;
    for (t = blocked_head; t; t = t->blocked_next)
        woke += t->wait_kind == CSP_WAIT_CHANNEL && atomic_load(&t->status) == CSP_WAITING;
    csp_deadlock_generation++;
    csp_deadlock_woken = woke;
    for (t = blocked_head; t; t = next) {
        next = t->blocked_next;
        if (t->wait_kind == CSP_WAIT_CHANNEL && atomic_load(&t->status) == CSP_WAITING)
            csp_task_complete(t, CSP_DEADLOCK, -1, NULL);
    }
    if (woke)
        return;
    /* Only joins are blocked: nothing runs that could finish them. */
    for (t = blocked_head; t; t = next) {
        next = t->blocked_next;
        if (atomic_load(&t->status) == CSP_WAITING)
            csp_task_complete(t, CSP_DEADLOCK, -1, NULL);
    }
}

static void
task_uncount(TaskObject *t)
{
    if (!t->counted)
        return;
    t->counted = 0;
    if (!t->inactive && --n_active == 0 && blocked_head)
        break_deadlock();
}

/* ------------------------------------------------------------------ */
/* Thread waiting: spin, then futex (wait/loop.h)                      */

/* The GIL gate: a woken thread passes it before asking for the GIL, so that
 * at most one thread at a time waits inside CPython's take_gil().  Thousands
 * of threads waiting there (10,000 writers woken by one reader) all time out
 * every switch interval and melt down; waiting here they sleep untimed, in
 * order.  0 = free, 1 = held, 2 = held with sleepers (Drepper's mutex).
 * Process-wide, as the GIL is; it is its own lock. */
static _Atomic int gil_gate;

static void
gil_gate_enter(void)
{
    int c = 0;
    if (atomic_compare_exchange_strong(&gil_gate, &c, 1))
        return;
    if (c != 2)
        c = atomic_exchange(&gil_gate, 2);
    while (c != 0) {
        csp_futex_wait(&gil_gate, 2, -1.0);
        c = atomic_exchange(&gil_gate, 2);
    }
}

static void
gil_gate_leave(void)
{
    if (atomic_fetch_sub(&gil_gate, 1) != 1) {
        atomic_store(&gil_gate, 0);
        csp_futex_wake(&gil_gate);
    }
}

/* Take the GIL back after a sleep (thread_sleep). */
static void
restore_thread_gated(PyThreadState *ts)
{
    gil_gate_enter();
    PyEval_RestoreThread(ts);
    gil_gate_leave();
}

/* Poll `*word` until it differs from `value` (returns 1) or the spin
 * budget is spent (returns 0).  Must not touch any PyObject. */
static int
spin_while_equal(_Atomic uint32_t *word, uint32_t value)
{
    double give_up = 0.0;
    for (int i = 0;; i++) {
        if (atomic_load_explicit(word, memory_order_acquire) != value)
            return 1;
        if (i < spin_pause_iterations) {
            csp_cpu_relax();
            continue;
        }
        if (give_up == 0.0)
            give_up = csp_monotonic() + spin_budget;
        else if (csp_monotonic() >= give_up)
            return 0;
        sched_yield();
    }
}

/* Offers in private memory: only the queue links are touched here. */
static const csp_rules private_queues = {.ptr = csp_private_ptr, .ref = csp_private_ref};

static inline void
withdraw_offers(TaskObject *t)
{
    for (Py_ssize_t i = 0; i < t->noffers; i++) {
        csp_offer *o = &t->offers[i];
        csp_offer_unlink(&private_queues, csp_private_ptr(o->chan), o);
    }
}

void
csp_task_cancel(TaskObject *t, int status)
{
    withdraw_offers(t);
    task_mark_active(t);
    atomic_store(&t->status, status);
}

/* The wait of an OS thread: poll, then sleep on the futex (private), with
 * the GIL released and taken back through the gate. */
static void
thread_sleep(void *self, double until)
{
    TaskObject *t = self;
    PyThreadState *ts = PyEval_SaveThread();
    atomic_store_explicit(&gil_busy_hint, 0, memory_order_relaxed);
    if (!spin_while_equal(&t->status, CSP_WAITING)) {
        while (atomic_load(&t->status) == CSP_WAITING) {
            long r = csp_sleep_on_word(&t->status, &t->sleeping, 0, until);
            if (r == -ETIMEDOUT || r == -EINTR)
                break;
        }
    }
    /* Once completed, wait until the GIL looks free. */
    if (atomic_load(&t->status) != CSP_WAITING)
        spin_while_equal(&gil_busy_hint, 1);
    restore_thread_gated(ts);
    atomic_store_explicit(&gil_busy_hint, 1, memory_order_relaxed);
}

/* Under the GIL nobody can be between a claim and a finish: giving up
 * always wins. */
static int
thread_give_up(void *self, int status)
{
    csp_task_cancel(self, status);
    return 1;
}

static uint64_t
thread_op_number(const void *self)
{
    return ((const TaskObject *)self)->wait_seq;
}

static const csp_wait_way thread_way = {
    .slice = 0.0,
    .sleep = thread_sleep,
    .give_up = thread_give_up,
    .claimed = NULL,
    .op_number = thread_op_number,
    .asked_to_stop = NULL,
};

/* Task.block for OS threads. */
static int
thread_block(TaskObject *t, double deadline)
{
    return csp_wait_watched(&thread_way, t, &t->status, deadline, t->is_main_thread);
}

static void
thread_wake(TaskObject *t)
{
    if (atomic_load(&t->sleeping))
        csp_futex_wake(&t->status);
}

/* ------------------------------------------------------------------ */
/* Core entry points                                                   */

int
csp_task_prepare(TaskObject *t, Py_ssize_t noffers)
{
    if (noffers > 1 && noffers > t->offers_cap) {
        csp_offer *o = PyMem_Realloc(t->offers == &t->inline_offer ? NULL : t->offers,
                                     (size_t)noffers * sizeof(csp_offer));
        if (!o) {
            PyErr_NoMemory();
            return -1;
        }
        t->offers = o;
        t->offers_cap = noffers;
    }
    else if (noffers <= 1 && t->offers_cap <= 1) {
        t->offers = &t->inline_offer;
        t->offers_cap = 1;
    }
    t->noffers = 0;
    t->chosen = -1;
    t->wait_seq++;
    Py_CLEAR(t->msg);
    atomic_store(&t->status, CSP_WAITING);
    return 0;
}

int
csp_task_wait(TaskObject *t, double deadline, int wait_kind)
{
    if (t->killed && atomic_load(&t->status) == CSP_WAITING) {
        csp_task_cancel(t, CSP_KILLED);
        return CSP_KILLED;
    }
    t->wait_kind = wait_kind;
    if (deadline < 0 && wait_kind != CSP_WAIT_IO) {
        t->inactive = 1;
        t->blocked_prev = NULL;
        t->blocked_next = blocked_head;
        if (blocked_head)
            blocked_head->blocked_prev = t;
        blocked_head = t;
        if (t->counted && --n_active == 0)
            break_deadlock();
    }
    int st = atomic_load(&t->status);
    if (st != CSP_WAITING)
        return st;  /* break_deadlock() completed it */
    return t->block(t, deadline);
}

void
csp_task_complete(TaskObject *t, int status, Py_ssize_t chosen, PyObject *msg)
{
    withdraw_offers(t);
    task_mark_active(t);
    t->chosen = chosen;
    Py_XSETREF(t->msg, msg);
    atomic_store(&t->status, status);
    t->wake(t);
}

/* ------------------------------------------------------------------ */
/* Task objects                                                        */

static TaskObject *
task_alloc(void)
{
    TaskObject *t = PyObject_GC_New(TaskObject, csp_st->TaskType);
    if (!t)
        return NULL;
    atomic_store(&t->status, CSP_DONE);
    atomic_store(&t->sleeping, 0);
    t->chosen = -1;
    t->msg = NULL;
    t->offers = &t->inline_offer;
    t->noffers = 0;
    t->offers_cap = 1;
    memset(&t->inline_offer, 0, sizeof(csp_offer));
    t->block = thread_block;
    t->wake = thread_wake;
    t->counted = 1;
    n_active++;
    t->inactive = 0;
    t->wait_kind = CSP_WAIT_CHANNEL;
    t->blocked_prev = t->blocked_next = NULL;
    t->killed = 0;
    t->is_main_thread = 0;
    t->greenlet = NULL;
    t->body_ended = 0;
    t->thread_ident = 0;
    t->run = NULL;
    t->join = NULL;
    t->sched = NULL;
    t->timer_slot = -1;
    t->wait_seq = 0;
    t->process_id = NULL;
    t->weakreflist = NULL;
    PyObject_GC_Track(t);
    return t;
}

/* Bind `t` to the calling OS thread; the thread-state dict keeps it alive
 * as long as the thread.  Returns 0/-1. */
static int
task_bind_thread(TaskObject *t)
{
    PyObject *d = PyThreadState_GetDict();
    if (!d) {
        PyErr_SetString(PyExc_RuntimeError, "pycsp: no thread state dict");
        return -1;
    }
    if (PyDict_SetItem(d, csp_st->tls_dict_key, (PyObject *)t) < 0)
        return -1;
    t->thread_ident = PyThread_get_thread_ident();
    t->is_main_thread = (t->thread_ident == csp_main_thread_ident);
    csp_tls_task = t;
    return 0;
}

/* In a forked child (atfork, module.c): the forking thread is its main thread. */
void
csp_task_after_fork_in_child(void)
{
    if (csp_tls_task && !csp_tls_task->greenlet)
        csp_tls_task->is_main_thread = 1;
}

TaskObject *
csp_current_task_new(void)
{
    TaskObject *t = task_alloc();
    if (!t)
        return NULL;
    if (task_bind_thread(t) < 0) {
        task_uncount(t);
        Py_DECREF(t);
        return NULL;
    }
    Py_DECREF(t);  /* the thread-state dict owns it */
    return t;
}

static PyObject *
task_new(PyTypeObject *Py_UNUSED(type), PyObject *args, PyObject *kwds)
{
    if ((kwds && PyDict_GET_SIZE(kwds)) || PyTuple_GET_SIZE(args)) {
        PyErr_SetString(PyExc_TypeError, "Task() takes no arguments");
        return NULL;
    }
    return (PyObject *)task_alloc();
}

static int
task_traverse(TaskObject *t, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(t));  /* a heap type: its instances keep it alive */
    Py_VISIT(t->msg);
    Py_VISIT(t->greenlet);
    Py_VISIT(t->run);
    Py_VISIT(t->join);
    Py_VISIT(t->process_id);
    return 0;
}

static int
task_clear(TaskObject *t)
{
    Py_CLEAR(t->msg);
    Py_CLEAR(t->greenlet);
    Py_CLEAR(t->run);
    Py_CLEAR(t->join);
    Py_CLEAR(t->process_id);
    return 0;
}

static void
task_dealloc(TaskObject *t)
{
    PyObject_GC_UnTrack(t);
    if (csp_tls_task == t)
        csp_tls_task = NULL;
    withdraw_offers(t);
    if (t->inactive)
        task_mark_active(t);
    task_uncount(t);
    if (t->weakreflist)
        PyObject_ClearWeakRefs((PyObject *)t);
    if (t->offers != &t->inline_offer)
        PyMem_Free(t->offers);
    task_clear(t);
    PyTypeObject *tp = Py_TYPE(t);
    tp->tp_free((PyObject *)t);
    Py_DECREF(tp);
}

static PyObject *
task_enter(TaskObject *t, PyObject *Py_UNUSED(ignored))
{
    if (task_bind_thread(t) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *join_done_impl(PyObject *join, PyObject *ignored);

/* Task.finish(join): the process body has ended.  Signal `join` (or None)
 * first, then stop counting this task, so the count never touches zero while
 * the waiter is about to be woken. */
int
csp_task_finish(TaskObject *t, PyObject *join)
{
    if (join != Py_None) {
        if (!Py_IS_TYPE(join, csp_st->JoinType)) {
            PyErr_SetString(PyExc_TypeError, "Task.finish() takes a Join or None");
            return -1;
        }
        PyObject *r = join_done_impl(join, NULL);
        if (!r)
            return -1;
        Py_DECREF(r);
    }
    task_uncount(t);
    return 0;
}

static PyObject *
task_finish(TaskObject *t, PyObject *join)
{
    if (csp_task_finish(t, join) < 0)
        return NULL;
    Py_RETURN_NONE;
}

/* Task.kill(): make the process stop at its current or next channel operation. */
static PyObject *
task_kill(TaskObject *t, PyObject *Py_UNUSED(ignored))
{
    t->killed = 1;
    if (atomic_load(&t->status) == CSP_WAITING)
        csp_task_complete(t, CSP_KILLED, -1, NULL);
    Py_RETURN_NONE;
}

static PyObject *
task_abandon(TaskObject *t, PyObject *Py_UNUSED(ignored))
{
    task_uncount(t);
    Py_RETURN_NONE;
}

static PyMethodDef task_methods[] = {
    {"enter", (PyCFunction)task_enter, METH_NOARGS, "Bind this task to the calling OS thread."},
    {"finish", (PyCFunction)task_finish, METH_O, "finish(join): the process body has ended."},
    {"kill", (PyCFunction)task_kill, METH_NOARGS, "Stop the process at its next channel operation."},
    {"abandon", (PyCFunction)task_abandon, METH_NOARGS, "The task's thread never started."},
    {NULL}
};

static PyObject *
task_get_process_id(TaskObject *t, void *Py_UNUSED(c))
{
    if (!t->process_id)
        Py_RETURN_NONE;
    return Py_NewRef(t->process_id);
}

static int
task_set_process_id(TaskObject *t, PyObject *v, void *Py_UNUSED(c))
{
    Py_XINCREF(v);
    Py_XSETREF(t->process_id, v);
    return 0;
}

static PyObject *
task_get_killed(TaskObject *t, void *Py_UNUSED(c))
{
    return PyBool_FromLong(t->killed);
}

static PyObject *
task_get_thread_ident(TaskObject *t, void *Py_UNUSED(c))
{
    return PyLong_FromUnsignedLong(t->thread_ident);
}

static PyObject *
task_get_greenlet(TaskObject *t, void *Py_UNUSED(c))
{
    return Py_NewRef(t->greenlet ? t->greenlet : Py_None);
}

static PyObject *
task_get_is_main_thread(TaskObject *t, void *Py_UNUSED(c))
{
    return PyBool_FromLong(t->is_main_thread);
}

static PyObject *
task_get_live(TaskObject *t, void *Py_UNUSED(c))
{
    return PyBool_FromLong(t->counted && !t->body_ended);
}

static PyObject *
task_get_process(TaskObject *t, void *Py_UNUSED(c))
{
    return Py_NewRef(t->run ? t->run : Py_None);
}

static PyGetSetDef task_getset[] = {
    {"process", (getter)task_get_process, NULL,
     "greenlets backend: the Process it will run, until its greenlet starts; else None", NULL},
    {"thread_ident", (getter)task_get_thread_ident, NULL,
     "the OS thread it was last bound to, or 0", NULL},
    {"greenlet", (getter)task_get_greenlet, NULL, "greenlets backend: its greenlet, or None", NULL},
    {"is_main_thread", (getter)task_get_is_main_thread, NULL, "it is the main thread's", NULL},
    {"live", (getter)task_get_live, NULL, "a CSP process that has not ended", NULL},
    {"process_id", (getter)task_get_process_id, (setter)task_set_process_id, "CSP process id", NULL},
    {"killed", (getter)task_get_killed, NULL, "kill() was called", NULL},
    {NULL}
};

static PyMemberDef task_members[] = {
    {"__weaklistoffset__", T_PYSSIZET, offsetof(TaskObject, weakreflist), READONLY, NULL},
    {NULL}
};

static PyType_Slot task_slots[] = {
    {Py_tp_doc, "A CSP process as the C core sees it (what blocks and is woken)."},
    {Py_tp_new, task_new},
    {Py_tp_dealloc, task_dealloc},
    {Py_tp_traverse, task_traverse},
    {Py_tp_clear, task_clear},
    {Py_tp_methods, task_methods},
    {Py_tp_getset, task_getset},
    {Py_tp_members, task_members},
    {0, NULL}
};

static PyType_Spec task_spec = {
    .name = "csp_ext.Task",
    .basicsize = sizeof(TaskObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_IMMUTABLETYPE,
    .slots = task_slots,
};

/* ------------------------------------------------------------------ */
/* Join: a countdown that one task waits on (Parallel, shutdown)       */

typedef struct {
    PyObject_HEAD
    Py_ssize_t remaining;
    TaskObject *waiter;   /* borrowed while it waits */
} JoinObject;

static PyObject *
join_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    Py_ssize_t n = 0;
    static char *kwlist[] = {"count", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|n:Join", kwlist, &n))
        return NULL;
    if (n < 0) {
        PyErr_SetString(PyExc_ValueError, "Join count must be >= 0");
        return NULL;
    }
    JoinObject *j = (JoinObject *)type->tp_alloc(type, 0);
    if (!j)
        return NULL;
    j->remaining = n;
    j->waiter = NULL;
    return (PyObject *)j;
}

static PyObject *
join_done_impl(PyObject *self, PyObject *Py_UNUSED(ignored))
{
    JoinObject *j = (JoinObject *)self;
    if (j->remaining <= 0) {
        PyErr_SetString(PyExc_RuntimeError, "Join.done() called more often than its count");
        return NULL;
    }
    if (--j->remaining == 0 && j->waiter) {
        TaskObject *w = j->waiter;
        j->waiter = NULL;
        if (atomic_load(&w->status) == CSP_WAITING)
            csp_task_complete(w, CSP_DONE, -1, NULL);
    }
    Py_RETURN_NONE;
}

static PyObject *
join_add(JoinObject *j, PyObject *arg)
{
    Py_ssize_t n = PyLong_AsSsize_t(arg);
    if (n == -1 && PyErr_Occurred())
        return NULL;
    if (n < 0) {
        PyErr_SetString(PyExc_ValueError, "Join.add() takes a count >= 0");
        return NULL;
    }
    j->remaining += n;
    Py_RETURN_NONE;
}

/* Join.wait(timeout=None) -> bool: block until the count is zero (True) or
 * `timeout` seconds passed (False).  Raises DeadlockError when nothing can
 * finish it, ChannelPoisonException when this process is killed, or the
 * exception of an interrupting signal. */
static PyObject *
join_wait(JoinObject *j, PyObject *args, PyObject *kwds)
{
    PyObject *timeout = Py_None;
    static char *kwlist[] = {"timeout", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|O:wait", kwlist, &timeout))
        return NULL;
    double deadline;
    if (csp_parse_deadline(timeout, "Join.wait()", &deadline) < 0)
        return NULL;
    while (j->remaining > 0) {
        if (j->waiter) {
            PyErr_SetString(PyExc_RuntimeError, "Join.wait() is already waited on");
            return NULL;
        }
        TaskObject *t = csp_current_task();
        if (!t || csp_task_prepare(t, 0) < 0)
            return NULL;
        j->waiter = t;
        int st = csp_task_wait(t, deadline, CSP_WAIT_JOIN);
        if (j->waiter == t)
            j->waiter = NULL;
        if (st < 0)
            return NULL;
        if (st == CSP_RETRY)
            continue;
        if (st == CSP_TIMEOUT)
            Py_RETURN_FALSE;
        if (st == CSP_DEADLOCK) {
            PyErr_SetString(csp_st->DeadlockError,
                            "deadlock: every CSP process is blocked on a channel");
            return NULL;
        }
        if (st == CSP_KILLED) {
            PyErr_SetString(csp_st->PoisonError, "process stopped while waiting for its Parallel");
            return NULL;
        }
    }
    Py_RETURN_TRUE;
}

static PyObject *
join_get_remaining(JoinObject *j, void *Py_UNUSED(c))
{
    return PyLong_FromSsize_t(j->remaining);
}

static PyMethodDef join_methods[] = {
    {"done", join_done_impl, METH_NOARGS, "One of the awaited processes ended."},
    {"add", (PyCFunction)join_add, METH_O, "Await n more processes."},
    {"wait", (PyCFunction)(void (*)(void))join_wait, METH_VARARGS | METH_KEYWORDS,
     "wait(timeout=None) -> bool: block until every awaited process ended."},
    {NULL}
};

static PyGetSetDef join_getset[] = {
    {"remaining", (getter)join_get_remaining, NULL, "processes not yet ended", NULL},
    {NULL}
};

static PyType_Slot join_slots[] = {
    {Py_tp_doc, "Join(count): countdown of running processes that one task waits on."},
    {Py_tp_new, join_new},
    {Py_tp_methods, join_methods},
    {Py_tp_getset, join_getset},
    {0, NULL}
};

static PyType_Spec join_spec = {
    .name = "csp_ext.Join",
    .basicsize = sizeof(JoinObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE,
    .slots = join_slots,
};

/* ------------------------------------------------------------------ */

static PyObject *
mod_current_task(PyObject *Py_UNUSED(m), PyObject *Py_UNUSED(ignored))
{
    TaskObject *t = csp_current_task();
    return Py_XNewRef((PyObject *)t);
}

static PyObject *
mod_set_spin(PyObject *Py_UNUSED(m), PyObject *args)
{
    int iterations;
    double budget;
    if (!PyArg_ParseTuple(args, "id:set_spin", &iterations, &budget))
        return NULL;
    if (iterations < 0 || !(budget >= 0.0) || budget > 1.0) {
        PyErr_SetString(PyExc_ValueError,
                        "set_spin(pause_iterations >= 0, budget_seconds in [0, 1])");
        return NULL;
    }
    spin_pause_iterations = iterations;
    spin_budget = budget;
    Py_RETURN_NONE;
}

static PyObject *
mod_stats(PyObject *Py_UNUSED(m), PyObject *Py_UNUSED(ignored))
{
    Py_ssize_t blocked = 0;
    for (TaskObject *t = blocked_head; t; t = t->blocked_next)
        blocked++;
    return Py_BuildValue("{s:n,s:n}", "active", n_active, "blocked", blocked);
}

static PyMethodDef task_module_methods[] = {
    {"current_task", mod_current_task, METH_NOARGS, "The Task of the running CSP process."},
    {"set_spin", mod_set_spin, METH_VARARGS,
     "set_spin(pause_iterations, budget_seconds): tune how long a blocked thread polls before sleeping."},
    {"stats", mod_stats, METH_NOARGS, "Counts of active and blocked tasks (for tests)."},
    {NULL}
};

int
csp_task_init_module(PyObject *m)
{
    csp_st->tls_dict_key = PyUnicode_InternFromString("__pycsp_task__");
    if (!csp_st->tls_dict_key)
        return -1;
    if (!(csp_st->TaskType = csp_add_type(m, &task_spec, "Task")) ||
        !(csp_st->JoinType = csp_add_type(m, &join_spec, "Join")))
        return -1;
    /* The main thread counts as a running CSP process from the start: it may
     * be about to write to a channel that other processes block on. */
    if (PyThread_get_thread_ident() == csp_main_thread_ident && !csp_current_task())
        return -1;
    return PyModule_AddFunctions(m, task_module_methods);
}

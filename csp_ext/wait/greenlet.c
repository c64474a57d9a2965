/* greensched.c - the greenlets backend's scheduler: run queue, timers, @io
 * completions, and greenlet switching through greenlet's C API.
 *
 * The only file that includes greenlet.h (its API table is static); the
 * capsule is imported on first use, so csp_ext imports without greenlet.
 *
 * There is no scheduler greenlet.  A task that blocks pops the next runnable
 * task and switches straight to it; a writer that completes a blocked reader
 * puts the reader on the run queue and goes on.  Process greenlets have the
 * thread's root greenlet as parent: when one ends, the root's wait loop picks
 * the next runnable task.  When nothing is runnable, the blocking task itself
 * sleeps (GIL released) until a timer is due, an @io call completes, or
 * another OS thread wakes one of this scheduler's tasks.
 */
#include "csp.h"

#ifdef CSP_HAVE_GREENLET
#include <greenlet.h>

typedef struct {
    double deadline;
    TaskObject *task;           /* strong */
} green_timer;

/* A FIFO ring of strong references to tasks. */
typedef struct {
    TaskObject **items;
    Py_ssize_t head, count, cap;
} task_queue;

typedef struct {
    task_queue runq;            /* started tasks that can go on */
    TaskObject *spill_head;     /* runnable tasks that did not fit in runq (the ring could */
    TaskObject *spill_tail;     /* not grow): linked through the task, no allocation */
    task_queue startq;          /* processes not started yet: run only when runq is
                                 * empty, so that work in progress finishes before
                                 * new work starts (memory stays bounded) */
    green_timer *timers;        /* binary min-heap on deadline */
    Py_ssize_t ntimers, timers_cap;
    _Atomic int wakeup;         /* futex word: bumped when another thread makes a task runnable */
    _Atomic int idle;           /* 1 while this scheduler sleeps */
    PyObject *root;             /* the root greenlet of the owning thread (strong) */
    PyObject *starter;          /* greenlet that starts new process greenlets (strong) */
    TaskObject *to_start;       /* handed to the starter (strong) */
    TaskObject *root_task;      /* borrowed: the thread-state dict owns it */
    unsigned long thread_ident;
    int is_main_thread;
    PyObject *signal_exc[3];    /* a signal's exception on its way to the root task */
} green_sched;

/* Per thread: its scheduler.  initial-exec: no __tls_get_addr call on every
 * switch (two pointers of static TLS). */
static _Thread_local green_sched *tls_sched __attribute__((tls_model("initial-exec")));
/* Process-wide, set once with the GIL held: greenlet's C API has been imported
 * (greenlet.h keeps its table in the static _PyGreenlet_API of this file). */
static int greenlet_imported;

/* ------------------------------------------------------------------ */
/* Run queue                                                           */

/* Double the ring (out of line: rare). */
static int
queue_grow(task_queue *q)
{
    Py_ssize_t cap = q->cap ? q->cap * 2 : 64;
    TaskObject **items = PyMem_Malloc((size_t)cap * sizeof(TaskObject *));
    if (!items)
        return -1;
    for (Py_ssize_t i = 0; i < q->count; i++)
        items[i] = q->items[(q->head + i) & (q->cap - 1)];
    PyMem_Free(q->items);
    q->items = items;
    q->head = 0;
    q->cap = cap;
    return 0;
}

static inline int
queue_push(task_queue *q, TaskObject *t)
{
    if (q->count == q->cap && queue_grow(q) < 0)
        return -1;
    q->items[(q->head + q->count) & (q->cap - 1)] = (TaskObject *)Py_NewRef(t);
    q->count++;
    return 0;
}

/* New reference or NULL when empty. */
static TaskObject *
queue_pop(task_queue *q)
{
    if (q->count == 0)
        return NULL;
    TaskObject *t = q->items[q->head];
    q->head = (q->head + 1) & (q->cap - 1);
    q->count--;
    return t;
}

/* Make `t` runnable.  Cannot fail: a task that a peer has completed must
 * run again, so when the ring cannot grow the task goes on the spill list,
 * linked through the task itself.  A task already there is not linked
 * twice: that entry runs it (entries are checked with is_stale when popped). */
static inline void
runq_push(green_sched *s, TaskObject *t)
{
    if (!csp_fail_here(CSP_FAIL_RUNQ) && queue_push(&s->runq, t) == 0)
        return;
    if (t->spilled)
        return;
    t->spilled = 1;
    t->spill_next = NULL;
    Py_INCREF(t);
    if (s->spill_tail)
        s->spill_tail->spill_next = t;
    else
        s->spill_head = t;
    s->spill_tail = t;
}

/* New reference to the next task to run, or NULL. */
static TaskObject *
runq_pop(green_sched *s)
{
    TaskObject *t = queue_pop(&s->runq);
    if (t)
        return t;
    t = s->spill_head;
    if (t) {
        s->spill_head = t->spill_next;
        if (!s->spill_head)
            s->spill_tail = NULL;
        t->spill_next = NULL;
        t->spilled = 0;
        return t;
    }
    return queue_pop(&s->startq);
}

/* ------------------------------------------------------------------ */
/* Timers: a min-heap; each task has at most one timer (timer_slot)     */

static void
timer_place(green_sched *s, Py_ssize_t i, green_timer tm)
{
    s->timers[i] = tm;
    tm.task->timer_slot = i;
}

static void
timer_sift(green_sched *s, Py_ssize_t i)
{
    green_timer tm = s->timers[i];
    while (i > 0) {
        Py_ssize_t parent = (i - 1) / 2;
        if (s->timers[parent].deadline <= tm.deadline)
            break;
        timer_place(s, i, s->timers[parent]);
        i = parent;
    }
    for (;;) {
        Py_ssize_t child = 2 * i + 1;
        if (child >= s->ntimers)
            break;
        if (child + 1 < s->ntimers && s->timers[child + 1].deadline < s->timers[child].deadline)
            child++;
        if (s->timers[child].deadline >= tm.deadline)
            break;
        timer_place(s, i, s->timers[child]);
        i = child;
    }
    timer_place(s, i, tm);
}

static int
timer_add(green_sched *s, TaskObject *t, double deadline)
{
    if (s->ntimers == s->timers_cap) {
        Py_ssize_t cap = s->timers_cap ? s->timers_cap * 2 : 16;
        green_timer *h = PyMem_Realloc(s->timers, (size_t)cap * sizeof(green_timer));
        if (!h) {
            PyErr_NoMemory();
            return -1;
        }
        s->timers = h;
        s->timers_cap = cap;
    }
    green_timer tm = {deadline, (TaskObject *)Py_NewRef(t)};
    s->timers[s->ntimers++] = tm;
    t->timer_slot = s->ntimers - 1;
    timer_sift(s, s->ntimers - 1);
    return 0;
}

static void
timer_remove(green_sched *s, TaskObject *t)
{
    Py_ssize_t i = t->timer_slot;
    if (i < 0)
        return;
    t->timer_slot = -1;
    s->ntimers--;
    if (i != s->ntimers) {
        s->timers[i] = s->timers[s->ntimers];
        s->timers[i].task->timer_slot = i;
        timer_sift(s, i);
    }
    Py_DECREF(t);
}

/* Time out every task whose deadline has passed; they become runnable. */
static void
timers_expire(green_sched *s)
{
    double now = csp_monotonic();
    while (s->ntimers > 0 && s->timers[0].deadline <= now) {
        TaskObject *t = (TaskObject *)Py_NewRef(s->timers[0].task);
        timer_remove(s, t);
        if (atomic_load(&t->status) == CSP_WAITING) {
            csp_task_cancel(t, CSP_TIMEOUT);
            runq_push(s, t);
        }
        Py_DECREF(t);
    }
}

/* ------------------------------------------------------------------ */
/* Block and wake                                                      */

static void
green_wake(TaskObject *t)
{
    green_sched *s = t->sched;
    /* Queue first: the timer may hold the last reference. */
    runq_push(s, t);
    if (t->timer_slot >= 0)
        timer_remove(s, t);
    if (tls_sched != s) {  /* woken from another OS thread */
        atomic_fetch_add(&s->wakeup, 1);
        if (atomic_load(&s->idle))
            csp_futex_wake(&s->wakeup);
    }
}

/* A signal handler raised (Ctrl-C) while task `t` waited for the scheduler.
 * As with threads, the main program gets it: the root task is interrupted,
 * and `t` goes on waiting.  Returns -1 if `t` is the root. */
static int
forward_signal(green_sched *s, TaskObject *t)
{
    TaskObject *root = s->root_task;
    if (t == root || atomic_load(&root->status) != CSP_WAITING)
        return -1;
    if (s->signal_exc[0]) {
        PyErr_Clear();  /* one interrupt is already on its way */
        return 0;
    }
    PyErr_Fetch(&s->signal_exc[0], &s->signal_exc[1], &s->signal_exc[2]);
    timer_remove(s, root);
    csp_task_cancel(root, CSP_CANCELLED);
    runq_push(s, root);
    return 0;
}

/* Nothing is runnable: sleep until something may be.  Returns 1 when the
 * main thread should run signal handlers (a signal came). */
static int
green_idle(green_sched *s)
{
    timers_expire(s);
    if (s->runq.count || s->spill_head || s->startq.count)
        return 0;
    int seen = atomic_load(&s->wakeup);
    double until = s->ntimers ? s->timers[0].deadline : -1.0;
    csp_sigwatch sw;
    if (s->is_main_thread) {
        double slice = csp_monotonic() + CSP_SIGNAL_SLICE;
        if (until < 0 || slice < until)
            until = slice;
        csp_sigwatch_begin(&sw);
    }
    PyThreadState *ts = PyEval_SaveThread();
    atomic_store(&s->idle, 1);
    csp_futex_wait(&s->wakeup, seen, until);
    atomic_store(&s->idle, 0);
    PyEval_RestoreThread(ts);
    timers_expire(s);
    if (!s->is_main_thread)
        return 0;
    /* Only when a signal came: withdrawing moves offers to the queues' backs. */
    int due = csp_sigwatch_due(&sw);
    csp_sigwatch_end(&sw);
    return due;
}

/* A runnable-queue entry is stale when its task went back to waiting (it
 * was resumed another way, e.g. as the parent of a greenlet that ended) or
 * its greenlet has ended. */
static int
is_stale(TaskObject *next)
{
    if (atomic_load(&next->status) == CSP_WAITING)
        return 1;
    return next->greenlet ? next->body_ended : !next->run;
}

/* A process greenlet that has ended is dropped at once: its task may live on
 * (held by its Process) but needs no greenlet any more.  (A flag, not
 * PyGreenlet_ACTIVE: this runs after every switch.) */
static void
release_if_ended(TaskObject *t)
{
    if (t->body_ended)
        Py_CLEAR(t->greenlet);
}

/* The rare ends of green_block are out of line: while a process is
 * suspended its C stack is copied, green_block's frame with it, at every
 * switch; a small frame needs few saved registers. */

/* Nothing is runnable: sleep (green_idle).  0 to go on waiting; CSP_RETRY
 * when a signal came and t gave up its wait for the handlers; -1 when a
 * handler raised in the root task. */
static __attribute__((noinline)) int
block_idle(green_sched *s, TaskObject *t)
{
    if (!green_idle(s) || atomic_load(&t->status) != CSP_WAITING)
        return 0;
    /* Handlers run with none of t's offers linked: they may use channels,
     * and one that raises must not lose a message. */
    timer_remove(s, t);
    csp_task_cancel(t, CSP_RETRY);
    if (PyErr_CheckSignals() < 0 && forward_signal(s, t) < 0)
        return -1;
    return CSP_RETRY;
}

/* The wait ends with an exception (thrown into this greenlet, e.g.
 * GreenletExit, or no memory for the timer): -1. */
static __attribute__((noinline)) int
block_failed(green_sched *s, TaskObject *t)
{
    timer_remove(s, t);
    if (atomic_load(&t->status) == CSP_WAITING)
        csp_task_cancel(t, CSP_CANCELLED);
    if (t == s->root_task && s->signal_exc[0]) {
        /* The root ends its wait with another error: drop the interrupt. */
        Py_CLEAR(s->signal_exc[0]);
        Py_CLEAR(s->signal_exc[1]);
        Py_CLEAR(s->signal_exc[2]);
    }
    return -1;
}

/* The root task was completed by forward_signal: raise the signal's exception. */
static __attribute__((noinline)) int
root_interrupted(green_sched *s)
{
    PyErr_Restore(s->signal_exc[0], s->signal_exc[1], s->signal_exc[2]);
    s->signal_exc[0] = s->signal_exc[1] = s->signal_exc[2] = NULL;
    return -1;
}

/* Task.block for greenlets: run other tasks until `t` is completed. */
static int
green_block(TaskObject *t, double deadline)
{
    green_sched *s = t->sched;
    int result;
    Py_INCREF(t);  /* a blocked task must not be freed under its greenlet */
    if (deadline >= 0 && timer_add(s, t, deadline) < 0) {
        result = block_failed(s, t);
        goto out;
    }
    while (atomic_load(&t->status) == CSP_WAITING) {
        TaskObject *next = runq_pop(s);
        if (!next) {
            if ((result = block_idle(s, t)) != 0)
                goto out;
            continue;
        }
        if (next == t || is_stale(next)) {
            Py_DECREF(next);
            continue;
        }
        PyObject *r;
        if (next->greenlet) {
            csp_set_current_task(next);
            csp_green_switching = 1;
            r = PyGreenlet_Switch((PyGreenlet *)next->greenlet, NULL, NULL);
            csp_green_switching = 0;
            release_if_ended(next);
            Py_DECREF(next);
        }
        else {
            s->to_start = next;  /* the starter takes the reference */
            csp_green_switching = 1;
            r = PyGreenlet_Switch((PyGreenlet *)s->starter, NULL, NULL);
            csp_green_switching = 0;
        }
        csp_set_current_task(t);
        if (!r) {
            result = block_failed(s, t);
            goto out;
        }
        if (Py_IS_TYPE(r, csp_st->TaskType))
            release_if_ended((TaskObject *)r);  /* a process ended: the root hears of it */
        Py_DECREF(r);
    }
    if (t == s->root_task && s->signal_exc[0])
        result = root_interrupted(s);
    else
        result = atomic_load(&t->status);
out:
    Py_DECREF(t);
    return result;
}

/* The body of every process greenlet is process_main: it calls the
 * process's function, proc.fn(*proc.args, **proc.kwargs), then finishes its
 * task.  In C so that the function's frame is the first on the greenlet's
 * stack: a suspended greenlet has its C stack copied at every switch, and
 * every call level beneath the function would add to it.  For the same
 * reason, what the call needs is kept on the heap (process_call) and all but
 * the call itself is out of line: while the function runs, process_main's
 * frame holds two pointers. */

typedef struct {
    PyObject *proc, *join;           /* owned: the task's, taken at the start */
    PyObject *fn, *args, *kwdict;    /* owned once got; NULL before, or none */
} process_call;

/* Get proc.fn, proc.args and the keyword arguments into `call`: 1 to make
 * the call; 0 when getting them raised (proc._failed hears of it, as of an
 * exception of the call); -1 when proc.fn could not be got. */
static __attribute__((noinline)) int
process_call_prepare(process_call *call)
{
    PyObject *proc = call->proc;
    if (!(call->fn = PyObject_GetAttr(proc, csp_st->str_fn)))
        return -1;
    csp_green_datastack_begin(call->fn);
    if (!(call->args = PyObject_GetAttr(proc, csp_st->str_args)))
        return 0;
    PyObject *kwargs = PyObject_GetAttr(proc, csp_st->str_kwargs);
    if (!kwargs)
        return 0;
    /* kwargs is a dict, or a read-only mapping (Process's shared empty one) */
    if (!PyTuple_Check(call->args))
        PyErr_SetString(PyExc_TypeError, "Process.args must be a tuple");
    else if (PyDict_Check(kwargs))
        call->kwdict = PyDict_GET_SIZE(kwargs) ? Py_NewRef(kwargs) : NULL;
    else if (PyObject_Length(kwargs) > 0 && (call->kwdict = PyDict_New()) &&
             PyDict_Update(call->kwdict, kwargs) < 0)
        Py_CLEAR(call->kwdict);  /* (a dict made for the call lives as long as it) */
    Py_DECREF(kwargs);
    if (PyErr_Occurred())
        return 0;
    if (call->kwdict && !PyDict_GET_SIZE(call->kwdict))
        Py_CLEAR(call->kwdict);
    return 1;
}

/* The process function raised: proc._failed(exception), its traceback
 * attached; 0/-1. */
static int
process_function_failed(PyObject *proc)
{
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    PyErr_NormalizeException(&type, &value, &tb);
    if (tb)
        PyException_SetTraceback(value, tb);
    Py_XDECREF(type);
    Py_XDECREF(tb);
    PyObject *r = PyObject_CallMethodOneArg(proc, csp_st->str_failed, value);
    Py_DECREF(value);
    if (!r)
        return -1;
    Py_DECREF(r);
    return 0;
}

/* A KeyboardInterrupt ends the body of process t: Ctrl-C's handler ran in
 * t's Python, as it runs in whichever greenlet executes bytecode when the
 * signal comes.  As with threads, where it always reaches the main thread,
 * the main program gets it too: the root task's wait is interrupted (as by
 * forward_signal), so that its Parallel stops the other processes. */
static void
forward_interrupt(TaskObject *t)
{
    green_sched *s = t->sched;
    TaskObject *root = s->root_task;
    if (!PyErr_ExceptionMatches(PyExc_KeyboardInterrupt) || !root || t == root ||
        s->signal_exc[0] || atomic_load(&root->status) != CSP_WAITING)
        return;
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    s->signal_exc[0] = Py_XNewRef(type);
    s->signal_exc[1] = Py_XNewRef(value);
    s->signal_exc[2] = Py_XNewRef(tb);
    PyErr_Restore(type, value, tb);  /* the process's own outcome, as before */
    timer_remove(s, root);
    csp_task_cancel(root, CSP_CANCELLED);
    runq_push(s, root);
}

/* The body is over: `prepared` is process_call_prepare's, `result` the
 * call's (a new reference, or NULL).  Stores the result or hands the
 * exception to proc._failed, finishes the task (the body's exception, if
 * any, wins over one from the finish), frees `call`.  Returns the task (new
 * reference; NULL with an exception), for the root. */
static __attribute__((noinline)) PyObject *
process_main_end(TaskObject *t, process_call *call, int prepared, PyObject *result)
{
    PyObject *proc = call->proc, *join = call->join;
    Py_XDECREF(call->fn);
    Py_XDECREF(call->args);
    Py_XDECREF(call->kwdict);
    PyMem_Free(call);
    int rc;
    if (prepared < 0)
        rc = -1;
    else if (result) {
        rc = PyObject_SetAttr(proc, csp_st->str_return_value, result);
        Py_DECREF(result);
    }
    else {
        forward_interrupt(t);
        rc = process_function_failed(proc);
    }
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    if (csp_task_finish(t, join) < 0)
        rc = -1;
    if (type) {
        PyErr_Clear();  /* the first error wins */
        PyErr_Restore(type, value, tb);
    }
    Py_DECREF(proc);
    Py_DECREF(join);
    /* Last, with nothing left that could switch away: the greenlet ends now. */
    t->body_ended = 1;
    if (rc < 0)
        Py_CLEAR(t);
    return (PyObject *)t;
}

/* The task has no process to run (a bug), or no memory for process_call:
 * NULL with an exception. */
static __attribute__((noinline)) PyObject *
process_main_fails(TaskObject *t, PyObject *proc, PyObject *join)
{
    if (proc && join) {
        /* No memory for process_call: the process ends with MemoryError. */
        if (csp_task_finish(t, join) < 0)
            PyErr_Clear();
        PyErr_NoMemory();
    }
    else
        PyErr_SetString(PyExc_SystemError, "pycsp: process greenlet without a process");
    Py_XDECREF(proc);
    Py_XDECREF(join);
    t->body_ended = 1;
    Py_DECREF(t);
    return NULL;
}

static PyObject *
process_main(PyObject *Py_UNUSED(self), PyObject *Py_UNUSED(ignored))
{
    csp_green_switching = 0;  /* a new greenlet starts here, not in a switch's return */
    TaskObject *t = csp_current_task();  /* the starter made it current */
    if (!t)
        return NULL;
    Py_INCREF(t);
    PyObject *proc = t->run, *join = t->join;  /* owned from here */
    t->run = t->join = NULL;
    process_call *call = proc && join ? PyMem_Calloc(1, sizeof(process_call)) : NULL;
    if (!call)
        return process_main_fails(t, proc, join);
    call->proc = proc;
    call->join = join;
    int prepared = process_call_prepare(call);
    PyObject *result = prepared > 0 ? PyObject_Call(call->fn, call->args, call->kwdict) : NULL;
    return process_main_end(t, call, prepared, result);
}

static PyMethodDef process_main_def = {"pycsp_process", process_main, METH_NOARGS, NULL};

/* The starter greenlet's body.  A greenlet starts at the Python recursion
 * depth of whoever first switches to it; started from the blocking task's
 * stack, 10,000 processes each starting the next would add up past the
 * recursion limit.  The starter sits at one fixed, shallow depth. */
static PyObject *
starter_main(PyObject *Py_UNUSED(self), PyObject *Py_UNUSED(args))
{
    green_sched *s = tls_sched;
    csp_green_switching = 0;  /* a new greenlet starts here, not in a switch's return */
    for (;;) {
        TaskObject *next = s->to_start;
        s->to_start = NULL;
        if (!next)
            Py_RETURN_NONE;
        /* Made only now: a process waiting to start costs no greenlet. */
        PyGreenlet *g = PyGreenlet_New(csp_st->process_main_fn, (PyGreenlet *)s->root);
        if (!g) {
            Py_DECREF(next);
            return NULL;
        }
        next->greenlet = (PyObject *)g;
        csp_set_current_task(next);
        csp_green_switching = 1;
        PyObject *r = PyGreenlet_Switch(g, NULL, NULL);
        csp_green_switching = 0;
        release_if_ended(next);
        Py_DECREF(next);
        if (!r)
            return NULL;
        Py_DECREF(r);
    }
}

static PyMethodDef starter_def = {"pycsp_starter", starter_main, METH_VARARGS, NULL};

/* ------------------------------------------------------------------ */
/* Scheduler creation and the Python-facing functions                  */

/* The greenlets backend starts: greenlet is imported here, not with csp_ext
 * (which works without it), and so are the objects only the scheduler uses. */
static int
green_import(void)
{
    PyGreenlet_Import();
    if (!_PyGreenlet_API)
        return -1;
    csp_state *st = csp_st;
    if (!st->process_main_fn) {
        if (!(st->str_fn = PyUnicode_InternFromString("fn")) ||
            !(st->str_args = PyUnicode_InternFromString("args")) ||
            !(st->str_kwargs = PyUnicode_InternFromString("kwargs")) ||
            !(st->str_return_value = PyUnicode_InternFromString("return_value")) ||
            !(st->str_failed = PyUnicode_InternFromString("_failed")) ||
            !(st->process_main_fn = PyCFunction_New(&process_main_def, NULL)))
            return -1;
    }
    csp_green_datastack_install();
    csp_green_stackcopy_install();
    greenlet_imported = 1;
    return 0;
}

/* Borrowed: this thread's scheduler, made on first use.  Converts the
 * thread's own task into the root task of the scheduler. */
static green_sched *
sched_get(void)
{
    if (tls_sched)
        return tls_sched;
    if (!greenlet_imported && green_import() < 0)
        return NULL;
    TaskObject *root_task = csp_current_task();
    if (!root_task)
        return NULL;
    green_sched *s = PyMem_Calloc(1, sizeof(green_sched));
    if (!s) {
        PyErr_NoMemory();
        return NULL;
    }
    s->root = (PyObject *)PyGreenlet_GetCurrent();
    if (!s->root) {
        PyMem_Free(s);
        return NULL;
    }
    PyObject *run = PyCFunction_New(&starter_def, NULL);
    if (!run) {
        Py_DECREF(s->root);
        PyMem_Free(s);
        return NULL;
    }
    s->starter = (PyObject *)PyGreenlet_New(run, (PyGreenlet *)s->root);
    Py_DECREF(run);
    if (!s->starter) {
        Py_DECREF(s->root);
        PyMem_Free(s);
        return NULL;
    }
    s->root_task = root_task;
    s->thread_ident = PyThread_get_thread_ident();
    s->is_main_thread = (s->thread_ident == csp_main_thread_ident);
    root_task->sched = s;
    root_task->spilled = 0;
    root_task->spill_next = NULL;
    root_task->block = green_block;
    root_task->wake = green_wake;
    Py_XSETREF(root_task->greenlet, Py_NewRef(s->root));
    tls_sched = s;
    return s;
}

/* green_spawn(task, proc, join): queue `proc` (a pycsp Process) to run as a
 * greenlet with `task`; at its end it calls task.finish(join). */
static PyObject *
green_spawn(PyObject *Py_UNUSED(m), PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3 || !PyObject_TypeCheck(args[0], csp_st->TaskType)) {
        PyErr_SetString(PyExc_TypeError, "green_spawn(task, proc, join)");
        return NULL;
    }
    TaskObject *t = (TaskObject *)args[0];
    green_sched *s = sched_get();
    if (!s)
        return NULL;
    if (t->greenlet || t->run || t->body_ended) {
        PyErr_SetString(PyExc_RuntimeError, "task already has (or had) a greenlet");
        return NULL;
    }
    t->run = Py_NewRef(args[1]);
    t->join = Py_NewRef(args[2]);
    t->sched = s;
    t->block = green_block;
    t->wake = green_wake;
    t->spilled = 0;
    t->spill_next = NULL;
    if (queue_push(&s->startq, t) < 0) {
        Py_CLEAR(t->run);
        Py_CLEAR(t->join);
        return PyErr_NoMemory();
    }
    Py_RETURN_NONE;
}

/* green_io_begin() -> (task, ticket): prepare the calling task to wait for an
 * @io call; green_io_done(task, ticket) from the worker thread ends the wait.
 * The ticket makes a late completion (after Ctrl-C) harmless. */
static PyObject *
green_io_begin(PyObject *Py_UNUSED(m), PyObject *Py_UNUSED(ignored))
{
    if (!sched_get())
        return NULL;
    TaskObject *t = csp_current_task();
    if (!t || csp_task_prepare(t, 0) < 0)
        return NULL;
    return Py_BuildValue("(OK)", (PyObject *)t, (unsigned long long)t->wait_seq);
}

/* green_io_wait(task): block until the worker calls green_io_done.  Counts as
 * running for deadlock detection. */
static PyObject *
green_io_wait(PyObject *Py_UNUSED(m), PyObject *task)
{
    if (!PyObject_TypeCheck(task, csp_st->TaskType)) {
        PyErr_SetString(PyExc_TypeError, "green_io_wait(task)");
        return NULL;
    }
    TaskObject *t = (TaskObject *)task;
    for (;;) {
        int st = csp_task_wait(t, -1.0, CSP_WAIT_IO);
        if (st == CSP_DONE)
            Py_RETURN_NONE;
        if (st != CSP_RETRY) {
            if (st >= 0)
                csp_raise_for_status(st);
            return NULL;
        }
        /* Signal handlers ran; the worker may have finished meanwhile. */
        if (atomic_load(&t->status) == CSP_DONE)
            Py_RETURN_NONE;
        atomic_store(&t->status, CSP_WAITING);
    }
}

static PyObject *
green_io_done(PyObject *Py_UNUSED(m), PyObject *args)
{
    PyObject *task;
    unsigned long long ticket;
    if (!PyArg_ParseTuple(args, "O!K:green_io_done", csp_st->TaskType, &task, &ticket))
        return NULL;
    TaskObject *t = (TaskObject *)task;
    if (t->wait_seq == ticket) {
        int st = atomic_load(&t->status);
        if (st == CSP_WAITING)
            csp_task_complete(t, CSP_DONE, -1, NULL);
        else if (st == CSP_RETRY)
            atomic_store(&t->status, CSP_DONE);  /* between two waits: no wake needed */
    }
    Py_RETURN_NONE;
}

static PyObject *
green_stats(PyObject *Py_UNUSED(m), PyObject *Py_UNUSED(ignored))
{
    green_sched *s = tls_sched;
    if (!s)
        Py_RETURN_NONE;
    Py_ssize_t spilled = 0;
    for (TaskObject *t = s->spill_head; t; t = t->spill_next)
        spilled++;
    return Py_BuildValue("{s:n,s:n,s:n}", "runnable", s->runq.count + spilled, "not_started",
                         s->startq.count, "timers", s->ntimers);
}

static PyObject *
green_stackcopy_stats(PyObject *Py_UNUSED(m), PyObject *Py_UNUSED(ignored))
{
    return csp_green_stackcopy_stats();
}

static PyMethodDef green_methods[] = {
    {"green_spawn", (PyCFunction)(void (*)(void))green_spawn, METH_FASTCALL,
     "green_spawn(task, proc, join): queue a Process to run as a greenlet."},
    {"green_io_begin", green_io_begin, METH_NOARGS,
     "green_io_begin() -> (task, ticket): prepare the calling task for an @io call."},
    {"green_io_wait", green_io_wait, METH_O, "Block the task until green_io_done(task, ticket)."},
    {"green_io_done", green_io_done, METH_VARARGS, "The @io call of (task, ticket) has finished."},
    {"green_stats", green_stats, METH_NOARGS, "Counts of the scheduler (for tests)."},
    {"green_stackcopy_stats", green_stackcopy_stats, METH_NOARGS,
     "The blocks kept for greenlet's stack copies (for tests)."},
    {NULL}
};

int
csp_green_init_module(PyObject *m)
{
    if (PyModule_AddIntConstant(m, "HAVE_GREENLET_SCHEDULER", 1) < 0)
        return -1;
    return PyModule_AddFunctions(m, green_methods);
}

#else  /* built without greenlet.h */

int
csp_green_init_module(PyObject *m)
{
    return PyModule_AddIntConstant(m, "HAVE_GREENLET_SCHEDULER", 0);
}

#endif

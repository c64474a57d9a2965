/* process.c - the OS-process way to wait: one shared waiter record per
 * process (per thread that uses channels), its wait loop, and deadlock
 * accounting across processes (who counts as running, the hand-over between
 * a child and the parent waiting for it, reaping the records of processes
 * that ended).
 *
 * A waiter's status word is the commit point between processes: a peer
 * that finds an offer claims the waiter (CAS WAITING -> CLAIMED) while
 * holding that offer's channel lock, fills in the result, then publishes the
 * final status; it wakes it (futex on the shared word) once it released its
 * outermost channel lock, or at the end of a shm_hold_wakes scope.  An alternation has
 * one offer per guard but one waiter, so only one guard can be claimed.
 */
#include "shared/shm.h"
#include "wait/loop.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <unistd.h>

/* Per thread: its waiter record (cleared in a forked child). */
static _Thread_local shm_waiter *my_waiter __attribute__((tls_model("initial-exec")));
/* The record of a thread other than the process's first: reaped when the
 * thread exits (the key's destructor), so it stops counting as running.
 * Process-wide, made once under pthread_once, read-only after. */
static pthread_key_t thread_record_key;
static pthread_once_t thread_record_once = PTHREAD_ONCE_INIT;
static int thread_record_key_ok;
/* Process-wide tuning, set by csp_ext.shm_set_spin() (GIL held) and read by
 * waiters without the GIL: an atomic (a plain load on x86-64). */
static _Atomic double shm_spin_budget = 50e-6;
/* Installed once at import by shared/channel.c (process-wide, read-only after). */
static const shm_waiter_hooks *hooks;

void
shm_install_waiter_hooks(const shm_waiter_hooks *h)
{
    hooks = h;
}

/* Per thread: how long this thread's recent waits took (moving average).
 * Polling only pays when the wait is likely to end within the budget: in a
 * ring of 256 processes every wait is long, and 2 cores shared by dozens of
 * pollers leave the one process that has work with little CPU. */
static _Thread_local double recent_wait __attribute__((tls_model("initial-exec")));

static void
shared_futex_wake(_Atomic uint32_t *addr)
{
    csp_futex_wake_op((void *)addr, 1);
}

/* Wakes held back while this thread holds channel locks (or serves a
 * request, pycsp.net's agent): a wakee that preempts its waker on this CPU
 * would otherwise find the channel still locked, or hold up the waker's
 * next step (the agent's reply).  The result is published at once; only
 * the futex wake waits, and at most until the outermost scope ends. */
#define SHM_DEFERRED_WAKES 16
static _Thread_local int defer_depth __attribute__((tls_model("initial-exec")));
static _Thread_local int n_deferred __attribute__((tls_model("initial-exec")));
static _Thread_local _Atomic uint32_t *deferred[SHM_DEFERRED_WAKES]
    __attribute__((tls_model("initial-exec")));

void
shm_wakes_defer_begin(void)
{
    defer_depth++;
}

void
shm_wakes_now(void)
{
    while (n_deferred > 0)
        shared_futex_wake(deferred[--n_deferred]);
}

void
shm_wakes_defer_end(void)
{
    if (--defer_depth == 0)
        shm_wakes_now();
}

static void
wake_waiter(_Atomic uint32_t *status)
{
    if (defer_depth > 0 && n_deferred < SHM_DEFERRED_WAKES) {
        for (int i = 0; i < n_deferred; i++)
            if (deferred[i] == status)
                return;
        deferred[n_deferred++] = status;
        return;
    }
    shared_futex_wake(status);
}

static void
after_fork_in_child(void)
{
    my_waiter = NULL;
    defer_depth = n_deferred = 0;   /* the parent's scopes and wakes */
    /* The forking thread's record is its parent's, not this process's. */
    if (thread_record_key_ok)
        pthread_setspecific(thread_record_key, NULL);
}

/* ------------------------------------------------------------------ */
/* Waiters                                                             */

static shm_waiter *registry_take(long pid, shm_off at);
static void reap_record(shm_waiter *found);
static shm_waiter *record_arg(PyObject *arg);

/* Key destructor: a thread that used channels has ended (runs without the
 * GIL; must not touch PyObject). */
static void
thread_record_ended(void *record)
{
    shm_waiter *w = record;
    if (!shm_base || !w || w->pid != shm_my_pid)
        return;
    w = registry_take(0, SHM_OFF(w));
    if (w)
        reap_record(w);
}

static void
make_thread_record_key(void)
{
    thread_record_key_ok = pthread_key_create(&thread_record_key, thread_record_ended) == 0;
}

/* A new waiter record in the registry, counted as running from now (so the
 * count never misses it); NULL with an exception. */
static shm_waiter *
new_counted_record(pid_t pid, pid_t parent)
{
    if (shm_ensure() < 0)
        return NULL;
    shm_off off = shm_alloc(sizeof(shm_waiter));
    if (!off)
        return NULL;
    shm_waiter *w = SHM_PTR(shm_waiter, off);
    memset(w, 0, sizeof(*w));
    atomic_store(&w->status, CSP_DONE);
    w->pid = pid;
    w->parent = parent;
    w->counted = 1;
    w->identity = atomic_fetch_add(&shm_hdr->last_record_identity, 1) + 1;
    shm_deadlock_count(1);
    shm_hdr_lock();
    w->next = shm_hdr->waiters;
    atomic_signal_fence(memory_order_release);  /* the link before the head */
    shm_hdr->waiters = off;
    shm_lock_release(&shm_hdr->lock);
    return w;
}

shm_waiter *
shm_existing_waiter(void)
{
    return my_waiter;
}

shm_waiter *
shm_my_waiter(void)
{
    if (my_waiter)
        return my_waiter;
    /* A record made here is the main program's first thread's, or another
     * thread's from its first channel operation on: it counts as running from
     * now until the thread ends.  (A child started by Parallel or Spawn adopts
     * the record its parent counted before starting it: shm_adopt.) */
    shm_waiter *w = new_counted_record(getpid(), 0);
    if (!w)
        return NULL;
    my_waiter = w;
    if (PyThread_get_thread_ident() != csp_main_thread_ident) {
        pthread_once(&thread_record_once, make_thread_record_key);
        if (thread_record_key_ok)
            pthread_setspecific(thread_record_key, w);
    }
    return w;
}

int
shm_waiter_prepare(shm_waiter *w, int64_t noffers)
{
    if (noffers > w->offers_cap) {
        int64_t cap = noffers < 4 ? 4 : noffers;
        shm_off o = shm_alloc((uint64_t)cap * sizeof(shm_offer));
        if (!o)
            return -1;
        shm_free(w->offers);
        w->offers = o;
        w->offers_cap = cap;
    }
    w->noffers = 0;
    w->chosen = -1;
    w->msg = 0;
    w->op_number++;
    atomic_store(&w->status, CSP_WAITING);
    return 0;
}

int
shm_waiter_claim(shm_waiter *w)
{
    uint32_t expect = CSP_WAITING;
    if (atomic_compare_exchange_strong(&w->status, &expect, CSP_CLAIMED_BY(shm_my_pid)))
        return 1;
    /* A proxy offer never commits: the party it stands for is in another
     * program, and its agent must claim it there (shared/proxy.c). */
    if (__builtin_expect(expect == CSP_PROXY, 0))
        shm_proxy_poke((shm_proxy_record *)w);
    return 0;
}

void
shm_proxy_poke(shm_proxy_record *p)
{
    /* Only the first poke since the agent last looked needs a wake-up: a
     * later one finds the word set, and so does the agent's next wait. */
    if (atomic_exchange_explicit(&p->poked, 1, memory_order_acq_rel) == 0)
        shared_futex_wake(&p->poked);
}

/* 1 if process `pid` has ended (gone, or a zombie nobody reaped yet). */
int
shm_process_gone(pid_t pid)
{
    if (pid <= 0)
        return 0;
    if (kill(pid, 0) < 0 && errno == ESRCH)
        return 1;
    char state;
    uint64_t start;
    int r = shm_task_stat(pid, &state, &start);
    return r == 0 || (r > 0 && (state == 'Z' || state == 'X'));
}

/* The waiter stops blocking: count it as running again. */
static void
waiter_reactivate(shm_waiter *w)
{
    if (atomic_exchange(&w->inactive, 0) && w->counted)
        atomic_fetch_add(&shm_hdr->n_active, 1);
}

/* A waiter claimed by a process that died before finishing it would wait
 * forever: after a while in that state, look at the claimer. */
static void
check_claimer(shm_waiter *w, double *claimed_since)
{
    double now = csp_monotonic();
    if (*claimed_since == 0.0) {
        *claimed_since = now;
        return;
    }
    if (now - *claimed_since < 0.1)
        return;
    *claimed_since = now;
    uint32_t claim = atomic_load(&w->status);
    if (CSP_IS_CLAIMED(claim) && shm_process_gone(CSP_CLAIMER(claim))
        && atomic_compare_exchange_strong(&w->status, &claim, CSP_POISONED))
        waiter_reactivate(w);   /* as its finisher would have: it runs again */
}

void
shm_waiter_count_as_running(shm_waiter *w)
{
    waiter_reactivate(w);
}

void
shm_waiter_finish(shm_waiter *w, uint32_t status, int64_t chosen, shm_off msg)
{
    w->chosen = chosen;
    w->msg = msg;
    waiter_reactivate(w);
    atomic_store(&w->status, status);
    if (atomic_load(&w->sleeping))
        wake_waiter(&w->status);
}

/* Every process is blocked without a deadline: wake the blocked ones with
 * CSP_DEADLOCK.  They are claimed first and counted as claimed, so that the
 * count their reports carry is the number of reports there will be (one
 * that gave up meanwhile, for a signal, is not counted). */
static void
break_deadlock(void)
{
    shm_hdr_lock();
    int64_t eligible = 0;
    for (shm_off off = shm_hdr->waiters; off; off = SHM_PTR(shm_waiter, off)->next) {
        shm_waiter *w = SHM_PTR(shm_waiter, off);
        eligible += !w->dead && !w->service && atomic_load(&w->inactive);
    }
    shm_waiter **claimed = malloc(sizeof(shm_waiter *) * (size_t)(eligible ? eligible : 1));
    int64_t n = 0;
    for (shm_off off = shm_hdr->waiters; off; off = SHM_PTR(shm_waiter, off)->next) {
        shm_waiter *w = SHM_PTR(shm_waiter, off);
        if (w->dead || w->service || !atomic_load(&w->inactive) || !shm_waiter_claim(w))
            continue;
        if (claimed && n < eligible)
            claimed[n++] = w;
        else
            shm_waiter_finish(w, CSP_DEADLOCK, -1, 0);   /* no memory to count them */
    }
    shm_hdr->deadlock_generation++;
    shm_hdr->deadlock_woken = claimed ? n : -1;   /* -1: not known */
    for (int64_t i = 0; i < n; i++)
        shm_waiter_finish(claimed[i], CSP_DEADLOCK, -1, 0);
    free(claimed);
    shm_lock_release(&shm_hdr->lock);
}

void
shm_deadlock_uncount(int64_t n)
{
    if (atomic_fetch_sub(&shm_hdr->n_active, n) == n)
        break_deadlock();
}

void
shm_deadlock_count(int64_t n)
{
    atomic_fetch_add(&shm_hdr->n_active, n);
}

static int
spin_while_pending(_Atomic uint32_t *word)
{
    double give_up = 0.0;
    if (recent_wait > 2 * shm_spin_budget)
        return atomic_load(word) != CSP_WAITING;
    for (;;) {
        uint32_t st = atomic_load_explicit(word, memory_order_acquire);
        if (st != CSP_WAITING && !CSP_IS_CLAIMED(st))
            return 1;
        if (give_up == 0.0)
            give_up = csp_monotonic() + shm_spin_budget;
        else if (csp_monotonic() >= give_up)
            return CSP_IS_CLAIMED(st);  /* claimed: the caller checks the claimer */
        sched_yield();
    }
}

void
shm_waiter_mark_blocked(shm_waiter *w, double deadline)
{
    /* An exchange: marked twice (shm_idle), it is uncounted once. */
    if (deadline < 0 && !atomic_exchange(&w->inactive, 1) && w->counted)
        shm_deadlock_uncount(1);
}

/* The wait of a thread of an OS process: poll (while that pays), then
 * sleep on the shared futex, with the GIL released. */
static void
record_sleep(void *self, double until)
{
    shm_waiter *w = self;
    Py_BEGIN_ALLOW_THREADS
    if (!spin_while_pending(&w->status))
        csp_sleep_on_word(&w->status, &w->sleeping, 1, until);
    Py_END_ALLOW_THREADS
}

static int
record_give_up(void *self, int status)
{
    shm_waiter *w = self;
    uint32_t expect = CSP_WAITING;
    if (!atomic_compare_exchange_strong(&w->status, &expect, (uint32_t)status))
        return 0;   /* claimed: the result is on its way */
    waiter_reactivate(w);
    hooks->withdraw(w);
    return 1;
}

static void
record_claimed(void *self, double *since)
{
    check_claimer(self, since);
}

/* Every sleep is bounded, not only the main thread's: a claimer that dies
 * between its claim and its finish wakes nobody, so the waiter must look. */
static uint64_t
record_op_number(const void *self)
{
    return ((const shm_waiter *)self)->op_number;
}

/* A deadlock across programs asks the operation it found blocked to end
 * (shm_ask_to_stop): the waiter gives up by itself, as at a timeout, so
 * that a commit that claims it first wins, and a later operation is left
 * alone. */
static int
record_asked_to_stop(void *self)
{
    shm_waiter *w = self;
    uint32_t asked = atomic_load(&w->break_op);
    if (asked == 0)
        return 0;
    /* Taken once, whether it is for this operation or a stale one (an op
     * number comes round again after 2^32 operations). */
    atomic_compare_exchange_strong(&w->break_op, &asked, 0);
    return asked == w->op_number ? CSP_DEADLOCK : 0;
}

void
shm_ask_to_stop(shm_waiter *w, uint32_t op)
{
    atomic_store(&w->break_op, op);
    /* A spurious wake-up (the word stays WAITING); a sleeper that missed it
     * looks at the end of its slice (0.1 s). */
    if (atomic_load(&w->sleeping))
        wake_waiter(&w->status);
}

static const csp_wait_way record_way = {
    .slice = 0.1,
    .sleep = record_sleep,
    .give_up = record_give_up,
    .claimed = record_claimed,
    .op_number = record_op_number,
    .asked_to_stop = record_asked_to_stop,
};

int
shm_waiter_wait(shm_waiter *w, double deadline)
{
    /* Never sleep on wakes of our own held back (a scope of
     * shm_hold_wakes around something that blocked after all). */
    shm_wakes_now();
    double started = csp_monotonic();
    int st = csp_wait_watched(&record_way, w, &w->status, deadline,
                              PyThread_get_thread_ident() == csp_main_thread_ident);
    if (st != CSP_TIMEOUT && st != CSP_RETRY && st >= 0)
        recent_wait = 0.75 * recent_wait + 0.25 * (csp_monotonic() - started);
    return st;
}

/* ------------------------------------------------------------------ */
/* Python-facing functions                                             */

static PyObject *
py_shm_init(PyObject *Py_UNUSED(m), PyObject *Py_UNUSED(ignored))
{
    if (shm_ensure() < 0 || !shm_my_waiter())
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *
py_shm_stats(PyObject *Py_UNUSED(m), PyObject *Py_UNUSED(ignored))
{
    if (!shm_base)
        Py_RETURN_NONE;
    int64_t nwaiters = 0;
    shm_hdr_lock();
    for (shm_off off = shm_hdr->waiters; off; off = SHM_PTR(shm_waiter, off)->next)
        nwaiters++;
    shm_header h = *shm_hdr;   /* copied: building the dict may free blocks (GC) */
    shm_lock_release(&shm_hdr->lock);
    return Py_BuildValue("{s:K,s:K,s:K,s:K,s:L,s:L}", "file_size",
                         (unsigned long long)h.file_size, "reserved",
                         (unsigned long long)h.reserved, "bytes_in_use",
                         (unsigned long long)h.bytes_in_use, "blocks_in_use",
                         (unsigned long long)h.blocks_in_use, "n_active",
                         (long long)atomic_load(&shm_hdr->n_active), "waiters",
                         (long long)nwaiters);
}

/* shm_end_body(): this process has done all it will do (its result is sent,
 * the processes it spawned have ended) and is about to exit; it stops
 * counting as running.  If its parent is waiting for it, the count becomes a
 * credit for the parent's wake-up (see shm_wait_children). */
static PyObject *
py_shm_end_body(PyObject *Py_UNUSED(m), PyObject *Py_UNUSED(ignored))
{
    shm_waiter *w = shm_my_waiter();
    if (!w)
        return NULL;
    int uncount = 0;
    shm_hdr_lock();
    if (w->counted) {
        w->counted = 0;
        if (atomic_exchange(&w->inactive, 0))
            ;   /* counted as blocked (an idle agent): its count is off already */
        else if (w->parent_waiting)
            w->credit++;
        else
            uncount = 1;
    }
    shm_lock_release(&shm_hdr->lock);
    if (uncount)
        shm_deadlock_uncount(1);
    Py_RETURN_NONE;
}

/* shm_linger(): this process's result is sent, but it stays to wait for the
 * processes it spawned, and tells a parent waiting for it so (which then
 * stops waiting): that parent's wake-up gets a credit, as for an ending child. */
static PyObject *
py_shm_linger(PyObject *Py_UNUSED(m), PyObject *Py_UNUSED(ignored))
{
    shm_waiter *w = shm_my_waiter();
    if (!w)
        return NULL;
    shm_hdr_lock();
    w->lingered = 1;   /* until the parent has seen it: its wait ends soon */
    if (w->parent_waiting) {
        w->credit++;
        shm_deadlock_count(1);
    }
    shm_lock_release(&shm_hdr->lock);
    Py_RETURN_NONE;
}

/* shm_linger_seen(record): the parent has read that this child lingers. */
static PyObject *
py_shm_linger_seen(PyObject *Py_UNUSED(m), PyObject *arg)
{
    shm_waiter *w = record_arg(arg);
    if (!w)
        return NULL;
    shm_hdr_lock();
    w->lingered = 0;
    shm_lock_release(&shm_hdr->lock);
    Py_RETURN_NONE;
}

/* shm_serve_quietly(): the calling thread serves other programs (a thread
 * of pycsp.net's agent): a deadlock of this program never wakes it.  It
 * counts as running while it serves (a party of the program may wait for
 * what it does: its reply, the channel end a message carries away), not
 * while it waits for a request (shm_idle) or blocks on a channel. */
static PyObject *
py_shm_serve_quietly(PyObject *Py_UNUSED(m), PyObject *args)
{
    int registry = 0;
    if (!PyArg_ParseTuple(args, "|p:shm_serve_quietly", &registry))
        return NULL;
    shm_waiter *w = shm_my_waiter();
    if (!w)
        return NULL;
    shm_hdr_lock();   /* break_deadlock reads it under the lock */
    w->service = registry ? SHM_SERVICE_REGISTRY : SHM_SERVICE_PARTIES;
    shm_lock_release(&shm_hdr->lock);
    Py_RETURN_NONE;
}

/* shm_idle(idle): the calling thread starts (True) or stops (False) waiting
 * for something other than a channel that only another program can bring
 * (a request): meanwhile it counts as blocked. */
static PyObject *
py_shm_idle(PyObject *Py_UNUSED(m), PyObject *arg)
{
    int idle = PyObject_IsTrue(arg);
    if (idle < 0)
        return NULL;
    shm_waiter *w = shm_my_waiter();
    if (!w)
        return NULL;
    if (idle)
        shm_waiter_mark_blocked(w, -1.0);
    else
        waiter_reactivate(w);
    Py_RETURN_NONE;
}

/* shm_hold_wakes(hold): from True to False, the waiters this thread
 * finishes are woken only at False (pycsp.net's agent: the reply to the
 * remote party leaves before the local party it met takes the CPU).  The
 * results are published at once; a wait of this thread wakes them first. */
static PyObject *
py_shm_hold_wakes(PyObject *Py_UNUSED(m), PyObject *arg)
{
    int hold = PyObject_IsTrue(arg);
    if (hold < 0)
        return NULL;
    if (hold)
        shm_wakes_defer_begin();
    else if (defer_depth > 0)
        shm_wakes_defer_end();
    Py_RETURN_NONE;
}

/* _shm_held_wakes(): test only.  How many wakes this thread holds back. */
static PyObject *
py_shm_held_wakes(PyObject *Py_UNUSED(m), PyObject *Py_UNUSED(ignored))
{
    return PyLong_FromLong(n_deferred);
}

/* shm_wait_children(records, waiting, slept=True) -> slept: deadlock
 * accounting for a process waiting for its children (their waiter records,
 * as from shm_precount).  waiting=True before it sleeps: it stops counting as
 * running, and a child that ends meanwhile hands it its count; unless a child
 * has ended already (it will not sleep then: returns False).  waiting=False
 * when it wakes (slept: what the waiting=True call returned): it counts again,
 * taking the credits its children left. */
static PyObject *
py_shm_wait_children(PyObject *Py_UNUSED(m), PyObject *args)
{
    PyObject *records;
    int waiting, slept = 1;
    if (!PyArg_ParseTuple(args, "Op|p:shm_wait_children", &records, &waiting, &slept))
        return NULL;
    if (shm_ensure() < 0)
        return NULL;
    PyObject *seq = PySequence_Fast(records, "shm_wait_children: records must be a sequence");
    if (!seq)
        return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    shm_waiter **ws = PyMem_Malloc(sizeof(shm_waiter *) * (size_t)(n ? n : 1));
    if (!ws) {
        Py_DECREF(seq);
        return PyErr_NoMemory();
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        if (!(ws[i] = record_arg(PySequence_Fast_GET_ITEM(seq, i)))) {
            PyMem_Free(ws);
            Py_DECREF(seq);
            return NULL;
        }
    }
    int64_t credits = 0;
    shm_hdr_lock();
    if (waiting) {
        /* A child whose body ended before this wait began makes it short:
         * stopping counting now could touch zero before the wake-up. */
        for (Py_ssize_t i = 0; i < n; i++)
            if ((!ws[i]->counted || ws[i]->lingered) && !ws[i]->dead)
                slept = 0;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        ws[i]->parent_waiting = waiting && slept;
        credits += ws[i]->credit;
        ws[i]->credit = 0;
    }
    /* Whether its own count is off now: if it dies so, its reaper must not
     * take the count away a second time. */
    shm_waiter *me = shm_existing_waiter();
    if (me && slept)
        me->waits_for_children = waiting;
    shm_lock_release(&shm_hdr->lock);
    PyMem_Free(ws);
    Py_DECREF(seq);
    /* Never below zero on the way: the credits stand for this wake-up. */
    int64_t delta = (slept ? (waiting ? -1 : 1) : 0) - credits;
    if (delta > 0)
        shm_deadlock_count(delta);
    else if (delta < 0)
        shm_deadlock_uncount(-delta);
    return PyBool_FromLong(slept);
}

/* Take the waiter record of `pid` (or, with pid < 0, the record at offset
 * -pid) out of the registry.  NULL if there is none. */
static shm_waiter *
registry_take(long pid, shm_off at)
{
    shm_waiter *found = NULL;
    shm_hdr_lock();
    shm_off *link = &shm_hdr->waiters;
    while (*link) {
        shm_waiter *w = SHM_PTR(shm_waiter, *link);
        if (at ? *link == at : (w->pid == pid && !w->dead)) {
            found = w;
            *link = w->next;
            break;
        }
        link = &w->next;
    }
    shm_lock_release(&shm_hdr->lock);
    return found;
}

/* Reap the records of process `pid`: its own and its threads'.  1 if any. */
static int
reap_pid_records(long pid)
{
    int any = 0;
    shm_waiter *found;
    while (pid > 0 && (found = registry_take(pid, 0)) != NULL) {
        reap_record(found);
        any = 1;
    }
    return any;
}

/* A process has ended, whichever way: withdraw its offers, free what it
 * held (messages it offered but nobody took, one delivered but unread, one
 * encoded but not yet sent), stop counting it, free the record. */
static void
reap_record(shm_waiter *found)
{
    found->dead = 1;
    uint32_t expect = CSP_WAITING;
    atomic_compare_exchange_strong(&found->status, &expect, CSP_CANCELLED);
    double claimed_since = 0.0;
    while (CSP_IS_CLAIMED(atomic_load(&found->status))) {
        check_claimer(found, &claimed_since);
        sched_yield();
    }
    hooks->withdraw(found);
    uint32_t final = atomic_load(&found->status);
    shm_offer *offers = SHM_PTR(shm_offer, found->offers);
    for (int64_t i = 0; i < found->noffers; i++)
        if (offers[i].is_write && !(final == CSP_DONE && found->chosen == offers[i].index))
            hooks->discard(offers[i].msg);
    /* What it still counts for: itself, unless blocked or waiting for its
     * children (then its count is off already); and the counts its children
     * left for its wake-up (they ended, or lingered, while it waited), or
     * that it left for its own parent's and that parent never took (a
     * parent takes them before it reaps its children, so a reaper that
     * finds some reaps for a parent that died). */
    shm_hdr_lock();
    int64_t release = found->credit;
    found->credit = 0;
    int waited = found->waits_for_children;
    shm_lock_release(&shm_hdr->lock);
    if (!atomic_exchange(&found->inactive, 0) && found->counted && !waited)
        release++;
    if (release > 0)
        shm_deadlock_uncount(release);
    hooks->discard(found->msg);
    hooks->discard(found->pending);
    /* An arena copy made for a refused reader that never took it (the
     * reader takes it only from a registered record). */
    hooks->discard(atomic_exchange(&found->vm_handoff, 0));
    shm_free(found->offers);
    shm_free(SHM_OFF(found));
}

/* The descendants of a crashed process die with it (PR_SET_PDEATHSIG) but
 * nobody reaps them: wait a little for each to be gone, then reap it. */
static void
reap_descendants(long pid)
{
    double give_up = csp_monotonic() + 2.0;
    for (;;) {
        shm_off orphan = 0;
        long orphan_pid = 0;
        int waiting = 0;
        shm_hdr_lock();
        for (shm_off off = shm_hdr->waiters; off; off = SHM_PTR(shm_waiter, off)->next) {
            shm_waiter *w = SHM_PTR(shm_waiter, off);
            if (w->dead || w->parent != pid)
                continue;
            if (w->pid == 0 || shm_process_gone(w->pid)) {
                orphan = off;
                orphan_pid = w->pid;
                break;
            }
            waiting = 1;
        }
        shm_lock_release(&shm_hdr->lock);
        if (orphan) {
            shm_waiter *w = registry_take(0, orphan);
            if (w) {
                if (orphan_pid > 0)
                    reap_descendants(orphan_pid);
                reap_record(w);
                reap_pid_records(orphan_pid);   /* its threads' */
            }
            continue;
        }
        if (!waiting || csp_monotonic() >= give_up)
            return;
        Py_BEGIN_ALLOW_THREADS
        usleep(5000);
        Py_END_ALLOW_THREADS
    }
}

/* shm_precount() -> record: a waiter record for a child about to be forked,
 * counted as running from now (so the count never misses it). */
static PyObject *
py_shm_precount(PyObject *Py_UNUSED(m), PyObject *Py_UNUSED(ignored))
{
    shm_waiter *w = new_counted_record(0, getpid());   /* its pid: shm_set_pid */
    return w ? PyLong_FromUnsignedLongLong(SHM_OFF(w)) : NULL;
}

static shm_waiter *
record_arg(PyObject *arg)
{
    unsigned long long off = PyLong_AsUnsignedLongLong(arg);
    if (PyErr_Occurred())
        return NULL;
    if (!shm_base || off < sizeof(shm_header) || off >= shm_hdr->file_size) {
        PyErr_SetString(PyExc_ValueError, "not a waiter record of this arena");
        return NULL;
    }
    return SHM_PTR(shm_waiter, off);
}

/* shm_adopt(record): in the forked child, the record is this process's waiter. */
static PyObject *
py_shm_adopt(PyObject *Py_UNUSED(m), PyObject *arg)
{
    shm_waiter *w = record_arg(arg);
    if (!w)
        return NULL;
    w->pid = getpid();
    /* A record this thread made before (an exec'd process whose imports
     * touched a channel) would count as running for good: the adopted one,
     * counted already, replaces it. */
    shm_waiter *before = my_waiter;
    my_waiter = w;
    if (before && before != w) {
        if (thread_record_key_ok && pthread_getspecific(thread_record_key) == before)
            pthread_setspecific(thread_record_key, NULL);   /* not reaped twice at its exit */
        if ((before = registry_take(0, SHM_OFF(before))) != NULL)
            reap_record(before);
    }
    Py_RETURN_NONE;
}

/* shm_set_pid(record, pid): in the parent, after the fork. */
static PyObject *
py_shm_set_pid(PyObject *Py_UNUSED(m), PyObject *args)
{
    PyObject *rec;
    int pid;
    if (!PyArg_ParseTuple(args, "Oi:shm_set_pid", &rec, &pid))
        return NULL;
    shm_waiter *w = record_arg(rec);
    if (!w)
        return NULL;
    w->pid = pid;
    Py_RETURN_NONE;
}

/* shm_forget(record): the fork failed; the record goes. */
static PyObject *
py_shm_forget(PyObject *Py_UNUSED(m), PyObject *arg)
{
    shm_waiter *w = record_arg(arg);
    if (!w)
        return NULL;
    w = registry_take(0, SHM_OFF(w));
    if (w)
        reap_record(w);
    Py_RETURN_NONE;
}

/* shm_reap(pid, crashed=False): a child process has ended.  Its record is
 * reaped; if it crashed, so are those of its descendants. */
static PyObject *
py_shm_reap(PyObject *Py_UNUSED(m), PyObject *args)
{
    long pid;
    int crashed = 0;
    if (!PyArg_ParseTuple(args, "l|p:shm_reap", &pid, &crashed))
        return NULL;
    if (!shm_base)
        Py_RETURN_FALSE;
    int any = reap_pid_records(pid);
    if (crashed)
        reap_descendants(pid);
    return PyBool_FromLong(any);
}

static PyObject *
py_shm_set_spin(PyObject *Py_UNUSED(m), PyObject *arg)
{
    double b = PyFloat_AsDouble(arg);
    if (b == -1.0 && PyErr_Occurred())
        return NULL;
    if (!(b >= 0.0 && b <= 1.0)) {
        PyErr_SetString(PyExc_ValueError, "shm_set_spin(budget_seconds in [0, 1])");
        return NULL;
    }
    shm_spin_budget = b;
    Py_RETURN_NONE;
}

/* set_parent_death_signal(sig): this process gets `sig` when its parent dies. */
static PyObject *
py_set_parent_death_signal(PyObject *Py_UNUSED(m), PyObject *arg)
{
    int sig = PyLong_AsLong(arg);
    if (sig == -1 && PyErr_Occurred())
        return NULL;
    if (prctl(PR_SET_PDEATHSIG, sig) < 0)
        return PyErr_SetFromErrno(PyExc_OSError);
    Py_RETURN_NONE;
}

/* _shm_forge_claim(record, pid): test only.  Make the waiting record look
 * claimed by process `pid` (one that died before it finished it): True if
 * the record was waiting. */
static PyObject *
py_shm_forge_claim(PyObject *Py_UNUSED(m), PyObject *args)
{
    PyObject *rec;
    int pid;
    if (!PyArg_ParseTuple(args, "Oi", &rec, &pid))
        return NULL;
    shm_waiter *w = record_arg(rec);
    if (!w)
        return NULL;
    uint32_t expect = CSP_WAITING;
    return PyBool_FromLong(
        atomic_compare_exchange_strong(&w->status, &expect, CSP_CLAIMED_BY(pid)));
}

/* _shm_die_holding_lock(what): test only.  Take the arena lock, leave the
 * state a process killed half-way through an update could leave ("free_list":
 * free list heads that are no blocks; "registry": a waiter record whose
 * link is garbage; or "none"), and exit without unlocking. */
static PyObject *
py_shm_die_holding_lock(PyObject *Py_UNUSED(m), PyObject *arg)
{
    const char *what = PyUnicode_AsUTF8(arg);
    if (!what)
        return NULL;
    if (shm_ensure() < 0 || !shm_my_waiter())
        return NULL;
    shm_lock_acquire(&shm_hdr->lock);  /* (raw: the hook wants no repair) */
    if (strcmp(what, "free_list") == 0) {
        for (int k = 0; k < 8; k++)
            shm_hdr->free_lists[k] = shm_hdr->file_size + (64u << 20);
    }
    else if (strcmp(what, "registry") == 0) {
        SHM_PTR(shm_waiter, shm_hdr->waiters)->next = shm_hdr->file_size + (64u << 20) + 16;
    }
    _exit(0);
}

static PyMethodDef shm_methods[] = {
    {"_shm_held_wakes", py_shm_held_wakes, METH_NOARGS,
     "Test only: how many wakes this thread holds back."},
    {"_shm_forge_claim", py_shm_forge_claim, METH_VARARGS,
     "Test only: make a waiting record look claimed by process pid."},
    {"_shm_die_holding_lock", py_shm_die_holding_lock, METH_O,
     "Test only: exit holding the arena lock, leaving a half-done update."},
    {"set_parent_death_signal", py_set_parent_death_signal, METH_O,
     "This process receives the signal when its parent dies (Linux prctl)."},
    {"shm_init", py_shm_init, METH_NOARGS, "Map the shared arena (before the first fork)."},
    {"shm_stats", py_shm_stats, METH_NOARGS, "Arena statistics (for tests), or None."},
    {"shm_reap", py_shm_reap, METH_VARARGS,
     "shm_reap(pid, crashed=False): a child process has ended; reap its record "
     "(and, if it crashed, its descendants')."},
    {"shm_linger", py_shm_linger, METH_NOARGS,
     "This process waits for its Spawns after its result: credit a waiting parent."},
    {"shm_serve_quietly", py_shm_serve_quietly, METH_VARARGS,
     "shm_serve_quietly(registry=False): this thread serves other programs (pycsp.net's "
     "agent; registry: the program's own requests to it): a deadlock never wakes it."},
    {"shm_idle", py_shm_idle, METH_O,
     "shm_idle(idle): this thread waits (True) or stops waiting (False) for a request "
     "that only another program can bring: meanwhile it counts as blocked."},
    {"shm_hold_wakes", py_shm_hold_wakes, METH_O,
     "shm_hold_wakes(hold): between True and False, waiters this thread finishes are "
     "woken at False (their results are published at once)."},
    {"shm_linger_seen", py_shm_linger_seen, METH_O,
     "In the parent: it has read that the child (its record) lingers."},
    {"shm_end_body", py_shm_end_body, METH_NOARGS,
     "This process's CSP body has ended: it stops counting as running."},
    {"shm_wait_children", py_shm_wait_children, METH_VARARGS,
     "shm_wait_children(records, waiting, slept=True) -> slept: deadlock accounting around "
     "waiting for children."},
    {"shm_precount", py_shm_precount, METH_NOARGS,
     "A waiter record for a child about to be forked, counted as running."},
    {"shm_adopt", py_shm_adopt, METH_O, "In the forked child: the record is this process's."},
    {"shm_set_pid", py_shm_set_pid, METH_VARARGS, "In the parent: the child's pid."},
    {"shm_forget", py_shm_forget, METH_O, "The fork failed: drop the record."},
    {"shm_set_spin", py_shm_set_spin, METH_O, "How long a blocked process polls before sleeping."},
    {NULL}
};

int
csp_shm_init_module(PyObject *m)
{
    int r = pthread_atfork(NULL, NULL, after_fork_in_child);
    if (r) {
        errno = r;
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    return PyModule_AddFunctions(m, shm_methods);
}

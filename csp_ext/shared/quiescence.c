/* A deadlock across programs (pycsp.net): the facts one program gives about
 * itself, so that the root of a run can tell that every program of it is
 * blocked for good (termination detection, pycsp/net/_quiescence.py).
 *
 * The program's own deadlock accounting (n_active) counts a wait on a
 * channel that another program may use as running, and so does a wait for
 * another program's answer: only this program's own waits make its
 * deadlock.  Across the programs of a run those waits are idle too.  A
 * snapshot says how many of the program's processes are busy even so, and
 * gives a fingerprint of every record's progress (its operation number, its
 * remote waits, whether it waits for its children): two snapshots with no
 * process busy and the same fingerprint mean that nothing ran in between.
 * With the counts of messages sent to and received from other programs, the
 * root can then tell that nothing is in flight either. */
#include "csp.h"
#include "shared/shm.h"

/* Whether w waits for something only another program can bring, or on a
 * channel without a deadline: idle, though n_active counts it running. */
static int
idle_but_counted(shm_waiter *w)
{
    if (w->dead || !w->counted || atomic_load(&w->inactive) || w->waits_for_children)
        return 0;   /* not counted in n_active, or counted as blocked already */
    if (atomic_load(&w->remote_waiting))
        return 1;
    uint32_t op = w->op_number;
    return op != 0 && atomic_load(&w->status) == CSP_WAITING
           && atomic_load_explicit(&w->idle_op, memory_order_acquire) == op;
}

/* Whether one of the offers of w's blocked operation is on a channel that
 * other programs use (set once, under the channel's lock, never cleared). */
static int
waits_on_reachable(shm_waiter *w)
{
    shm_offer *offers = SHM_PTR(shm_offer, w->offers);
    for (int64_t i = 0; i < w->noffers; i++)
        if (SHM_PTR(shm_channel, offers[i].chan)->reachable)
            return 1;
    return 0;
}

/* FNV-1a, 64 bits, over one more word. */
static uint64_t
mix(uint64_t h, uint64_t word)
{
    for (int i = 0; i < 8; i++) {
        h ^= (word >> (8 * i)) & 0xff;
        h *= 1099511628211ULL;
    }
    return h;
}

/* shm_run_snapshot(exclude_self) -> (busy, fingerprint, sent, received) */
static PyObject *
py_shm_run_snapshot(PyObject *Py_UNUSED(m), PyObject *arg)
{
    int exclude_self = PyObject_IsTrue(arg);
    if (exclude_self < 0 || shm_ensure() < 0)
        return NULL;
    shm_waiter *me = exclude_self ? shm_existing_waiter() : NULL;
    uint64_t fingerprint = 14695981039346656037ULL;
    int64_t idle = 0;
    shm_hdr_lock();
    for (shm_off off = shm_hdr->waiters; off; off = SHM_PTR(shm_waiter, off)->next) {
        shm_waiter *w = SHM_PTR(shm_waiter, off);
        if (w == me) {
            /* The caller (the root's agent, serving the question) is not
             * one of the processes it asks about. */
            idle += w->counted && !atomic_load(&w->inactive) && !w->waits_for_children;
            continue;
        }
        int is_idle = idle_but_counted(w);
        idle += is_idle;
        fingerprint = mix(fingerprint, off);
        fingerprint = mix(fingerprint, ((uint64_t)(uint32_t)w->pid << 32) | w->op_number);
        fingerprint = mix(fingerprint, ((uint64_t)atomic_load(&w->remote_waits) << 32)
                                       | ((uint64_t)w->dead << 4) | ((uint64_t)w->counted << 3)
                                       | ((uint64_t)(atomic_load(&w->inactive) != 0) << 2)
                                       | ((uint64_t)(w->waits_for_children != 0) << 1)
                                       | (uint64_t)is_idle);
        fingerprint = mix(fingerprint, ((uint64_t)(uint32_t)w->credit << 32)
                                       | (uint32_t)w->lingered);
    }
    int64_t active = atomic_load(&shm_hdr->n_active);
    uint64_t sent = atomic_load(&shm_hdr->net_sent);
    uint64_t received = atomic_load(&shm_hdr->net_received);
    shm_lock_release(&shm_hdr->lock);
    return Py_BuildValue("(LKKK)", (long long)(active - idle), (unsigned long long)fingerprint,
                         (unsigned long long)sent, (unsigned long long)received);
}

/* shm_break_run_deadlock(number) -> woken: every program of the run is
 * blocked for good (the run's deadlock `number`): end with DeadlockError
 * every wait of this one on a channel (the agent's workers' too: they answer
 * their parties elsewhere so). */
static PyObject *
py_shm_break_run_deadlock(PyObject *Py_UNUSED(m), PyObject *arg)
{
    unsigned long long number = PyLong_AsUnsignedLongLong(arg);
    if ((number == (unsigned long long)-1 && PyErr_Occurred()) || shm_ensure() < 0)
        return NULL;
    int64_t n = 0;
    shm_hdr_lock();
    for (shm_off off = shm_hdr->waiters; off; off = SHM_PTR(shm_waiter, off)->next) {
        shm_waiter *w = SHM_PTR(shm_waiter, off);
        uint32_t op = w->op_number;
        int blocked = atomic_load(&w->inactive)
                      || (op != 0 && atomic_load_explicit(&w->idle_op, memory_order_acquire) == op);
        /* Of the agent's threads, only those serving a party elsewhere (on a
         * homed channel), not its registry, which waits for this program. */
        if (w->dead || !blocked || (w->service && !waits_on_reachable(w)) || !shm_waiter_claim(w))
            continue;
        n++;
        shm_waiter_finish(w, CSP_DEADLOCK, -1, 0);
    }
    shm_hdr->deadlock_generation++;
    shm_hdr->run_deadlock_generation = shm_hdr->deadlock_generation;
    shm_hdr->run_deadlock = number;
    /* Processes of other programs were blocked in it too: how many reports
     * make it whole is not known here. */
    shm_hdr->deadlock_woken = -1;
    shm_lock_release(&shm_hdr->lock);
    return PyLong_FromLongLong((long long)n);
}

/* shm_remote_wait(waiting): this thread starts (True) or stops (False)
 * waiting for another program's answer. */
static PyObject *
py_shm_remote_wait(PyObject *Py_UNUSED(m), PyObject *arg)
{
    shm_waiter *w = shm_my_waiter();
    if (!w)
        return NULL;
    if (arg == Py_True) {
        atomic_fetch_add_explicit(&w->remote_waits, 1, memory_order_relaxed);
        atomic_store(&w->remote_waiting, 1);
    }
    else {
        atomic_store(&w->remote_waiting, 0);
    }
    Py_RETURN_NONE;
}

/* Counted before the message leaves, and after it arrived: a snapshot never
 * counts as received what it does not count as sent. */
static PyObject *
py_shm_net_sent(PyObject *Py_UNUSED(m), PyObject *Py_UNUSED(ignored))
{
    if (shm_ensure() < 0)
        return NULL;
    atomic_fetch_add(&shm_hdr->net_sent, 1);
    Py_RETURN_NONE;
}

/* The thread that received it stops waiting first (shm_remote_wait): the
 * message may be its answer. */
static PyObject *
py_shm_net_received(PyObject *Py_UNUSED(m), PyObject *Py_UNUSED(ignored))
{
    if (shm_ensure() < 0)
        return NULL;
    shm_waiter *w = shm_existing_waiter();
    if (w)
        atomic_store(&w->remote_waiting, 0);
    atomic_fetch_add(&shm_hdr->net_received, 1);
    Py_RETURN_NONE;
}

static PyMethodDef quiescence_methods[] = {
    {"shm_run_snapshot", py_shm_run_snapshot, METH_O,
     "shm_run_snapshot(exclude_self) -> (busy, fingerprint, sent, received): this program "
     "as a deadlock across programs sees it."},
    {"shm_break_run_deadlock", py_shm_break_run_deadlock, METH_O,
     "shm_break_run_deadlock(number): every program of the run is blocked (its deadlock "
     "number): end this one's channel waits with DeadlockError."},
    {"shm_remote_wait", py_shm_remote_wait, METH_O,
     "shm_remote_wait(waiting): this thread waits (True) or stops waiting (False) for "
     "another program's answer."},
    {"shm_net_sent", py_shm_net_sent, METH_NOARGS,
     "A message to another program is about to leave (pycsp.net)."},
    {"shm_net_received", py_shm_net_received, METH_NOARGS,
     "A message from another program has arrived (pycsp.net)."},
    {NULL}
};

int
csp_shm_quiescence_init_module(PyObject *m)
{
    return PyModule_AddFunctions(m, quiescence_methods);
}

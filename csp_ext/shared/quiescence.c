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

/* The owner thread writes these plainly; others read them racily, as
 * words (a torn or stale value only makes a snapshot differ or a break
 * skip a record: see the callers). */
#define OWNERS(field) __atomic_load_n(&(field), __ATOMIC_RELAXED)

/* Whether w is blocked on a channel, in operation `op`, without a deadline. */
static int
blocked_in_core(shm_waiter *w, uint32_t op)
{
    return atomic_load(&w->inactive)
           || (op != 0 && atomic_load(&w->status) == CSP_WAITING
               && atomic_load_explicit(&w->idle_op, memory_order_acquire) == op);
}

/* Whether w waits for something only another program can bring, or on a
 * channel without a deadline: idle, though n_active counts it running. */
static int
idle_but_counted(shm_waiter *w, uint32_t op)
{
    if (w->dead || !w->counted || atomic_load(&w->inactive) || w->waits_for_children)
        return 0;   /* not counted in n_active, or counted as blocked already */
    return atomic_load(&w->remote_waiting) || blocked_in_core(w, op);
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

/* A record blocked on a channel at a snapshot: the break ends only those
 * still in the same operation (one that started waiting after the run's
 * deadlock, a process woken by it and gone on, is not part of it). */
typedef struct {
    uint64_t record, identity;   /* where the record is, and which one it is */
    uint64_t op;
} blocked_op;

/* shm_run_snapshot(exclude_self) -> (busy, fingerprint, sent, received,
 * members, blocked, others, had_members): blocked packs the blocked_op of
 * every record blocked on a channel, for shm_break_run_deadlock; others is
 * how many live records there are besides the caller's. */
static PyObject *
py_shm_run_snapshot(PyObject *Py_UNUSED(m), PyObject *arg)
{
    int exclude_self = PyObject_IsTrue(arg);
    if (exclude_self < 0 || shm_ensure() < 0)
        return NULL;
    shm_waiter *me = exclude_self ? shm_existing_waiter() : NULL;
    uint64_t fingerprint = 14695981039346656037ULL;
    int64_t idle = 0, others = 0;
    Py_ssize_t nblocked = 0, cap = 16;
    blocked_op *blocked = PyMem_Malloc(sizeof(blocked_op) * (size_t)cap);
    if (!blocked)
        return PyErr_NoMemory();
    shm_hdr_lock();
    for (shm_off off = shm_hdr->waiters; off; off = SHM_PTR(shm_waiter, off)->next) {
        shm_waiter *w = SHM_PTR(shm_waiter, off);
        uint32_t op = OWNERS(w->op_number);
        if (w == me) {
            /* The caller (the root's agent, serving the question) is not
             * one of the processes it asks about. */
            idle += w->counted && !atomic_load(&w->inactive) && !w->waits_for_children;
            continue;
        }
        int is_idle = idle_but_counted(w, op);
        idle += is_idle;
        others += !w->dead;
        if (!w->dead && blocked_in_core(w, op)) {
            if (nblocked == cap) {
                blocked_op *more = PyMem_Realloc(blocked, sizeof(blocked_op) * (size_t)(cap * 2));
                if (!more) {
                    shm_lock_release(&shm_hdr->lock);
                    PyMem_Free(blocked);
                    return PyErr_NoMemory();
                }
                blocked = more;
                cap *= 2;
            }
            blocked[nblocked++] = (blocked_op){off, w->identity, op};
        }
        fingerprint = mix(fingerprint, off);
        fingerprint = mix(fingerprint, w->identity);
        fingerprint = mix(fingerprint, ((uint64_t)(uint32_t)OWNERS(w->pid) << 32) | op);
        fingerprint = mix(fingerprint, ((uint64_t)atomic_load(&w->remote_waits) << 32)
                                       | ((uint64_t)w->dead << 4) | ((uint64_t)w->counted << 3)
                                       | ((uint64_t)(atomic_load(&w->inactive) != 0) << 2)
                                       | ((uint64_t)(w->waits_for_children != 0) << 1)
                                       | (uint64_t)is_idle);
        fingerprint = mix(fingerprint, ((uint64_t)(uint32_t)w->credit << 32)
                                       | (uint32_t)w->lingered);
    }
    /* Work handed between the agent's threads and not taken yet: its taker
     * still looks idle. */
    int64_t active = atomic_load(&shm_hdr->n_active) + atomic_load(&shm_hdr->run_handoffs)
                     + atomic_load(&shm_hdr->run_blind);
    uint64_t sent = atomic_load(&shm_hdr->net_sent);
    uint64_t received = atomic_load(&shm_hdr->net_received);
    int64_t members = atomic_load(&shm_hdr->run_members);
    int had_members = atomic_load(&shm_hdr->run_had_members);
    shm_lock_release(&shm_hdr->lock);
    PyObject *packed = PyBytes_FromStringAndSize((const char *)blocked,
                                                 (Py_ssize_t)sizeof(blocked_op) * nblocked);
    PyMem_Free(blocked);
    if (!packed)
        return NULL;
    return Py_BuildValue("(LKKKLNLO)", (long long)(active - idle),
                         (unsigned long long)fingerprint, (unsigned long long)sent,
                         (unsigned long long)received, (long long)members, packed,
                         (long long)others, had_members ? Py_True : Py_False);
}

/* shm_break_run_deadlock(number, blocked) -> asked: every program of the run
 * is blocked for good (the run's deadlock `number`): end with DeadlockError
 * the waits of this one that a snapshot found blocked (`blocked`, from
 * shm_run_snapshot) and that are still in the same operation (the agent's
 * workers' too, which answer their parties elsewhere so; not its registry).
 * Each gives up by itself (shm_ask_to_stop): one that a commit claims first
 * goes on, as one that a later operation of its thread stands in for. */
static PyObject *
py_shm_break_run_deadlock(PyObject *Py_UNUSED(m), PyObject *args)
{
    unsigned long long number;
    Py_buffer view;
    if (!PyArg_ParseTuple(args, "Ky*:shm_break_run_deadlock", &number, &view))
        return NULL;
    if (view.len % (Py_ssize_t)sizeof(blocked_op) || shm_ensure() < 0) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_ValueError, "shm_break_run_deadlock: not a snapshot's blocked");
        PyBuffer_Release(&view);
        return NULL;
    }
    Py_ssize_t n_ops = view.len / (Py_ssize_t)sizeof(blocked_op);
    int64_t n = 0;
    shm_hdr_lock();
    for (shm_off off = shm_hdr->waiters; off; off = SHM_PTR(shm_waiter, off)->next) {
        shm_waiter *w = SHM_PTR(shm_waiter, off);
        uint32_t op = OWNERS(w->op_number);
        int listed = 0;
        for (Py_ssize_t i = 0; i < n_ops && !listed; i++) {
            blocked_op b;
            memcpy(&b, (const char *)view.buf + i * (Py_ssize_t)sizeof(blocked_op), sizeof(b));
            listed = b.record == off && b.identity == w->identity && b.op == op;
        }
        if (!listed || w->dead || w->service == SHM_SERVICE_REGISTRY || !blocked_in_core(w, op))
            continue;
        n++;
        shm_ask_to_stop(w, op);
    }
    shm_hdr->deadlock_generation++;
    shm_hdr->run_deadlock_generation = shm_hdr->deadlock_generation;
    shm_hdr->run_deadlock = number;
    /* Processes of other programs were blocked in it too: how many reports
     * make it whole is not known here. */
    shm_hdr->deadlock_woken = -1;
    shm_lock_release(&shm_hdr->lock);
    PyBuffer_Release(&view);
    return PyLong_FromLongLong((long long)n);
}

/* shm_run_handoff(delta): work is handed to another of the agent's threads
 * (+1) or taken there (-1). */
static PyObject *
py_shm_run_handoff(PyObject *Py_UNUSED(m), PyObject *arg)
{
    long long delta = PyLong_AsLongLong(arg);
    if ((delta == -1 && PyErr_Occurred()) || shm_ensure() < 0)
        return NULL;
    atomic_fetch_add(&shm_hdr->run_handoffs, delta);
    Py_RETURN_NONE;
}

/* shm_run_member(last_counts): a process of this program starts standing
 * for a node of the run (True), or stops: the node ended and sent its last
 * (sent, received), which join this program's counts so that every watch
 * of the run over this arena keeps them in its sums; or None: they are not
 * known, and this program is busy for good. */
static PyObject *
py_shm_run_member(PyObject *Py_UNUSED(m), PyObject *arg)
{
    unsigned long long sent = 0, received = 0;
    int joined = arg == Py_True, blind = arg == Py_None;
    if (!joined && !blind && !PyArg_ParseTuple(arg, "KK:shm_run_member", &sent, &received))
        return NULL;
    if (shm_ensure() < 0)
        return NULL;
    if (joined) {
        atomic_store(&shm_hdr->run_had_members, 1);
        atomic_fetch_add(&shm_hdr->run_members, 1);
        Py_RETURN_NONE;
    }
    if (blind)
        atomic_store(&shm_hdr->run_blind, 1);
    atomic_fetch_add(&shm_hdr->net_sent, sent);
    atomic_fetch_add(&shm_hdr->net_received, received);
    atomic_fetch_sub(&shm_hdr->run_members, 1);
    Py_RETURN_NONE;
}

/* shm_remote_wait(waiting): this thread starts (True) or stops (False)
 * waiting for another program's answer. */
static PyObject *
py_shm_remote_wait(PyObject *Py_UNUSED(m), PyObject *arg)
{
    int waiting = PyObject_IsTrue(arg);
    if (waiting < 0)
        return NULL;
    if (!waiting) {   /* (in a finally: never an error of its own) */
        shm_waiter *w = shm_existing_waiter();
        if (w)
            atomic_store(&w->remote_waiting, 0);
        Py_RETURN_NONE;
    }
    shm_waiter *w = shm_my_waiter();
    if (!w)
        return NULL;
    atomic_fetch_add_explicit(&w->remote_waits, 1, memory_order_relaxed);
    atomic_store(&w->remote_waiting, 1);
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
     "shm_run_snapshot(exclude_self) -> (busy, fingerprint, sent, received, members, "
     "blocked, others, had_members): this program as a deadlock across programs sees it."},
    {"shm_break_run_deadlock", py_shm_break_run_deadlock, METH_VARARGS,
     "shm_break_run_deadlock(number, blocked): every program of the run is blocked (its "
     "deadlock number): end with DeadlockError this one's channel waits that a snapshot "
     "found blocked and that still are."},
    {"shm_run_handoff", py_shm_run_handoff, METH_O,
     "shm_run_handoff(delta): work handed to another of the agent's threads (+1), or taken "
     "there (-1)."},
    {"shm_run_member", py_shm_run_member, METH_O,
     "shm_run_member(last_counts): this process stands for a node of the run (True), or "
     "no longer: the node's last (sent, received), or None if not known."},
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

/* vmread.c - big out-of-band buffers read from the writer's memory: the
 * reader's regions (a bounded per-process pool of huge-page memory), the copy
 * with process_vm_readv, and the acknowledgement between the two processes.
 * The protocol is stated in shared/vmread.h.
 *
 * Why: a buffer copied into the arena lands in shared memory, which gets
 * only 4 KiB pages here (shmem THP "never"), about 2.5 us each to create, so
 * every new 64 MiB block costs some 40 ms.  Private anonymous memory takes
 * 2 MiB pages (THP "madvise"), and a warm region from the pool takes none.
 */
#include "shared/vmread.h"

#include <errno.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

/* The pool keeps at most this many free regions and bytes; the rest go back
 * to the system at once. */
#define POOL_REGIONS 4
#define POOL_BYTES ((size_t)512 << 20)

/* ------------------------------------------------------------------ */
/* Regions                                                             */

typedef struct {
    char *base;
    size_t cap;
} region;

/* Process-wide, changed with the GIL held.  pool_pid: the process these
 * free regions belong to (a forked child gets copies it does not reuse). */
static region pool[POOL_REGIONS];
static int pool_n;
static size_t pool_bytes;
static pid_t pool_pid;
static Py_ssize_t regions_live;
static uint64_t remote_reads, remote_writes;

typedef struct {
    PyObject_HEAD
    char *base;
    size_t cap;
    Py_ssize_t len;         /* bytes exported */
    pid_t owner;            /* the process that mapped it */
} VmRegionObject;

static PyTypeObject *VmRegionType;

/* A forked child drops the free regions it inherited (its copies). */
static void
pool_adopt(void)
{
    if (pool_pid == shm_my_pid)
        return;
    for (int i = 0; i < pool_n; i++)
        munmap(pool[i].base, pool[i].cap);
    pool_n = 0;
    pool_bytes = 0;
    regions_live = 0;
    pool_pid = shm_my_pid;
}

/* A region of at least len bytes (2 MiB aligned, advised huge pages): a free
 * one of the pool if one fits without wasting more than half, else new.
 * NULL base with MemoryError. */
static region
region_get(size_t len)
{
    pool_adopt();
    size_t cap = (len + SHM_HUGE_PAGE - 1) & ~(SHM_HUGE_PAGE - 1);
    int best = -1;
    for (int i = 0; i < pool_n; i++)
        if (pool[i].cap >= cap && pool[i].cap - cap <= cap / 2 &&
            (best < 0 || pool[i].cap < pool[best].cap))
            best = i;
    if (best >= 0) {
        region r = pool[best];
        pool[best] = pool[--pool_n];
        pool_bytes -= r.cap;
        return r;
    }
    region r = {NULL, cap};
    char *p = mmap(NULL, cap + SHM_HUGE_PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                   -1, 0);
    if (p == MAP_FAILED) {
        PyErr_NoMemory();
        return r;
    }
    char *aligned = (char *)(((uintptr_t)p + SHM_HUGE_PAGE - 1) & ~(SHM_HUGE_PAGE - 1));
    if (aligned > p)
        munmap(p, (size_t)(aligned - p));
    munmap(aligned + cap, (size_t)(p + SHM_HUGE_PAGE - aligned));
    /* Refused without THP: 4 KiB pages, as before. */
    (void)madvise(aligned, cap, MADV_HUGEPAGE);
    r.base = aligned;
    return r;
}

/* Back to the pool (warm: its pages stay), or to the system beyond the
 * pool's bounds or in a process that did not map it. */
static void
region_put(region r, pid_t owner)
{
    if (owner == shm_my_pid && pool_pid == shm_my_pid && pool_n < POOL_REGIONS &&
        pool_bytes + r.cap <= POOL_BYTES) {
        pool[pool_n++] = r;
        pool_bytes += r.cap;
        return;
    }
    munmap(r.base, r.cap);
}

static int
region_getbuffer(VmRegionObject *self, Py_buffer *view, int flags)
{
    return PyBuffer_FillInfo(view, (PyObject *)self, self->base, self->len, 0, flags);
}

static void
region_dealloc(VmRegionObject *self)
{
    if (self->base) {
        region r = {self->base, self->cap};
        if (self->owner == shm_my_pid)
            regions_live--;
        region_put(r, self->owner);
    }
    PyTypeObject *tp = Py_TYPE(self);
    tp->tp_free((PyObject *)self);
    Py_DECREF(tp);
}

/* New reference: a region object exporting len bytes, or NULL. */
static PyObject *
region_new(size_t len)
{
    VmRegionObject *self = PyObject_New(VmRegionObject, VmRegionType);
    if (!self)
        return NULL;
    self->base = NULL;
    self->owner = shm_my_pid;
    self->len = (Py_ssize_t)len;
    region r = region_get(len);
    if (!r.base) {
        Py_DECREF(self);
        return NULL;
    }
    self->base = r.base;
    self->cap = r.cap;
    regions_live++;
    return (PyObject *)self;
}

static PyType_Slot region_slots[] = {
    {Py_tp_doc, "Private memory a big received buffer was copied into from the writer's "
                "memory;\nback to this process's pool when the last view of it is gone."},
    {Py_tp_dealloc, region_dealloc},
    {Py_bf_getbuffer, region_getbuffer},
    {0, NULL}
};

/* Made only by the decoder, never by calling the type. */
static PyType_Spec region_spec = {
    .name = "csp_ext.VmRegion",
    .basicsize = sizeof(VmRegionObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE | Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = region_slots,
};

void
vm_hold_release(vm_hold *h)
{
    for (Py_ssize_t i = 0; i < h->nviews; i++)
        PyBuffer_Release(&h->views[i]);
    PyMem_Free(h->views);
    Py_CLEAR(h->stream);
    h->views = NULL;
    h->nviews = 0;
    h->w = NULL;
}

/* ------------------------------------------------------------------ */
/* The writer's side                                                   */

int
vm_possible(void)
{
    return !atomic_load_explicit(&shm_hdr->vm_refused, memory_order_relaxed);
}

/* The pid this process last named its ptracer in (0: not yet). */
static pid_t ptracer_named_in;

uint32_t
vm_begin_write(shm_waiter *w)
{
    if (ptracer_named_in != shm_my_pid) {
        ptracer_named_in = shm_my_pid;
        /* Yama's ptrace_scope 1 (Ubuntu's default) lets a process read only
         * its descendants' memory: name the run's first process our ptracer,
         * which lets it and every process it started read ours.  (Not
         * inherited through fork: each process of the run does it.  The first
         * process names itself: its children are not its ancestors, and Yama
         * counts the named process as one of its own descendants.) */
        if (access("/proc/sys/kernel/yama", F_OK) == 0 && shm_hdr->root_pid > 0)
            (void)prctl(PR_SET_PTRACER, (unsigned long)shm_hdr->root_pid, 0, 0, 0);
    }
    remote_writes++;
    w->vm_seq = (atomic_fetch_add(&shm_hdr->vm_last_seq, 1) + 1) & 0x1fffffff;
    atomic_store(&w->vm_reader, 0);
    return w->vm_seq;
}

void
vm_answer(shm_waiter *w, uint32_t seq, uint32_t answer)
{
    atomic_store(&w->vm_ack, VM_ACK(seq, answer));
    csp_futex_wake_op((void *)&w->vm_ack, 1);
}

/* 1 if `rec` is in the registry of waiter records (hdr lock held): not
 * reaped, so not freed. */
static int
registered(shm_off rec)
{
    for (shm_off off = shm_hdr->waiters; off; off = SHM_PTR(shm_waiter, off)->next)
        if (off == rec)
            return 1;
    return 0;
}

int
vm_answer_writer(const vm_origin *o, uint32_t answer, shm_off *handoff)
{
    shm_waiter *w = SHM_PTR(shm_waiter, o->writer);
    int answered = 0;
    shm_hdr_lock();   /* a record leaves the registry under it before it is freed */
    if (registered(o->writer)) {
        /* The ack before the seq: a seq still ours means no later write's
         * answer can be in v, and the exchange fails if one came since. */
        uint32_t v = atomic_load(&w->vm_ack);
        if (!w->dead && w->pid == o->pid && atomic_load(&w->vm_seq) == o->seq) {
            if (handoff)
                *handoff = atomic_exchange(&w->vm_handoff, 0);
            answered = atomic_compare_exchange_strong(&w->vm_ack, &v, VM_ACK(o->seq, answer));
        }
    }
    shm_lock_release(&shm_hdr->lock);
    if (answered)
        csp_futex_wake_op((void *)&w->vm_ack, 1);
    return answered;
}

uint32_t
vm_wait_answer(shm_waiter *w, uint32_t seq, uint32_t answers, _Atomic int32_t *peer)
{
    uint32_t got = VM_GONE;
    /* No PyErr_CheckSignals here: the communication has committed, so the
     * handlers run once the operation returns (its message neither lost nor
     * sent twice).  The wait counts as running for deadlock accounting: the
     * peer is busy copying, not blocked.  The peer must be awake to copy:
     * a wake this thread holds (shm_hold_wakes) goes first. */
    shm_wakes_now();
    Py_BEGIN_ALLOW_THREADS
    for (;;) {
        uint32_t v = atomic_load(&w->vm_ack);
        if ((v >> 3) == (seq & 0x1fffffff) && (answers & (1u << (v & 7)))) {
            got = v & 7;
            break;
        }
        long r = csp_futex_wait_op((void *)&w->vm_ack, (int)v, csp_monotonic() + 0.05, 1);
        if (r == -ETIMEDOUT && shm_process_gone(atomic_load(peer)))
            break;
    }
    Py_END_ALLOW_THREADS
    return got;
}

/* ------------------------------------------------------------------ */
/* The reader's side                                                   */

enum { COPY_DONE, COPY_GONE, COPY_REFUSED, COPY_FAULT, COPY_UNREADABLE, COPY_FAILED };

/* Copy len bytes at remote address addr of process pid to to, looping on
 * partial reads (runs without the GIL; must not touch PyObject).  *err: errno. */
static int
copy_span(pid_t pid, char *to, uint64_t addr, uint64_t len, int exit_midway, int *err)
{
    uint64_t done = 0;
    while (done < len) {
        struct iovec local = {to + done, (size_t)(len - done)};
        struct iovec remote = {(void *)(uintptr_t)(addr + done), (size_t)(len - done)};
        if (exit_midway)
            local.iov_len = remote.iov_len = (size_t)(len - done) / 2 + 1;
        ssize_t n = process_vm_readv(pid, &local, 1, &remote, 1, 0);
        if (n <= 0) {
            *err = n < 0 ? errno : EFAULT;
            if (*err == EINTR)
                continue;
            if (*err == ESRCH)
                return COPY_GONE;
            /* Not readable there (the call holds the address space, so
             * not an exit under way): see vm_copy_in. */
            if (*err == EFAULT)
                return COPY_FAULT;
            if (*err == EPERM || *err == EACCES || *err == ENOSYS)
                return COPY_REFUSED;
            return COPY_FAILED;
        }
        done += (uint64_t)n;
        if (exit_midway)
            kill(getpid(), SIGKILL);   /* test fault site: a reader killed mid-copy */
    }
    return COPY_DONE;
}

int
vm_copy_in(const vm_origin *o, const vm_span *spans, Py_ssize_t n, PyObject **regions)
{
    for (Py_ssize_t i = 0; i < n; i++)
        regions[i] = NULL;
    shm_waiter *ww = SHM_PTR(shm_waiter, o->writer);
    int refuse = csp_fail_here(CSP_FAIL_VM_REFUSE);
    int exit_midway = csp_fail_here(CSP_FAIL_VM_READER_EXIT);
    int delay = csp_fail_here(CSP_FAIL_VM_READ_DELAY);
    int status = COPY_DONE, err = 0;
    for (Py_ssize_t i = 0; i < n; i++)
        if (!(regions[i] = region_new((size_t)spans[i].len)))
            goto fail;
    Py_BEGIN_ALLOW_THREADS
    if (delay) {
        struct timespec pause = {0, 300 * 1000 * 1000};
        nanosleep(&pause, NULL);
    }
    /* A record that no longer waits for this write: its writer is gone
     * (the record reaped, perhaps reused by another thread). */
    if (ww->pid != o->pid || ww->vm_seq != o->seq)
        status = COPY_GONE;
    else if (refuse) {
        status = COPY_REFUSED;
        err = EPERM;
    }
    for (Py_ssize_t i = 0; i < n && status == COPY_DONE; i++)
        status = copy_span(o->pid, ((VmRegionObject *)regions[i])->base, spans[i].addr,
                           spans[i].len, exit_midway, &err);
    /* A fault in a process that is no longer the writer (ended, its pid
     * perhaps another's now) is the writer gone.  In the writer itself it
     * is a buffer we cannot read there (a device mapping, or a file
     * truncated under its mapping): the writer is asked for an arena copy,
     * which it makes, or faults making as the arena path always did (it
     * must not wait for ever). */
    if (status == COPY_FAULT)
        status = ww->pid == o->pid && ww->vm_seq == o->seq && !shm_process_gone(o->pid)
                     ? COPY_UNREADABLE
                     : COPY_GONE;
    Py_END_ALLOW_THREADS
    if (status == COPY_DONE) {
        remote_reads += (uint64_t)n;
        return VM_COPIED;
    }
    for (Py_ssize_t i = 0; i < n; i++)
        Py_CLEAR(regions[i]);
    if (status == COPY_GONE)
        return VM_GONE;
    if (status == COPY_REFUSED) {
        atomic_store(&shm_hdr->vm_refused, 1);
        return VM_REFUSED;
    }
    if (status == COPY_UNREADABLE)
        return VM_REFUSED;   /* this buffer only: later writes still offer theirs */
    errno = err;
    PyErr_SetFromErrno(PyExc_OSError);
    return -1;
fail:
    for (Py_ssize_t i = 0; i < n; i++)
        Py_CLEAR(regions[i]);
    return -1;
}

/* ------------------------------------------------------------------ */

/* _shm_vm_stats() -> dict: this process's regions and remote buffers. */
static PyObject *
vm_stats(PyObject *Py_UNUSED(m), PyObject *Py_UNUSED(ignored))
{
    int same = pool_pid == shm_my_pid;
    return Py_BuildValue("{snsnsnsKsKsi}", "regions_live", same ? regions_live : (Py_ssize_t)0,
                         "regions_free", (Py_ssize_t)(same ? pool_n : 0), "free_bytes",
                         (Py_ssize_t)(same ? pool_bytes : 0), "remote_reads",
                         (unsigned long long)remote_reads, "remote_writes",
                         (unsigned long long)remote_writes, "refused",
                         shm_hdr ? (int)atomic_load(&shm_hdr->vm_refused) : 0);
}

static PyMethodDef vmread_methods[] = {
    {"_shm_vm_stats", vm_stats, METH_NOARGS,
     "This process's regions (live, free, free bytes) and its buffers read from or left in\n"
     "a writer's memory (tests)."},
    {NULL}
};

int
csp_shm_vmread_init_module(PyObject *m)
{
    if (PyModule_AddFunctions(m, vmread_methods) < 0)
        return -1;
    VmRegionType = csp_add_type(m, &region_spec, "VmRegion");
    return VmRegionType ? 0 : -1;
}

/* arena.c - the shared arena of the processes backend: mapping and
 * allocator (its lock: shared/lock.c).  It knows nothing of channels or
 * waiters; the header only keeps room for the waiter registry
 * (wait/process.c).
 */
#include "shared/shm.h"

#include <errno.h>
#include <limits.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <stdio.h>
#include <time.h>

/* The arena's mapping in this process: process-wide by nature.  Set once
 * (shm_ensure, shm_attach) with the GIL held, read-only after; shm_my_pid is
 * also refreshed by the atfork child handler, before any other thread of the
 * child exists. */
char *shm_base;
shm_header *shm_hdr;
static int shm_fd = -1;
static uint64_t shm_reserved;
pid_t shm_my_pid;                 /* getpid(), refreshed in a forked child */

#define MIN_CLASS_SHIFT 6          /* smallest block: 64 bytes with header */
#define BLOCK_HEADER 16
#define INITIAL_FILE_SIZE (4u << 20)
#define PREFAULT_MIN (1u << 20)    /* populate big blocks in one call, not page by page */
#define CACHE_BIG_FREE (512ull << 20) /* freed big blocks kept warm up to this much */
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

typedef struct {
    uint64_t klass;                /* size class (low 8 bits); for big blocks also
                                    * which process last populated how many MiB of
                                    * it: bits 8-31 MiB, bits 32-63 pid */
    shm_off next;                  /* free list link while free */
} block_header;

#define KLASS(h) ((h)->klass & 0xff)

/* ------------------------------------------------------------------ */
/* Arena                                                               */

static void
after_fork_in_child(void)
{
    shm_my_pid = getpid();
    shm_lock_forget_owner();
}

/* Inode of this process's PID namespace, or 0 if /proc cannot say. */
static uint64_t
pid_namespace(void)
{
    struct stat st;
    return stat("/proc/self/ns/pid", &st) == 0 ? (uint64_t)st.st_ino : 0;
}

/* Once per process: 0, or -1 with an exception.  Called with the GIL held,
 * which guards `done`. */
static int
register_atfork(void)
{
    static int done;
    if (done)
        return 0;
    int r = pthread_atfork(NULL, NULL, after_fork_in_child);
    if (r) {
        errno = r;
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    done = 1;
    return 0;
}

/* The arena lock (allocator and waiter registry), made safe for this
 * process if its previous owner died holding it (see hdr_recover). */
static void hdr_recover(void);

void
shm_hdr_lock(void)
{
    if (shm_lock_acquire(&shm_hdr->lock) == 1)
        hdr_recover();
}

int
shm_ensure(void)
{
    if (shm_base)
        return 0;
    int fd = memfd_create("pycsp-arena", MFD_CLOEXEC);
    if (fd < 0) {
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    if (ftruncate(fd, INITIAL_FILE_SIZE) < 0) {
        PyErr_SetFromErrno(PyExc_OSError);
        close(fd);
        return -1;
    }
    /* Reserve address space once; the file grows underneath it. */
    uint64_t reserve = (uint64_t)1 << 40;
    void *base = MAP_FAILED;
    while (reserve >= ((uint64_t)1 << 32)) {
        base = mmap(NULL, reserve, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, fd, 0);
        if (base != MAP_FAILED)
            break;
        reserve >>= 1;
    }
    if (base == MAP_FAILED) {
        PyErr_SetFromErrno(PyExc_OSError);
        close(fd);
        return -1;
    }
    /* Published only once complete: a failure leaves no arena behind. */
    shm_header *hdr = (shm_header *)base;
    memset(hdr, 0, sizeof(*hdr));
    hdr->magic = SHM_MAGIC;
    hdr->version = SHM_VERSION;
    hdr->header_size = sizeof(shm_header);
    hdr->file_size = INITIAL_FILE_SIZE;
    hdr->reserved = reserve;
    hdr->bump = (sizeof(shm_header) + 63) & ~(uint64_t)63;
    hdr->pid_namespace = pid_namespace();
    hdr->root_pid = (int32_t)getpid();
    atomic_store(&hdr->n_active, 0);   /* each waiter record counts itself */
    if (shm_lock_init(&hdr->lock) < 0) {
        PyErr_SetFromErrno(PyExc_OSError);
        goto fail;
    }
    if (register_atfork() < 0) {
        shm_lock_destroy(&hdr->lock);
        goto fail;
    }
    shm_fd = fd;
    shm_reserved = reserve;
    shm_base = base;
    shm_hdr = hdr;
    shm_my_pid = getpid();
    return 0;
fail:
    munmap(base, reserve);
    close(fd);
    return -1;
}

static int
size_class(uint64_t total)
{
    int k = 0;
    uint64_t size = (uint64_t)1 << MIN_CLASS_SHIFT;
    while (size < total) {
        size <<= 1;
        k++;
    }
    return k;
}

shm_off
shm_alloc(uint64_t size)
{
    if (size > shm_reserved / 2) {
        PyErr_Format(PyExc_MemoryError, "pycsp: a %llu-byte message does not fit the arena",
                     (unsigned long long)size);
        return 0;
    }
    int k = size_class(size + BLOCK_HEADER);
    if (k >= SHM_NCLASSES) {
        PyErr_NoMemory();
        return 0;
    }
    uint64_t block = (uint64_t)1 << (k + MIN_CLASS_SHIFT);
    shm_hdr_lock();  /* allocator state is kept consistent at every store */
    shm_off off = shm_hdr->free_lists[k];
    if (off) {
        shm_hdr->free_lists[k] = SHM_PTR(block_header, off)->next;
        if (block >= PREFAULT_MIN)
            shm_hdr->warm_free_bytes -= block < shm_hdr->warm_free_bytes ? block
                                                                         : shm_hdr->warm_free_bytes;
    }
    else {
        /* Align big blocks to pages so that freeing can punch holes. */
        uint64_t align = block >= 4096 ? 4096 : 64;
        off = (shm_hdr->bump + align - 1) & ~(align - 1);
        if (off + block > shm_hdr->file_size) {
            uint64_t want = shm_hdr->file_size;
            while (want < off + block)
                want *= 2;
            if (want > shm_reserved)
                want = off + block;
            if (want > shm_reserved || ftruncate(shm_fd, (off_t)want) < 0) {
                shm_lock_release(&shm_hdr->lock);
                PyErr_Format(PyExc_MemoryError,
                             "pycsp: the shared arena cannot grow to %llu bytes",
                             (unsigned long long)want);
                return 0;
            }
            shm_hdr->file_size = want;
            atomic_signal_fence(memory_order_release);  /* file_size before bump */
        }
        shm_hdr->bump = off + block;
    }
    block_header *h = SHM_PTR(block_header, off);
    uint64_t populated = h->klass >> 8;   /* of the block's previous use */
    h->klass = (uint64_t)k;
    h->next = 0;
    shm_hdr->bytes_in_use += block;
    shm_hdr->blocks_in_use++;
    shm_lock_release(&shm_hdr->lock);
    if (block >= PREFAULT_MIN) {
        /* One call populates the pages the caller will write (a demand fault
         * per 4 KiB page costs far more), unless this process did so for this
         * block already; the rest of the power-of-two block stays untouched. */
        uint64_t mib = (size + BLOCK_HEADER + (1u << 20) - 1) >> 20;
        if ((pid_t)(populated >> 24) == shm_my_pid && (populated & 0xffffff) >= mib) {
            h->klass |= populated << 8;
        }
        else {
            uint64_t used = (size + BLOCK_HEADER + 4095) & ~(uint64_t)4095;
            /* Pages no process has written yet (a block new from the bump or
             * given back by a hole): fallocate makes them all in one pass of the
             * file, cheaper than the per-page path of the populate below (about
             * 37 against 46 ms for 64 MiB on the test machine), which then only
             * maps them.  A refusal (EOPNOTSUPP) leaves that work to populate. */
            if (!populated)
                (void)fallocate(shm_fd, FALLOC_FL_KEEP_SIZE, (off_t)off, (off_t)used);
            madvise(shm_base + off, (size_t)used, MADV_POPULATE_WRITE);
            if (mib <= 0xffffff)
                h->klass |= (((uint64_t)(uint32_t)shm_my_pid << 24) | mib) << 8;
        }
    }
    return off + BLOCK_HEADER;
}

uint64_t
shm_block_size(shm_off off)
{
    block_header *h = SHM_PTR(block_header, off - BLOCK_HEADER);
    return ((uint64_t)1 << (KLASS(h) + MIN_CLASS_SHIFT)) - BLOCK_HEADER;
}

void
shm_free(shm_off off)
{
    if (!off)
        return;
    shm_off boff = off - BLOCK_HEADER;
    block_header *h = SHM_PTR(block_header, boff);
    uint64_t k = KLASS(h);
    uint64_t block = (uint64_t)1 << (k + MIN_CLASS_SHIFT);
    shm_hdr_lock();
    if (block >= PREFAULT_MIN) {
        if (shm_hdr->warm_free_bytes + block > CACHE_BIG_FREE) {
            /* Enough warm memory cached: give these pages back to the OS
             * (the block stays valid and reads as zeros). */
            fallocate(shm_fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)(boff + 4096),
                      (off_t)(block - 4096));
            h->klass = k;   /* nobody has its pages mapped any more */
        }
        else {
            shm_hdr->warm_free_bytes += block;
        }
    }
    h->next = shm_hdr->free_lists[k];
    atomic_signal_fence(memory_order_release);  /* the link before the head */
    shm_hdr->free_lists[k] = boff;
    shm_hdr->bytes_in_use -= block;
    shm_hdr->blocks_in_use--;
    shm_lock_release(&shm_hdr->lock);
}

/* A link of a free list of class k, or of the waiter registry (k < 0), that
 * leads to a block of the arena (only reads memory inside the file). */
static int
link_ok(shm_off boff, int k, uint64_t first, uint64_t end)
{
    if (boff < first || boff % 64 || boff + (1u << MIN_CLASS_SHIFT) > end)
        return 0;
    uint64_t kk = KLASS(SHM_PTR(block_header, boff));
    if (k >= 0 && kk != (uint64_t)k)
        return 0;
    return kk < SHM_NCLASSES && boff + ((uint64_t)1 << (kk + MIN_CLASS_SHIFT)) <= end;
}

/* The previous owner of the arena lock died holding it.  Each update under
 * the lock is ordered so that every store leaves the free lists and the
 * registry well formed: a dead owner leaves at worst a leaked block or
 * record, byte counts one block off, or file_size short of the file's size.
 * That last is repaired here; the lists are walked (bounded) and cut at the
 * first link that is not a block of the arena, so that a corrupt link costs
 * a leak instead of a wild write. */
static void
hdr_recover(void)
{
    struct stat st;
    if (fstat(shm_fd, &st) == 0 && (uint64_t)st.st_size > shm_hdr->file_size &&
        (uint64_t)st.st_size <= shm_reserved)
        shm_hdr->file_size = (uint64_t)st.st_size;
    if (shm_hdr->bump > shm_hdr->file_size)
        shm_hdr->bump = shm_hdr->file_size;
    uint64_t first = (sizeof(shm_header) + 63) & ~(uint64_t)63, end = shm_hdr->bump;
    uint64_t max_steps = end / 64;   /* no list is longer: a cycle ends the walk */
    for (int k = 0; k <= SHM_NCLASSES; k++) {
        shm_off *link = k < SHM_NCLASSES ? &shm_hdr->free_lists[k] : &shm_hdr->waiters;
        int klass = k < SHM_NCLASSES ? k : -1;
        int body = k < SHM_NCLASSES ? 0 : BLOCK_HEADER;  /* records: offsets past the header */
        for (uint64_t n = 0; *link; n++) {
            if (n > max_steps || *link < (shm_off)body || !link_ok(*link - body, klass, first, end)) {
                *link = 0;
                break;
            }
            link = k < SHM_NCLASSES ? &SHM_PTR(block_header, *link)->next
                                    : &SHM_PTR(shm_waiter, *link)->next;
        }
    }
}

/* shm_arena_fd() -> fd: the arena's memfd (made if need be), for a child
 * started by exec to map (see shm_attach). */
static PyObject *
py_shm_arena_fd(PyObject *Py_UNUSED(m), PyObject *Py_UNUSED(ignored))
{
    if (shm_ensure() < 0)
        return NULL;
    return PyLong_FromLong(shm_fd);
}

/* shm_attach(fd): in a child started by exec ("spawn"), map the parent's
 * arena from the memfd it inherited.  Offsets, not pointers, live in the
 * arena, so it may land at any address; it must get the whole reservation. */
static PyObject *
py_shm_attach(PyObject *Py_UNUSED(m), PyObject *arg)
{
    long fd = PyLong_AsLong(arg);
    if (fd == -1 && PyErr_Occurred())
        return NULL;
    if (fd < 0 || fd > INT_MAX) {
        PyErr_Format(PyExc_ValueError, "shm_attach: %ld is not a file descriptor", fd);
        return NULL;
    }
    if (shm_base) {
        PyErr_SetString(PyExc_RuntimeError, "shm_attach: this process already has an arena");
        return NULL;
    }
    shm_header probe;
    if (pread((int)fd, &probe, sizeof(probe), 0) != (ssize_t)sizeof(probe))
        return PyErr_SetFromErrno(PyExc_OSError);
    if (probe.magic != SHM_MAGIC || probe.version != SHM_VERSION ||
        probe.header_size != sizeof(shm_header) || probe.reserved < ((uint64_t)1 << 32) ||
        probe.reserved > ((uint64_t)1 << 40) || probe.file_size > probe.reserved) {
        PyErr_SetString(PyExc_ValueError,
                        "shm_attach: not a pycsp arena of this version of csp_ext");
        return NULL;
    }
    uint64_t ns = pid_namespace();
    if (probe.pid_namespace && ns && probe.pid_namespace != ns) {
        PyErr_SetString(PyExc_RuntimeError,
                        "shm_attach: this process is in another PID namespace than the program "
                        "whose channels it would share (pycsp.processes names processes and "
                        "threads by id: they must all see the same ids)");
        return NULL;
    }
    void *base = mmap(NULL, probe.reserved, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE,
                      (int)fd, 0);
    if (base == MAP_FAILED)
        return PyErr_SetFromErrno(PyExc_OSError);
    if (register_atfork() < 0) {
        munmap(base, probe.reserved);
        return NULL;
    }
    /* Inherited through exec on purpose; not by this process's own children. */
    int flags = fcntl((int)fd, F_GETFD);
    if (flags >= 0)
        fcntl((int)fd, F_SETFD, flags | FD_CLOEXEC);
    shm_fd = (int)fd;
    shm_reserved = probe.reserved;
    shm_base = base;
    shm_hdr = (shm_header *)base;
    shm_my_pid = getpid();
    Py_RETURN_NONE;
}

/* _shm_hold_arena_lock(seconds, fd): test only.  Take the arena lock, write
 * one byte to `fd`, sleep `seconds` with the GIL released, write another
 * byte, give the lock back: whoever took the lock before that second byte
 * did not wait for this owner. */
static PyObject *
py_shm_hold_arena_lock(PyObject *Py_UNUSED(m), PyObject *args)
{
    double seconds;
    int fd;
    if (!PyArg_ParseTuple(args, "di", &seconds, &fd))
        return NULL;
    if (shm_ensure() < 0)
        return NULL;
    ssize_t n;
    Py_BEGIN_ALLOW_THREADS
    shm_hdr_lock();
    n = write(fd, "x", 1);
    struct timespec ts = {(time_t)seconds, (long)((seconds - (double)(time_t)seconds) * 1e9)};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
    if (n == 1)
        n = write(fd, "x", 1);
    shm_lock_release(&shm_hdr->lock);
    Py_END_ALLOW_THREADS
    if (n != 1)
        return PyErr_SetFromErrno(PyExc_OSError);
    Py_RETURN_NONE;
}

/* _shm_forge_arena_lock(tid, starttime): test only.  Make the (free) arena
 * lock look held by thread `tid` started at `starttime` (a thread that never
 * gives it back). */
static PyObject *
py_shm_forge_arena_lock(PyObject *Py_UNUSED(m), PyObject *args)
{
    int tid;
    unsigned int starttime;
    if (!PyArg_ParseTuple(args, "iI", &tid, &starttime))
        return NULL;
    if (shm_ensure() < 0)
        return NULL;
    atomic_store(&shm_hdr->lock.word, ((uint64_t)starttime << 32) | (uint32_t)tid);
    Py_RETURN_NONE;
}

static PyMethodDef arena_methods[] = {
    {"_shm_forge_arena_lock", py_shm_forge_arena_lock, METH_VARARGS,
     "Test only: make the arena lock look held by thread tid started at starttime."},
    {"_shm_hold_arena_lock", py_shm_hold_arena_lock, METH_VARARGS,
     "Test only: hold the arena lock for a while, then write a byte to fd and release it."},
    {"shm_arena_fd", py_shm_arena_fd, METH_NOARGS, "The arena's memfd (for a child started by exec)."},
    {"shm_attach", py_shm_attach, METH_O, "In a child started by exec: map the arena from its memfd."},
    {NULL}
};

int
csp_shm_arena_init_module(PyObject *m)
{
    return PyModule_AddFunctions(m, arena_methods);
}

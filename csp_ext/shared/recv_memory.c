/* recv_memory.c - warm memory for received big bytes and bytearrays.
 *
 * A big bytes message arrives as a new bytes object: CPython asks malloc for
 * its memory, and glibc maps fresh pages for it above 32 MiB (its mmap
 * threshold stops rising there), which the kernel clears before the copy
 * fills them.  For a 64 MiB message the clearing costs more than the copy
 * (perf, the reader of a bytes-64M payload: clear_page_erms 24% of its
 * samples, the copy 19%).  A reader that drops each message before the next
 * one arrives could reuse the same memory, if someone kept it.
 *
 * So the raw domain's allocator is wrapped, once the first big message is
 * decoded.  While message.c decodes one (csp_recv_memory_decoding), a
 * request of at least CSP_RECV_MEMORY_MIN gets a region kept from an earlier big
 * message (at least the size asked for, at most twice it) or a new one; a
 * region freed later goes back to the cache (at most MAX_CACHED regions,
 * MAX_CACHED_BYTES in all), else to the allocator we wrap.  Every other
 * request goes straight to the allocator we wrap.
 *
 * A region is an ordinary allocation of the wrapped allocator, so whoever
 * frees it after our wrapper is gone (tracemalloc.stop() restores the
 * allocator it found when it started) frees it correctly; the regions then
 * cached stay allocated (at most MAX_CACHED_BYTES).  Regions handed out are
 * recognised by address in a small table of MAX_OUT slots; with all slots
 * taken, a big message gets ordinary memory.
 *
 * The raw allocator runs without the GIL, in any thread: the table is read
 * with atomics and changed, like the cache, under `lock`.  The cache is
 * emptied before a fork: a child would share its pages copy-on-write with
 * its parent, and the first one to write them would pay a copy of each.
 */
#include "shared/shm.h"

#include <pthread.h>
#include <string.h>

#define MAX_CACHED 2
#define MAX_CACHED_BYTES ((size_t)1 << 30)
#define MAX_OUT 16

_Thread_local int csp_recv_memory_decoding;

typedef struct {
    void *p;
    size_t size;
} region;

static PyMemAllocatorEx wrapped;
static int installed;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static _Atomic(void *) out[MAX_OUT];     /* regions handed out */
static size_t out_size[MAX_OUT];
static _Atomic int nout;
static region cached[MAX_CACHED];
static int ncached;
static size_t cached_bytes;
static uint64_t n_reused, n_made, n_dropped;    /* counts for the tests */

/* Slot of p among the regions handed out, or -1. */
static int
find_out(const void *p)
{
    if (!atomic_load_explicit(&nout, memory_order_acquire))
        return -1;
    for (int i = 0; i < MAX_OUT; i++)
        if (atomic_load_explicit(&out[i], memory_order_relaxed) == p)
            return i;
    return -1;
}

/* A region of at least `size` bytes, noted as handed out; NULL if every slot
 * is taken or the wrapped allocator has none. */
static void *
take_region(size_t size)
{
    pthread_mutex_lock(&lock);
    int slot = -1;
    for (int i = 0; i < MAX_OUT && slot < 0; i++)
        if (!atomic_load_explicit(&out[i], memory_order_relaxed))
            slot = i;
    void *p = NULL;
    size_t got = 0;
    if (slot >= 0) {
        for (int i = 0; i < ncached; i++) {
            if (cached[i].size >= size && cached[i].size / 2 <= size) {
                p = cached[i].p;
                got = cached[i].size;
                cached_bytes -= got;
                cached[i] = cached[--ncached];
                n_reused++;
                break;
            }
        }
        if (!p && (p = wrapped.malloc(wrapped.ctx, size))) {
            got = size;
            n_made++;
        }
        if (p) {
            out_size[slot] = got;
            atomic_store_explicit(&out[slot], p, memory_order_relaxed);
            atomic_fetch_add_explicit(&nout, 1, memory_order_release);
        }
    }
    pthread_mutex_unlock(&lock);
    return p;
}

/* Region `slot` comes back: into the cache if it has room, else freed. */
static void
give_back(int slot)
{
    pthread_mutex_lock(&lock);
    region r = {atomic_load_explicit(&out[slot], memory_order_relaxed), out_size[slot]};
    atomic_store_explicit(&out[slot], NULL, memory_order_relaxed);
    atomic_fetch_sub_explicit(&nout, 1, memory_order_relaxed);
    int keep = ncached < MAX_CACHED && cached_bytes + r.size <= MAX_CACHED_BYTES;
    if (keep) {
        cached[ncached++] = r;
        cached_bytes += r.size;
    }
    else {
        n_dropped++;
    }
    pthread_mutex_unlock(&lock);
    if (!keep)
        wrapped.free(wrapped.ctx, r.p);
}

static void *
recv_malloc(void *ctx, size_t size)
{
    (void)ctx;
    if (csp_recv_memory_decoding && size >= CSP_RECV_MEMORY_MIN) {
        void *p = take_region(size);
        if (p)
            return p;
    }
    return wrapped.malloc(wrapped.ctx, size);
}

static void *
recv_calloc(void *ctx, size_t nelem, size_t elsize)
{
    (void)ctx;
    return wrapped.calloc(wrapped.ctx, nelem, elsize);
}

static void *
recv_realloc(void *ctx, void *ptr, size_t size)
{
    (void)ctx;
    int slot = ptr ? find_out(ptr) : -1;
    if (slot < 0)
        return wrapped.realloc(wrapped.ctx, ptr, size);
    size_t have = out_size[slot];
    /* Keep the region for a small change; a much smaller object should not
     * hold a big region, and a bigger one needs another allocation anyway. */
    if (size <= have && size > have / 2)
        return ptr;
    void *moved = wrapped.malloc(wrapped.ctx, size ? size : 1);
    if (!moved)
        return NULL;
    memcpy(moved, ptr, size < have ? size : have);
    give_back(slot);
    return moved;
}

static void
recv_free(void *ctx, void *ptr)
{
    (void)ctx;
    int slot = ptr ? find_out(ptr) : -1;
    if (slot >= 0)
        give_back(slot);
    else
        wrapped.free(wrapped.ctx, ptr);
}

static void
before_fork(void)
{
    pthread_mutex_lock(&lock);
    for (int i = 0; i < ncached; i++)
        wrapped.free(wrapped.ctx, cached[i].p);
    ncached = 0;
    cached_bytes = 0;
}

static void
after_fork(void)
{
    pthread_mutex_unlock(&lock);
}

void
csp_recv_memory_install(void)
{
    if (installed)
        return;
    if (pthread_atfork(before_fork, after_fork, after_fork) != 0)
        return;  /* then big messages get ordinary memory */
    PyMem_GetAllocator(PYMEM_DOMAIN_RAW, &wrapped);
    PyMemAllocatorEx wrapper = {NULL, recv_malloc, recv_calloc, recv_realloc, recv_free};
    PyMem_SetAllocator(PYMEM_DOMAIN_RAW, &wrapper);
    installed = 1;
}

/* _recv_memory_stats() -> dict (tests). */
PyObject *
csp_recv_memory_stats(PyObject *Py_UNUSED(m), PyObject *Py_UNUSED(ignored))
{
    pthread_mutex_lock(&lock);
    int handed_out = atomic_load(&nout), ncached_now = ncached;
    size_t bytes = cached_bytes;
    unsigned long long reused = n_reused, made = n_made, dropped = n_dropped;
    pthread_mutex_unlock(&lock);
    return Py_BuildValue("{s:i,s:i,s:i,s:n,s:K,s:K,s:K,s:n}", "installed", installed,
                         "handed_out", handed_out, "cached", ncached_now, "cached_bytes",
                         (Py_ssize_t)bytes, "reused", reused, "made", made, "dropped", dropped,
                         "min_request", (Py_ssize_t)CSP_RECV_MEMORY_MIN);
}

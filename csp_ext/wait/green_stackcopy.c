/* green_stackcopy.c - reused blocks for greenlet's stack copies.
 *
 * A greenlet that switches away saves the part of its C stack that the
 * next greenlet will use: PyMem_Realloc(NULL, n) before the switch,
 * PyMem_Free after the greenlet is switched back.  A pycsp process blocked
 * in a channel call saves ~1.7 KB (greenlet's own frames ~700 B, the
 * process function's interpreter frame ~370 B, greenlet's start-up frames,
 * ours).
 * That is beyond pymalloc (512 B) and beyond glibc's thread cache (1,032 B):
 * every switch paid a large-bin malloc and free in glibc, and pymalloc's
 * checks before it, ~550 instructions of a ~3,200-instruction communication.
 *
 * Here the PyMem domain's allocator is wrapped: while greenlet.c switches
 * (csp_green_switching), a request of 513 B to BLOCK_SIZE bytes gets one of
 * at most MAX_BLOCKS blocks that stay ours once made and are reused LIFO.
 * Every other request, and any request once all blocks are out, goes to the
 * allocator we wrap.  A block is an ordinary BLOCK_SIZE allocation of the
 * wrapped allocator, so whoever frees it after our wrapper has been removed
 * (tracemalloc.stop() restores the allocator it found) frees it correctly;
 * our own blocks are recognised by their address in an insert-only table.
 * (That needs every allocator set later to wrap ours, as PyMem_SetAllocator
 * requires once Python runs: a block freed behind our back could come back
 * as someone else's allocation at the same address.)
 *
 * Blocks are handed out, and come back, only in threads that switch pycsp
 * greenlets (csp_green_switching is per thread), all of them holding this
 * interpreter's GIL.  Free-threaded builds keep CPython's allocator (the
 * wrapper is compiled out).
 */
#include "csp.h"

#if defined(CSP_HAVE_GREENLET) && !defined(Py_GIL_DISABLED)

#include <string.h>

/* Python 3.11, greenlet 3: a Commstime process saves 1,656 bytes; deeper
 * call chains through C (decorators, AltSelect) save more. */
#define BLOCK_SIZE 4096
/* Enough for a ring of 64 processes, each suspended with its stack saved. */
#define MAX_BLOCKS 128
/* Power of two, at least twice MAX_BLOCKS: short probe sequences. */
#define TABLE_BITS 8
#define TABLE_SLOTS (1 << TABLE_BITS)
/* pymalloc serves these itself, cheaply. */
#define SMALL_REQUEST 512

_Thread_local int csp_green_switching __attribute__((tls_model("initial-exec")));

static PyMemAllocatorEx wrapped;
static int installed;
/* Every block made, never removed.  Written only by a thread that switches
 * greenlets of this interpreter (with its GIL); read by every PyMem call of
 * the process, which in 3.12+ includes other interpreters with a GIL of
 * their own: hence atomic (relaxed: plain loads and stores on x86-64). */
static _Atomic(void *) table[TABLE_SLOTS];
static void *spare;                  /* blocks not handed out, linked through their first
                                      * word, last freed first */
static int nblocks;

static size_t
slot_of(const void *p)
{
    /* Fibonacci hashing: blocks made one after the other lie BLOCK_SIZE + a
     * malloc header apart, which a hash of the low bits put in neighbouring
     * slots (2.3 probes a lookup in a Commstime); the multiply spreads them. */
    return (size_t)(((uint64_t)(uintptr_t)p * 0x9E3779B97F4A7C15ull) >> (64 - TABLE_BITS));
}

static inline int
is_ours(const void *p)
{
    for (size_t i = slot_of(p);; i = (i + 1) & (TABLE_SLOTS - 1)) {
        void *q = atomic_load_explicit(&table[i], memory_order_relaxed);
        if (q == p)
            return 1;
        if (!q)
            return 0;
    }
}

/* A new block, or NULL when MAX_BLOCKS are made (out of line: rare). */
static __attribute__((noinline)) void *
make_block(void)
{
    if (nblocks == MAX_BLOCKS)
        return NULL;
    void *p = wrapped.malloc(wrapped.ctx, BLOCK_SIZE);
    if (!p)
        return NULL;
    size_t i = slot_of(p);
    while (atomic_load_explicit(&table[i], memory_order_relaxed))
        i = (i + 1) & (TABLE_SLOTS - 1);
    atomic_store_explicit(&table[i], p, memory_order_relaxed);
    nblocks++;
    return p;
}

static inline void *
take_or_malloc(size_t size)
{
    if (csp_green_switching && size > SMALL_REQUEST && size <= BLOCK_SIZE) {
        void *p = spare;
        if (p) {
            spare = *(void **)p;
            return p;
        }
        if ((p = make_block()))
            return p;
    }
    return wrapped.malloc(wrapped.ctx, size);
}

static void *
stackcopy_malloc(void *ctx, size_t size)
{
    (void)ctx;
    return take_or_malloc(size);
}

static void *
stackcopy_calloc(void *ctx, size_t nelem, size_t elsize)
{
    (void)ctx;
    return wrapped.calloc(wrapped.ctx, nelem, elsize);
}

static void *
stackcopy_realloc(void *ctx, void *ptr, size_t size)
{
    (void)ctx;
    if (!ptr)
        return take_or_malloc(size);
    if (!is_ours(ptr))
        return wrapped.realloc(wrapped.ctx, ptr, size);
    if (size <= BLOCK_SIZE)
        return ptr;
    void *bigger = wrapped.malloc(wrapped.ctx, size);
    if (!bigger)
        return NULL;
    memcpy(bigger, ptr, BLOCK_SIZE);
    *(void **)ptr = spare;
    spare = ptr;
    return bigger;
}

static void
stackcopy_free(void *ctx, void *ptr)
{
    (void)ctx;
    if (ptr && is_ours(ptr)) {
        *(void **)ptr = spare;
        spare = ptr;
        return;
    }
    wrapped.free(wrapped.ctx, ptr);
}

/* {"installed", "blocks", "spare", "max_blocks", "block_size"} (tests). */
PyObject *
csp_green_stackcopy_stats(void)
{
    int nspare = 0;
    for (void *p = spare; p; p = *(void **)p)
        nspare++;
    return Py_BuildValue("{s:i,s:i,s:i,s:i,s:i}", "installed", installed, "blocks", nblocks,
                         "spare", nspare, "max_blocks", MAX_BLOCKS, "block_size", BLOCK_SIZE);
}

void
csp_green_stackcopy_install(void)
{
    if (installed)
        return;
    PyMem_GetAllocator(PYMEM_DOMAIN_MEM, &wrapped);
    PyMemAllocatorEx wrapper = {NULL, stackcopy_malloc, stackcopy_calloc, stackcopy_realloc,
                                stackcopy_free};
    PyMem_SetAllocator(PYMEM_DOMAIN_MEM, &wrapper);
    installed = 1;
}

#else

_Thread_local int csp_green_switching __attribute__((tls_model("initial-exec")));

PyObject *
csp_green_stackcopy_stats(void)
{
    return Py_BuildValue("{s:i,s:i,s:i,s:i,s:i}", "installed", 0, "blocks", 0, "spare", 0,
                         "max_blocks", 0, "block_size", 0);
}

void
csp_green_stackcopy_install(void)
{
}

#endif

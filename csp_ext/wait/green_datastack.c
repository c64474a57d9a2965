/* green_datastack.c - a small first frame chunk for each process greenlet.
 *
 * Since 3.11 CPython keeps Python frames in per-thread "data stack" chunks of
 * at least 16 KiB, and greenlet gives each greenlet a chain of its own.  A
 * greenlet that is suspended thus keeps a 16 KiB chunk of which it touched a
 * page or more: 4 KiB of memory for one or two small frames.  With a million
 * suspended CSP processes that page is most of their memory.
 *
 * Here a process greenlet starts with a "root" chunk sized for its function's
 * frame plus some room for small helpers; deeper calls overflow into ordinary
 * 16 KiB chunks, which CPython frees again when those calls return.  CPython
 * never frees a root chunk (frames start at data[1]); greenlet frees the chain
 * when the greenlet ends or is dropped, through the arena allocator, so a
 * wrapper around that allocator recognises our chunks and frees them itself.
 *
 * This leans on CPython internals (PyThreadState.datastack_*, _PyStackChunk,
 * PyCodeObject.co_nlocalsplus/co_stacksize) and on greenlet freeing chunks through the arena
 * allocator, as greenlet 2 and 3 do on 3.11-3.13.  Elsewhere it is compiled
 * out and greenlets use CPython's own chunks.
 */
#include "csp.h"

#if defined(CSP_HAVE_GREENLET) && PY_VERSION_HEX >= 0x030B0000 && PY_VERSION_HEX < 0x030E0000

/* CPython's DATA_STACK_CHUNK_SIZE: the smallest chunk it allocates itself. */
#define CPYTHON_MIN_CHUNK (16 * 1024)
/* Room beyond the process function's own frame, for a few small helpers. */
#define HELPER_ROOM 128
/* At least CPython's per-frame bookkeeping (FRAME_SPECIALS_SIZE, 7-10 words). */
#define FRAME_HEADER_WORDS 16
/* Stored in data[0], which a root chunk never uses. */
#define ROOT_CHUNK_MAGIC ((PyObject *)(uintptr_t)0x70796373705f6473ULL)

/* CPython's own 16 KiB chunks, kept for reuse.  A process whose calls overflow
 * its small first chunk gets a 16 KiB chunk on the call and gives it back on
 * the return: without this, an mmap and a munmap (and a page fault) for each
 * such call, e.g. every AltSelect in a loop.  The GIL serialises these calls. */
#define SPARE_CHUNKS 16
static void *spare[SPARE_CHUNKS];
static int nspare;

/* Process-wide, as CPython's arena allocator is: set once by
 * csp_green_datastack_install (GIL held), read-only after. */
static PyObjectArenaAllocator cpython_arena;
static int installed;

static int
is_our_chunk(void *ptr, size_t size)
{
    return size < CPYTHON_MIN_CHUNK && ((_PyStackChunk *)ptr)->data[0] == ROOT_CHUNK_MAGIC;
}

static void *
arena_alloc(void *ctx, size_t size)
{
    (void)ctx;
    if (size == CPYTHON_MIN_CHUNK && nspare > 0)
        return spare[--nspare];
    return cpython_arena.alloc(cpython_arena.ctx, size);
}

static void
arena_free(void *ctx, void *ptr, size_t size)
{
    (void)ctx;
    if (ptr && is_our_chunk(ptr, size)) {
        PyMem_RawFree(ptr);
        return;
    }
    if (ptr && size == CPYTHON_MIN_CHUNK && nspare < SPARE_CHUNKS) {
        spare[nspare++] = ptr;
        return;
    }
    cpython_arena.free(cpython_arena.ctx, ptr, size);
}

void
csp_green_datastack_install(void)
{
    if (installed)
        return;
    PyObject_GetArenaAllocator(&cpython_arena);
    PyObjectArenaAllocator wrapper = {NULL, arena_alloc, arena_free};
    PyObject_SetArenaAllocator(&wrapper);
    installed = 1;
}

void
csp_green_datastack_begin(PyObject *fn)
{
    PyThreadState *ts = PyThreadState_Get();
    if (!installed || ts->datastack_chunk)
        return;  /* something already pushed a frame: keep CPython's chain */
    size_t frame = 0;
    if (PyFunction_Check(fn)) {
        PyCodeObject *code = (PyCodeObject *)PyFunction_GET_CODE(fn);
        frame = (size_t)(code->co_nlocalsplus + code->co_stacksize + FRAME_HEADER_WORDS) *
                sizeof(PyObject *);
    }
    size_t size = offsetof(_PyStackChunk, data) + sizeof(PyObject *) + frame + HELPER_ROOM;
    size = (size + 63) & ~(size_t)63;
    if (size >= CPYTHON_MIN_CHUNK)
        return;  /* a big frame: an ordinary chunk is as good */
    _PyStackChunk *chunk = PyMem_RawMalloc(size);
    if (!chunk)
        return;  /* CPython will allocate its own */
    chunk->previous = NULL;
    chunk->size = size;
    chunk->top = 0;
    chunk->data[0] = ROOT_CHUNK_MAGIC;
    ts->datastack_chunk = chunk;
    ts->datastack_top = &chunk->data[1];
    ts->datastack_limit = (PyObject **)((char *)chunk + size);
}

#else

void
csp_green_datastack_install(void)
{
}

void
csp_green_datastack_begin(PyObject *fn)
{
    (void)fn;
}

#endif

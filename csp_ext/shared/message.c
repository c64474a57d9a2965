/* shm_message.c - messages of the processes backend, as blocks in the arena.
 *
 * A top-level bytes/bytearray message is copied straight into a block (one
 * copy); so are a top-level int (int64), float, str, None, True and False.
 * Tuples, lists and dicts of those and small numpy arrays are encoded by
 * shared/native.c (MSG_NATIVE), without pickle.  Anything else is pickled with protocol 5; out-of-band buffers
 * (bytearray, numpy arrays, PickleBuffer) are copied once into the block,
 * after the pickle stream.  The reader unpickles from the block; out-of-band
 * buffers are handed to pickle as PickleBuffers viewing the block itself (no
 * second copy), which keeps the block alive until the last view is gone.
 * A write that waits for its reader anyway (rendezvous, output guard) leaves
 * each buffer of VM_MIN_BUFFER bytes or more in its own memory instead: the
 * reader copies it from there (MSG_REMOTE; shared/vmread.h has the protocol).
 *
 * Block layout: msg_header, then nbuf uint64 lengths, then nchan offsets of
 * the channels whose ends or channels were pickled into it (each holds a
 * reference, handed to the unpickled object, or released if the message is
 * dropped undelivered), then the pickle stream, then each buffer (each
 * starting 64-byte aligned).
 *
 * A received block with buffers belongs to the process that received it
 * (its ShmBuffer's owner pid): only that process frees it.  A forked child
 * inherits the parent's ShmBuffers with the rest of the heap; dropping them
 * there must not free the parent's block.  A child's own blocks still held
 * when it ends are freed by shm_exit (children leave by _exit, which runs
 * no destructor).
 *
 * Before any block: an int of 61 bits, None, False and True travel inside
 * the message handle itself (shm.h, SHM_MSG_INLINE), so the commonest
 * messages cost no allocation and no arena lock at either end.
 */
#include "shared/shm.h"
#include "shared/native.h"
#include "shared/vmread.h"

#include <pthread.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/time.h>
#include <unistd.h>

/* INT (int64), FLOAT (double), STR (UTF-8, surrogates passed through) and
 * CONST (one byte: None, False, True) carry the commonest small messages
 * without a pickler: pickle.dumps and loads cost most of a small message. */
/* REMOTE is a PICKLE whose big buffers stay in the writer's memory
 * (shared/vmread.h): a vm_origin fills the 64 bytes before the stream, and
 * the slot of each such buffer, whose length has VM_REMOTE_LEN set, holds a
 * vm_span instead of the bytes.  Its handle has SHM_MSG_REMOTE set. */
enum { MSG_BYTES = 1, MSG_BYTEARRAY = 2, MSG_PICKLE = 3, MSG_INT = 4, MSG_FLOAT = 5, MSG_STR = 6,
       MSG_CONST = 7, MSG_NATIVE = 8, MSG_REMOTE = 9 };
#define VM_REMOTE_LEN ((uint64_t)1 << 63)
enum { CONST_NONE = 0, CONST_FALSE = 1, CONST_TRUE = 2 };

typedef struct {
    uint32_t kind;
    uint32_t nbuf;
    uint32_t nchan;
    uint32_t pad;
    uint64_t len;            /* raw data or pickle stream length */
} msg_header;

/* Per thread: channels pickled by the encode running in this thread
 * (shm_channel.c's __reduce__ methods note them here). */
static _Thread_local shm_off *noted;
static _Thread_local Py_ssize_t nnoted, noted_cap;
static _Thread_local int encoding;

/* Releases one reference to a shared channel; installed by shared/channel.c
 * (messages carry channels, and channels buffer messages). */
static void (*release_channel)(shm_off chan);

void
shm_message_install_channel_release(void (*release)(shm_off chan))
{
    release_channel = release;
}

int
shm_note_pickled_channel(shm_off chan)
{
    if (!encoding)
        return 0;  /* pickled by other means: the pickle keeps its reference */
    if (nnoted == noted_cap) {
        Py_ssize_t cap = noted_cap ? noted_cap * 2 : 8;
        shm_off *n = PyMem_Realloc(noted, (size_t)cap * sizeof(shm_off));
        if (!n) {
            PyErr_NoMemory();
            return -1;
        }
        noted = n;
        noted_cap = cap;
    }
    noted[nnoted++] = chan;
    return 0;
}

#define ALIGN64(x) (((x) + 63) & ~(uint64_t)63)

static uint64_t
data_start(uint32_t nbuf, uint32_t nchan)
{
    return ALIGN64(sizeof(msg_header) + ((uint64_t)nbuf + nchan) * sizeof(uint64_t));
}

/* Where the pickle stream of a PICKLE or REMOTE block starts. */
static uint64_t
stream_start(const msg_header *h)
{
    return data_start(h->nbuf, h->nchan) + (h->kind == MSG_REMOTE ? 64 : 0);
}

/* The bytes a buffer's slot takes, from its entry in the length table. */
static uint64_t
slot_len(uint64_t len)
{
    return (len & VM_REMOTE_LEN) ? sizeof(vm_span) : len;
}

/* ------------------------------------------------------------------ */
/* ShmBuffer: owns a message block; exports its bytes (writable)       */
/* A slice (base set) exports part of its base's block and keeps it alive.
 * No memoryview comes between the block and the objects pickle makes: a
 * PickleBuffer over a memoryview in a reference cycle may have the
 * memoryview cleared first by the gc, which CPython does not survive. */

typedef struct ShmBufferObject {
    PyObject_HEAD
    shm_off block;                       /* the block (0 in a slice) */
    struct ShmBufferObject *base;        /* a slice: its owner (a reference) */
    Py_ssize_t start, len;               /* bytes exported, from the block's start */
    pid_t owner;                         /* the process that frees the block */
    struct ShmBufferObject *prev, *next; /* live_buffers of this process's heap */
} ShmBufferObject;

/* Every owning ShmBuffer of this heap, to free at shm_exit those this process
 * owns.  Process-wide (one heap per process), changed with the GIL held. */
static ShmBufferObject *live_buffers;

static int
shmbuf_getbuffer(ShmBufferObject *self, Py_buffer *view, int flags)
{
    shm_off block = self->base ? self->base->block : self->block;
    return PyBuffer_FillInfo(view, (PyObject *)self, shm_base + block + self->start, self->len,
                             0, flags);
}

static void
shmbuf_dealloc(ShmBufferObject *self)
{
    if (self->base) {
        Py_DECREF(self->base);
    }
    else {
        if (self->prev)
            self->prev->next = self->next;
        else
            live_buffers = self->next;
        if (self->next)
            self->next->prev = self->prev;
        /* A copy inherited through fork: the block is its parent's. */
        if (self->owner == shm_my_pid)
            shm_free(self->block);
    }
    PyTypeObject *tp = Py_TYPE(self);
    tp->tp_free((PyObject *)self);
    Py_DECREF(tp);
}

/* New reference: bytes [start, start + len) of owner's block, clamped to it
 * (the lengths are read from shared memory). */
static PyObject *
shmbuf_slice(ShmBufferObject *owner, uint64_t start, uint64_t len)
{
    uint64_t size = (uint64_t)owner->len;
    if (start > size)
        start = size;
    if (len > size - start)
        len = size - start;
    ShmBufferObject *s = PyObject_New(ShmBufferObject, csp_st->ShmBufferType);
    if (!s)
        return NULL;
    s->block = 0;
    s->base = (ShmBufferObject *)Py_NewRef(owner);
    s->start = (Py_ssize_t)start;
    s->len = (Py_ssize_t)len;
    s->owner = 0;
    s->prev = s->next = NULL;
    return (PyObject *)s;
}

static PyType_Slot shmbuf_slots[] = {
    {Py_tp_doc, "A message block in the shared arena (or a slice of one), freed by the process\n"
                "that received it when the last view of it is gone."},
    {Py_tp_dealloc, shmbuf_dealloc},
    {Py_bf_getbuffer, shmbuf_getbuffer},
    {0, NULL}
};

/* Made only by the decoder, never by calling the type. */
static PyType_Spec shmbuf_spec = {
    .name = "csp_ext.ShmBuffer",
    .basicsize = sizeof(ShmBufferObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE | Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = shmbuf_slots,
};

/* ------------------------------------------------------------------ */
/* Inline messages: the handle is the message                          */

/* Handle bits: 0 the tag (SHM_MSG_INLINE), 1-2 the kind, 3-63 the value
 * (an int sign-extends from bit 63). */
enum { INLINE_INT = 0, INLINE_CONST = 1 };
#define INLINE_SHIFT 3
#define INLINE_INT_MIN (-((int64_t)1 << 60))
#define INLINE_INT_MAX (((int64_t)1 << 60) - 1)

/* 1 with *handle set if obj travels inside its handle; 0 (no exception) if
 * it needs a block. */
static int
encode_inline(PyObject *obj, shm_off *handle)
{
    uint64_t kind, value;
    if (PyLong_CheckExact(obj)) {
        int overflow;
        long long v = PyLong_AsLongLongAndOverflow(obj, &overflow);
        if (overflow || v < INLINE_INT_MIN || v > INLINE_INT_MAX)
            return 0;
        kind = INLINE_INT;
        value = (uint64_t)v;
    }
    else if (obj == Py_None || obj == Py_False || obj == Py_True) {
        kind = INLINE_CONST;
        value = obj == Py_None ? CONST_NONE : obj == Py_False ? CONST_FALSE : CONST_TRUE;
    }
    else {
        return 0;
    }
    *handle = (value << INLINE_SHIFT) | (kind << 1) | SHM_MSG_INLINE;
    return 1;
}

/* New reference, or NULL with ValueError for a handle no encoder makes. */
static PyObject *
decode_inline(shm_off handle)
{
    uint64_t kind = (handle >> 1) & 3;
    if (kind == INLINE_INT)
        return PyLong_FromLongLong((int64_t)handle >> INLINE_SHIFT);
    uint64_t value = handle >> INLINE_SHIFT;
    if (kind == INLINE_CONST && value <= CONST_TRUE)
        return Py_NewRef(value == CONST_NONE ? Py_None : value == CONST_FALSE ? Py_False : Py_True);
    PyErr_SetString(PyExc_ValueError, "pycsp: corrupt inline message handle");
    return NULL;
}

/* ------------------------------------------------------------------ */
/* Encode                                                              */

static shm_off
encode_data(uint32_t kind, const void *data, uint64_t len)
{
    uint64_t start = data_start(0, 0);
    shm_off off = shm_alloc(start + len);
    if (off) {
        msg_header *h = SHM_PTR(msg_header, off);
        h->kind = kind;
        h->nbuf = 0;
        h->nchan = 0;
        h->len = len;
        memcpy(shm_base + off + start, data, (size_t)len);
    }
    return off;
}

/* Copy one contiguous buffer-supporting object into a new block. */
static shm_off
encode_raw(PyObject *obj, uint32_t kind)
{
    Py_buffer view;
    if (PyObject_GetBuffer(obj, &view, PyBUF_SIMPLE) < 0)
        return 0;
    shm_off off = encode_data(kind, view.buf, (uint64_t)view.len);
    PyBuffer_Release(&view);
    return off;
}

static shm_off
encode_str(PyObject *obj)
{
    if (PyUnicode_IS_ASCII(obj))
        return encode_data(MSG_STR, PyUnicode_DATA(obj), (uint64_t)PyUnicode_GET_LENGTH(obj));
    /* A temporary: PyUnicode_AsUTF8 would keep a UTF-8 copy inside the str for
     * its whole life.  surrogatepass: pickle keeps lone surrogates, so must this. */
    PyObject *bytes = PyUnicode_AsEncodedString(obj, "utf-8", "surrogatepass");
    if (!bytes)
        return 0;
    shm_off off = encode_data(MSG_STR, PyBytes_AS_STRING(bytes), (uint64_t)PyBytes_GET_SIZE(bytes));
    Py_DECREF(bytes);
    return off;
}

/* 1 with *off set (0 and an exception on failure) if obj is a scalar this
 * file encodes itself; 0 if it is for pickle. */
static int
encode_scalar(PyObject *obj, shm_off *off)
{
    if (PyLong_CheckExact(obj)) {
        int overflow;
        long long v = PyLong_AsLongLongAndOverflow(obj, &overflow);
        if (overflow || (v == -1 && PyErr_Occurred())) {
            PyErr_Clear();
            return 0;  /* beyond int64: pickle */
        }
        int64_t v64 = v;
        *off = encode_data(MSG_INT, &v64, sizeof(v64));
        return 1;
    }
    if (PyFloat_CheckExact(obj)) {
        double d = PyFloat_AS_DOUBLE(obj);
        *off = encode_data(MSG_FLOAT, &d, sizeof(d));
        return 1;
    }
    if (PyUnicode_CheckExact(obj)) {
        *off = encode_str(obj);
        return 1;
    }
    if (obj == Py_None || obj == Py_False || obj == Py_True) {
        unsigned char c = obj == Py_None ? CONST_NONE : obj == Py_False ? CONST_FALSE : CONST_TRUE;
        *off = encode_data(MSG_CONST, &c, 1);
        return 1;
    }
    return 0;
}

/* 1 with *off set (0 and an exception on failure) if shared/native.c
 * encodes obj; 0 if it is for pickle. */
static int
encode_native(PyObject *obj, shm_off *off)
{
    native_plan plan;
    uint64_t len;
    int r = native_measure(obj, &plan, &len);
    if (r <= 0) {
        *off = 0;
        return r < 0;
    }
    uint64_t start = data_start(0, 0);
    *off = shm_alloc(start + len);
    if (*off) {
        msg_header *h = SHM_PTR(msg_header, *off);
        h->kind = MSG_NATIVE;
        h->nbuf = 0;
        h->nchan = 0;
        h->len = len;
        if (native_write(obj, &plan, shm_base + *off + start, len) < 0) {
            shm_free(*off);
            *off = 0;
        }
    }
    native_release(&plan);
    return 1;
}

static shm_off encode_pickled(PyObject *obj, vm_hold *hold);

/* hold: NULL, or (hold->w and perhaps hold->seq set, the rest zero) a write
 * that will wait for its reader, whose big buffers may then stay in this
 * process's memory: hold keeps them until shm_message_delivered. */
static shm_off
encode_message(PyObject *obj, vm_hold *hold)
{
    shm_off handle;
    if (encode_inline(obj, &handle))
        return handle;
    if (PyBytes_CheckExact(obj))
        return encode_raw(obj, MSG_BYTES);
    if (PyByteArray_CheckExact(obj))
        return encode_raw(obj, MSG_BYTEARRAY);
    shm_off scalar;
    if (encode_scalar(obj, &scalar) || encode_native(obj, &scalar))
        return scalar;
    return encode_pickled(obj, hold);
}

shm_off
shm_message_encode(PyObject *obj)
{
    return encode_message(obj, NULL);
}

shm_off
shm_message_encode_held(PyObject *obj, vm_hold *hold)
{
    return encode_message(obj, hold);
}

static shm_off
encode_pickled(PyObject *obj, vm_hold *hold)
{
    shm_off off = 0;
    shm_off *chans = NULL;
    Py_ssize_t nchan = 0;
    PyObject *buffers = PyList_New(0), *append = NULL, *stream = NULL;
    Py_buffer *views = NULL;
    Py_ssize_t nviews = 0;
    if (!buffers)
        goto done;
    append = PyObject_GetAttr(buffers, csp_st->str_append);
    if (!append)
        goto done;
    /* pickle.dumps(obj, 5, buffer_callback=buffers.append) */
    PyObject *args[3] = {obj, csp_st->protocol_5, append};
    Py_ssize_t first_noted = nnoted;
    encoding++;
    stream = PyObject_Vectorcall(csp_st->pickle_dumps, args, 2,
                                 csp_st->kwnames_buffer_callback);
    encoding--;
    chans = noted + first_noted;
    nchan = nnoted - first_noted;
    if (!stream)
        goto done;
    Py_ssize_t nbuf = PyList_GET_SIZE(buffers);
    views = PyMem_Calloc((size_t)(nbuf ? nbuf : 1), sizeof(Py_buffer));
    if (!views) {
        PyErr_NoMemory();
        goto done;
    }
    Py_ssize_t nremote = 0;
    for (; nviews < nbuf; nviews++) {
        if (PyObject_GetBuffer(PyList_GET_ITEM(buffers, nviews), &views[nviews],
                               PyBUF_C_CONTIGUOUS) < 0)
            goto done;
        nremote += (uint64_t)views[nviews].len >= VM_MIN_BUFFER;
    }
    if (!hold || !vm_possible())
        nremote = 0;
    msg_header proto = {.kind = nremote ? MSG_REMOTE : MSG_PICKLE, .nbuf = (uint32_t)nbuf,
                        .nchan = (uint32_t)nchan, .len = (uint64_t)PyBytes_GET_SIZE(stream)};
    uint64_t total = stream_start(&proto) + ALIGN64(proto.len);
    for (Py_ssize_t i = 0; i < nbuf; i++) {
        uint64_t len = (uint64_t)views[i].len;
        total += ALIGN64(nremote && len >= VM_MIN_BUFFER ? sizeof(vm_span) : len);
    }
    off = shm_alloc(total);
    if (!off)
        goto done;
    msg_header *h = SHM_PTR(msg_header, off);
    *h = proto;
    uint64_t *lens = (uint64_t *)(h + 1);
    for (Py_ssize_t i = 0; i < nchan; i++)
        lens[nbuf + i] = chans[i];
    nchan = 0;  /* the block holds the references now */
    uint64_t pos = stream_start(h);
    memcpy(shm_base + off + pos, PyBytes_AS_STRING(stream), (size_t)h->len);
    pos += ALIGN64(h->len);
    for (Py_ssize_t i = 0; i < nbuf; i++) {
        lens[i] = (uint64_t)views[i].len;
        if (nremote && lens[i] >= VM_MIN_BUFFER) {
            vm_span span = {(uint64_t)(uintptr_t)views[i].buf, lens[i]};
            memcpy(shm_base + off + pos, &span, sizeof(span));
            lens[i] |= VM_REMOTE_LEN;
        }
        else {
            memcpy(shm_base + off + pos, views[i].buf, (size_t)lens[i]);
        }
        pos += ALIGN64(slot_len(lens[i]));
    }
    if (nremote) {
        vm_origin origin = {SHM_OFF(hold->w), hold->seq ? hold->seq : vm_begin_write(hold->w),
                            (int32_t)shm_my_pid};
        memcpy(shm_base + off + data_start(h->nbuf, h->nchan), &origin, sizeof(origin));
        /* The views keep the buffers (and so their objects) until the reader
         * has copied them. */
        hold->seq = origin.seq;
        hold->views = views;
        hold->nviews = nviews;
        hold->stream = stream;
        views = NULL;
        nviews = 0;
        stream = NULL;
        off |= SHM_MSG_REMOTE;
    }
done:
    /* Not encoded: the references of the channels pickled so far go back. */
    for (Py_ssize_t i = 0; i < nchan; i++)
        release_channel(chans[i]);
    if (chans)
        nnoted = chans - noted;
    for (Py_ssize_t i = 0; i < nviews; i++)
        PyBuffer_Release(&views[i]);
    PyMem_Free(views);
    Py_XDECREF(stream);
    Py_XDECREF(append);
    Py_XDECREF(buffers);
    return off;
}

/* A received large bytes/bytearray lives in memory malloc has just mapped:
 * fresh pages, which the kernel must clear before the copy can fill them.
 * In 4 KiB pages that costs one fault each (or, populated in one call, still
 * one page at a time: 30-50 ms for 64 MiB on the 2-core test machine, three
 * times the copy); as 2 MiB pages it is 32 faults, and each cleared page is
 * still in cache when the copy overwrites it.  So the page-aligned 2 MiB
 * interior of the destination is advised MADV_HUGEPAGE before the copy, as
 * numpy advises its own large arrays (transparent huge pages in "madvise"
 * mode are then used; in "always" mode this changes nothing, in "never" mode
 * it has no effect and a kernel without THP refuses it: 4 KiB faults as
 * before).  Populating it in one call first (MADV_POPULATE_WRITE) was
 * slower: the pages are cleared, evicted, then written again. */

static void
advise_huge_pages(char *p, size_t len)
{
    uintptr_t first = ((uintptr_t)p + SHM_HUGE_PAGE - 1) & ~(SHM_HUGE_PAGE - 1);
    uintptr_t last = ((uintptr_t)p + len) & ~(SHM_HUGE_PAGE - 1);
    if (last > first)
        (void)madvise((void *)first, last - first, MADV_HUGEPAGE);
}

/* ------------------------------------------------------------------ */
/* Decode: consumes the block (freed here or by the views it hands out) */

/* 0 if the header `h` (a copy of the block's, taken once: the block is
 * shared memory) describes data that fits in block `off`. */
static int
check_layout(shm_off off, const msg_header *h)
{
    uint64_t size = shm_block_size(off);
    if (size < sizeof(msg_header))
        return -1;
    if (h->kind < MSG_BYTES || h->kind > MSG_REMOTE)
        return -1;
    if ((h->kind == MSG_INT || h->kind == MSG_FLOAT) && h->len != 8)
        return -1;
    if (h->kind == MSG_CONST && h->len != 1)
        return -1;
    int pickled = h->kind == MSG_PICKLE || h->kind == MSG_REMOTE;
    if (!pickled && h->nbuf != 0)
        return -1;
    if (!pickled && h->nchan != 0)
        return -1;
    if ((uint64_t)h->nbuf + h->nchan > (size - sizeof(msg_header)) / sizeof(uint64_t))
        return -1;
    uint64_t start = stream_start(h);
    if (start > size || h->len > size - start)
        return -1;
    uint64_t pos = start + ALIGN64(h->len);
    uint64_t *lens = (uint64_t *)(SHM_PTR(msg_header, off) + 1);
    for (uint32_t i = 0; i < h->nbuf; i++) {
        uint64_t len = lens[i];
        if ((len & VM_REMOTE_LEN) && h->kind != MSG_REMOTE)
            return -1;
        if (pos > size || slot_len(len) > size - pos)
            return -1;
        pos += ALIGN64(slot_len(len));
    }
    return 0;
}

static PyObject *unpickle_block(shm_off off, const msg_header *h, PyObject **regions);
static PyObject *receive_remote(shm_off off, const msg_header *h);

/* New reference; NULL with an exception; or, for a REMOTE handle only, NULL
 * without one: its writer ended before we could copy (the block is dropped;
 * the caller waits for another writer, as if that one never offered). */
PyObject *
shm_message_decode(shm_off handle)
{
    if (SHM_MSG_IS_INLINE(handle))
        return decode_inline(handle);
    shm_off off = SHM_MSG_BLOCK(handle);
    msg_header header = {0};
    if (shm_block_size(off) >= sizeof(header))
        memcpy(&header, SHM_PTR(msg_header, off), sizeof(header));
    const msg_header *h = &header;
    /* Only a handle the writer tagged may send us reading another process. */
    if (check_layout(off, h) < 0 || (h->kind == MSG_REMOTE) != SHM_MSG_IS_REMOTE(handle)) {
        shm_free(off);
        PyErr_SetString(PyExc_ValueError, "pycsp: corrupt message block in the shared arena");
        return NULL;
    }
    if (h->kind == MSG_REMOTE)
        return receive_remote(off, h);
    uint64_t start = stream_start(h);
    if (h->kind == MSG_BYTES || h->kind == MSG_BYTEARRAY) {
        Py_ssize_t len = (Py_ssize_t)h->len;
        /* Warm memory an earlier big message gave back (recv_memory.c),
         * rather than pages the kernel must clear. */
        if ((size_t)len >= CSP_RECV_MEMORY_MIN) {
            csp_recv_memory_install();
            csp_recv_memory_decoding = 1;
        }
        PyObject *r = h->kind == MSG_BYTES ? PyBytes_FromStringAndSize(NULL, len)
                                           : PyByteArray_FromStringAndSize(NULL, len);
        csp_recv_memory_decoding = 0;
        if (r) {
            char *to = h->kind == MSG_BYTES ? PyBytes_AS_STRING(r) : PyByteArray_AS_STRING(r);
            advise_huge_pages(to, (size_t)len);
            memcpy(to, shm_base + off + start, (size_t)len);
        }
        shm_free(off);
        return r;
    }
    if (h->kind != MSG_PICKLE) {
        const char *data = shm_base + off + start;
        PyObject *r = NULL;
        if (h->kind == MSG_INT) {
            int64_t v;
            memcpy(&v, data, sizeof(v));
            r = PyLong_FromLongLong(v);
        }
        else if (h->kind == MSG_FLOAT) {
            double d;
            memcpy(&d, data, sizeof(d));
            r = PyFloat_FromDouble(d);
        }
        else if (h->kind == MSG_STR) {
            r = PyUnicode_DecodeUTF8(data, (Py_ssize_t)h->len, "surrogatepass");
        }
        else if (h->kind == MSG_NATIVE) {
            r = native_decode(data, h->len);
        }
        else if ((unsigned char)data[0] <= CONST_TRUE) {
            unsigned char c = (unsigned char)data[0];
            r = Py_NewRef(c == CONST_NONE ? Py_None : c == CONST_FALSE ? Py_False : Py_True);
        }
        else {
            PyErr_SetString(PyExc_ValueError, "pycsp: corrupt message block in the shared arena");
        }
        shm_free(off);
        return r;
    }
    if (h->nbuf == 0) {
        /* No out-of-band buffers: unpickle from a copy and free the block now. */
        PyObject *stream = PyBytes_FromStringAndSize(shm_base + off + start, (Py_ssize_t)h->len);
        shm_free(off);
        if (!stream)
            return NULL;
        PyObject *r = PyObject_CallOneArg(csp_st->pickle_loads, stream);
        Py_DECREF(stream);
        return r;
    }
    return unpickle_block(off, h, NULL);
}

/* Unpickle a PICKLE or REMOTE block with buffers: each buffer is a slice of
 * the block, or regions[i] where that is not NULL (the block is consumed). */
static PyObject *
unpickle_block(shm_off off, const msg_header *h, PyObject **regions)
{
    uint64_t start = stream_start(h);
    ShmBufferObject *owner = PyObject_New(ShmBufferObject, csp_st->ShmBufferType);
    if (!owner) {
        shm_free(off);
        return NULL;
    }
    owner->block = off;
    owner->base = NULL;
    owner->start = 0;
    owner->len = (Py_ssize_t)shm_block_size(off);
    owner->owner = shm_my_pid;
    owner->prev = NULL;
    owner->next = live_buffers;
    if (live_buffers)
        live_buffers->prev = owner;
    live_buffers = owner;
    PyObject *result = NULL, *stream = NULL, *bufs = NULL, *kwargs = NULL;
    /* Read again here, but only to make slices, which stay inside the block. */
    uint64_t *lens = (uint64_t *)(SHM_PTR(msg_header, off) + 1);
    stream = shmbuf_slice(owner, start, h->len);
    bufs = PyList_New(h->nbuf);
    if (!stream || !bufs)
        goto done;
    uint64_t pos = start + ALIGN64(h->len);
    for (uint32_t i = 0; i < h->nbuf; i++) {
        PyObject *v = regions && regions[i] ? Py_NewRef(regions[i])
                                            : shmbuf_slice(owner, pos, lens[i]);
        if (!v)
            goto done;
        /* A PickleBuffer, as sent: the receiver can send it on (a memoryview
         * cannot be pickled); pickling it copies it into a new block. */
        PyObject *pb = PyPickleBuffer_FromObject(v);
        Py_DECREF(v);
        if (!pb)
            goto done;
        PyList_SET_ITEM(bufs, i, pb);
        pos += ALIGN64(slot_len(lens[i]));
    }
    kwargs = Py_BuildValue("{OO}", csp_st->str_buffers, bufs);
    if (!kwargs)
        goto done;
    PyObject *args = PyTuple_Pack(1, stream);
    if (!args)
        goto done;
    result = PyObject_Call(csp_st->pickle_loads, args, kwargs);
    Py_DECREF(args);
done:
    Py_XDECREF(kwargs);
    Py_XDECREF(bufs);
    Py_XDECREF(stream);
    Py_DECREF(owner);  /* the slices keep it alive */
    return result;
}

/* Drop a message nobody will read: the references of the channels pickled
 * into it go back, then the block. */
static void
drop_block(shm_off off)
{
    msg_header *h = SHM_PTR(msg_header, off);
    if (check_layout(off, h) == 0) {
        uint64_t *lens = (uint64_t *)(h + 1);
        for (uint32_t i = 0; i < h->nchan; i++)
            release_channel(lens[h->nbuf + i]);
    }
    shm_free(off);
}

int
shm_message_carries_channels(shm_off msg)
{
    return msg && !SHM_MSG_IS_INLINE(msg) && SHM_PTR(msg_header, SHM_MSG_BLOCK(msg))->nchan != 0;
}

uint32_t
shm_message_channels(shm_off msg, shm_off *out, uint32_t cap)
{
    if (!msg || SHM_MSG_IS_INLINE(msg))
        return 0;
    shm_off off = SHM_MSG_BLOCK(msg);
    msg_header h = *SHM_PTR(msg_header, off);
    if (check_layout(off, &h) != 0)
        return 0;
    const uint64_t *lens = (const uint64_t *)(SHM_PTR(msg_header, off) + 1);
    for (uint32_t i = 0; i < h.nchan && i < cap; i++)
        out[i] = lens[h.nbuf + i];
    return h.nchan;
}

/* The origin of a REMOTE block (a copy: the block is shared memory). */
static vm_origin
remote_origin(shm_off off)
{
    msg_header *h = SHM_PTR(msg_header, off);
    vm_origin o;
    memcpy(&o, shm_base + off + data_start(h->nbuf, h->nchan), sizeof(o));
    return o;
}

void
shm_message_discard(shm_off handle)
{
    if (!handle || SHM_MSG_IS_INLINE(handle))
        return;
    shm_off off = SHM_MSG_BLOCK(handle);
    if (SHM_MSG_IS_REMOTE(handle) && check_layout(off, SHM_PTR(msg_header, off)) == 0) {
        /* Dropped by another than its writer (a dead reader's reap): the
         * writer waits for an answer.  Its own drops were never delivered. */
        vm_origin o = remote_origin(off);
        if (SHM_PTR(shm_waiter, o.writer) != shm_existing_waiter())
            (void)vm_answer_writer(&o, VM_DROPPED, NULL);
    }
    drop_block(off);
}

/* ------------------------------------------------------------------ */
/* Big buffers from the writer's memory (shared/vmread.h)              */

void
shm_message_stamp_reader(shm_off handle, pid_t reader)
{
    vm_origin o = remote_origin(SHM_MSG_BLOCK(handle));
    atomic_store(&SHM_PTR(shm_waiter, o.writer)->vm_reader, (int32_t)reader);
}

/* Refused: ask the writer for an arena copy and read that instead.
 * Consumes block off.  As shm_message_decode. */
static PyObject *
receive_handoff(shm_off off, const vm_origin *o)
{
    shm_waiter *writer = SHM_PTR(shm_waiter, o->writer);
    _Atomic int32_t writer_pid = o->pid;
    shm_off copy = 0;
    if (!vm_answer_writer(o, VM_REFUSED, NULL) ||
        vm_wait_answer(writer, o->seq, 1u << VM_HANDED, &writer_pid) != VM_HANDED ||
        !vm_answer_writer(o, VM_TAKEN, &copy)) {
        drop_block(off);
        return NULL;   /* the writer is gone (its reap frees a copy it made) */
    }
    if (!copy) {
        drop_block(off);
        return PyErr_NoMemory();   /* the writer could not make the copy */
    }
    /* The copy has the same pickle stream, which hands the channel
     * references of this block to the objects it makes. */
    shm_free(off);
    return shm_message_decode(copy);
}

/* Copy the remote buffers of block off into regions of ours, answer the
 * writer, unpickle.  As shm_message_decode. */
static PyObject *
receive_remote(shm_off off, const msg_header *h)
{
    vm_origin o = remote_origin(off);
    uint64_t *lens = (uint64_t *)(SHM_PTR(msg_header, off) + 1);
    vm_span *spans = PyMem_Calloc(h->nbuf, sizeof(vm_span));
    PyObject **got = PyMem_Calloc(h->nbuf, sizeof(PyObject *));
    PyObject **regions = PyMem_Calloc(h->nbuf, sizeof(PyObject *));
    PyObject *result = NULL;
    if (!spans || !got || !regions) {
        PyErr_NoMemory();
        (void)vm_answer_writer(&o, VM_DROPPED, NULL);
        drop_block(off);
        goto done;
    }
    Py_ssize_t n = 0;
    uint64_t pos = stream_start(h) + ALIGN64(h->len);
    for (uint32_t i = 0; i < h->nbuf; i++) {
        uint64_t len = lens[i];
        if (len & VM_REMOTE_LEN) {
            memcpy(&spans[n], shm_base + off + pos, sizeof(vm_span));
            spans[n++].len = len & ~VM_REMOTE_LEN;
        }
        pos += ALIGN64(slot_len(len));
    }
    /* Ours until the copy is done: if we die copying, the reap of our
     * record drops it (and answers the writer). */
    shm_waiter *me = shm_existing_waiter();
    if (me)
        me->pending = SHM_MSG_REMOTE | off;
    int r = vm_copy_in(&o, spans, n, got);
    if (me)
        me->pending = 0;
    if (r == VM_GONE) {
        drop_block(off);
        goto done;
    }
    if (r == VM_REFUSED) {
        result = receive_handoff(off, &o);
        goto done;
    }
    (void)vm_answer_writer(&o, r == VM_COPIED ? VM_COPIED : VM_DROPPED, NULL);
    if (r != VM_COPIED) {
        drop_block(off);
        goto done;
    }
    n = 0;
    for (uint32_t i = 0; i < h->nbuf; i++)
        if (lens[i] & VM_REMOTE_LEN)
            regions[i] = got[n++];
    result = unpickle_block(off, h, regions);
    for (uint32_t i = 0; i < h->nbuf; i++)
        Py_XDECREF(regions[i]);
done:
    PyMem_Free(spans);
    PyMem_Free(got);
    PyMem_Free(regions);
    return result;
}

/* Make an ordinary arena block of a held message for a refused reader:
 * the same stream, every buffer copied, no channel offsets (the REMOTE
 * block keeps those references).  0 with an exception. */
static shm_off
encode_handoff(const vm_hold *hold)
{
    msg_header proto = {.kind = MSG_PICKLE, .nbuf = (uint32_t)hold->nviews, .nchan = 0,
                        .len = (uint64_t)PyBytes_GET_SIZE(hold->stream)};
    uint64_t total = stream_start(&proto) + ALIGN64(proto.len);
    for (Py_ssize_t i = 0; i < hold->nviews; i++)
        total += ALIGN64((uint64_t)hold->views[i].len);
    shm_off off = shm_alloc(total);
    if (!off)
        return 0;
    msg_header *h = SHM_PTR(msg_header, off);
    *h = proto;
    uint64_t *lens = (uint64_t *)(h + 1);
    uint64_t pos = stream_start(h);
    memcpy(shm_base + off + pos, PyBytes_AS_STRING(hold->stream), (size_t)h->len);
    pos += ALIGN64(h->len);
    for (Py_ssize_t i = 0; i < hold->nviews; i++) {
        lens[i] = (uint64_t)hold->views[i].len;
        memcpy(shm_base + off + pos, hold->views[i].buf, (size_t)lens[i]);
        pos += ALIGN64(lens[i]);
    }
    return off;
}

int
shm_message_delivered(vm_hold *hold)
{
    shm_waiter *w = hold->w;
    int result = 0;
    if (csp_fail_here(CSP_FAIL_VM_WRITER_EXIT))
        kill(getpid(), SIGKILL);   /* test fault site: a writer killed after the commit */
    if (csp_fail_here(CSP_FAIL_VM_SIGNAL)) {
        /* test fault site: a signal in the middle of the wait */
        struct itimerval soon = {{0, 0}, {0, 100 * 1000}};
        setitimer(ITIMER_REAL, &soon, NULL);
    }
    uint32_t answer = vm_wait_answer(w, hold->seq,
                                     (1u << VM_COPIED) | (1u << VM_REFUSED) | (1u << VM_DROPPED),
                                     &w->vm_reader);
    if (answer == VM_REFUSED) {
        shm_off copy = encode_handoff(hold);
        if (!copy)
            result = -1;   /* the reader raises MemoryError too */
        atomic_store(&w->vm_handoff, copy);
        vm_answer(w, hold->seq, VM_HANDED);
        if (vm_wait_answer(w, hold->seq, 1u << VM_TAKEN, &w->vm_reader) != VM_TAKEN) {
            copy = atomic_exchange(&w->vm_handoff, 0);   /* the reader is gone */
            if (copy)
                shm_free(copy);
        }
    }
    vm_hold_release(hold);
    return result;
}

/* _shm_decode_bytes(data): decode `data` as if it were a message block
 * (for the decoder's fuzz test). */
static PyObject *
decode_bytes(PyObject *Py_UNUSED(m), PyObject *arg)
{
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0)
        return NULL;
    if (shm_ensure() < 0) {
        PyBuffer_Release(&view);
        return NULL;
    }
    shm_off off = shm_alloc((uint64_t)view.len);
    if (off) {
        memset(shm_base + off, 0, (size_t)shm_block_size(off));
        memcpy(shm_base + off, view.buf, (size_t)view.len);
    }
    PyBuffer_Release(&view);
    return off ? shm_message_decode(off) : NULL;
}

/* _shm_encode_bytes(obj) -> bytes: a message block as the writer makes it
 * (for a message that travels inline, the block it would take otherwise). */
static PyObject *
encode_bytes(PyObject *Py_UNUSED(m), PyObject *obj)
{
    if (shm_ensure() < 0)
        return NULL;
    shm_off off = shm_message_encode(obj);
    if (off && SHM_MSG_IS_INLINE(off))
        encode_scalar(obj, &off);   /* every inline message is one of its scalars */
    if (!off)
        return NULL;
    PyObject *r = PyBytes_FromStringAndSize(shm_base + off, (Py_ssize_t)shm_block_size(off));
    shm_free(off);
    return r;
}

/* shm_exit(code): free the message blocks this process still holds, then
 * _exit(code) at once (the GIL is held throughout, so no Python code can use
 * them in between).  A child ends so: _exit runs no destructor. */
static PyObject *
shm_exit(PyObject *Py_UNUSED(m), PyObject *arg)
{
    int overflow;
    long code = PyLong_AsLongAndOverflow(arg, &overflow);
    if (code == -1 && PyErr_Occurred())
        return NULL;
    if (shm_base) {
        for (ShmBufferObject *b = live_buffers; b; b = b->next) {
            if (b->owner == shm_my_pid && b->block) {
                shm_free(b->block);
                b->block = 0;
            }
        }
    }
    _exit(overflow ? 1 : (int)code);
}

static PyMethodDef message_methods[] = {
    {"shm_exit", shm_exit, METH_O,
     "Free the message blocks this process holds, then _exit(code) (a child's end)."},
    {"_shm_decode_bytes", decode_bytes, METH_O, "Decode bytes as a message block (fuzz tests)."},
    {"_shm_encode_bytes", encode_bytes, METH_O, "Encode obj as a message block (fuzz tests)."},
    {"_recv_memory_stats", csp_recv_memory_stats, METH_NOARGS,
     "Counts of the warm memory kept for received big bytes (tests)."},
    {NULL}
};

int
csp_shm_message_init_module(PyObject *m)
{
    if (PyModule_AddFunctions(m, message_methods) < 0 || csp_shm_vmread_init_module(m) < 0)
        return -1;
    csp_state *st = csp_st;
    if (!(st->ShmBufferType = csp_add_type(m, &shmbuf_spec, "ShmBuffer")))
        return -1;
    PyObject *pickle = PyImport_ImportModule("pickle");
    if (!pickle)
        return -1;
    st->pickle_dumps = PyObject_GetAttrString(pickle, "dumps");
    st->pickle_loads = PyObject_GetAttrString(pickle, "loads");
    Py_DECREF(pickle);
    st->protocol_5 = PyLong_FromLong(5);
    st->str_buffer_callback = PyUnicode_InternFromString("buffer_callback");
    st->str_buffers = PyUnicode_InternFromString("buffers");
    st->str_append = PyUnicode_InternFromString("append");
    st->kwnames_buffer_callback =
        st->str_buffer_callback ? PyTuple_Pack(1, st->str_buffer_callback) : NULL;
    if (!st->pickle_dumps || !st->pickle_loads || !st->protocol_5 || !st->str_buffer_callback ||
        !st->str_buffers || !st->str_append || !st->kwnames_buffer_callback)
        return -1;
    return 0;
}

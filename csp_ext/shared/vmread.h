/* vmread.h - big out-of-band buffers read from the writer's memory
 * (shared/vmread.c), for shared/message.c.
 *
 * The protocol, once: a writer that will wait for its reader (a rendezvous
 * write, or an output guard) leaves each out-of-band buffer of at least
 * VM_MIN_BUFFER bytes in its own memory and puts in the message block where it
 * is (a vm_span) and who it is (a vm_origin: its waiter record, pid and the
 * write's sequence number).  It keeps its Py_buffer views (a vm_hold) and,
 * once the communication has committed, waits on its record's vm_ack word.
 * The committer stamps the reader's pid into vm_reader under the channel
 * lock.  The reader copies each span with process_vm_readv into a region of
 * its own (private anonymous memory, huge pages, pooled), then stores
 * (seq << 3 | VM_COPIED) in vm_ack and wakes the writer.  Each side's wait
 * ends early when the other process is gone: a reader that finds the writer
 * gone drops the message and waits for another writer (the offer counts as
 * never made); a writer whose reader is gone returns as if delivered.
 *
 * Refused (EPERM under Yama or seccomp, ENOSYS): the reader answers
 * VM_REFUSED and sets shm_hdr->vm_refused (no later write offers its memory);
 * the writer copies the message into an ordinary arena block, puts it in
 * vm_handoff and answers VM_HANDED; the reader takes it (exchange with 0) and
 * answers VM_TAKEN.  A buffer of a living writer the reader cannot read
 * (EFAULT: a device mapping, or a file truncated under its mapping) takes
 * the same way, without vm_refused: the writer copies it, or faults as it
 * would through the arena.
 */
#ifndef CSP_VMREAD_H
#define CSP_VMREAD_H

#include "shared/shm.h"

/* An out-of-band buffer this big or bigger is read from the writer's memory
 * (benchmarks/RESULTS.md, "issue #15, item 3 (big buffers from the writer's
 * memory)": below it the arena's warm blocks win). */
#define VM_MIN_BUFFER ((uint64_t)4 << 20)

/* The answers in shm_waiter.vm_ack (its low 3 bits; the write's seq above). */
enum { VM_GONE = 0, VM_COPIED = 1, VM_REFUSED = 2, VM_DROPPED = 3, VM_HANDED = 4, VM_TAKEN = 5 };
#define VM_ACK(seq, answer) (((uint32_t)(seq) << 3) | (uint32_t)(answer))

/* Where the writer is; in a remote block, in the 64 bytes after the
 * channel offsets. */
typedef struct {
    shm_off writer;     /* its waiter record */
    uint32_t seq;       /* that record's vm_seq for this write */
    int32_t pid;        /* the process whose memory holds the spans */
} vm_origin;

/* A buffer left in the writer's memory (its slot in the block). */
typedef struct {
    uint64_t addr, len;
} vm_span;

/* What the writer keeps until its reader has copied (GIL held to fill and
 * release). */
typedef struct {
    shm_waiter *w;
    uint32_t seq;
    Py_buffer *views;     /* every out-of-band buffer of the message */
    Py_ssize_t nviews;
    PyObject *stream;     /* the pickle stream (for the refused fallback) */
} vm_hold;

void vm_hold_release(vm_hold *h);

/* 1 if writers may offer their memory in this run (not refused yet). */
int vm_possible(void);
/* The sequence number of a new remote write by w (this thread's record). */
uint32_t vm_begin_write(shm_waiter *w);
/* Store an answer for write `seq` in w's vm_ack and wake whoever waits
 * (the writer, on its own record). */
void vm_answer(shm_waiter *w, uint32_t seq, uint32_t answer);
/* Anyone else (the reader, a reaper): answer the writer of origin o, but
 * only while its record is still registered and waits for that write, so
 * that a late answer never lands in a record freed meanwhile (perhaps an
 * arena block of another use now) or over the answer to a later write.
 * handoff: NULL, or where the arena copy in vm_handoff goes (taken at the
 * same moment).  1 if answered; 0 if the writer no longer waits. */
int vm_answer_writer(const vm_origin *o, uint32_t answer, shm_off *handoff);
/* Wait (GIL held on entry and exit, released inside) until w's vm_ack holds
 * VM_ACK(seq, a) for an answer a in `answers` (a bit mask of 1 << a): a; or
 * VM_GONE once process *peer (read at each check) has ended. */
uint32_t vm_wait_answer(shm_waiter *w, uint32_t seq, uint32_t answers, _Atomic int32_t *peer);
/* Reader: copy the n spans of origin o into new regions (regions[i], new
 * references, NULL where spans[i].len == 0 is to be skipped: caller fills).
 * VM_COPIED; VM_GONE (the writer is gone, regions released); VM_REFUSED
 * (regions released; shm_hdr->vm_refused set, unless only this writer's
 * buffer could not be read: EFAULT in a living writer); -1 with an
 * exception. */
int vm_copy_in(const vm_origin *o, const vm_span *spans, Py_ssize_t n, PyObject **regions);

int csp_shm_vmread_init_module(PyObject *m);

#endif

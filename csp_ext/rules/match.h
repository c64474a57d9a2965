/* match.h - the matching rules of every channel, written once.
 *
 * In-process channels (threads, greenlets) and channels in the shared arena
 * (OS processes) follow these rules; each instantiates them with a table
 * (csp_rules) saying how a handle becomes a pointer, how a channel is locked,
 * how a waiter is claimed and finished, and how messages are taken and
 * dropped.  The table is a compile-time constant and every function here is
 * inline, so the compiler removes what a kind of channel does not need (the
 * lock where the GIL is the lock, the pointer arithmetic of private memory).
 *
 * Handles (csp_ref): 0 is "none".  In private memory a handle is the
 * pointer's value; in the shared arena it is an offset from the arena's base
 * (the arena maps at a different address in each process).
 *
 * Invariants, with the channel locked (in-process: the GIL held):
 *
 *  Q1. A channel's queues hold the offers of waiters that were WAITING when
 *      they linked them.  A queue may also hold offers whose waiter is no
 *      longer WAITING (claimed by another channel's commit, timed out,
 *      withdrawn for signal handlers), until their owner withdraws them or a
 *      pop skips them: every pop claims before it trusts an offer.
 *  Q2. Readers queue only when nothing is buffered and no writer is queued
 *      with a live waiter; writers queue only when the buffer is full and no
 *      reader is queued with a live waiter.  So a successful attempt serves
 *      the buffer first, then the head of the opposite queue: FIFO per
 *      channel.
 *  Q3. An offer is unlinked by exactly one party: a pop (after claiming or
 *      finding it stale), or its owner's withdrawal.  Whoever unlinks it reads
 *      what it needs from it first; after `linked` is cleared (a release
 *      store) the owner may reuse or free it.
 *
 * The claim (the commit point):
 *
 *  C1. A waiter's status word goes WAITING -> CLAIMED -> final (DONE,
 *      POISONED, RETIRED, DEADLOCK, KILLED), or WAITING -> final when the
 *      waiter gives up by itself (TIMEOUT, RETRY, CANCELLED).  Only the party
 *      whose claim succeeded (a compare-and-swap from WAITING) may store a
 *      result and the final status; so of all the offers of one alternation,
 *      exactly one commits, as with selectDone in Go's select.
 *  C2. A claimer holds the lock of the claimed offer's channel from the claim
 *      until it has taken the offer's message and unlinked it; it finishes
 *      the waiter (result, then status) before releasing the lock.  The wake
 *      may follow the unlock (shared memory: after the outermost one).
 *  C3. The waiter reads its result only after seeing a final status (an
 *      acquire load pairing with the finisher's release store).
 *
 * Poison and retire:
 *
 *  P1. Poison is permanent: every queued offer is finished POISONED and
 *      every buffered message dropped; later attempts fail at once.
 *  P2. When the last writer retires, queued readers are finished RETIRED only
 *      if nothing is buffered and no writer is queued (they may still drain
 *      the buffer); reads then fail once the buffer is empty.  When the last
 *      reader retires, queued writers are finished RETIRED at once.
 *      "Last" is "the count reaches zero or below": an end copied by fork
 *      retires once in each process.
 */
#ifndef CSP_RULES_MATCH_H
#define CSP_RULES_MATCH_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "rules/status.h"

typedef uint64_t csp_ref;

/* One side of a pending communication, linked into a channel's queue.  It
 * lives with its waiter (inside a Task, or in the waiter's block of the
 * arena), never on a C stack: greenlet stacks move. */
typedef struct csp_offer {
    csp_ref prev, next;
    csp_ref waiter;              /* who is finished when this offer commits */
    csp_ref chan;                /* the csp_chan it is linked into */
    csp_ref msg;                 /* write offers: the message */
    int64_t index;               /* guard index within the waiter's operation */
    int32_t is_write;
    _Atomic int32_t linked;      /* see Q3 */
} csp_offer;

/* A channel's matching state, the same in private and shared memory. */
typedef struct csp_chan {
    int64_t nreaders, nwriters;  /* joined, not retired */
    int32_t poisoned;
    int32_t no_readers;          /* every reader retired: writes fail */
    int32_t no_writers;          /* every writer retired: reads drain, then fail */
    int32_t pad;
    int64_t capacity;            /* 0 = rendezvous */
    int64_t slots, head, count;  /* ring of `slots` messages, grown up to capacity */
    csp_ref ring;                /* csp_ref[slots] */
    csp_ref rq_head, rq_tail;    /* queued readers */
    csp_ref wq_head, wq_tail;    /* queued writers */
} csp_chan;

/* Outcome of an attempt. */
enum csp_try {
    CSP_TRY_BLOCK = 0,           /* would block: queue an offer */
    CSP_TRY_DONE = 1,
    CSP_TRY_POISONED = -1,
    CSP_TRY_RETIRED = -2,        /* every end on the other side retired */
    CSP_TRY_ERROR = -3,          /* an exception is set (no memory) */
    CSP_TRY_END_RETIRED = -4,    /* this end is retired (select) */
};

/* How one kind of channel keeps the rules.  Messages are handles too: the
 * rules store, hand over and drop them but never look inside. */
typedef struct csp_rules {
    void *(*ptr)(csp_ref ref);
    csp_ref (*ref)(const void *p);              /* the inverse of ptr */
    void (*lock)(csp_chan *c);                  /* NULL: the GIL is the lock */
    void (*unlock)(csp_chan *c);
    int (*claim)(csp_ref waiter);               /* C1: 1 if this commit owns the waiter */
    /* Store the result and final status of a claimed waiter, wake it.  Owns
     * `msg` from here on. */
    void (*finish)(csp_ref waiter, int status, int64_t index, csp_ref msg);
    /* The handle a reader (or the buffer) keeps of a writer's message: a new
     * reference in private memory; the block itself in the arena, where the
     * writer gives it up when its write is done. */
    csp_ref (*take)(csp_ref msg);
    void (*drop)(csp_ref msg);                  /* a message nobody will read */
    csp_ref (*ring_alloc)(int64_t slots);       /* 0 with MemoryError set */
    void (*ring_free)(csp_ref ring);
} csp_rules;

#define CSP_RULES_INLINE static inline __attribute__((always_inline))

/* Private memory: a handle is the pointer. */
CSP_RULES_INLINE void *
csp_private_ptr(csp_ref ref)
{
    return (void *)(uintptr_t)ref;
}

CSP_RULES_INLINE csp_ref
csp_private_ref(const void *p)
{
    return (csp_ref)(uintptr_t)p;
}

CSP_RULES_INLINE void
csp_chan_lock(const csp_rules *R, csp_chan *c)
{
    if (R->lock)
        R->lock(c);
}

CSP_RULES_INLINE void
csp_chan_unlock(const csp_rules *R, csp_chan *c)
{
    if (R->unlock)
        R->unlock(c);
}

/* ------------------------------------------------------------------ */
/* Queues                                                              */

CSP_RULES_INLINE void
csp_offer_link(const csp_rules *R, csp_chan *c, csp_offer *o)
{
    csp_ref self = R->ref(o);
    csp_ref *head = o->is_write ? &c->wq_head : &c->rq_head;
    csp_ref *tail = o->is_write ? &c->wq_tail : &c->rq_tail;
    o->next = 0;
    o->prev = *tail;
    if (*tail)
        ((csp_offer *)R->ptr(*tail))->next = self;
    else
        *head = self;
    *tail = self;
    atomic_store_explicit(&o->linked, 1, memory_order_relaxed);
}

/* The last touch of `o` by anyone but its owner (Q3). */
CSP_RULES_INLINE void
csp_offer_unlink(const csp_rules *R, csp_chan *c, csp_offer *o)
{
    if (!atomic_load_explicit(&o->linked, memory_order_relaxed))
        return;
    csp_ref *head = o->is_write ? &c->wq_head : &c->rq_head;
    csp_ref *tail = o->is_write ? &c->wq_tail : &c->rq_tail;
    if (o->prev)
        ((csp_offer *)R->ptr(o->prev))->next = o->next;
    else
        *head = o->next;
    if (o->next)
        ((csp_offer *)R->ptr(o->next))->prev = o->prev;
    else
        *tail = o->prev;
    o->prev = o->next = 0;
    atomic_store_explicit(&o->linked, 0, memory_order_release);
}

/* Take the first offer of a queue whose waiter this commit can claim: 1 with
 * that (claimed) waiter, the offer's index and message; 0 when the queue is
 * empty.  Stale offers are dropped on the way (Q1).  Claim, then unlink: a
 * committer that dies in between leaves the offer where recovery finds it. */
CSP_RULES_INLINE int
csp_pop_claimed(const csp_rules *R, csp_chan *c, int writers, csp_ref *waiter, int64_t *index,
                csp_ref *msg)
{
    csp_ref off;
    while ((off = writers ? c->wq_head : c->rq_head) != 0) {
        csp_offer *o = R->ptr(off);
        csp_ref owner = o->waiter;
        int64_t offer_index = o->index;
        csp_ref offer_msg = o->msg;
        int claimed = R->claim(owner);
        csp_offer_unlink(R, c, o);
        if (claimed) {
            *waiter = owner;
            *index = offer_index;
            *msg = offer_msg;
            return 1;
        }
    }
    return 0;
}

/* Finish every live offer of one queue with `status`. */
CSP_RULES_INLINE void
csp_wake_queue(const csp_rules *R, csp_chan *c, int writers, int status)
{
    csp_ref w, unused;
    int64_t index;
    while (csp_pop_claimed(R, c, writers, &w, &index, &unused))
        R->finish(w, status, index, 0);
}

/* ------------------------------------------------------------------ */
/* The buffer                                                          */

CSP_RULES_INLINE csp_ref *
csp_ring(const csp_rules *R, csp_chan *c)
{
    return (csp_ref *)R->ptr(c->ring);
}

CSP_RULES_INLINE csp_ref
csp_ring_pop(const csp_rules *R, csp_chan *c)
{
    csp_ref *ring = csp_ring(R, c);
    csp_ref m = ring[c->head];
    ring[c->head] = 0;
    c->head = (c->head + 1) % c->slots;
    c->count--;
    return m;
}

/* The caller made room (csp_ring_reserve, or just popped one). */
CSP_RULES_INLINE void
csp_ring_push(const csp_rules *R, csp_chan *c, csp_ref msg)
{
    csp_ring(R, c)[(c->head + c->count) % c->slots] = msg;
    c->count++;
}

/* Room for one more buffered message: the ring grows on demand, so a large
 * buffer costs nothing until it fills.  0, or -1 with MemoryError set. */
static inline int
csp_ring_reserve(const csp_rules *R, csp_chan *c)
{
    if (c->count < c->slots)
        return 0;
    int64_t slots = c->slots ? c->slots * 2 : 8;
    if (slots > c->capacity)
        slots = c->capacity;
    csp_ref ring = R->ring_alloc(slots);
    if (!ring)
        return -1;
    csp_ref *to = R->ptr(ring), *from = c->ring ? csp_ring(R, c) : NULL;
    for (int64_t i = 0; i < c->count; i++)
        to[i] = from[(c->head + i) % c->slots];
    if (c->ring)
        R->ring_free(c->ring);
    c->ring = ring;
    c->slots = slots;
    c->head = 0;
    return 0;
}

/* Drop every buffered message (poison, or the channel's end of life). */
static inline void
csp_ring_drain(const csp_rules *R, csp_chan *c)
{
    while (c->count > 0)
        R->drop(csp_ring_pop(R, c));
}

/* ------------------------------------------------------------------ */
/* Attempts (channel locked)                                           */

/* A read that does not block: CSP_TRY_DONE with *msg (ours), or why not. */
CSP_RULES_INLINE int
csp_try_read(const csp_rules *R, csp_chan *c, csp_ref *msg)
{
    if (c->poisoned)
        return CSP_TRY_POISONED;
    csp_ref w, wmsg;
    int64_t index;
    if (c->count > 0) {
        *msg = csp_ring_pop(R, c);
        if (csp_pop_claimed(R, c, 1, &w, &index, &wmsg)) {
            /* A queued writer's message takes the freed slot. */
            csp_ring_push(R, c, R->take(wmsg));
            R->finish(w, CSP_DONE, index, 0);
        }
        return CSP_TRY_DONE;
    }
    if (csp_pop_claimed(R, c, 1, &w, &index, &wmsg)) {
        *msg = R->take(wmsg);
        R->finish(w, CSP_DONE, index, 0);
        return CSP_TRY_DONE;
    }
    return c->no_writers ? CSP_TRY_RETIRED : CSP_TRY_BLOCK;
}

/* A write that does not block.  On CSP_TRY_DONE the reader or the buffer
 * has taken the message (R->take); otherwise it is still the caller's. */
CSP_RULES_INLINE int
csp_try_write(const csp_rules *R, csp_chan *c, csp_ref msg)
{
    if (c->poisoned)
        return CSP_TRY_POISONED;
    if (c->no_readers)
        return CSP_TRY_RETIRED;
    csp_ref w, unused;
    int64_t index;
    if (csp_pop_claimed(R, c, 0, &w, &index, &unused)) {
        R->finish(w, CSP_DONE, index, R->take(msg));
        return CSP_TRY_DONE;
    }
    if (c->count < c->capacity) {
        if (csp_ring_reserve(R, c) < 0)
            return CSP_TRY_ERROR;
        csp_ring_push(R, c, R->take(msg));
        return CSP_TRY_DONE;
    }
    return CSP_TRY_BLOCK;
}

/* ------------------------------------------------------------------ */
/* Poison and retire (channel locked)                                  */

static inline void
csp_poison(const csp_rules *R, csp_chan *c, int poisoned_status)
{
    if (c->poisoned)
        return;
    c->poisoned = 1;
    csp_wake_queue(R, c, 0, poisoned_status);
    csp_wake_queue(R, c, 1, poisoned_status);
    /* Dropped last: in private memory a message's __del__ may run any code. */
    csp_ring_drain(R, c);
}

/* One end leaves the channel (P2). */
static inline void
csp_retire(const csp_rules *R, csp_chan *c, int is_writer, int retired_status)
{
    if (is_writer) {
        if (--c->nwriters <= 0 && !c->no_writers) {
            c->no_writers = 1;
            /* Readers queue only when nothing is buffered or offered. */
            if (c->count == 0 && !c->wq_head)
                csp_wake_queue(R, c, 0, retired_status);
        }
    }
    else if (--c->nreaders <= 0 && !c->no_readers) {
        c->no_readers = 1;
        csp_wake_queue(R, c, 1, retired_status);
    }
}

#endif

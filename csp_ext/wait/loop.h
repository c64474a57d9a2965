/* loop.h - how an OS thread waits for its status word (rules/status.h),
 * written once for a Task of the threads backend (task.c) and a waiter
 * record of the processes backend (process.c).  Greenlets do not wait here:
 * a blocked greenlet runs the others (greenlet.c).
 *
 * The loop: look at the word; release the GIL; poll it for a while, then
 * sleep on its futex until a peer's finish wakes us or the slice ends;
 * take the GIL back; look again.  Slices bound every sleep: a signal cuts the
 * main thread's sleep short, and CSP_SIGNAL_SLICE bounds it for one that came
 * just before it (handlers run with none of our offers linked,
 * so a handler may use channels and one that raises loses no message: the
 * waiter gives up with CSP_RETRY and the operation starts again), and a
 * waiter whose claimer may die (another process) looks at it now and then.
 * A waiter gives up by itself only from WAITING (match.h, C1): a commit that
 * claimed it first wins, and its result is then on its way.
 */
#ifndef CSP_WAIT_LOOP_H
#define CSP_WAIT_LOOP_H

#include "csp.h"

#include <errno.h>
#include <sched.h>

typedef struct csp_wait_way {
    double slice;        /* a non-main thread's longest sleep; 0: until the deadline */
    /* Release the GIL, poll the word, sleep on it until `until` (monotonic
     * seconds, < 0: none), take the GIL back. */
    void (*sleep)(void *self, double until);
    /* GIL held: give up waiting with `status` (CSP_TIMEOUT, CSP_RETRY) and
     * withdraw the offers; 0 if a commit claimed the waiter first. */
    int (*give_up)(void *self, int status);
    /* Optional: the word has said CLAIMED since *since (0 the first time). */
    void (*claimed)(void *self, double *since);
    /* The number of the waiter's current operation (state dumps). */
    uint64_t (*op_number)(const void *self);
    /* Optional, GIL held: a status that someone asked this wait to give up
     * with (a deadlock across programs: shared/quiescence.c), or 0. */
    int (*asked_to_stop)(void *self);
} csp_wait_way;

/* Sleep on the futex while *word is WAITING, until `until` or a signal;
 * `sleeping` tells a finisher that a wake-up is needed.  No GIL needed. */
static inline long
csp_sleep_on_word(_Atomic uint32_t *word, _Atomic uint32_t *sleeping, int shared, double until)
{
    long r = 0;
    atomic_store(sleeping, 1);
    if (atomic_load(word) == CSP_WAITING)
        r = csp_futex_wait_op((void *)word, CSP_WAITING, until, shared);
    atomic_store(sleeping, 0);
    return r;
}

/* Wait (GIL held on entry and exit) for a final status: the status, or
 * CSP_RETRY (signal handlers ran: start the operation again), or -1 with the
 * exception a handler raised.  `sw`: the main thread's signal watch, or NULL. */
static inline int
csp_wait_for_word(const csp_wait_way *way, void *self, _Atomic uint32_t *word, double deadline,
                  csp_sigwatch *sw)
{
    double claimed_since = 0.0;
    for (;;) {
        uint32_t st = atomic_load_explicit(word, memory_order_acquire);
        if (st != CSP_WAITING && !CSP_IS_CLAIMED(st))
            return (int)st;
        if (CSP_IS_CLAIMED(st)) {
            /* A commit is filling in the result: another process's.  This
             * loop holds the GIL here, so an in-process claim must be
             * finished before its claimer lets the GIL go (match.h, C2 under
             * the GIL), or this would spin forever. */
            if (way->claimed)
                way->claimed(self, &claimed_since);
            sched_yield();
            continue;
        }
        double until = deadline;
        double slice = way->slice;
        if (sw && (slice <= 0 || slice > CSP_SIGNAL_SLICE))
            slice = CSP_SIGNAL_SLICE;
        if (slice > 0) {
            double end = csp_monotonic() + slice;
            if (until < 0 || end < until)
                until = end;
        }
        way->sleep(self, until);
        if (atomic_load(word) != CSP_WAITING)
            continue;   /* finished, or claimed and about to be */
        int asked = way->asked_to_stop ? way->asked_to_stop(self) : 0;
        if (asked) {
            if (way->give_up(self, asked))
                return asked;
            continue;
        }
        if (deadline >= 0 && csp_monotonic() >= deadline) {
            if (way->give_up(self, CSP_TIMEOUT))
                return CSP_TIMEOUT;
            continue;
        }
        if (sw && csp_sigwatch_due(sw)) {
            /* Without a signal the offers keep their place in the queues. */
            if (!way->give_up(self, CSP_RETRY))
                continue;
            csp_sigwatch_end(sw);
            const void *outer_by = csp_wait_interrupted_by;
            uint64_t outer_op = csp_wait_interrupted_op;
            csp_wait_interrupted_by = self;
            csp_wait_interrupted_op = way->op_number(self);
            int raised = PyErr_CheckSignals() < 0;
            csp_wait_interrupted_by = outer_by;
            csp_wait_interrupted_op = outer_op;
            return raised ? -1 : CSP_RETRY;
        }
    }
}

/* csp_wait_for_word with the signal watch of the main thread around it. */
static inline int
csp_wait_watched(const csp_wait_way *way, void *self, _Atomic uint32_t *word, double deadline,
                 int is_main_thread)
{
    if (!is_main_thread)
        return csp_wait_for_word(way, self, word, deadline, NULL);
    csp_sigwatch sw;
    csp_sigwatch_begin(&sw);
    int st = csp_wait_for_word(way, self, word, deadline, &sw);
    csp_sigwatch_end(&sw);
    return st;
}

#endif

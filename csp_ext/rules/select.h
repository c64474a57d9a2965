/* select.h - a blocking read or write, and the alternation's commit, written
 * once for every kind of channel (see match.h for the rules and invariants).
 *
 * Both run the same passes: with the channels locked, try each guard in
 * scan order and commit the first that is ready; if none is, link an offer
 * on every channel guard, count the waiter as blocked, unlock and wait for a
 * peer's commit (match.h, C1).  A wait that ends with CSP_RETRY (the offers
 * were withdrawn so that signal handlers could run) starts the passes again.
 * An alternation locks all of its channels in handle order, so two
 * alternations over the same channels cannot deadlock each other.
 *
 * How the waiter waits is the caller's: a csp_waiting table, constant like
 * csp_rules.  Errors are raised here (rules/errors.c), after unlocking.
 */
#ifndef CSP_RULES_SELECT_H
#define CSP_RULES_SELECT_H

#include "rules/match.h"

enum csp_guard_kind { CSP_GUARD_INPUT = 1, CSP_GUARD_OUTPUT, CSP_GUARD_SKIP, CSP_GUARD_TIMEOUT };

/* One guard of an alternation, as the rules see it. */
typedef struct csp_guard {
    csp_chan *c;                 /* channel guards; NULL for skip and timeout */
    csp_ref msg;                 /* output: the message (the caller's until committed) */
    int kind;                    /* enum csp_guard_kind */
    /* The end's own flag, read at every pass (a signal handler may retire the
     * end between a pass and the retry): a retired end raises when the scan
     * reaches it.  NULL for skip and timeout guards. */
    const char *end_retired;
    double seconds;              /* timeout guards */
} csp_guard;

typedef struct csp_waiting {
    /* Reset the waiter for an operation of n offers: its offer array, or
     * NULL with an exception.  Channels are locked. */
    csp_offer *(*prepare)(void *self, int64_t n);
    csp_ref (*self_ref)(const void *self);
    /* Optional, channels locked, just before a write's message may be
     * published (the shared arena stops counting it as in flight). */
    void (*publishing)(void *self);
    /* Every offer is linked, channels still locked: count as blocked. */
    void (*blocked)(void *self, int64_t noffers, double deadline);
    /* Channels unlocked: wait for a final status; on return no offer of
     * the waiter is linked any more.  The status, or -1 with an exception. */
    int (*wait)(void *self, double deadline);
    /* After CSP_DONE: the committed offer's index, and the message read (ours). */
    csp_ref (*result)(void *self, int64_t *chosen);
    /* Optional: a status that ends the operation before a retry (the
     * process was told to stop), or 0. */
    int (*stopped)(void *self);
    /* After CSP_DEADLOCK: what the waiter was blocked on, for the report
     * (new reference: (scope, generation, woken, [(channel, is_write)...]),
     * see csp_raise_deadlock), or NULL with an exception. */
    PyObject *(*describe)(void *self);
} csp_waiting;

double csp_monotonic(void);
/* rules/errors.c: the exception for a failed attempt (CSP_TRY_*) or a final
 * wait status other than CSP_DONE. */
void csp_raise_try(int code, int is_write);
void csp_raise_for_status(int status);
/* DeadlockError for a blocked operation: `blocked_on` (stolen; NULL: none)
 * is what csp_waiting.describe gave; is_select: it was an alternation. */
void csp_raise_deadlock(PyObject *blocked_on, int is_select);

/* A wait that ended other than CSP_DONE or CSP_TIMEOUT: 0 if the operation
 * starts again (CSP_RETRY: signal handlers ran and the process goes on), or
 * 1 with the exception raised. */
CSP_RULES_INLINE int
csp_wait_failed(const csp_waiting *W, void *self, int st, int is_select)
{
    if (st == CSP_RETRY) {
        int stop = W->stopped ? W->stopped(self) : 0;
        if (!stop)
            return 0;
        st = stop;
    }
    if (st == CSP_DEADLOCK)
        csp_raise_deadlock(W->describe(self), is_select);
    else if (st >= 0)
        csp_raise_for_status(st);
    return 1;
}

/* Read (is_write 0) or write `msg` on one channel, blocking until done.
 * 0 with *got (reads: the message, ours), or -1 with an exception; after a
 * failed write the message is still the caller's. */
CSP_RULES_INLINE int
csp_communicate(const csp_rules *R, const csp_waiting *W, void *self, csp_chan *c, int is_write,
                csp_ref msg, csp_ref *got)
{
    for (;;) {
        csp_chan_lock(R, c);
        if (is_write && W->publishing)
            W->publishing(self);
        int r = is_write ? csp_try_write(R, c, msg) : csp_try_read(R, c, got);
        if (r != CSP_TRY_BLOCK) {
            csp_chan_unlock(R, c);
            if (r == CSP_TRY_DONE)
                return 0;
            csp_raise_try(r, is_write);
            return -1;
        }
        csp_offer *o = W->prepare(self, 1);
        if (!o) {
            csp_chan_unlock(R, c);
            return -1;
        }
        o->waiter = W->self_ref(self);
        o->chan = R->ref(c);
        o->msg = msg;
        o->index = 0;
        o->is_write = is_write;
        csp_offer_link(R, c, o);
        W->blocked(self, 1, -1.0);
        csp_chan_unlock(R, c);
        int st = W->wait(self, -1.0);
        if (st == CSP_DONE) {
            int64_t chosen;
            *got = W->result(self, &chosen);
            return 0;
        }
        if (csp_wait_failed(W, self, st, 0))
            return -1;
    }
}

/* Lock each distinct channel of the guards once, in handle order (the same
 * in every process, unlike addresses; sorted into `locked`, n entries of
 * scratch); returns how many were locked. */
static inline int64_t
csp_lock_guards(const csp_rules *R, csp_guard *gs, int64_t n, csp_guard **locked)
{
    int64_t nl = 0;
    for (int64_t i = 0; i < n; i++) {
        if (!gs[i].c)
            continue;
        /* Insertion sort: alternations are short. */
        int64_t j = nl++;
        while (j > 0 && R->ref(locked[j - 1]->c) > R->ref(gs[i].c)) {
            locked[j] = locked[j - 1];
            j--;
        }
        locked[j] = &gs[i];
    }
    int64_t distinct = 0;
    for (int64_t j = 0; j < nl; j++) {
        if (distinct > 0 && locked[distinct - 1]->c == locked[j]->c)
            continue;
        locked[distinct++] = locked[j];
        csp_chan_lock(R, locked[j]->c);
    }
    return distinct;
}

static inline void
csp_unlock_guards(const csp_rules *R, csp_guard **locked, int64_t nlocked)
{
    for (int64_t j = 0; j < nlocked; j++)
        csp_chan_unlock(R, locked[j]->c);
}

/* Commit exactly one guard of an alternation; gs is in scan order (priority,
 * or the fair order).  0 with *chosen (a position in gs) and *got (input
 * guards: the message, ours; else 0), or -1 with an exception.  An output
 * guard's message is taken only when that guard commits.  `locked`: scratch
 * for n pointers (used only where channels have locks). */
static inline int
csp_select(const csp_rules *R, const csp_waiting *W, void *self, csp_guard *gs, int64_t n,
           csp_guard **locked, int64_t *chosen, csp_ref *got)
{
    double deadline = -2.0;   /* set on the first pass */
    *got = 0;
    for (;;) {
        int64_t nlocked = R->lock ? csp_lock_guards(R, gs, n, locked) : 0;
        if (W->publishing)
            W->publishing(self);
        /* Pass 1, in scan order: the first ready guard commits. */
        int64_t pick = -1, timeout_at = -1, nchannel = 0;
        int error = 0;
        double min_seconds = 0.0;
        for (int64_t k = 0; k < n && pick < 0 && !error; k++) {
            csp_guard *g = &gs[k];
            int r;
            switch (g->kind) {
            case CSP_GUARD_INPUT:
            case CSP_GUARD_OUTPUT:
                if (*g->end_retired) {
                    error = CSP_TRY_END_RETIRED;
                    pick = k;
                    break;
                }
                r = g->kind == CSP_GUARD_OUTPUT ? csp_try_write(R, g->c, g->msg)
                                                : csp_try_read(R, g->c, got);
                if (r == CSP_TRY_DONE)
                    pick = k;
                else if (r != CSP_TRY_BLOCK) {
                    error = r;
                    pick = k;
                }
                nchannel++;
                break;
            case CSP_GUARD_SKIP:
                pick = k;
                break;
            case CSP_GUARD_TIMEOUT:
                if (g->seconds <= 0.0) {
                    pick = k;   /* ready at once, in its priority position */
                    break;
                }
                if (timeout_at < 0 || g->seconds < min_seconds) {
                    timeout_at = k;
                    min_seconds = g->seconds;
                }
                break;
            }
        }
        if (deadline == -2.0)
            deadline = timeout_at >= 0 ? csp_monotonic() + min_seconds : -1.0;
        if (pick < 0 && timeout_at >= 0 && csp_monotonic() >= deadline)
            pick = timeout_at;
        if (pick >= 0) {
            csp_unlock_guards(R, locked, nlocked);
            if (error) {
                csp_raise_try(error, gs[pick].kind == CSP_GUARD_OUTPUT);
                return -1;
            }
            *chosen = pick;
            return 0;
        }
        /* Pass 2: offer on every channel guard, then wait. */
        csp_offer *offers = W->prepare(self, nchannel);
        if (!offers) {
            csp_unlock_guards(R, locked, nlocked);
            return -1;
        }
        csp_ref me = W->self_ref(self);
        int64_t o = 0;
        for (int64_t k = 0; k < n; k++) {
            csp_guard *g = &gs[k];
            if (!g->c)
                continue;
            csp_offer *of = &offers[o++];
            of->waiter = me;
            of->chan = R->ref(g->c);
            of->msg = g->kind == CSP_GUARD_OUTPUT ? g->msg : 0;
            of->index = k;
            of->is_write = g->kind == CSP_GUARD_OUTPUT;
            csp_offer_link(R, g->c, of);
        }
        W->blocked(self, o, deadline);
        csp_unlock_guards(R, locked, nlocked);
        int st = W->wait(self, deadline);
        if (st == CSP_DONE) {
            *got = W->result(self, chosen);
            return 0;
        }
        if (st == CSP_TIMEOUT) {
            *chosen = timeout_at;
            return 0;
        }
        if (csp_wait_failed(W, self, st, 1))
            return -1;
    }
}

#endif

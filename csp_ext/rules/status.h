/* status.h - the status word of a waiter (a Task, or a waiter record in the
 * shared arena): the outcome of a wait, and the commit point (match.h, C1).
 * Also the futex word a waiting thread or process sleeps on.
 */
#ifndef CSP_RULES_STATUS_H
#define CSP_RULES_STATUS_H

enum csp_status {
    CSP_WAITING = 0,
    CSP_DONE,       /* a peer committed one of our offers / a join finished */
    CSP_POISONED,   /* the channel of offer `chosen` was poisoned */
    CSP_RETIRED,    /* the channel of offer `chosen` was retired */
    CSP_TIMEOUT,    /* the deadline passed first (set by the waiter itself) */
    CSP_DEADLOCK,   /* every CSP process is blocked */
    CSP_KILLED,     /* the process was told to stop (Ctrl-C in its Parallel) */
    CSP_CANCELLED,  /* the waiter gave up (signal): nobody may commit it */
    CSP_RETRY,      /* offers withdrawn so that signal handlers could run (they may
                     * use channels themselves): do the operation again */
};

/* A committer is filling in the result.  The claim carries the committer's
 * pid in the same word, so that a waiter in another process never judges a
 * claim by an earlier claimer's pid (pids fit in 22 bits: Linux's
 * PID_MAX_LIMIT).  In-process claims carry 0. */
#define CSP_CLAIMED_BIT 0x80000000u
#define CSP_CLAIMED_BY(pid) (CSP_CLAIMED_BIT | (uint32_t)(pid))
#define CSP_IS_CLAIMED(st) (((uint32_t)(st) & CSP_CLAIMED_BIT) != 0)
#define CSP_CLAIMER(st) ((pid_t)((uint32_t)(st) & ~CSP_CLAIMED_BIT))

/* The status of a proxy offer's record (shared/proxy.c), for good: never
 * WAITING, so no claim of it succeeds (a failed claim pokes its agent
 * instead, wait/process.c), and clear of CSP_CLAIMED_BIT, so nobody takes it
 * for a claim in progress. */
#define CSP_PROXY 0x40000000u

#endif

/* shm.h - the processes backend: a shared arena, its allocator, robust
 * locks (shared/lock.c) and shared waiters.
 *
 * Everything lives in one memfd (nothing named in /dev/shm) mapped once over
 * a large reserved range before the first child is forked; the file grows
 * with ftruncate, so the mapping never moves and every process sees new
 * space at once.  Inside the arena, structures refer to each other by
 * offsets, never pointers.
 */
#ifndef CSP_SHM_H
#define CSP_SHM_H

#include "csp.h"

#include <pthread.h>
#include <sys/types.h>

typedef uint64_t shm_off;   /* 0 = none */

/* A transparent huge page (x86-64, arm64 with 4 KiB base pages): big received
 * buffers are placed and advised on this grain (message.c, vmread.c). */
#define SHM_HUGE_PAGE ((uintptr_t)2 << 20)

#define SHM_MAGIC 0x6873707363797050ULL   /* "Pycspsh" */
#define SHM_VERSION 7
#define SHM_NCLASSES 48

/* A process-shared robust lock (shared/lock.c): a process that dies
 * holding it does not wedge the others; the next locker learns it (return
 * value 1). */
typedef struct {
    _Atomic uint64_t word;       /* 0 free; owner tid, sleepers bit, owner start time */
} shm_lock;

typedef struct {
    uint64_t magic, version;
    uint64_t header_size;
    uint64_t file_size;          /* current size of the memfd (under lock) */
    uint64_t reserved;           /* size of the mapping */
    shm_lock lock;               /* allocator and waiter registry */
    uint64_t bump;               /* first never-allocated offset */
    shm_off free_lists[SHM_NCLASSES];
    uint64_t bytes_in_use;
    uint64_t blocks_in_use;
    uint64_t warm_free_bytes;    /* freed big blocks whose pages are kept (reuse without faults) */
    shm_off waiters;             /* registry of every process's waiter */
    _Atomic int64_t n_active;    /* deadlock accounting across processes */
    /* The deadlock last broken and how many channel waits it ended (under
     * the lock): the reports of one deadlock are gathered by generation. */
    uint64_t deadlock_generation;
    int64_t deadlock_woken;
    /* The PID namespace of the process that made it (inode of
     * /proc/self/ns/pid, 0 if unknown): the locks and the claim checks name
     * threads and processes by id, so every user must see the same ids. */
    uint64_t pid_namespace;
    /* Big buffers read from the writer's memory (shared/vmread.c): the pid
     * of the process that made the arena (every process of the run names it
     * its ptracer where Yama restricts process_vm_readv), and set once a
     * reader was refused, so that writers stop offering their memory. */
    int32_t root_pid;
    _Atomic int32_t vm_refused;
    /* The last sequence number given to such a write (unique in the run: a
     * record freed and made again starts from zero, its seqs must not). */
    _Atomic uint32_t vm_last_seq;
    uint32_t vm_pad;
    /* pycsp.net's messages to and from other programs (not heartbeats):
     * a deadlock across programs needs none in flight (shared/quiescence.c). */
    _Atomic uint64_t net_sent, net_received;
    /* The deadlock generation that was a run's (under the lock), and the
     * run's number for it, the same in every program of the run: their
     * reports are gathered as one. */
    uint64_t run_deadlock_generation, run_deadlock;
    /* Processes standing for a node of the run (its members), and work
     * handed from one of the agent's threads to another, not taken yet. */
    _Atomic int64_t run_members, run_handoffs;
    /* Set for good: a node was ever started from here (in a node: its own
     * nodes are not in the run's sums); a node ended without its last counts
     * (the sums here can never balance truly again: always busy). */
    _Atomic int32_t run_had_members, run_blind;
    _Atomic uint64_t last_record_identity;   /* shm_waiter.identity */
} shm_header;

/* One per OS process (per thread that uses channels). */
typedef struct shm_waiter {
    _Atomic uint32_t status;     /* enum csp_status, or CSP_CLAIMED_BY(pid); futex word */
    _Atomic uint32_t sleeping;
    int32_t pid;
    int32_t counted;             /* counts for deadlock accounting */
    _Atomic int32_t inactive;    /* blocked without deadline */
    int32_t dead;
    int32_t deadlocked_offers;   /* offers of the operation a deadlock ended (for its report) */
    int32_t parent;              /* pid of the process that started it (0: none) */
    int64_t chosen;
    shm_off msg;                 /* message block delivered to this waiter */
    shm_off pending;             /* message encoded by this process, not yet published */
    shm_off offers;              /* block of shm_offer[offers_cap] */
    int64_t noffers, offers_cap;
    shm_off next;                /* registry */
    /* Handing a child's count to its waiting parent (under the registry lock):
     * the parent sets parent_waiting while it waits for the child; a child
     * whose body ends then leaves its count as a credit for the parent's
     * wake-up instead of taking it away, so the count never touches zero
     * between a child's end and its parent running again.  (After the fields
     * of a hand-off, which stay in the record's first cache line.) */
    int32_t parent_waiting;
    int32_t credit;
    int32_t lingered;            /* told its parent it lingers; not yet seen there */
    uint32_t op_number;          /* counts its operations (state dumps) */
    int32_t dump_signal;         /* the signal it answers with a state dump, or 0 */
    int32_t waits_for_children;  /* its count is off while it waits for them (under lock) */
    /* A write whose big buffers the reader copies from this process's memory
     * (shared/vmread.c): vm_seq numbers such writes (never reset, so a stale
     * acknowledgement is never taken); the reader stores (seq << 3 | answer)
     * in vm_ack (futex word); vm_reader is the process that committed with
     * it (stamped under the channel lock); vm_handoff the arena copy made
     * when the reader was refused. */
    _Atomic uint32_t vm_ack;
    _Atomic uint32_t vm_seq;
    _Atomic int32_t vm_reader;
    /* A thread of pycsp.net's agent (csp_ext.shm_serve_quietly): a deadlock
     * never wakes it, for it serves other programs, not this one's CSP. */
    int32_t service;             /* SHM_SERVICE_*, or 0 */
    _Atomic shm_off vm_handoff;
    /* Whether it is idle for a deadlock across programs (shared/quiescence.c):
     * the operation (op_number) that blocks without a deadline, reachable
     * channels included; and a wait for another program's answer (a remote
     * operation's reply, a node's result), numbered in remote_waits. */
    _Atomic uint32_t idle_op;
    _Atomic int32_t remote_waiting;
    _Atomic uint32_t remote_waits;
    _Atomic uint32_t break_op;   /* the operation asked to end with CSP_DEADLOCK */
    uint32_t pad2;
    /* Unique in the arena for good (a freed record's block, made again, has
     * the same offset and counts its operations from 1 again). */
    uint64_t identity;
} shm_waiter;

/* shm_waiter.service: the agent's threads that serve parties in other
 * programs (a deadlock across programs ends their waits: they answer those
 * parties so), and its registry thread, which serves this program's own
 * processes (nothing ends its wait). */
enum { SHM_SERVICE_PARTIES = 1, SHM_SERVICE_REGISTRY = 2 };

/* The record of a proxy offer (shared/proxy.c): where a party of another
 * program, alternating on a channel of this arena, stands in the channel's
 * queues.  Its status is CSP_PROXY for good, so no claim of it succeeds;
 * a claim that finds it pokes the agent that keeps it instead, which then
 * claims the party over the network and tries the channel itself.  Offers
 * name it as their waiter, so its status word sits where a waiter's does. */
typedef struct {
    _Atomic uint32_t status;     /* CSP_PROXY */
    _Atomic uint32_t poked;      /* futex word: set by a failed claim or poke() */
    int32_t pid;                 /* the process that keeps it */
    int32_t pad;
} shm_proxy_record;
_Static_assert(offsetof(shm_proxy_record, status) == offsetof(shm_waiter, status),
               "a proxy record's status is where a waiter's is");

/* Offers live in the waiter's block of offers (shm_waiter.offers). */
typedef csp_offer shm_offer;

/* A channel in the arena.  The matching state comes first, so that a
 * channel's offset is its csp_chan's handle (offers refer to it). */
typedef struct {
    csp_chan s;                  /* messages are message handles (shared/message.c) */
    shm_lock lock;
    _Atomic int64_t refs;        /* Python objects and in-flight pickles referring to it */
    shm_off name;                /* repr of its name, NUL-terminated UTF-8 (reports), or 0 */
    /* Other programs may use it (pycsp.net homes it; set under the lock, never
     * cleared): a wait on it may end from afar, so it counts as running. */
    _Atomic int32_t reachable;
    int32_t pad;
} shm_channel;

extern char *shm_base;
extern shm_header *shm_hdr;
/* getpid() of this process, cached (no syscall) and refreshed in a forked
 * child; valid once an arena is mapped (shm_ensure, shm_attach). */
extern pid_t shm_my_pid;

#define SHM_PTR(type, off) ((type *)(shm_base + (off)))
#define SHM_OFF(ptr) ((shm_off)((char *)(ptr) - shm_base))

int shm_ensure(void);                       /* map the arena; 0/-1 with exception */
/* The arena lock (allocator and waiter registry), repaired first if its
 * previous owner died holding it; released with shm_lock_release. */
void shm_hdr_lock(void);
int shm_lock_init(shm_lock *l);             /* 0, or -1 with errno */
void shm_lock_destroy(shm_lock *l);
int shm_lock_acquire(shm_lock *l);          /* 0, or 1 if the previous owner died */
void shm_lock_release(shm_lock *l);
void shm_lock_forget_owner(void);           /* in a forked child */
/* The state letter and the start time of process or thread `tid` (0: the
 * calling thread) from /proc/TID/stat: 1; 0 if it cannot be read (no such
 * process, or no /proc); -1 if it reads as no stat line does. */
int shm_task_stat(pid_t tid, char *state, uint64_t *starttime);
/* recv_memory.c: warm memory for received big bytes/bytearrays.  Set while
 * message.c makes a big one; install before the first such decode. */
#define CSP_RECV_MEMORY_MIN ((size_t)4 << 20)   /* smallest request served */
extern _Thread_local int csp_recv_memory_decoding;
void csp_recv_memory_install(void);
PyObject *csp_recv_memory_stats(PyObject *m, PyObject *ignored);
shm_off shm_alloc(uint64_t size);           /* 0 with MemoryError set */
void shm_free(shm_off off);
uint64_t shm_block_size(shm_off off);       /* usable bytes of a block */

shm_waiter *shm_my_waiter(void);            /* NULL with exception */
shm_waiter *shm_existing_waiter(void);      /* this thread's, or NULL if it has none */
int shm_waiter_prepare(shm_waiter *w, int64_t noffers);
/* Claim a waiting waiter for a commit: 1 if we own its result now.  A
 * proxy record is never claimed: it is poked. */
int shm_waiter_claim(shm_waiter *w);
/* Set a proxy record's poked word and wake its agent (no GIL needed). */
void shm_proxy_poke(shm_proxy_record *p);
/* Publish a claimed waiter's result and wake it (within a deferral scope:
 * when the outermost scope ends). */
void shm_waiter_finish(shm_waiter *w, uint32_t status, int64_t chosen, shm_off msg);
/* A scope (nested: counted per thread) whose wakes wait for its end. */
void shm_wakes_defer_begin(void);
void shm_wakes_defer_end(void);
/* Wake what this thread holds, scope or not: it is about to wait for one of them. */
void shm_wakes_now(void);
/* Count w as blocked (deadline < 0) before its offers become visible, that
 * is, while the channel locks that published them are still held. */
void shm_waiter_mark_blocked(shm_waiter *w, double deadline);
/* w, counted as blocked, counts as running again (under the lock of a
 * channel it waits on, which became reachable from other programs). */
void shm_waiter_count_as_running(shm_waiter *w);
/* Ask w's operation `op` to end with CSP_DEADLOCK (it gives up by itself). */
void shm_ask_to_stop(shm_waiter *w, uint32_t op);
/* Wait (GIL held on entry/exit) until a peer finishes w, deadline passes
 * (CSP_TIMEOUT) or a signal handler raises (-1).  Offers must be linked.
 * CSP_RETRY: the offers were withdrawn and signal handlers ran; the caller
 * must start the operation again. */
int shm_waiter_wait(shm_waiter *w, double deadline);
/* 1 if process `pid` has ended (gone, or a zombie nobody reaped yet). */
int shm_process_gone(pid_t pid);
void shm_deadlock_uncount(int64_t n);
void shm_deadlock_count(int64_t n);

/* What the waiter records need from the layers above them, installed by
 * shared/channel.c: withdraw every offer of w still linked (after it woke,
 * or after it died), and drop a message nobody will read. */
typedef struct {
    void (*withdraw)(shm_waiter *w);
    void (*discard)(shm_off msg);
} shm_waiter_hooks;
void shm_install_waiter_hooks(const shm_waiter_hooks *hooks);

/* shared/message.c.  The channels pickled into message `msg` (a handle):
 * their number, and the first `cap` of their offsets in `out`. */
uint32_t shm_message_channels(shm_off msg, shm_off *out, uint32_t cap);
/* Whether `msg`, just encoded by this thread (not yet sent), carries channels:
 * no layout check (the block is its own), a write's hot path. */
int shm_message_carries_channels(shm_off msg);

/* shared/message.c.  A message handle (what offers, ring slots and waiter
 * records carry) is either the offset of a message block, always a multiple
 * of 16, or, with the low bit set, the message itself: an int of 61 bits,
 * None, False or True travel in the handle, so they take no block and no
 * allocator lock. */
#define SHM_MSG_INLINE 1u
#define SHM_MSG_IS_INLINE(handle) (((handle) & SHM_MSG_INLINE) != 0)
/* A block whose big buffers stay in the writer's memory (shared/vmread.c)
 * has this bit set in its handle, so that the commit can tell without
 * reading the block. */
#define SHM_MSG_REMOTE 2u
#define SHM_MSG_IS_REMOTE(handle) (((handle) & (SHM_MSG_INLINE | SHM_MSG_REMOTE)) == SHM_MSG_REMOTE)
#define SHM_MSG_BLOCK(handle) ((handle) & ~(shm_off)SHM_MSG_REMOTE)
void shm_message_discard(shm_off off);      /* a message nobody will read */
void shm_message_install_channel_release(void (*release)(shm_off chan));

/* shared/channel.c, for proxy offers (shared/proxy.c).  The matching rules
 * in the arena (their lock is the channel's); the channel of a ShmChannel
 * object (0 with TypeError if it is none); one more reference to a channel
 * in the arena, and giving one back. */
extern const csp_rules *const shm_channel_rules;
shm_off shm_channel_offset(PyObject *obj);
void shm_channel_hold(shm_off chan);
void shm_channel_release(shm_off chan);


#endif

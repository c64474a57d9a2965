/* lock.c - the process-shared lock of the arena and of every shared channel.
 *
 * One 64-bit word: 0 when free, else its owner's thread id (low 31 bits),
 * a "someone sleeps on it" bit (bit 31) and the owner thread's start time
 * (the high 32 bits, the low bits of /proc/TID/stat's starttime).  Taking it
 * free is one compare-and-swap and giving it back one exchange; a glibc
 * robust mutex costs several times that (its generic path, the robust list
 * kept on every lock and unlock), and a message takes two locks.
 *
 * A taker that finds it held spins a moment (an owner running on another
 * core gives it back within a fraction of a microsecond: a critical section
 * is a few hundred instructions), then sleeps on the low half (a futex) in
 * slices.  Once one owner has held it for two slices (by the clock: a
 * signal cuts a slice short), it asks whether that owner still lives: no
 * such thread, a zombie, or a thread of that id started at another time (the
 * id was reused) means it died holding the lock.  The one whose compare-and-swap
 * then replaces the dead owner's word owns the lock and learns that the
 * state it guards may be half-updated (shm_lock_acquire returns 1), as
 * with a robust mutex's EOWNERDEAD.  A stopped owner (SIGSTOP) is alive:
 * the others wait.
 *
 * Weaker than a robust mutex, whose owner's death the kernel reports at
 * once: a dead owner is found after 4 ms or more, and only where every
 * process sharing the arena sees one PID namespace and its /proc (arena.c
 * refuses to attach a process of another PID namespace; without /proc a dead
 * owner whose thread id was reused is not recognised).  An owner that execs
 * keeps its thread id and start time: its lock is freed only when the new
 * program ends.  A process never execs while it holds one of these locks.
 */
#include "shared/shm.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <signal.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define SLEEPERS 0x80000000u
#define TID_MASK 0x7fffffffu
#define SPINS_BEFORE_SLEEP 100
#define SLICE 0.002   /* seconds between looks at a silent owner */

/* This thread's owner word (tid | starttime << 32), for this process (a
 * forked child's thread is another thread: its cache is refreshed). */
static _Thread_local uint64_t my_word __attribute__((tls_model("initial-exec")));
static _Thread_local pid_t my_word_pid __attribute__((tls_model("initial-exec")));

int
shm_task_stat(pid_t tid, char *state, uint64_t *starttime)
{
    char path[64], buf[1024];
    if (tid)
        snprintf(path, sizeof(path), "/proc/%d/stat", (int)tid);
    else
        snprintf(path, sizeof(path), "/proc/thread-self/stat");
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return 0;
    buf[n] = 0;
    /* The name (field 2) may hold anything: the fields follow its last ')'.
     * Field 3 is the state, field 22 the start time. */
    char *p = strrchr(buf, ')');
    if (!p || p[1] != ' ')
        return -1;
    *state = p[2];
    p += 2;
    for (int field = 3; field < 22; field++) {
        p = strchr(p, ' ');
        if (!p)
            return -1;
        p++;
    }
    *starttime = strtoull(p, NULL, 10);
    return 1;
}

/* In a forked child (arena.c's handler, in the one thread the child has): the
 * parent thread's word must not be taken for this thread's, even if the
 * child's pid is one the parent's process once had. */
void
shm_lock_forget_owner(void)
{
    my_word = 0;
    my_word_pid = 0;
}

static double
monotonic(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static uint64_t
owner_word(void)
{
    if (my_word_pid == shm_my_pid && my_word)
        return my_word;
    pid_t tid = (pid_t)syscall(SYS_gettid);
    char state;
    uint64_t start = 0;
    if (shm_task_stat(0, &state, &start) <= 0)
        start = 0;   /* no /proc: liveness then rests on kill(tid, 0) alone */
    my_word = ((uint64_t)(uint32_t)start << 32) | ((uint32_t)tid & TID_MASK);
    my_word_pid = shm_my_pid;
    return my_word;
}

/* Whether the owner recorded in `word` is gone (died holding the lock). */
static int
owner_gone(uint64_t word)
{
    pid_t tid = (pid_t)(word & TID_MASK);
    if (kill(tid, 0) < 0 && errno == ESRCH)
        return 1;
    char state;
    uint64_t start;
    if (shm_task_stat(tid, &state, &start) <= 0)
        return 0;   /* kill says it exists: without /proc, believe it */
    if (state == 'Z' || state == 'X')
        return 1;
    /* 0: the owner could not read its own start time; judge by the rest. */
    uint32_t recorded = (uint32_t)(word >> 32);
    return recorded != 0 && (uint32_t)start != recorded;
}

/* The futex: the word's low half (tid and sleepers bit). */
static inline uint32_t *
low_half(_Atomic uint64_t *word)
{
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    return (uint32_t *)word + 1;
#else
    return (uint32_t *)word;
#endif
}

static long
futex_wait_slice(_Atomic uint64_t *word, uint32_t expected)
{
    struct timespec rel = {0, (long)(SLICE * 1e9)};
    return syscall(SYS_futex, low_half(word), FUTEX_WAIT, expected, &rel, NULL, 0);
}

/* 0, or -1 with errno set. */
int
shm_lock_init(shm_lock *l)
{
    if (csp_fail_here(CSP_FAIL_LOCK_INIT)) {
        errno = EAGAIN;
        return -1;
    }
    atomic_store(&l->word, 0);
    return 0;
}

void
shm_lock_destroy(shm_lock *l)
{
    (void)l;
}

/* The contended path: see the file's comment. */
static int
lock_slow(shm_lock *l, uint64_t mine)
{
    for (int i = 0; i < SPINS_BEFORE_SLEEP; i++) {
        csp_cpu_relax();
        uint64_t expect = 0;
        if (atomic_load_explicit(&l->word, memory_order_relaxed) == 0 &&
            atomic_compare_exchange_strong_explicit(&l->word, &expect, mine, memory_order_acquire,
                                                    memory_order_relaxed))
            return 0;
    }
    /* From here on the lock is taken with the sleepers bit set: others may
     * sleep on it still, and our release must wake them. */
    uint64_t owner_seen = 0;   /* the owner being timed, with its sleepers bit */
    double owner_since = 0;
    for (;;) {
        uint64_t v = atomic_load_explicit(&l->word, memory_order_relaxed);
        if (v == 0) {
            if (atomic_compare_exchange_strong_explicit(&l->word, &v, mine | SLEEPERS,
                                                        memory_order_acquire,
                                                        memory_order_relaxed))
                return 0;
            continue;
        }
        if ((v | SLEEPERS) == (mine | SLEEPERS))
            Py_FatalError("pycsp: a shared lock taken again by the thread that holds it");
        if (!(v & SLEEPERS)) {
            if (!atomic_compare_exchange_strong_explicit(&l->word, &v, v | SLEEPERS,
                                                         memory_order_relaxed,
                                                         memory_order_relaxed))
                continue;
            v |= SLEEPERS;
        }
        if (owner_seen != (v | SLEEPERS)) {
            owner_seen = v | SLEEPERS;
            owner_since = monotonic();
        }
        else if (monotonic() - owner_since >= 2 * SLICE && owner_gone(v)) {
            /* The same owner for two slices, and it is gone. */
            if (atomic_compare_exchange_strong_explicit(&l->word, &v, mine | SLEEPERS,
                                                        memory_order_acquire,
                                                        memory_order_relaxed))
                return 1;
            continue;
        }
        futex_wait_slice(&l->word, (uint32_t)v);
    }
}

int
shm_lock_acquire(shm_lock *l)
{
    uint64_t mine = owner_word();
    uint64_t expect = 0;
    if (atomic_compare_exchange_strong_explicit(&l->word, &expect, mine, memory_order_acquire,
                                                memory_order_relaxed))
        return 0;
    return lock_slow(l, mine);
}

void
shm_lock_release(shm_lock *l)
{
    uint64_t was = atomic_exchange_explicit(&l->word, 0, memory_order_release);
    if (was & SLEEPERS)
        syscall(SYS_futex, low_half(&l->word), FUTEX_WAKE, 1, NULL, NULL, 0);
}

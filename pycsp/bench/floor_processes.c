/*
 * The floor for process-to-process hand-offs: bare forked OS processes (fork)
 * passing values through words of shared memory (mmap MAP_SHARED).  Three
 * programs, each under the same waiting modes:
 *
 *   handoff    two processes pass a counter back and forth through one word, N
 *              round trips; ns per hand-off (one direction; a round trip is two).
 *   ring       one token in a ring of N processes, each reading its own channel
 *              and writing its successor's; ns per hop (after 2N+100 warm-up hops).
 *   commstime  the Commstime network of 4 processes: prefix -> delta -> succ ->
 *              prefix, delta also -> consumer (delta writes the consumer first);
 *              the consumer times CYCLES cycles (after 1000 warm-up cycles); ns per
 *              channel communication (4 per cycle).
 *
 * In ring and commstime each channel is one shared word (0 = empty, else the value
 * + 1) and a count of the processes asleep on it: a write waits for the word to be
 * empty and stores the value, a read waits for it to be full and empties it; either
 * side calls FUTEX_WAKE only when someone sleeps on the word.  A one-place buffer,
 * not a rendezvous (the writer does not wait for the reader): with one token in
 * flight it never blocks a writer, so it is the cheapest hand-off a channel of
 * sleeping processes can make, a lower bound for a rendezvous.  A mode with the
 * suffix "-rv" (e.g. hybrid-rv) makes every channel a rendezvous, as pycsp's
 * channels are: a write ends when a reader has its value (see READER_WAITING:
 * one side waits, the other finishes it, one wake-up per communication).
 *
 * Modes (how a process waits for its word):
 *   futex    sleeping wait: FUTEX_WAIT / FUTEX_WAKE (shared, not _PRIVATE); every
 *            hand-off wakes a sleeping process (handoff: FUTEX_WAKE every time)
 *   spin     busy-wait on the atomic word (no syscall; needs a free core for every
 *            waiting process: with more processes than cores it is hopeless)
 *   hybrid   the library's policy (csp_ext/shm.c): poll with sched_yield up to
 *            50 us, then sleep on the futex; in ring and commstime, as there, a
 *            process whose recent waits (moving average) exceeded 100 us sleeps
 *            at once
 *
 * Build:  cc -O2 -pthread -o floor_processes floor_processes.c
 * Usage:  floor_processes [MODE|all] [ROUND_TRIPS] [REPEATS]      (handoff)
 *         floor_processes ring MODE[-rv]|all N HOPS [REPEATS]
 *         floor_processes commstime MODE[-rv]|all CYCLES [REPEATS]
 * Output: one line per mode and repeat, the figure in ns last:
 *         "<mode> <ns per hand-off>", "ring-<N> <mode> <ns per hop>",
 *         "commstime <mode> <ns per communication>"
 */
#define _GNU_SOURCE
#include <limits.h>
#include <linux/futex.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static long N;
static _Atomic int *word;      /* in a MAP_SHARED page */
static _Atomic int *waiters;   /* how many sleep on the word (skip FUTEX_WAKE if 0) */

static long futex(void *addr, int op, int val)
{
    return syscall(SYS_futex, addr, op, val, NULL, NULL, 0);
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

static void pass_futex(int parity)
{
    for (long i = 0; i < N; i++) {
        int v;
        while (((v = atomic_load_explicit(word, memory_order_acquire)) & 1) != parity) {
            atomic_fetch_add(waiters, 1);
            futex((void *)word, FUTEX_WAIT, v);
            atomic_fetch_sub(waiters, 1);
        }
        atomic_store_explicit(word, v + 1, memory_order_release);
        futex((void *)word, FUTEX_WAKE, 1);
    }
}

static void pass_spin(int parity)
{
    for (long i = 0; i < N; i++) {
        int v;
        while (((v = atomic_load_explicit(word, memory_order_acquire)) & 1) != parity)
            cpu_relax();
        atomic_store_explicit(word, v + 1, memory_order_release);
    }
}

static void pass_hybrid(int parity)
{
    for (long i = 0; i < N; i++) {
        int v;
        double t0 = 0;
        while (((v = atomic_load_explicit(word, memory_order_acquire)) & 1) != parity) {
            if (t0 == 0)
                t0 = now();
            if (now() - t0 < 50e-6) {
                sched_yield();
                continue;
            }
            atomic_fetch_add(waiters, 1);
            futex((void *)word, FUTEX_WAIT, v);
            atomic_fetch_sub(waiters, 1);
        }
        atomic_store(word, v + 1);      /* seq_cst: ordered before the load below */
        if (atomic_load(waiters))
            futex((void *)word, FUTEX_WAKE, 1);
    }
}

static double run(void (*fn)(int))
{
    atomic_store(word, 0);
    atomic_store(waiters, 0);
    double t0 = now();
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        exit(1);
    }
    if (pid == 0) {
        fn(1);
        _exit(0);
    }
    fn(0);
    int status;
    waitpid(pid, &status, 0);
    double dt = now() - t0;
    return dt * 1e9 / (2.0 * N); /* 2N hand-offs */
}

/* ------------------------------------------------------------------------ */
/* ring and commstime: N processes, one word per channel                     */
/* ------------------------------------------------------------------------ */

enum { M_FUTEX, M_SPIN, M_HYBRID };
static const char *const mode_names[] = {"futex", "spin", "hybrid"};
#define SPIN_BUDGET 50e-6

typedef struct {
    _Atomic uint32_t word;      /* 0: empty, else value + 1 */
    _Atomic uint32_t sleepers;  /* processes in FUTEX_WAIT on word */
    char pad[56];
} chan;

typedef struct {
    double t0, t1;              /* timed part, written by the process that times */
    _Atomic int ready;
    char pad[44];
    chan ch[];
} net_shared;

static net_shared *net;
static int net_mode;
static int net_rendezvous;      /* a write ends when a reader has its value */
static double recent_wait;      /* per process: moving average of waits (hybrid) */

/* The rendezvous (-rv): a reader that finds the word empty marks it so and
 * waits; a writer that finds that mark stores its value, wakes the reader and
 * goes on (the reader is committed to it: one wake-up, as in pycsp, where a
 * writer that finds a blocked reader finishes it); a writer that finds the word
 * empty stores its value and waits until the reader has taken it. */
#define READER_WAITING 0xfffffffeu

enum { WANT_EMPTY, WANT_FULL, WANT_CHANGE };

static inline int ready(uint32_t v, int want, uint32_t from)
{
    if (want == WANT_EMPTY)
        return v == 0;
    if (want == WANT_FULL)
        return v != 0 && v != READER_WAITING;
    return v != from;
}

/* Wait until the word is empty, full, or no longer `from`; return it. */
static uint32_t chan_wait(chan *c, int want, uint32_t from)
{
    uint32_t v = atomic_load(&c->word);
    if (ready(v, want, from))
        return v;
    double started = 0;
    if (net_mode == M_SPIN) {
        while (v = atomic_load_explicit(&c->word, memory_order_acquire), !ready(v, want, from))
            cpu_relax();
        return v;
    }
    if (net_mode == M_HYBRID) {
        started = now();
        if (recent_wait <= 2 * SPIN_BUDGET) {
            while (now() - started < SPIN_BUDGET) {
                sched_yield();
                v = atomic_load(&c->word);
                if (ready(v, want, from))
                    goto got;
            }
        }
    }
    for (;;) {
        atomic_fetch_add(&c->sleepers, 1);
        futex((void *)&c->word, FUTEX_WAIT, (int)v);   /* returns at once if word != v */
        atomic_fetch_sub(&c->sleepers, 1);
        v = atomic_load(&c->word);
        if (ready(v, want, from))
            break;
    }
got:
    if (net_mode == M_HYBRID)
        recent_wait = 0.75 * recent_wait + 0.25 * (now() - started);
    return v;
}

static void chan_set(chan *c, uint32_t v)
{
    atomic_store(&c->word, v);          /* seq_cst: ordered before the load below */
    if (atomic_load(&c->sleepers))
        futex((void *)&c->word, FUTEX_WAKE, INT_MAX);
}

static void wake_sleepers(chan *c)
{
    if (atomic_load(&c->sleepers))
        futex((void *)&c->word, FUTEX_WAKE, INT_MAX);
}

static void chan_write(chan *c, uint32_t value)
{
    if (!net_rendezvous) {
        chan_wait(c, WANT_EMPTY, 0);
        chan_set(c, value + 1);
        return;
    }
    uint32_t v = atomic_load(&c->word);
    for (;;) {
        if (v == READER_WAITING || v == 0) {
            /* seq_cst: the store is ordered before wake_sleepers' load */
            if (!atomic_compare_exchange_strong(&c->word, &v, value + 1))
                continue;
            if (v == READER_WAITING)
                wake_sleepers(c);
            else
                chan_wait(c, WANT_CHANGE, value + 1);   /* until the reader took it */
            return;
        }
        v = chan_wait(c, WANT_CHANGE, v);   /* a value nobody took yet (STOP) */
    }
}

static uint32_t chan_read(chan *c)
{
    uint32_t v = atomic_load(&c->word);
    if (net_rendezvous && v == 0 && atomic_compare_exchange_strong(&c->word, &v, READER_WAITING))
        v = READER_WAITING;
    if (!ready(v, WANT_FULL, 0))
        v = chan_wait(c, WANT_FULL, 0);
    chan_set(c, 0);     /* wakes a writer that waits for its value to be taken */
    return v - 1;
}

/* ring: process i reads ch[i], writes ch[(i + 1) % n].  The token is the hop count;
 * whoever receives hop `warm` notes t0, whoever receives hop `last` notes t1 and
 * sends STOP, which each process passes on before it exits. */
#define STOP 0xfffffff0u

static void ring_node(int i, int n, uint32_t warm, uint32_t last)
{
    chan *in = &net->ch[i], *out = &net->ch[(i + 1) % n];
    atomic_fetch_add(&net->ready, 1);
    if (i == 0)
        chan_write(out, 1);
    for (;;) {
        uint32_t h = chan_read(in);
        if (h == STOP) {                /* pass it on without waiting: the */
            chan_set(out, STOP + 1);    /* successor may be gone already   */
            return;
        }
        if (h == warm)
            net->t0 = now();
        if (h == last) {
            net->t1 = now();
            chan_set(out, STOP + 1);
            return;
        }
        chan_write(out, h + 1);
    }
}

/* commstime: 0 prefix, 1 delta, 2 successor, 3 consumer; channels a (prefix ->
 * delta), b (delta -> succ), c (succ -> prefix), d (delta -> consumer).  The
 * value is the cycle number; every process stops after it has passed on `last`. */
static void ct_node(int i, uint32_t warm, uint32_t last)
{
    chan *a = &net->ch[0], *b = &net->ch[1], *c = &net->ch[2], *d = &net->ch[3];
    atomic_fetch_add(&net->ready, 1);
    uint32_t v;
    switch (i) {
    case 0:
        for (v = 0;; v = chan_read(c)) {
            chan_write(a, v);
            if (v == last)
                return;
        }
    case 1:
        do {
            v = chan_read(a);
            chan_write(d, v);
            chan_write(b, v);
        } while (v != last);
        return;
    case 2:
        for (;;) {
            v = chan_read(b);
            if (v == last)      /* the prefix has stopped: nobody reads c */
                return;
            chan_write(c, v + 1);
        }
    default:
        do {
            v = chan_read(d);
            if (v == warm)
                net->t0 = now();
        } while (v != last);
        net->t1 = now();
        return;
    }
}

/* ns per hop (ring) or per communication (commstime); < 0 on failure */
static double run_net(int commstime, int mode, int n, long count)
{
    long warm = commstime ? 1000 : 2L * n + 100;
    if (warm + count + 1 >= (long)STOP) {
        fprintf(stderr, "count too large\n");
        exit(2);
    }
    size_t size = sizeof(net_shared) + (size_t)n * sizeof(chan);
    net = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (net == MAP_FAILED) {
        perror("mmap");
        exit(1);
    }
    net_mode = mode;
    recent_wait = 0;
    fflush(stdout);
    int started = 0, failed = 0;
    for (int i = 0; i < n; i++) {
        pid_t pid = fork();
        if (pid < 0) {
            perror("fork");
            failed = 1;
            break;
        }
        if (pid == 0) {
            if (commstime)
                ct_node(i, (uint32_t)warm, (uint32_t)(warm + count));
            else
                ring_node(i, n, (uint32_t)warm, (uint32_t)(warm + count));
            _exit(0);
        }
        started++;
    }
    if (failed) {           /* the ring cannot close: stop the ones started */
        for (int i = 0; i < n; i++)
            chan_set(&net->ch[i], STOP + 1);
    }
    for (int i = 0; i < started; i++) {
        int status;
        if (wait(&status) < 0 || !WIFEXITED(status) || WEXITSTATUS(status))
            failed = 1;
    }
    double ns = (net->t1 - net->t0) * 1e9 / ((commstime ? 4.0 : 1.0) * count);
    munmap(net, size);
    return failed ? -1 : ns;
}

static int mode_index(const char *name)
{
    for (int m = 0; m < 3; m++)
        if (!strcmp(name, mode_names[m]))
            return m;
    return strcmp(name, "all") ? -1 : 3;
}

static int main_net(int argc, char **argv)
{
    int commstime = !strcmp(argv[1], "commstime");
    int need = commstime ? 4 : 5;
    if (argc < need) {
        fprintf(stderr, "usage: %s ring MODE|all N HOPS [REPEATS]\n"
                        "       %s commstime MODE|all CYCLES [REPEATS]\n", argv[0], argv[0]);
        return 2;
    }
    char mode[32];
    snprintf(mode, sizeof(mode), "%s", argv[2]);
    size_t len = strlen(mode);
    if (len > 3 && !strcmp(mode + len - 3, "-rv")) {
        net_rendezvous = 1;
        mode[len - 3] = 0;
    }
    int m = mode_index(mode);
    int n = commstime ? 4 : atoi(argv[3]);
    long count = atol(argv[need - 1]);
    int repeats = argc > need ? atoi(argv[need]) : 1;
    if (m < 0 || n < 2 || count < 1) {
        fprintf(stderr, "bad arguments (MODE futex|spin|hybrid|all, N >= 2, count >= 1)\n");
        return 2;
    }
    for (int k = (m == 3 ? 0 : m); k <= (m == 3 ? 2 : m); k++) {
        for (int r = 0; r < repeats; r++) {
            double ns = run_net(commstime, k, n, count);
            if (ns < 0) {
                fprintf(stderr, "a process failed\n");
                return 1;
            }
            const char *rv = net_rendezvous ? "-rv" : "";
            if (commstime)
                printf("commstime %s%s %.1f\n", mode_names[k], rv, ns);
            else
                printf("ring-%d %s%s %.1f\n", n, mode_names[k], rv, ns);
            fflush(stdout);
        }
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc > 1 && (!strcmp(argv[1], "ring") || !strcmp(argv[1], "commstime")))
        return main_net(argc, argv);
    const char *mode = argc > 1 ? argv[1] : "all";
    N = argc > 2 ? atol(argv[2]) : 200000;
    int repeats = argc > 3 ? atoi(argv[3]) : 5;
    void *page = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (page == MAP_FAILED) {
        perror("mmap");
        return 1;
    }
    word = (_Atomic int *)page;
    waiters = (_Atomic int *)((char *)page + 64);
    struct { const char *name; void (*fn)(int); } modes[] = {
        {"futex", pass_futex}, {"spin", pass_spin}, {"hybrid", pass_hybrid}};
    int found = 0;
    for (int m = 0; m < 3; m++) {
        if (strcmp(mode, "all") && strcmp(mode, modes[m].name))
            continue;
        found = 1;
        for (int r = 0; r < repeats; r++) {
            printf("%s %.1f\n", modes[m].name, run(modes[m].fn));
            fflush(stdout);
        }
    }
    if (!found) {
        fprintf(stderr, "unknown mode %s (futex|spin|hybrid|all)\n", mode);
        return 2;
    }
    return 0;
}

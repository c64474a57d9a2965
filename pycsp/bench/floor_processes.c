/*
 * The floor for a process-to-process hand-off: two OS processes (fork) pass a
 * counter back and forth through one word of shared memory (mmap MAP_SHARED),
 * N round trips, and the program prints nanoseconds per hand-off (one hand-off =
 * one direction; a round trip is two).
 *
 * Modes:
 *   futex    sleeping wait: FUTEX_WAIT / FUTEX_WAKE (shared, not _PRIVATE) on the
 *            counter word; every hand-off wakes a sleeping process
 *   spin     busy-wait on the atomic word (no syscall; needs two free cores)
 *   hybrid   spin up to 50 us with sched_yield, then sleep on the futex
 *
 * Build:  cc -O2 -pthread -o floor_processes floor_processes.c
 * Usage:  floor_processes [mode|all] [round_trips] [repeats]
 * Output: one line per mode and repeat:  "<mode> <ns per hand-off>"
 */
#define _GNU_SOURCE
#include <limits.h>
#include <linux/futex.h>
#include <sched.h>
#include <stdatomic.h>
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
        atomic_store_explicit(word, v + 1, memory_order_release);
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

int main(int argc, char **argv)
{
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

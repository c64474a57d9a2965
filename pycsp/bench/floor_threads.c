/*
 * The floor for a thread-to-thread hand-off: two pthreads pass a counter back
 * and forth, N round trips, and the program prints nanoseconds per hand-off
 * (one hand-off = one direction; a round trip is two).
 *
 * Modes:
 *   condvar  pthread_mutex + pthread_cond_wait   (sleeping wait, futex underneath)
 *   futex    raw FUTEX_WAIT / FUTEX_WAKE on the counter word (sleeping wait)
 *   spin     busy-wait on an atomic (no syscall; needs two free cores)
 *
 * Build:  cc -O2 -pthread -o floor_threads floor_threads.c
 * Usage:  floor_threads [mode|all] [round_trips] [repeats]
 * Output: one line per mode and repeat:  "<mode> <ns per hand-off>"
 */
#define _GNU_SOURCE
#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static long N;

/* ---- condvar ---- */
static pthread_mutex_t mtx = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static long cv_value;

static void cv_pass(long want_parity)
{
    /* wait until counter has my parity, then increment and signal */
    pthread_mutex_lock(&mtx);
    while ((cv_value & 1) != want_parity)
        pthread_cond_wait(&cv, &mtx);
    cv_value++;
    pthread_cond_signal(&cv);
    pthread_mutex_unlock(&mtx);
}

static void *cv_thread(void *arg)
{
    long parity = (long)arg;
    for (long i = 0; i < N; i++)
        cv_pass(parity);
    return NULL;
}

/* ---- futex ---- */
static _Atomic int fx_value;

static long futex(void *addr, int op, int val)
{
    return syscall(SYS_futex, addr, op, val, NULL, NULL, 0);
}

static void *fx_thread(void *arg)
{
    int parity = (int)(long)arg;
    for (long i = 0; i < N; i++) {
        int v;
        while (((v = atomic_load_explicit(&fx_value, memory_order_acquire)) & 1) != parity)
            futex(&fx_value, FUTEX_WAIT_PRIVATE, v);
        atomic_store_explicit(&fx_value, v + 1, memory_order_release);
        futex(&fx_value, FUTEX_WAKE_PRIVATE, 1);
    }
    return NULL;
}

/* ---- spin ---- */
static _Atomic long sp_value;

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

static void *sp_thread(void *arg)
{
    long parity = (long)arg;
    for (long i = 0; i < N; i++) {
        long v;
        while (((v = atomic_load_explicit(&sp_value, memory_order_acquire)) & 1) != parity)
            cpu_relax();
        atomic_store_explicit(&sp_value, v + 1, memory_order_release);
    }
    return NULL;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static double run(void *(*fn)(void *))
{
    pthread_t a, b;
    cv_value = 0;
    atomic_store(&fx_value, 0);
    atomic_store(&sp_value, 0);
    double t0 = now();
    pthread_create(&a, NULL, fn, (void *)0L);
    pthread_create(&b, NULL, fn, (void *)1L);
    pthread_join(a, NULL);
    pthread_join(b, NULL);
    double dt = now() - t0;
    return dt * 1e9 / (2.0 * N); /* 2N hand-offs */
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "all";
    N = argc > 2 ? atol(argv[2]) : 200000;
    int repeats = argc > 3 ? atoi(argv[3]) : 5;
    struct { const char *name; void *(*fn)(void *); } modes[] = {
        {"condvar", cv_thread}, {"futex", fx_thread}, {"spin", sp_thread}};
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
        fprintf(stderr, "unknown mode %s (condvar|futex|spin|all)\n", mode);
        return 2;
    }
    return 0;
}

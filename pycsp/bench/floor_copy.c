/*
 * The floor for big messages between two processes: what the machine costs to
 * move SIZE bytes from one forked process to another with the same system calls
 * as the processes backend, with nothing else around them.
 *
 *   arena   (pycsp.processes' design) the writer copies its message into a block
 *           of a shared memfd (MAP_SHARED, reserved once, grown by ftruncate, a
 *           block made by fallocate and mapped with one MADV_POPULATE_WRITE the
 *           first time the writer uses it, then reused), hands its number over one
 *           shared word and waits until the reader took it (a rendezvous).
 *           KIND bytes: the reader copies the block into memory of its own (a
 *           new bytes object): the memory of the message before the last one,
 *           kept when it was dropped, else fresh malloc'd memory whose 2 MiB
 *           interior is advised MADV_HUGEPAGE (as recv_memory.c gives ours),
 *           then frees the block; KIND numpy: the reader keeps the block as its
 *           message (a view) until the next one arrives, then frees it.
 *   vmread  (a design without shared memory, for comparison) the writer's
 *           message stays in its own memory (malloc'd, MADV_HUGEPAGE, as numpy
 *           allocates big arrays); the reader copies it with process_vm_readv
 *           straight into fresh memory advised as above, then tells the writer.
 *           KIND makes no difference.
 *
 * The writer makes its message first (untimed), then the reader times COUNT
 * messages after WARM untimed ones.  Fresh processes: WARM 0, COUNT 6, every
 * block and page new (this program is a fresh process).  Long-lived: WARM 4,
 * so every block of the rotation has been used once.  Waits are futex sleeps.
 *
 * Build:  cc -O2 -pthread -o floor_copy floor_copy.c
 * Usage:  floor_copy arena|vmread bytes|numpy SIZE COUNT WARM
 * Output: "<mode> <kind> <size> <count> <warm> <GB/s>"  (1 GB = 1e9 bytes)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif
#define HUGE ((uintptr_t)2 << 20)
#define NBLOCKS 4

typedef struct {
    _Atomic int slot;          /* 0 empty, else block number + 1 (arena) or 1 (vmread) */
    _Atomic int ready;         /* the writer made its message */
    _Atomic int block_free[NBLOCKS];
    uintptr_t remote;          /* vmread: the writer's message */
    double gbps;
} control;

static control *ctl;
static char *arena;
static int arena_fd;
static size_t size, block_size;
static long count, warm;

static void die(const char *what)
{
    perror(what);
    exit(1);
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void futex_wait(_Atomic int *w, int v)
{
    syscall(SYS_futex, (void *)w, FUTEX_WAIT, v, NULL, NULL, 0);
}

static void futex_wake(_Atomic int *w)
{
    syscall(SYS_futex, (void *)w, FUTEX_WAKE, 1, NULL, NULL, 0);
}

/* Wait until *w != v (want_change) or *w == v; returns the value seen. */
static int wait_until(_Atomic int *w, int v, int want_change)
{
    int x;
    while (((x = atomic_load(w)) != v) != want_change)
        futex_wait(w, x);
    return x;
}

static void advise_huge(char *p, size_t len)
{
    uintptr_t first = ((uintptr_t)p + HUGE - 1) & ~(HUGE - 1);
    uintptr_t last = ((uintptr_t)p + len) & ~(HUGE - 1);
    if (last > first)
        madvise((void *)first, last - first, MADV_HUGEPAGE);
}

/* A fresh destination, as the reader's new bytes object gets it. */
static char *fresh_copy_destination(void)
{
    char *p = malloc(size);
    if (!p)
        die("malloc");
    advise_huge(p, size);
    return p;
}

static char *writer_message(void)
{
    char *msg = malloc(size);
    if (!msg)
        die("malloc");
    advise_huge(msg, size);
    memset(msg, 1, size);
    return msg;
}

static void arena_writer(void)
{
    char *msg = writer_message();
    size_t file_size = 0;
    int populated[NBLOCKS] = {0};
    atomic_store(&ctl->ready, 1);
    futex_wake(&ctl->ready);
    for (long i = 0; i < warm + count; i++) {
        int b = -1;
        while (b < 0) {
            for (int k = 0; k < NBLOCKS && b < 0; k++) {
                int one = 1;
                if (atomic_compare_exchange_strong(&ctl->block_free[k], &one, 0))
                    b = k;
            }
            if (b < 0)
                sched_yield();    /* every block held: the reader frees one soon */
        }
        char *block = arena + (size_t)b * block_size;
        if ((size_t)(b + 1) * block_size > file_size) {
            file_size = (size_t)(b + 1) * block_size;
            if (ftruncate(arena_fd, (off_t)file_size) < 0)
                die("ftruncate");
        }
        if (!populated[b]) {
            size_t used = (size + 4095) & ~(size_t)4095;
            fallocate(arena_fd, FALLOC_FL_KEEP_SIZE, (off_t)b * block_size, (off_t)used);
            madvise(block, used, MADV_POPULATE_WRITE);
            populated[b] = 1;
        }
        memcpy(block, msg, size);
        atomic_store(&ctl->slot, b + 1);
        futex_wake(&ctl->slot);
        wait_until(&ctl->slot, 0, 0);   /* taken */
    }
}

static void arena_reader(int numpy)
{
    volatile char sink = 0;
    char *held = NULL, *spare = NULL;
    int held_block = -1;
    double t0 = 0;
    wait_until(&ctl->ready, 1, 0);
    for (long i = 0; i < warm + count; i++) {
        if (i == warm)
            t0 = now();
        int b = wait_until(&ctl->slot, 0, 1) - 1;
        atomic_store(&ctl->slot, 0);
        futex_wake(&ctl->slot);
        char *block = arena + (size_t)b * block_size;
        if (numpy) {
            if (held_block >= 0)
                atomic_store(&ctl->block_free[held_block], 1);
            held_block = b;
        }
        else {
            char *p = spare ? spare : fresh_copy_destination();
            memcpy(p, block, size);
            atomic_store(&ctl->block_free[b], 1);
            sink += p[size - 1];
            spare = held;
            held = p;
        }
    }
    ctl->gbps = (double)count * size / (now() - t0) / 1e9;
    free(held);
    free(spare);
}

static pid_t writer_pid;

static void vmread_writer(void)
{
    char *msg = writer_message();
    ctl->remote = (uintptr_t)msg;
    atomic_store(&ctl->ready, 1);
    futex_wake(&ctl->ready);
    for (long i = 0; i < warm + count; i++) {
        atomic_store(&ctl->slot, 1);
        futex_wake(&ctl->slot);
        wait_until(&ctl->slot, 0, 0);   /* copied */
    }
}

static void vmread_reader(void)
{
    volatile char sink = 0;
    char *held = NULL;
    double t0 = 0;
    wait_until(&ctl->ready, 1, 0);
    for (long i = 0; i < warm + count; i++) {
        if (i == warm)
            t0 = now();
        wait_until(&ctl->slot, 0, 1);
        char *p = fresh_copy_destination();
        size_t done = 0;
        while (done < size) {
            struct iovec local = {p + done, size - done};
            struct iovec remote = {(void *)(ctl->remote + done), size - done};
            ssize_t n = process_vm_readv(writer_pid, &local, 1, &remote, 1, 0);
            if (n <= 0)
                die("process_vm_readv");
            done += (size_t)n;
        }
        atomic_store(&ctl->slot, 0);
        futex_wake(&ctl->slot);
        sink += p[size - 1];
        free(held);
        held = p;
    }
    ctl->gbps = (double)count * size / (now() - t0) / 1e9;
    free(held);
}

int main(int argc, char **argv)
{
    if (argc != 6 || (strcmp(argv[1], "arena") && strcmp(argv[1], "vmread")) ||
        (strcmp(argv[2], "bytes") && strcmp(argv[2], "numpy"))) {
        fprintf(stderr, "usage: %s arena|vmread bytes|numpy SIZE COUNT WARM\n", argv[0]);
        return 2;
    }
    int vmread = !strcmp(argv[1], "vmread"), numpy = !strcmp(argv[2], "numpy");
    size = (size_t)atoll(argv[3]);
    count = atol(argv[4]);
    warm = atol(argv[5]);
    if (size == 0 || count <= 0 || warm < 0) {
        fprintf(stderr, "%s: SIZE and COUNT must be positive, WARM not negative\n", argv[0]);
        return 2;
    }
    block_size = (size + HUGE - 1) & ~(HUGE - 1);
    ctl = mmap(NULL, sizeof(*ctl), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (ctl == MAP_FAILED)
        die("mmap");
    for (int k = 0; k < NBLOCKS; k++)
        atomic_store(&ctl->block_free[k], 1);
    if (!vmread) {
        arena_fd = memfd_create("floor-copy-arena", MFD_CLOEXEC);
        if (arena_fd < 0)
            die("memfd_create");
        arena = mmap(NULL, NBLOCKS * block_size, PROT_READ | PROT_WRITE,
                     MAP_SHARED | MAP_NORESERVE, arena_fd, 0);
        if (arena == MAP_FAILED)
            die("mmap arena");
    }
    writer_pid = fork();
    if (writer_pid < 0)
        die("fork");
    if (writer_pid == 0) {
        if (vmread)
            vmread_writer();
        else
            arena_writer();
        _exit(0);
    }
    if (vmread)
        vmread_reader();
    else
        arena_reader(numpy);
    int status;
    if (waitpid(writer_pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status))
        return 1;
    printf("%s %s %zu %ld %ld %.3f\n", argv[1], argv[2], size, count, warm, ctl->gbps);
    return 0;
}

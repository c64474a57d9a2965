/* futex.c - the clock and the futex every way of waiting uses. */
#include "csp.h"

#include <errno.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

double
csp_monotonic(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

long
csp_futex_wait_op(void *addr, int expected, double until, int shared)
{
    struct timespec rel, *relp = NULL;
    if (until >= 0) {
        double left = until - csp_monotonic();
        if (left <= 0)
            return -ETIMEDOUT;
        if (left > 1e6)
            left = 1e6;  /* a far deadline: wake up now and then and wait again */
        rel.tv_sec = (time_t)left;
        rel.tv_nsec = (long)((left - (double)rel.tv_sec) * 1e9);
        relp = &rel;
    }
    long r = syscall(SYS_futex, addr, shared ? FUTEX_WAIT : FUTEX_WAIT_PRIVATE, expected, relp,
                     NULL, 0);
    return r < 0 ? -errno : r;
}

void
csp_futex_wake_op(void *addr, int shared)
{
    syscall(SYS_futex, addr, shared ? FUTEX_WAKE : FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

/* sigwatch.c - has a signal arrived while the main thread was blocked?
 *
 * A blocked main thread wakes when a signal interrupts its sleep, and at the
 * latest after CSP_SIGNAL_SLICE, so that Python signal handlers can run.
 * They run with none of its offers linked (a handler may use channels,
 * and one that raises must not lose a message), so the offers are withdrawn
 * first and linked again afterwards, at the back of their queues.  Doing that
 * on every wake-up made the main thread lose every race for a shared channel;
 * it must happen only when a handler may be due.
 *
 * CPython tells C code that a signal came only through the signal wakeup fd:
 * every signal with a Python handler writes a byte to it.  The write end of a
 * pipe of ours is made the wakeup fd (signal.set_wakeup_fd) and stays so
 * between waits, so a signal that arrives after the eval loop's last check
 * and before a wait is seen too.  A wake-up that finds a byte in the pipe is
 * due.  Bytes of signals whose handlers already ran (between waits) make one
 * later wake-up due for nothing: harmless.
 *
 * Where the program has a wakeup fd of its own (asyncio), it is restored after
 * each wait and gets every byte we read; those waits cannot tell, and treat
 * their first wake-up as due, as all wake-ups were before.
 *
 * Nothing here runs on the way to a wait that ends within its first slice:
 * the pipe is looked at only when a wait wakes without its result.
 */
#include "csp.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <unistd.h>

/* Process-wide, as the wakeup fd is; used by the main thread only, with the
 * GIL held (after_fork_in_child runs in a forked child before any other
 * thread exists). */
static int watch_read = -1, watch_write = -1;   /* our pipe */
static int installed;       /* our pipe is (as far as we know) the wakeup fd */
static int inherited;       /* a forked child still has its parent's pipe */
static int atfork_registered;

static void
after_fork_in_child(void)
{
    /* The pipe is shared with the parent: this process would read its bytes.
     * It is replaced at this process's next wait (no Python code here). */
    if (watch_write >= 0)
        inherited = 1;
}

/* Move every byte from our pipe to `forward` (if >= 0); 1 if there were any. */
static int
drain(int forward)
{
    char buf[256];
    int any = 0;
    for (;;) {
        ssize_t n = read(watch_read, buf, sizeof(buf));
        if (n <= 0) {
            if (n < 0 && errno == EINTR)
                continue;
            return any;
        }
        any = 1;
        if (forward >= 0) {
            ssize_t unused = write(forward, buf, (size_t)n);
            (void)unused;   /* its buffer is full: it has bytes to read already */
        }
    }
}

/* signal.set_wakeup_fd(fd, ...): the previous fd, or -2 with no exception
 * left set (the watch is then off: every wake-up is due). */
static int
call_set_wakeup_fd(int fd, int ours)
{
    if (PyErr_Occurred())
        return -2;   /* not ours to clear */
    if (!csp_st->set_wakeup_fd) {
        PyObject *signal = PyImport_ImportModule("signal");
        if (signal) {
            csp_st->set_wakeup_fd = PyObject_GetAttrString(signal, "set_wakeup_fd");
            Py_DECREF(signal);
        }
        csp_st->no_warning = Py_BuildValue("{s:O}", "warn_on_full_buffer", Py_False);
        if (!csp_st->set_wakeup_fd || !csp_st->no_warning) {
            Py_CLEAR(csp_st->set_wakeup_fd);
            Py_CLEAR(csp_st->no_warning);
            PyErr_Clear();
            return -2;
        }
    }
    PyObject *args = Py_BuildValue("(i)", fd);
    PyObject *r =
        args ? PyObject_Call(csp_st->set_wakeup_fd, args, ours ? csp_st->no_warning : NULL) : NULL;
    Py_XDECREF(args);
    long previous = r ? PyLong_AsLong(r) : -2;
    Py_XDECREF(r);
    if (PyErr_Occurred()) {
        PyErr_Clear();
        return -2;
    }
    return (int)previous;
}

/* Make our pipe the wakeup fd; remember a program's own one in sw. */
static void
install(csp_sigwatch *sw)
{
    if (watch_write < 0 || inherited) {
        if (!atfork_registered) {
            if (pthread_atfork(NULL, NULL, after_fork_in_child) != 0)
                return;
            atfork_registered = 1;
        }
        int fds[2];
        if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) < 0)
            return;
        /* Room for many signals that arrive while the main thread runs. */
        (void)fcntl(fds[1], F_SETPIPE_SZ, 1 << 20);
        int old_read = watch_read, old_write = watch_write;
        watch_read = fds[0];
        watch_write = fds[1];
        int previous = call_set_wakeup_fd(watch_write, 1);
        if (inherited) {
            inherited = 0;
            close(old_read);
            close(old_write);
            if (previous == old_write)
                previous = -1;
        }
        if (previous == -2) {
            close(watch_read);
            close(watch_write);
            watch_read = watch_write = -1;
            return;
        }
        installed = previous < 0;
        sw->previous = previous;
        return;
    }
    int previous = call_set_wakeup_fd(watch_write, 1);
    installed = previous == -1 || previous == watch_write;
    if (previous >= 0 && previous != watch_write)
        sw->previous = previous;
}

void
csp_sigwatch_begin(csp_sigwatch *sw)
{
    sw->previous = -1;
    sw->due = 0;
    if (!installed || inherited) {
        /* Until now a signal could go unseen: the first wake-up is due. */
        install(sw);
        sw->due = 1;
    }
}

int
csp_sigwatch_due(csp_sigwatch *sw)
{
    if (!sw->due && watch_read >= 0) {
        /* Still ours?  The program may have set another wakeup fd between
         * two waits; then this wait could not tell. */
        int previous = call_set_wakeup_fd(watch_write, 1);
        if (previous != watch_write) {
            installed = previous == -1;
            if (previous >= 0)
                sw->previous = previous;
            sw->due = 1;
        }
    }
    if (watch_read >= 0 && drain(sw->previous))
        sw->due = 1;
    return sw->due || watch_read < 0;
}

void
csp_sigwatch_end(csp_sigwatch *sw)
{
    if (sw->previous >= 0) {
        if (watch_read >= 0)
            drain(sw->previous);
        call_set_wakeup_fd(sw->previous, 0);
        sw->previous = -1;
        installed = 0;
    }
}

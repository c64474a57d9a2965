/* errors.c - the exception for each way a channel operation can fail, the
 * same for every kind of channel.
 */
#include "csp.h"

void
csp_raise_end_retired(int is_writer)
{
    PyErr_SetString(csp_st->RetireError,
                    is_writer ? "this writer end is retired" : "this reader end is retired");
}

void
csp_raise_try(int code, int is_write)
{
    switch (code) {
    case CSP_TRY_ERROR:
        break;   /* set already */
    case CSP_TRY_POISONED:
        PyErr_SetString(csp_st->PoisonError, "channel is poisoned");
        break;
    case CSP_TRY_RETIRED:
        PyErr_SetString(csp_st->RetireError, is_write ? "channel is retired: every reader has retired"
                                                  : "channel is retired: every writer has retired");
        break;
    case CSP_TRY_END_RETIRED:
        csp_raise_end_retired(is_write);
        break;
    default:
        PyErr_Format(PyExc_SystemError, "pycsp: unexpected attempt outcome %d", code);
    }
}

void
csp_raise_for_status(int status)
{
    switch (status) {
    case CSP_POISONED:
        PyErr_SetString(csp_st->PoisonError, "channel is poisoned");
        break;
    case CSP_RETIRED:
        PyErr_SetString(csp_st->RetireError, "channel is retired");
        break;
    case CSP_DEADLOCK:
        PyErr_SetString(csp_st->DeadlockError,
                        "deadlock: every CSP process is blocked on a channel");
        break;
    case CSP_KILLED:
        PyErr_SetString(csp_st->PoisonError, "process stopped: its Parallel was interrupted");
        break;
    default:
        PyErr_Format(PyExc_SystemError, "pycsp: unexpected wait status %d", status);
    }
}

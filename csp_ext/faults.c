/* faults.c - test-only fault injection.
 *
 * _fail_next(site, n) makes the next n attempts at `site` fail as if out of
 * memory or resources, so that tests can reach error paths that a healthy
 * machine never takes.  Each site costs one predictable branch (see
 * csp_fail_here in csp.h), placed off the per-message path.
 */
#include "csp.h"

/* Process-wide, test-only; read and written with the GIL held. */
int csp_fail_next[CSP_FAIL_NSITES];

static const char *const site_names[CSP_FAIL_NSITES] = {
    [CSP_FAIL_RUNQ] = "runq",             /* greenlets: putting a task on the run queue */
    [CSP_FAIL_LOCK_INIT] = "lock_init",   /* processes: making a process-shared robust mutex */
    /* processes, big buffers read from the writer's memory (shared/vmread.c): */
    [CSP_FAIL_VM_REFUSE] = "vm_refuse",           /* the reader's read fails with EPERM */
    [CSP_FAIL_VM_WRITER_EXIT] = "vm_writer_exit", /* the writer _exits in its wait */
    [CSP_FAIL_VM_READER_EXIT] = "vm_reader_exit", /* the reader _exits mid-copy */
    [CSP_FAIL_VM_READ_DELAY] = "vm_read_delay",   /* the reader sleeps 0.3 s first */
    [CSP_FAIL_VM_SIGNAL] = "vm_signal_in_wait",   /* SIGALRM 0.1 s into the writer's wait */
};

static PyObject *
py_fail_next(PyObject *Py_UNUSED(m), PyObject *args)
{
    const char *site;
    int n;
    if (!PyArg_ParseTuple(args, "si:_fail_next", &site, &n))
        return NULL;
    for (int i = 0; i < CSP_FAIL_NSITES; i++) {
        if (strcmp(site, site_names[i]) == 0) {
            csp_fail_next[i] = n < 0 ? 0 : n;
            Py_RETURN_NONE;
        }
    }
    PyErr_Format(PyExc_ValueError, "_fail_next: no fault site %s", site);
    return NULL;
}

static PyMethodDef fault_methods[] = {
    {"_fail_next", py_fail_next, METH_VARARGS,
     "_fail_next(site, n): the next n attempts at `site` fail (tests only)."},
    {NULL}
};

int
csp_faults_init_module(PyObject *m)
{
    return PyModule_AddFunctions(m, fault_methods);
}

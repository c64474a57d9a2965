/* csp.h - shared declarations of the pycsp C core.
 *
 * One C core, several ways to wait.  All channel state (queues of blocked
 * offers, buffers, reader/writer counts, poison) is changed only while the
 * GIL is held, so the matching of readers and writers and the commit of an
 * alternation are atomic without a lock of their own.  What differs between
 * backends is how a Task waits: an OS thread releases the GIL and sleeps on a
 * futex (after a short spin); a greenlet switches to the scheduler.  Both are
 * reached through the block/wake function pointers of a Task.
 */
#ifndef CSP_H
#define CSP_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "rules/status.h"
#include "rules/select.h"

/* What a blocked task waits for; deadlock breaking wakes channel waits
 * first and join waits only when nothing else is blocked. */
enum csp_wait_kind {
    CSP_WAIT_CHANNEL = 0,
    CSP_WAIT_JOIN = 1,
    CSP_WAIT_IO = 2,    /* an @io call in a worker thread: counts as running */
};

typedef struct ChannelObject ChannelObject;
typedef struct TaskObject TaskObject;

typedef int (*csp_block_fn)(TaskObject *task, double deadline);
typedef void (*csp_wake_fn)(TaskObject *task);

/* A CSP process as the core sees it: the thing that blocks and is woken. */
struct TaskObject {
    PyObject_HEAD
    _Atomic uint32_t status;    /* enum csp_status (rules/status.h); futex word for threads */
    _Atomic uint32_t sleeping;  /* threads: set while in futex_wait */
    /* deadlock accounting (GIL-protected); chars: a million greenlet tasks */
    char counted;               /* counts as a live CSP process */
    char inactive;              /* currently blocked without a deadline */
    char wait_kind;
    char killed;
    char is_main_thread;
    char body_ended;            /* greenlets backend: the process body returned */
    char spilled;               /* greenlets backend: linked into the scheduler's spill list */
    Py_ssize_t chosen;          /* index of the committed offer */
    PyObject *msg;              /* received message (owned) */
    csp_offer *offers;          /* offers of the current operation */
    Py_ssize_t noffers, offers_cap;
    csp_offer inline_offer;     /* plain cin/cout need just one */
    csp_block_fn block;
    csp_wake_fn wake;
    TaskObject *blocked_prev, *blocked_next;  /* deadlock accounting */
    PyObject *greenlet;         /* greenlets backend: the greenlet running it */
    PyObject *run;              /* greenlets backend: the Process, until its greenlet starts */
    PyObject *join;             /* greenlets backend: the Join it finishes, until then */
    void *sched;                /* greenlets backend: its scheduler */
    Py_ssize_t timer_slot;      /* greenlets backend: index in the timer heap, or -1 */
    TaskObject *spill_next;     /* greenlets backend: next in the spill list (strong) */
    uint64_t wait_seq;          /* counts csp_task_prepare() calls */
    PyObject *process_id;       /* str or NULL */
    unsigned long thread_ident; /* the OS thread it was last bound to (state dumps) */
    PyObject *weakreflist;
};

struct ChannelObject {
    PyObject_HEAD
    csp_chan s;                 /* the matching state (rules/match.h); messages are PyObject * */
    PyObject *name;
    PyObject *weakreflist;
};

typedef struct {
    PyObject_HEAD
    ChannelObject *chan;
    char retired;
    char is_writer;
    uint64_t fair_stamp;        /* FairSelect: when this end was last chosen */
} EndObject;

/* Guard objects of an alternation (InputGuard, OutputGuard, SkipGuard, TimeoutGuard). */
typedef struct {
    PyObject_HEAD
    int kind;                   /* enum csp_guard_kind */
    EndObject *end;             /* input/output */
    PyObject *msg;              /* output */
    PyObject *action;
    double seconds;             /* timeout */
    uint64_t fair_stamp;
} GuardObject;


/* ------------------------------------------------------------------ */
/* module.c: the module state.
 *
 * Everything the module owns: its exceptions, its types (heap types, made by
 * PyType_FromModuleAndSpec in the exec slot) and the Python objects the core
 * keeps at hand.  (C type, field) pairs, listed once for the struct, the GC
 * traversal and the clearing. */
#define CSP_STATE_FIELDS(X)                                                         \
    /* module.c */                                                                  \
    X(PyObject, PoisonError)                                                        \
    X(PyObject, RetireError)                                                        \
    X(PyObject, DeadlockError)                                                      \
    /* rules/errors.c: pycsp's maker of a DeadlockError with its report (or NULL) */ \
    X(PyObject, deadlock_report)                                                    \
    /* wait/task.c */                                                               \
    X(PyTypeObject, TaskType)                                                       \
    X(PyTypeObject, JoinType)                                                       \
    X(PyObject, tls_dict_key)     /* the Task's key in PyThreadState_GetDict() */   \
    /* inprocess/channel.c */                                                       \
    X(PyTypeObject, ChannelType)                                                    \
    X(PyTypeObject, EndReadType)                                                    \
    X(PyTypeObject, EndWriteType)                                                   \
    /* alt.c */                                                                     \
    X(PyTypeObject, InputGuardType)                                                 \
    X(PyTypeObject, OutputGuardType)                                                \
    X(PyTypeObject, SkipGuardType)                                                  \
    X(PyTypeObject, TimeoutGuardType)                                               \
    /* shared/channel.c */                                                          \
    X(PyTypeObject, ShmChannelType)                                                 \
    X(PyTypeObject, ShmEndReadType)                                                 \
    X(PyTypeObject, ShmEndWriteType)                                                \
    X(PyObject, rebuild_channel_fn)  /* csp_ext._shm_rebuild_channel (pickling) */  \
    X(PyObject, rebuild_end_fn)      /* csp_ext._shm_rebuild_end */                 \
    /* shared/proxy.c */                                                            \
    X(PyTypeObject, ShmProxyType)                                                   \
    /* shared/message.c */                                                          \
    X(PyTypeObject, ShmBufferType)                                                  \
    X(PyObject, pickle_dumps)                                                       \
    X(PyObject, pickle_loads)                                                       \
    X(PyObject, protocol_5)                                                         \
    X(PyObject, str_buffer_callback)                                                \
    X(PyObject, str_buffers)                                                        \
    X(PyObject, str_append)                                                         \
    X(PyObject, kwnames_buffer_callback)                                            \
    /* wait/greenlet.c (made only when the scheduler first runs: greenlet is      \
     * imported then) */                                                            \
    X(PyObject, str_fn)                                                             \
    X(PyObject, str_args)                                                           \
    X(PyObject, str_kwargs)                                                         \
    X(PyObject, str_return_value)                                                   \
    X(PyObject, str_failed)                                                         \
    X(PyObject, process_main_fn)                                                    \
    /* wait/sigwatch.c (made at the first wait of the main thread) */              \
    X(PyObject, set_wakeup_fd)       /* signal.set_wakeup_fd */                     \
    X(PyObject, no_warning)          /* {"warn_on_full_buffer": False} */

typedef struct {
#define CSP_STATE_FIELD(type, name) type *name;
    CSP_STATE_FIELDS(CSP_STATE_FIELD)
#undef CSP_STATE_FIELD
} csp_state;

/* The state of the process's one csp_ext module.  Process-wide on purpose:
 * the core keeps process-wide state anyway (deadlock accounting over every
 * task, the shared arena, the signal wakeup fd), so the module refuses other
 * interpreters, and a second load in this interpreter shares the first one's
 * objects (module.c).  Hot paths (a channel read or write, a greenlet switch,
 * a select) read types and exceptions through this pointer: one load, where
 * PyType_GetModuleByDef would walk the MRO on every operation (hidden: read
 * directly, not through the GOT).  Set once by the first exec slot (GIL
 * held), never changed after; the module it belongs to is kept alive for the
 * life of the process. */
extern csp_state *csp_st __attribute__((visibility("hidden")));

/* threading.main_thread().ident: signals reach Python only in the main thread,
 * so waits there look at them.  Process-wide; set by the first exec (GIL held). */
extern unsigned long csp_main_thread_ident;

/* A new heap type made from `spec` for module `m`, added to it as `name`;
 * the reference returned belongs to the module state.  NULL on error. */
PyTypeObject *csp_add_type(PyObject *m, PyType_Spec *spec, const char *name);

/* sigwatch.c: did a signal arrive while the main thread waited?  Main
 * thread only, GIL held.  begin before the wait, end after it (every path);
 * csp_sigwatch_due: 1 if signal handlers are (or may be) due, so the offers
 * must be withdrawn and the handlers run; else the offers keep their place. */
typedef struct {
    int previous;   /* the program's own wakeup fd, restored by end; or -1 */
    int due;
} csp_sigwatch;
void csp_sigwatch_begin(csp_sigwatch *sw);
/* The blocked main thread's longest sleep, seconds.  A signal with a Python
 * handler cuts the sleep short (the futex wait returns EINTR), so this bounds
 * only a signal that came while the thread was on its way to sleep, or one
 * another thread caught.  It was 20 ms: 50 wake-ups a second of every idle
 * main thread, each a context switch and a call of signal.set_wakeup_fd. */
#define CSP_SIGNAL_SLICE 0.1
int csp_sigwatch_due(csp_sigwatch *sw);
void csp_sigwatch_end(csp_sigwatch *sw);

/* task.c */
int csp_task_init_module(PyObject *m);
/* The running task of this OS thread (NULL before its first use of the
 * core).  initial-exec: read inline on every channel operation and written
 * at every greenlet switch, with no __tls_get_addr call. */
extern _Thread_local TaskObject *csp_tls_task __attribute__((tls_model("initial-exec")));
/* csp_current_task when this thread has no task yet: makes one. */
TaskObject *csp_current_task_new(void);
/* Borrowed reference to the running task, creating one for a thread that
 * never used the core before.  NULL with an exception on failure. */
static inline TaskObject *
csp_current_task(void)
{
    TaskObject *t = csp_tls_task;
    return t ? t : csp_current_task_new();
}
void csp_task_after_fork_in_child(void);   /* atfork: the forking thread is now main */
/* Reset the task for a new operation; returns 0/-1. */
int csp_task_prepare(TaskObject *t, Py_ssize_t noffers);
/* Block the current task until a peer completes it or the deadline (monotonic
 * seconds, < 0 for none) passes.  GIL held on entry and exit.  Returns the
 * final status, or -1 with an exception set (a signal interrupted the wait;
 * the task's offers are withdrawn), or CSP_RETRY: the offers were withdrawn
 * and signal handlers ran; the caller must start the operation again. */
int csp_task_wait(TaskObject *t, double deadline, int wait_kind);
/* Finish a blocked task's operation with `status` (GIL held): withdraws all
 * its offers, stores `msg` (stolen, may be NULL) and wakes it. */
void csp_task_complete(TaskObject *t, int status, Py_ssize_t chosen, PyObject *msg);
/* Withdraw a waiting task's offers and set `status` without waking it. */
void csp_task_cancel(TaskObject *t, int status);
/* Task.finish(join) from C: 0/-1. */
int csp_task_finish(TaskObject *t, PyObject *join);
/* Make `t` the running task of this OS thread (greenlet switches). */
static inline void
csp_set_current_task(TaskObject *t)
{
    csp_tls_task = t;
}
double csp_monotonic(void);

/* In a loop that polls a word another core will change: let that core have
 * the pipeline (and, under a hypervisor, the vCPU) a moment. */
static inline void
csp_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __asm__ __volatile__("pause");
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}
/* Futex on a 32-bit word: wait while *addr == expected, until `until`
 * (monotonic seconds, < 0: no limit); 0 or -errno.  `shared`: the word is in
 * memory shared between processes.  Must not touch any PyObject. */
long csp_futex_wait_op(void *addr, int expected, double until, int shared);
void csp_futex_wake_op(void *addr, int shared);
#define csp_futex_wait(addr, expected, until) csp_futex_wait_op((addr), (expected), (until), 0)
#define csp_futex_wake(addr) csp_futex_wake_op((addr), 0)

/* A guard of an alternation as alt.c hands it to a kind of channel, in
 * scan order (all borrowed). */
typedef struct {
    int kind;                   /* enum csp_guard_kind */
    PyObject *end;              /* input/output guards */
    PyObject *msg;              /* output guards */
    double seconds;             /* timeout guards */
    Py_ssize_t index;           /* position in the select's tuple */
    uint64_t *stamp;            /* FairSelect: when this guard was last chosen */
} csp_alt_guard;

/* inprocess/channel.c */
int csp_channel_init_module(PyObject *m);
/* The alternation over in-process channels: 0 with *chosen (a position in
 * gs) and *msg (a new reference, or NULL), or -1 with an exception. */
int csp_inprocess_select(const csp_alt_guard *gs, Py_ssize_t n, Py_ssize_t *chosen,
                         PyObject **msg);

/* arguments.c: argument checks shared by both kinds of channel (0/-1 with
 * an exception). */
void csp_raise_bad_call(int is_writer);
/* A reader end is called with no arguments, a writer end with one (inline:
 * it is on every channel operation's path). */
static inline int
csp_check_call(size_t nargsf, PyObject *kwnames, int is_writer)
{
    if (PyVectorcall_NARGS(nargsf) == (Py_ssize_t)is_writer &&
        !(kwnames && PyTuple_GET_SIZE(kwnames)))
        return 0;
    csp_raise_bad_call(is_writer);
    return -1;
}
int csp_parse_capacity(PyObject *buffer, Py_ssize_t *capacity);
/* A wait's `timeout` (seconds >= 0, or None: no deadline) as a deadline on
 * csp_monotonic()'s clock (-1.0: none); `what` names the call in the error. */
int csp_parse_deadline(PyObject *timeout, const char *what, double *deadline);
/* Channel * n or n * Channel: 0 with *chan and *n, 1 = not a count, -1 = error. */
int csp_parse_multiplier(PyObject *a, PyObject *b, PyTypeObject *type, PyObject **chan,
                         Py_ssize_t *n);
/* The exception for using a retired end. */
void csp_raise_end_retired(int is_writer);
/* Method table entry of the channel and end types: Channel[int] is the
 * runtime side of the generic types in csp_ext.pyi (a types.GenericAlias,
 * which calls the type itself; no message ever passes through it). */
#define CSP_CLASS_GETITEM \
    {"__class_getitem__", Py_GenericAlias, METH_O | METH_CLASS, "See PEP 585"}

/* greensched.c */
int csp_green_init_module(PyObject *m);

/* green_datastack.c: a small first frame chunk per process greenlet. */
void csp_green_datastack_install(void);
/* At the start of a new greenlet, before any Python frame: give it a first
 * chunk sized for `fn`'s frame.  Does nothing where unsupported. */
void csp_green_datastack_begin(PyObject *fn);

/* green_stackcopy.c: reused blocks for greenlet's stack copies, handed out
 * while this thread's csp_green_switching is set (around greenlet.c's
 * switches, GIL held). */
extern _Thread_local int csp_green_switching __attribute__((tls_model("initial-exec")));
void csp_green_stackcopy_install(void);
/* New reference: the pool's counts (csp_ext.green_stackcopy_stats). */
PyObject *csp_green_stackcopy_stats(void);

/* shm_channel.c (processes backend) */
uint64_t *shm_end_stamp(PyObject *end);
/* The alternation over shared channels, as csp_inprocess_select. */
int csp_shared_select(const csp_alt_guard *gs, Py_ssize_t n, Py_ssize_t *chosen, PyObject **msg);
int csp_shm_init_module(PyObject *m);
int csp_shm_arena_init_module(PyObject *m);
int csp_shm_channel_init_module(PyObject *m);
int csp_shm_quiescence_init_module(PyObject *m);
int csp_shm_proxy_init_module(PyObject *m);   /* shared/proxy.c */

/* alt.c */
int csp_alt_init_module(PyObject *m);

/* faults.c: test-only fault injection.  csp_fail_next[site] > 0 makes the
 * next that many attempts at `site` fail (csp_ext._fail_next(name, n)).
 * Process-wide, read and written with the GIL held. */
enum { CSP_FAIL_RUNQ, CSP_FAIL_LOCK_INIT, CSP_FAIL_VM_REFUSE, CSP_FAIL_VM_WRITER_EXIT,
       CSP_FAIL_VM_READER_EXIT, CSP_FAIL_VM_READ_DELAY, CSP_FAIL_VM_SIGNAL, CSP_FAIL_NSITES };
extern int csp_fail_next[CSP_FAIL_NSITES];
int csp_faults_init_module(PyObject *m);
int csp_errors_init_module(PyObject *m);   /* rules/errors.c */
/* wait/task.c: the in-process deadlock last broken, and how many channel
 * waits it ended (GIL). */
extern uint64_t csp_deadlock_generation;
extern Py_ssize_t csp_deadlock_woken;
/* wait/loop.h: while the signal handlers that interrupted this thread's wait
 * run, the waiter (a Task or a shared record) and its operation's number:
 * the offers, withdrawn then, still describe that wait until the waiter
 * starts another operation (a handler may use channels). */
extern _Thread_local const void *csp_wait_interrupted_by;
extern _Thread_local uint64_t csp_wait_interrupted_op;

static inline int
csp_fail_here(int site)
{
    if (__builtin_expect(csp_fail_next[site] > 0, 0)) {
        csp_fail_next[site]--;
        return 1;
    }
    return 0;
}


#endif

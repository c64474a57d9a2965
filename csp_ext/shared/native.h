/* native.h - messages of the processes backend encoded without pickle:
 * tuples, lists and dicts of scalars (int64, float, str, bytes, None, bool), nested,
 * and small numpy arrays.  shared/message.c stores the encoding in a block
 * (kind MSG_NATIVE); this file knows neither blocks nor channels. */
#ifndef CSP_NATIVE_H
#define CSP_NATIVE_H

#include "csp.h"

/* Largest numpy array encoded natively (bytes of data); a larger one is
 * pickled, its data passed out of band and read in place on the other side. */
#define NATIVE_ARRAY_MAX (64 * 1024)
#define NATIVE_MAX_LISTS 32   /* mutable containers (lists, dicts, arrays) per message */
#define NATIVE_MAX_ARRAYS 8

/* What native_measure found, for native_write: the mutable objects met (each
 * may appear once only: pickle would keep two references to one object as
 * one object) and the buffers of the arrays, held until native_release. */
typedef struct {
    PyObject *mutables[NATIVE_MAX_LISTS];
    int nmutables;
    Py_buffer views[NATIVE_MAX_ARRAYS];
    PyObject *codes[NATIVE_MAX_ARRAYS];   /* the arrays' dtype codes (borrowed) */
    int nviews, next_view;
} native_plan;

/* 1 with *len set if obj is for this encoding, 0 if it is for pickle (no
 * exception), -1 with an exception.  After 1, call native_write then
 * native_release; after 0 or -1, nothing is held.  Runs no Python code. */
int native_measure(PyObject *obj, native_plan *plan, uint64_t *len);
/* Writes the len bytes measured; 0, or -1 with an exception. */
int native_write(PyObject *obj, native_plan *plan, char *dst, uint64_t len);
void native_release(native_plan *plan);
/* New reference, or NULL with an exception (ValueError if data is corrupt). */
PyObject *native_decode(const char *data, uint64_t len);

#endif

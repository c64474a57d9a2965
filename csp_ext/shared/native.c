/* native.c - tuples, lists, dicts and small numpy arrays as messages, without pickle.
 *
 * pickle.dumps and loads cost a small message most of its time: a Pickler and
 * an Unpickler made per message, and for a numpy array two global lookups
 * through __import__ each way, the dtype pickled as a reduce and rebuilt by a
 * Python function.  The encoding here is a tag per value, read back with no
 * lookup at all:
 *
 *   'N' 'F' 'T'        None, False, True
 *   'i' int64          an int that fits in int64 (a bigger one: pickle)
 *   'f' double         a float, its bits as they are (-0.0, nan payloads)
 *   's' u64 n, UTF-8   a str; lone surrogates pass through (as pickle keeps them)
 *   'b' u64 n, bytes   a bytes
 *   '(' u64 n, items   a tuple
 *   '[' u64 n, items   a list
 *   '{' u64 n, pairs   a dict: key, value, n times, in its order
 *   'a' u8 c, code, u8 ndim, u64 shape[ndim], u64 n, data
 *                      a C-contiguous numpy.ndarray of a plain number dtype
 *                      (bool, int, uint, float, complex; code its dtype.str),
 *                      at most NATIVE_ARRAY_MAX bytes; received as a new array
 *
 * Only exact types qualify: a subclass (bool is told apart from int, a
 * namedtuple from a tuple), an object of any other type anywhere inside, a
 * list, dict or array met twice (pickle would give back one object twice), more than
 * NATIVE_MAX_LISTS of them or nesting deeper than MAX_DEPTH sends the whole
 * message through pickle instead.  Integers are host-endian: the writer and
 * reader share one machine's memory.
 */
#include "shared/native.h"

#include <string.h>

#define MAX_DEPTH 32
#define MAX_DTYPES 32   /* numpy has 16 plain number dtypes, one object each */

enum { T_NONE = 'N', T_FALSE = 'F', T_TRUE = 'T', T_INT = 'i', T_FLOAT = 'f', T_STR = 's',
       T_BYTES = 'b', T_TUPLE = '(', T_LIST = '[', T_DICT = '{',
       T_ARRAY = 'a' };

/* numpy.ndarray, learnt from the first array met (numpy is never imported
 * here to send: an array exists only where numpy is loaded). */
static PyTypeObject *ndarray_type;
static PyObject *str_dtype, *str_kind, *str_str, *str_numpy;
static PyObject *numpy_dtype, *numpy_empty;   /* the receiver's, imported on first use */

/* dtypes whose arrays the sender encoded: the dtype (a reference, so its
 * address stays its own) and its code (bytes).  Only numpy's own dtype
 * objects qualify, so the table stays short; another dtype is looked at anew
 * each time (its arrays take pickle, which costs far more). */
static struct { PyObject *dtype, *code; } send_dtypes[MAX_DTYPES];
static int n_send_dtypes;
/* dtypes made by the receiver, by code. */
static struct { PyObject *code, *dtype; } recv_dtypes[MAX_DTYPES];
static int n_recv_dtypes;

/* ------------------------------------------------------------------ */
/* numpy                                                               */

static int
intern_names(void)
{
    if (!str_dtype && !(str_dtype = PyUnicode_InternFromString("dtype")))
        return -1;
    if (!str_kind && !(str_kind = PyUnicode_InternFromString("kind")))
        return -1;
    if (!str_str && !(str_str = PyUnicode_InternFromString("str")))
        return -1;
    if (!str_numpy && !(str_numpy = PyUnicode_InternFromString("numpy")))
        return -1;
    return 0;
}

static int
import_numpy(void)
{
    if (numpy_empty)
        return 0;
    if (intern_names() < 0)
        return -1;
    PyObject *np = PyImport_ImportModule("numpy");
    if (!np)
        return -1;
    numpy_dtype = PyObject_GetAttrString(np, "dtype");
    numpy_empty = numpy_dtype ? PyObject_GetAttrString(np, "empty") : NULL;
    Py_DECREF(np);
    if (!numpy_empty) {
        Py_CLEAR(numpy_dtype);
        return -1;
    }
    return 0;
}

static int
is_ndarray(PyObject *obj)
{
    PyTypeObject *tp = Py_TYPE(obj);
    if (ndarray_type)
        return tp == ndarray_type;
    /* Any class may call itself numpy.ndarray (and run Python code in its
     * dtype property): only numpy's own type, the module's ndarray, is taken. */
    if (strcmp(tp->tp_name, "numpy.ndarray") != 0 || (tp->tp_flags & Py_TPFLAGS_HEAPTYPE))
        return 0;
    if (intern_names() < 0)
        return -1;
    PyObject *numpy = PyImport_GetModule(str_numpy);
    if (!numpy)
        return PyErr_Occurred() ? -1 : 0;
    PyObject *own = PyObject_GetAttrString(numpy, "ndarray");
    Py_DECREF(numpy);
    if (!own) {
        PyErr_Clear();
        return 0;
    }
    int same = own == (PyObject *)tp;
    Py_DECREF(own);
    if (!same)
        return 0;
    ndarray_type = (PyTypeObject *)Py_NewRef(tp);
    return 1;
}

static PyObject *corrupt(void);

/* 1 if dtype.kind is bool, int, uint, float or complex (raw bytes, no
 * references), 0 if not, -1 with an exception. */
static int
plain_number_kind(PyObject *dtype)
{
    PyObject *kind = PyObject_GetAttr(dtype, str_kind);
    if (!kind)
        return -1;
    int plain = PyUnicode_Check(kind) && PyUnicode_GET_LENGTH(kind) == 1 &&
                PyUnicode_READ_CHAR(kind, 0) - 1u < 127 &&
                strchr("biufc", (int)PyUnicode_READ_CHAR(kind, 0)) != NULL;
    Py_DECREF(kind);
    return plain;
}

/* The code of a dtype whose arrays travel natively: a plain number kind whose
 * dtype.str gives back this very dtype (so byte order, metadata and the like
 * cannot be lost).  New reference; NULL with no exception: use pickle. */
static PyObject *
dtype_code_uncached(PyObject *dtype)
{
    PyObject *code = NULL, *again = NULL;
    if (plain_number_kind(dtype) <= 0)
        goto fail;
    PyObject *str = PyObject_GetAttr(dtype, str_str);
    if (!str)
        goto fail;
    code = PyUnicode_Check(str) ? PyUnicode_AsASCIIString(str) : NULL;
    Py_DECREF(str);
    if (!code || PyBytes_GET_SIZE(code) > 255 || import_numpy() < 0)
        goto fail;
    again = PyObject_CallOneArg(numpy_dtype, code);
    if (again != dtype)
        goto fail;
    Py_DECREF(again);
    return code;
fail:
    PyErr_Clear();
    Py_XDECREF(again);
    Py_XDECREF(code);
    return NULL;
}

/* Borrowed: the dtype's code, or NULL (no exception) for pickle. */
static PyObject *
dtype_code(PyObject *dtype)
{
    for (int i = 0; i < n_send_dtypes; i++)
        if (send_dtypes[i].dtype == dtype)
            return send_dtypes[i].code;
    PyObject *code = dtype_code_uncached(dtype);
    if (!code || n_send_dtypes == MAX_DTYPES) {
        Py_XDECREF(code);   /* the table full (never seen): pickle */
        return NULL;
    }
    send_dtypes[n_send_dtypes].dtype = Py_NewRef(dtype);
    send_dtypes[n_send_dtypes].code = code;
    n_send_dtypes++;
    return code;
}

/* 1 if code reads as a plain number dtype's str ("<f8", "|u1", "<c16"): only
 * such codes reach numpy's dtype parser (the code is shared memory). */
static int
plain_code(const char *code, Py_ssize_t len)
{
    if (len < 3 || len > 4 || !strchr("<>|=", code[0]) || !code[0] || !strchr("biufc", code[1]) ||
        !code[1])
        return 0;
    for (Py_ssize_t i = 2; i < len; i++)
        if (code[i] < '0' || code[i] > '9')
            return 0;
    return 1;
}

/* New reference: the dtype named by a received code, or NULL with an exception. */
static PyObject *
dtype_of_code(const char *code, Py_ssize_t len)
{
    for (int i = 0; i < n_recv_dtypes; i++) {
        PyObject *c = recv_dtypes[i].code;
        if (PyBytes_GET_SIZE(c) == len && memcmp(PyBytes_AS_STRING(c), code, (size_t)len) == 0)
            return Py_NewRef(recv_dtypes[i].dtype);
    }
    if (!plain_code(code, len))
        return corrupt();
    if (import_numpy() < 0)
        return NULL;
    PyObject *c = PyBytes_FromStringAndSize(code, len);
    if (!c)
        return NULL;
    PyObject *dtype = PyObject_CallOneArg(numpy_dtype, c);
    if (dtype && plain_number_kind(dtype) <= 0) {
        /* An object dtype would take the bytes for pointers. */
        Py_CLEAR(dtype);
        if (!PyErr_Occurred())
            corrupt();
    }
    if (!dtype || n_recv_dtypes == MAX_DTYPES) {
        Py_DECREF(c);
        return dtype;
    }
    recv_dtypes[n_recv_dtypes].code = c;
    recv_dtypes[n_recv_dtypes].dtype = Py_NewRef(dtype);
    n_recv_dtypes++;
    return dtype;
}

/* ------------------------------------------------------------------ */
/* Measure                                                             */

/* Length of str's UTF-8 encoding, surrogates passed through (3 bytes each). */
static uint64_t
utf8_length(PyObject *s)
{
    Py_ssize_t n = PyUnicode_GET_LENGTH(s);
    if (PyUnicode_IS_ASCII(s))
        return (uint64_t)n;
    int kind = PyUnicode_KIND(s);
    const void *data = PyUnicode_DATA(s);
    uint64_t len = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_UCS4 c = PyUnicode_READ(kind, data, i);
        len += c < 0x80 ? 1 : c < 0x800 ? 2 : c < 0x10000 ? 3 : 4;
    }
    return len;
}

/* 1 if obj is new to the plan (now noted), 0 if met before or one too many. */
static int
note_mutable(native_plan *plan, PyObject *obj)
{
    for (int i = 0; i < plan->nmutables; i++)
        if (plan->mutables[i] == obj)
            return 0;
    if (plan->nmutables == NATIVE_MAX_LISTS)
        return 0;
    plan->mutables[plan->nmutables++] = obj;
    return 1;
}

static int measure_value(PyObject *obj, native_plan *plan, int depth, uint64_t *len);

static int
measure_array(PyObject *obj, native_plan *plan, uint64_t *len)
{
    if (plan->nviews == NATIVE_MAX_ARRAYS || !note_mutable(plan, obj))
        return 0;
    PyObject *dtype = PyObject_GetAttr(obj, str_dtype);
    if (!dtype)
        return -1;
    PyObject *code = dtype_code(dtype);
    Py_DECREF(dtype);
    if (!code)
        return 0;
    Py_buffer *view = &plan->views[plan->nviews];
    if (PyObject_GetBuffer(obj, view, PyBUF_C_CONTIGUOUS) < 0) {
        PyErr_Clear();  /* not C-contiguous: pickle */
        return 0;
    }
    /* A read-only array arrives read-only through pickle; an empty one may
     * have a dimension the reader's bound refuses (0 x 70000). */
    int native = !view->readonly && view->len <= NATIVE_ARRAY_MAX && view->ndim <= 255;
    for (int i = 0; native && i < view->ndim; i++)
        native = view->shape[i] <= NATIVE_ARRAY_MAX;
    if (!native) {
        PyBuffer_Release(view);
        return 0;
    }
    plan->codes[plan->nviews++] = code;
    *len += 3 + (uint64_t)PyBytes_GET_SIZE(code) + 8 * ((uint64_t)view->ndim + 1) +
            (uint64_t)view->len;
    return 1;
}

static int
measure_items(PyObject *seq, native_plan *plan, int depth, uint64_t *len)
{
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    PyObject **items = PySequence_Fast_ITEMS(seq);
    *len += 9;
    for (Py_ssize_t i = 0; i < n; i++) {
        int r = measure_value(items[i], plan, depth + 1, len);
        if (r <= 0)
            return r;
    }
    return 1;
}

static int
measure_dict(PyObject *dict, native_plan *plan, int depth, uint64_t *len)
{
    Py_ssize_t pos = 0;
    PyObject *key, *value;
    *len += 9;
    while (PyDict_Next(dict, &pos, &key, &value)) {
        int r = measure_value(key, plan, depth + 1, len);
        if (r > 0)
            r = measure_value(value, plan, depth + 1, len);
        if (r <= 0)
            return r;
    }
    return 1;
}

static int
measure_value(PyObject *obj, native_plan *plan, int depth, uint64_t *len)
{
    if (obj == Py_None || obj == Py_False || obj == Py_True) {
        *len += 1;
        return 1;
    }
    if (PyLong_CheckExact(obj)) {
        int overflow;
        long long v = PyLong_AsLongLongAndOverflow(obj, &overflow);
        if (overflow)
            return 0;  /* beyond int64: pickle */
        if (v == -1 && PyErr_Occurred())
            return -1;
        *len += 9;
        return 1;
    }
    if (PyFloat_CheckExact(obj)) {
        *len += 9;
        return 1;
    }
    if (PyUnicode_CheckExact(obj)) {
        *len += 9 + utf8_length(obj);
        return 1;
    }
    if (PyBytes_CheckExact(obj)) {
        *len += 9 + (uint64_t)PyBytes_GET_SIZE(obj);
        return 1;
    }
    if (depth >= MAX_DEPTH)
        return 0;
    if (PyTuple_CheckExact(obj))
        return measure_items(obj, plan, depth, len);
    if (PyList_CheckExact(obj))
        return note_mutable(plan, obj) ? measure_items(obj, plan, depth, len) : 0;
    if (PyDict_CheckExact(obj))
        return note_mutable(plan, obj) ? measure_dict(obj, plan, depth, len) : 0;
    int array = is_ndarray(obj);
    if (array <= 0)
        return array;
    return measure_array(obj, plan, len);
}

int
native_measure(PyObject *obj, native_plan *plan, uint64_t *len)
{
    /* A message of another type goes to pickle without a look further (the
     * scalars alone are shared/message.c's). */
    if (!PyTuple_CheckExact(obj) && !PyList_CheckExact(obj) && !PyDict_CheckExact(obj) &&
        (ndarray_type ? Py_TYPE(obj) != ndarray_type : Py_TYPE(obj)->tp_name[0] != 'n'))
        return 0;
    plan->nmutables = plan->nviews = plan->next_view = 0;
    *len = 0;
    int r = measure_value(obj, plan, 0, len);
    if (r <= 0)
        native_release(plan);
    return r;
}

void
native_release(native_plan *plan)
{
    for (int i = 0; i < plan->nviews; i++)
        PyBuffer_Release(&plan->views[i]);
    plan->nviews = 0;
}

/* ------------------------------------------------------------------ */
/* Write                                                               */

typedef struct {
    char *p, *end;
} out_cursor;

/* -1: what native_write met is not what native_measure saw. */
static int
changed(void)
{
    PyErr_SetString(PyExc_RuntimeError, "pycsp: a message changed while it was encoded");
    return -1;
}

static int
put(out_cursor *o, const void *data, uint64_t n)
{
    if (n > (uint64_t)(o->end - o->p))
        return changed();
    memcpy(o->p, data, (size_t)n);
    o->p += n;
    return 0;
}

static int
put_tag_u64(out_cursor *o, char tag, uint64_t v)
{
    char b[9];
    b[0] = tag;
    memcpy(b + 1, &v, 8);
    return put(o, b, 9);
}

static int
put_str(out_cursor *o, PyObject *s)
{
    uint64_t n = utf8_length(s);
    if (put_tag_u64(o, T_STR, n) < 0)
        return -1;
    if (PyUnicode_IS_ASCII(s))
        return put(o, PyUnicode_DATA(s), n);
    if (n > (uint64_t)(o->end - o->p))
        return changed();
    unsigned char *d = (unsigned char *)o->p;
    int kind = PyUnicode_KIND(s);
    const void *data = PyUnicode_DATA(s);
    for (Py_ssize_t i = 0, len = PyUnicode_GET_LENGTH(s); i < len; i++) {
        Py_UCS4 c = PyUnicode_READ(kind, data, i);
        if (c < 0x80) {
            *d++ = (unsigned char)c;
        }
        else if (c < 0x800) {
            *d++ = (unsigned char)(0xc0 | (c >> 6));
            *d++ = (unsigned char)(0x80 | (c & 0x3f));
        }
        else if (c < 0x10000) {
            *d++ = (unsigned char)(0xe0 | (c >> 12));
            *d++ = (unsigned char)(0x80 | ((c >> 6) & 0x3f));
            *d++ = (unsigned char)(0x80 | (c & 0x3f));
        }
        else {
            *d++ = (unsigned char)(0xf0 | (c >> 18));
            *d++ = (unsigned char)(0x80 | ((c >> 12) & 0x3f));
            *d++ = (unsigned char)(0x80 | ((c >> 6) & 0x3f));
            *d++ = (unsigned char)(0x80 | (c & 0x3f));
        }
    }
    o->p = (char *)d;
    return 0;
}

static int
write_array(out_cursor *o, native_plan *plan, PyObject *obj)
{
    if (plan->next_view == plan->nviews || plan->views[plan->next_view].obj != obj)
        return changed();
    Py_buffer *view = &plan->views[plan->next_view];
    PyObject *code = plan->codes[plan->next_view++];
    unsigned char head[3] = {T_ARRAY, (unsigned char)PyBytes_GET_SIZE(code), 0};
    if (put(o, head, 2) < 0 || put(o, PyBytes_AS_STRING(code), head[1]) < 0)
        return -1;
    head[2] = (unsigned char)view->ndim;
    if (put(o, head + 2, 1) < 0)
        return -1;
    for (int i = 0; i < view->ndim; i++) {
        uint64_t d = (uint64_t)view->shape[i];
        if (put(o, &d, 8) < 0)
            return -1;
    }
    uint64_t n = (uint64_t)view->len;
    if (put(o, &n, 8) < 0 || put(o, view->buf, n) < 0)
        return -1;
    return 0;
}

static int
write_value(PyObject *obj, native_plan *plan, out_cursor *o)
{
    if (obj == Py_None || obj == Py_False || obj == Py_True) {
        char tag = obj == Py_None ? T_NONE : obj == Py_False ? T_FALSE : T_TRUE;
        return put(o, &tag, 1);
    }
    if (PyLong_CheckExact(obj)) {
        int64_t v = PyLong_AsLongLong(obj);
        if (v == -1 && PyErr_Occurred())
            return -1;
        return put_tag_u64(o, T_INT, (uint64_t)v);
    }
    if (PyFloat_CheckExact(obj)) {
        double d = PyFloat_AS_DOUBLE(obj);
        uint64_t bits;
        memcpy(&bits, &d, 8);
        return put_tag_u64(o, T_FLOAT, bits);
    }
    if (PyUnicode_CheckExact(obj))
        return put_str(o, obj);
    if (PyBytes_CheckExact(obj)) {
        uint64_t n = (uint64_t)PyBytes_GET_SIZE(obj);
        return put_tag_u64(o, T_BYTES, n) < 0 ? -1 : put(o, PyBytes_AS_STRING(obj), n);
    }
    if (PyTuple_CheckExact(obj) || PyList_CheckExact(obj)) {
        Py_ssize_t n = PySequence_Fast_GET_SIZE(obj);
        PyObject **items = PySequence_Fast_ITEMS(obj);
        if (put_tag_u64(o, PyTuple_CheckExact(obj) ? T_TUPLE : T_LIST, (uint64_t)n) < 0)
            return -1;
        for (Py_ssize_t i = 0; i < n; i++)
            if (write_value(items[i], plan, o) < 0)
                return -1;
        return 0;
    }
    if (PyDict_CheckExact(obj)) {
        Py_ssize_t pos = 0;
        PyObject *key, *value;
        if (put_tag_u64(o, T_DICT, (uint64_t)PyDict_GET_SIZE(obj)) < 0)
            return -1;
        while (PyDict_Next(obj, &pos, &key, &value))
            if (write_value(key, plan, o) < 0 || write_value(value, plan, o) < 0)
                return -1;
        return 0;
    }
    return write_array(o, plan, obj);
}

int
native_write(PyObject *obj, native_plan *plan, char *dst, uint64_t len)
{
    out_cursor o = {dst, dst + len};
    if (write_value(obj, plan, &o) < 0)
        return -1;
    if (o.p != o.end)
        return changed();
    return 0;
}

/* ------------------------------------------------------------------ */
/* Decode (the data is shared memory: every length is checked)         */

typedef struct {
    const char *p, *end;
} in_cursor;

static PyObject *
corrupt(void)
{
    PyErr_SetString(PyExc_ValueError, "pycsp: corrupt message block in the shared arena");
    return NULL;
}

/* 0 with *v read, or -1 if the data ends first. */
static int
get_u64(in_cursor *in, uint64_t *v)
{
    if (in->end - in->p < 8)
        return -1;
    memcpy(v, in->p, 8);
    in->p += 8;
    return 0;
}

static PyObject *
read_array(in_cursor *in)
{
    if (in->end - in->p < 1)
        return corrupt();
    Py_ssize_t codelen = (unsigned char)*in->p++;
    if (in->end - in->p < codelen + 1)
        return corrupt();
    /* A copy: the block is shared memory a writer could change between the
     * check of the code and its use. */
    char code[256];
    memcpy(code, in->p, (size_t)codelen);
    in->p += codelen;
    int ndim = (unsigned char)*in->p++;
    PyObject *shape = PyTuple_New(ndim);
    if (!shape)
        return NULL;
    uint64_t count = 1, nbytes;
    for (int i = 0; i < ndim; i++) {
        uint64_t d;
        if (get_u64(in, &d) < 0 || d > NATIVE_ARRAY_MAX) {
            Py_DECREF(shape);
            return corrupt();
        }
        count *= d;  /* at most 255 factors of at most 2^16, or a 0 */
        if (count > NATIVE_ARRAY_MAX)
            count = NATIVE_ARRAY_MAX + 1;
        PyObject *v = PyLong_FromUnsignedLongLong(d);
        if (!v) {
            Py_DECREF(shape);
            return NULL;
        }
        PyTuple_SET_ITEM(shape, i, v);
    }
    if (get_u64(in, &nbytes) < 0 || count > nbytes || nbytes > (uint64_t)(in->end - in->p)) {
        Py_DECREF(shape);
        return corrupt();
    }
    PyObject *dtype = dtype_of_code(code, codelen);
    PyObject *arr = NULL;
    if (dtype) {
        PyObject *args[2] = {shape, dtype};
        arr = PyObject_Vectorcall(numpy_empty, args, 2, NULL);
        Py_DECREF(dtype);
    }
    Py_DECREF(shape);
    if (!arr)
        return NULL;
    Py_buffer view;
    if (PyObject_GetBuffer(arr, &view, PyBUF_WRITABLE | PyBUF_C_CONTIGUOUS) < 0) {
        Py_DECREF(arr);
        return NULL;
    }
    int fits = (uint64_t)view.len == nbytes;
    if (fits)
        memcpy(view.buf, in->p, (size_t)nbytes);
    PyBuffer_Release(&view);
    if (!fits) {
        Py_DECREF(arr);
        return corrupt();
    }
    in->p += nbytes;
    return arr;
}

static PyObject *read_value(in_cursor *in, int depth);

static PyObject *
read_dict(in_cursor *in, uint64_t n, int depth)
{
    if (n > (uint64_t)(in->end - in->p) / 2)
        return corrupt();  /* every key and value takes a byte at least */
    PyObject *dict = PyDict_New();
    if (!dict)
        return NULL;
    for (uint64_t i = 0; i < n; i++) {
        PyObject *key = read_value(in, depth + 1);
        PyObject *value = key ? read_value(in, depth + 1) : NULL;
        /* An unhashable key (a list) only in a corrupt block: a TypeError. */
        int r = value ? PyDict_SetItem(dict, key, value) : -1;
        Py_XDECREF(key);
        Py_XDECREF(value);
        if (r < 0) {
            Py_DECREF(dict);
            return NULL;
        }
    }
    return dict;
}

static PyObject *
read_value(in_cursor *in, int depth)
{
    if (in->p >= in->end || depth > MAX_DEPTH)
        return corrupt();
    char tag = *in->p++;
    uint64_t v;
    switch (tag) {
    case T_NONE:
        return Py_NewRef(Py_None);
    case T_FALSE:
        return Py_NewRef(Py_False);
    case T_TRUE:
        return Py_NewRef(Py_True);
    case T_ARRAY:
        return read_array(in);
    default:
        break;
    }
    if (get_u64(in, &v) < 0)
        return corrupt();
    if (tag == T_INT)
        return PyLong_FromLongLong((int64_t)v);
    if (tag == T_FLOAT) {
        double d;
        memcpy(&d, &v, 8);
        return PyFloat_FromDouble(d);
    }
    if (tag == T_STR || tag == T_BYTES) {
        if (v > (uint64_t)(in->end - in->p))
            return corrupt();
        const char *data = in->p;
        in->p += v;
        return tag == T_STR ? PyUnicode_DecodeUTF8(data, (Py_ssize_t)v, "surrogatepass")
                            : PyBytes_FromStringAndSize(data, (Py_ssize_t)v);
    }
    if (tag == T_DICT)
        return read_dict(in, v, depth);
    if (tag != T_TUPLE && tag != T_LIST)
        return corrupt();
    if (v > (uint64_t)(in->end - in->p))
        return corrupt();  /* every item takes a byte at least */
    Py_ssize_t n = (Py_ssize_t)v;
    PyObject *seq = tag == T_TUPLE ? PyTuple_New(n) : PyList_New(n);
    if (!seq)
        return NULL;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *item = read_value(in, depth + 1);
        if (!item) {
            Py_DECREF(seq);
            return NULL;
        }
        if (tag == T_TUPLE)
            PyTuple_SET_ITEM(seq, i, item);
        else
            PyList_SET_ITEM(seq, i, item);
    }
    return seq;
}

PyObject *
native_decode(const char *data, uint64_t len)
{
    in_cursor in = {data, data + len};
    PyObject *r = read_value(&in, 0);
    if (r && in.p != in.end) {
        Py_DECREF(r);
        return corrupt();
    }
    return r;
}

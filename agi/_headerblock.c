/* agi._headerblock: the first read of a FastAGI call, split in C when it is Asterisk's own block.
 *
 * `split_block(data, names)` takes the whole first read and the header names in Asterisk's
 * order (agi.protocol.ASTERISK_HEADERS). It returns `(fields, args)` when `data` is exactly:
 * one line `agi_<name>: <value>` per name, in that order, then the lines
 * `agi_arg_1: <value>` .. `agi_arg_N: <value>`, then the empty line that ends the block. Every
 * value is everything up to the line's `\n`, decoded as UTF-8 with surrogateescape. For
 * anything else it returns None, and agi.protocol's careful loop reads the block, so this
 * function never has to decide what a malformed block means.
 *
 * It is `agi.protocol._asterisk_request`'s regular expression, without the regex engine and
 * the match object: the same bytes give the same fields (tests/test_agi_protocol.py checks
 * both against the careful loop). It imports nothing, so agi/protocol.py (the sans-IO leaf
 * of the package) can use it. Optional, like agi/_speedups.c: built by setup.py when a C
 * compiler is there.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

static PyObject *
decode_value(const char *start, const char *end)
{
    return PyUnicode_DecodeUTF8(start, end - start, "surrogateescape");
}

/* The last value of each header, by its place in `names`: most of a call's headers repeat
 * call after call (agi_network, agi_request, agi_type, agi_version, agi_context, agi_dnid...),
 * and a value equal to the last one is that same string, not a new one (about 17 of 22 on a
 * busy line; callgrind put the strings at most of this function's cost). Only ASCII values are
 * kept, whose bytes are their text: equal bytes, equal value, whatever surrogateescape would
 * do to others. One string per header: bounded, whatever a peer sends. */
#define KEPT_VALUES 64
static PyObject *kept_names; /* the `names` the kept values are for */
static PyObject *kept_values[KEPT_VALUES];

static PyObject *
header_value(Py_ssize_t index, const char *start, const char *end)
{
    Py_ssize_t length = end - start;
    PyObject *kept = index < KEPT_VALUES ? kept_values[index] : NULL;
    if (kept != NULL && PyUnicode_GET_LENGTH(kept) == length
        && memcmp(PyUnicode_1BYTE_DATA(kept), start, length) == 0) {
        return Py_NewRef(kept);
    }
    PyObject *value = decode_value(start, end);
    if (value != NULL && index < KEPT_VALUES && PyUnicode_IS_ASCII(value)) {
        Py_XSETREF(kept_values[index], Py_NewRef(value));
    }
    return value;
}

/* The value of the line at *at that starts with `prefix`, moving *at past the line; NULL
 * with no error set when the line is not that (`index`: the header's place in `names`, or -1
 * for an argument, which is never kept). `stop` is the block's last byte, the `\n` of
 * the empty line: every line before it ends with a `\n` at or before stop - 1. */
static PyObject *
line_value(const char **at, const char *stop, const char *prefix, Py_ssize_t prefix_len,
           Py_ssize_t index)
{
    const char *line = *at;
    if (stop - line < prefix_len || memcmp(line, prefix, prefix_len) != 0) {
        return NULL;
    }
    const char *value = line + prefix_len;
    const char *newline = memchr(value, '\n', stop - value);
    if (newline == NULL) {
        return NULL;
    }
    *at = newline + 1;
    return index < 0 ? decode_value(value, newline) : header_value(index, value, newline);
}

static PyObject *
split_block(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2 || !PyBytes_Check(args[0]) || !PyTuple_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "split_block(data: bytes, names: tuple[str, ...])");
        return NULL;
    }
    const char *data = PyBytes_AS_STRING(args[0]);
    Py_ssize_t size = PyBytes_GET_SIZE(args[0]);
    PyObject *names = args[1];
    if (size < 2 || data[size - 1] != '\n' || data[size - 2] != '\n') {
        Py_RETURN_NONE;
    }
    if (names != kept_names) {
        for (Py_ssize_t i = 0; i < KEPT_VALUES; i++) {
            Py_CLEAR(kept_values[i]);
        }
        Py_XSETREF(kept_names, Py_NewRef(names));
    }
    const char *stop = data + size - 1; /* the empty line's `\n` */
    const char *at = data;
    char prefix[160];
    /* Sized for every name at once: grown one insert at a time, a dict of 22 was rebuilt three
     * times, most of this function's cost (callgrind). */
    PyObject *fields = _PyDict_NewPresized(PyTuple_GET_SIZE(names));
    PyObject *values = PyList_New(0);
    if (fields == NULL || values == NULL) {
        goto error;
    }
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(names); i++) {
        PyObject *name = PyTuple_GET_ITEM(names, i);
        Py_ssize_t name_len;
        const char *name_text = PyUnicode_Check(name) ? PyUnicode_AsUTF8AndSize(name, &name_len)
                                                      : NULL;
        if (name_text == NULL) {
            if (!PyErr_Occurred()) {
                PyErr_SetString(PyExc_TypeError, "the header names must be strings");
            }
            goto error;
        }
        if (name_len > (Py_ssize_t)sizeof(prefix) - 7) {
            PyErr_SetString(PyExc_ValueError, "a header name is too long");
            goto error;
        }
        memcpy(prefix, "agi_", 4);
        memcpy(prefix + 4, name_text, name_len);
        memcpy(prefix + 4 + name_len, ": ", 2);
        PyObject *value = line_value(&at, stop, prefix, name_len + 6, i);
        if (value == NULL) {
            if (PyErr_Occurred()) {
                goto error;
            }
            goto not_asterisks;
        }
        int stored = PyDict_SetItem(fields, name, value);
        Py_DECREF(value);
        if (stored < 0) {
            goto error;
        }
    }
    /* Then agi_arg_1..N (1-based on the wire), each numbered in turn. */
    for (Py_ssize_t n = 1; at < stop; n++) {
        int prefix_len = snprintf(prefix, sizeof(prefix), "agi_arg_%zd: ", n);
        PyObject *value = line_value(&at, stop, prefix, prefix_len, -1);
        if (value == NULL) {
            if (PyErr_Occurred()) {
                goto error;
            }
            goto not_asterisks;
        }
        int appended = PyList_Append(values, value);
        Py_DECREF(value);
        if (appended < 0) {
            goto error;
        }
    }
    PyObject *arguments = PyList_AsTuple(values);
    Py_DECREF(values);
    if (arguments == NULL) {
        Py_DECREF(fields);
        return NULL;
    }
    return Py_BuildValue("(NN)", fields, arguments);

not_asterisks:
    Py_DECREF(fields);
    Py_DECREF(values);
    Py_RETURN_NONE;
error:
    Py_XDECREF(fields);
    Py_XDECREF(values);
    return NULL;
}

static PyMethodDef headerblock_functions[] = {
    {"split_block", (PyCFunction)(void (*)(void))split_block, METH_FASTCALL,
     "split_block(data, names): (fields, args) of a whole header block in Asterisk's order, "
     "else None."},
    {NULL},
};

static struct PyModuleDef headerblock_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "agi._headerblock",
    .m_doc = "The first read of a FastAGI call, split in C (agi/protocol.py).",
    .m_size = -1,
    .m_methods = headerblock_functions,
};

PyMODINIT_FUNC
PyInit__headerblock(void)
{
    return PyModule_Create(&headerblock_module);
}

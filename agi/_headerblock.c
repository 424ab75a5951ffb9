/* agi._headerblock: the first read of a FastAGI call, split in C when it is Asterisk's own block.
 *
 * `split_block(data, names)` takes the whole first read and the header names in Asterisk's
 * order (agi.protocol.ASTERISK_HEADERS). It returns `(fields, args)` when `data` is exactly:
 * one line `agi_<name>: <value>` per name, in that order, then the lines
 * `agi_arg_1: <value>` .. `agi_arg_N: <value>`, then the empty line that ends the block. Every
 * value is everything up to the line's `\n`, decoded as UTF-8 with surrogateescape. For
 * anything else it returns None, and agi.protocol's careful loop reads the block, so this
 * function never has to decide what a malformed block means. `request_of(cls, fields, args)`
 * then makes the request of those fields, as agi.protocol._request does, when its script
 * carries no `?query`.
 *
 * It is `agi.protocol._asterisk_request`'s regular expression, without the regex engine and
 * the match object: the same bytes give the same fields (tests/test_agi_protocol.py checks
 * both against the careful loop). It imports nothing, so agi/protocol.py (the sans-IO leaf
 * of the package) can use it. Optional, like agi/_speedups.c: built by setup.py when a C
 * compiler is there.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include "structmember.h"
#include <string.h>

static PyObject *network_script_key, *empty_tuple; /* set at import */

static PyObject *
decode_value(const char *start, const char *end)
{
    return PyUnicode_DecodeUTF8(start, end - start, "surrogateescape");
}

/* The last block's fields, kept from call to call: most of a call's headers repeat call after
 * call (agi_network, agi_request, agi_type, agi_version, agi_context, agi_dnid...: about 17
 * of 22 on a busy line). Each call's fields are a copy of the kept ones, in which only the
 * headers whose bytes differ were decoded and set: a new string and a dict insert each were
 * most of this function's cost (callgrind: about 240 instructions per insert). Never handed
 * out, so no caller's change to its request can reach the next call; and never changed while
 * Python code can run (see keep_value), so calls on several threads do not mix.
 *
 * `kept_values[i]` is the kept value of `names[i]` when it is ASCII, whose bytes are its
 * text (equal bytes, equal value, whatever surrogateescape would make of others); else NULL,
 * and that header is decoded afresh. One string per header: bounded, whatever a peer sends. */
#define KEPT_VALUES 64
static PyObject *kept_names;  /* the `names` the kept fields are for */
static PyObject *kept_fields; /* name -> the last block's value (None before any) */
static PyObject *kept_values[KEPT_VALUES];

/* Start keeping the fields of `names` (distinct strings): nothing kept yet. */
static int
keep_names(PyObject *names)
{
    for (Py_ssize_t i = 0; i < KEPT_VALUES; i++) {
        Py_CLEAR(kept_values[i]);
    }
    Py_CLEAR(kept_names);
    Py_CLEAR(kept_fields);
    PyObject *fields = PyDict_New();
    if (fields == NULL) {
        return -1;
    }
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(names); i++) {
        PyObject *name = PyTuple_GET_ITEM(names, i);
        if (!PyUnicode_Check(name)) {
            PyErr_SetString(PyExc_TypeError, "the header names must be strings");
            Py_DECREF(fields);
            return -1;
        }
        if (PyDict_SetItem(fields, name, Py_None) < 0) {
            Py_DECREF(fields);
            return -1;
        }
    }
    if (PyDict_GET_SIZE(fields) != PyTuple_GET_SIZE(names)) {
        PyErr_SetString(PyExc_ValueError, "the header names must be distinct");
        Py_DECREF(fields);
        return -1;
    }
    kept_fields = fields;
    kept_names = Py_NewRef(names);
    return 0;
}

/* The field `names[index]` gets the value in [start, end), in this call's `fields` (a copy of
 * the kept ones) and in the kept ones: decoded and set unless its bytes are the kept value's.
 * Nothing here can run Python code (a str is not tracked by the garbage collector, and an
 * existing key's value is replaced without growing the dict), so no other thread's call can
 * change the kept fields between this call's copy and its last header. */
static int
keep_value(PyObject *fields, Py_ssize_t index, PyObject *name, const char *start,
           const char *end)
{
    Py_ssize_t length = end - start;
    PyObject *kept = index < KEPT_VALUES ? kept_values[index] : NULL;
    if (kept != NULL && PyUnicode_GET_LENGTH(kept) == length
        && memcmp(PyUnicode_1BYTE_DATA(kept), start, length) == 0) {
        return 0; /* the same value: the copy has it */
    }
    PyObject *value = decode_value(start, end);
    if (value == NULL) {
        return -1;
    }
    int stored = PyDict_SetItem(fields, name, value);
    if (stored == 0) {
        stored = PyDict_SetItem(kept_fields, name, value);
    }
    if (index < KEPT_VALUES) {
        Py_XSETREF(kept_values[index], PyUnicode_IS_ASCII(value) ? Py_NewRef(value) : NULL);
    }
    Py_DECREF(value);
    return stored;
}

/* The value of the line at *at that starts with `prefix`, as [*value, *value_end), moving *at
 * past the line; 0 when the line is not that. `stop` is the block's last byte, the `\n` of
 * the empty line: every line before it ends with a `\n` at or before stop - 1. */
static int
line_value(const char **at, const char *stop, const char *prefix, Py_ssize_t prefix_len,
           const char **value, const char **value_end)
{
    const char *line = *at;
    if (stop - line < prefix_len || memcmp(line, prefix, prefix_len) != 0) {
        return 0;
    }
    *value = line + prefix_len;
    *value_end = memchr(*value, '\n', stop - *value);
    if (*value_end == NULL) {
        return 0;
    }
    *at = *value_end + 1;
    return 1;
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
    if (names != kept_names && keep_names(names) < 0) {
        return NULL;
    }
    const char *stop = data + size - 1; /* the empty line's `\n` */
    const char *at = data, *value, *value_end;
    char prefix[160];
    /* Copied first: making a dict may run the garbage collector, and with it Python code. */
    PyObject *fields = PyDict_Copy(kept_fields);
    if (fields == NULL) {
        return NULL;
    }
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(names); i++) {
        PyObject *name = PyTuple_GET_ITEM(names, i);
        Py_ssize_t name_len;
        const char *name_text = PyUnicode_AsUTF8AndSize(name, &name_len);
        if (name_text == NULL) {
            Py_DECREF(fields);
            return NULL;
        }
        if (name_len > (Py_ssize_t)sizeof(prefix) - 7) {
            PyErr_SetString(PyExc_ValueError, "a header name is too long");
            Py_DECREF(fields);
            return NULL;
        }
        memcpy(prefix, "agi_", 4);
        memcpy(prefix + 4, name_text, name_len);
        memcpy(prefix + 4 + name_len, ": ", 2);
        if (!line_value(&at, stop, prefix, name_len + 6, &value, &value_end)) {
            Py_DECREF(fields);
            Py_RETURN_NONE; /* not Asterisk's own block */
        }
        if (keep_value(fields, i, name, value, value_end) < 0) {
            Py_DECREF(fields);
            return NULL;
        }
    }
    /* Then agi_arg_1..N (1-based on the wire), each numbered in turn. */
    PyObject *values = NULL; /* the arguments, when there are any */
    for (Py_ssize_t n = 1; at < stop; n++) {
        int prefix_len = snprintf(prefix, sizeof(prefix), "agi_arg_%zd: ", n);
        if (!line_value(&at, stop, prefix, prefix_len, &value, &value_end)) {
            Py_XDECREF(values);
            Py_DECREF(fields);
            Py_RETURN_NONE;
        }
        if (values == NULL && (values = PyList_New(0)) == NULL) {
            Py_DECREF(fields);
            return NULL;
        }
        PyObject *argument = decode_value(value, value_end);
        int appended = argument == NULL ? -1 : PyList_Append(values, argument);
        Py_XDECREF(argument);
        if (appended < 0) {
            Py_DECREF(values);
            Py_DECREF(fields);
            return NULL;
        }
    }
    PyObject *arguments = values == NULL ? PyTuple_New(0) : PyList_AsTuple(values);
    Py_XDECREF(values);
    if (arguments == NULL) {
        Py_DECREF(fields);
        return NULL;
    }
    return Py_BuildValue("(NN)", fields, arguments);
}

/* request_of(cls, fields, args): the request of a split block, `cls(fields, args, script, (),
 * None)` as agi.protocol._request makes it, when the script (`network_script`) carries no
 * query: `script` is it without its leading and trailing slashes. None when it carries one
 * (`?a=b`): `_request` reads the query. `cls` is agi.protocol.AgiRequest, a frozen dataclass
 * with slots: its fields are set through their slots, as its __init__ does through
 * object.__setattr__ one call at a time (about a third of the cost of a call's headers). */
#define REQUEST_SLOTS 5
static const char *request_slot_names[REQUEST_SLOTS] = {"fields", "args", "script", "query",
                                                        "lines"};
static PyObject *request_class;
static PyMemberDef *request_slots[REQUEST_SLOTS];

static int
find_request_slots(PyObject *cls)
{
    if (!PyType_Check(cls)) {
        PyErr_SetString(PyExc_TypeError, "request_of() takes the request class first");
        return -1;
    }
    PyTypeObject *type = (PyTypeObject *)cls;
    for (int i = 0; i < REQUEST_SLOTS; i++) {
        PyObject *descriptor = PyDict_GetItemString(type->tp_dict, request_slot_names[i]);
        if (descriptor == NULL || Py_TYPE(descriptor) != &PyMemberDescr_Type
            || ((PyMemberDescrObject *)descriptor)->d_member->type != T_OBJECT_EX) {
            PyErr_Format(PyExc_TypeError, "%s has no slot %s", type->tp_name,
                         request_slot_names[i]);
            return -1;
        }
        request_slots[i] = ((PyMemberDescrObject *)descriptor)->d_member;
    }
    Py_XSETREF(request_class, Py_NewRef(cls));
    return 0;
}

static PyObject *
request_of(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3 || !PyDict_Check(args[1]) || !PyTuple_Check(args[2])) {
        PyErr_SetString(PyExc_TypeError, "request_of(cls, fields: dict, args: tuple)");
        return NULL;
    }
    PyObject *cls = args[0];
    if (cls != request_class && find_request_slots(cls) < 0) {
        return NULL;
    }
    PyObject *network_script = PyDict_GetItemWithError(args[1], network_script_key);
    if (network_script == NULL && PyErr_Occurred()) {
        return NULL;
    }
    PyObject *script;
    if (network_script == NULL) {
        script = PyUnicode_FromStringAndSize("", 0);
    }
    else {
        if (!PyUnicode_Check(network_script)) {
            PyErr_SetString(PyExc_TypeError, "the header values must be strings");
            return NULL;
        }
        Py_ssize_t end = PyUnicode_GET_LENGTH(network_script);
        Py_ssize_t query = PyUnicode_FindChar(network_script, '?', 0, end, 1);
        if (query == -2) {
            return NULL;
        }
        if (query >= 0) {
            Py_RETURN_NONE; /* `_request` reads the query */
        }
        Py_ssize_t start = 0;
        while (start < end && PyUnicode_READ_CHAR(network_script, start) == '/') {
            start++;
        }
        while (end > start && PyUnicode_READ_CHAR(network_script, end - 1) == '/') {
            end--;
        }
        script = PyUnicode_Substring(network_script, start, end);
    }
    if (script == NULL) {
        return NULL;
    }
    PyTypeObject *type = (PyTypeObject *)cls;
    PyObject *request = type->tp_alloc(type, 0);
    if (request == NULL) {
        Py_DECREF(script);
        return NULL;
    }
    PyObject *values[REQUEST_SLOTS] = {args[1], args[2], script, empty_tuple, Py_None};
    for (int i = 0; i < REQUEST_SLOTS; i++) {
        if (PyMember_SetOne((char *)request, request_slots[i], values[i]) < 0) {
            Py_DECREF(script);
            Py_DECREF(request);
            return NULL;
        }
    }
    Py_DECREF(script);
    return request;
}

static PyMethodDef headerblock_functions[] = {
    {"request_of", (PyCFunction)(void (*)(void))request_of, METH_FASTCALL,
     "request_of(cls, fields, args): the request of a split block whose script has no query, "
     "else None."},
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
    network_script_key = PyUnicode_InternFromString("network_script");
    empty_tuple = PyTuple_New(0);
    if (network_script_key == NULL || empty_tuple == NULL) {
        return NULL;
    }
    return PyModule_Create(&headerblock_module);
}

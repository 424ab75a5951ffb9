/* agi._speedups: the FastAGI command path in C, optional.
 *
 * Three base types, each the twin of a pure-Python class in agi/cores.py with the same
 * attribute names (so the rest of each class, written once in Python, runs on either):
 *
 *   WaiterCore   the reply waiter's fields, and its await: yields itself until the reply is
 *                there, then gives the reply (converted), with no generator per command;
 *   DriverCore   the flow driver's fields, and `resume`: send into the flow's coroutine with
 *                its task entered (agi/driver.py explains why the driver exists); and what
 *                the task runs once per call: the driver's construction, its await (no
 *                generator), `add_done_callback`, `result` and `get_loop`, and the wake-up
 *                of the task at the flow's end;
 *   ProtocolCore the connection's fields, `get_buffer`, `buffer_updated` and `send`: the read
 *                of a plain `200 result=N` reply resumes the flow without any Python frame.
 *
 * Nothing here parses what a peer sends: a read is either exactly one of the replies in
 * agi.protocol's fixed table (a dict lookup of the whole read), or it goes to the Python
 * parser (`data_received`). Every other case (a hangup, a cancelled or undriven waiter, a
 * flow that awaits something else, the flow's end) is handed to the same Python methods the
 * pure-Python cores call. Built by setup.py when a C compiler is there; without one, or with
 * CENTRALITA_NO_SPEEDUPS=1, agi/cores.py runs instead (docs/cluster.md, "The C command path").
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include "structmember.h"
#include <time.h>

#define IS_SET(o) ((o) != NULL && (o) != Py_None)

/* Set at import (module_exec): agi.protocol._SIMPLE_REPLIES, asyncio's task bookkeeping,
 * the session's errors, and interned attribute names. */
static PyObject *simple_replies, *enter_task, *leave_task, *caller_hangup, *reply_timeout;
static PyObject *encoded_lines, *encode_command;
static PyObject *gives_nothing; /* agi.session._nothing: the conversion of a reply that gives None */
static PyObject *str_between_replies, *str_data_received, *str_set_result, *str_result;
static PyObject *str_yielded, *str_resume, *str_call_soon, *str_throw, *str_close, *str_context;
static PyObject *kwnames_context; /* ("context",) */
static PyObject *current_task, *cancelled_error, *invalid_state_error;
static PyObject *current_tasks; /* asyncio's dict of the current tasks, where it has one */

static double
monotonic(void)
{
    /* The clock of time.monotonic on Linux, the server's `now` (agi/server.py). */
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* End an iterator's step with `value` (a new reference, taken): StopIteration(value). */
static void
raise_stop_iteration(PyObject *value)
{
    if (value != Py_None) {
        PyObject *stop = PyObject_CallOneArg(PyExc_StopIteration, value);
        if (stop != NULL) {
            PyErr_SetObject(PyExc_StopIteration, stop);
            Py_DECREF(stop);
        }
    }
    Py_DECREF(value);
}

/* What `tp_iternext` (or a `send`/`throw` method) returns for one step of an await: the
 * yielded object, or NULL with StopIteration(value) or the step's error set. */
static PyObject *
step_result(PySendResult status, PyObject *out)
{
    if (status == PYGEN_NEXT) {
        return out;
    }
    if (status == PYGEN_RETURN) {
        raise_stop_iteration(out);
    }
    return NULL;
}

/* ---------------------------------------------------------------------------------------- */
/* WaiterCore */

typedef struct {
    PyObject_HEAD
    PyObject *loop, *callback, *context, *extra, *driver, *line, *convert, *result, *exception;
    int state; /* 0 pending, 1 done, 2 cancelled */
    char blocking; /* _asyncio_future_blocking */
} WaiterCore;

static PyTypeObject WaiterCore_Type;
static PyTypeObject DriverCore_Type;
#define WaiterCore_Check(o) PyObject_TypeCheck(o, &WaiterCore_Type)
#define DriverCore_Check(o) PyObject_TypeCheck(o, &DriverCore_Type)

static int
waiter_traverse(WaiterCore *self, visitproc visit, void *arg)
{
    Py_VISIT(self->loop);
    Py_VISIT(self->callback);
    Py_VISIT(self->context);
    Py_VISIT(self->extra);
    Py_VISIT(self->driver);
    Py_VISIT(self->line);
    Py_VISIT(self->convert);
    Py_VISIT(self->result);
    Py_VISIT(self->exception);
    return 0;
}

static int
waiter_clear(WaiterCore *self)
{
    Py_CLEAR(self->loop);
    Py_CLEAR(self->callback);
    Py_CLEAR(self->context);
    Py_CLEAR(self->extra);
    Py_CLEAR(self->driver);
    Py_CLEAR(self->line);
    Py_CLEAR(self->convert);
    Py_CLEAR(self->result);
    Py_CLEAR(self->exception);
    return 0;
}

static void
waiter_dealloc(WaiterCore *self)
{
    PyObject_GC_UnTrack(self);
    waiter_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* What the await gives once the waiter is done: the reply, converted; else what `result()`
 * raises (cancelled, the reply's exception). */
static PySendResult
waiter_finish(WaiterCore *self, PyObject **out)
{
    PyObject *reply = self->result;
    if (IS_SET(reply)) {
        if (self->convert == gives_nothing) {
            *out = Py_NewRef(Py_None); /* what it returns, without its Python frame */
            return PYGEN_RETURN;
        }
        if (IS_SET(self->convert)) {
            *out = PyObject_CallOneArg(self->convert, reply);
            return *out == NULL ? PYGEN_ERROR : PYGEN_RETURN;
        }
        *out = Py_NewRef(reply);
        return PYGEN_RETURN;
    }
    *out = PyObject_CallMethodNoArgs((PyObject *)self, str_result);
    return *out == NULL ? PYGEN_ERROR : PYGEN_RETURN;
}

static PySendResult
waiter_am_send(WaiterCore *self, PyObject *arg, PyObject **out)
{
    if (self->state == 0) {
        /* The await yields the waiter itself, as an asyncio Future does. */
        self->blocking = 1;
        *out = Py_NewRef(self);
        return PYGEN_NEXT;
    }
    return waiter_finish(self, out);
}

static PyObject *
waiter_iternext(WaiterCore *self)
{
    PyObject *out = NULL;
    PySendResult status = waiter_am_send(self, Py_None, &out);
    return step_result(status, out);
}

static PyObject *
waiter_await(PyObject *self)
{
    return Py_NewRef(self);
}

/* ReplyWaiter(loop, line=b""): the session's one waiter, made once per call. */
static int
waiter_init(WaiterCore *self, PyObject *args, PyObject *kwargs)
{
    static char *keywords[] = {"loop", "line", NULL};
    PyObject *loop, *line = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O|O:ReplyWaiter", keywords, &loop, &line)) {
        return -1;
    }
    Py_XSETREF(self->loop, Py_NewRef(loop));
    Py_XSETREF(self->line, line == NULL ? PyBytes_FromStringAndSize("", 0) : Py_NewRef(line));
    if (self->line == NULL) {
        return -1;
    }
    Py_CLEAR(self->callback);
    Py_CLEAR(self->context);
    Py_CLEAR(self->extra);
    Py_CLEAR(self->driver); /* the flow's driver, while it awaits this reply directly */
    Py_CLEAR(self->convert);
    Py_CLEAR(self->result);
    Py_CLEAR(self->exception);
    self->state = 0;
    self->blocking = 0;
    return 0;
}

static PyAsyncMethods waiter_async = {
    .am_await = waiter_await,
    .am_send = (sendfunc)waiter_am_send,
};

static PyMemberDef waiter_members[] = {
    {"_loop", T_OBJECT, offsetof(WaiterCore, loop), 0, NULL},
    {"_callback", T_OBJECT, offsetof(WaiterCore, callback), 0, NULL},
    {"_context", T_OBJECT, offsetof(WaiterCore, context), 0, NULL},
    {"_extra", T_OBJECT, offsetof(WaiterCore, extra), 0, NULL},
    {"_driver", T_OBJECT, offsetof(WaiterCore, driver), 0, NULL},
    {"_line", T_OBJECT, offsetof(WaiterCore, line), 0, NULL},
    {"_convert", T_OBJECT, offsetof(WaiterCore, convert), 0, NULL},
    {"_result", T_OBJECT, offsetof(WaiterCore, result), 0, NULL},
    {"_exception", T_OBJECT, offsetof(WaiterCore, exception), 0, NULL},
    {"_state", T_INT, offsetof(WaiterCore, state), 0, NULL},
    {"_asyncio_future_blocking", T_BOOL, offsetof(WaiterCore, blocking), 0, NULL},
    {NULL},
};

static PyTypeObject WaiterCore_Type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "agi._speedups.WaiterCore",
    .tp_basicsize = sizeof(WaiterCore),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "The reply waiter's fields and its await (agi/cores.py WaiterCore).",
    .tp_traverse = (traverseproc)waiter_traverse,
    .tp_clear = (inquiry)waiter_clear,
    .tp_dealloc = (destructor)waiter_dealloc,
    .tp_as_async = &waiter_async,
    .tp_iter = PyObject_SelfIter,
    .tp_iternext = (iternextfunc)waiter_iternext,
    .tp_members = waiter_members,
    .tp_init = (initproc)waiter_init,
    .tp_new = PyType_GenericNew,
};

/* ---------------------------------------------------------------------------------------- */
/* DriverCore */

/* Where the driver's await is (agi/cores.py PyDriverCore.__await__, the same steps). */
enum {
    AWAIT_RUNNING = 0, /* not suspended: the next send starts or goes on with the flow */
    AWAIT_PARKED,      /* yielded itself: replies resume the flow, the task waits for its end */
    AWAIT_PROXYING,    /* yielded what else the flow awaits: the task waits on that */
    AWAIT_DONE,        /* returned or raised */
};

typedef struct {
    PyObject_HEAD
    PyObject *coro, *waiter, *loop, *task, *context, *proxied, *callback, *outcome, *throw_;
    int state;    /* 0 pending, 1 done, 2 cancelled */
    int awaiting; /* AWAIT_* */
    char blocking; /* _asyncio_future_blocking */
} DriverCore;

static int
driver_traverse(DriverCore *self, visitproc visit, void *arg)
{
    Py_VISIT(self->coro);
    Py_VISIT(self->waiter);
    Py_VISIT(self->loop);
    Py_VISIT(self->task);
    Py_VISIT(self->context);
    Py_VISIT(self->proxied);
    Py_VISIT(self->callback);
    Py_VISIT(self->outcome);
    Py_VISIT(self->throw_);
    return 0;
}

static int
driver_clear(DriverCore *self)
{
    Py_CLEAR(self->coro);
    Py_CLEAR(self->waiter);
    Py_CLEAR(self->loop);
    Py_CLEAR(self->task);
    Py_CLEAR(self->context);
    Py_CLEAR(self->proxied);
    Py_CLEAR(self->callback);
    Py_CLEAR(self->outcome);
    Py_CLEAR(self->throw_);
    return 0;
}

static void
driver_dealloc(DriverCore *self)
{
    PyObject_GC_UnTrack(self);
    driver_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* FlowDriver(coro, waiter, loop, task=None): `task` is the flow's, the one that awaits the
 * driver (the current task when None). */
static int
driver_init(DriverCore *self, PyObject *args, PyObject *kwargs)
{
    static char *keywords[] = {"coro", "waiter", "loop", "task", NULL};
    PyObject *coro, *waiter, *loop, *task = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OOO|O:FlowDriver", keywords, &coro, &waiter,
                                     &loop, &task)) {
        return -1;
    }
    if (task == Py_None) {
        task = PyObject_CallOneArg(current_task, loop);
        if (task == NULL) {
            return -1;
        }
        if (task == Py_None) {
            Py_DECREF(task);
            PyErr_SetString(PyExc_RuntimeError,
                            "a FlowDriver is made and awaited inside the flow's task");
            return -1;
        }
    }
    else {
        Py_INCREF(task);
    }
    Py_XSETREF(self->task, task);
    Py_XSETREF(self->coro, Py_NewRef(coro));
    Py_XSETREF(self->waiter, Py_NewRef(waiter));
    Py_XSETREF(self->loop, Py_NewRef(loop));
    Py_CLEAR(self->callback);
    Py_CLEAR(self->context);
    Py_CLEAR(self->outcome);
    Py_CLEAR(self->proxied);
    Py_CLEAR(self->throw_);
    self->state = 0;
    self->awaiting = AWAIT_RUNNING;
    self->blocking = 0;
    return 0;
}

/* The driver is done (state 1) or cancelled (2): wake the task that waits on it. */
static int
driver_complete_impl(DriverCore *self, int state)
{
    self->state = state;
    PyObject *callback = self->callback, *context = self->context;
    if (callback == NULL || callback == Py_None) {
        return 0;
    }
    self->callback = NULL; /* its reference is ours now, and the context's */
    self->context = NULL;
    PyObject *result;
    if (context == Py_None) {
        Py_CLEAR(context);
    }
    if (state == 2) {
        /* A cancel comes from inside some task: wake it on the next turn. */
        PyObject *call_args[4] = {self->loop, callback, (PyObject *)self, context};
        result = PyObject_VectorcallMethod(str_call_soon, call_args, 3,
                                           context == NULL ? NULL : kwnames_context);
    }
    else if (context == NULL) {
        result = PyObject_CallOneArg(callback, (PyObject *)self);
    }
    else if (PyContext_Enter(context) < 0) {
        result = NULL;
    }
    else {
        /* context.run(callback, self), without the method call. */
        result = PyObject_CallOneArg(callback, (PyObject *)self);
        if (PyContext_Exit(context) < 0) {
            Py_CLEAR(result);
        }
    }
    Py_DECREF(callback);
    Py_XDECREF(context);
    if (result == NULL) {
        return -1;
    }
    Py_DECREF(result);
    return 0;
}

/* The flow ended (`outcome` a StopIteration) or raised, while driven here. */
static int
driver_ended(DriverCore *self, PyObject *outcome)
{
    Py_XSETREF(self->outcome, outcome); /* the reference is given */
    return driver_complete_impl(self, 1);
}

/* The driver's await, one step: send into the flow (or throw `thrown` into it) until it
 * awaits something. Its next reply: park (yield the driver itself; the replies resume the
 * flow from now on). Anything else: the task waits on it. The flow's end: return. */
static PySendResult
driver_step(DriverCore *self, PyObject *thrown, PyObject **out)
{
    PyObject *coro = self->coro, *yielded = NULL;
    if (!IS_SET(coro)) {
        PyErr_SetString(PyExc_RuntimeError, "the flow driver has no flow");
        return PYGEN_ERROR;
    }
    Py_INCREF(coro);
    PySendResult status;
    if (thrown == NULL) {
        status = PyIter_Send(coro, Py_None, &yielded);
    }
    else {
        /* coro.throw(thrown): a coroutine has no C call for it. */
        yielded = PyObject_CallMethodOneArg(coro, str_throw, thrown);
        status = PYGEN_NEXT;
        if (yielded == NULL) {
            status = PYGEN_ERROR;
            if (PyErr_ExceptionMatches(PyExc_StopIteration)) {
                PyObject *type, *value, *traceback;
                PyErr_Fetch(&type, &value, &traceback);
                PyErr_NormalizeException(&type, &value, &traceback);
                yielded = value == NULL ? NULL : PyObject_GetAttrString(value, "value");
                Py_XDECREF(type);
                Py_XDECREF(value);
                Py_XDECREF(traceback);
                status = yielded == NULL ? PYGEN_ERROR : PYGEN_RETURN;
            }
        }
    }
    Py_DECREF(coro);
    if (status != PYGEN_NEXT) {
        self->awaiting = AWAIT_DONE;
        *out = yielded;
        return status;
    }
    PyObject *waiter = self->waiter;
    if (yielded != waiter || !WaiterCore_Check(waiter) || ((WaiterCore *)waiter)->state != 0) {
        /* Anything but a pending reply: the task waits on it as usual. */
        self->awaiting = AWAIT_PROXYING;
        *out = yielded;
        return PYGEN_NEXT;
    }
    Py_DECREF(yielded);
    /* The flow waits for a reply: from now on, replies resume it directly. */
    ((WaiterCore *)waiter)->blocking = 0;
    Py_XSETREF(((WaiterCore *)waiter)->driver, Py_NewRef((PyObject *)self));
    self->state = 0;
    self->blocking = 1;
    self->awaiting = AWAIT_PARKED;
    *out = Py_NewRef((PyObject *)self);
    return PYGEN_NEXT;
}

/* The task sends into the await (`arg`, always None from a task). */
static PySendResult
driver_am_send(DriverCore *self, PyObject *arg, PyObject **out)
{
    int awaiting = self->awaiting;
    self->awaiting = AWAIT_RUNNING;
    if (awaiting == AWAIT_DONE) {
        PyErr_SetString(PyExc_RuntimeError, "cannot reuse an already awaited flow driver");
        return PYGEN_ERROR;
    }
    if (awaiting == AWAIT_PARKED) {
        /* The task was woken: the flow ended or raised here, or an error must go into it. */
        PyObject *thrown = self->throw_;
        if (IS_SET(thrown)) {
            self->throw_ = NULL;
            PySendResult status = driver_step(self, thrown, out);
            Py_DECREF(thrown);
            return status;
        }
        PyObject *outcome = self->outcome;
        self->outcome = NULL;
        if (IS_SET(outcome)) {
            self->awaiting = AWAIT_DONE;
            if (PyObject_TypeCheck(outcome, (PyTypeObject *)PyExc_StopIteration)) {
                *out = Py_NewRef(((PyStopIterationObject *)outcome)->value);
                Py_DECREF(outcome);
                return PYGEN_RETURN;
            }
            /* Raised afresh from here; the outcome is dropped, so the exception and this
             * driver make no reference cycle (a hangup's objects are freed at once). */
            PyErr_SetObject((PyObject *)Py_TYPE(outcome), outcome);
            Py_DECREF(outcome);
            return PYGEN_ERROR;
        }
        Py_XDECREF(outcome);
    }
    return driver_step(self, NULL, out);
}

static PyObject *
driver_iternext(DriverCore *self)
{
    PyObject *out = NULL;
    PySendResult status = driver_am_send(self, Py_None, &out);
    return step_result(status, out);
}

/* send(value): what a generator-based caller uses (the task itself uses am_send). */
static PyObject *
driver_send(DriverCore *self, PyObject *arg)
{
    return driver_iternext(self);
}

/* throw(exc): the task throws into its await (a cancellation, or what the awaited raised):
 * into the flow, where it waits. */
static PyObject *
driver_throw(DriverCore *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs < 1 || nargs > 3) {
        PyErr_SetString(PyExc_TypeError, "throw() takes 1 to 3 arguments");
        return NULL;
    }
    PyObject *type = args[0], *value = nargs > 1 ? args[1] : NULL;
    PyObject *traceback = nargs > 2 ? args[2] : NULL;
    PyObject *thrown;
    if (PyExceptionInstance_Check(type)) {
        thrown = Py_NewRef(type);
    }
    else if (PyExceptionClass_Check(type)) {
        thrown = IS_SET(value) && PyExceptionInstance_Check(value)
                     ? Py_NewRef(value)
                     : (IS_SET(value) ? PyObject_CallOneArg(type, value)
                                      : PyObject_CallNoArgs(type));
        if (thrown == NULL) {
            return NULL;
        }
    }
    else {
        PyErr_SetString(PyExc_TypeError, "exceptions must derive from BaseException");
        return NULL;
    }
    if (IS_SET(traceback) && PyException_SetTraceback(thrown, traceback) < 0) {
        Py_DECREF(thrown);
        return NULL;
    }
    int awaiting = self->awaiting;
    if (awaiting != AWAIT_PARKED && awaiting != AWAIT_PROXYING) {
        /* Not suspended in the flow: raised right here, as a generator does. */
        PyErr_SetObject((PyObject *)Py_TYPE(thrown), thrown);
        Py_DECREF(thrown);
        return NULL;
    }
    self->awaiting = AWAIT_RUNNING;
    PyObject *out = NULL;
    PySendResult status = driver_step(self, thrown, &out);
    Py_DECREF(thrown);
    return step_result(status, out);
}

/* close(): the await is closed (its task's coroutine was): so is the flow. */
static PyObject *
driver_close(DriverCore *self, PyObject *unused)
{
    self->awaiting = AWAIT_DONE;
    if (!IS_SET(self->coro)) {
        Py_RETURN_NONE;
    }
    return PyObject_CallMethodNoArgs(self->coro, str_close);
}

static PyObject *
driver_await(PyObject *self)
{
    return Py_NewRef(self);
}

static PyAsyncMethods driver_async = {
    .am_await = driver_await,
    .am_send = (sendfunc)driver_am_send,
};

/* add_done_callback(callback, *, context=None): the task waiting on the driver. */
static PyObject *
driver_add_done_callback(DriverCore *self, PyObject *const *args, Py_ssize_t nargs,
                         PyObject *kwnames)
{
    PyObject *context = Py_None;
    Py_ssize_t nkw = kwnames == NULL ? 0 : PyTuple_GET_SIZE(kwnames);
    if (nargs != 1 || nkw > 1
        || (nkw == 1
            && PyUnicode_Compare(PyTuple_GET_ITEM(kwnames, 0), str_context) != 0)) {
        if (!PyErr_Occurred()) {
            PyErr_SetString(PyExc_TypeError,
                            "add_done_callback(callback, *, context=None)");
        }
        return NULL;
    }
    if (nkw == 1) {
        context = args[1];
    }
    PyObject *callback = args[0];
    if (self->state) {
        PyObject *call_args[4] = {self->loop, callback, (PyObject *)self, context};
        PyObject *handle = PyObject_VectorcallMethod(str_call_soon, call_args, 3,
                                                     kwnames_context);
        if (handle == NULL) {
            return NULL;
        }
        Py_DECREF(handle);
        Py_RETURN_NONE;
    }
    if (context == Py_None) {
        context = PyContext_CopyCurrent();
        if (context == NULL) {
            return NULL;
        }
    }
    else {
        Py_INCREF(context);
    }
    Py_XSETREF(self->callback, Py_NewRef(callback));
    Py_XSETREF(self->context, context);
    Py_RETURN_NONE;
}

static PyObject *
driver_result(DriverCore *self, PyObject *unused)
{
    if (self->state == 2) {
        PyErr_SetNone(cancelled_error);
        return NULL;
    }
    if (self->state == 0) {
        PyErr_SetString(invalid_state_error, "the flow is still running");
        return NULL;
    }
    Py_RETURN_NONE;
}

/* Asked by the task of anything it awaits (asyncio's get_future_loop), once per call. */
static PyObject *
driver_get_loop(DriverCore *self, PyObject *unused)
{
    if (self->loop == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "the flow driver has no loop");
        return NULL;
    }
    return Py_NewRef(self->loop);
}

static PyObject *
driver_complete(DriverCore *self, PyObject *state)
{
    int value = PyLong_AsLong(state);
    if (value == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if (driver_complete_impl(self, value) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
driver_ended_method(DriverCore *self, PyObject *outcome)
{
    if (driver_ended(self, Py_NewRef(outcome)) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
call_task_hook(PyObject *hook, DriverCore *self)
{
    PyObject *args[2] = {self->loop, self->task};
    return PyObject_Vectorcall(hook, args, 2, NULL);
}

/* Make the flow's task the loop's current one, as asyncio's _enter_task does: 1 entered, 0
 * when another task is current (the caller is inside it), -1 an error.
 *
 * Where asyncio's own C `_enter_task` keeps the current tasks in its `_current_tasks` dict
 * (CPython 3.11 to 3.13, checked at import: `current_tasks`), the dict is used here as that
 * function uses it, without the call and its argument parsing (about 600 instructions per
 * command with `_leave_task`, callgrind). Elsewhere (3.14 keeps the current task in the
 * thread state) asyncio's functions are called. */
static int
enter_flow_task(DriverCore *self)
{
    if (current_tasks == NULL) {
        PyObject *entered = call_task_hook(enter_task, self);
        if (entered != NULL) {
            Py_DECREF(entered);
            return 1;
        }
        if (!PyErr_ExceptionMatches(PyExc_RuntimeError)) {
            return -1;
        }
        PyErr_Clear();
        return 0;
    }
    PyObject *running = PyDict_GetItemWithError(current_tasks, self->loop);
    if (running != NULL) {
        return 0;
    }
    if (PyErr_Occurred()) {
        return -1;
    }
    return PyDict_SetItem(current_tasks, self->loop, self->task) < 0 ? -1 : 1;
}

/* The flow's task is no longer the current one (asyncio's _leave_task). */
static int
leave_flow_task(DriverCore *self)
{
    if (current_tasks == NULL) {
        PyObject *left = call_task_hook(leave_task, self);
        Py_XDECREF(left);
        return left == NULL ? -1 : 0;
    }
    PyObject *running = PyDict_GetItemWithError(current_tasks, self->loop);
    if (running != self->task) {
        if (!PyErr_Occurred()) {
            PyErr_Format(PyExc_RuntimeError,
                         "Leaving task %R does not match the current task %R.", self->task,
                         running == NULL ? Py_None : running);
        }
        return -1;
    }
    return PyDict_DelItem(current_tasks, self->loop);
}

/* Send into the flow (its reply, or what else it awaited, is ready): FlowDriver.resume of
 * agi/cores.py, the same steps. */
static PyObject *
driver_resume_impl(DriverCore *self)
{
    PyObject *yielded = NULL, *type, *value, *traceback, *ended;
    PySendResult status;
    if (self->state) {
        Py_RETURN_NONE; /* cancelled meanwhile: the task throws the cancellation in */
    }
    if (!IS_SET(self->loop) || !IS_SET(self->task) || !IS_SET(self->coro)
        || self->context == NULL || !PyContext_CheckExact(self->context)) {
        PyErr_SetString(PyExc_RuntimeError, "the flow driver is not awaited by its task");
        return NULL;
    }
    Py_XSETREF(self->proxied, Py_NewRef(Py_None));
    int entered = enter_flow_task(self);
    if (entered < 0) {
        return NULL;
    }
    if (entered == 0) {
        /* Called from inside some task: resume on the next turn. */
        PyObject *resume = PyObject_GetAttr((PyObject *)self, str_resume);
        if (resume == NULL) {
            return NULL;
        }
        PyObject *handle = PyObject_CallMethodOneArg(self->loop, str_call_soon, resume);
        Py_DECREF(resume);
        if (handle == NULL) {
            return NULL;
        }
        Py_DECREF(handle);
        Py_RETURN_NONE;
    }
    PyObject *context = Py_NewRef(self->context);
    PyObject *coro = Py_NewRef(self->coro);
    if (PyContext_Enter(context) < 0) {
        Py_DECREF(context);
        Py_DECREF(coro);
        return NULL;
    }
    status = PyIter_Send(coro, Py_None, &yielded);
    Py_DECREF(coro);
    PyErr_Fetch(&type, &value, &traceback); /* the flow's exception, if it raised */
    int exited = PyContext_Exit(context);
    Py_DECREF(context);
    if (exited < 0 || leave_flow_task(self) < 0) {
        Py_XDECREF(type);
        Py_XDECREF(value);
        Py_XDECREF(traceback);
        Py_XDECREF(yielded);
        return NULL;
    }
    if (status == PYGEN_NEXT) {
        PyObject *waiter = self->waiter;
        if (yielded == waiter && WaiterCore_Check(waiter) && ((WaiterCore *)waiter)->state == 0) {
            /* The next command: nearly always. Its reply resumes the flow here again. */
            ((WaiterCore *)waiter)->blocking = 0;
            Py_XSETREF(((WaiterCore *)waiter)->driver, Py_NewRef(self));
            Py_DECREF(yielded);
            Py_RETURN_NONE;
        }
        PyObject *result = PyObject_CallMethodOneArg((PyObject *)self, str_yielded, yielded);
        Py_DECREF(yielded);
        return result;
    }
    if (status == PYGEN_RETURN) {
        /* The flow ended: its outcome is a StopIteration, as the Python core sees it. */
        ended = PyObject_CallOneArg(PyExc_StopIteration, yielded);
        Py_DECREF(yielded);
        if (ended == NULL) {
            return NULL;
        }
    }
    else {
        PyErr_NormalizeException(&type, &value, &traceback);
        if (value == NULL) {
            PyErr_SetString(PyExc_SystemError, "the flow failed without an exception");
            return NULL;
        }
        if (traceback != NULL) {
            PyException_SetTraceback(value, traceback);
        }
        Py_XDECREF(type);
        Py_XDECREF(traceback);
        ended = value;
    }
    if (driver_ended(self, ended) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
driver_resume(DriverCore *self, PyObject *const *args, Py_ssize_t nargs)
{
    /* resume(_done=None): also a done callback, given the future that completed. */
    if (nargs > 1) {
        PyErr_SetString(PyExc_TypeError, "resume() takes at most one argument");
        return NULL;
    }
    return driver_resume_impl(self);
}

static PyMethodDef driver_methods[] = {
    {"resume", (PyCFunction)(void (*)(void))driver_resume, METH_FASTCALL,
     "Send into the flow (its reply, or what else it awaited, is ready)."},
    {"add_done_callback", (PyCFunction)(void (*)(void))driver_add_done_callback,
     METH_FASTCALL | METH_KEYWORDS, "The task waiting on the driver: wake it at the flow's end."},
    {"result", (PyCFunction)driver_result, METH_NOARGS, "None once done; raises if cancelled."},
    {"get_loop", (PyCFunction)driver_get_loop, METH_NOARGS, "The driver's event loop."},
    {"_complete", (PyCFunction)driver_complete, METH_O, "Done (1) or cancelled (2): wake the task."},
    {"_ended", (PyCFunction)driver_ended_method, METH_O,
     "The flow ended (a StopIteration) or raised, while driven here."},
    {"send", (PyCFunction)driver_send, METH_O, "One step of the await."},
    {"throw", (PyCFunction)(void (*)(void))driver_throw, METH_FASTCALL,
     "Throw into the flow, where it waits."},
    {"close", (PyCFunction)driver_close, METH_NOARGS, "Close the await, and the flow."},
    {NULL},
};

static PyMemberDef driver_members[] = {
    {"_coro", T_OBJECT, offsetof(DriverCore, coro), 0, NULL},
    {"_waiter", T_OBJECT, offsetof(DriverCore, waiter), 0, NULL},
    {"_loop", T_OBJECT, offsetof(DriverCore, loop), 0, NULL},
    {"_task", T_OBJECT, offsetof(DriverCore, task), 0, NULL},
    {"_context", T_OBJECT, offsetof(DriverCore, context), 0, NULL},
    {"_proxied", T_OBJECT, offsetof(DriverCore, proxied), 0, NULL},
    {"_callback", T_OBJECT, offsetof(DriverCore, callback), 0, NULL},
    {"_outcome", T_OBJECT, offsetof(DriverCore, outcome), 0, NULL},
    {"_throw", T_OBJECT, offsetof(DriverCore, throw_), 0, NULL},
    {"_state", T_INT, offsetof(DriverCore, state), 0, NULL},
    {"_asyncio_future_blocking", T_BOOL, offsetof(DriverCore, blocking), 0, NULL},
    {NULL},
};

static PyTypeObject DriverCore_Type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "agi._speedups.DriverCore",
    .tp_basicsize = sizeof(DriverCore),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "The flow driver: its fields, its await, its future protocol and its resume "
              "(agi/cores.py DriverCore).",
    .tp_traverse = (traverseproc)driver_traverse,
    .tp_clear = (inquiry)driver_clear,
    .tp_dealloc = (destructor)driver_dealloc,
    .tp_as_async = &driver_async,
    .tp_iter = PyObject_SelfIter,
    .tp_iternext = (iternextfunc)driver_iternext,
    .tp_methods = driver_methods,
    .tp_members = driver_members,
    .tp_init = (initproc)driver_init,
    .tp_new = PyType_GenericNew,
};

/* ---------------------------------------------------------------------------------------- */
/* CommandTimes */

#define MAX_BOUNDS 32

typedef struct {
    PyObject_HEAD
    Py_ssize_t nbounds;
    double bounds[MAX_BOUNDS];
    long long counts[MAX_BOUNDS + 1]; /* the last: above every bound */
    double sum;
} CommandTimes;

static PyTypeObject CommandTimes_Type;
#define CommandTimes_Check(o) PyObject_TypeCheck(o, &CommandTimes_Type)

static int
times_init(CommandTimes *self, PyObject *args, PyObject *kwargs)
{
    PyObject *bounds;
    if (!PyArg_ParseTuple(args, "O:CommandTimes", &bounds)) {
        return -1;
    }
    PyObject *seq = PySequence_Fast(bounds, "CommandTimes takes a sequence of bounds");
    if (seq == NULL) {
        return -1;
    }
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    if (n > MAX_BOUNDS) {
        Py_DECREF(seq);
        PyErr_Format(PyExc_ValueError, "at most %d bounds", MAX_BOUNDS);
        return -1;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        double bound = PyFloat_AsDouble(PySequence_Fast_GET_ITEM(seq, i));
        if (bound == -1.0 && PyErr_Occurred()) {
            Py_DECREF(seq);
            return -1;
        }
        if (i > 0 && !(bound > self->bounds[i - 1])) {
            Py_DECREF(seq);
            PyErr_SetString(PyExc_ValueError, "the bounds must be increasing");
            return -1;
        }
        self->bounds[i] = bound;
    }
    Py_DECREF(seq);
    self->nbounds = n;
    memset(self->counts, 0, sizeof(self->counts));
    self->sum = 0.0;
    return 0;
}

static void
times_add_one(CommandTimes *self, double seconds)
{
    /* Into the first bucket whose bound is >= it, as Prometheus' `le` (bisect_left). */
    Py_ssize_t i = 0;
    while (i < self->nbounds && self->bounds[i] < seconds) {
        i++;
    }
    self->counts[i]++;
    self->sum += seconds;
}

static PyObject *
times_add(CommandTimes *self, PyObject *arg)
{
    double seconds = PyFloat_AsDouble(arg);
    if (seconds == -1.0 && PyErr_Occurred()) {
        return NULL;
    }
    times_add_one(self, seconds);
    Py_RETURN_NONE;
}

static PyObject *
times_take(CommandTimes *self, PyObject *unused)
{
    PyObject *counts = PyList_New(self->nbounds + 1);
    if (counts == NULL) {
        return NULL;
    }
    for (Py_ssize_t i = 0; i <= self->nbounds; i++) {
        PyObject *count = PyLong_FromLongLong(self->counts[i]);
        if (count == NULL) {
            Py_DECREF(counts);
            return NULL;
        }
        PyList_SET_ITEM(counts, i, count);
    }
    PyObject *result = Py_BuildValue("(Nd)", counts, self->sum);
    if (result != NULL) {
        memset(self->counts, 0, sizeof(self->counts));
        self->sum = 0.0;
    }
    return result;
}

static PyObject *
times_get_bounds(CommandTimes *self, void *closure)
{
    PyObject *bounds = PyTuple_New(self->nbounds);
    if (bounds == NULL) {
        return NULL;
    }
    for (Py_ssize_t i = 0; i < self->nbounds; i++) {
        PyObject *bound = PyFloat_FromDouble(self->bounds[i]);
        if (bound == NULL) {
            Py_DECREF(bounds);
            return NULL;
        }
        PyTuple_SET_ITEM(bounds, i, bound);
    }
    return bounds;
}

static PyMethodDef times_methods[] = {
    {"add", (PyCFunction)times_add, METH_O, "Count one round trip, in seconds."},
    {"take", (PyCFunction)times_take, METH_NOARGS,
     "The counts per bucket and the sum since the last take, and start again from zero."},
    {NULL},
};

static PyGetSetDef times_getset[] = {
    {"bounds", (getter)times_get_bounds, NULL, "The buckets' upper bounds.", NULL},
    {NULL},
};

static PyTypeObject CommandTimes_Type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "agi._speedups.CommandTimes",
    .tp_basicsize = sizeof(CommandTimes),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Commands' round trips counted into histogram buckets (agi/cores.py).",
    .tp_init = (initproc)times_init,
    .tp_methods = times_methods,
    .tp_getset = times_getset,
    .tp_new = PyType_GenericNew,
};

/* ---------------------------------------------------------------------------------------- */
/* ProtocolCore */

typedef struct {
    PyObject_HEAD
    PyObject *pending, *waiter, *conn, *write, *read_buffer, *times;
    double sent_at, deadline, reply_timeout;
    char hung_up, closed;
} ProtocolCore;

static int
protocol_traverse(ProtocolCore *self, visitproc visit, void *arg)
{
    Py_VISIT(self->pending);
    Py_VISIT(self->waiter);
    Py_VISIT(self->conn);
    Py_VISIT(self->write);
    Py_VISIT(self->read_buffer);
    Py_VISIT(self->times);
    return 0;
}

static int
protocol_clear(ProtocolCore *self)
{
    Py_CLEAR(self->pending);
    Py_CLEAR(self->waiter);
    Py_CLEAR(self->conn);
    Py_CLEAR(self->write);
    Py_CLEAR(self->read_buffer);
    Py_CLEAR(self->times);
    return 0;
}

static void
protocol_dealloc(ProtocolCore *self)
{
    PyObject_GC_UnTrack(self);
    protocol_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *
protocol_get_buffer(ProtocolCore *self, PyObject *sizehint)
{
    if (self->read_buffer == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "the connection has no read buffer");
        return NULL;
    }
    return Py_NewRef(self->read_buffer);
}

/* Count one round trip into the connection's CommandTimes (the C type, or its Python twin). */
static int
times_count(PyObject *times, double seconds)
{
    if (times != NULL && CommandTimes_Check(times)) {
        times_add_one((CommandTimes *)times, seconds);
        return 0;
    }
    if (times == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "the connection has no CommandTimes");
        return -1;
    }
    PyObject *took = PyFloat_FromDouble(seconds);
    if (took == NULL) {
        return -1;
    }
    PyObject *done = PyObject_CallMethod(times, "add", "O", took);
    Py_DECREF(took);
    Py_XDECREF(done);
    return done == NULL ? -1 : 0;
}

/* conn.between_replies (agi.protocol.AgiConnection), read through the slot's member
 * descriptor, found once per connection class: the generic attribute lookup cost about 380
 * instructions per command (callgrind), the descriptor's get a tenth of that. */
static PyTypeObject *connection_type;
static PyObject *between_descriptor;

static PyObject *
connection_between_replies(PyObject *conn)
{
    PyTypeObject *type = Py_TYPE(conn);
    if (type != connection_type) {
        PyObject *descriptor = _PyType_Lookup(type, str_between_replies); /* borrowed */
        if (descriptor == NULL || Py_TYPE(descriptor) != &PyMemberDescr_Type) {
            return PyObject_GetAttr(conn, str_between_replies); /* not a slot: the long way */
        }
        Py_XSETREF(between_descriptor, Py_NewRef(descriptor));
        Py_XSETREF(connection_type, (PyTypeObject *)Py_NewRef((PyObject *)type));
    }
    return Py_TYPE(between_descriptor)->tp_descr_get(between_descriptor, conn, (PyObject *)type);
}

/* The last read found in agi.protocol's table of plain replies, and its reply: shared by all
 * connections, since the table is (a read is compared whole, byte for byte). */
static PyObject *last_read, *last_reply;

/* The read of nearly every command: exactly one plain reply, which resumes the flow here. */
static PyObject *
protocol_buffer_updated(ProtocolCore *self, PyObject *arg)
{
    Py_ssize_t nbytes = PyLong_AsSsize_t(arg);
    if (nbytes == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if (self->read_buffer == NULL || !PyMemoryView_Check(self->read_buffer)) {
        PyErr_SetString(PyExc_TypeError, "the read buffer must be a memoryview");
        return NULL;
    }
    Py_buffer *view = PyMemoryView_GET_BUFFER(self->read_buffer);
    if (nbytes < 0 || nbytes > view->len) {
        PyErr_Format(PyExc_ValueError, "%zd bytes read into a %zd-byte buffer", nbytes,
                     view->len);
        return NULL;
    }
    const char *read = (const char *)view->buf;
    PyObject *data = NULL; /* the read, copied out of the shared buffer when needed */
    PyObject *pending = self->pending;
    if (IS_SET(pending) && WaiterCore_Check(pending) && IS_SET(self->conn)) {
        PyObject *between = connection_between_replies(self->conn);
        if (between == NULL) {
            return NULL;
        }
        int plain = between == Py_True;
        Py_DECREF(between);
        PyObject *reply = NULL;
        if (plain && last_read != NULL && PyBytes_GET_SIZE(last_read) == nbytes
            && memcmp(PyBytes_AS_STRING(last_read), read, nbytes) == 0) {
            /* The same bytes as the last table reply read (most commands answer `200
             * result=0`): that same reply, with no copy of the read and no hash of it. */
            reply = last_reply;
        }
        else if (plain) {
            data = PyBytes_FromStringAndSize(read, nbytes);
            if (data == NULL) {
                return NULL;
            }
            reply = PyDict_GetItemWithError(simple_replies, data);
            if (reply == NULL && PyErr_Occurred()) {
                Py_DECREF(data);
                return NULL;
            }
            if (reply != NULL) {
                Py_XSETREF(last_read, Py_NewRef(data));
                Py_XSETREF(last_reply, Py_NewRef(reply));
            }
        }
        if (reply != NULL) {
            /* Every reply of the table is `200 result=N` (asserted by agi/cores.py). */
            Py_XDECREF(data);
            Py_INCREF(reply);
            WaiterCore *waiter = (WaiterCore *)Py_NewRef(pending);
            Py_SETREF(self->pending, Py_NewRef(Py_None));
            if (times_count(self->times, monotonic() - self->sent_at) < 0) {
                Py_DECREF(reply);
                Py_DECREF(waiter);
                return NULL;
            }
            PyObject *driver = waiter->driver;
            PyObject *result;
            if (IS_SET(driver) && DriverCore_Check(driver) && !self->hung_up
                && waiter->state == 0) {
                /* ReplyWaiter.set_result for a 200 reply that the flow's driver awaits. */
                Py_XSETREF(waiter->result, reply);
                waiter->state = 1;
                waiter->driver = Py_NewRef(Py_None); /* the reference moves to `driver` */
                result = driver_resume_impl((DriverCore *)driver);
                Py_DECREF(driver);
            }
            else {
                PyObject *hung_up = self->hung_up ? Py_True : Py_False;
                result = PyObject_CallMethodObjArgs((PyObject *)waiter, str_set_result, reply,
                                                    hung_up, NULL);
                Py_DECREF(reply);
            }
            Py_DECREF(waiter);
            return result;
        }
    }
    if (data == NULL) {
        /* Copied out before any other connection reads into the shared buffer. */
        data = PyBytes_FromStringAndSize(read, nbytes);
        if (data == NULL) {
            return NULL;
        }
    }
    PyObject *result = PyObject_CallMethodOneArg((PyObject *)self, str_data_received, data);
    Py_DECREF(data);
    return result;
}

static PyObject *
protocol_send(ProtocolCore *self, PyObject *const *args, Py_ssize_t nargs)
{
    /* send(data, convert=None): write one command, return the awaitable of its reply. */
    if (nargs < 1 || nargs > 2) {
        PyErr_SetString(PyExc_TypeError, "send() takes the line and an optional convert");
        return NULL;
    }
    PyObject *line = args[0];
    PyObject *convert = nargs == 2 ? args[1] : Py_None;
    if (self->closed || !IS_SET(self->write)) {
        PyErr_SetString(caller_hangup, "the connection is closed");
        return NULL;
    }
    if (IS_SET(self->pending)) {
        if (WaiterCore_Check(self->pending) && ((WaiterCore *)self->pending)->state == 2) {
            /* A command was given up before its reply: the next reply would be the wrong
             * one, so the session cannot go on. */
            PyErr_SetString(reply_timeout, "a command was abandoned before its reply");
            return NULL;
        }
        /* A second command would make the running one answer nothing at all
         * (docs/asterisk-protocol.md#agi-command-lines). */
        PyErr_SetString(PyExc_RuntimeError, "AGI commands must not be pipelined");
        return NULL;
    }
    if (!IS_SET(self->waiter) || !WaiterCore_Check(self->waiter)) {
        PyErr_SetString(PyExc_RuntimeError, "the connection has no reply waiter");
        return NULL;
    }
    WaiterCore *waiter = (WaiterCore *)self->waiter;
    Py_XSETREF(waiter->line, Py_NewRef(line));
    Py_XSETREF(waiter->convert, Py_NewRef(convert));
    waiter->state = 0;
    Py_XSETREF(waiter->result, Py_NewRef(Py_None));
    Py_XSETREF(waiter->exception, Py_NewRef(Py_None));
    waiter->blocking = 0;
    Py_XSETREF(self->pending, Py_NewRef((PyObject *)waiter));
    /* One clock read gives both the reply deadline and the start of the round trip. */
    double now = monotonic();
    self->sent_at = now;
    self->deadline = now + self->reply_timeout;
    PyObject *written = PyObject_CallOneArg(self->write, line);
    if (written == NULL) {
        return NULL;
    }
    Py_DECREF(written);
    return Py_NewRef((PyObject *)waiter);
}

/* The cached line of a command whose arguments are exact strings and integers, at least one
 * an integer (`GET DATA prompt 5000 10`): encode_command keeps those under the key
 * (command, *args, *their types), since 1, True and 1.0 are equal keys that encode
 * differently. Built here only for exact str and int, so a bool or a float never meets an
 * int's line: those go to encode_command. Borrowed, or NULL (an error set or not). */
static PyObject *
typed_line(PyObject *const *words, Py_ssize_t nwords)
{
    Py_ssize_t nargs = nwords - 1, ints = 0;
    for (Py_ssize_t i = 1; i < nwords; i++) {
        if (PyLong_CheckExact(words[i])) {
            ints++;
        }
        else if (!PyUnicode_CheckExact(words[i])) {
            return NULL;
        }
    }
    if (ints == 0) {
        return NULL; /* all strings: the plain key was the one */
    }
    PyObject *key = PyTuple_New(1 + 2 * nargs);
    if (key == NULL) {
        return NULL;
    }
    PyTuple_SET_ITEM(key, 0, Py_NewRef(words[0]));
    for (Py_ssize_t i = 0; i < nargs; i++) {
        PyTuple_SET_ITEM(key, 1 + i, Py_NewRef(words[1 + i]));
        PyTuple_SET_ITEM(key, 1 + nargs + i, Py_NewRef((PyObject *)Py_TYPE(words[1 + i])));
    }
    PyObject *line = PyDict_GetItemWithError(encoded_lines, key);
    Py_DECREF(key);
    return line;
}

/* command(convert, name, *args): encode (agi.protocol's cache of lines already encoded, else
 * encode_command itself, the one encoder) and send. */
static PyObject *
protocol_command(ProtocolCore *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs < 2) {
        PyErr_SetString(PyExc_TypeError, "command() takes convert, the command and its args");
        return NULL;
    }
    if (self->hung_up) {
        PyErr_SetString(caller_hangup, "the caller has hung up");
        return NULL;
    }
    PyObject *arguments = PyTuple_New(nargs - 2);
    if (arguments == NULL) {
        return NULL;
    }
    for (Py_ssize_t i = 2; i < nargs; i++) {
        PyTuple_SET_ITEM(arguments, i - 2, Py_NewRef(args[i]));
    }
    /* The key of a line whose arguments are all strings (encode_command explains it). */
    PyObject *key = PyTuple_Pack(2, args[1], arguments);
    Py_DECREF(arguments);
    if (key == NULL) {
        return NULL;
    }
    PyObject *line = PyDict_GetItemWithError(encoded_lines, key);
    Py_DECREF(key);
    if (line == NULL && !PyErr_Occurred()) {
        line = typed_line(args + 1, nargs - 1);
    }
    if (line != NULL) {
        Py_INCREF(line);
    }
    else {
        if (PyErr_Occurred()) {
            if (!PyErr_ExceptionMatches(PyExc_TypeError)) {
                return NULL;
            }
            PyErr_Clear(); /* an unhashable argument: encode_command refuses it */
        }
        line = PyObject_Vectorcall(encode_command, args + 1, nargs - 1, NULL);
        if (line == NULL) {
            return NULL;
        }
    }
    PyObject *send_args[2] = {line, args[0]};
    PyObject *result = protocol_send(self, send_args, 2);
    Py_DECREF(line);
    return result;
}

static PyMethodDef protocol_methods[] = {
    {"command", (PyCFunction)(void (*)(void))protocol_command, METH_FASTCALL,
     "Encode one command and send it: command(convert, name, *args)."},
    {"get_buffer", (PyCFunction)protocol_get_buffer, METH_O, "The shared read buffer."},
    {"buffer_updated", (PyCFunction)protocol_buffer_updated, METH_O,
     "`nbytes` were read into the buffer."},
    {"send", (PyCFunction)(void (*)(void))protocol_send, METH_FASTCALL,
     "Write one command and return the awaitable of its reply."},
    {NULL},
};

static PyMemberDef protocol_members[] = {
    {"_pending", T_OBJECT, offsetof(ProtocolCore, pending), 0, NULL},
    {"waiter", T_OBJECT, offsetof(ProtocolCore, waiter), 0, NULL},
    {"_conn", T_OBJECT, offsetof(ProtocolCore, conn), 0, NULL},
    {"_write", T_OBJECT, offsetof(ProtocolCore, write), 0, NULL},
    {"_read_buffer", T_OBJECT, offsetof(ProtocolCore, read_buffer), 0, NULL},
    {"_times", T_OBJECT, offsetof(ProtocolCore, times), 0, NULL},
    {"sent_at", T_DOUBLE, offsetof(ProtocolCore, sent_at), 0, NULL},
    {"deadline", T_DOUBLE, offsetof(ProtocolCore, deadline), 0, NULL},
    {"_reply_timeout", T_DOUBLE, offsetof(ProtocolCore, reply_timeout), 0, NULL},
    {"hung_up", T_BOOL, offsetof(ProtocolCore, hung_up), 0, NULL},
    {"_closed", T_BOOL, offsetof(ProtocolCore, closed), 0, NULL},
    {NULL},
};

static PyTypeObject ProtocolCore_Type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "agi._speedups.ProtocolCore",
    .tp_basicsize = sizeof(ProtocolCore),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "The connection's fields and its reply path (agi/cores.py ProtocolCore).",
    .tp_traverse = (traverseproc)protocol_traverse,
    .tp_clear = (inquiry)protocol_clear,
    .tp_dealloc = (destructor)protocol_dealloc,
    .tp_methods = protocol_methods,
    .tp_members = protocol_members,
    .tp_new = PyType_GenericNew,
};

/* ---------------------------------------------------------------------------------------- */
/* The module */

static PyObject *
import_name(const char *module, const char *name)
{
    PyObject *mod = PyImport_ImportModule(module);
    if (mod == NULL) {
        return NULL;
    }
    PyObject *value = PyObject_GetAttrString(mod, name);
    Py_DECREF(mod);
    return value;
}

static int
intern(PyObject **slot, const char *text)
{
    *slot = PyUnicode_InternFromString(text);
    return *slot == NULL ? -1 : 0;
}

/* adopt_waiter(cls), adopt_driver(cls): give a Python subclass of WaiterCore or DriverCore the
 * core's `am_send`.
 *
 * A class made by a `class` statement gets its own async slots, copied from its base's, but
 * CPython 3.11 does not copy `am_send` (typeobject.c inherit_slots copies am_await, am_aiter
 * and am_anext): without it, every await of the subclass's instances resumes through
 * `tp_iternext`, which returns the result inside a StopIteration made for the purpose. */
static PyObject *
adopt(PyObject *cls, PyTypeObject *core, unaryfunc await, sendfunc send, const char *refusal)
{
    if (!PyType_Check(cls) || !PyType_IsSubtype((PyTypeObject *)cls, core)
        || !(((PyTypeObject *)cls)->tp_flags & Py_TPFLAGS_HEAPTYPE)) {
        PyErr_SetString(PyExc_TypeError, refusal);
        return NULL;
    }
    PyTypeObject *type = (PyTypeObject *)cls;
    if (type->tp_as_async == NULL || type->tp_as_async->am_await != await) {
        PyErr_SetString(PyExc_TypeError, "the subclass replaces the core's await");
        return NULL;
    }
    type->tp_as_async->am_send = send;
    PyType_Modified(type);
    Py_RETURN_NONE;
}

static PyObject *
adopt_waiter(PyObject *module, PyObject *cls)
{
    return adopt(cls, &WaiterCore_Type, waiter_await, (sendfunc)waiter_am_send,
                 "adopt_waiter() takes a Python subclass of WaiterCore");
}

static PyObject *
adopt_driver(PyObject *module, PyObject *cls)
{
    return adopt(cls, &DriverCore_Type, driver_await, (sendfunc)driver_am_send,
                 "adopt_driver() takes a Python subclass of DriverCore");
}

static PyMethodDef speedups_functions[] = {
    {"adopt_waiter", adopt_waiter, METH_O,
     "Give a Python subclass of WaiterCore the core's am_send (not inherited in 3.11)."},
    {"adopt_driver", adopt_driver, METH_O,
     "Give a Python subclass of DriverCore the core's am_send (not inherited in 3.11)."},
    {NULL},
};

static struct PyModuleDef speedups_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "agi._speedups",
    .m_doc = "The FastAGI command path in C (agi/cores.py holds its pure-Python twin).",
    .m_size = -1,
    .m_methods = speedups_functions,
};

PyMODINIT_FUNC
PyInit__speedups(void)
{
    if (PyType_Ready(&WaiterCore_Type) < 0 || PyType_Ready(&DriverCore_Type) < 0
        || PyType_Ready(&ProtocolCore_Type) < 0 || PyType_Ready(&CommandTimes_Type) < 0) {
        return NULL;
    }
    if (intern(&str_between_replies, "between_replies") < 0
        || intern(&str_data_received, "data_received") < 0
        || intern(&str_set_result, "set_result") < 0 || intern(&str_result, "result") < 0
        || intern(&str_yielded, "_yielded") < 0 || intern(&str_resume, "resume") < 0
        || intern(&str_call_soon, "call_soon") < 0 || intern(&str_throw, "throw") < 0
        || intern(&str_close, "close") < 0 || intern(&str_context, "context") < 0) {
        return NULL;
    }
    kwnames_context = PyTuple_Pack(1, str_context);
    if (kwnames_context == NULL) {
        return NULL;
    }
    simple_replies = import_name("agi.protocol", "_SIMPLE_REPLIES");
    encoded_lines = import_name("agi.protocol", "_ENCODED");
    encode_command = import_name("agi.protocol", "encode_command");
    enter_task = import_name("asyncio.tasks", "_enter_task");
    leave_task = import_name("asyncio.tasks", "_leave_task");
    caller_hangup = import_name("agi.session", "CallerHangup");
    reply_timeout = import_name("agi.session", "ReplyTimeout");
    gives_nothing = import_name("agi.session", "_nothing");
    current_task = import_name("asyncio", "current_task");
#if PY_VERSION_HEX < 0x030E0000
    /* The dict asyncio's C _enter_task and _leave_task keep, when they are the ones asyncio
     * uses (see enter_flow_task); else they are called. */
    PyObject *tasks = import_name("asyncio.tasks", "_current_tasks");
    PyObject *c_enter = import_name("_asyncio", "_enter_task");
    PyObject *c_leave = import_name("_asyncio", "_leave_task");
    if (tasks != NULL && PyDict_CheckExact(tasks) && c_enter == enter_task
        && c_leave == leave_task) {
        current_tasks = Py_NewRef(tasks);
    }
    Py_XDECREF(tasks);
    Py_XDECREF(c_enter);
    Py_XDECREF(c_leave);
    PyErr_Clear();
#endif
    cancelled_error = import_name("asyncio", "CancelledError");
    invalid_state_error = import_name("asyncio", "InvalidStateError");
    if (simple_replies == NULL || encoded_lines == NULL || encode_command == NULL
        || enter_task == NULL || leave_task == NULL
        || caller_hangup == NULL || reply_timeout == NULL || gives_nothing == NULL
        || current_task == NULL || cancelled_error == NULL || invalid_state_error == NULL) {
        return NULL;
    }
    if (!PyDict_CheckExact(simple_replies) || !PyDict_CheckExact(encoded_lines)) {
        PyErr_SetString(PyExc_TypeError, "agi.protocol's tables must be dicts");
        return NULL;
    }
    PyObject *module = PyModule_Create(&speedups_module);
    if (module == NULL) {
        return NULL;
    }
    if (PyModule_AddObjectRef(module, "WaiterCore", (PyObject *)&WaiterCore_Type) < 0
        || PyModule_AddObjectRef(module, "DriverCore", (PyObject *)&DriverCore_Type) < 0
        || PyModule_AddObjectRef(module, "ProtocolCore", (PyObject *)&ProtocolCore_Type) < 0
        || PyModule_AddObjectRef(module, "CommandTimes", (PyObject *)&CommandTimes_Type) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    return module;
}

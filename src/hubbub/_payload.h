/* hubbub._speedups.Payload: a bytes object filled in place, then handed over.
 *
 * Included by _speedups.c (one translation unit: it uses xor_mask and get_key).
 *
 * Why: the payload of a large frame is read from the socket in pieces. Joining
 * the pieces (and unmasking them, RFC 6455 section 5.3) costs a pass over the
 * message, and the event loop has already copied each piece once from its own
 * read buffer into a bytes object. A Payload is the message's final bytes
 * object, allocated at its full size before anything is read: the adapter reads
 * the socket straight into it (BufferedProtocol, socket.recv_into), the key is
 * applied in place, and finish() returns the bytes. No copy is left between
 * the kernel and the message the application receives.
 *
 * Safety: a bytes object is immutable once anyone else holds it. Until
 * finish(), nobody but the Payload does; after it, new buffer requests fail,
 * and the bytes stay referenced by the Payload until it dies, so a view taken
 * before finish() never points at freed memory. Callers (the protocol core)
 * promise to have written every byte before finish() and not to write through
 * old views afterwards.
 */

typedef struct {
    PyObject_HEAD
    PyObject *data;      /* the bytes being filled */
    int finished;
} PayloadObject;

static PyObject *
Payload_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"size", NULL};
    Py_ssize_t size;
    PayloadObject *self;

    if (!PyArg_ParseTupleAndKeywords(args, kwds, "n:Payload", kwlist, &size))
        return NULL;
    if (size < 0) {
        PyErr_SetString(PyExc_ValueError, "size must be >= 0");
        return NULL;
    }
    self = (PayloadObject *)type->tp_alloc(type, 0);
    if (self == NULL)
        return NULL;
    self->data = PyBytes_FromStringAndSize(NULL, size);
    if (self->data == NULL) {
        Py_DECREF(self);
        return NULL;
    }
    return (PyObject *)self;
}

static void
Payload_dealloc(PayloadObject *self)
{
    Py_XDECREF(self->data);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int
Payload_getbuffer(PayloadObject *self, Py_buffer *view, int flags)
{
    if (self->finished) {
        PyErr_SetString(PyExc_BufferError, "the payload was finished: it is read-only bytes now");
        view->obj = NULL;
        return -1;
    }
    return PyBuffer_FillInfo(view, (PyObject *)self, PyBytes_AS_STRING(self->data),
                             PyBytes_GET_SIZE(self->data), 0, flags);
}

static PyBufferProcs Payload_as_buffer = {
    (getbufferproc)Payload_getbuffer,
    NULL,
};

PyDoc_STRVAR(Payload_view_doc,
"view() -> memoryview\n\n"
"A writable view of the whole payload, to read into.");

static PyObject *
Payload_view(PayloadObject *self, PyObject *unused)
{
    return PyMemoryView_FromObject((PyObject *)self);
}

PyDoc_STRVAR(Payload_finish_doc,
"finish(mask=None) -> bytes\n\n"
"The payload as bytes, XORed in place with the 4-byte mask first if one is\n"
"given (RFC 6455 section 5.3). Every byte must have been written. Once only.");

static PyObject *
Payload_finish(PayloadObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    unsigned char key[4];

    if (nargs > 1) {
        PyErr_SetString(PyExc_TypeError, "finish() takes at most one argument");
        return NULL;
    }
    if (self->finished) {
        PyErr_SetString(PyExc_RuntimeError, "the payload was finished already");
        return NULL;
    }
    if (nargs == 1 && args[0] != Py_None) {
        if (get_key(args[0], 0, key) < 0)
            return NULL;
        xor_mask((unsigned char *)PyBytes_AS_STRING(self->data),
                 (const unsigned char *)PyBytes_AS_STRING(self->data),
                 PyBytes_GET_SIZE(self->data), key);
    }
    self->finished = 1;
    Py_INCREF(self->data);
    return self->data;
}

static Py_ssize_t
Payload_len(PayloadObject *self)
{
    return PyBytes_GET_SIZE(self->data);
}

static PySequenceMethods Payload_as_sequence = {
    (lenfunc)Payload_len,
};

static PyMethodDef Payload_methods[] = {
    {"view", (PyCFunction)Payload_view, METH_NOARGS, Payload_view_doc},
    {"finish", (PyCFunction)(void (*)(void))Payload_finish, METH_FASTCALL, Payload_finish_doc},
    {NULL, NULL, 0, NULL},
};

PyDoc_STRVAR(Payload_doc,
"Payload(size)\n\n"
"A message's bytes object, written in place (view()) then handed over (finish()).");

static PyTypeObject PayloadType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "hubbub._speedups.Payload",
    .tp_basicsize = sizeof(PayloadObject),
    .tp_dealloc = (destructor)Payload_dealloc,
    .tp_as_sequence = &Payload_as_sequence,
    .tp_as_buffer = &Payload_as_buffer,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = Payload_doc,
    .tp_methods = Payload_methods,
    .tp_new = Payload_new,
};

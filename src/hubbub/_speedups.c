/*
 * hubbub._speedups: the compiled accelerator for the WebSocket hot path.
 *
 * Theory of operation
 * -------------------
 * The building blocks, each with a pure-Python twin in hubbub/speedups.py
 * that behaves identically (tests/test_speedups.py checks them against each
 * other on random input):
 *
 *   apply_mask(data, mask, offset=0) -> bytes
 *       RFC 6455 section 5.3 masking. The 4-byte key is widened to a 64-bit
 *       word (rotated by `offset`, the position of data[0] in the payload) and
 *       XORed 8 bytes at a time through memcpy (no alignment assumptions);
 *       on x86-64, 16 bytes at a time with SSE2 (always present) and 32 with
 *       AVX2 when the CPU reports it at run time.
 *
 *   parse_messages(buf, pos, masked, max_size, events) -> int
 *       The small-message fast path. Starting at `pos`, takes every complete
 *       frame that is a whole message by itself (FIN set, RSV bits clear,
 *       opcode text or binary, masking as expected, payload <= max_size; text
 *       valid UTF-8), appends the message (str or bytes, unmasked) to the list
 *       `events` and returns the position after the last frame taken. It stops
 *       at the first frame it does not take (incomplete, control, fragmented,
 *       invalid ...) and leaves it to the general Python parser, which knows
 *       the state machine and reports errors. The caller only uses it when no
 *       fragmented message is in progress and no extension is negotiated, so
 *       that every frame it takes is handled exactly as the general parser
 *       would. One call per read replaces several Python calls per frame.
 *
 *   message_frame(message) -> bytes
 *       A whole unmasked frame carrying a str (text) or bytes-like (binary)
 *       message, header and payload in one allocation: what a server sends
 *       (section 5.1: it does not mask) when no extension transforms frames,
 *       and the frame a broadcast writes to every such connection.
 *
 *   write_chunks(chunks, writer, last=None) -> None
 *       The one drain of a connection's outgoing chunks (the core's
 *       `outgoing` list), `last` (frames shared by a broadcast) after them if
 *       given: nothing if there is nothing, writer.write(chunk) for one chunk
 *       (an asyncio transport then joins nothing), writer.writelines(chunks)
 *       for more, then the list is emptied. Every adapter path that writes
 *       what the core queued calls it, with no Python frame in between.
 *
 *   broadcast_frames(connections, frames, limit) -> (sent, refused)
 *       The per-connection loop of a broadcast: conn.send_frames_nowait(frames)
 *       (with limit=limit unless limit is None) for each connection, the
 *       public per-connection operation; returns how many took the frames and
 *       the list of those that refused, for the caller's slow path.
 *
 * The module keeps no state but the interned method names, and releases no
 * GIL: each call is short.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#if defined(__x86_64__) || defined(_M_X64)
#include <emmintrin.h>
#include <immintrin.h>
#define HUBBUB_X86 1
#endif

/* ------------------------------------------------------------------ masking */

static int have_avx2 = 0;

#if defined(HUBBUB_X86) && defined(__GNUC__)
__attribute__((target("avx2"))) static Py_ssize_t
xor_avx2(unsigned char *dst, const unsigned char *src, Py_ssize_t n, uint32_t key)
{
    __m256i k = _mm256_set1_epi32((int)key);
    Py_ssize_t i = 0;
    for (; i + 32 <= n; i += 32) {
        __m256i v = _mm256_loadu_si256((const __m256i *)(src + i));
        _mm256_storeu_si256((__m256i *)(dst + i), _mm256_xor_si256(v, k));
    }
    return i;
}
#endif

/* XOR n bytes of src into dst with the 4-byte key, key[0] applying to src[0].
 * dst may equal src (in place). */
static void
xor_mask(unsigned char *dst, const unsigned char *src, Py_ssize_t n, const unsigned char key[4])
{
    uint32_t k32;
    uint64_t k64;
    Py_ssize_t i = 0;

    /* The key as it sits in memory, so a word-wide XOR applies key[j] to byte j
     * whatever the endianness. */
    memcpy(&k32, key, 4);
    memcpy(&k64, key, 4);
    memcpy((unsigned char *)&k64 + 4, key, 4);

#if defined(HUBBUB_X86)
#if defined(__GNUC__)
    if (have_avx2 && n >= 64)
        i = xor_avx2(dst, src, n, k32);
#endif
    {
        __m128i k = _mm_set1_epi32((int)k32);
        for (; i + 16 <= n; i += 16) {
            __m128i v = _mm_loadu_si128((const __m128i *)(src + i));
            _mm_storeu_si128((__m128i *)(dst + i), _mm_xor_si128(v, k));
        }
    }
#endif
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, src + i, 8);
        w ^= k64;
        memcpy(dst + i, &w, 8);
    }
    /* i is a multiple of 4 here: the key lines up with key[0] again. */
    for (; i < n; i++)
        dst[i] = src[i] ^ key[i & 3];
}

static int
get_key(PyObject *mask, Py_ssize_t offset, unsigned char key[4])
{
    Py_buffer mb;
    int j;

    if (PyObject_GetBuffer(mask, &mb, PyBUF_SIMPLE) < 0)
        return -1;
    if (mb.len != 4) {
        PyBuffer_Release(&mb);
        PyErr_SetString(PyExc_ValueError, "mask must be 4 bytes long");
        return -1;
    }
    for (j = 0; j < 4; j++)
        key[j] = ((const unsigned char *)mb.buf)[(j + offset) & 3];
    PyBuffer_Release(&mb);
    return 0;
}

#include "_payload.h"

PyDoc_STRVAR(apply_mask_doc,
"apply_mask(data, mask, offset=0) -> bytes\n\n"
"XOR data with the 4-byte mask (RFC 6455 section 5.3); offset is the position\n"
"of data[0] in the payload.");

static PyObject *
apply_mask(PyObject *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"data", "mask", "offset", NULL};
    Py_buffer db;
    PyObject *mask, *result;
    Py_ssize_t offset = 0;
    unsigned char key[4];

    if (!PyArg_ParseTupleAndKeywords(args, kwds, "y*O|n:apply_mask", kwlist, &db, &mask, &offset))
        return NULL;
    if (offset < 0) {
        PyBuffer_Release(&db);
        PyErr_SetString(PyExc_ValueError, "offset must be >= 0");
        return NULL;
    }
    if (get_key(mask, offset, key) < 0) {
        PyBuffer_Release(&db);
        return NULL;
    }
    result = PyBytes_FromStringAndSize(NULL, db.len);
    if (result != NULL)
        xor_mask((unsigned char *)PyBytes_AS_STRING(result), db.buf, db.len, key);
    PyBuffer_Release(&db);
    return result;
}

PyDoc_STRVAR(mask_inplace_doc,
"mask_inplace(buf, start, end, mask, offset=0) -> None\n\n"
"XOR buf[start:end] of a writable buffer with the mask, in place.");

static PyObject *
mask_inplace(PyObject *self, PyObject *args)
{
    Py_buffer db;
    PyObject *mask;
    Py_ssize_t start, end, offset = 0;
    unsigned char key[4];

    if (!PyArg_ParseTuple(args, "w*nnO|n:mask_inplace", &db, &start, &end, &mask, &offset))
        return NULL;
    if (start < 0 || end > db.len || start > end || offset < 0) {
        PyBuffer_Release(&db);
        PyErr_SetString(PyExc_ValueError, "bad range");
        return NULL;
    }
    if (get_key(mask, offset, key) < 0) {
        PyBuffer_Release(&db);
        return NULL;
    }
    xor_mask((unsigned char *)db.buf + start, (unsigned char *)db.buf + start, end - start, key);
    PyBuffer_Release(&db);
    Py_RETURN_NONE;
}

PyDoc_STRVAR(unmask_join_doc,
"unmask_join(chunks, start, length, mask) -> bytes\n\n"
"Bytes start..start+length of the concatenation of chunks (bytes-like objects),\n"
"XORed with the 4-byte mask (key[0] on the first byte), or copied when mask is\n"
"None: a large frame gathered in pieces becomes its payload in one pass.");

static PyObject *
unmask_join(PyObject *self, PyObject *args)
{
    PyObject *chunks, *mask, *result = NULL;
    Py_ssize_t start, length, n, i, skip, filled = 0;
    unsigned char key[4];
    int masked;

    if (!PyArg_ParseTuple(args, "O!nnO:unmask_join", &PyList_Type, &chunks, &start, &length,
                          &mask))
        return NULL;
    if (start < 0 || length < 0) {
        PyErr_SetString(PyExc_ValueError, "start and length must be >= 0");
        return NULL;
    }
    masked = mask != Py_None;
    if (masked && get_key(mask, 0, key) < 0)
        return NULL;
    result = PyBytes_FromStringAndSize(NULL, length);
    if (result == NULL)
        return NULL;
    n = PyList_GET_SIZE(chunks);
    skip = start;
    for (i = 0; i < n && filled < length; i++) {
        Py_buffer cb;
        Py_ssize_t take;
        const unsigned char *src;
        unsigned char *dst = (unsigned char *)PyBytes_AS_STRING(result) + filled;

        if (PyObject_GetBuffer(PyList_GET_ITEM(chunks, i), &cb, PyBUF_SIMPLE) < 0) {
            Py_DECREF(result);
            return NULL;
        }
        if (skip >= cb.len) {
            skip -= cb.len;
            PyBuffer_Release(&cb);
            continue;
        }
        src = (const unsigned char *)cb.buf + skip;
        take = cb.len - skip;
        if (take > length - filled)
            take = length - filled;
        skip = 0;
        if (masked) {
            /* The key turns with the payload position (section 5.3). */
            unsigned char k[4];
            int j;
            for (j = 0; j < 4; j++)
                k[j] = key[(filled + j) & 3];
            xor_mask(dst, src, take, k);
        }
        else {
            memcpy(dst, src, (size_t)take);
        }
        filled += take;
        PyBuffer_Release(&cb);
    }
    if (filled < length) {
        Py_DECREF(result);
        PyErr_SetString(PyExc_ValueError, "chunks hold fewer bytes than asked for");
        return NULL;
    }
    return result;
}

/* --------------------------------------------------------------- framing */

/* A text message as a str: ASCII payloads (the common case) are unmasked
 * straight into the str's storage; anything else goes through the codec. */
static PyObject *
make_text(const unsigned char *p, Py_ssize_t n, const unsigned char *key)
{
    PyObject *s;
    unsigned char *d;
    unsigned char tmp[512];
    unsigned char *heap = NULL;
    Py_ssize_t i;
    uint64_t acc = 0;
    unsigned char accb = 0;

    if (key == NULL)
        return PyUnicode_DecodeUTF8((const char *)p, n, NULL);
    s = PyUnicode_New(n, 127);
    if (s == NULL)
        return NULL;
    d = PyUnicode_1BYTE_DATA(s);
    xor_mask(d, p, n, key);
    for (i = 0; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, d + i, 8);
        acc |= w;
    }
    for (; i < n; i++)
        accb |= d[i];
    if (!(acc & 0x8080808080808080ULL) && !(accb & 0x80))
        return s;
    /* Not ASCII: decode the unmasked bytes (copy them out first, since the
     * decoder may not read from a str we are about to drop). */
    if (n > (Py_ssize_t)sizeof(tmp)) {
        heap = PyMem_Malloc(n);
        if (heap == NULL) {
            Py_DECREF(s);
            return PyErr_NoMemory();
        }
    }
    memcpy(heap ? heap : tmp, d, n);
    Py_DECREF(s);
    s = PyUnicode_DecodeUTF8((const char *)(heap ? heap : tmp), n, NULL);
    PyMem_Free(heap);
    return s;
}

PyDoc_STRVAR(parse_messages_doc,
"parse_messages(buf, pos, masked, max_size, events) -> int\n\n"
"Append every complete single-frame text/binary message from buf[pos:] to\n"
"events and return the position after them; stop at the first other frame.\n"
"masked: whether frames must be masked (a server receives masked frames).\n"
"max_size: largest payload accepted, or -1 for no limit.");

static PyObject *
parse_messages(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    Py_buffer db;
    Py_ssize_t pos, end, max_size;
    int masked_expected;
    PyObject *events;
    const unsigned char *buf;

    /* METH_FASTCALL, arguments checked by hand: this runs once per read, and
     * PyArg_ParseTuple's tuple and format string cost more than the parsing
     * of a small frame. */
    if (nargs != 5) {
        PyErr_Format(PyExc_TypeError, "parse_messages() takes 5 arguments (%zd given)", nargs);
        return NULL;
    }
    pos = PyLong_AsSsize_t(args[1]);
    if (pos == -1 && PyErr_Occurred())
        return NULL;
    masked_expected = PyObject_IsTrue(args[2]);
    if (masked_expected < 0)
        return NULL;
    max_size = PyLong_AsSsize_t(args[3]);
    if (max_size == -1 && PyErr_Occurred())
        return NULL;
    events = args[4];
    if (!PyList_Check(events)) {
        PyErr_Format(PyExc_TypeError, "parse_messages() events must be a list, not %.100s",
                     Py_TYPE(events)->tp_name);
        return NULL;
    }
    if (PyObject_GetBuffer(args[0], &db, PyBUF_SIMPLE) < 0)
        return NULL;
    buf = db.buf;
    end = db.len;
    if (pos < 0 || pos > end) {
        PyBuffer_Release(&db);
        PyErr_SetString(PyExc_ValueError, "pos out of range");
        return NULL;
    }
    while (end - pos >= 2) {
        unsigned char b0 = buf[pos], b1 = buf[pos + 1];
        unsigned op = b0 & 0x0F;
        Py_ssize_t hlen = 2;
        uint64_t len = b1 & 0x7F;
        const unsigned char *key = NULL;
        PyObject *msg;

        /* FIN set, RSV1-3 clear, text or binary, masking as expected. */
        if ((b0 & 0xF0) != 0x80 || (op != 1 && op != 2) || (!(b1 & 0x80)) != !masked_expected)
            break;
        if (len == 126) {
            if (end - pos < 4)
                break;
            len = ((uint64_t)buf[pos + 2] << 8) | buf[pos + 3];
            hlen = 4;
        }
        else if (len == 127) {
            int j;
            if (end - pos < 10)
                break;
            len = 0;
            for (j = 2; j < 10; j++)
                len = (len << 8) | buf[pos + j];
            if (len >> 62) /* absurd (or MSB set): the general parser decides */
                break;
            hlen = 10;
        }
        if (max_size >= 0 && len > (uint64_t)max_size)
            break;
        if (b1 & 0x80) {
            if (end - pos < hlen + 4)
                break;
            key = buf + pos + hlen;
            hlen += 4;
        }
        if ((uint64_t)(end - pos - hlen) < len)
            break;
        if (op == 1) {
            msg = make_text(buf + pos + hlen, (Py_ssize_t)len, key);
            if (msg == NULL) {
                if (PyErr_ExceptionMatches(PyExc_UnicodeDecodeError)) {
                    /* Invalid UTF-8: the general parser fails the connection. */
                    PyErr_Clear();
                    break;
                }
                goto error;
            }
        }
        else {
            msg = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)len);
            if (msg == NULL)
                goto error;
            if (key != NULL)
                xor_mask((unsigned char *)PyBytes_AS_STRING(msg), buf + pos + hlen,
                         (Py_ssize_t)len, key);
            else
                memcpy(PyBytes_AS_STRING(msg), buf + pos + hlen, (size_t)len);
        }
        if (PyList_Append(events, msg) < 0) {
            Py_DECREF(msg);
            goto error;
        }
        Py_DECREF(msg);
        pos += hlen + (Py_ssize_t)len;
    }
    PyBuffer_Release(&db);
    return PyLong_FromSsize_t(pos);
error:
    PyBuffer_Release(&db);
    return NULL;
}

/* ------------------------------------------------------------- encoding */

PyDoc_STRVAR(message_frame_doc,
"message_frame(message) -> bytes\n\n"
"One whole unmasked frame (FIN set, RSV bits clear) carrying message: a text\n"
"frame for str (its UTF-8), a binary frame for bytes-like (RFC 6455 section\n"
"5.2), built in one allocation.");

static PyObject *
message_frame(PyObject *self, PyObject *message)
{
    PyObject *tmp = NULL, *frame;
    Py_buffer view;
    const char *data;
    Py_ssize_t n, hlen;
    unsigned char *out;
    unsigned char opcode;
    int have_view = 0;

    if (PyUnicode_Check(message)) {
        opcode = 0x1;
        if (PyUnicode_IS_COMPACT_ASCII(message)) {
            /* ASCII is its own UTF-8: copied straight from the str. */
            data = (const char *)PyUnicode_1BYTE_DATA(message);
            n = PyUnicode_GET_LENGTH(message);
        }
        else {
            /* Not PyUnicode_AsUTF8AndSize: it would keep a UTF-8 copy in the
             * str for as long as the str lives. */
            tmp = PyUnicode_AsUTF8String(message);
            if (tmp == NULL)
                return NULL;
            data = PyBytes_AS_STRING(tmp);
            n = PyBytes_GET_SIZE(tmp);
        }
    }
    else if (PyBytes_CheckExact(message)) {
        opcode = 0x2;
        data = PyBytes_AS_STRING(message);
        n = PyBytes_GET_SIZE(message);
    }
    else {
        if (PyObject_GetBuffer(message, &view, PyBUF_SIMPLE) < 0) {
            PyErr_Format(PyExc_TypeError, "cannot send %.100s: use str or bytes",
                         Py_TYPE(message)->tp_name);
            return NULL;
        }
        have_view = 1;
        opcode = 0x2;
        data = view.buf;
        n = view.len;
    }
    hlen = n < 126 ? 2 : n < 65536 ? 4 : 10;
    frame = PyBytes_FromStringAndSize(NULL, hlen + n);
    if (frame != NULL) {
        out = (unsigned char *)PyBytes_AS_STRING(frame);
        out[0] = 0x80 | opcode;
        if (hlen == 2)
            out[1] = (unsigned char)n;
        else if (hlen == 4) {
            out[1] = 126;
            out[2] = (unsigned char)(n >> 8);
            out[3] = (unsigned char)n;
        }
        else {
            uint64_t len = (uint64_t)n;
            int j;
            out[1] = 127;
            for (j = 9; j >= 2; j--) {
                out[j] = (unsigned char)len;
                len >>= 8;
            }
        }
        memcpy(out + hlen, data, (size_t)n);
    }
    if (have_view)
        PyBuffer_Release(&view);
    Py_XDECREF(tmp);
    return frame;
}

/* ------------------------------------------------------------- writing */

static PyObject *str_write, *str_writelines, *str_send_frames_nowait, *kwnames_limit;

PyDoc_STRVAR(write_chunks_doc,
"write_chunks(chunks, writer, last=None) -> None\n\n"
"Hand the list of chunks, then last if not None, to writer and empty the list\n"
"(a subclass of list by its clear()):\n"
"nothing when there is nothing, writer.write(chunk) for one chunk,\n"
"writer.writelines(chunks) for more.");

static PyObject *
write_chunks(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    PyObject *chunks, *res, *callargs[2];
    Py_ssize_t n;

    if (nargs != 2 && nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "write_chunks() takes 2 or 3 arguments");
        return NULL;
    }
    chunks = args[0];
    if (!PyList_Check(chunks)) {
        PyErr_SetString(PyExc_TypeError, "chunks must be a list");
        return NULL;
    }
    n = PyList_GET_SIZE(chunks);
    callargs[0] = args[1];
    if (nargs == 3 && args[2] != Py_None) {
        if (n == 0) {
            /* Only `last`: written as it is, the list is not touched. */
            callargs[1] = args[2];
            res = PyObject_VectorcallMethod(str_write, callargs, 2, NULL);
            if (res == NULL)
                return NULL;
            Py_DECREF(res);
            Py_RETURN_NONE;
        }
        if (PyList_Append(chunks, args[2]) < 0)
            return NULL;
        n++;
    }
    if (n == 0)
        Py_RETURN_NONE;
    if (n == 1) {
        /* Held: the writer could empty the list while it runs. */
        callargs[1] = PyList_GET_ITEM(chunks, 0);
        Py_INCREF(callargs[1]);
        res = PyObject_VectorcallMethod(str_write, callargs, 2, NULL);
        Py_DECREF(callargs[1]);
    }
    else {
        callargs[1] = chunks;
        res = PyObject_VectorcallMethod(str_writelines, callargs, 2, NULL);
    }
    if (res == NULL)
        return NULL; /* as the Python twin: the chunks stay queued */
    Py_DECREF(res);
    if (!PyList_CheckExact(chunks)) {
        /* A subclass (a test's recording list) is emptied by its own clear(),
           as the Python twin does. */
        res = PyObject_CallMethod(chunks, "clear", NULL);
        if (res == NULL)
            return NULL;
        Py_DECREF(res);
        Py_RETURN_NONE;
    }
    if (PyList_SetSlice(chunks, 0, PyList_GET_SIZE(chunks), NULL) < 0)
        return NULL;
    Py_RETURN_NONE;
}

PyDoc_STRVAR(broadcast_frames_doc,
"broadcast_frames(connections, frames, limit) -> (sent, refused)\n\n"
"Call conn.send_frames_nowait(frames) (with limit=limit unless limit is None)\n"
"for each connection of the iterable; return how many returned true and the\n"
"list of the connections that returned false.");

static PyObject *
broadcast_frames(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    PyObject *it, *conn, *res, *refused, *callargs[3], *kwnames = NULL;
    Py_ssize_t sent = 0, ncall = 2;
    int ok;

    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "broadcast_frames() takes 3 arguments");
        return NULL;
    }
    callargs[1] = args[1];
    if (args[2] != Py_None) {
        /* Two positional (self, frames), then the value of limit= */
        callargs[2] = args[2];
        kwnames = kwnames_limit;
    }
    refused = PyList_New(0);
    if (refused == NULL)
        return NULL;
    it = PyObject_GetIter(args[0]);
    if (it == NULL) {
        Py_DECREF(refused);
        return NULL;
    }
    while ((conn = PyIter_Next(it)) != NULL) {
        callargs[0] = conn;
        res = PyObject_VectorcallMethod(str_send_frames_nowait, callargs, ncall, kwnames);
        if (res == NULL) {
            Py_DECREF(conn);
            goto error;
        }
        ok = PyObject_IsTrue(res);
        Py_DECREF(res);
        if (ok < 0) {
            Py_DECREF(conn);
            goto error;
        }
        if (ok)
            sent++;
        else if (PyList_Append(refused, conn) < 0) {
            Py_DECREF(conn);
            goto error;
        }
        Py_DECREF(conn);
    }
    if (PyErr_Occurred())
        goto error;
    Py_DECREF(it);
    res = Py_BuildValue("(nN)", sent, refused);
    return res;
error:
    Py_DECREF(it);
    Py_DECREF(refused);
    return NULL;
}

/* ---------------------------------------------------------------- module */

static PyMethodDef methods[] = {
    {"apply_mask", (PyCFunction)(void (*)(void))apply_mask, METH_VARARGS | METH_KEYWORDS,
     apply_mask_doc},
    {"mask_inplace", mask_inplace, METH_VARARGS, mask_inplace_doc},
    {"unmask_join", unmask_join, METH_VARARGS, unmask_join_doc},
    {"parse_messages", (PyCFunction)(void (*)(void))parse_messages, METH_FASTCALL,
     parse_messages_doc},
    {"message_frame", message_frame, METH_O, message_frame_doc},
    {"write_chunks", (PyCFunction)(void (*)(void))write_chunks, METH_FASTCALL, write_chunks_doc},
    {"broadcast_frames", (PyCFunction)(void (*)(void))broadcast_frames, METH_FASTCALL,
     broadcast_frames_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "hubbub._speedups",
    "Compiled accelerator for hubbub's hot path (see hubbub.speedups).", -1, methods,
};

PyMODINIT_FUNC
PyInit__speedups(void)
{
    PyObject *m, *str;
#if defined(HUBBUB_X86) && defined(__GNUC__)
    __builtin_cpu_init();
    have_avx2 = __builtin_cpu_supports("avx2");
#endif
    if (PyType_Ready(&PayloadType) < 0)
        return NULL;
    if (str_write == NULL) {
        str_write = PyUnicode_InternFromString("write");
        str_writelines = PyUnicode_InternFromString("writelines");
        str_send_frames_nowait = PyUnicode_InternFromString("send_frames_nowait");
        if (str_write == NULL || str_writelines == NULL || str_send_frames_nowait == NULL)
            return NULL;
        str = PyUnicode_InternFromString("limit");
        if (str == NULL)
            return NULL;
        kwnames_limit = PyTuple_Pack(1, str);
        Py_DECREF(str);
        if (kwnames_limit == NULL)
            return NULL;
    }
    m = PyModule_Create(&module);
    if (m == NULL)
        return NULL;
    Py_INCREF(&PayloadType);
    if (PyModule_AddObject(m, "Payload", (PyObject *)&PayloadType) < 0) {
        Py_DECREF(&PayloadType);
        Py_DECREF(m);
        return NULL;
    }
    if (PyModule_AddIntConstant(m, "HAVE_AVX2", have_avx2) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}

/*
 * Native forwarding path: the C twin of mediaserver/sfu/forwarder.py.
 *
 * One call per inbound RTP packet (route) reads the packet once and, for every active
 * output, writes the rewritten header (SSRC, payload type, sequence number, timestamp,
 * the subscriber's header extensions) and the payload straight into a preallocated send
 * slot, SRTP-protects the slot in place with the libsrtp session aiortc created for the
 * subscriber's connection (the copy pylibsrtp ships: its srtp_t and srtp_protect are
 * passed in as addresses, see fastpath.py), and sends all slots with sendmmsg(2).
 *
 * NACK cache: an output remembers, per sent sequence number, a reference to the inbound
 * packet (one bytes object shared by every output of the publication) and the few
 * values that made its copy (output sequence number and timestamp, audio level,
 * abs-send-time, whether extensions fitted); a retransmission rebuilds the identical
 * bytes. Memory per output is 24 bytes per slot instead of a packet copy.
 *
 * Only the data plane lives here. Every rewrite parameter (output SSRC, payload type,
 * sequence/timestamp offsets, extension ids, keyframe gating and resynchronisation
 * flags) is an attribute Python sets; the rules that apply them are the ones in
 * forwarder.py, which stays the reference (the tests compare both byte for byte).
 *
 * Single-threaded: called with the GIL held from the event loop; no Python code runs
 * inside the per-output loop except allocation of bytes and tuples.
 *
 * Files: target.c (Target: a connection's session, socket and destination), output.c
 * (Output: rewrite state, NACK cache, the packet writer and OutputStream.build's rules,
 * and the VP8 descriptor rewrite of simulcast outputs: vp8rewrite.py's rules),
 * aead.c (SRTP protect for the AES-GCM profiles, used instead of libsrtp when set),
 * route.c (this: keyframe detection, the send batch, route, the module).
 */
#include "fastpath.h"

static int
is_keyframe_start(int codec, const unsigned char *p, Py_ssize_t n)
{
    if (n <= 0) {
        return 0;
    }
    if (codec == CODEC_VP8) {
        unsigned char b0 = p[0];
        if (!(b0 & 0x10) || (b0 & 0x07)) {
            return 0;
        }
        Py_ssize_t i = 1;
        if (b0 & 0x80) {
            if (n < 2) {
                return 0;
            }
            unsigned char x = p[1];
            i = 2;
            if (x & 0x80) {
                if (n <= i) {
                    return 0;
                }
                i += (p[i] & 0x80) ? 2 : 1;
            }
            if (x & 0x40) {
                i += 1;
            }
            if (x & 0x30) {
                i += 1;
            }
        }
        if (n <= i) {
            return 0;
        }
        return (p[i] & 0x01) == 0;
    }
    if (codec == CODEC_H264) {
        unsigned int nal = p[0] & 0x1F;
        if (nal == 5 || nal == 7) {
            return 1;
        }
        if (nal == 24) {
            Py_ssize_t i = 1;
            while (i + 2 < n) {
                Py_ssize_t size = ((Py_ssize_t)p[i] << 8) | p[i + 1];
                unsigned int t = p[i + 2] & 0x1F;
                if (t == 5 || t == 7) {
                    return 1;
                }
                i += 2 + size;
            }
            return 0;
        }
        if (nal == 28 && n > 1) {
            return (p[1] & 0x80) && ((p[1] & 0x1F) == 5 || (p[1] & 0x1F) == 7);
        }
        return 0;
    }
    return 1;
}

/* ---- the send batch ---------------------------------------------------------------- */

typedef struct {
    unsigned char *slots; /* n * SLOT_BYTES */
    struct mmsghdr *msgs;
    struct iovec *iovs;
    TargetObject **targets; /* strong references while queued */
    Py_ssize_t *clear_len;
    Py_ssize_t capacity;
    Py_ssize_t count;
    int busy;
} Batch;

static Batch batch;
/* sendmmsg(2) calls made (status(): packets per call shows the batching) */
static unsigned long long sendmmsg_calls;

static int
batch_reserve(Py_ssize_t n)
{
    if (n <= batch.capacity) {
        return 0;
    }
    Py_ssize_t cap = batch.capacity ? batch.capacity : 16;
    while (cap < n) {
        cap *= 2;
    }
    unsigned char *slots = PyMem_RawRealloc(batch.slots, (size_t)cap * SLOT_BYTES);
    if (slots == NULL) {
        return -1;
    }
    batch.slots = slots;
    struct mmsghdr *msgs = PyMem_RawRealloc(batch.msgs, (size_t)cap * sizeof(*msgs));
    if (msgs == NULL) {
        return -1;
    }
    batch.msgs = msgs;
    struct iovec *iovs = PyMem_RawRealloc(batch.iovs, (size_t)cap * sizeof(*iovs));
    if (iovs == NULL) {
        return -1;
    }
    batch.iovs = iovs;
    TargetObject **targets = PyMem_RawRealloc(batch.targets, (size_t)cap * sizeof(*targets));
    if (targets == NULL) {
        return -1;
    }
    batch.targets = targets;
    Py_ssize_t *lens = PyMem_RawRealloc(batch.clear_len, (size_t)cap * sizeof(*lens));
    if (lens == NULL) {
        return -1;
    }
    batch.clear_len = lens;
    batch.capacity = cap;
    return 0;
}

/* Write output o's packet of cache slot c into the next send slot and protect it
   there; 0 when queued, 1 when protect failed (the packet is dropped, as in Python). */
static int
batch_add(TargetObject *t, const OutputObject *o, const CacheSlot *c)
{
    Py_ssize_t i = batch.count;
    Py_ssize_t len = fp_slot_len(o, c);
    unsigned char *slot = batch.slots + (size_t)i * SLOT_BYTES;
    fp_slot_write(o, c, slot);
    int out_len = (int)len;
    int failed = t->aead != NULL ? fp_aead_protect(t->aead, slot, &out_len)
                                 : t->protect(t->session, slot, &out_len);
    if (failed != 0 || out_len <= 0 || out_len > SLOT_BYTES) {
        t->errors++;
        return 1;
    }
    batch.iovs[i].iov_base = slot;
    batch.iovs[i].iov_len = (size_t)out_len;
    Py_INCREF(t);
    batch.targets[i] = t;
    batch.clear_len[i] = len;
    batch.count = i + 1;
    return 0;
}

/* Send the queued slots (runs of one socket with sendmmsg); counts what left. */
static void
batch_flush(unsigned long long *sent, unsigned long long *octets)
{
    Py_ssize_t n = batch.count;
    for (Py_ssize_t i = 0; i < n; i++) {
        struct msghdr *h = &batch.msgs[i].msg_hdr;
        memset(h, 0, sizeof(*h));
        h->msg_name = &batch.targets[i]->addr;
        h->msg_namelen = batch.targets[i]->addrlen;
        h->msg_iov = &batch.iovs[i];
        h->msg_iovlen = 1;
        batch.msgs[i].msg_len = 0;
    }
    Py_ssize_t i = 0;
    while (i < n) {
        TargetObject *first = batch.targets[i];
        Py_ssize_t end = i + 1;
        while (end < n && batch.targets[end]->sock_ino == first->sock_ino &&
               batch.targets[end]->sock_dev == first->sock_dev) {
            end++; /* the same socket (the UDP mux): one sendmmsg */
        }
        while (i < end) {
            /* any target's descriptor of the run names the same socket; one closed
               after an error below is skipped */
            int fd = batch.targets[i]->fd;
            if (fd < 0) {
                batch.targets[i]->errors++;
                i++;
                continue;
            }
            unsigned int want = (unsigned int)(end - i);
            int r = sendmmsg(fd, &batch.msgs[i], want, MSG_DONTWAIT);
            sendmmsg_calls++;
            if (r <= 0) {
                if (r < 0 && errno == EINTR) {
                    continue;
                }
                /* this message failed: skip it; a broken socket sends from Python
                   (which re-resolves the connection) until Python sets it again */
                TargetObject *t = batch.targets[i];
                t->errors++;
                if (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != ENOBUFS) {
                    fp_target_close_fd(t);
                }
                i++;
                continue;
            }
            for (int k = 0; k < r; k++) {
                *sent += 1;
                *octets += (unsigned long long)batch.clear_len[i + k];
            }
            i += r;
        }
    }
    for (Py_ssize_t k = 0; k < n; k++) {
        Py_DECREF(batch.targets[k]);
    }
    batch.count = 0;
}

/* ---- route --------------------------------------------------------------------------- */

/* One output's copy of the inbound packet: queued for sendmmsg when its connection's
   target is ready, else appended to to_python as (output, packet). -1 on error. */
static int
forward_one(OutputObject *o, const Inbound *in, PyObject *to_python)
{
    const CacheSlot *c = fp_build(o, in);
    if (c == NULL) {
        return 0;
    }
    TargetObject *t = (TargetObject *)o->target;
    if (!o->python_send && t != NULL && t->fd >= 0 && t->session != NULL) {
        if (batch_reserve(batch.count + 1) < 0) {
            PyErr_NoMemory();
            return -1;
        }
        batch_add(t, o, c);
        return 0;
    }
    PyObject *pkt = fp_slot_packet(o, c);
    if (pkt == NULL) {
        return -1;
    }
    PyObject *pair = PyTuple_Pack(2, (PyObject *)o, pkt);
    Py_DECREF(pkt);
    if (pair == NULL) {
        return -1;
    }
    int r = PyList_Append(to_python, pair);
    Py_DECREF(pair);
    return r;
}

PyDoc_STRVAR(route_doc,
"route(data, outputs, codec, video, audio_level_id, muted, now)\n"
"-> (to_python, keyframe, level, sent_packets, sent_octets)\n\n"
"ForwardingTrack.route for every output in the list outputs, sending natively to\n"
"outputs whose target is ready. to_python lists (output, packet) for the others.\n"
"codec: 0 other, 1 VP8, 2 H264. Raises ValueError on a malformed packet.");

static PyObject *
route(PyObject *module, PyObject *args)
{
    PyObject *arg, *outputs;
    int codec, video, muted;
    unsigned int al_id;
    double now;
    if (!PyArg_ParseTuple(args, "OO!ipIpd", &arg, &PyList_Type, &outputs, &codec, &video,
                          &al_id, &muted, &now)) {
        return NULL;
    }
    /* the cache keeps a reference to the packet: it must be immutable bytes */
    PyObject *src = PyBytes_CheckExact(arg) ? Py_NewRef(arg) : PyBytes_FromObject(arg);
    if (src == NULL) {
        return NULL;
    }
    const unsigned char *data = (const unsigned char *)PyBytes_AS_STRING(src);
    Py_ssize_t n = PyBytes_GET_SIZE(src);
    PyObject *result = NULL, *to_python = NULL;
    Inbound in;
    memset(&in, 0, sizeof(in));
    in.src = src;
    if (n < 12) {
        PyErr_SetString(PyExc_ValueError, "RTP packet shorter than 12 bytes");
        goto done;
    }
    in.b0 = data[0];
    in.b1 = data[1];
    in.seq = ((unsigned int)data[2] << 8) | data[3];
    in.ts = ((unsigned int)data[4] << 24) | ((unsigned int)data[5] << 16) |
            ((unsigned int)data[6] << 8) | data[7];
    Py_ssize_t off = 12 + 4 * (Py_ssize_t)(in.b0 & 0x0F);
    if (in.b0 & 0x10) {
        if (n < off + 4) {
            PyErr_SetString(PyExc_ValueError, "RTP header extension truncated");
            goto done;
        }
        unsigned int profile = ((unsigned int)data[off] << 8) | data[off + 1];
        Py_ssize_t words = ((Py_ssize_t)data[off + 2] << 8) | data[off + 3];
        Py_ssize_t start = off + 4;
        off = start + 4 * words;
        if (off > n) {
            PyErr_SetString(PyExc_ValueError, "RTP header extension longer than packet");
            goto done;
        }
        if (al_id && profile == 0xBEDE) {
            Py_ssize_t i = start;
            while (i < off) {
                unsigned char h = data[i];
                if (h == 0) {
                    i += 1;
                    continue;
                }
                unsigned int ext_id = h >> 4;
                if (ext_id == 15) {
                    break;
                }
                if (ext_id == al_id) {
                    /* like data[i + 1 : i + 2]: empty past the end of the packet */
                    in.audio_level = (i + 1 < n) ? data + i + 1 : NULL;
                    break;
                }
                i += 1 + (h & 0x0F) + 1;
            }
        }
    } else if (off > n) {
        PyErr_SetString(PyExc_ValueError, "RTP CSRC list longer than packet");
        goto done;
    }
    if (off > MAX_PAYLOAD_OFFSET) {
        PyErr_SetString(PyExc_ValueError, "RTP header longer than 65535 bytes");
        goto done;
    }
    in.payload = data + off;
    in.payload_len = n - off;
    int level = in.audio_level != NULL ? (in.audio_level[0] & 0x7F) : -1;
    int keyframe = video && is_keyframe_start(codec, in.payload, in.payload_len);
    unsigned long long sent = 0, octets = 0;
    to_python = PyList_New(0);
    if (to_python == NULL) {
        goto done;
    }
    if (!muted) {
        if (batch.busy) {
            PyErr_SetString(PyExc_RuntimeError, "route called re-entrantly");
            goto done;
        }
        unsigned char ast[3];
        batch.busy = 1;
        batch.count = 0;
        int failed = 0;
        for (Py_ssize_t k = 0; k < PyList_GET_SIZE(outputs); k++) {
            PyObject *item = PyList_GET_ITEM(outputs, k);
            if (!PyObject_TypeCheck(item, &fp_OutputType)) {
                PyErr_SetString(PyExc_TypeError, "outputs must hold Output objects");
                failed = 1;
                break;
            }
            OutputObject *o = (OutputObject *)item;
            if (!o->active) {
                continue;
            }
            if (o->waiting_keyframe) {
                if (!keyframe) {
                    continue;
                }
                o->waiting_keyframe = 0;
            }
            if (o->abs_send_time_ext_id && in.ast == NULL) {
                unsigned long v = (unsigned long)(long long)(now * 262144.0) & 0xFFFFFFul;
                ast[0] = (unsigned char)(v >> 16);
                ast[1] = (unsigned char)(v >> 8);
                ast[2] = (unsigned char)v;
                in.ast = ast;
            }
            Py_INCREF(o); /* allocation below may run arbitrary code (the GC) */
            int r = forward_one(o, &in, to_python);
            Py_DECREF(o);
            if (r < 0) {
                failed = 1;
                break;
            }
        }
        batch_flush(&sent, &octets);
        batch.busy = 0;
        if (failed) {
            goto done;
        }
    }
    result = Py_BuildValue("(OOiKK)", to_python, keyframe ? Py_True : Py_False, level, sent,
                           octets);
done:
    Py_XDECREF(to_python);
    Py_DECREF(src);
    return result;
}

PyDoc_STRVAR(keyframe_doc, "is_keyframe_start(codec, payload): codec 0 other, 1 VP8, 2 H264");

static PyObject *
py_is_keyframe_start(PyObject *module, PyObject *args)
{
    int codec;
    Py_buffer buf;
    if (!PyArg_ParseTuple(args, "iy*", &codec, &buf)) {
        return NULL;
    }
    int r = is_keyframe_start(codec, buf.buf, buf.len);
    PyBuffer_Release(&buf);
    return PyBool_FromLong(r);
}

static PyObject *
py_sendmmsg_calls(PyObject *module, PyObject *Py_UNUSED(ignored))
{
    return PyLong_FromUnsignedLongLong(sendmmsg_calls);
}

static PyObject *
py_native_srtp(PyObject *module, PyObject *Py_UNUSED(ignored))
{
    if (fp_aead_available()) {
        return Py_BuildValue("(Os)", Py_True, "");
    }
    return Py_BuildValue("(Os)", Py_False, fp_aead_unavailable_reason());
}

static PyMethodDef module_methods[] = {
    {"native_srtp", py_native_srtp, METH_NOARGS,
     "native_srtp() -> (available, why not): AES-GCM SRTP in C (aead.c)"},
    {"route", route, METH_VARARGS, route_doc},
    {"sendmmsg_calls", py_sendmmsg_calls, METH_NOARGS, "sendmmsg(2) calls made so far"},
    {"is_keyframe_start", py_is_keyframe_start, METH_VARARGS, keyframe_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    .m_name = "mediaserver.sfu._fastpath",
    .m_doc = "Native forwarding path (see forwarder.py for the reference rules).",
    .m_size = -1,
    .m_methods = module_methods,
};

PyMODINIT_FUNC
PyInit__fastpath(void)
{
    if (PyType_Ready(&fp_TargetType) < 0 || PyType_Ready(&fp_OutputType) < 0 ||
        PyType_Ready(&fp_RxSessionType) < 0) {
        return NULL;
    }
    PyObject *m = PyModule_Create(&module_def);
    if (m == NULL) {
        return NULL;
    }
    if (PyModule_AddObjectRef(m, "Target", (PyObject *)&fp_TargetType) < 0 ||
        PyModule_AddObjectRef(m, "Output", (PyObject *)&fp_OutputType) < 0 ||
        PyModule_AddObjectRef(m, "RxSession", (PyObject *)&fp_RxSessionType) < 0 ||
        PyModule_AddIntConstant(m, "CACHE_SIZE", CACHE_SIZE) < 0 ||
        PyModule_AddIntConstant(m, "AUDIO_CACHE_SIZE", AUDIO_CACHE_SIZE) < 0 ||
        PyModule_AddIntConstant(m, "MAX_PACKET_BYTES", MAX_PACKET_BYTES) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}

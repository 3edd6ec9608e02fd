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
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_PACKET_BYTES 1356
#define CACHE_SIZE 512
#define CACHE_MASK (CACHE_SIZE - 1)
#define TS_REBASE_STEP 3000u
/* Clear packet plus the largest SRTP trailer libsrtp may append (tag + MKI). */
#define SLOT_BYTES (MAX_PACKET_BYTES + 16 + 128)
#define MAX_EXT_PREFIX 17 /* one header byte + a mid of at most 16 bytes */

#define CODEC_OTHER 0
#define CODEC_VP8 1
#define CODEC_H264 2

typedef int (*protect_fn)(void *session, void *buf, int *len);

/* ---- Target: where one subscriber connection's packets go ------------------------ */

typedef struct {
    PyObject_HEAD
    void *session;      /* libsrtp srtp_t of the connection's outbound SRTP */
    protect_fn protect; /* srtp_protect of the same libsrtp copy */
    PyObject *keep;     /* the object owning session (pylibsrtp Session): kept alive */
    int fd;             /* our own duplicate of the socket; -1: packets go back to Python */
    dev_t sock_dev;     /* which socket it is (several targets share the UDP mux's) */
    ino_t sock_ino;
    struct sockaddr_storage addr;
    socklen_t addrlen;
    unsigned long long errors;
} TargetObject;

static PyTypeObject TargetType;

static int
Target_traverse(TargetObject *self, visitproc visit, void *arg)
{
    Py_VISIT(self->keep);
    return 0;
}

static void
Target_close_fd(TargetObject *self)
{
    if (self->fd >= 0) {
        close(self->fd);
        self->fd = -1;
    }
}

static int
Target_clear_refs(TargetObject *self)
{
    Py_CLEAR(self->keep);
    self->session = NULL;
    self->protect = NULL;
    Target_close_fd(self);
    return 0;
}

static void
Target_dealloc(TargetObject *self)
{
    PyObject_GC_UnTrack(self);
    Target_clear_refs(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *
Target_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    TargetObject *self = (TargetObject *)type->tp_alloc(type, 0);
    if (self != NULL) {
        self->fd = -1;
    }
    return (PyObject *)self;
}

static PyObject *
Target_set(TargetObject *self, PyObject *args)
{
    unsigned long long session, protect;
    PyObject *keep;
    int fd, family, port;
    const char *host;
    struct sockaddr_storage addr;
    socklen_t addrlen;

    if (!PyArg_ParseTuple(args, "KKOiisi", &session, &protect, &keep, &fd, &family, &host,
                          &port)) {
        return NULL;
    }
    if (session == 0 || protect == 0 || fd < 0 || port < 0 || port > 65535) {
        PyErr_SetString(PyExc_ValueError, "invalid session, function, fd or port");
        return NULL;
    }
    memset(&addr, 0, sizeof(addr));
    if (family == AF_INET) {
        struct sockaddr_in *a = (struct sockaddr_in *)&addr;
        a->sin_family = AF_INET;
        a->sin_port = htons((uint16_t)port);
        if (inet_pton(AF_INET, host, &a->sin_addr) != 1) {
            PyErr_SetString(PyExc_ValueError, "not an IPv4 address");
            return NULL;
        }
        addrlen = sizeof(*a);
    } else if (family == AF_INET6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&addr;
        a->sin6_family = AF_INET6;
        a->sin6_port = htons((uint16_t)port);
        if (inet_pton(AF_INET6, host, &a->sin6_addr) != 1) {
            struct in_addr v4;
            if (inet_pton(AF_INET, host, &v4) != 1) {
                PyErr_SetString(PyExc_ValueError, "not an IP address");
                return NULL;
            }
            /* IPv4 peer on an IPv6 socket: the mapped address */
            a->sin6_addr.s6_addr[10] = 0xFF;
            a->sin6_addr.s6_addr[11] = 0xFF;
            memcpy(&a->sin6_addr.s6_addr[12], &v4, 4);
        }
        addrlen = sizeof(*a);
    } else {
        PyErr_SetString(PyExc_ValueError, "family must be AF_INET or AF_INET6");
        return NULL;
    }
    /* A duplicate, so the number can never come to name another file while we hold
       it (the event loop may close its descriptor at any time); datagram sockets only. */
    int type = 0;
    socklen_t type_len = sizeof(type);
    if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &type_len) != 0 || type != SOCK_DGRAM) {
        PyErr_SetString(PyExc_ValueError, "not a datagram socket");
        return NULL;
    }
    struct stat st;
    int own = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (own < 0 || fstat(own, &st) != 0) {
        if (own >= 0) {
            close(own);
        }
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    Target_close_fd(self);
    Py_INCREF(keep);
    Py_XSETREF(self->keep, keep);
    self->session = (void *)(uintptr_t)session;
    self->protect = (protect_fn)(uintptr_t)protect;
    self->fd = own;
    self->sock_dev = st.st_dev;
    self->sock_ino = st.st_ino;
    self->addr = addr;
    self->addrlen = addrlen;
    Py_RETURN_NONE;
}

static PyObject *
Target_clear(TargetObject *self, PyObject *Py_UNUSED(ignored))
{
    Target_clear_refs(self);
    Py_RETURN_NONE;
}

static PyObject *
Target_get_ready(TargetObject *self, void *closure)
{
    return PyBool_FromLong(self->fd >= 0 && self->session != NULL);
}

static PyMethodDef Target_methods[] = {
    {"set", (PyCFunction)Target_set, METH_VARARGS,
     "set(session, protect, keep, fd, family, host, port): send natively from now on"},
    {"clear", (PyCFunction)Target_clear, METH_NOARGS,
     "Forget the session and socket: packets go back to Python"},
    {NULL, NULL, 0, NULL},
};

static PyMemberDef Target_members[] = {
    {"errors", T_ULONGLONG, offsetof(TargetObject, errors), READONLY,
     "protect or send failures"},
    {NULL, 0, 0, 0, NULL},
};

static PyGetSetDef Target_getset[] = {
    {"ready", (getter)Target_get_ready, NULL, "True when packets are sent natively", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject TargetType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "mediaserver.sfu._fastpath.Target",
    .tp_basicsize = sizeof(TargetObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "One subscriber connection's SRTP session and UDP destination.",
    .tp_new = Target_new,
    .tp_dealloc = (destructor)Target_dealloc,
    .tp_traverse = (traverseproc)Target_traverse,
    .tp_clear = (inquiry)Target_clear_refs,
    .tp_methods = Target_methods,
    .tp_members = Target_members,
    .tp_getset = Target_getset,
};

/* ---- Output: one publication as forwarded to one subscriber ------------------------ */

#define SLOT_HAS_AL 1
#define SLOT_HAS_AST 2
#define SLOT_WITH_EXT 4

/* What one sent packet was made of: enough to write it again, byte for byte. */
typedef struct {
    PyObject *src;            /* the inbound packet (bytes), shared; NULL: empty slot */
    unsigned int out_ts;
    unsigned int payload_off; /* where the payload starts in src */
    unsigned short out_seq;
    unsigned char audio_level;
    unsigned char ast[3];
    unsigned char flags;
} CacheSlot;

typedef struct {
    PyObject_HEAD
    /* rewrite parameters, set from Python */
    unsigned int ssrc;
    unsigned int payload_type;
    unsigned int seq_offset;
    unsigned int ts_offset;
    unsigned int audio_level_ext_id;
    unsigned int abs_send_time_ext_id;
    unsigned char ext_prefix[MAX_EXT_PREFIX]; /* the mid element, written first */
    Py_ssize_t ext_prefix_len;
    /* A VP8 picture-id offset (simulcast layer switches) would sit here, set from
       Python like the others; not applied yet. */
    /* resynchronisation state (same rules as OutputStream.build) */
    unsigned int next_seq;
    unsigned int started_at_seq;
    char resync;
    char rebase_ts;
    /* control flags */
    char active;
    char waiting_keyframe;
    char python_send; /* always hand packets back to Python (test hooks, taps) */
    /* counters */
    unsigned long long packets;
    unsigned long long octets;
    unsigned int last_rtp_ts;
    PyObject *target; /* TargetObject or NULL */
    CacheSlot cache[CACHE_SIZE];
} OutputObject;

static PyTypeObject OutputType;

static int
Output_traverse(OutputObject *self, visitproc visit, void *arg)
{
    Py_VISIT(self->target);
    return 0;
}

static int
Output_clear_refs(OutputObject *self)
{
    Py_CLEAR(self->target);
    for (int i = 0; i < CACHE_SIZE; i++) {
        Py_CLEAR(self->cache[i].src);
    }
    return 0;
}

static void
Output_dealloc(OutputObject *self)
{
    /* a static type: subtype_dealloc drops the reference of a Python subclass */
    PyObject_GC_UnTrack(self);
    Output_clear_refs(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *
Output_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    OutputObject *self = (OutputObject *)type->tp_alloc(type, 0);
    if (self != NULL) {
        self->resync = 1;
    }
    return (PyObject *)self;
}

static PyObject *slot_packet(const OutputObject *o, const CacheSlot *c);

static PyObject *
Output_cached(OutputObject *self, PyObject *arg)
{
    long seq = PyLong_AsLong(arg);
    if (seq == -1 && PyErr_Occurred()) {
        return NULL;
    }
    const CacheSlot *c = &self->cache[(unsigned long)seq & CACHE_MASK];
    if (c->src == NULL) {
        Py_RETURN_NONE;
    }
    return slot_packet(self, c);
}

static PyObject *
Output_get_ext_prefix(OutputObject *self, void *closure)
{
    return PyBytes_FromStringAndSize((const char *)self->ext_prefix, self->ext_prefix_len);
}

static int
Output_set_ext_prefix(OutputObject *self, PyObject *value, void *closure)
{
    char *buf;
    Py_ssize_t len;
    if (value == NULL || PyBytes_AsStringAndSize(value, &buf, &len) < 0) {
        if (!PyErr_Occurred()) {
            PyErr_SetString(PyExc_TypeError, "_ext_prefix must be bytes");
        }
        return -1;
    }
    if (len > MAX_EXT_PREFIX) {
        PyErr_SetString(PyExc_ValueError, "_ext_prefix longer than 17 bytes");
        return -1;
    }
    memcpy(self->ext_prefix, buf, (size_t)len);
    self->ext_prefix_len = len;
    return 0;
}

static PyObject *
Output_get_target(OutputObject *self, void *closure)
{
    if (self->target == NULL) {
        Py_RETURN_NONE;
    }
    return Py_NewRef(self->target);
}

static int
Output_set_target(OutputObject *self, PyObject *value, void *closure)
{
    if (value == NULL || value == Py_None) {
        Py_CLEAR(self->target);
        return 0;
    }
    if (!PyObject_TypeCheck(value, &TargetType)) {
        PyErr_SetString(PyExc_TypeError, "target must be a Target or None");
        return -1;
    }
    Py_INCREF(value);
    Py_XSETREF(self->target, value);
    return 0;
}

static PyMethodDef Output_methods[] = {
    {"cached", (PyCFunction)Output_cached, METH_O,
     "cached(out_seq): the clear packet sent from that cache slot (rebuilt), or None"},
    {NULL, NULL, 0, NULL},
};

#define M(name, type, field) {name, type, offsetof(OutputObject, field), 0, NULL}
static PyMemberDef Output_members[] = {
    M("_ssrc", T_UINT, ssrc),
    M("_payload_type", T_UINT, payload_type),
    M("_seq_offset", T_UINT, seq_offset),
    M("_ts_offset", T_UINT, ts_offset),
    M("_al_id", T_UINT, audio_level_ext_id),
    M("_ast_id", T_UINT, abs_send_time_ext_id),
    M("_next_seq", T_UINT, next_seq),
    M("_started_at_seq", T_UINT, started_at_seq),
    M("_resync", T_BOOL, resync),
    M("_rebase_ts", T_BOOL, rebase_ts),
    M("active", T_BOOL, active),
    M("waiting_keyframe", T_BOOL, waiting_keyframe),
    M("_python_send", T_BOOL, python_send),
    M("packets", T_ULONGLONG, packets),
    M("octets", T_ULONGLONG, octets),
    M("last_rtp_ts", T_UINT, last_rtp_ts),
    {NULL, 0, 0, 0, NULL},
};
#undef M

static PyGetSetDef Output_getset[] = {
    {"_ext_prefix", (getter)Output_get_ext_prefix, (setter)Output_set_ext_prefix,
     "the mid element written first in every packet's extension block", NULL},
    {"target", (getter)Output_get_target, (setter)Output_set_target,
     "the subscriber connection's Target (None: packets go back to Python)", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject OutputType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "mediaserver.sfu._fastpath.Output",
    .tp_basicsize = sizeof(OutputObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "Rewrite state and NACK cache of one output (see forwarder.OutputStream).",
    .tp_new = Output_new,
    .tp_dealloc = (destructor)Output_dealloc,
    .tp_traverse = (traverseproc)Output_traverse,
    .tp_clear = (inquiry)Output_clear_refs,
    .tp_methods = Output_methods,
    .tp_members = Output_members,
    .tp_getset = Output_getset,
};

/* ---- packet helpers (the rules of forwarder.py) ------------------------------------ */

static inline int
seq_newer(unsigned int a, unsigned int b)
{
    return a != b && ((a - b) & 0xFFFFu) < 0x8000u;
}

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

typedef struct {
    PyObject *src; /* the packet (bytes) */
    unsigned char b0, b1;
    unsigned int seq, ts;
    const unsigned char *audio_level; /* NULL: absent */
    const unsigned char *ast;         /* 3 bytes, NULL: not computed */
    const unsigned char *payload;
    Py_ssize_t payload_len;
} Inbound;

static inline void
put16(unsigned char *p, unsigned int v)
{
    p[0] = (unsigned char)(v >> 8);
    p[1] = (unsigned char)v;
}

static inline void
put32(unsigned char *p, unsigned int v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

/* The extension block (with padding) an output writes for a slot; 0: none. */
static Py_ssize_t
ext_block_len(const OutputObject *o, unsigned int flags)
{
    Py_ssize_t n = o->ext_prefix_len;
    if ((flags & SLOT_HAS_AL) && o->audio_level_ext_id) {
        n += 2;
    }
    if ((flags & SLOT_HAS_AST) && o->abs_send_time_ext_id) {
        n += 4;
    }
    return (n + 3) & ~(Py_ssize_t)3;
}

/* Length of the packet written for slot c (SLOT_WITH_EXT decides the layout). */
static Py_ssize_t
slot_len(const OutputObject *o, const CacheSlot *c)
{
    Py_ssize_t payload = PyBytes_GET_SIZE(c->src) - (Py_ssize_t)c->payload_off;
    if (c->flags & SLOT_WITH_EXT) {
        return 16 + ext_block_len(o, c->flags) + payload;
    }
    return 12 + payload;
}

/* Write the packet of slot c into w (slot_len bytes). */
static void
slot_write(const OutputObject *o, const CacheSlot *c, unsigned char *w)
{
    const unsigned char *src = (const unsigned char *)PyBytes_AS_STRING(c->src);
    Py_ssize_t payload = PyBytes_GET_SIZE(c->src) - (Py_ssize_t)c->payload_off;
    Py_ssize_t h = 12;
    w[0] = (unsigned char)(((c->flags & SLOT_WITH_EXT) ? 0x90 : 0x80) | (src[0] & 0x20));
    w[1] = (unsigned char)((src[1] & 0x80) | (o->payload_type & 0x7F));
    put16(w + 2, c->out_seq);
    put32(w + 4, c->out_ts);
    put32(w + 8, o->ssrc);
    if (c->flags & SLOT_WITH_EXT) {
        Py_ssize_t ext_len = ext_block_len(o, c->flags);
        unsigned char *e = w + 16;
        put16(w + 12, 0xBEDE);
        put16(w + 14, (unsigned int)(ext_len >> 2));
        memcpy(e, o->ext_prefix, (size_t)o->ext_prefix_len);
        e += o->ext_prefix_len;
        if ((c->flags & SLOT_HAS_AL) && o->audio_level_ext_id) {
            *e++ = (unsigned char)(o->audio_level_ext_id << 4);
            *e++ = c->audio_level;
        }
        if ((c->flags & SLOT_HAS_AST) && o->abs_send_time_ext_id) {
            *e++ = (unsigned char)((o->abs_send_time_ext_id << 4) | 2);
            memcpy(e, c->ast, 3);
            e += 3;
        }
        while (e < w + 16 + ext_len) {
            *e++ = 0;
        }
        h = 16 + ext_len;
    }
    if (payload > 0) {
        memcpy(w + h, src + c->payload_off, (size_t)payload);
    }
}

/* The packet of slot c as a new bytes object. */
static PyObject *
slot_packet(const OutputObject *o, const CacheSlot *c)
{
    PyObject *pkt = PyBytes_FromStringAndSize(NULL, slot_len(o, c));
    if (pkt != NULL) {
        slot_write(o, c, (unsigned char *)PyBytes_AS_STRING(pkt));
    }
    return pkt;
}

/* OutputStream.build: the cache slot now holding the packet to send, or NULL when
   nothing is sent (from before the last resynchronisation, or too large). */
static const CacheSlot *
build(OutputObject *o, const Inbound *in)
{
    unsigned int seq = in->seq, ts = in->ts;
    unsigned int floor = o->started_at_seq & 0xFFFFu;
    if (o->resync) {
        o->seq_offset = (o->next_seq - seq) & 0xFFFFu;
        if (o->rebase_ts && o->packets) {
            o->ts_offset = o->last_rtp_ts + TS_REBASE_STEP - ts;
        }
        o->rebase_ts = 0;
        o->started_at_seq = seq;
        o->resync = 0;
    } else if (seq != floor && !seq_newer(seq, floor)) {
        return NULL;
    } else if (((seq - floor) & 0xFFFFu) > 0x4000u) {
        o->started_at_seq = (seq - 0x2000u) & 0xFFFFu;
    }
    unsigned int out_seq = (seq + o->seq_offset) & 0xFFFFu;
    unsigned int out_ts = ts + o->ts_offset;
    unsigned int flags = 0;
    if (in->audio_level != NULL) {
        flags |= SLOT_HAS_AL;
    }
    if (in->ast != NULL) {
        flags |= SLOT_HAS_AST;
    }
    Py_ssize_t ext_len = ext_block_len(o, flags);
    if (ext_len && 16 + ext_len + in->payload_len <= MAX_PACKET_BYTES) {
        flags |= SLOT_WITH_EXT;
    } else if (12 + in->payload_len > MAX_PACKET_BYTES) {
        return NULL;
    }
    if (seq_newer((out_seq + 1) & 0xFFFFu, o->next_seq & 0xFFFFu)) {
        o->next_seq = (out_seq + 1) & 0xFFFFu;
    }
    CacheSlot *c = &o->cache[out_seq & CACHE_MASK];
    Py_INCREF(in->src);
    Py_XSETREF(c->src, in->src);
    c->out_ts = out_ts;
    c->payload_off = (unsigned int)(in->payload - (const unsigned char *)PyBytes_AS_STRING(in->src));
    c->out_seq = (unsigned short)out_seq;
    c->audio_level = in->audio_level != NULL ? in->audio_level[0] : 0;
    if (in->ast != NULL) {
        memcpy(c->ast, in->ast, 3);
    }
    c->flags = (unsigned char)flags;
    o->packets += 1;
    o->octets += (unsigned long long)in->payload_len;
    o->last_rtp_ts = out_ts;
    return c;
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
    Py_ssize_t len = slot_len(o, c);
    unsigned char *slot = batch.slots + (size_t)i * SLOT_BYTES;
    slot_write(o, c, slot);
    int out_len = (int)len;
    if (t->protect(t->session, slot, &out_len) != 0 || out_len <= 0 || out_len > SLOT_BYTES) {
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
                    Target_close_fd(t);
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
    const CacheSlot *c = build(o, in);
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
    PyObject *pkt = slot_packet(o, c);
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
            if (!PyObject_TypeCheck(item, &OutputType)) {
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

static PyMethodDef module_methods[] = {
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
    if (PyType_Ready(&TargetType) < 0 || PyType_Ready(&OutputType) < 0) {
        return NULL;
    }
    PyObject *m = PyModule_Create(&module_def);
    if (m == NULL) {
        return NULL;
    }
    if (PyModule_AddObjectRef(m, "Target", (PyObject *)&TargetType) < 0 ||
        PyModule_AddObjectRef(m, "Output", (PyObject *)&OutputType) < 0 ||
        PyModule_AddIntConstant(m, "CACHE_SIZE", CACHE_SIZE) < 0 ||
        PyModule_AddIntConstant(m, "MAX_PACKET_BYTES", MAX_PACKET_BYTES) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}

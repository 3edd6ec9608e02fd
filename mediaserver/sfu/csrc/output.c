/* Output: one publication as forwarded to one subscriber (the twin of
   forwarder.OutputStream): rewrite state, the NACK cache, and the packet writer. */
#include "fastpath.h"

/* ---- Output: one publication as forwarded to one subscriber ------------------------ */



static int
Output_traverse(OutputObject *self, visitproc visit, void *arg)
{
    Py_VISIT(self->target);
    return 0;
}

static void
clear_cache(OutputObject *self)
{
    if (self->cache != NULL) {
        for (unsigned int i = 0; i <= self->cache_mask; i++) {
            Py_CLEAR(self->cache[i].src);
        }
    }
}

static int
Output_clear_refs(OutputObject *self)
{
    Py_CLEAR(self->target);
    clear_cache(self);
    return 0;
}

static void
Output_dealloc(OutputObject *self)
{
    /* a static type: subtype_dealloc drops the reference of a Python subclass */
    PyObject_GC_UnTrack(self);
    Output_clear_refs(self);
    PyMem_Free(self->cache);
    self->cache = NULL;
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *
Output_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    OutputObject *self = (OutputObject *)type->tp_alloc(type, 0);
    if (self != NULL) {
        self->resync = 1;
        self->vp8_last_pic = self->vp8_last_tl0 = self->vp8_last_key = -1;
        self->cache = PyMem_Calloc(CACHE_SIZE, sizeof(CacheSlot));
        if (self->cache == NULL) {
            Py_DECREF(self);
            return PyErr_NoMemory();
        }
        self->cache_mask = CACHE_SIZE - 1;
    }
    return (PyObject *)self;
}

static PyObject *
Output_cached(OutputObject *self, PyObject *arg)
{
    long seq = PyLong_AsLong(arg);
    if (seq == -1 && PyErr_Occurred()) {
        return NULL;
    }
    const CacheSlot *c = &self->cache[(unsigned long)seq & self->cache_mask];
    if (c->src == NULL) {
        Py_RETURN_NONE;
    }
    return fp_slot_packet(self, c);
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
    if (!PyObject_TypeCheck(value, &fp_TargetType)) {
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
    M("_rebase_ts", T_UINT, rebase_ts),
    M("active", T_BOOL, active),
    M("waiting_keyframe", T_BOOL, waiting_keyframe),
    M("_python_send", T_BOOL, python_send),
    M("_vp8", T_BOOL, vp8),
    M("_vp8_rebase", T_BOOL, vp8_rebase),
    M("packets", T_ULONGLONG, packets),
    M("octets", T_ULONGLONG, octets),
    M("last_rtp_ts", T_UINT, last_rtp_ts),
    {NULL, 0, 0, 0, NULL},
};
#undef M

static PyObject *
Output_get_cache_slots(OutputObject *self, void *closure)
{
    return PyLong_FromUnsignedLong((unsigned long)self->cache_mask + 1);
}

/* The NACK cache's size: a power of two from 16 to CACHE_SIZE, set before the first
   packet (a resize empties the cache). */
static int
Output_set_cache_slots(OutputObject *self, PyObject *value, void *closure)
{
    if (value == NULL) {
        PyErr_SetString(PyExc_AttributeError, "_cache_slots cannot be deleted");
        return -1;
    }
    long n = PyLong_AsLong(value);
    if (n == -1 && PyErr_Occurred()) {
        return -1;
    }
    if (n < 16 || n > CACHE_SIZE || (n & (n - 1)) != 0) {
        PyErr_SetString(PyExc_ValueError, "_cache_slots: a power of two from 16 to CACHE_SIZE");
        return -1;
    }
    if ((unsigned long)n == (unsigned long)self->cache_mask + 1) {
        clear_cache(self); /* the same size: emptied, not reallocated */
        return 0;
    }
    CacheSlot *fresh = PyMem_Calloc((size_t)n, sizeof(CacheSlot));
    if (fresh == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    clear_cache(self);
    PyMem_Free(self->cache);
    self->cache = fresh;
    self->cache_mask = (unsigned int)n - 1;
    return 0;
}

static PyGetSetDef Output_getset[] = {
    {"_cache_slots", (getter)Output_get_cache_slots, (setter)Output_set_cache_slots,
     "slots of the NACK cache (a power of two, 16..CACHE_SIZE; set before use)", NULL},
    {"_ext_prefix", (getter)Output_get_ext_prefix, (setter)Output_set_ext_prefix,
     "the mid element written first in every packet's extension block", NULL},
    {"target", (getter)Output_get_target, (setter)Output_set_target,
     "the subscriber connection's Target (None: packets go back to Python)", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

PyTypeObject fp_OutputType = {
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






/* ---- VP8 payload descriptor (RFC 7741): vp8rewrite.py's rules ------------------------ */

typedef struct {
    Py_ssize_t pic_at, tl0_at, key_at; /* -1: absent */
    unsigned int pic_bits;             /* 7 or 15; 0: absent */
    unsigned int pic, tl0, key;
} Vp8Desc;

/* parse_descriptor: 0, or -1 when truncated. */
static int
vp8_parse(const unsigned char *p, Py_ssize_t n, Vp8Desc *d)
{
    d->pic_at = d->tl0_at = d->key_at = -1;
    d->pic_bits = d->pic = d->tl0 = d->key = 0;
    if (n < 1) {
        return -1;
    }
    if (!(p[0] & 0x80)) {
        return 0;
    }
    if (n < 2) {
        return -1;
    }
    unsigned char x = p[1];
    Py_ssize_t i = 2;
    if (x & 0x80) {
        if (n <= i) {
            return -1;
        }
        d->pic_at = i;
        if (p[i] & 0x80) {
            if (n <= i + 1) {
                return -1;
            }
            d->pic_bits = 15;
            d->pic = ((unsigned int)(p[i] & 0x7F) << 8) | p[i + 1];
            i += 2;
        } else {
            d->pic_bits = 7;
            d->pic = p[i] & 0x7F;
            i += 1;
        }
    }
    if (x & 0x40) {
        if (n <= i) {
            return -1;
        }
        d->tl0_at = i;
        d->tl0 = p[i];
        i += 1;
    }
    if (x & 0x30) {
        if (n <= i) {
            return -1;
        }
        if (x & 0x10) {
            d->key_at = i;
            d->key = p[i] & 0x1F;
        }
    }
    return 0;
}

static int
newer_masked(unsigned int a, unsigned int b, unsigned int mask)
{
    return a != b && ((a - b) & mask) < ((mask + 1) >> 1);
}

/* Vp8Rewriter.rewrite's bookkeeping for one packet of output o: re-base after a switch,
   remember the values sent, and set *pic_off, *tl0_off, *key_off to the offsets to
   apply (left as they are when the payload has no parseable descriptor: sent as it is). */
static void
vp8_track(OutputObject *o, const unsigned char *p, Py_ssize_t n, unsigned int *pic_off,
          unsigned int *tl0_off, unsigned int *key_off)
{
    Vp8Desc d;
    if (vp8_parse(p, n, &d) < 0) {
        return;
    }
    if (o->vp8_rebase) {
        o->vp8_rebase = 0;
        if (d.pic_bits && o->vp8_last_pic >= 0) {
            o->vp8_pic_off = ((unsigned int)o->vp8_last_pic + 1u - d.pic) & 0x7FFFu;
        }
        if (d.tl0_at >= 0 && o->vp8_last_tl0 >= 0) {
            o->vp8_tl0_off = ((unsigned int)o->vp8_last_tl0 + 1u - d.tl0) & 0xFFu;
        }
        if (d.key_at >= 0 && o->vp8_last_key >= 0) {
            o->vp8_key_off = ((unsigned int)o->vp8_last_key + 1u - d.key) & 0x1Fu;
        }
    }
    if (d.pic_bits) {
        unsigned int mask = d.pic_bits == 15 ? 0x7FFFu : 0x7Fu;
        unsigned int pic = (d.pic + o->vp8_pic_off) & mask;
        if (o->vp8_last_pic < 0 ||
            newer_masked(pic, (unsigned int)o->vp8_last_pic & mask, mask)) {
            o->vp8_last_pic = (int)pic;
        }
    }
    if (d.tl0_at >= 0) {
        unsigned int tl0 = (d.tl0 + o->vp8_tl0_off) & 0xFFu;
        if (o->vp8_last_tl0 < 0 || newer_masked(tl0, (unsigned int)o->vp8_last_tl0, 0xFFu)) {
            o->vp8_last_tl0 = (int)tl0;
        }
    }
    if (d.key_at >= 0) {
        unsigned int key = (d.key + o->vp8_key_off) & 0x1Fu;
        if (o->vp8_last_key < 0 || newer_masked(key, (unsigned int)o->vp8_last_key, 0x1Fu)) {
            o->vp8_last_key = (int)key;
        }
    }
    *pic_off = o->vp8_pic_off;
    *tl0_off = o->vp8_tl0_off;
    *key_off = o->vp8_key_off;
}

/* Apply a slot's VP8 offsets to the payload written at p (n bytes). */
static void
vp8_apply(unsigned char *p, Py_ssize_t n, const CacheSlot *c)
{
    unsigned int key_off = (unsigned int)c->flags >> SLOT_KEY_SHIFT;
    if (c->vp8_pic_off == 0 && c->vp8_tl0_off == 0 && key_off == 0) {
        return;
    }
    Vp8Desc d;
    if (vp8_parse(p, n, &d) < 0) {
        return;
    }
    if (d.pic_bits == 15) {
        unsigned int pic = (d.pic + c->vp8_pic_off) & 0x7FFFu;
        p[d.pic_at] = (unsigned char)(0x80 | (pic >> 8));
        p[d.pic_at + 1] = (unsigned char)pic;
    } else if (d.pic_bits == 7) {
        p[d.pic_at] = (unsigned char)((d.pic + c->vp8_pic_off) & 0x7Fu);
    }
    if (d.tl0_at >= 0) {
        p[d.tl0_at] = (unsigned char)(d.tl0 + c->vp8_tl0_off);
    }
    if (d.key_at >= 0) {
        p[d.key_at] = (unsigned char)((p[d.key_at] & 0xE0) | ((d.key + key_off) & 0x1Fu));
    }
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
Py_ssize_t
fp_slot_len(const OutputObject *o, const CacheSlot *c)
{
    Py_ssize_t payload = PyBytes_GET_SIZE(c->src) - (Py_ssize_t)c->payload_off;
    if (c->flags & SLOT_WITH_EXT) {
        return 16 + ext_block_len(o, c->flags) + payload;
    }
    return 12 + payload;
}

/* Write the packet of slot c into w (slot_len bytes). */
void
fp_slot_write(const OutputObject *o, const CacheSlot *c, unsigned char *w)
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
        vp8_apply(w + h, payload, c);
    }
}

/* The packet of slot c as a new bytes object. */
PyObject *
fp_slot_packet(const OutputObject *o, const CacheSlot *c)
{
    PyObject *pkt = PyBytes_FromStringAndSize(NULL, fp_slot_len(o, c));
    if (pkt != NULL) {
        fp_slot_write(o, c, (unsigned char *)PyBytes_AS_STRING(pkt));
    }
    return pkt;
}

/* OutputStream.build: the cache slot now holding the packet to send, or NULL when
   nothing is sent (from before the last resynchronisation, or too large). */
const CacheSlot *
fp_build(OutputObject *o, const Inbound *in)
{
    unsigned int seq = in->seq, ts = in->ts;
    unsigned int pic_off = 0, tl0_off = 0, key_off = 0;
    if (o->vp8) { /* before the checks below, as the twin rewrites before build */
        vp8_track(o, in->payload, in->payload_len, &pic_off, &tl0_off, &key_off);
    }
    unsigned int floor = o->started_at_seq & 0xFFFFu;
    if (o->resync) {
        o->seq_offset = (o->next_seq - seq) & 0xFFFFu;
        if (o->rebase_ts && o->packets) {
            o->ts_offset = o->last_rtp_ts + o->rebase_ts - ts;
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
    CacheSlot *c = &o->cache[out_seq & o->cache_mask];
    Py_INCREF(in->src);
    Py_XSETREF(c->src, in->src);
    c->out_ts = out_ts;
    c->payload_off =
        (unsigned short)(in->payload - (const unsigned char *)PyBytes_AS_STRING(in->src));
    c->vp8_pic_off = (unsigned short)pic_off;
    c->vp8_tl0_off = (unsigned char)tl0_off;
    c->out_seq = (unsigned short)out_seq;
    c->audio_level = in->audio_level != NULL ? in->audio_level[0] : 0;
    if (in->ast != NULL) {
        memcpy(c->ast, in->ast, 3);
    }
    c->flags = (unsigned char)(flags | (key_off << SLOT_KEY_SHIFT));
    o->packets += 1;
    o->octets += (unsigned long long)in->payload_len;
    o->last_rtp_ts = out_ts;
    return c;
}

/*
 * RxSession: SRTP/SRTCP unprotect on a connection's inbound libsrtp session (the receive
 * side of issue 13). Like Target's protect, it calls the srtp_unprotect /
 * srtp_unprotect_rtcp of the libsrtp copy inside pylibsrtp on the very srtp_t aiortc
 * created from the DTLS keys (RTCDtlsTransport._rx_srtp), so the replay window is the
 * one aiortc's own receive path uses. Same contract as pylibsrtp's Session.unprotect:
 * a packet longer than its 1500-byte buffer is refused, a libsrtp error refuses the
 * packet; a refused packet gives None (pylibsrtp raises).
 */
#include "fastpath.h"

/* pylibsrtp's Session buffer: it refuses longer packets (ValueError) */
#define RX_MAX_BYTES 1500

typedef int (*unprotect_fn)(void *session, void *buf, int *len);

typedef struct {
    PyObject_HEAD
    void *session;          /* libsrtp srtp_t of the connection's inbound SRTP */
    unprotect_fn rtp_fn;    /* srtp_unprotect */
    unprotect_fn rtcp_fn;   /* srtp_unprotect_rtcp */
    PyObject *keep;         /* the pylibsrtp Session owning session: kept alive */
    unsigned long long refused;
} RxSessionObject;

static int
RxSession_traverse(RxSessionObject *self, visitproc visit, void *arg)
{
    Py_VISIT(self->keep);
    return 0;
}

static int
RxSession_clear_refs(RxSessionObject *self)
{
    self->session = NULL;
    self->rtp_fn = NULL;
    self->rtcp_fn = NULL;
    Py_CLEAR(self->keep);
    return 0;
}

static void
RxSession_dealloc(RxSessionObject *self)
{
    PyObject_GC_UnTrack(self);
    RxSession_clear_refs(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int
RxSession_init(RxSessionObject *self, PyObject *args, PyObject *kwds)
{
    unsigned long long session, rtp_fn, rtcp_fn;
    PyObject *keep;

    if (kwds != NULL && PyDict_GET_SIZE(kwds) != 0) {
        PyErr_SetString(PyExc_TypeError, "RxSession takes positional arguments only");
        return -1;
    }
    if (!PyArg_ParseTuple(args, "KKKO", &session, &rtp_fn, &rtcp_fn, &keep)) {
        return -1;
    }
    if (session == 0 || rtp_fn == 0 || rtcp_fn == 0) {
        PyErr_SetString(PyExc_ValueError, "invalid session or function");
        return -1;
    }
    Py_INCREF(keep);
    Py_XSETREF(self->keep, keep);
    self->session = (void *)(uintptr_t)session;
    self->rtp_fn = (unprotect_fn)(uintptr_t)rtp_fn;
    self->rtcp_fn = (unprotect_fn)(uintptr_t)rtcp_fn;
    return 0;
}

static PyObject *
rx_process(RxSessionObject *self, PyObject *data, int rtcp)
{
    /* aligned: libsrtp reads the header as 32-bit words */
    uint64_t buf[(RX_MAX_BYTES + 7) / 8];

    if (!PyBytes_Check(data)) {
        PyErr_SetString(PyExc_TypeError, "packet must be bytes");
        return NULL;
    }
    unprotect_fn fn = rtcp ? self->rtcp_fn : self->rtp_fn;
    Py_ssize_t n = PyBytes_GET_SIZE(data);
    if (self->session == NULL || fn == NULL || n > RX_MAX_BYTES) {
        self->refused++;
        Py_RETURN_NONE;
    }
    memcpy(buf, PyBytes_AS_STRING(data), (size_t)n);
    int len = (int)n;
    if (fn(self->session, buf, &len) != 0 || len < 0 || len > n) {
        self->refused++;
        Py_RETURN_NONE;
    }
    return PyBytes_FromStringAndSize((const char *)buf, len);
}

static PyObject *
RxSession_rtp(RxSessionObject *self, PyObject *data)
{
    return rx_process(self, data, 0);
}

static PyObject *
RxSession_rtcp(RxSessionObject *self, PyObject *data)
{
    return rx_process(self, data, 1);
}

static PyMethodDef RxSession_methods[] = {
    {"rtp", (PyCFunction)RxSession_rtp, METH_O,
     "rtp(packet): the SRTP packet unprotected, or None when libsrtp refuses it"},
    {"rtcp", (PyCFunction)RxSession_rtcp, METH_O,
     "rtcp(packet): the SRTCP packet unprotected, or None when libsrtp refuses it"},
    {NULL, NULL, 0, NULL},
};

static PyMemberDef RxSession_members[] = {
    {"refused", T_ULONGLONG, offsetof(RxSessionObject, refused), READONLY,
     "packets refused (authentication, replay, malformed, too long)"},
    {NULL, 0, 0, 0, NULL},
};

PyTypeObject fp_RxSessionType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "mediaserver.sfu._fastpath.RxSession",
    .tp_basicsize = sizeof(RxSessionObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "RxSession(session, srtp_unprotect, srtp_unprotect_rtcp, keep): one "
              "connection's inbound SRTP session.",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)RxSession_init,
    .tp_dealloc = (destructor)RxSession_dealloc,
    .tp_traverse = (traverseproc)RxSession_traverse,
    .tp_clear = (inquiry)RxSession_clear_refs,
    .tp_methods = RxSession_methods,
    .tp_members = RxSession_members,
};

/* Target: one subscriber connection's libsrtp session, socket and destination. */
#include "fastpath.h"

/* ---- Target: where one subscriber connection's packets go ------------------------ */



static int
Target_traverse(TargetObject *self, visitproc visit, void *arg)
{
    Py_VISIT(self->keep);
    return 0;
}

void
fp_target_close_fd(TargetObject *self)
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
    fp_target_close_fd(self);
    return 0;
}

static void
Target_dealloc(TargetObject *self)
{
    PyObject_GC_UnTrack(self);
    Target_clear_refs(self);
    fp_aead_free(self->aead);
    self->aead = NULL;
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
    fp_target_close_fd(self);
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
Target_set_aead(TargetObject *self, PyObject *arg)
{
    Py_buffer key;
    if (PyObject_GetBuffer(arg, &key, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    Aead *a = self->aead;
    if (a != NULL && a->master_len == key.len && memcmp(a->master, key.buf, (size_t)key.len) == 0) {
        PyBuffer_Release(&key); /* the same keys: keep the packet indexes */
        Py_RETURN_NONE;
    }
    Aead *made = fp_aead_new((const unsigned char *)key.buf, key.len);
    PyBuffer_Release(&key);
    if (made == NULL) {
        return NULL;
    }
    fp_aead_free(self->aead);
    self->aead = made;
    Py_RETURN_NONE;
}

static PyObject *
Target_protect_rtp(TargetObject *self, PyObject *arg)
{
    if (self->aead == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "no native SRTP on this target (set_aead)");
        return NULL;
    }
    Py_buffer in;
    if (PyObject_GetBuffer(arg, &in, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    if (in.len > SLOT_BYTES - 16) {
        PyBuffer_Release(&in);
        PyErr_SetString(PyExc_ValueError, "RTP packet too large");
        return NULL;
    }
    PyObject *out = PyBytes_FromStringAndSize(NULL, in.len + 16);
    if (out == NULL) {
        PyBuffer_Release(&in);
        return NULL;
    }
    unsigned char *p = (unsigned char *)PyBytes_AS_STRING(out);
    memcpy(p, in.buf, (size_t)in.len);
    int len = (int)in.len;
    PyBuffer_Release(&in);
    if (fp_aead_protect(self->aead, p, &len) != 0) {
        Py_DECREF(out);
        PyErr_SetString(PyExc_ValueError, "SRTP protect refused the packet");
        return NULL;
    }
    return out;
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

static PyObject *
Target_get_aead(TargetObject *self, void *closure)
{
    return PyBool_FromLong(self->aead != NULL);
}

static PyMethodDef Target_methods[] = {
    {"set", (PyCFunction)Target_set, METH_VARARGS,
     "set(session, protect, keep, fd, family, host, port): send natively from now on"},
    {"clear", (PyCFunction)Target_clear, METH_NOARGS,
     "Forget the session and socket: packets go back to Python (native SRTP stays)"},
    {"set_aead", (PyCFunction)Target_set_aead, METH_O,
     "set_aead(master_key_and_salt): protect RTP natively (AES-128/256-GCM, 28 or 44\n"
     "bytes) instead of with the session; the same keys again keep the state"},
    {"protect_rtp", (PyCFunction)Target_protect_rtp, METH_O,
     "protect_rtp(packet) -> SRTP packet with the native state (ValueError: refused)"},
    {NULL, NULL, 0, NULL},
};

static PyMemberDef Target_members[] = {
    {"errors", T_ULONGLONG, offsetof(TargetObject, errors), READONLY,
     "protect or send failures"},
    {NULL, 0, 0, 0, NULL},
};

static PyGetSetDef Target_getset[] = {
    {"ready", (getter)Target_get_ready, NULL, "True when packets are sent natively", NULL},
    {"aead", (getter)Target_get_aead, NULL, "True when RTP is protected natively", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

PyTypeObject fp_TargetType = {
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

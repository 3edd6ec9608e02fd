/*
 * Shared definitions of the native forwarding path (see route.c for the overview).
 */
#ifndef MEDIASERVER_FASTPATH_H
#define MEDIASERVER_FASTPATH_H

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
#define CACHE_SIZE 512       /* slots of a video output's NACK cache (a power of two) */
#define AUDIO_CACHE_SIZE 64  /* an audio output's (NACK is not offered for audio) */
/* Clear packet plus the largest SRTP trailer libsrtp may append (tag + MKI). */
#define SLOT_BYTES (MAX_PACKET_BYTES + 16 + 128)
#define MAX_EXT_PREFIX 17 /* one header byte + a mid of at most 16 bytes */

#define CODEC_OTHER 0
#define CODEC_VP8 1
#define CODEC_H264 2

typedef int (*protect_fn)(void *session, void *buf, int *len);

/* Native SRTP for the AEAD (AES-GCM) profiles, aead.c: one per connection. */
typedef struct {
    unsigned int ssrc;
    unsigned long long index; /* highest packet index sent: ROC << 16 | SEQ */
} AeadStream;

typedef struct {
    void *ctx;                  /* OpenSSL EVP_CIPHER_CTX holding the session key */
    unsigned char salt[12];     /* session salt */
    unsigned char master[44];   /* master key + salt it came from (set twice: same?) */
    Py_ssize_t master_len;
    AeadStream *streams;        /* per SSRC, scanned */
    Py_ssize_t n_streams;
    Py_ssize_t cap_streams;
} Aead;

int fp_aead_available(void);
const char *fp_aead_unavailable_reason(void);
Aead *fp_aead_new(const unsigned char *master, Py_ssize_t len); /* NULL: exception set */
void fp_aead_free(Aead *a);
/* Protect RTP in place (room for 16 more bytes after *len); 0 ok, -1 refused. */
int fp_aead_protect(Aead *a, unsigned char *p, int *len);

typedef struct {
    PyObject_HEAD
    void *session;      /* libsrtp srtp_t of the connection's outbound SRTP */
    protect_fn protect; /* srtp_protect of the same libsrtp copy */
    PyObject *keep;     /* the object owning session (pylibsrtp Session): kept alive */
    Aead *aead;         /* set: RTP is protected natively (AES-GCM), not by session;
                           kept across clear(): the packet indexes must never restart */
    int fd;             /* our own duplicate of the socket; -1: packets go back to Python */
    dev_t sock_dev;     /* which socket it is (several targets share the UDP mux's) */
    ino_t sock_ino;
    struct sockaddr_storage addr;
    socklen_t addrlen;
    unsigned long long errors;
} TargetObject;

#define SLOT_HAS_AL 1
#define SLOT_HAS_AST 2
#define SLOT_WITH_EXT 4

/* What one sent packet was made of: enough to write it again, byte for byte. 24 bytes:
   a video output has 512 of these. */
typedef struct {
    PyObject *src;              /* the inbound packet (bytes), shared; NULL: empty slot */
    unsigned int out_ts;
    unsigned short payload_off; /* where the payload starts in src (route refuses more) */
    unsigned short out_seq;
    unsigned short vp8_pic_off; /* VP8 descriptor offsets applied (simulcast outputs) */
    unsigned char audio_level;
    unsigned char ast[3];
    unsigned char flags;        /* SLOT_* in bits 0-2; bits 3-7: the VP8 KEYIDX offset */
    unsigned char vp8_tl0_off;
} CacheSlot;

#define SLOT_KEY_SHIFT 3
#define MAX_PAYLOAD_OFFSET 0xFFFF /* a UDP datagram is smaller; route refuses more */
_Static_assert(sizeof(void *) != 8 || sizeof(CacheSlot) == 24, "CacheSlot grew");

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
    /* VP8 descriptor continuity across simulcast layer switches (vp8rewrite.py's
       Vp8Rewriter, same rules): offsets added to PictureID (15 bits), TL0PICIDX and
       KEYIDX, and the last values sent (-1: none yet) */
    char vp8;        /* rewrite (set from Python for simulcast VP8 outputs) */
    char vp8_rebase; /* the next parseable packet comes from another layer */
    unsigned int vp8_pic_off, vp8_tl0_off, vp8_key_off;
    int vp8_last_pic, vp8_last_tl0, vp8_last_key;
    /* resynchronisation state (same rules as OutputStream.build) */
    unsigned int next_seq;
    unsigned int started_at_seq;
    char resync;
    unsigned int rebase_ts; /* timestamp step to the next source; 0: no rebase */
    /* control flags */
    char active;
    char waiting_keyframe;
    char python_send; /* always hand packets back to Python (test hooks, taps) */
    /* counters */
    unsigned long long packets;
    unsigned long long octets;
    unsigned int last_rtp_ts;
    PyObject *target; /* TargetObject or NULL */
    CacheSlot *cache;        /* cache_mask + 1 slots (PyMem), allocated by tp_new */
    unsigned int cache_mask;
} OutputObject;

typedef struct {
    PyObject *src; /* the packet (bytes) */
    unsigned char b0, b1;
    unsigned int seq, ts;
    const unsigned char *audio_level; /* NULL: absent */
    const unsigned char *ast;         /* 3 bytes, NULL: not computed */
    const unsigned char *payload;
    Py_ssize_t payload_len;
} Inbound;

extern PyTypeObject fp_TargetType;
extern PyTypeObject fp_OutputType;
extern PyTypeObject fp_RxSessionType; /* unprotect.c */

/* target.c */
void fp_target_close_fd(TargetObject *self);

/* output.c: the packet an output sends for a cache slot, and OutputStream.build */
Py_ssize_t fp_slot_len(const OutputObject *o, const CacheSlot *c);
void fp_slot_write(const OutputObject *o, const CacheSlot *c, unsigned char *w);
PyObject *fp_slot_packet(const OutputObject *o, const CacheSlot *c);
const CacheSlot *fp_build(OutputObject *o, const Inbound *in);

static inline int
seq_newer(unsigned int a, unsigned int b)
{
    return a != b && ((a - b) & 0xFFFFu) < 0x8000u;
}

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

#endif

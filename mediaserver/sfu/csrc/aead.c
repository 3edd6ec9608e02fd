/*
 * SRTP protect for the AEAD profiles (RFC 7714: AEAD_AES_128_GCM, AEAD_AES_256_GCM),
 * natively, for the RTP of one subscriber connection.
 *
 * Why: libsrtp 2.x (the copy pylibsrtp ships, built without optimisation) finds a
 * packet's stream by walking a linked list of every SSRC the session has protected,
 * keeps a 1024-bit replay window per stream that it shifts bit by bit, and goes through
 * several layers per packet; at full room 25 that was about a quarter of the server's
 * CPU, most of it not AES. Here: one AES-GCM context per connection (OpenSSL's EVP, from
 * the libcrypto.so.3 already in the process, looked up with dlopen: no build-time
 * dependency), and per SSRC only the packet index, in a short array.
 *
 * Byte for byte what libsrtp produces (the tests compare both):
 * - session key and salt: the SRTP KDF (RFC 3711 4.3.1, kdr 0; RFC 7714 11): AES-CTR
 *   under the master key from IV = master salt (12 bytes, zero-padded to 14) || 00 00,
 *   byte 7 XOR the label (0: encryption key, 2: salt);
 * - packet index: libsrtp's sender estimate (srtp_rdbx_estimate_index /
 *   srtp_index_guess) from the highest index sent; an index more than 1023 behind it is
 *   refused, as libsrtp does with aiortc's window of 1024 (repeats are allowed);
 * - IV = (00 00 || SSRC || ROC || SEQ) XOR session salt; AAD = the RTP header up to the
 *   payload (CSRCs and extension block included); 16-byte tag appended.
 *
 * RTCP is not done here: SRTCP has its own keys and index and stays with libsrtp.
 */
#include "fastpath.h"

#include <dlfcn.h>

#define EVP_CTRL_AEAD_GET_TAG 0x10
#define AEAD_TAG_BYTES 16
#define AEAD_SALT_BYTES 12
#define REPLAY_WINDOW 1024 /* aiortc's window_size: older indexes are refused */

/* The few EVP functions used (OpenSSL 3 ABI; contexts and ciphers opaque). */
static struct {
    int state; /* 0: not tried, 1: loaded, -1: unavailable */
    void *(*ctx_new)(void);
    void (*ctx_free)(void *ctx);
    const void *(*aes_128_gcm)(void);
    const void *(*aes_256_gcm)(void);
    const void *(*aes_128_ctr)(void);
    const void *(*aes_256_ctr)(void);
    int (*init)(void *ctx, const void *cipher, void *engine, const unsigned char *key,
                const unsigned char *iv);
    int (*update)(void *ctx, unsigned char *out, int *outl, const unsigned char *in, int inl);
    int (*final)(void *ctx, unsigned char *out, int *outl);
    int (*ctrl)(void *ctx, int type, int arg, void *ptr);
} evp;

static const char *evp_error = "not loaded";

int
fp_aead_available(void)
{
    if (evp.state != 0) {
        return evp.state > 0;
    }
    evp.state = -1;
    void *h = dlopen("libcrypto.so.3", RTLD_NOW | RTLD_LOCAL);
    if (h == NULL) {
        evp_error = "libcrypto.so.3 not found";
        return 0;
    }
#define FIND(field, name)                                                                     \
    do {                                                                                      \
        *(void **)(&evp.field) = dlsym(h, name);                                              \
        if (evp.field == NULL) {                                                              \
            evp_error = "libcrypto.so.3 lacks " name;                                         \
            return 0;                                                                         \
        }                                                                                     \
    } while (0)
    FIND(ctx_new, "EVP_CIPHER_CTX_new");
    FIND(ctx_free, "EVP_CIPHER_CTX_free");
    FIND(aes_128_gcm, "EVP_aes_128_gcm");
    FIND(aes_256_gcm, "EVP_aes_256_gcm");
    FIND(aes_128_ctr, "EVP_aes_128_ctr");
    FIND(aes_256_ctr, "EVP_aes_256_ctr");
    FIND(init, "EVP_EncryptInit_ex");
    FIND(update, "EVP_EncryptUpdate");
    FIND(final, "EVP_EncryptFinal_ex");
    FIND(ctrl, "EVP_CIPHER_CTX_ctrl");
#undef FIND
    evp.state = 1;
    evp_error = NULL;
    return 1;
}

const char *
fp_aead_unavailable_reason(void)
{
    fp_aead_available();
    return evp_error;
}

/* The SRTP KDF (kdr 0): out_len bytes of AES-CTR keystream for label. */
static int
kdf(const unsigned char *master_key, int key_len, const unsigned char *master_salt,
    unsigned char label, unsigned char *out, int out_len)
{
    unsigned char iv[16] = {0};
    unsigned char zeros[32] = {0};
    int n = 0, fin = 0;
    memcpy(iv, master_salt, AEAD_SALT_BYTES); /* bytes 12-13: the salt's zero padding */
    iv[7] ^= label;
    void *ctx = evp.ctx_new();
    if (ctx == NULL) {
        return -1;
    }
    int ok = evp.init(ctx, key_len == 16 ? evp.aes_128_ctr() : evp.aes_256_ctr(), NULL,
                      master_key, iv) == 1 &&
             out_len <= (int)sizeof(zeros) && evp.update(ctx, out, &n, zeros, out_len) == 1 &&
             n == out_len && evp.final(ctx, out + n, &fin) == 1;
    evp.ctx_free(ctx);
    return ok ? 0 : -1;
}

Aead *
fp_aead_new(const unsigned char *master, Py_ssize_t len)
{
    int key_len = len == 16 + AEAD_SALT_BYTES ? 16 : len == 32 + AEAD_SALT_BYTES ? 32 : 0;
    if (key_len == 0) {
        PyErr_SetString(PyExc_ValueError, "an AEAD master key and salt is 28 or 44 bytes");
        return NULL;
    }
    if (!fp_aead_available()) {
        PyErr_Format(PyExc_RuntimeError, "native SRTP unavailable: %s", evp_error);
        return NULL;
    }
    Aead *a = PyMem_Calloc(1, sizeof(Aead));
    if (a == NULL) {
        PyErr_NoMemory();
        return NULL;
    }
    memcpy(a->master, master, (size_t)len);
    a->master_len = len;
    unsigned char session_key[32];
    if (kdf(master, key_len, master + key_len, 0x00, session_key, key_len) != 0 ||
        kdf(master, key_len, master + key_len, 0x02, a->salt, AEAD_SALT_BYTES) != 0 ||
        (a->ctx = evp.ctx_new()) == NULL ||
        evp.init(a->ctx, key_len == 16 ? evp.aes_128_gcm() : evp.aes_256_gcm(), NULL,
                 session_key, NULL) != 1) {
        memset(session_key, 0, sizeof(session_key));
        fp_aead_free(a);
        PyErr_SetString(PyExc_RuntimeError, "native SRTP: key set-up failed");
        return NULL;
    }
    memset(session_key, 0, sizeof(session_key));
    return a;
}

void
fp_aead_free(Aead *a)
{
    if (a == NULL) {
        return;
    }
    if (a->ctx != NULL) {
        evp.ctx_free(a->ctx);
    }
    PyMem_Free(a->streams);
    memset(a, 0, sizeof(*a)); /* the keys */
    PyMem_Free(a);
}

/* The highest index sent on ssrc (a new stream starts at 0, as libsrtp's). */
static unsigned long long *
stream_index(Aead *a, unsigned int ssrc)
{
    AeadStream *s = a->streams;
    for (Py_ssize_t i = 0, n = a->n_streams; i < n; i++) {
        if (s[i].ssrc == ssrc) {
            return &s[i].index;
        }
    }
    if (a->n_streams == a->cap_streams) {
        Py_ssize_t cap = a->cap_streams ? a->cap_streams * 2 : 8;
        AeadStream *grown = PyMem_Realloc(a->streams, (size_t)cap * sizeof(AeadStream));
        if (grown == NULL) {
            return NULL;
        }
        a->streams = grown;
        a->cap_streams = cap;
    }
    AeadStream *e = &a->streams[a->n_streams++];
    e->ssrc = ssrc;
    e->index = 0;
    return &e->index;
}

/* libsrtp's srtp_rdbx_estimate_index: the index of seq s, and its distance to local. */
static long long
estimate_index(unsigned long long local, unsigned int s, unsigned long long *guess)
{
    if (local <= 0x8000u) {
        *guess = s;
        return (long long)s - (long long)local;
    }
    unsigned int local_roc = (unsigned int)(local >> 16);
    int local_seq = (int)(local & 0xFFFFu);
    int seq = (int)s;
    unsigned int roc;
    long long difference;
    if (local_seq < 0x8000) {
        if (seq - local_seq > 0x8000) {
            roc = local_roc - 1;
            difference = seq - local_seq - 0x10000;
        } else {
            roc = local_roc;
            difference = seq - local_seq;
        }
    } else if (local_seq - 0x8000 > seq) {
        roc = local_roc + 1;
        difference = seq - local_seq + 0x10000;
    } else {
        roc = local_roc;
        difference = seq - local_seq;
    }
    *guess = ((unsigned long long)roc << 16) | (unsigned int)seq;
    return difference;
}

int
fp_aead_protect(Aead *a, unsigned char *p, int *len)
{
    int n = *len;
    if (n < 12) {
        return -1;
    }
    int hdr = 12 + 4 * (p[0] & 0x0F);
    if (p[0] & 0x10) {
        if (hdr + 4 > n) {
            return -1;
        }
        hdr += 4 + 4 * ((p[hdr + 2] << 8) | p[hdr + 3]);
    }
    if (hdr > n) {
        return -1;
    }
    unsigned int seq = ((unsigned int)p[2] << 8) | p[3];
    unsigned int ssrc = ((unsigned int)p[8] << 24) | ((unsigned int)p[9] << 16) |
                        ((unsigned int)p[10] << 8) | p[11];
    unsigned long long *highest = stream_index(a, ssrc);
    if (highest == NULL) {
        return -1;
    }
    unsigned long long index;
    long long delta = estimate_index(*highest, seq, &index);
    if (delta <= -REPLAY_WINDOW) {
        return -1; /* libsrtp: srtp_err_status_replay_old */
    }
    unsigned char iv[12] = {0};
    memcpy(iv + 2, p + 8, 4); /* SSRC */
    put32(iv + 6, (unsigned int)(index >> 16));
    put16(iv + 10, (unsigned int)(index & 0xFFFFu));
    for (int i = 0; i < 12; i++) {
        iv[i] ^= a->salt[i];
    }
    int out = 0, fin = 0;
    if (evp.init(a->ctx, NULL, NULL, NULL, iv) != 1 ||
        (hdr > 0 && evp.update(a->ctx, NULL, &out, p, hdr) != 1) ||
        (n > hdr && evp.update(a->ctx, p + hdr, &out, p + hdr, n - hdr) != 1) ||
        evp.final(a->ctx, p + n, &fin) != 1 ||
        evp.ctrl(a->ctx, EVP_CTRL_AEAD_GET_TAG, AEAD_TAG_BYTES, p + n) != 1) {
        return -1;
    }
    if (delta > 0) {
        *highest = index;
    }
    *len = n + AEAD_TAG_BYTES;
    return 0;
}

/* One file in and out of its stored form (see offline_file.h). */
#include "fs/offline_file.h"

#include <errno.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "codec/opaque.h"
#include "codec/stored.h"
#include "fs/fdio.h"

/* Streaming chunk of opaque files: a whole number of blocks. */
#define CHUNK_BYTES (256u * OPAQUE_BLOCK_BYTES)

static void wipe_free(uint8_t *p, size_t n)
{
    if (p) {
        sodium_memzero(p, n);
        free(p);
    }
}

int offline_identify(int fd, uint64_t stored_size, const pxc_keys *keys, offline_stored *st)
{
    uint8_t head[PXC_STORED_PEEK_BYTES];
    pxc_stored_info info;
    pxc_file_secrets s;
    size_t want = stored_size < sizeof head ? (size_t)stored_size : sizeof head;
    ssize_t r = fd_read_full(fd, head, want, 0);
    if (r < 0)
        return (int)r;
    if (pxc_stored_peek(head, (size_t)r, stored_size, &info) != 0)
        return -EBADMSG;
    if (pxc_stored_open_secrets(&info, keys, &s) != 0)
        return -EKEYREJECTED;
    memset(st, 0, sizeof *st);
    st->kind = info.kind;
    memcpy(st->file_id, info.file_id, sizeof st->file_id);
    memcpy(st->sealed, info.sealed, sizeof st->sealed);
    st->plain_size = info.plain_size;
    st->version = s.version;
    sodium_memzero(&s, sizeof s);
    return 0;
}

/* The whole of in, which holds exactly size bytes (it may not change meanwhile). */
static int read_whole(int in, uint64_t size, uint8_t **out, const char **why)
{
    uint8_t *buf = malloc(size ? (size_t)size : 1);
    if (!buf) {
        *why = "out of memory";
        return -ENOMEM;
    }
    ssize_t r = fd_read_full(in, buf, (size_t)size, 0);
    if (r != (ssize_t)size) {
        wipe_free(buf, (size_t)size);
        *why = r < 0 ? "cannot read it" : "it changed while being read";
        return r < 0 ? (int)r : -EAGAIN;
    }
    *out = buf;
    return 0;
}

/* An image candidate encoded whole under fresh secrets, written to out.  -ENOTSUP (and
 * *declined) when the codec declines: the caller stores the content opaque. */
static int encrypt_image(int kind, const uint8_t *plain, uint64_t size, int out,
                         const pxc_keys *keys, offline_stored *st, const char **declined,
                         const char **why)
{
    pxc_file_secrets s;
    pxc_stored_info info;
    uint8_t *stored = NULL;
    size_t stored_len = 0;
    pxc_secrets_fresh(&s);
    int rc = pxc_stored_encode(kind, plain, (size_t)size, keys, &s, &stored, &stored_len, declined);
    uint64_t version = s.version;
    sodium_memzero(&s, sizeof s);
    if (rc == 0 && (stored_len < PXC_STORED_PEEK_BYTES ||
                    pxc_stored_peek(stored, PXC_STORED_PEEK_BYTES, stored_len, &info) != 0 ||
                    info.kind != kind || info.plain_size != size)) {
        rc = -EPROTO;
        *declined = "stored form does not identify itself";
    }
    if (rc != 0) {
        free(stored);
        if (rc == -ENOMEM) {
            *why = "out of memory";
            return rc;
        }
        return -ENOTSUP;
    }
    rc = fd_write_full(out, stored, stored_len, 0);
    free(stored);
    if (rc != 0) {
        *why = "cannot write the output";
        return rc;
    }
    memset(st, 0, sizeof *st);
    st->kind = kind;
    memcpy(st->file_id, info.file_id, sizeof st->file_id);
    memcpy(st->sealed, info.sealed, sizeof st->sealed);
    st->plain_size = size;
    st->version = version;
    return 0;
}

/* The opaque form of in's size bytes (or of `plain`, when the content is already in
 * memory), block by block. */
static int encrypt_opaque(int in, const uint8_t *plain, uint64_t size, int out,
                          const pxc_keys *keys, offline_stored *st, const char **why,
                          offline_tick_fn tick, void *arg)
{
    opaque_file of;
    uint8_t *buf = plain ? NULL : malloc(CHUNK_BYTES);
    int rc = 0;
    if (!plain && !buf) {
        *why = "out of memory";
        return -ENOMEM;
    }
    rc = opaque_create(&of, out, keys);
    if (rc != 0)
        *why = "cannot write the output";
    for (uint64_t off = 0; rc == 0 && off < size;) {
        size_t n = size - off < CHUNK_BYTES ? (size_t)(size - off) : CHUNK_BYTES;
        const uint8_t *src = plain ? plain + off : buf;
        if (!plain) {
            ssize_t r = fd_read_full(in, buf, n, (off_t)off);
            if (r != (ssize_t)n) {
                rc = r < 0 ? (int)r : -EAGAIN;
                *why = r < 0 ? "cannot read it" : "it shrank while being read";
                break;
            }
        }
        ssize_t w = opaque_write(&of, src, n, off);
        if (w != (ssize_t)n) {
            rc = w < 0 ? (int)w : -EIO;
            *why = "cannot write the output";
            break;
        }
        off += n;
        if (!plain && tick)
            tick(arg, n);
    }
    if (rc == 0) {
        memset(st, 0, sizeof *st);
        st->kind = PXC_KIND_OPAQUE;
        memcpy(st->file_id, of.secrets.file_id, sizeof st->file_id);
        memcpy(st->sealed, of.sealed, sizeof st->sealed);
        st->plain_size = of.plain_size;
        st->version = of.secrets.version;
    }
    opaque_close(&of);
    wipe_free(buf, CHUNK_BYTES);
    return rc;
}

int offline_encrypt_fd(int in, uint64_t size, int out, const pxc_keys *keys, offline_stored *st,
                       const char **declined, const char **why, offline_tick_fn tick, void *arg)
{
    uint8_t sig[8];
    *declined = NULL;
    *why = NULL;
    int kind = PXC_KIND_OPAQUE;
    if (size >= sizeof sig && fd_read_full(in, sig, sizeof sig, 0) == (ssize_t)sizeof sig)
        kind = pxc_stored_candidate_kind(sig, sizeof sig);
    if (kind != PXC_KIND_OPAQUE && size > PXC_STORED_MAX_IMAGE_FILE) {
        *declined = "too large to transform";
        kind = PXC_KIND_OPAQUE;
    }
    if (kind == PXC_KIND_OPAQUE)
        return encrypt_opaque(in, NULL, size, out, keys, st, why, tick, arg);

    /* Like the filesystem when the last writer closes an image: the whole plaintext,
     * encoded and verified by the codec, or else the opaque form of the same bytes. */
    uint8_t *plain = NULL;
    int rc = read_whole(in, size, &plain, why);
    if (rc == 0) {
        rc = encrypt_image(kind, plain, size, out, keys, st, declined, why);
        if (rc == -ENOTSUP && ftruncate(out, 0) == 0)
            rc = encrypt_opaque(in, plain, size, out, keys, st, why, tick, arg);
        else if (rc == -ENOTSUP)
            rc = -errno, *why = "cannot write the output";
    }
    wipe_free(plain, (size_t)size);
    if (rc == 0 && tick)
        tick(arg, size);
    return rc;
}

static int decrypt_opaque(int in, int out, const pxc_keys *keys, offline_stored *st,
                          const char **why, offline_tick_fn tick, void *arg)
{
    opaque_file of;
    int rc = opaque_open(&of, in, keys);
    if (rc != 0) {
        *why = rc == -EBADMSG ? "header fails authentication" : "cannot read it";
        return rc;
    }
    uint8_t *buf = malloc(CHUNK_BYTES);
    if (!buf) {
        opaque_close(&of);
        *why = "out of memory";
        return -ENOMEM;
    }
    st->plain_size = of.plain_size;
    st->version = of.secrets.version;
    for (uint64_t off = 0; off < of.plain_size;) {
        size_t n = of.plain_size - off < CHUNK_BYTES ? (size_t)(of.plain_size - off) : CHUNK_BYTES;
        ssize_t r = opaque_read(&of, buf, n, off);
        if (r != (ssize_t)n) {
            rc = r < 0 ? (int)r : -EBADMSG;
            *why = rc == -EBADMSG ? "stored data fails authentication" : "cannot read it";
            break;
        }
        if ((rc = fd_write_full(out, buf, n, (off_t)off)) != 0) {
            *why = "cannot write the output";
            break;
        }
        off += n;
        if (tick)
            tick(arg, n);
    }
    wipe_free(buf, CHUNK_BYTES);
    opaque_close(&of);
    return rc;
}

static int decrypt_image(int in, uint64_t stored_size, int out, const pxc_keys *keys,
                         const offline_stored *st, const char **why, offline_tick_fn tick,
                         void *arg)
{
    uint8_t *stored = NULL, *plain = NULL;
    size_t plain_len = 0;
    if (stored_size > PXC_STORED_MAX_STORED_BYTES) {
        *why = "stored image too large";
        return -EFBIG;
    }
    int rc = read_whole(in, stored_size, &stored, why);
    if (rc != 0)
        return rc;
    rc = pxc_stored_decode(st->kind, stored, (size_t)stored_size, keys, &plain, &plain_len);
    free(stored);
    if (rc == 0 && plain_len != st->plain_size)
        rc = -EBADMSG;
    if (rc != 0)
        *why = rc == -EBADMSG  ? "stored image fails authentication"
               : rc == -ENOMEM ? "out of memory"
                               : "cannot decode the stored image";
    if (rc == 0 && (rc = fd_write_full(out, plain, plain_len, 0)) != 0)
        *why = "cannot write the output";
    wipe_free(plain, plain_len);
    if (rc == 0 && tick)
        tick(arg, st->plain_size);
    return rc;
}

int offline_decrypt_fd(int in, uint64_t stored_size, int out, const pxc_keys *keys,
                       offline_stored *st, const char **why, offline_tick_fn tick, void *arg)
{
    *why = NULL;
    int rc = offline_identify(in, stored_size, keys, st);
    if (rc == -EBADMSG)
        *why = "not a pixcrypt file (or truncated)";
    else if (rc == -EKEYREJECTED)
        *why = "not a file of this volume, or its header is damaged";
    else if (rc != 0)
        *why = "cannot read it";
    if (rc != 0)
        return rc;
    if (st->kind == PXC_KIND_OPAQUE)
        return decrypt_opaque(in, out, keys, st, why, tick, arg);
    return decrypt_image(in, stored_size, out, keys, st, why, tick, arg);
}

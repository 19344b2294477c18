/* Opaque storage format: a header, then 4 KiB blocks sealed with XChaCha20-Poly1305.
 * Layout and rules are in opaque.h. */
#include "codec/opaque.h"

#include <errno.h>
#include <limits.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define H OPAQUE_HEADER_BYTES
#define B OPAQUE_BLOCK_BYTES
#define S OPAQUE_STORED_BLOCK_BYTES
#define OVERHEAD OPAQUE_BLOCK_OVERHEAD
#define HEADER_CLEAR_BYTES 32 /* magic .. file id: authenticated as AD of the sealed secrets */
#define AD_BYTES (PXC_FILE_ID_BYTES + 8 + 1)

/* ---- size arithmetic ---------------------------------------------------- */

/* Index of the last block of a file of plain size p (an empty file has block 0). */
static uint64_t last_block(uint64_t p)
{
    return p == 0 ? 0 : (p - 1) / B;
}

/* Plaintext bytes in block i of a file of plain size p (0 for blocks past the end). */
static size_t block_len(uint64_t i, uint64_t p)
{
    uint64_t start = i * B;
    if (start >= p)
        return 0;
    return p - start >= B ? B : (size_t)(p - start);
}

static off_t block_offset(uint64_t i)
{
    return (off_t)(H + i * S);
}

uint64_t opaque_stored_size(uint64_t p)
{
    if (p == 0)
        return H + OVERHEAD;
    uint64_t rem = p % B;
    return H + (p / B) * S + (rem ? rem + OVERHEAD : 0);
}

int opaque_plain_size(uint64_t stored, uint64_t *p)
{
    if (stored < H + OVERHEAD)
        return -EBADMSG;
    uint64_t c = stored - H, full = c / S, rem = c % S;
    if (rem == 0) {
        *p = full * B;
        return 0;
    }
    /* A torn block, or an empty final block after full ones: never written by us. */
    if (rem < OVERHEAD || (rem == OVERHEAD && full > 0))
        return -EBADMSG;
    *p = full * B + (rem - OVERHEAD);
    return 0;
}

/* ---- header ------------------------------------------------------------- */

static void header_clear_part(uint8_t out[HEADER_CLEAR_BYTES], const uint8_t file_id[16])
{
    memset(out, 0, HEADER_CLEAR_BYTES);
    memcpy(out, PXC_MAGIC, PXC_MAGIC_BYTES);
    out[8] = PXC_FORMAT_VERSION & 0xff;
    out[9] = PXC_FORMAT_VERSION >> 8;
    out[10] = PXC_KIND_OPAQUE;
    memcpy(out + 16, file_id, PXC_FILE_ID_BYTES);
}

int pxc_stored_kind(const uint8_t *head, size_t n)
{
    if (n < 16 || memcmp(head, PXC_MAGIC, PXC_MAGIC_BYTES) != 0)
        return -1;
    if ((head[8] | head[9] << 8) != PXC_FORMAT_VERSION)
        return -1;
    return head[10];
}

static ssize_t pread_full(int fd, void *buf, size_t n, off_t off)
{
    size_t done = 0;
    while (done < n) {
        ssize_t r = pread(fd, (char *)buf + done, n - done, off + (off_t)done);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (r == 0)
            break;
        done += (size_t)r;
    }
    return (ssize_t)done;
}

static int pwrite_full(int fd, const void *buf, size_t n, off_t off)
{
    size_t done = 0;
    while (done < n) {
        ssize_t r = pwrite(fd, (const char *)buf + done, n - done, off + (off_t)done);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        done += (size_t)r;
    }
    return 0;
}

static void derive_content_key(opaque_file *of, const pxc_keys *keys)
{
    pxc_file_subkey(of->key, keys, &of->secrets, PXC_SUBKEY_CONTENT);
}

/* ---- blocks ------------------------------------------------------------- */

static void block_ad(uint8_t ad[AD_BYTES], const opaque_file *of, uint64_t i, int final)
{
    memcpy(ad, of->secrets.file_id, PXC_FILE_ID_BYTES);
    for (int k = 0; k < 8; k++)
        ad[PXC_FILE_ID_BYTES + k] = (uint8_t)(i >> (8 * k));
    ad[PXC_FILE_ID_BYTES + 8] = (uint8_t) final;
}

/* Seals plen bytes into out (plen + OVERHEAD bytes); out already holds a fresh nonce. */
static void seal_block(const opaque_file *of, uint64_t i, int final, const uint8_t *plain,
                       size_t plen, uint8_t *out)
{
    uint8_t ad[AD_BYTES];
    block_ad(ad, of, i, final);
    crypto_aead_xchacha20poly1305_ietf_encrypt(out + OPAQUE_NONCE_BYTES, NULL, plain, plen, ad,
                                               sizeof ad, NULL, out, of->key);
}

static int all_zero(const uint8_t *p, size_t n)
{
    uint8_t acc = 0;
    for (size_t k = 0; k < n; k++)
        acc |= p[k];
    return acc == 0;
}

/* Opens stored block i (slen bytes at `in`) into out; plen = slen - OVERHEAD. */
static int open_block(const opaque_file *of, uint64_t i, int final, const uint8_t *in, size_t slen,
                      uint8_t *out)
{
    uint8_t ad[AD_BYTES];
    if (slen < OVERHEAD)
        return -EBADMSG;
    if (!final && slen == S && all_zero(in, S)) { /* a hole */
        memset(out, 0, B);
        return 0;
    }
    block_ad(ad, of, i, final);
    if (crypto_aead_xchacha20poly1305_ietf_decrypt(out, NULL, NULL, in + OPAQUE_NONCE_BYTES,
                                                   slen - OPAQUE_NONCE_BYTES, ad, sizeof ad, in,
                                                   of->key) != 0)
        return -EBADMSG;
    return 0;
}

/* Reads and opens block i of the current version into out (B bytes, zero-padded). */
static int load_block(const opaque_file *of, uint64_t i, uint8_t *out)
{
    uint64_t p = of->plain_size;
    size_t plen = block_len(i, p);
    uint8_t stored[S];

    memset(out, 0, B);
    if (i > last_block(p))
        return 0; /* past the end: zeros */
    ssize_t r = pread_full(of->fd, stored, plen + OVERHEAD, block_offset(i));
    if (r < 0)
        return (int)r;
    if ((size_t)r != plen + OVERHEAD)
        return -EBADMSG; /* shorter than its size says: truncated under us */
    return open_block(of, i, i == last_block(p), stored, plen + OVERHEAD, out);
}

/* ---- file-level operations ---------------------------------------------- */

static int write_header_and_empty_block(opaque_file *of, const pxc_keys *keys)
{
    uint8_t buf[H + OVERHEAD];

    header_clear_part(buf, of->secrets.file_id);
    pxc_secrets_seal(of->sealed, keys, &of->secrets, buf, HEADER_CLEAR_BYTES);
    memcpy(buf + HEADER_CLEAR_BYTES, of->sealed, PXC_SEALED_SECRETS_BYTES);
    randombytes_buf(buf + H, OPAQUE_NONCE_BYTES);
    seal_block(of, 0, 1, NULL, 0, buf + H);
    int rc = pwrite_full(of->fd, buf, sizeof buf, 0);
    if (rc == 0 && ftruncate(of->fd, sizeof buf) != 0)
        rc = -errno;
    if (rc == 0)
        of->plain_size = 0;
    return rc;
}

int opaque_create(opaque_file *of, int fd, const pxc_keys *keys)
{
    memset(of, 0, sizeof *of);
    of->fd = fd;
    pxc_secrets_fresh(&of->secrets);
    derive_content_key(of, keys);
    return write_header_and_empty_block(of, keys);
}

int opaque_open(opaque_file *of, int fd, const pxc_keys *keys)
{
    uint8_t hdr[H];
    struct stat st;

    memset(of, 0, sizeof *of);
    of->fd = fd;
    ssize_t r = pread_full(fd, hdr, sizeof hdr, 0);
    if (r < 0)
        return (int)r;
    if ((size_t)r != sizeof hdr || pxc_stored_kind(hdr, sizeof hdr) != PXC_KIND_OPAQUE)
        return -EBADMSG;
    for (int k = 11; k < 16; k++)
        if (hdr[k] != 0)
            return -EBADMSG;
    memcpy(of->secrets.file_id, hdr + 16, PXC_FILE_ID_BYTES);
    memcpy(of->sealed, hdr + HEADER_CLEAR_BYTES, PXC_SEALED_SECRETS_BYTES);
    if (pxc_secrets_open(&of->secrets, keys, of->sealed, hdr, HEADER_CLEAR_BYTES) != 0)
        return -EBADMSG;
    derive_content_key(of, keys);
    if (fstat(fd, &st) != 0)
        return -errno;
    return opaque_plain_size((uint64_t)st.st_size, &of->plain_size);
}

int opaque_refresh_size(opaque_file *of)
{
    struct stat st;
    if (fstat(of->fd, &st) != 0)
        return -errno;
    return opaque_plain_size((uint64_t)st.st_size, &of->plain_size);
}

void opaque_close(opaque_file *of)
{
    sodium_memzero(of, sizeof *of);
    of->fd = -1;
}

ssize_t opaque_read(const opaque_file *of, void *buf, size_t n, uint64_t off)
{
    uint64_t p = of->plain_size;
    if (off >= p || n == 0)
        return 0;
    uint64_t end = off + n < p ? off + n : p;
    uint64_t b0 = off / B, b1 = (end - 1) / B;
    size_t want = (size_t)(b1 - b0) * S + block_len(b1, p) + OVERHEAD;
    uint8_t *stored = malloc(want);
    uint8_t plain[B];
    int rc = 0;

    if (!stored)
        return -ENOMEM;
    ssize_t r = pread_full(of->fd, stored, want, block_offset(b0));
    if (r < 0)
        rc = (int)r;
    else if ((size_t)r != want)
        rc = -EBADMSG;
    for (uint64_t i = b0; rc == 0 && i <= b1; i++) {
        size_t plen = block_len(i, p);
        uint64_t bstart = i * B;
        size_t from = off > bstart ? (size_t)(off - bstart) : 0;
        size_t to = end - bstart < plen ? (size_t)(end - bstart) : plen;
        uint8_t *dst = (uint8_t *)buf + (bstart + from - off);
        int final = i == last_block(p);
        const uint8_t *in = stored + (i - b0) * S;

        if (from == 0 && to == B) {
            rc = open_block(of, i, final, in, plen + OVERHEAD, dst); /* straight into buf */
        } else {
            rc = open_block(of, i, final, in, plen + OVERHEAD, plain);
            if (rc == 0)
                memcpy(dst, plain + from, to - from);
        }
    }
    sodium_memzero(plain, sizeof plain);
    free(stored);
    return rc ? rc : (ssize_t)(end - off);
}

/* Rewrites the blocks that change when the file goes from plain size of->plain_size to
 * new_size while n bytes of buf land at off (n may be 0: a pure size change).  Blocks
 * that change: those the data touches, the new last block (length/final flag), and the
 * old last block if it stops being last.  Blocks in between that nobody wrote stay
 * holes. */
static int update_blocks(opaque_file *of, uint64_t new_size, const uint8_t *buf, size_t n,
                         uint64_t off)
{
    uint64_t old_size = of->plain_size;
    uint64_t old_last = last_block(old_size), new_last = last_block(new_size);
    uint64_t first = UINT64_MAX, last = 0; /* contiguous run of data blocks */
    uint64_t extra[2];
    int nextra = 0;

    if (n > 0) {
        first = off / B;
        last = (off + n - 1) / B;
    }
    /* Blocks outside the data run that must be rewritten. */
    if (new_size != old_size && !(n > 0 && new_last >= first && new_last <= last))
        extra[nextra++] = new_last;
    if (old_last < new_last && !(n > 0 && old_last >= first && old_last <= last))
        extra[nextra++] = old_last;

    /* Process the data run first, then the extra blocks, each as one pwrite. */
    for (int run = -1; run < nextra; run++) {
        uint64_t r0, r1;
        if (run < 0) {
            if (n == 0)
                continue;
            r0 = first;
            r1 = last;
        } else {
            r0 = r1 = extra[run];
        }
        size_t count = (size_t)(r1 - r0 + 1);
        uint8_t *out = malloc(count * (S + OPAQUE_NONCE_BYTES));
        uint8_t *nonces = out + count * S;
        uint8_t plain[B];
        size_t outlen = 0;
        int rc = 0;

        if (!out)
            return -ENOMEM;
        randombytes_buf(nonces, count * OPAQUE_NONCE_BYTES); /* one call for the whole run */
        for (uint64_t i = r0; i <= r1 && rc == 0; i++) {
            size_t nl = block_len(i, new_size);
            uint64_t bstart = i * B;
            const uint8_t *src;

            if (n > 0 && off <= bstart && off + n >= bstart + nl) {
                src = buf + (bstart - off); /* fully overwritten: no need for the old data */
            } else {
                rc = load_block(of, i, plain);
                if (rc != 0)
                    break;
                if (nl < B)
                    memset(plain + nl, 0, B - nl); /* bytes cut off by a shrink */
                if (n > 0 && off < bstart + nl && off + n > bstart) {
                    uint64_t from = off > bstart ? off : bstart;
                    uint64_t to = off + n < bstart + nl ? off + n : bstart + nl;
                    memcpy(plain + (from - bstart), buf + (from - off), to - from);
                }
                src = plain;
            }
            memcpy(out + (i - r0) * S, nonces + (i - r0) * OPAQUE_NONCE_BYTES, OPAQUE_NONCE_BYTES);
            seal_block(of, i, i == new_last, src, nl, out + (i - r0) * S);
            outlen = (i - r0) * S + nl + OVERHEAD;
        }
        sodium_memzero(plain, sizeof plain);
        if (rc == 0)
            rc = pwrite_full(of->fd, out, outlen, block_offset(r0));
        free(out);
        if (rc != 0)
            return rc;
    }
    if (new_size < old_size && ftruncate(of->fd, (off_t)opaque_stored_size(new_size)) != 0)
        return -errno;
    of->plain_size = new_size;
    return 0;
}

ssize_t opaque_write(opaque_file *of, const void *buf, size_t n, uint64_t off)
{
    if (n == 0)
        return 0;
    if (off > (uint64_t)INT64_MAX / 2 || n > SSIZE_MAX)
        return -EFBIG;
    uint64_t new_size = off + n > of->plain_size ? off + n : of->plain_size;
    int rc = update_blocks(of, new_size, buf, n, off);
    return rc ? rc : (ssize_t)n;
}

int opaque_truncate(opaque_file *of, uint64_t new_size, const pxc_keys *keys)
{
    if (new_size > (uint64_t)INT64_MAX / 2)
        return -EFBIG;
    if (new_size == of->plain_size)
        return 0;
    if (new_size == 0) {
        /* A rewrite from scratch: new file id and seed, as for a new file. */
        pxc_secrets_fresh(&of->secrets);
        derive_content_key(of, keys);
        return write_header_and_empty_block(of, keys);
    }
    return update_blocks(of, new_size, NULL, 0, 0);
}

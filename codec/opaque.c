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

void opaque_prepare(opaque_file *of, const pxc_keys *keys, const pxc_file_secrets *s)
{
    uint8_t clear[HEADER_CLEAR_BYTES];
    memset(of, 0, sizeof *of);
    of->fd = -1;
    of->secrets = *s;
    derive_content_key(of, keys);
    header_clear_part(clear, of->secrets.file_id);
    pxc_secrets_seal(of->sealed, keys, &of->secrets, clear, sizeof clear);
}

int opaque_write_prepared(opaque_file *of, int fd)
{
    uint8_t buf[H + OVERHEAD];
    of->fd = fd;
    header_clear_part(buf, of->secrets.file_id);
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

int opaque_create_from(opaque_file *of, int fd, const pxc_keys *keys, const pxc_file_secrets *s)
{
    opaque_prepare(of, keys, s);
    return opaque_write_prepared(of, fd);
}

int opaque_create(opaque_file *of, int fd, const pxc_keys *keys)
{
    pxc_file_secrets s;
    pxc_secrets_fresh(&s);
    int rc = opaque_create_from(of, fd, keys, &s);
    sodium_memzero(&s, sizeof s);
    return rc;
}

/* Reads and authenticates fd's header into *of (secrets, content key), not its size. */
static int open_header(opaque_file *of, int fd, const pxc_keys *keys)
{
    uint8_t hdr[H];

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
    return 0;
}

int opaque_open(opaque_file *of, int fd, const pxc_keys *keys)
{
    struct stat st;
    int rc = open_header(of, fd, keys);

    if (rc != 0)
        return rc;
    if (fstat(fd, &st) != 0)
        return -errno;
    rc = opaque_plain_size((uint64_t)st.st_size, &of->plain_size);
    /* An empty file is its final block alone, which no read looks at: check it here, or
     * a file cut down to its header and any 40 bytes would read as empty. */
    if (rc == 0 && of->plain_size == 0) {
        uint8_t none[B];
        rc = load_block(of, 0, none);
    }
    return rc;
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
        /* A rewrite from scratch: the next version, under a new seed. */
        pxc_file_secrets next = of->secrets;
        int fd = of->fd;
        pxc_secrets_renew(&next, of->secrets.version + 1);
        opaque_prepare(of, keys, &next);
        sodium_memzero(&next, sizeof next);
        return opaque_write_prepared(of, fd);
    }
    return update_blocks(of, new_size, NULL, 0, 0);
}

int opaque_set_version(opaque_file *of, const pxc_keys *keys, uint64_t version)
{
    uint8_t clear[HEADER_CLEAR_BYTES], sealed[PXC_SEALED_SECRETS_BYTES];
    uint64_t old = of->secrets.version;

    header_clear_part(clear, of->secrets.file_id);
    of->secrets.version = version;
    pxc_secrets_seal(sealed, keys, &of->secrets, clear, sizeof clear);
    /* One small write inside the first page: the header is old or new, never torn. */
    int rc = pwrite_full(of->fd, sealed, sizeof sealed, HEADER_CLEAR_BYTES);
    if (rc != 0) {
        of->secrets.version = old;
        return rc;
    }
    memcpy(of->sealed, sealed, sizeof sealed);
    return 0;
}

/* ---- checking and crash repair ------------------------------------------ */

#define VERIFY_RUN_BLOCKS 64

int opaque_verify(const opaque_file *of, uint64_t *bad_offset)
{
    uint64_t p = of->plain_size, off;
    size_t n;
    int rc = 0;

    *bad_offset = 0;
    if (p == 0) { /* still one final block to check */
        uint8_t one[B];
        rc = load_block(of, 0, one);
        sodium_memzero(one, sizeof one);
        return rc;
    }
    uint8_t *buf = malloc((size_t)VERIFY_RUN_BLOCKS * B);
    if (!buf)
        return -ENOMEM;
    for (off = 0; off < p && rc == 0; off += n) {
        n = p - off < (uint64_t)VERIFY_RUN_BLOCKS * B ? (size_t)(p - off)
                                                      : (size_t)VERIFY_RUN_BLOCKS * B;
        ssize_t r = opaque_read(of, buf, n, off);
        if (r == (ssize_t)n)
            continue;
        rc = r < 0 ? (int)r : -EBADMSG;
        *bad_offset = off;
        /* Read the run again block by block to name the bad one. */
        for (uint64_t o = off; o < off + n; o += B) {
            size_t k = off + n - o < B ? (size_t)(off + n - o) : B;
            if (opaque_read(of, buf, k, o) != (ssize_t)k) {
                *bad_offset = o;
                break;
            }
        }
    }
    sodium_memzero(buf, (size_t)VERIFY_RUN_BLOCKS * B);
    free(buf);
    return rc;
}

/* Reads a whole stored slot i and opens it (a hole reads as zeros). */
static int load_slot(const opaque_file *of, uint64_t i, int final, uint8_t *out)
{
    uint8_t stored[S];
    ssize_t r = pread_full(of->fd, stored, S, block_offset(i));
    if (r < 0)
        return (int)r;
    return r == S ? open_block(of, i, final, stored, S, out) : -EBADMSG;
}

/* Whether stored slot i (len bytes at in) holds data that authenticates, non-final or
 * final; holes do not count. */
static int slot_has_data(const opaque_file *of, uint64_t i, const uint8_t *in, size_t len,
                         uint8_t *scratch)
{
    if (len == S && all_zero(in, S))
        return 0;
    return (len == S && open_block(of, i, 0, in, len, scratch) == 0) ||
           (len >= OVERHEAD && open_block(of, i, 1, in, len, scratch) == 0);
}

int opaque_salvage(int fd, const pxc_keys *keys, uint64_t *kept)
{
    opaque_file of;
    struct stat st;
    uint8_t slot[S], plain[B];
    int rc = open_header(&of, fd, keys);

    *kept = 0;
    if (rc == 0 && fstat(fd, &st) != 0)
        rc = -errno;
    if (rc != 0) {
        opaque_close(&of);
        return rc;
    }
    uint64_t body = (uint64_t)st.st_size > H ? (uint64_t)st.st_size - H : 0;
    uint64_t nslots = (body + S - 1) / S, i;
    /* The leading blocks that authenticate as non-final (holes included); stop at a final
     * one (the file ends there: anything after it is a tail that never became part of
     * the file) or at the first bad one. */
    for (i = 0; i < nslots; i++) {
        size_t len = body - i * S < S ? (size_t)(body - i * S) : S;
        ssize_t r = pread_full(fd, slot, len, block_offset(i));
        if (r != (ssize_t)len) {
            rc = r < 0 ? (int)r : -EIO;
            break;
        }
        if (len == S && open_block(&of, i, 0, slot, len, plain) == 0)
            continue;
        if (len >= OVERHEAD && open_block(&of, i, 1, slot, len, plain) == 0) {
            *kept = i * B + (len - OVERHEAD);
            if (i + 1 < nslots && ftruncate(fd, block_offset(i) + (off_t)len) != 0)
                rc = -errno;
            goto done;
        }
        break;
    }
    /* A bad block at i: a torn tail only if nothing after it holds data. */
    for (uint64_t j = i + 1; rc == 0 && j < nslots; j++) {
        size_t len = body - j * S < S ? (size_t)(body - j * S) : S;
        if (pread_full(fd, slot, len, block_offset(j)) != (ssize_t)len)
            rc = -EIO;
        else if (slot_has_data(&of, j, slot, len, plain))
            rc = -EBADMSG;
    }
    if (rc != 0)
        goto done;
    /* Keep blocks 0..i-1, the last of them sealed again as final (before the cut, so that
     * an interrupted salvage can be run again). */
    uint8_t *out = slot;
    size_t plen = 0;
    uint64_t last = i > 0 ? i - 1 : 0;
    if (i > 0) {
        rc = load_slot(&of, last, 0, plain);
        plen = B;
    }
    if (rc == 0) {
        randombytes_buf(out, OPAQUE_NONCE_BYTES);
        seal_block(&of, last, 1, plain, plen, out);
        rc = pwrite_full(fd, out, plen + OVERHEAD, block_offset(last));
    }
    if (rc == 0 && ftruncate(fd, block_offset(last) + (off_t)(plen + OVERHEAD)) != 0)
        rc = -errno;
    if (rc == 0 && fsync(fd) != 0)
        rc = -errno;
    if (rc == 0)
        *kept = i > 0 ? i * B : 0;
done:
    sodium_memzero(plain, sizeof plain);
    opaque_close(&of);
    return rc;
}

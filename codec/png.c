/* PNG stored as PNG: encode, verify, decode, peek (stored format in png.h). */
#include "codec/png.h"

#include <errno.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "codec/bytes.h"
#include "codec/chaos.h"
#include "codec/cipher.h"
#include "codec/deflate_recipe.h"
#include "codec/opaque.h"
#include "codec/png_int.h"
#include "nn/nnvec.h"

#define PXCR_FIXED_BYTES (OPAQUE_HEADER_BYTES + 8 + 4) /* header, plain size, record length */
#define RECORD_NONCE_BYTES crypto_aead_xchacha20poly1305_ietf_NPUBBYTES
#define RECORD_TAG_BYTES crypto_aead_xchacha20poly1305_ietf_ABYTES
/* Largest record that still fits a chunk with the fixed fields and the MAC. */
#define RECORD_MAX (PNG_CHUNK_MAX - PXCR_FIXED_BYTES - PNG_MAC_BYTES)
/* Image data after the last row that encode keeps (in the record); more is declined. */
#define EXTRA_DATA_MAX (1u << 20)
/* Deflate cannot expand more than 1032:1 (258-byte matches in 2 bits); with slack for
 * the zlib header. */
#define INFLATE_RATIO_MAX 1032u

/* Writes a chunk of len data bytes at out (data already in place at out + 8 unless
 * data is given); returns the bytes written. */
static size_t put_chunk(uint8_t *out, const char type[4], const uint8_t *data, uint32_t len)
{
    png_put32(out, len);
    memcpy(out + 4, type, 4);
    if (data && len)
        memmove(out + 8, data, len);
    png_put32(out + 8 + len, png_chunk_crc(out, len));
    return (size_t)len + 12;
}

static uint32_t palette_modulus(const png_geom *g, size_t plte_len)
{
    if (g->color != 3)
        return 1u << g->depth;
    uint32_t entries = (uint32_t)(plte_len / 3), max = 1u << g->depth;
    return entries < max ? entries : max;
}

static int cipher_run(int decrypt, int profile, const png_geom *g, void *samples, uint32_t modulus,
                      const uint8_t perm[PXC_KEY_BYTES], const uint8_t diff[PXC_KEY_BYTES])
{
    size_t n = (size_t)g->samples;
    if (profile == PXC_PROFILE_CHAOS) {
        /* Rows and columns of samples for its row/column scrambling; the passes of an
         * interlaced image have different widths, so they are one row. */
        struct pxc_chaos_geometry geo = {g->height, (size_t)g->width * g->channels};
        const struct pxc_chaos_geometry *gp = g->npass == 1 ? &geo : NULL;
        if (g->depth == 16)
            return decrypt ? pxc_chaos_decrypt_u16(samples, n, modulus, gp, perm, diff)
                           : pxc_chaos_encrypt_u16(samples, n, modulus, gp, perm, diff);
        return decrypt ? pxc_chaos_decrypt_u8(samples, n, modulus, gp, perm, diff)
                       : pxc_chaos_encrypt_u8(samples, n, modulus, gp, perm, diff);
    }
    if (g->depth == 16)
        return decrypt ? pxc_cipher_decrypt_u16(samples, n, modulus, perm, diff)
                       : pxc_cipher_encrypt_u16(samples, n, modulus, perm, diff);
    return decrypt ? pxc_cipher_decrypt_u8(samples, n, modulus, perm, diff)
                   : pxc_cipher_encrypt_u8(samples, n, modulus, perm, diff);
}

static void *alloc_samples(const png_geom *g)
{
    size_t n = (size_t)g->samples ? (size_t)g->samples : 1;
    return malloc(g->depth == 16 ? n * 2 : n);
}

/* MAC over stored[0..n) except the 36 bytes (MAC and pxCR CRC) at mac_off. */
static void stored_mac(uint8_t mac[PNG_MAC_BYTES], const uint8_t *stored, size_t n, size_t mac_off,
                       const uint8_t key[PXC_KEY_BYTES])
{
    crypto_generichash_state st;
    crypto_generichash_init(&st, key, PXC_KEY_BYTES, PNG_MAC_BYTES);
    crypto_generichash_update(&st, stored, mac_off);
    crypto_generichash_update(&st, stored + mac_off + PNG_MAC_BYTES + 4,
                              n - mac_off - PNG_MAC_BYTES - 4);
    crypto_generichash_final(&st, mac, PNG_MAC_BYTES);
    sodium_memzero(&st, sizeof st);
}

/* ---- peek ---------------------------------------------------------------------------- */

int png_codec_peek(const uint8_t *head, size_t n, png_peek_info *out)
{
    const uint8_t *hdr = head + PNG_PXCR_HEADER_OFFSET;

    memset(out, 0, sizeof *out);
    if (n < PNG_PEEK_BYTES)
        return -ENODATA;
    if (memcmp(head, png_signature, PNG_SIG_BYTES) != 0 || png_get32(head + 8) != 13 ||
        memcmp(head + 12, "IHDR", 4) != 0 || memcmp(head + PNG_IHDR_END + 4, "pxCR", 4) != 0 ||
        memcmp(hdr, PXC_MAGIC, PXC_MAGIC_BYTES) != 0 || hdr[10] != PXC_KIND_PNG ||
        hdr[11] > PXC_PROFILE_CHAOS)
        return -EINVAL;
    uint32_t chunk_len = png_get32(head + PNG_IHDR_END);
    uint64_t rec_len = get_le(head + PNG_PXCR_RECORD_LEN_OFFSET, 4);
    if (chunk_len > PNG_CHUNK_MAX || chunk_len != PXCR_FIXED_BYTES + rec_len + PNG_MAC_BYTES ||
        rec_len < RECORD_NONCE_BYTES + RECORD_TAG_BYTES)
        return -EINVAL;
    out->width = png_get32(head + 16);
    out->height = png_get32(head + 20);
    out->bit_depth = head[24];
    out->color_type = head[25];
    out->interlace = head[28];
    out->version = (uint16_t)get_le(hdr + 8, 2);
    out->profile = hdr[11];
    out->plain_size = get_le(head + PNG_PXCR_PLAIN_SIZE_OFFSET, 8);
    out->head_bytes = PNG_PXCR_RECORD_OFFSET + rec_len;
    memcpy(out->file_id, hdr + 16, PXC_FILE_ID_BYTES);
    memcpy(out->sealed, hdr + 32, PXC_SEALED_SECRETS_BYTES);
    memcpy(out->header_ad, hdr, sizeof out->header_ad);
    return 0;
}

int png_codec_open_secrets(const png_peek_info *info, const pxc_keys *keys, pxc_file_secrets *s)
{
    if (pxc_secrets_open(s, keys, info->sealed, info->header_ad, sizeof info->header_ad) != 0)
        return -EBADMSG;
    memcpy(s->file_id, info->file_id, PXC_FILE_ID_BYTES);
    return 0;
}

/* ---- decode -------------------------------------------------------------------------- */

/* Everything decode needs from the authenticated front of a stored file. */
typedef struct stored_front {
    png_peek_info info;
    pxc_file_secrets secrets;
    size_t rec_len;  /* sealed record length L */
    uint8_t *record; /* opened record plaintext, record_len bytes */
    size_t record_len;
    uint8_t *owned; /* png_record_read's body */
    png_record rec;
} stored_front;

static void front_free(stored_front *f)
{
    if (f->owned)
        sodium_memzero(f->owned, f->rec.body_len);
    png_record_free(&f->rec);
    free(f->owned);
    if (f->record) {
        sodium_memzero(f->record, f->record_len);
        free(f->record);
    }
    sodium_memzero(&f->secrets, sizeof f->secrets);
    memset(f, 0, sizeof *f);
}

/* Peeks and opens the secrets.  stored[0..n) must hold at least head_bytes; if it does
 * not, short_err is returned. */
static int front_secrets(stored_front *f, const uint8_t *stored, size_t n, const pxc_keys *keys,
                         int short_err)
{
    memset(f, 0, sizeof *f);
    if (png_codec_peek(stored, n, &f->info) != 0 || f->info.version != PXC_FORMAT_VERSION)
        return n < PNG_PEEK_BYTES ? short_err : -EBADMSG;
    if (f->info.head_bytes > n)
        return short_err;
    f->rec_len = (size_t)(f->info.head_bytes - PNG_PXCR_RECORD_OFFSET);
    if (png_codec_open_secrets(&f->info, keys, &f->secrets) != 0)
        return -EBADMSG;
    return 0;
}

/* Opens and parses the sealed record (after front_secrets); frees f on failure. */
static int front_record(stored_front *f, const uint8_t *stored, const pxc_keys *keys)
{
    uint8_t key[PXC_KEY_BYTES];
    int rc;

    size_t plain_len = f->rec_len - RECORD_NONCE_BYTES - RECORD_TAG_BYTES;
    f->record = malloc(plain_len ? plain_len : 1);
    if (!f->record) {
        front_free(f);
        return -ENOMEM;
    }
    f->record_len = plain_len;
    const uint8_t *sealed = stored + PNG_PXCR_RECORD_OFFSET;
    pxc_file_subkey(key, keys, &f->secrets, PXC_SUBKEY_METADATA);
    rc = crypto_aead_xchacha20poly1305_ietf_decrypt(
        f->record, NULL, NULL, sealed + RECORD_NONCE_BYTES, f->rec_len - RECORD_NONCE_BYTES, stored,
        PNG_PXCR_RECORD_OFFSET, sealed, key);
    sodium_memzero(key, sizeof key);
    if (rc != 0) {
        front_free(f);
        return -EBADMSG;
    }
    rc = png_record_read(&f->rec, f->record, plain_len, &f->owned);
    if (rc != 0)
        front_free(f);
    return rc;
}

int png_codec_decode_head(const uint8_t *stored, size_t n, const pxc_keys *keys, uint8_t **head,
                          size_t *head_len, pxc_plain_tail *tail)
{
    stored_front f;
    int rc;

    *head = NULL;
    *head_len = 0;
    if (tail)
        memset(tail, 0, sizeof *tail);
    if ((rc = front_secrets(&f, stored, n, keys, -ENODATA)) != 0 ||
        (rc = front_record(&f, stored, keys)) != 0)
        return rc;
    size_t len = PNG_IHDR_END + f.rec.pre_len + f.rec.ahead_len;
    if (len + f.rec.tail_len > f.info.plain_size) {
        front_free(&f);
        return -EBADMSG;
    }
    uint8_t *out = malloc(len);
    uint8_t *end = tail && f.rec.tail_len ? malloc(f.rec.tail_len) : NULL;
    if (!out || (tail && f.rec.tail_len && !end)) {
        free(out);
        free(end);
        front_free(&f);
        return -ENOMEM;
    }
    memcpy(out, stored, PNG_IHDR_END);
    if (f.rec.ihdr_crc_bad)
        png_put32(out + PNG_IHDR_END - 4, f.rec.ihdr_crc);
    memcpy(out + PNG_IHDR_END, f.rec.pre, f.rec.pre_len);
    if (f.rec.ahead_len)
        memcpy(out + PNG_IHDR_END + f.rec.pre_len, f.rec.ahead, f.rec.ahead_len);
    if (end) {
        memcpy(end, f.rec.tail, f.rec.tail_len);
        tail->data = end;
        tail->len = f.rec.tail_len;
        tail->off = f.info.plain_size - f.rec.tail_len;
    }
    front_free(&f);
    *head = out;
    *head_len = len;
    return 0;
}

/* Walks the chunks after pxCR: [PLTE] IDAT... IEND, nothing else.  Inflates the IDAT
 * stream into data[0..want), which must be exactly its size. */
static int read_stored_pixels(const uint8_t *p, size_t n, size_t pos, const png_geom *g,
                              uint8_t *data, size_t want, size_t *plte_len)
{
    z_stream zs;
    int zrc = Z_OK, seen_idat = 0;

    *plte_len = 0;
    memset(&zs, 0, sizeof zs);
    if (inflateInit(&zs) != Z_OK)
        return -ENOMEM;
    zs.next_out = data;
    zs.avail_out = 0;
    size_t out_done = 0;
    for (;;) {
        if (n - pos < 12)
            goto bad;
        uint32_t len = png_get32(p + pos);
        const uint8_t *type = p + pos + 4;
        if (len > PNG_CHUNK_MAX || n - pos - 12 < len ||
            png_get32(p + pos + 8 + len) != png_chunk_crc(p + pos, len))
            goto bad;
        if (memcmp(type, "PLTE", 4) == 0 && g->color == 3 && !seen_idat && !*plte_len) {
            if (len == 0 || len % 3 || len > 768)
                goto bad;
            *plte_len = len;
        } else if (memcmp(type, "IDAT", 4) == 0) {
            if (g->color == 3 && !*plte_len)
                goto bad;
            seen_idat = 1;
            zs.next_in = (Bytef *)(uintptr_t)(p + pos + 8);
            zs.avail_in = len;
            while (zs.avail_in && zrc == Z_OK) {
                size_t room = want - out_done;
                zs.avail_out = room > (1u << 30) ? (1u << 30) : (uInt)room;
                zs.next_out = data + out_done;
                uInt before = zs.avail_out;
                zrc = inflate(&zs, Z_NO_FLUSH);
                out_done += before - zs.avail_out;
                if (zrc == Z_BUF_ERROR && out_done == want)
                    goto bad; /* more data than the image holds */
                if (zrc != Z_OK && zrc != Z_STREAM_END)
                    goto bad;
            }
            if (zs.avail_in)
                goto bad; /* bytes after the stream end */
        } else if (memcmp(type, "IEND", 4) == 0) {
            if (!seen_idat || len != 0 || pos + 12 != n || zrc != Z_STREAM_END || out_done != want)
                goto bad;
            inflateEnd(&zs);
            return 0;
        } else {
            goto bad;
        }
        pos += 12 + len;
    }
bad:
    inflateEnd(&zs);
    return -EBADMSG;
}

int png_codec_decode(const uint8_t *stored, size_t n, const pxc_keys *keys, uint8_t **plain,
                     size_t *plain_len)
{
    stored_front f;
    png_geom g;
    uint8_t mac_key[PXC_KEY_BYTES], perm[PXC_KEY_BYTES], diff[PXC_KEY_BYTES];
    uint8_t mac[PNG_MAC_BYTES];
    uint8_t *data = NULL, *zstream = NULL, *out = NULL;
    void *samples = NULL;
    size_t zlen = 0, plte_len = 0;
    int rc;

    memset(&g, 0, sizeof g);
    *plain = NULL;
    *plain_len = 0;
    if ((rc = front_secrets(&f, stored, n, keys, -EBADMSG)) != 0)
        return rc;

    /* The MAC first, over everything; then the pxCR CRC, which it leaves out. */
    size_t mac_off = PNG_PXCR_RECORD_OFFSET + f.rec_len;
    rc = -EBADMSG;
    if (n - mac_off < PNG_MAC_BYTES + 4)
        goto out;
    pxc_file_subkey(mac_key, keys, &f.secrets, PXC_SUBKEY_MAC);
    stored_mac(mac, stored, n, mac_off, mac_key);
    if (crypto_verify_32(mac, stored + mac_off) != 0)
        goto out;
    if (png_get32(stored + mac_off + PNG_MAC_BYTES) !=
        png_chunk_crc(stored + PNG_IHDR_END, png_get32(stored + PNG_IHDR_END)))
        goto out;
    if ((rc = front_record(&f, stored, keys)) != 0)
        goto out;

    const char *why;
    rc = png_geom_from_ihdr(&g, stored + 16, &why);
    if (rc != 0) {
        rc = rc == -EFBIG ? -EFBIG : -EBADMSG;
        goto out;
    }
    rc = -EBADMSG;
    if (f.rec.rows != g.rows || f.info.plain_size > SIZE_MAX)
        goto out;

    /* Stored pixels, then the original rows. */
    size_t data_bytes = (size_t)g.data_bytes;
    rc = -ENOMEM;
    data = malloc(data_bytes + f.rec.extra_len);
    samples = alloc_samples(&g);
    if (!data || !samples)
        goto out;
    rc =
        read_stored_pixels(stored, n, mac_off + PNG_MAC_BYTES + 4, &g, data, data_bytes, &plte_len);
    if (rc != 0)
        goto out;
    {
        const uint8_t *row = data;
        rc = -EBADMSG;
        for (unsigned p = 0; p < g.npass; p++)
            for (uint32_t y = 0; y < g.pass[p].h; y++, row += g.pass[p].rowbytes + 1)
                if (*row != 0)
                    goto out;
    }
    png_rows_unpack(&g, data, samples, NULL);
    pxc_file_subkey(perm, keys, &f.secrets, PXC_SUBKEY_PERMUTATION);
    pxc_file_subkey(diff, keys, &f.secrets, PXC_SUBKEY_DIFFUSION);
    rc = cipher_run(1, f.info.profile, &g, samples, palette_modulus(&g, plte_len), perm, diff);
    if (rc != 0) {
        rc = rc == -ENOMEM ? -ENOMEM : -EBADMSG;
        goto out;
    }
    png_rows_pack(&g, samples, f.rec.filters, f.rec.pad, data);
    png_rows_filter(&g, data, f.rec.filters);
    if (f.rec.extra_len)
        memcpy(data + data_bytes, f.rec.extra, f.rec.extra_len);

    rc = deflate_recipe_replay(f.rec.recipe, f.rec.recipe_len, data, data_bytes + f.rec.extra_len,
                               &zstream, &zlen);
    if (rc != 0) {
        rc = rc == -ENOMEM ? -ENOMEM : -EBADMSG;
        goto out;
    }

    /* Reassemble: signature, IHDR, pre, IDAT chunks, post. */
    uint64_t total = (uint64_t)PNG_IHDR_END + f.rec.pre_len + f.rec.post_len, zsum = 0;
    for (size_t i = 0; i < f.rec.nidat; i++)
        zsum += f.rec.idat_len[i];
    total += zsum + 12 * (uint64_t)f.rec.nidat;
    rc = -EBADMSG;
    if (zsum != zlen || total != f.info.plain_size)
        goto out;
    rc = -ENOMEM;
    out = malloc((size_t)total);
    if (!out)
        goto out;
    uint8_t *w = out;
    memcpy(w, stored, PNG_IHDR_END);
    if (f.rec.ihdr_crc_bad)
        png_put32(w + PNG_IHDR_END - 4, f.rec.ihdr_crc);
    w += PNG_IHDR_END;
    memcpy(w, f.rec.pre, f.rec.pre_len);
    w += f.rec.pre_len;
    const uint8_t *z = zstream;
    for (size_t i = 0, b = 0; i < f.rec.nidat; i++) {
        uint32_t len = f.rec.idat_len[i];
        memcpy(w + 8, z, len);
        put_chunk(w, "IDAT", NULL, len);
        if (b < f.rec.nbad && f.rec.bad_index[b] == i) /* in increasing order */
            png_put32(w + 8 + len, f.rec.bad_crc[b++]);
        w += 12 + (size_t)len;
        z += len;
    }
    memcpy(w, f.rec.post, f.rec.post_len);
    /* The sealed copies must be what the image regenerates. */
    size_t head_len = PNG_IHDR_END + f.rec.pre_len;
    rc = -EBADMSG;
    if (head_len + f.rec.ahead_len + f.rec.tail_len > total ||
        (f.rec.ahead_len && memcmp(out + head_len, f.rec.ahead, f.rec.ahead_len) != 0) ||
        (f.rec.tail_len && memcmp(out + total - f.rec.tail_len, f.rec.tail, f.rec.tail_len) != 0))
        goto out;
    *plain = out;
    *plain_len = (size_t)total;
    out = NULL;
    rc = 0;
out:
    if (samples) {
        sodium_memzero(samples, g.depth == 16 ? (size_t)g.samples * 2 : (size_t)g.samples);
        free(samples);
    }
    if (data) {
        sodium_memzero(data, (size_t)g.data_bytes + f.rec.extra_len);
        free(data);
    }
    if (zstream) {
        sodium_memzero(zstream, zlen);
        free(zstream);
    }
    free(out);
    sodium_memzero(mac_key, sizeof mac_key);
    sodium_memzero(perm, sizeof perm);
    sodium_memzero(diff, sizeof diff);
    front_free(&f);
    return rc;
}

/* ---- encode -------------------------------------------------------------------------- */

/* Deflates the stored rows (any encoder will do: decode only inflates them).  Noise
 * over the full range of the samples does not compress, so it goes into stored blocks,
 * the fastest to write and to inflate; with a smaller modulus (a palette of fewer
 * entries than the depth allows) Huffman coding alone still pays off. */
static int deflate_rows(const uint8_t *data, size_t len, int full_range, uint8_t **z, size_t *zlen)
{
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    if (deflateInit2(&zs, full_range ? 0 : 1, Z_DEFLATED, 15, 8,
                     full_range ? Z_DEFAULT_STRATEGY : Z_HUFFMAN_ONLY) != Z_OK)
        return -ENOMEM;
    size_t cap = deflateBound(&zs, (uLong)len);
    uint8_t *out = malloc(cap);
    if (!out) {
        deflateEnd(&zs);
        return -ENOMEM;
    }
    zs.next_in = (Bytef *)(uintptr_t)data;
    zs.avail_in = (uInt)len;
    zs.next_out = out;
    zs.avail_out = (uInt)cap;
    int zrc = deflate(&zs, Z_FINISH);
    *zlen = zs.total_out;
    deflateEnd(&zs);
    if (zrc != Z_STREAM_END) {
        free(out);
        return -ENOMEM;
    }
    *z = out;
    return 0;
}

typedef struct enc_state {
    png_layout lay;
    png_geom g;
    uint8_t *zconcat, *data, *recipe, *filters, *pad, *stored_z, *record, *out;
    void *samples;
    size_t data_len, recipe_len, stored_zlen, record_len;
    uint32_t modulus;
    int profile; /* enum pxc_profile of the cipher, recorded in header byte 11 */
    png_record rec;
    uint8_t perm[PXC_KEY_BYTES], diff[PXC_KEY_BYTES], meta[PXC_KEY_BYTES], mac[PXC_KEY_BYTES];
    pxc_file_secrets secrets; /* the caller's, with the neural key vector of this image */
} enc_state;

/* Long side of the gray view the neural key vector is computed from (nn/nnvec.h). */
#define NN_VIEW_SIDE 256

static inline uint32_t sample_at(const void *samples, int wide, size_t i)
{
    return wide ? ((const uint16_t *)samples)[i] : ((const uint8_t *)samples)[i];
}

/* Sets s->nnvec from a gray view of the plain samples: luma of RGB(A), the first sample
 * otherwise (gray, or the palette index), scaled to 8 bits and box-downsampled.  An
 * interlaced image gives the view of its last non-empty pass (for Adam7, every other
 * row), which keeps the view a picture of the image. */
static int set_nnvec(const png_geom *g, const void *samples, const pxc_keys *keys,
                     pxc_file_secrets *s)
{
    unsigned p = g->npass - 1, ch = g->channels;
    while (p > 0 && (g->pass[p].w == 0 || g->pass[p].h == 0))
        p--;
    size_t off = 0;
    for (unsigned q = 0; q < p; q++)
        off += (size_t)g->pass[q].w * g->pass[q].h * ch;
    uint32_t w = g->pass[p].w, h = g->pass[p].h, side = w > h ? w : h;
    uint32_t factor = (side + NN_VIEW_SIDE - 1) / NN_VIEW_SIDE, max = (1u << g->depth) - 1;
    int wide = g->depth == 16, luma = g->color == 2 || g->color == 6;
    nn_box b;
    uint8_t *view = malloc(nn_box_out_size(w, h, factor)), *row = malloc(w);
    int rc = view && row && nn_box_init(&b, view, w, h, factor) == 0 ? 0 : -ENOMEM;
    for (uint32_t y = 0; rc == 0 && y < h; y++) {
        size_t i = off + (size_t)y * w * ch;
        for (uint32_t x = 0; x < w; x++, i += ch) {
            uint32_t v =
                luma ? (77 * sample_at(samples, wide, i) + 150 * sample_at(samples, wide, i + 1) +
                        29 * sample_at(samples, wide, i + 2)) >>
                           8
                     : sample_at(samples, wide, i);
            row[x] = (uint8_t)(wide ? v >> 8 : g->depth == 8 ? v : v * 255 / max);
        }
        nn_box_row(&b, row);
    }
    if (rc == 0) {
        rc = pxc_secrets_set_nnvec(s, keys, view, b.out_width, b.out_height) == 0 ? 0 : -ENOMEM;
        nn_box_free(&b);
    }
    free(row);
    if (view)
        sodium_memzero(view, nn_box_out_size(w, h, factor));
    free(view);
    return rc;
}

static void enc_free(enc_state *e)
{
    if (e->zconcat)
        sodium_memzero(e->zconcat, (size_t)e->lay.idat_data);
    free(e->zconcat);
    if (e->data) {
        sodium_memzero(e->data, e->data_len);
        free(e->data);
    }
    if (e->samples) {
        sodium_memzero(e->samples,
                       e->g.depth == 16 ? (size_t)e->g.samples * 2 : (size_t)e->g.samples);
        free(e->samples);
    }
    free(e->recipe);
    free(e->filters);
    free(e->pad);
    free(e->stored_z);
    if (e->record) {
        sodium_memzero(e->record, e->record_len);
        free(e->record);
    }
    free(e->out);
    free(e->rec.idat_len);
    free(e->rec.bad_index);
    free(e->rec.bad_crc);
    sodium_memzero(e, sizeof *e);
}

/* Collects the IDAT run: stream bytes, chunk lengths, wrong CRCs. */
static int gather_idat(enc_state *e, const uint8_t *plain)
{
    png_record *r = &e->rec;
    r->nidat = e->lay.nidat;
    r->idat_len = malloc(r->nidat * sizeof *r->idat_len);
    r->bad_index = malloc(r->nidat * sizeof *r->bad_index);
    r->bad_crc = malloc(r->nidat * sizeof *r->bad_crc);
    e->zconcat = malloc(e->lay.idat_data ? (size_t)e->lay.idat_data : 1);
    if (!r->idat_len || !r->bad_index || !r->bad_crc || !e->zconcat)
        return -ENOMEM;
    size_t pos = e->lay.idat_start, z = 0;
    for (size_t i = 0; i < r->nidat; i++) {
        uint32_t len = png_get32(plain + pos);
        uint32_t crc = png_get32(plain + pos + 8 + len);
        r->idat_len[i] = len;
        memcpy(e->zconcat + z, plain + pos + 8, len);
        z += len;
        if (crc != png_chunk_crc(plain + pos, len)) {
            r->bad_index[r->nbad] = (uint32_t)i;
            r->bad_crc[r->nbad++] = crc;
        }
        pos += 12 + (size_t)len;
    }
    return 0;
}

/* Writes the stored file into e->out. */
static int assemble(enc_state *e, const uint8_t *plain, size_t n, const pxc_keys *keys,
                    const pxc_file_secrets *s, size_t *out_len)
{
    uint8_t hdr[OPAQUE_HEADER_BYTES];
    size_t sealed_len = e->record_len + RECORD_NONCE_BYTES + RECORD_TAG_BYTES;
    size_t plte = e->g.color == 3 ? 3 * (size_t)e->modulus : 0;
    size_t nchunks = (e->stored_zlen + PNG_STORED_IDAT_BYTES - 1) / PNG_STORED_IDAT_BYTES;

    if (e->record_len > RECORD_MAX - RECORD_NONCE_BYTES - RECORD_TAG_BYTES)
        return -EFBIG;
    if (nchunks == 0)
        nchunks = 1;
    size_t mac_off = PNG_PXCR_RECORD_OFFSET + sealed_len;
    size_t total =
        mac_off + PNG_MAC_BYTES + 4 + (plte ? plte + 12 : 0) + e->stored_zlen + 12 * nchunks + 12;
    uint8_t *o = e->out = malloc(total);
    if (!o)
        return -ENOMEM;

    memcpy(o, plain, PNG_IHDR_END);
    png_put32(o + PNG_IHDR_END - 4, png_chunk_crc(o + 8, 13));
    png_put32(o + PNG_IHDR_END, (uint32_t)(PXCR_FIXED_BYTES + sealed_len + PNG_MAC_BYTES));
    memcpy(o + PNG_IHDR_END + 4, "pxCR", 4);

    memset(hdr, 0, sizeof hdr);
    memcpy(hdr, PXC_MAGIC, PXC_MAGIC_BYTES);
    put_le(hdr + 8, PXC_FORMAT_VERSION, 2);
    hdr[10] = PXC_KIND_PNG;
    hdr[11] = (uint8_t)e->profile;
    memcpy(hdr + 16, s->file_id, PXC_FILE_ID_BYTES);
    pxc_secrets_seal(hdr + 32, keys, s, hdr, 32);
    memcpy(o + PNG_PXCR_HEADER_OFFSET, hdr, sizeof hdr);
    put_le(o + PNG_PXCR_PLAIN_SIZE_OFFSET, n, 8);
    put_le(o + PNG_PXCR_RECORD_LEN_OFFSET, sealed_len, 4);

    uint8_t *sealed = o + PNG_PXCR_RECORD_OFFSET;
    randombytes_buf(sealed, RECORD_NONCE_BYTES);
    crypto_aead_xchacha20poly1305_ietf_encrypt(sealed + RECORD_NONCE_BYTES, NULL, e->record,
                                               e->record_len, o, PNG_PXCR_RECORD_OFFSET, NULL,
                                               sealed, e->meta);

    size_t pos = mac_off + PNG_MAC_BYTES + 4;
    if (plte) {
        randombytes_buf(o + pos + 8, plte);
        pos += put_chunk(o + pos, "PLTE", NULL, (uint32_t)plte);
    }
    for (size_t off = 0, i = 0; i < nchunks; i++) {
        size_t len = e->stored_zlen - off;
        if (len > PNG_STORED_IDAT_BYTES)
            len = PNG_STORED_IDAT_BYTES;
        pos += put_chunk(o + pos, "IDAT", e->stored_z + off, (uint32_t)len);
        off += len;
    }
    pos += put_chunk(o + pos, "IEND", NULL, 0);

    stored_mac(o + mac_off, o, total, mac_off, e->mac);
    png_put32(o + mac_off + PNG_MAC_BYTES,
              png_chunk_crc(o + PNG_IHDR_END, png_get32(o + PNG_IHDR_END)));
    *out_len = total;
    sodium_memzero(hdr, sizeof hdr);
    return 0;
}

static int encode(enc_state *e, const uint8_t *plain, size_t n, const pxc_keys *keys,
                  const pxc_file_secrets *s, size_t *stored_len, const char **why)
{
    png_geom *g = &e->g;
    int rc;

    if ((rc = png_walk(plain, n, &e->lay, why)) != 0)
        return rc;
    if ((rc = png_geom_from_ihdr(g, plain + 16, why)) != 0)
        return rc;
    if (g->data_bytes > (e->lay.idat_data + 1) * INFLATE_RATIO_MAX)
        return codec_fail(why, "malformed: less image data than IHDR declares", -EINVAL);
    if (g->color == 3) {
        if (e->lay.plte_len == 0)
            return codec_fail(why, "malformed: palette image without PLTE", -EINVAL);
        if (e->lay.plte_len % 3 || e->lay.plte_len > 768)
            return codec_fail(why, "malformed: PLTE length", -EINVAL);
    }

    if ((rc = gather_idat(e, plain)) != 0)
        return codec_fail(why, "out of memory", rc);
    const char *zwhy = NULL;
    rc = deflate_recipe_build(e->zconcat, (size_t)e->lay.idat_data,
                              (size_t)g->data_bytes + EXTRA_DATA_MAX, &e->data, &e->data_len,
                              &e->recipe, &e->recipe_len, &zwhy);
    sodium_memzero(e->zconcat, (size_t)e->lay.idat_data);
    free(e->zconcat);
    e->zconcat = NULL;
    if (rc == -EFBIG)
        return codec_fail(why, "malformed: much more image data than IHDR declares", -EINVAL);
    if (rc == -ENOTSUP)
        return codec_fail(why, zwhy ? zwhy : "unsupported zlib stream", -ENOTSUP);
    if (rc != 0)
        return codec_fail(why, rc == -ENOMEM ? "out of memory" : "malformed: bad zlib stream", rc);
    if (e->data_len < g->data_bytes)
        return codec_fail(why, "malformed: less image data than IHDR declares", -EINVAL);

    size_t rows = (size_t)g->rows;
    e->filters = malloc(rows);
    e->pad = malloc(rows);
    e->samples = alloc_samples(g);
    if (!e->filters || !e->pad || !e->samples)
        return codec_fail(why, "out of memory", -ENOMEM);
    if (png_rows_unfilter(g, e->data, e->filters) != 0)
        return codec_fail(why, "malformed: unknown filter type", -EINVAL);
    int any_pad = png_rows_unpack(g, e->data, e->samples, e->pad);

    e->secrets = *s;
    s = &e->secrets;
    if ((rc = set_nnvec(g, e->samples, keys, &e->secrets)) != 0)
        return codec_fail(why, "out of memory", rc);
    pxc_file_subkey(e->perm, keys, s, PXC_SUBKEY_PERMUTATION);
    pxc_file_subkey(e->diff, keys, s, PXC_SUBKEY_DIFFUSION);
    pxc_file_subkey(e->meta, keys, s, PXC_SUBKEY_METADATA);
    pxc_file_subkey(e->mac, keys, s, PXC_SUBKEY_MAC);
    uint32_t modulus = e->modulus = palette_modulus(g, e->lay.plte_len);
    e->profile = keys->profile == PXC_PROFILE_CHAOS ? PXC_PROFILE_CHAOS : PXC_PROFILE_DEFAULT;
    rc = cipher_run(0, e->profile, g, e->samples, modulus, e->perm, e->diff);
    if (rc == -ERANGE)
        return codec_fail(why, "palette index past the end of PLTE", -ENOTSUP);
    if (rc != 0)
        return codec_fail(why, "cipher failed", rc);

    /* Cipher rows, filter type 0, in place of the original rows (extra data stays). */
    png_rows_pack(g, e->samples, NULL, NULL, e->data);
    rc = deflate_rows(e->data, (size_t)g->data_bytes, modulus == 1u << g->depth, &e->stored_z,
                      &e->stored_zlen);
    if (rc != 0)
        return codec_fail(why, "out of memory", rc);

    png_record *r = &e->rec;
    r->ihdr_crc = png_get32(plain + PNG_IHDR_END - 4);
    r->ihdr_crc_bad = r->ihdr_crc != png_chunk_crc(plain + 8, 13);
    r->pre = plain + e->lay.pre_start;
    r->pre_len = e->lay.pre_end - e->lay.pre_start;
    r->filters = e->filters;
    r->rows = g->rows;
    r->pad = any_pad ? e->pad : NULL;
    r->extra = e->data + g->data_bytes;
    r->extra_len = e->data_len - (size_t)g->data_bytes;
    r->post = plain + e->lay.idat_end;
    r->post_len = n - e->lay.idat_end;
    r->recipe = e->recipe;
    r->recipe_len = e->recipe_len;
    uint64_t head_len = PNG_IHDR_END + r->pre_len, ahead_end, tail_off;
    pxc_preview_plan(n, head_len, &ahead_end, &tail_off);
    r->ahead = plain + head_len;
    r->ahead_len = (size_t)(ahead_end - head_len);
    r->tail = plain + tail_off;
    r->tail_len = (size_t)(n - tail_off);
    if ((rc = png_record_write(r, &e->record, &e->record_len)) != 0)
        return codec_fail(why, rc == -EFBIG ? "too much metadata" : "out of memory", rc);

    if ((rc = assemble(e, plain, n, keys, s, stored_len)) != 0)
        return codec_fail(why, rc == -EFBIG ? "too much metadata" : "out of memory", rc);
    return 0;
}

int png_codec_encode(const uint8_t *plain, size_t n, const pxc_keys *keys,
                     const pxc_file_secrets *s, uint8_t **stored, size_t *stored_len,
                     const char **why)
{
    enc_state *e = calloc(1, sizeof *e);
    size_t len = 0;
    int rc;

    *stored = NULL;
    *stored_len = 0;
    if (why)
        *why = NULL;
    if (!e)
        return codec_fail(why, "out of memory", -ENOMEM);
    if (sodium_init() < 0) {
        free(e);
        return codec_fail(why, "libsodium init failed", -ENOMEM);
    }
    rc = encode(e, plain, n, keys, s, &len, why);
    if (rc == 0) {
        uint8_t *back = NULL;
        size_t back_len = 0;
        rc = png_codec_decode(e->out, len, keys, &back, &back_len);
        if (rc == 0 && (back_len != n || memcmp(back, plain, n) != 0))
            rc = -EPROTO;
        if (rc != 0)
            rc =
                codec_fail(why, rc == -ENOMEM ? "out of memory" : "stored form does not regenerate",
                           rc == -ENOMEM ? -ENOMEM : -EPROTO);
        if (back) {
            sodium_memzero(back, back_len);
            free(back);
        }
    }
    if (rc == 0) {
        *stored = e->out;
        *stored_len = len;
        e->out = NULL;
    }
    enc_free(e);
    free(e);
    return rc;
}

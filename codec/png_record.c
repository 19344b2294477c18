/* The sealed regeneration record of a stored PNG (format in png.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "codec/png_int.h"

#define RECORD_VERSION 1
#define FLAG_IHDR_CRC 1
#define FLAG_PAD 2
#define FLAG_EXTRA 4
#define FLAG_PREVIEW 8
/* The body holds the original file's non-pixel bytes. */
#define BODY_MAX ((size_t)1 << 30)

typedef struct buf {
    uint8_t *p;
    size_t len, cap;
    int oom;
} buf;

static void put(buf *b, const void *src, size_t n)
{
    if (b->oom || n == 0)
        return;
    if (b->cap - b->len < n) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap - b->len < n)
            cap *= 2;
        uint8_t *np = realloc(b->p, cap);
        if (!np) {
            b->oom = 1;
            return;
        }
        b->p = np;
        b->cap = cap;
    }
    memcpy(b->p + b->len, src, n);
    b->len += n;
}

static void put_u8(buf *b, unsigned v)
{
    uint8_t c = (uint8_t)v;
    put(b, &c, 1);
}

static void put_u32(buf *b, uint32_t v)
{
    uint8_t c[4];
    png_put32(c, v);
    put(b, c, 4);
}

static void put_varint(buf *b, uint64_t v)
{
    uint8_t c[10];
    size_t n = 0;
    do {
        c[n++] = (uint8_t)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
        v >>= 7;
    } while (v);
    put(b, c, n);
}

static void put_bytes(buf *b, const uint8_t *p, size_t n)
{
    put_varint(b, n);
    put(b, p, n);
}

typedef struct reader {
    const uint8_t *p;
    size_t left;
    int bad;
} reader;

static const uint8_t *take(reader *r, uint64_t n)
{
    if (r->bad || n > r->left) {
        r->bad = 1;
        return NULL;
    }
    const uint8_t *p = r->p;
    r->p += n;
    r->left -= n;
    return p;
}

static unsigned get_u8(reader *r)
{
    const uint8_t *p = take(r, 1);
    return p ? *p : 0;
}

static uint32_t get_u32(reader *r)
{
    const uint8_t *p = take(r, 4);
    return p ? png_get32(p) : 0;
}

static uint64_t get_varint(reader *r)
{
    uint64_t v = 0;
    for (unsigned shift = 0; shift < 64; shift += 7) {
        const uint8_t *p = take(r, 1);
        if (!p)
            return 0;
        v |= (uint64_t)(*p & 0x7f) << shift;
        if (!(*p & 0x80))
            return v;
    }
    r->bad = 1;
    return 0;
}

static const uint8_t *get_bytes(reader *r, size_t *n)
{
    uint64_t len = get_varint(r);
    const uint8_t *p = take(r, len);
    *n = p ? (size_t)len : 0;
    return p;
}

int png_record_write(const png_record *rec, uint8_t **out, size_t *out_len)
{
    buf body = {0}, rec_out = {0};
    unsigned flags = (rec->ihdr_crc_bad ? FLAG_IHDR_CRC : 0) | (rec->pad ? FLAG_PAD : 0) |
                     (rec->extra_len ? FLAG_EXTRA : 0) |
                     (rec->ahead_len || rec->tail_len ? FLAG_PREVIEW : 0);

    *out = NULL;
    *out_len = 0;
    put_u8(&body, flags);
    if (flags & FLAG_IHDR_CRC)
        put_u32(&body, rec->ihdr_crc);
    put_bytes(&body, rec->pre, rec->pre_len);
    put_varint(&body, rec->nidat);
    for (size_t i = 0; i < rec->nidat; i++)
        put_varint(&body, rec->idat_len[i]);
    put_varint(&body, rec->nbad);
    for (size_t i = 0; i < rec->nbad; i++) {
        put_varint(&body, rec->bad_index[i]);
        put_u32(&body, rec->bad_crc[i]);
    }
    put_bytes(&body, rec->filters, (size_t)rec->rows);
    if (flags & FLAG_PAD)
        put(&body, rec->pad, (size_t)rec->rows);
    if (flags & FLAG_EXTRA)
        put_bytes(&body, rec->extra, rec->extra_len);
    put_bytes(&body, rec->post, rec->post_len);
    if (flags & FLAG_PREVIEW) {
        put_bytes(&body, rec->ahead, rec->ahead_len);
        put_bytes(&body, rec->tail, rec->tail_len);
    }
    if (body.oom || body.len > BODY_MAX) {
        free(body.p);
        return body.oom ? -ENOMEM : -EFBIG;
    }

    uLongf zlen = compressBound((uLong)body.len);
    uint8_t *z = malloc(zlen);
    if (!z || compress2(z, &zlen, body.p, (uLong)body.len, 6) != Z_OK) {
        free(z);
        free(body.p);
        return -ENOMEM;
    }
    put_u8(&rec_out, RECORD_VERSION);
    put_varint(&rec_out, body.len);
    put_bytes(&rec_out, z, zlen);
    put(&rec_out, rec->recipe, rec->recipe_len);
    free(z);
    free(body.p);
    if (rec_out.oom) {
        free(rec_out.p);
        return -ENOMEM;
    }
    *out = rec_out.p;
    *out_len = rec_out.len;
    return 0;
}

void png_record_free(png_record *rec)
{
    free(rec->idat_len);
    free(rec->bad_index);
    free(rec->bad_crc);
    memset(rec, 0, sizeof *rec);
}

int png_record_read(png_record *rec, const uint8_t *in, size_t n, uint8_t **owned)
{
    reader r = {in, n, 0};
    memset(rec, 0, sizeof *rec);
    *owned = NULL;

    if (get_u8(&r) != RECORD_VERSION)
        return -EBADMSG;
    uint64_t body_len = get_varint(&r);
    size_t zlen;
    const uint8_t *z = get_bytes(&r, &zlen);
    if (r.bad || body_len > BODY_MAX || body_len == 0)
        return -EBADMSG;
    rec->recipe = r.p;
    rec->recipe_len = r.left;

    uint8_t *body = malloc((size_t)body_len);
    if (!body)
        return -ENOMEM;
    uLongf got = (uLongf)body_len;
    if (uncompress(body, &got, z, (uLong)zlen) != Z_OK || got != body_len) {
        free(body);
        return -EBADMSG;
    }
    *owned = body;
    rec->body_len = (size_t)body_len;

    reader b = {body, (size_t)body_len, 0};
    unsigned flags = get_u8(&b);
    if (flags & ~(unsigned)(FLAG_IHDR_CRC | FLAG_PAD | FLAG_EXTRA | FLAG_PREVIEW))
        goto bad;
    rec->ihdr_crc_bad = !!(flags & FLAG_IHDR_CRC);
    if (rec->ihdr_crc_bad)
        rec->ihdr_crc = get_u32(&b);
    rec->pre = get_bytes(&b, &rec->pre_len);
    uint64_t nidat = get_varint(&b);
    if (b.bad || nidat == 0 || nidat > b.left)
        goto bad;
    rec->nidat = (size_t)nidat;
    rec->idat_len = malloc(rec->nidat * sizeof *rec->idat_len);
    if (!rec->idat_len)
        goto oom;
    for (size_t i = 0; i < rec->nidat; i++) {
        uint64_t len = get_varint(&b);
        if (len > PNG_CHUNK_MAX)
            goto bad;
        rec->idat_len[i] = (uint32_t)len;
    }
    uint64_t nbad = get_varint(&b);
    if (b.bad || nbad > nidat)
        goto bad;
    rec->nbad = (size_t)nbad;
    if (nbad) {
        rec->bad_index = malloc(rec->nbad * sizeof *rec->bad_index);
        rec->bad_crc = malloc(rec->nbad * sizeof *rec->bad_crc);
        if (!rec->bad_index || !rec->bad_crc)
            goto oom;
    }
    for (size_t i = 0; i < rec->nbad; i++) {
        uint64_t idx = get_varint(&b);
        if (idx >= nidat || (i && idx <= rec->bad_index[i - 1]))
            goto bad;
        rec->bad_index[i] = (uint32_t)idx;
        rec->bad_crc[i] = get_u32(&b);
    }
    size_t rows;
    rec->filters = get_bytes(&b, &rows);
    rec->rows = rows;
    if (flags & FLAG_PAD)
        rec->pad = take(&b, rows);
    if (flags & FLAG_EXTRA)
        rec->extra = get_bytes(&b, &rec->extra_len);
    rec->post = get_bytes(&b, &rec->post_len);
    if (flags & FLAG_PREVIEW) {
        rec->ahead = get_bytes(&b, &rec->ahead_len);
        rec->tail = get_bytes(&b, &rec->tail_len);
    }
    if (b.bad || b.left != 0)
        goto bad;
    return 0;
bad:
    png_record_free(rec);
    memset(*owned, 0, (size_t)body_len);
    free(*owned);
    *owned = NULL;
    return -EBADMSG;
oom:
    png_record_free(rec);
    memset(*owned, 0, (size_t)body_len);
    free(*owned);
    *owned = NULL;
    return -ENOMEM;
}

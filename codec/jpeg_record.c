/* The sealed regeneration record of the JPEG codec: serialisation (format in jpeg.h)
 * and its compression with a preset dictionary. */
#include <errno.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include <jpeglib.h>

#include "codec/jpeg_int.h"

/* ---- preset dictionary ---- */

static uint8_t std_dht[4 * (17 + 256) + 4];
static size_t std_dht_len;
static pthread_once_t std_once = PTHREAD_ONCE_INIT;

static void put_table(const JHUFF_TBL *t, uint8_t cls)
{
    size_t count = 0;
    std_dht[std_dht_len++] = cls;
    for (int l = 1; l <= 16; l++) {
        std_dht[std_dht_len++] = t->bits[l];
        count += t->bits[l];
    }
    memcpy(std_dht + std_dht_len, t->huffval, count);
    std_dht_len += count;
}

static void std_init(void)
{
    struct jpeg_compress_struct c;
    struct jpeg_error_mgr err;
    c.err = jpeg_std_error(&err);
    jpeg_create_compress(&c);
    c.in_color_space = JCS_YCbCr;
    c.input_components = 3;
    jpeg_set_defaults(&c);
    std_dht[0] = 0xFF;
    std_dht[1] = 0xC4;
    std_dht_len = 4;
    for (int i = 0; i < 2; i++) {
        if (c.dc_huff_tbl_ptrs[i])
            put_table(c.dc_huff_tbl_ptrs[i], (uint8_t)i);
        if (c.ac_huff_tbl_ptrs[i])
            put_table(c.ac_huff_tbl_ptrs[i], (uint8_t)(0x10 | i));
    }
    std_dht[2] = (uint8_t)((std_dht_len - 2) >> 8);
    std_dht[3] = (uint8_t)(std_dht_len - 2);
    jpeg_destroy_compress(&c);
}

uint8_t *jpg_record_dict(const uint8_t *clear, size_t clear_len, size_t *dict_len)
{
    pthread_once(&std_once, std_init);
    if (clear_len > 16384)
        clear_len = 16384;
    uint8_t *d = malloc(clear_len + std_dht_len + 1);
    if (!d)
        return NULL;
    memcpy(d, clear, clear_len);
    memcpy(d + clear_len, std_dht, std_dht_len);
    *dict_len = clear_len + std_dht_len;
    return d;
}

/* ---- body ---- */

static void put_svarint(jpg_buf *b, int v)
{
    jpg_buf_varint(b, v < 0 ? ((uint64_t)(-(int64_t)v) << 1) - 1 : (uint64_t)v << 1);
}

static void build_body(const jpg_record *r, jpg_buf *b)
{
    jpg_buf_varint(b, r->skel_len);
    jpg_buf_put(b, r->skel, r->skel_len);
    jpg_buf_varint(b, (uint64_t)r->nscans);
    for (int i = 0; i < r->nscans; i++) {
        jpg_buf_varint(b, r->ecs_len[i]);
        uint32_t a = r->patch_start[i], z = r->patch_start[i + 1];
        jpg_buf_varint(b, z - a);
        uint32_t prev = 0;
        for (uint32_t k = a; k < z; k++) {
            jpg_buf_varint(b, r->patches[k].off - prev);
            jpg_buf_byte(b, r->patches[k].byte);
            prev = r->patches[k].off;
        }
    }
    jpg_buf_byte(b, (uint8_t)r->ncomp);
    for (int c = 0; c < r->ncomp; c++) {
        put_svarint(b, r->lo[c]);
        put_svarint(b, r->hi[c]);
        jpg_buf_byte(b, r->pidx[c]);
        jpg_buf_byte(b, r->textured[c]);
        if (r->textured[c]) {
            /* flat-block flags as run lengths, alternating, starting with non-flat */
            jpg_buf_varint(b, r->nflat[c]);
            uint64_t runs = 0, run = 0;
            uint8_t cur = 0;
            for (uint64_t i = 0; i <= r->nflat[c]; i++)
                if (i == r->nflat[c] || r->flat[c][i] != cur) {
                    runs++;
                    cur ^= 1;
                }
            jpg_buf_varint(b, runs);
            cur = 0;
            for (uint64_t i = 0; i < r->nflat[c]; i++) {
                if (r->flat[c][i] != cur) {
                    jpg_buf_varint(b, run);
                    run = 0;
                    cur ^= 1;
                }
                run++;
            }
            jpg_buf_varint(b, run);
        }
        jpg_buf_varint(b, r->ndummy[c]);
        for (uint64_t k = 0; k < r->ndummy[c] * 64; k++) {
            jpg_buf_byte(b, (uint8_t)r->dummy[c][k]);
            jpg_buf_byte(b, (uint8_t)((uint16_t)r->dummy[c][k] >> 8));
        }
    }
    if (r->ahead_len || r->tail_len) {
        jpg_buf_varint(b, r->ahead_len);
        jpg_buf_put(b, r->ahead, r->ahead_len);
        jpg_buf_varint(b, r->tail_len);
        jpg_buf_put(b, r->tail, r->tail_len);
    }
}

int jpg_record_pack(const jpg_record *rec, const uint8_t *dict, size_t dict_len, jpg_buf *out)
{
    jpg_buf body = {0};
    build_body(rec, &body);
    if (body.err) {
        jpg_buf_free(&body);
        return -ENOMEM;
    }
    uint8_t hash[JPG_DICT_HASH_BYTES];
    crypto_generichash(hash, sizeof hash, dict, dict_len, NULL, 0);
    jpg_buf_byte(out, JPG_RECORD_VERSION);
    jpg_buf_put(out, hash, sizeof hash);
    jpg_buf_varint(out, body.len);
    z_stream z;
    memset(&z, 0, sizeof z);
    int rc = 0;
    if (deflateInit2(&z, 9, Z_DEFLATED, 15, 9, Z_DEFAULT_STRATEGY) != Z_OK) {
        jpg_buf_free(&body);
        return -ENOMEM;
    }
    deflateSetDictionary(&z, dict, (uInt)dict_len);
    size_t bound = deflateBound(&z, body.len) + 64;
    if (jpg_buf_reserve(out, bound) != 0) {
        rc = -ENOMEM;
    } else {
        z.next_in = body.p;
        z.avail_in = (uInt)body.len;
        z.next_out = out->p + out->len;
        z.avail_out = (uInt)bound;
        if (deflate(&z, Z_FINISH) != Z_STREAM_END)
            rc = -ENOMEM;
        else
            out->len += z.total_out;
    }
    deflateEnd(&z);
    jpg_buf_free(&body);
    return out->err ? -ENOMEM : rc;
}

typedef struct reader {
    const uint8_t *p;
    size_t n, pos;
    int bad;
} reader;

static uint64_t get_varint(reader *r)
{
    uint64_t v = 0;
    for (int sh = 0; sh < 64; sh += 7) {
        if (r->pos >= r->n) {
            r->bad = 1;
            return 0;
        }
        uint8_t b = r->p[r->pos++];
        v |= (uint64_t)(b & 0x7F) << sh;
        if (!(b & 0x80))
            return v;
    }
    r->bad = 1;
    return 0;
}

static int get_svarint(reader *r)
{
    uint64_t v = get_varint(r);
    if (v > 0x1FFFF)
        r->bad = 1;
    return (v & 1) ? -(int)((v + 1) >> 1) : (int)(v >> 1);
}

static const uint8_t *get_bytes(reader *r, uint64_t n)
{
    if (r->bad || n > r->n - r->pos) {
        r->bad = 1;
        return NULL;
    }
    const uint8_t *p = r->p + r->pos;
    r->pos += n;
    return p;
}

void jpg_record_free(jpg_record *rec)
{
    free(rec->owned);
    free(rec->ecs_len);
    free(rec->patch_start);
    free(rec->patches);
    for (int c = 0; c < JPG_MAX_COMPS; c++)
        if (rec->dummy[c])
            free((void *)rec->dummy[c]);
    for (int c = 0; c < JPG_MAX_COMPS; c++)
        free((void *)rec->flat[c]);
    memset(rec, 0, sizeof *rec);
}

static int parse_body(jpg_record *rec, reader *r)
{
    rec->skel_len = get_varint(r);
    rec->skel = get_bytes(r, rec->skel_len);
    uint64_t ns = get_varint(r);
    if (r->bad || ns == 0 || ns > JPG_MAX_SCANS)
        return -EBADMSG;
    rec->nscans = (int)ns;
    rec->ecs_len = calloc(ns, sizeof *rec->ecs_len);
    rec->patch_start = calloc(ns + 1, sizeof *rec->patch_start);
    if (!rec->ecs_len || !rec->patch_start)
        return -ENOMEM;
    size_t cap = 0, np = 0;
    for (uint64_t i = 0; i < ns && !r->bad; i++) {
        rec->ecs_len[i] = get_varint(r);
        uint64_t k = get_varint(r);
        if (k > r->n - r->pos) /* each patch takes at least two bytes */
            return -EBADMSG;
        rec->patch_start[i] = (uint32_t)np;
        if (np + k > cap) {
            size_t ncap = np + k + 16;
            jpg_patch *nq = realloc(rec->patches, ncap * sizeof *nq);
            if (!nq)
                return -ENOMEM;
            rec->patches = nq;
            cap = ncap;
        }
        uint64_t off = 0;
        for (uint64_t j = 0; j < k && !r->bad; j++) {
            off += get_varint(r);
            const uint8_t *b = get_bytes(r, 1);
            if (!b || off >= rec->ecs_len[i] || (j > 0 && off == rec->patches[np - 1].off))
                return -EBADMSG;
            rec->patches[np].off = (uint32_t)off;
            rec->patches[np++].byte = *b;
        }
    }
    rec->patch_start[ns] = (uint32_t)np;
    const uint8_t *nc = get_bytes(r, 1);
    if (!nc || *nc < 1 || *nc > JPG_MAX_COMPS)
        return -EBADMSG;
    rec->ncomp = *nc;
    for (int c = 0; c < rec->ncomp && !r->bad; c++) {
        rec->lo[c] = (int16_t)get_svarint(r);
        rec->hi[c] = (int16_t)get_svarint(r);
        const uint8_t *pi = get_bytes(r, 1);
        if (!pi || *pi >= JPG_PERM_TRIES)
            return -EBADMSG;
        rec->pidx[c] = *pi;
        const uint8_t *tx = get_bytes(r, 1);
        if (!tx || *tx > 1)
            return -EBADMSG;
        rec->textured[c] = *tx;
        if (*tx) {
            uint64_t nf = get_varint(r), runs = get_varint(r), i = 0;
            if (r->bad || nf > JPG_MAX_FLAT || runs > nf + 1)
                return -EBADMSG;
            uint8_t *fl = malloc(nf + 1);
            if (!fl)
                return -ENOMEM;
            rec->flat[c] = fl;
            rec->nflat[c] = nf;
            for (uint64_t k = 0; k < runs && !r->bad; k++) {
                uint64_t run = get_varint(r);
                if (run > nf - i)
                    return -EBADMSG;
                memset(fl + i, (int)(k & 1), run);
                i += run;
            }
            if (i != nf)
                return -EBADMSG;
        }
        rec->ndummy[c] = get_varint(r);
        if (rec->ndummy[c] > (r->n - r->pos) / 128)
            return -EBADMSG;
        int16_t *d = malloc(rec->ndummy[c] * 128 + 1);
        if (!d)
            return -ENOMEM;
        rec->dummy[c] = d;
        const uint8_t *src = get_bytes(r, rec->ndummy[c] * 128);
        for (uint64_t k = 0; src && k < rec->ndummy[c] * 64; k++)
            d[k] = (int16_t)(src[2 * k] | src[2 * k + 1] << 8);
    }
    if (!r->bad && r->pos < r->n) { /* optional: the plaintext copies */
        rec->ahead_len = get_varint(r);
        rec->ahead = get_bytes(r, rec->ahead_len);
        rec->tail_len = get_varint(r);
        rec->tail = get_bytes(r, rec->tail_len);
    }
    if (r->bad || r->pos != r->n)
        return -EBADMSG;
    return 0;
}

int jpg_record_unpack(const uint8_t *p, size_t n, const uint8_t *dict, size_t dict_len,
                      uint64_t body_max, jpg_record *rec)
{
    memset(rec, 0, sizeof *rec);
    reader r = {p, n, 0, 0};
    const uint8_t *ver = get_bytes(&r, 1);
    const uint8_t *hash = get_bytes(&r, JPG_DICT_HASH_BYTES);
    uint64_t body_len = get_varint(&r);
    if (r.bad || *ver != JPG_RECORD_VERSION || body_len > body_max || body_len == 0)
        return -EBADMSG;
    uint8_t want[JPG_DICT_HASH_BYTES];
    crypto_generichash(want, sizeof want, dict, dict_len, NULL, 0);
    if (sodium_memcmp(want, hash, sizeof want) != 0)
        return -EBADMSG;
    rec->owned = malloc(body_len);
    if (!rec->owned)
        return -ENOMEM;
    z_stream z;
    memset(&z, 0, sizeof z);
    if (inflateInit(&z) != Z_OK) {
        jpg_record_free(rec);
        return -ENOMEM;
    }
    z.next_in = (uint8_t *)(uintptr_t)(p + r.pos);
    z.avail_in = (uInt)(n - r.pos);
    z.next_out = rec->owned;
    z.avail_out = (uInt)body_len;
    int zr = inflate(&z, Z_FINISH);
    if (zr == Z_NEED_DICT) {
        if (inflateSetDictionary(&z, dict, (uInt)dict_len) == Z_OK)
            zr = inflate(&z, Z_FINISH);
    }
    int ok = zr == Z_STREAM_END && z.total_out == body_len && z.avail_in == 0;
    inflateEnd(&z);
    if (!ok) {
        jpg_record_free(rec);
        return -EBADMSG;
    }
    reader b = {rec->owned, body_len, 0, 0};
    int rc = parse_body(rec, &b);
    if (rc)
        jpg_record_free(rec);
    return rc;
}

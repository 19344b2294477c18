/* JPEG markers and segments: the frame, the scans with the Huffman tables and restart
 * interval in effect for each, and the extent of every entropy-coded segment. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "codec/bytes.h"
#include "codec/jpeg.h"
#include "codec/jpeg_int.h"

int jpg_buf_reserve(jpg_buf *b, size_t extra)
{
    if (b->err)
        return -ENOMEM;
    if (b->cap - b->len >= extra)
        return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap - b->len < extra) {
        if (cap > SIZE_MAX / 2) {
            b->err = 1;
            return -ENOMEM;
        }
        cap *= 2;
    }
    uint8_t *np = realloc(b->p, cap);
    if (!np) {
        b->err = 1;
        return -ENOMEM;
    }
    b->p = np;
    b->cap = cap;
    return 0;
}

void jpg_buf_put(jpg_buf *b, const void *src, size_t n)
{
    if (n == 0 || jpg_buf_reserve(b, n) != 0)
        return;
    memcpy(b->p + b->len, src, n);
    b->len += n;
}

void jpg_buf_byte(jpg_buf *b, uint8_t v)
{
    if (jpg_buf_reserve(b, 1) != 0)
        return;
    b->p[b->len++] = v;
}

void jpg_buf_varint(jpg_buf *b, uint64_t v)
{
    while (v >= 0x80) {
        jpg_buf_byte(b, (uint8_t)(v | 0x80));
        v >>= 7;
    }
    jpg_buf_byte(b, (uint8_t)v);
}

void jpg_buf_free(jpg_buf *b)
{
    free(b->p);
    memset(b, 0, sizeof *b);
}

void jpg_frame_free(jpg_frame *f)
{
    free(f->scans);
    memset(f, 0, sizeof *f);
}

/* Canonical codes from a DHT table, rejecting what libjpeg rejects. */
static int build_huff(jpg_huff *h, const uint8_t bits[16], const uint8_t *vals)
{
    memset(h, 0, sizeof *h);
    uint32_t code = 0;
    size_t k = 0;
    for (int l = 1; l <= 16; l++) {
        for (int i = 0; i < bits[l - 1]; i++, k++) {
            uint8_t sym = vals[k];
            if (h->len[sym])
                return -1; /* duplicate symbol */
            h->len[sym] = (uint8_t)l;
            h->code[sym] = (uint16_t)code++;
        }
        if (code > (1u << l))
            return -1;
        code <<= 1;
    }
    return 0;
}

static uint32_t div_up(uint32_t a, uint32_t b)
{
    return (uint32_t)(((uint64_t)a + b - 1) / b);
}

static int parse_sof(const uint8_t *s, size_t len, int marker, jpg_frame *f, const char **why)
{
    if (marker != 0xC0 && marker != 0xC1 && marker != 0xC2)
        return codec_fail(why,
                          (marker >= 0xC9) ? "arithmetic coding" : "lossless or hierarchical JPEG",
                          -ENOTSUP);
    if (f->ncomp)
        return codec_fail(why, "more than one frame", -ENOTSUP);
    if (len < 6)
        return codec_fail(why, "short SOF", -EINVAL);
    if (s[0] != 8)
        return codec_fail(why, "sample precision other than 8 bits", -ENOTSUP);
    f->progressive = marker == 0xC2;
    f->height = (uint32_t)s[1] << 8 | s[2];
    f->width = (uint32_t)s[3] << 8 | s[4];
    f->ncomp = s[5];
    if (f->height == 0)
        return codec_fail(why, "height defined by DNL", -ENOTSUP);
    if (f->width == 0)
        return codec_fail(why, "zero width", -EINVAL);
    if (f->ncomp < 1 || f->ncomp > JPG_MAX_COMPS)
        return codec_fail(why, "unsupported component count", -ENOTSUP);
    if (len != 6 + 3 * (size_t)f->ncomp)
        return codec_fail(why, "bad SOF length", -EINVAL);
    f->hmax = f->vmax = 1;
    for (int c = 0; c < f->ncomp; c++) {
        jpg_comp *cp = &f->comp[c];
        cp->id = s[6 + 3 * c];
        cp->h = s[7 + 3 * c] >> 4;
        cp->v = s[7 + 3 * c] & 15;
        cp->tq = s[8 + 3 * c];
        if (cp->h < 1 || cp->h > 4 || cp->v < 1 || cp->v > 4 || cp->tq > 3)
            return codec_fail(why, "bad sampling factor or table", -EINVAL);
        for (int d = 0; d < c; d++)
            if (f->comp[d].id == cp->id)
                return codec_fail(why, "duplicate component id", -EINVAL);
        if (cp->h > f->hmax)
            f->hmax = cp->h;
        if (cp->v > f->vmax)
            f->vmax = cp->v;
    }
    f->mcux = div_up(f->width, 8u * (uint32_t)f->hmax);
    f->mcuy = div_up(f->height, 8u * (uint32_t)f->vmax);
    f->blocks = f->real_blocks = 0;
    for (int c = 0; c < f->ncomp; c++) {
        jpg_comp *cp = &f->comp[c];
        cp->wb = div_up(div_up(f->width * (uint32_t)cp->h, (uint32_t)f->hmax), 8);
        cp->hb = div_up(div_up(f->height * (uint32_t)cp->v, (uint32_t)f->vmax), 8);
        cp->pw = div_up(cp->wb, cp->h) * cp->h;
        cp->ph = div_up(cp->hb, cp->v) * cp->v;
        if (f->ncomp > 1 &&
            ((uint64_t)f->mcux * cp->h > cp->pw || (uint64_t)f->mcuy * cp->v > cp->ph))
            return codec_fail(why, "unusual MCU geometry", -ENOTSUP);
        f->blocks += (uint64_t)cp->pw * cp->ph;
        f->real_blocks += (uint64_t)cp->wb * cp->hb;
    }
    if (f->blocks > JPEG_CODEC_MAX_BLOCKS)
        return codec_fail(why, "image over the size limit", -EFBIG);
    return 0;
}

typedef struct table_state {
    jpg_huff dc[4], ac[4];
    uint8_t have_dc[4], have_ac[4];
} table_state;

static int parse_dht(const uint8_t *s, size_t len, table_state *t, const char **why)
{
    size_t pos = 0;
    while (pos < len) {
        if (len - pos < 17)
            return codec_fail(why, "short DHT", -EINVAL);
        int tc = s[pos] >> 4, th = s[pos] & 15;
        if (tc > 1 || th > 3)
            return codec_fail(why, "bad DHT class or id", -EINVAL);
        size_t count = 0;
        for (int i = 0; i < 16; i++)
            count += s[pos + 1 + i];
        if (count > 256 || len - pos - 17 < count)
            return codec_fail(why, "bad DHT counts", -EINVAL);
        jpg_huff *h = tc ? &t->ac[th] : &t->dc[th];
        if (build_huff(h, s + pos + 1, s + pos + 17) != 0)
            return codec_fail(why, "bad Huffman table", -EINVAL);
        (tc ? t->have_ac : t->have_dc)[th] = 1;
        pos += 17 + count;
    }
    return 0;
}

static int parse_sos(const uint8_t *s, size_t len, jpg_frame *f, const table_state *t,
                     uint16_t restart, jpg_scan *sc, const char **why)
{
    if (!f->ncomp)
        return codec_fail(why, "SOS before SOF", -EINVAL);
    if (len < 1 || s[0] < 1 || s[0] > JPG_MAX_COMPS || len != 4 + 2 * (size_t)s[0])
        return codec_fail(why, "bad SOS", -EINVAL);
    memset(sc, 0, sizeof *sc);
    sc->ncomp = s[0];
    int blocks_in_mcu = 0;
    for (int i = 0; i < sc->ncomp; i++) {
        int id = s[1 + 2 * i], td = s[2 + 2 * i] >> 4, ta = s[2 + 2 * i] & 15, c;
        for (c = 0; c < f->ncomp && f->comp[c].id != id; c++)
            ;
        if (c == f->ncomp || td > 3 || ta > 3)
            return codec_fail(why, "bad SOS component", -EINVAL);
        for (int j = 0; j < i; j++)
            if (sc->comp[j] == c)
                return codec_fail(why, "bad SOS component", -EINVAL);
        sc->comp[i] = (uint8_t)c;
        if (t->have_dc[td])
            sc->dc[i] = t->dc[td];
        if (t->have_ac[ta])
            sc->ac[i] = t->ac[ta];
        blocks_in_mcu += f->comp[c].h * f->comp[c].v;
    }
    if (sc->ncomp > 1 && blocks_in_mcu > 10)
        return codec_fail(why, "more than 10 blocks per MCU", -EINVAL);
    const uint8_t *q = s + 1 + 2 * sc->ncomp;
    sc->ss = q[0];
    sc->se = q[1];
    sc->ah = q[2] >> 4;
    sc->al = q[2] & 15;
    sc->restart = restart;
    if (!f->progressive) {
        if (sc->ss != 0 || sc->se != 63 || sc->ah != 0 || sc->al != 0)
            return codec_fail(why, "bad sequential scan parameters", -EINVAL);
    } else {
        if (sc->se > 63 || sc->ss > sc->se || (sc->ss == 0 && sc->se != 0) ||
            (sc->ss > 0 && sc->ncomp != 1) || sc->ah > 13 || sc->al > 13)
            return codec_fail(why, "bad progressive scan parameters", -EINVAL);
    }
    return 0;
}

/* End of the entropy-coded data starting at pos: the first 0xFF not followed by a
 * stuffed zero or a restart marker. */
static size_t ecs_end(const uint8_t *p, size_t n, size_t pos)
{
    while (pos < n) {
        const uint8_t *ff = memchr(p + pos, 0xFF, n - pos);
        if (!ff)
            return n;
        size_t at = (size_t)(ff - p);
        if (at + 1 >= n)
            return at;
        uint8_t b = p[at + 1];
        if (b != 0 && (b < 0xD0 || b > 0xD7))
            return at;
        pos = at + 2;
    }
    return n;
}

int jpg_parse(const uint8_t *p, size_t n, int skeleton, jpg_frame *f, const char **why)
{
    memset(f, 0, sizeof *f);
    table_state *t = calloc(1, sizeof *t);
    if (!t)
        return codec_fail(why, "out of memory", -ENOMEM);
    int rc = 0, cap = 0;
    uint16_t restart = 0;
    size_t removed = 0; /* entropy-coded bytes before pos */
    size_t pos = 2;
    if (n < 4 || p[0] != 0xFF || p[1] != 0xD8) {
        rc = codec_fail(why, "not a JPEG", -EINVAL);
        goto out;
    }
    for (;;) {
        if (pos >= n || p[pos] != 0xFF) {
            rc = codec_fail(why, pos >= n ? "truncated (no EOI)" : "garbage between segments",
                            -EINVAL);
            goto out;
        }
        while (pos < n && p[pos] == 0xFF)
            pos++;
        if (pos >= n) {
            rc = codec_fail(why, "truncated (no EOI)", -EINVAL);
            goto out;
        }
        int m = p[pos++];
        if (m == 0xD9)
            break;
        if (m == 0 || m == 0x01 || (m >= 0xD0 && m <= 0xD8)) {
            rc = codec_fail(why, "unexpected marker", -EINVAL);
            goto out;
        }
        if (n - pos < 2 || ((size_t)p[pos] << 8 | p[pos + 1]) < 2 ||
            n - pos < ((size_t)p[pos] << 8 | p[pos + 1])) {
            rc = codec_fail(why, "truncated segment", -EINVAL);
            goto out;
        }
        size_t len = ((size_t)p[pos] << 8 | p[pos + 1]) - 2;
        const uint8_t *s = p + pos + 2;
        pos += 2 + len;
        if ((m >= 0xC0 && m <= 0xCF && m != 0xC4 && m != 0xC8 && m != 0xCC)) {
            rc = parse_sof(s, len, m, f, why);
        } else if (m == 0xC4) {
            rc = parse_dht(s, len, t, why);
        } else if (m == 0xCC) {
            rc = codec_fail(why, "arithmetic coding", -ENOTSUP);
        } else if (m == 0xDC) {
            rc = codec_fail(why, "DNL marker", -ENOTSUP);
        } else if (m == 0xDD) {
            if (len != 2)
                rc = codec_fail(why, "bad DRI", -EINVAL);
            else
                restart = (uint16_t)(s[0] << 8 | s[1]);
        } else if (m == 0xDA) {
            if (f->nscans == JPG_MAX_SCANS) {
                rc = codec_fail(why, "too many scans", -ENOTSUP);
                goto out;
            }
            if (f->nscans == cap) {
                int ncap = cap ? cap * 2 : 4;
                jpg_scan *ns = realloc(f->scans, (size_t)ncap * sizeof *ns);
                if (!ns) {
                    rc = codec_fail(why, "out of memory", -ENOMEM);
                    goto out;
                }
                f->scans = ns;
                cap = ncap;
            }
            jpg_scan *sc = &f->scans[f->nscans];
            rc = parse_sos(s, len, f, t, restart, sc, why);
            if (rc)
                goto out;
            f->nscans++;
            sc->ecs_off = pos;
            sc->skel_pos = pos - removed;
            sc->ecs_len = skeleton ? 0 : ecs_end(p, n, pos) - pos;
            pos += sc->ecs_len;
            removed += sc->ecs_len;
            f->ecs_total += sc->ecs_len;
        }
        if (rc)
            goto out;
    }
    f->eoi_end = pos;
    if (!f->ncomp || !f->nscans) {
        rc = codec_fail(why, "no frame or no scan", -EINVAL);
        goto out;
    }
    /* Every component needs a DC scan, so that each block costs entropy-coded bits. */
    for (int c = 0; c < f->ncomp; c++) {
        int seen = 0;
        for (int i = 0; i < f->nscans && !seen; i++)
            for (int j = 0; j < f->scans[i].ncomp; j++)
                if (f->scans[i].comp[j] == c && f->scans[i].ss == 0 && f->scans[i].ah == 0)
                    seen = 1;
        if (!seen) {
            rc = codec_fail(why, "component without a DC scan", -ENOTSUP);
            goto out;
        }
    }
out:
    free(t);
    if (rc)
        jpg_frame_free(f);
    return rc;
}

/* Exact Huffman entropy encoder: given quantised coefficients, a scan's parameters and
 * the tables in effect, writes the entropy-coded segment bit for bit as libjpeg's
 * jchuff.c (sequential) and jcphuff.c (progressive) do: byte stuffing, fill bits of
 * ones before each restart marker and at the end, EOB runs ended at 0x7FFF blocks, at
 * restart boundaries and, in refinement scans, when more than 937 correction bits are
 * pending.  Files whose encoder chose otherwise are caught by the caller's comparison
 * with the original bytes. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "codec/jpeg_int.h"

const uint8_t jpg_natural_order[64] = {
    0,  1,  8,  16, 9,  2,  3,  10, 17, 24, 32, 25, 18, 11, 4,  5,  12, 19, 26, 33, 40, 48,
    41, 34, 27, 20, 13, 6,  7,  14, 21, 28, 35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23,
    30, 37, 44, 51, 58, 59, 52, 45, 38, 31, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63};

#define MAX_CORR_BITS 1000 /* as jcphuff.c */
#define EOBRUN_MAX 0x7FFF

typedef struct enc {
    jpg_buf *out;
    uint64_t acc;
    int nacc;
    int err;
    int pred[JPG_MAX_COMPS];
    uint32_t eobrun;
    unsigned be;                      /* correction bits pending with the EOB run */
    uint8_t corr[MAX_CORR_BITS + 64]; /* pending (be) then this block's (br) bits */
    const jpg_huff *ac;               /* table of a progressive AC scan */
} enc;

static inline void put_bits(enc *e, uint32_t v, int nb)
{
    e->acc = e->acc << nb | (v & ((1u << nb) - 1));
    e->nacc += nb;
    while (e->nacc >= 8) {
        uint8_t b = (uint8_t)(e->acc >> (e->nacc - 8));
        e->nacc -= 8;
        jpg_buf *o = e->out;
        if (o->cap - o->len < 2 && jpg_buf_reserve(o, 2) != 0) {
            e->err = -ENOMEM;
            return;
        }
        o->p[o->len++] = b;
        if (b == 0xFF)
            o->p[o->len++] = 0;
    }
}

static inline void put_sym(enc *e, const jpg_huff *h, int sym)
{
    if (!h->len[sym]) {
        e->err = -EPROTO;
        return;
    }
    put_bits(e, h->code[sym], h->len[sym]);
}

static inline int nbits_of(unsigned a)
{
    return a ? 32 - __builtin_clz(a) : 0;
}

static void flush_bits(enc *e)
{
    if (e->nacc > 0)
        put_bits(e, 0x7F, 8 - e->nacc);
    e->acc = 0;
    e->nacc = 0;
}

/* DC difference or AC value: size category then its bits. */
static inline void put_value(enc *e, const jpg_huff *h, int run, int v, int maxbits)
{
    unsigned a = (unsigned)(v < 0 ? -v : v);
    int nb = nbits_of(a);
    if (nb > maxbits) {
        e->err = -EPROTO;
        return;
    }
    put_sym(e, h, run << 4 | nb);
    if (nb)
        put_bits(e, (uint32_t)(v < 0 ? v - 1 : v), nb);
}

static void block_sequential(enc *e, const int16_t *b, int ci, const jpg_huff *dc,
                             const jpg_huff *ac)
{
    int diff = b[0] - e->pred[ci];
    e->pred[ci] = b[0];
    put_value(e, dc, 0, diff, 11);
    int r = 0;
    for (int k = 1; k < 64; k++) {
        int v = b[jpg_natural_order[k]];
        if (v == 0) {
            r++;
            continue;
        }
        while (r > 15) {
            put_sym(e, ac, 0xF0);
            r -= 16;
        }
        put_value(e, ac, r, v, 10);
        r = 0;
    }
    if (r > 0)
        put_sym(e, ac, 0x00);
}

static void emit_eobrun(enc *e)
{
    if (e->eobrun == 0)
        return;
    int nb = nbits_of(e->eobrun) - 1;
    put_sym(e, e->ac, nb << 4);
    if (nb)
        put_bits(e, e->eobrun, nb);
    e->eobrun = 0;
    for (unsigned i = 0; i < e->be; i++)
        put_bits(e, e->corr[i], 1);
    e->be = 0;
}

static void block_dc_first(enc *e, const int16_t *b, int ci, const jpg_huff *dc, int al)
{
    int v = b[0] >> al; /* arithmetic shift, as IRIGHT_SHIFT */
    int diff = v - e->pred[ci];
    e->pred[ci] = v;
    put_value(e, dc, 0, diff, 11);
}

static void block_ac_first(enc *e, const int16_t *b, int ss, int se, int al)
{
    int r = 0;
    for (int k = ss; k <= se; k++) {
        int v = b[jpg_natural_order[k]];
        int a = v < 0 ? -v : v;
        a >>= al;
        if (a == 0) {
            r++;
            continue;
        }
        emit_eobrun(e);
        while (r > 15) {
            put_sym(e, e->ac, 0xF0);
            r -= 16;
        }
        int nb = nbits_of((unsigned)a);
        if (nb > 10) {
            e->err = -EPROTO;
            return;
        }
        put_sym(e, e->ac, r << 4 | nb);
        put_bits(e, (uint32_t)(v < 0 ? ~a : a), nb);
        r = 0;
    }
    if (r > 0) {
        e->eobrun++;
        if (e->eobrun == EOBRUN_MAX)
            emit_eobrun(e);
    }
}

static void block_ac_refine(enc *e, const int16_t *b, int ss, int se, int al)
{
    int absv[64], eob = 0;
    for (int k = ss; k <= se; k++) {
        int v = b[jpg_natural_order[k]];
        int a = (v < 0 ? -v : v) >> al;
        absv[k] = a;
        if (a == 1)
            eob = k;
    }
    int r = 0;
    unsigned br = 0, br_start = e->be;
    for (int k = ss; k <= se; k++) {
        int a = absv[k];
        if (a == 0) {
            r++;
            continue;
        }
        while (r > 15 && k <= eob) {
            emit_eobrun(e);
            put_sym(e, e->ac, 0xF0);
            r -= 16;
            for (unsigned i = 0; i < br; i++)
                put_bits(e, e->corr[br_start + i], 1);
            br_start = 0;
            br = 0;
        }
        if (a > 1) {
            e->corr[br_start + br++] = (uint8_t)(a & 1);
            continue;
        }
        emit_eobrun(e);
        put_sym(e, e->ac, r << 4 | 1);
        put_bits(e, b[jpg_natural_order[k]] < 0 ? 0 : 1, 1);
        for (unsigned i = 0; i < br; i++)
            put_bits(e, e->corr[br_start + i], 1);
        br_start = 0;
        br = 0;
        r = 0;
    }
    if (r > 0 || br > 0) {
        e->eobrun++;
        if (br_start != e->be) /* cannot happen: emission resets both */
            memmove(e->corr + e->be, e->corr + br_start, br);
        e->be += br;
        if (e->eobrun == EOBRUN_MAX || e->be > MAX_CORR_BITS - 64 + 1)
            emit_eobrun(e);
    }
}

static void encode_block(enc *e, const jpg_scan *s, int i, const int16_t *b)
{
    if (s->ss == 0 && s->se == 63) {
        /* sequential (a progressive scan with Ss = 0 has Se = 0) */
        block_sequential(e, b, i, &s->dc[i], &s->ac[i]);
        return;
    }
    if (s->ss == 0) {
        if (s->ah == 0)
            block_dc_first(e, b, i, &s->dc[i], s->al);
        else
            put_bits(e, (uint32_t)(b[0] >> s->al) & 1, 1);
        return;
    }
    if (s->ah == 0)
        block_ac_first(e, b, s->ss, s->se, s->al);
    else
        block_ac_refine(e, b, s->ss, s->se, s->al);
}

int jpg_scan_encode(const jpg_frame *f, const jpg_scan *s, const jpg_coefs coef, jpg_buf *out)
{
    enc *e = calloc(1, sizeof *e);
    if (!e)
        return -ENOMEM;
    e->out = out;
    if (f->progressive && s->ss > 0)
        e->ac = &s->ac[0];
    uint32_t per_row, rows;
    if (s->ncomp == 1) {
        per_row = f->comp[s->comp[0]].wb;
        rows = f->comp[s->comp[0]].hb;
    } else {
        per_row = f->mcux;
        rows = f->mcuy;
    }
    uint64_t total = (uint64_t)per_row * rows, in_interval = 0;
    unsigned rst = 0;
    uint32_t mx = 0, my = 0;
    for (uint64_t m = 0; m < total && !e->err; m++) {
        if (s->restart && in_interval == s->restart) {
            emit_eobrun(e);
            flush_bits(e);
            jpg_buf_byte(out, 0xFF);
            jpg_buf_byte(out, (uint8_t)(0xD0 + (rst++ & 7)));
            memset(e->pred, 0, sizeof e->pred);
            e->eobrun = 0;
            e->be = 0;
            in_interval = 0;
        }
        in_interval++;
        for (int i = 0; i < s->ncomp; i++) {
            const jpg_comp *c = &f->comp[s->comp[i]];
            const int16_t *base = coef[s->comp[i]];
            if (s->ncomp == 1) {
                encode_block(e, s, i, base + ((size_t)my * c->pw + mx) * 64);
                continue;
            }
            for (int y = 0; y < c->v; y++)
                for (int x = 0; x < c->h; x++) {
                    size_t bx = (size_t)mx * c->h + x, by = (size_t)my * c->v + y;
                    encode_block(e, s, i, base + (by * c->pw + bx) * 64);
                }
        }
        if (++mx == per_row) {
            mx = 0;
            my++;
        }
    }
    emit_eobrun(e);
    flush_bits(e);
    int rc = e->err ? e->err : (out->err ? -ENOMEM : 0);
    free(e);
    return rc;
}

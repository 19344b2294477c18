/* Exact Huffman entropy encoder: given quantised coefficients, a scan's parameters and
 * the tables in effect, writes the entropy-coded segment bit for bit as libjpeg's
 * jchuff.c (sequential) and jcphuff.c (progressive) do: byte stuffing, fill bits of
 * ones before each restart marker and at the end, EOB runs ended at 0x7FFF blocks, at
 * restart boundaries and, in refinement scans, when more than 937 correction bits are
 * pending.  Files whose encoder chose otherwise are caught by the caller's comparison
 * with the original bytes.
 *
 * Speed: bits collect in a 64-bit accumulator and leave 32 at a time (a word without
 * an 0xFF byte is stored at once); the output buffer is grown once per MCU for the
 * worst case, so the inner loops never check it; the nonzero coefficients of a block
 * are found through a 64-bit mask in zig-zag order. */
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
/* Worst case of one block: 64 symbols of 16 + 11 bits, doubled by stuffing, plus an
 * EOB run with up to MAX_CORR_BITS correction bits; restart marker and flush. */
#define BLOCK_MAX_BYTES (2 * (64 * 27 + 16 + 15 + MAX_CORR_BITS) / 8 + 64)

typedef struct enc {
    uint8_t *p; /* next output byte (room reserved per MCU) */
    uint64_t acc;
    int nacc; /* bits in acc, < 32 between calls */
    int err;
    int pred[JPG_MAX_COMPS];
    uint32_t eobrun;
    unsigned be;                      /* correction bits pending with the EOB run */
    uint8_t corr[MAX_CORR_BITS + 64]; /* pending (be) then this block's (br) bits */
    const jpg_huff *ac;               /* table of a progressive AC scan */
    long *hist;                       /* AC symbols of this block are counted here, or NULL */
} enc;

static inline void emit_byte(enc *e, uint8_t b)
{
    *e->p++ = b;
    if (b == 0xFF)
        *e->p++ = 0;
}

/* nb <= 32 bits of v (higher bits of v must be zero). */
static inline void put_bits(enc *e, uint32_t v, int nb)
{
    e->acc = e->acc << nb | v;
    e->nacc += nb;
    if (e->nacc >= 32) {
        e->nacc -= 32;
        uint32_t w = (uint32_t)(e->acc >> e->nacc);
        uint32_t x = ~w; /* a byte of w is 0xFF iff that byte of x is zero */
        if (((x - 0x01010101u) & ~x & 0x80808080u) == 0) {
            e->p[0] = (uint8_t)(w >> 24);
            e->p[1] = (uint8_t)(w >> 16);
            e->p[2] = (uint8_t)(w >> 8);
            e->p[3] = (uint8_t)w;
            e->p += 4;
        } else {
            emit_byte(e, (uint8_t)(w >> 24));
            emit_byte(e, (uint8_t)(w >> 16));
            emit_byte(e, (uint8_t)(w >> 8));
            emit_byte(e, (uint8_t)w);
        }
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
    while (e->nacc >= 8) {
        e->nacc -= 8;
        emit_byte(e, (uint8_t)(e->acc >> e->nacc));
    }
    if (e->nacc > 0) {
        int fill = 8 - e->nacc;
        emit_byte(e, (uint8_t)((e->acc << fill | ((1u << fill) - 1)) & 0xFF));
    }
    e->acc = 0;
    e->nacc = 0;
}

/* Symbol run << 4 | size of v, then the size bits of v, in one write. */
static inline void put_value(enc *e, const jpg_huff *h, int run, int v, int maxbits)
{
    unsigned a = (unsigned)(v < 0 ? -v : v);
    int nb = nbits_of(a);
    int sym = run << 4 | nb;
    if (nb > maxbits || !h->len[sym]) {
        e->err = -EPROTO;
        return;
    }
    uint32_t bits = (uint32_t)(v < 0 ? v - 1 : v) & ((1u << nb) - 1);
    put_bits(e, (uint32_t)h->code[sym] << nb | bits, h->len[sym] + nb);
}

/* Zig-zag values k in [ss, se] of b, shifted right by al in magnitude (signs kept),
 * and the mask of the nonzero ones. */
static inline uint64_t zigzag_portable(const int16_t *b, int ss, int se, int al, int16_t *zz)
{
    uint64_t m = 0;
    for (int k = ss; k <= se; k++) {
        int v = b[jpg_natural_order[k]];
        if (al) {
            int a = (v < 0 ? -v : v) >> al;
            v = v < 0 ? -a : a;
        }
        zz[k] = (int16_t)v;
        m |= (uint64_t)(v != 0) << k;
    }
    return m;
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define HAVE_ZZ_VEC 1

/* All 64 values at once with AVX-512BW: two two-register word permutes reorder the
 * block, then absolute value, shift and sign.  Same results as zigzag_portable. */
__attribute__((target("avx512f,avx512bw"))) static uint64_t zigzag_vec(const int16_t *b, int ss,
                                                                       int se, int al, int16_t *zz)
{
    static int16_t idx[64];
    static int ready;
    if (!__atomic_load_n(&ready, __ATOMIC_ACQUIRE)) {
        for (int k = 0; k < 64; k++)
            idx[k] = jpg_natural_order[k];
        __atomic_store_n(&ready, 1, __ATOMIC_RELEASE);
    }
    __m512i lo = _mm512_loadu_si512((const void *)b),
            hi = _mm512_loadu_si512((const void *)(b + 32));
    __m512i z0 = _mm512_permutex2var_epi16(lo, _mm512_loadu_si512((const void *)idx), hi);
    __m512i z1 = _mm512_permutex2var_epi16(lo, _mm512_loadu_si512((const void *)(idx + 32)), hi);
    if (al) {
        __m128i sh = _mm_cvtsi32_si128(al);
        __m512i a0 = _mm512_srl_epi16(_mm512_abs_epi16(z0), sh);
        __m512i a1 = _mm512_srl_epi16(_mm512_abs_epi16(z1), sh);
        __mmask32 n0 = _mm512_movepi16_mask(z0), n1 = _mm512_movepi16_mask(z1);
        z0 = _mm512_mask_sub_epi16(a0, n0, _mm512_setzero_si512(), a0);
        z1 = _mm512_mask_sub_epi16(a1, n1, _mm512_setzero_si512(), a1);
    }
    _mm512_storeu_si512((void *)zz, z0);
    _mm512_storeu_si512((void *)(zz + 32), z1);
    uint64_t m = (uint64_t)_mm512_test_epi16_mask(z0, z0) | (uint64_t)_mm512_test_epi16_mask(z1, z1)
                                                                << 32;
    uint64_t range = (se == 63 ? ~0ull : (2ull << se) - 1) & ~((1ull << ss) - 1);
    return m & range;
}

static int zz_vec_ok(void)
{
    static int state = -1;
    int s = __atomic_load_n(&state, __ATOMIC_RELAXED);
    if (s < 0) {
        __builtin_cpu_init();
        s = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw");
        __atomic_store_n(&state, s, __ATOMIC_RELAXED);
    }
    return s;
}
#else
#define HAVE_ZZ_VEC 0
#endif

static inline uint64_t zigzag(const int16_t *b, int ss, int se, int al, int16_t *zz)
{
#if HAVE_ZZ_VEC
    if (zz_vec_ok())
        return zigzag_vec(b, ss, se, al, zz);
#endif
    return zigzag_portable(b, ss, se, al, zz);
}

static void block_sequential(enc *e, const int16_t *b, int ci, const jpg_huff *dc,
                             const jpg_huff *ac)
{
    int diff = b[0] - e->pred[ci];
    e->pred[ci] = b[0];
    put_value(e, dc, 0, diff, 11);
    int16_t zz[64];
    uint64_t m = zigzag(b, 1, 63, 0, zz);
    int last = 0;
    long *hist = e->hist;
    while (m) {
        int k = __builtin_ctzll(m);
        m &= m - 1;
        int r = k - last - 1;
        while (r > 15) {
            put_sym(e, ac, 0xF0);
            if (hist)
                hist[0xF0]++;
            r -= 16;
        }
        put_value(e, ac, r, zz[k], 10);
        if (hist)
            hist[r << 4 | nbits_of((unsigned)(zz[k] < 0 ? -zz[k] : zz[k]))]++;
        last = k;
    }
    if (last != 63) {
        put_sym(e, ac, 0x00);
        if (hist)
            hist[0x00]++;
    }
}

static void count_block(const int16_t *b, int *pred, long *dc, long *ac)
{
    int diff = b[0] - *pred;
    *pred = b[0];
    dc[nbits_of((unsigned)(diff < 0 ? -diff : diff))]++;
    if (!ac)
        return;
    int16_t zz[64];
    uint64_t m = zigzag(b, 1, 63, 0, zz);
    int last = 0;
    while (m) {
        int k = __builtin_ctzll(m);
        m &= m - 1;
        int r = k - last - 1;
        for (; r > 15; r -= 16)
            ac[0xF0]++;
        int v = zz[k];
        ac[r << 4 | nbits_of((unsigned)(v < 0 ? -v : v))]++;
        last = k;
    }
    if (last != 63)
        ac[0x00]++;
}

void jpg_count_symbols(const jpg_frame *f, int16_t *const *const rows[JPG_MAX_COMPS],
                       const int dc_tbl[JPG_MAX_COMPS], const int ac_tbl[JPG_MAX_COMPS],
                       int inside_ac, long dc_freq[4][257], long ac_freq[4][257])
{
    int pred[JPG_MAX_COMPS] = {0};
    if (f->ncomp == 1) {
        const jpg_comp *c = &f->comp[0];
        for (uint32_t y = 0; y < c->hb; y++)
            for (uint32_t x = 0; x < c->wb; x++)
                count_block(rows[0][y] + (size_t)x * 64, &pred[0], dc_freq[dc_tbl[0]],
                            inside_ac ? ac_freq[ac_tbl[0]] : NULL);
        return;
    }
    for (uint32_t my = 0; my < f->mcuy; my++)
        for (uint32_t mx = 0; mx < f->mcux; mx++)
            for (int i = 0; i < f->ncomp; i++) {
                const jpg_comp *c = &f->comp[i];
                long *dc = dc_freq[dc_tbl[i]], *ac = ac_freq[ac_tbl[i]];
                for (int y = 0; y < c->v; y++)
                    for (int x = 0; x < c->h; x++) {
                        uint32_t bx = mx * c->h + (uint32_t)x, by = my * c->v + (uint32_t)y;
                        if (bx < c->wb && by < c->hb) {
                            count_block(rows[i][by] + (size_t)bx * 64, &pred[i], dc,
                                        inside_ac ? ac : NULL);
                        } else {
                            dc[0]++;
                            ac[0x00]++;
                        }
                    }
            }
}

static void emit_eobrun(enc *e)
{
    if (e->eobrun == 0)
        return;
    int nb = nbits_of(e->eobrun) - 1;
    put_sym(e, e->ac, nb << 4);
    if (nb)
        put_bits(e, e->eobrun & ((1u << nb) - 1), nb);
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
    int16_t zz[64];
    uint64_t m = zigzag(b, ss, se, al, zz);
    int last = ss - 1;
    while (m) {
        int k = __builtin_ctzll(m);
        m &= m - 1;
        emit_eobrun(e);
        int r = k - last - 1;
        while (r > 15) {
            put_sym(e, e->ac, 0xF0);
            r -= 16;
        }
        put_value(e, e->ac, r, zz[k], 10);
        last = k;
    }
    if (last < se) {
        e->eobrun++;
        if (e->eobrun == EOBRUN_MAX)
            emit_eobrun(e);
    }
}

static void block_ac_refine(enc *e, const int16_t *b, int ss, int se, int al)
{
    int16_t zz[64];
    uint64_t nz = zigzag(b, ss, se, al, zz), one = 0;
    for (uint64_t m = nz; m; m &= m - 1) {
        int k = __builtin_ctzll(m);
        one |= (uint64_t)(zz[k] == 1 || zz[k] == -1) << k;
    }
    int eob = one ? 63 - __builtin_clzll(one) : 0;
    /* Zeros are skipped through the mask; r counts those since the last symbol. */
    int r = 0, prev = ss - 1;
    unsigned br = 0, br_start = e->be;
    for (uint64_t m = nz; m; m &= m - 1) {
        int k = __builtin_ctzll(m);
        r += k - prev - 1;
        prev = k;
        int v = zz[k], a = v < 0 ? -v : v;
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
        put_bits(e, v < 0 ? 0 : 1, 1);
        for (unsigned i = 0; i < br; i++)
            put_bits(e, e->corr[br_start + i], 1);
        br_start = 0;
        br = 0;
        r = 0;
    }
    r += se - prev;
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

/* Makes room for the worst case of `blocks` more blocks. */
static int reserve(enc *e, jpg_buf *out, size_t blocks)
{
    out->len = (size_t)(e->p - out->p);
    size_t need = blocks * BLOCK_MAX_BYTES + 64;
    if (out->cap - out->len < need) {
        if (jpg_buf_reserve(out, need > out->cap ? need : out->cap) != 0)
            return -ENOMEM;
        e->p = out->p + out->len;
    }
    return 0;
}

void jpg_progress_init(jpg_progress *p)
{
    memset(p, 0, sizeof *p);
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->more, NULL);
}

void jpg_progress_destroy(jpg_progress *p)
{
    pthread_mutex_destroy(&p->lock);
    pthread_cond_destroy(&p->more);
}

void jpg_progress_publish(jpg_progress *p, int c, uint32_t rows)
{
    pthread_mutex_lock(&p->lock);
    p->rows[c] = rows;
    pthread_cond_broadcast(&p->more);
    pthread_mutex_unlock(&p->lock);
}

void jpg_progress_fail(jpg_progress *p)
{
    pthread_mutex_lock(&p->lock);
    p->failed = 1;
    pthread_cond_broadcast(&p->more);
    pthread_mutex_unlock(&p->lock);
}

int jpg_progress_wait(jpg_progress *p, int c, uint32_t rows)
{
    pthread_mutex_lock(&p->lock);
    while (p->rows[c] < rows && !p->failed)
        pthread_cond_wait(&p->more, &p->lock);
    int rc = p->rows[c] < rows ? -EBADMSG : 0;
    pthread_mutex_unlock(&p->lock);
    return rc;
}

/* Waits for the rows of blocks MCU row my of scan s needs. */
static int gate_row(jpg_progress *gate, const jpg_frame *f, const jpg_scan *s, uint32_t my)
{
    for (int i = 0; i < s->ncomp; i++) {
        const jpg_comp *c = &f->comp[s->comp[i]];
        uint32_t need = s->ncomp == 1 ? my + 1 : (my + 1) * (uint32_t)c->v;
        if (jpg_progress_wait(gate, s->comp[i], need < c->hb ? need : c->hb) != 0)
            return -EBADMSG;
    }
    return 0;
}

int jpg_scan_encode(const jpg_frame *f, const jpg_scan *s, const jpg_coefs coef, jpg_buf *out,
                    jpg_progress *gate, long (*ac_hist)[257])
{
    enc *e = calloc(1, sizeof *e);
    if (!e)
        return -ENOMEM;
    if (f->progressive && s->ss > 0)
        e->ac = &s->ac[0];
    uint32_t per_row, rows;
    size_t mcu_blocks = 1;
    if (s->ncomp == 1) {
        per_row = f->comp[s->comp[0]].wb;
        rows = f->comp[s->comp[0]].hb;
    } else {
        per_row = f->mcux;
        rows = f->mcuy;
        mcu_blocks = 0;
        for (int i = 0; i < s->ncomp; i++)
            mcu_blocks += (size_t)f->comp[s->comp[i]].h * f->comp[s->comp[i]].v;
    }
    int rc = 0;
    if (jpg_buf_reserve(out, 64) != 0) {
        free(e);
        return -ENOMEM;
    }
    e->p = out->p + out->len;
    uint64_t in_interval = 0;
    unsigned rst = 0;
    for (uint32_t my = 0; my < rows && !e->err; my++) {
        if (gate && (rc = gate_row(gate, f, s, my)) != 0)
            goto done;
        for (uint32_t mx = 0; mx < per_row && !e->err; mx++) {
            if (reserve(e, out, mcu_blocks) != 0) {
                rc = -ENOMEM;
                goto done;
            }
            if (s->restart && in_interval == s->restart) {
                emit_eobrun(e);
                flush_bits(e);
                *e->p++ = 0xFF;
                *e->p++ = (uint8_t)(0xD0 + (rst++ & 7));
                memset(e->pred, 0, sizeof e->pred);
                e->eobrun = 0;
                e->be = 0;
                in_interval = 0;
            }
            in_interval++;
            if (s->ncomp == 1) {
                const jpg_comp *c = &f->comp[s->comp[0]];
                e->hist = ac_hist ? ac_hist[s->comp[0]] : NULL;
                encode_block(e, s, 0, coef[s->comp[0]] + ((size_t)my * c->pw + mx) * 64);
                continue;
            }
            for (int i = 0; i < s->ncomp; i++) {
                const jpg_comp *c = &f->comp[s->comp[i]];
                const int16_t *base = coef[s->comp[i]];
                for (int y = 0; y < c->v; y++)
                    for (int x = 0; x < c->h; x++) {
                        size_t bx = (size_t)mx * c->h + x, by = (size_t)my * c->v + y;
                        e->hist = ac_hist && bx < c->wb && by < c->hb ? ac_hist[s->comp[i]] : NULL;
                        encode_block(e, s, i, base + (by * c->pw + bx) * 64);
                    }
            }
        }
    }
    if (reserve(e, out, 1) != 0) {
        rc = -ENOMEM;
        goto done;
    }
    emit_eobrun(e);
    flush_bits(e);
    out->len = (size_t)(e->p - out->p);
    rc = e->err ? e->err : (out->err ? -ENOMEM : 0);
done:
    free(e);
    return rc;
}

/* Coefficient-domain cipher of the JPEG codec (see jpeg.h, "Cipher").
 *
 * Per component c, over the n = wb * hb blocks inside the image, in raster order:
 *   - a permutation of [0, n) by Fisher-Yates, drawing 32-bit words w from the ChaCha20
 *     keystream of perm_key with nonce "jpgP" || c || pidx[c] || 0^6 and taking
 *     j = w * (i+1) >> 32; block i of the original goes to position perm[i];
 *   - a bit stream: the ChaCha20 keystream of diff_key with nonce "jpgD" || c || 0^7,
 *     read as little-endian 32-bit words, bits taken from the least significant up,
 *     consumed block after block in the order of the original blocks i:
 *       DC:  32 bits w, k = w * M >> 32, d' = lo + (d - lo + k) mod M, M = hi - lo + 1;
 *       flat block (all AC zero) of a textured component: 1 bit chooses the natural
 *            position 1 or 8, 1 bit the sign of the value +-t[c] put there;
 *       other blocks: for each nonzero AC value v in natural order, of size category s
 *            (2^(s-1) <= |v| < 2^s), its s-bit JPEG representation (v, or v + 2^s - 1
 *            when negative) is XORed with the next s bits: the result is again of
 *            category s, so the zero pattern and every run/size symbol stay the same.
 * Blocks outside the image (MCU padding) are not touched. */
#include <endian.h>
#include <errno.h>
#include <pthread.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include "codec/jpeg_int.h"

#define KS_BYTES 4096
#define PREFETCH_AHEAD 12

typedef struct keystream {
    uint8_t buf[KS_BYTES];
    size_t pos;
    uint32_t ic;
    uint8_t nonce[crypto_stream_chacha20_ietf_NONCEBYTES];
    const uint8_t *key;
} keystream;

static void ks_init(keystream *k, const uint8_t key[32], char tag, int comp, int index)
{
    memset(k, 0, sizeof *k);
    memcpy(k->nonce, "jpg", 3);
    k->nonce[3] = (uint8_t)tag;
    k->nonce[4] = (uint8_t)comp;
    k->nonce[5] = (uint8_t)index;
    k->key = key;
    k->pos = KS_BYTES;
}

static inline uint32_t ks_word(keystream *k)
{
    if (k->pos == KS_BYTES) {
        memset(k->buf, 0, KS_BYTES);
        crypto_stream_chacha20_ietf_xor_ic(k->buf, k->buf, KS_BYTES, k->nonce, k->ic, k->key);
        k->ic += KS_BYTES / 64;
        k->pos = 0;
    }
    const uint8_t *w = k->buf + k->pos;
    k->pos += 4;
    return (uint32_t)w[0] | (uint32_t)w[1] << 8 | (uint32_t)w[2] << 16 | (uint32_t)w[3] << 24;
}

/* The masking stream as bits: the keystream read as little-endian 32-bit words, bits
 * from the least significant up, is the keystream's bytes read least significant bit
 * first.  So the next nb bits are one unaligned 64-bit load at the bit position, and
 * the values of a block can be masked independently of each other once their
 * positions are known (no serial bit reservoir). */
typedef struct bitstream {
    uint8_t buf[KS_BYTES + 8]; /* 8 bytes of slack for the last unaligned load */
    size_t len;                /* keystream bytes in buf */
    size_t bit;                /* next unread bit of buf */
    uint32_t ic;
    uint8_t nonce[crypto_stream_chacha20_ietf_NONCEBYTES];
    const uint8_t *key;
} bitstream;

/* Most bits one block consumes: 32 for DC, at most 11 for each of 63 AC values. */
#define BLOCK_BITS_MAX (32 + 63 * 11)

static void bs_init(bitstream *b, const uint8_t key[32], int comp)
{
    memset(b, 0, sizeof *b);
    memcpy(b->nonce, "jpgD", 4);
    b->nonce[4] = (uint8_t)comp;
    b->key = key;
}

/* Makes sure the bits of one more block are in buf. */
static inline void bs_reserve(bitstream *b)
{
    size_t at = b->bit >> 3;
    if (b->len - at >= BLOCK_BITS_MAX / 8 + 2)
        return;
    memmove(b->buf, b->buf + at, b->len - at);
    b->len -= at;
    b->bit &= 7;
    size_t more = (KS_BYTES - b->len) & ~(size_t)63;
    memset(b->buf + b->len, 0, more);
    crypto_stream_chacha20_ietf_xor_ic(b->buf + b->len, b->buf + b->len, more, b->nonce, b->ic,
                                       b->key);
    b->ic += (uint32_t)(more / 64);
    b->len += more;
}

static inline uint64_t load_le64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, sizeof v);
    return le64toh(v); /* a plain load on little-endian hosts */
}

/* nb <= 32 bits starting at bit position pos of buf. */
static inline uint32_t bs_peek(const bitstream *b, size_t pos, int nb)
{
    return (uint32_t)((load_le64(b->buf + (pos >> 3)) >> (pos & 7)) & ((1ull << nb) - 1));
}

static inline int nbits_of(unsigned a)
{
    return a ? 32 - __builtin_clz(a) : 0;
}

/* Bit z set when b[z] != 0, z = 1..63. */
static inline uint64_t ac_mask(const int16_t *b)
{
#ifdef __SSE2__
    uint64_t m = 0;
    __m128i zero = _mm_setzero_si128();
    for (int i = 0; i < 4; i++) {
        __m128i a = _mm_loadu_si128((const __m128i *)(const void *)(b + 16 * i));
        __m128i c = _mm_loadu_si128((const __m128i *)(const void *)(b + 16 * i + 8));
        __m128i p = _mm_packs_epi16(_mm_cmpeq_epi16(a, zero), _mm_cmpeq_epi16(c, zero));
        m |= (uint64_t)(uint16_t)_mm_movemask_epi8(p) << (16 * i);
    }
    return ~m & ~1ull;
#else
    uint64_t m = 0;
    for (int z = 1; z < 64; z++)
        m |= (uint64_t)(b[z] != 0) << z;
    return m;
#endif
}

/* out = cipher (or plain, decrypt) of block in; in != out. */
static int mask_block(const int16_t *in, int16_t *out, bitstream *ks, int lo, int m, int flat,
                      int tex, int decrypt)
{
    int d = in[0] - lo;
    if (d < 0 || d >= m)
        return -ERANGE;
    bs_reserve(ks);
    size_t pos = ks->bit;
    int k = (int)(((uint64_t)bs_peek(ks, pos, 32) * (uint32_t)m) >> 32);
    pos += 32;
    d = decrypt ? d - k : d + k;
    d = d < 0 ? d + m : d >= m ? d - m : d;
    if (flat) {
        memset(out, 0, 64 * sizeof *out);
        uint32_t r = bs_peek(ks, pos, 2);
        ks->bit = pos + 2;
        if (!decrypt)
            out[r & 1 ? 8 : 1] = (int16_t)(r & 2 ? -tex : tex);
        out[0] = (int16_t)(lo + d);
        return 0;
    }
    memcpy(out, in, 64 * sizeof *out);
    out[0] = (int16_t)(lo + d);
    int big = 0;
    for (uint64_t mk = ac_mask(in); mk; mk &= mk - 1) {
        int z = __builtin_ctzll(mk);
        int v = in[z];
        int s = nbits_of((unsigned)(v < 0 ? -v : v));
        big |= s > 11;
        s &= 15; /* keeps the shifts defined; the block is refused below */
        int full = (1 << s) - 1;
        int bits = (v > 0 ? v : v + full) ^ (int)bs_peek(ks, pos, s);
        pos += (size_t)s;
        out[z] = (int16_t)((bits >> (s - 1)) ? bits : bits - full);
    }
    ks->bit = pos;
    return big ? -ERANGE : 0;
}

static void make_perm(uint32_t *perm, size_t n, keystream *ks)
{
    for (size_t i = 0; i < n; i++)
        perm[i] = (uint32_t)i;
    for (size_t i = n; i-- > 1;) {
        size_t j = (size_t)(((uint64_t)ks_word(ks) * (i + 1)) >> 32);
        uint32_t t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
}

static inline int16_t *block_at(int16_t *const *rows, uint32_t wb, size_t i)
{
    return rows[i / wb] + (i % wb) * 64;
}

/* Pearson r^2 between the original AC energy e at each position and the energy ce of
 * the cipher block that lands there (block i lands on perm[i]). */
static double perm_corr(const double *e, const double *ce, const uint32_t *perm, size_t n)
{
    double m = 0, mc = 0, sxy = 0, sxx = 0, syy = 0;
    for (size_t i = 0; i < n; i++) {
        m += e[i];
        mc += ce[i];
    }
    m /= (double)n;
    mc /= (double)n;
    for (size_t i = 0; i < n; i++) {
        sxy += (e[perm[i]] - m) * (ce[i] - mc);
        sxx += (e[i] - m) * (e[i] - m);
        syy += (ce[i] - mc) * (ce[i] - mc);
    }
    return sxx > 0 && syy > 0 ? sxy * sxy / (sxx * syy) : 0;
}

static double energy(const int16_t *b, const uint16_t *q)
{
    double s = 0;
    for (int z = 1; z < 64; z++) {
        double v = (double)b[z] * q[z];
        s += v * v;
    }
    return s;
}

/* Encryption with the permutation search: the masked blocks (which do not depend on the
 * permutation) are computed first, in original order, so that the search sees the
 * exact energies and DC values of the cipher blocks.  It keeps the permutation whose
 * worse correlation, of the AC-energy maps or of the DC (block mean) maps of original
 * and cipher, is smallest: on small images chance alignments of either are what makes
 * a cipher image resemble its original (SSIM). */
static int encrypt_searched(const jpg_comp *cp, int c, int16_t *const *sr, int16_t *const *dr,
                            jpg_cipher_params *p, uint32_t *perm, keystream *ks, bitstream *bs,
                            const uint8_t perm_key[32], const uint8_t diff_key[32])
{
    size_t n = (size_t)cp->wb * cp->hb;
    int16_t *tmp = malloc(n * 128);
    double *e = malloc(n * sizeof *e), *ce = malloc(n * sizeof *ce);
    double *d = malloc(n * sizeof *d), *cd = malloc(n * sizeof *cd);
    int rc = tmp && e && ce && d && cd ? 0 : -ENOMEM;
    const uint8_t *flat = p->textured[c] ? p->flat[c] : NULL;
    int lo = p->lo[c], m = p->hi[c] - p->lo[c] + 1;
    bs_init(bs, diff_key, c);
    for (size_t i = 0; i < n && rc == 0; i++) {
        const int16_t *in = block_at(sr, cp->wb, i);
        rc = mask_block(in, tmp + i * 64, bs, lo, m, flat && flat[i], p->tex[c], 0);
        if (flat && flat[i])
            p->flat_at8[c] += tmp[i * 64 + 8] != 0;
        e[i] = energy(in, p->qw[c]);
        ce[i] = energy(tmp + i * 64, p->qw[c]);
        d[i] = in[0];
        cd[i] = tmp[i * 64];
    }
    double best = 2;
    p->pidx[c] = 0;
    for (int k = 0; rc == 0 && k < JPG_PERM_TRIES; k++) {
        if (p->avoid[c] >> k & 1) /* an earlier choice the caller rejected */
            continue;
        ks_init(ks, perm_key, 'P', c, k);
        make_perm(perm, n, ks);
        double r2 = perm_corr(e, ce, perm, n), r2dc = perm_corr(d, cd, perm, n);
        if (r2dc > r2)
            r2 = r2dc;
        if (r2 < best) {
            best = r2;
            p->pidx[c] = (uint8_t)k;
        }
        if (r2 < JPG_PERM_GOOD_CORR * JPG_PERM_GOOD_CORR)
            break;
    }
    if (rc == 0) {
        ks_init(ks, perm_key, 'P', c, p->pidx[c]);
        make_perm(perm, n, ks);
        for (size_t i = 0; i < n; i++)
            memcpy(block_at(dr, cp->wb, perm[i]), tmp + i * 64, 128);
    }
    if (tmp)
        sodium_memzero(tmp, n * 128);
    free(tmp);
    free(e);
    free(ce);
    free(d);
    free(cd);
    return rc;
}

/* One component: its own permutation and keystreams, so components run concurrently. */
static int cipher_component(int decrypt, const jpg_frame *f, int c, const jpg_rows *src,
                            const jpg_rows *dst, jpg_cipher_params *p, const uint8_t perm_key[32],
                            const uint8_t diff_key[32])
{
    const jpg_comp *cp = &f->comp[c];
    size_t n = (size_t)cp->wb * cp->hb;
    if (n == 0)
        return 0;
    if (p->lo[c] > p->hi[c] || p->pidx[c] >= JPG_PERM_TRIES)
        return -ERANGE;
    keystream *ks = malloc(sizeof *ks);
    bitstream *bs = malloc(sizeof *bs);
    uint32_t *perm = malloc(n * sizeof *perm);
    int rc = ks && bs && perm ? 0 : -ENOMEM;
    const uint8_t *flat = p->textured[c] ? p->flat[c] : NULL;
    if (!decrypt)
        p->flat_at8[c] = 0;
    if (rc == 0 && !decrypt && p->qw[c] && n > 1 && n <= JPG_PERM_SEARCH_MAX) {
        rc = encrypt_searched(cp, c, src->row[c], dst->row[c], p, perm, ks, bs, perm_key, diff_key);
    } else if (rc == 0) {
        ks_init(ks, perm_key, 'P', c, p->pidx[c]);
        make_perm(perm, n, ks);
        bs_init(bs, diff_key, c);
        int lo = p->lo[c], m = p->hi[c] - p->lo[c] + 1, tex = p->tex[c];
        int16_t *const *sr = src->row[c], *const *dr = dst ? dst->row[c] : NULL;
        int16_t *const *er = decrypt && p->expect ? p->expect->row[c] : NULL;
        int16_t check[64];
        uint32_t wb = cp->wb;
        for (size_t i = 0; i < n && rc == 0; i++) {
            if (i + PREFETCH_AHEAD < n) {
                size_t a = perm[i + PREFETCH_AHEAD];
                const int16_t *pb = decrypt ? block_at(sr, wb, a) : block_at(dr, wb, a);
                __builtin_prefetch(pb);
                __builtin_prefetch(pb + 32);
            }
            const int16_t *in = decrypt ? block_at(sr, wb, perm[i]) : block_at(sr, wb, i);
            int16_t *out = er ? check : decrypt ? block_at(dr, wb, i) : block_at(dr, wb, perm[i]);
            rc = mask_block(in, out, bs, lo, m, flat && flat[i], tex, decrypt);
            if (!decrypt && flat && flat[i])
                p->flat_at8[c] += out[8] != 0;
            if (er && rc == 0 && memcmp(check, block_at(er, wb, i), sizeof check) != 0)
                rc = -EPROTO;
            /* Decryption writes blocks in raster order: each finished row can go. */
            if (p->progress && rc == 0 && (i + 1) % wb == 0)
                jpg_progress_publish(p->progress, c, (uint32_t)((i + 1) / wb));
        }
        sodium_memzero(check, sizeof check);
    }
    if (perm)
        sodium_memzero(perm, n * sizeof *perm);
    if (ks)
        sodium_memzero(ks, sizeof *ks);
    if (bs)
        sodium_memzero(bs, sizeof *bs);
    free(perm);
    free(ks);
    free(bs);
    return rc;
}

typedef struct cipher_job {
    int decrypt, rc;
    unsigned comps; /* bit c: component c */
    const jpg_frame *f;
    const jpg_rows *src, *dst;
    jpg_cipher_params *p;
    const uint8_t *perm_key, *diff_key;
} cipher_job;

static void *cipher_job_run(void *arg)
{
    cipher_job *j = arg;
    for (int c = 0; c < j->f->ncomp && j->rc == 0; c++)
        if (j->comps & (1u << c))
            j->rc = cipher_component(j->decrypt, j->f, c, j->src, j->dst, j->p, j->perm_key,
                                     j->diff_key);
    return NULL;
}

/* Images with fewer blocks than this are not worth a second thread. */
#define THREAD_MIN_BLOCKS 65536u

int jpg_cipher_run(int decrypt, const jpg_frame *f, const jpg_rows *src, const jpg_rows *dst,
                   jpg_cipher_params *p, const uint8_t perm_key[32], const uint8_t diff_key[32])
{
    /* Components are independent: split them over two threads, balancing block counts
     * (largest first into the lighter side). */
    cipher_job job[2];
    uint64_t load[2] = {0, 0}, total = 0;
    for (int k = 0; k < 2; k++)
        job[k] = (cipher_job){decrypt, 0, 0, f, src, dst, p, perm_key, diff_key};
    unsigned done = 0;
    for (int round = 0; round < f->ncomp; round++) {
        int best = -1;
        uint64_t bn = 0;
        for (int c = 0; c < f->ncomp; c++) {
            uint64_t nc = (uint64_t)f->comp[c].wb * f->comp[c].hb;
            if (!(done & (1u << c)) && (best < 0 || nc > bn)) {
                best = c;
                bn = nc;
            }
        }
        int side = load[1] < load[0];
        job[side].comps |= 1u << best;
        load[side] += bn;
        total += bn;
        done |= 1u << best;
    }
    pthread_t th;
    int threaded = total >= THREAD_MIN_BLOCKS && job[1].comps &&
                   pthread_create(&th, NULL, cipher_job_run, &job[1]) == 0;
    cipher_job_run(&job[0]);
    if (threaded)
        pthread_join(th, NULL);
    else
        cipher_job_run(&job[1]);
    return job[0].rc ? job[0].rc : job[1].rc;
}

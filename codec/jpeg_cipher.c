/* Coefficient-domain cipher of the JPEG codec (see jpeg.h, "Cipher").
 *
 * Per component c, over the n = wb * hb blocks inside the image, in raster order:
 *   - a permutation of [0, n) by Fisher-Yates, drawing 32-bit words w from the ChaCha20
 *     keystream of perm_key with nonce "jpgP" || c || 0^7 and taking j = w * (i+1) >> 32;
 *     block i of the original goes to position perm[i];
 *   - 64 little-endian 16-bit words k[0..63] per original block i (ChaCha20 keystream of
 *     diff_key, nonce "jpgD" || c || 0^7, 128 bytes per block in order):
 *       DC:  d' = lo + (d - lo + k[0] mod M) mod M,  M = hi - lo + 1
 *       AC:  for a nonzero value v of size category s (2^(s-1) <= |v| < 2^s), its s-bit
 *            JPEG representation (v, or v + 2^s - 1 when negative) is XORed with the low
 *            s bits of k[z] (z the natural index): the result is again of category s, so
 *            every run/size symbol of the block stays the same.
 * Zero AC values stay zero.  Blocks outside the image (MCU padding) are not touched. */
#include <errno.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "codec/jpeg_int.h"

#define KS_BYTES 4096

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

static const uint8_t *ks_take(keystream *k, size_t n)
{
    if (KS_BYTES - k->pos < n) {
        memset(k->buf, 0, KS_BYTES);
        crypto_stream_chacha20_ietf_xor_ic(k->buf, k->buf, KS_BYTES, k->nonce, k->ic, k->key);
        k->ic += KS_BYTES / 64;
        k->pos = 0;
    }
    const uint8_t *p = k->buf + k->pos;
    k->pos += n;
    return p;
}

static inline int nbits_of(unsigned a)
{
    return a ? 32 - __builtin_clz(a) : 0;
}

static int mask_block(int16_t *b, const uint8_t *ks, int lo, int hi, int decrypt)
{
    int m = hi - lo + 1;
    int d = b[0];
    if (d < lo || d > hi)
        return -ERANGE;
    int k = (ks[0] | ks[1] << 8) % m;
    b[0] = (int16_t)(lo + (decrypt ? (d - lo + m - k) : (d - lo + k)) % m);
    for (int z = 1; z < 64; z++) {
        int v = b[z];
        if (v == 0)
            continue;
        int s = nbits_of((unsigned)(v < 0 ? -v : v));
        if (s > 11)
            return -ERANGE;
        int full = (1 << s) - 1;
        int bits = v > 0 ? v : v + full;
        bits ^= (ks[2 * z] | ks[2 * z + 1] << 8) & full;
        b[z] = (int16_t)((bits >> (s - 1)) ? bits : bits - full);
    }
    return 0;
}

static void make_perm(uint32_t *perm, size_t n, keystream *ks)
{
    for (size_t i = 0; i < n; i++)
        perm[i] = (uint32_t)i;
    for (size_t i = n; i-- > 1;) {
        const uint8_t *w = ks_take(ks, 4);
        uint32_t r =
            (uint32_t)w[0] | (uint32_t)w[1] << 8 | (uint32_t)w[2] << 16 | (uint32_t)w[3] << 24;
        size_t j = (size_t)(((uint64_t)r * (i + 1)) >> 32);
        uint32_t t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
}

/* |Pearson r| between the energy of each block and that of the block it lands on. */
static double perm_corr(const double *e, const uint32_t *perm, size_t n)
{
    double m = 0, sxy = 0, sxx = 0;
    for (size_t i = 0; i < n; i++)
        m += e[i];
    m /= (double)n;
    for (size_t i = 0; i < n; i++) {
        sxy += (e[i] - m) * (e[perm[i]] - m);
        sxx += (e[i] - m) * (e[i] - m);
    }
    double r = sxx > 0 ? sxy / sxx : 0;
    return r < 0 ? -r : r;
}

/* Energy of the AC values of each block, dequantised with weights q (natural order). */
static double *block_energy(const jpg_comp *cp, const int16_t *arr, const uint16_t *q)
{
    size_t n = (size_t)cp->wb * cp->hb;
    double *e = malloc(n * sizeof *e + 1);
    if (!e)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        const int16_t *b = arr + ((i / cp->wb) * cp->pw + i % cp->wb) * 64;
        double s = 0;
        for (int z = 1; z < 64; z++) {
            double v = (double)b[z] * q[z];
            s += v * v;
        }
        e[i] = s;
    }
    return e;
}

int jpg_cipher_run(int decrypt, const jpg_frame *f, jpg_coefs coef, const int16_t lo[],
                   const int16_t hi[], uint8_t pidx[], const uint16_t *const qw[],
                   const uint8_t perm_key[32], const uint8_t diff_key[32])
{
    int rc = 0;
    keystream *ks = malloc(sizeof *ks);
    if (!ks)
        return -ENOMEM;
    for (int c = 0; c < f->ncomp && rc == 0; c++) {
        const jpg_comp *cp = &f->comp[c];
        size_t n = (size_t)cp->wb * cp->hb;
        if (lo[c] > hi[c])
            rc = -ERANGE;
        uint32_t *perm = malloc(n * sizeof *perm);
        int16_t *tmp = malloc(n * 64 * sizeof *tmp);
        if (!perm || !tmp) {
            free(perm);
            free(tmp);
            rc = -ENOMEM;
            break;
        }
        if (!decrypt && qw && qw[c] && n > 1) {
            /* Choose, among JPG_PERM_TRIES keyed permutations, the first whose block
             * energy map is nearly uncorrelated with the original's (else the best). */
            double *e = block_energy(cp, coef[c], qw[c]), best = 2;
            pidx[c] = 0;
            for (int t = 0; e && t < JPG_PERM_TRIES; t++) {
                ks_init(ks, perm_key, 'P', c, t);
                make_perm(perm, n, ks);
                double r = perm_corr(e, perm, n);
                if (r < best) {
                    best = r;
                    pidx[c] = (uint8_t)t;
                }
                if (r < JPG_PERM_GOOD_CORR)
                    break;
            }
            free(e);
        }
        ks_init(ks, perm_key, 'P', c, pidx[c]);
        make_perm(perm, n, ks);
        ks_init(ks, diff_key, 'D', c, 0);
        int16_t *arr = coef[c];
        for (size_t i = 0; i < n && rc == 0; i++) {
            size_t src = decrypt ? perm[i] : i, dst = decrypt ? i : perm[i];
            size_t sy = src / cp->wb, sx = src % cp->wb;
            int16_t *b = tmp + dst * 64;
            memcpy(b, arr + (sy * cp->pw + sx) * 64, 64 * sizeof *b);
            rc = mask_block(b, ks_take(ks, 128), lo[c], hi[c], decrypt);
        }
        if (rc == 0)
            for (size_t y = 0; y < cp->hb; y++)
                memcpy(arr + y * cp->pw * 64, tmp + y * cp->wb * 64,
                       (size_t)cp->wb * 64 * sizeof *tmp);
        sodium_memzero(perm, n * sizeof *perm);
        sodium_memzero(tmp, n * 64 * sizeof *tmp);
        free(perm);
        free(tmp);
    }
    sodium_memzero(ks, sizeof *ks);
    free(ks);
    return rc;
}

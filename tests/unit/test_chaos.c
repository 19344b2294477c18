/* Unit tests of the chaos research profile (codec/chaos.h): round trips on every sample
 * layout and geometry, argument checks, fixed test vectors, differential and statistical
 * measures on 512x512 images side by side with what the literature reports, key
 * sensitivity, and throughput.  The differential figures are not the default profile's:
 * one diffusion pass leaves a change invisible before its place in the scrambled order,
 * and the tests assert exactly that behaviour rather than the ideal. */
#include <errno.h>
#include <math.h>
#include <sodium.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "codec/chaos.h"
#include "codec/metrics.h"
#include "tap.h"

#define W 512
#define H 512

typedef struct pxc_chaos_geometry geometry;

static uint8_t perm_key[PXC_CHAOS_KEY_BYTES], diff_key[PXC_CHAOS_KEY_BYTES];

/* ---- helpers (as in test_cipher.c) ---- */

/* Reproducible pseudo-random bytes: the same on every run and machine. */
static void fill_random(void *buf, size_t len, uint64_t seed)
{
    uint8_t s[randombytes_SEEDBYTES] = {0};
    memcpy(s, &seed, sizeof seed);
    randombytes_buf_deterministic(buf, len, s);
}

static void fill_mod_u8(uint8_t *a, size_t n, uint32_t m, uint64_t seed)
{
    fill_random(a, n, seed);
    for (size_t i = 0; i < n; i++)
        a[i] = (uint8_t)(a[i] % m);
}

static void fill_mod_u16(uint16_t *a, size_t n, uint32_t m, uint64_t seed)
{
    fill_random(a, n * 2, seed);
    for (size_t i = 0; i < n; i++)
        a[i] = (uint16_t)(a[i] % m);
}

/* CPU time of this thread: throughput per core, whatever else the machine runs. */
static double cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* sin(2 pi t) by Bhaskara's rational approximation (error < 0.002). */
static double wave(double t)
{
    const double pi = 3.14159265358979323846;
    double x, sign = 1;
    t -= (double)(long)t;
    if (t < 0)
        t += 1;
    if (t >= 0.5) {
        t -= 0.5;
        sign = -1;
    }
    x = 2 * pi * t; /* in [0, pi) */
    return sign * 16 * x * (pi - x) / (5 * pi * pi - 4 * x * (pi - x));
}

/* A smooth, photo-like test image: gradients, sinusoids and a little noise. */
static void natural_image(uint8_t *img, size_t ch)
{
    uint8_t noise[W * H];
    fill_random(noise, sizeof noise, 77);
    for (size_t y = 0; y < H; y++)
        for (size_t x = 0; x < W; x++)
            for (size_t c = 0; c < ch; c++) {
                double v =
                    40 + 90.0 * (double)(x + y) / (W + H) + 20.0 * (double)c +
                    45 * wave((double)x / 97 + 0.1 * (double)c) * wave((double)y / 131 + 0.25) +
                    15 * wave((double)(x + 2 * y) / 41) + (noise[y * W + x] % 7) - 3;
                img[(y * W + x) * ch + c] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
            }
}

/* The statistics come from the product's metrics module (codec/metrics.h). */
static pxm_image flat_u8(const uint8_t *a, size_t n)
{
    return (pxm_image){a, 0, (uint32_t)n, 1, 1, 255};
}

static double npcr(const uint8_t *a, const uint8_t *b, size_t n)
{
    pxm_image x = flat_u8(a, n), y = flat_u8(b, n);
    double np, ua;
    pxm_npcr_uaci(&x, &y, &np, &ua);
    return np;
}

static double uaci(const uint8_t *a, const uint8_t *b, size_t n)
{
    pxm_image x = flat_u8(a, n), y = flat_u8(b, n);
    double np, ua;
    pxm_npcr_uaci(&x, &y, &np, &ua);
    return ua;
}

static double entropy(const uint8_t *a, size_t n)
{
    pxm_image x = flat_u8(a, n);
    return pxm_entropy(&x);
}

/* Pearson correlation of every sample with its neighbour (dx, dy) pixels away, in the
 * same channel, over all such pairs of a W x H image with ch channels. */
static double correlation(const uint8_t *img, size_t ch, size_t dx, size_t dy)
{
    pxm_image x = {img, 0, W, H, (uint32_t)ch, 255};
    return pxm_adjacent_corr(&x, (unsigned)dx, (unsigned)dy);
}

/* ---- round trips ---- */

/* Geometries (rows x cols); rows 0 means a NULL geometry (one row of cols samples). */
static const geometry shapes[] = {
    {0, 0},   {0, 1},   {1, 1},   {0, 7},    {7, 1},     {1, 9},     {3, 5},
    {0, 255}, {17, 13}, {25, 40}, {0, 1001}, {101, 303}, {W, W * 3},
};
#define NSHAPES (sizeof shapes / sizeof *shapes)

static size_t shape_n(const geometry *g)
{
    return g->rows ? g->rows * g->cols : g->cols;
}

static const geometry *shape_arg(const geometry *g)
{
    return g->rows ? g : NULL;
}

/* Encrypts random samples mod m, checks range and change, decrypts, compares. */
static int roundtrip_u8(const geometry *g, uint32_t m, uint64_t seed, const char **why)
{
    size_t n = shape_n(g);
    uint8_t *plain = malloc(n + 1), *buf = malloc(n + 1);
    int good = 0;

    *why = "round trip";
    fill_mod_u8(plain, n, m, seed);
    memcpy(buf, plain, n);
    if (pxc_chaos_encrypt_u8(buf, n, m, shape_arg(g), perm_key, diff_key) != 0) {
        *why = "encrypt failed";
        goto out;
    }
    for (size_t i = 0; i < n; i++)
        if (buf[i] >= m) {
            *why = "cipher sample out of range";
            goto out;
        }
    if (m > 1 && n >= 16 && memcmp(buf, plain, n) == 0) {
        *why = "cipher equals plain";
        goto out;
    }
    if (pxc_chaos_decrypt_u8(buf, n, m, shape_arg(g), perm_key, diff_key) != 0) {
        *why = "decrypt failed";
        goto out;
    }
    good = memcmp(buf, plain, n) == 0;
out:
    free(plain);
    free(buf);
    return good;
}

static int roundtrip_u16(const geometry *g, uint32_t m, uint64_t seed, const char **why)
{
    size_t n = shape_n(g);
    uint16_t *plain = malloc(2 * n + 2), *buf = malloc(2 * n + 2);
    int good = 0;

    *why = "round trip";
    fill_mod_u16(plain, n, m, seed);
    memcpy(buf, plain, 2 * n);
    if (pxc_chaos_encrypt_u16(buf, n, m, shape_arg(g), perm_key, diff_key) != 0) {
        *why = "encrypt failed";
        goto out;
    }
    for (size_t i = 0; i < n; i++)
        if (buf[i] >= m) {
            *why = "cipher sample out of range";
            goto out;
        }
    if (m > 1 && n >= 16 && memcmp(buf, plain, 2 * n) == 0) {
        *why = "cipher equals plain";
        goto out;
    }
    if (pxc_chaos_decrypt_u16(buf, n, m, shape_arg(g), perm_key, diff_key) != 0) {
        *why = "decrypt failed";
        goto out;
    }
    good = memcmp(buf, plain, 2 * n) == 0;
out:
    free(plain);
    free(buf);
    return good;
}

static void test_roundtrips(void)
{
    static const uint32_t mods8[] = {1, 2, 4, 16, 256, 3, 7, 200, 255};
    static const uint32_t mods16[] = {2, 4, 16, 256, 7, 200, 1000, 4096, 65535, 65536};
    const char *why = "";

    for (size_t k = 0; k < sizeof mods8 / sizeof *mods8; k++) {
        size_t bad = NSHAPES;
        for (size_t s = 0; s < NSHAPES && bad == NSHAPES; s++)
            if (!roundtrip_u8(&shapes[s], mods8[k], 100 + s, &why))
                bad = s;
        ok(bad == NSHAPES, "8-bit samples mod %u: round trip, range, %zu shapes 0..%ux%u%s%s",
           mods8[k], NSHAPES, W, W * 3, bad < NSHAPES ? " - " : "", bad < NSHAPES ? why : "");
    }
    for (size_t k = 0; k < sizeof mods16 / sizeof *mods16; k++) {
        size_t bad = NSHAPES;
        for (size_t s = 0; s < NSHAPES && bad == NSHAPES; s++)
            if (!roundtrip_u16(&shapes[s], mods16[k], 300 + s, &why))
                bad = s;
        ok(bad == NSHAPES, "16-bit samples mod %u: round trip, range, %zu shapes%s%s", mods16[k],
           NSHAPES, bad < NSHAPES ? " - " : "", bad < NSHAPES ? why : "");
    }
}

/* Distinct values (0..n-1) survive the round trip, so positions map one to one. */
static void test_bijection(void)
{
    geometry g = {211, 199};
    size_t n = g.rows * g.cols;
    uint16_t *a = malloc(2 * n);
    int good = 1;
    size_t moved = 0;

    for (size_t i = 0; i < n; i++)
        a[i] = (uint16_t)i;
    good &= pxc_chaos_encrypt_u16(a, n, 65536, &g, perm_key, diff_key) == 0;
    for (size_t i = 0; i < n; i++)
        moved += a[i] != i;
    good &= pxc_chaos_decrypt_u16(a, n, 65536, &g, perm_key, diff_key) == 0;
    for (size_t i = 0; i < n; i++)
        good &= a[i] == i;
    ok(good && moved > n * 99 / 100,
       "%zu distinct samples (211 x 199) come back in place; the cipher differs in %zu", n, moved);
    free(a);
}

static void test_degenerate(void)
{
    uint8_t a[64], b[64];
    uint16_t w[64];
    geometry g8x8 = {8, 8}, g7x9 = {7, 9}, g0 = {0, 5}, huge = {(size_t)1 << 40, (size_t)1 << 40};

    memset(a, 0, sizeof a);
    ok(pxc_chaos_encrypt_u8(a, sizeof a, 1, &g8x8, perm_key, diff_key) == 0 &&
           memcmp(a, (uint8_t[64]){0}, 64) == 0,
       "palette of one entry: a no-op");
    ok(pxc_chaos_encrypt_u8(NULL, 0, 256, NULL, perm_key, diff_key) == 0 &&
           pxc_chaos_decrypt_u16(NULL, 0, 7, NULL, perm_key, diff_key) == 0,
       "zero samples, NULL buffer: a no-op");
    ok(pxc_chaos_encrypt_u8(NULL, 1, 256, NULL, perm_key, diff_key) == -EINVAL,
       "NULL buffer with samples: -EINVAL");
    ok(pxc_chaos_encrypt_u8(a, 8, 0, NULL, perm_key, diff_key) == -EINVAL &&
           pxc_chaos_encrypt_u8(a, 8, 257, NULL, perm_key, diff_key) == -EINVAL &&
           pxc_chaos_encrypt_u16(w, 8, 0, NULL, perm_key, diff_key) == -EINVAL &&
           pxc_chaos_encrypt_u16(w, 8, 65537, NULL, perm_key, diff_key) == -EINVAL,
       "modulus 0, 257 (8-bit), 65537 (16-bit): -EINVAL");

    fill_mod_u8(a, sizeof a, 200, 3);
    memcpy(b, a, sizeof a);
    ok(pxc_chaos_encrypt_u8(a, 64, 200, &g7x9, perm_key, diff_key) == -EINVAL &&
           pxc_chaos_encrypt_u8(a, 5, 200, &g0, perm_key, diff_key) == -EINVAL &&
           pxc_chaos_decrypt_u8(a, 64, 200, &huge, perm_key, diff_key) == -EINVAL &&
           memcmp(a, b, sizeof a) == 0,
       "rows x cols != n (7 x 9, 0 x 5, 2^40 x 2^40 overflowing): -EINVAL, samples untouched");

    fill_mod_u8(a, sizeof a, 5, 9);
    a[40] = 5;
    memcpy(b, a, sizeof a);
    ok(pxc_chaos_encrypt_u8(a, sizeof a, 5, &g8x8, perm_key, diff_key) == -ERANGE &&
           memcmp(a, b, sizeof a) == 0,
       "index past a 5-entry palette: -ERANGE, samples untouched");
    fill_mod_u16(w, 64, 1024, 10);
    w[63] = 1024;
    ok(pxc_chaos_decrypt_u16(w, 64, 1024, &g8x8, perm_key, diff_key) == -ERANGE,
       "16-bit sample past modulus 1024: -ERANGE");
}

/* The 8-bit and 16-bit entry points agree; a NULL geometry is one row; the geometry is
 * part of the key schedule, so another one with the same n gives another cipher. */
static void test_widths_and_geometry(void)
{
    static const uint32_t mods[] = {2, 16, 256, 7, 200, 255};
    geometry g = {123, 97}, row = {1, 123 * 97}, other = {97, 123};
    size_t n = g.rows * g.cols;
    uint8_t *a = malloc(n), *b = malloc(n), *plain = malloc(n);
    uint16_t *w = malloc(2 * n);
    int good = 1;

    for (size_t k = 0; k < sizeof mods / sizeof *mods; k++) {
        fill_mod_u8(a, n, mods[k], 500 + k);
        for (size_t i = 0; i < n; i++)
            w[i] = a[i];
        pxc_chaos_encrypt_u8(a, n, mods[k], &g, perm_key, diff_key);
        pxc_chaos_encrypt_u16(w, n, mods[k], &g, perm_key, diff_key);
        for (size_t i = 0; i < n; i++)
            good &= w[i] == a[i];
    }
    ok(good, "8-bit and 16-bit storage give the same ciphertext for moduli 2..256");

    fill_mod_u8(plain, n, 256, 600);
    memcpy(a, plain, n);
    memcpy(b, plain, n);
    pxc_chaos_encrypt_u8(a, n, 256, NULL, perm_key, diff_key);
    pxc_chaos_encrypt_u8(b, n, 256, &row, perm_key, diff_key);
    ok(memcmp(a, b, n) == 0, "NULL geometry is one row of n samples");

    memcpy(a, plain, n);
    memcpy(b, plain, n);
    pxc_chaos_encrypt_u8(a, n, 256, &g, perm_key, diff_key);
    pxc_chaos_encrypt_u8(b, n, 256, &other, perm_key, diff_key);
    double np = npcr(a, b, n);
    pxc_chaos_decrypt_u8(a, n, 256, &other, perm_key, diff_key);
    double wrong = npcr(a, plain, n);
    ok(np >= 99.0 && wrong >= 99.0,
       "123 x 97 vs 97 x 123: ciphers differ in %.2f %%; decrypting with the wrong geometry "
       "leaves %.2f %% wrong",
       np, wrong);
    free(a);
    free(b);
    free(plain);
    free(w);
}

/* ---- fixed vectors: the format must not change between machines or builds ---- */

static void hex(char *out, const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        sprintf(out + 2 * i, "%02x", p[i]);
}

static void digest_vector(char out[65], const void *p, size_t bytes)
{
    uint8_t d[32];
    crypto_generichash(d, sizeof d, p, bytes, NULL, 0);
    hex(out, d, sizeof d);
}

/* Expected values come from an independent reference implementation of chaos.h's
 * description in Python (arbitrary-precision integers, hashlib's keyed BLAKE2b). */
typedef struct vector_case {
    const char *name;
    int wide;
    uint32_t m, mul; /* samples (i * mul) mod m */
    const char *blake2b;
} vector_case;

#define VEC_ROWS 61
#define VEC_COLS 291

static const vector_case vector_cases[] = {
    {"8-bit mod 256", 0, 256, 31,
     "3d3a5cb8c2f39dd90bd065a5104e9c0d049ae588d2b54a893e9be6a9afe3933c"},
    {"8-bit mod 16", 0, 16, 5, "5fe503e8431174554f06b392ba53bff97b2d50a4c66bf317e3fc05bdca9cee10"},
    {"palette mod 7", 0, 7, 1, "2bdb78054ba547167eb0a7527ab0de1feeef79d35231859a96c799b6f13d9f45"},
    {"palette mod 200", 0, 200, 13,
     "8cd20634490c8ca7fef31a8ab357ef9f8978c9d827cf8ecb628389dd28646ba8"},
    {"16-bit mod 65536", 1, 65536, 40503,
     "c163da89626f29cc95772d1ad05917b544eadc34702d943773b24aac75fc2bc0"},
    {"16-bit mod 4096", 1, 4096, 40503,
     "ff064dabede58b5cf255960a16c099f07db171d758ef87baeb169625bd75cb7b"},
    {"16-bit mod 1000", 1, 1000, 40503,
     "dbb424da37e9b2ed1e823fcd89a1eab16fc87f36bab7c86eec99750a95a761c0"},
};

static void vector_keys(uint8_t k1[32], uint8_t k2[32])
{
    for (int i = 0; i < 32; i++) {
        k1[i] = (uint8_t)i;
        k2[i] = (uint8_t)(0x80 + i);
    }
}

static void test_vectors(void)
{
    uint8_t k1[32], k2[32], a8[24] = {0}, s8[100];
    geometry g10 = {10, 10}, g = {VEC_ROWS, VEC_COLS};
    size_t n = VEC_ROWS * VEC_COLS;
    uint8_t *buf = malloc(2 * n);
    char got[65], small_hex[2 * 100 + 1];

    vector_keys(k1, k2);
    pxc_chaos_encrypt_u8(a8, sizeof a8, 256, NULL, k1, k2);
    hex(small_hex, a8, sizeof a8);
    ok(strcmp(small_hex, "db3817d12a7145df1dc0e1295207a907ac9ccc55a3041ea8") == 0,
       "vector: 24 zero bytes, mod 256, one row -> %s", small_hex);
    for (size_t i = 0; i < sizeof s8; i++)
        s8[i] = (uint8_t)(i * 7 % 5);
    pxc_chaos_encrypt_u8(s8, sizeof s8, 5, &g10, k1, k2);
    hex(small_hex, s8, sizeof s8);
    ok(strcmp(small_hex, "0304020100020304040201000400040400020200030304030304000404020102010203020"
                         "2040104040003030200020304030301010202030403030002000304010303030403010303"
                         "020203000203040403040402030002000400030003020100040401") == 0,
       "vector: 100 indices of a 5-entry palette, 10 x 10");

    for (size_t c = 0; c < sizeof vector_cases / sizeof *vector_cases; c++) {
        const vector_case *vc = &vector_cases[c];
        uint16_t *w = (uint16_t *)(void *)buf;
        if (vc->wide) {
            for (size_t i = 0; i < n; i++)
                w[i] = (uint16_t)(i * vc->mul % vc->m);
            pxc_chaos_encrypt_u16(w, n, vc->m, &g, k1, k2);
            for (size_t i = 0; i < n; i++) { /* hashed little-endian, whatever the host */
                uint16_t v = w[i];
                buf[2 * i] = (uint8_t)v;
                buf[2 * i + 1] = (uint8_t)(v >> 8);
            }
        } else {
            for (size_t i = 0; i < n; i++)
                buf[i] = (uint8_t)(i * vc->mul % vc->m);
            pxc_chaos_encrypt_u8(buf, n, vc->m, &g, k1, k2);
        }
        digest_vector(got, buf, n << vc->wide);
        ok(strcmp(got, vc->blake2b) == 0, "vector: %d x %d samples, %s, BLAKE2b %s", VEC_ROWS,
           VEC_COLS, vc->name, got);
    }
    free(buf);
}

/* ---- quality on 512x512 images ---- */

#define IDEAL_NPCR 99.609 /* 100 (1 - 1/256) */
#define IDEAL_UACI 33.464

/* Finds, by group testing, the plain sample that the scrambling puts first: cipher
 * sample 0 depends on the first scrambled plain sample only. */
static size_t first_scrambled(const uint8_t *img, const uint8_t *c1, size_t n, const geometry *g)
{
    uint8_t *t = malloc(n);
    size_t lo = 0, hi = n;

    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        memcpy(t, img, n);
        for (size_t i = lo; i < mid; i++)
            t[i] = (uint8_t)(t[i] + 1);
        pxc_chaos_encrypt_u8(t, n, 256, g, perm_key, diff_key);
        if (t[0] != c1[0])
            hi = mid;
        else
            lo = mid;
    }
    free(t);
    return lo;
}

/* Changes sample p by delta, encrypts: whole-image NPCR/UACI, the first differing cipher
 * position q (the change's place in the scrambled order), NPCR/UACI of the part from q on,
 * and whether the ciphers agree before q. */
typedef struct diff_result {
    double npcr, uaci, tail_npcr, tail_uaci;
    size_t q;
} diff_result;

static diff_result one_change(const uint8_t *img, const uint8_t *c1, uint8_t *c2, size_t n,
                              const geometry *g, size_t p, int delta)
{
    diff_result r;

    memcpy(c2, img, n);
    c2[p] = (uint8_t)(c2[p] + delta);
    pxc_chaos_encrypt_u8(c2, n, 256, g, perm_key, diff_key);
    r.npcr = npcr(c1, c2, n);
    r.uaci = uaci(c1, c2, n);
    for (r.q = 0; r.q < n && c1[r.q] == c2[r.q]; r.q++)
        ;
    r.tail_npcr = npcr(c1 + r.q, c2 + r.q, n - r.q);
    r.tail_uaci = uaci(c1 + r.q, c2 + r.q, n - r.q);
    return r;
}

/* The diffused part behaves like two independent uniform ciphers: NPCR and UACI within
 * five standard deviations of the ideal for its length (too short a part is not judged). */
static int tail_ideal(const diff_result *r, size_t n)
{
    double len = (double)(n - r->q);
    if (len < 1024)
        return 1;
    double sd_npcr = 100 * sqrt(255.0 / 65536 / len), sd_uaci = 100 * sqrt(1.0 / 18 / len);
    return r->tail_npcr >= IDEAL_NPCR - 5 * sd_npcr && r->tail_npcr <= IDEAL_NPCR + 5 * sd_npcr &&
           r->tail_uaci >= IDEAL_UACI - 5 * sd_uaci && r->tail_uaci <= IDEAL_UACI + 5 * sd_uaci;
}

static int delta_for(uint8_t v, size_t k)
{
    return v == 255 ? -1 : v == 0 ? 1 : k % 2 ? -1 : 1;
}

static void test_differential(const char *name, size_t ch)
{
    size_t n = (size_t)W * H * ch;
    geometry g = {H, W * ch};
    size_t pos[] = {0, n / 2 + W * ch / 2, n - 1, n / 3, 12345 % n, n - W * ch};
    uint8_t *img = malloc(n), *c1 = malloc(n), *c2 = malloc(n);
    double sum_np = 0, sum_ua = 0, sum_model = 0, min_np = 100;
    int model_good = 1, tails = 0;
    diff_result r;

    natural_image(img, ch);
    memcpy(c1, img, n);
    pxc_chaos_encrypt_u8(c1, n, 256, &g, perm_key, diff_key);

    /* The best case, which is what papers report: the change is scrambled to the front. */
    size_t first = first_scrambled(img, c1, n, &g);
    r = one_change(img, c1, c2, n, &g, first, delta_for(img[first], 0));
    ok(r.q == 0 && tail_ideal(&r, n) && r.npcr >= 99.5 && r.uaci >= 33.2 && r.uaci <= 33.7,
       "%s 512x512, best case (sample %zu, scrambled first): NPCR %.3f %%, UACI %.3f %% "
       "(ideal %.2f / %.2f)",
       name, first, r.npcr, r.uaci, IDEAL_NPCR, IDEAL_UACI);

    /* Fixed positions: nothing before q changes, everything from q on is diffused. */
    for (size_t k = 0; k < sizeof pos / sizeof *pos; k++) {
        size_t p = pos[k];
        r = one_change(img, c1, c2, n, &g, p, delta_for(img[p], k));
        double model = IDEAL_NPCR * (double)(n - r.q) / (double)n;
        ok(r.q < n && tail_ideal(&r, n) && r.npcr <= model + 0.3 && r.npcr >= model - 0.3,
           "%s 512x512, sample %zu changed: NPCR %.3f %%, UACI %.3f %%; scrambled to %zu "
           "(%.1f %%), from there NPCR %.3f %%, UACI %.3f %%",
           name, p, r.npcr, r.uaci, r.q, 100.0 * (double)r.q / (double)n, r.tail_npcr, r.tail_uaci);
    }

    /* Random positions: the average a user gets. */
    enum { TRIALS = 32 };
    uint32_t rnd[TRIALS];
    fill_random(rnd, sizeof rnd, 4000 + ch);
    for (int k = 0; k < TRIALS; k++) {
        size_t p = rnd[k] % n;
        r = one_change(img, c1, c2, n, &g, p, delta_for(img[p], (size_t)k));
        double model = IDEAL_NPCR * (double)(n - r.q) / (double)n;
        model_good &= r.npcr <= model + 0.3 && r.npcr >= model - 0.3;
        tails += tail_ideal(&r, n);
        sum_np += r.npcr;
        sum_ua += r.uaci;
        sum_model += model;
        min_np = r.npcr < min_np ? r.npcr : min_np;
    }
    ok(model_good && tails == TRIALS,
       "%s 512x512, %d random one-sample changes: mean NPCR %.2f %%, mean UACI %.2f %% "
       "(lowest NPCR %.2f %%); each = %.2f %% x the share after its scrambled place",
       name, TRIALS, sum_np / TRIALS, sum_ua / TRIALS, min_np, IDEAL_NPCR);
    tap_diag("%s: chaos profile one-sample NPCR/UACI depend on where the change is scrambled "
             "to: mean %.2f / %.2f %% (model %.2f), worst case 1 sample of %zu; "
             "the default profile gives %.2f / %.2f %% everywhere",
             name, sum_np / TRIALS, sum_ua / TRIALS, sum_model / TRIALS, n, IDEAL_NPCR, IDEAL_UACI);
    free(img);
    free(c1);
    free(c2);
}

static void test_statistics(const char *name, size_t ch)
{
    size_t n = (size_t)W * H * ch;
    geometry g = {H, W * ch};
    uint8_t *img = malloc(n), *c = malloc(n);
    static const size_t dirs[3][2] = {{1, 0}, {0, 1}, {1, 1}};
    static const char *dir_names[3] = {"horizontal", "vertical", "diagonal"};

    natural_image(img, ch);
    memcpy(c, img, n);
    pxc_chaos_encrypt_u8(c, n, 256, &g, perm_key, diff_key);
    double hp = entropy(img, n), hc = entropy(c, n);
    ok(hc >= 7.99, "%s 512x512: cipher entropy %.5f bits/sample (>= 7.99; plain %.3f)", name, hc,
       hp);
    for (int d = 0; d < 3; d++) {
        double rp = correlation(img, ch, dirs[d][0], dirs[d][1]);
        double rc = correlation(c, ch, dirs[d][0], dirs[d][1]);
        ok(rc > -0.01 && rc < 0.01 && rp > 0.9,
           "%s 512x512: %s correlation %+.5f (|r| < 0.01; plain %+.4f)", name, dir_names[d], rc,
           rp);
    }
    free(img);
    free(c);
}

/* A one-bit change of either key gives an unrelated cipher; a wrong key does not decrypt. */
static void test_key_sensitivity(void)
{
    size_t n = (size_t)W * H;
    geometry g = {H, W};
    uint8_t *img = malloc(n), *c1 = malloc(n), *c2 = malloc(n);
    uint8_t key[PXC_CHAOS_KEY_BYTES];

    natural_image(img, 1);
    memcpy(c1, img, n);
    pxc_chaos_encrypt_u8(c1, n, 256, &g, perm_key, diff_key);

    memcpy(key, perm_key, sizeof key);
    key[31] ^= 0x01;
    memcpy(c2, img, n);
    pxc_chaos_encrypt_u8(c2, n, 256, &g, key, diff_key);
    double np = npcr(c1, c2, n), ua = uaci(c1, c2, n);
    ok(np >= 99.5, "permutation key, one bit flipped: NPCR %.3f %%, UACI %.3f %%", np, ua);

    memcpy(key, diff_key, sizeof key);
    key[0] ^= 0x80;
    memcpy(c2, img, n);
    pxc_chaos_encrypt_u8(c2, n, 256, &g, perm_key, key);
    np = npcr(c1, c2, n);
    ua = uaci(c1, c2, n);
    ok(np >= 99.5, "diffusion key, one bit flipped: NPCR %.3f %%, UACI %.3f %%", np, ua);

    memcpy(c2, c1, n);
    pxc_chaos_decrypt_u8(c2, n, 256, &g, perm_key, key);
    np = npcr(img, c2, n);
    ok(np >= 99.0, "decryption with a wrong key: %.3f %% of samples differ from the plain", np);
    free(img);
    free(c1);
    free(c2);
}

/* ---- speed ---- */

/* Best of `runs` encryptions, then as many decryptions: millions of samples per second of
 * thread CPU time. */
static int measure(void *a, size_t n, const geometry *g, int wide, uint32_t m, int runs,
                   double *enc, double *dec)
{
    int good = 1;

    *enc = *dec = 0;
    for (int pass = 0; pass < 2; pass++)
        for (int r = 0; r < runs; r++) {
            double c0 = cpu_now(), rate;
            if (wide)
                good &= (pass ? pxc_chaos_decrypt_u16 : pxc_chaos_encrypt_u16)(a, n, m, g, perm_key,
                                                                               diff_key) == 0;
            else
                good &= (pass ? pxc_chaos_decrypt_u8 : pxc_chaos_encrypt_u8)(a, n, m, g, perm_key,
                                                                             diff_key) == 0;
            rate = (double)n / (cpu_now() - c0) / 1e6;
            double *best = pass ? dec : enc;
            *best = rate > *best ? rate : *best;
        }
    return good;
}

static void test_throughput(void)
{
    geometry g = {2048, 4096 * 3}; /* a 4096 x 2048 RGB image, 24 MiB */
    size_t n = g.rows * g.cols;
    uint8_t *a = malloc(n), *copy = malloc(n);
    double enc, dec;
    int good;

    fill_random(a, n, 4242);
    memcpy(copy, a, n);
    good = measure(a, n, &g, 0, 256, 3, &enc, &dec);
    good &= memcmp(a, copy, n) == 0;
    ok(good, "4096 x 2048 RGB, 8-bit: round trip after 3 encryptions and 3 decryptions");
    tap_diag("chaos profile speed, per core: encrypt %.0f MB/s, decrypt %.0f MB/s (8-bit, 24 MiB)",
             enc, dec);

    geometry g16 = {1024, 4096 * 3};
    uint16_t *w = (uint16_t *)(void *)copy;
    fill_random(w, 2 * g16.rows * g16.cols, 8);
    measure(w, g16.rows * g16.cols, &g16, 1, 65536, 2, &enc, &dec);
    tap_diag("chaos profile speed, 16-bit samples: encrypt %.0f MB/s (%.0f Msamples/s), decrypt "
             "%.0f MB/s",
             2 * enc, enc, 2 * dec);
    fill_mod_u8(a, n / 2, 200, 9);
    geometry gp = {1024, 4096 * 3};
    measure(a, n / 2, &gp, 0, 200, 2, &enc, &dec);
    tap_diag("chaos profile speed, palette of 200 entries: encrypt %.0f MB/s, decrypt %.0f MB/s",
             enc, dec);
    free(a);
    free(copy);
}

int main(void)
{
    if (sodium_init() < 0) {
        ok(0, "sodium_init");
        return tap_done();
    }
    for (int i = 0; i < PXC_CHAOS_KEY_BYTES; i++) {
        perm_key[i] = (uint8_t)(0x11 * (i + 1));
        diff_key[i] = (uint8_t)(0xa5 ^ (7 * i));
    }
    test_roundtrips();
    test_bijection();
    test_degenerate();
    test_widths_and_geometry();
    test_vectors();
    test_differential("gray", 1);
    test_differential("RGB", 3);
    test_statistics("gray", 1);
    test_statistics("RGB", 3);
    test_key_sensitivity();
    test_throughput();
    return tap_done();
}

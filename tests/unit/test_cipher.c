/* Unit tests of the cipher core: round trips on every sample layout, argument checks,
 * fixed test vectors, differential and statistical quality on 512x512 images, key
 * sensitivity, agreement of the vector kernels with the portable code, and throughput. */
#include <errno.h>
#include <sodium.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "codec/cipher.h"
#include "codec/metrics.h"
#include "tap.h"

#define W 512
#define H 512
#define CHUNK PXC_CIPHER_CHUNK_SAMPLES

static uint8_t perm_key[PXC_CIPHER_KEY_BYTES], diff_key[PXC_CIPHER_KEY_BYTES];

/* ---- helpers ---- */

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

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
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

static const size_t sizes[] = {0,
                               1,
                               2,
                               3,
                               4,
                               5,
                               7,
                               8,
                               9,
                               17,
                               255,
                               1000,
                               CHUNK - 1,
                               CHUNK,
                               CHUNK + 1,
                               2 * CHUNK,
                               3 * CHUNK + 7,
                               200001,
                               (1 << 20) + 3};
#define NSIZES (sizeof sizes / sizeof *sizes)

/* Encrypts random samples mod m, checks range and change, decrypts, compares. */
static int roundtrip_u8(size_t n, uint32_t m, uint64_t seed, const char **why)
{
    uint8_t *plain = malloc(n + 1), *buf = malloc(n + 1);
    int good = 0;

    *why = "round trip";
    fill_mod_u8(plain, n, m, seed);
    memcpy(buf, plain, n);
    if (pxc_cipher_encrypt_u8(buf, n, m, perm_key, diff_key) != 0) {
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
    if (pxc_cipher_decrypt_u8(buf, n, m, perm_key, diff_key) != 0) {
        *why = "decrypt failed";
        goto out;
    }
    good = memcmp(buf, plain, n) == 0;
out:
    free(plain);
    free(buf);
    return good;
}

static int roundtrip_u16(size_t n, uint32_t m, uint64_t seed, const char **why)
{
    uint16_t *plain = malloc(2 * n + 2), *buf = malloc(2 * n + 2);
    int good = 0;

    *why = "round trip";
    fill_mod_u16(plain, n, m, seed);
    memcpy(buf, plain, 2 * n);
    if (pxc_cipher_encrypt_u16(buf, n, m, perm_key, diff_key) != 0) {
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
    if (pxc_cipher_decrypt_u16(buf, n, m, perm_key, diff_key) != 0) {
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
    static const uint32_t depth_mods[] = {2, 4, 16, 256};
    static const uint32_t palette_mods[] = {1, 2, 3, 7, 100, 255, 256};
    static const uint32_t wide_mods[] = {2, 4, 16, 256, 1000, 4096, 65535, 65536};
    const char *why = "";

    for (size_t k = 0; k < sizeof depth_mods / sizeof *depth_mods; k++) {
        size_t bad = NSIZES;
        for (size_t s = 0; s < NSIZES && bad == NSIZES; s++)
            if (!roundtrip_u8(sizes[s], depth_mods[k], 100 + s, &why))
                bad = s;
        ok(bad == NSIZES, "8-bit samples mod %u: round trip, range, %zu sizes 0..%zu%s%s",
           depth_mods[k], NSIZES, sizes[NSIZES - 1], bad < NSIZES ? " - " : "",
           bad < NSIZES ? why : "");
    }
    for (size_t k = 0; k < sizeof palette_mods / sizeof *palette_mods; k++) {
        size_t bad = NSIZES;
        for (size_t s = 0; s < NSIZES && bad == NSIZES; s++)
            if (!roundtrip_u8(sizes[s], palette_mods[k], 200 + s, &why))
                bad = s;
        ok(bad == NSIZES, "palette of %u entries: indices stay below it, round trip, %zu sizes%s%s",
           palette_mods[k], NSIZES, bad < NSIZES ? " - " : "", bad < NSIZES ? why : "");
    }
    for (size_t k = 0; k < sizeof wide_mods / sizeof *wide_mods; k++) {
        size_t bad = NSIZES;
        for (size_t s = 0; s < NSIZES && bad == NSIZES; s++)
            if (!roundtrip_u16(sizes[s], wide_mods[k], 300 + s, &why))
                bad = s;
        ok(bad == NSIZES, "16-bit samples mod %u: round trip, range, %zu sizes%s%s", wide_mods[k],
           NSIZES, bad < NSIZES ? " - " : "", bad < NSIZES ? why : "");
    }
}

/* Distinct values (0..n-1) survive the round trip, so positions map one to one. */
static void test_bijection(void)
{
    size_t n = 3 * CHUNK + 5;
    uint16_t *a = malloc(2 * n);
    int good = 1, moved = 0;

    for (size_t i = 0; i < n; i++)
        a[i] = (uint16_t)i;
    good &= pxc_cipher_encrypt_u16(a, n, 65536, perm_key, diff_key) == 0;
    good &= pxc_cipher_decrypt_u16(a, n, 65536, perm_key, diff_key) == 0;
    for (size_t i = 0; i < n; i++)
        good &= a[i] == i;
    ok(good, "%zu distinct samples (3 chunks and a tail) come back in place", n);

    for (size_t i = 0; i < CHUNK; i++)
        a[i] = (uint16_t)i;
    pxc_cipher_encrypt_u16(a, CHUNK, 65536, perm_key, diff_key);
    for (size_t i = 0; i < CHUNK; i++)
        moved += a[i] != i;
    ok(moved > (int)CHUNK * 99 / 100, "ciphertext of 0..%u differs from it in %d places", CHUNK - 1,
       moved);
    free(a);
}

static void test_degenerate(void)
{
    uint8_t a[64], b[64];
    uint16_t w[64];

    memset(a, 0, sizeof a);
    ok(pxc_cipher_encrypt_u8(a, sizeof a, 1, perm_key, diff_key) == 0 &&
           memcmp(a, (uint8_t[64]){0}, 64) == 0,
       "palette of one entry: a no-op");
    ok(pxc_cipher_encrypt_u8(NULL, 0, 256, perm_key, diff_key) == 0 &&
           pxc_cipher_decrypt_u16(NULL, 0, 7, perm_key, diff_key) == 0,
       "zero samples, NULL buffer: a no-op");
    ok(pxc_cipher_encrypt_u8(NULL, 1, 256, perm_key, diff_key) == -EINVAL,
       "NULL buffer with samples: -EINVAL");
    ok(pxc_cipher_encrypt_u8(a, 8, 0, perm_key, diff_key) == -EINVAL &&
           pxc_cipher_encrypt_u8(a, 8, 257, perm_key, diff_key) == -EINVAL &&
           pxc_cipher_encrypt_u16(w, 8, 0, perm_key, diff_key) == -EINVAL &&
           pxc_cipher_encrypt_u16(w, 8, 65537, perm_key, diff_key) == -EINVAL,
       "modulus 0, 257 (8-bit), 65537 (16-bit): -EINVAL");

    fill_mod_u8(a, sizeof a, 5, 9);
    a[40] = 5;
    memcpy(b, a, sizeof a);
    ok(pxc_cipher_encrypt_u8(a, sizeof a, 5, perm_key, diff_key) == -ERANGE &&
           memcmp(a, b, sizeof a) == 0,
       "index past a 5-entry palette: -ERANGE, samples untouched");
    fill_mod_u16(w, 64, 1024, 10);
    w[63] = 1024;
    ok(pxc_cipher_decrypt_u16(w, 64, 1024, perm_key, diff_key) == -ERANGE,
       "16-bit sample past modulus 1024: -ERANGE");
}

/* The 8-bit and 16-bit entry points agree for the same modulus. */
static void test_widths_agree(void)
{
    static const uint32_t mods[] = {2, 16, 256, 7, 255};
    size_t n = 2 * CHUNK + 999;
    uint8_t *a = malloc(n);
    uint16_t *w = malloc(2 * n);
    int good = 1;

    for (size_t k = 0; k < sizeof mods / sizeof *mods; k++) {
        fill_mod_u8(a, n, mods[k], 500 + k);
        for (size_t i = 0; i < n; i++)
            w[i] = a[i];
        pxc_cipher_encrypt_u8(a, n, mods[k], perm_key, diff_key);
        pxc_cipher_encrypt_u16(w, n, mods[k], perm_key, diff_key);
        for (size_t i = 0; i < n; i++)
            good &= w[i] == a[i];
    }
    ok(good, "8-bit and 16-bit storage give the same ciphertext for moduli 2..256");
    free(a);
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

/* Expected values come from an independent reference implementation of the construction
 * (ChaCha20 and BLAKE2b from other libraries); every vector is checked with the vector
 * kernels where the machine has them and with the portable code. */
typedef struct vector_case {
    const char *name;
    int wide;
    uint32_t m, mul; /* samples (i * mul) mod m */
    const char *blake2b;
} vector_case;

static const vector_case vector_cases[] = {
    {"8-bit mod 256", 0, 256, 31,
     "4ca69e2ae61bdf17314bb7b4f6dc89dde7e9975a3e167e71fdb6e1d2ed60d126"},
    {"8-bit mod 16", 0, 16, 5, "2a83b9b2560dad0fe4f25a9aea07b31f69fe616f491719ef598befa357d4575c"},
    {"palette mod 7", 0, 7, 1, "2afbcb223d2349e742b04873da1016e518f2a3678ef031ef28f680393ad791a3"},
    {"palette mod 255", 0, 255, 13,
     "7e5c3d0921baa0a7091c3d2d7e77da07796b8951e28476758e144c8146bf91ba"},
    {"16-bit mod 65536", 1, 65536, 40503,
     "756ee5b21e52da0601511bdae49971e8e44afcb2fda1ee1b25b9d08e3dd57fe9"},
    {"16-bit mod 4096", 1, 4096, 40503,
     "c323155223c47d9fbfa5104d16dbb660d329e59dfdc02420a4307f389c9ece2e"},
    {"16-bit mod 1000", 1, 1000, 40503,
     "c03708bd077e84a82e80f4f07d0639543f77eca8f68f29fdcd1099629b8f6bda"},
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
    uint8_t k1[32], k2[32];
    size_t n = 3 * CHUNK + 11;
    uint8_t *buf = malloc(2 * n);
    char got[65], small_hex[2 * 100 + 1];

    vector_keys(k1, k2);
    for (int portable = 0; portable < 2; portable++) {
        const char *how = portable ? "portable code" : "default code";
        uint8_t a8[24] = {0}, s8[100];
        pxc_cipher_force_portable(portable);

        pxc_cipher_encrypt_u8(a8, sizeof a8, 256, k1, k2);
        hex(small_hex, a8, sizeof a8);
        ok(strcmp(small_hex, "a9d4513ee18e7bb947a58ca5fdc4de4c067a2da753e56c39") == 0,
           "vector (%s): 24 zero bytes, mod 256 -> %s", how, small_hex);
        for (size_t i = 0; i < sizeof s8; i++)
            s8[i] = (uint8_t)(i * 7 % 5);
        pxc_cipher_encrypt_u8(s8, sizeof s8, 5, k1, k2);
        hex(small_hex, s8, sizeof s8);
        ok(strcmp(small_hex,
                  "030403030103030003030002030101030200000102040101000002020103040201040401"
                  "010104000402030402010101040302010304030002020301030102000004010304030102"
                  "04010202010404000302040400040200020000020402030002000103") == 0,
           "vector (%s): 100 indices of a 5-entry palette", how);

        for (size_t c = 0; c < sizeof vector_cases / sizeof *vector_cases; c++) {
            const vector_case *vc = &vector_cases[c];
            uint16_t *w = (uint16_t *)(void *)buf;
            if (vc->wide) {
                for (size_t i = 0; i < n; i++)
                    w[i] = (uint16_t)(i * vc->mul % vc->m);
                pxc_cipher_encrypt_u16(w, n, vc->m, k1, k2);
                for (size_t i = 0; i < n; i++) { /* hashed little-endian, whatever the host */
                    uint16_t v = w[i];
                    buf[2 * i] = (uint8_t)v;
                    buf[2 * i + 1] = (uint8_t)(v >> 8);
                }
            } else {
                for (size_t i = 0; i < n; i++)
                    buf[i] = (uint8_t)(i * vc->mul % vc->m);
                pxc_cipher_encrypt_u8(buf, n, vc->m, k1, k2);
            }
            digest_vector(got, buf, n << vc->wide);
            ok(strcmp(got, vc->blake2b) == 0, "vector (%s): %zu samples, %s, BLAKE2b %s", how, n,
               vc->name, got);
        }
    }
    pxc_cipher_force_portable(0);
    free(buf);
}

/* The vector kernels (where present) and the portable code agree on every modulus that
 * has them and on sizes around their 64-sample steps, both ways. */
static void test_portable_agrees(void)
{
    static const uint32_t mods[] = {2, 4, 16, 128, 256, 3, 7, 100, 255};
    static const size_t lens[] = {
        1, 2, 63, 64, 65, 127, 128, 129, 1000, CHUNK + 1, CHUNK + 77, 3 * CHUNK + 7, 200001};
    size_t most = 200001;
    uint8_t *plain = malloc(most), *a = malloc(most), *b = malloc(most);
    int good = 1, cases = 0;

    for (size_t k = 0; k < sizeof mods / sizeof *mods; k++)
        for (size_t s = 0; s < sizeof lens / sizeof *lens; s++) {
            size_t n = lens[s];
            fill_mod_u8(plain, n, mods[k], 900 + 31 * k + s);
            memcpy(a, plain, n);
            memcpy(b, plain, n);
            pxc_cipher_force_portable(0);
            good &= pxc_cipher_encrypt_u8(a, n, mods[k], perm_key, diff_key) == 0;
            pxc_cipher_force_portable(1);
            good &= pxc_cipher_encrypt_u8(b, n, mods[k], perm_key, diff_key) == 0;
            good &= memcmp(a, b, n) == 0;
            /* cross decryption: each side undoes the other */
            good &= pxc_cipher_decrypt_u8(a, n, mods[k], perm_key, diff_key) == 0;
            pxc_cipher_force_portable(0);
            good &= pxc_cipher_decrypt_u8(b, n, mods[k], perm_key, diff_key) == 0;
            good &= memcmp(a, plain, n) == 0 && memcmp(b, plain, n) == 0;
            cases++;
        }
    pxc_cipher_force_portable(0);
    ok(good, "vector and portable code: same ciphertext, cross decryption, %d cases", cases);
    free(plain);
    free(a);
    free(b);
}

/* ---- quality on 512x512 images ---- */

/* One sample changed by +-1 at several positions: NPCR and UACI of the two ciphers. */
static void test_differential(const char *name, size_t ch)
{
    size_t n = (size_t)W * H * ch;
    size_t pos[] = {0, n / 2 + W * ch / 2, n - 1, n / 3, 12345 % n, n - W * ch};
    uint8_t *img = malloc(n), *c1 = malloc(n), *c2 = malloc(n);

    natural_image(img, ch);
    memcpy(c1, img, n);
    pxc_cipher_encrypt_u8(c1, n, 256, perm_key, diff_key);
    for (size_t k = 0; k < sizeof pos / sizeof *pos; k++) {
        size_t p = pos[k];
        int delta = img[p] == 255 ? -1 : img[p] == 0 ? 1 : k % 2 ? -1 : 1;
        memcpy(c2, img, n);
        c2[p] = (uint8_t)(c2[p] + delta);
        pxc_cipher_encrypt_u8(c2, n, 256, perm_key, diff_key);
        double np = npcr(c1, c2, n), ua = uaci(c1, c2, n);
        ok(np >= 99.5 && ua >= 33.2 && ua <= 33.7,
           "%s 512x512, sample %zu changed by %+d: NPCR %.3f %% (>= 99.5), UACI %.3f %% "
           "(33.2..33.7)",
           name, p, delta, np, ua);
    }
    free(img);
    free(c1);
    free(c2);
}

static void test_statistics(const char *name, size_t ch)
{
    size_t n = (size_t)W * H * ch;
    uint8_t *img = malloc(n), *c = malloc(n);
    static const size_t dirs[3][2] = {{1, 0}, {0, 1}, {1, 1}};
    static const char *dir_names[3] = {"horizontal", "vertical", "diagonal"};

    natural_image(img, ch);
    memcpy(c, img, n);
    pxc_cipher_encrypt_u8(c, n, 256, perm_key, diff_key);
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
    uint8_t *img = malloc(n), *c1 = malloc(n), *c2 = malloc(n);
    uint8_t key[PXC_CIPHER_KEY_BYTES];

    natural_image(img, 1);
    memcpy(c1, img, n);
    pxc_cipher_encrypt_u8(c1, n, 256, perm_key, diff_key);

    memcpy(key, perm_key, sizeof key);
    key[31] ^= 0x01;
    memcpy(c2, img, n);
    pxc_cipher_encrypt_u8(c2, n, 256, key, diff_key);
    double np = npcr(c1, c2, n), ua = uaci(c1, c2, n);
    ok(np >= 99.5, "permutation key, one bit flipped: NPCR %.3f %%, UACI %.3f %%", np, ua);

    memcpy(key, diff_key, sizeof key);
    key[0] ^= 0x80;
    memcpy(c2, img, n);
    pxc_cipher_encrypt_u8(c2, n, 256, perm_key, key);
    np = npcr(c1, c2, n);
    ua = uaci(c1, c2, n);
    ok(np >= 99.5, "diffusion key, one bit flipped: NPCR %.3f %%, UACI %.3f %%", np, ua);

    memcpy(c2, c1, n);
    pxc_cipher_decrypt_u8(c2, n, 256, perm_key, key);
    np = npcr(img, c2, n);
    ok(np >= 99.0, "decryption with a wrong key: %.3f %% of samples differ from the plain", np);
    free(img);
    free(c1);
    free(c2);
}

/* ---- speed ---- */

#if defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(undefined_behavior_sanitizer)
#define PXC_TEST_INSTRUMENTED 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) || defined(PXC_TEST_INSTRUMENTED) || !defined(__OPTIMIZE__)
#define SPEED_FLOOR 5.0 /* instrumented or unoptimised build: report only */
#else
#define SPEED_FLOOR 300.0 /* MB/s of 8-bit samples, one core */
#endif

/* Best of `runs` encryptions, then as many decryptions, of n samples: millions of
 * samples per second of thread CPU time (and of wall-clock time in wall[0..1]). */
static int measure(void *a, size_t n, int wide, uint32_t m, int runs, double *enc, double *dec,
                   double wall[2])
{
    int good = 1;

    *enc = *dec = wall[0] = wall[1] = 0;
    for (int pass = 0; pass < 2; pass++)
        for (int r = 0; r < runs; r++) {
            double t0 = now(), c0 = cpu_now(), cpu, wl;
            if (wide)
                good &= (pass ? pxc_cipher_decrypt_u16 : pxc_cipher_encrypt_u16)(a, n, m, perm_key,
                                                                                 diff_key) == 0;
            else
                good &= (pass ? pxc_cipher_decrypt_u8 : pxc_cipher_encrypt_u8)(a, n, m, perm_key,
                                                                               diff_key) == 0;
            cpu = (double)n / (cpu_now() - c0) / 1e6;
            wl = (double)n / (now() - t0) / 1e6;
            double *best = pass ? dec : enc;
            *best = cpu > *best ? cpu : *best;
            wall[pass] = wl > wall[pass] ? wl : wall[pass];
        }
    return good;
}

static void test_throughput(void)
{
    size_t n = (size_t)64 << 20;
    uint8_t *a = malloc(n), *copy = malloc(n);
    uint16_t *w = (uint16_t *)(void *)copy;
    double enc, dec, wall[2];
    int good;

    fill_random(a, n, 4242);
    memcpy(copy, a, n);
    /* Each run works on the previous run's output; the decryptions undo the encryptions. */
    good = measure(a, n, 0, 256, 5, &enc, &dec, wall);
    good &= memcmp(a, copy, n) == 0;
    ok(good && enc >= SPEED_FLOOR && dec >= SPEED_FLOOR,
       "64 MiB of 8-bit samples, per core: encrypt %.0f MB/s, decrypt %.0f MB/s (floor %.0f; "
       "wall clock %.0f, %.0f), round trip",
       enc, dec, SPEED_FLOOR, wall[0], wall[1]);

    /* Other layouts, for the record, per core. */
    fill_mod_u8(a, n / 4, 255, 7);
    measure(a, n / 4, 0, 255, 3, &enc, &dec, wall);
    tap_diag("palette of 255 entries, 16 MiB: encrypt %.0f MB/s, decrypt %.0f MB/s", enc, dec);
    fill_random(w, n / 4, 8);
    measure(w, n / 8, 1, 65536, 3, &enc, &dec, wall);
    tap_diag("16-bit samples, 16 MiB: encrypt %.0f MB/s (%.0f Msamples/s), decrypt %.0f MB/s",
             2 * enc, enc, 2 * dec);
    for (size_t i = 0; i < n / 8; i++)
        w[i] &= 4095;
    measure(w, n / 8, 1, 4096, 3, &enc, &dec, wall);
    tap_diag("12-bit samples, 16 MiB: encrypt %.0f MB/s (%.0f Msamples/s), decrypt %.0f MB/s",
             2 * enc, enc, 2 * dec);
    fill_random(a, n / 4, 9);
    pxc_cipher_force_portable(1);
    measure(a, n / 4, 0, 256, 3, &enc, &dec, wall);
    pxc_cipher_force_portable(0);
    tap_diag("8-bit samples, portable code, 16 MiB: encrypt %.0f MB/s, decrypt %.0f MB/s", enc,
             dec);
    free(a);
    free(copy);
}

int main(void)
{
    if (sodium_init() < 0) {
        ok(0, "sodium_init");
        return tap_done();
    }
    for (int i = 0; i < PXC_CIPHER_KEY_BYTES; i++) {
        perm_key[i] = (uint8_t)(0x11 * (i + 1));
        diff_key[i] = (uint8_t)(0xa5 ^ (7 * i));
    }
    test_roundtrips();
    test_bijection();
    test_degenerate();
    test_widths_agree();
    test_vectors();
    test_portable_agrees();
    test_differential("gray", 1);
    test_differential("RGB", 3);
    test_statistics("gray", 1);
    test_statistics("RGB", 3);
    test_key_sensitivity();
    test_throughput();
    return tap_done();
}

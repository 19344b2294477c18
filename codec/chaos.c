/* The "chaos" research profile: logistic row/column scrambling and Hénon diffusion
 * (see chaos.h for what it is, why it is weak, and the exact arithmetic).
 *
 * Everything is integer arithmetic on 64-bit fixed-point values; the only primitive
 * beyond C's integer operations is the high part of a 64 x 64-bit product.
 */
#include "codec/chaos.h"

#include <errno.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#define BURN_MIN 1000u  /* map iterations discarded before use: BURN_MIN + (key & BURN_MASK) */
#define BURN_MASK 1023u /* so 1000..2023 */

/* Hénon state scale: Q3.60. */
#define H_FRAC 60
#define H_ONE ((int64_t)1 << H_FRAC)
#define H_A ((UINT64_C(7) << H_FRAC) / 5)  /* floor(1.4 * 2^60) */
#define H_B ((UINT64_C(3) << H_FRAC) / 10) /* floor(0.3 * 2^60) */
#define H_X_LIMIT ((uint64_t)2 << H_FRAC)  /* |x| < 2 keeps every product in range */
#define H_Y_LIMIT ((uint64_t)1 << H_FRAC)  /* |y| < 1 */
#define H_FEEDBACK_SHIFT 8                 /* y += c * 2^-52: c lands in the keystream digits */

/* Logistic parameter r = 4 - d / 2^62, d in [D_MIN, D_MIN + D_SPAN): r in [3.99, 3.9999]. */
#define L_D_MIN ((UINT64_C(1) << 62) / 10000) /* 0.0001 * 2^62 */
#define L_D_SPAN ((UINT64_C(1) << 62) / 100 - L_D_MIN)

/* ---- 64 x 64 -> 128-bit products, exact on every compiler ---- */

#if defined(__SIZEOF_INT128__)
static inline uint64_t mul_shift(uint64_t a, uint64_t b, unsigned s)
{
    return (uint64_t)(((unsigned __int128)a * b) >> s);
}
#else
static inline uint64_t mul_shift(uint64_t a, uint64_t b, unsigned s)
{
    uint64_t a0 = (uint32_t)a, a1 = a >> 32, b0 = (uint32_t)b, b1 = b >> 32;
    uint64_t p00 = a0 * b0, p01 = a0 * b1, p10 = a1 * b0, p11 = a1 * b1;
    uint64_t mid = (p00 >> 32) + (uint32_t)p01 + (uint32_t)p10;
    uint64_t hi = p11 + (p01 >> 32) + (p10 >> 32) + (mid >> 32);
    uint64_t lo = (mid << 32) | (uint32_t)p00;
    return s == 64 ? hi : (hi << (64 - s)) | (lo >> s);
}
#endif

/* ---- key schedule ---- */

static void store_le(uint8_t *p, uint64_t v, size_t bytes)
{
    for (size_t i = 0; i < bytes; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t load_le64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

/* Four 64-bit words: BLAKE2b-256 keyed with `key` over label, n, m, rows, cols. */
static void derive_words(uint64_t w[4], const uint8_t key[PXC_CHAOS_KEY_BYTES],
                         const char label[16], uint64_t n, uint32_t m, uint64_t rows, uint64_t cols)
{
    uint8_t msg[16 + 8 + 4 + 8 + 8], out[32];

    memcpy(msg, label, 16);
    store_le(msg + 16, n, 8);
    store_le(msg + 24, m, 4);
    store_le(msg + 28, rows, 8);
    store_le(msg + 36, cols, 8);
    crypto_generichash(out, sizeof out, msg, sizeof msg, key, PXC_CHAOS_KEY_BYTES);
    for (int i = 0; i < 4; i++)
        w[i] = load_le64(out + 8 * i);
    sodium_memzero(out, sizeof out);
}

/* ---- logistic map (Eq. 1) ---- */

typedef struct logistic {
    uint64_t x; /* x * 2^64, in (0, 1) */
    uint64_t r; /* r * 2^62 */
} logistic;

static inline uint64_t logistic_step(logistic *l)
{
    uint64_t t = mul_shift(l->x, 0 - l->x, 64); /* x (1 - x) * 2^64, x > 0 */
    l->x = mul_shift(l->r, t, 62);
    return l->x;
}

static void logistic_init(logistic *l, const uint8_t key[PXC_CHAOS_KEY_BYTES], uint64_t n,
                          uint32_t m, uint64_t rows, uint64_t cols)
{
    uint64_t w[4];

    derive_words(w, key, "pxc-chaos1-logis", n, m, rows, cols);
    l->x = (UINT64_C(1) << 61) + 3 * (w[0] >> 2); /* [1/8, 7/8) */
    l->r = 0 - (L_D_MIN + w[1] % L_D_SPAN);       /* 2^64 - d */
    for (uint64_t i = 0, burn = BURN_MIN + (w[2] & BURN_MASK); i < burn; i++)
        logistic_step(l);
    sodium_memzero(w, sizeof w);
}

typedef struct rank_item {
    uint64_t v;
    size_t i;
} rank_item;

static int rank_cmp(const void *pa, const void *pb)
{
    const rank_item *a = pa, *b = pb;
    if (a->v != b->v)
        return a->v < b->v ? -1 : 1;
    return a->i < b->i ? -1 : a->i > b->i;
}

/* order[k] = index of the k-th smallest of the next len iterates (ties by index). */
static void logistic_order(logistic *l, size_t *order, rank_item *tmp, size_t len)
{
    for (size_t k = 0; k < len; k++) {
        tmp[k].v = logistic_step(l);
        tmp[k].i = k;
    }
    qsort(tmp, len, sizeof *tmp, rank_cmp);
    for (size_t k = 0; k < len; k++)
        order[k] = tmp[k].i;
}

/* ---- Hénon map (Eq. 2-3) ---- */

typedef struct henon {
    int64_t x, y;   /* Q3.60 */
    int64_t x0, y0; /* restart point, should a perturbed orbit ever leave the bounds */
} henon;

static inline uint64_t mag(int64_t v)
{
    return v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
}

/* One step; returns |x'| * 2^60. */
static inline uint64_t henon_step(henon *h)
{
    uint64_t ux = mag(h->x);
    uint64_t q = mul_shift(ux, ux, H_FRAC);  /* x^2, < 4 */
    uint64_t aq = mul_shift(H_A, q, H_FRAC); /* a x^2, < 5.6 */
    uint64_t bx = mul_shift(H_B, ux, H_FRAC);
    int64_t nx = H_ONE - (int64_t)aq + h->y;

    h->y = h->x < 0 ? -(int64_t)bx : (int64_t)bx;
    h->x = nx;
    ux = mag(nx);
    if (ux >= H_X_LIMIT) { /* never seen; keeps the arithmetic in range whatever happens */
        h->x = h->x0;
        h->y = h->y0;
        ux = mag(h->x);
    }
    return ux;
}

/* Adds c * 2^-52 to y, restarting if that leaves |y| < 1. */
static inline void henon_feed(henon *h, uint32_t c)
{
    h->y += (int64_t)c << H_FEEDBACK_SHIFT;
    if (mag(h->y) >= H_Y_LIMIT) {
        h->x = h->x0;
        h->y = h->y0;
    }
}

/* Sets up the map and returns the chain's initial value c_{-1}. */
static uint32_t henon_init(henon *h, const uint8_t key[PXC_CHAOS_KEY_BYTES], uint64_t n, uint32_t m,
                           uint64_t rows, uint64_t cols)
{
    uint64_t w[4];
    uint32_t iv;
    const uint64_t y_span = (UINT64_C(1) << H_FRAC) / 5; /* 0.2 */

    derive_words(w, key, "pxc-chaos1-henon", n, m, rows, cols);
    h->x0 = (int64_t)(w[0] >> 4) - (H_ONE >> 1);              /* [-1/2, 1/2) */
    h->y0 = (int64_t)(w[1] % y_span) - (int64_t)(y_span / 2); /* [-1/10, 1/10) */
    h->x = h->x0;
    h->y = h->y0;
    for (uint64_t i = 0, burn = BURN_MIN + (w[2] & BURN_MASK); i < burn; i++)
        henon_step(h);
    iv = (uint32_t)(w[3] % m);
    sodium_memzero(w, sizeof w);
    return iv;
}

/* ---- the cipher ---- */

typedef struct plan {
    size_t rows, cols;
    size_t *order; /* rows entries of R, then cols entries of C */
    henon h;
    uint32_t c_prev;
} plan;

static int check_args(const void *samples, size_t n, uint32_t m, uint32_t max,
                      const struct pxc_chaos_geometry *g, size_t *rows, size_t *cols)
{
    if (m < 1 || m > max || (samples == NULL && n > 0))
        return -EINVAL;
    if (g == NULL) {
        *rows = n > 0;
        *cols = n;
        return 0;
    }
    if (g->rows != 0 && g->cols > SIZE_MAX / g->rows)
        return -EINVAL;
    if (g->rows * g->cols != n)
        return -EINVAL;
    *rows = g->rows;
    *cols = g->cols;
    return 0;
}

static int plan_make(plan *p, size_t n, uint32_t m, size_t rows, size_t cols,
                     const uint8_t perm_key[PXC_CHAOS_KEY_BYTES],
                     const uint8_t diff_key[PXC_CHAOS_KEY_BYTES])
{
    size_t most = rows > cols ? rows : cols;
    rank_item *tmp;
    logistic l;

    p->rows = rows;
    p->cols = cols;
    if (rows > SIZE_MAX / sizeof(size_t) - cols || most > SIZE_MAX / sizeof(rank_item))
        return -ENOMEM;
    p->order = malloc((rows + cols) * sizeof(size_t));
    tmp = malloc(most * sizeof(rank_item));
    if (p->order == NULL || tmp == NULL) {
        free(p->order);
        free(tmp);
        return -ENOMEM;
    }
    logistic_init(&l, perm_key, n, m, rows, cols);
    logistic_order(&l, p->order, tmp, rows);
    logistic_order(&l, p->order + rows, tmp, cols);
    sodium_memzero(&l, sizeof l);
    sodium_memzero(tmp, most * sizeof(rank_item));
    free(tmp);
    p->c_prev = henon_init(&p->h, diff_key, n, m, rows, cols);
    return 0;
}

static void plan_free(plan *p)
{
    sodium_memzero(p->order, (p->rows + p->cols) * sizeof(size_t));
    free(p->order);
    sodium_memzero(p, sizeof *p);
}

/* Keystream digit: low 32 bits of floor(|x| * 2^52), mod m. */
static inline uint32_t key_digit(uint64_t ux, uint32_t m, uint32_t mask, int pow2)
{
    uint32_t d = (uint32_t)(ux >> (H_FRAC - 52));
    return pow2 ? d & mask : d % m;
}

static inline uint32_t add_mod(uint32_t a, uint32_t b, uint32_t m)
{
    uint32_t s = a + b;
    return s >= m ? s - m : s;
}

static inline uint32_t sub_mod(uint32_t a, uint32_t b, uint32_t m)
{
    return a >= b ? a - b : a + m - b;
}

/* Encryption and decryption for one storage type.  Encryption gathers the scrambled
 * plain samples into scratch, diffused; decryption scatters the undiffused samples from
 * the cipher into scratch at their plain places.  Then scratch replaces the samples. */
#define DEFINE_CHAOS(T, SUFFIX, MAX)                                                               \
    static int chaos_##SUFFIX(T *s, size_t n, uint32_t m, const struct pxc_chaos_geometry *g,      \
                              const uint8_t perm_key[PXC_CHAOS_KEY_BYTES],                         \
                              const uint8_t diff_key[PXC_CHAOS_KEY_BYTES], int decrypt)            \
    {                                                                                              \
        size_t rows, cols;                                                                         \
        int err = check_args(s, n, m, MAX, g, &rows, &cols);                                       \
        uint32_t mask = m - 1;                                                                     \
        int pow2 = (m & mask) == 0;                                                                \
        plan p;                                                                                    \
        T *out;                                                                                    \
                                                                                                   \
        if (err)                                                                                   \
            return err;                                                                            \
        for (size_t i = 0; i < n; i++)                                                             \
            if (s[i] >= m)                                                                         \
                return -ERANGE;                                                                    \
        if (n == 0 || m == 1)                                                                      \
            return 0;                                                                              \
        if (n > SIZE_MAX / sizeof(T) || (out = malloc(n * sizeof(T))) == NULL)                     \
            return -ENOMEM;                                                                        \
        if ((err = plan_make(&p, n, m, rows, cols, perm_key, diff_key)) != 0) {                    \
            free(out);                                                                             \
            return err;                                                                            \
        }                                                                                          \
        const size_t *R = p.order, *C = p.order + rows;                                            \
        uint32_t c_prev = p.c_prev;                                                                \
        T *dst = out;                                                                              \
        const T *src = s;                                                                          \
        for (size_t i = 0; i < rows; i++) {                                                        \
            size_t base = R[i] * cols;                                                             \
            for (size_t j = 0; j < cols; j++) {                                                    \
                uint32_t k = key_digit(henon_step(&p.h), m, mask, pow2), c;                        \
                if (!decrypt) {                                                                    \
                    c = add_mod(add_mod(s[base + C[j]], k, m), c_prev, m);                         \
                    *dst++ = (T)c;                                                                 \
                } else {                                                                           \
                    c = *src++;                                                                    \
                    out[base + C[j]] = (T)sub_mod(sub_mod(c, k, m), c_prev, m);                    \
                }                                                                                  \
                henon_feed(&p.h, c);                                                               \
                c_prev = c;                                                                        \
            }                                                                                      \
        }                                                                                          \
        memcpy(s, out, n * sizeof(T));                                                             \
        sodium_memzero(out, n * sizeof(T));                                                        \
        free(out);                                                                                 \
        plan_free(&p);                                                                             \
        return 0;                                                                                  \
    }

DEFINE_CHAOS(uint8_t, u8, PXC_CHAOS_MODULUS_MAX_U8)
DEFINE_CHAOS(uint16_t, u16, PXC_CHAOS_MODULUS_MAX_U16)

int pxc_chaos_encrypt_u8(uint8_t *samples, size_t n, uint32_t modulus,
                         const struct pxc_chaos_geometry *geometry,
                         const uint8_t perm_key[PXC_CHAOS_KEY_BYTES],
                         const uint8_t diff_key[PXC_CHAOS_KEY_BYTES])
{
    return chaos_u8(samples, n, modulus, geometry, perm_key, diff_key, 0);
}

int pxc_chaos_decrypt_u8(uint8_t *samples, size_t n, uint32_t modulus,
                         const struct pxc_chaos_geometry *geometry,
                         const uint8_t perm_key[PXC_CHAOS_KEY_BYTES],
                         const uint8_t diff_key[PXC_CHAOS_KEY_BYTES])
{
    return chaos_u8(samples, n, modulus, geometry, perm_key, diff_key, 1);
}

int pxc_chaos_encrypt_u16(uint16_t *samples, size_t n, uint32_t modulus,
                          const struct pxc_chaos_geometry *geometry,
                          const uint8_t perm_key[PXC_CHAOS_KEY_BYTES],
                          const uint8_t diff_key[PXC_CHAOS_KEY_BYTES])
{
    return chaos_u16(samples, n, modulus, geometry, perm_key, diff_key, 0);
}

int pxc_chaos_decrypt_u16(uint16_t *samples, size_t n, uint32_t modulus,
                          const struct pxc_chaos_geometry *geometry,
                          const uint8_t perm_key[PXC_CHAOS_KEY_BYTES],
                          const uint8_t diff_key[PXC_CHAOS_KEY_BYTES])
{
    return chaos_u16(samples, n, modulus, geometry, perm_key, diff_key, 1);
}

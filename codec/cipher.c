/* Cipher core: keyed chunked permutation and two-pass chained diffusion (see cipher.h).
 *
 * Encryption makes two sweeps over the samples (decryption undoes them in reverse):
 *
 *   1. Permutation and forward pass.  Output positions are filled in a keyed visit
 *      order; each receives the running sum, mod m, of the permuted input samples
 *      visited so far plus a keyed initial value.  The visit order always ends at
 *      position n-1.
 *   2. Backward pass, a keyed chain over positions n-1 down to 0:
 *        d[i] = c[i] + k[i] + d[i+1] + S[d[i+LAG]]  (mod m)
 *      with k a ChaCha20 keystream, S a keyed table of m values and keyed values
 *      standing in for d[n..n+LAG].
 *
 * Permutation.  A Fisher-Yates shuffle of the whole array touches a random cache line
 * per sample; on tens of millions of samples it runs at memory latency.  Instead the
 * array is cut into chunks of CHUNK samples.  Output chunk e holds input chunk from[e]
 * (a keyed Fisher-Yates order of the chunks) read through a keyed in-chunk permutation,
 * out[j] = in[inner[j] ^ mask[e]]: one Fisher-Yates permutation of 0..CHUNK-1 shared by
 * all chunks, varied per chunk by a keyed mask.  Chunks are visited cycle by cycle of
 * `from`, which lets the permutation run in place with two chunk buffers: each input
 * chunk is copied out sequentially just before its place is overwritten, and the
 * in-chunk gather then runs in L1.  The cycle through the last chunk goes last and
 * ends with that chunk; samples after the last full chunk (all of them, for short
 * arrays) form a tail with its own Fisher-Yates permutation, visited at the very end.
 * The permutation only moves neighbouring samples apart and sets the visit order;
 * secrecy comes from the keystream, so a structured permutation is enough.
 *
 * Diffusion.  Changing one input sample changes the running sum from its visit on by
 * a constant, always including position n-1.  The backward chain starts there and
 * carries the change to every earlier position; through S, looked up LAG samples back
 * (off the one-addition critical path of the chain), the difference becomes key- and
 * data-dependent, so with keys fixed each output sample changes with probability
 * 1 - 1/m.  Plain additive chains would instead shift long runs of samples by one
 * offset, which shows as a wrong UACI.  S need not be a bijection since the inverse
 * subtracts it.  The keystream k alone makes the output uniform for any input.
 * LAG = 64 makes the S terms of 64 consecutive positions depend only on the 64 above
 * them, so a vector unit computes a group of 64 at once: table lookups, then a running
 * sum across lanes.
 *
 * Decryption of the backward pass has no chain: c[i] depends only on ciphertext values
 * d[i], d[i+1] and d[i+LAG], so it runs upwards from position 0, overwriting each d[i]
 * after the last read of it.  For that, k is addressed by position, not by pass order:
 * k[i] for i in block b = i / BLOCK is drawn from ChaCha20 with the nonce b, so either
 * direction produces the keystream of one block at a time.
 *
 * Keystreams.  Three ChaCha20 keys are derived with keyed BLAKE2b from the callers' keys,
 * each bound to its purpose, n and m: the permutation stream (perm_key; chunk order,
 * masks, in-chunk and tail permutations, read sequentially with nonce 0), the setup
 * stream (diff_key; S, then the initial values, nonce 0) and the diffusion stream
 * (diff_key; k, nonce = block number, counter from 0 in each block).  Keystream samples
 * are uniform mod m: for m = 2^d they are the low d bits of one byte (m <= 256) or of
 * one little-endian 16-bit word; for other m, Lemire's multiply-and-reject on
 * little-endian units (in k: 16-bit units for m <= 256, 32-bit above; in the setup
 * stream: 32-bit units), which is exactly uniform.  With m = 2^d all sums are kept in
 * 32 bits (or 8-bit lanes) and reduced by a mask at the end (reduction mod 2^d commutes
 * with addition); for other m every sum of two values below m is reduced by one
 * conditional subtraction.
 *
 * Vector kernels.  On x86-64 with AVX-512 (BW, VBMI), samples stored in bytes go through
 * kernels that compute the same values 64 at a time (see "vector kernels" below); the
 * in-chunk permutation runs as hardware gathers, decryption's through the inverse
 * permutation.  Everything else is portable C, and pxc_cipher_force_portable() lets
 * tests compare the two.
 */
#include "codec/cipher.h"

#include <errno.h>
#include <sodium.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#define CHUNK PXC_CIPHER_CHUNK_SAMPLES
#define LAG 64           /* distance of the table feedback; one vector of byte lanes */
#define BLOCK 16384u     /* samples per nonce of the diffusion keystream; part of the format */
#define KS_BYTES 4096    /* sequential reader: ChaCha20 output per refill, a multiple of 64 */
#define RAW_BYTES 32768u /* block keystream: ChaCha20 output per call, a multiple of 64 */

#define GATHER_SLACK 16 /* readable bytes after the last chunk buffer */

#define ALWAYS_INLINE inline __attribute__((always_inline))

enum stream_purpose {
    STREAM_PERMUTATION = 1, /* perm_key: chunk order, masks, in-chunk and tail permutations */
    STREAM_DIFFUSION = 2,   /* diff_key: k, one nonce per block */
    STREAM_SETUP = 3,       /* diff_key: S and the initial values */
};

/* ---- keystream ---- */

typedef struct keystream {
    uint8_t key[crypto_stream_chacha20_KEYBYTES];
    uint64_t counter; /* next ChaCha20 block */
    size_t pos;       /* next unread byte of buf */
    uint8_t buf[KS_BYTES];
} keystream;

static const uint8_t zeros[KS_BYTES];
static const uint8_t zero_nonce[crypto_stream_chacha20_NONCEBYTES];

static void store_le(uint8_t *p, uint64_t v, size_t bytes)
{
    for (size_t i = 0; i < bytes; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

/* Every stream gets its own ChaCha20 key, bound to purpose, sample count and modulus,
 * so no two streams share keystream. */
static void stream_key(uint8_t out[crypto_stream_chacha20_KEYBYTES],
                       const uint8_t key[PXC_CIPHER_KEY_BYTES], enum stream_purpose purpose,
                       uint64_t n, uint32_t m)
{
    uint8_t msg[16 + 1 + 8 + 4] = "pixcrypt-cipher2";

    msg[16] = (uint8_t)purpose;
    store_le(msg + 17, n, 8);
    store_le(msg + 25, m, 4);
    crypto_generichash(out, crypto_stream_chacha20_KEYBYTES, msg, sizeof msg, key,
                       PXC_CIPHER_KEY_BYTES);
}

/* A sequential reader of one stream, nonce 0. */
static void ks_init(keystream *ks, const uint8_t key[PXC_CIPHER_KEY_BYTES],
                    enum stream_purpose purpose, uint64_t n, uint32_t m)
{
    stream_key(ks->key, key, purpose, n, m);
    ks->counter = 0;
    ks->pos = KS_BYTES;
}

static void ks_refill(keystream *ks)
{
    crypto_stream_chacha20_xor_ic(ks->buf, zeros, KS_BYTES, zero_nonce, ks->counter, ks->key);
    ks->counter += KS_BYTES / 64;
    ks->pos = 0;
}

/* Points *p at up to `want` unread keystream bytes and consumes them; returns the count. */
static size_t ks_take(keystream *ks, const uint8_t **p, size_t want)
{
    if (ks->pos == KS_BYTES)
        ks_refill(ks);
    size_t got = KS_BYTES - ks->pos;
    if (got > want)
        got = want;
    *p = ks->buf + ks->pos;
    ks->pos += got;
    return got;
}

static uint32_t load_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint32_t ks_u32(keystream *ks)
{
    uint32_t v = 0;

    if (ks->pos <= KS_BYTES - 4) {
        ks->pos += 4;
        return load_le32(ks->buf + ks->pos - 4);
    }
    for (unsigned i = 0; i < 4;) {
        const uint8_t *p;
        size_t got = ks_take(ks, &p, 4 - i);
        for (size_t j = 0; j < got; j++, i++)
            v |= (uint32_t)p[j] << (8 * i);
    }
    return v;
}

/* Uniform in [0, bound), bound >= 1: Lemire's multiply, rejecting the low products
 * that would make some results more likely. */
static uint32_t ks_below(keystream *ks, uint32_t bound)
{
    uint64_t prod = (uint64_t)ks_u32(ks) * bound;
    if ((uint32_t)prod < bound) {
        uint32_t reject = (uint32_t)-bound % bound; /* 2^32 mod bound */
        while ((uint32_t)prod < reject)
            prod = (uint64_t)ks_u32(ks) * bound;
    }
    return (uint32_t)(prod >> 32);
}

static int is_pow2(uint32_t m)
{
    return (m & (m - 1)) == 0;
}

/* len samples uniform mod m (2 <= m <= 65536), for the setup stream.  A stream feeds
 * one modulus only, so it is read in units of 1, 2 or 4 bytes throughout and no unit
 * straddles a refill. */
static void ks_samples(keystream *ks, uint32_t m, uint16_t *out, size_t len)
{
    const uint8_t *p;
    uint32_t mask = m - 1, reject = (0u - m) % m; /* 2^32 mod m */

    while (len) {
        size_t got, i = 0;
        if (!is_pow2(m)) {
            /* As ks_below, with the bound fixed: keep the high word of v * m unless
             * its low word falls in the 2^32 mod m values that would bias it. */
            got = ks_take(ks, &p, 4 * len) / 4;
            for (size_t w = 0; w < got; w++) {
                uint64_t prod = (uint64_t)load_le32(p + 4 * w) * m;
                if ((uint32_t)prod >= reject)
                    out[i++] = (uint16_t)(prod >> 32);
            }
        } else if (m <= 256) {
            got = i = ks_take(ks, &p, len);
            for (size_t j = 0; j < got; j++)
                out[j] = (uint16_t)(p[j] & mask);
        } else {
            got = i = ks_take(ks, &p, 2 * len) / 2;
            for (size_t j = 0; j < got; j++)
                out[j] = (uint16_t)((p[2 * j] | p[2 * j + 1] << 8) & mask);
        }
        out += i;
        len -= i;
    }
}

/* (a + b) mod m for a, b < m.  The compare involves a alone, so in a chain through a
 * (a running sum) each step costs an add and a select after the previous one. */
static ALWAYS_INLINE uint32_t add_mod(uint32_t a, uint32_t b, uint32_t m)
{
    uint32_t w = m - b;
    return a >= w ? a - w : a + b;
}

/* (a - b) mod m for a, b < m. */
static ALWAYS_INLINE uint32_t sub_mod(uint32_t a, uint32_t b, uint32_t m)
{
    return a >= b ? a - b : a + m - b;
}

static ALWAYS_INLINE uint32_t load_sample(const void *p, size_t i, int wide)
{
    return wide ? ((const uint16_t *)p)[i] : ((const uint8_t *)p)[i];
}

static ALWAYS_INLINE void store_sample(void *p, size_t i, uint32_t v, int wide)
{
    if (wide)
        ((uint16_t *)p)[i] = (uint16_t)v;
    else
        ((uint8_t *)p)[i] = (uint8_t)v;
}

/* ---- vector unit ---- */

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__)) &&                            \
    !defined(PXC_CIPHER_PORTABLE_ONLY)
#define HAVE_VEC 1
#include <immintrin.h>

/* -1 not yet probed, 0 portable code, 1 vector kernels. */
static int vec_state = -1;

static int vec_ok(void)
{
    int s = __atomic_load_n(&vec_state, __ATOMIC_RELAXED);

    if (s < 0) {
        __builtin_cpu_init();
        s = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
            __builtin_cpu_supports("avx512vbmi");
        __atomic_store_n(&vec_state, s, __ATOMIC_RELAXED);
    }
    return s;
}

int pxc_cipher_force_portable(int on)
{
    int was = vec_ok() == 0;

    __atomic_store_n(&vec_state, on ? 0 : -1, __ATOMIC_RELAXED);
    return was;
}

/* Defined with the backward pass, whose portable kernels they use for remainders. */
static void vec_sum(uint8_t *dst, uint8_t *src, const uint16_t *idx, size_t len, uint32_t x,
                    uint32_t m, uint32_t *acc, int dec);
static void vec_chain(uint8_t *p, size_t lo, size_t hi, const void *key, const uint16_t *table,
                      uint32_t m, int dec);
static size_t vec_draw16(uint16_t *out, size_t i, size_t len, const uint8_t *p, size_t units,
                         uint32_t m);
#else
#define HAVE_VEC 0

int pxc_cipher_force_portable(int on)
{
    (void)on;
    return 1;
}
#endif

/* ---- permutation and forward pass ---- */

typedef struct perm {
    size_t chunks;   /* full chunks */
    size_t tail;     /* samples after the last full chunk */
    uint32_t *from;  /* output chunk e holds input chunk from[e] */
    uint32_t *order; /* output chunks in visit order */
    uint16_t *mask;  /* per output chunk, XORed into in-chunk offsets */
    uint16_t *inner; /* CHUNK entries: the in-chunk permutation, then CHUNK of its inverse */
    uint16_t *tperm; /* tail entries: the tail permutation, then tail of its inverse */
    uint8_t *seen;   /* one bit per chunk */
    void *buf[2];    /* chunk buffers */
    void *mem;
    size_t bytes;
} perm;

static size_t round16(size_t v)
{
    return (v + 15) & ~(size_t)15;
}

static int perm_alloc(perm *pm, size_t n, int wide)
{
    size_t c = n / CHUNK, t = n % CHUNK;
    size_t from_b = round16(c * 4), mask_b = round16(c * 2), inner_b = c ? CHUNK * 4 : 0;
    size_t tail_b = round16(t * 4), seen_b = round16((c + 7) / 8);
    size_t buf_b = round16((c ? CHUNK : t) << wide);
    /* GATHER_SLACK: the vector gather reads 4 bytes at each sample of a chunk buffer. */
    size_t bytes = 2 * from_b + mask_b + inner_b + tail_b + seen_b + 2 * buf_b + GATHER_SLACK;
    uint8_t *mem = malloc(bytes);

    if (!mem)
        return -ENOMEM;
    pm->bytes = bytes;
    pm->chunks = c;
    pm->tail = t;
    pm->mem = mem;
    pm->from = (uint32_t *)mem;
    pm->order = (uint32_t *)(mem += from_b);
    pm->mask = (uint16_t *)(mem += from_b);
    pm->inner = (uint16_t *)(mem += mask_b);
    pm->tperm = (uint16_t *)(mem += inner_b);
    pm->seen = mem += tail_b;
    pm->buf[0] = mem += seen_b;
    pm->buf[1] = mem + buf_b;
    return 0;
}

/* A Fisher-Yates permutation in a[0..len), and its inverse in a[len..2*len). */
static void shuffle16(uint16_t *a, size_t len, keystream *ks)
{
    for (size_t i = 0; i < len; i++)
        a[i] = (uint16_t)i;
    for (size_t i = len; i > 1; i--) {
        uint32_t j = ks_below(ks, (uint32_t)i);
        uint16_t t = a[i - 1];
        a[i - 1] = a[j];
        a[j] = t;
    }
    for (size_t i = 0; i < len; i++)
        a[len + a[i]] = (uint16_t)i;
}

static void shuffle32(uint32_t *a, size_t len, keystream *ks)
{
    for (size_t i = 0; i < len; i++)
        a[i] = (uint32_t)i;
    for (size_t i = len; i > 1; i--) {
        uint32_t j = ks_below(ks, (uint32_t)i);
        uint32_t t = a[i - 1];
        a[i - 1] = a[j];
        a[j] = t;
    }
}

/* Appends the cycle of `from` entered at e0 to the visit order, from position t. */
static size_t walk_cycle(perm *pm, size_t e0, size_t t)
{
    size_t e = e0;
    do {
        pm->order[t++] = (uint32_t)e;
        pm->seen[e / 8] |= (uint8_t)(1u << (e % 8));
        e = pm->from[e];
    } while (e != e0);
    return t;
}

/* Cycles by first chunk, except that the cycle through the last chunk goes last,
 * entered at from[last] so that it ends with the last chunk. */
static void perm_order(perm *pm)
{
    size_t c = pm->chunks, t = 0;

    memset(pm->seen, 0, (c + 7) / 8);
    walk_cycle(pm, pm->from[c - 1], 0); /* marks it; its entries are rewritten below */
    for (size_t e0 = 0; e0 < c; e0++)
        if (!(pm->seen[e0 / 8] & (1u << (e0 % 8))))
            t = walk_cycle(pm, e0, t);
    walk_cycle(pm, pm->from[c - 1], t);
}

/* The keystream is read in the same order for encryption and decryption. */
static void perm_draw(perm *pm, keystream *ks)
{
    if (pm->chunks) {
        shuffle16(pm->inner, CHUNK, ks);
        shuffle32(pm->from, pm->chunks, ks);
        for (size_t e = 0; e < pm->chunks; e++)
            pm->mask[e] = (uint16_t)(ks_u32(ks) & (CHUNK - 1));
        perm_order(pm);
    }
    shuffle16(pm->tperm, pm->tail, ks);
}

/* One chunk (or the tail) of sweep 1: dst[j] = running sum of src[idx[j] ^ x]; undone
 * by dst[idx[j] ^ x] = src[j] - src[j-1].  *acc carries the sum across chunks (with
 * m = 2^d it is never reduced: reduction mod 2^d commutes with addition). */
static ALWAYS_INLINE void sum_kernel(void *dst, const void *src, const uint16_t *idx, size_t len,
                                     uint32_t x, uint32_t m, uint32_t *acc, int wide, int pow2,
                                     int dec)
{
    uint32_t a = *acc, mask = m - 1;

    for (size_t j = 0; j < len; j++) {
        size_t at = idx[j] ^ x;
        if (!dec) {
            uint32_t v = load_sample(src, at, wide);
            a = pow2 ? a + v : add_mod(a, v, m);
            store_sample(dst, j, pow2 ? a & mask : a, wide);
        } else {
            uint32_t v = load_sample(src, j, wide);
            store_sample(dst, at, pow2 ? (v - a) & mask : sub_mod(v, a, m), wide);
            a = v;
        }
    }
    *acc = a;
}

/* src is a scratch copy, which decryption may clobber; idx[len..2*len) holds the inverse
 * of idx[0..len). */
static void sum_chunk(void *dst, void *src, const uint16_t *idx, size_t len, uint32_t x, uint32_t m,
                      uint32_t *acc, int wide, int dec)
{
#if HAVE_VEC
    if (!wide && m <= 256 && vec_ok()) {
        vec_sum(dst, src, idx, len, x, m, acc, dec);
        return;
    }
#endif
#define SUM(w, p, d) sum_kernel(dst, src, idx, len, x, m, acc, w, p, d)
    switch (wide << 2 | is_pow2(m) << 1 | dec) {
    case 0:
        SUM(0, 0, 0);
        break;
    case 1:
        SUM(0, 0, 1);
        break;
    case 2:
        SUM(0, 1, 0);
        break;
    case 3:
        SUM(0, 1, 1);
        break;
    case 4:
        SUM(1, 0, 0);
        break;
    case 5:
        SUM(1, 0, 1);
        break;
    case 6:
        SUM(1, 1, 0);
        break;
    default:
        SUM(1, 1, 1);
        break;
    }
#undef SUM
}

/* Output chunk e is written from input chunk s = from[e]; s is copied to a buffer
 * first (a sequential read, so the gather hits L1), and a cycle's first chunk is
 * kept until the end of the cycle, which reads it last. */
static void sweep1_encrypt(perm *pm, uint8_t *base, uint32_t m, uint32_t iv, int wide)
{
    size_t cb = (size_t)CHUNK << wide;
    uint8_t *tail = base + pm->chunks * cb;
    uint32_t acc = iv;

    for (size_t t = 0; t < pm->chunks;) {
        size_t e0 = pm->order[t], e, s;
        memcpy(pm->buf[0], base + e0 * cb, cb);
        do {
            e = pm->order[t++];
            s = pm->from[e];
            if (s != e0)
                memcpy(pm->buf[1], base + s * cb, cb);
            sum_chunk(base + e * cb, pm->buf[s != e0], pm->inner, CHUNK, pm->mask[e], m, &acc, wide,
                      0);
        } while (s != e0);
    }
    memcpy(pm->buf[0], tail, pm->tail << wide);
    sum_chunk(tail, pm->buf[0], pm->tperm, pm->tail, 0, m, &acc, wide, 0);
}

/* The same visit order; ciphertext chunk e goes back to chunk s = from[e], whose own
 * ciphertext is saved first because the next step reads it. */
static void sweep1_decrypt(perm *pm, uint8_t *base, uint32_t m, uint32_t iv, int wide)
{
    size_t cb = (size_t)CHUNK << wide;
    uint8_t *tail = base + pm->chunks * cb;
    uint32_t acc = iv;

    for (size_t t = 0, cur = 0; t < pm->chunks;) {
        size_t e0 = pm->order[t], e, s;
        memcpy(pm->buf[cur], base + e0 * cb, cb);
        do {
            e = pm->order[t++];
            s = pm->from[e];
            if (s != e0)
                memcpy(pm->buf[!cur], base + s * cb, cb);
            sum_chunk(base + s * cb, pm->buf[cur], pm->inner, CHUNK, pm->mask[e], m, &acc, wide, 1);
            cur = !cur;
        } while (s != e0);
    }
    memcpy(pm->buf[0], tail, pm->tail << wide);
    sum_chunk(tail, pm->buf[0], pm->tperm, pm->tail, 0, m, &acc, wide, 1);
}

/* ---- backward pass ---- */

/* How the backward pass reads its keystream samples. */
enum key_kind {
    KEY_SAMPLES, /* uint16_t samples drawn mod m (m not a power of two) */
    KEY_BYTES,   /* raw keystream bytes, low bits used (m = 2^d <= 256) */
    KEY_WORDS,   /* raw little-endian 16-bit words, low bits used (m = 2^d > 256) */
};

static enum key_kind key_kind_of(uint32_t m)
{
    return !is_pow2(m) ? KEY_SAMPLES : m <= 256 ? KEY_BYTES : KEY_WORDS;
}

/* Scratch and parameters of the backward pass; table has m entries. */
typedef struct diffusion {
    uint8_t key[crypto_stream_chacha20_KEYBYTES]; /* STREAM_DIFFUSION */
    uint32_t m;
    enum key_kind kk;
    size_t n;
    uint16_t iv[1 + LAG]; /* d[n..n+LAG] */
    uint8_t raw[RAW_BYTES];
    uint16_t k[BLOCK];
    uint16_t table[];
} diffusion;

/* The next `bytes` (a multiple of 64) bytes of block b's keystream, from 64-byte block ctr. */
static void block_stream(diffusion *df, uint64_t b, uint64_t ctr, size_t bytes)
{
    uint8_t nonce[crypto_stream_chacha20_NONCEBYTES];

    store_le(nonce, b, sizeof nonce);
    memset(df->raw, 0, bytes);
    crypto_stream_chacha20_xor_ic(df->raw, df->raw, bytes, nonce, ctr, df->key);
}

/* Samples out[i..] below m from `units` 16-bit little-endian units, m <= 256 not a power
 * of two: Lemire's multiply, keeping the high half of w * m unless the low half is below
 * 2^16 mod m.  Returns the new i (at most len).  Rejections are rare (p < m / 2^16), so
 * groups of 32 units are drawn without compaction and redone one by one only if one of
 * them is rejected. */
static size_t draw16(uint16_t *out, size_t i, size_t len, const uint8_t *p, size_t units,
                     uint32_t m)
{
    uint32_t reject = 65536u % m;
    size_t w = 0;

#if HAVE_VEC
    if (vec_ok())
        return vec_draw16(out, i, len, p, units, m);
#endif
    for (; w + 32 <= units && i + 32 <= len; w += 32) {
        uint16_t s[32];
        uint32_t bad = 0;
        for (size_t j = 0; j < 32; j++) {
            uint32_t prod = (uint32_t)(p[2 * (w + j)] | p[2 * (w + j) + 1] << 8) * m;
            s[j] = (uint16_t)(prod >> 16);
            bad |= (prod & 0xffff) < reject;
        }
        if (!bad) {
            memcpy(out + i, s, sizeof s);
            i += 32;
            continue;
        }
        for (size_t j = 0; j < 32; j++) {
            uint32_t prod = (uint32_t)(p[2 * (w + j)] | p[2 * (w + j) + 1] << 8) * m;
            out[i] = (uint16_t)(prod >> 16);
            i += (prod & 0xffff) >= reject;
        }
    }
    for (; w < units && i < len; w++) {
        uint32_t prod = (uint32_t)(p[2 * w] | p[2 * w + 1] << 8) * m;
        out[i] = (uint16_t)(prod >> 16);
        i += (prod & 0xffff) >= reject;
    }
    return i;
}

/* The same from 32-bit units, for 256 < m < 2^16 not a power of two. */
static size_t draw32(uint16_t *out, size_t i, size_t len, const uint8_t *p, size_t units,
                     uint32_t m)
{
    uint32_t reject = (0u - m) % m; /* 2^32 mod m */

    for (size_t w = 0; w < units && i < len; w++) {
        uint64_t prod = (uint64_t)load_le32(p + 4 * w) * m;
        out[i] = (uint16_t)(prod >> 32);
        i += (uint32_t)prod >= reject;
    }
    return i;
}

/* Keystream of block b, len samples: raw bytes in df->raw for m = 2^d, samples in df->k
 * otherwise (drawn from 16-bit units for m <= 256, 32-bit units above; a rejected unit
 * is skipped, and units left in the last 64-byte block are dropped). */
static const void *block_key(diffusion *df, uint64_t b, size_t len)
{
    uint32_t m = df->m;
    uint64_t ctr = 0;
    size_t i = 0;

    if (df->kk != KEY_SAMPLES) {
        size_t bytes = len << (df->kk == KEY_WORDS);
        block_stream(df, b, 0, (bytes + 63) & ~(size_t)63);
        return df->raw;
    }
    while (i < len) {
        const uint8_t *p = df->raw;
        size_t unit = m <= 256 ? 2 : 4, bytes = ((len - i) * unit + 63) & ~(size_t)63;
        bytes = bytes < RAW_BYTES ? bytes : RAW_BYTES;
        block_stream(df, b, ctr, bytes);
        ctr += bytes / 64;
        if (unit == 2)
            i = draw16(df->k, i, len, p, bytes / 2, m);
        else
            i = draw32(df->k, i, len, p, bytes / 4, m);
    }
    return df->k;
}

/* Keystream sample at offset j of a block's key. */
static ALWAYS_INLINE uint32_t key_at(const void *key, size_t j, uint32_t m, enum key_kind kk)
{
    const uint8_t *k8 = key;

    if (kk == KEY_SAMPLES)
        return ((const uint16_t *)key)[j];
    if (kk == KEY_BYTES)
        return k8[j] & (m - 1);
    return (uint32_t)(k8[2 * j] | k8[2 * j + 1] << 8) & (m - 1);
}

/* Encryption of positions hi-1 down to lo, all with i + LAG < n; key[0] belongs to
 * position lo and prev is d[hi].  Values only go through a mask at the store when
 * m = 2^d. */
static ALWAYS_INLINE void enc_kernel(void *p, size_t lo, size_t hi, const void *key,
                                     const uint16_t *table, uint32_t m, uint32_t prev, int wide,
                                     enum key_kind kk)
{
    uint32_t mask = m - 1;

    for (size_t i = hi; i-- > lo;) {
        uint32_t x = load_sample(p, i, wide), k = key_at(key, i - lo, m, kk);
        uint32_t s = table[load_sample(p, i + LAG, wide)];
        if (kk != KEY_SAMPLES) {
            prev += x + k + s;
            store_sample(p, i, prev & mask, wide);
        } else {
            prev = add_mod(prev, add_mod(add_mod(x, k, m), s, m), m);
            store_sample(p, i, prev, wide);
        }
    }
}

/* Decryption of positions lo up to hi-1, all with i + LAG < n; key[0] belongs to lo. */
static ALWAYS_INLINE void dec_kernel(void *p, size_t lo, size_t hi, const void *key,
                                     const uint16_t *table, uint32_t m, int wide, enum key_kind kk)
{
    uint32_t mask = m - 1, y = hi > lo ? load_sample(p, lo, wide) : 0;

    for (size_t i = lo; i < hi; i++) {
        uint32_t next = load_sample(p, i + 1, wide), k = key_at(key, i - lo, m, kk);
        uint32_t s = table[load_sample(p, i + LAG, wide)];
        if (kk != KEY_SAMPLES)
            store_sample(p, i, (y - k - s - next) & mask, wide);
        else
            store_sample(p, i, sub_mod(y, add_mod(add_mod(k, s, m), next, m), m), wide);
        y = next;
    }
}

/* ---- vector kernels: samples in bytes, m <= 256 ----
 *
 * The same arithmetic as the portable loops, 64 samples at a time with AVX-512 (BW and
 * VBMI): running sums by log-step lane shifts, S by two-table byte permutes, the
 * in-chunk permutation by 32-bit gathers (GATHER_SLACK covers their 3 extra bytes).  With
 * m = 2^d, sums are kept mod 256 and masked on store, as the portable code does; for
 * other m every addition is reduced by one masked subtraction.  The loops are
 * instantiated for both cases, with constant flags. */
#if HAVE_VEC
#define VEC __attribute__((target("avx512f,avx512bw,avx512vbmi")))
#define VEC_INLINE inline __attribute__((always_inline, target("avx512f,avx512bw,avx512vbmi")))

typedef struct vec_mod {
    __m512i m;     /* m in every lane (not used when m = 256) */
    __m512i mask;  /* m - 1 in every lane, applied on store when m = 2^d */
    __m512i up[6]; /* lane shift indices for running sums, towards higher lanes */
    __m512i down[6];
} vec_mod;

VEC static void vec_mod_init(vec_mod *vm, uint32_t m)
{
    vm->m = _mm512_set1_epi8((char)m);
    vm->mask = _mm512_set1_epi8((char)(m - 1));
    for (unsigned s = 0; s < 6; s++) {
        uint8_t up[64], down[64];
        for (unsigned l = 0; l < 64; l++) {
            up[l] = (uint8_t)((l - (1u << s)) & 63);
            down[l] = (uint8_t)((l + (1u << s)) & 63);
        }
        vm->up[s] = _mm512_loadu_si512(up);
        vm->down[s] = _mm512_loadu_si512(down);
    }
}

/* (a + b) and (a - b) mod m per lane, for lanes below m (mod 256 when pow2). */
static VEC_INLINE __m512i vadd(__m512i a, __m512i b, const vec_mod *vm, int pow2)
{
    __m512i t = _mm512_add_epi8(a, b);
    if (pow2)
        return t;
    return _mm512_mask_sub_epi8(t, _mm512_cmpge_epu8_mask(a, _mm512_sub_epi8(vm->m, b)), t, vm->m);
}

static VEC_INLINE __m512i vsub(__m512i a, __m512i b, const vec_mod *vm, int pow2)
{
    __m512i t = _mm512_sub_epi8(a, b);
    if (pow2)
        return t;
    return _mm512_mask_add_epi8(t, _mm512_cmplt_epu8_mask(a, b), t, vm->m);
}

/* Lane l becomes the sum of lanes 0..l (up) or l..63 (down). */
static VEC_INLINE __m512i vsum(__m512i v, const vec_mod *vm, int pow2, int up)
{
    for (unsigned s = 0; s < 6; s++) {
        unsigned k = 1u << s;
        __mmask64 keep = up ? ~(__mmask64)0 << k : ~(__mmask64)0 >> k;
        v = vadd(v, _mm512_maskz_permutexvar_epi8(keep, up ? vm->up[s] : vm->down[s], v), vm, pow2);
    }
    return v;
}

static VEC_INLINE __m512i vstore_form(__m512i v, const vec_mod *vm, int pow2)
{
    return pow2 ? _mm512_and_si512(v, vm->mask) : v;
}

/* S[v] per lane; t[0..3] hold S as four 64-byte quarters. */
static VEC_INLINE __m512i sbox(__m512i v, const __m512i t[4])
{
    __m512i lo = _mm512_permutex2var_epi8(t[0], v, t[1]);
    __m512i hi = _mm512_permutex2var_epi8(t[2], v, t[3]);
    return _mm512_mask_blend_epi8(_mm512_movepi8_mask(v), lo, hi);
}

VEC static void sbox_load(__m512i t[4], const uint16_t *table, uint32_t m)
{
    uint8_t b[256];

    for (uint32_t v = 0; v < 256; v++)
        b[v] = v < m ? (uint8_t)table[v] : 0;
    for (int q = 0; q < 4; q++)
        t[q] = _mm512_loadu_si512(b + 64 * q);
    sodium_memzero(b, sizeof b);
}

/* 64 keystream samples from offset j: raw bytes (m = 2^d) or uint16_t samples below m. */
static VEC_INLINE __m512i vkey(const void *key, size_t j, int pow2)
{
    if (pow2)
        return _mm512_loadu_si512((const uint8_t *)key + j);
    const uint16_t *k = (const uint16_t *)key + j;
    __m256i lo = _mm512_cvtepi16_epi8(_mm512_loadu_si512(k));
    __m256i hi = _mm512_cvtepi16_epi8(_mm512_loadu_si512(k + 32));
    return _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
}

/* dst[i] = src[idx[i] ^ x], 16 at a time; reads up to 3 bytes past src[max index]. */
static VEC_INLINE void vgather(uint8_t *dst, const uint8_t *src, const uint16_t *idx, size_t len,
                               uint32_t x)
{
    __m512i vx = _mm512_set1_epi32((int)x);
    size_t i = 0;

    for (; i + 16 <= len; i += 16) {
        __m512i at = _mm512_xor_si512(
            _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(const void *)(idx + i))),
            vx);
        __m512i g = _mm512_i32gather_epi32(at, (const void *)src, 1);
        _mm_storeu_si128((__m128i *)(void *)(dst + i), _mm512_cvtepi32_epi8(g));
    }
    for (; i < len; i++)
        dst[i] = src[idx[i] ^ x];
}

/* The same scatter as dst[idx[i] ^ x] = src[i], as a gather through the inverse
 * permutation inv: dst[y] = src[inv[y ^ x]].  Block y0..y0+15 reads the inverse at block
 * y0 ^ x with lanes exchanged by x mod 16; needs x == 0 or len a multiple of 16 (and
 * of every x: len a power of two). */
static VEC_INLINE void vgather_inv(uint8_t *dst, const uint8_t *src, const uint16_t *inv,
                                   size_t len, uint32_t x)
{
    uint32_t lanes[16];
    size_t y = 0;

    for (unsigned l = 0; l < 16; l++)
        lanes[l] = l ^ (x & 15);
    __m512i swap = _mm512_loadu_si512(lanes);
    for (; y + 16 <= len; y += 16) {
        const uint16_t *blk = inv + (y ^ (x & ~15u));
        __m512i at = _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(const void *)blk));
        __m512i g =
            _mm512_i32gather_epi32(_mm512_permutexvar_epi32(swap, at), (const void *)src, 1);
        _mm_storeu_si128((__m128i *)(void *)(dst + y), _mm512_cvtepi32_epi8(g));
    }
    for (; y < len; y++) /* x == 0 here */
        dst[y] = src[inv[y]];
}

static VEC_INLINE void vec_sum_enc_t(uint8_t *dst, const uint8_t *src, const uint16_t *idx,
                                     size_t len, uint32_t x, uint32_t m, uint32_t *acc, int pow2)
{
    vec_mod vm;
    uint32_t a = *acc & 255, mask = m - 1;
    size_t j = 0;

    vgather(dst, src, idx, len, x);
    if (len >= 64) {
        __m512i va = _mm512_set1_epi8((char)a), last = _mm512_set1_epi8(63);
        vec_mod_init(&vm, m);
        for (; j + 64 <= len; j += 64) {
            __m512i v = vadd(vsum(_mm512_loadu_si512(dst + j), &vm, pow2, 1), va, &vm, pow2);
            va = _mm512_permutexvar_epi8(last, v);
            _mm512_storeu_si512(dst + j, vstore_form(v, &vm, pow2));
        }
        a = (uint8_t)_mm_cvtsi128_si32(_mm512_castsi512_si128(va));
    }
    for (; j < len; j++) {
        a = pow2 ? a + dst[j] : add_mod(a, dst[j], m);
        dst[j] = (uint8_t)(pow2 ? a & mask : a);
    }
    *acc = a;
}

static VEC_INLINE void vec_sum_dec_t(uint8_t *dst, uint8_t *src, const uint16_t *idx, size_t len,
                                     uint32_t x, uint32_t m, uint32_t *acc, int pow2)
{
    vec_mod vm;
    uint32_t mask = m - 1, a = pow2 ? *acc & mask : *acc, next = len ? src[len - 1] : a;
    size_t j = len;

#define DIFF(v, w) (uint8_t)(pow2 ? ((v) - (w)) & mask : sub_mod(v, w, m))
    /* Differences in place, from the top down so that src[j-1] is still unchanged. */
    for (; j > 64 && j % 64; j--)
        src[j - 1] = DIFF(src[j - 1], src[j - 2]);
    if (j >= 128)
        vec_mod_init(&vm, m);
    for (; j >= 128; j -= 64) {
        __m512i v = _mm512_loadu_si512(src + j - 64), w = _mm512_loadu_si512(src + j - 65);
        _mm512_storeu_si512(src + j - 64, vstore_form(vsub(v, w, &vm, pow2), &vm, pow2));
    }
    for (; j > 1; j--)
        src[j - 1] = DIFF(src[j - 1], src[j - 2]);
    if (len)
        src[0] = DIFF(src[0], a);
#undef DIFF
    if (x == 0 || len % 16 == 0)
        vgather_inv(dst, src, idx + len, len, x);
    else
        for (size_t i = 0; i < len; i++)
            dst[idx[i] ^ x] = src[i];
    *acc = next;
}

/* enc_kernel on bytes: positions hi-1 down to lo, all with i + LAG < n. */
static VEC_INLINE void vec_chain_enc_t(uint8_t *p, size_t lo, size_t hi, const void *key,
                                       const uint16_t *table, uint32_t m, int pow2)
{
    vec_mod vm;
    __m512i t[4], first = _mm512_setzero_si512();
    __m512i prevg = _mm512_loadu_si512(p + hi); /* d[hi .. hi+LAG-1] */
    size_t i = hi;

    vec_mod_init(&vm, m);
    sbox_load(t, table, m);
    for (; i - lo >= 64; i -= 64) {
        __m512i c = _mm512_loadu_si512(p + i - 64), k = vkey(key, i - 64 - lo, pow2);
        __m512i u = vadd(vadd(c, k, &vm, pow2), sbox(prevg, t), &vm, pow2);
        u = vadd(vsum(u, &vm, pow2, 0), _mm512_permutexvar_epi8(first, prevg), &vm, pow2);
        prevg = vstore_form(u, &vm, pow2);
        _mm512_storeu_si512(p + i - 64, prevg);
    }
    if (i > lo)
        enc_kernel(p, lo, i, key, table, m, p[i], 0, pow2 ? KEY_BYTES : KEY_SAMPLES);
}

/* dec_kernel on bytes: positions lo up to hi-1, all with i + LAG < n. */
static VEC_INLINE void vec_chain_dec_t(uint8_t *p, size_t lo, size_t hi, const void *key,
                                       const uint16_t *table, uint32_t m, int pow2)
{
    vec_mod vm;
    __m512i t[4];
    size_t i = lo;

    vec_mod_init(&vm, m);
    sbox_load(t, table, m);
    for (; hi - i >= 64; i += 64) {
        __m512i y = _mm512_loadu_si512(p + i), next = _mm512_loadu_si512(p + i + 1);
        __m512i lag = _mm512_loadu_si512(p + i + LAG), k = vkey(key, i - lo, pow2);
        __m512i sub = vadd(vadd(k, sbox(lag, t), &vm, pow2), next, &vm, pow2);
        _mm512_storeu_si512(p + i, vstore_form(vsub(y, sub, &vm, pow2), &vm, pow2));
    }
    if (i < hi) {
        const uint8_t *k8 = key;
        const uint16_t *k16 = key;
        dec_kernel(p, i, hi, pow2 ? (const void *)(k8 + (i - lo)) : (const void *)(k16 + (i - lo)),
                   table, m, 0, pow2 ? KEY_BYTES : KEY_SAMPLES);
    }
}

/* draw16 with the same groups of 32 units. */
VEC static size_t vec_draw16(uint16_t *out, size_t i, size_t len, const uint8_t *p, size_t units,
                             uint32_t m)
{
    uint32_t reject = 65536u % m;
    __m512i vm = _mm512_set1_epi16((short)m), vr = _mm512_set1_epi16((short)reject);
    size_t w = 0;

    for (; w + 32 <= units && i + 32 <= len; w += 32) {
        __m512i u = _mm512_loadu_si512(p + 2 * w); /* little-endian units */
        if (!_mm512_cmplt_epu16_mask(_mm512_mullo_epi16(u, vm), vr)) {
            _mm512_storeu_si512(out + i, _mm512_mulhi_epu16(u, vm));
            i += 32;
            continue;
        }
        for (size_t j = 0; j < 32; j++) {
            uint32_t prod = (uint32_t)(p[2 * (w + j)] | p[2 * (w + j) + 1] << 8) * m;
            out[i] = (uint16_t)(prod >> 16);
            i += (prod & 0xffff) >= reject;
        }
    }
    for (; w < units && i < len; w++) {
        uint32_t prod = (uint32_t)(p[2 * w] | p[2 * w + 1] << 8) * m;
        out[i] = (uint16_t)(prod >> 16);
        i += (prod & 0xffff) >= reject;
    }
    return i;
}

VEC static void vec_sum(uint8_t *dst, uint8_t *src, const uint16_t *idx, size_t len, uint32_t x,
                        uint32_t m, uint32_t *acc, int dec)
{
    if (is_pow2(m) && dec)
        vec_sum_dec_t(dst, src, idx, len, x, m, acc, 1);
    else if (is_pow2(m))
        vec_sum_enc_t(dst, src, idx, len, x, m, acc, 1);
    else if (dec)
        vec_sum_dec_t(dst, src, idx, len, x, m, acc, 0);
    else
        vec_sum_enc_t(dst, src, idx, len, x, m, acc, 0);
}

VEC static void vec_chain(uint8_t *p, size_t lo, size_t hi, const void *key, const uint16_t *table,
                          uint32_t m, int dec)
{
    if (is_pow2(m) && dec)
        vec_chain_dec_t(p, lo, hi, key, table, m, 1);
    else if (is_pow2(m))
        vec_chain_enc_t(p, lo, hi, key, table, m, 1);
    else if (dec)
        vec_chain_dec_t(p, lo, hi, key, table, m, 0);
    else
        vec_chain_enc_t(p, lo, hi, key, table, m, 0);
}
#endif

/* Instantiates the kernels with constant flags: one specialised loop per case. */
static void chain_piece(diffusion *df, void *p, size_t lo, size_t hi, const void *key,
                        uint32_t prev, int wide, int dec)
{
    uint32_t m = df->m;
    enum key_kind kk = df->kk;

#if HAVE_VEC
    if (!wide && m <= 256 && vec_ok()) {
        vec_chain(p, lo, hi, key, df->table, m, dec);
        return;
    }
#endif
#define CHAIN(w, k)                                                                                \
    do {                                                                                           \
        if (dec)                                                                                   \
            dec_kernel(p, lo, hi, key, df->table, m, w, k);                                        \
        else                                                                                       \
            enc_kernel(p, lo, hi, key, df->table, m, prev, w, k);                                  \
    } while (0)
    switch (wide << 2 | kk) {
    case 0 << 2 | KEY_SAMPLES:
        CHAIN(0, KEY_SAMPLES);
        break;
    case 0 << 2 | KEY_BYTES:
        CHAIN(0, KEY_BYTES);
        break;
    case 1 << 2 | KEY_SAMPLES:
        CHAIN(1, KEY_SAMPLES);
        break;
    case 1 << 2 | KEY_BYTES:
        CHAIN(1, KEY_BYTES);
        break;
    default:
        CHAIN(1, KEY_WORDS);
        break;
    }
#undef CHAIN
}

/* d[j] for j <= n + LAG: the samples, then the initial values. */
static uint32_t d_at(const diffusion *df, const void *p, size_t j, int wide)
{
    return j < df->n ? load_sample(p, j, wide) : df->iv[j - df->n];
}

/* Positions lo..hi-1 among the last LAG ones, whose S index may be an initial value;
 * key[0] belongs to position klo.  Downwards to encrypt, upwards to decrypt. */
static void chain_edge(diffusion *df, void *p, size_t lo, size_t hi, size_t klo, const void *key,
                       int wide, int dec)
{
    uint32_t m = df->m;

    for (size_t t = 0; t < hi - lo; t++) {
        size_t i = dec ? lo + t : hi - 1 - t;
        uint32_t x = load_sample(p, i, wide), next = d_at(df, p, i + 1, wide);
        uint32_t s = df->table[d_at(df, p, i + LAG, wide)], k;
        switch (df->kk) {
        case KEY_SAMPLES:
            k = key_at(key, i - klo, m, KEY_SAMPLES);
            break;
        case KEY_BYTES:
            k = key_at(key, i - klo, m, KEY_BYTES);
            break;
        default:
            k = key_at(key, i - klo, m, KEY_WORDS);
            break;
        }
        if (!dec)
            store_sample(p, i, (x + k + s + next) % m, wide);
        else
            store_sample(p, i, (x + 3 * m - k - s - next) % m, wide);
    }
}

/* Blocks from the last down to encrypt, from the first up to decrypt.  Within a block
 * the fast kernels cover the positions below n - LAG and chain_edge the rest. */
static void backward_pass(diffusion *df, void *samples, int wide, int dec)
{
    size_t n = df->n, edge = n > LAG ? n - LAG : 0, blocks = (n + BLOCK - 1) / BLOCK;

    for (size_t t = 0; t < blocks; t++) {
        size_t b = dec ? t : blocks - 1 - t, lo = b * BLOCK;
        size_t hi = n - lo < BLOCK ? n : lo + BLOCK;
        size_t mid = edge < lo ? lo : edge < hi ? edge : hi; /* fast below, edge above */
        const void *key = block_key(df, b, hi - lo);
        if (!dec && mid < hi)
            chain_edge(df, samples, mid, hi, lo, key, wide, 0);
        if (mid > lo)
            chain_piece(df, samples, lo, mid, key, d_at(df, samples, mid, wide), wide, dec);
        if (dec && mid < hi)
            chain_edge(df, samples, mid, hi, lo, key, wide, 1);
    }
}

/* ---- entry points ---- */

/* The largest sample; fixed-length inner loops so that the compiler vectorises them. */
static uint32_t max_sample(const void *samples, size_t n, int wide)
{
    uint32_t mx = 0;
    size_t i = 0;

    if (!wide) {
        const uint8_t *p = samples;
        for (uint8_t b; i + 64 <= n; i += 64) {
            b = 0;
            for (size_t j = 0; j < 64; j++)
                b = p[i + j] > b ? p[i + j] : b;
            mx = b > mx ? b : mx;
        }
    } else {
        const uint16_t *p = samples;
        for (uint16_t w; i + 32 <= n; i += 32) {
            w = 0;
            for (size_t j = 0; j < 32; j++)
                w = p[i + j] > w ? p[i + j] : w;
            mx = w > mx ? w : mx;
        }
    }
    for (; i < n; i++) {
        uint32_t v = load_sample(samples, i, wide);
        mx = v > mx ? v : mx;
    }
    return mx;
}

static int cipher_run(void *samples, size_t n, uint32_t m, int wide, int dec,
                      const uint8_t perm_key[PXC_CIPHER_KEY_BYTES],
                      const uint8_t diff_key[PXC_CIPHER_KEY_BYTES])
{
    uint32_t limit = wide ? PXC_CIPHER_MODULUS_MAX_U16 : PXC_CIPHER_MODULUS_MAX_U8;
    size_t df_bytes = offsetof(diffusion, table) + m * sizeof(uint16_t);
    uint16_t iv[2 + LAG];
    keystream *ks;
    diffusion *df;
    perm pm;

    if (m == 0 || m > limit || (!samples && n))
        return -EINVAL;
    if (n == 0)
        return 0;
    if (m < limit && max_sample(samples, n, wide) >= m)
        return -ERANGE;
    if (m == 1)
        return 0;
    if (n / CHUNK > UINT32_MAX)
        return -EFBIG;
    /* Everything is allocated before the samples are touched, so errors change nothing. */
    if (perm_alloc(&pm, n, wide) != 0)
        return -ENOMEM;
    df = malloc(df_bytes);
    ks = malloc(sizeof *ks);
    if (!df || !ks) {
        free(ks);
        free(df);
        free(pm.mem);
        return -ENOMEM;
    }
    ks_init(ks, perm_key, STREAM_PERMUTATION, n, m);
    perm_draw(&pm, ks);
    ks_init(ks, diff_key, STREAM_SETUP, n, m);
    ks_samples(ks, m, df->table, m);
    ks_samples(ks, m, iv, 2 + LAG);
    stream_key(df->key, diff_key, STREAM_DIFFUSION, n, m);
    df->m = m;
    df->kk = key_kind_of(m);
    df->n = n;
    memcpy(df->iv, iv + 1, sizeof df->iv);
    if (!dec) {
        sweep1_encrypt(&pm, samples, m, iv[0], wide);
        backward_pass(df, samples, wide, 0);
    } else {
        backward_pass(df, samples, wide, 1);
        sweep1_decrypt(&pm, samples, m, iv[0], wide);
    }
    sodium_memzero(iv, sizeof iv);
    sodium_memzero(ks, sizeof *ks);
    free(ks);
    sodium_memzero(df, df_bytes);
    free(df);
    sodium_memzero(pm.mem, pm.bytes); /* keyed tables and copies of samples */
    free(pm.mem);
    return 0;
}

int pxc_cipher_encrypt_u8(uint8_t *samples, size_t n, uint32_t modulus,
                          const uint8_t perm_key[PXC_CIPHER_KEY_BYTES],
                          const uint8_t diff_key[PXC_CIPHER_KEY_BYTES])
{
    return cipher_run(samples, n, modulus, 0, 0, perm_key, diff_key);
}

int pxc_cipher_decrypt_u8(uint8_t *samples, size_t n, uint32_t modulus,
                          const uint8_t perm_key[PXC_CIPHER_KEY_BYTES],
                          const uint8_t diff_key[PXC_CIPHER_KEY_BYTES])
{
    return cipher_run(samples, n, modulus, 0, 1, perm_key, diff_key);
}

int pxc_cipher_encrypt_u16(uint16_t *samples, size_t n, uint32_t modulus,
                           const uint8_t perm_key[PXC_CIPHER_KEY_BYTES],
                           const uint8_t diff_key[PXC_CIPHER_KEY_BYTES])
{
    return cipher_run(samples, n, modulus, 1, 0, perm_key, diff_key);
}

int pxc_cipher_decrypt_u16(uint16_t *samples, size_t n, uint32_t modulus,
                           const uint8_t perm_key[PXC_CIPHER_KEY_BYTES],
                           const uint8_t diff_key[PXC_CIPHER_KEY_BYTES])
{
    return cipher_run(samples, n, modulus, 1, 1, perm_key, diff_key);
}

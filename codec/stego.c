/* LSB steganography with keyed positions and a sealed message (format in stego.h). */
#include "codec/stego.h"

#include <errno.h>
#include <png.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "codec/bytes.h"
#include "codec/png_memio.h"

#define CONTEXT "pixcrypt-stego-v1"
#define SALT_BYTES 16
#define PUBLIC_BYTES (SALT_BYTES + 1) /* salt || KDF level */
#define LEN_BYTES 4
#define TAG_BYTES crypto_aead_xchacha20poly1305_ietf_ABYTES
#define KEY_BYTES 32
#define DERIVED_BYTES (KEY_BYTES + KEY_BYTES + LEN_BYTES)
#define MAX_IMAGE_BYTES ((size_t)1 << 30)
#define RAND_BLOCK 512

_Static_assert(SALT_BYTES >= crypto_pwhash_SALTBYTES, "the salt feeds crypto_pwhash");

/* ---- PNG in and out ---------------------------------------------------------------- */

typedef struct mem_writer {
    uint8_t *p;
    size_t n, cap;
    int failed;
} mem_writer;

static void write_mem(png_structp png, png_bytep in, png_size_t n)
{
    mem_writer *w = png_get_io_ptr(png);
    if (n > w->cap - w->n) {
        size_t cap = w->cap ? w->cap : 1 << 16;
        while (cap - w->n < n)
            cap *= 2;
        uint8_t *p = realloc(w->p, cap);
        if (!p) {
            w->failed = 1;
            png_error(png, "out of memory");
        }
        w->p = p;
        w->cap = cap;
    }
    memcpy(w->p + w->n, in, n);
    w->n += n;
}

static void flush_mem(png_structp png)
{
    (void)png;
}

/* Errors become return values (after setjmp), not messages on stderr. */
static void quiet_error(png_structp png, png_const_charp msg)
{
    (void)msg;
    png_longjmp(png, 1);
}

static void quiet_warning(png_structp png, png_const_charp msg)
{
    (void)png;
    (void)msg;
}

int stego_image_read(const uint8_t *data, size_t n, stego_image *img, const char **why)
{
    png_memio r = {data, n, 0};
    png_structp png = NULL;
    png_infop info = NULL;
    png_bytep *volatile rows = NULL; /* volatile: read after a longjmp */
    volatile int rc = -EINVAL;

    memset(img, 0, sizeof *img);
    *why = "not a PNG file";
    if (n < 8 || png_sig_cmp(data, 0, 8) != 0)
        return -EINVAL;
    png = png_create_read_struct(PNG_LIBPNG_VER_STRING, NULL, quiet_error, quiet_warning);
    info = png ? png_create_info_struct(png) : NULL;
    if (!png || !info) {
        png_destroy_read_struct(&png, &info, NULL);
        return -ENOMEM;
    }
    if (setjmp(png_jmpbuf(png))) {
        *why = "damaged PNG file";
        goto out;
    }
    png_set_read_fn(png, &r, png_memio_read);
    png_set_user_limits(png, 1u << 16, 1u << 16);
    /* Ancillary chunks are not kept, so not read either: one claiming a huge size (text,
     * ICC) is skipped rather than read into memory.  tRNS stays: it becomes alpha. */
    static const png_byte skipped[] = "bKGD\0cHRM\0eXIf\0gAMA\0hIST\0iCCP\0iTXt\0oFFs\0"
                                      "pCAL\0pHYs\0sBIT\0sCAL\0sPLT\0sRGB\0tEXt\0tIME\0zTXt";
    png_set_keep_unknown_chunks(png, PNG_HANDLE_CHUNK_NEVER, skipped, 17);
    png_read_info(png, info);
    png_set_expand(png); /* palette -> RGB, gray < 8 bits -> 8, tRNS -> alpha */
    png_set_interlace_handling(png);
    png_read_update_info(png, info);
    img->width = png_get_image_width(png, info);
    img->height = png_get_image_height(png, info);
    img->color_type = png_get_color_type(png, info);
    img->bit_depth = png_get_bit_depth(png, info);
    img->channels = png_get_channels(png, info);
    img->color_channels = img->channels - (img->color_type & PNG_COLOR_MASK_ALPHA ? 1 : 0);
    img->rowbytes = png_get_rowbytes(png, info);
    if ((img->bit_depth != 8 && img->bit_depth != 16) || img->color_channels < 1 ||
        img->rowbytes == 0 || img->height == 0 || img->rowbytes > MAX_IMAGE_BYTES / img->height) {
        *why = "unsupported or too large PNG image";
        goto out;
    }
    /* Deflate expands at most 1032:1: more pixels than that are a lie of IHDR (a
     * decompression bomb or a truncated file), refused before allocating them. */
    if (img->rowbytes * img->height / 1032 > n) {
        *why = "damaged PNG file (its data cannot hold the image it declares)";
        goto out;
    }
    img->pixels = malloc(img->rowbytes * img->height);
    rows = malloc(sizeof *rows * img->height);
    if (!img->pixels || !rows) {
        rc = -ENOMEM;
        *why = "out of memory";
        goto out;
    }
    for (uint32_t y = 0; y < img->height; y++)
        rows[y] = img->pixels + (size_t)y * img->rowbytes;
    png_read_image(png, rows);
    png_read_end(png, NULL);
    rc = 0;
    *why = NULL;
out:
    png_destroy_read_struct(&png, &info, NULL);
    free(rows);
    if (rc != 0)
        stego_image_free(img);
    return rc;
}

int stego_image_write(const stego_image *img, uint8_t **out, size_t *n)
{
    mem_writer w = {0};
    png_structp png =
        png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, quiet_error, quiet_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    int rc = -ENOMEM;

    if (!png || !info)
        goto out;
    if (setjmp(png_jmpbuf(png))) {
        rc = w.failed ? -ENOMEM : -EIO;
        goto out;
    }
    png_set_write_fn(png, &w, write_mem, flush_mem);
    png_set_IHDR(png, info, img->width, img->height, img->bit_depth, img->color_type,
                 PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    for (uint32_t y = 0; y < img->height; y++)
        png_write_row(png, img->pixels + (size_t)y * img->rowbytes);
    png_write_end(png, info);
    *out = w.p;
    *n = w.n;
    w.p = NULL;
    rc = 0;
out:
    png_destroy_write_struct(&png, &info);
    free(w.p);
    return rc;
}

void stego_image_free(stego_image *img)
{
    free(img->pixels);
    img->pixels = NULL;
}

/* ---- sample positions -------------------------------------------------------------- */

static uint64_t carrier_count(const stego_image *img)
{
    return (uint64_t)img->width * img->height * (uint64_t)img->color_channels;
}

/* At most half the samples: drawing without replacement stays cheap (no more than two
 * draws per position on average). */
static uint64_t usable_bits(const stego_image *img)
{
    return carrier_count(img) / 2;
}

size_t stego_capacity(const stego_image *img)
{
    uint64_t bytes = usable_bits(img) / 8, overhead = PUBLIC_BYTES + LEN_BYTES + TAG_BYTES;
    if (bytes <= overhead)
        return 0;
    bytes -= overhead;
    return bytes > UINT32_MAX ? UINT32_MAX : (size_t)bytes;
}

/* Distinct sample indexes drawn from a ChaCha20 stream, shared "used" map across streams. */
typedef struct positions {
    uint8_t key[KEY_BYTES];
    uint64_t block; /* next ChaCha20 block */
    uint64_t buf[RAND_BLOCK / 8];
    size_t have;
    uint64_t n;
    uint8_t *used; /* one bit per sample */
} positions;

static void positions_key(positions *p, const uint8_t key[KEY_BYTES])
{
    memcpy(p->key, key, KEY_BYTES);
    p->block = 0;
    p->have = 0;
}

static uint64_t next_random(positions *p)
{
    static const uint8_t nonce[crypto_stream_chacha20_NONCEBYTES] = {0};
    if (p->have == 0) {
        uint8_t raw[RAND_BLOCK] = {0};
        crypto_stream_chacha20_xor_ic(raw, raw, sizeof raw, nonce, p->block, p->key);
        p->block += RAND_BLOCK / 64;
        for (size_t i = 0; i < RAND_BLOCK / 8; i++)
            p->buf[i] = get_le(raw + 8 * i, 8);
        p->have = RAND_BLOCK / 8;
    }
    return p->buf[RAND_BLOCK / 8 - p->have--]; /* in stream order */
}

static uint64_t next_position(positions *p)
{
    for (;;) {
        uint64_t r = next_random(p) % p->n; /* bias below 2^-30 for any image we read */
        if (!(p->used[r / 8] & (1u << (r % 8)))) {
            p->used[r / 8] |= (uint8_t)(1u << (r % 8));
            return r;
        }
    }
}

/* Byte holding the last bit of sample c (colour samples numbered in pixel order). */
static uint8_t *sample_lsb(const stego_image *img, uint64_t c)
{
    uint64_t pixel = c / (uint64_t)img->color_channels;
    unsigned ch = (unsigned)(c % (uint64_t)img->color_channels);
    uint64_t y = pixel / img->width, x = pixel % img->width;
    int bps = img->bit_depth / 8;
    return img->pixels + y * img->rowbytes + (x * (uint64_t)img->channels + ch) * (uint64_t)bps +
           (uint64_t)(bps - 1);
}

/* Sets a sample's last bit by LSB matching: a sample whose bit differs moves up or down
 * by one at random (inward at the ends of the range), so that the pairs of values
 * 2k, 2k+1 keep their histogram shape, which plain bit replacement evens out and the
 * chi-square and RS steganalysis detect. */
static void set_last_bit(const stego_image *img, uint64_t c, unsigned bit, uint8_t *coin,
                         unsigned *coins)
{
    uint8_t *lsb = sample_lsb(img, c);
    if ((*lsb & 1u) == bit)
        return;
    if (*coins == 0) {
        randombytes_buf(coin, 1);
        *coins = 8;
    }
    int up = (*coin >> --*coins) & 1;
    if (img->bit_depth == 8) {
        up = *lsb == 0 ? 1 : *lsb == 255 ? 0 : up;
        *lsb = (uint8_t)(up ? *lsb + 1 : *lsb - 1);
        return;
    }
    unsigned v = (unsigned)lsb[-1] << 8 | *lsb; /* 16-bit, big-endian */
    up = v == 0 ? 1 : v == 65535 ? 0 : up;
    v = up ? v + 1 : v - 1;
    lsb[-1] = (uint8_t)(v >> 8);
    *lsb = (uint8_t)v;
}

static void put_bytes(stego_image *img, positions *p, const uint8_t *in, size_t n)
{
    uint8_t coin = 0;
    unsigned coins = 0;
    for (size_t i = 0; i < n; i++)
        for (int b = 7; b >= 0; b--)
            set_last_bit(img, next_position(p), (in[i] >> b) & 1u, &coin, &coins);
}

static void get_bytes(const stego_image *img, positions *p, uint8_t *out, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned v = 0;
        for (int b = 0; b < 8; b++)
            v = v << 1 | (*sample_lsb(img, next_position(p)) & 1u);
        out[i] = (uint8_t)v;
    }
}

/* The public stream's key: a function of the image geometry only. */
static void public_key(uint8_t key[KEY_BYTES], const stego_image *img)
{
    uint8_t geo[12];
    put_le(geo, img->width, 4);
    put_le(geo + 4, img->height, 4);
    put_le(geo + 8, (uint32_t)(img->color_channels << 8 | img->bit_depth), 4);
    crypto_generichash(key, KEY_BYTES, geo, sizeof geo, (const uint8_t *)CONTEXT,
                       sizeof CONTEXT - 1);
}

static int kdf_limits(int level, unsigned long long *ops, size_t *mem)
{
    switch (level) {
    case STEGO_KDF_INTERACTIVE:
        *ops = crypto_pwhash_argon2id_OPSLIMIT_INTERACTIVE;
        *mem = crypto_pwhash_argon2id_MEMLIMIT_INTERACTIVE;
        return 0;
    case STEGO_KDF_MODERATE:
        *ops = crypto_pwhash_argon2id_OPSLIMIT_MODERATE;
        *mem = crypto_pwhash_argon2id_MEMLIMIT_MODERATE;
        return 0;
    case STEGO_KDF_SENSITIVE:
        *ops = crypto_pwhash_argon2id_OPSLIMIT_SENSITIVE;
        *mem = crypto_pwhash_argon2id_MEMLIMIT_SENSITIVE;
        return 0;
    }
    return -1;
}

/* Argon2id(passphrase, salt) -> AEAD key || position key || length mask. */
static int derive(uint8_t *out, const char *pass, size_t passlen, const uint8_t pub[PUBLIC_BYTES])
{
    unsigned long long ops;
    size_t mem;
    if (kdf_limits(pub[SALT_BYTES], &ops, &mem) != 0)
        return -EBADMSG;
    if (crypto_pwhash(out, DERIVED_BYTES, pass, passlen, pub, ops, mem,
                      crypto_pwhash_ALG_ARGON2ID13) != 0)
        return -ENOMEM;
    return 0;
}

static void make_ad(uint8_t ad[sizeof CONTEXT - 1 + PUBLIC_BYTES + LEN_BYTES],
                    const uint8_t pub[PUBLIC_BYTES], const uint8_t masked_len[LEN_BYTES])
{
    memcpy(ad, CONTEXT, sizeof CONTEXT - 1);
    memcpy(ad + sizeof CONTEXT - 1, pub, PUBLIC_BYTES);
    memcpy(ad + sizeof CONTEXT - 1 + PUBLIC_BYTES, masked_len, LEN_BYTES);
}

static int positions_init(positions *p, const stego_image *img)
{
    memset(p, 0, sizeof *p);
    p->n = carrier_count(img);
    p->used = calloc(p->n / 8 + 1, 1);
    return p->used ? 0 : -ENOMEM;
}

int stego_hide(stego_image *img, const uint8_t *msg, size_t len, const char *pass, size_t passlen,
               enum stego_kdf level)
{
    static const uint8_t nonce[crypto_aead_xchacha20poly1305_ietf_NPUBBYTES] = {0};
    uint8_t pub[PUBLIC_BYTES], key[KEY_BYTES], masked[LEN_BYTES];
    uint8_t ad[sizeof CONTEXT - 1 + PUBLIC_BYTES + LEN_BYTES];
    uint8_t *derived = NULL, *sealed = NULL;
    unsigned long long ops;
    size_t mem;
    positions p;
    int rc;

    if (!img || !img->pixels || (!msg && len) || !pass || kdf_limits((int)level, &ops, &mem) != 0)
        return -EINVAL;
    if (len > stego_capacity(img))
        return -EFBIG;
    if ((rc = positions_init(&p, img)) != 0)
        return rc;
    derived = sodium_malloc(DERIVED_BYTES);
    sealed = malloc(len + TAG_BYTES);
    if (!derived || !sealed) {
        rc = -ENOMEM;
        goto out;
    }
    randombytes_buf(pub, SALT_BYTES);
    pub[SALT_BYTES] = (uint8_t)level;
    if ((rc = derive(derived, pass, passlen, pub)) != 0)
        goto out;
    put_le(masked, (uint32_t)len, 4);
    for (int i = 0; i < LEN_BYTES; i++)
        masked[i] ^= derived[2 * KEY_BYTES + i];
    make_ad(ad, pub, masked);
    crypto_aead_xchacha20poly1305_ietf_encrypt(sealed, NULL, msg, len, ad, sizeof ad, NULL, nonce,
                                               derived);
    public_key(key, img);
    positions_key(&p, key);
    put_bytes(img, &p, pub, sizeof pub);
    positions_key(&p, derived + KEY_BYTES);
    put_bytes(img, &p, masked, sizeof masked);
    put_bytes(img, &p, sealed, len + TAG_BYTES);
    rc = 0;
out:
    if (derived)
        sodium_free(derived);
    free(sealed);
    free(p.used);
    sodium_memzero(&p, sizeof p);
    return rc;
}

int stego_reveal(const stego_image *img, const char *pass, size_t passlen, uint8_t **msg,
                 size_t *len)
{
    static const uint8_t nonce[crypto_aead_xchacha20poly1305_ietf_NPUBBYTES] = {0};
    uint8_t pub[PUBLIC_BYTES], key[KEY_BYTES], masked[LEN_BYTES], lenbytes[LEN_BYTES];
    uint8_t ad[sizeof CONTEXT - 1 + PUBLIC_BYTES + LEN_BYTES];
    uint8_t *derived = NULL, *sealed = NULL, *plain = NULL;
    positions p;
    int rc;

    if (!img || !img->pixels || !pass || !msg || !len)
        return -EINVAL;
    if (stego_capacity(img) == 0)
        return -EBADMSG;
    if ((rc = positions_init(&p, img)) != 0)
        return rc;
    public_key(key, img);
    positions_key(&p, key);
    get_bytes(img, &p, pub, sizeof pub);
    derived = sodium_malloc(DERIVED_BYTES);
    if (!derived) {
        rc = -ENOMEM;
        goto out;
    }
    if ((rc = derive(derived, pass, passlen, pub)) != 0) /* -EBADMSG: no level we know */
        goto out;
    positions_key(&p, derived + KEY_BYTES);
    get_bytes(img, &p, masked, sizeof masked);
    for (int i = 0; i < LEN_BYTES; i++)
        lenbytes[i] = masked[i] ^ derived[2 * KEY_BYTES + i];
    size_t n = (size_t)get_le(lenbytes, 4);
    rc = -EBADMSG;
    if (n > stego_capacity(img))
        goto out;
    sealed = malloc(n + TAG_BYTES);
    plain = malloc(n ? n : 1);
    if (!sealed || !plain) {
        rc = -ENOMEM;
        goto out;
    }
    get_bytes(img, &p, sealed, n + TAG_BYTES);
    make_ad(ad, pub, masked);
    if (crypto_aead_xchacha20poly1305_ietf_decrypt(plain, NULL, NULL, sealed, n + TAG_BYTES, ad,
                                                   sizeof ad, nonce, derived) != 0)
        goto out;
    *msg = plain;
    *len = n;
    plain = NULL;
    rc = 0;
out:
    if (derived)
        sodium_free(derived);
    free(sealed);
    free(plain);
    free(p.used);
    sodium_memzero(&p, sizeof p);
    return rc;
}

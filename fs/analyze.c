/* One image through the real codec, measured (see analyze.h).
 *
 * The image is encoded exactly as a mount would store it, under a volume key drawn for
 * this run and a fresh file seed; the stored image is decoded with the system's libpng
 * or libjpeg like any viewer would; the stored file is decrypted by the codec and
 * compared with the original byte for byte.  Differential tests:
 *   PNG   one sample of the middle pixel changed by one, encrypted with the file keys
 *         the codec used (opened from the stored header), after checking that those
 *         keys reproduce the stored samples exactly: the NPCR/UACI of the papers, at
 *         fixed key and seed;
 *   JPEG  one DC coefficient of the middle block changed by one step, the whole file
 *         encoded again under the same volume key and seed (the content-derived key
 *         vector follows the change, as it does on a mount);
 *   key   one bit of the volume key flipped, the same image and seed encoded again.
 */
#include <errno.h>
#include <math.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "codec/chaos.h"
#include "codec/cipher.h"
#include "codec/jpeg.h"
#include "codec/keys.h"
#include "codec/png.h"
#include "fs/analyze.h"

#define VIEW_SIDE 320 /* longest side of the pictures in the report */

int ana_sniff(const uint8_t *p, size_t n)
{
    static const uint8_t png_sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    if (n >= 8 && memcmp(p, png_sig, 8) == 0)
        return ANA_PNG;
    if (n >= 3 && p[0] == 0xff && p[1] == 0xd8 && p[2] == 0xff)
        return ANA_JPEG;
    return 0;
}

const char *ana_profile_name(int profile)
{
    return profile == PXC_PROFILE_CHAOS ? "chaos" : "default";
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void stats_of(const pxm_image *im, ana_stats *s)
{
    static const unsigned dirs[3][2] = {{1, 0}, {0, 1}, {1, 1}};
    s->entropy = pxm_entropy(im);
    s->nplanes = im->wide ? 16 : 0;
    if (s->nplanes)
        pxm_bitplane_entropy(im, 16, s->planes);
    for (int d = 0; d < 3; d++)
        s->corr[d] = pxm_adjacent_corr(im, dirs[d][0], dirs[d][1]);
    s->chi2 = pxm_chi2(im, &s->chi2_p);
}

static int encode(enum ana_format f, const uint8_t *p, size_t n, const pxc_keys *k,
                  const pxc_file_secrets *s, uint8_t **out, size_t *len, const char **why)
{
    return f == ANA_PNG ? png_codec_encode(p, n, k, s, out, len, why)
                        : jpeg_codec_encode(p, n, k, s, out, len, why);
}

static int load(enum ana_format f, const uint8_t *p, size_t n, ana_pixels *px, const char **why)
{
    return f == ANA_PNG ? ana_load_png(p, n, px, why) : ana_load_jpeg(p, n, px, why);
}

static int same_shape(const pxm_image *a, const pxm_image *b)
{
    return a->width == b->width && a->height == b->height && a->channels == b->channels &&
           a->wide == b->wide;
}

/* The samples in the order the PNG codec enciphers them: raster order, or for Adam7
 * the pixels of each pass in turn. */
static void codec_order(const ana_pixels *px, const void *raster, void *out)
{
    static const uint8_t adam7[7][4] = {{0, 0, 8, 8}, {4, 0, 8, 8}, {0, 4, 4, 8}, {2, 0, 4, 4},
                                        {0, 2, 2, 4}, {1, 0, 2, 2}, {0, 1, 1, 2}};
    const pxm_image *im = &px->im;
    size_t pix = (size_t)im->channels * (im->wide ? 2 : 1), k = 0;
    if (!px->interlaced) {
        memcpy(out, raster, pxm_samples(im) * (im->wide ? 2 : 1));
        return;
    }
    for (int p = 0; p < 7; p++)
        for (size_t y = adam7[p][1]; y < im->height; y += adam7[p][3])
            for (size_t x = adam7[p][0]; x < im->width; x += adam7[p][2], k++)
                memcpy((uint8_t *)out + k * pix,
                       (const uint8_t *)raster + (y * im->width + x) * pix, pix);
}

/* The sample cipher exactly as codec/png.c runs it. */
static int png_cipher(int profile, const ana_pixels *px, void *samples, const uint8_t *perm,
                      const uint8_t *diff)
{
    const pxm_image *im = &px->im;
    size_t n = pxm_samples(im);
    uint32_t m = px->modulus;
    /* Rows and columns for the chaos profile's scrambling; passes make one row. */
    struct pxc_chaos_geometry geo = {im->height, (size_t)im->width * im->channels};
    const struct pxc_chaos_geometry *g = px->interlaced ? NULL : &geo;
    if (profile == PXC_PROFILE_CHAOS)
        return im->wide ? pxc_chaos_encrypt_u16(samples, n, m, g, perm, diff)
                        : pxc_chaos_encrypt_u8(samples, n, m, g, perm, diff);
    return im->wide ? pxc_cipher_encrypt_u16(samples, n, m, perm, diff)
                    : pxc_cipher_encrypt_u8(samples, n, m, perm, diff);
}

/* NPCR/UACI for one sample of the middle pixel changed, at the file keys of `stored`. */
static void png_differential(ana_result *r, const uint8_t *stored, size_t stored_len,
                             const pxc_keys *keys)
{
    const ana_pixels *plain = &r->px[0], *cipher = &r->px[1];
    png_peek_info info;
    pxc_file_secrets s;
    uint8_t perm[PXC_KEY_BYTES], diff[PXC_KEY_BYTES];
    size_t n = pxm_samples(&plain->im), bytes = n * (plain->im.wide ? 2 : 1);

    if (plain->modulus < 2 || n == 0) {
        snprintf(r->diff_note, sizeof r->diff_note, "not measured: samples of one value");
        return;
    }
    if (png_codec_peek(stored, stored_len, &info) != 0 ||
        png_codec_open_secrets(&info, keys, &s) != 0) {
        snprintf(r->diff_note, sizeof r->diff_note, "not measured: stored header unreadable");
        return;
    }
    pxc_file_subkey(perm, keys, &s, PXC_SUBKEY_PERMUTATION);
    pxc_file_subkey(diff, keys, &s, PXC_SUBKEY_DIFFUSION);
    uint8_t *a = malloc(bytes), *b = malloc(bytes), *c = malloc(bytes);
    if (!a || !b || !c) {
        snprintf(r->diff_note, sizeof r->diff_note, "not measured: out of memory");
        goto out;
    }
    /* The keys must reproduce the stored samples before they stand for the codec. */
    codec_order(plain, plain->data, a);
    codec_order(cipher, cipher->data, c);
    if (png_cipher(info.profile, plain, a, perm, diff) != 0 || memcmp(a, c, bytes) != 0) {
        snprintf(r->diff_note, sizeof r->diff_note,
                 "not measured: the file keys do not reproduce the stored samples");
        goto out;
    }
    size_t x = plain->im.width / 2, y = plain->im.height / 2;
    size_t i = (y * plain->im.width + x) * plain->im.channels;
    memcpy(c, plain->data, bytes);
    uint32_t v = pxm_at(&plain->im, i), nv = v + 1 < plain->modulus ? v + 1 : v - 1;
    if (plain->im.wide)
        ((uint16_t *)c)[i] = (uint16_t)nv;
    else
        c[i] = (uint8_t)nv;
    codec_order(plain, c, b);
    if (png_cipher(info.profile, plain, b, perm, diff) != 0) {
        snprintf(r->diff_note, sizeof r->diff_note, "not measured: cipher failed");
        goto out;
    }
    pxm_image ia = cipher->im, ib = cipher->im;
    ia.samples = a;
    ib.samples = b;
    pxm_npcr_uaci(&ia, &ib, &r->npcr, &r->uaci);
    r->diff_valid = 1;
    snprintf(r->diff_note, sizeof r->diff_note,
             "sample at (%zu, %zu) changed %u -> %u, file keys fixed", x, y, v, nv);
out:
    sodium_memzero(perm, sizeof perm);
    sodium_memzero(diff, sizeof diff);
    sodium_memzero(&s, sizeof s);
    free(a);
    free(b);
    free(c);
}

/* Cipher pixels of another encoding compared with ours. */
static int compare_cipher(const ana_result *r, const uint8_t *stored, size_t len, double *npcr,
                          double *uaci)
{
    ana_pixels px;
    const char *why;
    if (load(r->format, stored, len, &px, &why) != 0)
        return -1;
    int good = same_shape(&px.im, &r->px[1].im);
    if (good)
        pxm_npcr_uaci(&r->px[1].im, &px.im, npcr, uaci);
    ana_pixels_free(&px);
    return good ? 0 : -1;
}

static void jpeg_differential(ana_result *r, const uint8_t *bytes, size_t n, const pxc_keys *keys,
                              const pxc_file_secrets *s)
{
    uint8_t *bumped = NULL, *stored = NULL;
    size_t blen = 0, slen = 0;
    const char *why = NULL;
    if (ana_jpeg_bump_dc(bytes, n, &bumped, &blen) != 0) {
        snprintf(r->diff_note, sizeof r->diff_note, "not measured: coefficients not rewritable");
        return;
    }
    if (jpeg_codec_encode(bumped, blen, keys, s, &stored, &slen, &why) != 0)
        snprintf(r->diff_note, sizeof r->diff_note, "not measured: changed image declined (%s)",
                 why ? why : "?");
    else if (compare_cipher(r, stored, slen, &r->npcr, &r->uaci) == 0) {
        r->diff_valid = 1;
        snprintf(r->diff_note, sizeof r->diff_note,
                 "DC of the middle block changed by one step, volume key and seed fixed");
    }
    free(bumped);
    free(stored);
}

static void key_sensitivity(ana_result *r, const uint8_t *bytes, size_t n,
                            const uint8_t master[PXC_KEY_BYTES], const pxc_file_secrets *s)
{
    uint8_t m2[PXC_KEY_BYTES], *stored = NULL;
    size_t slen = 0;
    const char *why;
    memcpy(m2, master, sizeof m2);
    m2[PXC_KEY_BYTES / 2] ^= 1;
    pxc_keys *k2 = pxc_keys_new(m2);
    sodium_memzero(m2, sizeof m2);
    if (!k2)
        return;
    k2->profile = r->profile;
    if (r->px[0].modulus < 2)
        goto out; /* nothing to encipher */
    if (encode(r->format, bytes, n, k2, s, &stored, &slen, &why) == 0 &&
        compare_cipher(r, stored, slen, &r->key_npcr, &r->key_uaci) == 0)
        r->key_valid = 1;
out:
    free(stored);
    pxc_keys_free(k2);
}

int ana_run(const char *path, const uint8_t *bytes, size_t n, int profile, int keep_pixels,
            ana_result *r)
{
    uint8_t master[PXC_KEY_BYTES], *stored = NULL, *back = NULL;
    size_t stored_len = 0, back_len = 0;
    const char *why = NULL;
    pxc_file_secrets s;
    int rc;

    memset(r, 0, sizeof *r);
    r->path = path;
    r->profile = profile;
    r->plain_bytes = n;
    r->format = (enum ana_format)ana_sniff(bytes, n);
    if (!r->format) {
        snprintf(r->error, sizeof r->error, "not a PNG or JPEG file");
        return 0;
    }
    if (r->format == ANA_JPEG && profile != PXC_PROFILE_DEFAULT) {
        snprintf(r->error, sizeof r->error, "JPEG has one cipher (the default profile)");
        return 0;
    }
    if (load(r->format, bytes, n, &r->px[0], &why) != 0) {
        snprintf(r->error, sizeof r->error, "%s", why);
        return 0;
    }
    const pxm_image *pi = &r->px[0].im;
    r->width = pi->width;
    r->height = pi->height;
    r->channels = pi->channels;
    r->bits = r->px[0].depth;
    r->palette = r->px[0].palette;
    /* n samples cannot show more than log2(n) bits. */
    size_t nsamples = pxm_samples(pi);
    r->ideal_entropy =
        log2((double)pi->maxval + 1 < (double)nsamples ? (double)pi->maxval + 1 : (double)nsamples);
    r->ideal_npcr = pxm_ideal_npcr(pi->maxval);
    r->ideal_uaci = pxm_ideal_uaci(pi->maxval);

    randombytes_buf(master, sizeof master);
    pxc_keys *keys = pxc_keys_new(master);
    if (!keys) {
        sodium_memzero(master, sizeof master);
        ana_result_free(r);
        return -ENOMEM;
    }
    keys->profile = profile;
    pxc_secrets_fresh(&s);

    double t0 = now();
    rc = encode(r->format, bytes, n, keys, &s, &stored, &stored_len, &why);
    r->enc_seconds = now() - t0;
    if (rc != 0) {
        snprintf(r->error, sizeof r->error, "the codec declines it (%s): a mount keeps it opaque",
                 why ? why : strerror(-rc));
        goto out;
    }
    r->stored_bytes = stored_len;
    t0 = now();
    rc = r->format == ANA_PNG ? png_codec_decode(stored, stored_len, keys, &back, &back_len)
                              : jpeg_codec_decode(stored, stored_len, keys, &back, &back_len);
    r->dec_seconds = now() - t0;
    if (rc != 0) {
        snprintf(r->error, sizeof r->error, "stored form does not decode: %s", strerror(-rc));
        goto out;
    }
    r->exact = back_len == n && memcmp(back, bytes, n) == 0;
    if (load(r->format, stored, stored_len, &r->px[1], &why) != 0 ||
        load(r->format, back, back_len, &r->px[2], &why) != 0 || !same_shape(&r->px[1].im, pi) ||
        !same_shape(&r->px[2].im, pi)) {
        snprintf(r->error, sizeof r->error, "stored or decrypted image unreadable");
        goto out;
    }

    stats_of(pi, &r->plain);
    stats_of(&r->px[1].im, &r->cipher);
    r->plain_cipher_corr = pxm_corr(pi, &r->px[1].im);
    r->pc_mse = pxm_mse(pi, &r->px[1].im);
    r->pc_ssim = pxm_ssim(pi, &r->px[1].im);
    r->mse = pxm_mse(pi, &r->px[2].im);
    r->psnr = pxm_psnr(r->mse, pi->maxval);
    r->ssim = pxm_ssim(pi, &r->px[2].im);

    if (r->format == ANA_PNG)
        png_differential(r, stored, stored_len, keys);
    else
        jpeg_differential(r, bytes, n, keys, &s);
    key_sensitivity(r, bytes, n, master, &s);

    if (r->format == ANA_JPEG) {
        size_t na = 0, nc = 0;
        double *ea = ana_jpeg_ac_energy(bytes, n, &na),
               *ec = ana_jpeg_ac_energy(stored, stored_len, &nc);
        if (ea && ec && na == nc && na > 1) {
            r->ac_corr = pxm_pearson(ea, ec, na);
            r->ac_valid = 1;
        }
        free(ea);
        free(ec);
    }
    if (keep_pixels) {
        int (*view)(const uint8_t *, size_t, uint32_t, ana_view *) =
            r->format == ANA_PNG ? ana_view_png : ana_view_jpeg;
        if (view(bytes, n, VIEW_SIDE, &r->view[0]) ||
            view(stored, stored_len, VIEW_SIDE, &r->view[1]) ||
            view(back, back_len, VIEW_SIDE, &r->view[2]))
            snprintf(r->error, sizeof r->error, "cannot render the images");
    }
out:
    if (!keep_pixels || r->error[0])
        for (int i = 0; i < 3; i++)
            ana_pixels_free(&r->px[i]);
    sodium_memzero(master, sizeof master);
    sodium_memzero(&s, sizeof s);
    pxc_keys_free(keys);
    free(stored);
    free(back);
    return 0;
}

void ana_result_free(ana_result *r)
{
    for (int i = 0; i < 3; i++) {
        ana_pixels_free(&r->px[i]);
        ana_view_free(&r->view[i]);
    }
}

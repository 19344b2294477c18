/* Unit tests of the analyze module on images made here (no corpus needed): PNG and JPEG
 * through the real codec under both profiles, the figures in their ideal ranges,
 * exact decryption, the report's pictures, and clean refusals of bad input. */
#include <math.h>
#include <setjmp.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>

#include "codec/keys.h"
#include "fs/analyze.h"
#include "tap.h"

#define W 256
#define H 256

/* A smooth photo-like picture with some texture: strongly correlated neighbours. */
static void picture(uint8_t *px, uint32_t ch)
{
    for (uint32_t y = 0; y < H; y++)
        for (uint32_t x = 0; x < W; x++)
            for (uint32_t c = 0; c < ch; c++)
                px[(y * W + x) * ch + c] = (uint8_t)((x + 2 * y) / 3 + 40 * c +
                                                     ((x / 16 + y / 16) % 2) * 20 + (x * y % 7));
}

static uint8_t *jpeg_of(const uint8_t *gray, size_t *len)
{
    struct jpeg_compress_struct c;
    struct jpeg_error_mgr e;
    unsigned char *out = NULL;
    unsigned long n = 0;
    c.err = jpeg_std_error(&e);
    jpeg_create_compress(&c);
    jpeg_mem_dest(&c, &out, &n);
    c.image_width = W;
    c.image_height = H;
    c.input_components = 1;
    c.in_color_space = JCS_GRAYSCALE;
    jpeg_set_defaults(&c);
    jpeg_set_quality(&c, 90, TRUE);
    jpeg_start_compress(&c, TRUE);
    while (c.next_scanline < H) {
        JSAMPROW row = (JSAMPROW)gray + (size_t)c.next_scanline * W;
        jpeg_write_scanlines(&c, &row, 1);
    }
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
    *len = n;
    return out;
}

static int within(double x, double lo, double hi)
{
    return x >= lo && x <= hi;
}

static void check_png(const char *name, const uint8_t *png, size_t len, int profile)
{
    ana_result r;
    int rc = ana_run(name, png, len, profile, 1, &r);
    const char *p = ana_profile_name(profile);
    ok(rc == 0 && r.error[0] == 0, "%s, %s: measured (%s)", name, p, r.error);
    ok(r.exact && r.mse == 0 && isinf(r.psnr) && r.ssim == 1,
       "%s, %s: decryption exact, MSE 0, PSNR inf, SSIM 1", name, p);
    ok(within(r.cipher.entropy, 7.99, 8) && r.plain.entropy < 7.95,
       "%s, %s: cipher entropy %.5f (plain %.3f)", name, p, r.cipher.entropy, r.plain.entropy);
    int flat = 1;
    for (int d = 0; d < 3; d++)
        flat &= fabs(r.cipher.corr[d]) < 0.02 && r.plain.corr[d] > 0.5;
    ok(flat && fabs(r.plain_cipher_corr) < 0.02 && r.cipher.chi2_p > 1e-4,
       "%s, %s: adjacent r %+.4f %+.4f %+.4f (plain %.3f), plain-cipher r %+.4f, chi2 p %.3g", name,
       p, r.cipher.corr[0], r.cipher.corr[1], r.cipher.corr[2], r.plain.corr[0],
       r.plain_cipher_corr, r.cipher.chi2_p);
    if (profile == PXC_PROFILE_DEFAULT)
        ok(r.diff_valid && within(r.npcr, 99.4, 99.8) && within(r.uaci, 33.0, 33.9),
           "%s, %s: one sample changed, NPCR %.3f %%, UACI %.3f %% (%s)", name, p, r.npcr, r.uaci,
           r.diff_note);
    else
        ok(r.diff_valid && r.npcr <= 99.8, "%s, %s: one sample changed, NPCR %.3f %% (%s)", name, p,
           r.npcr, r.diff_note);
    ok(r.key_valid && within(r.key_npcr, 99.4, 99.8), "%s, %s: one key bit flipped, NPCR %.3f %%",
       name, p, r.key_npcr);
    ok(r.view[1].px && r.view[1].w <= 320 && r.view[1].h <= 320 && r.px[1].data,
       "%s, %s: pictures kept for the report (%ux%u)", name, p, r.view[1].w, r.view[1].h);
    ana_result_free(&r);
}

int main(void)
{
    if (sodium_init() < 0)
        return 1;
    static uint8_t gray[W * H], rgb[W * H * 3];
    uint8_t *png = NULL, *jpg;
    size_t len = 0, jlen = 0;
    ana_result r;

    picture(gray, 1);
    picture(rgb, 3);
    ok(ana_png_write(gray, W, H, 1, &png, &len) == 0, "a 256x256 gray PNG");
    check_png("gray.png", png, len, PXC_PROFILE_DEFAULT);
    check_png("gray.png", png, len, PXC_PROFILE_CHAOS);

    /* A PNG cut short: not measured, with libpng's reason. */
    ana_run("cut.png", png, len / 2, PXC_PROFILE_DEFAULT, 0, &r);
    ok(strstr(r.error, "not a readable PNG") != NULL, "a truncated PNG: %s", r.error);
    ana_result_free(&r);
    free(png);

    ok(ana_png_write(rgb, W, H, 3, &png, &len) == 0, "a 256x256 RGB PNG");
    check_png("rgb.png", png, len, PXC_PROFILE_DEFAULT);
    free(png);

    jpg = jpeg_of(gray, &jlen);
    ana_run("gray.jpg", jpg, jlen, PXC_PROFILE_DEFAULT, 0, &r);
    ok(r.error[0] == 0 && r.exact && r.ssim == 1, "JPEG: measured, decryption exact (%s)", r.error);
    ok(r.ac_valid && fabs(r.ac_corr) < 0.05, "JPEG: AC-energy maps uncorrelated, r %+.4f",
       r.ac_corr);
    /* The coefficient cipher has no diffusion of its own: one DC step changes the other
     * blocks only if it changes the DC view the key vector is computed from (the keys
     * then change); otherwise only the changed block differs. */
    ok(r.diff_valid && (r.npcr > 50 || r.npcr < 100.0 * 64 * 2 / (W * H)),
       "JPEG: one DC step: NPCR %.3f %% (%s)", r.npcr,
       r.npcr > 50 ? "the key vector changed" : "one block changed, keys unchanged");
    ok(r.key_valid && r.key_npcr > 50, "JPEG: one key bit flipped, NPCR %.2f %%", r.key_npcr);
    ok(r.px[0].data == NULL && r.view[0].px == NULL, "without a report no pixels are kept");
    ana_result_free(&r);
    ana_run("gray.jpg", jpg, jlen, PXC_PROFILE_CHAOS, 0, &r);
    ok(strstr(r.error, "one cipher") != NULL, "JPEG under the chaos profile: %s", r.error);
    ana_result_free(&r);
    free(jpg);

    static const uint8_t text[] = "just some text, not an image";
    ana_run("notes.txt", text, sizeof text, PXC_PROFILE_DEFAULT, 0, &r);
    ok(strcmp(r.error, "not a PNG or JPEG file") == 0, "a text file: %s", r.error);
    ana_result_free(&r);
    return tap_done();
}

/* `pixcrypt analyze`: one image through the real codec under one cipher profile, measured
 * with the metrics of the image-encryption literature (codec/metrics.h).
 *
 *   analyze.c         the measurement: encode with a fresh random volume key, decode the
 *                     stored image to pixels, decrypt, differential and key tests
 *   analyze_pixels.c  PNG and JPEG to samples and to small 8-bit views, PNG writing,
 *                     JPEG coefficient helpers
 *   analyze_report.c  the text table, JSON and the HTML report
 *   cmd_analyze.c     the command line, directory walking, summaries
 */
#ifndef PXC_FS_ANALYZE_H
#define PXC_FS_ANALYZE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "codec/metrics.h"

enum ana_format { ANA_PNG = 1, ANA_JPEG = 2 };

/* Samples as the cipher sees them: PNG samples unpacked (palette images as indices,
 * 16-bit in host order), JPEG decoded to 8-bit pixels. */
typedef struct ana_pixels {
    void *data;
    pxm_image im;
    int interlaced; /* PNG Adam7: the codec's sample order is not the raster order */
    int palette;    /* PNG palette indices */
    unsigned depth; /* bits per sample */
    uint32_t modulus;
} ana_pixels;

/* An 8-bit picture for display: 1 (gray) or 3 (RGB) channels. */
typedef struct ana_view {
    uint8_t *px;
    uint32_t w, h, ch;
} ana_view;

/* The statistics of one image. */
typedef struct ana_stats {
    double entropy; /* bits per sample */
    double planes[16];
    unsigned nplanes; /* 16 for 16-bit images, else 0 */
    double corr[3];   /* adjacent: horizontal, vertical, diagonal */
    double chi2, chi2_p;
} ana_stats;

typedef struct ana_result {
    const char *path;
    enum ana_format format;
    int profile; /* enum pxc_profile */
    uint32_t width, height, channels, bits;
    int palette;
    uint64_t plain_bytes, stored_bytes;
    char error[200]; /* empty when measured */

    ana_stats plain, cipher;
    double plain_cipher_corr; /* Eq. 8 */
    double pc_mse, pc_ssim;   /* plain against cipher, as the "AI in Encryption" slides */
    double ideal_entropy, ideal_npcr, ideal_uaci;

    int diff_valid; /* one-sample change at fixed file keys */
    double npcr, uaci;
    char diff_note[160];
    int key_valid; /* one bit of the volume key flipped, same seed */
    double key_npcr, key_uaci;

    int exact; /* decrypted bytes == original bytes */
    double mse, psnr, ssim;
    double enc_seconds, dec_seconds;

    int ac_valid; /* JPEG: AC-energy block maps, plain against cipher */
    double ac_corr;

    /* Kept for the report only. */
    ana_pixels px[3]; /* plain, cipher, decrypted */
    ana_view view[3];
} ana_result;

/* Measures bytes[0..n) (a PNG or JPEG, named path) under profile.  keep_pixels: leave
 * px[] and view[] filled for the report.  Returns 0 with r filled (r->error says why an
 * image could not be measured), or -ENOMEM. */
int ana_run(const char *path, const uint8_t *bytes, size_t n, int profile, int keep_pixels,
            ana_result *r);
void ana_result_free(ana_result *r);
/* ANA_PNG, ANA_JPEG or 0 from the first bytes. */
int ana_sniff(const uint8_t *p, size_t n);

/* analyze_pixels.c; all return 0 or -1 with *why set. */
int ana_load_png(const uint8_t *p, size_t n, ana_pixels *out, const char **why);
int ana_load_jpeg(const uint8_t *p, size_t n, ana_pixels *out, const char **why);
void ana_pixels_free(ana_pixels *px);
/* A view of at most max_side pixels on its longer side. */
int ana_view_png(const uint8_t *p, size_t n, uint32_t max_side, ana_view *out);
int ana_view_jpeg(const uint8_t *p, size_t n, uint32_t max_side, ana_view *out);
void ana_view_free(ana_view *v);
/* 8-bit gray (ch 1) or RGB (ch 3) pixels to a PNG file in memory (malloc'ed). */
int ana_png_write(const uint8_t *px, uint32_t w, uint32_t h, uint32_t ch, uint8_t **out,
                  size_t *len);
/* Per-block AC energy (sum of squared dequantised AC values) of the first component,
 * in raster order of its blocks; malloc'ed, *nb entries; NULL on failure. */
double *ana_jpeg_ac_energy(const uint8_t *p, size_t n, size_t *nb);
/* The JPEG with the DC coefficient of the first component's middle block raised (or
 * lowered) by one quantisation step, nothing else changed; malloc'ed. */
int ana_jpeg_bump_dc(const uint8_t *p, size_t n, uint8_t **out, size_t *len);

/* analyze_report.c */
void ana_print_header(FILE *f);
void ana_print_row(FILE *f, const ana_result *r);
void ana_json_result(FILE *f, const ana_result *r);
void ana_html_begin(FILE *f);
int ana_html_result(FILE *f, const ana_result *r);
void ana_html_end(FILE *f, const char *summary_html);
const char *ana_profile_name(int profile);

#endif

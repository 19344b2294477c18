/* The security metrics of the image-encryption literature, on arrays of samples.
 *
 * Every function works on a pxm_image: interleaved samples (one byte each, or host-order
 * uint16_t for 16-bit images), `channels` per pixel, rows `width * channels` samples
 * apart, values in [0, maxval].  Channels are never mixed: a neighbour is the same
 * channel of the neighbouring pixel, and windowed measures run per channel.
 *
 *   entropy        Shannon entropy of the sample histogram, bits per sample (ideal
 *                  log2(maxval + 1)); per bit plane for 16-bit images (ideal 1 each)
 *   adjacent corr  Pearson correlation of every sample with its horizontal, vertical or
 *                  diagonal neighbour over ALL pairs, with population moments:
 *                  r = cov(x, y) / sqrt(D(x) D(y))  (Khazaal et al. 2024, Eq. 5)
 *   corr           the same coefficient between plain and cipher sample by sample (Eq. 8)
 *   chi2           chi-square of the histogram against the uniform one on maxval + 1
 *                  bins, with its p-value (maxval degrees of freedom); for 8-bit data at
 *                  the 5 % level chi2 < 293.25 passes
 *   npcr, uaci     share of differing samples, and mean absolute difference over maxval,
 *                  in percent (ideal for uniform independent 8-bit ciphers: 99.6094 %
 *                  and 33.4635 %)
 *   mse, psnr      mean squared error and 10 log10(maxval^2 / mse) (+inf when equal)
 *   ssim           mean SSIM (Wang et al. 2004: 11x11 Gaussian window, sigma 1.5,
 *                  K1 0.01, K2 0.03, L = maxval) over the valid windows of each channel;
 *                  images smaller than 11 pixels in a direction get one window covering
 *                  the whole image
 *
 * Degenerate inputs have defined results: a constant series correlates 0 with anything,
 * an empty image has entropy 0 and npcr/uaci/mse 0.
 */
#ifndef PXC_CODEC_METRICS_H
#define PXC_CODEC_METRICS_H

#include <stddef.h>
#include <stdint.h>

typedef struct pxm_image {
    const void *samples; /* uint8_t[] or, if wide, uint16_t[] */
    int wide;
    uint32_t width, height, channels;
    uint32_t maxval; /* largest legal value: 2^depth - 1, or palette entries - 1 */
} pxm_image;

/* NPCR and UACI of two independent uniform ciphers on m = maxval + 1 values:
 * 100 (1 - 1/m) and 100 (m + 1) / (3 m), i.e. 99.6094 % and 33.4635 % for m = 256. */
double pxm_ideal_npcr(uint32_t maxval);
double pxm_ideal_uaci(uint32_t maxval);

size_t pxm_samples(const pxm_image *im);
/* Sample i (interleaved index). */
uint32_t pxm_at(const pxm_image *im, size_t i);

double pxm_entropy(const pxm_image *im);
/* Entropy of bit plane b (0 = least significant) of every sample, for b < planes. */
void pxm_bitplane_entropy(const pxm_image *im, unsigned planes, double *out);

double pxm_adjacent_corr(const pxm_image *im, unsigned dx, unsigned dy);
/* Plain against cipher: the same number of samples. */
double pxm_corr(const pxm_image *a, const pxm_image *b);
double pxm_pearson(const double *a, const double *b, size_t n);

/* Chi-square against the uniform histogram on maxval + 1 bins; *p its p-value. */
double pxm_chi2(const pxm_image *im, double *p);
/* Regularised upper incomplete gamma Q(a, x) = Gamma(a, x) / Gamma(a). */
double pxm_gamma_q(double a, double x);

void pxm_npcr_uaci(const pxm_image *a, const pxm_image *b, double *npcr, double *uaci);
double pxm_mse(const pxm_image *a, const pxm_image *b);
double pxm_psnr(double mse, uint32_t maxval);
double pxm_ssim(const pxm_image *a, const pxm_image *b);

#endif

/* Unit tests of codec/metrics: every metric against values worked out by hand on small
 * synthetic images (constant, gradient, checkerboard, a known permutation). */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "codec/metrics.h"
#include "tap.h"

static int near(double x, double want, double tol)
{
    return fabs(x - want) <= tol;
}

static pxm_image u8img(const uint8_t *s, uint32_t w, uint32_t h, uint32_t ch)
{
    return (pxm_image){s, 0, w, h, ch, 255};
}

static void test_constant(void)
{
    uint8_t a[16], b[16];
    memset(a, 7, sizeof a);
    pxm_image im = u8img(a, 4, 4, 1);
    double p;
    ok(pxm_entropy(&im) == 0, "constant: entropy 0");
    ok(pxm_adjacent_corr(&im, 1, 0) == 0 && pxm_adjacent_corr(&im, 0, 1) == 0,
       "constant: adjacent correlation defined as 0");
    /* h = 16 in one bin of 256, E = 1/16: sum h^2 / E - n = 4096 - 16. */
    double chi = pxm_chi2(&im, &p);
    ok(near(chi, 4080, 1e-9) && p < 1e-300, "constant: chi2 %.3f (4080), p %.3g (0)", chi, p);

    /* Constant 100 against constant 50: variances and covariance 0, so SSIM is the
     * luminance term (2 ma mb + C1) / (ma^2 + mb^2 + C1), C1 = (0.01 * 255)^2. */
    memset(a, 100, sizeof a);
    memset(b, 50, sizeof b);
    pxm_image ia = u8img(a, 4, 4, 1), ib = u8img(b, 4, 4, 1);
    double c1 = 2.55 * 2.55, want = (10000 + c1) / (12500 + c1);
    ok(near(pxm_ssim(&ia, &ib), want, 1e-12), "constant 100 vs 50, 4x4: SSIM %.6f (%.6f)",
       pxm_ssim(&ia, &ib), want);
    uint8_t big_a[32 * 32], big_b[32 * 32];
    memset(big_a, 100, sizeof big_a);
    memset(big_b, 50, sizeof big_b);
    ia = u8img(big_a, 32, 32, 1);
    ib = u8img(big_b, 32, 32, 1);
    ok(near(pxm_ssim(&ia, &ib), want, 1e-9),
       "constant 100 vs 50, 32x32 (Gaussian windows): "
       "SSIM %.6f",
       pxm_ssim(&ia, &ib));
    ok(near(pxm_mse(&ia, &ib), 2500, 0) &&
           near(pxm_psnr(2500, 255), 10 * log10(65025.0 / 2500), 1e-12),
       "constant 100 vs 50: MSE 2500, PSNR %.4f dB", pxm_psnr(2500, 255));
    ok(pxm_ssim(&ia, &ia) == 1 && isinf(pxm_psnr(pxm_mse(&ia, &ia), 255)),
       "identical: SSIM 1, PSNR infinite");
}

static void test_gradient(void)
{
    uint8_t g[256];
    for (int i = 0; i < 256; i++)
        g[i] = (uint8_t)i;
    pxm_image row = u8img(g, 256, 1, 1), sq = u8img(g, 16, 16, 1);
    double p;
    ok(near(pxm_entropy(&row), 8, 1e-12), "gradient 0..255: entropy 8");
    double chi = pxm_chi2(&row, &p);
    ok(chi == 0 && near(p, 1, 1e-12), "gradient 0..255: chi2 0, p 1");
    ok(near(pxm_adjacent_corr(&row, 1, 0), 1, 1e-12), "gradient row: horizontal r = 1");
    ok(near(pxm_adjacent_corr(&sq, 1, 0), 1, 1e-12) &&
           near(pxm_adjacent_corr(&sq, 0, 1), 1, 1e-12) &&
           near(pxm_adjacent_corr(&sq, 1, 1), 1, 1e-12),
       "gradient 16x16 (v = x + 16 y): h, v, d r = 1");

    /* [1 2 3 5]: pairs (1,2) (2,3) (3,5); cov 1, D(x) 2/3, D(y) 14/9: r = sqrt(27/28). */
    uint8_t s[4] = {1, 2, 3, 5};
    pxm_image si = u8img(s, 4, 1, 1);
    ok(near(pxm_adjacent_corr(&si, 1, 0), sqrt(27.0 / 28), 1e-12),
       "[1 2 3 5]: horizontal r %.6f (sqrt(27/28) = %.6f)", pxm_adjacent_corr(&si, 1, 0),
       sqrt(27.0 / 28));
    uint8_t e[4] = {0, 0, 1, 2};
    pxm_image ei = u8img(e, 4, 1, 1);
    ok(near(pxm_entropy(&ei), 1.5, 1e-12), "[0 0 1 2]: entropy 1.5");

    /* Two channels that must not mix: channel 0 rises, channel 1 alternates. */
    uint8_t two[16];
    for (int i = 0; i < 8; i++) {
        two[2 * i] = (uint8_t)(10 * i);
        two[2 * i + 1] = (uint8_t)(i % 2 ? 200 : 0);
    }
    pxm_image ti = u8img(two, 8, 1, 2);
    /* Pooled pairs: 7 of (10i, 10i+10) and 7 alternating (0/200): not +-1, computed here
     * the long way. */
    double sx = 0, sy = 0, sxx = 0, syy = 0, sxy = 0;
    for (int i = 0; i < 7; i++)
        for (int c = 0; c < 2; c++) {
            double x = two[2 * i + c], y = two[2 * i + 2 + c];
            sx += x, sy += y, sxx += x * x, syy += y * y, sxy += x * y;
        }
    double n = 14, want = (sxy / n - sx / n * sy / n) /
                          sqrt((sxx / n - sx * sx / n / n) * (syy / n - sy * sy / n / n));
    ok(near(pxm_adjacent_corr(&ti, 1, 0), want, 1e-12),
       "two channels: neighbours within a channel only (r %.6f)", want);

    /* 16-bit: every value once, every bit plane balanced. */
    static uint16_t w[65536];
    for (int i = 0; i < 65536; i++)
        w[i] = (uint16_t)i;
    pxm_image wi = {w, 1, 256, 256, 1, 65535};
    double planes[16];
    pxm_bitplane_entropy(&wi, 16, planes);
    int all_one = 1;
    for (int b = 0; b < 16; b++)
        all_one &= near(planes[b], 1, 1e-12);
    ok(near(pxm_entropy(&wi), 16, 1e-9) && all_one, "16-bit gradient: entropy 16, 16 planes of 1");
    chi = pxm_chi2(&wi, &p);
    ok(chi == 0 && near(p, 1, 1e-9), "16-bit gradient: chi2 0, p 1 (65535 degrees of freedom)");
}

static void test_checkerboard(void)
{
    uint8_t a[64], b[64];
    for (int y = 0; y < 8; y++)
        for (int x = 0; x < 8; x++) {
            a[y * 8 + x] = (x + y) % 2 ? 255 : 0;
            b[y * 8 + x] = (uint8_t)(255 - a[y * 8 + x]);
        }
    pxm_image ia = u8img(a, 8, 8, 1), ib = u8img(b, 8, 8, 1);
    ok(near(pxm_entropy(&ia), 1, 1e-12), "checkerboard: entropy 1");
    ok(near(pxm_adjacent_corr(&ia, 1, 0), -1, 1e-12) &&
           near(pxm_adjacent_corr(&ia, 0, 1), -1, 1e-12) &&
           near(pxm_adjacent_corr(&ia, 1, 1), 1, 1e-12),
       "checkerboard: h -1, v -1, d +1");
    double np, ua;
    pxm_npcr_uaci(&ia, &ib, &np, &ua);
    ok(np == 100 && ua == 100, "checkerboard vs inverse: NPCR 100 %%, UACI 100 %%");
    ok(near(pxm_corr(&ia, &ib), -1, 1e-12), "checkerboard vs inverse: r = -1");
    ok(near(pxm_mse(&ia, &ib), 65025, 0), "checkerboard vs inverse: MSE 255^2");
}

static void test_permutation(void)
{
    /* b = a with the positions reversed: b[i] = 255 - i. */
    uint8_t a[256], b[256];
    for (int i = 0; i < 256; i++) {
        a[i] = (uint8_t)i;
        b[i] = (uint8_t)(255 - i);
    }
    pxm_image ia = u8img(a, 16, 16, 1), ib = u8img(b, 16, 16, 1);
    double np, ua;
    pxm_npcr_uaci(&ia, &ib, &np, &ua);
    /* |2i - 255| runs over the odd numbers 1..255 twice: mean 128; squares: 128 * 255 *
     * 257 / 3 summed over 128 values each, twice, over 256: 21845. */
    ok(np == 100 && near(ua, 100.0 * 128 / 255, 1e-12),
       "reversal: NPCR 100 %%, UACI %.4f %% (50.1961)", ua);
    ok(near(pxm_mse(&ia, &ib), 21845, 1e-9), "reversal: MSE %.3f (21845)", pxm_mse(&ia, &ib));
    ok(near(pxm_psnr(21845, 255), 4.7373, 1e-4), "reversal: PSNR %.4f dB (4.7373)",
       pxm_psnr(21845, 255));
    ok(near(pxm_corr(&ia, &ib), -1, 1e-12) && pxm_entropy(&ib) == pxm_entropy(&ia),
       "reversal: plain-cipher r = -1, entropy kept");

    /* One transposition: 2 of 256 positions differ, by |17 - 200| each. */
    memcpy(b, a, sizeof a);
    b[17] = 200;
    b[200] = 17;
    pxm_npcr_uaci(&ia, &ib, &np, &ua);
    ok(near(np, 100.0 * 2 / 256, 1e-12) && near(ua, 100.0 * 2 * 183 / (255.0 * 256), 1e-12),
       "transposition: NPCR %.4f %% (0.78125), UACI %.4f %%", np, ua);
}

/* Mean SSIM by its definition: every 11x11 window weighted by the 2-D Gaussian directly. */
static double ssim_direct(const uint8_t *a, const uint8_t *b, int w, int h)
{
    double g[11], gs = 0, sum = 0, c1 = 2.55 * 2.55, c2 = 7.65 * 7.65;
    for (int k = 0; k < 11; k++)
        gs += g[k] = exp(-((k - 5) * (k - 5)) / 4.5);
    for (int y = 0; y + 11 <= h; y++)
        for (int x = 0; x + 11 <= w; x++) {
            double ma = 0, mb = 0, saa = 0, sbb = 0, sab = 0;
            for (int j = 0; j < 11; j++)
                for (int i = 0; i < 11; i++) {
                    double wt = g[i] * g[j] / (gs * gs), u = a[(y + j) * w + x + i],
                           v = b[(y + j) * w + x + i];
                    ma += wt * u, mb += wt * v, saa += wt * u * u, sbb += wt * v * v,
                        sab += wt * u * v;
                }
            sum += (2 * ma * mb + c1) * (2 * (sab - ma * mb) + c2) /
                   ((ma * ma + mb * mb + c1) * (saa - ma * ma + sbb - mb * mb + c2));
        }
    return sum / ((w - 10) * (h - 10));
}

static void test_ssim_windows(void)
{
    enum { SW = 23, SH = 17 };
    uint8_t a[SW * SH], b[SW * SH];
    uint32_t x = 12345;
    for (int i = 0; i < SW * SH; i++) {
        x = x * 1103515245u + 12345u;
        a[i] = (uint8_t)(i * 7 % 251);
        b[i] = (uint8_t)(a[i] / 2 + (x >> 24) / 2);
    }
    pxm_image ia = u8img(a, SW, SH, 1), ib = u8img(b, SW, SH, 1);
    double got = pxm_ssim(&ia, &ib), want = ssim_direct(a, b, SW, SH);
    ok(near(got, want, 1e-9) && got < 0.9,
       "SSIM over 11x11 Gaussian windows, 23x17: %.9f (direct %.9f)", got, want);
}

static void test_pearson(void)
{
    /* [1 2 3] against [2 4 7]: deviations (-1 0 1) and (-7/3 -1/3 8/3); r = 5 over
     * sqrt(2 * 114/9) = 15 / sqrt(228). */
    double a[3] = {1, 2, 3}, b[3] = {2, 4, 7}, k[3] = {5, 5, 5};
    ok(near(pxm_pearson(a, b, 3), 15 / sqrt(228), 1e-12), "Pearson r of [1 2 3], [2 4 7]: %.6f",
       pxm_pearson(a, b, 3));
    ok(pxm_pearson(a, k, 3) == 0 && pxm_pearson(a, b, 0) == 0, "Pearson r with a constant or "
                                                               "empty series: 0");
    /* Large offsets (JPEG block energies reach 1e9) must not cancel. */
    double c[4] = {1e9 + 1, 1e9 + 2, 1e9 + 3, 1e9 + 4}, d[4] = {4, 3, 2, 1};
    ok(near(pxm_pearson(c, d, 4), -1, 1e-9), "Pearson r stays exact with offsets of 1e9");
}

static void test_gamma(void)
{
    ok(near(pxm_gamma_q(1, 3), exp(-3), 1e-14), "Q(1, x) = exp(-x)");
    ok(near(pxm_gamma_q(0.5, 2), erfc(sqrt(2)), 1e-13), "Q(1/2, x) = erfc(sqrt x)");
    ok(near(pxm_gamma_q(3, 0.5), exp(-0.5) * (1 + 0.5 + 0.125), 1e-14),
       "Q(3, x) = exp(-x)(1 + x + x^2/2) (series side)");
    ok(near(pxm_gamma_q(3, 10), exp(-10) * (1 + 10 + 50), 1e-14),
       "Q(3, x) = exp(-x)(1 + x + x^2/2) (continued-fraction side)");
    /* The 5 % critical value of chi2 with 255 degrees of freedom is 293.2478. */
    double q = pxm_gamma_q(255.0 / 2, 293.2478 / 2);
    ok(near(q, 0.05, 1e-4), "chi2(255) = 293.25 has p %.5f (0.05)", q);
    ok(near(pxm_ideal_npcr(255), 99.609375, 1e-9) && near(pxm_ideal_uaci(255), 33.463542, 1e-6),
       "ideal NPCR %.4f %%, UACI %.4f %% for 8 bits", pxm_ideal_npcr(255), pxm_ideal_uaci(255));
}

int main(void)
{
    test_constant();
    test_gradient();
    test_checkerboard();
    test_permutation();
    test_ssim_windows();
    test_pearson();
    test_gamma();
    return tap_done();
}

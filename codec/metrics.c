/* The security metrics of the image-encryption literature (see metrics.h). */
#include "codec/metrics.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

double pxm_ideal_npcr(uint32_t maxval)
{
    double m = (double)maxval + 1;
    return 100.0 * (1 - 1 / m);
}

double pxm_ideal_uaci(uint32_t maxval)
{
    double m = (double)maxval + 1;
    return 100.0 * (m + 1) / (3 * m);
}

size_t pxm_samples(const pxm_image *im)
{
    return (size_t)im->width * im->height * im->channels;
}

uint32_t pxm_at(const pxm_image *im, size_t i)
{
    return im->wide ? ((const uint16_t *)im->samples)[i] : ((const uint8_t *)im->samples)[i];
}

/* Histogram on maxval + 1 bins (values above maxval count in the last bin). */
static uint64_t *histogram(const pxm_image *im)
{
    size_t bins = (size_t)im->maxval + 1, n = pxm_samples(im);
    uint64_t *h = calloc(bins, sizeof *h);
    if (!h)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        uint32_t v = pxm_at(im, i);
        h[v < bins ? v : bins - 1]++;
    }
    return h;
}

static double entropy_of(const uint64_t *h, size_t bins, double n)
{
    double e = 0;
    for (size_t v = 0; v < bins; v++)
        if (h[v]) {
            double p = (double)h[v] / n;
            e -= p * log2(p);
        }
    return e;
}

double pxm_entropy(const pxm_image *im)
{
    size_t n = pxm_samples(im);
    uint64_t *h = n ? histogram(im) : NULL;
    if (!h)
        return 0;
    double e = entropy_of(h, (size_t)im->maxval + 1, (double)n);
    free(h);
    return e;
}

void pxm_bitplane_entropy(const pxm_image *im, unsigned planes, double *out)
{
    size_t n = pxm_samples(im);
    for (unsigned b = 0; b < planes; b++) {
        uint64_t h[2] = {0, 0};
        for (size_t i = 0; i < n; i++)
            h[pxm_at(im, i) >> b & 1]++;
        out[b] = n ? entropy_of(h, 2, (double)n) : 0;
    }
}

/* Pearson r from running sums with population moments (Eq. 5): 0 for a constant side. */
typedef struct moments {
    double n, sx, sy, sxx, syy, sxy;
} moments;

static void moments_add(moments *m, double x, double y)
{
    m->n += 1;
    m->sx += x;
    m->sy += y;
    m->sxx += x * x;
    m->syy += y * y;
    m->sxy += x * y;
}

static double moments_r(const moments *m)
{
    if (m->n < 1)
        return 0;
    double ex = m->sx / m->n, ey = m->sy / m->n;
    double dx = m->sxx / m->n - ex * ex, dy = m->syy / m->n - ey * ey;
    double cov = m->sxy / m->n - ex * ey;
    /* Rounding can leave a tiny variance for a constant series. */
    if (dx <= 1e-12 * (ex * ex + 1) || dy <= 1e-12 * (ey * ey + 1))
        return 0;
    return cov / sqrt(dx * dy);
}

double pxm_adjacent_corr(const pxm_image *im, unsigned dx, unsigned dy)
{
    moments m = {0};
    size_t ch = im->channels, stride = (size_t)im->width * ch;
    for (size_t y = 0; y + dy < im->height; y++)
        for (size_t x = 0; x + dx < im->width; x++)
            for (size_t c = 0; c < ch; c++) {
                size_t i = y * stride + x * ch + c, j = (y + dy) * stride + (x + dx) * ch + c;
                moments_add(&m, pxm_at(im, i), pxm_at(im, j));
            }
    return moments_r(&m);
}

double pxm_corr(const pxm_image *a, const pxm_image *b)
{
    moments m = {0};
    size_t n = pxm_samples(a), nb = pxm_samples(b);
    for (size_t i = 0; i < n && i < nb; i++)
        moments_add(&m, pxm_at(a, i), pxm_at(b, i));
    return moments_r(&m);
}

double pxm_pearson(const double *a, const double *b, size_t n)
{
    /* Two passes: the energies of JPEG blocks span many orders of magnitude. */
    double ma = 0, mb = 0, sab = 0, saa = 0, sbb = 0;
    if (n == 0)
        return 0;
    for (size_t i = 0; i < n; i++) {
        ma += a[i];
        mb += b[i];
    }
    ma /= (double)n;
    mb /= (double)n;
    for (size_t i = 0; i < n; i++) {
        sab += (a[i] - ma) * (b[i] - mb);
        saa += (a[i] - ma) * (a[i] - ma);
        sbb += (b[i] - mb) * (b[i] - mb);
    }
    return saa > 0 && sbb > 0 ? sab / sqrt(saa * sbb) : 0;
}

/* Q(a, x) by the series of P for x < a + 1 and Legendre's continued fraction otherwise
 * (Numerical Recipes, ch. 6.2), both converging in O(sqrt(a)) steps. */
double pxm_gamma_q(double a, double x)
{
    if (x <= 0 || a <= 0)
        return 1;
    double lead = a * log(x) - x - lgamma(a);
    if (x < a + 1) {
        double ap = a, del = 1 / a, sum = del;
        for (int k = 0; k < 1000000 && fabs(del) > fabs(sum) * 1e-15; k++) {
            ap += 1;
            del *= x / ap;
            sum += del;
        }
        return 1 - sum * exp(lead);
    }
    const double tiny = 1e-300;
    double b = x + 1 - a, c = 1 / tiny, d = 1 / b, h = d;
    for (int i = 1; i < 1000000; i++) {
        double an = -i * (i - a);
        b += 2;
        d = an * d + b;
        if (fabs(d) < tiny)
            d = tiny;
        c = b + an / c;
        if (fabs(c) < tiny)
            c = tiny;
        d = 1 / d;
        double del = d * c;
        h *= del;
        if (fabs(del - 1) < 1e-15)
            break;
    }
    return exp(lead) * h;
}

double pxm_chi2(const pxm_image *im, double *p)
{
    size_t n = pxm_samples(im), bins = (size_t)im->maxval + 1;
    uint64_t *h = n && bins > 1 ? histogram(im) : NULL;
    double chi = 0;
    if (!h) {
        if (p)
            *p = 1;
        return 0;
    }
    double expect = (double)n / (double)bins;
    for (size_t v = 0; v < bins; v++) {
        double d = (double)h[v] - expect;
        chi += d * d / expect;
    }
    free(h);
    if (p)
        *p = pxm_gamma_q((double)(bins - 1) / 2, chi / 2);
    return chi;
}

void pxm_npcr_uaci(const pxm_image *a, const pxm_image *b, double *npcr, double *uaci)
{
    size_t n = pxm_samples(a), diff = 0;
    double sum = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t x = pxm_at(a, i), y = pxm_at(b, i);
        diff += x != y;
        sum += x > y ? x - y : y - x;
    }
    *npcr = n ? 100.0 * (double)diff / (double)n : 0;
    *uaci = n && a->maxval ? 100.0 * sum / ((double)a->maxval * (double)n) : 0;
}

double pxm_mse(const pxm_image *a, const pxm_image *b)
{
    size_t n = pxm_samples(a);
    double sum = 0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)pxm_at(a, i) - (double)pxm_at(b, i);
        sum += d * d;
    }
    return n ? sum / (double)n : 0;
}

double pxm_psnr(double mse, uint32_t maxval)
{
    if (mse <= 0)
        return INFINITY;
    return 10 * log10((double)maxval * maxval / mse);
}

static double ssim_value(double ma, double mb, double va, double vb, double cov, double c1,
                         double c2)
{
    return ((2 * ma * mb + c1) * (2 * cov + c2)) / ((ma * ma + mb * mb + c1) * (va + vb + c2));
}

enum { WIN = 11 }; /* Gaussian window: 11 taps, sigma 1.5 */

/* One channel; NAN on allocation failure.  The separable filter streams over the rows:
 * each input row is filtered horizontally into a ring of the last WIN rows (x, y, x^2,
 * y^2, xy), and every complete ring gives one row of windows, so memory is O(width)
 * whatever the image size. */
static double ssim_channel(const pxm_image *a, const pxm_image *b, uint32_t c)
{
    size_t w = a->width, h = a->height, ch = a->channels;
    double L = a->maxval ? a->maxval : 1, c1 = (0.01 * L) * (0.01 * L),
           c2 = (0.03 * L) * (0.03 * L);
    if (w < WIN || h < WIN) {
        moments m = {0};
        for (size_t i = 0; i < w * h; i++)
            moments_add(&m, pxm_at(a, i * ch + c), pxm_at(b, i * ch + c));
        double ma = m.sx / m.n, mb = m.sy / m.n;
        return ssim_value(ma, mb, m.sxx / m.n - ma * ma, m.syy / m.n - mb * mb,
                          m.sxy / m.n - ma * mb, c1, c2);
    }
    double g[WIN], gs = 0;
    for (int k = 0; k < WIN; k++)
        gs += g[k] = exp(-((k - 5) * (k - 5)) / (2 * 1.5 * 1.5));
    for (int k = 0; k < WIN; k++)
        g[k] /= gs;
    size_t ow = w - WIN + 1;
    /* in: the 5 quantities of one input row; ring: WIN rows of them filtered
     * horizontally; q: one row of window means.  Plane-by-plane loops vectorise. */
    double *in = malloc(5 * w * sizeof *in), *ring = malloc(5 * WIN * ow * sizeof *ring),
           *q = malloc(5 * ow * sizeof *q);
    if (!in || !ring || !q) {
        free(in);
        free(ring);
        free(q);
        return NAN;
    }
    double sum = 0;
    for (size_t y = 0; y < h; y++) {
        for (size_t x = 0; x < w; x++) {
            double u = pxm_at(a, (y * w + x) * ch + c), v = pxm_at(b, (y * w + x) * ch + c);
            in[x] = u;
            in[w + x] = v;
            in[2 * w + x] = u * u;
            in[3 * w + x] = v * v;
            in[4 * w + x] = u * v;
        }
        double *r = ring + (y % WIN) * 5 * ow;
        for (size_t p = 0; p < 5; p++)
            for (size_t x = 0; x < ow; x++) {
                double t = 0;
                for (int k = 0; k < WIN; k++)
                    t += g[k] * in[p * w + x + (size_t)k];
                r[p * ow + x] = t;
            }
        if (y + 1 < WIN)
            continue;
        /* Rows y - 10 .. y are in ring slots (y + 1 + k) % WIN, k = 0 .. 10. */
        memset(q, 0, 5 * ow * sizeof *q);
        for (int k = 0; k < WIN; k++) {
            const double *rr = ring + ((y + 1 + (size_t)k) % WIN) * 5 * ow;
            for (size_t i = 0; i < 5 * ow; i++)
                q[i] += g[k] * rr[i];
        }
        for (size_t x = 0; x < ow; x++) {
            double ma = q[x], mb = q[ow + x];
            sum += ssim_value(ma, mb, q[2 * ow + x] - ma * ma, q[3 * ow + x] - mb * mb,
                              q[4 * ow + x] - ma * mb, c1, c2);
        }
    }
    free(in);
    free(ring);
    free(q);
    return sum / ((double)ow * (double)(h - WIN + 1));
}

double pxm_ssim(const pxm_image *a, const pxm_image *b)
{
    double sum = 0;
    if (pxm_samples(a) == 0)
        return 1;
    for (uint32_t c = 0; c < a->channels; c++) {
        sum += ssim_channel(a, b, c);
    }
    return sum / a->channels;
}

/* Views: exact area averaging to the network's input size, JPEG DC mapping and box
 * downsampling.  Integer arithmetic throughout. */
#include <stdlib.h>
#include <string.h>

#include "nn/nn_int.h"

/* Area weights down the columns: `n` source rows onto NN_SIDE output rows.  In units of
 * 1/NN_SIDE of a source sample, source i covers [i*NN_SIDE, (i+1)*NN_SIDE) and output o
 * covers [o*n, (o+1)*n); the weight of (i, o) is the length of the overlap, so the
 * weights of one output sum to n.  For source i: the first output `first[i]`, the number
 * of outputs `count[i]`, and their weights from `w + off[i]`. */
typedef struct axis {
    uint32_t *first, *count, *off, *w;
} axis;

static void axis_free(axis *a)
{
    free(a->first);
    free(a->count);
    free(a->off);
    free(a->w);
}

static int axis_init(axis *a, uint32_t n)
{
    const uint64_t side = NN_SIDE;
    a->first = malloc(n * sizeof *a->first);
    a->count = malloc(n * sizeof *a->count);
    a->off = malloc(n * sizeof *a->off);
    a->w = malloc(((size_t)n + NN_SIDE) * sizeof *a->w); /* sum of counts <= n + NN_SIDE */
    if (!a->first || !a->count || !a->off || !a->w) {
        axis_free(a);
        return -1;
    }
    uint32_t k = 0;
    for (uint32_t i = 0; i < n; i++) {
        uint64_t lo = i * side, hi = lo + side;
        uint32_t o = (uint32_t)(lo / n), last = (uint32_t)((hi - 1) / n);
        a->first[i] = o;
        a->count[i] = last - o + 1;
        a->off[i] = k;
        for (; o <= last; o++) {
            uint64_t olo = (uint64_t)o * n, ohi = olo + n;
            uint64_t s = lo > olo ? lo : olo, e = hi < ohi ? hi : ohi;
            a->w[k++] = (uint32_t)(e - s);
        }
    }
    return 0;
}

int nn_resample(float out[NN_SIDE * NN_SIDE], const uint8_t *gray, uint32_t width, uint32_t height)
{
    /* A sample's sum is at most 255 * width * height * NN_SIDE^2 / NN_SIDE^2 < 2^56. */
    uint64_t acc[NN_SIDE * NN_SIDE], row[NN_SIDE];
    axis ay = {0};

    if (!gray || width == 0 || height == 0 || width > NN_MAX_SIDE || height > NN_MAX_SIDE)
        return -1;
    if (axis_init(&ay, height) != 0)
        return -1;
    /* Across a row, output o covers [o*width, (o+1)*width): samples x0..x1, the first and
     * last partly (weights aw0, aw1), the ones between fully (weight NN_SIDE). */
    uint32_t ax0[NN_SIDE], ax1[NN_SIDE], aw0[NN_SIDE], aw1[NN_SIDE];
    for (int o = 0; o < NN_SIDE; o++) {
        uint64_t lo = (uint64_t)o * width, hi = lo + width;
        ax0[o] = (uint32_t)(lo / NN_SIDE);
        ax1[o] = (uint32_t)((hi - 1) / NN_SIDE);
        aw0[o] = (uint32_t)((uint64_t)(ax0[o] + 1) * NN_SIDE - lo);
        aw1[o] = (uint32_t)(hi - (uint64_t)ax1[o] * NN_SIDE);
    }
    memset(acc, 0, sizeof acc);
    for (uint32_t y = 0; y < height; y++) {
        const uint8_t *src = gray + (size_t)y * width;
        for (int o = 0; o < NN_SIDE; o++) {
            const uint32_t x0 = ax0[o], x1 = ax1[o];
            if (x0 == x1) {
                row[o] = (uint64_t)src[x0] * width;
                continue;
            }
            uint32_t inner = 0; /* <= 255 * NN_MAX_SIDE < 2^32 */
            for (uint32_t x = x0 + 1; x < x1; x++)
                inner += src[x];
            row[o] =
                (uint64_t)src[x0] * aw0[o] + (uint64_t)src[x1] * aw1[o] + (uint64_t)inner * NN_SIDE;
        }
        const uint32_t *w = ay.w + ay.off[y];
        for (uint32_t k = 0; k < ay.count[y]; k++) {
            uint64_t *a = acc + (size_t)(ay.first[y] + k) * NN_SIDE;
            for (int o = 0; o < NN_SIDE; o++)
                a[o] += row[o] * w[k];
        }
    }
    axis_free(&ay);

    /* Mean sample = acc / (width * height), mapped from [0, 255] to [-1, 1]. */
    const double scale = 1.0 / (127.5 * (double)width * (double)height);
    for (int i = 0; i < NN_SIDE * NN_SIDE; i++)
        out[i] = (float)((double)acc[i] * scale - 1.0);
    return 0;
}

void nn_gray_from_dc(uint8_t *out, const int16_t *dc, size_t n, uint16_t quant0)
{
    for (size_t i = 0; i < n; i++) {
        /* 128 + round(dc * quant0 / 8), half away from zero. */
        int64_t t = (int64_t)dc[i] * quant0;
        int64_t v = 128 + (t >= 0 ? (t + 4) / 8 : -((-t + 4) / 8));
        out[i] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
    }
}

size_t nn_box_out_size(uint32_t width, uint32_t height, uint32_t factor)
{
    if (factor == 0)
        return 0;
    return (size_t)((width + (uint64_t)factor - 1) / factor) *
           (size_t)((height + (uint64_t)factor - 1) / factor);
}

int nn_box_init(nn_box *b, uint8_t *out, uint32_t width, uint32_t height, uint32_t factor)
{
    memset(b, 0, sizeof *b);
    if (!out || width == 0 || height == 0 || factor == 0 || factor > 4096)
        return -1;
    b->width = width;
    b->height = height;
    b->factor = factor;
    b->out_width = (uint32_t)((width + (uint64_t)factor - 1) / factor);
    b->out_height = (uint32_t)((height + (uint64_t)factor - 1) / factor);
    b->out = out;
    b->acc = calloc(b->out_width, sizeof *b->acc); /* <= 255 * 4096^2 < 2^32 */
    return b->acc ? 0 : -1;
}

/* Writes out row `oy` from the sums of `rows` source rows, then clears the sums. */
static void box_flush(nn_box *b, uint32_t oy, uint32_t rows)
{
    uint8_t *dst = b->out + (size_t)oy * b->out_width;
    for (uint32_t ox = 0; ox < b->out_width; ox++) {
        uint32_t x0 = ox * b->factor;
        uint32_t cols = b->width - x0 < b->factor ? b->width - x0 : b->factor;
        uint64_t area = (uint64_t)cols * rows;
        dst[ox] = (uint8_t)((b->acc[ox] + area / 2) / area);
        b->acc[ox] = 0;
    }
}

int nn_box_row(nn_box *b, const uint8_t *row)
{
    if (!b->acc || b->row >= b->height)
        return -1;
    for (uint32_t ox = 0, x = 0; ox < b->out_width; ox++) {
        uint32_t end = b->width - x > b->factor ? x + b->factor : b->width, s = 0;
        for (; x < end; x++)
            s += row[x];
        b->acc[ox] += s;
    }
    b->row++;
    if (b->row % b->factor == 0)
        box_flush(b, b->row / b->factor - 1, b->factor);
    else if (b->row == b->height)
        box_flush(b, b->row / b->factor, b->row % b->factor);
    return 0;
}

void nn_box_free(nn_box *b)
{
    free(b->acc);
    b->acc = NULL;
}

int nn_box_downsample(uint8_t *out, const uint8_t *src, uint32_t width, uint32_t height,
                      size_t stride, uint32_t factor)
{
    nn_box b;
    if (!src || stride < width || nn_box_init(&b, out, width, height, factor) != 0)
        return -1;
    for (uint32_t y = 0; y < height; y++)
        nn_box_row(&b, src + (size_t)y * stride);
    nn_box_free(&b);
    return 0;
}

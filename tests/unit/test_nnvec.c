/* nn/: neural key vectors — determinism, key and pixel sensitivity, views, speed. */
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "codec/keys.h"
#include "nn/nn_int.h"
#include "nn/nnvec.h"
#include "tests/unit/tap.h"

_Static_assert(NN_VECTOR_BYTES == PXC_NNVEC_BYTES, "the vector fills the per-file key slot");

static uint32_t lcg_state;
static uint32_t lcg(void)
{
    lcg_state = lcg_state * 1664525u + 1013904223u;
    return lcg_state >> 8;
}

/* Triangle wave of period `p`, amplitude 0..p/2. */
static int tri(int v, int p)
{
    v %= p;
    if (v < 0)
        v += p;
    return v < p / 2 ? v : p - v;
}

/* A smooth, photo-like gray image: gradients, slow waves, a bright disc, faint noise. */
static uint8_t *make_image(uint32_t w, uint32_t h, uint32_t seed)
{
    uint8_t *img = malloc((size_t)w * h);
    lcg_state = seed;
    int cx = (int)(w / 3), cy = (int)(h / 2), r2 = (int)(w * w / 25);
    for (uint32_t y = 0; y < h; y++)
        for (uint32_t x = 0; x < w; x++) {
            int v = 40 + (int)(x * 90 / w) + (int)(y * 50 / h);
            v += tri((int)(x + 2 * y + seed % 97), 173) * 40 / 86;
            v += tri((int)(3 * x - y), 311) * 30 / 155;
            int dx = (int)x - cx, dy = (int)y - cy;
            if (dx * dx + dy * dy < r2)
                v += 35;
            v += (int)(lcg() % 5) - 2;
            img[(size_t)y * w + x] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
        }
    return img;
}

static int hamming(const uint8_t *a, const uint8_t *b)
{
    int d = 0;
    for (int i = 0; i < NN_VECTOR_BYTES; i++)
        d += __builtin_popcount(a[i] ^ b[i]);
    return d;
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void test_activations(void)
{
    /* tanh(0.5), tanh(1), tanh(2), tanh(2.9) to 6 digits. */
    static const float xs[] = {0.5f, 1.0f, 2.0f, 2.9f};
    static const float ref[] = {0.462117f, 0.761594f, 0.964028f, 0.993963f};
    int good = 1;
    for (int i = 0; i < 4; i++) {
        float d = nn_tanh(xs[i]) - ref[i];
        good &= d < 0.025f && d > -0.025f && nn_tanh(-xs[i]) == -nn_tanh(xs[i]);
    }
    float prev = -2.0f;
    for (int i = -4000; i <= 4000; i++) {
        float v = nn_tanh((float)i / 1000.0f);
        good &= v >= prev - 0x1p-22f && v >= -1.0f && v <= 1.0f;
        prev = v;
    }
    ok(good, "tanh approximation: odd, monotone (to rounding), bounded, within 0.025");
    ok(nn_sigmoid(0.0f) == 0.5f && nn_sigmoid(20.0f) == 1.0f && nn_sigmoid(-20.0f) == 0.0f,
       "sigmoid: 1/2 at 0, saturates exactly");
}

static void test_views(void)
{
    /* JPEG DC: mean = 128 + q * quant0 / 8. */
    static const int16_t dc[] = {0, 8, -8, -16, 100, -1, 1, 3};
    uint8_t g[8];
    nn_gray_from_dc(g, dc, 8, 16);
    ok(g[0] == 128 && g[1] == 144 && g[2] == 112 && g[3] == 96 && g[4] == 255 && g[5] == 126 &&
           g[6] == 130 && g[7] == 134,
       "DC values map to block means, rounded and clamped");
    nn_gray_from_dc(g, (const int16_t[]){-1024}, 1, 1);
    ok(g[0] == 0, "DC floor clamps to 0");

    /* 5x3 by 2: blocks 2x2, edge blocks 1x2, 2x1, 1x1. */
    static const uint8_t src[3 * 6] = {10, 20, 30, 40, 50, 0, 30, 40, 50,
                                       60, 71, 0,  1,  2,  3, 4,  5,  0};
    uint8_t out[6] = {0};
    int rc;
    ok(nn_box_out_size(5, 3, 2) == 6, "box view size is ceil x ceil");
    rc = nn_box_downsample(out, src, 5, 3, 6, 2);
    ok(rc == 0 && out[0] == 25 && out[1] == 45 && out[2] == 61 && out[3] == 2 && out[4] == 4 &&
           out[5] == 5,
       "box downsample: rounded block means, partial edge blocks (%u %u %u %u %u %u)", out[0],
       out[1], out[2], out[3], out[4], out[5]);
    nn_box b;
    rc = nn_box_init(&b, out, 5, 3, 2);
    for (int y = 0; y < 3; y++)
        rc |= nn_box_row(&b, src + 6 * y);
    ok(rc == 0 && nn_box_row(&b, src) == -1, "box: rows past the height are refused");
    nn_box_free(&b);
    ok(nn_box_init(&b, out, 5, 3, 0) == -1 && nn_box_init(&b, NULL, 5, 3, 2) == -1,
       "box: bad arguments refused");

    /* Area averaging: a flat image stays flat at every size, up or down. */
    static const uint32_t sizes[][2] = {{684, 456}, {64, 64}, {7, 5}, {1, 1}, {1000, 3}};
    int flat = 1;
    float view[NN_SIDE * NN_SIDE];
    for (int s = 0; s < 5; s++) {
        uint32_t w = sizes[s][0], h = sizes[s][1];
        uint8_t *img = malloc((size_t)w * h);
        memset(img, 200, (size_t)w * h);
        flat &= nn_resample(view, img, w, h) == 0;
        for (int i = 0; i < NN_SIDE * NN_SIDE; i++)
            flat &= view[i] == (float)(200.0 / 127.5 - 1.0);
        free(img);
    }
    ok(flat, "area average of a flat image is flat (684x456, 64x64, 7x5, 1x1, 1000x3)");
    /* 128x128 -> 64x64 is the exact 2x2 mean. */
    uint8_t *img = make_image(128, 128, 3);
    int exact = nn_resample(view, img, 128, 128) == 0;
    for (int y = 0; y < NN_SIDE && exact; y++)
        for (int x = 0; x < NN_SIDE; x++) {
            const uint8_t *p = img + 2 * y * 128 + 2 * x;
            double mean = (p[0] + p[1] + p[128] + p[129]) / 4.0;
            exact &= view[y * NN_SIDE + x] == (float)(mean / 127.5 - 1.0);
        }
    ok(exact, "area average of 128x128 is the exact 2x2 block mean");
    free(img);
    ok(nn_resample(view, NULL, 4, 4) == -1 && nn_resample(view, g, 0, 1) == -1 &&
           nn_resample(view, g, 1, NN_MAX_SIDE + 1) == -1,
       "resample: bad sizes refused");
}

int main(void)
{
    if (sodium_init() < 0)
        return 1;
    test_activations();
    test_views();

    uint8_t master[NN_MASTER_BYTES];
    for (int i = 0; i < NN_MASTER_BYTES; i++)
        master[i] = (uint8_t)i;
    nn_model *m = nn_model_new(master);
    ok(m != NULL, "model built");

    /* Test vector: fixed master 00..1f, fixed 96x80 synthetic image. */
    uint8_t *img = make_image(96, 80, 1);
    uint8_t v[NN_VECTOR_BYTES], v2[NN_VECTOR_BYTES];
    char hex[2 * NN_VECTOR_BYTES + 1];
    ok(nn_vector(m, img, 96, 80, v) == 0, "vector computed");
    sodium_bin2hex(hex, sizeof hex, v, sizeof v);
    ok(strcmp(hex, "69438f71f4d290ddb86f60d1537a7f188c1b3d89237ec1f85a68c2a97acd3e13") == 0,
       "test vector (got %s)", hex);

    /* Determinism: repeated, and with a model built afresh. */
    int same = 1;
    for (int i = 0; i < 5; i++)
        same &= nn_vector(m, img, 96, 80, v2) == 0 && memcmp(v, v2, sizeof v) == 0;
    ok(same, "same image, same model: same vector (5 repeats)");
    nn_model *again = nn_model_new(master);
    ok(again && nn_vector(again, img, 96, 80, v2) == 0 && memcmp(v, v2, sizeof v) == 0,
       "same image, freshly built model: same vector");
    nn_model_free(again);
    ok(nn_vector(m, img, 0, 80, v2) == -1 && nn_vector(m, NULL, 96, 80, v2) == -1 &&
           nn_vector(NULL, img, 96, 80, v2) == -1,
       "bad arguments refused");
    ok(nn_vector(m, img, 80, 96, v2) == 0 && hamming(v, v2) > 0,
       "same bytes with other dimensions: other vector");

    /* Other volumes: unrelated vectors. */
    enum { KEYS = 12 };
    int lo = 256, hi = 0, sum = 0, in_range = 1;
    char list[KEYS * 12 + 1] = "";
    for (int k = 0; k < KEYS; k++) {
        uint8_t other[NN_MASTER_BYTES];
        memcpy(other, master, sizeof other);
        other[k % NN_MASTER_BYTES] ^= (uint8_t)(1u << (k % 8)); /* one bit of the key */
        nn_model *o = nn_model_new(other);
        nn_vector(o, img, 96, 80, v2);
        nn_model_free(o);
        int d = hamming(v, v2);
        lo = d < lo ? d : lo;
        hi = d > hi ? d : hi;
        sum += d;
        in_range &= d >= 88 && d <= 168;
        snprintf(list + strlen(list), 12, " %d", d);
    }
    tap_diag("Hamming distance to %d one-bit-different master keys:%s (mean %.1f)", KEYS, list,
             (double)sum / KEYS);
    ok(in_range, "other master keys: distances %d..%d of 256 bits, all within 128+-40", lo, hi);

    uint8_t *img2 = make_image(96, 80, 2);
    nn_vector(m, img2, 96, 80, v2);
    int dimg = hamming(v, v2);
    ok(dimg >= 88 && dimg <= 168, "another image, same key: distance %d", dimg);
    free(img2);
    free(img);

    /* One changed pixel of a 256x256 image always changes the vector. */
    enum { SIDE = 256, TRIALS = 200 };
    img = make_image(SIDE, SIDE, 7);
    uint8_t base[NN_VECTOR_BYTES];
    float view0[NN_SIDE * NN_SIDE], view1[NN_SIDE * NN_SIDE];
    nn_vector(m, img, SIDE, SIDE, base);
    nn_resample(view0, img, SIDE, SIDE);
    int changed = 0, view_changed = 0, dmin = 256, dmax = 0;
    lcg_state = 99;
    for (int t = 0; t < TRIALS; t++) {
        size_t at = lcg() % (SIDE * SIDE);
        uint8_t old = img[at];
        img[at] = old < 255 ? old + 1 : old - 1;
        nn_vector(m, img, SIDE, SIDE, v2);
        nn_resample(view1, img, SIDE, SIDE);
        img[at] = old;
        int d = hamming(base, v2);
        changed += d > 0;
        dmin = d < dmin ? d : dmin;
        dmax = d > dmax ? d : dmax;
        view_changed += memcmp(view0, view1, sizeof view0) != 0;
    }
    ok(changed == TRIALS, "%d/%d single-pixel (+-1) changes at random positions change the vector",
       changed, TRIALS);
    tap_diag("single-pixel changes: Hamming distance %d..%d; %d/%d also change the 64x64 view",
             dmin, dmax, view_changed, TRIALS);

    /* The network itself is content- and state-sensitive, without the view hash's help. */
    uint8_t dg[NN_DIGEST_BYTES] = {0}, dg2[NN_DIGEST_BYTES] = {1};
    float h0[NN_HIDDEN], c0[NN_HIDDEN], h1[NN_HIDDEN], c1[NN_HIDDEN];
    nn_forward(m, view0, dg, h0, c0);
    memcpy(view1, view0, sizeof view0);
    for (int y = 20; y < 28; y++)
        for (int x = 30; x < 38; x++)
            view1[y * NN_SIDE + x] += 0.05f;
    nn_forward(m, view1, dg, h1, c1);
    ok(memcmp(h0, h1, sizeof h0) != 0, "an 8x8 patch of the normalised view changes the state");
    nn_forward(m, view0, dg2, h1, c1);
    int hdiff = 0;
    for (int j = 0; j < NN_HIDDEN; j++)
        hdiff += h0[j] != h1[j];
    ok(hdiff > NN_HIDDEN / 2, "the initial state reaches the final state (%d/%d of h differ)",
       hdiff, NN_HIDDEN);
    free(img);

    /* Speed: the DC view of a 20-megapixel JPEG (5472x3648 / 8 = 684x456). */
    enum { RUNS = 31 };
    img = make_image(684, 456, 5);
    double ms[RUNS];
    for (int r = 0; r < RUNS; r++) {
        double t0 = now_ms();
        nn_vector(m, img, 684, 456, v2);
        ms[r] = now_ms() - t0;
    }
    qsort(ms, RUNS, sizeof ms[0], cmp_double);
    tap_diag("nn_vector on a 684x456 view (20 MP JPEG DC): median %.3f ms, min %.3f ms",
             ms[RUNS / 2], ms[0]);
#ifdef __SANITIZE_ADDRESS__
    const double bound = 30.0; /* instrumented build: about 4x slower */
#else
    const double bound = 10.0;
#endif
    ok(ms[RUNS / 2] <= bound, "684x456 view in %.3f ms (median of %d; loose bound %.0f ms)",
       ms[RUNS / 2], RUNS, bound);
    free(img);

    nn_model_free(m);
    return tap_done();
}

/* Unit tests of the JPEG codec: corpus round trips, generated variants (libjpeg in
 * process: quality, progressive, optimised tables, restart intervals, sampling factors,
 * gray, CMYK, odd sizes; cjpeg, jpegtran and exiftool when installed), stored files
 * checked with libjpeg and exiftool, noise thresholds (SSIM, AC-energy correlation),
 * tamper and truncation, malformed and mutated input, limits, throughput and size.
 * Corpus from $PXC_CORPUS, default <repo>/../shared/corpus. */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <sodium.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jpeglib.h>

#include "codec/jpeg.h"
#include "codec/opaque.h"
#include "fs/analyze.h"
#include "codec/metrics.h"
#include "tap.h"

static pxc_keys *keys;
static char tmpdir[] = "/tmp/pxc-jpeg-XXXXXX";

typedef struct membuf {
    uint8_t *p;
    size_t len, cap;
} membuf;

static void mb_put(membuf *m, const void *src, size_t n)
{
    if (m->cap - m->len < n) {
        size_t cap = m->cap ? m->cap : 4096;
        while (cap - m->len < n)
            cap *= 2;
        uint8_t *np = realloc(m->p, cap);
        if (!np)
            abort();
        m->p = np;
        m->cap = cap;
    }
    if (n)
        memcpy(m->p + m->len, src, n);
    m->len += n;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static uint8_t *read_file(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    membuf m = {0};
    uint8_t buf[65536];
    size_t r;
    while ((r = fread(buf, 1, sizeof buf, f)) > 0)
        mb_put(&m, buf, r);
    fclose(f);
    *n = m.len;
    return m.p ? m.p : malloc(1);
}

static int write_file(const char *path, const uint8_t *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    size_t w = fwrite(p, 1, n, f);
    return (fclose(f) == 0 && w == n) ? 0 : -1;
}

static int have_tool(const char *name)
{
    char cmd[256];
    snprintf(cmd, sizeof cmd, "command -v %s >/dev/null 2>&1", name);
    return system(cmd) == 0;
}

/* ---- libjpeg helpers ----------------------------------------------------------------- */

typedef struct terr {
    struct jpeg_error_mgr pub;
    jmp_buf jb;
} terr;

static void t_error(j_common_ptr c)
{
    longjmp(((terr *)c->err)->jb, 1);
}

static void t_message(j_common_ptr c)
{
    (void)c;
}

typedef struct image {
    int w, h, comps;
    uint8_t *px; /* luma (or the single/first channel), w * h */
} image;

/* Decodes to 8-bit luma (gray output); 0 on success.  comps = components in the file. */
static int decode_luma(const uint8_t *p, size_t n, image *im)
{
    struct jpeg_decompress_struct d;
    terr e;
    memset(im, 0, sizeof *im);
    d.err = jpeg_std_error(&e.pub);
    e.pub.error_exit = t_error;
    e.pub.output_message = t_message;
    jpeg_create_decompress(&d);
    if (setjmp(e.jb)) {
        jpeg_destroy_decompress(&d);
        free(im->px);
        im->px = NULL;
        return -1;
    }
    jpeg_mem_src(&d, p, (unsigned long)n);
    jpeg_read_header(&d, TRUE);
    im->comps = d.num_components;
    if (d.jpeg_color_space == JCS_YCbCr || d.jpeg_color_space == JCS_GRAYSCALE ||
        d.jpeg_color_space == JCS_RGB)
        d.out_color_space = JCS_GRAYSCALE;
    jpeg_start_decompress(&d);
    im->w = (int)d.output_width;
    im->h = (int)d.output_height;
    int oc = d.output_components;
    uint8_t *row = malloc((size_t)im->w * oc);
    im->px = malloc((size_t)im->w * im->h);
    while (d.output_scanline < d.output_height) {
        int y = (int)d.output_scanline;
        JSAMPROW rp = row;
        jpeg_read_scanlines(&d, &rp, 1);
        for (int x = 0; x < im->w; x++)
            im->px[(size_t)y * im->w + x] = row[(size_t)x * oc];
    }
    jpeg_finish_decompress(&d);
    jpeg_destroy_decompress(&d);
    free(row);
    return 0;
}

/* Mean SSIM of two luma images of the same size (codec/metrics.h). */
static double ssim(const image *a, const image *b)
{
    pxm_image x = {a->px, 0, (uint32_t)a->w, (uint32_t)a->h, 1, 255};
    pxm_image y = {b->px, 0, (uint32_t)b->w, (uint32_t)b->h, 1, 255};
    return pxm_ssim(&x, &y);
}

/* ---- one file ------------------------------------------------------------------------ */

typedef struct stats {
    int stored, declined;
    double ratios[512];
    int nratios;
    double worst_ssim, worst_corr;
    int noise_checked;
    double ssim_max; /* threshold */
} stats;

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    if (n == 0)
        return 0;
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* Original byte strings that must not be visible in the stored file: the first bytes
 * of every APPn/COM payload and of every embedded JPEG (thumbnails, MPF images). */
static int leaks_metadata(const uint8_t *orig, size_t n, const uint8_t *st, size_t sn)
{
    size_t pos = 2;
    while (pos + 4 <= n && orig[pos] == 0xFF) {
        int m = orig[pos + 1];
        size_t len = (size_t)orig[pos + 2] << 8 | orig[pos + 3];
        if (m == 0xDA || len < 2 || pos + 2 + len > n)
            break;
        if (((m >= 0xE0 && m <= 0xEF) || m == 0xFE) && len >= 2 + 24 && m != 0xE0 && m != 0xEE &&
            memmem(st, sn, orig + pos + 4, 24))
            return 1;
        pos += 2 + len;
    }
    for (size_t i = 1; i + 3 <= n; i++) {
        const uint8_t *q = memmem(orig + i, n - i, "\xFF\xD8\xFF", 3);
        if (!q)
            break;
        size_t off = (size_t)(q - orig);
        if (off + 40 <= n && memmem(st, sn, q, 40))
            return 1;
        i = off;
    }
    return 0;
}

/* Encodes, decodes, checks.  Returns 1 stored and fine, 0 declined (*why), -1 bad. */
static int check_one(const char *label, const uint8_t *p, size_t n, stats *st, const char **why)
{
    uint8_t *sf = NULL, *back = NULL;
    size_t sl = 0, bl = 0;
    pxc_file_secrets s;
    pxc_secrets_fresh(&s);
    *why = NULL;
    int rc = jpeg_codec_encode(p, n, keys, &s, &sf, &sl, why);
    if (rc != 0) {
        if (st)
            st->declined++;
        if (sf || sl) {
            ok(0, "%s: declined encode leaves no output", label);
            return -1;
        }
        return 0;
    }
    int bad = 0;
    rc = jpeg_codec_decode(sf, sl, keys, &back, &bl);
    if (rc != 0 || bl != n || memcmp(back, p, n) != 0) {
        tap_diag("%s: round trip differs (rc %d)", label, rc);
        bad = 1;
    }
    jpeg_peek_info pi;
    if (jpeg_codec_peek(sf, JPEG_PEEK_BYTES, &pi) != 0 || pi.plain_size != n) {
        tap_diag("%s: peek", label);
        bad = 1;
    }
    uint8_t *head = NULL;
    size_t hl = 0;
    pxc_plain_tail tail;
    if (jpeg_codec_decode_head(sf, pi.head_bytes, keys, &head, &hl, &tail) != 0 || hl > n ||
        memcmp(head, p, hl) != 0 || tail.off + tail.len != (tail.data ? n : 0) ||
        (tail.data && memcmp(tail.data, p + tail.off, tail.len) != 0) ||
        (n >= PXC_PREVIEW_MIN_PLAIN) != (tail.data != NULL)) {
        tap_diag("%s: decode_head", label);
        bad = 1;
    }
    free(head);
    free(tail.data);
    image a, b;
    int da = decode_luma(p, n, &a), db = decode_luma(sf, sl, &b);
    if (db != 0 || (da == 0 && (a.w != b.w || a.h != b.h || a.comps != b.comps))) {
        tap_diag("%s: stored file does not decode to the same geometry", label);
        bad = 1;
    }
    if (leaks_metadata(p, n, sf, sl)) {
        tap_diag("%s: original metadata visible in the stored file", label);
        bad = 1;
    }
    if (st && da == 0 && db == 0 && a.w >= 64 && a.h >= 64 && a.w == b.w && a.h == b.h) {
        double sv = ssim(&a, &b);
        size_t na = 0, nb2 = 0;
        double *ea = ana_jpeg_ac_energy(p, n, &na), *eb = ana_jpeg_ac_energy(sf, sl, &nb2);
        double r = (ea && eb && na == nb2) ? pxm_pearson(ea, eb, na) : 1;
        free(ea);
        free(eb);
        if (fabs(sv) > fabs(st->worst_ssim))
            st->worst_ssim = sv;
        if (fabs(r) > fabs(st->worst_corr))
            st->worst_corr = r;
        st->noise_checked++;
        if (sv >= st->ssim_max || fabs(r) >= 0.1) {
            tap_diag("%s: SSIM %.4f, AC-energy r %.4f", label, sv, r);
            bad = 1;
        }
    }
    free(a.px);
    free(b.px);
    if (st) {
        st->stored++;
        if (st->nratios < 512)
            st->ratios[st->nratios++] = (double)sl / (double)n;
    }
    free(sf);
    free(back);
    return bad ? -1 : 1;
}

/* ---- corpus -------------------------------------------------------------------------- */

static char corpus[512];

static int find_corpus(void)
{
    const char *env = getenv("PXC_CORPUS"), *build = getenv("PXC_BUILD");
    struct stat sb;
    if (env) {
        snprintf(corpus, sizeof corpus, "%s", env);
        return stat(corpus, &sb) == 0;
    }
    if (build) {
        snprintf(corpus, sizeof corpus, "%s/../../../shared/corpus", build);
        if (stat(corpus, &sb) == 0)
            return 1;
    }
    snprintf(corpus, sizeof corpus, "../shared/corpus");
    return stat(corpus, &sb) == 0;
}

static int is_jpeg_name(const char *name)
{
    size_t l = strlen(name);
    return l > 4 &&
           (strcasecmp(name + l - 4, ".jpg") == 0 || strcasecmp(name + l - 5, ".jpeg") == 0);
}

static stats corpus_st = {.ssim_max = 0.1};

static void test_corpus(void)
{
    static const char *const subs[] = {"jpeg/libjpeg-turbo", "jpeg/exiftool"};
    if (!find_corpus()) {
        printf("ok %d # SKIP corpus not found (set PXC_CORPUS)\n", ++tap_count);
        return;
    }
    int bad = 0, total = 0;
    for (size_t k = 0; k < sizeof subs / sizeof *subs; k++) {
        char dir[1024];
        snprintf(dir, sizeof dir, "%s/%s", corpus, subs[k]);
        struct dirent **ents;
        int ne = scandir(dir, &ents, NULL, alphasort);
        for (int i = 0; i < ne; i++) {
            const char *name = ents[i]->d_name;
            char path[2048], label[1100];
            snprintf(path, sizeof path, "%s/%s", dir, name);
            snprintf(label, sizeof label, "%s/%s", subs[k], name);
            size_t n = 0;
            uint8_t *p = is_jpeg_name(name) ? read_file(path, &n) : NULL;
            if (p) {
                const char *why = NULL;
                total++;
                int r = check_one(label, p, n, &corpus_st, &why);
                if (r < 0)
                    bad++;
                if (r == 0)
                    tap_diag("declined %s: %s", label, why);
            }
            free(p);
            free(ents[i]);
        }
        if (ne >= 0)
            free(ents);
    }
    stats *st = &corpus_st;
    int nr = st->nratios;
    double med = median(st->ratios, nr);
    tap_diag("corpus: %d JPEGs, %d stored format-preserving, %d declined; stored/original size "
             "median %.3f (min %.3f, max %.3f)",
             total, st->stored, st->declined, med, nr ? st->ratios[0] : 0,
             nr ? st->ratios[nr - 1] : 0);
    tap_diag("corpus noise (images >= 64x64: %d): worst SSIM %.4f, worst AC-energy r %.4f",
             st->noise_checked, st->worst_ssim, st->worst_corr);
    ok(bad == 0, "corpus: every stored JPEG round-trips exactly and passes the checks");
    ok(total > 0 && st->stored * 100 >= total * 95,
       "corpus: >= 95%% stored format-preserving "
       "(%d of %d)",
       st->stored, total);
    ok(nr > 0 && med <= 1.15, "corpus: median size ratio %.3f <= 1.15", med);
}

/* ---- generated variants ------------------------------------------------------------- */

typedef struct variant {
    const char *name;
    int w, h, comps; /* 1 gray, 3 YCbCr (or RGB with rgb), 4 CMYK (or YCCK with ycck) */
    int quality, progressive, optimize, restart_mcus, restart_rows;
    int h0, v0; /* sampling of the first component */
    int rgb, ycck, noise;
} variant;

/* make_jpeg inverts the pixel at (w/2, h/2) while this is set. */
static int poke_centre;

/* Photo-like test content: gradients, discs, stripes, some texture. */
static uint8_t sample_at(int x, int y, int c, int w, int h, int noise)
{
    int v = (x * 255) / (w > 1 ? w : 1) / 2 + (y * 255) / (h > 1 ? h : 1) / 3;
    int dx = x - w / 3, dy = y - h / 2;
    if (dx * dx + dy * dy < (w * w + h * h) / 40)
        v = 220 - c * 40;
    if ((x / 16 + y / 24) % 5 == 0)
        v += 50;
    if (x > w / 2 && y > h / 2)
        v = ((x ^ y) & 8) ? 30 + c * 20 : 200;
    if (noise)
        v += (int)(((uint32_t)(x * 2654435761u) ^ (uint32_t)(y * 40503u + c * 977u)) % 61) - 30;
    return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
}

static int make_jpeg(const variant *v, membuf *m)
{
    struct jpeg_compress_struct c;
    terr e;
    unsigned char *out = NULL;
    unsigned long outlen = 0;
    uint8_t *row = malloc((size_t)v->w * v->comps);
    c.err = jpeg_std_error(&e.pub);
    e.pub.error_exit = t_error;
    e.pub.output_message = t_message;
    jpeg_create_compress(&c);
    if (setjmp(e.jb)) {
        jpeg_destroy_compress(&c);
        free(row);
        return -1;
    }
    jpeg_mem_dest(&c, &out, &outlen);
    c.image_width = (JDIMENSION)v->w;
    c.image_height = (JDIMENSION)v->h;
    c.input_components = v->comps;
    c.in_color_space = v->comps == 1 ? JCS_GRAYSCALE : v->comps == 3 ? JCS_RGB : JCS_CMYK;
    jpeg_set_defaults(&c);
    if (v->rgb)
        jpeg_set_colorspace(&c, JCS_RGB);
    if (v->ycck)
        jpeg_set_colorspace(&c, JCS_YCCK);
    jpeg_set_quality(&c, v->quality, TRUE);
    if (v->h0) {
        c.comp_info[0].h_samp_factor = v->h0;
        c.comp_info[0].v_samp_factor = v->v0;
        for (int i = 1; i < c.num_components; i++)
            c.comp_info[i].h_samp_factor = c.comp_info[i].v_samp_factor = 1;
    }
    c.optimize_coding = v->optimize ? TRUE : FALSE;
    if (v->progressive)
        jpeg_simple_progression(&c);
    c.restart_interval = (unsigned)v->restart_mcus;
    c.restart_in_rows = v->restart_rows;
    jpeg_start_compress(&c, TRUE);
    while (c.next_scanline < c.image_height) {
        int y = (int)c.next_scanline;
        for (int x = 0; x < v->w; x++)
            for (int k = 0; k < v->comps; k++)
                row[(size_t)x * v->comps + k] =
                    (uint8_t)((poke_centre && x == v->w / 2 && y == v->h / 2 ? 255 : 0) ^
                              sample_at(x, y, k, v->w, v->h, v->noise));
        JSAMPROW rp = row;
        jpeg_write_scanlines(&c, &rp, 1);
    }
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
    free(row);
    memset(m, 0, sizeof *m);
    mb_put(m, out, outlen);
    free(out);
    return 0;
}

static void test_variants(void)
{
    static const variant vs[] = {
        {"420 q75", 256, 192, 3, 75, 0, 0, 0, 0, 2, 2, 0, 0, 0},
        {"444 q95", 200, 120, 3, 95, 0, 0, 0, 0, 1, 1, 0, 0, 0},
        {"422 q50", 208, 96, 3, 50, 0, 0, 0, 0, 2, 1, 0, 0, 0},
        {"440 q85", 120, 208, 3, 85, 0, 0, 0, 0, 1, 2, 0, 0, 0},
        {"411 q80", 256, 64, 3, 80, 0, 0, 0, 0, 4, 1, 0, 0, 0},
        {"420 optimized", 256, 192, 3, 80, 0, 1, 0, 0, 2, 2, 0, 0, 0},
        {"420 progressive", 256, 192, 3, 85, 1, 1, 0, 0, 2, 2, 0, 0, 0},
        {"444 progressive", 160, 160, 3, 90, 1, 1, 0, 0, 1, 1, 0, 0, 0},
        {"422 progressive noisy", 240, 136, 3, 92, 1, 1, 0, 0, 2, 1, 0, 0, 1},
        {"restart every MCU", 256, 192, 3, 75, 0, 0, 1, 0, 2, 2, 0, 0, 0},
        {"restart every 7 MCUs", 200, 150, 3, 75, 0, 1, 7, 0, 2, 2, 0, 0, 0},
        {"restart every row", 256, 192, 3, 75, 0, 0, 0, 1, 2, 2, 0, 0, 0},
        {"progressive restart 5", 256, 192, 3, 80, 1, 1, 5, 0, 2, 2, 0, 0, 1},
        {"gray", 256, 192, 1, 75, 0, 0, 0, 0, 0, 0, 0, 0, 0},
        {"gray progressive", 255, 193, 1, 90, 1, 1, 0, 0, 0, 0, 0, 0, 1},
        {"cmyk", 128, 96, 4, 80, 0, 0, 0, 0, 0, 0, 0, 0, 0},
        {"ycck progressive", 128, 96, 4, 80, 1, 1, 0, 0, 2, 2, 0, 1, 0},
        {"rgb adobe", 128, 96, 3, 85, 0, 0, 0, 0, 0, 0, 1, 0, 0},
        {"q100 noisy 444", 96, 96, 3, 100, 0, 1, 0, 0, 1, 1, 0, 0, 1},
        {"q100 noisy progressive", 96, 96, 3, 100, 1, 1, 0, 0, 2, 2, 0, 0, 1},
        {"q5", 256, 192, 3, 5, 0, 0, 0, 0, 2, 2, 0, 0, 0},
        {"1x1", 1, 1, 3, 75, 0, 0, 0, 0, 2, 2, 0, 0, 0},
        {"1x1 gray progressive", 1, 1, 1, 75, 1, 1, 0, 0, 0, 0, 0, 0, 0},
        {"4001x3", 4001, 3, 3, 75, 0, 0, 0, 0, 2, 2, 0, 0, 1},
        {"3x4001 progressive", 3, 4001, 3, 75, 1, 1, 0, 0, 2, 2, 0, 0, 1},
        {"17x33 422 restart", 17, 33, 3, 75, 0, 0, 2, 0, 2, 1, 0, 0, 0},
        {"65x67 420 progressive", 65, 67, 3, 75, 1, 1, 0, 0, 2, 2, 0, 0, 1},
    };
    /* Synthetic images of 64..256 pixels made of flat 8x8-aligned areas give SSIM
     * values spread around 0.06 (0.0 .. 0.12 over runs); photos stay below 0.1. */
    stats st;
    memset(&st, 0, sizeof st);
    st.ssim_max = 0.2;
    int bad = 0, declined = 0;
    for (size_t i = 0; i < sizeof vs / sizeof *vs; i++) {
        membuf m;
        if (make_jpeg(&vs[i], &m) != 0) {
            ok(0, "libjpeg wrote variant %s", vs[i].name);
            continue;
        }
        const char *why = NULL;
        int r = check_one(vs[i].name, m.p, m.len, &st, &why);
        if (r < 0)
            bad++;
        if (r == 0) {
            declined++;
            tap_diag("declined variant %s: %s", vs[i].name, why);
        }
        free(m.p);
    }
    int nr = st.nratios;
    double med = median(st.ratios, nr);
    tap_diag("variants: %d stored, size ratio median %.3f (min %.3f, max %.3f); noise checked "
             "on %d: worst SSIM %.4f, worst AC-energy r %.4f",
             st.stored, med, nr ? st.ratios[0] : 0, nr ? st.ratios[nr - 1] : 0, st.noise_checked,
             st.worst_ssim, st.worst_corr);
    ok(bad == 0 && declined == 0, "libjpeg variants: all %zu stored, exact, noise thresholds met",
       sizeof vs / sizeof *vs);
    ok(st.noise_checked >= 15, "noise thresholds checked on %d variants", st.noise_checked);
}

/* Noise thresholds over many keys: every generated variant of at least 64x64 pixels,
 * NOISE_KEYS fresh per-file keys each.  Asserted: the worst |r| below 0.1, each
 * variant's mean SSIM below 0.1 (measured 0.02 - 0.07), and every single key's SSIM
 * below NOISE_SSIM_MAX: the worst of the 340 keys, on the smallest and flattest images
 * (128x96 RGB without colour transform, 64x64 4:2:0, q100), measures 0.11 - 0.16 from
 * run to run, above the 0.1 aimed at. */
#define NOISE_KEYS 20
#define NOISE_SSIM_MAX 0.1
static void test_noise_keys(void)
{
    static const variant vs[] = {
        {"420 q75", 256, 192, 3, 75, 0, 0, 0, 0, 2, 2, 0, 0, 0},
        {"444 q95", 200, 120, 3, 95, 0, 0, 0, 0, 1, 1, 0, 0, 0},
        {"422 q50", 208, 96, 3, 50, 0, 0, 0, 0, 2, 1, 0, 0, 0},
        {"440 q85", 120, 208, 3, 85, 0, 0, 0, 0, 1, 2, 0, 0, 0},
        {"411 q80", 256, 64, 3, 80, 0, 0, 0, 0, 4, 1, 0, 0, 0},
        {"420 progressive", 256, 192, 3, 85, 1, 1, 0, 0, 2, 2, 0, 0, 0},
        {"444 progressive", 160, 160, 3, 90, 1, 1, 0, 0, 1, 1, 0, 0, 0},
        {"422 progressive noisy", 240, 136, 3, 92, 1, 1, 0, 0, 2, 1, 0, 0, 1},
        {"gray", 256, 192, 1, 75, 0, 0, 0, 0, 0, 0, 0, 0, 0},
        {"gray progressive", 255, 193, 1, 90, 1, 1, 0, 0, 0, 0, 0, 0, 1},
        {"cmyk", 128, 96, 4, 80, 0, 0, 0, 0, 0, 0, 0, 0, 0},
        {"rgb adobe", 128, 96, 3, 85, 0, 0, 0, 0, 0, 0, 1, 0, 0},
        {"q100 noisy 444", 96, 96, 3, 100, 0, 1, 0, 0, 1, 1, 0, 0, 1},
        {"q5", 256, 192, 3, 5, 0, 0, 0, 0, 2, 2, 0, 0, 0},
        {"64x64 420", 64, 64, 3, 75, 0, 0, 0, 0, 2, 2, 0, 0, 0},
        {"64x64 gray", 64, 64, 1, 85, 0, 0, 0, 0, 0, 0, 0, 0, 0},
        {"65x67 420 progressive", 65, 67, 3, 75, 1, 1, 0, 0, 2, 2, 0, 0, 1},
    };
    int bad = 0, checked = 0;
    double worst_s = 0, worst_r = 0, worst_mean = 0;
    for (size_t i = 0; i < sizeof vs / sizeof *vs; i++) {
        membuf m;
        if (make_jpeg(&vs[i], &m) != 0)
            continue;
        stats st;
        memset(&st, 0, sizeof st);
        st.ssim_max = NOISE_SSIM_MAX;
        double sum = 0;
        for (int k = 0; k < NOISE_KEYS; k++) {
            const char *why = NULL;
            double ws = st.worst_ssim;
            st.worst_ssim = 0;
            if (check_one(vs[i].name, m.p, m.len, &st, &why) < 0)
                bad++;
            sum += st.worst_ssim;
            if (fabs(ws) > fabs(st.worst_ssim))
                st.worst_ssim = ws;
        }
        tap_diag("noise %-22s %d keys: SSIM mean %.4f worst %.4f, worst |r| %.4f", vs[i].name,
                 NOISE_KEYS, sum / NOISE_KEYS, st.worst_ssim, fabs(st.worst_corr));
        if (sum / NOISE_KEYS > worst_mean)
            worst_mean = sum / NOISE_KEYS;
        checked += st.noise_checked;
        if (fabs(st.worst_ssim) > fabs(worst_s))
            worst_s = st.worst_ssim;
        if (fabs(st.worst_corr) > fabs(worst_r))
            worst_r = st.worst_corr;
        free(m.p);
    }
    ok(bad == 0 && checked >= 15 * NOISE_KEYS,
       "noise over %d keys per variant (%d checks): worst SSIM %.4f < %.2f, worst |r| %.4f < 0.1",
       NOISE_KEYS, checked, worst_s, NOISE_SSIM_MAX, fabs(worst_r));
    ok(checked > 0 && worst_mean < 0.1, "mean SSIM over %d keys below 0.1 for every variant (%.4f)",
       NOISE_KEYS, worst_mean);
}

/* Inserts raw segments right after SOI, and appends tail after EOI. */
static void with_segments(const membuf *src, const uint8_t *segs, size_t sl, const uint8_t *tail,
                          size_t tl, membuf *out)
{
    memset(out, 0, sizeof *out);
    mb_put(out, src->p, 2);
    mb_put(out, segs, sl);
    mb_put(out, src->p + 2, src->len - 2);
    mb_put(out, tail, tl);
}

static void put_segment(membuf *m, int marker, const void *data, size_t n)
{
    uint8_t h[4] = {0xFF, (uint8_t)marker, (uint8_t)((n + 2) >> 8), (uint8_t)(n + 2)};
    mb_put(m, h, 4);
    mb_put(m, data, n);
}

static void test_metadata(void)
{
    variant v = {"meta", 200, 150, 3, 80, 0, 0, 0, 0, 2, 2, 0, 0, 0};
    membuf base, thumb, segs = {0}, tail = {0}, f;
    variant tv = {"thumb", 64, 48, 3, 60, 0, 0, 0, 0, 2, 2, 0, 0, 0};
    if (make_jpeg(&v, &base) != 0 || make_jpeg(&tv, &thumb) != 0) {
        ok(0, "libjpeg wrote the metadata base images");
        return;
    }
    /* Exif with a serial number and a thumbnail, XMP, ICC, Photoshop IPTC, COM, in an
     * unusual order, before the JFIF segment. */
    membuf exif = {0};
    mb_put(&exif, "Exif\0\0MM\0\x2a\0\0\0\x08SERIAL-PXC-7734951 GPS 48.8584N 2.2945E ", 48);
    mb_put(&exif, thumb.p, thumb.len);
    put_segment(&segs, 0xE1, exif.p, exif.len);
    const char xmp[] = "http://ns.adobe.com/xap/1.0/\0<x:xmpmeta>CreatorSecretName "
                       "Jane Q. Photographer</x:xmpmeta>";
    put_segment(&segs, 0xE1, xmp, sizeof xmp);
    const char icc[] = "ICC_PROFILE\0\x01\x01 secret colour profile of camera PXC-9000";
    put_segment(&segs, 0xE2, icc, sizeof icc);
    const char iptc[] = "Photoshop 3.0\08BIM\x04\x04 caption: private party at home";
    put_segment(&segs, 0xED, iptc, sizeof iptc);
    const char com[] = "a secret comment that must not be readable at rest";
    put_segment(&segs, 0xFE, com, sizeof com);
    /* MPF-like: a second full JPEG after EOI, then stray bytes. */
    mb_put(&tail, thumb.p, thumb.len);
    mb_put(&tail, "trailing bytes after the last EOI", 33);
    with_segments(&base, segs.p, segs.len, tail.p, tail.len, &f);
    uint8_t *sf = NULL, *back = NULL;
    size_t sl = 0, bl = 0;
    pxc_file_secrets s;
    pxc_secrets_fresh(&s);
    const char *why = NULL;
    int rc = jpeg_codec_encode(f.p, f.len, keys, &s, &sf, &sl, &why);
    ok(rc == 0, "Exif+XMP+ICC+IPTC+COM before JFIF, MPF-like tail: stored (%s)", rc ? why : "ok");
    if (rc == 0) {
        ok(jpeg_codec_decode(sf, sl, keys, &back, &bl) == 0 && bl == f.len &&
               memcmp(back, f.p, bl) == 0,
           "metadata file round-trips exactly");
        ok(!memmem(sf, sl, "SERIAL-PXC", 10) && !memmem(sf, sl, "CreatorSecret", 13) &&
               !memmem(sf, sl, "secret colour", 13) && !memmem(sf, sl, "private party", 13) &&
               !memmem(sf, sl, "secret comment", 14) && !memmem(sf, sl, "trailing bytes", 14) &&
               !memmem(sf, sl, "Exif\0\0", 6) && !memmem(sf, sl, "ICC_PROFILE", 11) &&
               !memmem(sf, sl, "http://ns.adobe.com", 19) && !memmem(sf, sl, thumb.p + 2, 64),
           "no metadata string or thumbnail readable in the stored file");
        free(back);
        back = NULL;
    }
    free(sf);
    sf = NULL;
    /* A record over 64 KiB: several APP segments of incompressible data. */
    membuf big = {0}, f2;
    uint8_t chunk[60000];
    for (int k = 0; k < 4; k++) {
        randombytes_buf(chunk, sizeof chunk);
        memcpy(chunk, "PXCBIGAPP", 9);
        put_segment(&big, 0xE3 + k, chunk, sizeof chunk);
    }
    with_segments(&base, big.p, big.len, NULL, 0, &f2);
    rc = jpeg_codec_encode(f2.p, f2.len, keys, &s, &sf, &sl, &why);
    ok(rc == 0, "240 KB of APPn segments: stored (%s)", rc ? why : "ok");
    if (rc == 0) {
        ok(jpeg_codec_decode(sf, sl, keys, &back, &bl) == 0 && bl == f2.len &&
               memcmp(back, f2.p, bl) == 0 && !memmem(sf, sl, "PXCBIGAPP", 9),
           "record split over several segments round-trips, sealed");
        image im;
        ok(decode_luma(sf, sl, &im) == 0 && im.w == 200 && im.h == 150,
           "stored file with a split record decodes with libjpeg");
        free(im.px);
        char path[600];
        snprintf(path, sizeof path, "%s/bigrecord.jpg", tmpdir);
        write_file(path, sf, sl);
    }
    free(sf);
    free(back);
    free(f2.p);
    free(big.p);
    free(f.p);
    free(exif.p);
    free(segs.p);
    free(tail.p);
    free(base.p);
    free(thumb.p);
}

/* ---- external tools ------------------------------------------------------------------ */

static int run(const char *cmd)
{
    return system(cmd);
}

static void test_tools(void)
{
    char cmd[4096], src[600], ppm[600];
    variant v = {"src", 240, 160, 3, 85, 0, 0, 0, 0, 2, 2, 0, 0, 1};
    membuf m;
    if (make_jpeg(&v, &m) != 0)
        return;
    snprintf(src, sizeof src, "%s/src.jpg", tmpdir);
    snprintf(ppm, sizeof ppm, "%s/src.ppm", tmpdir);
    write_file(src, m.p, m.len);
    free(m.p);
    struct {
        const char *tool, *args, *input;
    } jobs[] = {
        {"jpegtran", "-progressive -copy all", "src"},
        {"jpegtran", "-restart 1 -copy all", "src"},
        {"jpegtran", "-optimize -restart 3B -copy all", "src"},
        {"jpegtran", "-progressive -restart 2 -copy all", "src"},
        {"jpegtran", "-grayscale -progressive", "src"},
        {"jpegtran", "-rotate 90 -trim -copy all", "src"},
        {"jpegtran", "-copy all -arithmetic", "src"},
        {"cjpeg", "-quality 90 -sample 1x1", "ppm"},
        {"cjpeg", "-quality 70 -sample 2x1 -optimize", "ppm"},
        {"cjpeg", "-progressive -restart 4", "ppm"},
        {"cjpeg", "-grayscale -progressive", "ppm"},
        {"cjpeg", "-quality 95 -dct float -baseline", "ppm"},
        {"cjpeg", "-arithmetic", "ppm"},
    };
    if (!have_tool("jpegtran") || !have_tool("cjpeg") || !have_tool("djpeg")) {
        printf("ok %d # SKIP libjpeg-turbo-progs not installed\n", ++tap_count);
        return;
    }
    snprintf(cmd, sizeof cmd, "djpeg -pnm %s > %s", src, ppm);
    if (run(cmd) != 0) {
        ok(0, "djpeg wrote a PPM");
        return;
    }
    int stored = 0, bad = 0, arith_declined = 0;
    for (size_t i = 0; i < sizeof jobs / sizeof *jobs; i++) {
        char out[700];
        snprintf(out, sizeof out, "%s/tool%zu.jpg", tmpdir, i);
        snprintf(cmd, sizeof cmd, "%s %s %s > %s 2>/dev/null", jobs[i].tool, jobs[i].args,
                 strcmp(jobs[i].input, "src") == 0 ? src : ppm, out);
        if (run(cmd) != 0)
            continue;
        size_t n = 0;
        uint8_t *p = read_file(out, &n);
        char label[300];
        snprintf(label, sizeof label, "%s %s", jobs[i].tool, jobs[i].args);
        const char *why = NULL;
        int r = p ? check_one(label, p, n, NULL, &why) : -1;
        if (r == 1) {
            stored++;
            /* the stored file must decode with djpeg too */
            uint8_t *sf = NULL;
            size_t sl = 0;
            pxc_file_secrets s;
            pxc_secrets_fresh(&s);
            if (jpeg_codec_encode(p, n, keys, &s, &sf, &sl, &why) == 0) {
                char sp[700];
                snprintf(sp, sizeof sp, "%s/stored%zu.jpg", tmpdir, i);
                write_file(sp, sf, sl);
                snprintf(cmd, sizeof cmd, "djpeg %s > /dev/null 2>&1", sp);
                if (run(cmd) != 0) {
                    tap_diag("djpeg cannot decode the stored form of %s", label);
                    bad++;
                }
                free(sf);
            }
        } else if (r == 0 && strstr(jobs[i].args, "arithmetic")) {
            arith_declined++;
        } else {
            tap_diag("%s: %s", label, r == 0 ? why : "bad");
            bad++;
        }
        free(p);
    }
    ok(bad == 0 && stored == 11 && arith_declined == 2,
       "cjpeg/jpegtran variants: %d stored exactly (djpeg decodes them), %d arithmetic declined",
       stored, arith_declined);
}

static void test_exiftool(void)
{
    if (!have_tool("exiftool") || !find_corpus()) {
        printf("ok %d # SKIP exiftool or corpus missing\n", ++tap_count);
        return;
    }
    static const char *const files[] = {"Canon.jpg", "Nikon.jpg", "GPS.jpg",  "Sony.jpg",
                                        "XMP.jpg",   "IPTC.jpg",  "Apple.jpg"};
    int checked = 0, bad = 0;
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        char path[1200], sp[700], cmd[2000];
        snprintf(path, sizeof path, "%s/jpeg/exiftool/%s", corpus, files[i]);
        size_t n = 0;
        uint8_t *p = read_file(path, &n), *sf = NULL;
        size_t sl = 0;
        if (!p)
            continue;
        pxc_file_secrets s;
        pxc_secrets_fresh(&s);
        const char *why;
        if (jpeg_codec_encode(p, n, keys, &s, &sf, &sl, &why) == 0) {
            snprintf(sp, sizeof sp, "%s/exif%zu.jpg", tmpdir, i);
            write_file(sp, sf, sl);
            /* tags of the original that a stored file must not show */
            snprintf(cmd, sizeof cmd,
                     "exiftool -q -q -s -s -s -Make -Model -SerialNumber -GPSLatitude "
                     "-GPSPosition -ThumbnailImage -PreviewImage -Software -DateTimeOriginal "
                     "-Artist -Copyright -Creator -Title -Description -Keywords -Caption-Abstract "
                     "-ProfileDescription -Comment -XMPToolkit %s | grep -q .",
                     sp);
            checked++;
            if (run(cmd) == 0) {
                tap_diag("exiftool shows original tags in the stored form of %s", files[i]);
                bad++;
            }
            free(sf);
        }
        free(p);
    }
    ok(checked > 0 && bad == 0, "exiftool shows none of the original tags (%d files)", checked);
}

/* ---- tamper, malformed input, limits -------------------------------------------------- */

static void test_tamper(void)
{
    variant v = {"tamper", 96, 80, 3, 80, 1, 1, 0, 0, 2, 2, 0, 0, 1};
    membuf m;
    if (make_jpeg(&v, &m) != 0)
        return;
    uint8_t *sf = NULL, *back = NULL;
    size_t sl = 0, bl = 0;
    pxc_file_secrets s;
    pxc_secrets_fresh(&s);
    const char *why;
    if (jpeg_codec_encode(m.p, m.len, keys, &s, &sf, &sl, &why) != 0) {
        ok(0, "tamper base stored");
        return;
    }
    int flips = 0, caught = 0;
    for (int i = 0; i < 200; i++) {
        size_t pos = i < 40 ? (size_t)i * 4 : randombytes_uniform((uint32_t)sl);
        uint8_t x = (uint8_t)(1 + randombytes_uniform(255));
        sf[pos] ^= x;
        flips++;
        int rc = jpeg_codec_decode(sf, sl, keys, &back, &bl);
        if (rc == -EBADMSG && !back)
            caught++;
        else
            tap_diag("flip at %zu: rc %d", pos, rc);
        free(back);
        back = NULL;
        sf[pos] ^= x;
    }
    ok(caught == flips, "single-byte flips: %d of %d rejected with -EBADMSG", caught, flips);
    int cuts = 0, cut_caught = 0;
    for (size_t len = 0; len < sl; len += 1 + sl / 60) {
        cuts++;
        if (jpeg_codec_decode(sf, len, keys, &back, &bl) == -EBADMSG)
            cut_caught++;
        free(back);
        back = NULL;
    }
    ok(cuts == cut_caught, "truncations: %d of %d rejected with -EBADMSG", cut_caught, cuts);
    /* another volume's keys */
    uint8_t other[PXC_KEY_BYTES];
    randombytes_buf(other, sizeof other);
    pxc_keys *k2 = pxc_keys_new(other);
    ok(jpeg_codec_decode(sf, sl, k2, &back, &bl) == -EBADMSG, "another volume's key: -EBADMSG");
    pxc_keys_free(k2);
    /* scan data swapped in from another stored version of the same file */
    uint8_t *sf2 = NULL;
    size_t sl2 = 0;
    pxc_file_secrets s2;
    pxc_secrets_fresh(&s2);
    if (jpeg_codec_encode(m.p, m.len, keys, &s2, &sf2, &sl2, &why) == 0 && sl2 > 200 && sl > 200) {
        membuf mix = {0};
        mb_put(&mix, sf, sl - 100);
        mb_put(&mix, sf2 + sl2 - 100, 100);
        ok(jpeg_codec_decode(mix.p, mix.len, keys, &back, &bl) == -EBADMSG,
           "tail swapped in from another stored file: -EBADMSG");
        free(mix.p);
    }
    jpeg_peek_info pi;
    ok(jpeg_codec_peek(sf, JPEG_PEEK_BYTES - 1, &pi) == -ENODATA &&
           jpeg_codec_peek(m.p, m.len, &pi) == -EINVAL && jpeg_codec_peek(sf, sl, &pi) == 0 &&
           pi.plain_size == m.len && memcmp(pi.file_id, s.file_id, PXC_FILE_ID_BYTES) == 0,
       "peek: plaintext size and file id from the first %d bytes", JPEG_PEEK_BYTES);
    pxc_file_secrets o;
    ok(jpeg_codec_open_secrets(&pi, keys, &o) == 0 && memcmp(o.seed, s.seed, PXC_SEED_BYTES) == 0,
       "open_secrets gives back the per-file secrets");
    ok(pxc_stored_kind(sf + JPEG_HEADER_OFFSET, 16) == PXC_KIND_JPEG,
       "header identifies kind PXC_KIND_JPEG");
    free(sf2);
    free(sf);
    free(m.p);
}

static void test_malformed(void)
{
    uint8_t *sf = NULL;
    size_t sl = 0;
    pxc_file_secrets s;
    pxc_secrets_fresh(&s);
    const char *why = NULL;
    uint8_t garbage[4096];
    randombytes_buf(garbage, sizeof garbage);
    ok(jpeg_codec_encode(garbage, sizeof garbage, keys, &s, &sf, &sl, &why) == -EINVAL && !sf,
       "garbage named .jpg: -EINVAL (%s)", why);
    ok(jpeg_codec_encode(garbage, 0, keys, &s, &sf, &sl, &why) == -EINVAL, "empty input: -EINVAL");
    /* a JPEG claiming 65535x65535 with a few bytes of data */
    variant v = {"bomb", 16, 16, 3, 75, 0, 0, 0, 0, 2, 2, 0, 0, 0};
    membuf m;
    make_jpeg(&v, &m);
    for (size_t i = 2; i + 9 < m.len; i++)
        if (m.p[i] == 0xFF && m.p[i + 1] == 0xC0) {
            m.p[i + 5] = m.p[i + 6] = m.p[i + 7] = m.p[i + 8] = 0xFF;
            break;
        }
    double t0 = now();
    int rc = jpeg_codec_encode(m.p, m.len, keys, &s, &sf, &sl, &why);
    ok(rc == -EFBIG && now() - t0 < 0.5, "65535x65535 bomb declined at once: %d (%s)", rc, why);
    free(m.p);
    /* a bomb within the block limit: 4000x4000 claimed, 600 bytes of scan */
    make_jpeg(&v, &m);
    for (size_t i = 2; i + 9 < m.len; i++)
        if (m.p[i] == 0xFF && m.p[i + 1] == 0xC0) {
            m.p[i + 5] = m.p[i + 7] = 0x0F;
            m.p[i + 6] = m.p[i + 8] = 0xA0;
            break;
        }
    rc = jpeg_codec_encode(m.p, m.len, keys, &s, &sf, &sl, &why);
    ok(rc == -EFBIG, "4000x4000 claimed with a tiny scan: -EFBIG (%s)", why);
    free(m.p);
    /* truncations of a valid file are declined, never crash */
    variant v2 = {"trunc", 64, 48, 3, 75, 1, 1, 0, 0, 2, 2, 0, 0, 1};
    make_jpeg(&v2, &m);
    int declined = 0, cuts = 0;
    for (size_t len = 0; len < m.len; len += 7) {
        cuts++;
        if (jpeg_codec_encode(m.p, len, keys, &s, &sf, &sl, &why) != 0)
            declined++;
        free(sf);
        sf = NULL;
    }
    ok(declined == cuts, "truncated JPEGs (%d cuts) declined", cuts);
    free(m.p);
}

/* Random mutations of valid files: never a crash; whatever is stored round-trips. */
static void test_mutations(void)
{
    variant vs[] = {
        {"m1", 48, 40, 3, 75, 0, 0, 3, 0, 2, 2, 0, 0, 1},
        {"m2", 40, 48, 3, 85, 1, 1, 0, 0, 2, 1, 0, 0, 1},
        {"m3", 33, 17, 1, 90, 1, 1, 2, 0, 0, 0, 0, 0, 1},
    };
    int runs = 0, stored = 0, bad = 0;
    for (size_t k = 0; k < sizeof vs / sizeof *vs; k++) {
        membuf m;
        if (make_jpeg(&vs[k], &m) != 0)
            continue;
        uint8_t *mut = malloc(m.len + 16);
        for (int i = 0; i < 300; i++) {
            size_t n = m.len;
            memcpy(mut, m.p, n);
            int nmut = 1 + (int)randombytes_uniform(4);
            for (int j = 0; j < nmut; j++) {
                uint32_t what = randombytes_uniform(10);
                size_t pos = randombytes_uniform((uint32_t)n);
                if (what < 6)
                    mut[pos] = (uint8_t)randombytes_uniform(256);
                else if (what < 8)
                    mut[pos] ^= (uint8_t)(1u << randombytes_uniform(8));
                else if (what == 8)
                    mut[pos] = 0xFF;
                else
                    n = pos + 1;
            }
            uint8_t *sf = NULL, *back = NULL;
            size_t sl = 0, bl = 0;
            pxc_file_secrets s;
            pxc_secrets_fresh(&s);
            const char *why;
            runs++;
            if (jpeg_codec_encode(mut, n, keys, &s, &sf, &sl, &why) == 0) {
                stored++;
                if (jpeg_codec_decode(sf, sl, keys, &back, &bl) != 0 || bl != n ||
                    memcmp(back, mut, n) != 0)
                    bad++;
            }
            free(sf);
            free(back);
        }
        free(mut);
        free(m.p);
    }
    ok(bad == 0, "mutation loop: %d mutated files, %d stored, all exact", runs, stored);
}

/* ---- known answer -------------------------------------------------------------------- */

/* The cipher image (everything after the pixcrypt segments) of generated JPEGs under a
 * fixed master key and fixed file secrets: it depends only on them, the input and
 * libjpeg-turbo's encoder, so a change in the coefficient cipher shows here. */
static void test_known_answer(void)
{
    static const struct {
        variant v;
        const char *hash;
    } kats[] = {
        {{"kat baseline 4:2:0", 160, 120, 3, 85, 0, 0, 0, 0, 2, 2, 0, 0, 1},
         "6a0c96df853dce2e100e6761311b2992bf58231b43c740ff26a13092d4c8c05a"},
        {{"kat progressive gray", 97, 61, 1, 92, 1, 1, 0, 0, 0, 0, 0, 0, 1},
         "e608ba6681e21c29cb09c140cb6569e65122d0161938acf19941074cd0271384"},
        /* over JPG_PERM_SEARCH_MAX blocks: no permutation search */
        {{"kat large gray", 2100, 2100, 1, 75, 0, 0, 0, 0, 0, 0, 0, 0, 1},
         "d8a5d7e8de332acf2c6653a6b68757217601f5c7194f72c9661409fbf4467763"},
        /* three components of over JPG_PERM_SEARCH_MAX blocks each: ciphered on two
         * threads, luma textured, chroma not */
        {{"kat large 4:4:4", 2048, 2104, 3, 90, 0, 0, 0, 0, 1, 1, 0, 0, 1},
         "ce6e03fb762c13e9a33c1056b66c5db5a594b0c6f8656b79b77cbd50f78d9f2a"},
    };
    uint8_t master[PXC_KEY_BYTES];
    for (size_t i = 0; i < sizeof master; i++)
        master[i] = (uint8_t)i;
    pxc_keys *k = pxc_keys_new(master);
    pxc_file_secrets s;
    memset(&s, 0, sizeof s);
    memset(s.file_id, 0x11, sizeof s.file_id);
    memset(s.seed, 0x22, sizeof s.seed);
    for (size_t t = 0; t < sizeof kats / sizeof *kats; t++) {
        membuf m;
        uint8_t *sf = NULL, h[32];
        size_t sl = 0, at = 2;
        char hex[65];
        if (make_jpeg(&kats[t].v, &m) != 0 ||
            jpeg_codec_encode(m.p, m.len, k, &s, &sf, &sl, NULL)) {
            ok(0, "%s: encoded", kats[t].v.name);
            free(m.p);
            continue;
        }
        while (at + 4 <= sl && sf[at] == 0xFF && sf[at + 1] == 0xEF)
            at += 2 + ((size_t)sf[at + 2] << 8 | sf[at + 3]);
        crypto_generichash(h, sizeof h, sf + at, sl - at, NULL, 0);
        sodium_bin2hex(hex, sizeof hex, h, sizeof h);
        ok(strcmp(hex, kats[t].hash) == 0, "%s: cipher image BLAKE2b %s", kats[t].v.name, hex);
        free(sf);
        free(m.p);
    }
    pxc_keys_free(k);
}

/* Stored files written by an earlier version, under the known-answer master key: they
 * must still decode to the same bytes (BLAKE2b-256 of the plaintext), so that a change
 * in the decipher, the record or the container cannot go unnoticed.  With
 * PXC_JPEG_KAT_PRINT set, prints tests/unit/jpeg_stored_kat.h (without its comment)
 * from the variants below under the same key and secrets as test_known_answer: to
 * extend it, never to regenerate the existing entries. */
static const variant stored_kat_variants[] = {
    {"stored kat 4:2:0 restarts", 64, 48, 3, 80, 0, 0, 2, 0, 2, 2, 0, 0, 1},
    {"stored kat progressive gray", 40, 24, 1, 90, 1, 1, 0, 0, 0, 0, 0, 0, 1},
};

typedef struct stored_kat {
    const char *name, *plain_hash;
    size_t plain_len, stored_len;
    const uint8_t *stored;
} stored_kat;

#include "tests/unit/jpeg_stored_kat.h"

static void print_stored_kat(pxc_keys *k, const pxc_file_secrets *s)
{
    size_t nv = sizeof stored_kat_variants / sizeof *stored_kat_variants;
    char hex[nv][65];
    size_t len[nv], slen[nv];
    for (size_t t = 0; t < nv; t++) {
        membuf m;
        uint8_t *sf = NULL, h[32];
        size_t sl = 0;
        if (make_jpeg(&stored_kat_variants[t], &m) != 0 ||
            jpeg_codec_encode(m.p, m.len, k, s, &sf, &sl, NULL) != 0)
            abort();
        crypto_generichash(h, sizeof h, m.p, m.len, NULL, 0);
        sodium_bin2hex(hex[t], sizeof hex[t], h, sizeof h);
        len[t] = m.len;
        slen[t] = sl;
        printf("static const uint8_t stored_kat_%zu[] = {", t);
        for (size_t i = 0; i < sl; i++)
            printf("%s%u,", i % 24 ? "" : "\n", sf[i]);
        printf("};\n\n");
        free(sf);
        free(m.p);
    }
    printf("static const stored_kat stored_kats[] = {\n");
    for (size_t t = 0; t < nv; t++)
        printf("{\"%s\", \"%s\", %zu, %zu, stored_kat_%zu},\n", stored_kat_variants[t].name, hex[t],
               len[t], slen[t], t);
    printf("};\n");
}

static void test_stored_known_answer(void)
{
    uint8_t master[PXC_KEY_BYTES];
    for (size_t i = 0; i < sizeof master; i++)
        master[i] = (uint8_t)i;
    pxc_keys *k = pxc_keys_new(master);
    if (getenv("PXC_JPEG_KAT_PRINT")) {
        pxc_file_secrets s;
        memset(&s, 0, sizeof s);
        memset(s.file_id, 0x11, sizeof s.file_id);
        memset(s.seed, 0x22, sizeof s.seed);
        print_stored_kat(k, &s);
    }
    for (size_t t = 0; t < sizeof stored_kats / sizeof *stored_kats; t++) {
        const stored_kat *kt = &stored_kats[t];
        uint8_t *plain = NULL, h[32];
        size_t pl = 0;
        char hex[65] = "";
        int rc = jpeg_codec_decode(kt->stored, kt->stored_len, k, &plain, &pl);
        if (rc == 0) {
            crypto_generichash(h, sizeof h, plain, pl, NULL, 0);
            sodium_bin2hex(hex, sizeof hex, h, sizeof h);
        }
        ok(rc == 0 && pl == kt->plain_len && strcmp(hex, kt->plain_hash) == 0,
           "%s: decodes to BLAKE2b %s", kt->name, hex);
        free(plain);
    }
    pxc_keys_free(k);
}

/* The neural key vector (of the luma DC view) sealed in a stored JPEG. */
static int stored_nnvec(const pxc_keys *k, const membuf *m, uint8_t vec[PXC_NNVEC_BYTES])
{
    pxc_file_secrets s, got;
    jpeg_peek_info info;
    uint8_t *sf = NULL;
    size_t sl = 0;
    pxc_secrets_fresh(&s);
    int rc = jpeg_codec_encode(m->p, m->len, k, &s, &sf, &sl, NULL);
    if (rc == 0)
        rc = jpeg_codec_peek(sf, sl, &info);
    if (rc == 0)
        rc = jpeg_codec_open_secrets(&info, k, &got);
    if (rc == 0)
        memcpy(vec, got.nnvec, PXC_NNVEC_BYTES);
    free(sf);
    return rc;
}

static void test_nnvec(void)
{
    variant v = {"nnvec", 320, 240, 3, 90, 0, 0, 0, 0, 2, 2, 0, 0, 0};
    membuf a, b;
    int made = make_jpeg(&v, &a);
    poke_centre = 1;
    made |= make_jpeg(&v, &b);
    poke_centre = 0;
    if (made != 0) {
        ok(0, "nnvec: test images made");
        return;
    }
    uint8_t master[PXC_KEY_BYTES], v1[32], v2[32], v3[32], v4[32];
    randombytes_buf(master, sizeof master);
    pxc_keys *other = pxc_keys_new(master);
    int r1 = stored_nnvec(keys, &a, v1), r2 = stored_nnvec(keys, &a, v2);
    int r3 = stored_nnvec(other, &a, v3), r4 = stored_nnvec(keys, &b, v4);
    ok(r1 == 0 && r2 == 0 && memcmp(v1, v2, 32) == 0,
       "nnvec: same JPEG, same volume, new seed: same vector");
    ok(r3 == 0 && memcmp(v1, v3, 32) != 0, "nnvec: other volume: another vector");
    ok(r4 == 0 && memcmp(v1, v4, 32) != 0,
       "nnvec: one pixel inverted (its block's DC moves): another vector");
    pxc_keys_free(other);
    free(a.p);
    free(b.p);
}

static void test_throughput(void)
{
    variant vs[] = {
        {"2048x1536 baseline", 2048, 1536, 3, 90, 0, 0, 0, 0, 2, 2, 0, 0, 1},
        {"2048x1536 progressive", 2048, 1536, 3, 90, 1, 1, 0, 0, 2, 2, 0, 0, 1},
    };
    for (size_t k = 0; k < sizeof vs / sizeof *vs; k++) {
        membuf m;
        if (make_jpeg(&vs[k], &m) != 0)
            continue;
        uint8_t *sf = NULL, *back = NULL;
        size_t sl = 0, bl = 0;
        pxc_file_secrets s;
        pxc_secrets_fresh(&s);
        const char *why = "ok";
        double t0 = now();
        int rc = jpeg_codec_encode(m.p, m.len, keys, &s, &sf, &sl, &why);
        double t1 = now();
        int rc2 = rc == 0 ? jpeg_codec_decode(sf, sl, keys, &back, &bl) : rc;
        double t2 = now();
        ok(rc == 0 && rc2 == 0 && bl == m.len && memcmp(back, m.p, bl) == 0,
           "%s (%.2f MB): stored, size ratio %.3f, encode %.1f MB/s (verification included), "
           "decode %.1f MB/s",
           vs[k].name, m.len / 1e6, (double)sl / (double)m.len, m.len / 1e6 / (t1 - t0),
           m.len / 1e6 / (t2 - t1));
        free(sf);
        free(back);
        free(m.p);
    }
}

int main(void)
{
    uint8_t master[PXC_KEY_BYTES];
    if (sodium_init() < 0 || !mkdtemp(tmpdir))
        return 1;
    randombytes_buf(master, sizeof master);
    keys = pxc_keys_new(master);

    test_corpus();
    test_variants();
    test_noise_keys();
    test_metadata();
    test_tools();
    test_exiftool();
    test_tamper();
    test_malformed();
    test_mutations();
    test_known_answer();
    test_stored_known_answer();
    test_nnvec();
    test_throughput();

    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    if (system(cmd) != 0)
        tap_diag("could not remove %s", tmpdir);
    pxc_keys_free(keys);
    return tap_done();
}

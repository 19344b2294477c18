/* Unit tests of deflate recipes: zlib streams of every level, strategy, memory level
 * and window size, streams of other encoders found on the machine, hand-made edge
 * cases, and malformed input.  Every stream accepted must come back byte-identical
 * from recipe + data, with data equal to what zlib's inflate makes of the stream. */
#include <errno.h>
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "codec/deflate_recipe.h"
#include "tap.h"

#define MAX_OUT ((size_t)64 << 20)

/* Random trials per test; fewer under the sanitizers, which run several times slower. */
#if defined(__SANITIZE_ADDRESS__)
#define SCALE(n) ((n) / 4)
#else
#define SCALE(n) (n)
#endif

static void skip(const char *why)
{
    tap_count++;
    printf("ok %d # SKIP %s\n", tap_count, why);
    fflush(stdout);
}

static double seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* ---------------------------------------------------------------- inputs */

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint32_t rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 16);
}

enum input_kind { INPUT_RANDOM, INPUT_ZEROS, INPUT_TEXT, INPUT_IMAGE, INPUT_KINDS };
static const char *const kind_name[INPUT_KINDS] = {"random", "zeros", "text", "image"};

static void fill_text(uint8_t *p, size_t n)
{
    static const char *const words[] = {
        "the",   "pixel", "of",    "image", "scan", "and",     "a",      "patient", "series",
        "slice", "study", "with",  "noise", "row",  "encrypt", "window", "level",   "contrast",
        "to",    "is",    "photo", "album", "in",   "2023",    "\n",     "Dropbox", "file"};
    size_t at = 0;
    while (at < n) {
        const char *w = words[rng() % (sizeof words / sizeof *words)];
        for (size_t i = 0; w[i] && at < n; i++)
            p[at++] = (uint8_t)w[i];
        if (at < n)
            p[at++] = ' ';
    }
}

static uint8_t paeth(uint8_t a, uint8_t b, uint8_t c)
{
    int p = a + b - c, pa = abs(p - a), pb = abs(p - b), pc = abs(p - c);
    return pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
}

/* PNG filter type f applied to one RGB row (bpp 3) against the row above. */
static void filter_row(uint8_t *to, const uint8_t *row, const uint8_t *up, size_t len, int f)
{
    for (size_t i = 0; i < len; i++) {
        uint8_t a = i >= 3 ? row[i - 3] : 0, b = up[i], c = i >= 3 ? up[i - 3] : 0;
        uint8_t pred = f == 1   ? a
                       : f == 2 ? b
                       : f == 3 ? (uint8_t)((a + b) / 2)
                       : f == 4 ? paeth(a, b, c)
                                : 0;
        to[i] = (uint8_t)(row[i] - pred);
    }
}

/* Filtered RGB scanlines of a synthetic photo: gradients, flat areas, sensor noise. */
static void fill_image_rows(uint8_t *p, size_t n, size_t width)
{
    size_t row_len = 3 * width, stride = row_len + 1;
    uint8_t *row = malloc(row_len), *up = calloc(1, row_len), *tmp = malloc(stride);
    for (size_t y = 0, at = 0; at < n; y++) {
        for (size_t x = 0; x < width; x++)
            for (size_t ch = 0; ch < 3; ch++) {
                int flat = (x / 64 + y / 64) % 3 == 0;
                int v =
                    flat ? 40 + 60 * (int)ch : (int)((x * (ch + 1) + y * 2) / 3) + (int)(rng() % 7);
                row[3 * x + ch] = (uint8_t)v;
            }
        tmp[0] = (uint8_t)(y % 5);
        filter_row(tmp + 1, row, up, row_len, tmp[0]);
        size_t take = n - at < stride ? n - at : stride;
        memcpy(p + at, tmp, take);
        at += take;
        memcpy(up, row, row_len);
    }
    free(row);
    free(up);
    free(tmp);
}

static uint8_t *make_input(enum input_kind kind, size_t n)
{
    uint8_t *p = calloc(1, n ? n : 1);
    if (kind == INPUT_RANDOM)
        for (size_t i = 0; i < n; i++)
            p[i] = (uint8_t)rng();
    else if (kind == INPUT_TEXT)
        fill_text(p, n);
    else if (kind == INPUT_IMAGE)
        fill_image_rows(p, n, 300);
    return p;
}

/* ---------------------------------------------------------------- zlib side */

typedef struct {
    int level, strategy, mem_level, window_bits;
} zparams;

static const int strategies[] = {Z_DEFAULT_STRATEGY, Z_FILTERED, Z_HUFFMAN_ONLY, Z_RLE, Z_FIXED};
static const char *const strategy_name[] = {"default", "filtered", "huffman", "rle", "fixed"};

static uint8_t *zlib_deflate(const uint8_t *data, size_t n, zparams zp, size_t *zlen)
{
    z_stream s;
    memset(&s, 0, sizeof s);
    if (deflateInit2(&s, zp.level, Z_DEFLATED, zp.window_bits, zp.mem_level, zp.strategy) != Z_OK)
        return NULL;
    size_t cap = deflateBound(&s, n) + 64;
    uint8_t *out = malloc(cap);
    s.next_in = (Bytef *)data;
    s.avail_in = (uInt)n;
    s.next_out = out;
    s.avail_out = (uInt)cap;
    int z = deflate(&s, Z_FINISH);
    *zlen = s.total_out;
    deflateEnd(&s);
    if (z != Z_STREAM_END) {
        free(out);
        return NULL;
    }
    return out;
}

/* zlib's verdict on a stream: 0 with the data if inflate reaches its end.  With
 * check_adler 0 a wrong Adler-32 is accepted, as recipes accept it. */
static int zlib_inflate(const uint8_t *z, size_t zlen, int check_adler, uint8_t **out,
                        size_t *out_len)
{
    z_stream s;
    memset(&s, 0, sizeof s);
    if (inflateInit(&s) != Z_OK)
        return -1;
    inflateValidate(&s, check_adler);
    size_t cap = 4096 + zlen * 4;
    uint8_t *buf = malloc(cap);
    s.next_in = (Bytef *)z;
    s.avail_in = (uInt)zlen;
    int ret;
    do {
        if (s.total_out == cap) {
            cap *= 2;
            buf = realloc(buf, cap);
        }
        s.next_out = buf + s.total_out;
        s.avail_out = (uInt)(cap - s.total_out);
        ret = inflate(&s, Z_NO_FLUSH);
    } while (ret == Z_OK && s.total_out <= MAX_OUT);
    *out_len = s.total_out;
    inflateEnd(&s);
    if (ret != Z_STREAM_END) {
        free(buf);
        return -1;
    }
    *out = buf;
    return 0;
}

/* ---------------------------------------------------------------- round trips */

typedef struct {
    size_t streams, failed, zbytes, recipe_bytes, data_bytes;
    double build_seconds, replay_seconds;
    char first_failure[256];
} tally;

/* Time the last roundtrip spent building and replaying, and its data size. */
static double last_build_seconds, last_replay_seconds;
static size_t last_data_len;

/* Builds, replays and compares one stream; expect (if not NULL) is the data it holds.
 * Returns 0 or a short reason. */
static const char *roundtrip(const uint8_t *z, size_t zlen, const uint8_t *expect,
                             size_t expect_len, size_t *recipe_len)
{
    uint8_t *data, *recipe, *again;
    size_t data_len, again_len;
    const char *why;
    static char reason[160];
    last_build_seconds = last_replay_seconds = 0;
    double t0 = seconds();
    int err = deflate_recipe_build(z, zlen, MAX_OUT, &data, &data_len, &recipe, recipe_len, &why);
    last_build_seconds = seconds() - t0;
    last_data_len = err ? 0 : data_len;
    if (err) {
        snprintf(reason, sizeof reason, "build failed: %d %s", err, why ? why : "?");
        return reason;
    }
    const char *bad = NULL;
    uint8_t *inflated = NULL;
    if (!expect && zlib_inflate(z, zlen, 0, &inflated, &expect_len) != 0)
        bad = "accepted a stream that zlib refuses";
    else if (!expect)
        expect = inflated;
    if (bad)
        ;
    else if (data_len != expect_len || memcmp(data, expect, data_len) != 0)
        bad = "data differs from the input";
    else if ((t0 = seconds()),
             deflate_recipe_replay(recipe, *recipe_len, data, data_len, &again, &again_len))
        bad = "replay failed";
    else {
        last_replay_seconds = seconds() - t0;
        if (again_len != zlen || memcmp(again, z, zlen) != 0)
            bad = "replayed stream differs";
        free(again);
    }
    free(inflated);
    free(data);
    free(recipe);
    return bad;
}

static void tally_stream(tally *t, const uint8_t *z, size_t zlen, const uint8_t *data, size_t n,
                         const char *label)
{
    size_t recipe_len = 0;
    last_data_len = 0;
    const char *bad = z ? roundtrip(z, zlen, data, n, &recipe_len) : "encoder failed";
    n = last_data_len;
    t->streams++;
    t->zbytes += zlen;
    t->recipe_bytes += recipe_len;
    t->data_bytes += n;
    t->build_seconds += last_build_seconds;
    t->replay_seconds += last_replay_seconds;
    if (bad && !t->failed++)
        snprintf(t->first_failure, sizeof t->first_failure, "%s: %s", label, bad);
}

static void tally_zlib(tally *t, const uint8_t *data, size_t n, zparams zp)
{
    char label[96];
    snprintf(label, sizeof label, "level %d %s memLevel %d windowBits %d", zp.level,
             strategy_name[zp.strategy], zp.mem_level, zp.window_bits);
    size_t zlen = 0;
    uint8_t *z = zlib_deflate(data, n, zp, &zlen);
    tally_stream(t, z, zlen, data, n, label);
    free(z);
}

static double mb_per_second(size_t bytes, double secs)
{
    return (double)bytes / 1e6 / (secs > 1e-9 ? secs : 1e-9);
}

/* Recipe size and speed of a tally, as a diagnostic line. */
static void report_sizes(const tally *t, const char *what)
{
    tap_diag("%s: recipe/zstream %.3f, recipe/data %.3f, %.1f MB data, build %.0f MB/s, "
             "replay %.0f MB/s",
             what, (double)t->recipe_bytes / (double)(t->zbytes ? t->zbytes : 1),
             (double)t->recipe_bytes / (double)(t->data_bytes ? t->data_bytes : 1),
             (double)t->data_bytes / 1e6, mb_per_second(t->data_bytes, t->build_seconds),
             mb_per_second(t->data_bytes, t->replay_seconds));
}

static void report(const tally *t, const char *what)
{
    ok(t->failed == 0, "%s: %zu streams regenerated byte-identical", what, t->streams);
    if (t->failed)
        tap_diag("%zu failed, first: %s", t->failed, t->first_failure);
}

/* Every level, strategy and window size, with memory levels 1 and 9, for small inputs;
 * for larger ones windows 8, 10, 13 and 15 and one memory level per combination, so
 * that all of 1..9 occur. */
static void test_zlib_matrix(enum input_kind kind, size_t n)
{
    int big = n > 4096;
    uint8_t *data = make_input(kind, n);
    tally t = {0};
    for (int level = 0; level <= 9; level++)
        for (int s = 0; s < 5; s++)
            for (int window = 8; window <= 15; window++) {
                if (big && ((level == 0 && s > 0) ||
                            (window != 8 && window != 10 && window != 13 && window != 15)))
                    continue; /* level 0: stored blocks whatever the strategy */
                if (big) {
                    int mem = 1 + (level * 5 + s * 8 + window) % 9;
                    tally_zlib(&t, data, n, (zparams){level, strategies[s], mem, window});
                    continue;
                }
                for (int mem = 1; mem <= 9; mem += 8)
                    tally_zlib(&t, data, n, (zparams){level, strategies[s], mem, window});
            }
    char what[96];
    snprintf(what, sizeof what, "zlib matrix, %s %zu bytes", kind_name[kind], n);
    report(&t, what);
    free(data);
}

/* Larger inputs (512 KiB of text or image, 256 KiB of random bytes or zeros): every
 * level, then the strategies and extreme parameters at level 6. */
static void test_zlib_large(enum input_kind kind)
{
    size_t n = kind == INPUT_TEXT || kind == INPUT_IMAGE ? 1 << 19 : 1 << 18;
    uint8_t *data = make_input(kind, n);
    tally total = {0};
    char line[400] = "";
    for (int level = 0; level <= 9; level++) {
        tally t = {0};
        tally_zlib(&t, data, n, (zparams){level, Z_DEFAULT_STRATEGY, 8, 15});
        size_t used = strlen(line);
        snprintf(line + used, sizeof line - used, " L%d %.3f/%.3f", level,
                 (double)t.recipe_bytes / (double)t.zbytes,
                 (double)t.recipe_bytes / (double)t.data_bytes);
        total.streams += t.streams;
        total.zbytes += t.zbytes;
        total.recipe_bytes += t.recipe_bytes;
        total.data_bytes += t.data_bytes;
        total.build_seconds += t.build_seconds;
        total.replay_seconds += t.replay_seconds;
        if (t.failed && !total.failed++)
            memcpy(total.first_failure, t.first_failure, sizeof t.first_failure);
    }
    for (int s = 1; s < 5; s++)
        tally_zlib(&total, data, n, (zparams){6, strategies[s], 8, 15});
    tally_zlib(&total, data, n, (zparams){6, Z_DEFAULT_STRATEGY, 1, 15});
    tally_zlib(&total, data, n, (zparams){6, Z_DEFAULT_STRATEGY, 9, 8});
    tally_zlib(&total, data, n, (zparams){9, Z_DEFAULT_STRATEGY, 9, 9});
    char what[64];
    snprintf(what, sizeof what, "zlib, %s %zu KiB", kind_name[kind], n >> 10);
    report(&total, what);
    tap_diag("recipe size, %s, per level (recipe/zstream recipe/data):%s", what, line);
    report_sizes(&total, what);
    free(data);
}

/* Flushes leave empty stored blocks (sync, full) and empty fixed blocks (partial). */
static void test_flush_markers(void)
{
    uint8_t *data = make_input(INPUT_TEXT, 20000), out[40000];
    static const int flushes[] = {Z_SYNC_FLUSH, Z_SYNC_FLUSH, Z_FULL_FLUSH,   Z_PARTIAL_FLUSH,
                                  Z_BLOCK,      Z_SYNC_FLUSH, Z_PARTIAL_FLUSH};
    z_stream s;
    memset(&s, 0, sizeof s);
    deflateInit(&s, 6);
    s.next_out = out;
    s.avail_out = sizeof out;
    for (size_t k = 0; k < sizeof flushes / sizeof *flushes; k++) {
        s.next_in = data + k * 2000;
        s.avail_in = k % 2 ? 2000 : 0; /* some flushes with nothing new: back-to-back markers */
        deflate(&s, flushes[k]);
        deflate(&s, flushes[k]);
    }
    s.next_in = data + 14000;
    s.avail_in = 6000;
    int z = deflate(&s, Z_FINISH);
    size_t zlen = s.total_out, rl;
    deflateEnd(&s);
    uint8_t *expect;
    size_t expect_len;
    int zok = zlib_inflate(out, zlen, 1, &expect, &expect_len) == 0;
    const char *bad =
        z == Z_STREAM_END && zok ? roundtrip(out, zlen, expect, expect_len, &rl) : "zlib";
    ok(!bad, "sync/full/partial flush markers and empty blocks (%s)", bad ? bad : "identical");
    if (zok)
        free(expect);
    free(data);
}

/* ---------------------------------------------------------------- external encoders */

static char tmpdir[64];

static int have_tool(const char *name)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "command -v %s >/dev/null 2>&1", name);
    return system(cmd) == 0;
}

static int write_file(const char *path, const uint8_t *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    int good = fwrite(p, 1, n, f) == n;
    return fclose(f) == 0 && good ? 0 : -1;
}

static uint8_t *read_file(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 1 << 16, len = 0;
    uint8_t *p = malloc(cap);
    size_t got;
    while ((got = fread(p + len, 1, cap - len, f)) > 0)
        if ((len += got) == cap)
            p = realloc(p, cap *= 2);
    fclose(f);
    *n = len;
    return p;
}

static int run(const char *fmt, const char *a, const char *b)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, fmt, a, b);
    return system(cmd);
}

static uint32_t adler_of(const uint8_t *p, size_t n)
{
    return (uint32_t)adler32(adler32(0, NULL, 0), p, (uInt)n);
}

static void put_be32(uint8_t *to, uint32_t v)
{
    to[0] = (uint8_t)(v >> 24);
    to[1] = (uint8_t)(v >> 16);
    to[2] = (uint8_t)(v >> 8);
    to[3] = (uint8_t)v;
}

/* The deflate data of a one-member gzip file, wrapped as a zlib stream of data. */
static uint8_t *gzip_to_zlib(const uint8_t *gz, size_t n, const uint8_t *data, size_t data_len,
                             size_t *zlen)
{
    if (n < 18 || gz[0] != 0x1f || gz[1] != 0x8b || gz[2] != 8)
        return NULL;
    unsigned flags = gz[3];
    size_t at = 10;
    if (flags & 4)
        at += 2 + (gz[10] | (size_t)gz[11] << 8);
    for (unsigned bit = 8; bit <= 16; bit <<= 1) /* file name, comment */
        if (flags & bit) {
            while (at < n && gz[at])
                at++;
            at++;
        }
    if (flags & 2)
        at += 2;
    if (at + 8 > n)
        return NULL;
    size_t raw = n - 8 - at;
    uint8_t *z = malloc(raw + 6);
    z[0] = 0x78;
    z[1] = 0x9c;
    memcpy(z + 2, gz + at, raw);
    put_be32(z + 2 + raw, adler_of(data, data_len));
    *zlen = raw + 6;
    return z;
}

typedef enum { WRAP_NONE, WRAP_GZIP } wrapping;

/* Runs an encoder command (fmt with %s in and out) on data; tallies the stream. */
static void tally_tool(tally *t, const char *fmt, wrapping wrap, const uint8_t *data, size_t n,
                       const char *label)
{
    char in[96], out[96];
    snprintf(in, sizeof in, "%s/in", tmpdir);
    snprintf(out, sizeof out, "%s/out", tmpdir);
    size_t got = 0, zlen = 0;
    uint8_t *file = NULL, *z = NULL;
    if (write_file(in, data, n) == 0 && run(fmt, in, out) == 0)
        file = read_file(out, &got);
    if (file && wrap == WRAP_GZIP)
        z = gzip_to_zlib(file, got, data, n, &zlen);
    else if (file) {
        z = file;
        zlen = got;
        file = NULL;
    }
    tally_stream(t, z, zlen, data, n, label);
    free(file);
    free(z);
}

static void test_tool(const char *tool, const char *fmt, wrapping wrap, const char *what)
{
    if (!have_tool(tool)) {
        char why[96];
        snprintf(why, sizeof why, "%s not installed", tool);
        skip(why);
        return;
    }
    static const size_t sizes[] = {0, 1, 3000, 20000};
    tally t = {0};
    for (int kind = 0; kind < INPUT_KINDS; kind++)
        for (size_t k = 0; k < sizeof sizes / sizeof *sizes; k++) {
            uint8_t *data = make_input((enum input_kind)kind, sizes[k]);
            char label[96];
            snprintf(label, sizeof label, "%s %zu bytes", kind_name[kind], sizes[k]);
            tally_tool(&t, fmt, wrap, data, sizes[k], label);
            free(data);
        }
    report(&t, what);
    report_sizes(&t, what);
}

static void test_gzip_levels(void)
{
    if (!have_tool("gzip")) {
        skip("gzip not installed");
        return;
    }
    tally t = {0};
    uint8_t *text = make_input(INPUT_TEXT, 200000), *image = make_input(INPUT_IMAGE, 200000);
    for (int level = 1; level <= 9; level++) {
        char fmt[64], label[32];
        snprintf(fmt, sizeof fmt, "gzip -%d -n -c < %%s > %%s", level);
        snprintf(label, sizeof label, "gzip -%d", level);
        tally_tool(&t, fmt, WRAP_GZIP, text, 200000, label);
        tally_tool(&t, fmt, WRAP_GZIP, image, 200000, label);
    }
    report(&t, "gzip -1..-9 (its own deflate), text and image 200 kB");
    report_sizes(&t, "gzip -1..-9");
    free(text);
    free(image);
}

/* ---- PNG files for optipng / advpng */

static void put_chunk(uint8_t *png, size_t *at, const char *type, const uint8_t *p, size_t n)
{
    put_be32(png + *at, (uint32_t)n);
    memcpy(png + *at + 4, type, 4);
    if (n)
        memcpy(png + *at + 8, p, n);
    uLong crc = crc32(crc32(0, NULL, 0), png + *at + 4, (uInt)(n + 4));
    put_be32(png + *at + 8 + n, (uint32_t)crc);
    *at += 12 + n;
}

/* An 8-bit RGB PNG of size w x h holding the synthetic photo. */
static uint8_t *make_png(uint32_t w, uint32_t h, size_t *png_len)
{
    size_t raw_len = (size_t)h * (3 * w + 1), zlen;
    uint8_t *raw = calloc(1, raw_len);
    fill_image_rows(raw, raw_len, w);
    uint8_t *z = zlib_deflate(raw, raw_len, (zparams){6, Z_DEFAULT_STRATEGY, 8, 15}, &zlen);
    uint8_t *png = malloc(zlen + 100), ihdr[13] = {0};
    put_be32(ihdr, w);
    put_be32(ihdr + 4, h);
    ihdr[8] = 8;
    ihdr[9] = 2;
    size_t at = 8;
    memcpy(png, "\x89PNG\r\n\x1a\n", 8);
    put_chunk(png, &at, "IHDR", ihdr, 13);
    put_chunk(png, &at, "IDAT", z, zlen);
    put_chunk(png, &at, "IEND", NULL, 0);
    *png_len = at;
    free(raw);
    free(z);
    return png;
}

/* ---- the PNG corpus */

static char **corpus_paths;
static size_t corpus_count, corpus_cap;
static const char *corpus_dir;

static int is_png_path(const char *path)
{
    size_t n = strlen(path);
    return n > 4 && strcasecmp(path + n - 4, ".png") == 0;
}

static int collect_png(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    if (flag != FTW_F || !is_png_path(path))
        return 0;
    if (corpus_count == corpus_cap) {
        corpus_cap = corpus_cap ? 2 * corpus_cap : 64;
        corpus_paths = realloc(corpus_paths, corpus_cap * sizeof *corpus_paths);
    }
    corpus_paths[corpus_count++] = strdup(path);
    return 0;
}

static int compare_paths(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Every *.png under $PXC_CORPUS (default ../shared/corpus, beside the checkout). */
static void find_corpus(void)
{
    corpus_dir = getenv("PXC_CORPUS");
    if (!corpus_dir || !*corpus_dir)
        corpus_dir = "../shared/corpus";
    if (nftw(corpus_dir, collect_png, 16, FTW_PHYS) != 0)
        corpus_count = 0;
    if (corpus_count)
        qsort(corpus_paths, corpus_count, sizeof *corpus_paths, compare_paths);
}

static void free_corpus(void)
{
    for (size_t i = 0; i < corpus_count; i++)
        free(corpus_paths[i]);
    free(corpus_paths);
}

/* The concatenated IDAT data of a PNG file; NULL if the file is not a PNG or holds no
 * IDAT.  Chunk CRCs are not checked: decoders differ on them, the stream does not. */
static uint8_t *png_idat(const uint8_t *png, size_t n, size_t *zlen)
{
    *zlen = 0;
    if (n < 8 || memcmp(png, "\x89PNG\r\n\x1a\n", 8) != 0)
        return NULL;
    uint8_t *z = malloc(n);
    size_t len = 0;
    int found = 0;
    for (size_t at = 8; at + 12 <= n;) {
        size_t chunk = (size_t)png[at] << 24 | (size_t)png[at + 1] << 16 |
                       (size_t)png[at + 2] << 8 | png[at + 3];
        if (chunk > n - at - 12)
            break;
        if (memcmp(png + at + 4, "IDAT", 4) == 0) {
            memcpy(z + len, png + at + 8, chunk);
            len += chunk;
            found = 1;
        }
        if (memcmp(png + at + 4, "IEND", 4) == 0)
            break;
        at += 12 + chunk;
    }
    if (!found) {
        free(z);
        return NULL;
    }
    *zlen = len;
    return z;
}

/* Every corpus PNG: the IDAT stream is accepted exactly when zlib accepts it (a wrong
 * Adler-32 aside), and when accepted it comes back byte-identical. */
static void test_corpus(void)
{
    if (!corpus_count) {
        char why[300];
        snprintf(why, sizeof why, "no PNG files under %s (set PXC_CORPUS)", corpus_dir);
        skip(why);
        return;
    }
    size_t files = 0, no_idat = 0, regenerated = 0, refused = 0, failed = 0;
    size_t zbytes = 0, recipe_bytes = 0, data_bytes = 0;
    double build_time = 0, replay_time = 0;
    char first[400] = "";
    for (size_t i = 0; i < corpus_count; i++) {
        size_t n, zlen, dl, rl, again_len, zdl;
        uint8_t *png = read_file(corpus_paths[i], &n), *d, *r, *again, *zd = NULL;
        if (!png)
            continue;
        files++;
        uint8_t *z = png_idat(png, n, &zlen);
        free(png);
        if (!z) {
            no_idat++;
            continue;
        }
        const char *why = NULL, *bad = NULL;
        int zok = zlib_inflate(z, zlen, 0, &zd, &zdl) == 0;
        double t0 = seconds();
        int err = deflate_recipe_build(z, zlen, MAX_OUT, &d, &dl, &r, &rl, &why);
        double t1 = seconds();
        if (err) {
            refused++;
            if (zok)
                bad = why ? why : "refused";
        } else if (!zok) {
            bad = "accepted a stream that zlib refuses";
        } else if (dl != zdl || memcmp(d, zd, dl) != 0) {
            bad = "data differs from zlib's";
        } else if (deflate_recipe_replay(r, rl, d, dl, &again, &again_len) != 0) {
            bad = "replay failed";
        } else {
            replay_time += seconds() - t1;
            build_time += t1 - t0;
            if (again_len != zlen || memcmp(again, z, zlen) != 0)
                bad = "replayed stream differs";
            else {
                regenerated++;
                zbytes += zlen;
                recipe_bytes += rl;
                data_bytes += dl;
            }
            free(again);
        }
        if (!err) {
            free(d);
            free(r);
        }
        if (bad && !failed++)
            snprintf(first, sizeof first, "%s: %s", corpus_paths[i], bad);
        free(zd);
        free(z);
    }
    ok(failed == 0 && regenerated > 0,
       "corpus: %zu PNG files, %zu IDAT streams regenerated byte-identical, %zu refused as "
       "zlib refuses them, %zu without IDAT",
       files, regenerated, refused, no_idat);
    if (failed)
        tap_diag("%zu failed, first: %s", failed, first);
    tap_diag("corpus: recipe/zstream %.3f, recipe/data %.3f; %.1f MB decompressed, build %.0f "
             "MB/s, replay %.0f MB/s",
             (double)recipe_bytes / (double)(zbytes ? zbytes : 1),
             (double)recipe_bytes / (double)(data_bytes ? data_bytes : 1), (double)data_bytes / 1e6,
             (double)data_bytes / 1e6 / (build_time > 0 ? build_time : 1e-9),
             (double)data_bytes / 1e6 / (replay_time > 0 ? replay_time : 1e-9));
}

/* The largest corpus PNGs that zlib decodes, at most limit of them. */
static size_t corpus_sample(const char **paths, size_t limit)
{
    size_t *sizes = calloc(limit, sizeof *sizes), count = 0;
    for (size_t i = 0; i < corpus_count; i++) {
        size_t n, zlen, dl;
        uint8_t *png = read_file(corpus_paths[i], &n), *z = png ? png_idat(png, n, &zlen) : NULL;
        uint8_t *d = NULL;
        int good = z && strstr(corpus_paths[i], "malformed") == NULL &&
                   zlib_inflate(z, zlen, 1, &d, &dl) == 0;
        free(png);
        free(z);
        free(d);
        if (!good)
            continue;
        size_t k = count < limit ? count++ : limit;
        if (k == limit && n <= sizes[limit - 1])
            continue;
        if (k == limit)
            k = limit - 1;
        for (; k > 0 && sizes[k - 1] < n; k--) {
            sizes[k] = sizes[k - 1];
            paths[k] = paths[k - 1];
        }
        sizes[k] = n;
        paths[k] = corpus_paths[i];
    }
    free(sizes);
    return count;
}

enum { PNG_SAMPLE = 4 };

/* Runs a PNG optimiser (fmt with %1$s in, %2$s out) over synthetic PNGs and the largest
 * corpus PNGs; every IDAT stream it writes must come back byte-identical. */
static void test_png_tool(const char *tool, const char *fmt, const char *what)
{
    if (!have_tool(tool)) {
        char why[96];
        snprintf(why, sizeof why, "%s not installed", tool);
        skip(why);
        return;
    }
    static const uint32_t dims[][2] = {{1, 1}, {37, 23}, {300, 200}};
    const char *sample[PNG_SAMPLE];
    size_t nsample = corpus_sample(sample, PNG_SAMPLE), ndims = sizeof dims / sizeof *dims;
    size_t refused = 0;
    tally t = {0};
    char in[96], out[96];
    snprintf(in, sizeof in, "%s/in.png", tmpdir);
    snprintf(out, sizeof out, "%s/out.png", tmpdir);
    for (size_t k = 0; k < ndims + nsample; k++) {
        size_t png_len, got = 0, zlen = 0;
        uint8_t *png = k < ndims ? make_png(dims[k][0], dims[k][1], &png_len)
                                 : read_file(sample[k - ndims], &png_len);
        uint8_t *file = NULL, *z = NULL;
        unlink(out);
        if (png && write_file(in, png, png_len) == 0 && run(fmt, in, out) == 0)
            file = read_file(out, &got);
        if (file)
            z = png_idat(file, got, &zlen);
        if (!z && k >= ndims) { /* the tool refuses this input; not ours to judge */
            refused++;
            free(png);
            free(file);
            continue;
        }
        char label[300];
        if (k < ndims)
            snprintf(label, sizeof label, "%ux%u", dims[k][0], dims[k][1]);
        else
            snprintf(label, sizeof label, "%s", sample[k - ndims]);
        tally_stream(&t, z, zlen, NULL, 0, label);
        free(png);
        free(file);
        free(z);
    }
    report(&t, what);
    char label[160];
    snprintf(label, sizeof label, "%s (%zu synthetic, %zu corpus PNGs, %zu refused by the tool)",
             what, ndims, nsample - refused, refused);
    report_sizes(&t, label);
}

static void test_external_encoders(void)
{
    test_gzip_levels();
    test_tool("zopfli", "zopfli --zlib --i1 -c %s > %s", WRAP_NONE, "zopfli --zlib");
    test_tool("pigz", "pigz -11 -I 1 -z -c < %s > %s", WRAP_NONE, "pigz -11 (zopfli) -z");
    test_tool("pigz", "pigz -6 -z -c < %s > %s", WRAP_NONE, "pigz -6 -z (parallel zlib)");
    test_tool("advdef", "gzip -n -c < %1$s > %2$s && advdef -q -z -3 %2$s", WRAP_GZIP,
              "advdef -3 (7-Zip deflate)");
    test_tool("advdef", "gzip -n -c < %1$s > %2$s && advdef -q -z -4 -i 1 %2$s", WRAP_GZIP,
              "advdef -4 (zopfli)");
    test_png_tool("optipng", "optipng -quiet -force -o2 -out %2$s %1$s", "optipng -o2 IDAT");
    test_png_tool("advpng", "cp %1$s %2$s && advpng -q -z -3 %2$s", "advpng -3 (7-Zip) IDAT");
    test_png_tool("advpng", "cp %1$s %2$s && advpng -q -z -4 -i 1 %2$s", "advpng -4 (zopfli) IDAT");
    test_png_tool("zopflipng", "zopflipng -q -y --iterations=1 --filters=0p %1$s %2$s >/dev/null",
                  "zopflipng IDAT");
    test_png_tool("pngcrush", "pngcrush -q -force %1$s %2$s >/dev/null 2>&1", "pngcrush IDAT");
}

/* ---------------------------------------------------------------- hand-made streams */

typedef struct {
    uint8_t bytes[8192];
    size_t len;
    unsigned bit; /* bits used in bytes[len] */
} bitsink;

static void sink_bits(bitsink *b, uint32_t v, unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        if (b->bit == 0)
            b->bytes[b->len] = 0;
        b->bytes[b->len] |= (uint8_t)(((v >> i) & 1) << b->bit);
        if (++b->bit == 8) {
            b->bit = 0;
            b->len++;
        }
    }
}

/* Huffman codes go most significant bit first. */
static void sink_code(bitsink *b, uint32_t code, unsigned len)
{
    for (unsigned i = len; i-- > 0;)
        sink_bits(b, (code >> i) & 1, 1);
}

static void sink_pad(bitsink *b, uint32_t value)
{
    if (b->bit)
        sink_bits(b, value, 8 - b->bit);
}

static void sink_start(bitsink *b)
{
    memset(b, 0, sizeof *b);
    b->bytes[0] = 0x78;
    b->bytes[1] = 0x01;
    b->len = 2;
}

static void sink_block_header(bitsink *b, unsigned final, unsigned type)
{
    sink_bits(b, final, 1);
    sink_bits(b, type, 2);
}

/* Pads with padding's bits and appends the Adler-32 of whatever zlib inflates. */
static size_t sink_finish(bitsink *b, uint32_t padding)
{
    sink_pad(b, padding);
    memset(b->bytes + b->len, 0, 4);
    b->len += 4;
    uint8_t *data;
    size_t n;
    if (zlib_inflate(b->bytes, b->len, 0, &data, &n) == 0) {
        put_be32(b->bytes + b->len - 4, adler_of(data, n));
        free(data);
    }
    return b->len;
}

static void sink_fixed_symbol(bitsink *b, unsigned sym)
{
    if (sym < 144)
        sink_code(b, 0x30 + sym, 8);
    else if (sym < 256)
        sink_code(b, 0x190 + sym - 144, 9);
    else if (sym < 280)
        sink_code(b, sym - 256, 7);
    else
        sink_code(b, 0xc0 + sym - 280, 8);
}

static void canonical_codes(const uint8_t *lens, unsigned n, uint32_t *codes)
{
    unsigned count[16] = {0}, next[16] = {0}, code = 0;
    for (unsigned s = 0; s < n; s++)
        count[lens[s]]++;
    count[0] = 0;
    for (unsigned bits = 1; bits < 16; bits++) {
        code = (code + count[bits - 1]) << 1;
        next[bits] = code;
    }
    for (unsigned s = 0; s < n; s++)
        if (lens[s])
            codes[s] = next[lens[s]]++;
}

typedef struct {
    unsigned sym, extra;
} codelen_op;

static const uint8_t codelen_order[19] = {16, 17, 18, 0, 8,  7, 9,  6, 10, 5,
                                          11, 4,  12, 3, 13, 2, 14, 1, 15};

/* A dynamic block header sent exactly as given: ncl code-length-code lengths, then ops. */
static void sink_dynamic_header(bitsink *b, unsigned nlen, unsigned ndist, unsigned ncl,
                                const uint8_t cl_lens[19], const codelen_op *ops, size_t nops)
{
    sink_bits(b, nlen - 257, 5);
    sink_bits(b, ndist - 1, 5);
    sink_bits(b, ncl - 4, 4);
    for (unsigned i = 0; i < ncl; i++)
        sink_bits(b, cl_lens[codelen_order[i]], 3);
    uint32_t codes[19];
    canonical_codes(cl_lens, 19, codes);
    for (size_t i = 0; i < nops; i++) {
        sink_code(b, codes[ops[i].sym], cl_lens[ops[i].sym]);
        if (ops[i].sym >= 16)
            sink_bits(b, ops[i].extra, ops[i].sym == 16 ? 2 : ops[i].sym == 17 ? 3 : 7);
    }
}

/* zlib (Adler-32 unchecked) and recipes must agree; what both accept must replay. */
static void check_handmade(const uint8_t *z, size_t zlen, int valid, const char *what)
{
    uint8_t *expect = NULL, *d, *r;
    size_t expect_len, rl, dl;
    int zok = zlib_inflate(z, zlen, 0, &expect, &expect_len) == 0;
    if (valid) {
        const char *bad = zok ? roundtrip(z, zlen, expect, expect_len, &rl) : "zlib refuses it";
        ok(!bad, "%s: %s", what, bad ? bad : "regenerated");
    } else {
        const char *why = NULL;
        int err = deflate_recipe_build(z, zlen, MAX_OUT, &d, &dl, &r, &rl, &why);
        ok(!zok && err == -EINVAL, "%s: refused as zlib does (%s)", what, why ? why : "accepted");
        if (!err) {
            free(d);
            free(r);
        }
    }
    free(expect);
}

static void test_stored_padding(void)
{
    bitsink b;
    sink_start(&b);
    sink_block_header(&b, 0, 0);
    sink_pad(&b, 0x15);
    sink_bits(&b, 5, 16);
    sink_bits(&b, 0xffff ^ 5, 16);
    for (const char *p = "hello"; *p; p++)
        sink_bits(&b, (uint8_t)*p, 8);
    sink_block_header(&b, 1, 0);
    sink_pad(&b, 0x1f);
    sink_bits(&b, 0, 16);
    sink_bits(&b, 0xffff, 16);
    check_handmade(b.bytes, sink_finish(&b, 0), 1, "stored blocks with nonzero padding bits");

    sink_start(&b);
    sink_block_header(&b, 1, 0);
    sink_pad(&b, 0);
    sink_bits(&b, 5, 16);
    sink_bits(&b, 0, 16);
    check_handmade(b.bytes, sink_finish(&b, 0), 0, "stored block whose NLEN is not ~LEN");
}

static void test_fixed_blocks(void)
{
    bitsink b;
    sink_start(&b);
    sink_block_header(&b, 1, 1);
    for (const char *p = "abc"; *p; p++)
        sink_fixed_symbol(&b, (uint8_t)*p);
    sink_fixed_symbol(&b, 256);
    check_handmade(b.bytes, sink_finish(&b, 0x7f), 1, "nonzero padding bits after the final block");

    sink_start(&b);
    sink_block_header(&b, 1, 1);
    sink_fixed_symbol(&b, 'x');
    sink_fixed_symbol(&b, 284); /* 227 + 31 = 258: a spelling zlib decodes */
    sink_bits(&b, 31, 5);
    sink_code(&b, 0, 5);
    sink_fixed_symbol(&b, 285);
    sink_code(&b, 0, 5);
    sink_fixed_symbol(&b, 284);
    sink_bits(&b, 30, 5);
    sink_code(&b, 0, 5);
    sink_fixed_symbol(&b, 256);
    check_handmade(b.bytes, sink_finish(&b, 0), 1, "length 258 as 284+31 beside 285");

    sink_start(&b);
    sink_block_header(&b, 0, 1);
    sink_fixed_symbol(&b, 256);
    sink_block_header(&b, 0, 1);
    sink_fixed_symbol(&b, 256);
    sink_block_header(&b, 1, 0);
    sink_pad(&b, 0);
    sink_bits(&b, 0, 16);
    sink_bits(&b, 0xffff, 16);
    check_handmade(b.bytes, sink_finish(&b, 0), 1, "empty fixed blocks, then an empty stored one");
}

static void test_fixed_errors(void)
{
    bitsink b;
    sink_start(&b);
    sink_block_header(&b, 1, 1);
    sink_fixed_symbol(&b, 'a');
    sink_fixed_symbol(&b, 257);
    sink_code(&b, 1, 5); /* distance 2, one byte written */
    sink_fixed_symbol(&b, 256);
    check_handmade(b.bytes, sink_finish(&b, 0), 0, "distance too far back");

    sink_start(&b);
    sink_block_header(&b, 1, 1);
    sink_fixed_symbol(&b, 'a');
    sink_fixed_symbol(&b, 286);
    sink_fixed_symbol(&b, 256);
    check_handmade(b.bytes, sink_finish(&b, 0), 0, "fixed literal/length symbol 286");

    sink_start(&b);
    sink_block_header(&b, 1, 1);
    sink_fixed_symbol(&b, 'a');
    sink_fixed_symbol(&b, 257);
    sink_code(&b, 30, 5);
    sink_fixed_symbol(&b, 256);
    check_handmade(b.bytes, sink_finish(&b, 0), 0, "fixed distance symbol 30");

    sink_start(&b);
    sink_block_header(&b, 1, 3);
    sink_bits(&b, 0, 32);
    check_handmade(b.bytes, sink_finish(&b, 0), 0, "block type 3");
}

/* Code lengths sent the long way round: literal lengths where repeats would do, 16
 * repeating a zero, split zero runs, a repeat across the literal/distance boundary,
 * all 19 code-length-code lengths sent. */
static void test_dynamic_unusual_repeats(void)
{
    static const codelen_op ops[] = {
        {8, 0},  {16, 3}, {8, 0},    {8, 0},  {16, 0}, {16, 3}, {16, 3}, {16, 3}, {16, 3},
        {16, 3}, {16, 3}, {16, 3},   {16, 3}, {16, 3}, {16, 3}, {16, 3}, {16, 3}, {16, 3},
        {16, 3}, {16, 3}, {16, 3},   {16, 3}, {16, 3}, {16, 3}, {8, 0},  {8, 0},  {0, 0},
        {16, 0}, {17, 7}, {18, 103}, {2, 0},  {3, 0},  {16, 3}, {16, 0}};
    uint8_t cl_lens[19] = {0}, lens[259 + 8] = {0};
    cl_lens[0] = cl_lens[2] = cl_lens[3] = cl_lens[16] = cl_lens[17] = cl_lens[18] = 3;
    cl_lens[8] = 2;
    memset(lens, 8, 128);
    lens[256] = 2;
    memset(lens + 257, 3, 2 + 8);
    uint32_t lit[259], dist[8];
    canonical_codes(lens, 259, lit);
    canonical_codes(lens + 259, 8, dist);

    bitsink b;
    sink_start(&b);
    sink_block_header(&b, 1, 2);
    sink_dynamic_header(&b, 259, 8, 19, cl_lens, ops, sizeof ops / sizeof *ops);
    for (const char *p = "abc"; *p; p++)
        sink_code(&b, lit[(uint8_t)*p], 8);
    sink_code(&b, lit[257], 3); /* length 3 */
    sink_code(&b, dist[2], 3);  /* distance 3 */
    sink_code(&b, lit[258], 3); /* length 4 */
    sink_code(&b, dist[2], 3);
    sink_code(&b, lit[257], 3);
    sink_code(&b, dist[6], 3); /* distance 9 + extra */
    sink_bits(&b, 1, 2);
    sink_code(&b, lit[256], 2);
    check_handmade(b.bytes, sink_finish(&b, 0x2a), 1, "dynamic header with unusual repeat codes");
}

/* A dynamic block whose only literal/length code is end-of-block (length 1) and whose
 * single distance code has length dist_len; with extra_literals, literals 0 and 1 get
 * length-1 codes too, over-subscribing the code. */
static size_t sink_eob_only_block(bitsink *b, unsigned dist_len, int extra_literals)
{
    uint8_t cl_lens[19] = {0};
    cl_lens[1] = cl_lens[2] = 2;
    cl_lens[18] = 1;
    codelen_op ops[6];
    size_t n = 0;
    if (extra_literals) {
        ops[n++] = (codelen_op){1, 0};
        ops[n++] = (codelen_op){1, 0};
        ops[n++] = (codelen_op){18, 127}; /* 138 + 116 zero lengths */
        ops[n++] = (codelen_op){18, 105};
    } else {
        ops[n++] = (codelen_op){18, 127}; /* 138 + 118 zero lengths */
        ops[n++] = (codelen_op){18, 107};
    }
    ops[n++] = (codelen_op){1, 0};
    ops[n++] = (codelen_op){dist_len, 0};
    sink_start(b);
    sink_block_header(b, 1, 2);
    sink_dynamic_header(b, 257, 1, 19, cl_lens, ops, n);
    sink_code(b, 0, 1); /* end-of-block is the lone code "0" */
    if (extra_literals || dist_len != 1)
        sink_bits(b, 0, 32); /* so that a refusal is not mere truncation */
    return sink_finish(b, 0);
}

static void test_dynamic_codes(void)
{
    bitsink b;
    size_t n = sink_eob_only_block(&b, 1, 0);
    check_handmade(b.bytes, n, 1, "incomplete codes zlib accepts (single codes of length 1)");
    n = sink_eob_only_block(&b, 2, 0);
    check_handmade(b.bytes, n, 0, "incomplete distance code with a length-2 code");
    n = sink_eob_only_block(&b, 1, 1);
    check_handmade(b.bytes, n, 0, "over-subscribed literal/length code");

    uint8_t cl_lens[19] = {0};
    cl_lens[16] = 1;
    cl_lens[18] = 1;
    static const codelen_op first_repeat[] = {{16, 0}, {18, 127}, {18, 127}};
    sink_start(&b);
    sink_block_header(&b, 1, 2);
    sink_dynamic_header(&b, 257, 1, 19, cl_lens, first_repeat, 3);
    sink_bits(&b, 0, 32);
    check_handmade(b.bytes, sink_finish(&b, 0), 0, "repeat code 16 with nothing to repeat");
    sink_start(&b);
    sink_block_header(&b, 1, 2);
    sink_dynamic_header(&b, 257, 1, 19, cl_lens, first_repeat + 1, 2);
    sink_bits(&b, 0, 32);
    check_handmade(b.bytes, sink_finish(&b, 0), 0, "repeat past the last code length");

    cl_lens[16] = 0;
    cl_lens[0] = 2;
    cl_lens[1] = 2;
    static const codelen_op no_eob[] = {{18, 127}, {18, 107}, {0, 0}, {1, 0}};
    sink_start(&b);
    sink_block_header(&b, 1, 2);
    sink_dynamic_header(&b, 257, 1, 19, cl_lens, no_eob, 4);
    sink_bits(&b, 0, 32);
    check_handmade(b.bytes, sink_finish(&b, 0), 0, "no code for end-of-block");
}

/* ---------------------------------------------------------------- stream framing */

static uint8_t *text_stream(size_t n, int level, size_t *zlen, uint8_t **data)
{
    *data = make_input(INPUT_TEXT, n);
    return zlib_deflate(*data, n, (zparams){level, Z_DEFAULT_STRATEGY, 8, 15}, zlen);
}

static void test_adler_and_trailing(void)
{
    uint8_t *data, *z2, *ignored;
    size_t zlen, rl, ignored_len;
    uint8_t *z = text_stream(5000, 6, &zlen, &data);
    z[zlen - 1] ^= 0x40;
    int zlib_refuses = zlib_inflate(z, zlen, 1, &ignored, &ignored_len) != 0;
    const char *bad = roundtrip(z, zlen, data, 5000, &rl);
    ok(zlib_refuses && !bad, "wrong Adler-32 kept: %s", bad ? bad : "regenerated");
    z[zlen - 1] ^= 0x40;

    z2 = malloc(zlen + 100);
    memcpy(z2, z, zlen);
    for (size_t i = 0; i < 100; i++)
        z2[zlen + i] = (uint8_t)rng();
    bad = roundtrip(z2, zlen + 100, data, 5000, &rl);
    ok(!bad, "trailing garbage kept: %s", bad ? bad : "regenerated");
    bad = roundtrip(z2, zlen + 1, data, 5000, &rl);
    ok(!bad, "one trailing byte kept: %s", bad ? bad : "regenerated");
    free(z2);
    free(z);
    free(data);
}

static int build_error(const uint8_t *z, size_t zlen, size_t max_out, const char **why)
{
    uint8_t *d, *r;
    size_t dl, rl;
    int err = deflate_recipe_build(z, zlen, max_out, &d, &dl, &r, &rl, why);
    if (!err) {
        free(d);
        free(r);
    }
    return err;
}

static void test_header_and_limits(void)
{
    uint8_t *data;
    size_t zlen;
    const char *why;
    uint8_t *z = text_stream(100000, 6, &zlen, &data);
    int err = build_error(z, zlen, 99999, &why);
    ok(err == -EFBIG, "data over max_out refused (%s)", why ? why : "accepted");
    err = build_error(z, zlen, 100000, &why);
    ok(err == 0, "data of exactly max_out accepted");
    uint8_t h0 = z[0], h1 = z[1];
    z[1] ^= 1;
    err = build_error(z, zlen, MAX_OUT, &why);
    ok(err == -EINVAL, "header check refused (%s)", why ? why : "accepted");
    z[0] = 0x87; /* method 7, check bits made valid */
    z[1] = (uint8_t)(31 - (z[0] * 256u) % 31);
    err = build_error(z, zlen, MAX_OUT, &why);
    ok(err == -EINVAL, "compression method 7 refused (%s)", why ? why : "accepted");
    z[0] = 0x88; /* window size 2^16 */
    z[1] = (uint8_t)(31 - (z[0] * 256u) % 31);
    err = build_error(z, zlen, MAX_OUT, &why);
    ok(err == -EINVAL, "window size 2^16 refused (%s)", why ? why : "accepted");
    z[0] = h0, z[1] = h1;
    err = build_error(NULL, 0, MAX_OUT, &why);
    ok(err == -EINVAL, "empty input refused (%s)", why ? why : "accepted");
    free(z);

    z_stream s;
    uint8_t out[4096];
    memset(&s, 0, sizeof s);
    deflateInit(&s, 6);
    deflateSetDictionary(&s, (const Bytef *)"the pixel of", 12);
    s.next_in = data;
    s.avail_in = 1000;
    s.next_out = out;
    s.avail_out = sizeof out;
    deflate(&s, Z_FINISH);
    err = build_error(out, s.total_out, MAX_OUT, &why);
    ok(err == -ENOTSUP, "preset dictionary refused (%s)", why ? why : "accepted");
    deflateEnd(&s);
    free(data);
}

/* Level and strategy changed mid-stream: stored, fixed and dynamic blocks mixed. */
static void test_param_changes(void)
{
    static const int params[][2] = {{0, Z_DEFAULT_STRATEGY},
                                    {9, Z_DEFAULT_STRATEGY},
                                    {1, Z_FIXED},
                                    {6, Z_HUFFMAN_ONLY},
                                    {4, Z_RLE},
                                    {0, Z_DEFAULT_STRATEGY},
                                    {7, Z_FILTERED}};
    size_t n = 7 * 30000, cap = n * 2, rl;
    uint8_t *data = make_input(INPUT_IMAGE, n), *out = malloc(cap);
    z_stream s;
    memset(&s, 0, sizeof s);
    deflateInit(&s, 6);
    s.next_out = out;
    s.avail_out = (uInt)cap;
    for (size_t k = 0; k < 7; k++) {
        deflateParams(&s, params[k][0], params[k][1]);
        s.next_in = data + k * 30000;
        s.avail_in = 30000;
        deflate(&s, k == 6 ? Z_FINISH : Z_NO_FLUSH);
    }
    const char *bad = roundtrip(out, s.total_out, data, n, &rl);
    ok(!bad, "deflateParams mid-stream, mixed block types: %s", bad ? bad : "regenerated");
    deflateEnd(&s);
    free(data);
    free(out);
}

/* ---------------------------------------------------------------- malformed input */

/* Small streams of every block type, to be cut and damaged. */
static uint8_t *sample_stream(int which, size_t *zlen)
{
    static const zparams kinds[] = {{0, Z_DEFAULT_STRATEGY, 8, 15},
                                    {6, Z_DEFAULT_STRATEGY, 8, 15},
                                    {6, Z_FIXED, 8, 15},
                                    {9, Z_HUFFMAN_ONLY, 8, 15},
                                    {1, Z_RLE, 1, 9}};
    size_t n = which == 0 ? 300 : 3000;
    uint8_t *data = make_input(which == 4 ? INPUT_IMAGE : INPUT_TEXT, n);
    uint8_t *z = zlib_deflate(data, n, kinds[which], zlen);
    free(data);
    return z;
}

static void test_truncations(void)
{
    size_t accepted = 0, tried = 0;
    for (int which = 0; which < 5; which++) {
        size_t zlen;
        uint8_t *z = sample_stream(which, &zlen);
        for (size_t cut = 0; cut < zlen; cut++, tried++) {
            uint8_t *prefix = malloc(cut ? cut : 1); /* exact size, for ASan */
            memcpy(prefix, z, cut);
            const char *why;
            accepted += build_error(prefix, cut, MAX_OUT, &why) != -EINVAL;
            free(prefix);
        }
        free(z);
    }
    ok(accepted == 0, "every truncation refused (%zu prefixes, %zu accepted)", tried, accepted);
}

typedef struct {
    size_t trials, accepted, disagreements, replay_failures;
    char first[200];
} flip_tally;

static void flip_one(flip_tally *t, const uint8_t *z, size_t zlen, int which)
{
    uint8_t *m = malloc(zlen);
    memcpy(m, z, zlen);
    unsigned flips = 1 + rng() % 3;
    for (unsigned k = 0; k < flips; k++) {
        size_t at = rng() % 4 ? rng() % zlen : rng() % (zlen < 64 ? zlen : 64);
        m[at] ^= (uint8_t)(1u << (rng() % 8));
    }
    uint8_t *expect = NULL;
    size_t expect_len, rl;
    const char *why = NULL;
    int zok = zlib_inflate(m, zlen, 0, &expect, &expect_len) == 0;
    int err = build_error(m, zlen, MAX_OUT, &why);
    t->trials++;
    if (zok != (err == 0) && !t->disagreements++)
        snprintf(t->first, sizeof t->first, "stream %d: zlib %s, recipe %d %s", which,
                 zok ? "accepts" : "refuses", err, why ? why : "");
    if (zok && err == 0) {
        t->accepted++;
        t->replay_failures += roundtrip(m, zlen, expect, expect_len, &rl) != NULL;
    }
    free(expect);
    free(m);
}

static void test_bit_flips(int trials)
{
    flip_tally t = {0};
    for (int which = 0; which < 5; which++) {
        size_t zlen;
        uint8_t *z = sample_stream(which, &zlen);
        for (int k = 0; k < trials; k++)
            flip_one(&t, z, zlen, which);
        free(z);
    }
    ok(t.disagreements == 0, "random bit flips: accepted exactly when zlib accepts (%zu of %zu)",
       t.accepted, t.trials);
    if (t.disagreements)
        tap_diag("%zu disagreements, first: %s", t.disagreements, t.first);
    ok(t.replay_failures == 0, "damaged streams that decode still regenerate exactly");
}

/* Structural damage: overwritten runs, inserted, deleted and duplicated spans, cuts
 * with random tails.  Whatever build accepts must be what zlib accepts, hold zlib's
 * data, and replay to the damaged stream exactly. */
static uint8_t *mutate(const uint8_t *z, size_t zlen, size_t *n)
{
    size_t cap = 2 * zlen + 64, len = zlen;
    uint8_t *m = malloc(cap);
    memcpy(m, z, zlen);
    unsigned rounds = 1 + rng() % 3;
    for (unsigned k = 0; k < rounds && len > 2; k++) {
        size_t at = rng() % 3 ? 2 + rng() % (len - 2) : rng() % len;
        size_t span = 1 + rng() % (rng() % 4 ? 4 : 64);
        if (span > len - at)
            span = len - at;
        switch (rng() % 6) {
        case 0: /* overwrite */
            for (size_t i = 0; i < span; i++)
                m[at + i] = (uint8_t)rng();
            break;
        case 1: /* insert random bytes */
            if (len + span > cap)
                break;
            memmove(m + at + span, m + at, len - at);
            for (size_t i = 0; i < span; i++)
                m[at + i] = (uint8_t)rng();
            len += span;
            break;
        case 2: /* delete */
            memmove(m + at, m + at + span, len - at - span);
            len -= span;
            break;
        case 3: /* duplicate a span in place */
            if (len + span > cap)
                break;
            memmove(m + at + span, m + at, len - at);
            len += span;
            break;
        case 4: /* cut, then a random tail */
            len = at;
            for (size_t i = 0; i < span && len < cap; i++)
                m[len++] = (uint8_t)rng();
            break;
        default: /* flip the top or bottom bit of one byte */
            m[at] ^= rng() % 2 ? 0x80 : 0x01;
            break;
        }
    }
    *n = len;
    return m;
}

static void test_mutations(int trials)
{
    size_t tried = 0, accepted = 0, disagreements = 0, wrong = 0;
    char first[200] = "";
    for (int which = 0; which < 5; which++) {
        size_t zlen;
        uint8_t *z = sample_stream(which, &zlen);
        for (int k = 0; k < trials; k++, tried++) {
            size_t n, dl, rl, el, again_len;
            uint8_t *m = mutate(z, zlen, &n), *d, *r, *e = NULL, *again;
            uint8_t *exact = malloc(n ? n : 1); /* exact size, for ASan */
            memcpy(exact, m, n);
            free(m);
            const char *why = NULL;
            int zok = zlib_inflate(exact, n, 0, &e, &el) == 0;
            int err = deflate_recipe_build(exact, n, MAX_OUT, &d, &dl, &r, &rl, &why);
            if (zok != (err == 0) && !disagreements++)
                snprintf(first, sizeof first, "stream %d: zlib %s, recipe %d %s", which,
                         zok ? "accepts" : "refuses", err, why ? why : "");
            if (!err) {
                accepted++;
                int same = zok && dl == el && memcmp(d, e, dl) == 0 &&
                           deflate_recipe_replay(r, rl, d, dl, &again, &again_len) == 0;
                if (same) {
                    same = again_len == n && memcmp(again, exact, n) == 0;
                    free(again);
                }
                wrong += !same;
                free(d);
                free(r);
            }
            free(e);
            free(exact);
        }
        free(z);
    }
    ok(disagreements == 0 && wrong == 0,
       "random structural mutations: accepted exactly when zlib accepts, replayed exactly "
       "(%zu of %zu accepted)",
       accepted, tried);
    if (disagreements || wrong)
        tap_diag("%zu disagreements, %zu wrong replays; first: %s", disagreements, wrong, first);
}

/* A recipe whose last four bytes are the Adler-32 of the rest, as format 2 ends, so
 * that damage to the rest reaches the parser instead of stopping at the checksum. */
static uint8_t *recipe_reseal(const uint8_t *body, size_t n, size_t *rl)
{
    uint8_t *r = malloc(n + 4);
    memcpy(r, body, n);
    put_be32(r + n, adler_of(body, n));
    *rl = n + 4;
    return r;
}

static void damage(uint8_t *body, size_t *n)
{
    unsigned how = rng() % 4;
    if (how == 0 && *n > 0)
        *n = rng() % *n; /* cut */
    else if (how == 1)
        body[rng() % *n] = (uint8_t)rng();
    else
        body[rng() % *n] ^= (uint8_t)(1u << (rng() % 8));
}

/* Replay of damaged recipes, and of the right recipe with the wrong data. */
static void test_damaged_recipes(int trials)
{
    size_t rejected = 0, tried = 0, packed_rejected = 0, packed_tried = 0, packed_wrong = 0;
    for (int which = 1; which < 5; which++) {
        size_t zlen, dl, rl, bl, zl;
        uint8_t *z = sample_stream(which, &zlen), *d, *r, *out;
        const char *why;
        deflate_recipe_build(z, zlen, MAX_OUT, &d, &dl, &r, &rl, &why);
        bl = rl - 4; /* everything before the recipe's checksum */
        uint8_t *body = r;
        for (int k = 0; k < trials && body; k++, tried++) {
            uint8_t *copy = malloc(bl);
            memcpy(copy, body, bl);
            size_t n = bl, wl;
            damage(copy, &n);
            uint8_t *wrapped = recipe_reseal(copy, n, &wl);
            if (deflate_recipe_replay(wrapped, wl, d, dl, &out, &zl) == 0)
                free(out);
            else
                rejected++;
            free(wrapped);
            free(copy);
        }
        for (size_t bit = 0; bit < 8 * rl; bit += 3, packed_tried++) {
            r[bit / 8] ^= (uint8_t)(1u << bit % 8);
            if (deflate_recipe_replay(r, rl, d, dl, &out, &zl) == 0) {
                packed_wrong += zl != zlen || memcmp(out, z, zlen) != 0;
                free(out);
            } else {
                packed_rejected++;
            }
            r[bit / 8] ^= (uint8_t)(1u << bit % 8);
        }
        ok(deflate_recipe_replay(r, rl, d, dl - 1, &out, &zl) == -EINVAL, "data one byte short");
        free(d);
        free(r);
        free(z);
    }
    ok(1, "damaged recipe bodies replayed without a crash (%zu of %zu refused)", rejected, tried);
    /* The recipe's Adler-32 catches every single bit flip. */
    ok(packed_wrong == 0, "bit flips in stored recipes refused or harmless (%zu of %zu refused)",
       packed_rejected, packed_tried);
    uint8_t junk[3] = {DEFLATE_RECIPE_FORMAT, 0x7f, 0};
    uint8_t *out;
    size_t zl;
    ok(deflate_recipe_replay(junk, 3, NULL, 0, &out, &zl) == -EBADMSG, "junk recipe refused");
}

/* ---------------------------------------------------------------- speed */

static double cpu_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

typedef struct {
    double build, replay; /* MB of decompressed data per CPU second, best of three */
    size_t zlen, recipe_len, data_len;
    int exact;
} speed;

static speed measure_speed(const uint8_t *z, size_t zlen)
{
    speed sp = {0, 0, zlen, 0, 0, 1};
    double build = 1e9, replay = 1e9;
    for (int k = 0; k < 3; k++) {
        uint8_t *d, *r, *out;
        size_t dl, rl, zl;
        const char *why;
        double t0 = cpu_seconds();
        int err = deflate_recipe_build(z, zlen, MAX_OUT, &d, &dl, &r, &rl, &why);
        double t1 = cpu_seconds();
        if (err) {
            sp.exact = 0;
            return sp;
        }
        build = t1 - t0 < build ? t1 - t0 : build;
        for (int j = 0; j < (k == 0 ? 3 : 0); j++) {
            t0 = cpu_seconds();
            err = deflate_recipe_replay(r, rl, d, dl, &out, &zl);
            t1 = cpu_seconds();
            replay = t1 - t0 < replay ? t1 - t0 : replay;
            sp.exact &= !err && zl == zlen && memcmp(out, z, zlen) == 0;
            if (!err)
                free(out);
        }
        sp.recipe_len = rl;
        sp.data_len = dl;
        free(d);
        free(r);
    }
    sp.build = mb_per_second(sp.data_len, build);
    sp.replay = mb_per_second(sp.data_len, replay);
    return sp;
}

static void report_speed(const speed *sp, const char *what)
{
    tap_diag("%s: %.1f MB data, recipe/zstream %.3f; build %.0f MB/s, replay %.0f MB/s (CPU "
             "time, best of 3)",
             what, (double)sp->data_len / 1e6, (double)sp->recipe_len / (double)sp->zlen, sp->build,
             sp->replay);
}

/* Build and replay speed on a 4000 x 3000 RGB photo (36 MB of filtered scanlines) and
 * 2 MiB of image and text, all zlib level 6. */
static void test_speed(void)
{
#if defined(__SANITIZE_ADDRESS__)
    uint32_t w = 1000, h = 750; /* the sanitizers run several times slower */
#else
    uint32_t w = 4000, h = 3000;
#endif
    size_t n = (size_t)h * (3 * w + 1), zlen;
    uint8_t *raw = malloc(n);
    fill_image_rows(raw, n, w);
    uint8_t *z = zlib_deflate(raw, n, (zparams){6, Z_DEFAULT_STRATEGY, 8, 15}, &zlen);
    free(raw);
    speed photo = measure_speed(z, zlen);
    free(z);
    char what[64];
    snprintf(what, sizeof what, "zlib level 6, %ux%u RGB photo", w, h);
    report_speed(&photo, what);
    ok(photo.exact, "%s regenerated byte-identical", what);
    speed kinds[2];
    for (int k = 0; k < 2; k++) {
        size_t m = 2 << 20;
        uint8_t *data = make_input(k ? INPUT_TEXT : INPUT_IMAGE, m);
        z = zlib_deflate(data, m, (zparams){6, Z_DEFAULT_STRATEGY, 8, 15}, &zlen);
        kinds[k] = measure_speed(z, zlen);
        report_speed(&kinds[k], k ? "zlib level 6, 2 MiB text" : "zlib level 6, 2 MiB image");
        free(z);
        free(data);
    }
#if defined(__SANITIZE_ADDRESS__)
    skip("speed is not measured under sanitizers");
#else
    /* Floors well below the usual figures, to catch a slip into encoder-speed replay or
     * quadratic work on a busy machine, not to benchmark. */
    ok(photo.replay >= 80 && photo.build >= 15 && kinds[0].replay >= 50 && kinds[1].replay >= 50,
       "replay at %.0f MB/s (floor 80), build at %.0f MB/s (floor 15) of decompressed data",
       photo.replay, photo.build);
#endif
}

int main(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/pxc-recipe-XXXXXX");
    if (!mkdtemp(tmpdir))
        return 1;
    find_corpus();
    static const size_t sizes[] = {0, 1, 100, 4096, 65535, 65536};
    for (int kind = 0; kind < INPUT_KINDS; kind++)
        for (size_t k = 0; k < sizeof sizes / sizeof *sizes; k++)
            if (sizes[k] != 65535 || kind == INPUT_RANDOM || kind == INPUT_ZEROS)
                test_zlib_matrix((enum input_kind)kind, sizes[k]); /* 65535: stored blocks */
    for (int kind = 0; kind < INPUT_KINDS; kind++)
        test_zlib_large((enum input_kind)kind);
    test_flush_markers();
    test_param_changes();
    test_stored_padding();
    test_fixed_blocks();
    test_fixed_errors();
    test_dynamic_unusual_repeats();
    test_dynamic_codes();
    test_adler_and_trailing();
    test_header_and_limits();
    test_corpus();
    test_external_encoders();
    test_truncations();
    test_bit_flips(SCALE(2000));
    test_mutations(SCALE(2000));
    test_damaged_recipes(SCALE(2000));
    test_speed();
    run("rm -rf %s%s", tmpdir, "");
    free_corpus();
    return tap_done();
}

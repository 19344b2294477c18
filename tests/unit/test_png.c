/* Unit tests of the PNG codec: corpus round trips, generated variants (every colour
 * type and depth, zlib levels and strategies, Adam7, metadata chunks, odd layouts),
 * stored files checked with libpng, pngcheck and ImageMagick, tamper and truncation,
 * malformed and mutated input, limits, throughput and size.  Corpus from $PXC_CORPUS,
 * default <repo>/../shared/corpus. */
#include <dirent.h>
#include <errno.h>
#include <png.h>
#include <sodium.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "codec/png.h"
#include "tap.h"

static pxc_keys *keys;
static char tmpdir[] = "/tmp/pxc-png-XXXXXX";
static int stored_files; /* written to tmpdir for the external tools */

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

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static void mb_chunk(membuf *m, const char *type, const void *data, uint32_t len)
{
    uint8_t hdr[8], crc[4];
    put_be32(hdr, len);
    memcpy(hdr + 4, type, 4);
    mb_put(m, hdr, 8);
    mb_put(m, data, len);
    uLong c = crc32(0, hdr + 4, 4);
    if (len)
        c = crc32(c, data, len);
    put_be32(crc, (uint32_t)c);
    mb_put(m, crc, 4);
}

/* Inserts a complete chunk at byte offset at of a PNG in m. */
static void insert_chunk(membuf *m, size_t at, const char *type, const void *data, uint32_t len)
{
    membuf c = {0};
    mb_chunk(&c, type, data, len);
    mb_put(m, c.p, c.len); /* grow */
    memmove(m->p + at + c.len, m->p + at, m->len - c.len - at);
    memcpy(m->p + at, c.p, c.len);
    free(c.p);
}

/* Offset of the first chunk of the given type, or 0. */
static size_t find_chunk(const uint8_t *p, size_t n, const char *type)
{
    size_t pos = 8;
    while (pos + 12 <= n) {
        uint32_t len = be32(p + pos);
        if (memcmp(p + pos + 4, type, 4) == 0)
            return pos;
        if (len > n - pos - 12)
            break;
        pos += 12 + (size_t)len;
    }
    return 0;
}

/* ---- libpng helpers ------------------------------------------------------------------ */

static void mem_write(png_structp png, png_bytep data, size_t len)
{
    mb_put(png_get_io_ptr(png), data, len);
}

static void mem_flush(png_structp png)
{
    (void)png;
}

typedef struct variant {
    uint32_t w, h;
    int color, depth, interlace;
    int zlevel, zstrategy, filters;
    size_t zbuf;   /* libpng's compression buffer: IDAT chunk size */
    int npal;      /* palette entries (palette images) */
    int meta;      /* add text, tIME, and (injected) iCCP, eXIf, a private chunk */
    unsigned seed; /* picture content */
} variant;

static const char *const secrets[] = {"SecretAuthorName", "SecretCommentText",
                                      "SecretXmpPacket",  "SecretIccProfileName",
                                      "SecretExifSerial", "SecretPrivateChunk"};
#define NSECRETS (sizeof secrets / sizeof *secrets)

static unsigned channels_of(int color)
{
    return color == 0 || color == 3 ? 1 : color == 2 ? 3 : color == 4 ? 2 : 4;
}

/* A smooth picture with some texture, so that the filters and matches vary. */
static unsigned sample_at(const variant *v, uint32_t x, uint32_t y, unsigned c, unsigned max)
{
    unsigned base = (unsigned)((x * 7 + y * 3 + c * 50 + v->seed) % 256);
    unsigned tex = ((x / 4 + y / 4) & 1) * 20 + ((x * y + v->seed) % 7);
    uint64_t val = (uint64_t)(base + tex) * max / 290;
    return (unsigned)(val > max ? max : val);
}

static int make_png(const variant *v, membuf *out)
{
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    unsigned ch = channels_of(v->color), bits = ch * (unsigned)v->depth;
    size_t rowbytes = ((size_t)v->w * bits + 7) / 8;
    uint8_t *img = calloc(v->h, rowbytes);
    png_bytep *rows = calloc(v->h, sizeof *rows);

    memset(out, 0, sizeof *out);
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        free(img);
        free(rows);
        free(out->p);
        memset(out, 0, sizeof *out);
        return -1;
    }
    png_set_write_fn(png, out, mem_write, mem_flush);
    png_set_compression_level(png, v->zlevel);
    png_set_compression_strategy(png, v->zstrategy);
    if (v->zbuf)
        png_set_compression_buffer_size(png, v->zbuf);
    png_set_filter(png, 0, v->filters ? v->filters : PNG_ALL_FILTERS);
    png_set_IHDR(png, info, v->w, v->h, v->depth, v->color,
                 v->interlace ? PNG_INTERLACE_ADAM7 : PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    unsigned max = (1u << v->depth) - 1;
    if (v->color == 3) {
        png_color pal[256];
        png_byte alpha[256];
        for (int i = 0; i < v->npal; i++) {
            pal[i].red = (png_byte)(i * 3);
            pal[i].green = (png_byte)(255 - i);
            pal[i].blue = (png_byte)(i * 7);
            alpha[i] = (png_byte)(255 - i);
        }
        png_set_PLTE(png, info, pal, v->npal);
        png_set_tRNS(png, info, alpha, v->npal > 4 ? 4 : v->npal, NULL);
        max = (unsigned)v->npal - 1;
    }
    if (v->meta) {
        png_text text[3];
        memset(text, 0, sizeof text);
        text[0].compression = PNG_TEXT_COMPRESSION_NONE;
        text[0].key = "Author";
        text[0].text = (char *)secrets[0];
        text[1].compression = PNG_TEXT_COMPRESSION_zTXt;
        text[1].key = "Comment";
        text[1].text = "SecretCommentText, long enough that zTXt compresses it: "
                       "SecretCommentText SecretCommentText SecretCommentText";
        text[2].compression = PNG_ITXT_COMPRESSION_NONE;
        text[2].key = "XML:com.adobe.xmp";
        text[2].text = "<x:xmpmeta>SecretXmpPacket</x:xmpmeta>";
        text[2].lang = "";
        text[2].lang_key = "";
        png_set_text(png, info, text, 3);
        png_time t = {2024, 5, 17, 12, 34, 56};
        png_set_tIME(png, info, &t);
    }
    for (uint32_t y = 0; y < v->h; y++) {
        uint8_t *row = img + (size_t)y * rowbytes;
        rows[y] = row;
        for (uint32_t x = 0; x < v->w; x++)
            for (unsigned c = 0; c < ch; c++) {
                unsigned s = sample_at(v, x, y, c, max);
                size_t i = (size_t)x * ch + c;
                if (v->depth == 16) {
                    row[2 * i] = (uint8_t)(s >> 8);
                    row[2 * i + 1] = (uint8_t)s;
                } else if (v->depth == 8) {
                    row[i] = (uint8_t)s;
                } else {
                    unsigned per = 8 / (unsigned)v->depth;
                    row[i / per] |= (uint8_t)(s << (8 - v->depth * (int)(i % per + 1)));
                }
            }
    }
    png_set_rows(png, info, rows);
    png_write_png(png, info, PNG_TRANSFORM_IDENTITY, NULL);
    png_destroy_write_struct(&png, &info);
    free(img);
    free(rows);
    if (v->meta) {
        static const char icc[] = "SecretIccProfileName\0\0x\x9c\x03\x00\x00\x00\x00\x01";
        static const char exif[] = "MM\0*\0\0\0\x08SecretExifSerial";
        static const char prv[] = "SecretPrivateChunk payload";
        insert_chunk(out, 33, "iCCP", icc, sizeof icc - 1);
        insert_chunk(out, 33, "prVt", prv, sizeof prv - 1);
        insert_chunk(out, find_chunk(out->p, out->len, "IEND"), "eXIf", exif, sizeof exif - 1);
    }
    return 0;
}

/* Decodes a PNG with libpng's simplified API; returns 0 and the dimensions. */
static int libpng_decode(const uint8_t *p, size_t n, uint32_t *w, uint32_t *h)
{
    png_image img;
    memset(&img, 0, sizeof img);
    img.version = PNG_IMAGE_VERSION;
    if (!png_image_begin_read_from_memory(&img, p, n))
        return -1;
    img.format = PNG_FORMAT_RGBA;
    size_t sz = PNG_IMAGE_SIZE(img);
    void *buf = malloc(sz);
    int good = buf && png_image_finish_read(&img, NULL, buf, 0, NULL);
    free(buf);
    *w = img.width;
    *h = img.height;
    png_image_free(&img);
    return good ? 0 : -1;
}

/* ---- the common checks --------------------------------------------------------------- */

typedef struct stats {
    int stored, declined, failures;
    double plain_bytes, stored_bytes, raw_bytes, enc_s, dec_s;
    double ratios[512];
    int nratios;
} stats;

static void write_file(const char *path, const uint8_t *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (f) {
        fwrite(p, 1, n, f);
        fclose(f);
    }
}

/* Whether the data of some original chunk other than IHDR and IDAT (at least 12 bytes,
 * not all the same byte) appears in the stored file. */
static int leaked_chunk(const uint8_t *p, size_t n, const uint8_t *stored, size_t sn)
{
    size_t pos = 33;
    while (pos + 12 <= n) {
        uint32_t len = be32(p + pos);
        if (len > n - pos - 12)
            break;
        const uint8_t *d = p + pos + 8, *type = p + pos + 4;
        int uniform = 1;
        for (uint32_t i = 1; i < len && uniform; i++)
            uniform = d[i] == d[0];
        if (len >= 12 && !uniform && memcmp(type, "IDAT", 4) != 0 && memmem(stored, sn, d, len))
            return 1;
        pos += 12 + (size_t)len;
    }
    return 0;
}

/* Encodes, decodes, and checks the stored form.  Returns 1 if stored, 0 if declined
 * (with *why_out), -1 on a failed check (already reported). */
static int check_one(const char *name, const uint8_t *plain, size_t n, stats *st,
                     const char **why_out, int save)
{
    pxc_file_secrets s;
    uint8_t *stored = NULL, *back = NULL;
    size_t sn = 0, bn = 0;
    const char *why = NULL;

    pxc_secrets_fresh(&s);
    double t0 = now();
    int rc = png_codec_encode(plain, n, keys, &s, &stored, &sn, &why);
    double t1 = now();
    if (why_out)
        *why_out = why;
    if (rc != 0) {
        if (!why || stored || rc > 0) {
            ok(0, "%s: declined (%d) without a reason, or left output", name, rc);
            return -1;
        }
        st->declined++;
        return 0;
    }
    int drc = png_codec_decode(stored, sn, keys, &back, &bn);
    double t2 = now();
    int good = drc == 0 && bn == n && memcmp(back, plain, n) == 0;
    const char *what = good ? NULL : "decode differs";

    png_peek_info pi;
    if (!what && (png_codec_peek(stored, sn, &pi) != 0 || pi.plain_size != n ||
                  memcmp(pi.file_id, s.file_id, sizeof s.file_id) != 0))
        what = "peek";
    if (!what && memcmp(stored + 8, plain + 8, 25 - 4) != 0)
        what = "IHDR fields differ";
    uint32_t w, h;
    if (!what &&
        (libpng_decode(stored, sn, &w, &h) != 0 || w != be32(plain + 16) || h != be32(plain + 20)))
        what = "libpng does not decode the stored file";
    for (size_t i = 0; !what && i < NSECRETS; i++)
        if (memmem(stored, sn, secrets[i], strlen(secrets[i])))
            what = "a metadata string is readable in the stored file";
    if (!what && leaked_chunk(plain, n, stored, sn))
        what = "an original chunk's data is readable in the stored file";
    if (!what) {
        uint8_t *head = NULL;
        size_t hn = 0;
        pxc_plain_tail tail;
        uint64_t ahead_end, tail_off;
        pxc_preview_plan(n, find_chunk(plain, n, "IDAT"), &ahead_end, &tail_off);
        if (png_codec_decode_head(stored, (size_t)pi.head_bytes, keys, &head, &hn, &tail) != 0 ||
            hn != ahead_end || memcmp(head, plain, hn) != 0 || tail.len != n - tail_off ||
            (tail.len && (tail.off != tail_off || memcmp(tail.data, plain + tail_off, tail.len))))
            what = "decode_head";
        free(head);
        free(tail.data);
    }
    if (what) {
        ok(0, "%s: %s (decode rc %d)", name, what, drc);
        st->failures++;
    } else {
        st->stored++;
        st->plain_bytes += (double)n;
        st->stored_bytes += (double)sn;
        st->raw_bytes +=
            (double)be32(plain + 16) * be32(plain + 20) * channels_of(plain[25]) * plain[24] / 8;
        st->enc_s += t1 - t0;
        st->dec_s += t2 - t1;
        if (st->nratios < (int)(sizeof st->ratios / sizeof *st->ratios))
            st->ratios[st->nratios++] = (double)sn / (double)n;
        if (save) {
            char path[512];
            snprintf(path, sizeof path, "%s/%04d.png", tmpdir, stored_files++);
            write_file(path, stored, sn);
        }
    }
    free(stored);
    free(back);
    return what ? -1 : 1;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void report(const char *what, stats *st)
{
    qsort(st->ratios, (size_t)st->nratios, sizeof *st->ratios, cmp_double);
    double median = st->nratios ? st->ratios[st->nratios / 2] : 0;
    tap_diag("%s: %d stored, %d declined", what, st->stored, st->declined);
    if (!st->stored)
        return;
    tap_diag("  stored/original size: total %.3f, median %.3f", st->stored_bytes / st->plain_bytes,
             median);
    tap_diag("  encode+verify %.1f MB/s, decode %.1f MB/s of file (%.1f, %.1f MB/s of pixels)",
             st->plain_bytes / st->enc_s / 1e6, st->plain_bytes / st->dec_s / 1e6,
             st->raw_bytes / st->enc_s / 1e6, st->raw_bytes / st->dec_s / 1e6);
}

/* ---- corpus -------------------------------------------------------------------------- */

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

static char corpus[512];

static int find_corpus(void)
{
    const char *env = getenv("PXC_CORPUS"), *build = getenv("PXC_BUILD");
    struct stat sb;
    if (env) {
        snprintf(corpus, sizeof corpus, "%s", env);
        return stat(corpus, &sb) == 0;
    }
    if (build) { /* <repo>/build/<kind> */
        snprintf(corpus, sizeof corpus, "%s/../../../shared/corpus", build);
        if (stat(corpus, &sb) == 0)
            return 1;
    }
    snprintf(corpus, sizeof corpus, "../shared/corpus");
    return stat(corpus, &sb) == 0;
}

static int is_png_name(const char *name)
{
    size_t l = strlen(name);
    return l > 4 && strcmp(name + l - 4, ".png") == 0;
}

/* Whether declining a corpus file is right.  PngSuite's valid files (names not starting
 * with x) must all be stored; testpngs' badpal-* files use palette indices past their
 * PLTE, which decoders show differently (libpng as black, or an error), so they are
 * kept opaque; the malformed ones may be declined for anything. */
static int decline_expected(const char *sub, const char *name, const char *why)
{
    if (strstr(sub, "malformed") || !is_png_name(name))
        return 1;
    if (strstr(sub, "testpngs") && strncmp(name, "badpal-", 7) == 0)
        return strstr(why, "palette index") != NULL;
    return strstr(sub, "pngsuite") && name[0] == 'x';
}

static void corpus_dir(const char *sub, stats *st, int *unexpected, int *bad)
{
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/%s", corpus, sub);
    struct dirent **ents;
    int ne = scandir(dir, &ents, NULL, alphasort);
    if (ne < 0)
        return;
    for (int i = 0; i < ne; i++) {
        const char *name = ents[i]->d_name;
        char path[2048];
        snprintf(path, sizeof path, "%s/%s", dir, name);
        struct stat sb;
        if (name[0] == '.' || stat(path, &sb) != 0 || !S_ISREG(sb.st_mode)) {
            free(ents[i]);
            continue;
        }
        size_t n = 0;
        uint8_t *p = read_file(path, &n);
        char label[1100];
        snprintf(label, sizeof label, "%s/%s", sub, name);
        const char *why = NULL;
        int r = p ? check_one(label, p, n, st, &why, 1) : -1;
        if (r < 0)
            (*bad)++;
        if (r == 0 && is_png_name(name)) {
            tap_diag("declined %s: %s", label, why);
            if (!decline_expected(sub, name, why)) {
                (*unexpected)++;
                tap_diag("  ^ a valid PNG that should have been stored");
            }
        }
        free(p);
        free(ents[i]);
    }
    free(ents);
}

static void test_corpus(void)
{
    static const char *const subs[] = {"png/pngsuite",  "png/testpngs",       "png/libjpeg-turbo",
                                       "png/malformed", "jpeg/libjpeg-turbo", "jpeg/exiftool"};
    if (!find_corpus()) {
        printf("ok %d # SKIP corpus not found (set PXC_CORPUS)\n", ++tap_count);
        return;
    }
    for (size_t k = 0; k < sizeof subs / sizeof *subs; k++) {
        stats st;
        int unexpected = 0, bad = 0;
        memset(&st, 0, sizeof st);
        corpus_dir(subs[k], &st, &unexpected, &bad);
        report(subs[k], &st);
        ok(bad == 0, "%s: every stored file round-trips and passes the checks (%d bad)", subs[k],
           bad);
        if (strncmp(subs[k], "png/", 4) == 0)
            ok(unexpected == 0 && st.stored > 0, "%s: no valid PNG declined but the justified ones",
               subs[k]);
        else
            ok(st.stored == 0 && st.declined > 0, "%s: JPEGs are declined as not PNG", subs[k]);
    }
}

/* ---- generated variants -------------------------------------------------------------- */

static int run_variant(const char *label, const variant *v, stats *st, const char **why)
{
    membuf m;
    if (make_png(v, &m) != 0) {
        ok(0, "%s: libpng could not write the variant", label);
        return -1;
    }
    int r = check_one(label, m.p, m.len, st, why, 1);
    free(m.p);
    return r;
}

static void test_zlib_variants(void)
{
    static const int strategies[] = {Z_DEFAULT_STRATEGY, Z_FILTERED, Z_HUFFMAN_ONLY, Z_RLE,
                                     Z_FIXED};
    stats st;
    int stored = 0, total = 0;
    memset(&st, 0, sizeof st);
    for (int level = 0; level <= 9; level++)
        for (size_t k = 0; k < sizeof strategies / sizeof *strategies; k++) {
            variant v = {.w = 97,
                         .h = 61,
                         .color = 2,
                         .depth = 8,
                         .zlevel = level,
                         .zstrategy = strategies[k],
                         .seed = (unsigned)(level * 5 + (int)k)};
            char label[64];
            const char *why = NULL;
            snprintf(label, sizeof label, "zlib level %d strategy %d", level, strategies[k]);
            int r = run_variant(label, &v, &st, &why);
            total++;
            stored += r == 1;
            if (r == 0)
                tap_diag("declined %s: %s", label, why);
        }
    report("zlib levels x strategies", &st);
    ok(stored == total, "every zlib level 0-9 and strategy stored and round-trips (%d/%d)", stored,
       total);
}

static void test_layout_variants(void)
{
    static const struct {
        int color, depth;
    } kinds[] = {{0, 1}, {0, 2}, {0, 4}, {0, 8}, {0, 16}, {2, 8}, {2, 16}, {3, 1},
                 {3, 2}, {3, 4}, {3, 8}, {4, 8}, {4, 16}, {6, 8}, {6, 16}};
    static const uint32_t sizes[][2] = {{1, 1}, {3, 2}, {13, 7}, {33, 17}, {64, 40}};
    static const int filters[] = {
        0, PNG_FILTER_NONE, PNG_FILTER_SUB, PNG_FILTER_UP, PNG_FILTER_AVG, PNG_FILTER_PAETH};
    stats st;
    int stored = 0, total = 0;
    memset(&st, 0, sizeof st);
    for (size_t k = 0; k < sizeof kinds / sizeof *kinds; k++)
        for (int il = 0; il < 2; il++)
            for (size_t z = 0; z < sizeof sizes / sizeof *sizes; z++) {
                variant v = {.w = sizes[z][0],
                             .h = sizes[z][1],
                             .color = kinds[k].color,
                             .depth = kinds[k].depth,
                             .interlace = il,
                             .zlevel = 6,
                             .filters = filters[(k + z + (size_t)il) % 6],
                             .seed = (unsigned)(k * 31 + z)};
                if (v.color == 3) {
                    int full = 1 << v.depth;
                    v.npal = z % 2 ? full : (full > 3 ? full - 3 : full);
                }
                char label[96];
                const char *why = NULL;
                snprintf(label, sizeof label, "colour %d depth %d %ux%u%s", v.color, v.depth, v.w,
                         v.h, il ? " Adam7" : "");
                int r = run_variant(label, &v, &st, &why);
                total++;
                stored += r == 1;
                if (r == 0)
                    tap_diag("declined %s: %s", label, why);
            }
    report("colour types x depths x sizes x interlace", &st);
    ok(stored == total, "every colour type, bit depth and interlace stored (%d/%d)", stored, total);
}

static void test_metadata(void)
{
    stats st;
    memset(&st, 0, sizeof st);
    int good = 1;
    for (int il = 0; il < 2; il++) {
        variant v = {.w = 40,
                     .h = 30,
                     .color = il ? 3 : 6,
                     .depth = 8,
                     .interlace = il,
                     .zlevel = 9,
                     .npal = 77,
                     .meta = 1,
                     .seed = 9};
        membuf m;
        make_png(&v, &m);
        int present = 1;
        for (size_t i = 0; i < NSECRETS; i++)
            if (i != 1 && !memmem(m.p, m.len, secrets[i], strlen(secrets[i])))
                present = 0; /* the zTXt one is compressed */
        ok(present, "metadata strings are in the original (%s)", il ? "palette" : "RGBA");
        good &= check_one(il ? "metadata palette Adam7" : "metadata RGBA", m.p, m.len, &st, NULL,
                          1) == 1;
        free(m.p);
    }
    ok(good, "tEXt/zTXt/iTXt/tIME/iCCP/eXIf/private chunks sealed, back on decode, in order");
}

/* Odd layouts made from libpng output. */
static void test_odd_layouts(void)
{
    stats st;
    memset(&st, 0, sizeof st);
    variant v = {.w = 50, .h = 20, .color = 2, .depth = 8, .zlevel = 6, .seed = 3};
    membuf m;

    /* Many IDAT splits: libpng's buffer sizes, then one byte per chunk. */
    static const size_t splits[] = {6, 7, 100, 4096};
    int good = 1;
    for (size_t k = 0; k < sizeof splits / sizeof *splits; k++) {
        v.zbuf = splits[k];
        make_png(&v, &m);
        char label[64];
        snprintf(label, sizeof label, "IDAT chunks of %zu bytes", splits[k]);
        good &= check_one(label, m.p, m.len, &st, NULL, 1) == 1;
        if (k == 0) { /* the same stream re-split into 1-byte IDAT chunks */
            membuf one = {0};
            size_t pos = 8;
            mb_put(&one, m.p, 8);
            while (pos + 12 <= m.len) {
                uint32_t len = be32(m.p + pos);
                if (memcmp(m.p + pos + 4, "IDAT", 4) == 0)
                    for (uint32_t i = 0; i < len; i++)
                        mb_chunk(&one, "IDAT", m.p + pos + 8 + i, 1);
                else
                    mb_put(&one, m.p + pos, 12 + (size_t)len);
                pos += 12 + (size_t)len;
            }
            good &= check_one("1-byte IDAT chunks", one.p, one.len, &st, NULL, 1) == 1;
            free(one.p);
        }
        free(m.p);
    }
    ok(good, "IDAT split into many chunks (down to 1 byte) round-trips");
    v.zbuf = 0;

    /* Trailing bytes after IEND. */
    make_png(&v, &m);
    mb_put(&m, "trailing garbage\n\0\1\2", 20);
    ok(check_one("trailing bytes", m.p, m.len, &st, NULL, 1) == 1,
       "bytes after IEND are kept and come back");
    free(m.p);

    /* Wrong CRCs on IHDR, an IDAT and an ancillary chunk. */
    v.meta = 1;
    make_png(&v, &m);
    m.p[29] ^= 0x55;
    size_t idat = find_chunk(m.p, m.len, "IDAT");
    m.p[idat + 8 + be32(m.p + idat)] ^= 1;
    size_t t = find_chunk(m.p, m.len, "tEXt");
    m.p[t + 8 + be32(m.p + t) + 3] ^= 0x80;
    ok(check_one("bad CRCs", m.p, m.len, &st, NULL, 0) == 1,
       "wrong chunk CRCs come back as they were");
    free(m.p);
    v.meta = 0;

    /* Zero-length IDAT chunks in the run. */
    make_png(&v, &m);
    idat = find_chunk(m.p, m.len, "IDAT");
    insert_chunk(&m, idat, "IDAT", "", 0);
    insert_chunk(&m, find_chunk(m.p, m.len, "IEND"), "IDAT", "", 0);
    ok(check_one("empty IDATs", m.p, m.len, &st, NULL, 1) == 1, "zero-length IDAT chunks");
    free(m.p);
}

/* Hand-made PNGs: rows as given, compressed by zlib. */
static void craft(membuf *m, uint32_t w, uint32_t h, int depth, int color, const uint8_t *pal,
                  size_t pal_len, const uint8_t *rows, size_t rows_len)
{
    uint8_t ihdr[13];
    put_be32(ihdr, w);
    put_be32(ihdr + 4, h);
    ihdr[8] = (uint8_t)depth;
    ihdr[9] = (uint8_t)color;
    ihdr[10] = ihdr[11] = ihdr[12] = 0;
    memset(m, 0, sizeof *m);
    mb_put(m, "\x89PNG\r\n\x1a\n", 8);
    mb_chunk(m, "IHDR", ihdr, 13);
    if (pal)
        mb_chunk(m, "PLTE", pal, (uint32_t)pal_len);
    uLongf zl = compressBound((uLong)rows_len);
    uint8_t *z = malloc(zl);
    compress2(z, &zl, rows, (uLong)rows_len, 9);
    mb_chunk(m, "IDAT", z, (uint32_t)zl);
    mb_chunk(m, "IEND", NULL, 0);
    free(z);
}

static void test_crafted(void)
{
    stats st;
    memset(&st, 0, sizeof st);
    membuf m;
    const char *why;
    int r;

    /* 1-bit gray, width 13: 3 padding bits per row, set to a pattern. */
    uint8_t rows[5 * 3];
    for (int y = 0; y < 5; y++) {
        rows[y * 3] = (uint8_t)(y % 5);
        rows[y * 3 + 1] = (uint8_t)(0xa5 + y);
        rows[y * 3 + 2] = (uint8_t)(0xf8 | y); /* low 3 bits: padding */
    }
    craft(&m, 13, 5, 1, 0, NULL, 0, rows, sizeof rows);
    ok(check_one("padding bits", m.p, m.len, &st, NULL, 1) == 1, "nonzero row padding bits kept");
    free(m.p);

    /* Image data continuing after the last row. */
    uint8_t more[3 * 4 + 9];
    memset(more, 7, sizeof more);
    for (int y = 0; y < 3; y++)
        more[y * 4] = 0;
    craft(&m, 3, 3, 8, 0, NULL, 0, more, sizeof more);
    ok(check_one("extra image data", m.p, m.len, &st, NULL, 0) == 1,
       "image data after the last row kept");
    free(m.p);

    /* Palette index past the palette: declined. */
    uint8_t pal[6] = {1, 2, 3, 4, 5, 6}, idx[2 * 3] = {0, 0, 1, 0, 1, 2};
    craft(&m, 2, 2, 8, 3, pal, sizeof pal, idx, sizeof idx);
    r = check_one("index past palette", m.p, m.len, &st, &why, 0);
    ok(r == 0, "palette index past PLTE declined (%s)", why);
    free(m.p);
    idx[5] = 1;
    craft(&m, 2, 2, 8, 3, pal, sizeof pal, idx, sizeof idx);
    ok(check_one("two-entry palette", m.p, m.len, &st, &why, 1) == 1, "two-entry palette stored");
    free(m.p);

    /* More palette entries than the bit depth can index. */
    uint8_t pal12[12] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}, bits[4] = {0, 0, 0, 0x80};
    craft(&m, 1, 2, 1, 3, pal12, sizeof pal12, bits, sizeof bits);
    r = check_one("4-entry palette at depth 1", m.p, m.len, &st, &why, 1);
    ok(r == 1, "palette longer than the depth allows stored (%s)", r ? "" : why);
    free(m.p);

    /* Unknown filter type: declined. */
    uint8_t badf[2 * 3] = {5, 1, 2, 0, 3, 4};
    craft(&m, 2, 2, 8, 0, NULL, 0, badf, sizeof badf);
    r = check_one("filter type 5", m.p, m.len, &st, &why, 0);
    ok(r == 0, "unknown filter type declined (%s)", why);
    free(m.p);

    /* Too little image data: declined. */
    craft(&m, 4, 4, 8, 0, NULL, 0, badf, sizeof badf);
    r = check_one("short data", m.p, m.len, &st, &why, 0);
    ok(r == 0, "short image data declined (%s)", why);
    free(m.p);

    /* Decompression bomb: 100000 x 100000 declared, a few bytes of data. */
    double t0 = now();
    uint8_t zero[64] = {0};
    craft(&m, 100000, 100000, 8, 6, NULL, 0, zero, sizeof zero);
    r = check_one("bomb", m.p, m.len, &st, &why, 0);
    ok(r == 0 && now() - t0 < 1.0, "100000x100000 declined at once (%s)", why);
    free(m.p);
    /* Within the limits but more than the data could hold. */
    t0 = now();
    craft(&m, 8000, 8000, 8, 0, NULL, 0, zero, sizeof zero);
    r = check_one("short bomb", m.p, m.len, &st, &why, 0);
    ok(r == 0 && now() - t0 < 1.0, "8000x8000 from 64 bytes declined at once (%s)", why);
    free(m.p);

    /* Not PNGs, truncations of a PNG: declined, never a crash. */
    static const char *const junk[] = {"", "hello world\n", "\x89PNG\r\n\x1a\n",
                                       "\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR"};
    int all = 1;
    for (size_t k = 0; k < sizeof junk / sizeof *junk; k++)
        all &= check_one("junk", (const uint8_t *)junk[k], strlen(junk[k]) + (k == 3 ? 8 : 0), &st,
                         &why, 0) == 0;
    variant v = {.w = 30, .h = 30, .color = 6, .depth = 8, .zlevel = 6, .seed = 1};
    make_png(&v, &m);
    for (size_t cut = 0; cut < m.len; cut += 1 + cut / 8)
        all &= check_one("truncated", m.p, cut, &st, &why, 0) == 0;
    free(m.p);
    ok(all, "empty, text, bare signature and every truncation declined");
}

/* ---- tamper -------------------------------------------------------------------------- */

static void test_tamper(void)
{
    variant v = {
        .w = 64, .h = 48, .color = 3, .depth = 8, .npal = 200, .meta = 1, .zlevel = 6, .seed = 5};
    membuf m;
    pxc_file_secrets s;
    uint8_t *stored = NULL, *back = NULL;
    size_t sn = 0, bn = 0;

    make_png(&v, &m);
    pxc_secrets_fresh(&s);
    ok(png_codec_encode(m.p, m.len, keys, &s, &stored, &sn, NULL) == 0, "encode the tamper sample");

    int flips = 0, caught = 0;
    for (int k = 0; k < 200; k++) {
        size_t pos =
            k < 40 ? (size_t)k * sn / 40 + (size_t)k % 7 : randombytes_uniform((uint32_t)sn);
        if (pos >= sn)
            pos = sn - 1;
        uint8_t mask = (uint8_t)(1 + randombytes_uniform(255));
        stored[pos] ^= mask;
        int rc = png_codec_decode(stored, sn, keys, &back, &bn);
        flips++;
        caught += rc == -EBADMSG && !back;
        if (rc != -EBADMSG)
            tap_diag("flip at %zu not caught (rc %d)", pos, rc);
        free(back);
        back = NULL;
        stored[pos] ^= mask;
    }
    ok(caught == flips, "every one of %d flipped bytes gives -EBADMSG", flips);

    /* The MAC and the pxCR CRC: all of their bytes. */
    png_peek_info pi;
    png_codec_peek(stored, sn, &pi);
    size_t mac = (size_t)pi.head_bytes;
    int all = 1;
    for (size_t pos = mac; pos < mac + 36; pos++) {
        stored[pos] ^= 1;
        all &= png_codec_decode(stored, sn, keys, &back, &bn) == -EBADMSG;
        stored[pos] ^= 1;
    }
    ok(all, "flips in the MAC and the pxCR CRC give -EBADMSG");

    all = 1;
    for (size_t cut = 0; cut < sn; cut += 1 + cut / 16)
        all &= png_codec_decode(stored, cut, keys, &back, &bn) == -EBADMSG;
    all &= png_codec_decode(stored, sn - 1, keys, &back, &bn) == -EBADMSG;
    ok(all, "every truncation gives -EBADMSG");

    uint8_t *longer = malloc(sn + 1);
    memcpy(longer, stored, sn);
    longer[sn] = 0;
    ok(png_codec_decode(longer, sn + 1, keys, &back, &bn) == -EBADMSG,
       "an appended byte gives -EBADMSG");
    free(longer);

    uint8_t master2[PXC_KEY_BYTES];
    randombytes_buf(master2, sizeof master2);
    pxc_keys *other = pxc_keys_new(master2);
    ok(png_codec_decode(stored, sn, other, &back, &bn) == -EBADMSG,
       "another volume's key gives -EBADMSG");
    pxc_keys_free(other);

    /* The pixels of another stored version of the same image under this header. */
    uint8_t *stored2 = NULL;
    size_t sn2 = 0;
    pxc_secrets_fresh(&s);
    png_codec_encode(m.p, m.len, keys, &s, &stored2, &sn2, NULL);
    png_peek_info pi2;
    png_codec_peek(stored2, sn2, &pi2);
    size_t tail = (size_t)pi.head_bytes + 36, tail2 = (size_t)pi2.head_bytes + 36;
    membuf mix = {0};
    mb_put(&mix, stored2, tail2);
    mb_put(&mix, stored + tail, sn - tail);
    ok(png_codec_decode(mix.p, mix.len, keys, &back, &bn) == -EBADMSG,
       "pixels of another version under this header give -EBADMSG");
    free(mix.p);
    free(stored2);

    png_peek_info info;
    pxc_file_secrets opened;
    ok(png_codec_peek(stored, PNG_PEEK_BYTES, &info) == 0 && info.plain_size == m.len &&
           png_codec_open_secrets(&info, keys, &opened) == 0 &&
           memcmp(opened.file_id, info.file_id, PXC_FILE_ID_BYTES) == 0,
       "peek from %d bytes gives size and file id; sealed secrets open", PNG_PEEK_BYTES);
    ok(png_codec_peek(stored, PNG_PEEK_BYTES - 1, &info) == -ENODATA, "peek needs %d bytes",
       PNG_PEEK_BYTES);
    ok(png_codec_peek(m.p, m.len, &info) == -EINVAL, "a plain PNG is not a pixcrypt PNG");
    uint8_t *head = NULL;
    size_t hn = 0;
    ok(png_codec_decode_head(stored, (size_t)pi.head_bytes - 1, keys, &head, &hn, NULL) ==
               -ENODATA &&
           !head,
       "decode_head asks for more bytes when given too few");
    free(stored);
    free(m.p);
}

/* ---- malformed input: random mutations ----------------------------------------------- */

static void mutate(uint8_t *p, size_t *n, size_t max)
{
    int edits = 1 + (int)randombytes_uniform(4);
    for (int e = 0; e<edits && * n> 1; e++) {
        size_t pos = randombytes_uniform((uint32_t)*n);
        switch (randombytes_uniform(4)) {
        case 0:
            p[pos] = (uint8_t)randombytes_uniform(256);
            break;
        case 1:
            p[pos] ^= (uint8_t)(1u << randombytes_uniform(8));
            break;
        case 2:
            if (*n < max) {
                memmove(p + pos + 1, p + pos, *n - pos);
                p[pos] = (uint8_t)randombytes_uniform(256);
                (*n)++;
            }
            break;
        default:
            memmove(p + pos, p + pos + 1, *n - pos - 1);
            (*n)--;
        }
    }
}

static void test_mutations(void)
{
    static const variant vs[] = {
        {.w = 19, .h = 11, .color = 3, .depth = 4, .npal = 13, .zlevel = 9, .meta = 1},
        {.w = 23, .h = 9, .color = 6, .depth = 16, .interlace = 1, .zlevel = 1},
        {.w = 31, .h = 5, .color = 0, .depth = 1, .zlevel = 6, .zbuf = 16}};
    int stored = 0, declined = 0, bad = 0, decode_bad = 0;
    for (size_t k = 0; k < sizeof vs / sizeof *vs; k++) {
        membuf m;
        make_png(&vs[k], &m);
        pxc_file_secrets s;
        uint8_t *enc = NULL, *back = NULL;
        size_t en = 0, bn = 0;
        pxc_secrets_fresh(&s);
        png_codec_encode(m.p, m.len, keys, &s, &enc, &en, NULL);
        uint8_t *mut = malloc(m.len + 64), *smut = malloc(en);
        for (int it = 0; it < 700; it++) {
            size_t n = m.len;
            memcpy(mut, m.p, n);
            mutate(mut, &n, m.len + 60);
            uint8_t *out = NULL;
            size_t on = 0;
            pxc_secrets_fresh(&s);
            int rc = png_codec_encode(mut, n, keys, &s, &out, &on, NULL);
            if (rc == 0) {
                stored++;
                bad += png_codec_decode(out, on, keys, &back, &bn) != 0 || bn != n ||
                       memcmp(back, mut, n) != 0;
                free(back);
                back = NULL;
            } else {
                declined++;
                bad += out != NULL;
            }
            free(out);

            /* the stored form: any change must fail authentication */
            memcpy(smut, enc, en);
            size_t pos = randombytes_uniform((uint32_t)en);
            smut[pos] ^= (uint8_t)(1 + randombytes_uniform(255));
            decode_bad += png_codec_decode(smut, en, keys, &back, &bn) != -EBADMSG;
            free(back);
            back = NULL;
            uint8_t *head = NULL;
            size_t hn;
            png_peek_info pi;
            if (png_codec_peek(smut, en, &pi) == 0 && pi.head_bytes <= en &&
                png_codec_decode_head(smut, en, keys, &head, &hn, NULL) == 0)
                decode_bad += pos < pi.head_bytes; /* the record covers the head */
            free(head);
        }
        free(mut);
        free(smut);
        free(enc);
        free(m.p);
    }
    tap_diag("mutated PNGs: %d stored, %d declined", stored, declined);
    ok(bad == 0, "mutated PNGs: stored ones round-trip, declined ones leave no output");
    ok(decode_bad == 0, "mutated stored files never decode");
}

/* ---- throughput on larger images ----------------------------------------------------- */

static void test_throughput(void)
{
    static const struct {
        int color, depth, level;
        const char *name;
    } kinds[] = {{2, 8, 6, "RGB 8-bit"}, {6, 16, 6, "RGBA 16-bit"}, {3, 8, 9, "palette"}};
    for (size_t k = 0; k < sizeof kinds / sizeof *kinds; k++) {
        variant v = {.w = 1200,
                     .h = 900,
                     .color = kinds[k].color,
                     .depth = kinds[k].depth,
                     .zlevel = kinds[k].level,
                     .npal = 256,
                     .seed = 11};
        stats st;
        memset(&st, 0, sizeof st);
        char label[64];
        snprintf(label, sizeof label, "%ux%u %s", v.w, v.h, kinds[k].name);
        int r = run_variant(label, &v, &st, NULL);
        ok(r == 1, "%s stored", label);
        report(label, &st);
    }
}

/* ---- external tools ------------------------------------------------------------------ */

static int have(const char *tool)
{
    char cmd[256];
    snprintf(cmd, sizeof cmd, "command -v %s >/dev/null 2>&1", tool);
    return system(cmd) == 0;
}

/* Runs cmd; passes if it exits 0 and prints nothing. */
static void tool_check(const char *tool, const char *cmd, const char *what)
{
    if (!have(tool)) {
        printf("ok %d # SKIP %s not installed\n", ++tap_count, tool);
        return;
    }
    FILE *f = popen(cmd, "r");
    char line[1024];
    int lines = 0;
    while (f && fgets(line, sizeof line, f))
        if (lines++ < 5)
            tap_diag("%s: %s", tool, line);
    int st = f ? pclose(f) : -1;
    ok(st == 0 && lines == 0, "%s (%d stored files)", what, stored_files);
}

static void test_tools(void)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "pngcheck -q %s/*.png 2>&1", tmpdir);
    tool_check("pngcheck", cmd, "pngcheck -q accepts every stored file");
    snprintf(cmd, sizeof cmd, "identify -regard-warnings %s/*.png 2>&1 >/dev/null", tmpdir);
    tool_check("identify", cmd, "ImageMagick identify reads every stored file");
}

int main(void)
{
    uint8_t master[PXC_KEY_BYTES];
    if (sodium_init() < 0 || !mkdtemp(tmpdir))
        return 1;
    randombytes_buf(master, sizeof master);
    keys = pxc_keys_new(master);

    test_corpus();
    test_zlib_variants();
    test_layout_variants();
    test_metadata();
    test_odd_layouts();
    test_crafted();
    test_tamper();
    test_mutations();
    test_throughput();
    test_tools();

    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    if (system(cmd) != 0)
        tap_diag("could not remove %s", tmpdir);
    pxc_keys_free(keys);
    return tap_done();
}

/* Small PNG and JPEG files made in memory, for the fuzz targets' seeds and base files.
 * Deterministic: the same arguments give the same bytes. */
#ifndef PXC_TESTS_FUZZ_IMAGES_H
#define PXC_TESTS_FUZZ_IMAGES_H

#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jpeglib.h>
#include <zlib.h>

/* ---- PNG ------------------------------------------------------------------ */

typedef struct fuzz_png_kind {
    int depth, color, interlace;
    int filter;          /* filter type byte of every row (non-interlaced only) */
    int level, strategy; /* zlib's */
} fuzz_png_kind;

static inline void fuzz_put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static inline size_t fuzz_png_chunk(uint8_t *out, const char *type, const uint8_t *data,
                                    uint32_t len)
{
    fuzz_put32(out, len);
    memcpy(out + 4, type, 4);
    if (len)
        memcpy(out + 8, data, len);
    fuzz_put32(out + 8 + len, (uint32_t)crc32(0, out + 4, len + 4));
    return 12 + (size_t)len;
}

/* A w x h PNG with pseudo-random samples (palette indices 0), a tEXt chunk and its
 * image data split over two IDAT chunks; malloc'ed, NULL on failure. */
static inline uint8_t *fuzz_make_png(const fuzz_png_kind *k, uint32_t w, uint32_t h, size_t *len)
{
    static const int channels[7] = {1, 0, 3, 1, 2, 0, 4};
    static const int x0[7] = {0, 4, 0, 2, 0, 1, 0}, dx[7] = {8, 8, 4, 4, 2, 2, 1};
    static const int y0[7] = {0, 0, 4, 0, 2, 0, 1}, dy[7] = {8, 8, 8, 4, 4, 2, 2};
    size_t bits = (size_t)channels[k->color] * (size_t)k->depth, data_len = 0;

    for (int p = 0; p < (k->interlace ? 7 : 1); p++) {
        size_t pw = w, ph = h;
        if (k->interlace) {
            pw = w > (uint32_t)x0[p] ? (w - x0[p] + dx[p] - 1) / dx[p] : 0;
            ph = h > (uint32_t)y0[p] ? (h - y0[p] + dy[p] - 1) / dy[p] : 0;
        }
        if (pw && ph)
            data_len += ph * ((pw * bits + 7) / 8 + 1);
    }
    size_t zcap = compressBound(data_len) + 64;
    uint8_t *raw = calloc(1, data_len), *z = malloc(zcap), *out = malloc(zcap + 1024);
    if (!raw || !z || !out) {
        free(raw);
        free(z);
        free(out);
        return NULL;
    }
    uint32_t x = 12345;
    if (k->color != 3 && !k->interlace) {
        size_t rowbytes = (w * bits + 7) / 8;
        for (size_t i = 0; i < data_len; i++) {
            x = x * 1103515245u + 12345u;
            raw[i] = (uint8_t)(x >> 16);
        }
        for (size_t r = 0; r < h; r++)
            raw[r * (rowbytes + 1)] = (uint8_t)k->filter;
    }

    z_stream zs;
    memset(&zs, 0, sizeof zs);
    deflateInit2(&zs, k->level, Z_DEFLATED, 15, 8, k->strategy);
    zs.next_in = raw;
    zs.avail_in = (uInt)data_len;
    zs.next_out = z;
    zs.avail_out = (uInt)zcap;
    deflate(&zs, Z_FINISH);
    size_t zl = zs.total_out;
    deflateEnd(&zs);

    uint8_t ihdr[13], plte[3 * 16];
    fuzz_put32(ihdr, w);
    fuzz_put32(ihdr + 4, h);
    ihdr[8] = (uint8_t)k->depth;
    ihdr[9] = (uint8_t)k->color;
    ihdr[10] = ihdr[11] = 0;
    ihdr[12] = (uint8_t)k->interlace;
    for (size_t i = 0; i < sizeof plte; i++)
        plte[i] = (uint8_t)(i * 37);

    size_t n = 8;
    memcpy(out, "\x89PNG\r\n\x1a\n", 8);
    n += fuzz_png_chunk(out + n, "IHDR", ihdr, 13);
    n += fuzz_png_chunk(out + n, "tEXt", (const uint8_t *)"Comment\0fuzz", 12);
    if (k->color == 3)
        n += fuzz_png_chunk(out + n, "PLTE", plte, 3u * (k->depth < 4 ? 1u << k->depth : 16u));
    n += fuzz_png_chunk(out + n, "IDAT", z, (uint32_t)(zl / 2));
    n += fuzz_png_chunk(out + n, "IDAT", z + zl / 2, (uint32_t)(zl - zl / 2));
    n += fuzz_png_chunk(out + n, "IEND", NULL, 0);
    free(raw);
    free(z);
    *len = n;
    return out;
}

/* ---- JPEG ----------------------------------------------------------------- */

typedef struct fuzz_jpeg_kind {
    J_COLOR_SPACE in;  /* JCS_GRAYSCALE, JCS_RGB (stored as YCbCr) or JCS_CMYK */
    int comps, h0, v0; /* components; luma sampling factors (JCS_RGB) */
    int progressive, optimize, restart, arith, quality;
} fuzz_jpeg_kind;

typedef struct fuzz_jerr {
    struct jpeg_error_mgr pub;
    jmp_buf jb;
    int warnings;
} fuzz_jerr;

static inline void fuzz_jerr_exit(j_common_ptr c)
{
    longjmp(((fuzz_jerr *)c->err)->jb, 1);
}

static inline void fuzz_jerr_emit(j_common_ptr c, int level)
{
    if (level < 0)
        ((fuzz_jerr *)c->err)->warnings++;
}

/* A w x h JPEG of a noisy gradient (flat and textured blocks) with a COM segment;
 * malloc'ed, NULL on failure. */
static inline uint8_t *fuzz_make_jpeg(const fuzz_jpeg_kind *k, unsigned w, unsigned h, size_t *len)
{
    struct jpeg_compress_struct c;
    fuzz_jerr e;
    unsigned char *out = NULL;
    unsigned long out_len = 0;
    JSAMPLE *row = malloc((size_t)w * (size_t)k->comps);
    uint32_t x = 777;

    if (!row)
        return NULL;
    memset(&e, 0, sizeof e);
    c.err = jpeg_std_error(&e.pub);
    e.pub.error_exit = fuzz_jerr_exit;
    if (setjmp(e.jb)) {
        jpeg_destroy_compress(&c);
        free(row);
        free(out);
        return NULL;
    }
    jpeg_create_compress(&c);
    jpeg_mem_dest(&c, &out, &out_len);
    c.image_width = w;
    c.image_height = h;
    c.input_components = k->comps;
    c.in_color_space = k->in;
    jpeg_set_defaults(&c);
    jpeg_set_quality(&c, k->quality, TRUE);
    if (k->in == JCS_RGB) {
        c.comp_info[0].h_samp_factor = k->h0;
        c.comp_info[0].v_samp_factor = k->v0;
    }
    if (k->progressive)
        jpeg_simple_progression(&c);
    c.optimize_coding = k->optimize ? TRUE : FALSE;
    c.restart_interval = (unsigned)k->restart;
    c.arith_code = k->arith ? TRUE : FALSE;
    jpeg_start_compress(&c, TRUE);
    jpeg_write_marker(&c, JPEG_COM, (const JOCTET *)"fuzz seed", 9);
    while (c.next_scanline < h) {
        for (unsigned i = 0; i < w * (unsigned)k->comps; i++) {
            x = x * 1103515245u + 12345u;
            row[i] = (JSAMPLE)((i * 3 + c.next_scanline * 5) + ((x >> 16) & 15));
        }
        JSAMPROW rows[1] = {row};
        jpeg_write_scanlines(&c, rows, 1);
    }
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
    free(row);
    *len = out_len;
    return out;
}

#endif

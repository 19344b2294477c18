/* Images to samples for `pixcrypt analyze`, with the system's libpng and libjpeg: the
 * stored images are read exactly as any viewer reads them. */
#include <endian.h>
#include <png.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>

#include "codec/png_memio.h"
#include "fs/analyze.h"

/* ---- PNG ---------------------------------------------------------------------------- */

/* libpng's last error, for the message: errors return to the caller's setjmp without
 * libpng printing them. */
static __thread char png_why[160];

static void png_quiet_error(png_structp png, png_const_charp msg)
{
    snprintf(png_why, sizeof png_why, "not a readable PNG (libpng: %s)", msg);
    png_longjmp(png, 1);
}

static void png_quiet_warning(png_structp png, png_const_charp msg)
{
    (void)png;
    (void)msg;
}

int ana_load_png(const uint8_t *p, size_t n, ana_pixels *out, const char **why)
{
    png_structp png =
        png_create_read_struct(PNG_LIBPNG_VER_STRING, NULL, png_quiet_error, png_quiet_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    png_memio rd = {p, n, 0};
    png_bytep *volatile rows = NULL; /* volatile: set after setjmp, freed after longjmp */
    memset(out, 0, sizeof *out);
    *why = "not a readable PNG";
    png_why[0] = 0;
    if (!info) {
        png_destroy_read_struct(&png, NULL, NULL);
        *why = "out of memory";
        return -1;
    }
    if (setjmp(png_jmpbuf(png))) {
        if (png_why[0] && strcmp(*why, "not a readable PNG") == 0)
            *why = png_why;
        png_destroy_read_struct(&png, &info, NULL);
        free(rows);
        ana_pixels_free(out);
        return -1;
    }
    png_set_read_fn(png, &rd, png_memio_read);
    png_set_user_limits(png, 0x7fffffff, 0x7fffffff);
    png_read_info(png, info);
    uint32_t w = png_get_image_width(png, info), h = png_get_image_height(png, info);
    int depth = png_get_bit_depth(png, info), color = png_get_color_type(png, info);
    uint32_t ch = png_get_channels(png, info);
    if ((uint64_t)w * h * ch > (256u << 20)) {
        *why = "image too large to analyse";
        png_error(png, "too large");
    }
    if (depth < 8)
        png_set_packing(png); /* one sample per byte, values kept */
#if __BYTE_ORDER == __LITTLE_ENDIAN
    if (depth == 16)
        png_set_swap(png);
#endif
    out->interlaced = png_set_interlace_handling(png) > 1;
    png_read_update_info(png, info);
    size_t bps = depth == 16 ? 2 : 1, rowbytes = (size_t)w * ch * bps;
    out->data = malloc((size_t)h * rowbytes + 1);
    rows = malloc((h ? h : 1) * sizeof *rows);
    if (!out->data || !rows) {
        *why = "out of memory";
        png_error(png, "oom");
    }
    for (uint32_t y = 0; y < h; y++)
        rows[y] = (png_bytep)out->data + (size_t)y * rowbytes;
    png_read_image(png, rows);
    png_read_end(png, NULL);
    uint32_t maxval = depth == 16 ? 65535 : (1u << depth) - 1;
    out->modulus = maxval + 1;
    if (color == PNG_COLOR_TYPE_PALETTE) {
        png_colorp pal;
        int npal = 0;
        png_get_PLTE(png, info, &pal, &npal);
        out->modulus = (uint32_t)npal < out->modulus ? (uint32_t)npal : out->modulus;
        maxval = out->modulus ? out->modulus - 1 : 0;
    }
    out->im = (pxm_image){out->data, depth == 16, w, h, ch, maxval};
    out->depth = (unsigned)depth;
    out->palette = color == PNG_COLOR_TYPE_PALETTE;
    png_destroy_read_struct(&png, &info, NULL);
    free(rows);
    return 0;
}

void ana_pixels_free(ana_pixels *px)
{
    free(px->data);
    memset(px, 0, sizeof *px);
}

void ana_view_free(ana_view *v)
{
    free(v->px);
    memset(v, 0, sizeof *v);
}

/* Box-averages src (w x h x ch) into a view of at most max_side pixels a side. */
static int shrink(const uint8_t *src, uint32_t w, uint32_t h, uint32_t ch, uint32_t max_side,
                  ana_view *out)
{
    uint32_t f = 1;
    while (w / f > max_side || h / f > max_side)
        f++;
    uint32_t ow = w / f ? w / f : 1, oh = h / f ? h / f : 1;
    out->px = malloc((size_t)ow * oh * ch);
    if (!out->px)
        return -1;
    out->w = ow;
    out->h = oh;
    out->ch = ch;
    for (uint32_t y = 0; y < oh; y++)
        for (uint32_t x = 0; x < ow; x++)
            for (uint32_t c = 0; c < ch; c++) {
                uint64_t s = 0, k = 0;
                for (uint32_t dy = 0; dy < f && y * f + dy < h; dy++)
                    for (uint32_t dx = 0; dx < f && x * f + dx < w; dx++, k++)
                        s += src[(((size_t)y * f + dy) * w + x * f + dx) * ch + c];
                out->px[((size_t)y * ow + x) * ch + c] = (uint8_t)((s + k / 2) / k);
            }
    return 0;
}

int ana_view_png(const uint8_t *p, size_t n, uint32_t max_side, ana_view *out)
{
    png_image img = {.version = PNG_IMAGE_VERSION};
    memset(out, 0, sizeof *out);
    if (!png_image_begin_read_from_memory(&img, p, n))
        return -1;
    int gray = !(img.format & PNG_FORMAT_FLAG_COLOR);
    img.format = gray ? PNG_FORMAT_GRAY : PNG_FORMAT_RGB;
    uint32_t ch = gray ? 1 : 3;
    size_t size = PNG_IMAGE_SIZE(img);
    uint8_t *full = malloc(size + 1);
    png_color white = {255, 255, 255};
    int rc = -1;
    if (full && png_image_finish_read(&img, &white, full, 0, NULL))
        rc = shrink(full, img.width, img.height, ch, max_side, out);
    png_image_free(&img);
    free(full);
    return rc;
}

int ana_png_write(const uint8_t *px, uint32_t w, uint32_t h, uint32_t ch, uint8_t **out,
                  size_t *len)
{
    png_image img = {.version = PNG_IMAGE_VERSION, .width = w, .height = h};
    img.format = ch == 1 ? PNG_FORMAT_GRAY : PNG_FORMAT_RGB;
    size_t size = 0;
    *out = NULL;
    if (!png_image_write_to_memory(&img, NULL, &size, 0, px, 0, NULL))
        return -1;
    *out = malloc(size);
    if (!*out || !png_image_write_to_memory(&img, *out, &size, 0, px, 0, NULL)) {
        free(*out);
        *out = NULL;
        return -1;
    }
    *len = size;
    return 0;
}

/* ---- JPEG --------------------------------------------------------------------------- */

typedef struct jerr {
    struct jpeg_error_mgr pub;
    jmp_buf jb;
} jerr;

static __thread char jpeg_why[JMSG_LENGTH_MAX + 40];

static void jerr_exit(j_common_ptr c)
{
    char msg[JMSG_LENGTH_MAX];
    c->err->format_message(c, msg);
    snprintf(jpeg_why, sizeof jpeg_why, "not a readable JPEG (libjpeg: %s)", msg);
    longjmp(((jerr *)c->err)->jb, 1);
}

static void jerr_quiet(j_common_ptr c)
{
    (void)c;
}

static void jerr_init(j_common_ptr c, jerr *e)
{
    c->err = jpeg_std_error(&e->pub);
    e->pub.error_exit = jerr_exit;
    e->pub.output_message = jerr_quiet;
}

/* Decodes to 8-bit pixels in the file's natural output space (RGB, gray or CMYK). */
static int jpeg_pixels(const uint8_t *p, size_t n, uint8_t **px, uint32_t *w, uint32_t *h,
                       uint32_t *ch)
{
    struct jpeg_decompress_struct d;
    jerr e;
    uint8_t *volatile buf = NULL;
    jerr_init((j_common_ptr)&d, &e);
    jpeg_create_decompress(&d);
    if (setjmp(e.jb)) {
        jpeg_destroy_decompress(&d);
        free(buf);
        return -1;
    }
    jpeg_mem_src(&d, p, (unsigned long)n);
    jpeg_read_header(&d, TRUE);
    if ((uint64_t)d.image_width * d.image_height * d.num_components > (256u << 20))
        longjmp(e.jb, 1);
    jpeg_start_decompress(&d);
    size_t stride = (size_t)d.output_width * d.output_components;
    buf = malloc(stride * d.output_height + 1);
    if (!buf)
        longjmp(e.jb, 1);
    while (d.output_scanline < d.output_height) {
        JSAMPROW row = buf + stride * d.output_scanline;
        jpeg_read_scanlines(&d, &row, 1);
    }
    *w = d.output_width;
    *h = d.output_height;
    *ch = (uint32_t)d.output_components;
    jpeg_finish_decompress(&d);
    jpeg_destroy_decompress(&d);
    *px = buf;
    return 0;
}

int ana_load_jpeg(const uint8_t *p, size_t n, ana_pixels *out, const char **why)
{
    uint8_t *px;
    uint32_t w, h, ch;
    memset(out, 0, sizeof *out);
    jpeg_why[0] = 0;
    if (jpeg_pixels(p, n, &px, &w, &h, &ch) != 0) {
        *why = jpeg_why[0] ? jpeg_why : "not a readable JPEG";
        return -1;
    }
    out->data = px;
    out->im = (pxm_image){px, 0, w, h, ch, 255};
    out->modulus = 256;
    out->depth = 8;
    return 0;
}

int ana_view_jpeg(const uint8_t *p, size_t n, uint32_t max_side, ana_view *out)
{
    uint8_t *px;
    uint32_t w, h, ch;
    memset(out, 0, sizeof *out);
    if (jpeg_pixels(p, n, &px, &w, &h, &ch) != 0)
        return -1;
    if (ch == 4) {
        /* CMYK as Adobe writes it (inverted): R = C K / 255, and so on. */
        for (size_t i = 0; i < (size_t)w * h; i++) {
            unsigned k = px[i * 4 + 3];
            for (int c = 0; c < 3; c++)
                px[i * 3 + c] = (uint8_t)(px[i * 4 + c] * k / 255);
        }
        ch = 3;
    }
    int rc = shrink(px, w, h, ch, max_side, out);
    free(px);
    return rc;
}

/* The dequantised AC energy of every block of component 0. */
double *ana_jpeg_ac_energy(const uint8_t *p, size_t n, size_t *nb)
{
    struct jpeg_decompress_struct d;
    jerr e;
    double *volatile out = NULL;
    jerr_init((j_common_ptr)&d, &e);
    jpeg_create_decompress(&d);
    if (setjmp(e.jb)) {
        jpeg_destroy_decompress(&d);
        free(out);
        return NULL;
    }
    jpeg_mem_src(&d, p, (unsigned long)n);
    jpeg_read_header(&d, TRUE);
    jvirt_barray_ptr *arr = jpeg_read_coefficients(&d);
    jpeg_component_info *ci = &d.comp_info[0];
    size_t count = (size_t)ci->width_in_blocks * ci->height_in_blocks;
    out = malloc((count ? count : 1) * sizeof(double));
    if (!out || !ci->quant_table)
        longjmp(e.jb, 1);
    for (JDIMENSION y = 0; y < ci->height_in_blocks; y++) {
        JBLOCKARRAY row = (*d.mem->access_virt_barray)((j_common_ptr)&d, arr[0], y, 1, FALSE);
        for (JDIMENSION x = 0; x < ci->width_in_blocks; x++) {
            double s = 0;
            for (int k = 1; k < 64; k++) {
                double v = (double)row[0][x][k] * ci->quant_table->quantval[k];
                s += v * v;
            }
            out[(size_t)y * ci->width_in_blocks + x] = s;
        }
    }
    jpeg_finish_decompress(&d);
    jpeg_destroy_decompress(&d);
    *nb = count;
    return out;
}

int ana_jpeg_bump_dc(const uint8_t *p, size_t n, uint8_t **out, size_t *len)
{
    struct jpeg_decompress_struct d;
    struct jpeg_compress_struct c;
    jerr e; /* one error manager for both: either longjmps to the same place */
    unsigned char *volatile mem = NULL;
    unsigned long mem_len = 0;
    jerr_init((j_common_ptr)&d, &e);
    c.err = d.err;
    jpeg_create_decompress(&d);
    jpeg_create_compress(&c);
    if (setjmp(e.jb)) {
        jpeg_destroy_compress(&c);
        jpeg_destroy_decompress(&d);
        free(mem);
        return -1;
    }
    jpeg_mem_src(&d, p, (unsigned long)n);
    jpeg_read_header(&d, TRUE);
    jvirt_barray_ptr *arr = jpeg_read_coefficients(&d);
    jpeg_component_info *ci = &d.comp_info[0];
    JDIMENSION by = ci->height_in_blocks / 2, bx = ci->width_in_blocks / 2;
    JBLOCKARRAY row = (*d.mem->access_virt_barray)((j_common_ptr)&d, arr[0], by, 1, TRUE);
    /* Stay inside the legal DC range (-1024/q .. 1023/q) whatever the value. */
    row[0][bx][0] = (JCOEF)(row[0][bx][0] > 0 ? row[0][bx][0] - 1 : row[0][bx][0] + 1);
    unsigned char *buf = NULL;
    jpeg_mem_dest(&c, &buf, &mem_len);
    jpeg_copy_critical_parameters(&d, &c);
    jpeg_write_coefficients(&c, arr);
    jpeg_finish_compress(&c);
    mem = buf;
    jpeg_finish_decompress(&d);
    jpeg_destroy_compress(&c);
    jpeg_destroy_decompress(&d);
    *out = mem;
    *len = mem_len;
    return 0;
}

/* PNG structure: signature, chunk walk, IHDR and pass geometry. */
#include <errno.h>
#include <string.h>
#include <zlib.h>

#include "codec/bytes.h"
#include "codec/png.h"
#include "codec/png_int.h"

const uint8_t png_signature[PNG_SIG_BYTES] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};

uint32_t png_chunk_crc(const uint8_t *chunk, uint32_t len)
{
    return (uint32_t)crc32_z(crc32(0, Z_NULL, 0), chunk + 4, (z_size_t)len + 4);
}

int png_geom_from_ihdr(png_geom *g, const uint8_t ihdr[13], const char **why)
{
    static const uint8_t x0[7] = {0, 4, 0, 2, 0, 1, 0}, dx[7] = {8, 8, 4, 4, 2, 2, 1};
    static const uint8_t y0[7] = {0, 0, 4, 0, 2, 0, 1}, dy[7] = {8, 8, 8, 4, 4, 2, 2};

    memset(g, 0, sizeof *g);
    g->width = png_get32(ihdr);
    g->height = png_get32(ihdr + 4);
    g->depth = ihdr[8];
    g->color = ihdr[9];
    g->interlace = ihdr[12];
    if (g->width == 0 || g->height == 0 || g->width > PNG_CHUNK_MAX || g->height > PNG_CHUNK_MAX)
        return codec_fail(why, "IHDR: bad dimensions", -EINVAL);
    if (ihdr[10] != 0 || ihdr[11] != 0 || g->interlace > 1)
        return codec_fail(why, "IHDR: unknown compression, filter or interlace method", -EINVAL);

    unsigned d = g->depth;
    int depth_ok;
    switch (g->color) {
    case 0:
        g->channels = 1;
        depth_ok = d == 1 || d == 2 || d == 4 || d == 8 || d == 16;
        break;
    case 3:
        g->channels = 1;
        depth_ok = d == 1 || d == 2 || d == 4 || d == 8;
        break;
    case 2:
        g->channels = 3;
        depth_ok = d == 8 || d == 16;
        break;
    case 4:
        g->channels = 2;
        depth_ok = d == 8 || d == 16;
        break;
    case 6:
        g->channels = 4;
        depth_ok = d == 8 || d == 16;
        break;
    default:
        return codec_fail(why, "IHDR: bad colour type", -EINVAL);
    }
    if (!depth_ok)
        return codec_fail(why, "IHDR: bad bit depth for the colour type", -EINVAL);

    unsigned bits = g->channels * d;
    g->bpp = bits < 8 ? 1 : bits / 8;
    g->npass = g->interlace ? 7 : 1;
    for (unsigned i = 0; i < g->npass; i++) {
        uint64_t w = g->width, h = g->height;
        if (g->interlace) {
            w = g->width > x0[i] ? (g->width - x0[i] + dx[i] - 1) / dx[i] : 0;
            h = g->height > y0[i] ? (g->height - y0[i] + dy[i] - 1) / dy[i] : 0;
        }
        if (w == 0 || h == 0)
            continue;
        uint64_t rowbytes = (w * bits + 7) / 8;
        g->pass[i].w = (uint32_t)w;
        g->pass[i].h = (uint32_t)h;
        g->rows += h;
        g->samples += w * h * g->channels;
        g->data_bytes += h * (rowbytes + 1);
        if (g->data_bytes > PNG_CODEC_MAX_IMAGE_BYTES || g->samples > PNG_CODEC_MAX_SAMPLES)
            return codec_fail(why, "image larger than the codec's limit", -EFBIG);
        g->pass[i].rowbytes = (size_t)rowbytes;
    }
    return 0;
}

static int is_letter(uint8_t c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

int png_walk(const uint8_t *p, size_t n, png_layout *lay, const char **why)
{
    memset(lay, 0, sizeof *lay);
    if (n < PNG_SIG_BYTES || memcmp(p, png_signature, PNG_SIG_BYTES) != 0)
        return codec_fail(why, "not a PNG", -EINVAL);
    if (n < PNG_IHDR_END + 12 || png_get32(p + 8) != 13 || memcmp(p + 12, "IHDR", 4) != 0)
        return codec_fail(why, "malformed: no IHDR first", -EINVAL);

    enum { BEFORE, IN, AFTER } idat = BEFORE;
    size_t pos = PNG_IHDR_END;
    lay->pre_start = pos;
    for (;;) {
        if (n - pos < 12)
            return codec_fail(why, "malformed: truncated before IEND", -EINVAL);
        uint32_t len = png_get32(p + pos);
        const uint8_t *type = p + pos + 4;
        if (len > PNG_CHUNK_MAX)
            return codec_fail(why, "malformed: chunk length", -EINVAL);
        if (n - pos - 12 < len)
            return codec_fail(why, "malformed: truncated chunk", -EINVAL);
        if (!is_letter(type[0]) || !is_letter(type[1]) || !is_letter(type[2]) ||
            !is_letter(type[3]))
            return codec_fail(why, "malformed: chunk type", -EINVAL);
        size_t end = pos + 12 + len;
        if (memcmp(type, "IDAT", 4) == 0) {
            if (idat == AFTER)
                return codec_fail(why, "malformed: IDAT chunks not consecutive", -EINVAL);
            if (idat == BEFORE) {
                idat = IN;
                lay->pre_end = lay->idat_start = pos;
            }
            lay->nidat++;
            lay->idat_data += len;
            lay->idat_end = end;
        } else {
            if (idat == IN)
                idat = AFTER;
            if (memcmp(type, "IHDR", 4) == 0)
                return codec_fail(why, "malformed: second IHDR", -EINVAL);
            if (memcmp(type, "PLTE", 4) == 0 && idat == BEFORE) {
                if (lay->plte_len)
                    return codec_fail(why, "malformed: second PLTE", -EINVAL);
                lay->plte_off = pos + 8;
                lay->plte_len = len;
                if (len == 0)
                    return codec_fail(why, "malformed: empty PLTE", -EINVAL);
            }
            if (memcmp(type, "IEND", 4) == 0) {
                if (idat == BEFORE)
                    return codec_fail(why, "malformed: no IDAT", -EINVAL);
                lay->iend_end = end;
                return 0;
            }
        }
        pos = end;
    }
}

/* PNG scanlines: the five filter types (both ways, in place) and sample packing. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "codec/png_int.h"

static inline uint8_t paeth(uint8_t a, uint8_t b, uint8_t c)
{
    int p = (int)a + b - c;
    int pa = abs(p - a), pb = abs(p - b), pc = abs(p - c);
    if (pa <= pb && pa <= pc)
        return a;
    return pb <= pc ? b : c;
}

/* prev is NULL for the first row of a pass (a row of zeros). */
static int unfilter_row(uint8_t type, uint8_t *row, const uint8_t *prev, size_t len, unsigned bpp)
{
    size_t i;
    switch (type) {
    case 0:
        return 0;
    case 1:
        for (i = bpp; i < len; i++)
            row[i] = (uint8_t)(row[i] + row[i - bpp]);
        return 0;
    case 2:
        if (prev)
            for (i = 0; i < len; i++)
                row[i] = (uint8_t)(row[i] + prev[i]);
        return 0;
    case 3:
        for (i = 0; i < len; i++) {
            unsigned left = i >= bpp ? row[i - bpp] : 0, up = prev ? prev[i] : 0;
            row[i] = (uint8_t)(row[i] + ((left + up) >> 1));
        }
        return 0;
    case 4:
        if (!prev) { /* Paeth with a zero row above is Sub */
            for (i = bpp; i < len; i++)
                row[i] = (uint8_t)(row[i] + row[i - bpp]);
            return 0;
        }
        for (i = 0; i < bpp && i < len; i++)
            row[i] = (uint8_t)(row[i] + prev[i]);
        for (; i < len; i++)
            row[i] = (uint8_t)(row[i] + paeth(row[i - bpp], prev[i], prev[i - bpp]));
        return 0;
    default:
        return -EINVAL;
    }
}

/* Right to left, so that the raw bytes to the left are still there when needed. */
static void filter_row(uint8_t type, uint8_t *row, const uint8_t *prev, size_t len, unsigned bpp)
{
    size_t i;
    switch (type) {
    case 1:
        for (i = len; i-- > bpp;)
            row[i] = (uint8_t)(row[i] - row[i - bpp]);
        break;
    case 2:
        if (prev)
            for (i = 0; i < len; i++)
                row[i] = (uint8_t)(row[i] - prev[i]);
        break;
    case 3:
        for (i = len; i-- > 0;) {
            unsigned left = i >= bpp ? row[i - bpp] : 0, up = prev ? prev[i] : 0;
            row[i] = (uint8_t)(row[i] - ((left + up) >> 1));
        }
        break;
    case 4:
        if (!prev) {
            for (i = len; i-- > bpp;)
                row[i] = (uint8_t)(row[i] - row[i - bpp]);
            break;
        }
        for (i = len; i-- > bpp;)
            row[i] = (uint8_t)(row[i] - paeth(row[i - bpp], prev[i], prev[i - bpp]));
        for (i = 0; i < bpp && i < len; i++)
            row[i] = (uint8_t)(row[i] - prev[i]);
        break;
    default:
        break;
    }
}

int png_rows_unfilter(const png_geom *g, uint8_t *data, uint8_t *filters)
{
    uint64_t r = 0;
    for (unsigned p = 0; p < g->npass; p++) {
        size_t len = g->pass[p].rowbytes;
        const uint8_t *prev = NULL;
        for (uint32_t y = 0; y < g->pass[p].h; y++, r++) {
            uint8_t *row = data + 1;
            filters[r] = data[0];
            if (unfilter_row(data[0], row, prev, len, g->bpp) != 0)
                return -EINVAL;
            prev = row;
            data += len + 1;
        }
    }
    return 0;
}

void png_rows_filter(const png_geom *g, uint8_t *data, const uint8_t *filters)
{
    uint64_t r = g->rows;
    uint8_t *end = data + g->data_bytes;
    for (unsigned p = g->npass; p-- > 0;) {
        size_t len = g->pass[p].rowbytes;
        uint32_t h = g->pass[p].h;
        if (h == 0)
            continue;
        uint8_t *first = end - (size_t)h * (len + 1);
        for (uint32_t y = h; y-- > 0;) {
            uint8_t *row = first + (size_t)y * (len + 1);
            r--;
            filter_row(filters[r], row + 1, y ? row + 1 - (len + 1) : NULL, len, g->bpp);
            row[0] = filters[r];
        }
        end = first;
    }
}

int png_rows_unpack(const png_geom *g, const uint8_t *data, void *samples, uint8_t *pad)
{
    uint8_t *s8 = samples;
    uint16_t *s16 = samples;
    unsigned d = g->depth;
    int any_pad = 0;
    uint64_t r = 0;

    for (unsigned p = 0; p < g->npass; p++) {
        size_t len = g->pass[p].rowbytes, count = (size_t)g->pass[p].w * g->channels;
        for (uint32_t y = 0; y < g->pass[p].h; y++, r++) {
            const uint8_t *row = data + 1;
            if (pad)
                pad[r] = 0;
            if (d == 8) {
                memcpy(s8, row, count);
                s8 += count;
            } else if (d == 16) {
                for (size_t i = 0; i < count; i++)
                    s16[i] = (uint16_t)(row[2 * i] << 8 | row[2 * i + 1]);
                s16 += count;
            } else {
                unsigned mask = (1u << d) - 1, per = 8 / d;
                for (size_t i = 0; i < count; i++) {
                    unsigned shift = 8 - d * (unsigned)(i % per + 1);
                    s8[i] = (uint8_t)(row[i / per] >> shift & mask);
                }
                s8 += count;
                unsigned used = (unsigned)(count * d % 8);
                if (used && pad) {
                    pad[r] = (uint8_t)(row[len - 1] & ((1u << (8 - used)) - 1));
                    any_pad |= pad[r] != 0;
                }
            }
            data += len + 1;
        }
    }
    return any_pad;
}

void png_rows_pack(const png_geom *g, const void *samples, const uint8_t *filters,
                   const uint8_t *pad, uint8_t *data)
{
    const uint8_t *s8 = samples;
    const uint16_t *s16 = samples;
    unsigned d = g->depth;
    uint64_t r = 0;

    for (unsigned p = 0; p < g->npass; p++) {
        size_t len = g->pass[p].rowbytes, count = (size_t)g->pass[p].w * g->channels;
        for (uint32_t y = 0; y < g->pass[p].h; y++, r++) {
            uint8_t *row = data + 1;
            data[0] = filters ? filters[r] : 0;
            if (d == 8) {
                memcpy(row, s8, count);
                s8 += count;
            } else if (d == 16) {
                for (size_t i = 0; i < count; i++) {
                    row[2 * i] = (uint8_t)(s16[i] >> 8);
                    row[2 * i + 1] = (uint8_t)s16[i];
                }
                s16 += count;
            } else {
                unsigned per = 8 / d;
                memset(row, 0, len);
                for (size_t i = 0; i < count; i++) {
                    unsigned shift = 8 - d * (unsigned)(i % per + 1);
                    row[i / per] = (uint8_t)(row[i / per] | s8[i] << shift);
                }
                s8 += count;
                if (pad)
                    row[len - 1] = (uint8_t)(row[len - 1] | pad[r]);
            }
            data += len + 1;
        }
    }
}

/* Reading a PNG held in memory with libpng:
 *   png_memio r = {data, size, 0};
 *   png_set_read_fn(png, &r, png_memio_read);
 * A read past the end is a libpng error ("truncated PNG"). */
#ifndef PXC_CODEC_PNG_MEMIO_H
#define PXC_CODEC_PNG_MEMIO_H

#include <stddef.h>
#include <stdint.h>

#include <png.h>

typedef struct png_memio {
    const uint8_t *p;
    size_t n, off;
} png_memio;

void png_memio_read(png_structp png, png_bytep out, size_t len);

#endif

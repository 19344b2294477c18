#include "codec/png_memio.h"

#include <string.h>

void png_memio_read(png_structp png, png_bytep out, size_t len)
{
    png_memio *r = png_get_io_ptr(png);
    if (len > r->n - r->off)
        png_error(png, "truncated PNG");
    memcpy(out, r->p + r->off, len);
    r->off += len;
}

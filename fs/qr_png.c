#include "fs/qr_png.h"

#include <errno.h>
#include <fcntl.h>
#include <png.h>
#include <qrencode.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#define QUIET_ZONE 4

/* One PNG from the module matrix; 0 or -1. */
static int write_png(FILE *f, const QRcode *qr, int scale)
{
    const int side = (qr->width + 2 * QUIET_ZONE) * scale;
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    png_bytep row = malloc((size_t)side);
    int rc = -1;

    if (!png || !info || !row)
        goto out;
    if (setjmp(png_jmpbuf(png)))
        goto out;
    png_init_io(png, f);
    png_set_IHDR(png, info, (png_uint_32)side, (png_uint_32)side, 8, PNG_COLOR_TYPE_GRAY,
                 PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    for (int y = 0; y < side; y++) {
        int my = y / scale - QUIET_ZONE;
        for (int x = 0; x < side; x++) {
            int mx = x / scale - QUIET_ZONE;
            int dark = mx >= 0 && my >= 0 && mx < qr->width && my < qr->width &&
                       (qr->data[my * qr->width + mx] & 1);
            row[x] = dark ? 0 : 255;
        }
        png_write_row(png, row);
    }
    png_write_end(png, info);
    rc = 0;
out:
    png_destroy_write_struct(&png, &info);
    free(row);
    return rc;
}

int qr_png_write(const char *path, const char *text, int scale)
{
    QRcode *qr = QRcode_encodeString(text, 0, QR_ECLEVEL_M, QR_MODE_8, 1);
    if (!qr)
        return -1;
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    FILE *f = fd >= 0 ? fdopen(fd, "wb") : NULL;
    int rc = -1, saved;

    if (f) {
        rc = write_png(f, qr, scale);
        if (rc != 0)
            errno = EIO;
        if (fflush(f) != 0 || fsync(fileno(f)) != 0)
            rc = -1;
        saved = errno;
        fclose(f);
        if (rc != 0)
            unlink(path);
        errno = saved;
    } else if (fd >= 0) {
        saved = errno;
        close(fd);
        unlink(path);
        errno = saved;
    }
    QRcode_free(qr);
    return rc;
}

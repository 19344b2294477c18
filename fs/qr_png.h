/* A QR code as a PNG file (libqrencode + libpng): for recovery codes on paper. */
#ifndef PXC_FS_QR_PNG_H
#define PXC_FS_QR_PNG_H

/* Encodes text (error correction level M) as a black-on-white 8-bit grayscale PNG, each
 * module `scale` pixels, with the 4-module quiet zone readers need.  The file is created
 * new with mode 0600 (it may hold a key): an existing file is not replaced.
 * 0, or -1 with errno set. */
int qr_png_write(const char *path, const char *text, int scale);

#endif

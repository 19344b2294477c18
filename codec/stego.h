/* Hiding a message in a PNG (`pixcrypt stego`): a sealed message in the least significant
 * bits of the image's colour samples, at positions only the passphrase can find.
 *
 * A keyed replacement for plain LSB text embedding (a fixed XOR key, bits in pixel order):
 *
 *   1. 17 public bytes, salt (16, random) || KDF level (1), go into the LSBs of samples
 *      picked by a ChaCha20 stream under a public key (BLAKE2b of the image geometry):
 *      spread over the image, but findable by anyone who knows the format.
 *   2. Argon2id(passphrase, salt) gives 68 bytes: an XChaCha20-Poly1305 key, a ChaCha20
 *      key for positions, and a 4-byte mask.
 *   3. length (32-bit LE, XOR the mask) || XChaCha20-Poly1305(message; AD = context ||
 *      salt || level || masked length; nonce 0, the key being new with every salt) go into
 *      samples picked by the position stream, each sample used at most once.
 *
 * Colour samples only (alpha stays as it was), each its last bit (of the 16-bit value for
 * 16-bit images), set by LSB matching: a sample whose last bit must change moves by +1
 * or -1 at random (inward at 0 and the maximum) rather than having the bit flipped,
 * which would even out the counts of each pair of values 2k, 2k+1 (what the chi-square
 * and RS steganalysis detect).  Positions are drawn without replacement from all samples, and at
 * most half of them are used, which bounds the capacity (stego_capacity).  Palette and
 * low-bit-depth images are expanded to 8-bit RGB / gray first, so the output PNG may be of
 * another colour type than the cover; ancillary chunks (text, ICC, ...) are not kept.
 *
 * Without the passphrase, the bits at the keyed positions are indistinguishable from the
 * cover's: a wrong passphrase and an image without a message give the same error. */
#ifndef PXC_CODEC_STEGO_H
#define PXC_CODEC_STEGO_H

#include <stddef.h>
#include <stdint.h>

enum stego_kdf { STEGO_KDF_INTERACTIVE = 0, STEGO_KDF_MODERATE = 1, STEGO_KDF_SENSITIVE = 2 };

/* A decoded PNG: rows of 8- or 16-bit samples, big-endian as in the file. */
typedef struct stego_image {
    uint32_t width, height;
    int color_type;     /* PNG_COLOR_TYPE_GRAY / _GA / _RGB / _RGBA */
    int bit_depth;      /* 8 or 16 */
    int channels;       /* samples per pixel, alpha included */
    int color_channels; /* samples per pixel that carry bits */
    size_t rowbytes;
    uint8_t *pixels; /* height * rowbytes */
} stego_image;

/* Decodes a PNG file's bytes.  0, or -EINVAL (with *why) when it is no PNG or too large,
 * -ENOMEM. */
int stego_image_read(const uint8_t *png, size_t n, stego_image *img, const char **why);
/* Encodes img as a PNG (*png malloc'ed).  0 or -ENOMEM / -EIO. */
int stego_image_write(const stego_image *img, uint8_t **png, size_t *n);
void stego_image_free(stego_image *img);

/* The largest message, in bytes, that img can hold (0 if none). */
size_t stego_capacity(const stego_image *img);

/* Hides msg in img's pixels.  0, -EFBIG when it exceeds stego_capacity (checked before
 * any key derivation), -EINVAL on bad arguments, -ENOMEM. */
int stego_hide(stego_image *img, const uint8_t *msg, size_t len, const char *pass, size_t passlen,
               enum stego_kdf level);

/* Finds and opens the message (*msg malloc'ed, *len bytes).  0, -EBADMSG when there is
 * none for this passphrase (wrong passphrase, or no message), -ENOMEM. */
int stego_reveal(const stego_image *img, const char *pass, size_t passlen, uint8_t **msg,
                 size_t *len);

#endif

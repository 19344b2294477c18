/* PNG stored as PNG (DESIGN.md §5): same width, height, bit depth, colour type and
 * interlace method, noise for pixels, original bytes back exactly on decode.
 *
 * Stored file, in this order (offsets in bytes; PNG integers are big-endian, the
 * pixcrypt fields inside pxCR little-endian like the opaque header):
 *
 *     0    8  PNG signature
 *     8   25  IHDR chunk: the original 13 data bytes, CRC recomputed
 *    33    4  pxCR chunk length = 188 + L
 *    37    4  chunk type "pxCR" (private, ancillary, unsafe to copy)
 *    41  144  pixcrypt header, as in the opaque format (codec/opaque.h):
 *               magic "pixcrypt" (8), format version u16 LE (PXC_FORMAT_VERSION),
 *               kind u8 (PXC_KIND_PNG), cipher profile u8 (enum pxc_profile:
 *               0 codec/cipher.h, 1 the chaos research profile of codec/chaos.h),
 *               reserved (4, zero), file id (16),
 *               sealed seed||nnvec||version (112; AEAD under the volume header key,
 *               AD = the first 32 header bytes, i.e. stored bytes 41..72)
 *   185    8  plaintext size, u64 LE
 *   193    4  L = length of the sealed record, u32 LE
 *   197    L  sealed record: 24-byte random nonce || ciphertext || 16-byte tag,
 *             XChaCha20-Poly1305 under the file's PXC_SUBKEY_METADATA subkey,
 *             AD = stored bytes 0..196 (signature, IHDR, and pxCR up to here)
 *  197+L  32  MAC: BLAKE2b-256 keyed with the file's PXC_SUBKEY_MAC subkey over
 *             the whole stored file except these 32 bytes and the pxCR CRC,
 *             i.e. bytes [0, 197+L) followed by bytes [233+L, end)
 *  229+L   4  pxCR CRC (checked too, after the MAC)
 *  233+L      PLTE chunk, palette images only: random colours, as many entries as
 *             the original PLTE but at most 2^depth (the original is in the record)
 *             IDAT chunks: the cipher image, filter type 0 on every row, one zlib
 *             stream split into chunks of at most PNG_STORED_IDAT_BYTES (stored
 *             blocks, or Huffman-only when the modulus is below 2^depth; any valid
 *             stream would do, decode only inflates it)
 *             IEND chunk, and nothing after it
 *
 * Chunks in clear are only those a decoder needs: IHDR, PLTE (palette images), IDAT,
 * IEND.  Every other original chunk is sealed, not stripped, including the ones that
 * affect display (tRNS, gAMA, cHRM, sRGB, iCCP, sBIT, bKGD, pHYs, cICP...): none is
 * needed to decode the noise, and each would leak something (the transparent colour
 * or palette alpha, the capture device's colour profile, the scanner's resolution);
 * applied to noise they mean nothing.  The clear PLTE has random colours so that not
 * even the image's colour set is visible; only its entry count leaks.
 *
 * The sealed record (plaintext) holds what regenerates the original file:
 *   u8      record version (1)
 *   varint  size of the record body, then varint n and n bytes: zlib(body)
 *   rest    the deflate recipe of the original IDAT stream (codec/deflate_recipe.h)
 * Body (varints are LEB128):
 *   u8      flags: 1 IHDR CRC was wrong (u32 BE original CRC follows),
 *                  2 rows have nonzero padding bits (pad table present),
 *                  4 image data continues after the last row (extra bytes present),
 *                  8 copies of the plaintext after the head and at its end follow
 *   [u32    original IHDR CRC]
 *   varint n, n bytes   every byte between IHDR and the first IDAT, verbatim (the
 *                       chunks there, with their CRCs, in their order)
 *   varint k, k varints the original IDAT chunk lengths, in order
 *   varint b, b times (varint index, u32 BE CRC)   IDAT chunks whose CRC was wrong,
 *                       by increasing index
 *   varint r, r bytes   the filter type of every row, pass by pass if interlaced
 *   [r bytes]           pad table: the value of each row's unused low bits
 *   [varint n, n bytes] image data after the last row (at most 1 MiB is kept; an
 *                       image with more is declined)
 *   varint n, n bytes   every byte after the last IDAT, verbatim: the chunks there,
 *                       IEND, and anything after IEND
 *   [varint n, n bytes] the n plaintext bytes right after the bytes before the first
 *                       IDAT, and
 *   [varint t, t bytes] the last t plaintext bytes (codec/preview.h: reads near the
 *                       start and the end of large files without a decode)
 *
 * Pixels: the samples of every row of every pass, unpacked (1/2/4/8-bit to one byte
 * each, 16-bit to a host uint16), form one array that pxc_cipher_encrypt_* encrypts
 * with the file's PXC_SUBKEY_PERMUTATION and PXC_SUBKEY_DIFFUSION subkeys and
 * modulus 2^depth, or min(PLTE entries, 2^depth) for palette images (an index past
 * the palette is declined).  Decoding decrypts them, refilters each row with its
 * original filter type and replays the recipe: the original zlib stream comes back
 * bit for bit without running any encoder, so it does not depend on the zlib of the
 * machine that reads it.  Adam7 images stay interlaced: the passes' samples, in pass
 * order, are the one array.
 *
 * Decode checks, in this order: the header fields, the sealed secrets (AEAD), the MAC
 * (constant-time compare), the pxCR CRC; only then does it open the record and
 * decrypt.  Encode ends by decoding its result and comparing it with the input.
 *
 * Memory: encode and decode hold about 8 times the filtered image data at their peak
 * (about 270 MiB for a 4000x3000 RGB image).
 *
 * Limits (decompression bombs): images whose filtered data exceeds
 * PNG_CODEC_MAX_IMAGE_BYTES or whose sample count exceeds PNG_CODEC_MAX_SAMPLES are
 * declined before anything of that size is allocated, and so are images whose IDAT
 * bytes could not possibly inflate to the size IHDR declares.  A stored file over the
 * limits is refused on decode with -EFBIG.
 *
 * Return values: 0, or a negative errno.  Encode declines with
 *   -EINVAL   not a PNG, or malformed (*why says what)
 *   -ENOTSUP  valid but a variant this codec does not transform
 *   -EFBIG    over the limits above
 *   -EPROTO   the stored form did not decode to the original bytes
 *   -ENOMEM   out of memory
 * and the caller keeps the file opaque.  Decode returns -EBADMSG when the stored
 * bytes do not authenticate or are not a stored PNG of this volume (the caller maps
 * it to EIO and logs the file name), -EFBIG or -ENOMEM.  Call sodium_init() first.
 */
#ifndef PXC_CODEC_PNG_H
#define PXC_CODEC_PNG_H

#include <stddef.h>
#include <stdint.h>

#include "codec/keys.h"
#include "codec/preview.h"

#define PNG_CODEC_MAX_IMAGE_BYTES (256u << 20) /* filtered image data, filter bytes included */
#define PNG_CODEC_MAX_SAMPLES (256u << 20)     /* samples in all passes */
#define PNG_STORED_IDAT_BYTES (256u << 10)     /* largest stored IDAT chunk */

/* Fixed offsets of the stored layout above. */
#define PNG_PXCR_HEADER_OFFSET 41
#define PNG_PXCR_PLAIN_SIZE_OFFSET 185
#define PNG_PXCR_RECORD_LEN_OFFSET 193
#define PNG_PXCR_RECORD_OFFSET 197
#define PNG_MAC_BYTES 32
/* Bytes png_codec_peek needs: everything up to the sealed record. */
#define PNG_PEEK_BYTES 197

typedef struct png_peek_info {
    uint32_t width, height;
    uint8_t bit_depth, color_type, interlace;
    uint16_t version;    /* format version from the header */
    uint8_t profile;     /* enum pxc_profile of the pixel cipher (header byte 11) */
    uint64_t plain_size; /* size of the original file */
    uint64_t head_bytes; /* stored bytes png_codec_decode_head needs (through the record) */
    uint8_t file_id[PXC_FILE_ID_BYTES];
    uint8_t sealed[PXC_SEALED_SECRETS_BYTES];
    uint8_t header_ad[32]; /* AD of the sealed secrets: the first 32 header bytes */
} png_peek_info;

/* Transforms the PNG plain[0..n) into its stored form (*stored, malloc'ed, *stored_len
 * bytes) under the given per-file secrets, and verifies that decoding it gives back
 * plain exactly.  On failure *stored is NULL and *why (if why is not NULL) a short
 * static reason. */
int png_codec_encode(const uint8_t *plain, size_t n, const pxc_keys *keys,
                     const pxc_file_secrets *s, uint8_t **stored, size_t *stored_len,
                     const char **why);

/* Authenticates the stored file stored[0..n) as a whole and regenerates the original
 * (*plain, malloc'ed, *plain_len bytes). */
int png_codec_decode(const uint8_t *stored, size_t n, const pxc_keys *keys, uint8_t **plain,
                     size_t *plain_len);

/* The original bytes before the first IDAT chunk (signature, IHDR, and every chunk
 * up to the image data) and the sealed copy of the bytes after them, and into *tail
 * (if not NULL) the copy of the last bytes (codec/preview.h), without touching the
 * pixels.  Needs only the first info.head_bytes stored bytes (n may be larger; -ENODATA
 * if it is smaller), which the sealed record authenticates on its own; the rest of the
 * file is not checked. */
int png_codec_decode_head(const uint8_t *stored, size_t n, const pxc_keys *keys, uint8_t **head,
                          size_t *head_len, pxc_plain_tail *tail);

/* Reads the clear fields from the first PNG_PEEK_BYTES bytes of a stored file:
 * 0 and *out filled if they are a pixcrypt PNG header, -EINVAL if not (a plain PNG,
 * another format), -ENODATA if n < PNG_PEEK_BYTES.  Nothing is authenticated. */
int png_codec_peek(const uint8_t *head, size_t n, png_peek_info *out);

/* Opens the sealed secrets of a peeked header: 0 with s filled (file id included),
 * or -EBADMSG if they do not authenticate under this volume's keys. */
int png_codec_open_secrets(const png_peek_info *info, const pxc_keys *keys, pxc_file_secrets *s);

#endif

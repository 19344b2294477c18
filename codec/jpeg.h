/* JPEG stored as JPEG (DESIGN.md §5): same dimensions, components and sampling factors,
 * noise for content, original bytes back exactly on decode.  The cipher works on the
 * quantised DCT coefficients (libjpeg-turbo's jpeg_read_coefficients /
 * jpeg_write_coefficients), never on decoded pixels.
 *
 * Stored file, in this order (JPEG integers big-endian, pixcrypt fields little-endian
 * like the opaque header):
 *
 *     0    2  SOI
 *     2    2  APP15 marker (FF EF)
 *     4    2  its length = 2 + 160 + c0
 *     6  144  pixcrypt header, as in the opaque format (codec/opaque.h):
 *               magic "pixcrypt" (8), format version u16 LE (PXC_FORMAT_VERSION),
 *               kind u8 (PXC_KIND_JPEG), reserved (5, zero), file id (16),
 *               sealed seed||nnvec||version (112; AEAD under the volume header key,
 *               AD = the first 32 header bytes, i.e. stored bytes 6..37)
 *   150    8  plaintext size, u64 LE
 *   158    4  L = length of the sealed record, u32 LE
 *   162    4  H = stored bytes up to the end of the cipher image's first SOS segment
 *              (what jpeg_codec_decode_head needs), u32 LE
 *   166   c0  the first c0 = min(L, JPEG_SEGMENT_DATA_MAX - 160) bytes of the record;
 *             the rest follows in further APP15 segments (FF EF, length, up to
 *             JPEG_SEGMENT_DATA_MAX record bytes each), so the header segments are
 *             fully determined by L.  The sealed record: 24-byte random nonce ||
 *             ciphertext || 16-byte tag, XChaCha20-Poly1305 under the file's
 *             PXC_SUBKEY_METADATA subkey, AD = stored bytes 0..165
 *             APP15 segment of length 34 holding the MAC: BLAKE2b-256 keyed with the
 *             file's PXC_SUBKEY_MAC subkey over the whole stored file except these 32
 *             bytes
 *             the cipher image as libjpeg-turbo writes it, without its SOI: a JFIF APP0
 *             (YCbCr, gray; density reset to 1:1) or Adobe APP14 (RGB, CMYK, YCCK)
 *             segment, DQT (the original quantisation tables), SOF (the original
 *             dimensions, component ids and sampling factors), DHT (Huffman tables
 *             optimised for the cipher coefficients), SOS and its data, EOI.  The
 *             cipher image is always sequential (one interleaved scan, like a
 *             baseline JPEG) whatever the original's mode, and has no restart
 *             markers.
 *
 * Nothing else of the original is in clear: every APPn (JFIF, Exif with its thumbnail,
 * XMP, ICC, IPTC/Photoshop, MPF, maker segments), COM, the original Huffman tables and
 * scan script, and any bytes after EOI (MPF's embedded images) are in the record.
 *
 * The sealed record (plaintext): u8 version (1), 16-byte BLAKE2b of the preset
 * dictionary, varint size of the body, zlib(body) compressed with a preset dictionary:
 * the stored bytes after the MAC segment up to H (at most 16 KiB of them) followed by
 * libjpeg's standard Huffman tables as a DHT segment (so tables equal to those cost
 * nearly nothing).  Body (varints are LEB128, signed ones zigzag):
 *   varint n, n bytes   skeleton: the original file with the entropy-coded data of
 *                       every scan removed (markers and segments in their order, fill
 *                       bytes, everything after EOI)
 *   varint s            number of scans; then per scan:
 *     varint            length of its entropy-coded data (restart markers included)
 *     varint p, p times (varint offset delta, u8 byte)   bytes where the original
 *                       differs from the exact encoder's output (fill bits that are not
 *                       ones, for instance)
 *   u8 ncomp; per component: svarint lo, svarint hi (the DC mask range), u8 pidx (the
 *                       permutation chosen, < 64), u8 textured (0 or 1); if textured:
 *                       varint n (= wb * hb), varint r, r run lengths (varints) of the
 *                       flat-block flags in raster order, alternating, starting with
 *                       blocks that are not flat; then varint d and d blocks of 64 int16
 *                       LE: the coefficient blocks outside the image (MCU padding), in
 *                       raster order of the padded array
 *   [varint n, n bytes, varint t, t bytes]   optional: the n plaintext bytes right
 *                       after the head (the bytes through the first SOS segment) and
 *                       the last t plaintext bytes (codec/preview.h)
 *
 * Regeneration: the coefficients come from the cipher image, decrypted; the padding
 * blocks from the record; each scan's entropy-coded data from codec/jpeg_scan.c, an
 * exact Huffman encoder for sequential and progressive scans (libjpeg's choices for
 * EOB runs and fill bits), given the scan's tables, component order, spectral
 * selection, successive approximation and restart interval read from the skeleton.
 * Encode compares the result with the original scan by scan: equal length with at most
 * a few differing bytes is recorded as patches, anything else is declined.
 *
 * Cipher (codec/jpeg_cipher.c, exact definition there): per component, a keyed
 * permutation of the blocks inside the image (PXC_SUBKEY_PERMUTATION), DC values masked
 * modulo the range [lo, hi] (the legal range -1024/q .. 1023/q widened to the values
 * present, q the DC quantiser; at most 2048 values so that DC differences stay legal),
 * and the sign and magnitude bits of every nonzero AC value XORed within its size
 * category (PXC_SUBKEY_DIFFUSION, consumed bit by bit: 32 bits per DC, s bits per AC
 * value of category s): zero/nonzero pattern and size categories are kept, so the AC
 * Huffman symbols, hence the size, barely change.  Flat blocks (all AC zero) would stay
 * flat, and flat cipher blocks landing on flat areas of the original make SSIM
 * systematically positive; so in the first component (all components of RGB and CMYK
 * images) every flat block gets one AC value of dequantised magnitude about 256 at a
 * keyed position (1 or 8) with a keyed sign, and the record keeps which blocks were
 * flat.  The permutation is the first of up to 64 keyed candidates (pidx) whose map of
 * per-block AC energy is uncorrelated with the original's (|r| < 0.02): for a uniformly
 * random permutation r has a standard deviation of about 1/sqrt(n), so small images
 * (n = 64 blocks at 64x64) would often exceed |r| = 0.1; the search runs only up to
 * 65536 blocks, beyond which r is negligible, and its choice is sealed in the record.
 *
 * Leaks (allowed by DESIGN.md §4): dimensions, components, sampling factors, component
 * ids, quantisation tables, per-block AC size categories (positions scrambled), and
 * approximate sizes (not whether the original was progressive).
 *
 * Declined (the caller keeps the file opaque): arithmetic coding, 12-bit and lossless
 * JPEGs, hierarchical frames, DNL, more than JPG_MAX_SCANS scans, files libjpeg-turbo
 * cannot read, entropy-coded data not reproduced exactly, and bombs: more than
 * JPEG_CODEC_MAX_BLOCKS coefficient blocks, or more blocks than eight per
 * entropy-coded byte (each block costs at least one bit in its DC scan), checked from
 * the markers before anything of that size is allocated.
 *
 * Memory: encode and decode hold about 2 copies of the coefficients (libjpeg's arrays and
 * one contiguous copy; 128 bytes per block: about 55 MiB each for a 5640x3172 4:2:0
 * photo) plus the stored and plain files.  The cipher works directly between libjpeg's
 * rows of blocks and the contiguous copy.
 *
 * Return values as in png.h: encode declines with -EINVAL (not a JPEG, malformed),
 * -ENOTSUP (variant not transformed), -EFBIG (limits), -EPROTO (not regenerated
 * exactly), -ENOMEM; decode returns -EBADMSG when the stored bytes do not authenticate.
 * Call sodium_init() first.
 */
#ifndef PXC_CODEC_JPEG_H
#define PXC_CODEC_JPEG_H

#include <stddef.h>
#include <stdint.h>

#include "codec/keys.h"
#include "codec/preview.h"

#define JPEG_CODEC_MAX_BLOCKS (2u << 20) /* coefficient blocks, all components */
#define JPEG_SEGMENT_DATA_MAX 65533u     /* payload of one APP segment */

/* Fixed offsets of the stored layout above. */
#define JPEG_HEADER_OFFSET 6
#define JPEG_PLAIN_SIZE_OFFSET 150
#define JPEG_RECORD_LEN_OFFSET 158
#define JPEG_HEAD_BYTES_OFFSET 162
#define JPEG_RECORD_OFFSET 166
#define JPEG_MAC_BYTES 32
/* Bytes jpeg_codec_peek needs: everything up to the sealed record. */
#define JPEG_PEEK_BYTES 166

typedef struct jpeg_peek_info {
    uint16_t version;    /* format version from the header */
    uint64_t plain_size; /* size of the original file */
    uint64_t head_bytes; /* stored bytes jpeg_codec_decode_head needs */
    uint32_t record_len;
    uint8_t file_id[PXC_FILE_ID_BYTES];
    uint8_t sealed[PXC_SEALED_SECRETS_BYTES];
    uint8_t header_ad[32]; /* AD of the sealed secrets: the first 32 header bytes */
} jpeg_peek_info;

/* Transforms the JPEG plain[0..n) into its stored form (*stored, malloc'ed) under the
 * given per-file secrets and verifies that decoding it gives back plain exactly.  On
 * failure *stored is NULL and *why (if not NULL) a short static reason. */
int jpeg_codec_encode(const uint8_t *plain, size_t n, const pxc_keys *keys,
                      const pxc_file_secrets *s, uint8_t **stored, size_t *stored_len,
                      const char **why);

/* Authenticates the whole stored file and regenerates the original. */
int jpeg_codec_decode(const uint8_t *stored, size_t n, const pxc_keys *keys, uint8_t **plain,
                      size_t *plain_len);

/* The original bytes up to the end of its first SOS segment (every marker segment
 * before the image data: Exif, XMP, ICC, tables, SOF) and the sealed copy of the bytes
 * after them, and into *tail (if not NULL) the copy of the last bytes (codec/preview.h),
 * without decoding any scan.  Needs the first info.head_bytes stored bytes (-ENODATA if
 * n is smaller); the sealed record authenticates them; the rest of the file is not
 * checked. */
int jpeg_codec_decode_head(const uint8_t *stored, size_t n, const pxc_keys *keys, uint8_t **head,
                           size_t *head_len, pxc_plain_tail *tail);

/* Reads the clear fields from the first JPEG_PEEK_BYTES bytes: 0, -EINVAL if they are
 * not a pixcrypt JPEG header, -ENODATA if n < JPEG_PEEK_BYTES.  Nothing authenticated. */
int jpeg_codec_peek(const uint8_t *head, size_t n, jpeg_peek_info *out);

/* Opens the sealed secrets of a peeked header: 0, or -EBADMSG. */
int jpeg_codec_open_secrets(const jpeg_peek_info *info, const pxc_keys *keys, pxc_file_secrets *s);

#endif

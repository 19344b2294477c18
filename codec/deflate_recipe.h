/* Deflate recipes: regenerate a zlib stream exactly from its decompressed data.
 *
 * A PNG's IDAT stream was made by some unknown encoder, and no other encoder (nor
 * another build of zlib) reproduces it by recompressing.  A recipe records every
 * choice the encoder made -- block layout, Huffman tables as they were coded, each
 * match's length and distance codes, padding bits, checksum, trailing bytes -- but
 * none of the literal bytes.  Recipe plus data gives back the original stream, bit
 * for bit, with this module's own bit writer: no encoder runs on replay, so the
 * result does not depend on the reading machine's zlib.
 *
 * Recipe bytes (format 2):
 *   u8      format (DEFLATE_RECIPE_FORMAT)
 *   u8 CMF, u8 FLG          zlib header as found
 *   varint  data size (varints are LEB128)
 *   u8      flags           bit 0: Adler-32 differs from the data's, stored raw
 *   [4 bytes Adler-32, big-endian, if flag bit 0]
 *   u8      value of the padding bits after the final block (count follows from
 *           the bit position)
 *   varint n, n bytes       whatever followed the Adler-32 in the input
 *   six sections, in this order:
 *     blocks   per block u8 (BTYPE | BFINAL << 2); stored blocks add u8 value of
 *              the padding bits before LEN and u16 LE LEN
 *     trees    per dynamic block u8 HLIT, HDIST, HCLEN, HCLEN+4 code-length-code
 *              lengths, then the code-length symbols as coded (u8 symbol 0..18,
 *              repeat symbols followed by u8 extra-bits value)
 *     runs     per fixed/dynamic block, varint (literal run << 2 | what follows):
 *              0 a match, 1 end of block, 2 a match of length 258 coded as
 *              symbol 284 with extra bits 31
 *     lengths  per match of kind 0: u8 length - 3
 *     dhigh    per match: u8 (distance - 1) >> 8
 *     dlow     per match: u8 (distance - 1) & 255
 *   each section as  varint size << 1 | packed,  then if packed: varint m and m bytes
 *   of zlib stream inflating to exactly size bytes; otherwise the size bytes as is
 *   u32     Adler-32 (big-endian) of every recipe byte before it
 * Lengths and distances determine their codes and extra bits uniquely, except the
 * length 258 case that runs kind 2 records.  The literal bytes come from the data.
 *
 * Replay is one pass of table look-ups and bit writes over recipe and data: no match
 * search, no encoder.  Recipes cost about what the stream spends on its matches --
 * 0.5-0.6 of the stream for photos, about 1.0 for text, under 0.1 for flat images --
 * because match distances are recorded, not predicted.  Build packs each section
 * with whichever of Huffman-only, run-length or level-1 deflate does best on its
 * first 64 KiB (stored as is if that gains under 1/64).
 *
 * Cost: build and replay are linear in the input, the data and the recipe (at most a
 * few hundred operations per dynamic block header, a few per symbol).  Typical
 * figures on photos: build 40-70 MB/s, replay 120-200 MB/s of decompressed data.
 * Memory: the data, the input or output stream, and sections of about 4 bytes per
 * match and 1 per literal run.
 */
#ifndef PXC_CODEC_DEFLATE_RECIPE_H
#define PXC_CODEC_DEFLATE_RECIPE_H

#include <stddef.h>
#include <stdint.h>

#define DEFLATE_RECIPE_FORMAT 2

/* Parses the complete zlib stream zstream[0..zlen) (bytes after its Adler-32 are kept
 * as trailing bytes).  On success returns 0 with *data (malloc'ed, *data_len bytes,
 * never NULL) holding the decompressed bytes and *recipe (malloc'ed, *recipe_len
 * bytes) the recipe; the caller frees both.  Decompressed data larger than max_out
 * bytes is refused.  On failure returns a negative errno, sets the outputs to
 * NULL/0 and *why (if why is not NULL) to a static reason:
 *   -EINVAL   not a valid zlib stream (every check zlib's inflate makes, except a
 *             wrong Adler-32, which is recorded instead)
 *   -ENOTSUP  valid but not representable (a preset dictionary)
 *   -EFBIG    decompressed data exceeds max_out
 *   -ENOMEM   out of memory */
int deflate_recipe_build(const uint8_t *zstream, size_t zlen, size_t max_out, uint8_t **data,
                         size_t *data_len, uint8_t **recipe, size_t *recipe_len, const char **why);

/* Regenerates the zlib stream that recipe was built from, given the same data.
 * On success returns 0 and *zstream (malloc'ed, *zlen bytes).  On failure returns
 * -EBADMSG (recipe unreadable or inconsistent, e.g. a match reaching before the
 * start), -EINVAL (data does not fit the recipe: wrong size, a byte the block's code
 * cannot code) or -ENOMEM.  Match contents are not compared with data: a caller that cannot trust
 * data inflates the result, or authenticates data beforehand. */
int deflate_recipe_replay(const uint8_t *recipe, size_t recipe_len, const uint8_t *data,
                          size_t data_len, uint8_t **zstream, size_t *zlen);

#endif

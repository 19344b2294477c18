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
 * Recipe bytes (format 1):
 *   u8      format (DEFLATE_RECIPE_FORMAT)
 *   varint  body size (LEB128)
 *   zlib stream of the body.  Only ever inflated on read, which is deterministic.
 * Body:
 *   u8 CMF, u8 FLG          zlib header as found
 *   varint  data size
 *   u8      flags           bit 0: Adler-32 differs from the data's, stored raw
 *   [4 bytes Adler-32, big-endian, if flag bit 0]
 *   u8      value of the padding bits after the final block (count follows from
 *           the bit position)
 *   varint n, n bytes       whatever followed the Adler-32 in the input
 *   seven sections, each varint size + bytes:
 *     blocks   per block u8 (BTYPE | BFINAL << 2); stored blocks add u8 value of
 *              the padding bits before LEN and u16 LE LEN
 *     trees    per dynamic block u8 HLIT, HDIST, HCLEN, HCLEN+4 code-length-code
 *              lengths, then the code-length symbols as coded (u8 symbol 0..18,
 *              repeat symbols followed by u8 extra-bits value)
 *     runs     per fixed/dynamic block, varint (literal run << 2 | what follows):
 *              0 a match, 1 end of block, 2 a match of length 258 coded as
 *              symbol 284 with extra bits 31
 *     choices  per match u8: 0..239 the match is the n-th "record" candidate of
 *              the match model (below); 240 ranked; 241 raw
 *     lengths  per ranked or raw match: u8 length - 3
 *     ranks    per ranked match: u8 rank among the candidates at least that long
 *     dists    per raw match: u16 LE distance - 1
 * Lengths and distances determine their codes and extra bits uniquely, except the
 * length 258 case that runs kind 2 records.
 *
 * Match model: the positions before a match that start with the same three bytes
 * (by a 16-bit hash), walked most recent first within 32 KiB and at most 4096
 * steps, as zlib's longest-match search walks its chains.  A "record" candidate is
 * one that matches longer than every candidate before it, taken at its full length
 * (up to 258 and the end of data); most encoders' matches are records, so most
 * matches cost one byte before packing.  Build and replay run the same model over
 * the same data, so a recipe depends on nothing but this code.
 *
 * Cost: build and replay are linear in the data, but each match may walk up to
 * 4096 chain entries, so crafted streams (many short matches far down long chains)
 * are slower by that factor; typical streams build at 10-30 MB/s and replay at
 * 30-100 MB/s of decompressed data.  Memory: the data, the input, and recipe
 * sections of a few bytes per match or block.
 */
#ifndef PXC_CODEC_DEFLATE_RECIPE_H
#define PXC_CODEC_DEFLATE_RECIPE_H

#include <stddef.h>
#include <stdint.h>

#define DEFLATE_RECIPE_FORMAT 1

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
 * -EBADMSG (recipe unreadable), -EINVAL (data does not fit the recipe: wrong size,
 * a byte the block's code cannot code, a match reaching before the start) or
 * -ENOMEM.  Match contents are not compared with data: a caller that cannot trust
 * data inflates the result, or authenticates data beforehand. */
int deflate_recipe_replay(const uint8_t *recipe, size_t recipe_len, const uint8_t *data,
                          size_t data_len, uint8_t **zstream, size_t *zlen);

#endif

/* Neural key vectors (DESIGN.md §4): a keyed CNN + LSTM over a small grayscale view of
 * an image, hashed to the 32-byte vector that enters the per-file key.
 *
 * What the vector adds, and what it does not
 * ------------------------------------------
 * The per-file key is BLAKE2b(master; file id || seed || neural vector).  The vector
 * makes that key depend on the image content as well as on the volume key: two
 * different images never share a key, even with the same seed, and changing a single
 * pixel of the view changes the vector (a keyed hash of the exact view is mixed into
 * the LSTM's initial state and into the final hash, so no change is lost in the
 * network's averaging).  It adds nothing else.  The security of pixcrypt rests on
 * libsodium's primitives and on the random per-file seed, which is new on every
 * rewrite; the network is not a cryptographic primitive and is not claimed to be one.
 * The vector is sealed in the file header and in the keystore row next to the seed;
 * decryption reads it from there and never recomputes it, so a different CPU,
 * compiler or version of this module can never make a stored file unreadable.
 *
 * The network
 * -----------
 *   view (any size, 8-bit gray)  -> 64x64 by exact area averaging (integer arithmetic)
 *   conv 3x3 stride 2 + ReLU     1 -> 8 channels,  64 -> 32
 *   conv 3x3 stride 2 + ReLU     8 -> 16 channels, 32 -> 16
 *   conv 3x3 stride 2 + ReLU    16 -> 32 channels, 16 -> 8
 *   the 8x8x32 map read in raster order as 64 steps of 32 features
 *   LSTM, hidden size 32, initial h and c from a key vector (crypto_kdf, context
 *   "pxcnnvec") perturbed by the keyed hash of the exact view
 *   out = BLAKE2b-256(key = output subkey; final h || final c || view hash)
 * Every weight and bias comes from a ChaCha20 keystream under a crypto_kdf subkey of
 * the master key, scaled like He (convolutions) and Glorot (LSTM) initialisation: no
 * training data and no weight files.
 *
 * Arithmetic is IEEE single precision in a fixed evaluation order (the build passes
 * -ffp-contract=off, so no fused multiply-add); sigmoid and tanh are a fixed rational
 * approximation, tanh(x) ~ x(27 + x^2) / (27 + 9x^2) clamped to +-1 for |x| >= 3, and
 * sigmoid(x) = (1 + tanh(x/2)) / 2; no libm calls.  The vector is therefore identical
 * run to run on one machine and, for IEEE-conforming builds without fast-math, across
 * machines; only the former is required.
 *
 * Functions return 0, or -1 on bad arguments or allocation failure.
 */
#ifndef PXC_NN_NNVEC_H
#define PXC_NN_NNVEC_H

#include <stddef.h>
#include <stdint.h>

#define NN_MASTER_BYTES 32
#define NN_VECTOR_BYTES 32 /* == PXC_NNVEC_BYTES */
#define NN_MAX_SIDE (1u << 24)

typedef struct nn_model nn_model;

/* Keyed network derived from the volume master key; build once per mount.  The model
 * lives in guarded memory (sodium_malloc) and is read-only afterwards, so one model
 * serves any number of threads.  NULL on allocation failure. */
nn_model *nn_model_new(const uint8_t master[NN_MASTER_BYTES]);
void nn_model_free(nn_model *m);

/* The neural key vector of a grayscale view: 8-bit, row-major, `width` x `height`
 * samples (1..NN_MAX_SIDE each), rows `width` bytes apart. */
int nn_vector(const nn_model *m, const uint8_t *gray, uint32_t width, uint32_t height,
              uint8_t out[NN_VECTOR_BYTES]);

/* Views without a full decode.
 *
 * JPEG: the quantised DC coefficient q of each 8x8 block of the luma component, with
 * q * quant0 / 8 + 128 its block's mean sample, is a 1/8-scale image.  Maps `n` DC
 * values to 0..255 (rounded, clamped); quant0 is the luma quantisation table's entry 0. */
void nn_gray_from_dc(uint8_t *out, const int16_t *dc, size_t n, uint16_t quant0);

/* PNG (or any decoded gray rows): box-downsampling by an integer `factor`, fed one
 * source row at a time, so a view needs no full gray copy of the image.  The view is
 * ceil(width/factor) x ceil(height/factor); each sample is the rounded mean of its
 * block (smaller blocks at the right and bottom edges). */
typedef struct nn_box {
    uint32_t width, height, factor, out_width, out_height, row;
    uint32_t *acc; /* out_width sums of the block row in progress */
    uint8_t *out;
} nn_box;

/* `out` must hold nn_box_out_size(width, height, factor) bytes.  factor >= 1. */
size_t nn_box_out_size(uint32_t width, uint32_t height, uint32_t factor);
int nn_box_init(nn_box *b, uint8_t *out, uint32_t width, uint32_t height, uint32_t factor);
/* Feeds the next source row (`width` samples); -1 once all `height` rows are in. */
int nn_box_row(nn_box *b, const uint8_t *row);
void nn_box_free(nn_box *b);

/* Whole-image convenience over nn_box: `src` rows are `stride` bytes apart. */
int nn_box_downsample(uint8_t *out, const uint8_t *src, uint32_t width, uint32_t height,
                      size_t stride, uint32_t factor);

#endif

/* Cipher core of the format-preserving profile (DESIGN.md §4, §5).
 *
 * Encrypts an array of unpacked image samples in place so that every output sample
 * is again a legal sample: values stay in [0, modulus).  The PNG codec passes
 *   modulus = 2^depth      for gray, gray+alpha, RGB and RGBA samples (depth 1..16),
 *   modulus = palette size for palette indices (1..256; 1 is a no-op).
 *
 * Construction (cipher.c explains the choices); decryption undoes it in reverse:
 *   1. keyed permutation + forward pass: output positions are filled in a keyed visit
 *      order (a permutation of fixed-size chunks composed with a permutation inside
 *      each chunk, so it moves memory at copy speed instead of thrashing the cache),
 *      each with the running sum mod m of the permuted samples so far, from a keyed
 *      initial value; the visit order always ends at the last position;
 *   2. backward pass, a keyed chain from the last position down to the first:
 *      d[i] = c[i] + k[i] + d[i+1] + S[d[i+64]] mod m, with k a ChaCha20 keystream
 *      addressed by position (one nonce per block of 16384 samples), S a keyed table
 *      and keyed values standing in for d[n..n+64].
 * perm_key drives step 1, diff_key the initial values, S and k.  With both keys fixed,
 * changing one input sample changes each output sample with probability 1 - 1/m
 * (NPCR 99.6 %, UACI 33.46 % for m = 256).  Security rests on the keystream: a key pair
 * must encrypt one array only (the caller derives it from the per-file key, which a
 * fresh seed changes on every rewrite).  Keystreams are bound to count and modulus.
 *
 * The result depends only on keys, modulus, count and sample values (integer arithmetic,
 * little-endian keystream reads): it is the same on every machine, and the 8-bit and
 * 16-bit entry points give the same values for the same modulus.  On x86-64 CPUs with
 * AVX-512 (BW, VBMI), 8-bit storage runs through vector kernels that compute the same
 * values as the portable code.
 *
 * Memory: works in place.  Each call allocates about 10 bytes per chunk of
 * PXC_CIPHER_CHUNK_SAMPLES samples (the chunk order) and at most about 400 KiB more
 * (chunk buffers, permutation tables, a table of 2 * m bytes, keystream blocks), all of
 * it wiped before it is freed; there is no O(n) scratch buffer.  Calls share no state
 * and may run concurrently.  Call sodium_init() first so that libsodium picks its
 * fastest ChaCha20.
 *
 * Return values: 0, or a negative errno with the samples left unchanged:
 *   -EINVAL  modulus out of range, or samples == NULL with n > 0
 *   -ERANGE  some sample is >= modulus (e.g. a palette index past the palette)
 *   -EFBIG   n too large to index (more than 2^32 chunks)
 *   -ENOMEM  scratch allocation failed
 */
#ifndef PXC_CODEC_CIPHER_H
#define PXC_CODEC_CIPHER_H

#include <stddef.h>
#include <stdint.h>

#define PXC_CIPHER_KEY_BYTES 32
#define PXC_CIPHER_MODULUS_MAX_U8 256u
#define PXC_CIPHER_MODULUS_MAX_U16 65536u
/* Unit of the chunk permutation, part of the format; shorter arrays (and the samples
 * after the last full chunk) get one unstructured permutation. */
#define PXC_CIPHER_CHUNK_SAMPLES 16384u

/* Samples stored one per byte; 1 <= modulus <= 256. */
int pxc_cipher_encrypt_u8(uint8_t *samples, size_t n, uint32_t modulus,
                          const uint8_t perm_key[PXC_CIPHER_KEY_BYTES],
                          const uint8_t diff_key[PXC_CIPHER_KEY_BYTES]);
int pxc_cipher_decrypt_u8(uint8_t *samples, size_t n, uint32_t modulus,
                          const uint8_t perm_key[PXC_CIPHER_KEY_BYTES],
                          const uint8_t diff_key[PXC_CIPHER_KEY_BYTES]);

/* Samples stored in host-order uint16_t; 1 <= modulus <= 65536. */
int pxc_cipher_encrypt_u16(uint16_t *samples, size_t n, uint32_t modulus,
                           const uint8_t perm_key[PXC_CIPHER_KEY_BYTES],
                           const uint8_t diff_key[PXC_CIPHER_KEY_BYTES]);
int pxc_cipher_decrypt_u16(uint16_t *samples, size_t n, uint32_t modulus,
                           const uint8_t perm_key[PXC_CIPHER_KEY_BYTES],
                           const uint8_t diff_key[PXC_CIPHER_KEY_BYTES]);

/* Makes the calls that follow use the portable code even where vector kernels are
 * available (on = 1), or lets them pick again (on = 0); both give the same results.
 * For tests.  Returns 1 if the portable code was in use before. */
int pxc_cipher_force_portable(int on);

#endif

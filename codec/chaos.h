/* The "chaos" research profile: logistic-map + Hénon-map permutation and diffusion.
 *
 * WHAT IT IS FOR.  The image-encryption literature encrypts pixels with chaotic maps:
 * a chaotic sequence scrambles rows and columns, a second one supplies a keystream
 * that diffuses the scrambled pixels.  This module implements that construction, after
 * Khazaal, Falih and Majeed (2024), "Image encryption ... logistic and Hénon maps",
 * Open Engineering, doi:10.1515/eng-2024-0016 (Eq. 1: logistic map; Eq. 2-3: Hénon map),
 * so that `pixcrypt analyze` can measure it side by side with the default profile
 * (codec/cipher.h) on the same images, and so that `pixcrypt encrypt --profile chaos`
 * can produce it for comparison.  It is an opt-in research profile; `mount` refuses it
 * unless forced.  THE DEFAULT PROFILE (codec/cipher.h) IS THE SECURE ONE.
 *
 * WHY IT IS WEAK.  Do not protect data with it.
 *   - Chaotic maps iterated in finite precision are not chaotic: the state space is
 *     finite, so every orbit falls into a cycle, and the cycle an orbit ends in, its
 *     length and the transient before it depend on the number format and rounding in
 *     ways nobody controls and no key schedule can guarantee.  (This file's 64-bit
 *     fixed-point logistic map, measured for a few r near 4: cycles of about 6.5e8 = 2^29
 *     steps, entered after about 1.7e9; in IEEE doubles, with 53-bit significands,
 *     shorter cycles are to be expected.)
 *   - Their outputs are not uniformly distributed (the logistic map's invariant density
 *     piles up near 0 and 1; Hénon's attractor is a fractal set) and successive values
 *     are strongly related; extracting low-order digits hides this from histograms but
 *     does not make the map a cryptographically secure pseudo-random generator.  There
 *     is no security reduction of any kind; the key space claimed by such papers counts
 *     real-valued parameters, not the bits an attacker must search.
 *   - Permutation-diffusion chaotic image ciphers have a long record of known- and
 *     chosen-plaintext breaks: permutation-only parts fall to a few known plaintexts
 *     (Li and Lo, Signal Processing 91(4), 2011), and the diffusion stage is peeled off
 *     with chosen differential inputs (e.g. Zhou et al., Digital Signal Processing 93,
 *     2019, on a Hénon-map scheme).  See Alvarez and Li, "Some basic cryptographic
 *     requirements for chaos-based cryptosystems", Int. J. Bifurcation and Chaos 16(8),
 *     2006.  Here the key pair is fresh for every file version (as for the default
 *     profile), which stops keystream reuse across files, but nothing more.
 *   - One diffusion pass after the permutation: a changed plain sample changes only the
 *     cipher samples from its place in the scrambled order onwards.  With both keys
 *     fixed, NPCR/UACI for a one-sample change range from ~0 % (the change lands at the
 *     end of the scrambled order) to 99.6 %/33.46 % (at the start, the case papers
 *     report); on average half of that.  The default profile reaches 99.6 %/33.46 %
 *     wherever the change is.
 *
 * CONSTRUCTION.  The samples form a grid of `rows` rows of `cols` samples (for a PNG:
 * rows = height, cols = width * channels).  Encryption, in one sweep:
 *   1. Row/column scrambling (perm_key).  Logistic map (Eq. 1) x' = r x (1 - x) with key-
 *      derived x0 in [1/8, 7/8) and r in [3.99, 3.9999], after a key-derived burn-in of
 *      1000..2023 iterations; the next `rows` iterates, sorted, give the row order R
 *      (R[i] = index of the i-th smallest, ties by index) and the next `cols` iterates the
 *      column order C.  Scrambled sample t = i * cols + j is plain[R[i]][C[j]].
 *   2. Diffusion (diff_key).  Hénon map (Eq. 2-3) x' = 1 - a x^2 + y, y' = b x with the
 *      classical a = 1.4, b = 0.3, key-derived (x0, y0) in [-1/2, 1/2) x [-1/10, 1/10)
 *      (inside Hénon's trapping region) and burn-in 1000..2023.  Per scrambled sample t:
 *      iterate once; k_t = (low 32 bits of floor(|x| * 2^52)) mod m, the usual "digits
 *      of x far below the point, mod 256" keystream; then
 *          c_t = (p_t + k_t + c_{t-1}) mod m,      c_{-1} a key-derived value,
 *      and feed the cipher sample back into the map, y += c_t * 2^-52, so that the
 *      keystream after t depends on c_t (a change does not stay a constant offset).
 *      Decryption runs the same map over the cipher samples and subtracts.
 * Keys: BLAKE2b keyed with perm_key (resp. diff_key) over a label, n, m, rows and cols
 * gives the map parameters; the maps are never started from a constant.
 * Faithful in structure, not to the digit: the maps are the paper's Eq. 1-3 and the
 * stages its scramble-then-diffuse order; the parameter ranges, fixed-point arithmetic,
 * digit extraction, modulus-general addition (instead of XOR, which would leave
 * [0, m) for palette sizes) and cipher feedback are this implementation's choices, taken
 * from the common constructions of this literature.
 *
 * DETERMINISM.  The result depends only on keys, geometry, modulus and sample values,
 * bit for bit on every compiler and CPU: there is no floating point anywhere.  The
 * logistic state is an unsigned 64-bit fixed-point fraction (x * 2^64) and r is stored
 * as r * 2^62; one step is t = floor(x (2^64 - x) / 2^64), x' = floor(r t / 2^62).  The
 * Hénon state uses signed 64-bit values scaled by 2^60 (Q3.60); one step computes
 * q = floor(|x|^2 / 2^60), x' = 2^60 - floor(A q / 2^60) + y, y' = sign(x) floor(B |x| /
 * 2^60), with A = floor(1.4 * 2^60) and B = floor(0.3 * 2^60): products of magnitudes,
 * truncated, so no rounding mode, signed shift or overflow is involved (if a perturbed
 * orbit ever left |x| < 2, |y| < 1 the map would restart from its initial state, also
 * deterministically; not observed in 8e8 samples under 200 random key pairs).  128-bit products
 * come from unsigned __int128 where the compiler has it and from 32-bit halves otherwise, with
 * identical results.  Key bytes are read little-endian, and sorting uses a strict total
 * order (value, then index), so any qsort gives the same permutation.  The 8-bit and
 * 16-bit entry points give the same values for the same modulus.
 *
 * Memory: one n-sample scratch buffer and up to 24 bytes per row and per column, wiped
 * before they are freed.  Speed: one Hénon step per sample on a serial chain (see the unit test).
 * Calls share no state and may run concurrently.
 *
 * Return values as for codec/cipher.h: 0, or a negative errno with the samples unchanged:
 *   -EINVAL  modulus out of range, samples == NULL with n > 0, or rows * cols != n
 *   -ERANGE  some sample is >= modulus
 *   -ENOMEM  scratch allocation failed
 */
#ifndef PXC_CODEC_CHAOS_H
#define PXC_CODEC_CHAOS_H

#include <stddef.h>
#include <stdint.h>

#define PXC_CHAOS_KEY_BYTES 32
#define PXC_CHAOS_MODULUS_MAX_U8 256u
#define PXC_CHAOS_MODULUS_MAX_U16 65536u

/* The grid the samples form: `rows` rows of `cols` samples each, row after row, with
 * rows * cols == n.  A NULL geometry means one row of n samples (the column order is then
 * a permutation of the whole array, and the memory cost 16 bytes per sample). */
struct pxc_chaos_geometry {
    size_t rows;
    size_t cols;
};

/* Samples stored one per byte; 1 <= modulus <= 256 (1 is a no-op). */
int pxc_chaos_encrypt_u8(uint8_t *samples, size_t n, uint32_t modulus,
                         const struct pxc_chaos_geometry *geometry,
                         const uint8_t perm_key[PXC_CHAOS_KEY_BYTES],
                         const uint8_t diff_key[PXC_CHAOS_KEY_BYTES]);
int pxc_chaos_decrypt_u8(uint8_t *samples, size_t n, uint32_t modulus,
                         const struct pxc_chaos_geometry *geometry,
                         const uint8_t perm_key[PXC_CHAOS_KEY_BYTES],
                         const uint8_t diff_key[PXC_CHAOS_KEY_BYTES]);

/* Samples stored in host-order uint16_t; 1 <= modulus <= 65536. */
int pxc_chaos_encrypt_u16(uint16_t *samples, size_t n, uint32_t modulus,
                          const struct pxc_chaos_geometry *geometry,
                          const uint8_t perm_key[PXC_CHAOS_KEY_BYTES],
                          const uint8_t diff_key[PXC_CHAOS_KEY_BYTES]);
int pxc_chaos_decrypt_u16(uint16_t *samples, size_t n, uint32_t modulus,
                          const struct pxc_chaos_geometry *geometry,
                          const uint8_t perm_key[PXC_CHAOS_KEY_BYTES],
                          const uint8_t diff_key[PXC_CHAOS_KEY_BYTES]);

#endif

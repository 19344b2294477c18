/* Opaque storage format (DESIGN.md §5): any file, any size, random access.
 *
 *   header (136 bytes)
 *     0  magic "pixcrypt"          8
 *     8  format version, u16 LE    2   (PXC_FORMAT_VERSION)
 *    10  storage kind, u8          1   (PXC_KIND_OPAQUE)
 *    11  reserved, zero            5
 *    16  file id                  16
 *    32  sealed seed||nnvec      104   AEAD under the volume header key, AD = bytes 0..31
 *   blocks, each 24-byte random nonce || ciphertext (<= 4096) || 16-byte tag
 *     XChaCha20-Poly1305, key = file content subkey,
 *     AD = file id || block number (u64 LE) || final flag (1 byte)
 *
 * Every stored file has at least one block; the last block, and only it, carries
 * final = 1, so truncation at a block boundary is detected.  An empty file is one
 * final block holding zero bytes.  A non-final block stored as all zeros is a hole
 * (sparse region) and reads as zeros.
 *
 * Functions return 0 / a byte count, or a negative errno.  -EBADMSG means stored data
 * failed authentication; the caller maps it to EIO and logs it with the file name.
 * The caller serialises writers of one file (opaque_write / opaque_truncate).
 */
#ifndef PXC_CODEC_OPAQUE_H
#define PXC_CODEC_OPAQUE_H

#include <stdint.h>
#include <sys/types.h>

#include "codec/keys.h"

#define PXC_MAGIC "pixcrypt"
#define PXC_MAGIC_BYTES 8
#define PXC_FORMAT_VERSION 1

enum pxc_kind { PXC_KIND_OPAQUE = 0, PXC_KIND_PNG = 1, PXC_KIND_JPEG = 2 };

#define OPAQUE_HEADER_BYTES 136
#define OPAQUE_BLOCK_BYTES 4096
#define OPAQUE_NONCE_BYTES 24
#define OPAQUE_TAG_BYTES 16
#define OPAQUE_BLOCK_OVERHEAD (OPAQUE_NONCE_BYTES + OPAQUE_TAG_BYTES)
#define OPAQUE_STORED_BLOCK_BYTES (OPAQUE_BLOCK_BYTES + OPAQUE_BLOCK_OVERHEAD)

typedef struct opaque_file {
    int fd; /* backing file, opened read-write (or read-only for readers) */
    pxc_file_secrets secrets;
    uint8_t key[PXC_KEY_BYTES];               /* content subkey */
    uint8_t sealed[PXC_SEALED_SECRETS_BYTES]; /* as stored in the header, for the keystore row */
    uint64_t plain_size;                      /* kept current by opaque_write / opaque_truncate */
} opaque_file;

/* Writes a new header and an empty final block to fd (which is truncated first),
 * with fresh random secrets.  Fills *of. */
int opaque_create(opaque_file *of, int fd, const pxc_keys *keys);

/* Reads and authenticates fd's header and checks the stored size is possible.
 * -EBADMSG if it is not a valid opaque file of this volume. */
int opaque_open(opaque_file *of, int fd, const pxc_keys *keys);

/* Plaintext size from the stored size alone (no decryption).  -EBADMSG if the
 * stored size is impossible for the format (e.g. a torn last block). */
int opaque_plain_size(uint64_t stored_size, uint64_t *plain_size);
uint64_t opaque_stored_size(uint64_t plain_size);

/* Reads up to n bytes at off; returns bytes read (short only at end of file). */
ssize_t opaque_read(const opaque_file *of, void *buf, size_t n, uint64_t off);

/* Writes n bytes at off, growing the file (with holes) as needed. */
ssize_t opaque_write(opaque_file *of, const void *buf, size_t n, uint64_t off);

/* Sets the plaintext size.  Truncating to zero re-keys the file (new file id and
 * seed): the caller must update the keystore row for the new id. */
int opaque_truncate(opaque_file *of, uint64_t new_size, const pxc_keys *keys);

/* Re-reads the plaintext size from fstat of the backing file (after an outside change). */
int opaque_refresh_size(opaque_file *of);

/* Zeroes key material. */
void opaque_close(opaque_file *of);

/* Identifies a stored file's kind from its first bytes (at least 16).  Returns
 * PXC_KIND_* or -1 if the bytes are no pixcrypt header. */
int pxc_stored_kind(const uint8_t *head, size_t n);

#endif

/* Opaque storage format (DESIGN.md §5): any file, any size, random access.
 *
 *   header (144 bytes)
 *     0  magic "pixcrypt"          8
 *     8  format version, u16 LE    2   (PXC_FORMAT_VERSION)
 *    10  storage kind, u8          1   (PXC_KIND_OPAQUE)
 *    11  reserved, zero            5
 *    16  file id                  16   the file's for its whole life
 *    32  sealed secrets          112   seed || nnvec || version (u64 LE), AEAD under the
 *                                      volume header key, AD = bytes 0..31 (codec/keys.h)
 *   blocks, each 24-byte random nonce || ciphertext (<= 4096) || 16-byte tag
 *     XChaCha20-Poly1305, key = file content subkey,
 *     AD = file id || block number (u64 LE) || final flag (1 byte)
 *
 * Every stored file has at least one block; the last block, and only it, carries
 * final = 1, so truncation at a block boundary is detected.  An empty file is one
 * final block holding zero bytes.  A non-final block stored as all zeros is a hole
 * (sparse region) and reads as zeros.
 *
 * Versions: a file keeps its id.  Emptying it (opaque_truncate to 0) starts a new seed,
 * hence a new content key, and the next version; the caller records every other session
 * of changes with opaque_set_version, which reseals the header only (the seed, and so
 * the blocks, stay).  An old copy of the whole file shows its old version; an old copy of
 * a single block of the current seed is not detected.
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
#define PXC_FORMAT_VERSION 2

enum pxc_kind { PXC_KIND_OPAQUE = 0, PXC_KIND_PNG = 1, PXC_KIND_JPEG = 2 };

#define OPAQUE_HEADER_BYTES 144
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
 * with fresh random secrets (a new file, version 1).  Fills *of. */
int opaque_create(opaque_file *of, int fd, const pxc_keys *keys);
/* The same for a new stored version of an existing file, under the secrets s
 * (pxc_secrets_renew: its file id, a fresh seed, its next version). */
int opaque_create_from(opaque_file *of, int fd, const pxc_keys *keys, const pxc_file_secrets *s);
/* opaque_create_from in two steps, for a caller that records the new file (its sealed
 * secrets) before the file exists: prepare fills *of (no fd yet), write_prepared writes
 * its header and empty block to fd (truncated first). */
void opaque_prepare(opaque_file *of, const pxc_keys *keys, const pxc_file_secrets *s);
int opaque_write_prepared(opaque_file *of, int fd);

/* Reads and authenticates fd's header and checks the stored size is possible (and the
 * final block of an empty file, which reads never look at).
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

/* Sets the plaintext size.  Truncating to zero starts the next version (same file id,
 * new seed and key, version + 1): the caller updates the keystore row. */
int opaque_truncate(opaque_file *of, uint64_t new_size, const pxc_keys *keys);

/* Seals `version` into the header in place of the current one (same seed, fresh nonce);
 * of->sealed and of->secrets.version follow.  The blocks are not touched. */
int opaque_set_version(opaque_file *of, const pxc_keys *keys, uint64_t version);

/* Reads every block of the file and returns 0 if all authenticate; otherwise -EBADMSG
 * (or an I/O error) and *bad_offset, the plaintext offset of the first bad block. */
int opaque_verify(const opaque_file *of, uint64_t *bad_offset);

/* Repairs a file on fd whose tail was torn by an interrupted write (a crash in the
 * middle of appending): keeps its leading blocks up to the first one that does not
 * authenticate, re-seals the last kept block as the final one and cuts the rest.  The
 * header must authenticate.  *kept is the plaintext size kept.  -EBADMSG (and nothing
 * changed) when a block after the first bad one still authenticates: that is damage in
 * the middle of the file, not a torn tail. */
int opaque_salvage(int fd, const pxc_keys *keys, uint64_t *kept);

/* Re-reads the plaintext size from fstat of the backing file (after an outside change). */
int opaque_refresh_size(opaque_file *of);

/* Zeroes key material. */
void opaque_close(opaque_file *of);

/* Identifies a stored file's kind from its first bytes (at least 16).  Returns
 * PXC_KIND_* or -1 if the bytes are no pixcrypt header. */
int pxc_stored_kind(const uint8_t *head, size_t n);

#endif

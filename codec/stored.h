/* Stored files of every kind, for callers that must not know the formats (fs/, the
 * keystore rebuild, offline tools): identify a stored file from its first bytes, and
 * turn plaintext into the best stored form that regenerates it exactly.
 *
 *   opaque  codec/opaque.h  any content, random access, block by block
 *   png     codec/png.h     PNG kept a PNG, decoded whole
 *   jpeg    codec/jpeg.h    JPEG kept a JPEG (DCT domain), decoded whole
 *
 * Functions return 0 or a negative errno, like the format modules they dispatch to.
 */
#ifndef PXC_CODEC_STORED_H
#define PXC_CODEC_STORED_H

#include <stddef.h>
#include <stdint.h>

#include "codec/keys.h"
#include "codec/preview.h"

/* Enough leading bytes of a stored file for pxc_stored_peek, whatever its kind. */
#define PXC_STORED_PEEK_BYTES 200

typedef struct pxc_stored_info {
    int kind;            /* PXC_KIND_* (codec/opaque.h) */
    uint64_t plain_size; /* size of the plaintext the file holds */
    uint8_t file_id[PXC_FILE_ID_BYTES];
    uint8_t sealed[PXC_SEALED_SECRETS_BYTES]; /* sealed seed || nnvec || version */
    uint8_t header_ad[32];                    /* what the sealed secrets are bound to */
    uint64_t head_bytes; /* stored bytes pxc_stored_decode_head needs; 0 for opaque */
} pxc_stored_info;

/* Identifies a stored file from its first n bytes (n = min(stored_size,
 * PXC_STORED_PEEK_BYTES) is enough) and its total stored size, without decrypting.
 * -EBADMSG if the bytes are no pixcrypt file or the size is impossible for its kind.
 * Nothing is authenticated: use pxc_stored_open_secrets, then the format's own reads. */
int pxc_stored_peek(const uint8_t *head, size_t n, uint64_t stored_size, pxc_stored_info *out);

/* Opens the sealed per-file secrets of a peeked file (file id included). */
int pxc_stored_open_secrets(const pxc_stored_info *info, const pxc_keys *keys, pxc_file_secrets *s);

/* The format-preserving kind that might take this plaintext, judged by its first n
 * bytes (8 are enough): PXC_KIND_PNG, ..., or PXC_KIND_OPAQUE when none would. */
int pxc_stored_candidate_kind(const uint8_t *head, size_t n);

/* Largest plaintext a format-preserving kind is tried on; bigger files stay opaque. */
#define PXC_STORED_MAX_IMAGE_FILE (512u << 20)
/* Largest stored file of a format-preserving kind (the stored form of the largest
 * plaintext may be somewhat larger than it): what a reader may read whole. */
#define PXC_STORED_MAX_STORED_BYTES ((uint64_t)PXC_STORED_MAX_IMAGE_FILE * 2 + (64u << 20))

/* Encodes a whole plaintext as `kind` (a candidate kind) under fresh secrets s.
 * 0 with *stored (malloc'ed) on success, verified to regenerate plain exactly; a
 * negative errno and *why (static) when declined: the caller keeps the file opaque. */
int pxc_stored_encode(int kind, const uint8_t *plain, size_t n, const pxc_keys *keys,
                      const pxc_file_secrets *s, uint8_t **stored, size_t *stored_len,
                      const char **why);

/* Decodes a whole stored file of a format-preserving kind back to its plaintext.
 * -EBADMSG when it does not authenticate. */
int pxc_stored_decode(int kind, const uint8_t *stored, size_t n, const pxc_keys *keys,
                      uint8_t **plain, size_t *plain_len);

/* The plaintext's leading bytes that precede its image data (for PNG: signature, IHDR
 * and every chunk before the first IDAT) and, for large files, the sealed copy of the
 * bytes after them, without decoding the image: *head (malloc'ed, *head_len bytes) is a
 * prefix of what pxc_stored_decode gives.  *tail, if not NULL, gets the sealed copy of
 * the plaintext's last bytes (tail->data NULL if the file has none; codec/preview.h).  Needs only
 * the first info.head_bytes stored bytes (n may be larger; -ENODATA if smaller), which authenticate
 * on their own; the rest of the file is not checked.  -EBADMSG when they do not authenticate,
 * -EINVAL for kinds without a separately readable head. */
int pxc_stored_decode_head(int kind, const uint8_t *stored, size_t n, const pxc_keys *keys,
                           uint8_t **head, size_t *head_len, pxc_plain_tail *tail);

#endif

/* One file's plaintext into its stored form, and back, between two fds: the conversions
 * of `pixcrypt encrypt` / `decrypt` (fs/offline.h), without paths or placement.  What
 * is written is exactly what the mounted filesystem stores or reads (codec/stored.h).
 *
 * Functions return 0 or a negative errno with *why (static text) saying what failed. */
#ifndef PXC_FS_OFFLINE_FILE_H
#define PXC_FS_OFFLINE_FILE_H

#include <stdint.h>

#include "codec/keys.h"

/* What a stored file's keystore row holds: a copy of its header. */
typedef struct offline_stored {
    int kind; /* PXC_KIND_* */
    uint8_t file_id[PXC_FILE_ID_BYTES];
    uint8_t sealed[PXC_SEALED_SECRETS_BYTES];
    uint64_t plain_size;
    uint64_t version;
} offline_stored;

/* Called with plaintext bytes as they are done (progress). */
typedef void (*offline_tick_fn)(void *arg, uint64_t bytes);

/* Encrypts `size` bytes from in (read from offset 0) into out (empty, read-write) as a
 * new file (version 1): format-preserving when the content is a PNG or JPEG the codec
 * takes, else opaque, streamed.  *declined: why an image candidate stayed opaque (NULL
 * when it did not, or was no candidate). */
int offline_encrypt_fd(int in, uint64_t size, int out, const pxc_keys *keys, offline_stored *st,
                       const char **declined, const char **why, offline_tick_fn tick, void *arg);

/* Decrypts the stored file on in (stored_size bytes) into out.  st describes it. */
int offline_decrypt_fd(int in, uint64_t stored_size, int out, const pxc_keys *keys,
                       offline_stored *st, const char **why, offline_tick_fn tick, void *arg);

/* 0 and *st if the file on fd is a stored file of this volume (its sealed secrets open
 * under keys); -EBADMSG if it is not a pixcrypt file, -EKEYREJECTED if it is one of
 * another volume (or its header is damaged). */
int offline_identify(int fd, uint64_t stored_size, const pxc_keys *keys, offline_stored *st);

#endif

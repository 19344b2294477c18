/* Volume and per-file keys (DESIGN.md §4).
 *
 * The master key never leaves this module's structures except to derive:
 *   header key   = KDF(master, id 1, "pxchead1")   seals per-file secrets
 *   file key     = BLAKE2b-256(key = master; file_id || seed || nnvec)
 *   file subkeys = KDF(file key, id, "pxcfile1")   one per purpose below
 */
#ifndef PXC_CODEC_KEYS_H
#define PXC_CODEC_KEYS_H

#include <stddef.h>
#include <stdint.h>

#define PXC_KEY_BYTES 32
#define PXC_FILE_ID_BYTES 16
#define PXC_SEED_BYTES 32
#define PXC_NNVEC_BYTES 32
#define PXC_VERSION_BYTES 8
/* Sealed (seed || nnvec || version u64 LE): 24-byte nonce, 72 bytes of ciphertext, 16-byte
 * tag. */
#define PXC_SEALED_SECRETS_BYTES (24 + PXC_SEED_BYTES + PXC_NNVEC_BYTES + PXC_VERSION_BYTES + 16)

/* Volume keys, held in sodium_malloc'ed (guarded, mlocked) memory. */
/* Cipher profile of new format-preserving files; each stored file records its own. */
enum pxc_profile {
    PXC_PROFILE_DEFAULT = 0, /* codec/cipher.h: keyed permutation + two-pass diffusion */
    PXC_PROFILE_CHAOS = 1,   /* codec/chaos.h: the literature's logistic/Henon maps; weak */
};

typedef struct pxc_keys {
    uint8_t master[PXC_KEY_BYTES];
    uint8_t header[PXC_KEY_BYTES];
    struct nn_model *nn; /* the volume's keyed network (nn/nnvec.h) */
    int profile;         /* enum pxc_profile for files written now; DEFAULT from _new */
} pxc_keys;

/* What makes one stored version of a file unique.  The file id is the file's for its whole
 * life; the seed is new on every rewrite, so each version has its own key; the version
 * counts the rewrites (sealed with the seed, so that an older copy of the file put back
 * in its place shows an older version: the keystore row knows the current one). */
typedef struct pxc_file_secrets {
    uint8_t file_id[PXC_FILE_ID_BYTES];
    uint8_t seed[PXC_SEED_BYTES];
    uint8_t nnvec[PXC_NNVEC_BYTES]; /* neural key vector of the content (pxc_secrets_set_nnvec) */
    uint64_t version;               /* 1 for a new file, +1 per rewrite; not part of the key */
} pxc_file_secrets;

enum pxc_subkey_id {
    PXC_SUBKEY_CONTENT = 1,     /* opaque block AEAD */
    PXC_SUBKEY_PERMUTATION = 2, /* format-preserving: sample/block permutation */
    PXC_SUBKEY_DIFFUSION = 3,   /* format-preserving: diffusion keystream */
    PXC_SUBKEY_METADATA = 4,    /* sealed metadata and regeneration recipe */
    PXC_SUBKEY_MAC = 5,         /* MAC over a whole stored file */
};

/* Allocates guarded memory for the keys, derives the header key and builds the keyed
 * network of nn/. NULL on failure. */
pxc_keys *pxc_keys_new(const uint8_t master[PXC_KEY_BYTES]);
void pxc_keys_free(pxc_keys *keys);

/* A new file: fresh random file id and seed, nnvec zeroed, version 1. */
void pxc_secrets_fresh(pxc_file_secrets *s);
/* The next stored version of the same file: file id kept, fresh seed, nnvec zeroed, the
 * given version (greater than every earlier one). */
void pxc_secrets_renew(pxc_file_secrets *s, uint64_t version);
/* Sets s->nnvec to the neural key vector of a grayscale view of the content (8-bit,
 * row-major, width x height; see nn/nnvec.h for how codecs get one cheaply).  The
 * format codecs call it before deriving any subkey, so the vector enters every key of
 * the stored version and is sealed with the seed.  0, or -1 on bad arguments. */
int pxc_secrets_set_nnvec(pxc_file_secrets *s, const pxc_keys *keys, const uint8_t *gray,
                          uint32_t width, uint32_t height);

/* Per-file subkey for one purpose. */
void pxc_file_subkey(uint8_t out[PXC_KEY_BYTES], const pxc_keys *keys, const pxc_file_secrets *s,
                     enum pxc_subkey_id id);

/* Seal seed||nnvec||version under the header key, bound to `ad` (the stored header's clear part,
 * which contains the file id).  `ad` must not be longer than 64 bytes. */
void pxc_secrets_seal(uint8_t out[PXC_SEALED_SECRETS_BYTES], const pxc_keys *keys,
                      const pxc_file_secrets *s, const uint8_t *ad, size_t adlen);
/* Returns 0, or -1 if the sealed blob does not authenticate. s->file_id is not touched. */
int pxc_secrets_open(pxc_file_secrets *s, const pxc_keys *keys,
                     const uint8_t in[PXC_SEALED_SECRETS_BYTES], const uint8_t *ad, size_t adlen);

#endif

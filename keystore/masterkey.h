/* The volume's key record, and its copy in CIPHERDIR/.pixcrypt/masterkey (internal to
 * keystore/).
 *
 * The record is what unlocks a volume: volume id, Argon2id parameters and salt, and the
 * master key sealed under the passphrase.  keystore.db holds it in its volume row; the
 * masterkey file holds the same values, so that a lost or corrupt keystore.db does not
 * lose the volume (`pixcrypt fsck --rebuild-keystore` starts from the file).  The file is
 * small text, one "name value" line each, binary values in hex:
 *
 *   pixcrypt-masterkey 1
 *   format_version 1           the volume row's format version
 *   volume_id <32 hex>
 *   kdf_alg argon2id13
 *   kdf_opslimit <decimal>
 *   kdf_memlimit <decimal>     bytes
 *   kdf_salt <32 hex>
 *   master_sealed <144 hex>    nonce || XChaCha20-Poly1305(master key), AD as in keystore.c
 *   created <decimal>          unix time
 *   profile <decimal>          cipher profile of new images (KS_PROFILE_*); a file
 *                              without this line is a volume of the default profile
 *   names <decimal>            KS_NAMES_*; only written for encrypted names, a file
 *                              without this line is a volume of plaintext names
 *   checksum <32 hex>          BLAKE2b-128 of every byte before this line
 *
 * The checksum tells a damaged file from a wrong passphrase; the sealed key is
 * authenticated on its own.  Functions return KS_OK or a negative ks_status. */
#ifndef PXC_KEYSTORE_MASTERKEY_H
#define PXC_KEYSTORE_MASTERKEY_H

#include <sodium.h>
#include <stddef.h>
#include <stdint.h>

#include "keystore/keystore.h"

#define KS_MASTERKEY_NAME KS_MASTERKEY_FILE
#define KS_FORMAT_VERSION 1 /* volume record format written and understood */
#define KS_VOLUME_ID_BYTES 16
#define KS_KDF_ALG_NAME "argon2id13"
#define KS_SEALED_MASTER_BYTES                                                                     \
    (crypto_aead_xchacha20poly1305_ietf_NPUBBYTES + KS_MASTER_KEY_BYTES +                          \
     crypto_aead_xchacha20poly1305_ietf_ABYTES)

typedef struct ks_volume_record {
    long long format_version;
    uint8_t volume_id[KS_VOLUME_ID_BYTES];
    unsigned long long opslimit;
    size_t memlimit;
    uint8_t salt[crypto_pwhash_SALTBYTES];
    uint8_t master_sealed[KS_SEALED_MASTER_BYTES];
    long long created;
    long long profile; /* KS_PROFILE_* */
    long long names;   /* KS_NAMES_*: how file names are stored */
} ks_volume_record;

/* Whether Argon2id accepts these limits (values read from disk may be anything). */
int ks_kdf_limits_possible(long long opslimit, long long memlimit);

/* Writes the record to dir/masterkey atomically (temp file, fsync, rename, fsync dir),
 * mode 0600. */
int masterkey_write(const char *dir, const ks_volume_record *v);

/* Reads dir/masterkey: KS_ERR_MISSING if there is none, KS_ERR_CORRUPT if it does not
 * parse, fails its checksum or holds impossible values, KS_ERR_VERSION if written for a
 * newer format. */
int masterkey_read(const char *dir, ks_volume_record *v);

/* 1 if the two records hold the same values. */
int masterkey_same(const ks_volume_record *a, const ks_volume_record *b);

#endif

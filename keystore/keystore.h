/* The per-volume keystore: CIPHERDIR/.pixcrypt/keystore.db (SQLite).
 *
 * Holds the volume configuration (format version, volume id, Argon2id parameters and
 * salt, the master key sealed under the passphrase-derived key) and one row per stored
 * file.  The stored files' own headers are authoritative: the rows are an index that
 * `fsck` can rebuild; the wrapped master key is the one thing only the keystore has.
 *
 * All functions are safe to call from several threads on one handle.
 * Return values: KS_OK (0) or a negative ks_status.
 */
#ifndef PXC_KEYSTORE_H
#define PXC_KEYSTORE_H

#include <stddef.h>
#include <stdint.h>

#define KS_DIR ".pixcrypt"
#define KS_DB_NAME "keystore.db"
#define KS_LOCK_NAME "lock"
#define KS_SCHEMA_VERSION 1
#define KS_MASTER_KEY_BYTES 32
#define KS_FILE_ID_BYTES 16

typedef struct keystore keystore;

enum ks_kdf_level { KS_KDF_INTERACTIVE, KS_KDF_MODERATE, KS_KDF_SENSITIVE };

enum ks_status {
    KS_OK = 0,
    KS_ERR_IO = -1,         /* cannot create/read/write the database file */
    KS_ERR_EXISTS = -2,     /* init: a keystore (or other files) already present */
    KS_ERR_MISSING = -3,    /* open: no keystore at CIPHERDIR/.pixcrypt/keystore.db */
    KS_ERR_CORRUPT = -4,    /* not a database, missing tables, impossible values */
    KS_ERR_PASSPHRASE = -5, /* wrong passphrase (master key does not unseal) */
    KS_ERR_VERSION = -6,    /* written by a newer, unknown format version */
    KS_ERR_NOMEM = -7,
    KS_ERR_NOTFOUND = -8,   /* no row for that file id */
};

/* Human-readable message for a status. */
const char *keystore_strerror(int status);

/* Creates CIPHERDIR/.pixcrypt/ (mode 0700) and a new keystore.db in it: random
 * volume id, random 32-byte master key sealed under Argon2id(passphrase) at the given
 * level.  If master_out is not NULL the new master key is copied there. */
int keystore_create(const char *cipherdir, const char *pass, size_t passlen,
                    enum ks_kdf_level level, uint8_t master_out[KS_MASTER_KEY_BYTES]);

/* Opens an existing keystore and validates its schema and volume row. */
int keystore_open(keystore **out, const char *cipherdir);
void keystore_close(keystore *ks);

/* Unseals the master key with a passphrase (runs Argon2id with the stored limits). */
int keystore_unlock(keystore *ks, const char *pass, size_t passlen,
                    uint8_t master_out[KS_MASTER_KEY_BYTES]);

/* Re-seals the given master key under a new passphrase with a fresh salt and the
 * given level, in one transaction.  No stored file is touched. */
int keystore_rewrap(keystore *ks, const uint8_t master[KS_MASTER_KEY_BYTES], const char *newpass,
                    size_t newpasslen, enum ks_kdf_level level);

/* Volume facts for `stats`, `fsck` and the CLI. */
typedef struct ks_volume_info {
    int format_version;
    uint8_t volume_id[16];
    unsigned long long kdf_opslimit;
    size_t kdf_memlimit;
    long long created; /* unix time */
} ks_volume_info;
int keystore_volume_info(keystore *ks, ks_volume_info *info);

/* One row per stored file, keyed by the file id of its current stored version. */
typedef struct ks_file_row {
    uint8_t file_id[KS_FILE_ID_BYTES];
    int kind;                 /* PXC_KIND_OPAQUE / _PNG / _JPEG */
    uint8_t seed_sealed[128]; /* sealed per-file seed, as in the file header */
    size_t seed_sealed_len;
    uint8_t nnvec_sealed[128]; /* sealed neural key vector; empty (len 0) until nn/ */
    size_t nnvec_sealed_len;
    uint64_t plain_size;
    uint64_t version; /* bumped by every keystore_file_put / _update */
} ks_file_row;

/* Inserts or replaces the row for row->file_id (row->version is ignored: a new row
 * starts at 1, a replaced one is bumped). */
int keystore_file_put(keystore *ks, const ks_file_row *row);
/* Records a new plaintext size and bumps the version.  KS_ERR_NOTFOUND if no row. */
int keystore_file_update(keystore *ks, const uint8_t file_id[KS_FILE_ID_BYTES], int kind,
                         uint64_t plain_size);
int keystore_file_get(keystore *ks, const uint8_t file_id[KS_FILE_ID_BYTES], ks_file_row *row);
/* KS_OK also when there was no row. */
int keystore_file_delete(keystore *ks, const uint8_t file_id[KS_FILE_ID_BYTES]);
/* Number of file rows, or a negative status. */
long long keystore_file_count(keystore *ks);

#endif

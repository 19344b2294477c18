/* The per-volume keystore: CIPHERDIR/.pixcrypt/keystore.db (SQLite).
 *
 * Holds the volume configuration (format version, volume id, Argon2id parameters and
 * salt, the master key sealed under the passphrase-derived key) and one row per stored
 * file.  The stored files' own headers are authoritative: the rows are an index that
 * `fsck` can rebuild.  The volume's key record also lives in CIPHERDIR/.pixcrypt/masterkey
 * (written by create, rewrap and unlock; format in masterkey.h), so that a lost or corrupt
 * database does not lose the volume: keystore_rebuild_begin starts a new one from it.
 *
 * Every write is one SQLite statement or one transaction, in a write-ahead log: a process
 * killed at any moment leaves each row as it was or as it was going to be.
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
#define KS_MASTERKEY_FILE "masterkey"
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
    KS_ERR_NOTFOUND = -8,    /* no row for that file id */
    KS_ERR_WRONG_KEY = -9,   /* unlock_master: not this volume's master key */
    KS_ERR_NOKEYCHECK = -10, /* unlock_master: no key check stored yet */
};

/* Human-readable message for a status. */
const char *keystore_strerror(int status);

/* Cipher profile of a volume's new images (the codec's enum pxc_profile). */
#define KS_PROFILE_DEFAULT 0
#define KS_PROFILE_CHAOS 1
#define KS_PROFILE_MAX 1

/* How a volume stores file names (fs/namepath.h).  Keystores made before names were
 * encrypted have no such setting: their volumes have plaintext names. */
#define KS_NAMES_PLAIN 0
#define KS_NAMES_ENCRYPTED 1
#define KS_NAMES_MAX 1

/* Creates CIPHERDIR/.pixcrypt/ (mode 0700) and a new keystore.db in it: random
 * volume id, random 32-byte master key sealed under Argon2id(passphrase) at the given
 * level, the given cipher profile (KS_PROFILE_*).  If master_out is not NULL the new
 * master key is copied there. */
int keystore_create(const char *cipherdir, const char *pass, size_t passlen,
                    enum ks_kdf_level level, int profile, uint8_t master_out[KS_MASTER_KEY_BYTES]);
/* The same with a names mode (KS_NAMES_*); keystore_create makes plaintext names. */
int keystore_create_names(const char *cipherdir, const char *pass, size_t passlen,
                          enum ks_kdf_level level, int profile, int names,
                          uint8_t master_out[KS_MASTER_KEY_BYTES]);

/* Opens an existing keystore and validates its schema and volume row. */
int keystore_open(keystore **out, const char *cipherdir);
void keystore_close(keystore *ks);

/* Unseals the master key with a passphrase (runs Argon2id with the stored limits).  On
 * success the masterkey file is brought in line with the database's record; if that
 * record does not unseal but the file's (another record of this volume) does, the file's
 * is used and written back into the database. */
int keystore_unlock(keystore *ks, const char *pass, size_t passlen,
                    uint8_t master_out[KS_MASTER_KEY_BYTES]);

/* Unlocking with the master key itself (a recovery code): KS_OK if it is this volume's,
 * by the key check the keystore keeps (BLAKE2b keyed with the master key over the volume
 * id; written at create and by every passphrase unlock that finds it missing).
 * KS_ERR_WRONG_KEY if not, KS_ERR_NOKEYCHECK if the volume has no key check yet. */
int keystore_unlock_master(keystore *ks, const uint8_t master[KS_MASTER_KEY_BYTES]);

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
    int profile;       /* KS_PROFILE_* */
    int names;         /* KS_NAMES_* */
} ks_volume_info;
int keystore_volume_info(keystore *ks, ks_volume_info *info);

/* One row per stored file, keyed by its file id (the file's for its whole life): a copy of
 * what its current header says.  A header whose version is below its row's is an older
 * copy of the file put back in its place (a rollback). */
typedef struct ks_file_row {
    uint8_t file_id[KS_FILE_ID_BYTES];
    int kind;                 /* PXC_KIND_OPAQUE / _PNG / _JPEG */
    uint8_t seed_sealed[128]; /* the header's sealed secrets (seed, vector, version) */
    size_t seed_sealed_len;
    uint8_t nnvec_sealed[128]; /* sealed neural key vector; empty (len 0) until nn/ */
    size_t nnvec_sealed_len;
    uint64_t plain_size;
    uint64_t version; /* the header's version: 1 for a new file, +1 per rewrite */
} ks_file_row;

/* Inserts the row for row->file_id, or replaces it whole, every field as given. */
int keystore_file_put(keystore *ks, const ks_file_row *row);
int keystore_file_get(keystore *ks, const uint8_t file_id[KS_FILE_ID_BYTES], ks_file_row *row);
/* KS_OK also when there was no row. */
int keystore_file_delete(keystore *ks, const uint8_t file_id[KS_FILE_ID_BYTES]);
/* Number of file rows, or a negative status. */
long long keystore_file_count(keystore *ks);
/* Calls fn for every file row, in file id order, until it returns nonzero.  fn must not
 * call back into the keystore. */
int keystore_file_foreach(keystore *ks, int (*fn)(const ks_file_row *row, void *arg), void *arg);

/* Makes every committed change durable (writes are committed to a write-ahead log that
 * is synced only at checkpoints): for an fsync through the mount, which must also make
 * the file's row and places durable. */
int keystore_sync(keystore *ks);

/* SQLite's own consistency check of the database file: KS_OK or KS_ERR_CORRUPT. */
int keystore_check(keystore *ks);
/* The full check (PRAGMA integrity_check, which also checks indexes and constraints):
 * KS_OK, or KS_ERR_CORRUPT with SQLite's first complaint in msg. */
int keystore_integrity_check(keystore *ks, char *msg, size_t cap);

/* Recreating keystore.db (`fsck --rebuild-keystore`).  keystore_rebuild_begin builds a
 * new keystore without file rows in a temporary file, from the volume's key record: the
 * masterkey file, or if that is missing or damaged, the existing database's volume row
 * (KS_ERR_MISSING / KS_ERR_CORRUPT when neither is usable).  The handle works like an
 * open keystore (unlock, file rows; one thread).  keystore_rebuild_commit replaces
 * keystore.db with it, the old database (if any) kept as keystore.db.old, and frees the
 * handle; keystore_rebuild_abort (or keystore_close) drops it. */
int keystore_rebuild_begin(keystore **out, const char *cipherdir);
int keystore_rebuild_commit(keystore *ks);
void keystore_rebuild_abort(keystore *ks);

/* ---- places: where each stored file is (keystore/places.c) ----
 *
 * Every stored file's path in the cipher dir (its stored names, '/'-separated, relative
 * to the cipher dir: "Photos/2024/a.jpg"), bound to its file id by a MAC under a key
 * derived from the master key.  A stored file found at a path its id was never given
 * (a stored file swapped with another of the volume, or moved outside the mount) is
 * refused by the mount and reported by fsck.  A file has one place per hard link.
 *
 * Writers add the new place before the file gets there and drop the old one after it
 * left, so a crash leaves an extra place (harmless; fsck drops it), never a file without
 * its place.  Keystores made before places existed, and rebuilt ones, are "learning":
 * a file without any place is bound where it is first found, until
 * keystore_places_set_complete (fsck does it once it has bound every file).
 *
 * The key first (keystore_places_key); it also creates the tables in an older keystore.
 * Writes need it and a writable keystore (KS_ERR_IO otherwise). */
int keystore_places_key(keystore *ks, const uint8_t master[KS_MASTER_KEY_BYTES]);
/* 1 when every file has its place, 0 while learning, or a negative status. */
int keystore_places_complete(keystore *ks);
int keystore_places_set_complete(keystore *ks);
/* Number of place rows (0 in a keystore without the tables), or a negative status. */
long long keystore_places_count(keystore *ks);
int keystore_place_add(keystore *ks, const uint8_t id[KS_FILE_ID_BYTES], const char *path);
/* A new file: its row and its first place, in one transaction, before the file is made
 * (a crash in between leaves a row and a place without a file, which fsck drops). */
int keystore_file_create(keystore *ks, const ks_file_row *row, const char *path);
/* A name removed: the places at path (and under path/), and the row of file_id if it was
 * the file's last name (file_id not NULL), in one transaction. */
int keystore_file_forget(keystore *ks, const uint8_t *file_id, const char *path);
/* Drops the places at path and everything under path/ (an unlink, an rmdir). */
int keystore_place_drop(keystore *ks, const char *path);
/* Drops one row (fsck: a place that no longer holds its file). */
int keystore_place_drop_one(keystore *ks, const uint8_t id[KS_FILE_ID_BYTES], const char *path);
/* 1 if path is one of id's places (its MAC verifies), 0 if not, or a negative status. */
int keystore_place_has(keystore *ks, const uint8_t id[KS_FILE_ID_BYTES], const char *path);
/* The places of id whose MAC verifies, as a malloc'ed array of n malloc'ed paths (free
 * with keystore_places_free); *forged (if given) counts rows of id that do not verify. */
int keystore_places_of(keystore *ks, const uint8_t id[KS_FILE_ID_BYTES], char ***paths, size_t *n,
                       size_t *forged);
void keystore_places_free(char **paths, size_t n);
/* Every row, in path order, until fn returns nonzero; `authentic`: its MAC verifies.  fn
 * must not call back into the keystore. */
int keystore_place_foreach(keystore *ks,
                           int (*fn)(const char *path, const uint8_t id[KS_FILE_ID_BYTES],
                                     int authentic, void *arg),
                           void *arg);
/* A rename of `from` to `to` (a file, or a directory and everything under it): begin
 * gives the tree at `from` its places under `to` as well (with `exchange`, also the
 * reverse), before the rename; end, after it, makes `to` hold exactly what `from` held
 * (and the reverse) if `done`, or takes back what begin added if the rename failed. */
typedef struct ks_place_move ks_place_move;
int keystore_place_move_begin(keystore *ks, const char *from, const char *to, int exchange,
                              ks_place_move **out);
int keystore_place_move_end(keystore *ks, ks_place_move *m, int done);

#endif

/* The per-volume keystore in CIPHERDIR/.pixcrypt/keystore.db.  The API is in keystore.h.
 *
 * The database is built in a temporary file and moved into place only when complete, so an
 * interrupted `init` leaves either no keystore or a whole one.  One handle serves all threads
 * of the daemon: a mutex guards the connection and its statements, which are prepared once.
 * The slow part of unlock and rewrap (Argon2id) runs outside that mutex. */
#include "keystore/keystore.h"
#include "keystore/keystore_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <pthread.h>
#include <sodium.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "keystore/masterkey.h"

#define KDF_ALG_NAME KS_KDF_ALG_NAME
#define MASTER_AD_PREFIX "pixcrypt-master-v1"
#define MASTER_AD_PREFIX_BYTES (sizeof MASTER_AD_PREFIX - 1)
#define VOLUME_ID_BYTES KS_VOLUME_ID_BYTES
#define KEK_BYTES crypto_aead_xchacha20poly1305_ietf_KEYBYTES
#define SEAL_NONCE_BYTES crypto_aead_xchacha20poly1305_ietf_NPUBBYTES
#define SEALED_MASTER_BYTES KS_SEALED_MASTER_BYTES
#define BUSY_TIMEOUT_MS 5000
#define TMP_DB_TEMPLATE KS_DB_NAME ".tmp-XXXXXX"

#define STRINGIFY_(x) #x
#define STRINGIFY(x) STRINGIFY_(x)

_Static_assert(sizeof(((ks_volume_info *)0)->volume_id) == VOLUME_ID_BYTES, "volume id size");
_Static_assert(KEK_BYTES == KS_MASTER_KEY_BYTES, "the master key is an AEAD key");

/* ---- schema ------------------------------------------------------------------------------ */

/* Proof that a master key is this volume's, for unlocking with a recovery code (the key
 * itself, no passphrase): BLAKE2b-256 keyed with the master key over KEY_CHECK_CONTEXT ||
 * volume_id.  Added within schema version 1: created by create and by the first unlock of a
 * volume made before it; readers that do not know it ignore it. */
#define KEY_CHECK_TABLE_SQL                                                                        \
    "CREATE TABLE IF NOT EXISTS key_check ("                                                       \
    "  volume_id BLOB NOT NULL PRIMARY KEY CHECK (length(volume_id) = 16),"                        \
    "  mac BLOB NOT NULL CHECK (length(mac) = 32)"                                                 \
    ") WITHOUT ROWID;"
#define KEY_CHECK_CONTEXT "pixcrypt-key-check-v1"
#define KEY_CHECK_BYTES 32

/* Schema version 1, also recorded as PRAGMA user_version = KS_SCHEMA_VERSION.  Integers are
 * SQLite's signed 64-bit values; unsigned sizes and counters are stored bit for bit. */
static const char schema_sql[] =
    /* Exactly one row: everything needed to unlock the volume. */
    "CREATE TABLE volume ("
    "  format_version INTEGER NOT NULL," /* KS_FORMAT_VERSION; newer values are refused */
    "  volume_id BLOB NOT NULL CHECK (length(volume_id) = 16),"
    "  kdf_alg TEXT NOT NULL," /* 'argon2id13', libsodium crypto_pwhash */
    "  kdf_opslimit INTEGER NOT NULL,"
    "  kdf_memlimit INTEGER NOT NULL," /* bytes */
    "  kdf_salt BLOB NOT NULL,"        /* crypto_pwhash_SALTBYTES */
    /* nonce (24) || XChaCha20-Poly1305 ciphertext and tag of the 32-byte master key, under
     * the Argon2id output, with AD = 'pixcrypt-master-v1' || volume_id */
    "  master_sealed BLOB NOT NULL,"
    "  created INTEGER NOT NULL," /* unix time */
    /* cipher profile of new images: 0 the default, 1 the chaos research profile */
    "  profile INTEGER NOT NULL DEFAULT 0,"
    /* file names: 0 plaintext, 1 encrypted; keystores made before it have no such column,
     * and plaintext names */
    "  names INTEGER NOT NULL DEFAULT 0"
    ");"
    /* One row per stored file.  The file headers are authoritative: fsck can rebuild this. */
    "CREATE TABLE files ("
    "  file_id BLOB NOT NULL PRIMARY KEY CHECK (length(file_id) = 16),"
    "  kind INTEGER NOT NULL,"       /* PXC_KIND_* */
    "  seed_sealed BLOB NOT NULL,"   /* as in the file header */
    "  nnvec_sealed BLOB,"           /* NULL while the file has no neural key vector */
    "  plain_size INTEGER NOT NULL," /* bytes */
    "  version INTEGER NOT NULL,"    /* the file header's version, 1 for a new file */
    "  updated INTEGER NOT NULL"     /* unix time of the last put */
    ") WITHOUT ROWID;" KEY_CHECK_TABLE_SQL KS_PLACES_TABLES_SQL
    "PRAGMA user_version = " STRINGIFY(KS_SCHEMA_VERSION) ";";

/* Preparing these at open also checks that the tables and columns are there. */
static const char *const stmt_sql[ST_COUNT_] = {
    [ST_VOLUME_GET] = "SELECT format_version, volume_id, kdf_alg, kdf_opslimit, kdf_memlimit,"
                      " kdf_salt, master_sealed, created, profile FROM volume LIMIT 2",
    [ST_VOLUME_RESEAL] = "UPDATE volume SET kdf_alg = ?1, kdf_opslimit = ?2, kdf_memlimit = ?3,"
                         " kdf_salt = ?4, master_sealed = ?5 WHERE volume_id = ?6",
    /* One statement: a row is replaced whole or not at all. */
    [ST_FILE_PUT] = "INSERT INTO files (file_id, kind, seed_sealed, nnvec_sealed, plain_size,"
                    " version, updated) VALUES (?1, ?2, ?3, ?4, ?5, ?7, ?6)"
                    " ON CONFLICT (file_id) DO UPDATE SET kind = excluded.kind,"
                    " seed_sealed = excluded.seed_sealed, nnvec_sealed = excluded.nnvec_sealed,"
                    " plain_size = excluded.plain_size, version = excluded.version,"
                    " updated = excluded.updated",
    [ST_FILE_GET] = "SELECT kind, seed_sealed, nnvec_sealed, plain_size, version FROM files"
                    " WHERE file_id = ?1",
    [ST_FILE_DELETE] = "DELETE FROM files WHERE file_id = ?1",
    [ST_FILE_COUNT] = "SELECT count(*) FROM files",
};

static const char insert_volume_sql[] =
    "INSERT INTO volume (format_version, volume_id, kdf_alg, kdf_opslimit, kdf_memlimit,"
    " kdf_salt, master_sealed, created, profile, names)"
    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)";

/* ---- types --------------------------------------------------------------------------------- */

/* The volume row, decoded and checked: the record masterkey.h also keeps in a file. */
typedef ks_volume_record volume_row;

typedef struct ks_paths {
    char dir[PATH_MAX]; /* CIPHERDIR/.pixcrypt */
    char db[PATH_MAX];  /* CIPHERDIR/.pixcrypt/keystore.db */
} ks_paths;

/* ---- small helpers ------------------------------------------------------------------------- */

const char *keystore_strerror(int status)
{
    switch (status) {
    case KS_OK:
        return "success";
    case KS_ERR_IO:
        return "cannot read or write the keystore (.pixcrypt/keystore.db)";
    case KS_ERR_EXISTS:
        return "cipher dir is not empty or already holds a pixcrypt volume";
    case KS_ERR_MISSING:
        return "no pixcrypt volume here (missing .pixcrypt/keystore.db)";
    case KS_ERR_CORRUPT:
        return "keystore is corrupt";
    case KS_ERR_PASSPHRASE:
        return "wrong passphrase";
    case KS_ERR_VERSION:
        return "keystore was written by a newer pixcrypt (unknown format version)";
    case KS_ERR_NOMEM:
        return "out of memory";
    case KS_ERR_NOTFOUND:
        return "no keystore row for this file";
    case KS_ERR_WRONG_KEY:
        return "the recovery code is well formed but is not this volume's key";
    case KS_ERR_NOKEYCHECK:
        return "the keystore has no key check for recovery codes yet (unlock the volume once "
               "with its passphrase)";
    }
    return "unknown keystore error";
}

int ks_status_from_sqlite(int rc)
{
    switch (rc & 0xff) {
    case SQLITE_OK:
    case SQLITE_ROW:
    case SQLITE_DONE:
        return KS_OK;
    case SQLITE_NOMEM:
        return KS_ERR_NOMEM;
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
    case SQLITE_FORMAT:
        return KS_ERR_CORRUPT;
    }
    return KS_ERR_IO;
}

static long long unix_now(void)
{
    return (long long)time(NULL);
}

static int path_join(char *out, size_t cap, const char *dir, const char *name)
{
    int n = snprintf(out, cap, "%s/%s", dir, name);
    return n < 0 || (size_t)n >= cap ? -1 : 0;
}

static int paths_init(ks_paths *p, const char *cipherdir)
{
    if (path_join(p->dir, sizeof p->dir, cipherdir, KS_DIR) != 0 ||
        path_join(p->db, sizeof p->db, p->dir, KS_DB_NAME) != 0)
        return KS_ERR_IO;
    return KS_OK;
}

/* A NULL passphrase is accepted only as the empty one. */
static int passphrase_ok(const char *pass, size_t passlen)
{
    return (pass != NULL || passlen == 0) && passlen <= crypto_pwhash_PASSWD_MAX;
}

static int is_dir(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISDIR(sb.st_mode);
}

/* Best effort: makes a new or renamed entry of the directory durable. */
static void fsync_dir(const char *path)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
}

static void fsync_parent_dir(const char *path)
{
    char copy[PATH_MAX];
    if (snprintf(copy, sizeof copy, "%s", path) < (int)sizeof copy)
        fsync_dir(dirname(copy));
}

/* Removes a database file and the journals SQLite may have left next to it. */
static void remove_db_files(const char *path)
{
    static const char *const suffixes[] = {"", "-journal", "-wal", "-shm"};
    char name[PATH_MAX];
    for (size_t i = 0; i < sizeof suffixes / sizeof *suffixes; i++)
        if (snprintf(name, sizeof name, "%s%s", path, suffixes[i]) < (int)sizeof name)
            (void)unlink(name);
}

/* ---- sealing the master key ---------------------------------------------------------------- */

static int kdf_limits(enum ks_kdf_level level, unsigned long long *opslimit, size_t *memlimit)
{
    /* The argon2id constants, which are also libsodium's crypto_pwhash defaults. */
    switch (level) {
    case KS_KDF_INTERACTIVE:
        *opslimit = crypto_pwhash_argon2id_OPSLIMIT_INTERACTIVE;
        *memlimit = crypto_pwhash_argon2id_MEMLIMIT_INTERACTIVE;
        return 0;
    case KS_KDF_MODERATE:
        *opslimit = crypto_pwhash_argon2id_OPSLIMIT_MODERATE;
        *memlimit = crypto_pwhash_argon2id_MEMLIMIT_MODERATE;
        return 0;
    case KS_KDF_SENSITIVE:
        *opslimit = crypto_pwhash_argon2id_OPSLIMIT_SENSITIVE;
        *memlimit = crypto_pwhash_argon2id_MEMLIMIT_SENSITIVE;
        return 0;
    }
    return -1;
}

/* The key-encryption key: Argon2id(passphrase, salt).  The caller wipes it. */
static int derive_kek(uint8_t kek[KEK_BYTES], const char *pass, size_t passlen, const volume_row *v)
{
    if (crypto_pwhash(kek, KEK_BYTES, pass ? pass : "", passlen, v->salt, v->opslimit, v->memlimit,
                      crypto_pwhash_ALG_ARGON2ID13) != 0)
        return errno == ENOMEM ? KS_ERR_NOMEM : KS_ERR_IO;
    return KS_OK;
}

/* Binds the sealed key to this volume, so that it cannot be moved to another one. */
static void master_ad(uint8_t ad[MASTER_AD_PREFIX_BYTES + VOLUME_ID_BYTES],
                      const uint8_t volume_id[VOLUME_ID_BYTES])
{
    memcpy(ad, MASTER_AD_PREFIX, MASTER_AD_PREFIX_BYTES);
    memcpy(ad + MASTER_AD_PREFIX_BYTES, volume_id, VOLUME_ID_BYTES);
}

static void seal_master(volume_row *v, const uint8_t master[KS_MASTER_KEY_BYTES],
                        const uint8_t kek[KEK_BYTES])
{
    uint8_t ad[MASTER_AD_PREFIX_BYTES + VOLUME_ID_BYTES];
    uint8_t *nonce = v->master_sealed;

    master_ad(ad, v->volume_id);
    randombytes_buf(nonce, SEAL_NONCE_BYTES);
    crypto_aead_xchacha20poly1305_ietf_encrypt(v->master_sealed + SEAL_NONCE_BYTES, NULL, master,
                                               KS_MASTER_KEY_BYTES, ad, sizeof ad, NULL, nonce,
                                               kek);
}

static int unseal_master(uint8_t master[KS_MASTER_KEY_BYTES], const volume_row *v,
                         const uint8_t kek[KEK_BYTES])
{
    uint8_t ad[MASTER_AD_PREFIX_BYTES + VOLUME_ID_BYTES];

    master_ad(ad, v->volume_id);
    if (crypto_aead_xchacha20poly1305_ietf_decrypt(
            master, NULL, NULL, v->master_sealed + SEAL_NONCE_BYTES,
            SEALED_MASTER_BYTES - SEAL_NONCE_BYTES, ad, sizeof ad, v->master_sealed, kek) != 0)
        return KS_ERR_PASSPHRASE;
    return KS_OK;
}

/* Sets the KDF fields of v (fresh salt, limits of the level) and seals master under them. */
static int seal_under_passphrase(volume_row *v, const uint8_t master[KS_MASTER_KEY_BYTES],
                                 const char *pass, size_t passlen, enum ks_kdf_level level)
{
    uint8_t kek[KEK_BYTES];
    int st;

    if (kdf_limits(level, &v->opslimit, &v->memlimit) != 0)
        return KS_ERR_IO;
    randombytes_buf(v->salt, sizeof v->salt);
    st = derive_kek(kek, pass, passlen, v);
    if (st == KS_OK)
        seal_master(v, master, kek);
    sodium_memzero(kek, sizeof kek);
    return st;
}

/* ---- reading columns ----------------------------------------------------------------------- */

static int column_int64(sqlite3_stmt *stmt, int col, long long *out)
{
    if (sqlite3_column_type(stmt, col) != SQLITE_INTEGER)
        return -1;
    *out = sqlite3_column_int64(stmt, col);
    return 0;
}

/* Copies a BLOB column of at most cap bytes. */
static int column_blob_upto(sqlite3_stmt *stmt, int col, uint8_t *out, size_t cap, size_t *len)
{
    const void *p;
    int n;

    if (sqlite3_column_type(stmt, col) != SQLITE_BLOB)
        return -1;
    p = sqlite3_column_blob(stmt, col);
    n = sqlite3_column_bytes(stmt, col);
    if (n < 0 || (size_t)n > cap)
        return -1;
    if (n > 0)
        memcpy(out, p, (size_t)n);
    *len = (size_t)n;
    return 0;
}

static int column_blob_exact(sqlite3_stmt *stmt, int col, uint8_t *out, size_t size)
{
    size_t len;
    return column_blob_upto(stmt, col, out, size, &len) == 0 && len == size ? 0 : -1;
}

static int column_text_is(sqlite3_stmt *stmt, int col, const char *expected)
{
    const unsigned char *text;
    if (sqlite3_column_type(stmt, col) != SQLITE_TEXT)
        return 0;
    text = sqlite3_column_text(stmt, col);
    return text != NULL && strcmp((const char *)text, expected) == 0;
}

/* ---- the volume row ------------------------------------------------------------------------ */

/* Decodes the current row of ST_VOLUME_GET, refusing what this version cannot use. */
static int parse_volume_row(sqlite3_stmt *stmt, volume_row *v)
{
    long long opslimit, memlimit;

    if (column_int64(stmt, 0, &v->format_version) != 0)
        return KS_ERR_CORRUPT;
    if (v->format_version > KS_FORMAT_VERSION)
        return KS_ERR_VERSION;
    if (v->format_version < 1)
        return KS_ERR_CORRUPT;
    if (column_blob_exact(stmt, 1, v->volume_id, sizeof v->volume_id) != 0 ||
        !column_text_is(stmt, 2, KDF_ALG_NAME) || column_int64(stmt, 3, &opslimit) != 0 ||
        column_int64(stmt, 4, &memlimit) != 0 || !ks_kdf_limits_possible(opslimit, memlimit) ||
        column_blob_exact(stmt, 5, v->salt, sizeof v->salt) != 0 ||
        column_blob_exact(stmt, 6, v->master_sealed, sizeof v->master_sealed) != 0 ||
        column_int64(stmt, 7, &v->created) != 0 || column_int64(stmt, 8, &v->profile) != 0 ||
        v->profile < 0 || v->profile > KS_PROFILE_MAX)
        return KS_ERR_CORRUPT;
    v->opslimit = (unsigned long long)opslimit;
    v->memlimit = (size_t)memlimit;
    return KS_OK;
}

/* The names mode, from a column that keystores made before it lack (plaintext names). */
static int read_names_mode(sqlite3 *db, volume_row *v)
{
    sqlite3_stmt *stmt = NULL;
    int rc = sqlite3_prepare_v2(db, "SELECT names FROM volume", -1, &stmt, NULL);
    int st = KS_OK;
    v->names = KS_NAMES_PLAIN;
    if ((rc & 0xff) == SQLITE_ERROR) /* no such column */
        return KS_OK;
    if (rc != SQLITE_OK)
        return ks_status_from_sqlite(rc);
    rc = sqlite3_step(stmt);
    if (rc == SQLITE_ROW) {
        if (column_int64(stmt, 0, &v->names) != 0 || v->names < 0 || v->names > KS_NAMES_MAX)
            st = KS_ERR_CORRUPT;
    } else if (rc != SQLITE_DONE) {
        st = ks_status_from_sqlite(rc);
    }
    sqlite3_finalize(stmt);
    return st;
}

/* Reads and checks the one volume row.  Caller holds the lock. */
static int read_volume(keystore *ks, volume_row *v)
{
    sqlite3_stmt *stmt = ks->stmt[ST_VOLUME_GET];
    int rc = sqlite3_step(stmt);
    int st;

    if (rc == SQLITE_ROW) {
        st = parse_volume_row(stmt, v);
        rc = st == KS_OK ? sqlite3_step(stmt) : SQLITE_DONE;
        if (rc == SQLITE_ROW) /* a second row: which one would be the volume? */
            st = KS_ERR_CORRUPT;
        else if (rc != SQLITE_DONE)
            st = ks_status_from_sqlite(rc);
    } else {
        st = rc == SQLITE_DONE ? KS_ERR_CORRUPT : ks_status_from_sqlite(rc);
    }
    sqlite3_reset(stmt);
    if (st == KS_OK)
        st = read_names_mode(ks->db, v);
    return st;
}

static int bind_volume_kdf(sqlite3_stmt *stmt, int first, const volume_row *v)
{
    if (sqlite3_bind_text(stmt, first, KDF_ALG_NAME, -1, SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_bind_int64(stmt, first + 1, (sqlite3_int64)v->opslimit) != SQLITE_OK ||
        sqlite3_bind_int64(stmt, first + 2, (sqlite3_int64)v->memlimit) != SQLITE_OK ||
        sqlite3_bind_blob(stmt, first + 3, v->salt, sizeof v->salt, SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_bind_blob(stmt, first + 4, v->master_sealed, sizeof v->master_sealed,
                          SQLITE_STATIC) != SQLITE_OK)
        return KS_ERR_IO;
    return KS_OK;
}

int ks_step_done(sqlite3_stmt *stmt)
{
    int rc = sqlite3_step(stmt);
    int st = rc == SQLITE_DONE ? KS_OK : ks_status_from_sqlite(rc);
    if (st == KS_OK && rc != SQLITE_DONE)
        st = KS_ERR_IO;
    sqlite3_reset(stmt);
    sqlite3_clear_bindings(stmt);
    return st;
}

/* ---- create -------------------------------------------------------------------------------- */

static int make_dir(const char *path, int *created)
{
    *created = 0;
    if (mkdir(path, 0700) == 0) {
        *created = 1;
        return KS_OK;
    }
    return errno == EEXIST && is_dir(path) ? KS_OK : KS_ERR_IO;
}

/* Empty means nothing but a .pixcrypt dir without a keystore (left by an interrupted init). */
static int check_cipherdir_empty(const char *cipherdir, const ks_paths *p)
{
    struct stat sb;
    struct dirent *e;
    DIR *d;
    int st = KS_OK;

    if (lstat(p->db, &sb) == 0)
        return KS_ERR_EXISTS;
    d = opendir(cipherdir);
    if (d == NULL)
        return KS_ERR_IO;
    errno = 0;
    while (st == KS_OK && (e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        if (strcmp(e->d_name, KS_DIR) != 0 || !is_dir(p->dir))
            st = KS_ERR_EXISTS;
    }
    if (st == KS_OK && errno != 0)
        st = KS_ERR_IO;
    closedir(d);
    return st;
}

/* Removes what an interrupted init left in .pixcrypt: temporary databases and journals.  A
 * journal without its database must go, or SQLite would replay it into the new one. */
static void remove_orphans(const char *dir)
{
    static const size_t prefix_len = sizeof KS_DB_NAME - 1;
    struct dirent *e;
    DIR *d = opendir(dir);

    if (d == NULL)
        return;
    while ((e = readdir(d)) != NULL)
        if (strncmp(e->d_name, KS_DB_NAME, prefix_len) == 0 && e->d_name[prefix_len] != '\0')
            (void)unlinkat(dirfd(d), e->d_name, 0);
    closedir(d);
}

/* Makes CIPHERDIR (if missing) and CIPHERDIR/.pixcrypt, refusing a used cipher dir. */
static int prepare_cipherdir(const char *cipherdir, const ks_paths *p)
{
    int created_root = 0, created_meta = 0;
    int st = make_dir(cipherdir, &created_root);

    if (st == KS_OK && !created_root)
        st = check_cipherdir_empty(cipherdir, p);
    if (st == KS_OK)
        st = make_dir(p->dir, &created_meta);
    if (st != KS_OK)
        return st;
    if (created_root)
        fsync_parent_dir(cipherdir);
    if (created_meta)
        fsync_dir(cipherdir);
    remove_orphans(p->dir);
    return KS_OK;
}

static int insert_volume(sqlite3 *db, const volume_row *v)
{
    sqlite3_stmt *stmt = NULL;
    int rc = sqlite3_prepare_v2(db, insert_volume_sql, -1, &stmt, NULL);
    int st = ks_status_from_sqlite(rc);

    if (st == KS_OK && (sqlite3_bind_int64(stmt, 1, v->format_version) != SQLITE_OK ||
                        sqlite3_bind_blob(stmt, 2, v->volume_id, sizeof v->volume_id,
                                          SQLITE_STATIC) != SQLITE_OK ||
                        bind_volume_kdf(stmt, 3, v) != KS_OK ||
                        sqlite3_bind_int64(stmt, 8, v->created) != SQLITE_OK ||
                        sqlite3_bind_int64(stmt, 9, v->profile) != SQLITE_OK ||
                        sqlite3_bind_int64(stmt, 10, v->names) != SQLITE_OK))
        st = KS_ERR_IO;
    if (st == KS_OK)
        st = ks_step_done(stmt);
    sqlite3_finalize(stmt);
    return st;
}

int ks_exec(sqlite3 *db, const char *sql)
{
    return ks_status_from_sqlite(sqlite3_exec(db, sql, NULL, NULL, NULL));
}

static void key_check_compute(uint8_t mac[KEY_CHECK_BYTES],
                              const uint8_t master[KS_MASTER_KEY_BYTES],
                              const uint8_t volume_id[VOLUME_ID_BYTES]);
static int key_check_store(sqlite3 *db, const uint8_t volume_id[VOLUME_ID_BYTES],
                           const uint8_t mac[KEY_CHECK_BYTES]);

/* Writes schema and volume row into the empty file at path, in one synced transaction.
 * A new volume (places_complete) has every file's place from the start; a rebuilt
 * keystore learns them (keystore_places_set_complete once fsck has bound every file). */
static int build_database(const char *path, const volume_row *v, const uint8_t *key_check,
                          int places_complete)
{
    sqlite3 *db = NULL;
    int rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);
    int st = ks_status_from_sqlite(rc);

    if (st == KS_OK)
        st = ks_exec(db, "PRAGMA synchronous = FULL; BEGIN IMMEDIATE;");
    if (st == KS_OK)
        st = ks_exec(db, schema_sql);
    if (st == KS_OK)
        st = insert_volume(db, v);
    if (st == KS_OK && key_check != NULL)
        st = key_check_store(db, v->volume_id, key_check);
    if (st == KS_OK && places_complete)
        st = ks_exec(db, "INSERT INTO places_state (complete) VALUES (1);");
    if (st == KS_OK)
        st = ks_exec(db, "COMMIT;");
    /* Persistent: every later connection uses the write-ahead log. */
    if (st == KS_OK)
        st = ks_exec(db, "PRAGMA journal_mode = WAL;");
    if (sqlite3_close(db) != SQLITE_OK && st == KS_OK)
        st = KS_ERR_IO;
    return st;
}

static int fsync_file(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    int rc;

    if (fd < 0)
        return KS_ERR_IO;
    rc = fsync(fd);
    close(fd);
    return rc == 0 ? KS_OK : KS_ERR_IO;
}

/* Moves tmp to dst unless dst exists (a concurrent init won). */
static int install_no_replace(const char *tmp, const char *dst)
{
    struct stat sb;

    if (renameat2(AT_FDCWD, tmp, AT_FDCWD, dst, RENAME_NOREPLACE) == 0)
        return KS_OK;
    if (errno == EEXIST)
        return KS_ERR_EXISTS;
    if (errno != EINVAL && errno != ENOSYS)
        return KS_ERR_IO;
    /* The filesystem has no RENAME_NOREPLACE: a hard link does not replace either. */
    if (link(tmp, dst) == 0) {
        (void)unlink(tmp);
        return KS_OK;
    }
    if (errno == EEXIST)
        return KS_ERR_EXISTS;
    /* Nor hard links (vfat, some network filesystems): check, then rename. */
    if (lstat(dst, &sb) == 0)
        return KS_ERR_EXISTS;
    return rename(tmp, dst) == 0 ? KS_OK : KS_ERR_IO;
}

/* Builds the keystore in a temporary file, syncs it and moves it into place. */
static int write_keystore_file(const ks_paths *p, const volume_row *v, const uint8_t *key_check)
{
    char tmp[PATH_MAX];
    int fd, st;

    if (path_join(tmp, sizeof tmp, p->dir, TMP_DB_TEMPLATE) != 0)
        return KS_ERR_IO;
    fd = mkstemp(tmp); /* mode 0600 */
    if (fd < 0)
        return KS_ERR_IO;
    close(fd); /* SQLite's locks must not share a descriptor we close */
    st = build_database(tmp, v, key_check, 1);
    if (st == KS_OK)
        st = fsync_file(tmp);
    if (st == KS_OK)
        st = install_no_replace(tmp, p->db);
    if (st != KS_OK) {
        remove_db_files(tmp);
        return st;
    }
    fsync_dir(p->dir);
    return KS_OK;
}

int keystore_create(const char *cipherdir, const char *pass, size_t passlen,
                    enum ks_kdf_level level, int profile, uint8_t master_out[KS_MASTER_KEY_BYTES])
{
    return keystore_create_names(cipherdir, pass, passlen, level, profile, KS_NAMES_PLAIN,
                                 master_out);
}

int keystore_create_names(const char *cipherdir, const char *pass, size_t passlen,
                          enum ks_kdf_level level, int profile, int names,
                          uint8_t master_out[KS_MASTER_KEY_BYTES])
{
    uint8_t master[KS_MASTER_KEY_BYTES], check[KEY_CHECK_BYTES];
    unsigned long long opslimit;
    size_t memlimit;
    volume_row v;
    ks_paths p;
    int st;

    if (cipherdir == NULL || !passphrase_ok(pass, passlen) ||
        kdf_limits(level, &opslimit, &memlimit) != 0 || profile < 0 || profile > KS_PROFILE_MAX ||
        names < 0 || names > KS_NAMES_MAX || sodium_init() < 0)
        return KS_ERR_IO;
    st = paths_init(&p, cipherdir);
    if (st == KS_OK)
        st = prepare_cipherdir(cipherdir, &p);
    if (st != KS_OK)
        return st;

    memset(&v, 0, sizeof v);
    v.format_version = KS_FORMAT_VERSION;
    v.created = unix_now();
    v.profile = profile;
    v.names = names;
    randombytes_buf(v.volume_id, sizeof v.volume_id);
    randombytes_buf(master, sizeof master);
    st = seal_under_passphrase(&v, master, pass, passlen, level);
    /* The masterkey file first: a keystore.db in place means a volume, and a volume
     * always has its second copy of the key. */
    if (st == KS_OK)
        st = masterkey_write(p.dir, &v);
    if (st == KS_OK) {
        key_check_compute(check, master, v.volume_id);
        st = write_keystore_file(&p, &v, check);
    }
    if (st == KS_OK && master_out != NULL)
        memcpy(master_out, master, sizeof master);
    sodium_memzero(master, sizeof master);
    return st;
}

/* ---- open / close -------------------------------------------------------------------------- */

/* Finds the database file and whether this process may write it and its directory (WAL mode
 * creates -wal and -shm files next to it). */
static int probe_db_file(const ks_paths *p, int *readonly)
{
    struct stat sb;

    if (stat(p->db, &sb) != 0)
        return errno == ENOENT || errno == ENOTDIR ? KS_ERR_MISSING : KS_ERR_IO;
    if (!S_ISREG(sb.st_mode))
        return KS_ERR_CORRUPT;
    *readonly = faccessat(AT_FDCWD, p->db, W_OK, AT_EACCESS) != 0 ||
                faccessat(AT_FDCWD, p->dir, W_OK, AT_EACCESS) != 0;
    return KS_OK;
}

/* file:PATH?mode=ro&immutable=1, percent-encoding everything but unreserved characters. */
static char *immutable_uri(const char *path)
{
    static const char hex[] = "0123456789ABCDEF";
    static const char prefix[] = "file:", suffix[] = "?mode=ro&immutable=1";
    size_t n = strlen(prefix);
    char *uri = malloc(sizeof prefix + 3 * strlen(path) + sizeof suffix);

    if (uri == NULL)
        return NULL;
    memcpy(uri, prefix, n);
    for (const unsigned char *c = (const unsigned char *)path; *c; c++) {
        if ((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
            strchr("/-._~", *c) != NULL) {
            uri[n++] = (char)*c;
        } else {
            uri[n++] = '%';
            uri[n++] = hex[*c >> 4];
            uri[n++] = hex[*c & 15];
        }
    }
    memcpy(uri + n, suffix, sizeof suffix);
    return uri;
}

static int connect_db(sqlite3 **db, const char *name, int flags)
{
    int rc = sqlite3_open_v2(name, db, flags | SQLITE_OPEN_NOMUTEX, NULL);

    if (rc == SQLITE_OK) {
        sqlite3_busy_timeout(*db, BUSY_TIMEOUT_MS);
        /* A keystore file may be hostile: no writes to the schema, no functions in it. */
        sqlite3_db_config(*db, SQLITE_DBCONFIG_DEFENSIVE, 1, (int *)NULL);
#ifdef SQLITE_DBCONFIG_TRUSTED_SCHEMA
        sqlite3_db_config(*db, SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0, (int *)NULL);
#endif
    }
    return rc;
}

static int query_user_version(sqlite3 *db, long long *version)
{
    sqlite3_stmt *stmt = NULL;
    int rc = sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &stmt, NULL);

    if (rc == SQLITE_OK) {
        rc = sqlite3_step(stmt);
        if (rc == SQLITE_ROW) {
            *version = sqlite3_column_int64(stmt, 0);
            rc = SQLITE_OK;
        } else if (rc == SQLITE_DONE) {
            rc = SQLITE_CORRUPT;
        }
    }
    sqlite3_finalize(stmt);
    return rc;
}

/* Connects read-write, or read-only when the storage is.  A write-ahead-log database on
 * read-only storage cannot be read without its -shm file unless opened as immutable (which
 * then ignores commits left in a -wal file that has no -shm beside it). */
static int connect_keystore(keystore *ks, const char *path)
{
    long long version;
    char *uri;
    int rc;

    rc = connect_db(&ks->db, path, ks->readonly ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE);
    if (rc != SQLITE_OK || !ks->readonly)
        return ks_status_from_sqlite(rc);
    rc = query_user_version(ks->db, &version) & 0xff;
    if (rc != SQLITE_READONLY && rc != SQLITE_CANTOPEN)
        return KS_OK; /* readable, or an error that the checks will report */
    sqlite3_close(ks->db);
    ks->db = NULL;
    uri = immutable_uri(path);
    if (uri == NULL)
        return KS_ERR_NOMEM;
    rc = connect_db(&ks->db, uri, SQLITE_OPEN_READONLY | SQLITE_OPEN_URI);
    free(uri);
    return ks_status_from_sqlite(rc);
}

static int check_schema_version(sqlite3 *db)
{
    long long version = 0;
    int rc = query_user_version(db, &version);

    if (rc != SQLITE_OK)
        return ks_status_from_sqlite(rc);
    if (version > KS_SCHEMA_VERSION)
        return KS_ERR_VERSION;
    return version == KS_SCHEMA_VERSION ? KS_OK : KS_ERR_CORRUPT;
}

static int prepare_statements(keystore *ks)
{
    for (int i = 0; i < ST_COUNT_; i++) {
        int rc = sqlite3_prepare_v3(ks->db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT,
                                    &ks->stmt[i], NULL);
        if ((rc & 0xff) == SQLITE_ERROR) /* no such table or column: not our schema */
            return KS_ERR_CORRUPT;
        if (rc != SQLITE_OK)
            return ks_status_from_sqlite(rc);
    }
    return KS_OK;
}

static int validate_keystore(keystore *ks)
{
    volume_row v;
    int st = check_schema_version(ks->db);

    if (st == KS_OK)
        st = prepare_statements(ks);
    if (st == KS_OK)
        st = read_volume(ks, &v);
    return st;
}

/* Fast commits: a write-ahead log, synced at checkpoints.  A crash may lose the last rows,
 * which fsck rebuilds from the file headers; the master key is written with FULL. */
static int tune_for_writes(keystore *ks)
{
    return ks_exec(ks->db, "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;");
}

/* Opens the database at dbpath (the keystore, or a rebuild's new one) into a new handle. */
static int open_handle(keystore **out, const ks_paths *p, const char *dbpath, int readonly)
{
    keystore *ks = calloc(1, sizeof *ks);
    int st;

    *out = NULL;
    if (ks == NULL)
        return KS_ERR_NOMEM;
    if (pthread_mutex_init(&ks->lock, NULL) != 0) {
        free(ks);
        return KS_ERR_NOMEM;
    }
    ks->readonly = readonly;
    memcpy(ks->dir, p->dir, sizeof ks->dir);
    st = connect_keystore(ks, dbpath);
    if (st == KS_OK)
        st = validate_keystore(ks);
    if (st == KS_OK && !ks->readonly)
        st = tune_for_writes(ks);
    if (st != KS_OK) {
        keystore_close(ks);
        return st;
    }
    *out = ks;
    return KS_OK;
}

int keystore_open(keystore **out, const char *cipherdir)
{
    ks_paths p;
    int readonly = 0;
    int st;

    if (out == NULL)
        return KS_ERR_IO;
    *out = NULL;
    if (cipherdir == NULL || sodium_init() < 0)
        return KS_ERR_IO;
    st = paths_init(&p, cipherdir);
    if (st == KS_OK)
        st = probe_db_file(&p, &readonly);
    if (st != KS_OK)
        return st;
    return open_handle(out, &p, p.db, readonly);
}

/* Closes the connection (the last one checkpoints the write-ahead log into the database). */
static int close_db(keystore *ks)
{
    int rc;
    for (int i = 0; i < ST_COUNT_; i++) {
        sqlite3_finalize(ks->stmt[i]);
        ks->stmt[i] = NULL;
    }
    for (size_t i = 0; i < sizeof ks->place_stmt / sizeof ks->place_stmt[0]; i++) {
        sqlite3_finalize(ks->place_stmt[i]);
        ks->place_stmt[i] = NULL;
    }
    rc = sqlite3_close(ks->db);
    ks->db = NULL;
    return rc == SQLITE_OK ? KS_OK : KS_ERR_IO;
}

static void free_handle(keystore *ks)
{
    pthread_mutex_destroy(&ks->lock);
    free(ks->rebuild_tmp);
    free(ks);
}

void keystore_close(keystore *ks)
{
    if (ks == NULL)
        return;
    if (ks->rebuild_tmp != NULL) {
        keystore_rebuild_abort(ks);
        return;
    }
    (void)close_db(ks);
    free_handle(ks);
}

/* ---- master key ---------------------------------------------------------------------------- */

static int read_volume_locked(keystore *ks, volume_row *v)
{
    int st;
    pthread_mutex_lock(&ks->lock);
    st = read_volume(ks, v);
    pthread_mutex_unlock(&ks->lock);
    return st;
}

static int store_sealing(keystore *ks, const volume_row *v);

/* After an unlock with the database's record, which proves it good: the masterkey file
 * gets the same values if it has none (a volume from before the file existed) or others
 * (a passphrase change interrupted between its two writes).  Best effort. */
static void sync_masterkey_file(keystore *ks, const volume_row *v)
{
    volume_row f;
    if (ks->readonly || (masterkey_read(ks->dir, &f) == KS_OK && masterkey_same(&f, v)))
        return;
    (void)masterkey_write(ks->dir, v);
}

/* The database's record does not unseal with this passphrase.  If the masterkey file holds
 * another record of this volume that does (the volume row was damaged, or a passphrase
 * change interrupted), that one is used, and written back into the database. */
static int unlock_from_file(keystore *ks, const volume_row *v, const char *pass, size_t passlen,
                            uint8_t master[KS_MASTER_KEY_BYTES])
{
    uint8_t kek[KEK_BYTES];
    volume_row f;
    int st;

    if (masterkey_read(ks->dir, &f) != KS_OK || masterkey_same(&f, v) ||
        memcmp(f.volume_id, v->volume_id, sizeof f.volume_id) != 0)
        return KS_ERR_PASSPHRASE;
    st = derive_kek(kek, pass, passlen, &f);
    if (st == KS_OK)
        st = unseal_master(master, &f, kek);
    sodium_memzero(kek, sizeof kek);
    if (st == KS_OK && !ks->readonly && ks->rebuild_tmp == NULL) {
        pthread_mutex_lock(&ks->lock);
        (void)store_sealing(ks, &f);
        pthread_mutex_unlock(&ks->lock);
    }
    return st;
}

static void sync_key_check(keystore *ks, const uint8_t master[KS_MASTER_KEY_BYTES],
                           const uint8_t volume_id[VOLUME_ID_BYTES]);

int keystore_unlock(keystore *ks, const char *pass, size_t passlen,
                    uint8_t master_out[KS_MASTER_KEY_BYTES])
{
    uint8_t kek[KEK_BYTES], master[KS_MASTER_KEY_BYTES];
    volume_row v;
    int st;

    if (ks == NULL || master_out == NULL || !passphrase_ok(pass, passlen))
        return KS_ERR_IO;
    st = read_volume_locked(ks, &v); /* fresh: another process may have rewrapped */
    if (st == KS_OK)
        st = derive_kek(kek, pass, passlen, &v);
    if (st == KS_OK)
        st = unseal_master(master, &v, kek);
    if (st == KS_OK)
        sync_masterkey_file(ks, &v);
    else if (st == KS_ERR_PASSPHRASE)
        st = unlock_from_file(ks, &v, pass, passlen, master);
    if (st == KS_OK) {
        sync_key_check(ks, master, v.volume_id);
        memcpy(master_out, master, sizeof master);
    }
    sodium_memzero(kek, sizeof kek);
    sodium_memzero(master, sizeof master);
    return st;
}

/* Replaces the KDF fields and the sealed key in one durable transaction. */
static int store_sealing(keystore *ks, const volume_row *v)
{
    sqlite3_stmt *stmt = ks->stmt[ST_VOLUME_RESEAL];
    int st = ks_exec(ks->db, "PRAGMA synchronous = FULL; BEGIN IMMEDIATE;");

    if (st != KS_OK) {
        (void)ks_exec(ks->db, "PRAGMA synchronous = NORMAL;");
        return st;
    }
    st = bind_volume_kdf(stmt, 1, v);
    if (st == KS_OK &&
        sqlite3_bind_blob(stmt, 6, v->volume_id, sizeof v->volume_id, SQLITE_STATIC) != SQLITE_OK)
        st = KS_ERR_IO;
    if (st == KS_OK)
        st = ks_step_done(stmt);
    else
        sqlite3_clear_bindings(stmt);
    if (st == KS_OK && sqlite3_changes(ks->db) != 1)
        st = KS_ERR_CORRUPT; /* the volume row is gone or was duplicated */
    if (st == KS_OK)
        st = ks_exec(ks->db, "COMMIT;");
    if (st != KS_OK)
        (void)ks_exec(ks->db, "ROLLBACK;");
    (void)ks_exec(ks->db, "PRAGMA synchronous = NORMAL;");
    return st;
}

int keystore_rewrap(keystore *ks, const uint8_t master[KS_MASTER_KEY_BYTES], const char *newpass,
                    size_t newpasslen, enum ks_kdf_level level)
{
    unsigned long long opslimit;
    size_t memlimit;
    volume_row v;
    int st;

    if (ks == NULL || master == NULL || !passphrase_ok(newpass, newpasslen) ||
        kdf_limits(level, &opslimit, &memlimit) != 0 || ks->readonly)
        return KS_ERR_IO;
    st = read_volume_locked(ks, &v);
    if (st == KS_OK)
        st = seal_under_passphrase(&v, master, newpass, newpasslen, level);
    if (st != KS_OK)
        return st;
    pthread_mutex_lock(&ks->lock);
    st = store_sealing(ks, &v);
    pthread_mutex_unlock(&ks->lock);
    /* Then its copy; if this fails, the next unlock writes it. */
    if (st == KS_OK)
        (void)masterkey_write(ks->dir, &v);
    return st;
}

int keystore_volume_info(keystore *ks, ks_volume_info *info)
{
    volume_row v;
    int st;

    if (ks == NULL || info == NULL)
        return KS_ERR_IO;
    st = read_volume_locked(ks, &v);
    if (st != KS_OK)
        return st;
    memset(info, 0, sizeof *info);
    info->format_version = (int)v.format_version;
    memcpy(info->volume_id, v.volume_id, sizeof info->volume_id);
    info->kdf_opslimit = v.opslimit;
    info->kdf_memlimit = v.memlimit;
    info->created = v.created;
    info->profile = (int)v.profile;
    info->names = (int)v.names;
    return KS_OK;
}

/* ---- file rows ----------------------------------------------------------------------------- */

int ks_row_lengths_ok(const ks_file_row *row)
{
    return row->seed_sealed_len <= sizeof row->seed_sealed &&
           row->nnvec_sealed_len <= sizeof row->nnvec_sealed;
}

int ks_bind_file_row(sqlite3_stmt *stmt, const ks_file_row *row, long long now)
{
    int rc = row->nnvec_sealed_len == 0
                 ? sqlite3_bind_null(stmt, 4)
                 : sqlite3_bind_blob(stmt, 4, row->nnvec_sealed, (int)row->nnvec_sealed_len,
                                     SQLITE_STATIC);

    if (rc != SQLITE_OK ||
        sqlite3_bind_blob(stmt, 1, row->file_id, KS_FILE_ID_BYTES, SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_bind_int(stmt, 2, row->kind) != SQLITE_OK ||
        sqlite3_bind_blob(stmt, 3, row->seed_sealed, (int)row->seed_sealed_len, SQLITE_STATIC) !=
            SQLITE_OK ||
        sqlite3_bind_int64(stmt, 5, (sqlite3_int64)row->plain_size) != SQLITE_OK ||
        sqlite3_bind_int64(stmt, 6, now) != SQLITE_OK ||
        sqlite3_bind_int64(stmt, 7, (sqlite3_int64)row->version) != SQLITE_OK)
        return KS_ERR_IO;
    return KS_OK;
}

int keystore_file_put(keystore *ks, const ks_file_row *row)
{
    sqlite3_stmt *stmt;
    int st;

    if (ks == NULL || row == NULL || !ks_row_lengths_ok(row) || ks->readonly)
        return KS_ERR_IO;
    pthread_mutex_lock(&ks->lock);
    stmt = ks->stmt[ST_FILE_PUT];
    st = ks_bind_file_row(stmt, row, unix_now());
    if (st == KS_OK)
        st = ks_step_done(stmt);
    else
        sqlite3_clear_bindings(stmt);
    pthread_mutex_unlock(&ks->lock);
    return st;
}

/* Decodes kind, seed_sealed, nnvec_sealed, plain_size, version from columns c.. of the
 * current row. */
static int parse_file_row(sqlite3_stmt *stmt, int c, ks_file_row *row)
{
    long long kind, plain_size, version;

    if (column_int64(stmt, c, &kind) != 0 || kind < INT_MIN || kind > INT_MAX ||
        column_blob_upto(stmt, c + 1, row->seed_sealed, sizeof row->seed_sealed,
                         &row->seed_sealed_len) != 0 ||
        column_int64(stmt, c + 3, &plain_size) != 0 || column_int64(stmt, c + 4, &version) != 0)
        return KS_ERR_CORRUPT;
    if (sqlite3_column_type(stmt, c + 2) != SQLITE_NULL &&
        column_blob_upto(stmt, c + 2, row->nnvec_sealed, sizeof row->nnvec_sealed,
                         &row->nnvec_sealed_len) != 0)
        return KS_ERR_CORRUPT;
    row->kind = (int)kind;
    row->plain_size = (uint64_t)plain_size;
    row->version = (uint64_t)version;
    return KS_OK;
}

int keystore_file_get(keystore *ks, const uint8_t file_id[KS_FILE_ID_BYTES], ks_file_row *row)
{
    uint8_t id[KS_FILE_ID_BYTES];
    sqlite3_stmt *stmt;
    int rc, st;

    if (ks == NULL || file_id == NULL || row == NULL)
        return KS_ERR_IO;
    memcpy(id, file_id, sizeof id); /* file_id may point into row */
    memset(row, 0, sizeof *row);
    memcpy(row->file_id, id, sizeof id);
    pthread_mutex_lock(&ks->lock);
    stmt = ks->stmt[ST_FILE_GET];
    rc = sqlite3_bind_blob(stmt, 1, id, sizeof id, SQLITE_STATIC);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(stmt);
    if (rc == SQLITE_ROW)
        st = parse_file_row(stmt, 0, row);
    else
        st = rc == SQLITE_DONE ? KS_ERR_NOTFOUND : ks_status_from_sqlite(rc);
    sqlite3_reset(stmt);
    sqlite3_clear_bindings(stmt);
    pthread_mutex_unlock(&ks->lock);
    return st;
}

int keystore_file_delete(keystore *ks, const uint8_t file_id[KS_FILE_ID_BYTES])
{
    sqlite3_stmt *stmt;
    int st = KS_ERR_IO;

    if (ks == NULL || file_id == NULL || ks->readonly)
        return KS_ERR_IO;
    pthread_mutex_lock(&ks->lock);
    stmt = ks->stmt[ST_FILE_DELETE];
    if (sqlite3_bind_blob(stmt, 1, file_id, KS_FILE_ID_BYTES, SQLITE_STATIC) == SQLITE_OK)
        st = ks_step_done(stmt);
    else
        sqlite3_clear_bindings(stmt);
    pthread_mutex_unlock(&ks->lock);
    return st;
}

long long keystore_file_count(keystore *ks)
{
    sqlite3_stmt *stmt;
    long long count;
    int rc;

    if (ks == NULL)
        return KS_ERR_IO;
    pthread_mutex_lock(&ks->lock);
    stmt = ks->stmt[ST_FILE_COUNT];
    rc = sqlite3_step(stmt);
    count = rc == SQLITE_ROW ? sqlite3_column_int64(stmt, 0) : ks_status_from_sqlite(rc);
    if (rc != SQLITE_ROW && count == KS_OK)
        count = KS_ERR_IO;
    sqlite3_reset(stmt);
    pthread_mutex_unlock(&ks->lock);
    return count;
}

int keystore_file_foreach(keystore *ks, int (*fn)(const ks_file_row *row, void *arg), void *arg)
{
    sqlite3_stmt *stmt = NULL;
    ks_file_row row;
    int rc, st = KS_OK;

    if (ks == NULL || fn == NULL)
        return KS_ERR_IO;
    pthread_mutex_lock(&ks->lock);
    rc = sqlite3_prepare_v2(ks->db,
                            "SELECT file_id, kind, seed_sealed, nnvec_sealed, plain_size, version"
                            " FROM files ORDER BY file_id",
                            -1, &stmt, NULL);
    while (rc == SQLITE_OK && st == KS_OK && (rc = sqlite3_step(stmt)) == SQLITE_ROW) {
        memset(&row, 0, sizeof row);
        st = column_blob_exact(stmt, 0, row.file_id, sizeof row.file_id) == 0
                 ? parse_file_row(stmt, 1, &row)
                 : KS_ERR_CORRUPT;
        if (st == KS_OK && fn(&row, arg) != 0)
            break;
        rc = SQLITE_OK;
    }
    if (st == KS_OK && rc != SQLITE_OK && rc != SQLITE_ROW && rc != SQLITE_DONE)
        st = ks_status_from_sqlite(rc) == KS_OK ? KS_ERR_IO : ks_status_from_sqlite(rc);
    sqlite3_finalize(stmt);
    pthread_mutex_unlock(&ks->lock);
    return st;
}

int keystore_sync(keystore *ks)
{
    char wal[PATH_MAX];
    int st = KS_OK;
    if (ks == NULL)
        return KS_ERR_IO;
    if (ks->readonly)
        return KS_OK;
    if (snprintf(wal, sizeof wal, "%s/" KS_DB_NAME "-wal", ks->dir) >= (int)sizeof wal)
        return KS_ERR_IO;
    /* Under the lock: no commit is half-written to the log while it is synced. */
    pthread_mutex_lock(&ks->lock);
    int fd = open(wal, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        if (fsync(fd) != 0)
            st = KS_ERR_IO;
        close(fd);
    } else if (errno != ENOENT) {
        st = KS_ERR_IO;
    }
    pthread_mutex_unlock(&ks->lock);
    return st;
}

int keystore_check(keystore *ks)
{
    sqlite3_stmt *stmt = NULL;
    int rc, st;

    if (ks == NULL)
        return KS_ERR_IO;
    pthread_mutex_lock(&ks->lock);
    rc = sqlite3_prepare_v2(ks->db, "PRAGMA quick_check", -1, &stmt, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(stmt);
    if (rc == SQLITE_ROW) {
        const unsigned char *text = sqlite3_column_text(stmt, 0);
        st = text != NULL && strcmp((const char *)text, "ok") == 0 ? KS_OK : KS_ERR_CORRUPT;
    } else {
        st = ks_status_from_sqlite(rc) == KS_OK ? KS_ERR_CORRUPT : ks_status_from_sqlite(rc);
    }
    sqlite3_finalize(stmt);
    pthread_mutex_unlock(&ks->lock);
    return st;
}

int keystore_integrity_check(keystore *ks, char *msg, size_t cap)
{
    sqlite3_stmt *stmt = NULL;
    int rc, st;

    if (ks == NULL)
        return KS_ERR_IO;
    if (cap > 0)
        msg[0] = '\0';
    pthread_mutex_lock(&ks->lock);
    rc = sqlite3_prepare_v2(ks->db, "PRAGMA integrity_check(1)", -1, &stmt, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(stmt);
    if (rc == SQLITE_ROW) {
        const char *text = (const char *)sqlite3_column_text(stmt, 0);
        st = text != NULL && strcmp(text, "ok") == 0 ? KS_OK : KS_ERR_CORRUPT;
        if (cap > 0)
            snprintf(msg, cap, "%s", text ? text : "no answer");
        for (char *p = msg; cap > 0 && (p = strchr(p, '\n')) != NULL;)
            *p = ' '; /* one line */
    } else {
        st = ks_status_from_sqlite(rc) == KS_OK ? KS_ERR_CORRUPT : ks_status_from_sqlite(rc);
        if (cap > 0)
            snprintf(msg, cap, "%s", sqlite3_errmsg(ks->db));
    }
    sqlite3_finalize(stmt);
    pthread_mutex_unlock(&ks->lock);
    return st;
}

/* ---- rebuild ------------------------------------------------------------------------------- */

/* The volume row of the existing keystore.db, if it still opens. */
static int record_from_db(const char *cipherdir, volume_row *v)
{
    keystore *old = NULL;
    int st = keystore_open(&old, cipherdir);
    if (st == KS_OK)
        st = read_volume_locked(old, v);
    keystore_close(old);
    return st;
}

int keystore_rebuild_begin(keystore **out, const char *cipherdir)
{
    char tmp[PATH_MAX];
    volume_row v;
    ks_paths p;
    int fd, st;

    if (out == NULL)
        return KS_ERR_IO;
    *out = NULL;
    if (cipherdir == NULL || sodium_init() < 0)
        return KS_ERR_IO;
    st = paths_init(&p, cipherdir);
    if (st != KS_OK)
        return st;
    if (!is_dir(p.dir))
        return KS_ERR_MISSING;
    st = masterkey_read(p.dir, &v);
    if (st == KS_ERR_MISSING || st == KS_ERR_CORRUPT) {
        /* No usable file: the old database's record, if it still has one, and a new file
         * from it, so that a rebuild interrupted later can start again. */
        int from_db = record_from_db(cipherdir, &v);
        if (from_db == KS_OK)
            st = masterkey_write(p.dir, &v);
        else if (st == KS_ERR_MISSING)
            st = from_db;
    }
    if (st != KS_OK)
        return st;

    if (path_join(tmp, sizeof tmp, p.dir, TMP_DB_TEMPLATE) != 0)
        return KS_ERR_IO;
    fd = mkstemp(tmp); /* mode 0600 */
    if (fd < 0)
        return KS_ERR_IO;
    close(fd);
    /* The key check comes back with the first unlock, the places with fsck. */
    st = build_database(tmp, &v, NULL, 0);
    if (st == KS_OK)
        st = open_handle(out, &p, tmp, 0);
    /* Private until installed, and synced then: no need to sync each row. */
    if (st == KS_OK)
        st = ks_exec((*out)->db, "PRAGMA synchronous = OFF;");
    if (st == KS_OK && ((*out)->rebuild_tmp = strdup(tmp)) == NULL)
        st = KS_ERR_NOMEM;
    if (st != KS_OK) {
        if (*out != NULL) {
            (void)close_db(*out);
            free_handle(*out);
            *out = NULL;
        }
        remove_db_files(tmp);
    }
    return st;
}

/* Renames path+suffix to path.old+suffix; a missing one is fine. */
static int keep_as_old(const char *path, const char *suffix)
{
    char from[PATH_MAX], to[PATH_MAX];
    if (snprintf(from, sizeof from, "%s%s", path, suffix) >= (int)sizeof from ||
        snprintf(to, sizeof to, "%s.old%s", path, suffix) >= (int)sizeof to)
        return KS_ERR_IO;
    return rename(from, to) == 0 || errno == ENOENT ? KS_OK : KS_ERR_IO;
}

int keystore_rebuild_commit(keystore *ks)
{
    char db[PATH_MAX], old[PATH_MAX];
    int st;

    if (ks == NULL || ks->rebuild_tmp == NULL)
        return KS_ERR_IO;
    st = close_db(ks); /* the last connection: its log goes into the file */
    if (st == KS_OK && (path_join(db, sizeof db, ks->dir, KS_DB_NAME) != 0 ||
                        snprintf(old, sizeof old, "%s.old", db) >= (int)sizeof old))
        st = KS_ERR_IO;
    if (st == KS_OK)
        st = fsync_file(ks->rebuild_tmp);
    /* The old database and its log are kept aside (a log must never meet another
     * database: SQLite would replay it there). */
    if (st == KS_OK) {
        remove_db_files(old);
        st = keep_as_old(db, "");
    }
    if (st == KS_OK)
        st = keep_as_old(db, "-wal");
    if (st == KS_OK) {
        char shm[PATH_MAX];
        if (snprintf(shm, sizeof shm, "%s-shm", db) < (int)sizeof shm)
            (void)unlink(shm);
        st = rename(ks->rebuild_tmp, db) == 0 ? KS_OK : KS_ERR_IO;
    }
    if (st == KS_OK)
        fsync_dir(ks->dir);
    else
        remove_db_files(ks->rebuild_tmp);
    free_handle(ks);
    return st;
}

void keystore_rebuild_abort(keystore *ks)
{
    if (ks == NULL)
        return;
    (void)close_db(ks);
    if (ks->rebuild_tmp != NULL)
        remove_db_files(ks->rebuild_tmp);
    free_handle(ks);
}

/* ---- key check (unlocking with the master key itself) -------------------------------------- */

static void key_check_compute(uint8_t mac[KEY_CHECK_BYTES],
                              const uint8_t master[KS_MASTER_KEY_BYTES],
                              const uint8_t volume_id[VOLUME_ID_BYTES])
{
    crypto_generichash_state st;
    crypto_generichash_init(&st, master, KS_MASTER_KEY_BYTES, KEY_CHECK_BYTES);
    crypto_generichash_update(&st, (const uint8_t *)KEY_CHECK_CONTEXT,
                              sizeof KEY_CHECK_CONTEXT - 1);
    crypto_generichash_update(&st, volume_id, VOLUME_ID_BYTES);
    crypto_generichash_final(&st, mac, KEY_CHECK_BYTES);
}

static int key_check_store(sqlite3 *db, const uint8_t volume_id[VOLUME_ID_BYTES],
                           const uint8_t mac[KEY_CHECK_BYTES])
{
    sqlite3_stmt *stmt = NULL;
    int st = ks_exec(db, KEY_CHECK_TABLE_SQL);

    if (st == KS_OK)
        st = ks_status_from_sqlite(sqlite3_prepare_v2(
            db, "INSERT OR REPLACE INTO key_check (volume_id, mac) VALUES (?1, ?2)", -1, &stmt,
            NULL));
    if (st == KS_OK &&
        (sqlite3_bind_blob(stmt, 1, volume_id, VOLUME_ID_BYTES, SQLITE_STATIC) != SQLITE_OK ||
         sqlite3_bind_blob(stmt, 2, mac, KEY_CHECK_BYTES, SQLITE_STATIC) != SQLITE_OK))
        st = KS_ERR_IO;
    if (st == KS_OK)
        st = ks_step_done(stmt);
    sqlite3_finalize(stmt);
    return st;
}

/* KS_ERR_NOKEYCHECK when the keystore has none for this volume.  Caller holds the lock. */
static int key_check_load(keystore *ks, const uint8_t volume_id[VOLUME_ID_BYTES],
                          uint8_t mac[KEY_CHECK_BYTES])
{
    sqlite3_stmt *stmt = NULL;
    int rc = sqlite3_prepare_v2(ks->db, "SELECT mac FROM key_check WHERE volume_id = ?1", -1, &stmt,
                                NULL);
    int st;

    if ((rc & 0xff) == SQLITE_ERROR) /* no such table: a volume from before key checks */
        return KS_ERR_NOKEYCHECK;
    st = ks_status_from_sqlite(rc);
    if (st == KS_OK &&
        sqlite3_bind_blob(stmt, 1, volume_id, VOLUME_ID_BYTES, SQLITE_STATIC) != SQLITE_OK)
        st = KS_ERR_IO;
    if (st == KS_OK) {
        rc = sqlite3_step(stmt);
        if (rc == SQLITE_DONE)
            st = KS_ERR_NOKEYCHECK;
        else if (rc != SQLITE_ROW)
            st = ks_status_from_sqlite(rc) == KS_OK ? KS_ERR_IO : ks_status_from_sqlite(rc);
        else if (column_blob_exact(stmt, 0, mac, KEY_CHECK_BYTES) != 0)
            st = KS_ERR_CORRUPT;
    }
    sqlite3_finalize(stmt);
    return st;
}

/* After a passphrase unlock: the key check is written if missing or stale.  Best effort. */
static void sync_key_check(keystore *ks, const uint8_t master[KS_MASTER_KEY_BYTES],
                           const uint8_t volume_id[VOLUME_ID_BYTES])
{
    uint8_t want[KEY_CHECK_BYTES], have[KEY_CHECK_BYTES];

    if (ks->readonly)
        return;
    key_check_compute(want, master, volume_id);
    pthread_mutex_lock(&ks->lock);
    if (key_check_load(ks, volume_id, have) != KS_OK || sodium_memcmp(want, have, sizeof want) != 0)
        (void)key_check_store(ks->db, volume_id, want);
    pthread_mutex_unlock(&ks->lock);
}

int keystore_unlock_master(keystore *ks, const uint8_t master[KS_MASTER_KEY_BYTES])
{
    uint8_t want[KEY_CHECK_BYTES], have[KEY_CHECK_BYTES];
    volume_row v;
    int st;

    if (ks == NULL || master == NULL)
        return KS_ERR_IO;
    pthread_mutex_lock(&ks->lock);
    st = read_volume(ks, &v);
    if (st == KS_OK)
        st = key_check_load(ks, v.volume_id, have);
    pthread_mutex_unlock(&ks->lock);
    if (st != KS_OK)
        return st;
    key_check_compute(want, master, v.volume_id);
    return sodium_memcmp(want, have, sizeof want) == 0 ? KS_OK : KS_ERR_WRONG_KEY;
}

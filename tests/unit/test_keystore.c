/* Unit tests of the keystore: create/open/unlock, passphrase change, refusals, corrupt and
 * hostile databases, file rows and their versions, the masterkey file and rebuilding the
 * database from it, read-only storage, many threads on one handle, and the put rate. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <stdarg.h>
#include <sodium.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "keystore/keystore.h"
#include "tap.h"

#define PATHBUF 4096
#define LEVEL KS_KDF_INTERACTIVE
#define NOBODY 65534

static char base[] = "/tmp/pxc-keystore-XXXXXX";
static const char pass[] = "correct horse battery staple";
static const char newpass[] = "tr0ub4dor&3";

/* ---- helpers ------------------------------------------------------------------------------- */

static const char *path_fmt(char buf[PATHBUF], const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static const char *path_fmt(char buf[PATHBUF], const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, PATHBUF, fmt, ap);
    va_end(ap);
    return buf;
}

static const char *in_base(char buf[PATHBUF], const char *rel)
{
    return path_fmt(buf, "%s/%s", base, rel);
}

static const char *db_of(char buf[PATHBUF], const char *cipherdir)
{
    return path_fmt(buf, "%s/" KS_DIR "/" KS_DB_NAME, cipherdir);
}

static const char *meta_of(char buf[PATHBUF], const char *cipherdir)
{
    return path_fmt(buf, "%s/" KS_DIR, cipherdir);
}

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(path);
}

static void remove_tree(const char *path)
{
    nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static int write_file(const char *path, const void *data, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    ssize_t n;
    if (fd < 0)
        return -1;
    n = write(fd, data, len);
    close(fd);
    return n == (ssize_t)len ? 0 : -1;
}

static uint8_t *read_file(const char *path, size_t *len)
{
    struct stat sb;
    uint8_t *data;
    int fd = open(path, O_RDONLY);
    if (fd < 0 || fstat(fd, &sb) != 0) {
        if (fd >= 0)
            close(fd);
        return NULL;
    }
    data = malloc((size_t)sb.st_size + 1);
    *len = (size_t)read(fd, data, (size_t)sb.st_size);
    close(fd);
    return data;
}

static int count_entries(const char *dir)
{
    struct dirent *e;
    DIR *d = opendir(dir);
    int n = 0;
    if (d == NULL)
        return -1;
    while ((e = readdir(d)) != NULL)
        n += strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
    closedir(d);
    return n;
}

static int mode_of(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 ? (int)(sb.st_mode & 07777) : -1;
}

static int exists(const char *path)
{
    struct stat sb;
    return lstat(path, &sb) == 0;
}

/* Runs SQL on a keystore database behind the keystore's back. */
static int sql_exec(const char *dbpath, const char *sql)
{
    sqlite3 *db = NULL;
    int rc = sqlite3_open_v2(dbpath, &db, SQLITE_OPEN_READWRITE, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
    sqlite3_close(db);
    return rc;
}

/* Copies a BLOB column of the volume row; returns its length or -1. */
static int volume_blob(const char *dbpath, const char *column, uint8_t *out, size_t cap)
{
    char sql[128];
    sqlite3 *db = NULL;
    sqlite3_stmt *stmt = NULL;
    int n = -1;
    snprintf(sql, sizeof sql, "SELECT %s FROM volume", column);
    if (sqlite3_open_v2(dbpath, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
        sqlite3_prepare_v2(db, sql, -1, &stmt, NULL) == SQLITE_OK &&
        sqlite3_step(stmt) == SQLITE_ROW) {
        n = sqlite3_column_bytes(stmt, 0);
        if ((size_t)n <= cap)
            memcpy(out, sqlite3_column_blob(stmt, 0), (size_t)n);
        else
            n = -1;
    }
    sqlite3_finalize(stmt);
    sqlite3_close(db);
    return n;
}

static void make_row(ks_file_row *row, uint8_t fill, size_t nnvec_len, uint64_t plain_size)
{
    memset(row, 0, sizeof *row);
    randombytes_buf(row->file_id, sizeof row->file_id);
    row->kind = 1;
    row->seed_sealed_len = 72;
    memset(row->seed_sealed, fill, row->seed_sealed_len);
    row->nnvec_sealed_len = nnvec_len;
    memset(row->nnvec_sealed, fill ^ 0xff, nnvec_len);
    row->plain_size = plain_size;
}

static int rows_equal(const ks_file_row *a, const ks_file_row *b)
{
    return memcmp(a->file_id, b->file_id, KS_FILE_ID_BYTES) == 0 && a->kind == b->kind &&
           a->seed_sealed_len == b->seed_sealed_len &&
           memcmp(a->seed_sealed, b->seed_sealed, a->seed_sealed_len) == 0 &&
           a->nnvec_sealed_len == b->nnvec_sealed_len &&
           memcmp(a->nnvec_sealed, b->nnvec_sealed, a->nnvec_sealed_len) == 0 &&
           a->plain_size == b->plain_size && a->version == b->version;
}

static int count_one(const ks_file_row *row, void *arg)
{
    (void)row;
    ++*(long long *)arg;
    return 0;
}

/* Rows seen by keystore_file_foreach, or -1 on an error. */
static long long count_rows(keystore *ks)
{
    long long n = 0;
    return keystore_file_foreach(ks, count_one, &n) == KS_OK ? n : -1;
}

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- create, open, unlock ------------------------------------------------------------------ */

/* The chaos profile is recorded in the database and in the masterkey file. */
static void test_profile(void)
{
    char vol[PATHBUF], buf[PATHBUF], mk[PATHBUF];
    ks_volume_info info = {0};
    keystore *ks = NULL;
    in_base(vol, "chaosvol");
    ok(keystore_create(vol, pass, strlen(pass), LEVEL, KS_PROFILE_CHAOS, NULL) == KS_OK,
       "create with the chaos profile");
    ok(keystore_open(&ks, vol) == KS_OK && keystore_volume_info(ks, &info) == KS_OK &&
           info.profile == KS_PROFILE_CHAOS,
       "volume info says chaos");
    keystore_close(ks);
    meta_of(buf, vol);
    FILE *f = fopen(path_fmt(mk, "%s/masterkey", buf), "r");
    char line[256];
    int seen = 0;
    while (f && fgets(line, sizeof line, f))
        seen |= strcmp(line, "profile 1\n") == 0;
    if (f)
        fclose(f);
    ok(seen, "masterkey file records profile 1");
    ok(keystore_create(in_base(buf, "badprofile"), pass, strlen(pass), LEVEL, 7, NULL) != KS_OK,
       "an unknown profile is refused");
}

static void test_round_trip(void)
{
    char vol[PATHBUF], buf[PATHBUF], db[PATHBUF];
    uint8_t master[KS_MASTER_KEY_BYTES], got[KS_MASTER_KEY_BYTES];
    static const uint8_t zero_id[16];
    ks_volume_info info;
    keystore *ks = NULL;

    in_base(vol, "vol");
    ok(keystore_create(vol, pass, strlen(pass), LEVEL, KS_PROFILE_DEFAULT, master) == KS_OK,
       "create in a missing cipher dir");
    ok(mode_of(vol) == 0700, "cipher dir is created with mode 0700");
    meta_of(buf, vol);
    ok(mode_of(buf) == 0700, ".pixcrypt has mode 0700");
    ok(mode_of(db_of(db, vol)) == 0600, "keystore.db has mode 0600");
    ok(count_entries(buf) == 2, ".pixcrypt holds keystore.db and masterkey (no temporary files)");
    ok(mode_of(path_fmt(db, "%s/masterkey", buf)) == 0600, "masterkey has mode 0600");
    db_of(db, vol);

    ok(keystore_open(&ks, vol) == KS_OK && ks != NULL, "open");
    ok(keystore_volume_info(ks, &info) == KS_OK, "volume info");
    ok(info.format_version == 1, "format version 1");
    ok(info.kdf_opslimit == crypto_pwhash_OPSLIMIT_INTERACTIVE &&
           info.kdf_memlimit == crypto_pwhash_MEMLIMIT_INTERACTIVE,
       "interactive level stores the interactive limits");
    ok(llabs(info.created - (long long)time(NULL)) < 120, "creation time is now");
    ok(memcmp(info.volume_id, zero_id, sizeof zero_id) != 0, "volume id is set");
    ok(info.profile == KS_PROFILE_DEFAULT, "the default cipher profile");

    memset(got, 0, sizeof got);
    ok(keystore_unlock(ks, pass, strlen(pass), got) == KS_OK, "unlock with the passphrase");
    ok(memcmp(got, master, sizeof got) == 0, "unlock gives the master key of create");
    ok(keystore_unlock(ks, "wrong", 5, got) == KS_ERR_PASSPHRASE, "wrong passphrase refused");
    ok(keystore_unlock(ks, "", 0, got) == KS_ERR_PASSPHRASE, "empty passphrase refused");
    ok(keystore_unlock(ks, pass, strlen(pass) - 1, got) == KS_ERR_PASSPHRASE,
       "passphrase prefix refused");
    keystore_close(ks);
}

/* The sealed key is bound to its volume id: moving it to another volume does not unseal. */
static void test_sealed_key_bound_to_volume(void)
{
    char a[PATHBUF], b[PATHBUF], dba[PATHBUF], dbb[PATHBUF], *sql;
    uint8_t ma[KS_MASTER_KEY_BYTES], mb[KS_MASTER_KEY_BYTES], got[KS_MASTER_KEY_BYTES];
    uint8_t salt[64], sealed[128];
    int nsalt, nsealed;
    keystore *ks = NULL;

    in_base(a, "bound-a");
    in_base(b, "bound-b");
    ok(keystore_create(a, pass, strlen(pass), LEVEL, KS_PROFILE_DEFAULT, ma) == KS_OK &&
           keystore_create(b, pass, strlen(pass), LEVEL, KS_PROFILE_DEFAULT, mb) == KS_OK,
       "two volumes with one passphrase");
    ok(memcmp(ma, mb, sizeof ma) != 0, "each volume has its own master key");
    nsalt = volume_blob(db_of(dbb, b), "kdf_salt", salt, sizeof salt);
    nsealed = volume_blob(dbb, "master_sealed", sealed, sizeof sealed);
    ok(nsalt == crypto_pwhash_SALTBYTES && nsealed == 24 + 32 + 16,
       "salt and sealed key have their documented sizes");

    sql = sqlite3_mprintf("ATTACH %Q AS b; UPDATE volume SET"
                          " kdf_salt = (SELECT kdf_salt FROM b.volume),"
                          " master_sealed = (SELECT master_sealed FROM b.volume);",
                          dbb);
    ok(sql_exec(db_of(dba, a), sql) == SQLITE_OK, "graft b's salt and sealed key into a");
    sqlite3_free(sql);
    /* Without a's masterkey file, which would unlock (and heal) a on its own. */
    remove(path_fmt(dba, "%s/" KS_DIR "/" KS_MASTERKEY_FILE, a));
    ok(keystore_open(&ks, a) == KS_OK, "open a");
    ok(keystore_unlock(ks, pass, strlen(pass), got) == KS_ERR_PASSPHRASE,
       "a sealed key does not unseal under another volume id");
    keystore_close(ks);
}

static void test_create_refusals(void)
{
    char vol[PATHBUF], dir[PATHBUF], buf[PATHBUF], db[PATHBUF];
    uint8_t master[KS_MASTER_KEY_BYTES];
    keystore *ks = NULL;

    in_base(vol, "vol");
    ok(keystore_create(vol, pass, strlen(pass), LEVEL, KS_PROFILE_DEFAULT, NULL) == KS_ERR_EXISTS,
       "create refuses an existing volume");

    in_base(dir, "nonempty");
    mkdir(dir, 0755);
    write_file(in_base(buf, "nonempty/photo.jpg"), "x", 1);
    ok(keystore_create(dir, pass, strlen(pass), LEVEL, KS_PROFILE_DEFAULT, NULL) == KS_ERR_EXISTS,
       "create refuses a non-empty dir");
    ok(!exists(in_base(buf, "nonempty/" KS_DIR)), "and leaves it as it was");

    in_base(dir, "empty");
    mkdir(dir, 0755);
    ok(keystore_create(dir, pass, strlen(pass), LEVEL, KS_PROFILE_DEFAULT, NULL) == KS_OK,
       "create in an existing empty dir");
    ok(mode_of(dir) == 0755, "an existing dir keeps its mode");

    /* What an init killed half-way leaves behind. */
    in_base(dir, "interrupted");
    mkdir(dir, 0700);
    mkdir(in_base(buf, "interrupted/" KS_DIR), 0700);
    write_file(in_base(buf, "interrupted/" KS_DIR "/" KS_DB_NAME ".tmp-Ab12Cd"), "half", 4);
    write_file(in_base(buf, "interrupted/" KS_DIR "/" KS_DB_NAME "-wal"), "stale", 5);
    ok(keystore_create(dir, pass, strlen(pass), LEVEL, KS_PROFILE_DEFAULT, master) == KS_OK,
       "create over the leftovers of an interrupted init");
    ok(count_entries(in_base(buf, "interrupted/" KS_DIR)) == 2, "leftovers are removed");
    ok(keystore_open(&ks, dir) == KS_OK, "the new keystore opens");
    keystore_close(ks);
    ok(exists(db_of(db, dir)), "keystore.db is in place");

    ok(keystore_create(in_base(buf, "no/such/parent"), pass, strlen(pass), LEVEL,
                       KS_PROFILE_DEFAULT, NULL) == KS_ERR_IO,
       "create with a missing parent dir is an I/O error");
    ok(keystore_create(in_base(buf, "nonempty/photo.jpg"), pass, strlen(pass), LEVEL,
                       KS_PROFILE_DEFAULT, NULL) == KS_ERR_IO,
       "create on a regular file is an I/O error");
    ok(keystore_create(in_base(buf, "badlevel"), pass, strlen(pass), (enum ks_kdf_level)42,
                       KS_PROFILE_DEFAULT, NULL) != KS_OK,
       "create refuses an unknown KDF level");
}

static void test_open_missing(void)
{
    char dir[PATHBUF], buf[PATHBUF];
    keystore *ks = (keystore *)&ks; /* any non-NULL value: a failed open must reset it */

    ok(keystore_open(&ks, in_base(dir, "does-not-exist")) == KS_ERR_MISSING && ks == NULL,
       "open of a missing dir: KS_ERR_MISSING, handle NULL");
    in_base(dir, "plain");
    mkdir(dir, 0700);
    ok(keystore_open(&ks, dir) == KS_ERR_MISSING, "open of a dir without .pixcrypt");
    mkdir(in_base(buf, "plain/" KS_DIR), 0700);
    ok(keystore_open(&ks, dir) == KS_ERR_MISSING, "open of a .pixcrypt without keystore.db");
    ok(!exists(in_base(buf, "plain/" KS_DIR "/" KS_DB_NAME)), "open does not create the file");
}

/* ---- passphrase change --------------------------------------------------------------------- */

static void test_rewrap(void)
{
    enum { NROWS = 5 };
    char vol[PATHBUF], db[PATHBUF];
    uint8_t master[KS_MASTER_KEY_BYTES], got[KS_MASTER_KEY_BYTES];
    uint8_t salt0[64], salt1[64], sealed0[128], sealed1[128];
    ks_file_row rows[NROWS], after;
    keystore *ks = NULL;
    int same_rows = 1;

    in_base(vol, "rewrap");
    db_of(db, vol);
    ok(keystore_create(vol, pass, strlen(pass), LEVEL, KS_PROFILE_DEFAULT, master) == KS_OK,
       "rewrap: create");
    ok(keystore_open(&ks, vol) == KS_OK, "rewrap: open");
    for (int i = 0; i < NROWS; i++) {
        make_row(&rows[i], (uint8_t)i, i % 2 ? 72 : 0, 1000u * (unsigned)i);
        keystore_file_put(ks, &rows[i]);
        keystore_file_get(ks, rows[i].file_id, &rows[i]);
    }
    volume_blob(db, "kdf_salt", salt0, sizeof salt0);
    volume_blob(db, "master_sealed", sealed0, sizeof sealed0);

    ok(keystore_rewrap(ks, master, newpass, strlen(newpass), LEVEL) == KS_OK, "rewrap");
    ok(keystore_unlock(ks, pass, strlen(pass), got) == KS_ERR_PASSPHRASE,
       "old passphrase refused after rewrap");
    ok(keystore_unlock(ks, newpass, strlen(newpass), got) == KS_OK &&
           memcmp(got, master, sizeof got) == 0,
       "new passphrase gives the same master key");
    for (int i = 0; i < NROWS; i++)
        same_rows &=
            keystore_file_get(ks, rows[i].file_id, &after) == KS_OK && rows_equal(&after, &rows[i]);
    ok(same_rows && keystore_file_count(ks) == NROWS, "file rows untouched (versions too)");
    volume_blob(db, "kdf_salt", salt1, sizeof salt1);
    volume_blob(db, "master_sealed", sealed1, sizeof sealed1);
    ok(memcmp(salt0, salt1, crypto_pwhash_SALTBYTES) != 0, "fresh salt");
    ok(memcmp(sealed0, sealed1, 24) != 0, "fresh nonce");
    keystore_close(ks);

    ok(keystore_open(&ks, vol) == KS_OK &&
           keystore_unlock(ks, newpass, strlen(newpass), got) == KS_OK &&
           memcmp(got, master, sizeof got) == 0,
       "new passphrase still works after reopening");
    keystore_close(ks);
}

/* ---- file rows ----------------------------------------------------------------------------- */

static void test_file_rows(void)
{
    char vol[PATHBUF];
    uint8_t unknown[KS_FILE_ID_BYTES];
    ks_file_row row, got, bad;
    keystore *ks = NULL;

    in_base(vol, "vol");
    ok(keystore_open(&ks, vol) == KS_OK, "rows: open");
    ok(keystore_file_count(ks) == 0, "a new volume has no rows");

    make_row(&row, 0x11, 0, 12345);
    row.version = 1;
    ok(keystore_file_put(ks, &row) == KS_OK, "put a new row");
    ok(keystore_file_get(ks, row.file_id, &got) == KS_OK, "get it");
    ok(rows_equal(&got, &row), "same fields, version 1, empty neural vector");

    make_row(&bad, 0x22, 72, 5000000000ULL);
    memcpy(bad.file_id, row.file_id, KS_FILE_ID_BYTES);
    bad.kind = 2;
    bad.version = 7;
    ok(keystore_file_put(ks, &bad) == KS_OK, "put over the same file id");
    keystore_file_get(ks, row.file_id, &got);
    ok(rows_equal(&got, &bad), "fields replaced whole, version 7 as given, 72-byte vector");

    bad.plain_size = UINT64_MAX;
    bad.version = UINT64_MAX;
    keystore_file_put(ks, &bad);
    keystore_file_get(ks, row.file_id, &got);
    ok(got.plain_size == UINT64_MAX && got.version == UINT64_MAX,
       "64-bit size and version kept exactly");

    randombytes_buf(unknown, sizeof unknown);
    ok(keystore_file_get(ks, unknown, &got) == KS_ERR_NOTFOUND, "get of no row");

    make_row(&got, 0x33, 0, 1);
    keystore_file_put(ks, &got);
    ok(keystore_file_count(ks) == 2, "count");
    ok(keystore_file_delete(ks, row.file_id) == KS_OK, "delete");
    ok(keystore_file_get(ks, row.file_id, &got) == KS_ERR_NOTFOUND, "deleted row is gone");
    ok(keystore_file_count(ks) == 1, "count after delete");
    ok(keystore_file_delete(ks, row.file_id) == KS_OK, "delete of no row is fine");
    ok(keystore_file_put(ks, &row) == KS_OK && keystore_file_get(ks, row.file_id, &got) == KS_OK &&
           rows_equal(&got, &row),
       "a deleted id can be put again");

    make_row(&bad, 0x44, 0, 1);
    bad.seed_sealed_len = sizeof bad.seed_sealed + 1;
    ok(keystore_file_put(ks, &bad) != KS_OK, "put refuses an impossible seed length");
    keystore_close(ks);
}

static int stop_after_two(const ks_file_row *row, void *arg)
{
    (void)row;
    return ++*(int *)arg == 2;
}

static void test_foreach(void)
{
    enum { N = 50 };
    char vol[PATHBUF];
    ks_file_row row;
    keystore *ks = NULL;
    int seen = 0;

    in_base(vol, "foreach");
    keystore_create(vol, pass, strlen(pass), LEVEL, KS_PROFILE_DEFAULT, NULL);
    ok(keystore_open(&ks, vol) == KS_OK && count_rows(ks) == 0, "foreach: no rows");
    for (int i = 0; i < N; i++) {
        make_row(&row, (uint8_t)i, 0, (uint64_t)i);
        keystore_file_put(ks, &row);
    }
    ok(count_rows(ks) == N, "foreach visits every row");
    ok(keystore_file_foreach(ks, stop_after_two, &seen) == KS_OK && seen == 2,
       "foreach stops when told");
    ok(keystore_check(ks) == KS_OK, "a sound database passes keystore_check");
    keystore_close(ks);
}

/* ---- the masterkey file and rebuilding the database -------------------------------------- */

static const char *mk_of(char buf[PATHBUF], const char *vol)
{
    return path_fmt(buf, "%s/" KS_DIR "/" KS_MASTERKEY_FILE, vol);
}

static void remove_db(const char *vol)
{
    char db[PATHBUF], side[PATHBUF];
    db_of(db, vol);
    remove(db);
    remove(path_fmt(side, "%s-wal", db));
    remove(path_fmt(side, "%s-shm", db));
}

static int unlock_is(const char *vol, const char *pw, const uint8_t master[KS_MASTER_KEY_BYTES])
{
    uint8_t got[KS_MASTER_KEY_BYTES];
    keystore *ks = NULL;
    int st = keystore_open(&ks, vol);
    if (st == KS_OK)
        st = keystore_unlock(ks, pw, strlen(pw), got);
    keystore_close(ks);
    return st == KS_OK && memcmp(got, master, sizeof got) == 0;
}

static void test_masterkey(void)
{
    char vol[PATHBUF], mk[PATHBUF], db[PATHBUF], buf[PATHBUF];
    uint8_t master[KS_MASTER_KEY_BYTES], got[KS_MASTER_KEY_BYTES], *text, *old_text;
    size_t len = 0, old_len = 0;
    ks_file_row row, back;
    keystore *ks = NULL;

    in_base(vol, "mk");
    mk_of(mk, vol);
    db_of(db, vol);
    keystore_create(vol, pass, strlen(pass), LEVEL, KS_PROFILE_DEFAULT, master);
    text = read_file(mk, &len);
    ok(text != NULL && len > 20 && memcmp(text, "pixcrypt-masterkey 1\n", 21) == 0,
       "create writes the masterkey file (%zu bytes)", len);
    free(text);

    /* Lost database: rebuilt from the file. */
    keystore_open(&ks, vol);
    make_row(&row, 5, 0, 55);
    keystore_file_put(ks, &row);
    keystore_close(ks);
    remove_db(vol);
    ok(keystore_open(&ks, vol) == KS_ERR_MISSING, "without keystore.db the volume does not open");
    ok(keystore_rebuild_begin(&ks, vol) == KS_OK, "rebuild from the masterkey file");
    ok(!exists(db), "the new database is not in place before commit");
    ok(keystore_unlock(ks, pass, strlen(pass), got) == KS_OK &&
           memcmp(got, master, sizeof got) == 0,
       "the rebuilding handle unlocks with the passphrase");
    ok(keystore_unlock(ks, "wrong", 5, got) == KS_ERR_PASSPHRASE, "and refuses a wrong one");
    row.version = 3;
    ok(keystore_file_put(ks, &row) == KS_OK && count_rows(ks) == 1, "rows go into it");
    ok(keystore_rebuild_commit(ks) == KS_OK, "commit");
    ok(count_entries(meta_of(buf, vol)) == 2, "no temporary files left");
    ok(unlock_is(vol, pass, master), "the rebuilt keystore opens and unlocks");
    keystore_open(&ks, vol);
    ok(keystore_file_get(ks, row.file_id, &back) == KS_OK && rows_equal(&back, &row),
       "with the rows put while rebuilding");
    keystore_close(ks);

    /* A passphrase change rewrites the file. */
    keystore_open(&ks, vol);
    old_text = read_file(mk, &old_len);
    ok(keystore_rewrap(ks, master, newpass, strlen(newpass), LEVEL) == KS_OK, "rewrap");
    keystore_close(ks);
    text = read_file(mk, &len);
    ok(text && old_text && (len != old_len || memcmp(text, old_text, len) != 0),
       "rewrap rewrites the masterkey file");
    free(text);
    remove_db(vol);
    keystore_rebuild_begin(&ks, vol);
    ok(keystore_unlock(ks, newpass, strlen(newpass), got) == KS_OK &&
           keystore_unlock(ks, pass, strlen(pass), got) == KS_ERR_PASSPHRASE,
       "rebuilt after passwd: the new passphrase unlocks, the old one not");
    keystore_rebuild_abort(ks);
    ok(!exists(db) && count_entries(meta_of(buf, vol)) == 1, "abort leaves nothing behind");

    /* A corrupt database: rebuilt, the old one kept aside. */
    write_file(db, "not a database at all, not at all, no", 37);
    ok(keystore_open(&ks, vol) == KS_ERR_CORRUPT, "corrupt keystore.db: KS_ERR_CORRUPT");
    ok(keystore_rebuild_begin(&ks, vol) == KS_OK && keystore_rebuild_commit(ks) == KS_OK,
       "rebuild over a corrupt database");
    ok(exists(path_fmt(buf, "%s.old", db)), "the corrupt one is kept as keystore.db.old");
    ok(unlock_is(vol, newpass, master), "the new one unlocks");

    /* An interrupted passphrase change: the old file back beside the new database. */
    write_file(mk, old_text, old_len);
    ok(unlock_is(vol, newpass, master), "a stale masterkey file: the database's record unlocks");
    text = read_file(mk, &len);
    ok(text && (len != old_len || memcmp(text, old_text, len) != 0),
       "and the file is brought in line with it");
    free(text);
    remove_db(vol);
    keystore_rebuild_begin(&ks, vol);
    ok(keystore_unlock(ks, newpass, strlen(newpass), got) == KS_OK,
       "so a rebuild gets the new one");
    keystore_rebuild_commit(ks);

    /* The database's sealed key damaged: the file's record unlocks and heals it. */
    sql_exec(db, "UPDATE volume SET master_sealed = zeroblob(72)");
    ok(unlock_is(vol, newpass, master), "damaged sealed key in the database: the file unlocks");
    remove(mk);
    ok(unlock_is(vol, newpass, master), "and the database was healed from it");
    ok(exists(mk), "an unlock writes a missing masterkey file");

    /* A damaged file, a good database: the rebuild uses the database's record. */
    text = read_file(mk, &len);
    text[len / 2] ^= 1;
    write_file(mk, text, len);
    free(text);
    ok(keystore_rebuild_begin(&ks, vol) == KS_OK &&
           keystore_unlock(ks, newpass, strlen(newpass), got) == KS_OK,
       "damaged masterkey file: rebuild from the database's volume row");
    keystore_rebuild_commit(ks);
    ok(unlock_is(vol, newpass, master), "which unlocks");

    /* Nothing left: a clear refusal. */
    remove(mk);
    remove_db(vol);
    ok(keystore_rebuild_begin(&ks, vol) == KS_ERR_MISSING && ks == NULL,
       "neither file nor database: KS_ERR_MISSING");
    write_file(mk, "pixcrypt-masterkey 1\ngarbage\n", 29);
    ok(keystore_rebuild_begin(&ks, vol) == KS_ERR_CORRUPT, "a damaged file alone: KS_ERR_CORRUPT");
    ok(keystore_rebuild_begin(&ks, in_base(buf, "no-such-volume")) == KS_ERR_MISSING,
       "not a volume: KS_ERR_MISSING");
    free(old_text);
}

/* ---- threads and rate ---------------------------------------------------------------------- */

enum { NTHREADS = 4, PER_THREAD = 2000 };

struct worker {
    keystore *ks;
    int index;
    int failures;
};

static void thread_file_id(uint8_t id[KS_FILE_ID_BYTES], int thread, int i)
{
    memset(id, 0xa5, KS_FILE_ID_BYTES);
    id[0] = (uint8_t)thread;
    memcpy(id + 1, &i, sizeof i);
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    ks_file_row row, got;

    for (int i = 0; i < PER_THREAD; i++) {
        make_row(&row, (uint8_t)i, 0, (uint64_t)i);
        thread_file_id(row.file_id, w->index, i);
        if (keystore_file_put(w->ks, &row) != KS_OK)
            w->failures++;
        row.kind = 2;
        row.plain_size = (uint64_t)i * 7;
        row.version = 2;
        if (keystore_file_put(w->ks, &row) != KS_OK)
            w->failures++;
        if (i % 100 == 0 && (keystore_file_get(w->ks, row.file_id, &got) != KS_OK ||
                             keystore_file_count(w->ks) < 0))
            w->failures++;
    }
    return NULL;
}

static void test_threads(void)
{
    char vol[PATHBUF];
    struct worker workers[NTHREADS];
    pthread_t tids[NTHREADS];
    keystore *ks = NULL;
    long long before;
    int failures = 0, exact = 1;
    double t0;

    in_base(vol, "vol");
    ok(keystore_open(&ks, vol) == KS_OK, "threads: open");
    before = keystore_file_count(ks);
    t0 = now_seconds();
    for (int t = 0; t < NTHREADS; t++) {
        workers[t] = (struct worker){.ks = ks, .index = t};
        pthread_create(&tids[t], NULL, worker_main, &workers[t]);
    }
    for (int t = 0; t < NTHREADS; t++) {
        pthread_join(tids[t], NULL);
        failures += workers[t].failures;
    }
    tap_diag("%d threads: %.0f put+update pairs/s", NTHREADS,
             NTHREADS * PER_THREAD / (now_seconds() - t0));
    ok(failures == 0, "%d threads x %d pairs of puts without an error", NTHREADS, PER_THREAD);
    ok(keystore_file_count(ks) == before + NTHREADS * PER_THREAD, "final count is exact");
    for (int t = 0; t < NTHREADS; t++)
        for (int i = 0; i < PER_THREAD; i++) {
            uint8_t id[KS_FILE_ID_BYTES];
            ks_file_row got;
            thread_file_id(id, t, i);
            exact &= keystore_file_get(ks, id, &got) == KS_OK && got.version == 2 &&
                     got.plain_size == (uint64_t)i * 7 && got.kind == 2;
        }
    ok(exact, "every row has version 2 and its second size");
    keystore_close(ks);
}

static void test_rate(void)
{
    enum { N = 5000 };
    char vol[PATHBUF];
    static ks_file_row rows[N];
    keystore *ks = NULL;
    double t0, put_rate, update_rate;
    int failures = 0;

    in_base(vol, "empty");
    ok(keystore_open(&ks, vol) == KS_OK, "rate: open");
    for (int i = 0; i < N; i++)
        make_row(&rows[i], (uint8_t)i, 72, (uint64_t)i);
    t0 = now_seconds();
    for (int i = 0; i < N; i++)
        failures += keystore_file_put(ks, &rows[i]) != KS_OK;
    put_rate = N / (now_seconds() - t0);
    t0 = now_seconds();
    for (int i = 0; i < N; i++) {
        rows[i].plain_size++;
        rows[i].version++;
        failures += keystore_file_put(ks, &rows[i]) != KS_OK;
    }
    update_rate = N / (now_seconds() - t0);
    tap_diag("keystore rate, one thread: %.0f new rows/s, %.0f replaced rows/s", put_rate,
             update_rate);
    ok(failures == 0, "%d puts and %d puts over them", N, N);
    ok(put_rate > 1000 && update_rate > 1000, "thousands of puts and updates per second");
    keystore_close(ks);
}

/* ---- corrupt and hostile databases --------------------------------------------------------- */

struct variant {
    const char *name;
    const char *sql; /* applied to a copy of a good keystore, or NULL */
    int expect;
};

static const struct variant sql_variants[] = {
    {"volume row missing", "DELETE FROM volume", KS_ERR_CORRUPT},
    {"two volume rows", "INSERT INTO volume SELECT * FROM volume", KS_ERR_CORRUPT},
    {"short volume id", "UPDATE volume SET volume_id = x'00'", KS_ERR_CORRUPT},
    {"short salt", "UPDATE volume SET kdf_salt = x'0011'", KS_ERR_CORRUPT},
    {"short sealed key", "UPDATE volume SET master_sealed = substr(master_sealed, 2)",
     KS_ERR_CORRUPT},
    {"sealed key as text", "UPDATE volume SET master_sealed = 'hello'", KS_ERR_CORRUPT},
    {"unknown kdf", "UPDATE volume SET kdf_alg = 'scrypt'", KS_ERR_CORRUPT},
    {"opslimit 0", "UPDATE volume SET kdf_opslimit = 0", KS_ERR_CORRUPT},
    {"negative memlimit", "UPDATE volume SET kdf_memlimit = -1", KS_ERR_CORRUPT},
    {"format version as text", "UPDATE volume SET format_version = 'one'", KS_ERR_CORRUPT},
    {"format version 0", "UPDATE volume SET format_version = 0", KS_ERR_CORRUPT},
    {"files table dropped", "DROP TABLE files", KS_ERR_CORRUPT},
    {"volume table dropped", "DROP TABLE volume", KS_ERR_CORRUPT},
    {"column renamed", "ALTER TABLE files RENAME COLUMN nnvec_sealed TO nn", KS_ERR_CORRUPT},
    {"user_version 0", "PRAGMA user_version = 0", KS_ERR_CORRUPT},
    {"newer user_version", "PRAGMA user_version = 2", KS_ERR_VERSION},
    {"newer format version", "UPDATE volume SET format_version = 2", KS_ERR_VERSION},
};

static void install_bytes(const char *db, const uint8_t *data, size_t len)
{
    char side[PATHBUF];
    unlink(path_fmt(side, "%s-wal", db));
    unlink(path_fmt(side, "%s-shm", db));
    remove(db);
    write_file(db, data, len);
}

static int open_status(const char *vol)
{
    keystore *ks = NULL;
    int st = keystore_open(&ks, vol);
    keystore_close(ks);
    return st;
}

static void test_corrupt_variants(const uint8_t *good, size_t good_len)
{
    char vol[PATHBUF], db[PATHBUF], sql[256];
    uint8_t junk[8192];
    sqlite3 *other = NULL;

    in_base(vol, "corrupt");
    db_of(db, vol);
    install_bytes(db, good, good_len);
    ok(open_status(vol) == KS_OK, "the good copy opens");

    install_bytes(db, good, 0);
    ok(open_status(vol) == KS_ERR_CORRUPT, "empty file: corrupt");
    randombytes_buf(junk, sizeof junk);
    install_bytes(db, junk, sizeof junk);
    ok(open_status(vol) == KS_ERR_CORRUPT, "random bytes: corrupt");
    memcpy(junk, good, 100); /* a valid SQLite header over random pages */
    install_bytes(db, junk, sizeof junk);
    ok(open_status(vol) == KS_ERR_CORRUPT, "SQLite header over random pages: corrupt");
    static const size_t cuts[] = {16, 50, 100, 512, 4096, 4096 + 100};
    for (size_t i = 0; i < sizeof cuts / sizeof *cuts; i++) {
        install_bytes(db, good, cuts[i] < good_len ? cuts[i] : good_len / 2);
        ok(open_status(vol) == KS_ERR_CORRUPT, "truncated to %zu bytes: corrupt", cuts[i]);
    }

    install_bytes(db, good, 0);
    if (sqlite3_open(db, &other) == SQLITE_OK)
        sqlite3_exec(other, "CREATE TABLE t(x); PRAGMA user_version = 1;", NULL, NULL, NULL);
    sqlite3_close(other);
    ok(open_status(vol) == KS_ERR_CORRUPT, "a database with another schema: corrupt");

    for (size_t i = 0; i < sizeof sql_variants / sizeof *sql_variants; i++) {
        install_bytes(db, good, good_len);
        snprintf(sql, sizeof sql, "PRAGMA ignore_check_constraints = ON; %s", sql_variants[i].sql);
        int rc = sql_exec(db, sql);
        int st = open_status(vol);
        ok(rc == SQLITE_OK && st == sql_variants[i].expect, "%s: %s (got %d)", sql_variants[i].name,
           keystore_strerror(sql_variants[i].expect), st);
    }

    install_bytes(db, good, 0);
    remove(db);
    mkdir(db, 0700);
    ok(open_status(vol) == KS_ERR_CORRUPT, "keystore.db is a directory: corrupt");
    rmdir(db);
}

/* Random byte damage: any status is fine, a crash or a sanitizer report is not. */
static void test_random_damage(const uint8_t *good, size_t good_len)
{
    enum { ROUNDS = 300 };
    char vol[PATHBUF], db[PATHBUF];
    uint8_t *copy = malloc(good_len);
    unsigned seed = (unsigned)time(NULL);
    int opened = 0;

    in_base(vol, "corrupt");
    db_of(db, vol);
    srand(seed);
    tap_diag("random damage seed %u", seed);
    for (int r = 0; r < ROUNDS; r++) {
        keystore *ks = NULL;
        ks_file_row row;
        ks_volume_info info;
        memcpy(copy, good, good_len);
        for (int k = 0, n = 1 + rand() % 8; k < n; k++)
            copy[(size_t)rand() % good_len] ^= (uint8_t)(1 + rand() % 255);
        install_bytes(db, copy, good_len);
        if (keystore_open(&ks, vol) != KS_OK)
            continue;
        opened++;
        make_row(&row, 1, 72, 1);
        keystore_volume_info(ks, &info);
        keystore_file_count(ks);
        keystore_file_put(ks, &row);
        count_rows(ks);
        keystore_check(ks);
        keystore_file_get(ks, row.file_id, &row);
        keystore_file_delete(ks, row.file_id);
        keystore_close(ks);
    }
    tap_diag("%d of %d damaged keystores still opened", opened, ROUNDS);
    ok(1, "%d randomly damaged keystores handled without a crash", ROUNDS);
    free(copy);
}

static void test_corrupt(void)
{
    char vol[PATHBUF], db[PATHBUF], buf[PATHBUF];
    ks_file_row row;
    keystore *ks = NULL;
    uint8_t *good;
    size_t good_len = 0;

    /* A good keystore with enough rows to span several pages. */
    in_base(vol, "pristine");
    keystore_create(vol, pass, strlen(pass), LEVEL, KS_PROFILE_DEFAULT, NULL);
    keystore_open(&ks, vol);
    for (int i = 0; i < 200; i++) {
        make_row(&row, (uint8_t)i, 72, (uint64_t)i);
        keystore_file_put(ks, &row);
    }
    keystore_close(ks);
    good = read_file(db_of(db, vol), &good_len);
    ok(good != NULL && good_len > 4 * 4096, "a pristine keystore of %zu bytes", good_len);
    ok(!exists(in_base(buf, "pristine/" KS_DIR "/" KS_DB_NAME "-wal")),
       "close leaves no write-ahead log behind");
    if (good == NULL)
        return;
    mkdir(in_base(buf, "corrupt"), 0700);
    mkdir(in_base(buf, "corrupt/" KS_DIR), 0700);
    test_corrupt_variants(good, good_len);
    test_random_damage(good, good_len);
    free(good);
}

/* ---- read-only storage --------------------------------------------------------------------- */

enum {
    RO_OPEN = 1,
    RO_UNLOCK = 2,
    RO_GET = 4,
    RO_PUT = 8,
    RO_FOREACH = 16,
    RO_DELETE = 32,
    RO_REWRAP = 64,
    RO_COUNT = 128,
    RO_ALL = 255
};

/* In a child that cannot write the cipher dir: everything that reads works. */
static int readonly_checks(const char *vol, const uint8_t master[KS_MASTER_KEY_BYTES],
                           const ks_file_row *row)
{
    uint8_t got[KS_MASTER_KEY_BYTES];
    ks_file_row r;
    keystore *ks = NULL;
    int passed = 0;

    if (keystore_open(&ks, vol) != KS_OK)
        return 0;
    passed |= RO_OPEN;
    if (keystore_unlock(ks, pass, strlen(pass), got) == KS_OK &&
        memcmp(got, master, sizeof got) == 0)
        passed |= RO_UNLOCK;
    if (keystore_file_get(ks, row->file_id, &r) == KS_OK && r.plain_size == row->plain_size)
        passed |= RO_GET;
    if (keystore_file_put(ks, row) == KS_ERR_IO)
        passed |= RO_PUT;
    if (count_rows(ks) == 1)
        passed |= RO_FOREACH;
    if (keystore_file_delete(ks, row->file_id) == KS_ERR_IO)
        passed |= RO_DELETE;
    if (keystore_rewrap(ks, master, newpass, strlen(newpass), LEVEL) == KS_ERR_IO)
        passed |= RO_REWRAP;
    if (keystore_file_count(ks) == 1)
        passed |= RO_COUNT;
    keystore_close(ks);
    return passed;
}

static void test_readonly(void)
{
    char vol[PATHBUF], meta[PATHBUF], db[PATHBUF];
    uint8_t master[KS_MASTER_KEY_BYTES];
    ks_file_row row;
    keystore *ks = NULL;
    int status = 0, passed = 0;
    pid_t pid;

    in_base(vol, "readonly");
    meta_of(meta, vol);
    db_of(db, vol);
    keystore_create(vol, pass, strlen(pass), LEVEL, KS_PROFILE_DEFAULT, master);
    keystore_open(&ks, vol);
    make_row(&row, 7, 0, 777);
    keystore_file_put(ks, &row);
    keystore_close(ks);

    /* Root writes anywhere, so the child drops to nobody; mode bits then make it read-only. */
    chmod(base, 0755);
    chmod(vol, 0755);
    chmod(meta, 0555);
    chmod(db, 0444);
    fflush(stdout);
    pid = fork();
    if (pid == 0) {
        if (geteuid() == 0 && (setgid(NOBODY) != 0 || setuid(NOBODY) != 0))
            _exit(0);
        _exit(readonly_checks(vol, master, &row)); /* _exit: no leak check as another user */
    }
    if (pid > 0 && waitpid(pid, &status, 0) == pid && WIFEXITED(status))
        passed = WEXITSTATUS(status);
    chmod(meta, 0700);
    chmod(db, 0600);
    chmod(base, 0700);

    ok(passed & RO_OPEN, "read-only storage: open");
    ok(passed & RO_UNLOCK, "read-only storage: unlock gives the master key");
    ok(passed & RO_GET, "read-only storage: get");
    ok(passed & RO_COUNT, "read-only storage: count");
    ok(passed & RO_FOREACH, "read-only storage: rows listed");
    ok((passed & (RO_PUT | RO_DELETE)) == (RO_PUT | RO_DELETE),
       "read-only storage: put and delete fail with KS_ERR_IO");
    ok(passed & RO_REWRAP, "read-only storage: rewrap fails with KS_ERR_IO");
    ok(count_entries(meta) == 2, "read-only open created no files");
}

/* ---- messages ------------------------------------------------------------------------------ */

static void test_strerror(void)
{
    static const int codes[] = {KS_OK,          KS_ERR_IO,      KS_ERR_EXISTS,
                                KS_ERR_MISSING, KS_ERR_CORRUPT, KS_ERR_PASSPHRASE,
                                KS_ERR_VERSION, KS_ERR_NOMEM,   KS_ERR_NOTFOUND};
    const size_t n = sizeof codes / sizeof *codes;
    int distinct = 1;

    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < i; j++)
            distinct &= strcmp(keystore_strerror(codes[i]), keystore_strerror(codes[j])) != 0;
    ok(distinct, "every status has its own message");
    ok(strcmp(keystore_strerror(KS_ERR_PASSPHRASE), "wrong passphrase") == 0,
       "wrong passphrase message");
    ok(strstr(keystore_strerror(KS_ERR_MISSING), ".pixcrypt/keystore.db") != NULL,
       "missing keystore message names the file");
    ok(keystore_strerror(-1000) != NULL, "unknown status has a message");
    keystore_close(NULL);
    ok(1, "closing NULL is a no-op");
}

int main(void)
{
    if (sodium_init() < 0 || mkdtemp(base) == NULL) {
        printf("Bail out! cannot set up\n");
        return 1;
    }
    test_round_trip();
    test_profile();
    test_sealed_key_bound_to_volume();
    test_create_refusals();
    test_open_missing();
    test_rewrap();
    test_file_rows();
    test_foreach();
    test_masterkey();
    test_threads();
    test_rate();
    test_corrupt();
    test_readonly();
    test_strerror();
    remove_tree(base);
    return tap_done();
}

/* Places: where each stored file is (keystore.h, "places").  A row is (path, file id,
 * MAC); the MAC is BLAKE2b-256 keyed with the place key over file id || path, so that
 * rows cannot be made or moved by whoever can write the database but has no key.  The
 * place key is derived from the master key (crypto_kdf, id 1, context "pxcplace"). */
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "keystore/keystore.h"
#include "keystore/keystore_int.h"

#define PLACE_MAC_BYTES 32
#define PLACE_KDF_ID 1
#define PLACE_KDF_CONTEXT "pxcplace"

_Static_assert(sizeof(((keystore *)0)->place_key) == crypto_kdf_KEYBYTES, "place key size");
_Static_assert(crypto_kdf_KEYBYTES == KS_MASTER_KEY_BYTES, "derived from the master key");

/* Rows at `path` itself and everything under `path/` ('0' follows '/' in byte order). */
#define TREE_WHERE "(path = ?1 OR (path >= ?1 || '/' AND path < ?1 || '0'))"

static void place_mac(const keystore *ks, uint8_t mac[PLACE_MAC_BYTES],
                      const uint8_t id[KS_FILE_ID_BYTES], const char *path)
{
    crypto_generichash_state h;
    crypto_generichash_init(&h, ks->place_key, sizeof ks->place_key, PLACE_MAC_BYTES);
    crypto_generichash_update(&h, id, KS_FILE_ID_BYTES);
    crypto_generichash_update(&h, (const unsigned char *)path, strlen(path));
    crypto_generichash_final(&h, mac, PLACE_MAC_BYTES);
}

static int row_authentic(const keystore *ks, sqlite3_stmt *stmt, int path_col, int id_col,
                         int mac_col)
{
    const char *path = (const char *)sqlite3_column_text(stmt, path_col);
    const void *id = sqlite3_column_blob(stmt, id_col), *mac = sqlite3_column_blob(stmt, mac_col);
    uint8_t want[PLACE_MAC_BYTES];
    if (!path || !id || !mac || sqlite3_column_bytes(stmt, id_col) != KS_FILE_ID_BYTES ||
        sqlite3_column_bytes(stmt, mac_col) != PLACE_MAC_BYTES)
        return 0;
    place_mac(ks, want, id, path);
    return sodium_memcmp(want, mac, PLACE_MAC_BYTES) == 0;
}

/* The statements every create, unlink and lookup runs, prepared once. */
enum place_stmt { PS_HAS, PS_INSERT, PS_DROP_TREE, PS_DROP_ONE, PS_COUNT_ };
_Static_assert(PS_COUNT_ == sizeof(((keystore *)0)->place_stmt) / sizeof(sqlite3_stmt *),
               "one slot per statement");
static const char *const place_sql[PS_COUNT_] = {
    [PS_HAS] = "SELECT path, file_id, mac FROM places WHERE path = ?1 AND file_id = ?2",
    [PS_INSERT] = "INSERT OR IGNORE INTO places (path, file_id, mac) VALUES (?1, ?2, ?3)",
    [PS_DROP_TREE] = "DELETE FROM places WHERE " TREE_WHERE,
    [PS_DROP_ONE] = "DELETE FROM places WHERE path = ?1 AND file_id = ?2",
};

/* The cached statement `which`, or NULL.  Lock held. */
static sqlite3_stmt *cached(keystore *ks, enum place_stmt which)
{
    if (ks->place_stmt[which] == NULL &&
        sqlite3_prepare_v3(ks->db, place_sql[which], -1, SQLITE_PREPARE_PERSISTENT,
                           &ks->place_stmt[which], NULL) != SQLITE_OK)
        ks->place_stmt[which] = NULL;
    return ks->place_stmt[which];
}

static int prepare(keystore *ks, const char *sql, sqlite3_stmt **stmt)
{
    int rc = sqlite3_prepare_v2(ks->db, sql, -1, stmt, NULL);
    return rc == SQLITE_OK             ? KS_OK
           : ks_status_from_sqlite(rc) ? ks_status_from_sqlite(rc)
                                       : KS_ERR_IO;
}

/* Whether the places tables exist (a read-only keystore from before them has none). */
static int have_tables(keystore *ks)
{
    sqlite3_stmt *stmt = NULL;
    int found = 0;
    if (sqlite3_prepare_v2(ks->db, "SELECT count(*) FROM sqlite_master WHERE name = 'places'", -1,
                           &stmt, NULL) == SQLITE_OK &&
        sqlite3_step(stmt) == SQLITE_ROW)
        found = sqlite3_column_int(stmt, 0) > 0;
    sqlite3_finalize(stmt);
    return found;
}

int keystore_places_key(keystore *ks, const uint8_t master[KS_MASTER_KEY_BYTES])
{
    int st = KS_OK;
    if (ks == NULL || master == NULL)
        return KS_ERR_IO;
    pthread_mutex_lock(&ks->lock);
    crypto_kdf_derive_from_key(ks->place_key, sizeof ks->place_key, PLACE_KDF_ID, PLACE_KDF_CONTEXT,
                               master);
    ks->have_place_key = 1;
    if (!ks->readonly && !have_tables(ks))
        st = ks_exec(ks->db, KS_PLACES_TABLES_SQL);
    pthread_mutex_unlock(&ks->lock);
    return st;
}

int keystore_places_complete(keystore *ks)
{
    sqlite3_stmt *stmt = NULL;
    int complete = 0;
    if (ks == NULL)
        return KS_ERR_IO;
    pthread_mutex_lock(&ks->lock);
    if (have_tables(ks) &&
        sqlite3_prepare_v2(ks->db, "SELECT max(complete) FROM places_state", -1, &stmt, NULL) ==
            SQLITE_OK &&
        sqlite3_step(stmt) == SQLITE_ROW)
        complete = sqlite3_column_int(stmt, 0) == 1;
    sqlite3_finalize(stmt);
    pthread_mutex_unlock(&ks->lock);
    return complete;
}

long long keystore_places_count(keystore *ks)
{
    sqlite3_stmt *stmt = NULL;
    long long n = 0;
    if (ks == NULL)
        return KS_ERR_IO;
    pthread_mutex_lock(&ks->lock);
    if (have_tables(ks)) {
        n = KS_ERR_IO;
        if (sqlite3_prepare_v2(ks->db, "SELECT count(*) FROM places", -1, &stmt, NULL) ==
                SQLITE_OK &&
            sqlite3_step(stmt) == SQLITE_ROW)
            n = sqlite3_column_int64(stmt, 0);
        sqlite3_finalize(stmt);
    }
    pthread_mutex_unlock(&ks->lock);
    return n;
}

int keystore_places_set_complete(keystore *ks)
{
    int st;
    if (ks == NULL || ks->readonly)
        return KS_ERR_IO;
    pthread_mutex_lock(&ks->lock);
    st = ks_exec(ks->db, "BEGIN IMMEDIATE; DELETE FROM places_state;"
                         " INSERT INTO places_state (complete) VALUES (1); COMMIT;");
    if (st != KS_OK)
        (void)ks_exec(ks->db, "ROLLBACK;");
    pthread_mutex_unlock(&ks->lock);
    return st;
}

/* INSERT OR IGNORE of one row; *added (if given) says whether it is new.  Lock held. */
static int insert_place(keystore *ks, const uint8_t id[KS_FILE_ID_BYTES], const char *path,
                        int *added)
{
    sqlite3_stmt *stmt = cached(ks, PS_INSERT);
    uint8_t mac[PLACE_MAC_BYTES];
    if (stmt == NULL)
        return KS_ERR_IO;
    place_mac(ks, mac, id, path);
    if (sqlite3_bind_text(stmt, 1, path, -1, SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_bind_blob(stmt, 2, id, KS_FILE_ID_BYTES, SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_bind_blob(stmt, 3, mac, sizeof mac, SQLITE_STATIC) != SQLITE_OK) {
        sqlite3_clear_bindings(stmt);
        return KS_ERR_IO;
    }
    int st = ks_step_done(stmt);
    if (st == KS_OK && added)
        *added = sqlite3_changes(ks->db) > 0;
    return st;
}

/* Runs the cached statement `which` with ?1 = text a and, if given, ?2 = blob id.  Lock
 * held. */
static int run_with(keystore *ks, enum place_stmt which, const char *a, const uint8_t *id)
{
    sqlite3_stmt *stmt = cached(ks, which);
    if (stmt == NULL)
        return KS_ERR_IO;
    if (sqlite3_bind_text(stmt, 1, a, -1, SQLITE_STATIC) != SQLITE_OK ||
        (id && sqlite3_bind_blob(stmt, 2, id, KS_FILE_ID_BYTES, SQLITE_STATIC) != SQLITE_OK)) {
        sqlite3_clear_bindings(stmt);
        return KS_ERR_IO;
    }
    return ks_step_done(stmt);
}

static int writable(const keystore *ks)
{
    return ks != NULL && !ks->readonly && ks->have_place_key;
}

int keystore_place_add(keystore *ks, const uint8_t id[KS_FILE_ID_BYTES], const char *path)
{
    int st;
    if (!writable(ks) || id == NULL || path == NULL)
        return KS_ERR_IO;
    pthread_mutex_lock(&ks->lock);
    st = insert_place(ks, id, path, NULL);
    pthread_mutex_unlock(&ks->lock);
    return st;
}

int keystore_place_drop(keystore *ks, const char *path)
{
    int st;
    if (!writable(ks) || path == NULL)
        return KS_ERR_IO;
    pthread_mutex_lock(&ks->lock);
    st = run_with(ks, PS_DROP_TREE, path, NULL);
    pthread_mutex_unlock(&ks->lock);
    return st;
}

int keystore_place_drop_one(keystore *ks, const uint8_t id[KS_FILE_ID_BYTES], const char *path)
{
    int st;
    if (ks == NULL || ks->readonly || id == NULL || path == NULL)
        return KS_ERR_IO;
    pthread_mutex_lock(&ks->lock);
    st = run_with(ks, PS_DROP_ONE, path, id);
    pthread_mutex_unlock(&ks->lock);
    return st;
}

int keystore_place_has(keystore *ks, const uint8_t id[KS_FILE_ID_BYTES], const char *path)
{
    int rc, found = 0;
    if (ks == NULL || id == NULL || path == NULL || !ks->have_place_key)
        return KS_ERR_IO;
    pthread_mutex_lock(&ks->lock);
    sqlite3_stmt *stmt = cached(ks, PS_HAS);
    if (stmt == NULL) {
        found = have_tables(ks) ? KS_ERR_IO : 0; /* a read-only keystore from before places */
        pthread_mutex_unlock(&ks->lock);
        return found;
    }
    rc = sqlite3_bind_text(stmt, 1, path, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_blob(stmt, 2, id, KS_FILE_ID_BYTES, SQLITE_STATIC);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(stmt);
    if (rc == SQLITE_ROW)
        found = row_authentic(ks, stmt, 0, 1, 2);
    else if (rc != SQLITE_DONE)
        found = ks_status_from_sqlite(rc) ? ks_status_from_sqlite(rc) : KS_ERR_IO;
    sqlite3_reset(stmt);
    sqlite3_clear_bindings(stmt);
    pthread_mutex_unlock(&ks->lock);
    return found;
}

void keystore_places_free(char **paths, size_t n)
{
    for (size_t i = 0; paths && i < n; i++)
        free(paths[i]);
    free(paths);
}

int keystore_places_of(keystore *ks, const uint8_t id[KS_FILE_ID_BYTES], char ***paths_out,
                       size_t *n_out, size_t *forged_out)
{
    sqlite3_stmt *stmt = NULL;
    char **paths = NULL;
    size_t n = 0, cap = 0, forged = 0;
    int rc, st;

    *paths_out = NULL;
    *n_out = 0;
    if (forged_out)
        *forged_out = 0;
    if (ks == NULL || id == NULL || !ks->have_place_key)
        return KS_ERR_IO;
    pthread_mutex_lock(&ks->lock);
    if (!have_tables(ks)) {
        pthread_mutex_unlock(&ks->lock);
        return KS_OK;
    }
    st = prepare(ks, "SELECT path, file_id, mac FROM places WHERE file_id = ?1", &stmt);
    if (st == KS_OK && sqlite3_bind_blob(stmt, 1, id, KS_FILE_ID_BYTES, SQLITE_STATIC) != SQLITE_OK)
        st = KS_ERR_IO;
    while (st == KS_OK && (rc = sqlite3_step(stmt)) == SQLITE_ROW) {
        if (!row_authentic(ks, stmt, 0, 1, 2)) {
            forged++;
            continue;
        }
        if (n == cap) {
            char **more = realloc(paths, (cap = cap ? 2 * cap : 4) * sizeof *paths);
            if (!more) {
                st = KS_ERR_NOMEM;
                break;
            }
            paths = more;
        }
        if ((paths[n] = strdup((const char *)sqlite3_column_text(stmt, 0))) == NULL)
            st = KS_ERR_NOMEM;
        else
            n++;
    }
    if (st == KS_OK && rc != SQLITE_DONE)
        st = ks_status_from_sqlite(rc) ? ks_status_from_sqlite(rc) : KS_ERR_IO;
    sqlite3_finalize(stmt);
    pthread_mutex_unlock(&ks->lock);
    if (st != KS_OK) {
        keystore_places_free(paths, n);
        return st;
    }
    *paths_out = paths;
    *n_out = n;
    if (forged_out)
        *forged_out = forged;
    return KS_OK;
}

int keystore_place_foreach(keystore *ks,
                           int (*fn)(const char *path, const uint8_t id[KS_FILE_ID_BYTES],
                                     int authentic, void *arg),
                           void *arg)
{
    sqlite3_stmt *stmt = NULL;
    int rc = SQLITE_DONE, st;
    if (ks == NULL || fn == NULL || !ks->have_place_key)
        return KS_ERR_IO;
    pthread_mutex_lock(&ks->lock);
    if (!have_tables(ks)) {
        pthread_mutex_unlock(&ks->lock);
        return KS_OK;
    }
    st = prepare(ks, "SELECT path, file_id, mac FROM places ORDER BY path", &stmt);
    while (st == KS_OK && (rc = sqlite3_step(stmt)) == SQLITE_ROW) {
        const char *path = (const char *)sqlite3_column_text(stmt, 0);
        const void *id = sqlite3_column_blob(stmt, 1);
        if (!path || !id || sqlite3_column_bytes(stmt, 1) != KS_FILE_ID_BYTES)
            continue; /* the table's CHECK keeps these out */
        if (fn(path, id, row_authentic(ks, stmt, 0, 1, 2), arg) != 0) {
            rc = SQLITE_DONE;
            break;
        }
    }
    if (st == KS_OK && rc != SQLITE_DONE)
        st = ks_status_from_sqlite(rc) ? ks_status_from_sqlite(rc) : KS_ERR_IO;
    sqlite3_finalize(stmt);
    pthread_mutex_unlock(&ks->lock);
    return st;
}

/* ---- a file's first and last name ----------------------------------------------------------- */

int keystore_file_create(keystore *ks, const ks_file_row *row, const char *path)
{
    int st;
    if (!writable(ks) || row == NULL || path == NULL || !ks_row_lengths_ok(row))
        return KS_ERR_IO;
    pthread_mutex_lock(&ks->lock);
    st = ks_exec(ks->db, "BEGIN IMMEDIATE;");
    if (st == KS_OK) {
        sqlite3_stmt *put = ks->stmt[ST_FILE_PUT];
        st = ks_bind_file_row(put, row, (long long)time(NULL));
        st = st == KS_OK ? ks_step_done(put) : (sqlite3_clear_bindings(put), st);
        if (st == KS_OK)
            st = insert_place(ks, row->file_id, path, NULL);
        st = st == KS_OK ? ks_exec(ks->db, "COMMIT;") : st;
        if (st != KS_OK)
            (void)ks_exec(ks->db, "ROLLBACK;");
    }
    pthread_mutex_unlock(&ks->lock);
    return st;
}

int keystore_file_forget(keystore *ks, const uint8_t *file_id, const char *path)
{
    int st;
    if (!writable(ks) || path == NULL)
        return KS_ERR_IO;
    pthread_mutex_lock(&ks->lock);
    st = ks_exec(ks->db, "BEGIN IMMEDIATE;");
    if (st == KS_OK) {
        st = run_with(ks, PS_DROP_TREE, path, NULL);
        if (st == KS_OK && file_id) {
            sqlite3_stmt *del = ks->stmt[ST_FILE_DELETE];
            st = sqlite3_bind_blob(del, 1, file_id, KS_FILE_ID_BYTES, SQLITE_STATIC) == SQLITE_OK
                     ? ks_step_done(del)
                     : KS_ERR_IO;
        }
        st = st == KS_OK ? ks_exec(ks->db, "COMMIT;") : st;
        if (st != KS_OK)
            (void)ks_exec(ks->db, "ROLLBACK;");
    }
    pthread_mutex_unlock(&ks->lock);
    return st;
}

/* ---- moves --------------------------------------------------------------------------------- */

typedef struct place_row {
    uint8_t id[KS_FILE_ID_BYTES];
    char *path; /* full path */
} place_row;

typedef struct place_rows {
    place_row *v;
    size_t n, cap;
} place_rows;

struct ks_place_move {
    char *from, *to;
    int exchange;
    place_rows from_rows, to_rows; /* the authentic rows of each tree at begin */
    place_rows added;              /* rows begin inserted, dropped again if the move fails */
};

static int rows_push(place_rows *r, const uint8_t id[KS_FILE_ID_BYTES], const char *path)
{
    if (r->n == r->cap) {
        place_row *more = realloc(r->v, (r->cap = r->cap ? 2 * r->cap : 8) * sizeof *more);
        if (!more)
            return KS_ERR_NOMEM;
        r->v = more;
    }
    if ((r->v[r->n].path = strdup(path)) == NULL)
        return KS_ERR_NOMEM;
    memcpy(r->v[r->n].id, id, KS_FILE_ID_BYTES);
    r->n++;
    return KS_OK;
}

static void rows_free(place_rows *r)
{
    for (size_t i = 0; i < r->n; i++)
        free(r->v[i].path);
    free(r->v);
    memset(r, 0, sizeof *r);
}

/* The authentic rows of the tree at `root`.  Lock held. */
static int read_tree(keystore *ks, const char *root, place_rows *out)
{
    sqlite3_stmt *stmt = NULL;
    int rc = SQLITE_DONE,
        st = prepare(ks, "SELECT path, file_id, mac FROM places WHERE " TREE_WHERE, &stmt);
    if (st == KS_OK && sqlite3_bind_text(stmt, 1, root, -1, SQLITE_STATIC) != SQLITE_OK)
        st = KS_ERR_IO;
    while (st == KS_OK && (rc = sqlite3_step(stmt)) == SQLITE_ROW)
        if (row_authentic(ks, stmt, 0, 1, 2))
            st = rows_push(out, sqlite3_column_blob(stmt, 1),
                           (const char *)sqlite3_column_text(stmt, 0));
    if (st == KS_OK && rc != SQLITE_DONE)
        st = ks_status_from_sqlite(rc) ? ks_status_from_sqlite(rc) : KS_ERR_IO;
    sqlite3_finalize(stmt);
    return st;
}

/* A row's path with the tree root `from` replaced by `to`. */
static char *moved_path(const char *path, const char *from, const char *to)
{
    size_t fl = strlen(from), tl = strlen(to), rest = strlen(path) - fl;
    char *p = malloc(tl + rest + 1);
    if (p) {
        memcpy(p, to, tl);
        memcpy(p + tl, path + fl, rest + 1);
    }
    return p;
}

/* Inserts rows' copies moved from `from` to `to`; with `added`, records the new ones. */
static int insert_moved(keystore *ks, const place_rows *rows, const char *from, const char *to,
                        place_rows *added)
{
    int st = KS_OK;
    for (size_t i = 0; st == KS_OK && i < rows->n; i++) {
        char *p = moved_path(rows->v[i].path, from, to);
        int fresh = 0;
        st = p ? insert_place(ks, rows->v[i].id, p, &fresh) : KS_ERR_NOMEM;
        if (st == KS_OK && fresh && added)
            st = rows_push(added, rows->v[i].id, p);
        free(p);
    }
    return st;
}

static void move_free(ks_place_move *m)
{
    if (!m)
        return;
    free(m->from);
    free(m->to);
    rows_free(&m->from_rows);
    rows_free(&m->to_rows);
    rows_free(&m->added);
    free(m);
}

/* Runs fn in one transaction: committed if it returns KS_OK, else rolled back. */
static int in_transaction(keystore *ks, int (*fn)(keystore *, ks_place_move *), ks_place_move *m)
{
    int st = ks_exec(ks->db, "BEGIN IMMEDIATE;");
    if (st != KS_OK)
        return st;
    st = fn(ks, m);
    if (st == KS_OK)
        st = ks_exec(ks->db, "COMMIT;");
    if (st != KS_OK)
        (void)ks_exec(ks->db, "ROLLBACK;");
    return st;
}

static int begin_body(keystore *ks, ks_place_move *m)
{
    int st = read_tree(ks, m->from, &m->from_rows);
    if (st == KS_OK && m->exchange)
        st = read_tree(ks, m->to, &m->to_rows);
    if (st == KS_OK)
        st = insert_moved(ks, &m->from_rows, m->from, m->to, &m->added);
    if (st == KS_OK && m->exchange)
        st = insert_moved(ks, &m->to_rows, m->to, m->from, &m->added);
    return st;
}

static int done_body(keystore *ks, ks_place_move *m)
{
    int st = run_with(ks, PS_DROP_TREE, m->from, NULL);
    if (st == KS_OK)
        st = run_with(ks, PS_DROP_TREE, m->to, NULL);
    if (st == KS_OK)
        st = insert_moved(ks, &m->from_rows, m->from, m->to, NULL);
    if (st == KS_OK && m->exchange)
        st = insert_moved(ks, &m->to_rows, m->to, m->from, NULL);
    return st;
}

static int undo_body(keystore *ks, ks_place_move *m)
{
    int st = KS_OK;
    for (size_t i = 0; st == KS_OK && i < m->added.n; i++)
        st = run_with(ks, PS_DROP_ONE, m->added.v[i].path, m->added.v[i].id);
    return st;
}

int keystore_place_move_begin(keystore *ks, const char *from, const char *to, int exchange,
                              ks_place_move **out)
{
    ks_place_move *m;
    int st;
    *out = NULL;
    if (!writable(ks) || from == NULL || to == NULL)
        return KS_ERR_IO;
    if ((m = calloc(1, sizeof *m)) == NULL || (m->from = strdup(from)) == NULL ||
        (m->to = strdup(to)) == NULL) {
        move_free(m);
        return KS_ERR_NOMEM;
    }
    m->exchange = exchange;
    pthread_mutex_lock(&ks->lock);
    st = have_tables(ks) ? in_transaction(ks, begin_body, m) : KS_ERR_IO;
    pthread_mutex_unlock(&ks->lock);
    if (st != KS_OK) {
        move_free(m);
        return st;
    }
    *out = m;
    return KS_OK;
}

int keystore_place_move_end(keystore *ks, ks_place_move *m, int done)
{
    int st;
    if (m == NULL)
        return KS_OK;
    if (ks == NULL) {
        move_free(m);
        return KS_ERR_IO;
    }
    pthread_mutex_lock(&ks->lock);
    st = in_transaction(ks, done ? done_body : undo_body, m);
    pthread_mutex_unlock(&ks->lock);
    move_free(m);
    return st;
}

/* What the keystore's source files share: the handle and a few SQLite helpers.  Not for
 * use outside keystore/. */
#ifndef PXC_KEYSTORE_INT_H
#define PXC_KEYSTORE_INT_H

#include <limits.h>
#include <pthread.h>
#include <sqlite3.h>

#include "keystore/keystore.h"

/* Statements prepared once at open; preparing them also checks that the tables and
 * columns are there. */
enum ks_stmt_id {
    ST_VOLUME_GET,
    ST_VOLUME_RESEAL,
    ST_FILE_PUT,
    ST_FILE_GET,
    ST_FILE_DELETE,
    ST_FILE_COUNT,
    ST_COUNT_
};

struct keystore {
    pthread_mutex_t lock; /* guards db and every statement */
    sqlite3 *db;
    sqlite3_stmt *stmt[ST_COUNT_];
    int readonly;       /* the cipher dir cannot be written: every write fails with KS_ERR_IO */
    char dir[PATH_MAX]; /* CIPHERDIR/.pixcrypt, where the masterkey file is */
    char *rebuild_tmp;  /* a rebuild's new database, until keystore_rebuild_commit */
    /* places (keystore/places.c): the key their MACs are made with, once set */
    int have_place_key;
    unsigned char place_key[32];
    /* the hot statements of places.c (KS_PLACE_STMTS of them), prepared on first use:
     * older keystores get the table only once the place key is set */
    sqlite3_stmt *place_stmt[4];
};

/* An SQLite result code as a ks_status. */
int ks_status_from_sqlite(int rc);
/* Runs a bound statement that returns no rows, then resets it for reuse. */
int ks_step_done(sqlite3_stmt *stmt);
/* Runs SQL text (no results). */
int ks_exec(sqlite3 *db, const char *sql);
/* A file row's blob lengths fit; binding it to ST_FILE_PUT. */
int ks_row_lengths_ok(const ks_file_row *row);
int ks_bind_file_row(sqlite3_stmt *stmt, const ks_file_row *row, long long now);

/* The places tables, for the schema of new keystores and for older ones (created on
 * their first unlock with a key). */
#define KS_PLACES_TABLES_SQL                                                                       \
    "CREATE TABLE IF NOT EXISTS places ("                                                          \
    "  path TEXT NOT NULL,"                                                                        \
    "  file_id BLOB NOT NULL CHECK (length(file_id) = 16),"                                        \
    "  mac BLOB NOT NULL CHECK (length(mac) = 32),"                                                \
    "  PRIMARY KEY (path, file_id)"                                                                \
    ") WITHOUT ROWID;"                                                                             \
    "CREATE INDEX IF NOT EXISTS places_by_file ON places (file_id);"                               \
    "CREATE TABLE IF NOT EXISTS places_state ("                                                    \
    "  complete INTEGER NOT NULL"                                                                  \
    ");"

#endif

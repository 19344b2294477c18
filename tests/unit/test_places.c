/* The keystore's places (keystore.h, "places"): rows bound to their file id and path by a
 * MAC, renames of files and whole trees with and without exchange, a failed rename taken
 * back, drops, the learning state, and tables added to a keystore made without them. */
#include <sodium.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "keystore/keystore.h"
#include "tap.h"

static char base[] = "/tmp/pxc-places-XXXXXX";
static const char pass[] = "correct horse battery staple";
static uint8_t master[KS_MASTER_KEY_BYTES];

static void id_of(uint8_t id[KS_FILE_ID_BYTES], int n)
{
    memset(id, 0, KS_FILE_ID_BYTES);
    id[0] = (uint8_t)n;
    id[15] = 0xa5;
}

static int has(keystore *ks, int n, const char *path)
{
    uint8_t id[KS_FILE_ID_BYTES];
    id_of(id, n);
    return keystore_place_has(ks, id, path);
}

static int add(keystore *ks, int n, const char *path)
{
    uint8_t id[KS_FILE_ID_BYTES];
    id_of(id, n);
    return keystore_place_add(ks, id, path);
}

static int count_cb(const char *path, const uint8_t *id, int authentic, void *arg)
{
    (void)path, (void)id;
    int *c = arg;
    c[0]++;
    c[1] += authentic;
    return 0;
}

/* Rows in the table, and how many authenticate. */
static int rows(keystore *ks, int *authentic)
{
    int c[2] = {0, 0};
    keystore_place_foreach(ks, count_cb, c);
    if (authentic)
        *authentic = c[1];
    return c[0];
}

static int sql(const char *vol, const char *q)
{
    char db[512];
    sqlite3 *h;
    snprintf(db, sizeof db, "%s/" KS_DIR "/" KS_DB_NAME, vol);
    int rc = sqlite3_open(db, &h);
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(h, q, NULL, NULL, NULL);
    sqlite3_close(h);
    return rc == SQLITE_OK ? 0 : -1;
}

static keystore *new_volume(const char *name, char *vol, size_t cap)
{
    keystore *ks = NULL;
    snprintf(vol, cap, "%s/%s", base, name);
    if (keystore_create(vol, pass, strlen(pass), KS_KDF_INTERACTIVE, KS_PROFILE_DEFAULT, master) !=
            KS_OK ||
        keystore_open(&ks, vol) != KS_OK)
        return NULL;
    return ks;
}

static void test_rows(void)
{
    char vol[512];
    keystore *ks = new_volume("rows", vol, sizeof vol);
    ok(ks != NULL, "a new volume");
    ok(add(ks, 1, "a.png") != KS_OK, "no writes before the place key");
    ok(keystore_places_key(ks, master) == KS_OK, "place key set");
    ok(keystore_places_complete(ks) == 1, "a new volume knows every place");
    ok(add(ks, 1, "a.png") == KS_OK && add(ks, 1, "a.png") == KS_OK, "add (twice: one row)");
    ok(rows(ks, NULL) == 1, "one row");
    ok(has(ks, 1, "a.png") == 1, "the place is there");
    ok(has(ks, 2, "a.png") == 0, "not for another file id");
    ok(has(ks, 1, "a.pn") == 0 && has(ks, 1, "a.png/") == 0, "nor for another path");
    ok(add(ks, 1, "d/link.png") == KS_OK && rows(ks, NULL) == 2, "a second name (hard link)");

    char **paths;
    size_t n, forged;
    uint8_t id[KS_FILE_ID_BYTES];
    id_of(id, 1);
    ok(keystore_places_of(ks, id, &paths, &n, &forged) == KS_OK && n == 2 && forged == 0 &&
           strcmp(paths[0], "a.png") + strcmp(paths[1], "d/link.png") == 0,
       "places_of lists both");
    keystore_places_free(paths, n);

    /* Whoever can write the database but has no key cannot move a row. */
    ok(sql(vol, "UPDATE places SET path = 'b.png' WHERE path = 'a.png'") == 0, "a row altered");
    ok(has(ks, 1, "b.png") == 0, "the altered row does not count");
    int auth = 0;
    ok(rows(ks, &auth) == 2 && auth == 1, "foreach: 2 rows, 1 authentic");
    ok(keystore_places_of(ks, id, &paths, &n, &forged) == KS_OK && n == 1 && forged == 1,
       "places_of: 1 place, 1 forged");
    keystore_places_free(paths, n);
    ok(keystore_place_drop_one(ks, id, "b.png") == KS_OK && rows(ks, NULL) == 1, "drop one row");

    /* A row copied from another volume (another key) does not count either. */
    char vol2[512];
    uint8_t master2[KS_MASTER_KEY_BYTES];
    memcpy(master2, master, sizeof master2);
    keystore *other = new_volume("rows-other", vol2, sizeof vol2);
    ok(other && keystore_places_key(other, master) == KS_OK, "a second volume");
    ok(add(other, 5, "x.png") == KS_OK && has(other, 5, "x.png") == 1, "its own place");
    keystore_close(other);
    ok(keystore_open(&other, vol2) == KS_OK, "reopened");
    master2[0] ^= 1;
    ok(keystore_places_key(other, master2) == KS_OK && has(other, 5, "x.png") == 0,
       "under another key the row does not authenticate");
    keystore_close(other);

    ok(add(ks, 3, "t/u/v.png") == KS_OK && add(ks, 4, "t/w.png") == KS_OK &&
           add(ks, 5, "t0.png") == KS_OK && add(ks, 6, "t/") == KS_OK,
       "a tree, a sibling sharing its prefix");
    ok(keystore_place_drop(ks, "t") == KS_OK, "drop the tree");
    ok(has(ks, 3, "t/u/v.png") == 0 && has(ks, 4, "t/w.png") == 0 && has(ks, 6, "t/") == 0,
       "everything under it is gone");
    ok(has(ks, 5, "t0.png") == 1, "the sibling stays");
    keystore_close(ks);
}

static void test_moves(void)
{
    char vol[512];
    ks_place_move *m;
    keystore *ks = new_volume("moves", vol, sizeof vol);
    ok(ks && keystore_places_key(ks, master) == KS_OK, "a volume for renames");

    /* A file over another. */
    add(ks, 1, "a.png");
    add(ks, 2, "b.png");
    ok(keystore_place_move_begin(ks, "a.png", "b.png", 0, &m) == KS_OK, "begin: a.png -> b.png");
    ok(has(ks, 1, "a.png") == 1 && has(ks, 1, "b.png") == 1 && has(ks, 2, "b.png") == 1,
       "during the rename, both places hold (and the target's own)");
    ok(keystore_place_move_end(ks, m, 1) == KS_OK, "end: done");
    ok(has(ks, 1, "a.png") == 0 && has(ks, 1, "b.png") == 1 && has(ks, 2, "b.png") == 0,
       "after it, b.png is file 1's only");

    /* A failed rename is taken back, without touching what was there. */
    add(ks, 3, "c.png");
    ok(keystore_place_move_begin(ks, "b.png", "c.png", 0, &m) == KS_OK &&
           keystore_place_move_end(ks, m, 0) == KS_OK,
       "a rename that failed");
    ok(has(ks, 1, "b.png") == 1 && has(ks, 1, "c.png") == 0 && has(ks, 3, "c.png") == 1,
       "leaves the places as they were");
    add(ks, 1, "c.png"); /* already there before a failed rename: stays */
    ok(keystore_place_move_begin(ks, "b.png", "c.png", 0, &m) == KS_OK &&
           keystore_place_move_end(ks, m, 0) == KS_OK && has(ks, 1, "c.png") == 1,
       "a place that was there before the failed rename stays");
    keystore_place_drop_one(ks, (uint8_t[KS_FILE_ID_BYTES]){1, [15] = 0xa5}, "c.png");

    /* A tree. */
    add(ks, 10, "dir/x.png");
    add(ks, 11, "dir/sub/y.png");
    add(ks, 12, "dir2/z.png"); /* shares a prefix, not the tree */
    add(ks, 13, "dir");        /* the name itself (a file replaced by the dir earlier) */
    ok(keystore_place_move_begin(ks, "dir", "new/place", 0, &m) == KS_OK &&
           keystore_place_move_end(ks, m, 1) == KS_OK,
       "a directory tree renamed");
    ok(has(ks, 10, "new/place/x.png") == 1 && has(ks, 11, "new/place/sub/y.png") == 1 &&
           has(ks, 13, "new/place") == 1,
       "every place under it moved");
    ok(has(ks, 10, "dir/x.png") == 0 && has(ks, 11, "dir/sub/y.png") == 0,
       "none left at the old path");
    ok(has(ks, 12, "dir2/z.png") == 1, "a sibling with the same prefix untouched");

    /* An exchange. */
    add(ks, 20, "p/one.png");
    add(ks, 21, "q/two.png");
    ok(keystore_place_move_begin(ks, "p", "q", 1, &m) == KS_OK &&
           keystore_place_move_end(ks, m, 1) == KS_OK,
       "two directories exchanged");
    ok(has(ks, 20, "q/one.png") == 1 && has(ks, 21, "p/two.png") == 1 &&
           has(ks, 20, "p/one.png") == 0 && has(ks, 21, "q/two.png") == 0,
       "each tree's places are under the other name");
    ok(keystore_place_move_begin(ks, "p", "q", 1, &m) == KS_OK &&
           keystore_place_move_end(ks, m, 0) == KS_OK && has(ks, 20, "q/one.png") == 1 &&
           has(ks, 21, "p/two.png") == 1 && has(ks, 20, "p/one.png") == 0,
       "a failed exchange leaves them");
    keystore_close(ks);
}

static void test_learning(void)
{
    char vol[512];
    keystore *ks = new_volume("old", vol, sizeof vol);
    ok(ks != NULL, "a volume");
    keystore_close(ks);
    ok(sql(vol, "DROP TABLE places; DROP TABLE places_state;") == 0,
       "made like one from before places");
    ok(keystore_open(&ks, vol) == KS_OK, "it opens");
    ok(keystore_places_complete(ks) == 0, "it does not know every place");
    ok(keystore_places_key(ks, master) == KS_OK, "the key creates the tables");
    ok(add(ks, 1, "a.png") == KS_OK && has(ks, 1, "a.png") == 1, "places work");
    ok(keystore_places_complete(ks) == 0, "still learning");
    ok(keystore_places_set_complete(ks) == KS_OK && keystore_places_complete(ks) == 1,
       "until set complete");
    keystore_close(ks);
}

int main(void)
{
    if (sodium_init() < 0 || mkdtemp(base) == NULL) {
        printf("Bail out! cannot set up\n");
        return 1;
    }
    test_rows();
    test_moves();
    test_learning();
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", base);
    if (system(cmd) != 0)
        tap_diag("cannot remove %s", base);
    return tap_done();
}

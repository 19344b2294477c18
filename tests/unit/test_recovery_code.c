/* Unit tests of recovery codes: round trips, every single wrong character and every swap
 * of neighbours is caught and the right group named, the accepted spellings, and
 * unlocking a real keystore with the master key (key check present, wrong, missing). */
#include <ctype.h>
#include <sodium.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "keystore/recovery_code.h"
#include "tap.h"

static const char alphabet[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/* Index in text of character j (0..69) of the groups, skipping "PXC1" and hyphens. */
static size_t char_pos(int j)
{
    return 4 + (size_t)(j / RC_GROUP_CHARS) * (RC_GROUP_CHARS + 1) + 1 +
           (size_t)(j % RC_GROUP_CHARS);
}

static void test_round_trip(void)
{
    uint8_t key[KS_MASTER_KEY_BYTES], back[KS_MASTER_KEY_BYTES];
    char code[RC_TEXT_BYTES];
    rc_error err;
    int good = 1;

    for (int i = 0; i < 200 && good; i++) {
        randombytes_buf(key, sizeof key);
        recovery_code_format(code, key);
        good = strlen(code) == RC_TEXT_BYTES - 1 && strncmp(code, "PXC1-", 5) == 0 &&
               recovery_code_parse(code, back, &err) == RC_OK && memcmp(key, back, sizeof key) == 0;
    }
    ok(good, "200 random keys survive format and parse");
    memset(key, 0, sizeof key);
    recovery_code_format(code, key);
    ok(recovery_code_parse(code, back, &err) == RC_OK && memcmp(key, back, sizeof key) == 0,
       "the all-zero key round-trips (%s)", code);
    memset(key, 0xff, sizeof key);
    recovery_code_format(code, key);
    ok(recovery_code_parse(code, back, &err) == RC_OK && memcmp(key, back, sizeof key) == 0,
       "the all-ones key round-trips");
}

static void test_spellings(void)
{
    uint8_t key[KS_MASTER_KEY_BYTES], back[KS_MASTER_KEY_BYTES];
    char code[RC_TEXT_BYTES], alt[256];
    rc_error err;

    randombytes_buf(key, sizeof key);
    recovery_code_format(code, key);
    /* lower case, 0 as o, 1 as l, spaces instead of hyphens, no separators, surrounding blanks */
    size_t k = 0;
    alt[k++] = ' ';
    for (const char *p = code; *p; p++)
        alt[k++] = p < code + 4 ? (char)tolower(*p) /* the prefix has no aliases */
                   : *p == '-'  ? ' '
                   : *p == '0'  ? 'o'
                   : *p == '1'  ? 'l'
                                : (char)tolower(*p);
    alt[k++] = '\n';
    alt[k] = '\0';
    ok(recovery_code_parse(alt, back, &err) == RC_OK && memcmp(key, back, sizeof key) == 0,
       "lower case, spaces, o for 0 and l for 1 are read");
    k = 0;
    for (const char *p = code; *p; p++)
        if (*p != '-')
            alt[k++] = *p;
    alt[k] = '\0';
    ok(recovery_code_parse(alt, back, &err) == RC_OK && memcmp(key, back, sizeof key) == 0,
       "the code without separators is read");
    ok(recovery_code_parse("hello", back, &err) == RC_ERR_PREFIX, "text without PXC: prefix error");
    snprintf(alt, sizeof alt, "PXC2%s", code + 4);
    ok(recovery_code_parse(alt, back, &err) == RC_ERR_VERSION, "PXC2: unknown version");
    snprintf(alt, sizeof alt, "%.*s", (int)strlen(code) - 1, code);
    ok(recovery_code_parse(alt, back, &err) == RC_ERR_LENGTH && err.group == RC_GROUPS,
       "last character missing: the last group is named");
    snprintf(alt, sizeof alt, "%.*s", (int)strlen(code) - 6, code);
    ok(recovery_code_parse(alt, back, &err) == RC_ERR_LENGTH && err.group == 0,
       "a whole group missing: length error");
    snprintf(alt, sizeof alt, "%s", code);
    alt[char_pos(7)] = 'U';
    ok(recovery_code_parse(alt, back, &err) == RC_ERR_CHAR && err.group == 2 && err.bad_char == 'U',
       "U (not in the alphabet) in group 2 is named");
}

static void test_single_errors(void)
{
    uint8_t key[KS_MASTER_KEY_BYTES], back[KS_MASTER_KEY_BYTES];
    char code[RC_TEXT_BYTES], bad[RC_TEXT_BYTES];
    rc_error err;
    int caught = 0, named = 0, tried = 0;

    for (int round = 0; round < 4; round++) {
        randombytes_buf(key, sizeof key);
        recovery_code_format(code, key);
        for (int j = 0; j < RC_GROUPS * RC_GROUP_CHARS; j++)
            for (const char *a = alphabet; *a; a++) {
                memcpy(bad, code, sizeof bad);
                if (bad[char_pos(j)] == *a)
                    continue;
                bad[char_pos(j)] = *a;
                tried++;
                int st = recovery_code_parse(bad, back, &err);
                caught += st == RC_ERR_GROUP;
                named += st == RC_ERR_GROUP && err.group == j / RC_GROUP_CHARS + 1;
            }
    }
    ok(caught == tried, "every single wrong character is caught by its group (%d of %d)", caught,
       tried);
    ok(named == tried, "and the group named is the one with the error (%d of %d)", named, tried);
}

static void test_transpositions(void)
{
    uint8_t key[KS_MASTER_KEY_BYTES], back[KS_MASTER_KEY_BYTES];
    char code[RC_TEXT_BYTES], bad[RC_TEXT_BYTES];
    rc_error err;
    int tried = 0, caught_in = 0, tried_across = 0, caught_across = 0;

    for (int round = 0; round < 50; round++) {
        randombytes_buf(key, sizeof key);
        recovery_code_format(code, key);
        for (int j = 0; j + 1 < RC_GROUPS * RC_GROUP_CHARS; j++) {
            size_t a = char_pos(j), b = char_pos(j + 1);
            if (code[a] == code[b])
                continue;
            memcpy(bad, code, sizeof bad);
            bad[a] = code[b];
            bad[b] = code[a];
            int st = recovery_code_parse(bad, back, &err);
            if (j / RC_GROUP_CHARS == (j + 1) / RC_GROUP_CHARS) {
                tried++;
                caught_in += st == RC_ERR_GROUP && err.group == j / RC_GROUP_CHARS + 1;
            } else {
                tried_across++;
                caught_across += st != RC_OK;
            }
        }
    }
    ok(caught_in == tried, "every swap of neighbours in a group is caught, group named (%d of %d)",
       caught_in, tried);
    ok(caught_across == tried_across, "every swap across a hyphen is caught (%d of %d)",
       caught_across, tried_across);
}

static void test_checksum(void)
{
    uint8_t k1[KS_MASTER_KEY_BYTES], k2[KS_MASTER_KEY_BYTES], back[KS_MASTER_KEY_BYTES];
    char c1[RC_TEXT_BYTES], c2[RC_TEXT_BYTES];
    rc_error err;

    randombytes_buf(k1, sizeof k1);
    randombytes_buf(k2, sizeof k2);
    recovery_code_format(c1, k1);
    recovery_code_format(c2, k2);
    /* Group 1 of another code: every group checks, the whole does not. */
    memcpy(c1 + 5, c2 + 5, RC_GROUP_CHARS);
    ok(recovery_code_parse(c1, back, &err) == RC_ERR_CHECKSUM,
       "a valid group from another code fails the overall checksum");
    char msg[256];
    recovery_code_explain(RC_ERR_GROUP, &(rc_error){3, "AB7DE", 0}, msg, sizeof msg);
    ok(strstr(msg, "group 3") && strstr(msg, "AB7DE"), "the explanation names the group: %s", msg);
}

static void test_keystore_unlock(void)
{
    char dir[] = "/tmp/pxc-rc-XXXXXX", db[256], cmd[300];
    uint8_t master[KS_MASTER_KEY_BYTES], other[KS_MASTER_KEY_BYTES], out[KS_MASTER_KEY_BYTES];
    keystore *ks = NULL;

    if (!mkdtemp(dir)) {
        ok(0, "mkdtemp");
        return;
    }
    snprintf(db, sizeof db, "%s/v", dir);
    ok(keystore_create(db, "pw", 2, KS_KDF_INTERACTIVE, KS_PROFILE_DEFAULT, master) == KS_OK,
       "create a volume");
    ok(keystore_open(&ks, db) == KS_OK, "open it");
    ok(keystore_unlock_master(ks, master) == KS_OK, "its master key unlocks it");
    memcpy(other, master, sizeof other);
    other[31] ^= 1;
    ok(keystore_unlock_master(ks, other) == KS_ERR_WRONG_KEY, "a key one bit off is refused");
    keystore_close(ks);

    /* A volume from before key checks: the table is not there until a passphrase unlock. */
    sqlite3 *h;
    snprintf(cmd, sizeof cmd, "%s/v/.pixcrypt/keystore.db", dir);
    ok(sqlite3_open(cmd, &h) == SQLITE_OK &&
           sqlite3_exec(h, "DROP TABLE key_check", NULL, NULL, NULL) == SQLITE_OK,
       "drop the key check table");
    sqlite3_close(h);
    ok(keystore_open(&ks, db) == KS_OK, "the volume still opens without it");
    ok(keystore_unlock_master(ks, master) == KS_ERR_NOKEYCHECK, "no key check: said so");
    ok(keystore_unlock(ks, "pw", 2, out) == KS_OK && memcmp(out, master, sizeof out) == 0,
       "passphrase unlock");
    ok(keystore_unlock_master(ks, master) == KS_OK, "which wrote the key check back");
    keystore_close(ks);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    ok(system(cmd) == 0, "clean up");
}

int main(void)
{
    if (sodium_init() < 0)
        return 1;
    test_round_trip();
    test_spellings();
    test_single_errors();
    test_transpositions();
    test_checksum();
    test_keystore_unlock();
    return tap_done();
}

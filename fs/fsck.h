/* Checking a volume offline (`pixcrypt fsck`), with the volume lock held: every stored
 * file against its own authentication (header, sealed secrets, every block or the MAC)
 * and against its keystore row, every row against the stored files; and the repairs.
 *
 * What is found (fsck_kind), and what may be done about it:
 *   damaged    fails authentication or is no stored file at all.  --repair cuts a torn
 *              tail (an append interrupted by a crash) back to its last complete block,
 *              and makes an empty file left by an interrupted create an empty stored
 *              file; --move-damaged moves the others to .pixcrypt/damaged/ and drops
 *              their rows.  The mount reads them as EIO.
 *   orphaned   a stored file without a row: --repair adds it from the header.
 *   missing    a row without a stored file (removed outside the mount): --repair drops it.
 *   mismatch   a row that disagrees with its file's header, and is not newer than it (a
 *              crash between writing a file and its row): --repair copies the header.
 *   rollback   a stored file older than its row (an old copy put back): the mount refuses
 *              to read it; --accept-rollback makes it current (the row takes its version).
 *   duplicate  several stored files with one file id (copies made in the cipher dir, not
 *              through the mount): reported only.
 *   temp       a temp file of an interrupted conversion: --repair removes it.
 *   name       (encrypted names) an entry whose stored name does not decrypt, or a
 *              directory without its name key: --move-damaged moves the entry to
 *              .pixcrypt/damaged/ (its rows then show as missing, --repair drops them).
 *   place      a stored file at a path its file id was never written to (swapped with
 *              another stored file, or moved, outside the mount): the mount refuses to
 *              read it; --accept-moved binds it where it is.  Also a place without its file
 *              (left by a crash, or by a change outside the mount) and a place row that
 *              does not authenticate: --repair drops them.
 *
 * A volume whose keystore does not know every file's place yet (made before places, or
 * rebuilt) has them recorded by --repair (and by rebuild): each file where it is now.
 *
 * With `rebuild` the keystore is a new, empty one (keystore_rebuild_begin): every stored
 * file whose header authenticates gets its row, and nothing is orphaned or missing. */
#ifndef PXC_FS_FSCK_H
#define PXC_FS_FSCK_H

#include <stddef.h>
#include <stdint.h>

#include "codec/keys.h"
#include "keystore/keystore.h"

typedef enum fsck_kind {
    FSCK_DAMAGED,
    FSCK_ORPHANED,
    FSCK_MISSING,
    FSCK_MISMATCH,
    FSCK_ROLLBACK,
    FSCK_DUPLICATE,
    FSCK_TEMP,
    FSCK_NAME,
    FSCK_PLACE,
    FSCK_KINDS_
} fsck_kind;

/* "damaged", "orphaned", ... */
const char *fsck_kind_name(fsck_kind kind);

typedef struct fsck_options {
    int repair;          /* rows, temp files, torn tails, empty files */
    int move_damaged;    /* damaged files to .pixcrypt/damaged/, their rows dropped */
    int accept_rollback; /* rolled-back files become current */
    int accept_moved;    /* misplaced files are bound where they are */
    int rebuild;         /* the keystore is new and empty: every file gets its row */
    /* One call per problem: `what` is the file's path in the cipher dir (a file id for a
     * missing row), `detail` what is wrong, `action` what was done (NULL: nothing). */
    void (*report)(void *arg, fsck_kind kind, const char *what, const char *detail,
                   const char *action);
    /* After each file: done of total. */
    void (*progress)(void *arg, size_t done, size_t total);
    void *arg;
} fsck_options;

typedef struct fsck_summary {
    size_t files;      /* stored files checked (hard links once) */
    uint64_t bytes;    /* their plaintext bytes */
    long long rows;    /* keystore rows at the end */
    size_t rows_added; /* rebuild: rows recreated from headers */
    /* a volume that does not know every file's place yet: files without a place, and of
     * those how many had it recorded (--repair, rebuild) */
    size_t places_unknown, places_recorded;
    int places_complete; /* at the end, the volume knows every file's place */
    size_t found[FSCK_KINDS_];
    size_t repaired[FSCK_KINDS_];
    size_t errors; /* repairs that failed, files that could not be read */
} fsck_summary;

/* Checks (and repairs, as the options say) the volume in cipherdir, whose keys and open
 * keystore are given.  0 when the check ran (see *sum for what it found), or a negative
 * errno if it could not (the cipher dir cannot be read). */
int fsck_run(const char *cipherdir, const pxc_keys *keys, keystore *ks, const fsck_options *opt,
             fsck_summary *sum);

#endif

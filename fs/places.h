/* The mount's side of places (keystore.h, "places"): every stored file is bound to the
 * path it was written at, and a file found anywhere else is refused.
 *
 * Paths are stored paths relative to the cipher dir, found from the directory fds the
 * operations work with (/proc/self/fd).  Namespace changes hold fs->ns_lock shared while
 * they compute paths and change places (a directory rename holds it exclusive: every path
 * under it changes), so that a path computed under the lock is still the path when the
 * places change.
 *
 * Functions return 0 or a negative errno. */
#ifndef PXC_FS_PLACES_H
#define PXC_FS_PLACES_H

#include <stdint.h>

#include "fs/pxcfs.h"

/* At mount, once the keystore is unlocked: the place key, and whether the volume still
 * learns places (a keystore made before places, or rebuilt). */
int places_init(pxc_fs *fs, const uint8_t master[KS_MASTER_KEY_BYTES]);

/* The stored path of `name` in the directory dirfd, relative to the cipher dir.
 * -ENAMETOOLONG if it does not fit, -ESTALE if the directory has no path (removed). */
int places_path(pxc_fs *fs, int dirfd, const char *name, char *out, size_t cap);

/* Whether n, whose stored file has file id `id`, is at one of id's places: one of them
 * names n's backing inode.  A file without any place in a learning volume is bound where
 * it is.  0, or -EIO with one log line naming the file.  n locked. */
int places_check(pxc_fs *fs, pxc_inode *n, const uint8_t id[PXC_FILE_ID_BYTES]);

/* n was found as `name` in dirfd, and its stored file has id `id`: if that is not one of
 * id's places, n is marked misplaced (its reads are refused; nothing is logged yet).  A
 * file without any place in a learning volume is bound there. */
void places_check_name(pxc_fs *fs, pxc_inode *n, int dirfd, const char *name,
                       const uint8_t id[PXC_FILE_ID_BYTES]);
/* Logs that n is misplaced (once per opening) and returns -EIO. */
int places_refuse(pxc_fs *fs, pxc_inode *n);

/* A new regular file `name` in dirfd: its keystore row and its place, recorded in one
 * transaction before the file is made.  -EIO (logged) when the keystore cannot take them:
 * the create must fail.  places_undo_create takes them back after a failed create. */
int places_create(pxc_fs *fs, int dirfd, const char *name, const ks_file_row *row);
void places_undo_create(pxc_fs *fs, int dirfd, const char *name,
                        const uint8_t id[PXC_FILE_ID_BYTES]);
/* A file with id `id` is about to get the name `name` in dirfd (a create, a link).  -EIO
 * (logged) when the keystore cannot take it: the create or link must fail. */
int places_add(pxc_fs *fs, int dirfd, const char *name, const uint8_t id[PXC_FILE_ID_BYTES]);
/* Takes back places_add after the create or link failed. */
void places_undo_add(pxc_fs *fs, int dirfd, const char *name, const uint8_t id[PXC_FILE_ID_BYTES]);
/* `name` in dirfd (a file, or a directory and what was under it) was removed: its places
 * go, and with `id` (the name was a stored file's last) the file's keystore row too. */
void places_forget(pxc_fs *fs, int dirfd, const char *name, const uint8_t *id);

/* A rename: begin before, end after (done: it succeeded).  A begin that cannot write the
 * keystore is logged and fails (-EIO): the rename must not happen, or its files would be
 * refused at their new names. */
int places_move_begin(pxc_fs *fs, int fromdir, const char *from, int todir, const char *to,
                      int exchange, ks_place_move **m);
void places_move_end(pxc_fs *fs, ks_place_move *m, int done);

#endif

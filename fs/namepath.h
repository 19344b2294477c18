/* Names as stored in the cipher dir: the one place that turns plain names into stored
 * names and back (codec/names.h does the cryptography), for the mount, fsck and the
 * encrypt-name / decrypt-name commands.
 *
 * A volume with encrypted names keeps in every directory a file DIRIV_FILE holding the
 * directory's 16 random bytes (its key comes from them, so a directory keeps its key
 * when it is renamed or moved).  `init` writes the root's, mkdir a new directory's; a
 * directory found without one (a crash between mkdir and writing it) gets one if it is
 * empty, and is unreadable otherwise.  Long names have a second file (codec/names.h).
 * With plaintext names every function passes names through unchanged. */
#ifndef PXC_FS_NAMEPATH_H
#define PXC_FS_NAMEPATH_H

#include <stddef.h>
#include <stdint.h>

#include "codec/names.h"

#define DIRIV_FILE ".pixcrypt.diriv"

typedef struct pxc_names {
    int encrypted;
    pxc_names_keys *keys; /* sodium_malloc'ed (xattrs use it with plaintext names too) */
} pxc_names;

/* 0, or -ENOMEM. */
int names_init(pxc_names *nm, const unsigned char *master, int encrypted);
void names_free(pxc_names *nm);

/* Writes a new directory IV into the directory open at dirfd (O_EXCL; synced). */
int names_dir_create_iv(int dirfd);
/* The key of the directory open at dirfd (O_PATH is enough): from its IV, created if the
 * directory has none and is empty but for the volume's own entries.  -EIO if it has
 * none and is not empty, or the IV file is damaged. */
int names_dirkey_load(const pxc_names *nm, int dirfd, pxc_dirkey *dk);

/* A name as stored in one directory. */
typedef struct stored_name {
    char name[PXC_NAME_MAX + 1]; /* the directory entry */
    char full[PXC_NAME_ENC_MAX]; /* the full stored name: == name unless is_long */
    int is_long;
} stored_name;

/* plain -> stored, under dk (ignored with plaintext names). */
int names_to_stored(const pxc_names *nm, const pxc_dirkey *dk, const char *plain, stored_name *s);
/* A directory entry -> plain name.  0 and the name in plain; 1 for the volume's own files
 * (IV, long-name files, temp files), which no one sees; -EBADMSG for an entry that does
 * not decrypt (or a long name whose ".name" file is missing or wrong). */
int names_from_stored(const pxc_names *nm, const pxc_dirkey *dk, int dirfd, const char *entry,
                      char *plain, size_t size);

/* rmdir of `name` in parent_fd: with encrypted names, an empty directory still holds its
 * IV, which goes first (and comes back if the directory cannot go). */
int names_dir_remove(const pxc_names *nm, int parent_fd, const char *name);
/* The same first step for a directory about to be replaced by a rename: 1 and its IV in
 * iv if it held nothing else (the IV file is gone), 0 if there is nothing to take (plaintext
 * names, no such directory), -ENOTEMPTY.  names_dir_put_iv puts it back. */
int names_dir_take_iv(const pxc_names *nm, int parent_fd, const char *name,
                      uint8_t iv[PXC_DIRIV_BYTES]);
void names_dir_put_iv(int parent_fd, const char *name, const uint8_t iv[PXC_DIRIV_BYTES]);

/* Long names: writes the ".name" file of s in dirfd if it is a long name and the file is
 * not there yet (*made set to 1 if this call made it).  Removes it (after the long name
 * itself went) if nothing has that name any more.  No-ops for short names. */
int names_long_put(int dirfd, const stored_name *s, int *made);
void names_long_drop(int dirfd, const stored_name *s);

/* Whole paths relative to the root (dir fd root_fd, "a/b/c"): plain <-> stored.  Every
 * directory but the last component's must exist. */
int names_path_encrypt(const pxc_names *nm, int root_fd, const char *plain, char *out, size_t size);
int names_path_decrypt(const pxc_names *nm, int root_fd, const char *stored, char *out,
                       size_t size);

#endif

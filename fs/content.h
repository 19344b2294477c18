/* File content: the open-file state of a regular file's inode (one content fd and one
 * codec state shared by every handle and every hard link), reads and writes, plaintext
 * sizes, and the keystore rows that index stored files.
 *
 * Storage (DESIGN.md §3), through codec/stored.h without knowing the formats: writes
 * go to the opaque form.  When the last writer leaves, content that a format-preserving
 * kind may take (a PNG) is encoded into that kind, verified by the codec, and replaces
 * the opaque file atomically (temp file with the same owner, mode, times and xattrs,
 * fsync, rename; then the keystore row); if the codec declines, or the file has several
 * hard links (a rename would split them), it stays opaque.  Reading such a file decodes
 * it whole into a plaintext buffer shared through the plaintext cache
 * (fs/plaincache.h); reads of the plaintext before the image data are served from the
 * stored file's head without decoding the image.  A writer opening such a file turns it
 * back into an opaque file first (atomically, or simply a new empty one when it is
 * truncated).  Each replacement gives the backing file a new inode: the FUSE inode
 * stays the same (inode_rekey), st_ino as seen through the mount changes.
 *
 * Functions return 0 / a byte count, or a negative errno.  Stored data that fails
 * authentication gives -EIO and a log line naming the file. */
#ifndef PXC_FS_CONTENT_H
#define PXC_FS_CONTENT_H

#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "fs/pxcfs.h"

/* Temp files of atomic replacements start with this in the cipher dir; the mount never
 * shows such names (a crash may leave one behind: it is safe to delete). */
#define PXC_TEMP_PREFIX ".pixcrypt~"
int content_is_temp_name(const char *name);

/* Creates the regular file `name` in dirfd (O_EXCL) with its empty stored form and its
 * keystore row.  On success *fd_out is open read-write on it and *fresh holds its codec
 * state (wipe with opaque_close once handed to content_attach). */
int content_create(pxc_fs *fs, int dirfd, const char *name, mode_t mode, int *fd_out,
                   opaque_file *fresh);

/* Adds a file handle to n (a regular file).  The first handle opens the content: from
 * fd/fresh when the file was just created (fd is taken over), otherwise (fd -1, fresh
 * NULL) by opening the inode and reading its header.  A writer turns a format-preserving
 * stored form back into an opaque one; `trunc`: the writer is about to truncate the
 * file to 0, so none of its content need be kept. */
int content_attach(pxc_fs *fs, pxc_inode *n, int want_write, int trunc, int fd,
                   const opaque_file *fresh);
/* Drops a file handle.  When the last writer leaves, the content is committed
 * (content_commit); when the last handle leaves, the content fd is closed. */
void content_detach(pxc_fs *fs, pxc_inode *n, int was_writer);

/* With a handle attached: */
ssize_t content_read(pxc_fs *fs, pxc_inode *n, void *buf, size_t size, off_t off);
ssize_t content_write(pxc_fs *fs, pxc_inode *n, const void *buf, size_t size, off_t off);
int content_truncate(pxc_fs *fs, pxc_inode *n, off_t size);
/* fsync of the content, and of the keystore (its row and places). */
int content_fsync(pxc_fs *fs, pxc_inode *n, int datasync);

/* Sets st->st_size of a regular file to its plaintext size: from the open state if the
 * file is open, else from the stored form (one small read, no decryption), read through
 * `name` in dirfd if name is not NULL, else through n's fd.  Size 0 for a file that is
 * no (valid) stored file: opening it fails with EIO.  Returns 1 and, if id is not NULL,
 * copies the stored file's id there when it is known; 0 when not. */
int content_stat_size(pxc_fs *fs, pxc_inode *n, int dirfd, const char *name, struct stat *st,
                      uint8_t id[16]);

/* If removing `name` in dirfd removes the last link of a stored file (and it is not the
 * inode `keep`, e.g. a rename's source), copies that file's id to id and returns 1:
 * its keystore row goes once the removal succeeded (content_forget_row). */
int content_doomed(int dirfd, const char *name, const struct stat *keep, uint8_t id[16]);
void content_forget_row(pxc_fs *fs, const uint8_t id[16]);
/* The file id in the header of n's stored file (a regular file). */
int content_file_id(const pxc_inode *n, uint8_t id[16]);

#endif

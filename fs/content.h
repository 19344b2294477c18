/* File content: the open-file state of a regular file's inode (one content fd and one
 * codec state shared by every handle and every hard link), reads and writes through
 * codec/opaque, plaintext sizes, and the keystore rows that index stored files.
 *
 * Functions return 0 / a byte count, or a negative errno.  Stored data that fails
 * authentication gives -EIO and a log line naming the file. */
#ifndef PXC_FS_CONTENT_H
#define PXC_FS_CONTENT_H

#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "fs/pxcfs.h"

/* Creates the regular file `name` in dirfd (O_EXCL) with its empty stored form and its
 * keystore row.  On success *fd_out is open read-write on it and *fresh holds its codec
 * state (wipe with opaque_close once handed to content_attach). */
int content_create(pxc_fs *fs, int dirfd, const char *name, mode_t mode, int *fd_out,
                   opaque_file *fresh);

/* Adds a file handle to n (a regular file).  The first handle opens the content: from
 * fd/fresh when the file was just created (fd is taken over), otherwise (fd -1, fresh
 * NULL) by opening the inode and reading its header. */
int content_attach(pxc_fs *fs, pxc_inode *n, int want_write, int fd, const opaque_file *fresh);
/* Drops a file handle.  When the last writer leaves, the content is committed
 * (content_commit); when the last handle leaves, the content fd is closed. */
void content_detach(pxc_fs *fs, pxc_inode *n, int was_writer);

/* With a handle attached: */
ssize_t content_read(pxc_fs *fs, pxc_inode *n, void *buf, size_t size, off_t off);
ssize_t content_write(pxc_fs *fs, pxc_inode *n, const void *buf, size_t size, off_t off);
int content_truncate(pxc_fs *fs, pxc_inode *n, off_t size);
int content_fsync(pxc_inode *n, int datasync);

/* Sets st->st_size of a regular file to its plaintext size: from the open state if the
 * file is open, else from the stored form (one small read, no decryption), read through
 * `name` in dirfd if name is not NULL, else through n's fd. */
void content_stat_size(pxc_fs *fs, pxc_inode *n, int dirfd, const char *name, struct stat *st);

/* If removing `name` in dirfd removes the last link of a stored file (and it is not the
 * inode `keep`, e.g. a rename's source), copies that file's id to id and returns 1:
 * its keystore row goes once the removal succeeded (content_forget_row). */
int content_doomed(int dirfd, const char *name, const struct stat *keep, uint8_t id[16]);
void content_forget_row(pxc_fs *fs, const uint8_t id[16]);

#endif

/* Listing a cipher dir: every regular file below it, for stats. */
#ifndef PXC_FS_CIPHERDIR_WALK_H
#define PXC_FS_CIPHERDIR_WALK_H

#include <sys/stat.h>

/* Calls fn for every regular file under the directory fd (which it takes over and
 * closes) with its path relative to the cipher dir (rel: the directory's own, "" for the
 * root) and its lstat, without following symlinks; the root's .pixcrypt, directory name
 * IVs and long names' ".name" files are left out.
 * Stops at the first nonzero return of fn and returns it; 0 when done, or a negative
 * errno if a directory cannot be read. */
int cipherdir_walk(int fd, const char *rel,
                   int (*fn)(const char *path, const struct stat *sb, void *arg), void *arg);

#endif

#include "fs/cipherdir_walk.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "codec/names.h"
#include "fs/namepath.h"
#include "keystore/keystore.h"

int cipherdir_walk(int fd, const char *rel,
                   int (*fn)(const char *path, const struct stat *sb, void *arg), void *arg)
{
    DIR *d = fdopendir(fd);
    struct dirent *de;
    int rc = 0;

    if (!d) {
        rc = -errno;
        close(fd);
        return rc;
    }
    while (rc == 0 && (errno = 0, de = readdir(d)) != NULL) {
        char path[PATH_MAX];
        struct stat sb;
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0 ||
            (rel[0] == '\0' && strcmp(de->d_name, KS_DIR) == 0))
            continue;
        if (snprintf(path, sizeof path, "%s%s%s", rel, rel[0] ? "/" : "", de->d_name) >=
            (int)sizeof path) {
            rc = -ENAMETOOLONG;
            break;
        }
        if (fstatat(dirfd(d), de->d_name, &sb, AT_SYMLINK_NOFOLLOW) != 0)
            continue; /* removed meanwhile */
        /* Name encryption's own files: directory IVs, long names' full names. */
        if (S_ISREG(sb.st_mode) &&
            (strcmp(de->d_name, DIRIV_FILE) == 0 || pxc_name_long_kind(de->d_name) == 2))
            continue;
        if (S_ISREG(sb.st_mode)) {
            rc = fn(path, &sb, arg);
        } else if (S_ISDIR(sb.st_mode)) {
            int sub = openat(dirfd(d), de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (sub >= 0)
                rc = cipherdir_walk(sub, path, fn, arg);
        }
    }
    if (rc == 0 && errno != 0)
        rc = -errno;
    closedir(d);
    return rc;
}

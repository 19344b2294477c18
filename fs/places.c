#include "fs/places.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fs/log.h"

int places_init(pxc_fs *fs, const uint8_t master[KS_MASTER_KEY_BYTES])
{
    int rc = keystore_places_key(fs->ks, master);
    if (rc != KS_OK) {
        pxc_log(LOG_ERR, "keystore: cannot set up file places: %s", keystore_strerror(rc));
        return -EIO;
    }
    fs->places_learning = keystore_places_complete(fs->ks) != 1;
    if (fs->places_learning)
        pxc_log(LOG_NOTICE, "this volume does not know every file's place yet: files are bound "
                            "where they are found (pixcrypt fsck completes it)");
    return 0;
}

/* dirfd's path relative to the cipher dir ("" for the cipher dir itself) into out. */
static int dir_rel(pxc_fs *fs, int dirfd, char *out, size_t cap)
{
    char proc[32], target[PATH_MAX];
    snprintf(proc, sizeof proc, "/proc/self/fd/%d", dirfd);
    ssize_t len = readlink(proc, target, sizeof target - 1);
    if (len <= 0)
        return -ESTALE;
    target[len] = '\0';
    size_t rl = strlen(fs->cipherdir);
    if (strncmp(target, fs->cipherdir, rl) != 0 || (target[rl] != '/' && target[rl] != '\0'))
        return -ESTALE; /* removed (" (deleted)"), or outside the cipher dir */
    const char *rel = target[rl] == '/' ? target + rl + 1 : target + rl;
    static const char deleted[] = " (deleted)";
    size_t n = strlen(rel);
    if (n >= sizeof deleted - 1 && strcmp(rel + n - (sizeof deleted - 1), deleted) == 0)
        return -ESTALE;
    if (n >= cap)
        return -ENAMETOOLONG;
    memcpy(out, rel, n + 1);
    return 0;
}

int places_path(pxc_fs *fs, int dirfd, const char *name, char *out, size_t cap)
{
    int rc = dir_rel(fs, dirfd, out, cap);
    if (rc)
        return rc;
    size_t n = strlen(out);
    int k = snprintf(out + n, cap - n, "%s%s", n ? "/" : "", name);
    return k < 0 || (size_t)k >= cap - n ? -ENAMETOOLONG : 0;
}

/* n's path relative to the cipher dir, from its O_PATH fd. */
static int inode_rel(pxc_fs *fs, pxc_inode *n, char *out, size_t cap)
{
    return dir_rel(fs, n->fd, out, cap);
}

/* Whether one of id's places names n's backing inode; *none: id has no place at all. */
static int at_a_place(pxc_fs *fs, pxc_inode *n, const uint8_t *id, int *none)
{
    char **paths;
    size_t count, forged;
    struct stat st;
    if (keystore_places_of(fs->ks, id, &paths, &count, &forged) != KS_OK)
        return -1;
    int found = 0;
    for (size_t i = 0; i < count && !found; i++)
        found = fstatat(fs->root_fd, paths[i], &st, AT_SYMLINK_NOFOLLOW) == 0 &&
                st.st_dev == n->dev && st.st_ino == n->ino;
    keystore_places_free(paths, count);
    *none = count == 0 && forged == 0;
    return found;
}

/* Whether id has any authentic or forged place. */
static int has_any_place(pxc_fs *fs, const uint8_t *id)
{
    char **paths;
    size_t count, forged;
    if (keystore_places_of(fs->ks, id, &paths, &count, &forged) != KS_OK)
        return 1;
    keystore_places_free(paths, count);
    return count + forged > 0;
}

void places_check_name(pxc_fs *fs, pxc_inode *n, int dirfd, const char *name,
                       const uint8_t id[PXC_FILE_ID_BYTES])
{
    char path[PATH_MAX];
    if (places_path(fs, dirfd, name, path, sizeof path) == 0 &&
        keystore_place_has(fs->ks, id, path) == 1)
        return;
    /* Once more with every namespace change kept out: a rename may have moved the
     * places between our computing the path and reading them. */
    pthread_rwlock_wrlock(&fs->ns_lock);
    int rc = places_path(fs, dirfd, name, path, sizeof path), ok = 0;
    /* The name may have gone to another file since it was looked up (a rename through
     * the mount moved this one on, its places with it): nothing is known against it. */
    struct stat byname, self;
    if (rc == 0 && (fstatat(dirfd, name, &byname, AT_SYMLINK_NOFOLLOW) != 0 ||
                    fstatat(n->fd, "", &self, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) != 0 ||
                    byname.st_dev != self.st_dev || byname.st_ino != self.st_ino))
        ok = 1;
    if (rc == 0 && !ok) {
        ok = keystore_place_has(fs->ks, id, path) == 1;
        /* Learning: bound here if it has no place yet, or only this file's other names. */
        int none = 0;
        if (!ok && fs->places_learning &&
            (!has_any_place(fs, id) || at_a_place(fs, n, id, &none) == 1)) {
            (void)keystore_place_add(fs->ks, id, path); /* best effort: may be read-only */
            ok = 1;
        }
    }
    pthread_rwlock_unlock(&fs->ns_lock);
    /* A directory removed meanwhile gives no path: nothing is known against the file. */
    if (!ok && rc == 0)
        n->misplaced = 1;
}

static void log_misplaced(pxc_fs *fs, pxc_inode *n)
{
    char name[512];
    inode_name(fs->inodes, n, name, sizeof name);
    pxc_log(LOG_ERR,
            "%s: the stored file is not where it was written: it is another file of this "
            "volume (swapped or moved outside the mount); reads refused "
            "(pixcrypt fsck --accept-moved keeps it here)",
            name);
}

int places_refuse(pxc_fs *fs, pxc_inode *n)
{
    int was = 1;
    if (atomic_compare_exchange_strong(&n->misplaced, &was, 2) || was == 0)
        log_misplaced(fs, n);
    return -EIO;
}

/* Whether n's backing file has no name left (removed since it was looked up). */
static int unlinked(pxc_inode *n)
{
    struct stat st;
    return fstatat(n->fd, "", &st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) == 0 && st.st_nlink == 0;
}

int places_check(pxc_fs *fs, pxc_inode *n, const uint8_t id[PXC_FILE_ID_BYTES])
{
    int none = 0, found = at_a_place(fs, n, id, &none);
    if (found == 1)
        return 0;
    if (found == 0) {
        /* A rename may have been between our reading of the places and our looking at
         * them: once more with every namespace change kept out. */
        pthread_rwlock_wrlock(&fs->ns_lock);
        found = at_a_place(fs, n, id, &none);
        /* Learning: bound where it is found (best effort: a read-only keystore cannot). */
        char rel[PATH_MAX];
        if (found == 0 && none && fs->places_learning) {
            if (inode_rel(fs, n, rel, sizeof rel) == 0)
                (void)keystore_place_add(fs->ks, id, rel);
            found = 1;
        }
        /* Removed since its lookup (which checked the name it had): its places went with
         * its name, and it reads as it was, as on any filesystem. */
        if (found == 0 && unlinked(n))
            found = 1;
        pthread_rwlock_unlock(&fs->ns_lock);
        if (found == 1)
            return 0;
    }
    if (found < 0) {
        char name[512];
        inode_name(fs->inodes, n, name, sizeof name);
        pxc_log(LOG_ERR, "%s: cannot read the file's places from the keystore; reads refused",
                name);
        return -EIO;
    }
    n->misplaced = 1;
    return places_refuse(fs, n);
}

int places_add(pxc_fs *fs, int dirfd, const char *name, const uint8_t id[PXC_FILE_ID_BYTES])
{
    char path[PATH_MAX];
    int rc = places_path(fs, dirfd, name, path, sizeof path);
    if (rc)
        return rc;
    rc = keystore_place_add(fs->ks, id, path);
    if (rc == KS_OK)
        return 0;
    pxc_log(LOG_ERR, "keystore: cannot record where a new file is: %s", keystore_strerror(rc));
    return -EIO;
}

void places_undo_add(pxc_fs *fs, int dirfd, const char *name, const uint8_t id[PXC_FILE_ID_BYTES])
{
    char path[PATH_MAX];
    if (places_path(fs, dirfd, name, path, sizeof path) == 0)
        (void)keystore_place_drop_one(fs->ks, id, path);
}

int places_create(pxc_fs *fs, int dirfd, const char *name, const ks_file_row *row)
{
    char path[PATH_MAX];
    int rc = places_path(fs, dirfd, name, path, sizeof path);
    if (rc)
        return rc;
    rc = keystore_file_create(fs->ks, row, path);
    if (rc == KS_OK)
        return 0;
    pxc_log(LOG_ERR, "keystore: cannot record a new file: %s", keystore_strerror(rc));
    return -EIO;
}

void places_undo_create(pxc_fs *fs, int dirfd, const char *name,
                        const uint8_t id[PXC_FILE_ID_BYTES])
{
    places_undo_add(fs, dirfd, name, id);
    (void)keystore_file_delete(fs->ks, id);
}

void places_forget(pxc_fs *fs, int dirfd, const char *name, const uint8_t *id)
{
    char path[PATH_MAX];
    int rc = places_path(fs, dirfd, name, path, sizeof path);
    if (rc == 0)
        rc = keystore_file_forget(fs->ks, id, path);
    else if (id)
        rc = keystore_file_delete(fs->ks, id);
    if (rc != 0)
        pxc_log(LOG_WARNING, "keystore: cannot drop a removed file's %s (fsck drops it)",
                id ? "row and place" : "place");
}

int places_move_begin(pxc_fs *fs, int fromdir, const char *from, int todir, const char *to,
                      int exchange, ks_place_move **m)
{
    char a[PATH_MAX], b[PATH_MAX];
    *m = NULL;
    int rc = places_path(fs, fromdir, from, a, sizeof a);
    if (rc == 0)
        rc = places_path(fs, todir, to, b, sizeof b);
    if (rc == 0 && keystore_place_move_begin(fs->ks, a, b, exchange, m) != KS_OK)
        rc = -EIO;
    if (rc)
        pxc_log(LOG_ERR, "keystore: cannot record a rename's new places: %s", strerror(-rc));
    return rc ? -EIO : 0;
}

void places_move_end(pxc_fs *fs, ks_place_move *m, int done)
{
    if (m && keystore_place_move_end(fs->ks, m, done) != KS_OK)
        pxc_log(LOG_WARNING, "keystore: cannot %s a rename's places (fsck repairs them)",
                done ? "finish" : "take back");
}

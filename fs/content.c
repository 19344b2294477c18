#include "fs/content.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "fs/log.h"

/* ---- keystore rows ------------------------------------------------------ */

static void row_put(pxc_fs *fs, const opaque_file *f)
{
    ks_file_row row;
    memset(&row, 0, sizeof row);
    memcpy(row.file_id, f->secrets.file_id, sizeof row.file_id);
    row.kind = PXC_KIND_OPAQUE;
    memcpy(row.seed_sealed, f->sealed, sizeof f->sealed);
    row.seed_sealed_len = sizeof f->sealed;
    row.plain_size = f->plain_size;
    int rc = keystore_file_put(fs->ks, &row);
    if (rc != KS_OK)
        pxc_log(LOG_WARNING, "keystore: cannot record a file: %s (fsck can rebuild it)",
                keystore_strerror(rc));
}

/* With n write-locked, after its content changed. */
static void row_update(pxc_fs *fs, pxc_inode *n)
{
    struct stat st;
    int rc =
        keystore_file_update(fs->ks, n->file.secrets.file_id, PXC_KIND_OPAQUE, n->file.plain_size);
    if (rc == KS_ERR_NOTFOUND && fstat(n->file.fd, &st) == 0 && st.st_nlink > 0) {
        row_put(fs, &n->file); /* a file from before this row existed: index it now */
    } else if (rc != KS_OK && rc != KS_ERR_NOTFOUND) {
        char name[512];
        inode_name(fs->inodes, n, name, sizeof name);
        pxc_log(LOG_WARNING, "%s: keystore update failed: %s", name, keystore_strerror(rc));
    }
}

int content_doomed(int dirfd, const char *name, const struct stat *keep, uint8_t id[16])
{
    struct stat st;
    uint8_t head[32];
    if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode) ||
        st.st_nlink != 1)
        return 0;
    if (keep && keep->st_dev == st.st_dev && keep->st_ino == st.st_ino)
        return 0;
    int fd = openat(dirfd, name, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return 0;
    ssize_t r = pread(fd, head, sizeof head, 0);
    close(fd);
    if (r != (ssize_t)sizeof head || pxc_stored_kind(head, sizeof head) < 0)
        return 0;
    memcpy(id, head + 16, 16);
    return 1;
}

void content_forget_row(pxc_fs *fs, const uint8_t id[16])
{
    int rc = keystore_file_delete(fs->ks, id);
    if (rc != KS_OK)
        pxc_log(LOG_WARNING, "keystore: cannot drop a removed file's row: %s",
                keystore_strerror(rc));
}

/* ---- errors ------------------------------------------------------------- */

static int content_error(pxc_fs *fs, pxc_inode *n, int rc, uint64_t off)
{
    if (rc == -EBADMSG) {
        char name[512];
        inode_name(fs->inodes, n, name, sizeof name);
        pxc_log(LOG_ERR, "%s: stored data fails authentication near offset %llu", name,
                (unsigned long long)off);
        return -EIO;
    }
    return rc;
}

/* ---- sizes -------------------------------------------------------------- */

/* The plaintext size of a stored file from its first bytes and its stored size; 0 for
 * files that are not (valid) stored files: reads of those fail with EIO. */
static uint64_t stored_plain_size(int fd, uint64_t stored_size)
{
    uint8_t head[16];
    uint64_t plain = 0;
    if (pread(fd, head, sizeof head, 0) != (ssize_t)sizeof head ||
        pxc_stored_kind(head, sizeof head) != PXC_KIND_OPAQUE ||
        opaque_plain_size(stored_size, &plain) != 0)
        return 0;
    return plain;
}

void content_stat_size(pxc_fs *fs, pxc_inode *n, int dirfd, const char *name, struct stat *st)
{
    (void)fs;
    pthread_rwlock_rdlock(&n->lock);
    if (n->nfiles > 0) {
        st->st_size = (off_t)n->file.plain_size;
        pthread_rwlock_unlock(&n->lock);
        return;
    }
    pthread_rwlock_unlock(&n->lock);

    char proc[32];
    int fd = name ? openat(dirfd, name, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOFOLLOW)
                  : open(inode_proc_path(n, proc), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    uint64_t plain = 0;
    if (fd >= 0) {
        plain = stored_plain_size(fd, (uint64_t)st->st_size);
        close(fd);
    }
    st->st_size = (off_t)plain;
}

/* ---- the open-file state ------------------------------------------------ */

/* Opens the content of n, read-write even for readers so that one shared fd serves later
 * writers; read-only if that is all the backing file allows and all this handle needs. */
static int open_content_fd(pxc_inode *n, int want_write, int *writable)
{
    char proc[32];
    int fd = open(inode_proc_path(n, proc), O_RDWR | O_CLOEXEC);
    *writable = 1;
    if (fd < 0 && !want_write && (errno == EACCES || errno == EROFS || errno == EPERM)) {
        fd = open(proc, O_RDONLY | O_CLOEXEC);
        *writable = 0;
    }
    return fd < 0 ? -errno : fd;
}

int content_create(pxc_fs *fs, int dirfd, const char *name, mode_t mode, int *fd_out,
                   opaque_file *fresh)
{
    int fd = openat(dirfd, name, O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC | O_NOFOLLOW, mode & 07777);
    if (fd < 0)
        return -errno;
    int rc = opaque_create(fresh, fd, fs->keys);
    if (rc != 0) {
        unlinkat(dirfd, name, 0);
        close(fd);
        return rc;
    }
    row_put(fs, fresh);
    *fd_out = fd;
    return 0;
}

int content_attach(pxc_fs *fs, pxc_inode *n, int want_write, int fd, const opaque_file *fresh)
{
    int writable = fd >= 0, rc = 0;
    pthread_rwlock_wrlock(&n->lock);
    if (n->nfiles > 0) {
        /* Already open: share the state; upgrade the fd if this handle needs to write. */
        if (want_write && !n->fd_writable) {
            if (fd < 0)
                fd = open_content_fd(n, 1, &writable);
            if (fd >= 0 && writable && dup3(fd, n->file.fd, O_CLOEXEC) >= 0)
                n->fd_writable = 1;
        }
        if (fd >= 0)
            close(fd);
        if (want_write && !n->fd_writable) {
            pthread_rwlock_unlock(&n->lock);
            return -EACCES;
        }
    } else {
        if (fd < 0)
            fd = open_content_fd(n, want_write, &writable);
        if (fd < 0) {
            pthread_rwlock_unlock(&n->lock);
            return fd;
        }
        if (fresh)
            n->file = *fresh;
        else
            rc = opaque_open(&n->file, fd, fs->keys);
        if (rc != 0) {
            opaque_close(&n->file);
            close(fd);
            n->file.fd = -1;
            pthread_rwlock_unlock(&n->lock);
            if (rc == -EBADMSG) {
                char name[512];
                inode_name(fs->inodes, n, name, sizeof name);
                pxc_log(LOG_ERR,
                        "%s: not a valid pixcrypt file of this volume "
                        "(header or size fails authentication)",
                        name);
                return -EIO;
            }
            return rc;
        }
        n->file.fd = fd;
        n->fd_writable = writable;
        n->dirty = 0;
    }
    n->nfiles++;
    if (want_write)
        n->writers++;
    pthread_rwlock_unlock(&n->lock);
    return 0;
}

/* The last writer of n closed it, so its content is complete: record it.  Called with n
 * write-locked and dirty.  Format-preserving storage hooks in here: the codec transcodes
 * PNG/JPEG content into its stored form (file first, then the row), or declines and the
 * file stays opaque. */
static void content_commit(pxc_fs *fs, pxc_inode *n)
{
    row_update(fs, n);
}

void content_detach(pxc_fs *fs, pxc_inode *n, int was_writer)
{
    pthread_rwlock_wrlock(&n->lock);
    if (was_writer && n->writers > 0 && --n->writers == 0 && n->dirty) {
        content_commit(fs, n);
        n->dirty = 0;
    }
    if (n->nfiles > 0 && --n->nfiles == 0) {
        close(n->file.fd);
        opaque_close(&n->file);
        n->file.fd = -1;
        n->fd_writable = 0;
    }
    pthread_rwlock_unlock(&n->lock);
}

ssize_t content_read(pxc_fs *fs, pxc_inode *n, void *buf, size_t size, off_t off)
{
    pthread_rwlock_rdlock(&n->lock);
    ssize_t r = opaque_read(&n->file, buf, size, (uint64_t)off);
    pthread_rwlock_unlock(&n->lock);
    return r < 0 ? content_error(fs, n, (int)r, (uint64_t)off) : r;
}

ssize_t content_write(pxc_fs *fs, pxc_inode *n, const void *buf, size_t size, off_t off)
{
    pthread_rwlock_wrlock(&n->lock);
    ssize_t r = opaque_write(&n->file, buf, size, (uint64_t)off);
    if (r > 0)
        n->dirty = 1;
    pthread_rwlock_unlock(&n->lock);
    return r < 0 ? content_error(fs, n, (int)r, (uint64_t)off) : r;
}

int content_truncate(pxc_fs *fs, pxc_inode *n, off_t size)
{
    uint8_t old_id[16];
    if (size < 0)
        return -EINVAL;
    pthread_rwlock_wrlock(&n->lock);
    memcpy(old_id, n->file.secrets.file_id, sizeof old_id);
    int rc = opaque_truncate(&n->file, (uint64_t)size, fs->keys);
    if (rc == 0) {
        n->dirty = 1;
        if (memcmp(old_id, n->file.secrets.file_id, sizeof old_id) != 0) {
            /* Re-keyed: the row moves to the new file id (unless the file is gone). */
            struct stat st;
            keystore_file_delete(fs->ks, old_id);
            if (fstat(n->file.fd, &st) != 0 || st.st_nlink > 0)
                row_put(fs, &n->file);
        }
    }
    pthread_rwlock_unlock(&n->lock);
    return content_error(fs, n, rc, (uint64_t)size);
}

int content_fsync(pxc_inode *n, int datasync)
{
    pthread_rwlock_rdlock(&n->lock);
    int fd = n->file.fd;
    int rc = (datasync ? fdatasync(fd) : fsync(fd)) ? -errno : 0;
    pthread_rwlock_unlock(&n->lock);
    return rc;
}

/* FUSE operations: map mount paths onto the cipher dir, keep an open-file table, and
 * hand file content to the codec.  Path operations mirror the backing filesystem; file
 * content goes through codec/opaque.  With hard_remove and nullpath_ok, every operation
 * that has an open handle works on the handle's node, not on the path. */
#include "fs/pxcfs.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "fs/log.h"

static pxc_fs *ctx_fs(void)
{
    return fuse_get_context()->private_data;
}

static pxc_node *handle_node(const struct fuse_file_info *fi)
{
    return (pxc_node *)(uintptr_t)fi->fh;
}

/* Mount path -> path relative to the cipher dir ("." for the root).  The keystore
 * directory does not exist as far as the mount is concerned. */
static int rel_path(const char *path, const char **out)
{
    static const size_t ks_len = sizeof KS_DIR - 1;
    if (!path)
        return -ENOENT; /* an unlinked file's handle was expected, not a path */
    while (*path == '/')
        path++;
    if (*path == '\0') {
        *out = ".";
        return 0;
    }
    if (strncmp(path, KS_DIR, ks_len) == 0 && (path[ks_len] == '\0' || path[ks_len] == '/'))
        return -ENOENT;
    *out = path;
    return 0;
}

/* ---- ownership of new entries ------------------------------------------- */

/* With allow_other the daemon runs as root and new entries must belong to the caller,
 * as on a local filesystem (group from a setgid parent directory). */
static void own_by_caller(pxc_fs *fs, const char *rel, int fd)
{
    if (!fs->daemon_is_root)
        return;
    struct fuse_context *c = fuse_get_context();
    gid_t gid = c->gid;
    char parent[4096];
    struct stat pst;

    if (c->uid == geteuid() && c->gid == getegid())
        return; /* the backing filesystem already did what the caller's own would */

    snprintf(parent, sizeof parent, "%s", rel);
    char *slash = strrchr(parent, '/');
    if (slash)
        *slash = '\0';
    else
        strcpy(parent, ".");
    if (fstatat(fs->root_fd, parent, &pst, 0) == 0 && (pst.st_mode & S_ISGID))
        gid = (gid_t)-1; /* the backing filesystem already gave it the directory's group */
    int rc = fd >= 0 ? fchown(fd, c->uid, gid)
                     : fchownat(fs->root_fd, rel, c->uid, gid, AT_SYMLINK_NOFOLLOW);
    if (rc != 0)
        pxc_log(LOG_WARNING, "/%s: cannot give it to uid %u: %s", rel, (unsigned)c->uid,
                strerror(errno));
}

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

/* Called with the node locked, after its content changed and its last writer left. */
static void row_update(pxc_fs *fs, pxc_node *n)
{
    struct stat st;
    int rc =
        keystore_file_update(fs->ks, n->file.secrets.file_id, PXC_KIND_OPAQUE, n->file.plain_size);
    if (rc == KS_ERR_NOTFOUND && fstat(n->file.fd, &st) == 0 && st.st_nlink > 0)
        row_put(fs, &n->file); /* a file from before this row existed: index it now */
    else if (rc != KS_OK && rc != KS_ERR_NOTFOUND)
        pxc_log(LOG_WARNING, "%s: keystore update failed: %s", n->path, keystore_strerror(rc));
}

/* The file id of the regular file at rel if removing that name removes its last link
 * (so its keystore row must go too).  Returns 1 and fills id, or 0. */
static int doomed_file_id(pxc_fs *fs, const char *rel, const struct stat *keep, uint8_t id[16])
{
    struct stat st;
    uint8_t head[32];
    if (fstatat(fs->root_fd, rel, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode) ||
        st.st_nlink != 1)
        return 0;
    if (keep && keep->st_dev == st.st_dev && keep->st_ino == st.st_ino)
        return 0;
    int fd = openat(fs->root_fd, rel, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return 0;
    ssize_t r = pread(fd, head, sizeof head, 0);
    close(fd);
    if (r != (ssize_t)sizeof head || pxc_stored_kind(head, sizeof head) < 0)
        return 0;
    memcpy(id, head + 16, 16);
    return 1;
}

/* ---- the open-file table ------------------------------------------------ */

static int is_write_access(int flags)
{
    return (flags & O_ACCMODE) != O_RDONLY;
}

/* Adds a handle to the node of an open backing fd (taking over the fd).  `fresh` is
 * the codec state of a file just created through this fd, or NULL to read its header. */
static int node_attach(pxc_fs *fs, int fd, int fd_writable, int want_write, const char *path,
                       const opaque_file *fresh, pxc_node **out)
{
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    node_table_lock(fs->nodes);
    pxc_node *n = node_table_find(fs->nodes, st.st_dev, st.st_ino);
    if (n) {
        /* Already open: share the node; upgrade its fd if this handle needs to write. */
        if (want_write && !n->fd_writable && fd_writable) {
            dup3(fd, n->file.fd, O_CLOEXEC);
            n->fd_writable = 1;
        }
        close(fd);
        if (want_write && !n->fd_writable) {
            node_table_unlock(fs->nodes);
            return -EACCES;
        }
    } else {
        n = node_table_add(fs->nodes, st.st_dev, st.st_ino);
        if (!n) {
            node_table_unlock(fs->nodes);
            close(fd);
            return -ENOMEM;
        }
        int rc = 0;
        if (fresh)
            n->file = *fresh;
        else
            rc = opaque_open(&n->file, fd, fs->keys);
        n->file.fd = fd;
        n->fd_writable = fd_writable;
        if (rc != 0) {
            node_table_remove(fs->nodes, n); /* closes fd */
            node_table_unlock(fs->nodes);
            if (rc == -EBADMSG) {
                pxc_log(LOG_ERR,
                        "%s: not a valid pixcrypt file of this volume "
                        "(header or size fails authentication)",
                        path ? path : "?");
                return -EIO;
            }
            return rc;
        }
    }
    n->refs++;
    if (want_write)
        n->writers++;
    node_set_path(n, path);
    node_table_unlock(fs->nodes);
    *out = n;
    return 0;
}

static int node_open(pxc_fs *fs, const char *path, int flags, pxc_node **out)
{
    const char *rel;
    int rc = rel_path(path, &rel), want_write = is_write_access(flags), writable = 1;
    if (rc)
        return rc;
    /* Read-write even for readers, so that one shared fd serves later writers. */
    int fd = openat(fs->root_fd, rel, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0 && !want_write && (errno == EACCES || errno == EROFS || errno == EPERM)) {
        fd = openat(fs->root_fd, rel, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        writable = 0;
    }
    if (fd < 0)
        return -errno;
    return node_attach(fs, fd, writable, want_write, path, NULL, out);
}

static void node_release(pxc_fs *fs, pxc_node *n, int was_writer)
{
    int last_writer = 0;
    node_table_lock(fs->nodes);
    if (was_writer)
        last_writer = --n->writers == 0;
    node_table_unlock(fs->nodes);

    if (last_writer) {
        /* The content is complete: record it.  (Format-preserving codecs transcode the
         * file at this point.) */
        pthread_rwlock_wrlock(&n->lock);
        if (n->dirty) {
            row_update(fs, n);
            n->dirty = 0;
        }
        pthread_rwlock_unlock(&n->lock);
    }

    node_table_lock(fs->nodes);
    if (--n->refs == 0)
        node_table_remove(fs->nodes, n);
    node_table_unlock(fs->nodes);
}

static int content_error(pxc_node *n, int rc, uint64_t off)
{
    if (rc == -EBADMSG) {
        pxc_log(LOG_ERR, "%s: stored data fails authentication near offset %llu", n->path,
                (unsigned long long)off);
        return -EIO;
    }
    return rc;
}

static int node_truncate(pxc_fs *fs, pxc_node *n, off_t size)
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
            /* Re-keyed: the row moves to the new file id. */
            keystore_file_delete(fs->ks, old_id);
            row_put(fs, &n->file);
        }
    }
    pthread_rwlock_unlock(&n->lock);
    return content_error(n, rc, (uint64_t)size);
}

/* ---- attributes --------------------------------------------------------- */

/* Replaces a stored regular file's size by its plaintext size: from the open node if
 * there is one, else from the stored header and size (one small read, no decryption). */
static void plain_attr(pxc_fs *fs, int dirfd, const char *rel, struct stat *st)
{
    node_table_lock(fs->nodes);
    pxc_node *n = node_table_find(fs->nodes, st->st_dev, st->st_ino);
    if (n) {
        st->st_size = (off_t)n->file.plain_size;
        node_table_unlock(fs->nodes);
        return;
    }
    node_table_unlock(fs->nodes);

    uint8_t head[16];
    uint64_t plain = 0;
    int fd = openat(dirfd, rel, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd >= 0) {
        if (pread(fd, head, sizeof head, 0) == (ssize_t)sizeof head &&
            pxc_stored_kind(head, sizeof head) == PXC_KIND_OPAQUE &&
            opaque_plain_size((uint64_t)st->st_size, &plain) != 0)
            plain = 0;
        close(fd);
    }
    st->st_size = (off_t)plain; /* unreadable or damaged files show as empty; reads say EIO */
}

static int pxc_getattr(const char *path, struct stat *st, struct fuse_file_info *fi)
{
    pxc_fs *fs = ctx_fs();
    if (fi && fi->fh) {
        pxc_node *n = handle_node(fi);
        if (fstat(n->file.fd, st) != 0)
            return -errno;
        pthread_rwlock_rdlock(&n->lock);
        st->st_size = (off_t)n->file.plain_size;
        pthread_rwlock_unlock(&n->lock);
        return 0;
    }
    const char *rel;
    int rc = rel_path(path, &rel);
    if (rc)
        return rc;
    if (fstatat(fs->root_fd, rel, st, AT_SYMLINK_NOFOLLOW) != 0)
        return -errno;
    if (S_ISREG(st->st_mode))
        plain_attr(fs, fs->root_fd, rel, st);
    return 0;
}

static int pxc_opendir(const char *path, struct fuse_file_info *fi)
{
    const char *rel;
    int rc = rel_path(path, &rel);
    if (rc)
        return rc;
    int dfd = openat(ctx_fs()->root_fd, rel, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return -errno;
    fi->fh = (uint64_t)dfd;
    return 0;
}

static int pxc_releasedir(const char *path, struct fuse_file_info *fi)
{
    (void)path;
    close((int)fi->fh);
    return 0;
}

/* Lists the whole directory in one call (libfuse buffers it), skipping the keystore
 * directory at the root. */
static int pxc_readdir(const char *path, void *buf, fuse_fill_dir_t fill, off_t off,
                       struct fuse_file_info *fi, enum fuse_readdir_flags flags)
{
    pxc_fs *fs = ctx_fs();
    (void)path;
    (void)off;
    /* A fresh open file description: its own position, independent of other readers. */
    int dfd = openat((int)fi->fh, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return -errno;
    DIR *d = fdopendir(dfd);
    if (!d) {
        close(dfd);
        return -errno;
    }
    struct stat dst, rootst;
    int at_root = fstat(dfd, &dst) == 0 && fstat(fs->root_fd, &rootst) == 0 &&
                  dst.st_dev == rootst.st_dev && dst.st_ino == rootst.st_ino;
    int plus = flags & FUSE_READDIR_PLUS;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        struct stat st;
        enum fuse_fill_dir_flags fill_flags = 0;
        if (at_root && strcmp(e->d_name, KS_DIR) == 0)
            continue;
        memset(&st, 0, sizeof st);
        st.st_ino = e->d_ino;
        st.st_mode = DTTOIF(e->d_type);
        /* readdirplus: hand over full attributes so `ls -l` needs no lookups. */
        if (plus && strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0 &&
            fstatat(dfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0) {
            if (S_ISREG(st.st_mode))
                plain_attr(fs, dfd, e->d_name, &st);
            fill_flags = FUSE_FILL_DIR_PLUS;
        }
        if (fill(buf, e->d_name, &st, 0, fill_flags))
            break;
    }
    closedir(d);
    return 0;
}

static int pxc_readlink(const char *path, char *buf, size_t size)
{
    const char *rel;
    int rc = rel_path(path, &rel);
    if (rc)
        return rc;
    if (size == 0)
        return -EINVAL;
    ssize_t n = readlinkat(ctx_fs()->root_fd, rel, buf, size - 1);
    if (n < 0)
        return -errno;
    buf[n] = '\0';
    return 0;
}

static int pxc_access(const char *path, int mask)
{
    const char *rel;
    int rc = rel_path(path, &rel);
    if (rc)
        return rc;
    return faccessat(ctx_fs()->root_fd, rel, mask, AT_EACCESS) ? -errno : 0;
}

static int pxc_statfs(const char *path, struct statvfs *sv)
{
    (void)path;
    return fstatvfs(ctx_fs()->root_fd, sv) ? -errno : 0;
}

static int pxc_chmod(const char *path, mode_t mode, struct fuse_file_info *fi)
{
    pxc_fs *fs = ctx_fs();
    if (fi && fi->fh)
        return fchmod(handle_node(fi)->file.fd, mode) ? -errno : 0;
    const char *rel;
    int rc = rel_path(path, &rel);
    if (rc)
        return rc;
    return fchmodat(fs->root_fd, rel, mode, 0) ? -errno : 0;
}

static int pxc_chown(const char *path, uid_t uid, gid_t gid, struct fuse_file_info *fi)
{
    pxc_fs *fs = ctx_fs();
    if (fi && fi->fh)
        return fchown(handle_node(fi)->file.fd, uid, gid) ? -errno : 0;
    const char *rel;
    int rc = rel_path(path, &rel);
    if (rc)
        return rc;
    return fchownat(fs->root_fd, rel, uid, gid, AT_SYMLINK_NOFOLLOW) ? -errno : 0;
}

static int pxc_utimens(const char *path, const struct timespec tv[2], struct fuse_file_info *fi)
{
    pxc_fs *fs = ctx_fs();
    if (fi && fi->fh)
        return futimens(handle_node(fi)->file.fd, tv) ? -errno : 0;
    const char *rel;
    int rc = rel_path(path, &rel);
    if (rc)
        return rc;
    return utimensat(fs->root_fd, rel, tv, AT_SYMLINK_NOFOLLOW) ? -errno : 0;
}

/* ---- namespace ---------------------------------------------------------- */

static int pxc_mkdir(const char *path, mode_t mode)
{
    pxc_fs *fs = ctx_fs();
    const char *rel;
    int rc = rel_path(path, &rel);
    if (rc)
        return rc == -ENOENT ? -EPERM : rc;
    if (mkdirat(fs->root_fd, rel, mode) != 0)
        return -errno;
    own_by_caller(fs, rel, -1);
    return 0;
}

static int pxc_rmdir(const char *path)
{
    const char *rel;
    int rc = rel_path(path, &rel);
    if (rc)
        return rc;
    return unlinkat(ctx_fs()->root_fd, rel, AT_REMOVEDIR) ? -errno : 0;
}

static int pxc_symlink(const char *target, const char *path)
{
    pxc_fs *fs = ctx_fs();
    const char *rel;
    int rc = rel_path(path, &rel);
    if (rc)
        return rc == -ENOENT ? -EPERM : rc;
    if (symlinkat(target, fs->root_fd, rel) != 0)
        return -errno;
    own_by_caller(fs, rel, -1);
    return 0;
}

static int pxc_link(const char *from, const char *to)
{
    const char *rf, *rt;
    int rc = rel_path(from, &rf);
    if (rc == 0)
        rc = rel_path(to, &rt);
    if (rc)
        return rc;
    int fd = ctx_fs()->root_fd;
    return linkat(fd, rf, fd, rt, 0) ? -errno : 0;
}

static int pxc_unlink(const char *path)
{
    pxc_fs *fs = ctx_fs();
    const char *rel;
    uint8_t id[16];
    int rc = rel_path(path, &rel);
    if (rc)
        return rc;
    int doomed = doomed_file_id(fs, rel, NULL, id);
    if (unlinkat(fs->root_fd, rel, 0) != 0)
        return -errno;
    if (doomed)
        keystore_file_delete(fs->ks, id);
    return 0;
}

static int pxc_rename(const char *from, const char *to, unsigned int flags)
{
    pxc_fs *fs = ctx_fs();
    const char *rf, *rt;
    struct stat src;
    uint8_t id[16];
    int rc = rel_path(from, &rf);
    if (rc == 0)
        rc = rel_path(to, &rt);
    if (rc)
        return rc;
    int doomed = 0;
    if (!(flags & RENAME_EXCHANGE) && fstatat(fs->root_fd, rf, &src, AT_SYMLINK_NOFOLLOW) == 0)
        doomed = doomed_file_id(fs, rt, &src, id);
    if (renameat2(fs->root_fd, rf, fs->root_fd, rt, flags) != 0)
        return -errno;
    if (doomed)
        keystore_file_delete(fs->ks, id);
    return 0;
}

/* ---- file content ------------------------------------------------------- */

/* Creates the backing file and its empty stored form.  On success *fd_out is open
 * read-write and *fresh holds its codec state. */
static int create_stored_file(pxc_fs *fs, const char *rel, mode_t mode, int *fd_out,
                              opaque_file *fresh)
{
    int fd =
        openat(fs->root_fd, rel, O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC | O_NOFOLLOW, mode & 07777);
    if (fd < 0)
        return -errno;
    own_by_caller(fs, rel, fd);
    int rc = opaque_create(fresh, fd, fs->keys);
    if (rc != 0) {
        unlinkat(fs->root_fd, rel, 0);
        close(fd);
        return rc;
    }
    row_put(fs, fresh);
    *fd_out = fd;
    return 0;
}

static int pxc_open(const char *path, struct fuse_file_info *fi)
{
    pxc_fs *fs = ctx_fs();
    pxc_node *n;
    int rc = node_open(fs, path, fi->flags, &n);
    if (rc)
        return rc;
    if ((fi->flags & O_TRUNC) && is_write_access(fi->flags)) {
        rc = node_truncate(fs, n, 0);
        if (rc) {
            node_release(fs, n, 1);
            return rc;
        }
    }
    fi->fh = (uint64_t)(uintptr_t)n;
    return 0;
}

static int pxc_create(const char *path, mode_t mode, struct fuse_file_info *fi)
{
    pxc_fs *fs = ctx_fs();
    const char *rel;
    opaque_file fresh;
    pxc_node *n;
    int fd;
    int rc = rel_path(path, &rel);
    if (rc)
        return rc == -ENOENT ? -EPERM : rc;
    rc = create_stored_file(fs, rel, mode, &fd, &fresh);
    if (rc == -EEXIST && !(fi->flags & O_EXCL))
        return pxc_open(path, fi); /* lost a race with another creator: open theirs */
    if (rc)
        return rc;
    rc = node_attach(fs, fd, 1, is_write_access(fi->flags), path, &fresh, &n);
    opaque_close(&fresh);
    if (rc)
        return rc;
    fi->fh = (uint64_t)(uintptr_t)n;
    return 0;
}

static int pxc_mknod(const char *path, mode_t mode, dev_t rdev)
{
    pxc_fs *fs = ctx_fs();
    const char *rel;
    int rc = rel_path(path, &rel);
    if (rc)
        return rc == -ENOENT ? -EPERM : rc;
    if (S_ISREG(mode)) {
        opaque_file fresh;
        int fd;
        rc = create_stored_file(fs, rel, mode, &fd, &fresh);
        if (rc == 0) {
            close(fd);
            opaque_close(&fresh);
        }
        return rc;
    }
    if (mknodat(fs->root_fd, rel, mode, rdev) != 0)
        return -errno;
    own_by_caller(fs, rel, -1);
    return 0;
}

static int pxc_read(const char *path, char *buf, size_t size, off_t off, struct fuse_file_info *fi)
{
    (void)path;
    pxc_node *n = handle_node(fi);
    pthread_rwlock_rdlock(&n->lock);
    ssize_t r = opaque_read(&n->file, buf, size, (uint64_t)off);
    pthread_rwlock_unlock(&n->lock);
    return r < 0 ? content_error(n, (int)r, (uint64_t)off) : (int)r;
}

static int pxc_write(const char *path, const char *buf, size_t size, off_t off,
                     struct fuse_file_info *fi)
{
    (void)path;
    pxc_node *n = handle_node(fi);
    pthread_rwlock_wrlock(&n->lock);
    ssize_t r = opaque_write(&n->file, buf, size, (uint64_t)off);
    if (r > 0)
        n->dirty = 1;
    pthread_rwlock_unlock(&n->lock);
    return r < 0 ? content_error(n, (int)r, (uint64_t)off) : (int)r;
}

static int pxc_truncate(const char *path, off_t size, struct fuse_file_info *fi)
{
    pxc_fs *fs = ctx_fs();
    if (fi && fi->fh)
        return node_truncate(fs, handle_node(fi), size);
    pxc_node *n;
    int rc = node_open(fs, path, O_WRONLY, &n);
    if (rc)
        return rc;
    rc = node_truncate(fs, n, size);
    node_release(fs, n, 1);
    return rc;
}

static int pxc_fsync(const char *path, int datasync, struct fuse_file_info *fi)
{
    (void)path;
    int fd = handle_node(fi)->file.fd;
    return (datasync ? fdatasync(fd) : fsync(fd)) ? -errno : 0;
}

static int pxc_release(const char *path, struct fuse_file_info *fi)
{
    (void)path;
    node_release(ctx_fs(), handle_node(fi), is_write_access(fi->flags));
    return 0;
}

static void *pxc_init(struct fuse_conn_info *conn, struct fuse_config *cfg)
{
    cfg->use_ino = 1;     /* hard links show one inode number, as on ext4 */
    cfg->hard_remove = 1; /* unlinked open files stay usable through their handle */
    cfg->nullpath_ok = 1;
    cfg->entry_timeout = 1.0;
    cfg->attr_timeout = 1.0;
    cfg->negative_timeout = 0.0;
    if (conn->capable & FUSE_CAP_READDIRPLUS)
        conn->want |= FUSE_CAP_READDIRPLUS;
    conn->max_write = 1 << 20; /* fewer, larger writes: one pwrite per call */
    return fuse_get_context()->private_data;
}

static const struct fuse_operations operations = {
    .init = pxc_init,
    .getattr = pxc_getattr,
    .readlink = pxc_readlink,
    .mknod = pxc_mknod,
    .mkdir = pxc_mkdir,
    .unlink = pxc_unlink,
    .rmdir = pxc_rmdir,
    .symlink = pxc_symlink,
    .rename = pxc_rename,
    .link = pxc_link,
    .chmod = pxc_chmod,
    .chown = pxc_chown,
    .truncate = pxc_truncate,
    .open = pxc_open,
    .read = pxc_read,
    .write = pxc_write,
    .statfs = pxc_statfs,
    .release = pxc_release,
    .fsync = pxc_fsync,
    .opendir = pxc_opendir,
    .readdir = pxc_readdir,
    .releasedir = pxc_releasedir,
    .access = pxc_access,
    .create = pxc_create,
    .utimens = pxc_utimens,
};

const struct fuse_operations *pxcfs_operations(void)
{
    return &operations;
}

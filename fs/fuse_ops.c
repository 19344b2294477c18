/* FUSE operations (libfuse's low-level API), modelled on libfuse's
 * example/passthrough_hp.cc: FUSE inode ids are entries of the inode table
 * (fs/inodes.h), one per backing inode, so hard links share one kernel inode; every
 * operation works relative to the entries' O_PATH fds.  File content goes through
 * fs/content.h.  The keystore directory at the root of the cipher dir does not exist
 * as far as the mount is concerned. */
#include "fs/pxcfs.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "fs/content.h"
#include "fs/places.h"
#include "fs/log.h"
#include "fs/xattr_ops.h"

/* Kernel cache lifetimes, in seconds.  Every change made through the mount goes through
 * the one kernel inode of the file it changes (hard links included), and the kernel
 * updates or invalidates that inode's attributes and the names involved itself, so
 * cached entries and attributes are never stale for changes made through the mount.
 * Only changes made directly in the cipher dir take up to this long to show.  Negative
 * entries are not cached, so a file put into the cipher dir shows up at once. */
#define ENTRY_TIMEOUT 1.0
#define ATTR_TIMEOUT 1.0

static fuse_ino_t id_of(pxc_fs *fs, pxc_inode *n)
{
    return n == inode_table_root(fs->inodes) ? FUSE_ROOT_ID : (fuse_ino_t)(uintptr_t)n;
}

static int is_write_access(int flags)
{
    return (flags & O_ACCMODE) != O_RDONLY;
}

/* The keystore directory at the root and the temp files of stored-file replacements
 * anywhere: invisible, and no entry may take their names. */
static int is_keystore_name(pxc_fs *fs, pxc_inode *parent, const char *name)
{
    return content_is_temp_name(name) || (parent == inode_table_root(fs->inodes) &&
                                          (strcmp(name, KS_DIR) == 0 || strcmp(name, "..") == 0));
}

/* ---- names -------------------------------------------------------------- */

/* The name key of directory `dir` (NULL with plaintext names), loaded on first use. */
static int dir_key(pxc_fs *fs, pxc_inode *dir, const pxc_dirkey **out)
{
    *out = NULL;
    if (!fs->names.encrypted)
        return 0;
    pxc_dirkey *dk = __atomic_load_n(&dir->dirkey, __ATOMIC_ACQUIRE);
    if (!dk) {
        pxc_dirkey *fresh = malloc(sizeof *fresh);
        if (!fresh)
            return -ENOMEM;
        int rc = names_dirkey_load(&fs->names, dir->fd, fresh);
        if (rc) {
            char where[512];
            free(fresh);
            inode_name(fs->inodes, dir, where, sizeof where);
            pxc_log(LOG_ERR, "%s: the directory's name key (" DIRIV_FILE ") is %s", where,
                    rc == -EIO ? "missing or damaged" : strerror(-rc));
            return rc;
        }
        pxc_dirkey *expected = NULL;
        if (__atomic_compare_exchange_n(&dir->dirkey, &expected, fresh, 0, __ATOMIC_ACQ_REL,
                                        __ATOMIC_ACQUIRE)) {
            dk = fresh;
        } else {
            free(fresh);
            dk = expected;
        }
    }
    *out = dk;
    return 0;
}

/* The stored name of the plain name `name` in dir. */
static int stored_of(pxc_fs *fs, pxc_inode *dir, const char *name, stored_name *s)
{
    const pxc_dirkey *dk;
    int rc = dir_key(fs, dir, &dk);
    return rc ? rc : names_to_stored(&fs->names, dk, name, s);
}

/* A symlink's st_size is the length of its plain target. */
static void link_size(pxc_fs *fs, int fd, struct stat *st)
{
    char stored[PATH_MAX + 1], plain[PATH_MAX];
    if (!fs->names.encrypted || !S_ISLNK(st->st_mode))
        return;
    ssize_t len = readlinkat(fd, "", stored, sizeof stored - 1);
    if (len < 0)
        return;
    stored[len] = '\0';
    int n = pxc_link_decrypt(fs->names.keys, stored, plain, sizeof plain);
    if (n >= 0)
        st->st_size = n;
}

/* ---- attributes and entries --------------------------------------------- */

/* Attributes of n for the kernel: the backing inode's, with the plaintext size. */
static int inode_attr(pxc_fs *fs, pxc_inode *n, struct stat *st)
{
    if (fstatat(n->fd, "", st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) != 0)
        return -errno;
    if (S_ISREG(st->st_mode))
        content_stat_size(fs, n, -1, NULL, st, NULL);
    link_size(fs, n->fd, st);
    return 0;
}

/* Fills e for the inode that the O_PATH fd refers to (taken over) and counts one
 * kernel lookup on it.  name/dirfd, if given, is the name it was found by, to read its
 * header; then -ESTALE if that name was replaced in the meantime (look it up again). */
static int entry_from_fd(pxc_fs *fs, int fd, int dirfd, const char *name,
                         struct fuse_entry_param *e)
{
    memset(e, 0, sizeof *e);
    if (fstatat(fd, "", &e->attr, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) != 0) {
        int err = errno;
        close(fd);
        return -err;
    }
    pxc_inode *n = name ? inode_lookup_linked(fs->inodes, fd, &e->attr)
                        : inode_lookup(fs->inodes, fd, &e->attr);
    if (!n)
        return errno == ESTALE ? -ESTALE : -ENOMEM;
    uint8_t id[16];
    if (S_ISREG(e->attr.st_mode) && content_stat_size(fs, n, dirfd, name, &e->attr, id) && name)
        places_check_name(fs, n, dirfd, name, id);
    link_size(fs, n->fd, &e->attr);
    e->ino = id_of(fs, n);
    e->attr_timeout = ATTR_TIMEOUT;
    e->entry_timeout = ENTRY_TIMEOUT;
    return 0;
}

/* Looks up an entry by its stored name. */
static int lookup_stored(pxc_fs *fs, pxc_inode *parent, const char *name,
                         struct fuse_entry_param *e)
{
    for (int tries = 0;; tries++) {
        int fd = openat(parent->fd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0) {
            int err = errno;
            if (err == EMFILE || err == ENFILE)
                pxc_log(LOG_ERR, "lookup: out of file descriptors");
            return -err;
        }
        /* -ESTALE: the file was replaced (a stored form rewritten) while being looked
         * up; the name now refers to its new inode. */
        int rc = entry_from_fd(fs, fd, parent->fd, name, e);
        if (rc != -ESTALE || tries == 8)
            return rc;
    }
}

static int do_lookup(pxc_fs *fs, pxc_inode *parent, const char *name, struct fuse_entry_param *e)
{
    stored_name s;
    if (is_keystore_name(fs, parent, name))
        return -ENOENT;
    int rc = stored_of(fs, parent, name, &s);
    return rc ? rc : lookup_stored(fs, parent, s.name, e);
}

/* The kernel did not take the entry we replied with (the request was interrupted). */
static void undo_lookup(pxc_fs *fs, const struct fuse_entry_param *e)
{
    pxc_inode *n =
        e->ino == FUSE_ROOT_ID ? inode_table_root(fs->inodes) : (pxc_inode *)(uintptr_t)e->ino;
    inode_forget(fs->inodes, n, 1);
}

static void reply_entry(fuse_req_t req, pxc_fs *fs, const struct fuse_entry_param *e)
{
    if (fuse_reply_entry(req, e) != 0)
        undo_lookup(fs, e);
}

static void pxc_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    pxc_fs *fs = req_fs(req);
    struct fuse_entry_param e;
    int rc = do_lookup(fs, inode_of(req, parent), name, &e);
    if (rc)
        reply_err(req, rc);
    else
        reply_entry(req, fs, &e);
}

static void forget_one(pxc_fs *fs, fuse_ino_t ino, uint64_t nlookup)
{
    if (ino != FUSE_ROOT_ID)
        inode_forget(fs->inodes, (pxc_inode *)(uintptr_t)ino, nlookup);
}

static void pxc_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
    forget_one(req_fs(req), ino, nlookup);
    fuse_reply_none(req);
}

static void pxc_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets)
{
    pxc_fs *fs = req_fs(req);
    for (size_t i = 0; i < count; i++)
        forget_one(fs, forgets[i].ino, forgets[i].nlookup);
    fuse_reply_none(req);
}

static void pxc_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    (void)fi;
    struct stat st;
    int rc = inode_attr(req_fs(req), inode_of(req, ino), &st);
    if (rc)
        reply_err(req, rc);
    else
        fuse_reply_attr(req, &st, ATTR_TIMEOUT);
}

/* Sets a regular file's plaintext size, through the handle's open state if there is a
 * handle, else through a temporary one. */
static int set_size(pxc_fs *fs, pxc_inode *n, off_t size, struct fuse_file_info *fi)
{
    if (n->type != S_IFREG)
        return n->type == S_IFDIR ? -EISDIR : -EINVAL;
    if (fi)
        return content_truncate(fs, n, size);
    inode_open_ref(fs->inodes, n);
    int rc = content_attach(fs, n, 1, size == 0, -1, NULL);
    if (rc == 0) {
        rc = content_truncate(fs, n, size);
        content_detach(fs, n, 1);
    }
    inode_open_unref(fs->inodes, n);
    return rc;
}

static void pxc_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int valid,
                        struct fuse_file_info *fi)
{
    pxc_fs *fs = req_fs(req);
    pxc_inode *n = inode_of(req, ino);
    char proc[32];
    int rc = 0;

    /* A regular file's content lock keeps out a replacement of its stored file (which
     * copies these attributes to the new file) while they change; a directory's times
     * must not change while a replacement in it puts its mtime back. */
    int locked = n->type == S_IFREG;
    if (n->type == S_IFDIR)
        pthread_rwlock_rdlock(&fs->ns_lock);
    inode_proc_path(n, proc);
    if (locked)
        pthread_rwlock_rdlock(&n->lock);
    if ((valid & FUSE_SET_ATTR_MODE) && chmod(proc, attr->st_mode & 07777) != 0)
        rc = -errno;
    if (rc == 0 && (valid & (FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID))) {
        uid_t uid = (valid & FUSE_SET_ATTR_UID) ? attr->st_uid : (uid_t)-1;
        gid_t gid = (valid & FUSE_SET_ATTR_GID) ? attr->st_gid : (gid_t)-1;
        if (fchownat(n->fd, "", uid, gid, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) != 0)
            rc = -errno;
    }
    if (locked)
        pthread_rwlock_unlock(&n->lock);
    if (rc == 0 && (valid & FUSE_SET_ATTR_SIZE))
        rc = set_size(fs, n, attr->st_size, fi);
    if (locked)
        pthread_rwlock_rdlock(&n->lock);
    if (rc == 0 && (valid & (FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_MTIME))) {
        struct timespec tv[2] = {{0, UTIME_OMIT}, {0, UTIME_OMIT}};
        if (valid & FUSE_SET_ATTR_ATIME_NOW)
            tv[0].tv_nsec = UTIME_NOW;
        else if (valid & FUSE_SET_ATTR_ATIME)
            tv[0] = attr->st_atim;
        if (valid & FUSE_SET_ATTR_MTIME_NOW)
            tv[1].tv_nsec = UTIME_NOW;
        else if (valid & FUSE_SET_ATTR_MTIME)
            tv[1] = attr->st_mtim;
        /* Through /proc: lands on the inode itself, symlinks included. */
        if (utimensat(AT_FDCWD, proc, tv, 0) != 0)
            rc = -errno;
    }
    if (locked)
        pthread_rwlock_unlock(&n->lock);
    if (n->type == S_IFDIR)
        pthread_rwlock_unlock(&fs->ns_lock);
    struct stat st;
    if (rc == 0)
        rc = inode_attr(fs, n, &st);
    if (rc)
        reply_err(req, rc);
    else
        fuse_reply_attr(req, &st, ATTR_TIMEOUT);
}

static void pxc_readlink(fuse_req_t req, fuse_ino_t ino)
{
    pxc_fs *fs = req_fs(req);
    pxc_inode *n = inode_of(req, ino);
    char buf[PATH_MAX + 1], plain[PATH_MAX];
    ssize_t len = readlinkat(n->fd, "", buf, sizeof buf);
    if (len < 0) {
        reply_err(req, errno);
    } else if ((size_t)len >= sizeof buf) {
        reply_err(req, ENAMETOOLONG);
    } else {
        buf[len] = '\0';
        if (!fs->names.encrypted) {
            fuse_reply_readlink(req, buf);
        } else if (pxc_link_decrypt(fs->names.keys, buf, plain, sizeof plain) >= 0) {
            fuse_reply_readlink(req, plain);
        } else {
            char where[512];
            inode_name(fs->inodes, n, where, sizeof where);
            pxc_log(LOG_ERR, "%s: the stored symlink target does not decrypt", where);
            reply_err(req, EIO);
        }
    }
}

static void pxc_access(fuse_req_t req, fuse_ino_t ino, int mask)
{
    char proc[32];
    inode_proc_path(inode_of(req, ino), proc);
    reply_err(req, faccessat(AT_FDCWD, proc, mask, AT_EACCESS) ? errno : 0);
}

static void pxc_statfs(fuse_req_t req, fuse_ino_t ino)
{
    (void)ino;
    struct statvfs sv;
    if (fstatvfs(req_fs(req)->root_fd, &sv) != 0)
        reply_err(req, errno);
    else
        fuse_reply_statfs(req, &sv);
}

/* ---- namespace ---------------------------------------------------------- */

/* With allow_other the daemon runs as root and new entries must belong to the caller,
 * as on a local filesystem (group from a setgid parent directory).  fd: the new entry,
 * O_PATH or open. */
static void own_by_caller(pxc_fs *fs, fuse_req_t req, pxc_inode *parent, int fd, const char *name)
{
    if (!fs->daemon_is_root)
        return;
    const struct fuse_ctx *c = fuse_req_ctx(req);
    if (c->uid == geteuid() && c->gid == getegid())
        return; /* the backing filesystem already did what the caller's own would */
    gid_t gid = c->gid;
    struct stat pst;
    if (fstat(parent->fd, &pst) == 0 && (pst.st_mode & S_ISGID))
        gid = (gid_t)-1; /* the backing filesystem already gave it the directory's group */
    if (fchownat(fd, "", c->uid, gid, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) != 0) {
        char where[512];
        inode_name(fs->inodes, parent, where, sizeof where);
        pxc_log(LOG_WARNING, "%s/%s: cannot give it to uid %u: %s",
                strcmp(where, "/") == 0 ? "" : where, name, (unsigned)c->uid, strerror(errno));
    }
}

/* After creating `name` in parent (not a stored regular file): give it to the caller
 * and reply with its entry. */
static void reply_new_entry(fuse_req_t req, pxc_fs *fs, pxc_inode *parent, const stored_name *s,
                            const char *name)
{
    struct fuse_entry_param e;
    int fd = openat(parent->fd, s->name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        reply_err(req, errno);
        return;
    }
    own_by_caller(fs, req, parent, fd, name);
    int rc = entry_from_fd(fs, fd, -1, NULL, &e);
    if (rc)
        reply_err(req, rc);
    else
        reply_entry(req, fs, &e);
}

/* The stored name for a new entry `name` in p, with a long name's ".name" file in place
 * (*made: this call wrote it, undo_new_name removes it if the entry is not made). */
static int new_name(pxc_fs *fs, pxc_inode *p, const char *name, stored_name *s, int *made)
{
    *made = 0;
    if (is_keystore_name(fs, p, name))
        return -EPERM;
    int rc = stored_of(fs, p, name, s);
    return rc ? rc : names_long_put(p->fd, s, made);
}

static void undo_new_name(pxc_inode *p, const stored_name *s, int made)
{
    if (made)
        names_long_drop(p->fd, s);
}

static void pxc_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
    pxc_fs *fs = req_fs(req);
    pxc_inode *p = inode_of(req, parent);
    stored_name s;
    int made, rc = new_name(fs, p, name, &s, &made);
    if (rc) {
        reply_err(req, rc);
        return;
    }
    pthread_rwlock_rdlock(&fs->ns_lock);
    rc = mkdirat(p->fd, s.name, mode) ? -errno : 0;
    if (rc == 0 && fs->names.encrypted) {
        /* Its IV, so that its entries' names have their own key. */
        int fd = openat(p->fd, s.name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        rc = fd < 0 ? -errno : names_dir_create_iv(fd);
        if (fd >= 0)
            close(fd);
        if (rc)
            unlinkat(p->fd, s.name, AT_REMOVEDIR);
    }
    if (rc)
        undo_new_name(p, &s, made);
    pthread_rwlock_unlock(&fs->ns_lock);
    if (rc) {
        reply_err(req, rc);
        return;
    }
    reply_new_entry(req, fs, p, &s, name);
}

static void pxc_symlink(fuse_req_t req, const char *target, fuse_ino_t parent, const char *name)
{
    pxc_fs *fs = req_fs(req);
    pxc_inode *p = inode_of(req, parent);
    char stored_target[PATH_MAX];
    stored_name s;
    int made, rc = new_name(fs, p, name, &s, &made);
    if (rc == 0 && fs->names.encrypted) {
        int n = pxc_link_encrypt(fs->names.keys, target, stored_target, sizeof stored_target);
        rc = n < 0 ? n : 0;
        target = stored_target;
        if (rc)
            undo_new_name(p, &s, made);
    }
    if (rc) {
        reply_err(req, rc);
        return;
    }
    pthread_rwlock_rdlock(&fs->ns_lock);
    rc = symlinkat(target, p->fd, s.name) ? -errno : 0;
    if (rc)
        undo_new_name(p, &s, made);
    pthread_rwlock_unlock(&fs->ns_lock);
    if (rc) {
        reply_err(req, rc);
        return;
    }
    reply_new_entry(req, fs, p, &s, name);
}

/* A new regular file: its stored form, its keystore row, its owner.  On success *fd is
 * open read-write on it, *fresh holds its codec state and e its entry (one lookup). */
static int create_file(fuse_req_t req, pxc_fs *fs, pxc_inode *p, const char *name, mode_t mode,
                       int *fd, opaque_file *fresh, struct fuse_entry_param *e)
{
    char proc[32];
    stored_name s;
    int made, rc = new_name(fs, p, name, &s, &made);
    if (rc)
        return rc;
    rc = content_create(fs, p->fd, s.name, mode, fd, fresh);
    if (rc) {
        undo_new_name(p, &s, made);
        return rc;
    }
    own_by_caller(fs, req, p, *fd, name);
    snprintf(proc, sizeof proc, "/proc/self/fd/%d", *fd);
    int pfd = open(proc, O_PATH | O_CLOEXEC);
    rc = pfd < 0 ? -errno : entry_from_fd(fs, pfd, -1, NULL, e);
    if (rc) {
        close(*fd);
        opaque_close(fresh);
    }
    return rc;
}

static void pxc_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev)
{
    pxc_fs *fs = req_fs(req);
    pxc_inode *p = inode_of(req, parent);
    if (S_ISREG(mode)) {
        struct fuse_entry_param e;
        opaque_file fresh;
        int fd;
        int rc = create_file(req, fs, p, name, mode, &fd, &fresh, &e);
        if (rc) {
            reply_err(req, rc);
            return;
        }
        close(fd);
        opaque_close(&fresh);
        reply_entry(req, fs, &e);
        return;
    }
    stored_name s;
    int made, rc = new_name(fs, p, name, &s, &made);
    if (rc) {
        reply_err(req, rc);
        return;
    }
    pthread_rwlock_rdlock(&fs->ns_lock);
    rc = mknodat(p->fd, s.name, mode, rdev) ? -errno : 0;
    if (rc)
        undo_new_name(p, &s, made);
    pthread_rwlock_unlock(&fs->ns_lock);
    if (rc) {
        reply_err(req, rc);
        return;
    }
    reply_new_entry(req, fs, p, &s, name);
}

static void pxc_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname)
{
    pxc_fs *fs = req_fs(req);
    pxc_inode *n = inode_of(req, ino), *p = inode_of(req, newparent);
    struct fuse_entry_param e;
    char proc[32];
    stored_name s;
    int made, rc = new_name(fs, p, newname, &s, &made);
    if (rc) {
        reply_err(req, rc);
        return;
    }
    /* A stored file's new name is one of its places before it exists. */
    uint8_t id[16];
    int placed = 0;
    pthread_rwlock_rdlock(&fs->ns_lock);
    if (n->type == S_IFREG && content_file_id(n, id) == 0) {
        rc = places_add(fs, p->fd, s.name, id);
        placed = rc == 0;
    }
    if (rc == 0)
        rc = linkat(AT_FDCWD, inode_proc_path(n, proc), p->fd, s.name, AT_SYMLINK_FOLLOW) ? -errno
                                                                                          : 0;
    if (rc && placed)
        places_undo_add(fs, p->fd, s.name, id);
    if (rc)
        undo_new_name(p, &s, made);
    pthread_rwlock_unlock(&fs->ns_lock);
    if (rc) {
        reply_err(req, rc);
        return;
    }
    memset(&e, 0, sizeof e);
    rc = inode_attr(fs, n, &e.attr);
    if (rc) {
        reply_err(req, rc);
        return;
    }
    inode_lookup_again(fs->inodes, n);
    e.ino = id_of(fs, n);
    e.attr_timeout = ATTR_TIMEOUT;
    e.entry_timeout = ENTRY_TIMEOUT;
    reply_entry(req, fs, &e);
}

/* The stored name of an existing entry `name` in p. */
static int old_name(pxc_fs *fs, pxc_inode *p, const char *name, stored_name *s)
{
    if (is_keystore_name(fs, p, name))
        return -ENOENT;
    return stored_of(fs, p, name, s);
}

static void pxc_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    pxc_fs *fs = req_fs(req);
    pxc_inode *p = inode_of(req, parent);
    uint8_t id[16];
    stored_name s;
    int rc = old_name(fs, p, name, &s);
    if (rc) {
        reply_err(req, rc);
        return;
    }
    pthread_rwlock_rdlock(&fs->ns_lock);
    int doomed = content_doomed(p->fd, s.name, NULL, id);
    rc = unlinkat(p->fd, s.name, 0) ? -errno : 0;
    if (rc == 0) {
        names_long_drop(p->fd, &s);
        places_forget(fs, p->fd, s.name, doomed ? id : NULL);
    }
    pthread_rwlock_unlock(&fs->ns_lock);
    reply_err(req, rc);
}

static void pxc_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    pxc_fs *fs = req_fs(req);
    pxc_inode *p = inode_of(req, parent);
    stored_name s;
    int rc = old_name(fs, p, name, &s);
    if (rc) {
        reply_err(req, rc);
        return;
    }
    pthread_rwlock_rdlock(&fs->ns_lock);
    rc = names_dir_remove(&fs->names, p->fd, s.name);
    if (rc == 0) {
        names_long_drop(p->fd, &s);
        places_forget(fs, p->fd, s.name, NULL); /* none, unless left by a crash */
    }
    pthread_rwlock_unlock(&fs->ns_lock);
    reply_err(req, rc);
}

static void pxc_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
                       const char *newname, unsigned int flags)
{
    pxc_fs *fs = req_fs(req);
    pxc_inode *p = inode_of(req, parent), *np = inode_of(req, newparent);
    struct stat src;
    uint8_t id[16];
    stored_name from, to;
    int made = 0, rc = old_name(fs, p, name, &from);
    if (rc == 0)
        rc = new_name(fs, np, newname, &to, &made);
    if (rc) {
        reply_err(req, rc);
        return;
    }
    int doomed = 0, iv_taken = 0, have_src, exchange = (flags & RENAME_EXCHANGE) != 0;
    uint8_t iv[PXC_DIRIV_BYTES];
    ks_place_move *moved = NULL;
    /* Every place under a directory changes with it: no other namespace change (and no
     * place check) may see half of that. */
    have_src = fstatat(p->fd, from.name, &src, AT_SYMLINK_NOFOLLOW) == 0;
    int whole_tree = !have_src || S_ISDIR(src.st_mode) || exchange;
    if (whole_tree)
        pthread_rwlock_wrlock(&fs->ns_lock);
    else
        pthread_rwlock_rdlock(&fs->ns_lock);
    /* Two names of one file: the rename changes nothing, its places neither. */
    struct stat cur;
    if (!(have_src && fstatat(np->fd, to.name, &cur, AT_SYMLINK_NOFOLLOW) == 0 &&
          cur.st_dev == src.st_dev && cur.st_ino == src.st_ino))
        rc = places_move_begin(fs, p->fd, from.name, np->fd, to.name, exchange, &moved);
    if (rc == 0 && !exchange && fstatat(p->fd, from.name, &src, AT_SYMLINK_NOFOLLOW) == 0) {
        doomed = content_doomed(np->fd, to.name, &src, id);
        /* A directory may replace an empty one, whose IV is all it still holds. */
        struct stat dst;
        if (S_ISDIR(src.st_mode) && !(flags & RENAME_NOREPLACE) &&
            fstatat(np->fd, to.name, &dst, AT_SYMLINK_NOFOLLOW) == 0 &&
            (dst.st_ino != src.st_ino || dst.st_dev != src.st_dev))
            iv_taken = names_dir_take_iv(&fs->names, np->fd, to.name, iv);
    }
    if (rc == 0)
        rc = iv_taken < 0                                          ? iv_taken
             : renameat2(p->fd, from.name, np->fd, to.name, flags) ? -errno
                                                                   : 0;
    places_move_end(fs, moved, rc == 0);
    if (rc && iv_taken > 0)
        names_dir_put_iv(np->fd, to.name, iv);
    if (rc)
        undo_new_name(np, &to, made);
    else if (!(flags & RENAME_EXCHANGE))
        names_long_drop(p->fd, &from);
    pthread_rwlock_unlock(&fs->ns_lock);
    if (rc) {
        reply_err(req, rc);
        return;
    }
    if (doomed)
        content_forget_row(fs, id);
    reply_err(req, 0);
}

/* ---- directories -------------------------------------------------------- */

typedef struct dir_handle {
    pthread_mutex_t mutex; /* one readdir at a time on a handle */
    DIR *dp;
    off_t offset; /* position of dp, as the kernel knows offsets */
    int at_root;
} dir_handle;

static dir_handle *handle_dir(const struct fuse_file_info *fi)
{
    return (dir_handle *)(uintptr_t)fi->fh;
}

static void pxc_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    pxc_fs *fs = req_fs(req);
    pxc_inode *n = inode_of(req, ino);
    dir_handle *d = calloc(1, sizeof *d);
    if (!d) {
        reply_err(req, ENOMEM);
        return;
    }
    int fd = openat(n->fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0 || !(d->dp = fdopendir(fd))) {
        int err = errno;
        if (fd >= 0)
            close(fd);
        free(d);
        reply_err(req, err);
        return;
    }
    pthread_mutex_init(&d->mutex, NULL);
    d->at_root = n == inode_table_root(fs->inodes);
    inode_open_ref(fs->inodes, n);
    fi->fh = (uint64_t)(uintptr_t)d;
    if (fuse_reply_open(req, fi) != 0) {
        closedir(d->dp);
        pthread_mutex_destroy(&d->mutex);
        free(d);
        inode_open_unref(fs->inodes, n);
    }
}

static int is_dot_or_dotdot(const char *name)
{
    return name[0] == '.' && (name[1] == '\0' || (name[1] == '.' && name[2] == '\0'));
}

/* readdir and readdirplus.  Plus hands over full attributes (and a lookup) per entry,
 * so that `ls -l` needs no further requests.  The keystore directory is skipped. */
static void do_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                       struct fuse_file_info *fi, int plus)
{
    pxc_fs *fs = req_fs(req);
    pxc_inode *dir = inode_of(req, ino);
    dir_handle *d = handle_dir(fi);
    char *buf = malloc(size), *p = buf;
    size_t rem = size;
    int err = 0;
    if (!buf) {
        reply_err(req, ENOMEM);
        return;
    }
    const pxc_dirkey *dk = NULL;
    err = -dir_key(fs, dir, &dk);
    pthread_mutex_lock(&d->mutex);
    if (off != d->offset) {
        seekdir(d->dp, off);
        d->offset = off;
    }
    while (err == 0) {
        errno = 0;
        struct dirent *ent = readdir(d->dp);
        if (!ent) {
            err = errno;
            break;
        }
        /* Consumed from the stream: a later call that does not continue from here
         * (this entry did not fit) seeks back. */
        d->offset = ent->d_off;
        if (d->at_root && strcmp(ent->d_name, KS_DIR) == 0)
            continue;
        char plain[PXC_NAME_MAX + 1];
        const char *name = ent->d_name;
        if (!is_dot_or_dotdot(name)) {
            int rc = names_from_stored(&fs->names, dk, dirfd(d->dp), name, plain, sizeof plain);
            if (rc == 1)
                continue; /* the volume's own: IVs, long names' files, temp files */
            if (rc < 0) {
                char where[512];
                inode_name(fs->inodes, dir, where, sizeof where);
                pxc_log(LOG_ERR, "%s: stored name %s does not decrypt: left out", where, name);
                continue;
            }
            name = plain;
        }
        struct fuse_entry_param e;
        size_t entsize;
        int looked_up = 0;
        memset(&e, 0, sizeof e);
        if (plus && !is_dot_or_dotdot(name)) {
            int rc = lookup_stored(fs, dir, ent->d_name, &e);
            if (rc == -ENOENT)
                continue; /* removed since readdir saw it */
            if (rc) {
                err = -rc;
                break;
            }
            looked_up = 1;
        } else {
            e.attr.st_ino = ent->d_ino;
            e.attr.st_mode = (mode_t)DTTOIF(ent->d_type);
        }
        entsize = plus ? fuse_add_direntry_plus(req, p, rem, name, &e, ent->d_off)
                       : fuse_add_direntry(req, p, rem, name, &e.attr, ent->d_off);
        if (entsize > rem) {
            if (looked_up)
                undo_lookup(fs, &e);
            break;
        }
        p += entsize;
        rem -= entsize;
    }
    pthread_mutex_unlock(&d->mutex);
    /* An error can only be reported when no entries (and lookups) are in the buffer. */
    if (err && rem == size)
        reply_err(req, err);
    else
        fuse_reply_buf(req, buf, size - rem);
    free(buf);
}

static void pxc_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                        struct fuse_file_info *fi)
{
    do_readdir(req, ino, size, off, fi, 0);
}

static void pxc_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                            struct fuse_file_info *fi)
{
    do_readdir(req, ino, size, off, fi, 1);
}

static void pxc_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    pxc_fs *fs = req_fs(req);
    dir_handle *d = handle_dir(fi);
    closedir(d->dp);
    pthread_mutex_destroy(&d->mutex);
    free(d);
    inode_open_unref(fs->inodes, inode_of(req, ino));
    reply_err(req, 0);
}

static void pxc_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
    (void)ino;
    int fd = dirfd(handle_dir(fi)->dp);
    int rc = (datasync ? fdatasync(fd) : fsync(fd)) ? errno : 0;
    /* Names in it are readable after a power failure only with their places. */
    if (rc == 0 && keystore_sync(req_fs(req)->ks) != KS_OK)
        rc = EIO;
    reply_err(req, rc);
}

/* ---- file content ------------------------------------------------------- */

static pxc_inode *handle_inode(const struct fuse_file_info *fi)
{
    return (pxc_inode *)(uintptr_t)fi->fh;
}

/* Opens a handle on the regular file n: attaches to its content, truncates for O_TRUNC.
 * `fd`/`fresh`: a file just created (see content_attach). */
static int open_handle(pxc_fs *fs, pxc_inode *n, struct fuse_file_info *fi, int fd,
                       const opaque_file *fresh)
{
    int want_write = is_write_access(fi->flags), rc = 0;
    int trunc = (fi->flags & O_TRUNC) && want_write && !fresh;
    /* With atomic O_TRUNC the kernel leaves truncation to open, whatever the access
     * mode (Linux truncates on O_RDONLY|O_TRUNC too). */
    if ((fi->flags & O_TRUNC) && !want_write && !fresh)
        rc = set_size(fs, n, 0, NULL);
    inode_open_ref(fs->inodes, n);
    if (rc == 0)
        rc = content_attach(fs, n, want_write, trunc, fd, fresh);
    else if (fd >= 0)
        close(fd);
    if (rc == 0 && trunc) {
        rc = content_truncate(fs, n, 0);
        if (rc)
            content_detach(fs, n, want_write);
    }
    if (rc) {
        inode_open_unref(fs->inodes, n);
        return rc;
    }
    fi->fh = (uint64_t)(uintptr_t)n;
    /* The page cache is dropped on open: a stored file changed in the cipher dir (or
     * damaged) is read afresh, and damage gives EIO rather than old cached bytes. */
    fi->keep_cache = 0;
    /* Writes reach the backing file as they come, so close() has nothing to flush: no
     * FLUSH request per close. */
    fi->noflush = 1;
    return 0;
}

static void close_handle(pxc_fs *fs, pxc_inode *n, int flags)
{
    content_detach(fs, n, is_write_access(flags));
    inode_open_unref(fs->inodes, n);
}

static void pxc_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    pxc_fs *fs = req_fs(req);
    pxc_inode *n = inode_of(req, ino);
    if (n->type != S_IFREG) {
        reply_err(req, n->type == S_IFDIR ? EISDIR : EINVAL);
        return;
    }
    int rc = open_handle(fs, n, fi, -1, NULL);
    if (rc)
        reply_err(req, rc);
    else if (fuse_reply_open(req, fi) != 0)
        close_handle(fs, n, fi->flags);
}

static void pxc_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
                       struct fuse_file_info *fi)
{
    pxc_fs *fs = req_fs(req);
    pxc_inode *p = inode_of(req, parent);
    struct fuse_entry_param e;
    opaque_file fresh;
    int fd, rc;
    if (is_keystore_name(fs, p, name)) {
        reply_err(req, EPERM);
        return;
    }
    rc = create_file(req, fs, p, name, mode, &fd, &fresh, &e);
    if (rc == -EEXIST && !(fi->flags & O_EXCL)) {
        /* Lost a race with another creator: open theirs. */
        rc = do_lookup(fs, p, name, &e);
        if (rc == 0 && !S_ISREG(e.attr.st_mode)) {
            undo_lookup(fs, &e);
            rc = S_ISDIR(e.attr.st_mode) ? -EISDIR : -EEXIST;
        }
        if (rc == 0) {
            pxc_inode *n = (pxc_inode *)(uintptr_t)e.ino;
            rc = open_handle(fs, n, fi, -1, NULL);
            if (rc)
                undo_lookup(fs, &e);
        }
    } else if (rc == 0) {
        rc = open_handle(fs, (pxc_inode *)(uintptr_t)e.ino, fi, fd, &fresh);
        opaque_close(&fresh);
        if (rc)
            undo_lookup(fs, &e);
    }
    if (rc) {
        reply_err(req, rc);
        return;
    }
    if (fuse_reply_create(req, &e, fi) != 0) {
        close_handle(fs, handle_inode(fi), fi->flags);
        undo_lookup(fs, &e);
    }
}

static void pxc_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                     struct fuse_file_info *fi)
{
    (void)ino;
    pxc_fs *fs = req_fs(req);
    char *buf = malloc(size ? size : 1);
    if (!buf) {
        reply_err(req, ENOMEM);
        return;
    }
    ssize_t r = content_read(fs, handle_inode(fi), buf, size, off);
    if (r < 0)
        reply_err(req, (int)r);
    else
        fuse_reply_buf(req, buf, (size_t)r);
    free(buf);
}

static void pxc_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
                      struct fuse_file_info *fi)
{
    (void)ino;
    ssize_t r = content_write(req_fs(req), handle_inode(fi), buf, size, off);
    if (r < 0)
        reply_err(req, (int)r);
    else
        fuse_reply_write(req, (size_t)r);
}

static void pxc_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    (void)ino;
    (void)fi;
    /* Writes reach the backing file as they come; nothing is buffered here.  (Handles
     * are opened with noflush; kernels without it still send FLUSH.) */
    reply_err(req, 0);
}

static void pxc_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    (void)ino;
    close_handle(req_fs(req), handle_inode(fi), fi->flags);
    reply_err(req, 0);
}

static void pxc_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
    (void)ino;
    reply_err(req, content_fsync(req_fs(req), handle_inode(fi), datasync));
}

/* ---- session ------------------------------------------------------------ */

static void pxc_init(void *userdata, struct fuse_conn_info *conn)
{
    (void)userdata;
    if (conn->capable & FUSE_CAP_READDIRPLUS)
        conn->want |= FUSE_CAP_READDIRPLUS | FUSE_CAP_READDIRPLUS_AUTO;
    if (conn->capable & FUSE_CAP_ATOMIC_O_TRUNC)
        conn->want |= FUSE_CAP_ATOMIC_O_TRUNC; /* O_TRUNC arrives with open: one re-key */
    conn->want &= ~(unsigned)FUSE_CAP_WRITEBACK_CACHE;
    conn->max_write = 1 << 20; /* fewer, larger writes: one pwrite per call */
}

static const struct fuse_lowlevel_ops operations = {
    .init = pxc_init,
    .lookup = pxc_lookup,
    .forget = pxc_forget,
    .forget_multi = pxc_forget_multi,
    .getattr = pxc_getattr,
    .setattr = pxc_setattr,
    .readlink = pxc_readlink,
    .mknod = pxc_mknod,
    .mkdir = pxc_mkdir,
    .unlink = pxc_unlink,
    .rmdir = pxc_rmdir,
    .symlink = pxc_symlink,
    .rename = pxc_rename,
    .link = pxc_link,
    .open = pxc_open,
    .read = pxc_read,
    .write = pxc_write,
    .flush = pxc_flush,
    .release = pxc_release,
    .fsync = pxc_fsync,
    .opendir = pxc_opendir,
    .readdir = pxc_readdir,
    .readdirplus = pxc_readdirplus,
    .releasedir = pxc_releasedir,
    .fsyncdir = pxc_fsyncdir,
    .statfs = pxc_statfs,
    .access = pxc_access,
    .create = pxc_create,
    .setxattr = pxc_setxattr,
    .getxattr = pxc_getxattr,
    .listxattr = pxc_listxattr,
    .removexattr = pxc_removexattr,
};

const struct fuse_lowlevel_ops *pxcfs_operations(void)
{
    return &operations;
}

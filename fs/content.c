#include "fs/content.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <semaphore.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "codec/stored.h"
#include "fs/fdio.h"
#include "fs/log.h"
#include "fs/places.h"
#include "fs/plaincache.h"

/* Largest stored file of a format-preserving kind that is read whole (its plaintext is
 * at most PXC_STORED_MAX_IMAGE_FILE; the stored form may be somewhat larger). */
#define MAX_STORED_IMAGE_FILE PXC_STORED_MAX_STORED_BYTES

/* ---- small helpers ------------------------------------------------------ */

/* Peeks at the stored file on fd: its kind, plaintext size and file id. */
static int peek_fd(int fd, uint64_t stored_size, pxc_stored_info *info)
{
    uint8_t head[PXC_STORED_PEEK_BYTES];
    size_t want = stored_size < sizeof head ? (size_t)stored_size : sizeof head;
    ssize_t r = fd_read_full(fd, head, want, 0);
    if (r < 0)
        return (int)r;
    return pxc_stored_peek(head, (size_t)r, stored_size, info);
}

/* ---- codec slots -------------------------------------------------------- */

/* Decoding or converting an image holds several times its size in memory; at most
 * fs->codec_slots of them run at once, whatever the number of FUSE threads. */
static void codec_slot_take(pxc_fs *fs)
{
    while (sem_wait(&fs->codec_slots) != 0 && errno == EINTR)
        ;
}

static void codec_slot_give(pxc_fs *fs)
{
    sem_post(&fs->codec_slots);
}

/* ---- keystore rows ------------------------------------------------------ */

/* The row of a stored file: a copy of what its header now says.  File first, then row:
 * call once the header is written (a crash in between leaves a row behind its file,
 * which fsck repairs; never one ahead of it, which would read as a rollback). */
static void row_of(ks_file_row *row, const uint8_t id[PXC_FILE_ID_BYTES], int kind,
                   const uint8_t sealed[PXC_SEALED_SECRETS_BYTES], uint64_t plain_size,
                   uint64_t version)
{
    memset(row, 0, sizeof *row);
    memcpy(row->file_id, id, sizeof row->file_id);
    row->kind = kind;
    memcpy(row->seed_sealed, sealed, PXC_SEALED_SECRETS_BYTES);
    row->seed_sealed_len = PXC_SEALED_SECRETS_BYTES;
    row->plain_size = plain_size;
    row->version = version;
}

static void row_put_raw(pxc_fs *fs, const uint8_t id[PXC_FILE_ID_BYTES], int kind,
                        const uint8_t sealed[PXC_SEALED_SECRETS_BYTES], uint64_t plain_size,
                        uint64_t version)
{
    ks_file_row row;
    row_of(&row, id, kind, sealed, plain_size, version);
    int rc = keystore_file_put(fs->ks, &row);
    if (rc != KS_OK)
        pxc_log(LOG_WARNING, "keystore: cannot record a file: %s (fsck can rebuild it)",
                keystore_strerror(rc));
}

static void row_put(pxc_fs *fs, const opaque_file *f)
{
    row_put_raw(fs, f->secrets.file_id, PXC_KIND_OPAQUE, f->sealed, f->plain_size,
                f->secrets.version);
}

/* The version n's next rewrite gets: above its header's and its row's (the row may be
 * ahead when a rolled-back file was opened with allow_rollback). */
static uint64_t next_version(pxc_fs *fs, const pxc_inode *n)
{
    ks_file_row row;
    uint64_t v = n->file.secrets.version;
    if (keystore_file_get(fs->ks, n->file.secrets.file_id, &row) == KS_OK && row.version > v)
        v = row.version;
    return v + 1;
}

/* A stored file whose header is older than its row was replaced by an older copy of
 * itself.  Logged; -EIO unless the mount allows it. */
static int check_rollback(pxc_fs *fs, pxc_inode *n, const uint8_t id[PXC_FILE_ID_BYTES],
                          uint64_t version)
{
    ks_file_row row;
    char name[512];
    if (keystore_file_get(fs->ks, id, &row) != KS_OK || row.version <= version)
        return 0;
    inode_name(fs->inodes, n, name, sizeof name);
    pxc_log(LOG_ERR,
            "%s: rollback: the stored file is version %llu, the keystore knows version %llu "
            "(an older copy was put back)%s",
            name, (unsigned long long)version, (unsigned long long)row.version,
            fs->allow_rollback ? "; read anyway (allow_rollback)"
                               : "; reads refused (mount with -o allow_rollback to read it)");
    return fs->allow_rollback ? 0 : -EIO;
}

int content_doomed(int dirfd, const char *name, const struct stat *keep, uint8_t id[16])
{
    struct stat st;
    pxc_stored_info info;
    if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode) ||
        st.st_nlink != 1)
        return 0;
    if (keep && keep->st_dev == st.st_dev && keep->st_ino == st.st_ino)
        return 0;
    int fd = openat(dirfd, name, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return 0;
    int rc = peek_fd(fd, (uint64_t)st.st_size, &info);
    close(fd);
    if (rc != 0)
        return 0;
    memcpy(id, info.file_id, 16);
    return 1;
}

int content_file_id(const pxc_inode *n, uint8_t id[16])
{
    char proc[32];
    struct stat st;
    pxc_stored_info info;
    int fd = open(inode_proc_path(n, proc), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int rc = fstat(fd, &st) != 0 ? -errno : peek_fd(fd, (uint64_t)st.st_size, &info);
    close(fd);
    if (rc == 0)
        memcpy(id, info.file_id, 16);
    return rc;
}

void content_forget_row(pxc_fs *fs, const uint8_t id[16])
{
    int rc = keystore_file_delete(fs->ks, id);
    if (rc != KS_OK)
        pxc_log(LOG_WARNING, "keystore: cannot drop a removed file's row: %s",
                keystore_strerror(rc));
}

int content_is_temp_name(const char *name)
{
    return strncmp(name, PXC_TEMP_PREFIX, sizeof PXC_TEMP_PREFIX - 1) == 0;
}

/* ---- errors ------------------------------------------------------------- */

/* One log line per damaged file while it is open, not one per failed read: the kernel
 * retries a failed readahead, and a reader may try several offsets. */
static int first_damage(pxc_inode *n)
{
    return !__atomic_exchange_n(&n->eio_logged, 1, __ATOMIC_RELAXED);
}

static int content_error(pxc_fs *fs, pxc_inode *n, int rc, uint64_t off)
{
    if (rc == -EBADMSG) {
        if (!first_damage(n))
            return -EIO;
        char name[512];
        inode_name(fs->inodes, n, name, sizeof name);
        pxc_log(LOG_ERR, "%s: stored data fails authentication near offset %llu", name,
                (unsigned long long)off);
        return -EIO;
    }
    return rc;
}

/* A whole-file decode failed: EIO and a log line, except for a lack of memory. */
static int decode_error(pxc_fs *fs, pxc_inode *n, int rc)
{
    char name[512];
    if (rc == -ENOMEM)
        return rc;
    if (!first_damage(n))
        return -EIO;
    inode_name(fs->inodes, n, name, sizeof name);
    if (rc == -EBADMSG)
        pxc_log(LOG_ERR, "%s: stored image fails authentication", name);
    else
        pxc_log(LOG_ERR, "%s: cannot decode the stored image: %s", name, strerror(-rc));
    return -EIO;
}

/* ---- sizes -------------------------------------------------------------- */

int content_stat_size(pxc_fs *fs, pxc_inode *n, int dirfd, const char *name, struct stat *st,
                      uint8_t id[16])
{
    (void)fs;
    pthread_rwlock_rdlock(&n->lock);
    if (n->nfiles > 0) {
        st->st_size = (off_t)n->file.plain_size;
        if (id)
            memcpy(id, n->file.secrets.file_id, 16);
        pthread_rwlock_unlock(&n->lock);
        return 1;
    }
    pthread_rwlock_unlock(&n->lock);

    char proc[32];
    pxc_stored_info info;
    int fd = name ? openat(dirfd, name, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOFOLLOW)
                  : open(inode_proc_path(n, proc), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    int known = fd >= 0 && peek_fd(fd, (uint64_t)st->st_size, &info) == 0;
    if (fd >= 0)
        close(fd);
    st->st_size = known ? (off_t)info.plain_size : 0;
    if (known && id)
        memcpy(id, info.file_id, 16);
    return known;
}

/* ---- replacing a stored file atomically ----------------------------------- */

/* A new stored form of n is written to an unnamed temp file (O_TMPFILE) in the
 * directory of n's name, made durable, then, with the namespace locked against every
 * change through the mount, given a hidden name and renamed over n's name.  That happens
 * only if n's current name (from /proc) still refers to n's backing inode and is its
 * only link; on any doubt the replacement is abandoned and the file keeps its current
 * stored form.  The directory's mtime is put back afterwards: a replacement changes
 * nothing the user did (cp -a and rsync set directory times before the last release of
 * the files in it arrives).  Where O_TMPFILE is not supported the temp file is created
 * under a hidden name right away.  Changes made directly in the cipher dir at the same
 * moment are not covered by the lock. */
typedef struct replacement {
    int dirfd;                              /* directory holding the temp file */
    char name[sizeof PXC_TEMP_PREFIX + 32]; /* hidden name */
    int named;                              /* the temp file has that name now */
    int fd;                                 /* the temp file, read-write */
} replacement;

/* n's current path in the cipher dir, split at its last '/'.  -ESTALE if it has none. */
static int current_path(const pxc_inode *n, char *path, size_t size, char **base)
{
    char proc[32];
    ssize_t len = readlink(inode_proc_path(n, proc), path, size - 1);
    if (len <= 0 || (size_t)len >= size - 1)
        return -ESTALE;
    path[len] = '\0';
    static const char deleted[] = " (deleted)";
    if ((size_t)len >= sizeof deleted - 1 &&
        strcmp(path + len - (sizeof deleted - 1), deleted) == 0)
        return -ESTALE;
    char *slash = strrchr(path, '/');
    if (!slash || slash[1] == '\0')
        return -ESTALE;
    *slash = '\0';
    *base = slash + 1;
    if (path[0] == '\0') {
        path[0] = '/';
        path[1] = '\0';
    }
    return 0;
}

static int repl_begin(const pxc_inode *n, replacement *r)
{
    char path[PATH_MAX], *base;
    uint8_t rnd[8];
    r->dirfd = r->fd = -1;
    r->named = 0;
    int rc = current_path(n, path, sizeof path, &base);
    if (rc)
        return rc;
    r->dirfd = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (r->dirfd < 0)
        return -errno;
    randombytes_buf(rnd, sizeof rnd);
    int k = snprintf(r->name, sizeof r->name, "%s", PXC_TEMP_PREFIX);
    for (size_t i = 0; i < sizeof rnd; i++)
        k += snprintf(r->name + k, sizeof r->name - (size_t)k, "%02x", rnd[i]);
    r->fd = openat(r->dirfd, ".", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (r->fd < 0 && (errno == EOPNOTSUPP || errno == EISDIR || errno == EINVAL)) {
        r->fd = openat(r->dirfd, r->name, O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC | O_NOFOLLOW, 0600);
        r->named = r->fd >= 0;
    }
    if (r->fd < 0) {
        rc = -errno;
        close(r->dirfd);
        r->dirfd = -1;
        return rc;
    }
    return 0;
}

static void repl_abort(replacement *r)
{
    if (r->named)
        unlinkat(r->dirfd, r->name, 0);
    r->named = 0;
    if (r->fd >= 0)
        close(r->fd);
    if (r->dirfd >= 0)
        close(r->dirfd);
    r->fd = r->dirfd = -1;
}

/* Extended attributes of from (an open fd) onto to.  User attributes and ACLs must
 * copy; others (security.*, trusted.*) are copied where permitted. */
static int copy_xattrs(int from, int to)
{
    ssize_t len = flistxattr(from, NULL, 0);
    if (len <= 0)
        return len < 0 && errno != ENOTSUP ? -errno : 0;
    char *names = malloc((size_t)len);
    uint8_t *val = malloc(XATTR_SIZE_MAX);
    int rc = 0;
    if (!names || !val)
        rc = -ENOMEM;
    else if ((len = flistxattr(from, names, (size_t)len)) < 0)
        rc = -errno;
    for (ssize_t i = 0; rc == 0 && i < len; i += (ssize_t)strlen(names + i) + 1) {
        const char *name = names + i;
        int must = strncmp(name, "user.", 5) == 0 || strncmp(name, "system.posix_acl_", 17) == 0;
        ssize_t v = fgetxattr(from, name, val, XATTR_SIZE_MAX);
        if ((v < 0 || fsetxattr(to, name, val, (size_t)v, 0) != 0) && must)
            rc = -errno;
    }
    free(names);
    free(val);
    return rc;
}

/* Gives the temp file the metadata of the file it replaces (st: fstat of `from`, an
 * open fd on it): owner, mode, extended attributes, and the access and modification
 * times as the user last saw them.  Then makes it durable. */
static int repl_copy_meta(replacement *r, int from, const struct stat *st)
{
    struct stat now;
    if (fstat(r->fd, &now) != 0)
        return -errno;
    if ((now.st_uid != st->st_uid || now.st_gid != st->st_gid) &&
        fchown(r->fd, st->st_uid, st->st_gid) != 0)
        return -errno;
    if (fchmod(r->fd, st->st_mode & 07777) != 0)
        return -errno;
    int rc = copy_xattrs(from, r->fd);
    if (rc)
        return rc;
    struct timespec tv[2] = {st->st_atim, st->st_mtim};
    if (futimens(r->fd, tv) != 0 || fsync(r->fd) != 0)
        return -errno;
    return 0;
}

/* Renames the temp file over n's current name and re-keys n to the new inode.  With n
 * write-locked. */
static int repl_commit(pxc_fs *fs, pxc_inode *n, replacement *r)
{
    char path[PATH_MAX], proc[32], *base;
    struct stat nst, cur, dst;
    if (fstat(r->fd, &nst) != 0)
        return -errno;
    snprintf(proc, sizeof proc, "/proc/self/fd/%d", r->fd);
    int pfd = open(proc, O_PATH | O_CLOEXEC);
    if (pfd < 0)
        return -errno;
    pthread_rwlock_wrlock(&fs->ns_lock);
    int rc = current_path(n, path, sizeof path, &base), dfd = -1, have_dir_time = 0;
    if (rc == 0) {
        dfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0)
            dfd = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0)
            rc = -errno;
    }
    if (rc == 0 && (fstatat(dfd, base, &cur, AT_SYMLINK_NOFOLLOW) != 0 || cur.st_dev != n->dev ||
                    cur.st_ino != n->ino || cur.st_nlink != 1 || cur.st_dev != nst.st_dev))
        rc = -ESTALE;
    if (rc == 0)
        have_dir_time = fstat(dfd, &dst) == 0;
    /* The temp file's hidden name goes in the target's directory: one rename, no
     * second directory touched. */
    if (rc == 0 && !r->named) {
        if (linkat(AT_FDCWD, proc, dfd, r->name, AT_SYMLINK_FOLLOW) != 0)
            rc = -errno;
        else
            r->named = 1;
        close(r->dirfd);
        r->dirfd = dfd;
        dfd = -1;
    }
    int tdir = dfd >= 0 ? dfd : r->dirfd;
    if (rc == 0 && renameat(r->dirfd, r->name, tdir, base) != 0)
        rc = -errno;
    if (rc == 0) {
        r->named = 0;
        /* n's fd must be one opened through the name: /proc shows an O_TMPFILE's own
         * fd as "/#ino (deleted)" even once linked, and n's name comes from /proc. */
        struct stat byname;
        int nfd = openat(tdir, base, O_PATH | O_NOFOLLOW | O_CLOEXEC);
        if (nfd >= 0 && fstat(nfd, &byname) == 0 && byname.st_dev == nst.st_dev &&
            byname.st_ino == nst.st_ino) {
            close(pfd);
            pfd = nfd;
        } else if (nfd >= 0) {
            close(nfd);
        }
        inode_rekey(fs->inodes, n, pfd, &nst);
        pfd = -1;
    } else if (r->named && tdir == r->dirfd) {
        unlinkat(r->dirfd, r->name, 0);
        r->named = 0;
    }
    if (have_dir_time) {
        snprintf(proc, sizeof proc, "/proc/self/fd/%d", tdir);
        struct timespec tv[2] = {{0, UTIME_OMIT}, dst.st_mtim};
        utimensat(AT_FDCWD, proc, tv, 0);
    }
    pthread_rwlock_unlock(&fs->ns_lock);
    if (rc == 0)
        fsync(tdir); /* the rename itself; fails harmlessly on an O_PATH fd */
    if (dfd >= 0)
        close(dfd);
    if (pfd >= 0)
        close(pfd);
    return rc;
}

/* ---- the plaintext of format-preserving kinds --------------------------- */

static void drop_decoded(pxc_fs *fs, pxc_inode *n)
{
    plain_cache_release(fs->cache, n->plain);
    n->plain = NULL;
    free(n->head);
    n->head = NULL;
    n->head_len = 0;
    free(n->tail.data);
    memset(&n->tail, 0, sizeof n->tail);
    n->head_tried = 0;
}

/* The cache key of the stored version n->file.fd holds. */
static int plain_key_of(const pxc_inode *n, plain_key *key)
{
    struct stat st;
    if (fstat(n->file.fd, &st) != 0)
        return -errno;
    memset(key, 0, sizeof *key);
    key->dev = st.st_dev;
    key->ino = st.st_ino;
    memcpy(key->file_id, n->file.secrets.file_id, sizeof key->file_id);
    key->stored_size = (uint64_t)st.st_size;
    key->mtime = st.st_mtim;
    return 0;
}

/* Reads the whole stored file of n and decodes it into n->plain.  n write-locked. */
static int fill_plain(pxc_fs *fs, pxc_inode *n)
{
    struct stat st;
    plain_key key;
    if (fstat(n->file.fd, &st) != 0)
        return -errno;
    if ((uint64_t)st.st_size > MAX_STORED_IMAGE_FILE)
        return decode_error(fs, n, -EFBIG);
    if (plain_key_of(n, &key) == 0 && (n->plain = plain_cache_get(fs->cache, &key)) != NULL)
        return 0;
    codec_slot_take(fs);
    uint8_t *stored = malloc((size_t)st.st_size ? (size_t)st.st_size : 1), *plain = NULL;
    if (!stored) {
        codec_slot_give(fs);
        return -ENOMEM;
    }
    ssize_t r = fd_read_full(n->file.fd, stored, (size_t)st.st_size, 0);
    size_t plain_len = 0;
    int rc = r < 0 ? (int)r : 0;
    if (rc == 0)
        rc = pxc_stored_decode(n->kind, stored, (size_t)r, fs->keys, &plain, &plain_len);
    fs->whole_decodes++;
    free(stored);
    codec_slot_give(fs);
    if (rc == 0 && plain_len != n->file.plain_size)
        rc = -EBADMSG;
    if (rc != 0) {
        if (plain) {
            explicit_bzero(plain, plain_len);
            free(plain);
        }
        return decode_error(fs, n, rc);
    }
    if (plain_key_of(n, &key) == 0)
        n->plain = plain_cache_put(fs->cache, &key, plain, plain_len);
    else
        n->plain = plain_cache_put(fs->cache, &(plain_key){0}, plain, plain_len);
    return n->plain ? 0 : -ENOMEM;
}

/* Decodes the plaintext the stored file's head seals (what precedes the image data, and
 * for large files copies of the bytes after that and of the last ones) into n->head and
 * n->tail.  n write-locked.  Errors other than failed authentication only mean that
 * reads go to the whole decode. */
static int fill_head(pxc_fs *fs, pxc_inode *n)
{
    struct stat st;
    pxc_stored_info info;
    n->head_tried = 1;
    if (fstat(n->file.fd, &st) != 0 || peek_fd(n->file.fd, (uint64_t)st.st_size, &info) != 0 ||
        info.head_bytes == 0 || info.head_bytes > (uint64_t)st.st_size ||
        info.head_bytes > (16u << 20))
        return 0;
    uint8_t *stored = malloc((size_t)info.head_bytes);
    if (!stored)
        return 0;
    int rc = 0;
    if (fd_read_full(n->file.fd, stored, (size_t)info.head_bytes, 0) == (ssize_t)info.head_bytes)
        rc = pxc_stored_decode_head(n->kind, stored, (size_t)info.head_bytes, fs->keys, &n->head,
                                    &n->head_len, &n->tail);
    free(stored);
    if (rc == -EBADMSG)
        return decode_error(fs, n, rc);
    if (rc != 0 || n->head_len > n->file.plain_size ||
        n->tail.off + n->tail.len != (n->tail.data ? n->file.plain_size : 0)) {
        free(n->head);
        n->head = NULL;
        n->head_len = 0;
        free(n->tail.data);
        memset(&n->tail, 0, sizeof n->tail);
    }
    return 0;
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
    pxc_file_secrets s;
    ks_file_row row;
    pxc_secrets_fresh(&s);
    opaque_prepare(fresh, fs->keys, &s);
    sodium_memzero(&s, sizeof s);
    row_of(&row, fresh->secrets.file_id, PXC_KIND_OPAQUE, fresh->sealed, 0, 1);
    /* Row and place first, in one transaction: a crash before the file exists leaves a
     * row and a place without a file, which fsck drops. */
    pthread_rwlock_rdlock(&fs->ns_lock);
    int fd = -1, err = -places_create(fs, dirfd, name, &row);
    if (err == 0) {
        fd = openat(dirfd, name, O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC | O_NOFOLLOW, mode & 07777);
        err = errno;
        if (fd < 0)
            places_undo_create(fs, dirfd, name, fresh->secrets.file_id);
    }
    pthread_rwlock_unlock(&fs->ns_lock);
    if (fd < 0) {
        opaque_close(fresh);
        return -err;
    }
    int rc = opaque_write_prepared(fresh, fd);
    if (rc != 0) {
        unlinkat(dirfd, name, 0);
        places_undo_create(fs, dirfd, name, fresh->secrets.file_id);
        opaque_close(fresh);
        close(fd);
        return rc;
    }
    *fd_out = fd;
    return 0;
}

/* Opens the stored form on fd (n's first handle) into n->file: the opaque codec state,
 * or for a format-preserving kind its size, file id and version, and its plaintext if
 * cached.  A rolled-back file is refused unless `replacing` (its content is about to be
 * dropped) or the mount allows it. */
static int open_stored(pxc_fs *fs, pxc_inode *n, int fd, int replacing)
{
    struct stat st;
    pxc_stored_info info;
    pxc_file_secrets s;
    plain_key key;
    memset(&n->file, 0, sizeof n->file);
    n->file.fd = fd;
    if (fstat(fd, &st) != 0)
        return -errno;
    int rc = peek_fd(fd, (uint64_t)st.st_size, &info);
    if (rc)
        return rc;
    if (n->misplaced)
        return places_refuse(fs, n);
    n->kind = info.kind;
    if (info.kind == PXC_KIND_OPAQUE) {
        rc = opaque_open(&n->file, fd, fs->keys);
        if (rc == 0 && !replacing)
            rc = check_rollback(fs, n, n->file.secrets.file_id, n->file.secrets.version);
        if (rc == 0)
            rc = places_check(fs, n, n->file.secrets.file_id);
        return rc;
    }
    /* Checks that the file belongs to this volume now; its data is checked on decode. */
    rc = pxc_stored_open_secrets(&info, fs->keys, &s);
    uint64_t version = s.version;
    sodium_memzero(&s, sizeof s);
    if (rc == 0 && !replacing)
        rc = check_rollback(fs, n, info.file_id, version);
    if (rc == 0)
        rc = places_check(fs, n, info.file_id);
    if (rc)
        return rc;
    n->file.plain_size = info.plain_size;
    n->file.secrets.version = version;
    memcpy(n->file.secrets.file_id, info.file_id, PXC_FILE_ID_BYTES);
    memcpy(n->file.sealed, info.sealed, PXC_SEALED_SECRETS_BYTES);
    if (plain_key_of(n, &key) == 0)
        n->plain = plain_cache_get(fs->cache, &key);
    return 0;
}

/* A writer attaches to n, whose stored form is format-preserving: turn it back into an
 * opaque file so that writes at any offset work (it is transcoded again when the last
 * writer leaves).  With `trunc` (the content is about to be emptied) the file simply
 * starts over as a new empty opaque file; otherwise the plaintext is decoded and written
 * to a new opaque file that replaces the stored one atomically.  A file with several
 * hard links, or one whose replacement is not possible (no known name), is rewritten in
 * place instead, which unlike the rename is not crash-safe.  n write-locked, n->file.fd
 * read-write. */
static int make_opaque(pxc_fs *fs, pxc_inode *n, int trunc)
{
    opaque_file f;
    pxc_file_secrets next = n->file.secrets;
    struct stat st;
    replacement r = {.dirfd = -1, .fd = -1};
    int rc = 0, in_place = trunc;
    dev_t odev = n->dev;
    ino_t oino = n->ino;

    pxc_secrets_renew(&next, next_version(fs, n));
    if (!trunc && !n->plain && (rc = fill_plain(fs, n)) != 0)
        return rc;
    if (fstat(n->file.fd, &st) != 0)
        return -errno;
    if (!trunc && st.st_nlink != 1)
        in_place = 1;
    memset(&f, 0, sizeof f);
    if (!in_place) {
        rc = repl_begin(n, &r);
        if (rc == 0)
            rc = opaque_create_from(&f, r.fd, fs->keys, &next);
        if (rc == 0 && n->plain->len > 0) {
            ssize_t w = opaque_write(&f, n->plain->data, n->plain->len, 0);
            rc = w < 0 ? (int)w : (size_t)w != n->plain->len ? -EIO : 0;
        }
        if (rc == 0)
            rc = repl_copy_meta(&r, n->file.fd, &st);
        if (rc == 0)
            rc = repl_commit(fs, n, &r);
        if (rc == 0) {
            close(n->file.fd);
            close(r.dirfd);
        } else {
            /* E.g. its name is not known (the one it was found by was removed and it
             * lives on under another hard link): rewrite it in place. */
            char name[512];
            inode_name(fs->inodes, n, name, sizeof name);
            pxc_log(LOG_INFO, "%s: stored image reopened for writing in place: %s", name,
                    strerror(-rc));
            opaque_close(&f);
            repl_abort(&r);
            in_place = 1;
        }
    }
    if (in_place) {
        rc = opaque_create_from(&f, n->file.fd, fs->keys, &next);
        if (rc == 0 && !trunc && n->plain->len > 0) {
            ssize_t w = opaque_write(&f, n->plain->data, n->plain->len, 0);
            rc = w < 0 ? (int)w : (size_t)w != n->plain->len ? -EIO : 0;
        }
        if (rc) {
            opaque_close(&f);
            sodium_memzero(&next, sizeof next);
            return rc;
        }
    }
    sodium_memzero(&next, sizeof next);
    row_put(fs, &f);
    drop_decoded(fs, n);
    plain_cache_drop_inode(fs->cache, odev, oino);
    opaque_close(&n->file);
    n->file = f;
    n->kind = PXC_KIND_OPAQUE;
    n->fd_writable = 1;
    n->dirty = 1;
    return 0;
}

int content_attach(pxc_fs *fs, pxc_inode *n, int want_write, int trunc, int fd,
                   const opaque_file *fresh)
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
        if (want_write && n->kind != PXC_KIND_OPAQUE) {
            rc = make_opaque(fs, n, trunc);
            if (rc) {
                pthread_rwlock_unlock(&n->lock);
                return rc;
            }
        }
    } else {
        if (fd < 0)
            fd = open_content_fd(n, want_write, &writable);
        if (fd < 0) {
            pthread_rwlock_unlock(&n->lock);
            return fd;
        }
        n->kind = PXC_KIND_OPAQUE;
        n->eio_logged = 0;
        if (fresh)
            n->file = *fresh;
        else
            rc = open_stored(fs, n, fd, want_write && trunc);
        n->file.fd = fd;
        n->fd_writable = writable;
        n->dirty = 0;
        if (rc == 0 && want_write && n->kind != PXC_KIND_OPAQUE)
            rc = make_opaque(fs, n, trunc);
        if (rc != 0) {
            drop_decoded(fs, n);
            opaque_close(&n->file);
            close(n->file.fd);
            n->file.fd = -1;
            n->kind = PXC_KIND_OPAQUE;
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
    }
    n->nfiles++;
    if (want_write)
        n->writers++;
    pthread_rwlock_unlock(&n->lock);
    return 0;
}

/* Transcodes n's opaque content into a format-preserving stored form if it is a
 * candidate and the codec takes it.  0 when done (stored file replaced, keystore row
 * replaced, open state switched to the new form with its plaintext); nonzero when the
 * file stays opaque.  n write-locked. */
/* transcode's conversion proper: n's opaque plaintext (size bytes of kind) into its
 * format-preserving stored form, in place of the opaque file.  0, or -1: stays opaque. */
static int convert(pxc_fs *fs, pxc_inode *n, int kind, uint64_t size, const char *name,
                   const struct stat *stp)
{
    struct stat st = *stp;
    uint8_t *plain = malloc((size_t)size), *stored = NULL;
    if (!plain) {
        pxc_log(LOG_INFO, "%s: stored opaque: out of memory", name);
        return -1;
    }
    ssize_t r = opaque_read(&n->file, plain, (size_t)size, 0);
    if (r != (ssize_t)size) {
        if (r < 0)
            content_error(fs, n, (int)r, 0);
        explicit_bzero(plain, (size_t)size);
        free(plain);
        return -1;
    }

    pxc_file_secrets s = n->file.secrets;
    size_t stored_len = 0;
    const char *why = NULL;
    pxc_secrets_renew(&s, next_version(fs, n));
    uint64_t version = s.version;
    int rc = pxc_stored_encode(kind, plain, (size_t)size, fs->keys, &s, &stored, &stored_len, &why);
    sodium_memzero(&s, sizeof s);
    pxc_stored_info info;
    if (rc == 0 && (stored_len < PXC_STORED_PEEK_BYTES ||
                    pxc_stored_peek(stored, PXC_STORED_PEEK_BYTES, stored_len, &info) != 0 ||
                    info.kind != kind || info.plain_size != size)) {
        rc = -EPROTO;
        why = "stored form does not identify itself";
    }
    replacement rp = {.dirfd = -1, .fd = -1};
    dev_t odev = n->dev;
    ino_t oino = n->ino;
    if (rc == 0) {
        why = "cannot replace the stored file";
        rc = repl_begin(n, &rp);
        if (rc == 0)
            rc = fd_write_full(rp.fd, stored, stored_len, 0);
        if (rc == 0)
            rc = repl_copy_meta(&rp, n->file.fd, &st);
        if (rc == 0)
            rc = repl_commit(fs, n, &rp);
        if (rc)
            repl_abort(&rp);
    }
    free(stored);
    if (rc) {
        pxc_log(LOG_INFO, "%s: stored opaque: %s (%s)", name, why ? why : "declined",
                strerror(-rc));
        explicit_bzero(plain, (size_t)size);
        free(plain);
        return -1;
    }
    close(rp.dirfd);

    /* The file is in place: now its row, then the open state. */
    row_put_raw(fs, info.file_id, kind, info.sealed, size, version);
    plain_cache_drop_inode(fs->cache, odev, oino);
    close(n->file.fd);
    opaque_close(&n->file);
    memset(&n->file, 0, sizeof n->file);
    n->file.fd = rp.fd;
    n->file.plain_size = size;
    memcpy(n->file.secrets.file_id, info.file_id, PXC_FILE_ID_BYTES);
    n->file.secrets.version = version;
    memcpy(n->file.sealed, info.sealed, PXC_SEALED_SECRETS_BYTES);
    n->fd_writable = 1;
    n->kind = kind;
    drop_decoded(fs, n);
    plain_key key;
    if (plain_key_of(n, &key) == 0)
        n->plain = plain_cache_put(fs->cache, &key, plain, (size_t)size);
    else
        free(plain);
    pxc_log(LOG_DEBUG, "%s: stored as format-preserving kind %d", name, kind);
    return 0;
}

static int transcode(pxc_fs *fs, pxc_inode *n)
{
    uint8_t sig[8];
    uint64_t size = n->file.plain_size;
    char name[512];
    struct stat st;

    if (size < sizeof sig || opaque_read(&n->file, sig, sizeof sig, 0) != (ssize_t)sizeof sig)
        return -1;
    int kind = pxc_stored_candidate_kind(sig, sizeof sig);
    if (kind == PXC_KIND_OPAQUE)
        return -1;
    inode_name(fs->inodes, n, name, sizeof name);
    if (size > PXC_STORED_MAX_IMAGE_FILE) {
        pxc_log(LOG_INFO, "%s: stored opaque: too large to transform", name);
        return -1;
    }
    if (fstat(n->file.fd, &st) != 0 || st.st_nlink == 0)
        return -1; /* removed while open: nothing to replace */
    if (st.st_nlink > 1) {
        /* Replacing it by a rename would split its hard links. */
        pxc_log(LOG_INFO, "%s: stored opaque: it has %lu hard links", name,
                (unsigned long)st.st_nlink);
        return -1;
    }
    /* The conversion holds the file's plaintext and stored form, several times its
     * size: a codec slot bounds how many run at once (see codec_slots). */
    codec_slot_take(fs);
    int rc = convert(fs, n, kind, size, name, &st);
    codec_slot_give(fs);
    return rc;
}

/* Records a session of changes to n's opaque file as its next version: header, then row.
 * A file removed meanwhile has no row to keep. */
static void commit_opaque(pxc_fs *fs, pxc_inode *n)
{
    struct stat st;
    char name[512];
    if (fstat(n->file.fd, &st) != 0 || st.st_nlink == 0)
        return;
    int rc = opaque_set_version(&n->file, fs->keys, next_version(fs, n));
    /* The header write is bookkeeping, not a change the user made: the times stay those
     * of the last write or of the last utimens (which waits for n's lock). */
    struct timespec tv[2] = {st.st_atim, st.st_mtim};
    (void)futimens(n->file.fd, tv);
    if (rc != 0) {
        inode_name(fs->inodes, n, name, sizeof name);
        pxc_log(LOG_WARNING, "%s: cannot record the new version in its header: %s", name,
                strerror(-rc));
        return;
    }
    row_put(fs, &n->file);
}

/* The last writer of n closed it, so its content is complete: transcode it into its
 * format-preserving stored form if it has one, otherwise record the opaque form; either
 * way as the file's next version (file first, then the row).  Called with n
 * write-locked and dirty. */
static void content_commit(pxc_fs *fs, pxc_inode *n)
{
    if (n->kind != PXC_KIND_OPAQUE)
        return;
    if (transcode(fs, n) != 0)
        commit_opaque(fs, n);
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
        drop_decoded(fs, n);
        n->file.fd = -1;
        n->fd_writable = 0;
        n->kind = PXC_KIND_OPAQUE;
    }
    pthread_rwlock_unlock(&n->lock);
}

static size_t copy_out(void *buf, size_t size, off_t off, const uint8_t *data, size_t len)
{
    if ((uint64_t)off >= len)
        return 0;
    size_t k = len - (size_t)off < size ? len - (size_t)off : size;
    memcpy(buf, data + off, k);
    return k;
}

ssize_t content_read(pxc_fs *fs, pxc_inode *n, void *buf, size_t size, off_t off)
{
    ssize_t r;
    int at_end = 0;
    pthread_rwlock_rdlock(&n->lock);
    for (;;) {
        if (n->kind == PXC_KIND_OPAQUE) {
            r = opaque_read(&n->file, buf, size, (uint64_t)off);
            break;
        }
        if (n->plain) {
            r = (ssize_t)copy_out(buf, size, off, n->plain->data, n->plain->len);
            at_end = (uint64_t)off + size >= n->plain->len;
            break;
        }
        if ((uint64_t)off >= n->file.plain_size) {
            r = 0;
            break;
        }
        /* Reads within what the stored header seals need no pixels. */
        uint64_t end = (uint64_t)off + size;
        if (end > n->file.plain_size)
            end = n->file.plain_size;
        if (n->head && end <= n->head_len) {
            r = (ssize_t)copy_out(buf, size, off, n->head, n->head_len);
            fs->header_reads++;
            break;
        }
        if (n->tail.data && (uint64_t)off >= n->tail.off) {
            r = (ssize_t)copy_out(buf, size, off - (off_t)n->tail.off, n->tail.data, n->tail.len);
            fs->header_reads++;
            break;
        }
        pthread_rwlock_unlock(&n->lock);
        pthread_rwlock_wrlock(&n->lock);
        int rc = 0;
        if (n->kind != PXC_KIND_OPAQUE && !n->plain)
            rc = n->head_tried ? fill_plain(fs, n) : fill_head(fs, n);
        pthread_rwlock_unlock(&n->lock);
        if (rc)
            return rc;
        pthread_rwlock_rdlock(&n->lock);
    }
    pthread_rwlock_unlock(&n->lock);
    if (at_end) {
        /* A reader that reached the end lets go of the plaintext: what stays in memory
         * is the cache's business (cache_mb), not the number of open files.  A later
         * read finds it in the cache, or decodes again. */
        pthread_rwlock_wrlock(&n->lock);
        if (n->kind != PXC_KIND_OPAQUE && n->plain) {
            plain_cache_release(fs->cache, n->plain);
            n->plain = NULL;
        }
        pthread_rwlock_unlock(&n->lock);
    }
    return r < 0 ? content_error(fs, n, (int)r, (uint64_t)off) : r;
}

ssize_t content_write(pxc_fs *fs, pxc_inode *n, const void *buf, size_t size, off_t off)
{
    pthread_rwlock_wrlock(&n->lock);
    ssize_t r =
        n->kind == PXC_KIND_OPAQUE ? opaque_write(&n->file, buf, size, (uint64_t)off) : -EBADF;
    if (r > 0)
        n->dirty = 1;
    pthread_rwlock_unlock(&n->lock);
    return r < 0 ? content_error(fs, n, (int)r, (uint64_t)off) : r;
}

int content_truncate(pxc_fs *fs, pxc_inode *n, off_t size)
{
    if (size < 0)
        return -EINVAL;
    pthread_rwlock_wrlock(&n->lock);
    if (n->kind != PXC_KIND_OPAQUE) {
        pthread_rwlock_unlock(&n->lock);
        return -EBADF;
    }
    uint64_t version = n->file.secrets.version;
    uint64_t next = size == 0 ? next_version(fs, n) : 0;
    int rc = opaque_truncate(&n->file, (uint64_t)size, fs->keys);
    if (rc == 0 && n->file.secrets.version != version) {
        /* Emptied: a new version under a new seed (above the row's too), recorded now
         * unless the file is gone. */
        struct stat st;
        if (n->file.secrets.version < next)
            rc = opaque_set_version(&n->file, fs->keys, next);
        if (rc == 0 && (fstat(n->file.fd, &st) != 0 || st.st_nlink > 0))
            row_put(fs, &n->file);
    }
    if (rc == 0)
        n->dirty = 1;
    pthread_rwlock_unlock(&n->lock);
    return content_error(fs, n, rc, (uint64_t)size);
}

int content_fsync(pxc_fs *fs, pxc_inode *n, int datasync)
{
    pthread_rwlock_rdlock(&n->lock);
    int fd = n->file.fd;
    int rc = (datasync ? fdatasync(fd) : fsync(fd)) ? -errno : 0;
    pthread_rwlock_unlock(&n->lock);
    /* The file is readable after a power failure only with its place (and row). */
    if (rc == 0 && keystore_sync(fs->ks) != KS_OK)
        rc = -EIO;
    return rc;
}

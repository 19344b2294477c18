/* Extended attributes through the mount: only user.* ones, their names and values
 * encrypted (codec/names.h), on regular files and directories (Linux refuses user
 * attributes on other types anyway).  A regular file's content lock keeps out a
 * replacement of its stored file, which copies them.
 *
 * Each costs a request, and `ls -l` asks for two (SELinux label, ACL) per file: -o noxattr
 * answers ENOSYS, after which the kernel sends none. */
#include "fs/xattr_ops.h"

#include <errno.h>
#include <linux/limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/xattr.h>

#include "fs/log.h"

/* The /proc path of n and the stored name of attribute `name`.  Setting an attribute
 * Linux or pixcrypt does not keep is refused (EPERM on other types, EOPNOTSUPP outside
 * user.*); reading or removing one finds nothing (ENODATA).  -ENOSYS with -o noxattr. */
static int xattr_where(pxc_fs *fs, pxc_inode *n, const char *name, int to_set, char proc[32],
                       char sname[XATTR_NAME_MAX + 1])
{
    if (fs->no_xattr)
        return -ENOSYS;
    if (n->type != S_IFREG && n->type != S_IFDIR)
        return to_set ? -EPERM : -ENODATA;
    inode_proc_path(n, proc);
    int len = pxc_xattr_name_encrypt(fs->names.keys, name, sname, XATTR_NAME_MAX + 1);
    if (len >= 0)
        return 0;
    return !to_set && (len == -EOPNOTSUPP || len == -ERANGE) ? -ENODATA : len;
}

static void xattr_lock(pxc_inode *n)
{
    if (n->type == S_IFREG)
        pthread_rwlock_rdlock(&n->lock);
}

static void xattr_unlock(pxc_inode *n)
{
    if (n->type == S_IFREG)
        pthread_rwlock_unlock(&n->lock);
}

void pxc_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value, size_t size,
                  int flags)
{
    pxc_fs *fs = req_fs(req);
    pxc_inode *n = inode_of(req, ino);
    char proc[32], sname[XATTR_NAME_MAX + 1];
    int rc = xattr_where(fs, n, name, 1, proc, sname);
    if (rc == 0 && size > XATTR_SIZE_MAX - PXC_XATTR_OVERHEAD)
        rc = -E2BIG;
    uint8_t *sealed = rc ? NULL : malloc(size + PXC_XATTR_OVERHEAD);
    if (rc == 0 && !sealed)
        rc = -ENOMEM;
    if (rc == 0) {
        pxc_xattr_value_encrypt(fs->names.keys, name, (const uint8_t *)value, size, sealed);
        xattr_lock(n);
        rc = setxattr(proc, sname, sealed, size + PXC_XATTR_OVERHEAD, flags) ? -errno : 0;
        xattr_unlock(n);
    }
    free(sealed);
    reply_err(req, rc);
}

/* The plain value of the attribute stored as sname: its length, or -errno. */
static ssize_t xattr_read(pxc_fs *fs, pxc_inode *n, const char *proc, const char *name,
                          const char *sname, uint8_t **out)
{
    uint8_t *sealed = NULL;
    ssize_t len;
    *out = NULL;
    xattr_lock(n);
    for (;;) {
        len = getxattr(proc, sname, NULL, 0);
        if (len < 0)
            break;
        uint8_t *b = realloc(sealed, (size_t)len + 1);
        if (!b) {
            errno = ENOMEM;
            len = -1;
            break;
        }
        sealed = b;
        ssize_t got = getxattr(proc, sname, sealed, (size_t)len + 1);
        if (got >= 0 && got <= len) {
            len = got;
            break;
        }
        if (got < 0 && errno != ERANGE) {
            len = -1;
            break;
        }
    }
    xattr_unlock(n);
    if (len < 0) {
        free(sealed);
        return -errno;
    }
    uint8_t *plain = malloc((size_t)len + 1);
    int plen =
        plain ? pxc_xattr_value_decrypt(fs->names.keys, name, sealed, (size_t)len, plain) : -ENOMEM;
    free(sealed);
    if (plen < 0) {
        free(plain);
        if (plen == -EBADMSG) {
            char where[512];
            inode_name(fs->inodes, n, where, sizeof where);
            pxc_log(LOG_ERR, "%s: extended attribute %s fails authentication", where, name);
            return -EIO;
        }
        return plen;
    }
    *out = plain;
    return plen;
}

void pxc_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
    pxc_fs *fs = req_fs(req);
    pxc_inode *n = inode_of(req, ino);
    char proc[32], sname[XATTR_NAME_MAX + 1];
    uint8_t *plain = NULL;
    int rc = xattr_where(fs, n, name, 0, proc, sname);
    ssize_t len = rc ? rc : xattr_read(fs, n, proc, name, sname, &plain);
    if (len < 0)
        reply_err(req, (int)len);
    else if (size == 0)
        fuse_reply_xattr(req, (size_t)len);
    else if ((size_t)len > size)
        reply_err(req, ERANGE);
    else
        fuse_reply_buf(req, (const char *)plain, (size_t)len);
    free(plain);
}

void pxc_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
    if (req_fs(req)->no_xattr) {
        reply_err(req, ENOSYS);
        return;
    }
    pxc_fs *fs = req_fs(req);
    pxc_inode *n = inode_of(req, ino);
    char proc[32];
    char *stored = NULL, *plain = NULL;
    ssize_t len = 0;
    size_t used = 0;
    int rc = 0;
    if (n->type != S_IFREG && n->type != S_IFDIR) {
        /* no user attributes on other types */
        if (size == 0)
            fuse_reply_xattr(req, 0);
        else
            fuse_reply_buf(req, NULL, 0);
        return;
    }
    inode_proc_path(n, proc);
    xattr_lock(n);
    len = listxattr(proc, NULL, 0);
    if (len > 0 && (stored = malloc((size_t)len)) != NULL)
        len = listxattr(proc, stored, (size_t)len);
    else if (len > 0)
        errno = ENOMEM, len = -1;
    xattr_unlock(n);
    if (len < 0)
        rc = -errno;
    if (rc == 0 && len > 0 && !(plain = malloc((size_t)len)))
        rc = -ENOMEM;
    for (ssize_t off = 0; rc == 0 && off < len; off += (ssize_t)strlen(stored + off) + 1) {
        char name[XATTR_NAME_MAX + 1];
        int k = pxc_xattr_name_decrypt(fs->names.keys, stored + off, name, sizeof name);
        if (k < 0)
            continue; /* not ours (security.*, ...) or damaged: not shown */
        /* A plain name is never longer than its stored form. */
        memcpy(plain + used, name, (size_t)k + 1);
        used += (size_t)k + 1;
    }
    if (rc)
        reply_err(req, rc);
    else if (size == 0)
        fuse_reply_xattr(req, used);
    else if (used > size)
        reply_err(req, ERANGE);
    else
        fuse_reply_buf(req, plain, used);
    free(stored);
    free(plain);
}

void pxc_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
    pxc_fs *fs = req_fs(req);
    pxc_inode *n = inode_of(req, ino);
    char proc[32], sname[XATTR_NAME_MAX + 1];
    int rc = xattr_where(fs, n, name, 0, proc, sname);
    if (rc == 0) {
        xattr_lock(n);
        rc = removexattr(proc, sname) ? -errno : 0;
        xattr_unlock(n);
    }
    reply_err(req, rc);
}

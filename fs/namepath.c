/* Plain names <-> stored names (see namepath.h). */
#include "fs/namepath.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fs/content.h"
#include "fs/fdio.h"
#include "keystore/keystore.h"

int names_init(pxc_names *nm, const unsigned char *master, int encrypted)
{
    nm->encrypted = encrypted;
    /* Xattr names and values are encrypted in every volume. */
    nm->keys = sodium_malloc(sizeof *nm->keys);
    if (!nm->keys)
        return -ENOMEM;
    pxc_names_keys_derive(nm->keys, master);
    return 0;
}

void names_free(pxc_names *nm)
{
    if (nm->keys)
        sodium_free(nm->keys); /* wipes */
    nm->keys = NULL;
}

int names_dir_create_iv(int dirfd)
{
    uint8_t iv[PXC_DIRIV_BYTES];
    randombytes_buf(iv, sizeof iv);
    int fd = openat(dirfd, DIRIV_FILE, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0444);
    if (fd < 0)
        return -errno;
    int rc = fd_write_full(fd, iv, sizeof iv, 0);
    if (rc == 0 && fsync(fd) != 0)
        rc = -errno;
    close(fd);
    if (rc)
        unlinkat(dirfd, DIRIV_FILE, 0);
    return rc;
}

/* 0 if the directory open at dirfd holds nothing but entries `also` accepts (and "." and
 * ".."), -ENOTEMPTY if it holds more, or -errno. */
static int only_entries(int dirfd, int (*also)(const char *name))
{
    int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *d = fd < 0 ? NULL : fdopendir(fd);
    struct dirent *de;
    int rc = 0;
    if (!d) {
        rc = -errno;
        if (fd >= 0)
            close(fd);
        return rc;
    }
    while (rc == 0 && (de = readdir(d)) != NULL)
        if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0 && !also(de->d_name))
            rc = -ENOTEMPTY;
    closedir(d);
    return rc;
}

/* The volume's own entries, which a directory without an IV may hold and be empty. */
static int is_volume_entry(const char *name)
{
    return strcmp(name, KS_DIR) == 0 || content_is_temp_name(name);
}

static int is_iv(const char *name)
{
    return strcmp(name, DIRIV_FILE) == 0;
}

int names_dirkey_load(const pxc_names *nm, int dirfd, pxc_dirkey *dk)
{
    uint8_t iv[PXC_DIRIV_BYTES + 1];
    if (!nm->encrypted)
        return 0;
    for (int tries = 0; tries < 2; tries++) {
        int fd = openat(dirfd, DIRIV_FILE, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
        if (fd >= 0) {
            ssize_t n = fd_read_full(fd, iv, sizeof iv, 0);
            close(fd);
            if (n != PXC_DIRIV_BYTES)
                return -EIO;
            pxc_dirkey_derive(dk, nm->keys, iv);
            return 0;
        }
        if (errno != ENOENT)
            return -errno;
        if (only_entries(dirfd, is_volume_entry) != 0)
            return -EIO;
        int rc = names_dir_create_iv(dirfd);
        if (rc && rc != -EEXIST)
            return rc;
    }
    return -EIO;
}

int names_to_stored(const pxc_names *nm, const pxc_dirkey *dk, const char *plain, stored_name *s)
{
    size_t len = strlen(plain);
    s->is_long = 0;
    if (len > PXC_NAME_MAX)
        return -ENAMETOOLONG;
    if (!nm->encrypted) {
        memcpy(s->name, plain, len + 1);
        memcpy(s->full, plain, len + 1);
        return 0;
    }
    int n = pxc_name_encrypt(dk, plain, s->full, sizeof s->full);
    if (n < 0)
        return n;
    if (pxc_name_needs_long(s->full)) {
        s->is_long = 1;
        pxc_name_long(s->full, s->name, sizeof s->name);
    } else {
        memcpy(s->name, s->full, (size_t)n + 1);
    }
    return 0;
}

/* "<long name>.name" */
static int sidecar_name(const char *lname, char *out, size_t size)
{
    return snprintf(out, size, "%s" PXC_LONG_NAME_SUFFIX, lname) >= (int)size ? -ENAMETOOLONG : 0;
}

int names_from_stored(const pxc_names *nm, const pxc_dirkey *dk, int dirfd, const char *entry,
                      char *plain, size_t size)
{
    if (content_is_temp_name(entry))
        return 1;
    if (!nm->encrypted) {
        if (strlen(entry) >= size)
            return -ENAMETOOLONG;
        strcpy(plain, entry);
        return 0;
    }
    if (strcmp(entry, DIRIV_FILE) == 0)
        return 1;
    switch (pxc_name_long_kind(entry)) {
    case 2:
        return 1;
    case 1: {
        char side[PXC_NAME_MAX + 1], full[PXC_NAME_ENC_MAX + 1];
        if (sidecar_name(entry, side, sizeof side) != 0)
            return -EBADMSG;
        int fd = openat(dirfd, side, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
            return -EBADMSG;
        ssize_t n = fd_read_full(fd, full, sizeof full - 1, 0);
        close(fd);
        if (n <= 0 || n >= (ssize_t)sizeof full - 1)
            return -EBADMSG;
        full[n] = '\0';
        if (!pxc_name_long_matches(entry, full))
            return -EBADMSG;
        return pxc_name_decrypt(dk, full, plain, size) < 0 ? -EBADMSG : 0;
    }
    default:
        return pxc_name_decrypt(dk, entry, plain, size) < 0 ? -EBADMSG : 0;
    }
}

int names_long_put(int dirfd, const stored_name *s, int *made)
{
    char side[PXC_NAME_MAX + 1];
    *made = 0;
    if (!s->is_long)
        return 0;
    int rc = sidecar_name(s->name, side, sizeof side);
    if (rc)
        return rc;
    int fd = openat(dirfd, side, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0444);
    if (fd < 0)
        return errno == EEXIST ? 0 : -errno;
    size_t len = strlen(s->full);
    rc = fd_write_full(fd, s->full, len, 0);
    close(fd);
    if (rc)
        unlinkat(dirfd, side, 0);
    else
        *made = 1;
    return rc;
}

void names_long_drop(int dirfd, const stored_name *s)
{
    char side[PXC_NAME_MAX + 1];
    struct stat sb;
    if (!s->is_long || sidecar_name(s->name, side, sizeof side) != 0)
        return;
    if (fstatat(dirfd, s->name, &sb, AT_SYMLINK_NOFOLLOW) != 0 && errno == ENOENT)
        unlinkat(dirfd, side, 0);
}

/* ---- whole paths ------------------------------------------------------------------------ */

typedef int (*component_fn)(const pxc_names *nm, const pxc_dirkey *dk, int dirfd, const char *in,
                            char *out, size_t size, char *next, size_t nsize);

/* plain component -> stored; `next` the entry to descend into */
static int encrypt_component(const pxc_names *nm, const pxc_dirkey *dk, int dirfd, const char *in,
                             char *out, size_t size, char *next, size_t nsize)
{
    (void)dirfd;
    stored_name s;
    int rc = names_to_stored(nm, dk, in, &s);
    if (rc)
        return rc;
    if (strlen(s.name) >= size || strlen(s.name) >= nsize)
        return -ENAMETOOLONG;
    strcpy(out, s.name);
    strcpy(next, s.name);
    return 0;
}

static int decrypt_component(const pxc_names *nm, const pxc_dirkey *dk, int dirfd, const char *in,
                             char *out, size_t size, char *next, size_t nsize)
{
    if (strlen(in) >= nsize)
        return -ENAMETOOLONG;
    strcpy(next, in);
    int rc = names_from_stored(nm, dk, dirfd, in, out, size);
    return rc == 1 ? -EINVAL : rc;
}

static int translate_path(const pxc_names *nm, int root_fd, const char *in, char *out, size_t size,
                          component_fn fn)
{
    char path[PATH_MAX], *save = NULL;
    size_t used = 0;
    int dirfd = dup(root_fd), rc = 0;
    if (dirfd < 0)
        return -errno;
    if (snprintf(path, sizeof path, "%s", in) >= (int)sizeof path) {
        close(dirfd);
        return -ENAMETOOLONG;
    }
    out[0] = '\0';
    for (char *c = strtok_r(path, "/", &save); c && rc == 0; c = strtok_r(NULL, "/", &save)) {
        char piece[PXC_NAME_ENC_MAX], next[PXC_NAME_MAX + 1];
        pxc_dirkey dk;
        if (strcmp(c, ".") == 0)
            continue;
        rc = names_dirkey_load(nm, dirfd, &dk);
        if (rc == 0)
            rc = fn(nm, &dk, dirfd, c, piece, sizeof piece, next, sizeof next);
        sodium_memzero(&dk, sizeof dk);
        if (rc)
            break;
        int n = snprintf(out + used, size - used, "%s%s", used ? "/" : "", piece);
        if (n < 0 || (size_t)n >= size - used) {
            rc = -ENAMETOOLONG;
            break;
        }
        used += (size_t)n;
        /* Descend, unless this was the last component (which need not exist). */
        char *rest = save;
        while (rest && *rest == '/')
            rest++;
        if (rest && *rest) {
            int sub = openat(dirfd, next, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (sub < 0) {
                rc = -errno;
                break;
            }
            close(dirfd);
            dirfd = sub;
        }
    }
    close(dirfd);
    return rc;
}

int names_path_encrypt(const pxc_names *nm, int root_fd, const char *plain, char *out, size_t size)
{
    return translate_path(nm, root_fd, plain, out, size, encrypt_component);
}

int names_path_decrypt(const pxc_names *nm, int root_fd, const char *stored, char *out, size_t size)
{
    return translate_path(nm, root_fd, stored, out, size, decrypt_component);
}

int names_dir_take_iv(const pxc_names *nm, int parent_fd, const char *name,
                      uint8_t iv[PXC_DIRIV_BYTES])
{
    if (!nm->encrypted)
        return 0;
    int fd = openat(parent_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOTDIR || errno == ENOENT ? 0 : -errno;
    int ivfd = openat(fd, DIRIV_FILE, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    ssize_t got = ivfd < 0 ? -errno : fd_read_full(ivfd, iv, PXC_DIRIV_BYTES, 0);
    if (ivfd >= 0)
        close(ivfd);
    int rc = only_entries(fd, is_iv);
    if (rc == 0 && got == PXC_DIRIV_BYTES)
        rc = unlinkat(fd, DIRIV_FILE, 0) != 0 ? -errno : 1;
    close(fd);
    return rc;
}

void names_dir_put_iv(int parent_fd, const char *name, const uint8_t iv[PXC_DIRIV_BYTES])
{
    int fd = openat(parent_fd, name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    int w = fd < 0 ? -1 : openat(fd, DIRIV_FILE, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0444);
    if (w >= 0) {
        (void)fd_write_full(w, iv, PXC_DIRIV_BYTES, 0);
        (void)fsync(w);
        close(w);
    }
    if (fd >= 0)
        close(fd);
}

int names_dir_remove(const pxc_names *nm, int parent_fd, const char *name)
{
    uint8_t iv[PXC_DIRIV_BYTES];
    int taken = names_dir_take_iv(nm, parent_fd, name, iv);
    if (taken < 0)
        return taken;
    if (unlinkat(parent_fd, name, AT_REMOVEDIR) == 0)
        return 0;
    int rc = -errno;
    if (taken)
        names_dir_put_iv(parent_fd, name, iv);
    return rc;
}

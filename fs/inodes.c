#include "fs/inodes.h"

#include <errno.h>
#include <sodium.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fs/namepath.h"

#define MIN_BUCKETS 1024

struct inode_table {
    pthread_mutex_t mutex;
    pxc_inode **bucket;
    size_t nbuckets; /* a power of two */
    size_t count;
    pxc_inode *root;
    char *root_path;
    size_t root_len;
    const pxc_names *names; /* NULL: log stored paths as they are */
};

static size_t bucket_of(const inode_table *t, dev_t dev, ino_t ino)
{
    uint64_t h = ((uint64_t)ino * 0x9E3779B97F4A7C15ULL) ^ ((uint64_t)dev * 0xC2B2AE3D27D4EB4FULL);
    return (size_t)(h ^ (h >> 29)) & (t->nbuckets - 1);
}

static void link_entry(inode_table *t, pxc_inode *n)
{
    size_t b = bucket_of(t, n->dev, n->ino);
    n->next = t->bucket[b];
    t->bucket[b] = n;
}

/* Doubles the bucket array once entries outnumber buckets (keeps chains short for
 * trees of many files).  Failure to grow is harmless. */
static void maybe_grow(inode_table *t)
{
    if (t->count <= t->nbuckets)
        return;
    pxc_inode **old = t->bucket;
    size_t oldn = t->nbuckets;
    pxc_inode **nb = calloc(oldn * 2, sizeof *nb);
    if (!nb)
        return;
    t->bucket = nb;
    t->nbuckets = oldn * 2;
    for (size_t b = 0; b < oldn; b++) {
        pxc_inode *n = old[b];
        while (n) {
            pxc_inode *next = n->next;
            link_entry(t, n);
            n = next;
        }
    }
    free(old);
}

static pxc_inode *entry_new(int fd, const struct stat *st)
{
    pxc_inode *n = calloc(1, sizeof *n);
    if (!n)
        return NULL;
    n->dev = st->st_dev;
    n->ino = st->st_ino;
    n->type = st->st_mode & S_IFMT;
    n->fd = fd;
    n->file.fd = -1;
    /* Writer-preferring: a stream of reads does not starve a writer. */
    pthread_rwlockattr_t attr;
    pthread_rwlockattr_init(&attr);
    pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    pthread_rwlock_init(&n->lock, &attr);
    pthread_rwlockattr_destroy(&attr);
    return n;
}

static void entry_free(pxc_inode *n)
{
    if (n->file.fd >= 0) {
        close(n->file.fd);
        opaque_close(&n->file);
    }
    free(n->head);
    free(n->tail.data);
    if (n->dirkey) {
        sodium_memzero(n->dirkey, sizeof *n->dirkey);
        free(n->dirkey);
    }
    if (n->fd >= 0)
        close(n->fd);
    pthread_rwlock_destroy(&n->lock);
    free(n);
}

static void unlink_entry(inode_table *t, pxc_inode *n)
{
    pxc_inode **p = &t->bucket[bucket_of(t, n->dev, n->ino)];
    while (*p && *p != n)
        p = &(*p)->next;
    if (*p)
        *p = n->next;
    t->count--;
}

inode_table *inode_table_new(const char *root_path)
{
    struct stat st;
    inode_table *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    pthread_mutex_init(&t->mutex, NULL);
    t->nbuckets = MIN_BUCKETS;
    t->bucket = calloc(t->nbuckets, sizeof *t->bucket);
    t->root_path = strdup(root_path);
    int fd = open(root_path, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (!t->bucket || !t->root_path || fd < 0 || fstat(fd, &st) != 0 ||
        !(t->root = entry_new(fd, &st))) {
        int e = errno;
        if (fd >= 0)
            close(fd);
        free(t->bucket);
        free(t->root_path);
        pthread_mutex_destroy(&t->mutex);
        free(t);
        errno = e ? e : ENOMEM;
        return NULL;
    }
    t->root_len = strlen(root_path);
    while (t->root_len > 1 && t->root_path[t->root_len - 1] == '/')
        t->root_len--;
    t->root->nlookup = 1; /* never forgotten */
    link_entry(t, t->root);
    t->count = 1;
    return t;
}

void inode_table_free(inode_table *t)
{
    if (!t)
        return;
    for (size_t b = 0; b < t->nbuckets; b++) {
        pxc_inode *n = t->bucket[b];
        while (n) {
            pxc_inode *next = n->next;
            entry_free(n);
            n = next;
        }
    }
    free(t->bucket);
    free(t->root_path);
    pthread_mutex_destroy(&t->mutex);
    free(t);
}

pxc_inode *inode_table_root(inode_table *t)
{
    return t->root;
}

static pxc_inode *lookup(inode_table *t, int fd, const struct stat *st, int linked)
{
    pthread_mutex_lock(&t->mutex);
    pxc_inode *n = t->bucket[bucket_of(t, st->st_dev, st->st_ino)];
    while (n && !(n->dev == st->st_dev && n->ino == st->st_ino))
        n = n->next;
    if (n) {
        /* Known already (another name of the same file, or looked up before): the entry
         * keeps its own fd, which refers to the same inode. */
        close(fd);
    } else {
        /* Checked under the mutex: inode_rekey runs after the rename that unlinked the
         * old inode, so either the entry is still under the old key (found above) or
         * the old inode is gone by now. */
        struct stat now;
        if (linked && S_ISREG(st->st_mode) && fstat(fd, &now) == 0 && now.st_nlink == 0) {
            pthread_mutex_unlock(&t->mutex);
            close(fd);
            errno = ESTALE;
            return NULL;
        }
        n = entry_new(fd, st);
        if (!n) {
            pthread_mutex_unlock(&t->mutex);
            close(fd);
            return NULL;
        }
        link_entry(t, n);
        t->count++;
        maybe_grow(t);
    }
    n->nlookup++;
    pthread_mutex_unlock(&t->mutex);
    return n;
}

pxc_inode *inode_lookup(inode_table *t, int fd, const struct stat *st)
{
    return lookup(t, fd, st, 0);
}

pxc_inode *inode_lookup_linked(inode_table *t, int fd, const struct stat *st)
{
    return lookup(t, fd, st, 1);
}

void inode_rekey(inode_table *t, pxc_inode *n, int fd, const struct stat *st)
{
    pthread_mutex_lock(&t->mutex);
    pxc_inode **p = &t->bucket[bucket_of(t, n->dev, n->ino)];
    while (*p && *p != n)
        p = &(*p)->next;
    if (*p)
        *p = n->next;
    n->dev = st->st_dev;
    n->ino = st->st_ino;
    /* Same fd number, new inode: operations using n->fd without the entry's lock see
     * the old inode or the new one, never a closed or reused fd. */
    if (dup3(fd, n->fd, O_CLOEXEC) < 0) {
        close(n->fd);
        n->fd = fd;
        fd = -1;
    }
    link_entry(t, n);
    pthread_mutex_unlock(&t->mutex);
    if (fd >= 0)
        close(fd);
}

void inode_lookup_again(inode_table *t, pxc_inode *n)
{
    pthread_mutex_lock(&t->mutex);
    n->nlookup++;
    pthread_mutex_unlock(&t->mutex);
}

/* With the table locked: frees n if nothing refers to it. */
static void release_if_unused(inode_table *t, pxc_inode *n)
{
    if (n == t->root || n->nlookup > 0 || n->nopen > 0)
        return;
    unlink_entry(t, n);
    entry_free(n);
}

void inode_forget(inode_table *t, pxc_inode *n, uint64_t nlookup)
{
    pthread_mutex_lock(&t->mutex);
    if (n != t->root) {
        n->nlookup = nlookup > n->nlookup ? 0 : n->nlookup - nlookup;
        release_if_unused(t, n);
    }
    pthread_mutex_unlock(&t->mutex);
}

void inode_open_ref(inode_table *t, pxc_inode *n)
{
    pthread_mutex_lock(&t->mutex);
    n->nopen++;
    pthread_mutex_unlock(&t->mutex);
}

void inode_open_unref(inode_table *t, pxc_inode *n)
{
    pthread_mutex_lock(&t->mutex);
    if (n->nopen > 0)
        n->nopen--;
    release_if_unused(t, n);
    pthread_mutex_unlock(&t->mutex);
}

size_t inode_table_count(inode_table *t)
{
    pthread_mutex_lock(&t->mutex);
    size_t c = t->count;
    pthread_mutex_unlock(&t->mutex);
    return c;
}

const char *inode_proc_path(const pxc_inode *n, char *buf)
{
    snprintf(buf, 32, "/proc/self/fd/%d", n->fd);
    return buf;
}

void inode_name(inode_table *t, const pxc_inode *n, char *buf, size_t size)
{
    char proc[32], target[4096];
    ssize_t len = readlink(inode_proc_path(n, proc), target, sizeof target - 1);
    if (len < 0) {
        snprintf(buf, size, "(inode %llu)", (unsigned long long)n->ino);
        return;
    }
    target[len] = '\0';
    const char *rel = target;
    if (strncmp(target, t->root_path, t->root_len) == 0 &&
        (target[t->root_len] == '/' || target[t->root_len] == '\0'))
        rel = target + t->root_len;
    if (t->names && t->names->encrypted && *rel) {
        static const char deleted[] = " (deleted)";
        char plain[4096];
        size_t rlen = strlen(rel), dl = sizeof deleted - 1;
        int gone = rlen > dl && strcmp(rel + rlen - dl, deleted) == 0;
        if (gone)
            target[rel - target + rlen - dl] = '\0';
        if (names_path_decrypt(t->names, t->root->fd, rel + 1, plain, sizeof plain) == 0) {
            snprintf(buf, size, "/%s%s", plain, gone ? deleted : "");
            return;
        }
        if (gone)
            target[rel - target + rlen - dl] = ' ';
    }
    snprintf(buf, size, "%s", *rel ? rel : "/");
}

void inode_table_set_names(inode_table *t, const pxc_names *names)
{
    t->names = names;
}

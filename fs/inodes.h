/* The inode table: one entry per backing inode (st_dev, st_ino) that the kernel knows
 * about, so that every hard link of a file is one FUSE inode with one attribute cache
 * and one page cache, as on ext4.
 *
 * Each entry holds an O_PATH fd on its backing inode.  Operations work relative to it
 * (*at() calls, /proc/self/fd/N) and never by path, so they keep working after a rename
 * and on files that were unlinked while open.  An entry lives while the kernel holds
 * lookups on it (nlookup, given back by forget) or it has open handles (nopen); the
 * root entry lives as long as the table.
 *
 * A regular file's entry also carries its open-file state (fs/content.h): the content
 * fd and codec state shared by every handle to the file, under the entry's rwlock. */
#ifndef PXC_FS_INODES_H
#define PXC_FS_INODES_H

#include <pthread.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "codec/opaque.h"
#include "codec/preview.h"

struct plain_buf;
struct pxc_dirkey;
struct pxc_names;

typedef struct pxc_inode {
    /* identity: changed only by inode_rekey, under the table mutex and with `lock`
     * write-locked, so holding either keeps it stable */
    dev_t dev;
    ino_t ino;
    int fd;      /* O_PATH on the backing inode */
    mode_t type; /* S_IFMT bits */

    /* lifetime: under the table mutex */
    uint64_t nlookup;
    uint64_t nopen;

    /* open-file state of a regular file: under `lock` (write-locked to change) */
    pthread_rwlock_t lock;
    int nfiles;       /* open file handles; `file` is valid while > 0 */
    int writers;      /* of which open for writing */
    int fd_writable;  /* file.fd was opened read-write */
    int dirty;        /* written since the keystore row was last updated */
    int eio_logged;   /* damage was logged since the first handle opened */
    int kind;         /* PXC_KIND_* of the stored form that file.fd holds */
    opaque_file file; /* file.fd: the content fd shared by all handles, or -1; the opaque
                       * codec state, or for other kinds just plain_size and file id */
    /* format-preserving kinds (decoded whole): the plaintext once decoded (a plain
     * cache buffer, fs/plaincache.h), and the parts of it its stored header seals:
     * [0, head_len) and [tail.off, tail.off + tail.len) */
    struct plain_buf *plain;
    uint8_t *head;
    size_t head_len;
    pxc_plain_tail tail;
    int head_tried;
    /* found by a name that is not one of its stored file's places (fs/places.h): its
     * reads are refused for as long as the entry lives; 1, then 2 once logged */
    _Atomic int misplaced;

    /* a directory's name key (fs/namepath.h), loaded on first use and never changed:
     * set once with an atomic compare-and-swap, freed with the entry */
    struct pxc_dirkey *dirkey;

    struct pxc_inode *next; /* hash chain */
} pxc_inode;

typedef struct inode_table inode_table;

/* A table whose root entry is the directory `root_path`, opened here.  NULL on failure
 * (errno set). */
inode_table *inode_table_new(const char *root_path);
/* Frees every entry (closing fds, wiping keys of open files), then the table. */
void inode_table_free(inode_table *t);

pxc_inode *inode_table_root(inode_table *t);

/* The entry for the backing inode described by st, found or added, with one more
 * kernel lookup.  Takes over fd (an O_PATH fd on that inode): it becomes the new
 * entry's fd or is closed.  NULL (fd closed) if out of memory. */
pxc_inode *inode_lookup(inode_table *t, int fd, const struct stat *st);
/* The same for an fd found by name: if no entry exists and the fd's inode has no link
 * left (the name was replaced since it was opened, e.g. by a transcoding's rename),
 * NULL with errno ESTALE so that the caller looks the name up again. */
pxc_inode *inode_lookup_linked(inode_table *t, int fd, const struct stat *st);
/* After the entry's backing file was replaced by a rename (a stored form rewritten
 * through a temp file): moves n to the new backing inode described by st, whose O_PATH
 * fd (taken over) replaces what n's fd refers to, under the same fd number.  The kernel's id for n
 * stays valid and later lookups of the new inode find n.  Call with n->lock write-locked. */
void inode_rekey(inode_table *t, pxc_inode *n, int fd, const struct stat *st);
/* One more kernel lookup on an entry the kernel already knows (a new hard link). */
void inode_lookup_again(inode_table *t, pxc_inode *n);
/* The kernel dropped n lookups; frees the entry when nothing refers to it any more. */
void inode_forget(inode_table *t, pxc_inode *n, uint64_t nlookup);

/* Open handles (files and directories) keep an entry alive. */
void inode_open_ref(inode_table *t, pxc_inode *n);
void inode_open_unref(inode_table *t, pxc_inode *n);

/* With encrypted names, inode_name shows plain paths. */
void inode_table_set_names(inode_table *t, const struct pxc_names *names);

/* Number of entries, for tests and stats. */
size_t inode_table_count(inode_table *t);

/* "/proc/self/fd/N" for the entry's fd; buf must hold 32 bytes. */
const char *inode_proc_path(const pxc_inode *n, char *buf);
/* The entry's current path in the mount ("/a/b.jpg", with " (deleted)" once unlinked),
 * for log lines. */
void inode_name(inode_table *t, const pxc_inode *n, char *buf, size_t size);

#endif

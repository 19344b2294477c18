/* The mounted filesystem: state shared by all FUSE operations, and the operations. */
#ifndef PXC_FS_PXCFS_H
#define PXC_FS_PXCFS_H

#define FUSE_USE_VERSION 314
#include <fuse_lowlevel.h>
#include <semaphore.h>

#include "codec/keys.h"
#include "fs/inodes.h"
#include "fs/namepath.h"
#include "fs/plaincache.h"
#include "keystore/keystore.h"

typedef struct pxc_fs {
    int root_fd; /* the cipher dir, opened O_RDONLY|O_DIRECTORY */
    const char *cipherdir;
    pxc_keys *keys;
    keystore *ks;
    inode_table *inodes; /* its root entry is the cipher dir */
    int daemon_is_root;  /* create files as the calling user (allow_other) */
    plain_cache *cache;  /* plaintexts of recently read format-preserving files */
    int allow_rollback;  /* read stored files older than their keystore row (logged) */
    sem_t codec_slots;   /* image decodes and conversions that may run at once */
    /* Renames, unlinks and links through the mount hold it shared; replacing a stored
     * file (rename of a temp file over a name found through /proc) holds it exclusive,
     * so that the name it checked is still the name it replaces. */
    pthread_rwlock_t ns_lock;
    /* Image reads: plaintexts decoded whole, and reads served from sealed headers alone
     * (logged at unmount; the tests read them). */
    _Atomic uint64_t whole_decodes, header_reads;
    pxc_names names; /* how names are stored (plaintext or encrypted) */
    int no_xattr;    /* -o noxattr: xattr requests get ENOSYS, so the kernel stops asking */
    /* fs/places.h: the volume binds files it finds without a place where they are (a
     * keystore from before places, or rebuilt, that fsck has not completed) */
    int places_learning;
} pxc_fs;

/* For the operations: the filesystem of a request, the inode table entry a FUSE inode id
 * stands for, and an error reply (err: an errno, either sign). */
static inline pxc_fs *req_fs(fuse_req_t req)
{
    return fuse_req_userdata(req);
}

static inline pxc_inode *inode_of(fuse_req_t req, fuse_ino_t ino)
{
    if (ino == FUSE_ROOT_ID)
        return inode_table_root(req_fs(req)->inodes);
    return (pxc_inode *)(uintptr_t)ino;
}

static inline void reply_err(fuse_req_t req, int err)
{
    fuse_reply_err(req, err < 0 ? -err : err);
}

/* The low-level operation table; pass a pxc_fs as fuse_session_new's userdata. */
const struct fuse_lowlevel_ops *pxcfs_operations(void);

#endif

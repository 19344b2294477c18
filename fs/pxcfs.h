/* The mounted filesystem: state shared by all FUSE operations, and the operations. */
#ifndef PXC_FS_PXCFS_H
#define PXC_FS_PXCFS_H

#define FUSE_USE_VERSION 314
#include <fuse_lowlevel.h>

#include "codec/keys.h"
#include "fs/inodes.h"
#include "keystore/keystore.h"

typedef struct pxc_fs {
    int root_fd; /* the cipher dir, opened O_RDONLY|O_DIRECTORY */
    const char *cipherdir;
    pxc_keys *keys;
    keystore *ks;
    inode_table *inodes; /* its root entry is the cipher dir */
    int daemon_is_root;  /* create files as the calling user (allow_other) */
} pxc_fs;

/* The low-level operation table; pass a pxc_fs as fuse_session_new's userdata. */
const struct fuse_lowlevel_ops *pxcfs_operations(void);

#endif

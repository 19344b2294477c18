/* The mounted filesystem: state shared by all FUSE operations, and the operations. */
#ifndef PXC_FS_PXCFS_H
#define PXC_FS_PXCFS_H

#define FUSE_USE_VERSION 314
#include <fuse.h>

#include "codec/keys.h"
#include "fs/nodes.h"
#include "keystore/keystore.h"

typedef struct pxc_fs {
    int root_fd; /* the cipher dir, opened O_PATH|O_DIRECTORY */
    const char *cipherdir;
    pxc_keys *keys;
    keystore *ks;
    node_table *nodes;
    int daemon_is_root; /* create files as the calling user (allow_other) */
} pxc_fs;

/* The operation table; pass a pxc_fs as fuse_new's private data. */
const struct fuse_operations *pxcfs_operations(void);

#endif

/* Extended attribute operations of the mount (libfuse low-level API), encrypted. */
#ifndef PXC_FS_XATTR_OPS_H
#define PXC_FS_XATTR_OPS_H

#include "fs/pxcfs.h"

void pxc_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value, size_t size,
                  int flags);
void pxc_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size);
void pxc_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size);
void pxc_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name);

#endif

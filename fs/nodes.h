/* The open-file table: one node per backing inode that has open handles, shared by
 * every handle (and every hard link) to it.  The node's rwlock orders readers and
 * writers of that file's content. */
#ifndef PXC_FS_NODES_H
#define PXC_FS_NODES_H

#include <pthread.h>
#include <sys/types.h>

#include "codec/opaque.h"

typedef struct pxc_node {
    dev_t dev;
    ino_t ino;
    int refs;        /* open handles; guarded by the table mutex */
    int writers;     /* handles open for writing; guarded by the table mutex */
    int fd_writable; /* the shared fd in `file` was opened read-write */
    int dirty;       /* written since the keystore row was last updated; under `lock` */
    pthread_rwlock_t lock;
    opaque_file file; /* file.fd is the node's backing fd */
    char path[256];   /* a recent path in the mount, for log lines */
    struct pxc_node *next;
} pxc_node;

typedef struct node_table node_table;

node_table *node_table_new(void);
void node_table_free(node_table *t);

void node_table_lock(node_table *t);
void node_table_unlock(node_table *t);

/* With the table locked: the node for (dev, ino), or NULL. */
pxc_node *node_table_find(node_table *t, dev_t dev, ino_t ino);
/* With the table locked: a new zeroed node (refs 0) for (dev, ino), added to the table. */
pxc_node *node_table_add(node_table *t, dev_t dev, ino_t ino);
/* With the table locked: unlinks and frees a node whose refs dropped to 0.
 * Closes its fd and wipes its keys. */
void node_table_remove(node_table *t, pxc_node *n);
/* Number of nodes (open files), for tests and stats. */
int node_table_count(node_table *t);

void node_set_path(pxc_node *n, const char *path);

#endif

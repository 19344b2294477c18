#include "fs/nodes.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define BUCKETS 1024

struct node_table {
    pthread_mutex_t mutex;
    pxc_node *bucket[BUCKETS];
    int count;
};

static size_t bucket_of(dev_t dev, ino_t ino)
{
    return (size_t)((ino * 0x9E3779B97F4A7C15ULL) ^ dev) % BUCKETS;
}

node_table *node_table_new(void)
{
    node_table *t = calloc(1, sizeof *t);
    if (t)
        pthread_mutex_init(&t->mutex, NULL);
    return t;
}

void node_table_free(node_table *t)
{
    if (!t)
        return;
    for (size_t b = 0; b < BUCKETS; b++)
        while (t->bucket[b])
            node_table_remove(t, t->bucket[b]);
    pthread_mutex_destroy(&t->mutex);
    free(t);
}

void node_table_lock(node_table *t)
{
    pthread_mutex_lock(&t->mutex);
}

void node_table_unlock(node_table *t)
{
    pthread_mutex_unlock(&t->mutex);
}

pxc_node *node_table_find(node_table *t, dev_t dev, ino_t ino)
{
    for (pxc_node *n = t->bucket[bucket_of(dev, ino)]; n; n = n->next)
        if (n->dev == dev && n->ino == ino)
            return n;
    return NULL;
}

pxc_node *node_table_add(node_table *t, dev_t dev, ino_t ino)
{
    pxc_node *n = calloc(1, sizeof *n);
    if (!n)
        return NULL;
    n->dev = dev;
    n->ino = ino;
    n->file.fd = -1;
    pthread_rwlock_init(&n->lock, NULL);
    size_t b = bucket_of(dev, ino);
    n->next = t->bucket[b];
    t->bucket[b] = n;
    t->count++;
    return n;
}

void node_table_remove(node_table *t, pxc_node *n)
{
    pxc_node **p = &t->bucket[bucket_of(n->dev, n->ino)];
    while (*p && *p != n)
        p = &(*p)->next;
    if (*p)
        *p = n->next;
    t->count--;
    if (n->file.fd >= 0)
        close(n->file.fd);
    opaque_close(&n->file);
    pthread_rwlock_destroy(&n->lock);
    free(n);
}

int node_table_count(node_table *t)
{
    node_table_lock(t);
    int c = t->count;
    node_table_unlock(t);
    return c;
}

void node_set_path(pxc_node *n, const char *path)
{
    if (!path)
        return;
    strncpy(n->path, path, sizeof n->path - 1);
    n->path[sizeof n->path - 1] = '\0';
}

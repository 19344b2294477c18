#include "fs/plaincache.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define NBUCKETS 4096 /* a power of two */

typedef struct entry {
    plain_buf buf; /* first: a plain_buf * is an entry * */
    uint8_t *data;
    int refs;   /* the cache's own (while cached) and every caller's */
    int cached; /* in the table and the LRU list */
    plain_key key;
    struct entry *hnext;               /* hash chain */
    struct entry *lru_prev, *lru_next; /* most recently used at the head */
} entry;

struct plain_cache {
    pthread_mutex_t mutex;
    size_t budget, bytes;
    entry *bucket[NBUCKETS];
    entry *lru_head, *lru_tail;
};

static size_t bucket_of(dev_t dev, ino_t ino)
{
    uint64_t h = ((uint64_t)ino * 0x9E3779B97F4A7C15ULL) ^ ((uint64_t)dev * 0xC2B2AE3D27D4EB4FULL);
    return (size_t)(h ^ (h >> 29)) & (NBUCKETS - 1);
}

static int key_eq(const plain_key *a, const plain_key *b)
{
    return a->dev == b->dev && a->ino == b->ino && a->stored_size == b->stored_size &&
           a->mtime.tv_sec == b->mtime.tv_sec && a->mtime.tv_nsec == b->mtime.tv_nsec &&
           memcmp(a->file_id, b->file_id, sizeof a->file_id) == 0;
}

static void entry_unref(entry *e)
{
    if (--e->refs > 0)
        return;
    explicit_bzero(e->data, e->buf.len);
    free(e->data);
    free(e);
}

static void lru_unlink(plain_cache *c, entry *e)
{
    if (e->lru_prev)
        e->lru_prev->lru_next = e->lru_next;
    else
        c->lru_head = e->lru_next;
    if (e->lru_next)
        e->lru_next->lru_prev = e->lru_prev;
    else
        c->lru_tail = e->lru_prev;
    e->lru_prev = e->lru_next = NULL;
}

static void lru_push_front(plain_cache *c, entry *e)
{
    e->lru_prev = NULL;
    e->lru_next = c->lru_head;
    if (c->lru_head)
        c->lru_head->lru_prev = e;
    c->lru_head = e;
    if (!c->lru_tail)
        c->lru_tail = e;
}

/* With the mutex held: takes e out of the cache and drops the cache's reference. */
static void evict(plain_cache *c, entry *e)
{
    entry **p = &c->bucket[bucket_of(e->key.dev, e->key.ino)];
    while (*p && *p != e)
        p = &(*p)->hnext;
    if (*p)
        *p = e->hnext;
    lru_unlink(c, e);
    e->cached = 0;
    c->bytes -= e->buf.len;
    entry_unref(e);
}

plain_cache *plain_cache_new(size_t budget)
{
    plain_cache *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    pthread_mutex_init(&c->mutex, NULL);
    c->budget = budget;
    return c;
}

void plain_cache_free(plain_cache *c)
{
    if (!c)
        return;
    while (c->lru_head)
        evict(c, c->lru_head);
    pthread_mutex_destroy(&c->mutex);
    free(c);
}

plain_buf *plain_cache_get(plain_cache *c, const plain_key *key)
{
    pthread_mutex_lock(&c->mutex);
    entry *e = c->bucket[bucket_of(key->dev, key->ino)];
    while (e && !key_eq(&e->key, key))
        e = e->hnext;
    if (e) {
        e->refs++;
        lru_unlink(c, e);
        lru_push_front(c, e);
    }
    pthread_mutex_unlock(&c->mutex);
    return e ? &e->buf : NULL;
}

/* With the mutex held. */
static void drop_inode_locked(plain_cache *c, dev_t dev, ino_t ino)
{
    entry *e = c->bucket[bucket_of(dev, ino)];
    while (e) {
        entry *next = e->hnext;
        if (e->key.dev == dev && e->key.ino == ino)
            evict(c, e);
        e = next;
    }
}

plain_buf *plain_cache_put(plain_cache *c, const plain_key *key, uint8_t *data, size_t len)
{
    entry *e = calloc(1, sizeof *e);
    if (!e) {
        explicit_bzero(data, len);
        free(data);
        return NULL;
    }
    e->data = data;
    e->buf.data = data;
    e->buf.len = len;
    e->key = *key;
    e->refs = 1;
    pthread_mutex_lock(&c->mutex);
    drop_inode_locked(c, key->dev, key->ino);
    if (len > 0 && len <= c->budget) {
        while (c->bytes + len > c->budget && c->lru_tail)
            evict(c, c->lru_tail);
        size_t b = bucket_of(key->dev, key->ino);
        e->hnext = c->bucket[b];
        c->bucket[b] = e;
        lru_push_front(c, e);
        e->cached = 1;
        e->refs++;
        c->bytes += len;
    }
    pthread_mutex_unlock(&c->mutex);
    return &e->buf;
}

void plain_cache_release(plain_cache *c, plain_buf *b)
{
    if (!b)
        return;
    pthread_mutex_lock(&c->mutex);
    entry_unref((entry *)b);
    pthread_mutex_unlock(&c->mutex);
}

void plain_cache_drop_inode(plain_cache *c, dev_t dev, ino_t ino)
{
    pthread_mutex_lock(&c->mutex);
    drop_inode_locked(c, dev, ino);
    pthread_mutex_unlock(&c->mutex);
}

size_t plain_cache_bytes(plain_cache *c)
{
    pthread_mutex_lock(&c->mutex);
    size_t b = c->bytes;
    pthread_mutex_unlock(&c->mutex);
    return b;
}

/* The plaintext cache: whole plaintexts of recently read format-preserving files, so
 * that opening the same image again does not decode it again.
 *
 * Entries are keyed by the stored version they were decoded from: backing inode, file
 * id (new on every rewrite), stored size and mtime, so a rewrite or a change made in the
 * cipher dir never hits an old entry.  The cache holds at most `budget` bytes of
 * plaintext, least recently used first out.  Buffers are reference counted: an open file
 * keeps its buffer after the cache dropped it, and the buffer is wiped and freed when the
 * last reference goes.  All functions are thread-safe. */
#ifndef PXC_FS_PLAINCACHE_H
#define PXC_FS_PLAINCACHE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

typedef struct plain_key {
    dev_t dev;
    ino_t ino;
    uint8_t file_id[16];
    uint64_t stored_size;
    struct timespec mtime;
} plain_key;

typedef struct plain_buf {
    const uint8_t *data;
    size_t len;
} plain_buf;

typedef struct plain_cache plain_cache;

/* NULL if out of memory.  A budget of 0 caches nothing (buffers still work). */
plain_cache *plain_cache_new(size_t budget);
void plain_cache_free(plain_cache *c);

/* The buffer for key with one more reference, or NULL. */
plain_buf *plain_cache_get(plain_cache *c, const plain_key *key);
/* Wraps data (malloc'ed, taken over) in a buffer with one reference for the caller and
 * caches it if it fits the budget (evicting older entries of the same inode first, then
 * the least recently used).  NULL (data freed) if out of memory. */
plain_buf *plain_cache_put(plain_cache *c, const plain_key *key, uint8_t *data, size_t len);
/* Drops a reference from get/put. */
void plain_cache_release(plain_cache *c, plain_buf *b);
/* Evicts every entry of the backing inode (dev, ino). */
void plain_cache_drop_inode(plain_cache *c, dev_t dev, ino_t ino);

/* Bytes of plaintext held in cache entries, for tests and stats. */
size_t plain_cache_bytes(plain_cache *c);

#endif

/* A JPEG written by libjpeg on one thread and read back, as it is written, on another.
 *
 * The writer's destination manager fills fixed-size chunks; each full chunk becomes
 * readable at once (a chunk never moves once allocated, so readers keep pointers into
 * it without holding the lock), and the last, partial one when libjpeg terminates the
 * destination.  The reader's source manager hands libjpeg a head buffer first, then the
 * stream's chunks as they become readable, waiting when it catches up with the writer.
 * If the stream ends, or the writer fails, before the reader is done, the source ends
 * the data with an EOI marker as libjpeg's own sources do, and records that it did. */
#include "codec/jpeg_stream.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <jerror.h>

#define CHUNK ((size_t)64 << 10)

struct jpg_stream {
    struct jpeg_destination_mgr dst; /* first: libjpeg hands it back as c->dest */
    pthread_mutex_t lock;
    pthread_cond_t more;
    uint8_t **chunk;
    size_t nchunk, cap;
    size_t len; /* readable bytes */
    int done, failed;
};

jpg_stream *jpg_stream_new(void)
{
    jpg_stream *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->more, NULL);
    return s;
}

void jpg_stream_free(jpg_stream *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->nchunk; i++)
        free(s->chunk[i]);
    free(s->chunk);
    pthread_mutex_destroy(&s->lock);
    pthread_cond_destroy(&s->more);
    free(s);
}

/* Makes `bytes` more readable (0: none), marks the end if `end`, and wakes readers. */
static void publish(jpg_stream *s, size_t bytes, int end)
{
    pthread_mutex_lock(&s->lock);
    s->len += bytes;
    s->done |= end;
    pthread_cond_broadcast(&s->more);
    pthread_mutex_unlock(&s->lock);
}

/* Appends an empty chunk and points libjpeg at it (the chunk array may move, so it is
 * changed under the lock). */
static int add_chunk(jpg_stream *s)
{
    uint8_t *c = malloc(CHUNK);
    if (!c)
        return -ENOMEM;
    pthread_mutex_lock(&s->lock);
    int rc = 0;
    if (s->nchunk == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 64;
        uint8_t **a = realloc(s->chunk, cap * sizeof *a);
        if (a) {
            s->chunk = a;
            s->cap = cap;
        } else {
            rc = -ENOMEM;
        }
    }
    if (rc == 0)
        s->chunk[s->nchunk++] = c;
    pthread_mutex_unlock(&s->lock);
    if (rc) {
        free(c);
        return rc;
    }
    s->dst.next_output_byte = c;
    s->dst.free_in_buffer = CHUNK;
    return 0;
}

static void dest_init(j_compress_ptr c)
{
    jpg_stream *s = (jpg_stream *)(void *)c->dest;
    if (add_chunk(s) != 0)
        ERREXIT1(c, JERR_OUT_OF_MEMORY, 0);
}

/* The current chunk is full (libjpeg's contract: all of it, whatever free_in_buffer
 * says). */
static boolean dest_empty(j_compress_ptr c)
{
    jpg_stream *s = (jpg_stream *)(void *)c->dest;
    publish(s, CHUNK, 0);
    if (add_chunk(s) != 0)
        ERREXIT1(c, JERR_OUT_OF_MEMORY, 0);
    return TRUE;
}

static void dest_term(j_compress_ptr c)
{
    jpg_stream *s = (jpg_stream *)(void *)c->dest;
    publish(s, CHUNK - s->dst.free_in_buffer, 1);
}

void jpg_stream_dest(j_compress_ptr c, jpg_stream *s)
{
    s->dst.init_destination = dest_init;
    s->dst.empty_output_buffer = dest_empty;
    s->dst.term_destination = dest_term;
    c->dest = &s->dst;
}

void jpg_stream_fail(jpg_stream *s)
{
    pthread_mutex_lock(&s->lock);
    s->failed = 1;
    pthread_cond_broadcast(&s->more);
    pthread_mutex_unlock(&s->lock);
}

size_t jpg_stream_wait(jpg_stream *s, size_t want, int *ended)
{
    pthread_mutex_lock(&s->lock);
    while (s->len < want && !s->done && !s->failed)
        pthread_cond_wait(&s->more, &s->lock);
    size_t len = s->len;
    *ended = s->done || s->failed;
    pthread_mutex_unlock(&s->lock);
    return len;
}

const uint8_t *jpg_stream_at(jpg_stream *s, size_t pos, size_t *len)
{
    pthread_mutex_lock(&s->lock);
    const uint8_t *p = s->chunk[pos / CHUNK] + pos % CHUNK;
    size_t end = s->len < (pos / CHUNK + 1) * CHUNK ? s->len : (pos / CHUNK + 1) * CHUNK;
    pthread_mutex_unlock(&s->lock);
    *len = end - pos;
    return p;
}

int jpg_stream_result(jpg_stream *s, size_t *len)
{
    pthread_mutex_lock(&s->lock);
    int rc = s->failed ? -EPROTO : s->done ? 0 : -EAGAIN;
    *len = s->len;
    pthread_mutex_unlock(&s->lock);
    return rc;
}

void jpg_stream_copy(jpg_stream *s, size_t from, uint8_t *out)
{
    size_t end = 0, pos = from;
    jpg_stream_result(s, &end);
    while (pos < end) {
        size_t n = 0;
        const uint8_t *p = jpg_stream_at(s, pos, &n);
        memcpy(out, p, n);
        out += n;
        pos += n;
    }
}

/* ---- reading ---- */

typedef struct stream_src {
    struct jpeg_source_mgr pub; /* first: libjpeg hands it back as d->src */
    jpg_stream *s;
    size_t pos; /* next stream byte to hand out */
    int faked;  /* had to end the data itself */
} stream_src;

static void src_init(j_decompress_ptr d)
{
    (void)d;
}

static boolean src_fill(j_decompress_ptr d)
{
    static const JOCTET eoi[2] = {0xFF, JPEG_EOI};
    stream_src *src = (stream_src *)(void *)d->src;
    int ended = 0;
    size_t len = jpg_stream_wait(src->s, src->pos + 1, &ended), n = 0;
    if (len <= src->pos) {
        src->faked = 1;
        src->pub.next_input_byte = eoi;
        src->pub.bytes_in_buffer = sizeof eoi;
        return TRUE;
    }
    src->pub.next_input_byte = jpg_stream_at(src->s, src->pos, &n);
    src->pub.bytes_in_buffer = n;
    src->pos += n;
    return TRUE;
}

static void src_skip(j_decompress_ptr d, long bytes)
{
    struct jpeg_source_mgr *src = d->src;
    if (bytes <= 0)
        return;
    while (bytes > (long)src->bytes_in_buffer) {
        bytes -= (long)src->bytes_in_buffer;
        src_fill(d);
    }
    src->next_input_byte += bytes;
    src->bytes_in_buffer -= (size_t)bytes;
}

static void src_term(j_decompress_ptr d)
{
    (void)d;
}

void jpg_stream_src(j_decompress_ptr d, jpg_stream *s, const uint8_t *head, size_t head_len,
                    size_t from)
{
    stream_src *src = (*d->mem->alloc_small)((j_common_ptr)d, JPOOL_PERMANENT, sizeof *src);
    memset(src, 0, sizeof *src);
    src->pub.init_source = src_init;
    src->pub.fill_input_buffer = src_fill;
    src->pub.skip_input_data = src_skip;
    src->pub.resync_to_restart = jpeg_resync_to_restart;
    src->pub.term_source = src_term;
    src->pub.next_input_byte = head;
    src->pub.bytes_in_buffer = head_len;
    src->s = s;
    src->pos = from;
    d->src = &src->pub;
}

int jpg_stream_src_clean(j_decompress_ptr d)
{
    const stream_src *src = (const stream_src *)(const void *)d->src;
    size_t len = 0;
    return !src->faked && jpg_stream_result(src->s, &len) == 0;
}

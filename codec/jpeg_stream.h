/* A JPEG written by libjpeg on one thread and read back, as it is written, on another
 * (jpeg_stream.c).  Internal to codec/jpeg*.c. */
#ifndef PXC_CODEC_JPEG_STREAM_H
#define PXC_CODEC_JPEG_STREAM_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <jpeglib.h>

typedef struct jpg_stream jpg_stream;

jpg_stream *jpg_stream_new(void);
void jpg_stream_free(jpg_stream *s);

/* Makes s the destination of c: libjpeg's writes become readable chunk by chunk, and
 * all of them when it terminates the destination (jpeg_finish_compress). */
void jpg_stream_dest(j_compress_ptr c, jpg_stream *s);

/* The writer gave up: readers waiting for more return. */
void jpg_stream_fail(jpg_stream *s);

/* Waits until `want` bytes are readable or the writer is done or failed.  Returns the
 * bytes readable; *ended is set once nothing more will come. */
size_t jpg_stream_wait(jpg_stream *s, size_t want, int *ended);

/* The readable bytes at pos (< what jpg_stream_wait returned): a pointer to them and,
 * in *len, how many are contiguous there. */
const uint8_t *jpg_stream_at(jpg_stream *s, size_t pos, size_t *len);

/* 0 and the total length once the writer is done; -EPROTO if it failed, -EAGAIN
 * before it is done. */
int jpg_stream_result(jpg_stream *s, size_t *len);

/* Copies bytes [from, end) of a finished stream to out. */
void jpg_stream_copy(jpg_stream *s, size_t from, uint8_t *out);

/* Makes d read head[0, head_len) and then the stream from byte `from` on, waiting for
 * the writer as needed (its source manager, allocated in d's permanent pool). */
void jpg_stream_src(j_decompress_ptr d, jpg_stream *s, const uint8_t *head, size_t head_len,
                    size_t from);

/* Whether d's stream source met the end of a stream written without failure (and
 * never had to make an end up). */
int jpg_stream_src_clean(j_decompress_ptr d);

#endif

/* The plaintext a stored image carries sealed beside its header, so that reads near the
 * start and the end of a large image are served without decoding it.
 *
 * Metadata readers (exiftool, identify -ping, file managers) read a photo's first
 * kilobytes and, exiftool, its last page; the kernel turns those reads into page-aligned
 * requests with readahead (16-128 KiB) that run well past the markers or chunks before
 * the image data.  So besides that head, the record seals a copy of the original bytes
 * that follow it ("ahead", up to a page boundary past twice the head plus the first
 * readahead windows) and of the last pages ("tail").  The copies cost a few percent of
 * a large file and nothing below PXC_PREVIEW_MIN_PLAIN, where a whole decode is cheap.
 * The full decode checks both copies against what it regenerates.
 */
#ifndef PXC_CODEC_PREVIEW_H
#define PXC_CODEC_PREVIEW_H

#include <stdint.h>

/* Plaintexts smaller than this carry no copies. */
#define PXC_PREVIEW_MIN_PLAIN ((uint64_t)1 << 20)
#define PXC_PREVIEW_PAGE ((uint64_t)4096)
/* Readahead windows a sequential reader still within the head may trigger. */
#define PXC_PREVIEW_AHEAD_SLACK ((uint64_t)48 << 10)
#define PXC_PREVIEW_AHEAD_MAX ((uint64_t)256 << 10)
#define PXC_PREVIEW_TAIL ((uint64_t)8 << 10)

/* The plaintext's last bytes, as pxc_stored_decode_head gives them. */
typedef struct pxc_plain_tail {
    uint8_t *data; /* malloc'ed, or NULL when the file carries none */
    uint64_t off;  /* plaintext offset of data[0] */
    size_t len;
} pxc_plain_tail;

/* Where the sealed copies of a plaintext of plain_len bytes whose head (the bytes before
 * the image data) is head_len long end and start: the copy ahead is
 * [head_len, *ahead_end), the tail [*tail_off, plain_len); both empty for small files. */
static inline void pxc_preview_plan(uint64_t plain_len, uint64_t head_len, uint64_t *ahead_end,
                                    uint64_t *tail_off)
{
    *ahead_end = head_len;
    *tail_off = plain_len;
    if (plain_len < PXC_PREVIEW_MIN_PLAIN || head_len > plain_len)
        return;
    uint64_t end =
        (2 * head_len + PXC_PREVIEW_AHEAD_SLACK + PXC_PREVIEW_PAGE - 1) & ~(PXC_PREVIEW_PAGE - 1);
    if (end > head_len + PXC_PREVIEW_AHEAD_MAX)
        end = head_len + PXC_PREVIEW_AHEAD_MAX;
    *ahead_end = end < plain_len ? end : plain_len;
    /* The last page-aligned PXC_PREVIEW_TAIL bytes and the partial page after them. */
    uint64_t tail = (plain_len & ~(PXC_PREVIEW_PAGE - 1)) - PXC_PREVIEW_TAIL;
    *tail_off = tail > *ahead_end ? tail : *ahead_end;
}

#endif

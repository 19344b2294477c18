/* Dispatch over the storage kinds; see stored.h. */
#include "codec/stored.h"

#include <errno.h>
#include <string.h>

#include "codec/opaque.h"
#include "codec/jpeg.h"
#include "codec/png.h"

_Static_assert(PXC_STORED_PEEK_BYTES >= OPAQUE_HEADER_BYTES &&
                   PXC_STORED_PEEK_BYTES >= PNG_PEEK_BYTES &&
                   PXC_STORED_PEEK_BYTES >= JPEG_PEEK_BYTES,
               "the peek covers every kind's header");

static const uint8_t png_signature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};

int pxc_stored_peek(const uint8_t *head, size_t n, uint64_t stored_size, pxc_stored_info *out)
{
    memset(out, 0, sizeof *out);
    if (n >= OPAQUE_HEADER_BYTES && pxc_stored_kind(head, n) == PXC_KIND_OPAQUE) {
        if (opaque_plain_size(stored_size, &out->plain_size) != 0)
            return -EBADMSG;
        out->kind = PXC_KIND_OPAQUE;
        memcpy(out->file_id, head + 16, PXC_FILE_ID_BYTES);
        memcpy(out->sealed, head + 32, PXC_SEALED_SECRETS_BYTES);
        memcpy(out->header_ad, head, sizeof out->header_ad);
        return 0;
    }
    /* No image is empty: a size of 0 would have readers skip the decode that checks it.
     * Nor larger than any the encoder takes: the size is read before anything is
     * authenticated, and a damaged one must not reach stat (the kernel turns a size past
     * 2^63 into EIO with no log line naming the file). */
    png_peek_info png;
    if (n >= PNG_PEEK_BYTES && png_codec_peek(head, n, &png) == 0 && png.plain_size > 0 &&
        png.plain_size <= PXC_STORED_MAX_IMAGE_FILE) {
        out->kind = PXC_KIND_PNG;
        out->plain_size = png.plain_size;
        memcpy(out->file_id, png.file_id, PXC_FILE_ID_BYTES);
        memcpy(out->sealed, png.sealed, PXC_SEALED_SECRETS_BYTES);
        memcpy(out->header_ad, png.header_ad, sizeof out->header_ad);
        out->head_bytes = png.head_bytes;
        return 0;
    }
    jpeg_peek_info jpg;
    if (n >= JPEG_PEEK_BYTES && jpeg_codec_peek(head, n, &jpg) == 0 && jpg.plain_size > 0 &&
        jpg.plain_size <= PXC_STORED_MAX_IMAGE_FILE) {
        out->kind = PXC_KIND_JPEG;
        out->plain_size = jpg.plain_size;
        memcpy(out->file_id, jpg.file_id, PXC_FILE_ID_BYTES);
        memcpy(out->sealed, jpg.sealed, PXC_SEALED_SECRETS_BYTES);
        memcpy(out->header_ad, jpg.header_ad, sizeof out->header_ad);
        out->head_bytes = jpg.head_bytes;
        return 0;
    }
    return -EBADMSG;
}

int pxc_stored_open_secrets(const pxc_stored_info *info, const pxc_keys *keys, pxc_file_secrets *s)
{
    if (pxc_secrets_open(s, keys, info->sealed, info->header_ad, sizeof info->header_ad) != 0)
        return -EBADMSG;
    memcpy(s->file_id, info->file_id, PXC_FILE_ID_BYTES);
    return 0;
}

int pxc_stored_candidate_kind(const uint8_t *head, size_t n)
{
    if (n >= sizeof png_signature && memcmp(head, png_signature, sizeof png_signature) == 0)
        return PXC_KIND_PNG;
    if (n >= 3 && head[0] == 0xFF && head[1] == 0xD8 && head[2] == 0xFF)
        return PXC_KIND_JPEG;
    return PXC_KIND_OPAQUE;
}

int pxc_stored_encode(int kind, const uint8_t *plain, size_t n, const pxc_keys *keys,
                      const pxc_file_secrets *s, uint8_t **stored, size_t *stored_len,
                      const char **why)
{
    *stored = NULL;
    *stored_len = 0;
    if (n > PXC_STORED_MAX_IMAGE_FILE) {
        if (why)
            *why = "too large to transform";
        return -EFBIG;
    }
    switch (kind) {
    case PXC_KIND_PNG:
        return png_codec_encode(plain, n, keys, s, stored, stored_len, why);
    case PXC_KIND_JPEG:
        return jpeg_codec_encode(plain, n, keys, s, stored, stored_len, why);
    default:
        if (why)
            *why = "no format-preserving codec for this content";
        return -ENOTSUP;
    }
}

int pxc_stored_decode(int kind, const uint8_t *stored, size_t n, const pxc_keys *keys,
                      uint8_t **plain, size_t *plain_len)
{
    *plain = NULL;
    *plain_len = 0;
    switch (kind) {
    case PXC_KIND_PNG:
        return png_codec_decode(stored, n, keys, plain, plain_len);
    case PXC_KIND_JPEG:
        return jpeg_codec_decode(stored, n, keys, plain, plain_len);
    default:
        return -EINVAL;
    }
}

int pxc_stored_decode_head(int kind, const uint8_t *stored, size_t n, const pxc_keys *keys,
                           uint8_t **head, size_t *head_len, pxc_plain_tail *tail)
{
    *head = NULL;
    *head_len = 0;
    if (tail)
        memset(tail, 0, sizeof *tail);
    switch (kind) {
    case PXC_KIND_PNG:
        return png_codec_decode_head(stored, n, keys, head, head_len, tail);
    case PXC_KIND_JPEG:
        return jpeg_codec_decode_head(stored, n, keys, head, head_len, tail);
    default:
        return -EINVAL;
    }
}

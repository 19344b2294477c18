/* codec/stored: kind detection and dispatch, on real opaque and PNG stored files. */
#include <errno.h>
#include <png.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "codec/opaque.h"
#include "codec/png.h"
#include "codec/stored.h"
#include "tests/unit/tap.h"

/* A small RGB PNG made with libpng's simplified API. */
/* A 40x30 RGB PNG; poke != 0 changes one sample of one pixel by one. */
static uint8_t *make_png(size_t *len, int poke)
{
    enum { W = 40, H = 30 };
    static uint8_t px[W * H * 3];
    for (int i = 0; i < W * H * 3; i++)
        px[i] = (uint8_t)(i * 7 + i / 97);
    if (poke)
        px[(H / 2 * W + W / 3) * 3 + 1] ^= 1;
    png_image img;
    memset(&img, 0, sizeof img);
    img.version = PNG_IMAGE_VERSION;
    img.width = W;
    img.height = H;
    img.format = PNG_FORMAT_RGB;
    png_alloc_size_t size = 0;
    if (!png_image_write_get_memory_size(img, size, 0, px, 0, NULL))
        return NULL;
    uint8_t *buf = malloc(size);
    if (buf && !png_image_write_to_memory(&img, buf, &size, 0, px, 0, NULL)) {
        free(buf);
        return NULL;
    }
    *len = size;
    return buf;
}

/* The neural key vector sealed in the stored form of a plaintext, under fresh secrets. */
static int stored_nnvec(const pxc_keys *keys, int kind, const uint8_t *plain, size_t n,
                        uint8_t vec[PXC_NNVEC_BYTES])
{
    pxc_file_secrets s, got;
    pxc_stored_info info;
    uint8_t *stored = NULL;
    size_t len = 0;
    pxc_secrets_fresh(&s);
    int rc = pxc_stored_encode(kind, plain, n, keys, &s, &stored, &len, NULL);
    if (rc == 0)
        rc = pxc_stored_peek(stored, len < PXC_STORED_PEEK_BYTES ? len : PXC_STORED_PEEK_BYTES, len,
                             &info);
    if (rc == 0)
        rc = pxc_stored_open_secrets(&info, keys, &got);
    if (rc == 0)
        memcpy(vec, got.nnvec, PXC_NNVEC_BYTES);
    free(stored);
    return rc;
}

int main(void)
{
    if (sodium_init() < 0)
        return 1;
    uint8_t master[PXC_KEY_BYTES], other_master[PXC_KEY_BYTES];
    randombytes_buf(master, sizeof master);
    randombytes_buf(other_master, sizeof other_master);
    pxc_keys *keys = pxc_keys_new(master), *other = pxc_keys_new(other_master);
    pxc_stored_info info;
    int rc;
    pxc_file_secrets s, got;

    /* opaque: a real stored file of 10000 bytes */
    char path[] = "/tmp/pxc-stored-XXXXXX";
    int fd = mkstemp(path);
    unlink(path);
    opaque_file of;
    uint8_t data[10000];
    randombytes_buf(data, sizeof data);
    ok(opaque_create(&of, fd, keys) == 0 && opaque_write(&of, data, sizeof data, 0) == 10000,
       "opaque file written");
    uint8_t head[PXC_STORED_PEEK_BYTES];
    ok(pread(fd, head, sizeof head, 0) == (ssize_t)sizeof head, "read its head");
    uint64_t stored_size = opaque_stored_size(sizeof data);
    rc = pxc_stored_peek(head, sizeof head, stored_size, &info);
    ok(rc == 0 && info.kind == PXC_KIND_OPAQUE && info.plain_size == sizeof data,
       "peek: opaque, plain size %llu", (unsigned long long)info.plain_size);
    ok(memcmp(info.file_id, of.secrets.file_id, PXC_FILE_ID_BYTES) == 0, "peek: file id");
    ok(pxc_stored_open_secrets(&info, keys, &got) == 0 &&
           memcmp(&got, &of.secrets, sizeof got) == 0,
       "opened secrets equal the file's");
    ok(pxc_stored_open_secrets(&info, other, &got) == -EBADMSG, "another volume's keys: -EBADMSG");
    ok(pxc_stored_peek(head, sizeof head, OPAQUE_HEADER_BYTES + 20, &info) == -EBADMSG,
       "impossible stored size (a block shorter than its nonce and tag): -EBADMSG");
    head[3] ^= 1;
    ok(pxc_stored_peek(head, sizeof head, stored_size, &info) == -EBADMSG, "bad magic: -EBADMSG");
    opaque_close(&of);
    close(fd);

    /* candidates */
    size_t png_len = 0;
    uint8_t *png = make_png(&png_len, 0);
    ok(png != NULL, "a %zu-byte PNG made with libpng", png_len);
    ok(pxc_stored_candidate_kind(png, png_len) == PXC_KIND_PNG, "PNG signature: PNG candidate");
    ok(pxc_stored_candidate_kind(data, sizeof data) == PXC_KIND_OPAQUE, "random bytes: opaque");
    ok(pxc_stored_candidate_kind(png, 4) == PXC_KIND_OPAQUE, "4 bytes of a PNG: opaque");
    static const uint8_t soi[] = {0xFF, 0xD8, 0xFF, 0xE0};
    ok(pxc_stored_candidate_kind(soi, sizeof soi) == PXC_KIND_JPEG,
       "SOI and a marker: JPEG candidate");
    ok(pxc_stored_candidate_kind(soi, 2) == PXC_KIND_OPAQUE, "SOI alone: opaque");

    /* PNG through the dispatcher */
    pxc_secrets_fresh(&s);
    uint8_t *stored = NULL, *plain = NULL;
    size_t stored_len = 0, plain_len = 0;
    const char *why = NULL;
    rc = pxc_stored_encode(PXC_KIND_PNG, png, png_len, keys, &s, &stored, &stored_len, &why);
    ok(rc == 0, "encode as PNG: %d %s", rc, why ? why : "");
    rc = stored_len >= PXC_STORED_PEEK_BYTES
             ? pxc_stored_peek(stored, PXC_STORED_PEEK_BYTES, stored_len, &info)
             : -1;
    ok(rc == 0 && info.kind == PXC_KIND_PNG && info.plain_size == png_len,
       "peek: PNG, plain size %llu", (unsigned long long)info.plain_size);
    /* The peek reads the size before anything is authenticated: no damage to those bytes
     * may give a size that no stored image has (stat would fail without a log line). */
    int wild = 0;
    for (size_t i = 0; rc == 0 && i < PXC_STORED_PEEK_BYTES; i++) {
        for (int bit = 0; bit < 8; bit++) {
            pxc_stored_info d;
            stored[i] ^= (uint8_t)(1u << bit);
            if (pxc_stored_peek(stored, PXC_STORED_PEEK_BYTES, stored_len, &d) == 0 &&
                d.plain_size > PXC_STORED_MAX_IMAGE_FILE)
                wild++;
            stored[i] ^= (uint8_t)(1u << bit);
        }
    }
    ok(wild == 0,
       "every bit of the peeked bytes flipped: no plain size past the largest image "
       "(%d did)",
       wild);
    static const uint8_t zero_vec[PXC_NNVEC_BYTES];
    ok(pxc_stored_open_secrets(&info, keys, &got) == 0 &&
           memcmp(got.file_id, s.file_id, sizeof s.file_id) == 0 &&
           memcmp(got.seed, s.seed, sizeof s.seed) == 0 &&
           memcmp(got.nnvec, zero_vec, sizeof zero_vec) != 0,
       "PNG secrets open: the caller's file id and seed, and the image's neural key vector");
    ok(pxc_stored_decode(PXC_KIND_PNG, stored, stored_len, keys, &plain, &plain_len) == 0 &&
           plain_len == png_len && memcmp(plain, png, png_len) == 0,
       "decode gives the original bytes");
    free(plain);
    uint8_t *head_plain = NULL;
    size_t head_len = 0;
    ok(info.head_bytes > PNG_PEEK_BYTES && info.head_bytes < stored_len, "peek: head bytes %llu",
       (unsigned long long)info.head_bytes);
    rc = pxc_stored_decode_head(PXC_KIND_PNG, stored, (size_t)info.head_bytes, keys, &head_plain,
                                &head_len, NULL);
    ok(rc == 0 && head_len >= 33 && head_len < png_len && memcmp(head_plain, png, head_len) == 0,
       "decode_head from the head bytes alone: a prefix of the original (%zu bytes)", head_len);
    free(head_plain);
    ok(pxc_stored_decode_head(PXC_KIND_PNG, stored, (size_t)info.head_bytes - 1, keys, &head_plain,
                              &head_len, NULL) == -ENODATA &&
           head_plain == NULL,
       "decode_head with too few bytes: -ENODATA");
    ok(pxc_stored_decode_head(PXC_KIND_PNG, stored, stored_len, other, &head_plain, &head_len,
                              NULL) == -EBADMSG,
       "decode_head under another volume's keys: -EBADMSG");
    ok(pxc_stored_decode_head(PXC_KIND_OPAQUE, stored, stored_len, keys, &head_plain, &head_len,
                              NULL) == -EINVAL,
       "decode_head of opaque: -EINVAL");
    stored[stored_len / 2] ^= 0x10;
    ok(pxc_stored_decode(PXC_KIND_PNG, stored, stored_len, keys, &plain, &plain_len) == -EBADMSG &&
           plain == NULL,
       "a flipped byte: -EBADMSG");
    free(stored);
    rc = pxc_stored_encode(PXC_KIND_PNG, data, sizeof data, keys, &s, &stored, &stored_len, &why);
    ok(rc < 0 && stored == NULL && why != NULL, "random bytes as PNG: declined (%s)", why);
    rc = pxc_stored_encode(PXC_KIND_OPAQUE, png, png_len, keys, &s, &stored, &stored_len, &why);
    ok(rc == -ENOTSUP, "opaque is not a format-preserving kind: -ENOTSUP");

    /* The neural key vector enters the stored version's keys and is sealed with them. */
    {
        uint8_t v1[PXC_NNVEC_BYTES], v2[PXC_NNVEC_BYTES], v3[PXC_NNVEC_BYTES], v4[PXC_NNVEC_BYTES];
        size_t len2 = 0;
        uint8_t *poked = make_png(&len2, 1);
        int r1 = stored_nnvec(keys, PXC_KIND_PNG, png, png_len, v1);
        int r2 = stored_nnvec(keys, PXC_KIND_PNG, png, png_len, v2);
        int r3 = stored_nnvec(other, PXC_KIND_PNG, png, png_len, v3);
        int r4 = poked ? stored_nnvec(keys, PXC_KIND_PNG, poked, len2, v4) : -1;
        ok(r1 == 0 && r2 == 0 && memcmp(v1, v2, sizeof v1) == 0,
           "nnvec: same image, same volume, new seed: same vector");
        ok(r3 == 0 && memcmp(v1, v3, sizeof v1) != 0, "nnvec: other volume: another vector");
        ok(r4 == 0 && memcmp(v1, v4, sizeof v1) != 0, "nnvec: one sample changed: another vector");
        free(poked);
    }
    /* The chaos research profile: new files record it, decoding follows the file. */
    {
        uint8_t *cst = NULL, *back = NULL;
        size_t cl = 0, bl = 0;
        pxc_secrets_fresh(&s);
        keys->profile = PXC_PROFILE_CHAOS;
        rc = pxc_stored_encode(PXC_KIND_PNG, png, png_len, keys, &s, &cst, &cl, &why);
        keys->profile = PXC_PROFILE_DEFAULT;
        ok(rc == 0 && cl > PNG_PXCR_HEADER_OFFSET + 11 && cst[PNG_PXCR_HEADER_OFFSET + 11] == 1,
           "chaos profile: stored PNG records profile 1");
        rc = rc == 0 ? pxc_stored_decode(PXC_KIND_PNG, cst, cl, keys, &back, &bl) : rc;
        ok(rc == 0 && bl == png_len && memcmp(back, png, png_len) == 0,
           "chaos profile: decodes exactly under a default-profile mount");
        if (rc == 0 && cl > PNG_PXCR_HEADER_OFFSET + 11) {
            cst[PNG_PXCR_HEADER_OFFSET + 11] = 0; /* claims the default profile */
            free(back);
            back = NULL;
            ok(pxc_stored_decode(PXC_KIND_PNG, cst, cl, keys, &back, &bl) == -EBADMSG,
               "chaos profile: the profile byte is authenticated");
        }
        free(cst);
        free(back);
    }
    free(png);
    pxc_keys_free(keys);
    pxc_keys_free(other);
    return tap_done();
}

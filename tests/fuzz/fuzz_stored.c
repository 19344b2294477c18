/* Fuzz target: the stored-file parsers (codec/stored.h) -- pxc_stored_peek, the sealed
 * secrets, pxc_stored_decode and pxc_stored_decode_head of both image kinds -- on
 * arbitrary bytes and on valid stored files changed by the input.
 *
 * Input: byte 0 picks the mode; the other modes take an 8-byte prefix, byte 1 a base
 * file and bytes 2..7 parameters, then the rest of the input.  The base
 * files are those of bases.h.
 *   0  raw       bytes 1.. are the stored file
 *   1  xor       bytes 2..3 an offset (u16 LE); the rest XORed into the base from there
 *   2  resize    bytes 2..5 a length (u32 LE, modulo base size + 256): the base cut to
 *                it, or extended with the rest
 *   3  splice    bytes 2..3 offset, 4..5 length (u16 LE), byte 6 another base: that
 *                range of the base replaced with the same range of the other one
 *   4  write     bytes 2..3 an offset (u16 LE); the rest written over the base there
 * A changed base must fail to decode (tamper evidence, DESIGN.md §1.4) and must not
 * peek as an empty file (which a reader would never decode); decode_head may
 * succeed only when what it returns is the original head (or, spliced or written
 * over, another file's: the head authenticates on its own, like a file swapped in
 * whole).  An unchanged base must
 * decode to its original.  Raw bytes must fail cleanly, or (if the fuzzer rebuilt a
 * valid file) give a head that is a prefix of the whole.
 */
#include "codec/bytes.h"
#include "tests/fuzz/fuzz.h"
#include "tests/fuzz/images.h"
#include "tests/fuzz/bases.h"

/* ---- seeds --------------------------------------------------------------- */

static void seed_corpus_file(const char *path, void *arg)
{
    int *count = arg;
    size_t len, slen;
    uint8_t *plain = fuzz_read_file(path, FUZZ_MAX_INPUT, &len), *stored = NULL;
    pxc_file_secrets s;
    char name[64];
    static const uint8_t raw = 0;
    if (!plain)
        return;
    pxc_secrets_fresh(&s);
    int kind = pxc_stored_candidate_kind(plain, len);
    if (kind != PXC_KIND_OPAQUE &&
        pxc_stored_encode(kind, plain, len, fuzz_keys, &s, &stored, &slen, NULL) == 0 &&
        slen <= (64u << 10)) {
        snprintf(name, sizeof name, "raw-corpus-%03d", (*count)++);
        fuzz_write_seed(name, &raw, 1, stored, slen);
    }
    free(stored);
    free(plain);
}

static void make_seeds(void)
{
    char name[64];
    uint8_t pre[8] = {0};
    for (int b = 0; b < FUZZ_NBASE; b++) {
        const fuzz_base *bs = &fuzz_bases[b];
        /* unchanged, through every mode */
        pre[0] = 0;
        snprintf(name, sizeof name, "raw-base-%d", b);
        fuzz_write_seed(name, pre, 1, bs->stored, bs->stored_len);
        pre[0] = 1, pre[1] = (uint8_t)b, pre[2] = pre[3] = 0;
        snprintf(name, sizeof name, "xor-base-%d-none", b);
        fuzz_write_seed(name, pre, 8, NULL, 0);
        /* one flipped bit in the header, the record, the MAC, the image data */
        const size_t offs[4] = {50, 200, bs->stored_len / 2, bs->stored_len - 20};
        for (int i = 0; i < 4; i++) {
            static const uint8_t bit = 0x10;
            pre[2] = (uint8_t)offs[i], pre[3] = (uint8_t)(offs[i] >> 8);
            snprintf(name, sizeof name, "xor-base-%d-%zu", b, offs[i]);
            fuzz_write_seed(name, pre, 8, &bit, 1);
        }
        /* cut short, cut at the head, one byte added */
        const size_t lens[3] = {bs->stored_len - 1, 300, bs->stored_len + 1};
        for (int i = 0; i < 3; i++) {
            pre[0] = 2;
            put_le(pre + 2, lens[i], 4);
            snprintf(name, sizeof name, "resize-base-%d-%zu", b, lens[i]);
            fuzz_write_seed(name, pre, 8, NULL, 0);
        }
        /* the image data of another file of the same kind */
        pre[0] = 3;
        put_le(pre + 2, 600, 2);
        put_le(pre + 4, 400, 2);
        pre[6] = (uint8_t)(b < 3 ? (b + 1) % 3 : 3 + (b + 1) % 3);
        snprintf(name, sizeof name, "splice-base-%d", b);
        fuzz_write_seed(name, pre, 8, NULL, 0);
    }
    const char *corpus = fuzz_corpus_dir();
    if (corpus) {
        static const char *const exts[] = {".png", ".jpg", ".jpeg", NULL};
        int count = 0;
        fuzz_each_file(corpus, exts, seed_corpus_file, &count);
    }
}

/* ---- the target ---------------------------------------------------------- */

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_setup();
    fuzz_make_bases();
    if (fuzz_seed_dir())
        make_seeds();
    return 0;
}

/* Everything a reader would do with stored bytes; a negative errno or 0 as the full
 * decode did.  *plain, *head: what decode and decode_head gave (NULL if they failed). */
static int read_all(const uint8_t *p, size_t n, uint8_t **plain, size_t *plain_len, uint8_t **head,
                    size_t *head_len, int *head_rc, int64_t *peek_size)
{
    pxc_stored_info info;
    pxc_file_secrets s;
    size_t peek_n = n < PXC_STORED_PEEK_BYTES ? n : PXC_STORED_PEEK_BYTES;
    int kind = -1, rc = -EBADMSG;

    *plain = *head = NULL;
    *plain_len = *head_len = 0;
    *head_rc = -EBADMSG;
    *peek_size = -1;
    if (pxc_stored_peek(p, peek_n, n, &info) == 0) {
        if (info.kind != PXC_KIND_OPAQUE) /* an empty opaque file: see fuzz_opaque */
            *peek_size = (int64_t)(info.plain_size & INT64_MAX);
        FUZZ_CHECK(info.kind == PXC_KIND_OPAQUE || info.kind == PXC_KIND_PNG ||
                   info.kind == PXC_KIND_JPEG);
        pxc_stored_open_secrets(&info, fuzz_keys, &s);
        kind = info.kind;
    }
    /* Both image decoders, whatever the peek said: neither may trust the other's checks. */
    for (int k = PXC_KIND_PNG; k <= PXC_KIND_JPEG; k++) {
        uint8_t *pl = NULL, *hd = NULL;
        size_t pl_len = 0, hd_len = 0;
        int drc = pxc_stored_decode(k, p, n, fuzz_keys, &pl, &pl_len);
        int hrc = pxc_stored_decode_head(k, p, n, fuzz_keys, &hd, &hd_len, NULL);
        FUZZ_CHECK(drc <= 0 && (drc == 0) == (pl != NULL));
        FUZZ_CHECK(hrc <= 0 && (hrc == 0) == (hd != NULL));
        if (drc == 0) /* only the kind the header names can authenticate */
            FUZZ_CHECK(k == kind && pl_len == info.plain_size);
        if (drc == 0 && hrc == 0)
            FUZZ_CHECK(hd_len <= pl_len && memcmp(hd, pl, hd_len) == 0);
        if (k == kind) {
            rc = drc;
            *plain = pl, *plain_len = pl_len;
            *head = hd, *head_len = hd_len, *head_rc = hrc;
        } else {
            free(pl);
            free(hd);
        }
    }
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *buf = NULL, *plain, *head;
    size_t n = 0, plain_len, head_len;
    int head_rc;
    int64_t peek_size;

    if (size < 1 || size > FUZZ_MAX_INPUT)
        return 0;
    fuzz_rng_reset();
    int mode = data[0] % 5;
    if (mode == 0) {
        if (read_all(data + 1, size - 1, &plain, &plain_len, &head, &head_len, &head_rc,
                     &peek_size) == 0)
            FUZZ_CHECK(plain != NULL);
        free(plain);
        free(head);
        return 0;
    }
    if (size < 8)
        return 0;
    const fuzz_base *b = &fuzz_bases[data[1] % FUZZ_NBASE], *o = NULL;
    const uint8_t *rest = data + 8;
    size_t rest_len = size - 8;
    switch (mode) {
    case 1: { /* XOR at an offset */
        size_t off = (size_t)get_le(data + 2, 2) % b->stored_len;
        n = b->stored_len;
        buf = malloc(n);
        memcpy(buf, b->stored, n);
        for (size_t i = 0; i < rest_len && off + i < n; i++)
            buf[off + i] ^= rest[i];
        break;
    }
    case 2: { /* cut short or extended */
        n = (size_t)get_le(data + 2, 4) % (b->stored_len + 256);
        buf = calloc(1, n ? n : 1);
        memcpy(buf, b->stored, n < b->stored_len ? n : b->stored_len);
        for (size_t i = b->stored_len; i < n && i - b->stored_len < rest_len; i++)
            buf[i] = rest[i - b->stored_len];
        break;
    }
    case 4: { /* bytes written over */
        size_t off = (size_t)get_le(data + 2, 2) % b->stored_len;
        n = b->stored_len;
        buf = malloc(n);
        memcpy(buf, b->stored, n);
        for (size_t i = 0; i < rest_len && off + i < n; i++)
            buf[off + i] = rest[i];
        break;
    }
    default: { /* a range from another stored file */
        o = &fuzz_bases[data[6] % FUZZ_NBASE];
        size_t off = (size_t)get_le(data + 2, 2), len = (size_t)get_le(data + 4, 2);
        n = b->stored_len;
        buf = malloc(n);
        memcpy(buf, b->stored, n);
        for (size_t i = off; i < off + len && i < n && i < o->stored_len; i++)
            buf[i] = o->stored[i];
        break;
    }
    }
    FUZZ_CHECK(buf != NULL);

    int same = n == b->stored_len && memcmp(buf, b->stored, n) == 0;
    int rc = read_all(buf, n, &plain, &plain_len, &head, &head_len, &head_rc, &peek_size);
    if (fuzz_verbose)
        fprintf(stderr, "mode %d base %d: %s, decode %d, head %d\n", mode, data[1] % FUZZ_NBASE,
                same ? "unchanged" : "changed", rc, head_rc);
    if (same) {
        FUZZ_CHECK(rc == 0 && plain_len == b->plain_len && memcmp(plain, b->plain, plain_len) == 0);
        FUZZ_CHECK(head_rc == 0);
    } else {
        FUZZ_CHECK(rc != 0); /* tampering is always detected */
        /* ... by a reader too, who decodes only what st_size (the peeked size) says
         * there is: an image that peeks as empty would read as empty, unchecked. */
        FUZZ_CHECK(peek_size != 0);
    }
    /* A head that authenticates is the original one (or the other file's, spliced in; a
     * write can bring in any file's, like a file swapped in whole, README: Security). */
    if (head_rc == 0 && mode != 4)
        FUZZ_CHECK((head_len == b->head_len && memcmp(head, b->head, head_len) == 0) ||
                   (o && head_len == o->head_len && memcmp(head, o->head, head_len) == 0));
    free(plain);
    free(head);
    free(buf);
    return 0;
}

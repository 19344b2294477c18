/* Fuzz target: the sealed regeneration records of stored images, and everything decode
 * does with what they say.  A record only opens under the file's keys, so mutating
 * stored bytes never reaches its parser (fuzz_stored shows that); here the target holds
 * the keys and seals the input as the record of a valid stored file (bases.h), as a
 * buggy or future encoder might: decode and decode_head must refuse it cleanly or
 * decode it without a memory error, and a head that decodes is a prefix of the whole.
 *
 * Input: byte 0 a base file, byte 1 flags, bytes 2..9 a plaintext size (u64 LE), then
 * the record.  Flags: 1 the header's plaintext size is the input's (else the base's);
 * 2 the rest is the record plaintext as is; otherwise the target builds the record
 * around a clear body (so that mutations reach the body's parser, not zlib's):
 *   PNG   u32 LE k, k bytes of body, the rest the deflate recipe
 *   JPEG  the rest is the body (compressed with the file's preset dictionary)
 * With the base's own record and size, the file must decode to the original.
 */
#include "codec/bytes.h"
#include "codec/jpeg.h"
#include "codec/jpeg_int.h"
#include "codec/png.h"
#include "tests/fuzz/fuzz.h"
#include "tests/fuzz/images.h"
#include "tests/fuzz/bases.h"

#define PREFIX 10
#define PNG_PXCR_FIXED (OPAQUE_HEADER_BYTES + 8 + 4)
#define JPEG_FIXED (OPAQUE_HEADER_BYTES + 8 + 4 + 4)
#define JPEG_FIRST_MAX (JPEG_SEGMENT_DATA_MAX - JPEG_FIXED)
#define SEAL_NONCE crypto_aead_xchacha20poly1305_ietf_NPUBBYTES
#define SEAL_TAG crypto_aead_xchacha20poly1305_ietf_ABYTES

/* What a base file's record is made of, and where its parts are. */
typedef struct base_rec {
    pxc_file_secrets s;
    uint8_t meta[PXC_KEY_BYTES], mac[PXC_KEY_BYTES];
    uint8_t *record; /* plaintext */
    size_t record_len;
    uint8_t *body; /* the record's body, inflated */
    size_t body_len;
    const uint8_t *recipe; /* PNG: the record's recipe (in record) */
    size_t recipe_len;
    size_t tail_off;         /* PNG: PLTE/IDAT/IEND; JPEG: the cipher image (after the MAC) */
    uint8_t *dict;           /* JPEG: preset dictionary of the body */
    size_t dict_len, hbytes; /* JPEG: H, stored bytes through the first SOS */
} base_rec;

static base_rec recs[FUZZ_NBASE];

static void die(const char *what)
{
    fprintf(stderr, "fuzz_record: %s\n", what);
    exit(1);
}

/* ---- record envelopes ---------------------------------------------------- */

static size_t put_varint(uint8_t *p, uint64_t v)
{
    size_t n = 0;
    while (v >= 0x80) {
        p[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    p[n++] = (uint8_t)v;
    return n;
}

static uint64_t get_varint(const uint8_t *p, size_t n, size_t *pos)
{
    uint64_t v = 0;
    for (int shift = 0; *pos < n && shift < 64; shift += 7) {
        uint8_t c = p[(*pos)++];
        v |= (uint64_t)(c & 0x7f) << shift;
        if (!(c & 0x80))
            return v;
    }
    die("bad varint in a base record");
    return 0;
}

/* zlib(body), with a preset dictionary if dict; malloc'ed. */
static uint8_t *zip(const uint8_t *body, size_t len, const uint8_t *dict, size_t dict_len,
                    size_t *zlen)
{
    z_stream z;
    memset(&z, 0, sizeof z);
    if (deflateInit2(&z, 6, Z_DEFLATED, 15, 9, Z_DEFAULT_STRATEGY) != Z_OK)
        die("deflateInit2");
    if (dict)
        deflateSetDictionary(&z, dict, (uInt)dict_len);
    size_t cap = deflateBound(&z, len) + 64;
    uint8_t *out = malloc(cap);
    if (!out)
        die("malloc");
    z.next_in = (Bytef *)(uintptr_t)body;
    z.avail_in = (uInt)len;
    z.next_out = out;
    z.avail_out = (uInt)cap;
    if (deflate(&z, Z_FINISH) != Z_STREAM_END)
        die("deflate");
    *zlen = z.total_out;
    deflateEnd(&z);
    return out;
}

/* The inflated body of a base record (zlib at z[0..zlen), body_len bytes). */
static uint8_t *unzip(const uint8_t *z, size_t zlen, size_t body_len, const uint8_t *dict,
                      size_t dict_len)
{
    z_stream zs;
    uint8_t *out = malloc(body_len ? body_len : 1);
    memset(&zs, 0, sizeof zs);
    if (!out || inflateInit(&zs) != Z_OK)
        die("inflateInit");
    zs.next_in = (Bytef *)(uintptr_t)z;
    zs.avail_in = (uInt)zlen;
    zs.next_out = out;
    zs.avail_out = (uInt)body_len;
    int rc = inflate(&zs, Z_FINISH);
    if (rc == Z_NEED_DICT && dict && inflateSetDictionary(&zs, dict, (uInt)dict_len) == Z_OK)
        rc = inflate(&zs, Z_FINISH);
    if (rc != Z_STREAM_END || zs.total_out != body_len)
        die("inflating a base record");
    inflateEnd(&zs);
    return out;
}

/* PNG record: u8 1, varint body size, varint n, zlib(body) (n bytes), recipe. */
static uint8_t *png_record(const uint8_t *body, size_t body_len, const uint8_t *recipe,
                           size_t recipe_len, size_t *len)
{
    size_t zlen;
    uint8_t *z = zip(body, body_len, NULL, 0, &zlen);
    uint8_t *r = malloc(1 + 20 + zlen + recipe_len);
    if (!r)
        die("malloc");
    size_t n = 0;
    r[n++] = 1;
    n += put_varint(r + n, body_len);
    n += put_varint(r + n, zlen);
    memcpy(r + n, z, zlen);
    n += zlen;
    if (recipe_len)
        memcpy(r + n, recipe, recipe_len);
    free(z);
    *len = n + recipe_len;
    return r;
}

/* JPEG record: u8 version, hash of the dictionary, varint body size, zlib(body). */
static uint8_t *jpeg_record(const base_rec *br, const uint8_t *body, size_t body_len, size_t *len)
{
    size_t zlen;
    uint8_t *z = zip(body, body_len, br->dict, br->dict_len, &zlen);
    uint8_t *r = malloc(1 + JPG_DICT_HASH_BYTES + 10 + zlen);
    if (!r)
        die("malloc");
    size_t n = 0;
    r[n++] = JPG_RECORD_VERSION;
    crypto_generichash(r + n, JPG_DICT_HASH_BYTES, br->dict, br->dict_len, NULL, 0);
    n += JPG_DICT_HASH_BYTES;
    n += put_varint(r + n, body_len);
    memcpy(r + n, z, zlen);
    free(z);
    *len = n + zlen;
    return r;
}

/* ---- sealing a record into a base file ------------------------------------ */

/* Seals rec (plaintext) under the base's keys: the sealed bytes (nonce, ciphertext,
 * tag) at out, which has room for rec_len + SEAL_NONCE + SEAL_TAG; ad = the stored
 * bytes before them. */
static void seal(const base_rec *br, const uint8_t *rec, size_t rec_len, const uint8_t *ad,
                 size_t ad_len, uint8_t *out)
{
    randombytes_buf(out, SEAL_NONCE);
    crypto_aead_xchacha20poly1305_ietf_encrypt(out + SEAL_NONCE, NULL, rec, rec_len, ad, ad_len,
                                               NULL, out, br->meta);
}

static void mac2(uint8_t out[32], const uint8_t key[PXC_KEY_BYTES], const uint8_t *a, size_t alen,
                 const uint8_t *b, size_t blen)
{
    crypto_generichash_state st;
    crypto_generichash_init(&st, key, PXC_KEY_BYTES, 32);
    crypto_generichash_update(&st, a, alen);
    crypto_generichash_update(&st, b, blen);
    crypto_generichash_final(&st, out, 32);
}

/* A stored PNG: the base with this record and plaintext size (layout in png.h). */
static uint8_t *forge_png(const fuzz_base *b, const base_rec *br, const uint8_t *rec,
                          size_t rec_len, uint64_t plain_size, size_t *len)
{
    size_t L = rec_len + SEAL_NONCE + SEAL_TAG, mac_off = PNG_PXCR_RECORD_OFFSET + L;
    size_t tail = b->stored_len - br->tail_off, n = mac_off + PNG_MAC_BYTES + 4 + tail;
    uint8_t *o = malloc(n);
    if (!o)
        die("malloc");
    memcpy(o, b->stored, PNG_PXCR_RECORD_OFFSET);
    uint32_t chunk_len = (uint32_t)(PNG_PXCR_FIXED + L + PNG_MAC_BYTES);
    fuzz_put32(o + 33, chunk_len);
    put_le(o + PNG_PXCR_PLAIN_SIZE_OFFSET, plain_size, 8);
    put_le(o + PNG_PXCR_RECORD_LEN_OFFSET, L, 4);
    seal(br, rec, rec_len, o, PNG_PXCR_RECORD_OFFSET, o + PNG_PXCR_RECORD_OFFSET);
    memcpy(o + mac_off + PNG_MAC_BYTES + 4, b->stored + br->tail_off, tail);
    mac2(o + mac_off, br->mac, o, mac_off, o + mac_off + PNG_MAC_BYTES + 4, tail);
    fuzz_put32(o + mac_off + PNG_MAC_BYTES, (uint32_t)crc32(0, o + 37, chunk_len + 4));
    *len = n;
    return o;
}

/* A stored JPEG: the base with this record (in the first segment) and plaintext size. */
static uint8_t *forge_jpeg(const fuzz_base *b, const base_rec *br, const uint8_t *rec,
                           size_t rec_len, uint64_t plain_size, size_t *len)
{
    size_t L = rec_len + SEAL_NONCE + SEAL_TAG, mac_off = JPEG_RECORD_OFFSET + L;
    size_t image_off = mac_off + 4 + JPEG_MAC_BYTES;
    size_t tail = b->stored_len - br->tail_off, n = image_off + tail;
    uint8_t *o = malloc(n);
    if (!o)
        die("malloc");
    memcpy(o, b->stored, JPEG_RECORD_OFFSET);
    o[4] = (uint8_t)((2 + JPEG_FIXED + L) >> 8);
    o[5] = (uint8_t)(2 + JPEG_FIXED + L);
    put_le(o + JPEG_PLAIN_SIZE_OFFSET, plain_size, 8);
    put_le(o + JPEG_RECORD_LEN_OFFSET, L, 4);
    put_le(o + JPEG_HEAD_BYTES_OFFSET, br->hbytes - br->tail_off + image_off, 4);
    seal(br, rec, rec_len, o, JPEG_RECORD_OFFSET, o + JPEG_RECORD_OFFSET);
    memcpy(o + mac_off, "\xff\xef\x00\x22", 4);
    memcpy(o + image_off, b->stored + br->tail_off, tail);
    mac2(o + mac_off + 4, br->mac, o, mac_off + 4, o + image_off, tail);
    *len = n;
    return o;
}

/* ---- start-up ------------------------------------------------------------- */

/* Opens a base file's record and takes it apart. */
static void open_base(const fuzz_base *b, base_rec *br)
{
    pxc_stored_info info;
    if (pxc_stored_peek(b->stored, b->stored_len, b->stored_len, &info) != 0 ||
        pxc_stored_open_secrets(&info, fuzz_keys, &br->s) != 0)
        die("peeking a base file");
    pxc_file_subkey(br->meta, fuzz_keys, &br->s, PXC_SUBKEY_METADATA);
    pxc_file_subkey(br->mac, fuzz_keys, &br->s, PXC_SUBKEY_MAC);
    const uint8_t *p = b->stored;
    size_t rec_off = b->kind == PXC_KIND_PNG ? PNG_PXCR_RECORD_OFFSET : JPEG_RECORD_OFFSET;
    size_t L = (size_t)get_le(
        p + (b->kind == PXC_KIND_PNG ? PNG_PXCR_RECORD_LEN_OFFSET : JPEG_RECORD_LEN_OFFSET), 4);
    if (b->kind == PXC_KIND_JPEG && L > JPEG_FIRST_MAX)
        die("a base record spans segments");
    br->record_len = L - SEAL_NONCE - SEAL_TAG;
    br->record = malloc(br->record_len);
    if (!br->record || crypto_aead_xchacha20poly1305_ietf_decrypt(
                           br->record, NULL, NULL, p + rec_off + SEAL_NONCE, L - SEAL_NONCE, p,
                           rec_off, p + rec_off, br->meta) != 0)
        die("opening a base record");
    size_t pos = 0;
    if (b->kind == PXC_KIND_PNG) {
        br->tail_off = rec_off + L + PNG_MAC_BYTES + 4;
        pos = 1;
        br->body_len = (size_t)get_varint(br->record, br->record_len, &pos);
        size_t zlen = (size_t)get_varint(br->record, br->record_len, &pos);
        br->body = unzip(br->record + pos, zlen, br->body_len, NULL, 0);
        br->recipe = br->record + pos + zlen;
        br->recipe_len = br->record_len - pos - zlen;
    } else {
        br->tail_off = rec_off + L + 4 + JPEG_MAC_BYTES;
        br->hbytes = (size_t)get_le(p + JPEG_HEAD_BYTES_OFFSET, 4);
        br->dict = jpg_record_dict(p + br->tail_off, br->hbytes - br->tail_off, &br->dict_len);
        pos = 1 + JPG_DICT_HASH_BYTES;
        br->body_len = (size_t)get_varint(br->record, br->record_len, &pos);
        br->body =
            unzip(br->record + pos, br->record_len - pos, br->body_len, br->dict, br->dict_len);
    }
}

static void make_seeds(void)
{
    char name[64];
    for (int i = 0; i < FUZZ_NBASE; i++) {
        const base_rec *br = &recs[i];
        uint8_t pre[PREFIX + 4] = {(uint8_t)i, 0};
        size_t n = PREFIX;
        if (fuzz_bases[i].kind == PXC_KIND_PNG) {
            /* body and recipe */
            uint8_t *in = malloc(4 + br->body_len + br->recipe_len);
            if (!in)
                die("malloc");
            put_le(in, br->body_len, 4);
            memcpy(in + 4, br->body, br->body_len);
            memcpy(in + 4 + br->body_len, br->recipe, br->recipe_len);
            snprintf(name, sizeof name, "base-%d-body", i);
            fuzz_write_seed(name, pre, n, in, 4 + br->body_len + br->recipe_len);
            free(in);
        } else {
            snprintf(name, sizeof name, "base-%d-body", i);
            fuzz_write_seed(name, pre, n, br->body, br->body_len);
        }
        pre[1] = 2; /* the record as it is */
        snprintf(name, sizeof name, "base-%d-record", i);
        fuzz_write_seed(name, pre, n, br->record, br->record_len);
    }
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_setup();
    fuzz_make_bases();
    for (int i = 0; i < FUZZ_NBASE; i++)
        open_base(&fuzz_bases[i], &recs[i]);
    if (fuzz_seed_dir())
        make_seeds();
    return 0;
}

/* ---- the target ------------------------------------------------------------ */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < PREFIX || size > FUZZ_MAX_INPUT)
        return 0;
    fuzz_rng_reset();
    int bi = data[0] % FUZZ_NBASE, flags = data[1];
    const fuzz_base *b = &fuzz_bases[bi];
    const base_rec *br = &recs[bi];
    uint64_t plain_size = flags & 1 ? get_le(data + 2, 8) : b->plain_len;
    const uint8_t *in = data + PREFIX;
    size_t in_len = size - PREFIX, rec_len;
    uint8_t *rec;

    if (flags & 2) {
        rec = malloc(in_len ? in_len : 1);
        if (in_len)
            memcpy(rec, in, in_len);
        rec_len = in_len;
    } else if (b->kind == PXC_KIND_PNG) {
        if (in_len < 4)
            return 0;
        size_t k = (size_t)get_le(in, 4);
        if (k > in_len - 4)
            k = in_len - 4;
        rec = png_record(in + 4, k, in + 4 + k, in_len - 4 - k, &rec_len);
    } else {
        rec = jpeg_record(br, in, in_len, &rec_len);
    }
    FUZZ_CHECK(rec != NULL);
    if (b->kind == PXC_KIND_JPEG && rec_len + SEAL_NONCE + SEAL_TAG > JPEG_FIRST_MAX) {
        free(rec);
        return 0; /* one segment is enough to reach every parser */
    }
    int original = rec_len == br->record_len && memcmp(rec, br->record, rec_len) == 0;
    if (!(flags & 2) && b->kind == PXC_KIND_PNG) /* recompressed: compare what it holds */
        original = get_le(in, 4) == br->body_len && in_len == 4 + br->body_len + br->recipe_len &&
                   memcmp(in + 4, br->body, br->body_len) == 0 &&
                   memcmp(in + 4 + br->body_len, br->recipe, br->recipe_len) == 0;
    else if (!(flags & 2))
        original = in_len == br->body_len && memcmp(in, br->body, in_len) == 0;
    original &= plain_size == b->plain_len;

    size_t n;
    uint8_t *stored = b->kind == PXC_KIND_PNG ? forge_png(b, br, rec, rec_len, plain_size, &n)
                                              : forge_jpeg(b, br, rec, rec_len, plain_size, &n);
    free(rec);

    uint8_t *plain = NULL, *head = NULL;
    size_t plain_len = 0, head_len = 0;
    int rc = pxc_stored_decode(b->kind, stored, n, fuzz_keys, &plain, &plain_len);
    int hrc = pxc_stored_decode_head(b->kind, stored, n, fuzz_keys, &head, &head_len, NULL);
    if (fuzz_verbose)
        fprintf(stderr, "base %d: %s record, decode %d, head %d\n", bi,
                original ? "original" : "forged", rc, hrc);
    FUZZ_CHECK(rc <= 0 && (rc == 0) == (plain != NULL));
    FUZZ_CHECK(hrc <= 0 && (hrc == 0) == (head != NULL));
    if (rc == 0)
        FUZZ_CHECK(plain_len == plain_size);
    if (rc == 0 && hrc == 0)
        FUZZ_CHECK(head_len <= plain_len && memcmp(head, plain, head_len) == 0);
    if (original)
        FUZZ_CHECK(rc == 0 && plain_len == b->plain_len &&
                   memcmp(plain, b->plain, plain_len) == 0 && hrc == 0);
    free(plain);
    free(head);
    free(stored);
    return 0;
}

/* Fuzz target: the deflate recipe builder and replayer (codec/deflate_recipe.h).
 *
 * Input: byte 0 picks the mode.
 *   even  the rest is a zlib stream.  deflate_recipe_build must agree with zlib's
 *         inflate: it succeeds exactly when inflate reaches the stream end (a wrong
 *         Adler-32 aside, which it records; a preset dictionary aside, which it
 *         refuses) and then with the same data, and replaying the recipe on that data gives the
 *         stream back bit for bit.
 *   odd   bytes 1..4 a length k (u32 LE), then k bytes of recipe, then data:
 *         deflate_recipe_replay must refuse cleanly or return a stream.
 * Seeds: the IDAT streams of the corpus PNGs, zlib streams of several kinds of data at
 * every level and strategy, and recipes built from them.
 */
#include <zlib.h>

#include "codec/bytes.h"
#include "codec/deflate_recipe.h"
#include "tests/fuzz/fuzz.h"

#define MAX_OUT (1u << 20)

/* ---- seeds --------------------------------------------------------------- */

static void seed_stream(const char *name, const uint8_t *z, size_t zlen)
{
    static const uint8_t stream_mode = 0;
    uint8_t *data = NULL, *recipe = NULL, pre[5];
    size_t data_len, recipe_len;
    fuzz_write_seed(name, &stream_mode, 1, z, zlen);
    if (deflate_recipe_build(z, zlen, MAX_OUT, &data, &data_len, &recipe, &recipe_len, NULL) == 0) {
        char rname[80];
        uint8_t *both = malloc(recipe_len + data_len + 1);
        if (both) {
            pre[0] = 1;
            put_le(pre + 1, recipe_len, 4);
            memcpy(both, recipe, recipe_len);
            memcpy(both + recipe_len, data, data_len);
            snprintf(rname, sizeof rname, "%s-recipe", name);
            fuzz_write_seed(rname, pre, sizeof pre, both, recipe_len + data_len);
            free(both);
        }
    }
    free(data);
    free(recipe);
}

/* The concatenated IDAT data of a PNG file, if small enough. */
static void seed_png_file(const char *path, void *arg)
{
    int *count = arg;
    size_t len, zlen = 0;
    uint8_t *png = fuzz_read_file(path, FUZZ_MAX_INPUT, &len), *z;
    char name[64];
    if (!png)
        return;
    z = malloc(len);
    for (size_t pos = 8; z && pos + 12 <= len;) {
        uint32_t clen = (uint32_t)png[pos] << 24 | (uint32_t)png[pos + 1] << 16 |
                        (uint32_t)png[pos + 2] << 8 | png[pos + 3];
        if (clen > len - pos - 12)
            break;
        if (memcmp(png + pos + 4, "IDAT", 4) == 0) {
            memcpy(z + zlen, png + pos + 8, clen);
            zlen += clen;
        }
        pos += 12 + (size_t)clen;
    }
    if (z && zlen && zlen <= (64u << 10)) {
        snprintf(name, sizeof name, "idat-%03d", (*count)++);
        seed_stream(name, z, zlen);
    }
    free(z);
    free(png);
}

static void make_seeds(void)
{
    static const int strategies[] = {Z_DEFAULT_STRATEGY, Z_FILTERED, Z_HUFFMAN_ONLY, Z_RLE,
                                     Z_FIXED};
    uint8_t data[3000], *z = malloc(compressBound(sizeof data) + 64);
    char name[64];
    uint32_t x = 1;
    if (!z)
        return;
    for (int kind = 0; kind < 3; kind++) {
        /* text-like, random, runs */
        for (size_t i = 0; i < sizeof data; i++) {
            x = x * 1103515245u + 12345u;
            data[i] = kind == 0   ? (uint8_t)("the quick brown fox "[i % 20] ^ (i % 97 == 0))
                      : kind == 1 ? (uint8_t)(x >> 16)
                                  : (uint8_t)(i / 300);
        }
        for (int level = 0; level <= 9; level += 3)
            for (int s = 0; s < 5; s++) {
                z_stream zs;
                memset(&zs, 0, sizeof zs);
                deflateInit2(&zs, level, Z_DEFLATED, 9 + (level + s) % 7, 8, strategies[s]);
                zs.next_in = data;
                zs.avail_in = sizeof data;
                zs.next_out = z;
                zs.avail_out = (uInt)(compressBound(sizeof data) + 64);
                deflate(&zs, Z_FINISH);
                snprintf(name, sizeof name, "zlib-%d-%d-%d", kind, level, s);
                seed_stream(name, z, zs.total_out);
                deflateEnd(&zs);
            }
    }
    free(z);
    const char *corpus = fuzz_corpus_dir();
    if (corpus) {
        static const char *const exts[] = {".png", NULL};
        char dir[4096];
        int count = 0;
        snprintf(dir, sizeof dir, "%s/png", corpus);
        fuzz_each_file(dir, exts, seed_png_file, &count);
    }
}

/* ---- the target ---------------------------------------------------------- */

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_setup();
    if (fuzz_seed_dir())
        make_seeds();
    return 0;
}

enum { Z_GOOD, Z_BAD_ADLER, Z_NEED_DICT_, Z_TOO_BIG, Z_BAD };

/* zlib's verdict on the stream, and its output (at most MAX_OUT bytes) in *out. */
static int zlib_inflate(const uint8_t *z, size_t zlen, uint8_t **out, size_t *out_len)
{
    z_stream zs;
    int rc;
    memset(&zs, 0, sizeof zs);
    *out = malloc(MAX_OUT + 1);
    *out_len = 0;
    FUZZ_CHECK(*out != NULL && inflateInit(&zs) == Z_OK);
    zs.next_in = (Bytef *)(uintptr_t)z;
    zs.avail_in = (uInt)zlen;
    zs.next_out = *out;
    zs.avail_out = MAX_OUT + 1;
    rc = inflate(&zs, Z_FINISH);
    *out_len = zs.total_out;
    int verdict = Z_BAD;
    if (rc == Z_STREAM_END)
        verdict = zs.total_out > MAX_OUT ? Z_TOO_BIG : Z_GOOD;
    else if (rc == Z_NEED_DICT)
        verdict = Z_NEED_DICT_;
    else if (zs.avail_out == 0)
        verdict = Z_TOO_BIG;
    else if (rc == Z_DATA_ERROR && zs.msg && strcmp(zs.msg, "incorrect data check") == 0)
        verdict = Z_BAD_ADLER;
    inflateEnd(&zs);
    return verdict;
}

int LLVMFuzzerTestOneInput(const uint8_t *in, size_t size)
{
    uint8_t *data = NULL, *recipe = NULL, *z = NULL;
    size_t data_len = 0, recipe_len = 0, zlen = 0;
    const char *why = NULL;

    if (size < 1 || size > FUZZ_MAX_INPUT)
        return 0;
    fuzz_rng_reset();
    if (in[0] & 1) {
        if (size < 5)
            return 0;
        size_t k = (size_t)get_le(in + 1, 4);
        if (k > size - 5)
            k = size - 5;
        int rc = deflate_recipe_replay(in + 5, k, in + 5 + k, size - 5 - k, &z, &zlen);
        FUZZ_CHECK(rc == 0 || rc == -EBADMSG || rc == -EINVAL);
        FUZZ_CHECK((rc == 0) == (z != NULL));
        free(z);
        return 0;
    }

    const uint8_t *stream = in + 1;
    size_t slen = size - 1;
    uint8_t *zout;
    size_t zout_len;
    int verdict = zlib_inflate(stream, slen, &zout, &zout_len);
    int rc =
        deflate_recipe_build(stream, slen, MAX_OUT, &data, &data_len, &recipe, &recipe_len, &why);
    if (fuzz_verbose)
        fprintf(stderr, "zlib %d, build %d (%s)\n", verdict, rc, rc ? why : "ok");
    FUZZ_CHECK(rc == 0 || rc == -EINVAL || rc == -ENOTSUP || rc == -EFBIG);
    FUZZ_CHECK((rc == 0) == (data != NULL && recipe != NULL));
    if (rc != 0)
        FUZZ_CHECK(why != NULL);
    /* The same verdict as zlib's, and the same data. */
    if (verdict == Z_GOOD || verdict == Z_BAD_ADLER)
        FUZZ_CHECK(rc == 0);
    if (verdict == Z_NEED_DICT_)
        FUZZ_CHECK(rc == -ENOTSUP);
    if (verdict == Z_TOO_BIG)
        FUZZ_CHECK(rc == -EFBIG || rc == -EINVAL);
    if (verdict == Z_BAD) /* a truncated stream that asks for a dictionary: -ENOTSUP */
        FUZZ_CHECK(rc != 0);
    if (rc == 0) {
        FUZZ_CHECK(data_len == zout_len && memcmp(data, zout, data_len) == 0);
        /* Replay gives the stream back exactly, trailing bytes included. */
        FUZZ_CHECK(deflate_recipe_replay(recipe, recipe_len, data, data_len, &z, &zlen) == 0);
        FUZZ_CHECK(zlen == slen && memcmp(z, stream, slen) == 0);
    }
    free(zout);
    free(z);
    free(data);
    free(recipe);
    return 0;
}

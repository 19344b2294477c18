/* Fuzz target: the PNG codec on arbitrary bytes taken as a plain PNG.
 *
 * png_codec_encode must decline cleanly (NULL output, a reason) or produce a stored
 * file that decodes back to the input exactly, peeks as a PNG of the same IHDR, has a
 * head that is a prefix of the input, and that libpng reads as a PNG of the same size;
 * then the same under the chaos research profile (same key, profile in the header).
 * The input is also fed to the stored-side parsers (peek, decode, decode_head), which
 * must fail without crashing on anything that is not a stored file of this volume.
 *
 * Seeds: every PNG of the image corpus, and small PNGs of every colour type, bit depth,
 * interlace method, filter type and zlib strategy generated here.
 */
#include <png.h>

#include "codec/opaque.h"
#include "codec/png.h"
#include "codec/stored.h"
#include "tests/fuzz/fuzz.h"
#include "tests/fuzz/images.h"

/* ---- seeds --------------------------------------------------------------- */

static void seed_corpus_file(const char *path, void *arg)
{
    int *count = arg;
    size_t len;
    uint8_t *buf = fuzz_read_file(path, FUZZ_MAX_INPUT, &len);
    char name[64];
    if (!buf)
        return;
    snprintf(name, sizeof name, "corpus-%03d.png", (*count)++);
    fuzz_write_seed(name, NULL, 0, buf, len);
    free(buf);
}

static void make_seeds(void)
{
    static const struct {
        int depth, color;
    } types[] = {{1, 0}, {2, 0}, {4, 0}, {8, 0}, {16, 0}, {8, 2}, {16, 2}, {1, 3},
                 {2, 3}, {4, 3}, {8, 3}, {8, 4}, {16, 4}, {8, 6}, {16, 6}};
    static const int strategies[] = {Z_DEFAULT_STRATEGY, Z_FIXED, Z_HUFFMAN_ONLY, Z_RLE};
    char name[64];
    int n = 0;
    for (int t = 0; t < (int)(sizeof types / sizeof types[0]); t++)
        for (int il = 0; il < 2; il++, n++) {
            fuzz_png_kind k = {types[t].depth, types[t].color, il,
                               t % 5,          (t + il) % 10,  strategies[n % 4]};
            size_t len;
            uint8_t *png = fuzz_make_png(&k, 5 + (uint32_t)t, 3 + (uint32_t)il * 6, &len);
            snprintf(name, sizeof name, "gen-%02d.png", n);
            if (png)
                fuzz_write_seed(name, NULL, 0, png, len);
            free(png);
        }
    const char *corpus = fuzz_corpus_dir();
    if (corpus) {
        static const char *const exts[] = {".png", NULL};
        char dir[4096];
        int count = 0;
        snprintf(dir, sizeof dir, "%s/png", corpus);
        fuzz_each_file(dir, exts, seed_corpus_file, &count);
    }
}

/* ---- the target ---------------------------------------------------------- */

/* The same volume key, writing new PNGs with the chaos profile. */
static pxc_keys *chaos_keys;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_setup();
    chaos_keys = pxc_keys_new(fuzz_master);
    if (!chaos_keys)
        exit(1);
    chaos_keys->profile = PXC_PROFILE_CHAOS;
    if (fuzz_seed_dir())
        make_seeds();
    return 0;
}

/* libpng reads the stored file as a PNG of the original's width and height. */
static void check_libpng_reads(const uint8_t *stored, size_t len, uint32_t w, uint32_t h)
{
    png_image img;
    memset(&img, 0, sizeof img);
    img.version = PNG_IMAGE_VERSION;
    FUZZ_CHECK(png_image_begin_read_from_memory(&img, stored, len));
    FUZZ_CHECK(img.width == w && img.height == h);
    /* Decoding every pixel costs as much as the codec itself: only for small images. */
    if ((uint64_t)w * h <= (1u << 16)) {
        img.format = PNG_FORMAT_RGBA;
        uint8_t *px = malloc(PNG_IMAGE_SIZE(img));
        FUZZ_CHECK(px != NULL);
        FUZZ_CHECK(png_image_finish_read(&img, NULL, px, 0, NULL));
        free(px);
    } else {
        png_image_free(&img);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *stored = NULL, *back = NULL, *head = NULL;
    size_t len = 0, back_len = 0, head_len = 0;
    const char *why = NULL;
    pxc_file_secrets s;
    png_peek_info peek;
    pxc_stored_info info;

    if (size > FUZZ_MAX_INPUT)
        return 0;
    fuzz_rng_reset();
    pxc_secrets_fresh(&s);
    int rc = png_codec_encode(data, size, fuzz_keys, &s, &stored, &len, &why);
    if (fuzz_verbose)
        fprintf(stderr, "encode: %s\n", rc ? why : "ok");
    if (rc != 0) {
        FUZZ_CHECK(rc < 0 && stored == NULL && len == 0 && why != NULL);
    } else {
        FUZZ_CHECK(stored != NULL && len > PNG_PEEK_BYTES);
        FUZZ_CHECK(png_codec_decode(stored, len, fuzz_keys, &back, &back_len) == 0);
        FUZZ_CHECK(back_len == size && memcmp(back, data, size) == 0);
        FUZZ_CHECK(png_codec_peek(stored, len, &peek) == 0);
        FUZZ_CHECK(peek.plain_size == size && peek.head_bytes <= len);
        FUZZ_CHECK(memcmp(stored + 16, data + 16, 13) == 0); /* IHDR fields */
        FUZZ_CHECK(png_codec_decode_head(stored, (size_t)peek.head_bytes, fuzz_keys, &head,
                                         &head_len, NULL) == 0);
        FUZZ_CHECK(head_len <= size && memcmp(head, data, head_len) == 0);
        FUZZ_CHECK(pxc_stored_peek(stored, len, len, &info) == 0 && info.kind == PXC_KIND_PNG);
        check_libpng_reads(stored, len, peek.width, peek.height);
        free(back);
        free(head);
        free(stored);
        back = head = stored = NULL;

        /* The chaos profile takes what the default one takes (same checks, in short). */
        pxc_secrets_fresh(&s);
        FUZZ_CHECK(png_codec_encode(data, size, chaos_keys, &s, &stored, &len, &why) == 0);
        FUZZ_CHECK(png_codec_peek(stored, len, &peek) == 0 && peek.profile == PXC_PROFILE_CHAOS);
        FUZZ_CHECK(png_codec_decode(stored, len, fuzz_keys, &back, &back_len) == 0);
        FUZZ_CHECK(back_len == size && memcmp(back, data, size) == 0);
        check_libpng_reads(stored, len, peek.width, peek.height);
        free(back);
        free(stored);
        back = head = stored = NULL;
    }

    /* The input as a stored file: nothing this volume wrote, so only clean refusals
     * (an input the fuzzer built from an encoded seed would decode: then the head must
     * still be a prefix of the whole). */
    png_codec_peek(data, size, &peek);
    rc = png_codec_decode(data, size, fuzz_keys, &back, &back_len);
    FUZZ_CHECK(rc <= 0 && (rc == 0) == (back != NULL));
    int hrc = png_codec_decode_head(data, size, fuzz_keys, &head, &head_len, NULL);
    FUZZ_CHECK(hrc <= 0 && (hrc == 0) == (head != NULL));
    if (rc == 0 && hrc == 0)
        FUZZ_CHECK(head_len <= back_len && memcmp(head, back, head_len) == 0);
    free(back);
    free(head);
    return 0;
}

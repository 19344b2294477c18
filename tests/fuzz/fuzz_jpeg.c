/* Fuzz target: the JPEG codec on arbitrary bytes taken as a plain JPEG.
 *
 * jpeg_codec_encode must decline cleanly (NULL output, a reason) or produce a stored
 * file that decodes back to the input exactly, peeks as a JPEG, has a head that is a
 * prefix of the input, and that libjpeg-turbo reads, without a warning, as a JPEG of the
 * input's dimensions and components.  The input is also fed to the stored-side parsers
 * (peek, decode, decode_head), which must fail cleanly on anything this volume did not
 * write.
 *
 * Seeds: every JPEG of the image corpus, and small JPEGs generated here (gray, YCbCr at
 * 4:4:4, 4:2:2 and 4:2:0, CMYK; baseline, optimised, progressive, restart intervals,
 * arithmetic coding).
 */
#include "codec/jpeg.h"
#include "codec/opaque.h"
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
    snprintf(name, sizeof name, "corpus-%03d.jpg", (*count)++);
    fuzz_write_seed(name, NULL, 0, buf, len);
    free(buf);
}

static void make_seeds(void)
{
    static const fuzz_jpeg_kind kinds[] = {
        {JCS_GRAYSCALE, 1, 1, 1, 0, 0, 0, 0, 75},  {JCS_RGB, 3, 2, 2, 0, 0, 0, 0, 85},
        {JCS_RGB, 3, 1, 1, 1, 0, 0, 0, 90},        {JCS_RGB, 3, 2, 1, 0, 1, 2, 0, 60},
        {JCS_RGB, 3, 2, 2, 1, 0, 3, 0, 95},        {JCS_GRAYSCALE, 1, 1, 1, 1, 1, 1, 0, 50},
        {JCS_CMYK, 4, 1, 1, 0, 0, 0, 0, 80},       {JCS_RGB, 3, 2, 2, 0, 0, 0, 1, 75},
        {JCS_GRAYSCALE, 1, 1, 1, 0, 0, 0, 0, 100},
    };
    char name[64];
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
        size_t len;
        uint8_t *jpg = fuzz_make_jpeg(&kinds[i], 9 + 7 * (unsigned)i, 5 + 5 * (unsigned)i, &len);
        snprintf(name, sizeof name, "gen-%02zu.jpg", i);
        if (jpg)
            fuzz_write_seed(name, NULL, 0, jpg, len);
        free(jpg);
    }
    const char *corpus = fuzz_corpus_dir();
    if (corpus) {
        static const char *const exts[] = {".jpg", ".jpeg", NULL};
        char dir[4096];
        int count = 0;
        snprintf(dir, sizeof dir, "%s/jpeg", corpus);
        fuzz_each_file(dir, exts, seed_corpus_file, &count);
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

typedef struct frame {
    unsigned width, height;
    int comps;
} frame;

/* libjpeg-turbo's reading of a JPEG's frame and, if coefs, of every coefficient;
 * 0, or -1 on an error or (if strict) a warning. */
static int libjpeg_reads(const uint8_t *p, size_t n, int coefs, int strict, frame *fr)
{
    struct jpeg_decompress_struct d;
    fuzz_jerr e;
    int rc = 0;

    memset(&e, 0, sizeof e);
    d.err = jpeg_std_error(&e.pub);
    e.pub.error_exit = fuzz_jerr_exit;
    e.pub.emit_message = fuzz_jerr_emit;
    jpeg_create_decompress(&d);
    if (setjmp(e.jb)) {
        jpeg_destroy_decompress(&d);
        return -1;
    }
    jpeg_mem_src(&d, p, (unsigned long)n);
    jpeg_read_header(&d, TRUE);
    fr->width = d.image_width;
    fr->height = d.image_height;
    fr->comps = d.num_components;
    if (coefs) {
        jpeg_read_coefficients(&d);
        jpeg_finish_decompress(&d);
    }
    if (strict && e.warnings)
        rc = -1;
    jpeg_destroy_decompress(&d);
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *stored = NULL, *back = NULL, *head = NULL;
    size_t len = 0, back_len = 0, head_len = 0;
    const char *why = NULL;
    pxc_file_secrets s;
    jpeg_peek_info peek;
    pxc_stored_info info;

    if (size > FUZZ_MAX_INPUT)
        return 0;
    fuzz_rng_reset();
    pxc_secrets_fresh(&s);
    int rc = jpeg_codec_encode(data, size, fuzz_keys, &s, &stored, &len, &why);
    if (fuzz_verbose)
        fprintf(stderr, "encode: %s\n", rc ? why : "ok");
    if (rc != 0) {
        FUZZ_CHECK(rc < 0 && stored == NULL && len == 0 && why != NULL);
    } else {
        frame orig, cipher;
        FUZZ_CHECK(stored != NULL && len > JPEG_PEEK_BYTES);
        FUZZ_CHECK(jpeg_codec_decode(stored, len, fuzz_keys, &back, &back_len) == 0);
        FUZZ_CHECK(back_len == size && memcmp(back, data, size) == 0);
        FUZZ_CHECK(jpeg_codec_peek(stored, len, &peek) == 0);
        FUZZ_CHECK(peek.plain_size == size && peek.head_bytes <= len);
        FUZZ_CHECK(jpeg_codec_decode_head(stored, (size_t)peek.head_bytes, fuzz_keys, &head,
                                          &head_len, NULL) == 0);
        FUZZ_CHECK(head_len <= size && memcmp(head, data, head_len) == 0);
        FUZZ_CHECK(pxc_stored_peek(stored, len, len, &info) == 0 && info.kind == PXC_KIND_JPEG);
        FUZZ_CHECK(libjpeg_reads(data, size, 0, 0, &orig) == 0);
        FUZZ_CHECK(libjpeg_reads(stored, len, 1, 1, &cipher) == 0);
        FUZZ_CHECK(orig.width == cipher.width && orig.height == cipher.height &&
                   orig.comps == cipher.comps);
        free(back);
        free(head);
        free(stored);
        back = head = stored = NULL;
    }

    /* The input as a stored file: only clean refusals, or (for an input built from an
     * encoded seed) a head that is a prefix of the whole. */
    jpeg_codec_peek(data, size, &peek);
    rc = jpeg_codec_decode(data, size, fuzz_keys, &back, &back_len);
    FUZZ_CHECK(rc <= 0 && (rc == 0) == (back != NULL));
    int hrc = jpeg_codec_decode_head(data, size, fuzz_keys, &head, &head_len, NULL);
    FUZZ_CHECK(hrc <= 0 && (hrc == 0) == (head != NULL));
    if (rc == 0 && hrc == 0)
        FUZZ_CHECK(head_len <= back_len && memcmp(head, back, head_len) == 0);
    free(back);
    free(head);
    return 0;
}

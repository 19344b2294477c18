/* Fuzz target: the PNG reader and writer of codec/stego.h on arbitrary bytes.
 *
 * Input: a PNG file.  stego_image_read must refuse it cleanly or give an image whose
 * geometry is consistent (8- or 16-bit samples, rows that hold width x channels
 * samples); then stego_image_write must encode it, and reading that back must give the
 * same geometry and pixels, and the same capacity.  (Hiding and revealing run Argon2id,
 * too slow to fuzz; the unit tests and tests/t/t1710-stego.t cover them.)
 * Seeds: the corpus PNGs.
 */
#include <png.h>

#include "codec/stego.h"
#include "tests/fuzz/fuzz.h"

static void seed_png_file(const char *path, void *arg)
{
    int *count = arg;
    size_t len;
    uint8_t *png = fuzz_read_file(path, 64u << 10, &len);
    char name[64];
    if (!png)
        return;
    snprintf(name, sizeof name, "png-%03d", (*count)++);
    fuzz_write_seed(name, NULL, 0, png, len);
    free(png);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_setup();
    const char *corpus = fuzz_corpus_dir();
    if (fuzz_seed_dir() && corpus) {
        static const char *const exts[] = {".png", NULL};
        char dir[4096];
        int count = 0;
        snprintf(dir, sizeof dir, "%s/png", corpus);
        fuzz_each_file(dir, exts, seed_png_file, &count);
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    stego_image img, back;
    const char *why = NULL;
    uint8_t *png = NULL;
    size_t n;

    if (size > FUZZ_MAX_INPUT)
        return 0;
    fuzz_rng_reset();
    int rc = stego_image_read(data, size, &img, &why);
    if (rc != 0) {
        FUZZ_CHECK(rc == -EINVAL || rc == -ENOMEM);
        FUZZ_CHECK(img.pixels == NULL);
        return 0;
    }
    FUZZ_CHECK(img.bit_depth == 8 || img.bit_depth == 16);
    FUZZ_CHECK(img.color_channels >= 1 && img.color_channels <= img.channels && img.channels <= 4);
    FUZZ_CHECK(img.rowbytes ==
               (size_t)img.width * (size_t)img.channels * (size_t)(img.bit_depth / 8));
    size_t cap = stego_capacity(&img);
    if (img.rowbytes * img.height > (1u << 20)) { /* valid and large: encoding it is slow */
        stego_image_free(&img);
        return 0;
    }
    FUZZ_CHECK(cap <= (size_t)img.width * img.height * (size_t)img.color_channels / 16);
    FUZZ_CHECK(stego_image_write(&img, &png, &n) == 0);
    FUZZ_CHECK(stego_image_read(png, n, &back, &why) == 0);
    FUZZ_CHECK(back.width == img.width && back.height == img.height &&
               back.color_type == img.color_type && back.bit_depth == img.bit_depth &&
               back.rowbytes == img.rowbytes);
    FUZZ_CHECK(memcmp(back.pixels, img.pixels, img.rowbytes * img.height) == 0);
    FUZZ_CHECK(stego_capacity(&back) == cap);
    stego_image_free(&back);
    stego_image_free(&img);
    free(png);
    return 0;
}

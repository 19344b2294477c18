/* pngdecode FILE...: decodes each PNG fully with libpng (rows read, nothing written),
 * the "plain libpng decode" that benchmarks compare reads through a mount with.
 * Exit 0 if every file decoded, 1 otherwise. */
#include <png.h>
#include <stdio.h>
#include <stdlib.h>

static int decode(const char *path)
{
    png_image img = {.version = PNG_IMAGE_VERSION};
    if (!png_image_begin_read_from_file(&img, path)) {
        fprintf(stderr, "pngdecode: %s: %s\n", path, img.message);
        return 1;
    }
    img.format = PNG_IMAGE_SAMPLE_COMPONENT_SIZE(img.format) == 2 ? PNG_FORMAT_LINEAR_RGB_ALPHA
                                                                   : PNG_FORMAT_RGBA;
    void *buf = malloc(PNG_IMAGE_SIZE(img));
    int ok = buf && png_image_finish_read(&img, NULL, buf, 0, NULL);
    if (!ok)
        fprintf(stderr, "pngdecode: %s: %s\n", path, buf ? img.message : "out of memory");
    free(buf);
    png_image_free(&img);
    return !ok;
}

int main(int argc, char **argv)
{
    int bad = 0;
    for (int i = 1; i < argc; i++)
        bad |= decode(argv[i]);
    return bad;
}

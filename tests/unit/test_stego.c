/* Unit tests of codec/stego: round trips through PNG bytes (8- and 16-bit, with and
 * without alpha), only last bits change and never alpha, bits spread over the image,
 * capacity enforced before any key derivation, wrong passphrase and plain images refused. */
#include <errno.h>
#include <png.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "codec/stego.h"
#include "tap.h"

static const char pass[] = "stego passphrase";

static stego_image make_image(uint32_t w, uint32_t h, int color_type, int depth)
{
    stego_image img = {0};
    img.width = w;
    img.height = h;
    img.color_type = color_type;
    img.bit_depth = depth;
    img.channels = color_type == PNG_COLOR_TYPE_RGBA  ? 4
                   : color_type == PNG_COLOR_TYPE_RGB ? 3
                   : color_type == PNG_COLOR_TYPE_GA  ? 2
                                                      : 1;
    img.color_channels = img.channels - (color_type & PNG_COLOR_MASK_ALPHA ? 1 : 0);
    img.rowbytes = (size_t)w * (size_t)img.channels * (size_t)(depth / 8);
    img.pixels = malloc(img.rowbytes * h);
    randombytes_buf(img.pixels, img.rowbytes * h);
    return img;
}

/* Through PNG bytes and back, as the command line does. */
static int png_round_trip(stego_image *img)
{
    uint8_t *png;
    size_t n;
    const char *why;
    stego_image back;
    if (stego_image_write(img, &png, &n) != 0)
        return -1;
    int rc = stego_image_read(png, n, &back, &why);
    free(png);
    if (rc != 0)
        return -1;
    stego_image_free(img);
    *img = back;
    return 0;
}

static void test_kind(const char *name, int color_type, int depth)
{
    stego_image img = make_image(120, 80, color_type, depth);
    size_t total = img.rowbytes * img.height, cap = stego_capacity(&img);
    uint8_t *before = malloc(total), *msg = malloc(cap), *out = NULL;
    size_t outlen = 0;

    memcpy(before, img.pixels, total);
    randombytes_buf(msg, cap);
    ok(cap > 500, "%s: capacity %zu bytes", name, cap);
    ok(stego_hide(&img, msg, cap, pass, sizeof pass - 1, STEGO_KDF_INTERACTIVE) == 0,
       "%s: a message of exactly the capacity is hidden", name);
    int by_one = 1, alpha_kept = 1;
    size_t changed = 0, changed_first_half = 0;
    int bps = depth / 8;
    for (size_t i = 0; i < total; i += (size_t)bps) {
        unsigned was = before[i], now = img.pixels[i];
        if (bps == 2) {
            was = was << 8 | before[i + 1];
            now = now << 8 | img.pixels[i + 1];
        }
        if (was == now)
            continue;
        changed++;
        changed_first_half += i < total / 2;
        if (now != was + 1 && now + 1 != was)
            by_one = 0;
        if (img.channels != img.color_channels &&
            (i / (size_t)bps) % (size_t)img.channels == (size_t)img.channels - 1)
            alpha_kept = 0;
    }
    ok(by_one, "%s: every changed sample moved by one", name);
    ok(alpha_kept, "%s: no alpha sample changed", name);
    /* About half the embedded bits differ from the cover's; both halves of the image hold some. */
    ok(changed > cap * 8 / 3 && changed_first_half > changed / 3 &&
           changed - changed_first_half > changed / 3,
       "%s: %zu samples changed, spread over the image (%zu in the first half)", name, changed,
       changed_first_half);
    ok(png_round_trip(&img) == 0, "%s: written as PNG and read back", name);
    ok(stego_reveal(&img, pass, sizeof pass - 1, &out, &outlen) == 0 && outlen == cap &&
           memcmp(out, msg, cap) == 0,
       "%s: the message is revealed intact", name);
    free(out);
    out = NULL;
    ok(stego_reveal(&img, "wrong", 5, &out, &outlen) == -EBADMSG,
       "%s: a wrong passphrase: -EBADMSG", name);
    free(before);
    free(msg);
    stego_image_free(&img);
}

/* LSB matching: a flat cover of even value 100 gets both 99 and 101 (bit flipping would
 * give 101 only); at the ends of the range samples move inward. */
static void test_matching(void)
{
    stego_image img = make_image(100, 100, PNG_COLOR_TYPE_GRAY, 8);
    size_t total = img.rowbytes * img.height, cap = stego_capacity(&img), count[256] = {0};
    uint8_t *msg = malloc(cap);

    randombytes_buf(msg, cap);
    memset(img.pixels, 100, total);
    ok(stego_hide(&img, msg, cap, pass, sizeof pass - 1, STEGO_KDF_INTERACTIVE) == 0,
       "hide in a flat gray cover of value 100");
    for (size_t i = 0; i < total; i++)
        count[img.pixels[i]]++;
    ok(count[99] + count[100] + count[101] == total, "only 99, 100 and 101 occur");
    ok(count[99] > total / 20 && count[101] > total / 20,
       "both 99 (%zu) and 101 (%zu): moved up and down at random", count[99], count[101]);
    memset(img.pixels, 255, total / 2);
    memset(img.pixels + total / 2, 0, total - total / 2);
    ok(stego_hide(&img, msg, cap, pass, sizeof pass - 1, STEGO_KDF_INTERACTIVE) == 0,
       "hide in a cover of 255 and 0");
    memset(count, 0, sizeof count);
    for (size_t i = 0; i < total; i++)
        count[img.pixels[i]]++;
    ok(count[0] + count[1] + count[254] + count[255] == total && count[1] && count[254],
       "255 moves to 254 and 0 to 1, never out of range");
    uint8_t *out = NULL;
    size_t outlen = 0;
    ok(stego_reveal(&img, pass, sizeof pass - 1, &out, &outlen) == 0 && outlen == cap &&
           memcmp(out, msg, cap) == 0,
       "and the message reads back");
    free(out);
    free(msg);
    stego_image_free(&img);
}

static void test_refusals(void)
{
    stego_image img = make_image(64, 64, PNG_COLOR_TYPE_RGB, 8);
    size_t cap = stego_capacity(&img), total = img.rowbytes * img.height;
    uint8_t *msg = calloc(cap + 1, 1), *before = malloc(total), *out = NULL;
    size_t outlen;

    memcpy(before, img.pixels, total);
    clock_t t0 = clock();
    ok(stego_hide(&img, msg, cap + 1, pass, sizeof pass - 1, STEGO_KDF_SENSITIVE) == -EFBIG,
       "one byte over capacity: -EFBIG");
    ok((double)(clock() - t0) / CLOCKS_PER_SEC < 0.5, "refused before deriving any key");
    ok(memcmp(before, img.pixels, total) == 0, "and the image is untouched");
    ok(stego_reveal(&img, pass, sizeof pass - 1, &out, &outlen) == -EBADMSG,
       "an image without a message: -EBADMSG");

    stego_image tiny = make_image(4, 4, PNG_COLOR_TYPE_GRAY, 8);
    ok(stego_capacity(&tiny) == 0, "a 4x4 gray image holds nothing");
    ok(stego_hide(&tiny, msg, 1, pass, sizeof pass - 1, STEGO_KDF_INTERACTIVE) == -EFBIG,
       "so even one byte is refused");
    ok(stego_reveal(&tiny, pass, sizeof pass - 1, &out, &outlen) == -EBADMSG,
       "and revealing finds nothing");
    stego_image_free(&tiny);

    /* Two hides of one message differ (fresh salt), both reveal. */
    stego_image a = make_image(64, 64, PNG_COLOR_TYPE_RGB, 8), b;
    b = a;
    b.pixels = malloc(total);
    memcpy(b.pixels, a.pixels, total);
    ok(stego_hide(&a, (const uint8_t *)"hi", 2, pass, sizeof pass - 1, STEGO_KDF_INTERACTIVE) ==
               0 &&
           stego_hide(&b, (const uint8_t *)"hi", 2, pass, sizeof pass - 1, STEGO_KDF_INTERACTIVE) ==
               0,
       "the same message hidden twice");
    ok(memcmp(a.pixels, b.pixels, total) != 0, "gives two different images");
    ok(stego_hide(&a, NULL, 0, pass, sizeof pass - 1, STEGO_KDF_INTERACTIVE) == 0 &&
           stego_reveal(&a, pass, sizeof pass - 1, &out, &outlen) == 0 && outlen == 0,
       "an empty message round-trips (the second hide overwrites the first)");
    free(out);
    stego_image_free(&a);
    stego_image_free(&b);

    const char *why = NULL;
    stego_image none;
    ok(stego_image_read((const uint8_t *)"GIF89a......", 12, &none, &why) == -EINVAL && why,
       "not a PNG: -EINVAL with a reason (%s)", why ? why : "none");
    uint8_t *png;
    size_t n;
    ok(stego_image_write(&img, &png, &n) == 0, "encode a PNG");
    ok(stego_image_read(png, n / 2, &none, &why) == -EINVAL, "a truncated PNG: -EINVAL (%s)",
       why ? why : "none");
    free(png);
    free(msg);
    free(before);
    stego_image_free(&img);
}

int main(void)
{
    if (sodium_init() < 0)
        return 1;
    test_kind("RGB 8-bit", PNG_COLOR_TYPE_RGB, 8);
    test_kind("RGBA 8-bit", PNG_COLOR_TYPE_RGBA, 8);
    test_kind("gray 16-bit", PNG_COLOR_TYPE_GRAY, 16);
    test_kind("gray+alpha 16-bit", PNG_COLOR_TYPE_GA, 16);
    test_matching();
    test_refusals();
    return tap_done();
}

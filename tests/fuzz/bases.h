/* Valid stored files made once at start-up, under the fixed volume key, for the
 * targets that change them: small PNGs (RGB 8-bit with filters, 2-bit palette Adam7,
 * 16-bit gray+alpha) and JPEGs (baseline 4:2:0, progressive 4:4:4 with restarts,
 * gray).  Needs fuzz.h and images.h first. */
#ifndef PXC_TESTS_FUZZ_BASES_H
#define PXC_TESTS_FUZZ_BASES_H

#include "codec/opaque.h"
#include "codec/stored.h"

#define FUZZ_NBASE 6

typedef struct fuzz_base {
    int kind;
    uint8_t *plain, *stored;
    size_t plain_len, stored_len;
    uint8_t *head; /* pxc_stored_decode_head of the unchanged file */
    size_t head_len;
} fuzz_base;

static fuzz_base fuzz_bases[FUZZ_NBASE];

static inline void fuzz_make_base(fuzz_base *b, int kind, uint8_t *plain, size_t plain_len)
{
    pxc_file_secrets s;
    const char *why = NULL;
    if (!plain) {
        fprintf(stderr, "fuzz: cannot make a base image\n");
        exit(1);
    }
    pxc_secrets_fresh(&s);
    b->kind = kind;
    b->plain = plain;
    b->plain_len = plain_len;
    if (pxc_stored_encode(kind, plain, plain_len, fuzz_keys, &s, &b->stored, &b->stored_len,
                          &why) != 0 ||
        pxc_stored_decode_head(kind, b->stored, b->stored_len, fuzz_keys, &b->head, &b->head_len,
                               NULL) != 0) {
        fprintf(stderr, "fuzz: cannot encode a base image: %s\n", why ? why : "head");
        exit(1);
    }
}

/* After fuzz_setup. */
static inline void fuzz_make_bases(void)
{
    static const fuzz_png_kind pngs[3] = {
        {8, 2, 0, 4, 6, Z_DEFAULT_STRATEGY},
        {2, 3, 1, 0, 9, Z_FIXED},
        {16, 4, 0, 1, 1, Z_DEFAULT_STRATEGY},
    };
    static const fuzz_jpeg_kind jpgs[3] = {
        {JCS_RGB, 3, 2, 2, 0, 0, 0, 0, 80},
        {JCS_RGB, 3, 1, 1, 1, 0, 2, 0, 90},
        {JCS_GRAYSCALE, 1, 1, 1, 0, 1, 0, 0, 70},
    };
    size_t len;
    for (int i = 0; i < 3; i++) {
        uint8_t *p = fuzz_make_png(&pngs[i], 19 + 4 * (uint32_t)i, 11 + 3 * (uint32_t)i, &len);
        fuzz_make_base(&fuzz_bases[i], PXC_KIND_PNG, p, len);
    }
    for (int i = 0; i < 3; i++) {
        uint8_t *p = fuzz_make_jpeg(&jpgs[i], 21 + 9 * (unsigned)i, 17 + 5 * (unsigned)i, &len);
        fuzz_make_base(&fuzz_bases[3 + i], PXC_KIND_JPEG, p, len);
    }
}

#endif

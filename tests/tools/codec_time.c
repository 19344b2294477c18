/* codec_time FILE [ROUNDS]: times the stored-form codec on one file without a mount:
 * encode (which includes its verifying decode) and decode, best of ROUNDS (default 3),
 * under a random master key.  Prints "kind encode_s decode_s stored_bytes plain_bytes"
 * on one line, kind "opaque" (and why) when the codec declines the file.
 * For benchmarks and profiling; exit 0 unless the file cannot be read. */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "codec/opaque.h"
#include "codec/stored.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static uint8_t *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 1 << 20, n = 0;
    uint8_t *p = malloc(cap);
    while (p) {
        n += fread(p + n, 1, cap - n, f);
        if (n < cap)
            break;
        uint8_t *q = realloc(p, cap *= 2);
        if (!q)
            free(p);
        p = q;
    }
    fclose(f);
    *len = n;
    return p;
}

int main(int argc, char **argv)
{
    if (argc < 2 || sodium_init() < 0) {
        fputs("usage: codec_time FILE [ROUNDS]\n", stderr);
        return 2;
    }
    int rounds = argc > 2 ? atoi(argv[2]) : 3;
    size_t n;
    uint8_t *plain = slurp(argv[1], &n);
    if (!plain) {
        perror(argv[1]);
        return 1;
    }
    uint8_t master[PXC_KEY_BYTES];
    randombytes_buf(master, sizeof master);
    pxc_keys *keys = pxc_keys_new(master);
    int kind = pxc_stored_candidate_kind(plain, n);
    double best_enc = 1e9, best_dec = 1e9;
    size_t stored_len = 0;
    for (int r = 0; r < rounds && kind != PXC_KIND_OPAQUE; r++) {
        pxc_file_secrets s;
        uint8_t *stored = NULL, *back = NULL;
        size_t back_len = 0;
        const char *why = NULL;
        pxc_secrets_fresh(&s);
        double t0 = now();
        int rc = pxc_stored_encode(kind, plain, n, keys, &s, &stored, &stored_len, &why);
        double t1 = now();
        if (rc) {
            printf("opaque %s\n", why ? why : "declined");
            return 0;
        }
        rc = pxc_stored_decode(kind, stored, stored_len, keys, &back, &back_len);
        double t2 = now();
        if (rc || back_len != n || memcmp(back, plain, n) != 0) {
            fprintf(stderr, "codec_time: %s: decode differs\n", argv[1]);
            return 1;
        }
        free(stored);
        free(back);
        best_enc = t1 - t0 < best_enc ? t1 - t0 : best_enc;
        best_dec = t2 - t1 < best_dec ? t2 - t1 : best_dec;
    }
    if (kind == PXC_KIND_OPAQUE)
        printf("opaque not an image\n");
    else
        printf("%s %.4f %.4f %zu %zu\n", kind == PXC_KIND_PNG ? "png" : "jpeg", best_enc, best_dec,
               stored_len, n);
    pxc_keys_free(keys);
    free(plain);
    return 0;
}

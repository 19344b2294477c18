/* img_stats WIDTH < raw 8-bit samples (one channel, row-major): prints
 *   entropy H corr_h R corr_v R corr_d R
 * Shannon entropy in bits per sample and the correlation of horizontally, vertically
 * and diagonally adjacent samples over all pairs, computed by codec/metrics (the same
 * code as `pixcrypt analyze`).  Exit 2 on bad usage or input. */
#include <stdio.h>
#include <stdlib.h>

#include "codec/metrics.h"

int main(int argc, char **argv)
{
    long w = argc == 2 ? strtol(argv[1], NULL, 10) : 0;
    size_t n = 0, cap = 1 << 20;
    unsigned char *p = malloc(cap);
    if (w < 2 || !p) {
        fputs("usage: img_stats WIDTH < raw\n", stderr);
        return 2;
    }
    for (size_t got; (got = fread(p + n, 1, cap - n, stdin)) > 0;) {
        n += got;
        if (n == cap && !(p = realloc(p, cap *= 2))) {
            fputs("img_stats: out of memory\n", stderr);
            return 2;
        }
    }
    size_t h = n / (size_t)w;
    if (h < 2) {
        fputs("img_stats: no complete row\n", stderr);
        return 2;
    }
    pxm_image im = {p, 0, (uint32_t)w, (uint32_t)h, 1, 255};
    printf("entropy %.5f corr_h %.5f corr_v %.5f corr_d %.5f\n", pxm_entropy(&im),
           pxm_adjacent_corr(&im, 1, 0), pxm_adjacent_corr(&im, 0, 1),
           pxm_adjacent_corr(&im, 1, 1));
    free(p);
    return 0;
}

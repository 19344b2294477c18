/* codec_time FILE [ROUNDS]: times the stored-form codec on one file without a mount:
 * encode (which includes its verifying decode) and decode, best of ROUNDS (default 3),
 * under a random master key, and the peer the benchmarks compare with, in the same
 * process: for a JPEG, libjpeg-turbo's lossless transcode with every marker copied
 * (what `jpegtran -copy all` does, without the process start); for a PNG, a full
 * libpng decode.  Prints "kind encode_s decode_s peer_s stored_bytes plain_bytes
 * encode_cpu_s peer_cpu_s" on one line, kind "opaque" (and why) when the codec declines
 * the file.  The CPU times (user + system, all threads, best of ROUNDS) depend less on
 * what else the machine runs than the wall-clock times do.
 * For benchmarks and profiling; exit 0 unless the file cannot be read. */
#include <setjmp.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include <jpeglib.h>
#include <png.h>

#include "codec/opaque.h"
#include "codec/stored.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* User + system CPU seconds of the process so far, all threads. */
static double cpu(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec / 1e6;
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

typedef struct peer_err {
    struct jpeg_error_mgr pub;
    jmp_buf jb;
} peer_err;

static void peer_error_exit(j_common_ptr c)
{
    longjmp(((peer_err *)c->err)->jb, 1);
}

/* jpegtran -copy all, in memory: coefficients read and written, markers copied. */
static int jpeg_transcode(const uint8_t *p, size_t n)
{
    struct jpeg_decompress_struct d;
    struct jpeg_compress_struct c;
    peer_err e;
    unsigned char *out = NULL;
    unsigned long outlen = 0;
    d.err = c.err = jpeg_std_error(&e.pub);
    e.pub.error_exit = peer_error_exit;
    jpeg_create_decompress(&d);
    jpeg_create_compress(&c);
    if (setjmp(e.jb)) {
        jpeg_destroy_compress(&c);
        jpeg_destroy_decompress(&d);
        free(out);
        return -1;
    }
    jpeg_mem_src(&d, p, (unsigned long)n);
    jpeg_save_markers(&d, JPEG_COM, 0xFFFF);
    for (int m = 0; m < 16; m++)
        jpeg_save_markers(&d, JPEG_APP0 + m, 0xFFFF);
    jpeg_read_header(&d, TRUE);
    jvirt_barray_ptr *coefs = jpeg_read_coefficients(&d);
    jpeg_copy_critical_parameters(&d, &c);
    jpeg_mem_dest(&c, &out, &outlen);
    c.write_JFIF_header = FALSE;
    c.write_Adobe_marker = FALSE;
    jpeg_write_coefficients(&c, coefs);
    for (jpeg_saved_marker_ptr m = d.marker_list; m; m = m->next)
        jpeg_write_marker(&c, m->marker, m->data, m->data_length);
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
    jpeg_finish_decompress(&d);
    jpeg_destroy_decompress(&d);
    free(out);
    return 0;
}

/* A full libpng decode to RGBA (8 or 16 bits). */
static int png_full_decode(const uint8_t *p, size_t n)
{
    png_image img = {.version = PNG_IMAGE_VERSION};
    if (!png_image_begin_read_from_memory(&img, p, n))
        return -1;
    img.format = PNG_IMAGE_SAMPLE_COMPONENT_SIZE(img.format) == 2 ? PNG_FORMAT_LINEAR_RGB_ALPHA
                                                                  : PNG_FORMAT_RGBA;
    void *buf = malloc(PNG_IMAGE_SIZE(img));
    int ok = buf && png_image_finish_read(&img, NULL, buf, 0, NULL);
    free(buf);
    png_image_free(&img);
    return ok ? 0 : -1;
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
    double best_enc = 1e9, best_dec = 1e9, best_peer = 1e9, cpu_enc = 1e9, cpu_peer = 1e9;
    size_t stored_len = 0;
    for (int r = 0; r < rounds && kind != PXC_KIND_OPAQUE; r++) {
        pxc_file_secrets s;
        uint8_t *stored = NULL, *back = NULL;
        size_t back_len = 0;
        const char *why = NULL;
        pxc_secrets_fresh(&s);
        double c0 = cpu(), t0 = now();
        int rc = pxc_stored_encode(kind, plain, n, keys, &s, &stored, &stored_len, &why);
        double t1 = now(), c1 = cpu();
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
        cpu_enc = c1 - c0 < cpu_enc ? c1 - c0 : cpu_enc;
        double c2 = cpu();
        t2 = now();
        int prc = kind == PXC_KIND_PNG ? png_full_decode(plain, n) : jpeg_transcode(plain, n);
        double t3 = now(), c3 = cpu();
        if (prc == 0 && t3 - t2 < best_peer)
            best_peer = t3 - t2;
        if (prc == 0 && c3 - c2 < cpu_peer)
            cpu_peer = c3 - c2;
    }
    if (kind == PXC_KIND_OPAQUE)
        printf("opaque not an image\n");
    else
        printf("%s %.6f %.6f %.6f %zu %zu %.6f %.6f\n", kind == PXC_KIND_PNG ? "png" : "jpeg",
               best_enc, best_dec, best_peer, stored_len, n, cpu_enc, cpu_peer);
    pxc_keys_free(keys);
    free(plain);
    return 0;
}

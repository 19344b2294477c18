/* `pixcrypt stego hide|reveal|capacity`: a message sealed under a passphrase, hidden in a
 * PNG's least significant bits at keyed positions (codec/stego.h). */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <libgen.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "codec/stego.h"
#include "fs/cli.h"
#include "fs/fdio.h"
#include "fs/outfile.h"
#include "fs/passphrase.h"

#define STEGO_MAX_INPUT ((size_t)1 << 30)

static const char stego_usage[] =
    "usage: pixcrypt stego hide [--passfile FILE] [--kdf LEVEL] [--force] COVER.png MESSAGE "
    "OUT.png\n"
    "       pixcrypt stego reveal [--passfile FILE] [--force] STEGO.png [OUT]\n"
    "       pixcrypt stego capacity COVER.png\n"
    "  MESSAGE may be - for standard input; reveal writes to standard output without OUT\n"
    "  --kdf interactive|moderate|sensitive  Argon2id cost (default moderate)\n"
    "  --force  replace OUT if it exists\n";

/* Reads a whole file ("-": standard input) into *buf (malloc'ed).  0, or -1 after saying why. */
static int read_whole(const char *path, uint8_t **buf, size_t *n)
{
    int fd = strcmp(path, "-") == 0 ? STDIN_FILENO : open(path, O_RDONLY | O_CLOEXEC);
    size_t cap = 1 << 16, len = 0;
    uint8_t *p = NULL;

    if (fd < 0) {
        fprintf(stderr, "pixcrypt stego: %s: %s\n", path, strerror(errno));
        return -1;
    }
    for (;;) {
        if (!p || len == cap) {
            if (p && cap >= STEGO_MAX_INPUT) {
                fprintf(stderr, "pixcrypt stego: %s: too large\n", path);
                goto fail;
            }
            size_t ncap = p ? cap * 2 : cap;
            uint8_t *q = realloc(p, ncap);
            if (!q) {
                fprintf(stderr, "pixcrypt stego: %s: out of memory\n", path);
                goto fail;
            }
            p = q;
            cap = ncap;
        }
        ssize_t r = read(fd, p + len, cap - len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            fprintf(stderr, "pixcrypt stego: %s: %s\n", path, strerror(errno));
            goto fail;
        }
        if (r == 0)
            break;
        len += (size_t)r;
    }
    if (fd != STDIN_FILENO)
        close(fd);
    *buf = p;
    *n = len;
    return 0;
fail:
    if (fd != STDIN_FILENO)
        close(fd);
    free(p);
    return -1;
}

/* Writes buf to path through a temp file beside it moved into place (fs/outfile.h),
 * with the given mode; an existing path is replaced only with force. */
static int write_whole(const char *path, const uint8_t *buf, size_t n, int force, mode_t mode)
{
    char dir[4096], tmp[4096];
    if (!force && access(path, F_OK) == 0) {
        fprintf(stderr, "pixcrypt stego: %s exists (use --force to replace it)\n", path);
        return -1;
    }
    if (snprintf(dir, sizeof dir, "%s", path) >= (int)sizeof dir) {
        fprintf(stderr, "pixcrypt stego: %s: name too long\n", path);
        return -1;
    }
    int fd = outfile_create(dirname(dir), tmp, sizeof tmp), rc = fd < 0 ? fd : 0;
    if (rc == 0 && fchmod(fd, mode) != 0)
        rc = -errno;
    if (rc == 0)
        rc = fd_write_full(fd, buf, n, 0);
    if (rc == 0 && fsync(fd) != 0)
        rc = -errno;
    if (fd >= 0)
        close(fd);
    if (rc == 0)
        rc = outfile_place(tmp, path, force);
    if (rc != 0) {
        if (fd >= 0)
            unlink(tmp);
        fprintf(stderr, "pixcrypt stego: %s: %s\n", path, strerror(-rc));
        return -1;
    }
    return 0;
}

/* The write through standard output: pwrite fails on pipes, so fall back to write. */
static int write_stdout(const uint8_t *buf, size_t n)
{
    while (n > 0) {
        ssize_t r = write(STDOUT_FILENO, buf, n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            fprintf(stderr, "pixcrypt stego: standard output: %s\n",
                    r < 0 ? strerror(errno) : "short write");
            return -1;
        }
        buf += r;
        n -= (size_t)r;
    }
    return 0;
}

static int load_image(const char *path, stego_image *img)
{
    uint8_t *data;
    size_t n;
    const char *why;

    if (read_whole(path, &data, &n) != 0)
        return PXC_EXIT_ERROR;
    int rc = stego_image_read(data, n, img, &why);
    free(data);
    if (rc != 0) {
        fprintf(stderr, "pixcrypt stego: %s: %s\n", path, why ? why : strerror(-rc));
        return PXC_EXIT_ERROR;
    }
    return PXC_EXIT_OK;
}

static int stego_hide_cmd(const char *passfile, int level, int force, char **args)
{
    const char *cover = args[0], *message = args[1], *out = args[2];
    stego_image img;
    uint8_t *msg = NULL, *png = NULL;
    size_t len, pnglen;
    char *pass = NULL;
    size_t passlen;
    int exit_code = PXC_EXIT_ERROR, rc;

    if (!force && access(out, F_OK) == 0) {
        fprintf(stderr, "pixcrypt stego: %s exists (use --force to replace it)\n", out);
        return PXC_EXIT_ERROR;
    }
    if ((exit_code = load_image(cover, &img)) != PXC_EXIT_OK)
        return exit_code;
    exit_code = PXC_EXIT_ERROR;
    if (read_whole(message, &msg, &len) != 0)
        goto out;
    /* Capacity first: no passphrase asked for a message that cannot fit. */
    if (len > stego_capacity(&img)) {
        fprintf(stderr,
                "pixcrypt stego: %s: the message is %zu bytes, but %s (%ux%u) holds at most %zu\n",
                message, len, cover, img.width, img.height, stego_capacity(&img));
        goto out;
    }
    if (passphrase_read(passfile, "Passphrase for the message: ", 1, &pass, &passlen) != 0)
        goto out;
    rc = stego_hide(&img, msg, len, pass, passlen, (enum stego_kdf)level);
    if (rc == 0)
        rc = stego_image_write(&img, &png, &pnglen);
    if (rc != 0) {
        fprintf(stderr, "pixcrypt stego: %s: %s\n", cover, strerror(-rc));
        goto out;
    }
    if (write_whole(out, png, pnglen, force, 0644) != 0)
        goto out;
    fprintf(stderr, "Hid %zu bytes in %s (%zu%% of its capacity).\n", len, out,
            stego_capacity(&img) ? len * 100 / stego_capacity(&img) : 0);
    exit_code = PXC_EXIT_OK;
out:
    if (msg) {
        sodium_memzero(msg, len);
        free(msg);
    }
    free(png);
    passphrase_free(pass);
    stego_image_free(&img);
    return exit_code;
}

static int stego_reveal_cmd(const char *passfile, int force, char **args, int nargs)
{
    const char *in = args[0], *out = nargs > 1 ? args[1] : NULL;
    stego_image img;
    uint8_t *msg = NULL;
    size_t len = 0, passlen;
    char *pass = NULL;
    int exit_code, rc;

    if (out && !force && access(out, F_OK) == 0) {
        fprintf(stderr, "pixcrypt stego: %s exists (use --force to replace it)\n", out);
        return PXC_EXIT_ERROR;
    }
    if ((exit_code = load_image(in, &img)) != PXC_EXIT_OK)
        return exit_code;
    exit_code = PXC_EXIT_ERROR;
    if (passphrase_read(passfile, "Passphrase for the message: ", 0, &pass, &passlen) != 0)
        goto out;
    rc = stego_reveal(&img, pass, passlen, &msg, &len);
    if (rc == -EBADMSG) {
        fprintf(stderr,
                "pixcrypt stego: %s: no message for this passphrase (wrong passphrase, or the "
                "image holds none)\n",
                in);
        exit_code = PXC_EXIT_PASSPHRASE;
        goto out;
    }
    if (rc != 0) {
        fprintf(stderr, "pixcrypt stego: %s: %s\n", in, strerror(-rc));
        goto out;
    }
    if ((out ? write_whole(out, msg, len, force, 0600) : write_stdout(msg, len)) == 0)
        exit_code = PXC_EXIT_OK;
out:
    if (msg) {
        sodium_memzero(msg, len);
        free(msg);
    }
    passphrase_free(pass);
    stego_image_free(&img);
    return exit_code;
}

int cmd_stego(int argc, char **argv)
{
    static const struct option opts[] = {{"passfile", required_argument, NULL, 'p'},
                                         {"kdf", required_argument, NULL, 'k'},
                                         {"force", no_argument, NULL, 'F'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *passfile = NULL;
    int level = STEGO_KDF_MODERATE, force = 0, c;

    /* Options may come before or after the action (getopt moves them first). */
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'p':
            passfile = optarg;
            break;
        case 'k':
            level = parse_kdf_level(optarg); /* same order as enum stego_kdf */
            if (level < 0) {
                fprintf(stderr, "pixcrypt stego: unknown --kdf level '%s'\n%s", optarg,
                        stego_usage);
                return PXC_EXIT_USAGE;
            }
            break;
        case 'F':
            force = 1;
            break;
        case 'h':
            fputs(stego_usage, stdout);
            return PXC_EXIT_OK;
        default:
            fputs(stego_usage, stderr);
            return PXC_EXIT_USAGE;
        }
    }
    if (optind >= argc) {
        fputs(stego_usage, stderr);
        return PXC_EXIT_USAGE;
    }
    const char *action = argv[optind];
    int nargs = argc - optind - 1;
    char **args = argv + optind + 1;
    if (strcmp(action, "hide") == 0 && nargs == 3)
        return stego_hide_cmd(passfile, level, force, args);
    if (strcmp(action, "reveal") == 0 && (nargs == 1 || nargs == 2))
        return stego_reveal_cmd(passfile, force, args, nargs);
    if (strcmp(action, "capacity") == 0 && nargs == 1) {
        stego_image img;
        int rc = load_image(args[0], &img);
        if (rc == PXC_EXIT_OK)
            printf("%zu\n", stego_capacity(&img));
        stego_image_free(&img);
        return rc;
    }
    fputs(stego_usage, stderr);
    return PXC_EXIT_USAGE;
}

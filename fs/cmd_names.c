/* `pixcrypt encrypt-name` and `pixcrypt decrypt-name`: the stored path of a plain path and
 * back, for support work on a cipher dir (mounted or not). */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fs/cli.h"
#include "fs/namepath.h"
#include "fs/passphrase.h"

static const char names_usage[] =
    "usage: pixcrypt encrypt-name [--passfile FILE] CIPHERDIR PLAIN-PATH...\n"
    "       pixcrypt decrypt-name [--passfile FILE] CIPHERDIR STORED-PATH...\n"
    "  paths are relative to CIPHERDIR (a STORED-PATH may also start with CIPHERDIR/)\n";

/* path relative to dir: a path under dir loses its dir/ prefix */
static const char *relative_to(const char *dir, const char *path)
{
    size_t n = strlen(dir);
    while (n > 1 && dir[n - 1] == '/')
        n--;
    if (strncmp(path, dir, n) == 0 && path[n] == '/')
        path += n + 1;
    while (*path == '/')
        path++;
    return path;
}

static int run(const char *cmd, int encrypt, int argc, char **argv)
{
    static const struct option opts[] = {{"passfile", required_argument, NULL, 'p'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *passfile = NULL;
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'p':
            passfile = optarg;
            break;
        case 'h':
            fputs(names_usage, stdout);
            return PXC_EXIT_OK;
        default:
            fputs(names_usage, stderr);
            return PXC_EXIT_USAGE;
        }
    }
    if (optind + 2 > argc) {
        fputs(names_usage, stderr);
        return PXC_EXIT_USAGE;
    }
    const char *dir = argv[optind];
    keystore *ks = NULL;
    ks_volume_info info;
    int rc = keystore_open(&ks, dir);
    if (rc == KS_OK)
        rc = keystore_volume_info(ks, &info);
    if (rc != KS_OK) {
        report_keystore_error(cmd, dir, rc);
        keystore_close(ks);
        return exit_for_keystore(rc);
    }
    uint8_t *master = sodium_malloc(KS_MASTER_KEY_BYTES);
    char *pass = NULL;
    size_t passlen;
    pxc_names nm = {0};
    int exit_code = PXC_EXIT_ERROR, root_fd = -1;
    if (!master || passphrase_read(passfile, "Passphrase: ", 0, &pass, &passlen) != 0)
        goto out;
    rc = keystore_unlock(ks, pass, passlen, master);
    if (rc != KS_OK) {
        fprintf(stderr, "pixcrypt %s: %s: %s\n", cmd, dir, keystore_strerror(rc));
        exit_code = exit_for_keystore(rc);
        goto out;
    }
    if (names_init(&nm, master, info.names == KS_NAMES_ENCRYPTED) != 0)
        goto out;
    root_fd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (root_fd < 0) {
        fprintf(stderr, "pixcrypt %s: %s: %s\n", cmd, dir, strerror(errno));
        goto out;
    }
    exit_code = PXC_EXIT_OK;
    for (int i = optind + 1; i < argc; i++) {
        char out[PATH_MAX];
        const char *path = encrypt ? argv[i] : relative_to(dir, argv[i]);
        rc = encrypt ? names_path_encrypt(&nm, root_fd, path, out, sizeof out)
                     : names_path_decrypt(&nm, root_fd, path, out, sizeof out);
        if (rc == 0) {
            puts(out);
        } else {
            fprintf(stderr, "pixcrypt %s: %s: %s\n", cmd, argv[i],
                    rc == -EBADMSG ? "does not decrypt (not a name of this volume, or damaged)"
                                   : strerror(-rc));
            exit_code = PXC_EXIT_ERROR;
        }
    }
out:
    if (root_fd >= 0)
        close(root_fd);
    names_free(&nm);
    passphrase_free(pass);
    if (master)
        sodium_free(master);
    keystore_close(ks);
    return exit_code;
}

int cmd_encrypt_name(int argc, char **argv)
{
    return run("encrypt-name", 1, argc, argv);
}

int cmd_decrypt_name(int argc, char **argv)
{
    return run("decrypt-name", 0, argc, argv);
}

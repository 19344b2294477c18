/* `pixcrypt recovery`: the volume's master key as a recovery code (and QR code), and
 * unlocking with such a code for `mount --recovery-code` and `passwd --recovery-code`. */
#include <errno.h>
#include <getopt.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "fs/cli.h"
#include "fs/passphrase.h"
#include "fs/qr_png.h"
#include "keystore/recovery_code.h"

#define QR_SCALE 8

static const char recovery_usage[] =
    "usage: pixcrypt recovery [--passfile FILE] [--qr FILE.png] CIPHERDIR\n"
    "  prints the volume's recovery code, which unlocks it without the passphrase\n"
    "  (pixcrypt mount --recovery-code, pixcrypt passwd --recovery-code)\n"
    "  --qr FILE.png  also write it as a QR code (a new file, mode 0600)\n";

int recovery_code_show(const char *cmd, const char *dir, const uint8_t master[KS_MASTER_KEY_BYTES],
                       const char *qr_path)
{
    char code[RC_TEXT_BYTES];
    int rc = PXC_EXIT_OK;

    recovery_code_format(code, master);
    fprintf(stderr,
            "Recovery code for %s. Anyone who has it can read every file of the volume,\n"
            "whatever its passphrase: keep it offline, like a spare key.\n",
            dir);
    printf("%s\n", code);
    fflush(stdout);
    if (qr_path) {
        if (qr_png_write(qr_path, code, QR_SCALE) != 0) {
            fprintf(stderr, "pixcrypt %s: cannot write the QR code %s: %s\n", cmd, qr_path,
                    strerror(errno));
            rc = PXC_EXIT_ERROR;
        } else {
            fprintf(stderr, "QR code written to %s.\n", qr_path);
        }
    }
    sodium_memzero(code, sizeof code);
    return rc;
}

int recovery_code_unlock(keystore *ks, const char *cmd, const char *dir, const char *codefile,
                         uint8_t master[KS_MASTER_KEY_BYTES])
{
    char *text = NULL, why[256];
    size_t len;
    rc_error err;

    int st;
    if (!codefile && isatty(STDIN_FILENO)) {
        /* Typed from paper: shown as it is typed (88 characters typed blind would be
         * mistyped), so the prompt is not the no-echo passphrase one. */
        char line[256];
        fputs("Recovery code: ", stderr);
        fflush(stderr);
        if (!fgets(line, sizeof line, stdin)) {
            fputs("pixcrypt: no recovery code given\n", stderr);
            return PXC_EXIT_ERROR;
        }
        st = recovery_code_parse(line, master, &err);
        sodium_memzero(line, sizeof line);
    } else {
        if (passphrase_read(codefile, "Recovery code: ", 0, &text, &len) != 0)
            return PXC_EXIT_ERROR;
        st = recovery_code_parse(text, master, &err);
        passphrase_free(text);
    }
    if (st != RC_OK) {
        recovery_code_explain(st, &err, why, sizeof why);
        fprintf(stderr, "pixcrypt %s: recovery code: %s\n", cmd, why);
        return PXC_EXIT_PASSPHRASE;
    }
    st = keystore_unlock_master(ks, master);
    if (st != KS_OK) {
        sodium_memzero(master, KS_MASTER_KEY_BYTES);
        fprintf(stderr, "pixcrypt %s: %s: %s\n", cmd, dir, keystore_strerror(st));
        return exit_for_keystore(st);
    }
    return PXC_EXIT_OK;
}

int cmd_recovery(int argc, char **argv)
{
    static const struct option opts[] = {{"passfile", required_argument, NULL, 'p'},
                                         {"qr", required_argument, NULL, 'q'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *passfile = NULL, *qr_path = NULL;
    int c;

    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'p':
            passfile = optarg;
            break;
        case 'q':
            qr_path = optarg;
            break;
        case 'h':
            fputs(recovery_usage, stdout);
            return PXC_EXIT_OK;
        default:
            fputs(recovery_usage, stderr);
            return PXC_EXIT_USAGE;
        }
    }
    if (optind + 1 != argc) {
        fputs(recovery_usage, stderr);
        return PXC_EXIT_USAGE;
    }
    const char *dir = argv[optind];
    keystore *ks;
    int exit_code = cli_open_keystore("recovery", dir, &ks);
    if (exit_code != PXC_EXIT_OK)
        return exit_code;
    if (qr_path && access(qr_path, F_OK) == 0) {
        fprintf(stderr, "pixcrypt recovery: %s already exists; it is not replaced\n", qr_path);
        keystore_close(ks);
        return PXC_EXIT_ERROR;
    }
    uint8_t *master = sodium_malloc(KS_MASTER_KEY_BYTES);
    unlock_source how = {passfile, "Passphrase: ", 0, NULL};

    exit_code = PXC_EXIT_ERROR;
    if (!master ||
        (exit_code = cli_unlock_volume(ks, "recovery", dir, &how, master)) != PXC_EXIT_OK)
        goto out;
    exit_code = recovery_code_show("recovery", dir, master, qr_path);
out:
    if (master)
        sodium_free(master);
    keystore_close(ks);
    return exit_code;
}

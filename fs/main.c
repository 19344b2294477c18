/* pixcrypt: an encrypting FUSE filesystem for photo and medical-image folders. */
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "codec/opaque.h"
#include "fs/cli.h"

#define PXC_VERSION "0.1.0"

static const char usage[] =
    "usage: pixcrypt COMMAND [OPTIONS] ARGS\n"
    "\n"
    "commands:\n"
    "  init    [--kdf interactive|moderate|sensitive] [--plaintext-names] [--passfile FILE]\n"
    "          [--print-recovery-code [--qr FILE.png]] CIPHERDIR\n"
    "  mount   [-f] [-d] [-o ro,allow_other,...] [--passfile FILE | --recovery-code [FILE]]\n"
    "          CIPHERDIR MOUNTPOINT\n"
    "  passwd  [--kdf LEVEL] [--passfile OLD | --recovery-code [FILE]] [--new-passfile NEW]\n"
    "          CIPHERDIR\n"
    "  fsck    [--passfile FILE] [--repair] [--move-damaged] [--accept-rollback]\n"
    "          [--rebuild-keystore] [-q] CIPHERDIR\n"
    "  encrypt --volume CIPHERDIR [--passfile FILE] [-r] [-f] [-j N] [-q] [-v]\n"
    "          [--profile default|chaos] (SOURCE... DEST | --in-place PATH...)\n"
    "  decrypt --volume CIPHERDIR [--passfile FILE] [-r] [-f] [-j N] [-q] [-v]\n"
    "          (SOURCE... DEST | --in-place PATH...)\n"
    "  analyze [--profile default|chaos|all] [--json FILE] [--report FILE.html] IMAGE|DIR...\n"
    "  encrypt-name [--passfile FILE] CIPHERDIR PLAIN-PATH...\n"
    "  decrypt-name [--passfile FILE] CIPHERDIR STORED-PATH...\n"
    "  recovery [--passfile FILE] [--qr FILE.png] CIPHERDIR\n"
    "  stats   [--passfile FILE] [--no-unlock] [--quick] CIPHERDIR\n"
    "  stego   hide [--passfile FILE] [--kdf LEVEL] COVER.png MESSAGE OUT.png |\n"
    "          reveal [--passfile FILE] STEGO.png [OUT] | capacity COVER.png\n"
    "\n"
    "Unmount with: fusermount3 -u MOUNTPOINT\n"
    "Exit codes: 0 ok, 1 error, 2 usage, 3 wrong passphrase, 4 already mounted,\n"
    "            5 not a volume (keystore missing or corrupt), 6 mount failed,\n"
    "            7 fsck: problems left, 8 fsck: problems found and all repaired;\n"
    "            3 also for a mistyped recovery code, and no stego message for a passphrase\n";

int main(int argc, char **argv)
{
    if (argc < 2) {
        fputs(usage, stderr);
        return PXC_EXIT_USAGE;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "help") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
        fputs(usage, stdout);
        return PXC_EXIT_OK;
    }
    if (strcmp(cmd, "--version") == 0 || strcmp(cmd, "version") == 0) {
        printf("pixcrypt %s (storage format %d)\n", PXC_VERSION, PXC_FORMAT_VERSION);
        return PXC_EXIT_OK;
    }
    if (sodium_init() < 0) {
        fputs("pixcrypt: cannot initialise libsodium\n", stderr);
        return PXC_EXIT_ERROR;
    }
    /* Subcommands parse argv[1..]: their argv[0] is the command name. */
    if (strcmp(cmd, "init") == 0)
        return cmd_init(argc - 1, argv + 1);
    if (strcmp(cmd, "mount") == 0)
        return cmd_mount(argc - 1, argv + 1);
    if (strcmp(cmd, "passwd") == 0)
        return cmd_passwd(argc - 1, argv + 1);
    if (strcmp(cmd, "fsck") == 0)
        return cmd_fsck(argc - 1, argv + 1);
    if (strcmp(cmd, "encrypt") == 0)
        return cmd_encrypt(argc - 1, argv + 1);
    if (strcmp(cmd, "decrypt") == 0)
        return cmd_decrypt(argc - 1, argv + 1);
    if (strcmp(cmd, "analyze") == 0)
        return cmd_analyze(argc - 1, argv + 1);
    if (strcmp(cmd, "encrypt-name") == 0)
        return cmd_encrypt_name(argc - 1, argv + 1);
    if (strcmp(cmd, "decrypt-name") == 0)
        return cmd_decrypt_name(argc - 1, argv + 1);
    if (strcmp(cmd, "recovery") == 0)
        return cmd_recovery(argc - 1, argv + 1);
    if (strcmp(cmd, "stego") == 0)
        return cmd_stego(argc - 1, argv + 1);
    if (strcmp(cmd, "stats") == 0)
        return cmd_stats(argc - 1, argv + 1);
    fprintf(stderr, "pixcrypt: unknown command '%s'\n%s", cmd, usage);
    return PXC_EXIT_USAGE;
}

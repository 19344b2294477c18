/* The pixcrypt command line: subcommands and their exit codes (documented in the README
 * and the man page; scripts rely on them). */
#ifndef PXC_FS_CLI_H
#define PXC_FS_CLI_H

#include "keystore/keystore.h"

enum pxc_exit {
    PXC_EXIT_OK = 0,
    PXC_EXIT_ERROR = 1,         /* anything not listed below */
    PXC_EXIT_USAGE = 2,         /* bad command line */
    PXC_EXIT_PASSPHRASE = 3,    /* wrong passphrase */
    PXC_EXIT_LOCKED = 4,        /* the volume is already mounted */
    PXC_EXIT_NOT_A_VOLUME = 5,  /* keystore missing, corrupt or of an unknown version */
    PXC_EXIT_MOUNT = 6,         /* the mount itself failed */
    PXC_EXIT_FSCK_PROBLEMS = 7, /* fsck found problems and left some of them */
    PXC_EXIT_FSCK_REPAIRED = 8, /* fsck found problems and repaired all of them */
};

int cmd_init(int argc, char **argv);
int cmd_passwd(int argc, char **argv);
int cmd_mount(int argc, char **argv);
int cmd_fsck(int argc, char **argv);
int cmd_encrypt(int argc, char **argv);
int cmd_decrypt(int argc, char **argv);
int cmd_analyze(int argc, char **argv);
int cmd_encrypt_name(int argc, char **argv);
int cmd_decrypt_name(int argc, char **argv);
int cmd_recovery(int argc, char **argv);
int cmd_stego(int argc, char **argv);
int cmd_stats(int argc, char **argv);

/* Prints the recovery code of a master key on stdout (a warning on stderr) and, if qr_path
 * is not NULL, writes it as a QR code PNG there.  Returns an exit code. */
int recovery_code_show(const char *cmd, const char *dir, const uint8_t master[KS_MASTER_KEY_BYTES],
                       const char *qr_path);
/* Reads a recovery code (first line of codefile, else a prompt or standard input) and
 * checks it against the volume: PXC_EXIT_OK with the master key, or the exit code after
 * saying what is wrong (the mistyped group, or a code of another volume). */
int recovery_code_unlock(keystore *ks, const char *cmd, const char *dir, const char *codefile,
                         uint8_t master[KS_MASTER_KEY_BYTES]);

/* Exit code for a keystore status. */
int exit_for_keystore(int status);
/* "pixcrypt CMD: DIR: reason" on stderr for a keystore that does not open; when the
 * masterkey file survives, the reason says how to rebuild the keystore from it. */
void report_keystore_error(const char *cmd, const char *dir, int status);
/* Opens dir's keystore: PXC_EXIT_OK, or the exit code after saying why. */
int cli_open_keystore(const char *cmd, const char *dir, keystore **ks);

/* How a command proves the volume: the passphrase (from passfile, else asked with
 * prompt) or, with use_code, the recovery code (from codefile, else asked). */
typedef struct unlock_source {
    const char *passfile;
    const char *prompt;
    int use_code;
    const char *codefile;
} unlock_source;
/* Unlocks the volume into master: PXC_EXIT_OK, or the exit code after saying why. */
int cli_unlock_volume(keystore *ks, const char *cmd, const char *dir, const unlock_source *src,
                      uint8_t master[KS_MASTER_KEY_BYTES]);

/* Parses interactive|moderate|sensitive; -1 if unknown. */
int parse_kdf_level(const char *s);

#endif

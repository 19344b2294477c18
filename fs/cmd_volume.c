/* `pixcrypt init` and `pixcrypt passwd`: creating a volume and changing its passphrase. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fs/cli.h"
#include "fs/namepath.h"
#include "fs/passphrase.h"

int exit_for_keystore(int status)
{
    switch (status) {
    case KS_OK:
        return PXC_EXIT_OK;
    case KS_ERR_PASSPHRASE:
    case KS_ERR_WRONG_KEY:
        return PXC_EXIT_PASSPHRASE;
    case KS_ERR_MISSING:
    case KS_ERR_CORRUPT:
    case KS_ERR_VERSION:
        return PXC_EXIT_NOT_A_VOLUME;
    default:
        return PXC_EXIT_ERROR;
    }
}

void report_keystore_error(const char *cmd, const char *dir, int status)
{
    char mk[4096];
    struct stat sb;
    int rebuildable =
        (status == KS_ERR_MISSING || status == KS_ERR_CORRUPT) &&
        snprintf(mk, sizeof mk, "%s/" KS_DIR "/" KS_MASTERKEY_FILE, dir) < (int)sizeof mk &&
        stat(mk, &sb) == 0 && S_ISREG(sb.st_mode);

    if (!rebuildable) {
        fprintf(stderr, "pixcrypt %s: %s: %s\n", cmd, dir, keystore_strerror(status));
        return;
    }
    fprintf(stderr,
            "pixcrypt %s: %s: the keystore (.pixcrypt/" KS_DB_NAME ") is %s, but the volume "
            "key survives in .pixcrypt/" KS_MASTERKEY_FILE
            ": run `pixcrypt fsck --rebuild-keystore %s`\n",
            cmd, dir, status == KS_ERR_MISSING ? "missing" : "corrupt", dir);
}

int cli_open_keystore(const char *cmd, const char *dir, keystore **ks)
{
    int rc = keystore_open(ks, dir);
    if (rc == KS_OK)
        return PXC_EXIT_OK;
    report_keystore_error(cmd, dir, rc);
    return exit_for_keystore(rc);
}

int cli_unlock_volume(keystore *ks, const char *cmd, const char *dir, const unlock_source *src,
                      uint8_t master[KS_MASTER_KEY_BYTES])
{
    char *pass;
    size_t len;

    if (src->use_code)
        return recovery_code_unlock(ks, cmd, dir, src->codefile, master);
    if (passphrase_read(src->passfile, src->prompt, 0, &pass, &len) != 0)
        return PXC_EXIT_ERROR;
    int rc = keystore_unlock(ks, pass, len, master);
    passphrase_free(pass);
    if (rc != KS_OK) {
        fprintf(stderr, "pixcrypt %s: %s: %s\n", cmd, dir, keystore_strerror(rc));
        return exit_for_keystore(rc);
    }
    return PXC_EXIT_OK;
}

int parse_kdf_level(const char *s)
{
    if (strcmp(s, "interactive") == 0)
        return KS_KDF_INTERACTIVE;
    if (strcmp(s, "moderate") == 0)
        return KS_KDF_MODERATE;
    if (strcmp(s, "sensitive") == 0)
        return KS_KDF_SENSITIVE;
    return -1;
}

/* A yes/no question on the terminal; anything but y or yes is no. */
static int ask_yes_no(const char *question)
{
    char answer[16];
    fputs(question, stderr);
    fflush(stderr);
    if (!fgets(answer, sizeof answer, stdin))
        return 0;
    answer[strcspn(answer, "\r\n")] = '\0';
    return strcasecmp(answer, "y") == 0 || strcasecmp(answer, "yes") == 0;
}

static const char init_usage[] =
    "usage: pixcrypt init [--kdf interactive|moderate|sensitive] [--profile default|chaos]\n"
    "                     [--plaintext-names] [--passfile FILE]\n"
    "                     [--print-recovery-code [--qr FILE.png]] CIPHERDIR\n"
    "  --plaintext-names: store file names, symlink targets and directory names as they\n"
    "                   are (new volumes encrypt them)\n"
    "  --print-recovery-code: print the recovery code (without asking, as a terminal would)\n"
    "  --qr FILE.png: with it, also write the code as a QR code\n"
    "  --profile chaos: the logistic/Henon research cipher for PNG pixels, for comparison\n"
    "                   only; it is not secure and mount refuses it without\n"
    "                   --allow-weak-profile\n";

int cmd_init(int argc, char **argv)
{
    static const struct option opts[] = {{"kdf", required_argument, NULL, 'k'},
                                         {"passfile", required_argument, NULL, 'p'},
                                         {"profile", required_argument, NULL, 'P'},
                                         {"plaintext-names", no_argument, NULL, 'N'},
                                         {"print-recovery-code", no_argument, NULL, 'R'},
                                         {"qr", required_argument, NULL, 'q'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *passfile = NULL, *qr_path = NULL;
    int level = KS_KDF_MODERATE, profile = KS_PROFILE_DEFAULT, names = KS_NAMES_ENCRYPTED;
    int print_code = 0, c;

    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'k':
            level = parse_kdf_level(optarg);
            if (level < 0) {
                fprintf(stderr, "pixcrypt init: unknown --kdf level '%s'\n%s", optarg, init_usage);
                return PXC_EXIT_USAGE;
            }
            break;
        case 'p':
            passfile = optarg;
            break;
        case 'P':
            if (strcmp(optarg, "default") == 0) {
                profile = KS_PROFILE_DEFAULT;
            } else if (strcmp(optarg, "chaos") == 0) {
                profile = KS_PROFILE_CHAOS;
            } else {
                fprintf(stderr, "pixcrypt init: unknown --profile '%s'\n%s", optarg, init_usage);
                return PXC_EXIT_USAGE;
            }
            break;
        case 'N':
            names = KS_NAMES_PLAIN;
            break;
        case 'R':
            print_code = 1;
            break;
        case 'q':
            qr_path = optarg;
            break;
        case 'h':
            fputs(init_usage, stdout);
            return PXC_EXIT_OK;
        default:
            fputs(init_usage, stderr);
            return PXC_EXIT_USAGE;
        }
    }
    if (optind + 1 != argc) {
        fputs(init_usage, stderr);
        return PXC_EXIT_USAGE;
    }
    if (qr_path && !print_code) {
        fputs("pixcrypt init: --qr goes with --print-recovery-code\n", stderr);
        return PXC_EXIT_USAGE;
    }
    const char *dir = argv[optind];
    char *pass;
    size_t len;
    uint8_t *master = sodium_malloc(KS_MASTER_KEY_BYTES);
    if (!master || passphrase_read(passfile, "New passphrase: ", 1, &pass, &len) != 0) {
        if (master)
            sodium_free(master);
        return PXC_EXIT_ERROR;
    }
    int rc = keystore_create_names(dir, pass, len, level, profile, names, master);
    passphrase_free(pass);
    if (rc == KS_OK && names == KS_NAMES_ENCRYPTED) {
        /* The root directory's name IV (fs/namepath.h). */
        int fd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
        int ivrc = fd < 0 ? -errno : names_dir_create_iv(fd);
        if (fd >= 0)
            close(fd);
        if (ivrc != 0 && ivrc != -EEXIST) {
            sodium_free(master);
            fprintf(stderr, "pixcrypt init: %s/" DIRIV_FILE ": %s\n", dir, strerror(-ivrc));
            return PXC_EXIT_ERROR;
        }
    }
    if (rc != KS_OK) {
        sodium_free(master);
        fprintf(stderr, "pixcrypt init: %s: %s\n", dir, keystore_strerror(rc));
        return PXC_EXIT_ERROR;
    }
    printf("Created a pixcrypt volume in %s.\nMount it with: pixcrypt mount %s%s MOUNTPOINT\n", dir,
           profile == KS_PROFILE_CHAOS ? "--allow-weak-profile " : "", dir);
    if (profile == KS_PROFILE_CHAOS)
        printf("Its PNG pixels use the chaos research profile, which is NOT secure.\n");
    fflush(stdout);
    if (!print_code && isatty(STDIN_FILENO) && isatty(STDOUT_FILENO))
        print_code = ask_yes_no("Print a recovery code now? It unlocks the volume without the "
                                "passphrase (later: pixcrypt recovery). [y/N] ");
    int exit_code = print_code ? recovery_code_show("init", dir, master, qr_path) : PXC_EXIT_OK;
    sodium_free(master);
    return exit_code;
}

static const char passwd_usage[] =
    "usage: pixcrypt passwd [--kdf LEVEL] [--passfile OLD | --recovery-code [FILE]]\n"
    "                       [--new-passfile NEW] CIPHERDIR\n"
    "  --recovery-code [FILE]  prove the volume with its recovery code (from FILE, or\n"
    "                          asked for) instead of the current passphrase\n";

int cmd_passwd(int argc, char **argv)
{
    static const struct option opts[] = {{"kdf", required_argument, NULL, 'k'},
                                         {"passfile", required_argument, NULL, 'p'},
                                         {"new-passfile", required_argument, NULL, 'n'},
                                         {"recovery-code", optional_argument, NULL, 'R'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *passfile = NULL, *new_passfile = NULL, *codefile = NULL;
    int level = KS_KDF_MODERATE, use_code = 0, c;

    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'k':
            level = parse_kdf_level(optarg);
            if (level < 0) {
                fprintf(stderr, "pixcrypt passwd: unknown --kdf level '%s'\n%s", optarg,
                        passwd_usage);
                return PXC_EXIT_USAGE;
            }
            break;
        case 'p':
            passfile = optarg;
            break;
        case 'n':
            new_passfile = optarg;
            break;
        case 'R':
            use_code = 1;
            codefile = optarg;
            break;
        case 'h':
            fputs(passwd_usage, stdout);
            return PXC_EXIT_OK;
        default:
            fputs(passwd_usage, stderr);
            return PXC_EXIT_USAGE;
        }
    }
    if (use_code && !codefile && optind + 2 == argc)
        codefile = argv[optind++];
    if (optind + 1 != argc || (use_code && passfile)) {
        fputs(passwd_usage, stderr);
        return PXC_EXIT_USAGE;
    }
    const char *dir = argv[optind];
    keystore *ks;
    int exit_code = cli_open_keystore("passwd", dir, &ks);
    if (exit_code != PXC_EXIT_OK)
        return exit_code;
    char *fresh = NULL;
    size_t freshlen;
    uint8_t *master = sodium_malloc(KS_MASTER_KEY_BYTES);
    unlock_source how = {passfile, "Current passphrase: ", use_code, codefile};

    exit_code = PXC_EXIT_ERROR;
    if (!master || (exit_code = cli_unlock_volume(ks, "passwd", dir, &how, master)) != PXC_EXIT_OK)
        goto out;
    exit_code = PXC_EXIT_ERROR;
    if (passphrase_read(new_passfile, "New passphrase: ", 1, &fresh, &freshlen) != 0)
        goto out;
    int rc = keystore_rewrap(ks, master, fresh, freshlen, level);
    if (rc != KS_OK) {
        fprintf(stderr, "pixcrypt passwd: %s: %s\n", dir, keystore_strerror(rc));
        exit_code = exit_for_keystore(rc);
        goto out;
    }
    printf("Passphrase changed for %s.\n", dir);
    exit_code = PXC_EXIT_OK;
out:
    passphrase_free(fresh);
    if (master)
        sodium_free(master);
    keystore_close(ks);
    return exit_code;
}

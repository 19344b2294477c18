/* `pixcrypt init` and `pixcrypt passwd`: creating a volume and changing its passphrase. */
#include <errno.h>
#include <getopt.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include <fcntl.h>
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

static const char init_usage[] =
    "usage: pixcrypt init [--kdf interactive|moderate|sensitive] [--profile default|chaos]\n"
    "                     [--plaintext-names] [--passfile FILE] CIPHERDIR\n"
    "  --plaintext-names: store file names, symlink targets and directory names as they\n"
    "                   are (new volumes encrypt them)\n"
    "  --profile chaos: the logistic/Henon research cipher for PNG pixels, for comparison\n"
    "                   only; it is not secure and mount refuses it without\n"
    "                   --allow-weak-profile\n";

int cmd_init(int argc, char **argv)
{
    static const struct option opts[] = {
        {"kdf", required_argument, NULL, 'k'},     {"passfile", required_argument, NULL, 'p'},
        {"profile", required_argument, NULL, 'P'}, {"plaintext-names", no_argument, NULL, 'N'},
        {"help", no_argument, NULL, 'h'},          {NULL, 0, NULL, 0}};
    const char *passfile = NULL;
    int level = KS_KDF_MODERATE, profile = KS_PROFILE_DEFAULT, names = KS_NAMES_ENCRYPTED, c;

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
    const char *dir = argv[optind];
    char *pass;
    size_t len;
    if (passphrase_read(passfile, "New passphrase: ", 1, &pass, &len) != 0)
        return PXC_EXIT_ERROR;
    int rc = keystore_create_names(dir, pass, len, level, profile, names, NULL);
    passphrase_free(pass);
    if (rc == KS_OK && names == KS_NAMES_ENCRYPTED) {
        /* The root directory's name IV (fs/namepath.h). */
        int fd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
        int ivrc = fd < 0 ? -errno : names_dir_create_iv(fd);
        if (fd >= 0)
            close(fd);
        if (ivrc != 0 && ivrc != -EEXIST) {
            fprintf(stderr, "pixcrypt init: %s/" DIRIV_FILE ": %s\n", dir, strerror(-ivrc));
            return PXC_EXIT_ERROR;
        }
    }
    if (rc != KS_OK) {
        fprintf(stderr, "pixcrypt init: %s: %s\n", dir, keystore_strerror(rc));
        return PXC_EXIT_ERROR;
    }
    printf("Created a pixcrypt volume in %s.\nMount it with: pixcrypt mount %s%s MOUNTPOINT\n", dir,
           profile == KS_PROFILE_CHAOS ? "--allow-weak-profile " : "", dir);
    if (profile == KS_PROFILE_CHAOS)
        printf("Its PNG pixels use the chaos research profile, which is NOT secure.\n");
    return PXC_EXIT_OK;
}

static const char passwd_usage[] =
    "usage: pixcrypt passwd [--kdf LEVEL] [--passfile OLD] [--new-passfile NEW] CIPHERDIR\n";

int cmd_passwd(int argc, char **argv)
{
    static const struct option opts[] = {{"kdf", required_argument, NULL, 'k'},
                                         {"passfile", required_argument, NULL, 'p'},
                                         {"new-passfile", required_argument, NULL, 'n'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *passfile = NULL, *new_passfile = NULL;
    int level = KS_KDF_MODERATE, c;

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
        case 'h':
            fputs(passwd_usage, stdout);
            return PXC_EXIT_OK;
        default:
            fputs(passwd_usage, stderr);
            return PXC_EXIT_USAGE;
        }
    }
    if (optind + 1 != argc) {
        fputs(passwd_usage, stderr);
        return PXC_EXIT_USAGE;
    }
    const char *dir = argv[optind];
    keystore *ks;
    int rc = keystore_open(&ks, dir);
    if (rc != KS_OK) {
        report_keystore_error("passwd", dir, rc);
        return exit_for_keystore(rc);
    }
    char *old = NULL, *fresh = NULL;
    size_t oldlen, freshlen;
    uint8_t *master = sodium_malloc(KS_MASTER_KEY_BYTES);
    int exit_code = PXC_EXIT_ERROR;

    if (!master || passphrase_read(passfile, "Current passphrase: ", 0, &old, &oldlen) != 0)
        goto out;
    rc = keystore_unlock(ks, old, oldlen, master);
    if (rc != KS_OK) {
        fprintf(stderr, "pixcrypt passwd: %s: %s\n", dir, keystore_strerror(rc));
        exit_code = exit_for_keystore(rc);
        goto out;
    }
    if (passphrase_read(new_passfile, "New passphrase: ", 1, &fresh, &freshlen) != 0)
        goto out;
    rc = keystore_rewrap(ks, master, fresh, freshlen, level);
    if (rc != KS_OK) {
        fprintf(stderr, "pixcrypt passwd: %s: %s\n", dir, keystore_strerror(rc));
        exit_code = exit_for_keystore(rc);
        goto out;
    }
    printf("Passphrase changed for %s.\n", dir);
    exit_code = PXC_EXIT_OK;
out:
    passphrase_free(old);
    passphrase_free(fresh);
    if (master)
        sodium_free(master);
    keystore_close(ks);
    return exit_code;
}

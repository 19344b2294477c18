/* `pixcrypt encrypt` and `pixcrypt decrypt`: files and trees in and out of their stored
 * form without mounting (fs/offline.h), with a volume's keys.  Both take the volume
 * lock, as mount and fsck do, so that they never race a mounted daemon over the
 * volume's files and keystore rows. */
#include <errno.h>
#include <getopt.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "codec/opaque.h"
#include "fs/cli.h"
#include "fs/offline.h"
#include "fs/passphrase.h"
#include "fs/progress.h"
#include "fs/volume_lock.h"

static const char encrypt_usage[] =
    "usage: pixcrypt encrypt --volume CIPHERDIR [OPTIONS] SOURCE... DEST\n"
    "       pixcrypt encrypt --volume CIPHERDIR [OPTIONS] --in-place PATH...\n"
    "Writes each file in the stored form the volume's filesystem uses (PNG and JPEG\n"
    "as images of noise, everything else opaque).  Outputs inside CIPHERDIR get their\n"
    "keystore rows, so the tree mounts as if copied in through the mount.\n";
static const char decrypt_usage[] =
    "usage: pixcrypt decrypt --volume CIPHERDIR [OPTIONS] SOURCE... DEST\n"
    "       pixcrypt decrypt --volume CIPHERDIR [OPTIONS] --in-place PATH...\n"
    "Writes the exact plaintext of each stored file of the volume (for instance one\n"
    "copied out of CIPHERDIR, or CIPHERDIR's own tree with -r).\n";
static const char common_usage[] =
    "  --volume DIR        the volume whose keys are used (required)\n"
    "  --passfile FILE     read the passphrase from FILE's first line\n"
    "  -r, --recursive     descend into directories\n"
    "  -f, --force         replace existing outputs (never an input)\n"
    "  --in-place          replace each input by its output\n"
    "  -j, --jobs N        files processed at once (default: number of CPUs)\n"
    "  -q, --quiet         no progress bar and no summary\n"
    "  -v, --verbose       a line per file\n";
static const char profile_usage[] =
    "  --profile default|chaos  cipher of new PNGs (default: the volume's profile)\n"
    "  --allow-weak-profile     accept the chaos research profile (not secure)\n";
static const char exit_usage[] =
    "Exit codes: 0 all done, 1 some file failed (each named), 2 usage, 3 wrong passphrase,\n"
    "            4 the volume is mounted, 5 not a volume\n";

static void print_usage(FILE *f, int direction)
{
    fputs(direction == OFFLINE_ENCRYPT ? encrypt_usage : decrypt_usage, f);
    fputs(common_usage, f);
    if (direction == OFFLINE_ENCRYPT)
        fputs(profile_usage, f);
    fputs(exit_usage, f);
}

typedef struct offline_cli {
    offline_options o;
    const char *volume, *passfile;
    int profile; /* KS_PROFILE_*, or -1: the volume's */
    int allow_weak, quiet;
} offline_cli;

/* 0, or an exit code after printing why. */
static int parse(int argc, char **argv, offline_cli *c)
{
    static const struct option opts[] = {
        {"volume", required_argument, NULL, 'V'},  {"passfile", required_argument, NULL, 'p'},
        {"recursive", no_argument, NULL, 'r'},     {"force", no_argument, NULL, 'f'},
        {"in-place", no_argument, NULL, 'I'},      {"jobs", required_argument, NULL, 'j'},
        {"quiet", no_argument, NULL, 'q'},         {"verbose", no_argument, NULL, 'v'},
        {"profile", required_argument, NULL, 'P'}, {"allow-weak-profile", no_argument, NULL, 'W'},
        {"help", no_argument, NULL, 'h'},          {NULL, 0, NULL, 0}};
    const char *cmd = argv[0];
    int dir = c->o.direction, ch;
    char *end;
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    c->o.jobs = cpus > 0 ? (int)cpus : 1;
    c->profile = -1;
    while ((ch = getopt_long(argc, argv, "rfj:qvh", opts, NULL)) != -1) {
        switch (ch) {
        case 'V':
            c->volume = optarg;
            break;
        case 'p':
            c->passfile = optarg;
            break;
        case 'r':
            c->o.recursive = 1;
            break;
        case 'f':
            c->o.force = 1;
            break;
        case 'I':
            c->o.in_place = 1;
            break;
        case 'j':
            errno = 0;
            long j = strtol(optarg, &end, 10);
            if (errno || *end || j < 1 || j > 256) {
                fprintf(stderr, "pixcrypt %s: --jobs %s: use 1 to 256\n", cmd, optarg);
                return PXC_EXIT_USAGE;
            }
            c->o.jobs = (int)j;
            break;
        case 'q':
            c->quiet = 1;
            break;
        case 'v':
            c->o.verbose = 1;
            break;
        case 'P':
            if (dir == OFFLINE_ENCRYPT && strcmp(optarg, "default") == 0) {
                c->profile = KS_PROFILE_DEFAULT;
            } else if (dir == OFFLINE_ENCRYPT && strcmp(optarg, "chaos") == 0) {
                c->profile = KS_PROFILE_CHAOS;
            } else {
                fprintf(stderr, "pixcrypt %s: unknown --profile '%s'\n", cmd, optarg);
                return PXC_EXIT_USAGE;
            }
            break;
        case 'W':
            c->allow_weak = 1;
            break;
        case 'h':
            print_usage(stdout, dir);
            return -1;
        default:
            print_usage(stderr, dir);
            return PXC_EXIT_USAGE;
        }
    }
    int need = c->o.in_place ? 1 : 2;
    if (!c->volume || argc - optind < need) {
        if (!c->volume)
            fprintf(stderr, "pixcrypt %s: --volume CIPHERDIR is required\n", cmd);
        print_usage(stderr, dir);
        return PXC_EXIT_USAGE;
    }
    if (c->o.in_place && c->o.force) {
        fprintf(stderr, "pixcrypt %s: --in-place and --force do not go together\n", cmd);
        return PXC_EXIT_USAGE;
    }
    c->o.progress = !c->quiet;
    return 0;
}

/* Opens the volume: keystore, lock, passphrase, keys.  0, or an exit code. */
static int open_volume(const char *cmd, const offline_cli *c, int *profile, keystore **ks,
                       int *lock_fd, pxc_keys **keys)
{
    ks_volume_info info = {0};
    char *pass = NULL;
    size_t passlen;
    int rc = keystore_open(ks, c->volume);
    if (rc != KS_OK) {
        report_keystore_error(cmd, c->volume, rc);
        return exit_for_keystore(rc);
    }
    if (keystore_volume_info(*ks, &info) != KS_OK) {
        fprintf(stderr, "pixcrypt %s: %s: cannot read the volume settings\n", cmd, c->volume);
        return PXC_EXIT_NOT_A_VOLUME;
    }
    *profile = c->profile >= 0 ? c->profile : info.profile;
    /* As mount: the chaos research profile is no CSPRNG (pixcrypt(1), PROFILES). */
    if (*profile == KS_PROFILE_CHAOS && !c->allow_weak && !strcmp(cmd, "encrypt")) {
        fprintf(stderr,
                "pixcrypt %s: the chaos research profile is not secure; use it only for "
                "experiments, with --allow-weak-profile\n",
                cmd);
        return PXC_EXIT_USAGE;
    }
    *lock_fd = volume_lock_take(c->volume, cmd);
    if (*lock_fd == VOLUME_LOCK_BUSY)
        return PXC_EXIT_LOCKED;
    if (*lock_fd == VOLUME_LOCK_ERROR)
        return PXC_EXIT_ERROR;
    volume_lock_record_pid(*lock_fd);
    uint8_t *master = sodium_malloc(KS_MASTER_KEY_BYTES);
    if (!master || passphrase_read(c->passfile, "Passphrase: ", 0, &pass, &passlen) != 0) {
        if (master)
            sodium_free(master);
        return PXC_EXIT_ERROR;
    }
    rc = keystore_unlock(*ks, pass, passlen, master);
    passphrase_free(pass);
    if (rc != KS_OK) {
        sodium_free(master);
        fprintf(stderr, "pixcrypt %s: %s: %s\n", cmd, c->volume, keystore_strerror(rc));
        return exit_for_keystore(rc);
    }
    *keys = pxc_keys_new(master);
    rc = keystore_places_key(*ks, master);
    sodium_free(master);
    if (rc != KS_OK) {
        fprintf(stderr, "pixcrypt %s: %s: %s\n", cmd, c->volume, keystore_strerror(rc));
        return exit_for_keystore(rc);
    }
    if (!*keys) {
        fprintf(stderr, "pixcrypt %s: out of memory\n", cmd);
        return PXC_EXIT_ERROR;
    }
    (*keys)->profile = *profile == KS_PROFILE_CHAOS ? PXC_PROFILE_CHAOS : PXC_PROFILE_DEFAULT;
    return 0;
}

static void print_summary(const char *cmd, int direction, const offline_summary *s)
{
    char bytes[16], rate[16];
    double secs = s->seconds > 0 ? s->seconds : 1e-9;
    printf("pixcrypt %s: %zu files (%s) in %.2f s, %s/s", cmd, s->files,
           progress_format_bytes(bytes, sizeof bytes, (double)s->bytes), s->seconds,
           progress_format_bytes(rate, sizeof rate, (double)s->bytes / secs));
    if (direction == OFFLINE_ENCRYPT)
        printf(": %zu png, %zu jpeg, %zu opaque", s->kinds[PXC_KIND_PNG], s->kinds[PXC_KIND_JPEG],
               s->kinds[PXC_KIND_OPAQUE]);
    if (s->dirs || s->symlinks)
        printf("; %zu directories, %zu symlinks", s->dirs, s->symlinks);
    if (s->skipped)
        printf("; %zu skipped", s->skipped);
    if (s->failed)
        printf("; %zu FAILED", s->failed);
    printf("\n");
}

static int cmd_offline(int argc, char **argv, int direction)
{
    offline_cli c;
    memset(&c, 0, sizeof c);
    c.o.direction = direction;
    int exit_code = parse(argc, argv, &c);
    if (exit_code != 0)
        return exit_code < 0 ? PXC_EXIT_OK : exit_code;

    const char *cmd = argv[0];
    char *cipherdir = realpath(c.volume, NULL);
    keystore *ks = NULL;
    pxc_keys *keys = NULL;
    int lock_fd = -1, profile;
    if (!cipherdir) {
        fprintf(stderr, "pixcrypt %s: %s: %s\n", cmd, c.volume, strerror(errno));
        return PXC_EXIT_NOT_A_VOLUME;
    }
    c.volume = cipherdir;
    exit_code = open_volume(cmd, &c, &profile, &ks, &lock_fd, &keys);
    if (exit_code == 0) {
        ks_volume_info info = {0};
        pxc_names names = {0};
        if (keystore_volume_info(ks, &info) != KS_OK ||
            names_init(&names, keys->master, info.names == KS_NAMES_ENCRYPTED) != 0) {
            fprintf(stderr, "pixcrypt %s: %s: cannot read the volume settings\n", cmd, cipherdir);
            exit_code = PXC_EXIT_ERROR;
            goto out;
        }
        offline_volume v = {cipherdir, keys, ks, &names};
        offline_summary sum;
        size_t n = (size_t)(argc - optind) - (c.o.in_place ? 0 : 1);
        const char *dest = c.o.in_place ? NULL : argv[argc - 1];
        int rc = offline_run(&c.o, &v, argv + optind, n, dest, &sum);
        if (rc != 2 && !c.quiet)
            print_summary(cmd, direction, &sum);
        exit_code = rc == 2 ? PXC_EXIT_USAGE : rc ? PXC_EXIT_ERROR : PXC_EXIT_OK;
        names_free(&names);
    }
out:
    fflush(stdout);
    pxc_keys_free(keys);
    keystore_close(ks);
    if (lock_fd >= 0)
        close(lock_fd);
    free(cipherdir);
    return exit_code;
}

int cmd_encrypt(int argc, char **argv)
{
    return cmd_offline(argc, argv, OFFLINE_ENCRYPT);
}

int cmd_decrypt(int argc, char **argv)
{
    return cmd_offline(argc, argv, OFFLINE_DECRYPT);
}

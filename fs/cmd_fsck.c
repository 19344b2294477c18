/* `pixcrypt fsck`: check a volume offline, repair it, or rebuild its keystore (the
 * checks themselves are in fs/fsck.c).  Takes the volume lock, so never runs while the
 * volume is mounted. */
#include <getopt.h>
#include <limits.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fs/cli.h"
#include "fs/fsck.h"
#include "fs/passphrase.h"
#include "fs/volume_lock.h"

static const char fsck_usage[] =
    "usage: pixcrypt fsck [--passfile FILE] [--repair] [--move-damaged] [--accept-rollback]\n"
    "                     [--accept-moved] [--rebuild-keystore] [-q] CIPHERDIR\n"
    "  --repair            add missing keystore rows, drop rows without files, update rows\n"
    "                      that lag behind their files, remove temp files left by\n"
    "                      interrupted conversions, cut torn tails of interrupted writes,\n"
    "                      drop places without files, record places not yet recorded\n"
    "  --move-damaged      move files that fail authentication to .pixcrypt/damaged/\n"
    "  --accept-rollback   make files older than their keystore row current again\n"
    "  --accept-moved      keep files found where they were not written (moved or swapped\n"
    "                      outside the mount) where they are\n"
    "  --rebuild-keystore  recreate .pixcrypt/keystore.db from .pixcrypt/masterkey and the\n"
    "                      stored files' headers\n"
    "  -q, --quiet         no progress bar\n"
    "Exit codes: 0 clean, 7 problems left, 8 problems found and all repaired;\n"
    "            1 error, 2 usage, 3 wrong passphrase, 4 mounted, 5 not a volume\n";

typedef struct fsck_ui {
    int bar;         /* draw a progress bar on stderr (a terminal) */
    int bar_shown;   /* a bar is on the screen now */
    double last;     /* when it was drawn */
    const char *dir; /* for report lines */
} fsck_ui;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void clear_bar(fsck_ui *ui)
{
    if (ui->bar_shown) {
        fputs("\r\033[K", stderr);
        ui->bar_shown = 0;
    }
}

static void on_progress(void *arg, size_t done, size_t total)
{
    enum { WIDTH = 30 };
    fsck_ui *ui = arg;
    double t = now();
    if (!ui->bar || (done < total && t - ui->last < 0.1))
        return;
    ui->last = t;
    int fill = total ? (int)(WIDTH * done / total) : WIDTH;
    fprintf(stderr, "\rchecking [%.*s%*s] %3d%% %zu/%zu files", fill,
            "##############################", WIDTH - fill, "",
            total ? (int)(100 * done / total) : 100, done, total);
    ui->bar_shown = 1;
}

static void on_report(void *arg, fsck_kind kind, const char *what, const char *detail,
                      const char *action)
{
    fsck_ui *ui = arg;
    clear_bar(ui);
    printf("%s: %s: %s%s%s\n", fsck_kind_name(kind), what, detail, action ? "; " : "",
           action ? action : "");
    fflush(stdout);
}

/* One line: what was checked, then what was found and done. */
static int print_summary(const char *dir, const fsck_summary *sum, int rebuild)
{
    size_t found = 0, repaired = 0;
    for (int k = 0; k < FSCK_KINDS_; k++) {
        found += sum->found[k];
        repaired += sum->repaired[k];
    }
    printf("pixcrypt fsck: %s: %zu files (%llu bytes), %lld keystore rows", dir, sum->files,
           (unsigned long long)sum->bytes, sum->rows);
    if (rebuild)
        printf(" (%zu recreated)", sum->rows_added);
    if (sum->places_unknown > 0 && !rebuild)
        printf("; %zu files' places %s", sum->places_unknown,
               sum->places_recorded == sum->places_unknown ? "recorded"
                                                           : "not yet recorded (--repair)");
    if (found == 0) {
        printf(": clean\n");
        return PXC_EXIT_OK;
    }
    const char *sep = ": ";
    for (int k = 0; k < FSCK_KINDS_; k++)
        if (sum->found[k]) {
            printf("%s%zu %s", sep, sum->found[k], fsck_kind_name((fsck_kind)k));
            sep = ", ";
        }
    printf("; %zu repaired, %zu left\n", repaired, found - repaired);
    return repaired == found ? PXC_EXIT_FSCK_REPAIRED : PXC_EXIT_FSCK_PROBLEMS;
}

static int is_dir(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISDIR(sb.st_mode);
}

/* Opens (or, rebuilding, starts anew) the keystore and takes the volume lock.  An exit
 * code other than PXC_EXIT_OK on failure (message printed). */
static int open_volume(const char *dir, int rebuild, int writes, keystore **ks, int *lock_fd)
{
    char meta[PATH_MAX];
    int rc;

    snprintf(meta, sizeof meta, "%s/" KS_DIR, dir);
    if (rebuild && !is_dir(meta)) {
        fprintf(stderr, "pixcrypt fsck: %s: %s\n", dir, keystore_strerror(KS_ERR_MISSING));
        return PXC_EXIT_NOT_A_VOLUME;
    }
    if (!rebuild && (rc = keystore_open(ks, dir)) != KS_OK) {
        report_keystore_error("fsck", dir, rc);
        return exit_for_keystore(rc);
    }
    *lock_fd = volume_lock_take(dir, "fsck");
    if (*lock_fd == VOLUME_LOCK_BUSY)
        return PXC_EXIT_LOCKED;
    if (*lock_fd == VOLUME_LOCK_ERROR)
        return PXC_EXIT_ERROR;
    if (*lock_fd == VOLUME_LOCK_READ_ONLY && writes) {
        fprintf(stderr, "pixcrypt fsck: %s cannot be written: no repair possible\n", dir);
        return PXC_EXIT_ERROR;
    }
    volume_lock_record_pid(*lock_fd);
    if (rebuild && (rc = keystore_rebuild_begin(ks, dir)) != KS_OK) {
        fprintf(stderr,
                "pixcrypt fsck: %s: cannot rebuild the keystore: %s (and no usable "
                ".pixcrypt/" KS_MASTERKEY_FILE ")\n",
                dir, keystore_strerror(rc));
        return exit_for_keystore(rc);
    }
    return PXC_EXIT_OK;
}

/* Asks for the passphrase and unseals the master key into keys. */
static int unlock(const char *dir, const char *passfile, keystore *ks, pxc_keys **keys)
{
    uint8_t *master = sodium_malloc(KS_MASTER_KEY_BYTES);
    char *pass = NULL;
    size_t passlen;
    int exit_code = PXC_EXIT_ERROR, rc;

    if (master && passphrase_read(passfile, "Passphrase: ", 0, &pass, &passlen) == 0) {
        rc = keystore_unlock(ks, pass, passlen, master);
        if (rc != KS_OK) {
            fprintf(stderr, "pixcrypt fsck: %s: %s\n", dir, keystore_strerror(rc));
            exit_code = exit_for_keystore(rc);
        } else if ((*keys = pxc_keys_new(master)) != NULL) {
            exit_code = PXC_EXIT_OK;
        }
    }
    passphrase_free(pass);
    if (master)
        sodium_free(master);
    return exit_code;
}

int cmd_fsck(int argc, char **argv)
{
    static const struct option opts[] = {{"passfile", required_argument, NULL, 'p'},
                                         {"repair", no_argument, NULL, 'r'},
                                         {"move-damaged", no_argument, NULL, 'm'},
                                         {"accept-rollback", no_argument, NULL, 'a'},
                                         {"accept-moved", no_argument, NULL, 'M'},
                                         {"rebuild-keystore", no_argument, NULL, 'b'},
                                         {"quiet", no_argument, NULL, 'q'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    fsck_options fo = {0};
    fsck_ui ui = {0};
    const char *passfile = NULL;
    int quiet = 0, c;

    while ((c = getopt_long(argc, argv, "qh", opts, NULL)) != -1) {
        switch (c) {
        case 'p':
            passfile = optarg;
            break;
        case 'r':
            fo.repair = 1;
            break;
        case 'm':
            fo.move_damaged = 1;
            break;
        case 'a':
            fo.accept_rollback = 1;
            break;
        case 'M':
            fo.accept_moved = 1;
            break;
        case 'b':
            fo.rebuild = 1;
            break;
        case 'q':
            quiet = 1;
            break;
        case 'h':
            fputs(fsck_usage, stdout);
            return PXC_EXIT_OK;
        default:
            fputs(fsck_usage, stderr);
            return PXC_EXIT_USAGE;
        }
    }
    if (optind + 1 != argc) {
        fputs(fsck_usage, stderr);
        return PXC_EXIT_USAGE;
    }
    char *dir = realpath(argv[optind], NULL);
    if (!dir) {
        fprintf(stderr, "pixcrypt fsck: %s: %s\n", argv[optind], keystore_strerror(KS_ERR_MISSING));
        return PXC_EXIT_NOT_A_VOLUME;
    }
    keystore *ks = NULL;
    pxc_keys *keys = NULL;
    fsck_summary sum;
    int lock_fd = -1;
    int writes =
        fo.repair || fo.move_damaged || fo.accept_rollback || fo.accept_moved || fo.rebuild;
    int exit_code = open_volume(dir, fo.rebuild, writes, &ks, &lock_fd);
    if (exit_code == PXC_EXIT_OK)
        exit_code = unlock(dir, passfile, ks, &keys);
    if (exit_code == PXC_EXIT_OK && !fo.rebuild && keystore_check(ks) != KS_OK) {
        fprintf(stderr,
                "pixcrypt fsck: %s: the keystore fails its consistency check: run `pixcrypt "
                "fsck --rebuild-keystore %s`\n",
                dir, dir);
        exit_code = PXC_EXIT_NOT_A_VOLUME;
    }
    if (exit_code != PXC_EXIT_OK)
        goto out;

    ui.bar = !quiet && isatty(STDERR_FILENO);
    ui.dir = dir;
    fo.report = on_report;
    fo.progress = on_progress;
    fo.arg = &ui;
    int rc = fsck_run(dir, keys, ks, &fo, &sum);
    clear_bar(&ui);
    if (rc != 0) {
        fprintf(stderr, "pixcrypt fsck: %s: cannot check the volume: %s\n", dir, strerror(-rc));
        exit_code = PXC_EXIT_ERROR;
        goto out;
    }
    if (fo.rebuild) {
        keystore *fresh = ks;
        ks = NULL;
        rc = keystore_rebuild_commit(fresh);
        if (rc != KS_OK) {
            fprintf(stderr, "pixcrypt fsck: %s: cannot install the rebuilt keystore: %s\n", dir,
                    keystore_strerror(rc));
            exit_code = PXC_EXIT_ERROR;
            goto out;
        }
        printf("keystore rebuilt from .pixcrypt/" KS_MASTERKEY_FILE
               " and the file headers (any old one kept as .pixcrypt/" KS_DB_NAME ".old)\n");
    }
    exit_code = print_summary(dir, &sum, fo.rebuild);
out:
    fflush(stdout);
    pxc_keys_free(keys);
    keystore_close(ks);
    if (lock_fd >= 0)
        close(lock_fd);
    free(dir);
    return exit_code;
}

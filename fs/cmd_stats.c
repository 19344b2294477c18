/* `pixcrypt stats`: files and bytes per storage kind, why files stayed opaque, storage
 * overhead and keystore health. */
#include <getopt.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "codec/opaque.h"
#include "fs/cli.h"
#include "fs/stats.h"

static const char stats_usage[] =
    "usage: pixcrypt stats [--passfile FILE] [--no-unlock] [--quick] CIPHERDIR\n"
    "  --no-unlock  without the passphrase: no reasons for opaque files\n"
    "  --quick      reasons without running the image encoders again\n";

static void print_overhead(uint64_t plain, uint64_t stored)
{
    if (plain == 0)
        printf("%10s\n", "-");
    else
        printf("%+9.1f%%\n", ((double)stored - (double)plain) * 100.0 / (double)plain);
}

static void print_report(const char *dir, const ks_volume_info *vi, const volume_stats *st,
                         int unlocked)
{
    static const int order[] = {PXC_KIND_PNG, PXC_KIND_JPEG, PXC_KIND_OPAQUE};
    static const char *const names[] = {"opaque", "PNG", "JPEG"};
    char created[32] = "?";
    time_t t = (time_t)vi->created;
    struct tm tm;
    stats_kind total = {0};

    if (localtime_r(&t, &tm))
        strftime(created, sizeof created, "%Y-%m-%d", &tm);
    printf("volume %s: format %d, created %s, profile %s\n\n", dir, vi->format_version, created,
           vi->profile == KS_PROFILE_CHAOS ? "chaos" : "default");
    printf("%-8s %8s %16s %16s %10s\n", "kind", "files", "plain bytes", "stored bytes", "overhead");
    for (size_t i = 0; i < sizeof order / sizeof *order; i++) {
        const stats_kind *k = &st->kind[order[i]];
        printf("%-8s %8zu %16llu %16llu ", names[order[i]], k->files,
               (unsigned long long)k->plain_bytes, (unsigned long long)k->stored_bytes);
        print_overhead(k->plain_bytes, k->stored_bytes);
        total.files += k->files;
        total.plain_bytes += k->plain_bytes;
        total.stored_bytes += k->stored_bytes;
    }
    printf("%-8s %8zu %16llu %16llu ", "total", total.files, (unsigned long long)total.plain_bytes,
           (unsigned long long)total.stored_bytes);
    print_overhead(total.plain_bytes, total.stored_bytes);
    if (st->links)
        printf("(%zu more names of hard-linked files counted once)\n", st->links);
    if (st->unrecognised)
        printf("unrecognised files: %zu (%llu bytes): not stored by pixcrypt, or damaged "
               "(pixcrypt fsck)\n",
               st->unrecognised, (unsigned long long)st->unrecognised_bytes);

    printf("\nwhy files stayed opaque:\n");
    if (!unlocked)
        printf("  (not derived without the passphrase)\n");
    else if (st->nreasons == 0 && st->unreadable == 0)
        printf("  (no opaque files)\n");
    for (size_t i = 0; i < st->nreasons; i++)
        printf("  %6zu  %s (%llu bytes)\n", st->reason[i].files, st->reason[i].text,
               (unsigned long long)st->reason[i].plain_bytes);
    if (st->unreadable)
        printf("  %6zu  unreadable (pixcrypt fsck)\n", st->unreadable);

    printf("\nkeystore: %llu bytes, integrity_check %s\n", (unsigned long long)st->keystore_bytes,
           st->integrity_ok ? "ok" : st->integrity);
    printf("  rows %lld, stored files %zu\n", st->rows, total.files);
    printf("  files without a row %zu, rows without a file %zu, rows that disagree %zu, "
           "shared file ids %zu\n",
           st->files_without_row, st->rows_without_file, st->rows_disagreeing, st->duplicate_ids);
    printf("  places %lld: %s\n", st->places,
           st->places_complete ? "every file's is recorded"
                               : "not every file's is recorded yet (pixcrypt fsck --repair)");
    int healthy = st->integrity_ok && !st->files_without_row && !st->rows_without_file &&
                  !st->rows_disagreeing && !st->duplicate_ids;
    printf("  %s\n", healthy ? "healthy" : "needs attention: run pixcrypt fsck");
}

int cmd_stats(int argc, char **argv)
{
    static const struct option opts[] = {{"passfile", required_argument, NULL, 'p'},
                                         {"no-unlock", no_argument, NULL, 'n'},
                                         {"quick", no_argument, NULL, 'q'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *passfile = NULL;
    int unlock = 1, quick = 0, c;

    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'p':
            passfile = optarg;
            break;
        case 'n':
            unlock = 0;
            break;
        case 'q':
            quick = 1;
            break;
        case 'h':
            fputs(stats_usage, stdout);
            return PXC_EXIT_OK;
        default:
            fputs(stats_usage, stderr);
            return PXC_EXIT_USAGE;
        }
    }
    if (optind + 1 != argc) {
        fputs(stats_usage, stderr);
        return PXC_EXIT_USAGE;
    }
    const char *dir = argv[optind];
    keystore *ks;
    int exit_code = cli_open_keystore("stats", dir, &ks);
    if (exit_code != PXC_EXIT_OK)
        return exit_code;
    ks_volume_info vi = {0};
    uint8_t *master = sodium_malloc(KS_MASTER_KEY_BYTES);
    unlock_source how = {passfile, "Passphrase: ", 0, NULL};
    pxc_keys *keys = NULL;
    volume_stats st;

    exit_code = PXC_EXIT_ERROR;
    if (!master || keystore_volume_info(ks, &vi) != KS_OK)
        goto out;
    if (unlock) {
        if ((exit_code = cli_unlock_volume(ks, "stats", dir, &how, master)) != PXC_EXIT_OK)
            goto out;
        exit_code = PXC_EXIT_ERROR;
        if (!(keys = pxc_keys_new(master))) {
            fprintf(stderr, "pixcrypt stats: out of memory\n");
            goto out;
        }
    }
    stats_options opt = {keys, quick};
    int rc = stats_collect(dir, ks, &opt, &st);
    if (rc != 0) {
        fprintf(stderr, "pixcrypt stats: %s: %s\n", dir, strerror(-rc));
        goto out;
    }
    print_report(dir, &vi, &st, unlock);
    exit_code = PXC_EXIT_OK;
out:
    pxc_keys_free(keys);
    if (master)
        sodium_free(master);
    keystore_close(ks);
    return exit_code;
}

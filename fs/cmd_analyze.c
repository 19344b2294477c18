/* pixcrypt analyze [--profile default|chaos|all] [--json FILE] [--report FILE.html]
 *                  IMAGE|DIR...
 *
 * Measures each image under each profile (fs/analyze.h), prints a table, and optionally
 * writes JSON and an HTML report; directories are walked (progress bar on a terminal)
 * and every run ends with a summary per profile.  Exit status 0 when every image was
 * measured and decrypted exactly, 1 otherwise, 2 for a bad command line. */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "codec/keys.h"
#include "fs/analyze.h"
#include "fs/cli.h"
#include "fs/fdio.h"
#include "fs/progress.h"

#define MAX_INPUT_BYTES (512u << 20)

/* ---- inputs ----------------------------------------------------------------------------- */

typedef struct path_list {
    char **v;
    size_t n, cap;
} path_list;

static int list_add(path_list *l, const char *p)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 64;
        char **v = realloc(l->v, cap * sizeof *v);
        if (!v)
            return -1;
        l->v = v;
        l->cap = cap;
    }
    return (l->v[l->n] = strdup(p)) ? (int)l->n++ : -1;
}

static path_list *walk_list; /* nftw has no user pointer */

/* PNG or JPEG by content. */
static int is_image(const char *path)
{
    uint8_t head[8];
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0)
        return 0;
    ssize_t got = read(fd, head, sizeof head);
    close(fd);
    return got > 0 && ana_sniff(head, (size_t)got) != 0;
}

static int walk_one(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    if (type == FTW_F && is_image(path) && list_add(walk_list, path) < 0)
        return -1;
    return 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Files as given; directories walked (symbolic links not followed), images only, sorted. */
static int collect(char **args, int nargs, path_list *l)
{
    for (int i = 0; i < nargs; i++) {
        struct stat st;
        if (stat(args[i], &st) != 0) {
            fprintf(stderr, "pixcrypt analyze: %s: %s\n", args[i], strerror(errno));
            return -1;
        }
        if (!S_ISDIR(st.st_mode)) {
            if (list_add(l, args[i]) < 0)
                return -1;
            continue;
        }
        size_t first = l->n;
        walk_list = l;
        if (nftw(args[i], walk_one, 32, FTW_PHYS) != 0) {
            fprintf(stderr, "pixcrypt analyze: %s: cannot walk the directory\n", args[i]);
            return -1;
        }
        qsort(l->v + first, l->n - first, sizeof *l->v, cmp_str);
    }
    return 0;
}

static int read_file(const char *path, uint8_t **out, size_t *len)
{
    /* O_NONBLOCK: a FIFO named on the command line must not hang the open. */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    struct stat st;
    if (fd < 0)
        return -errno;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || (uint64_t)st.st_size > MAX_INPUT_BYTES) {
        int e = S_ISREG(st.st_mode) ? EFBIG : EINVAL;
        close(fd);
        return -e;
    }
    *len = (size_t)st.st_size;
    *out = malloc(*len ? *len : 1);
    ssize_t got = *out ? fd_read_full(fd, *out, *len, 0) : -ENOMEM;
    int rc = got < 0 ? (int)got : (size_t)got != *len ? -EIO : 0;
    close(fd);
    if (rc) {
        free(*out);
        *out = NULL;
    }
    return rc;
}

/* ---- summary per profile ------------------------------------------------------------------ */

/* Images with fewer samples are listed but left out of the summary: their statistics
 * scatter too widely to judge a cipher by (papers use 256 x 256 and more). */
#define SUMMARY_MIN_SAMPLES 4096

typedef struct summary {
    int measured, failed, small, inexact, diff_n, key_n;
    int n8; /* 8-bit images: entropy and MSE comparable with the papers' */
    double ent8_sum, mse8_sum, pcssim_sum;
    double ent_sum, ent_max, corr_sum, corr_max, pc_max, p_min, npcr_sum, npcr_min, uaci_sum,
        uaci_dev, uaci_worst, key_min, ssim_min, enc_sum, dec_sum;
} summary;

static void summary_add(summary *s, const ana_result *r)
{
    if (r->error[0]) {
        s->failed++;
        return;
    }
    if ((uint64_t)r->width * r->height * r->channels < SUMMARY_MIN_SAMPLES) {
        s->small++;
        s->inexact += !r->exact;
        return;
    }
    int first = s->measured++ == 0;
    double c =
        fabs(r->cipher.corr[0]) > fabs(r->cipher.corr[1]) ? r->cipher.corr[0] : r->cipher.corr[1];
    c = fabs(r->cipher.corr[2]) > fabs(c) ? r->cipher.corr[2] : c;
    double shortfall = r->ideal_entropy - r->cipher.entropy;
    s->ent_sum += shortfall;
    s->corr_sum += fabs(c);
    s->pcssim_sum += r->pc_ssim;
    if (r->bits == 8) {
        s->n8++;
        s->ent8_sum += r->cipher.entropy;
        s->mse8_sum += r->pc_mse;
    }
    s->enc_sum += r->enc_seconds > 0 ? r->plain_bytes / r->enc_seconds / 1e6 : 0;
    s->dec_sum += r->dec_seconds > 0 ? r->plain_bytes / r->dec_seconds / 1e6 : 0;
    s->inexact += !r->exact;
    if (first || shortfall > s->ent_max)
        s->ent_max = shortfall;
    if (first || fabs(c) > s->corr_max)
        s->corr_max = fabs(c);
    if (first || fabs(r->plain_cipher_corr) > s->pc_max)
        s->pc_max = fabs(r->plain_cipher_corr);
    if (first || r->cipher.chi2_p < s->p_min)
        s->p_min = r->cipher.chi2_p;
    if (first || r->ssim < s->ssim_min)
        s->ssim_min = r->ssim;
    if (r->diff_valid) {
        int f = s->diff_n++ == 0;
        s->npcr_sum += r->npcr;
        s->uaci_sum += r->uaci;
        if (f || r->npcr < s->npcr_min)
            s->npcr_min = r->npcr;
        if (f || fabs(r->uaci - r->ideal_uaci) > s->uaci_dev) {
            s->uaci_dev = fabs(r->uaci - r->ideal_uaci);
            s->uaci_worst = r->uaci;
        }
    }
    if (r->key_valid) {
        if (s->key_n++ == 0 || r->key_npcr < s->key_min)
            s->key_min = r->key_npcr;
    }
}

static double mean(double sum, int n)
{
    return n ? sum / n : NAN;
}

static void summary_text(FILE *f, const char *name, const summary *s)
{
    fprintf(f,
            "summary %s: %d measured, %d too small to judge (< %d samples), %d not measured, "
            "%d not exact\n",
            name, s->measured, s->small, SUMMARY_MIN_SAMPLES, s->failed, s->inexact);
    if (!s->measured)
        return;
    fprintf(f, "  entropy below ideal mean %.5f  worst %.5f bits\n", mean(s->ent_sum, s->measured),
            s->ent_max);
    fprintf(f, "  max |adjacent r|   mean %.5f  worst %.5f\n", mean(s->corr_sum, s->measured),
            s->corr_max);
    fprintf(f,
            "  |plain-cipher r|   worst %.5f;  plain-cipher SSIM mean %.4f;  chi2 p worst %.4g\n",
            s->pc_max, mean(s->pcssim_sum, s->measured), s->p_min);
    if (s->diff_n)
        fprintf(f, "  NPCR %%             mean %.4f  worst %.4f;  UACI %% mean %.4f  worst %.4f\n",
                mean(s->npcr_sum, s->diff_n), s->npcr_min, mean(s->uaci_sum, s->diff_n),
                s->uaci_worst);
    if (s->key_n)
        fprintf(f, "  key bit NPCR %%     worst %.4f\n", s->key_min);
    fprintf(f, "  decrypt SSIM       worst %.6f;  encrypt %.1f MB/s, decrypt %.1f MB/s (mean)\n",
            s->ssim_min, mean(s->enc_sum, s->measured), mean(s->dec_sum, s->measured));
}

static void jnum(FILE *f, const char *name, double v, int comma)
{
    fprintf(f, "\"%s\": ", name);
    if (isfinite(v))
        fprintf(f, "%.10g", v);
    else
        fputs("null", f);
    fputs(comma ? ", " : "", f);
}

static void summary_json(FILE *f, const char *name, const summary *s)
{
    fprintf(f,
            "\"%s\": {\"measured\": %d, \"too_small\": %d, \"not_measured\": %d, "
            "\"not_exact\": %d, ",
            name, s->measured, s->small, s->failed, s->inexact);
    jnum(f, "entropy_shortfall_mean", mean(s->ent_sum, s->measured), 1);
    jnum(f, "entropy_shortfall_worst", s->measured ? s->ent_max : NAN, 1);
    jnum(f, "adjacent_corr_abs_mean", mean(s->corr_sum, s->measured), 1);
    jnum(f, "adjacent_corr_abs_worst", s->measured ? s->corr_max : NAN, 1);
    jnum(f, "plain_cipher_corr_abs_worst", s->measured ? s->pc_max : NAN, 1);
    jnum(f, "plain_cipher_ssim_mean", mean(s->pcssim_sum, s->measured), 1);
    jnum(f, "cipher_entropy_8bit_mean", mean(s->ent8_sum, s->n8), 1);
    jnum(f, "plain_cipher_mse_8bit_mean", mean(s->mse8_sum, s->n8), 1);
    jnum(f, "chi2_p_worst", s->measured ? s->p_min : NAN, 1);
    jnum(f, "npcr_mean", mean(s->npcr_sum, s->diff_n), 1);
    jnum(f, "npcr_worst", s->diff_n ? s->npcr_min : NAN, 1);
    jnum(f, "uaci_mean", mean(s->uaci_sum, s->diff_n), 1);
    jnum(f, "uaci_worst", s->diff_n ? s->uaci_worst : NAN, 1);
    jnum(f, "key_npcr_worst", s->key_n ? s->key_min : NAN, 1);
    jnum(f, "decrypt_ssim_worst", s->measured ? s->ssim_min : NAN, 1);
    jnum(f, "encrypt_mb_per_s_mean", mean(s->enc_sum, s->measured), 1);
    jnum(f, "decrypt_mb_per_s_mean", mean(s->dec_sum, s->measured), 0);
    fputs("}", f);
}

/* One row of the report's table of published figures. */
static void summary_html_row(FILE *f, const char *name, const summary *s)
{
    if (!s->measured)
        return;
    fprintf(f, "<tr><td>pixcrypt %s (this report, %d image%s)</td><td>", name, s->measured,
            s->measured == 1 ? "" : "s");
    if (s->n8)
        fprintf(f, "%.4f", mean(s->ent8_sum, s->n8));
    fprintf(f, "</td><td>%.4f / %.4f</td>", mean(s->corr_sum, s->measured), s->corr_max);
    if (s->diff_n)
        fprintf(f, "<td>%.4f / %.4f %%</td><td>%.4f / %.4f %%</td>", mean(s->npcr_sum, s->diff_n),
                s->npcr_min, mean(s->uaci_sum, s->diff_n), s->uaci_worst);
    else
        fputs("<td></td><td></td>", f);
    fputs("<td>", f);
    if (s->n8)
        fprintf(f, "%.0f", mean(s->mse8_sum, s->n8));
    fprintf(f, " / %.4f</td></tr>\n", mean(s->pcssim_sum, s->measured));
}

/* Summaries per profile, JPEG apart (its one cipher, measured on decoded pixels). */
enum { GROUPS = 3 };
static const char *const group_names[GROUPS] = {"default/png", "chaos/png", "default/jpeg"};

static int group_of(const ana_result *r)
{
    return r->format == ANA_JPEG ? 2 : r->profile == PXC_PROFILE_CHAOS ? 1 : 0;
}

static int group_used(const summary *s)
{
    return s->measured + s->small + s->failed > 0;
}

/* ---- the command -------------------------------------------------------------------------- */

static const char usage_text[] =
    "usage: pixcrypt analyze [--profile default|chaos|all] [--json FILE] [--report FILE.html]\n"
    "                        IMAGE|DIR...\n";

int cmd_analyze(int argc, char **argv)
{
    static const struct option opts[] = {{"profile", required_argument, NULL, 'p'},
                                         {"json", required_argument, NULL, 'j'},
                                         {"report", required_argument, NULL, 'r'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *json_path = NULL, *report_path = NULL;
    int profiles[2] = {PXC_PROFILE_DEFAULT, PXC_PROFILE_CHAOS}, nprof = 2, c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'p':
            if (strcmp(optarg, "default") == 0)
                nprof = 1;
            else if (strcmp(optarg, "chaos") == 0) {
                profiles[0] = PXC_PROFILE_CHAOS;
                nprof = 1;
            } else if (strcmp(optarg, "all") != 0) {
                fprintf(stderr, "pixcrypt analyze: unknown profile '%s'\n%s", optarg, usage_text);
                return PXC_EXIT_USAGE;
            }
            break;
        case 'j':
            json_path = optarg;
            break;
        case 'r':
            report_path = optarg;
            break;
        case 'h':
            fputs(usage_text, stdout);
            return PXC_EXIT_OK;
        default:
            fputs(usage_text, stderr);
            return PXC_EXIT_USAGE;
        }
    }
    if (optind >= argc) {
        fputs(usage_text, stderr);
        return PXC_EXIT_USAGE;
    }

    path_list files = {0};
    FILE *json = NULL, *report = NULL;
    int status = PXC_EXIT_OK;
    if (collect(argv + optind, argc - optind, &files) != 0) {
        status = PXC_EXIT_ERROR;
        goto out;
    }
    if (files.n == 0) {
        fprintf(stderr, "pixcrypt analyze: no PNG or JPEG images found\n");
        status = PXC_EXIT_ERROR;
        goto out;
    }
    if (json_path && !(json = fopen(json_path, "w"))) {
        fprintf(stderr, "pixcrypt analyze: %s: %s\n", json_path, strerror(errno));
        status = PXC_EXIT_ERROR;
        goto out;
    }
    if (report_path && !(report = fopen(report_path, "w"))) {
        fprintf(stderr, "pixcrypt analyze: %s: %s\n", report_path, strerror(errno));
        status = PXC_EXIT_ERROR;
        goto out;
    }
    if (json)
        fputs("{\"results\": [\n", json);
    if (report)
        ana_html_begin(report);

    uint64_t bytes_total = 0;
    for (size_t i = 0; i < files.n; i++) {
        struct stat st;
        bytes_total += stat(files.v[i], &st) == 0 ? (uint64_t)st.st_size : 0;
    }
    progress bar;
    progress_init(&bar, "analysing", files.n, bytes_total, files.n > 1);
    int results = 0;
    summary sum[GROUPS] = {0};
    ana_print_header(stdout);
    for (size_t i = 0; i < files.n; i++) {
        uint8_t *bytes = NULL;
        size_t len = 0;
        int rc = read_file(files.v[i], &bytes, &len);
        if (rc != 0) {
            progress_say(&bar, "pixcrypt analyze: %s: %s", files.v[i],
                         rc == -EINVAL ? "not a regular file" : strerror(-rc));
            progress_add(&bar, 0, 1);
            status = PXC_EXIT_ERROR;
            continue;
        }
        if (!ana_sniff(bytes, len)) {
            progress_say(&bar, "pixcrypt analyze: %s: not a PNG or JPEG file", files.v[i]);
            progress_add(&bar, len, 1);
            status = PXC_EXIT_ERROR;
            free(bytes);
            continue;
        }
        for (int k = 0; k < nprof; k++) {
            ana_result r;
            if (ana_sniff(bytes, len) == ANA_JPEG && profiles[k] != PXC_PROFILE_DEFAULT &&
                nprof > 1)
                continue; /* one JPEG cipher: measured once */
            if (ana_run(files.v[i], bytes, len, profiles[k], report != NULL, &r) != 0) {
                progress_say(&bar, "pixcrypt analyze: out of memory");
                free(bytes);
                status = PXC_EXIT_ERROR;
                goto done;
            }
            progress_clear(&bar);
            ana_print_row(stdout, &r);
            fflush(stdout);
            if (json) {
                fputs(results ? ",\n" : "", json);
                ana_json_result(json, &r);
            }
            results++;
            if (report)
                ana_html_result(report, &r);
            summary_add(&sum[group_of(&r)], &r);
            if (r.error[0] || !r.exact)
                status = PXC_EXIT_ERROR; /* the table says which */
            ana_result_free(&r);
        }
        progress_add(&bar, len, 1);
        free(bytes);
    }
done:
    progress_clear(&bar);
    progress_destroy(&bar);
    fputc('\n', stdout);
    for (int g = 0; g < GROUPS; g++)
        if (group_used(&sum[g]))
            summary_text(stdout, group_names[g], &sum[g]);
    fflush(stdout);
    if (json) {
        fputs("\n], \"summary\": {", json);
        for (int g = 0, first = 1; g < GROUPS; g++)
            if (group_used(&sum[g])) {
                fputs(first ? "" : ", ", json);
                summary_json(json, group_names[g], &sum[g]);
                first = 0;
            }
        fputs("}}\n", json);
    }
    if (report) {
        char *html = NULL;
        size_t html_len = 0;
        FILE *m = open_memstream(&html, &html_len);
        if (m) {
            for (int g = 0; g < GROUPS; g++)
                summary_html_row(m, group_names[g], &sum[g]);
            fclose(m);
        }
        ana_html_end(report, html);
        free(html);
    }
out:
    if (json && fclose(json) != 0) {
        fprintf(stderr, "pixcrypt analyze: %s: %s\n", json_path, strerror(errno));
        status = PXC_EXIT_ERROR;
    }
    if (report && fclose(report) != 0) {
        fprintf(stderr, "pixcrypt analyze: %s: %s\n", report_path, strerror(errno));
        status = PXC_EXIT_ERROR;
    }
    for (size_t i = 0; i < files.n; i++)
        free(files.v[i]);
    free(files.v);
    return status;
}

/* The output of `pixcrypt analyze`: a text table, JSON, and a self-contained HTML report
 * (pictures as base64 PNG, histograms as inline SVG, scatter plots as PNG). */
#include <math.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fs/analyze.h"

static const char *const dir_names[3] = {"horizontal", "vertical", "diagonal"};
static const char *const dir_short[3] = {"horiz.", "vert.", "diag."};

static double mbps(const ana_result *r, double seconds)
{
    return seconds > 0 ? (double)r->plain_bytes / seconds / 1e6 : 0;
}

static const char *format_name(const ana_result *r)
{
    return r->format == ANA_PNG ? "png" : r->format == ANA_JPEG ? "jpeg" : "?";
}

/* ---- text ----------------------------------------------------------------------------- */

void ana_print_header(FILE *f)
{
    fprintf(f, "%-8s %8s %8s %8s %8s %8s %8s %7s %7s %7s %7s %5s %7s %7s %7s  %s\n", "profile",
            "H plain", "H ciph", "r_h", "r_v", "r_d", "r(p,c)", "chi2 p", "NPCR%", "UACI%",
            "keyNPCR", "exact", "SSIM", "enc MB/s", "dec MB/s", "image");
}

void ana_print_row(FILE *f, const ana_result *r)
{
    if (r->error[0]) {
        fprintf(f, "%-8s %s: %s\n", ana_profile_name(r->profile), r->path, r->error);
        return;
    }
    char np[16] = "-", ua[16] = "-", kn[16] = "-";
    if (r->diff_valid) {
        snprintf(np, sizeof np, "%.3f", r->npcr);
        snprintf(ua, sizeof ua, "%.3f", r->uaci);
    }
    if (r->key_valid)
        snprintf(kn, sizeof kn, "%.3f", r->key_npcr);
    fprintf(f,
            "%-8s %8.4f %8.4f %+8.4f %+8.4f %+8.4f %+8.4f %7.3f %7s %7s %7s %5s %7.4f %8.1f %8.1f  "
            "%s\n",
            ana_profile_name(r->profile), r->plain.entropy, r->cipher.entropy, r->cipher.corr[0],
            r->cipher.corr[1], r->cipher.corr[2], r->plain_cipher_corr, r->cipher.chi2_p, np, ua,
            kn, r->exact ? "yes" : "NO", r->ssim, mbps(r, r->enc_seconds), mbps(r, r->dec_seconds),
            r->path);
}

/* ---- JSON ----------------------------------------------------------------------------- */

static void json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c < 0x20)
            fprintf(f, "\\u%04x", c);
        else
            fputc(c, f);
    }
    fputc('"', f);
}

/* JSON has no infinity or NaN: null. */
static void json_num(FILE *f, double v)
{
    if (isfinite(v))
        fprintf(f, "%.10g", v);
    else
        fputs("null", f);
}

static void json_stats(FILE *f, const ana_stats *s)
{
    fputs("{\"entropy\": ", f);
    json_num(f, s->entropy);
    if (s->nplanes) {
        fputs(", \"bitplane_entropy\": [", f);
        for (unsigned b = 0; b < s->nplanes; b++) {
            fputs(b ? ", " : "", f);
            json_num(f, s->planes[b]);
        }
        fputs("]", f);
    }
    fputs(", \"correlation\": {", f);
    for (int d = 0; d < 3; d++) {
        fprintf(f, "%s\"%s\": ", d ? ", " : "", dir_names[d]);
        json_num(f, s->corr[d]);
    }
    fputs("}, \"chi2\": ", f);
    json_num(f, s->chi2);
    fputs(", \"chi2_p\": ", f);
    json_num(f, s->chi2_p);
    fputs("}", f);
}

static void json_field(FILE *f, const char *name, double v)
{
    fprintf(f, ", \"%s\": ", name);
    json_num(f, v);
}

void ana_json_result(FILE *f, const ana_result *r)
{
    fputs("{\"path\": ", f);
    json_str(f, r->path);
    fprintf(f, ", \"format\": \"%s\", \"profile\": \"%s\"", format_name(r),
            ana_profile_name(r->profile));
    if (r->error[0]) {
        fputs(", \"error\": ", f);
        json_str(f, r->error);
        fputs("}", f);
        return;
    }
    fprintf(f,
            ", \"width\": %u, \"height\": %u, \"channels\": %u, \"bits\": %u, \"palette\": %s, "
            "\"plain_bytes\": %llu, \"stored_bytes\": %llu",
            r->width, r->height, r->channels, r->bits, r->palette ? "true" : "false",
            (unsigned long long)r->plain_bytes, (unsigned long long)r->stored_bytes);
    fputs(", \"plain\": ", f);
    json_stats(f, &r->plain);
    fputs(", \"cipher\": ", f);
    json_stats(f, &r->cipher);
    json_field(f, "plain_cipher_correlation", r->plain_cipher_corr);
    json_field(f, "plain_cipher_mse", r->pc_mse);
    json_field(f, "plain_cipher_ssim", r->pc_ssim);
    fputs(", \"differential\": {\"measured\": ", f);
    fputs(r->diff_valid ? "true" : "false", f);
    if (r->diff_valid) {
        json_field(f, "npcr", r->npcr);
        json_field(f, "uaci", r->uaci);
    }
    fputs(", \"how\": ", f);
    json_str(f, r->diff_note);
    fputs("}, \"key_sensitivity\": {\"measured\": ", f);
    fputs(r->key_valid ? "true" : "false", f);
    if (r->key_valid) {
        json_field(f, "npcr", r->key_npcr);
        json_field(f, "uaci", r->key_uaci);
    }
    fprintf(f, "}, \"decrypt\": {\"exact\": %s", r->exact ? "true" : "false");
    json_field(f, "mse", r->mse);
    json_field(f, "psnr", r->psnr);
    json_field(f, "ssim", r->ssim);
    fputs("}, \"time\": {\"encrypt_seconds\": ", f);
    json_num(f, r->enc_seconds);
    json_field(f, "decrypt_seconds", r->dec_seconds);
    json_field(f, "encrypt_mb_per_s", mbps(r, r->enc_seconds));
    json_field(f, "decrypt_mb_per_s", mbps(r, r->dec_seconds));
    fputs("}", f);
    if (r->ac_valid)
        json_field(f, "ac_energy_correlation", r->ac_corr);
    fputs(", \"ideal\": {\"entropy\": ", f);
    json_num(f, r->ideal_entropy);
    json_field(f, "npcr", r->ideal_npcr);
    json_field(f, "uaci", r->ideal_uaci);
    fputs("}}", f);
}

/* ---- HTML ----------------------------------------------------------------------------- */

static void html_str(FILE *f, const char *s)
{
    for (; *s; s++)
        switch (*s) {
        case '<':
            fputs("&lt;", f);
            break;
        case '>':
            fputs("&gt;", f);
            break;
        case '&':
            fputs("&amp;", f);
            break;
        case '"':
            fputs("&quot;", f);
            break;
        default:
            fputc(*s, f);
        }
}

/* <img> of 8-bit pixels as an embedded PNG. */
static int html_png(FILE *f, const uint8_t *px, uint32_t w, uint32_t h, uint32_t ch,
                    const char *alt, const char *style)
{
    uint8_t *png;
    size_t len;
    if (ana_png_write(px, w, h, ch, &png, &len) != 0)
        return -1;
    size_t b64len = sodium_base64_ENCODED_LEN(len, sodium_base64_VARIANT_ORIGINAL);
    char *b64 = malloc(b64len);
    if (!b64) {
        free(png);
        return -1;
    }
    sodium_bin2base64(b64, b64len, png, len, sodium_base64_VARIANT_ORIGINAL);
    fprintf(f, "<img alt=\"%s\" style=\"%s\" src=\"data:image/png;base64,%s\">", alt, style, b64);
    free(b64);
    free(png);
    return 0;
}

/* Sample value scaled to 0..255 for plotting. */
static unsigned bin256(const pxm_image *im, size_t i)
{
    return (unsigned)((uint64_t)pxm_at(im, i) * 256 / ((uint64_t)im->maxval + 1));
}

/* Histogram of each colour channel (alpha left out) as an SVG of 256 bins. */
static void html_histogram(FILE *f, const pxm_image *im, const char *title)
{
    static const char *const colours[3] = {"#d33", "#3a3", "#36d"};
    uint32_t ch = im->channels, shown = ch >= 3 ? 3 : 1;
    size_t n = (size_t)im->width * im->height;
    double *h = calloc(256 * shown, sizeof *h), max = 1;
    if (!h)
        return;
    for (size_t p = 0; p < n; p++)
        for (uint32_t c = 0; c < shown; c++)
            h[c * 256 + bin256(im, p * ch + c)] += 1;
    for (size_t i = 0; i < 256 * shown; i++)
        max = h[i] > max ? h[i] : max;
    /* A flat histogram sits at half height instead of filling the box with its noise. */
    if (max < 2.0 * (double)n / 256)
        max = 2.0 * (double)n / 256;
    fprintf(f, "<figure><svg viewBox=\"0 0 256 100\" width=\"256\" height=\"100\" "
               "preserveAspectRatio=\"none\" role=\"img\"><rect width=\"256\" height=\"100\" "
               "fill=\"#fff\" stroke=\"#999\"/>");
    for (uint32_t c = 0; c < shown; c++) {
        fprintf(f, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"1\" points=\"",
                shown == 1 ? "#222" : colours[c]);
        for (int v = 0; v < 256; v++)
            fprintf(f, "%d,%.1f ", v, 100 - 98 * h[c * 256 + v] / max);
        fputs("\"/>", f);
    }
    fprintf(f, "</svg><figcaption>%s</figcaption></figure>\n", title);
    free(h);
}

/* Pairs (sample, neighbour) of channel 0 as a 256 x 256 density picture (darker: more),
 * the adjacent-pixel scatter plot of the papers with every pair drawn. */
static void html_scatter(FILE *f, const pxm_image *im, unsigned dx, unsigned dy, const char *title)
{
    uint32_t *count = calloc(256 * 256, sizeof *count), max = 0;
    uint8_t *px = malloc(256 * 256);
    size_t ch = im->channels, stride = (size_t)im->width * ch;
    if (!count || !px)
        goto out;
    for (size_t y = 0; y + dy < im->height; y++)
        for (size_t x = 0; x + dx < im->width; x++) {
            unsigned a = bin256(im, y * stride + x * ch),
                     b = bin256(im, (y + dy) * stride + (x + dx) * ch);
            uint32_t *c = &count[(255 - b) * 256 + a]; /* neighbour upwards */
            if (*c < UINT32_MAX)
                (*c)++;
            max = *c > max ? *c : max;
        }
    double scale = max ? log1p((double)max) : 1;
    for (size_t i = 0; i < 256 * 256; i++)
        px[i] = (uint8_t)(255 - (count[i] ? 40 + 215 * log1p((double)count[i]) / scale : 0));
    fputs("<figure>", f);
    html_png(f, px, 256, 256, 1, title, "width:112px;height:112px;border:1px solid #999");
    fprintf(f, "<figcaption>%s</figcaption></figure>\n", title);
out:
    free(count);
    free(px);
}

static void html_view(FILE *f, const ana_view *v, const char *title)
{
    fputs("<figure>", f);
    if (v->px)
        html_png(f, v->px, v->w, v->h, v->ch, title, "max-width:320px;max-height:320px");
    fprintf(f, "<figcaption>%s</figcaption></figure>\n", title);
}

void ana_html_begin(FILE *f)
{
    fputs("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
          "<title>pixcrypt analyze</title>\n<style>\n"
          "body{font-family:sans-serif;margin:1.5em;color:#222;background:#fff;max-width:70em}\n"
          "h1{font-size:1.5em}h2{font-size:1.15em;border-top:1px solid #bbb;padding-top:.8em}\n"
          "figure{display:inline-block;margin:.3em .6em .3em "
          "0;vertical-align:top;text-align:center}\n"
          "figcaption{font-size:.8em;color:#555}\n"
          "table{border-collapse:collapse;font-size:.85em;margin:.5em 0}\n"
          "td,th{border:1px solid #ccc;padding:.2em .5em;text-align:right}\n"
          "th{background:#f2f2f2}td:first-child,th:first-child{text-align:left}\n"
          ".bad{color:#b00;font-weight:bold}.note{font-size:.85em;color:#555}\n"
          "</style></head><body>\n<h1>pixcrypt analyze</h1>\n"
          "<p class=\"note\">Each image was encrypted by the pixcrypt codec exactly as a mount "
          "stores it, under a volume key drawn for this report and a fresh file seed; the "
          "stored image was decoded like any viewer decodes it; the stored file was decrypted "
          "and compared with the original byte for byte.  Correlations are over all pairs of "
          "neighbouring samples (Khazaal et al. 2024, Eq. 5); plain&ndash;cipher correlation "
          "is their Eq. 8.</p>\n",
          f);
}

static void row3(FILE *f, const char *name, const double v[3], const double w[3])
{
    for (int d = 0; d < 3; d++)
        fprintf(f, "<tr><td>%s, %s</td><td>%+.5f</td><td>%+.5f</td><td>0</td></tr>\n", name,
                dir_names[d], v[d], w[d]);
}

int ana_html_result(FILE *f, const ana_result *r)
{
    fputs("<section><h2>", f);
    html_str(f, r->path);
    fprintf(f, " &mdash; %s profile</h2>\n", ana_profile_name(r->profile));
    if (r->error[0]) {
        fputs("<p class=\"bad\">", f);
        html_str(f, r->error);
        fputs("</p></section>\n", f);
        return 0;
    }
    fprintf(f,
            "<p class=\"note\">%s, %u &times; %u, %u channel%s, %u-bit%s; %llu bytes plain, "
            "%llu stored.</p>\n<div>",
            format_name(r), r->width, r->height, r->channels, r->channels == 1 ? "" : "s", r->bits,
            r->palette ? " palette indices" : "", (unsigned long long)r->plain_bytes,
            (unsigned long long)r->stored_bytes);
    html_view(f, &r->view[0], "plain");
    html_view(f, &r->view[1], "cipher (as stored)");
    html_view(f, &r->view[2], "decrypted");
    fputs("</div>\n<div>", f);
    html_histogram(f, &r->px[0].im, "histogram, plain");
    html_histogram(f, &r->px[1].im, "histogram, cipher");
    html_histogram(f, &r->px[2].im, "histogram, decrypted");
    fputs("</div>\n<p class=\"note\">Adjacent-sample scatter plots: every pair of neighbouring "
          "samples of the first channel, x the sample, y its neighbour (darker: more pairs).</p>"
          "\n<div>",
          f);
    static const unsigned dirs[3][2] = {{1, 0}, {0, 1}, {1, 1}};
    char title[64];
    for (int side = 0; side < 2; side++)
        for (int d = 0; d < 3; d++) {
            snprintf(title, sizeof title, "%s, %s", side ? "cipher" : "plain", dir_short[d]);
            html_scatter(f, &r->px[side].im, dirs[d][0], dirs[d][1], title);
        }
    fputs("</div>\n<table><tr><th>metric</th><th>plain</th><th>cipher</th><th>ideal</th></tr>\n",
          f);
    fprintf(f, "<tr><td>entropy, bits/sample</td><td>%.5f</td><td>%.5f</td><td>%.4g</td></tr>\n",
            r->plain.entropy, r->cipher.entropy, r->ideal_entropy);
    if (r->cipher.nplanes) {
        fputs("<tr><td>bit-plane entropy, planes 15 &hellip; 0</td>", f);
        for (int side = 0; side < 2; side++) {
            const ana_stats *st = side ? &r->cipher : &r->plain;
            fputs("<td>", f);
            for (int b = 15; b >= 0; b--)
                fprintf(f, "%.3f%s", st->planes[b], b % 4 == 0 ? "<br>" : " ");
            fputs("</td>", f);
        }
        fputs("<td>1</td></tr>\n", f);
    }
    row3(f, "adjacent correlation", r->plain.corr, r->cipher.corr);
    fprintf(f,
            "<tr><td>&chi;&sup2; (p-value)</td><td>%.4g (%.3g)</td><td>%.4g (%.3g)</td>"
            "<td>p &gt; 0.05</td></tr>\n",
            r->plain.chi2, r->plain.chi2_p, r->cipher.chi2, r->cipher.chi2_p);
    fprintf(
        f,
        "<tr><td>plain&ndash;cipher correlation</td><td colspan=\"2\">%+.5f</td><td>0</td></tr>\n",
        r->plain_cipher_corr);
    fprintf(f,
            "<tr><td>plain&ndash;cipher MSE / SSIM</td><td colspan=\"2\">%.1f / %.4f</td><td>"
            "&ndash; / 0</td></tr>\n",
            r->pc_mse, r->pc_ssim);
    if (r->diff_valid)
        fprintf(f,
                "<tr><td>NPCR / UACI, one sample changed</td><td colspan=\"2\">%.4f %% / %.4f %%"
                "</td><td>%.4f / %.4f</td></tr>\n",
                r->npcr, r->uaci, r->ideal_npcr, r->ideal_uaci);
    fputs("<tr><td colspan=\"4\" class=\"note\">differential test: ", f);
    html_str(f, r->diff_note);
    fputs("</td></tr>\n", f);
    if (r->key_valid)
        fprintf(f,
                "<tr><td>NPCR / UACI, one key bit flipped</td><td colspan=\"2\">%.4f %% / %.4f %%"
                "</td><td>%.4f / %.4f</td></tr>\n",
                r->key_npcr, r->key_uaci, r->ideal_npcr, r->ideal_uaci);
    if (r->ac_valid)
        fprintf(f,
                "<tr><td>AC-energy block maps, plain&ndash;cipher r</td><td colspan=\"2\">%+.5f"
                "</td><td>0</td></tr>\n",
                r->ac_corr);
    fprintf(f,
            "<tr><td>decryption: exact bytes, MSE, PSNR, SSIM</td><td colspan=\"2\"%s>%s, %.4g, "
            "%s, %.6f</td><td>yes, 0, &infin;, 1</td></tr>\n",
            r->exact ? "" : " class=\"bad\"", r->exact ? "yes" : "NO", r->mse,
            isinf(r->psnr) ? "&infin;" : "finite", r->ssim);
    fprintf(f,
            "<tr><td>encrypt / decrypt</td><td colspan=\"2\">%.1f ms (%.1f MB/s) / %.1f ms "
            "(%.1f MB/s)</td><td></td></tr>\n</table></section>\n",
            r->enc_seconds * 1e3, mbps(r, r->enc_seconds), r->dec_seconds * 1e3,
            mbps(r, r->dec_seconds));
    return 0;
}

void ana_html_end(FILE *f, const char *our_rows)
{
    fputs("<section><h2>Published figures and ours</h2>\n"
          "<table><tr><th>scheme</th><th>cipher entropy</th><th>adjacent r (cipher)</th>"
          "<th>NPCR</th><th>UACI</th><th>plain&ndash;cipher MSE / SSIM</th></tr>\n"
          "<tr><td>ideal, 8-bit (uniform, independent cipher)</td><td>8</td><td>0</td>"
          "<td>99.6094 %</td><td>33.4635 %</td><td>&ndash; / 0</td></tr>\n"
          "<tr><td>Tripuram, CNN&ndash;LSTM scheme (published)</td><td>&asymp; 7.99</td>"
          "<td>&asymp; 0.001</td><td>&gt; 99 %</td><td>&asymp; 33 %</td><td></td></tr>\n"
          "<tr><td>Khazaal, Falih, Majeed 2024, logistic + H&eacute;non maps (published "
          "correlation tables)</td><td></td><td>near 0 in h / v / d (plain near 1)</td><td></td>"
          "<td></td><td></td></tr>\n"
          "<tr><td>&ldquo;AI in Encryption&rdquo;: PCA / K-Means / GMM (published)</td><td></td>"
          "<td></td><td></td><td></td><td>&asymp; 6302 / &asymp; 0.19</td></tr>\n",
          f);
    if (our_rows)
        fputs(our_rows, f);
    fputs("</table>\n<p class=\"note\">Our rows: mean / worst over the images of this report "
          "with at least 4096 samples (entropy and MSE over 8-bit images only; NPCR and UACI for "
          "one sample of the middle pixel changed).  The chaos profile is this product's "
          "implementation of the logistic + H&eacute;non construction, for comparison only: its "
          "NPCR/UACI depend on where the changed sample is scrambled to (see codec/chaos.h).  "
          "The default profile is the one mounts use.</p></section>\n</body></html>\n",
          f);
}

/* The progress line (see progress.h). */
#include "fs/progress.h"

#include <stdarg.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#define BAR_WIDTH 24
#define REDRAW_SECONDS 0.1

double progress_clock(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

const char *progress_format_bytes(char *buf, size_t size, double bytes)
{
    static const char *const unit[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    int u = 0;
    while (bytes >= 1024 && u < 4) {
        bytes /= 1024;
        u++;
    }
    snprintf(buf, size, u ? "%.1f %s" : "%.0f %s", bytes, unit[u]);
    return buf;
}

static void format_duration(char *buf, size_t size, double s)
{
    if (s < 0 || s > 99 * 3600) {
        snprintf(buf, size, "--:--");
        return;
    }
    unsigned t = (unsigned)(s + 0.5);
    if (t >= 3600)
        snprintf(buf, size, "%u:%02u:%02u", t / 3600, t / 60 % 60, t % 60);
    else
        snprintf(buf, size, "%u:%02u", t / 60, t % 60);
}

/* With p->lock held. */
static void draw(progress *p, double t)
{
    char rate[16], done[16], eta[16];
    double elapsed = t - p->start;
    double bps = elapsed > 0 ? (double)p->bytes_done / elapsed : 0;
    double frac = p->bytes_total   ? (double)p->bytes_done / (double)p->bytes_total
                  : p->files_total ? (double)p->files_done / (double)p->files_total
                                   : 1.0;
    if (frac > 1)
        frac = 1;
    int fill = (int)(BAR_WIDTH * frac);
    format_duration(eta, sizeof eta, bps > 0 ? (double)(p->bytes_total - p->bytes_done) / bps : -1);
    fprintf(stderr, "\r\033[K%s [%.*s%*s] %3d%% %zu/%zu files, %s, %s/s, ETA %s", p->what, fill,
            "########################", BAR_WIDTH - fill, "", (int)(100 * frac), p->files_done,
            p->files_total, progress_format_bytes(done, sizeof done, (double)p->bytes_done),
            progress_format_bytes(rate, sizeof rate, bps), eta);
    fflush(stderr);
    p->drawn = 1;
    p->last = t;
}

void progress_init(progress *p, const char *what, size_t files, uint64_t bytes, int enabled)
{
    pthread_mutex_init(&p->lock, NULL);
    p->shown = enabled && isatty(STDERR_FILENO);
    p->drawn = 0;
    p->what = what;
    p->files_total = files;
    p->bytes_total = bytes;
    p->files_done = 0;
    p->bytes_done = 0;
    p->start = p->last = progress_clock();
}

void progress_add(progress *p, uint64_t bytes, int file_done)
{
    pthread_mutex_lock(&p->lock);
    p->bytes_done += bytes;
    if (file_done)
        p->files_done++;
    if (p->shown) {
        double t = progress_clock();
        if (t - p->last >= REDRAW_SECONDS || !p->drawn)
            draw(p, t);
    }
    pthread_mutex_unlock(&p->lock);
}

void progress_say(progress *p, const char *fmt, ...)
{
    va_list ap;
    pthread_mutex_lock(&p->lock);
    if (p->drawn) {
        fputs("\r\033[K", stderr);
        p->drawn = 0;
    }
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    pthread_mutex_unlock(&p->lock);
}

void progress_clear(progress *p)
{
    pthread_mutex_lock(&p->lock);
    if (p->drawn) {
        fputs("\r\033[K", stderr);
        fflush(stderr);
        p->drawn = 0;
    }
    pthread_mutex_unlock(&p->lock);
}

void progress_finish(progress *p)
{
    pthread_mutex_lock(&p->lock);
    if (p->shown) {
        draw(p, progress_clock());
        fputs("\n", stderr);
        p->drawn = 0;
    }
    pthread_mutex_unlock(&p->lock);
}

void progress_destroy(progress *p)
{
    pthread_mutex_destroy(&p->lock);
}

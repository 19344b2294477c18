/* A progress line on a terminal: files and bytes done of a known total, throughput and
 * the time left.  Drawn on stderr only when it is a terminal (and not turned off), at
 * most ten times a second; quiet when piped.  Safe to update from several threads. */
#ifndef PXC_FS_PROGRESS_H
#define PXC_FS_PROGRESS_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

typedef struct progress {
    pthread_mutex_t lock;
    int shown;          /* draw at all */
    int drawn;          /* a line is on the screen now */
    const char *what;   /* "encrypting", ... */
    size_t files_total; /* known up front */
    uint64_t bytes_total;
    size_t files_done;
    uint64_t bytes_done;
    double start, last; /* monotonic seconds */
} progress;

/* `enabled`: the caller wants a bar (no -q); it is shown only if stderr is a terminal. */
void progress_init(progress *p, const char *what, size_t files, uint64_t bytes, int enabled);
/* Adds to the bytes done (a file in pieces), and to the files done when file_done. */
void progress_add(progress *p, uint64_t bytes, int file_done);
/* Prints a message line on stderr (printf-style, newline added) without mixing it into
 * the bar: the bar is cleared first and drawn again by the next update. */
void progress_say(progress *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Takes the bar off the screen (drawn again by the next update), so that the caller can
 * write to a stdout that shares the terminal. */
void progress_clear(progress *p);
/* The last update, drawn whatever the time since the one before, then cleared. */
void progress_finish(progress *p);
void progress_destroy(progress *p);

/* Seconds on the monotonic clock. */
double progress_clock(void);

/* "12.3 MiB" into buf (size >= 16). */
const char *progress_format_bytes(char *buf, size_t size, double bytes);

#endif

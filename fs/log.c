#include "fs/log.h"

#include <stdarg.h>
#include <stdio.h>

static int use_syslog;
static int debug;

void pxc_log_to_syslog(void)
{
    openlog("pixcrypt", LOG_PID, LOG_DAEMON);
    use_syslog = 1;
}

void pxc_log_set_debug(int on)
{
    debug = on;
}

void pxc_log(int priority, const char *fmt, ...)
{
    va_list ap;
    if (priority == LOG_DEBUG && !debug)
        return;
    va_start(ap, fmt);
    if (use_syslog) {
        vsyslog(priority, fmt, ap);
    } else {
        /* One line per event, so concurrent threads don't interleave within a line. */
        char line[1024];
        vsnprintf(line, sizeof line, fmt, ap);
        fprintf(stderr, "pixcrypt: %s\n", line);
    }
    va_end(ap);
}

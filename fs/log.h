/* Daemon logging: stderr in the foreground, syslog once daemonized. */
#ifndef PXC_FS_LOG_H
#define PXC_FS_LOG_H

#include <syslog.h>

void pxc_log_to_syslog(void);
void pxc_log_set_debug(int on);
void pxc_log(int priority, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif

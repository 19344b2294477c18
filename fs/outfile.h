/* Output files that appear whole or not at all: each is written to a hidden temp file
 * beside its final name (PXC_TEMP_PREFIX, as the filesystem's own temp files: the
 * mount hides them and fsck --repair removes them) and renamed into place, replacing
 * an existing file only when asked.  While temp files are being written, an interrupt
 * (SIGINT, SIGTERM, SIGHUP) removes them before the process ends by that signal.
 * Functions return 0 / an fd, or a negative errno. */
#ifndef PXC_FS_OUTFILE_H
#define PXC_FS_OUTFILE_H

#include <stddef.h>

/* Creates a new temp file in dir, read-write, mode 0600; its path goes to path. */
int outfile_create(const char *dir, char *path, size_t size);
/* Renames tmp to dst; over an existing dst only when `replace` (else -EEXIST). */
int outfile_place(const char *tmp, const char *dst, int replace);

/* Watches `slots` temp files (one per writer thread) until outfile_unwatch, with the
 * interrupt handlers installed.  A writer marks its temp file live once created and
 * gone once renamed or removed. */
int outfile_watch(size_t slots);
void outfile_unwatch(void);
void outfile_live(size_t slot, const char *path);
void outfile_gone(size_t slot);

/* Makes everything written on the filesystem holding path (or its directory, if path
 * does not exist) durable: syncfs. */
int outfile_flush_fs(const char *path);

#endif

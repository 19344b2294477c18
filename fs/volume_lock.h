/* The volume lock: CIPHERDIR/.pixcrypt/lock, held (flock) by the one process that may
 * change a volume's files and keystore rows: the mounted daemon, or fsck.  The file holds
 * that process's pid, for the message another one prints. */
#ifndef PXC_FS_VOLUME_LOCK_H
#define PXC_FS_VOLUME_LOCK_H

#define VOLUME_LOCK_READ_ONLY (-1) /* the cipher dir cannot be written: no lock needed */
#define VOLUME_LOCK_BUSY (-2)      /* another process holds it (message printed) */
#define VOLUME_LOCK_ERROR (-3)     /* cannot open the lock file (message printed) */

/* Takes the lock without waiting.  Returns its fd (keep it open to hold the lock), or
 * one of the negative values above.  `cmd` prefixes the messages ("mount", "fsck"). */
int volume_lock_take(const char *cipherdir, const char *cmd);

/* Writes the calling process's pid into the lock file (after a fork, the daemon's). */
void volume_lock_record_pid(int lock_fd);

#endif

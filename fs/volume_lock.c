/* The volume lock (see volume_lock.h). */
#include "fs/volume_lock.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "fs/log.h"
#include "keystore/keystore.h"

#define LOCK_WAIT_TRIES 30 /* 3 s */
#define LOCK_WAIT_STEP_US 100000

int volume_lock_take(const char *cipherdir, const char *cmd)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s/%s", cipherdir, KS_DIR, KS_LOCK_NAME);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        if (errno == EROFS || errno == EACCES)
            return VOLUME_LOCK_READ_ONLY;
        fprintf(stderr, "pixcrypt %s: cannot open %s: %s\n", cmd, path, strerror(errno));
        return VOLUME_LOCK_ERROR;
    }
    /* A daemon that was just unmounted still holds the lock while it shuts down: give it
     * a moment, so that `fusermount3 -u` followed at once by a mount (or fsck) works. */
    int locked = 0;
    for (int i = 0; i < LOCK_WAIT_TRIES && !locked; i++) {
        locked = flock(fd, LOCK_EX | LOCK_NB) == 0;
        if (!locked && errno != EWOULDBLOCK)
            break;
        if (!locked && i + 1 < LOCK_WAIT_TRIES)
            usleep(LOCK_WAIT_STEP_US);
    }
    if (!locked) {
        char pid[32] = "";
        ssize_t n = pread(fd, pid, sizeof pid - 1, 0);
        pid[n > 0 ? n : 0] = '\0';
        pid[strcspn(pid, "\n")] = '\0';
        fprintf(stderr, "pixcrypt %s: %s is already mounted (in use by pixcrypt pid %s)\n", cmd,
                cipherdir, pid[0] ? pid : "?");
        close(fd);
        return VOLUME_LOCK_BUSY;
    }
    return fd;
}

void volume_lock_record_pid(int lock_fd)
{
    char pid[32];
    int n = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
    if (lock_fd >= 0 && ftruncate(lock_fd, 0) == 0 && pwrite(lock_fd, pid, (size_t)n, 0) < 0)
        pxc_log(LOG_DEBUG, "cannot record pid in lock file");
}

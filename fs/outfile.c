/* Output files placed whole (see outfile.h). */
#include "fs/outfile.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fs/content.h"

int outfile_create(const char *dir, char *path, size_t size)
{
    uint8_t rnd[8];
    char name[sizeof PXC_TEMP_PREFIX + 2 * sizeof rnd];
    for (int tries = 0; tries < 10; tries++) {
        randombytes_buf(rnd, sizeof rnd);
        int k = snprintf(name, sizeof name, "%s", PXC_TEMP_PREFIX);
        for (size_t i = 0; i < sizeof rnd; i++)
            k += snprintf(name + k, sizeof name - (size_t)k, "%02x", rnd[i]);
        if ((size_t)snprintf(path, size, "%s/%s", dir, name) >= size)
            return -ENAMETOOLONG;
        int fd = open(path, O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd >= 0 || errno != EEXIST)
            return fd >= 0 ? fd : -errno;
    }
    return -EEXIST;
}

int outfile_place(const char *tmp, const char *dst, int replace)
{
    if (replace)
        return rename(tmp, dst) == 0 ? 0 : -errno;
    if (renameat2(AT_FDCWD, tmp, AT_FDCWD, dst, RENAME_NOREPLACE) == 0)
        return 0;
    if (errno != EINVAL && errno != ENOSYS)
        return -errno;
    /* No RENAME_NOREPLACE on this filesystem: a link fails just as well on a name in use. */
    if (link(tmp, dst) != 0)
        return -errno;
    unlink(tmp);
    return 0;
}

/* ---- interrupts --------------------------------------------------------- */

/* Set once a temp file exists, cleared once it is renamed or removed: the handler may
 * run at any moment in any thread. */
static char (*temp_paths)[PATH_MAX];
static volatile sig_atomic_t *temp_set;
static size_t temp_slots;

static const int interrupts[] = {SIGINT, SIGTERM, SIGHUP};
#define NINTERRUPTS (sizeof interrupts / sizeof interrupts[0])
static struct sigaction saved[NINTERRUPTS];

static void on_interrupt(int sig)
{
    for (size_t i = 0; i < temp_slots; i++)
        if (temp_set[i])
            unlink(temp_paths[i]);
    signal(sig, SIG_DFL);
    raise(sig);
}

int outfile_watch(size_t slots)
{
    struct sigaction sa;
    temp_paths = calloc(slots, sizeof *temp_paths);
    temp_set = calloc(slots, sizeof *temp_set);
    if (!temp_paths || !temp_set) {
        free(temp_paths);
        free((void *)temp_set);
        temp_paths = NULL;
        temp_set = NULL;
        return -ENOMEM;
    }
    temp_slots = slots;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_interrupt;
    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < NINTERRUPTS; i++)
        sigaction(interrupts[i], &sa, &saved[i]);
    return 0;
}

void outfile_unwatch(void)
{
    for (size_t i = 0; i < NINTERRUPTS; i++)
        sigaction(interrupts[i], &saved[i], NULL);
    temp_slots = 0;
    free(temp_paths);
    free((void *)temp_set);
    temp_paths = NULL;
    temp_set = NULL;
}

void outfile_live(size_t slot, const char *path)
{
    snprintf(temp_paths[slot], PATH_MAX, "%s", path);
    temp_set[slot] = 1;
}

void outfile_gone(size_t slot)
{
    temp_set[slot] = 0;
}

/* ---- durability --------------------------------------------------------- */

int outfile_flush_fs(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        char dir[PATH_MAX];
        const char *slash = strrchr(path, '/');
        snprintf(dir, sizeof dir, "%.*s", slash ? (int)(slash - path) + (slash == path) : 1,
                 slash ? path : ".");
        fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    }
    if (fd < 0)
        return -errno;
    int rc = syncfs(fd) == 0 ? 0 : -errno;
    close(fd);
    return rc;
}

#include "fs/stats.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "codec/opaque.h"
#include "codec/stored.h"
#include "fs/cipherdir_walk.h"
#include "fs/fdio.h"

/* One stored file found in the cipher dir. */
typedef struct found {
    char *path;
    dev_t dev;
    ino_t ino;
    uint64_t size;
    int kind; /* -1: not a stored file */
    uint64_t plain_size;
    uint8_t file_id[PXC_FILE_ID_BYTES];
    int link;    /* another name of a file listed before */
    int has_row; /* a keystore row matched it */
} found;

typedef struct walk {
    found *f;
    size_t n, cap;
} walk;

static int add_found(walk *w, const char *path, const struct stat *sb)
{
    if (w->n == w->cap) {
        size_t cap = w->cap ? 2 * w->cap : 256;
        found *f = realloc(w->f, cap * sizeof *f);
        if (!f)
            return -ENOMEM;
        w->f = f;
        w->cap = cap;
    }
    found *e = &w->f[w->n];
    memset(e, 0, sizeof *e);
    if (!(e->path = strdup(path)))
        return -ENOMEM;
    e->dev = sb->st_dev;
    e->ino = sb->st_ino;
    e->size = (uint64_t)sb->st_size;
    e->kind = -1;
    w->n++;
    return 0;
}

static int add_listed(const char *path, const struct stat *sb, void *arg)
{
    return add_found(arg, path, sb);
}

static int by_inode(const void *a, const void *b)
{
    const found *x = a, *y = b;
    if (x->dev != y->dev)
        return x->dev < y->dev ? -1 : 1;
    if (x->ino != y->ino)
        return x->ino < y->ino ? -1 : 1;
    return strcmp(x->path, y->path);
}

static int by_file_id(const void *a, const void *b)
{
    const found *x = *(found *const *)a, *y = *(found *const *)b;
    return memcmp(x->file_id, y->file_id, PXC_FILE_ID_BYTES);
}

/* Identifies f from its first bytes. */
static void peek(int root, found *f)
{
    uint8_t head[PXC_STORED_PEEK_BYTES];
    pxc_stored_info info;
    int fd = openat(root, f->path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return;
    size_t want = f->size < sizeof head ? (size_t)f->size : sizeof head;
    ssize_t n = fd_read_full(fd, head, want, 0);
    close(fd);
    if (n == (ssize_t)want && pxc_stored_peek(head, want, f->size, &info) == 0 && info.kind >= 0 &&
        info.kind < STATS_KINDS) {
        f->kind = info.kind;
        f->plain_size = info.plain_size;
        memcpy(f->file_id, info.file_id, sizeof f->file_id);
    }
}

static void count_reason(volume_stats *st, const char *text, uint64_t bytes)
{
    size_t i;
    for (i = 0; i < st->nreasons; i++)
        if (strcmp(st->reason[i].text, text) == 0)
            break;
    if (i == st->nreasons) {
        if (st->nreasons == STATS_MAX_REASONS)
            i = STATS_MAX_REASONS - 1, text = "other reasons";
        else
            snprintf(st->reason[st->nreasons++].text, sizeof st->reason[0].text, "%s", text);
    }
    st->reason[i].files++;
    st->reason[i].plain_bytes += bytes;
}

static const char *kind_label(int kind)
{
    return kind == PXC_KIND_PNG ? "PNG" : kind == PXC_KIND_JPEG ? "JPEG" : "opaque";
}

/* Why an opaque file is not stored as an image: from its content, as the filesystem
 * decided when it was written. */
static void opaque_reason(int root, const found *f, const stats_options *opt, volume_stats *st)
{
    char text[160];
    uint8_t head[16], *plain = NULL, *stored = NULL;
    opaque_file of;
    int fd = openat(root, f->path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC), rc;

    if (fd < 0 || (rc = opaque_open(&of, fd, opt->keys)) != 0) {
        if (fd >= 0)
            close(fd);
        st->unreadable++;
        return;
    }
    ssize_t n = opaque_read(&of, head, sizeof head, 0);
    int kind = n > 0 ? pxc_stored_candidate_kind(head, (size_t)n) : PXC_KIND_OPAQUE;
    if (n < 0) {
        st->unreadable++;
        goto out;
    }
    if (kind == PXC_KIND_OPAQUE) {
        count_reason(st, "content is neither PNG nor JPEG", f->plain_size);
        goto out;
    }
    if (f->plain_size > PXC_STORED_MAX_IMAGE_FILE) {
        snprintf(text, sizeof text, "%s larger than the %u MiB image limit", kind_label(kind),
                 PXC_STORED_MAX_IMAGE_FILE >> 20);
        count_reason(st, text, f->plain_size);
        goto out;
    }
    if (opt->quick) {
        snprintf(text, sizeof text, "%s content kept opaque (reason not derived: --quick)",
                 kind_label(kind));
        count_reason(st, text, f->plain_size);
        goto out;
    }
    plain = malloc(f->plain_size ? (size_t)f->plain_size : 1);
    if (!plain || opaque_read(&of, plain, (size_t)f->plain_size, 0) != (ssize_t)f->plain_size) {
        st->unreadable++;
        goto out;
    }
    pxc_file_secrets s;
    size_t stored_len;
    const char *why = NULL;
    pxc_secrets_fresh(&s);
    rc = pxc_stored_encode(kind, plain, (size_t)f->plain_size, opt->keys, &s, &stored, &stored_len,
                           &why);
    sodium_memzero(&s, sizeof s);
    if (rc == 0)
        snprintf(text, sizeof text, "%s the codec takes now (written before it could)",
                 kind_label(kind));
    else
        snprintf(text, sizeof text, "%s declined by the codec: %s", kind_label(kind),
                 why ? why : strerror(-rc));
    count_reason(st, text, f->plain_size);
out:
    if (plain) {
        sodium_memzero(plain, (size_t)f->plain_size);
        free(plain);
    }
    free(stored);
    opaque_close(&of);
    close(fd);
}

typedef struct row_check {
    found **by_id;
    size_t n;
    volume_stats *st;
} row_check;

static int check_row(const ks_file_row *row, void *arg)
{
    row_check *rc = arg;
    size_t lo = 0, hi = rc->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = memcmp(rc->by_id[mid]->file_id, row->file_id, KS_FILE_ID_BYTES);
        if (c == 0) {
            found *f = rc->by_id[mid];
            f->has_row = 1;
            if (f->kind != row->kind || f->plain_size != row->plain_size)
                rc->st->rows_disagreeing++;
            return 0;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    rc->st->rows_without_file++;
    return 0;
}

static uint64_t file_bytes(const char *cipherdir, const char *name)
{
    char path[PATH_MAX];
    struct stat sb;
    if (snprintf(path, sizeof path, "%s/" KS_DIR "/%s", cipherdir, name) >= (int)sizeof path ||
        stat(path, &sb) != 0)
        return 0;
    return (uint64_t)sb.st_size;
}

int stats_collect(const char *cipherdir, keystore *ks, const stats_options *opt, volume_stats *st)
{
    walk w = {0};
    found **by_id = NULL;
    size_t nid = 0;
    int rc;

    memset(st, 0, sizeof *st);
    int root = open(cipherdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (root < 0)
        return -errno;
    int dup = fcntl(root, F_DUPFD_CLOEXEC, 0);
    rc = dup < 0 ? -errno : cipherdir_walk(dup, "", add_listed, &w);
    if (rc != 0)
        goto out;

    qsort(w.f, w.n, sizeof *w.f, by_inode);
    for (size_t i = 1; i < w.n; i++)
        w.f[i].link = w.f[i].dev == w.f[i - 1].dev && w.f[i].ino == w.f[i - 1].ino;
    by_id = malloc((w.n ? w.n : 1) * sizeof *by_id);
    if (!by_id) {
        rc = -ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < w.n; i++) {
        found *f = &w.f[i];
        if (f->link) {
            st->links++;
            continue;
        }
        peek(root, f);
        if (f->kind < 0) {
            st->unrecognised++;
            st->unrecognised_bytes += f->size;
            continue;
        }
        stats_kind *k = &st->kind[f->kind];
        k->files++;
        k->plain_bytes += f->plain_size;
        k->stored_bytes += f->size;
        by_id[nid++] = f;
        if (f->kind == PXC_KIND_OPAQUE && opt->keys)
            opaque_reason(root, f, opt, st);
    }

    /* The keystore against the files. */
    st->integrity_ok = keystore_integrity_check(ks, st->integrity, sizeof st->integrity) == KS_OK;
    st->rows = keystore_file_count(ks);
    st->places = keystore_places_count(ks);
    st->places_complete = keystore_places_complete(ks) == 1;
    qsort(by_id, nid, sizeof *by_id, by_file_id);
    for (size_t i = 1; i < nid; i++)
        st->duplicate_ids +=
            memcmp(by_id[i]->file_id, by_id[i - 1]->file_id, PXC_FILE_ID_BYTES) == 0;
    row_check chk = {by_id, nid, st};
    if (keystore_file_foreach(ks, check_row, &chk) != KS_OK)
        st->integrity_ok = 0;
    for (size_t i = 0; i < nid; i++)
        st->files_without_row += !by_id[i]->has_row;
    st->keystore_bytes =
        file_bytes(cipherdir, KS_DB_NAME) + file_bytes(cipherdir, KS_DB_NAME "-wal");
out:
    for (size_t i = 0; i < w.n; i++)
        free(w.f[i].path);
    free(w.f);
    free(by_id);
    close(root);
    return rc;
}

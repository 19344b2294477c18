/* Checking and repairing a volume offline (see fsck.h).
 *
 * Three passes: list every regular file of the cipher dir (sorted, hard links once);
 * check each one, its row and the repairs it needs; then the rows whose file was not
 * seen, and the file ids seen more than once. */
#include "fs/fsck.h"

#include <dirent.h>
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
#include "fs/content.h"
#include "fs/fdio.h"
#include "fs/namepath.h"

#define DAMAGED_DIR "damaged" /* in .pixcrypt: where --move-damaged puts files */
#define DETAIL_MAX 256

typedef struct entry {
    char *path;  /* relative to the cipher dir */
    char *shown; /* the same with names decrypted (as far as they decrypt), for reports */
    dev_t dev;
    ino_t ino;
    int link;      /* another name of a file listed before */
    size_t first;  /* the index of the file's first name (its own, if not a link) */
    int has_id;    /* the stored file's header authenticated: id is its file id */
    int misplaced; /* not at a place of its file: 1, or 2 once bound here (--accept-moved) */
    uint8_t id[PXC_FILE_ID_BYTES];
} entry;

/* A stored file whose header authenticated. */
typedef struct seen {
    uint8_t id[PXC_FILE_ID_BYTES];
    size_t entry;
} seen;

typedef struct fsck_state {
    int root_fd;
    const pxc_keys *keys;
    keystore *ks;
    const fsck_options *opt;
    fsck_summary *sum;
    pxc_names names;
    entry *e;
    size_t ne, ecap;
    seen *s;
    size_t ns, scap;
} fsck_state;

/* What check_file found out about one stored file. */
typedef struct file_check {
    int header_ok; /* info and version can be trusted */
    pxc_stored_info info;
    uint64_t version;
    int damaged;
    int salvageable; /* an opaque file whose header is sound and whose blocks are not */
    char detail[DETAIL_MAX];
} file_check;

const char *fsck_kind_name(fsck_kind kind)
{
    static const char *const names[FSCK_KINDS_] = {
        [FSCK_DAMAGED] = "damaged",   [FSCK_ORPHANED] = "orphaned", [FSCK_MISSING] = "missing",
        [FSCK_MISMATCH] = "mismatch", [FSCK_ROLLBACK] = "rollback", [FSCK_DUPLICATE] = "duplicate",
        [FSCK_TEMP] = "temp",         [FSCK_NAME] = "name",         [FSCK_PLACE] = "place",
    };
    return kind >= 0 && kind < FSCK_KINDS_ ? names[kind] : "?";
}

static void problem(fsck_state *st, fsck_kind kind, const char *what, const char *detail,
                    const char *action, int repaired)
{
    st->sum->found[kind]++;
    if (repaired)
        st->sum->repaired[kind]++;
    if (st->opt->report)
        st->opt->report(st->opt->arg, kind, what, detail, action);
}

/* "could not ...: reason" as an action, counted as an error. */
static const char *failed(fsck_state *st, char *buf, size_t size, const char *what, int err)
{
    st->sum->errors++;
    snprintf(buf, size, "could not %s: %s", what, strerror(err));
    return buf;
}

static int move_aside(fsck_state *st, const char *path, char *dest, size_t size);

/* ---- listing ---------------------------------------------------------------------------- */

static int add_entry(fsck_state *st, const char *path, const char *shown, const struct stat *sb)
{
    if (st->ne == st->ecap) {
        size_t cap = st->ecap ? 2 * st->ecap : 256;
        entry *e = realloc(st->e, cap * sizeof *e);
        if (!e)
            return -ENOMEM;
        st->e = e;
        st->ecap = cap;
    }
    entry *e = &st->e[st->ne];
    e->path = strdup(path);
    e->shown = strdup(shown);
    if (!e->path || !e->shown) {
        free(e->path);
        free(e->shown);
        return -ENOMEM;
    }
    e->dev = sb->st_dev;
    e->ino = sb->st_ino;
    e->link = 0;
    e->first = st->ne;
    e->has_id = e->misplaced = 0;
    st->ne++;
    return 0;
}

/* A name that does not decrypt: reported, and with --move-damaged moved aside (its
 * keystore rows are then missing ones).  1 if it was moved. */
static int bad_name(fsck_state *st, const char *path, const char *shown, const char *what)
{
    char detail[DETAIL_MAX], dest[PATH_MAX], buf[PATH_MAX + 64];
    if (what && strcmp(what, "symlink") == 0)
        snprintf(detail, sizeof detail, "the stored symlink target does not decrypt");
    else
        snprintf(detail, sizeof detail,
                 "the stored name does not decrypt (changed or made in the cipher dir)%s",
                 what ? "; the directory and what is in it are not visible through the mount" : "");
    if (!st->opt->move_damaged) {
        problem(st, FSCK_NAME, shown, detail, NULL, 0);
        return 0;
    }
    int rc = move_aside(st, path, dest, sizeof dest);
    const char *action = buf;
    if (rc)
        action = failed(st, buf, sizeof buf, "move it aside", rc);
    else
        snprintf(buf, sizeof buf, "moved to %s", dest);
    problem(st, FSCK_NAME, shown, detail, action, rc == 0);
    return rc == 0;
}

static int link_decrypts(fsck_state *st, int dirfd, const char *name)
{
    char stored[PATH_MAX + 1], plain[PATH_MAX];
    ssize_t len = readlinkat(dirfd, name, stored, sizeof stored - 1);
    if (len < 0)
        return 1; /* removed meanwhile */
    stored[len] = '\0';
    return pxc_link_decrypt(st->names.keys, stored, plain, sizeof plain) >= 0;
}

/* Every regular file under dir (stored path `rel`, "" for the root; `shown` the same with
 * names decrypted), without following symlinks; the volume's own .pixcrypt at the root,
 * directory IVs and long names' files are not part of it.  Every name must decrypt. */
static int list_dir(fsck_state *st, int fd, const char *rel, const char *shown)
{
    DIR *d = fdopendir(fd);
    struct dirent *de;
    pxc_dirkey dk;
    int rc = 0, have_key = 1;

    if (!d) {
        rc = -errno;
        close(fd);
        return rc;
    }
    if (names_dirkey_load(&st->names, dirfd(d), &dk) != 0) {
        have_key = 0;
        problem(st, FSCK_NAME, rel[0] ? shown : "/",
                "the directory's name key (" DIRIV_FILE ") is missing or damaged: no name in it "
                "decrypts",
                NULL, 0);
    }
    while (rc == 0 && (errno = 0, de = readdir(d)) != NULL) {
        char path[PATH_MAX], plainpath[PATH_MAX], plain[PXC_NAME_MAX + 1];
        const char *name = de->d_name;
        struct stat sb;
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0 ||
            (rel[0] == '\0' && strcmp(de->d_name, KS_DIR) == 0))
            continue;
        if (fstatat(dirfd(d), de->d_name, &sb, AT_SYMLINK_NOFOLLOW) != 0)
            continue; /* removed meanwhile */
        int named =
            content_is_temp_name(de->d_name) || !have_key
                ? 0
                : names_from_stored(&st->names, &dk, dirfd(d), de->d_name, plain, sizeof plain);
        if (named == 1)
            continue; /* IV, long names' files */
        if (named == 0 && !content_is_temp_name(de->d_name) && have_key)
            name = plain;
        if (snprintf(path, sizeof path, "%s%s%s", rel, rel[0] ? "/" : "", de->d_name) >=
                (int)sizeof path ||
            snprintf(plainpath, sizeof plainpath, "%s%s%s", shown, shown[0] ? "/" : "", name) >=
                (int)sizeof plainpath) {
            rc = -ENAMETOOLONG;
            break;
        }
        if (named < 0 && bad_name(st, path, plainpath, S_ISDIR(sb.st_mode) ? "directory" : NULL))
            continue;
        if (S_ISLNK(sb.st_mode) && st->names.encrypted && !link_decrypts(st, dirfd(d), de->d_name))
            bad_name(st, path, plainpath, "symlink");
        if (S_ISREG(sb.st_mode)) {
            rc = add_entry(st, path, plainpath, &sb);
        } else if (S_ISDIR(sb.st_mode)) {
            int sub = openat(dirfd(d), de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (sub >= 0)
                rc = list_dir(st, sub, path, plainpath);
        }
    }
    if (rc == 0 && errno != 0)
        rc = -errno;
    sodium_memzero(&dk, sizeof dk);
    closedir(d);
    return rc;
}

static int by_path(const void *a, const void *b)
{
    return strcmp(((const entry *)a)->path, ((const entry *)b)->path);
}

static int by_inode(const void *a, const void *b)
{
    const entry *x = *(entry *const *)a, *y = *(entry *const *)b;
    if (x->dev != y->dev)
        return x->dev < y->dev ? -1 : 1;
    if (x->ino != y->ino)
        return x->ino < y->ino ? -1 : 1;
    return strcmp(x->path, y->path);
}

/* Sorts the list by path and marks every name of a file but its first as a link. */
static int mark_links(fsck_state *st)
{
    entry **order = malloc((st->ne ? st->ne : 1) * sizeof *order);
    if (!order)
        return -ENOMEM;
    qsort(st->e, st->ne, sizeof *st->e, by_path);
    for (size_t i = 0; i < st->ne; i++)
        order[i] = &st->e[i];
    qsort(order, st->ne, sizeof *order, by_inode);
    for (size_t i = 0; i < st->ne; i++)
        order[i]->first = (size_t)(order[i] - st->e);
    for (size_t i = 1; i < st->ne; i++) {
        order[i]->link = order[i]->dev == order[i - 1]->dev && order[i]->ino == order[i - 1]->ino;
        if (order[i]->link)
            order[i]->first = order[i - 1]->first;
    }
    free(order);
    return 0;
}

/* ---- one stored file -------------------------------------------------------------------- */

static void damaged(file_check *fc, const char *why, int err)
{
    fc->damaged = 1;
    if (err)
        snprintf(fc->detail, sizeof fc->detail, "%s: %s", why, strerror(err));
    else
        snprintf(fc->detail, sizeof fc->detail, "%s", why);
}

/* The blocks of an opaque file. */
static void check_opaque(fsck_state *st, int fd, file_check *fc)
{
    opaque_file of;
    uint64_t bad = 0;
    int rc = opaque_open(&of, fd, st->keys);
    if (rc == 0)
        rc = opaque_verify(&of, &bad);
    opaque_close(&of);
    if (rc == 0)
        return;
    if (rc != -EBADMSG) {
        damaged(fc, "cannot read it", -rc);
        return;
    }
    fc->damaged = fc->salvageable = 1;
    snprintf(fc->detail, sizeof fc->detail,
             "the block at plaintext offset %llu fails authentication", (unsigned long long)bad);
}

/* The whole stored image: MAC, record, every sample, and the size its header claims. */
static void check_image(fsck_state *st, int fd, uint64_t stored_size, file_check *fc)
{
    uint8_t *stored, *plain = NULL;
    size_t plain_len = 0;
    if (stored_size > PXC_STORED_MAX_STORED_BYTES) {
        damaged(fc, "its stored size is over the limit for a stored image", 0);
        return;
    }
    stored = malloc((size_t)stored_size);
    if (!stored) {
        damaged(fc, "cannot check it", ENOMEM);
        return;
    }
    ssize_t r = fd_read_full(fd, stored, (size_t)stored_size, 0);
    int rc = r < 0 ? (int)r : (uint64_t)r != stored_size ? -EIO : 0;
    if (rc == 0)
        rc = pxc_stored_decode(fc->info.kind, stored, (size_t)stored_size, st->keys, &plain,
                               &plain_len);
    free(stored);
    if (plain) {
        sodium_memzero(plain, plain_len);
        free(plain);
    }
    if (rc == -EBADMSG)
        damaged(fc, "the stored image fails authentication", 0);
    else if (rc != 0)
        damaged(fc, "cannot decode it", -rc);
    else if (plain_len != fc->info.plain_size)
        damaged(fc, "it decodes to another size than its header says", 0);
}

/* Header, sealed secrets, then every block or the whole image. */
static void check_file(fsck_state *st, int fd, uint64_t stored_size, file_check *fc)
{
    uint8_t head[PXC_STORED_PEEK_BYTES];
    pxc_file_secrets s;
    size_t want = stored_size < sizeof head ? (size_t)stored_size : sizeof head;

    memset(fc, 0, sizeof *fc);
    ssize_t r = fd_read_full(fd, head, want, 0);
    if (r < 0) {
        damaged(fc, "cannot read it", (int)-r);
        return;
    }
    if (pxc_stored_peek(head, (size_t)r, stored_size, &fc->info) != 0) {
        if (pxc_stored_kind(head, (size_t)r) == PXC_KIND_OPAQUE) {
            /* An opaque header over an impossible size: a torn tail, perhaps. */
            fc->salvageable = 1;
            damaged(fc, "its stored size is impossible (torn or cut)", 0);
        } else {
            damaged(fc, "no valid pixcrypt header (not a stored file of this format)", 0);
        }
        return;
    }
    if (pxc_stored_open_secrets(&fc->info, st->keys, &s) != 0) {
        damaged(fc, "its header does not authenticate (altered, or another volume's)", 0);
        return;
    }
    fc->header_ok = 1;
    fc->version = s.version;
    sodium_memzero(&s, sizeof s);
    if (fc->info.kind == PXC_KIND_OPAQUE)
        check_opaque(st, fd, fc);
    else
        check_image(st, fd, stored_size, fc);
}

/* ---- repairs of one file ---------------------------------------------------------------- */

static void row_of(ks_file_row *row, const file_check *fc)
{
    memset(row, 0, sizeof *row);
    memcpy(row->file_id, fc->info.file_id, sizeof row->file_id);
    row->kind = fc->info.kind;
    memcpy(row->seed_sealed, fc->info.sealed, PXC_SEALED_SECRETS_BYTES);
    row->seed_sealed_len = PXC_SEALED_SECRETS_BYTES;
    row->plain_size = fc->info.plain_size;
    row->version = fc->version;
}

static int put_row(fsck_state *st, const file_check *fc)
{
    ks_file_row row;
    row_of(&row, fc);
    int rc = keystore_file_put(st->ks, &row);
    return rc == KS_OK ? 0 : EIO;
}

/* Creates dir/.../ under .pixcrypt/damaged for path and moves the file there (under a new
 * name if one is taken).  The destination in *dest. */
static int move_aside(fsck_state *st, const char *path, char *dest, size_t size)
{
    char dir[PATH_MAX];
    int n = snprintf(dir, sizeof dir, KS_DIR "/" DAMAGED_DIR "/%s", path);
    if (n < 0 || (size_t)n >= sizeof dir)
        return ENAMETOOLONG;
    for (char *p = dir + strlen(KS_DIR) + 1; (p = strchr(p, '/')) != NULL; p++) {
        *p = '\0';
        if (mkdirat(st->root_fd, dir, 0700) != 0 && errno != EEXIST)
            return errno;
        *p = '/';
    }
    for (int k = 0; k < 1000; k++) {
        n = k ? snprintf(dest, size, "%s.%d", dir, k) : snprintf(dest, size, "%s", dir);
        if (n < 0 || (size_t)n >= size)
            return ENAMETOOLONG;
        if (renameat2(st->root_fd, path, st->root_fd, dest, RENAME_NOREPLACE) == 0)
            return 0;
        if (errno != EEXIST)
            return errno;
    }
    return EEXIST;
}

/* An empty file: its create was interrupted before the stored header was written.  The
 * repair makes it the empty stored file it was going to be. */
static void repair_empty(fsck_state *st, const entry *e, file_check *fc)
{
    char buf[DETAIL_MAX];
    const char *detail = "empty: its create was interrupted before its header was written";
    memset(fc, 0, sizeof *fc);
    if (!st->opt->repair) {
        problem(st, FSCK_DAMAGED, e->shown, detail, NULL, 0);
        return;
    }
    opaque_file of;
    int fd = openat(st->root_fd, e->path, O_RDWR | O_NOFOLLOW | O_CLOEXEC);
    int rc = fd < 0 ? errno : -opaque_create(&of, fd, st->keys);
    if (fd >= 0 && rc == 0 && fsync(fd) != 0)
        rc = errno;
    if (fd >= 0 && rc == 0) {
        memset(fc, 0, sizeof *fc);
        fc->header_ok = 1;
        fc->info.kind = PXC_KIND_OPAQUE;
        memcpy(fc->info.file_id, of.secrets.file_id, PXC_FILE_ID_BYTES);
        memcpy(fc->info.sealed, of.sealed, PXC_SEALED_SECRETS_BYTES);
        fc->version = of.secrets.version;
        opaque_close(&of);
        /* A new file id: its place is here (the create's own one goes as stale). */
        if (keystore_place_add(st->ks, fc->info.file_id, e->path) != KS_OK)
            rc = EIO;
    }
    if (fd >= 0)
        close(fd);
    problem(st, FSCK_DAMAGED, e->shown, detail,
            rc ? failed(st, buf, sizeof buf, "initialise it", rc) : "made an empty stored file",
            rc == 0);
}

/* A damaged file: reported, and with --repair a torn tail is cut, with --move-damaged
 * the file is moved aside.  Returns 1 if the file is still there to check its row. */
static int handle_damaged(fsck_state *st, const entry *e, file_check *fc)
{
    char action[DETAIL_MAX + PATH_MAX], dest[PATH_MAX];
    uint64_t kept = 0;
    int rc;

    if (st->opt->repair && fc->salvageable) {
        int fd = openat(st->root_fd, e->path, O_RDWR | O_NOFOLLOW | O_CLOEXEC);
        rc = fd < 0 ? -errno : opaque_salvage(fd, st->keys, &kept);
        if (rc == 0) {
            /* Checked again from scratch: only a sound file counts as repaired. */
            struct stat sb;
            char detail[DETAIL_MAX];
            snprintf(detail, sizeof detail, "%s", fc->detail);
            snprintf(action, sizeof action, "torn tail cut: the first %llu bytes kept",
                     (unsigned long long)kept);
            if (fstat(fd, &sb) == 0)
                check_file(st, fd, (uint64_t)sb.st_size, fc);
            close(fd);
            problem(st, FSCK_DAMAGED, e->shown, detail, action, !fc->damaged);
            return fc->header_ok;
        }
        if (fd >= 0)
            close(fd);
    }
    if (!st->opt->move_damaged) {
        problem(st, FSCK_DAMAGED, e->shown, fc->detail, NULL, 0);
        return fc->header_ok;
    }
    rc = move_aside(st, e->path, dest, sizeof dest);
    if (rc == 0 && fc->header_ok && keystore_file_delete(st->ks, fc->info.file_id) != KS_OK)
        rc = EIO;
    if (rc == 0)
        (void)keystore_place_drop(st->ks, e->path);
    if (rc == 0)
        snprintf(action, sizeof action, "moved to %s, its row dropped", dest);
    problem(st, FSCK_DAMAGED, e->shown, fc->detail,
            rc ? failed(st, action, sizeof action, "move it aside", rc) : action, rc == 0);
    return 0;
}

/* The row of a sound (or at least authenticated) stored file. */
static void check_row(fsck_state *st, const entry *e, const file_check *fc)
{
    char detail[DETAIL_MAX], buf[DETAIL_MAX];
    ks_file_row row, want;
    int rc;

    if (st->opt->rebuild) {
        /* A copy of the same file may have been put already: the newest one wins. */
        if (keystore_file_get(st->ks, fc->info.file_id, &row) == KS_OK && row.version > fc->version)
            return;
        if ((rc = put_row(st, fc)) != 0)
            failed(st, buf, sizeof buf, "add a row", rc);
        else
            st->sum->rows_added++;
        return;
    }
    rc = keystore_file_get(st->ks, fc->info.file_id, &row);
    if (rc == KS_ERR_NOTFOUND) {
        rc = st->opt->repair ? put_row(st, fc) : 0;
        problem(st, FSCK_ORPHANED, e->shown, "no keystore row",
                !st->opt->repair ? NULL
                : rc             ? failed(st, buf, sizeof buf, "add its row", rc)
                                 : "row added from its header",
                st->opt->repair && rc == 0);
        return;
    }
    if (rc != KS_OK) {
        problem(st, FSCK_MISMATCH, e->shown, "its keystore row cannot be read",
                failed(st, buf, sizeof buf, "read the row", EIO), 0);
        return;
    }
    if (row.version > fc->version) {
        snprintf(detail, sizeof detail,
                 "the stored file is version %llu, the keystore knows version %llu (an older "
                 "copy was put back)",
                 (unsigned long long)fc->version, (unsigned long long)row.version);
        rc = st->opt->accept_rollback ? put_row(st, fc) : 0;
        problem(st, FSCK_ROLLBACK, e->shown, detail,
                !st->opt->accept_rollback ? NULL
                : rc                      ? failed(st, buf, sizeof buf, "accept it", rc)
                                          : "accepted: the keystore row now has this version",
                st->opt->accept_rollback && rc == 0);
        return;
    }
    row_of(&want, fc);
    const char *what = row.kind != want.kind               ? "kind"
                       : row.plain_size != want.plain_size ? "plaintext size"
                       : row.version != want.version       ? "version"
                       : row.seed_sealed_len != want.seed_sealed_len ||
                               memcmp(row.seed_sealed, want.seed_sealed, want.seed_sealed_len)
                           ? "sealed secrets"
                           : NULL;
    if (!what)
        return;
    snprintf(detail, sizeof detail,
             "the keystore row differs from the header in its %s (row: kind %d, %llu bytes, "
             "version %llu; header: kind %d, %llu bytes, version %llu)",
             what, row.kind, (unsigned long long)row.plain_size, (unsigned long long)row.version,
             want.kind, (unsigned long long)want.plain_size, (unsigned long long)want.version);
    rc = st->opt->repair ? put_row(st, fc) : 0;
    problem(st, FSCK_MISMATCH, e->shown, detail,
            !st->opt->repair ? NULL
            : rc             ? failed(st, buf, sizeof buf, "update the row", rc)
                             : "row updated from the header",
            st->opt->repair && rc == 0);
}

static int remember(fsck_state *st, const uint8_t id[PXC_FILE_ID_BYTES], size_t index)
{
    if (st->ns == st->scap) {
        size_t cap = st->scap ? 2 * st->scap : 256;
        seen *s = realloc(st->s, cap * sizeof *s);
        if (!s)
            return -ENOMEM;
        st->s = s;
        st->scap = cap;
    }
    memcpy(st->s[st->ns].id, id, PXC_FILE_ID_BYTES);
    st->s[st->ns++].entry = index;
    return 0;
}

static int check_entry(fsck_state *st, size_t i)
{
    const entry *e = &st->e[i];
    const char *base = strrchr(e->path, '/');
    char buf[DETAIL_MAX];
    file_check fc;
    struct stat sb;

    base = base ? base + 1 : e->path;
    if (content_is_temp_name(base)) {
        int rc = st->opt->repair && unlinkat(st->root_fd, e->path, 0) != 0 ? errno : 0;
        problem(st, FSCK_TEMP, e->shown, "left by an interrupted conversion",
                !st->opt->repair ? NULL
                : rc             ? failed(st, buf, sizeof buf, "remove it", rc)
                                 : "removed",
                st->opt->repair && rc == 0);
        return 0;
    }
    int fd = openat(st->root_fd, e->path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &sb) != 0) {
        int err = errno;
        if (fd >= 0)
            close(fd);
        snprintf(buf, sizeof buf, "cannot open it: %s", strerror(err));
        st->sum->errors++;
        problem(st, FSCK_DAMAGED, e->shown, buf, NULL, 0);
        return 0;
    }
    if (sb.st_size == 0) {
        close(fd);
        repair_empty(st, e, &fc);
        if (!fc.header_ok)
            return 0;
    } else {
        check_file(st, fd, (uint64_t)sb.st_size, &fc);
        close(fd);
        if (fc.damaged && !handle_damaged(st, e, &fc))
            return 0;
    }
    st->sum->files++;
    st->sum->bytes += fc.info.plain_size;
    check_row(st, e, &fc);
    st->e[i].has_id = 1;
    memcpy(st->e[i].id, fc.info.file_id, PXC_FILE_ID_BYTES);
    return remember(st, fc.info.file_id, i);
}

/* ---- places ------------------------------------------------------------------------------ */

/* Whether the file of entry i has a place that is not one of its own names: a place
 * holding another file (or a place row that does not authenticate). */
static int placed_elsewhere(fsck_state *st, size_t i)
{
    char **paths;
    size_t n, forged;
    if (keystore_places_of(st->ks, st->e[i].id, &paths, &n, &forged) != KS_OK)
        return 1;
    int elsewhere = forged > 0;
    for (size_t k = 0; k < n && !elsewhere; k++) {
        entry key = {.path = paths[k]};
        const entry *e = bsearch(&key, st->e, st->ne, sizeof *st->e, by_path);
        elsewhere = e && e->first != i;
    }
    keystore_places_free(paths, n);
    return elsewhere;
}

/* Where the other places of id are, for a report. */
static void places_named(fsck_state *st, const uint8_t *id, char *out, size_t cap)
{
    char **paths;
    size_t n, forged;
    out[0] = '\0';
    if (keystore_places_of(st->ks, id, &paths, &n, &forged) != KS_OK || n == 0) {
        snprintf(out, cap, "no place is recorded for its file id");
        return;
    }
    snprintf(out, cap, "its file id was written at %s%s", paths[0], n > 1 ? " and elsewhere" : "");
    keystore_places_free(paths, n);
}

/* Every name of every authenticated stored file against its places.  A file without any
 * place in a volume that is still learning them is recorded where it is (with --repair or
 * rebuild); any other name that is not a place of its file is misplaced. */
static void check_names_placed(fsck_state *st, int learning, int may_record)
{
    char detail[DETAIL_MAX + PATH_MAX], buf[DETAIL_MAX];
    uint8_t *unplaced = calloc(st->ne ? st->ne : 1, 1);
    if (!unplaced) {
        st->sum->errors++;
        return;
    }
    for (size_t i = 0; learning && i < st->ne; i++)
        if (st->e[i].has_id && !st->e[i].link)
            unplaced[i] = !placed_elsewhere(st, i);
    for (size_t i = 0; i < st->ne; i++) {
        entry *e = &st->e[i];
        const entry *f = &st->e[e->first];
        if (!f->has_id)
            continue;
        int has = keystore_place_has(st->ks, f->id, e->path);
        if (has == 1)
            continue;
        if (has < 0) {
            problem(st, FSCK_PLACE, e->shown, "its places cannot be read",
                    failed(st, buf, sizeof buf, "read the keystore", EIO), 0);
            continue;
        }
        if (learning && unplaced[e->first]) {
            st->sum->places_unknown++;
            if (may_record && keystore_place_add(st->ks, f->id, e->path) == KS_OK)
                st->sum->places_recorded++;
            continue;
        }
        places_named(st, f->id, buf, sizeof buf);
        snprintf(detail, sizeof detail,
                 "the stored file is not where it was written (swapped or moved outside the "
                 "mount): %s",
                 buf);
        int rc = st->opt->accept_moved ? keystore_place_add(st->ks, f->id, e->path) : KS_OK;
        e->misplaced = st->opt->accept_moved && rc == KS_OK ? 2 : 1;
        problem(st, FSCK_PLACE, e->shown, detail,
                !st->opt->accept_moved ? NULL
                : rc != KS_OK          ? failed(st, buf, sizeof buf, "bind it here", EIO)
                                       : "accepted: bound where it is",
                st->opt->accept_moved && rc == KS_OK);
    }
    free(unplaced);
}

typedef struct place_row_list {
    char **path;
    uint8_t (*id)[PXC_FILE_ID_BYTES];
    int *authentic;
    size_t n, cap;
    int nomem;
} place_row_list;

static int collect_place(const char *path, const uint8_t id[PXC_FILE_ID_BYTES], int authentic,
                         void *arg)
{
    place_row_list *l = arg;
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 256;
        char **p = realloc(l->path, cap * sizeof *p);
        if (p)
            l->path = p;
        uint8_t(*i)[PXC_FILE_ID_BYTES] = p ? realloc(l->id, cap * sizeof *i) : NULL;
        if (i)
            l->id = i;
        int *a = i ? realloc(l->authentic, cap * sizeof *a) : NULL;
        if (!a) {
            l->nomem = 1;
            return 1;
        }
        l->authentic = a;
        l->cap = cap;
    }
    if ((l->path[l->n] = strdup(path)) == NULL) {
        l->nomem = 1;
        return 1;
    }
    memcpy(l->id[l->n], id, PXC_FILE_ID_BYTES);
    l->authentic[l->n++] = authentic;
    return 0;
}

/* Place rows that hold no file of theirs: left by a crash (a rename's old place), by a
 * change outside the mount, or altered (no longer authentic). */
static int check_stale_places(fsck_state *st)
{
    place_row_list l = {0};
    char buf[DETAIL_MAX];
    int rc = keystore_place_foreach(st->ks, collect_place, &l);
    if (rc != KS_OK || l.nomem) {
        rc = l.nomem ? -ENOMEM : -EIO;
        goto out;
    }
    for (size_t i = 0; i < l.n; i++) {
        entry key = {.path = l.path[i]};
        const entry *e = bsearch(&key, st->e, st->ne, sizeof *st->e, by_path);
        const entry *f = e ? &st->e[e->first] : NULL;
        const char *detail;
        if (!l.authentic[i])
            detail = "a place row that does not authenticate (altered in the keystore)";
        else if (f && f->has_id && memcmp(f->id, l.id[i], PXC_FILE_ID_BYTES) == 0)
            continue;
        else if (f && !f->has_id)
            continue; /* a damaged file: reported as such */
        else if (e && e->misplaced == 1)
            continue; /* another file is here, reported as misplaced: this row says where
                       * the file of its id belongs, should it be moved back */
        else if (e && e->misplaced == 2) {
            (void)keystore_place_drop_one(st->ks, l.id[i], l.path[i]); /* part of accepting */
            continue;
        } else
            detail = "a place without its file (left by a crash, or the file was changed "
                     "outside the mount)";
        int drop = st->opt->repair ? keystore_place_drop_one(st->ks, l.id[i], l.path[i]) : KS_OK;
        problem(st, FSCK_PLACE, l.path[i], detail,
                !st->opt->repair ? NULL
                : drop != KS_OK  ? failed(st, buf, sizeof buf, "drop it", EIO)
                                 : "dropped",
                st->opt->repair && drop == KS_OK);
    }
    rc = 0;
out:
    for (size_t i = 0; i < l.n; i++)
        free(l.path[i]);
    free(l.path);
    free(l.id);
    free(l.authentic);
    return rc;
}

static int check_places(fsck_state *st)
{
    int learning = st->opt->rebuild || keystore_places_complete(st->ks) != 1;
    int may_record = st->opt->repair || st->opt->rebuild;
    size_t before = st->sum->found[FSCK_PLACE] - st->sum->repaired[FSCK_PLACE];
    check_names_placed(st, learning, may_record);
    int rc = check_stale_places(st);
    size_t open_problems = st->sum->found[FSCK_PLACE] - st->sum->repaired[FSCK_PLACE] - before;
    if (rc == 0 && learning && may_record && open_problems == 0 &&
        st->sum->places_recorded == st->sum->places_unknown &&
        keystore_places_set_complete(st->ks) == KS_OK)
        learning = 0;
    st->sum->places_complete = !learning;
    return rc;
}

/* ---- rows without files, ids with several files ----------------------------------------- */

static int by_id(const void *a, const void *b)
{
    return memcmp(((const seen *)a)->id, ((const seen *)b)->id, PXC_FILE_ID_BYTES);
}

typedef struct missing_list {
    fsck_state *st;
    ks_file_row *rows;
    size_t n, cap;
    int nomem;
} missing_list;

static int collect_missing(const ks_file_row *row, void *arg)
{
    missing_list *m = arg;
    seen key;
    memcpy(key.id, row->file_id, sizeof key.id);
    if (bsearch(&key, m->st->s, m->st->ns, sizeof *m->st->s, by_id))
        return 0;
    if (m->n == m->cap) {
        size_t cap = m->cap ? 2 * m->cap : 64;
        ks_file_row *r = realloc(m->rows, cap * sizeof *r);
        if (!r) {
            m->nomem = 1;
            return 1;
        }
        m->rows = r;
        m->cap = cap;
    }
    m->rows[m->n++] = *row;
    return 0;
}

static int check_missing(fsck_state *st)
{
    missing_list m = {.st = st};
    char id[2 * PXC_FILE_ID_BYTES + 1], detail[DETAIL_MAX], buf[DETAIL_MAX];
    int rc = keystore_file_foreach(st->ks, collect_missing, &m);

    if (rc != KS_OK || m.nomem) {
        free(m.rows);
        return m.nomem ? -ENOMEM : -EIO;
    }
    for (size_t i = 0; i < m.n; i++) {
        const ks_file_row *r = &m.rows[i];
        sodium_bin2hex(id, sizeof id, r->file_id, sizeof r->file_id);
        snprintf(detail, sizeof detail,
                 "keystore row (kind %d, %llu bytes, version %llu) without a stored file: "
                 "removed outside the mount",
                 r->kind, (unsigned long long)r->plain_size, (unsigned long long)r->version);
        int drop = st->opt->repair ? keystore_file_delete(st->ks, r->file_id) : KS_OK;
        problem(st, FSCK_MISSING, id, detail,
                !st->opt->repair ? NULL
                : drop != KS_OK  ? failed(st, buf, sizeof buf, "drop the row", EIO)
                                 : "row dropped",
                st->opt->repair && drop == KS_OK);
    }
    free(m.rows);
    return 0;
}

static void check_duplicates(fsck_state *st)
{
    char id[2 * PXC_FILE_ID_BYTES + 1], detail[DETAIL_MAX];
    for (size_t i = 1; i < st->ns; i++) {
        if (by_id(&st->s[i - 1], &st->s[i]) != 0)
            continue;
        sodium_bin2hex(id, sizeof id, st->s[i].id, PXC_FILE_ID_BYTES);
        snprintf(detail, sizeof detail,
                 "has the file id %s of %s: a copy made in the cipher dir, not through the mount",
                 id, st->e[st->s[i - 1].entry].shown);
        problem(st, FSCK_DUPLICATE, st->e[st->s[i].entry].shown, detail, NULL, 0);
    }
}

int fsck_run(const char *cipherdir, const pxc_keys *keys, keystore *ks, const fsck_options *opt,
             fsck_summary *sum)
{
    fsck_state st = {.keys = keys, .ks = ks, .opt = opt, .sum = sum};
    int rc;

    memset(sum, 0, sizeof *sum);
    st.root_fd = open(cipherdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (st.root_fd < 0)
        return -errno;
    int top = dup(st.root_fd);
    ks_volume_info info;
    rc = keystore_volume_info(ks, &info) != KS_OK ? -EIO : 0;
    if (rc == 0 && names_init(&st.names, keys->master, info.names == KS_NAMES_ENCRYPTED) != 0)
        rc = -ENOMEM;
    if (rc == 0 && keystore_places_key(ks, keys->master) != KS_OK)
        rc = -EIO;
    if (rc == 0)
        rc = top < 0 ? -errno : list_dir(&st, top, "", "");
    else if (top >= 0)
        close(top);
    if (rc == 0)
        rc = mark_links(&st);
    for (size_t i = 0; rc == 0 && i < st.ne; i++) {
        if (!st.e[i].link)
            rc = check_entry(&st, i);
        if (opt->progress)
            opt->progress(opt->arg, i + 1, st.ne);
    }
    if (rc == 0) {
        rc = check_places(&st);
        qsort(st.s, st.ns, sizeof *st.s, by_id);
        if (rc == 0 && !opt->rebuild)
            rc = check_missing(&st);
        check_duplicates(&st);
    }
    sum->rows = keystore_file_count(ks);
    for (size_t i = 0; i < st.ne; i++)
        free(st.e[i].path), free(st.e[i].shown);
    free(st.e);
    free(st.s);
    names_free(&st.names);
    close(st.root_fd);
    return rc;
}

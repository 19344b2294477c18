/* `pixcrypt encrypt` / `decrypt` over files and trees (see offline.h): the plan (which
 * outputs, from walking the sources first, so that outputs are never walked), the
 * directories and symlinks (in order, one thread), then the files (a pool of threads),
 * each written to a temp file beside its output and renamed into place. */
#include "fs/offline.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "codec/opaque.h"
#include "fs/content.h"
#include "fs/offline_file.h"
#include "fs/outfile.h"
#include "fs/progress.h"

enum job_type { JOB_DIR, JOB_FILE, JOB_LINK };

typedef struct job {
    int type;
    char *src, *dst;
    struct stat st; /* the source's, when planned */
} job;

typedef struct devino {
    dev_t dev;
    ino_t ino;
} devino;

typedef struct run {
    const offline_options *o;
    const offline_volume *v;
    offline_summary *sum;
    job *jobs;
    size_t njobs, cap;
    devino *inputs; /* every source file, sorted: never overwritten */
    size_t ninputs;
    devino skip[2]; /* the volume's .pixcrypt directory, the destination root */
    job **files;    /* the file jobs, largest first */
    size_t nfiles, next;
    uint64_t bytes;
    progress bar;
    pthread_mutex_t lock; /* sum */
} run;

/* The path of dir (an existing directory) relative to the volume's cipher dir, in real
 * (PATH_MAX bytes): "" for the cipher dir itself, NULL when dir is not in the volume. */
static const char *volume_relative(const offline_volume *v, const char *dir, char *real)
{
    const char *vol = v->cipherdir;
    size_t k = strlen(vol);
    if (!realpath(dir, real) || strncmp(real, vol, k) != 0 || (real[k] != '\0' && real[k] != '/'))
        return NULL;
    return real + k + (real[k] == '/');
}

/* Whether names written into the existing directory dir are encrypted. */
static int encrypts_names_in(const offline_volume *v, const char *dir)
{
    char real[PATH_MAX];
    return v->names && v->names->encrypted && volume_relative(v, dir, real) != NULL;
}

int offline_stored_name(const offline_volume *v, const char *out_dir, const char *plain, char *out,
                        size_t size)
{
    if (!encrypts_names_in(v, out_dir))
        return (size_t)snprintf(out, size, "%s", plain) < size ? 0 : -ENAMETOOLONG;
    int dirfd = open(out_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dirfd < 0)
        return -errno;
    pxc_dirkey dk;
    stored_name sn;
    int made = 0, rc = names_dirkey_load(v->names, dirfd, &dk) != 0 ? -EIO : 0;
    if (rc == 0)
        rc = names_to_stored(v->names, &dk, plain, &sn);
    if (rc == 0)
        rc = names_long_put(dirfd, &sn, &made);
    if (rc == 0)
        rc = (size_t)snprintf(out, size, "%s", sn.name) < size ? 0 : -ENAMETOOLONG;
    sodium_memzero(&dk, sizeof dk);
    close(dirfd);
    return rc;
}

/* What a failed offline_stored_name / offline_plain_name means, for the error line. */
static const char *name_error(int m)
{
    switch (m) {
    case -EBADMSG:
        return "the stored name does not decrypt";
    case -EIO:
        return "the directory's name key is missing or damaged";
    case -ENAMETOOLONG:
        return "output name too long";
    default:
        return strerror(-m);
    }
}

int offline_plain_name(const pxc_names *names, const char *in_dir, const char *stored, char *out,
                       size_t size)
{
    int dirfd = names && names->encrypted ? open(in_dir, O_PATH | O_DIRECTORY | O_CLOEXEC) : -1;
    struct stat st;
    if (dirfd < 0 || fstatat(dirfd, DIRIV_FILE, &st, AT_SYMLINK_NOFOLLOW) != 0) {
        /* plaintext names, or no directory of the volume: names are what they are */
        if (dirfd >= 0)
            close(dirfd);
        return (size_t)snprintf(out, size, "%s", stored) < size ? 0 : -ENAMETOOLONG;
    }
    pxc_dirkey dk;
    int rc = names_dirkey_load(names, dirfd, &dk);
    if (rc == 0)
        rc = names_from_stored(names, &dk, dirfd, stored, out, size);
    sodium_memzero(&dk, sizeof dk);
    close(dirfd);
    return rc < 0 ? -EBADMSG : rc;
}

static const char *cmd_name(const run *r)
{
    return r->o->direction == OFFLINE_ENCRYPT ? "encrypt" : "decrypt";
}

/* "pixcrypt CMD: PATH: reason" on stderr, counted as a failed file. */
static void fail(run *r, const char *path, const char *why)
{
    progress_say(&r->bar, "pixcrypt %s: %s: %s", cmd_name(r), path, why);
    pthread_mutex_lock(&r->lock);
    r->sum->failed++;
    pthread_mutex_unlock(&r->lock);
}

/* ---- the plan ----------------------------------------------------------- */

static int add_job(run *r, int type, const char *src, const char *dst, const struct stat *st)
{
    if (r->njobs == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 64;
        job *j = realloc(r->jobs, cap * sizeof *j);
        if (!j)
            return -ENOMEM;
        r->jobs = j;
        r->cap = cap;
    }
    job *j = &r->jobs[r->njobs];
    j->type = type;
    j->src = strdup(src);
    j->dst = strdup(dst);
    j->st = *st;
    if (!j->src || !j->dst) {
        free(j->src);
        free(j->dst);
        return -ENOMEM;
    }
    r->njobs++;
    if (type == JOB_FILE)
        r->bytes += (uint64_t)st->st_size;
    return 0;
}

static int is_skipped(const run *r, const struct stat *st)
{
    for (size_t i = 0; i < sizeof r->skip / sizeof r->skip[0]; i++)
        if (r->skip[i].ino && r->skip[i].dev == st->st_dev && r->skip[i].ino == st->st_ino)
            return 1;
    return 0;
}

static int join(char *out, size_t size, const char *dir, const char *name)
{
    size_t k = strlen(dir);
    int slash = k > 0 && dir[k - 1] == '/';
    return (size_t)snprintf(out, size, "%s%s%s", dir, slash ? "" : "/", name) < size
               ? 0
               : -ENAMETOOLONG;
}

static int plan_path(run *r, const char *src, const char *dst, const struct stat *st);
static void split_path(const char *path, char *dir, size_t dsize, char *base, size_t bsize);

/* The entries of directory src, planned into dst. */
static int plan_dir(run *r, const char *src, const char *dst)
{
    DIR *d = opendir(src);
    struct dirent *de;
    int rc = 0;
    if (!d) {
        fail(r, src, strerror(errno));
        return 0;
    }
    while (rc == 0 && (errno = 0, de = readdir(d)) != NULL) {
        char s[PATH_MAX], t[PATH_MAX], name[NAME_MAX + 1];
        struct stat st;
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        if (join(s, sizeof s, src, de->d_name) != 0) {
            fail(r, src, "a name in it is too long");
            continue;
        }
        if (content_is_temp_name(de->d_name)) {
            /* A conversion's or an earlier run's temp file, never part of a tree. */
            if (r->o->direction == OFFLINE_ENCRYPT)
                fail(r, s, "name reserved for pixcrypt's temp files: not encrypted");
            continue;
        }
        if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
            fail(r, s, strerror(errno));
            continue;
        }
        if (is_skipped(r, &st))
            continue;
        int m = r->o->direction == OFFLINE_ENCRYPT
                    ? offline_stored_name(r->v, dst, de->d_name, name, sizeof name)
                    : offline_plain_name(r->v->names, src, de->d_name, name, sizeof name);
        if (m == 1)
            continue; /* a directory IV or a long name's file */
        if (m != 0 || join(t, sizeof t, dst, name) != 0) {
            fail(r, s, name_error(m ? m : -ENAMETOOLONG));
            continue;
        }
        rc = plan_path(r, s, r->o->in_place ? s : t, &st);
    }
    if (rc == 0 && errno != 0)
        fail(r, src, strerror(errno));
    closedir(d);
    return rc;
}

/* In a volume with encrypted names, the names inside a new output directory are
 * encrypted under its key, which comes from its IV: so the directory (and its IV) is
 * made while planning, not with the other directories.  1 if dst is ready (or not in
 * the volume). */
static int make_named_dir(run *r, const char *dst)
{
    char dir[PATH_MAX], base[NAME_MAX + 1];
    struct stat st;
    split_path(dst, dir, sizeof dir, base, sizeof base);
    if (!encrypts_names_in(r->v, dir))
        return 1;
    if (mkdir(dst, 0700) != 0 && !(errno == EEXIST && stat(dst, &st) == 0 && S_ISDIR(st.st_mode))) {
        fail(r, dst, errno == EEXIST ? "exists and is not a directory" : strerror(errno));
        return 0;
    }
    pxc_dirkey dk;
    int fd = open(dst, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int rc = fd < 0 ? -errno : names_dirkey_load(r->v->names, fd, &dk);
    sodium_memzero(&dk, sizeof dk);
    if (fd >= 0)
        close(fd);
    if (rc != 0) {
        fail(r, dst, "cannot give the directory its name key");
        return 0;
    }
    return 1;
}

static int plan_path(run *r, const char *src, const char *dst, const struct stat *st)
{
    if (S_ISREG(st->st_mode))
        return add_job(r, JOB_FILE, src, dst, st);
    if (S_ISDIR(st->st_mode)) {
        if (!r->o->recursive) {
            fail(r, src, "is a directory (use -r)");
            return 0;
        }
        /* In place too: its mode and times are put back once its files are replaced. */
        int rc = add_job(r, JOB_DIR, src, dst, st);
        if (rc == 0 && r->o->direction == OFFLINE_ENCRYPT && !r->o->in_place && r->v->names &&
            r->v->names->encrypted && !make_named_dir(r, dst))
            return 0;
        return rc ? rc : plan_dir(r, src, dst);
    }
    if (S_ISLNK(st->st_mode))
        return r->o->in_place ? 0 : add_job(r, JOB_LINK, src, dst, st);
    progress_say(&r->bar, "pixcrypt %s: %s: not a regular file, directory or symlink: skipped",
                 cmd_name(r), src);
    r->sum->skipped++;
    return 0;
}

static int by_devino(const void *a, const void *b)
{
    const devino *x = a, *y = b;
    if (x->dev != y->dev)
        return x->dev < y->dev ? -1 : 1;
    return x->ino < y->ino ? -1 : x->ino > y->ino;
}

static int by_size_desc(const void *a, const void *b)
{
    const job *x = *(job *const *)a, *y = *(job *const *)b;
    return x->st.st_size < y->st.st_size ? 1 : x->st.st_size > y->st.st_size ? -1 : 0;
}

/* Every source planned; the file jobs listed largest first (the pool ends together). */
static int plan(run *r, char *const *srcs, size_t n, const char *dest)
{
    struct stat dst_st, ks_st;
    char ksdir[PATH_MAX];
    int dest_is_dir = dest && stat(dest, &dst_st) == 0 && S_ISDIR(dst_st.st_mode);
    if (!r->o->in_place && n > 1 && !dest_is_dir) {
        fprintf(stderr, "pixcrypt %s: %s: not a directory (several sources need one)\n",
                cmd_name(r), dest);
        return 2;
    }
    if (r->o->direction == OFFLINE_ENCRYPT && !r->o->in_place && !dest_is_dir && dest) {
        char dir[PATH_MAX], base[NAME_MAX + 1];
        split_path(dest, dir, sizeof dir, base, sizeof base);
        if (encrypts_names_in(r->v, dir)) {
            fprintf(stderr,
                    "pixcrypt %s: %s: the volume encrypts file names: name one of its existing "
                    "directories as the destination\n",
                    cmd_name(r), dest);
            return 2;
        }
    }
    if (join(ksdir, sizeof ksdir, r->v->cipherdir, KS_DIR) == 0 && stat(ksdir, &ks_st) == 0)
        r->skip[0] = (devino){ks_st.st_dev, ks_st.st_ino};
    if (dest_is_dir)
        r->skip[1] = (devino){dst_st.st_dev, dst_st.st_ino};

    for (size_t i = 0; i < n; i++) {
        char t[PATH_MAX], base[NAME_MAX + 1], name[NAME_MAX + 1];
        struct stat st;
        if (stat(srcs[i], &st) != 0) {
            fail(r, srcs[i], strerror(errno));
            continue;
        }
        if (is_skipped(r, &st)) {
            fail(r, srcs[i], "is the volume's keystore directory or the destination");
            continue;
        }
        /* A source named through a symlink is read (and in place, replaced) where the
         * link leads; its output is named after the link, as with cp. */
        char real[PATH_MAX], lnk[PATH_MAX];
        const char *src = srcs[i];
        if (readlink(src, lnk, sizeof lnk) >= 0 && realpath(src, real))
            src = real;
        const char *target = r->o->in_place ? src : dest;
        if (!r->o->in_place && dest_is_dir) {
            char parent[PATH_MAX];
            split_path(srcs[i], parent, sizeof parent, base, sizeof base);
            int m = r->o->direction == OFFLINE_ENCRYPT
                        ? offline_stored_name(r->v, dest, base, name, sizeof name)
                        : offline_plain_name(r->v->names, parent, base, name, sizeof name);
            if (m != 0 || join(t, sizeof t, dest, name) != 0) {
                fail(r, srcs[i], name_error(m ? m : -ENAMETOOLONG));
                continue;
            }
            target = t;
        }
        int rc = plan_path(r, src, target, &st);
        if (rc != 0) {
            fprintf(stderr, "pixcrypt %s: %s\n", cmd_name(r), strerror(-rc));
            return 1;
        }
    }

    r->inputs = malloc((r->njobs ? r->njobs : 1) * sizeof *r->inputs);
    r->files = malloc((r->njobs ? r->njobs : 1) * sizeof *r->files);
    if (!r->inputs || !r->files) {
        fprintf(stderr, "pixcrypt %s: out of memory\n", cmd_name(r));
        return 1;
    }
    for (size_t i = 0; i < r->njobs; i++)
        if (r->jobs[i].type == JOB_FILE) {
            r->inputs[r->ninputs++] = (devino){r->jobs[i].st.st_dev, r->jobs[i].st.st_ino};
            r->files[r->nfiles++] = &r->jobs[i];
        }
    qsort(r->inputs, r->ninputs, sizeof *r->inputs, by_devino);
    qsort(r->files, r->nfiles, sizeof *r->files, by_size_desc);
    return 0;
}

/* ---- where an output goes ----------------------------------------------- */

static int is_input(const run *r, const struct stat *st)
{
    devino k = {st->st_dev, st->st_ino};
    return bsearch(&k, r->inputs, r->ninputs, sizeof k, by_devino) != NULL;
}

/* Whether the output `base` in directory `dir` lands in the volume: 1 (it needs a
 * keystore row), 0 (outside), or -1 with *why when it may not go there at all. */

static int output_in_volume(const run *r, const char *dir, const char *base, const char **why)
{
    char real[PATH_MAX];
    const char *rel = volume_relative(r->v, dir, real);
    if (!rel)
        return 0; /* outside, or the open that follows says why it is not there */
    if (strncmp(rel, KS_DIR, sizeof KS_DIR - 1) == 0 &&
        (rel[sizeof KS_DIR - 1] == '\0' || rel[sizeof KS_DIR - 1] == '/')) {
        *why = "is inside the volume's keystore directory";
        return -1;
    }
    if (rel[0] == '\0' && strcmp(base, KS_DIR) == 0) {
        *why = "name reserved for the volume's keystore directory";
        return -1;
    }
    if (r->o->direction == OFFLINE_DECRYPT) {
        *why = "would put plaintext into the volume's cipher dir";
        return -1;
    }
    return 1;
}

/* Splits path into its directory (".", if none) and last component. */
static void split_path(const char *path, char *dir, size_t dsize, char *base, size_t bsize)
{
    const char *slash = strrchr(path, '/');
    if (!slash)
        snprintf(dir, dsize, ".");
    else if (slash == path)
        snprintf(dir, dsize, "/");
    else
        snprintf(dir, dsize, "%.*s", (int)(slash - path), path);
    snprintf(base, bsize, "%s", slash ? slash + 1 : path);
}

/* ---- files -------------------------------------------------------------- */

/* Progress counts input bytes; a file reports its plaintext bytes as they are done,
 * and what is left of its input size once it is done. */
typedef struct file_ticks {
    run *r;
    uint64_t done;
} file_ticks;

static void tick(void *arg, uint64_t bytes)
{
    file_ticks *t = arg;
    t->done += bytes;
    progress_add(&t->r->bar, bytes, 0);
}

static void put_row(run *r, const char *path, const offline_stored *st)
{
    ks_file_row row;
    memset(&row, 0, sizeof row);
    memcpy(row.file_id, st->file_id, sizeof row.file_id);
    row.kind = st->kind;
    memcpy(row.seed_sealed, st->sealed, PXC_SEALED_SECRETS_BYTES);
    row.seed_sealed_len = PXC_SEALED_SECRETS_BYTES;
    row.plain_size = st->plain_size;
    row.version = st->version;
    int rc = keystore_file_put(r->v->ks, &row);
    if (rc != KS_OK)
        progress_say(&r->bar,
                     "pixcrypt %s: %s: cannot record it in the keystore: %s (fsck --repair "
                     "adds it)",
                     cmd_name(r), path, keystore_strerror(rc));
}

/* Whether the stored file `base` in the volume directory whose path relative to the
 * cipher dir is rel is at a place of its file id (fs/places.h): a volume that is still
 * learning places takes a file without any. */
static int placed(run *r, const char *rel, const char *base, const uint8_t *id)
{
    char path[PATH_MAX], **paths;
    size_t n, forged;
    if ((size_t)snprintf(path, sizeof path, "%s%s%s", rel, rel[0] ? "/" : "", base) >= sizeof path)
        return 0;
    if (keystore_place_has(r->v->ks, id, path) == 1)
        return 1;
    if (keystore_places_complete(r->v->ks) == 1 ||
        keystore_places_of(r->v->ks, id, &paths, &n, &forged) != KS_OK)
        return 0;
    keystore_places_free(paths, n);
    return n + forged == 0;
}

/* A stored file read from inside the volume must be where it was written and not older
 * than its row (the filesystem refuses such files too); a copy elsewhere (a backup) may
 * well be an older version, under any name.  0, or -1 with *why. */
static int check_in_volume(run *r, const char *src_dir, const char *base, int fd, uint64_t size,
                           const char **why)
{
    offline_stored st;
    ks_file_row row;
    char real[PATH_MAX];
    const char *rel = volume_relative(r->v, src_dir, real);
    if (!rel || offline_identify(fd, size, r->v->keys, &st) != 0)
        return 0; /* the decryption says what is wrong */
    if (keystore_file_get(r->v->ks, st.file_id, &row) == KS_OK && row.version > st.version) {
        *why = "rollback: the keystore knows a newer version of this file (an older copy was "
               "put back; mount with -o allow_rollback to read it)";
        return -1;
    }
    if (!placed(r, rel, base, st.file_id)) {
        *why = "the stored file is not where it was written: it is another file of this volume "
               "(swapped or moved outside the mount; pixcrypt fsck --accept-moved keeps it here)";
        return -1;
    }
    return 0;
}

/* The row of the stored file an output replaces, to drop once it is gone. */
static int doomed_id(run *r, const char *dst, uint8_t id[PXC_FILE_ID_BYTES])
{
    struct stat st;
    offline_stored old;
    int fd = open(dst, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
    int found = fd >= 0 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_nlink == 1 &&
                offline_identify(fd, (uint64_t)st.st_size, r->v->keys, &old) == 0;
    if (fd >= 0)
        close(fd);
    if (found)
        memcpy(id, old.file_id, PXC_FILE_ID_BYTES);
    return found;
}

/* Metadata of the source onto the temp file.  An output in the volume is made durable
 * before its rename and row (file first, then row), and so is one that replaces a file;
 * new files elsewhere are flushed all at once when the run ends (flush_outputs), which
 * is much faster for many small files. */
static int finish_temp(int fd, const struct stat *src, int durable)
{
    struct timespec tv[2] = {src->st_atim, src->st_mtim};
    if (fchmod(fd, src->st_mode & 07777) != 0 || futimens(fd, tv) != 0 ||
        (durable && fsync(fd) != 0))
        return -errno;
    return 0;
}

/* Makes every output durable: the filesystems of the destination or of the inputs
 * replaced in place. */
static void flush_outputs(run *r, char *const *srcs, size_t n, const char *dest)
{
    for (size_t i = 0; i < (dest ? 1 : n); i++) {
        const char *p = dest ? dest : srcs[i];
        int rc = outfile_flush_fs(p);
        if (rc != 0)
            fail(r, p, rc == -EIO ? "outputs may not be on disk: I/O error" : strerror(-rc));
    }
}

/* Records `base` in the volume directory dir as the place of the stored file st (its
 * path relative to the cipher dir), into place.  0 or -1. */
static int place_of(run *r, const char *dir, const char *base, char *place, size_t size,
                    const offline_stored *st)
{
    char real[PATH_MAX];
    const char *rel = volume_relative(r->v, dir, real);
    if (!rel || (size_t)snprintf(place, size, "%s%s%s", rel, rel[0] ? "/" : "", base) >= size)
        return -1;
    return keystore_place_add(r->v->ks, st->file_id, place) == KS_OK ? 0 : -1;
}

static void do_file(run *r, job *j, size_t slot)
{
    char dir[PATH_MAX], base[NAME_MAX + 1], tmp[PATH_MAX], buf[256], place[PATH_MAX];
    char src_dir[PATH_MAX], src_base[NAME_MAX + 1];
    const char *why = NULL, *declined = NULL;
    struct stat in_st, out_st;
    offline_stored st;
    uint8_t old_id[PXC_FILE_ID_BYTES];
    int in = -1, out = -1, rc, inside, replaces = 0, enc = r->o->direction == OFFLINE_ENCRYPT;
    file_ticks ticks = {r, 0};

    split_path(j->dst, dir, sizeof dir, base, sizeof base);
    split_path(j->src, src_dir, sizeof src_dir, src_base, sizeof src_base);
    in = open(j->src, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (in < 0 || fstat(in, &in_st) != 0) {
        fail(r, j->src, strerror(errno));
        goto out;
    }
    if (lstat(j->dst, &out_st) == 0) {
        int self = in_st.st_dev == out_st.st_dev && in_st.st_ino == out_st.st_ino;
        if (S_ISDIR(out_st.st_mode)) {
            fail(r, j->dst, "output is a directory");
            goto out;
        }
        if (is_input(r, &out_st) && !(r->o->in_place && self)) {
            fail(r, j->dst,
                 "output would overwrite an input (use --in-place to replace "
                 "inputs)");
            goto out;
        }
        if (!r->o->force && !r->o->in_place) {
            fail(r, j->dst, "output exists (use --force to replace it)");
            goto out;
        }
        replaces = 1;
    }
    inside = output_in_volume(r, dir, base, &why);
    if (inside < 0) {
        fail(r, j->dst, why);
        goto out;
    }
    if (enc && offline_identify(in, (uint64_t)in_st.st_size, r->v->keys, &st) == 0) {
        fail(r, j->src, "already encrypted (a stored file of this volume)");
        goto out;
    }
    if (!enc && check_in_volume(r, src_dir, src_base, in, (uint64_t)in_st.st_size, &why) != 0) {
        fail(r, j->src, why);
        goto out;
    }
    out = outfile_create(dir, tmp, sizeof tmp);
    if (out >= 0)
        outfile_live(slot, tmp);
    if (out < 0) {
        snprintf(buf, sizeof buf, "cannot create a temp file beside it: %s", strerror(-out));
        fail(r, j->dst, buf);
        goto out;
    }
    rc = enc ? offline_encrypt_fd(in, (uint64_t)in_st.st_size, out, r->v->keys, &st, &declined,
                                  &why, tick, &ticks)
             : offline_decrypt_fd(in, (uint64_t)in_st.st_size, out, r->v->keys, &st, &why, tick,
                                  &ticks);
    /* Durable before the rename wherever the rename replaces something (an input in
     * place: a crash must leave it old or new) or a row follows. */
    if (rc == 0 && (rc = finish_temp(out, &in_st, inside || replaces)) != 0)
        why = "cannot write the output";
    if (rc == 0 && inside && replaces)
        replaces = doomed_id(r, j->dst, old_id);
    if (rc != 0) {
        unlink(tmp);
        outfile_gone(slot);
        /* Failed authentication and the like are said in full by why; system errors
         * get their own text too. */
        int own = rc == -EBADMSG || rc == -EKEYREJECTED || rc == -EAGAIN || rc == -EFBIG;
        snprintf(buf, sizeof buf, "%s%s%s", why ? why : "", why && !own ? ": " : "",
                 own && why ? "" : strerror(-rc));
        fail(r, j->src, buf);
        goto out;
    }
    /* Its place before the file is there (fs/places.h), as the filesystem does. */
    if (inside && place_of(r, dir, base, place, sizeof place, &st) != 0) {
        unlink(tmp);
        outfile_gone(slot);
        fail(r, j->dst, "cannot record its place in the keystore");
        goto out;
    }
    rc = outfile_place(tmp, j->dst, r->o->force || r->o->in_place);
    if (rc != 0)
        unlink(tmp);
    outfile_gone(slot);
    if (rc != 0) {
        if (inside)
            (void)keystore_place_drop_one(r->v->ks, st.file_id, place);
        fail(r, j->dst,
             rc == -EEXIST ? "output exists (use --force to replace it)" : strerror(-rc));
        goto out;
    }
    /* File first, then row, as the filesystem does. */
    if (inside) {
        put_row(r, j->dst, &st);
        if (replaces && memcmp(old_id, st.file_id, sizeof old_id) != 0) {
            keystore_file_delete(r->v->ks, old_id);
            (void)keystore_place_drop_one(r->v->ks, old_id, place);
        }
    }
    pthread_mutex_lock(&r->lock);
    r->sum->files++;
    r->sum->bytes += st.plain_size;
    if (enc)
        r->sum->kinds[st.kind]++;
    pthread_mutex_unlock(&r->lock);
    if (r->o->verbose) {
        static const char *const kind_name[] = {"opaque", "png", "jpeg"};
        if (enc)
            progress_say(&r->bar, "%s -> %s (%s%s%s)", j->src, j->dst, kind_name[st.kind],
                         declined ? ": " : "", declined ? declined : "");
        else
            progress_say(&r->bar, "%s -> %s", j->src, j->dst);
    }
out:
    if (in >= 0)
        close(in);
    if (out >= 0)
        close(out);
    progress_add(&r->bar,
                 ticks.done < (uint64_t)j->st.st_size ? (uint64_t)j->st.st_size - ticks.done : 0,
                 1);
}

typedef struct worker_arg {
    run *r;
    size_t slot; /* its temp file slot */
} worker_arg;

static void *worker(void *arg)
{
    worker_arg *w = arg;
    for (;;) {
        size_t i = __atomic_fetch_add(&w->r->next, 1, __ATOMIC_RELAXED);
        if (i >= w->r->nfiles)
            return NULL;
        do_file(w->r, w->r->files[i], w->slot);
    }
}

/* ---- directories and symlinks ------------------------------------------- */

static void do_dir(run *r, const job *j)
{
    struct stat st;
    const char *why = NULL;
    char dir[PATH_MAX], base[NAME_MAX + 1];
    if (r->o->in_place)
        return;
    split_path(j->dst, dir, sizeof dir, base, sizeof base);
    if (output_in_volume(r, dir, base, &why) < 0) {
        fail(r, j->dst, why);
        return;
    }
    if (mkdir(j->dst, 0700) != 0 &&
        !(errno == EEXIST && stat(j->dst, &st) == 0 && S_ISDIR(st.st_mode))) {
        fail(r, j->dst, errno == EEXIST ? "exists and is not a directory" : strerror(errno));
        return;
    }
    r->sum->dirs++;
}

/* Directory modes and times once their files are in (writing them changes the times). */
static void finish_dirs(run *r)
{
    for (size_t i = r->njobs; i-- > 0;) {
        const job *j = &r->jobs[i];
        struct timespec tv[2] = {j->st.st_atim, j->st.st_mtim};
        if (j->type != JOB_DIR)
            continue;
        if (chmod(j->dst, j->st.st_mode & 07777) != 0 || utimensat(AT_FDCWD, j->dst, tv, 0) != 0)
            if (errno != ENOENT)
                fail(r, j->dst, strerror(errno));
    }
}

static void do_link(run *r, const job *j)
{
    char target[PATH_MAX], dir[PATH_MAX], base[NAME_MAX + 1];
    const char *why = NULL;
    struct stat st;
    ssize_t n = readlink(j->src, target, sizeof target - 1);
    if (n < 0) {
        fail(r, j->src, strerror(errno));
        return;
    }
    target[n] = '\0';
    split_path(j->dst, dir, sizeof dir, base, sizeof base);
    if (output_in_volume(r, dir, base, &why) < 0) {
        fail(r, j->dst, why);
        return;
    }
    if (lstat(j->dst, &st) == 0) {
        if (!r->o->force || S_ISDIR(st.st_mode) || is_input(r, &st)) {
            fail(r, j->dst, "output exists (use --force to replace it)");
            return;
        }
        unlink(j->dst);
    }
    /* In a volume with encrypted names, symlink targets are encrypted too: encrypted
     * into one, decrypted out of one of its directories (or a copy, holding its IV). */
    char stored[PATH_MAX + 64], sdir[PATH_MAX], sbase[NAME_MAX + 1], iv[PATH_MAX + 32];
    const char *what = target;
    split_path(j->src, sdir, sizeof sdir, sbase, sizeof sbase);
    if (r->o->direction == OFFLINE_DECRYPT && r->v->names && r->v->names->encrypted &&
        join(iv, sizeof iv, sdir, DIRIV_FILE) == 0 && lstat(iv, &st) == 0) {
        if (pxc_link_decrypt(r->v->names->keys, target, stored, sizeof stored) < 0) {
            fail(r, j->src, "the stored symlink target does not decrypt");
            return;
        }
        what = stored;
    } else if (r->o->direction == OFFLINE_ENCRYPT && encrypts_names_in(r->v, dir)) {
        int m = pxc_link_encrypt(r->v->names->keys, target, stored, sizeof stored);
        if (m < 0) {
            fail(r, j->src, m == -ENAMETOOLONG ? "symlink target too long" : strerror(-m));
            return;
        }
        what = stored;
    }
    if (symlink(what, j->dst) != 0) {
        fail(r, j->dst, strerror(errno));
        return;
    }
    r->sum->symlinks++;
}

/* ---- the run ------------------------------------------------------------ */

/* The file jobs through nthreads workers, this thread one of them.  0 or -ENOMEM. */
static int run_pool(run *r, size_t nthreads)
{
    pthread_t *tid = calloc(nthreads, sizeof *tid);
    worker_arg *wa = calloc(nthreads, sizeof *wa);
    if (!tid || !wa || outfile_watch(nthreads) != 0) {
        free(tid);
        free(wa);
        return -ENOMEM;
    }
    size_t started = 0;
    for (size_t i = 0; i < nthreads; i++)
        wa[i] = (worker_arg){r, i};
    for (; started + 1 < nthreads; started++)
        if (pthread_create(&tid[started], NULL, worker, &wa[started + 1]) != 0)
            break;
    worker(&wa[0]);
    for (size_t i = 0; i < started; i++)
        pthread_join(tid[i], NULL);
    outfile_unwatch();
    free(tid);
    free(wa);
    return 0;
}

int offline_run(const offline_options *o, const offline_volume *v, char *const *srcs, size_t n,
                const char *dest, offline_summary *sum)
{
    const char *what = o->direction == OFFLINE_ENCRYPT ? "encrypting" : "decrypting";
    run r;
    memset(&r, 0, sizeof r);
    memset(sum, 0, sizeof *sum);
    r.o = o;
    r.v = v;
    r.sum = sum;
    pthread_mutex_init(&r.lock, NULL);
    double t0 = progress_clock();
    progress_init(&r.bar, what, 0, 0, 0); /* messages only, while planning */
    int rc = plan(&r, srcs, n, dest);
    if (rc == 0) {
        progress_destroy(&r.bar);
        progress_init(&r.bar, what, r.nfiles, r.bytes, o->progress);
        for (size_t i = 0; i < r.njobs; i++) {
            if (r.jobs[i].type == JOB_DIR)
                do_dir(&r, &r.jobs[i]);
            else if (r.jobs[i].type == JOB_LINK)
                do_link(&r, &r.jobs[i]);
        }
        size_t nthreads = (size_t)(o->jobs > 0 ? o->jobs : 1);
        if (nthreads > r.nfiles)
            nthreads = r.nfiles ? r.nfiles : 1;
        if (run_pool(&r, nthreads) != 0) {
            fprintf(stderr, "pixcrypt %s: out of memory\n", cmd_name(&r));
            sum->failed++;
        }
        finish_dirs(&r);
        flush_outputs(&r, srcs, n, dest);
        if (r.nfiles)
            progress_finish(&r.bar);
        rc = sum->failed ? 1 : 0;
    }
    sum->seconds = progress_clock() - t0;
    progress_destroy(&r.bar);
    pthread_mutex_destroy(&r.lock);
    for (size_t i = 0; i < r.njobs; i++) {
        free(r.jobs[i].src);
        free(r.jobs[i].dst);
    }
    free(r.jobs);
    free(r.inputs);
    free(r.files);
    return rc;
}

/* fsrandom: seeded, reproducible random file operations, run side by side on a
 * filesystem under test and a reference directory (e.g. a mount and a directory on
 * ext4), comparing every result.
 *
 *   fsrandom [-s SEED] [-n OPS] [-f FILES] [-o FDS] [-m MAXOFF] [-l LOGFILE] [-x LETTERS]
 *            TESTDIR REFDIR
 *   fsrandom -V TESTDIR REFDIR          only compare the two trees of files
 *   -x LETTERS  leave out operation classes: o open, c close, w write, r read,
 *               t truncate, s fsync, n rename, u unlink, l link, a stat, m full compare
 *
 * Operations: open (O_CREAT/O_TRUNC/O_APPEND/O_EXCL, read-only/write-only/read-write),
 * close, pwrite/write at random offsets and lengths (around 4 KiB block boundaries,
 * beyond EOF to make holes), pread/read, lseek, ftruncate/truncate (grow, shrink, zero),
 * fsync/fdatasync, rename (also over an existing file and across directories), unlink
 * (also of files still open), link, stat/fstat.  Several descriptors are kept open at
 * once, often on the same file.  Every return value, errno and byte read must match
 * between the two directories; at the end every file is compared in full (existence,
 * size, link count, hard-link identity, content) and the directory listings too.
 *
 * The seed comes from -s, else $PXC_SEED, else the clock, and is always printed.  On
 * the first difference fsrandom prints the operation number, the seed and the last
 * operations, and exits 1.  Exit 2 is a usage or setup error.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/types.h>
#include <unistd.h>

#define MAX_FILES 64
#define MAX_FDS 32
#define MAX_LEN 70000
#define HISTORY 40

/* ---- PRNG: xoshiro256**, seeded through splitmix64 */

static uint64_t rng_state[4];

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static void rng_seed(uint64_t seed)
{
    for (int i = 0; i < 4; i++)
        rng_state[i] = splitmix64(&seed);
}

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

static uint64_t rng_next(void)
{
    uint64_t *s = rng_state;
    uint64_t result = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

/* uniform in [0, n) (n > 0); the tiny modulo bias does not matter here */
static uint64_t rnd(uint64_t n)
{
    return rng_next() % n;
}

/* uniform in [lo, hi] */
static int64_t rnd_range(int64_t lo, int64_t hi)
{
    return lo + (int64_t)rnd((uint64_t)(hi - lo + 1));
}

/* ---- state */

static const char *dir_test, *dir_ref;
static int nfiles = 8, nfds = 8;
static long nops = 30000;
static int64_t max_off = 1 << 20;
static uint64_t seed;
static long opno;
static FILE *oplog;

static char paths[MAX_FILES][32]; /* relative names; some in subdirectories */

struct slot {
    int used;
    int fd_test, fd_ref;
    int path; /* name it was opened by (it may since have been renamed or unlinked) */
    int flags;
};
static struct slot slots[MAX_FDS];

static char history[HISTORY][200];
static int hist_n;

static unsigned char *wbuf, *rbuf_test, *rbuf_ref;

static const char *errname(int e)
{
    static char buf[32];
    if (e == 0)
        return "ok";
    snprintf(buf, sizeof buf, "%s", strerrorname_np(e) ? strerrorname_np(e) : "?");
    return buf;
}

static void record(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void record(const char *fmt, ...)
{
    va_list ap;
    char *h = history[hist_n++ % HISTORY];
    int n = snprintf(h, sizeof history[0], "op %ld: ", opno);
    va_start(ap, fmt);
    vsnprintf(h + n, sizeof history[0] - (size_t)n, fmt, ap);
    va_end(ap);
    if (oplog)
        fprintf(oplog, "%s\n", h);
}

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void fail(const char *fmt, ...)
{
    va_list ap;
    fflush(stdout);
    if (opno < 0)
        fprintf(stderr, "fsrandom: MISMATCH in the final comparison (seed %" PRIu64 "): ", seed);
    else
        fprintf(stderr, "fsrandom: MISMATCH at op %ld (seed %" PRIu64 "): ", opno, seed);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nfsrandom: last operations (test dir %s, reference %s):\n", dir_test,
            dir_ref);
    int first = hist_n > HISTORY ? hist_n - HISTORY : 0;
    for (int i = first; i < hist_n; i++)
        fprintf(stderr, "  %s\n", history[i % HISTORY]);
    if (seed)
        fprintf(stderr, "fsrandom: reproduce with: PXC_SEED=%" PRIu64 " (same -n/-f/-o/-m)\n",
                seed);
    if (oplog)
        fclose(oplog);
    exit(1);
}

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "fsrandom: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n");
    exit(2);
}

static void join(char *out, size_t n, const char *dir, const char *rel)
{
    if ((size_t)snprintf(out, n, "%s/%s", dir, rel) >= n)
        die("path too long");
}

/* Compares the outcome of one call on both sides: return value and errno. */
static void same_result(const char *what, long r_test, int e_test, long r_ref, int e_ref)
{
    if ((r_test < 0) != (r_ref < 0) || (r_test >= 0 && r_test != r_ref) ||
        (r_test < 0 && e_test != e_ref))
        fail("%s: test dir returned %ld (%s), reference %ld (%s)", what, r_test,
             r_test < 0 ? errname(e_test) : "ok", r_ref, r_ref < 0 ? errname(e_ref) : "ok");
}

static void fill_random(unsigned char *buf, size_t n)
{
    size_t i = 0;
    /* Sometimes zeros, so that all-zero blocks written on purpose are tested too. */
    if (rnd(20) == 0) {
        memset(buf, 0, n);
        return;
    }
    for (; i + 8 <= n; i += 8) {
        uint64_t v = rng_next();
        memcpy(buf + i, &v, 8);
    }
    uint64_t v = rng_next();
    memcpy(buf + i, &v, n - i);
}

/* ---- choosing offsets and lengths */

static int64_t pick_offset(int64_t cur_size)
{
    switch (rnd(6)) {
    case 0:
    case 1: /* at or next to a block boundary */
    {
        int64_t o = (int64_t)rnd((uint64_t)(max_off / 4096 + 1)) * 4096 + rnd_range(-3, 3);
        return o < 0 ? 0 : o;
    }
    case 2: /* anywhere */
        return (int64_t)rnd((uint64_t)max_off);
    case 3: /* near the end of file, possibly beyond it (hole) */
    {
        int64_t o = cur_size + rnd_range(-200, 20000);
        return o < 0 ? 0 : o;
    }
    case 4: /* at EOF exactly, or a block boundary just before it */
        return rnd(2) ? cur_size : cur_size / 4096 * 4096;
    default: /* small offsets */
        return (int64_t)rnd(10000);
    }
}

static size_t pick_length(void)
{
    switch (rnd(3)) {
    case 0:
        return (size_t)rnd_range(1, 100);
    case 1: /* multiples of the block size, +-2 */
    {
        int64_t l = rnd_range(1, 16) * 4096 + rnd_range(-2, 2);
        return (size_t)(l < 1 ? 1 : l);
    }
    default:
        return (size_t)rnd_range(1, MAX_LEN);
    }
}

static int64_t ref_size_of_fd(int fd)
{
    struct stat st;
    if (fstat(fd, &st) != 0)
        return 0;
    return st.st_size;
}

static int64_t ref_size_of_path(int p)
{
    char full[4096];
    struct stat st;
    join(full, sizeof full, dir_ref, paths[p]);
    if (stat(full, &st) != 0)
        return 0;
    return st.st_size;
}

/* ---- operations */

static int free_slot(void)
{
    int cand[MAX_FDS], n = 0;
    for (int i = 0; i < nfds; i++)
        if (!slots[i].used)
            cand[n++] = i;
    return n ? cand[rnd((uint64_t)n)] : -1;
}

static int used_slot(void)
{
    int cand[MAX_FDS], n = 0;
    for (int i = 0; i < nfds; i++)
        if (slots[i].used)
            cand[n++] = i;
    return n ? cand[rnd((uint64_t)n)] : -1;
}

/* Paths are chosen with a bias to the first few, so that several descriptors are often
 * open on one file. */
static int pick_path(void)
{
    if (rnd(2))
        return (int)rnd((uint64_t)(nfiles < 3 ? nfiles : 3));
    return (int)rnd((uint64_t)nfiles);
}

static void op_open(void)
{
    int s = free_slot();
    if (s < 0)
        return;
    int p = pick_path();
    int acc = (int)rnd(5);
    int flags = acc == 0 ? O_RDONLY : acc == 1 ? O_WRONLY : O_RDWR;
    if (rnd(10) < 7)
        flags |= O_CREAT;
    if (flags & O_CREAT && rnd(20) == 0)
        flags |= O_EXCL;
    if ((flags & O_ACCMODE) != O_RDONLY && rnd(10) == 0)
        flags |= O_TRUNC;
    if ((flags & O_ACCMODE) != O_RDONLY && rnd(7) == 0)
        flags |= O_APPEND;
    char ft[4096], fr[4096];
    join(ft, sizeof ft, dir_test, paths[p]);
    join(fr, sizeof fr, dir_ref, paths[p]);
    record("open slot %d %s flags%s%s%s%s%s%s", s, paths[p],
           (flags & O_ACCMODE) == O_RDONLY ? " RDONLY" : "",
           (flags & O_ACCMODE) == O_WRONLY ? " WRONLY" : "",
           (flags & O_ACCMODE) == O_RDWR ? " RDWR" : "", flags & O_CREAT ? " CREAT" : "",
           flags & O_TRUNC ? " TRUNC" : "", flags & O_APPEND ? " APPEND" : "");
    errno = 0;
    int fd_t = open(ft, flags, 0644);
    int e_t = errno;
    errno = 0;
    int fd_r = open(fr, flags, 0644);
    int e_r = errno;
    if ((fd_t < 0) != (fd_r < 0) || (fd_t < 0 && e_t != e_r)) {
        if (fd_t >= 0)
            close(fd_t);
        if (fd_r >= 0)
            close(fd_r);
        fail("open %s: test dir %s, reference %s", paths[p], fd_t < 0 ? errname(e_t) : "ok",
             fd_r < 0 ? errname(e_r) : "ok");
    }
    if (fd_t < 0)
        return;
    slots[s] = (struct slot){1, fd_t, fd_r, p, flags};
}

static void op_close(void)
{
    int s = used_slot();
    if (s < 0)
        return;
    record("close slot %d", s);
    int r_t = close(slots[s].fd_test), e_t = errno;
    int r_r = close(slots[s].fd_ref), e_r = errno;
    slots[s].used = 0;
    same_result("close", r_t, e_t, r_r, e_r);
}

static void op_write(void)
{
    int s = used_slot();
    if (s < 0)
        return;
    struct slot *sl = &slots[s];
    size_t len = pick_length();
    fill_random(wbuf, len);
    ssize_t r_t, r_r;
    int e_t, e_r;
    if (sl->flags & O_APPEND || rnd(4) == 0) {
        /* write at the current position (appending for O_APPEND) */
        if (!(sl->flags & O_APPEND) && rnd(2)) {
            off_t o = (off_t)pick_offset(ref_size_of_fd(sl->fd_ref));
            off_t a = lseek(sl->fd_test, o, SEEK_SET), b = lseek(sl->fd_ref, o, SEEK_SET);
            record("lseek slot %d to %lld", s, (long long)o);
            same_result("lseek", (long)a, errno, (long)b, errno);
        }
        record("write slot %d len %zu", s, len);
        errno = 0;
        r_t = write(sl->fd_test, wbuf, len);
        e_t = errno;
        errno = 0;
        r_r = write(sl->fd_ref, wbuf, len);
        e_r = errno;
        same_result("write", r_t, e_t, r_r, e_r);
        off_t pt = lseek(sl->fd_test, 0, SEEK_CUR), pr = lseek(sl->fd_ref, 0, SEEK_CUR);
        if (pt != pr)
            fail("file position after write: test %lld, reference %lld", (long long)pt,
                 (long long)pr);
    } else {
        off_t off = (off_t)pick_offset(ref_size_of_fd(sl->fd_ref));
        record("pwrite slot %d off %lld len %zu", s, (long long)off, len);
        errno = 0;
        r_t = pwrite(sl->fd_test, wbuf, len, off);
        e_t = errno;
        errno = 0;
        r_r = pwrite(sl->fd_ref, wbuf, len, off);
        e_r = errno;
        same_result("pwrite", r_t, e_t, r_r, e_r);
    }
}

static void compare_read(const char *what, ssize_t r_t, int e_t, ssize_t r_r, int e_r,
                         int64_t off)
{
    same_result(what, r_t, e_t, r_r, e_r);
    if (r_t > 0 && memcmp(rbuf_test, rbuf_ref, (size_t)r_t) != 0) {
        ssize_t i = 0;
        while (rbuf_test[i] == rbuf_ref[i])
            i++;
        fail("%s: data differs at file offset %lld (byte %02x, expected %02x)", what,
             (long long)(off + i), rbuf_test[i], rbuf_ref[i]);
    }
}

static void op_read(void)
{
    int s = used_slot();
    if (s < 0)
        return;
    struct slot *sl = &slots[s];
    int64_t size = ref_size_of_fd(sl->fd_ref);
    size_t len = pick_length();
    ssize_t r_t, r_r;
    int e_t, e_r;
    if (rnd(4) == 0) {
        off_t pos = lseek(sl->fd_ref, 0, SEEK_CUR);
        record("read slot %d len %zu (at position %lld)", s, len, (long long)pos);
        errno = 0;
        r_t = read(sl->fd_test, rbuf_test, len);
        e_t = errno;
        errno = 0;
        r_r = read(sl->fd_ref, rbuf_ref, len);
        e_r = errno;
        compare_read("read", r_t, e_t, r_r, e_r, pos);
    } else {
        int64_t off = rnd(5) == 0 ? (int64_t)rnd((uint64_t)size + 5000) : pick_offset(size);
        if (rnd(3) == 0 && size > 0) /* read across the last block to EOF */
            off = size > 5000 ? size - (int64_t)rnd(5000) : (int64_t)rnd((uint64_t)size);
        record("pread slot %d off %lld len %zu (size %lld)", s, (long long)off, len,
               (long long)size);
        errno = 0;
        r_t = pread(sl->fd_test, rbuf_test, len, (off_t)off);
        e_t = errno;
        errno = 0;
        r_r = pread(sl->fd_ref, rbuf_ref, len, (off_t)off);
        e_r = errno;
        compare_read("pread", r_t, e_t, r_r, e_r, off);
    }
}

static int64_t pick_new_size(int64_t size)
{
    switch (rnd(6)) {
    case 0:
        return 0;
    case 1: /* shrink */
        return size ? (int64_t)rnd((uint64_t)size) : 0;
    case 2: /* to a block boundary, +-1 */
    {
        int64_t n = rnd_range(0, max_off / 4096) * 4096 + rnd_range(-1, 1);
        return n < 0 ? 0 : n;
    }
    case 3: /* grow a little */
        return size + rnd_range(1, 9000);
    case 4: /* grow a lot: a hole */
        return size + (int64_t)rnd((uint64_t)max_off);
    default:
        return (int64_t)rnd((uint64_t)max_off);
    }
}

static void op_truncate(void)
{
    int s = rnd(3) ? used_slot() : -1;
    int r_t, r_r, e_t, e_r;
    if (s >= 0) {
        int64_t n = pick_new_size(ref_size_of_fd(slots[s].fd_ref));
        record("ftruncate slot %d to %lld", s, (long long)n);
        errno = 0;
        r_t = ftruncate(slots[s].fd_test, (off_t)n);
        e_t = errno;
        errno = 0;
        r_r = ftruncate(slots[s].fd_ref, (off_t)n);
        e_r = errno;
        same_result("ftruncate", r_t, e_t, r_r, e_r);
    } else {
        int p = pick_path();
        int64_t n = pick_new_size(ref_size_of_path(p));
        char ft[4096], fr[4096];
        join(ft, sizeof ft, dir_test, paths[p]);
        join(fr, sizeof fr, dir_ref, paths[p]);
        record("truncate %s to %lld", paths[p], (long long)n);
        errno = 0;
        r_t = truncate(ft, (off_t)n);
        e_t = errno;
        errno = 0;
        r_r = truncate(fr, (off_t)n);
        e_r = errno;
        same_result("truncate", r_t, e_t, r_r, e_r);
    }
}

static void op_fsync(void)
{
    int s = used_slot();
    if (s < 0)
        return;
    int data = (int)rnd(2);
    record("%s slot %d", data ? "fdatasync" : "fsync", s);
    errno = 0;
    int r_t = data ? fdatasync(slots[s].fd_test) : fsync(slots[s].fd_test), e_t = errno;
    errno = 0;
    int r_r = data ? fdatasync(slots[s].fd_ref) : fsync(slots[s].fd_ref), e_r = errno;
    same_result("fsync", r_t, e_t, r_r, e_r);
}

/* rename, unlink, link: path operations, between a (biased to the first few names) and
 * b (any name).  kind: 'n' rename, 'u' unlink, 'l' link. */
static void path_op(int kind)
{
    int a = pick_path(), b = (int)rnd((uint64_t)nfiles);
    char ta[4096], ra[4096], tb[4096], rb[4096];
    join(ta, sizeof ta, dir_test, paths[a]);
    join(ra, sizeof ra, dir_ref, paths[a]);
    join(tb, sizeof tb, dir_test, paths[b]);
    join(rb, sizeof rb, dir_ref, paths[b]);
    int r_t, r_r, e_t, e_r;
    const char *what = kind == 'n' ? "rename" : kind == 'u' ? "unlink" : "link";
    if (kind == 'u')
        record("unlink %s", paths[a]);
    else
        record("%s %s -> %s", what, paths[a], paths[b]);
    errno = 0;
    r_t = kind == 'n' ? rename(ta, tb) : kind == 'u' ? unlink(ta) : link(ta, tb);
    e_t = errno;
    errno = 0;
    r_r = kind == 'n' ? rename(ra, rb) : kind == 'u' ? unlink(ra) : link(ra, rb);
    e_r = errno;
    same_result(what, r_t, e_t, r_r, e_r);
}

static void op_rename(void)
{
    path_op('n');
}

static void op_unlink(void)
{
    path_op('u');
}

static void op_link(void)
{
    path_op('l');
}

static void compare_stat(const char *what, int r_t, const struct stat *st_t, int e_t, int r_r,
                         const struct stat *st_r, int e_r)
{
    same_result(what, r_t, e_t, r_r, e_r);
    if (r_t != 0)
        return;
    if (st_t->st_size != st_r->st_size)
        fail("%s: st_size %lld, expected %lld", what, (long long)st_t->st_size,
             (long long)st_r->st_size);
    if (st_t->st_nlink != st_r->st_nlink)
        fail("%s: st_nlink %lu, expected %lu", what, (unsigned long)st_t->st_nlink,
             (unsigned long)st_r->st_nlink);
    if ((st_t->st_mode & 07777) != (st_r->st_mode & 07777))
        fail("%s: mode %o, expected %o", what, st_t->st_mode & 07777, st_r->st_mode & 07777);
}

static void op_stat(void)
{
    struct stat st_t, st_r;
    int r_t, r_r, e_t, e_r;
    int s = rnd(2) ? used_slot() : -1;
    if (s >= 0) {
        record("fstat slot %d", s);
        errno = 0;
        r_t = fstat(slots[s].fd_test, &st_t);
        e_t = errno;
        errno = 0;
        r_r = fstat(slots[s].fd_ref, &st_r);
        e_r = errno;
        compare_stat("fstat", r_t, &st_t, e_t, r_r, &st_r, e_r);
    } else {
        int p = pick_path();
        char ft[4096], fr[4096];
        join(ft, sizeof ft, dir_test, paths[p]);
        join(fr, sizeof fr, dir_ref, paths[p]);
        record("stat %s", paths[p]);
        errno = 0;
        r_t = stat(ft, &st_t);
        e_t = errno;
        errno = 0;
        r_r = stat(fr, &st_r);
        e_r = errno;
        compare_stat("stat", r_t, &st_t, e_t, r_r, &st_r, e_r);
    }
}

/* Reads a whole file through both sides from a fresh descriptor and compares. */
static void compare_file(int p)
{
    char ft[4096], fr[4096];
    join(ft, sizeof ft, dir_test, paths[p]);
    join(fr, sizeof fr, dir_ref, paths[p]);
    struct stat st_t, st_r;
    errno = 0;
    int r_t = stat(ft, &st_t), e_t = errno;
    errno = 0;
    int r_r = stat(fr, &st_r), e_r = errno;
    char what[64];
    snprintf(what, sizeof what, "stat %s", paths[p]);
    compare_stat(what, r_t, &st_t, e_t, r_r, &st_r, e_r);
    if (r_t != 0)
        return;
    int fd_t = open(ft, O_RDONLY), fd_r = open(fr, O_RDONLY);
    if (fd_t < 0 || fd_r < 0)
        fail("open %s for comparison: %s", paths[p], strerror(errno));
    int64_t off = 0;
    for (;;) {
        errno = 0;
        ssize_t n_t = pread(fd_t, rbuf_test, MAX_LEN, (off_t)off);
        e_t = errno;
        errno = 0;
        ssize_t n_r = pread(fd_r, rbuf_ref, MAX_LEN, (off_t)off);
        e_r = errno;
        snprintf(what, sizeof what, "read of %s at %lld", paths[p], (long long)off);
        compare_read(what, n_t, e_t, n_r, e_r, off);
        if (n_r <= 0)
            break;
        off += n_r;
    }
    if (off != st_r.st_size)
        fail("%s: read %lld bytes in total, st_size %lld", paths[p], (long long)off,
             (long long)st_r.st_size);
    close(fd_t);
    close(fd_r);
}

static void op_compare(void)
{
    int p = pick_path();
    record("compare %s in full", paths[p]);
    compare_file(p);
}

static int name_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The sorted listing of one directory as a single string "a,b,c". */
static void listing(const char *dir, const char *sub, char *out, size_t n)
{
    char full[4096];
    join(full, sizeof full, dir, sub);
    DIR *d = opendir(full);
    if (!d)
        die("opendir %s: %s", full, strerror(errno));
    char *names[1024];
    int k = 0;
    struct dirent *de;
    while ((de = readdir(d)) && k < 1024) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        names[k++] = strdup(de->d_name);
    }
    closedir(d);
    qsort(names, (size_t)k, sizeof names[0], name_cmp);
    out[0] = 0;
    for (int i = 0; i < k; i++) {
        if (strlen(out) + strlen(names[i]) + 2 < n) {
            strcat(out, names[i]);
            strcat(out, ",");
        }
        free(names[i]);
    }
}

static void compare_all(void)
{
    opno = -1;
    for (int i = 0; i < nfiles; i++)
        compare_file(i);
    /* hard links: two names are one inode on one side exactly when they are on the other */
    for (int i = 0; i < nfiles; i++)
        for (int j = i + 1; j < nfiles; j++) {
            char a[4096], b[4096];
            struct stat sa_t, sb_t, sa_r, sb_r;
            join(a, sizeof a, dir_ref, paths[i]);
            join(b, sizeof b, dir_ref, paths[j]);
            if (stat(a, &sa_r) || stat(b, &sb_r))
                continue;
            int linked_r = sa_r.st_ino == sb_r.st_ino;
            join(a, sizeof a, dir_test, paths[i]);
            join(b, sizeof b, dir_test, paths[j]);
            if (stat(a, &sa_t) || stat(b, &sb_t))
                fail("stat %s / %s failed in the test dir", paths[i], paths[j]);
            if ((sa_t.st_ino == sb_t.st_ino) != linked_r)
                fail("%s and %s: hard-linked in the reference: %s, in the test dir: %s",
                     paths[i], paths[j], linked_r ? "yes" : "no",
                     sa_t.st_ino == sb_t.st_ino ? "yes" : "no");
        }
    static char l_t[65536], l_r[65536];
    const char *subs[] = {".", "d", "d/e"};
    for (size_t i = 0; i < sizeof subs / sizeof subs[0]; i++) {
        listing(dir_test, subs[i], l_t, sizeof l_t);
        listing(dir_ref, subs[i], l_r, sizeof l_r);
        if (strcmp(l_t, l_r) != 0)
            fail("listing of %s: test dir [%s], reference [%s]", subs[i], l_t, l_r);
    }
}

static void setup_dirs(const char *dir)
{
    char p[4096];
    join(p, sizeof p, dir, "d");
    if (mkdir(p, 0755) != 0 && errno != EEXIST)
        die("mkdir %s: %s", p, strerror(errno));
    join(p, sizeof p, dir, "d/e");
    if (mkdir(p, 0755) != 0 && errno != EEXIST)
        die("mkdir %s: %s", p, strerror(errno));
}

static void usage(void)
{
    fprintf(stderr,
            "usage: fsrandom [-s SEED] [-n OPS] [-f FILES] [-o FDS] [-m MAXOFF] [-l LOG] [-x LETTERS] "
            "TESTDIR REFDIR\n"
            "       fsrandom -V TESTDIR REFDIR\n");
    exit(2);
}

int main(int argc, char **argv)
{
    int c, verify_only = 0;
    const char *seed_s = getenv("PXC_SEED"), *logname = NULL, *exclude = NULL;
    while ((c = getopt(argc, argv, "s:n:f:o:m:l:x:Vh")) != -1) {
        switch (c) {
        case 's':
            seed_s = optarg;
            break;
        case 'n':
            nops = atol(optarg);
            break;
        case 'f':
            nfiles = atoi(optarg);
            break;
        case 'o':
            nfds = atoi(optarg);
            break;
        case 'm':
            max_off = atoll(optarg);
            break;
        case 'l':
            logname = optarg;
            break;
        case 'x':
            exclude = optarg;
            break;
        case 'V':
            verify_only = 1;
            break;
        default:
            usage();
        }
    }
    if (optind + 2 != argc || nfiles < 2 || nfiles > MAX_FILES || nfds < 1 || nfds > MAX_FDS ||
        nops < 0 || max_off < 4096)
        usage();
    dir_test = argv[optind];
    dir_ref = argv[optind + 1];

    /* File names: most at the top, some one and two directories down, so that renames
     * cross directories. */
    for (int i = 0; i < nfiles; i++)
        snprintf(paths[i], sizeof paths[i], "%sf%d", i % 4 == 3 ? "d/" : i % 8 == 6 ? "d/e/" : "",
                 i);
    wbuf = malloc(MAX_LEN);
    rbuf_test = malloc(MAX_LEN);
    rbuf_ref = malloc(MAX_LEN);
    if (!wbuf || !rbuf_test || !rbuf_ref)
        die("out of memory");

    if (verify_only) {
        compare_all();
        printf("fsrandom: %s and %s are identical (%d files)\n", dir_test, dir_ref, nfiles);
        return 0;
    }

    if (seed_s && *seed_s) {
        seed = strtoull(seed_s, NULL, 0);
    } else {
        struct timeval tv;
        gettimeofday(&tv, NULL);
        seed = (uint64_t)tv.tv_sec * 1000003u ^ (uint64_t)tv.tv_usec ^ (uint64_t)getpid() << 20;
    }
    printf("fsrandom: seed %" PRIu64 ", %ld operations, %d files, %d descriptors\n", seed, nops,
           nfiles, nfds);
    fflush(stdout);
    rng_seed(seed);
    if (logname && !(oplog = fopen(logname, "w")))
        die("%s: %s", logname, strerror(errno));
    setup_dirs(dir_test);
    setup_dirs(dir_ref);
    umask(022);

    /* Operation mix, in percent; -x drops classes (to work around a known quirk of a
     * reference filesystem while developing). */
    static const struct {
        char letter;
        int weight;
        void (*fn)(void);
        const char *name;
    } mix[] = {
        {'o', 12, op_open, "open"},   {'c', 8, op_close, "close"},
        {'w', 25, op_write, "write"}, {'r', 23, op_read, "read"},
        {'t', 8, op_truncate, "truncate"}, {'s', 3, op_fsync, "fsync"},
        {'n', 4, op_rename, "rename"}, {'u', 2, op_unlink, "unlink"},
        {'l', 2, op_link, "link"},    {'a', 9, op_stat, "stat"},
        {'m', 4, op_compare, "compare"},
    };
    enum { NMIX = sizeof mix / sizeof mix[0] };
    long counts[NMIX] = {0};
    for (opno = 1; opno <= nops; opno++) {
        int k = (int)rnd(100), i = 0;
        while (i < NMIX - 1 && k >= mix[i].weight)
            k -= mix[i++].weight;
        if (exclude && strchr(exclude, mix[i].letter))
            continue;
        mix[i].fn();
        counts[i]++;
    }
    for (int i = 0; i < nfds; i++)
        if (slots[i].used) {
            opno = nops + 1;
            record("close slot %d (end)", i);
            int r_t = close(slots[i].fd_test), e_t = errno;
            int r_r = close(slots[i].fd_ref), e_r = errno;
            same_result("close", r_t, e_t, r_r, e_r);
            slots[i].used = 0;
        }
    compare_all();
    printf("fsrandom: %ld operations identical (", nops);
    for (int i = 0; i < NMIX; i++)
        printf("%s%s %ld", i ? ", " : "", mix[i].name, counts[i]);
    printf(")\n");
    if (oplog)
        fclose(oplog);
    return 0;
}

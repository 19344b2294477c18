/* Unit tests of the opaque block format: size arithmetic, random access against a
 * shadow buffer, holes, re-keying, and tamper detection. */
#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "codec/opaque.h"
#include "tap.h"

static pxc_keys *keys;

static int temp_fd(void)
{
    char path[] = "/tmp/pxc-opaque-XXXXXX";
    int fd = mkstemp(path);
    unlink(path);
    return fd;
}

static uint64_t stored_bytes(int fd)
{
    struct stat st;
    fstat(fd, &st);
    return (uint64_t)st.st_size;
}

static void test_size_arithmetic(void)
{
    static const uint64_t sizes[] = {0, 1, 4095, 4096, 4097, 8192, 10000, 1 << 20, 5000000000ULL};
    int good = 1;
    for (size_t k = 0; k < sizeof sizes / sizeof *sizes; k++) {
        uint64_t p = 0;
        if (opaque_plain_size(opaque_stored_size(sizes[k]), &p) != 0 || p != sizes[k])
            good = 0;
    }
    ok(good, "plain size recovered from stored size for edge sizes");
    ok(opaque_stored_size(0) == 136 + 40, "empty file is header + one empty block");
    ok(opaque_stored_size(4096) == 136 + 4136, "one full block");
    ok(opaque_stored_size(4097) == 136 + 4136 + 41, "one full block and one byte");
    uint64_t p;
    ok(opaque_plain_size(100, &p) == -EBADMSG, "shorter than a header is rejected");
    ok(opaque_plain_size(136 + 4136 + 39, &p) == -EBADMSG, "torn last block is rejected");
    ok(opaque_plain_size(136 + 4136 + 40, &p) == -EBADMSG, "empty block after a full one rejected");
}

/* Random writes, truncates and reads, compared with a plain buffer. */
static void test_random_ops(void)
{
    enum { MAXSZ = 300000, OPS = 4000 };
    uint8_t *shadow = calloc(1, MAXSZ), *buf = malloc(MAXSZ), *got = malloc(MAXSZ);
    uint64_t size = 0;
    opaque_file of;
    int fd = temp_fd(), bad = 0;
    unsigned seed = (unsigned)time(NULL);

    srand(seed);
    tap_diag("random ops seed %u", seed);
    ok(opaque_create(&of, fd, keys) == 0, "create");
    for (int op = 0; op < OPS && !bad; op++) {
        int kind = rand() % 10;
        uint64_t off = (uint64_t)(rand() % (MAXSZ / 2));
        size_t n = (size_t)(rand() % 20000);
        if (rand() % 4 == 0) /* favour block boundaries */
            off = (off / 4096) * 4096 + (uint64_t)(rand() % 3) - 1 + 4096;
        if (off + n > MAXSZ)
            n = MAXSZ - off;
        if (kind < 5) {
            randombytes_buf(buf, n);
            if (opaque_write(&of, buf, n, off) != (ssize_t)n) {
                bad = op + 1;
                break;
            }
            memcpy(shadow + off, buf, n);
            if (n && off + n > size)
                size = off + n;
        } else if (kind < 7) {
            uint64_t ns = rand() % 8 == 0 ? 0 : (uint64_t)(rand() % MAXSZ);
            if (opaque_truncate(&of, ns, keys) != 0) {
                bad = op + 1;
                break;
            }
            if (ns < size)
                memset(shadow + ns, 0, size - ns);
            size = ns;
        } else {
            ssize_t r = opaque_read(&of, got, n, off);
            ssize_t expect = off >= size ? 0 : (ssize_t)((off + n > size ? size : off + n) - off);
            if (r != expect || memcmp(got, shadow + off, (size_t)expect) != 0)
                bad = op + 1;
        }
        if (of.plain_size != size || stored_bytes(fd) != opaque_stored_size(size))
            bad = op + 1;
    }
    ok(!bad, "%d random write/truncate/read ops match the shadow (first bad op %d)", OPS, bad);

    /* Re-open from disk: the header and size come back, all content matches. */
    opaque_file again;
    int rc = opaque_open(&again, fd, keys);
    ok(rc == 0 && again.plain_size == size, "reopen gives size %llu", (unsigned long long)size);
    ssize_t r = opaque_read(&again, got, MAXSZ, 0);
    ok(r == (ssize_t)size && memcmp(got, shadow, size) == 0, "reopened content matches");
    opaque_close(&again);
    opaque_close(&of);
    close(fd);
    free(shadow);
    free(buf);
    free(got);
}

static void test_holes_and_rekey(void)
{
    opaque_file of;
    int fd = temp_fd();
    uint8_t got[4096], one = 0x5a;
    struct stat st;

    opaque_create(&of, fd, keys);
    uint8_t id_before[16];
    memcpy(id_before, of.secrets.file_id, 16);
    ok(opaque_write(&of, &one, 1, 1ULL << 30) == 1, "write one byte at 1 GiB");
    fstat(fd, &st);
    ok((uint64_t)st.st_blocks * 512 < 1 << 20, "stored file is sparse (%lld bytes allocated)",
       (long long)st.st_blocks * 512);
    ok(opaque_read(&of, got, sizeof got, 12345678) == sizeof got && got[0] == 0 && got[4095] == 0,
       "a hole reads as zeros");
    ok(opaque_read(&of, got, 10, 1ULL << 30) == 1 && got[0] == 0x5a, "the byte reads back");
    ok(opaque_truncate(&of, 0, keys) == 0 && of.plain_size == 0, "truncate to zero");
    ok(memcmp(id_before, of.secrets.file_id, 16) != 0, "truncate to zero re-keys the file");
    ok(stored_bytes(fd) == 176, "stored file is header + empty block again");
    opaque_close(&of);
    close(fd);
}

/* Builds a 3-block file, applies a change to the stored bytes, reopens and reads. */
static int read_after(void (*damage)(int fd), int *open_rc)
{
    uint8_t data[10000], got[10000];
    opaque_file of;
    int fd = temp_fd();

    randombytes_buf(data, sizeof data);
    opaque_create(&of, fd, keys);
    opaque_write(&of, data, sizeof data, 0);
    opaque_close(&of);
    damage(fd);
    *open_rc = opaque_open(&of, fd, keys);
    ssize_t r = *open_rc ? *open_rc : opaque_read(&of, got, sizeof got, 0);
    if (r == (ssize_t)sizeof data && memcmp(got, data, sizeof data) != 0)
        r = -1000; /* wrong bytes returned silently: the worst outcome */
    opaque_close(&of);
    close(fd);
    return (int)r;
}

static void flip(int fd, off_t at)
{
    uint8_t b;
    pread(fd, &b, 1, at);
    b ^= 0x01;
    pwrite(fd, &b, 1, at);
}
static void flip_magic(int fd)
{
    flip(fd, 2);
}
static void flip_file_id(int fd)
{
    flip(fd, 20);
}
static void flip_sealed(int fd)
{
    flip(fd, 100);
}
static void flip_nonce(int fd)
{
    flip(fd, 136 + 4136 + 5);
}
static void flip_ciphertext(int fd)
{
    flip(fd, 136 + 2000);
}
static void flip_tag(int fd)
{
    flip(fd, (off_t)stored_bytes(fd) - 1);
}
static void cut_one_block(int fd)
{
    ftruncate(fd, 136 + 2 * 4136);
}
static void cut_one_byte(int fd)
{
    ftruncate(fd, (off_t)stored_bytes(fd) - 1);
}
static void append_garbage(int fd)
{
    uint8_t junk[100];
    randombytes_buf(junk, sizeof junk);
    pwrite(fd, junk, sizeof junk, (off_t)stored_bytes(fd));
}
static void swap_blocks(int fd)
{
    uint8_t a[4136], b[4136];
    pread(fd, a, sizeof a, 136);
    pread(fd, b, sizeof b, 136 + 4136);
    pwrite(fd, b, sizeof b, 136);
    pwrite(fd, a, sizeof a, 136 + 4136);
}
static void zero_last_block(int fd)
{
    uint8_t z[4136] = {0};
    pwrite(fd, z, 10000 - 8192 + 40, 136 + 2 * 4136);
}

static void test_tamper(void)
{
    static const struct {
        const char *name;
        void (*damage)(int);
    } cases[] = {
        {"flipped magic", flip_magic},
        {"flipped file id", flip_file_id},
        {"flipped sealed seed", flip_sealed},
        {"flipped nonce", flip_nonce},
        {"flipped ciphertext", flip_ciphertext},
        {"flipped tag", flip_tag},
        {"cut at block boundary", cut_one_block},
        {"cut by one byte", cut_one_byte},
        {"appended garbage", append_garbage},
        {"swapped blocks", swap_blocks},
        {"zeroed final block", zero_last_block},
    };
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        int open_rc;
        int r = read_after(cases[k].damage, &open_rc);
        ok(r == -EBADMSG, "%s is detected (%s, rc %d)", cases[k].name,
           open_rc ? "on open" : "on read", r);
    }

    /* A block from another file of the same volume does not authenticate either. */
    opaque_file a, b;
    uint8_t data[8192], blk[4136], got[8192];
    int fa = temp_fd(), fb = temp_fd();
    randombytes_buf(data, sizeof data);
    opaque_create(&a, fa, keys);
    opaque_create(&b, fb, keys);
    opaque_write(&a, data, sizeof data, 0);
    opaque_write(&b, data, sizeof data, 0);
    pread(fa, blk, sizeof blk, 136);
    pwrite(fb, blk, sizeof blk, 136);
    ok(opaque_read(&b, got, sizeof got, 0) == -EBADMSG, "block from another file is rejected");
    opaque_close(&a);
    opaque_close(&b);
    close(fa);
    close(fb);
}

static void test_other_volume(void)
{
    uint8_t other_master[32];
    randombytes_buf(other_master, sizeof other_master);
    pxc_keys *other = pxc_keys_new(other_master);
    opaque_file of;
    int fd = temp_fd();
    opaque_create(&of, fd, keys);
    opaque_close(&of);
    ok(opaque_open(&of, fd, other) == -EBADMSG, "a file of another volume does not open");
    pxc_keys_free(other);
    close(fd);
}

static void test_throughput(void)
{
    enum { MB = 64 };
    size_t chunk = 1 << 20;
    uint8_t *buf = malloc(chunk);
    opaque_file of;
    int fd = temp_fd();
    struct timespec t0, t1, t2;

    randombytes_buf(buf, chunk);
    opaque_create(&of, fd, keys);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int k = 0; k < MB; k++)
        opaque_write(&of, buf, chunk, (uint64_t)k * chunk);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    int good = 1;
    for (int k = 0; k < MB; k++)
        good &= opaque_read(&of, buf, chunk, (uint64_t)k * chunk) == (ssize_t)chunk;
    clock_gettime(CLOCK_MONOTONIC, &t2);
    double w = (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
    double r = (t2.tv_sec - t1.tv_sec) + (t2.tv_nsec - t1.tv_nsec) / 1e9;
    ok(good, "64 MiB written and read in 1 MiB calls");
    tap_diag("opaque codec (page cache, one thread): write %.0f MB/s, read %.0f MB/s",
             MB * 1.048576 / w, MB * 1.048576 / r);
    opaque_close(&of);
    close(fd);
    free(buf);
}

int main(void)
{
    uint8_t master[32];
    if (sodium_init() < 0)
        return 1;
    randombytes_buf(master, sizeof master);
    keys = pxc_keys_new(master);
    test_size_arithmetic();
    test_random_ops();
    test_holes_and_rekey();
    test_tamper();
    test_other_volume();
    test_throughput();
    pxc_keys_free(keys);
    return tap_done();
}

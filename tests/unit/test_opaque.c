/* Unit tests of the opaque block format: size arithmetic, random access against a
 * shadow buffer, holes, re-keying, versions, tamper detection, verification and the
 * repair of torn tails. */
#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdint.h>
#include <stdlib.h>
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
    ok(opaque_stored_size(0) == 144 + 40, "empty file is header + one empty block");
    ok(opaque_stored_size(4096) == 144 + 4136, "one full block");
    ok(opaque_stored_size(4097) == 144 + 4136 + 41, "one full block and one byte");
    uint64_t p;
    ok(opaque_plain_size(100, &p) == -EBADMSG, "shorter than a header is rejected");
    ok(opaque_plain_size(144 + 4136 + 39, &p) == -EBADMSG, "torn last block is rejected");
    ok(opaque_plain_size(144 + 4136 + 40, &p) == -EBADMSG, "empty block after a full one rejected");
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
    uint8_t seed_before[PXC_SEED_BYTES], key_before[PXC_KEY_BYTES];
    memcpy(seed_before, of.secrets.seed, sizeof seed_before);
    memcpy(key_before, of.key, sizeof key_before);
    ok(of.secrets.version == 1, "a new file is version 1");
    ok(opaque_truncate(&of, 0, keys) == 0 && of.plain_size == 0, "truncate to zero");
    ok(memcmp(id_before, of.secrets.file_id, 16) == 0, "truncate to zero keeps the file id");
    ok(memcmp(seed_before, of.secrets.seed, sizeof seed_before) != 0 &&
           memcmp(key_before, of.key, sizeof key_before) != 0,
       "but re-keys the file (new seed, new content key)");
    ok(of.secrets.version == 2, "and starts version 2");
    ok(stored_bytes(fd) == 184, "stored file is header + empty block again");
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
    flip(fd, 144 + 4136 + 5);
}
static void flip_ciphertext(int fd)
{
    flip(fd, 144 + 2000);
}
static void flip_tag(int fd)
{
    flip(fd, (off_t)stored_bytes(fd) - 1);
}
static void cut_one_block(int fd)
{
    ftruncate(fd, 144 + 2 * 4136);
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
    pread(fd, a, sizeof a, 144);
    pread(fd, b, sizeof b, 144 + 4136);
    pwrite(fd, b, sizeof b, 144);
    pwrite(fd, a, sizeof a, 144 + 4136);
}
static void zero_last_block(int fd)
{
    uint8_t z[4136] = {0};
    pwrite(fd, z, 10000 - 8192 + 40, 144 + 2 * 4136);
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
    pread(fa, blk, sizeof blk, 144);
    pwrite(fb, blk, sizeof blk, 144);
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

static void write_pattern(opaque_file *of, size_t n)
{
    uint8_t *buf = malloc(n);
    for (size_t i = 0; i < n; i++)
        buf[i] = (uint8_t)(i * 7 + 1);
    opaque_write(of, buf, n, 0);
    free(buf);
}

static void test_versions(void)
{
    opaque_file of, again;
    int fd = temp_fd();
    uint8_t old_header[OPAQUE_HEADER_BYTES], got[100];

    opaque_create(&of, fd, keys);
    write_pattern(&of, 10000);
    pread(fd, old_header, sizeof old_header, 0);
    ok(opaque_set_version(&of, keys, 7) == 0 && of.secrets.version == 7, "set version 7");
    ok(opaque_open(&again, fd, keys) == 0 && again.secrets.version == 7 &&
           memcmp(again.sealed, of.sealed, sizeof of.sealed) == 0,
       "the header says version 7 on reopen");
    ok(opaque_read(&again, got, sizeof got, 5000) == sizeof got &&
           got[0] == (uint8_t)(5000 * 7 + 1),
       "the blocks still read (same seed)");
    opaque_close(&again);
    pwrite(fd, old_header, sizeof old_header, 0);
    ok(opaque_open(&again, fd, keys) == 0 && again.secrets.version == 1,
       "an old header put back shows the old version");
    opaque_close(&again);

    pxc_file_secrets next = of.secrets;
    pxc_secrets_renew(&next, 8);
    opaque_close(&of);
    ok(opaque_create_from(&of, fd, keys, &next) == 0 && opaque_open(&again, fd, keys) == 0 &&
           again.secrets.version == 8 &&
           memcmp(again.secrets.file_id, next.file_id, PXC_FILE_ID_BYTES) == 0 &&
           again.plain_size == 0,
       "create_from: a new empty version 8 under the same file id");
    opaque_close(&again);
    opaque_close(&of);
    close(fd);
}

/* A 5-block file (4 full blocks and 1000 bytes) on a new fd. */
static int five_blocks(opaque_file *of)
{
    int fd = temp_fd();
    opaque_create(of, fd, keys);
    write_pattern(of, 4 * 4096 + 1000);
    return fd;
}

static int reads_pattern(int fd, uint64_t want_size)
{
    opaque_file of;
    uint8_t *buf = malloc(want_size + 1);
    int good = opaque_open(&of, fd, keys) == 0 && of.plain_size == want_size &&
               opaque_read(&of, buf, want_size + 1, 0) == (ssize_t)want_size;
    for (uint64_t i = 0; good && i < want_size; i++)
        good = buf[i] == (uint8_t)(i * 7 + 1);
    opaque_close(&of);
    free(buf);
    return good;
}

static void test_verify_and_salvage(void)
{
    opaque_file of;
    uint64_t bad = 0, kept = 0;
    const off_t H = OPAQUE_HEADER_BYTES, S = OPAQUE_STORED_BLOCK_BYTES;

    int fd = five_blocks(&of);
    ok(opaque_verify(&of, &bad) == 0, "verify: a sound file passes");
    flip(fd, H + 2 * S + 100);
    ok(opaque_verify(&of, &bad) == -EBADMSG && bad == 2 * 4096, "verify names the bad block");
    ok(opaque_salvage(fd, keys, &kept) == -EBADMSG &&
           stored_bytes(fd) == (uint64_t)(H + 4 * S + 1040),
       "salvage refuses damage in the middle and changes nothing");
    opaque_close(&of);
    close(fd);

    /* A write torn in the middle of block 3 (the kernel stops at a page boundary). */
    fd = five_blocks(&of);
    ftruncate(fd, H + 3 * S + 1000);
    ok(opaque_salvage(fd, keys, &kept) == 0 && kept == 3 * 4096, "torn tail: 3 blocks kept");
    ok(reads_pattern(fd, 3 * 4096), "and they read back, the last one now final");
    ok(opaque_salvage(fd, keys, &kept) == 0 && kept == 3 * 4096, "salvage again changes nothing");
    opaque_close(&of);
    close(fd);

    /* Appended blocks written, but the old last block not yet re-sealed as non-final:
     * the file ends at the old final block. */
    fd = temp_fd();
    opaque_create(&of, fd, keys);
    write_pattern(&of, 2 * 4096);
    uint8_t old_last[OPAQUE_STORED_BLOCK_BYTES];
    pread(fd, old_last, sizeof old_last, H + S);
    write_pattern(&of, 4 * 4096 + 1000);
    pwrite(fd, old_last, sizeof old_last, H + S);
    ok(opaque_salvage(fd, keys, &kept) == 0 && kept == 2 * 4096 && reads_pattern(fd, 2 * 4096),
       "append interrupted before the old final block changed: the old file comes back");
    opaque_close(&of);
    close(fd);

    /* Torn inside the first block. */
    fd = five_blocks(&of);
    ftruncate(fd, H + 2000);
    ok(opaque_salvage(fd, keys, &kept) == 0 && kept == 0 && reads_pattern(fd, 0),
       "torn first block: an empty file");
    opaque_close(&of);
    close(fd);

    fd = five_blocks(&of);
    flip(fd, 20);
    ok(opaque_salvage(fd, keys, &kept) == -EBADMSG, "a header that fails is not salvaged");
    opaque_close(&of);
    close(fd);
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
    test_versions();
    test_verify_and_salvage();
    test_throughput();
    pxc_keys_free(keys);
    return tap_done();
}

/* Fuzz target: the opaque block decoder (codec/opaque.h): opaque_open, then
 * opaque_read at offsets and lengths the input picks, opaque_verify and last
 * opaque_salvage, on a file the input builds.
 *
 * A base file is made once at start-up: a valid opaque file of BASE_PLAIN bytes (three
 * full blocks and a partial one) under the fixed volume key.  Input: byte 0 picks the
 * mode, bytes 1..16 four reads (u16 LE offset, u16 LE length; offsets scaled to reach
 * the whole file), the rest builds the stored file:
 *   0  raw       the rest is the stored file
 *   1  body      the base's header, then the rest as blocks
 *   2  xor       the base with rest[1..] XORed in from byte 64 * rest[0] on
 *   3  resize    the base cut to (or extended with zeros to) u16 LE rest[0..1] * 4
 * Whatever the file, every read that succeeds returns, for each block, either the
 * base's plaintext at that place (the only thing this key ever sealed) or zeros (a
 * hole: a non-final block stored as all zeros); a file equal to the base opens and
 * reads back whole.  Nothing else may come out: any other change fails with -EBADMSG.
 * opaque_verify agrees with a whole read.  opaque_salvage either refuses and leaves the
 * file as it was, or leaves a file that opens, verifies and reads back (under the same
 * rule) at the size it reports; the base itself it keeps whole.
 */
#include <sys/mman.h>
#include <unistd.h>

#include "codec/bytes.h"
#include "codec/opaque.h"
#include "tests/fuzz/fuzz.h"

#define BASE_PLAIN (3 * OPAQUE_BLOCK_BYTES + 1000)
#define PREFIX 17 /* mode and reads */

static uint8_t base_plain[BASE_PLAIN];
static uint8_t *base_stored;
static size_t base_len;
static int fd = -1;

static void die(const char *what)
{
    fprintf(stderr, "fuzz_opaque: %s: %s\n", what, strerror(errno));
    exit(1);
}

static void set_file(const uint8_t *p, size_t n)
{
    if (ftruncate(fd, 0) != 0 || (n && pwrite(fd, p, n, 0) != (ssize_t)n))
        die("memfd");
}

static void make_base(void)
{
    opaque_file of;
    struct stat st;
    for (size_t i = 0; i < sizeof base_plain; i++)
        base_plain[i] = (uint8_t)(i * 131 + (i >> 8));
    if (opaque_create(&of, fd, fuzz_keys) != 0 ||
        opaque_write(&of, base_plain, sizeof base_plain, 0) != (ssize_t)sizeof base_plain ||
        fstat(fd, &st) != 0)
        die("making the base file");
    opaque_close(&of);
    base_len = (size_t)st.st_size;
    base_stored = malloc(base_len);
    if (!base_stored || pread(fd, base_stored, base_len, 0) != (ssize_t)base_len)
        die("reading the base file");
}

static void make_seeds(void)
{
    uint8_t pre[PREFIX] = {0};
    char name[64];
    /* reads: all, the first block's end, across blocks 1-2, the tail */
    static const uint16_t reads[4][2] = {{0, 65535}, {4000, 200}, {8000, 5000}, {65000, 400}};
    for (int i = 0; i < 4; i++) {
        put_le(pre + 1 + 4 * i, reads[i][0], 2);
        put_le(pre + 3 + 4 * i, reads[i][1], 2);
    }
    for (int m = 0; m < 4; m++) {
        pre[0] = (uint8_t)m;
        snprintf(name, sizeof name, "mode-%d", m);
        switch (m) {
        case 0:
            fuzz_write_seed(name, pre, sizeof pre, base_stored, base_len);
            break;
        case 1:
            fuzz_write_seed(name, pre, sizeof pre, base_stored + OPAQUE_HEADER_BYTES,
                            base_len - OPAQUE_HEADER_BYTES);
            break;
        case 2: {
            static const uint8_t none[2] = {0, 0};
            fuzz_write_seed(name, pre, sizeof pre, none, sizeof none);
            break;
        }
        default: {
            uint8_t len[2];
            put_le(len, (base_len - OPAQUE_STORED_BLOCK_BYTES) / 4, 2);
            fuzz_write_seed(name, pre, sizeof pre, len, sizeof len);
            break;
        }
        }
    }
    /* a hole in block 1 */
    uint8_t *holed = malloc(base_len - OPAQUE_HEADER_BYTES);
    if (!holed)
        die("malloc");
    memcpy(holed, base_stored + OPAQUE_HEADER_BYTES, base_len - OPAQUE_HEADER_BYTES);
    memset(holed + OPAQUE_STORED_BLOCK_BYTES, 0, OPAQUE_STORED_BLOCK_BYTES);
    pre[0] = 1;
    fuzz_write_seed("mode-1-hole", pre, sizeof pre, holed, base_len - OPAQUE_HEADER_BYTES);
    free(holed);
    /* a torn tail (salvaged), and damage in the middle (refused) */
    uint8_t arg[2];
    pre[0] = 3;
    put_le(arg, (base_len - 500) / 4, 2);
    fuzz_write_seed("mode-3-torn", pre, sizeof pre, arg, sizeof arg);
    pre[0] = 2;
    uint8_t flip[2] = {(OPAQUE_HEADER_BYTES + OPAQUE_STORED_BLOCK_BYTES + 100) / 64, 4};
    fuzz_write_seed("mode-2-middle", pre, sizeof pre, flip, sizeof flip);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_setup();
    fd = memfd_create("fuzz-opaque", 0);
    if (fd < 0)
        die("memfd_create");
    make_base();
    if (fuzz_seed_dir())
        make_seeds();
    return 0;
}

/* Each block of a successful read is the base's plaintext or zeros. */
static void check_read(const uint8_t *got, size_t n, uint64_t off)
{
    for (uint64_t pos = off; pos < off + n;) {
        uint64_t bend = (pos / OPAQUE_BLOCK_BYTES + 1) * OPAQUE_BLOCK_BYTES;
        size_t len = (size_t)((bend < off + n ? bend : off + n) - pos);
        const uint8_t *g = got + (pos - off);
        int zero = 1, orig = pos + len <= BASE_PLAIN;
        for (size_t k = 0; k < len; k++)
            zero &= g[k] == 0;
        if (orig)
            orig = memcmp(g, base_plain + pos, len) == 0;
        FUZZ_CHECK(zero || orig);
        pos += len;
    }
}

/* Reads of an opened file: the whole, then the input's four. */
static void check_reads(opaque_file *of, const uint8_t *data, size_t n, int same)
{
    uint8_t *out;
    uint64_t psize;
    FUZZ_CHECK(opaque_plain_size(n, &psize) == 0 && psize == of->plain_size);
    FUZZ_CHECK(opaque_stored_size(psize) == n);

    /* The whole file, then the input's reads (offsets over the whole plaintext). */
    out = malloc(of->plain_size + 1);
    FUZZ_CHECK(out != NULL);
    ssize_t whole = opaque_read(of, out, of->plain_size + 1, 0), r;
    FUZZ_CHECK(whole == (ssize_t)of->plain_size || whole == -EBADMSG);
    if (whole >= 0)
        check_read(out, (size_t)whole, 0);
    if (same)
        FUZZ_CHECK(whole == BASE_PLAIN && memcmp(out, base_plain, BASE_PLAIN) == 0);
    for (int i = 0; i < 4; i++) {
        uint64_t off = get_le(data + 1 + 4 * i, 2) * (of->plain_size + 2) / 65536;
        size_t len = (size_t)get_le(data + 3 + 4 * i, 2);
        uint8_t *buf = malloc(len ? len : 1);
        FUZZ_CHECK(buf != NULL);
        r = opaque_read(of, buf, len, off);
        FUZZ_CHECK(r >= 0 || r == -EBADMSG);
        if (r >= 0) {
            uint64_t want = off >= of->plain_size ? 0 : of->plain_size - off;
            FUZZ_CHECK((uint64_t)r == (want < len ? want : len));
            check_read(buf, (size_t)r, off);
            if (same && r > 0)
                FUZZ_CHECK(memcmp(buf, base_plain + off, (size_t)r) == 0);
        }
        free(buf);
    }
    /* opaque_verify agrees with the whole read. */
    uint64_t bad = 0;
    int vrc = opaque_verify(of, &bad);
    FUZZ_CHECK(vrc == 0 || vrc == -EBADMSG);
    FUZZ_CHECK((vrc == 0) == (whole >= 0));
    if (vrc != 0)
        FUZZ_CHECK(bad < of->plain_size || of->plain_size == 0);
    free(out);
    opaque_close(of);
}

/* opaque_salvage of the file (file[0..n) as it was before): refused with nothing
 * changed, or a file that opens, verifies and reads back. */
static void check_salvage(const uint8_t *file, size_t n, int same)
{
    uint64_t kept = 0;
    struct stat st;
    int rc = opaque_salvage(fd, fuzz_keys, &kept);
    FUZZ_CHECK(rc == 0 || rc == -EBADMSG);
    if (rc != 0) {
        uint8_t *now = malloc(n ? n : 1);
        FUZZ_CHECK(now != NULL && fstat(fd, &st) == 0 && (size_t)st.st_size == n);
        FUZZ_CHECK(pread(fd, now, n, 0) == (ssize_t)n && memcmp(now, file, n) == 0);
        FUZZ_CHECK(!same);
        free(now);
        return;
    }
    opaque_file of;
    FUZZ_CHECK(opaque_open(&of, fd, fuzz_keys) == 0 && of.plain_size == kept);
    if (same)
        FUZZ_CHECK(kept == BASE_PLAIN);
    uint8_t *out = malloc(kept + 1);
    FUZZ_CHECK(out != NULL);
    FUZZ_CHECK(opaque_read(&of, out, kept + 1, 0) == (ssize_t)kept);
    check_read(out, (size_t)kept, 0);
    uint64_t bad;
    FUZZ_CHECK(opaque_verify(&of, &bad) == 0);
    free(out);
    opaque_close(&of);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *file = NULL;
    size_t n;
    opaque_file of;

    if (size < PREFIX || size > FUZZ_MAX_INPUT)
        return 0;
    fuzz_rng_reset();
    const uint8_t *rest = data + PREFIX;
    size_t rest_len = size - PREFIX;
    switch (data[0] % 4) {
    case 0:
        n = rest_len;
        file = malloc(n ? n : 1);
        if (n)
            memcpy(file, rest, n);
        break;
    case 1:
        n = OPAQUE_HEADER_BYTES + rest_len;
        file = malloc(n);
        memcpy(file, base_stored, OPAQUE_HEADER_BYTES);
        if (rest_len)
            memcpy(file + OPAQUE_HEADER_BYTES, rest, rest_len);
        break;
    case 2: {
        size_t from = rest_len ? 64u * rest[0] : 0;
        n = base_len;
        file = malloc(n);
        memcpy(file, base_stored, n);
        for (size_t i = 1; i < rest_len && from + i - 1 < n; i++)
            file[from + i - 1] ^= rest[i];
        break;
    }
    default:
        n = rest_len >= 2 ? 4 * (size_t)get_le(rest, 2) : 0;
        file = calloc(1, n ? n : 1);
        memcpy(file, base_stored, n < base_len ? n : base_len);
        break;
    }
    FUZZ_CHECK(file != NULL);
    set_file(file, n);
    int same = n == base_len && memcmp(file, base_stored, n) == 0;

    int rc = opaque_open(&of, fd, fuzz_keys);
    FUZZ_CHECK(rc == 0 || rc == -EBADMSG);
    if (same)
        FUZZ_CHECK(rc == 0 && of.plain_size == BASE_PLAIN);
    if (rc == 0)
        check_reads(&of, data, n, same);
    check_salvage(file, n, same);
    free(file);
    return 0;
}

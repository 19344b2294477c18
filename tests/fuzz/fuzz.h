/* Shared setup of the libFuzzer targets in tests/fuzz/ (one target per file).
 *
 * Every target works under one fixed master key, and replaces libsodium's random
 * source with a ChaCha20 stream reset before each input: nonces, file ids and seeds
 * then depend on the input alone, so a crash input replays exactly.
 *
 * Seeds: run a target with PXC_FUZZ_SEEDS=DIR (and -runs=0) and its initialisation
 * writes its generated seed inputs into DIR; those made from the image corpus read
 * PXC_CORPUS (default ../shared/corpus).  `make fuzz` and `make check` do this.
 */
#ifndef PXC_TESTS_FUZZ_H
#define PXC_TESTS_FUZZ_H

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <sodium.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "codec/keys.h"

/* Inputs larger than this return at once: `make fuzz` passes a smaller -max_len, this
 * only keeps oversized seeds from slowing a run down. */
#define FUZZ_MAX_INPUT (256u << 10)

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A broken invariant: report it and abort, which libFuzzer records as a crash. */
#define FUZZ_CHECK(cond)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);               \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* ---- deterministic random source ---------------------------------------- */

static pthread_mutex_t fuzz_rng_lock = PTHREAD_MUTEX_INITIALIZER;
static uint64_t fuzz_rng_counter;
static const uint8_t fuzz_rng_key[crypto_stream_chacha20_KEYBYTES] =
    "pixcrypt fuzz random source 01";

static const char *fuzz_rng_name(void)
{
    return "pixcrypt-fuzz";
}

static void fuzz_rng_buf(void *buf, size_t n)
{
    uint8_t nonce[crypto_stream_chacha20_NONCEBYTES] = {0};
    pthread_mutex_lock(&fuzz_rng_lock);
    uint64_t c = fuzz_rng_counter++;
    pthread_mutex_unlock(&fuzz_rng_lock);
    for (size_t k = 0; k < sizeof nonce; k++)
        nonce[k] = (uint8_t)(c >> (8 * k));
    crypto_stream_chacha20(buf, n, nonce, fuzz_rng_key);
}

static uint32_t fuzz_rng_random(void)
{
    uint32_t v;
    fuzz_rng_buf(&v, sizeof v);
    return v;
}

static void fuzz_rng_stir(void)
{
}

static int fuzz_rng_close(void)
{
    return 0;
}

static struct randombytes_implementation fuzz_rng = {
    .implementation_name = fuzz_rng_name,
    .random = fuzz_rng_random,
    .stir = fuzz_rng_stir,
    .uniform = NULL, /* libsodium's own, on top of random() */
    .buf = fuzz_rng_buf,
    .close = fuzz_rng_close,
};

/* Called at the start of each input. */
static inline void fuzz_rng_reset(void)
{
    pthread_mutex_lock(&fuzz_rng_lock);
    fuzz_rng_counter = 0;
    pthread_mutex_unlock(&fuzz_rng_lock);
}

/* PXC_FUZZ_VERBOSE=1: targets say what they did with each input (to check seeds). */
static int fuzz_verbose;

/* ---- keys --------------------------------------------------------------- */

static pxc_keys *fuzz_keys;
static const uint8_t fuzz_master[PXC_KEY_BYTES] = "pixcrypt fuzz master key 0123456";

/* The random source, libsodium and the fixed volume keys; exits on failure. */
static inline void fuzz_setup(void)
{
    randombytes_set_implementation(&fuzz_rng);
    if (sodium_init() < 0) {
        fprintf(stderr, "fuzz: sodium_init failed\n");
        exit(1);
    }
    fuzz_verbose = getenv("PXC_FUZZ_VERBOSE") != NULL;
    fuzz_keys = pxc_keys_new(fuzz_master);
    if (!fuzz_keys) {
        fprintf(stderr, "fuzz: pxc_keys_new failed\n");
        exit(1);
    }
}

/* ---- files and seeds ---------------------------------------------------- */

/* Reads a whole file (at most max bytes); NULL if it cannot or it is bigger. */
static inline uint8_t *fuzz_read_file(const char *path, size_t max, size_t *len)
{
    FILE *f = fopen(path, "rb");
    uint8_t *buf = NULL;
    struct stat st;
    if (!f)
        return NULL;
    if (fstat(fileno(f), &st) == 0 && S_ISREG(st.st_mode) && (uint64_t)st.st_size <= max &&
        (buf = malloc(st.st_size ? (size_t)st.st_size : 1)) != NULL &&
        fread(buf, 1, (size_t)st.st_size, f) != (size_t)st.st_size) {
        free(buf);
        buf = NULL;
    }
    if (buf)
        *len = (size_t)st.st_size;
    fclose(f);
    return buf;
}

/* The directory seeds are written to, or NULL when this run makes none. */
static inline const char *fuzz_seed_dir(void)
{
    const char *d = getenv("PXC_FUZZ_SEEDS");
    return d && *d ? d : NULL;
}

/* Writes one seed input: a prefix (a mode byte, say) then the body. */
static inline void fuzz_write_seed(const char *name, const uint8_t *prefix, size_t plen,
                                   const uint8_t *body, size_t blen)
{
    char path[4096];
    const char *dir = fuzz_seed_dir();
    if (!dir)
        return;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || (plen && fwrite(prefix, 1, plen, f) != plen) ||
        (blen && fwrite(body, 1, blen, f) != blen)) {
        fprintf(stderr, "fuzz: cannot write seed %s: %s\n", path, strerror(errno));
        exit(1);
    }
    fclose(f);
}

/* Calls fn(path, arg) for every regular file under dir whose name ends in one of the
 * given extensions (a NULL-terminated list; case-insensitive), in a stable order. */
static inline void fuzz_each_file(const char *dir, const char *const *exts,
                                  void (*fn)(const char *path, void *arg), void *arg)
{
    struct dirent **names;
    int count = scandir(dir, &names, NULL, alphasort);
    if (count < 0)
        return;
    for (int i = 0; i < count; i++) {
        char path[4096];
        const char *nm = names[i]->d_name;
        struct stat st;
        if (nm[0] == '.') {
            free(names[i]);
            continue;
        }
        snprintf(path, sizeof path, "%s/%s", dir, nm);
        if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
            fuzz_each_file(path, exts, fn, arg);
        } else if (S_ISREG(st.st_mode)) {
            size_t nl = strlen(nm);
            for (const char *const *e = exts; *e; e++) {
                size_t el = strlen(*e);
                if (nl > el && strcasecmp(nm + nl - el, *e) == 0) {
                    fn(path, arg);
                    break;
                }
            }
        }
        free(names[i]);
    }
    free(names);
}

/* The image corpus directory (PXC_CORPUS, else ../shared/corpus), or NULL if absent. */
static inline const char *fuzz_corpus_dir(void)
{
    const char *d = getenv("PXC_CORPUS");
    struct stat st;
    if (!d || !*d)
        d = "../shared/corpus";
    return stat(d, &st) == 0 && S_ISDIR(st.st_mode) ? d : NULL;
}

#endif

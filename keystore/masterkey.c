/* The masterkey file: a second copy of the volume's key record (format in masterkey.h). */
#include "keystore/masterkey.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define FILE_MAGIC "pixcrypt-masterkey 1"
#define CHECKSUM_BYTES 16
#define FILE_MAX 2048 /* the file is about 500 bytes */

int ks_kdf_limits_possible(long long opslimit, long long memlimit)
{
    return opslimit >= (long long)crypto_pwhash_argon2id_OPSLIMIT_MIN &&
           (unsigned long long)opslimit <= crypto_pwhash_argon2id_OPSLIMIT_MAX &&
           memlimit >= (long long)crypto_pwhash_argon2id_MEMLIMIT_MIN &&
           (unsigned long long)memlimit <= crypto_pwhash_argon2id_MEMLIMIT_MAX;
}

int masterkey_same(const ks_volume_record *a, const ks_volume_record *b)
{
    return a->format_version == b->format_version &&
           memcmp(a->volume_id, b->volume_id, sizeof a->volume_id) == 0 &&
           a->opslimit == b->opslimit && a->memlimit == b->memlimit &&
           memcmp(a->salt, b->salt, sizeof a->salt) == 0 &&
           memcmp(a->master_sealed, b->master_sealed, sizeof a->master_sealed) == 0 &&
           a->created == b->created && a->profile == b->profile && a->names == b->names;
}

/* ---- text form ----------------------------------------------------------------------------- */

static void hex(char *out, const uint8_t *p, size_t n)
{
    sodium_bin2hex(out, 2 * n + 1, p, n);
}

/* The file's bytes, checksum line included; returns the length. */
static size_t format_record(char *out, size_t cap, const ks_volume_record *v)
{
    char id[2 * KS_VOLUME_ID_BYTES + 1], salt[2 * crypto_pwhash_SALTBYTES + 1];
    char sealed[2 * KS_SEALED_MASTER_BYTES + 1], sum_hex[2 * CHECKSUM_BYTES + 1];
    uint8_t sum[CHECKSUM_BYTES];

    hex(id, v->volume_id, sizeof v->volume_id);
    hex(salt, v->salt, sizeof v->salt);
    hex(sealed, v->master_sealed, sizeof v->master_sealed);
    int n = snprintf(out, cap,
                     FILE_MAGIC "\nformat_version %lld\nvolume_id %s\nkdf_alg " KS_KDF_ALG_NAME
                                "\nkdf_opslimit %llu\nkdf_memlimit %zu\nkdf_salt %s\n"
                                "master_sealed %s\ncreated %lld\nprofile %lld\n",
                     v->format_version, id, v->opslimit, v->memlimit, salt, sealed, v->created,
                     v->profile);
    /* Only volumes with encrypted names say so: older readers keep reading the others. */
    if (n >= 0 && (size_t)n < cap && v->names != KS_NAMES_PLAIN)
        n += snprintf(out + n, cap - (size_t)n, "names %lld\n", v->names);
    if (n < 0 || (size_t)n >= cap)
        return 0;
    crypto_generichash(sum, sizeof sum, (const uint8_t *)out, (size_t)n, NULL, 0);
    hex(sum_hex, sum, sizeof sum);
    int m = snprintf(out + n, cap - (size_t)n, "checksum %s\n", sum_hex);
    if (m < 0 || (size_t)m >= cap - (size_t)n)
        return 0;
    return (size_t)n + (size_t)m;
}

/* The value of line "name value" at *pos (advanced past the line), NUL-terminated in
 * place; NULL if the line is not that. */
static char *take_line(char *text, size_t *pos, const char *name)
{
    char *line = text + *pos, *end = strchr(line, '\n');
    size_t k = strlen(name);

    if (end == NULL || strncmp(line, name, k) != 0 || line[k] != ' ')
        return NULL;
    *end = '\0';
    *pos += (size_t)(end - line) + 1;
    return line + k + 1;
}

static int take_hex(char *text, size_t *pos, const char *name, uint8_t *out, size_t n)
{
    const char *v = take_line(text, pos, name);
    size_t got = 0;
    return v != NULL && strlen(v) == 2 * n &&
                   sodium_hex2bin(out, n, v, 2 * n, NULL, &got, NULL) == 0 && got == n
               ? 0
               : -1;
}

/* A decimal integer without sign, spaces or leading zeros, at most LLONG_MAX. */
static int take_number(char *text, size_t *pos, const char *name, long long *out)
{
    const char *v = take_line(text, pos, name);
    unsigned long long x = 0;

    if (v == NULL || v[0] == '\0' || (v[0] == '0' && v[1] != '\0'))
        return -1;
    for (const char *c = v; *c; c++) {
        if (*c < '0' || *c > '9' || x > (unsigned long long)(LLONG_MAX - (*c - '0')) / 10)
            return -1;
        x = x * 10 + (unsigned long long)(*c - '0');
    }
    *out = (long long)x;
    return 0;
}

static int parse_record(char *text, size_t len, ks_volume_record *v)
{
    uint8_t sum[CHECKSUM_BYTES], want[CHECKSUM_BYTES];
    long long ops, mem;
    size_t pos = 0, body;
    const char *alg;

    if (len < sizeof FILE_MAGIC || memcmp(text, FILE_MAGIC "\n", sizeof FILE_MAGIC) != 0)
        return KS_ERR_CORRUPT;
    pos = sizeof FILE_MAGIC;
    if (take_number(text, &pos, "format_version", &v->format_version) != 0 ||
        take_hex(text, &pos, "volume_id", v->volume_id, sizeof v->volume_id) != 0 ||
        (alg = take_line(text, &pos, "kdf_alg")) == NULL || strcmp(alg, KS_KDF_ALG_NAME) != 0 ||
        take_number(text, &pos, "kdf_opslimit", &ops) != 0 ||
        take_number(text, &pos, "kdf_memlimit", &mem) != 0 ||
        take_hex(text, &pos, "kdf_salt", v->salt, sizeof v->salt) != 0 ||
        take_hex(text, &pos, "master_sealed", v->master_sealed, sizeof v->master_sealed) != 0 ||
        take_number(text, &pos, "created", &v->created) != 0)
        return KS_ERR_CORRUPT;
    v->profile = KS_PROFILE_DEFAULT; /* files written before profiles existed */
    if (strncmp(text + pos, "profile ", 8) == 0 &&
        (take_number(text, &pos, "profile", &v->profile) != 0 || v->profile > KS_PROFILE_MAX))
        return KS_ERR_CORRUPT;
    v->names = KS_NAMES_PLAIN; /* files written before names were encrypted */
    if (strncmp(text + pos, "names ", 6) == 0 &&
        (take_number(text, &pos, "names", &v->names) != 0 || v->names > KS_NAMES_MAX))
        return KS_ERR_CORRUPT;
    body = pos;
    if (take_hex(text, &pos, "checksum", want, sizeof want) != 0 || pos != len)
        return KS_ERR_CORRUPT;
    /* The lines were cut in place: put the newlines back before hashing. */
    for (size_t i = 0; i < body; i++)
        if (text[i] == '\0')
            text[i] = '\n';
    crypto_generichash(sum, sizeof sum, (const uint8_t *)text, body, NULL, 0);
    if (sodium_memcmp(sum, want, sizeof sum) != 0)
        return KS_ERR_CORRUPT;
    if (v->format_version > KS_FORMAT_VERSION)
        return KS_ERR_VERSION;
    if (v->format_version < 1 || !ks_kdf_limits_possible(ops, mem))
        return KS_ERR_CORRUPT;
    v->opslimit = (unsigned long long)ops;
    v->memlimit = (size_t)mem;
    return KS_OK;
}

/* ---- the file ------------------------------------------------------------------------------ */

static int write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

int masterkey_write(const char *dir, const ks_volume_record *v)
{
    char text[FILE_MAX], tmp[PATH_MAX], path[PATH_MAX];
    size_t len = format_record(text, sizeof text, v);
    int fd, st = KS_OK;

    if (len == 0 || snprintf(path, sizeof path, "%s/" KS_MASTERKEY_NAME, dir) >= (int)sizeof path ||
        snprintf(tmp, sizeof tmp, "%s/" KS_MASTERKEY_NAME ".tmp-XXXXXX", dir) >= (int)sizeof tmp)
        return KS_ERR_IO;
    fd = mkstemp(tmp); /* mode 0600 */
    if (fd < 0)
        return KS_ERR_IO;
    if (write_all(fd, text, len) != 0 || fsync(fd) != 0)
        st = KS_ERR_IO;
    if (close(fd) != 0)
        st = KS_ERR_IO;
    if (st == KS_OK && rename(tmp, path) != 0)
        st = KS_ERR_IO;
    if (st != KS_OK) {
        (void)unlink(tmp);
        return st;
    }
    fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        (void)fsync(fd); /* the rename itself */
        close(fd);
    }
    return KS_OK;
}

int masterkey_read(const char *dir, ks_volume_record *v)
{
    char path[PATH_MAX], text[FILE_MAX + 1];
    ssize_t n;
    int fd;

    memset(v, 0, sizeof *v);
    if (snprintf(path, sizeof path, "%s/" KS_MASTERKEY_NAME, dir) >= (int)sizeof path)
        return KS_ERR_IO;
    fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return errno == ENOENT || errno == ENOTDIR ? KS_ERR_MISSING : KS_ERR_IO;
    do
        n = read(fd, text, sizeof text - 1);
    while (n < 0 && errno == EINTR);
    close(fd);
    if (n < 0)
        return KS_ERR_IO;
    text[n] = '\0';
    if (strlen(text) != (size_t)n) /* a NUL inside: not our text */
        return KS_ERR_CORRUPT;
    return parse_record(text, (size_t)n, v);
}

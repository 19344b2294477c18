/* Encrypted names, symlink targets and xattrs (see names.h). */
#include "codec/names.h"

#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#define SIV_BYTES 16
#define PAD 16
#define B64 sodium_base64_VARIANT_URLSAFE_NO_PADDING
#define XATTR_PREFIX "user."
#define XATTR_NAME_MAX 255

enum { SUB_DIRS = 1, SUB_LINK = 2, SUB_XATTR_NAME = 3, SUB_XATTR_VALUE = 4 };

static const char *const kept_exts[] = {"png", "jpg", "jpeg", "jpe", "jfif"};

void pxc_names_keys_derive(pxc_names_keys *k, const uint8_t master[32])
{
    crypto_kdf_derive_from_key(k->names, sizeof k->names, 1, "pxcnames", master);
    crypto_kdf_derive_from_key(k->link, sizeof k->link, SUB_LINK, "pxcname2", k->names);
    crypto_kdf_derive_from_key(k->xattr_value, sizeof k->xattr_value, SUB_XATTR_VALUE, "pxcname2",
                               k->names);
}

/* A directory key: BLAKE2b-512(key = subkey `sub` of the names key; iv), halved. */
static void dirkey_from(pxc_dirkey *dk, const pxc_names_keys *k, uint64_t sub,
                        const uint8_t iv[PXC_DIRIV_BYTES])
{
    uint8_t base[32], both[64];
    crypto_kdf_derive_from_key(base, sizeof base, sub, "pxcname2", k->names);
    crypto_generichash(both, sizeof both, iv, PXC_DIRIV_BYTES, base, sizeof base);
    memcpy(dk->enc, both, 32);
    memcpy(dk->mac, both + 32, 32);
    sodium_memzero(base, sizeof base);
    sodium_memzero(both, sizeof both);
}

void pxc_dirkey_derive(pxc_dirkey *dk, const pxc_names_keys *k, const uint8_t iv[PXC_DIRIV_BYTES])
{
    dirkey_from(dk, k, SUB_DIRS, iv);
}

/* Xattr names: one key for the volume (an all-zero IV). */
static void xattr_dirkey(pxc_dirkey *dk, const pxc_names_keys *k)
{
    static const uint8_t zero[PXC_DIRIV_BYTES];
    dirkey_from(dk, k, SUB_XATTR_NAME, zero);
}

/* Length of the kept extension of name (with its dot), 0 if none. */
static size_t kept_ext_len(const char *name, size_t len)
{
    const char *dot = memchr(name, '.', len) ? strrchr(name, '.') : NULL;
    if (!dot || dot == name)
        return 0;
    for (size_t i = 0; i < sizeof kept_exts / sizeof *kept_exts; i++)
        if (strcasecmp(dot + 1, kept_exts[i]) == 0)
            return len - (size_t)(dot - name);
    return 0;
}

static void siv_of(uint8_t siv[SIV_BYTES], const pxc_dirkey *dk, const uint8_t *padded, size_t plen,
                   const char *ext, size_t elen)
{
    crypto_generichash_state st;
    uint8_t l = (uint8_t)elen;
    crypto_generichash_init(&st, dk->mac, sizeof dk->mac, SIV_BYTES);
    crypto_generichash_update(&st, &l, 1);
    crypto_generichash_update(&st, (const uint8_t *)ext, elen);
    crypto_generichash_update(&st, padded, plen);
    crypto_generichash_final(&st, siv, SIV_BYTES);
}

static void stream_xor(uint8_t *out, const uint8_t *in, size_t len, const uint8_t siv[SIV_BYTES],
                       const pxc_dirkey *dk)
{
    uint8_t nonce[crypto_stream_xchacha20_NONCEBYTES] = {0};
    memcpy(nonce, siv, SIV_BYTES);
    crypto_stream_xchacha20_xor(out, in, len, nonce, dk->enc);
}

static int valid_plain(const char *plain, size_t len)
{
    return len > 0 && !memchr(plain, '/', len) && strcmp(plain, ".") != 0 &&
           strcmp(plain, "..") != 0;
}

static int encrypt_name(const pxc_dirkey *dk, const char *plain, int keep_ext, char *out,
                        size_t outsize)
{
    size_t len = strlen(plain);
    if (!valid_plain(plain, len))
        return -EINVAL;
    if (len > PXC_NAME_MAX)
        return -ENAMETOOLONG;
    size_t elen = keep_ext ? kept_ext_len(plain, len) : 0, slen = len - elen;
    size_t plen = (slen + PAD - 1) / PAD * PAD;
    uint8_t buf[SIV_BYTES + PXC_NAME_MAX + PAD];
    uint8_t padded[PXC_NAME_MAX + PAD] = {0};
    memcpy(padded, plain, slen);
    siv_of(buf, dk, padded, plen, plain + slen, elen);
    stream_xor(buf + SIV_BYTES, padded, plen, buf, dk);
    size_t b64len = sodium_base64_ENCODED_LEN(SIV_BYTES + plen, B64) - 1;
    if (b64len + elen + 1 > outsize)
        return -ENAMETOOLONG;
    sodium_bin2base64(out, outsize, buf, SIV_BYTES + plen, B64);
    memcpy(out + b64len, plain + slen, elen + 1);
    sodium_memzero(padded, sizeof padded);
    return (int)(b64len + elen);
}

static int decrypt_name(const pxc_dirkey *dk, const char *stored, int keep_ext, char *out,
                        size_t outsize)
{
    size_t len = strlen(stored);
    size_t elen = keep_ext ? kept_ext_len(stored, len) : 0, blen = len - elen;
    uint8_t buf[SIV_BYTES + PXC_NAME_MAX + PAD], padded[PXC_NAME_MAX + PAD], siv[SIV_BYTES];
    size_t got = 0;
    const char *end = NULL;
    if (blen == 0 || blen > sodium_base64_ENCODED_LEN(sizeof buf, B64) ||
        sodium_base642bin(buf, sizeof buf, stored, blen, NULL, &got, &end, B64) != 0 ||
        end != stored + blen || got < SIV_BYTES + PAD || (got - SIV_BYTES) % PAD != 0)
        return -EBADMSG;
    size_t plen = got - SIV_BYTES;
    stream_xor(padded, buf + SIV_BYTES, plen, buf, dk);
    siv_of(siv, dk, padded, plen, stored + blen, elen);
    if (sodium_memcmp(siv, buf, SIV_BYTES) != 0)
        return -EBADMSG;
    size_t slen = strnlen((const char *)padded, plen);
    for (size_t i = slen; i < plen; i++)
        if (padded[i] != 0)
            return -EBADMSG;
    if (slen + elen > PXC_NAME_MAX || slen + elen + 1 > outsize)
        return -EBADMSG;
    memcpy(out, padded, slen);
    memcpy(out + slen, stored + blen, elen + 1);
    sodium_memzero(padded, sizeof padded);
    /* Only the encryption of exactly this name may decrypt to it. */
    if (!valid_plain(out, slen + elen) || (keep_ext && kept_ext_len(out, slen + elen) != elen))
        return -EBADMSG;
    return (int)(slen + elen);
}

int pxc_name_encrypt(const pxc_dirkey *dk, const char *plain, char *out, size_t outsize)
{
    return encrypt_name(dk, plain, 1, out, outsize);
}

int pxc_name_decrypt(const pxc_dirkey *dk, const char *stored, char *out, size_t outsize)
{
    return decrypt_name(dk, stored, 1, out, outsize);
}

/* ---- long names ------------------------------------------------------------------------ */

int pxc_name_needs_long(const char *full)
{
    return strlen(full) > PXC_NAME_MAX;
}

void pxc_name_long(const char *full, char *out, size_t outsize)
{
    size_t len = strlen(full), elen = kept_ext_len(full, len);
    uint8_t h[32];
    char b64[sodium_base64_ENCODED_LEN(sizeof h, B64)];
    crypto_generichash(h, sizeof h, (const uint8_t *)full, len, NULL, 0);
    sodium_bin2base64(b64, sizeof b64, h, sizeof h, B64);
    snprintf(out, outsize, "%c%s%s", PXC_LONG_NAME_PREFIX, b64, full + len - elen);
}

int pxc_name_long_kind(const char *name)
{
    if (name[0] != PXC_LONG_NAME_PREFIX)
        return 0;
    size_t len = strlen(name), sl = strlen(PXC_LONG_NAME_SUFFIX);
    return len > sl && strcmp(name + len - sl, PXC_LONG_NAME_SUFFIX) == 0 ? 2 : 1;
}

int pxc_name_long_matches(const char *lname, const char *full)
{
    char want[64];
    if (!pxc_name_needs_long(full))
        return 0;
    pxc_name_long(full, want, sizeof want);
    return strcmp(want, lname) == 0;
}

/* ---- symlink targets ------------------------------------------------------------------- */

#define AEAD_NONCE crypto_aead_xchacha20poly1305_ietf_NPUBBYTES
#define AEAD_TAG crypto_aead_xchacha20poly1305_ietf_ABYTES

int pxc_link_encrypt(const pxc_names_keys *k, const char *target, char *out, size_t outsize)
{
    size_t len = strlen(target);
    if (len > PXC_LINK_PLAIN_MAX)
        return -ENAMETOOLONG;
    uint8_t buf[AEAD_NONCE + PXC_LINK_PLAIN_MAX + AEAD_TAG];
    randombytes_buf(buf, AEAD_NONCE);
    crypto_aead_xchacha20poly1305_ietf_encrypt(buf + AEAD_NONCE, NULL, (const uint8_t *)target, len,
                                               NULL, 0, NULL, buf, k->link);
    size_t blen = AEAD_NONCE + len + AEAD_TAG;
    if (sodium_base64_ENCODED_LEN(blen, B64) > outsize)
        return -ENAMETOOLONG;
    sodium_bin2base64(out, outsize, buf, blen, B64);
    return (int)strlen(out);
}

int pxc_link_decrypt(const pxc_names_keys *k, const char *stored, char *out, size_t outsize)
{
    uint8_t buf[AEAD_NONCE + PXC_LINK_PLAIN_MAX + AEAD_TAG];
    size_t len = strlen(stored), got = 0;
    unsigned long long plen = 0;
    const char *end = NULL;
    if (len > sodium_base64_ENCODED_LEN(sizeof buf, B64) ||
        sodium_base642bin(buf, sizeof buf, stored, len, NULL, &got, &end, B64) != 0 ||
        end != stored + len || got < AEAD_NONCE + AEAD_TAG ||
        got - AEAD_NONCE - AEAD_TAG >= outsize)
        return -EBADMSG;
    if (crypto_aead_xchacha20poly1305_ietf_decrypt((uint8_t *)out, &plen, NULL, buf + AEAD_NONCE,
                                                   got - AEAD_NONCE, NULL, 0, buf, k->link) != 0)
        return -EBADMSG;
    out[plen] = '\0';
    if (strlen(out) != plen)
        return -EBADMSG;
    return (int)plen;
}

/* ---- extended attributes --------------------------------------------------------------- */

int pxc_xattr_name_encrypt(const pxc_names_keys *k, const char *plain, char *out, size_t outsize)
{
    const size_t pl = strlen(XATTR_PREFIX);
    char enc[PXC_NAME_ENC_MAX];
    pxc_dirkey dk;
    if (strncmp(plain, XATTR_PREFIX, pl) != 0)
        return -EOPNOTSUPP;
    xattr_dirkey(&dk, k);
    int n = encrypt_name(&dk, plain + pl, 0, enc, sizeof enc);
    sodium_memzero(&dk, sizeof dk);
    if (n == -EINVAL)
        return -EINVAL;
    if (n < 0 || pl + (size_t)n > XATTR_NAME_MAX || pl + (size_t)n + 1 > outsize)
        return -ERANGE;
    memcpy(out, XATTR_PREFIX, pl);
    memcpy(out + pl, enc, (size_t)n + 1);
    return (int)pl + n;
}

int pxc_xattr_name_decrypt(const pxc_names_keys *k, const char *stored, char *out, size_t outsize)
{
    const size_t pl = strlen(XATTR_PREFIX);
    pxc_dirkey dk;
    if (strncmp(stored, XATTR_PREFIX, pl) != 0 || outsize <= pl)
        return -EBADMSG;
    xattr_dirkey(&dk, k);
    int n = decrypt_name(&dk, stored + pl, 0, out + pl, outsize - pl);
    sodium_memzero(&dk, sizeof dk);
    if (n < 0)
        return n;
    memcpy(out, XATTR_PREFIX, pl);
    return (int)pl + n;
}

void pxc_xattr_value_encrypt(const pxc_names_keys *k, const char *plain_name, const uint8_t *v,
                             size_t len, uint8_t *out)
{
    randombytes_buf(out, AEAD_NONCE);
    crypto_aead_xchacha20poly1305_ietf_encrypt(out + AEAD_NONCE, NULL, v, len,
                                               (const uint8_t *)plain_name, strlen(plain_name),
                                               NULL, out, k->xattr_value);
}

int pxc_xattr_value_decrypt(const pxc_names_keys *k, const char *plain_name, const uint8_t *in,
                            size_t len, uint8_t *out)
{
    unsigned long long plen = 0;
    if (len < PXC_XATTR_OVERHEAD ||
        crypto_aead_xchacha20poly1305_ietf_decrypt(out, &plen, NULL, in + AEAD_NONCE,
                                                   len - AEAD_NONCE, (const uint8_t *)plain_name,
                                                   strlen(plain_name), in, k->xattr_value) != 0)
        return -EBADMSG;
    return (int)plen;
}

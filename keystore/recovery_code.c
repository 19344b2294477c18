/* Recovery code text <-> master key (format in recovery_code.h). */
#include "keystore/recovery_code.h"

#include <ctype.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#define DATA_PER_GROUP (RC_GROUP_CHARS - 1)
#define DATA_CHARS (RC_GROUPS * DATA_PER_GROUP) /* 56 */
#define SUM_BYTES 3
#define PAYLOAD_BYTES (KS_MASTER_KEY_BYTES + SUM_BYTES) /* 35 = 280 bits = 56 x 5 */
#define GF_POLY 0x25                                    /* x^5 + x^2 + 1, primitive */

_Static_assert(PAYLOAD_BYTES * 8 == DATA_CHARS * 5, "payload fills the data characters");

static const char alphabet[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/* Symbol value of a character, -1 outside the alphabet (aliases as Crockford reads them). */
static int symbol_value(char ch)
{
    int c = toupper((unsigned char)ch);
    if (c == 'O')
        c = '0';
    else if (c == 'I' || c == 'L')
        c = '1';
    const char *p = c ? strchr(alphabet, c) : NULL;
    return p ? (int)(p - alphabet) : -1;
}

static unsigned gf_mul(unsigned a, unsigned b)
{
    unsigned r = 0;
    while (b) {
        if (b & 1)
            r ^= a;
        b >>= 1;
        a <<= 1;
        if (a & 0x20)
            a ^= GF_POLY;
    }
    return r;
}

/* Sum of a^(i+1) * d[i] over a group's data symbols. */
static unsigned group_check(const unsigned d[DATA_PER_GROUP])
{
    unsigned sum = 0, weight = 2; /* a = x */
    for (int i = 0; i < DATA_PER_GROUP; i++) {
        sum ^= gf_mul(weight, d[i]);
        weight = gf_mul(weight, 2);
    }
    return sum;
}

static void checksum(uint8_t out[SUM_BYTES], const uint8_t key[KS_MASTER_KEY_BYTES])
{
    uint8_t h[crypto_generichash_BYTES_MIN];
    crypto_generichash(h, sizeof h, key, KS_MASTER_KEY_BYTES, NULL, 0);
    memcpy(out, h, SUM_BYTES);
}

void recovery_code_format(char out[RC_TEXT_BYTES], const uint8_t key[KS_MASTER_KEY_BYTES])
{
    uint8_t payload[PAYLOAD_BYTES];
    unsigned d[DATA_PER_GROUP];
    size_t k = (size_t)snprintf(out, RC_TEXT_BYTES, RC_PREFIX "%d", RC_VERSION);

    memcpy(payload, key, KS_MASTER_KEY_BYTES);
    checksum(payload + KS_MASTER_KEY_BYTES, key);
    for (int g = 0; g < RC_GROUPS; g++) {
        out[k++] = '-';
        for (int i = 0; i < DATA_PER_GROUP; i++) {
            unsigned v = 0, bit0 = (unsigned)(g * DATA_PER_GROUP + i) * 5;
            for (unsigned b = 0; b < 5; b++) {
                unsigned bit = bit0 + b;
                v = v << 1 | ((payload[bit / 8] >> (7 - bit % 8)) & 1);
            }
            d[i] = v;
            out[k++] = alphabet[v];
        }
        out[k++] = alphabet[group_check(d)];
    }
    out[k] = '\0';
    sodium_memzero(payload, sizeof payload);
}

static int is_separator(char c)
{
    return c == '-' || isspace((unsigned char)c);
}

/* Splits text into its tokens (runs of non-separators), at most max; returns the count. */
static int tokenize(const char *text, const char *tok[], size_t len[], int max)
{
    int n = 0;
    for (const char *p = text; *p;) {
        if (is_separator(*p)) {
            p++;
            continue;
        }
        const char *start = p;
        while (*p && !is_separator(*p))
            p++;
        if (n < max) {
            tok[n] = start;
            len[n] = (size_t)(p - start);
        }
        n++;
    }
    return n;
}

static void set_group(rc_error *err, int group, const char *s, size_t n)
{
    err->group = group;
    if (n >= sizeof err->text)
        n = sizeof err->text - 1;
    memcpy(err->text, s, n);
    err->text[n] = '\0';
}

/* The prefix: "PXC" and a version digit, alone or glued to the first group. */
static int parse_prefix(const char **p)
{
    if (strncasecmp(*p, RC_PREFIX, 3) != 0)
        return RC_ERR_PREFIX;
    if (!isdigit((unsigned char)(*p)[3]))
        return RC_ERR_PREFIX;
    if ((*p)[3] - '0' != RC_VERSION) /* one digit: the first group may begin with one */
        return RC_ERR_VERSION;
    *p += 4;
    return RC_OK;
}

int recovery_code_parse(const char *text, uint8_t key[KS_MASTER_KEY_BYTES], rc_error *err)
{
    enum { MAX_TOKENS = 64 };
    const char *tok[MAX_TOKENS];
    size_t len[MAX_TOKENS];
    char chars[RC_GROUPS * RC_GROUP_CHARS];
    uint8_t payload[PAYLOAD_BYTES] = {0}, sum[SUM_BYTES];
    int n = 0, st;

    memset(err, 0, sizeof *err);
    while (*text && is_separator(*text))
        text++;
    if ((st = parse_prefix(&text)) != RC_OK)
        return st;
    int ntok = tokenize(text, tok, len, MAX_TOKENS);
    /* Grouped as printed: a group of the wrong length can be named. */
    if (ntok == RC_GROUPS) {
        for (int g = 0; g < RC_GROUPS; g++)
            if (len[g] != RC_GROUP_CHARS) {
                set_group(err, g + 1, tok[g], len[g]);
                return RC_ERR_LENGTH;
            }
    }
    for (int t = 0; t < ntok && t < MAX_TOKENS; t++)
        for (size_t i = 0; i < len[t]; i++) {
            if (n == (int)sizeof chars)
                return RC_ERR_LENGTH;
            chars[n++] = tok[t][i];
        }
    if (ntok > MAX_TOKENS || n != (int)sizeof chars)
        return RC_ERR_LENGTH;

    for (int g = 0; g < RC_GROUPS; g++) {
        const char *gc = chars + g * RC_GROUP_CHARS;
        unsigned d[RC_GROUP_CHARS];
        for (int i = 0; i < RC_GROUP_CHARS; i++) {
            int v = symbol_value(gc[i]);
            if (v < 0) {
                set_group(err, g + 1, gc, RC_GROUP_CHARS);
                err->bad_char = gc[i];
                return RC_ERR_CHAR;
            }
            d[i] = (unsigned)v;
        }
        if (group_check(d) != d[DATA_PER_GROUP]) {
            set_group(err, g + 1, gc, RC_GROUP_CHARS);
            return RC_ERR_GROUP;
        }
        for (int i = 0; i < DATA_PER_GROUP; i++) {
            unsigned bit0 = (unsigned)(g * DATA_PER_GROUP + i) * 5;
            for (unsigned b = 0; b < 5; b++) {
                unsigned bit = bit0 + b;
                if ((d[i] >> (4 - b)) & 1)
                    payload[bit / 8] |= (uint8_t)(0x80 >> (bit % 8));
            }
        }
    }
    checksum(sum, payload);
    st =
        sodium_memcmp(sum, payload + KS_MASTER_KEY_BYTES, SUM_BYTES) == 0 ? RC_OK : RC_ERR_CHECKSUM;
    if (st == RC_OK)
        memcpy(key, payload, KS_MASTER_KEY_BYTES);
    sodium_memzero(payload, sizeof payload);
    return st;
}

void recovery_code_explain(int status, const rc_error *err, char *out, size_t cap)
{
    switch (status) {
    case RC_OK:
        snprintf(out, cap, "the recovery code is well formed");
        break;
    case RC_ERR_PREFIX:
        snprintf(out, cap, "not a pixcrypt recovery code (it begins with %s%d-)", RC_PREFIX,
                 RC_VERSION);
        break;
    case RC_ERR_VERSION:
        snprintf(out, cap, "recovery code of an unknown version (this pixcrypt reads %s%d)",
                 RC_PREFIX, RC_VERSION);
        break;
    case RC_ERR_LENGTH:
        if (err->group)
            snprintf(out, cap, "group %d (%s) has %zu characters, %d expected", err->group,
                     err->text, strlen(err->text), RC_GROUP_CHARS);
        else
            snprintf(out, cap, "the code has the wrong length: %d groups of %d characters expected",
                     RC_GROUPS, RC_GROUP_CHARS);
        break;
    case RC_ERR_CHAR:
        snprintf(out, cap, "group %d (%s): '%c' is not a recovery code character", err->group,
                 err->text, err->bad_char);
        break;
    case RC_ERR_GROUP:
        snprintf(out, cap, "group %d (%s) is mistyped: its check character does not match",
                 err->group, err->text);
        break;
    case RC_ERR_CHECKSUM:
        snprintf(out, cap,
                 "every group checks but the whole code does not: characters swapped "
                 "between groups, or groups in the wrong order");
        break;
    default:
        snprintf(out, cap, "invalid recovery code");
    }
}

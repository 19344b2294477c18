/* Deflate recipes (see deflate_recipe.h): a symbol-level inflate that records the
 * encoder's choices, and a bit writer that replays them over the data.
 *
 * Validation follows zlib's inflate (RFC 1951 plus zlib's own rules on which
 * incomplete codes it takes), so every stream accepted here inflates with zlib to
 * the same data, and every stream zlib refuses is refused here. */
#include "codec/deflate_recipe.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

enum {
    MAX_CODE_BITS = 15,
    LITLEN_SYMBOLS = 288, /* fixed code size; dynamic blocks use at most 286 */
    DIST_SYMBOLS = 32,    /* fixed code size; dynamic blocks use at most 30 */
    CODELEN_SYMBOLS = 19,
    END_OF_BLOCK = 256,
    FIRST_LENGTH_SYMBOL = 257,
    LENGTH_CODES = 29,
    DIST_CODES = 30,
    FAST_BITS = 10, /* decode table width; longer codes take the slow path */
    MAX_MATCH = 258,
    MAX_DISTANCE = 32768,
};

enum block_type { BLOCK_STORED = 0, BLOCK_FIXED = 1, BLOCK_DYNAMIC = 2 };

/* What follows a literal run in the runs section. */
enum run_end { RUN_THEN_MATCH = 0, RUN_THEN_END = 1, RUN_THEN_MATCH_258_AS_284 = 2 };

/* The length-258 spelling that zlib decodes although RFC 1951 does not intend it. */
#define SYMBOL_284_INDEX 27
#define SYMBOL_284_EXTRA_258 31

static const uint16_t length_base[LENGTH_CODES] = {3,  4,  5,  6,   7,   8,   9,   10,  11, 13,
                                                   15, 17, 19, 23,  27,  31,  35,  43,  51, 59,
                                                   67, 83, 99, 115, 131, 163, 195, 227, 258};
static const uint8_t length_extra[LENGTH_CODES] = {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2,
                                                   2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0};
static const uint16_t dist_base[DIST_CODES] = {
    1,   2,   3,   4,   5,   7,    9,    13,   17,   25,   33,   49,   65,    97,    129,
    193, 257, 385, 513, 769, 1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577};
static const uint8_t dist_extra[DIST_CODES] = {0, 0, 0, 0, 1, 1, 2, 2,  3,  3,  4,  4,  5,  5,  6,
                                               6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13};
/* Order in which code-length-code lengths are sent. */
static const uint8_t codelen_order[CODELEN_SYMBOLS] = {16, 17, 18, 0, 8,  7, 9,  6, 10, 5,
                                                       11, 4,  12, 3, 13, 2, 14, 1, 15};

/* ---------------------------------------------------------------- byte buffers */

typedef struct {
    uint8_t *bytes;
    size_t len, cap;
    int failed; /* an allocation failed; later writes are dropped */
} bytebuf;

static int buf_reserve(bytebuf *b, size_t extra)
{
    if (b->failed)
        return -1;
    if (extra <= b->cap - b->len)
        return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap - b->len < extra) {
        if (cap > SIZE_MAX / 2) {
            b->failed = 1;
            return -1;
        }
        cap *= 2;
    }
    uint8_t *grown = realloc(b->bytes, cap);
    if (!grown) {
        b->failed = 1;
        return -1;
    }
    b->bytes = grown;
    b->cap = cap;
    return 0;
}

static void buf_put_bytes(bytebuf *b, const void *src, size_t n)
{
    if (n == 0 || buf_reserve(b, n) != 0)
        return;
    memcpy(b->bytes + b->len, src, n);
    b->len += n;
}

static inline void buf_put_byte(bytebuf *b, unsigned v)
{
    if (b->len < b->cap) {
        b->bytes[b->len++] = (uint8_t)v;
        return;
    }
    uint8_t byte = (uint8_t)v;
    buf_put_bytes(b, &byte, 1);
}

static void buf_put_u16(bytebuf *b, unsigned v)
{
    uint8_t le[2] = {(uint8_t)v, (uint8_t)(v >> 8)};
    buf_put_bytes(b, le, 2);
}

static void buf_put_u32be(bytebuf *b, uint32_t v)
{
    uint8_t be[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
    buf_put_bytes(b, be, 4);
}

static void buf_put_varint(bytebuf *b, uint64_t v)
{
    if (v < 0x80) {
        buf_put_byte(b, (unsigned)v);
        return;
    }
    uint8_t enc[10];
    size_t n = 0;
    while (v >= 0x80) {
        enc[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    enc[n++] = (uint8_t)v;
    buf_put_bytes(b, enc, n);
}

/* Reads recipe bytes; running past the end sets bad and yields zeros. */
typedef struct {
    const uint8_t *bytes;
    size_t len, pos;
    int bad;
} bytereader;

static unsigned rd_byte(bytereader *r)
{
    if (r->pos >= r->len) {
        r->bad = 1;
        return 0;
    }
    return r->bytes[r->pos++];
}

static unsigned rd_u16(bytereader *r)
{
    unsigned lo = rd_byte(r);
    return lo | rd_byte(r) << 8;
}

static uint64_t rd_varint(bytereader *r)
{
    uint64_t v = 0;
    for (unsigned shift = 0; shift < 64; shift += 7) {
        unsigned byte = rd_byte(r);
        v |= (uint64_t)(byte & 0x7f) << shift;
        if (!(byte & 0x80))
            return v;
    }
    r->bad = 1;
    return 0;
}

static const uint8_t *rd_bytes(bytereader *r, uint64_t n)
{
    if (n > r->len - r->pos) {
        r->bad = 1;
        return NULL;
    }
    const uint8_t *p = r->bytes + r->pos;
    r->pos += n;
    return p;
}

/* ---------------------------------------------------------------- bit reader */

typedef struct {
    const uint8_t *in;
    size_t len, pos; /* next byte to load */
    uint64_t hold;   /* loaded bits, least significant first */
    unsigned count;  /* how many bits of hold are loaded and unread */
} bitreader;

static void br_refill(bitreader *br)
{
    if (br->len - br->pos >= 8) {
        /* Whole-word load: the bits above count repeat bytes loaded again later. */
        uint64_t word = 0;
        for (unsigned i = 0; i < 8; i++)
            word |= (uint64_t)br->in[br->pos + i] << (8 * i);
        br->hold |= word << br->count;
        br->pos += (63 - br->count) >> 3;
        br->count |= 56;
        return;
    }
    while (br->count <= 56 && br->pos < br->len) {
        br->hold |= (uint64_t)br->in[br->pos++] << br->count;
        br->count += 8;
    }
}

/* Reads n <= 32 bits; -1 if the input ends first. */
static int br_take(bitreader *br, unsigned n, uint32_t *v)
{
    if (br->count < n) {
        br_refill(br);
        if (br->count < n)
            return -1;
    }
    *v = (uint32_t)(br->hold & ((1ull << n) - 1));
    br->hold >>= n;
    br->count -= n;
    return 0;
}

/* Offset of the next unread byte; only meaningful on a byte boundary. */
static size_t br_byte_offset(const bitreader *br)
{
    return br->pos - br->count / 8;
}

static void br_seek_byte(bitreader *br, size_t offset)
{
    br->pos = offset;
    br->hold = 0;
    br->count = 0;
}

/* ---------------------------------------------------------------- Huffman codes */

enum code_kind { CODE_CODELENS, CODE_LITLEN, CODE_DIST };

/* Counts codes per length and applies zlib's acceptance rules: never over-subscribed;
 * incomplete only for a literal/length or distance code whose single code has length
 * 1; no codes at all is accepted except for the code-length code (zlib would go on to
 * fail on a missing end-of-block code). */
static int code_lengths_valid(const uint8_t *lens, unsigned n, enum code_kind kind,
                              uint16_t count[MAX_CODE_BITS + 1])
{
    memset(count, 0, sizeof(uint16_t) * (MAX_CODE_BITS + 1));
    for (unsigned s = 0; s < n; s++)
        count[lens[s]]++;
    unsigned longest = 0;
    for (unsigned len = 1; len <= MAX_CODE_BITS; len++)
        if (count[len])
            longest = len;
    if (longest == 0)
        return kind != CODE_CODELENS;
    int left = 1;
    for (unsigned len = 1; len <= MAX_CODE_BITS; len++) {
        left = 2 * left - count[len];
        if (left < 0)
            return 0;
    }
    if (left > 0 && (kind == CODE_CODELENS || longest != 1))
        return 0;
    return 1;
}

static unsigned reverse_bits(unsigned code, unsigned len)
{
    unsigned r = 0;
    for (unsigned i = 0; i < len; i++, code >>= 1)
        r = (r << 1) | (code & 1);
    return r;
}

/* First canonical code of each length (RFC 1951 3.2.2); count[0] counts unused symbols. */
static void first_codes(const uint16_t count[MAX_CODE_BITS + 1], unsigned next[MAX_CODE_BITS + 1])
{
    unsigned code = 0;
    next[0] = next[1] = 0;
    for (unsigned len = 2; len <= MAX_CODE_BITS; len++) {
        code = (code + count[len - 1]) << 1;
        next[len] = code;
    }
}

typedef struct {
    uint16_t count[MAX_CODE_BITS + 1];
    uint16_t symbol[LITLEN_SYMBOLS]; /* symbols in canonical code order */
    uint16_t fast[1 << FAST_BITS];   /* symbol << 4 | length; 0: take the slow path */
} huff_decoder;

static int decoder_build(huff_decoder *h, const uint8_t *lens, unsigned n, enum code_kind kind)
{
    if (!code_lengths_valid(lens, n, kind, h->count))
        return -1;
    uint16_t offset[MAX_CODE_BITS + 1] = {0};
    for (unsigned len = 1; len < MAX_CODE_BITS; len++)
        offset[len + 1] = (uint16_t)(offset[len] + h->count[len]);
    unsigned next[MAX_CODE_BITS + 1];
    first_codes(h->count, next);
    memset(h->fast, 0, sizeof h->fast);
    for (unsigned s = 0; s < n; s++) {
        unsigned len = lens[s];
        if (!len)
            continue;
        h->symbol[offset[len]++] = (uint16_t)s;
        unsigned code = next[len]++;
        if (len > FAST_BITS)
            continue;
        for (unsigned r = reverse_bits(code, len); r < (1u << FAST_BITS); r += 1u << len)
            h->fast[r] = (uint16_t)(s << 4 | len);
    }
    return 0;
}

enum { DECODE_INVALID = -1, DECODE_TRUNCATED = -2 };

/* Canonical decoding one bit at a time, for codes longer than FAST_BITS and for bit
 * patterns that an incomplete code leaves unused. */
static int decode_slow(const huff_decoder *h, uint64_t bits, unsigned avail, unsigned *sym,
                       unsigned *len_out)
{
    int code = 0, first = 0, index = 0;
    for (unsigned len = 1; len <= MAX_CODE_BITS; len++) {
        if (len > avail)
            return DECODE_TRUNCATED;
        code |= (int)(bits & 1);
        bits >>= 1;
        int count = h->count[len];
        if (code - first < count) {
            *sym = h->symbol[index + code - first];
            *len_out = len;
            return 0;
        }
        index += count;
        first = (first + count) << 1;
        code <<= 1;
    }
    return DECODE_INVALID;
}

static int huff_decode(bitreader *br, const huff_decoder *h, unsigned *sym)
{
    if (br->count < MAX_CODE_BITS)
        br_refill(br);
    unsigned entry = h->fast[br->hold & ((1u << FAST_BITS) - 1)];
    unsigned len;
    if (entry) {
        len = entry & 15;
        *sym = entry >> 4;
        if (len > br->count)
            return DECODE_TRUNCATED;
    } else {
        int err = decode_slow(h, br->hold, br->count, sym, &len);
        if (err)
            return err;
    }
    br->hold >>= len;
    br->count -= len;
    return 0;
}

static void fixed_code_lengths(uint8_t litlen[LITLEN_SYMBOLS], uint8_t dist[DIST_SYMBOLS])
{
    memset(litlen, 8, 144);
    memset(litlen + 144, 9, 256 - 144);
    memset(litlen + 256, 7, 280 - 256);
    memset(litlen + 280, 8, LITLEN_SYMBOLS - 280);
    memset(dist, 5, DIST_SYMBOLS);
}

#define TRY(expr)                                                                                  \
    do {                                                                                           \
        int try_err_ = (expr);                                                                     \
        if (try_err_)                                                                              \
            return try_err_;                                                                       \
    } while (0)

/* ---------------------------------------------------------------- parsing */

typedef struct {
    bitreader in;
    uint8_t *out;
    size_t out_len, out_cap, max_out;
    bytebuf blocks, trees, runs, lengths, dist_high, dist_low; /* recipe sections */
    huff_decoder litlen, dist;                                 /* current dynamic block's codes */
    huff_decoder fixed_litlen, fixed_dist;
    int fixed_ready;
    uint8_t cmf, flg, final_padding;
    uint32_t adler_found;
    size_t trailing_at; /* offset of the bytes after the Adler-32 */
    const char *why;
} parser;

static int parse_fail(parser *p, int err, const char *why)
{
    if (!p->why)
        p->why = why;
    return err;
}

static int take_bits(parser *p, unsigned n, uint32_t *v)
{
    if (br_take(&p->in, n, v))
        return parse_fail(p, -EINVAL, "truncated stream");
    return 0;
}

static int decode_symbol(parser *p, const huff_decoder *h, unsigned *sym, const char *invalid)
{
    int err = huff_decode(&p->in, h, sym);
    if (err == DECODE_TRUNCATED)
        return parse_fail(p, -EINVAL, "truncated stream");
    if (err)
        return parse_fail(p, -EINVAL, invalid);
    return 0;
}

/* Makes room for n more output bytes without ever exceeding max_out. */
static int out_reserve(parser *p, size_t n)
{
    if (n <= p->out_cap - p->out_len)
        return 0;
    if (n > p->max_out - p->out_len)
        return parse_fail(p, -EFBIG, "decompressed data exceeds the size limit");
    size_t need = p->out_len + n;
    size_t cap = p->out_cap ? p->out_cap : 4096;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    if (cap > p->max_out)
        cap = p->max_out;
    uint8_t *grown = realloc(p->out, cap);
    if (!grown)
        return parse_fail(p, -ENOMEM, "out of memory");
    p->out = grown;
    p->out_cap = cap;
    return 0;
}

static int parse_zlib_header(parser *p)
{
    if (p->in.len < 2)
        return parse_fail(p, -EINVAL, "truncated stream");
    p->cmf = p->in.in[0];
    p->flg = p->in.in[1];
    if ((p->cmf * 256u + p->flg) % 31)
        return parse_fail(p, -EINVAL, "incorrect header check");
    if ((p->cmf & 15) != 8)
        return parse_fail(p, -EINVAL, "unknown compression method");
    if ((p->cmf >> 4) > 7)
        return parse_fail(p, -EINVAL, "invalid window size");
    if (p->flg & 0x20)
        return parse_fail(p, -ENOTSUP, "preset dictionary");
    br_seek_byte(&p->in, 2);
    return 0;
}

static int parse_stored(parser *p)
{
    uint32_t padding, len, nlen;
    TRY(take_bits(p, p->in.count % 8, &padding));
    TRY(take_bits(p, 16, &len));
    TRY(take_bits(p, 16, &nlen));
    if (nlen != (~len & 0xffff))
        return parse_fail(p, -EINVAL, "invalid stored block lengths");
    buf_put_byte(&p->blocks, padding);
    buf_put_u16(&p->blocks, len);
    size_t at = br_byte_offset(&p->in);
    if (len > p->in.len - at)
        return parse_fail(p, -EINVAL, "truncated stream");
    TRY(out_reserve(p, len));
    if (len) /* out may still be NULL */
        memcpy(p->out + p->out_len, p->in.in + at, len);
    p->out_len += len;
    br_seek_byte(&p->in, at + len);
    return 0;
}

static void copy_match(parser *p, size_t length, size_t distance)
{
    uint8_t *to = p->out + p->out_len;
    const uint8_t *from = to - distance;
    p->out_len += length;
    if (distance >= length) {
        memcpy(to, from, length);
        return;
    }
    size_t i = 0;
    if (distance >= 8) /* eight bytes at a time never read what this copy has yet to write */
        for (; i + 8 <= length; i += 8)
            memcpy(to + i, from + i, 8);
    for (; i < length; i++)
        to[i] = from[i];
}

static int parse_match(parser *p, unsigned sym, const huff_decoder *dist, uint64_t run)
{
    unsigned li = sym - FIRST_LENGTH_SYMBOL, dsym;
    if (li >= LENGTH_CODES)
        return parse_fail(p, -EINVAL, "invalid literal/length code");
    uint32_t lx, dx;
    TRY(take_bits(p, length_extra[li], &lx));
    TRY(decode_symbol(p, dist, &dsym, "invalid distance code"));
    if (dsym >= DIST_CODES)
        return parse_fail(p, -EINVAL, "invalid distance code");
    TRY(take_bits(p, dist_extra[dsym], &dx));
    size_t length = length_base[li] + lx, distance = dist_base[dsym] + dx;
    if (distance > p->out_len)
        return parse_fail(p, -EINVAL, "invalid distance too far back");
    TRY(out_reserve(p, length));
    copy_match(p, length, distance);
    int as_284 = li == SYMBOL_284_INDEX && lx == SYMBOL_284_EXTRA_258;
    buf_put_varint(&p->runs, run << 2 | (as_284 ? RUN_THEN_MATCH_258_AS_284 : RUN_THEN_MATCH));
    if (!as_284)
        buf_put_byte(&p->lengths, (unsigned)(length - 3));
    buf_put_byte(&p->dist_high, (unsigned)(distance - 1) >> 8);
    buf_put_byte(&p->dist_low, (unsigned)(distance - 1) & 0xff);
    return 0;
}

/* Literals are decoded into the output only; the recipe counts them. */
static int parse_symbols(parser *p, const huff_decoder *lit, const huff_decoder *dist)
{
    uint64_t run = 0;
    for (;;) {
        unsigned sym;
        TRY(decode_symbol(p, lit, &sym, "invalid literal/length code"));
        if (sym < 256) {
            if (p->out_len == p->out_cap)
                TRY(out_reserve(p, 1));
            p->out[p->out_len++] = (uint8_t)sym;
            run++;
            continue;
        }
        if (sym == END_OF_BLOCK) {
            buf_put_varint(&p->runs, run << 2 | RUN_THEN_END);
            return 0;
        }
        TRY(parse_match(p, sym, dist, run));
        run = 0;
    }
}

static int parse_fixed(parser *p)
{
    if (!p->fixed_ready) {
        uint8_t litlen[LITLEN_SYMBOLS], dist[DIST_SYMBOLS];
        fixed_code_lengths(litlen, dist);
        decoder_build(&p->fixed_litlen, litlen, LITLEN_SYMBOLS, CODE_LITLEN);
        decoder_build(&p->fixed_dist, dist, DIST_SYMBOLS, CODE_DIST);
        p->fixed_ready = 1;
    }
    return parse_symbols(p, &p->fixed_litlen, &p->fixed_dist);
}

static int parse_codelen_code(parser *p, huff_decoder *codelen, unsigned hclen)
{
    uint8_t lens[CODELEN_SYMBOLS] = {0};
    for (unsigned i = 0; i < hclen + 4; i++) {
        uint32_t v;
        TRY(take_bits(p, 3, &v));
        lens[codelen_order[i]] = (uint8_t)v;
        buf_put_byte(&p->trees, v);
    }
    if (decoder_build(codelen, lens, CODELEN_SYMBOLS, CODE_CODELENS))
        return parse_fail(p, -EINVAL, "invalid code lengths set");
    return 0;
}

/* Decodes the run-length coded code lengths, recording each symbol as coded. */
static int parse_code_lengths(parser *p, const huff_decoder *codelen, uint8_t *lens, unsigned total)
{
    for (unsigned n = 0; n < total;) {
        unsigned sym;
        TRY(decode_symbol(p, codelen, &sym, "invalid code lengths set"));
        buf_put_byte(&p->trees, sym);
        if (sym < 16) {
            lens[n++] = (uint8_t)sym;
            continue;
        }
        if (sym == 16 && n == 0)
            return parse_fail(p, -EINVAL, "invalid bit length repeat");
        unsigned bits = sym == 16 ? 2 : sym == 17 ? 3 : 7, base = sym == 18 ? 11 : 3;
        uint8_t value = sym == 16 ? lens[n - 1] : 0;
        uint32_t extra;
        TRY(take_bits(p, bits, &extra));
        buf_put_byte(&p->trees, extra);
        if (base + extra > total - n)
            return parse_fail(p, -EINVAL, "invalid bit length repeat");
        memset(lens + n, value, base + extra);
        n += base + extra;
    }
    return 0;
}

static int parse_dynamic(parser *p)
{
    uint32_t hlit, hdist, hclen;
    TRY(take_bits(p, 5, &hlit));
    TRY(take_bits(p, 5, &hdist));
    TRY(take_bits(p, 4, &hclen));
    unsigned nlen = hlit + 257, ndist = hdist + 1;
    if (nlen > 286 || ndist > DIST_CODES)
        return parse_fail(p, -EINVAL, "too many length or distance symbols");
    buf_put_byte(&p->trees, hlit);
    buf_put_byte(&p->trees, hdist);
    buf_put_byte(&p->trees, hclen);
    huff_decoder codelen;
    TRY(parse_codelen_code(p, &codelen, hclen));
    uint8_t lens[LITLEN_SYMBOLS + DIST_SYMBOLS];
    TRY(parse_code_lengths(p, &codelen, lens, nlen + ndist));
    if (lens[END_OF_BLOCK] == 0)
        return parse_fail(p, -EINVAL, "invalid code -- missing end-of-block");
    if (decoder_build(&p->litlen, lens, nlen, CODE_LITLEN))
        return parse_fail(p, -EINVAL, "invalid literal/lengths set");
    if (decoder_build(&p->dist, lens + nlen, ndist, CODE_DIST))
        return parse_fail(p, -EINVAL, "invalid distances set");
    return parse_symbols(p, &p->litlen, &p->dist);
}

static int parse_blocks(parser *p)
{
    uint32_t final = 0, type;
    while (!final) {
        TRY(take_bits(p, 1, &final));
        TRY(take_bits(p, 2, &type));
        buf_put_byte(&p->blocks, type | final << 2);
        if (type == BLOCK_STORED)
            TRY(parse_stored(p));
        else if (type == BLOCK_FIXED)
            TRY(parse_fixed(p));
        else if (type == BLOCK_DYNAMIC)
            TRY(parse_dynamic(p));
        else
            return parse_fail(p, -EINVAL, "invalid block type");
    }
    return 0;
}

static int parse_trailer(parser *p)
{
    uint32_t padding;
    TRY(take_bits(p, p->in.count % 8, &padding));
    p->final_padding = (uint8_t)padding;
    size_t at = br_byte_offset(&p->in);
    if (p->in.len - at < 4)
        return parse_fail(p, -EINVAL, "truncated stream");
    const uint8_t *a = p->in.in + at;
    p->adler_found = (uint32_t)a[0] << 24 | (uint32_t)a[1] << 16 | (uint32_t)a[2] << 8 | a[3];
    p->trailing_at = at + 4;
    return 0;
}

static uint32_t adler_of(const uint8_t *data, size_t len)
{
    uLong adler = adler32(0, NULL, 0);
    while (len > 0) { /* adler32 takes a uInt length */
        uInt chunk = len > (1u << 30) ? 1u << 30 : (uInt)len;
        adler = adler32(adler, data, chunk);
        data += chunk;
        len -= chunk;
    }
    return (uint32_t)adler;
}

/* Deflates src[0..n) into dst (room for compressBound(n)); 0 or -ENOMEM. */
static int pack_with(const uint8_t *src, size_t n, int level, int strategy, uint8_t *dst,
                     size_t *dst_len)
{
    z_stream z;
    memset(&z, 0, sizeof z);
    if (deflateInit2(&z, level, Z_DEFLATED, 15, 8, strategy) != Z_OK)
        return -ENOMEM;
    z.next_in = (Bytef *)src;
    z.next_out = dst;
    size_t in_left = n, out_left = compressBound((uLong)n);
    int ret;
    do { /* avail_in and avail_out are uInt */
        z.avail_in = (uInt)(in_left < (1u << 30) ? in_left : 1u << 30);
        z.avail_out = (uInt)(out_left < (1u << 30) ? out_left : 1u << 30);
        in_left -= z.avail_in;
        out_left -= z.avail_out;
        ret = deflate(&z, in_left ? Z_NO_FLUSH : Z_FINISH);
        in_left += z.avail_in;
        out_left += z.avail_out;
    } while (ret == Z_OK);
    *dst_len = z.total_out;
    deflateEnd(&z);
    return ret == Z_STREAM_END ? 0 : -ENOMEM;
}

/* Packing tried on each section's first PACK_SAMPLE bytes; the smallest result decides
 * how the whole section is packed.  Huffman coding alone suits the short-range noise of
 * match lengths and distances in photos, run-length matching the runs of text, and
 * level 1 the repetitive sections of flat images; level 6 and above gain 1-8% on some
 * sections at several times the cost. */
enum { PACK_SAMPLE = 64 << 10 };
static const struct {
    int level, strategy;
} packings[] = {{1, Z_HUFFMAN_ONLY}, {1, Z_RLE}, {1, Z_DEFAULT_STRATEGY}};

/* Appends one section: varint size << 1 | packed, then either the bytes as they are or
 * varint packed size and the zlib stream. */
static int put_section(bytebuf *r, const bytebuf *section)
{
    size_t n = section->len, sample = n < PACK_SAMPLE ? n : PACK_SAMPLE, best = 0;
    size_t best_len = sample, got;
    uint8_t *packed = malloc(compressBound((uLong)n));
    if (!packed)
        return -ENOMEM;
    int err = 0;
    for (size_t k = 0; k < sizeof packings / sizeof *packings && sample >= 16 && !err; k++) {
        err = pack_with(section->bytes, sample, packings[k].level, packings[k].strategy, packed,
                        &got);
        if (!err && got < best_len) {
            best_len = got;
            best = k + 1;
        }
    }
    size_t tried = sizeof packings / sizeof *packings;
    if (!err && best && (sample < n || best != tried)) /* packed holds the last one tried */
        err = pack_with(section->bytes, n, packings[best - 1].level, packings[best - 1].strategy,
                        packed, &best_len);
    if (!err && best && best_len + best_len / 64 < n) {
        buf_put_varint(r, (uint64_t)n << 1 | 1);
        buf_put_varint(r, best_len);
        buf_put_bytes(r, packed, best_len);
    } else if (!err) {
        buf_put_varint(r, (uint64_t)n << 1);
        buf_put_bytes(r, section->bytes, n);
    }
    free(packed);
    return err;
}

static int write_recipe(const parser *p, bytebuf *r)
{
    buf_put_byte(r, DEFLATE_RECIPE_FORMAT);
    buf_put_byte(r, p->cmf);
    buf_put_byte(r, p->flg);
    buf_put_varint(r, p->out_len);
    int adler_differs = p->adler_found != adler_of(p->out, p->out_len);
    buf_put_byte(r, adler_differs);
    if (adler_differs)
        buf_put_u32be(r, p->adler_found);
    buf_put_byte(r, p->final_padding);
    buf_put_varint(r, p->in.len - p->trailing_at);
    buf_put_bytes(r, p->in.in + p->trailing_at, p->in.len - p->trailing_at);
    const bytebuf *sections[] = {&p->blocks,  &p->trees,     &p->runs,
                                 &p->lengths, &p->dist_high, &p->dist_low};
    for (size_t i = 0; i < sizeof sections / sizeof *sections; i++)
        TRY(put_section(r, sections[i]));
    buf_put_u32be(r, r->failed ? 0 : adler_of(r->bytes, r->len));
    return r->failed ? -ENOMEM : 0;
}

static int sections_failed(const parser *p)
{
    return p->blocks.failed || p->trees.failed || p->runs.failed || p->lengths.failed ||
           p->dist_high.failed || p->dist_low.failed;
}

static void parser_free(parser *p)
{
    free(p->out);
    free(p->blocks.bytes);
    free(p->trees.bytes);
    free(p->runs.bytes);
    free(p->lengths.bytes);
    free(p->dist_high.bytes);
    free(p->dist_low.bytes);
    free(p);
}

static int parse_stream(parser *p)
{
    TRY(parse_zlib_header(p));
    TRY(parse_blocks(p));
    TRY(parse_trailer(p));
    if (sections_failed(p))
        return parse_fail(p, -ENOMEM, "out of memory");
    return 0;
}

int deflate_recipe_build(const uint8_t *zstream, size_t zlen, size_t max_out, uint8_t **data,
                         size_t *data_len, uint8_t **recipe, size_t *recipe_len, const char **why)
{
    *data = *recipe = NULL;
    *data_len = *recipe_len = 0;
    parser *p = calloc(1, sizeof *p);
    if (!p) {
        if (why)
            *why = "out of memory";
        return -ENOMEM;
    }
    p->in.in = zstream;
    p->in.len = zstream ? zlen : 0;
    p->max_out = max_out;
    int err = parse_stream(p);
    bytebuf r = {0};
    if (!err) {
        err = write_recipe(p, &r);
        if (err)
            parse_fail(p, err, "out of memory");
    }
    if (!err && !p->out && !(p->out = malloc(1))) /* empty data is still a buffer */
        err = parse_fail(p, -ENOMEM, "out of memory");
    if (!err) {
        *data = p->out;
        *data_len = p->out_len;
        p->out = NULL;
        *recipe = r.bytes;
        *recipe_len = r.len;
        r.bytes = NULL;
    }
    if (why)
        *why = err ? p->why : NULL;
    free(r.bytes);
    parser_free(p);
    return err;
}

/* ---------------------------------------------------------------- replay */

/* Bits go out through a 64-bit accumulator that is stored whole (eight bytes,
 * unaligned) after every few codes, keeping only the bits short of a byte: between
 * flushes fewer than 8 bits are pending, so 56 more fit.  The buffer always keeps
 * BW_SLACK bytes beyond what has been written for that store. */
enum { BW_SLACK = 8 };

typedef struct {
    uint8_t *bytes;
    size_t len, cap;
    uint64_t acc;   /* pending bits, least significant first */
    unsigned count; /* pending bits in acc, below 8 between flushes */
} bitwriter;

/* Room for n more bytes plus whatever the accumulator holds and the slack. */
static int bw_reserve(bitwriter *w, size_t n)
{
    if (n > SIZE_MAX / 4)
        return -ENOMEM;
    size_t need = n + 1 + BW_SLACK;
    if (need <= w->cap - w->len)
        return 0;
    size_t cap = w->cap ? w->cap : 4096;
    while (cap - w->len < need)
        cap *= 2;
    uint8_t *grown = realloc(w->bytes, cap);
    if (!grown)
        return -ENOMEM;
    w->bytes = grown;
    w->cap = cap;
    return 0;
}

static inline void store_le64(uint8_t *to, uint64_t v)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    memcpy(to, &v, 8);
#else
    for (unsigned i = 0; i < 8; i++)
        to[i] = (uint8_t)(v >> 8 * i);
#endif
}

/* Appends the n low bits of bits (higher bits zero); at most 56 bits between flushes. */
static inline void bw_put(bitwriter *w, uint64_t bits, unsigned n)
{
    w->acc |= bits << w->count;
    w->count += n;
}

/* Writes out the whole bytes pending; on a byte boundary this empties the accumulator. */
static inline void bw_flush(bitwriter *w)
{
    store_le64(w->bytes + w->len, w->acc);
    w->len += w->count >> 3;
    w->acc >>= w->count & 56;
    w->count &= 7;
}

static void bw_bits(bitwriter *w, uint64_t bits, unsigned n)
{
    bw_put(w, bits, n);
    bw_flush(w);
}

static unsigned bw_bits_to_byte_boundary(const bitwriter *w)
{
    return (8 - w->count) % 8;
}

typedef struct {
    uint16_t code[LITLEN_SYMBOLS]; /* bit-reversed, ready for bw_put */
    uint8_t len[LITLEN_SYMBOLS];   /* 0: symbol has no code */
} huff_encoder;

static int encoder_build(huff_encoder *e, const uint8_t *lens, unsigned n, enum code_kind kind)
{
    uint16_t count[MAX_CODE_BITS + 1];
    if (!code_lengths_valid(lens, n, kind, count))
        return -1;
    unsigned next[MAX_CODE_BITS + 1];
    first_codes(count, next);
    memset(e, 0, sizeof *e);
    for (unsigned s = 0; s < n; s++) {
        e->len[s] = lens[s];
        if (lens[s])
            e->code[s] = (uint16_t)reverse_bits(next[lens[s]]++, lens[s]);
    }
    return 0;
}

/* One block's codes in the forms the writer takes them: each literal's code and
 * length in one word, each match length's symbol joined with its extra bits. */
typedef struct {
    uint32_t literal[256];     /* code << 4 | length; 0: the byte has no code */
    uint32_t length_bits[256]; /* indexed by match length - 3 */
    uint8_t length_nbits[256]; /* 0: the length symbol has no code */
    uint32_t as_284_bits;      /* length 258 as symbol 284 with extra bits 31 */
    uint8_t as_284_nbits;
    uint16_t dist_code[DIST_SYMBOLS];
    uint8_t dist_len[DIST_SYMBOLS];
    uint16_t end_code;
    uint8_t end_len;
} block_coder;

static void coder_join(block_coder *c, const huff_encoder *litlen, const huff_encoder *dist)
{
    for (unsigned b = 0; b < 256; b++)
        c->literal[b] = litlen->len[b] ? (uint32_t)litlen->code[b] << 4 | litlen->len[b] : 0;
    /* Ascending symbols, so 258 ends up as symbol 285, not as 284 + 31. */
    for (unsigned li = 0; li < LENGTH_CODES; li++) {
        unsigned sym = FIRST_LENGTH_SYMBOL + li, len = litlen->len[sym];
        for (unsigned x = 0; x < 1u << length_extra[li]; x++) {
            unsigned i = length_base[li] + x - 3;
            c->length_bits[i] = litlen->code[sym] | x << len;
            c->length_nbits[i] = len ? (uint8_t)(len + length_extra[li]) : 0;
        }
    }
    unsigned sym = FIRST_LENGTH_SYMBOL + SYMBOL_284_INDEX, len = litlen->len[sym];
    c->as_284_bits = litlen->code[sym] | (uint32_t)SYMBOL_284_EXTRA_258 << len;
    c->as_284_nbits = len ? (uint8_t)(len + length_extra[SYMBOL_284_INDEX]) : 0;
    for (unsigned d = 0; d < DIST_SYMBOLS; d++) {
        c->dist_code[d] = dist->code[d];
        c->dist_len[d] = dist->len[d];
    }
    c->end_code = litlen->code[END_OF_BLOCK];
    c->end_len = litlen->len[END_OF_BLOCK];
}

static unsigned dist_symbol(unsigned distance)
{
    unsigned x = distance - 1;
    if (x < 4)
        return x;
    unsigned top = 31 - (unsigned)__builtin_clz(x); /* x >= 4, so top >= 2 */
    return 2 * top + ((x >> (top - 1)) & 1);
}

typedef struct {
    bitwriter out;
    const uint8_t *data;
    size_t data_len, pos; /* pos: data coded so far */
    bytereader blocks, trees, runs, lengths, dist_high, dist_low;
    block_coder fixed, dynamic;
    int fixed_ready;
} replayer;

static int replay_codelen_code(replayer *r, huff_encoder *codelen, unsigned hclen)
{
    uint8_t lens[CODELEN_SYMBOLS] = {0};
    for (unsigned i = 0; i < hclen + 4; i++) {
        unsigned v = rd_byte(&r->trees);
        if (v > 7)
            return -EBADMSG;
        lens[codelen_order[i]] = (uint8_t)v;
        bw_bits(&r->out, v, 3);
    }
    return encoder_build(codelen, lens, CODELEN_SYMBOLS, CODE_CODELENS) ? -EBADMSG : 0;
}

static int replay_code_lengths(replayer *r, const huff_encoder *codelen, uint8_t *lens,
                               unsigned total)
{
    for (unsigned n = 0; n < total;) {
        unsigned sym = rd_byte(&r->trees);
        if (r->trees.bad || sym >= CODELEN_SYMBOLS || !codelen->len[sym])
            return -EBADMSG;
        bw_bits(&r->out, codelen->code[sym], codelen->len[sym]);
        if (sym < 16) {
            lens[n++] = (uint8_t)sym;
            continue;
        }
        if (sym == 16 && n == 0)
            return -EBADMSG;
        unsigned bits = sym == 16 ? 2 : sym == 17 ? 3 : 7, base = sym == 18 ? 11 : 3;
        uint8_t value = sym == 16 ? lens[n - 1] : 0;
        unsigned extra = rd_byte(&r->trees);
        if (extra >> bits || base + extra > total - n)
            return -EBADMSG;
        bw_bits(&r->out, extra, bits);
        memset(lens + n, value, base + extra);
        n += base + extra;
    }
    return 0;
}

static int replay_dynamic_header(replayer *r)
{
    unsigned hlit = rd_byte(&r->trees), hdist = rd_byte(&r->trees), hclen = rd_byte(&r->trees);
    if (r->trees.bad || hlit > 29 || hdist > 29 || hclen > 15)
        return -EBADMSG;
    /* At most 14 + 19 * 3 + 316 * 14 bits. */
    TRY(bw_reserve(&r->out, 1024));
    bw_bits(&r->out, hlit | hdist << 5 | hclen << 10, 14);
    huff_encoder codelen;
    TRY(replay_codelen_code(r, &codelen, hclen));
    unsigned nlen = hlit + 257, ndist = hdist + 1;
    uint8_t lens[LITLEN_SYMBOLS + DIST_SYMBOLS];
    TRY(replay_code_lengths(r, &codelen, lens, nlen + ndist));
    huff_encoder litlen, dist;
    if (!lens[END_OF_BLOCK] || encoder_build(&litlen, lens, nlen, CODE_LITLEN) ||
        encoder_build(&dist, lens + nlen, ndist, CODE_DIST))
        return -EBADMSG;
    coder_join(&r->dynamic, &litlen, &dist);
    return 0;
}

static const block_coder *fixed_coder(replayer *r)
{
    if (!r->fixed_ready) {
        uint8_t litlen_lens[LITLEN_SYMBOLS], dist_lens[DIST_SYMBOLS];
        fixed_code_lengths(litlen_lens, dist_lens);
        huff_encoder litlen, dist;
        encoder_build(&litlen, litlen_lens, LITLEN_SYMBOLS, CODE_LITLEN);
        encoder_build(&dist, dist_lens, DIST_SYMBOLS, CODE_DIST);
        coder_join(&r->fixed, &litlen, &dist);
        r->fixed_ready = 1;
    }
    return &r->fixed;
}

/* The writer's state in locals, for the symbol loop: stores through a byte pointer may
 * alias anything, so fields reached through pointers would be reloaded after each. */
typedef struct {
    uint8_t *at, *end; /* next byte to write; end of the buffer */
    uint64_t acc;
    unsigned count;
} bitcursor;

static inline void bc_put(bitcursor *b, uint64_t bits, unsigned n)
{
    b->acc |= bits << b->count;
    b->count += n;
}

static inline void bc_flush(bitcursor *b)
{
    store_le64(b->at, b->acc);
    b->at += b->count >> 3;
    b->acc >>= b->count & 56;
    b->count &= 7;
}

/* Codes the n literals at p, three codes of at most 15 bits per flush; the caller has
 * made room for two bytes per literal.  Nonzero if a byte has no code in this block. */
static inline unsigned put_literals(bitcursor *b, const uint32_t *literal, const uint8_t *p,
                                    size_t n)
{
    unsigned missing = 0;
    size_t i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t x = literal[p[i]], y = literal[p[i + 1]], z = literal[p[i + 2]];
        missing |= !x | !y | !z;
        bc_put(b, x >> 4, x & 15);
        bc_put(b, y >> 4, y & 15);
        bc_put(b, z >> 4, z & 15);
        bc_flush(b);
    }
    for (; i < n; i++) {
        uint32_t x = literal[p[i]];
        missing |= !x;
        bc_put(b, x >> 4, x & 15);
        bc_flush(b);
    }
    return missing;
}

/* A section being read in the symbol loop. */
typedef struct {
    const uint8_t *at, *end;
} cursor;

static cursor cursor_of(const bytereader *r)
{
    return (cursor){r->bytes + r->pos, r->bytes + r->len};
}

static void cursor_back(bytereader *r, cursor c)
{
    r->pos = (size_t)(c.at - r->bytes);
}

/* Reads the next varint of the runs section; -1 if it is cut short or too long. */
static inline int next_token(cursor *c, uint64_t *token)
{
    if (c->at == c->end)
        return -1;
    uint64_t byte = *c->at++, v = byte & 0x7f;
    for (unsigned shift = 7; byte >= 0x80; shift += 7) {
        if (c->at == c->end || shift >= 64)
            return -1;
        byte = *c->at++;
        v |= (byte & 0x7f) << shift;
    }
    *token = v;
    return 0;
}

/* The literal runs, matches and end of one fixed or dynamic block. */
static int replay_symbols(replayer *r, const block_coder *c)
{
    bitwriter *w = &r->out;
    bitcursor b = {w->bytes + w->len, w->bytes + w->cap, w->acc, w->count};
    cursor runs = cursor_of(&r->runs), lengths = cursor_of(&r->lengths);
    cursor high = cursor_of(&r->dist_high), low = cursor_of(&r->dist_low);
    const uint8_t *data = r->data;
    size_t pos = r->pos, data_len = r->data_len;
    int err;
    for (;;) {
        uint64_t token;
        if (next_token(&runs, &token)) {
            err = -EBADMSG;
            break;
        }
        size_t run = (size_t)(token >> 2);
        unsigned kind = token & 3;
        if (token >> 2 > data_len - pos) {
            err = -EINVAL;
            break;
        }
        /* A code is at most 15 bits: two bytes per literal, seven for a match. */
        size_t need = 2 * run + 8 + 1 + BW_SLACK;
        if ((size_t)(b.end - b.at) < need) {
            w->len = (size_t)(b.at - w->bytes);
            if ((err = bw_reserve(w, need)) != 0)
                break;
            b.at = w->bytes + w->len;
            b.end = w->bytes + w->cap;
        }
        if (put_literals(&b, c->literal, data + pos, run)) {
            err = -EINVAL; /* this byte cannot be a literal here: not the recorded data */
            break;
        }
        pos += run;
        if (kind == RUN_THEN_END) {
            bc_put(&b, c->end_code, c->end_len);
            bc_flush(&b);
            err = 0;
            break;
        }
        unsigned length, nbits;
        uint32_t bits;
        if (kind == RUN_THEN_MATCH && lengths.at < lengths.end) {
            unsigned i = *lengths.at++;
            length = i + 3;
            bits = c->length_bits[i];
            nbits = c->length_nbits[i];
        } else if (kind == RUN_THEN_MATCH_258_AS_284) {
            length = MAX_MATCH;
            bits = c->as_284_bits;
            nbits = c->as_284_nbits;
        } else {
            err = -EBADMSG;
            break;
        }
        if (high.at == high.end || low.at == low.end) {
            err = -EBADMSG;
            break;
        }
        unsigned distance = ((unsigned)*high.at++ << 8 | *low.at++) + 1;
        unsigned dsym = dist_symbol(distance), dlen = c->dist_len[dsym & 31];
        if (!nbits || !dlen || distance > MAX_DISTANCE || distance > pos) {
            err = -EBADMSG;
            break;
        }
        if (length > data_len - pos) {
            err = -EINVAL;
            break;
        }
        bc_put(&b, bits, nbits); /* at most 20 bits */
        bc_put(&b, c->dist_code[dsym] | (uint64_t)(distance - dist_base[dsym]) << dlen,
               dlen + dist_extra[dsym]); /* at most 28 bits */
        bc_flush(&b);
        pos += length;
    }
    w->len = (size_t)(b.at - w->bytes);
    w->acc = b.acc;
    w->count = b.count;
    cursor_back(&r->runs, runs);
    cursor_back(&r->lengths, lengths);
    cursor_back(&r->dist_high, high);
    cursor_back(&r->dist_low, low);
    r->pos = pos;
    return err;
}

static int replay_stored(replayer *r)
{
    unsigned padding = rd_byte(&r->blocks), len = rd_u16(&r->blocks);
    unsigned pad_bits = bw_bits_to_byte_boundary(&r->out);
    if (r->blocks.bad || padding >> pad_bits)
        return -EBADMSG;
    if (len > r->data_len - r->pos)
        return -EINVAL;
    TRY(bw_reserve(&r->out, (size_t)len + 8));
    bw_bits(&r->out, padding, pad_bits); /* now on a byte boundary, nothing pending */
    uint8_t *to = r->out.bytes + r->out.len;
    to[0] = (uint8_t)len;
    to[1] = (uint8_t)(len >> 8);
    to[2] = (uint8_t)~len;
    to[3] = (uint8_t)(~len >> 8);
    memcpy(to + 4, r->data + r->pos, len);
    r->out.len += 4 + (size_t)len;
    r->pos += len;
    return 0;
}

static int replay_blocks(replayer *r)
{
    unsigned final = 0;
    while (!final) {
        unsigned header = rd_byte(&r->blocks), type = header & 3;
        final = header >> 2;
        if (r->blocks.bad || header > 7)
            return -EBADMSG;
        TRY(bw_reserve(&r->out, 8));
        bw_bits(&r->out, final | type << 1, 3);
        if (type == BLOCK_STORED) {
            TRY(replay_stored(r));
        } else if (type == BLOCK_FIXED) {
            TRY(replay_symbols(r, fixed_coder(r)));
        } else if (type == BLOCK_DYNAMIC) {
            TRY(replay_dynamic_header(r));
            TRY(replay_symbols(r, &r->dynamic));
        } else {
            return -EBADMSG;
        }
    }
    return 0;
}

/* Inflates src[0..n) into exactly size bytes at dst; 0, -EBADMSG or -ENOMEM. */
static int unpack_section(const uint8_t *src, size_t n, uint8_t *dst, size_t size)
{
    z_stream z;
    memset(&z, 0, sizeof z);
    if (inflateInit(&z) != Z_OK)
        return -ENOMEM;
    z.next_in = (Bytef *)src;
    z.next_out = dst;
    size_t in_left = n, out_left = size;
    int ret;
    do { /* avail_in and avail_out are uInt */
        z.avail_in = (uInt)(in_left < (1u << 30) ? in_left : 1u << 30);
        z.avail_out = (uInt)(out_left < (1u << 30) ? out_left : 1u << 30);
        in_left -= z.avail_in;
        out_left -= z.avail_out;
        ret = inflate(&z, Z_NO_FLUSH);
        in_left += z.avail_in;
        out_left += z.avail_out;
    } while (ret == Z_OK);
    inflateEnd(&z);
    if (ret == Z_MEM_ERROR)
        return -ENOMEM;
    return ret == Z_STREAM_END && in_left == 0 && out_left == 0 ? 0 : -EBADMSG;
}

enum { SECTIONS = 6 };

/* The recipe's sections: those stored as they are point into the recipe, packed ones
 * are inflated into one buffer. */
static int read_sections(bytereader *b, bytereader *sections[SECTIONS], uint8_t **unpacked)
{
    static const uint8_t nothing[1];
    const uint8_t *packed[SECTIONS];
    size_t packed_len[SECTIONS], total = 0;
    for (unsigned i = 0; i < SECTIONS; i++) {
        uint64_t head = rd_varint(b), size = head >> 1;
        packed_len[i] = head & 1 ? (size_t)rd_varint(b) : 0;
        packed[i] = head & 1 ? rd_bytes(b, packed_len[i]) : NULL;
        const uint8_t *bytes = head & 1 ? nothing : rd_bytes(b, size);
        /* Deflate expands at most 1032-fold. */
        if (b->bad || (head & 1 && size > (uint64_t)packed_len[i] * 1032 + 64))
            return -EBADMSG;
        *sections[i] = (bytereader){size ? bytes : nothing, (size_t)size, 0, 0};
        if (head & 1)
            total += (size_t)size; /* below 1032 times the recipe size */
    }
    if (b->pos != b->len)
        return -EBADMSG;
    *unpacked = total ? malloc(total) : NULL;
    if (total && !*unpacked)
        return -ENOMEM;
    size_t at = 0;
    for (unsigned i = 0; i < SECTIONS; i++) {
        if (!packed[i])
            continue;
        TRY(unpack_section(packed[i], packed_len[i], *unpacked + at, sections[i]->len));
        if (sections[i]->len)
            sections[i]->bytes = *unpacked + at;
        at += sections[i]->len;
    }
    return 0;
}

static void put_bytes(bitwriter *w, const uint8_t *src, size_t n)
{
    if (n)
        memcpy(w->bytes + w->len, src, n);
    w->len += n;
}

/* Everything but the blocks: header, data size, checksum, padding and trailing bytes. */
typedef struct {
    uint8_t cmf, flg, final_padding;
    int adler_raw;
    const uint8_t *adler, *trailing;
    uint64_t data_len, trailing_len;
} stream_frame;

static int read_frame(bytereader *b, stream_frame *f)
{
    unsigned format = rd_byte(b);
    f->cmf = (uint8_t)rd_byte(b);
    f->flg = (uint8_t)rd_byte(b);
    f->data_len = rd_varint(b);
    unsigned flags = rd_byte(b);
    f->adler_raw = flags & 1;
    f->adler = f->adler_raw ? rd_bytes(b, 4) : NULL;
    f->final_padding = (uint8_t)rd_byte(b);
    f->trailing_len = rd_varint(b);
    f->trailing = rd_bytes(b, f->trailing_len);
    return b->bad || format != DEFLATE_RECIPE_FORMAT || flags > 1 ? -EBADMSG : 0;
}

static int replay_frame_end(replayer *r, const stream_frame *f)
{
    unsigned pad_bits = bw_bits_to_byte_boundary(&r->out);
    if (f->final_padding >> pad_bits)
        return -EBADMSG;
    TRY(bw_reserve(&r->out, 4 + f->trailing_len));
    bw_bits(&r->out, f->final_padding, pad_bits);
    uint32_t a = adler_of(r->data, r->data_len);
    uint8_t computed[4] = {(uint8_t)(a >> 24), (uint8_t)(a >> 16), (uint8_t)(a >> 8), (uint8_t)a};
    put_bytes(&r->out, f->adler_raw ? f->adler : computed, 4);
    put_bytes(&r->out, f->trailing, f->trailing_len);
    return 0;
}

static int sections_consumed(const replayer *r)
{
    const bytereader *s[] = {&r->blocks,  &r->trees,     &r->runs,
                             &r->lengths, &r->dist_high, &r->dist_low};
    for (size_t i = 0; i < sizeof s / sizeof *s; i++)
        if (s[i]->bad || s[i]->pos != s[i]->len)
            return 0;
    return 1;
}

static int replay_recipe(replayer *r, const uint8_t *recipe, size_t recipe_len, uint8_t **unpacked)
{
    if (!recipe || recipe_len < 5)
        return -EBADMSG;
    const uint8_t *sum = recipe + recipe_len - 4;
    uint32_t stored =
        (uint32_t)sum[0] << 24 | (uint32_t)sum[1] << 16 | (uint32_t)sum[2] << 8 | sum[3];
    if (adler_of(recipe, recipe_len - 4) != stored)
        return -EBADMSG;
    bytereader b = {recipe, recipe_len - 4, 0, 0};
    stream_frame f;
    TRY(read_frame(&b, &f));
    bytereader *sections[SECTIONS] = {&r->blocks,  &r->trees,     &r->runs,
                                      &r->lengths, &r->dist_high, &r->dist_low};
    TRY(read_sections(&b, sections, unpacked));
    if (f.data_len != r->data_len)
        return -EINVAL;
    /* Room for a stream somewhat larger than the data, so that it is rarely moved;
     * pages never written cost nothing. */
    TRY(bw_reserve(&r->out, r->data_len + r->data_len / 8 + 64));
    bw_bits(&r->out, f.cmf | (unsigned)f.flg << 8, 16);
    TRY(replay_blocks(r));
    TRY(replay_frame_end(r, &f));
    if (r->pos != r->data_len)
        return -EINVAL;
    return sections_consumed(r) ? 0 : -EBADMSG;
}

int deflate_recipe_replay(const uint8_t *recipe, size_t recipe_len, const uint8_t *data,
                          size_t data_len, uint8_t **zstream, size_t *zlen)
{
    *zstream = NULL;
    *zlen = 0;
    replayer *r = calloc(1, sizeof *r);
    if (!r)
        return -ENOMEM;
    static const uint8_t no_data[1];
    r->data = data ? data : no_data;
    r->data_len = data ? data_len : 0;
    uint8_t *unpacked = NULL;
    int err = replay_recipe(r, recipe, recipe_len, &unpacked);
    if (!err) {
        *zstream = r->out.bytes;
        *zlen = r->out.len;
    } else {
        free(r->out.bytes);
    }
    free(r);
    free(unpacked);
    return err;
}

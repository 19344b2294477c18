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
};

enum { RECIPE_PACK_LEVEL = 6 };

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

static void buf_put_byte(bytebuf *b, unsigned v)
{
    uint8_t byte = (uint8_t)v;
    buf_put_bytes(b, &byte, 1);
}

static void buf_put_u16(bytebuf *b, unsigned v)
{
    uint8_t le[2] = {(uint8_t)v, (uint8_t)(v >> 8)};
    buf_put_bytes(b, le, 2);
}

static void buf_put_varint(bytebuf *b, uint64_t v)
{
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

/* A sub-reader over the next varint-sized section of r. */
static bytereader rd_section(bytereader *r)
{
    bytereader s = {0};
    uint64_t n = rd_varint(r);
    s.bytes = rd_bytes(r, n);
    s.len = s.bytes ? (size_t)n : 0;
    s.bad = r->bad;
    return s;
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

/* ---------------------------------------------------------------- match model */

/* Build and replay predict each match from the decompressed data alone.  The earlier
 * positions starting with the same three bytes are walked most recent first, as
 * zlib's longest-match search walks them.  zlib takes the first candidate of the
 * greatest length it sees, so its match is nearly always one that is longer than all
 * candidates before it, with its full length: the recipe names it by its index among
 * those "record" candidates.  Other matches are named by length and rank among the
 * candidates at least that long, and the rest by length and distance. */
enum {
    MODEL_HASH_BITS = 16,
    MODEL_WINDOW = 32768,
    MODEL_MAX_STEPS = 4096, /* chain entries visited per match: bounds the work */
    MAX_MATCH = 258,
    CHOICE_MAX_RECORD = 239, /* choices 0..239: index among record candidates */
    CHOICE_RANKED = 240,     /* length, then rank among candidates that long */
    CHOICE_RAW = 241,        /* length, then distance */
    MAX_RANK = 255,
};

typedef struct {
    const uint8_t *data;
    size_t len, inserted;                /* positions below inserted are in the chains */
    uint32_t head[1 << MODEL_HASH_BITS]; /* latest position + 1 with this hash, 0: none */
    uint32_t prev[MODEL_WINDOW];         /* previous position + 1 with the same hash */
} match_model;

typedef struct {
    unsigned length, distance; /* distance 0: none */
} match;

static inline uint32_t hash3(const uint8_t *p)
{
    uint32_t v = (uint32_t)p[0] << 16 | (uint32_t)p[1] << 8 | p[2];
    return (v * 0x9e3779b1u) >> (32 - MODEL_HASH_BITS);
}

static void model_insert_before(match_model *m, size_t pos)
{
    size_t end = m->len < 3 ? 0 : m->len - 2; /* a position needs three bytes */
    if (pos < end)
        end = pos;
    for (size_t p = m->inserted; p < end; p++) {
        uint32_t h = hash3(m->data + p);
        m->prev[p & (MODEL_WINDOW - 1)] = m->head[h];
        m->head[h] = (uint32_t)(p + 1);
    }
    if (end > m->inserted)
        m->inserted = end;
}

/* Walks one hash chain.  Positions are kept modulo 2^32; distances must grow and stay
 * within the window, which ends the walk on anything stale. */
typedef struct {
    const match_model *m;
    size_t pos;
    uint32_t next;
    unsigned last, steps;
} chain_walk;

static inline void walk_start(chain_walk *w, const match_model *m, size_t pos)
{
    w->m = m;
    w->pos = pos;
    w->next = pos + 3 <= m->len ? m->head[hash3(m->data + pos)] : 0;
    w->last = 0;
    w->steps = 0;
}

/* Distance of the next candidate; 0 when the walk is over. */
static inline unsigned walk_next(chain_walk *w)
{
    if (w->next == 0 || w->steps++ >= MODEL_MAX_STEPS)
        return 0;
    uint32_t distance = (uint32_t)w->pos - (w->next - 1);
    if (distance <= w->last || distance > MODEL_WINDOW || distance > w->pos)
        return 0;
    w->last = distance;
    w->next = w->m->prev[(w->pos - distance) & (MODEL_WINDOW - 1)];
    return distance;
}

/* How many bytes at pos equal those distance back, up to limit. */
static inline unsigned match_length(const uint8_t *data, size_t pos, unsigned distance,
                                    unsigned limit)
{
    const uint8_t *a = data + pos - distance, *b = data + pos;
    unsigned n = 0;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    for (; n + 8 <= limit; n += 8) {
        uint64_t x, y;
        memcpy(&x, a + n, 8);
        memcpy(&y, b + n, 8);
        if (x != y)
            return n + (unsigned)__builtin_ctzll(x ^ y) / 8;
    }
#endif
    while (n < limit && a[n] == b[n])
        n++;
    return n;
}

static unsigned longest_possible(const match_model *m, size_t pos)
{
    size_t left = m->len - pos;
    return left < MAX_MATCH ? (unsigned)left : MAX_MATCH;
}

/* The index-th candidate longer than every candidate before it, at its full length. */
static match model_record(const match_model *m, size_t pos, unsigned index)
{
    unsigned cap = longest_possible(m, pos), best = 2;
    chain_walk w;
    walk_start(&w, m, pos);
    for (unsigned d; best < cap && (d = walk_next(&w));) {
        if (m->data[pos - d + best] != m->data[pos + best])
            continue; /* cannot be longer than best */
        unsigned len = match_length(m->data, pos, d, cap);
        if (len <= best)
            continue;
        if (index-- == 0)
            return (match){len, d};
        best = len;
    }
    return (match){0, 0};
}

/* The rank-th candidate matching at least length bytes (length <= bytes left). */
static unsigned model_ranked(const match_model *m, size_t pos, unsigned length, unsigned rank)
{
    chain_walk w;
    walk_start(&w, m, pos);
    for (unsigned d; (d = walk_next(&w));) {
        if (m->data[pos - d + length - 1] != m->data[pos + length - 1])
            continue;
        if (match_length(m->data, pos, d, length) == length && rank-- == 0)
            return d;
    }
    return 0;
}

/* The cheapest way to name the match (length, distance) at pos; *rank for RANKED.
 * Walks the chain as model_record and model_ranked do, measuring a candidate only when
 * one of its two deciding bytes shows it may be a record or match mt.length bytes. */
static unsigned model_choice(const match_model *m, size_t pos, match mt, unsigned *rank)
{
    unsigned cap = longest_possible(m, pos), best = 2, records = 0, at_least = 0;
    const uint8_t *here = m->data + pos;
    chain_walk w;
    walk_start(&w, m, pos);
    for (unsigned d; (d = walk_next(&w));) {
        const uint8_t *there = here - d;
        int may_record = best < cap && there[best] == here[best];
        int may_reach = there[mt.length - 1] == here[mt.length - 1];
        if (d != mt.distance && !may_record && !may_reach)
            continue;
        unsigned len = match_length(m->data, pos, d, cap);
        if (d == mt.distance) {
            if (len > best && len == mt.length && records <= CHOICE_MAX_RECORD)
                return records;
            *rank = at_least;
            return at_least <= MAX_RANK ? CHOICE_RANKED : CHOICE_RAW;
        }
        if (len > best) {
            best = len;
            records++;
        }
        at_least += len >= mt.length;
    }
    return CHOICE_RAW;
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
    bytebuf blocks, trees, runs; /* recipe sections */
    /* Matches as found (gap since the previous one, length - 3, distance - 1), turned
     * into predictions once all data is known. */
    bytebuf match_gaps, match_lengths, match_dists;
    size_t last_match_end;
    huff_decoder litlen, dist; /* current dynamic block's codes */
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
    for (size_t i = 0; i < length; i++)
        to[i] = from[i]; /* byte by byte: source and destination may overlap */
    p->out_len += length;
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
    buf_put_varint(&p->match_gaps, p->out_len - p->last_match_end);
    buf_put_byte(&p->match_lengths, (unsigned)(length - 3));
    buf_put_u16(&p->match_dists, (unsigned)(distance - 1));
    copy_match(p, length, distance);
    p->last_match_end = p->out_len;
    int as_284 = li == SYMBOL_284_INDEX && lx == SYMBOL_284_EXTRA_258;
    buf_put_varint(&p->runs, run << 2 | (as_284 ? RUN_THEN_MATCH_258_AS_284 : RUN_THEN_MATCH));
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

static void put_section(bytebuf *body, const bytebuf *section)
{
    buf_put_varint(body, section->len);
    buf_put_bytes(body, section->bytes, section->len);
}

/* Predicted matches: the choices, lengths, ranks and dists sections. */
typedef struct {
    bytebuf choices, lengths, ranks, dists;
} match_sections;

static void describe_match(const match_model *m, size_t pos, match mt, match_sections *out)
{
    unsigned rank = 0, choice = model_choice(m, pos, mt, &rank);
    buf_put_byte(&out->choices, choice);
    if (choice <= CHOICE_MAX_RECORD)
        return;
    buf_put_byte(&out->lengths, mt.length - 3);
    if (choice == CHOICE_RANKED)
        buf_put_byte(&out->ranks, rank);
    else
        buf_put_u16(&out->dists, mt.distance - 1);
}

static int model_matches(const parser *p, match_sections *out)
{
    match_model *m = calloc(1, sizeof *m);
    if (!m)
        return -ENOMEM;
    m->data = p->out;
    m->len = p->out_len;
    bytereader gaps = {p->match_gaps.bytes, p->match_gaps.len, 0, 0};
    bytereader lengths = {p->match_lengths.bytes, p->match_lengths.len, 0, 0};
    bytereader dists = {p->match_dists.bytes, p->match_dists.len, 0, 0};
    for (size_t pos = 0; gaps.pos < gaps.len;) {
        pos += rd_varint(&gaps);
        match mt = {rd_byte(&lengths) + 3, rd_u16(&dists) + 1};
        model_insert_before(m, pos);
        describe_match(m, pos, mt, out);
        pos += mt.length;
    }
    free(m);
    return 0;
}

static void assemble_body(const parser *p, const match_sections *ms, bytebuf *body)
{
    buf_put_byte(body, p->cmf);
    buf_put_byte(body, p->flg);
    buf_put_varint(body, p->out_len);
    int adler_differs = p->adler_found != adler_of(p->out, p->out_len);
    buf_put_byte(body, adler_differs);
    if (adler_differs) {
        uint8_t be[4] = {(uint8_t)(p->adler_found >> 24), (uint8_t)(p->adler_found >> 16),
                         (uint8_t)(p->adler_found >> 8), (uint8_t)p->adler_found};
        buf_put_bytes(body, be, 4);
    }
    buf_put_byte(body, p->final_padding);
    buf_put_varint(body, p->in.len - p->trailing_at);
    buf_put_bytes(body, p->in.in + p->trailing_at, p->in.len - p->trailing_at);
    put_section(body, &p->blocks);
    put_section(body, &p->trees);
    put_section(body, &p->runs);
    put_section(body, &ms->choices);
    put_section(body, &ms->lengths);
    put_section(body, &ms->ranks);
    put_section(body, &ms->dists);
}

/* Format byte, body size, then the body deflated.  Level 6 rather than 9: recipes
 * come out about 7% larger, but building is several times faster. */
static int pack_recipe(const bytebuf *body, uint8_t **recipe, size_t *recipe_len)
{
    bytebuf head = {0};
    buf_put_byte(&head, DEFLATE_RECIPE_FORMAT);
    buf_put_varint(&head, body->len);
    if (head.failed)
        return -ENOMEM;
    uLongf packed = compressBound(body->len);
    uint8_t *r = malloc(head.len + packed);
    if (!r) {
        free(head.bytes);
        return -ENOMEM;
    }
    memcpy(r, head.bytes, head.len);
    int z = compress2(r + head.len, &packed, body->bytes ? body->bytes : r, body->len,
                      RECIPE_PACK_LEVEL);
    if (z != Z_OK) {
        free(head.bytes);
        free(r);
        return -ENOMEM;
    }
    *recipe_len = head.len + packed;
    *recipe = r;
    free(head.bytes);
    return 0;
}

static int sections_failed(const parser *p)
{
    return p->blocks.failed || p->trees.failed || p->runs.failed || p->match_gaps.failed ||
           p->match_lengths.failed || p->match_dists.failed;
}

static void parser_free(parser *p)
{
    free(p->out);
    free(p->blocks.bytes);
    free(p->trees.bytes);
    free(p->runs.bytes);
    free(p->match_gaps.bytes);
    free(p->match_lengths.bytes);
    free(p->match_dists.bytes);
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
    bytebuf body = {0};
    match_sections ms = {0};
    if (!err) {
        err = model_matches(p, &ms);
        if (!err)
            assemble_body(p, &ms, &body);
        if (!err && (body.failed || ms.choices.failed || ms.lengths.failed || ms.ranks.failed ||
                     ms.dists.failed))
            err = -ENOMEM;
        if (!err)
            err = pack_recipe(&body, recipe, recipe_len);
        if (err)
            parse_fail(p, err, "out of memory");
    }
    free(ms.choices.bytes);
    free(ms.lengths.bytes);
    free(ms.ranks.bytes);
    free(ms.dists.bytes);
    if (!err && !p->out && !(p->out = malloc(1))) { /* empty data is still a buffer */
        err = parse_fail(p, -ENOMEM, "out of memory");
        free(*recipe);
        *recipe = NULL;
        *recipe_len = 0;
    }
    if (!err) {
        *data = p->out;
        *data_len = p->out_len;
        p->out = NULL;
    }
    if (why)
        *why = err ? p->why : NULL;
    free(body.bytes);
    parser_free(p);
    return err;
}

/* ---------------------------------------------------------------- replay */

typedef struct {
    uint8_t *bytes;
    size_t len, cap;
    uint64_t acc;   /* pending bits, least significant first */
    unsigned count; /* pending bits in acc, below 32 between calls */
} bitwriter;

/* Room for n more bytes plus whatever the accumulator holds. */
static int bw_reserve(bitwriter *w, size_t n)
{
    if (n > SIZE_MAX / 4)
        return -ENOMEM;
    size_t need = n + 8;
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

/* Appends the n <= 32 low bits of bits (higher bits must be zero). */
static inline void bw_put(bitwriter *w, uint32_t bits, unsigned n)
{
    w->acc |= (uint64_t)bits << w->count;
    w->count += n;
    if (w->count >= 32) {
        uint8_t *to = w->bytes + w->len;
        to[0] = (uint8_t)w->acc;
        to[1] = (uint8_t)(w->acc >> 8);
        to[2] = (uint8_t)(w->acc >> 16);
        to[3] = (uint8_t)(w->acc >> 24);
        w->len += 4;
        w->acc >>= 32;
        w->count -= 32;
    }
}

/* Writes out whole pending bytes; on a byte boundary this empties the accumulator. */
static void bw_flush_bytes(bitwriter *w)
{
    while (w->count >= 8) {
        w->bytes[w->len++] = (uint8_t)w->acc;
        w->acc >>= 8;
        w->count -= 8;
    }
}

static unsigned bw_bits_to_byte_boundary(const bitwriter *w)
{
    return (8 - w->count % 8) % 8;
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

/* One block's codes, with each match length's symbol and extra bits pre-joined. */
typedef struct {
    huff_encoder litlen, dist;
    uint32_t length_bits[256]; /* indexed by length - 3 */
    uint8_t length_nbits[256]; /* 0: the length symbol has no code */
} block_coder;

static void coder_join_lengths(block_coder *c)
{
    /* Ascending symbols, so 258 ends up as symbol 285, not as 284 + 31. */
    for (unsigned li = 0; li < LENGTH_CODES; li++) {
        unsigned sym = FIRST_LENGTH_SYMBOL + li, len = c->litlen.len[sym];
        for (unsigned x = 0; x < 1u << length_extra[li]; x++) {
            unsigned i = length_base[li] + x - 3;
            c->length_bits[i] = c->litlen.code[sym] | x << len;
            c->length_nbits[i] = len ? (uint8_t)(len + length_extra[li]) : 0;
        }
    }
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
    bytereader blocks, trees, runs, choices, lengths, ranks, dists;
    match_model model;
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
        bw_put(&r->out, v, 3);
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
        bw_put(&r->out, codelen->code[sym], codelen->len[sym]);
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
        bw_put(&r->out, extra, bits);
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
    bw_put(&r->out, hlit, 5);
    bw_put(&r->out, hdist, 5);
    bw_put(&r->out, hclen, 4);
    huff_encoder codelen;
    TRY(replay_codelen_code(r, &codelen, hclen));
    unsigned nlen = hlit + 257, ndist = hdist + 1;
    uint8_t lens[LITLEN_SYMBOLS + DIST_SYMBOLS];
    TRY(replay_code_lengths(r, &codelen, lens, nlen + ndist));
    block_coder *c = &r->dynamic;
    if (!lens[END_OF_BLOCK] || encoder_build(&c->litlen, lens, nlen, CODE_LITLEN) ||
        encoder_build(&c->dist, lens + nlen, ndist, CODE_DIST))
        return -EBADMSG;
    coder_join_lengths(c);
    return 0;
}

static const block_coder *fixed_coder(replayer *r)
{
    if (!r->fixed_ready) {
        uint8_t litlen[LITLEN_SYMBOLS], dist[DIST_SYMBOLS];
        fixed_code_lengths(litlen, dist);
        encoder_build(&r->fixed.litlen, litlen, LITLEN_SYMBOLS, CODE_LITLEN);
        encoder_build(&r->fixed.dist, dist, DIST_SYMBOLS, CODE_DIST);
        coder_join_lengths(&r->fixed);
        r->fixed_ready = 1;
    }
    return &r->fixed;
}

static int replay_literals(replayer *r, const huff_encoder *litlen, size_t run)
{
    const uint8_t *p = r->data + r->pos, *end = p + run;
    for (; p < end; p++) {
        unsigned len = litlen->len[*p];
        if (!len)
            return -EINVAL; /* this byte cannot be a literal here: not the recorded data */
        bw_put(&r->out, litlen->code[*p], len);
    }
    r->pos += run;
    return 0;
}

/* The next match, from its recorded choice and the data before it. */
static int replay_predict(replayer *r, match *mt)
{
    unsigned choice = rd_byte(&r->choices), rank;
    size_t left = r->data_len - r->pos;
    model_insert_before(&r->model, r->pos);
    if (choice <= CHOICE_MAX_RECORD) {
        *mt = model_record(&r->model, r->pos, choice);
    } else if (choice == CHOICE_RANKED || choice == CHOICE_RAW) {
        mt->length = rd_byte(&r->lengths) + 3;
        if (mt->length > left)
            return -EINVAL;
        rank = choice == CHOICE_RANKED ? rd_byte(&r->ranks) : 0;
        mt->distance = choice == CHOICE_RANKED ? model_ranked(&r->model, r->pos, mt->length, rank)
                                               : rd_u16(&r->dists) + 1;
    } else {
        return -EBADMSG;
    }
    if (r->choices.bad || r->lengths.bad || r->ranks.bad || r->dists.bad)
        return -EBADMSG;
    if (mt->distance == 0 || mt->distance > r->pos || mt->length < 3 || mt->length > left)
        return -EBADMSG;
    return 0;
}

static int replay_match(replayer *r, const block_coder *c, unsigned kind)
{
    match mt;
    TRY(replay_predict(r, &mt));
    if (kind == RUN_THEN_MATCH) {
        unsigned i = mt.length - 3;
        if (!c->length_nbits[i])
            return -EBADMSG;
        bw_put(&r->out, c->length_bits[i], c->length_nbits[i]);
    } else if (kind == RUN_THEN_MATCH_258_AS_284 && mt.length == 258) {
        unsigned sym = FIRST_LENGTH_SYMBOL + SYMBOL_284_INDEX;
        if (!c->litlen.len[sym])
            return -EBADMSG;
        bw_put(&r->out, c->litlen.code[sym], c->litlen.len[sym]);
        bw_put(&r->out, SYMBOL_284_EXTRA_258, length_extra[SYMBOL_284_INDEX]);
    } else {
        return -EBADMSG;
    }
    unsigned dsym = dist_symbol(mt.distance);
    if (!c->dist.len[dsym])
        return -EBADMSG;
    bw_put(&r->out, c->dist.code[dsym], c->dist.len[dsym]);
    bw_put(&r->out, mt.distance - dist_base[dsym], dist_extra[dsym]);
    r->pos += mt.length;
    return 0;
}

static int replay_symbols(replayer *r, const block_coder *c)
{
    for (;;) {
        uint64_t token = rd_varint(&r->runs);
        if (r->runs.bad)
            return -EBADMSG;
        uint64_t run = token >> 2;
        unsigned kind = token & 3;
        if (run > r->data_len - r->pos)
            return -EINVAL;
        /* A code is at most 15 bits: two bytes per literal, plus one match. */
        TRY(bw_reserve(&r->out, 2 * (size_t)run + 16));
        TRY(replay_literals(r, &c->litlen, (size_t)run));
        if (kind == RUN_THEN_END) {
            bw_put(&r->out, c->litlen.code[END_OF_BLOCK], c->litlen.len[END_OF_BLOCK]);
            return 0;
        }
        TRY(replay_match(r, c, kind));
    }
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
    bw_put(&r->out, padding, pad_bits);
    bw_flush_bytes(&r->out);
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
        bw_put(&r->out, final, 1);
        bw_put(&r->out, type, 2);
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

/* Inflates the recipe body, refusing sizes deflate could not have produced. */
static int unpack_recipe(const uint8_t *recipe, size_t recipe_len, uint8_t **body, size_t *body_len)
{
    bytereader r = {recipe, recipe_len, 0, 0};
    if (rd_byte(&r) != DEFLATE_RECIPE_FORMAT)
        return -EBADMSG;
    uint64_t n = rd_varint(&r);
    uLong packed = recipe_len - r.pos;
    if (r.bad || n > (uint64_t)packed * 1032 + 64)
        return -EBADMSG;
    uint8_t *b = malloc(n ? (size_t)n : 1);
    if (!b)
        return -ENOMEM;
    uLongf got = (uLongf)n;
    int z = uncompress2(b, &got, recipe + r.pos, &packed);
    if (z != Z_OK || got != n || packed != recipe_len - r.pos) {
        free(b);
        return z == Z_MEM_ERROR ? -ENOMEM : -EBADMSG;
    }
    *body = b;
    *body_len = (size_t)n;
    return 0;
}

static void put_bytes(bitwriter *w, const uint8_t *src, size_t n)
{
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
    f->cmf = (uint8_t)rd_byte(b);
    f->flg = (uint8_t)rd_byte(b);
    f->data_len = rd_varint(b);
    unsigned flags = rd_byte(b);
    f->adler_raw = flags & 1;
    f->adler = f->adler_raw ? rd_bytes(b, 4) : NULL;
    f->final_padding = (uint8_t)rd_byte(b);
    f->trailing_len = rd_varint(b);
    f->trailing = rd_bytes(b, f->trailing_len);
    return b->bad || flags > 1 ? -EBADMSG : 0;
}

static int replay_frame_end(replayer *r, const stream_frame *f)
{
    unsigned pad_bits = bw_bits_to_byte_boundary(&r->out);
    if (f->final_padding >> pad_bits)
        return -EBADMSG;
    TRY(bw_reserve(&r->out, 4 + f->trailing_len));
    bw_put(&r->out, f->final_padding, pad_bits);
    bw_flush_bytes(&r->out);
    uint32_t a = adler_of(r->data, r->data_len);
    uint8_t computed[4] = {(uint8_t)(a >> 24), (uint8_t)(a >> 16), (uint8_t)(a >> 8), (uint8_t)a};
    put_bytes(&r->out, f->adler_raw ? f->adler : computed, 4);
    put_bytes(&r->out, f->trailing, f->trailing_len);
    return 0;
}

static int sections_consumed(const replayer *r)
{
    const bytereader *s[] = {&r->blocks,  &r->trees, &r->runs, &r->choices,
                             &r->lengths, &r->ranks, &r->dists};
    for (size_t i = 0; i < sizeof s / sizeof *s; i++)
        if (s[i]->bad || s[i]->pos != s[i]->len)
            return 0;
    return 1;
}

static int replay_body(replayer *r, const uint8_t *body, size_t body_len)
{
    bytereader b = {body, body_len, 0, 0};
    stream_frame f;
    TRY(read_frame(&b, &f));
    r->blocks = rd_section(&b);
    r->trees = rd_section(&b);
    r->runs = rd_section(&b);
    r->choices = rd_section(&b);
    r->lengths = rd_section(&b);
    r->ranks = rd_section(&b);
    r->dists = rd_section(&b);
    if (b.bad || b.pos != b.len)
        return -EBADMSG;
    if (f.data_len != r->data_len)
        return -EINVAL;
    TRY(bw_reserve(&r->out, r->data_len / 2 + 64));
    bw_put(&r->out, f.cmf, 8);
    bw_put(&r->out, f.flg, 8);
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
    uint8_t *body;
    size_t body_len;
    TRY(unpack_recipe(recipe, recipe_len, &body, &body_len));
    replayer *r = calloc(1, sizeof *r);
    if (!r) {
        free(body);
        return -ENOMEM;
    }
    static const uint8_t no_data[1];
    r->data = data ? data : no_data;
    r->data_len = data ? data_len : 0;
    r->model.data = r->data;
    r->model.len = r->data_len;
    int err = replay_body(r, body, body_len);
    if (!err) {
        *zstream = r->out.bytes;
        *zlen = r->out.len;
    } else {
        free(r->out.bytes);
    }
    free(r);
    free(body);
    return err;
}

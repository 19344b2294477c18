/* Internals of the JPEG codec, shared by codec/jpeg*.c only.
 *
 *   jpeg_parse.c   markers and segments: frame, scans, tables, entropy-coded extents
 *   jpeg_scan.c    exact Huffman entropy encoder (sequential and progressive)
 *   jpeg_cipher.c  coefficient-domain encryption
 *   jpeg_record.c  the sealed regeneration record (serialisation, compression)
 *   jpeg_mem.c     libjpeg-turbo's coefficient arrays in memory of our own (jpeg_mem.h)
 *   jpeg_stream.c  a JPEG written on one thread and read back as it comes (jpeg_stream.h)
 *   jpeg.c         libjpeg-turbo glue, stored container, encode / decode / peek
 */
#ifndef PXC_CODEC_JPEG_INT_H
#define PXC_CODEC_JPEG_INT_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#define JPG_MAX_COMPS 4
#define JPG_MAX_SCANS 256

/* Growable byte buffer; on allocation failure err is set and writes are dropped. */
typedef struct jpg_buf {
    uint8_t *p;
    size_t len, cap;
    int err;
} jpg_buf;

int jpg_buf_reserve(jpg_buf *b, size_t extra);
void jpg_buf_put(jpg_buf *b, const void *src, size_t n);
void jpg_buf_byte(jpg_buf *b, uint8_t v);
void jpg_buf_varint(jpg_buf *b, uint64_t v);
void jpg_buf_free(jpg_buf *b);

/* Huffman code table of one class; len[sym] == 0 when sym has no code. */
typedef struct jpg_huff {
    uint16_t code[256];
    uint8_t len[256];
} jpg_huff;

typedef struct jpg_comp {
    uint8_t id, h, v, tq;
    uint32_t wb, hb; /* blocks covering the component's samples */
    uint32_t pw, ph; /* blocks in the coefficient array (rounded up to h and v) */
} jpg_comp;

typedef struct jpg_scan {
    uint8_t ncomp, comp[JPG_MAX_COMPS]; /* frame component indices, in SOS order */
    uint8_t ss, se, ah, al;
    uint16_t restart;        /* restart interval in effect, 0 if none */
    size_t skel_pos;         /* where the entropy-coded data goes in the skeleton */
    size_t ecs_off, ecs_len; /* extent in the parsed buffer */
    jpg_huff dc[JPG_MAX_COMPS], ac[JPG_MAX_COMPS]; /* tables in effect, per scan component */
} jpg_scan;

typedef struct jpg_frame {
    int progressive;
    uint32_t width, height;
    int ncomp, hmax, vmax;
    uint32_t mcux, mcuy; /* MCUs per row and column of an interleaved scan */
    jpg_comp comp[JPG_MAX_COMPS];
    int nscans;
    jpg_scan *scans;
    size_t eoi_end;       /* offset just past EOI */
    uint64_t blocks;      /* coefficient blocks in all arrays */
    uint64_t real_blocks; /* blocks inside the image (wb * hb summed) */
    uint64_t ecs_total;   /* entropy-coded bytes of all scans */
} jpg_frame;

/* Parses a JPEG up to and including EOI.  skeleton = 0: p is a complete file, the
 * entropy-coded data follows each SOS; skeleton = 1: p is the file with all of it
 * removed (each scan's data is empty).  0, or -EINVAL (malformed), -ENOTSUP (variant
 * not handled: arithmetic coding, 12-bit, lossless, hierarchical, DNL...), -EFBIG
 * (over the limits of jpeg.h), -ENOMEM; *why says which. */
int jpg_parse(const uint8_t *p, size_t n, int skeleton, jpg_frame *f, const char **why);
void jpg_frame_free(jpg_frame *f);

/* Coefficient arrays, one per frame component: pw * ph blocks of 64 coefficients in
 * natural (row-major) order, block (x, y) at index y * pw + x. */
typedef int16_t *jpg_coefs[JPG_MAX_COMPS];

/* Rows of blocks (of each component's hb) deciphered so far: lets the encoder that
 * regenerates the original follow the decipher on another thread instead of waiting
 * for all of it. */
typedef struct jpg_progress {
    pthread_mutex_t lock;
    pthread_cond_t more;
    uint32_t rows[JPG_MAX_COMPS];
    int failed;
} jpg_progress;

void jpg_progress_init(jpg_progress *p);
void jpg_progress_destroy(jpg_progress *p);
/* Component c has its first `rows` rows of blocks complete. */
void jpg_progress_publish(jpg_progress *p, int c, uint32_t rows);
/* The decipher failed: waiters return. */
void jpg_progress_fail(jpg_progress *p);
/* Waits until component c has `rows` rows: 0, or -EBADMSG if the decipher failed. */
int jpg_progress_wait(jpg_progress *p, int c, uint32_t rows);

/* Appends the entropy-coded data of scan s (restart markers included) as a libjpeg
 * encoder would write it: 0, or -EPROTO when a value has no code in the scan's tables
 * or is out of range, -ENOMEM.  With gate, each row of MCUs waits until its blocks
 * inside the image are there (padding blocks must be there from the start).  With
 * ac_hist, the AC symbols (run/size, ZRL, EOB) of every block inside the image that a
 * sequential scan codes are added to ac_hist[frame component]. */
int jpg_scan_encode(const jpg_frame *f, const jpg_scan *s, const jpg_coefs coef, jpg_buf *out,
                    jpg_progress *gate, long (*ac_hist)[257]);

/* Symbol frequencies of one sequential scan over all components of f (interleaved when
 * there are several, as libjpeg writes a coefficient-only image), with component c
 * coded by DC table dc_tbl[c] and AC table ac_tbl[c] (0..3), counted as libjpeg's
 * Huffman optimisation pass counts them: MCU order, one DC predictor per component, and
 * the MCU's blocks past the image edge as libjpeg's dummy blocks (AC zero, DC equal to
 * the block before: a zero difference and an EOB).  Adds to dc_freq / ac_freq; the AC
 * symbols of the blocks inside the image only if inside_ac (a caller that knows them
 * otherwise adds them itself: they depend on no other block). */
void jpg_count_symbols(const jpg_frame *f, int16_t *const *const rows[JPG_MAX_COMPS],
                       const int dc_tbl[JPG_MAX_COMPS], const int ac_tbl[JPG_MAX_COMPS],
                       int inside_ac, long dc_freq[4][257], long ac_freq[4][257]);

/* Natural-order index of zig-zag position k. */
extern const uint8_t jpg_natural_order[64];

/* Per component, pointers to the rows of blocks (row y: pw blocks of 64 coefficients). */
typedef struct jpg_rows {
    int16_t **row[JPG_MAX_COMPS];
} jpg_rows;

typedef struct jpg_cipher_params {
    int16_t lo[JPG_MAX_COMPS], hi[JPG_MAX_COMPS]; /* DC mask ranges */
    uint8_t pidx[JPG_MAX_COMPS];                  /* permutation choice */
    uint8_t textured[JPG_MAX_COMPS];              /* flat blocks get a texture */
    uint8_t *flat[JPG_MAX_COMPS];      /* textured: wb * hb flags, 1 = all AC zero (raster) */
    int16_t tex[JPG_MAX_COMPS];        /* encryption: texture magnitude */
    const uint16_t *qw[JPG_MAX_COMPS]; /* encryption: quantisers (natural order) */
    jpg_progress *progress;            /* decryption: published row by row, or NULL */
    const jpg_rows *expect;            /* decryption: compared with, instead of written */
    uint64_t flat_at8[JPG_MAX_COMPS];  /* encryption: textured flat blocks given their value
                                          at natural position 8 (the others: at 1) */
    uint64_t avoid[JPG_MAX_COMPS];     /* encryption: permutations the search skips */
} jpg_cipher_params;

/* Coefficient cipher over the blocks inside the image (wb x hb per component), from src
 * to dst (distinct arrays): keyed permutation of blocks within each component, DC
 * values masked modulo hi - lo + 1 into [lo, hi], the sign and magnitude bits of every
 * nonzero AC value XORed within its size category, and in textured components the flat
 * blocks (flat[i]) given one keyed low-frequency AC value of magnitude tex.  -ERANGE if
 * a DC value lies outside [lo, hi].  pidx[c] selects one of JPG_PERM_TRIES keyed
 * permutations of component c; encryption with quantisers qw and at most
 * JPG_PERM_SEARCH_MAX blocks picks it so that the map of per-block AC energy of the
 * result is uncorrelated with the original's (|r| < JPG_PERM_GOOD_CORR, else the
 * smallest |r| found) and stores the choice; otherwise (and always on decryption) pidx
 * is an input.  Decryption with expect set writes nothing (dst may be NULL): each
 * deciphered block is compared with the block of expect at the same place, and a
 * difference fails the run with -EPROTO. */
int jpg_cipher_run(int decrypt, const jpg_frame *f, const jpg_rows *src, const jpg_rows *dst,
                   jpg_cipher_params *p, const uint8_t perm_key[32], const uint8_t diff_key[32]);
#define JPG_PERM_TRIES 64
#define JPG_PERM_GOOD_CORR 0.02
#define JPG_PERM_SEARCH_MAX (1u << 16)

/* The regeneration record (plaintext of the sealed record). */
typedef struct jpg_patch {
    uint32_t off; /* in the scan's entropy-coded data */
    uint8_t byte;
} jpg_patch;

typedef struct jpg_record {
    const uint8_t *skel; /* original file without its entropy-coded data */
    size_t skel_len;
    int nscans;
    size_t *ecs_len;       /* nscans */
    uint32_t *patch_start; /* nscans + 1 */
    jpg_patch *patches;    /* bytes the encoder writes differently (fill bits...) */
    int ncomp;
    int16_t lo[JPG_MAX_COMPS], hi[JPG_MAX_COMPS]; /* DC mask ranges */
    uint8_t pidx[JPG_MAX_COMPS];                  /* permutation choice */
    uint8_t textured[JPG_MAX_COMPS];              /* flat blocks textured */
    uint64_t nflat[JPG_MAX_COMPS];                /* textured: wb * hb */
    const uint8_t *flat[JPG_MAX_COMPS];           /* textured: flat-block flags */
    uint64_t ndummy[JPG_MAX_COMPS];               /* padding blocks, verbatim */
    const int16_t *dummy[JPG_MAX_COMPS];
    /* Copies of the plaintext right after the head and at its end (codec/preview.h). */
    const uint8_t *ahead;
    size_t ahead_len;
    const uint8_t *tail;
    size_t tail_len;
    uint8_t *owned; /* body buffer when parsed */
} jpg_record;

#define JPG_RECORD_VERSION 2
#define JPG_MAX_FLAT (4u << 20) /* bound on flat-block flags per component */
#define JPG_DICT_HASH_BYTES 16

/* Serialises rec: version byte, hash of dict, varint body size, zlib(body) compressed
 * with dict as preset dictionary. */
int jpg_record_pack(const jpg_record *rec, const uint8_t *dict, size_t dict_len, jpg_buf *out);
/* Parses a record; rec->skel etc. point into rec->owned (free with jpg_record_free).
 * body_max bounds the inflated size.  -EBADMSG if malformed or dict does not match. */
int jpg_record_unpack(const uint8_t *p, size_t n, const uint8_t *dict, size_t dict_len,
                      uint64_t body_max, jpg_record *rec);
void jpg_record_free(jpg_record *rec);

/* Preset dictionary: the standard Huffman tables (DHT segment bytes) followed by the
 * given clear segments of the stored image.  Returns a malloc'ed buffer. */
uint8_t *jpg_record_dict(const uint8_t *clear, size_t clear_len, size_t *dict_len);

#endif

/* Internals shared by the PNG codec's files (not part of the codec's API).
 *
 *   png_parse.c  PNG structure: signature, chunk walk, IHDR, pass geometry
 *   png_rows.c   scanlines: filters, sample packing
 *   png_record.c the sealed regeneration record: serialisation, compression
 *   png.c        the stored format: encode, decode, peek, MAC
 */
#ifndef PXC_CODEC_PNG_INT_H
#define PXC_CODEC_PNG_INT_H

#include <stddef.h>
#include <stdint.h>

#define PNG_SIG_BYTES 8
#define PNG_IHDR_END 33 /* signature + IHDR chunk of 13 data bytes */
#define PNG_CHUNK_MAX 0x7fffffffu

extern const uint8_t png_signature[PNG_SIG_BYTES];

static inline uint32_t png_get32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static inline void png_put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* CRC of a chunk starting at chunk (length field), over type and data. */
uint32_t png_chunk_crc(const uint8_t *chunk, uint32_t len);

/* Image geometry from IHDR. */
typedef struct png_pass {
    uint32_t w, h;   /* pixels; a pass with w == 0 or h == 0 has no rows */
    size_t rowbytes; /* bytes per row without the filter byte */
} png_pass;

typedef struct png_geom {
    uint32_t width, height;
    uint8_t depth, color, interlace;
    unsigned channels; /* samples per pixel */
    unsigned bpp;      /* filter distance: bytes per complete pixel, at least 1 */
    unsigned npass;    /* 1, or 7 for Adam7 */
    png_pass pass[7];
    uint64_t rows;       /* rows with a filter byte, over all passes */
    uint64_t data_bytes; /* filtered image data: rows * (1 + rowbytes) summed */
    uint64_t samples;    /* samples over all passes */
} png_geom;

/* Validates the 13 IHDR data bytes and computes the geometry.  0, or -EINVAL with *why. */
int png_geom_from_ihdr(png_geom *g, const uint8_t ihdr[13], const char **why);

/* Where the parts of an original PNG are. */
typedef struct png_layout {
    size_t pre_start, pre_end;   /* chunks between IHDR and the first IDAT */
    size_t idat_start, idat_end; /* the run of IDAT chunks */
    size_t nidat;
    uint64_t idat_data;        /* sum of IDAT data lengths */
    size_t plte_off, plte_len; /* PLTE data in the original (plte_len 0: none) */
    size_t iend_end;           /* end of the IEND chunk; trailing bytes follow */
} png_layout;

/* Walks the chunks of plain[0..n).  0, or -EINVAL with *why. */
int png_walk(const uint8_t *p, size_t n, png_layout *lay, const char **why);

/* Rows: one pass after another, each row a filter byte then rowbytes bytes.  In place:
 * unfilters data[0..g->data_bytes), writing the filter types to filters[g->rows].
 * -EINVAL on an unknown filter type. */
int png_rows_unfilter(const png_geom *g, uint8_t *data, uint8_t *filters);
/* The inverse: filters unfiltered rows in place with the given types (the filter type
 * bytes in data are overwritten). */
void png_rows_filter(const png_geom *g, uint8_t *data, const uint8_t *filters);

/* Unpacks the samples of unfiltered rows into samples (uint8_t[] for depth <= 8,
 * uint16_t[] for depth 16), recording each row's padding bits in pad[g->rows] (zero
 * when the row has none) unless pad is NULL.  Returns 1 if some padding is nonzero. */
int png_rows_unpack(const png_geom *g, const uint8_t *data, void *samples, uint8_t *pad);
/* Packs samples into rows with the given filter type bytes (NULL: all 0) and padding
 * (NULL: zero); the rows are left unfiltered. */
void png_rows_pack(const png_geom *g, const void *samples, const uint8_t *filters,
                   const uint8_t *pad, uint8_t *data);

/* The regeneration record (see png.h). */
typedef struct png_record {
    int ihdr_crc_bad;
    uint32_t ihdr_crc;
    const uint8_t *pre;
    size_t pre_len;
    size_t nidat;
    uint32_t *idat_len;  /* nidat entries */
    size_t nbad;         /* IDAT chunks with a wrong CRC */
    uint32_t *bad_index; /* nbad entries */
    uint32_t *bad_crc;   /* nbad entries */
    const uint8_t *filters;
    uint64_t rows;
    const uint8_t *pad;   /* rows entries, or NULL */
    const uint8_t *extra; /* image data after the last row */
    size_t extra_len;
    const uint8_t *post; /* everything after the last IDAT */
    size_t post_len;
    /* Copies of the plaintext right after the head and at its end (codec/preview.h). */
    const uint8_t *ahead;
    size_t ahead_len;
    const uint8_t *tail;
    size_t tail_len;
    const uint8_t *recipe;
    size_t recipe_len;
    size_t body_len; /* png_record_read: size of *owned */
} png_record;

/* Serialises rec into *out (malloc'ed).  0 or -ENOMEM. */
int png_record_write(const png_record *rec, uint8_t **out, size_t *out_len);
/* Parses a record; rec's pointers point into in, or into *owned (malloc'ed: the
 * inflated body), or into arrays rec owns: release with png_record_free.  -EBADMSG if
 * the record is malformed, -ENOMEM. */
int png_record_read(png_record *rec, const uint8_t *in, size_t n, uint8_t **owned);
void png_record_free(png_record *rec);

#endif

/* Small helpers shared by the format codecs: little-endian fields of the pixcrypt
 * headers, and the "fail with a static reason" idiom of the encode functions. */
#ifndef PXC_CODEC_BYTES_H
#define PXC_CODEC_BYTES_H

#include <stdint.h>

/* Stores the low n bytes of v at p, least significant first. */
static inline void put_le(uint8_t *p, uint64_t v, unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

/* Reads an n-byte little-endian value at p. */
static inline uint64_t get_le(const uint8_t *p, unsigned n)
{
    uint64_t v = 0;
    for (unsigned i = n; i-- > 0;)
        v = v << 8 | p[i];
    return v;
}

/* Sets *why (when the caller asked for it) and returns err: `return codec_fail(why,
 * "truncated", -EINVAL);`. */
static inline int codec_fail(const char **why, const char *reason, int err)
{
    if (why)
        *why = reason;
    return err;
}

#endif

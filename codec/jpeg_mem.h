/* Whole-image coefficient arrays for libjpeg-turbo in memory of our own (jpeg_mem.c).
 * Internal to codec/jpeg*.c. */
#ifndef PXC_CODEC_JPEG_MEM_H
#define PXC_CODEC_JPEG_MEM_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <jpeglib.h>
#include <jerror.h>

/* Replaces the block-array methods of a freshly created (de)compress object (before
 * any array is requested): every virtual block array it requests, and every array of
 * jpg_mem_array, is one zero-filled mapping, rows blocksperrow blocks apart, all
 * resident from realize_virt_arrays on.  Uses cinfo->client_data.  0, or -ENOMEM. */
int jpg_mem_install(j_common_ptr cinfo);

/* A new zero-filled array of numrows rows of blocksperrow blocks, owned by cinfo
 * (freed with its image pool), for jpeg_write_coefficients of an object with
 * jpg_mem_install; NULL when out of memory. */
jvirt_barray_ptr jpg_mem_array(j_common_ptr cinfo, JDIMENSION blocksperrow, JDIMENSION numrows);

/* The coefficients of an array of ours: block (x, y) at (y * blocksperrow + x) * 64;
 * NULL before the array is realized. */
int16_t *jpg_mem_blocks(jvirt_barray_ptr a, JDIMENSION *blocksperrow, JDIMENSION *numrows);

/* The nth block array the library requested of cinfo (0 first), or NULL.  While
 * jpeg_read_coefficients runs (its progress monitor), before it returns them: the
 * decoder requests one array per component, in component order. */
jvirt_barray_ptr jpg_mem_requested(j_common_ptr cinfo, int nth);

#endif

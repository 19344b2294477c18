/* Whole-image coefficient arrays for libjpeg-turbo in memory of our own.
 *
 * jpeg_read_coefficients keeps every coefficient of the image in virtual arrays of the
 * library's memory manager: malloc'ed, and zeroed row by row as the decoder first
 * reaches each row.  For a 4000x3000 photo that is 72 MB faulted in 4 KiB pages and
 * written twice, a good part of the decode, and the arrays are neither contiguous nor
 * on huge pages, which the codec wants: it uses the original's blocks in place, at a
 * fixed stride, and the cipher's scattered block accesses would each miss the TLB.
 * Here every block array of an object is one anonymous mapping instead: zero-filled by
 * the kernel (all the pre-zeroing the library asks for), with transparent huge pages,
 * rows at a fixed stride, resident from realize_virt_arrays on, so that an access is a
 * pointer to its row.  The library's own methods still serve everything else (small
 * and large pools, sample arrays); freeing the image pool or the object frees ours too.
 *
 * The methods replaced are members of struct jpeg_memory_mgr in jpeglib.h; this keeps
 * their contract (libjpeg's structure.txt, "Memory manager services"): arrays come
 * from JPOOL_IMAGE and are requested before realize_virt_arrays, accesses stay inside
 * them (checked), and pre_zero arrays read as zero until written. */
#include "codec/jpeg_mem.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

/* Arrays at least this large are mapped (and aligned for huge pages); smaller ones
 * come from calloc. */
#define MAP_MIN_BYTES ((size_t)4 << 20)
#define HUGE_PAGE ((size_t)2 << 20)

typedef struct own_array {
    JBLOCKROW base;   /* NULL until realized */
    size_t map_bytes; /* length of the mapping at base, 0 if calloc'ed */
    JBLOCKARRAY rows;
    JDIMENSION blocksperrow, numrows;
    int nth; /* requested by the library: 0, 1, ... in request order; else -1 */
    struct own_array *next;
} own_array;

typedef struct jpg_mem {
    struct jpeg_memory_mgr lib; /* the library's methods */
    own_array *arrays;
    int requested;
} jpg_mem;

static jpg_mem *mem_of(j_common_ptr cinfo)
{
    return cinfo->client_data;
}

static void fail(j_common_ptr cinfo, int code)
{
    cinfo->err->msg_code = code;
    (*cinfo->err->error_exit)(cinfo);
}

/* Zero-filled memory, fresh from the kernel when large (so nothing zeroes it twice),
 * starting on a huge-page boundary. */
static int array_realize(own_array *a)
{
    size_t bytes = (size_t)a->blocksperrow * a->numrows * sizeof(JBLOCK);
    if (bytes < MAP_MIN_BYTES) {
        a->base = calloc(1, bytes ? bytes : 1);
    } else {
        size_t len = (bytes + HUGE_PAGE - 1) / HUGE_PAGE * HUGE_PAGE + HUGE_PAGE;
        uint8_t *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED)
            return -ENOMEM;
        uint8_t *at = (uint8_t *)(((uintptr_t)p + HUGE_PAGE - 1) & ~(uintptr_t)(HUGE_PAGE - 1));
        size_t keep = len - HUGE_PAGE;
        if (at > p)
            munmap(p, (size_t)(at - p));
        if (p + len > at + keep)
            munmap(at + keep, (size_t)(p + len - (at + keep)));
        madvise(at, keep, MADV_HUGEPAGE);
        a->base = (JBLOCKROW)(void *)at;
        a->map_bytes = keep;
    }
    a->rows = malloc(((size_t)a->numrows + 1) * sizeof *a->rows);
    if (!a->base || !a->rows)
        return -ENOMEM;
    for (JDIMENSION y = 0; y < a->numrows; y++)
        a->rows[y] = a->base + (size_t)y * a->blocksperrow;
    return 0;
}

static void arrays_free(jpg_mem *m)
{
    while (m->arrays) {
        own_array *a = m->arrays;
        m->arrays = a->next;
        if (a->map_bytes)
            munmap(a->base, a->map_bytes);
        else
            free(a->base);
        free(a->rows);
        free(a);
    }
}

static own_array *array_new(jpg_mem *m, JDIMENSION blocksperrow, JDIMENSION numrows, int nth)
{
    own_array *a = calloc(1, sizeof *a);
    if (!a)
        return NULL;
    a->blocksperrow = blocksperrow;
    a->numrows = numrows;
    a->nth = nth;
    a->next = m->arrays;
    m->arrays = a;
    return a;
}

static jvirt_barray_ptr request_barray(j_common_ptr cinfo, int pool_id, boolean pre_zero,
                                       JDIMENSION blocksperrow, JDIMENSION numrows,
                                       JDIMENSION maxaccess)
{
    (void)pre_zero; /* always zero */
    (void)maxaccess;
    if (pool_id != JPOOL_IMAGE)
        fail(cinfo, JERR_BAD_POOL_ID);
    jpg_mem *m = mem_of(cinfo);
    own_array *a = array_new(m, blocksperrow, numrows, m->requested++);
    if (!a)
        fail(cinfo, JERR_OUT_OF_MEMORY);
    return (jvirt_barray_ptr)(void *)a;
}

static void realize_arrays(j_common_ptr cinfo)
{
    jpg_mem *m = mem_of(cinfo);
    (*m->lib.realize_virt_arrays)(cinfo);
    for (own_array *a = m->arrays; a; a = a->next)
        if (!a->base && array_realize(a) != 0)
            fail(cinfo, JERR_OUT_OF_MEMORY);
}

static JBLOCKARRAY access_barray(j_common_ptr cinfo, jvirt_barray_ptr ptr, JDIMENSION start_row,
                                 JDIMENSION num_rows, boolean writable)
{
    (void)writable;
    own_array *a = (own_array *)(void *)ptr;
    if (!a->rows || start_row > a->numrows || num_rows > a->numrows - start_row)
        fail(cinfo, JERR_BAD_VIRTUAL_ACCESS);
    return a->rows + start_row;
}

static void free_pool(j_common_ptr cinfo, int pool_id)
{
    jpg_mem *m = mem_of(cinfo);
    if (pool_id == JPOOL_IMAGE) {
        arrays_free(m);
        m->requested = 0;
    }
    (*m->lib.free_pool)(cinfo, pool_id);
}

static void self_destruct(j_common_ptr cinfo)
{
    jpg_mem *m = mem_of(cinfo);
    void (*lib_destruct)(j_common_ptr) = m->lib.self_destruct;
    arrays_free(m);
    free(m);
    cinfo->client_data = NULL;
    (*lib_destruct)(cinfo);
}

int jpg_mem_install(j_common_ptr cinfo)
{
    jpg_mem *m = calloc(1, sizeof *m);
    if (!m)
        return -ENOMEM;
    m->lib = *cinfo->mem;
    cinfo->client_data = m;
    cinfo->mem->request_virt_barray = request_barray;
    cinfo->mem->realize_virt_arrays = realize_arrays;
    cinfo->mem->access_virt_barray = access_barray;
    cinfo->mem->free_pool = free_pool;
    cinfo->mem->self_destruct = self_destruct;
    return 0;
}

jvirt_barray_ptr jpg_mem_array(j_common_ptr cinfo, JDIMENSION blocksperrow, JDIMENSION numrows)
{
    jpg_mem *m = mem_of(cinfo);
    own_array *a = array_new(m, blocksperrow, numrows, -1);
    if (!a || array_realize(a) != 0)
        return NULL; /* a stays listed: freed with the others */
    return (jvirt_barray_ptr)(void *)a;
}

int16_t *jpg_mem_blocks(jvirt_barray_ptr ptr, JDIMENSION *blocksperrow, JDIMENSION *numrows)
{
    const own_array *a = (const own_array *)(const void *)ptr;
    *blocksperrow = a->blocksperrow;
    *numrows = a->numrows;
    return a->base ? a->base[0] : NULL;
}

jvirt_barray_ptr jpg_mem_requested(j_common_ptr cinfo, int nth)
{
    for (own_array *a = mem_of(cinfo)->arrays; a; a = a->next)
        if (a->nth == nth)
            return (jvirt_barray_ptr)(void *)a;
    return NULL;
}

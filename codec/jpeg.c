/* JPEG stored as JPEG: libjpeg-turbo glue, the stored container, encode / decode /
 * peek (stored format in jpeg.h). */
#include "codec/jpeg.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <jpeglib.h>

#include "codec/bytes.h"
#include "codec/jpeg_int.h"
#include "codec/jpeg_mem.h"
#include "codec/jpeg_stream.h"
#include "codec/metrics.h"
#include "codec/opaque.h"
#include "nn/nnvec.h"

#define FIXED_BYTES (OPAQUE_HEADER_BYTES + 8 + 4 + 4) /* in the first segment */
#define FIRST_DATA_MAX (JPEG_SEGMENT_DATA_MAX - FIXED_BYTES)
#define RECORD_NONCE_BYTES crypto_aead_xchacha20poly1305_ietf_NPUBBYTES
#define RECORD_TAG_BYTES crypto_aead_xchacha20poly1305_ietf_ABYTES
#define RECORD_MAX (256u << 20)

/* ---- libjpeg-turbo glue ---- */

typedef struct jerr {
    struct jpeg_error_mgr pub;
    jmp_buf jb;
} jerr;

static void on_error(j_common_ptr c)
{
    longjmp(((jerr *)c->err)->jb, 1);
}

static void on_message(j_common_ptr c)
{
    (void)c;
}

/* A thread that works on the coefficients while they are read: told, through pg, the
 * rows of blocks of each component that are final, once coef points at them. */
typedef struct jfollow {
    const jpg_frame *f; /* the frame as jpg_parse read it */
    jpg_progress *pg;
    int16_t **coef; /* jpg_coefs set at the first row */
    int ready, failed;
    uint32_t rows[JPG_MAX_COMPS];
} jfollow;

typedef struct jreader {
    struct jpeg_decompress_struct d; /* first: callbacks get it as the reader */
    jerr e;
    jvirt_barray_ptr *arrays;
    int live;
    struct jpeg_progress_mgr pm;
    jfollow *follow;
} jreader;

static int geometry_matches(const jreader *r, const jpg_frame *f);

/* libjpeg's progress monitor, called before each row of MCUs it reads (input_iMCU_row
 * rows are complete).  The first call finds the arrays (the decoder requests one per
 * component, in order) and checks that libjpeg reads the frame the follower expects,
 * so that it never reads outside them.  Only a single sequential scan completes rows
 * once and for all in raster order: with several scans, rows are published when the
 * whole file is read (jreader_open). */
static void on_rows(j_common_ptr cinfo)
{
    jreader *r = (jreader *)(void *)cinfo;
    jfollow *fw = r->follow;
    if (fw->failed)
        return;
    const jpg_frame *f = fw->f;
    if (!fw->ready) {
        int ok = geometry_matches(r, f);
        for (int c = 0; c < f->ncomp && ok; c++) {
            JDIMENSION bpr = 0, nr = 0;
            jvirt_barray_ptr a = jpg_mem_requested(cinfo, c);
            fw->coef[c] = a ? jpg_mem_blocks(a, &bpr, &nr) : NULL;
            ok = fw->coef[c] && bpr == f->comp[c].pw && nr == f->comp[c].ph;
        }
        if (!ok) {
            fw->failed = 1;
            jpg_progress_fail(fw->pg);
            return;
        }
        fw->ready = 1;
    }
    if (f->nscans != 1 || f->progressive)
        return;
    for (int c = 0; c < f->ncomp; c++) {
        const jpg_comp *cp = &f->comp[c];
        uint64_t rows = (uint64_t)r->d.input_iMCU_row * cp->v;
        rows = rows < cp->hb ? rows : cp->hb;
        if (rows > fw->rows[c])
            jpg_progress_publish(fw->pg, c, fw->rows[c] = (uint32_t)rows);
    }
}

/* Reads the coefficients of a JPEG into arrays of ours (jpeg_mem.h): p[0, n), or with
 * st, p[0, n) and then st past its SOI as it is written.  The reader stays open for
 * writing.  With fw, rows are published to a follower as they are read (on_rows), all
 * of them at the end. */
static int jreader_open(jreader *r, const uint8_t *p, size_t n, jpg_stream *st, jfollow *fw)
{
    memset(r, 0, sizeof *r);
    r->d.err = jpeg_std_error(&r->e.pub);
    r->e.pub.error_exit = on_error;
    r->e.pub.output_message = on_message;
    jpeg_create_decompress(&r->d);
    r->live = 1;
    if (jpg_mem_install((j_common_ptr)&r->d) != 0)
        return -ENOMEM;
    if (setjmp(r->e.jb))
        return -EINVAL;
    if (st)
        jpg_stream_src(&r->d, st, p, n, 2);
    else
        jpeg_mem_src(&r->d, p, (unsigned long)n);
    jpeg_read_header(&r->d, TRUE);
    if (fw) {
        r->follow = fw;
        r->pm.progress_monitor = on_rows;
        r->d.progress = &r->pm;
    }
    r->arrays = jpeg_read_coefficients(&r->d);
    if (!r->arrays)
        return -EINVAL;
    if (fw && fw->ready && !fw->failed) {
        /* The arrays it returns are the ones the follower was given. */
        for (int c = 0; c < fw->f->ncomp; c++) {
            JDIMENSION bpr, nr;
            if (jpg_mem_blocks(r->arrays[c], &bpr, &nr) != fw->coef[c])
                return -EINVAL;
        }
        for (int c = 0; c < fw->f->ncomp; c++)
            jpg_progress_publish(fw->pg, c, fw->f->comp[c].hb);
    }
    return 0;
}

static void jreader_close(jreader *r)
{
    if (r->live)
        jpeg_destroy_decompress(&r->d);
    r->live = 0;
}

/* libjpeg read the same frame as our parser. */
static int geometry_matches(const jreader *r, const jpg_frame *f)
{
    const struct jpeg_decompress_struct *d = &r->d;
    if (d->image_width != f->width || d->image_height != f->height ||
        d->num_components != f->ncomp || d->data_precision != 8 || d->arith_code)
        return 0;
    for (int c = 0; c < f->ncomp; c++) {
        const jpeg_component_info *ci = &d->comp_info[c];
        const jpg_comp *cp = &f->comp[c];
        if (ci->component_id != cp->id || ci->h_samp_factor != cp->h ||
            ci->v_samp_factor != cp->v || ci->width_in_blocks != cp->wb ||
            ci->height_in_blocks != cp->hb)
            return 0;
    }
    return 1;
}

static void coefs_free(jpg_coefs coef)
{
    for (int c = 0; c < JPG_MAX_COMPS; c++) {
        free(coef[c]);
        coef[c] = NULL;
    }
}

/* Coefficient arrays of large images are tens of MB touched once per decode: ask for
 * transparent huge pages, which cuts the page faults of a fresh array 512-fold. */
static int16_t *coef_alloc(size_t blocks)
{
    size_t bytes = blocks * 128 + 128, huge = (size_t)2 << 20;
    void *p = NULL;
    if (bytes < 2 * huge)
        return malloc(bytes);
    if (posix_memalign(&p, huge, bytes) != 0)
        return NULL;
    madvise(p, bytes, MADV_HUGEPAGE);
    return p;
}

/* The coefficients where libjpeg decoded them, in the reader's arrays (jpeg_mem.h):
 * contiguous, pw blocks a row, padding blocks that no scan codes left zero. */
static int coefs_of_reader(jreader *r, const jpg_frame *f, jpg_coefs coef)
{
    for (int c = 0; c < f->ncomp; c++) {
        JDIMENSION bpr = 0, nr = 0;
        coef[c] = jpg_mem_blocks(r->arrays[c], &bpr, &nr);
        if (!coef[c] || bpr != f->comp[c].pw || nr != f->comp[c].ph)
            return -EPROTO;
    }
    return 0;
}

/* Row pointers of coefficient arrays of the reader (all realized in memory by
 * jpeg_read_coefficients or jpg_mem_array, so the pointers stay valid until the reader
 * is closed). */
static int rows_of_arrays(jreader *r, jvirt_barray_ptr *arrays, const jpg_frame *f, jpg_rows *rows,
                          int writable)
{
    if (setjmp(r->e.jb))
        return -EINVAL;
    for (int c = 0; c < f->ncomp; c++) {
        const jpg_comp *cp = &f->comp[c];
        rows->row[c] = malloc(((size_t)cp->ph + 1) * sizeof *rows->row[c]);
        if (!rows->row[c])
            return -ENOMEM;
        for (uint32_t y = 0; y < cp->ph; y++) {
            JBLOCKARRAY row = (*r->d.mem->access_virt_barray)((j_common_ptr)&r->d, arrays[c], y, 1,
                                                              writable ? TRUE : FALSE);
            rows->row[c][y] = (int16_t *)row[0];
        }
    }
    return 0;
}

/* Row pointers into contiguous arrays. */
static int rows_of_coefs(const jpg_frame *f, jpg_coefs coef, jpg_rows *rows)
{
    for (int c = 0; c < f->ncomp; c++) {
        const jpg_comp *cp = &f->comp[c];
        rows->row[c] = malloc(((size_t)cp->ph + 1) * sizeof *rows->row[c]);
        if (!rows->row[c])
            return -ENOMEM;
        for (uint32_t y = 0; y < cp->ph; y++)
            rows->row[c][y] = coef[c] + (size_t)y * cp->pw * 64;
    }
    return 0;
}

static void rows_free(jpg_rows *rows)
{
    for (int c = 0; c < JPG_MAX_COMPS; c++) {
        free(rows->row[c]);
        rows->row[c] = NULL;
    }
}

typedef struct memdest {
    unsigned char *p;
    unsigned long n;
} memdest;

/* Writes the (cipher) coefficients held by r as a new JPEG. */
/* Part of libjpeg's ABI (exported since 6.2, used by its own optimisation pass) but not
 * of jpeglib.h: the optimal table for given symbol frequencies (freq[0..256]). */
void jpeg_gen_optimal_table(j_compress_ptr cinfo, JHUFF_TBL *htbl, long freq[]);

/* Writes the cipher image, into out or st, one sequential scan with optimal Huffman
 * tables.  The tables come from our own count of the symbols (jpg_count_symbols,
 * several times faster than libjpeg's gathering pass) fed to libjpeg's own table
 * builder, so the output is the one optimize_coding would give, written in one pass.
 * With inside_ac, the AC symbols of the blocks inside the image are taken from it (per
 * component) instead of counted. */
static int write_image(jreader *r, jvirt_barray_ptr *arrays, const jpg_frame *f,
                       const jpg_rows *coefs, long (*inside_ac)[257], memdest *out, jpg_stream *st)
{
    /* 4 DC tables, then 4 AC tables; allocated before the setjmp so that it is freed */
    long(*freq)[257] = calloc(8, sizeof *freq);
    if (!freq)
        return -ENOMEM;
    struct jpeg_compress_struct c;
    jerr e;
    memset(&c, 0, sizeof c);
    c.err = jpeg_std_error(&e.pub);
    e.pub.error_exit = on_error;
    e.pub.output_message = on_message;
    jpeg_create_compress(&c);
    /* It reads arrays of ours (jpeg_mem.h). */
    if (jpg_mem_install((j_common_ptr)&c) != 0) {
        jpeg_destroy_compress(&c);
        free(freq);
        return -ENOMEM;
    }
    if (setjmp(e.jb)) {
        jpeg_destroy_compress(&c);
        free(freq);
        return -EPROTO;
    }
    if (st)
        jpg_stream_dest(&c, st);
    else
        jpeg_mem_dest(&c, &out->p, &out->n);
    jpeg_copy_critical_parameters(&r->d, &c);
    /* Always one sequential scan: decoding a progressive cipher image on every read
     * costs 2-3 times as much, and baseline does not reveal which the original was. */
    c.optimize_coding = FALSE;
    c.restart_interval = 0;
    int dc_tbl[JPG_MAX_COMPS] = {0}, ac_tbl[JPG_MAX_COMPS] = {0};
    if (c.num_components != f->ncomp) {
        free(freq);
        jpeg_destroy_compress(&c);
        return -EPROTO;
    }
    for (int ci = 0; ci < f->ncomp; ci++) {
        dc_tbl[ci] = c.comp_info[ci].dc_tbl_no & 3;
        ac_tbl[ci] = c.comp_info[ci].ac_tbl_no & 3;
    }
    int16_t *const *const rows[JPG_MAX_COMPS] = {coefs->row[0], coefs->row[1], coefs->row[2],
                                                 coefs->row[3]};
    jpg_count_symbols(f, rows, dc_tbl, ac_tbl, !inside_ac, freq, freq + 4);
    for (int ci = 0; inside_ac && ci < f->ncomp; ci++)
        for (int v = 0; v < 256; v++)
            freq[4 + ac_tbl[ci]][v] += inside_ac[ci][v];
    for (int ci = 0; ci < f->ncomp; ci++) {
        JHUFF_TBL **dt = &c.dc_huff_tbl_ptrs[dc_tbl[ci]], **at = &c.ac_huff_tbl_ptrs[ac_tbl[ci]];
        if (!*dt)
            *dt = jpeg_alloc_huff_table((j_common_ptr)&c);
        if (!*at)
            *at = jpeg_alloc_huff_table((j_common_ptr)&c);
    }
    /* After the allocations, which may longjmp: each used table once. */
    for (int t = 0; t < 8; t++) {
        int used = 0;
        for (int ci = 0; ci < f->ncomp; ci++)
            used |= t < 4 ? dc_tbl[ci] == t : ac_tbl[ci] == t - 4;
        if (used)
            jpeg_gen_optimal_table(&c, t < 4 ? c.dc_huff_tbl_ptrs[t] : c.ac_huff_tbl_ptrs[t - 4],
                                   freq[t]);
    }
    c.JFIF_major_version = 1;
    c.JFIF_minor_version = 1;
    c.density_unit = 0;
    c.X_density = 1;
    c.Y_density = 1;
    jpeg_write_coefficients(&c, arrays);
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
    free(freq);
    return 0;
}

/* Offset just past the first SOS segment of a JPEG written by libjpeg, or 0. */
static size_t first_sos_end(const uint8_t *p, size_t n)
{
    size_t pos = 2;
    while (pos + 4 <= n && p[pos] == 0xFF) {
        int m = p[pos + 1];
        size_t len = (size_t)p[pos + 2] << 8 | p[pos + 3];
        if (len < 2 || n - pos - 2 < len)
            return 0;
        pos += 2 + len;
        if (m == 0xDA)
            return pos;
    }
    return 0;
}

/* ---- container layout ---- */

/* Offset of the MAC segment for a record of L bytes. */
static uint64_t mac_segment_offset(uint64_t L)
{
    uint64_t c0 = L < FIRST_DATA_MAX ? L : FIRST_DATA_MAX;
    uint64_t rest = L - c0, pos = JPEG_RECORD_OFFSET + c0;
    uint64_t full = rest / JPEG_SEGMENT_DATA_MAX, tail = rest % JPEG_SEGMENT_DATA_MAX;
    pos += full * (4 + JPEG_SEGMENT_DATA_MAX);
    if (tail)
        pos += 4 + tail;
    return pos;
}

static void stored_mac(uint8_t mac[JPEG_MAC_BYTES], const uint8_t *p, size_t n, size_t mac_off,
                       const uint8_t key[PXC_KEY_BYTES])
{
    crypto_generichash_state st;
    crypto_generichash_init(&st, key, PXC_KEY_BYTES, JPEG_MAC_BYTES);
    crypto_generichash_update(&st, p, mac_off);
    crypto_generichash_update(&st, p + mac_off + JPEG_MAC_BYTES, n - mac_off - JPEG_MAC_BYTES);
    crypto_generichash_final(&st, mac, JPEG_MAC_BYTES);
}

int jpeg_codec_peek(const uint8_t *head, size_t n, jpeg_peek_info *out)
{
    memset(out, 0, sizeof *out);
    if (n < JPEG_PEEK_BYTES)
        return -ENODATA;
    if (head[0] != 0xFF || head[1] != 0xD8 || head[2] != 0xFF || head[3] != 0xEF)
        return -EINVAL;
    const uint8_t *h = head + JPEG_HEADER_OFFSET;
    if (pxc_stored_kind(h, OPAQUE_HEADER_BYTES) != PXC_KIND_JPEG)
        return -EINVAL;
    for (int k = 11; k < 16; k++)
        if (h[k] != 0)
            return -EINVAL;
    uint64_t L = get_le(head + JPEG_RECORD_LEN_OFFSET, 4);
    uint64_t c0 = L < FIRST_DATA_MAX ? L : FIRST_DATA_MAX;
    if (((size_t)head[4] << 8 | head[5]) != 2 + FIXED_BYTES + c0 ||
        L < RECORD_NONCE_BYTES + RECORD_TAG_BYTES + 1 || L > RECORD_MAX)
        return -EINVAL;
    out->version = (uint16_t)get_le(h + 8, 2);
    out->plain_size = get_le(head + JPEG_PLAIN_SIZE_OFFSET, 8);
    out->record_len = (uint32_t)L;
    out->head_bytes = get_le(head + JPEG_HEAD_BYTES_OFFSET, 4);
    if (out->head_bytes < mac_segment_offset(L) + 4 + JPEG_MAC_BYTES)
        return -EINVAL;
    memcpy(out->file_id, h + 16, PXC_FILE_ID_BYTES);
    memcpy(out->sealed, h + 32, PXC_SEALED_SECRETS_BYTES);
    memcpy(out->header_ad, h, sizeof out->header_ad);
    return 0;
}

int jpeg_codec_open_secrets(const jpeg_peek_info *info, const pxc_keys *keys, pxc_file_secrets *s)
{
    if (pxc_secrets_open(s, keys, info->sealed, info->header_ad, sizeof info->header_ad) != 0)
        return -EBADMSG;
    memcpy(s->file_id, info->file_id, PXC_FILE_ID_BYTES);
    return 0;
}

/* ---- decode ---- */

typedef struct front {
    jpeg_peek_info info;
    pxc_file_secrets secrets;
    size_t mac_off, image_off; /* MAC segment; cipher image (after its SOI) */
    jpg_record rec;
} front;

/* Header, secrets, (MAC if check_mac), record. */
static int open_front(front *fr, const uint8_t *p, size_t n, const pxc_keys *keys, int check_mac)
{
    memset(fr, 0, sizeof *fr);
    int rc = jpeg_codec_peek(p, n, &fr->info);
    if (rc == -ENODATA)
        return -EBADMSG;
    if (rc || fr->info.version != PXC_FORMAT_VERSION)
        return -EBADMSG;
    uint64_t L = fr->info.record_len;
    uint64_t mac_off = mac_segment_offset(L);
    fr->mac_off = (size_t)mac_off;
    fr->image_off = (size_t)mac_off + 4 + JPEG_MAC_BYTES;
    uint64_t H = fr->info.head_bytes;
    if (n < H || H > n)
        return check_mac ? -EBADMSG : -ENODATA;
    if (fr->image_off + 4 > H)
        return -EBADMSG;
    /* segment framing */
    uint64_t pos = JPEG_RECORD_OFFSET + (L < FIRST_DATA_MAX ? L : FIRST_DATA_MAX);
    uint64_t left = L - (L < FIRST_DATA_MAX ? L : FIRST_DATA_MAX);
    while (left) {
        uint64_t c = left < JPEG_SEGMENT_DATA_MAX ? left : JPEG_SEGMENT_DATA_MAX;
        if (p[pos] != 0xFF || p[pos + 1] != 0xEF ||
            ((uint64_t)p[pos + 2] << 8 | p[pos + 3]) != c + 2)
            return -EBADMSG;
        pos += 4 + c;
        left -= c;
    }
    if (p[mac_off] != 0xFF || p[mac_off + 1] != 0xEF || p[mac_off + 2] != 0 ||
        p[mac_off + 3] != 2 + JPEG_MAC_BYTES || p[fr->image_off] != 0xFF)
        return -EBADMSG;
    if (jpeg_codec_open_secrets(&fr->info, keys, &fr->secrets) != 0)
        return -EBADMSG;
    uint8_t key[PXC_KEY_BYTES];
    if (check_mac) {
        uint8_t mac[JPEG_MAC_BYTES];
        pxc_file_subkey(key, keys, &fr->secrets, PXC_SUBKEY_MAC);
        stored_mac(mac, p, n, fr->mac_off + 4, key);
        rc = crypto_verify_32(mac, p + fr->mac_off + 4) == 0 ? 0 : -EBADMSG;
        if (rc)
            goto out;
    }
    uint8_t *sealed = malloc(L), *plain = malloc(L);
    if (!sealed || !plain) {
        free(sealed);
        free(plain);
        rc = -ENOMEM;
        goto out;
    }
    /* gather */
    size_t got = 0;
    pos = JPEG_RECORD_OFFSET;
    size_t c = L < FIRST_DATA_MAX ? L : FIRST_DATA_MAX;
    memcpy(sealed, p + pos, c);
    got = c;
    pos += c;
    while (got < L) {
        c = L - got < JPEG_SEGMENT_DATA_MAX ? L - got : JPEG_SEGMENT_DATA_MAX;
        memcpy(sealed + got, p + pos + 4, c);
        got += c;
        pos += 4 + c;
    }
    unsigned long long plen = 0;
    pxc_file_subkey(key, keys, &fr->secrets, PXC_SUBKEY_METADATA);
    if (crypto_aead_xchacha20poly1305_ietf_decrypt(plain, &plen, NULL, sealed + RECORD_NONCE_BYTES,
                                                   L - RECORD_NONCE_BYTES, p, JPEG_RECORD_OFFSET,
                                                   sealed, key) != 0) {
        rc = -EBADMSG;
    } else {
        size_t dlen = 0;
        uint8_t *dict = jpg_record_dict(p + fr->image_off, (size_t)H - fr->image_off, &dlen);
        uint64_t body_max = fr->info.plain_size + (uint64_t)JPEG_CODEC_MAX_BLOCKS * 128 + 4096 +
                            PXC_PREVIEW_AHEAD_MAX + PXC_PREVIEW_TAIL + PXC_PREVIEW_PAGE;
        rc = dict ? jpg_record_unpack(plain, plen, dict, dlen, body_max, &fr->rec) : -ENOMEM;
        free(dict);
    }
    sodium_memzero(plain, L);
    free(sealed);
    free(plain);
out:
    sodium_memzero(key, sizeof key);
    return rc;
}

static void close_front(front *fr)
{
    jpg_record_free(&fr->rec);
    sodium_memzero(&fr->secrets, sizeof fr->secrets);
}

int jpeg_codec_decode_head(const uint8_t *stored, size_t n, const pxc_keys *keys, uint8_t **head,
                           size_t *head_len, pxc_plain_tail *tail)
{
    *head = NULL;
    *head_len = 0;
    if (tail)
        memset(tail, 0, sizeof *tail);
    if (n < JPEG_PEEK_BYTES)
        return -ENODATA;
    front fr;
    int rc = open_front(&fr, stored, n, keys, 0);
    if (rc) {
        close_front(&fr);
        return rc;
    }
    jpg_frame f;
    if (jpg_parse(fr.rec.skel, fr.rec.skel_len, 1, &f, NULL) != 0) {
        close_front(&fr);
        return -EBADMSG;
    }
    size_t len = f.scans[0].skel_pos;
    jpg_frame_free(&f);
    const jpg_record *rec = &fr.rec;
    if (len + rec->ahead_len + rec->tail_len > fr.info.plain_size) {
        close_front(&fr);
        return -EBADMSG;
    }
    *head = malloc(len + rec->ahead_len ? len + rec->ahead_len : 1);
    uint8_t *end = tail && rec->tail_len ? malloc(rec->tail_len) : NULL;
    if (!*head || (tail && rec->tail_len && !end)) {
        free(*head);
        *head = NULL;
        free(end);
        close_front(&fr);
        return -ENOMEM;
    }
    memcpy(*head, rec->skel, len);
    if (rec->ahead_len)
        memcpy(*head + len, rec->ahead, rec->ahead_len);
    *head_len = len + rec->ahead_len;
    if (end) {
        memcpy(end, rec->tail, rec->tail_len);
        tail->data = end;
        tail->len = rec->tail_len;
        tail->off = fr.info.plain_size - rec->tail_len;
    }
    close_front(&fr);
    return 0;
}

/* Original file from skeleton, coefficients and patches. */
static int regenerate(const jpg_frame *f, const jpg_record *rec, const jpg_coefs coef, uint8_t *out,
                      size_t out_len, jpg_progress *gate)
{
    size_t o = 0, sk = 0;
    jpg_buf b = {0};
    int rc = 0;
    for (int i = 0; i < f->nscans && rc == 0; i++) {
        const jpg_scan *s = &f->scans[i];
        size_t piece = s->skel_pos - sk;
        if (out_len - o < piece) {
            rc = -EBADMSG;
            break;
        }
        memcpy(out + o, rec->skel + sk, piece);
        o += piece;
        sk = s->skel_pos;
        b.len = 0;
        if (jpg_buf_reserve(&b, rec->ecs_len[i] + 65536) != 0) {
            rc = -ENOMEM;
            break;
        }
        rc = jpg_scan_encode(f, s, coef, &b, gate, NULL);
        if (rc == 0 && (b.len != rec->ecs_len[i] || out_len - o < b.len))
            rc = -EBADMSG;
        if (rc)
            break;
        for (uint32_t k = rec->patch_start[i]; k < rec->patch_start[i + 1]; k++)
            b.p[rec->patches[k].off] = rec->patches[k].byte;
        memcpy(out + o, b.p, b.len);
        o += b.len;
    }
    if (rc == 0) {
        if (out_len - o != rec->skel_len - sk)
            rc = -EBADMSG;
        else
            memcpy(out + o, rec->skel + sk, rec->skel_len - sk);
    }
    jpg_buf_free(&b);
    return rc;
}

/* Whether the sealed copies are what the image regenerates. */
static int preview_matches(const jpg_record *rec, size_t head_len, const uint8_t *plain, size_t n)
{
    return head_len <= n && rec->ahead_len <= n - head_len &&
           rec->tail_len <= n - head_len - rec->ahead_len &&
           (!rec->ahead_len || memcmp(plain + head_len, rec->ahead, rec->ahead_len) == 0) &&
           (!rec->tail_len || memcmp(plain + n - rec->tail_len, rec->tail, rec->tail_len) == 0);
}

/* What encode expects the verifying decode to find (see verify_stored). */
typedef struct jpg_expect {
    const jpg_frame *f;     /* the original's frame, parsed from the whole file */
    const jpg_rows *cipher; /* the cipher coefficients written, padding blocks included */
    const jpg_cipher_params *cp;
    int16_t *const *dummy; /* the original's padding blocks */
    const uint64_t *ndummy;
    const jpg_buf *skel;
    const size_t *ecs_len;
    const uint32_t *patch_start;
    const jpg_buf *patches;
    int decoded; /* the coefficients libjpeg reads were compared already (read_back) */
} jpg_expect;

/* Whether libjpeg read the cipher coefficients: every block inside the image (libjpeg
 * writes its own padding blocks). */
static int same_blocks(jreader *r, const jpg_frame *f, const jpg_rows *cipher)
{
    jpg_rows got = {0};
    int rc = rows_of_arrays(r, r->arrays, f, &got, 0);
    for (int c = 0; c < f->ncomp && rc == 0; c++)
        for (uint32_t y = 0; y < f->comp[c].hb && rc == 0; y++)
            if (memcmp(got.row[c][y], cipher->row[c][y], (size_t)f->comp[c].wb * 128) != 0)
                rc = -EPROTO;
    rows_free(&got);
    return rc;
}

static int same_scans(const jpg_frame *a, const jpg_frame *b)
{
    if (a->progressive != b->progressive || a->ncomp != b->ncomp || a->mcux != b->mcux ||
        a->mcuy != b->mcuy || a->nscans != b->nscans ||
        memcmp(a->comp, b->comp, sizeof a->comp) != 0)
        return 0;
    for (int i = 0; i < a->nscans; i++) {
        const jpg_scan *x = &a->scans[i], *y = &b->scans[i];
        if (x->ncomp != y->ncomp || memcmp(x->comp, y->comp, sizeof x->comp) != 0 ||
            x->ss != y->ss || x->se != y->se || x->ah != y->ah || x->al != y->al ||
            x->restart != y->restart)
            return 0;
        for (int c = 0; c < x->ncomp; c++)
            if (memcmp(&x->dc[c], &y->dc[c], sizeof x->dc[c]) != 0 ||
                memcmp(&x->ac[c], &y->ac[c], sizeof x->ac[c]) != 0)
                return 0;
    }
    return 1;
}

/* Whether the opened record and frame are the ones encode recorded. */
static int same_record(const jpg_record *rec, const jpg_frame *f, const jpg_expect *ex)
{
    if (rec->skel_len != ex->skel->len || memcmp(rec->skel, ex->skel->p, rec->skel_len) != 0 ||
        !same_scans(f, ex->f))
        return 0;
    for (int i = 0; i <= rec->nscans; i++)
        if (rec->patch_start[i] != ex->patch_start[i] ||
            (i < rec->nscans && rec->ecs_len[i] != ex->ecs_len[i]))
            return 0;
    size_t np = rec->patch_start[rec->nscans];
    if (np * sizeof(jpg_patch) != ex->patches->len ||
        (np != 0 && memcmp(rec->patches, ex->patches->p, ex->patches->len) != 0))
        return 0;
    for (int c = 0; c < f->ncomp; c++) {
        const jpg_cipher_params *cp = ex->cp;
        uint64_t nblocks = (uint64_t)f->comp[c].wb * f->comp[c].hb;
        if (rec->lo[c] != cp->lo[c] || rec->hi[c] != cp->hi[c] || rec->pidx[c] != cp->pidx[c] ||
            rec->textured[c] != cp->textured[c] || rec->ndummy[c] != ex->ndummy[c] ||
            (cp->textured[c] && memcmp(rec->flat[c], cp->flat[c], nblocks) != 0) ||
            memcmp(rec->dummy[c], ex->dummy[c], ex->ndummy[c] * 128) != 0)
            return 0;
    }
    return 1;
}

/* Images with fewer blocks than this decipher and regenerate one after the other. */
#define PIPELINE_MIN_BLOCKS 65536u

typedef struct decipher_job {
    const jpg_frame *f;
    const jpg_rows *src, *dst;
    jpg_cipher_params *cp;
    uint8_t perm[PXC_KEY_BYTES], diff[PXC_KEY_BYTES];
    int rc;
} decipher_job;

/* Deciphers the stored coefficients; publishes every component complete, or failure. */
static void *decipher_run(void *arg)
{
    decipher_job *j = arg;
    j->rc = jpg_cipher_run(1, j->f, j->src, j->dst, j->cp, j->perm, j->diff);
    jpg_progress *pg = j->cp->progress;
    if (pg && j->rc)
        jpg_progress_fail(pg);
    for (int c = 0; pg && j->rc == 0 && c < j->f->ncomp; c++)
        jpg_progress_publish(pg, c, j->f->comp[c].hb);
    return NULL;
}

/* Decodes a stored file.  With ex NULL, regenerates the original.  With ex, verifies
 * instead that everything regeneration would start from -- the sealed record, cipher
 * parameters and padding blocks included, and the cipher coefficients libjpeg reads
 * from the stored bytes -- is what encode had: encode already checked that those
 * coefficients decipher to the original's (check_inverse) and that regeneration from
 * the original's gives the original bytes (record_scans). */
static int decode_stored(const uint8_t *stored, size_t n, const pxc_keys *keys,
                         const jpg_expect *ex, uint8_t **plain, size_t *plain_len)
{
    *plain = NULL;
    *plain_len = 0;
    front fr;
    jpg_frame f = {0};
    jpg_coefs coef = {0};
    jreader r = {0};
    jpg_rows src = {0}, dst = {0};
    uint8_t *out = NULL;
    int rc = open_front(&fr, stored, n, keys, 1);
    if (rc)
        goto done;
    const jpg_record *rec = &fr.rec;
    rc = -EBADMSG;
    if (jpg_parse(rec->skel, rec->skel_len, 1, &f, NULL) != 0 || f.nscans != rec->nscans ||
        f.ncomp != rec->ncomp)
        goto done;
    uint64_t total = rec->skel_len;
    for (int i = 0; i < rec->nscans; i++)
        total += rec->ecs_len[i];
    if (total != fr.info.plain_size || total > SIZE_MAX)
        goto done;
    for (int c = 0; c < f.ncomp; c++)
        if (rec->ndummy[c] !=
            (uint64_t)f.comp[c].pw * f.comp[c].ph - (uint64_t)f.comp[c].wb * f.comp[c].hb)
            goto done;
    if (ex && ex->decoded) {
        rc = same_record(rec, &f, ex) ? 0 : -EPROTO;
        goto done;
    }
    if (jreader_open(&r, stored, n, NULL, NULL) != 0 || !geometry_matches(&r, &f))
        goto done;
    if (ex) {
        rc = same_record(rec, &f, ex) ? same_blocks(&r, &f, ex->cipher) : -EPROTO;
        goto done;
    }
    for (int c = 0; c < f.ncomp; c++) {
        coef[c] = coef_alloc((size_t)f.comp[c].pw * f.comp[c].ph);
        if (!coef[c]) {
            rc = -ENOMEM;
            goto done;
        }
    }
    for (int c = 0; c < f.ncomp; c++) {
        const jpg_comp *cp = &f.comp[c];
        uint64_t k = 0;
        for (uint32_t y = 0; y < cp->ph; y++)
            for (uint32_t x = y < cp->hb ? cp->wb : 0; x < cp->pw; x++, k++)
                memcpy(coef[c] + ((size_t)y * cp->pw + x) * 64, rec->dummy[c] + k * 64, 128);
    }
    jpg_cipher_params cp = {0};
    for (int c = 0; c < f.ncomp; c++) {
        cp.lo[c] = rec->lo[c];
        cp.hi[c] = rec->hi[c];
        cp.pidx[c] = rec->pidx[c];
        cp.textured[c] = rec->textured[c];
        cp.flat[c] = (uint8_t *)(uintptr_t)rec->flat[c];
        if (rec->textured[c] && rec->nflat[c] != (uint64_t)f.comp[c].wb * f.comp[c].hb) {
            rc = -EBADMSG;
            goto done;
        }
    }
    rc = rows_of_arrays(&r, r.arrays, &f, &src, 0);
    if (rc == 0)
        rc = rows_of_coefs(&f, coef, &dst);
    if (rc == 0 && !(out = malloc(total ? total : 1)))
        rc = -ENOMEM;
    if (rc)
        goto done;
    decipher_job dj = {&f, &src, &dst, &cp, {0}, {0}, 0};
    pxc_file_subkey(dj.perm, keys, &fr.secrets, PXC_SUBKEY_PERMUTATION);
    pxc_file_subkey(dj.diff, keys, &fr.secrets, PXC_SUBKEY_DIFFUSION);
    /* Large images: the encoder regenerating the original follows the decipher, row of
     * blocks by row, on this thread. */
    jpg_progress pg;
    pthread_t th;
    int threaded = f.real_blocks >= PIPELINE_MIN_BLOCKS;
    if (threaded) {
        jpg_progress_init(&pg);
        cp.progress = &pg;
        threaded = pthread_create(&th, NULL, decipher_run, &dj) == 0;
        if (!threaded)
            jpg_progress_destroy(&pg);
    }
    if (!threaded) {
        cp.progress = NULL;
        decipher_run(&dj);
    }
    rc = threaded || dj.rc == 0 ? regenerate(&f, rec, coef, out, total, threaded ? &pg : NULL) : 0;
    if (threaded) {
        pthread_join(th, NULL);
        jpg_progress_destroy(&pg);
    }
    sodium_memzero(dj.perm, sizeof dj.perm);
    sodium_memzero(dj.diff, sizeof dj.diff);
    if (dj.rc)
        rc = dj.rc == -ENOMEM ? -ENOMEM : -EBADMSG;
    if (rc == -EPROTO)
        rc = -EBADMSG;
    /* The sealed copies must be what the image regenerates. */
    if (rc == 0 && !preview_matches(rec, f.scans[0].skel_pos, out, total))
        rc = -EBADMSG;
    if (rc == 0) {
        *plain = out;
        *plain_len = total;
        out = NULL;
    }
done:
    free(out);
    rows_free(&src);
    rows_free(&dst);
    jreader_close(&r);
    coefs_free(coef);
    jpg_frame_free(&f);
    close_front(&fr);
    return rc;
}

int jpeg_codec_decode(const uint8_t *stored, size_t n, const pxc_keys *keys, uint8_t **plain,
                      size_t *plain_len)
{
    return decode_stored(stored, n, keys, NULL, plain, plain_len);
}

/* ---- encode ---- */

typedef struct enc_state {
    jpg_frame f;
    jreader r;
    jpg_coefs coef;                         /* the original's, in r's arrays */
    jvirt_barray_ptr cipher[JPG_MAX_COMPS]; /* the cipher's, arrays of r */
    jpg_buf skel, rec_plain, regen;
    size_t *ecs_len;
    uint32_t *patch_start;
    jpg_buf patches;      /* jpg_patch array */
    long (*ac_hist)[257]; /* sequential original: AC symbols inside, per component */
    long cipher_ac[JPG_MAX_COMPS][257];
    int16_t *dummy[JPG_MAX_COMPS];
    uint64_t ndummy[JPG_MAX_COMPS];
    jpg_cipher_params cp;
    uint16_t qwbuf[JPG_MAX_COMPS][64];
    jpg_rows src, dst;
    memdest img;
    uint8_t *head; /* the stored file up to the cipher image, MAC zero */
    size_t head_len, mac_at;
    uint8_t *out;
    pxc_file_secrets secrets; /* the caller's, with the neural key vector of this image */
} enc_state;

static void enc_free(enc_state *e)
{
    jreader_close(&e->r);
    jpg_frame_free(&e->f);
    jpg_buf_free(&e->skel);
    if (e->rec_plain.p)
        sodium_memzero(e->rec_plain.p, e->rec_plain.cap);
    jpg_buf_free(&e->rec_plain);
    jpg_buf_free(&e->regen);
    jpg_buf_free(&e->patches);
    free(e->ecs_len);
    free(e->patch_start);
    free(e->ac_hist);
    for (int c = 0; c < JPG_MAX_COMPS; c++) {
        free(e->dummy[c]);
        free(e->cp.flat[c]);
    }
    rows_free(&e->src);
    rows_free(&e->dst);
    free(e->img.p);
    free(e->head);
    free(e->out);
    sodium_memzero(&e->secrets, sizeof e->secrets);
}

/* Regenerates every scan from the original coefficients and records the differences;
 * with gate, following the decode that fills them. */
static int record_scans(enc_state *e, const uint8_t *plain, jpg_progress *gate, const char **why)
{
    jpg_frame *f = &e->f;
    e->ecs_len = calloc((size_t)f->nscans, sizeof *e->ecs_len);
    e->patch_start = calloc((size_t)f->nscans + 1, sizeof *e->patch_start);
    if (!e->ecs_len || !e->patch_start)
        return codec_fail(why, "out of memory", -ENOMEM);
    /* A sequential original codes every block's AC values once, which gives the cipher
     * image's AC symbols for free (cipher_inside_ac). */
    int once = !f->progressive;
    for (int c = 0; c < f->ncomp && once; c++) {
        int n = 0;
        for (int i = 0; i < f->nscans; i++)
            for (int j = 0; j < f->scans[i].ncomp; j++)
                n += f->scans[i].comp[j] == c;
        once = n == 1;
    }
    if (once && !(e->ac_hist = calloc((size_t)f->ncomp, sizeof *e->ac_hist)))
        return codec_fail(why, "out of memory", -ENOMEM);
    uint32_t np = 0;
    for (int i = 0; i < f->nscans; i++) {
        const jpg_scan *s = &f->scans[i];
        e->regen.len = 0;
        if (jpg_buf_reserve(&e->regen, s->ecs_len + 65536) != 0)
            return codec_fail(why, "out of memory", -ENOMEM);
        int rc = jpg_scan_encode(f, s, e->coef, &e->regen, gate, e->ac_hist);
        if (rc == -ENOMEM)
            return codec_fail(why, "out of memory", rc);
        if (rc || e->regen.len != s->ecs_len)
            return codec_fail(why, "entropy-coded data not reproducible", -EPROTO);
        const uint8_t *o = plain + s->ecs_off;
        size_t limit = s->ecs_len / 32 + 16, count = 0;
        e->patch_start[i] = np;
        for (size_t k = 0; k < s->ecs_len; k++) {
            if (e->regen.p[k] == o[k])
                continue;
            if (++count > limit)
                return codec_fail(why, "entropy-coded data not reproducible", -EPROTO);
            jpg_patch pt = {(uint32_t)k, o[k]};
            jpg_buf_put(&e->patches, &pt, sizeof pt);
            np++;
        }
        e->ecs_len[i] = s->ecs_len;
    }
    e->patch_start[f->nscans] = np;
    return e->patches.err ? codec_fail(why, "out of memory", -ENOMEM) : 0;
}

static int dc_ranges(enc_state *e, const char **why)
{
    const jpg_frame *f = &e->f;
    for (int c = 0; c < f->ncomp; c++) {
        const jpg_comp *cp = &f->comp[c];
        const JQUANT_TBL *qt = e->r.d.comp_info[c].quant_table;
        if (!qt)
            qt = e->r.d.quant_tbl_ptrs[cp->tq];
        int q = qt && qt->quantval[0] ? qt->quantval[0] : 1;
        for (int z = 0; z < 64; z++)
            e->qwbuf[c][z] = qt ? qt->quantval[z] : 1;
        e->cp.qw[c] = e->qwbuf[c];
        int nlo = -((1024 + q - 1) / q), nhi = 1023 / q;
        int lo = 32767, hi = -32768;
        for (uint32_t y = 0; y < cp->hb; y++)
            for (uint32_t x = 0; x < cp->wb; x++) {
                int d = e->coef[c][((size_t)y * cp->pw + x) * 64];
                if (d < lo)
                    lo = d;
                if (d > hi)
                    hi = d;
            }
        if (nlo < lo)
            lo = nlo;
        if (nhi > hi)
            hi = nhi;
        if (hi - lo > 2047)
            return codec_fail(why, "DC values out of the legal range", -ENOTSUP);
        e->cp.lo[c] = (int16_t)lo;
        e->cp.hi[c] = (int16_t)hi;
    }
    return 0;
}

static int take_padding(enc_state *e, const char **why)
{
    const jpg_frame *f = &e->f;
    for (int c = 0; c < f->ncomp; c++) {
        const jpg_comp *cp = &f->comp[c];
        uint64_t nd = (uint64_t)cp->pw * cp->ph - (uint64_t)cp->wb * cp->hb;
        e->ndummy[c] = nd;
        e->dummy[c] = malloc(nd * 128 + 1);
        if (!e->dummy[c])
            return codec_fail(why, "out of memory", -ENOMEM);
        uint64_t k = 0;
        for (uint32_t y = 0; y < cp->ph; y++)
            for (uint32_t x = y < cp->hb ? cp->wb : 0; x < cp->pw; x++, k++)
                memcpy(e->dummy[c] + k * 64, e->coef[c] + ((size_t)y * cp->pw + x) * 64, 128);
    }
    return 0;
}

/* Which components get textured flat blocks, their flags and the texture magnitude: the
 * first component (luma, or the first of RGB / CMYK), and every component of images
 * not in YCbCr / YCCK.  The magnitude makes the dequantised value about 768, a pixel
 * standard deviation of about 96 over the block (clipped at black and white):
 * enough variance that flat regions of the original do not match flat regions of
 * noise in SSIM's low-variance terms. */
static int textures(enc_state *e, const char **why)
{
    const jpg_frame *f = &e->f;
    J_COLOR_SPACE cs = e->r.d.jpeg_color_space;
    for (int c = 0; c < f->ncomp; c++) {
        const jpg_comp *cp = &f->comp[c];
        if (c > 0 && (cs == JCS_YCbCr || cs == JCS_YCCK))
            continue;
        size_t n = (size_t)cp->wb * cp->hb;
        uint8_t *fl = e->cp.flat[c] = malloc(n + 1);
        if (!fl)
            return codec_fail(why, "out of memory", -ENOMEM);
        e->cp.textured[c] = 1;
        for (uint32_t y = 0; y < cp->hb; y++)
            for (uint32_t x = 0; x < cp->wb; x++) {
                const int16_t *b = e->coef[c] + ((size_t)y * cp->pw + x) * 64;
                int any = 0;
                for (int z = 1; z < 64; z++)
                    any |= b[z];
                fl[(size_t)y * cp->wb + x] = !any;
            }
        unsigned q = ((unsigned)e->qwbuf[c][1] + e->qwbuf[c][8] + 1) / 2;
        unsigned t = (768 + q / 2) / (q ? q : 1);
        e->cp.tex[c] = (int16_t)(t < 1 ? 1 : t > 1023 ? 1023 : t);
    }
    return 0;
}

/* The stored file up to the cipher image (after its SOI), in e->head: SOI, header,
 * sealed record and the MAC segment, whose MAC is left zero (assemble_tail).  Needs
 * only the cipher image up to its first SOS (img, len bytes). */
static int assemble_head(enc_state *e, const uint8_t *plain, size_t n, const pxc_keys *keys,
                         const uint8_t *img, size_t len, const char **why)
{
    const pxc_file_secrets *s = &e->secrets;
    size_t sos_end = first_sos_end(img, len);
    if (len < 4 || img[0] != 0xFF || img[1] != 0xD8 || sos_end == 0)
        return codec_fail(why, "cipher image not written", -EPROTO);
    /* record */
    jpg_record rec = {0};
    rec.skel = e->skel.p;
    rec.skel_len = e->skel.len;
    rec.nscans = e->f.nscans;
    rec.ecs_len = e->ecs_len;
    rec.patch_start = e->patch_start;
    rec.patches = (jpg_patch *)e->patches.p;
    rec.ncomp = e->f.ncomp;
    for (int c = 0; c < e->f.ncomp; c++) {
        rec.lo[c] = e->cp.lo[c];
        rec.hi[c] = e->cp.hi[c];
        rec.pidx[c] = e->cp.pidx[c];
        rec.textured[c] = e->cp.textured[c];
        rec.flat[c] = e->cp.flat[c];
        rec.nflat[c] = (uint64_t)e->f.comp[c].wb * e->f.comp[c].hb;
        rec.ndummy[c] = e->ndummy[c];
        rec.dummy[c] = e->dummy[c];
    }
    uint64_t head_len = e->f.scans[0].skel_pos, ahead_end, tail_off;
    pxc_preview_plan(n, head_len, &ahead_end, &tail_off);
    rec.ahead = plain + head_len;
    rec.ahead_len = (size_t)(ahead_end - head_len);
    rec.tail = plain + tail_off;
    rec.tail_len = (size_t)(n - tail_off);
    size_t dlen = 0;
    uint8_t *dict = jpg_record_dict(img + 2, sos_end - 2, &dlen);
    if (!dict)
        return codec_fail(why, "out of memory", -ENOMEM);
    int rc = jpg_record_pack(&rec, dict, dlen, &e->rec_plain);
    free(dict);
    if (rc)
        return codec_fail(why, "out of memory", rc);
    uint64_t L = e->rec_plain.len + RECORD_NONCE_BYTES + RECORD_TAG_BYTES;
    if (L > RECORD_MAX)
        return codec_fail(why, "metadata too large", -EFBIG);
    uint64_t mac_off = mac_segment_offset(L), image_off = mac_off + 4 + JPEG_MAC_BYTES;
    if (image_off + sos_end - 2 > UINT32_MAX)
        return codec_fail(why, "metadata too large", -EFBIG);
    uint8_t *out = e->head = calloc(1, image_off);
    e->head_len = image_off;
    uint8_t *sealed = malloc(L);
    if (!out || !sealed) {
        free(sealed);
        return codec_fail(why, "out of memory", -ENOMEM);
    }
    uint64_t c0 = L < FIRST_DATA_MAX ? L : FIRST_DATA_MAX;
    out[0] = 0xFF;
    out[1] = 0xD8;
    out[2] = 0xFF;
    out[3] = 0xEF;
    out[4] = (uint8_t)((2 + FIXED_BYTES + c0) >> 8);
    out[5] = (uint8_t)(2 + FIXED_BYTES + c0);
    uint8_t *h = out + JPEG_HEADER_OFFSET;
    memset(h, 0, OPAQUE_HEADER_BYTES);
    memcpy(h, PXC_MAGIC, PXC_MAGIC_BYTES);
    put_le(h + 8, PXC_FORMAT_VERSION, 2);
    h[10] = PXC_KIND_JPEG;
    memcpy(h + 16, s->file_id, PXC_FILE_ID_BYTES);
    pxc_secrets_seal(h + 32, keys, s, h, 32);
    put_le(out + JPEG_PLAIN_SIZE_OFFSET, n, 8);
    put_le(out + JPEG_RECORD_LEN_OFFSET, L, 4);
    put_le(out + JPEG_HEAD_BYTES_OFFSET, image_off + sos_end - 2, 4);
    uint8_t key[PXC_KEY_BYTES];
    pxc_file_subkey(key, keys, s, PXC_SUBKEY_METADATA);
    randombytes_buf(sealed, RECORD_NONCE_BYTES);
    crypto_aead_xchacha20poly1305_ietf_encrypt(sealed + RECORD_NONCE_BYTES, NULL, e->rec_plain.p,
                                               e->rec_plain.len, out, JPEG_RECORD_OFFSET, NULL,
                                               sealed, key);
    size_t pos = JPEG_RECORD_OFFSET, got = (size_t)c0;
    memcpy(out + pos, sealed, got);
    pos += got;
    while (got < L) {
        size_t c = L - got < JPEG_SEGMENT_DATA_MAX ? (size_t)(L - got) : JPEG_SEGMENT_DATA_MAX;
        out[pos] = 0xFF;
        out[pos + 1] = 0xEF;
        out[pos + 2] = (uint8_t)((c + 2) >> 8);
        out[pos + 3] = (uint8_t)(c + 2);
        memcpy(out + pos + 4, sealed + got, c);
        pos += 4 + c;
        got += c;
    }
    free(sealed);
    out[pos] = 0xFF;
    out[pos + 1] = 0xEF;
    out[pos + 2] = 0;
    out[pos + 3] = 2 + JPEG_MAC_BYTES;
    e->mac_at = pos + 4;
    sodium_memzero(key, sizeof key);
    return 0;
}

/* The stored file: e->head, the cipher image after its SOI (from e->img, or st when
 * given), and the MAC over all of it. */
static int assemble_tail(enc_state *e, const pxc_keys *keys, jpg_stream *st, size_t *stored_len,
                         const char **why)
{
    size_t img_len = e->img.n;
    if (st && jpg_stream_result(st, &img_len) != 0)
        return codec_fail(why, "cipher image not written", -EPROTO);
    if (img_len < 2)
        return codec_fail(why, "cipher image not written", -EPROTO);
    size_t total = e->head_len + img_len - 2;
    uint8_t *out = e->out = malloc(total);
    if (!out)
        return codec_fail(why, "out of memory", -ENOMEM);
    memcpy(out, e->head, e->head_len);
    if (st)
        jpg_stream_copy(st, 2, out + e->head_len);
    else
        memcpy(out + e->head_len, e->img.p + 2, img_len - 2);
    uint8_t key[PXC_KEY_BYTES];
    pxc_file_subkey(key, keys, &e->secrets, PXC_SUBKEY_MAC);
    stored_mac(out + e->mac_at, out, total, e->mac_at, key);
    sodium_memzero(key, sizeof key);
    *stored_len = total;
    return 0;
}

/* Sets s->nnvec from the first component's DC coefficients, the 1/8-scale view of the
 * image that needs no decoding (nn/nnvec.h). */
static int set_nnvec(enc_state *e, const pxc_keys *keys, pxc_file_secrets *s)
{
    const jpg_comp *cp = &e->f.comp[0];
    const JQUANT_TBL *qt = e->r.d.comp_info[0].quant_table;
    if (!qt)
        qt = e->r.d.quant_tbl_ptrs[cp->tq & 3];
    size_t n = (size_t)cp->wb * cp->hb;
    int16_t *dc = malloc(n * sizeof *dc);
    uint8_t *view = malloc(n);
    int rc = dc && view ? 0 : -ENOMEM;
    for (uint32_t y = 0; rc == 0 && y < cp->hb; y++)
        for (uint32_t x = 0; x < cp->wb; x++)
            dc[(size_t)y * cp->wb + x] = e->coef[0][((size_t)y * cp->pw + x) * 64];
    if (rc == 0) {
        nn_gray_from_dc(view, dc, n, qt ? qt->quantval[0] : 1);
        rc = pxc_secrets_set_nnvec(s, keys, view, cp->wb, cp->hb) == 0 ? 0 : -ENOMEM;
    }
    if (view)
        sodium_memzero(view, n);
    free(view);
    free(dc);
    return rc;
}

/* The cipher image of the original's coefficients, in e->img. */
/* Images with fewer blocks than this are encoded on one thread. */
#define RECORD_THREAD_MIN_BLOCKS 65536u

/* Deciphers the cipher coefficients and compares them with the original's, block by
 * block as they come (nothing is stored): proves that the cipher inverts on this very
 * image, with the parameters the record carries, before it is stored.  Runs beside the
 * verifying decode of the stored bytes (see encode). */
typedef struct inverse_job {
    enc_state *e;
    const pxc_keys *keys;
    int rc;
} inverse_job;

static void *check_inverse(void *arg)
{
    inverse_job *j = arg;
    enc_state *e = j->e;
    jpg_rows expect = {0};
    uint8_t perm[PXC_KEY_BYTES], diff[PXC_KEY_BYTES];
    pxc_file_subkey(perm, j->keys, &e->secrets, PXC_SUBKEY_PERMUTATION);
    pxc_file_subkey(diff, j->keys, &e->secrets, PXC_SUBKEY_DIFFUSION);
    int rc = rows_of_coefs(&e->f, e->coef, &expect);
    jpg_cipher_params p = e->cp;
    p.progress = NULL;
    p.expect = &expect;
    if (rc == 0)
        rc = jpg_cipher_run(1, &e->f, &e->dst, NULL, &p, perm, diff);
    sodium_memzero(perm, sizeof perm);
    sodium_memzero(diff, sizeof diff);
    rows_free(&expect);
    j->rc = rc;
    return NULL;
}

/* The first component of a JPEG as 8-bit samples (luma for YCbCr, gray and RGB images,
 * which libjpeg converts), or -1. */
static int decode_luma(const uint8_t *p, size_t n, uint8_t **px, uint32_t *w, uint32_t *h)
{
    struct jpeg_decompress_struct d;
    jerr e;
    uint8_t *volatile out = NULL, *volatile row = NULL;
    memset(&d, 0, sizeof d);
    d.err = jpeg_std_error(&e.pub);
    e.pub.error_exit = on_error;
    e.pub.output_message = on_message;
    jpeg_create_decompress(&d);
    if (setjmp(e.jb)) {
        jpeg_destroy_decompress(&d);
        free(out);
        free(row);
        return -1;
    }
    jpeg_mem_src(&d, p, (unsigned long)n);
    jpeg_read_header(&d, TRUE);
    if (d.jpeg_color_space == JCS_YCbCr || d.jpeg_color_space == JCS_GRAYSCALE ||
        d.jpeg_color_space == JCS_RGB)
        d.out_color_space = JCS_GRAYSCALE;
    jpeg_start_decompress(&d);
    size_t ow = d.output_width, oc = (size_t)d.output_components;
    out = malloc(ow * d.output_height + 1);
    row = malloc(ow * oc + 1);
    if (!out || !row)
        longjmp(e.jb, 1);
    while (d.output_scanline < d.output_height) {
        size_t y = d.output_scanline;
        JSAMPROW rp = row;
        jpeg_read_scanlines(&d, &rp, 1);
        for (size_t x = 0; x < ow; x++)
            out[y * ow + x] = row[x * oc];
    }
    *w = d.output_width;
    *h = d.output_height;
    jpeg_finish_decompress(&d);
    jpeg_destroy_decompress(&d);
    free(row);
    *px = out;
    return 0;
}

/* SSIM of the first components of two JPEGs of the same size (0 if not decodable). */
static double jpeg_ssim(const uint8_t *plain_luma, uint32_t w, uint32_t h, const memdest *img)
{
    uint8_t *px = NULL;
    uint32_t cw = 0, ch = 0;
    if (decode_luma(img->p, img->n, &px, &cw, &ch) != 0 || cw != w || ch != h) {
        free(px);
        return 0;
    }
    pxm_image a = {plain_luma, 0, w, h, 1, 255}, b = {px, 0, w, h, 1, 255};
    double v = pxm_ssim(&a, &b);
    free(px);
    return v;
}

/* Masking, padding and texture parameters, and the row pointers the cipher reads and
 * writes. */
static int cipher_prepare(enc_state *e, const char **why)
{
    const jpg_frame *f = &e->f;
    int rc = dc_ranges(e, why);
    if (rc == 0)
        rc = take_padding(e, why);
    if (rc)
        return rc;
    rc = textures(e, why);
    if (rc)
        return rc;
    /* Fresh arrays are zero: the padding blocks of the cipher image are. */
    for (int c = 0; c < f->ncomp; c++)
        if (!(e->cipher[c] = jpg_mem_array((j_common_ptr)&e->r.d, f->comp[c].pw, f->comp[c].ph)))
            return codec_fail(why, "out of memory", -ENOMEM);
    if (rows_of_coefs(f, e->coef, &e->src) != 0 ||
        rows_of_arrays(&e->r, e->cipher, f, &e->dst, 1) != 0)
        return codec_fail(why, "out of memory", -ENOMEM);
    return 0;
}

/* The AC symbols of the cipher image's blocks inside the image, per component, in
 * e->cipher_ac, without counting them: the cipher keeps every block's zero pattern and
 * every value's size category, so a block's AC symbols are the original's (e->ac_hist,
 * counted by the recording of a sequential original), except in the flat blocks of
 * textured components, which get one value of size nbits(tex) after their zero at
 * natural position 1 (run 0) or 8 (zig-zag 2, run 1) before the EOB they had alone.
 * NULL when the original's are not known (progressive). */
static long (*cipher_inside_ac(enc_state *e))[257]
{
    if (!e->ac_hist)
        return NULL;
    for (int c = 0; c < e->f.ncomp; c++) {
        memcpy(e->cipher_ac[c], e->ac_hist[c], sizeof e->cipher_ac[c]);
        if (!e->cp.textured[c])
            continue;
        uint64_t nflat = 0, n = (uint64_t)e->f.comp[c].wb * e->f.comp[c].hb;
        for (uint64_t i = 0; i < n; i++)
            nflat += e->cp.flat[c][i];
        int s = 32 - __builtin_clz((unsigned)e->cp.tex[c]);
        e->cipher_ac[c][0x00 | s] += (long)(nflat - e->cp.flat_at8[c]);
        e->cipher_ac[c][0x10 | s] += (long)e->cp.flat_at8[c];
    }
    return e->cipher_ac;
}

/* Enciphers the coefficients and, if write, writes the cipher image into e->img. */
static int cipher_write(enc_state *e, const pxc_keys *keys, const pxc_file_secrets *s, int write,
                        const char **why)
{
    const jpg_frame *f = &e->f;
    uint8_t perm[PXC_KEY_BYTES], diff[PXC_KEY_BYTES];
    pxc_file_subkey(perm, keys, s, PXC_SUBKEY_PERMUTATION);
    pxc_file_subkey(diff, keys, s, PXC_SUBKEY_DIFFUSION);
    int rc = jpg_cipher_run(0, f, &e->src, &e->dst, &e->cp, perm, diff);
    if (rc) {
        sodium_memzero(perm, sizeof perm);
        sodium_memzero(diff, sizeof diff);
        return codec_fail(why, rc == -ENOMEM ? "out of memory" : "coefficient out of range",
                          rc == -ENOMEM ? rc : -ENOTSUP);
    }
    sodium_memzero(perm, sizeof perm);
    sodium_memzero(diff, sizeof diff);
    if (!write)
        return 0;
    free(e->img.p);
    e->img.p = NULL;
    e->img.n = 0;
    if (write_image(&e->r, e->cipher, f, &e->dst, cipher_inside_ac(e), &e->img, NULL) != 0)
        return codec_fail(why, "libjpeg-turbo cannot write the cipher image", -EPROTO);
    return 0;
}

/* The cipher image.  On small images, where chance similarities of a few blocks can
 * make the cipher resemble the original in SSIM, a cipher image whose luma SSIM with
 * the original's reaches JPEG_SSIM_RETRY is made again with other keyed permutations
 * (the search skips those chosen before), up to JPEG_SSIM_TRIES times. */
#define JPEG_SSIM_CHECK_MAX_BLOCKS 12288u
#define JPEG_SSIM_RETRY 0.08
#define JPEG_SSIM_TRIES 4
static int cipher_image(enc_state *e, const uint8_t *plain, size_t n, const pxc_keys *keys,
                        const pxc_file_secrets *s, int write, const char **why)
{
    int rc = cipher_prepare(e, why);
    if (rc == 0)
        rc = cipher_write(e, keys, s, write, why);
    if (rc || !write || e->f.real_blocks > JPEG_SSIM_CHECK_MAX_BLOCKS)
        return rc;
    uint8_t *luma = NULL;
    uint32_t w = 0, h = 0;
    if (decode_luma(plain, n, &luma, &w, &h) != 0 || w < 11 || h < 11) {
        free(luma);
        return 0;
    }
    for (int t = 1; t < JPEG_SSIM_TRIES && rc == 0; t++) {
        if (fabs(jpeg_ssim(luma, w, h, &e->img)) < JPEG_SSIM_RETRY)
            break;
        for (int c = 0; c < e->f.ncomp; c++)
            e->cp.avoid[c] |= (uint64_t)1 << e->cp.pidx[c];
        rc = cipher_write(e, keys, s, 1, why);
    }
    free(luma);
    return rc;
}

typedef struct record_job {
    enc_state *e;
    const uint8_t *plain;
    jpg_progress *gate;
    const char *why;
    int rc;
} record_job;

static void *record_job_run(void *arg)
{
    record_job *j = arg;
    j->rc = record_scans(j->e, j->plain, j->gate, &j->why);
    return NULL;
}

/* The stored bytes decode, through the MAC, the sealed record and libjpeg, to the
 * cipher coefficients and the regeneration data encode had (decode_stored); with
 * decoded, read_back already compared what libjpeg reads from them. */
static int check_stored(enc_state *e, const pxc_keys *keys, size_t stored_len, int decoded,
                        const char **why)
{
    jpg_expect ex = {&e->f,    &e->dst,    &e->cp,         e->dummy,    e->ndummy,
                     &e->skel, e->ecs_len, e->patch_start, &e->patches, decoded};
    uint8_t *none = NULL;
    size_t none_len = 0;
    int rc = decode_stored(e->out, stored_len, keys, &ex, &none, &none_len);
    free(none);
    if (rc == -ENOMEM)
        return codec_fail(why, "out of memory", rc);
    if (rc)
        return codec_fail(why, "stored form does not decode to the original", -EPROTO);
    return 0;
}

static int inverse_failed(const inverse_job *inv, const char **why)
{
    return codec_fail(why, inv->rc == -ENOMEM ? "out of memory" : "cipher does not invert",
                      inv->rc == -ENOMEM ? -ENOMEM : -EPROTO);
}

/* Two checks, side by side as they only read what encode made: the cipher
 * coefficients decipher to the original's (check_inverse), and check_stored. */
static int verify(enc_state *e, const pxc_keys *keys, size_t stored_len, const char **why)
{
    inverse_job inv = {e, keys, 0};
    pthread_t th;
    int threaded = e->f.real_blocks >= RECORD_THREAD_MIN_BLOCKS &&
                   pthread_create(&th, NULL, check_inverse, &inv) == 0;
    if (!threaded)
        check_inverse(&inv);
    int rc = check_stored(e, keys, stored_len, 0, why);
    if (threaded)
        pthread_join(th, NULL);
    if (rc == 0 && inv.rc)
        rc = inverse_failed(&inv, why);
    return rc;
}

/* Large images write the cipher image and check it at once, on three threads: this one
 * writes it (into a jpg_stream), read_back reads it back through libjpeg as it is
 * written, and check_inverse deciphers the cipher coefficients.  Then the stored file
 * is put together and check_stored does the rest. */
typedef struct read_back_job {
    enc_state *e;
    const uint8_t *plain;
    size_t n;
    const pxc_keys *keys;
    jpg_stream *st;
    const char *why;
    int rc;
} read_back_job;

/* Once the cipher image's header is written, makes the stored file's head
 * (assemble_head) and reads the head and then the cipher image, as it is written,
 * through libjpeg: the very bytes that are stored, but for the 32 of the MAC, which
 * cannot be known before the last byte is, and which libjpeg does not interpret: they
 * are data of an APP15 segment, which it skips by the segment's length.  What it reads
 * must be the cipher coefficients (same_blocks), up to the end of the image as it was
 * written (jpg_stream_src_clean). */
static void *read_back(void *arg)
{
    read_back_job *j = arg;
    enc_state *e = j->e;
    size_t want = 1024, contig = 0;
    const uint8_t *img = NULL;
    for (;;) {
        int ended = 0;
        size_t got = jpg_stream_wait(j->st, want, &ended);
        img = got ? jpg_stream_at(j->st, 0, &contig) : NULL;
        if (img && first_sos_end(img, contig) != 0)
            break;
        if (ended || contig < want) { /* no header in the first chunk: not libjpeg's */
            j->rc = codec_fail(&j->why, "cipher image not written", -EPROTO);
            return NULL;
        }
        want *= 2;
    }
    j->rc = assemble_head(e, j->plain, j->n, j->keys, img, contig, &j->why);
    if (j->rc)
        return NULL;
    jreader r;
    int rc = jreader_open(&r, e->head, e->head_len, j->st, NULL);
    if (rc == 0 && (!geometry_matches(&r, &e->f) || !jpg_stream_src_clean(&r.d)))
        rc = -EPROTO;
    if (rc == 0)
        rc = same_blocks(&r, &e->f, &e->dst);
    jreader_close(&r);
    if (rc)
        j->rc = codec_fail(&j->why,
                           rc == -ENOMEM ? "out of memory"
                                         : "stored form does not decode to the original",
                           rc == -ENOMEM ? rc : -EPROTO);
    return NULL;
}

static int write_and_verify(enc_state *e, const uint8_t *plain, size_t n, const pxc_keys *keys,
                            size_t *stored_len, const char **why)
{
    jpg_stream *st = jpg_stream_new();
    if (!st)
        return codec_fail(why, "out of memory", -ENOMEM);
    read_back_job rb = {e, plain, n, keys, st, NULL, 0};
    inverse_job inv = {e, keys, 0};
    pthread_t trb, tinv;
    int rb_threaded = pthread_create(&trb, NULL, read_back, &rb) == 0;
    int inv_threaded = pthread_create(&tinv, NULL, check_inverse, &inv) == 0;
    int wrc = write_image(&e->r, e->cipher, &e->f, &e->dst, cipher_inside_ac(e), NULL, st);
    if (wrc)
        jpg_stream_fail(st);
    /* Without threads, each runs in turn: read_back then finds the image written. */
    if (rb_threaded)
        pthread_join(trb, NULL);
    else
        read_back(&rb);
    if (inv_threaded)
        pthread_join(tinv, NULL);
    else
        check_inverse(&inv);
    int rc = 0;
    if (wrc)
        rc = codec_fail(
            why, wrc == -ENOMEM ? "out of memory" : "libjpeg-turbo cannot write the cipher image",
            wrc == -ENOMEM ? wrc : -EPROTO);
    else if (rb.rc)
        rc = codec_fail(why, rb.why, rb.rc);
    else if (inv.rc)
        rc = inverse_failed(&inv, why);
    if (rc == 0)
        rc = assemble_tail(e, keys, st, stored_len, why);
    if (rc == 0)
        rc = check_stored(e, keys, *stored_len, 1, why);
    jpg_stream_free(st);
    return rc;
}

/* Reads the original's coefficients (published to fw as they come, if given), then
 * enciphers them; without fw, runs the recording job in between and writes the cipher
 * image (with fw, write_and_verify does). */
static int read_and_cipher(enc_state *e, const uint8_t *plain, size_t n, const pxc_keys *keys,
                           jfollow *fw, record_job *job, const char **why)
{
    jpg_frame *f = &e->f;
    int rc = jreader_open(&e->r, plain, n, NULL, fw);
    if (rc)
        return rc == -ENOMEM ? codec_fail(why, "out of memory", rc)
                             : codec_fail(why, "libjpeg-turbo cannot read it", -EINVAL);
    /* With fw, e->coef was set (and checked) at the first row: the follower reads it. */
    if (!geometry_matches(&e->r, f) ||
        (fw ? !fw->ready || fw->failed : coefs_of_reader(&e->r, f, e->coef) != 0))
        return codec_fail(why, "libjpeg-turbo reads another frame", -ENOTSUP);
    if ((rc = set_nnvec(e, keys, &e->secrets)) != 0)
        return codec_fail(why, "out of memory", rc);
    if (!fw) {
        record_job_run(job);
        if (job->rc)
            return codec_fail(why, job->why, job->rc);
    }
    return cipher_image(e, plain, n, keys, &e->secrets, !fw, why);
}

static int encode(enc_state *e, const uint8_t *plain, size_t n, const pxc_keys *keys,
                  const pxc_file_secrets *s, size_t *stored_len, const char **why)
{
    jpg_frame *f = &e->f;
    int rc = jpg_parse(plain, n, 0, f, why);
    if (rc)
        return rc;
    if (f->real_blocks > 8 * f->ecs_total + 64)
        return codec_fail(why, "more blocks than the entropy-coded data can hold", -EFBIG);
    /* skeleton */
    size_t prev = 0;
    for (int i = 0; i < f->nscans; i++) {
        jpg_buf_put(&e->skel, plain + prev, f->scans[i].ecs_off - prev);
        prev = f->scans[i].ecs_off + f->scans[i].ecs_len;
    }
    jpg_buf_put(&e->skel, plain + prev, n - prev);
    if (e->skel.err)
        return codec_fail(why, "out of memory", -ENOMEM);
    e->secrets = *s;
    /* Recording the original's entropy coding only reads its coefficients: on large
     * images it runs on another thread, following the decode row by row (jfollow),
     * then beside the making of the cipher image. */
    jpg_progress pg;
    jpg_progress_init(&pg);
    jfollow fw = {f, &pg, e->coef, 0, 0, {0}};
    record_job job = {e, plain, &pg, NULL, 0};
    pthread_t th;
    int threaded = f->real_blocks >= RECORD_THREAD_MIN_BLOCKS &&
                   pthread_create(&th, NULL, record_job_run, &job) == 0;
    if (!threaded)
        job.gate = NULL;
    rc = read_and_cipher(e, plain, n, keys, threaded ? &fw : NULL, &job, why);
    if (threaded) {
        if (rc)
            jpg_progress_fail(&pg); /* it may wait for rows that will never come */
        pthread_join(th, NULL);
    }
    jpg_progress_destroy(&pg);
    if (rc)
        return rc;
    if (job.rc)
        return codec_fail(why, job.why, job.rc);
    if (threaded)
        return write_and_verify(e, plain, n, keys, stored_len, why);
    rc = assemble_head(e, plain, n, keys, e->img.p, e->img.n, why);
    if (rc == 0)
        rc = assemble_tail(e, keys, NULL, stored_len, why);
    return rc ? rc : verify(e, keys, *stored_len, why);
}

int jpeg_codec_encode(const uint8_t *plain, size_t n, const pxc_keys *keys,
                      const pxc_file_secrets *s, uint8_t **stored, size_t *stored_len,
                      const char **why)
{
    *stored = NULL;
    *stored_len = 0;
    enc_state *e = calloc(1, sizeof *e);
    if (!e)
        return codec_fail(why, "out of memory", -ENOMEM);
    int rc = encode(e, plain, n, keys, s, stored_len, why);
    if (rc == 0) {
        *stored = e->out;
        e->out = NULL;
    } else {
        *stored_len = 0;
    }
    enc_free(e);
    free(e);
    return rc;
}

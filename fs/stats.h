/* Volume statistics (`pixcrypt stats`): what the cipher dir holds per storage kind, why
 * files stayed opaque, and how the keystore agrees with the stored files.
 *
 * Nothing records why a file stayed opaque, so the reason is derived again from its
 * content (which needs the keys): content that is no PNG or JPEG by its first bytes, an
 * image too large to transform, or an image the format codec declines, with the codec's
 * own reason (found by running the encoder on it again, unless `quick`). */
#ifndef PXC_FS_STATS_H
#define PXC_FS_STATS_H

#include <stddef.h>
#include <stdint.h>

#include "codec/keys.h"
#include "keystore/keystore.h"

#define STATS_KINDS 3 /* PXC_KIND_OPAQUE, _PNG, _JPEG */
#define STATS_MAX_REASONS 32

typedef struct stats_kind {
    size_t files;
    uint64_t plain_bytes, stored_bytes;
} stats_kind;

typedef struct stats_reason {
    char text[160];
    size_t files;
    uint64_t plain_bytes;
} stats_reason;

typedef struct volume_stats {
    stats_kind kind[STATS_KINDS];
    size_t unrecognised; /* regular files that are no stored file of any kind */
    uint64_t unrecognised_bytes;
    size_t links; /* extra names of hard-linked stored files (counted once) */
    stats_reason reason[STATS_MAX_REASONS];
    size_t nreasons;
    size_t unreadable; /* opaque files whose content could not be read for a reason */
    /* keystore */
    int integrity_ok;    /* PRAGMA integrity_check said ok */
    char integrity[160]; /* its first message otherwise */
    long long rows;
    size_t files_without_row, rows_without_file, rows_disagreeing, duplicate_ids;
    uint64_t keystore_bytes; /* keystore.db and its -wal */
    long long places;        /* place rows (one per name of a stored file) */
    int places_complete;     /* the volume knows every file's place */
} volume_stats;

typedef struct stats_options {
    const pxc_keys *keys; /* NULL: opaque files are counted but their reasons not derived */
    int quick;            /* reasons without re-running the image encoders */
} stats_options;

/* Gathers the statistics of the volume in cipherdir.  0, or a negative errno if the
 * cipher dir cannot be read. */
int stats_collect(const char *cipherdir, keystore *ks, const stats_options *opt, volume_stats *out);

#endif

/* Encrypting and decrypting files and trees without FUSE (`pixcrypt encrypt` / `decrypt`).
 *
 * Each file becomes exactly what the mounted filesystem stores for it (codec/stored.h):
 * PNG and JPEG content the codec takes is stored format-preserving, everything else
 * opaque; decrypting gives back the exact plaintext.  An output written inside the
 * volume's cipher dir also gets its keystore row, as the filesystem writes it (file
 * first, then row), so that the tree mounts as if it had been copied in through the
 * mount.  Files go through a pool of threads; an output is written to a temp file
 * beside it and renamed into place, so it is either absent or complete, and an
 * existing file is replaced only when asked (force, in_place), never an input.
 *
 * Names: the stored name of a plain name comes from offline_stored_name, the plain name
 * of a stored one from offline_plain_name, so that names can be mapped by the volume's
 * name encryption in one place. */
#ifndef PXC_FS_OFFLINE_H
#define PXC_FS_OFFLINE_H

#include <stddef.h>
#include <stdint.h>

#include "codec/keys.h"
#include "fs/namepath.h"
#include "keystore/keystore.h"

enum offline_direction { OFFLINE_ENCRYPT, OFFLINE_DECRYPT };

typedef struct offline_options {
    int direction; /* enum offline_direction */
    int recursive; /* descend into directories */
    int force;     /* replace existing outputs (never an input) */
    int in_place;  /* each input replaced by its output; no destination */
    int jobs;      /* worker threads, >= 1 */
    int progress;  /* a progress bar if stderr is a terminal */
    int verbose;   /* a line per file on stderr: where it went, as which kind */
} offline_options;

/* The volume whose keys are used.  cipherdir is a real path (no symlinks, no trailing
 * slash); outputs below it get keystore rows in ks. */
typedef struct offline_volume {
    const char *cipherdir;
    const pxc_keys *keys;
    keystore *ks;
    const pxc_names *names; /* the volume's names mode (NULL: plaintext names) */
} offline_volume;

typedef struct offline_summary {
    size_t files, failed, dirs, symlinks, skipped;
    size_t kinds[3]; /* files written per stored kind (PXC_KIND_*), encrypting */
    uint64_t bytes;  /* plaintext bytes of the files done */
    double seconds;
} offline_summary;

/* Runs the whole command: srcs (n of them) into dest (NULL with in_place).  Every
 * problem is printed on stderr naming the file and the reason.  Returns 0 when every
 * file was done, 1 when some failed (the others were done), 2 for a command line that
 * cannot work (e.g. several sources but dest is no directory; nothing was done). */
int offline_run(const offline_options *o, const offline_volume *v, char *const *srcs, size_t n,
                const char *dest, offline_summary *sum);

/* The stored name of plain name `plain` in the stored directory out_dir: encrypted when
 * out_dir is a directory of a volume v with encrypted names (its IV is made if it is
 * still empty; a long name's ".name" file is written), else the same.  The plain name
 * of stored name `stored` in in_dir: decrypted when the volume encrypts names and in_dir
 * holds a directory IV (a directory of the volume, or a copy of one), else the same.
 * 0; 1 for the volume's own files (IVs, long names' files), which are no outputs;
 * -ENAMETOOLONG; -EBADMSG for a name that does not decrypt; -EIO for a directory of the
 * volume whose IV is missing or damaged; another negative errno if a long name's file
 * cannot be written. */
int offline_stored_name(const offline_volume *v, const char *out_dir, const char *plain, char *out,
                        size_t size);
int offline_plain_name(const pxc_names *names, const char *in_dir, const char *stored, char *out,
                       size_t size);

#endif

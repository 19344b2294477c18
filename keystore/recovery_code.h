/* Recovery codes: the master key written for people, to print, store offline and type
 * back (`pixcrypt recovery`, `mount --recovery-code`, `passwd --recovery-code`).
 *
 *   PXC1-XXXXX-XXXXX-...-XXXXX      "PXC" + format version, then 14 groups of 5
 *
 * Characters are Crockford base32 (0-9 A-Z without I L O U; read case-insensitively,
 * with O as 0 and I, L as 1; hyphens and spaces are ignored).  The 56 data characters
 * carry 280 bits: the 32-byte master key and 3 bytes of BLAKE2b(key), most significant
 * bit first.  Each group is 4 data characters d0..d3 and a check character
 * c = a^1 d0 + a^2 d1 + a^3 d2 + a^4 d3 in GF(32) (x^5 + x^2 + 1, a = x), which catches
 * any single wrong character in the group and any swap of two neighbours in it, and
 * names the group; the overall checksum catches what spans groups. */
#ifndef PXC_KEYSTORE_RECOVERY_CODE_H
#define PXC_KEYSTORE_RECOVERY_CODE_H

#include <stddef.h>
#include <stdint.h>

#include "keystore/keystore.h"

#define RC_PREFIX "PXC"
#define RC_VERSION 1
#define RC_GROUPS 14
#define RC_GROUP_CHARS 5
/* "PXC1" + 14 x "-XXXXX" + NUL */
#define RC_TEXT_BYTES (4 + RC_GROUPS * (1 + RC_GROUP_CHARS) + 1)

enum rc_status {
    RC_OK = 0,
    RC_ERR_PREFIX = -1,   /* does not start with PXC */
    RC_ERR_VERSION = -2,  /* PXC followed by an unknown version */
    RC_ERR_LENGTH = -3,   /* too few or too many characters (err.group when one group is) */
    RC_ERR_CHAR = -4,     /* a character outside the alphabet, in err.group */
    RC_ERR_GROUP = -5,    /* err.group fails its check character */
    RC_ERR_CHECKSUM = -6, /* every group passes, the overall checksum does not */
};

/* Where a code went wrong: 1-based group (0 when not one group), that group as typed. */
typedef struct rc_error {
    int group;
    char text[32];
    char bad_char;
} rc_error;

/* Writes the code for a master key into out (RC_TEXT_BYTES). */
void recovery_code_format(char out[RC_TEXT_BYTES], const uint8_t key[KS_MASTER_KEY_BYTES]);

/* Reads a code back into key.  RC_OK or a negative rc_status, with *err filled in. */
int recovery_code_parse(const char *text, uint8_t key[KS_MASTER_KEY_BYTES], rc_error *err);

/* One sentence for a failed parse, naming the group: "group 3 (AB7DE) ...". */
void recovery_code_explain(int status, const rc_error *err, char *out, size_t cap);

#endif

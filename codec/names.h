/* Encrypted file names, symlink targets and extended attributes (nothing of FUSE here).
 *
 * Keys: names key = KDF(master, 1, "pxcnames"); from it, with crypto_kdf:
 *   directory key = BLAKE2b-512(key = names key sub 1; directory IV) split into an
 *                   encryption half and a MAC half, one per directory (its IV is 16
 *                   random bytes kept in the directory, fs/ decides where)
 *   symlink key   = sub 2, xattr name key = sub 3 (a directory key with an all-zero IV),
 *   xattr value key = sub 4.
 *
 * A name is split into stem and kept extension: the extension stays in clear (case as
 * written) when the name has a non-empty stem and ends in .png .jpg .jpeg .jpe or .jfif
 * (any case), so stored images still look like images; any other name is all stem.
 * The stem is padded with NULs to a multiple of 16 bytes (at least 16) and encrypted
 * deterministically (SIV):
 *   siv    = BLAKE2b-128(key = MAC half; len(ext) || ext || padded stem)
 *   stored = base64url_nopad(siv || XChaCha20(enc half, nonce = siv || 0^8; padded stem)) || ext
 * The same name in the same directory always gives the same stored name; a change to a
 * stored name fails the SIV check.  A stored name longer than 255 bytes is kept as a
 * long name "~" || base64url_nopad(BLAKE2b-256(stored)) || ext, and the full stored name
 * goes into a file next to it named long name || ".name" (as gocryptfs does).
 *
 * Symlink targets and xattr values: XChaCha20-Poly1305 with a random nonce (values bound
 * to their xattr's plain name), base64url for targets, raw bytes for values.
 *
 * Functions return a length or 0 on success, or a negative errno: -ENAMETOOLONG,
 * -EINVAL (not a name), -EBADMSG (does not authenticate / not an encrypted name). */
#ifndef PXC_CODEC_NAMES_H
#define PXC_CODEC_NAMES_H

#include <stddef.h>
#include <stdint.h>

#define PXC_NAMES_KEY_BYTES 32
#define PXC_DIRIV_BYTES 16
#define PXC_NAME_MAX 255             /* plain and stored names, in bytes */
#define PXC_NAME_ENC_MAX 400         /* a full encrypted name of a 255-byte plain name, + NUL */
#define PXC_LONG_NAME_PREFIX '~'     /* long names start with it; base64url never has it */
#define PXC_LONG_NAME_SUFFIX ".name" /* the file holding a long name's full stored name */
#define PXC_LINK_PLAIN_MAX 3000      /* longest symlink target whose encryption fits 4095 */
#define PXC_XATTR_OVERHEAD 40        /* nonce + tag added to an xattr value */

typedef struct pxc_names_keys {
    uint8_t names[PXC_NAMES_KEY_BYTES];
    uint8_t link[PXC_NAMES_KEY_BYTES];
    uint8_t xattr_value[PXC_NAMES_KEY_BYTES];
} pxc_names_keys;

typedef struct pxc_dirkey {
    uint8_t enc[32];
    uint8_t mac[32];
} pxc_dirkey;

/* Derives the name keys from the volume master key. */
void pxc_names_keys_derive(pxc_names_keys *k, const uint8_t master[32]);
/* The key of one directory, from its IV. */
void pxc_dirkey_derive(pxc_dirkey *dk, const pxc_names_keys *k, const uint8_t iv[PXC_DIRIV_BYTES]);

/* plain -> full stored name (NUL-terminated, at most PXC_NAME_ENC_MAX - 1 bytes); returns
 * its length.  -EINVAL for "", ".", "..", or a name with '/'; -ENAMETOOLONG over 255. */
int pxc_name_encrypt(const pxc_dirkey *dk, const char *plain, char *out, size_t outsize);
/* Full stored name -> plain name; its length, or -EBADMSG. */
int pxc_name_decrypt(const pxc_dirkey *dk, const char *stored, char *out, size_t outsize);

/* 1 if a full stored name needs the long form. */
int pxc_name_needs_long(const char *full);
/* The long name of a full stored name (out: at least 64 bytes). */
void pxc_name_long(const char *full, char *out, size_t outsize);
/* 1 if name is a long name (not its ".name" file); 2 if it is a long name's ".name" file. */
int pxc_name_long_kind(const char *name);
/* 1 if full is the full stored name that long name `lname` stands for. */
int pxc_name_long_matches(const char *lname, const char *full);

/* Symlink targets: returns the stored target's length, -ENAMETOOLONG if the target is
 * longer than PXC_LINK_PLAIN_MAX. */
int pxc_link_encrypt(const pxc_names_keys *k, const char *target, char *out, size_t outsize);
int pxc_link_decrypt(const pxc_names_keys *k, const char *stored, char *out, size_t outsize);

/* Xattr names: "user.NAME" <-> "user.ENCRYPTED".  Only the user namespace is kept
 * (-EOPNOTSUPP for others). */
int pxc_xattr_name_encrypt(const pxc_names_keys *k, const char *plain, char *out, size_t outsize);
int pxc_xattr_name_decrypt(const pxc_names_keys *k, const char *stored, char *out, size_t outsize);
/* Xattr values, bound to the plain xattr name: out holds len + PXC_XATTR_OVERHEAD bytes. */
void pxc_xattr_value_encrypt(const pxc_names_keys *k, const char *plain_name, const uint8_t *v,
                             size_t len, uint8_t *out);
/* Returns the plain length, or -EBADMSG. */
int pxc_xattr_value_decrypt(const pxc_names_keys *k, const char *plain_name, const uint8_t *in,
                            size_t len, uint8_t *out);

#endif

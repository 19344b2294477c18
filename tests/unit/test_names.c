/* codec/names: encrypted names, symlink targets and xattrs. */
#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "codec/names.h"
#include "tests/unit/tap.h"

static pxc_names_keys keys;
static pxc_dirkey dk, dk2;

static int round_trip(const char *plain)
{
    char enc[PXC_NAME_ENC_MAX], back[PXC_NAME_MAX + 1];
    int n = pxc_name_encrypt(&dk, plain, enc, sizeof enc);
    return n > 0 && (size_t)n == strlen(enc) &&
           pxc_name_decrypt(&dk, enc, back, sizeof back) == (int)strlen(plain) &&
           strcmp(back, plain) == 0;
}

static void known_answers(void)
{
    /* Frozen outputs for master = 00..1f and IV = 00..0f: a change to the scheme (keys,
     * SIV input, padding, encoding) shows here.  tests/tools/names_kat.py recomputes them
     * from the description in codec/names.h with Python's BLAKE2b and its own XChaCha20. */
    static const struct {
        const char *plain, *stored;
    } kat[] = {
#include "tests/unit/names_kat.h"
    };
    for (size_t i = 0; i < sizeof kat / sizeof *kat; i++) {
        char enc[PXC_NAME_ENC_MAX] = "";
        int n = pxc_name_encrypt(&dk, kat[i].plain, enc, sizeof enc);
        if (!ok(n > 0 && strcmp(enc, kat[i].stored) == 0, "KAT %zu: %.40s", i, kat[i].plain))
            tap_diag("got %s", enc);
    }
}

static void properties(void)
{
    char enc[PXC_NAME_ENC_MAX], enc2[PXC_NAME_ENC_MAX];
    char name[PXC_NAME_MAX + 2];

    static const char *const names[] = {
        "IMG_0001.jpg",
        "2024-06-12 Anna hospital.JPG",
        "notes.txt",
        "a",
        "photo.PnG",
        "x.JpEg",
        ".jpg",
        ".bashrc",
        "no extension",
        "tab\there",
        "new\nline",
        "\x01\x1f\x7f control",
        "caf\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac.png",
        "a.b.c.jfif",
        "trailing dot.",
        "..hidden",
        "-",
    };
    int all = 1;
    for (size_t i = 0; i < sizeof names / sizeof *names; i++)
        if (!round_trip(names[i])) {
            all = 0;
            tap_diag("round trip failed: %s", names[i]);
        }
    ok(all, "round trip of names with UTF-8, spaces, control characters and any extension");

    pxc_name_encrypt(&dk, "2024-06-12 Anna hospital.JPG", enc, sizeof enc);
    ok(strlen(enc) > 4 && strcmp(enc + strlen(enc) - 4, ".JPG") == 0 && !strstr(enc, "Anna"),
       "an image extension stays in clear, its case kept; the stem does not");
    pxc_name_encrypt(&dk, "notes.txt", enc, sizeof enc);
    ok(!strchr(enc, '.'), "other extensions are encrypted with the stem");
    pxc_name_encrypt(&dk, ".jpg", enc, sizeof enc);
    ok(!strchr(enc, '.'), "a name that is only an extension is encrypted whole");

    pxc_name_encrypt(&dk, "IMG_0001.jpg", enc, sizeof enc);
    pxc_name_encrypt(&dk, "IMG_0001.jpg", enc2, sizeof enc2);
    ok(strcmp(enc, enc2) == 0, "deterministic within a directory");
    pxc_name_encrypt(&dk2, "IMG_0001.jpg", enc2, sizeof enc2);
    ok(strcmp(enc, enc2) != 0, "another directory (IV) gives another stored name");
    pxc_name_encrypt(&dk, "IMG_0001.JPG", enc2, sizeof enc2);
    ok(strncmp(enc, enc2, strlen(enc) - 4) != 0, "the extension enters the SIV");
    pxc_name_encrypt(&dk, "img_0001.jpg", enc2, sizeof enc2);
    ok(strcmp(enc, enc2) != 0, "names that differ only in case differ when stored");

    int same_len = 1;
    size_t len1 = 0;
    for (int l = 1; l <= 16; l++) {
        memset(name, 'q', (size_t)l);
        name[l] = '\0';
        pxc_name_encrypt(&dk, name, enc, sizeof enc);
        if (l == 1)
            len1 = strlen(enc);
        same_len &= strlen(enc) == len1;
    }
    memset(name, 'q', 17);
    name[17] = '\0';
    pxc_name_encrypt(&dk, name, enc, sizeof enc);
    ok(same_len && strlen(enc) > len1, "lengths leak only in classes of 16 bytes");

    ok(pxc_name_encrypt(&dk, "", enc, sizeof enc) == -EINVAL &&
           pxc_name_encrypt(&dk, ".", enc, sizeof enc) == -EINVAL &&
           pxc_name_encrypt(&dk, "..", enc, sizeof enc) == -EINVAL &&
           pxc_name_encrypt(&dk, "a/b", enc, sizeof enc) == -EINVAL,
       "\"\", \".\", \"..\" and names with '/' are refused");
    memset(name, 'n', 256);
    name[256] = '\0';
    ok(pxc_name_encrypt(&dk, name, enc, sizeof enc) == -ENAMETOOLONG, "256 bytes: ENAMETOOLONG");

    /* long names */
    memset(name, 'n', 251);
    strcpy(name + 251, ".jpg");
    char lname[64];
    ok(round_trip(name), "a 255-byte name round-trips");
    pxc_name_encrypt(&dk, name, enc, sizeof enc);
    ok(pxc_name_needs_long(enc), "... and needs the long form");
    pxc_name_long(enc, lname, sizeof lname);
    ok(strlen(lname) <= PXC_NAME_MAX && lname[0] == '~' &&
           strcmp(lname + strlen(lname) - 4, ".jpg") == 0 && pxc_name_long_kind(lname) == 1 &&
           pxc_name_long_matches(lname, enc),
       "its long name: short, marked, extension kept, matches the full name");
    strcat(lname, PXC_LONG_NAME_SUFFIX);
    ok(pxc_name_long_kind(lname) == 2, "the long name's .name file is recognised");
    pxc_name_encrypt(&dk, "short.png", enc2, sizeof enc2);
    ok(!pxc_name_needs_long(enc2) && pxc_name_long_kind(enc2) == 0, "a short name is not long");
    enc[3] ^= 1;
    ok(!pxc_name_long_matches(lname, enc), "a long name does not match another full name");
}

static void tampering(void)
{
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    char enc[PXC_NAME_ENC_MAX], bad[PXC_NAME_ENC_MAX], back[PXC_NAME_MAX + 1];
    int n = pxc_name_encrypt(&dk, "2024-06-12 Anna hospital.jpg", enc, sizeof enc);
    int refused = 1, tries = 0;
    for (int i = 0; i < n - 4; i++)
        for (int k = 0; k < 64; k += 7) {
            strcpy(bad, enc);
            if (bad[i] == b64[k])
                continue;
            bad[i] = b64[k];
            tries++;
            refused &= pxc_name_decrypt(&dk, bad, back, sizeof back) == -EBADMSG;
        }
    ok(refused && tries > 300, "every changed character of a stored name is refused (%d)", tries);
    strcpy(bad, enc);
    strcpy(bad + n - 4, ".JPG");
    ok(pxc_name_decrypt(&dk, bad, back, sizeof back) == -EBADMSG, "a changed extension is refused");
    strcpy(bad, enc);
    strcpy(bad + n - 4, "");
    ok(pxc_name_decrypt(&dk, bad, back, sizeof back) == -EBADMSG, "a dropped extension is refused");
    strcpy(bad, enc);
    memmove(bad + 4, bad + 8, strlen(bad + 8) + 1);
    ok(pxc_name_decrypt(&dk, bad, back, sizeof back) == -EBADMSG, "a shortened name is refused");
    ok(pxc_name_decrypt(&dk2, enc, back, sizeof back) == -EBADMSG,
       "a name moved to another directory is refused");
    ok(pxc_name_decrypt(&dk, "plain name.jpg", back, sizeof back) == -EBADMSG &&
           pxc_name_decrypt(&dk, "", back, sizeof back) == -EBADMSG &&
           pxc_name_decrypt(&dk, "~abc", back, sizeof back) == -EBADMSG &&
           pxc_name_decrypt(&dk, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", back,
                            sizeof back) == -EBADMSG,
       "plain names and garbage are refused");
}

static void links_and_xattrs(void)
{
    char enc[4096], enc2[4096], back[4096];
    const char *target = "../Photos/2024/Anna hospital.jpg";
    int n = pxc_link_encrypt(&keys, target, enc, sizeof enc);
    ok(n > 0 && !strstr(enc, "Anna") && !strchr(enc, '/'), "symlink target encrypted");
    ok(pxc_link_decrypt(&keys, enc, back, sizeof back) == (int)strlen(target) &&
           strcmp(back, target) == 0,
       "symlink target round trip");
    pxc_link_encrypt(&keys, target, enc2, sizeof enc2);
    ok(strcmp(enc, enc2) != 0, "symlink targets use a random nonce");
    enc[10] = enc[10] == 'A' ? 'B' : 'A';
    ok(pxc_link_decrypt(&keys, enc, back, sizeof back) == -EBADMSG, "a changed target is refused");
    char longt[PXC_LINK_PLAIN_MAX + 2];
    memset(longt, 'a', sizeof longt - 1);
    longt[sizeof longt - 1] = '\0';
    ok(pxc_link_encrypt(&keys, longt, enc, sizeof enc) == -ENAMETOOLONG,
       "a target too long to store: ENAMETOOLONG");
    longt[PXC_LINK_PLAIN_MAX] = '\0';
    n = pxc_link_encrypt(&keys, longt, enc, sizeof enc);
    ok(n > 0 && n <= 4095 && pxc_link_decrypt(&keys, enc, back, sizeof back) == PXC_LINK_PLAIN_MAX,
       "the longest target fits a symlink (%d bytes)", n);

    n = pxc_xattr_name_encrypt(&keys, "user.xdg.comment", enc, sizeof enc);
    ok(n > 5 && strncmp(enc, "user.", 5) == 0 && !strstr(enc, "comment"), "xattr name encrypted");
    ok(pxc_xattr_name_decrypt(&keys, enc, back, sizeof back) == 16 &&
           strcmp(back, "user.xdg.comment") == 0,
       "xattr name round trip");
    ok(pxc_xattr_name_encrypt(&keys, "security.selinux", enc, sizeof enc) == -EOPNOTSUPP &&
           pxc_xattr_name_encrypt(&keys, "trusted.x", enc, sizeof enc) == -EOPNOTSUPP,
       "only the user namespace is kept");
    const uint8_t value[] = "GPS 48.8584 N 2.2945 E";
    uint8_t sealed[sizeof value + PXC_XATTR_OVERHEAD], open[sizeof value];
    pxc_xattr_value_encrypt(&keys, "user.a", value, sizeof value, sealed);
    ok(pxc_xattr_value_decrypt(&keys, "user.a", sealed, sizeof sealed, open) == sizeof value &&
           memcmp(open, value, sizeof value) == 0,
       "xattr value round trip");
    ok(pxc_xattr_value_decrypt(&keys, "user.b", sealed, sizeof sealed, open) == -EBADMSG,
       "an xattr value moved to another name is refused");
    sealed[30] ^= 1;
    ok(pxc_xattr_value_decrypt(&keys, "user.a", sealed, sizeof sealed, open) == -EBADMSG,
       "a changed xattr value is refused");
}

int main(void)
{
    uint8_t master[32], iv[PXC_DIRIV_BYTES], iv2[PXC_DIRIV_BYTES];
    if (sodium_init() < 0)
        return 1;
    for (int i = 0; i < 32; i++)
        master[i] = (uint8_t)i;
    for (int i = 0; i < PXC_DIRIV_BYTES; i++) {
        iv[i] = (uint8_t)i;
        iv2[i] = (uint8_t)(i + 1);
    }
    pxc_names_keys_derive(&keys, master);
    pxc_dirkey_derive(&dk, &keys, iv);
    pxc_dirkey_derive(&dk2, &keys, iv2);
    known_answers();
    properties();
    tampering();
    links_and_xattrs();
    return tap_done();
}

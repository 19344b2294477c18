#!/usr/bin/env python3
"""Known answers for codec/names.c, computed from its description in codec/names.h with
Python's BLAKE2b and a XChaCha20 written here from RFC 8439 / draft-irtf-cfrg-xchacha, so
that the C code is checked against a second implementation.  Prints tests/unit/names_kat.h."""
import base64
import hashlib
import struct

MASK = 0xFFFFFFFF


def rotl(v, c):
    return ((v << c) & MASK) | (v >> (32 - c))


def quarter(s, a, b, c, d):
    s[a] = (s[a] + s[b]) & MASK; s[d] = rotl(s[d] ^ s[a], 16)
    s[c] = (s[c] + s[d]) & MASK; s[b] = rotl(s[b] ^ s[c], 12)
    s[a] = (s[a] + s[b]) & MASK; s[d] = rotl(s[d] ^ s[a], 8)
    s[c] = (s[c] + s[d]) & MASK; s[b] = rotl(s[b] ^ s[c], 7)


def rounds(s):
    for _ in range(10):
        quarter(s, 0, 4, 8, 12); quarter(s, 1, 5, 9, 13)
        quarter(s, 2, 6, 10, 14); quarter(s, 3, 7, 11, 15)
        quarter(s, 0, 5, 10, 15); quarter(s, 1, 6, 11, 12)
        quarter(s, 2, 7, 8, 13); quarter(s, 3, 4, 9, 14)


CONST = list(struct.unpack("<4I", b"expand 32-byte k"))


def hchacha20(key, nonce16):
    s = CONST + list(struct.unpack("<8I", key)) + list(struct.unpack("<4I", nonce16))
    rounds(s)
    return struct.pack("<8I", *(s[0:4] + s[12:16]))


def chacha20_djb(key, nonce8, data):
    out = bytearray()
    for block in range((len(data) + 63) // 64):
        s = CONST + list(struct.unpack("<8I", key)) + [block & MASK, block >> 32] + \
            list(struct.unpack("<2I", nonce8))
        w = s[:]
        rounds(w)
        ks = struct.pack("<16I", *[(w[i] + s[i]) & MASK for i in range(16)])
        chunk = data[64 * block:64 * block + 64]
        out += bytes(a ^ b for a, b in zip(chunk, ks))
    return bytes(out)


def xchacha20(key, nonce24, data):
    return chacha20_djb(hchacha20(key, nonce24[:16]), nonce24[16:], data)


def kdf(key, subkey_id, ctx, n=32):
    return hashlib.blake2b(b"", digest_size=n, key=key, salt=struct.pack("<Q", subkey_id) + bytes(8),
                           person=ctx.encode() + bytes(8)).digest()


KEPT = ("png", "jpg", "jpeg", "jpe", "jfif")


def split(name):
    dot = name.rfind(b".")
    if dot > 0 and name[dot + 1:].decode("latin1").lower() in KEPT:
        return name[:dot], name[dot:]
    return name, b""


def encrypt(enc, mac, name):
    stem, ext = split(name)
    padded = stem + bytes(-len(stem) % 16 if stem else 16)
    siv = hashlib.blake2b(bytes([len(ext)]) + ext + padded, digest_size=16, key=mac).digest()
    ct = xchacha20(enc, siv + bytes(8), padded)
    return base64.urlsafe_b64encode(siv + ct).rstrip(b"=") + ext


def main():
    master = bytes(range(32))
    iv = bytes(range(16))
    names = kdf(master, 1, "pxcnames")
    base = kdf(names, 1, "pxcname2")
    both = hashlib.blake2b(iv, digest_size=64, key=base).digest()
    enc, mac = both[:32], both[32:]
    for plain in [b"IMG_0001.jpg", "2024-06-12 Anna hospital.JPG".encode(), b"notes.txt", b"a",
                  b".jpg", "café 日本.png".encode(), b"q" * 16, b"q" * 17, b"x" * 250 + b".jpeg"]:
        c = lambda b: "".join("\\x%02x" % x if x < 32 or x > 126 or x in b'"\\' else chr(x) for x in b)
        print('{"%s", "%s"},' % (c(plain), c(encrypt(enc, mac, plain))))


main()

/* Volume and per-file key derivation (see keys.h). */
#include "codec/keys.h"

#include <sodium.h>
#include <string.h>

#include "nn/nnvec.h"

#define HEADER_KDF_CONTEXT "pxchead1"
#define FILE_KDF_CONTEXT "pxcfile1"
#define HEADER_KDF_ID 1
#define SEALED_PLAIN_BYTES (PXC_SEED_BYTES + PXC_NNVEC_BYTES + PXC_VERSION_BYTES)

_Static_assert(PXC_SEALED_SECRETS_BYTES == crypto_aead_xchacha20poly1305_ietf_NPUBBYTES +
                                               SEALED_PLAIN_BYTES +
                                               crypto_aead_xchacha20poly1305_ietf_ABYTES,
               "sealed secrets layout");

pxc_keys *pxc_keys_new(const uint8_t master[PXC_KEY_BYTES])
{
    pxc_keys *keys = sodium_malloc(sizeof *keys);
    if (!keys)
        return NULL;
    memcpy(keys->master, master, PXC_KEY_BYTES);
    crypto_kdf_derive_from_key(keys->header, sizeof keys->header, HEADER_KDF_ID, HEADER_KDF_CONTEXT,
                               keys->master);
    keys->profile = PXC_PROFILE_DEFAULT;
    keys->nn = nn_model_new(master);
    if (!keys->nn) {
        sodium_free(keys);
        return NULL;
    }
    return keys;
}

void pxc_keys_free(pxc_keys *keys)
{
    if (keys) {
        nn_model_free(keys->nn);
        sodium_free(keys); /* wipes before unmapping */
    }
}

int pxc_secrets_set_nnvec(pxc_file_secrets *s, const pxc_keys *keys, const uint8_t *gray,
                          uint32_t width, uint32_t height)
{
    return nn_vector(keys->nn, gray, width, height, s->nnvec);
}

void pxc_secrets_fresh(pxc_file_secrets *s)
{
    randombytes_buf(s->file_id, sizeof s->file_id);
    pxc_secrets_renew(s, 1);
}

void pxc_secrets_renew(pxc_file_secrets *s, uint64_t version)
{
    randombytes_buf(s->seed, sizeof s->seed);
    memset(s->nnvec, 0, sizeof s->nnvec);
    s->version = version;
}

void pxc_file_subkey(uint8_t out[PXC_KEY_BYTES], const pxc_keys *keys, const pxc_file_secrets *s,
                     enum pxc_subkey_id id)
{
    uint8_t file_key[PXC_KEY_BYTES];
    crypto_generichash_state st;

    crypto_generichash_init(&st, keys->master, PXC_KEY_BYTES, sizeof file_key);
    crypto_generichash_update(&st, s->file_id, sizeof s->file_id);
    crypto_generichash_update(&st, s->seed, sizeof s->seed);
    crypto_generichash_update(&st, s->nnvec, sizeof s->nnvec);
    crypto_generichash_final(&st, file_key, sizeof file_key);
    crypto_kdf_derive_from_key(out, PXC_KEY_BYTES, (uint64_t)id, FILE_KDF_CONTEXT, file_key);
    sodium_memzero(file_key, sizeof file_key);
    sodium_memzero(&st, sizeof st);
}

void pxc_secrets_seal(uint8_t out[PXC_SEALED_SECRETS_BYTES], const pxc_keys *keys,
                      const pxc_file_secrets *s, const uint8_t *ad, size_t adlen)
{
    uint8_t plain[SEALED_PLAIN_BYTES];
    uint8_t *nonce = out;
    uint8_t *ct = out + crypto_aead_xchacha20poly1305_ietf_NPUBBYTES;

    memcpy(plain, s->seed, PXC_SEED_BYTES);
    memcpy(plain + PXC_SEED_BYTES, s->nnvec, PXC_NNVEC_BYTES);
    for (int k = 0; k < PXC_VERSION_BYTES; k++)
        plain[PXC_SEED_BYTES + PXC_NNVEC_BYTES + k] = (uint8_t)(s->version >> (8 * k));
    randombytes_buf(nonce, crypto_aead_xchacha20poly1305_ietf_NPUBBYTES);
    crypto_aead_xchacha20poly1305_ietf_encrypt(ct, NULL, plain, sizeof plain, ad, adlen, NULL,
                                               nonce, keys->header);
    sodium_memzero(plain, sizeof plain);
}

int pxc_secrets_open(pxc_file_secrets *s, const pxc_keys *keys,
                     const uint8_t in[PXC_SEALED_SECRETS_BYTES], const uint8_t *ad, size_t adlen)
{
    uint8_t plain[SEALED_PLAIN_BYTES];
    const uint8_t *nonce = in;
    const uint8_t *ct = in + crypto_aead_xchacha20poly1305_ietf_NPUBBYTES;
    size_t ctlen = PXC_SEALED_SECRETS_BYTES - crypto_aead_xchacha20poly1305_ietf_NPUBBYTES;

    if (crypto_aead_xchacha20poly1305_ietf_decrypt(plain, NULL, NULL, ct, ctlen, ad, adlen, nonce,
                                                   keys->header) != 0)
        return -1;
    memcpy(s->seed, plain, PXC_SEED_BYTES);
    memcpy(s->nnvec, plain + PXC_SEED_BYTES, PXC_NNVEC_BYTES);
    s->version = 0;
    for (int k = 0; k < PXC_VERSION_BYTES; k++)
        s->version |= (uint64_t)plain[PXC_SEED_BYTES + PXC_NNVEC_BYTES + k] << (8 * k);
    sodium_memzero(plain, sizeof plain);
    return 0;
}

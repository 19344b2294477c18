/* The neural key vector: view hash, normalisation, network, canonical output hash. */
#include <sodium.h>
#include <string.h>

#include "nn/nn_int.h"

#define VIEW_DOMAIN "pxcnnvec view v1"
#define OUT_DOMAIN "pxcnnvec out v1"

static void put_le32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

/* Keyed hash of the exact view: every sample and the dimensions reach the vector. */
static void view_digest(uint8_t out[NN_DIGEST_BYTES], const nn_model *m, const uint8_t *gray,
                        uint32_t width, uint32_t height)
{
    crypto_generichash_state st;
    uint8_t dims[8];
    put_le32(dims, width);
    put_le32(dims + 4, height);
    crypto_generichash_init(&st, m->view_key, sizeof m->view_key, NN_DIGEST_BYTES);
    crypto_generichash_update(&st, (const uint8_t *)VIEW_DOMAIN, sizeof VIEW_DOMAIN);
    crypto_generichash_update(&st, dims, sizeof dims);
    crypto_generichash_update(&st, gray, (size_t)width * height);
    crypto_generichash_final(&st, out, NN_DIGEST_BYTES);
}

void nn_forward(const struct nn_model *m, const float view[NN_SIDE * NN_SIDE],
                const uint8_t digest[NN_DIGEST_BYTES], float h[NN_HIDDEN], float c[NN_HIDDEN])
{
    static const uint8_t nonce[crypto_stream_chacha20_NONCEBYTES];
    float f1[NN_C1 * (NN_SIDE / 2) * (NN_SIDE / 2)];
    float f2[NN_C2 * (NN_SIDE / 4) * (NN_SIDE / 4)];
    float f3[NN_C3 * NN_GRID * NN_GRID];
    uint8_t ks[2 * NN_HIDDEN * 4];

    nn_conv3x3s2_relu(f1, view, 1, NN_C1, NN_SIDE, m->conv1_w, m->conv1_b);
    nn_conv3x3s2_relu(f2, f1, NN_C1, NN_C2, NN_SIDE / 2, m->conv2_w, m->conv2_b);
    nn_conv3x3s2_relu(f3, f2, NN_C2, NN_C3, NN_SIDE / 4, m->conv3_w, m->conv3_b);

    /* Initial state: the key vector, perturbed by the view hash expanded to uniform
     * values in [-1, 1): h0 = (kh + dh) / 2 stays in [-1, 1), c0 = kc + dc. */
    crypto_stream_chacha20(ks, sizeof ks, nonce, digest);
    for (int j = 0; j < 2 * NN_HIDDEN; j++) {
        const uint8_t *p = ks + 4 * j;
        uint32_t u =
            (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
        float d = (float)(((double)u - 2147483648.0) * 0x1p-31);
        if (j < NN_HIDDEN)
            h[j] = 0.5f * m->h0[j] + 0.5f * d;
        else
            c[j - NN_HIDDEN] = m->c0[j - NN_HIDDEN] + d;
    }
    nn_lstm_run(m, f3, h, c);
    sodium_memzero(f1, sizeof f1);
    sodium_memzero(f2, sizeof f2);
    sodium_memzero(f3, sizeof f3);
    sodium_memzero(ks, sizeof ks);
}

/* IEEE single bits, little-endian, with -0.0 written as +0.0. */
static void put_float(uint8_t *p, float v)
{
    uint32_t u;
    if (v == 0.0f)
        v = 0.0f;
    memcpy(&u, &v, sizeof u);
    put_le32(p, u);
}

int nn_vector(const nn_model *m, const uint8_t *gray, uint32_t width, uint32_t height,
              uint8_t out[NN_VECTOR_BYTES])
{
    float view[NN_SIDE * NN_SIDE], h[NN_HIDDEN], c[NN_HIDDEN];
    uint8_t digest[NN_DIGEST_BYTES], state[2 * NN_HIDDEN * 4];
    crypto_generichash_state st;

    if (!m || !out || nn_resample(view, gray, width, height) != 0)
        return -1;
    view_digest(digest, m, gray, width, height);
    nn_forward(m, view, digest, h, c);

    for (int j = 0; j < NN_HIDDEN; j++) {
        put_float(state + 4 * j, h[j]);
        put_float(state + 4 * (NN_HIDDEN + j), c[j]);
    }
    crypto_generichash_init(&st, m->out_key, sizeof m->out_key, NN_VECTOR_BYTES);
    crypto_generichash_update(&st, (const uint8_t *)OUT_DOMAIN, sizeof OUT_DOMAIN);
    crypto_generichash_update(&st, state, sizeof state);
    crypto_generichash_update(&st, digest, sizeof digest);
    crypto_generichash_final(&st, out, NN_VECTOR_BYTES);

    sodium_memzero(view, sizeof view);
    sodium_memzero(h, sizeof h);
    sodium_memzero(c, sizeof c);
    sodium_memzero(digest, sizeof digest);
    sodium_memzero(state, sizeof state);
    sodium_memzero(&st, sizeof st);
    return 0;
}

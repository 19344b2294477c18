/* The keyed network: every parameter from a ChaCha20 keystream under the master key. */
#include <sodium.h>
#include <string.h>

#include "nn/nn_int.h"

/* Square root by Newton's method in double, for the handful of init scales (no libm). */
static double det_sqrt(double x)
{
    double r = x > 1.0 ? x : 1.0;
    for (int i = 0; i < 64; i++)
        r = 0.5 * (r + x / r);
    return r;
}

/* Reads uniform floats in [-bound, bound) from a keystream, 4 little-endian bytes each. */
typedef struct stream {
    const uint8_t *p;
} stream;

static void fill_uniform(float *out, size_t n, double bound, stream *s)
{
    for (size_t i = 0; i < n; i++, s->p += 4) {
        uint32_t u = (uint32_t)s->p[0] | (uint32_t)s->p[1] << 8 | (uint32_t)s->p[2] << 16 |
                     (uint32_t)s->p[3] << 24;
        double unit = ((double)u - 2147483648.0) * 0x1p-31; /* [-1, 1), exact */
        out[i] = (float)(unit * bound);
    }
}

/* He uniform for a ReLU convolution: bound sqrt(6 / fan_in). */
static void conv_init(float *w, float *b, uint32_t in_ch, uint32_t out_ch, stream *s)
{
    fill_uniform(w, (size_t)out_ch * in_ch * 9, det_sqrt(6.0 / (9.0 * in_ch)), s);
    fill_uniform(b, out_ch, 0.05, s);
}

/* Parameters drawn from the weight keystream, in this order. */
#define NN_PARAMS                                                                                  \
    (sizeof(((nn_model *)0)->conv1_w) + sizeof(((nn_model *)0)->conv1_b) +                         \
     sizeof(((nn_model *)0)->conv2_w) + sizeof(((nn_model *)0)->conv2_b) +                         \
     sizeof(((nn_model *)0)->conv3_w) + sizeof(((nn_model *)0)->conv3_b) +                         \
     sizeof(((nn_model *)0)->lstm_w) + sizeof(((nn_model *)0)->lstm_b)) /                          \
        sizeof(float)

nn_model *nn_model_new(const uint8_t master[NN_MASTER_BYTES])
{
    static const uint8_t nonce[crypto_stream_chacha20_NONCEBYTES];
    uint8_t key[crypto_kdf_KEYBYTES];
    size_t bytes = NN_PARAMS * 4 + 2 * NN_HIDDEN * 4;
    nn_model *m = sodium_malloc(sizeof *m);
    uint8_t *ks = sodium_malloc(bytes);
    if (!m || !ks) {
        sodium_free(m);
        sodium_free(ks);
        return NULL;
    }

    /* Weights and biases. */
    crypto_kdf_derive_from_key(key, sizeof key, NN_SUBKEY_WEIGHTS, NN_KDF_CONTEXT, master);
    crypto_stream_chacha20(ks, NN_PARAMS * 4, nonce, key);
    stream s = {ks};
    conv_init(m->conv1_w, m->conv1_b, 1, NN_C1, &s);
    conv_init(m->conv2_w, m->conv2_b, NN_C1, NN_C2, &s);
    conv_init(m->conv3_w, m->conv3_b, NN_C2, NN_C3, &s);
    /* Glorot uniform over [input | recurrent] -> 4 gates: sqrt(6 / (fan_in + fan_out)). */
    fill_uniform(m->lstm_w, sizeof m->lstm_w / sizeof(float),
                 det_sqrt(6.0 / (NN_FEAT + NN_HIDDEN + NN_GATES)), &s);
    fill_uniform(m->lstm_b, NN_GATES, 0.1, &s);
    /* Forget-gate bias +1 (rows NN_HIDDEN..2*NN_HIDDEN-1), so that the initial state,
     * and with it the key vector, is carried through the sequence. */
    for (int i = NN_HIDDEN; i < 2 * NN_HIDDEN; i++)
        m->lstm_b[i] += 1.0f;
    for (int r = 0; r < NN_GATES; r++)
        for (int k = 0; k < NN_FEAT + NN_HIDDEN; k++)
            m->lstm_wt[k * NN_GATES + r] = m->lstm_w[r * (NN_FEAT + NN_HIDDEN) + k];

    /* The key vector: initial h and c, uniform in [-1, 1). */
    crypto_kdf_derive_from_key(key, sizeof key, NN_SUBKEY_STATE, NN_KDF_CONTEXT, master);
    crypto_stream_chacha20(ks, 2 * NN_HIDDEN * 4, nonce, key);
    s.p = ks;
    fill_uniform(m->h0, NN_HIDDEN, 1.0, &s);
    fill_uniform(m->c0, NN_HIDDEN, 1.0, &s);

    crypto_kdf_derive_from_key(m->view_key, sizeof m->view_key, NN_SUBKEY_VIEW, NN_KDF_CONTEXT,
                               master);
    crypto_kdf_derive_from_key(m->out_key, sizeof m->out_key, NN_SUBKEY_OUT, NN_KDF_CONTEXT,
                               master);
    sodium_memzero(key, sizeof key);
    sodium_free(ks); /* wipes */
    sodium_mprotect_readonly(m);
    return m;
}

void nn_model_free(nn_model *m)
{
    if (m)
        sodium_free(m); /* wipes before unmapping */
}

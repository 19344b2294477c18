/* Internals of the neural key-vector generator (see nnvec.h), shared by its files and
 * the unit test. */
#ifndef PXC_NN_INT_H
#define PXC_NN_INT_H

#include <stddef.h>
#include <stdint.h>

#include "nn/nnvec.h"

#define NN_SIDE 64 /* the normalised view is NN_SIDE x NN_SIDE */
#define NN_C1 8    /* channels after each convolution */
#define NN_C2 16
#define NN_C3 32
#define NN_GRID 8 /* NN_SIDE >> 3: side of the last feature map */
#define NN_STEPS (NN_GRID * NN_GRID)
#define NN_FEAT NN_C3
#define NN_HIDDEN 32
#define NN_GATES (4 * NN_HIDDEN) /* rows of the LSTM weights: i, f, g, o */
#define NN_DIGEST_BYTES 32

/* crypto_kdf context and subkey ids under the master key. */
#define NN_KDF_CONTEXT "pxcnnvec"
enum nn_subkey {
    NN_SUBKEY_WEIGHTS = 1,
    NN_SUBKEY_STATE = 2,
    NN_SUBKEY_VIEW = 3,
    NN_SUBKEY_OUT = 4
};

struct nn_model {
    float conv1_w[NN_C1 * 1 * 9], conv1_b[NN_C1];
    float conv2_w[NN_C2 * NN_C1 * 9], conv2_b[NN_C2];
    float conv3_w[NN_C3 * NN_C2 * 9], conv3_b[NN_C3];
    float lstm_w[NN_GATES * (NN_FEAT + NN_HIDDEN)]; /* row r: NN_FEAT input, NN_HIDDEN recurrent */
    float lstm_b[NN_GATES];
    /* lstm_w transposed, [k][r]: the gate sums run over all gates at once (vectors)
     * while each gate still adds its terms in order k = 0, 1, ... */
    float lstm_wt[(NN_FEAT + NN_HIDDEN) * NN_GATES];
    float h0[NN_HIDDEN], c0[NN_HIDDEN]; /* the key vector */
    uint8_t view_key[32];               /* keys the hash of the exact view */
    uint8_t out_key[32];                /* keys the final hash */
};

/* resample.c: exact area average of any view to NN_SIDE x NN_SIDE, mapped to [-1, 1]. */
int nn_resample(float out[NN_SIDE * NN_SIDE], const uint8_t *gray, uint32_t width, uint32_t height);

/* conv.c: 3x3, stride 2, padding 1, ReLU; CHW layout, square maps of even side `in_side`.
 * `w` is [out_ch][in_ch][3][3]. */
void nn_conv3x3s2_relu(float *out, const float *in, uint32_t in_ch, uint32_t out_ch,
                       uint32_t in_side, const float *w, const float *b);

/* lstm.c */
float nn_tanh(float x);
float nn_sigmoid(float x);
/* Runs the LSTM over `seq` (NN_STEPS steps, feature f of step t at seq[f * NN_STEPS + t],
 * i.e. the CHW feature map read in raster order); h and c hold the initial state on
 * entry and the final state on return. */
void nn_lstm_run(const struct nn_model *m, const float *seq, float h[NN_HIDDEN],
                 float c[NN_HIDDEN]);

/* nnvec.c: the network on a normalised view with a given view hash; final h and c. */
void nn_forward(const struct nn_model *m, const float view[NN_SIDE * NN_SIDE],
                const uint8_t digest[NN_DIGEST_BYTES], float h[NN_HIDDEN], float c[NN_HIDDEN]);

#endif

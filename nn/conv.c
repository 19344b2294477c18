/* 3x3 stride-2 convolution with ReLU, in a fixed summation order. */
#include <string.h>

#include "nn/nn_int.h"

#define NN_MAX_PAD ((NN_SIDE + 1) * (NN_SIDE + 1))

void nn_conv3x3s2_relu(float *out, const float *in, uint32_t in_ch, uint32_t out_ch,
                       uint32_t in_side, const float *w, const float *b)
{
    /* With stride 2 and an even side, output (oy, ox) reads input rows 2oy-1 .. 2oy+1:
     * only the top row and left column of padding are ever read, so each input channel
     * is copied once behind one zero row and column and the inner loop needs no bounds. */
    const uint32_t ps = in_side + 1, os = in_side / 2;
    float pad[NN_MAX_PAD];

    for (uint32_t oc = 0; oc < out_ch; oc++) {
        float *o = out + (size_t)oc * os * os;
        for (uint32_t i = 0; i < os * os; i++)
            o[i] = b[oc];
    }
    memset(pad, 0, sizeof(float) * ps * ps);
    /* Each padded row split into its even and odd columns, so that the loop over output
     * columns reads contiguous memory and runs in vectors; every output still adds its
     * terms in the same order. */
    float ev[3][NN_SIDE / 2 + 1], od[3][NN_SIDE / 2];
    for (uint32_t ic = 0; ic < in_ch; ic++) {
        const float *src = in + (size_t)ic * in_side * in_side;
        for (uint32_t y = 0; y < in_side; y++)
            memcpy(pad + (size_t)(y + 1) * ps + 1, src + (size_t)y * in_side,
                   sizeof(float) * in_side);
        for (uint32_t oy = 0; oy < os; oy++) {
            for (int r = 0; r < 3; r++) {
                const float *row = pad + (size_t)(2 * oy + (uint32_t)r) * ps;
                for (uint32_t i = 0; i < os; i++) {
                    ev[r][i] = row[2 * i];
                    od[r][i] = row[2 * i + 1];
                }
                ev[r][os] = row[2 * os];
            }
            for (uint32_t oc = 0; oc < out_ch; oc++) {
                const float *k = w + ((size_t)oc * in_ch + ic) * 9;
                float *o = out + (size_t)oc * os * os + (size_t)oy * os;
                const float k0 = k[0], k1 = k[1], k2 = k[2], k3 = k[3], k4 = k[4], k5 = k[5];
                const float k6 = k[6], k7 = k[7], k8 = k[8];
                for (uint32_t ox = 0; ox < os; ox++) {
                    float s = o[ox];
                    s += k0 * ev[0][ox] + k1 * od[0][ox] + k2 * ev[0][ox + 1];
                    s += k3 * ev[1][ox] + k4 * od[1][ox] + k5 * ev[1][ox + 1];
                    s += k6 * ev[2][ox] + k7 * od[2][ox] + k8 * ev[2][ox + 1];
                    o[ox] = s;
                }
            }
        }
    }
    for (uint32_t i = 0; i < out_ch * os * os; i++)
        if (!(out[i] > 0.0f)) /* ReLU; also maps -0.0 to +0.0 */
            out[i] = 0.0f;
}

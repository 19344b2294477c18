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
    for (uint32_t ic = 0; ic < in_ch; ic++) {
        const float *src = in + (size_t)ic * in_side * in_side;
        for (uint32_t y = 0; y < in_side; y++)
            memcpy(pad + (size_t)(y + 1) * ps + 1, src + (size_t)y * in_side,
                   sizeof(float) * in_side);
        for (uint32_t oc = 0; oc < out_ch; oc++) {
            const float *k = w + ((size_t)oc * in_ch + ic) * 9;
            float *o = out + (size_t)oc * os * os;
            for (uint32_t oy = 0; oy < os; oy++) {
                const float *r0 = pad + (size_t)(2 * oy) * ps, *r1 = r0 + ps, *r2 = r1 + ps;
                for (uint32_t ox = 0; ox < os; ox++) {
                    const uint32_t x = 2 * ox;
                    float s = o[oy * os + ox];
                    s += k[0] * r0[x] + k[1] * r0[x + 1] + k[2] * r0[x + 2];
                    s += k[3] * r1[x] + k[4] * r1[x + 1] + k[5] * r1[x + 2];
                    s += k[6] * r2[x] + k[7] * r2[x + 1] + k[8] * r2[x + 2];
                    o[oy * os + ox] = s;
                }
            }
        }
    }
    for (uint32_t i = 0; i < out_ch * os * os; i++)
        if (!(out[i] > 0.0f)) /* ReLU; also maps -0.0 to +0.0 */
            out[i] = 0.0f;
}

/* LSTM over the feature sequence, with fixed rational sigmoid and tanh. */
#include "nn/nn_int.h"

/* tanh(x) ~ x (27 + x^2) / (27 + 9 x^2) for |x| < 3, +-1 beyond: odd, monotone up to
 * the last bit of rounding, continuous with a continuous derivative at +-3 (it is 0
 * there), error below 0.025.  Correctly rounded IEEE operations only, so the same bits
 * everywhere; the result is clamped to [-1, 1] against rounding near saturation. */
float nn_tanh(float x)
{
    if (x >= 3.0f)
        return 1.0f;
    if (x <= -3.0f)
        return -1.0f;
    float x2 = x * x;
    float t = x * (27.0f + x2) / (27.0f + 9.0f * x2);
    return t > 1.0f ? 1.0f : t < -1.0f ? -1.0f : t;
}

float nn_sigmoid(float x)
{
    return 0.5f + 0.5f * nn_tanh(0.5f * x);
}

void nn_lstm_run(const struct nn_model *m, const float *seq, float h[NN_HIDDEN], float c[NN_HIDDEN])
{
    float xh[NN_FEAT + NN_HIDDEN], z[NN_GATES];

    for (int t = 0; t < NN_STEPS; t++) {
        for (int f = 0; f < NN_FEAT; f++)
            xh[f] = seq[f * NN_STEPS + t];
        for (int j = 0; j < NN_HIDDEN; j++)
            xh[NN_FEAT + j] = h[j];
        /* z[r] = b[r] + w[r][0] xh[0] + w[r][1] xh[1] + ..., added in that order for
         * every r; the loop over r is the one that runs in vectors. */
        for (int r = 0; r < NN_GATES; r++)
            z[r] = m->lstm_b[r];
        for (int k = 0; k < NN_FEAT + NN_HIDDEN; k++) {
            const float *w = m->lstm_wt + (size_t)k * NN_GATES;
            const float x = xh[k];
            for (int r = 0; r < NN_GATES; r++)
                z[r] += w[r] * x;
        }
        for (int j = 0; j < NN_HIDDEN; j++) {
            float i = nn_sigmoid(z[j]);
            float f = nn_sigmoid(z[NN_HIDDEN + j]);
            float g = nn_tanh(z[2 * NN_HIDDEN + j]);
            float o = nn_sigmoid(z[3 * NN_HIDDEN + j]);
            c[j] = f * c[j] + i * g;
            h[j] = o * nn_tanh(c[j]);
        }
    }
}

/* predict.c — normalisation and prediction, the model's input and output rules (contract in
 * predict.h). */
#include "predict.h"

#include <math.h>

void rs_model_normalize_span(const rs_config *c, int ch, const float *src, float *dst, size_t n)
{
    float m = c->mean[ch], s = c->std[ch];
    for (size_t i = 0; i < n; i++)
        dst[i] = (src[i] - m) / s;
}

void rs_model_normalize(const rs_config *c, float *image)
{
    size_t plane = (size_t)c->image_h * c->image_w;
    for (int ch = 0; ch < c->channels; ch++)
        rs_model_normalize_span(c, ch, image + (size_t)ch * plane, image + (size_t)ch * plane, plane);
}

void rs_model_normalize_backward_span(const rs_config *c, int ch, const float *src, float *dst, size_t n)
{
    float s = c->std[ch];
    for (size_t i = 0; i < n; i++)
        dst[i] = src[i] / s;
}

int rs_model_predict(const float *logits, int K, float *prob)
{
    int best = 0;
    for (int k = 1; k < K; k++)
        if (logits[k] > logits[best])
            best = k;
    if (prob) {
        double z = 0;
        for (int k = 0; k < K; k++)
            z += exp((double)logits[k] - logits[best]);
        *prob = (float)(1.0 / z);
    }
    return best;
}

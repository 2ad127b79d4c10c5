#include "kernels.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

/* Hot loops are compiled for AVX-512, AVX2 and baseline x86-64 and picked at load time,
 * so one binary runs everywhere and still uses the wide units where they exist. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(__SANITIZE_ADDRESS__)
#define RS_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define RS_CLONES
#endif

/* exp(x) = 2^n * e^r with n = round(x / ln 2), |r| <= ln2 / 2, e^r by its Taylor series
 * to degree 7 (truncation error < 6e-9 relative). Branch-free so that it vectorises. */
static inline float exp_approx(float x)
{
    const float log2e = 1.44269504088896341f;
    const float ln2_hi = 0.693145751953125f, ln2_lo = 1.42860682030941723e-6f;
    /* Ternaries, not fminf/fmaxf: without -ffast-math those stay library calls and the
     * loops around them do not vectorise. */
    x = x < -87.33654f ? -87.33654f : x;
    x = x > 88.72283f ? 88.72283f : x;
    /* Adding 1.5 * 2^23 rounds to the nearest integer in the low mantissa bits. */
    float shifter = 12582912.0f;
    float n = (x * log2e + shifter) - shifter;
    float r = (x - n * ln2_hi) - n * ln2_lo;
    float p = 1.0f / 5040.0f;
    p = p * r + 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    /* 2^n in two halves so that n = 128 (x near the top of the range) stays finite. */
    int32_t ni = (int32_t)n;
    int32_t half = ni / 2;
    uint32_t b1 = (uint32_t)(half + 127) << 23, b2 = (uint32_t)(ni - half + 127) << 23;
    float s1, s2;
    memcpy(&s1, &b1, 4);
    memcpy(&s2, &b2, 4);
    return p * s1 * s2;
}

/* erfc(z) for z >= 0 from the Chebyshev fit in Numerical Recipes (erfcc), fractional
 * error below 1.2e-7 for every z. */
static inline float erfc_nonneg(float z)
{
    float t = 1.0f / (1.0f + 0.5f * z);
    float p = 0.17087277f;
    p = p * t - 0.82215223f;
    p = p * t + 1.48851587f;
    p = p * t - 1.13520398f;
    p = p * t + 0.27886807f;
    p = p * t - 0.18628806f;
    p = p * t + 0.09678418f;
    p = p * t + 0.37409196f;
    p = p * t + 1.00002368f;
    p = p * t - 1.26551223f;
    return t * exp_approx(p - z * z);
}

RS_CLONES
void rs_exp(float *dst, const float *src, size_t n)
{
    for (size_t i = 0; i < n; i++)
        dst[i] = exp_approx(src[i]);
}

RS_CLONES
void rs_layer_norm(float *y, const float *x, const float *w, const float *b, size_t rows,
                   size_t d, float eps)
{
    for (size_t r = 0; r < rows; r++) {
        const float *xr = x + r * d;
        float *yr = y + r * d;
        float sum = 0.0f;
        for (size_t i = 0; i < d; i++)
            sum += xr[i];
        float mean = sum / (float)d;
        float sq = 0.0f;
        for (size_t i = 0; i < d; i++)
            sq += (xr[i] - mean) * (xr[i] - mean);
        float inv = 1.0f / sqrtf(sq / (float)d + eps);
        for (size_t i = 0; i < d; i++)
            yr[i] = (xr[i] - mean) * inv * w[i] + b[i];
    }
}

RS_CLONES
void rs_softmax_rows(float *x, size_t rows, size_t n)
{
    for (size_t r = 0; r < rows; r++) {
        float *xr = x + r * n;
        float mx = xr[0];
        for (size_t i = 1; i < n; i++)
            mx = xr[i] > mx ? xr[i] : mx;
        float sum = 0.0f;
        for (size_t i = 0; i < n; i++) {
            xr[i] = exp_approx(xr[i] - mx);
            sum += xr[i];
        }
        float inv = 1.0f / sum;
        for (size_t i = 0; i < n; i++)
            xr[i] *= inv;
    }
}

RS_CLONES
void rs_add_bias(float *x, const float *bias, size_t rows, size_t n)
{
    for (size_t r = 0; r < rows; r++) {
        float *xr = x + r * n;
        for (size_t i = 0; i < n; i++)
            xr[i] += bias[i];
    }
}

RS_CLONES
void rs_bias_gelu_erf(float *x, const float *bias, size_t rows, size_t n)
{
    const float inv_sqrt2 = 0.70710678118654752f;
    for (size_t r = 0; r < rows; r++) {
        float *xr = x + r * n;
        for (size_t i = 0; i < n; i++) {
            float v = xr[i] + bias[i];
            /* Phi(v) = erfc(-v/sqrt2)/2, written so that the tail is never 1 - (1 - tiny). */
            float half_tail = 0.5f * erfc_nonneg(fabsf(v) * inv_sqrt2);
            float phi = v >= 0.0f ? 1.0f - half_tail : half_tail;
            xr[i] = v * phi;
        }
    }
}

RS_CLONES
void rs_bias_gelu_tanh(float *x, const float *bias, size_t rows, size_t n)
{
    const float k = 0.79788456080286536f; /* sqrt(2/pi) */
    for (size_t r = 0; r < rows; r++) {
        float *xr = x + r * n;
        for (size_t i = 0; i < n; i++) {
            float v = xr[i] + bias[i];
            float u = k * (v + 0.044715f * v * v * v);
            /* 0.5 v (1 + tanh u) = v / (1 + e^{-2u}) */
            xr[i] = v / (1.0f + exp_approx(-2.0f * u));
        }
    }
}

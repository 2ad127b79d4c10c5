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
 * to degree 7 (truncation error < 6e-9 relative). Branch-free so that it vectorises.
 * Inputs are clamped to [-87.3, 88], NaN to -87.3: every caller needs exp of a non-positive argument or
 * only the ratio v / (1 + e^x), and the clamp keeps 2^n a normal float (n in [-126, 127]). */
static inline float exp_approx(float x)
{
    const float log2e = 1.44269504088896341f;
    const float ln2_hi = 0.693145751953125f, ln2_lo = 1.42860682030941723e-6f;
    /* Ternaries, not fminf/fmaxf: without -ffast-math those stay library calls and the
     * loops around them do not vectorise. */
    /* Written so that NaN fails both tests and becomes the lower bound: converting a NaN
     * n to an integer below would be undefined. Every finite or infinite x clamps as usual. */
    x = x > -87.33654f ? x : -87.33654f;
    x = x < 88.0f ? x : 88.0f;
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
    uint32_t bits = (uint32_t)((int32_t)n + 127) << 23;
    float scale;
    memcpy(&scale, &bits, 4);
    return p * scale;
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

/* Reductions in 16 independent lanes: without -ffast-math the compiler may not reorder a
 * float sum, so one running total would stay scalar; sixteen partial sums vectorise and,
 * as a bonus, round a little better than one long chain. */
#define RS_LANES 16

static inline float sum_lanes(const float *x, size_t n)
{
    float acc[RS_LANES] = {0};
    size_t i = 0;
    for (; i + RS_LANES <= n; i += RS_LANES)
        for (int j = 0; j < RS_LANES; j++)
            acc[j] += x[i + j];
    float s = 0.0f;
    for (; i < n; i++)
        s += x[i];
    for (int j = 0; j < RS_LANES; j++)
        s += acc[j];
    return s;
}

static inline float sum_sq_dev_lanes(const float *x, size_t n, float mean)
{
    float acc[RS_LANES] = {0};
    size_t i = 0;
    for (; i + RS_LANES <= n; i += RS_LANES)
        for (int j = 0; j < RS_LANES; j++)
            acc[j] += (x[i + j] - mean) * (x[i + j] - mean);
    float s = 0.0f;
    for (; i < n; i++)
        s += (x[i] - mean) * (x[i] - mean);
    for (int j = 0; j < RS_LANES; j++)
        s += acc[j];
    return s;
}

static inline float max_lanes(const float *x, size_t n)
{
    float acc[RS_LANES];
    size_t i = 0;
    for (int j = 0; j < RS_LANES; j++)
        acc[j] = x[0];
    for (; i + RS_LANES <= n; i += RS_LANES)
        for (int j = 0; j < RS_LANES; j++)
            acc[j] = x[i + j] > acc[j] ? x[i + j] : acc[j];
    float m = x[0];
    for (; i < n; i++)
        m = x[i] > m ? x[i] : m;
    for (int j = 0; j < RS_LANES; j++)
        m = acc[j] > m ? acc[j] : m;
    return m;
}

RS_CLONES
void rs_exp(float *dst, const float *src, size_t n)
{
    for (size_t i = 0; i < n; i++)
        dst[i] = exp_approx(src[i]);
}

RS_CLONES
void rs_layer_norm(float *restrict y, const float *restrict x, const float *restrict w,
                   const float *restrict b, size_t rows, size_t d, float eps)
{
    for (size_t r = 0; r < rows; r++) {
        const float *xr = x + r * d;
        float *yr = y + r * d;
        float mean = sum_lanes(xr, d) / (float)d;
        float sq = sum_sq_dev_lanes(xr, d, mean);
        float inv = 1.0f / sqrtf(sq / (float)d + eps);
        for (size_t i = 0; i < d; i++)
            yr[i] = (xr[i] - mean) * inv * w[i] + b[i];
    }
}

RS_CLONES
void rs_softmax_rows(float *x, size_t rows, size_t n)
{
    /* Three passes so that the exponentials run over the whole block as one flat loop:
     * rows are often short (50 attention scores), and a loop per row would spend much of
     * its time in the scalar remainder. */
    for (size_t r = 0; r < rows; r++) {
        float *xr = x + r * n;
        float mx = max_lanes(xr, n);
        for (size_t i = 0; i < n; i++)
            xr[i] -= mx;
    }
    for (size_t i = 0; i < rows * n; i++)
        x[i] = exp_approx(x[i]);
    for (size_t r = 0; r < rows; r++) {
        float *xr = x + r * n;
        float inv = 1.0f / sum_lanes(xr, n);
        for (size_t i = 0; i < n; i++)
            xr[i] *= inv;
    }
}

void rs_fill_rows(float *restrict x, const float *restrict row, size_t rows, size_t n, size_t ld)
{
    for (size_t r = 0; r < rows; r++)
        memcpy(x + r * ld, row, sizeof(float) * n);
}

RS_CLONES
void rs_add_bias(float *restrict x, const float *restrict bias, size_t rows, size_t n, size_t ld)
{
    for (size_t r = 0; r < rows; r++) {
        float *xr = x + r * ld;
        for (size_t i = 0; i < n; i++)
            xr[i] += bias[i];
    }
}

RS_CLONES
void rs_gelu_erf(float *x, size_t n)
{
    const float inv_sqrt2 = 0.70710678118654752f;
    for (size_t i = 0; i < n; i++) {
        float v = x[i];
        /* Phi(v) = erfc(-v/sqrt2)/2, written so that the tail is never 1 - (1 - tiny). */
        float half_tail = 0.5f * erfc_nonneg(fabsf(v) * inv_sqrt2);
        float phi = v >= 0.0f ? 1.0f - half_tail : half_tail;
        x[i] = v * phi;
    }
}

RS_CLONES
void rs_gelu_tanh(float *x, size_t n)
{
    const float k = 0.79788456080286536f; /* sqrt(2/pi) */
    for (size_t i = 0; i < n; i++) {
        float v = x[i];
        float u = k * (v + 0.044715f * v * v * v);
        /* 0.5 v (1 + tanh u) = v / (1 + e^{-2u}) */
        x[i] = v / (1.0f + exp_approx(-2.0f * u));
    }
}

RS_CLONES
void rs_gelu_erf_backward(float *restrict dh, const float *restrict h, size_t n)
{
    const float inv_sqrt2 = 0.70710678118654752f, inv_sqrt_2pi = 0.39894228040143268f;
    for (size_t i = 0; i < n; i++) {
        float v = h[i];
        float half_tail = 0.5f * erfc_nonneg(fabsf(v) * inv_sqrt2);
        float phi = v >= 0.0f ? 1.0f - half_tail : half_tail;
        /* d/dv v Phi(v) = Phi(v) + v phi(v), phi the normal density. */
        dh[i] *= phi + v * inv_sqrt_2pi * exp_approx(-0.5f * v * v);
    }
}

RS_CLONES
void rs_gelu_tanh_backward(float *restrict dh, const float *restrict h, size_t n)
{
    const float k = 0.79788456080286536f; /* sqrt(2/pi) */
    for (size_t i = 0; i < n; i++) {
        float v = h[i];
        float u = k * (v + 0.044715f * v * v * v);
        /* gelu = v s with s = 1 / (1 + e^{-2u}) = (1 + tanh u) / 2, so
         * gelu' = s + v * 2 s (1 - s) * du/dv. */
        float e = exp_approx(-2.0f * u);
        float s = 1.0f / (1.0f + e);
        dh[i] *= s + v * 2.0f * s * (e * s) * k * (1.0f + 3.0f * 0.044715f * v * v);
    }
}

/* sum of a[i] * b[i], in lanes as the other reductions. */
static inline float dot_lanes(const float *a, const float *b, size_t n)
{
    float acc[RS_LANES] = {0};
    size_t i = 0;
    for (; i + RS_LANES <= n; i += RS_LANES)
        for (int j = 0; j < RS_LANES; j++)
            acc[j] += a[i + j] * b[i + j];
    float s = 0.0f;
    for (; i < n; i++)
        s += a[i] * b[i];
    for (int j = 0; j < RS_LANES; j++)
        s += acc[j];
    return s;
}

RS_CLONES
void rs_layer_norm_backward(float *restrict dx, const float *restrict dy, const float *restrict x,
                            const float *restrict w, size_t rows, size_t d, float eps)
{
    for (size_t r = 0; r < rows; r++) {
        const float *xr = x + r * d, *gr = dy + r * d;
        float *dr = dx + r * d;
        float mean = sum_lanes(xr, d) / (float)d;
        float sq = sum_sq_dev_lanes(xr, d, mean);
        float inv = 1.0f / sqrtf(sq / (float)d + eps);
        /* With g = w * dy and xhat = (x - mean) * inv:
         * dx = inv * (g - mean(g) - xhat * mean(g * xhat)). */
        float sum_g = 0.0f, sum_gx = 0.0f;
        {
            float acc_g[RS_LANES] = {0}, acc_gx[RS_LANES] = {0};
            size_t i = 0;
            for (; i + RS_LANES <= d; i += RS_LANES)
                for (int j = 0; j < RS_LANES; j++) {
                    float g = w[i + j] * gr[i + j];
                    acc_g[j] += g;
                    acc_gx[j] += g * (xr[i + j] - mean);
                }
            for (; i < d; i++) {
                float g = w[i] * gr[i];
                sum_g += g;
                sum_gx += g * (xr[i] - mean);
            }
            for (int j = 0; j < RS_LANES; j++) {
                sum_g += acc_g[j];
                sum_gx += acc_gx[j];
            }
        }
        float mean_g = sum_g / (float)d, mean_gx = sum_gx * inv / (float)d;
        for (size_t i = 0; i < d; i++)
            dr[i] += inv * (w[i] * gr[i] - mean_g - (xr[i] - mean) * inv * mean_gx);
    }
}

RS_CLONES
void rs_softmax_backward(float *restrict g, const float *restrict p, size_t rows, size_t n)
{
    for (size_t r = 0; r < rows; r++) {
        float *gr = g + r * n;
        const float *pr = p + r * n;
        float s = dot_lanes(pr, gr, n);
        for (size_t i = 0; i < n; i++)
            gr[i] = pr[i] * (gr[i] - s);
    }
}

/* kernels.h — the element-wise and row-wise pieces of the forward and backward passes
 * that are not matrix products (those all go through gemm.h).
 *
 * Each kernel works on flat row-major float arrays, shapes in the comments, and touches
 * nothing but its arguments (restrict: outputs never overlap inputs unless stated), so
 * callers may run disjoint rows on different threads.
 * exp and erf are polynomial approximations written so that the compiler vectorises
 * them (libm's expf/erff are scalar calls): relative error of rs_exp <= 2e-7 on
 * [-87, 88] (inputs are clamped to [-87.3, 88]), absolute error of either GELU
 * <= 1e-6 * max(1,|x|); tests/test_kernels.c holds them to that against libm in double. */
#ifndef RS_KERNELS_H
#define RS_KERNELS_H

#include <stddef.h>

/* dst[i] = exp(src[i]) for n values; in place allowed. */
void rs_exp(float *dst, const float *src, size_t n);

/* y = LayerNorm(x) * w + b over each row: x, y (rows, d). */
void rs_layer_norm(float *restrict y, const float *restrict x, const float *restrict w,
                   const float *restrict b, size_t rows, size_t d, float eps);

/* In place softmax over each row of x (rows, n), max-subtracted. */
void rs_softmax_rows(float *x, size_t rows, size_t n);

/* x (rows, n) += bias (n) on every row, row stride LD. */
void rs_add_bias(float *restrict x, const float *restrict bias, size_t rows, size_t n, size_t ld);

/* In place: x = gelu(x) for n values, exact (erf) form or tanh approximation. */
void rs_gelu_erf(float *x, size_t n);
void rs_gelu_tanh(float *x, size_t n);

/* Backward of the kernels above, for the input gradient (model/grad.c). Each uses the
 * same approximations as its forward, so it is the exact derivative of what runs. */

/* dh[i] *= gelu'(h[i]) for n values: H the GELU's input (pre-activation). */
void rs_gelu_erf_backward(float *restrict dh, const float *restrict h, size_t n);
void rs_gelu_tanh_backward(float *restrict dh, const float *restrict h, size_t n);

/* dx (rows, d) += d LayerNorm(x) / dx applied to dy (rows, d), for the layer
 * y = LayerNorm(x) * w + b; mean and variance are recomputed from X as rs_layer_norm does. */
void rs_layer_norm_backward(float *restrict dx, const float *restrict dy, const float *restrict x,
                            const float *restrict w, size_t rows, size_t d, float eps);

/* In place: g = p * (g - sum(p * g)) over each row (rows, n) — the softmax's backward, P
 * its output, G the gradient with respect to P on entry and to its logits on return. */
void rs_softmax_backward(float *restrict g, const float *restrict p, size_t rows, size_t n);

/* Each of ROWS rows of x (row stride LD) = ROW (n). */
void rs_fill_rows(float *restrict x, const float *restrict row, size_t rows, size_t n, size_t ld);

#endif

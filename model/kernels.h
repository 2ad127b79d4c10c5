/* kernels.h — the element-wise and row-wise pieces of the forward pass that are not
 * matrix products (those all go through cblas_sgemm in forward.c).
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

/* Each of ROWS rows of x (row stride LD) = ROW (n). */
void rs_fill_rows(float *restrict x, const float *restrict row, size_t rows, size_t n, size_t ld);

#endif

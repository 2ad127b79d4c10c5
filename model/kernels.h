/* kernels.h — the element-wise and row-wise pieces of the forward pass that are not
 * matrix products (those all go through cblas_sgemm in forward.c).
 *
 * Each kernel works on flat row-major float arrays, shapes in the comments, and touches
 * nothing but its arguments, so callers may run disjoint rows on different threads.
 * exp and erf are polynomial approximations written so that the compiler vectorises
 * them (libm's expf/erff are scalar calls): relative error of rs_expf <= 2e-7 over the
 * float range, absolute error of the erf GELU <= 1e-6 * max(1,|x|); tests/test_kernels.c
 * holds them to that against libm in double. */
#ifndef RS_KERNELS_H
#define RS_KERNELS_H

#include <stddef.h>

/* dst[i] = exp(src[i]) for n values; in place allowed. */
void rs_exp(float *dst, const float *src, size_t n);

/* y = LayerNorm(x) * w + b over each row: x, y (rows, d). */
void rs_layer_norm(float *y, const float *x, const float *w, const float *b, size_t rows,
                   size_t d, float eps);

/* In place softmax over each row of x (rows, n), max-subtracted. */
void rs_softmax_rows(float *x, size_t rows, size_t n);

/* x (rows, n) += bias (n) on every row. */
void rs_add_bias(float *x, const float *bias, size_t rows, size_t n);

/* In place: x = gelu(x + bias) over rows of n, exact (erf) form or tanh approximation. */
void rs_bias_gelu_erf(float *x, const float *bias, size_t rows, size_t n);
void rs_bias_gelu_tanh(float *x, const float *bias, size_t rows, size_t n);

#endif

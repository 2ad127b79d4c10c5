/* layers.h — pieces shared by the forward pass (forward.c) and its taped twin in the
 * gradient (grad.c), internal to model/. Both must run exactly the same float operations
 * so that the gradient's forward reproduces rs_forward_run bit for bit; keeping these
 * here, once, is what guarantees it. */
#ifndef RS_LAYERS_H
#define RS_LAYERS_H

#include <cblas.h>
#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "kernels.h"

/* Tokens per group: enough rows for an efficient GEMM, few enough that a group's
 * activations stay near the caches and a batch splits into many groups for the threads. */
#define RS_GROUP_TOKENS 1024

/* G: images per group for this model (see forward.h, "Groups and determinism"). */
static inline int rs_group_images(const rs_config *c)
{
    int T = rs_config_tokens(c);
    return RS_GROUP_TOKENS / T > 1 ? RS_GROUP_TOKENS / T : 1;
}

/* C (m,n) = [C +] bias + A (m,k) * W (n,k)^T — every dense layer, weights stored (out,
 * in). With ACCUMULATE the product adds to C (the residual stream), else it replaces C.
 * BIAS (n) may be NULL. The bias goes into C first, so OpenBLAS runs with beta = 1 and
 * makes no pass of its own to clear C. */
static inline void rs_gemm_bias(int m, int n, int k, const float *a, int lda, const float *w, int ldw,
                                const float *bias, bool accumulate, float *c, int ldc)
{
    float beta = 1.0f;
    if (bias && accumulate)
        rs_add_bias(c, bias, (size_t)m, (size_t)n, (size_t)ldc);
    else if (bias)
        rs_fill_rows(c, bias, (size_t)m, (size_t)n, (size_t)ldc);
    else if (!accumulate)
        beta = 0.0f;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, n, k, 1.0f, a, lda, w, ldw, beta, c, ldc);
}

static inline void rs_apply_gelu(const rs_config *c, float *h, size_t n)
{
    if (c->gelu == RS_GELU_ERF)
        rs_gelu_erf(h, n);
    else
        rs_gelu_tanh(h, n);
}

/* Top R experts of one token by decreasing probability; a strict '>' while scanning
 * upwards keeps the lower index on ties. R is small (<= E), so selection beats sorting. */
static inline void rs_top_experts(const float *p, int E, int R, int32_t *idx, float *gate)
{
    for (int r = 0; r < R; r++) {
        int best = -1;
        for (int e = 0; e < E; e++) {
            int taken = 0;
            for (int q = 0; q < r; q++)
                taken |= idx[q] == e;
            if (!taken && (best < 0 || p[e] > p[best]))
                best = e;
        }
        idx[r] = best;
        gate[r] = p[best];
    }
}

#endif

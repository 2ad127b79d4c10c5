/* layers.h — the forward pass's layers, shared by rs_forward_run (forward.c) and the
 * gradient's taped forward (grad.c); internal to model/. Both must run exactly the same
 * float operations so that the gradient's forward reproduces rs_forward_run bit for bit;
 * keeping the layers here, once, is what guarantees it. The gradient only asks the
 * layers to keep what they compute anyway (attention probabilities, GELU inputs, expert
 * outputs) in buffers of its own, through the optional fields below. */
#ifndef RS_LAYERS_H
#define RS_LAYERS_H

#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "dispatch.h"
#include "gemm.h"
#include "kernels.h"
#include "model.h"

/* C (m,n) = [C +] bias + A (m,k) * W (n,k)^T — every dense layer, weights stored (out,
 * in). With ACCUMULATE the product adds to C (the residual stream), else it replaces C.
 * BIAS (n) may be NULL. The bias goes into C first, so the GEMM runs with beta = 1 and
 * makes no pass of its own to clear C. WH: W's bfloat16 twin (model.h), or NULL; used
 * when GM computes in bf16. */
static inline void rs_gemm_bias(rs_gemm *gm, int m, int n, int k, const float *a, int lda, const float *w,
                                const uint16_t *wh, int ldw, const float *bias, bool accumulate, float *c, int ldc)
{
    float beta = 1.0f;
    if (bias && accumulate)
        rs_add_bias(c, bias, (size_t)m, (size_t)n, (size_t)ldc);
    else if (bias)
        rs_fill_rows(c, bias, (size_t)m, (size_t)n, (size_t)ldc);
    else if (!accumulate)
        beta = 0.0f;
    if (wh && rs_gemm_precision(gm) == RS_PRECISION_BF16)
        rs_gemm_bf16(gm, m, n, k, a, lda, wh, beta, c, ldc);
    else
        rs_gemm_weight_f32(gm, true, m, n, k, a, lda, w, ldw, beta, c, ldc);
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

/* One group's working buffers, N = G*T rows. */
typedef struct rs_group_bufs {
    rs_gemm *gemm;     /* this thread's GEMM state (gemm.h), owned by the forward / gradient state */
    float *x;          /* (N,D) residual stream */
    float *xn;         /* (N,D) normalised input of the current sub-block */
    float *attn;       /* (N,D) attention output before the projection */
    float *hidden;     /* (N,M) MLP / expert hidden layer */
    float *gathered;   /* (N,D) tokens routed to one expert */
    float *patches;    /* (G, C*H*W) im2col of the group */
    float *pooled;     /* (G,D) */
    float *pre;        /* (G,D) pre_logits output */
} rs_group_bufs;

/* One block's buffers for a group. The forward pass reuses one set for every block; the
 * gradient keeps one per block. */
typedef struct rs_block_bufs {
    float *qkv;          /* (N,3D) */
    float *att;          /* attention probabilities: head (b,h) at att + (b*H+h) * att_stride */
    size_t att_stride;   /* 0: one (T,T) buffer reused by every head */
    float *hpre;         /* NULL, or GELU inputs kept: dense (N,M), MoE (N*k,M) in routed order */
    float *y;            /* expert outputs: (N,D) reused per expert, or (N*k,D) in routed order */
    bool keep_y;         /* y holds every expert's rows (routed order) */
    float *probs;        /* MoE: (N,E) router softmax */
    int32_t *top_idx;    /* MoE: (N,R) */
    float *top_gate;     /* MoE: (N,R) */
    int32_t *route_rows;  /* MoE: (N*k) token rows grouped by expert */
    int32_t *route_start; /* MoE: (E+1) start of each expert's rows, then (E) fill cursors */
    uint8_t *kept;       /* MoE with a capacity: (N,R) dispatch's kept mask; NULL: every top-k choice runs */
    const int32_t *forced; /* MoE: NULL, or (N,k) forced routing (forward.h): a row of k experts to run
                              instead of the router's top-k, or a row starting with -1 (its own) */
    const uint8_t *forced_run; /* with forced: NULL (every forced choice runs), or (N,k) 0 where a
                              forced choice stays dropped (its source's capacity dropped it) */
} rs_block_bufs;

/* The k experts token N runs at the MoE layer of BB, by rank: its forced row, or the first k
 * of its router's top-R. */
static inline const int32_t *rs_moe_choices(const rs_block_bufs *bb, int n, int R, int k)
{
    if (bb->forced && bb->forced[(size_t)n * k] >= 0)
        return bb->forced + (size_t)n * k;
    return bb->top_idx + (size_t)n * R;
}

/* x (G,T,D) = [cls] + patches @ W^T + b, + pos_embed. IMAGES (G,C,H,W): normalised, or
 * [0,1] pixels normalised here (rs_model_normalize_span, predict.h) when NORMALISE. */
void rs_layer_embed(const rs_model *m, const rs_group_bufs *g, const float *images, int G, bool normalise);
/* x += proj(MHSA(norm1(x))). */
void rs_layer_attention(const rs_config *c, const rs_group_bufs *g, const rs_block_bufs *bb,
                        const rs_block_weights *w, int G);
/* x += fc2(gelu(fc1(xn))), xn holding norm2(x). */
void rs_layer_dense(const rs_config *c, const rs_group_bufs *g, const rs_block_bufs *bb,
                    const rs_block_weights *w, int N);
/* Routes xn and adds each token's top_k expert outputs, weighted by their probabilities,
 * to x; experts in increasing index order. With DISPATCH (and bb->kept) the N tokens are
 * dispatch groups of GROUP_ROWS (>= 1) consecutive rows each (dispatch.h; the last may hold
 * fewer), each dispatched on its own, its capacity from its own rows: bb->kept receives
 * the kept mask and only kept choices run, their input and output rows rounded to
 * bfloat16 when DISPATCH->bf16 (y, kept by the gradient, holds the rounded outputs); ORDER
 * (2N) is its scratch. The kept choices of all the dispatch groups are then gathered by
 * expert, one product per expert for the N rows. DISPATCH NULL: every top-k choice runs
 * (GROUP_ROWS unused). With bb->forced,
 * a forced token runs its forced experts instead (rs_moe_choices), gated by its own
 * probabilities, as bb->forced_run says and never dropped by this group's capacity:
 * dispatch still places its router's choices, so the other tokens are kept or dropped as
 * without forcing, and its kept row reads what forced_run says (1 without it). */
void rs_layer_moe(const rs_config *c, const rs_group_bufs *g, const rs_block_bufs *bb, const rs_block_weights *w,
                  int N, const rs_dispatch *dispatch, int group_rows, int32_t *order);
/* LOGITS (G,K) from the final residual stream (x is left as it is). */
void rs_layer_head(const rs_model *m, const rs_group_bufs *g, int G, float *logits);

#endif

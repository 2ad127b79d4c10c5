/* forward.h — the V-MoE forward pass on a batch of normalised images.
 *
 * Semantics are those of docs/checkpoint.md: patch embedding (a stride-P convolution
 * done as im2col + GEMM), class token or none (GAP), position embeddings, pre-LN blocks
 * x += attn(norm1(x)); x += mlp_or_moe(norm2(x)), final norm on every token, pooling
 * (class token, or mean over tokens), optional tanh(pre_logits), head.
 * MoE: p = softmax(W_r x [+ b_r]); the top_k experts (ties to the lower index) each add
 * p_e * expert_e(x), experts applied in increasing index order.
 *
 * Groups and determinism: a batch is cut into groups of G consecutive images (G fixed by
 * the model and the dispatch: about 1024 tokens, rs_forward_group_size), and each group
 * runs the whole network as one unit on one thread (group.h states the rule and runs the
 * loop), so outputs do not depend on the thread count, nor on the batch size when batches
 * start at multiples of G.
 *
 * Ownership: rs_forward_create allocates every buffer for up to max_batch images; the
 * outputs (logits, routing) belong to the rs_forward and are overwritten by the next
 * rs_forward_run. The model must outlive the forward state. One rs_forward is used by
 * one caller thread at a time; several may share one model.
 *
 * Threads: THREADS OpenMP threads each run whole groups, calling single-threaded GEMMs
 * through their own rs_gemm (gemm.h; the model's backend and precision, rs_model_set_compute);
 * rs_forward_create therefore sets OpenBLAS's process-wide thread count to 1
 * (openblas_set_num_threads). A oneDNN failure inside a run (out of memory creating a
 * primitive) fails rs_forward_run with its message. */
#ifndef RS_FORWARD_H
#define RS_FORWARD_H

#include <stdbool.h>
#include <stdint.h>

#include "dispatch.h"
#include "model.h"

typedef struct rs_moe_routing {
    int block;          /* block index of this MoE layer */
    float *probs;       /* (B,T,E) router softmax; tokens in sequence order (class token first) */
    int32_t *top_idx;   /* (B,T,R) experts by decreasing probability, R = max(2, top_k) */
    float *top_gate;    /* (B,T,R) their probabilities */
    uint8_t *kept;      /* (B,T,R) 1 where dispatch kept the choice, 0 where it dropped it or
                           the rank is beyond top_k; NULL without a capacity factor. For a
                           forced token it is about the forced choice (rs_forced's run) */
    int32_t *executed;  /* (B,T,k) the experts each token ran, by rank: its forced row where
                           the run forced it, else the first k of top_idx (with a capacity,
                           kept says which of them ran) */
    bool forced;        /* the last run forced this layer (rs_forward_run_forced) */
} rs_moe_routing;

typedef struct rs_forward_out {
    int batch;          /* images in the last run */
    int tokens;         /* T */
    int record_k;       /* R */
    float *logits;      /* (B,K) */
    rs_moe_routing *moe; /* num_moe entries */
} rs_forward_out;

typedef struct rs_forward rs_forward;

int rs_forward_create(const rs_model *model, int max_batch, int threads, rs_forward **out,
                      rs_error *err);
/* The same with dispatch DISPATCH (dispatch.h; NULL or capacity_factor 0: none, exactly
 * rs_forward_create). With a capacity factor the group G above holds whole dispatch groups
 * of DISPATCH->group_images images (a power of two of them, group.h): every dispatch group is
 * dispatched on its own, exactly as alone, its capacity computed from its own tokens (the
 * last one of a batch may hold fewer images), so that batches starting at multiples of G
 * give the same records for any batch size and thread count. DISPATCH->bf16 rounds expert
 * inputs and outputs to bfloat16 (vmoe's Bfloat16Dispatcher); DISPATCH->pad_last runs a
 * short last dispatch group as group_images images, the missing ones all-zero inputs that
 * take capacity, whose outputs (in the rows after the batch's, which the outputs then hold
 * up to whole dispatch groups) no caller reads. RS_EINVAL for a group or capacity factor
 * outside dispatch.h's bounds, or bf16/pad_last without a capacity factor. */
int rs_forward_create_dispatch(const rs_model *model, int max_batch, int threads, const rs_dispatch *dispatch,
                               rs_forward **out, rs_error *err);
void rs_forward_free(rs_forward *f);

/* IMAGES: (batch, C, H, W), already normalised with the config's mean/std.
 * 1 <= batch <= max_batch, else RS_EINVAL. */
int rs_forward_run(rs_forward *f, const float *images, int batch, rs_error *err);

/* Forced routing of one MoE layer (rs_forward_run_forced). */
typedef struct rs_forced {
    const int32_t *experts;  /* NULL: the layer routes as usual. Else (batch,T,k): for each image
                                and token either k distinct experts to run in place of its top-k,
                                by rank, or -1 in the first place (its own choice) */
    const uint8_t *run;      /* NULL: every forced choice runs. Else (batch,T,k): 0 where a forced
                                choice stays dropped (as the view it comes from dropped it) */
} rs_forced;

/* Forced routing (routing interventions, docs/dispatch.md): the same pass, but FORCED
 * (num_moe entries, or NULL: none) may override the router's choice per MoE slot. A forced
 * choice is gated by this pass's own router probability for its expert (not renormalised).
 * The recorded routing (probs, top_idx, top_gate) stays the router's; executed says what a
 * token was given to run, and kept which of it ran. With a capacity, forced choices run as
 * FORCED's run says, never dropped by this pass's capacity, and dispatch still places the
 * forced tokens' router choices, so every other token is kept or dropped as without
 * forcing. FORCED NULL, or every experts NULL, is rs_forward_run bit for bit. RS_EINVAL
 * (nothing run) for an id outside -1..E-1, or a forced row holding -1 or an expert twice. */
int rs_forward_run_forced(rs_forward *f, const float *images, int batch, const rs_forced *forced, rs_error *err);

/* G: images per group (see above). */
int rs_forward_group_size(const rs_forward *f);

/* The outputs of the last run. */
const rs_forward_out *rs_forward_result(const rs_forward *f);

/* Sets THREADS for OpenBLAS (process-wide) — exposed for benchmarks that time BLAS alone. */
void rs_blas_set_threads(int threads);

#endif

/* grad.h — exact input gradients of the forward pass (forward.h) for attack objectives.
 *
 * An objective is a per-image scalar to MAXIMISE, value = term[0] + beta * term[1]
 * (docs/gradients.md defines every term). Router terms are means over the patch tokens
 * (class token excluded) of the selected MoE blocks; terms to be minimised enter negated;
 * references from the unattacked pass are constants.
 *
 * rs_grad_run runs a taped copy of the forward pass — the same float operations in the
 * same groups as rs_forward_run, so its routing and logits are bit-identical to the
 * forward pass's on the same normalised images (in float32: with a bf16 model, gemm.h,
 * the gradient's forward and backward stay float32 on the model's backend) — and then the
 * backward pass, every product through gemm.h. As in autograd, which experts are selected is a constant; the
 * gates are the softmax probabilities of the selected experts, so the router gets
 * gradient through the gates and through the objective's router terms.
 *
 * With a capacity (rs_grad_create_dispatch) the gradient is that of the capacity-limited
 * forward pass (rs_forward_create_dispatch with the same dispatch): each group holds the
 * same whole dispatch groups as the forward pass's, each dispatched as alone, the kept mask of the current pixels is a constant (vmoe's combine weights
 * with the mask applied), a dropped choice gets no gradient, and the router's softmax gets
 * the kept choices' gradient. With the dispatch's bf16 the roundings of expert inputs and
 * outputs pass the gradient straight through; with pad_last a short last group runs padded
 * with zero images (pixels at the mean) that have no objective, as in the forward pass.
 *
 * Determinism, threads and ownership are those of forward.h: groups of
 * rs_grad_group_size images run whole on one thread (the forward pass's own group loop,
 * group.h), so results do not depend on the thread count, nor on the batch size when
 * batches start at multiples of G. The model must outlive the rs_grad; one rs_grad serves
 * one caller thread at a time; rs_grad_create sets OpenBLAS's process-wide thread count
 * to 1. */
#ifndef RS_GRAD_H
#define RS_GRAD_H

#include <stdint.h>

#include "dispatch.h"
#include "model.h"

typedef enum rs_objective_kind {
    RS_OBJ_CE,            /* cross-entropy of the true label (maximised) */
    RS_OBJ_ROUTER,        /* -log p_{e*}, e* the reference's top-1 expert (ties to the lower index); maximised */
    RS_OBJ_ROUTER_TARGET, /* +log p_target (the cross-entropy toward `target`, minimised, enters negated):
                           * a targeted attack toward one expert */
    RS_OBJ_JSD,           /* Jensen-Shannon divergence in bits between reference and current router softmax */
    RS_OBJ_MARGIN,        /* p_{e*} minus the best other p_e, minimised (enters negated) */
    RS_OBJ_ROUTER_CE      /* -log p_target, the cross-entropy of the router softmax against `target` or
                           * label mod E (target=label), maximised: AdvMoE's router attack */
} rs_objective_kind;

/* rs_objective.target for target=label: each image's label mod E. */
#define RS_OBJ_TARGET_LABEL (-2)

typedef struct rs_objective {
    int num_terms;         /* 1 or 2 */
    rs_objective_kind term[2];
    double beta;           /* weight of term[1] */
    int target;            /* expert for RS_OBJ_ROUTER_TARGET / RS_OBJ_ROUTER_CE, RS_OBJ_TARGET_LABEL
                            * (router-ce only), or -1 when not given */
    unsigned block_mask;   /* bit b set: MoE block with block index b counts; 0 = all MoE blocks */
} rs_objective;

/* The defaults: loss=router, beta=1, no target, all MoE blocks. Call before
 * rs_objective_set: a zeroed struct (num_terms 0) is refused by rs_objective_check. */
void rs_objective_init(rs_objective *obj);

/* Parses one KEY=VALUE pair of an attack spec: loss=ce|router|router-target|jsd|margin|
 * router-ce or A&B (two of them), beta= (a finite number), target= (an expert, integer >= 0,
 * or "label"),
 * layers=B1/B2/... (block indices 0..31). Returns 1 when KEY is one of these and was
 * consumed, 0 when KEY is not an objective key (OBJ untouched), RS_EINVAL with a one-line
 * message quoting the value when the value is bad. */
int rs_objective_set(rs_objective *obj, const char *key, const char *value, rs_error *err);

/* Checks OBJ against a model: one or two known terms; target given exactly when a term is
 * router-target or router-ce, an expert < num_experts, or label with router-ce only; every
 * block in layers= a MoE block; a router term only when the model has a MoE block.
 * RS_EINVAL with a one-line message. */
int rs_objective_check(const rs_objective *obj, const rs_config *cfg, rs_error *err);

/* Whether OBJ needs LABELS (a CE term, or router-ce with target=label) / REF_PROBS (router,
 * jsd or margin terms). */
int rs_objective_needs_labels(const rs_objective *obj);
int rs_objective_needs_ref(const rs_objective *obj);

typedef struct rs_grad rs_grad;

/* Buffers for batches of up to MAX_BATCH images on THREADS threads. RS_EINVAL for
 * max_batch or threads < 1, RS_ENOMEM naming the model file. */
int rs_grad_create(const rs_model *model, int max_batch, int threads, rs_grad **out, rs_error *err);
/* The same with dispatch DISPATCH (NULL or capacity_factor 0: none, exactly rs_grad_create):
 * groups hold whole dispatch groups of DISPATCH->group_images images, cut and dispatched as
 * the forward pass does (forward.h, group.h), so a batch whose groups are the forward pass's
 * groups sees the same kept choices. RS_EINVAL for a group or capacity factor outside dispatch.h's bounds. */
int rs_grad_create_dispatch(const rs_model *model, int max_batch, int threads, const rs_dispatch *dispatch,
                            rs_grad **out, rs_error *err);
void rs_grad_free(rs_grad *g);

/* G: images per group, the same as rs_forward_group_size for this model and dispatch. */
int rs_grad_group_size(const rs_grad *g);

/* PIXELS (B,C,H,W) in [0,1] pixel units (normalised here with the config's mean/std:
 * predict.h's rule). LABELS (B) in 0..K-1 for CE (may be NULL when no term needs it).
 * For router-ce with target=label the target of image b is LABELS[b] mod E.
 * REF_PROBS: num_moe pointers, each (B,T,E) router softmax of the reference (unattacked)
 * pass in the layout of rs_forward_out.moe[l].probs (may be NULL when no term needs it).
 * Writes VALUE (B) and GRAD (B,C,H,W) = d value / d pixels (pixel units).
 * RS_EINVAL (nothing written) for a batch outside 1..max_batch, an objective that fails
 * rs_objective_check, a missing LABELS/REF_PROBS or a label out of range. */
int rs_grad_run(rs_grad *g, const rs_objective *obj, const float *pixels, int batch,
                const int32_t *labels, const float *const *ref_probs,
                float *value, float *grad, rs_error *err);

#endif

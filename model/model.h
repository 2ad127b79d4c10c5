/* model.h — a V-MoE checkpoint opened for inference.
 *
 * rs_model_open maps a .safetensors file (see safetensors.h), parses the config in its
 * metadata ("format" must be "routerscope-vmoe"), and binds every tensor of the layout in
 * docs/checkpoint.md, checking each shape against the config. It fails on a missing
 * tensor, a wrong shape, or a tensor the layout does not know (usually a naming bug in an
 * exporter). Messages name the file and tensor:
 *   "m.safetensors: tensor blocks.3.moe.router.weight: shape [8,63] but config wants [8,64]"
 *
 * Weights are views into the mapping (llama2.c style) when the tensor is F32 and 4-byte
 * aligned in the file; F16/BF16 tensors are widened and unaligned F32 tensors copied into
 * buffers the model owns. All pointers live until rs_model_close. A model is read-only
 * after open (and rs_model_set_compute) and may be shared by several forward states. */
#ifndef RS_MODEL_H
#define RS_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "gemm.h"
#include "rs_error.h"
#include "safetensors.h"

typedef struct rs_block_weights {
    const float *norm1_w, *norm1_b;  /* (D) */
    const float *qkv_w, *qkv_b;      /* (3D,D) (3D) */
    const float *proj_w, *proj_b;    /* (D,D) (D) */
    const float *norm2_w, *norm2_b;  /* (D) */
    /* dense block (moe_slot < 0) */
    const float *fc1_w, *fc1_b;      /* (M,D) (M) */
    const float *fc2_w, *fc2_b;      /* (D,M) (D) */
    /* MoE block (moe_slot >= 0); expert e's matrices start at e*M*D */
    int moe_slot;
    const float *router_w, *router_b; /* (E,D) (E) or NULL */
    const float *efc1_w, *efc1_b;    /* (E,M,D) (E,M) */
    const float *efc2_w, *efc2_b;    /* (E,D,M) (E,D) */
    /* bfloat16 twins of the large matrices (qkv, proj, fc1, fc2, experts' fc1, fc2), same
     * shapes; NULL unless rs_model_set_compute chose bf16 */
    const uint16_t *qkv_h, *proj_h, *fc1_h, *fc2_h, *efc1_h, *efc2_h;
} rs_block_weights;

typedef struct rs_model {
    rs_config cfg;
    rs_safetensors *file;               /* owned */
    const float *patch_w, *patch_b;     /* (D, C*P*P) (D) */
    const float *cls_token;             /* (D) or NULL for gap */
    const float *pos_embed;             /* (T,D) */
    rs_block_weights blocks[RS_MAX_DEPTH];
    const float *norm_w, *norm_b;       /* (D) */
    const float *pre_logits_w, *pre_logits_b; /* (D,D) (D) or NULL */
    const float *head_w, *head_b;       /* (K,D) (K) */
    long long num_params;
    size_t copied_bytes;                /* widened or realigned, owned by the model */
    float **owned;                      /* owned buffers */
    int num_owned;
    rs_gemm_backend gemm;               /* the GEMM backend every pass of this model uses */
    rs_precision precision;             /* of the large matmuls of the forward pass */
    uint16_t *bf16;                     /* the twins' storage, owned; NULL in f32 */
} rs_model;

/* Opens with the OpenBLAS backend in float32. */
int rs_model_open(const char *path, rs_model **out, rs_error *err);
/* Chooses the GEMM backend and precision of every forward and gradient state created from
 * MODEL afterwards (gemm.h); call it before creating any, since the model is shared
 * read-only by them. bf16 converts the large matrices once (round to nearest even) into
 * twins the model owns; the gradient always computes in float32. rs_gemm_check's errors,
 * RS_ENOMEM. */
int rs_model_set_compute(rs_model *model, rs_gemm_backend backend, rs_precision precision, rs_error *err);
void rs_model_close(rs_model *model);

#endif

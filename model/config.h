/* config.h — the model configuration carried in a checkpoint's __metadata__["config"].
 *
 * rs_config_parse reads the JSON text (the metadata value is a JSON object encoded as a
 * string) and checks every key of the checkpoint contract in docs/checkpoint.md: types,
 * ranges and consistency (patch size divides the image, heads divide hidden, MoE block
 * indices inside depth and strictly increasing, 1 <= top_k <= num_experts, one mean/std
 * per channel, one label per class, a "dispatch" object within dispatch.h's bounds), and
 * the optional provenance keys "method" (a name of letters, digits, '-', '_' or '+', at
 * most 31) and "train_seed" (an integer >= 0). Errors name the key: "config: top_k is 9 but
 * num_experts is 8". The caller adds the file name. */
#ifndef RS_CONFIG_H
#define RS_CONFIG_H

#include <stdbool.h>

#include "dispatch.h"
#include "rs_error.h"

#define RS_MAX_CHANNELS 4
#define RS_MAX_DEPTH 64
#define RS_MAX_EXPERTS 256
#define RS_CONFIG_METHOD_MAX 32         /* method names are shorter (NUL included) */

typedef enum rs_classifier { RS_CLASSIFIER_TOKEN, RS_CLASSIFIER_GAP } rs_classifier;
typedef enum rs_gelu { RS_GELU_ERF, RS_GELU_TANH } rs_gelu;

typedef struct rs_config {
    int image_h, image_w, channels, patch_size;
    int hidden, depth, heads, mlp_dim, num_classes;
    int num_moe;                    /* number of MoE blocks */
    int moe_layers[RS_MAX_DEPTH];   /* their block indices, increasing */
    int num_experts, top_k;
    bool router_bias;               /* optional key; true when routers carry a bias */
    rs_classifier classifier;
    rs_gelu gelu;
    float layer_norm_eps;
    float mean[RS_MAX_CHANNELS], std[RS_MAX_CHANNELS];
    bool representation;            /* pre_logits dense + tanh before the head */
    char **labels;                  /* owned, num_classes strings, or NULL */
    /* Optional key "dispatch": {"capacity_factor": F, "group_images": N, "bpr": B, "bf16": B}
     * (bf16: vmoe's bfloat16 dispatch, dispatch.h; optional, false when absent) — the
     * settings the published model was evaluated with (a converted checkpoint's preset).
     * capacity_factor 0 when absent. Applied only when a user asks (`--dispatch model`). */
    rs_dispatch dispatch;
    /* Provenance, optional: the training method ("vmoe", "prc", "jsd", "adv", or any
     * other short name; "" when absent) and the training seed (-1 when absent). */
    char method[RS_CONFIG_METHOD_MAX];
    long long train_seed;
} rs_config;

int rs_config_parse(const char *json_text, rs_config *cfg, rs_error *err);
void rs_config_free(rs_config *cfg);

/* Derived sizes. */
static inline int rs_config_grid_h(const rs_config *c) { return c->image_h / c->patch_size; }
static inline int rs_config_grid_w(const rs_config *c) { return c->image_w / c->patch_size; }
static inline int rs_config_patches(const rs_config *c) { return rs_config_grid_h(c) * rs_config_grid_w(c); }
/* Tokens in the sequence: patches, plus the class token when classifier is "token". */
static inline int rs_config_tokens(const rs_config *c)
{
    return rs_config_patches(c) + (c->classifier == RS_CLASSIFIER_TOKEN);
}
/* Experts recorded per token: max(2, top_k), so Top-2 statistics exist for k = 1. */
static inline int rs_config_record_k(const rs_config *c) { return c->top_k > 2 ? c->top_k : 2; }
/* The MoE slot of block BLOCK (0..num_moe-1), or -1 for a dense block. */
int rs_config_moe_slot(const rs_config *c, int block);

/* Blocks as specs name them, "B1/B2/..." (decimal block indices 0..31 as rs_number.h reads
 * them, each once; figures print "block 3"), into a bit mask (bit b: block b). RS_EINVAL
 * quoting TEXT: "layers: '1/x' is not block indices 0..31 separated by '/'", "layers: '1/1'
 * names block 1 twice". */
int rs_parse_block_list(const char *text, unsigned *mask, rs_error *err);
/* RS_EINVAL unless every block of MASK is a MoE block of C: "layers: block 2 is not a MoE
 * block (MoE blocks: 1, 3)". */
int rs_config_check_moe_blocks(const rs_config *c, unsigned mask, rs_error *err);

#endif

/* dispatch.h — expert capacity and Batch Priority Routing, with the semantics of
 * google-research/vmoe (`vmoe/moe.py`: compute_capacity and the top-experts-per-item
 * dispatcher). docs/dispatch.md states them for users.
 *
 * A dispatch group holds S tokens (whole images, tokens in sequence order). Each expert
 * takes at most C tokens of a group:
 *   C = ceil(S * k * capacity_factor / E), then raised to the next multiple of 4
 * (vmoe's defaults: "ceil" and multiple_of = 4). Places are handed out choice by choice:
 * every token's top-1 choice before any top-2 choice, and so on; within one rank, tokens
 * in group order (vanilla) or, with Batch Priority Routing, tokens with the larger top-1
 * gate first (a stable order: equal gates keep group order). A choice whose expert already
 * holds C tokens is dropped: that expert adds nothing for the token, whose other choices
 * may still be kept.
 *
 * The functions here are pure: no allocation, no state; forward.c calls them per group. */
#ifndef RS_DISPATCH_H
#define RS_DISPATCH_H

#include <stdbool.h>
#include <stdint.h>

/* How a forward pass dispatches. capacity_factor 0 means no capacity at all: every top-k
 * choice runs (the default, and bit for bit the forward pass without dispatch). */
typedef struct rs_dispatch {
    double capacity_factor;  /* > 0: capacity per expert and group; 0: none */
    int group_images;        /* images per dispatch group (>= 1) when capacity_factor > 0 */
    bool bpr;                /* Batch Priority Routing */
    /* vmoe's Bfloat16Dispatcher (`vmoe/moe.py`): each expert's input rows are rounded to
     * bfloat16 (rs_float_round_bf16, half.h) after dispatch, before the expert MLP, and its
     * output rows before the gate-weighted combine; everything else stays float32. The
     * gradient passes both roundings straight through. Needs a capacity factor. */
    bool bf16;
    /* A short group (the last of a batch) is padded to group_images with all-zero images
     * (zero after normalisation, as vmoe's input pipeline pads its last batch) that take
     * capacity like any image; their outputs are computed and never reported. Needs a
     * capacity factor. */
    bool pad_last;
} rs_dispatch;

/* Largest accepted capacity factor: far beyond any drop (C >= S once cf >= E / k). */
#define RS_DISPATCH_MAX_FACTOR 1000.0
/* Largest dispatch group in images (vmoe's published configs use 8). */
#define RS_DISPATCH_MAX_GROUP_IMAGES 65536

/* C for a group of GROUP_TOKENS tokens, K choices each, E experts; 0 when the arguments
 * give none (capacity_factor not in (0, RS_DISPATCH_MAX_FACTOR], tokens, k or E < 1, or a
 * capacity beyond INT32_MAX). */
int rs_dispatch_capacity(long long group_tokens, int k, int num_experts, double capacity_factor);

/* Decides which choices of one group are kept.
 * TOP_IDX, TOP_GATE (S,R): each token's experts by decreasing gate, as forward.h records
 * them; the first K of them are dispatched (K <= R). KEPT (S,R) receives 1 for a kept
 * choice and 0 for a dropped one; ranks K..R-1 are never dispatched and get 0.
 * Scratch: ORDER (2S) int32, FILL (E) int32. */
void rs_dispatch_assign(const int32_t *top_idx, const float *top_gate, int S, int R, int k, int num_experts,
                        int capacity, bool bpr, int32_t *order, int32_t *fill, uint8_t *kept);

#endif

/* interference.h — batch interference: how much a token's routing depends on the images it
 * is dispatched with (docs/dispatch.md "Batch interference", docs/metrics.md).
 *
 * Two runs A and B of the same model, images, views and dispatch settings that differ only
 * in their group composition (group seed, group_order.h; either may be in data order) are
 * compared view by view: view v of image i in B against view v of image i in A. The pixels
 * are the same, so every token is compared with itself (all T tokens, class token
 * included) and whatever differs comes from the batch-mates. Per view slot (V+1, slot V
 * pools the views) and layer slot (L+1, slot L pools the layers):
 *   TOP1          the router's top-1 expert equal
 *   TOP2          the router's first two experts equal, in order
 *   TOPK_SET      the router's top-k sets equal
 *   KEPT_SET      the kept sets equal (two empty sets are equal)
 *   CHANGES       routing_changes between the runs (vmoe's figure, stats.h): 1 − mean over
 *                 images of the image's mean kept-set IoU (IoU 0 when both sets are empty)
 * and per view slot the share of (image, view)s whose predicted class is the same in both.
 * The router's first MoE layer sees the same input in both runs, so its choices agree
 * (up to BLAS rounding of near ties); later layers see the outputs of earlier dispatch,
 * which drops depend on. A run without a capacity factor counts every top-k choice as kept.
 *
 * Intervals: percentile bootstrap over images (one draw of the run's images per replicate
 * for every figure, GSL mt19937 seeded with the options' seed); token rates also carry a
 * Wilson interval (tokens as if independent), the prediction rate one over image views.
 *
 * Ownership: rs_interference_compute allocates *OUT; rs_interference_free releases it (NULL
 * allowed). Errors: RS_EINVAL when the runs are not the same job in another composition
 * (the message says what differs; OPT->force goes on) or cannot be paired (images done,
 * views, layers, tokens, k, records out of lockstep); RS_EFORMAT for records that break the
 * run's contract; RS_ENOMEM; store errors as the store reports them. Nothing is printed. */
#ifndef RS_INTERFERENCE_H
#define RS_INTERFERENCE_H

#include <stdbool.h>
#include <stdint.h>

#include "rs_error.h"
#include "stats.h"
#include "store/store.h"

enum {
    RS_INTERF_TOP1,
    RS_INTERF_TOP2,
    RS_INTERF_TOPK_SET,
    RS_INTERF_KEPT_SET,
    RS_INTERF_CHANGES,
    RS_INTERF_NUM
};

typedef struct rs_interference {
    int views, layers, images, top_k;
    int resamples;              /* as used (0: no bootstrap) */
    uint64_t seed;
    double level;
    bool forced;                /* the runs differed in more than the group seed; force went on */
    char mismatch[320];         /* what differed ("" when nothing) */
    int64_t *tokens;            /* (cells) tokens compared */
    rs_stats_rate *rate;        /* (cells, RS_INTERF_NUM); CHANGES has no Wilson interval */
    int64_t *views_compared;    /* (V+1) image views compared */
    rs_stats_rate *prediction_same; /* (V+1) */
} rs_interference;

static inline int rs_interference_cell(const rs_interference *d, int view_slot, int layer_slot)
{
    return view_slot * (d->layers + 1) + layer_slot;
}

/* Compares run RUN_B of STORE_B with run RUN_A of STORE_A (the same store may be passed
 * twice) in one lockstep pass. OPT: resamples, seed, level, force and the stores' names as
 * in stats.h (NULL: defaults). */
int rs_interference_compute(rs_store *store_a, int64_t run_a, rs_store *store_b, int64_t run_b,
                            const rs_stats_options *opt, rs_interference **out, rs_error *err);
void rs_interference_free(rs_interference *d);

#endif

/* evaluate.h — classify the images of a data source with a model: accuracy and speed of the
 * C forward pass (the `eval` command).
 *
 * Images OFFSET .. OFFSET+N-1 of the source (N = min(LIMIT, what remains)) are decoded and
 * fitted to the model's input (source.h), normalised, and run in batches of BATCH through
 * the forward pass; the prediction is the model's (rs_model_predict: the argmax of the
 * logits, ties to the lower class).
 * Accuracy counts the images whose label is known (>= 0). When PREDICTIONS is set, each
 * image's predicted class is written there, one per line, in source order.
 *
 * With a capacity factor (DISPATCH, dispatch.h) every MoE layer dispatches groups of
 * group_images consecutive images of the slice; batches are rounded up to whole groups of
 * the forward pass (rs_group_batch_unit: several dispatch groups each), so results do not
 * depend on the batch size, and the summary counts the top-k choices dropped. With a group
 * seed the dispatch groups come from shuffled windows of the slice (group_order.h) and
 * batches are rounded up to whole windows too.
 *
 * Errors: 0 or a negative RS_E* code with one line naming the file: RS_EINVAL for an offset
 * past the source's end or a group seed without a capacity factor, the source's and forward pass's own errors, RS_EIO when the
 * predictions file cannot be written. Nothing is printed; progress goes through the
 * callback. */
#ifndef RS_EVALUATE_H
#define RS_EVALUATE_H

#include <stdbool.h>
#include <stdint.h>

#include "dispatch.h"
#include "model.h"
#include "rs_error.h"
#include "input/source.h"

/* DONE of TOTAL images classified in SECONDS. */
typedef void (*rs_eval_progress)(void *ctx, int done, int total, double seconds);

typedef struct rs_eval_options {
    int threads, batch;         /* forward pass threads, images per forward call */
    int offset, limit;          /* the slice; limit <= 0: to the end */
    const char *predictions;    /* file for the predicted classes, or NULL */
    rs_dispatch dispatch;       /* capacity_factor 0: none */
    bool has_group_seed;        /* shuffled group composition; needs a capacity factor */
    uint64_t group_seed;
    rs_eval_progress progress;  /* may be NULL */
    void *progress_ctx;
} rs_eval_options;

typedef struct rs_eval_summary {
    int images, labelled, correct;
    int batch;                  /* as used (at most the images) */
    double seconds;             /* wall time, decoding included */
    double forward_seconds;     /* of which in the forward pass */
    long long choices, dropped; /* with a capacity factor: top-k choices over all MoE layers,
                                   and how many of them dispatch dropped; 0 without */
} rs_eval_summary;

int rs_evaluate(const rs_model *model, rs_source *src, const rs_eval_options *opt, rs_eval_summary *sum,
                rs_error *err);

#endif

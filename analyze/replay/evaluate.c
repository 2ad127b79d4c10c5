/* evaluate.c — accuracy of the C forward pass over a data source (contract in evaluate.h). */
#include "evaluate.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "forward.h"
#include "group_order.h"
#include "predict.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Counts the top-k choices of the last forward run and those dispatch dropped. */
static void count_drops(const rs_config *c, const rs_forward_out *out, rs_eval_summary *sum)
{
    size_t R = (size_t)out->record_k, rows = (size_t)out->batch * out->tokens;
    for (int s = 0; s < c->num_moe; s++) {
        const uint8_t *kept = out->moe[s].kept;
        for (size_t i = 0; kept && i < rows; i++)
            for (int r = 0; r < c->top_k; r++) {
                sum->choices++;
                sum->dropped += !kept[i * R + r];
            }
    }
}

/* Counts batch BATCH's N predictions starting at source index FIRST into SUM, and writes
 * them to PRED when set. Image i's logits are in row SLOT[i] (NULL: row i). */
static void score(const rs_config *c, rs_source *src, const float *logits, const int32_t *slot, int first, int n,
                  FILE *pred, rs_eval_summary *sum)
{
    for (int i = 0; i < n; i++) {
        int label = rs_source_label(src, first + i);
        int predicted = rs_model_predict(logits + (size_t)(slot ? slot[i] : i) * c->num_classes, c->num_classes, NULL);
        if (label >= 0) {
            sum->labelled++;
            sum->correct += predicted == label;
        }
        if (pred)
            fprintf(pred, "%d\n", predicted);
    }
}

int rs_evaluate(const rs_model *model, rs_source *src, const rs_eval_options *opt, rs_eval_summary *sum,
                rs_error *err)
{
    const rs_config *c = &model->cfg;
    memset(sum, 0, sizeof *sum);
    int count = rs_source_count(src);
    if (opt->offset < 0 || opt->offset >= count)
        return rs_error_set(err, RS_EINVAL, "%s: --offset %d but the data set has %d images", rs_source_name(src),
                            opt->offset, count);
    int total = count - opt->offset;
    if (opt->limit > 0 && opt->limit < total)
        total = opt->limit;
    int rc = rs_group_seed_check(opt->has_group_seed, &opt->dispatch, err);
    if (rc)
        return rc;
    int batch = opt->batch < total ? opt->batch : total;
    int unit = 1, window = 0; /* without a capacity eval keeps the batch it is given */
    if (opt->dispatch.capacity_factor > 0 &&
        (rc = rs_group_batch_unit(model, &opt->dispatch, opt->has_group_seed, &unit, &window, err)))
        return rc;
    batch = (batch + unit - 1) / unit * unit; /* whole groups of the forward pass (or windows) */
    rs_forward *f = NULL;
    size_t image_size = (size_t)c->channels * c->image_h * c->image_w;
    float *input = NULL, *ordered = NULL; /* (batch, C,H,W); ORDERED: the forward order */
    int32_t *order = NULL, *slot = NULL;  /* (batch) with a group seed */
    FILE *pred = NULL;
    rc = rs_forward_create_dispatch(model, batch, opt->threads, &opt->dispatch, &f, err);
    if (!rc && (!(input = malloc(sizeof(float) * (size_t)batch * image_size)) ||
                (opt->has_group_seed && (!(ordered = malloc(sizeof(float) * (size_t)batch * image_size)) ||
                                         !(order = malloc(sizeof(int32_t) * (size_t)batch)) ||
                                         !(slot = malloc(sizeof(int32_t) * (size_t)batch))))))
        rc = rs_error_set(err, RS_ENOMEM, "out of memory for a batch of %d images", batch);
    if (!rc && opt->predictions && !(pred = fopen(opt->predictions, "w")))
        rc = rs_error_set(err, RS_EIO, "%s: cannot write: %s", opt->predictions, strerror(errno));
    double t0 = now();
    for (int done = 0; done < total && !rc; done += batch) {
        int n = total - done < batch ? total - done : batch, first = opt->offset + done;
        if ((rc = rs_source_load_batch(src, first, n, c->channels, c->image_h, c->image_w, opt->threads, input,
                                       err)))
            break;
        for (int i = 0; i < n; i++)
            rs_model_normalize(c, input + (size_t)i * image_size);
        if (order && (rc = rs_group_order(opt->group_seed, window, done, n, total, order, slot, err)))
            break;
        for (int i = 0; order && i < n; i++)
            memcpy(ordered + (size_t)i * image_size, input + (size_t)order[i] * image_size,
                   sizeof(float) * image_size);
        double t1 = now();
        rc = rs_forward_run(f, order ? ordered : input, n, err);
        sum->forward_seconds += now() - t1;
        if (!rc) {
            score(c, src, rs_forward_result(f)->logits, slot, first, n, pred, sum);
            count_drops(c, rs_forward_result(f), sum);
        }
        if (!rc && opt->progress)
            opt->progress(opt->progress_ctx, done + n, total, now() - t0);
    }
    sum->seconds = now() - t0;
    sum->images = total;
    sum->batch = batch;
    /* ferror catches a failed fprintf that a successful fclose would hide. */
    if (pred && (ferror(pred) | fclose(pred)) && !rc)
        rc = rs_error_set(err, RS_EIO, "%s: write failed: %s", opt->predictions, strerror(errno));
    free(input);
    free(ordered);
    free(order);
    free(slot);
    rs_forward_free(f);
    return rc;
}

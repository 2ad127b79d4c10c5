/* dispatch_tables.c — tables of a run with dispatch (contract in dispatch_tables.h). */
#include "dispatch_tables.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stats_tables.h"

void rs_report_dispatch_note(const rs_run_info *info, char *buf, size_t size)
{
    char order[64] = "data order";
    if (info->has_group_seed)
        snprintf(order, sizeof order, "shuffled by group seed %" PRIu64, info->group_seed);
    snprintf(buf, size, "dispatch: capacity factor %g, groups of %d images (%s), %s priority%s%s",
             info->capacity_factor, info->group_images, order, info->bpr ? "batch (BPR)" : "token-order",
             info->bf16_dispatch ? ", bfloat16 dispatch" : "", info->pad_last_group ? ", last group padded" : "");
}

/* Dropped of CHOICES as a rate with its Wilson interval; n/a without choices. */
static void set_drop(rs_table *t, int r, int c, int64_t dropped, int64_t choices)
{
    if (!choices)
        return;
    double lo, hi;
    rs_stats_wilson((double)dropped, (double)choices, 0.95, &lo, &hi);
    rs_table_set_rate(t, r, c, (double)dropped / (double)choices, true, lo, hi, true, lo, hi, choices);
}

rs_table *rs_report_drop_table(const rs_run_info *info, const rs_stats_dispatch *d, const char *run)
{
    const char *keys[] = {"view", "layer", "choices", "dropped"};
    const char *heads[] = {"View", "Layer", "Top-k choices", "Dropped"};
    rs_table *t = rs_table_create("Top-k choices dropped by expert capacity (all tokens; Wilson 95 % interval)", run,
                                  4, keys, heads);
    int E = d->experts;
    for (int v = d->views > 1 ? 0 : d->views; t && v <= d->views; v++) {
        for (int l = 0; l <= d->layers; l++) {
            size_t at = (size_t)rs_stats_dispatch_cell(d, v, l) * (E + 1) + E;
            int r = rs_report_add_view_layer_row(t, info, v, l, false);
            rs_table_set_count(t, r, 2, d->choices[at]);
            set_drop(t, r, 3, d->dropped[at], d->choices[at]);
        }
    }
    return t;
}

rs_table *rs_report_drop_expert_table(const rs_run_info *info, const rs_stats_dispatch *d, const char *run)
{
    int E = d->experts, ncols = 1 + E;
    char **keys = calloc((size_t)ncols, sizeof *keys), **heads = calloc((size_t)ncols, sizeof *heads);
    bool ok = keys && heads;
    for (int c = 0; ok && c < ncols; c++) {
        char k[32], h[32];
        if (c == 0)
            snprintf(k, sizeof k, "layer"), snprintf(h, sizeof h, "Layer");
        else
            snprintf(k, sizeof k, "expert_%d", c - 1), snprintf(h, sizeof h, "Expert %d", c - 1);
        ok = (keys[c] = strdup(k)) && (heads[c] = strdup(h));
    }
    rs_table *t = ok ? rs_table_create("Share of each expert's top-k choices dropped (all views, all tokens)", run,
                                       ncols, (const char *const *)keys, (const char *const *)heads)
                     : NULL;
    for (int l = 0; t && l <= d->layers; l++) {
        char layer[64], lh[64];
        rs_report_layer_label(info, l, layer, sizeof layer, false);
        rs_report_layer_label(info, l, lh, sizeof lh, true);
        int r = rs_table_add_row(t, "all", layer, "dropped");
        rs_table_set_text(t, r, 0, lh);
        size_t at = (size_t)rs_stats_dispatch_cell(d, d->views, l) * (E + 1);
        for (int e = 0; e < E; e++)
            set_drop(t, r, 1 + e, d->dropped[at + e], d->choices[at + e]);
    }
    for (int c = 0; c < ncols && keys && heads; c++) {
        free(keys[c]);
        free(heads[c]);
    }
    free(keys);
    free(heads);
    return t;
}

rs_table *rs_report_kept_agreement_table(const rs_run_info *info, const rs_stats_dispatch *d, const char *run)
{
    const char *keys[] = {"view", "layer", "topk_set", "kept_set", "kept_iou"};
    const char *heads[] = {"View", "Layer", "Top-k set (router)", "Kept set", "Kept IoU"};
    rs_table *t = rs_table_create("Agreement with view 0 before and after dispatch (matched patches; vmoe's "
                                  "routing_changes on the kept sets is in the routing changes table)",
                                  run, 5, keys, heads);
    for (int i = 0; t && i < rs_report_agreement_slot_count(d->views); i++) {
        int v = rs_report_agreement_slot(d->views, i);
        for (int l = 0; l <= d->layers; l++) {
            int cell = rs_stats_dispatch_cell(d, v, l), r = rs_report_add_view_layer_row(t, info, v, l, true);
            rs_report_set_rate(t, r, 2, &d->topk_set[cell], d->kept_iou[cell].n);
            rs_report_set_rate(t, r, 3, &d->kept_set[cell], d->kept_iou[cell].n);
            if (d->kept_iou[cell].valid)
                rs_table_set_number(t, r, 4, d->kept_iou[cell].mean, 4, d->kept_iou[cell].n);
        }
    }
    return t;
}

rs_table *rs_report_interference_table(const rs_run_info *info, const rs_interference *d, const char *run)
{
    const char *keys[] = {"view", "layer", "tokens", "top1", "top2", "topk_set", "kept_set", "routing_changes"};
    const char *heads[] = {"View", "Layer", "Tokens", "Top-1 (router)", "Top-2 (router)", "Top-k set (router)",
                           "Kept set", "routing_changes"};
    rs_table *t = rs_table_create("Batch interference: run B against run A, each view against the same view (every "
                                  "token, class token included, against itself; routing_changes: 1 - mean over "
                                  "images of the kept-set IoU)",
                                  run, 8, keys, heads);
    for (int v = d->views > 1 ? 0 : d->views; t && v <= d->views; v++) {
        for (int l = 0; l <= d->layers; l++) {
            int cell = rs_interference_cell(d, v, l), r = rs_report_add_view_layer_row(t, info, v, l, false);
            const rs_stats_rate *x = d->rate + (size_t)cell * RS_INTERF_NUM;
            rs_table_set_count(t, r, 2, d->tokens[cell]);
            for (int m = 0; m < RS_INTERF_CHANGES; m++)
                rs_report_set_rate(t, r, 3 + m, &x[m], d->tokens[cell]);
            const rs_stats_rate *c = &x[RS_INTERF_CHANGES]; /* per image: no Wilson */
            if (c->valid)
                rs_table_set_rate(t, r, 7, c->value, c->boot_valid, c->boot_lo, c->boot_hi, false, 0, 0, d->images);
        }
    }
    return t;
}

rs_table *rs_report_interference_prediction_table(const rs_run_info *info, const rs_interference *d,
                                                  const char *run)
{
    const char *keys[] = {"view", "images", "prediction_same"};
    const char *heads[] = {"View", "Images", "Same prediction"};
    rs_table *t = rs_table_create("Batch interference: images whose predicted class is the same in both runs", run, 3,
                                  keys, heads);
    for (int v = d->views > 1 ? 0 : d->views; t && v <= d->views; v++) {
        char view[64];
        rs_report_view_label(info, v, view, sizeof view);
        int r = rs_table_add_row(t, view, "all", NULL);
        rs_table_set_text(t, r, 0, view);
        rs_table_set_count(t, r, 1, d->views_compared[v]);
        rs_report_set_rate(t, r, 2, &d->prediction_same[v], d->views_compared[v]);
    }
    return t;
}

/* stats_tables.c — the tables of one run's statistics, shared by `stats` and `report`
 * (moved here from cli/cmd_stats.c; output unchanged). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stats_tables.h"
#include "store/run.h"

void rs_report_view_label(const rs_run_info *info, int slot, char *buf, size_t size)
{
    if (slot >= info->num_views)
        snprintf(buf, size, "all");
    else if (!strcmp(info->protocol, "pair") || strlen(info->view_specs[slot]) > 24)
        snprintf(buf, size, "view %d", slot);
    else
        snprintf(buf, size, "%s", info->view_specs[slot]);
}

void rs_report_agreement_label(const rs_run_info *info, int slot, char *buf, size_t size)
{
    rs_report_view_label(info, slot == 2 && info->num_views == 2 ? 1 : slot, buf, size);
}

void rs_report_layer_label(const rs_run_info *info, int slot, char *buf, size_t size, bool human)
{
    if (slot >= info->num_layers)
        snprintf(buf, size, "all");
    else
        snprintf(buf, size, human ? "block %d" : "%d", info->layer_blocks[slot]);
}

/* With two views the pooled slot is view 1 itself: one row, not two equal ones. */
int rs_report_agreement_slot_count(int views)
{
    return views > 2 ? views : 1;
}

int rs_report_agreement_slot(int views, int i)
{
    return views > 2 && i < views - 1 ? i + 1 : views;
}

/* ---- tables ------------------------------------------------------------------------------ */

const char *const rs_report_rate_headers[RS_STATS_NUM_RATES] = {"Top-1", "Top-2", "Top-2 (order-agnostic)",
                                                             "Top-2 overlap"};

void rs_report_set_rate(rs_table *t, int r, int c, const rs_stats_rate *x, int64_t n)
{
    if (!x->valid)
        rs_table_set_na(t, r, c);
    else
        rs_table_set_rate(t, r, c, x->value, x->boot_valid, x->boot_lo, x->boot_hi, true, x->wilson_lo,
                          x->wilson_hi, n);
}

int rs_report_add_view_layer_row(rs_table *t, const rs_run_info *info, int v, int l, bool agreement)
{
    char view[64], layer[64], lh[64];
    if (agreement)
        rs_report_agreement_label(info, v, view, sizeof view);
    else
        rs_report_view_label(info, v, view, sizeof view);
    rs_report_layer_label(info, l, layer, sizeof layer, false);
    rs_report_layer_label(info, l, lh, sizeof lh, true);
    int r = rs_table_add_row(t, view, layer, NULL);
    rs_table_set_text(t, r, 0, view);
    rs_table_set_text(t, r, 1, lh);
    return r;
}

static void consistency_row(rs_table *t, const rs_run_info *info, const rs_stats *st, int v, int l)
{
    const rs_stats_agreement *a = &st->agree[rs_stats_cell(st, v, l)];
    int r = rs_report_add_view_layer_row(t, info, v, l, true);
    for (int k = 0; k < RS_STATS_NUM_RATES; k++)
        rs_report_set_rate(t, r, 2 + k, &a->rate[k], a->n.pairs);
    rs_table_set_count(t, r, 6, a->n.pairs);
    rs_table_set_count(t, r, 7, a->unmatched);
}

rs_table *rs_report_consistency_table(const rs_run_info *info, const rs_stats *st, const char *run, bool by_view)
{
    const char *keys[] = {"view", "layer", "top1", "top2", "top2_unordered", "top2_overlap", "pairs", "unmatched"};
    const char *heads[] = {"View", "Layer", "Top-1", "Top-2", "Top-2 (order-agnostic)", "Top-2 overlap",
                           "Pairs", "Unmatched"};
    char title[160];
    snprintf(title, sizeof title, "Routing consistency vs view 0 (%%, %.0f %% bootstrap interval over images)",
             100 * st->level);
    rs_table *t = rs_table_create(title, run, 8, keys, heads);
    if (!t)
        return NULL;
    int ns = rs_report_agreement_slot_count(st->views);
    if (by_view) {
        for (int i = 0; i < ns; i++)
            for (int l = 0; l <= st->layers; l++)
                consistency_row(t, info, st, rs_report_agreement_slot(st->views, i), l);
    } else {
        for (int l = 0; l <= st->layers; l++)
            for (int i = 0; i < ns; i++)
                consistency_row(t, info, st, rs_report_agreement_slot(st->views, i), l);
    }
    return t;
}

/* Agreement over all layers split by label (BY_CLASS) or by view 0's top-1 expert. */
rs_table *rs_report_split_table(const rs_run_info *info, const rs_stats *st, const char *run, bool by_class)
{
    const char *keys[] = {"view", "group", "top1", "top2", "top2_unordered", "top2_overlap", "pairs"};
    const char *heads[] = {"View", by_class ? "Class" : "Expert (view 0)", "Top-1", "Top-2",
                           "Top-2 (order-agnostic)", "Top-2 overlap", "Pairs"};
    rs_table *t = rs_table_create(by_class ? "Consistency by class, all MoE layers (%)"
                                           : "Consistency by view 0's top-1 expert, all MoE layers (%)",
                                  run, 7, keys, heads);
    if (!t)
        return NULL;
    int n = by_class ? st->classes : st->experts;
    int ns = rs_report_agreement_slot_count(st->views);
    for (int i = 0; i < ns; i++) {
        int cell = rs_stats_cell(st, rs_report_agreement_slot(st->views, i), st->layers);
        char view[64], group[64];
        rs_report_agreement_label(info, rs_report_agreement_slot(st->views, i), view, sizeof view);
        for (int g = 0; g < n; g++) {
            const rs_stats_counts *c = by_class ? &st->by_class[(size_t)cell * n + g] : &st->by_expert[(size_t)cell * n + g];
            snprintf(group, sizeof group, by_class ? "class %d" : "expert %d", g);
            int r = rs_table_add_row(t, view, "all", group);
            rs_table_set_text(t, r, 0, view);
            rs_table_set_text(t, r, 1, group);
            for (int k = 0; k < RS_STATS_NUM_RATES; k++) {
                double v;
                if (rs_stats_counts_rate(c, k, &v))
                    rs_table_set_rate(t, r, 2 + k, v, false, 0, 0, false, 0, 0, c->pairs);
            }
            rs_table_set_count(t, r, 6, c->pairs);
        }
    }
    return t;
}

rs_table *rs_report_accuracy_table(const rs_run_info *info, const rs_stats *st, const char *run)
{
    const char *keys[] = {"view", "accuracy", "labelled"};
    const char *heads[] = {"View", "Accuracy", "Labelled"};
    rs_table *t = rs_table_create("Accuracy per view (%, Wilson interval)", run, 3, keys, heads);
    if (!t)
        return NULL;
    for (int v = 0; v <= st->views; v++) {
        char view[64];
        rs_report_view_label(info, v, view, sizeof view);
        const rs_stats_accuracy *a = &st->accuracy[v];
        int r = rs_table_add_row(t, view, NULL, NULL);
        rs_table_set_text(t, r, 0, view);
        if (a->valid)
            rs_table_set_rate(t, r, 1, a->value, true, a->wilson_lo, a->wilson_hi, true, a->wilson_lo,
                              a->wilson_hi, a->labelled);
        rs_table_set_count(t, r, 2, a->labelled);
    }
    return t;
}

rs_table *rs_report_change_table(const rs_run_info *info, const rs_stats *st, const char *run)
{
    const char *keys[] = {"view", "rc_pc", "rc_ps", "rs_pc", "rs_ps", "p_pc_given_rc", "p_pc_given_rs", "no_pairs"};
    const char *heads[] = {"View", "Routing changed, pred. changed", "Routing changed, pred. same",
                           "Routing same, pred. changed", "Routing same, pred. same",
                           "Pred. change rate, routing changed", "Pred. change rate, routing same",
                           "No matched pair"};
    rs_table *t = rs_table_create("Prediction change vs routing change (images; routing changed = some matched "
                                  "patch's top-1 differs in some MoE layer)",
                                  run, 8, keys, heads);
    if (!t)
        return NULL;
    int ns = rs_report_agreement_slot_count(st->views);
    for (int i = 0; i < ns; i++) {
        int v = rs_report_agreement_slot(st->views, i);
        const int64_t *c = &st->change[(size_t)v * 4]; /* [routing changed][prediction changed] */
        char view[64];
        rs_report_agreement_label(info, v, view, sizeof view);
        int r = rs_table_add_row(t, view, NULL, NULL);
        rs_table_set_text(t, r, 0, view);
        rs_table_set_count(t, r, 1, c[3]);
        rs_table_set_count(t, r, 2, c[2]);
        rs_table_set_count(t, r, 3, c[1]);
        rs_table_set_count(t, r, 4, c[0]);
        if (c[2] + c[3] > 0)
            rs_table_set_rate(t, r, 5, (double)c[3] / (double)(c[2] + c[3]), false, 0, 0, false, 0, 0, c[2] + c[3]);
        if (c[0] + c[1] > 0)
            rs_table_set_rate(t, r, 6, (double)c[1] / (double)(c[0] + c[1]), false, 0, 0, false, 0, 0, c[0] + c[1]);
        rs_table_set_count(t, r, 7, st->change_no_pairs[v]);
    }
    return t;
}

static void set_mean(rs_table *t, int r, int c, const rs_stats_mean *m, int decimals)
{
    if (m->valid)
        rs_table_set_number(t, r, c, m->mean, decimals, m->n);
}

/* The router table of a run recorded with --record topk: load CV alone, the figures that
 * need the softmax left out with rs_run_lacks_softmax's line as the note. */
static rs_table *load_cv_table(const rs_run_info *info, const rs_stats *st, const char *run)
{
    const char *keys[] = {"view", "layer", "load_cv"};
    const char *heads[] = {"View", "Layer", "Load CV"};
    rs_table *t = rs_table_create("Router figures per MoE layer (load CV over experts)", run, 3, keys, heads);
    char note[160];
    if (!t)
        return NULL;
    if (rs_run_lacks_softmax(info, "the PRC score, JSD and entropy", note, sizeof note))
        rs_table_set_note(t, note);
    for (int v = st->views > 2 ? 0 : st->views; v <= st->views; v++)
        for (int l = 0; l <= st->layers; l++) {
            int r = rs_report_add_view_layer_row(t, info, v, l, false);
            set_mean(t, r, 2, &st->load_cv[rs_stats_cell(st, v, l)], 4);
        }
    return t;
}

/* Per layer: PRC score (pooled over the run's non-reference views), and JSD, entropy and
 * load CV per view slot: the reference, each view and all views when there are more than
 * two; the pooled slot alone for a pair (it holds both views). */
rs_table *rs_report_layer_table(const rs_run_info *info, const rs_stats *st, const char *run)
{
    if (st->no_softmax)
        return load_cv_table(info, st, run);
    const char *keys[] = {"view", "layer", "prc_norm", "jsd_bits", "entropy_bits", "load_cv"};
    const char *heads[] = {"View", "Layer", "\u2016S \u2212 I\u2016_F", "JSD (bits)", "Entropy (bits)", "Load CV"};
    rs_table *t = rs_table_create("Router figures per MoE layer (PRC score over all views; JSD vs view 0; "
                                  "entropy over patch tokens; load CV over experts)",
                                  run, 6, keys, heads);
    if (!t)
        return NULL;
    /* Every view slot (reference included) when there are more than two, else the pool. */
    for (int v = st->views > 2 ? 0 : st->views; v <= st->views; v++) {
        for (int l = 0; l <= st->layers; l++) {
            int cell = rs_stats_cell(st, v, l);
            int r = rs_report_add_view_layer_row(t, info, v, l, false);
            if (v == st->views && l < st->layers)
                set_mean(t, r, 2, &st->prc_norm[l], 4);
            set_mean(t, r, 3, &st->jsd[cell], 4);
            set_mean(t, r, 4, &st->entropy[cell], 4);
            set_mean(t, r, 5, &st->load_cv[cell], 4);
        }
    }
    return t;
}

rs_table *rs_report_transition_table(const rs_run_info *info, const rs_stats *st, const char *run)
{
    int E = st->experts, ncols = 2 + E;
    char **keys = calloc((size_t)ncols, sizeof *keys), **heads = calloc((size_t)ncols, sizeof *heads);
    rs_table *t = NULL;
    bool ok = keys && heads;
    for (int c = 0; ok && c < ncols; c++) {
        char k[32], h[32];
        if (c == 0)
            snprintf(k, sizeof k, "layer"), snprintf(h, sizeof h, "Layer");
        else if (c == 1)
            snprintf(k, sizeof k, "ref_expert"), snprintf(h, sizeof h, "View 0 expert");
        else
            snprintf(k, sizeof k, "to_%d", c - 2), snprintf(h, sizeof h, "\u2192 %d", c - 2);
        ok = (keys[c] = strdup(k)) && (heads[c] = strdup(h));
    }
    if (ok)
        t = rs_table_create("Top-1 transitions over matched patches (row: view 0's expert, column: the other "
                            "views' expert; counts, all views pooled)",
                            run, ncols, (const char *const *)keys, (const char *const *)heads);
    for (int l = 0; t && l < st->layers; l++) {
        char layer[64], lh[64];
        rs_report_layer_label(info, l, layer, sizeof layer, false);
        rs_report_layer_label(info, l, lh, sizeof lh, true);
        const int64_t *m = st->transition + (size_t)rs_stats_cell(st, st->views, l) * E * E;
        for (int a = 0; a < E; a++) {
            char metric[32];
            snprintf(metric, sizeof metric, "from_%d", a);
            int r = rs_table_add_row(t, NULL, layer, metric);
            rs_table_set_text(t, r, 0, lh);
            rs_table_set_count(t, r, 1, a);
            for (int b = 0; b < E; b++)
                rs_table_set_count(t, r, 2 + b, m[(size_t)a * E + b]);
        }
    }
    for (int c = 0; c < ncols; c++) {
        free(keys ? keys[c] : NULL);
        free(heads ? heads[c] : NULL);
    }
    free(keys);
    free(heads);
    return t;
}



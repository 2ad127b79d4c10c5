/* attack_tables.c — routing changes and attack tables (see attack_tables.h). */
#include "attack_tables.h"

#include <math.h>
#include <stdio.h>

#include "attack_plot.h"
#include "stats_tables.h"

static void set_changes(rs_table *t, int r, int col, const rs_stats_rate *x, int64_t tokens)
{
    if (x->valid)
        rs_table_set_rate(t, r, col, x->value, x->boot_valid, x->boot_lo, x->boot_hi, false, 0, 0, tokens);
    else
        rs_table_set_na(t, r, col);
}

rs_table *rs_report_routing_changes_table(const rs_run_info *info, const rs_stats *st, const char *run)
{
    /* Without capacity or forcing the router's figure equals vmoe's: one column. */
    const bool both = st->routing_changes_differ;
    const int nc = both ? 7 : 6;
    const char *keys[] = {"view", "layer", "routing_changes", "routing_changes_router", "tokens", "images",
                          "aligned_images"};
    const char *heads[] = {"View", "Layer", "Routing changes", "Routing changes (router)", "Tokens", "Images",
                           "Pixel-aligned images"};
    if (!both) {
        for (int c = 3; c < 6; c++)
            keys[c] = keys[c + 1], heads[c] = heads[c + 1];
    }
    char title[240];
    if (both)
        snprintf(title, sizeof title, "Routing changes vs view 0 (vmoe's 1 \u2212 mean IoU of the kept expert sets, "
                 "after capacity; router: of the top-%d sets before it; %%, %.0f %% bootstrap interval over images)",
                 st->top_k, 100 * st->level);
    else
        snprintf(title, sizeof title, "Routing changes vs view 0 (vmoe's 1 \u2212 mean IoU of the top-%d sets, %%, "
                 "%.0f %% bootstrap interval over images)", st->top_k, 100 * st->level);
    rs_table *t = rs_table_create(title, run, nc, keys, heads);
    if (!t)
        return NULL;
    rs_table_set_note(t, both ? "Over all tokens (class token included) where a view is pixel-aligned with view 0, "
                                "over matched patch pairs otherwise. A kept set holds the experts a token ran (a "
                                "forced view's forced ones) that dispatch kept; a token dropped in both views counts "
                                "as a full change (IoU 0), as in vmoe."
                              : "Over all tokens (class token included) where a view is pixel-aligned with view 0, over "
                                "matched patch pairs otherwise.");
    int ns = rs_report_agreement_slot_count(st->views), c = both ? 4 : 3;
    for (int l = 0; l <= st->layers; l++)
        for (int i = 0; i < ns; i++) {
            int v = rs_report_agreement_slot(st->views, i), cell = rs_stats_cell(st, v, l);
            int r = rs_report_add_view_layer_row(t, info, v, l, true);
            set_changes(t, r, 2, &st->routing_changes[cell], st->rc_tokens[cell]);
            if (both)
                set_changes(t, r, 3, &st->routing_changes_router[cell], st->rc_tokens[cell]);
            rs_table_set_count(t, r, c, st->rc_tokens[cell]);
            rs_table_set_count(t, r, c + 1, st->rc_images[cell]);
            rs_table_set_count(t, r, c + 2, st->aligned_images[v]);
        }
    return t;
}

rs_table *rs_report_attack_table(const rs_attack_stats *as, const char *run)
{
    const char *keys[] = {"eps", "top1", "top2", "top2_unordered", "accuracy", "routing_changes", "min_eps_cdf"};
    const char *heads[] = {"\u03b5", "Top-1", "Top-2", "Top-2 (order-agnostic)", "Accuracy", "Routing changes",
                           "Patches changed by \u03b5"};
    char title[200];
    snprintf(title, sizeof title, "Run %s under attack: agreement with view 0 and accuracy against \u03b5 (%%, MoE "
             "layers pooled, %.0f %% bootstrap intervals)", run, 100 * as->level);
    rs_table *t = rs_table_create(title, run, 7, keys, heads);
    if (!t)
        return NULL;
    const int V = as->views, L = as->layers;
    const int64_t total = (int64_t)as->images * as->patches * L;
    int64_t cum = 0;
    for (int v = 0; v < V; v++) {
        char eps[32], view[16];
        rs_render_eps_label(as->eps[v], eps, sizeof eps);
        snprintf(view, sizeof view, "%d", v);
        int r = rs_table_add_row(t, view, "all", NULL);
        rs_table_set_text(t, r, 0, eps);
        for (int m = 0; m < RS_ATTACK_NUM_CURVES; m++) {
            const rs_stats_rate *x = &as->curve[v * RS_ATTACK_NUM_CURVES + m];
            if (x->valid)
                rs_table_set_rate(t, r, 1 + m, x->value, x->boot_valid, x->boot_lo, x->boot_hi, m == RS_ATTACK_ACCURACY,
                                  x->wilson_lo, x->wilson_hi, 0);
            else
                rs_table_set_na(t, r, 1 + m);
        }
        const rs_stats_rate *rc = &as->routing_changes[v];
        if (rc->valid)
            rs_table_set_rate(t, r, 5, rc->value, rc->boot_valid, rc->boot_lo, rc->boot_hi, false, 0, 0, 0);
        else
            rs_table_set_na(t, r, 5);
        cum += v ? as->hist[(size_t)L * V + v] : 0;
        if (total > 0)
            rs_table_set_rate(t, r, 6, (double)cum / (double)total, false, 0, 0, false, 0, 0, total);
        else
            rs_table_set_na(t, r, 6);
    }
    return t;
}

static void set_rate_or_na(rs_table *t, int r, int c, const rs_stats_rate *x)
{
    if (x->valid)
        rs_table_set_rate(t, r, c, x->value, x->boot_valid, x->boot_lo, x->boot_hi, false, 0, 0, 0);
    else
        rs_table_set_na(t, r, c);
}

rs_table *rs_report_attack_summary_table(const rs_attack_stats *const *as, const rs_run_info *const *runs, int n)
{
    const char *keys[] = {"run", "method", "k", "top1_max_eps", "routing_changes_max_eps", "accuracy_max_eps",
                          "median_min_eps", "never_changed"};
    const char *heads[] = {"Run", "Method", "k", "Top-1 at largest \u03b5", "Routing changes at largest \u03b5",
                           "Accuracy at largest \u03b5", "Median min-\u03b5", "Never changed"};
    rs_table *t = rs_table_create("Routing under attack, run by run (%, MoE layers pooled, 95 % bootstrap intervals)",
                                  "attack", 8, keys, heads);
    if (!t)
        return NULL;
    for (int i = 0; i < n; i++) {
        const rs_attack_stats *a = as[i];
        const int V = a->views, L = a->layers;
        char id[32], k[16], eps[32];
        snprintf(id, sizeof id, "%lld", (long long)runs[i]->id);
        snprintf(k, sizeof k, "%d", runs[i]->top_k);
        int r = rs_table_add_row(t, NULL, "all", NULL);
        rs_table_set_row_run(t, r, id);
        rs_table_set_text(t, r, 0, id);
        rs_table_set_text(t, r, 1, rs_method_name(rs_run_method(runs[i])));
        rs_table_set_text(t, r, 2, k);
        set_rate_or_na(t, r, 3, &a->curve[(V - 1) * RS_ATTACK_NUM_CURVES + RS_ATTACK_TOP1]);
        set_rate_or_na(t, r, 4, &a->routing_changes[V - 1]);
        set_rate_or_na(t, r, 5, &a->curve[(V - 1) * RS_ATTACK_NUM_CURVES + RS_ATTACK_ACCURACY]);
        rs_render_eps_label(a->median_first ? a->eps[a->median_first] : INFINITY, eps, sizeof eps);
        rs_table_set_text(t, r, 6, eps);
        int64_t total = (int64_t)a->images * a->patches * L;
        if (total > 0)
            rs_table_set_rate(t, r, 7, (double)a->hist[(size_t)L * V] / (double)total, false, 0, 0, false, 0, 0,
                              total);
        else
            rs_table_set_na(t, r, 7);
    }
    return t;
}

/* compare_tables.c — tables of runs side by side (compare_tables.h), shared by `compare`
 * and the comparison report (moved here from cli/cmd_compare.c and reports/report.c;
 * output unchanged). */
#include "compare_tables.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "input/view.h"
#include "stats_tables.h"
#include "store/run.h"

static const char *const mcnemar_note =
    "McNemar treats matched patches as independent; patches of one image are correlated, so its "
    "p-value is optimistic. The paired bootstrap over images is the primary comparison.";

/* McNemar's p of M into cell (ROW, COL), the same in `compare` and in the report: three
 * significant digits, and below double's range only the bound "< 1e-300". */
static void set_p(rs_table *t, int row, int col, const rs_stats_mcnemar *m)
{
    if (m->valid && m->p < 1e-300)
        rs_table_set_text(t, row, col, "< 1e-300");
    else if (m->valid)
        rs_table_set_number(t, row, col, m->p, -1, m->pairs);
}

/* ---- compare: run B against run A --------------------------------------------------------- */

static void compare_rows(rs_table *t, const rs_run_info *ia, const rs_stats_comparison *cmp, int v, int l)
{
    static const char *const metric_keys[RS_STATS_NUM_RATES] = {"top1", "top2", "top2_unordered",
                                                                 "top2_overlap"};
    const rs_stats *a = cmp->a, *b = cmp->b;
    int cell = rs_stats_cell(a, v, l);
    char view[64], layer[64], lh[64];
    rs_report_agreement_label(ia, v, view, sizeof view);
    rs_report_layer_label(ia, l, layer, sizeof layer, false);
    rs_report_layer_label(ia, l, lh, sizeof lh, true);
    for (int k = 0; k < RS_STATS_NUM_RATES; k++) {
        int r = rs_table_add_row(t, view, layer, metric_keys[k]);
        rs_table_set_text(t, r, 0, view);
        rs_table_set_text(t, r, 1, lh);
        rs_table_set_text(t, r, 2, rs_report_rate_headers[k]);
        rs_report_set_rate(t, r, 3, &a->agree[cell].rate[k], a->agree[cell].n.pairs);
        rs_report_set_rate(t, r, 4, &b->agree[cell].rate[k], b->agree[cell].n.pairs);
        const rs_stats_diff *d = &cmp->diff[(size_t)cell * RS_STATS_NUM_RATES + k];
        if (d->valid)
            rs_table_set_diff(t, r, 5, d->value, d->boot_valid, d->boot_lo, d->boot_hi);
    }
}

rs_table *rs_report_compare_table(const rs_run_info *info_a, const rs_stats_comparison *cmp, const char *run)
{
    const char *keys[] = {"view", "layer", "metric", "a", "b", "diff"};
    const char *heads[] = {"View", "Layer", "Metric", "Run A", "Run B", "B \u2212 A"};
    rs_table *t = rs_table_create("Routing consistency, B vs A (%, 95 % bootstrap intervals; B \u2212 A in "
                                  "points, paired bootstrap over images)",
                                  run, 6, keys, heads);
    if (!t)
        return NULL;
    int ns = rs_report_agreement_slot_count(cmp->views);
    for (int l = 0; l <= cmp->layers; l++)
        for (int i = 0; i < ns; i++)
            compare_rows(t, info_a, cmp, rs_report_agreement_slot(cmp->views, i), l);
    return t;
}

static void mcnemar_row(rs_table *t, const rs_run_info *ia, const rs_stats_comparison *cmp, int v, int l)
{
    const rs_stats_mcnemar *m = &cmp->mcnemar[rs_stats_cell(cmp->a, v, l)];
    char view[64], layer[64], lh[64];
    rs_report_agreement_label(ia, v, view, sizeof view);
    rs_report_layer_label(ia, l, layer, sizeof layer, false);
    rs_report_layer_label(ia, l, lh, sizeof lh, true);
    int r = rs_table_add_row(t, view, layer, "mcnemar_top1");
    rs_table_set_text(t, r, 0, view);
    rs_table_set_text(t, r, 1, lh);
    rs_table_set_count(t, r, 2, m->pairs);
    rs_table_set_count(t, r, 3, m->b);
    rs_table_set_count(t, r, 4, m->c);
    if (m->valid) {
        rs_table_set_number(t, r, 5, m->chi2, 3, m->pairs);
        set_p(t, r, 6, m);
    }
}

rs_table *rs_report_mcnemar_table(const rs_run_info *info_a, const rs_stats_comparison *cmp, const char *run)
{
    const char *keys[] = {"view", "layer", "shared_pairs", "a_only", "b_only", "chi2", "p"};
    const char *heads[] = {"View", "Layer", "Shared pairs", "A agrees, B not", "B agrees, A not", "McNemar \u03c7\u00b2",
                           "p"};
    rs_table *t = rs_table_create("McNemar's test on Top-1 (patches treated as independent)", run, 7, keys, heads);
    if (!t)
        return NULL;
    rs_table_set_note(t, mcnemar_note);
    int ns = rs_report_agreement_slot_count(cmp->views);
    for (int l = 0; l <= cmp->layers; l++)
        for (int i = 0; i < ns; i++)
            mcnemar_row(t, info_a, cmp, rs_report_agreement_slot(cmp->views, i), l);
    return t;
}

/* ---- the comparison report ---------------------------------------------------------------- */

/* Run I's rows of the headline: one per MoE layer (unless OVERALL_ONLY), then "overall". */
static void headline_rows(rs_table *t, const rs_report_set *set, int i, const rs_stats_comparison *cmp,
                          bool overall_only)
{
    const rs_run_info *r = &set->info[i];
    const rs_stats *st = set->st[i];
    for (int l = overall_only ? st->layers : 0; l <= st->layers; l++) {
        char rn[32], model[64], lh[64], lk[64];
        snprintf(rn, sizeof rn, "%" PRId64, r->id);
        rs_run_model_k_label(r, model, sizeof model);
        rs_report_layer_label(r, l, lh, sizeof lh, true);
        rs_report_layer_label(r, l, lk, sizeof lk, false);
        if (l == st->layers)
            snprintf(lh, sizeof lh, "overall");
        int cell = rs_stats_cell(st, st->views, l);
        const rs_stats_agreement *a = &st->agree[cell];
        int row = rs_table_add_row(t, "all", lk, NULL);
        rs_table_set_row_run(t, row, rn);
        char rlab[80];
        snprintf(rlab, sizeof rlab, "run %s%s", rn, set->flag[i][0] ? " (not comparable)" : "");
        rs_table_set_text(t, row, 0, rlab);
        rs_table_set_text(t, row, 1, model);
        rs_table_set_text(t, row, 2, lh);
        rs_report_set_rate(t, row, 3, &a->rate[RS_STATS_TOP1], a->n.pairs);
        rs_report_set_rate(t, row, 4, &a->rate[RS_STATS_TOP2], a->n.pairs);
        rs_report_set_rate(t, row, 5, &a->rate[RS_STATS_TOP2_UNORDERED], a->n.pairs);
        rs_table_set_count(t, row, 6, a->n.pairs);
        if (cmp) {
            const rs_stats_diff *df = &cmp->diff[(size_t)cell * RS_STATS_NUM_RATES + RS_STATS_TOP1];
            if (df->valid)
                rs_table_set_diff(t, row, 7, df->value, df->boot_valid, df->boot_lo, df->boot_hi);
        }
    }
}

rs_table *rs_report_headline_table(const rs_report_set *set, rs_stats_comparison *const *cmps, bool pairs_only,
                                   bool overall_only)
{
    const char *keys[] = {"run", "model", "layer", "top1", "top2", "top2_unordered", "pairs", "top1_diff"};
    const char *heads[] = {"Run", "Model", "Layer", "Top-1", "Top-2", "Top-2 (order-agnostic)", "Pairs",
                           "Top-1 \u0394 vs baseline"};
    rs_table *t = rs_table_create("Routing consistency per run (%, view 1 vs view 0 / all views pooled)",
                                  "", 8, keys, heads);
    for (int i = 0; t && i < set->n; i++)
        if (!pairs_only || !rs_run_is_noise(&set->info[i]))
            headline_rows(t, set, i, cmps[i], overall_only);
    return t;
}

/* "run ID NAME (sha256 prefix, k=K)" */
static void run_model(const rs_run_info *r, char *buf, size_t size)
{
    char model[160];
    rs_run_model_k_label(r, model, sizeof model);
    snprintf(buf, size, "run %" PRId64 " %s", r->id, model);
}

static void differences_row(rs_table *t, const rs_report_set *set, int i, const rs_stats_comparison *cmp)
{
    static const int rates[4] = {RS_STATS_TOP1, RS_STATS_TOP2, RS_STATS_TOP2_UNORDERED, RS_STATS_OVERLAP};
    const rs_run_info *r = &set->info[i], *b = &set->info[set->baseline[i]];
    char rl[200], bl[200], id[32], vs[40];
    run_model(r, rl, sizeof rl);
    run_model(b, bl, sizeof bl);
    size_t len = strlen(rl);
    snprintf(rl + len, sizeof rl - len, ", %s", r->protocol);
    snprintf(id, sizeof id, "%" PRId64, r->id);
    snprintf(vs, sizeof vs, "vs_run%" PRId64, b->id);
    int row = rs_table_add_row(t, NULL, "all", vs);
    rs_table_set_row_run(t, row, id);
    rs_table_set_text(t, row, 0, rl);
    rs_table_set_text(t, row, 1, bl);
    int cell = rs_stats_cell(cmp->a, cmp->a->views, cmp->a->layers);
    for (int k = 0; k < 4; k++) {
        const rs_stats_diff *df = &cmp->diff[(size_t)cell * RS_STATS_NUM_RATES + rates[k]];
        if (df->valid)
            rs_table_set_diff(t, row, 2 + k, df->value, df->boot_valid, df->boot_lo, df->boot_hi);
    }
    set_p(t, row, 6, &cmp->mcnemar[cell]);
}

rs_table *rs_report_differences_table(const rs_report_set *set, rs_stats_comparison *const *cmps)
{
    const char *keys[] = {"run", "baseline", "top1_diff", "top2_diff", "top2_unordered_diff", "top2_overlap_diff",
                          "mcnemar_p"};
    const char *heads[] = {"Run", "Baseline", "Top-1 \u0394", "Top-2 \u0394", "Top-2 (order-agnostic) \u0394",
                           "Top-2 overlap \u0394", "McNemar p (Top-1)"};
    rs_table *t = rs_table_create("Paired differences to the baseline, all MoE layers (percentage points, paired "
                                  "bootstrap over images)", "", 7, keys, heads);
    for (int i = 0; t && i < set->n; i++)
        if (cmps[i])
            differences_row(t, set, i, cmps[i]);
    if (t)
        rs_table_set_note(t, "McNemar treats patches as independent (they are not), so its p is optimistic; "
                             "the bootstrap interval is the primary comparison.");
    return t;
}

rs_table *rs_report_own_headline_table(const rs_report_set *set)
{
    const char *keys[] = {"run", "model", "protocol", "top1", "top2", "top2_unordered", "accuracy", "accuracy_all"};
    const char *heads[] = {"Run", "Model", "Protocol", "Top-1", "Top-2", "Top-2 (order-agnostic)",
                           "Accuracy, view 0", "Accuracy, all views"};
    rs_table *t = rs_table_create("Each run's headline figures (%: agreement with view 0, all other views and MoE "
                                  "layers pooled, bootstrap interval over images; accuracy with Wilson intervals)",
                                  "", 8, keys, heads);
    static const int rates[3] = {RS_STATS_TOP1, RS_STATS_TOP2, RS_STATS_TOP2_UNORDERED};
    for (int i = 0; t && i < set->n; i++) {
        const rs_run_info *r = &set->info[i];
        const rs_stats *st = set->st[i];
        char id[32], rn[32], model[64];
        snprintf(id, sizeof id, "%" PRId64, r->id);
        snprintf(rn, sizeof rn, "run %" PRId64, r->id);
        rs_run_model_k_label(r, model, sizeof model);
        int row = rs_table_add_row(t, "all", "all", NULL);
        rs_table_set_row_run(t, row, id);
        rs_table_set_text(t, row, 0, rn);
        rs_table_set_text(t, row, 1, model);
        rs_table_set_text(t, row, 2, r->protocol);
        const rs_stats_agreement *a = &st->agree[rs_stats_cell(st, st->views, st->layers)];
        for (int k = 0; k < 3; k++)
            rs_report_set_rate(t, row, 3 + k, &a->rate[rates[k]], a->n.pairs);
        for (int k = 0; k < 2; k++) {
            const rs_stats_accuracy *acc = &st->accuracy[k ? st->views : 0];
            if (acc->valid)
                rs_table_set_rate(t, row, 6 + k, acc->value, true, acc->wilson_lo, acc->wilson_hi, true,
                                  acc->wilson_lo, acc->wilson_hi, acc->labelled);
        }
    }
    return t;
}

/* The accuracy table's columns: run, model, protocol, then clean and severity 1..SEV when
   NOISE, then all views pooled when AUG (named the augmented views when PAIRS_ONLY: every
   such run is a pair run): only columns some row fills. */
static rs_table *accuracy_create(bool noise, int sev, bool aug, bool pairs_only)
{
    int nc = 3 + (noise ? 1 + sev : 0) + (aug ? 1 : 0);
    const char **keys = calloc((size_t)nc, sizeof *keys), **heads = calloc((size_t)nc, sizeof *heads);
    char (*kb)[32] = calloc((size_t)nc, sizeof *kb), (*hb)[48] = calloc((size_t)nc, sizeof *hb);
    rs_table *t = NULL;
    if (keys && heads && kb && hb) {
        keys[0] = "run", heads[0] = "Run";
        keys[1] = "model", heads[1] = "Model";
        keys[2] = "protocol", heads[2] = "Protocol";
        if (noise)
            keys[3] = "clean", heads[3] = "Clean";
        for (int s = 1; noise && s <= sev; s++) {
            snprintf(kb[3 + s], sizeof kb[0], "severity%d", s);
            snprintf(hb[3 + s], sizeof hb[0], "Severity %d", s);
            keys[3 + s] = kb[3 + s], heads[3 + s] = hb[3 + s];
        }
        if (aug)
            keys[nc - 1] = "augmented", heads[nc - 1] = pairs_only ? "Augmented views" : "All views";
        const char *title = !aug        ? "Accuracy under noise (%, Wilson interval)"
                            : noise      ? "Accuracy (%, Wilson interval)"
                            : pairs_only ? "Accuracy on the augmented views (%, Wilson interval)"
                                         : "Accuracy over all views (%, Wilson interval)";
        t = rs_table_create(title, "", nc, keys, heads);
    }
    free(keys);
    free(heads);
    free(kb);
    free(hb);
    return t;
}

/* Row of run R in a table of NC columns: a noise run fills clean and its severities
   (columns 3 ..), another run the augmented views (column AUG_COL; -1 when there is none). */
static void accuracy_row(rs_table *t, int nc, int aug_col, const rs_run_info *r, const rs_stats *st)
{
    char id[32], rn[32], model[64];
    snprintf(id, sizeof id, "%" PRId64, r->id);
    snprintf(rn, sizeof rn, "run %" PRId64, r->id);
    rs_run_model_k_label(r, model, sizeof model);
    int row = rs_table_add_row(t, NULL, NULL, NULL);
    rs_table_set_row_run(t, row, id);
    rs_table_set_text(t, row, 0, rn);
    rs_table_set_text(t, row, 1, model);
    rs_table_set_text(t, row, 2, r->protocol);
    for (int c = 3; c < nc; c++) {
        const rs_stats_accuracy *a = NULL;
        if (rs_run_is_noise(r) && c - 3 < st->views && c != aug_col)
            a = &st->accuracy[c - 3];
        else if (!rs_run_is_noise(r) && c == aug_col)
            a = &st->accuracy[st->views];
        if (a && a->valid)
            rs_table_set_rate(t, row, c, a->value, true, a->wilson_lo, a->wilson_hi, true, a->wilson_lo,
                              a->wilson_hi, a->labelled);
    }
}

const char rs_report_crops_note[] =
    "the pair protocol's default crops keep 5-100 % of the image area (the PRC work's augmentation), so accuracy on "
    "them may be below clean accuracy; the bundled models were trained on 25-100 % crops (models/README.md).";

bool rs_report_default_crops(const rs_run_info *r)
{
    if (strcmp(r->protocol, "pair") || r->num_views < 2)
        return false;
    for (int v = 0; v < r->num_views; v++)
        if (strcmp(r->view_specs[v], RS_PAIR_AUGMENT))
            return false;
    return true;
}

rs_table *rs_report_runs_accuracy_table(const rs_report_set *set)
{
    int sev = 0;
    bool noise = false, aug = false, pair = false, other = false;
    for (int i = 0; i < set->n; i++) {
        bool is_noise = rs_run_is_noise(&set->info[i]), is_pair = !strcmp(set->info[i].protocol, "pair");
        noise = noise || is_noise;
        aug = aug || !is_noise;
        pair = pair || is_pair;
        other = other || (!is_noise && !is_pair);
        if (is_noise && set->info[i].num_views - 1 > sev)
            sev = set->info[i].num_views - 1;
    }
    rs_table *t = accuracy_create(noise, sev, aug, !other);
    int nc = 3 + (noise ? 1 + sev : 0) + (aug ? 1 : 0), aug_col = aug ? nc - 1 : -1;
    for (int i = 0; t && i < set->n; i++)
        accuracy_row(t, nc, aug_col, &set->info[i], set->st[i]);
    bool crops = pair; /* the note on crops holds only where every pair run has the default ones */
    for (int i = 0; i < set->n; i++)
        if (!strcmp(set->info[i].protocol, "pair"))
            crops = crops && rs_report_default_crops(&set->info[i]);
    static const char pooled[] = "All views: every view of the run pooled, view 0 included";
    char note[768];
    if (other && crops)
        snprintf(note, sizeof note, "%s; for a pair run, its augmented views: %s", pooled, rs_report_crops_note);
    else if (other || !crops)
        snprintf(note, sizeof note, "%s.", other ? pooled : "Augmented views: both views of the run pooled");
    else
        snprintf(note, sizeof note, "Augmented views: %s", rs_report_crops_note);
    if (t && aug)
        rs_table_set_note(t, note);
    return t;
}

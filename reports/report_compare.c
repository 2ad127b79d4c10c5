/* report_compare.c — the comparison report of several runs (report.h), section by section:
 * headline and paired differences, accuracy, severity curves, router figures, grids,
 * largest differences (report_largest.c), per-run detail. */
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#include "report_parts.h"
#include "stats_tables.h"

static rs_report_set run_set(rs_report_state *R)
{
    return (rs_report_set){.n = R->n, .info = R->info, .st = R->st, .baseline = R->baseline, .flag = R->flag};
}

/* The headline shows the pair runs, or all runs when there is none. */
static bool pairs_only(const rs_report_state *R)
{
    for (int i = 0; i < R->n; i++)
        if (!rs_report_is_noise(&R->info[i]))
            return true;
    return false;
}

static void headline_text(rs_report_state *R, bool any_pair)
{
    /* which comparisons the last column holds, in words */
    char pairs[256] = "";
    for (int i = 0, len = 0; i < R->n && len < (int)sizeof pairs; i++) {
        int b = R->baseline[i];
        if (b >= 0 && (!any_pair || !rs_report_is_noise(&R->info[i])))
            len += snprintf(pairs + len, sizeof pairs - (size_t)len, "%srun %" PRId64 " vs run %" PRId64,
                            len ? ", " : "", R->info[i].id, R->info[b].id);
    }
    rs_doc_add(&R->d, RS_DOC_H2, "Headline: routing consistency", NULL);
    rs_doc_addf(&R->d, RS_DOC_PARA,
         "In the form of the PRC work's Table 2: one row per run and MoE layer plus the overall row (all MoE "
         "layers), %s. Rates in percent with %.0f %% bootstrap intervals over images; the last column is the paired "
         "Top-1 difference (paired bootstrap over images) to the run's baseline, the first run given before it "
         "with the same protocol and top-k (else the same protocol), where the runs are comparable%s%s%s.",
         any_pair ? "pair runs" : "all runs (no pair run given)", 100 * R->st[0]->level, pairs[0] ? " (" : "", pairs,
         pairs[0] ? ")" : "");
}

/* Each shown run against its comparable baseline (NULL where there is none, or where the
 * comparison fails: the row then simply has no difference). Returns how many exist. */
static int baseline_comparisons(rs_report_state *R, bool any_pair, rs_stats_comparison **cmps)
{
    int ncmp = 0;
    for (int i = 0; i < R->n; i++) {
        const rs_run_info *r = &R->info[i];
        int b = R->baseline[i];
        if ((any_pair && rs_report_is_noise(r)) || b < 0 || R->flag[i][0])
            continue;
        rs_stats_options o = {.resamples = R->opt->resamples ? R->opt->resamples : 0,
                              .seed = RS_STATS_DEFAULT_SEED,
                              .name = R->opt->db};
        rs_error e2;
        if (rs_stats_compare(R->store, R->info[b].id, R->store, r->id, &o, &cmps[i],
                             &e2))
            cmps[i] = NULL;
        ncmp += cmps[i] != NULL;
    }
    return ncmp;
}

/* Headline (Table 2 form) and the paired differences to each run's baseline. */
static void headline(rs_report_state *R)
{
    bool any_pair = pairs_only(R);
    headline_text(R, any_pair);
    rs_report_set set = run_set(R);
    /* owned here, freed after both tables */
    rs_stats_comparison **cmps = calloc((size_t)R->n, sizeof *cmps);
    if (!cmps) {
        if (!R->d.rc)
            R->d.rc = rs_error_set(R->d.err, RS_ENOMEM, "out of memory");
        return;
    }
    int ncmp = baseline_comparisons(R, any_pair, cmps);
    rs_doc_add_table(&R->d, rs_report_headline_table(&set, cmps, any_pair), "headline");
    if (ncmp > 0)
        rs_doc_add_table(&R->d, rs_report_differences_table(&set, cmps), "differences");
    for (int i = 0; i < R->n; i++)
        rs_stats_comparison_free(cmps[i]);
    free(cmps);
}

/* Accuracy (Table 1 form). */
static void accuracy(rs_report_state *R)
{
    rs_doc_add(&R->d, RS_DOC_H2, "Accuracy", NULL);
    rs_doc_add(&R->d, RS_DOC_PARA,
        "In the form of the PRC work's Table 1: clean accuracy and accuracy per noise severity (noise runs), and "
        "the accuracy on the augmented views (pair runs), in percent with Wilson intervals.",
        NULL);
    rs_report_set set = run_set(R);
    rs_doc_add_table(&R->d, rs_report_runs_accuracy_table(&set), "accuracy");
}

/* Severity sweep and accuracy curves of all noise runs. */
static void curves(rs_report_state *R)
{
    rs_doc *d = &R->d;
    char path[4096];
    int nn = 0;
    const rs_stats *nst[64];
    const rs_run_info *nri[64];
    for (int i = 0; i < R->n && nn < 64; i++)
        if (rs_report_is_noise(&R->info[i]) && R->info[i].num_views > 1)
            nst[nn] = R->st[i], nri[nn++] = &R->info[i];
    if (!nn)
        return;
    rs_doc_add(d, RS_DOC_H2, "Severity sweep", NULL);
    rs_report_fig_path(R, "sweep.png", path, sizeof path);
    if (!d->rc)
        d->rc = rs_render_sweep(nst, nri, nn, -1, path, d->err);
    rs_report_figure(R, "sweep.png",
           "Top-1 agreement with the clean view against the noise severity for every noise run, all MoE layers "
           "pooled, with bootstrap bands.");
    rs_report_fig_path(R, "accuracy.png", path, sizeof path);
    if (!d->rc)
        d->rc = rs_render_accuracy(nst, nri, nn, path, d->err);
    rs_report_figure(R, "accuracy.png", "Accuracy against the noise severity for every noise run, with Wilson bands.");
}

/* Router figures of all runs. */
static void router(rs_report_state *R)
{
    rs_doc *d = &R->d;
    char path[4096];
    rs_doc_add(d, RS_DOC_H2, "Router figures", NULL);
    rs_report_fig_path(R, "router.png", path, sizeof path);
    const rs_run_info **ri = malloc(sizeof *ri * (size_t)R->n);
    if (!ri && !d->rc)
        d->rc = rs_error_set(d->err, RS_ENOMEM, "out of memory");
    for (int i = 0; ri && i < R->n; i++)
        ri[i] = &R->info[i];
    if (!d->rc)
        d->rc = rs_render_router((const rs_stats *const *)R->st, ri, R->n, path, d->err);
    free(ri);
    rs_report_figure(R, "router.png", "PRC score, JSD, routing entropy and load CV per MoE layer for every run.");
}

static bool holds(const rs_run_info *r, int image)
{
    return image >= r->offset && image < r->offset + r->images_done;
}

/* Grids of the same images for each run that holds them. */
static void grids(rs_report_state *R)
{
    if (R->opt->images <= 0)
        return;
    rs_doc_add(&R->d, RS_DOC_H2, "Expert-selection grids", NULL);
    rs_doc_add(&R->d, RS_DOC_PARA, "The same images for each run that holds them.", NULL);
    const rs_run_info *r0 = &R->info[0];
    for (int k = 0; k < R->opt->images && k < r0->images_done; k++)
        for (int i = 0; i < R->n; i++)
            if (holds(&R->info[i], r0->offset + k))
                rs_report_grid_figure(R, &R->info[i], r0->offset + k);
}

/* Each run's own tables (and figures). */
static void details(rs_report_state *R)
{
    rs_doc *d = &R->d;
    for (int i = 0; i < R->n; i++) {
        const rs_run_info *r = &R->info[i];
        char rl[200], rn[32], name[64], buf[512];
        rs_report_run_label(r, rl, sizeof rl);
        rs_report_run_name(r, rn, sizeof rn);
        snprintf(buf, sizeof buf, "Details of %s", rl);
        rs_doc_add(d, RS_DOC_H2, buf, NULL);
        snprintf(name, sizeof name, "consistency-run%s", rn);
        rs_doc_add_table(d, rs_report_consistency_table(r, R->st[i], rn, false), name);
        snprintf(name, sizeof name, "router-run%s", rn);
        rs_doc_add_table(d, rs_report_layer_table(r, R->st[i], rn), name);
        if (!rs_report_is_noise(r))  /* a noise run pools its severities into one matrix: less telling */
            rs_report_load_transition_figures(R, r, R->st[i], rn);
    }
}

void rs_report_comparison(rs_report_state *R)
{
    headline(R);
    accuracy(R);
    curves(R);
    router(R);
    grids(R);
    rs_report_largest_differences(R);
    details(R);
}

/* attack_section.c — the report's "Routing under attack" section (report.h): when some of
 * the report's runs are adversarial-style (analyze/stats/attack_stats.h), their curves against ε
 * side by side (V-MoE and V-MoE+PRC of each k in one chart: hue = method, line style = k),
 * then (with groups only with --detail) a table per run, the min-ε histograms and median
 * maps, grids of the images the largest ε changed most, and the attack objective's
 * convergence where the store records it. */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attack_plot.h"
#include "tables/attack_tables.h"
#include "sections.h"
#include "stats/examples.h"

#define ATTACK_GRIDS 2 /* most changed images drawn per run */

/* The adversarial runs of the report, in the order k, then V-MoE before other methods,
 * then as given: the runs a reader compares sit next to each other. */
typedef struct attack_runs {
    int n;
    int *idx;                   /* (n) indices into R->info */
    rs_attack_stats **as;       /* (n) */
} attack_runs;

static void attack_runs_free(attack_runs *a)
{
    for (int i = 0; i < a->n; i++)
        rs_attack_stats_free(a->as[i]);
    free(a->idx);
    free(a->as);
}

static bool before(const rs_run_info *x, const rs_run_info *y)
{
    if (x->top_k != y->top_k)
        return x->top_k < y->top_k;
    return rs_run_method(x) == RS_METHOD_VMOE && rs_run_method(y) != RS_METHOD_VMOE;
}

static int find_runs(rs_report_state *R, attack_runs *a)
{
    a->idx = calloc((size_t)R->n, sizeof *a->idx);
    a->as = calloc((size_t)R->n, sizeof *a->as);
    if (!a->idx || !a->as)
        return rs_error_set(R->d.err, RS_ENOMEM, "out of memory");
    rs_stats_options so = {.name = R->opt->db};
    for (int i = 0; i < R->n; i++) {
        double *eps;
        rs_error why; /* a run that is not adversarial is simply left out of this section */
        int rc = rs_attack_grid(&R->info[i], &eps, &why);
        if (rc < 0)
            return rs_error_set(R->d.err, rc, "%s", why.msg);
        if (rc == 0)
            continue;
        free(eps);
        int at = a->n;
        while (at > 0 && before(&R->info[i], &R->info[a->idx[at - 1]]))
            at--;
        memmove(a->idx + at + 1, a->idx + at, sizeof *a->idx * (size_t)(a->n - at));
        memmove(a->as + at + 1, a->as + at, sizeof *a->as * (size_t)(a->n - at));
        a->idx[at] = i;
        a->as[at] = NULL;
        a->n++;
        if ((rc = rs_attack_stats_compute(R->store, &R->info[i], R->st[i], &so, &a->as[at], R->d.err)))
            return rc;
    }
    return 0;
}

static bool same_grid(const rs_attack_stats *x, const rs_attack_stats *y)
{
    if (x->views != y->views)
        return false;
    for (int v = 0; v < x->views; v++)
        if (fabs(x->eps[v] - y->eps[v]) > 1e-9)
            return false;
    return true;
}

/* One chart of curves per ε grid, holding every run on that grid. */
static void curves(rs_report_state *R, const attack_runs *a)
{
    bool *done = calloc((size_t)a->n, sizeof *done);
    const rs_attack_stats **as = calloc((size_t)a->n, sizeof *as);
    const rs_run_info **runs = calloc((size_t)a->n, sizeof *runs);
    if (!done || !as || !runs) {
        R->d.rc = rs_error_set(R->d.err, RS_ENOMEM, "out of memory");
        goto out;
    }
    for (int i = 0, chart = 0; i < a->n && !R->d.rc; i++) {
        if (done[i])
            continue;
        int m = 0;
        for (int j = i; j < a->n; j++)
            if (!done[j] && same_grid(a->as[i], a->as[j])) {
                done[j] = true;
                as[m] = a->as[j];
                runs[m++] = &R->info[a->idx[j]];
            }
        char file[64], path[4096];
        snprintf(file, sizeof file, "attack-curves-%d.png", ++chart);
        for (int twin = 0; twin < 2 && !R->d.rc; twin++) { /* the PNG, then its vector twin */
            rs_report_fig_path_twin(R, file, twin, path, sizeof path);
            R->d.rc = rs_render_attack_curves(as, runs, m, path, R->d.err);
        }
        rs_report_figure(R, file, "Top-1, Top-2 and order-agnostic agreement with the unattacked view and accuracy "
                         "against \u03b5, MoE layers pooled, with 95 % bootstrap bands over images. Hue: training "
                         "method (" RS_REPORT_METHOD_HUES "); line style: k (solid k=1, dashed k=2).");
    }
out:
    free(done);
    free(as);
    free(runs);
}

/* One table of every adversarial run, in the section's order. */
static void summary(rs_report_state *R, const attack_runs *a)
{
    const rs_attack_stats **as = calloc((size_t)a->n, sizeof *as);
    const rs_run_info **runs = calloc((size_t)a->n, sizeof *runs);
    if (as && runs) {
        for (int i = 0; i < a->n; i++)
            as[i] = a->as[i], runs[i] = &R->info[a->idx[i]];
        rs_doc_add_table(&R->d, rs_report_attack_summary_table(as, runs, a->n), "attack-summary");
    } else if (!R->d.rc) {
        R->d.rc = rs_error_set(R->d.err, RS_ENOMEM, "out of memory");
    }
    free(as);
    free(runs);
}

/* Min-ε histogram and median map, the most changed images' grids, the objective. */
static void run_figures(rs_report_state *R, const rs_run_info *r, const rs_attack_stats *as)
{
    rs_doc *d = &R->d;
    char file[128], path[4096], rn[32], rl[200], cap[512];
    rs_run_name(r, rn, sizeof rn);
    rs_run_label(r, rl, sizeof rl);
    rs_doc_addf(d, RS_DOC_PARA, "%s.", rl);
    char name[64];
    snprintf(name, sizeof name, "attack-run%s", rn);
    rs_doc_add_table(d, rs_report_attack_table(as, rn), name);
    snprintf(file, sizeof file, "min-eps-hist-run%s.png", rn);
    for (int twin = 0; twin < 2 && !d->rc; twin++) { /* the PNG, then its vector twin */
        rs_report_fig_path_twin(R, file, twin, path, sizeof path);
        d->rc = rs_render_min_eps_hist(as, r, path, d->err);
    }
    snprintf(cap, sizeof cap, "Share of patches by the smallest \u03b5 at which their top-1 expert changes, per MoE "
             "layer (%s).", rl);
    rs_report_figure(R, file, cap);
    snprintf(file, sizeof file, "min-eps-map-run%s.png", rn);
    for (int twin = 0; twin < 2 && !d->rc; twin++) { /* the PNG, then its vector twin */
        rs_report_fig_path_twin(R, file, twin, path, sizeof path);
        d->rc = rs_render_min_eps_map(as, r, -1, -1, path, d->err);
    }
    snprintf(cap, sizeof cap, "Median min-\u03b5 over images for each patch of the grid, per MoE layer (%s).", rl);
    rs_report_figure(R, file, cap);
    double *mean = NULL;
    int steps = 0;
    if (!d->rc && R->opt->db)
        d->rc = rs_attack_objective(R->store, R->opt->db, r, &mean, &steps, d->err);
    if (!d->rc && steps > 0) {
        snprintf(file, sizeof file, "objective-run%s.png", rn);
        for (int twin = 0; twin < 2 && !d->rc; twin++) { /* the PNG, then its vector twin */
            rs_report_fig_path_twin(R, file, twin, path, sizeof path);
            d->rc = rs_render_attack_objective(mean, steps, as, r, path, d->err);
        }
        rs_report_figure(R, file, "Mean attack objective per PGD step, one line per \u03b5: flat ends mean the "
                         "attack converged.");
    }
    free(mean);
}

/* The images the largest ε changed most (stats/examples.h), as grids. */
static void most_changed(rs_report_state *R, const rs_run_info *r, const rs_attack_stats *as)
{
    int images[ATTACK_GRIDS];
    int n = rs_examples_attacked(as, ATTACK_GRIDS, images);
    for (int k = 0; k < n && !R->d.rc; k++)
        rs_report_grid_figure(R, r, as->first_image + images[k]);
}

void rs_report_attack(rs_report_state *R)
{
    if (R->d.rc)
        return;
    attack_runs a = {0};
    int rc = find_runs(R, &a);
    if (rc || a.n == 0) {
        R->d.rc = rc;
        attack_runs_free(&a);
        return;
    }
    rs_doc *d = &R->d;
    rs_doc_add(d, RS_DOC_H2, "Routing under attack", NULL);
    rs_doc_add(d, RS_DOC_PARA,
               "Each attacked view is the clean image moved by PGD within an L\u221e ball of radius \u03b5 (in [0,1] "
               "pixel units); view 0 is the clean image (\u03b5 = 0). Agreement is measured against view 0 patch for "
               "patch; routing changes is vmoe's 1 \u2212 mean IoU of the selected experts. Min-\u03b5 is, per MoE "
               "layer and patch, the smallest \u03b5 of the run's grid at which the patch's top-1 expert differs "
               "from the clean one (never: no \u03b5 of the grid changed it). Higher curves and larger min-\u03b5 "
               "mean a router that needs a stronger attack to change its mind.", NULL);
    curves(R, &a);
    summary(R, &a);
    /* with groups, the runs are many and the curves and the table compare them; each run's
     * own figures would be pages of near repeats */
    if (R->answer && !R->opt->detail) {
        rs_doc_add(d, RS_DOC_PARA, "Each run's own table, min-\u03b5 figures, attack objective and most changed "
                   "images are in the report made with --detail.", NULL);
        attack_runs_free(&a);
        return;
    }
    for (int i = 0; i < a.n && !d->rc; i++)
        run_figures(R, &R->info[a.idx[i]], a.as[i]);
    if (R->opt->images > 0)
        for (int i = 0; i < a.n && !d->rc; i++)
            most_changed(R, &R->info[a.idx[i]], a.as[i]);
    attack_runs_free(&a);
}

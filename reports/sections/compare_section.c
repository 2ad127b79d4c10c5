/* compare_section.c — the comparison report of several runs (report.h), section by section:
 * the summary (each method against V-MoE of the same k), the contents, headline, paired
 * differences, accuracy, severity curves, router figures, examples (grids, heatmaps),
 * largest differences (largest_section.c), and per-run detail when asked for. */
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "grid.h"
#include "sections.h"
#include "input/spec_text.h"
#include "tables/stats_tables.h"

static rs_report_set run_set(rs_report_state *R)
{
    return (rs_report_set){.n = R->n, .info = R->info, .st = R->st, .baseline = R->baseline, .flag = R->flag};
}

/* The protocols of the runs that are not noise runs, in the order given, as words ("pair",
 * "pair and adversarial") into BUF; returns how many there are. The headline shows those
 * runs, or all runs when there is none. */
static int other_protocols(const rs_report_state *R, char *buf, size_t size)
{
    const char *seen[8];
    int n = 0;
    for (int i = 0; i < R->n && n < 8; i++) {
        bool again = rs_run_is_noise(&R->info[i]);
        for (int j = 0; j < n && !again; j++)
            again = !strcmp(seen[j], R->info[i].protocol);
        if (!again)
            seen[n++] = R->info[i].protocol;
    }
    size_t len = 0;
    buf[0] = 0;
    for (int j = 0; j < n && len < size; j++)
        len += (size_t)snprintf(buf + len, size - len, "%s%s", j == 0 ? "" : j == n - 1 ? " and " : ", ", seen[j]);
    return n;
}

static void headline_text(rs_report_state *R, const char *protocols)
{
    char which[128];
    if (protocols[0])
        snprintf(which, sizeof which, "%s runs", protocols);
    else
        snprintf(which, sizeof which, "all runs (only noise runs given)");
    rs_doc_add(&R->d, RS_DOC_H2, "Headline: routing consistency", NULL);
    const char *rows = R->answer && !R->opt->detail
                           ? "its overall row (all MoE layers; each layer's rows with --detail)"
                           : "and MoE layer plus the overall row (all MoE layers)";
    rs_doc_addf(&R->d, RS_DOC_PARA,
         "In the form of the PRC work's Table 2: one row per run %s, %s. Rates in percent with %.0f %% bootstrap "
         "intervals over images; the last column is the paired Top-1 difference (paired bootstrap over images) to "
         "the run's baseline: the V-MoE run of the same protocol and top-k given before it, where the runs are "
         "comparable.",
         rows, which, 100 * R->st[0]->level);
}

/* Each run against its comparable baseline (NULL where there is none, or where the
 * comparison fails: the run then simply has no difference). */
static void baseline_comparisons(rs_report_state *R, rs_stats_comparison **cmps)
{
    for (int i = 0; i < R->n; i++) {
        int b = R->baseline[i];
        if (b < 0 || R->flag[i][0])
            continue;
        rs_stats_options o = {.resamples = R->opt->resamples, .seed = RS_STATS_DEFAULT_SEED, .name = R->opt->db};
        rs_error e2;
        if (rs_stats_compare(R->store, R->info[b].id, R->store, R->info[i].id, &o, &cmps[i], &e2))
            cmps[i] = NULL;
    }
}

/* The Top-1 difference over all views and MoE layers (NULL when it has none). */
static const rs_stats_diff *top1_diff(const rs_stats_comparison *cmp)
{
    if (!cmp)
        return NULL;
    int cell = rs_stats_cell(cmp->a, cmp->a->views, cmp->a->layers);
    const rs_stats_diff *df = &cmp->diff[(size_t)cell * RS_STATS_NUM_RATES + RS_STATS_TOP1];
    return df->valid ? df : NULL;
}

/* +1 / -1 when the interval lies above / below 0, else 0. */
static int sign_of(const rs_stats_diff *df)
{
    return df->boot_valid && df->boot_lo > 0 ? 1 : df->boot_valid && df->boot_hi < 0 ? -1 : 0;
}

static void summary_line(rs_report_state *R, int i, const rs_stats_diff *df, char *buf, size_t size)
{
    const rs_run_info *r = &R->info[i], *b = &R->info[R->baseline[i]];
    char rl[200], bl[200];
    rs_run_short_label(r, rl, sizeof rl);
    rs_run_short_label(b, bl, sizeof bl);
    static const char *const says[3] = {"lower: less consistent routing",
                                        "no clear difference (the interval includes 0)",
                                        "higher: more consistent routing"};
    int len = snprintf(buf, size, "%s vs %s, %s protocol: Top-1 agreement %+.2f points", rl, bl, r->protocol,
                       100 * df->value);
    if (df->boot_valid)
        len += snprintf(buf + len, size - (size_t)len, " [%+.2f, %+.2f]", 100 * df->boot_lo, 100 * df->boot_hi);
    snprintf(buf + len, size - (size_t)len, ", %s.", says[sign_of(df) + 1]);
}

/* Where a pair comparison and the noise comparison of the same two models disagree in sign. */
static void reversal_line(rs_report_state *R, int i, rs_stats_comparison **cmps, char *buf, size_t size)
{
    buf[0] = 0;
    const rs_stats_diff *df = top1_diff(cmps[i]);
    if (!df || !rs_run_is_noise(&R->info[i]))
        return;
    const char *mi = R->info[i].model_sha256, *mb = R->info[R->baseline[i]].model_sha256;
    for (int j = 0; j < R->n; j++) {
        const rs_stats_diff *pj = top1_diff(cmps[j]);
        if (!pj || rs_run_is_noise(&R->info[j]) || strcmp(R->info[j].model_sha256, mi) ||
            strcmp(R->info[R->baseline[j]].model_sha256, mb) || sign_of(pj) == 0 || sign_of(pj) == sign_of(df))
            continue;
        char rl[200];
        rs_run_short_label(&R->info[i], rl, sizeof rl);
        snprintf(buf, size, "Reversal: under noise the difference %s (%s, %+.2f points, against %+.2f points "
                 "on the %s protocol, run %" PRId64 ").", sign_of(df) ? "goes the other way" : "vanishes", rl,
                 100 * df->value, 100 * pj->value, R->info[j].protocol, R->info[j].id);
        return;
    }
}

/* Each method against V-MoE of the same k, with intervals and signs, and the reversals
 * between protocols, under HEADING (NULL: under the answer's table); nothing when no run
 * has a comparable baseline. */
static void summary(rs_report_state *R, rs_stats_comparison **cmps, const char *heading)
{
    rs_doc *d = &R->d;
    char *lines[128];
    int n = 0;
    for (int i = 0; i < R->n && n < 126; i++) {
        const rs_stats_diff *df = top1_diff(cmps[i]);
        char buf[1024];
        if (!df)
            continue;
        summary_line(R, i, df, buf, sizeof buf);
        lines[n++] = strdup(buf);
        reversal_line(R, i, cmps, buf, sizeof buf);
        if (buf[0])
            lines[n++] = strdup(buf);
    }
    if (n && heading)
        rs_doc_add(d, RS_DOC_H2, heading, NULL);
    if (n) {
        rs_doc_addf(d, RS_DOC_PARA,
                    "Each run against its baseline (the V-MoE run of the same protocol, top-k and training seed): the "
                    "paired difference of Top-1 agreement between the two views of each matched patch, all MoE layers "
                    "and views pooled, in percentage points with its %.0f %% paired-bootstrap interval over images.",
                    100 * R->st[0]->level);
        rs_doc_add_list(d, lines, n);
    }
    for (int k = 0; k < n; k++)
        free(lines[k]);
}

/* Without groups the answer comes first: each run against its baseline (the paired
 * differences of the headline figures, then a line per run), or, where no run has a
 * comparable baseline (one model), each run's own headline figures. Returns whether the
 * differences were shown. */
static bool plain_answer(rs_report_state *R, rs_stats_comparison **cmps)
{
    rs_doc *d = &R->d;
    rs_report_set set = run_set(R);
    int ncmp = 0;
    for (int i = 0; i < R->n; i++)
        ncmp += cmps[i] != NULL;
    if (ncmp) {
        rs_doc_add(d, RS_DOC_H2, "Answer: each run against its baseline", NULL);
        rs_doc_add_table(d, rs_report_differences_table(&set, cmps), "differences");
        summary(R, cmps, NULL);
        return true;
    }
    rs_doc_add(d, RS_DOC_H2, "Answer: each run's headline figures", NULL);
    rs_doc_add(d, RS_DOC_PARA, "No run here has a baseline to be compared with (a V-MoE run of the same protocol, "
               "top-k and training seed), so the answer is each run's own routing consistency and accuracy.", NULL);
    rs_doc_add_table(d, rs_report_own_headline_table(&set), "answer");
    return false;
}

/* Headline (Table 2 form). */
static void headline(rs_report_state *R, rs_stats_comparison **cmps)
{
    char protocols[96];
    bool others = other_protocols(R, protocols, sizeof protocols) > 0;
    headline_text(R, protocols);
    rs_report_set set = run_set(R);
    rs_stats_comparison **shown = calloc((size_t)R->n, sizeof *shown); /* the headline's runs only */
    if (!shown) {
        if (!R->d.rc)
            R->d.rc = rs_error_set(R->d.err, RS_ENOMEM, "out of memory");
        return;
    }
    for (int i = 0; i < R->n; i++)
        shown[i] = others && rs_run_is_noise(&R->info[i]) ? NULL : cmps[i];
    /* with groups the runs are many: the overall rows here, each layer in --detail */
    bool overall_only = R->answer && !R->opt->detail;
    rs_doc_add_table(&R->d, rs_report_headline_table(&set, shown, others, overall_only), "headline");
    free(shown);
}

/* The paired differences of every rate, all runs with a comparable baseline. */
static void differences(rs_report_state *R, rs_stats_comparison **cmps)
{
    int ncmp = 0;
    for (int i = 0; i < R->n; i++)
        ncmp += cmps[i] != NULL;
    if (!ncmp)
        return;
    rs_doc_add(&R->d, RS_DOC_H2, "Paired differences", NULL);
    rs_doc_add(&R->d, RS_DOC_PARA,
               "Each run against its baseline, the V-MoE run of the same protocol, top-k and training seed, over all MoE layers "
               "and views: the paired difference of every agreement rate (percentage points, paired bootstrap "
               "over images) and McNemar's p on Top-1.", NULL);
    rs_report_set set = run_set(R);
    rs_doc_add_table(&R->d, rs_report_differences_table(&set, cmps), "differences");
}

/* Accuracy (Table 1 form): the noise runs and the others in tables of their own, so that
   no row is mostly n/a. */
static void accuracy(rs_report_state *R)
{
    char protocols[96];
    other_protocols(R, protocols, sizeof protocols);
    rs_doc_add(&R->d, RS_DOC_H2, "Accuracy", NULL);
    rs_doc_addf(&R->d, RS_DOC_PARA,
        "In the form of the PRC work's Table 1: clean accuracy and accuracy per noise severity (noise runs)%s%s%s, "
        "in percent with Wilson intervals.",
        protocols[0] ? ", and the accuracy over all views of the " : "", protocols, protocols[0] ? " runs" : "");
    rs_run_info *info = malloc(sizeof *info * (size_t)R->n); /* shallow copies, owned by R->info */
    rs_stats **st = malloc(sizeof *st * (size_t)R->n);
    if (!info || !st) {
        if (!R->d.rc)
            R->d.rc = rs_error_set(R->d.err, RS_ENOMEM, "out of memory");
    }
    for (int noise = 1; info && st && noise >= 0; noise--) {
        int n = 0;
        for (int i = 0; i < R->n; i++)
            if (rs_run_is_noise(&R->info[i]) == (bool)noise)
                info[n] = R->info[i], st[n++] = R->st[i];
        rs_report_set set = {.n = n, .info = info, .st = st};
        if (n)
            rs_doc_add_table(&R->d, rs_report_runs_accuracy_table(&set), noise ? "accuracy" : "accuracy-views");
    }
    free(info);
    free(st);
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
        if (rs_run_is_noise(&R->info[i]) && R->info[i].num_views > 1)
            nst[nn] = R->st[i], nri[nn++] = &R->info[i];
    if (!nn)
        return;
    rs_doc_add(d, RS_DOC_H2, "Severity sweep", NULL);
    for (int twin = 0; twin < 2 && !d->rc; twin++) { /* the PNG, then its vector twin */
        rs_report_fig_path_twin(R, "sweep.png", twin, path, sizeof path);
        d->rc = rs_render_sweep(nst, nri, nn, -1, path, d->err);
    }
    rs_report_figure(R, "sweep.png",
           "Top-1 agreement with the clean view against the noise severity for every noise run, all MoE layers "
           "pooled, with bootstrap bands (hue: method, " RS_REPORT_METHOD_HUES " — the checkpoint's method, or read "
           "from its file name; line and marker: k, solid discs k=1, dashed squares k=2).");
    for (int twin = 0; twin < 2 && !d->rc; twin++) { /* the PNG, then its vector twin */
        rs_report_fig_path_twin(R, "accuracy.png", twin, path, sizeof path);
        d->rc = rs_render_accuracy(nst, nri, nn, path, d->err);
    }
    rs_report_figure(R, "accuracy.png",
                     "Accuracy against the noise severity for every noise run, with Wilson bands (hue: method; line "
                     "and marker: k).");
}

/* Router figures: one per protocol, since pair and noise runs never share a chart. */
static void router(rs_report_state *R)
{
    rs_doc *d = &R->d;
    const rs_run_info **ri = malloc(sizeof *ri * (size_t)R->n);
    const rs_stats **st = malloc(sizeof *st * (size_t)R->n);
    if ((!ri || !st) && !d->rc)
        d->rc = rs_error_set(d->err, RS_ENOMEM, "out of memory");
    rs_doc_add(d, RS_DOC_H2, "Router figures", NULL);
    for (int i = 0; ri && st && !d->rc && i < R->n; i++) {
        bool first = true; /* the first run of its protocol draws them all */
        for (int j = 0; j < i; j++)
            first = first && strcmp(R->info[j].protocol, R->info[i].protocol);
        if (!first)
            continue;
        int n = 0;
        for (int j = i; j < R->n; j++)
            if (!strcmp(R->info[j].protocol, R->info[i].protocol))
                ri[n] = &R->info[j], st[n++] = R->st[j];
        char file[96], path[4096], caption[320];
        snprintf(file, sizeof file, "router-%s.png", R->info[i].protocol);
        for (int twin = 0; twin < 2 && !d->rc; twin++) { /* the PNG, then its vector twin */
            rs_report_fig_path_twin(R, file, twin, path, sizeof path);
            d->rc = rs_render_router(st, ri, n, path, d->err);
        }
        snprintf(caption, sizeof caption,
                 "PRC score, JSD, routing entropy and load CV per MoE layer for every %s run (hue: method, "
                 RS_REPORT_METHOD_HUES "; darker: larger k).", R->info[i].protocol);
        rs_report_figure(R, file, caption);
    }
    free(ri);
    free(st);
}

static bool holds(const rs_run_info *r, int image)
{
    return image >= r->offset && image < r->offset + r->images_done;
}

/* The noise runs' heatmaps say how often a patch changed across five severities; a pair
   run's are 0 or 1 per patch, so they stand in only when there is no noise run. */
static void heatmaps(rs_report_state *R, int image)
{
    bool any_noise = false;
    for (int i = 0; i < R->n; i++)
        any_noise = any_noise || (rs_run_is_noise(&R->info[i]) && R->info[i].num_views > 1);
    for (int i = 0; i < R->n; i++)
        if (holds(&R->info[i], image) && rs_run_is_noise(&R->info[i]) == any_noise)
            rs_report_heatmap_figure(R, &R->info[i], image);
}

/* The report's run of id ID (NULL when it is not among them). */
static const rs_run_info *report_run(const rs_report_state *R, int64_t id)
{
    for (int i = 0; i < R->n; i++)
        if (R->info[i].id == id)
            return &R->info[i];
    return NULL;
}

/* The protocol (index into R->groups) the examples show: the first whose views move
 * (crops match part of the patches: the grids show it), else the first. NOISE: the first
 * noise protocol instead (-1 when none). */
static int examples_protocol(const rs_report_state *R, bool noise)
{
    for (int q = 0; q < R->protocols; q++) {
        const rs_run_info *r = &R->groups[q]->info[0];
        if (noise ? rs_run_is_noise(r) && r->num_views > 1
                  : r->num_views > 1 && rs_spec_has_geometric_op(r->view_specs[1]))
            return q;
    }
    return noise ? -1 : 0;
}

/* IMAGE under the first seed of every method of protocol Q, side by side in one figure:
 * grids (GRID) or heatmaps, as figures/STEM-imageN.png with its caption. */
static void methods_side_by_side(rs_report_state *R, int q, int image, bool grid, const char *stem)
{
    const rs_groups *g = R->groups[q];
    char parts[RS_GROUPS_MAX][RS_REPORT_FILE_LEN], file[RS_REPORT_FILE_LEN], names[512] = "", caption[2048];
    const rs_run_info *first = NULL;
    int n = 0, len = 0;
    for (int gr = 0; gr < g->num_groups && gr < RS_GROUPS_MAX && !R->d.rc; gr++) {
        const rs_run_info *r = report_run(R, g->info[rs_groups_at(g, gr, 0)].id);
        if (!r || !holds(r, image))
            continue;
        snprintf(parts[n], sizeof parts[n], "part-%s-image%d-%d.png", stem, image, n);
        if (!rs_report_image_file(R, r, image, grid, parts[n]))
            break;
        char label[96];
        snprintf(label, sizeof label, "%s k=%d (run %" PRId64 ")", rs_method_name(rs_run_method(r)), r->top_k, r->id);
        if (len < (int)sizeof names)
            len += snprintf(names + len, sizeof names - (size_t)len, "%s%s", n ? ", " : "", label);
        first = first ? first : r;
        n++;
    }
    if (!n || R->d.rc)
        return;
    snprintf(file, sizeof file, "%s-image%d.png", stem, image);
    /* grids of many views are wide already: one under the other */
    int shown[RS_GRID_MAX_VIEWS];
    bool stacked = grid && rs_render_grid_views(first, shown, NULL) > 6;
    rs_report_compose(R, parts, n, stacked ? 1 : grid ? n : 2, file);
    char what[768];
    snprintf(what, sizeof what, "Image %d under each method, %s protocol, the first training seed of each (the same "
             "views), %s: %s", image, first->protocol,
             stacked ? "top to bottom" : grid ? "left to right" : "left to right, top to bottom", names);
    if (grid)
        rs_report_grid_caption(first, what, caption, sizeof caption);
    else
        snprintf(caption, sizeof caption, "%s. Per-patch heatmaps: on view 0's patch grid, the share of the other "
                 "views whose matched patch chose a different top-1 expert, one panel per MoE layer (\"block B\"), "
                 "view 0's image beside them; hatched: no patch of another view matched it.", what);
    rs_report_figure(R, file, caption);
}

/* With groups: one figure per example image holding every method (its first seed) side by
 * side, then the heatmaps of the first image likewise; per-run grids only with --detail. */
static void grouped_examples(rs_report_state *R, const int *images, int m)
{
    rs_doc_add(&R->d, RS_DOC_H2, "Examples", NULL);
    int q = examples_protocol(R, false), qn = examples_protocol(R, true);
    rs_doc_addf(&R->d, RS_DOC_PARA,
                "Expert-selection grids of the same images under every method, side by side: the first images on "
                "which every run matched at least half of its patches to view 0. Then per-patch heatmaps of the "
                "first of them%s.", qn >= 0 ? " under noise" : "");
    for (int k = 0; k < m && !R->d.rc; k++)
        methods_side_by_side(R, q, images[k], true, "examples");
    if (m > 0)
        methods_side_by_side(R, qn >= 0 ? qn : q, images[0], false, "heatmaps");
}

/* Examples: grids of the same well-matched images for each run that holds them, then the
   per-patch heatmaps of the first (with groups: each image's grids in one figure). */
static void examples(rs_report_state *R)
{
    if (R->opt->images <= 0)
        return;
    int *images = malloc(sizeof *images * (size_t)R->opt->images);
    if (!images) {
        if (!R->d.rc)
            R->d.rc = rs_error_set(R->d.err, RS_ENOMEM, "out of memory");
        return;
    }
    int m = rs_report_example_images(R, images, R->opt->images);
    if (R->answer) {
        grouped_examples(R, images, m);
        free(images);
        return;
    }
    rs_doc_add(&R->d, RS_DOC_H2, "Examples", NULL);
    rs_doc_add(&R->d, RS_DOC_PARA,
               "Expert-selection grids of the same images for each run that holds them: the first images on "
               "which every run matched at least half of its patches to view 0 (views that change pixels but not "
               "geometry match all of them). Then per-patch heatmaps of the first of them.", NULL);
    for (int k = 0; k < m; k++)
        for (int i = 0; i < R->n; i++)
            if (holds(&R->info[i], images[k]))
                rs_report_grid_figure(R, &R->info[i], images[k]);
    if (m > 0)
        heatmaps(R, images[0]);
    free(images);
}

/* Each run's own tables (and figures). */
static void details(rs_report_state *R)
{
    rs_doc *d = &R->d;
    for (int i = 0; i < R->n; i++) {
        const rs_run_info *r = &R->info[i];
        char rl[200], rn[32], name[64], buf[512];
        rs_run_label(r, rl, sizeof rl);
        rs_run_name(r, rn, sizeof rn);
        snprintf(buf, sizeof buf, "Details of %s", rl);
        rs_doc_add(d, RS_DOC_H2, buf, NULL);
        snprintf(name, sizeof name, "consistency-run%s", rn);
        rs_doc_add_table(d, rs_report_consistency_table(r, R->st[i], rn, false), name);
        snprintf(name, sizeof name, "router-run%s", rn);
        rs_doc_add_table(d, rs_report_layer_table(r, R->st[i], rn), name);
        if (!rs_run_is_noise(r))  /* a noise run pools its severities into one matrix: less telling */
            rs_report_load_transition_figures(R, r, R->st[i], rn);
    }
}

void rs_report_comparison(rs_report_state *R)
{
    /* owned here: the comparisons the summary and the tables share */
    rs_stats_comparison **cmps = calloc((size_t)R->n, sizeof *cmps);
    if (!cmps) {
        if (!R->d.rc)
            R->d.rc = rs_error_set(R->d.err, RS_ENOMEM, "out of memory");
        return;
    }
    baseline_comparisons(R, cmps);
    /* with an answer over seeds it comes first, and the per-run pairs (an interval over
     * images, narrower than the seeds allow) go to an appendix */
    bool answer = R->answer != NULL, shown = false;
    if (answer)
        rs_report_answer_section(R);
    else
        shown = plain_answer(R, cmps);
    rs_doc_add(&R->d, RS_DOC_TOC, NULL, NULL);
    rs_report_groups_section(R);
    headline(R, cmps);
    if (!shown)  /* the answer's table already is the differences table */
        differences(R, cmps);
    accuracy(R);
    curves(R);
    router(R);
    examples(R);
    rs_report_largest_differences(R);
    if (R->opt->detail)
        details(R);
    if (answer)
        summary(R, cmps, "Appendix: each run against its baseline");
    for (int i = 0; i < R->n; i++)
        rs_stats_comparison_free(cmps[i]);
    free(cmps);
}

/* corrupt_tables.c — tables of corruption runs (corrupt_tables.h). */
#include "corrupt_tables.h"

#include <stdio.h>

#include "groups_tables.h"
#include "input/corrupt.h"

enum { FIG = RS_CSTAT_NUM_FIGURES };

static const char *const fig_keys[FIG] = {"top1", "top2", "top2_unordered", "accuracy"};
static const char *const fig_names[FIG] = {"Top-1", "Top-2", "Top-2 order-agnostic", "accuracy"};

const char *rs_report_corrupt_figure_name(int figure)
{
    return figure >= 0 && figure < FIG ? fig_names[figure] : "?";
}

static const char mean_note[] =
    "Each corruption's view against the clean view 0, over matched patch pairs pooled over the MoE layers "
    "(every patch matches itself); accuracy of the corrupted view. A mean row is the unweighted mean of its "
    "cells, as ImageNet-C averages over severities, then corruptions; \"overall\" leaves out the held-out "
    "extras, as mCE does. Intervals: bootstrap over images.";

/* The four figures of row Q of CS in columns FIRST.. of table row R. */
static void figure_cells(rs_table *t, int r, int first, const rs_corrupt_stats *cs, int q)
{
    for (int m = 0; m < FIG; m++) {
        const rs_stats_rate *x = &cs->fig[(size_t)q * FIG + m];
        if (x->valid)
            rs_table_set_rate(t, r, first + m, x->value, x->boot_valid, x->boot_lo, x->boot_hi, false, 0, 0,
                              cs->images);
    }
}

static rs_table *create(const char *title, const char *run, const char *first, const char *second,
                        const char *third)
{
    const char *keys[] = {"what", "family", "severity", fig_keys[0], fig_keys[1], fig_keys[2], fig_keys[3]};
    const char *heads[] = {first, second, third, fig_names[0], fig_names[1], fig_names[2], "Accuracy"};
    rs_table *t = rs_table_create(title, run, 7, keys, heads);
    if (t)
        rs_table_set_note(t, mean_note);
    return t;
}

rs_table *rs_report_corrupt_cells_table(const rs_corrupt_stats *cs, const char *run)
{
    const rs_corrupt_grid *g = &cs->grid;
    rs_table *t = create("Routing consistency per corruption and severity (%)", run, "Corruption", "Family",
                         "Severity");
    char prefix[64], view[16], sev[16];
    for (int c = 0; t && c < g->corruptions; c++) {
        const char *name = rs_corrupt_name(g->id[c]), *fam = rs_cstat_family_name(g->family[c]);
        for (int s = 0; s <= g->severities; s++) {
            int v = s < g->severities ? g->view[rs_cstat_cell(g, c, s)] : 0;
            if (v < 0)
                continue;
            if (s < g->severities)
                snprintf(prefix, sizeof prefix, "%s_s%d", name, g->severity[s]),
                    snprintf(sev, sizeof sev, "%d", g->severity[s]), snprintf(view, sizeof view, "%d", v);
            else
                snprintf(prefix, sizeof prefix, "%s_mean", name), snprintf(sev, sizeof sev, "mean");
            int r = rs_table_add_row(t, s < g->severities ? view : NULL, NULL, prefix);
            rs_table_set_text(t, r, 0, name);
            rs_table_set_text(t, r, 1, fam);
            rs_table_set_text(t, r, 2, sev);
            figure_cells(t, r, 3, cs, s < g->severities ? rs_cstat_cell(g, c, s) : rs_cstat_corruption(g, c));
        }
    }
    return t;
}

/* Whether family F (RS_CFAMILIES: overall) has cells in G. */
static bool family_present(const rs_corrupt_grid *g, int f)
{
    for (int c = 0; c < g->corruptions; c++)
        if (f == RS_CFAMILIES ? g->family[c] != RS_CFAMILY_EXTRA : g->family[c] == f)
            return true;
    return false;
}

static const char *family_label(int f)
{
    return f == RS_CFAMILIES ? "overall" : rs_cstat_family_name(f);
}

rs_table *rs_report_corrupt_family_table(const rs_corrupt_stats *cs, const char *run)
{
    const rs_corrupt_grid *g = &cs->grid;
    rs_table *t = create("Routing consistency per corruption family and severity (%)", run, "Family", "Corruptions",
                         "Severity");
    char prefix[64], sev[16], count[16];
    for (int f = 0; t && f <= RS_CFAMILIES; f++) {
        if (!family_present(g, f))
            continue;
        int n = 0;
        for (int c = 0; c < g->corruptions; c++)
            n += f == RS_CFAMILIES ? g->family[c] != RS_CFAMILY_EXTRA : g->family[c] == f;
        snprintf(count, sizeof count, "%d", n);
        for (int s = 0; s <= g->severities; s++) {
            bool all = s == g->severities;
            snprintf(prefix, sizeof prefix, all ? "%s_mean" : "%s_s%d", family_label(f), all ? 0 : g->severity[s]);
            snprintf(sev, sizeof sev, all ? "mean" : "%d", all ? 0 : g->severity[s]);
            int r = rs_table_add_row(t, NULL, NULL, prefix);
            rs_table_set_text(t, r, 0, family_label(f));
            rs_table_set_text(t, r, 1, count);
            rs_table_set_text(t, r, 2, sev);
            figure_cells(t, r, 3, cs, rs_cstat_family(g, f, s));
        }
    }
    return t;
}

rs_table *rs_report_corrupt_levels_table(const rs_groups *g, const rs_corrupt_groups *cg, const char *run)
{
    const char *keys[] = {"group", "family", fig_keys[0], fig_keys[1], fig_keys[2], fig_keys[3],
                          "top1_sd", "accuracy_sd"};
    const char *heads[] = {"Group", "Family", fig_names[0], fig_names[1], fig_names[2], "Accuracy",
                           "Top-1 SD", "Accuracy SD"};
    rs_table *t = rs_table_create("Corruptions: each family's mean over all its severities, mean over seeds (%)",
                                  run, 8, keys, heads);
    if (!t)
        return NULL;
    rs_table_set_note(t, "Per seed, the family's mean over its corruptions and severities (overall: the "
                         "benchmark's fifteen, the mean routing consistency); then the mean over the group's "
                         "seeds and the between-seed standard deviation.");
    char label[96], prefix[64];
    for (int gr = 0; gr < cg->num_groups; gr++) {
        rs_report_group_label(g, gr, label, sizeof label);
        for (int f = 0; f <= RS_CFAMILIES; f++) {
            if (!family_present(&cg->grid, f))
                continue;
            snprintf(prefix, sizeof prefix, "%s_mean", family_label(f));
            int r = rs_table_add_row(t, NULL, NULL, prefix);
            rs_table_set_row_run(t, r, g->names[gr]);
            rs_table_set_text(t, r, 0, label);
            rs_table_set_text(t, r, 1, family_label(f));
            const rs_group_summary *s = cg->summary + ((size_t)gr * cg->rows + rs_cstat_family(&cg->grid, f,
                                                                                                cg->grid.severities)) * FIG;
            for (int m = 0; m < FIG; m++)
                if (s[m].valid)
                    rs_table_set_rate(t, r, 2 + m, s[m].mean, false, 0, 0, false, 0, 0, s[m].n);
            if (s[0].valid && s[0].n > 1)
                rs_table_set_rate(t, r, 6, s[0].sd, false, 0, 0, false, 0, 0, s[0].n);
            if (s[3].valid && s[3].n > 1)
                rs_table_set_rate(t, r, 7, s[3].sd, false, 0, 0, false, 0, 0, s[3].n);
        }
    }
    return t;
}

/* Answer row R: the t interval X (a difference, or with REL the relative form as a rate). */
static void t_cell(rs_table *t, int r, int c, const rs_t_interval *x, bool rel)
{
    if (x->n < 1)
        return;
    if (rel)
        rs_table_set_rate(t, r, c, x->mean, x->valid, x->lo, x->hi, false, 0, 0, x->n);
    else
        rs_table_set_diff(t, r, c, x->mean, x->valid, x->lo, x->hi);
}

rs_table *rs_report_corrupt_answer_table(const rs_groups *g, const rs_corrupt_groups *cg, const char *run)
{
    const char *keys[] = {"group", "figure", "seeds", "noise", "blur", "weather", "digital", "extra", "overall",
                          "relative"};
    const char *heads[] = {"Method", "Figure", "Seeds", "Noise", "Blur", "Weather", "Digital", "Extra",
                           "Overall (mean)", "Relative (reference = 100 %)"};
    char title[200], base[96], label[96];
    rs_report_group_label(g, 0, base, sizeof base);
    snprintf(title, sizeof title, "Corruptions: each method against %s per family (points, mean over seeds)", base);
    rs_table *t = rs_table_create(title, run, 10, keys, heads);
    if (!t)
        return NULL;
    rs_table_set_note(t, "Per family: the mean over seeds of the per-seed difference method \u2212 reference of the "
                         "family's mean over its corruptions and severities, with a t interval over seeds (n \u2212 1 "
                         "df). Overall: the run's corruptions among the benchmark's fifteen. Relative: per corruption, the method's inconsistency "
                         "(1 \u2212 agreement; for accuracy the error) summed over severities divided by the "
                         "reference's of the same seed, averaged over those corruptions (accuracy: mCE with the reference "
                         "in AlexNet's place); below 100 % is more consistent than the reference.");
    const rs_corrupt_grid *gd = &cg->grid;
    for (int gr = 1; gr < cg->num_groups; gr++) {
        rs_report_group_label(g, gr, label, sizeof label);
        for (int m = 0; m < FIG; m++) {
            int r = rs_table_add_row(t, NULL, NULL, fig_keys[m]);
            rs_table_set_row_run(t, r, g->names[gr]);
            rs_table_set_text(t, r, 0, label);
            rs_table_set_text(t, r, 1, fig_names[m]);
            rs_table_set_count(t, r, 2, g->size[gr]);
            for (int f = 0; f <= RS_CFAMILIES; f++)
                if (family_present(gd, f))
                    t_cell(t, r, 3 + f, &cg->diff[((size_t)gr * cg->rows + rs_cstat_family(gd, f, gd->severities)) *
                                                  FIG + m], false);
            t_cell(t, r, 9, &cg->rel[((size_t)gr * cg->rel_rows + gd->corruptions + RS_CFAMILIES) * FIG + m], true);
        }
    }
    return t;
}

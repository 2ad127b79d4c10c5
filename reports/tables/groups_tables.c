/* groups_tables.c — tables of groups of runs (groups_tables.h). */
#include "groups_tables.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "store/run.h"

static const char *const figure_keys[RS_GROUP_NUM_FIGURES] = {"top1", "top2", "top2_unordered", "accuracy",
                                                                  "accuracy_views"};

const char rs_report_groups_why[] =
    "Seeds pair by position across groups (the same training seed: same initialisation and data order). "
    "The difference between two groups is the mean of the per-seed paired differences, with a Student t "
    "interval on n \u2212 1 degrees of freedom over the seeds: the seed is the unit of replication, and the "
    "between-seed variance dominates a difference that an interval over pooled images (which treats one "
    "training run as all there is) would leave out. Each seed's own paired bootstrap interval over images is in "
    "the per-seed table.";

void rs_report_group_label(const rs_groups *g, int group, char *buf, size_t size)
{
    const rs_run_info *r = &g->info[rs_groups_at(g, group, 0)];
    snprintf(buf, size, "%s: %s k=%d", g->names[group], rs_method_name(rs_run_method(r)), r->top_k);
}

/* "seed 2" (the training seed) or "position 3" when the checkpoint does not say. */
static void seed_label(const rs_groups *g, int seed, char *buf, size_t size)
{
    long long s = g->info[rs_groups_at(g, 0, seed)].train_seed;
    if (s >= 0)
        snprintf(buf, size, "seed %lld", s);
    else
        snprintf(buf, size, "position %d", seed + 1);
}

/* Fills the cells of row R that are particular to a table: group GR's figure F. */
typedef void figure_cells(rs_table *t, int r, const rs_groups *g, int gr, int f);

/* A table of NC columns with a row per headline figure of each group from FIRST on: the
 * group's label in column 0 and the figure's name in column 2, the rest by CELLS. NULL when
 * out of memory. */
static rs_table *figure_table(const rs_groups *g, const char *run, const char *title, int nc, const char **keys,
                              const char **heads, const char *note, int first, figure_cells *cells)
{
    rs_table *t = rs_table_create(title, run, nc, keys, heads);
    if (!t)
        return NULL;
    rs_table_set_note(t, note);
    char label[96];
    for (int gr = first; gr < g->num_groups; gr++) {
        rs_report_group_label(g, gr, label, sizeof label);
        for (int f = 0; f < RS_GROUP_NUM_FIGURES; f++) {
            int r = rs_table_add_row(t, NULL, NULL, figure_keys[f]);
            rs_table_set_row_run(t, r, g->names[gr]);
            rs_table_set_text(t, r, 0, label);
            rs_table_set_text(t, r, 2, rs_groups_figure_name(f));
            cells(t, r, g, gr, f);
        }
    }
    return t;
}

/* Seeds, then mean, sd, min and max of the figure over the group's seeds. */
static void summary_cells(rs_table *t, int r, const rs_groups *g, int gr, int f)
{
    const rs_group_summary *s = &g->summary[gr * RS_GROUP_NUM_FIGURES + f];
    rs_table_set_count(t, r, 1, s->n);
    if (!s->valid)
        return;
    rs_table_set_rate(t, r, 3, s->mean, false, 0, 0, false, 0, 0, s->n);
    if (s->n > 1)
        rs_table_set_rate(t, r, 4, s->sd, false, 0, 0, false, 0, 0, s->n);
    rs_table_set_rate(t, r, 5, s->min, false, 0, 0, false, 0, 0, s->n);
    rs_table_set_rate(t, r, 6, s->max, false, 0, 0, false, 0, 0, s->n);
}

rs_table *rs_report_groups_summary_table(const rs_groups *g, const char *run)
{
    const char *keys[] = {"group", "seeds", "figure", "mean", "sd", "min", "max"};
    const char *heads[] = {"Group", "Seeds", "Figure", "Mean", "SD", "Min", "Max"};
    return figure_table(g, run,
                        "Groups: each headline figure as the mean over seeds, with the between-seed standard "
                        "deviation, minimum and maximum (%)",
                        7, keys, heads,
                        "Agreement: all non-reference views and MoE layers pooled; accuracy: view 0 (the clean "
                        "image, or the first crop), and the other views pooled (under noise or attack, the second "
                        "crop).",
                        0, summary_cells);
}

/* The p-value P in column C of row R: three significant digits, "< 0.001" style left to
 * the reader (a number is what csv and json want). */
static void set_p(rs_table *t, int r, int c, double p, int n)
{
    if (p >= 0)
        rs_table_set_number(t, r, c, p, -1, n);
}

/* The first group, then the seed pairs, the mean paired difference with its t interval, its
 * p-value and Holm's (the answer's cell of this protocol), and the sd over seeds. */
static void diff_cells(rs_table *t, int r, const rs_groups *g, int gr, int f, const rs_answer *a, int protocol)
{
    char base[96];
    rs_report_group_label(g, 0, base, sizeof base);
    rs_table_set_text(t, r, 1, base);
    const rs_t_interval *d = &g->diff[gr * RS_GROUP_NUM_FIGURES + f];
    rs_table_set_count(t, r, 3, d->n);
    if (d->n < 1)
        return;
    rs_table_set_diff(t, r, 4, d->mean, d->valid, d->lo, d->hi);
    const rs_answer_cell *c = rs_answer_at(a, gr - 1, protocol, f);
    if (c->holds)
        rs_table_set_mark(t, r, 4);
    if (!d->valid) {
        rs_table_set_text(t, r, 5, "1 seed");
        rs_table_set_text(t, r, 6, "1 seed");
        return;
    }
    set_p(t, r, 5, d->p, d->n);
    set_p(t, r, 6, c->holm, d->n);
    rs_table_set_rate(t, r, 7, d->sd, false, 0, 0, false, 0, 0, d->n);
}

void rs_report_answer_family(const rs_answer *a, char *buf, size_t size)
{
    if (!a->family) {
        snprintf(buf, size, "No difference has a p-value (every method has one seed here): nothing is marked, and "
                 "no correction for multiplicity applies.");
        return;
    }
    snprintf(buf, size,
             "A * marks a difference that holds after Holm: adjusted p < %.2g over the family of the %d "
             "differences with a p-value (%d method%s \u00d7 %d headline figures \u00d7 %d protocol%s, one-seed "
             "cells left out: they have no p-value); p from the t statistic of the mean difference over seeds on "
             "n \u2212 1 df.",
             1 - a->level, a->family, a->rows, a->rows == 1 ? "" : "s", RS_GROUP_NUM_FIGURES, a->protocols,
             a->protocols == 1 ? "" : "s");
}

rs_table *rs_report_groups_diff_table(const rs_groups *g, const rs_answer *a, int protocol, const char *run)
{
    const char *keys[] = {"group", "baseline", "figure", "pairs", "diff", "p", "p_holm", "diff_sd"};
    const char *heads[] = {"Group", "Against", "Figure", "Seed pairs", "Mean difference", "p", "Holm p",
                           "SD over seeds"};
    char note[1400], family[400];
    bool single = false;
    for (int gr = 1; gr < g->num_groups; gr++)
        single |= g->size[gr] == 1;
    rs_report_answer_family(a, family, sizeof family);
    snprintf(note, sizeof note, "%s%s\n%s", rs_report_groups_why,
             single ? " A group with one seed has no between-seed interval: its single seed's difference is shown "
                      "alone, and it speaks for that seed only."
                    : "",
             family);
    rs_table *t = rs_table_create("Differences between groups: mean over seeds of the per-seed paired difference "
                                  "(points), 95 % t interval over seeds, its p-value and Holm's",
                                  run, 8, keys, heads);
    if (!t)
        return NULL;
    rs_table_set_note(t, note);
    char label[96];
    for (int gr = 1; gr < g->num_groups; gr++) {
        rs_report_group_label(g, gr, label, sizeof label);
        for (int f = 0; f < RS_GROUP_NUM_FIGURES; f++) {
            int r = rs_table_add_row(t, NULL, NULL, figure_keys[f]);
            rs_table_set_row_run(t, r, g->names[gr]);
            rs_table_set_text(t, r, 0, label);
            rs_table_set_text(t, r, 2, rs_groups_figure_name(f));
            diff_cells(t, r, g, gr, f, a, protocol);
        }
    }
    return t;
}

/* What figure F of ST is a rate of: matched patch pairs, or labelled images. */
static int64_t figure_n(const rs_stats *st, int f)
{
    int64_t n = 0;
    rs_groups_figure(st, f, NULL, &n);
    return n;
}

/* One row of the per-seed table: group GR's seed I, figure F. */
static void seed_row(rs_table *t, const rs_groups *g, int gr, int i, int f)
{
    char label[96], seed[48], runs[64];
    rs_report_group_label(g, gr, label, sizeof label);
    seed_label(g, i, seed, sizeof seed);
    snprintf(runs, sizeof runs, "%" PRId64 " vs %" PRId64, g->info[rs_groups_at(g, gr, i)].id,
             g->info[rs_groups_at(g, 0, i)].id);
    int r = rs_table_add_row(t, seed, NULL, figure_keys[f]);
    rs_table_set_row_run(t, r, g->names[gr]);
    rs_table_set_text(t, r, 0, label);
    rs_table_set_text(t, r, 1, seed);
    rs_table_set_text(t, r, 2, runs);
    rs_table_set_text(t, r, 3, rs_groups_figure_name(f));
    int qa = rs_groups_fig(g, 0, i, f), qb = rs_groups_fig(g, gr, i, f);
    if (g->has[qa])
        rs_table_set_rate(t, r, 4, g->value[qa], false, 0, 0, false, 0, 0, figure_n(rs_groups_stats(g, 0, i), f));
    if (g->has[qb])
        rs_table_set_rate(t, r, 5, g->value[qb], false, 0, 0, false, 0, 0, figure_n(rs_groups_stats(g, gr, i), f));
    const rs_stats_diff *d = &g->seed_diff[qb];
    if (d->valid)
        rs_table_set_diff(t, r, 6, d->value, d->boot_valid, d->boot_lo, d->boot_hi);
}

rs_table *rs_report_groups_seed_table(const rs_groups *g, const char *run)
{
    const char *keys[] = {"group", "seed", "runs", "figure", "baseline", "value", "diff"};
    const char *heads[] = {"Group", "Seed", "Runs", "Figure", "First group", "This group", "Difference"};
    rs_table *t = rs_table_create("Per seed: each group against the first, seed by seed (%; difference in points "
                                  "with the paired bootstrap interval over images of that seed's runs)",
                                  run, 7, keys, heads);
    if (!t)
        return NULL;
    rs_table_set_note(t, "The image bootstrap interval of one seed says nothing about other seeds; accuracy has "
                         "no per-seed interval.");
    for (int gr = 1; gr < g->num_groups; gr++)
        for (int i = 0; i < g->size[gr]; i++)
            for (int f = 0; f < RS_GROUP_NUM_FIGURES; f++)
                seed_row(t, g, gr, i, f);
    return t;
}

rs_table *rs_report_groups_seed_diff_table(const rs_groups *g, const char *run)
{
    const char *keys[3 + RS_GROUP_NUM_FIGURES] = {"group", "seed", "runs"};
    const char *heads[3 + RS_GROUP_NUM_FIGURES] = {"Group", "Seed", "Runs"};
    for (int f = 0; f < RS_GROUP_NUM_FIGURES; f++)
        keys[3 + f] = figure_keys[f], heads[3 + f] = rs_groups_figure_name(f);
    rs_table *t = rs_table_create("Per seed: each group against the first, seed by seed (difference in points, "
                                  "with the paired bootstrap interval over images of that seed's runs)",
                                  run, 3 + RS_GROUP_NUM_FIGURES, keys, heads);
    if (!t)
        return NULL;
    rs_table_set_note(t, "The image bootstrap interval of one seed says nothing about other seeds; accuracy has "
                         "no per-seed interval. Each run's own figures are in the headline and accuracy tables.");
    char label[96], seed[48], runs[64];
    for (int gr = 1; gr < g->num_groups; gr++)
        for (int i = 0; i < g->size[gr]; i++) {
            rs_report_group_label(g, gr, label, sizeof label);
            seed_label(g, i, seed, sizeof seed);
            snprintf(runs, sizeof runs, "%" PRId64 " vs %" PRId64, g->info[rs_groups_at(g, gr, i)].id,
                     g->info[rs_groups_at(g, 0, i)].id);
            int r = rs_table_add_row(t, seed, NULL, NULL);
            rs_table_set_row_run(t, r, g->names[gr]);
            rs_table_set_text(t, r, 0, label);
            rs_table_set_text(t, r, 1, seed);
            rs_table_set_text(t, r, 2, runs);
            for (int f = 0; f < RS_GROUP_NUM_FIGURES; f++) {
                const rs_stats_diff *d = &g->seed_diff[rs_groups_fig(g, gr, i, f)];
                if (d->valid)
                    rs_table_set_diff(t, r, 3 + f, d->value, d->boot_valid, d->boot_lo, d->boot_hi);
            }
        }
    return t;
}

/* Row R's cell of figure F in column C: the difference with its t interval, marked where it
 * holds after Holm; a one-seed difference as text, "(1 seed)", with no interval. */
static void answer_cell(rs_table *t, int r, int c, const rs_answer_cell *x)
{
    if (!x->valid)
        return;
    if (x->diff.valid) {
        rs_table_set_diff(t, r, c, x->diff.mean, true, x->diff.lo, x->diff.hi);
        if (x->holds)
            rs_table_set_mark(t, r, c);
        return;
    }
    char text[48];
    snprintf(text, sizeof text, "%+.2f (1 seed)", 100 * x->diff.mean);
    rs_table_set_text(t, r, c, text);
}

rs_table *rs_report_answer_table(const rs_answer *a, const rs_groups *const *g, const char *run)
{
    const char *keys[4 + RS_GROUP_NUM_FIGURES] = {"group", "baseline", "protocol", "seeds"};
    const char *heads[4 + RS_GROUP_NUM_FIGURES] = {"Method", "Against", "Protocol", "Seeds"};
    for (int f = 0; f < RS_GROUP_NUM_FIGURES; f++)
        keys[4 + f] = figure_keys[f], heads[4 + f] = rs_groups_figure_name(f);
    rs_table *t = rs_table_create("Answer: each method against the reference over training seeds (mean paired "
                                  "difference in points, 95 % t interval over seeds; * holds after Holm)",
                                  run, 4 + RS_GROUP_NUM_FIGURES, keys, heads);
    if (!t)
        return NULL;
    char note[600], base[96], label[96];
    rs_report_answer_family(a, note, sizeof note);
    rs_table_set_note(t, note);
    rs_report_group_label(g[0], 0, base, sizeof base);
    for (int row = 0; row < a->rows; row++)
        for (int q = 0; q < a->protocols; q++) {
            const char *protocol = g[q]->info[0].protocol;
            int r = rs_table_add_row(t, NULL, NULL, protocol);
            rs_table_set_row_run(t, r, g[q]->names[row + 1]);
            rs_report_group_label(g[q], row + 1, label, sizeof label);
            rs_table_set_text(t, r, 0, label);
            rs_table_set_text(t, r, 1, base);
            rs_table_set_text(t, r, 2, protocol);
            rs_table_set_count(t, r, 3, g[q]->size[row + 1]);
            for (int f = 0; f < RS_GROUP_NUM_FIGURES; f++)
                answer_cell(t, r, 4 + f, rs_answer_at(a, row, q, f));
        }
    return t;
}

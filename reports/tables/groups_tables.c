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

/* The first group, then the seed pairs and the mean paired difference with its t interval. */
static void diff_cells(rs_table *t, int r, const rs_groups *g, int gr, int f)
{
    char base[96];
    rs_report_group_label(g, 0, base, sizeof base);
    rs_table_set_text(t, r, 1, base);
    const rs_t_interval *d = &g->diff[gr * RS_GROUP_NUM_FIGURES + f];
    rs_table_set_count(t, r, 3, d->n);
    if (d->n < 1)
        return;
    rs_table_set_diff(t, r, 4, d->mean, d->valid, d->lo, d->hi);
    if (d->valid)
        rs_table_set_rate(t, r, 5, d->sd, false, 0, 0, false, 0, 0, d->n);
}

rs_table *rs_report_groups_diff_table(const rs_groups *g, const char *run)
{
    const char *keys[] = {"group", "baseline", "figure", "pairs", "diff", "diff_sd"};
    const char *heads[] = {"Group", "Against", "Figure", "Seed pairs", "Mean difference", "SD over seeds"};
    char note[900];
    bool single = false;
    for (int gr = 1; gr < g->num_groups; gr++)
        single |= g->size[gr] == 1;
    snprintf(note, sizeof note, "%s%s", rs_report_groups_why,
             single ? " A group with one seed has no between-seed interval: its single seed's difference is shown "
                      "alone, and it speaks for that seed only."
                    : "");
    return figure_table(g, run,
                        "Differences between groups: mean over seeds of the per-seed paired difference (points), "
                        "95 % t interval over seeds",
                        6, keys, heads, note, 1, diff_cells);
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

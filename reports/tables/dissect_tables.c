/* dissect_tables.c — the dissection's tables (dissect_tables.h). */
#include "dissect_tables.h"

#include <inttypes.h>
#include <stdio.h>

#include "groups_tables.h"

static const char *const figure_keys[RS_DISSECT_NUM_FIGURES] = {"accuracy", "top1", "flipped", "router",
                                                                    "expert"};
static const char *const figure_heads[RS_DISSECT_NUM_FIGURES] = {
    "Accuracy", "Top-1 agreement", "Flipped", "Router-attributable", "Expert-attributable"};

const char rs_report_dissect_definition[] =
    "Per image: a prediction flips when the perturbed view predicts another class than the clean view; "
    "router-attributable is the share of the flipped images whose forced view (the perturbed pixels run with the "
    "clean view's experts at every matched patch of every MoE block, base:view=P+route:from=0) predicts the clean "
    "class again; expert-attributable the rest (1 \u2212 router-attributable). Top-1 agreement: matched patch "
    "pairs of the perturbed view against the clean one, all MoE layers pooled. Each figure is the mean over the "
    "group's training seeds with a Student t interval on n \u2212 1 degrees of freedom (a seed without flips has "
    "no share and is left out of that mean); a one-seed group has no interval.";

/* The figures the differences and per-seed tables show: the expert-attributable share is
 * 1 − the router's (and its difference minus the router's), so it is left out there. */
static const int shown[] = {RS_DISSECT_ACCURACY, RS_DISSECT_TOP1, RS_DISSECT_FLIPPED, RS_DISSECT_ROUTER};
#define NUM_SHOWN ((int)(sizeof shown / sizeof *shown))

/* "view P: SPEC" of perturbation P. */
static void perturbation_label(const rs_dissect *d, const rs_groups *g, int p, char *buf, size_t size)
{
    snprintf(buf, size, "view %d: %s", d->view[p], g->info[0].view_specs[d->view[p]]);
}

/* A row of group GR and perturbation P (csv/json: view "view P", layer "all", METRIC, run
 * the group's name): the group's label in column 0 and the perturbation's in PERT_COL. */
static int group_row(rs_table *t, const rs_dissect *d, const rs_groups *g, int gr, int p, const char *metric,
                     int pert_col)
{
    char label[96], pert[160], view[32];
    rs_report_group_label(g, gr, label, sizeof label);
    perturbation_label(d, g, p, pert, sizeof pert);
    snprintf(view, sizeof view, "view %d", d->view[p]);
    int r = rs_table_add_row(t, view, "all", metric);
    rs_table_set_row_run(t, r, g->names[gr]);
    rs_table_set_text(t, r, 0, label);
    rs_table_set_text(t, r, pert_col, pert);
    return r;
}

rs_table *rs_report_dissect_table(const rs_dissect *d, const rs_groups *g, const char *run)
{
    const char *keys[3 + RS_DISSECT_NUM_FIGURES] = {"group", "perturbation", "seeds"};
    const char *heads[3 + RS_DISSECT_NUM_FIGURES] = {"Group", "Perturbation", "Seeds"};
    for (int f = 0; f < RS_DISSECT_NUM_FIGURES; f++)
        keys[3 + f] = figure_keys[f], heads[3 + f] = figure_heads[f];
    rs_table *t = rs_table_create("Dissection over seeds: accuracy, routing agreement and the prediction flips the "
                                  "router and the experts cause under each perturbation (%)",
                                  run, 3 + RS_DISSECT_NUM_FIGURES, keys, heads);
    if (!t)
        return NULL;
    rs_table_set_note(t, rs_report_dissect_definition);
    for (int gr = 0; gr < d->num_groups; gr++) {
        for (int p = 0; p < d->perturbations; p++) {
            int r = group_row(t, d, g, gr, p, "dissect", 1);
            char seeds[32];
            snprintf(seeds, sizeof seeds, g->size[gr] == 1 ? "1 seed" : "%d", g->size[gr]);
            rs_table_set_text(t, r, 2, seeds);
            for (int f = 0; f < RS_DISSECT_NUM_FIGURES; f++) {
                const rs_t_interval *m = &d->mean[(gr * d->perturbations + p) * RS_DISSECT_NUM_FIGURES + f];
                if (m->n > 0)
                    rs_table_set_rate(t, r, 3 + f, m->mean, m->valid, m->lo, m->hi, false, 0, 0, m->n);
            }
        }
    }
    return t;
}

rs_table *rs_report_dissect_diff_table(const rs_dissect *d, const rs_groups *g, const char *run)
{
    const char *keys[4 + NUM_SHOWN] = {"group", "baseline", "perturbation", "pairs"};
    const char *heads[4 + NUM_SHOWN] = {"Group", "Against", "Perturbation", "Seed pairs"};
    for (int k = 0; k < NUM_SHOWN; k++)
        keys[4 + k] = figure_keys[shown[k]], heads[4 + k] = figure_heads[shown[k]];
    char note[600];
    if (d->family)
        snprintf(note, sizeof note,
                 "Each group against the first, seed by seed (seeds pair by position), then the mean of the "
                 "per-seed differences with its Student t interval on n − 1 df; a one-seed difference has "
                 "no interval. A * marks a difference that holds after Holm: adjusted p < %.2g over the family "
                 "of the %d differences in this table with a p-value. The expert-attributable share's difference "
                 "is minus the router-attributable one's.",
                 1 - d->level, d->family);
    else
        snprintf(note, sizeof note,
                 "Each group against the first, seed by seed (seeds pair by position). No difference has a "
                 "p-value (one seed pair): nothing is marked, and the single differences speak for that seed only.");
    rs_table *t = rs_table_create("Dissection, differences between groups: mean over seeds of the per-seed paired "
                                  "difference (points), 95 % t interval over seeds",
                                  run, 4 + NUM_SHOWN, keys, heads);
    if (!t)
        return NULL;
    rs_table_set_note(t, note);
    char base[96], pairs[16];
    rs_report_group_label(g, 0, base, sizeof base);
    for (int gr = 1; gr < d->num_groups; gr++) {
        for (int p = 0; p < d->perturbations; p++) {
            int r = group_row(t, d, g, gr, p, "dissect_diff", 2);
            rs_table_set_text(t, r, 1, base);
            size_t c0 = (size_t)(gr * d->perturbations + p) * RS_DISSECT_NUM_FIGURES;
            snprintf(pairs, sizeof pairs, "%d", d->diff[c0 + RS_DISSECT_ACCURACY].n);
            rs_table_set_text(t, r, 3, pairs);
            for (int k = 0; k < NUM_SHOWN; k++) {
                const rs_t_interval *m = &d->diff[c0 + shown[k]];
                if (m->n < 1)
                    continue;
                rs_table_set_diff(t, r, 4 + k, m->mean, m->valid, m->lo, m->hi);
                if (d->holm[c0 + shown[k]] >= 0 && d->holm[c0 + shown[k]] < 1 - d->level)
                    rs_table_set_mark(t, r, 4 + k);
            }
        }
    }
    return t;
}

/* "seed 2" (the group's own checkpoint's training seed) or "position 3". */
static void seed_label(const rs_groups *g, int gr, int i, char *buf, size_t size)
{
    long long s = g->info[rs_groups_at(g, gr, i)].train_seed;
    if (s >= 0)
        snprintf(buf, size, "seed %lld", s);
    else
        snprintf(buf, size, "position %d", i + 1);
}

rs_table *rs_report_dissect_seed_table(const rs_dissect *d, const rs_groups *g, const char *run)
{
    const char *keys[] = {"group", "seed", "run", "perturbation", "flipped_images", "restored_images",
                          "accuracy", "top1", "flipped", "router"};
    const char *heads[] = {"Group", "Seed", "Run", "Perturbation", "Flipped images", "Restored",
                           "Accuracy", "Top-1 agreement", "Flipped", "Router-attributable"};
    rs_table *t = rs_table_create("Dissection per seed: each run's image counts and figures (%)", run, 10, keys,
                                  heads);
    if (!t)
        return NULL;
    rs_table_set_note(t, "Restored: flipped images whose forced view predicts the clean class again; "
                         "router-attributable = restored / flipped.");
    char label[96], seed[32], id[24], pert[160], view[32];
    for (int gr = 0; gr < d->num_groups; gr++) {
        rs_report_group_label(g, gr, label, sizeof label);
        for (int i = 0; i < g->size[gr]; i++)
            for (int p = 0; p < d->perturbations; p++) {
                int q = rs_dissect_at(d, gr, i, p);
                seed_label(g, gr, i, seed, sizeof seed);
                snprintf(id, sizeof id, "%" PRId64, g->info[rs_groups_at(g, gr, i)].id);
                perturbation_label(d, g, p, pert, sizeof pert);
                snprintf(view, sizeof view, "view %d", d->view[p]);
                int r = rs_table_add_row(t, view, "all", "dissect_seed");
                rs_table_set_row_run(t, r, id);
                rs_table_set_text(t, r, 0, label);
                rs_table_set_text(t, r, 1, seed);
                rs_table_set_text(t, r, 2, id);
                rs_table_set_text(t, r, 3, pert);
                rs_table_set_count(t, r, 4, d->flipped[q]);
                rs_table_set_count(t, r, 5, d->restored[q]);
                for (int k = 0; k < NUM_SHOWN; k++) {
                    size_t x = (size_t)q * RS_DISSECT_NUM_FIGURES + shown[k];
                    if (d->has[x])
                        rs_table_set_rate(t, r, 6 + k, d->value[x], false, 0, 0, false, 0, 0, 0);
                }
            }
    }
    return t;
}

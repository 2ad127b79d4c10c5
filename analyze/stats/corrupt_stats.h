/* corrupt_stats.h — routing consistency under common corruptions (docs/corruptions.md,
 * "Statistics"): the headline figures per corruption and severity, per corruption, per
 * family and over all cells, for one run and for groups of runs over training seeds.
 *
 * A corruption run: view 0 is the reference (no corrupt operation) and every other view is
 * one `corrupt:name=N,severity=K[,set=S]` operation and nothing else (spec_text.h), each
 * (N, K) once: the corruptions protocol. Its grid: the C corruptions in the order of their
 * first view, the S severities ascending; cell (c, s) is the view of corruption c at
 * severity s, or none.
 *
 * Figures (RS_CSTAT_*, groups.h's first four): Top-1, Top-2 (ordered) and Top-2
 * order-agnostic agreement with view 0 pooled over the MoE layers, and the view's accuracy.
 * A cell's figure is its view's (rs_stats' per-view counts, so a cell equals the `stats`
 * table's pooled row of that view). Every other row is the unweighted mean of its cells'
 * figures, as ImageNet-C averages error over severities, then over corruptions
 * (hendrycks/robustness ImageNet-C/test.py, show_performance and the loop over
 * distortions):
 *   corruption c          mean over its severities
 *   family f, severity s  mean over the family's corruptions at s; s = S: the mean over its
 *                         corruptions of their means over severities
 *   overall, severity s   likewise over the benchmark's fifteen; s = S is the "mean routing
 *                         consistency" (accuracy: 1 − the unnormalised mCE of test.py)
 * Families are ImageNet-C's (noise, blur, weather, digital; corrupt.h) and the held-out
 * extras (speckle_noise, gaussian_blur, spatter, saturate) form a fifth, "extra", as the
 * benchmark releases them apart (extra.tar) and leaves them out of mCE; overall leaves
 * them out too. A row is valid when it has cells and each has its figure (matched pairs;
 * labelled images); a cell the run lacks is left out of the means. Intervals: the percentile bootstrap over images of rs_stats (same
 * seed, same resamples, so the same resampled images), every row recomputed per replicate.
 *
 * Relative form, against a reference run A (V-MoE of the same training seed), as mCE is
 * against AlexNet: per corruption c and figure, (1 − mean_s B_cs) / (1 − mean_s A_cs) —
 * B's inconsistency (1 − agreement; for accuracy the error) summed over severities, divided
 * by A's — and per family and overall the mean of that ratio over their corruptions (the
 * accuracy overall is then ImageNet-C's mCE with V-MoE in AlexNet's place). Invalid where A
 * never disagrees (or never errs) on a corruption.
 *
 * Groups (groups.h): per group, row and figure the mean over seeds with its spread; per group
 * g > 0 the per-seed paired difference g − group 0 (paired bootstrap over images) and its t
 * interval over seeds; the relative form per seed with group 0's run of the same seed as A,
 * summarised and t-intervalled over seeds the same way (group 0: exactly 1).
 *
 * Ownership: _compute allocate *OUT; free with the matching _free (NULL allowed). Nothing
 * points into the store or into the inputs. Errors: 0 or a negative RS_E* code with one line:
 * RS_EINVAL for a run that is not a corruption run (the line names the run and the view),
 * runs whose grids differ; RS_ENOMEM. Nothing is printed. */
#ifndef RS_CORRUPT_STATS_H
#define RS_CORRUPT_STATS_H

#include <stdbool.h>
#include <stdint.h>

#include "groups.h"
#include "rs_error.h"
#include "stats.h"
#include "store/store.h"

enum { RS_CSTAT_TOP1 = 0, RS_CSTAT_TOP2 = 1, RS_CSTAT_TOP2_UNORDERED = 2, RS_CSTAT_ACCURACY = 3,
       RS_CSTAT_NUM_FIGURES = 4 };
enum { RS_CFAMILY_EXTRA = 4, RS_CFAMILIES = 5 }; /* noise, blur, weather, digital, extra */

/* "noise", "blur", "weather", "digital", "extra". */
const char *rs_cstat_family_name(int family);
/* The statistics family of corrupt.h's id ID (extras: RS_CFAMILY_EXTRA). */
int rs_cstat_family_of(int id);

/* A run's grid. */
typedef struct rs_corrupt_grid {
    int corruptions, severities;        /* C, S */
    int *id;                            /* (C) corrupt.h ids */
    int *family;                        /* (C) rs_cstat_family_of */
    int *severity;                      /* (S) ascending */
    int *view;                          /* (C, S) view index, -1 none */
} rs_corrupt_grid;

/* RUN's grid into *GRID (owned; rs_corrupt_grid_clear): 1 for a corruption run, 0 for
 * another (ERR says why, naming the view), RS_EINVAL for a spec that does not parse,
 * RS_ENOMEM. */
int rs_corrupt_grid_of(const rs_run_info *run, rs_corrupt_grid *grid, rs_error *err);
void rs_corrupt_grid_clear(rs_corrupt_grid *grid);

/* Rows: cells (C·S), corruptions (C), families ((RS_CFAMILIES)·(S+1)), overall (S+1). */
static inline int rs_cstat_rows(const rs_corrupt_grid *g)
{
    return g->corruptions * g->severities + g->corruptions + (RS_CFAMILIES + 1) * (g->severities + 1);
}
static inline int rs_cstat_cell(const rs_corrupt_grid *g, int c, int s)
{
    return c * g->severities + s;
}
static inline int rs_cstat_corruption(const rs_corrupt_grid *g, int c)
{
    return g->corruptions * g->severities + c;
}
/* S = g->severities: the family's cells over all severities. */
static inline int rs_cstat_family(const rs_corrupt_grid *g, int f, int s)
{
    return g->corruptions * g->severities + g->corruptions + f * (g->severities + 1) + s;
}
static inline int rs_cstat_overall(const rs_corrupt_grid *g, int s)
{
    return rs_cstat_family(g, RS_CFAMILIES, s);
}
/* Relative rows: corruptions (C), families (RS_CFAMILIES), overall (1). */
static inline int rs_cstat_rel_rows(const rs_corrupt_grid *g)
{
    return g->corruptions + RS_CFAMILIES + 1;
}

/* One run's figures. */
typedef struct rs_corrupt_stats {
    int64_t run_id;
    int images;                         /* the run's images (the bootstrap's unit) */
    rs_corrupt_grid grid;
    int rows;
    rs_stats_rate *fig;                 /* (rows, FIG): value and bootstrap (no Wilson) */
    int resamples;                      /* as used (0: no bootstrap) */
    double level;
} rs_corrupt_stats;

/* The figures of corruption run RUN from its statistics ST (rs_stats_compute's). */
int rs_corrupt_stats_compute(const rs_run_info *run, const rs_stats *st, rs_corrupt_stats **out, rs_error *err);
void rs_corrupt_stats_free(rs_corrupt_stats *cs);

/* Over groups of seeds. Indices: (G, rows, FIG) for summary and diff, (G, N, rows, FIG) for
 * seed_diff, (G, rel rows, FIG) for rel and rel_diff, (G, N, rel rows, FIG) for seed_rel. */
typedef struct rs_corrupt_groups {
    int num_groups, seeds, rows, rel_rows;
    rs_corrupt_grid grid;               /* group 0's first run's; every run has it */
    rs_corrupt_stats **runs;            /* (G, N), NULL beyond a group's size */
    rs_group_summary *summary;          /* mean over seeds of each figure */
    rs_stats_diff *seed_diff;           /* g − group 0 at one seed, paired bootstrap */
    rs_t_interval *diff;                /* over seeds; g = 0 invalid */
    rs_stats_diff *seed_rel;            /* relative form at one seed (value; boot_* paired) */
    rs_t_interval *rel;                 /* relative form over seeds: mean, t interval (group 0: 1) */
} rs_corrupt_groups;

/* From groups G (rs_groups_compute's; every run a corruption run of one grid). */
int rs_corrupt_groups_compute(const rs_groups *g, rs_corrupt_groups **out, rs_error *err);
void rs_corrupt_groups_free(rs_corrupt_groups *cg);

#endif

/* groups.h — groups of runs: several training seeds of one method against several of
 * another, on the same images and views (docs/groups.md).
 *
 * A group is a name and n_g run ids of one store, one run per training seed; seeds pair
 * across groups by position (position i of every group is the same training seed: same
 * initialisation and data order). Group 0 is the reference and holds the most seeds
 * (n_0 = N >= n_g): every other group g is compared with it on its own n_g positions,
 * seed by seed, B = g, A = group 0. A method that was trained for fewer seeds (an
 * expensive one) thus still stands next to the others, its difference over the seeds it
 * has.
 *
 * Headline figures (RS_GROUP_*), per run: Top-1, Top-2 (ordered) and Top-2 order-agnostic
 * agreement pooled over the non-reference views and all MoE layers, the accuracy of
 * view 0 (the reference view: the clean image under the noise protocol, the first crop
 * under pair) and the accuracy of the other views pooled (under noise, under attack, on
 * the second crop). Per group and figure: the mean over seeds, the sample standard deviation
 * (n_g − 1; 0 for one seed), min and max. Per group g > 0, figure and seed: the paired
 * difference g − group 0 with, for the agreement rates, the paired bootstrap interval over
 * images of that seed's two runs (rs_stats_compare; accuracy has none). Per group g > 0
 * and figure, over seeds: the mean of the per-seed differences and its Student t interval
 * on n_g − 1 degrees of freedom (rs_t_interval) — seeds are the unit of replication, and the
 * between-seed variance, which an interval over pooled images leaves out, dominates. With
 * one seed there is no between-seed interval (valid = false). Each interval carries the
 * p-value of its t statistic, and rs_groups_answer adjusts them by Holm over a family.
 *
 * Checks (RS_EINVAL naming the groups, positions and runs): at least one group; non-zero
 * sizes, none larger than group 0's; distinct names; a run id once in all groups; within a group distinct
 * checkpoints (sha256) and training seeds (where known); and, unless OPT->force (which
 * records what differed in `mismatch`): one method and one k per group, every run on the
 * images and views of group 0's first run (data, slice, images done, protocol, view specs,
 * view seed), and paired runs with the same training seed where both know theirs.
 * rs_stats_compare checks each pair again in depth (records in lockstep).
 *
 * Ownership: rs_groups_compute allocates *OUT; rs_groups_free (NULL allowed). Nothing
 * points into the store. Errors: 0 or a negative RS_E* code with one line; nothing is
 * printed. GSL as in stats.h (error handler off). */
#ifndef RS_GROUPS_H
#define RS_GROUPS_H

#include <stdbool.h>
#include <stdint.h>

#include "rs_error.h"
#include "stats.h"
#include "store/store.h"

enum {
    RS_GROUP_TOP1 = 0,
    RS_GROUP_TOP2 = 1,          /* ordered */
    RS_GROUP_TOP2_UNORDERED = 2,
    RS_GROUP_ACCURACY = 3,      /* view 0 */
    RS_GROUP_ACCURACY_VIEWS = 4, /* the other views pooled: under noise, attack, another crop */
    RS_GROUP_NUM_FIGURES = 5,
};
/* The accuracy figures have no per-seed image interval. */
static inline bool rs_groups_is_accuracy(int figure)
{
    return figure == RS_GROUP_ACCURACY || figure == RS_GROUP_ACCURACY_VIEWS;
}

#define RS_GROUP_NAME_MAX 32    /* names are shorter (NUL included) */
#define RS_GROUPS_MAX 16

/* Mean over seeds with the between-seed spread. valid = false (all 0) when no seed has
 * the figure. */
typedef struct rs_group_summary {
    bool valid;
    int n;                      /* seeds with the figure */
    double mean, sd, min, max;  /* sd: sample standard deviation, 0 for one seed */
} rs_group_summary;

/* Student t interval of a mean over n replicates, and the two-sided test of mean = 0. */
typedef struct rs_t_interval {
    bool valid;                 /* n >= 2 */
    int n;
    double mean, sd;            /* sd: sample standard deviation of the replicates */
    double lo, hi;              /* mean ∓ t_{(1+level)/2, n−1} · sd / √n */
    double p;                   /* valid only: P(|T_{n−1}| >= |mean| / (sd / √n)); -1 (none)
                                 * with sd = 0, where the t statistic is undefined */
} rs_t_interval;

/* The t interval of the mean of X (N values) at LEVEL in (0,1) and its p-value: valid when
 * N >= 2; for N = 1 the mean is X[0], sd 0, no interval and no p-value; N < 1 or a level
 * outside (0,1): RS_EINVAL. */
int rs_t_interval_of(const double *x, int n, double level, rs_t_interval *out, rs_error *err);

/* Holm's step-down adjustment of the p-values P[0..N-1] over the family of the entries
 * that are in [0,1] (an entry < 0 has no p-value and is left out; its ADJ is -1). With the
 * family's m p-values sorted, p_(1) <= ... <= p_(m): adj_(i) = min(1, max_{j <= i} (m − j + 1)
 * p_(j)). Returns m, or RS_ENOMEM. ADJ may be P. */
int rs_holm(const double *p, int n, double *adj);


typedef struct rs_groups {
    int num_groups, seeds;      /* G, N = n_0: the seed positions */
    int *size;                  /* (G) n_g runs of group g: its positions 0 .. n_g − 1 */
    double level;
    char (*names)[RS_GROUP_NAME_MAX]; /* (G) */
    rs_run_info *info;          /* (G, N); positions >= n_g unused (zero) */
    bool forced;                /* something differed and options.force went on */
    char mismatch[256];         /* what differed ("" when nothing) */
    bool *has;                  /* (G, N, F) the run has the figure */
    double *value;              /* (G, N, F) */
    rs_group_summary *summary;  /* (G, F) */
    rs_stats_diff *seed_diff;   /* (G, N, F) group g − group 0 per seed; g = 0 invalid */
    rs_t_interval *diff;        /* (G, F) over seeds; g = 0 invalid */
    /* internals: the per-seed comparisons (g > 0), and group 0's own stats at the
     * positions no other group has (all of them with one group) */
    rs_stats_comparison **cmp;  /* (G, N) */
    rs_stats **own;             /* (N) */
} rs_groups;

/* Index helpers. */
static inline int rs_groups_at(const rs_groups *g, int group, int seed)
{
    return group * g->seeds + seed;
}
static inline int rs_groups_fig(const rs_groups *g, int group, int seed, int figure)
{
    return (group * g->seeds + seed) * RS_GROUP_NUM_FIGURES + figure;
}
/* All figures of run SEED (< size[GROUP]) of group GROUP (rs_stats_compute's). */
const rs_stats *rs_groups_stats(const rs_groups *g, int group, int seed);
/* Figure FIGURE of the stats of one run: *VALUE (a fraction) and *N, what it is a rate of
 * (matched patch pairs of every view and layer, or labelled images); false when the run
 * has none. VALUE and N may be NULL. */
bool rs_groups_figure(const rs_stats *st, int figure, double *value, int64_t *n);
/* "Top-1", "Top-2", "Top-2 order-agnostic", "accuracy", "accuracy, other views". */
const char *rs_groups_figure_name(int figure);

/* Groups NAMES[g] with runs RUNS[g][0..SIZES[g]-1] of STORE (OPT: bootstrap and level as
 * in stats.h, force as above; may be NULL). */
int rs_groups_compute(rs_store *store, const char *const *names, const int64_t *const *runs, const int *sizes,
                      int num_groups, const rs_stats_options *opt, rs_groups **out, rs_error *err);
void rs_groups_free(rs_groups *g);

/* The answer over seeds (report's first table, `compare --group`): each group g > 0 against
 * group 0, per protocol and headline figure, and Holm's correction over every cell that has
 * a p-value (the family: groups × figures × protocols). */
typedef struct rs_answer_cell {
    bool valid;                 /* the difference exists (every seed of the group has it) */
    rs_t_interval diff;         /* points as fractions; diff.valid: an interval and a p-value */
    double holm;                /* diff.valid: Holm-adjusted p over the family, else -1 */
    bool holds;                 /* diff.valid and holm < 1 − level: the difference is bounded
                                 * away from 0 after the correction */
} rs_answer_cell;

typedef struct rs_answer {
    int rows, protocols;        /* rows: groups 1 .. G − 1 of every protocol's rs_groups */
    int family;                 /* m: the cells with a p-value */
    double level;
    rs_answer_cell *cell;       /* (rows, protocols, RS_GROUP_NUM_FIGURES) */
} rs_answer;

static inline const rs_answer_cell *rs_answer_at(const rs_answer *a, int row, int protocol, int figure)
{
    return &a->cell[(row * a->protocols + protocol) * RS_GROUP_NUM_FIGURES + figure];
}

/* The answer of the groups G[0..P-1] (one rs_groups per protocol, the same groups in the
 * same order and at one level; RS_EINVAL otherwise, or with fewer than two groups).
 * Allocates *OUT (rs_answer_free; NULL allowed); nothing points into G. */
int rs_groups_answer(const rs_groups *const *g, int protocols, rs_answer **out, rs_error *err);
void rs_answer_free(rs_answer *a);

#endif

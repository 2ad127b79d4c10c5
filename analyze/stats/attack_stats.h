/* attack_stats.h — figures of an adversarial-style run: its ε grid, the smallest ε at which
 * each patch's top-1 expert changes, the curves of agreement and accuracy against ε, and
 * the attack objective's convergence. Definitions in docs/metrics.md ("Routing under attack").
 *
 * An adversarial-style run: view 0 is the reference (no `pgd:` operation, ε = 0) and every
 * other view v has a `pgd:` operation with budget ε_v, strictly increasing with v (the
 * `adversarial` protocol: `clean`, then `base:view=0+pgd:eps=…` per ε). ε is read from the
 * spec text (spec_text.h).
 *
 * Min-ε. For MoE layer l and patch m of view 0's grid, view v changed the patch when some
 * patch j of view v with match[j] = m has a top-1 expert different from view 0's at m (an
 * attacked view matches patch for patch, j = m). Min-ε is ε_v of the smallest such v, or
 * "never" when no view changed it. Stored as the view index: first = v >= 1, 0 = never.
 *
 * Curves (one point per view, x = ε_v; view 0 is ε = 0): Top-1, Top-2 and Top-2
 * (order-agnostic) agreement with view 0 pooled over the MoE layers, copied from the run's
 * rs_stats (view 0: 1 with the interval [1,1], as a view agrees with itself); accuracy
 * with a percentile bootstrap over images that draws the same resamples as rs_stats
 * (same seed and count, so the bands of one figure come from the same images) and its
 * Wilson interval; routing changes pooled over the layers (view 0: 0).
 *
 * Ownership: _compute allocates *OUT, free with rs_attack_stats_free (NULL allowed).
 * Errors: 0 or a negative RS_E* code with one line naming the database and run: RS_EINVAL
 * for a run that is not adversarial-style (the line says why), RS_EFORMAT for records
 * that break the run's shapes, RS_ENOMEM, store errors as they come. Nothing is printed. */
#ifndef RS_ATTACK_STATS_H
#define RS_ATTACK_STATS_H

#include <stdbool.h>
#include <stdint.h>

#include "rs_error.h"
#include "stats.h"
#include "store/store.h"

enum { RS_ATTACK_TOP1 = 0, RS_ATTACK_TOP2 = 1, RS_ATTACK_TOP2_UNORDERED = 2, RS_ATTACK_ACCURACY = 3,
       RS_ATTACK_NUM_CURVES = 4 };

/* RUN's ε grid into *EPS (owned, num_views entries, eps[0] = 0): 1 when RUN is
 * adversarial-style, 0 when it is not (*EPS NULL; ERR says why, naming the view), RS_EINVAL
 * for a pgd eps that does not parse, RS_ENOMEM. */
int rs_attack_grid(const rs_run_info *run, double **eps, rs_error *err);

typedef struct rs_attack_stats {
    int64_t run_id;
    int images, views, layers, patches, grid_h, grid_w, top_k;
    int first_image;            /* source index of image 0 (the run's offset) */
    double *eps;                /* (V) the grid, eps[0] = 0 */
    uint8_t *first;             /* (images, L, Np) min-ε as a view index, 0 = never */
    int64_t *hist;              /* (L+1, V) patches by min-ε: [l][v] first changed at view v,
                                 * [l][0] never; row L pools the layers */
    int64_t *changed_last;      /* (images) (layer, patch) pairs of view 0 changed at the
                                 * largest ε: ranks the most changed images */
    uint8_t *median;            /* (L, Np) the lower median of min-ε over images, as a view
                                 * index (0 = never, which counts as above every ε) */
    int median_first;           /* the lower median of min-ε over every (image, layer, patch),
                                 * as a view index (0 = never, which counts as above every ε) */
    rs_stats_rate *curve;       /* (V, RS_ATTACK_NUM_CURVES) */
    rs_stats_rate *routing_changes; /* (V) pooled over the MoE layers */
    int resamples;              /* as used for the accuracy bootstrap (0: none) */
    double level;
} rs_attack_stats;

/* Computes the figures of run RUN of STORE in one pass over its records. ST is the run's
 * rs_stats (rs_stats_compute with OPT, which may be NULL for the defaults); OPT's name
 * names the database in messages. */
int rs_attack_stats_compute(rs_store *store, const rs_run_info *run, const rs_stats *st,
                            const rs_stats_options *opt, rs_attack_stats **out, rs_error *err);
void rs_attack_stats_free(rs_attack_stats *as);

/* The min-ε of each patch of MoE layer LAYER into VALUES (Np): of image I (0-based in
 * the run), or with I < 0 the median over images (the lower median of the view indices,
 * never counting as above every ε). A value is ε, or INFINITY for never. */
void rs_attack_min_eps(const rs_attack_stats *as, int image, int layer, double *values);

/* The attack objective per step, averaged over images, of each view of RUN, from STORE
 * (NAME names it in errors) through its attack cursor (rs_store_attack_cursor_*: the
 * attacks of store schema 4, steps+1 objective values per row). *MEAN (owned; (V, *STEPS +
 * 1), NaN where a view has no row for a step) and *STEPS (the largest step count);
 * *STEPS = 0 and *MEAN = NULL when the run has no attacks row (stores before schema 4, runs
 * without attacks). RS_EFORMAT for a malformed row (an objective of other than steps+1
 * values, a view outside the run), or the cursor's store errors. */
int rs_attack_objective(rs_store *store, const char *name, const rs_run_info *run, double **mean, int *steps,
                        rs_error *err);

#endif

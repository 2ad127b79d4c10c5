/* dissect.h — the dissection over training seeds: how much of a perturbation's damage the
 * router causes and how much the experts do, per method (docs/dissection.md; AdvMoE's
 * "robustness of routers vs experts", Zhang et al. ICCV 2023).
 *
 * Input: groups of runs (groups.h), each run holding, after view 0 (the clean image), one
 * or more perturbed views P and for each of them a forced view f = base:view=P+route:from=0
 * (every MoE block forced; route_stats.h). The perturbations are the forced views of group
 * 0's first run in view order (route_stats.h's rows with from = 0 and no layers=); every run
 * has the same views (rs_groups_compute checked it). Per run and perturbation, figures as
 * fractions (RS_DISSECT_*):
 *   accuracy      correct / labelled images of view P (stats.h's accuracy)
 *   top1          Top-1 agreement of view P with view 0 over its matched patch pairs, all
 *                 MoE layers pooled (stats.h)
 *   flipped       images whose prediction under P differs from view 0's / images
 *   router        router-attributable: of the flipped images, those whose forced view
 *                 predicts view 0's class again / flipped (route_stats.h's attributable;
 *                 per image, not per patch); none when no image flipped
 *   expert        expert-attributable: 1 − router, the flips that survive the clean routing
 * Per group, perturbation and figure: the mean over the seeds that have the figure (each
 * seed weighs the same, whatever its number of flips) with a Student t interval on n − 1
 * degrees of freedom (rs_t_interval_of; one seed: the value, no interval) — seeds are the
 * unit of replication, as for every grouped figure (docs/groups.md). Every figure is a
 * fraction, so the interval is clipped to [0,1] (few seeds can put a t interval past it).
 * Per group g >= 1, perturbation and figure, against group 0 (as groups.h compares
 * methods): the mean of the per-seed paired differences g − group 0 over the positions
 * where both runs have the figure, with its t interval on n − 1 df (clipped to [−1,1]) and
 * its p-value, Holm-adjusted (rs_holm) over the family of the differences of accuracy,
 * Top-1 agreement, flips and router-attributable share that have a p-value (the
 * expert-attributable share's difference is minus the router's: not counted twice).
 *
 * Ownership: rs_dissect_compute allocates *OUT (rs_dissect_free, NULL allowed); nothing
 * points into the store or G. Errors: 0, RS_EINVAL (group 0 has no forced view of a
 * perturbation from view 0, or a run's views differ from it), RS_ENOMEM, or store errors as
 * route_stats.h reports them; one line naming the database and run. Nothing is printed. */
#ifndef RS_DISSECT_H
#define RS_DISSECT_H

#include <stdbool.h>
#include <stdint.h>

#include "groups.h"
#include "rs_error.h"
#include "stats.h"
#include "store/store.h"

enum {
    RS_DISSECT_ACCURACY = 0,
    RS_DISSECT_TOP1 = 1,
    RS_DISSECT_FLIPPED = 2,
    RS_DISSECT_ROUTER = 3,
    RS_DISSECT_EXPERT = 4,
    RS_DISSECT_NUM_FIGURES = 5,
};

typedef struct rs_dissect {
    int num_groups, seeds, perturbations;  /* G, N (group 0's size), P */
    int *view, *forced;         /* (P) the perturbed view and its forced view */
    bool *has;                  /* (G, N, P, F) the run has the figure */
    double *value;              /* (G, N, P, F) */
    int64_t *flipped, *restored; /* (G, N, P) image counts */
    rs_t_interval *mean;        /* (G, P, F) over the group's seeds that have the figure */
    rs_t_interval *diff;        /* (G, P, F) group g − group 0, g >= 1 (g = 0: n = 0) */
    double *holm;               /* (G, P, F) diff's Holm-adjusted p; -1: none (no p, or not in the family) */
    int family;                 /* differences in Holm's family */
    double level;
} rs_dissect;

static inline int rs_dissect_at(const rs_dissect *d, int group, int seed, int perturbation)
{
    return (group * d->seeds + seed) * d->perturbations + perturbation;
}

/* Whether figure F's differences count in Holm's family (all but the expert-attributable
 * share, the router's complement). */
static inline bool rs_dissect_in_family(int figure)
{
    return figure != RS_DISSECT_EXPERT;
}

/* "accuracy", "Top-1 agreement", "predictions flipped", "router-attributable",
 * "expert-attributable". */
const char *rs_dissect_figure_name(int figure);

/* Whether run RUN has a forced view base:view=P+route:from=0 over every MoE block for some
 * perturbed view P (what the dissection needs); false for a spec that does not parse. */
bool rs_dissect_applies(const rs_run_info *run);

/* The dissection of the groups G of STORE (OPT as given to rs_groups_compute: its name
 * names the database). */
int rs_dissect_compute(rs_store *store, const rs_groups *g, const rs_stats_options *opt, rs_dissect **out,
                       rs_error *err);
void rs_dissect_free(rs_dissect *d);

#endif

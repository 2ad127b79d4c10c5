/* route_stats.h — what the routing interventions of a stored run show (docs/dispatch.md,
 * "Routing interventions"; docs/metrics.md).
 *
 * A forced view f has the spec base:view=P+...+route:from=F: it runs the pixels of view P
 * (the perturbed view it forces) with the experts view F ran (the reference, 0 in practice)
 * on each matched patch. Over the run's images, with predictions pred[·]:
 *   changed      pred[P] != pred[F]: the perturbation changed the prediction
 *   restored     changed and pred[f] == pred[F]: forcing F's routing undid the change
 *   attributable restored / changed: the share of changes that routing explains
 *   remaining    1 - attributable: the share that survives with F's routing forced
 *   introduced   pred[P] == pred[F] but pred[f] != pred[F]: forcing itself changed it
 * attributable and remaining carry a percentile bootstrap over images (stats.h's
 * rs_stats_boot_ratio: the run's images drawn as rs_stats draws them) and a Wilson
 * interval (n = changed, as if images were one sample of changes); both are "n/a" (valid
 * false) when no image changed. One row per forced view in view order; a forced view
 * without base:view= has no perturbed twin and no row.
 *
 * Ownership: rs_route_stats_compute allocates *OUT (free with rs_route_stats_free, NULL
 * allowed). Errors: 0 or a negative RS_E* code with one line naming the database (OPT's
 * name) and the run: RS_EINVAL for a view spec that does not parse, RS_EFORMAT for records
 * out of the run's shapes, RS_ENOMEM, store errors as they come. Nothing is printed. */
#ifndef RS_ROUTE_STATS_H
#define RS_ROUTE_STATS_H

#include <stdint.h>

#include "rs_error.h"
#include "stats.h"
#include "store/store.h"

typedef struct rs_route_row {
    int view, base, from;       /* the forced view, the view it forces, the view whose routing it runs */
    unsigned blocks;            /* layers= as a block mask; 0: every MoE block */
    int64_t images, changed, restored, introduced;
    rs_stats_rate attributable, remaining;
} rs_route_row;

typedef struct rs_route_stats {
    int64_t run_id;
    int rows;                   /* 0: the run has no forced view with a base */
    rs_route_row *row;
    int resamples;              /* bootstrap resamples (0: none) */
    double level;
} rs_route_stats;

/* The rows of run RUN of STORE, in one pass over its records when it has forced views
 * (none: *OUT with rows = 0, nothing read). ST is the run's rs_stats (its resamples, seed
 * and level are used); OPT's name names the database in messages (OPT may be NULL). */
int rs_route_stats_compute(rs_store *store, const rs_run_info *run, const rs_stats *st,
                           const rs_stats_options *opt, rs_route_stats **out, rs_error *err);
void rs_route_stats_free(rs_route_stats *rs);

#endif

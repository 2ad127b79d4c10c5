/* compare_tables.h — the tables that set runs side by side, as rs_table models (table.h):
 * the two of `routerscope compare` (one run against another) and the three of the
 * comparison report (report.h: headline, paired differences to each run's baseline,
 * accuracy). Each builder returns a new table (free with rs_table_free) or NULL when out
 * of memory. Figures come from the statistics as given (stats.h); nothing is recomputed. */
#ifndef RS_COMPARE_TABLES_H
#define RS_COMPARE_TABLES_H

#include <stdbool.h>

#include "stats/stats.h"
#include "store/store.h"
#include "table.h"

#define RS_REPORT_FLAG_LEN 320

/* The runs of a comparison report. */
typedef struct rs_report_set {
    int n;
    const rs_run_info *info;    /* N runs, in the order given */
    rs_stats *const *st;        /* their statistics */
    const int *baseline;        /* per run: the index of the run it is compared with, or -1 */
    char (*flag)[RS_REPORT_FLAG_LEN]; /* per run: why it is not comparable with its baseline, or "" */
} rs_report_set;

/* `compare`: every agreement rate of runs A (described by INFO_A) and B per view and MoE
 * layer, with B - A from the paired bootstrap. RUN names the pair in csv/json. */
rs_table *rs_report_compare_table(const rs_run_info *info_a, const rs_stats_comparison *cmp, const char *run);
/* `compare`: McNemar's test on Top-1 per view and MoE layer, with its caveat as the note. */
rs_table *rs_report_mcnemar_table(const rs_run_info *info_a, const rs_stats_comparison *cmp, const char *run);

/* Report headline (the PRC work's Table 2 form): per run and MoE layer plus overall,
 * Top-1 / Top-2 / Top-2 order-agnostic and the paired Top-1 difference where CMPS[i] (the
 * run against its baseline, may be NULL) exists. PAIRS_ONLY leaves out the noise runs,
 * OVERALL_ONLY the per-layer rows. */
rs_table *rs_report_headline_table(const rs_report_set *set, rs_stats_comparison *const *cmps, bool pairs_only,
                                   bool overall_only);
/* One row per run with a comparison CMPS[i]: the paired differences of every rate over
 * all MoE layers and McNemar's p on Top-1. */
rs_table *rs_report_differences_table(const rs_report_set *set, rs_stats_comparison *const *cmps);
/* The answer of a report whose runs have no baseline (one model, or one run): one row per
 * run, Top-1 / Top-2 / Top-2 order-agnostic over all views and MoE layers with bootstrap
 * intervals, accuracy on view 0 and over all views with Wilson intervals. */
rs_table *rs_report_own_headline_table(const rs_report_set *set);
/* True when R is a pair run whose views are the default crops (5-100 % of the area), of
 * which rs_report_crops_note speaks (a sentence, lower case first). */
bool rs_report_default_crops(const rs_run_info *r);
extern const char rs_report_crops_note[];
/* Report accuracy (Table 1 form): clean and per severity for noise runs, the augmented
 * views for the others, with Wilson intervals; only the columns some run of SET fills
 * (the report passes noise and pair runs as separate sets). */
rs_table *rs_report_runs_accuracy_table(const rs_report_set *set);

#endif

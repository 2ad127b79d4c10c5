/* corrupt_tables.h — the figures of corruption runs (analyze/stats/corrupt_stats.h) as
 * tables, shared by `stats --by corruption|family`, `compare --group` and the report's
 * corruptions section (docs/corruptions.md, "Statistics").
 *
 *   cells     one run: Top-1, Top-2, Top-2 order-agnostic and accuracy per corruption and
 *             severity, and each corruption's mean over its severities
 *   families  one run: per family at each severity and over all of them, then the
 *             benchmark's fifteen ("overall"; its all-severity row is the mean routing
 *             consistency)
 *   levels    per group and family (and overall): each figure's mean over seeds and its
 *             between-seed standard deviation
 *   answer    per method (group g > 0) and figure: the mean over seeds of the per-seed
 *             difference against the first group per family and overall, with its t interval,
 *             and the relative form (mCE-style, the first group = 100 %) with its t interval
 * csv metrics: PREFIX_FIGURE with PREFIX the corruption and severity (fog_s3), the
 * corruption's mean (fog_mean), the family (blur_s2, blur_mean) or overall (overall_mean),
 * and for the answer FIGURE_FAMILY (top1_noise, top1_overall) or FIGURE_relative; n is the
 * run's images (one run), the seeds (groups). Rates print in percent, differences in points
 * (table.h). Each builder returns a new table (rs_table_free) or NULL when out of memory. */
#ifndef RS_CORRUPT_TABLES_H
#define RS_CORRUPT_TABLES_H

#include "stats/corrupt_stats.h"
#include "stats/groups.h"
#include "table.h"

rs_table *rs_report_corrupt_cells_table(const rs_corrupt_stats *cs, const char *run);
rs_table *rs_report_corrupt_family_table(const rs_corrupt_stats *cs, const char *run);
rs_table *rs_report_corrupt_levels_table(const rs_groups *g, const rs_corrupt_groups *cg, const char *run);
rs_table *rs_report_corrupt_answer_table(const rs_groups *g, const rs_corrupt_groups *cg, const char *run);

/* "Top-1", "Top-2", "Top-2 order-agnostic", "accuracy". */
const char *rs_report_corrupt_figure_name(int figure);

#endif

/* groups_tables.h — groups of runs (analyze/stats/groups.h) as tables, shared by `compare
 * --group` and the report's groups section (docs/groups.md).
 *
 *   summary      per group and headline figure: mean over seeds, between-seed sd, min, max
 *   differences  per group against the first: the mean of the per-seed paired differences
 *                with its t interval over seeds (n − 1 df), and their sd; with one seed the
 *                single difference and no interval (the note says so)
 *   seeds        per group, seed and figure: both runs, their figures and the difference
 *                with that seed's paired bootstrap interval over images
 * Rates and differences print in percent / points (table.h). Each builder returns a new
 * table (rs_table_free) or NULL when out of memory; figures are as rs_groups holds them. */
#ifndef RS_GROUPS_TABLES_H
#define RS_GROUPS_TABLES_H

#include <stddef.h>

#include "stats/groups.h"
#include "table.h"

/* "NAME: V-MoE+PRC k=2" (the method and k of the group's first run). */
void rs_report_group_label(const rs_groups *g, int group, char *buf, size_t size);

rs_table *rs_report_groups_summary_table(const rs_groups *g, const char *run);
rs_table *rs_report_groups_diff_table(const rs_groups *g, const char *run);
rs_table *rs_report_groups_seed_table(const rs_groups *g, const char *run);

/* Why the difference is an interval over seeds, one paragraph (the tables' notes and the
 * report's text). */
extern const char rs_report_groups_why[];

#endif

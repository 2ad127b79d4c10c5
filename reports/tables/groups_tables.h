/* groups_tables.h — groups of runs (analyze/stats/groups.h) as tables, shared by `compare
 * --group` and the report's groups section (docs/groups.md).
 *
 *   summary      per group and headline figure: mean over seeds, between-seed sd, min, max
 *   differences  per group against the first: the mean of the per-seed paired differences
 *                with its t interval over seeds (n − 1 df), its p-value and Holm's over the
 *                answer's family, and their sd; with one seed the single difference and no
 *                interval or p-value ("1 seed"; the note says so)
 *   answer       every method against the reference, per protocol and headline figure
 *                (rs_groups_answer's cells), marked where Holm bounds it away from 0
 *   seeds        per group, seed and figure: both runs, their figures and the difference
 *                with that seed's paired bootstrap interval over images (`compare`); the
 *                report's condensed form has a row per group and seed, a column per figure
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
/* The differences of G, protocol PROTOCOL of the answer A (rs_groups_answer): p-values and
 * Holm's next to each interval, the family named in the note. */
rs_table *rs_report_groups_diff_table(const rs_groups *g, const rs_answer *a, int protocol, const char *run);
rs_table *rs_report_groups_seed_table(const rs_groups *g, const char *run);
/* The per-seed differences condensed (the report's): a row per group and seed, a column per
 * headline figure with that seed's difference and its paired bootstrap interval. */
rs_table *rs_report_groups_seed_diff_table(const rs_groups *g, const char *run);

/* The answer A of the groups G[0..A->protocols-1] (rs_groups_answer) as one table: a row
 * per method (group g > 0) and protocol; the reference, the protocol and the seeds; a
 * column per headline figure with the mean difference and its t interval, "*" where it
 * holds after Holm, a one-seed difference as "+d (1 seed)". The note names the family. csv
 * metric: PROTOCOL_FIGURE. */
rs_table *rs_report_answer_table(const rs_answer *a, const rs_groups *const *g, const char *run);
/* The family line: what "*" means, Holm over which cells, p from which statistic. */
void rs_report_answer_family(const rs_answer *a, char *buf, size_t size);

/* Why the difference is an interval over seeds, one paragraph (the tables' notes and the
 * report's text). */
extern const char rs_report_groups_why[];

#endif

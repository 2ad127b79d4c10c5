/* attack_tables.h — tables of routing changes (every run) and of adversarial-style runs'
 * figures (analyze/stats/attack_stats.h), as rs_table models (table.h), shared by `stats` and the
 * report. Each builder returns a new table (free with rs_table_free) or NULL when out of
 * memory; RUN names the run in csv/json. */
#ifndef RS_ATTACK_TABLES_H
#define RS_ATTACK_TABLES_H

#include "stats/attack_stats.h"
#include "stats/stats.h"
#include "store/store.h"
#include "table.h"

/* vmoe's routing_changes per view and MoE layer (percent, bootstrap interval), next to
 * routing_changes_router where the two can differ (st->routing_changes_differ: capacity or
 * forced views), the tokens compared, the images averaged and the images whose view was
 * pixel-aligned with view 0 (class token counted). Rows by layer, then view, as the
 * consistency table. */
rs_table *rs_report_routing_changes_table(const rs_run_info *info, const rs_stats *st, const char *run);

/* One row per ε of the run's grid: Top-1, Top-2, Top-2 (order-agnostic), accuracy and
 * routing changes with their intervals, the share of patches whose min-ε is at most this
 * ε (MoE layers pooled). */
rs_table *rs_report_attack_table(const rs_attack_stats *as, const char *run);

/* The adversarial runs side by side, one row each in the order given: method, k, Top-1
 * agreement, routing changes and accuracy at the grid's largest ε (bootstrap intervals),
 * the median min-ε over every (image, MoE layer, patch) and the share never changed. */
rs_table *rs_report_attack_summary_table(const rs_attack_stats *const *as, const rs_run_info *const *runs, int n);

#endif

/* stats_tables.h — the tables that `routerscope stats` prints, built from one run's
 * statistics (stats.h) as rs_table models (table.h), shared by the `stats` command and
 * the report (report.h). Each builder returns a new table (free with rs_table_free) or
 * NULL when out of memory; RUN names the run in csv/json.
 *
 * Labels: a view slot is "view N" for pair runs (and long specs), the spec otherwise, and
 * "all" for the pooled slot; a two-view run's pooled agreement slot is labelled view 1
 * (it holds only view 1). A layer slot is "block B" (HUMAN) or "B", "all" when pooled. */
#ifndef RS_STATS_TABLES_H
#define RS_STATS_TABLES_H

#include <stdbool.h>
#include <stddef.h>

#include "stats/stats.h"
#include "store/store.h"
#include "table.h"

void rs_report_view_label(const rs_run_info *info, int slot, char *buf, size_t size);
void rs_report_agreement_label(const rs_run_info *info, int slot, char *buf, size_t size);
void rs_report_layer_label(const rs_run_info *info, int slot, char *buf, size_t size, bool human);
/* The view slots agreement is shown for: each non-reference view and the pool, or only
 * the pool when there are two views. */
int rs_report_agreement_slot_count(int views);
int rs_report_agreement_slot(int views, int i);
extern const char *const rs_report_rate_headers[RS_STATS_NUM_RATES];

/* Adds the row of view slot V (labelled as an agreement slot when AGREEMENT) and layer slot
 * L to T, with the view and the layer ("block B") in columns 0 and 1; the row index. */
int rs_report_add_view_layer_row(rs_table *t, const rs_run_info *info, int v, int l, bool agreement);

/* Rate X over N pairs with its bootstrap and Wilson intervals into cell (R, C) of T;
 * n/a when X is not valid. */
void rs_report_set_rate(rs_table *t, int r, int c, const rs_stats_rate *x, int64_t n);

/* Top-1 / Top-2 / Top-2 (order-agnostic) / overlap with intervals, pairs, unmatched; rows
 * by layer then view (BY_VIEW: by view then layer). */
rs_table *rs_report_consistency_table(const rs_run_info *info, const rs_stats *st, const char *run, bool by_view);
/* Agreement over all layers by label (BY_CLASS) or by view 0's top-1 expert. */
rs_table *rs_report_split_table(const rs_run_info *info, const rs_stats *st, const char *run, bool by_class);
/* Accuracy per view with Wilson intervals. */
rs_table *rs_report_accuracy_table(const rs_run_info *info, const rs_stats *st, const char *run);
/* Images by (routing changed, prediction changed) per view. */
rs_table *rs_report_change_table(const rs_run_info *info, const rs_stats *st, const char *run);
/* Per MoE layer: ‖S−I‖_F, JSD, entropy, load CV. */
rs_table *rs_report_layer_table(const rs_run_info *info, const rs_stats *st, const char *run);
/* The E x E top-1 transition counts per MoE layer (views pooled). */
rs_table *rs_report_transition_table(const rs_run_info *info, const rs_stats *st, const char *run);

#endif

/* dispatch_tables.h — the tables `routerscope stats` adds for a run with dispatch
 * (stats_dispatch.h) and those of `compare --interference` (interference.h), as rs_table
 * models (table.h). Each builder returns a new table (free
 * with rs_table_free) or NULL when out of memory; RUN names the run in csv/json. */
#ifndef RS_DISPATCH_TABLES_H
#define RS_DISPATCH_TABLES_H

#include <stddef.h>

#include "stats/interference.h"
#include "stats/stats_dispatch.h"
#include "store/store.h"
#include "table.h"

/* One note line: capacity factor, group, group order and priority of the run. */
void rs_report_dispatch_note(const rs_run_info *info, char *buf, size_t size);

/* Choices dispatched and the share dropped (Wilson interval), per view slot and layer. */
rs_table *rs_report_drop_table(const rs_run_info *info, const rs_stats_dispatch *d, const char *run);

/* Share dropped per expert (columns) and layer (rows), all views pooled. */
rs_table *rs_report_drop_expert_table(const rs_run_info *info, const rs_stats_dispatch *d, const char *run);

/* Against view 0: router top-k sets equal, kept sets equal and mean kept-set IoU (matched
 * pairs), per agreement slot and layer (vmoe's routing_changes is attack_tables.h's). */
rs_table *rs_report_kept_agreement_table(const rs_run_info *info, const rs_stats_dispatch *d, const char *run);

/* Batch interference (interference.h): run B against run A view by view, every token
 * against itself: tokens, the router's Top-1, Top-2 and top-k set, the kept set (bootstrap
 * and Wilson intervals) and routing_changes (bootstrap), per view slot and layer. INFO
 * is run A's. */
rs_table *rs_report_interference_table(const rs_run_info *info, const rs_interference *d, const char *run);

/* Batch interference: image views whose predicted class is the same in both runs, per view
 * slot. */
rs_table *rs_report_interference_prediction_table(const rs_run_info *info, const rs_interference *d,
                                                  const char *run);

#endif

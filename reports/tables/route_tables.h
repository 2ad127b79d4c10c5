/* route_tables.h — the table of routing interventions (analyze/stats/route_stats.h) as an rs_table
 * model (table.h), shared by `stats` and the report. Returns a new table (free with
 * rs_table_free) or NULL when out of memory. */
#ifndef RS_ROUTE_TABLES_H
#define RS_ROUTE_TABLES_H

#include "stats/route_stats.h"
#include "store/store.h"
#include "table.h"

/* One row per forced view of each of the N runs (RS[i] of RUNS[i], in the order given): the
 * forced view, the view it forces, the view whose routing it runs and the blocks forced;
 * images, images whose prediction the perturbation changed, the share of them restored by
 * the forced routing (routing-attributable) and the share remaining, with their bootstrap
 * intervals, and the images forcing changed on its own. With N > 1 a column names each run's
 * method and k. */
rs_table *rs_report_route_table(const rs_route_stats *const *rs, const rs_run_info *const *runs, int n);

#endif

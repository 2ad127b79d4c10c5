/* dissect_tables.h — the dissection over seeds (analyze/stats/dissect.h) as tables, shared
 * by `compare --group` and the report's dissection section (docs/dissection.md).
 *
 *   dissection  per group and perturbation: seeds, then accuracy under the perturbation,
 *               Top-1 agreement with the clean view, predictions flipped, router- and
 *               expert-attributable shares, each the mean over seeds with its t interval
 *               (a one-seed group: the value, no interval, and "1 seed")
 *   differences per group g >= 1 and perturbation, against group 0: the seed pairs, then
 *               the mean per-seed difference of accuracy, Top-1 agreement, flips and the
 *               router-attributable share, each with its t interval over seeds and a * where
 *               it holds after Holm over the table (dissect.h)
 *   seeds       per group, seed and perturbation: the run, its figures and the image counts
 *               (flipped, restored by the clean routing) the shares come from
 * Rates print in percent (table.h). In csv and json a row's view is "view P" (the perturbed
 * view), its layer "all", its run the group's name (dissection) or the run id (seeds), its
 * metrics dissect_KEY, dissect_diff_KEY and dissect_seed_KEY with KEY accuracy, top1, flipped, router, expert
 * (and flipped_images, restored_images per seed); a mean's n is its seeds. Each builder
 * returns a new table (rs_table_free) or NULL when out of memory. */
#ifndef RS_DISSECT_TABLES_H
#define RS_DISSECT_TABLES_H

#include "stats/dissect.h"
#include "stats/groups.h"
#include "table.h"

rs_table *rs_report_dissect_table(const rs_dissect *d, const rs_groups *g, const char *run);
rs_table *rs_report_dissect_diff_table(const rs_dissect *d, const rs_groups *g, const char *run);
rs_table *rs_report_dissect_seed_table(const rs_dissect *d, const rs_groups *g, const char *run);

/* What the shares are, one paragraph (the tables' note and the report's text). */
extern const char rs_report_dissect_definition[];

#endif

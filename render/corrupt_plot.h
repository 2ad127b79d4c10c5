/* corrupt_plot.h — the figures of groups of corruptions runs (analyze/stats/corrupt_stats.h),
 * to PATH (render.h); every number is corrupt_stats' (nothing is re-derived here).
 *
 *   heatmap  one row per corruption (grouped by family), one column per method (group g > 0):
 *            the mean over seeds of the per-seed difference method − first group in the
 *            corruption's mean over its severities, in points, written in the cell; a
 *            diverging scale symmetric about 0 (orange: the method agrees more, blue: less;
 *            for accuracy, more and less accurate), ± the largest |difference| rounded up to
 *            a whole point; a cell without a difference is hatched
 *   curves   one panel per family present and one for the overall mean: the figure's mean
 *            over seeds at each severity, a line per group (hue = method, rs_palette_method)
 *
 * FIGURE is an RS_CSTAT_* index. RS_EINVAL when there is nothing to draw (fewer than two
 * groups for the heatmap); canvas errors as render.h gives them. */
#ifndef RS_CORRUPT_PLOT_H
#define RS_CORRUPT_PLOT_H

#include "render.h"
#include "stats/corrupt_stats.h"
#include "stats/groups.h"

int rs_render_corrupt_heatmap(const rs_groups *g, const rs_corrupt_groups *cg, int figure, const char *path,
                              rs_error *err);
int rs_render_corrupt_curves(const rs_groups *g, const rs_corrupt_groups *cg, int figure, const char *path,
                             rs_error *err);

#endif

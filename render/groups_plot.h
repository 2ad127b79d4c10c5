/* groups_plot.h — the figure of groups of runs (analyze/stats/groups.h), to PATH (render.h).
 *
 * One panel per headline figure (Top-1, Top-2, Top-2 order-agnostic, accuracy of view 0,
 * accuracy of the other views); in each, one column per group: every seed's run as a point
 * (hue = the group's method, rs_palette_method; lighter for later seeds; marker = k: circle
 * k = 1, square k = 2, triangle k >= 3) and the mean over seeds as a bar across the column.
 * All panels share one y scale (fractions). The panels fill rows of at most
 * RS_GROUPS_FIGURE_MAX_WIDTH points (rs_render_groups_layout): one row of five panels
 * with many groups would print too small on a page. RS_EINVAL when no group has any
 * figure. */
#ifndef RS_GROUPS_PLOT_H
#define RS_GROUPS_PLOT_H

#include "stats/groups.h"
#include "render.h"

#define RS_GROUPS_FIGURE_MAX_WIDTH 980.0

/* The panels per row (1..RS_GROUP_NUM_FIGURES) and the rows for NUM_GROUPS >= 1 groups. */
void rs_render_groups_layout(int num_groups, int *cols, int *rows);
int rs_render_groups(const rs_groups *g, const char *path, rs_error *err);

#endif

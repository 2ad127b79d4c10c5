/* groups_plot.h — the figure of groups of runs (analyze/groups.h), to PATH (render.h).
 *
 * One panel per headline figure (Top-1, Top-2, Top-2 order-agnostic, accuracy of view 0);
 * in each, one column per group: every seed's run as a point (hue = the group's method,
 * rs_palette_method; lighter for later seeds; marker = k: circle k = 1, square k = 2,
 * triangle k >= 3) and the mean over seeds as a bar across the column. All panels share one
 * y scale in percent. RS_EINVAL when no group has any figure. */
#ifndef RS_GROUPS_PLOT_H
#define RS_GROUPS_PLOT_H

#include "groups.h"
#include "render.h"

int rs_render_groups(const rs_groups *g, const char *path, rs_error *err);

#endif

/* heatmap.h — a per-patch value of one image over its patch grid, with a colour bar.
 *
 * Metrics (per MoE layer), computed by rs_patch_values (stats/patch.h, the functions the
 * statistics average; nothing here re-derives them):
 *   gate     top-1 gate of each patch of view VIEW (default 0), in [0,1]
 *   entropy  routing entropy (bits) of each patch of view VIEW, in [0, log2 E]
 *   jsd      Jensen–Shannon divergence (bits) between each patch of view VIEW (>= 1,
 *            default 1) and its matched patch of view 0; unmatched patches are n/a
 *   changed  on view 0's grid: for each reference patch, the fraction of the patches of
 *            views 1..V-1 matched to it whose top-1 expert differs from it (under the
 *            noise protocol: the fraction of severities at which the patch changed
 *            expert); n/a when no patch matches it
 * One panel per MoE layer (or only LAYER), headed "block B" as `--layer B` names it; when
 * the context has pixels, the view's image first, as a thumbnail of its own beside the
 * panels (as the expert grids show it: nothing is ever blended under a cell). A cell is
 * filled with exactly the colour bar's colour of its value (rs_palette_viridis(value / hi),
 * so two cells of one value have one colour), the value written in it; n/a cells are
 * hatched grey; a viridis colour bar on the right, a continuous gradient of the same map.
 * The scale [0, hi] is [0,1] for gate and changed, [0, log2 E] for entropy and [0, m] for
 * jsd with m the largest value rounded up to a multiple of 0.05 (at least 0.05). The panels
 * fill the figure's width: cells grow (up to RS_HEATMAP_MAX_CELL) until the panels and the
 * bar are as wide as the title, whose lines wrap where even the largest cells leave space
 * (one MoE layer). Errors as rs_patch_values and the canvas (render.h) give them. */
#ifndef RS_HEATMAP_H
#define RS_HEATMAP_H

#include "render.h"
#include "stats/patch.h"

#define RS_HEATMAP_MAX_CELL 64.0 /* units: the largest cell side */

/* Where a heatmap's parts are, in drawing units (a PNG has RS_RENDER_PNG_SCALE pixels per
 * unit). */
typedef struct rs_heatmap_layout {
    double left, top;       /* top-left corner of the first value panel */
    double cell;            /* cell side */
    double panel_w, panel_h, gap;
    double thumb_x;         /* left edge of the view's thumbnail (at TOP), or -1 without pixels */
    double bar_x, bar_w;    /* the colour bar, from TOP down PANEL_H: value 0 at its bottom */
    double hi;              /* top of the colour scale */
    double right;           /* right edge of what is drawn (the bar's tick labels) */
    double width, height;   /* the whole drawing */
    int panels;             /* MoE layers drawn */
} rs_heatmap_layout;

/* Top-left corner of patch J's cell in value panel P (0 = the first layer drawn). */
static inline void rs_heatmap_cell_xy(const rs_heatmap_layout *g, int grid_w, int p, int j, double *x, double *y)
{
    *x = g->left + p * (g->panel_w + g->gap) + (j % grid_w) * g->cell;
    *y = g->top + (j / grid_w) * g->cell;
}

/* VIEW < 0: the metric's default view. LAYER < 0: every MoE layer. */
int rs_render_heatmap(const rs_image_routing *r, const rs_render_context *ctx, rs_patch_metric metric, int view,
                      int layer, const char *path, rs_error *err);

/* The layout rs_render_heatmap draws with the same arguments, into *LAYOUT; the same
 * errors, nothing drawn. */
int rs_render_heatmap_layout(const rs_image_routing *r, const rs_render_context *ctx, rs_patch_metric metric,
                             int view, int layer, rs_heatmap_layout *layout, rs_error *err);

#endif

/* grid.h — the expert-selection grid of one image (as in the PRC work's figures).
 *
 * One column of panels per view (view 0, the reference, first), headed by the view's
 * number (a noise view: its σ and severity; a corruption: its name and severity; the
 * context's view_numbers when it draws some of a run's views); when the context has
 * pixels, a first row of the views' images, then one row per MoE layer. Each panel is a grid_h x grid_w grid of
 * cells: a cell is filled with exactly its patch's top-1 expert colour (rs_palette_expert,
 * the legend's colour; nothing is blended under it) and shows the expert id.
 * In the other views, a cell whose top-1 differs from the matched patch of view 0
 * (rs_patch_top1_changed, stats/patch.h) has a thick red border drawn inside the cell (RS_GRID_CHANGED_R, _G, _B) and, along its
 * bottom, "was N" (view 0's expert there); when some panel has more than 40 % of its
 * matched cells changed, every changed cell gets a red corner triangle (top right) instead
 * of a border, so the figure does not turn into a red mesh. A patch without a match in
 * view 0 is hatched grey. With pixels, view 0's thumbnail carries a dashed yellow box
 * around the view-0 patches that each cropped view's patches match (where its crop lies),
 * labelled with the view and "flipped" when the matched columns run mirrored; views that
 * match patch for patch (noise) get none. Nothing is drawn over a cell's fill at its
 * upper left (tests sample it). The title names the model (sha256 prefix), run, image, label,
 * each view's spec and prediction; rows are labelled "block B" (B the transformer block, the
 * index `--layer B` takes; "MoE layer L" without a run); a legend explains colours, red
 * borders and hatching. Output format by PATH's extension (render.h). */
#ifndef RS_GRID_H
#define RS_GRID_H

#include "render.h"

/* A grid shows at most this many views by default: a run with more (76 in the corruption
 * protocol) would draw them too thin to read. */
#define RS_GRID_MAX_VIEWS 16
/* The views a grid of RUN shows by default into VIEWS (ascending, view 0 first); returns
 * how many: all of them up to RS_GRID_MAX_VIEWS, else view 0 and every view at severity 3
 * (one per corruption or noise kind) when that fits (then *BY_SEVERITY, NULL allowed, is
 * true), else evenly spaced views, the first and the last included. The report and
 * `render grid` draw these; rs_render_keep_views (render.h) narrows a figure to them. */
int rs_render_grid_views(const rs_run_info *run, int views[RS_GRID_MAX_VIEWS], bool *by_severity);

#define RS_GRID_CHANGED_WIDTH 3.0 /* units, inside the cell */
#define RS_GRID_CHANGED_R 0.86 /* the red of changed cells: (0.86, 0, 0) */
#define RS_GRID_CHANGED_G 0.0
#define RS_GRID_CHANGED_B 0.0

/* Where the cells are, in drawing units (multiply by scale for PNG pixels). */
typedef struct rs_grid_layout {
    double left, top;     /* top-left corner of panel (view 0, layer 0) */
    double cell;          /* cell side */
    double panel_w, panel_h, gap_x, gap_y;
    double width, height; /* the whole drawing */
    double scale;         /* output pixels per unit (PNG), else 1 */
} rs_grid_layout;

/* Top-left corner of patch J's cell in the panel of view V, layer L. */
static inline void rs_grid_cell_xy(const rs_grid_layout *g, int grid_w, int v, int l, int j, double *x, double *y)
{
    *x = g->left + v * (g->panel_w + g->gap_x) + (j % grid_w) * g->cell;
    *y = g->top + l * (g->panel_h + g->gap_y) + (j / grid_w) * g->cell;
}

/* Draws R's grid to PATH. CTX may be NULL (no title details, no image). LAYOUT (may be
 * NULL) receives the geometry used. */
int rs_render_grid(const rs_image_routing *r, const rs_render_context *ctx, const char *path,
                   rs_grid_layout *layout, rs_error *err);

#endif

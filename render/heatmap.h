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
 * One panel per MoE layer (or only LAYER), the view's image faint underneath, the value
 * written in each cell, n/a cells hatched; a viridis colour bar on the right. The scale is
 * [0,1] for gate and changed, [0, log2 E] for entropy and [0, m] for jsd with m the
 * largest value rounded up to a multiple of 0.05 (at least 0.05). Errors as
 * rs_patch_values and the canvas (render.h) give them. */
#ifndef RS_HEATMAP_H
#define RS_HEATMAP_H

#include "render.h"
#include "stats/patch.h"

/* VIEW < 0: the metric's default view. LAYER < 0: every MoE layer. */
int rs_render_heatmap(const rs_image_routing *r, const rs_render_context *ctx, rs_patch_metric metric, int view,
                      int layer, const char *path, rs_error *err);

#endif

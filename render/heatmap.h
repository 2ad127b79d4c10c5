/* heatmap.h — a per-patch scalar of one image over its patch grid, with a colour bar.
 *
 * Metrics (per MoE layer):
 *   gate     top-1 gate of each patch of view VIEW (default 0), in [0,1]
 *   entropy  routing entropy (bits) of each patch of view VIEW, in [0, log2 E]
 *   jsd      Jensen–Shannon divergence (bits) between each patch of view VIEW (>= 1,
 *            default 1) and its matched patch of view 0; unmatched patches are n/a
 *   changed  on view 0's grid: for each reference patch, the fraction of the patches of
 *            views 1..V-1 matched to it whose top-1 expert differs from it (under the
 *            noise protocol: the fraction of severities at which the patch changed
 *            expert); n/a when no patch matches it
 * Router distributions are renormalised to sum 1 (stored as float16). One panel per MoE
 * layer (or only LAYER), the view's image faint underneath, the value written in each
 * cell, n/a cells hatched; a viridis colour bar on the right. The scale is [0,1] for gate
 * and changed, [0, log2 E] for entropy and [0, m] for jsd with m the largest value
 * rounded up to a multiple of 0.05 (at least 0.05). */
#ifndef RS_HEATMAP_H
#define RS_HEATMAP_H

#include "render.h"

typedef enum rs_heat_metric { RS_HEAT_GATE, RS_HEAT_ENTROPY, RS_HEAT_JSD, RS_HEAT_CHANGED } rs_heat_metric;

/* "gate", "entropy", "jsd" or "changed"; RS_EINVAL otherwise. */
int rs_heat_metric_parse(const char *text, rs_heat_metric *out, rs_error *err);
const char *rs_heat_metric_name(rs_heat_metric m);

/* VALUES (Np) of METRIC at layer LAYER for view VIEW (ignored by changed), NaN for n/a.
 * RS_EINVAL for a view or layer out of range (jsd needs VIEW >= 1). */
int rs_heatmap_values(const rs_image_routing *r, rs_heat_metric metric, int view, int layer, double *values,
                      rs_error *err);

/* VIEW < 0: the metric's default view. LAYER < 0: every MoE layer. */
int rs_render_heatmap(const rs_image_routing *r, const rs_render_context *ctx, rs_heat_metric metric, int view,
                      int layer, const char *path, rs_error *err);

#endif

/* plot.h — plots of a run's statistics (stats.h), each one figure to PATH (render.h).
 *
 *   sweep       Top-1 agreement with view 0 against the views 1..V-1 (the noise
 *               severities under the noise protocol) for one or more runs: one line per
 *               run, its band the bootstrap interval (Wilson where no bootstrap);
 *               LAYER < 0 pools the MoE layers, else MoE slot LAYER
 *   accuracy    accuracy of each view (clean, then the severities under the noise
 *               protocol) for one or more runs, with Wilson bands
 *   load        expert load per MoE layer: bars of each expert's share of the top-k
 *               slots, all views pooled, with the uniform share 1/E dashed; panels side
 *               by side (three to a row) on one y-scale shared by all layers
 *   transition  per MoE layer (or only LAYER): the E×E top-1 transition counts
 *               (reference expert -> view expert, non-reference views pooled), coloured
 *               by row share (row-normalised, 0..1), and the PRC matrix S (rows: view,
 *               columns: view 0), coloured by |value| on one scale shared by all its
 *               layers; numbers in cells, a colour bar beside each matrix
 *   router      per MoE layer and pooled: ‖S−I‖_F, JSD, entropy and load CV of one or
 *               more runs as grouped bars
 * RUNS[i] describes STATS[i] (legend and title). A run's colour is its method's hue
 * (rs_palette_method: V-MoE blue, PRC orange, ...), darker for a larger k; in sweep and
 * accuracy its line style and marker also say k (1: solid, disc; 2: dashed, square; 3 or
 * more: dotted, triangle). Runs of different
 * protocols are never drawn in one chart, and sweep / accuracy refuse pair runs (their two
 * views are random crops, not severities). RS_EINVAL for no runs, a layer out of range,
 * mixed protocols or a pair run in a sweep. */
#ifndef RS_PLOT_H
#define RS_PLOT_H

#include "render.h"
#include "stats/stats.h"

int rs_render_sweep(const rs_stats *const *stats, const rs_run_info *const *runs, int num_runs, int layer,
                    const char *path, rs_error *err);
int rs_render_accuracy(const rs_stats *const *stats, const rs_run_info *const *runs, int num_runs, const char *path,
                       rs_error *err);
int rs_render_load(const rs_stats *stats, const rs_run_info *run, const char *path, rs_error *err);
int rs_render_transition(const rs_stats *stats, const rs_run_info *run, int layer, const char *path, rs_error *err);
int rs_render_router(const rs_stats *const *stats, const rs_run_info *const *runs, int num_runs, const char *path,
                     rs_error *err);

#endif

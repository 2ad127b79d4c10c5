/* attack_plot.h — figures of adversarial-style runs (analyze/stats/attack_stats.h), each one
 * figure to PATH (render.h; format by extension).
 *
 *   curves     four panels against ε: Top-1, Top-2 and Top-2 (order-agnostic) agreement
 *              with view 0 (MoE layers pooled) and accuracy, for one or more runs; a line
 *              per run with its bootstrap band (Wilson where there is none); ε = 0 is view 0.
 *              Hue = training method (rs_palette_method), line style = k (k = 1 solid,
 *              k = 2 dashed, larger k dotted), so V-MoE and V-MoE+PRC of each k read side
 *              by side. ε on the x axis at its value, labelled in 1/255 where it is a
 *              multiple of it.
 *   min-ε map  per MoE layer (or only LAYER), view 0's patch grid coloured by each patch's
 *              min-ε (viridis from the smallest to the largest ε of the grid; "never"
 *              hatched grey), the ε written in each cell; of image IMAGE (0-based in the
 *              run) or, with IMAGE < 0, the median over images.
 *   min-ε hist the share of (image, patch) pairs by min-ε (each ε of the grid, then
 *              "never"), one bar per MoE layer in each group, y axis in percent with
 *              round ticks.
 *   objective  the attack objective per PGD step, averaged over images, one line per
 *              attacked view (its ε), from rs_attack_objective's MEAN (V, STEPS + 1).
 * RS_EINVAL for no runs, runs with different ε grids in one chart, a layer or image out of
 * range; otherwise as rs_canvas_open / rs_canvas_close. */
#ifndef RS_ATTACK_PLOT_H
#define RS_ATTACK_PLOT_H

#include "stats/attack_stats.h"
#include "render.h"

int rs_render_attack_curves(const rs_attack_stats *const *as, const rs_run_info *const *runs, int num_runs,
                            const char *path, rs_error *err);
int rs_render_min_eps_map(const rs_attack_stats *as, const rs_run_info *run, int image, int layer, const char *path,
                          rs_error *err);
int rs_render_min_eps_hist(const rs_attack_stats *as, const rs_run_info *run, const char *path, rs_error *err);
int rs_render_attack_objective(const double *mean, int steps, const rs_attack_stats *as, const rs_run_info *run,
                               const char *path, rs_error *err);

/* "4/255" when E is a multiple of 1/255, "0" for 0, "never" for infinity, else %.3g. */
void rs_render_eps_label(double e, char *buf, size_t size);

#endif

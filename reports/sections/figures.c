/* figures.c — the report's figures, shared by its sections: their files and captions, the
 * grids, and the context (class names, view pixels) under a grid, the per-patch heatmaps,
 * and the example images (chosen by stats/examples.h). Calls nothing of the sections or of
 * report.c. See sections.h and report.h. */
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "grid.h"
#include "heatmap.h"
#include "sections.h"
#include "stats/examples.h"
#include "input/spec_text.h"

void rs_report_figure(rs_report_state *R, const char *file, const char *caption)
{
    char rel[512];
    snprintf(rel, sizeof rel, "figures/%s", file);
    rs_doc_add(&R->d, RS_DOC_FIGURE, caption, rel);
}

void rs_report_fig_path(rs_report_state *R, const char *file, char *buf, size_t size)
{
    snprintf(buf, size, "%s/figures/%s", R->opt->out_dir, file);
}

/* Draws IMAGE of RUN into the figure FILE: the grid (GRID) or the changed-expert heatmap,
 * with the views' thumbnails when the run's data can still be read (the figure stands
 * without them). False (R->d set) on an error. */
static bool draw_image_figure(rs_report_state *R, const rs_run_info *run, int image, bool grid, const char *file)
{
    if (R->d.rc)
        return false;
    char path[4096];
    rs_report_fig_path(R, file, path, sizeof path);
    rs_image_routing r;
    int rc = rs_run_image_routing(R->store, run, image, &r, R->d.err);
    if (!rc) {
        rs_error no_pixels;
        float *pixels = NULL;
        rs_render_context ctx;
        rs_render_context_of_run(run, image, &ctx, &pixels, &no_pixels);
        rc = grid ? rs_render_grid(&r, &ctx, path, NULL, R->d.err)
                  : rs_render_heatmap(&r, &ctx, RS_PATCH_CHANGED, -1, -1, path, R->d.err);
        free(pixels);
        rs_image_routing_free(&r);
    }
    R->d.rc = rc;
    return !rc;
}

void rs_report_grid_figure(rs_report_state *R, const rs_run_info *run, int image)
{
    char file[256], caption[1024], rl[200];
    snprintf(file, sizeof file, "grid-run%" PRId64 "-image%d.png", run->id, image);
    if (!draw_image_figure(R, run, image, true, file))
        return;
    bool moved = false, attacked = false;
    for (int v = 1; v < run->num_views; v++) {
        moved = moved || rs_spec_has_geometric_op(run->view_specs[v]);
        attacked = attacked || rs_render_view_attacked(run, v, NULL);
    }
    rs_run_label(run, rl, sizeof rl);
    snprintf(caption, sizeof caption,
             "Expert-selection grid of image %d, %s: the views, then the top-1 expert per patch, one row per MoE "
             "layer (\"block B\", as --layer B names it); red borders (or corners, where many cells changed) "
             "where the expert differs from view 0's matched patch, whose expert follows \"was\"; hatched cells "
             "have no match%s%s.",
             image, rl, moved ? "; the dashed box on view 0 shows where the other view's crop lies" : "",
             attacked ? "; an attacked view's thumbnail shows the pixels its attack started from (redoing the "
                        "attack needs the model, and its at most \u03b5 per pixel would not show at this size)" : "");
    rs_report_figure(R, file, caption);
}

/* The run's expert load and its transition / S matrices, as two figures. */
void rs_report_load_transition_figures(rs_report_state *R, const rs_run_info *r, const rs_stats *st,
                                       const char *rn)
{
    rs_doc *d = &R->d;
    char file[128], path[4096];
    snprintf(file, sizeof file, "load-run%s.png", rn);
    rs_report_fig_path(R, file, path, sizeof path);
    if (!d->rc)
        d->rc = rs_render_load(st, r, path, d->err);
    rs_report_figure(R, file, "Expert load per MoE layer (share of the top-k slots, all views; dashed: uniform).");
    snprintf(file, sizeof file, "transition-run%s.png", rn);
    rs_report_fig_path(R, file, path, sizeof path);
    if (!d->rc)
        d->rc = rs_render_transition(st, r, -1, path, d->err);
    rs_report_figure(R, file,
                     "Top-1 transitions view 0 \u2192 other views per MoE layer, coloured by their share of the row "
                     "(row-normalised, 0 to 1), and the PRC matrix S, coloured on one scale shared by all layers.");
}

void rs_report_heatmap_figure(rs_report_state *R, const rs_run_info *run, int image)
{
    char file[256], caption[640], rl[200];
    snprintf(file, sizeof file, "heatmap-run%" PRId64 "-image%d.png", run->id, image);
    if (!draw_image_figure(R, run, image, false, file))
        return;
    char others[64];
    if (rs_run_is_noise(run))
        snprintf(others, sizeof others, "here: the share of the five noise severities");
    else if (run->num_views == 2)
        snprintf(others, sizeof others, "0 or 1 with one other view");
    else
        snprintf(others, sizeof others, "here: of the %d other views", run->num_views - 1);
    rs_run_label(run, rl, sizeof rl);
    snprintf(caption, sizeof caption,
             "Per-patch heatmap of image %d, %s: on view 0's patch grid, the share of the other views whose "
             "matched patch chose a different top-1 expert (%s), one panel per MoE layer (\"block B\"), view 0's "
             "image beside them; hatched: no patch of another view matched it.",
             image, rl, others);
    rs_report_figure(R, file, caption);
}

int rs_report_example_images(rs_report_state *R, int *images, int want)
{
    int n = 0;
    if (!R->d.rc)
        R->d.rc = rs_examples_well_matched(R->store, R->info, R->n, want, images, &n, R->d.err);
    return R->d.rc ? 0 : n;
}

/* figures.c — the report's figures, shared by its sections: their files and captions, the
 * grids, and the context (class names, view pixels) under a grid, the per-patch heatmaps,
 * the example images (chosen by stats/examples.h), and figures composed of several runs' side
 * by side. Calls nothing of the sections or of
 * report.c. See sections.h and report.h. */
#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

void rs_report_fig_path_twin(rs_report_state *R, const char *file, bool twin, char *buf, size_t size)
{
    rs_report_fig_path(R, file, buf, size);
    size_t n = strlen(buf);
    if (twin && n > 4 && !strcmp(buf + n - 4, ".png"))
        memcpy(buf + n - 4, ".pdf", 4);
}

bool rs_report_image_file(rs_report_state *R, const rs_run_info *run, int image, bool grid, const char *file)
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
        /* a grid of many views draws some of them (the caption says which): all of them
           in one row would be too thin to read */
        int views[RS_GRID_MAX_VIEWS], n = grid ? rs_render_grid_views(run, views, NULL) : run->num_views;
        char *specs[RS_GRID_MAX_VIEWS];
        rs_run_info shown;
        if (n < run->num_views)
            rs_render_keep_views(&r, &ctx, pixels, views, n, &shown, specs);
        rc = grid ? rs_render_grid(&r, &ctx, path, NULL, R->d.err)
                  : rs_render_heatmap(&r, &ctx, RS_PATCH_CHANGED, -1, -1, path, R->d.err);
        free(pixels);
        rs_image_routing_free(&r);
    }
    R->d.rc = rc;
    return !rc;
}

/* Why a crop's patch may have no match, said wherever hatching or an unmatched count shows. */
const char rs_report_unmatched_why[] =
    "a patch has no match when its centre falls outside view 0 (the other crop shows a part of the image that "
    "view 0 cut off): normal for crops; such patches are left out of every rate, not counted as changes";

void rs_report_grid_figure(rs_report_state *R, const rs_run_info *run, int image)
{
    char file[256], caption[1400], rl[200];
    snprintf(file, sizeof file, "grid-run%" PRId64 "-image%d.png", run->id, image);
    if (!rs_report_image_file(R, run, image, true, file))
        return;
    rs_run_label(run, rl, sizeof rl);
    char what[320];
    snprintf(what, sizeof what, "Expert-selection grid of image %d, %s", image, rl);
    rs_report_grid_caption(run, what, caption, sizeof caption);
    rs_report_figure(R, file, caption);
}

void rs_report_grid_caption(const rs_run_info *run, const char *what, char *buf, size_t size)
{
    bool moved = false, attacked = false;
    for (int v = 1; v < run->num_views; v++) {
        moved = moved || rs_spec_has_geometric_op(run->view_specs[v]);
        attacked = attacked || rs_render_view_attacked(run, v, NULL);
    }
    snprintf(buf, size,
             "%s: the views, then the top-1 expert per patch, one row per MoE layer (\"block B\", as --layer B "
             "names it); red borders (or corners, where many cells changed) where the expert differs from view 0's "
             "matched patch, whose expert follows \"was\"; hatched cells have no match%s%s%s%s.",
             what, moved ? " (" : "", moved ? rs_report_unmatched_why : "",
             moved ? "); the dashed box on view 0 shows where the other view's crop lies" : "",
             attacked ? "; an attacked view's thumbnail shows the pixels its attack started from (redoing the "
                        "attack needs the model, and its at most \u03b5 per pixel would not show at this size)" : "");
    bool by_severity;
    int views[RS_GRID_MAX_VIEWS], n = rs_render_grid_views(run, views, &by_severity), len = (int)strlen(buf);
    if (n < run->num_views && len > 0 && buf[len - 1] == '.')
        snprintf(buf + len - 1, size - (size_t)len + 1, " Of the run's %d views the grid shows %d: %s.", run->num_views, n,
                 by_severity ? "view 0 and every view at severity 3"
                                                            : "evenly spaced ones, the first and the last included");
}

/* The run's expert load and its transition / S matrices, as two figures. */
void rs_report_load_transition_figures(rs_report_state *R, const rs_run_info *r, const rs_stats *st,
                                       const char *rn)
{
    rs_doc *d = &R->d;
    char file[128], path[4096];
    snprintf(file, sizeof file, "load-run%s.png", rn);
    for (int twin = 0; twin < 2 && !d->rc; twin++) { /* the PNG, then its vector twin */
        rs_report_fig_path_twin(R, file, twin, path, sizeof path);
        d->rc = rs_render_load(st, r, path, d->err);
    }
    rs_report_figure(R, file, "Expert load per MoE layer (share of the top-k slots, all views; dashed: uniform).");
    snprintf(file, sizeof file, "transition-run%s.png", rn);
    for (int twin = 0; twin < 2 && !d->rc; twin++) { /* the PNG, then its vector twin */
        rs_report_fig_path_twin(R, file, twin, path, sizeof path);
        d->rc = rs_render_transition(st, r, -1, path, d->err);
    }
    rs_report_figure(R, file,
                     "Top-1 transitions view 0 \u2192 other views per MoE layer, coloured by their share of the row "
                     "(row-normalised, 0 to 1), and the PRC matrix S, coloured on one scale shared by all layers.");
}

void rs_report_heatmap_figure(rs_report_state *R, const rs_run_info *run, int image)
{
    char file[256], caption[640], rl[200];
    snprintf(file, sizeof file, "heatmap-run%" PRId64 "-image%d.png", run->id, image);
    if (!rs_report_image_file(R, run, image, false, file))
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

/* The composed figure's largest width in pixels: about 300 dpi across a landscape A4 page,
 * so a figure of four grids stays sharp in print without a full-size copy of each. */
#define COMPOSE_MAX_W 3200
#define COMPOSE_GAP 28  /* pixels between the parts */

/* Paints the N loaded parts IMG, COLS to a row, into a new PNG at PATH. */
static int compose_write(cairo_surface_t **img, int n, int cols, const char *path, rs_error *err)
{
    double w = 0, h = 0, row_w = 0, row_h = 0;
    for (int i = 0; i < n; i++) {
        row_w += cairo_image_surface_get_width(img[i]) + (i % cols ? COMPOSE_GAP : 0);
        row_h = fmax(row_h, cairo_image_surface_get_height(img[i]));
        if (i % cols == cols - 1 || i == n - 1)
            w = fmax(w, row_w), h += row_h + (h > 0 ? COMPOSE_GAP : 0), row_w = row_h = 0;
    }
    double s = fmin(1.0, COMPOSE_MAX_W / w);
    cairo_surface_t *out = cairo_image_surface_create(CAIRO_FORMAT_RGB24, (int)ceil(w * s), (int)ceil(h * s));
    cairo_t *cr = cairo_create(out);
    cairo_set_source_rgb(cr, 1, 1, 1);
    cairo_paint(cr);
    cairo_scale(cr, s, s);
    double x = 0, y = 0;
    row_h = 0;
    for (int i = 0; i < n; i++) {
        cairo_set_source_surface(cr, img[i], x, y);
        cairo_pattern_set_filter(cairo_get_source(cr), CAIRO_FILTER_GOOD);
        cairo_paint(cr);
        row_h = fmax(row_h, cairo_image_surface_get_height(img[i]));
        x += cairo_image_surface_get_width(img[i]) + COMPOSE_GAP;
        if (i % cols == cols - 1)
            x = 0, y += row_h + COMPOSE_GAP, row_h = 0;
    }
    cairo_destroy(cr);
    cairo_surface_flush(out);
    cairo_status_t st = cairo_surface_write_to_png(out, path);
    cairo_surface_destroy(out);
    return st == CAIRO_STATUS_SUCCESS ? 0 : rs_error_set(err, RS_EIO, "%s: %s", path, cairo_status_to_string(st));
}

void rs_report_compose(rs_report_state *R, char (*parts)[RS_REPORT_FILE_LEN], int n, int cols, const char *file)
{
    cairo_surface_t **img = calloc((size_t)(n > 0 ? n : 1), sizeof *img);
    char path[4096];
    if (!img && !R->d.rc)
        R->d.rc = rs_error_set(R->d.err, RS_ENOMEM, "out of memory");
    for (int i = 0; img && i < n && !R->d.rc; i++) {
        rs_report_fig_path(R, parts[i], path, sizeof path);
        img[i] = cairo_image_surface_create_from_png(path);
        if (cairo_surface_status(img[i]) != CAIRO_STATUS_SUCCESS)
            R->d.rc = rs_error_set(R->d.err, RS_EIO, "%s: cannot read it back", path);
    }
    if (img && n > 0 && !R->d.rc) {
        rs_report_fig_path(R, file, path, sizeof path);
        R->d.rc = compose_write(img, n, cols < 1 ? 1 : cols, path, R->d.err);
    }
    for (int i = 0; img && i < n; i++) {
        if (img[i])
            cairo_surface_destroy(img[i]);
        rs_report_fig_path(R, parts[i], path, sizeof path);
        unlink(path); /* the parts live on in the composed figure only */
    }
    free(img);
}

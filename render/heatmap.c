/* heatmap.c — per-patch values over the image (see heatmap.h); the values are
   rs_patch_values's, drawn as they come. */
#include "heatmap.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MARGIN 16.0

/* Where things go, in drawing units. */
typedef struct heat_geom {
    double cell, pw, ph, gap, top, bar_x, width, height;
} heat_geom;

/* METRIC's values of view VIEW for layers L0..L0+NL-1 into *VALS ((NL, Np), owned: free())
   and the top of the colour scale into *HI. */
static int heat_values(const rs_image_routing *r, rs_patch_metric metric, int view, int l0, int nl, double **vals,
                       double *hi, rs_error *err)
{
    size_t Np = (size_t)r->patches;
    double *v = malloc(sizeof *v * (size_t)nl * Np);
    if (!v)
        return rs_error_set(err, RS_ENOMEM, "out of memory");
    for (int l = 0; l < nl; l++) {
        int rc = rs_patch_values(r, metric, view, l0 + l, v + (size_t)l * Np, err);
        if (rc) {
            free(v);
            return rc;
        }
    }
    double vmax = 0;
    for (size_t i = 0; i < (size_t)nl * Np; i++)
        if (v[i] > vmax)
            vmax = v[i];
    *hi = 1.0;
    if (metric == RS_PATCH_ENTROPY)
        *hi = log2(r->experts > 1 ? r->experts : 2);
    else if (metric == RS_PATCH_JSD)
        *hi = fmax(0.05, ceil(vmax / 0.05 - 1e-9) * 0.05);
    *vals = v;
    return 0;
}

/* The title (the metric, model, run, image) and the line under it (the view, prediction). */
static void heat_titles(const rs_image_routing *r, const rs_render_context *ctx, rs_patch_metric metric, int view,
                        char *title, char *sub, size_t size)
{
    const rs_run_info *run = ctx ? ctx->run : NULL;
    char cls[96], cls2[96], model[256];
    rs_run_model_label(run, model, sizeof model);
    snprintf(title, size, "%s — %s, run %lld, image %d (label %s)", rs_patch_metric_name(metric), model,
             run ? (long long)run->id : 0LL, r->image, rs_render_class_name(ctx, r->label, cls, sizeof cls));
    const char *spec = run && run->view_specs && view < run->num_views ? run->view_specs[view] : "?";
    if (metric == RS_PATCH_CHANGED)
        snprintf(sub, size, "on view 0 (%s), over views 1-%d; predicted %s (p = %.2f)", spec, r->views - 1,
                 rs_render_class_name(ctx, r->predicted[0], cls2, sizeof cls2), r->pred_prob[0]);
    else
        snprintf(sub, size, "view %d (%s); predicted %s (p = %.2f)%s", view, spec,
                 rs_render_class_name(ctx, r->predicted[view], cls2, sizeof cls2), r->pred_prob[view],
                 ctx && ctx->pixels && rs_render_view_attacked(run, view, NULL) ? "; image: " RS_RENDER_START_PIXELS
                                                                                  : "");
}

/* Cells, panels and colour bar for NL panels of R's grid, widened to fit the titles. */
static heat_geom heat_layout(const rs_image_routing *r, int nl, const char *title, const char *sub)
{
    int gw = r->grid_w, gh = r->grid_h;
    heat_geom g;
    g.cell = fmin(40.0, fmax(18.0, 260.0 / (gw > gh ? gw : gh)));
    g.pw = gw * g.cell, g.ph = gh * g.cell, g.gap = 20, g.top = MARGIN + 13 + 6 + 14 + 12 + 11 + 6;
    g.bar_x = MARGIN + nl * g.pw + (nl - 1) * g.gap + 24;
    g.width = g.bar_x + 14 + 8 + 40 + MARGIN, g.height = g.top + g.ph + 28 + MARGIN;
    cairo_surface_t *s = cairo_image_surface_create(CAIRO_FORMAT_ARGB32, 1, 1);
    cairo_t *m = cairo_create(s);
    g.width = fmax(g.width, fmax(rs_text_width(m, 13, true, title), rs_text_width(m, 10, false, sub)) + 2 * MARGIN);
    cairo_destroy(m);
    cairo_surface_destroy(s);
    return g;
}

/* One cell at (X, Y): VALUE on the colour scale [0, HI] with its number, or hatched n/a. */
static void draw_cell(cairo_t *cr, double x, double y, double cell, double value, double hi)
{
    double rgb[3], txt[3];
    if (isnan(value)) {
        cairo_set_source_rgba(cr, 0.85, 0.85, 0.85, 0.85);
        cairo_rectangle(cr, x, y, cell, cell);
        cairo_fill(cr);
        cairo_set_source_rgb(cr, 0.5, 0.5, 0.5);
        cairo_set_line_width(cr, 1.0);
        rs_hatch(cr, x, y, cell, cell, 5);
        return;
    }
    rs_palette_viridis(value / hi, rgb);
    cairo_set_source_rgba(cr, rgb[0], rgb[1], rgb[2], 0.78);
    cairo_rectangle(cr, x, y, cell, cell);
    cairo_fill(cr);
    rs_palette_text_on(rgb, txt);
    cairo_set_source_rgb(cr, txt[0], txt[1], txt[2]);
    char buf[64];
    snprintf(buf, sizeof buf, "%.2f", value);
    double fs = fmin(cell * 0.3, 11);
    rs_text(cr, x + cell / 2, y + cell / 2 + fs * 0.36, fs, false, 0.5, buf);
}

/* The panel of MoE layer L at (PX, PY): its head, the view's image, VALUES (Np), a frame. */
static void draw_panel(cairo_t *cr, const rs_image_routing *r, const rs_render_context *ctx, int view, int l,
                       const heat_geom *g, double px, double py, const double *values, double hi)
{
    const rs_run_info *run = ctx ? ctx->run : NULL;
    char buf[64];
    cairo_set_source_rgb(cr, 0, 0, 0);
    if (run && l < 64)
        snprintf(buf, sizeof buf, "MoE layer %d (block %d)", l, run->layer_blocks[l]);
    else
        snprintf(buf, sizeof buf, "MoE layer %d", l);
    rs_text(cr, px + g->pw / 2, py - 7, 11, true, 0.5, buf);
    rs_render_view_image(cr, ctx, view, px, py, g->pw, g->ph, 1.0);
    for (int j = 0; j < r->patches; j++)
        draw_cell(cr, px + (j % r->grid_w) * g->cell, py + (j / r->grid_w) * g->cell, g->cell, values[j], hi);
    cairo_set_source_rgb(cr, 0.3, 0.3, 0.3);
    cairo_set_line_width(cr, 1.0);
    cairo_rectangle(cr, px, py, g->pw, g->ph);
    cairo_stroke(cr);
}

/* The viridis bar for [0, HI] with five ticks, and the n/a note under the panels. */
static void draw_colour_bar(cairo_t *cr, const heat_geom *g, double hi)
{
    int steps = 64;
    for (int i = 0; i < steps; i++) {
        double rgb[3];
        rs_palette_viridis((i + 0.5) / steps, rgb);
        cairo_set_source_rgb(cr, rgb[0], rgb[1], rgb[2]);
        cairo_rectangle(cr, g->bar_x, g->top + g->ph - (i + 1) * g->ph / steps, 14, g->ph / steps + 0.3);
        cairo_fill(cr);
    }
    cairo_set_source_rgb(cr, 0.3, 0.3, 0.3);
    cairo_rectangle(cr, g->bar_x, g->top, 14, g->ph);
    cairo_stroke(cr);
    cairo_set_source_rgb(cr, 0, 0, 0);
    char buf[64];
    for (int t = 0; t <= 4; t++) {
        double val = hi * t / 4, y = g->top + g->ph - g->ph * t / 4;
        cairo_move_to(cr, g->bar_x + 14, y);
        cairo_line_to(cr, g->bar_x + 18, y);
        cairo_stroke(cr);
        snprintf(buf, sizeof buf, "%.2f", val);
        rs_text(cr, g->bar_x + 20, y + 3.5, 9, false, 0, buf);
    }
    cairo_set_source_rgb(cr, 0.3, 0.3, 0.3);
    rs_text(cr, MARGIN, g->top + g->ph + 18, 9, false, 0, "hatched: n/a (no matched patch)");
}

int rs_render_heatmap(const rs_image_routing *r, const rs_render_context *ctx, rs_patch_metric metric, int view,
                      int layer, const char *path, rs_error *err)
{
    if (view < 0)
        view = metric == RS_PATCH_JSD ? 1 : 0;
    if (metric == RS_PATCH_CHANGED)
        view = 0;
    if (metric == RS_PATCH_JSD && r->views < 2)
        return rs_error_set(err, RS_EINVAL, "jsd needs a run with at least two views");
    int l0 = layer < 0 ? 0 : layer, l1 = layer < 0 ? r->layers : layer + 1;
    if (layer >= r->layers)
        return rs_error_set(err, RS_EINVAL, "layer %d out of range (the run has %d MoE layers)", layer, r->layers);
    int nl = l1 - l0;
    double *vals = NULL, hi = 1;
    int rc = heat_values(r, metric, view, l0, nl, &vals, &hi, err);
    if (rc)
        return rc;
    char title[320], sub[320];
    heat_titles(r, ctx, metric, view, title, sub, sizeof title);
    heat_geom g = heat_layout(r, nl, title, sub);
    rs_canvas cv;
    if ((rc = rs_canvas_open(&cv, path, ceil(g.width), ceil(g.height), err))) {
        free(vals);
        return rc;
    }
    cairo_t *cr = cv.cr;
    cairo_set_source_rgb(cr, 0, 0, 0);
    rs_text(cr, MARGIN, MARGIN + 13, 13, true, 0, title);
    rs_text(cr, MARGIN, MARGIN + 13 + 6 + 14, 10, false, 0, sub);
    for (int l = l0; l < l1; l++)
        draw_panel(cr, r, ctx, view, l, &g, MARGIN + (l - l0) * (g.pw + g.gap), g.top,
                   vals + (size_t)(l - l0) * r->patches, hi);
    draw_colour_bar(cr, &g, hi);
    free(vals);
    return rs_canvas_close(&cv, err);
}

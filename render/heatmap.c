/* heatmap.c — per-patch values over the patch grid (see heatmap.h); the values are
   rs_patch_values's, drawn as they come. */
#include "heatmap.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MARGIN 16.0
#define TITLE_SIZE 13.0
#define SUB_SIZE 10.0
#define HEAD_SIZE 11.0
#define GAP 20.0
#define BAR_GAP 24.0 /* from the last panel to the colour bar */
#define BAR_W 14.0
#define BAR_LABELS 48.0 /* tick, gap and the widest tick label ("0.00") */

/* Everything rs_render_heatmap decides before it draws. */
typedef struct heat_plan {
    rs_heatmap_layout g;
    char parts[4][320]; /* the title's two parts (metric; model, run, image), the sub line's two */
    bool wrap;          /* each part on a line of its own (else two lines) */
    int view, l0;
    double *vals;       /* (panels, Np), owned: free() */
} heat_plan;

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

/* The title's parts (the metric; model, run, image) and the sub line's (the view; the
   prediction) into P->parts. */
static void heat_titles(const rs_image_routing *r, const rs_render_context *ctx, rs_patch_metric metric, heat_plan *p)
{
    const rs_run_info *run = ctx ? ctx->run : NULL;
    char cls[96], cls2[96], model[256];
    size_t size = sizeof p->parts[0];
    int view = p->view;
    rs_run_model_label(run, model, sizeof model);
    snprintf(p->parts[0], size, "%s", rs_patch_metric_name(metric));
    snprintf(p->parts[1], size, "%s, run %lld, image %d (label %s)", model, run ? (long long)run->id : 0LL, r->image,
             rs_render_class_name(ctx, r->label, cls, sizeof cls));
    const char *spec = run && run->view_specs && view < run->num_views ? run->view_specs[view] : "?";
    if (metric == RS_PATCH_CHANGED)
        snprintf(p->parts[2], size, "on view 0 (%s), over views 1-%d", spec, r->views - 1);
    else
        snprintf(p->parts[2], size, "view %d (%s)", view, spec);
    snprintf(p->parts[3], size, "predicted %s (p = %.2f)%s",
             rs_render_class_name(ctx, r->predicted[view], cls2, sizeof cls2), r->pred_prob[view],
             ctx && ctx->pixels && rs_render_view_attacked(run, view, NULL) ? "; image: " RS_RENDER_START_PIXELS : "");
}

/* The widest title line, unwrapped (WRAP false) or each part on its own line. */
static double heat_text_width(const heat_plan *p, bool wrap)
{
    cairo_surface_t *s = cairo_image_surface_create(CAIRO_FORMAT_ARGB32, 1, 1);
    cairo_t *m = cairo_create(s);
    char line[700];
    double w = 0;
    if (wrap) {
        for (int i = 0; i < 4; i++)
            w = fmax(w, rs_text_width(m, i < 2 ? TITLE_SIZE : SUB_SIZE, i < 2, p->parts[i]));
    } else {
        snprintf(line, sizeof line, "%s \u2014 %s", p->parts[0], p->parts[1]);
        w = rs_text_width(m, TITLE_SIZE, true, line);
        snprintf(line, sizeof line, "%s; %s", p->parts[2], p->parts[3]);
        w = fmax(w, rs_text_width(m, SUB_SIZE, false, line));
    }
    cairo_destroy(m);
    cairo_surface_destroy(s);
    return w;
}

/* Cells, panels, thumbnail and colour bar of R into P->g (P->g.panels and hi set): the
   cells grow until the panels fill the title's width, the title wraps where they cannot. */
static void heat_layout(const rs_image_routing *r, bool thumb, heat_plan *p)
{
    rs_heatmap_layout *g = &p->g;
    int gw = r->grid_w, gh = r->grid_h, columns = g->panels + (thumb ? 1 : 0);
    double across = (double)columns * gw; /* cells across the drawing */
    double fixed = 2 * MARGIN + (columns - 1) * GAP + BAR_GAP + BAR_W + BAR_LABELS;
    double base = fmin(40.0, fmax(18.0, 260.0 / (gw > gh ? gw : gh)));
    double text = heat_text_width(p, false) + 2 * MARGIN;
    p->wrap = fixed + across * RS_HEATMAP_MAX_CELL < text;
    if (p->wrap)
        text = heat_text_width(p, true) + 2 * MARGIN;
    g->cell = fmin(RS_HEATMAP_MAX_CELL, fmax(base, (text - fixed) / across));
    g->panel_w = gw * g->cell, g->panel_h = gh * g->cell, g->gap = GAP;
    double last = MARGIN + TITLE_SIZE + (p->wrap ? 17 : 0) + 6 + 14 + (p->wrap ? 14 : 0); /* last title baseline */
    g->top = last + 12 + HEAD_SIZE + 6;
    g->thumb_x = thumb ? MARGIN : -1;
    g->left = MARGIN + (thumb ? g->panel_w + GAP : 0);
    g->bar_x = g->left + g->panels * g->panel_w + (g->panels - 1) * GAP + BAR_GAP;
    g->bar_w = BAR_W;
    g->right = g->bar_x + BAR_W + BAR_LABELS;
    g->width = ceil(fmax(g->right + MARGIN, text));
    g->height = ceil(g->top + g->panel_h + 28 + MARGIN);
}

/* Checks the arguments and plans the figure into P (P->vals owned by the caller on success). */
static int heat_plan_make(const rs_image_routing *r, const rs_render_context *ctx, rs_patch_metric metric, int view,
                          int layer, heat_plan *p, rs_error *err)
{
    memset(p, 0, sizeof *p);
    if (view < 0)
        view = metric == RS_PATCH_JSD ? 1 : 0;
    if (metric == RS_PATCH_CHANGED)
        view = 0;
    if (metric == RS_PATCH_JSD && r->views < 2)
        return rs_error_set(err, RS_EINVAL, "jsd needs a run with at least two views");
    if (layer >= r->layers)
        return rs_error_set(err, RS_EINVAL, "layer %d out of range (the run has %d MoE layers)", layer, r->layers);
    p->view = view;
    p->l0 = layer < 0 ? 0 : layer;
    p->g.panels = layer < 0 ? r->layers : 1;
    int rc = heat_values(r, metric, view, p->l0, p->g.panels, &p->vals, &p->g.hi, err);
    if (rc)
        return rc;
    heat_titles(r, ctx, metric, p);
    heat_layout(r, ctx && ctx->pixels, p);
    return 0;
}

/* The title lines, bold then the sub lines, as P->wrap says. */
static void draw_titles(cairo_t *cr, const heat_plan *p)
{
    char line[700];
    double y = MARGIN + TITLE_SIZE;
    cairo_set_source_rgb(cr, 0, 0, 0);
    if (p->wrap) {
        rs_text(cr, MARGIN, y, TITLE_SIZE, true, 0, p->parts[0]);
        rs_text(cr, MARGIN, y += 17, TITLE_SIZE, true, 0, p->parts[1]);
        rs_text(cr, MARGIN, y += 20, SUB_SIZE, false, 0, p->parts[2]);
        rs_text(cr, MARGIN, y + 14, SUB_SIZE, false, 0, p->parts[3]);
        return;
    }
    snprintf(line, sizeof line, "%s \u2014 %s", p->parts[0], p->parts[1]);
    rs_text(cr, MARGIN, y, TITLE_SIZE, true, 0, line);
    snprintf(line, sizeof line, "%s; %s", p->parts[2], p->parts[3]);
    rs_text(cr, MARGIN, y + 20, SUB_SIZE, false, 0, line);
}

/* One cell at (X, Y): exactly VALUE's colour on the scale [0, HI] with its number, or
   hatched grey for n/a. */
static void draw_cell(cairo_t *cr, double x, double y, double cell, double value, double hi)
{
    double rgb[3], txt[3];
    if (isnan(value)) {
        cairo_set_source_rgb(cr, 0.85, 0.85, 0.85);
        cairo_rectangle(cr, x, y, cell, cell);
        cairo_fill(cr);
        cairo_set_source_rgb(cr, 0.5, 0.5, 0.5);
        cairo_set_line_width(cr, 1.0);
        rs_hatch(cr, x, y, cell, cell, 5);
        return;
    }
    rs_palette_viridis(value / hi, rgb);
    cairo_set_source_rgb(cr, rgb[0], rgb[1], rgb[2]);
    cairo_rectangle(cr, x, y, cell, cell);
    cairo_fill(cr);
    rs_palette_text_on(rgb, txt);
    cairo_set_source_rgb(cr, txt[0], txt[1], txt[2]);
    char buf[64];
    snprintf(buf, sizeof buf, "%.2f", value);
    double fs = fmin(cell * 0.3, 11);
    rs_text(cr, x + cell / 2, y + cell / 2 + fs * 0.36, fs, false, 0.5, buf);
}

/* A frame around the panel at (PX, PY), and with LINES thin white lines between its cells
   (as the expert grids draw them). */
static void draw_frame(cairo_t *cr, const rs_image_routing *r, const rs_heatmap_layout *g, double px, double py,
                       bool lines)
{
    if (lines) {
        cairo_set_source_rgba(cr, 1, 1, 1, 0.8);
        cairo_set_line_width(cr, 0.75);
        for (int i = 1; i < r->grid_h; i++) {
            cairo_move_to(cr, px, py + i * g->cell);
            cairo_line_to(cr, px + g->panel_w, py + i * g->cell);
        }
        for (int i = 1; i < r->grid_w; i++) {
            cairo_move_to(cr, px + i * g->cell, py);
            cairo_line_to(cr, px + i * g->cell, py + g->panel_h);
        }
        cairo_stroke(cr);
    }
    cairo_set_source_rgb(cr, 0.3, 0.3, 0.3);
    cairo_set_line_width(cr, 1.0);
    cairo_rectangle(cr, px, py, g->panel_w, g->panel_h);
    cairo_stroke(cr);
}

/* The view's image in a panel of its own, left of the value panels. */
static void draw_thumb(cairo_t *cr, const rs_image_routing *r, const rs_render_context *ctx, const heat_plan *p)
{
    const rs_heatmap_layout *g = &p->g;
    char buf[64];
    snprintf(buf, sizeof buf, "view %d", p->view);
    cairo_set_source_rgb(cr, 0, 0, 0);
    rs_text(cr, g->thumb_x + g->panel_w / 2, g->top - 7, HEAD_SIZE, true, 0.5, buf);
    rs_render_view_image(cr, ctx, p->view, g->thumb_x, g->top, g->panel_w, g->panel_h, 1.0);
    draw_frame(cr, r, g, g->thumb_x, g->top, false);
}

/* Value panel I (MoE slot P->l0 + I): its head ("block B"), the cells, lines and frame. */
static void draw_panel(cairo_t *cr, const rs_image_routing *r, const rs_run_info *run, const heat_plan *p, int i)
{
    const rs_heatmap_layout *g = &p->g;
    int l = p->l0 + i;
    double px, py;
    rs_heatmap_cell_xy(g, r->grid_w, i, 0, &px, &py);
    char buf[64];
    if (run && l < run->num_layers && l < 64)
        snprintf(buf, sizeof buf, "block %d", run->layer_blocks[l]);
    else
        snprintf(buf, sizeof buf, "MoE layer %d", l);
    cairo_set_source_rgb(cr, 0, 0, 0);
    rs_text(cr, px + g->panel_w / 2, py - 7, HEAD_SIZE, true, 0.5, buf);
    const double *values = p->vals + (size_t)i * r->patches;
    for (int j = 0; j < r->patches; j++) {
        double x, y;
        rs_heatmap_cell_xy(g, r->grid_w, i, j, &x, &y);
        draw_cell(cr, x, y, g->cell, values[j], g->hi);
    }
    draw_frame(cr, r, g, px, py, true);
}

/* The viridis bar for [0, hi] as one gradient through the map's own stops (so each value's
   colour is the cells'), five ticks, and the n/a note under the panels. */
static void draw_colour_bar(cairo_t *cr, const rs_heatmap_layout *g)
{
    cairo_pattern_t *grad = cairo_pattern_create_linear(0, g->top + g->panel_h, 0, g->top);
    for (int i = 0; i <= 8; i++) {
        double rgb[3];
        rs_palette_viridis(i / 8.0, rgb); /* the map is linear between these nine stops */
        cairo_pattern_add_color_stop_rgb(grad, i / 8.0, rgb[0], rgb[1], rgb[2]);
    }
    cairo_set_source(cr, grad);
    cairo_rectangle(cr, g->bar_x, g->top, BAR_W, g->panel_h);
    cairo_fill(cr);
    cairo_pattern_destroy(grad);
    cairo_set_source_rgb(cr, 0.3, 0.3, 0.3);
    cairo_set_line_width(cr, 1.0);
    cairo_rectangle(cr, g->bar_x, g->top, BAR_W, g->panel_h);
    cairo_stroke(cr);
    cairo_set_source_rgb(cr, 0, 0, 0);
    char buf[64];
    for (int t = 0; t <= 4; t++) {
        double val = g->hi * t / 4, y = g->top + g->panel_h - g->panel_h * t / 4;
        cairo_move_to(cr, g->bar_x + BAR_W, y);
        cairo_line_to(cr, g->bar_x + BAR_W + 4, y);
        cairo_stroke(cr);
        snprintf(buf, sizeof buf, "%.2f", val);
        rs_text(cr, g->bar_x + BAR_W + 6, y + 3.5, 9, false, 0, buf);
    }
    cairo_set_source_rgb(cr, 0.3, 0.3, 0.3);
    rs_text(cr, MARGIN, g->top + g->panel_h + 18, 9, false, 0, "hatched: n/a (no matched patch)");
}

int rs_render_heatmap_layout(const rs_image_routing *r, const rs_render_context *ctx, rs_patch_metric metric,
                             int view, int layer, rs_heatmap_layout *layout, rs_error *err)
{
    heat_plan p;
    int rc = heat_plan_make(r, ctx, metric, view, layer, &p, err);
    if (rc)
        return rc;
    *layout = p.g;
    free(p.vals);
    return 0;
}

int rs_render_heatmap(const rs_image_routing *r, const rs_render_context *ctx, rs_patch_metric metric, int view,
                      int layer, const char *path, rs_error *err)
{
    heat_plan p;
    int rc = heat_plan_make(r, ctx, metric, view, layer, &p, err);
    if (rc)
        return rc;
    rs_canvas cv;
    if ((rc = rs_canvas_open(&cv, path, p.g.width, p.g.height, err))) {
        free(p.vals);
        return rc;
    }
    draw_titles(cv.cr, &p);
    if (p.g.thumb_x >= 0)
        draw_thumb(cv.cr, r, ctx, &p);
    for (int i = 0; i < p.g.panels; i++)
        draw_panel(cv.cr, r, ctx ? ctx->run : NULL, &p, i);
    draw_colour_bar(cv.cr, &p.g);
    free(p.vals);
    return rs_canvas_close(&cv, err);
}

/* grid.c — the expert-selection grid (see grid.h). */
#include "grid.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attack_plot.h"
#include "stats/patch.h"

enum { MAX_LINES = 24 };

#define MARGIN 16.0
#define TITLE_SIZE 13.0
#define LINE_SIZE 10.0
#define LINE_H 14.0
#define HEAD_SIZE 11.0
#define LABEL_W 78.0
#define SWATCH 14.0 /* a legend swatch's side */

/* Measuring text before the surface exists. */
static cairo_t *scratch_cr(cairo_surface_t **s)
{
    *s = cairo_image_surface_create(CAIRO_FORMAT_ARGB32, 1, 1);
    return cairo_create(*s);
}

/* The noise protocol's σ per severity (ImageNet-C), to title its columns. */
static const double noise_sigma[5] = {0.08, 0.12, 0.18, 0.26, 0.38};

/* The stored number of drawn view V. */
static int view_number(const rs_render_context *ctx, int v)
{
    return ctx && ctx->view_numbers ? ctx->view_numbers[v] : v;
}

/* View V's column head: its severity and σ for a noise view, its name and severity for a
   corruption, its ε for an attacked one, else its stored number. */
static void column_head(const rs_render_context *ctx, int v, char *buf, size_t size)
{
    const rs_run_info *run = ctx ? ctx->run : NULL;
    int sev = 0, n = 0;
    double eps;
    char eps_text[32], name[40];
    const char *spec = run && run->view_specs && v < run->num_views ? run->view_specs[v] : NULL;
    if (spec && sscanf(spec, "noise:severity=%d", &sev) == 1 && sev >= 1 && sev <= 5 && !strchr(spec, '+')) {
        snprintf(buf, size, "\u03c3 = %.2f (severity %d)", noise_sigma[sev - 1], sev);
    } else if (spec && sscanf(spec, "corrupt:name=%39[a-z_],severity=%d%n", name, &sev, &n) == 2 &&
               (!spec[n] || !strncmp(spec + n, ",set=", 5)) && !strchr(spec, '+')) {
        snprintf(buf, size, "%s %d", name, sev);
    } else if (rs_render_view_attacked(run, v, &eps)) {
        rs_render_eps_label(eps, eps_text, sizeof eps_text);
        snprintf(buf, size, "\u03b5 = %s%s", eps_text, v == 0 ? " (reference)" : "");
    } else if (spec && v == 0 && !strcmp(spec, "clean")) {
        snprintf(buf, size, "clean (reference)");
    } else {
        snprintf(buf, size, v == 0 ? "view 0 (reference)" : "view %d", view_number(ctx, v));
    }
}

/* Past this share of changed cells in some panel, changes are marked by a red corner
   instead of a border: a panel of borders reads as a red mesh. */
#define CORNER_SHARE 0.4

#define LEGEND_BORDER "red border: top-1 expert differs from view 0's matched patch (same layer); was N: view 0's expert"
#define LEGEND_CORNER "red corner: top-1 expert differs from view 0's matched patch (corners: many cells changed); " \
                      "was N: view 0's expert"
#define LEGEND_BOX "dashed box on view 0: the patches another view's patches match, where its crop lies " \
                   "(\u2194 flipped: mirrored)"

/* Whether some panel of views 1.. has more than CORNER_SHARE of its matched cells changed. */
static bool many_changes(const rs_image_routing *r)
{
    for (int v = 1; v < r->views; v++) {
        for (int l = 0; l < r->layers; l++) {
            int matched = 0, changed = 0;
            for (int j = 0; j < r->patches; j++) {
                int c = rs_patch_top1_changed(r, v, l, j);
                matched += c >= 0;
                changed += c > 0;
            }
            if (matched && changed > CORNER_SHARE * matched)
                return true;
        }
    }
    return false;
}

/* Where view V lies on view 0: the bounding box (in view 0's patch cells) of the view-0
   patches its patches match, and whether it is mirrored (matched columns run right to
   left). False when V matches view 0 patch for patch (noise) or nowhere. */
static bool view_box(const rs_image_routing *r, int v, int box[4], bool *flipped)
{
    const int16_t *match = r->match + (size_t)v * r->patches;
    int gw = r->grid_w, identity = 1, order = 0;
    box[0] = box[1] = 1 << 20, box[2] = box[3] = -1;
    for (int j = 0; j < r->patches; j++) {
        identity &= match[j] == j;
        if (match[j] < 0)
            continue;
        int c = match[j] % gw, row = match[j] / gw;
        box[0] = c < box[0] ? c : box[0], box[1] = row < box[1] ? row : box[1];
        box[2] = c > box[2] ? c : box[2], box[3] = row > box[3] ? row : box[3];
        if (j % gw + 1 < gw && match[j + 1] >= 0)
            order += (match[j + 1] % gw > c) - (match[j + 1] % gw < c);
    }
    *flipped = order < 0;
    return !identity && box[2] >= 0;
}

/* Dashed outlines on view 0's thumbnail at (PX, PY) of where the other views lie (never
   on the cells, whose fill stays the legend's colour). */
static void draw_view_boxes(cairo_t *cr, const rs_image_routing *r, const rs_grid_layout *g, double px, double py)
{
    double cw = g->panel_w / r->grid_w, ch = g->panel_h / r->grid_h;
    static const double dash[] = {5.0, 3.0};
    for (int v = 1; v < r->views; v++) {
        int b[4];
        bool flipped;
        if (!view_box(r, v, b, &flipped))
            continue;
        double x = px + b[0] * cw, y = py + b[1] * ch, w = (b[2] - b[0] + 1) * cw, h = (b[3] - b[1] + 1) * ch;
        cairo_set_dash(cr, dash, 2, 0);
        cairo_set_line_width(cr, 2.0);
        cairo_set_source_rgb(cr, 1.0, 0.85, 0.1);
        cairo_rectangle(cr, x + 1, y + 1, w - 2, h - 2);
        cairo_stroke(cr);
        cairo_set_dash(cr, NULL, 0, 0);
        char label[48];
        snprintf(label, sizeof label, "view %d%s", v, flipped ? " \u2194 flipped" : "");
        double tw = rs_text_width(cr, 9, true, label);
        cairo_set_source_rgba(cr, 0, 0, 0, 0.7);
        cairo_rectangle(cr, x + 2, y + 2, tw + 6, 13);
        cairo_fill(cr);
        cairo_set_source_rgb(cr, 1.0, 0.85, 0.1);
        rs_text(cr, x + 5, y + 12, 9, true, 0, label);
    }
}

/* Along the bottom of an attacked view's thumbnail at (PX, PY): what it shows is the
   attack's start (rs_render_view_attacked), not the attacked pixels. */
static void label_start_pixels(cairo_t *cr, const rs_grid_layout *g, double px, double py)
{
    double size = 9, w = rs_text_width(cr, size, false, RS_RENDER_START_PIXELS);
    if (w > g->panel_w - 8)
        size *= (g->panel_w - 8) / w;
    cairo_set_source_rgba(cr, 0, 0, 0, 0.7);
    cairo_rectangle(cr, px, py + g->panel_h - size - 6, g->panel_w, size + 6);
    cairo_fill(cr);
    cairo_set_source_rgb(cr, 1, 1, 1);
    rs_text(cr, px + g->panel_w / 2, py + g->panel_h - 4, size, false, 0.5, RS_RENDER_START_PIXELS);
}

/* The marking of a changed cell at (X, Y): a red border (or, with CORNER, a red corner
   triangle), and what view 0's matched patch chose ("was N") along the bottom. */
static void mark_changed(cairo_t *cr, const rs_grid_layout *g, double x, double y, int was, bool corner,
                         const double txt[3])
{
    double w = RS_GRID_CHANGED_WIDTH, c = g->cell;
    cairo_set_source_rgb(cr, RS_GRID_CHANGED_R, RS_GRID_CHANGED_G, RS_GRID_CHANGED_B);
    if (corner) {
        cairo_move_to(cr, x + c, y);
        cairo_line_to(cr, x + c - 0.3 * c, y);
        cairo_line_to(cr, x + c, y + 0.3 * c);
        cairo_close_path(cr);
        cairo_fill(cr);
    } else {
        cairo_set_line_width(cr, w);
        cairo_rectangle(cr, x + w / 2, y + w / 2, c - w, c - w);
        cairo_stroke(cr);
    }
    char buf[24];
    snprintf(buf, sizeof buf, "was %d", was);
    cairo_set_source_rgb(cr, txt[0], txt[1], txt[2]);
    rs_text(cr, x + c / 2, y + c - w - 1.5, c * 0.2, false, 0.5, buf);
}

/* Everything rs_render_grid decides before it draws. */
typedef struct grid_plan {
    rs_grid_layout g;
    char lines[MAX_LINES][320]; /* title, then one line per view */
    int n;                      /* lines used */
    double thumb_top;           /* the thumbnails' row (the column heads sit on it) */
    double legend_top, item_w;  /* the legend and the width of one expert's swatch */
    int per_row, legend_rows;   /* experts per legend row, legend rows */
    bool thumbs, corner, boxes; /* thumbnails; corners instead of borders; crop boxes */
} grid_plan;

/* The title line and one line per view (spec, prediction) into P. */
static void grid_title(const rs_image_routing *r, const rs_render_context *ctx, grid_plan *p)
{
    const rs_run_info *run = ctx ? ctx->run : NULL;
    char cls[96], cls2[96], model[256];
    int n = 0;
    rs_run_model_label(run, model, sizeof model);
    snprintf(p->lines[n++], sizeof p->lines[0], "Top-1 expert per patch — %s, run %lld, image %d (label %s)", model,
             run ? (long long)run->id : 0LL, r->image, rs_render_class_name(ctx, r->label, cls, sizeof cls));
    for (int v = 0; v < r->views && n < MAX_LINES; v++) {
        const char *spec = run && run->view_specs && v < run->num_views ? run->view_specs[v] : "?";
        snprintf(p->lines[n++], sizeof p->lines[0], "view %d%s: %s — predicted %s (p = %.2f)%s", view_number(ctx, v),
                 v == 0 ? " (reference)" : "", spec, rs_render_class_name(ctx, r->predicted[v], cls2, sizeof cls2),
                 r->pred_prob[v], r->label >= 0 ? (r->predicted[v] == r->label ? ", correct" : ", wrong") : "");
    }
    p->n = n;
}

/* The drawing's width: the panels, the title and the legend's lines fit; the width of one
   legend item into P->item_w. */
static double grid_width(const rs_image_routing *r, grid_plan *p)
{
    const rs_grid_layout *g = &p->g;
    cairo_surface_t *ss;
    cairo_t *m = scratch_cr(&ss);
    double width = g->left + r->views * g->panel_w + (r->views - 1) * g->gap_x + MARGIN;
    double title_w = rs_text_width(m, TITLE_SIZE, true, p->lines[0]);
    for (int i = 1; i < p->n; i++)
        title_w = fmax(title_w, rs_text_width(m, LINE_SIZE, false, p->lines[i]));
    width = fmax(width, title_w + 2 * MARGIN);
    width = fmax(width, 420.0);
    /* the legend's lines fit too (a swatch, a gap, the text) */
    for (int i = 0; i < 3; i++) {
        const char *legend[3] = {LEGEND_BORDER, LEGEND_CORNER, LEGEND_BOX};
        width = fmax(width, 2 * MARGIN + 20 + rs_text_width(m, LINE_SIZE, false, legend[i]));
    }
    char buf[64];
    p->item_w = 0;
    for (int e = 0; e < r->experts; e++) {
        snprintf(buf, sizeof buf, "%d", e);
        p->item_w = fmax(p->item_w, SWATCH + 4 + rs_text_width(m, LINE_SIZE, false, buf) + 10);
    }
    cairo_destroy(m);
    cairo_surface_destroy(ss);
    return width;
}

/* Title, cells, thumbnails and legend of R placed into P. */
static void grid_plan_make(const rs_image_routing *r, const rs_render_context *ctx, grid_plan *p)
{
    int gw = r->grid_w, gh = r->grid_h;
    grid_title(r, ctx, p);
    rs_grid_layout *g = &p->g;
    *g = (rs_grid_layout){0};
    g->cell = fmin(36.0, fmax(18.0, 240.0 / (gw > gh ? gw : gh)));
    g->panel_w = gw * g->cell;
    g->panel_h = gh * g->cell;
    g->gap_x = 18;
    g->gap_y = 16;
    g->left = MARGIN + LABEL_W;
    g->top = MARGIN + TITLE_SIZE + 6 + (p->n - 1) * LINE_H + 10 + HEAD_SIZE + 6;
    /* the views' pixels get a row of their own above the cells, so no cell's colour is
       ever mixed with the image */
    p->thumbs = ctx && ctx->pixels;
    p->corner = many_changes(r);
    p->thumb_top = g->top;
    if (p->thumbs)
        g->top += g->panel_h + g->gap_y;
    double width = grid_width(r, p);
    double avail = width - 2 * MARGIN - 50;
    p->per_row = (int)fmax(1, floor(avail / p->item_w));
    p->legend_rows = (r->experts + p->per_row - 1) / p->per_row;
    double grid_bottom = g->top + r->layers * g->panel_h + (r->layers - 1) * g->gap_y;
    p->legend_top = grid_bottom + 18;
    g->width = ceil(width);
    p->boxes = false;
    for (int v = 1; v < r->views; v++) {
        int b[4];
        bool flipped;
        p->boxes = p->boxes || (p->thumbs && view_box(r, v, b, &flipped)); /* on the thumbnail, never on cells */
    }
    g->height = ceil(p->legend_top + p->legend_rows * 18 + 8 + (p->boxes ? 3 : 2) * 18 + MARGIN);
}

static void draw_title(cairo_t *cr, const grid_plan *p)
{
    cairo_set_source_rgb(cr, 0, 0, 0);
    double y = MARGIN + TITLE_SIZE;
    rs_text(cr, MARGIN, y, TITLE_SIZE, true, 0, p->lines[0]);
    y += 6;
    for (int i = 1; i < p->n; i++) {
        y += LINE_H;
        rs_text(cr, MARGIN, y, LINE_SIZE, false, 0, p->lines[i]);
    }
}

/* Column heads, over the thumbnails when there are some. */
static void draw_heads(cairo_t *cr, const rs_image_routing *r, const rs_render_context *ctx, const grid_plan *p)
{
    const rs_run_info *run = ctx ? ctx->run : NULL;
    const rs_grid_layout *g = &p->g;
    char buf[64];
    for (int v = 0; v < r->views; v++) {
        column_head(ctx, v, buf, sizeof buf);
        rs_text(cr, g->left + v * (g->panel_w + g->gap_x) + g->panel_w / 2, p->thumb_top - 7, HEAD_SIZE, true, 0.5,
                buf);
        if (p->thumbs) {
            double px = g->left + v * (g->panel_w + g->gap_x);
            rs_render_view_image(cr, ctx, v, px, p->thumb_top, g->panel_w, g->panel_h, 1.0);
            if (v == 0)
                draw_view_boxes(cr, r, g, px, p->thumb_top);
            if (rs_render_view_attacked(run, v, NULL))
                label_start_pixels(cr, g, px, p->thumb_top);
            cairo_set_source_rgb(cr, 0.3, 0.3, 0.3);
            cairo_set_line_width(cr, 1.0);
            cairo_rectangle(cr, px, p->thumb_top, g->panel_w, g->panel_h);
            cairo_stroke(cr);
        }
    }
    if (p->thumbs) {
        cairo_set_source_rgb(cr, 0, 0, 0);
        rs_text(cr, MARGIN, p->thumb_top + g->panel_h / 2 + 4, HEAD_SIZE, true, 0, "the view");
    }
}

/* The cells of view V, layer L: the top-1 expert's colour and id, hatched grey without a
   match in view 0. */
static void draw_cells(cairo_t *cr, const rs_image_routing *r, const rs_grid_layout *g, int v, int l)
{
    const int16_t *match = r->match + (size_t)v * r->patches;
    char buf[24];
    for (int j = 0; j < r->patches; j++) {
        double x, yy, rgb[3], txt[3];
        rs_grid_cell_xy(g, r->grid_w, v, l, j, &x, &yy);
        int e = rs_image_top1(r, v, l, j);
        rs_palette_expert(e, r->experts, rgb);
        bool unmatched = v > 0 && match[j] < 0;
        cairo_rectangle(cr, x, yy, g->cell, g->cell);
        if (unmatched)
            cairo_set_source_rgb(cr, 0.82, 0.82, 0.82);
        else
            cairo_set_source_rgb(cr, rgb[0], rgb[1], rgb[2]);
        cairo_fill(cr);
        if (unmatched) {
            cairo_set_source_rgb(cr, 0.45, 0.45, 0.45);
            cairo_set_line_width(cr, 1.0);
            rs_hatch(cr, x, yy, g->cell, g->cell, 5);
            txt[0] = txt[1] = txt[2] = 0.25;
        } else {
            rs_palette_text_on(rgb, txt);
        }
        snprintf(buf, sizeof buf, "%d", e);
        cairo_set_source_rgb(cr, txt[0], txt[1], txt[2]);
        double fs = g->cell * 0.42;
        rs_text(cr, x + g->cell / 2, yy + g->cell / 2 + fs * 0.36, fs, true, 0.5, buf);
    }
}

/* One panel at (PX, PY): cells, thin white grid lines, then the changed cells' marks on
   top and a frame. */
static void draw_panel(cairo_t *cr, const rs_image_routing *r, const grid_plan *p, int v, int l, double px, double py)
{
    const rs_grid_layout *g = &p->g;
    draw_cells(cr, r, g, v, l);
    cairo_set_source_rgba(cr, 1, 1, 1, 0.8);
    cairo_set_line_width(cr, 0.75);
    for (int i = 0; i <= r->grid_h; i++) {
        cairo_move_to(cr, px, py + i * g->cell);
        cairo_line_to(cr, px + g->panel_w, py + i * g->cell);
    }
    for (int i = 0; i <= r->grid_w; i++) {
        cairo_move_to(cr, px + i * g->cell, py);
        cairo_line_to(cr, px + i * g->cell, py + g->panel_h);
    }
    cairo_stroke(cr);
    for (int j = 0; v > 0 && j < r->patches; j++) {
        if (rs_patch_top1_changed(r, v, l, j) <= 0)
            continue;
        double x, yy, rgb[3], txt[3];
        rs_grid_cell_xy(g, r->grid_w, v, l, j, &x, &yy);
        rs_palette_expert(rs_image_top1(r, v, l, j), r->experts, rgb);
        rs_palette_text_on(rgb, txt);
        mark_changed(cr, g, x, yy, rs_image_top1(r, 0, l, r->match[(size_t)v * r->patches + j]), p->corner, txt);
    }
    cairo_set_source_rgb(cr, 0.3, 0.3, 0.3);
    cairo_set_line_width(cr, 1.0);
    cairo_rectangle(cr, px, py, g->panel_w, g->panel_h);
    cairo_stroke(cr);
}

/* One row per MoE layer: its label ("block B", the name `--layer B` takes; the MoE slot
   without a run) and a panel per view. */
static void draw_rows(cairo_t *cr, const rs_image_routing *r, const rs_run_info *run, const grid_plan *p)
{
    const rs_grid_layout *g = &p->g;
    char buf[64];
    for (int l = 0; l < r->layers; l++) {
        double py = g->top + l * (g->panel_h + g->gap_y);
        cairo_set_source_rgb(cr, 0, 0, 0);
        if (run && l < run->num_layers && l < 64)
            snprintf(buf, sizeof buf, "block %d", run->layer_blocks[l]);
        else
            snprintf(buf, sizeof buf, "MoE layer %d", l);
        rs_text(cr, MARGIN, py + g->panel_h / 2 + 4, HEAD_SIZE, true, 0, buf);
        for (int v = 0; v < r->views; v++)
            draw_panel(cr, r, p, v, l, g->left + v * (g->panel_w + g->gap_x), py);
    }
}

/* The legend's expert swatches, wrapped P->per_row to a row. */
static void draw_legend_experts(cairo_t *cr, int E, const grid_plan *p)
{
    double y = p->legend_top;
    char buf[24];
    cairo_set_source_rgb(cr, 0, 0, 0);
    rs_text(cr, MARGIN, y + 11, LINE_SIZE, true, 0, "expert");
    for (int e = 0; e < E; e++) {
        double rgb[3], x = MARGIN + 50 + (e % p->per_row) * p->item_w, yy = y + (e / p->per_row) * 18;
        rs_palette_expert(e, E, rgb);
        cairo_set_source_rgb(cr, rgb[0], rgb[1], rgb[2]);
        cairo_rectangle(cr, x, yy, SWATCH, SWATCH);
        cairo_fill(cr);
        cairo_set_source_rgb(cr, 0, 0, 0);
        snprintf(buf, sizeof buf, "%d", e);
        rs_text(cr, x + SWATCH + 4, yy + 11, LINE_SIZE, false, 0, buf);
    }
}

/* The legend's markings under the swatches: changed (border or corner), hatched, and the
   crop boxes when there are some. */
static void draw_legend_marks(cairo_t *cr, const grid_plan *p)
{
    const double sw = SWATCH;
    double y = p->legend_top + p->legend_rows * 18 + 8;
    cairo_set_source_rgb(cr, 1, 1, 1);
    cairo_rectangle(cr, MARGIN, y, sw, sw);
    cairo_fill(cr);
    cairo_set_source_rgb(cr, RS_GRID_CHANGED_R, RS_GRID_CHANGED_G, RS_GRID_CHANGED_B);
    if (p->corner) {
        cairo_move_to(cr, MARGIN + sw, y);
        cairo_line_to(cr, MARGIN + 0.55 * sw, y);
        cairo_line_to(cr, MARGIN + sw, y + 0.45 * sw);
        cairo_close_path(cr);
        cairo_fill(cr);
    } else {
        cairo_set_line_width(cr, 2.5);
        cairo_rectangle(cr, MARGIN + 1.25, y + 1.25, sw - 2.5, sw - 2.5);
        cairo_stroke(cr);
    }
    cairo_set_source_rgb(cr, 0, 0, 0);
    rs_text(cr, MARGIN + sw + 6, y + 11, LINE_SIZE, false, 0, p->corner ? LEGEND_CORNER : LEGEND_BORDER);
    y += 18;
    cairo_set_source_rgb(cr, 0.82, 0.82, 0.82);
    cairo_rectangle(cr, MARGIN, y, sw, sw);
    cairo_fill(cr);
    cairo_set_source_rgb(cr, 0.45, 0.45, 0.45);
    cairo_set_line_width(cr, 1.0);
    rs_hatch(cr, MARGIN, y, sw, sw, 5);
    cairo_set_source_rgb(cr, 0, 0, 0);
    rs_text(cr, MARGIN + sw + 6, y + 11, LINE_SIZE, false, 0, "hatched: patch has no match in view 0 (outside it)");
    if (p->boxes) {
        y += 18;
        static const double dash[] = {4.0, 2.0};
        cairo_set_dash(cr, dash, 2, 0);
        cairo_set_source_rgb(cr, 0.85, 0.65, 0.0);
        cairo_set_line_width(cr, 2.0);
        cairo_rectangle(cr, MARGIN + 1, y + 1, sw - 2, sw - 2);
        cairo_stroke(cr);
        cairo_set_dash(cr, NULL, 0, 0);
        cairo_set_source_rgb(cr, 0, 0, 0);
        rs_text(cr, MARGIN + sw + 6, y + 11, LINE_SIZE, false, 0, LEGEND_BOX);
    }
}

int rs_render_grid(const rs_image_routing *r, const rs_render_context *ctx, const char *path,
                   rs_grid_layout *layout, rs_error *err)
{
    if (!r || r->views < 1 || r->layers < 1 || r->grid_w < 1 || r->grid_h < 1 || r->patches != r->grid_w * r->grid_h)
        return rs_error_set(err, RS_EINVAL, "%s: nothing to draw (empty or inconsistent routing)", path);
    grid_plan p;
    grid_plan_make(r, ctx, &p);
    rs_canvas cv;
    int rc = rs_canvas_open(&cv, path, p.g.width, p.g.height, err);
    if (rc)
        return rc;
    p.g.scale = cv.scale;
    draw_title(cv.cr, &p);
    draw_heads(cv.cr, r, ctx, &p);
    draw_rows(cv.cr, r, ctx ? ctx->run : NULL, &p);
    draw_legend_experts(cv.cr, r->experts, &p);
    draw_legend_marks(cv.cr, &p);
    if (layout)
        *layout = p.g;
    return rs_canvas_close(&cv, err);
}

/* Whether SPEC names severity 3 (the middle of the five). */
static bool middle_severity(const char *spec)
{
    const char *at = strstr(spec, "severity=3");
    return at && (at[10] == '\0' || at[10] == ',' || at[10] == '+');
}

int rs_render_grid_views(const rs_run_info *run, int views[RS_GRID_MAX_VIEWS], bool *by_severity)
{
    if (by_severity)
        *by_severity = false;
    int V = run->num_views, n = 0;
    if (V <= RS_GRID_MAX_VIEWS) {
        for (; n < V; n++)
            views[n] = n;
        return n;
    }
    int middle = 0;
    for (int v = 1; v < V; v++)
        middle += middle_severity(run->view_specs[v]);
    if (middle >= 1 && middle < RS_GRID_MAX_VIEWS) {
        views[n++] = 0;
        for (int v = 1; v < V; v++)
            if (middle_severity(run->view_specs[v]))
                views[n++] = v;
        if (by_severity)
            *by_severity = true;
        return n;
    }
    /* no severities to go by: evenly spaced views, the last included */
    for (n = 0; n < RS_GRID_MAX_VIEWS; n++)
        views[n] = (int)((long)n * (V - 1) / (RS_GRID_MAX_VIEWS - 1));
    return n;
}

/* attack_plot.c — curves against ε, min-ε maps and histograms, the objective's convergence
 * (see attack_plot.h). */
#include "attack_plot.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "axes.h"

#define MARGIN RS_FIGURE_MARGIN

void rs_render_eps_label(double e, char *buf, size_t size)
{
    double n = e * 255;
    if (isinf(e))
        snprintf(buf, size, "never");
    else if (e == 0)
        snprintf(buf, size, "0");
    else if (fabs(n - round(n)) < 1e-6)
        snprintf(buf, size, "%.0f/255", round(n));
    else
        snprintf(buf, size, "%.3g", e);
}

/* Hue = training method; every k in the family's full tone (lightness is left for seeds). */
static void method_colour(const rs_run_info *run, double rgb[3])
{
    rs_palette_method(rs_run_method(run), 0, rgb);
}

static void run_label(const rs_run_info *run, char *buf, size_t size)
{
    char model[256];
    rs_run_model_label(run, model, sizeof model);
    snprintf(buf, size, "%s \u00b7 run %lld \u00b7 %.120s \u00b7 k=%d \u00b7 %d images",
             rs_method_name(rs_run_method(run)), (long long)run->id, model, run->top_k,
             run->images_done);
}

/* A vertical axis title, centred on the area AX, left of it. */
static void y_title(cairo_t *cr, const rs_axes *ax, double x, const char *text)
{
    cairo_save(cr);
    cairo_translate(cr, x, ax->y + ax->h / 2);
    cairo_rotate(cr, -M_PI / 2);
    rs_text(cr, 0, 0, 9, false, 0.5, text);
    cairo_restore(cr);
}

/* A width that holds the 10 pt subtitle SUB (about 5.3 units per character; bytes
 * over-count the few non-ASCII ones, which only widens the figure a little). */
static double sub_width(const char *sub)
{
    return 2 * MARGIN + 5.3 * (double)strlen(sub);
}

/* ---- curves -------------------------------------------------------------------------------- */

/* One slot per ε of the grid, evenly spaced (grids are roughly geometric: 1, 2, 4, 8/255). */
static double curve_x(const rs_axes *ax, const rs_attack_stats *as, int v)
{
    return ax->x + ax->w * (v + 0.5) / as->views;
}

static bool curve_point(const rs_attack_stats *as, int v, int m, double *val, double *lo, double *hi)
{
    const rs_stats_rate *r = &as->curve[v * RS_ATTACK_NUM_CURVES + m];
    *val = r->value;
    *lo = r->boot_valid ? r->boot_lo : r->wilson_lo;
    *hi = r->boot_valid ? r->boot_hi : r->wilson_hi;
    return r->valid;
}

static void curve_series(cairo_t *cr, const rs_axes *ax, const rs_attack_stats *as, const rs_run_info *run, int m)
{
    double rgb[3], val, lo, hi;
    method_colour(run, rgb);
    bool open = false;
    for (int v = 0; v < as->views; v++)
        if (curve_point(as, v, m, &val, &lo, &hi)) {
            (open ? cairo_line_to : cairo_move_to)(cr, curve_x(ax, as, v), rs_axes_y(ax, hi));
            open = true;
        }
    for (int v = as->views - 1; v >= 0 && open; v--)
        if (curve_point(as, v, m, &val, &lo, &hi))
            cairo_line_to(cr, curve_x(ax, as, v), rs_axes_y(ax, lo));
    if (open) {
        cairo_close_path(cr);
        cairo_set_source_rgba(cr, rgb[0], rgb[1], rgb[2], 0.18);
        cairo_fill(cr);
    }
    cairo_set_source_rgb(cr, rgb[0], rgb[1], rgb[2]);
    cairo_set_line_width(cr, 1.8);
    rs_axes_k_dash(cr, run->top_k);
    open = false;
    for (int v = 0; v < as->views; v++)
        if (curve_point(as, v, m, &val, &lo, &hi)) {
            (open ? cairo_line_to : cairo_move_to)(cr, curve_x(ax, as, v), rs_axes_y(ax, val));
            open = true;
        }
    cairo_stroke(cr);
    cairo_set_dash(cr, NULL, 0, 0);
    for (int v = 0; v < as->views; v++)
        if (curve_point(as, v, m, &val, &lo, &hi)) {
            cairo_arc(cr, curve_x(ax, as, v), rs_axes_y(ax, val), 2.5, 0, 2 * M_PI);
            cairo_fill(cr);
        }
}

/* The floor of a panel: the lowest interval end rounded down to a tenth, at most 0.9. */
static double curve_floor(const rs_attack_stats *const *as, int n, int m)
{
    double ylo = 1;
    for (int i = 0; i < n; i++)
        for (int v = 0; v < as[i]->views; v++) {
            double val, lo, hi;
            if (curve_point(as[i], v, m, &val, &lo, &hi))
                ylo = fmin(ylo, fmin(lo, val));
        }
    ylo = fmax(0, floor(ylo * 10 - 1e-9) / 10);
    return ylo > 0.9 ? 0.9 : ylo;
}

static void curve_panel(cairo_t *cr, rs_axes ax, const rs_attack_stats *const *as, const rs_run_info *const *runs,
                        int n, int m)
{
    static const char *const titles[RS_ATTACK_NUM_CURVES] = {
        "Top-1 agreement with view 0", "Top-2 agreement with view 0", "Top-2 (order-agnostic) agreement",
        "Accuracy"};
    ax.lo = curve_floor(as, n, m), ax.hi = 1;
    cairo_set_source_rgb(cr, 0, 0, 0);
    rs_text(cr, ax.x, ax.y - 8, 10.5, true, 0, titles[m]);
    int nt = (int)lround((1 - ax.lo) * 10);
    rs_axes_ticks(cr, &ax, &(rs_ticks){.step = 0.1, .count = nt, .grid = 0.88, .label_every = nt <= 5 ? 1 : 2,
                                       .fmt = "%.1f", .size = 8.5, .grey = 0, .dx = 5, .dy = 3});
    rs_axes_lines(cr, &ax, true);
    y_title(cr, &ax, ax.x - 34, m == RS_ATTACK_ACCURACY ? "share of images" : "share of patch pairs");
    char buf[32];
    cairo_set_source_rgb(cr, 0, 0, 0);
    for (int v = 0; v < as[0]->views; v++) {
        rs_render_eps_label(as[0]->eps[v], buf, sizeof buf);
        rs_text(cr, curve_x(&ax, as[0], v), ax.y + ax.h + 12, 7.5, false, 0.5, buf);
    }
    rs_text(cr, ax.x + ax.w / 2, ax.y + ax.h + 26, 9, false, 0.5,
            "\u03b5 (L\u221e budget in [0,1] pixel units; one slot per \u03b5 of the grid)");
    for (int i = 0; i < n; i++)
        curve_series(cr, &ax, as[i], runs[i], m);
}

static int same_grid(const rs_attack_stats *const *as, const rs_run_info *const *runs, int n, rs_error *err)
{
    for (int i = 1; i < n; i++) {
        bool same = as[i]->views == as[0]->views;
        for (int v = 0; same && v < as[0]->views; v++)
            same = fabs(as[i]->eps[v] - as[0]->eps[v]) < 1e-9;
        if (!same)
            return rs_error_set(err, RS_EINVAL, "attack curves: runs %lld and %lld have different \u03b5 grids: draw "
                                "them apart", (long long)runs[0]->id, (long long)runs[i]->id);
    }
    return 0;
}

int rs_render_attack_curves(const rs_attack_stats *const *as, const rs_run_info *const *runs, int num_runs,
                            const char *path, rs_error *err)
{
    if (num_runs < 1)
        return rs_error_set(err, RS_EINVAL, "attack curves: no runs");
    int rc = same_grid(as, runs, num_runs, err);
    if (rc)
        return rc;
    const double pw = 300, ph = 170, left = MARGIN + 52, colw = pw + 70, rowh = ph + 64, top = MARGIN + 62;
    double width = left + 2 * colw, height = top + 2 * rowh + 16.0 * num_runs + MARGIN;
    rs_canvas cv;
    rc = rs_figure_open(&cv, path, width, height, "Routing and accuracy under attack",
                        "agreement with the unattacked view 0 (MoE layers pooled) and accuracy against \u03b5; "
                        "bands: 95 % bootstrap over images", err);
    if (rc)
        return rc;
    for (int m = 0; m < RS_ATTACK_NUM_CURVES; m++)
        curve_panel(cv.cr, (rs_axes){.x = left + (m % 2) * colw, .y = top + (m / 2) * rowh, .w = pw, .h = ph},
                    as, runs, num_runs, m);
    char buf[512];
    for (int i = 0; i < num_runs; i++) {
        double rgb[3], ly = top + 2 * rowh - 16 + 16.0 * i;
        method_colour(runs[i], rgb);
        cairo_set_source_rgb(cv.cr, rgb[0], rgb[1], rgb[2]);
        cairo_set_line_width(cv.cr, 1.8);
        rs_axes_k_dash(cv.cr, runs[i]->top_k);
        cairo_move_to(cv.cr, left, ly - 3);
        cairo_line_to(cv.cr, left + 28, ly - 3);
        cairo_stroke(cv.cr);
        cairo_set_dash(cv.cr, NULL, 0, 0);
        cairo_set_source_rgb(cv.cr, 0, 0, 0);
        run_label(runs[i], buf, sizeof buf);
        rs_text(cv.cr, left + 34, ly, 9, false, 0, buf);
    }
    return rs_canvas_close(&cv, err);
}

/* ---- min-ε map ------------------------------------------------------------------------------ */

/* Colour of a min-ε value: viridis by its place on the grid (grids are roughly geometric,
 * so places separate the small ε that a linear scale would merge). */
static void eps_colour(const rs_attack_stats *as, double e, double rgb[3])
{
    int v = 1;
    while (v < as->views - 1 && as->eps[v] < e - 1e-12)
        v++;
    rs_palette_viridis(as->views > 2 ? (double)(v - 1) / (as->views - 2) : 1, rgb);
}

static void min_eps_panel(cairo_t *cr, const rs_attack_stats *as, const double *val, double x, double y, double cell)
{
    char buf[32];
    for (int j = 0; j < as->patches; j++) {
        double cx = x + (j % as->grid_w) * cell, cy = y + (j / as->grid_w) * cell, rgb[3], ink[3];
        if (isinf(val[j])) {
            cairo_set_source_rgb(cr, 0.9, 0.9, 0.9);
            cairo_rectangle(cr, cx, cy, cell, cell);
            cairo_fill(cr);
            cairo_set_source_rgb(cr, 0.6, 0.6, 0.6);
            rs_hatch(cr, cx, cy, cell, cell, 5);
            ink[0] = ink[1] = ink[2] = 0.2;
        } else {
            eps_colour(as, val[j], rgb);
            cairo_set_source_rgb(cr, rgb[0], rgb[1], rgb[2]);
            cairo_rectangle(cr, cx, cy, cell, cell);
            cairo_fill(cr);
            rs_palette_text_on(rgb, ink);
        }
        cairo_set_source_rgb(cr, ink[0], ink[1], ink[2]);
        rs_render_eps_label(val[j], buf, sizeof buf);
        if (!isinf(val[j]) && fabs(val[j] * 255 - round(val[j] * 255)) < 1e-6)
            snprintf(buf, sizeof buf, "%.0f", round(val[j] * 255)); /* cells are small: the /255 is in the legend */
        rs_text(cr, cx + cell / 2, cy + cell / 2 + 3, 7, false, 0.5, isinf(val[j]) ? "\u221e" : buf);
    }
    cairo_set_source_rgb(cr, 0, 0, 0);
    cairo_set_line_width(cr, 1);
    cairo_rectangle(cr, x, y, cell * as->grid_w, cell * as->grid_h);
    cairo_stroke(cr);
}

/* The key: a swatch per ε of the grid and one for never. */
static void min_eps_key(cairo_t *cr, const rs_attack_stats *as, double x, double y)
{
    char buf[32];
    rs_text(cr, x, y, 9, true, 0, "min-\u03b5");
    for (int v = 1; v <= as->views; v++) {
        double yy = y + 8 + 15.0 * (v - 1), rgb[3];
        if (v < as->views) {
            eps_colour(as, as->eps[v], rgb);
            cairo_set_source_rgb(cr, rgb[0], rgb[1], rgb[2]);
            cairo_rectangle(cr, x, yy, 12, 12);
            cairo_fill(cr);
            rs_render_eps_label(as->eps[v], buf, sizeof buf);
        } else {
            cairo_set_source_rgb(cr, 0.9, 0.9, 0.9);
            cairo_rectangle(cr, x, yy, 12, 12);
            cairo_fill(cr);
            cairo_set_source_rgb(cr, 0.6, 0.6, 0.6);
            rs_hatch(cr, x, yy, 12, 12, 4);
            snprintf(buf, sizeof buf, "never (\u221e)");
        }
        cairo_set_source_rgb(cr, 0, 0, 0);
        rs_text(cr, x + 17, yy + 10, 8.5, false, 0, buf);
    }
}

int rs_render_min_eps_map(const rs_attack_stats *as, const rs_run_info *run, int image, int layer, const char *path,
                          rs_error *err)
{
    if (layer >= as->layers || image >= as->images || as->grid_w < 1 || as->grid_h < 1 ||
        as->grid_w * as->grid_h != as->patches)
        return rs_error_set(err, RS_EINVAL, "min-\u03b5 map of run %lld: layer %d or image %d out of range (%d MoE "
                            "layers, %d images)", (long long)run->id, layer, image, as->layers, as->images);
    const int l0 = layer < 0 ? 0 : layer, nl = layer < 0 ? as->layers : 1;
    const double cell = 26, pw = cell * as->grid_w, ph = cell * as->grid_h, top = MARGIN + 56;
    double width = MARGIN + nl * (pw + 18) + 120, height = fmax(top + ph + MARGIN + 10, top + 15.0 * as->views + 30);
    width = fmax(width, 430);
    char title[160], sub[400], model[256];
    rs_run_model_label(run, model, sizeof model);
    if (image < 0)
        snprintf(title, sizeof title, "Min-\u03b5 per patch: median over %d images", as->images);
    else
        snprintf(title, sizeof title, "Min-\u03b5 per patch: image %d", as->first_image + image);
    snprintf(sub, sizeof sub, "run %lld \u00b7 %.120s (k=%d): smallest \u03b5 at which the top-1 expert changes "
             "(cells in 1/255)", (long long)run->id, model, run->top_k);
    width = fmax(width, sub_width(sub));
    rs_canvas cv;
    int rc = rs_figure_open(&cv, path, width, height, title, sub, err);
    if (rc)
        return rc;
    double *val = malloc(sizeof *val * (size_t)as->patches);
    if (!val) {
        rs_canvas_discard(&cv);
        return rs_error_set(err, RS_ENOMEM, "out of memory");
    }
    for (int i = 0; i < nl; i++) {
        int l = l0 + i;
        double x = MARGIN + i * (pw + 18);
        char head[64];
        snprintf(head, sizeof head, "block %d", run->layer_blocks[l]);
        rs_text(cv.cr, x + pw / 2, top - 6, 9.5, true, 0.5, head);
        rs_attack_min_eps(as, image, l, val);
        min_eps_panel(cv.cr, as, val, x, top, cell);
    }
    free(val);
    min_eps_key(cv.cr, as, MARGIN + nl * (pw + 18) + 6, top - 6);
    return rs_canvas_close(&cv, err);
}

/* ---- min-ε histogram ------------------------------------------------------------------------ */

int rs_render_min_eps_hist(const rs_attack_stats *as, const rs_run_info *run, const char *path, rs_error *err)
{
    const int V = as->views, L = as->layers;
    const double total = (double)as->images * as->patches;
    if (!(total > 0))
        return rs_error_set(err, RS_EINVAL, "min-\u03b5 histogram of run %lld: no images", (long long)run->id);
    double most = 0;
    for (int l = 0; l < L; l++)
        for (int v = 0; v < V; v++)
            most = fmax(most, 100 * (double)as->hist[(size_t)l * V + v] / total);
    const double bw = 12, gw = L * bw + 14, pw = fmax(300, gw * V), ph = 200, left = MARGIN + 50, top = MARGIN + 46;
    double width = left + pw + MARGIN + 10, height = top + ph + 50 + 15.0 * L + MARGIN;
    char sub[400], model[256], buf[64];
    rs_run_model_label(run, model, sizeof model);
    snprintf(sub, sizeof sub, "run %lld \u00b7 %.120s (k=%d) \u00b7 %d images \u00b7 %d patches each", (long long)run->id,
             model, run->top_k, as->images, as->patches);
    width = fmax(width, sub_width(sub));
    rs_canvas cv;
    int rc = rs_figure_open(&cv, path, width, height, "Min-\u03b5 per patch: how far the input must move", sub, err);
    if (rc)
        return rc;
    cairo_t *cr = cv.cr;
    rs_axes ax = {.x = left, .y = top, .w = pw, .h = ph, .lo = 0, .hi = rs_axes_nice_max(most)};
    rs_axes_ticks(cr, &ax, &(rs_ticks){.step = ax.hi / 5, .count = 5, .grid = 0.88, .label_every = 1, .fmt = "%g",
                                       .size = 8.5, .grey = 0, .dx = 5, .dy = 3});
    for (int g = 0; g < V; g++) {
        int v = g + 1 < V ? g + 1 : 0; /* the grid's ε in order, never last */
        double gx = ax.x + g * (pw / V) + (pw / V - L * bw) / 2;
        for (int l = 0; l < L; l++) {
            double rgb[3], share = 100 * (double)as->hist[(size_t)l * V + v] / total;
            rs_palette_series(l, L, rgb);
            cairo_set_source_rgb(cr, rgb[0], rgb[1], rgb[2]);
            cairo_rectangle(cr, gx + l * bw, rs_axes_y(&ax, share), bw - 1, rs_axes_y(&ax, 0) - rs_axes_y(&ax, share));
            cairo_fill(cr);
        }
        cairo_set_source_rgb(cr, 0, 0, 0);
        rs_render_eps_label(v ? as->eps[v] : INFINITY, buf, sizeof buf);
        rs_text(cr, ax.x + (g + 0.5) * (pw / V), ax.y + ph + 13, 8.5, false, 0.5, buf);
    }
    rs_axes_lines(cr, &ax, false);
    y_title(cr, &ax, MARGIN + 8, "share of patches (%)");
    rs_text(cr, ax.x + pw / 2, ax.y + ph + 30, 9, false, 0.5,
            "smallest \u03b5 on the run's grid at which the patch's top-1 expert changes");
    for (int l = 0; l < L; l++) {
        double rgb[3], ly = ax.y + ph + 46 + 15.0 * l;
        rs_palette_series(l, L, rgb);
        cairo_set_source_rgb(cr, rgb[0], rgb[1], rgb[2]);
        cairo_rectangle(cr, left, ly - 9, 10, 10);
        cairo_fill(cr);
        cairo_set_source_rgb(cr, 0, 0, 0);
        snprintf(buf, sizeof buf, "block %d", run->layer_blocks[l]);
        rs_text(cr, left + 15, ly, 9, false, 0, buf);
    }
    return rs_canvas_close(&cv, err);
}

/* ---- objective ------------------------------------------------------------------------------ */

/* A round step for about five ticks over SPAN, and the range [*LO, *HI] widened to it. */
static double round_range(double *lo, double *hi)
{
    if (!(*hi > *lo))
        *lo -= 0.5, *hi += 0.5;
    double step = rs_axes_nice_max((*hi - *lo) / 5);
    *lo = floor(*lo / step) * step;
    *hi = ceil(*hi / step) * step;
    return step;
}

static void objective_line(cairo_t *cr, const rs_axes *ax, const double *row, int steps)
{
    bool open = false;
    for (int s = 0; s <= steps; s++) {
        if (isnan(row[s]))
            continue;
        (open ? cairo_line_to : cairo_move_to)(cr, ax->x + ax->w * s / steps, rs_axes_y(ax, row[s]));
        open = true;
    }
    cairo_stroke(cr);
}

int rs_render_attack_objective(const double *mean, int steps, const rs_attack_stats *as, const rs_run_info *run,
                               const char *path, rs_error *err)
{
    double lo = INFINITY, hi = -INFINITY;
    for (size_t q = (size_t)(steps + 1); mean && steps > 0 && q < (size_t)as->views * (steps + 1); q++)
        if (!isnan(mean[q]))
            lo = fmin(lo, mean[q]), hi = fmax(hi, mean[q]);
    if (!(hi >= lo))
        return rs_error_set(err, RS_EINVAL, "run %lld has no recorded attack objective", (long long)run->id);
    double step = round_range(&lo, &hi);
    const double pw = 360, ph = 200, left = MARGIN + 56, top = MARGIN + 46;
    double width = left + pw + 130, height = top + ph + 40 + MARGIN;
    char sub[400], model[256], buf[64];
    rs_run_model_label(run, model, sizeof model);
    snprintf(sub, sizeof sub, "run %lld \u00b7 %.120s (k=%d): mean over images per step", (long long)run->id, model,
             run->top_k);
    rs_canvas cv;
    int rc = rs_figure_open(&cv, path, width, height, "Attack objective per PGD step", sub, err);
    if (rc)
        return rc;
    cairo_t *cr = cv.cr;
    rs_axes ax = {.x = left, .y = top, .w = pw, .h = ph, .lo = lo, .hi = hi};
    int nt = (int)lround((hi - lo) / step);
    rs_axes_ticks(cr, &ax, &(rs_ticks){.step = step, .count = nt, .grid = 0.88, .label_every = 1, .fmt = "%g",
                                       .size = 8.5, .grey = 0, .dx = 5, .dy = 3});
    rs_axes_lines(cr, &ax, true);
    y_title(cr, &ax, MARGIN + 8, "objective (maximised)");
    int tick = (int)rs_axes_nice_max(steps / 5.0);
    for (int s = 0; s <= steps; s += tick > 0 ? tick : 1) {
        snprintf(buf, sizeof buf, "%d", s);
        rs_text(cr, ax.x + pw * s / steps, ax.y + ph + 12, 8.5, false, 0.5, buf);
    }
    rs_text(cr, ax.x + pw / 2, ax.y + ph + 27, 9, false, 0.5, "step (0: the start)");
    cairo_set_line_width(cr, 1.6);
    for (int v = 1; v < as->views; v++) {
        double rgb[3], ly = top + 8 + 15.0 * (v - 1);
        rs_palette_viridis(as->views > 2 ? (double)(v - 1) / (as->views - 2) * 0.9 : 0.5, rgb);
        cairo_set_source_rgb(cr, rgb[0], rgb[1], rgb[2]);
        objective_line(cr, &ax, mean + (size_t)v * (steps + 1), steps);
        cairo_move_to(cr, left + pw + 12, ly - 3);
        cairo_line_to(cr, left + pw + 32, ly - 3);
        cairo_stroke(cr);
        cairo_set_source_rgb(cr, 0, 0, 0);
        char e[32];
        rs_render_eps_label(as->eps[v], e, sizeof e);
        snprintf(buf, sizeof buf, "\u03b5 = %s", e);
        rs_text(cr, left + pw + 36, ly, 8.5, false, 0, buf);
    }
    return rs_canvas_close(&cv, err);
}

/* groups_plot.c — headline figures of groups of runs, seed by seed (groups_plot.h). */
#include "groups_plot.h"

#include <math.h>
#include <stdio.h>

#include "axes.h"
#include "store/run.h"

#define MARGIN RS_FIGURE_MARGIN
#define PANEL_H 220.0
#define SLOT_W 64.0
#define ROW_GAP 50.0 /* group names below a panel, the next row's panel titles */
#define LEFT (MARGIN + 44)
#define GAP 36.0

/* The shared y range: the values' span padded by 2 points, on multiples of 5 %. */
static bool value_range(const rs_groups *g, double *lo, double *hi)
{
    double mn = 1, mx = 0;
    int n = g->num_groups * g->seeds * RS_GROUP_NUM_FIGURES;
    for (int q = 0; q < n; q++)
        if (g->has[q])
            mn = fmin(mn, g->value[q]), mx = fmax(mx, g->value[q]);
    if (mn > mx)
        return false;
    *lo = fmax(0, floor((mn - 0.02) * 20) / 20);
    *hi = fmin(1, ceil((mx + 0.02) * 20) / 20);
    if (*hi - *lo < 0.1)
        *hi = fmin(1, *lo + 0.1), *lo = *hi - 0.1;
    return true;
}

/* Marker of a run of top-k K at (X, Y), outlined: the lightest seeds' shades fade into the white. */
static void marker(cairo_t *cr, int k, double x, double y)
{
    rs_axes_k_marker(cr, k, x, y, 3.6);
    cairo_fill_preserve(cr);
    cairo_set_source_rgb(cr, 0.15, 0.15, 0.15);
    cairo_set_line_width(cr, 0.6);
    cairo_stroke(cr);
}

/* The shade of seed I of N: the first darkest, the last at 0.7 of the way to the light end. */
static double seed_shade(int i, int n)
{
    return n > 1 ? 0.7 * i / (n - 1) : 0;
}

/* Panel of figure F with its axes AX: points per seed and the mean bar per group. */
static void panel(cairo_t *cr, const rs_groups *g, int f, const rs_axes *ax)
{
    for (int gr = 0; gr < g->num_groups; gr++) {
        const rs_run_info *r0 = &g->info[rs_groups_at(g, gr, 0)];
        rs_method m = rs_run_method(r0);
        double cx = ax->x + SLOT_W * (gr + 0.5), rgb[3];
        int n = g->size[gr];
        for (int i = 0; i < n; i++) {
            int q = rs_groups_fig(g, gr, i, f);
            if (!g->has[q])
                continue;
            double dx = n > 1 ? (i - (n - 1) / 2.0) * fmin(8, 36.0 / n) : 0;
            rs_palette_method(m, seed_shade(i, g->seeds), rgb);
            cairo_set_source_rgb(cr, rgb[0], rgb[1], rgb[2]);
            marker(cr, g->info[rs_groups_at(g, gr, i)].top_k, cx + dx, rs_axes_y(ax, g->value[q]));
        }
        const rs_group_summary *s = &g->summary[gr * RS_GROUP_NUM_FIGURES + f];
        if (!s->valid)
            continue;
        rs_palette_method(m, 0, rgb);
        cairo_set_source_rgb(cr, rgb[0], rgb[1], rgb[2]);
        cairo_set_line_width(cr, 2.5);
        cairo_move_to(cr, cx - SLOT_W * 0.36, rs_axes_y(ax, s->mean));
        cairo_line_to(cr, cx + SLOT_W * 0.36, rs_axes_y(ax, s->mean));
        cairo_stroke(cr);
        cairo_set_source_rgb(cr, 0, 0, 0);
        rs_text(cr, cx, ax->y + ax->h + 13, 9, false, 0.5, g->names[gr]);
    }
    rs_text(cr, ax->x + ax->w / 2, ax->y - 6, 10, true, 0.5, rs_groups_figure_name(f));
}

void rs_render_groups_layout(int num_groups, int *cols, int *rows)
{
    double pw = SLOT_W * num_groups;
    int c = (int)floor((RS_GROUPS_FIGURE_MAX_WIDTH - LEFT - MARGIN + GAP) / (pw + GAP));
    *cols = c < 1 ? 1 : c > RS_GROUP_NUM_FIGURES ? RS_GROUP_NUM_FIGURES : c;
    *rows = (RS_GROUP_NUM_FIGURES + *cols - 1) / *cols;
    *cols = (RS_GROUP_NUM_FIGURES + *rows - 1) / *rows; /* balanced: 3 + 2, not 4 + 1 */
}

int rs_render_groups(const rs_groups *g, const char *path, rs_error *err)
{
    double lo, hi;
    if (!g || !value_range(g, &lo, &hi))
        return rs_error_set(err, RS_EINVAL, "groups figure: no group has a figure to draw");
    double pw = SLOT_W * g->num_groups, left = LEFT, top = MARGIN + 13 + 8 + 14 + 20, gap = GAP;
    int cols, rows;
    rs_render_groups_layout(g->num_groups, &cols, &rows);
    double width = fmax(left + cols * (pw + gap) + MARGIN, 560);
    double height = top + rows * PANEL_H + (rows - 1) * ROW_GAP + 24 + 34 + MARGIN;
    char sub[200];
    bool unequal = false;
    for (int gr = 1; gr < g->num_groups; gr++)
        unequal |= g->size[gr] != g->seeds;
    snprintf(sub, sizeof sub, "%d group%s of %s%d seed%s: one point per run (lighter: later seed; marker: k), bar: "
             "mean over seeds", g->num_groups, g->num_groups == 1 ? "" : "s", unequal ? "up to " : "", g->seeds,
             g->seeds == 1 ? "" : "s");
    rs_canvas cv;
    int rc = rs_figure_open(&cv, path, width, height, "Headline figures per group of seeds", sub, err);
    if (rc)
        return rc;
    cairo_t *cr = cv.cr;
    int nt = (int)lround((hi - lo) * 20);
    for (int f = 0; f < RS_GROUP_NUM_FIGURES; f++) {
        rs_axes ax = {.x = left + f % cols * (pw + gap), .y = top + f / cols * (PANEL_H + ROW_GAP), .w = pw,
                      .h = PANEL_H, .lo = lo, .hi = hi};
        rs_axes_ticks(cr, &ax, &(rs_ticks){.step = 0.05, .count = nt, .grid = 0.88,
                                           .label_every = nt <= 8 ? 1 : 2, .fmt = "%.2f", .size = 8.5,
                                           .grey = 0, .dx = 4, .dy = 3});
        rs_axes_lines(cr, &ax, true);
        panel(cr, g, f, &ax);
    }
    /* the legend of markers: k */
    double ly = top + rows * PANEL_H + (rows - 1) * ROW_GAP + 40, rgb[3] = {0.6, 0.6, 0.6};
    static const char *const ks[3] = {"k = 1", "k = 2", "k \u2265 3"};
    for (int k = 1; k <= 3; k++) {
        cairo_set_source_rgb(cr, rgb[0], rgb[1], rgb[2]);
        marker(cr, k, left + (k - 1) * 70 + 4, ly - 3.5);
        cairo_set_source_rgb(cr, 0, 0, 0);
        rs_text(cr, left + (k - 1) * 70 + 12, ly, 9, false, 0, ks[k - 1]);
    }
    return rs_canvas_close(&cv, err);
}

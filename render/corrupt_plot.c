/* corrupt_plot.c — heatmap and severity curves of groups of corruptions runs (corrupt_plot.h). */
#include "corrupt_plot.h"

#include <math.h>
#include <stdio.h>

#include "axes.h"
#include "input/corrupt.h"
#include "store/run.h"

#define MARGIN RS_FIGURE_MARGIN
#define CELL_W 92.0
#define CELL_H 20.0
#define LABEL_W 130.0
#define PANEL_W 190.0
#define PANEL_H 170.0

static const char *const figure_names[RS_CSTAT_NUM_FIGURES] = {"Top-1", "Top-2", "Top-2 order-agnostic",
                                                                "accuracy"};

/* The difference D in [-HI, HI] as a colour: blue (-) through white to orange (+). */
static void diverging(double d, double hi, double rgb[3])
{
    double t = fmax(-1, fmin(1, d / hi));
    const double neg[3] = {0.20, 0.40, 0.75}, pos[3] = {0.90, 0.45, 0.10};
    const double *end = t < 0 ? neg : pos;
    for (int q = 0; q < 3; q++)
        rgb[q] = 1 + fabs(t) * (end[q] - 1);
}

static const rs_t_interval *corruption_diff(const rs_corrupt_groups *cg, int gr, int c, int figure)
{
    return &cg->diff[((size_t)gr * cg->rows + rs_cstat_corruption(&cg->grid, c)) * RS_CSTAT_NUM_FIGURES + figure];
}

int rs_render_corrupt_heatmap(const rs_groups *g, const rs_corrupt_groups *cg, int figure, const char *path,
                              rs_error *err)
{
    const rs_corrupt_grid *gd = &cg->grid;
    if (cg->num_groups < 2 || gd->corruptions < 1)
        return rs_error_set(err, RS_EINVAL, "corruption heatmap: it needs two groups and a corruption");
    double hi = 0;
    for (int gr = 1; gr < cg->num_groups; gr++)
        for (int c = 0; c < gd->corruptions; c++) {
            const rs_t_interval *d = corruption_diff(cg, gr, c, figure);
            if (d->n > 0)
                hi = fmax(hi, fabs(d->mean) * 100);
        }
    hi = fmax(1, ceil(hi));
    const double top = MARGIN + 13 + 8 + 14 + 30, left = MARGIN + LABEL_W;
    double width = fmax(left + CELL_W * (cg->num_groups - 1) + MARGIN, 640); /* room for the subtitle */
    double height = top + CELL_H * gd->corruptions + 40 + MARGIN;
    char title[96], sub[200], buf[32];
    snprintf(title, sizeof title, "%s under corruptions: each method \u2212 %s", figure_names[figure], g->names[0]);
    snprintf(sub, sizeof sub, "points, mean over seeds of the per-seed difference of each corruption's mean over "
             "severities; scale \u00b1%.0f", hi);
    rs_canvas cv;
    int rc = rs_figure_open(&cv, path, width, height, title, sub, err);
    if (rc)
        return rc;
    cairo_t *cr = cv.cr;
    for (int gr = 1; gr < cg->num_groups; gr++)
        rs_text(cr, left + CELL_W * (gr - 0.5), top - 8, 9.5, true, 0.5, g->names[gr]);
    for (int c = 0; c < gd->corruptions; c++) {
        double y = top + CELL_H * c, rgb[3], ink[3];
        snprintf(buf, sizeof buf, "%s", rs_cstat_family_name(gd->family[c]));
        cairo_set_source_rgb(cr, 0.45, 0.45, 0.45);
        rs_text(cr, MARGIN, y + CELL_H * 0.68, 8, false, 0, buf);
        cairo_set_source_rgb(cr, 0, 0, 0);
        rs_text(cr, left - 6, y + CELL_H * 0.68, 9, false, 1, rs_corrupt_name(gd->id[c]));
        for (int gr = 1; gr < cg->num_groups; gr++) {
            const rs_t_interval *d = corruption_diff(cg, gr, c, figure);
            double x = left + CELL_W * (gr - 1);
            if (d->n < 1) {
                cairo_set_source_rgb(cr, 0.6, 0.6, 0.6);
                rs_hatch(cr, x, y, CELL_W, CELL_H, 5);
                continue;
            }
            diverging(d->mean * 100, hi, rgb);
            cairo_set_source_rgb(cr, rgb[0], rgb[1], rgb[2]);
            cairo_rectangle(cr, x, y, CELL_W, CELL_H);
            cairo_fill(cr);
            rs_palette_text_on(rgb, ink);
            cairo_set_source_rgb(cr, ink[0], ink[1], ink[2]);
            snprintf(buf, sizeof buf, "%+.1f", d->mean * 100);
            rs_text(cr, x + CELL_W / 2, y + CELL_H * 0.68, 9, false, 0.5, buf);
        }
    }
    cairo_set_source_rgb(cr, 0, 0, 0);
    rs_text(cr, left, top + CELL_H * gd->corruptions + 18, 8.5, false, 0,
            "orange: higher than the reference, blue: lower; hatched: no difference");
    return rs_canvas_close(&cv, err);
}

/* Panel of family F (RS_CFAMILIES: overall) with axes AX: a line per group. */
static void curve_panel(cairo_t *cr, const rs_groups *g, const rs_corrupt_groups *cg, int f, int figure,
                        const rs_axes *ax)
{
    const int S = cg->grid.severities;
    char buf[16];
    for (int s = 0; s < S; s++) {
        snprintf(buf, sizeof buf, "%d", cg->grid.severity[s]);
        cairo_set_source_rgb(cr, 0, 0, 0);
        rs_text(cr, ax->x + ax->w * (S > 1 ? (double)s / (S - 1) : 0.5), ax->y + ax->h + 12, 8.5, false, 0.5, buf);
    }
    for (int gr = 0; gr < cg->num_groups; gr++) {
        double rgb[3];
        rs_palette_method(rs_run_method(&g->info[rs_groups_at(g, gr, 0)]), 0, rgb);
        cairo_set_source_rgb(cr, rgb[0], rgb[1], rgb[2]);
        cairo_set_line_width(cr, 1.8);
        bool drawn = false;
        for (int s = 0; s < S; s++) {
            const rs_group_summary *m =
                &cg->summary[((size_t)gr * cg->rows + rs_cstat_family(&cg->grid, f, s)) * RS_CSTAT_NUM_FIGURES + figure];
            if (!m->valid)
                continue;
            double x = ax->x + ax->w * (S > 1 ? (double)s / (S - 1) : 0.5), y = rs_axes_y(ax, m->mean);
            if (drawn)
                cairo_line_to(cr, x, y);
            else
                cairo_move_to(cr, x, y);
            drawn = true;
        }
        cairo_stroke(cr);
    }
    cairo_set_source_rgb(cr, 0, 0, 0);
    rs_text(cr, ax->x + ax->w / 2, ax->y - 6, 10, true, 0.5, f == RS_CFAMILIES ? "overall" : rs_cstat_family_name(f));
}

int rs_render_corrupt_curves(const rs_groups *g, const rs_corrupt_groups *cg, int figure, const char *path,
                             rs_error *err)
{
    int fams[RS_CFAMILIES + 1], nf = 0;
    for (int f = 0; f <= RS_CFAMILIES; f++) {
        bool present = false;
        for (int c = 0; c < cg->grid.corruptions; c++)
            present |= f == RS_CFAMILIES ? cg->grid.family[c] != RS_CFAMILY_EXTRA : cg->grid.family[c] == f;
        if (present)
            fams[nf++] = f;
    }
    if (nf == 0 || cg->grid.severities < 1)
        return rs_error_set(err, RS_EINVAL, "corruption curves: no severity to draw");
    const int cols = nf < 3 ? nf : 3, rows = (nf + cols - 1) / cols;
    const double top = MARGIN + 13 + 8 + 14 + 20, left = MARGIN + 40, gap = 50;
    double width = left + cols * (PANEL_W + gap) + MARGIN, height = top + rows * (PANEL_H + 50) + 30 + MARGIN;
    char title[96];
    snprintf(title, sizeof title, "%s against severity, per corruption family", figure_names[figure]);
    rs_canvas cv;
    int rc = rs_figure_open(&cv, path, width, height, title,
                            "mean over each family's corruptions, then over seeds; x: severity", err);
    if (rc)
        return rc;
    cairo_t *cr = cv.cr;
    for (int q = 0; q < nf; q++) {
        rs_axes ax = {.x = left + q % cols * (PANEL_W + gap), .y = top + q / cols * (PANEL_H + 50), .w = PANEL_W,
                      .h = PANEL_H, .lo = 0, .hi = 1};
        rs_axes_ticks(cr, &ax, &(rs_ticks){.step = 0.2, .count = 5, .grid = 0.88, .label_every = 1, .fmt = "%.1f",
                                           .size = 8.5, .grey = 0, .dx = 4, .dy = 3});
        rs_axes_lines(cr, &ax, true);
        curve_panel(cr, g, cg, fams[q], figure, &ax);
    }
    double ly = top + rows * (PANEL_H + 50) + 10;
    for (int gr = 0; gr < cg->num_groups; gr++) {
        double rgb[3];
        rs_palette_method(rs_run_method(&g->info[rs_groups_at(g, gr, 0)]), 0, rgb);
        cairo_set_source_rgb(cr, rgb[0], rgb[1], rgb[2]);
        cairo_rectangle(cr, left + gr * 110, ly - 8, 14, 8);
        cairo_fill(cr);
        cairo_set_source_rgb(cr, 0, 0, 0);
        rs_text(cr, left + gr * 110 + 18, ly, 9, false, 0, g->names[gr]);
    }
    return rs_canvas_close(&cv, err);
}

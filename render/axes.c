/* axes.c — the plots' shared frame (axes.h). */
#include "axes.h"

#include <math.h>
#include <stdio.h>

int rs_figure_open(rs_canvas *cv, const char *path, double width, double height, const char *title,
                   const char *subtitle, rs_error *err)
{
    int rc = rs_canvas_open(cv, path, width, height, err);
    if (rc)
        return rc;
    cairo_set_source_rgb(cv->cr, 0, 0, 0);
    if (title)
        rs_text(cv->cr, RS_FIGURE_MARGIN, RS_FIGURE_MARGIN + 13, 13, true, 0, title);
    if (subtitle)
        rs_text(cv->cr, RS_FIGURE_MARGIN, RS_FIGURE_MARGIN + 13 + 8 + 12, 10, false, 0, subtitle);
    return 0;
}

double rs_axes_nice_max(double max)
{
    if (!(max > 0))
        return 1.0;
    double p = pow(10.0, floor(log10(max)));
    for (int i = 0; i < 3; i++) {
        double f = (double[]){1, 2, 5}[i] * p;
        if (f >= max * (1 - 1e-12))
            return f;
    }
    return 10 * p;
}

double rs_axes_y(const rs_axes *ax, double v)
{
    return ax->y + ax->h * (1 - (v - ax->lo) / (ax->hi - ax->lo));
}

void rs_axes_ticks(cairo_t *cr, const rs_axes *ax, const rs_ticks *t)
{
    char buf[64];
    cairo_set_line_width(cr, 0.5);
    for (int k = 0; k <= t->count; k++) {
        double v = ax->lo + t->step * k, y = rs_axes_y(ax, v);
        if (t->grid >= 0) {
            cairo_set_source_rgb(cr, t->grid, t->grid, t->grid);
            cairo_move_to(cr, ax->x, y);
            cairo_line_to(cr, ax->x + ax->w, y);
            cairo_stroke(cr);
        }
        if ((t->count - k) % t->label_every == 0) {
            cairo_set_source_rgb(cr, t->grey, t->grey, t->grey);
            snprintf(buf, sizeof buf, t->fmt, v);
            rs_text(cr, ax->x - t->dx, y + t->dy, t->size, false, 1, buf);
        }
    }
}

void rs_axes_lines(cairo_t *cr, const rs_axes *ax, bool box)
{
    cairo_set_source_rgb(cr, 0, 0, 0);
    cairo_set_line_width(cr, 1);
    if (box) {
        cairo_rectangle(cr, ax->x, ax->y, ax->w, ax->h);
    } else {
        cairo_move_to(cr, ax->x, ax->y);
        cairo_line_to(cr, ax->x, ax->y + ax->h);
        cairo_line_to(cr, ax->x + ax->w, ax->y + ax->h);
    }
    cairo_stroke(cr);
}

void rs_axes_k_dash(cairo_t *cr, int k)
{
    static const double dashed[] = {7, 4}, dotted[] = {2, 3};
    if (k <= 1)
        cairo_set_dash(cr, NULL, 0, 0);
    else
        cairo_set_dash(cr, k == 2 ? dashed : dotted, 2, 0);
}

void rs_axes_k_marker(cairo_t *cr, int k, double x, double y, double size)
{
    /* a square and a triangle inside the disc's circle look smaller than the disc: the
       square's half side is 0.94 of the radius, the triangle reaches 1.2 above and 1.15 to
       the sides */
    if (k <= 1) {
        cairo_new_sub_path(cr);
        cairo_arc(cr, x, y, size, 0, 2 * M_PI);
    } else if (k == 2) {
        cairo_rectangle(cr, x - 0.94 * size, y - 0.94 * size, 1.88 * size, 1.88 * size);
    } else {
        cairo_move_to(cr, x, y - 1.2 * size);
        cairo_line_to(cr, x + 1.15 * size, y + 0.88 * size);
        cairo_line_to(cr, x - 1.15 * size, y + 0.88 * size);
        cairo_close_path(cr);
    }
}

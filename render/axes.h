/* axes.h — the frame every plot shares (plot.c): opening the figure with its title line,
 * a round axis maximum, a value axis with its grid lines and tick labels, the axis lines,
 * and the line style and marker that stand for a run's top-k. Drawing only: the caller
 * owns the canvas (render.h); coordinates in points, y growing downwards. Nothing here
 * fails except rs_figure_open (as rs_canvas_open). */
#ifndef RS_AXES_H
#define RS_AXES_H

#include <stdbool.h>

#include "render.h"

#define RS_FIGURE_MARGIN 16.0

/* Opens the canvas (rs_canvas_open) and, when given, draws TITLE (bold 13 pt) and under it
 * SUBTITLE (10 pt) at the top left; leaves the source black. */
int rs_figure_open(rs_canvas *cv, const char *path, double width, double height, const char *title,
                   const char *subtitle, rs_error *err);

/* A round upper bound for an axis: 1, 2 or 5 times a power of ten, at least MAX (1 when
 * MAX is not positive). */
double rs_axes_nice_max(double max);

/* A plot area (top-left X, Y; W x H) whose vertical axis runs from LO (bottom) to HI (top). */
typedef struct rs_axes {
    double x, y, w, h;
    double lo, hi;
} rs_axes;

/* The y coordinate of value V. */
double rs_axes_y(const rs_axes *ax, double v);

/* Ticks at the values LO + STEP * t, t = 0..COUNT. */
typedef struct rs_ticks {
    double step;
    int count;
    double grid;        /* grey level of a grid line across the area at each tick; < 0: none */
    int label_every;    /* label every Nth tick counted down from the top one (1: all) */
    const char *fmt;    /* printf format of a label's value */
    double size;        /* label font size */
    double grey;        /* label grey level */
    double dx, dy;      /* a label's right end at X - DX, its baseline DY below the tick */
} rs_ticks;

/* Grid lines (0.5 pt) and tick labels of the vertical axis; leaves the line width at 0.5. */
void rs_axes_ticks(cairo_t *cr, const rs_axes *ax, const rs_ticks *t);
/* Black 1 pt axis lines: the left and bottom ones, or with BOX the whole frame. */
void rs_axes_lines(cairo_t *cr, const rs_axes *ax, bool box);

/* The dash of top-k K's lines (design notes: line style and marker = k): solid for k = 1,
 * dashed for 2, dotted for 3 or more. */
void rs_axes_k_dash(cairo_t *cr, int k);
/* Adds top-k K's marker centred at (X, Y) to the path: a disc of radius SIZE for k = 1, a
 * square for 2 and a triangle for 3 or more, each about as large as the disc. The caller
 * fills or strokes it. */
void rs_axes_k_marker(cairo_t *cr, int k, double x, double y, double size);

#endif

/* plot.c — sweep, accuracy, load, transition and router figures (see plot.h). */
#include "plot.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "axes.h"

#define MARGIN RS_FIGURE_MARGIN
#define MARKER_SIZE 3.2 /* a disc's radius; rs_axes_k_marker sizes the other shapes alike */

/* Short tick label of view V's spec. */
static void view_label(const rs_run_info *run, int v, char *buf, size_t size)
{
    const char *spec = run && run->view_specs && v < run->num_views ? run->view_specs[v] : NULL;
    int k;
    double s;
    if (spec && !strcmp(spec, "clean"))
        snprintf(buf, size, "clean");
    else if (spec && sscanf(spec, "noise:severity=%d", &k) == 1 && !strchr(spec, '+'))
        snprintf(buf, size, "severity %d", k);
    else if (spec && sscanf(spec, "noise:sigma=%lf", &s) == 1 && !strchr(spec, '+'))
        snprintf(buf, size, "sigma %.2f", s);
    else
        snprintf(buf, size, "view %d", v);
}

static void run_title(const rs_run_info *run, char *buf, size_t size)
{
    char model[256];
    rs_run_model_label(run, model, sizeof model);
    snprintf(buf, size, "run %lld · %.120s · %s · %d images", run ? (long long)run->id : 0LL, model,
             run && run->protocol ? run->protocol : "?", run ? run->images_done : 0);
}

/* Run I's colour: its method's hue, a darker shade for a larger k. */
static void run_colour(const rs_run_info *const *runs, int num_runs, int i, double rgb[3])
{
    int max_k = 1;
    for (int j = 0; j < num_runs; j++)
        if (runs[j] && runs[j]->top_k > max_k)
            max_k = runs[j]->top_k;
    int k = runs[i] ? runs[i]->top_k : 1;
    rs_palette_method(rs_run_method(runs[i]), max_k > 1 ? 1.0 - (double)(k - 1) / (max_k - 1) : 0.0, rgb);
}

/* Pair and noise runs measure different things (two crops vs clean and noisy views):
 * never in one chart. RS_EINVAL naming the first run whose protocol differs. */
static int one_protocol(const rs_run_info *const *runs, int num_runs, const char *what, rs_error *err)
{
    for (int i = 1; i < num_runs; i++)
        if (runs[i] && runs[0] && strcmp(runs[i]->protocol, runs[0]->protocol))
            return rs_error_set(err, RS_EINVAL, "%s: run %lld is a %s run and run %lld a %s run: draw them apart",
                                what, (long long)runs[0]->id, runs[0]->protocol, (long long)runs[i]->id,
                                runs[i]->protocol);
    return 0;
}

/* What a sweep plots at view V of a run: Top-1 agreement with view 0 (views 1..V-1) or
 * accuracy (views 0..V-1), with the bootstrap band (Wilson where there is none). */
typedef enum sweep_metric { SWEEP_TOP1, SWEEP_ACCURACY } sweep_metric;

static bool sweep_point(const rs_stats *st, int v, int layer, sweep_metric metric, double *value, double *lo,
                        double *hi)
{
    if (metric == SWEEP_ACCURACY) {
        const rs_stats_accuracy *a = &st->accuracy[v];
        *value = a->value, *lo = a->wilson_lo, *hi = a->wilson_hi;
        return a->valid;
    }
    const rs_stats_rate *rt = &st->agree[rs_stats_cell(st, v, layer < 0 ? st->layers : layer)].rate[RS_STATS_TOP1];
    *value = rt->value;
    *lo = rt->boot_valid ? rt->boot_lo : rt->wilson_lo;
    *hi = rt->boot_valid ? rt->boot_hi : rt->wilson_hi;
    return rt->valid;
}

/* The sweep's x axis: views FIRST.. at the centres of NX equal slots of the area AX. */
typedef struct sweep_frame {
    rs_axes ax;
    int first, nx, layer;
    sweep_metric metric;
} sweep_frame;

static double sweep_x(const sweep_frame *f, int v)
{
    return f->ax.x + f->ax.w * (v - f->first + 0.5) / f->nx;
}

/* The bottom of the y axis: the lowest interval end rounded down to a tenth, at most 0.9. */
static double sweep_floor(const rs_stats *const *stats, int num_runs, const sweep_frame *f)
{
    double ylo = 1.0;
    for (int i = 0; i < num_runs; i++) {
        const rs_stats *st = stats[i];
        for (int v = f->first; v < st->views; v++) {
            double val, lo, hi;
            if (sweep_point(st, v, f->layer, f->metric, &val, &lo, &hi))
                ylo = fmin(ylo, lo);
        }
    }
    ylo = fmax(0.0, floor(ylo * 10 - 1e-9) / 10);
    return ylo > 0.9 ? 0.9 : ylo;
}

/* One run's band (its intervals), line and points in colour RGB, styled by K. */
static void sweep_series(cairo_t *cr, const sweep_frame *f, const rs_stats *st, const double rgb[3], int k)
{
    const rs_axes *ax = &f->ax;
    double val, lo, hi;
    bool open = false;
    for (int v = f->first; v < st->views; v++) {
        if (!sweep_point(st, v, f->layer, f->metric, &val, &lo, &hi))
            continue;
        if (!open)
            cairo_move_to(cr, sweep_x(f, v), rs_axes_y(ax, hi)), open = true;
        else
            cairo_line_to(cr, sweep_x(f, v), rs_axes_y(ax, hi));
    }
    for (int v = st->views - 1; v >= f->first && open; v--) {
        if (sweep_point(st, v, f->layer, f->metric, &val, &lo, &hi))
            cairo_line_to(cr, sweep_x(f, v), rs_axes_y(ax, lo));
    }
    if (open) {
        cairo_close_path(cr);
        cairo_set_source_rgba(cr, rgb[0], rgb[1], rgb[2], 0.25);
        cairo_fill(cr);
    }
    cairo_set_source_rgb(cr, rgb[0], rgb[1], rgb[2]);
    cairo_set_line_width(cr, 2);
    rs_axes_k_dash(cr, k);
    open = false;
    for (int v = f->first; v < st->views; v++) {
        if (!sweep_point(st, v, f->layer, f->metric, &val, &lo, &hi))
            continue;
        if (!open)
            cairo_move_to(cr, sweep_x(f, v), rs_axes_y(ax, val)), open = true;
        else
            cairo_line_to(cr, sweep_x(f, v), rs_axes_y(ax, val));
    }
    cairo_stroke(cr);
    cairo_set_dash(cr, NULL, 0, 0);
    for (int v = f->first; v < st->views; v++) {
        if (sweep_point(st, v, f->layer, f->metric, &val, &lo, &hi)) {
            rs_axes_k_marker(cr, k, sweep_x(f, v), rs_axes_y(ax, val), MARKER_SIZE);
            cairo_fill(cr);
        }
    }
}

static int sweep_plot(const rs_stats *const *stats, const rs_run_info *const *runs, int num_runs, int layer,
                      sweep_metric metric, const char *path, rs_error *err)
{
    sweep_frame f = {.first = metric == SWEEP_ACCURACY ? 0 : 1, .layer = layer, .metric = metric};
    if (num_runs < 1)
        return rs_error_set(err, RS_EINVAL, "sweep: no runs");
    for (int i = 0; i < num_runs; i++)
        if (runs[i] && !strcmp(runs[i]->protocol, "pair"))
            return rs_error_set(err, RS_EINVAL,
                                "run %lld is a pair run: its views are two random crops, not severities, so there "
                                "is no sweep to draw (use a noise or custom run)", (long long)runs[i]->id);
    int rc = one_protocol(runs, num_runs, metric == SWEEP_ACCURACY ? "accuracy" : "sweep", err);
    if (rc)
        return rc;
    for (int i = 0; i < num_runs; i++) {
        if (layer >= stats[i]->layers)
            return rs_error_set(err, RS_EINVAL, "layer %d out of range (run %lld has %d MoE layers)", layer,
                                (long long)stats[i]->run_id, stats[i]->layers);
        if (stats[i]->views - f.first > f.nx)
            f.nx = stats[i]->views - f.first;
    }
    if (f.nx < 1)
        return rs_error_set(err, RS_EINVAL, "sweep: the runs have no view besides the reference");
    double pw = fmax(320.0, 90.0 * f.nx), ph = 260, left = MARGIN + 60, top = MARGIN + 13 + 10 + 10;
    double legend_h = 16.0 * num_runs;
    double width = left + pw + MARGIN + 10, height = top + ph + 56 + legend_h + MARGIN;
    char buf[256];
    if (metric == SWEEP_ACCURACY)
        snprintf(buf, sizeof buf, "Accuracy per view (Wilson interval)");
    else if (layer < 0)
        snprintf(buf, sizeof buf, "Top-1 agreement with view 0 (all MoE layers)");
    else
        snprintf(buf, sizeof buf, "Top-1 agreement with view 0, MoE layer %d", layer);
    rs_canvas cv;
    rc = rs_figure_open(&cv, path, width, height, buf, NULL, err);
    if (rc)
        return rc;
    cairo_t *cr = cv.cr;
    f.ax = (rs_axes){.x = left, .y = top, .w = pw, .h = ph, .lo = sweep_floor(stats, num_runs, &f), .hi = 1};
    /* axis titles: what the values are, and what the views are */
    cairo_save(cr);
    cairo_translate(cr, MARGIN + 10, top + ph / 2);
    cairo_rotate(cr, -M_PI / 2);
    rs_text(cr, 0, 0, 10, false, 0.5,
            metric == SWEEP_ACCURACY ? "accuracy (share of images)" : "Top-1 agreement (share of matched patches)");
    cairo_restore(cr);
    rs_text(cr, left + pw / 2, top + ph + 30, 10, false, 0.5,
            strcmp(runs[0]->protocol, "noise") ? "view"
            : metric == SWEEP_ACCURACY ? "view: clean, then Gaussian noise severity (\u03c3 = 0.08 \u2026 0.38)"
                                       : "Gaussian noise severity (\u03c3 = 0.08 \u2026 0.38)");
    int nt = (int)lround((1 - f.ax.lo) * 10); /* the floor is a multiple of 0.1: a line every 0.1 */
    rs_axes_ticks(cr, &f.ax, &(rs_ticks){.step = 0.1, .count = nt, .grid = 0.88, .label_every = nt <= 5 ? 1 : 2,
                                         .fmt = "%.2f", .size = 9, .grey = 0, .dx = 5, .dy = 3.5});
    rs_axes_lines(cr, &f.ax, true);
    for (int k = f.first; k < f.first + f.nx; k++) {
        view_label(runs[0], k, buf, sizeof buf);
        rs_text(cr, sweep_x(&f, k), top + ph + 14, 9, false, 0.5, buf);
    }
    for (int i = 0; i < num_runs; i++) {
        double rgb[3];
        run_colour(runs, num_runs, i, rgb);
        int k = runs[i] ? runs[i]->top_k : 1;
        sweep_series(cr, &f, stats[i], rgb, k);
        double ly = top + ph + 48 + 16 * i;
        cairo_set_line_width(cr, 2);
        rs_axes_k_dash(cr, k);
        cairo_move_to(cr, left, ly - 4);
        cairo_line_to(cr, left + 18, ly - 4);
        cairo_stroke(cr);
        cairo_set_dash(cr, NULL, 0, 0);
        rs_axes_k_marker(cr, k, left + 9, ly - 4, MARKER_SIZE);
        cairo_fill(cr);
        cairo_set_source_rgb(cr, 0, 0, 0);
        run_title(runs[i], buf, sizeof buf);
        rs_text(cr, left + 24, ly, 10, false, 0, buf);
    }
    return rs_canvas_close(&cv, err);
}

int rs_render_sweep(const rs_stats *const *stats, const rs_run_info *const *runs, int num_runs, int layer,
                    const char *path, rs_error *err)
{
    return sweep_plot(stats, runs, num_runs, layer, SWEEP_TOP1, path, err);
}

int rs_render_accuracy(const rs_stats *const *stats, const rs_run_info *const *runs, int num_runs, const char *path,
                       rs_error *err)
{
    return sweep_plot(stats, runs, num_runs, -1, SWEEP_ACCURACY, path, err);
}

/* The largest expert share over all MoE layers (at least 1/E), rounded up to a tenth: the
   load panels share one y-scale, so layers compare by bar height. */
static double load_max(const rs_stats *st)
{
    int E = st->experts;
    double mx = 1.0 / E;
    for (int l = 0; l < st->layers; l++) {
        const int64_t *load = st->load + (size_t)rs_stats_cell(st, st->views, l) * E;
        int64_t total = 0;
        for (int e = 0; e < E; e++)
            total += load[e];
        for (int e = 0; total && e < E; e++)
            mx = fmax(mx, (double)load[e] / total);
    }
    return ceil(mx * 10 - 1e-9) / 10;
}

/* One MoE layer's load bars in the panel at (X, Y), W x H, on the y-scale 0..MX. */
static void load_panel(cairo_t *cr, const rs_stats *st, const rs_run_info *run, int l, double x, double y, double bw,
                       double h, double mx)
{
    int E = st->experts;
    const int64_t *load = st->load + (size_t)rs_stats_cell(st, st->views, l) * E;
    int64_t total = 0;
    for (int e = 0; e < E; e++)
        total += load[e];
    char buf[128];
    const rs_stats_mean *cv_ = &st->load_cv[rs_stats_cell(st, st->views, l)];
    if (run && l < 64)
        snprintf(buf, sizeof buf, "block %d, CV %.2f", run->layer_blocks[l], cv_->valid ? cv_->mean : 0);
    else
        snprintf(buf, sizeof buf, "MoE layer %d", l);
    cairo_set_source_rgb(cr, 0, 0, 0);
    rs_text(cr, x, y + 8, 10, true, 0, buf);
    y += 14;
    rs_axes ax = {.x = x, .y = y, .w = bw * E, .h = h, .lo = 0, .hi = mx};
    rs_axes_ticks(cr, &ax, &(rs_ticks){.step = mx / 2, .count = 2, .grid = -1, .label_every = 1, .fmt = "%.2f",
                                       .size = 9, .grey = 0, .dx = 4, .dy = 3.5});
    for (int e = 0; e < E; e++) {
        double rgb[3], share = total ? (double)load[e] / total : 0;
        rs_palette_expert(e, E, rgb);
        cairo_set_source_rgb(cr, rgb[0], rgb[1], rgb[2]);
        cairo_rectangle(cr, x + e * bw + 1, y + h * (1 - share / mx), bw - 2, h * share / mx);
        cairo_fill(cr);
        cairo_set_source_rgb(cr, 0, 0, 0);
        snprintf(buf, sizeof buf, "%d", e);
        if (E <= 32 || e % 4 == 0)
            rs_text(cr, x + e * bw + bw / 2, y + h + 11, 8, false, 0.5, buf);
    }
    rs_axes_lines(cr, &ax, false);
    double yu = y + h * (1 - (1.0 / E) / mx), dash[] = {4, 3};
    cairo_set_dash(cr, dash, 2, 0);
    cairo_move_to(cr, x, yu);
    cairo_line_to(cr, x + bw * E, yu);
    cairo_stroke(cr);
    cairo_set_dash(cr, NULL, 0, 0);
    rs_text(cr, x + bw * E + 4, yu + 3.5, 9, false, 0, "1/E");
}

int rs_render_load(const rs_stats *st, const rs_run_info *run, const char *path, rs_error *err)
{
    int L = st->layers, E = st->experts, per_row = L < 3 ? L : 3;
    double bw = fmax(8.0, fmin(28.0, 360.0 / E)), pw = bw * E, ph = 150, left = MARGIN + 40, gapx = 70;
    double top = MARGIN + 13 + 8 + 14 + 8, gapy = 40;
    int rows = (L + per_row - 1) / per_row;
    double width = fmax(left + per_row * pw + (per_row - 1) * gapx + 30 + MARGIN, 460);
    double height = top + rows * (ph + gapy) - gapy + 20 + MARGIN;
    char buf[256];
    run_title(run, buf, sizeof buf);
    rs_canvas cv;
    int rc = rs_figure_open(&cv, path, width, height, "Expert load per MoE layer (share of top-k slots, all views)",
                            buf, err);
    if (rc)
        return rc;
    double mx = load_max(st);
    for (int l = 0; l < L; l++)
        load_panel(cv.cr, st, run, l, left + (l % per_row) * (pw + gapx), top + (l / per_row) * (ph + gapy), bw,
                   ph - 14, mx);
    return rs_canvas_close(&cv, err);
}

static void matrix(cairo_t *cr, double x, double y, double cell, int E, const double *val, const double *shade,
                   const char *fmt, const char *title)
{
    char buf[32];
    cairo_set_source_rgb(cr, 0, 0, 0);
    rs_text(cr, x + E * cell / 2, y - 18, 10, true, 0.5, title);
    double fs = fmin(9.0, cell * 0.34);
    for (int a = 0; a < E; a++) {
        snprintf(buf, sizeof buf, "%d", a);
        cairo_set_source_rgb(cr, 0, 0, 0);
        rs_text(cr, x + a * cell + cell / 2, y - 4, 8, false, 0.5, buf);
        rs_text(cr, x - 4, y + a * cell + cell / 2 + 3, 8, false, 1, buf);
        for (int b = 0; b < E; b++) {
            double rgb[3], txt[3];
            rs_palette_viridis(shade[a * E + b], rgb);
            cairo_set_source_rgb(cr, rgb[0], rgb[1], rgb[2]);
            cairo_rectangle(cr, x + b * cell, y + a * cell, cell, cell);
            cairo_fill(cr);
            if (cell >= 14) {
                rs_palette_text_on(rgb, txt);
                cairo_set_source_rgb(cr, txt[0], txt[1], txt[2]);
                snprintf(buf, sizeof buf, fmt, val[a * E + b]);
                rs_text(cr, x + b * cell + cell / 2, y + a * cell + cell / 2 + fs * 0.36, fs, false, 0.5, buf);
            }
        }
    }
}

/* A vertical viridis colour bar at (X, Y), H tall, for values LO..HI (three ticks). */
static void colour_bar(cairo_t *cr, double x, double y, double h, double lo, double hi, const char *fmt)
{
    for (int i = 0; i < 64; i++) {
        double rgb[3];
        rs_palette_viridis(1.0 - (i + 0.5) / 64, rgb);
        cairo_set_source_rgb(cr, rgb[0], rgb[1], rgb[2]);
        cairo_rectangle(cr, x, y + i * h / 64, 10, h / 64 + 0.5);
        cairo_fill(cr);
    }
    cairo_set_source_rgb(cr, 0.3, 0.3, 0.3);
    cairo_set_line_width(cr, 0.8);
    cairo_rectangle(cr, x, y, 10, h);
    cairo_stroke(cr);
    char buf[32];
    for (int k = 0; k <= 2; k++) {
        snprintf(buf, sizeof buf, fmt, lo + (hi - lo) * k / 2);
        cairo_set_source_rgb(cr, 0, 0, 0);
        rs_text(cr, x + 13, y + h * (1 - k / 2.0) + 3, 8, false, 0, buf);
    }
}

/* Row shares of the top-1 transition counts of MoE slot L into VAL (counts) and SHADE. */
static void transition_shares(const rs_stats *st, int l, double *val, double *shade)
{
    int E = st->experts;
    const int64_t *tr = st->transition + (size_t)rs_stats_cell(st, st->views, l) * E * E;
    for (int a = 0; a < E; a++) {
        int64_t rs = 0;
        for (int b = 0; b < E; b++)
            rs += tr[a * E + b];
        for (int b = 0; b < E; b++) {
            val[a * E + b] = (double)tr[a * E + b];
            shade[a * E + b] = rs ? (double)tr[a * E + b] / rs : 0;
        }
    }
}

/* The largest |S| entry over MoE slots L0..L1-1, rounded up to a tenth: one colour scale
   for every S panel, so layers compare by colour. */
static double shared_s_max(const rs_stats *st, int l0, int l1)
{
    int E = st->experts;
    double smax = 0;
    for (int l = l0; l < l1; l++)
        for (int q = 0; q < E * E; q++)
            smax = fmax(smax, fabs(st->prc_s[(size_t)l * E * E + q]));
    return fmax(0.1, ceil(smax * 10 - 1e-9) / 10);
}

int rs_render_transition(const rs_stats *st, const rs_run_info *run, int layer, const char *path, rs_error *err)
{
    int L = st->layers, E = st->experts;
    if (layer >= L)
        return rs_error_set(err, RS_EINVAL, "layer %d out of range (the run has %d MoE layers)", layer, L);
    if (st->views < 2)
        return rs_error_set(err, RS_EINVAL, "transition: the run has no view besides the reference");
    int l0 = layer < 0 ? 0 : layer, l1 = layer < 0 ? L : layer + 1;
    double cell = fmax(10.0, fmin(30.0, 300.0 / E)), mw = cell * E, left = MARGIN + 24 + 20, gapx = 100;
    double top = MARGIN + 13 + 8 + 14 + 40, rowh = mw + 50;
    double width = left + 2 * mw + gapx + 70 + MARGIN, height = top + (l1 - l0) * rowh - 30 + MARGIN;
    double *val = malloc(sizeof *val * 2 * (size_t)E * E);
    if (!val)
        return rs_error_set(err, RS_ENOMEM, "out of memory");
    double *shade = val + (size_t)E * E, smax = shared_s_max(st, l0, l1);
    char buf[256];
    run_title(run, buf, sizeof buf);
    rs_canvas cv;
    int rc = rs_figure_open(&cv, path, fmax(width, 460), height,
                            "Top-1 transitions (rows: view 0 expert, columns: view expert) and PRC matrix S", buf, err);
    if (rc) {
        free(val);
        return rc;
    }
    cairo_t *cr = cv.cr;
    for (int l = l0; l < l1; l++) {
        double y = top + (l - l0) * rowh;
        transition_shares(st, l, val, shade);
        if (run && l < 64)
            snprintf(buf, sizeof buf, "block %d: counts, colour = row share", run->layer_blocks[l]);
        else
            snprintf(buf, sizeof buf, "MoE layer %d: counts, colour = row share", l);
        matrix(cr, left, y, cell, E, val, shade, "%.0f", buf);
        colour_bar(cr, left + mw + 6, y, mw, 0, 1, "%.1f");
        const double *S = st->prc_s + (size_t)l * E * E;
        for (int q = 0; q < E * E; q++) {
            val[q] = S[q];
            shade[q] = fabs(S[q]) / smax;
        }
        const rs_stats_mean *nrm = &st->prc_norm[l];
        snprintf(buf, sizeof buf, "S (rows: view, columns: view 0), \u2016S \u2212 I\u2016_F = %.2f", nrm->valid ? nrm->mean : 0);
        matrix(cr, left + mw + gapx, y, cell, E, val, shade, "%.2f", buf);
        colour_bar(cr, left + 2 * mw + gapx + 6, y, mw, 0, smax, "%.2f");
    }
    free(val);
    return rs_canvas_close(&cv, err);
}

/* Value of metric M (0 ‖S−I‖_F, 1 JSD, 2 entropy, 3 load CV) at MoE slot L (L == layers:
 * pooled; ‖S−I‖_F has no pooled value). */
static bool router_value(const rs_stats *st, int m, int l, double *out)
{
    const rs_stats_mean *x;
    int cell = rs_stats_cell(st, st->views, l);
    switch (m) {
    case 0: x = l < st->layers ? &st->prc_norm[l] : NULL; break;
    case 1: x = &st->jsd[cell]; break;
    case 2: x = &st->entropy[cell]; break;
    default: x = &st->load_cv[cell]; break;
    }
    if (!x || !x->valid || !isfinite(x->mean))
        return false;
    *out = x->mean;
    return true;
}

/* Run I's bar of value V in a group starting at GX (bars BW wide), on the panel's axes AX,
 * labelled with V where the label fits. */
static void router_bar(cairo_t *cr, const rs_axes *ax, double gx, double bw, int i, const rs_run_info *const *runs,
                       int num_runs, double v)
{
    double rgb[3];
    char buf[64];
    run_colour(runs, num_runs, i, rgb);
    double h = ax->h * v / ax->hi;
    cairo_set_source_rgb(cr, rgb[0], rgb[1], rgb[2]);
    cairo_rectangle(cr, gx + i * bw + 1, ax->y + ax->h - h, bw - 2, h);
    cairo_fill(cr);
    cairo_set_source_rgb(cr, 0.1, 0.1, 0.1);
    /* neighbouring labels must not run together: fewer digits, else none */
    snprintf(buf, sizeof buf, "%.3g", v);
    if (rs_text_width(cr, 6, false, buf) > bw - 1)
        snprintf(buf, sizeof buf, fabs(v) < 10 ? "%.2f" : "%.0f", v);
    if (rs_text_width(cr, 6, false, buf) <= bw - 1)
        rs_text(cr, gx + (i + 0.5) * bw, ax->y + ax->h - h - 2, 6, false, 0.5, buf);
}

/* The bars of MoE slot L (L == LMAX: pooled) of metric M, one per run. */
static void router_group(cairo_t *cr, const rs_axes *ax, const rs_stats *const *stats,
                         const rs_run_info *const *runs, int num_runs, int m, int l, int lmax)
{
    double gw = ax->w / (lmax + 1), bw = fmin(18.0, (gw - 10) / num_runs);
    double gx = ax->x + l * gw + (gw - bw * num_runs) / 2, v;
    for (int i = 0; i < num_runs; i++) {
        int slot = l == lmax ? stats[i]->layers : l;
        if (l < lmax && l >= stats[i]->layers)
            continue;
        if (!router_value(stats[i], m, slot, &v)) {
            cairo_set_source_rgb(cr, 0.5, 0.5, 0.5);
            rs_text(cr, gx + (i + 0.5) * bw, ax->y + ax->h - 3, 7, false, 0.5, "n/a");
            continue;
        }
        router_bar(cr, ax, gx, bw, i, runs, num_runs, v);
    }
}

/* Panel M: its title, axes and a group of bars per MoE layer plus "all". */
static void router_panel(cairo_t *cr, const rs_stats *const *stats, const rs_run_info *const *runs, int num_runs,
                         int m, int lmax, const rs_axes *frame)
{
    static const char *const titles[4] = {"PRC score \u2016S \u2212 I\u2016_F (lower: more consistent)",
                                          "Mean JSD to view 0 (bits)", "Routing entropy (bits)",
                                          "Expert load CV (lower: more balanced)"};
    double max = 0, v;
    for (int i = 0; i < num_runs; i++)
        for (int l = 0; l <= stats[i]->layers; l++)
            if (router_value(stats[i], m, l, &v) && v > max)
                max = v;
    rs_axes ax = *frame;
    ax.hi = rs_axes_nice_max(max);
    cairo_set_source_rgb(cr, 0, 0, 0);
    rs_text(cr, ax.x - 30, ax.y - 8, 10.5, true, 0, titles[m]);
    /* round ticks: a maximum of 1, 2 or 5 (x 10^n) in steps of 0.2, 0.5 or 1 (x 10^n) */
    double lead = ax.hi / pow(10.0, floor(log10(ax.hi) + 1e-9));
    int nt = lead > 1.5 && lead < 2.5 ? 4 : 5;
    rs_axes_ticks(cr, &ax, &(rs_ticks){.step = ax.hi / nt, .count = nt, .grid = 0.85, .label_every = 1,
                                       .fmt = "%.3g", .size = 8, .grey = 0.2, .dx = 4, .dy = 3});
    rs_axes_lines(cr, &ax, false);
    double gw = ax.w / (lmax + 1), below = ax.y + ax.h + 12;
    char buf[64];
    for (int l = 0; l <= lmax; l++) {
        if (m == 0 && l == lmax) { /* S is defined per layer only */
            cairo_set_source_rgb(cr, 0.5, 0.5, 0.5);
            rs_text(cr, ax.x + (l + 0.5) * gw, ax.y + ax.h - 4, 7.5, false, 0.5, "(per layer only)");
            cairo_set_source_rgb(cr, 0, 0, 0);
            rs_text(cr, ax.x + (l + 0.5) * gw, below, 8.5, false, 0.5, "all");
            continue;
        }
        router_group(cr, &ax, stats, runs, num_runs, m, l, lmax);
        cairo_set_source_rgb(cr, 0, 0, 0);
        if (l == lmax)
            snprintf(buf, sizeof buf, "all");
        else
            snprintf(buf, sizeof buf, "block %d", runs[0]->layer_blocks[l]);
        rs_text(cr, ax.x + (l + 0.5) * gw, below, 8.5, false, 0.5, buf);
    }
}

static void router_legend(cairo_t *cr, const rs_run_info *const *runs, int num_runs, double ly)
{
    char buf[256];
    for (int i = 0; i < num_runs; i++) {
        double rgb[3];
        run_colour(runs, num_runs, i, rgb);
        cairo_set_source_rgb(cr, rgb[0], rgb[1], rgb[2]);
        cairo_rectangle(cr, MARGIN, ly + 15.0 * i, 10, 10);
        cairo_fill(cr);
        cairo_set_source_rgb(cr, 0, 0, 0);
        char model[256];
        rs_run_model_label(runs[i], model, sizeof model);
        snprintf(buf, sizeof buf, "run %lld \u00b7 %.120s (k=%d) \u00b7 %s \u00b7 seed %llu \u00b7 %d images",
                 (long long)runs[i]->id, model, runs[i]->top_k, runs[i]->protocol,
                 (unsigned long long)runs[i]->seed, runs[i]->images_done);
        rs_text(cr, MARGIN + 16, ly + 15.0 * i + 9, 9.5, false, 0, buf);
    }
}

int rs_render_router(const rs_stats *const *stats, const rs_run_info *const *runs, int num_runs, const char *path,
                     rs_error *err)
{
    if (num_runs < 1)
        return rs_error_set(err, RS_EINVAL, "router figure: no runs");
    int rc = one_protocol(runs, num_runs, "router figure", err);
    if (rc)
        return rc;
    int L = stats[0]->layers;
    for (int i = 1; i < num_runs; i++)
        if (stats[i]->layers > L)
            L = stats[i]->layers;
    double pw = fmax(260.0, (L + 1) * (18.0 * num_runs + 14)), ph = 150;
    double left = MARGIN + 36, colw = left + pw + MARGIN, rowh = 26 + ph + 30;
    double legend_h = 15.0 * num_runs + 6, top = MARGIN + 20;
    double width = 2 * colw, height = top + 2 * rowh + legend_h + MARGIN;
    rs_canvas cv;
    rc = rs_figure_open(&cv, path, width, height, NULL, NULL, err);
    if (rc)
        return rc;
    /* a point higher than the other plots' titles: the panels' own titles follow closely */
    rs_text(cv.cr, MARGIN, MARGIN + 12, 13, true, 0,
            "Router figures per MoE layer (non-reference views pooled; \"all\" pools the layers)");
    for (int m = 0; m < 4; m++) {
        rs_axes frame = {.x = (m % 2) * colw + left, .y = top + (m / 2) * rowh + 26, .w = pw, .h = ph};
        router_panel(cv.cr, stats, runs, num_runs, m, L, &frame);
    }
    router_legend(cv.cr, runs, num_runs, top + 2 * rowh + 4);
    return rs_canvas_close(&cv, err);
}

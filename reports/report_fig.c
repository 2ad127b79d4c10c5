/* report_fig.c — the report's own figure (router figures per MoE layer) and the context
 * (class names, view pixels) under its grids. See report.h. */
#include "report.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "safetensors.h"
#include "source.h"
#include "view.h"

#define MARGIN 16.0

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

/* A round upper bound for an axis: 1, 2 or 5 times a power of ten, at least MAX. */
static double nice_max(double max)
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

int rs_report_render_router(const rs_stats *const *stats, const rs_run_info *const *runs, int num_runs,
                            const char *path, rs_error *err)
{
    static const char *const titles[4] = {"PRC score \u2016S \u2212 I\u2016_F (lower: more consistent)",
                                          "Mean JSD to view 0 (bits)", "Routing entropy (bits)",
                                          "Expert load CV (lower: more balanced)"};
    if (num_runs < 1)
        return rs_error_set(err, RS_EINVAL, "router figure: no runs");
    int L = stats[0]->layers;
    for (int i = 1; i < num_runs; i++)
        if (stats[i]->layers > L)
            L = stats[i]->layers;
    double pw = fmax(260.0, (L + 1) * (18.0 * num_runs + 14)), ph = 150;
    double left = MARGIN + 36, colw = left + pw + MARGIN, rowh = 26 + ph + 30;
    double legend_h = 15.0 * num_runs + 6, top = MARGIN + 20;
    double width = 2 * colw, height = top + 2 * rowh + legend_h + MARGIN;
    rs_canvas cv;
    int rc = rs_canvas_open(&cv, path, width, height, err);
    if (rc)
        return rc;
    cairo_t *cr = cv.cr;
    char buf[256];
    cairo_set_source_rgb(cr, 0, 0, 0);
    rs_text(cr, MARGIN, MARGIN + 12, 13, true, 0,
            "Router figures per MoE layer (non-reference views pooled; \"all\" pools the layers)");
    for (int m = 0; m < 4; m++) {
        double x0 = (m % 2) * colw + left, y0 = top + (m / 2) * rowh + 26;
        double max = 0, v;
        for (int i = 0; i < num_runs; i++)
            for (int l = 0; l <= stats[i]->layers; l++)
                if (router_value(stats[i], m, l, &v) && v > max)
                    max = v;
        max = nice_max(max);
        cairo_set_source_rgb(cr, 0, 0, 0);
        rs_text(cr, x0 - 30, y0 - 8, 10.5, true, 0, titles[m]);
        /* axis, grid lines and ticks */
        cairo_set_line_width(cr, 0.5);
        for (int t = 0; t <= 4; t++) {
            double y = y0 + ph - ph * t / 4.0;
            cairo_set_source_rgb(cr, 0.85, 0.85, 0.85);
            cairo_move_to(cr, x0, y);
            cairo_line_to(cr, x0 + pw, y);
            cairo_stroke(cr);
            cairo_set_source_rgb(cr, 0.2, 0.2, 0.2);
            snprintf(buf, sizeof buf, "%.3g", max * t / 4.0);
            rs_text(cr, x0 - 4, y + 3, 8, false, 1, buf);
        }
        cairo_set_source_rgb(cr, 0, 0, 0);
        cairo_set_line_width(cr, 1);
        cairo_move_to(cr, x0, y0);
        cairo_line_to(cr, x0, y0 + ph);
        cairo_line_to(cr, x0 + pw, y0 + ph);
        cairo_stroke(cr);
        double gw = pw / (L + 1), bw = fmin(18.0, (gw - 10) / num_runs);
        for (int l = 0; l <= L; l++) {
            double gx = x0 + l * gw + (gw - bw * num_runs) / 2;
            if (m == 0 && l == L) { /* S is defined per layer only */
                cairo_set_source_rgb(cr, 0.5, 0.5, 0.5);
                rs_text(cr, x0 + (l + 0.5) * gw, y0 + ph - 4, 7.5, false, 0.5, "(per layer only)");
                cairo_set_source_rgb(cr, 0, 0, 0);
                rs_text(cr, x0 + (l + 0.5) * gw, y0 + ph + 12, 8.5, false, 0.5, "all");
                continue;
            }
            for (int i = 0; i < num_runs; i++) {
                int slot = l == L ? stats[i]->layers : l;
                if (l < L && l >= stats[i]->layers)
                    continue;
                double rgb[3];
                rs_palette_series(i, num_runs, rgb);
                if (!router_value(stats[i], m, slot, &v)) {
                    cairo_set_source_rgb(cr, 0.5, 0.5, 0.5);
                    rs_text(cr, gx + (i + 0.5) * bw, y0 + ph - 3, 7, false, 0.5, "n/a");
                    continue;
                }
                double h = ph * v / max;
                cairo_set_source_rgb(cr, rgb[0], rgb[1], rgb[2]);
                cairo_rectangle(cr, gx + i * bw + 1, y0 + ph - h, bw - 2, h);
                cairo_fill(cr);
                cairo_set_source_rgb(cr, 0.1, 0.1, 0.1);
                /* neighbouring labels must not run together: fewer digits, else none */
                snprintf(buf, sizeof buf, "%.3g", v);
                if (rs_text_width(cr, 6, false, buf) > bw - 1)
                    snprintf(buf, sizeof buf, fabs(v) < 10 ? "%.2f" : "%.0f", v);
                if (rs_text_width(cr, 6, false, buf) <= bw - 1)
                    rs_text(cr, gx + (i + 0.5) * bw, y0 + ph - h - 2, 6, false, 0.5, buf);
            }
            cairo_set_source_rgb(cr, 0, 0, 0);
            if (l == L)
                snprintf(buf, sizeof buf, "all");
            else
                snprintf(buf, sizeof buf, "block %d", runs[0]->layer_blocks[l]);
            rs_text(cr, x0 + (l + 0.5) * gw, y0 + ph + 12, 8.5, false, 0.5, buf);
        }
    }
    double ly = top + 2 * rowh + 4;
    for (int i = 0; i < num_runs; i++) {
        double rgb[3];
        rs_palette_series(i, num_runs, rgb);
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
    return rs_canvas_close(&cv, err);
}

void rs_report_context_load(const rs_run_info *run, int image, rs_report_context *rc)
{
    rs_error err = {0};
    rs_safetensors *st = NULL;
    memset(rc, 0, sizeof *rc);
    rc->ctx.run = run;
    if (rs_safetensors_open(run->model_path, &st, &err) == 0) {
        const char *json = rs_safetensors_metadata(st, "config");
        if (json && rs_config_parse(json, &rc->cfg, &err) == 0)
            rc->have_cfg = true;
        rs_safetensors_close(st);
    }
    if (!rc->have_cfg)
        return;
    rc->ctx.class_names = (const char *const *)rc->cfg.labels;
    rc->ctx.num_classes = rc->cfg.num_classes;
    int C = rc->cfg.channels, H = rc->cfg.image_h, W = rc->cfg.image_w, V = run->num_views;
    size_t n = (size_t)C * H * W;
    rs_source *src = NULL;
    float *source_px = malloc(sizeof(float) * n), *px = malloc(sizeof(float) * n * (V > 0 ? V : 1));
    int rc2 = !source_px || !px ? RS_ENOMEM : rs_source_open(run->data, &src, &err);
    if (!rc2)
        rc2 = rs_source_load(src, image, C, H, W, source_px, &err);
    for (int v = 0; v < V && !rc2; v++) {
        rs_view_spec spec;
        rs_view view;
        rc2 = rs_view_spec_parse(run->view_specs[v], &spec, &err);
        if (!rc2) {
            rs_view_draw(&spec, W, H, run->seed, image, v, &view);
            rs_view_render(&view, source_px, C, H, W, px + (size_t)v * n);
        }
    }
    rs_source_close(src);
    free(source_px);
    if (rc2) {
        free(px);
        return;
    }
    rc->pixels = px;
    rc->ctx.pixels = px;
    rc->ctx.channels = C, rc->ctx.height = H, rc->ctx.width = W;
}

void rs_report_context_free(rs_report_context *rc)
{
    if (!rc)
        return;
    free(rc->pixels);
    if (rc->have_cfg)
        rs_config_free(&rc->cfg);
    memset(rc, 0, sizeof *rc);
}

/* heatmap.c — per-patch scalars over the image (see heatmap.h). */
#include "heatmap.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MARGIN 16.0

int rs_heat_metric_parse(const char *text, rs_heat_metric *out, rs_error *err)
{
    static const char *names[] = {"gate", "entropy", "jsd", "changed"};
    for (int i = 0; i < 4; i++) {
        if (text && !strcmp(text, names[i])) {
            *out = (rs_heat_metric)i;
            return 0;
        }
    }
    return rs_error_set(err, RS_EINVAL, "unknown metric '%s' (gate, entropy, jsd or changed)", text ? text : "");
}

const char *rs_heat_metric_name(rs_heat_metric m)
{
    switch (m) {
    case RS_HEAT_GATE: return "top-1 gate";
    case RS_HEAT_ENTROPY: return "routing entropy (bits)";
    case RS_HEAT_JSD: return "JSD to the matched reference patch (bits)";
    case RS_HEAT_CHANGED: return "fraction of views with a different top-1 expert";
    }
    return "?";
}

/* The renormalised distribution of patch J (view V, layer L) into P (E). */
static void dist(const rs_image_routing *r, int v, int l, int j, double *p)
{
    const float *q = r->probs + (((size_t)v * r->layers + l) * r->tokens + j + r->has_cls) * r->experts;
    double s = 0;
    for (int e = 0; e < r->experts; e++)
        s += p[e] = q[e] > 0 ? q[e] : 0;
    for (int e = 0; e < r->experts; e++)
        p[e] = s > 0 ? p[e] / s : 1.0 / r->experts;
}

static double entropy_bits(const double *p, int n)
{
    double h = 0;
    for (int e = 0; e < n; e++)
        if (p[e] > 0)
            h -= p[e] * log2(p[e]);
    return h;
}

int rs_heatmap_values(const rs_image_routing *r, rs_heat_metric metric, int view, int layer, double *values,
                      rs_error *err)
{
    if (layer < 0 || layer >= r->layers)
        return rs_error_set(err, RS_EINVAL, "layer %d out of range (the run has %d MoE layers)", layer, r->layers);
    if (metric != RS_HEAT_CHANGED && (view < 0 || view >= r->views))
        return rs_error_set(err, RS_EINVAL, "view %d out of range (the run has %d views)", view, r->views);
    if (metric == RS_HEAT_JSD && view == 0)
        return rs_error_set(err, RS_EINVAL, "jsd compares a view with view 0: choose a view >= 1");
    int E = r->experts, Np = r->patches;
    double *p = malloc(sizeof *p * 3 * (size_t)E);
    int *cnt = calloc((size_t)Np * 2, sizeof *cnt);
    if (!p || !cnt) {
        free(p), free(cnt);
        return rs_error_set(err, RS_ENOMEM, "out of memory");
    }
    double *q = p + E, *mid = q + E;
    for (int j = 0; j < Np; j++) {
        values[j] = NAN;
        switch (metric) {
        case RS_HEAT_GATE:
            values[j] = r->top_gate[(((size_t)view * r->layers + layer) * r->tokens + j + r->has_cls) * r->record_k];
            break;
        case RS_HEAT_ENTROPY:
            dist(r, view, layer, j, p);
            values[j] = entropy_bits(p, E);
            break;
        case RS_HEAT_JSD: {
            int m = r->match[(size_t)view * Np + j];
            if (m < 0 || m >= Np)
                break;
            dist(r, view, layer, j, p);
            dist(r, 0, layer, m, q);
            for (int e = 0; e < E; e++)
                mid[e] = 0.5 * (p[e] + q[e]);
            double jsd = entropy_bits(mid, E) - 0.5 * (entropy_bits(p, E) + entropy_bits(q, E));
            values[j] = jsd < 0 ? 0 : jsd > 1 ? 1 : jsd;
            break;
        }
        case RS_HEAT_CHANGED:
            break;
        }
    }
    if (metric == RS_HEAT_CHANGED) {
        for (int v = 1; v < r->views; v++) {
            for (int j = 0; j < Np; j++) {
                int m = r->match[(size_t)v * Np + j];
                if (m < 0 || m >= Np)
                    continue;
                cnt[2 * m]++;
                cnt[2 * m + 1] += rs_image_top1(r, v, layer, j) != rs_image_top1(r, 0, layer, m);
            }
        }
        for (int m = 0; m < Np; m++)
            values[m] = cnt[2 * m] ? (double)cnt[2 * m + 1] / cnt[2 * m] : NAN;
    }
    free(p), free(cnt);
    return 0;
}

int rs_render_heatmap(const rs_image_routing *r, const rs_render_context *ctx, rs_heat_metric metric, int view,
                      int layer, const char *path, rs_error *err)
{
    if (view < 0)
        view = metric == RS_HEAT_JSD ? 1 : 0;
    if (metric == RS_HEAT_CHANGED)
        view = 0;
    if (metric == RS_HEAT_JSD && r->views < 2)
        return rs_error_set(err, RS_EINVAL, "jsd needs a run with at least two views");
    int l0 = layer < 0 ? 0 : layer, l1 = layer < 0 ? r->layers : layer + 1;
    if (layer >= r->layers)
        return rs_error_set(err, RS_EINVAL, "layer %d out of range (the run has %d MoE layers)", layer, r->layers);
    int nl = l1 - l0, Np = r->patches, gw = r->grid_w, gh = r->grid_h;
    double *vals = malloc(sizeof *vals * (size_t)nl * Np);
    if (!vals)
        return rs_error_set(err, RS_ENOMEM, "out of memory");
    double vmax = 0;
    for (int l = l0; l < l1; l++) {
        int rc = rs_heatmap_values(r, metric, view, l, vals + (size_t)(l - l0) * Np, err);
        if (rc) {
            free(vals);
            return rc;
        }
    }
    for (size_t i = 0; i < (size_t)nl * Np; i++)
        if (vals[i] > vmax)
            vmax = vals[i];
    double hi = 1.0;
    if (metric == RS_HEAT_ENTROPY)
        hi = log2(r->experts > 1 ? r->experts : 2);
    else if (metric == RS_HEAT_JSD)
        hi = fmax(0.05, ceil(vmax / 0.05 - 1e-9) * 0.05);

    const rs_run_info *run = ctx ? ctx->run : NULL;
    char title[320], sub[320], cls[96], cls2[96], model[256];
    rs_run_model_label(run, model, sizeof model);
    snprintf(title, sizeof title, "%s — %s, run %lld, image %d (label %s)", rs_heat_metric_name(metric), model,
             run ? (long long)run->id : 0LL, r->image,
             rs_render_class_name(ctx, r->label, cls, sizeof cls));
    const char *spec = run && run->view_specs && view < run->num_views ? run->view_specs[view] : "?";
    if (metric == RS_HEAT_CHANGED)
        snprintf(sub, sizeof sub, "on view 0 (%s), over views 1-%d; predicted %s (p = %.2f)", spec, r->views - 1,
                 rs_render_class_name(ctx, r->predicted[0], cls2, sizeof cls2), r->pred_prob[0]);
    else
        snprintf(sub, sizeof sub, "view %d (%s); predicted %s (p = %.2f)%s", view, spec,
                 rs_render_class_name(ctx, r->predicted[view], cls2, sizeof cls2), r->pred_prob[view],
                 ctx && ctx->pixels && rs_render_view_attacked(run, view, NULL)
                     ? "; image: " RS_RENDER_START_PIXELS : "");

    double cell = fmin(40.0, fmax(18.0, 260.0 / (gw > gh ? gw : gh)));
    double pw = gw * cell, ph = gh * cell, gap = 20, top = MARGIN + 13 + 6 + 14 + 12 + 11 + 6;
    double bar_x = MARGIN + nl * pw + (nl - 1) * gap + 24;
    double width = bar_x + 14 + 8 + 40 + MARGIN, height = top + ph + 28 + MARGIN;
    {
        cairo_surface_t *s = cairo_image_surface_create(CAIRO_FORMAT_ARGB32, 1, 1);
        cairo_t *m = cairo_create(s);
        width = fmax(width, fmax(rs_text_width(m, 13, true, title), rs_text_width(m, 10, false, sub)) + 2 * MARGIN);
        cairo_destroy(m);
        cairo_surface_destroy(s);
    }
    rs_canvas cv;
    int rc = rs_canvas_open(&cv, path, ceil(width), ceil(height), err);
    if (rc) {
        free(vals);
        return rc;
    }
    cairo_t *cr = cv.cr;
    cairo_set_source_rgb(cr, 0, 0, 0);
    rs_text(cr, MARGIN, MARGIN + 13, 13, true, 0, title);
    rs_text(cr, MARGIN, MARGIN + 13 + 6 + 14, 10, false, 0, sub);
    char buf[64];
    for (int l = l0; l < l1; l++) {
        double px = MARGIN + (l - l0) * (pw + gap), py = top;
        const double *v = vals + (size_t)(l - l0) * Np;
        cairo_set_source_rgb(cr, 0, 0, 0);
        if (run && l < 64)
            snprintf(buf, sizeof buf, "MoE layer %d (block %d)", l, run->layer_blocks[l]);
        else
            snprintf(buf, sizeof buf, "MoE layer %d", l);
        rs_text(cr, px + pw / 2, py - 7, 11, true, 0.5, buf);
        rs_render_view_image(cr, ctx, view, px, py, pw, ph, 1.0);
        for (int j = 0; j < Np; j++) {
            double x = px + (j % gw) * cell, y = py + (j / gw) * cell, rgb[3], txt[3];
            if (isnan(v[j])) {
                cairo_set_source_rgba(cr, 0.85, 0.85, 0.85, 0.85);
                cairo_rectangle(cr, x, y, cell, cell);
                cairo_fill(cr);
                cairo_set_source_rgb(cr, 0.5, 0.5, 0.5);
                cairo_set_line_width(cr, 1.0);
                rs_hatch(cr, x, y, cell, cell, 5);
                continue;
            }
            rs_palette_viridis(v[j] / hi, rgb);
            cairo_set_source_rgba(cr, rgb[0], rgb[1], rgb[2], 0.78);
            cairo_rectangle(cr, x, y, cell, cell);
            cairo_fill(cr);
            rs_palette_text_on(rgb, txt);
            cairo_set_source_rgb(cr, txt[0], txt[1], txt[2]);
            snprintf(buf, sizeof buf, "%.2f", v[j]);
            double fs = fmin(cell * 0.3, 11);
            rs_text(cr, x + cell / 2, y + cell / 2 + fs * 0.36, fs, false, 0.5, buf);
        }
        cairo_set_source_rgb(cr, 0.3, 0.3, 0.3);
        cairo_set_line_width(cr, 1.0);
        cairo_rectangle(cr, px, py, pw, ph);
        cairo_stroke(cr);
    }
    /* Colour bar. */
    int steps = 64;
    for (int i = 0; i < steps; i++) {
        double rgb[3];
        rs_palette_viridis((i + 0.5) / steps, rgb);
        cairo_set_source_rgb(cr, rgb[0], rgb[1], rgb[2]);
        cairo_rectangle(cr, bar_x, top + ph - (i + 1) * ph / steps, 14, ph / steps + 0.3);
        cairo_fill(cr);
    }
    cairo_set_source_rgb(cr, 0.3, 0.3, 0.3);
    cairo_rectangle(cr, bar_x, top, 14, ph);
    cairo_stroke(cr);
    cairo_set_source_rgb(cr, 0, 0, 0);
    for (int t = 0; t <= 4; t++) {
        double val = hi * t / 4, y = top + ph - ph * t / 4;
        cairo_move_to(cr, bar_x + 14, y);
        cairo_line_to(cr, bar_x + 18, y);
        cairo_stroke(cr);
        snprintf(buf, sizeof buf, "%.2f", val);
        rs_text(cr, bar_x + 20, y + 3.5, 9, false, 0, buf);
    }
    cairo_set_source_rgb(cr, 0.3, 0.3, 0.3);
    rs_text(cr, MARGIN, top + ph + 18, 9, false, 0, "hatched: n/a (no matched patch)");
    free(vals);
    return rs_canvas_close(&cv, err);
}

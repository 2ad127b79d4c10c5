/* report_fig.c — the report's figures: their files and captions, the grids, and the
 * context (class names, view pixels) under a grid. See report_parts.h and report.h. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "grid.h"
#include "report_parts.h"
#include "safetensors.h"
#include "source.h"
#include "view.h"

void rs_report_figure(rs_report_state *R, const char *file, const char *caption)
{
    char rel[512];
    snprintf(rel, sizeof rel, "figures/%s", file);
    rs_doc_add(&R->d, RS_DOC_FIGURE, caption, rel);
}

void rs_report_fig_path(rs_report_state *R, const char *file, char *buf, size_t size)
{
    snprintf(buf, size, "%s/figures/%s", R->opt->out_dir, file);
}

void rs_report_grid_figure(rs_report_state *R, const rs_run_info *run, int image)
{
    if (R->d.rc)
        return;
    char file[256], path[4096], caption[512], rl[200];
    snprintf(file, sizeof file, "grid-run%" PRId64 "-image%d.png", run->id, image);
    rs_report_fig_path(R, file, path, sizeof path);
    rs_image_routing r;
    int rc = rs_image_routing_load(R->store, run, image, &r, R->d.err);
    if (rc) {
        R->d.rc = rc;
        return;
    }
    rs_report_context rc_ctx;
    rs_report_context_load(run, image, &rc_ctx);
    rc = rs_render_grid(&r, &rc_ctx.ctx, path, NULL, R->d.err);
    rs_report_context_free(&rc_ctx);
    rs_image_routing_free(&r);
    if (rc) {
        R->d.rc = rc;
        return;
    }
    rs_report_run_label(run, rl, sizeof rl);
    snprintf(caption, sizeof caption,
             "Expert-selection grid of image %d, %s: top-1 expert per patch, one row per MoE layer; red borders "
             "where the expert differs from view 0's matched patch, hatched cells have no match.",
             image, rl);
    rs_report_figure(R, file, caption);
}

/* The run's expert load and its transition / S matrices, as two figures. */
void rs_report_load_transition_figures(rs_report_state *R, const rs_run_info *r, const rs_stats *st,
                                       const char *rn)
{
    rs_doc *d = &R->d;
    char file[128], path[4096];
    snprintf(file, sizeof file, "load-run%s.png", rn);
    rs_report_fig_path(R, file, path, sizeof path);
    if (!d->rc)
        d->rc = rs_render_load(st, r, path, d->err);
    rs_report_figure(R, file, "Expert load per MoE layer (share of the top-k slots, all views; dashed: uniform).");
    snprintf(file, sizeof file, "transition-run%s.png", rn);
    rs_report_fig_path(R, file, path, sizeof path);
    if (!d->rc)
        d->rc = rs_render_transition(st, r, -1, path, d->err);
    rs_report_figure(R, file, "Top-1 transitions view 0 \u2192 other views and the PRC matrix S per MoE layer.");
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

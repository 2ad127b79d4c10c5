/* routerscope render KIND --db FILE ... -o OUT — pictures of a stored run (render/). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "config.h"
#include "grid.h"
#include "heatmap.h"
#include "plot.h"
#include "safetensors.h"
#include "source.h"
#include "stats.h"
#include "store.h"
#include "view.h"

static const char usage_text[] =
    "usage: routerscope render grid|heatmap|sweep|accuracy|load|transition --db FILE --run R\n"
    "                          [--image I] [--metric M] [--view V] [--layer L]\n"
    "                          [--runs A,B,...] -o OUT.png|OUT.pdf|OUT.svg\n"
    "\n"
    "Draw a picture of run R of the routing store FILE; the format follows OUT's extension.\n"
    "\n"
    "  grid        top-1 expert of every patch of image I, views side by side, one row per\n"
    "              MoE layer; red borders where a view's expert differs from view 0's\n"
    "  heatmap     a per-patch value of image I: --metric gate|entropy|jsd|changed\n"
    "              (default gate) of --view V (default 0; jsd: 1), every MoE layer or --layer\n"
    "  accuracy    accuracy of every view (clean, noise severities) with Wilson bands;\n"
    "              --runs A,B,... overlays runs\n"
    "  sweep       Top-1 agreement against the views (noise severities) with bootstrap bands;\n"
    "              --runs A,B,... draws several runs, --layer one MoE layer (default all)\n"
    "  load        expert load per MoE layer\n"
    "  transition  E x E top-1 transition counts and the PRC matrix S, per MoE layer or --layer\n"
    "\n"
    "  --image I   the image's index in the data source (default: the run's first image)\n"
    "\n"
    "The faint image under grids and heatmaps is re-created from the run's data source, view\n"
    "specs and seed, and class names come from the run's checkpoint, when those files are\n"
    "still there.\n";


/* Fills CTX's class names and view pixels from the run's checkpoint and data, when they
 * can be read; says on stderr what is left out. CFG and PIXELS are owned by the caller. */
static void load_context(const rs_run_info *run, int image, rs_config *cfg, bool *have_cfg, float **pixels,
                         rs_render_context *ctx)
{
    rs_error err = {0};
    rs_safetensors *st = NULL;
    *have_cfg = false;
    *pixels = NULL;
    if (rs_safetensors_open(run->model_path, &st, &err) == 0) {
        const char *json = rs_safetensors_metadata(st, "config");
        if (json && rs_config_parse(json, cfg, &err) == 0)
            *have_cfg = true;
        rs_safetensors_close(st);
    }
    if (!*have_cfg) {
        fprintf(stderr, "routerscope render: note: no class names or image (%s)\n",
                err.msg[0] ? err.msg : "checkpoint without a config");
        return;
    }
    ctx->class_names = (const char *const *)cfg->labels;
    ctx->num_classes = cfg->num_classes;
    if (image < 0)
        return;
    int C = cfg->channels, H = cfg->image_h, W = cfg->image_w, V = run->num_views;
    size_t n = (size_t)C * H * W;
    rs_source *src = NULL;
    float *source_px = malloc(sizeof(float) * n), *px = malloc(sizeof(float) * n * (V > 0 ? V : 1));
    int rc = !source_px || !px ? RS_ENOMEM : rs_source_open(run->data, &src, &err);
    if (!rc)
        rc = rs_source_load(src, image, C, H, W, source_px, &err);
    for (int v = 0; v < V && !rc; v++) {
        rs_view_spec spec;
        rs_view view;
        rc = rs_view_spec_parse(run->view_specs[v], &spec, &err);
        if (!rc) {
            rs_view_draw(&spec, W, H, run->seed, image, v, &view);
            rs_view_render(&view, source_px, C, H, W, px + (size_t)v * n);
        }
    }
    rs_source_close(src);
    free(source_px);
    if (rc) {
        fprintf(stderr, "routerscope render: note: drawing without the image (%s)\n",
                err.msg[0] ? err.msg : "out of memory");
        free(px);
        return;
    }
    *pixels = px;
    ctx->pixels = px;
    ctx->channels = C, ctx->height = H, ctx->width = W;
}

int cmd_render(int argc, char **argv)
{
    static const struct option opts[] = {{"db", required_argument, NULL, 'D'},
                                         {"run", required_argument, NULL, 'r'},
                                         {"runs", required_argument, NULL, 'R'},
                                         {"image", required_argument, NULL, 'i'},
                                         {"metric", required_argument, NULL, 'm'},
                                         {"view", required_argument, NULL, 'v'},
                                         {"layer", required_argument, NULL, 'l'},
                                         {"output", required_argument, NULL, 'o'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *db = NULL, *out = NULL, *runs_text = NULL, *metric_text = "gate";
    int run_id = 0, image = -1, view = -1, layer = -1, c;
    while ((c = rs_cli_next_option("render", argc, argv, ":ho:", opts)) != -1) {
        switch (c) {
        case 'D': db = optarg; break;
        case 'o': out = optarg; break;
        case 'R': runs_text = optarg; break;
        case 'm': metric_text = optarg; break;
        case 'r':
            if (!rs_cli_parse_int("render", "--run", optarg, 1, 2147483647, &run_id))
                return RS_EXIT_USAGE;
            break;
        case 'i':
            if (!rs_cli_parse_int("render", "--image", optarg, 0, 2147483647, &image))
                return RS_EXIT_USAGE;
            break;
        case 'v':
            if (!rs_cli_parse_int("render", "--view", optarg, 0, 1000000, &view))
                return RS_EXIT_USAGE;
            break;
        case 'l':
            if (!rs_cli_parse_int("render", "--layer", optarg, 0, 1000000, &layer))
                return RS_EXIT_USAGE;
            break;
        case 'h': fputs(usage_text, stdout); return RS_EXIT_OK;
        default: return RS_EXIT_USAGE;
        }
    }
    if (optind >= argc)
        return rs_cli_usage_error("render", "what to draw? grid, heatmap, sweep, accuracy, load or transition");
    const char *kind = argv[optind];
    if (optind + 1 != argc)
        return rs_cli_usage_error("render", "unexpected argument '%s'", argv[optind + 1]);
    bool is_grid = !strcmp(kind, "grid"), is_heat = !strcmp(kind, "heatmap"), is_sweep = !strcmp(kind, "sweep");
    bool is_load = !strcmp(kind, "load"), is_trans = !strcmp(kind, "transition"), is_acc = !strcmp(kind, "accuracy");
    if (!is_grid && !is_heat && !is_sweep && !is_load && !is_trans && !is_acc)
        return rs_cli_usage_error("render", "unknown picture '%s' (grid, heatmap, sweep, accuracy, load or transition)",
                                  kind);
    if (!db)
        return rs_cli_usage_error("render", "--db is required");
    if (!out)
        return rs_cli_usage_error("render", "-o OUT is required");
    rs_error err = {0};
    rs_render_format fmt;
    if (rs_render_format_of(out, &fmt, &err))
        return rs_cli_usage_error("render", "%s", err.msg);
    rs_heat_metric metric = RS_HEAT_GATE;
    if (is_heat && rs_heat_metric_parse(metric_text, &metric, &err))
        return rs_cli_usage_error("render", "%s", err.msg);
    int64_t *ids = NULL;
    int nids = 0;
    if (runs_text) {
        if (!is_sweep && !is_acc)
            return rs_cli_usage_error("render", "--runs is for sweep and accuracy; use --run");
        if (!rs_cli_parse_runs(runs_text, &ids, &nids))
            return rs_cli_usage_error("render", "--runs wants run ids separated by commas, got '%s'", runs_text);
    } else {
        if (!run_id)
            return rs_cli_usage_error("render", "--run is required");
        ids = malloc(sizeof *ids);
        if (!ids)
            return RS_EXIT_FAIL;
        ids[0] = run_id;
        nids = 1;
    }

    rs_store *store = NULL;
    if (rs_store_open(db, true, &store, &err)) {
        free(ids);
        return rs_cli_fail(&err);
    }
    int rc = 0;
    rs_run_info *info = calloc((size_t)nids, sizeof *info);
    rs_stats **stats = calloc((size_t)nids, sizeof *stats);
    if (!info || !stats)
        rc = rs_error_set(&err, RS_ENOMEM, "out of memory");
    for (int i = 0; i < nids && !rc; i++)
        rc = rs_store_get_run(store, ids[i], &info[i], &err);
    if (!rc && (is_grid || is_heat)) {
        if (image < 0)
            image = info[0].offset;
        rs_image_routing r;
        rc = rs_image_routing_load(store, &info[0], image, &r, &err);
        if (!rc) {
            rs_config cfg = {0};
            bool have_cfg;
            float *pixels;
            rs_render_context ctx = {.run = &info[0]};
            load_context(&info[0], image, &cfg, &have_cfg, &pixels, &ctx);
            if (view >= r.views)
                rc = rs_error_set(&err, RS_EINVAL, "view %d out of range (run %d has %d views)", view, run_id, r.views);
            else if (is_grid)
                rc = rs_render_grid(&r, &ctx, out, NULL, &err);
            else
                rc = rs_render_heatmap(&r, &ctx, metric, view, layer, out, &err);
            free(pixels);
            if (have_cfg)
                rs_config_free(&cfg);
            rs_image_routing_free(&r);
        }
    } else if (!rc) {
        rs_stats_options opt = {.resamples = is_sweep ? 0 : -1, .seed = RS_STATS_DEFAULT_SEED, .name = db};
        bool several = is_sweep || is_acc;
        for (int i = 0; i < nids && !rc; i++)
            rc = rs_stats_compute(store, info[i].id, info[i].top_k, &opt, &stats[i], &err);
        if (!rc && several) {
            const rs_run_info **rp = malloc(sizeof *rp * (size_t)nids);
            if (!rp)
                rc = rs_error_set(&err, RS_ENOMEM, "out of memory");
            for (int i = 0; i < nids && !rc; i++)
                rp[i] = &info[i];
            if (!rc && is_sweep)
                rc = rs_render_sweep((const rs_stats *const *)stats, rp, nids, layer, out, &err);
            else if (!rc)
                rc = rs_render_accuracy((const rs_stats *const *)stats, rp, nids, out, &err);
            free(rp);
        } else if (!rc && is_load) {
            rc = rs_render_load(stats[0], &info[0], out, &err);
        } else if (!rc) {
            rc = rs_render_transition(stats[0], &info[0], layer, out, &err);
        }
    }
    for (int i = 0; i < nids; i++) {
        if (stats)
            rs_stats_free(stats[i]);
        if (info)
            rs_run_info_clear(&info[i]);
    }
    free(stats);
    free(info);
    free(ids);
    rs_store_close(store);
    return rc ? rs_cli_fail(&err) : RS_EXIT_OK;
}

/* routerscope render KIND --db FILE ... -o OUT — pictures of a stored run (render/). */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attack_plot.h"
#include "stats/attack_stats.h"
#include "cli.h"
#include "grid.h"
#include "heatmap.h"
#include "plot.h"
#include "store/run.h"
#include "stats/stats.h"
#include "store/store.h"

static const char usage_text[] =
    "usage: routerscope render grid|heatmap|sweep|accuracy|load|transition|attack-curves|\n"
    "                          min-eps|min-eps-hist|attack-objective --db FILE --run R\n"
    "                          [--image I] [--metric M] [--view V] [--views LIST] [--layer L]\n"
    "                          [--runs A,B,...] -o OUT.png|OUT.pdf|OUT.svg\n"
    "\n"
    "Draw a picture of run R of the routing store FILE; the format follows OUT's extension.\n"
    "\n"
    "  grid        top-1 expert of every patch of image I, views side by side, one row per\n"
    "              MoE layer; red borders where a view's expert differs from view 0's.\n"
    "              --views V1,V2,...: view 0 and these views (ascending); default: every\n"
    "              view up to 16, else view 0 and one view per kind at severity 3, as the\n"
    "              report draws it\n"
    "  heatmap     a per-patch value of image I: --metric gate|entropy|jsd|changed\n"
    "              (default gate) of --view V (default 0; jsd: 1), every MoE layer or --layer B;\n"
    "              entropy and jsd need the softmax (not in a run replayed with --record topk)\n"
    "  accuracy    accuracy of every view (clean, noise severities) with Wilson bands;\n"
    "              --runs A,B,... overlays runs\n"
    "  sweep       Top-1 agreement against the views (noise severities) with bootstrap bands;\n"
    "              --runs A,B,... draws several runs, --layer B one MoE layer (default all)\n"
    "  load        expert load per MoE layer\n"
    "  transition  E x E top-1 transition counts and the PRC matrix S, per MoE layer or --layer B\n"
    "\n"
    "Adversarial runs (view 0 clean, then one pgd view per increasing eps; docs/metrics.md):\n"
    "  attack-curves     Top-1 / Top-2 / order-agnostic agreement and accuracy against eps with\n"
    "                    bootstrap bands; --runs A,B,... overlays runs of the same eps grid\n"
    "  min-eps           per patch, the smallest eps at which its top-1 expert changes: of\n"
    "                    image I with --image, else the median over images; every MoE layer\n"
    "                    or --layer B (B: the block index, as figures print \"block B\")\n"
    "  min-eps-hist      share of patches by min-eps, per MoE layer\n"
    "  attack-objective  mean attack objective per PGD step, one line per eps (stores that\n"
    "                    record attacks)\n"
    "\n"
    "  R, A, B     a run id (see 'routerscope runs'), last, or MODEL/PROTOCOL: the last finished\n"
    "              run of the checkpoint with that file stem, replayed with that protocol\n"
    "  --image I   the image's index in the data source (default: the run's first image)\n"
    "  --layer B   one MoE layer, named by its transformer block index B as figures label it\n"
    "              (\"block 3\"); a block that is not a MoE block is refused, naming the MoE blocks\n"
    "\n"
    "The view images beside grids and under heatmaps are re-created from the run's data source, view\n"
    "specs and seed when the data is still there; class names come from the store.\n";


#define MAX_GRID_VIEWS 64
_Static_assert(MAX_GRID_VIEWS >= RS_GRID_MAX_VIEWS, "--views holds the default's views");

/* --views: "V1,V2,..." (ascending, distinct) into VIEWS after view 0; returns the count
 * with view 0, or 0 after a usage error (printed). */
static int parse_views(const char *text, int views[MAX_GRID_VIEWS])
{
    int n = 0;
    views[n++] = 0;
    const char *p = text;
    while (*p) {
        char *end;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (end == p || errno || v < 0 || v > 1000000 || (*end && *end != ',')) {
            rs_cli_usage_error("render", "--views '%s': a comma-separated list of view numbers, e.g. 3,18,33", text);
            return 0;
        }
        if (v == 0 && n == 1)
            ; /* view 0 named: it comes first anyway */
        else if (v <= views[n - 1]) {
            rs_cli_usage_error("render", "--views '%s': views in ascending order, each once", text);
            return 0;
        } else if (n == MAX_GRID_VIEWS) {
            rs_cli_usage_error("render", "--views '%s': at most %d views", text, MAX_GRID_VIEWS - 1);
            return 0;
        } else
            views[n++] = (int)v;
        p = *end ? end + 1 : end;
        if (*end && !*p) {
            rs_cli_usage_error("render", "--views '%s': a view number after the last comma", text);
            return 0;
        }
    }
    return n;
}

/* grid / heatmap of one image of RUN; a grid of views WANT[0..NWANT) (NWANT 0: the default,
 * rs_render_grid_views). */
static int draw_image(rs_store *store, const rs_run_info *run, bool is_grid, int image, rs_patch_metric metric,
                      int view, const int *want, int nwant, int layer, const char *out, rs_error *err)
{
    if (image < 0)
        image = run->offset;
    rs_image_routing r;
    int rc = rs_run_image_routing(store, run, image, &r, err);
    if (rc)
        return rc;
    float *pixels = NULL;
    rs_render_context ctx;
    rs_error no_pixels;
    if (rs_render_context_of_run(run, image, &ctx, &pixels, &no_pixels))
        fprintf(stderr, "routerscope render: note: drawing without the image (%s)\n", no_pixels.msg);
    int views[MAX_GRID_VIEWS], n = nwant;
    char *specs[MAX_GRID_VIEWS];
    rs_run_info shown;
    if (nwant)
        memcpy(views, want, sizeof *want * (size_t)nwant);
    else if (is_grid)
        n = rs_render_grid_views(run, views, NULL);
    if (view >= r.views)
        rc = rs_error_set(err, RS_EINVAL, "view %d out of range (run %lld has %d views)", view, (long long)run->id,
                          r.views);
    else if (is_grid && views[n - 1] >= r.views)
        rc = rs_error_set(err, RS_EINVAL, "--views: view %d out of range (run %lld has %d views)", views[n - 1],
                          (long long)run->id, r.views);
    else if (is_grid) {
        if (n < r.views)
            rs_render_keep_views(&r, &ctx, pixels, views, n, &shown, specs);
        rc = rs_render_grid(&r, &ctx, out, NULL, err);
    }
    else
        rc = rs_render_heatmap(&r, &ctx, metric, view, layer, out, err);
    free(pixels);
    rs_image_routing_free(&r);
    return rc;
}

/* The MoE slot of block BLOCK of RUN into *SLOT (BLOCK < 0: -1, every layer). */
static int layer_slot(const rs_run_info *run, int block, int *slot, rs_error *err)
{
    *slot = -1;
    if (block < 0)
        return 0;
    for (int l = 0; l < run->num_layers; l++)
        if (run->layer_blocks[l] == block)
            return *slot = l, 0;
    return rs_error_set(err, RS_EINVAL, "run %lld has no MoE layer at block %d", (long long)run->id, block);
}

/* One attack figure of RUNS (N runs; all but curves draw the first). */
static int draw_attack_kind(rs_store *store, const char *db, const char *kind, rs_attack_stats **as,
                            const rs_run_info *runs, int n, int image, int block, const char *out, rs_error *err)
{
    if (!strcmp(kind, "attack-curves")) {
        const rs_run_info **rp = calloc((size_t)n, sizeof *rp);
        if (!rp)
            return rs_error_set(err, RS_ENOMEM, "out of memory");
        for (int i = 0; i < n; i++)
            rp[i] = &runs[i];
        int rc = rs_render_attack_curves((const rs_attack_stats *const *)as, rp, n, out, err);
        free(rp);
        return rc;
    }
    int slot, rc = 0;
    if (!strcmp(kind, "min-eps-hist"))
        return rs_render_min_eps_hist(as[0], &runs[0], out, err);
    if (!strcmp(kind, "min-eps")) {
        if (image >= 0 && (image < runs[0].offset || image - runs[0].offset >= as[0]->images))
            return rs_error_set(err, RS_EINVAL, "image %d is not in run %lld (images %d..%d)", image,
                                (long long)runs[0].id, runs[0].offset, runs[0].offset + as[0]->images - 1);
        if ((rc = layer_slot(&runs[0], block, &slot, err)))
            return rc;
        return rs_render_min_eps_map(as[0], &runs[0], image < 0 ? -1 : image - runs[0].offset, slot, out, err);
    }
    double *mean = NULL;
    int steps = 0;
    rc = rs_attack_objective(store, db, &runs[0], &mean, &steps, err);
    if (!rc)
        rc = rs_render_attack_objective(mean, steps, as[0], &runs[0], out, err);
    free(mean);
    return rc;
}

/* The attack figures: statistics and attack statistics of each run, then the figure. */
static int draw_attack(rs_store *store, const char *db, const char *kind, const rs_run_info *runs, int n, int image,
                       int block, const char *out, rs_error *err)
{
    bool curves = !strcmp(kind, "attack-curves");
    rs_stats_options opt = {.resamples = curves ? 0 : -1, .seed = RS_STATS_DEFAULT_SEED, .name = db};
    rs_stats **stats = calloc((size_t)n, sizeof *stats);
    rs_attack_stats **as = calloc((size_t)n, sizeof *as);
    int rc = !stats || !as ? rs_error_set(err, RS_ENOMEM, "out of memory") : 0;
    for (int i = 0; i < n && !rc; i++) {
        rc = rs_stats_compute(store, runs[i].id, &opt, &stats[i], err);
        if (!rc)
            rc = rs_attack_stats_compute(store, &runs[i], stats[i], &opt, &as[i], err);
    }
    if (!rc)
        rc = draw_attack_kind(store, db, kind, as, runs, n, image, block, out, err);
    for (int i = 0; i < n && stats && as; i++) {
        rs_stats_free(stats[i]);
        rs_attack_stats_free(as[i]);
    }
    free(stats);
    free(as);
    return rc;
}

/* The plots drawn from statistics: sweep and accuracy (one or several runs), load and
 * transition (one run). */
static int draw_plot(rs_store *store, const char *db, const char *kind, const rs_run_info *runs, int n, int layer,
                     const char *out, rs_error *err)
{
    bool is_sweep = !strcmp(kind, "sweep");
    rs_stats_options opt = {.resamples = is_sweep ? 0 : -1, .seed = RS_STATS_DEFAULT_SEED, .name = db};
    rs_stats **stats = calloc((size_t)n, sizeof *stats);
    const rs_run_info **rp = calloc((size_t)n, sizeof *rp);
    int rc = !stats || !rp ? rs_error_set(err, RS_ENOMEM, "out of memory") : 0;
    for (int i = 0; i < n && !rc; i++) {
        rp[i] = &runs[i];
        rc = rs_stats_compute(store, runs[i].id, &opt, &stats[i], err);
    }
    if (rc)
        ;
    else if (is_sweep)
        rc = rs_render_sweep((const rs_stats *const *)stats, rp, n, layer, out, err);
    else if (!strcmp(kind, "accuracy"))
        rc = rs_render_accuracy((const rs_stats *const *)stats, rp, n, out, err);
    else if (!strcmp(kind, "load"))
        rc = rs_render_load(stats[0], &runs[0], out, err);
    else
        rc = rs_render_transition(stats[0], &runs[0], layer, out, err);
    for (int i = 0; stats && i < n; i++)
        rs_stats_free(stats[i]);
    free(stats);
    free(rp);
    return rc;
}

typedef struct render_options {
    const char *db, *out, *run_text, *runs_text, *metric_text, *kind;  /* runs as given (store/run.h) */
    int image, view, layer;
    int views[MAX_GRID_VIEWS], num_views; /* --views: view 0 and the list; 0: not given */
} render_options;

static int parse(int argc, char **argv, render_options *o)
{
    static const struct option opts[] = {{"db", required_argument, NULL, 'D'},
                                         {"run", required_argument, NULL, 'r'},
                                         {"runs", required_argument, NULL, 'R'},
                                         {"image", required_argument, NULL, 'i'},
                                         {"metric", required_argument, NULL, 'm'},
                                         {"view", required_argument, NULL, 'v'},
                                         {"views", required_argument, NULL, 'V'},
                                         {"layer", required_argument, NULL, 'l'},
                                         {"output", required_argument, NULL, 'o'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    *o = (render_options){.metric_text = "gate", .image = -1, .view = -1, .layer = -1};
    int c;
    while ((c = rs_cli_next_option("render", argc, argv, ":ho:", opts)) != -1) {
        bool ok = true;
        switch (c) {
        case 'D': o->db = optarg; break;
        case 'o': o->out = optarg; break;
        case 'R': ok = rs_cli_check_runs("render", "--runs", o->runs_text = optarg); break;
        case 'm': o->metric_text = optarg; break;
        case 'r': ok = rs_cli_check_run("render", "--run", o->run_text = optarg); break;
        case 'i': ok = rs_cli_parse_int("render", "--image", optarg, 0, 2147483647, &o->image); break;
        case 'v': ok = rs_cli_parse_int("render", "--view", optarg, 0, 1000000, &o->view); break;
        case 'V': ok = (o->num_views = parse_views(optarg, o->views)) > 0; break;
        case 'l': ok = rs_cli_parse_int("render", "--layer", optarg, 0, 1000000, &o->layer); break;
        case 'h': fputs(usage_text, stdout); return -1;
        default: return RS_EXIT_USAGE;
        }
        if (!ok)
            return RS_EXIT_USAGE;
    }
    if (optind >= argc)
        return rs_cli_usage_error("render", "what to draw? grid, heatmap, sweep, accuracy, load, transition, "
                                  "attack-curves, min-eps, min-eps-hist or attack-objective");
    o->kind = argv[optind];
    if (optind + 1 != argc)
        return rs_cli_usage_error("render", "unexpected argument '%s'", argv[optind + 1]);
    static const char *const kinds[] = {"grid",          "heatmap", "sweep",        "accuracy",        "load",
                                        "transition",    "min-eps", "min-eps-hist", "attack-curves",
                                        "attack-objective"};
    bool known = false;
    for (size_t i = 0; i < sizeof kinds / sizeof *kinds; i++)
        known |= !strcmp(o->kind, kinds[i]);
    if (!known)
        return rs_cli_usage_error("render", "unknown picture '%s' (see --help)", o->kind);
    if (!o->db)
        return rs_cli_usage_error("render", "--db is required");
    if (!o->out)
        return rs_cli_usage_error("render", "-o OUT is required");
    if (o->runs_text && strcmp(o->kind, "sweep") && strcmp(o->kind, "accuracy") && strcmp(o->kind, "attack-curves"))
        return rs_cli_usage_error("render", "--runs is for sweep, accuracy and attack-curves; use --run");
    if (o->num_views && strcmp(o->kind, "grid"))
        return rs_cli_usage_error("render", "--views is for grid; heatmap takes one --view");
    if (!o->runs_text && !o->run_text)
        return rs_cli_usage_error("render", "--run is required");
    return 0;
}

/* The MoE slot of transformer block BLOCK in RUN (users name layers by their block, as
   figures label them); RS_EINVAL naming the MoE blocks when BLOCK is not one of them. */
static int moe_slot(const rs_run_info *run, int block, int *slot, rs_error *err)
{
    char blocks[256] = "";
    size_t len = 0;
    for (int l = 0; l < run->num_layers; l++) {
        if (run->layer_blocks[l] == block) {
            *slot = l;
            return 0;
        }
        len += (size_t)snprintf(blocks + len, len < sizeof blocks ? sizeof blocks - len : 0, "%s%d", l ? ", " : "",
                                run->layer_blocks[l]);
        if (len >= sizeof blocks)
            len = sizeof blocks - 1;
    }
    return rs_error_set(err, RS_EINVAL, "--layer %d: block %d of run %" PRId64 " is not a MoE block (MoE blocks: %s)",
                        block, block, run->id, blocks);
}

int cmd_render(int argc, char **argv)
{
    render_options o;
    int rc = parse(argc, argv, &o);
    if (rc)
        return rc < 0 ? RS_EXIT_OK : rc;
    rs_error err = {0};
    rs_render_format fmt;
    if (rs_render_format_of(o.out, &fmt, &err))
        return rs_cli_usage_error("render", "%s", err.msg);
    rs_patch_metric metric = RS_PATCH_GATE;
    bool is_grid = !strcmp(o.kind, "grid"), is_heat = !strcmp(o.kind, "heatmap");
    if (is_heat && rs_patch_metric_parse(o.metric_text, &metric, &err))
        return rs_cli_usage_error("render", "%s", err.msg);
    int64_t *ids = NULL;
    int nids = 0;
    rs_store *store = NULL;
    rs_run_info *runs = NULL;
    rc = rs_store_open(o.db, true, &store, &err);
    if (!rc)
        rc = rs_cli_select_runs(store, o.db, o.runs_text ? o.runs_text : o.run_text, &ids, &nids, &err);
    if (!rc && !(runs = calloc((size_t)nids, sizeof *runs)))
        rc = rs_error_set(&err, RS_ENOMEM, "out of memory");
    for (int i = 0; i < nids && !rc; i++)
        rc = rs_run_load(store, o.db, ids[i], &runs[i], &err);
    char why[160];
    if (!rc && is_heat && (metric == RS_PATCH_ENTROPY || metric == RS_PATCH_JSD) &&
        rs_run_lacks_softmax(&runs[0], metric == RS_PATCH_JSD ? "JSD" : "entropy", why, sizeof why))
        rc = rs_error_set(&err, RS_EINVAL, "%s", why);
    bool is_attack = !strcmp(o.kind, "attack-curves") || !strncmp(o.kind, "min-eps", 7) ||
                     !strcmp(o.kind, "attack-objective");
    int slot = -1, slot_i = -1;
    for (int i = 0; !rc && !is_attack && o.layer >= 0 && i < nids; i++) {
        rc = moe_slot(&runs[i], o.layer, &slot_i, &err);
        if (!rc && i > 0 && slot_i != slot)
            rc = rs_error_set(&err, RS_EINVAL, "--layer %d: runs %" PRId64 " and %" PRId64 " place block %d differently "
                              "among their MoE layers; draw them apart", o.layer, runs[0].id, runs[i].id, o.layer);
        slot = slot_i;
    }
    if (!rc && is_attack)
        rc = draw_attack(store, o.db, o.kind, runs, nids, o.image, o.layer, o.out, &err);
    else if (!rc && (is_grid || is_heat))
        rc = draw_image(store, &runs[0], is_grid, o.image, metric, o.view, o.views, o.num_views, slot, o.out, &err);
    else if (!rc)
        rc = draw_plot(store, o.db, o.kind, runs, nids, slot, o.out, &err);
    for (int i = 0; runs && i < nids; i++)
        rs_run_info_clear(&runs[i]);
    free(runs);
    free(ids);
    rs_store_close(store);
    return rc ? rs_cli_fail(&err) : RS_EXIT_OK;
}

/* report.h — the whole report of one or more runs: HTML, Markdown, PDF, tables, figures.
 *
 * rs_report_write writes into OUT_DIR (created when missing, with tables/ and figures/):
 *   index.html   self-contained page: tables inline as HTML (each in its own horizontally
 *                scrolling box), figures as relative figures/NAME.png, no external URL; before
 *                the appendices, the explorer of the example images' grids (pointing at a
 *                patch shows its matched patches and their top experts; sections/explorer.h,
 *                docs/explorer.md)
 *   report.md    the same content in Markdown with image links
 *   report.pdf   multi-page landscape A4: contents with page numbers, tables typeset
 *                with cairo (ruled, numbers right-aligned, intervals aligned apart),
 *                figures sized to the page and kept with their captions (two-view grids
 *                and heatmaps two to a row), headings kept with what follows; creation
 *                date pinned (RS_RENDER_PDF_DATE)
 *   tables/NAME.csv, tables/NAME.tex   every table (table.h renderings)
 *   figures/NAME.png                   every figure (with groups, the example grids of
 *                                      all methods composed into one per image)
 * The title names the models and protocols (with two groups or more: the question — methods
 * against the reference, k, protocols, data, images, seeds); the provenance is the last
 * section (an appendix; a model or view list met before is named by its run). Example
 * images: the first IMAGES images of the first run (in order) on which every pair run
 * holding them matched at least half of its patches to view 0, so a shown pair is mostly
 * comparable cells, not hatching (analyze/stats/examples.h, which also ranks the largest
 * differences). Every report starts with its answer. One run: the answer (its headline
 * figures: Top-1, Top-2 and order-agnostic agreement over all views and MoE layers with
 * bootstrap intervals, accuracy on view 0 and over all views with Wilson intervals), then
 * contents, consistency, accuracy, change and router tables; router, load, transition
 * figures, the severity sweep for a noise run, grids and a per-patch heatmap of the
 * example images. Several runs, in this order: the answer — each run against its
 * baseline (the paired differences of the headline rates with their intervals, then a
 * line per run with its sign and the reversals between the pair and noise protocols), or,
 * where no run has a comparable baseline (one model), each run's own headline figures as
 * for one run; with two groups or more the answer over seeds instead (one table of every
 * method against the reference per protocol and headline figure with t intervals, Holm
 * over its cells, the family named; groups.h's rs_groups_answer; at most five sentences)
 * and the per-run lines as an appendix before the provenance — then the contents, with
 * groups (options) the groups of seeds per protocol (tables/groups_tables.h: summary,
 * differences and a per-seed row per group and seed, and a figure; docs/groups.md), the
 * headline table (rows = runs x MoE layers + overall, with groups and without DETAIL the
 * overall rows only; Top-1, Top-2, Top-2 order-agnostic with bootstrap intervals, and the
 * paired Top-1 difference to the baseline), the paired differences of every rate with
 * McNemar's p on Top-1 (unless the answer showed them), the accuracy table, the severity
 * sweep of all noise runs, router figures per protocol (pair and noise runs never share a
 * chart), examples (without groups: grids of the example images per run, and per-patch
 * heatmaps of the first example; with groups: one figure per example image with every
 * method's first seed side by side under the first protocol whose views move, and one of
 * their heatmaps of the first image under noise), the images whose per-image Top-1
 * agreement differs most between two runs of one protocol (the first run and its
 * baseline; A and B side by side, one image with groups, two without), and, only with
 * DETAIL, each run's own tables and figures. A run's baseline is an earlier run of its protocol and top-k, a V-MoE
 * run for other methods (analyze/stats/baselines.h; baselines never cross k: with --runs
 * VMOE_K1,PRC_K1,VMOE_K2,PRC_K2 each PRC run is read against its V-MoE run). Runs that are
 * not comparable with their baseline (data, slice, images, protocol, views, seed, MoE
 * layers or patch grid differ) are shown side by side and flagged. Adversarial runs add
 * "Routing under attack" (with groups, each run's own parts only with DETAIL),
 * then runs with forced views (route:) "Routing interventions": one table of every such
 * run's forced views (analyze/stats/route_stats.h). Every output carries the provenance: routerscope version and
 * commit, the report's command line, each run's model path and sha256, data, protocol,
 * view specs, seed and the command that replayed it. Same input, same bytes: nothing
 * depends on the time or the output folder's name.
 *
 * Errors: RS_EINVAL for a missing run or bad options, RS_EIO for files that cannot be
 * written (named), store and stats errors as they come. Nothing is printed. */
#ifndef RS_REPORT_H
#define RS_REPORT_H

#include <stdbool.h>
#include <stdint.h>

#include "plot.h"
#include "render.h"
#include "stats/stats.h"
#include "store/store.h"

#define RS_REPORT_DEFAULT_IMAGES 2

typedef struct rs_report_options {
    const char *db;             /* the database's name in the provenance */
    const int64_t *runs;        /* run ids, in the order to report them */
    int num_runs;
    const char *out_dir;
    int images;                 /* grids of IMAGES example images (0: none) */
    bool detail;                /* several runs: add each run's own tables and figures (with
                                 * groups also the headline's layer rows and the attack's runs) */
    int resamples;              /* bootstrap resamples: 0 = default, < 0 = none */
    const char *command;        /* the command line that made the report */
    const char *version;        /* routerscope version and commit */
    /* Groups of runs (docs/groups.md), 0 for none: NUM_GROUPS names and GROUP_RUNS[g], each
     * GROUP_SIZES[g] run ids (all of them also among RUNS; no group more than the first).
     * Each protocol's runs form their own groups, in the section "Groups of seeds" after
     * the contents. */
    int num_groups;
    const int *group_sizes;
    const char *const *group_names;
    const int64_t *const *group_runs;
    bool force;                 /* groups that differ go on, flagged (groups.h) */
} rs_report_options;

int rs_report_write(rs_store *store, const rs_report_options *opt, rs_error *err);

#endif

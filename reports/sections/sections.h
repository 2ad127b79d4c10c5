/* sections.h — what the files of rs_report_write (report.h) share: the report being built
 * and its pieces. Internal to reports/.
 *
 *   report.c                    loading the runs, baselines (analyze/stats/baselines.h),
 *                               provenance, title; calls the sections, then the writers
 *   sections/single_section.c   the report of one run
 *   sections/compare_section.c  the comparison report's sections, in order
 *   sections/largest_section.c  its largest per-image differences
 *   sections/groups_section.c   its groups of seeds: the title's question, the answer
 *                               table and sentences, the "Groups of seeds" sections
 *   sections/attack_section.c   the "Routing under attack" section of adversarial-style runs
 *   sections/route_section.c    the "Routing interventions" section of runs with forced views
 *   sections/dissect_section.c  its dissection over seeds, for groups with forced views
 *   sections/corrupt_section.c  the "Routing under common corruptions" section of groups
 *   sections/figures.c          what the sections share: figures' files and captions, grids
 *                               and the grids' context, heatmaps, the example images
 * Calls go one way: report.c -> sections -> figures.c -> tables/, doc/, render/, analyze/
 * (a run's names and labels are store/run.h's); nothing calls back up. Sections add to R->d
 * and keep its first error (doc/doc.h); they never stop midway. */
#ifndef RS_SECTIONS_H
#define RS_SECTIONS_H

#include <stdbool.h>
#include <stddef.h>

#include "doc/doc.h"
#include "report.h"
#include "store/run.h"
#include "stats/groups.h"
#include "tables/compare_tables.h"

typedef struct rs_report_state {
    rs_store *store;
    const rs_report_options *opt;
    int n;
    rs_run_info *info;
    rs_stats **st;
    int *baseline;      /* per run: the run it is compared with (index), or -1 */
    char (*flag)[RS_REPORT_FLAG_LEN]; /* per run: why it is not comparable with its baseline, or "" */
    rs_doc d;
    /* groups (options): each protocol's, and the answer over them (NULL with one group);
     * rs_report_groups_compute fills them, rs_report_groups_free releases them */
    rs_groups **groups;
    int protocols;
    rs_answer *answer;
} rs_report_state;

/* The training methods' hues in every plot (render.h, rs_palette_method), for captions. */
#define RS_REPORT_METHOD_HUES "blue V-MoE, orange PRC, green JSD, purple adversarial, red-purple AdvMoE, grey other"
/* OUT_DIR/figures/FILE */
void rs_report_fig_path(rs_report_state *R, const char *file, char *buf, size_t size);
/* OUT_DIR/figures/FILE, or with TWIN its vector twin: FILE's .png replaced by .pdf. Plots
 * are drawn twice, and the PDF report embeds the twin where it is the lighter file
 * (reports/doc/write_pdf.c); grids and composed figures have none. */
void rs_report_fig_path_twin(rs_report_state *R, const char *file, bool twin, char *buf, size_t size);
/* Adds figures/FILE with CAPTION to the document. */
void rs_report_figure(rs_report_state *R, const char *file, const char *caption);
/* Draws RUN's image IMAGE into figures/FILE without adding it to the document: its
 * expert-selection grid (GRID; of the views rs_render_grid_views picks, render/grid.h) or its per-patch
 * heatmap. False (R->d set) on an error. */
bool rs_report_image_file(rs_report_state *R, const rs_run_info *run, int image, bool grid, const char *file);
/* Draws and adds the expert-selection grid of RUN's image IMAGE. */
void rs_report_grid_figure(rs_report_state *R, const rs_run_info *run, int image);
/* The caption of a grid of RUN's views, starting with WHAT ("Expert-selection grid of ..."). */
void rs_report_grid_caption(const rs_run_info *run, const char *what, char *buf, size_t size);
/* Why a patch of a crop has no match in view 0, as a clause (grids, heatmaps, tables). */
extern const char rs_report_unmatched_why[];
#define RS_REPORT_FILE_LEN 128
/* One figure, figures/FILE, of the N figures PARTS (figures/, PNG) side by side, COLS to a
 * row, scaled to print at about 300 dpi; the parts are removed (each run's figure lives on
 * only inside it). Not added to the document: the caller adds it with its caption. */
void rs_report_compose(rs_report_state *R, char (*parts)[RS_REPORT_FILE_LEN], int n, int cols, const char *file);
/* Draws and adds RUN's per-patch heatmap of IMAGE: how often each patch of view 0 changed
 * top-1 expert in the other views (heatmap.h, "changed"). */
void rs_report_heatmap_figure(rs_report_state *R, const rs_run_info *run, int image);
/* Up to WANT example images of the report's runs into IMAGES (stats/examples.h's
 * rs_examples_well_matched). Returns how many (0 after an error, kept in R->d). */
int rs_report_example_images(rs_report_state *R, int *images, int want);
/* The run's expert load and its transition / S matrices, as two figures (RN: run name). */
void rs_report_load_transition_figures(rs_report_state *R, const rs_run_info *r, const rs_stats *st,
                                       const char *rn);

void rs_report_single(rs_report_state *R);
void rs_report_comparison(rs_report_state *R);
void rs_report_largest_differences(rs_report_state *R);
/* Adds the "Routing under attack" section when some runs are adversarial-style; nothing otherwise. */
void rs_report_attack(rs_report_state *R);
/* Adds the "Routing interventions" section when some runs have forced views; nothing otherwise. */
void rs_report_route(rs_report_state *R);
/* Groups (groups_section.c), when the options name groups: computes every protocol's groups
 * and their answer once (nothing without groups; a second call does nothing). */
void rs_report_groups_compute(rs_report_state *R);
void rs_report_groups_free(rs_report_state *R);
/* The title naming the question: methods against the reference, k, protocols, data, images
 * and seeds (after rs_report_groups_compute, with groups). */
void rs_report_groups_title(rs_report_state *R);
/* "Answer over training seeds": the answer table, its family, and at most five sentences
 * read off it (two groups or more). */
void rs_report_answer_section(rs_report_state *R);
/* "Groups of seeds: PROTOCOL" per protocol. */
void rs_report_groups_section(rs_report_state *R);
/* "Dissection over seeds: PROTOCOL" (dissect_section.c) for each protocol of the groups whose
 * runs force a perturbed view to the clean routing; nothing otherwise. */
void rs_report_dissect(rs_report_state *R);
/* "Routing under common corruptions" for each protocol whose groups are corruptions runs
 * (corrupt_section.c); nothing otherwise. */
void rs_report_corruptions(rs_report_state *R);

#endif

/* single_section.c — the report of one run (report.h): consistency, accuracy, router
 * figures, the severity sweep of a noise run, load and transitions, examples (grids and a
 * per-patch heatmap). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "input/spec_text.h"
#include "sections.h"
#include "tables/stats_tables.h"

void rs_report_single(rs_report_state *R)
{
    rs_doc *d = &R->d;
    const rs_run_info *r = &R->info[0];
    const rs_stats *st = R->st[0];
    char name[64], file[128], path[4096], rl[200], rn[32];
    rs_run_label(r, rl, sizeof rl);
    rs_run_name(r, rn, sizeof rn);

    /* the answer first: the run's headline figures, as a one-model comparison shows them */
    rs_doc_add(d, RS_DOC_H2, "Answer: the run's headline figures", NULL);
    rs_report_set set = {.n = 1, .info = r, .st = &R->st[0]};
    rs_doc_add_table(d, rs_report_own_headline_table(&set), "answer");
    rs_doc_add(d, RS_DOC_TOC, NULL, NULL);
    rs_doc_add(d, RS_DOC_H2, "Routing consistency", NULL);
    rs_doc_addf(d, RS_DOC_PARA,
         "Agreement of each view's routing with view 0 over matched patch pairs: Top-1 (same first expert), "
         "Top-2 (same first and second), Top-2 order-agnostic (same pair of experts), per MoE layer and over all "
         "of them, in percent with %.0f %% bootstrap intervals over images.",
         100 * st->level);
    snprintf(name, sizeof name, "consistency-run%s", rn);
    rs_table *consistency = rs_report_consistency_table(r, st, rn, false);
    bool moved = false;
    for (int v = 1; v < r->num_views; v++)
        moved = moved || rs_spec_has_geometric_op(r->view_specs[v]);
    if (consistency && moved) {
        char note[512];
        snprintf(note, sizeof note, "Unmatched: the patch comparisons left out, because %s.", rs_report_unmatched_why);
        rs_table_set_note(consistency, note);
    }
    rs_doc_add_table(d, consistency, name);

    rs_doc_add(d, RS_DOC_H2, "Accuracy", NULL);
    if (rs_report_default_crops(r))
        rs_doc_addf(d, RS_DOC_PARA, "The views: %s", rs_report_crops_note);
    snprintf(name, sizeof name, "accuracy-run%s", rn);
    rs_doc_add_table(d, rs_report_accuracy_table(r, st, rn), name);
    snprintf(name, sizeof name, "change-run%s", rn);
    rs_doc_add_table(d, rs_report_change_table(r, st, rn), name);

    rs_doc_add(d, RS_DOC_H2, "Router figures", NULL);
    snprintf(name, sizeof name, "router-run%s", rn);
    rs_doc_add_table(d, rs_report_layer_table(r, st, rn), name);
    snprintf(file, sizeof file, "router-run%s.png", rn);
    for (int twin = 0; twin < 2 && !d->rc; twin++) { /* the PNG, then its vector twin */
        rs_report_fig_path_twin(R, file, twin, path, sizeof path);
        d->rc = rs_render_router((const rs_stats *const *)&R->st[0], (const rs_run_info *const[]){r}, 1, path, d->err);
    }
    char lacks[200];
    rs_report_figure(R, file, rs_run_lacks_softmax(r, "the PRC score, JSD and entropy (their panels stay empty)",
                                                   lacks, sizeof lacks)
                                  ? lacks
                                  : "PRC score, JSD, routing entropy and load CV per MoE layer.");

    if (rs_run_is_noise(r) && r->num_views > 1) {
        rs_doc_add(d, RS_DOC_H2, "Severity sweep", NULL);
        snprintf(file, sizeof file, "sweep-run%s.png", rn);
        for (int twin = 0; twin < 2 && !d->rc; twin++) { /* the PNG, then its vector twin */
            rs_report_fig_path_twin(R, file, twin, path, sizeof path);
            d->rc = rs_render_sweep((const rs_stats *const *)&R->st[0], (const rs_run_info *const[]){r}, 1, -1, path, d->err);
        }
        rs_report_figure(R, file, "Top-1 agreement with the clean view against the noise severity, all MoE layers pooled, "
                        "with bootstrap bands.");
        snprintf(file, sizeof file, "accuracy-run%s.png", rn);
        for (int twin = 0; twin < 2 && !d->rc; twin++) { /* the PNG, then its vector twin */
            rs_report_fig_path_twin(R, file, twin, path, sizeof path);
            d->rc = rs_render_accuracy((const rs_stats *const *)&R->st[0], (const rs_run_info *const[]){r}, 1, path,
                                           d->err);
        }
        rs_report_figure(R, file, "Accuracy against the noise severity, with Wilson bands.");
    }

    rs_doc_add(d, RS_DOC_H2, "Expert load and transitions", NULL);
    rs_report_load_transition_figures(R, r, st, rn);

    int *images = R->opt->images > 0 ? malloc(sizeof *images * (size_t)R->opt->images) : NULL;
    if (R->opt->images > 0 && !images && !d->rc)
        d->rc = rs_error_set(d->err, RS_ENOMEM, "out of memory");
    int m = images ? rs_report_example_images(R, images, R->opt->images) : 0;
    if (m > 0) {
        rs_doc_add(d, RS_DOC_H2, "Examples", NULL);
        for (int i = 0; i < m; i++)
            rs_report_grid_figure(R, r, images[i]);
        rs_report_heatmap_figure(R, r, images[0]);
    }
    free(images);
}

/* corrupt_section.c — the "Routing under common corruptions" section of a grouped report:
 * for each protocol whose groups are corruptions runs (analyze/stats/corrupt_stats.h), the
 * per-family answer against the first group with the relative form, each family's level per
 * group, the corruption × method heatmap of Top-1 differences and the curves against
 * severity (docs/corruptions.md, "Statistics"). */
#include <stdio.h>

#include "corrupt_plot.h"
#include "sections.h"
#include "stats/corrupt_stats.h"
#include "tables/corrupt_tables.h"

/* The figure FILE drawn by DRAW (heatmap or curves) of figure FIGURE, with CAPTION. */
static void figure(rs_report_state *R, const rs_groups *g, const rs_corrupt_groups *cg, bool heatmap, int fig,
                   const char *file, const char *caption)
{
    char path[4096];
    if (R->d.rc)
        return;
    for (int twin = 0; twin < 2 && !R->d.rc; twin++) { /* the PNG, then its vector twin */
        rs_report_fig_path_twin(R, file, twin, path, sizeof path);
        R->d.rc = heatmap ? rs_render_corrupt_heatmap(g, cg, fig, path, R->d.err)
                          : rs_render_corrupt_curves(g, cg, fig, path, R->d.err);
    }
    rs_report_figure(R, file, caption);
}

static void protocol_section(rs_report_state *R, const rs_groups *g, const rs_corrupt_groups *cg)
{
    rs_doc *d = &R->d;
    const rs_corrupt_grid *gd = &cg->grid;
    rs_doc_add(d, RS_DOC_H2, "Routing under common corruptions", NULL);
    rs_doc_addf(d, RS_DOC_PARA,
                "%d corruption%s at %d severit%s (ImageNet-C / CIFAR-10-C, docs/corruptions.md), each view against "
                "the clean view. A family's figure is the mean over its corruptions and severities, as ImageNet-C "
                "averages; \"overall\" is the mean routing consistency over the benchmark's corruptions (the "
                "held-out extras apart). Each method is compared with %s seed by seed; the relative form divides "
                "the method's inconsistency by the reference's per corruption, as mCE divides by AlexNet's error.",
                gd->corruptions, gd->corruptions == 1 ? "" : "s", gd->severities, gd->severities == 1 ? "y" : "ies",
                g->names[0]);
    if (cg->num_groups > 1)
        rs_doc_add_table(d, rs_report_corrupt_answer_table(g, cg, "corruptions"), "corruptions-answer");
    rs_doc_add_table(d, rs_report_corrupt_levels_table(g, cg, "corruptions"), "corruptions-families");
    if (cg->num_groups > 1)
        figure(R, g, cg, true, RS_CSTAT_TOP1, "corruptions-heatmap-top1.png",
               "Top-1 routing agreement under each corruption: each method minus the reference, points, mean over "
               "seeds of the per-seed difference of the corruption's mean over severities.");
    figure(R, g, cg, false, RS_CSTAT_TOP1, "corruptions-severity-top1.png",
           "Top-1 routing agreement against severity per corruption family, mean over seeds.");
    figure(R, g, cg, false, RS_CSTAT_ACCURACY, "corruptions-severity-accuracy.png",
           "Accuracy against severity per corruption family, mean over seeds.");
}

void rs_report_corruptions(rs_report_state *R)
{
    for (int q = 0; R->groups && q < R->protocols && !R->d.rc; q++) {
        const rs_groups *g = R->groups[q];
        rs_corrupt_grid grid;
        rs_error why;
        int is = rs_corrupt_grid_of(&g->info[0], &grid, &why);
        rs_corrupt_grid_clear(&grid);
        if (is != 1)
            continue;
        rs_corrupt_groups *cg = NULL;
        R->d.rc = rs_corrupt_groups_compute(g, &cg, R->d.err);
        if (!R->d.rc)
            protocol_section(R, g, cg);
        rs_corrupt_groups_free(cg);
    }
}

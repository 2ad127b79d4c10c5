/* largest_section.c — the comparison report's largest differences: the images whose
 * per-image Top-1 agreement differs most between two runs over the same images
 * (stats/examples.h chooses the runs and ranks the images), as a table and as grids. See
 * report.h. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "sections.h"
#include "stats/examples.h"

#define DIFF_IMAGES 5   /* rows of the largest-differences table */
#define DIFF_GRIDS 2    /* of which drawn as grids (with groups: one, the examples show every method) */

static rs_table *largest_table(const rs_examples_ranking *k, const rs_run_info *a, const rs_run_info *b)
{
    const char *keys[] = {"image", "a", "b", "diff", "pairs_a", "pairs_b"};
    char ha[32], hb[32];
    snprintf(ha, sizeof ha, "Top-1 run %" PRId64, a->id);
    snprintf(hb, sizeof hb, "Top-1 run %" PRId64, b->id);
    const char *heads[] = {"Image", ha, hb, "B \u2212 A", "Pairs A", "Pairs B"};
    char pair_ids[64];  /* csv/json run field: "A,B" */
    snprintf(pair_ids, sizeof pair_ids, "%" PRId64 ",%" PRId64, a->id, b->id);
    rs_table *t = rs_table_create("Largest per-image differences in Top-1 agreement (%)", pair_ids, 6, keys, heads);
    for (int r = 0; t && r < k->m && r < DIFF_IMAGES; r++) {
        int i = k->order[r];
        char img[32];
        snprintf(img, sizeof img, "%d", a->offset + i);
        int row = rs_table_add_row(t, NULL, NULL, img);
        rs_table_set_text(t, row, 0, img);
        rs_table_set_rate(t, row, 1, k->top1_a[i], false, 0, 0, false, 0, 0, k->pairs_a[i]);
        rs_table_set_rate(t, row, 2, k->top1_b[i], false, 0, 0, false, 0, 0, k->pairs_b[i]);
        rs_table_set_diff(t, row, 3, k->delta[i], false, 0, 0);
        rs_table_set_count(t, row, 4, k->pairs_a[i]);
        rs_table_set_count(t, row, 5, k->pairs_b[i]);
    }
    return t;
}

void rs_report_largest_differences(rs_report_state *R)
{
    rs_doc *d = &R->d;
    if (d->rc)
        return;
    rs_examples_ranking k;
    int rc = rs_examples_rank(R->store, R->info, R->n, &k, d->err);
    if (rc) {
        d->rc = rc;
        return;
    }
    if (k.a < 0)  /* no two runs of one protocol over the same images: nothing to rank */
        return;
    rs_doc_add(d, RS_DOC_H2, "Largest differences", NULL);
    const rs_run_info *a = &R->info[k.a], *b = &R->info[k.b];
    rs_doc_addf(d, RS_DOC_PARA,
                "Images whose Top-1 agreement with view 0 (all non-reference views and MoE layers) differs most "
                "between run %" PRId64 " (A) and run %" PRId64 " (B), among the images with at least %" PRId64
                " matched patch pairs in both runs%s.",
                a->id, b->id, k.min_pairs,
                R->flag[k.b][0] ? "; the runs are not comparable, so the views differ too"
                    : "");
    rs_doc_add_table(d, largest_table(&k, a, b), "largest-differences");
    for (int r = 0; r < k.m && r < (R->answer ? 1 : DIFF_GRIDS) && !d->rc; r++) {  /* A and B side by side, one figure */
        int image = a->offset + k.order[r];
        char parts[2][RS_REPORT_FILE_LEN], file[RS_REPORT_FILE_LEN], what[512], caption[2048];
        snprintf(parts[0], sizeof parts[0], "part-largest-image%d-a.png", image);
        snprintf(parts[1], sizeof parts[1], "part-largest-image%d-b.png", image);
        if (!rs_report_image_file(R, a, image, true, parts[0]) || !rs_report_image_file(R, b, image, true, parts[1]))
            break;
        snprintf(file, sizeof file, "largest-image%d.png", image);
        rs_report_compose(R, parts, 2, 2, file);
        snprintf(what, sizeof what, "Image %d, run %" PRId64 " (A, left) and run %" PRId64 " (B, right): Top-1 "
                 "agreement %.0f %% and %.0f %%", image, a->id, b->id, 100 * k.top1_a[k.order[r]],
                 100 * k.top1_b[k.order[r]]);
        rs_report_grid_caption(b, what, caption, sizeof caption);
        rs_report_figure(R, file, caption);
    }
    rs_examples_ranking_free(&k);
}

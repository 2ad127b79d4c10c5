/* largest_section.c — the comparison report's largest differences: the images whose
 * per-image Top-1 agreement differs most between two runs over the same images, as a
 * table and as grids. See report.h. */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sections.h"

#define DIFF_IMAGES 5   /* rows of the largest-differences table */
#define DIFF_GRIDS 2    /* of which drawn as grids */



/* Per-image Top-1 agreement of runs A and B, and the images ranked by |B - A|. */
typedef struct ranking {
    const rs_run_info *a, *b;
    int64_t *pa, *aa, *pb, *ab; /* pairs and agreements per image (index image - a's offset) */
    int *order;                 /* the M ranked images */
    double *delta;              /* B - A per image */
    int m;
    int64_t min_pairs;          /* matched pairs an image needs in both runs to be ranked */
} ranking;

static void ranking_free(ranking *k)
{
    free(k->pa), free(k->aa), free(k->pb), free(k->ab), free(k->order), free(k->delta);
}

/* The first run and its comparable baseline, else the first two runs of one protocol over
 * the same images, else any two over the same images; false when no two cover the same. */
static bool pick_pair(const rs_report_state *R, int *ia, int *ib)
{
    for (int pass = 0; pass < 3; pass++)
        for (int i = 0; i < R->n; i++)
            for (int j = i + 1; j < R->n; j++)
                if (!strcmp(R->info[i].data, R->info[j].data) && R->info[i].offset == R->info[j].offset &&
                    (pass == 2 || !strcmp(R->info[i].protocol, R->info[j].protocol)) &&
                    (pass >= 1 || (R->baseline[j] == i && !R->flag[j][0]))) {
                    *ia = i, *ib = j;
                    return true;
                }
    return false;
}

static int rank_images(rs_store *store, ranking *k, rs_error *err)
{
    const rs_run_info *a = k->a, *b = k->b;
    int rc = rs_run_image_top1(store, a, &k->pa, &k->aa, err);
    if (!rc)
        rc = rs_run_image_top1(store, b, &k->pb, &k->ab, err);
    int N = a->images_done < b->images_done ? a->images_done : b->images_done;
    k->order = rc ? NULL : malloc(sizeof(int) * (size_t)(N > 0 ? N : 1));
    k->delta = rc ? NULL : malloc(sizeof(double) * (size_t)(N > 0 ? N : 1));
    if (!rc && (!k->order || !k->delta))
        rc = rs_error_set(err, RS_ENOMEM, "out of memory");
    /* An image with two matched pairs moves by 50 points on one patch, and its grids are
       mostly hatching: rank only images where half of the possible pairs matched in both
       runs (the examples' rule). */
    int64_t most = (int64_t)a->patches * a->num_layers * (a->num_views - 1);
    k->min_pairs = (most + 1) / 2 > 1 ? (most + 1) / 2 : 1;
    for (int i = 0; !rc && i < N; i++) {
        if (k->pa[i] < k->min_pairs || k->pb[i] < k->min_pairs)
            continue;
        k->delta[i] = (double)k->ab[i] / (double)k->pb[i] - (double)k->aa[i] / (double)k->pa[i];
        k->order[k->m++] = i;
    }
    /* by |delta| descending, then image ascending (stable, deterministic) */
    for (int i = 1; i < k->m; i++) {
        int x = k->order[i], j = i;
        while (j > 0 && fabs(k->delta[k->order[j - 1]]) < fabs(k->delta[x]))
            k->order[j] = k->order[j - 1], j--;
        k->order[j] = x;
    }
    return rc;
}

static rs_table *largest_table(const ranking *k)
{
    const rs_run_info *a = k->a, *b = k->b;
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
        rs_table_set_rate(t, row, 1, (double)k->aa[i] / (double)k->pa[i], false, 0, 0, false, 0, 0, k->pa[i]);
        rs_table_set_rate(t, row, 2, (double)k->ab[i] / (double)k->pb[i], false, 0, 0, false, 0, 0, k->pb[i]);
        rs_table_set_diff(t, row, 3, k->delta[i], false, 0, 0);
        rs_table_set_count(t, row, 4, k->pa[i]);
        rs_table_set_count(t, row, 5, k->pb[i]);
    }
    return t;
}

void rs_report_largest_differences(rs_report_state *R)
{
    rs_doc *d = &R->d;
    rs_doc_add(d, RS_DOC_H2, "Largest differences", NULL);
    int ia = -1, ib = -1;
    if (!pick_pair(R, &ia, &ib)) {
        rs_doc_add(d, RS_DOC_PARA, "No two runs cover the same images.", NULL);
        return;
    }
    if (d->rc)
        return;
    ranking k = {.a = &R->info[ia], .b = &R->info[ib]};
    int rc = rank_images(R->store, &k, d->err);
    if (rc) {
        d->rc = rc;
        ranking_free(&k);
        return;
    }
    rs_doc_addf(d, RS_DOC_PARA,
                "Images whose Top-1 agreement with view 0 (all non-reference views and MoE layers) differs most "
                "between run %" PRId64 " (A) and run %" PRId64 " (B), among the images with at least %" PRId64
                " matched patch pairs in both runs%s.",
                k.a->id, k.b->id, k.min_pairs,
                R->flag[ib][0] || strcmp(k.a->protocol, k.b->protocol)
                    ? "; the runs are not comparable, so the views differ too"
                    : "");
    rs_doc_add_table(d, largest_table(&k), "largest-differences");
    for (int r = 0; r < k.m && r < DIFF_GRIDS; r++) {
        rs_report_grid_figure(R, k.a, k.a->offset + k.order[r]);
        rs_report_grid_figure(R, k.b, k.a->offset + k.order[r]);
    }
    ranking_free(&k);
}

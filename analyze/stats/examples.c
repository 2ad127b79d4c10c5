/* examples.c — the images a reader is shown (contract in examples.h). */
#include "examples.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "baselines.h"
#include "store/run.h"

/* Matched pairs an image needs for a readable grid: half of the possible ones, at least 1. */
static int64_t half_the_pairs(const rs_run_info *r)
{
    int64_t most = (int64_t)r->patches * r->num_layers * (r->num_views - 1);
    return (most + 1) / 2 > 1 ? (most + 1) / 2 : 1;
}

/* True when every run with geometric views that holds IMAGE matched at least half of its
   possible patch pairs there (PAIRS: per run, its per-image counts, NULL for runs not asked). */
static bool well_matched(const rs_run_info *runs, int n, int64_t **pairs, int image)
{
    for (int i = 0; i < n; i++) {
        const rs_run_info *r = &runs[i];
        if (!pairs[i] || image < r->offset || image >= r->offset + r->images_done)
            continue;
        int64_t most = (int64_t)r->patches * r->num_layers * (r->num_views - 1);
        if (2 * pairs[i][image - r->offset] < most)
            return false;
    }
    return true;
}

int rs_examples_well_matched(rs_store *store, const rs_run_info *runs, int n, int want, int *images, int *count,
                             rs_error *err)
{
    *count = 0;
    if (want <= 0 || n < 1)
        return 0;
    int64_t **pairs = calloc((size_t)n, sizeof *pairs), *agree = NULL;
    if (!pairs)
        return rs_error_set(err, RS_ENOMEM, "out of memory");
    int rc = 0;
    for (int i = 0; !rc && i < n; i++) {
        if (rs_run_is_noise(&runs[i]) || runs[i].num_views < 2)
            continue; /* noise views match patch for patch */
        rc = rs_run_image_top1(store, &runs[i], &pairs[i], &agree, err);
        free(agree);
        agree = NULL;
    }
    const rs_run_info *r0 = &runs[0];
    for (int k = 0; !rc && k < r0->images_done && *count < want; k++)
        if (well_matched(runs, n, pairs, r0->offset + k))
            images[(*count)++] = r0->offset + k;
    for (int i = 0; i < n; i++)
        free(pairs[i]);
    free(pairs);
    return rc;
}

/* The first run and its comparable baseline, else the first two runs of one protocol over
 * the same images; never two of different protocols (their views differ, so would every image);
 * false when no two of one protocol cover the same images. */
static bool pick_pair(const rs_run_info *runs, int n, int *ia, int *ib)
{
    for (int pass = 0; pass < 2; pass++)
        for (int i = 0; i < n; i++)
            for (int j = i + 1; j < n; j++)
                if (!strcmp(runs[i].data, runs[j].data) && runs[i].offset == runs[j].offset &&
                    !strcmp(runs[i].protocol, runs[j].protocol) &&
                    (pass >= 1 ||
                     (rs_baseline_of(runs, j) == i && rs_baseline_comparable(&runs[i], &runs[j], NULL, 0)))) {
                    *ia = i, *ib = j;
                    return true;
                }
    return false;
}

void rs_examples_ranking_free(rs_examples_ranking *k)
{
    if (!k)
        return;
    free(k->pairs_a), free(k->pairs_b), free(k->top1_a), free(k->top1_b), free(k->delta), free(k->order);
    memset(k, 0, sizeof *k);
    k->a = k->b = -1;
}

/* By |delta| descending, then image ascending (stable, deterministic). */
static void sort_ranked(rs_examples_ranking *k)
{
    for (int i = 1; i < k->m; i++) {
        int x = k->order[i], j = i;
        while (j > 0 && fabs(k->delta[k->order[j - 1]]) < fabs(k->delta[x]))
            k->order[j] = k->order[j - 1], j--;
        k->order[j] = x;
    }
}

int rs_examples_rank(rs_store *store, const rs_run_info *runs, int n, rs_examples_ranking *k, rs_error *err)
{
    memset(k, 0, sizeof *k);
    k->a = k->b = -1;
    int ia, ib;
    if (!pick_pair(runs, n, &ia, &ib))
        return 0;
    k->a = ia, k->b = ib;
    const rs_run_info *a = &runs[ia], *b = &runs[ib];
    int64_t *agree_a = NULL, *agree_b = NULL;
    int rc = rs_run_image_top1(store, a, &k->pairs_a, &agree_a, err);
    if (!rc)
        rc = rs_run_image_top1(store, b, &k->pairs_b, &agree_b, err);
    size_t N = (size_t)(a->images_done < b->images_done ? a->images_done : b->images_done);
    size_t cap = N > 0 ? N : 1;
    if (!rc && (!(k->order = malloc(sizeof *k->order * cap)) || !(k->delta = calloc(cap, sizeof *k->delta)) ||
                !(k->top1_a = calloc(cap, sizeof *k->top1_a)) || !(k->top1_b = calloc(cap, sizeof *k->top1_b))))
        rc = rs_error_set(err, RS_ENOMEM, "out of memory");
    k->min_pairs = half_the_pairs(a);
    for (size_t i = 0; !rc && i < N; i++) {
        if (k->pairs_a[i] < k->min_pairs || k->pairs_b[i] < k->min_pairs)
            continue;
        k->top1_a[i] = (double)agree_a[i] / (double)k->pairs_a[i];
        k->top1_b[i] = (double)agree_b[i] / (double)k->pairs_b[i];
        k->delta[i] = k->top1_b[i] - k->top1_a[i];
        k->order[k->m++] = (int)i;
    }
    free(agree_a);
    free(agree_b);
    if (rc) {
        rs_examples_ranking_free(k);
        return rc;
    }
    sort_ranked(k);
    return 0;
}

int rs_examples_attacked(const rs_attack_stats *as, int want, int *images)
{
    int64_t last_best = INT64_MAX;
    int last_img = -1, n = 0;
    while (n < want) {
        /* the next image in the order (changes descending, index ascending) */
        int best = -1;
        for (int i = 0; i < as->images; i++) {
            int64_t c = as->changed_last[i];
            bool after = c < last_best || (c == last_best && i > last_img);
            if (after && c > 0 && (best < 0 || c > as->changed_last[best]))
                best = i;
        }
        if (best < 0)
            break;
        images[n++] = best;
        last_best = as->changed_last[best], last_img = best;
    }
    return n;
}

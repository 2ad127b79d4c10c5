/* examples.h — which images a reader is shown: the example images of a set of runs, the
 * images whose per-image Top-1 agreement differs most between two of them, and the images
 * an attack changed most (the report's grids, report.h).
 *
 * Example images: the first images of the first run, in order, on which every run with
 * geometric views (not noise, at least two views) that holds them matched at least half
 * of its possible patch pairs (patches x MoE layers x non-reference views) to view 0, so
 * that a shown pair is mostly comparable cells, not hatching.
 *
 * Largest differences: two runs over the same images (data and offset) — the first run and
 * its comparable baseline (baselines.h), else the first two runs of one protocol; never two
 * runs of different protocols, whose views differ — and their images ranked by |B - A| of per-image Top-1 agreement with view 0 (all
 * non-reference views and MoE layers, store/run.h's rs_run_image_top1), largest first,
 * ties by image. Only images where at least half of the possible pairs matched in both
 * runs are ranked: an image with two matched pairs moves by 50 points on one patch.
 *
 * Attacked images: by the number of (layer, patch) pairs the attack's largest ε changed
 * (attack_stats.h's changed_last), most first, ties by the lower index; images it did not
 * change are not shown.
 *
 * Ownership: rs_examples_rank fills a caller's struct with owned arrays
 * (rs_examples_ranking_free). Errors: 0 or a negative RS_E* code with one line (store
 * errors as they come, RS_ENOMEM). Nothing is printed. */
#ifndef RS_EXAMPLES_H
#define RS_EXAMPLES_H

#include <stdint.h>

#include "attack_stats.h"
#include "rs_error.h"
#include "store/store.h"

/* Up to WANT example images of RUNS[0..N) (source indices) into IMAGES, how many into
 * *COUNT. */
int rs_examples_well_matched(rs_store *store, const rs_run_info *runs, int n, int want, int *images, int *count,
                             rs_error *err);

/* The images of two runs ranked by their difference in Top-1 agreement. Per-image arrays
 * have the smaller images_done of the two entries, indexed by image - runs[a].offset. */
typedef struct rs_examples_ranking {
    int a, b;                   /* indices into the runs given; -1 when no two cover the same images */
    int64_t *pairs_a, *pairs_b; /* matched pairs per image */
    double *top1_a, *top1_b;    /* Top-1 agreement per image (ranked images only) */
    double *delta;              /* top1_b - top1_a (ranked images only) */
    int *order;                 /* (m) the ranked images, largest |delta| first */
    int m;
    int64_t min_pairs;          /* matched pairs an image needs in both runs to be ranked */
} rs_examples_ranking;

/* Ranks the images of the pair of RUNS[0..N) described above into *OUT (zeroed first; a
 * and b -1 and nothing ranked when no two runs cover the same images). */
int rs_examples_rank(rs_store *store, const rs_run_info *runs, int n, rs_examples_ranking *out, rs_error *err);
void rs_examples_ranking_free(rs_examples_ranking *k);

/* Up to WANT images (indices into AS's images) the attack's largest ε changed most, into
 * IMAGES; returns how many. */
int rs_examples_attacked(const rs_attack_stats *as, int want, int *images);

#endif

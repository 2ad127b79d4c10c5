/* stats.h — agreement statistics of a stored run, and the paired comparison of two runs.
 *
 * Definitions follow docs/metrics.md. For every non-reference
 * view v (compared with view 0) and MoE layer l, a matched patch pair is patch j of view v
 * whose match map entry m = match[j] is >= 0, compared with patch m of view 0 (tokens
 * j + has_cls and m + has_cls). With top lists a (view 0) and b (view v):
 *   Top-1            a1 == b1
 *   Top-2 (ordered)  a1 == b1 && a2 == b2
 *   Top-2 unordered  {a1,a2} == {b1,b2}
 *   Top-2 overlap    |{a1,a2} ∩ {b1,b2}| / 2
 * taken from the R = max(2, top_k) recorded ids, so a k = 1 model has Top-2 figures too.
 * A rate is the micro average over all matched pairs of its cell.
 *
 * Cells. Per-view arrays have V+1 view slots and L+1 layer slots, indexed by
 * rs_stats_cell(): slot v < V is view v, slot V pools all views; slot l < L is MoE slot l,
 * slot L pools all MoE layers ("overall"). For agreement, JSD and transitions, slot 0
 * (the reference against itself) stays empty (valid = false) and slot V pools the
 * non-reference views; for entropy and load, slot V pools every view, reference included.
 * Pooled cells are micro averages over all their pairs / tokens.
 *
 * "n/a": a rate or mean whose cell has no matched pair (or no token, no labelled image)
 * has valid = false and every number 0. Nothing in a result is NaN; callers print "n/a"
 * where valid is false.
 *
 * Intervals. Images are the independent unit: the percentile bootstrap draws the run's N
 * images with replacement (N draws, GSL mt19937 seeded with options.seed), recomputes every
 * cell's micro average from per-image counts (all cells of one replicate use the same
 * resampled images), and takes the (1-level)/2 and (1+level)/2 quantiles of the replicates
 * (gsl_stats_quantile_from_sorted_data). Replicates in which a cell has no matched pair
 * are left out for that cell; boot_valid is false when fewer than 2 remain. The Wilson
 * score interval (n = matched pairs, as if patches were independent) is the cross-check;
 * for the overlap rate it uses the rate as p̂ with n = pairs (an approximation).
 *
 * Other figures, per run:
 *   accuracy per view: predicted == label over labelled images (label -1 left out), Wilson.
 *   change table per non-reference view: images by (routing changed, prediction changed);
 *     routing changed = some matched patch's top-1 differs from view 0's in some MoE
 *     layer; prediction changed = predicted class differs from view 0's. Images without
 *     any matched pair in that view are counted in change_no_pairs, not in the table.
 *   PRC score per MoE layer: S = (E/N) Σ r(x_B) r(x_A)ᵀ (E×E, row = expert of the view,
 *     column = expert of view 0) over the N matched pairs of all non-reference views of the
 *     run, and ‖S − I‖_F. r is the full router distribution.
 *   JSD: mean Jensen–Shannon divergence (bits, in [0,1]) between matched distributions.
 *   entropy: mean routing entropy (bits) over patch tokens (class token left out).
 *   load: per view and layer, how often each expert fills one of the model's top_k slots
 *     over patch tokens (class token left out), and its coefficient of variation
 *     (population standard deviation / mean over the E experts).
 *   transition: E×E top-1 counts, [reference expert][view expert], over matched pairs.
 *   by class / by reference expert: agreement counts per label (0..K-1) and per top-1
 *     expert of view 0, per cell.
 *   routing changes (docs/metrics.md), per non-reference view and MoE layer against view 0:
 *     1 − the mean over images of each image's mean IoU over its compared tokens, the
 *     tokens being all T (class token included) when the view is pixel-aligned with view 0
 *     (no geometric operation and every patch matching itself) and its matched patch
 *     tokens otherwise; pooled cells average per image over all their tokens first. Two
 *     series: routing_changes, google-research/vmoe's figure (projects/adversarial_attacks,
 *     sum_intersection_over_union over the experts with a non-zero combine weight): the
 *     IoU of the kept sets, i.e. the experts the token ran (a forced view's forced ones)
 *     that dispatch kept, 0 when both sets are empty; and routing_changes_router, the IoU
 *     of the router's top-k sets before capacity. Without a capacity factor and forcing
 *     the kept set is the top-k set and the two are equal.
 * Router distributions are read as stored (float16) and renormalised to sum 1 per token
 * before entropy, JSD and S (stored values do not sum to 1 exactly); renormalisation,
 * entropy and JSD are patch.h's, the functions the heatmap's cells come from.
 *
 * Memory: one streaming pass over the store's cursor; what is kept is O(images × views ×
 * layers) per-image counts plus one image's reference routing, never all records.
 *
 * Ownership: rs_stats_compute / rs_stats_compare allocate *OUT; free it with
 * rs_stats_free / rs_stats_comparison_free (NULL allowed). Results hold no pointer into
 * the store; the store may be closed afterwards.
 * Errors: 0 or a negative RS_E* code with a message naming the database (options name /
 * name_b) and the run: RS_EINVAL for a missing run, bad options or runs that are not
 * comparable; RS_EFORMAT for records that break the run's contract (ids >= E, match
 * outside the patch grid, a view or layer missing, labels outside the classes);
 * RS_ENOMEM; store errors as the store reports them. Nothing is printed.
 * GSL: these functions call gsl_set_error_handler_off(), which is process-wide (GSL
 * errors then come back as return codes everywhere in the process, which is what
 * routerscope wants). Not thread-safe with other code that changes GSL's handler. */
#ifndef RS_STATS_H
#define RS_STATS_H

#include <stdbool.h>
#include <stdint.h>

#include "rs_error.h"
#include "store/store.h"

enum {
    RS_STATS_TOP1 = 0,
    RS_STATS_TOP2 = 1,           /* ordered */
    RS_STATS_TOP2_UNORDERED = 2,
    RS_STATS_OVERLAP = 3,        /* Top-2 overlap */
    RS_STATS_NUM_RATES = 4,
};

#define RS_STATS_DEFAULT_RESAMPLES 1000
#define RS_STATS_DEFAULT_SEED 20240607u

typedef struct rs_stats_options {
    int resamples;      /* bootstrap resamples: 0 = RS_STATS_DEFAULT_RESAMPLES, < 0 = none */
    uint64_t seed;      /* bootstrap RNG seed, used as given (zeroed options: seed 0) */
    double level;       /* interval level: 0 = 0.95; otherwise in (0,1) */
    bool force;         /* compare: go on when the runs' identities differ */
    const char *name;   /* name of the (first) database in messages, e.g. its path; NULL: "store" */
    const char *name_b; /* compare: name of the second database; NULL: name */
} rs_stats_options;

/* Counts of one cell. overlap2 counts overlap in halves (0, 1 or 2 per pair). */
typedef struct rs_stats_counts {
    int64_t pairs, top1, top2, top2u, overlap2;
} rs_stats_counts;

typedef struct rs_stats_rate {
    bool valid;                 /* false: no matched pair, "n/a" (all numbers 0) */
    double value;               /* micro average */
    bool boot_valid;            /* false: no bootstrap (resamples < 0 or too few defined) */
    double boot_lo, boot_hi;    /* percentile bootstrap over images */
    double wilson_lo, wilson_hi;
} rs_stats_rate;

typedef struct rs_stats_agreement {
    rs_stats_counts n;
    int64_t unmatched;          /* patch comparisons without a match: per layer the
                                 * unmatched patches, pooled cells sum over their layers
                                 * and views, so pairs + unmatched = images × patches ×
                                 * layers × views of the cell */
    rs_stats_rate rate[RS_STATS_NUM_RATES];
} rs_stats_agreement;

typedef struct rs_stats_mean {
    bool valid;                 /* false: nothing to average, "n/a" */
    int64_t n;                  /* pairs or tokens averaged */
    double mean;
} rs_stats_mean;

typedef struct rs_stats_accuracy {
    int64_t labelled, correct;
    bool valid;
    double value, wilson_lo, wilson_hi;
} rs_stats_accuracy;

typedef struct rs_stats {
    int64_t run_id;
    int images;                 /* images read (the run's images_done) */
    int views, layers, experts, classes, patches, tokens, record_k, top_k;
    bool has_cls;
    bool no_softmax;            /* the run was recorded with --record topk (store.h): jsd,
                                 * entropy and prc_norm are n/a everywhere and prc_s zero;
                                 * printers leave them out with rs_run_lacks_softmax's line */
    int resamples;              /* as used (0 when no bootstrap) */
    uint64_t seed;
    double level;

    /* (V+1)*(L+1) cells, rs_stats_cell(). */
    rs_stats_agreement *agree;
    rs_stats_mean *jsd;         /* bits */
    rs_stats_mean *entropy;     /* bits */
    int64_t *load;              /* (cells, E) */
    rs_stats_mean *load_cv;     /* coefficient of variation of load; n = slots counted */
    int64_t *transition;        /* (cells, E, E) [reference top-1][view top-1] */
    rs_stats_counts *by_class;  /* (cells, K) by label; unlabelled images left out */
    rs_stats_counts *by_expert; /* (cells, E) by view 0's top-1 expert */

    /* (cells) routing changes in [0,1] (valid/boot as for rates, no Wilson): vmoe's, of the
     * kept sets (routing_changes), and of the router's top-k sets (routing_changes_router);
     * the tokens compared and the images averaged in each cell (the same for both); (V+1)
     * per view the images that were pixel-aligned with view 0 (slot V: summed), whose class
     * token then counted too. routing_changes_differ: some record had a kept mask (a run
     * with a capacity factor) or a forced layer, so the two series may differ; false: they
     * are equal by definition. */
    rs_stats_rate *routing_changes, *routing_changes_router;
    int64_t *rc_tokens, *rc_images, *aligned_images;
    bool routing_changes_differ;

    /* (L) per MoE layer, pooled over all non-reference views. */
    double *prc_s;              /* (L, E, E) S */
    rs_stats_mean *prc_norm;    /* (L) ‖S − I‖_F; n = matched pairs */

    /* (V+1) per view; slot V pools the views (accuracy: all views; change: non-reference). */
    rs_stats_accuracy *accuracy;
    int64_t *change;            /* (V+1, 2, 2) images [routing changed][prediction changed] */
    int64_t *change_no_pairs;   /* (V+1) images without any matched pair in that view */
} rs_stats;

static inline int rs_stats_cell(const rs_stats *st, int view_slot, int layer_slot)
{
    return view_slot * (st->layers + 1) + layer_slot;
}

/* Whether two tokens' sets are equal: A's ids A (R), of which the first K were dispatched,
 * restricted to those KEPT_A marks (NULL: all K), against B's likewise. Two empty sets are
 * equal. */
bool rs_stats_same_set(const uint8_t *a, const uint8_t *kept_a, const uint8_t *b, const uint8_t *kept_b, int k);

/* IoU of the kept sets of two tokens: A's ids IDX_A with KEPT_A (NULL: all kept), the first
 * K ranks dispatched (ids within a token distinct); likewise B. 0 when both sets are empty
 * (as vmoe's sum_intersection_over_union scores an empty union). */
double rs_stats_kept_iou(const uint8_t *idx_a, const uint8_t *kept_a, const uint8_t *idx_b, const uint8_t *kept_b,
                         int k);

/* Rate WHICH (RS_STATS_TOP1 ...) of counts C into *RATE; false (and *RATE = 0) when the
 * counts hold no pair. */
bool rs_stats_counts_rate(const rs_stats_counts *c, int which, double *rate);

/* Computes every figure above for run RUN_ID of STORE in one pass. Load counts the model's
 * top_k slots (the run's stored k; the store records max(2, k) ids). OPT may be NULL
 * (defaults). */
int rs_stats_compute(rs_store *store, int64_t run_id, const rs_stats_options *opt, rs_stats **out,
                     rs_error *err);
void rs_stats_free(rs_stats *st);

/* Paired comparison. */
typedef struct rs_stats_diff {
    bool valid;                 /* both runs have matched pairs in the cell */
    double value;               /* rate of B − rate of A */
    bool boot_valid;
    double boot_lo, boot_hi;    /* paired percentile bootstrap over images */
} rs_stats_diff;

/* McNemar's test on Top-1 over the matched patch pairs the runs share (same patch, same
 * match in both). It treats patches as independent, which they are not (patches of one
 * image are correlated), so its p-value is optimistic: the paired bootstrap over images
 * is the primary comparison. b = pairs where A agrees and B does not, c = the reverse;
 * chi2 = max(0, |b − c| − 1)² / (b + c) (continuity correction), p = Q_χ²(chi2; 1 dof).
 * b + c = 0 gives chi2 = 0, p = 1. valid = false when the cell has no shared pair. */
typedef struct rs_stats_mcnemar {
    bool valid;
    int64_t pairs, b, c;
    double chi2, p;
} rs_stats_mcnemar;

typedef struct rs_stats_comparison {
    rs_stats *a, *b;            /* each run's own figures, as rs_stats_compute gives them */
    int views, layers;
    bool forced;                /* the identities differed and options.force went on */
    char mismatch[256];         /* what differed ("" when nothing) */
    rs_stats_diff *diff;        /* (cells, RS_STATS_NUM_RATES), cells as in a */
    rs_stats_mcnemar *mcnemar;  /* (cells) */
} rs_stats_comparison;

/* Compares run RUN_A of STORE_A with run RUN_B of STORE_B (the same store may be passed
 * twice). The runs must be comparable: same data, offset, count, protocol, view specs and
 * seed (store/run.h's RS_RUN_DIFF_IDENTITY; else RS_EINVAL naming both runs and what
 * differs, in rs_run_difference's list, unless OPT->force), and in any
 * case the same images done, views, MoE layers and patch grid, with records in lockstep.
 * Both cursors are read in lockstep in one pass.
 * The bootstrap of each run uses OPT's seed (so a and b equal rs_stats_compute's figures);
 * the paired bootstrap draws one set of images per replicate for both runs. */
int rs_stats_compare(rs_store *store_a, int64_t run_a, rs_store *store_b, int64_t run_b,
                     const rs_stats_options *opt, rs_stats_comparison **out, rs_error *err);
void rs_stats_comparison_free(rs_stats_comparison *cmp);

/* McNemar from discordant counts (exposed for tests and reports): fills chi2 and p as
 * documented above; returns 0 or RS_EINVAL for negative counts. */
int rs_stats_mcnemar_test(int64_t b, int64_t c, double *chi2, double *p, rs_error *err);

/* Percentile interval at LEVEL of the N values in X (sorted here); *VALID false (and 0, 0)
 * when N < 2. */
void rs_stats_percentile(double *x, size_t n, double level, bool *valid, double *lo, double *hi);

/* Wilson score interval for SUCCESSES of N at LEVEL; [0,0] when N is 0. */
void rs_stats_wilson(double successes, double n, double level, double *lo, double *hi);

/* Percentile bootstrap at LEVEL of the ratio sum(NUM) / sum(DEN) of per-image counts over
 * N images (e.g. images restored of images changed) into R's boot fields. Images are drawn
 * as rs_stats_compute draws them (RESAMPLES replicates of N draws with replacement, GSL
 * mt19937 seeded with SEED), so one seed gives the same resampled images as the run's other
 * intervals. Replicates with sum(DEN) = 0 are left out; boot_valid is false when fewer than
 * 2 remain, or with RESAMPLES <= 0. 0 or RS_ENOMEM. */
int rs_stats_boot_ratio(const int32_t *num, const int32_t *den, int n, int resamples, uint64_t seed, double level,
                        rs_stats_rate *r, rs_error *err);

#endif

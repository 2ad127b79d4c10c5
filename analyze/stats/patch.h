/* patch.h — the per-patch values of routing, one implementation each: what the run-wide
 * statistics average (stats.c) and what the heatmap draws (render/heatmap.c), so that a
 * figure's cell and a table's number of the same quantity come from the same function.
 *
 *   distribution  a token's router distribution as stored (float16, widened to float) is
 *                 renormalised to sum 1: negative values count as 0, each value is
 *                 multiplied by the float reciprocal of the double sum. A row with no
 *                 probability mass (nothing > 0) stays all zero: its entropy is 0, its
 *                 JSD with a distribution 1/2 and with another massless row 0.
 *   entropy       routing entropy in bits, −Σ p log2 p (0 log 0 = 0), summed in double.
 *   jsd           Jensen–Shannon divergence in bits between two renormalised
 *                 distributions, H(M) − (H(P) + H(Q)) / 2 with M the mixture, floored at 0
 *                 (rounding can make it slightly negative), not capped: rounding can put it
 *                 a hair above 1.
 *   changed       on view 0's grid: for reference patch m, of the patches of views 1..V-1
 *                 matched to it, how many have a top-1 expert other than m's (the
 *                 complement of stats.h's Top-1 agreement, counted per reference patch).
 *   gate          the recorded top-1 gate of a patch.
 *   min-ε         the smallest ε at which a patch's top-1 changes: rs_attack_min_eps
 *                 (attack_stats.h) is its one implementation.
 *
 * Image values (rs_patch_values) read one image's records (rs_image_routing, store/run.h);
 * patch J is token J + has_cls. Errors: 0 or a negative RS_E* code with one line (RS_EINVAL
 * for a metric, view or layer out of range; RS_ENOMEM). Nothing is allocated for the
 * caller; nothing is printed. */
#ifndef RS_PATCH_H
#define RS_PATCH_H

#include "rs_error.h"
#include "store/run.h"

/* The renormalised distribution P (E) of the stored row STORED (E), as above. */
void rs_patch_dist(const float *stored, float *p, int E);

/* Routing entropy (bits) of a renormalised distribution P (E). */
double rs_patch_entropy(const float *p, int E);

/* JSD (bits) of the renormalised distributions P and Q (E) with entropies HP and HQ
 * (rs_patch_entropy: callers that keep a token's entropy pass it, not recompute it). */
double rs_patch_jsd(const float *p, const float *q, double hp, double hq, int E);

/* Whether patch J of view V (>= 1), layer LAYER has a top-1 expert other than its matched
 * patch of view 0: 1 changed, 0 same, -1 no match. */
int rs_patch_top1_changed(const rs_image_routing *r, int v, int layer, int j);

/* For each reference patch m (Np) of layer LAYER: PAIRS[m] patches of views 1..V-1 matched
 * to it, CHANGED[m] of those with another top-1 expert (rs_patch_top1_changed). */
void rs_patch_change_counts(const rs_image_routing *r, int layer, int *pairs, int *changed);

typedef enum rs_patch_metric { RS_PATCH_GATE, RS_PATCH_ENTROPY, RS_PATCH_JSD, RS_PATCH_CHANGED } rs_patch_metric;

/* "gate", "entropy", "jsd" or "changed"; RS_EINVAL otherwise. */
int rs_patch_metric_parse(const char *text, rs_patch_metric *out, rs_error *err);
/* What the metric is, in words with its unit ("routing entropy (bits)"). */
const char *rs_patch_metric_name(rs_patch_metric m);

/* VALUES (Np) of METRIC at layer LAYER, NaN for n/a:
 *   gate, entropy  patch j of view VIEW;
 *   jsd            patch j of view VIEW (>= 1) with its matched patch of view 0; NaN when
 *                  unmatched;
 *   changed        reference patch m: CHANGED[m] / PAIRS[m] (rs_patch_change_counts), NaN
 *                  when no patch matches it; VIEW is ignored.
 * RS_EINVAL for a view or layer out of range (jsd needs VIEW >= 1), for entropy and jsd of a
 * run recorded with --record topk (R->probs NULL), RS_ENOMEM. */
int rs_patch_values(const rs_image_routing *r, rs_patch_metric metric, int view, int layer, double *values,
                    rs_error *err);

#endif

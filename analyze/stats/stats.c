/* stats.c — agreement statistics over the routing store (see stats.h for the contract).
 *
 * One pass over the cursor: records arrive per image as (view 0, layer 0..L-1), (view 1,
 * ...), ...; view 0's routing of the image is kept (L, T, ·) and every later view's matched
 * patches are compared with it. Base cells (view v < V, layer l < L) are accumulated during
 * the pass; pooled cells (slot V, slot L) are summed from them at the end. Per image only
 * the five agreement counts per (non-reference view, layer) are kept, for the bootstrap. */
#include "stats.h"
#include "patch.h"

#include "input/spec_text.h"
#include "store/run.h"

#include <cblas.h>
#include <gsl/gsl_cdf.h>
#include <gsl/gsl_errno.h>
#include <gsl/gsl_rng.h>
#include <gsl/gsl_sort.h>
#include <gsl/gsl_statistics_double.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { NC = 5 }; /* per-image counts: pairs, top1, top2, top2u, overlap2 */
/* The two routing-changes series: the kept sets (vmoe's figure) and the router's top-k sets. */
enum { RC_KEPT = 0, RC_ROUTER = 1, NRC = 2 };

/* ---- small helpers ---------------------------------------------------------------------- */

bool rs_stats_counts_rate(const rs_stats_counts *c, int which, double *rate)
{
    *rate = 0;
    if (!c || c->pairs <= 0 || which < 0 || which >= RS_STATS_NUM_RATES)
        return false;
    double n = (double)c->pairs;
    switch (which) {
    case RS_STATS_TOP1: *rate = (double)c->top1 / n; break;
    case RS_STATS_TOP2: *rate = (double)c->top2 / n; break;
    case RS_STATS_TOP2_UNORDERED: *rate = (double)c->top2u / n; break;
    default: *rate = (double)c->overlap2 / (2 * n); break;
    }
    return true;
}

/* Rate of metric M from a counts row (pairs, top1, top2, top2u, overlap2); pairs > 0. */
static double row_rate(const int64_t *row, int m)
{
    double n = (double)row[0];
    return m == RS_STATS_OVERLAP ? (double)row[4] / (2 * n) : (double)row[1 + m] / n;
}

static double z_of(double level)
{
    return gsl_cdf_ugaussian_Pinv(0.5 + level / 2);
}

void rs_stats_wilson(double successes, double n, double level, double *lo, double *hi)
{
    *lo = *hi = 0;
    if (!(n > 0))
        return;
    double z = z_of(level), p = successes / n, z2 = z * z;
    double denom = 1 + z2 / n;
    double centre = (p + z2 / (2 * n)) / denom;
    double half = z / denom * sqrt(p * (1 - p) / n + z2 / (4 * n * n));
    *lo = fmax(0, centre - half);
    *hi = fmin(1, centre + half);
}

bool rs_stats_same_set(const uint8_t *a, const uint8_t *kept_a, const uint8_t *b, const uint8_t *kept_b, int k)
{
    int na = 0, nb = 0, inter = 0;
    for (int i = 0; i < k; i++) {
        na += !kept_a || kept_a[i];
        nb += !kept_b || kept_b[i];
        for (int j = 0; (!kept_a || kept_a[i]) && j < k; j++)
            inter += (!kept_b || kept_b[j]) && a[i] == b[j];
    }
    return na == nb && inter == na;
}

double rs_stats_kept_iou(const uint8_t *idx_a, const uint8_t *kept_a, const uint8_t *idx_b, const uint8_t *kept_b,
                         int k)
{
    int na = 0, nb = 0, inter = 0;
    for (int i = 0; i < k; i++) {
        bool in_a = !kept_a || kept_a[i];
        na += in_a;
        nb += !kept_b || kept_b[i];
        for (int j = 0; in_a && j < k; j++)
            inter += (!kept_b || kept_b[j]) && idx_a[i] == idx_b[j];
    }
    int uni = na + nb - inter;
    return uni ? (double)inter / uni : 0.0;
}

int rs_stats_mcnemar_test(int64_t b, int64_t c, double *chi2, double *p, rs_error *err)
{
    *chi2 = 0;
    *p = 1;
    if (b < 0 || c < 0)
        return rs_error_set(err, RS_EINVAL, "McNemar: negative counts b=%" PRId64 " c=%" PRId64, b, c);
    if (b + c == 0)
        return 0;
    double d = fmax(0, fabs((double)b - (double)c) - 1);
    *chi2 = d * d / (double)(b + c);
    *p = gsl_cdf_chisq_Q(*chi2, 1);
    if (!isfinite(*p))
        return rs_error_set(err, RS_EINVAL, "McNemar: chi-square tail failed for %g", *chi2);
    return 0;
}

/* ---- the accumulator of one run ----------------------------------------------------------- */

typedef struct acc {
    rs_stats *st;
    const char *name;
    int V, L, E, K, Np, T, R, k, cls, cells;
    int cap, n_img, cur_image, exp_view, exp_layer;
    int32_t *cnt;         /* (cap, V-1, L, NC) */
    uint8_t *ref_top;     /* (L, T, R) view 0 of the current image */
    uint8_t *ref_ran, *ref_kept; /* (L, T, R) view 0's executed ids and kept mask (all 1: no capacity) */
    float *ref_probs;     /* (L, T, E) renormalised */
    double *ref_h;        /* (L, T) entropy bits */
    float *cur_probs;     /* (T, E) */
    double *cur_h;        /* (T) */
    float *ga, *gb, *gemm; /* (Np, E), (Np, E), (E, E) */
    double *s_sum;        /* (L, E, E) */
    int64_t *s_n;         /* (L) */
    rs_stats_counts *agree; /* (cells) */
    int64_t *unmatched;   /* (cells) */
    double *jsd_sum, *ent_sum; /* (cells) */
    int64_t *jsd_n, *ent_n;    /* (cells) */
    int64_t *labelled, *correct; /* (V+1) */
    int label;
    int *pred;            /* (V) of the current image */
    bool *changed, *any_pair; /* (V) */
    bool *geometric;      /* (V) the view's spec moves pixels (spec_text.h) */
    bool aligned;         /* the current (image, view) is pixel-aligned with view 0 */
    double *iou;          /* (cap, V-1, L, NRC) sum of token IoUs of each image */
    int32_t *iou_n;       /* (cap, V-1, L) tokens compared */
    double *rc_mean;      /* (cap, cells, NRC) mean IoU of each image in each cell */
    uint8_t *rc_ok;       /* (cap, cells) the image has tokens in the cell */
    int64_t *aligned_img; /* (V+1) */
    double *rc_wn, *rc_val; /* (cells) scratch */
    int64_t *rc_n;        /* (cells) scratch */
    bool *rc_ok_cell;     /* (cells) scratch */
} acc;

static void acc_free(acc *a)
{
    free(a->cnt);
    free(a->ref_top);
    free(a->ref_ran);
    free(a->ref_kept);
    free(a->ref_probs);
    free(a->ref_h);
    free(a->cur_probs);
    free(a->cur_h);
    free(a->ga);
    free(a->gb);
    free(a->gemm);
    free(a->s_sum);
    free(a->s_n);
    free(a->agree);
    free(a->unmatched);
    free(a->jsd_sum);
    free(a->ent_sum);
    free(a->jsd_n);
    free(a->ent_n);
    free(a->labelled);
    free(a->correct);
    free(a->pred);
    free(a->changed);
    free(a->any_pair);
    free(a->geometric);
    free(a->iou);
    free(a->iou_n);
    free(a->rc_mean);
    free(a->rc_ok);
    free(a->aligned_img);
    free(a->rc_wn);
    free(a->rc_val);
    free(a->rc_n);
    free(a->rc_ok_cell);
    memset(a, 0, sizeof *a);
}

void rs_stats_free(rs_stats *st)
{
    if (!st)
        return;
    free(st->agree);
    free(st->jsd);
    free(st->entropy);
    free(st->load);
    free(st->load_cv);
    free(st->transition);
    free(st->by_class);
    free(st->by_expert);
    free(st->prc_s);
    free(st->prc_norm);
    free(st->accuracy);
    free(st->change);
    free(st->change_no_pairs);
    free(st->routing_changes);
    free(st->routing_changes_router);
    free(st->rc_tokens);
    free(st->rc_images);
    free(st->aligned_images);
    free(st);
}

/* The routing-changes part of the accumulator: 0, or RS_ENOMEM (the caller reports it). */
static int rc_init(acc *a, const rs_run_info *info)
{
    const int V = a->V, L = a->L;
    const size_t cells = (size_t)a->cells, per_img = (size_t)(V - 1) * L, n_img = a->cap ? (size_t)a->cap : 1;
    a->geometric = calloc((size_t)V, sizeof *a->geometric);
    a->iou = calloc(per_img ? n_img * per_img * NRC : 1, sizeof *a->iou);
    a->iou_n = calloc(per_img ? n_img * per_img : 1, sizeof *a->iou_n);
    a->rc_mean = calloc(n_img * cells * NRC, sizeof *a->rc_mean);
    a->ref_ran = malloc((size_t)L * a->T * a->R);
    a->ref_kept = malloc((size_t)L * a->T * a->R);
    a->rc_ok = calloc(n_img * cells, sizeof *a->rc_ok);
    a->aligned_img = calloc((size_t)V + 1, sizeof *a->aligned_img);
    a->rc_wn = malloc(sizeof *a->rc_wn * cells);
    a->rc_val = malloc(sizeof *a->rc_val * cells);
    a->rc_n = malloc(sizeof *a->rc_n * cells);
    a->rc_ok_cell = malloc(sizeof *a->rc_ok_cell * cells);
    if (!a->geometric || !a->iou || !a->iou_n || !a->rc_mean || !a->ref_ran || !a->ref_kept || !a->rc_ok ||
        !a->aligned_img || !a->rc_wn || !a->rc_val || !a->rc_n || !a->rc_ok_cell)
        return RS_ENOMEM;
    for (int v = 0; v < V && info->view_specs; v++)
        a->geometric[v] = info->view_specs[v] && rs_spec_has_geometric_op(info->view_specs[v]);
    return 0;
}

static int acc_init(acc *a, const rs_run_info *info, const char *name, rs_error *err)
{
    memset(a, 0, sizeof *a);
    a->name = name;
    const int V = info->num_views, L = info->num_layers, E = info->num_experts, K = info->num_classes,
              Np = info->patches, T = info->tokens, R = info->record_k;
    if (V < 1 || L < 1 || E < 1 || E > 256 || K < 0 || Np < 1 || T != Np + (info->has_cls ? 1 : 0) || R < 2 ||
        R > E || info->images_done < 0)
        return rs_error_set(err, RS_EFORMAT,
                            "%s run %" PRId64 ": shapes views=%d layers=%d experts=%d classes=%d patches=%d "
                            "tokens=%d record_k=%d do not fit the statistics",
                            name, info->id, V, L, E, K, Np, T, R);
    if (info->top_k < 1 || info->top_k > R)
        return rs_error_set(err, RS_EFORMAT, "%s run %" PRId64 ": top_k %d outside 1..%d (record_k)", name,
                            info->id, info->top_k, R);
    a->V = V, a->L = L, a->E = E, a->K = K, a->Np = Np, a->T = T, a->R = R;
    a->k = info->top_k;
    a->cls = info->has_cls ? 1 : 0;
    a->cells = (V + 1) * (L + 1);
    a->cap = info->images_done;
    a->cur_image = -1;
    const size_t cells = (size_t)a->cells;

    rs_stats *st = calloc(1, sizeof *st);
    a->st = st;
    if (!st)
        goto nomem;
    st->run_id = info->id;
    st->views = V, st->layers = L, st->experts = E, st->classes = K, st->patches = Np, st->tokens = T;
    st->record_k = R, st->top_k = a->k, st->has_cls = info->has_cls;
    st->no_softmax = info->record == RS_RECORD_TOPK;
    st->agree = calloc(cells, sizeof *st->agree);
    st->jsd = calloc(cells, sizeof *st->jsd);
    st->entropy = calloc(cells, sizeof *st->entropy);
    st->load = calloc(cells * E, sizeof *st->load);
    st->load_cv = calloc(cells, sizeof *st->load_cv);
    st->transition = calloc(cells * E * E, sizeof *st->transition);
    st->by_class = calloc(cells * (K ? K : 1), sizeof *st->by_class);
    st->by_expert = calloc(cells * E, sizeof *st->by_expert);
    st->prc_s = calloc((size_t)L * E * E, sizeof *st->prc_s);
    st->prc_norm = calloc((size_t)L, sizeof *st->prc_norm);
    st->accuracy = calloc((size_t)V + 1, sizeof *st->accuracy);
    st->change = calloc(((size_t)V + 1) * 4, sizeof *st->change);
    st->change_no_pairs = calloc((size_t)V + 1, sizeof *st->change_no_pairs);
    st->routing_changes = calloc(cells, sizeof *st->routing_changes);
    st->routing_changes_router = calloc(cells, sizeof *st->routing_changes_router);
    st->rc_tokens = calloc(cells, sizeof *st->rc_tokens);
    st->rc_images = calloc(cells, sizeof *st->rc_images);
    st->aligned_images = calloc((size_t)V + 1, sizeof *st->aligned_images);
    if (!st->agree || !st->jsd || !st->entropy || !st->load || !st->load_cv || !st->transition || !st->by_class ||
        !st->by_expert || !st->prc_s || !st->prc_norm || !st->accuracy || !st->change || !st->change_no_pairs ||
        !st->routing_changes || !st->routing_changes_router || !st->rc_tokens || !st->rc_images || !st->aligned_images)
        goto nomem;

    size_t per_img = (size_t)(V - 1) * L * NC;
    a->cnt = calloc(per_img && a->cap ? (size_t)a->cap * per_img : 1, sizeof *a->cnt);
    a->ref_top = malloc((size_t)L * T * R);
    a->ref_probs = malloc(sizeof *a->ref_probs * (size_t)L * T * E);
    a->ref_h = malloc(sizeof *a->ref_h * (size_t)L * T);
    a->cur_probs = malloc(sizeof *a->cur_probs * (size_t)T * E);
    a->cur_h = malloc(sizeof *a->cur_h * (size_t)T);
    a->ga = malloc(sizeof *a->ga * (size_t)Np * E);
    a->gb = malloc(sizeof *a->gb * (size_t)Np * E);
    a->gemm = malloc(sizeof *a->gemm * (size_t)E * E);
    a->s_sum = calloc((size_t)L * E * E, sizeof *a->s_sum);
    a->s_n = calloc((size_t)L, sizeof *a->s_n);
    a->agree = calloc(cells, sizeof *a->agree);
    a->unmatched = calloc(cells, sizeof *a->unmatched);
    a->jsd_sum = calloc(cells, sizeof *a->jsd_sum);
    a->ent_sum = calloc(cells, sizeof *a->ent_sum);
    a->jsd_n = calloc(cells, sizeof *a->jsd_n);
    a->ent_n = calloc(cells, sizeof *a->ent_n);
    a->labelled = calloc((size_t)V + 1, sizeof *a->labelled);
    a->correct = calloc((size_t)V + 1, sizeof *a->correct);
    a->pred = calloc((size_t)V, sizeof *a->pred);
    a->changed = calloc((size_t)V, sizeof *a->changed);
    a->any_pair = calloc((size_t)V, sizeof *a->any_pair);
    if (rc_init(a, info))
        goto nomem;
    if (!a->cnt || !a->ref_top || !a->ref_probs || !a->ref_h || !a->cur_probs || !a->cur_h || !a->ga || !a->gb ||
        !a->gemm || !a->s_sum || !a->s_n || !a->agree || !a->unmatched || !a->jsd_sum || !a->ent_sum || !a->jsd_n ||
        !a->ent_n || !a->labelled || !a->correct || !a->pred || !a->changed || !a->any_pair)
        goto nomem;
    return 0;
nomem:
    rs_stats_free(a->st);
    acc_free(a);
    return rs_error_set(err, RS_ENOMEM, "%s run %" PRId64 ": out of memory for the statistics", name, info->id);
}

static int finish_image(acc *a, rs_error *err)
{
    if (a->exp_view != a->V)
        return rs_error_set(err, RS_EFORMAT, "%s run %" PRId64 ": image %d has no routing for view %d layer %d",
                            a->name, a->st->run_id, a->cur_image, a->exp_view, a->exp_layer);
    int64_t *ch = a->st->change;
    for (int v = 1; v < a->V; v++) {
        if (!a->any_pair[v]) {
            a->st->change_no_pairs[v]++;
            continue;
        }
        ch[(size_t)v * 4 + (a->changed[v] ? 2 : 0) + (a->pred[v] != a->pred[0] ? 1 : 0)]++;
    }
    return 0;
}

/* Copies the T×E distributions of SRC into DST renormalised, entropies of tokens into H
   (patch.h). */
static void normalise(const float *src, float *dst, double *h, int T, int E)
{
    for (int t = 0; t < T; t++) {
        float *q = dst + (size_t)t * E;
        rs_patch_dist(src + (size_t)t * E, q, E);
        h[t] = rs_patch_entropy(q, E);
    }
}

/* Keeps view 0's record REC of the current image: what ran and what dispatch kept (all 1
 * without capacity), for the kept-set IoU. */
static void iou_reference(acc *a, const rs_routing_record *rec)
{
    const size_t tr = (size_t)a->T * a->R, at = (size_t)rec->layer * tr;
    memcpy(a->ref_ran + at, rec->executed, tr);
    if (rec->kept) {
        memcpy(a->ref_kept + at, rec->kept, tr);
        a->st->routing_changes_differ = true;
    } else
        memset(a->ref_kept + at, 1, tr);
}

/* Adds token TB of REC against view 0's token TA to the sums SUM (NRC): the IoU of the kept
 * sets of what ran, and of the router's top-k sets. */
static void iou_token(const acc *a, const rs_routing_record *rec, int ta, int tb, double *sum)
{
    const size_t ra = ((size_t)rec->layer * a->T + ta) * a->R, rb = (size_t)tb * a->R;
    sum[RC_KEPT] += rs_stats_kept_iou(a->ref_ran + ra, a->ref_kept + ra, rec->executed + rb,
                                      rec->kept ? rec->kept + rb : NULL, a->k);
    sum[RC_ROUTER] += rs_stats_kept_iou(a->ref_top + ra, NULL, rec->top_idx + rb, NULL, a->k);
}

/* Adds REC's token IoUs with view 0 to the current image's sums: every token when the view
 * is pixel-aligned with view 0 (decided at its first layer), matched patches otherwise.
 * The match map must have been checked. */
static void iou_record(acc *a, const rs_routing_record *rec)
{
    const int T = a->T, Np = a->Np, cls = a->cls, v = rec->view, l = rec->layer;
    if (l == 0) {
        a->aligned = !a->geometric[v];
        for (int j = 0; j < Np && a->aligned; j++)
            a->aligned = rec->match[j] == j;
        a->aligned_img[v] += a->aligned;
    }
    if (rec->kept || rec->forced)
        a->st->routing_changes_differ = true;
    double sum[NRC] = {0, 0};
    int n = 0;
    if (a->aligned)
        for (int t = 0; t < T; t++, n++)
            iou_token(a, rec, t, t, sum);
    else
        for (int j = 0; j < Np; j++)
            if (rec->match[j] >= 0) {
                iou_token(a, rec, rec->match[j] + cls, j + cls, sum);
                n++;
            }
    size_t q = ((size_t)(a->n_img - 1) * (a->V - 1) + (v - 1)) * a->L + l;
    for (int s = 0; s < NRC; s++)
        a->iou[q * NRC + s] = sum[s];
    a->iou_n[q] = n;
}

static int acc_record(acc *a, const rs_routing_record *rec, rs_error *err)
{
    rs_stats *st = a->st;
    const int V = a->V, L = a->L, E = a->E, T = a->T, R = a->R, Np = a->Np, cls = a->cls;
    int rc;
    if (rec->image != a->cur_image) {
        if (a->cur_image >= 0 && (rc = finish_image(a, err)))
            return rc;
        if (a->cur_image >= 0 && rec->image < a->cur_image)
            return rs_error_set(err, RS_EFORMAT, "%s run %" PRId64 ": image %d after image %d", a->name,
                                st->run_id, rec->image, a->cur_image);
        if (a->n_img >= a->cap)
            return rs_error_set(err, RS_EFORMAT, "%s run %" PRId64 ": more images of routing than the %d done",
                                a->name, st->run_id, a->cap);
        a->n_img++;
        a->cur_image = rec->image;
        a->exp_view = a->exp_layer = 0;
        a->label = rec->label;
        if (rec->label < -1 || rec->label >= a->K)
            return rs_error_set(err, RS_EFORMAT, "%s run %" PRId64 ": image %d has label %d outside -1..%d",
                                a->name, st->run_id, rec->image, rec->label, a->K - 1);
        for (int v = 0; v < V; v++)
            a->changed[v] = a->any_pair[v] = false;
    }
    const int v = rec->view, l = rec->layer;
    if (v != a->exp_view || l != a->exp_layer)
        return rs_error_set(err, RS_EFORMAT, "%s run %" PRId64 ": image %d has view %d layer %d where view %d layer %d "
                            "was expected", a->name, st->run_id, rec->image, v, l, a->exp_view, a->exp_layer);
    if (++a->exp_layer == L) {
        a->exp_layer = 0;
        a->exp_view++;
    }
    for (size_t q = 0; q < (size_t)T * R; q++)
        if (rec->top_idx[q] >= E)
            return rs_error_set(err, RS_EFORMAT, "%s run %" PRId64 ": image %d view %d layer %d: expert id %d >= %d",
                                a->name, st->run_id, rec->image, v, l, rec->top_idx[q], E);
    if (l == 0) {
        a->pred[v] = rec->predicted;
        if (a->label >= 0) {
            a->labelled[v]++;
            a->correct[v] += rec->predicted == a->label;
        }
    }
    const int cell = v * (L + 1) + l;
    float *probs = v == 0 ? a->ref_probs + (size_t)l * T * E : a->cur_probs;
    double *h = v == 0 ? a->ref_h + (size_t)l * T : a->cur_h;
    const bool soft = rec->probs != NULL; /* NULL: a topk run, no entropy, JSD or S (they stay n/a) */
    if (soft)
        normalise(rec->probs, probs, h, T, E);
    if (v == 0) {
        memcpy(a->ref_top + (size_t)l * T * R, rec->top_idx, (size_t)T * R);
        iou_reference(a, rec);
    }
    int64_t *load = st->load + (size_t)cell * E;
    for (int t = cls; t < T; t++) {
        a->ent_sum[cell] += soft ? h[t] : 0;
        for (int s = 0; s < a->k; s++)
            load[rec->top_idx[(size_t)t * R + s]]++;
    }
    a->ent_n[cell] += soft ? T - cls : 0;
    if (v == 0)
        return 0;

    const uint8_t *rtop = a->ref_top + (size_t)l * T * R;
    const float *rprobs = a->ref_probs + (size_t)l * T * E;
    const double *rh = a->ref_h + (size_t)l * T;
    int32_t *row = a->cnt + (((size_t)(a->n_img - 1) * (V - 1) + (v - 1)) * L + l) * NC;
    rs_stats_counts *c = &a->agree[cell];
    rs_stats_counts *byc = a->label >= 0 ? &st->by_class[(size_t)cell * a->K + a->label] : NULL;
    int64_t *trans = st->transition + (size_t)cell * E * E;
    int n = 0;
    double jsd = 0;
    for (int j = 0; j < Np; j++) {
        int m = rec->match[j];
        if (m < -1 || m >= Np)
            return rs_error_set(err, RS_EFORMAT, "%s run %" PRId64 ": image %d view %d: patch %d matches %d, outside "
                                "the %d patches", a->name, st->run_id, rec->image, v, j, m, Np);
        if (m < 0) {
            a->unmatched[cell]++;
            continue;
        }
        const uint8_t *ta = rtop + (size_t)(m + cls) * R, *tb = rec->top_idx + (size_t)(j + cls) * R;
        int a1 = ta[0], a2 = ta[1], b1 = tb[0], b2 = tb[1];
        int t1 = a1 == b1, t2 = t1 && a2 == b2, t2u = t2 || (a1 == b2 && a2 == b1);
        int ov = (a1 == b1 || a1 == b2) + (a2 != a1 && (a2 == b1 || a2 == b2));
        int64_t add[NC] = {1, t1, t2, t2u, ov};
        c->pairs++, c->top1 += t1, c->top2 += t2, c->top2u += t2u, c->overlap2 += ov;
        for (int q = 0; q < NC; q++)
            row[q] += (int32_t)add[q];
        if (byc)
            byc->pairs++, byc->top1 += t1, byc->top2 += t2, byc->top2u += t2u, byc->overlap2 += ov;
        rs_stats_counts *bye = &st->by_expert[(size_t)cell * E + a1];
        bye->pairs++, bye->top1 += t1, bye->top2 += t2, bye->top2u += t2u, bye->overlap2 += ov;
        trans[(size_t)a1 * E + b1]++;
        a->any_pair[v] = true;
        if (!t1)
            a->changed[v] = true;
        if (!soft)
            continue;
        const float *pa = rprobs + (size_t)(m + cls) * E, *pb = probs + (size_t)(j + cls) * E;
        jsd += rs_patch_jsd(pa, pb, rh[m + cls], h[j + cls], E);
        memcpy(a->ga + (size_t)n * E, pa, sizeof *pa * (size_t)E);
        memcpy(a->gb + (size_t)n * E, pb, sizeof *pb * (size_t)E);
        n++;
    }
    a->jsd_sum[cell] += jsd;
    a->jsd_n[cell] += n;
    if (n > 0) {
        /* (E,E) += gbᵀ (E,n) · ga (n,E): rows index the view's expert, columns view 0's. */
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, E, E, n, 1.0f, a->gb, E, a->ga, E, 0.0f, a->gemm, E);
        double *s = a->s_sum + (size_t)l * E * E;
        for (int q = 0; q < E * E; q++)
            s[q] += a->gemm[q];
        a->s_n[l] += n;
    }
    iou_record(a, rec); /* after the loop above has checked the match map */
    return 0;
}

/* Sums base cells (v < V, l < L) of a (cells, W) int64 array into the pooled slots. */
static void pool_i64(int64_t *x, int V, int L, size_t W)
{
    for (int v = 0; v < V; v++)
        for (int l = 0; l < L; l++) {
            const int64_t *src = x + (size_t)(v * (L + 1) + l) * W;
            int64_t *d1 = x + (size_t)(v * (L + 1) + L) * W, *d2 = x + (size_t)(V * (L + 1) + l) * W,
                    *d3 = x + (size_t)(V * (L + 1) + L) * W;
            for (size_t q = 0; q < W; q++) {
                d1[q] += src[q];
                d2[q] += src[q];
                d3[q] += src[q];
            }
        }
}

static void pool_f64(double *x, int V, int L)
{
    for (int v = 0; v < V; v++)
        for (int l = 0; l < L; l++) {
            double s = x[v * (L + 1) + l];
            x[v * (L + 1) + L] += s;
            x[V * (L + 1) + l] += s;
            x[V * (L + 1) + L] += s;
        }
}

static void counts_to_i64(const rs_stats_counts *c, int64_t *x)
{
    x[0] = c->pairs, x[1] = c->top1, x[2] = c->top2, x[3] = c->top2u, x[4] = c->overlap2;
}

static void i64_to_counts(const int64_t *x, rs_stats_counts *c)
{
    c->pairs = x[0], c->top1 = x[1], c->top2 = x[2], c->top2u = x[3], c->overlap2 = x[4];
}

static void pool_counts(rs_stats_counts *c, int V, int L, size_t W, int64_t *tmp)
{
    size_t cells = (size_t)(V + 1) * (L + 1);
    for (size_t q = 0; q < cells * W; q++)
        counts_to_i64(&c[q], tmp + q * NC);
    pool_i64(tmp, V, L, W * NC);
    for (size_t q = 0; q < cells * W; q++)
        i64_to_counts(tmp + q * NC, &c[q]);
}

/* Routing changes of series S (RC_KEPT, RC_ROUTER) of every cell with image weights W
 * (NULL: all 1) into OUT and OK (cells): 1 − the weighted mean over the images with tokens
 * in the cell of their mean IoU. */
static void rc_weighted(const acc *a, int s, const unsigned *w, double *out, bool *ok)
{
    const size_t cells = (size_t)a->cells;
    double *wsum = out; /* out doubles as the weighted sum until the division */
    memset(wsum, 0, sizeof *wsum * cells);
    for (size_t c = 0; c < cells; c++)
        ok[c] = false;
    double *wn = a->rc_wn;
    memset(wn, 0, sizeof *wn * cells);
    for (int i = 0; i < a->n_img; i++) {
        double wi = w ? (double)w[i] : 1;
        if (wi == 0)
            continue;
        const double *m = a->rc_mean + (size_t)i * cells * NRC;
        const uint8_t *k = a->rc_ok + (size_t)i * cells;
        for (size_t c = 0; c < cells; c++)
            if (k[c]) {
                wsum[c] += wi * m[c * NRC + s];
                wn[c] += wi;
            }
    }
    for (size_t c = 0; c < cells; c++) {
        ok[c] = wn[c] > 0;
        out[c] = ok[c] ? 1 - wsum[c] / wn[c] : 0;
    }
}

/* Image I's mean IoU of series S per cell (base cells, then the pooled ones from their
 * token sums) into rc_mean, and its token counts into N (cells). */
static void rc_image(acc *a, int i, int s, int64_t *n)
{
    const int V = a->V, L = a->L;
    const size_t cells = (size_t)a->cells;
    double *sum = a->rc_wn; /* scratch (cells) */
    memset(sum, 0, sizeof *sum * cells);
    memset(n, 0, sizeof *n * cells);
    for (int v = 1; v < V; v++)
        for (int l = 0; l < L; l++) {
            size_t q = ((size_t)i * (V - 1) + (v - 1)) * L + l;
            sum[v * (L + 1) + l] = a->iou[q * NRC + s];
            n[v * (L + 1) + l] = a->iou_n[q];
        }
    pool_f64(sum, V, L);
    pool_i64(n, V, L, 1);
    for (size_t c = 0; c < cells; c++)
        a->rc_mean[((size_t)i * cells + c) * NRC + s] = n[c] > 0 ? sum[c] / (double)n[c] : 0;
}

/* Each image's mean IoUs per cell, the cells' token and image counts, and both series of
 * routing changes without the bootstrap. */
static void rc_finish(acc *a)
{
    rs_stats *st = a->st;
    const int V = a->V;
    const size_t cells = (size_t)a->cells;
    int64_t *n = a->rc_n;
    for (int i = 0; i < a->n_img; i++) {
        for (int s = 0; s < NRC; s++)
            rc_image(a, i, s, n);
        for (size_t c = 0; c < cells; c++) {
            a->rc_ok[(size_t)i * cells + c] = n[c] > 0;
            st->rc_tokens[c] += n[c];
            st->rc_images[c] += n[c] > 0;
        }
    }
    bool *ok = a->rc_ok_cell;
    double *val = a->rc_val;
    for (int s = 0; s < NRC; s++) {
        rs_stats_rate *out = s == RC_KEPT ? st->routing_changes : st->routing_changes_router;
        rc_weighted(a, s, NULL, val, ok);
        for (size_t c = 0; c < cells; c++)
            out[c] = (rs_stats_rate){.valid = ok[c], .value = val[c]};
    }
    for (int v = 1; v < V; v++)
        a->aligned_img[V] += a->aligned_img[v];
    memcpy(st->aligned_images, a->aligned_img, sizeof *a->aligned_img * ((size_t)V + 1));
}

/* Fills ST's figures from the accumulator after the pass (not the bootstrap). */
static int acc_finish(acc *a, double level, rs_error *err)
{
    rs_stats *st = a->st;
    const int V = a->V, L = a->L, E = a->E, K = a->K;
    const size_t cells = (size_t)a->cells;
    int rc;
    if (a->cur_image >= 0 && (rc = finish_image(a, err)))
        return rc;
    if (a->n_img != a->cap)
        return rs_error_set(err, RS_EFORMAT, "%s run %" PRId64 ": %d images done but routing for %d", a->name,
                            st->run_id, a->cap, a->n_img);
    st->images = a->n_img;
    size_t wmax = (size_t)(K > E ? K : E);
    int64_t *tmp = malloc(sizeof *tmp * cells * NC * (wmax > 0 ? wmax : 1));
    if (!tmp)
        return rs_error_set(err, RS_ENOMEM, "%s run %" PRId64 ": out of memory", a->name, st->run_id);
    pool_counts(a->agree, V, L, 1, tmp);
    if (K > 0)
        pool_counts(st->by_class, V, L, (size_t)K, tmp);
    pool_counts(st->by_expert, V, L, (size_t)E, tmp);
    free(tmp);
    pool_i64(a->unmatched, V, L, 1);
    pool_i64(st->load, V, L, (size_t)E);
    pool_i64(st->transition, V, L, (size_t)E * E);
    pool_i64(a->jsd_n, V, L, 1);
    pool_i64(a->ent_n, V, L, 1);
    pool_f64(a->jsd_sum, V, L);
    pool_f64(a->ent_sum, V, L);

    for (size_t c = 0; c < cells; c++) {
        rs_stats_agreement *ag = &st->agree[c];
        ag->n = a->agree[c];
        ag->unmatched = a->unmatched[c];
        for (int m = 0; m < RS_STATS_NUM_RATES; m++) {
            rs_stats_rate *r = &ag->rate[m];
            r->valid = rs_stats_counts_rate(&ag->n, m, &r->value);
            if (r->valid)
                rs_stats_wilson(r->value * (double)ag->n.pairs, (double)ag->n.pairs, level, &r->wilson_lo,
                                &r->wilson_hi);
        }
        st->jsd[c] = (rs_stats_mean){.valid = a->jsd_n[c] > 0, .n = a->jsd_n[c],
                                     .mean = a->jsd_n[c] > 0 ? a->jsd_sum[c] / (double)a->jsd_n[c] : 0};
        st->entropy[c] = (rs_stats_mean){.valid = a->ent_n[c] > 0, .n = a->ent_n[c],
                                         .mean = a->ent_n[c] > 0 ? a->ent_sum[c] / (double)a->ent_n[c] : 0};
        const int64_t *load = st->load + c * E;
        int64_t total = 0;
        for (int e = 0; e < E; e++)
            total += load[e];
        if (total > 0) {
            double mean = (double)total / E, var = 0;
            for (int e = 0; e < E; e++)
                var += ((double)load[e] - mean) * ((double)load[e] - mean);
            st->load_cv[c] = (rs_stats_mean){.valid = true, .n = total, .mean = sqrt(var / E) / mean};
        }
    }
    for (int l = 0; l < L; l++) {
        if (a->s_n[l] == 0)
            continue;
        double *s = st->prc_s + (size_t)l * E * E, norm = 0;
        for (int q = 0; q < E * E; q++) {
            s[q] = (double)E / (double)a->s_n[l] * a->s_sum[(size_t)l * E * E + q];
            double d = s[q] - (q / E == q % E ? 1 : 0);
            norm += d * d;
        }
        st->prc_norm[l] = (rs_stats_mean){.valid = true, .n = a->s_n[l], .mean = sqrt(norm)};
    }
    for (int v = 0; v < V; v++) {
        a->labelled[V] += a->labelled[v];
        a->correct[V] += a->correct[v];
    }
    for (int v = 0; v <= V; v++) {
        rs_stats_accuracy *acc_v = &st->accuracy[v];
        acc_v->labelled = a->labelled[v];
        acc_v->correct = a->correct[v];
        acc_v->valid = a->labelled[v] > 0;
        if (acc_v->valid) {
            acc_v->value = (double)a->correct[v] / (double)a->labelled[v];
            rs_stats_wilson((double)a->correct[v], (double)a->labelled[v], level, &acc_v->wilson_lo,
                            &acc_v->wilson_hi);
        }
    }
    for (int v = 1; v < V; v++) {
        for (int q = 0; q < 4; q++)
            st->change[(size_t)V * 4 + q] += st->change[(size_t)v * 4 + q];
        st->change_no_pairs[V] += st->change_no_pairs[v];
    }
    rc_finish(a);
    return 0;
}

/* ---- bootstrap ------------------------------------------------------------------------------ */

/* Replicate sums of all cells from one run's per-image counts with weights W. OUT is
 * (cells, NC), zeroed here. */
static void replicate_sums(const int32_t *cnt, const unsigned *w, int N, int V, int L, int64_t *base, int64_t *out)
{
    const size_t nb = (size_t)(V - 1) * L * NC;
    memset(base, 0, sizeof *base * nb);
    for (int i = 0; i < N; i++) {
        if (!w[i])
            continue;
        const int32_t *row = cnt + (size_t)i * nb;
        const int64_t wi = w[i];
        for (size_t q = 0; q < nb; q++)
            base[q] += wi * row[q];
    }
    const size_t cells = (size_t)(V + 1) * (L + 1);
    memset(out, 0, sizeof *out * cells * NC);
    for (int v = 1; v < V; v++)
        for (int l = 0; l < L; l++)
            memcpy(out + (size_t)(v * (L + 1) + l) * NC, base + ((size_t)(v - 1) * L + l) * NC, sizeof *out * NC);
    pool_i64(out, V, L, NC);
}

void rs_stats_percentile(double *x, size_t n, double level, bool *valid, double *lo, double *hi)
{
    *valid = n >= 2;
    *lo = *hi = 0;
    if (!*valid)
        return;
    gsl_sort(x, 1, n);
    *lo = gsl_stats_quantile_from_sorted_data(x, 1, n, (1 - level) / 2);
    *hi = gsl_stats_quantile_from_sorted_data(x, 1, n, (1 + level) / 2);
}

int rs_stats_boot_ratio(const int32_t *num, const int32_t *den, int n, int resamples, uint64_t seed, double level,
                        rs_stats_rate *r, rs_error *err)
{
    r->boot_valid = false;
    r->boot_lo = r->boot_hi = 0;
    if (resamples <= 0 || n < 1)
        return 0;
    unsigned *w = malloc(sizeof *w * (size_t)n);
    double *vals = malloc(sizeof *vals * (size_t)resamples);
    gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
    size_t nv = 0;
    if (w && vals && rng) {
        gsl_rng_set(rng, (unsigned long)seed);
        for (int b = 0; b < resamples; b++) {
            memset(w, 0, sizeof *w * (size_t)n);
            for (int d = 0; d < n; d++)
                w[gsl_rng_uniform_int(rng, (unsigned long)n)]++;
            double a = 0, z = 0;
            for (int i = 0; i < n; i++)
                a += (double)w[i] * num[i], z += (double)w[i] * den[i];
            if (z > 0)
                vals[nv++] = a / z;
        }
        rs_stats_percentile(vals, nv, level, &r->boot_valid, &r->boot_lo, &r->boot_hi);
    }
    int rc = w && vals && rng ? 0 : rs_error_set(err, RS_ENOMEM, "out of memory for the bootstrap");
    gsl_rng_free(rng);
    free(w);
    free(vals);
    return rc;
}

/* Appends both series of routing changes of A's cells under image weights W to VALS
 * (NRC, cells, NR), N (NRC, cells) counting the values of each cell. */
static void rc_collect(acc *a, const unsigned *w, double *vals, size_t *n, size_t nr)
{
    const size_t cells = (size_t)a->cells;
    for (int s = 0; s < NRC; s++) {
        rc_weighted(a, s, w, a->rc_val, a->rc_ok_cell);
        for (size_t c = 0; c < cells; c++) {
            size_t at = (size_t)s * cells + c;
            if (a->rc_ok_cell[c])
                vals[at * nr + n[at]++] = a->rc_val[c];
        }
    }
}

static void rc_intervals(acc *a, double *vals, const size_t *n, size_t nr, double level)
{
    const size_t cells = (size_t)a->cells;
    for (int s = 0; s < NRC; s++)
        for (size_t c = 0; c < cells; c++) {
            size_t at = (size_t)s * cells + c;
            rs_stats_rate *r = s == RC_KEPT ? &a->st->routing_changes[c] : &a->st->routing_changes_router[c];
            if (r->valid)
                rs_stats_percentile(vals + at * nr, n[at], level, &r->boot_valid, &r->boot_lo, &r->boot_hi);
        }
}

/* Bootstrap over images of run A (and B, paired, when given): fills the boot_* fields of
 * A's (and B's) rates, and DIFF (cells × rates) with B − A. */
static int bootstrap(acc *A, acc *B, int resamples, uint64_t seed, double level, rs_stats_diff *diff, rs_error *err)
{
    const int N = A->n_img, V = A->V, L = A->L;
    const size_t cells = (size_t)A->cells, nb = (size_t)(V - 1) * L * NC;
    if (resamples <= 0 || N == 0 || V < 2)
        return 0;
    const size_t nr = (size_t)resamples;
    const int runs = B ? 3 : 1; /* A, B, B − A */
    unsigned *w = malloc(sizeof *w * (size_t)N);
    int64_t *base = malloc(sizeof *base * (nb ? nb : 1));
    int64_t *sa = malloc(sizeof *sa * cells * NC), *sb = malloc(sizeof *sb * cells * NC);
    double *vals = malloc(sizeof *vals * (size_t)runs * cells * RS_STATS_NUM_RATES * nr);
    size_t *nval = calloc((size_t)runs * cells, sizeof *nval);
    const size_t rcc = NRC * cells; /* routing-changes cells of one run, both series */
    double *rcv = malloc(sizeof *rcv * 2 * rcc * nr); /* routing changes of A and B */
    size_t *rcn = calloc(2 * rcc, sizeof *rcn);
    gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
    int rc = 0;
    if (!w || !base || !sa || !sb || !vals || !nval || !rcv || !rcn || !rng) {
        rc = rs_error_set(err, RS_ENOMEM, "%s run %" PRId64 ": out of memory for the bootstrap", A->name,
                          A->st->run_id);
        goto done;
    }
    gsl_rng_set(rng, (unsigned long)seed);
    for (size_t b = 0; b < nr; b++) {
        memset(w, 0, sizeof *w * (size_t)N);
        for (int d = 0; d < N; d++)
            w[gsl_rng_uniform_int(rng, (unsigned long)N)]++;
        replicate_sums(A->cnt, w, N, V, L, base, sa);
        if (B)
            replicate_sums(B->cnt, w, N, V, L, base, sb);
        rc_collect(A, w, rcv, rcn, nr);
        if (B)
            rc_collect(B, w, rcv + rcc * nr, rcn + rcc, nr);
        for (size_t c = 0; c < cells; c++) {
            const int64_t *ra = sa + c * NC, *rb = sb + c * NC;
            bool va = ra[0] > 0, vb = B && rb[0] > 0;
            for (int m = 0; m < RS_STATS_NUM_RATES; m++) {
                if (va)
                    vals[((0 * cells + c) * RS_STATS_NUM_RATES + m) * nr + nval[0 * cells + c]] = row_rate(ra, m);
                if (vb)
                    vals[((1 * cells + c) * RS_STATS_NUM_RATES + m) * nr + nval[1 * cells + c]] = row_rate(rb, m);
                if (va && vb)
                    vals[((2 * cells + c) * RS_STATS_NUM_RATES + m) * nr + nval[2 * cells + c]] =
                        row_rate(rb, m) - row_rate(ra, m);
            }
            nval[c] += va;
            if (B) {
                nval[cells + c] += vb;
                nval[2 * cells + c] += va && vb;
            }
        }
    }
    for (int r = 0; r < runs; r++)
        for (size_t c = 0; c < cells; c++)
            for (int m = 0; m < RS_STATS_NUM_RATES; m++) {
                double *x = vals + (((size_t)r * cells + c) * RS_STATS_NUM_RATES + m) * nr;
                size_t n = nval[(size_t)r * cells + c];
                if (r < 2) {
                    rs_stats_rate *rt = &(r == 0 ? A : B)->st->agree[c].rate[m];
                    if (rt->valid)
                        rs_stats_percentile(x, n, level, &rt->boot_valid, &rt->boot_lo, &rt->boot_hi);
                } else if (diff[c * RS_STATS_NUM_RATES + m].valid) {
                    rs_stats_diff *df = &diff[c * RS_STATS_NUM_RATES + m];
                    rs_stats_percentile(x, n, level, &df->boot_valid, &df->boot_lo, &df->boot_hi);
                }
            }
    rc_intervals(A, rcv, rcn, nr, level);
    if (B)
        rc_intervals(B, rcv + rcc * nr, rcn + rcc, nr, level);
done:
    gsl_rng_free(rng);
    free(rcv);
    free(rcn);
    free(w);
    free(base);
    free(sa);
    free(sb);
    free(vals);
    free(nval);
    return rc;
}

/* ---- public entry points -------------------------------------------------------------------- */

static int check_options(const rs_stats_options *opt, int *resamples, double *level, rs_error *err)
{
    *resamples = RS_STATS_DEFAULT_RESAMPLES;
    *level = 0.95;
    if (!opt)
        return 0;
    if (opt->resamples < 0)
        *resamples = 0;
    else if (opt->resamples > 0)
        *resamples = opt->resamples;
    if (opt->level != 0) {
        if (!(opt->level > 0 && opt->level < 1))
            return rs_error_set(err, RS_EINVAL, "%s: interval level %g outside (0,1)",
                                opt->name ? opt->name : "store", opt->level);
        *level = opt->level;
    }
    return 0;
}

static void set_meta(rs_stats *st, int resamples, uint64_t seed, double level)
{
    st->resamples = resamples;
    st->seed = seed;
    st->level = level;
}

int rs_stats_compute(rs_store *store, int64_t run_id, const rs_stats_options *opt, rs_stats **out,
                     rs_error *err)
{
    *out = NULL;
    gsl_set_error_handler_off();
    const char *name = opt && opt->name ? opt->name : "store";
    int resamples;
    double level;
    int rc = check_options(opt, &resamples, &level, err);
    if (rc)
        return rc;
    uint64_t seed = opt ? opt->seed : 0;
    rs_run_info info = {0};
    if ((rc = rs_store_get_run(store, run_id, &info, err)))
        return rc;
    acc a;
    rc = acc_init(&a, &info, name, err);
    rs_run_info_clear(&info);
    if (rc)
        return rc;
    rs_store_cursor *cur = NULL;
    if ((rc = rs_store_cursor_open(store, run_id, &cur, err)))
        goto fail;
    rs_routing_record rec;
    while ((rc = rs_store_cursor_next(cur, &rec, err)) == 1)
        if ((rc = acc_record(&a, &rec, err)))
            goto fail;
    if (rc < 0)
        goto fail;
    rs_store_cursor_close(cur);
    cur = NULL;
    if ((rc = acc_finish(&a, level, err)) || (rc = bootstrap(&a, NULL, resamples, seed, level, NULL, err)))
        goto fail;
    set_meta(a.st, a.n_img && a.V > 1 ? resamples : 0, seed, level);
    *out = a.st;
    a.st = NULL;
    acc_free(&a);
    return 0;
fail:
    rs_store_cursor_close(cur);
    rs_stats_free(a.st);
    acc_free(&a);
    return rc;
}

void rs_stats_comparison_free(rs_stats_comparison *cmp)
{
    if (!cmp)
        return;
    rs_stats_free(cmp->a);
    rs_stats_free(cmp->b);
    free(cmp->diff);
    free(cmp->mcnemar);
    free(cmp);
}

/* A comparison being built: both runs' accumulators and the paired McNemar counts. */
typedef struct pairing {
    const char *name_a, *name_b;
    int64_t run_a, run_b;
    rs_run_info ia, ib;
    acc A, B;
    bool have_a, have_b;
    int64_t *mc;                /* (cells, 3): pairs, b (only A agrees), c (only B agrees) */
    rs_stats_comparison *cmp;
} pairing;

static void pairing_free(pairing *p)
{
    if (p->have_a) {
        rs_stats_free(p->A.st);
        acc_free(&p->A);
    }
    if (p->have_b) {
        rs_stats_free(p->B.st);
        acc_free(&p->B);
    }
    free(p->mc);
    rs_run_info_clear(&p->ia);
    rs_run_info_clear(&p->ib);
    rs_stats_comparison_free(p->cmp);
}

/* Both runs, refused when their identities differ (unless FORCE) or when their records
 * cannot be paired at all. */
static int pairing_check(pairing *p, rs_store *store_a, rs_store *store_b, bool force, rs_error *err)
{
    const rs_run_info *ia = &p->ia, *ib = &p->ib;
    int rc = rs_store_get_run(store_a, p->run_a, &p->ia, err);
    if (rc || (rc = rs_store_get_run(store_b, p->run_b, &p->ib, err)))
        return rc;
    rs_stats_comparison *cmp = p->cmp;
    rs_run_difference(ia, ib, RS_RUN_DIFF_IDENTITY, RS_RUN_DIFF_LIST, cmp->mismatch, sizeof cmp->mismatch);
    if (cmp->mismatch[0] && !force)
        return rs_error_set(err, RS_EINVAL, "%s run %" PRId64 " and %s run %" PRId64 " are not comparable: %s "
                            "(--force compares anyway)", p->name_a, p->run_a, p->name_b, p->run_b, cmp->mismatch);
    cmp->forced = cmp->mismatch[0] != 0;
    if (ia->images_done != ib->images_done || ia->num_views != ib->num_views || ia->num_layers != ib->num_layers ||
        ia->patches != ib->patches)
        return rs_error_set(err, RS_EINVAL, "%s run %" PRId64 " and %s run %" PRId64 " cannot be paired: images "
                            "done %d/%d, views %d/%d, MoE layers %d/%d, patches %d/%d", p->name_a, p->run_a,
                            p->name_b, p->run_b, ia->images_done, ib->images_done, ia->num_views, ib->num_views,
                            ia->num_layers, ib->num_layers, ia->patches, ib->patches);
    return 0;
}

/* Both accumulators and the comparison's arrays. */
static int pairing_alloc(pairing *p, rs_error *err)
{
    int rc = acc_init(&p->A, &p->ia, p->name_a, err);
    if (rc)
        return rc;
    p->have_a = true;
    if ((rc = acc_init(&p->B, &p->ib, p->name_b, err)))
        return rc;
    p->have_b = true;
    const size_t cells = (size_t)p->A.cells;
    rs_stats_comparison *cmp = p->cmp;
    cmp->views = p->A.V, cmp->layers = p->A.L;
    cmp->diff = calloc(cells * RS_STATS_NUM_RATES, sizeof *cmp->diff);
    cmp->mcnemar = calloc(cells, sizeof *cmp->mcnemar);
    p->mc = calloc(cells * 3, sizeof *p->mc);
    if (!cmp->diff || !cmp->mcnemar || !p->mc)
        return rs_error_set(err, RS_ENOMEM, "%s run %" PRId64 ": out of memory", p->name_a, p->run_a);
    return 0;
}

/* McNemar's counts of one pair of records (same image, view, layer): over the patches
 * matched to the same view-0 patch in both runs, whether each run's top-1 agrees there. */
static void count_discordant(pairing *p, const rs_routing_record *ra, const rs_routing_record *rb)
{
    const acc *A = &p->A, *B = &p->B;
    int64_t *m3 = p->mc + (size_t)(ra->view * (A->L + 1) + ra->layer) * 3;
    const uint8_t *refa = A->ref_top + (size_t)ra->layer * A->T * A->R;
    const uint8_t *refb = B->ref_top + (size_t)rb->layer * B->T * B->R;
    for (int j = 0; j < A->Np; j++) {
        int m = ra->match[j];
        if (m < 0 || rb->match[j] != m)
            continue;
        bool ga = refa[(size_t)(m + A->cls) * A->R] == ra->top_idx[(size_t)(j + A->cls) * A->R];
        bool gb = refb[(size_t)(m + B->cls) * B->R] == rb->top_idx[(size_t)(j + B->cls) * B->R];
        m3[0]++;
        m3[1] += ga && !gb;
        m3[2] += !ga && gb;
    }
}

/* Both runs' records in lockstep, into both accumulators and the McNemar counts. */
static int paired_pass(pairing *p, rs_store *store_a, rs_store *store_b, rs_error *err)
{
    rs_store_cursor *ca = NULL, *cb = NULL;
    int rc = rs_store_cursor_open(store_a, p->run_a, &ca, err);
    if (!rc)
        rc = rs_store_cursor_open(store_b, p->run_b, &cb, err);
    while (!rc) {
        rs_routing_record ra, rb;
        int ka = rs_store_cursor_next(ca, &ra, err), kb = ka < 0 ? 0 : rs_store_cursor_next(cb, &rb, err);
        if (ka < 0 || kb < 0) {
            rc = ka < 0 ? ka : kb;
            break;
        }
        if (ka == 0 && kb == 0)
            break;
        if (ka != kb || ra.image != rb.image || ra.view != rb.view || ra.layer != rb.layer) {
            rc = rs_error_set(err, RS_EINVAL, "%s run %" PRId64 " and %s run %" PRId64 " cannot be paired: "
                              "records differ at %s", p->name_a, p->run_a, p->name_b, p->run_b,
                              ka != kb ? "the end of one run" : "an image, view or layer");
            break;
        }
        if ((rc = acc_record(&p->A, &ra, err)) || (rc = acc_record(&p->B, &rb, err)))
            break;
        if (ra.view != 0)
            count_discordant(p, &ra, &rb);
    }
    rs_store_cursor_close(ca);
    rs_store_cursor_close(cb);
    return rc;
}

/* Each run's own figures, McNemar's test per cell and the differences B - A. */
static int paired_finish(pairing *p, double level, rs_error *err)
{
    int rc = acc_finish(&p->A, level, err);
    if (rc || (rc = acc_finish(&p->B, level, err)))
        return rc;
    rs_stats_comparison *cmp = p->cmp;
    pool_i64(p->mc, p->A.V, p->A.L, 3);
    for (size_t c = 0; c < (size_t)p->A.cells; c++) {
        rs_stats_mcnemar *t = &cmp->mcnemar[c];
        t->pairs = p->mc[c * 3], t->b = p->mc[c * 3 + 1], t->c = p->mc[c * 3 + 2];
        t->valid = t->pairs > 0;
        if (t->valid && (rc = rs_stats_mcnemar_test(t->b, t->c, &t->chi2, &t->p, err)))
            return rc;
        for (int m = 0; m < RS_STATS_NUM_RATES; m++) {
            const rs_stats_rate *xa = &p->A.st->agree[c].rate[m], *xb = &p->B.st->agree[c].rate[m];
            rs_stats_diff *d = &cmp->diff[c * RS_STATS_NUM_RATES + m];
            d->valid = xa->valid && xb->valid;
            d->value = d->valid ? xb->value - xa->value : 0;
        }
    }
    return 0;
}

int rs_stats_compare(rs_store *store_a, int64_t run_a, rs_store *store_b, int64_t run_b,
                     const rs_stats_options *opt, rs_stats_comparison **out, rs_error *err)
{
    *out = NULL;
    gsl_set_error_handler_off();
    int resamples;
    double level;
    int rc = check_options(opt, &resamples, &level, err);
    if (rc)
        return rc;
    uint64_t seed = opt ? opt->seed : 0;
    pairing p = {.name_a = opt && opt->name ? opt->name : "store", .run_a = run_a, .run_b = run_b};
    p.name_b = opt && opt->name_b ? opt->name_b : p.name_a;
    if (!(p.cmp = calloc(1, sizeof *p.cmp)))
        return rs_error_set(err, RS_ENOMEM, "%s run %" PRId64 ": out of memory", p.name_a, run_a);
    if (!(rc = pairing_check(&p, store_a, store_b, opt && opt->force, err)) && !(rc = pairing_alloc(&p, err)) &&
        !(rc = paired_pass(&p, store_a, store_b, err)) && !(rc = paired_finish(&p, level, err))) {
        free(p.mc);
        p.mc = NULL;
        rc = bootstrap(&p.A, &p.B, resamples, seed, level, p.cmp->diff, err);
    }
    if (rc) {
        pairing_free(&p);
        return rc;
    }
    set_meta(p.A.st, p.A.n_img && p.A.V > 1 ? resamples : 0, seed, level);
    set_meta(p.B.st, p.B.n_img && p.B.V > 1 ? resamples : 0, seed, level);
    p.cmp->a = p.A.st;
    p.cmp->b = p.B.st;
    p.A.st = p.B.st = NULL;
    *out = p.cmp;
    p.cmp = NULL;
    pairing_free(&p);
    return 0;
}

/* stats_dispatch.c — drop rates, kept-set agreement and routing_changes_kept of a run
 * with dispatch (contract in stats_dispatch.h). */
#include "stats_dispatch.h"

#include <gsl/gsl_errno.h>
#include <gsl/gsl_rng.h>
#include <gsl/gsl_sort.h>
#include <gsl/gsl_statistics_double.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* One pass's running state. */
typedef struct pass {
    rs_stats_dispatch *d;
    const char *name;
    int64_t run_id;
    int T, R, Np, cls;
    int cells;
    uint8_t *ref_idx, *ref_kept;   /* (L, T, R) view 0 of the current image */
    bool *ref_seen;                /* (L) */
    int image, image_index;        /* the current source image and its position in the run */
    int64_t *pairs, *topk_eq, *kept_eq; /* (cells) */
    double *iou_sum;               /* (cells) over matched pairs */
    double *img_sum;               /* (images, cells) kept-set IoU summed over the image's tokens */
    int64_t *img_n;                /* (images, cells) tokens summed */
} pass;

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
        na += kept_a[i] != 0;
        nb += kept_b[i] != 0;
        for (int j = 0; kept_a[i] && j < k; j++)
            inter += kept_b[j] && idx_a[i] == idx_b[j];
    }
    int uni = na + nb - inter;
    return uni ? (double)inter / uni : 0.0;
}

/* The four cells a record of view V, layer L counts in: its own, pooled views, pooled
 * layers, both pooled. */
static void cells_of(const rs_stats_dispatch *d, int v, int l, int cell[4])
{
    cell[0] = rs_stats_dispatch_cell(d, v, l);
    cell[1] = rs_stats_dispatch_cell(d, d->views, l);
    cell[2] = rs_stats_dispatch_cell(d, v, d->layers);
    cell[3] = rs_stats_dispatch_cell(d, d->views, d->layers);
}

static void count_drops(pass *p, const rs_routing_record *rec)
{
    rs_stats_dispatch *d = p->d;
    int cell[4], E = d->experts;
    cells_of(d, rec->view, rec->layer, cell);
    for (int t = 0; t < p->T; t++)
        for (int r = 0; r < d->top_k; r++) {
            size_t at = (size_t)t * p->R + r;
            int e = rec->executed[at], drop = !rec->kept[at];
            for (int c = 0; c < 4; c++) {
                int64_t *choices = d->choices + (size_t)cell[c] * (E + 1), *dropped = d->dropped + (size_t)cell[c] * (E + 1);
                choices[e]++, choices[E]++;
                dropped[e] += drop, dropped[E] += drop;
            }
        }
}

/* Token TB of the record against token TA of view 0 at the same layer: agreement (when
 * PAIR, a matched patch pair) and the image's kept-set IoU. */
static void compare_token(pass *p, const rs_routing_record *rec, int ta, int tb, bool pair)
{
    rs_stats_dispatch *d = p->d;
    int cell[4], k = d->top_k;
    size_t cells = (size_t)p->cells;
    const uint8_t *ia = p->ref_idx + ((size_t)rec->layer * p->T + ta) * p->R;
    const uint8_t *ka = p->ref_kept + ((size_t)rec->layer * p->T + ta) * p->R;
    /* The router's sets from top_idx, the kept sets from what ran (a forced view's forced
     * experts); view 0 is never forced. */
    const uint8_t *ib = rec->top_idx + (size_t)tb * p->R, *kb = rec->kept + (size_t)tb * p->R;
    const uint8_t *ran = rec->executed + (size_t)tb * p->R;
    double iou = rs_stats_kept_iou(ia, ka, ran, kb, k);
    bool topk = pair && rs_stats_same_set(ia, NULL, ib, NULL, k), kept = pair && rs_stats_same_set(ia, ka, ran, kb, k);
    cells_of(d, rec->view, rec->layer, cell);
    for (int c = 0; c < 4; c++) {
        if (pair) {
            p->pairs[cell[c]]++;
            p->topk_eq[cell[c]] += topk;
            p->kept_eq[cell[c]] += kept;
            p->iou_sum[cell[c]] += iou;
        }
        p->img_sum[(size_t)p->image_index * cells + cell[c]] += iou;
        p->img_n[(size_t)p->image_index * cells + cell[c]]++;
    }
}

static int take_record(pass *p, const rs_routing_record *rec, rs_error *err)
{
    rs_stats_dispatch *d = p->d;
    if (!rec->kept || rec->view < 0 || rec->view >= d->views || rec->layer < 0 || rec->layer >= d->layers)
        return rs_error_set(err, RS_EFORMAT, "%s: run %" PRId64 " image %d view %d layer %d: %s", p->name, p->run_id,
                            rec->image, rec->view, rec->layer, rec->kept ? "outside the run's views and layers"
                                                                         : "no kept mask in a run with dispatch");
    for (int i = 0; i < p->T * p->R; i++)
        if (rec->top_idx[i] >= d->experts)
            return rs_error_set(err, RS_EFORMAT, "%s: run %" PRId64 " image %d: expert id %d, the run has %d",
                                p->name, p->run_id, rec->image, rec->top_idx[i], d->experts);
    if (rec->image != p->image) {
        if (p->image_index + 1 >= d->images)
            return rs_error_set(err, RS_EFORMAT, "%s: run %" PRId64 ": more images than the %d done", p->name,
                                p->run_id, d->images);
        p->image = rec->image;
        p->image_index++;
        memset(p->ref_seen, 0, sizeof *p->ref_seen * (size_t)d->layers);
    }
    count_drops(p, rec);
    size_t tr = (size_t)p->T * p->R;
    if (rec->view == 0) {
        memcpy(p->ref_idx + rec->layer * tr, rec->top_idx, tr);
        memcpy(p->ref_kept + rec->layer * tr, rec->kept, tr);
        p->ref_seen[rec->layer] = true;
        return 0;
    }
    if (!p->ref_seen[rec->layer])
        return rs_error_set(err, RS_EFORMAT, "%s: run %" PRId64 " image %d layer %d: view %d before view 0", p->name,
                            p->run_id, rec->image, rec->layer, rec->view);
    bool aligned = true;
    for (int j = 0; j < p->Np; j++) {
        if (rec->match[j] >= p->Np)
            return rs_error_set(err, RS_EFORMAT, "%s: run %" PRId64 " image %d view %d: patch %d matches patch %d",
                                p->name, p->run_id, rec->image, rec->view, j, rec->match[j]);
        aligned &= rec->match[j] == j;
    }
    if (aligned && p->cls)
        compare_token(p, rec, 0, 0, false);
    for (int j = 0; j < p->Np; j++)
        if (rec->match[j] >= 0)
            compare_token(p, rec, rec->match[j] + p->cls, j + p->cls, true);
    return 0;
}

/* 1 − the mean over images (with tokens in CELL) of their mean IoU, weighted by W (NULL:
 * each image once); false when no image has tokens there. */
static bool changes(const pass *p, int cell, const unsigned *w, double *out)
{
    double sum = 0, n = 0;
    for (int i = 0; i < p->d->images; i++) {
        size_t at = (size_t)i * p->cells + cell;
        double weight = w ? w[i] : 1;
        if (p->img_n[at] && weight) {
            sum += weight * p->img_sum[at] / (double)p->img_n[at];
            n += weight;
        }
    }
    *out = n > 0 ? 1 - sum / n : 0;
    return n > 0;
}

/* routing_changes_kept of every cell with its percentile bootstrap over images. */
static int finish_changes(pass *p, uint64_t seed, rs_error *err)
{
    rs_stats_dispatch *d = p->d;
    int N = d->images, B = d->resamples;
    for (int c = 0; c < p->cells; c++) {
        rs_stats_rate *r = &d->routing_changes_kept[c];
        r->valid = changes(p, c, NULL, &r->value);
        if (!r->valid)
            r->value = 0;
    }
    if (B < 2 || N < 1)
        return 0;
    unsigned *w = malloc(sizeof *w * (size_t)N);
    double *reps = malloc(sizeof *reps * (size_t)B * p->cells);
    int *count = calloc((size_t)p->cells, sizeof *count);
    gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
    int rc = w && reps && count && rng ? 0 : rs_error_set(err, RS_ENOMEM, "%s: out of memory", p->name);
    if (!rc)
        gsl_rng_set(rng, (unsigned long)seed);
    for (int b = 0; !rc && b < B; b++) {
        memset(w, 0, sizeof *w * (size_t)N);
        for (int i = 0; i < N; i++)
            w[gsl_rng_uniform_int(rng, (unsigned long)N)]++;
        for (int c = 0; c < p->cells; c++) {
            double v;
            if (changes(p, c, w, &v))
                reps[(size_t)c * B + count[c]++] = v;
        }
    }
    for (int c = 0; !rc && c < p->cells; c++) {
        rs_stats_rate *r = &d->routing_changes_kept[c];
        double *x = reps + (size_t)c * B;
        if (!r->valid || count[c] < 2)
            continue;
        gsl_sort(x, 1, (size_t)count[c]);
        r->boot_valid = true;
        r->boot_lo = gsl_stats_quantile_from_sorted_data(x, 1, (size_t)count[c], (1 - d->level) / 2);
        r->boot_hi = gsl_stats_quantile_from_sorted_data(x, 1, (size_t)count[c], (1 + d->level) / 2);
    }
    gsl_rng_free(rng);
    free(count);
    free(reps);
    free(w);
    return rc;
}

static void set_rate(rs_stats_rate *r, int64_t hits, int64_t n, double level)
{
    *r = (rs_stats_rate){.valid = n > 0};
    if (n > 0) {
        r->value = (double)hits / (double)n;
        rs_stats_wilson((double)hits, (double)n, level, &r->wilson_lo, &r->wilson_hi);
    }
}

static int alloc_pass(pass *p, rs_stats_dispatch *d)
{
    size_t cells = (size_t)p->cells, E1 = (size_t)d->experts + 1, tr = (size_t)p->T * p->R;
    size_t L = (size_t)d->layers, N = (size_t)(d->images > 0 ? d->images : 1);
    return (d->choices = calloc(cells * E1, sizeof *d->choices)) &&
                   (d->dropped = calloc(cells * E1, sizeof *d->dropped)) &&
                   (d->topk_set = calloc(cells, sizeof *d->topk_set)) &&
                   (d->kept_set = calloc(cells, sizeof *d->kept_set)) &&
                   (d->kept_iou = calloc(cells, sizeof *d->kept_iou)) &&
                   (d->routing_changes_kept = calloc(cells, sizeof *d->routing_changes_kept)) &&
                   (p->ref_idx = malloc(L * tr)) && (p->ref_kept = malloc(L * tr)) &&
                   (p->ref_seen = calloc(L, sizeof *p->ref_seen)) && (p->pairs = calloc(cells, sizeof *p->pairs)) &&
                   (p->topk_eq = calloc(cells, sizeof *p->topk_eq)) &&
                   (p->kept_eq = calloc(cells, sizeof *p->kept_eq)) &&
                   (p->iou_sum = calloc(cells, sizeof *p->iou_sum)) &&
                   (p->img_sum = calloc(N * cells, sizeof *p->img_sum)) &&
                   (p->img_n = calloc(N * cells, sizeof *p->img_n))
               ? 0
               : RS_ENOMEM;
}

static void free_pass(pass *p)
{
    void *bufs[] = {p->ref_idx, p->ref_kept, p->ref_seen, p->pairs, p->topk_eq, p->kept_eq, p->iou_sum,
                    p->img_sum, p->img_n};
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++)
        free(bufs[i]);
}

/* Reads every record of the run into P. */
static int read_records(rs_store *store, pass *p, rs_error *err)
{
    rs_store_cursor *cur;
    int rc = rs_store_cursor_open(store, p->run_id, &cur, err);
    rs_routing_record rec;
    while (!rc && (rc = rs_store_cursor_next(cur, &rec, err)) == 1)
        rc = take_record(p, &rec, err);
    rs_store_cursor_close(cur);
    return rc < 0 ? rc : 0;
}

int rs_stats_dispatch_compute(rs_store *store, int64_t run_id, const rs_stats_options *opt, rs_stats_dispatch **out,
                              rs_error *err)
{
    *out = NULL;
    gsl_set_error_handler_off();
    rs_stats_options o = opt ? *opt : (rs_stats_options){.seed = RS_STATS_DEFAULT_SEED};
    const char *name = o.name ? o.name : "store";
    rs_run_info run = {0};
    int rc = rs_store_get_run(store, run_id, &run, err);
    if (rc)
        return rc;
    if (!(run.capacity_factor > 0)) {
        rs_run_info_clear(&run);
        return rs_error_set(err, RS_EINVAL, "%s: run %" PRId64 " has no capacity factor: nothing was dropped", name,
                            run_id);
    }
    rs_stats_dispatch *d = calloc(1, sizeof *d);
    pass p = {.d = d, .name = name, .run_id = run_id, .T = run.tokens, .R = run.record_k, .Np = run.patches,
              .cls = run.has_cls, .image = -1, .image_index = -1};
    if (d) {
        *d = (rs_stats_dispatch){.views = run.num_views, .layers = run.num_layers, .experts = run.num_experts,
                                 .top_k = run.top_k, .images = run.images_done,
                                 .resamples = o.resamples == 0 ? RS_STATS_DEFAULT_RESAMPLES : o.resamples < 0 ? 0 : o.resamples,
                                 .level = o.level > 0 && o.level < 1 ? o.level : 0.95};
        p.cells = (d->views + 1) * (d->layers + 1);
    }
    rs_run_info_clear(&run);
    if (!d || alloc_pass(&p, d))
        rc = rs_error_set(err, RS_ENOMEM, "%s: out of memory", name);
    if (!rc)
        rc = read_records(store, &p, err);
    for (int c = 0; !rc && c < p.cells; c++) {
        set_rate(&d->topk_set[c], p.topk_eq[c], p.pairs[c], d->level);
        set_rate(&d->kept_set[c], p.kept_eq[c], p.pairs[c], d->level);
        d->kept_iou[c] = (rs_stats_mean){.valid = p.pairs[c] > 0, .n = p.pairs[c],
                                         .mean = p.pairs[c] ? p.iou_sum[c] / (double)p.pairs[c] : 0};
    }
    if (!rc)
        rc = finish_changes(&p, o.seed, err);
    free_pass(&p);
    if (rc) {
        rs_stats_dispatch_free(d);
        return rc;
    }
    *out = d;
    return 0;
}

void rs_stats_dispatch_free(rs_stats_dispatch *d)
{
    if (!d)
        return;
    free(d->choices);
    free(d->dropped);
    free(d->topk_set);
    free(d->kept_set);
    free(d->kept_iou);
    free(d->routing_changes_kept);
    free(d);
}

/* interference.c — batch interference between two runs (contract in interference.h).
 *
 * One lockstep pass over both runs' cursors keeps, per image and cell, the tokens compared,
 * the four agreement counts and the kept-set IoU summed, and per image and view slot the
 * predictions compared and equal; every figure and every bootstrap replicate is computed
 * from these per-image counts under image weights. */
#include "interference.h"

#include <gsl/gsl_errno.h>
#include <gsl/gsl_rng.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stats_dispatch.h"
#include "store/run.h"

enum { C_TOKENS, C_TOP1, C_TOP2, C_TOPK, C_KEPT, NCOUNT }; /* per image and cell */
enum { P_VIEWS, P_SAME, NPRED };                           /* per image and view slot */

/* The pass's per-image counts and the scratch the figures are summed in. */
typedef struct pass {
    rs_interference *d;
    const char *name_a, *name_b;
    int64_t run_a, run_b;
    int T, R, E, offset, cells;
    int32_t *cnt;          /* (images, cells, NCOUNT) */
    double *iou;           /* (images, cells) kept-set IoU summed over the tokens */
    int32_t *pred;         /* (images, V+1, NPRED) */
    uint8_t *all_kept;     /* (T, R) the kept mask of a run without capacity: ranks < k */
    int64_t *sum;          /* (cells, NCOUNT) scratch */
    double *rc_sum, *rc_n; /* (cells) scratch: per-image mean IoU summed, images */
    int64_t *psum;         /* (V+1, NPRED) scratch */
} pass;

/* The figures under image weights W (NULL: each image once): VAL, OK (cells, NM) and the
 * prediction rate PVAL, POK (V+1). */
static void figures(pass *p, const unsigned *w, double *val, bool *ok, double *pval, bool *pok)
{
    const rs_interference *d = p->d;
    size_t cells = (size_t)p->cells, slots = (size_t)d->views + 1;
    memset(p->sum, 0, sizeof *p->sum * cells * NCOUNT);
    memset(p->rc_sum, 0, sizeof *p->rc_sum * cells);
    memset(p->rc_n, 0, sizeof *p->rc_n * cells);
    memset(p->psum, 0, sizeof *p->psum * slots * NPRED);
    for (int i = 0; i < d->images; i++) {
        int64_t wi = w ? w[i] : 1;
        if (!wi)
            continue;
        const int32_t *row = p->cnt + (size_t)i * cells * NCOUNT;
        for (size_t c = 0; c < cells; c++) {
            const int32_t *x = row + c * NCOUNT;
            if (!x[C_TOKENS])
                continue;
            for (int m = 0; m < NCOUNT; m++)
                p->sum[c * NCOUNT + m] += wi * x[m];
            p->rc_sum[c] += (double)wi * p->iou[(size_t)i * cells + c] / x[C_TOKENS];
            p->rc_n[c] += (double)wi;
        }
        for (size_t q = 0; q < slots * NPRED; q++)
            p->psum[q] += wi * p->pred[(size_t)i * slots * NPRED + q];
    }
    for (size_t c = 0; c < cells; c++) {
        const int64_t *s = p->sum + c * NCOUNT;
        static const int count_of[RS_INTERF_CHANGES] = {C_TOP1, C_TOP2, C_TOPK, C_KEPT};
        for (int m = 0; m < RS_INTERF_CHANGES; m++) {
            ok[c * RS_INTERF_NUM + m] = s[C_TOKENS] > 0;
            val[c * RS_INTERF_NUM + m] = s[C_TOKENS] ? (double)s[count_of[m]] / (double)s[C_TOKENS] : 0;
        }
        ok[c * RS_INTERF_NUM + RS_INTERF_CHANGES] = p->rc_n[c] > 0;
        val[c * RS_INTERF_NUM + RS_INTERF_CHANGES] = p->rc_n[c] > 0 ? 1 - p->rc_sum[c] / p->rc_n[c] : 0;
    }
    for (size_t v = 0; v < slots; v++) {
        const int64_t *s = p->psum + v * NPRED;
        pok[v] = s[P_VIEWS] > 0;
        pval[v] = s[P_VIEWS] ? (double)s[P_SAME] / (double)s[P_VIEWS] : 0;
    }
}

/* Counts token T of the pair into image I's cells of view V, layer L and their pools. */
static void count_token(pass *p, const rs_routing_record *ra, const rs_routing_record *rb, const uint8_t *ka,
                        const uint8_t *kb, int i, int t)
{
    const rs_interference *d = p->d;
    /* Router sets from top_idx; kept sets from what ran (a forced view's forced experts). */
    const uint8_t *a = ra->top_idx + (size_t)t * p->R, *b = rb->top_idx + (size_t)t * p->R;
    const uint8_t *ea = ra->executed + (size_t)t * p->R, *eb = rb->executed + (size_t)t * p->R;
    ka += (size_t)t * p->R, kb += (size_t)t * p->R;
    int32_t add[NCOUNT] = {1, a[0] == b[0], a[0] == b[0] && a[1] == b[1],
                           rs_stats_same_set(a, NULL, b, NULL, d->top_k), rs_stats_same_set(ea, ka, eb, kb, d->top_k)};
    double iou = rs_stats_kept_iou(ea, ka, eb, kb, d->top_k);
    int cell[4] = {rs_interference_cell(d, ra->view, ra->layer), rs_interference_cell(d, d->views, ra->layer),
                   rs_interference_cell(d, ra->view, d->layers), rs_interference_cell(d, d->views, d->layers)};
    for (int c = 0; c < 4; c++) {
        int32_t *x = p->cnt + ((size_t)i * p->cells + cell[c]) * NCOUNT;
        for (int m = 0; m < NCOUNT; m++)
            x[m] += add[m];
        p->iou[(size_t)i * p->cells + cell[c]] += iou;
    }
}

/* One record of each run, for the same image, view and layer. */
static int take_pair(pass *p, const rs_routing_record *ra, const rs_routing_record *rb, rs_error *err)
{
    const rs_interference *d = p->d;
    int i = ra->image - p->offset;
    if (i < 0 || i >= d->images || ra->view < 0 || ra->view >= d->views || ra->layer < 0 || ra->layer >= d->layers)
        return rs_error_set(err, RS_EFORMAT, "%s: run %" PRId64 ": image %d view %d layer %d is outside the run",
                            p->name_a, p->run_a, ra->image, ra->view, ra->layer);
    for (int q = 0; q < p->T * p->R; q++)
        if (ra->top_idx[q] >= p->E || rb->top_idx[q] >= p->E)
            return rs_error_set(err, RS_EFORMAT, "%s run %" PRId64 " / %s run %" PRId64 ": image %d: expert id %d, "
                                "the runs have %d", p->name_a, p->run_a, p->name_b, p->run_b, ra->image,
                                ra->top_idx[q] >= p->E ? ra->top_idx[q] : rb->top_idx[q], p->E);
    const uint8_t *ka = ra->kept ? ra->kept : p->all_kept, *kb = rb->kept ? rb->kept : p->all_kept;
    for (int t = 0; t < p->T; t++)
        count_token(p, ra, rb, ka, kb, i, t);
    if (ra->layer == 0) {
        int32_t *x = p->pred + (size_t)i * (d->views + 1) * NPRED;
        bool same = ra->predicted == rb->predicted;
        x[ra->view * NPRED + P_VIEWS]++, x[ra->view * NPRED + P_SAME] += same;
        x[d->views * NPRED + P_VIEWS]++, x[d->views * NPRED + P_SAME] += same;
    }
    return 0;
}

/* Reads both runs in lockstep into P. */
static int read_pairs(pass *p, rs_store *sa, rs_store *sb, rs_error *err)
{
    rs_store_cursor *ca = NULL, *cb = NULL;
    int rc = rs_store_cursor_open(sa, p->run_a, &ca, err);
    if (!rc)
        rc = rs_store_cursor_open(sb, p->run_b, &cb, err);
    while (!rc) {
        rs_routing_record ra, rb;
        int ka = rs_store_cursor_next(ca, &ra, err);
        int kb = ka < 0 ? ka : rs_store_cursor_next(cb, &rb, err);
        if (ka < 0 || kb < 0) {
            rc = ka < 0 ? ka : kb;
            break;
        }
        if (ka == 0 && kb == 0)
            break;
        if (ka != kb || ra.image != rb.image || ra.view != rb.view || ra.layer != rb.layer)
            rc = rs_error_set(err, RS_EINVAL, "%s run %" PRId64 " and %s run %" PRId64 " cannot be paired: records "
                              "differ at %s", p->name_a, p->run_a, p->name_b, p->run_b,
                              ka != kb ? "the end of one run" : "an image, view or layer");
        else
            rc = take_pair(p, &ra, &rb, err);
    }
    rs_store_cursor_close(ca);
    rs_store_cursor_close(cb);
    return rc;
}

/* Point estimates with Wilson intervals, then the percentile bootstrap over images. */
static int finish(pass *p, rs_error *err)
{
    rs_interference *d = p->d;
    size_t cells = (size_t)p->cells, slots = (size_t)d->views + 1, nf = cells * RS_INTERF_NUM;
    size_t B = (size_t)d->resamples, N = (size_t)(d->images > 0 ? d->images : 1);
    double *val = malloc(sizeof *val * (nf + slots)), *reps = malloc(sizeof *reps * (B ? B : 1) * (nf + slots));
    bool *ok = malloc(sizeof *ok * (nf + slots));
    size_t *n = calloc(nf + slots, sizeof *n);
    unsigned *w = malloc(sizeof *w * N);
    gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
    int rc = val && reps && ok && n && w && rng ? 0 : rs_error_set(err, RS_ENOMEM, "%s: out of memory", p->name_a);
    if (!rc) {
        figures(p, NULL, val, ok, val + nf, ok + nf);
        for (size_t c = 0; c < cells; c++) {
            d->tokens[c] = p->sum[c * NCOUNT + C_TOKENS];
            for (int m = 0; m < RS_INTERF_NUM; m++) {
                rs_stats_rate *r = &d->rate[c * RS_INTERF_NUM + m];
                *r = (rs_stats_rate){.valid = ok[c * RS_INTERF_NUM + m], .value = val[c * RS_INTERF_NUM + m]};
                if (r->valid && m != RS_INTERF_CHANGES)
                    rs_stats_wilson(r->value * (double)d->tokens[c], (double)d->tokens[c], d->level, &r->wilson_lo,
                                    &r->wilson_hi);
            }
        }
        for (size_t v = 0; v < slots; v++) {
            rs_stats_rate *r = &d->prediction_same[v];
            d->views_compared[v] = p->psum[v * NPRED + P_VIEWS];
            *r = (rs_stats_rate){.valid = ok[nf + v], .value = val[nf + v]};
            if (r->valid)
                rs_stats_wilson(p->psum[v * NPRED + P_SAME], (double)d->views_compared[v], d->level, &r->wilson_lo,
                                &r->wilson_hi);
        }
        gsl_rng_set(rng, (unsigned long)d->seed);
    }
    for (size_t b = 0; !rc && b < B; b++) {
        memset(w, 0, sizeof *w * N);
        for (int i = 0; i < d->images; i++)
            w[gsl_rng_uniform_int(rng, (unsigned long)d->images)]++;
        figures(p, w, val, ok, val + nf, ok + nf);
        for (size_t f = 0; f < nf + slots; f++)
            if (ok[f])
                reps[f * B + n[f]++] = val[f];
    }
    for (size_t f = 0; !rc && B && f < nf + slots; f++) {
        rs_stats_rate *r = f < nf ? &d->rate[f] : &d->prediction_same[f - nf];
        if (r->valid)
            rs_stats_percentile(reps + f * B, n[f], d->level, &r->boot_valid, &r->boot_lo, &r->boot_hi);
    }
    gsl_rng_free(rng);
    free(w);
    free(n);
    free(ok);
    free(reps);
    free(val);
    return rc;
}

/* What differs between the runs beyond the group seed, into D->mismatch: the identity
 * compare requires, the checkpoint and the dispatch. */
static void mismatch(const rs_run_info *a, const rs_run_info *b, rs_interference *d)
{
    rs_run_difference(a, b, RS_RUN_DIFF_IDENTITY | RS_RUN_DIFF_MODEL | RS_RUN_DIFF_DISPATCH, RS_RUN_DIFF_LIST,
                      d->mismatch, sizeof d->mismatch);
}

static int alloc_pass(pass *p, const rs_run_info *ia)
{
    rs_interference *d = p->d;
    size_t cells = (size_t)p->cells, slots = (size_t)d->views + 1, N = (size_t)(d->images > 0 ? d->images : 1);
    bool ok = (d->tokens = calloc(cells, sizeof *d->tokens)) &&
              (d->rate = calloc(cells * RS_INTERF_NUM, sizeof *d->rate)) &&
              (d->views_compared = calloc(slots, sizeof *d->views_compared)) &&
              (d->prediction_same = calloc(slots, sizeof *d->prediction_same)) &&
              (p->cnt = calloc(N * cells * NCOUNT, sizeof *p->cnt)) && (p->iou = calloc(N * cells, sizeof *p->iou)) &&
              (p->pred = calloc(N * slots * NPRED, sizeof *p->pred)) &&
              (p->all_kept = calloc((size_t)p->T * p->R, 1)) && (p->sum = calloc(cells * NCOUNT, sizeof *p->sum)) &&
              (p->rc_sum = calloc(cells, sizeof *p->rc_sum)) && (p->rc_n = calloc(cells, sizeof *p->rc_n)) &&
              (p->psum = calloc(slots * NPRED, sizeof *p->psum));
    for (int t = 0; ok && t < p->T; t++)
        memset(p->all_kept + (size_t)t * p->R, 1, (size_t)ia->top_k);
    return ok ? 0 : RS_ENOMEM;
}

static void free_pass(pass *p)
{
    void *bufs[] = {p->cnt, p->iou, p->pred, p->all_kept, p->sum, p->rc_sum, p->rc_n, p->psum};
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++)
        free(bufs[i]);
}

/* The runs' checks: same job but for the group seed (or force), and shapes that pair. */
static int check_runs(const pass *p, const rs_run_info *ia, const rs_run_info *ib, bool force, rs_error *err)
{
    if (p->d->mismatch[0] && !force)
        return rs_error_set(err, RS_EINVAL, "%s run %" PRId64 " and %s run %" PRId64 " are not the same job in another "
                            "group composition: %s (--force compares anyway)", p->name_a, p->run_a, p->name_b,
                            p->run_b, p->d->mismatch);
    if (ia->images_done != ib->images_done || ia->offset != ib->offset || ia->num_views != ib->num_views ||
        ia->num_layers != ib->num_layers || ia->tokens != ib->tokens || ia->record_k != ib->record_k ||
        ia->top_k != ib->top_k || ia->num_experts != ib->num_experts)
        return rs_error_set(err, RS_EINVAL, "%s run %" PRId64 " and %s run %" PRId64 " cannot be paired: first image "
                            "%d/%d, images done %d/%d, views %d/%d, MoE layers %d/%d, tokens %d/%d, k %d/%d, "
                            "experts %d/%d", p->name_a, p->run_a, p->name_b, p->run_b, ia->offset, ib->offset,
                            ia->images_done, ib->images_done, ia->num_views, ib->num_views, ia->num_layers,
                            ib->num_layers, ia->tokens, ib->tokens, ia->top_k, ib->top_k, ia->num_experts,
                            ib->num_experts);
    if (ia->record_k < 2 || ia->top_k < 1 || ia->top_k > ia->record_k)
        return rs_error_set(err, RS_EFORMAT, "%s run %" PRId64 ": record_k %d and k %d", p->name_a, p->run_a,
                            ia->record_k, ia->top_k);
    return 0;
}

int rs_interference_compute(rs_store *store_a, int64_t run_a, rs_store *store_b, int64_t run_b,
                            const rs_stats_options *opt, rs_interference **out, rs_error *err)
{
    *out = NULL;
    gsl_set_error_handler_off();
    rs_stats_options o = opt ? *opt : (rs_stats_options){.seed = RS_STATS_DEFAULT_SEED};
    if (o.level != 0 && !(o.level > 0 && o.level < 1))
        return rs_error_set(err, RS_EINVAL, "interval level %g outside (0,1)", o.level);
    pass p = {.name_a = o.name ? o.name : "store", .run_a = run_a, .run_b = run_b};
    p.name_b = o.name_b ? o.name_b : p.name_a;
    rs_run_info ia = {0}, ib = {0};
    rs_interference *d = calloc(1, sizeof *d);
    int rc = d ? 0 : rs_error_set(err, RS_ENOMEM, "%s: out of memory", p.name_a);
    if (!rc && !(rc = rs_store_get_run(store_a, run_a, &ia, err)) && !(rc = rs_store_get_run(store_b, run_b, &ib, err))) {
        p.d = d;
        mismatch(&ia, &ib, d);
        d->forced = d->mismatch[0] != 0;
        rc = check_runs(&p, &ia, &ib, o.force, err);
    }
    if (!rc) {
        d->views = ia.num_views, d->layers = ia.num_layers, d->images = ia.images_done, d->top_k = ia.top_k;
        d->resamples = o.resamples == 0 ? RS_STATS_DEFAULT_RESAMPLES : o.resamples < 0 ? 0 : o.resamples;
        d->seed = o.seed, d->level = o.level > 0 ? o.level : 0.95;
        p.T = ia.tokens, p.R = ia.record_k, p.E = ia.num_experts, p.offset = ia.offset;
        p.cells = (d->views + 1) * (d->layers + 1);
        if (alloc_pass(&p, &ia))
            rc = rs_error_set(err, RS_ENOMEM, "%s: out of memory", p.name_a);
    }
    if (!rc)
        rc = read_pairs(&p, store_a, store_b, err);
    if (!rc)
        rc = finish(&p, err);
    free_pass(&p);
    rs_run_info_clear(&ia);
    rs_run_info_clear(&ib);
    if (rc) {
        rs_interference_free(d);
        return rc;
    }
    *out = d;
    return 0;
}

void rs_interference_free(rs_interference *d)
{
    if (!d)
        return;
    free(d->tokens);
    free(d->rate);
    free(d->views_compared);
    free(d->prediction_same);
    free(d);
}

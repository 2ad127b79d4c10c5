/* stats_dispatch.c — drop rates and kept-set agreement of a run with dispatch (contract in
 * stats_dispatch.h). */
#include "stats_dispatch.h"

#include <gsl/gsl_errno.h>
#include <inttypes.h>
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
} pass;

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

/* Patch token TB of the record against its matched token TA of view 0 at the same layer. */
static void compare_pair(pass *p, const rs_routing_record *rec, int ta, int tb)
{
    rs_stats_dispatch *d = p->d;
    int cell[4], k = d->top_k;
    const uint8_t *ia = p->ref_idx + ((size_t)rec->layer * p->T + ta) * p->R;
    const uint8_t *ka = p->ref_kept + ((size_t)rec->layer * p->T + ta) * p->R;
    /* The router's sets from top_idx, the kept sets from what ran (a forced view's forced
     * experts); view 0 is never forced. */
    const uint8_t *ib = rec->top_idx + (size_t)tb * p->R, *kb = rec->kept + (size_t)tb * p->R;
    const uint8_t *ran = rec->executed + (size_t)tb * p->R;
    double iou = rs_stats_kept_iou(ia, ka, ran, kb, k);
    bool topk = rs_stats_same_set(ia, NULL, ib, NULL, k), kept = rs_stats_same_set(ia, ka, ran, kb, k);
    cells_of(d, rec->view, rec->layer, cell);
    for (int c = 0; c < 4; c++) {
        p->pairs[cell[c]]++;
        p->topk_eq[cell[c]] += topk;
        p->kept_eq[cell[c]] += kept;
        p->iou_sum[cell[c]] += iou;
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
    for (int j = 0; j < p->Np; j++)
        if (rec->match[j] >= p->Np)
            return rs_error_set(err, RS_EFORMAT, "%s: run %" PRId64 " image %d view %d: patch %d matches patch %d",
                                p->name, p->run_id, rec->image, rec->view, j, rec->match[j]);
    for (int j = 0; j < p->Np; j++)
        if (rec->match[j] >= 0)
            compare_pair(p, rec, rec->match[j] + p->cls, j + p->cls);
    return 0;
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
    size_t L = (size_t)d->layers;
    return (d->choices = calloc(cells * E1, sizeof *d->choices)) &&
                   (d->dropped = calloc(cells * E1, sizeof *d->dropped)) &&
                   (d->topk_set = calloc(cells, sizeof *d->topk_set)) &&
                   (d->kept_set = calloc(cells, sizeof *d->kept_set)) &&
                   (d->kept_iou = calloc(cells, sizeof *d->kept_iou)) &&
                   (p->ref_idx = malloc(L * tr)) && (p->ref_kept = malloc(L * tr)) &&
                   (p->ref_seen = calloc(L, sizeof *p->ref_seen)) && (p->pairs = calloc(cells, sizeof *p->pairs)) &&
                   (p->topk_eq = calloc(cells, sizeof *p->topk_eq)) &&
                   (p->kept_eq = calloc(cells, sizeof *p->kept_eq)) &&
                   (p->iou_sum = calloc(cells, sizeof *p->iou_sum))
               ? 0
               : RS_ENOMEM;
}

static void free_pass(pass *p)
{
    void *bufs[] = {p->ref_idx, p->ref_kept, p->ref_seen, p->pairs, p->topk_eq, p->kept_eq, p->iou_sum};
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
    rs_stats_options o = opt ? *opt : (rs_stats_options){0};
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
    free(d);
}

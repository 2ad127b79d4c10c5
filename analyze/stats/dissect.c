/* dissect.c — router- and expert-attributable damage over seeds (contract in dissect.h). */
#include "dissect.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "input/view.h"
#include "route_stats.h"

const char *rs_dissect_figure_name(int figure)
{
    static const char *const names[RS_DISSECT_NUM_FIGURES] = {
        "accuracy", "Top-1 agreement", "predictions flipped", "router-attributable", "expert-attributable"};
    return figure >= 0 && figure < RS_DISSECT_NUM_FIGURES ? names[figure] : "?";
}

/* Whether view V of RUN forces every MoE block of a perturbed view to view 0's routing;
 * *BASE the perturbed view. */
static bool dissect_view(const rs_run_info *run, int v, int *base)
{
    rs_view_spec spec;
    rs_error why;
    if (rs_view_spec_parse(run->view_specs[v], &spec, &why) || rs_view_spec_check_base(&spec, v, &why))
        return false;
    *base = spec.base;
    return spec.base > 0 && spec.route_from == 0 && spec.route_blocks == 0;
}

bool rs_dissect_applies(const rs_run_info *run)
{
    int base;
    for (int v = 1; v < run->num_views; v++)
        if (dissect_view(run, v, &base))
            return true;
    return false;
}

void rs_dissect_free(rs_dissect *d)
{
    if (!d)
        return;
    free(d->view);
    free(d->forced);
    free(d->has);
    free(d->value);
    free(d->flipped);
    free(d->restored);
    free(d->mean);
    free(d->diff);
    free(d->holm);
    free(d);
}

/* The perturbations of R (group 0's first run) into D->view / D->forced. */
static int find_perturbations(const rs_run_info *r, const char *name, rs_dissect *d, rs_error *err)
{
    size_t n = (size_t)(r->num_views ? r->num_views : 1);
    if (!(d->view = calloc(n, sizeof *d->view)) || !(d->forced = calloc(n, sizeof *d->forced)))
        return rs_error_set(err, RS_ENOMEM, "%s: out of memory", name);
    for (int v = 1; v < r->num_views; v++)
        if (dissect_view(r, v, &d->view[d->perturbations]))
            d->forced[d->perturbations++] = v;
    if (!d->perturbations)
        return rs_error_set(err, RS_EINVAL, "%s run %" PRId64 ": no view forces a perturbed view to the clean "
                            "routing (base:view=P+route:from=0 over every MoE block; docs/dissection.md)", name, r->id);
    return 0;
}

/* The figures of one run (group GR, seed I): its stats ST and its interventions RS. */
static int fill_run(rs_dissect *d, int gr, int i, const rs_stats *st, const rs_route_stats *rs, const char *name,
                    rs_error *err)
{
    for (int p = 0; p < d->perturbations; p++) {
        const rs_route_row *row = NULL;
        for (int k = 0; k < rs->rows && !row; k++)
            if (rs->row[k].view == d->forced[p])
                row = &rs->row[k];
        if (!row || row->base != d->view[p] || row->from != 0 || row->blocks != 0)
            return rs_error_set(err, RS_EINVAL, "%s run %" PRId64 ": view %d does not force view %d to the clean "
                                "routing, as the first group's first run does", name, rs->run_id, d->forced[p],
                                d->view[p]);
        int q = rs_dissect_at(d, gr, i, p);
        bool *has = d->has + (size_t)q * RS_DISSECT_NUM_FIGURES;
        double *x = d->value + (size_t)q * RS_DISSECT_NUM_FIGURES;
        const rs_stats_accuracy *acc = &st->accuracy[d->view[p]];
        const rs_stats_rate *top1 = &st->agree[rs_stats_cell(st, d->view[p], st->layers)].rate[RS_STATS_TOP1];
        has[RS_DISSECT_ACCURACY] = acc->valid, x[RS_DISSECT_ACCURACY] = acc->value;
        has[RS_DISSECT_TOP1] = top1->valid, x[RS_DISSECT_TOP1] = top1->value;
        has[RS_DISSECT_FLIPPED] = row->images > 0;
        x[RS_DISSECT_FLIPPED] = row->images ? (double)row->changed / (double)row->images : 0;
        has[RS_DISSECT_ROUTER] = has[RS_DISSECT_EXPERT] = row->attributable.valid;
        x[RS_DISSECT_ROUTER] = row->attributable.value, x[RS_DISSECT_EXPERT] = row->remaining.value;
        d->flipped[q] = row->changed, d->restored[q] = row->restored;
    }
    return 0;
}

/* Per group, perturbation and figure: the t interval over the seeds that have it. */
static int summarise(rs_dissect *d, const rs_groups *g, const char *name, rs_error *err)
{
    double *x = malloc(sizeof *x * (size_t)(d->seeds ? d->seeds : 1));
    if (!x)
        return rs_error_set(err, RS_ENOMEM, "%s: out of memory", name);
    int rc = 0;
    for (int gr = 0; gr < d->num_groups; gr++)
        for (int p = 0; p < d->perturbations; p++)
            for (int f = 0; f < RS_DISSECT_NUM_FIGURES; f++) {
                int n = 0;
                for (int i = 0; i < g->size[gr]; i++) {
                    size_t q = (size_t)rs_dissect_at(d, gr, i, p) * RS_DISSECT_NUM_FIGURES + f;
                    if (d->has[q])
                        x[n++] = d->value[q];
                }
                rs_t_interval *m = &d->mean[(gr * d->perturbations + p) * RS_DISSECT_NUM_FIGURES + f];
                if (n && (rc = rs_t_interval_of(x, n, d->level, m, err)))
                    goto done;
                /* a share lies in [0,1]; a t interval of few seeds can reach past it */
                m->lo = m->lo < 0 ? 0 : m->lo;
                m->hi = m->hi > 1 ? 1 : m->hi;
            }
done:
    free(x);
    return rc;
}

/* Per group g >= 1, perturbation and figure: the paired differences against group 0 over
 * seeds, then Holm over the family. */
static int differences(rs_dissect *d, const rs_groups *g, const char *name, rs_error *err)
{
    size_t cells = (size_t)d->num_groups * d->perturbations * RS_DISSECT_NUM_FIGURES;
    double *x = malloc(sizeof *x * (size_t)(d->seeds ? d->seeds : 1)), *p = malloc(sizeof *p * cells);
    int rc = x && p ? 0 : rs_error_set(err, RS_ENOMEM, "%s: out of memory", name);
    for (size_t c = 0; !rc && c < cells; c++)
        p[c] = -1;
    for (int gr = 1; !rc && gr < d->num_groups; gr++)
        for (int q = 0; !rc && q < d->perturbations; q++)
            for (int f = 0; !rc && f < RS_DISSECT_NUM_FIGURES; f++) {
                int n = 0;
                for (int i = 0; i < g->size[gr]; i++) {
                    size_t a = (size_t)rs_dissect_at(d, 0, i, q) * RS_DISSECT_NUM_FIGURES + f;
                    size_t b = (size_t)rs_dissect_at(d, gr, i, q) * RS_DISSECT_NUM_FIGURES + f;
                    if (d->has[a] && d->has[b])
                        x[n++] = d->value[b] - d->value[a];
                }
                size_t c = (size_t)(gr * d->perturbations + q) * RS_DISSECT_NUM_FIGURES + f;
                rs_t_interval *m = &d->diff[c];
                if (n && (rc = rs_t_interval_of(x, n, d->level, m, err)))
                    break;
                m->lo = m->lo < -1 ? -1 : m->lo;
                m->hi = m->hi > 1 ? 1 : m->hi;
                if (m->valid && rs_dissect_in_family(f))
                    p[c] = m->p;
            }
    if (!rc) {
        int m = rs_holm(p, (int)cells, d->holm);
        if (m < 0)
            rc = rs_error_set(err, m, "%s: out of memory", name);
        else
            d->family = m;
    }
    free(x);
    free(p);
    return rc;
}

int rs_dissect_compute(rs_store *store, const rs_groups *g, const rs_stats_options *opt, rs_dissect **out,
                       rs_error *err)
{
    *out = NULL;
    const char *name = opt && opt->name ? opt->name : "store";
    rs_dissect *d = calloc(1, sizeof *d);
    if (!d)
        return rs_error_set(err, RS_ENOMEM, "%s: out of memory", name);
    *d = (rs_dissect){.num_groups = g->num_groups, .seeds = g->seeds, .level = g->level};
    int rc = find_perturbations(&g->info[0], name, d, err);
    size_t runs = (size_t)d->num_groups * d->seeds * (d->perturbations ? d->perturbations : 1);
    size_t cells = (size_t)d->num_groups * (d->perturbations ? d->perturbations : 1) * RS_DISSECT_NUM_FIGURES;
    if (!rc && (!(d->has = calloc(runs * RS_DISSECT_NUM_FIGURES, sizeof *d->has)) ||
                !(d->value = calloc(runs * RS_DISSECT_NUM_FIGURES, sizeof *d->value)) ||
                !(d->flipped = calloc(runs, sizeof *d->flipped)) ||
                !(d->restored = calloc(runs, sizeof *d->restored)) || !(d->mean = calloc(cells, sizeof *d->mean)) ||
                !(d->diff = calloc(cells, sizeof *d->diff)) || !(d->holm = calloc(cells, sizeof *d->holm))))
        rc = rs_error_set(err, RS_ENOMEM, "%s: out of memory", name);
    for (int gr = 0; !rc && gr < d->num_groups; gr++)
        for (int i = 0; !rc && i < g->size[gr]; i++) {
            const rs_stats *st = rs_groups_stats(g, gr, i);
            rs_route_stats *rs = NULL;
            rc = rs_route_stats_compute(store, &g->info[rs_groups_at(g, gr, i)], st, opt, &rs, err);
            if (!rc)
                rc = fill_run(d, gr, i, st, rs, name, err);
            rs_route_stats_free(rs);
        }
    if (!rc)
        rc = summarise(d, g, name, err);
    if (!rc)
        rc = differences(d, g, name, err);
    if (rc)
        rs_dissect_free(d);
    else
        *out = d;
    return rc;
}

/* route_stats.c — routing-attributable prediction changes (contract in route_stats.h). */
#include "route_stats.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "input/view.h"

void rs_route_stats_free(rs_route_stats *rs)
{
    if (!rs)
        return;
    free(rs->row);
    free(rs);
}

/* One row per forced view of RUN that has a base, its views and blocks from the spec. */
static int find_rows(const rs_run_info *run, const char *name, rs_route_stats *rs, rs_error *err)
{
    if (!(rs->row = calloc((size_t)(run->num_views ? run->num_views : 1), sizeof *rs->row)))
        return rs_error_set(err, RS_ENOMEM, "%s: out of memory", name);
    for (int v = 0; v < run->num_views; v++) {
        rs_view_spec spec;
        rs_error why;
        if (rs_view_spec_parse(run->view_specs[v], &spec, &why) || rs_view_spec_check_base(&spec, v, &why))
            return rs_error_set(err, RS_EINVAL, "%s run %" PRId64 ": %s", name, run->id, why.msg);
        if (spec.route_from >= 0 && spec.base >= 0)
            rs->row[rs->rows++] = (rs_route_row){.view = v, .base = spec.base, .from = spec.route_from,
                                                 .blocks = spec.route_blocks};
    }
    return 0;
}

/* Every image's predicted class per view into PRED (images, V), from one pass over the
 * records (each record carries its view's prediction). */
static int read_predictions(rs_store *store, const rs_run_info *run, const char *name, int32_t *pred, rs_error *err)
{
    rs_store_cursor *cur;
    int rc = rs_store_cursor_open(store, run->id, &cur, err);
    int V = run->num_views, image = -1, n = -1;
    rs_routing_record rec;
    while (!rc && (rc = rs_store_cursor_next(cur, &rec, err)) == 1) {
        if (rec.image != image)
            image = rec.image, n++;
        if (n >= run->images_done || rec.view < 0 || rec.view >= V) {
            rc = rs_error_set(err, RS_EFORMAT, "%s run %" PRId64 " image %d view %d: outside the run's %d images and "
                              "%d views", name, run->id, rec.image, rec.view, run->images_done, V);
            break;
        }
        pred[(size_t)n * V + rec.view] = rec.predicted;
        rc = 0;
    }
    rs_store_cursor_close(cur);
    if (!rc && n + 1 != run->images_done)
        rc = rs_error_set(err, RS_EFORMAT, "%s run %" PRId64 ": records of %d images, %d done", name, run->id, n + 1,
                          run->images_done);
    return rc;
}

/* Counts and intervals of ROW from PRED (N images, V views); CHANGED and RESTORED are
 * scratch of N entries. */
static int count_row(rs_route_row *row, const int32_t *pred, int N, int V, const rs_stats *st, int32_t *changed,
                     int32_t *restored, rs_error *err)
{
    row->images = N;
    for (int i = 0; i < N; i++) {
        const int32_t *p = pred + (size_t)i * V;
        changed[i] = p[row->base] != p[row->from];
        restored[i] = changed[i] && p[row->view] == p[row->from];
        row->changed += changed[i];
        row->restored += restored[i];
        row->introduced += !changed[i] && p[row->view] != p[row->from];
    }
    rs_stats_rate *a = &row->attributable, *r = &row->remaining;
    if (row->changed == 0)
        return 0;
    a->valid = r->valid = true;
    a->value = (double)row->restored / (double)row->changed;
    r->value = 1 - a->value;
    rs_stats_wilson((double)row->restored, (double)row->changed, st->level, &a->wilson_lo, &a->wilson_hi);
    rs_stats_wilson((double)(row->changed - row->restored), (double)row->changed, st->level, &r->wilson_lo,
                    &r->wilson_hi);
    int rc = rs_stats_boot_ratio(restored, changed, N, st->resamples, st->seed, st->level, a, err);
    r->boot_valid = a->boot_valid;
    r->boot_lo = 1 - a->boot_hi;
    r->boot_hi = 1 - a->boot_lo;
    return rc;
}

int rs_route_stats_compute(rs_store *store, const rs_run_info *run, const rs_stats *st,
                           const rs_stats_options *opt, rs_route_stats **out, rs_error *err)
{
    *out = NULL;
    const char *name = opt && opt->name ? opt->name : "store";
    rs_route_stats *rs = calloc(1, sizeof *rs);
    if (!rs)
        return rs_error_set(err, RS_ENOMEM, "%s: out of memory", name);
    *rs = (rs_route_stats){.run_id = run->id, .resamples = st->resamples, .level = st->level};
    int rc = find_rows(run, name, rs, err);
    if (rc || rs->rows == 0) {
        if (rc)
            rs_route_stats_free(rs);
        else
            *out = rs;
        return rc;
    }
    int N = run->images_done, V = run->num_views;
    size_t n = (size_t)(N ? N : 1);
    int32_t *pred = malloc(sizeof *pred * n * V), *changed = malloc(sizeof *changed * n),
            *restored = malloc(sizeof *restored * n);
    rc = pred && changed && restored ? 0 : rs_error_set(err, RS_ENOMEM, "%s: out of memory", name);
    if (!rc)
        rc = read_predictions(store, run, name, pred, err);
    for (int i = 0; !rc && i < rs->rows; i++)
        rc = count_row(&rs->row[i], pred, N, V, st, changed, restored, err);
    free(pred);
    free(changed);
    free(restored);
    if (rc)
        rs_route_stats_free(rs);
    else
        *out = rs;
    return rc;
}

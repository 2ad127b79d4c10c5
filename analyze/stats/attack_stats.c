/* attack_stats.c — figures of an adversarial-style run (see attack_stats.h). */
#include "attack_stats.h"

#include <gsl/gsl_rng.h>
#include <gsl/gsl_sort.h>
#include <gsl/gsl_statistics_double.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "input/spec_text.h"

int rs_attack_grid(const rs_run_info *run, double **eps, rs_error *err)
{
    *eps = NULL;
    const int V = run->num_views;
    if (V < 2 || !run->view_specs) {
        rs_error_set(err, RS_EINVAL, "run %" PRId64 " has no view besides the reference", run->id);
        return 0;
    }
    double *e = calloc((size_t)V, sizeof *e);
    if (!e)
        return rs_error_set(err, RS_ENOMEM, "out of memory");
    for (int v = 0; v < V; v++) {
        const char *spec = run->view_specs[v] ? run->view_specs[v] : "";
        int rc = rs_spec_attack_eps(spec, &e[v], err);
        if (rc < 0) {
            free(e);
            return rc;
        }
        const char *why = NULL;
        if (v == 0 && rc == 1)
            why = "its reference view 0 is attacked";
        else if (v > 0 && rc == 0)
            why = "a view has no pgd operation";
        else if (v > 1 && !(e[v] > e[v - 1]))
            why = "the views' eps do not increase";
        if (why) {
            rs_error_set(err, RS_EINVAL, "run %" PRId64 " is not an adversarial run: %s (view %d '%s')", run->id, why,
                         v, spec);
            free(e);
            return 0;
        }
    }
    *eps = e;
    return 1;
}

void rs_attack_stats_free(rs_attack_stats *as)
{
    if (!as)
        return;
    free(as->eps);
    free(as->first);
    free(as->hist);
    free(as->changed_last);
    free(as->median);
    free(as->curve);
    free(as->routing_changes);
    free(as);
}

/* The pass's state besides the result: view 0's top-1 of the current image and each
 * image's correctness per view (for the accuracy bootstrap). */
typedef struct pass {
    rs_attack_stats *as;
    const char *name;
    int R, cls, cur, n_img, exp_view, exp_layer;
    uint8_t *ref;       /* (L, Np) view 0's top-1 */
    int8_t *correct;    /* (images, V): 1 right, 0 wrong, -1 unlabelled */
    int64_t *count;     /* (V) scratch */
} pass;

static int pass_record(pass *p, const rs_routing_record *rec, rs_error *err)
{
    rs_attack_stats *as = p->as;
    const int V = as->views, L = as->layers, Np = as->patches;
    if (rec->image != p->cur) {
        if (p->cur >= 0 && p->exp_view != V)
            return rs_error_set(err, RS_EFORMAT, "%s run %" PRId64 ": image %d lacks view %d", p->name, as->run_id,
                                p->cur, p->exp_view);
        if (p->n_img >= as->images)
            return rs_error_set(err, RS_EFORMAT, "%s run %" PRId64 ": more images than the %d done", p->name,
                                as->run_id, as->images);
        p->cur = rec->image;
        p->n_img++;
        p->exp_view = p->exp_layer = 0;
    }
    if (rec->view != p->exp_view || rec->layer != p->exp_layer)
        return rs_error_set(err, RS_EFORMAT, "%s run %" PRId64 ": image %d has view %d layer %d out of order", p->name,
                            as->run_id, rec->image, rec->view, rec->layer);
    if (++p->exp_layer == L)
        p->exp_layer = 0, p->exp_view++;
    const int i = p->n_img - 1, v = rec->view, l = rec->layer;
    if (l == 0)
        p->correct[(size_t)i * V + v] = rec->label < 0 ? -1 : rec->predicted == rec->label;
    uint8_t *ref = p->ref + (size_t)l * Np;
    if (v == 0) {
        for (int j = 0; j < Np; j++)
            ref[j] = rec->top_idx[(size_t)(j + p->cls) * p->R];
        return 0;
    }
    uint8_t *first = as->first + ((size_t)i * L + l) * Np;
    for (int j = 0; j < Np; j++) {
        int m = rec->match[j];
        if (m < -1 || m >= Np)
            return rs_error_set(err, RS_EFORMAT, "%s run %" PRId64 ": image %d view %d: patch %d matches %d", p->name,
                                as->run_id, rec->image, v, j, m);
        if (m < 0 || rec->top_idx[(size_t)(j + p->cls) * p->R] == ref[m])
            continue;
        if (first[m] == 0)
            first[m] = (uint8_t)v;
        if (v == V - 1)
            as->changed_last[i]++;
    }
    return 0;
}

/* The lower median of a histogram COUNT (V bins: [0] never, [v] view v) in view order
 * with never last: the first view whose cumulative count reaches rank (total + 1) / 2. */
static int lower_median(const int64_t *count, int V)
{
    int64_t total = 0, seen = 0;
    for (int v = 0; v < V; v++)
        total += count[v];
    for (int v = 1; v < V && total > 0; v++)
        if ((seen += count[v]) >= (total + 1) / 2)
            return v;
    return 0;
}

/* The histogram of min-ε per layer and pooled, the per-patch and pooled medians. */
static void fill_hist(rs_attack_stats *as, int64_t *count)
{
    const int V = as->views, L = as->layers, Np = as->patches;
    for (int l = 0; l < L; l++)
        for (int j = 0; j < Np; j++) {
            memset(count, 0, sizeof *count * (size_t)V);
            for (int i = 0; i < as->images; i++)
                count[as->first[((size_t)i * L + l) * Np + j]]++;
            for (int v = 0; v < V; v++) {
                as->hist[(size_t)l * V + v] += count[v];
                as->hist[(size_t)L * V + v] += count[v];
            }
            as->median[(size_t)l * Np + j] = (uint8_t)lower_median(count, V);
        }
    as->median_first = lower_median(as->hist + (size_t)L * V, V);
}

/* Accuracy per view with Wilson (from ST) and a bootstrap over images drawn as rs_stats
 * draws them. */
static int accuracy_curve(rs_attack_stats *as, const pass *p, const rs_stats *st, rs_error *err)
{
    const int V = as->views, N = as->images, B = as->resamples;
    for (int v = 0; v < V; v++) {
        const rs_stats_accuracy *a = &st->accuracy[v];
        as->curve[v * RS_ATTACK_NUM_CURVES + RS_ATTACK_ACCURACY] =
            (rs_stats_rate){.valid = a->valid, .value = a->value, .wilson_lo = a->wilson_lo, .wilson_hi = a->wilson_hi};
    }
    if (B <= 0 || N == 0)
        return 0;
    unsigned *w = malloc(sizeof *w * (size_t)N);
    double *vals = malloc(sizeof *vals * (size_t)V * B);
    size_t *nv = calloc((size_t)V, sizeof *nv);
    gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
    int rc = 0;
    if (!w || !vals || !nv || !rng) {
        rc = rs_error_set(err, RS_ENOMEM, "%s run %" PRId64 ": out of memory for the bootstrap", p->name, as->run_id);
        goto done;
    }
    gsl_rng_set(rng, (unsigned long)st->seed);
    for (int b = 0; b < B; b++) {
        memset(w, 0, sizeof *w * (size_t)N);
        for (int d = 0; d < N; d++)
            w[gsl_rng_uniform_int(rng, (unsigned long)N)]++;
        for (int v = 0; v < V; v++) {
            double right = 0, n = 0;
            for (int i = 0; i < N; i++) {
                int8_t c = p->correct[(size_t)i * V + v];
                if (w[i] && c >= 0)
                    right += w[i] * c, n += w[i];
            }
            if (n > 0)
                vals[(size_t)v * B + nv[v]++] = right / n;
        }
    }
    for (int v = 0; v < V; v++) {
        rs_stats_rate *r = &as->curve[v * RS_ATTACK_NUM_CURVES + RS_ATTACK_ACCURACY];
        if (!r->valid || nv[v] < 2)
            continue;
        double *x = vals + (size_t)v * B;
        gsl_sort(x, 1, nv[v]);
        r->boot_valid = true;
        r->boot_lo = gsl_stats_quantile_from_sorted_data(x, 1, nv[v], (1 - as->level) / 2);
        r->boot_hi = gsl_stats_quantile_from_sorted_data(x, 1, nv[v], (1 + as->level) / 2);
    }
done:
    gsl_rng_free(rng);
    free(w);
    free(vals);
    free(nv);
    return rc;
}

/* The agreement and routing-changes curves, from the run's statistics. */
static void agreement_curves(rs_attack_stats *as, const rs_stats *st)
{
    static const int rates[3] = {RS_STATS_TOP1, RS_STATS_TOP2, RS_STATS_TOP2_UNORDERED};
    for (int v = 0; v < as->views; v++) {
        const int cell = rs_stats_cell(st, v, st->layers);
        for (int m = 0; m < 3; m++)
            as->curve[v * RS_ATTACK_NUM_CURVES + m] =
                v == 0 ? (rs_stats_rate){.valid = true, .value = 1, .boot_valid = st->resamples > 0, .boot_lo = 1,
                                         .boot_hi = 1, .wilson_lo = 1, .wilson_hi = 1}
                       : st->agree[cell].rate[rates[m]];
        as->routing_changes[v] = v == 0 ? (rs_stats_rate){.valid = true, .boot_valid = st->resamples > 0}
                                        : st->routing_changes[cell];
    }
}

static rs_attack_stats *alloc_stats(const rs_run_info *run, double *eps)
{
    rs_attack_stats *as = calloc(1, sizeof *as);
    if (!as)
        return NULL;
    const int V = run->num_views, L = run->num_layers, Np = run->patches, N = run->images_done;
    *as = (rs_attack_stats){.run_id = run->id, .images = N, .views = V, .layers = L, .patches = Np,
                            .grid_h = run->grid_h, .grid_w = run->grid_w, .top_k = run->top_k,
                            .first_image = run->offset, .eps = eps};
    as->first = calloc((size_t)(N ? N : 1) * L * Np, 1);
    as->hist = calloc((size_t)(L + 1) * V, sizeof *as->hist);
    as->changed_last = calloc((size_t)(N ? N : 1), sizeof *as->changed_last);
    as->median = calloc((size_t)L * Np, sizeof *as->median);
    as->curve = calloc((size_t)V * RS_ATTACK_NUM_CURVES, sizeof *as->curve);
    as->routing_changes = calloc((size_t)V, sizeof *as->routing_changes);
    if (!as->first || !as->hist || !as->changed_last || !as->median || !as->curve || !as->routing_changes) {
        rs_attack_stats_free(as);
        return NULL;
    }
    return as;
}

int rs_attack_stats_compute(rs_store *store, const rs_run_info *run, const rs_stats *st,
                            const rs_stats_options *opt, rs_attack_stats **out, rs_error *err)
{
    *out = NULL;
    const char *name = opt && opt->name ? opt->name : "store";
    double *eps;
    int rc = rs_attack_grid(run, &eps, err);
    if (rc <= 0)
        return rc < 0 ? rc : RS_EINVAL; /* ERR already says why the run is not adversarial */
    if (run->num_views > 255 || run->patches < 1 || run->num_layers < 1 || st->views != run->num_views ||
        st->layers != run->num_layers || st->images != run->images_done) {
        free(eps);
        return rs_error_set(err, RS_EFORMAT, "%s run %" PRId64 ": shapes do not fit the attack figures (views %d, "
                            "MoE layers %d, patches %d)", name, run->id, run->num_views, run->num_layers, run->patches);
    }
    rs_attack_stats *as = alloc_stats(run, eps);
    pass p = {.as = as, .name = name, .R = run->record_k, .cls = run->has_cls ? 1 : 0, .cur = -1};
    if (!as) {
        free(eps);
        return rs_error_set(err, RS_ENOMEM, "%s run %" PRId64 ": out of memory", name, run->id);
    }
    as->resamples = st->resamples;
    as->level = st->level;
    p.ref = malloc((size_t)run->num_layers * run->patches);
    p.correct = malloc((size_t)(as->images ? as->images : 1) * as->views);
    p.count = malloc(sizeof *p.count * (size_t)as->views);
    rs_store_cursor *cur = NULL;
    if (!p.ref || !p.correct || !p.count)
        rc = rs_error_set(err, RS_ENOMEM, "%s run %" PRId64 ": out of memory", name, run->id);
    else
        rc = rs_store_cursor_open(store, run->id, &cur, err);
    rs_routing_record rec;
    while (!rc && (rc = rs_store_cursor_next(cur, &rec, err)) == 1)
        rc = pass_record(&p, &rec, err);
    rs_store_cursor_close(cur);
    if (!rc && (p.n_img != as->images || (p.cur >= 0 && p.exp_view != as->views)))
        rc = rs_error_set(err, RS_EFORMAT, "%s run %" PRId64 ": routing of %d images where %d are done", name,
                          run->id, p.n_img, as->images);
    if (!rc) {
        fill_hist(as, p.count);
        agreement_curves(as, st);
        rc = accuracy_curve(as, &p, st, err);
    }
    free(p.ref);
    free(p.correct);
    free(p.count);
    if (rc) {
        rs_attack_stats_free(as);
        return rc;
    }
    *out = as;
    return 0;
}

void rs_attack_min_eps(const rs_attack_stats *as, int image, int layer, double *values)
{
    const int L = as->layers, Np = as->patches;
    for (int j = 0; j < Np; j++) {
        int v = image >= 0 ? as->first[((size_t)image * L + layer) * Np + j] : as->median[(size_t)layer * Np + j];
        values[j] = v ? as->eps[v] : INFINITY;
    }
}

/* One pass over RUN's attacks rows through the store's attack cursor. Without SUM: the largest
 * step count into *MAX_STEPS. With SUM and N ((V, *MAX_STEPS + 1) each): adds every row's
 * objective to its view's sums and counts. NAME names the database in messages. */
static int objective_pass(rs_store *store, const char *name, const rs_run_info *run, double *sum, int64_t *n,
                          int *max_steps, rs_error *err)
{
    rs_store_attack_cursor *c;
    int rc = rs_store_attack_cursor_open(store, run->id, INT_MIN, INT_MAX, &c, err);
    if (rc)
        return rc;
    const size_t S = (size_t)*max_steps + 1;
    rs_attack_row row;
    while ((rc = rs_store_attack_cursor_next(c, &row, err)) == 1) {
        if (row.view < 0 || row.view >= run->num_views || (sum && row.steps > *max_steps)) {
            rc = rs_error_set(err, RS_EFORMAT, "%s run %" PRId64 ": attacks row of image %d view %d (%d steps) outside "
                              "the run's %d views and %d steps", name, run->id, row.image, row.view, row.steps,
                              run->num_views, *max_steps);
            break;
        }
        if (!sum) {
            if (row.steps > *max_steps)
                *max_steps = row.steps;
            continue;
        }
        for (int t = 0; t <= row.steps; t++) {
            sum[(size_t)row.view * S + t] += row.objective[t];
            n[(size_t)row.view * S + t]++;
        }
    }
    rs_store_attack_cursor_close(c);
    return rc;
}

int rs_attack_objective(rs_store *store, const char *name, const rs_run_info *run, double **mean, int *steps,
                        rs_error *err)
{
    *mean = NULL;
    *steps = 0;
    /* Two passes: the largest step count, then the sums. No rows: nothing to draw. */
    int max_steps = 0;
    int rc = objective_pass(store, name, run, NULL, NULL, &max_steps, err);
    const size_t VS = (size_t)run->num_views * ((size_t)max_steps + 1);
    double *sum = NULL;
    int64_t *n = NULL;
    if (!rc && max_steps > 0) {
        sum = calloc(VS, sizeof *sum);
        n = calloc(VS, sizeof *n);
        rc = !sum || !n ? rs_error_set(err, RS_ENOMEM, "%s: out of memory", name)
                        : objective_pass(store, name, run, sum, n, &max_steps, err);
    }
    for (size_t x = 0; !rc && sum && x < VS; x++)
        sum[x] = n[x] ? sum[x] / (double)n[x] : NAN;
    free(n);
    if (rc || !sum) {
        free(sum);
        return rc;
    }
    *mean = sum;
    *steps = max_steps;
    return 0;
}

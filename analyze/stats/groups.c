/* groups.c — groups of runs over training seeds (contract in groups.h). */
#include "groups.h"

#include <gsl/gsl_cdf.h>
#include <gsl/gsl_errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/run.h"

int rs_t_interval_of(const double *x, int n, double level, rs_t_interval *out, rs_error *err)
{
    memset(out, 0, sizeof *out);
    if (n < 1 || !(level > 0 && level < 1))
        return rs_error_set(err, RS_EINVAL, "t interval: %d values at level %g", n, level);
    double sum = 0, ss = 0;
    for (int i = 0; i < n; i++)
        sum += x[i];
    double mean = sum / n;
    for (int i = 0; i < n; i++)
        ss += (x[i] - mean) * (x[i] - mean);
    out->n = n;
    out->mean = mean;
    if (n < 2)
        return 0;
    gsl_set_error_handler_off();
    out->sd = sqrt(ss / (n - 1));
    double half = gsl_cdf_tdist_Pinv(0.5 + level / 2, n - 1) * out->sd / sqrt(n);
    if (!isfinite(half))
        return rs_error_set(err, RS_EINVAL, "t interval: no quantile for %d degrees of freedom", n - 1);
    out->lo = mean - half;
    out->hi = mean + half;
    /* Every replicate equal (sd 0 but for rounding): the t statistic infinite or 0/0. Seeds that agree to
     * the last image are no evidence of an effect without spread, so no p-value (-1): the
     * cell stays out of Holm's family and is never marked. */
    bool spread = false;
    for (int i = 1; i < n; i++)
        spread |= x[i] != x[0];
    out->p = spread ? 2 * gsl_cdf_tdist_Q(fabs(mean) / (out->sd / sqrt(n)), n - 1) : -1;
    out->p = out->p > 1 ? 1 : out->p;
    out->valid = true;
    return 0;
}

int rs_holm(const double *p, int n, double *adj)
{
    int m = 0, *order = malloc(sizeof *order * (size_t)(n > 0 ? n : 1));
    double *sorted = malloc(sizeof *sorted * (size_t)(n > 0 ? n : 1));
    if (!order || !sorted) {
        free(order), free(sorted);
        return RS_ENOMEM;
    }
    /* insertion sort of the family's indices by p (ties keep their order): families are a
     * table's cells */
    for (int i = 0; i < n; i++) {
        if (!(p[i] >= 0 && p[i] <= 1))
            continue;
        int j = m++;
        for (; j > 0 && p[order[j - 1]] > p[i]; j--)
            order[j] = order[j - 1];
        order[j] = i;
    }
    for (int i = 0; i < m; i++)
        sorted[i] = p[order[i]];
    for (int i = 0; i < n; i++)
        adj[i] = -1;
    double run = 0;
    for (int i = 0; i < m; i++) {
        double a = (m - i) * sorted[i];
        run = a > run ? a : run;            /* monotone: never below an earlier step */
        adj[order[i]] = run < 1 ? run : 1;
    }
    free(order), free(sorted);
    return m;
}

void rs_answer_free(rs_answer *a)
{
    if (!a)
        return;
    free(a->cell);
    free(a);
}

/* The groups of every protocol are the same groups, in order, at one level. */
static int answer_check(const rs_groups *const *g, int protocols, rs_error *err)
{
    if (protocols < 1 || g[0]->num_groups < 2)
        return rs_error_set(err, RS_EINVAL, "answer: wants two groups or more in at least one protocol");
    for (int q = 1; q < protocols; q++) {
        bool same = g[q]->num_groups == g[0]->num_groups && g[q]->level == g[0]->level;
        for (int gr = 0; same && gr < g[0]->num_groups; gr++)
            same = !strcmp(g[q]->names[gr], g[0]->names[gr]);
        if (!same)
            return rs_error_set(err, RS_EINVAL, "answer: protocol %d holds other groups than protocol 1", q + 1);
    }
    return 0;
}

int rs_groups_answer(const rs_groups *const *g, int protocols, rs_answer **out, rs_error *err)
{
    *out = NULL;
    int rc = answer_check(g, protocols, err);
    if (rc)
        return rc;
    int rows = g[0]->num_groups - 1, cells = rows * protocols * RS_GROUP_NUM_FIGURES;
    rs_answer *a = calloc(1, sizeof *a);
    double *p = malloc(sizeof *p * (size_t)cells);
    if (!a || !p || !(a->cell = calloc((size_t)cells, sizeof *a->cell))) {
        free(p);
        rs_answer_free(a);
        return rs_error_set(err, RS_ENOMEM, "out of memory");
    }
    a->rows = rows, a->protocols = protocols, a->level = g[0]->level;
    for (int r = 0; r < rows; r++)
        for (int q = 0; q < protocols; q++)
            for (int f = 0; f < RS_GROUP_NUM_FIGURES; f++) {
                int i = (r * protocols + q) * RS_GROUP_NUM_FIGURES + f;
                rs_answer_cell *c = &a->cell[i];
                c->diff = g[q]->diff[(r + 1) * RS_GROUP_NUM_FIGURES + f];
                c->valid = c->diff.n > 0;
                p[i] = c->diff.valid ? c->diff.p : -1;
            }
    a->family = rs_holm(p, cells, p);
    if (a->family < 0) {
        free(p);
        rs_answer_free(a);
        return rs_error_set(err, RS_ENOMEM, "out of memory");
    }
    for (int i = 0; i < cells; i++) {
        a->cell[i].holm = p[i];
        a->cell[i].holds = p[i] >= 0 && p[i] < 1 - a->level;
    }
    free(p);
    *out = a;
    return 0;
}

const char *rs_groups_figure_name(int figure)
{
    static const char *const names[RS_GROUP_NUM_FIGURES] = {"Top-1", "Top-2", "Top-2 order-agnostic", "accuracy",
                                                                    "accuracy, other views"};
    return figure >= 0 && figure < RS_GROUP_NUM_FIGURES ? names[figure] : "?";
}

/* The first group after group 0 that has position SEED, or 0 when none has. */
static int covering_group(const rs_groups *g, int seed)
{
    for (int gr = 1; gr < g->num_groups; gr++)
        if (seed < g->size[gr])
            return gr;
    return 0;
}

const rs_stats *rs_groups_stats(const rs_groups *g, int group, int seed)
{
    if (group > 0)
        return g->cmp[rs_groups_at(g, group, seed)]->b;
    int gr = covering_group(g, seed);
    return gr ? g->cmp[rs_groups_at(g, gr, seed)]->a : g->own[seed];
}

void rs_groups_free(rs_groups *g)
{
    if (!g)
        return;
    int runs = g->num_groups * g->seeds;
    for (int i = 0; g->info && i < runs; i++)
        rs_run_info_clear(&g->info[i]);
    for (int i = 0; g->cmp && i < runs; i++)
        rs_stats_comparison_free(g->cmp[i]);
    for (int i = 0; g->own && i < g->seeds; i++)
        rs_stats_free(g->own[i]);
    free(g->size), free(g->names), free(g->info), free(g->has), free(g->value), free(g->summary);
    free(g->seed_diff), free(g->diff), free(g->cmp), free(g->own);
    free(g);
}

/* Records a difference that --force lets through, or refuses it. */
static int differs(rs_groups *g, const rs_stats_options *opt, rs_error *err, const char *what)
{
    if (!opt->force)
        return rs_error_set(err, RS_EINVAL, "%s: %s (--force to compare anyway)", opt->name ? opt->name : "store",
                            what);
    g->forced = true;
    if (!g->mismatch[0])
        snprintf(g->mismatch, sizeof g->mismatch, "%.*s", (int)sizeof g->mismatch - 1, what);
    return 0;
}

/* Within group G: distinct checkpoints and training seeds (always), one method and k
 * (unless forced), and the images and views of the first group's first run. */
static int check_group(rs_groups *g, int group, const rs_stats_options *opt, rs_error *err)
{
    const char *name = g->names[group];
    char what[400], diff[300];
    for (int i = 0; i < g->size[group]; i++) {
        const rs_run_info *r = &g->info[rs_groups_at(g, group, i)], *first = &g->info[rs_groups_at(g, group, 0)];
        for (int j = 0; j < i; j++) {
            const rs_run_info *q = &g->info[rs_groups_at(g, group, j)];
            if (!strcmp(q->model_sha256, r->model_sha256) || (q->train_seed >= 0 && q->train_seed == r->train_seed))
                return rs_error_set(err, RS_EINVAL,
                                    "group %s: runs %" PRId64 " and %" PRId64 " are the same %s: a group holds one "
                                    "run per training seed", name, q->id, r->id,
                                    strcmp(q->model_sha256, r->model_sha256) ? "training seed" : "checkpoint");
        }
        int rc = 0;
        if (rs_run_method(r) != rs_run_method(first) || r->top_k != first->top_k) {
            snprintf(what, sizeof what, "group %s mixes %s k=%d (run %" PRId64 ") and %s k=%d (run %" PRId64 ")",
                     name, rs_method_name(rs_run_method(first)), first->top_k, first->id,
                     rs_method_name(rs_run_method(r)), r->top_k, r->id);
            rc = differs(g, opt, err, what);
        }
        rs_run_difference(&g->info[0], r, RS_RUN_DIFF_DATA | RS_RUN_DIFF_IMAGES | RS_RUN_DIFF_PROTOCOL |
                          RS_RUN_DIFF_VIEWS | RS_RUN_DIFF_SEED, RS_RUN_DIFF_FIRST, diff, sizeof diff);
        if (!rc && diff[0]) {
            snprintf(what, sizeof what, "runs %" PRId64 " (group %s) and %" PRId64 " (group %s) are not on the same "
                     "images and views: %s", g->info[0].id, g->names[0], r->id, name, diff);
            rc = differs(g, opt, err, what);
        }
        if (rc)
            return rc;
    }
    return 0;
}

/* Seeds pair by position: position I of group G and of group 0 have one training seed. */
static int check_pairing(rs_groups *g, int group, const rs_stats_options *opt, rs_error *err)
{
    for (int i = 0; i < g->size[group]; i++) {
        const rs_run_info *a = &g->info[rs_groups_at(g, 0, i)], *b = &g->info[rs_groups_at(g, group, i)];
        if (a->train_seed < 0 || b->train_seed < 0 || a->train_seed == b->train_seed)
            continue;
        char what[300];
        snprintf(what, sizeof what,
                 "seeds pair by position, but position %d holds run %" PRId64 " (training seed %lld) in group %s "
                 "and run %" PRId64 " (training seed %lld) in group %s", i + 1, a->id, a->train_seed, g->names[0],
                 b->id, b->train_seed, g->names[group]);
        int rc = differs(g, opt, err, what);
        if (rc)
            return rc;
    }
    return 0;
}

/* Names and run ids: at least one group, sizes 1 .. group 0's, distinct names, each run
 * once. */
static int check_spec(const char *const *names, const int64_t *const *runs, const int *sizes, int num_groups,
                      rs_error *err)
{
    if (num_groups < 1 || num_groups > RS_GROUPS_MAX)
        return rs_error_set(err, RS_EINVAL, "groups: want 1 to %d groups, got %d", RS_GROUPS_MAX, num_groups);
    for (int g = 0; g < num_groups; g++) {
        if (sizes[g] < 1)
            return rs_error_set(err, RS_EINVAL, "groups: group %s holds no run", names[g]);
        if (sizes[g] > sizes[0])
            return rs_error_set(err, RS_EINVAL,
                                "groups: group %s has %d runs, more than the reference group %s's %d: the first "
                                "group holds every seed position (seeds pair by position)", names[g], sizes[g],
                                names[0], sizes[0]);
    }
    for (int g = 0; g < num_groups; g++) {
        if (!names[g][0] || strlen(names[g]) >= RS_GROUP_NAME_MAX)
            return rs_error_set(err, RS_EINVAL, "groups: a group name has 1 to %d characters", RS_GROUP_NAME_MAX - 1);
        for (int h = 0; h < g; h++)
            if (!strcmp(names[g], names[h]))
                return rs_error_set(err, RS_EINVAL, "groups: two groups are named %s", names[g]);
        for (int i = 0; i < sizes[g]; i++)
            for (int h = 0; h <= g; h++)
                for (int j = 0; j < (h == g ? i : sizes[h]); j++)
                    if (runs[g][i] == runs[h][j] && h == g)
                        return rs_error_set(err, RS_EINVAL, "groups: run %" PRId64 " is twice in group %s",
                                            runs[g][i], names[g]);
                    else if (runs[g][i] == runs[h][j])
                        return rs_error_set(err, RS_EINVAL, "groups: run %" PRId64 " is in group %s and in group %s",
                                            runs[g][i], names[h], names[g]);
    }
    return 0;
}

static rs_groups *groups_alloc(const int *sizes, int num_groups)
{
    int seeds = sizes[0];
    rs_groups *g = calloc(1, sizeof *g);
    if (!g)
        return NULL;
    size_t runs = (size_t)num_groups * seeds, figs = runs * RS_GROUP_NUM_FIGURES;
    g->num_groups = num_groups, g->seeds = seeds;
    g->size = malloc(sizeof *g->size * (size_t)num_groups);
    g->names = calloc((size_t)num_groups, sizeof *g->names);
    g->info = calloc(runs, sizeof *g->info);
    g->has = calloc(figs, sizeof *g->has);
    g->value = calloc(figs, sizeof *g->value);
    g->summary = calloc((size_t)num_groups * RS_GROUP_NUM_FIGURES, sizeof *g->summary);
    g->seed_diff = calloc(figs, sizeof *g->seed_diff);
    g->diff = calloc((size_t)num_groups * RS_GROUP_NUM_FIGURES, sizeof *g->diff);
    g->cmp = calloc(runs, sizeof *g->cmp);
    g->own = calloc((size_t)seeds, sizeof *g->own);
    if (!g->size || !g->names || !g->info || !g->has || !g->value || !g->summary || !g->seed_diff || !g->diff || !g->cmp ||
        !g->own) {
        rs_groups_free(g);
        return NULL;
    }
    memcpy(g->size, sizes, sizeof *g->size * (size_t)num_groups);
    return g;
}

bool rs_groups_figure(const rs_stats *st, int figure, double *value, int64_t *n)
{
    static const int rate[3] = {RS_STATS_TOP1, RS_STATS_TOP2, RS_STATS_TOP2_UNORDERED};
    double v = 0;
    int64_t count = 0;
    bool valid;
    if (figure == RS_GROUP_ACCURACY) {
        v = st->accuracy[0].value;
        count = st->accuracy[0].labelled;
        valid = st->accuracy[0].valid;
    } else if (figure == RS_GROUP_ACCURACY_VIEWS) {
        int64_t correct = 0;
        for (int view = 1; view < st->views; view++)
            correct += st->accuracy[view].correct, count += st->accuracy[view].labelled;
        v = count ? (double)correct / count : 0;
        valid = count > 0;
    } else {
        const rs_stats_agreement *c = &st->agree[rs_stats_cell(st, st->views, st->layers)];
        v = c->rate[rate[figure]].value;
        count = c->n.pairs;
        valid = c->rate[rate[figure]].valid;
    }
    if (value)
        *value = v;
    if (n)
        *n = count;
    return valid;
}

/* Per-seed figures and their summaries over seeds. */
static void summarise(rs_groups *g)
{
    for (int gr = 0; gr < g->num_groups; gr++)
        for (int f = 0; f < RS_GROUP_NUM_FIGURES; f++) {
            rs_group_summary *s = &g->summary[gr * RS_GROUP_NUM_FIGURES + f];
            double sum = 0, ss = 0;
            for (int i = 0; i < g->size[gr]; i++) {
                int q = rs_groups_fig(g, gr, i, f);
                if (!(g->has[q] = rs_groups_figure(rs_groups_stats(g, gr, i), f, &g->value[q], NULL)))
                    continue;
                double x = g->value[q];
                s->min = s->n && s->min < x ? s->min : x;
                s->max = s->n && s->max > x ? s->max : x;
                s->n++;
                sum += x;
            }
            if (!s->n)
                continue;
            s->valid = true;
            s->mean = sum / s->n;
            for (int i = 0; i < g->size[gr]; i++) {
                int q = rs_groups_fig(g, gr, i, f);
                ss += g->has[q] ? (g->value[q] - s->mean) * (g->value[q] - s->mean) : 0;
            }
            s->sd = s->n > 1 ? sqrt(ss / (s->n - 1)) : 0;
        }
}

/* Per-seed differences of group GR against group 0 on GR's positions and their t interval
 * over those seeds: only when every one of them has the difference (a seed without it
 * would leave the pairs unbalanced). */
static int differences(rs_groups *g, int gr, rs_error *err)
{
    static const int rate[3] = {RS_STATS_TOP1, RS_STATS_TOP2, RS_STATS_TOP2_UNORDERED};
    double *d = malloc(sizeof *d * (size_t)g->seeds);
    if (!d)
        return rs_error_set(err, RS_ENOMEM, "out of memory");
    int rc = 0;
    for (int f = 0; f < RS_GROUP_NUM_FIGURES && !rc; f++) {
        int n = 0;
        for (int i = 0; i < g->size[gr]; i++) {
            const rs_stats_comparison *c = g->cmp[rs_groups_at(g, gr, i)];
            rs_stats_diff *sd = &g->seed_diff[rs_groups_fig(g, gr, i, f)];
            if (rs_groups_is_accuracy(f)) {
                int qa = rs_groups_fig(g, 0, i, f), qb = rs_groups_fig(g, gr, i, f);
                sd->valid = g->has[qa] && g->has[qb];
                sd->value = sd->valid ? g->value[qb] - g->value[qa] : 0;
            } else {
                *sd = c->diff[(size_t)rs_stats_cell(c->a, c->views, c->layers) * RS_STATS_NUM_RATES + rate[f]];
            }
            if (sd->valid)
                d[n++] = sd->value;
        }
        if (n == g->size[gr])
            rc = rs_t_interval_of(d, n, g->level, &g->diff[gr * RS_GROUP_NUM_FIGURES + f], err);
    }
    free(d);
    return rc;
}

/* The per-seed statistics: comparisons of every group with group 0 at the positions it
 * has, and group 0's own where no other group has the position. */
static int compute_stats(rs_store *store, rs_groups *g, const rs_stats_options *opt, rs_error *err)
{
    rs_stats_options o = *opt;
    o.name_b = NULL;
    for (int i = 0; i < g->seeds; i++) {
        int rc = 0;
        if (!covering_group(g, i))
            rc = rs_stats_compute(store, g->info[i].id, &o, &g->own[i], err);
        for (int gr = 1; gr < g->num_groups && i < g->size[gr] && !rc; gr++) {
            int q = rs_groups_at(g, gr, i);
            rc = rs_stats_compare(store, g->info[i].id, store, g->info[q].id, &o, &g->cmp[q], err);
            if (!rc && g->cmp[q]->forced && !g->mismatch[0])
                snprintf(g->mismatch, sizeof g->mismatch, "%s", g->cmp[q]->mismatch);
            g->forced |= !rc && g->cmp[q]->forced;
        }
        if (rc)
            return rc;
    }
    return 0;
}

int rs_groups_compute(rs_store *store, const char *const *names, const int64_t *const *runs, const int *sizes,
                      int num_groups, const rs_stats_options *opt, rs_groups **out, rs_error *err)
{
    *out = NULL;
    rs_stats_options defaults = {.seed = RS_STATS_DEFAULT_SEED};
    opt = opt ? opt : &defaults;
    const char *db = opt->name ? opt->name : "store";
    int rc = check_spec(names, runs, sizes, num_groups, err);
    if (rc)
        return rc;
    rs_groups *g = groups_alloc(sizes, num_groups);
    if (!g)
        return rs_error_set(err, RS_ENOMEM, "out of memory");
    g->level = opt->level > 0 ? opt->level : 0.95;
    for (int gr = 0; gr < num_groups; gr++)
        snprintf(g->names[gr], RS_GROUP_NAME_MAX, "%s", names[gr]);
    for (int gr = 0; gr < num_groups && !rc; gr++)
        for (int i = 0; i < sizes[gr] && !rc; i++)
            rc = rs_run_load(store, db, runs[gr][i], &g->info[rs_groups_at(g, gr, i)], err);
    for (int gr = 0; gr < num_groups && !rc; gr++)
        rc = check_group(g, gr, opt, err);
    for (int gr = 1; gr < num_groups && !rc; gr++)
        rc = check_pairing(g, gr, opt, err);
    if (!rc)
        rc = compute_stats(store, g, opt, err);
    if (!rc)
        summarise(g);
    for (int gr = 1; gr < num_groups && !rc; gr++)
        rc = differences(g, gr, err);
    if (rc) {
        rs_groups_free(g);
        return rc;
    }
    *out = g;
    return 0;
}

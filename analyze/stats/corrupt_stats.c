/* corrupt_stats.c — figures of corruption runs (see corrupt_stats.h for the contract).
 *
 * Everything is computed from rs_stats' per-image, per-view counts: one image-weight vector
 * w (all 1 for the point estimate, a bootstrap draw otherwise) gives every view's figures,
 * and every row is a mean over its cells' views. The bootstrap draws images exactly as
 * rs_stats_compute does (mt19937 seeded with the run's seed, N draws per replicate), so a
 * cell's interval is its view's in the `stats` table. */
#include "corrupt_stats.h"

#include "input/corrupt.h"
#include "input/spec_text.h"

#include <gsl/gsl_errno.h>
#include <gsl/gsl_rng.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { NC = 5, FIG = RS_CSTAT_NUM_FIGURES };

static const char *const family_names[RS_CFAMILIES] = {"noise", "blur", "weather", "digital", "extra"};
/* ImageNet-C's held-out extras (its extra.tar; not in mCE). */
static const char *const extras[] = {"speckle_noise", "gaussian_blur", "spatter", "saturate"};

const char *rs_cstat_family_name(int family)
{
    return family >= 0 && family < RS_CFAMILIES ? family_names[family] : "?";
}

int rs_cstat_family_of(int id)
{
    const char *name = rs_corrupt_name(id), *fam = rs_corrupt_family(id);
    for (size_t i = 0; i < sizeof extras / sizeof *extras; i++)
        if (name && !strcmp(name, extras[i]))
            return RS_CFAMILY_EXTRA;
    for (int f = 0; f < RS_CFAMILY_EXTRA; f++)
        if (fam && !strcmp(fam, family_names[f]))
            return f;
    return RS_CFAMILY_EXTRA;
}

void rs_corrupt_grid_clear(rs_corrupt_grid *g)
{
    free(g->id);
    free(g->family);
    free(g->severity);
    free(g->view);
    memset(g, 0, sizeof *g);
}

/* Collects the distinct corruptions (first-view order) and severities (ascending) of the
 * V − 1 views' IDS and SEVS into G's id and severity lists. */
static void grid_axes(rs_corrupt_grid *g, const int *ids, const int *sevs, int n)
{
    for (int v = 0; v < n; v++) {
        int c = 0, s = 0;
        while (c < g->corruptions && g->id[c] != ids[v])
            c++;
        if (c == g->corruptions)
            g->id[g->corruptions++] = ids[v];
        while (s < g->severities && g->severity[s] < sevs[v])
            s++;
        if (s == g->severities || g->severity[s] != sevs[v]) {
            memmove(g->severity + s + 1, g->severity + s, sizeof *g->severity * (size_t)(g->severities - s));
            g->severity[s] = sevs[v];
            g->severities++;
        }
    }
}

/* Fills G's view map from the views' IDS and SEVS; 0, or the first view (>= 1) whose cell
 * another view already holds. */
static int grid_views(rs_corrupt_grid *g, const int *ids, const int *sevs, int n)
{
    for (int q = 0; q < g->corruptions * g->severities; q++)
        g->view[q] = -1;
    for (int c = 0; c < g->corruptions; c++)
        g->family[c] = rs_cstat_family_of(g->id[c]);
    for (int v = 0; v < n; v++) {
        int c = 0, s = 0;
        while (g->id[c] != ids[v])
            c++;
        while (g->severity[s] != sevs[v])
            s++;
        if (g->view[rs_cstat_cell(g, c, s)] >= 0)
            return v + 1;
        g->view[rs_cstat_cell(g, c, s)] = v + 1;
    }
    return 0;
}

int rs_corrupt_grid_of(const rs_run_info *run, rs_corrupt_grid *g, rs_error *err)
{
    memset(g, 0, sizeof *g);
    const int V = run->num_views, n = V - 1;
    if (V < 2 || !run->view_specs) {
        rs_error_set(err, RS_EINVAL, "run %" PRId64 " has no view besides the reference", run->id);
        return 0;
    }
    int *ids = malloc(sizeof *ids * (size_t)n), *sevs = malloc(sizeof *sevs * (size_t)n);
    g->id = malloc(sizeof *g->id * (size_t)n);
    g->family = malloc(sizeof *g->family * (size_t)n);
    g->severity = malloc(sizeof *g->severity * (size_t)n);
    g->view = malloc(sizeof *g->view * (size_t)n * (size_t)n);
    int rc = 1;
    if (!ids || !sevs || !g->id || !g->family || !g->severity || !g->view) {
        rc = rs_error_set(err, RS_ENOMEM, "out of memory");
        goto done;
    }
    for (int v = 0; v < V && rc == 1; v++) {
        const char *spec = run->view_specs[v] ? run->view_specs[v] : "";
        int id, sev, is = rs_spec_corruption(spec, &id, &sev, err);
        if (is < 0)
            rc = is;
        else if ((v == 0) == (is == 1)) {
            rs_error_set(err, RS_EINVAL, "run %" PRId64 " is not a corruption run: view %d '%s' %s", run->id, v,
                         spec, v == 0 ? "is corrupted (view 0 must be the clean reference)" :
                                        "is not one corrupt: operation");
            rc = 0;
        } else if (v > 0)
            ids[v - 1] = id, sevs[v - 1] = sev;
    }
    if (rc == 1) {
        grid_axes(g, ids, sevs, n);
        int dup = grid_views(g, ids, sevs, n);
        if (dup) {
            rs_error_set(err, RS_EINVAL, "run %" PRId64 " is not a corruption run: view %d '%s' repeats a cell",
                         run->id, dup, run->view_specs[dup]);
            rc = 0;
        }
    }
done:
    free(ids);
    free(sevs);
    if (rc != 1)
        rs_corrupt_grid_clear(g);
    return rc;
}

/* ---- figures from image weights ------------------------------------------------------------ */

/* Per view of ST under image weights W (N; NULL: all 1): RATE (V, FIG) and OK (V, FIG). */
static void view_figures(const rs_stats *st, const unsigned *w, double *rate, bool *ok)
{
    const int V = st->views, N = st->images;
    for (int v = 1; v < V; v++) {
        double c[NC] = {0}, lab = 0, cor = 0;
        for (int i = 0; i < N; i++) {
            double wi = w ? w[i] : 1;
            if (wi == 0)
                continue;
            const int32_t *row = st->image_counts + ((size_t)i * V + v) * NC;
            for (int q = 0; q < NC; q++)
                c[q] += wi * row[q];
            int8_t k = st->image_correct[(size_t)i * V + v];
            if (k >= 0)
                lab += wi, cor += wi * k;
        }
        double *r = rate + (size_t)v * FIG;
        bool *o = ok + (size_t)v * FIG;
        for (int m = 0; m < RS_CSTAT_ACCURACY; m++) {
            o[m] = c[0] > 0;
            r[m] = o[m] ? c[1 + m] / c[0] : 0; /* counts: pairs, top1, top2, top2u */
        }
        o[RS_CSTAT_ACCURACY] = lab > 0;
        r[RS_CSTAT_ACCURACY] = lab > 0 ? cor / lab : 0;
    }
}

/* Whether corruption C belongs to family F (RS_CFAMILIES: the benchmark's fifteen). */
static bool in_family(const rs_corrupt_grid *g, int c, int f)
{
    return f == RS_CFAMILIES ? g->family[c] != RS_CFAMILY_EXTRA : g->family[c] == f;
}

/* Row R, figure M: the mean of N values summed in SUM, valid when ALL held and N > 0. */
static void set_row(double *val, bool *valid, int r, int m, double sum, int n, bool all)
{
    valid[(size_t)r * FIG + m] = all && n > 0;
    val[(size_t)r * FIG + m] = all && n > 0 ? sum / n : 0;
}

/* Every row of grid G from per-view figures (RATE, OK) into VAL (rows, FIG), VALID: cells,
 * then corruptions (mean over their cells), families at one severity (mean over the cells
 * at it) and over all severities (mean over the corruptions' means, as ImageNet-C). A
 * missing cell leaves rows out of its mean; a cell without its figure voids them. */
static void rows_from_views(const rs_corrupt_grid *g, const double *rate, const bool *ok, double *val, bool *valid)
{
    const int C = g->corruptions, S = g->severities;
    for (int m = 0; m < FIG; m++) {
        for (int c = 0; c < C; c++) {
            double sum = 0;
            int n = 0;
            bool all = true;
            for (int s = 0; s < S; s++) {
                int v = g->view[rs_cstat_cell(g, c, s)];
                bool has = v >= 0 && ok[(size_t)v * FIG + m];
                set_row(val, valid, rs_cstat_cell(g, c, s), m, has ? rate[(size_t)v * FIG + m] : 0, has, true);
                all = all && (v < 0 || has);
                if (has)
                    sum += rate[(size_t)v * FIG + m], n++;
            }
            set_row(val, valid, rs_cstat_corruption(g, c), m, sum, n, all);
        }
        for (int f = 0; f <= RS_CFAMILIES; f++)
            for (int s = 0; s <= S; s++) {
                double sum = 0;
                int n = 0;
                bool all = true;
                for (int c = 0; c < C; c++) {
                    int r = s < S ? rs_cstat_cell(g, c, s) : rs_cstat_corruption(g, c);
                    if (!in_family(g, c, f) || (s < S && g->view[r] < 0))
                        continue;
                    all = all && valid[(size_t)r * FIG + m];
                    sum += val[(size_t)r * FIG + m], n++;
                }
                set_row(val, valid, rs_cstat_family(g, f, s), m, sum, n, all);
            }
    }
}

/* The relative form of B against A (rows of each) into REL (rel rows, FIG), RVALID. */
static void relative(const rs_corrupt_grid *g, const double *a, const bool *va, const double *b, const bool *vb,
                     double *rel, bool *rvalid)
{
    const int C = g->corruptions;
    for (int m = 0; m < FIG; m++) {
        double fsum[RS_CFAMILIES + 1] = {0};
        int fn[RS_CFAMILIES + 1] = {0};
        bool fok[RS_CFAMILIES + 1];
        for (int f = 0; f <= RS_CFAMILIES; f++)
            fok[f] = true;
        for (int c = 0; c < C; c++) {
            size_t at = (size_t)rs_cstat_corruption(g, c) * FIG + m;
            bool ok = va[at] && vb[at] && a[at] < 1;
            double x = ok ? (1 - b[at]) / (1 - a[at]) : 0;
            rel[(size_t)c * FIG + m] = x;
            rvalid[(size_t)c * FIG + m] = ok;
            int fam[2] = {g->family[c], g->family[c] == RS_CFAMILY_EXTRA ? -1 : RS_CFAMILIES};
            for (int q = 0; q < 2; q++)
                if (fam[q] >= 0)
                    fsum[fam[q]] += x, fn[fam[q]]++, fok[fam[q]] = fok[fam[q]] && ok;
        }
        for (int f = 0; f <= RS_CFAMILIES; f++) {
            size_t at = (size_t)(C + f) * FIG + m;
            rvalid[at] = fok[f] && fn[f] > 0;
            rel[at] = rvalid[at] ? fsum[f] / fn[f] : 0;
        }
    }
}

/* Scratch for evaluating one or two runs under a weight vector. */
typedef struct evalbuf {
    double *rate;       /* (V, FIG) */
    bool *ok;           /* (V, FIG) */
    double *val[2];     /* (rows, FIG) of A and B */
    bool *valid[2];
    double *rel;        /* (rel rows, FIG) */
    bool *rvalid;
} evalbuf;

static void evalbuf_free(evalbuf *e)
{
    free(e->rate);
    free(e->ok);
    for (int q = 0; q < 2; q++)
        free(e->val[q]), free(e->valid[q]);
    free(e->rel);
    free(e->rvalid);
}

static bool evalbuf_alloc(evalbuf *e, const rs_corrupt_grid *g, int V)
{
    memset(e, 0, sizeof *e);
    const size_t rows = (size_t)rs_cstat_rows(g) * FIG, rr = (size_t)rs_cstat_rel_rows(g) * FIG;
    e->rate = calloc((size_t)V * FIG, sizeof *e->rate);
    e->ok = calloc((size_t)V * FIG, sizeof *e->ok);
    for (int q = 0; q < 2; q++)
        e->val[q] = calloc(rows, sizeof *e->val[q]), e->valid[q] = calloc(rows, sizeof *e->valid[q]);
    e->rel = calloc(rr, sizeof *e->rel);
    e->rvalid = calloc(rr, sizeof *e->rvalid);
    return e->rate && e->ok && e->val[0] && e->val[1] && e->valid[0] && e->valid[1] && e->rel && e->rvalid;
}

/* Rows of run ST (slot Q of E) under W. */
static void eval_run(evalbuf *e, const rs_corrupt_grid *g, const rs_stats *st, const unsigned *w, int q)
{
    view_figures(st, w, e->rate, e->ok);
    rows_from_views(g, e->rate, e->ok, e->val[q], e->valid[q]);
}

/* ---- one run -------------------------------------------------------------------------------- */

void rs_corrupt_stats_free(rs_corrupt_stats *cs)
{
    if (!cs)
        return;
    rs_corrupt_grid_clear(&cs->grid);
    free(cs->fig);
    free(cs);
}

/* The percentile bootstrap of ST's rows into CS's fig (valid rows only). */
static int bootstrap_rows(rs_corrupt_stats *cs, const rs_stats *st, evalbuf *e, rs_error *err)
{
    const int N = st->images, B = st->resamples;
    const size_t rows = (size_t)cs->rows * FIG;
    unsigned *w = malloc(sizeof *w * (size_t)(N > 0 ? N : 1));
    double *x = malloc(sizeof *x * rows * (size_t)(B > 0 ? B : 1));
    size_t *n = calloc(rows, sizeof *n);
    gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
    int rc = 0;
    if (!w || !x || !n || !rng)
        rc = rs_error_set(err, RS_ENOMEM, "run %" PRId64 ": out of memory for the bootstrap", cs->run_id);
    else {
        gsl_rng_set(rng, (unsigned long)st->seed);
        for (int b = 0; b < B; b++) {
            memset(w, 0, sizeof *w * (size_t)N);
            for (int d = 0; d < N; d++)
                w[gsl_rng_uniform_int(rng, (unsigned long)N)]++;
            eval_run(e, &cs->grid, st, w, 0);
            for (size_t q = 0; q < rows; q++)
                if (e->valid[0][q])
                    x[q * (size_t)B + n[q]++] = e->val[0][q];
        }
        for (size_t q = 0; q < rows; q++)
            if (cs->fig[q].valid)
                rs_stats_percentile(x + q * (size_t)B, n[q], cs->level, &cs->fig[q].boot_valid, &cs->fig[q].boot_lo,
                                    &cs->fig[q].boot_hi);
    }
    gsl_rng_free(rng);
    free(w);
    free(x);
    free(n);
    return rc;
}

int rs_corrupt_stats_compute(const rs_run_info *run, const rs_stats *st, rs_corrupt_stats **out, rs_error *err)
{
    *out = NULL;
    gsl_set_error_handler_off();
    if (st->views != run->num_views || st->images != run->images_done || !st->image_counts || !st->image_correct)
        return rs_error_set(err, RS_EINVAL, "run %" PRId64 ": statistics do not fit the run", run->id);
    rs_corrupt_stats *cs = calloc(1, sizeof *cs);
    if (!cs)
        return rs_error_set(err, RS_ENOMEM, "out of memory");
    cs->run_id = run->id;
    cs->images = st->images;
    cs->level = st->level;
    cs->resamples = st->images > 0 ? st->resamples : 0;
    int rc = rs_corrupt_grid_of(run, &cs->grid, err);
    if (rc <= 0) {
        rs_corrupt_stats_free(cs);
        return rc < 0 ? rc : RS_EINVAL; /* ERR says why the run is not a corruption run */
    }
    cs->rows = rs_cstat_rows(&cs->grid);
    cs->fig = calloc((size_t)cs->rows * FIG, sizeof *cs->fig);
    evalbuf e;
    bool ok = evalbuf_alloc(&e, &cs->grid, st->views);
    rc = ok && cs->fig ? 0 : rs_error_set(err, RS_ENOMEM, "run %" PRId64 ": out of memory", run->id);
    if (!rc) {
        eval_run(&e, &cs->grid, st, NULL, 0);
        for (size_t q = 0; q < (size_t)cs->rows * FIG; q++)
            cs->fig[q] = (rs_stats_rate){.valid = e.valid[0][q], .value = e.val[0][q]};
        if (cs->resamples > 0)
            rc = bootstrap_rows(cs, st, &e, err);
    }
    evalbuf_free(&e);
    if (rc) {
        rs_corrupt_stats_free(cs);
        return rc;
    }
    *out = cs;
    return 0;
}

/* ---- groups --------------------------------------------------------------------------------- */

void rs_corrupt_groups_free(rs_corrupt_groups *cg)
{
    if (!cg)
        return;
    for (int q = 0; cg->runs && q < cg->num_groups * cg->seeds; q++)
        rs_corrupt_stats_free(cg->runs[q]);
    free(cg->runs);
    rs_corrupt_grid_clear(&cg->grid);
    free(cg->summary);
    free(cg->seed_diff);
    free(cg->diff);
    free(cg->seed_rel);
    free(cg->rel);
    free(cg);
}

static bool same_grid(const rs_corrupt_grid *a, const rs_corrupt_grid *b)
{
    return a->corruptions == b->corruptions && a->severities == b->severities &&
           !memcmp(a->id, b->id, sizeof *a->id * (size_t)a->corruptions) &&
           !memcmp(a->severity, b->severity, sizeof *a->severity * (size_t)a->severities) &&
           !memcmp(a->view, b->view, sizeof *a->view * (size_t)a->corruptions * (size_t)a->severities);
}

/* Paired bootstrap of group G's seed I against group 0's: DIFF (rows, FIG) B − A and REL
 * (rel rows, FIG), values and percentile intervals. */
static int paired(rs_corrupt_groups *cg, const rs_stats *sa, const rs_stats *sb, rs_stats_diff *diff,
                  rs_stats_diff *rel, evalbuf *e, rs_error *err)
{
    const rs_corrupt_grid *g = &cg->grid;
    const size_t rows = (size_t)cg->rows * FIG, rr = (size_t)cg->rel_rows * FIG, all = rows + rr;
    const int N = sa->images, B = sa->resamples;
    for (int pass = 0; pass < 2; pass++) { /* the point estimate, then the replicates */
        if (pass == 1 && B <= 0)
            break;
        unsigned *w = pass ? malloc(sizeof *w * (size_t)(N > 0 ? N : 1)) : NULL;
        double *x = pass ? malloc(sizeof *x * all * (size_t)B) : NULL;
        size_t *n = pass ? calloc(all, sizeof *n) : NULL;
        gsl_rng *rng = pass ? gsl_rng_alloc(gsl_rng_mt19937) : NULL;
        if (pass && (!w || !x || !n || !rng)) {
            free(w), free(x), free(n), gsl_rng_free(rng);
            return rs_error_set(err, RS_ENOMEM, "out of memory for the paired bootstrap");
        }
        if (rng)
            gsl_rng_set(rng, (unsigned long)sa->seed);
        for (int b = 0; b < (pass ? B : 1); b++) {
            if (pass) {
                memset(w, 0, sizeof *w * (size_t)N);
                for (int d = 0; d < N; d++)
                    w[gsl_rng_uniform_int(rng, (unsigned long)N)]++;
            }
            eval_run(e, g, sa, w, 0);
            eval_run(e, g, sb, w, 1);
            relative(g, e->val[0], e->valid[0], e->val[1], e->valid[1], e->rel, e->rvalid);
            for (size_t q = 0; q < all; q++) {
                bool ok = q < rows ? e->valid[0][q] && e->valid[1][q] : e->rvalid[q - rows];
                double v = q < rows ? e->val[1][q] - e->val[0][q] : e->rel[q - rows];
                rs_stats_diff *d = q < rows ? &diff[q] : &rel[q - rows];
                if (!pass)
                    *d = (rs_stats_diff){.valid = ok, .value = v};
                else if (ok)
                    x[q * (size_t)B + n[q]++] = v;
            }
        }
        for (size_t q = 0; pass && q < all; q++) {
            rs_stats_diff *d = q < rows ? &diff[q] : &rel[q - rows];
            if (d->valid)
                rs_stats_percentile(x + q * (size_t)B, n[q], sa->level, &d->boot_valid, &d->boot_lo, &d->boot_hi);
        }
        free(w), free(x), free(n), gsl_rng_free(rng);
    }
    return 0;
}

/* Summary over seeds of X (n values). */
static void summarise(const double *x, int n, rs_group_summary *s)
{
    *s = (rs_group_summary){.valid = n > 0, .n = n};
    if (!n)
        return;
    double sum = 0;
    s->min = s->max = x[0];
    for (int i = 0; i < n; i++) {
        sum += x[i];
        s->min = x[i] < s->min ? x[i] : s->min;
        s->max = x[i] > s->max ? x[i] : s->max;
    }
    s->mean = sum / n;
    double ss = 0;
    for (int i = 0; i < n; i++)
        ss += (x[i] - s->mean) * (x[i] - s->mean);
    s->sd = n > 1 ? sqrt(ss / (n - 1)) : 0;
}

/* Over seeds: summaries of every group's rows, t intervals of differences and relatives. */
static int over_seeds(rs_corrupt_groups *cg, const rs_groups *g, double level, rs_error *err)
{
    const int G = cg->num_groups, N = cg->seeds, rows = cg->rows, rr = cg->rel_rows;
    double x[64], y[64];
    for (int gi = 0; gi < G; gi++)
        for (int q = 0; q < rows * FIG; q++) {
            int n = 0, nd = 0;
            for (int i = 0; i < g->size[gi]; i++) {
                const rs_stats_rate *f = &cg->runs[gi * N + i]->fig[q];
                if (f->valid)
                    x[n++] = f->value;
                const rs_stats_diff *d = &cg->seed_diff[((size_t)gi * N + i) * rows * FIG + q];
                if (gi > 0 && d->valid)
                    y[nd++] = d->value;
            }
            summarise(x, n, &cg->summary[(size_t)gi * rows * FIG + q]);
            int rc = gi > 0 && nd == g->size[gi] ? rs_t_interval_of(y, nd, level, &cg->diff[(size_t)gi * rows * FIG + q], err) : 0;
            if (rc)
                return rc;
        }
    for (int gi = 0; gi < G; gi++)
        for (int q = 0; q < rr * FIG; q++) {
            int n = 0;
            for (int i = 0; i < g->size[gi]; i++) {
                const rs_stats_diff *d = &cg->seed_rel[((size_t)gi * N + i) * rr * FIG + q];
                if (d->valid)
                    x[n++] = d->value;
            }
            int rc = n == g->size[gi] ? rs_t_interval_of(x, n, level, &cg->rel[(size_t)gi * rr * FIG + q], err) : 0;
            if (rc)
                return rc;
        }
    return 0;
}

/* Group 0's relative form at one seed (R, rel rows): 1 by definition wherever its own
 * inconsistency on the corruptions is defined and non-zero. */
static void reference_relative(rs_corrupt_groups *cg, const rs_corrupt_stats *own, evalbuf *e, rs_stats_diff *r)
{
    const size_t rows = (size_t)cg->rows * FIG;
    for (size_t q = 0; q < rows; q++)
        e->val[0][q] = own->fig[q].value, e->valid[0][q] = own->fig[q].valid;
    relative(&cg->grid, e->val[0], e->valid[0], e->val[0], e->valid[0], e->rel, e->rvalid);
    for (size_t q = 0; q < (size_t)cg->rel_rows * FIG; q++)
        r[q] = (rs_stats_diff){.valid = e->rvalid[q], .value = e->rvalid[q] ? 1 : 0, .boot_valid = e->rvalid[q],
                               .boot_lo = e->rvalid[q] ? 1 : 0, .boot_hi = e->rvalid[q] ? 1 : 0};
}

static int alloc_groups(rs_corrupt_groups *cg)
{
    const size_t G = (size_t)cg->num_groups, N = (size_t)cg->seeds, rows = (size_t)cg->rows * FIG,
                 rr = (size_t)cg->rel_rows * FIG;
    cg->summary = calloc(G * rows, sizeof *cg->summary);
    cg->seed_diff = calloc(G * N * rows, sizeof *cg->seed_diff);
    cg->diff = calloc(G * rows, sizeof *cg->diff);
    cg->seed_rel = calloc(G * N * rr, sizeof *cg->seed_rel);
    cg->rel = calloc(G * rr, sizeof *cg->rel);
    return cg->summary && cg->seed_diff && cg->diff && cg->seed_rel && cg->rel ? 0 : RS_ENOMEM;
}

/* Each run's own figures, and the grid they must share. */
static int per_run(rs_corrupt_groups *cg, const rs_groups *g, rs_error *err)
{
    for (int gi = 0; gi < cg->num_groups; gi++)
        for (int i = 0; i < g->size[gi]; i++) {
            const rs_run_info *info = &g->info[rs_groups_at(g, gi, i)];
            int rc = rs_corrupt_stats_compute(info, rs_groups_stats(g, gi, i), &cg->runs[gi * cg->seeds + i], err);
            if (rc)
                return rc;
            if (!same_grid(&cg->runs[gi * cg->seeds + i]->grid, &cg->runs[0]->grid))
                return rs_error_set(err, RS_EINVAL, "group %s run %" PRId64 " has other corruptions or severities "
                                    "than run %" PRId64, g->names[gi], info->id, g->info[0].id);
        }
    return 0;
}

int rs_corrupt_groups_compute(const rs_groups *g, rs_corrupt_groups **out, rs_error *err)
{
    *out = NULL;
    if (g->num_groups < 1 || g->seeds < 1 || g->seeds > 64)
        return rs_error_set(err, RS_EINVAL, "corruption figures need 1 to 64 seeds per group");
    rs_corrupt_groups *cg = calloc(1, sizeof *cg);
    if (!cg)
        return rs_error_set(err, RS_ENOMEM, "out of memory");
    cg->num_groups = g->num_groups, cg->seeds = g->seeds;
    cg->runs = calloc((size_t)g->num_groups * g->seeds, sizeof *cg->runs);
    int rc = cg->runs ? per_run(cg, g, err) : rs_error_set(err, RS_ENOMEM, "out of memory");
    evalbuf e = {0};
    if (!rc) {
        const rs_corrupt_grid *g0 = &cg->runs[0]->grid;
        cg->rows = rs_cstat_rows(g0), cg->rel_rows = rs_cstat_rel_rows(g0);
        rs_corrupt_grid *mine = &cg->grid; /* a copy that the group owns */
        *mine = (rs_corrupt_grid){.corruptions = g0->corruptions, .severities = g0->severities};
        const size_t C = (size_t)g0->corruptions, S = (size_t)g0->severities;
        mine->id = malloc(sizeof *mine->id * C), mine->family = malloc(sizeof *mine->family * C);
        mine->severity = malloc(sizeof *mine->severity * S), mine->view = malloc(sizeof *mine->view * C * S);
        if (alloc_groups(cg) || !mine->id || !mine->family || !mine->severity || !mine->view ||
            !evalbuf_alloc(&e, g0, g->info[0].num_views))
            rc = rs_error_set(err, RS_ENOMEM, "out of memory for the corruption figures");
        else {
            memcpy(mine->id, g0->id, sizeof *mine->id * C), memcpy(mine->family, g0->family, sizeof *mine->family * C);
            memcpy(mine->severity, g0->severity, sizeof *mine->severity * S);
            memcpy(mine->view, g0->view, sizeof *mine->view * C * S);
        }
    }
    const size_t rows = (size_t)cg->rows * FIG, rr = (size_t)cg->rel_rows * FIG;
    for (int gi = 0; !rc && gi < g->num_groups; gi++)
        for (int i = 0; !rc && i < g->size[gi]; i++) {
            rs_stats_diff *d = cg->seed_diff + ((size_t)gi * g->seeds + i) * rows;
            rs_stats_diff *r = cg->seed_rel + ((size_t)gi * g->seeds + i) * rr;
            if (gi == 0) /* against itself: no difference (d stays invalid), relative form 1 */
                reference_relative(cg, cg->runs[i], &e, r);
            else
                rc = paired(cg, rs_groups_stats(g, 0, i), rs_groups_stats(g, gi, i), d, r, &e, err);
        }
    if (!rc)
        rc = over_seeds(cg, g, g->level, err);
    evalbuf_free(&e);
    if (rc) {
        rs_corrupt_groups_free(cg);
        return rc;
    }
    *out = cg;
    return 0;
}

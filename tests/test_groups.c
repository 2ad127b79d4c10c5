/* Groups of runs (analyze/stats/groups.h): the t interval against values worked out by hand,
 * its p-value (t table and closed forms), Holm's adjustment and the answer table's family by
 * hand, its coverage over seeds on simulated per-seed effects (and the under-coverage of an
 * interval that pools the images of all seeds, which is why groups use the t interval),
 * the whole computation on a hand-made store of two groups of three seeds with every
 * figure worked out in the comments, the checks that refuse groups that cannot be
 * paired, and the checkpoint config's optional method / train_seed keys. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <gsl/gsl_randist.h>
#include <gsl/gsl_rng.h>

#include "config.h"
#include "stats/groups.h"
#include "store/run.h"
#include "store/store.h"
#include "teststore.h"
#include "testutil.h"

static char dir[64];

#define NEAR(x, y, tol) assert_true(fabs((double)(x) - (double)(y)) < (tol))

/* ---- t interval ----------------------------------------------------------------------------- */

/* {1, 2, 3}: mean 2, sd 1, t_{0.975, 2} = 4.302653 -> 2 ∓ 4.302653 / √3 = 2 ∓ 2.484138.
 * {0, 1}: mean 0.5, sd 0.707107, t_{0.975, 1} = 12.706205 -> 0.5 ∓ 6.353102.
 * At level 0.9, {1, 2, 3}: t_{0.95, 2} = 2.919986 -> 2 ∓ 1.685854.
 * One value: its mean, no interval. */
static void test_t_interval(void **state)
{
    (void)state;
    rs_error err = {0};
    rs_t_interval t;
    const double x[3] = {1, 2, 3}, y[2] = {0, 1};
    assert_int_equal(rs_t_interval_of(x, 3, 0.95, &t, &err), 0);
    assert_true(t.valid);
    NEAR(t.mean, 2, 1e-12);
    NEAR(t.sd, 1, 1e-12);
    NEAR(t.lo, 2 - 2.484138, 1e-6);
    NEAR(t.hi, 2 + 2.484138, 1e-6);
    assert_int_equal(rs_t_interval_of(y, 2, 0.95, &t, &err), 0);
    NEAR(t.lo, 0.5 - 6.353102, 1e-6);
    NEAR(t.hi, 0.5 + 6.353102, 1e-6);
    assert_int_equal(rs_t_interval_of(x, 3, 0.9, &t, &err), 0);
    NEAR(t.hi - t.mean, 1.685854, 1e-6);
    assert_int_equal(rs_t_interval_of(x + 2, 1, 0.95, &t, &err), 0);
    assert_false(t.valid);
    assert_int_equal(t.n, 1);
    NEAR(t.mean, 3, 1e-12);
    assert_int_equal(rs_t_interval_of(x, 0, 0.95, &t, &err), RS_EINVAL);
    assert_int_equal(rs_t_interval_of(x, 3, 1.0, &t, &err), RS_EINVAL);
}

/* ---- coverage over seeds -------------------------------------------------------------------- */

/* p-values of the t statistic, worked out independently of GSL:
 * {1, 2, 3}: t = 2 / (1 / √3) = 2√3 on 2 df, where P(|T| >= t) = 1 − t / √(2 + t²)
 *   = 1 − √(12/14) = 0.0741799.
 * {0, 1}: t = 0.5 / (0.707107 / √2) = 1 on 1 df (Cauchy), p = 1 − (2/π) atan 1 = 0.5.
 * Five values c + {−2, −1, 0, 1, 2}: sd √2.5, se √0.5; c = 2.776445 · √0.5 makes t the
 * table's t_{0.975, 4} = 2.776445, so p = 0.05.
 * Equal values: sd 0, p 0 (mean ≠ 0) or 1 (mean 0). One value: no p-value. */
static void test_t_pvalue(void **state)
{
    (void)state;
    rs_error err = {0};
    rs_t_interval t;
    const double x[3] = {1, 2, 3}, y[2] = {0, 1}, same[3] = {0.2, 0.2, 0.2}, zero[2] = {0, 0};
    assert_int_equal(rs_t_interval_of(x, 3, 0.95, &t, &err), 0);
    NEAR(t.p, 1 - sqrt(12.0 / 14.0), 1e-9);
    assert_int_equal(rs_t_interval_of(y, 2, 0.95, &t, &err), 0);
    NEAR(t.p, 0.5, 1e-9);
    double c = 2.776445 * sqrt(0.5), five[5] = {c - 2, c - 1, c, c + 1, c + 2};
    assert_int_equal(rs_t_interval_of(five, 5, 0.95, &t, &err), 0);
    NEAR(t.p, 0.05, 1e-6);
    /* the interval's bound sits at 0 exactly when p = 1 − level */
    NEAR(t.lo, 0, 1e-5);
    for (int i = 0; i < 5; i++)
        five[i] = -five[i];
    assert_int_equal(rs_t_interval_of(five, 5, 0.95, &t, &err), 0);
    NEAR(t.p, 0.05, 1e-6);
    /* no spread: the t statistic is undefined, so no p-value, whatever the mean */
    assert_int_equal(rs_t_interval_of(same, 3, 0.95, &t, &err), 0);
    NEAR(t.p, -1, 1e-12);
    assert_int_equal(rs_t_interval_of(zero, 2, 0.95, &t, &err), 0);
    NEAR(t.p, -1, 1e-12);
    assert_int_equal(rs_t_interval_of(x, 1, 0.95, &t, &err), 0);
    assert_false(t.valid);
}

/* Holm by hand. {0.01, 0.04, 0.03, 0.005, none}: m = 4; sorted 0.005, 0.01, 0.03, 0.04 times
 * 4, 3, 2, 1 = 0.02, 0.03, 0.06, 0.04, made monotone: 0.02, 0.03, 0.06, 0.06.
 * {0.6, 0.7}: 2 · 0.6 = 1.2 capped at 1, then 0.7 raised to 1. {0.3, 0.5}: 0.6, 0.6. */
static void test_holm(void **state)
{
    (void)state;
    double p[5] = {0.01, 0.04, 0.03, 0.005, -1}, adj[5];
    assert_int_equal(rs_holm(p, 5, adj), 4);
    NEAR(adj[0], 0.03, 1e-12);
    NEAR(adj[1], 0.06, 1e-12);
    NEAR(adj[2], 0.06, 1e-12);
    NEAR(adj[3], 0.02, 1e-12);
    NEAR(adj[4], -1, 1e-12);
    double q[2] = {0.6, 0.7};
    assert_int_equal(rs_holm(q, 2, q), 2);  /* in place */
    NEAR(q[0], 1, 1e-12);
    NEAR(q[1], 1, 1e-12);
    double r[2] = {0.5, 0.3};
    assert_int_equal(rs_holm(r, 2, r), 2);
    NEAR(r[0], 0.6, 1e-12);
    NEAR(r[1], 0.6, 1e-12);
    assert_int_equal(rs_holm(r, 0, r), 0);
}

/* The answer over two protocols of groups {ref, a, b}: its cells are the groups' own
 * differences, the family every cell with a p-value (b has one seed in protocol 2: none),
 * and Holm over them. Protocol 1: a's Top-1 p = 0.001 (the rest 0.5), b's 0.02; protocol 2:
 * a's Top-1 p = 0.01. Family 5 + 5 + 5 = 15: sorted 0.001, 0.01, 0.02, 0.5 … ->
 * 0.015, 0.14, 0.26, then 0.5 · 12 -> 1. */
static void test_answer(void **state)
{
    (void)state;
    char names[3][RS_GROUP_NAME_MAX] = {"ref", "a", "b"};
    rs_t_interval d1[3 * RS_GROUP_NUM_FIGURES] = {0}, d2[3 * RS_GROUP_NUM_FIGURES] = {0};
    for (int f = 0; f < RS_GROUP_NUM_FIGURES; f++) {
        d1[RS_GROUP_NUM_FIGURES + f] = (rs_t_interval){.valid = true, .n = 3, .mean = 0.01, .p = 0.5};
        d1[2 * RS_GROUP_NUM_FIGURES + f] = (rs_t_interval){.valid = true, .n = 3, .mean = 0.01, .p = 0.5};
        d2[RS_GROUP_NUM_FIGURES + f] = (rs_t_interval){.valid = true, .n = 2, .mean = 0.01, .p = 0.5};
        d2[2 * RS_GROUP_NUM_FIGURES + f] = (rs_t_interval){.n = 1, .mean = 0.02};
    }
    d1[RS_GROUP_NUM_FIGURES + RS_GROUP_TOP1].p = 0.001;
    d1[2 * RS_GROUP_NUM_FIGURES + RS_GROUP_TOP1].p = 0.02;
    d2[RS_GROUP_NUM_FIGURES + RS_GROUP_TOP1].p = 0.01;
    rs_groups g1 = {.num_groups = 3, .level = 0.95, .names = names, .diff = d1};
    rs_groups g2 = g1;
    g2.diff = d2;
    const rs_groups *g[2] = {&g1, &g2};
    rs_answer *a = NULL;
    rs_error err = {0};
    assert_int_equal(rs_groups_answer(g, 2, &a, &err), 0);
    assert_int_equal(a->rows, 2);
    assert_int_equal(a->family, 15);
    NEAR(rs_answer_at(a, 0, 0, RS_GROUP_TOP1)->holm, 0.015, 1e-12);
    assert_true(rs_answer_at(a, 0, 0, RS_GROUP_TOP1)->holds);
    NEAR(rs_answer_at(a, 0, 1, RS_GROUP_TOP1)->holm, 0.14, 1e-12);
    assert_false(rs_answer_at(a, 0, 1, RS_GROUP_TOP1)->holds);
    NEAR(rs_answer_at(a, 1, 0, RS_GROUP_TOP1)->holm, 0.26, 1e-12);
    NEAR(rs_answer_at(a, 1, 0, RS_GROUP_TOP2)->holm, 1, 1e-12);
    const rs_answer_cell *one = rs_answer_at(a, 1, 1, RS_GROUP_TOP1);
    assert_true(one->valid);
    assert_false(one->diff.valid);
    NEAR(one->holm, -1, 1e-12);
    NEAR(one->diff.mean, 0.02, 1e-12);
    rs_answer_free(a);
    /* other groups in the second protocol, or a single group: refused */
    char other[3][RS_GROUP_NAME_MAX] = {"ref", "a", "c"};
    g2.names = other;
    assert_int_equal(rs_groups_answer(g, 2, &a, &err), RS_EINVAL);
    assert_null(a);
    g1.num_groups = 1;
    assert_int_equal(rs_groups_answer(g, 1, &a, &err), RS_EINVAL);
}

/* REPS simulated comparisons of two methods with SEEDS paired seeds of IMAGES images each.
 * The true difference is DELTA; seed i adds its own effect u_i ~ N(0, SIGMA_SEED²) to every
 * image's paired difference (initialisation and data order move the whole run), and image
 * j adds e_ij ~ N(0, SIGMA_IMAGE²). The per-seed difference is the mean over its images.
 *   t interval: the per-seed differences d_i are i.i.d. normal, so the 95 % t interval on
 *     n − 1 df covers DELTA in 95 % of the replicates exactly; over 4,000 replicates the
 *     count's sd is 0.34 points, and [93.5 %, 96.5 %] is more than 4 sd either side.
 *   pooled images: mean of all images ∓ 1.96 · sd / √(n·m), as if the images of all seeds
 *     were independent. Its half-width ≈ 1.96 · 0.104 / √600 = 0.0083, the sd of the mean
 *     √(0.03²/3 + 0.1²/600) = 0.0176: it covers P(|Z| < 0.47) ≈ 36 %.
 * The GSL seed is fixed, so the counts are the same on every run. */
static void test_t_coverage(void **state)
{
    (void)state;
    const int reps = 4000, seeds = 3, images = 200;
    const double delta = 0.05, sigma_seed = 0.03, sigma_image = 0.1;
    gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
    assert_non_null(rng);
    gsl_rng_set(rng, 20240607);
    int t_covered = 0, pooled_covered = 0;
    rs_error err = {0};
    for (int r = 0; r < reps; r++) {
        double d[3], sum = 0, ss = 0;
        for (int i = 0; i < seeds; i++) {
            double u = gsl_ran_gaussian(rng, sigma_seed), seed_sum = 0;
            for (int j = 0; j < images; j++) {
                double x = delta + u + gsl_ran_gaussian(rng, sigma_image);
                seed_sum += x;
                sum += x;
                ss += x * x;
            }
            d[i] = seed_sum / images;
        }
        rs_t_interval t;
        assert_int_equal(rs_t_interval_of(d, seeds, 0.95, &t, &err), 0);
        t_covered += t.lo <= delta && delta <= t.hi;
        double n = (double)seeds * images, mean = sum / n, sd = sqrt((ss - n * mean * mean) / (n - 1));
        double half = 1.959964 * sd / sqrt(n);
        pooled_covered += mean - half <= delta && delta <= mean + half;
    }
    gsl_rng_free(rng);
    print_message("  t interval over seeds covers %d/%d, pooled-images interval %d/%d\n", t_covered, reps,
                  pooled_covered, reps);
    assert_true(t_covered >= 0.935 * reps && t_covered <= 0.965 * reps);
    assert_true(pooled_covered < 0.6 * reps);
}

/* ---- a hand-made store ---------------------------------------------------------------------- */

/* Runs of N = 2 images, views 0 and 1, one MoE layer, 4 patches (identity match), no class
 * token, R = 2, E = 4, K = 3 classes, labels 0 and 1 (tb: teststore.h). View 0 routes (0,1)
 * everywhere; in view 1 the first DISAGREE[i] patches of image i route (2,3) (Top-1, Top-2
 * and order-agnostic all disagree), the others (0,1). View 0 predicts RIGHT[i] ? label : 2. */
#define N 2
#define NP 4
static const char *const views[] = {"crop:area=0.05-1,flip", "crop:area=0.05-1,flip"};

static int64_t write_run(const char *path, char sha_char, const char *config, uint64_t view_seed,
                         const int disagree[N], const int right[N])
{
    tb t = tb_new(N, 2, 1, NP, 0, 2, 4, 3);
    for (int i = 0; i < N; i++) {
        t.labels[i] = i;
        t.pred[i * 2] = right[i] ? i : 2;
        t.pred[i * 2 + 1] = i;
        for (int j = 0; j < disagree[i]; j++)
            tb_set_top(&t, i, 1, 0, j, 2, 3);
    }
    char sha[65];
    memset(sha, sha_char, 64);
    sha[64] = '\0';
    rs_run_spec spec = tb_spec(&t, sha, view_seed, views);
    spec.model_config = config;
    int64_t run = tb_write(&t, path, &spec);
    tb_free(&t);
    return run;
}

/* Group vmoe, seeds 0, 1, 2: disagreeing patches {1,1}, {2,1}, {0,1} of 8 pairs ->
 * Top-1 6/8, 5/8, 7/8 = 0.75, 0.625, 0.875; accuracy 1, 1, 1/2.
 * Group prc, seeds 0, 1, 2: {2,2}, {2,2}, {4,1} -> 0.5, 0.5, 0.375; accuracy 1/2, 1, 1/2.
 * (Top-2 and order-agnostic equal Top-1 here.)
 * vmoe: mean 0.75, sd 0.125 (deviations 0, −0.125, 0.125), min 0.625, max 0.875.
 * prc − vmoe per seed: −0.25, −0.125, −0.5: mean −0.291667, deviations 0.041667, 0.166667,
 *   −0.208333, sd √(0.072917 / 2) = 0.190941, half-width 4.302653 · 0.190941 / √3 =
 *   0.474323: [−0.765990, 0.182656].
 * accuracy per seed: −0.5, 0, 0: mean −1/6, sd 0.288675, half 0.717109. */
static const int dis_vmoe[3][N] = {{1, 1}, {2, 1}, {0, 1}}, dis_prc[3][N] = {{2, 2}, {2, 2}, {4, 1}};
static const int right_vmoe[3][N] = {{1, 1}, {1, 1}, {1, 0}}, right_prc[3][N] = {{1, 0}, {1, 1}, {0, 1}};

static void build_store(const char *path, int64_t vmoe[3], int64_t prc[3])
{
    char cfg[128];
    for (int i = 0; i < 3; i++) {
        snprintf(cfg, sizeof cfg, "{\"top_k\": 2, \"method\": \"vmoe\", \"train_seed\": %d}", i);
        vmoe[i] = write_run(path, (char)('a' + i), cfg, 42, dis_vmoe[i], right_vmoe[i]);
        snprintf(cfg, sizeof cfg, "{\"top_k\": 2, \"method\": \"prc\", \"train_seed\": %d}", i);
        prc[i] = write_run(path, (char)('d' + i), cfg, 42, dis_prc[i], right_prc[i]);
    }
}

static rs_store *open_ro(const char *path)
{
    rs_store *s;
    rs_error err = {0};
    assert_int_equal(rs_store_open(path, true, &s, &err), 0);
    return s;
}

static const int three[2] = {3, 3}, single[2] = {1, 1};

static void test_groups_store(void **state)
{
    (void)state;
    const char *path = tu_path(dir, "groups.db");
    int64_t vmoe[3], prc[3];
    build_store(path, vmoe, prc);
    rs_store *s = open_ro(path);
    const char *names[2] = {"vmoe", "prc"};
    const int64_t *runs[2] = {vmoe, prc};
    rs_stats_options opt = {.seed = 7, .resamples = 200, .name = path};
    rs_groups *g = NULL;
    rs_error err = {0};
    int rc = rs_groups_compute(s, names, runs, three, 2, &opt, &g, &err);
    if (rc)
        print_message("  %s\n", err.msg);
    assert_int_equal(rc, 0);
    assert_false(g->forced);
    assert_int_equal(rs_run_method(&g->info[0]), RS_METHOD_VMOE);
    assert_int_equal(rs_run_method(&g->info[rs_groups_at(g, 1, 2)]), RS_METHOD_PRC);
    assert_int_equal(rs_run_train_seed(&g->info[rs_groups_at(g, 1, 2)]), 2);
    const rs_group_summary *sv = &g->summary[RS_GROUP_TOP1];
    assert_true(sv->valid);
    assert_int_equal(sv->n, 3);
    NEAR(sv->mean, 0.75, 1e-12);
    NEAR(sv->sd, 0.125, 1e-12);
    NEAR(sv->min, 0.625, 1e-12);
    NEAR(sv->max, 0.875, 1e-12);
    NEAR(g->summary[RS_GROUP_NUM_FIGURES + RS_GROUP_TOP2_UNORDERED].mean, 0.458333, 1e-6);
    const rs_t_interval *t = &g->diff[RS_GROUP_NUM_FIGURES + RS_GROUP_TOP1];
    assert_true(t->valid);
    NEAR(t->mean, -0.291667, 1e-6);
    NEAR(t->sd, 0.190941, 1e-6);
    NEAR(t->lo, -0.765990, 1e-5);
    NEAR(t->hi, 0.182656, 1e-5);
    const rs_t_interval *ta = &g->diff[RS_GROUP_NUM_FIGURES + RS_GROUP_ACCURACY];
    NEAR(ta->mean, -1.0 / 6, 1e-12);
    NEAR(ta->hi - ta->mean, 0.717109, 1e-5);
    /* The other views' accuracy: view 1 is always right (view 0 is not: mean 5/6). */
    NEAR(g->summary[RS_GROUP_ACCURACY].mean, 5.0 / 6, 1e-12);
    NEAR(g->summary[RS_GROUP_ACCURACY_VIEWS].mean, 1.0, 1e-12);
    const rs_t_interval *tv = &g->diff[RS_GROUP_NUM_FIGURES + RS_GROUP_ACCURACY_VIEWS];
    assert_true(tv->valid);
    NEAR(tv->mean, 0.0, 1e-12);
    assert_false(g->seed_diff[rs_groups_fig(g, 1, 1, RS_GROUP_ACCURACY_VIEWS)].boot_valid);
    /* Per seed: seed 1's difference −0.125 with its paired bootstrap over the two images
     * (per image: vmoe 2/4 and 3/4, prc 2/4 and 2/4, so 0 and −0.25; replicates give 0,
     * −0.125 or −0.25, and the interval holds −0.125). */
    const rs_stats_diff *d1 = &g->seed_diff[rs_groups_fig(g, 1, 1, RS_GROUP_TOP1)];
    assert_true(d1->valid && d1->boot_valid);
    NEAR(d1->value, -0.125, 1e-12);
    assert_true(d1->boot_lo <= -0.125 && -0.125 <= d1->boot_hi);
    assert_false(g->seed_diff[rs_groups_fig(g, 1, 1, RS_GROUP_ACCURACY)].boot_valid);
    assert_false(g->diff[RS_GROUP_TOP1].valid); /* group 0 has no difference */
    rs_groups_free(g);

    /* One seed each: the figures, and no between-seed interval. */
    assert_int_equal(rs_groups_compute(s, names, runs, single, 2, &opt, &g, &err), 0);
    assert_false(g->diff[RS_GROUP_NUM_FIGURES + RS_GROUP_TOP1].valid);
    NEAR(g->diff[RS_GROUP_NUM_FIGURES + RS_GROUP_TOP1].mean, -0.25, 1e-12);
    rs_groups_free(g);
    /* One group: its own figures. */
    assert_int_equal(rs_groups_compute(s, names + 1, runs + 1, three, 1, &opt, &g, &err), 0);
    NEAR(g->summary[RS_GROUP_TOP1].mean, 0.458333, 1e-6);
    rs_groups_free(g);
    /* A group with fewer seeds (prc seeds 0 and 1): compared on its two positions, while
     * group 0 keeps all three (its seed 2 from its own statistics): Top-1 differences
     * -0.25 and -0.125, mean -0.1875, sd 0.0883883, t_{0.975,1} = 12.7062. */
    const int fewer[2] = {3, 2};
    assert_int_equal(rs_groups_compute(s, names, runs, fewer, 2, &opt, &g, &err), 0);
    assert_int_equal(g->summary[RS_GROUP_TOP1].n, 3);
    NEAR(g->summary[RS_GROUP_TOP1].mean, 0.75, 1e-12);
    assert_int_equal(g->summary[RS_GROUP_NUM_FIGURES + RS_GROUP_TOP1].n, 2);
    NEAR(g->summary[RS_GROUP_NUM_FIGURES + RS_GROUP_TOP1].mean, 0.5, 1e-12);
    t = &g->diff[RS_GROUP_NUM_FIGURES + RS_GROUP_TOP1];
    assert_true(t->valid);
    assert_int_equal(t->n, 2);
    NEAR(t->mean, -0.1875, 1e-12);
    NEAR(t->hi - t->mean, 12.7062 * 0.0883883 / sqrt(2), 1e-3);
    assert_false(g->seed_diff[rs_groups_fig(g, 1, 2, RS_GROUP_TOP1)].valid);
    rs_groups_free(g);
    /* The first group holds every seed position. */
    const int more[2] = {2, 3};
    assert_int_equal(rs_groups_compute(s, names, runs, more, 2, &opt, &g, &err), RS_EINVAL);
    print_message("  %s\n", err.msg);
    assert_non_null(strstr(err.msg, "more than the reference group vmoe's 2"));
    assert_null(g);
    rs_store_close(s);
}

/* Groups that cannot be paired are refused with what is wrong; --force goes on where the
 * difference is one it may override. */
static void test_groups_refused(void **state)
{
    (void)state;
    const char *path = tu_path(dir, "refused.db");
    int64_t vmoe[3], prc[3];
    build_store(path, vmoe, prc);
    const int ok[N] = {1, 1}, none[N] = {0, 0};
    int64_t other_views = write_run(path, 'g', "{\"method\": \"prc\", \"train_seed\": 0}", 43, none, ok);
    int64_t again = write_run(path, 'a', "{\"method\": \"vmoe\", \"train_seed\": 0}", 44, none, ok);
    rs_store *s = open_ro(path);
    rs_stats_options opt = {.seed = 7, .resamples = 50, .name = path};
    rs_groups *g = NULL;
    rs_error err = {0};
    const char *names[2] = {"vmoe", "prc"};

    /* Seeds out of order: position 1 holds training seeds 0 and 1. */
    int64_t swapped[3] = {prc[1], prc[0], prc[2]};
    const int64_t *runs[2] = {vmoe, swapped};
    assert_int_equal(rs_groups_compute(s, names, runs, three, 2, &opt, &g, &err), RS_EINVAL);
    print_message("  %s\n", err.msg);
    assert_non_null(strstr(err.msg, "seeds pair by position"));
    assert_null(g);
    opt.force = true;
    assert_int_equal(rs_groups_compute(s, names, runs, three, 2, &opt, &g, &err), 0);
    assert_true(g->forced);
    assert_non_null(strstr(g->mismatch, "seeds pair by position"));
    rs_groups_free(g);
    opt.force = false;

    /* A method mixed into a group; other views (view seed 43). */
    int64_t mixed[3] = {vmoe[0], prc[1], vmoe[2]};
    runs[1] = mixed;
    const int64_t *one[1] = {mixed};
    assert_int_equal(rs_groups_compute(s, names, one, three, 1, &opt, &g, &err), RS_EINVAL);
    print_message("  %s\n", err.msg);
    assert_non_null(strstr(err.msg, "mixes V-MoE k=2"));
    int64_t seeded[3] = {other_views, prc[1], prc[2]};
    runs[1] = seeded;
    assert_int_equal(rs_groups_compute(s, names, runs, three, 2, &opt, &g, &err), RS_EINVAL);
    print_message("  %s\n", err.msg);
    assert_non_null(strstr(err.msg, "not on the same images and views: view seed 42 vs 43"));

    /* Never, even forced: one checkpoint twice, one run in two groups, a missing run. */
    opt.force = true;
    int64_t twice[3] = {vmoe[0], vmoe[1], vmoe[0]};
    one[0] = twice;
    assert_int_equal(rs_groups_compute(s, names, one, three, 1, &opt, &g, &err), RS_EINVAL);
    print_message("  %s\n", err.msg);
    assert_non_null(strstr(err.msg, "is twice in group vmoe"));
    int64_t same_model[3] = {vmoe[0], vmoe[1], again};
    one[0] = same_model;
    assert_int_equal(rs_groups_compute(s, names, one, three, 1, &opt, &g, &err), RS_EINVAL);
    print_message("  %s\n", err.msg);
    assert_non_null(strstr(err.msg, "are the same checkpoint"));
    runs[1] = vmoe;
    assert_int_equal(rs_groups_compute(s, names, runs, three, 2, &opt, &g, &err), RS_EINVAL);
    print_message("  %s\n", err.msg);
    assert_non_null(strstr(err.msg, "is in group vmoe and in group prc"));
    int64_t missing[3] = {prc[0], prc[1], 99};
    runs[1] = missing;
    assert_int_equal(rs_groups_compute(s, names, runs, three, 2, &opt, &g, &err), RS_EINVAL);
    print_message("  %s\n", err.msg);
    assert_non_null(strstr(err.msg, "no run 99"));
    rs_store_close(s);
}

/* ---- provenance in the config ---------------------------------------------------------------- */

static const char base_config[] =
    "{\"image_size\": [8, 8], \"channels\": 1, \"patch_size\": 4, \"hidden\": 8, \"depth\": 2, \"heads\": 2,"
    " \"mlp_dim\": 16, \"num_classes\": 3, \"moe_layers\": [1], \"num_experts\": 4, \"top_k\": 2,"
    " \"classifier\": \"token\", \"layer_norm_eps\": 1e-6, \"gelu\": \"erf\", \"mean\": [0.5], \"std\": [0.5],"
    " \"representation\": false";

static int parse_with(const char *extra, rs_config *cfg, rs_error *err)
{
    char text[1024];
    snprintf(text, sizeof text, "%s%s}", base_config, extra);
    return rs_config_parse(text, cfg, err);
}

static void test_config_provenance(void **state)
{
    (void)state;
    rs_config cfg;
    rs_error err = {0};
    assert_int_equal(parse_with("", &cfg, &err), 0);
    assert_string_equal(cfg.method, "");
    assert_int_equal(cfg.train_seed, -1);
    rs_config_free(&cfg);
    assert_int_equal(parse_with(", \"method\": \"jsd\", \"train_seed\": 2", &cfg, &err), 0);
    assert_string_equal(cfg.method, "jsd");
    assert_int_equal(cfg.train_seed, 2);
    rs_config_free(&cfg);
    static const char *const bad[] = {", \"method\": 3", ", \"method\": \"\"", ", \"method\": \"a b\"",
                                      ", \"method\": \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"",
                                      ", \"train_seed\": -1", ", \"train_seed\": 1.5", ", \"train_seed\": \"0\""};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        assert_int_equal(parse_with(bad[i], &cfg, &err), RS_EFORMAT);
        assert_true(strstr(err.msg, "config: method") || strstr(err.msg, "config: train_seed"));
    }
}

/* The method of a run: the stored config's, else the file name's. */
static void test_run_method(void **state)
{
    (void)state;
    rs_run_info r = {.model_path = "models/fmnist-prc-k2.safetensors", .train_seed = -1};
    assert_int_equal(rs_run_method(&r), RS_METHOD_PRC);
    r.model_path = "x/fmnist-tiny-vmoe-k2.safetensors";
    assert_int_equal(rs_run_method(&r), RS_METHOD_VMOE);
    r.model_path = "fmnist-ADV-k2.safetensors";
    assert_int_equal(rs_run_method(&r), RS_METHOD_ADV);
    r.model_path = "m/fmnist-advmoe-k2-s1.safetensors";
    assert_int_equal(rs_run_method(&r), RS_METHOD_ADVMOE);
    r.model_path = "net.safetensors";
    assert_int_equal(rs_run_method(&r), RS_METHOD_OTHER);
    r.method = "jsd"; /* the config wins over the name */
    assert_int_equal(rs_run_method(&r), RS_METHOD_JSD);
    r.method = "moe++";
    assert_int_equal(rs_run_method(&r), RS_METHOD_OTHER);
    assert_string_equal(rs_method_name(RS_METHOD_PRC), "V-MoE+PRC");
    assert_string_equal(rs_method_name(RS_METHOD_ADV), "V-MoE (adv.)");
    assert_string_equal(rs_method_key(RS_METHOD_JSD), "jsd");
    r.method = "advmoe";
    assert_int_equal(rs_run_method(&r), RS_METHOD_ADVMOE);
    assert_string_equal(rs_method_name(RS_METHOD_ADVMOE), "AdvMoE");
    assert_int_equal(rs_run_method(NULL), RS_METHOD_OTHER);
}

int main(void)
{
    if (tu_scratch_dir("groups", dir, sizeof dir)) {
        perror("mkdtemp");
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_t_interval),      cmocka_unit_test(test_t_pvalue),
        cmocka_unit_test(test_holm),            cmocka_unit_test(test_answer),
        cmocka_unit_test(test_t_coverage),
        cmocka_unit_test(test_groups_store),    cmocka_unit_test(test_groups_refused),
        cmocka_unit_test(test_config_provenance), cmocka_unit_test(test_run_method),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    tu_remove_dir(dir);
    return failed;
}

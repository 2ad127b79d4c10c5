/* Statistics tests: every figure on tiny stores built by hand, with the expected values
 * worked out in the comments (not taken from the code's output): agreement rates per layer
 * and overall, unmatched patches, a k = 1 model's Top-2 and load, tied gates, one image,
 * zero matched pairs ("n/a", no NaN), JSD / entropy / S / ‖S − I‖_F, accuracy, the
 * routing-vs-prediction change table, transitions and breakdowns; interval sanity (the
 * 95 % bootstrap interval covers a known rate in 90–99 % of 200 simulated stores);
 * McNemar against the formula; the paired comparison and its refusal of runs that are not
 * comparable; batch interference between two runs and its refusal of other jobs; the
 * heatmap's per-patch cells (stats/patch.h) against the run's statistics, bit for bit.
 * test_benchmark times rs_stats_compute and rs_stats_compare on a synthetic run of
 * RS_STATS_BENCH_IMAGES images (unset: skipped) × 2 views × 2 layers, T = 50 (class token
 * + 7×7 patches), E = 8. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <gsl/gsl_rng.h>
#include <sqlite3.h>

#include "stats/baselines.h"
#include "stats/interference.h"
#include "stats/patch.h"
#include "stats/stats.h"
#include "store/run.h"
#include "store/store.h"
#include "teststore.h"
#include "testutil.h"

static char dir[64];

static const char *scratch(const char *name)
{
    return tu_path(dir, name);
}

static double seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* ---- hand-made runs (tb: teststore.h) ------------------------------------------------------ */

static const char *const views_pair[] = {"crop:area=0.05-1,flip", "crop:area=0.05-1,flip", "noise:severity=5"};
static const char *const views_other[] = {"clean", "noise:severity=1", "noise:severity=5"};
static const char sha_a[] = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
static const char sha_b[] = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

static rs_stats *compute(const char *path, int64_t run, const rs_stats_options *opt)
{
    rs_store *s;
    rs_error err = {0};
    assert_int_equal(rs_store_open(path, true, &s, &err), 0);
    rs_stats *st = NULL;
    int rc = rs_stats_compute(s, run, opt, &st, &err);
    if (rc)
        print_message("  %s\n", err.msg);
    assert_int_equal(rc, 0);
    rs_store_close(s);
    return st;
}

static const rs_stats_agreement *ag(const rs_stats *st, int v, int l)
{
    return &st->agree[rs_stats_cell(st, v, l)];
}

static void expect_counts(const rs_stats_counts *c, int64_t pairs, int64_t top1, int64_t top2, int64_t top2u,
                          int64_t overlap2)
{
    assert_int_equal(c->pairs, pairs);
    assert_int_equal(c->top1, top1);
    assert_int_equal(c->top2, top2);
    assert_int_equal(c->top2u, top2u);
    assert_int_equal(c->overlap2, overlap2);
}

static void expect_rate(const rs_stats_rate *r, double value)
{
    assert_true(r->valid);
    assert_true(fabs(r->value - value) < 1e-12);
}

#define NEAR(x, y, tol) assert_true(fabs((double)(x) - (double)(y)) < (tol))

/* ---- agreement on one image ---------------------------------------------------------------- */

/* One image (label 5), views 0 and 1, two MoE layers, 4 patches + a class token, E = 4.
 * View 1's match map is {1, 0, -1, 3}: patch 0 of view 1 is patch 1 of view 0, patch 2
 * has no match.
 *   layer 0  view 0 patches: (0,1) (2,3) (1,0) (3,2)
 *            view 1 patches: j0 (2,3) vs ref p1 (2,3): top1 Y top2 Y unordered Y overlap 2
 *                            j1 (1,0) vs ref p0 (0,1): N N Y 2
 *                            j2 unmatched
 *                            j3 (3,0) vs ref p3 (3,2): Y N N 1
 *            -> pairs 3, top1 2, top2 1, unordered 2, overlap halves 5 (5/6)
 *   layer 1  view 0 all (0,1) (the default);
 *            view 1: j0 (2,3): N N N 0;  j1 (1,2): N N N 1;  j3 (0,1): Y Y Y 2
 *            -> pairs 3, top1 1, top2 1, unordered 1, overlap halves 3 (1/2)
 *   overall  pairs 6: Top-1 3/6, Top-2 2/6, unordered 3/6, overlap 8/12; unmatched 1 per layer.
 * The class tokens differ ((3,2) in view 1) and must not count.
 * Predictions: view 0 says 5 (right), view 1 says 3 -> prediction changed, and routing
 * changed (j1 at layer 0), so the change table of view 1 holds one image at [1][1]. */
static void test_one_image(void **state)
{
    (void)state;
    tb t = tb_new(1, 2, 2, 4, 1, 2, 4, 10);
    t.labels[0] = 5;
    t.pred[0] = 5, t.pred[1] = 3;
    tb_set_match(&t, 0, 1, (int[]){1, 0, -1, 3});
    tb_set_top(&t, 0, 0, 0, 0, 0, 1), tb_set_top(&t, 0, 0, 0, 1, 2, 3), tb_set_top(&t, 0, 0, 0, 2, 1, 0),
        tb_set_top(&t, 0, 0, 0, 3, 3, 2);
    tb_set_top(&t, 0, 1, 0, 0, 2, 3), tb_set_top(&t, 0, 1, 0, 1, 1, 0), tb_set_top(&t, 0, 1, 0, 2, 0, 1),
        tb_set_top(&t, 0, 1, 0, 3, 3, 0);
    tb_set_top(&t, 0, 1, 1, 0, 2, 3), tb_set_top(&t, 0, 1, 1, 1, 1, 2), tb_set_top(&t, 0, 1, 1, 2, 3, 2),
        tb_set_top(&t, 0, 1, 1, 3, 0, 1);
    tb_set_cls_top(&t, 0, 1, 0, 3, 2), tb_set_cls_top(&t, 0, 1, 1, 3, 2);
    const char *path = scratch("one.db");
    int64_t run = tb_write_run(&t, path, sha_a, 1, views_pair);
    rs_stats *st = compute(path, run, NULL);

    assert_int_equal(st->images, 1);
    assert_int_equal(st->resamples, RS_STATS_DEFAULT_RESAMPLES);
    expect_counts(&ag(st, 1, 0)->n, 3, 2, 1, 2, 5);
    expect_counts(&ag(st, 1, 1)->n, 3, 1, 1, 1, 3);
    expect_counts(&ag(st, 1, 2)->n, 6, 3, 2, 3, 8);
    expect_counts(&ag(st, 2, 2)->n, 6, 3, 2, 3, 8); /* all views = view 1 here */
    assert_int_equal(ag(st, 1, 0)->unmatched, 1);
    assert_int_equal(ag(st, 1, 2)->unmatched, 2);
    expect_rate(&ag(st, 1, 0)->rate[RS_STATS_TOP1], 2.0 / 3);
    expect_rate(&ag(st, 1, 0)->rate[RS_STATS_OVERLAP], 5.0 / 6);
    expect_rate(&ag(st, 1, 1)->rate[RS_STATS_TOP2_UNORDERED], 1.0 / 3);
    expect_rate(&ag(st, 1, 2)->rate[RS_STATS_TOP1], 0.5);
    expect_rate(&ag(st, 1, 2)->rate[RS_STATS_TOP2], 2.0 / 6);
    expect_rate(&ag(st, 1, 2)->rate[RS_STATS_TOP2_UNORDERED], 0.5);
    expect_rate(&ag(st, 1, 2)->rate[RS_STATS_OVERLAP], 8.0 / 12);
    /* The reference slot is empty. */
    assert_false(ag(st, 0, 0)->rate[RS_STATS_TOP1].valid);
    assert_int_equal(ag(st, 0, 2)->n.pairs, 0);

    /* Wilson for 3 of 6 at 95 %, z = 1.959964: z² = 3.841459, 1 + z²/n = 1.640243,
     * centre (0.5 + z²/12) / 1.640243 = 0.5, half = z / 1.640243 · sqrt(0.25/6 + z²/144)
     * = 1.194921 · 0.261426 = 0.312384 -> [0.187616, 0.812384]. */
    NEAR(ag(st, 1, 2)->rate[RS_STATS_TOP1].wilson_lo, 0.187616, 1e-5);
    NEAR(ag(st, 1, 2)->rate[RS_STATS_TOP1].wilson_hi, 0.812384, 1e-5);
    /* One image: every resample is that image, so the interval is the point. */
    const rs_stats_rate *r = &ag(st, 1, 2)->rate[RS_STATS_TOP1];
    assert_true(r->boot_valid);
    NEAR(r->boot_lo, 0.5, 1e-12);
    NEAR(r->boot_hi, 0.5, 1e-12);

    /* Transitions at layer 0: reference top-1 -> view top-1: 2->2, 0->1, 3->3. */
    const int64_t *tr = st->transition + (size_t)rs_stats_cell(st, 1, 0) * 16;
    assert_int_equal(tr[2 * 4 + 2], 1);
    assert_int_equal(tr[0 * 4 + 1], 1);
    assert_int_equal(tr[3 * 4 + 3], 1);
    int64_t sum = 0;
    for (int q = 0; q < 16; q++)
        sum += tr[q];
    assert_int_equal(sum, 3);
    /* Overall transitions add layer 1: 2->2, 0->1, 3->3, then 0->2, 0->1, 0->0. */
    const int64_t *tro = st->transition + (size_t)rs_stats_cell(st, 2, 2) * 16;
    assert_int_equal(tro[0 * 4 + 1], 2);
    assert_int_equal(tro[0 * 4 + 0], 1);
    /* By reference expert, layer 0: expert 2 agrees (1 of 1), expert 0 does not (0 of 1). */
    const rs_stats_counts *be = st->by_expert + (size_t)rs_stats_cell(st, 1, 0) * 4;
    expect_counts(&be[2], 1, 1, 1, 1, 2);
    expect_counts(&be[0], 1, 0, 0, 1, 2);
    expect_counts(&be[1], 0, 0, 0, 0, 0);
    /* By class: everything is class 5. */
    expect_counts(&st->by_class[(size_t)rs_stats_cell(st, 2, 2) * 10 + 5], 6, 3, 2, 3, 8);
    expect_counts(&st->by_class[(size_t)rs_stats_cell(st, 2, 2) * 10 + 4], 0, 0, 0, 0, 0);

    /* Accuracy: view 0 right, view 1 wrong; all views 1 of 2. */
    assert_true(st->accuracy[0].valid);
    NEAR(st->accuracy[0].value, 1, 1e-12);
    NEAR(st->accuracy[1].value, 0, 1e-12);
    assert_int_equal(st->accuracy[2].labelled, 2);
    assert_int_equal(st->accuracy[2].correct, 1);
    /* Change table of view 1: [routing changed][prediction changed]. */
    assert_int_equal(st->change[1 * 4 + 1 * 2 + 1], 1);
    assert_int_equal(st->change[1 * 4 + 0] + st->change[1 * 4 + 1] + st->change[1 * 4 + 2], 0);
    assert_int_equal(st->change_no_pairs[1], 0);
    rs_stats_free(st);
    tb_free(&t);
}

/* ---- Top-2 orders that agree in one place only ----------------------------------------------- */

/* One image, one layer, four patches, no class token, E = 4; view 0 routes every patch to
 * (a1, a2) = (1, 2), view 1 (identity match) to:
 *   j0 (3, 1): a1 == b2 but a2 != b1 — not the same pair in any order: N N N, overlap 1
 *   j1 (2, 3): a2 == b1 but a1 != b2 — the mirror case:                 N N N, overlap 1
 *   j2 (2, 1): the same pair swapped:                                   N N Y, overlap 2
 *   j3 (1, 3): Top-1 only:                                              Y N N, overlap 1
 * -> pairs 4, top1 1, top2 0, unordered 1 (j2 alone), overlap halves 5. The order-agnostic
 * test must need both crossings (a1 == b2 and a2 == b1): j0 and j1 each have only one. */
static void test_top2_one_crossing(void **state)
{
    (void)state;
    tb t = tb_new(1, 2, 1, 4, 0, 2, 4, 10);
    for (int j = 0; j < 4; j++)
        tb_set_top(&t, 0, 0, 0, j, 1, 2);
    tb_set_top(&t, 0, 1, 0, 0, 3, 1), tb_set_top(&t, 0, 1, 0, 1, 2, 3), tb_set_top(&t, 0, 1, 0, 2, 2, 1),
        tb_set_top(&t, 0, 1, 0, 3, 1, 3);
    const char *path = scratch("crossing.db");
    int64_t run = tb_write_run(&t, path, sha_a, 1, views_pair);
    rs_stats *st = compute(path, run, &(rs_stats_options){.resamples = -1});
    expect_counts(&ag(st, 1, 0)->n, 4, 1, 0, 1, 5);
    expect_counts(&ag(st, 2, 1)->n, 4, 1, 0, 1, 5); /* all views, all layers */
    expect_rate(&ag(st, 1, 0)->rate[RS_STATS_TOP2_UNORDERED], 0.25);
    /* Every pair has reference expert 1, so its breakdown holds them all. */
    expect_counts(&st->by_expert[(size_t)rs_stats_cell(st, 1, 0) * 4 + 1], 4, 1, 0, 1, 5);
    rs_stats_free(st);
    tb_free(&t);
}

/* ---- a k = 1 model, ties, load -------------------------------------------------------------- */

/* k = 1 (R = 2 recorded), E = 3, two patches, no class token, one layer, two images.
 * Image 0: ref p0 (0,1), p1 (2,0); view 1 (identity match): j0 (0,2): Y N N overlap 1;
 *   j1 (2,0): Y Y Y 2.
 * Image 1: tied gates: ref p0 recorded (1,2) with gates 0.5/0.5 (ties go to the lower
 *   index), view 1 p0 recorded (1,2) too: Y Y Y 2; p1 unmatched.
 * -> pairs 3, top1 3, top2 2, unordered 2, overlap halves 5.
 * Load with top_k = 1 counts slot 0 only: view 0 (image 0: 0, 2; image 1: 1, 0 (default
 *   (0,1) at p1)) = [2, 1, 1]; mean 4/3, deviations 2/3, −1/3, −1/3, variance
 *   (4/9 + 1/9 + 1/9) / 3 = 2/9, sd 0.471405, cv 0.471405 / 1.333333 = 0.353553.
 * The same records as a k = 2 run: view 0 counts both slots: (0,1),(2,0),(1,2),(0,1) =
 *   [3, 3, 2]. */
static void test_k1_ties_load(void **state)
{
    (void)state;
    tb t = tb_new(2, 2, 1, 2, 0, 2, 3, 4);
    tb_set_top(&t, 0, 0, 0, 0, 0, 1), tb_set_top(&t, 0, 0, 0, 1, 2, 0);
    tb_set_top(&t, 0, 1, 0, 0, 0, 2), tb_set_top(&t, 0, 1, 0, 1, 2, 0);
    tb_set_top(&t, 1, 0, 0, 0, 1, 2), tb_set_top(&t, 1, 1, 0, 0, 1, 2);
    t.gate[tb_row(&t, 1, 0, 0, 0) * 2] = t.gate[tb_row(&t, 1, 0, 0, 0) * 2 + 1] = 0.5f;
    t.gate[tb_row(&t, 1, 1, 0, 0) * 2] = t.gate[tb_row(&t, 1, 1, 0, 0) * 2 + 1] = 0.5f;
    tb_set_match(&t, 1, 1, (int[]){0, -1});
    const char *path = scratch("k1.db");
    t.k = 1;
    int64_t run = tb_write_run(&t, path, sha_a, 1, views_pair);
    t.k = 2;
    int64_t run_k2 = tb_write_run(&t, path, sha_b, 1, views_pair);

    rs_stats *st = compute(path, run, NULL);
    assert_int_equal(st->top_k, 1);
    expect_counts(&ag(st, 1, 0)->n, 3, 3, 2, 2, 5);
    expect_rate(&ag(st, 1, 1)->rate[RS_STATS_TOP1], 1);
    expect_rate(&ag(st, 1, 1)->rate[RS_STATS_TOP2], 2.0 / 3);
    expect_rate(&ag(st, 1, 1)->rate[RS_STATS_OVERLAP], 5.0 / 6);
    assert_int_equal(ag(st, 1, 1)->unmatched, 1);
    const int64_t *load = st->load + (size_t)rs_stats_cell(st, 0, 0) * 3;
    assert_int_equal(load[0], 2);
    assert_int_equal(load[1], 1);
    assert_int_equal(load[2], 1);
    assert_true(st->load_cv[rs_stats_cell(st, 0, 0)].valid);
    NEAR(st->load_cv[rs_stats_cell(st, 0, 0)].mean, 0.353553, 1e-6);
    /* Image 1's view 1: no routing change, image 0's: none either (top-1 equal). */
    assert_int_equal(st->change[1 * 4 + 0], 2);
    rs_stats_free(st);

    st = compute(path, run_k2, NULL);
    assert_int_equal(st->top_k, 2);
    load = st->load + (size_t)rs_stats_cell(st, 0, 0) * 3;
    assert_int_equal(load[0], 3);
    assert_int_equal(load[1], 3);
    assert_int_equal(load[2], 2);
    rs_stats_free(st);

    /* A run of a k above record_k cannot be recorded; a missing run is an error. */
    rs_store *s;
    rs_error err = {0};
    assert_int_equal(rs_store_open(path, false, &s, &err), 0);
    t.k = 3;
    rs_run_spec spec = tb_spec(&t, "cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc", 1, views_pair);
    int64_t id;
    assert_int_equal(rs_store_begin_run(s, &spec, &id, &err), RS_EINVAL);
    assert_non_null(strstr(err.msg, "top_k"));
    assert_int_equal(rs_stats_compute(s, run_k2 + 7, NULL, &st, &err), RS_EINVAL); /* no such run */
    assert_null(st);
    rs_store_close(s);
    tb_free(&t);
}

/* ---- zero matched pairs --------------------------------------------------------------------- */

static void expect_no_nan(const rs_stats *st)
{
    int cells = (st->views + 1) * (st->layers + 1);
    for (int c = 0; c < cells; c++) {
        for (int m = 0; m < RS_STATS_NUM_RATES; m++) {
            const rs_stats_rate *r = &st->agree[c].rate[m];
            assert_false(isnan(r->value) || isnan(r->boot_lo) || isnan(r->boot_hi) || isnan(r->wilson_lo) ||
                         isnan(r->wilson_hi));
        }
        assert_false(isnan(st->jsd[c].mean) || isnan(st->entropy[c].mean) || isnan(st->load_cv[c].mean));
    }
    for (int l = 0; l < st->layers; l++)
        assert_false(isnan(st->prc_norm[l].mean));
    for (int v = 0; v <= st->views; v++)
        assert_false(isnan(st->accuracy[v].value));
}

static void test_zero_pairs(void **state)
{
    (void)state;
    tb t = tb_new(3, 2, 2, 3, 1, 2, 4, 10);
    for (int i = 0; i < 3; i++)
        tb_set_match(&t, i, 1, (int[]){-1, -1, -1});
    const char *path = scratch("zero.db");
    int64_t run = tb_write_run(&t, path, sha_a, 1, views_pair);
    rs_stats *st = compute(path, run, NULL);
    for (int l = 0; l <= 2; l++)
        for (int m = 0; m < RS_STATS_NUM_RATES; m++) {
            const rs_stats_rate *r = &ag(st, 1, l)->rate[m];
            assert_false(r->valid);
            assert_false(r->boot_valid);
            assert_true(r->value == 0);
        }
    assert_int_equal(ag(st, 1, 2)->unmatched, 3 * 3 * 2);
    assert_false(st->jsd[rs_stats_cell(st, 1, 2)].valid);
    assert_false(st->prc_norm[0].valid);
    assert_false(st->accuracy[0].valid); /* no labels */
    assert_int_equal(st->change_no_pairs[1], 3);
    /* Entropy and load still exist: uniform over 4 experts = 2 bits. */
    assert_true(st->entropy[rs_stats_cell(st, 2, 2)].valid);
    NEAR(st->entropy[rs_stats_cell(st, 2, 2)].mean, 2, 1e-9);
    expect_no_nan(st);
    double x;
    assert_false(rs_stats_counts_rate(&ag(st, 1, 2)->n, RS_STATS_TOP1, &x));
    assert_true(x == 0);
    rs_stats_free(st);

    /* A single-view run has nothing to compare at all. */
    tb one = tb_new(2, 1, 1, 2, 0, 2, 2, 2);
    const char *p1 = scratch("single.db");
    run = tb_write_run(&one, p1, sha_a, 1, views_pair);
    st = compute(p1, run, NULL);
    assert_false(ag(st, 1, 1)->rate[RS_STATS_TOP1].valid);
    assert_int_equal(st->resamples, 0);
    expect_no_nan(st);
    rs_stats_free(st);
    tb_free(&one);
    tb_free(&t);
}

/* Records that break the run's contract (here a label outside the run's classes, written
 * behind the store's back) fail with one line naming the database and run. */
static void test_bad_records(void **state)
{
    (void)state;
    tb t = tb_new(1, 2, 1, 2, 0, 2, 2, 2);
    const char *path = scratch("bad.db");
    int64_t run = tb_write_run(&t, path, sha_a, 1, views_pair);
    tb_free(&t);
    sqlite3 *db;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "UPDATE samples SET label = 7", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    rs_store *s;
    rs_error err = {0};
    assert_int_equal(rs_store_open(path, true, &s, &err), 0);
    rs_stats *st = NULL;
    rs_stats_options opt = {.name = path};
    int rc = rs_stats_compute(s, run, &opt, &st, &err);
    print_message("  %s\n", err.msg);
    assert_int_equal(rc, RS_EFORMAT);
    assert_null(st);
    assert_true(strncmp(err.msg, path, strlen(path)) == 0);
    assert_non_null(strstr(err.msg, "run 1"));
    assert_non_null(strstr(err.msg, "label 7"));
    opt.level = 1.5; /* bad options */
    assert_int_equal(rs_stats_compute(s, run, &opt, &st, &err), RS_EINVAL);
    rs_store_close(s);
}

/* ---- JSD, entropy, S ------------------------------------------------------------------------ */

/* One image, E = 2, two patches, no class token, identity match.
 *   view 0: p0 r = (1, 0), p1 r = (0.5, 0.5);  view 1: both (0.5, 0.5).
 * Entropy (bits): view 0 tokens 0 and 1 -> mean 0.5; view 1: 1 and 1 -> 1; all views 0.75.
 * JSD: pair 0: M = (0.75, 0.25), H(M) = 0.75·log2(4/3) + 0.25·2 = 0.311278 + 0.5 = 0.811278,
 *   JSD = H(M) − (H(P) + H(Q))/2 = 0.811278 − 0.5 = 0.311278; pair 1: P = Q -> 0.
 *   Mean 0.155639.
 * S = (E/N) Σ r_B r_Aᵀ, E = 2, N = 2 (rows: view 1's expert, columns: view 0's):
 *   pair 0: (0.5,0.5)ᵀ(1,0) = [[0.5,0],[0.5,0]]; pair 1: all 0.25.
 *   S = [[0.75, 0.25], [0.75, 0.25]]; S − I = [[−0.25, 0.25], [0.75, −0.75]];
 *   ‖S − I‖_F = sqrt(0.0625 + 0.0625 + 0.5625 + 0.5625) = sqrt(1.25) = 1.118034.
 * A second layer holds one-hot, consistent, balanced routing: p0 (1,0)/(1,0), p1
 *   (0,1)/(0,1) -> S = I, ‖S − I‖_F = 0, JSD 0, entropy 0. */
static void test_divergences(void **state)
{
    (void)state;
    tb t = tb_new(1, 2, 2, 2, 0, 2, 2, 2);
    tb_set_probs(&t, 0, 0, 0, 0, (float[]){1, 0});
    tb_set_probs(&t, 0, 0, 0, 1, (float[]){0.5f, 0.5f});
    tb_set_probs(&t, 0, 1, 0, 0, (float[]){0.5f, 0.5f});
    tb_set_probs(&t, 0, 1, 0, 1, (float[]){0.5f, 0.5f});
    for (int v = 0; v < 2; v++) {
        tb_set_probs(&t, 0, v, 1, 0, (float[]){1, 0});
        tb_set_probs(&t, 0, v, 1, 1, (float[]){0, 1});
    }
    const char *path = scratch("div.db");
    int64_t run = tb_write_run(&t, path, sha_a, 1, views_pair);
    rs_stats *st = compute(path, run, NULL);
    NEAR(st->entropy[rs_stats_cell(st, 0, 0)].mean, 0.5, 1e-9);
    NEAR(st->entropy[rs_stats_cell(st, 1, 0)].mean, 1.0, 1e-9);
    NEAR(st->entropy[rs_stats_cell(st, 2, 0)].mean, 0.75, 1e-9);
    NEAR(st->entropy[rs_stats_cell(st, 1, 1)].mean, 0, 1e-9);
    NEAR(st->jsd[rs_stats_cell(st, 1, 0)].mean, 0.155639, 1e-6);
    assert_int_equal(st->jsd[rs_stats_cell(st, 1, 0)].n, 2);
    NEAR(st->jsd[rs_stats_cell(st, 1, 1)].mean, 0, 1e-9);
    /* Overall JSD: (0.311278 + 0 + 0 + 0) / 4 = 0.0778195. */
    NEAR(st->jsd[rs_stats_cell(st, 2, 2)].mean, 0.0778195, 1e-6);
    const double *s0 = st->prc_s;
    NEAR(s0[0], 0.75, 1e-6);
    NEAR(s0[1], 0.25, 1e-6);
    NEAR(s0[2], 0.75, 1e-6);
    NEAR(s0[3], 0.25, 1e-6);
    assert_true(st->prc_norm[0].valid);
    NEAR(st->prc_norm[0].mean, 1.118034, 1e-6);
    NEAR(st->prc_norm[1].mean, 0, 1e-9);
    expect_no_nan(st);
    rs_stats_free(st);
    tb_free(&t);
}

/* ---- interval sanity ------------------------------------------------------------------------ */

static uint64_t rng_state;
static double rnd(void) /* splitmix64 -> [0,1) */
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return (double)((z ^ (z >> 31)) >> 11) * 0x1p-53;
}

/* 200 simulated stores of 60 images; image i has 1..8 matched patches (uniform) and its
 * own agreement probability p_i uniform in [0.5, 0.9] (images differ, as real ones do),
 * so the micro-average Top-1 rate has expectation 0.7. The 95 % bootstrap interval over
 * images must contain 0.7 in 90–99 % of the simulations. */
static void test_bootstrap_coverage(void **state)
{
    (void)state;
    const int sims = 200, N = 60, Np = 8;
    const double truth = 0.7;
    int covered = 0, wilson_covered = 0;
    rng_state = 12345;
    for (int s = 0; s < sims; s++) {
        tb t = tb_new(N, 2, 1, Np, 0, 2, 4, 2);
        for (int i = 0; i < N; i++) {
            int n = 1 + (int)(rnd() * Np);
            double p = 0.5 + 0.4 * rnd();
            int m[8];
            for (int j = 0; j < Np; j++) {
                m[j] = j < n ? j : -1;
                if (rnd() >= p)
                    tb_set_top(&t, i, 1, 0, j, 2, 3); /* disagrees with view 0's (0,1) */
            }
            tb_set_match(&t, i, 1, m);
        }
        const char *path = scratch("sim.db");
        unlink(path);
        int64_t run = tb_write_run(&t, path, sha_a, 1, views_pair);
        rs_stats_options opt = {.seed = (uint64_t)s};
        rs_stats *st = compute(path, run, &opt);
        const rs_stats_rate *r = &ag(st, 1, 1)->rate[RS_STATS_TOP1];
        assert_true(r->boot_valid);
        assert_true(r->boot_lo <= r->value && r->value <= r->boot_hi);
        covered += r->boot_lo <= truth && truth <= r->boot_hi;
        wilson_covered += r->wilson_lo <= truth && truth <= r->wilson_hi;
        rs_stats_free(st);
        tb_free(&t);
        char wal[1200];
        snprintf(wal, sizeof wal, "%s-wal", path), unlink(wal);
        snprintf(wal, sizeof wal, "%s-shm", path), unlink(wal);
        unlink(path);
    }
    print_message("  bootstrap covers %d/%d, Wilson (patches independent) %d/%d\n", covered, sims, wilson_covered,
                  sims);
    assert_true(covered >= 180 && covered <= 198);
}

/* ---- exact bootstrap percentiles ----------------------------------------------------------- */

/* The percentile rule itself on values whose quantiles fall on data points: 0, 1, ..., 100
 * (shuffled), at 90 % the 5th and 95th percentiles, 5 and 95; at 50 %, 25 and 75. */
static void test_percentile_exact(void **state)
{
    (void)state;
    double x[101];
    for (int i = 0; i <= 100; i++)
        x[i] = (double)((i * 37) % 101); /* 37 is prime to 101: a permutation of 0..100 */
    bool valid;
    double lo, hi;
    rs_stats_percentile(x, 101, 0.9, &valid, &lo, &hi);
    assert_true(valid);
    NEAR(lo, 5, 1e-9);
    NEAR(hi, 95, 1e-9);
    rs_stats_percentile(x, 101, 0.5, &valid, &lo, &hi);
    NEAR(lo, 25, 1e-9);
    NEAR(hi, 75, 1e-9);
}

/* Two images, one matched pair each: image 0's agrees at Top-1, image 1's does not. A
 * resample draws two images with replacement, so its Top-1 rate is 0 (image 1 twice,
 * probability 1/4), 1/2 (one of each, 1/2) or 1 (image 0 twice, 1/4). Over 4000 replicates
 * the empirical quantile q is 0 for q < ~1/4 and 1 for q > ~3/4, 1/2 between, with the
 * counts of each value within ±5 % of their expectation (binomial sd 0.7 %), so:
 *   level 0.6:  [q(0.2), q(0.8)]   = [0, 1]
 *   level 0.2:  [q(0.4), q(0.6)]   = [1/2, 1/2]
 *   level 0.95: [q(0.025), q(0.975)] = [0, 1]
 * (An upper bound taken at q(level) would give 1/2 at level 0.6 and 0 at level 0.2; a
 * lower one at q(1 − level), 1/2 at level 0.6.) The same for rs_stats_boot_ratio with the
 * counts as numerator and denominator. */
static void test_bootstrap_exact_two_images(void **state)
{
    (void)state;
    tb t = tb_new(2, 2, 1, 1, 0, 2, 4, 2);
    tb_set_top(&t, 1, 1, 0, 0, 2, 3);
    const char *path = scratch("boot2.db");
    int64_t run = tb_write_run(&t, path, sha_a, 1, views_pair);
    static const struct {
        double level, lo, hi;
    } want[] = {{0.6, 0, 1}, {0.2, 0.5, 0.5}, {0.95, 0, 1}};
    const int32_t num[2] = {1, 0}, den[2] = {1, 1};
    for (size_t i = 0; i < sizeof want / sizeof *want; i++) {
        rs_stats_options opt = {.resamples = 4000, .seed = 17 + i, .level = want[i].level};
        rs_stats *st = compute(path, run, &opt);
        const rs_stats_rate *r = &ag(st, 1, 0)->rate[RS_STATS_TOP1];
        expect_rate(r, 0.5);
        assert_true(r->boot_valid);
        if (fabs(r->boot_lo - want[i].lo) > 1e-12 || fabs(r->boot_hi - want[i].hi) > 1e-12)
            fail_msg("level %g: bootstrap [%g, %g], want [%g, %g]", want[i].level, r->boot_lo, r->boot_hi,
                     want[i].lo, want[i].hi);
        rs_stats_free(st);
        rs_stats_rate ratio = {0};
        rs_error err = {0};
        assert_int_equal(rs_stats_boot_ratio(num, den, 2, 4000, 17 + i, want[i].level, &ratio, &err), 0);
        assert_true(ratio.boot_valid);
        if (fabs(ratio.boot_lo - want[i].lo) > 1e-12 || fabs(ratio.boot_hi - want[i].hi) > 1e-12)
            fail_msg("level %g: ratio bootstrap [%g, %g], want [%g, %g]", want[i].level, ratio.boot_lo,
                     ratio.boot_hi, want[i].lo, want[i].hi);
    }
    tb_free(&t);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Quantile Q of N sorted values by linear interpolation between order statistics
 * (Hyndman & Fan's type 7: position Q (N − 1), counted from 0). */
static double quantile_sorted(const double *x, size_t n, double q)
{
    double h = q * (double)(n - 1);
    size_t i = (size_t)floor(h);
    return i + 1 < n ? x[i] + (h - (double)i) * (x[i + 1] - x[i]) : x[n - 1];
}

/* rs_stats_boot_ratio against the draw its header states, computed here: RESAMPLES
 * replicates, each N draws of gsl_rng_uniform_int(N) from mt19937 seeded with SEED,
 * replicates with a zero denominator left out, then the ((1 − level)/2, (1 + level)/2)
 * quantiles of the replicate ratios. Seven images of uneven counts, levels 0.95 and 0.6. */
static void test_boot_ratio_fixed_seed(void **state)
{
    (void)state;
    enum { N = 7, B = 500 };
    const int32_t num[N] = {3, 0, 2, 5, 1, 4, 0}, den[N] = {5, 2, 4, 6, 3, 5, 0};
    const uint64_t seed = 11;
    double vals[B];
    size_t nv = 0;
    gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
    assert_non_null(rng);
    gsl_rng_set(rng, (unsigned long)seed);
    for (int b = 0; b < B; b++) {
        double a = 0, z = 0;
        for (int d = 0; d < N; d++) {
            unsigned long i = gsl_rng_uniform_int(rng, N);
            a += num[i], z += den[i];
        }
        if (z > 0)
            vals[nv++] = a / z;
    }
    gsl_rng_free(rng);
    qsort(vals, nv, sizeof *vals, cmp_double);
    const double levels[2] = {0.95, 0.6};
    for (int i = 0; i < 2; i++) {
        double lo = quantile_sorted(vals, nv, (1 - levels[i]) / 2), hi = quantile_sorted(vals, nv, (1 + levels[i]) / 2);
        rs_stats_rate r = {0};
        rs_error err = {0};
        assert_int_equal(rs_stats_boot_ratio(num, den, N, B, seed, levels[i], &r, &err), 0);
        assert_true(r.boot_valid);
        if (fabs(r.boot_lo - lo) > 1e-12 || fabs(r.boot_hi - hi) > 1e-12)
            fail_msg("level %g: bootstrap [%.15g, %.15g], want [%.15g, %.15g]", levels[i], r.boot_lo, r.boot_hi, lo,
                     hi);
        assert_true(lo < hi); /* the interval has width: the two quantiles are told apart */
    }
}

/* ---- McNemar -------------------------------------------------------------------------------- */

/* chi2 = (|b − c| − 1)² / (b + c); for 1 dof, Q(x) = erfc(sqrt(x/2)).
 *   b = 15, c = 5: 9² / 20 = 4.05, p = erfc(sqrt(2.025)) = erfc(1.423025) = 0.044171.
 *   b = 3, c = 3: 0 (clamped), p = 1.   b = c = 0: p = 1.   b = 1, c = 0: 0, p = 1.
 *   b = 0, c = 30: 29² / 30 = 28.033333, p = erfc(sqrt(14.016667)) = 1.19e-7. */
static void test_mcnemar(void **state)
{
    (void)state;
    double chi2, p;
    rs_error err = {0};
    assert_int_equal(rs_stats_mcnemar_test(15, 5, &chi2, &p, &err), 0);
    NEAR(chi2, 4.05, 1e-12);
    NEAR(p, erfc(sqrt(4.05 / 2)), 1e-10);
    NEAR(p, 0.044171, 1e-5);
    assert_int_equal(rs_stats_mcnemar_test(3, 3, &chi2, &p, &err), 0);
    NEAR(chi2, 0, 1e-12);
    NEAR(p, 1, 1e-12);
    assert_int_equal(rs_stats_mcnemar_test(0, 0, &chi2, &p, &err), 0);
    NEAR(p, 1, 1e-12);
    assert_int_equal(rs_stats_mcnemar_test(1, 0, &chi2, &p, &err), 0);
    NEAR(chi2, 0, 1e-12);
    assert_int_equal(rs_stats_mcnemar_test(0, 30, &chi2, &p, &err), 0);
    NEAR(chi2, 841.0 / 30, 1e-12);
    NEAR(p, erfc(sqrt(841.0 / 60)), 1e-12);
    assert_int_equal(rs_stats_mcnemar_test(-1, 3, &chi2, &p, &err), RS_EINVAL);
}

/* ---- paired comparison ---------------------------------------------------------------------- */

/* Two images, one layer, two patches (identity match), E = 4; view 0 routes (0,1) everywhere.
 * Run A: image 0 both patches agree; image 1 p0 agrees, p1 does not  -> Top-1 3/4.
 * Run B: image 0 p0 disagrees, p1 agrees; image 1 both disagree      -> Top-1 1/4.
 * Shared pairs 4: A agrees & B not at (0,0), (1,0): b = 2; the reverse: c = 0.
 *   chi2 = (2 − 1)² / 2 = 0.5, p = erfc(0.5) = 0.479500.
 * Paired bootstrap: a replicate holds image 0 twice, image 1 twice or each once, and the
 * difference B − A is −0.5 in all three (A 1 / 0.5 / 0.75, B 0.5 / 0 / 0.25), so its
 * interval is [−0.5, −0.5]. */
static void build_pair(tb *ta, tb *tb_)
{
    *ta = tb_new(2, 2, 1, 2, 1, 2, 4, 3);
    *tb_ = tb_new(2, 2, 1, 2, 0, 2, 4, 3); /* B: a "gap" model without class token */
    tb_set_top(ta, 1, 1, 0, 1, 2, 3);
    tb_set_top(tb_, 0, 1, 0, 0, 2, 3);
    tb_set_top(tb_, 1, 1, 0, 0, 2, 3);
    tb_set_top(tb_, 1, 1, 0, 1, 3, 2);
}

/* rs_run_difference: one test of what two runs share, in the three forms its callers print
 * (compare's list, the groups' first difference, a report's sentence). */
static void test_run_difference(void **state)
{
    (void)state;
    char *va[2] = {"clean", "crop:area=0.05-1,flip"}, *vb[2] = {"clean", "noise:sigma=0.1"};
    rs_run_info a = {.data = "fashion-mnist:test", .protocol = "pair", .view_specs = va, .num_views = 2,
                     .offset = 0, .count = 60, .images_done = 60, .num_layers = 2, .patches = 16, .seed = 42};
    rs_run_info b = a;
    char buf[256];
    assert_int_equal(rs_run_difference(&a, &b, ~0u, RS_RUN_DIFF_LIST, buf, sizeof buf), 0);
    assert_string_equal(buf, "");

    b.seed = 43;
    assert_int_equal(rs_run_difference(&a, &b, RS_RUN_DIFF_IDENTITY, RS_RUN_DIFF_LIST, buf, sizeof buf),
                     RS_RUN_DIFF_SEED);
    assert_string_equal(buf, "seed 42 vs 43");
    rs_run_difference(&a, &b, RS_RUN_DIFF_IDENTITY, RS_RUN_DIFF_FIRST, buf, sizeof buf);
    assert_string_equal(buf, "view seed 42 vs 43");
    rs_run_difference(&a, &b, RS_RUN_DIFF_IDENTITY, RS_RUN_DIFF_SENTENCE, buf, sizeof buf);
    assert_string_equal(buf, "seed differs (42 vs 43: different augmented views)");
    /* fields not asked for are not looked at */
    assert_int_equal(rs_run_difference(&a, &b, RS_RUN_DIFF_DATA, RS_RUN_DIFF_LIST, NULL, 0), 0);

    /* the list says everything in the fields' order; the other forms the first */
    b.count = 20, b.images_done = 20, b.view_specs = vb;
    assert_int_equal(rs_run_difference(&a, &b, RS_RUN_DIFF_IDENTITY | RS_RUN_DIFF_IMAGES, RS_RUN_DIFF_LIST, buf,
                                       sizeof buf),
                     RS_RUN_DIFF_SLICE | RS_RUN_DIFF_IMAGES | RS_RUN_DIFF_VIEWS | RS_RUN_DIFF_SEED);
    assert_string_equal(buf, "count 60 vs 20; images 0..59 vs 0..19; view 1 spec 'crop:area=0.05-1,flip' vs "
                             "'noise:sigma=0.1'; seed 42 vs 43");
    rs_run_difference(&a, &b, RS_RUN_DIFF_IMAGES | RS_RUN_DIFF_VIEWS, RS_RUN_DIFF_FIRST, buf, sizeof buf);
    assert_string_equal(buf, "images 0..59 vs 0..19");
    rs_run_difference(&a, &b, RS_RUN_DIFF_IDENTITY, RS_RUN_DIFF_SENTENCE, buf, sizeof buf);
    assert_string_equal(buf, "data differs (fashion-mnist:test [0..60) vs fashion-mnist:test [0..20))");
    /* a short buffer is cut, never overrun */
    char small[12];
    rs_run_difference(&a, &b, RS_RUN_DIFF_IDENTITY, RS_RUN_DIFF_LIST, small, sizeof small);
    assert_string_equal(small, "count 60 vs");
}

/* rs_baseline_of on hand-made runs: methods against V-MoE of their k and training seed, a
 * V-MoE run only against its own checkpoint, never across k or protocol. */
static void test_baselines(void **state)
{
    (void)state;
    rs_run_info r[7] = {
        {.protocol = "pair", .top_k = 1, .model_sha256 = "a", .method = "vmoe", .train_seed = 0},
        {.protocol = "pair", .top_k = 1, .model_sha256 = "b", .method = "prc", .train_seed = 0},
        {.protocol = "pair", .top_k = 2, .model_sha256 = "c", .method = "prc", .train_seed = 0},
        {.protocol = "pair", .top_k = 1, .model_sha256 = "d", .method = "vmoe", .train_seed = 1},
        {.protocol = "pair", .top_k = 1, .model_sha256 = "e", .method = "prc", .train_seed = 1},
        {.protocol = "noise", .top_k = 1, .model_sha256 = "b", .method = "prc", .train_seed = 0},
        {.protocol = "pair", .top_k = 1, .model_sha256 = "a", .method = "vmoe", .train_seed = 0},
    };
    assert_int_equal(rs_baseline_of(r, 0), -1);
    assert_int_equal(rs_baseline_of(r, 1), 0);  /* PRC seed 0 against V-MoE seed 0 */
    assert_int_equal(rs_baseline_of(r, 2), -1); /* no run of k=2 before it */
    assert_int_equal(rs_baseline_of(r, 3), -1); /* another V-MoE seed is not a method */
    assert_int_equal(rs_baseline_of(r, 4), 3);  /* PRC seed 1 against V-MoE seed 1 */
    assert_int_equal(rs_baseline_of(r, 5), -1); /* no noise run before it */
    assert_int_equal(rs_baseline_of(r, 6), 0);  /* the same checkpoint again */
}

static void test_compare(void **state)
{
    (void)state;
    tb ta, tbb;
    build_pair(&ta, &tbb);
    const char *pa = scratch("cmp_a.db"), *pb = scratch("cmp_b.db");
    int64_t ra = tb_write_run(&ta, pa, sha_a, 42, views_pair);
    int64_t rb = tb_write_run(&tbb, pb, sha_b, 42, views_pair);
    int64_t rb_seed = tb_write_run(&tbb, pb, sha_b, 43, views_pair);
    int64_t rb_views = tb_write_run(&tbb, pb, sha_a, 42, views_other);
    tb short_run = tb_new(1, 2, 1, 2, 0, 2, 4, 3);
    int64_t rb_short = tb_write_run(&short_run, pb, sha_a, 42, views_pair);

    rs_store *sa, *sb;
    rs_error err = {0};
    assert_int_equal(rs_store_open(pa, true, &sa, &err), 0);
    assert_int_equal(rs_store_open(pb, true, &sb, &err), 0);
    rs_stats_options opt = {.seed = 7, .name = pa, .name_b = pb};
    rs_stats_comparison *cmp = NULL;
    int rc = rs_stats_compare(sa, ra, sb, rb, &opt, &cmp, &err);
    if (rc)
        print_message("  %s\n", err.msg);
    assert_int_equal(rc, 0);
    assert_false(cmp->forced);
    const rs_stats *a = cmp->a, *b = cmp->b;
    expect_rate(&ag(a, 1, 1)->rate[RS_STATS_TOP1], 0.75);
    expect_rate(&ag(b, 1, 1)->rate[RS_STATS_TOP1], 0.25);
    const rs_stats_diff *d = &cmp->diff[rs_stats_cell(a, 1, 1) * RS_STATS_NUM_RATES + RS_STATS_TOP1];
    assert_true(d->valid && d->boot_valid);
    NEAR(d->value, -0.5, 1e-12);
    NEAR(d->boot_lo, -0.5, 1e-12);
    NEAR(d->boot_hi, -0.5, 1e-12);
    const rs_stats_mcnemar *mc = &cmp->mcnemar[rs_stats_cell(a, 2, 1)]; /* all views, all layers */
    assert_true(mc->valid);
    assert_int_equal(mc->pairs, 4);
    assert_int_equal(mc->b, 2);
    assert_int_equal(mc->c, 0);
    NEAR(mc->chi2, 0.5, 1e-12);
    NEAR(mc->p, erfc(0.5), 1e-10);
    assert_false(cmp->mcnemar[rs_stats_cell(a, 0, 0)].valid);

    /* A's figures equal a standalone computation with the same options. */
    rs_stats *alone = NULL;
    assert_int_equal(rs_stats_compute(sa, ra, &opt, &alone, &err), 0);
    const rs_stats_rate *x = &ag(alone, 2, 1)->rate[RS_STATS_TOP1], *y = &ag(a, 2, 1)->rate[RS_STATS_TOP1];
    assert_true(x->value == y->value && x->boot_lo == y->boot_lo && x->boot_hi == y->boot_hi);
    rs_stats_free(alone);
    rs_stats_comparison_free(cmp);

    /* Other seed: refused with both names, the runs and what differs. */
    cmp = NULL;
    assert_int_equal(rs_stats_compare(sa, ra, sb, rb_seed, &opt, &cmp, &err), RS_EINVAL);
    assert_null(cmp);
    print_message("  %s\n", err.msg);
    assert_non_null(strstr(err.msg, pa));
    assert_non_null(strstr(err.msg, pb));
    assert_non_null(strstr(err.msg, "not comparable"));
    assert_non_null(strstr(err.msg, "seed 42 vs 43"));
    /* Other view specs: refused. */
    assert_int_equal(rs_stats_compare(sa, ra, sb, rb_views, &opt, &cmp, &err), RS_EINVAL);
    print_message("  %s\n", err.msg);
    assert_non_null(strstr(err.msg, "view 0 spec 'crop:area=0.05-1,flip' vs 'clean'"));
    /* Forced: goes on and says what differed. */
    opt.force = true;
    assert_int_equal(rs_stats_compare(sa, ra, sb, rb_seed, &opt, &cmp, &err), 0);
    assert_true(cmp->forced);
    assert_non_null(strstr(cmp->mismatch, "seed"));
    rs_stats_comparison_free(cmp);
    cmp = NULL;
    /* Different numbers of images cannot be paired, even forced. */
    assert_int_equal(rs_stats_compare(sa, ra, sb, rb_short, &opt, &cmp, &err), RS_EINVAL);
    print_message("  %s\n", err.msg);
    assert_null(cmp);
    rs_store_close(sa);
    rs_store_close(sb);
    tb_free(&short_run);
    tb_free(&ta);
    tb_free(&tbb);
}

/* ---- benchmark ------------------------------------------------------------------------------ */

static void test_benchmark(void **state)
{
    (void)state;
    const char *env = getenv("RS_STATS_BENCH_IMAGES");
    if (!env || atoi(env) <= 0) {
        print_message("  skipped (set RS_STATS_BENCH_IMAGES)\n");
        return;
    }
    const int N = atoi(env), chunk = 500, E = 8;
    const char *path = getenv("RS_STATS_BENCH_DB") ? getenv("RS_STATS_BENCH_DB") : scratch("bench.db");
    double t0 = seconds();
    rs_store *s;
    rs_error err = {0};
    int64_t run = 0;
    assert_int_equal(rs_store_open(path, false, &s, &err), 0);
    rs_run_info *runs = NULL;
    int nruns = 0;
    assert_int_equal(rs_store_list_runs(s, &runs, &nruns, &err), 0);
    for (int r = 0; r < nruns; r++) {
        if (runs[r].images_done == N && runs[r].tokens == 50)
            run = runs[r].id;
        rs_run_info_clear(&runs[r]);
    }
    free(runs);
    if (!run) {
        tb t = tb_new(chunk, 2, 2, 49, 1, 2, E, 10);
        rs_run_spec spec = tb_spec(&t, sha_a, 1, views_pair);
        spec.count = N;
        assert_int_equal(rs_store_begin_run(s, &spec, &run, &err), 0);
        rng_state = 99;
        for (int first = 0; first < N; first += chunk) {
            int n = N - first < chunk ? N - first : chunk;
            for (int i = 0; i < n; i++) {
                t.labels[i] = (first + i) % 10;
                for (int v = 0; v < 2; v++) {
                    t.pred[i * 2 + v] = (int)(rnd() * 10);
                    for (int j = 0; j < 49; j++)
                        t.match[((size_t)i * 2 + v) * 49 + j] = (int16_t)(v && rnd() < 0.2 ? -1 : j);
                    for (int l = 0; l < 2; l++)
                        for (int tok = 0; tok < 50; tok++) {
                            size_t r = tb_row(&t, i, v, l, tok);
                            int a1 = (int)(rnd() * E), a2 = (a1 + 1 + (int)(rnd() * (E - 1))) % E;
                            t.top[r * 2] = a1, t.top[r * 2 + 1] = a2;
                            float sum = 0;
                            for (int e = 0; e < E; e++)
                                sum += t.probs[r * E + e] = (float)rnd() + (e == a1 ? 4 : e == a2 ? 2 : 0);
                            for (int e = 0; e < E; e++)
                                t.probs[r * E + e] /= sum;
                        }
                }
            }
            rs_batch b = {
                .first = first, .count = n, .num_views = 2, .num_layers = 2, .tokens = 50, .record_k = 2,
                .num_experts = E, .patches = 49, .labels = t.labels, .predicted = t.pred, .pred_prob = t.pprob,
                .view_params = (const char *const *)t.params, .match = t.match, .top_idx = t.top,
                .top_gate = t.gate, .probs = t.probs,
            };
            assert_int_equal(rs_store_write_batch(s, run, &b, &err), 0);
        }
        tb_free(&t);
        print_message("  wrote %d images in %.2f s (%s)\n", N, seconds() - t0, path);
    }
    rs_store_close(s);

    rs_store *s1, *s2;
    assert_int_equal(rs_store_open(path, true, &s1, &err), 0);
    assert_int_equal(rs_store_open(path, true, &s2, &err), 0);
    rs_stats *st = NULL;
    double t1 = seconds();
    assert_int_equal(rs_stats_compute(s1, run, NULL, &st, &err), 0);
    double t2 = seconds();
    rs_stats_comparison *cmp = NULL;
    assert_int_equal(rs_stats_compare(s1, run, s2, run, NULL, &cmp, &err), 0);
    double t3 = seconds();
    print_message("  %d images x 2 views x 2 layers, T=50, E=8, 1000 resamples: stats %.2f s, compare %.2f s\n", N,
                  t2 - t1, t3 - t2);
    print_message("  Top-1 overall %.4f [%.4f, %.4f], pairs %lld\n", ag(st, 2, 2)->rate[0].value,
                  ag(st, 2, 2)->rate[0].boot_lo, ag(st, 2, 2)->rate[0].boot_hi, (long long)ag(st, 2, 2)->n.pairs);
    NEAR(cmp->diff[rs_stats_cell(st, 2, 2) * RS_STATS_NUM_RATES].value, 0, 1e-12);
    rs_stats_free(st);
    rs_stats_comparison_free(cmp);
    rs_store_close(s1);
    rs_store_close(s2);
}

/* ---- routing changes (vmoe's 1 − mean IoU) -------------------------------------------------- */

/* Two images, views clean / noise / crop, two MoE layers, 2 patches + a class token, E = 4.
 * Layer 0 (layer 1 keeps the default (0,1) everywhere: IoU 1):
 *   image 0  view 0: cls (0,1) p0 (0,1) p1 (2,3)
 *            view 1 (noise, match j->j: pixel-aligned, class token counts):
 *                    cls (1,0) IoU 1, p0 (0,2) IoU 1/3, p1 (0,1) IoU 0  -> sum 4/3 over 3
 *            view 2 (crop: matched patches only; match {1,-1}): p0 (3,2) vs ref p1 (2,3)
 *                    IoU 1; its class token (3,2) must not count          -> 1 over 1
 *   image 1  view 0 default (0,1)
 *            view 1: match {0,0} (not j->j: matched only): p0 (0,1) vs ref p0 IoU 1, p1
 *                    (2,3) vs ref p0 (0,1) IoU 0; cls (2,3) must not count  -> 1 over 2
 *            view 2: match j->j but a crop spec (matched only): p0, p1 IoU 1; cls (2,3)
 *                    must not count                                        -> 2 over 2
 * k = 2: view 1 layer 0: 1 − (4/9 + 1/2)/2 = 19/36; view 2 layer 0: 0;
 *   view 1 over both layers: image 0 (4/3 + 3)/6 = 13/18, image 1 (1 + 2)/4 = 3/4 -> 19/72;
 *   all views, layer 0: image 0 (4/3 + 1)/4 = 7/12, image 1 (1 + 2)/4 = 3/4 -> 1/3.
 *   (Were image 1's view 1 taken as aligned, its class token and p1 vs p1 would give 1/3.)
 * k = 1 (IoU = top-1 equal): image 0 view 1: cls 0, p0 1, p1 0 -> 1/3; image 1 view 1: 1/2
 *   -> view 1 layer 0: 1 − (1/3 + 1/2)/2 = 7/12; view 2: image 0 (3 vs 2) 0, image 1 1 -> 1/2. */
static tb rc_store(int k)
{
    tb t = tb_new(2, 3, 2, 2, 1, 2, 4, 10);
    t.k = k;
    tb_set_top(&t, 0, 0, 0, 1, 2, 3);
    tb_set_cls_top(&t, 0, 1, 0, 1, 0), tb_set_top(&t, 0, 1, 0, 0, 0, 2), tb_set_top(&t, 0, 1, 0, 1, 0, 1);
    tb_set_match(&t, 0, 2, (int[]){1, -1});
    tb_set_top(&t, 0, 2, 0, 0, 3, 2), tb_set_cls_top(&t, 0, 2, 0, 3, 2);
    tb_set_match(&t, 1, 1, (int[]){0, 0});
    tb_set_cls_top(&t, 1, 1, 0, 2, 3), tb_set_top(&t, 1, 1, 0, 1, 2, 3);
    tb_set_cls_top(&t, 1, 2, 0, 2, 3);
    return t;
}

static const char *const views_rc[] = {"clean", "noise:sigma=0.1", "crop:area=0.5-1"};

static void test_routing_changes(void **state)
{
    (void)state;
    tb t = rc_store(2);
    const char *path = scratch("rc2.db");
    int64_t run = tb_write_run(&t, path, sha_a, 1, views_rc);
    rs_stats *st = compute(path, run, NULL);
    const rs_stats_rate *rc = st->routing_changes;
    expect_rate(&rc[rs_stats_cell(st, 1, 0)], 19.0 / 36);
    expect_rate(&rc[rs_stats_cell(st, 2, 0)], 0);
    expect_rate(&rc[rs_stats_cell(st, 1, 1)], 0);
    expect_rate(&rc[rs_stats_cell(st, 1, 2)], 19.0 / 72);
    expect_rate(&rc[rs_stats_cell(st, 3, 0)], 1.0 / 3);
    assert_false(rc[rs_stats_cell(st, 0, 0)].valid); /* the reference against itself */
    assert_int_equal(st->rc_tokens[rs_stats_cell(st, 1, 0)], 5);
    assert_int_equal(st->rc_tokens[rs_stats_cell(st, 2, 0)], 3);
    assert_int_equal(st->rc_images[rs_stats_cell(st, 1, 0)], 2);
    assert_int_equal(st->aligned_images[1], 1);
    assert_int_equal(st->aligned_images[2], 0);
    assert_int_equal(st->aligned_images[3], 1);
    /* Per-image changes of view 1 layer 0 are 5/9 and 1/2: the interval lies between them. */
    const rs_stats_rate *r1 = &rc[rs_stats_cell(st, 1, 0)];
    assert_true(r1->boot_valid);
    assert_true(r1->boot_lo >= 0.5 - 1e-12 && r1->boot_lo <= r1->value && r1->value <= r1->boot_hi &&
                r1->boot_hi <= 5.0 / 9 + 1e-12);
    assert_true(r1->boot_hi > r1->boot_lo);
    assert_true(r1->wilson_lo == 0 && r1->wilson_hi == 0);
    rs_stats_free(st);
    tb_free(&t);

    t = rc_store(1);
    path = scratch("rc1.db");
    run = tb_write_run(&t, path, sha_a, 1, views_rc);
    st = compute(path, run, NULL);
    expect_rate(&st->routing_changes[rs_stats_cell(st, 1, 0)], 7.0 / 12);
    expect_rate(&st->routing_changes[rs_stats_cell(st, 2, 0)], 0.5);
    /* Without capacity (or forcing) the kept sets are the top-k sets: the two series are one. */
    assert_false(st->routing_changes_differ);
    for (int c = 0; c < (st->views + 1) * (st->layers + 1); c++) {
        const rs_stats_rate *x = &st->routing_changes[c], *y = &st->routing_changes_router[c];
        assert_true(x->valid == y->valid && x->value == y->value && x->boot_lo == y->boot_lo &&
                    x->boot_hi == y->boot_hi);
    }
    rs_stats_free(st);
    tb_free(&t);
}

/* rc_store with kept masks (every choice kept, ranks beyond k not), then drops:
 *   image 0 view 0 layer 0 class token: rank 0 (expert 0) dropped       -> ref kept {1}
 *   image 0 view 1 layer 0 patch 0:     rank 1 (expert 2) dropped       -> kept {0}
 *   image 0 view 0 and view 1, layer 1, patch 0: both ranks dropped     -> both empty
 * k = 2, view 1 (pixel-aligned for image 0; image 1 unchanged, 1/2 in layer 0, 1 in layer 1):
 *   layer 0, image 0: cls {1} vs {1,0} 1/2 (dropped in one view), p0 {0,1} vs {0} 1/2,
 *     p1 0 -> 1/3; routing_changes 1 − (1/3 + 1/2)/2 = 7/12 (router: 19/36 as before)
 *   layer 1, image 0: p0 dropped in both views IoU 0 (router 1), cls and p1 1 -> 2/3;
 *     routing_changes 1 − (2/3 + 1)/2 = 1/6 (router 0)
 *   pooled layers: image 0 (1 + 2)/6 = 1/2, image 1 3/4 -> 3/8 (router 19/72)
 *   view 2 compares its p0 with view 0's p1, where nothing dropped: 0 in layer 0 as before.
 * k = 1 (rank 0 only):
 *   layer 0, image 0: cls {} (the ref's expert 0 dropped) vs {1} 0, p0 {0} vs {0} 1 (a
 *     drop at rank 1 does not count), p1 0 -> 1/3; image 1 1/2 -> 7/12 (router 7/12)
 *   layer 1, image 0: p0 {} vs {} IoU 0 (router 1), cls, p1 1 -> 2/3; -> 1/6 (router 0). */
static void drop_rc(tb *t)
{
    size_t n = (size_t)t->N * t->V * t->L * t->T * t->R;
    t->kept = malloc(n);
    assert_non_null(t->kept);
    for (size_t q = 0; q < n; q++)
        t->kept[q] = (int)(q % (size_t)t->R) < t->k;
    t->kept[tb_row(t, 0, 0, 0, 0) * t->R + 0] = 0;
    t->kept[tb_row(t, 0, 1, 0, 1) * t->R + 1] = 0;
    memset(t->kept + tb_row(t, 0, 0, 1, 1) * t->R, 0, 2);
    memset(t->kept + tb_row(t, 0, 1, 1, 1) * t->R, 0, 2);
}

static void test_routing_changes_kept(void **state)
{
    (void)state;
    tb t = rc_store(2);
    drop_rc(&t);
    const char *path = scratch("rck2.db");
    int64_t run = tb_write_run(&t, path, sha_a, 1, views_rc);
    rs_stats *st = compute(path, run, NULL);
    assert_true(st->routing_changes_differ);
    const rs_stats_rate *rc = st->routing_changes, *rr = st->routing_changes_router;
    expect_rate(&rc[rs_stats_cell(st, 1, 0)], 7.0 / 12);
    expect_rate(&rr[rs_stats_cell(st, 1, 0)], 19.0 / 36);
    expect_rate(&rc[rs_stats_cell(st, 1, 1)], 1.0 / 6);
    expect_rate(&rr[rs_stats_cell(st, 1, 1)], 0);
    expect_rate(&rc[rs_stats_cell(st, 1, 2)], 3.0 / 8);
    expect_rate(&rr[rs_stats_cell(st, 1, 2)], 19.0 / 72);
    expect_rate(&rc[rs_stats_cell(st, 2, 0)], 0);
    assert_int_equal(st->rc_tokens[rs_stats_cell(st, 1, 0)], 5);
    /* The kept figure's interval lies between its two images' values (2/3 and 1/2). */
    const rs_stats_rate *r1 = &rc[rs_stats_cell(st, 1, 0)];
    assert_true(r1->boot_valid && r1->boot_lo >= 0.5 - 1e-12 && r1->boot_hi <= 2.0 / 3 + 1e-12);
    rs_stats_free(st);
    tb_free(&t);

    t = rc_store(1);
    drop_rc(&t);
    path = scratch("rck1.db");
    run = tb_write_run(&t, path, sha_a, 1, views_rc);
    st = compute(path, run, NULL);
    expect_rate(&st->routing_changes[rs_stats_cell(st, 1, 0)], 7.0 / 12);
    expect_rate(&st->routing_changes_router[rs_stats_cell(st, 1, 0)], 7.0 / 12);
    expect_rate(&st->routing_changes[rs_stats_cell(st, 1, 1)], 1.0 / 6);
    expect_rate(&st->routing_changes_router[rs_stats_cell(st, 1, 1)], 0);
    rs_stats_free(st);
    tb_free(&t);
}

/* Batch interference (interference.h) by hand: 2 images x 2 views x 2 layers x 3 tokens
 * (class token + 2 patches), k = 2, every top list (0, 1) and every choice kept in A. B
 * differs in:
 *   image 0 view 0 layer 1 patch 0: top (1, 0)   Top-1 and Top-2 differ; sets equal
 *   image 1 view 1 layer 1 patch 1: top (0, 2)   Top-2 and the sets differ; kept IoU 1/3
 *   image 0 view 0 layer 0 class token: nothing kept          kept IoU 0
 *   image 1 view 0 layer 0 patch 0: only rank 1 kept          kept IoU 1/2
 *   image 1 view 1 layer 0 patch 1: nothing kept in A and B   kept sets equal, IoU 0
 *   image 1 view 1 predicts 3 (A: 0).
 * Over all 24 tokens: Top-1 23/24, Top-2 22/24, top-k set 23/24, kept set 21/24; image 0's
 * mean IoU 11/12, image 1's (9 + 1/2 + 0 + 1/3)/12 = 59/72, routing_changes_kept
 * 1 − (11/12 + 59/72)/2 = 19/144; predictions 3 of 4 the same. */
static void test_interference(void **state)
{
    (void)state;
    tb a = tb_new(2, 2, 2, 2, 1, 2, 4, 10), b = tb_new(2, 2, 2, 2, 1, 2, 4, 10);
    size_t n = (size_t)2 * 2 * 2 * a.T * a.R;
    a.kept = malloc(n), b.kept = malloc(n);
    memset(a.kept, 1, n), memset(b.kept, 1, n);
    b.has_group_seed = true, b.group_seed = 7;
    tb_set_top(&b, 0, 0, 1, 0, 1, 0);
    tb_set_top(&b, 1, 1, 1, 1, 0, 2);
    memset(b.kept + tb_row(&b, 0, 0, 0, 0) * b.R, 0, 2);
    b.kept[tb_row(&b, 1, 0, 0, 1) * b.R + 1] = 0;
    memset(a.kept + tb_row(&a, 1, 1, 0, 2) * a.R, 0, 2), memset(b.kept + tb_row(&b, 1, 1, 0, 2) * b.R, 0, 2);
    b.pred[1 * 2 + 1] = 3;
    const char *path = scratch("interference.db");
    int64_t ra = tb_write_run(&a, path, sha_a, 1, views_other), rb = tb_write_run(&b, path, sha_a, 1, views_other);
    rs_store *s;
    rs_error err = {0};
    assert_int_equal(rs_store_open(path, true, &s, &err), 0);
    rs_interference *d;
    rs_stats_options opt = {.resamples = 200, .seed = 3, .name = path};
    assert_int_equal(rs_interference_compute(s, ra, s, rb, &opt, &d, &err), 0);
    assert_false(d->forced);
    int all = rs_interference_cell(d, 2, 2);
    const rs_stats_rate *x = d->rate + (size_t)all * RS_INTERF_NUM;
    assert_int_equal(d->tokens[all], 24);
    expect_rate(&x[RS_INTERF_TOP1], 23.0 / 24);
    expect_rate(&x[RS_INTERF_TOP2], 22.0 / 24);
    expect_rate(&x[RS_INTERF_TOPK_SET], 23.0 / 24);
    expect_rate(&x[RS_INTERF_KEPT_SET], 21.0 / 24);
    expect_rate(&x[RS_INTERF_CHANGES], 19.0 / 144);
    assert_true(x[RS_INTERF_CHANGES].boot_valid && x[RS_INTERF_CHANGES].boot_lo >= 1.0 / 12 - 1e-12 &&
                x[RS_INTERF_CHANGES].boot_hi <= 13.0 / 72 + 1e-12); /* between the two images' */
    expect_rate(&d->prediction_same[2], 0.75);
    expect_rate(&d->prediction_same[1], 0.5);
    assert_int_equal(d->views_compared[2], 4);
    /* View 0, layer 0: 6 tokens, the class token (IoU 0) and image 1's patch 0 (1/2). */
    x = d->rate + (size_t)rs_interference_cell(d, 0, 0) * RS_INTERF_NUM;
    expect_rate(&x[RS_INTERF_TOP1], 1);
    expect_rate(&x[RS_INTERF_KEPT_SET], 4.0 / 6);
    expect_rate(&x[RS_INTERF_CHANGES], 1 - (2.0 / 3 + 2.5 / 3) / 2);
    rs_interference_free(d);
    /* A run against itself: everything agrees, but a token dropped in both still counts as
     * a change (vmoe's convention): 1 of image 1's 12 tokens, so 1/24. */
    assert_int_equal(rs_interference_compute(s, ra, s, ra, &opt, &d, &err), 0);
    x = d->rate + (size_t)all * RS_INTERF_NUM;
    expect_rate(&x[RS_INTERF_KEPT_SET], 1);
    expect_rate(&x[RS_INTERF_CHANGES], 1.0 / 24);
    rs_interference_free(d);
    rs_store_close(s);

    /* Another job (seed 2) or other dispatch is refused, and forced on request. */
    int64_t rc2 = tb_write_run(&a, path, sha_a, 2, views_other);
    free(b.kept), b.kept = NULL, b.has_group_seed = false;
    int64_t rplain = tb_write_run(&b, path, sha_a, 1, views_other);
    assert_int_equal(rs_store_open(path, true, &s, &err), 0);
    assert_int_equal(rs_interference_compute(s, ra, s, rc2, &opt, &d, &err), RS_EINVAL);
    assert_non_null(strstr(err.msg, "not the same job in another group composition: seed 1 vs 2"));
    assert_int_equal(rs_interference_compute(s, ra, s, rplain, &opt, &d, &err), RS_EINVAL);
    assert_non_null(strstr(err.msg, "dispatch capacity factor 0.5"));
    opt.force = true;
    assert_int_equal(rs_interference_compute(s, ra, s, rplain, &opt, &d, &err), 0);
    assert_true(d->forced);
    /* Without capacity every top-k choice of B counts as kept: A's empty set (image 1 view 1
     * layer 0) and B's changed top-k set differ, 22 of 24 equal. */
    expect_rate(&d->rate[(size_t)all * RS_INTERF_NUM + RS_INTERF_KEPT_SET], 22.0 / 24);
    rs_interference_free(d);
    rs_store_close(s);
    tb_free(&a);
    tb_free(&b);
}

/* ---- heatmap cells against the statistics -------------------------------------------------- */

/* A run of 3 images x 3 views x 2 MoE layers x 6 patches (+ class token), E = 4, with
 * random router distributions, top lists and gates, crop-like match maps (unmatched and
 * repeated patches), and the corner cases of the per-patch values in image 0, layer 0:
 *   patch 0  no probability mass in view 0 and view 1 (entropy 0 both; JSD 0)
 *   patch 1  no mass in view 1 only, matched to view 0's patch 1 (JSD 1/2)
 *   patch 2  one-hot on different experts in views 0 and 1 (JSD 1, uncapped)
 * The heatmap's cells (rs_patch_values) summed in the order rs_stats_compute sums them give
 * its entropy and JSD bit for bit; the changed cells' counts give its Top-1 agreement;
 * the gate cells are the records' top-1 gates. */
static tb patch_store(void)
{
    tb t = tb_new(3, 3, 2, 6, 1, 2, 4, 10);
    rng_state = 23;
    static const int maps[3][6] = {{0, 1, 2, 3, 4, 5}, {1, 1, 2, -1, 4, 0}, {5, 4, -1, 2, 2, 0}};
    for (int i = 0; i < t.N; i++) {
        t.labels[i] = i % t.K;
        for (int v = 0; v < t.V; v++) {
            tb_set_match(&t, i, v, maps[v == 0 ? 0 : 1 + (i + v) % 2]);
            for (int l = 0; l < t.L; l++)
                for (int tok = 0; tok < t.T; tok++) {
                    size_t row = tb_row(&t, i, v, l, tok);
                    int a1 = (int)(rnd() * t.E), a2 = (a1 + 1 + (int)(rnd() * (t.E - 1))) % t.E;
                    t.top[row * t.R] = a1, t.top[row * t.R + 1] = a2;
                    t.gate[row * t.R] = (float)(0.5 + 0.5 * rnd()), t.gate[row * t.R + 1] = (float)(0.5 * rnd());
                    for (int e = 0; e < t.E; e++)
                        t.probs[row * t.E + e] = (float)(rnd() * rnd()); /* not normalised, as stored */
                }
        }
    }
    tb_set_probs(&t, 0, 0, 0, 0, (float[]){0, 0, 0, 0});
    tb_set_probs(&t, 0, 1, 0, 0, (float[]){0, 0, 0, 0});
    tb_set_probs(&t, 0, 1, 0, 1, (float[]){0, 0, 0, 0});
    tb_set_probs(&t, 0, 0, 0, 2, (float[]){1, 0, 0, 0});
    tb_set_probs(&t, 0, 1, 0, 2, (float[]){0, 0, 0.25f, 0});
    tb_set_match(&t, 0, 0, (int[]){0, 1, 2, 3, 4, 5});
    tb_set_match(&t, 0, 1, (int[]){0, 1, 2, -1, 2, 5});
    return t;
}

/* The heatmap's cells of every image, view and layer, summed per statistics cell as
   rs_stats_compute sums them: entropy over patches, JSD per record then over records. */
typedef struct patch_sums {
    double ent[4 * 3], jsd[4 * 3];  /* (V+1, L+1) cells, base cells only */
    int64_t ent_n[4 * 3], jsd_n[4 * 3];
    int64_t pairs[3], changed[3];   /* (L) over the non-reference views */
} patch_sums;

static void add_image_cells(const rs_image_routing *r, const rs_stats *st, patch_sums *ps)
{
    rs_error err = {0};
    double v[6];
    int pairs[6], changed[6];
    for (int view = 0; view < r->views; view++)
        for (int l = 0; l < r->layers; l++) {
            int cell = rs_stats_cell(st, view, l);
            assert_int_equal(rs_patch_values(r, RS_PATCH_ENTROPY, view, l, v, &err), 0);
            for (int j = 0; j < r->patches; j++, ps->ent_n[cell]++)
                ps->ent[cell] += v[j];
            if (view == 0)
                continue;
            assert_int_equal(rs_patch_values(r, RS_PATCH_JSD, view, l, v, &err), 0);
            double jsd = 0;
            for (int j = 0; j < r->patches; j++)
                if (!isnan(v[j]))
                    jsd += v[j], ps->jsd_n[cell]++;
            ps->jsd[cell] += jsd;
        }
    for (int l = 0; l < r->layers; l++) {
        assert_int_equal(rs_patch_values(r, RS_PATCH_CHANGED, 0, l, v, &err), 0);
        rs_patch_change_counts(r, l, pairs, changed);
        for (int m = 0; m < r->patches; m++) {
            ps->pairs[l] += pairs[m], ps->changed[l] += changed[m];
            if (pairs[m])
                assert_true(v[m] == (double)changed[m] / pairs[m]);
            else
                assert_true(isnan(v[m]));
        }
    }
}

/* Every gate cell equals the top-1 gate of its record (the store's cursor). */
static void expect_gates(rs_store *s, int64_t run, const rs_image_routing *imgs)
{
    rs_error err = {0};
    rs_store_cursor *c;
    rs_routing_record rec;
    assert_int_equal(rs_store_cursor_open(s, run, &c, &err), 0);
    int n = 0;
    while (rs_store_cursor_next(c, &rec, &err) == 1) {
        const rs_image_routing *r = &imgs[rec.image];
        double v[6];
        assert_int_equal(rs_patch_values(r, RS_PATCH_GATE, rec.view, rec.layer, v, &err), 0);
        for (int j = 0; j < r->patches; j++)
            assert_true(v[j] == (double)rec.top_gate[(size_t)(j + r->has_cls) * r->record_k]);
        n++;
    }
    assert_int_equal(n, 3 * 3 * 2);
    rs_store_cursor_close(c);
}

static void test_heatmap_cells(void **state)
{
    (void)state;
    tb t = patch_store();
    const char *path = scratch("patch.db");
    int64_t run = tb_write_run(&t, path, sha_a, 1, views_other);
    rs_stats_options opt = {.resamples = -1};
    rs_stats *st = compute(path, run, &opt);
    rs_store *s;
    rs_error err = {0};
    rs_run_info info = {0};
    /* the store itself, not rs_run_load: this run has unnormalised and massless rows on purpose,
     * which the run check refuses; the heatmap arithmetic is what is tested here */
    assert_int_equal(rs_store_open(path, true, &s, &err), 0);
    assert_int_equal(rs_store_get_run(s, run, &info, &err), 0);
    rs_image_routing imgs[3];
    patch_sums ps = {0};
    for (int i = 0; i < 3; i++) {
        assert_int_equal(rs_run_image_routing(s, &info, i, &imgs[i], &err), 0);
        add_image_cells(&imgs[i], st, &ps);
    }
    for (int v = 0; v < 3; v++)
        for (int l = 0; l < 2; l++) {
            int c = rs_stats_cell(st, v, l);
            assert_int_equal(st->entropy[c].n, ps.ent_n[c]);
            assert_true(st->entropy[c].mean == ps.ent[c] / (double)ps.ent_n[c]); /* same bits */
            if (v == 0)
                continue;
            assert_int_equal(st->jsd[c].n, ps.jsd_n[c]);
            assert_true(st->jsd[c].mean == ps.jsd[c] / (double)ps.jsd_n[c]);
        }
    for (int l = 0; l < 2; l++) {
        const rs_stats_counts *n = &ag(st, 3, l)->n;
        assert_int_equal(ps.pairs[l], n->pairs);
        assert_int_equal(ps.changed[l], n->pairs - n->top1);
    }
    /* The corner cases, as the statistics count them. */
    double v[6];
    assert_int_equal(rs_patch_values(&imgs[0], RS_PATCH_ENTROPY, 0, 0, v, &err), 0);
    assert_true(v[0] == 0 && v[2] == 0 && v[1] > 0);
    assert_int_equal(rs_patch_values(&imgs[0], RS_PATCH_ENTROPY, 1, 0, v, &err), 0);
    assert_true(v[0] == 0 && v[1] == 0);
    assert_int_equal(rs_patch_values(&imgs[0], RS_PATCH_JSD, 1, 0, v, &err), 0);
    assert_true(v[0] == 0 && isnan(v[3]));
    NEAR(v[1], 0.5, 1e-6); /* the other side sums to 1 up to float rounding */
    assert_true(v[2] == 1);
    expect_gates(s, run, imgs);
    for (int i = 0; i < 3; i++)
        rs_image_routing_free(&imgs[i]);
    rs_run_info_clear(&info);
    rs_store_close(s);
    rs_stats_free(st);
    tb_free(&t);
}

int main(void)
{
    if (tu_scratch_dir("stats", dir, sizeof dir)) {
        perror("mkdtemp");
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_one_image),   cmocka_unit_test(test_routing_changes), cmocka_unit_test(test_routing_changes_kept),   cmocka_unit_test(test_k1_ties_load),
        cmocka_unit_test(test_zero_pairs),  cmocka_unit_test(test_bad_records),  cmocka_unit_test(test_divergences),
        cmocka_unit_test(test_mcnemar),     cmocka_unit_test(test_run_difference), cmocka_unit_test(test_baselines),
        cmocka_unit_test(test_compare),   cmocka_unit_test(test_interference),   cmocka_unit_test(test_heatmap_cells),
        cmocka_unit_test(test_bootstrap_coverage), cmocka_unit_test(test_benchmark),
        cmocka_unit_test(test_top2_one_crossing), cmocka_unit_test(test_percentile_exact),
        cmocka_unit_test(test_bootstrap_exact_two_images), cmocka_unit_test(test_boot_ratio_fixed_seed),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    tu_remove_dir(dir);
    return failed;
}

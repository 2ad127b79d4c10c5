/* The dissection over seeds (analyze/stats/dissect.h) on a hand-made store: two groups of
 * runs with views clean; noise; base:view=1+route:from=0, every prediction set by hand and
 * every figure worked out in the comments, and the differences between groups; a run
 * without a forced view is refused. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "stats/dissect.h"
#include "stats/groups.h"
#include "store/store.h"
#include "teststore.h"
#include "testutil.h"

static char dir[64];

#define NEAR(x, y) assert_true(fabs((double)(x) - (double)(y)) < 1e-5)
#define N 4
#define NP 4

static const char *const views[] = {"clean", "noise:severity=1", "base:view=1+route:from=0"};
static const int labels[N] = {0, 1, 2, 0};

/* One run of N images x 3 views, 1 MoE layer of NP patches: predictions PRED[view][image];
 * with DISAGREE, patch 0 of image 0 routes (2,3) in view 1 (every other pair agrees). */
static int64_t write_run(const char *path, char sha_char, const char *method, int seed, const int pred[3][N],
                         bool disagree, const char *const *specs)
{
    tb t = tb_new(N, 3, 1, NP, 0, 2, 4, 3);
    for (int i = 0; i < N; i++) {
        t.labels[i] = labels[i];
        for (int v = 0; v < 3; v++)
            t.pred[i * 3 + v] = pred[v][i];
    }
    if (disagree)
        tb_set_top(&t, 0, 1, 0, 0, 2, 3);
    char sha[65], cfg[128];
    memset(sha, sha_char, 64);
    sha[64] = '\0';
    snprintf(cfg, sizeof cfg, "{\"top_k\": 2, \"method\": \"%s\", \"train_seed\": %d}", method, seed);
    rs_run_spec spec = tb_spec(&t, sha, 42, specs);
    spec.model_config = cfg;
    int64_t run = tb_write(&t, path, &spec);
    tb_free(&t);
    return run;
}

/* Clean predictions {0,1,2,0} (labels {0,1,2,0}) in every run.
 * vmoe seed 0: noise {1,1,0,2}: flips images 0, 2, 3 (3/4); forced {0,1,0,0} restores 0
 *   and 3: router 2/3; accuracy under noise 1/4; Top-1 15/16 (one patch disagrees).
 * vmoe seed 1: noise {1,0,2,0}: flips 0, 1 (2/4); forced {0,0,2,0} restores 0: 1/2;
 *   accuracy 2/4; Top-1 1.
 * vmoe seed 2: noise {1,2,2,0}: flips 0, 1 (2/4); forced {0,2,2,0} restores 0: 1/2;
 *   accuracy 2/4; Top-1 1.
 * Router over seeds: 2/3, 1/2, 1/2: mean 5/9 = 0.555556, deviations 1/9, −1/18, −1/18, sd
 *   √((1/81 + 2/324) / 2) = 0.096225, se 0.055556, t_{0.975,2} = 4.302653: half-width
 *   0.239036, [0.316520, 0.794591]; expert: 4/9, [0.205409, 0.683480].
 * Flipped 3/4, 1/2, 1/2: mean 7/12. Accuracy 1/4, 1/2, 1/2: mean 5/12. Top-1: 47/48.
 * adv seed 0: noise {0,1,2,1}: flips image 3 (1/4), forced {0,1,2,1} restores none:
 *   router 0, expert 1, one seed: no interval. */
static const int vmoe[3][3][N] = {
    {{0, 1, 2, 0}, {1, 1, 0, 2}, {0, 1, 0, 0}},
    {{0, 1, 2, 0}, {1, 0, 2, 0}, {0, 0, 2, 0}},
    {{0, 1, 2, 0}, {1, 2, 2, 0}, {0, 2, 2, 0}},
};
static const int adv[3][N] = {{0, 1, 2, 0}, {0, 1, 2, 1}, {0, 1, 2, 1}};

static rs_store *open_ro(const char *path)
{
    rs_store *s;
    rs_error err = {0};
    assert_int_equal(rs_store_open(path, true, &s, &err), 0);
    return s;
}

static const rs_t_interval *mean_of(const rs_dissect *d, int group, int p, int figure)
{
    return &d->mean[(group * d->perturbations + p) * RS_DISSECT_NUM_FIGURES + figure];
}

static void test_dissect_store(void **state)
{
    (void)state;
    const char *path = tu_path(dir, "dissect.db");
    int64_t v[3], a[1];
    for (int i = 0; i < 3; i++)
        v[i] = write_run(path, (char)('a' + i), "vmoe", i, vmoe[i], i == 0, views);
    a[0] = write_run(path, 'd', "adv", 0, adv, false, views);
    rs_store *s = open_ro(path);
    const char *names[2] = {"vmoe", "adv"};
    const int64_t *runs[2] = {v, a};
    const int sizes[2] = {3, 1};
    rs_stats_options opt = {.seed = 7, .resamples = 50, .name = path};
    rs_groups *g = NULL;
    rs_dissect *d = NULL;
    rs_error err = {0};
    assert_int_equal(rs_groups_compute(s, names, runs, sizes, 2, &opt, &g, &err), 0);
    int rc = rs_dissect_compute(s, g, &opt, &d, &err);
    if (rc)
        print_message("  %s\n", err.msg);
    assert_int_equal(rc, 0);
    assert_true(rs_dissect_applies(&g->info[0]));
    assert_int_equal(d->perturbations, 1);
    assert_int_equal(d->view[0], 1);
    assert_int_equal(d->forced[0], 2);
    /* per seed: the counts the shares come from */
    const int64_t flipped[3] = {3, 2, 2}, restored[3] = {2, 1, 1};
    for (int i = 0; i < 3; i++) {
        assert_int_equal(d->flipped[rs_dissect_at(d, 0, i, 0)], flipped[i]);
        assert_int_equal(d->restored[rs_dissect_at(d, 0, i, 0)], restored[i]);
    }
    const rs_t_interval *r = mean_of(d, 0, 0, RS_DISSECT_ROUTER), *e = mean_of(d, 0, 0, RS_DISSECT_EXPERT);
    assert_true(r->valid);
    assert_int_equal(r->n, 3);
    NEAR(r->mean, 5.0 / 9), NEAR(r->sd, 0.0962250), NEAR(r->lo, 0.316520), NEAR(r->hi, 0.794591);
    NEAR(e->mean, 4.0 / 9), NEAR(e->lo, 0.205409), NEAR(e->hi, 0.683480);
    NEAR(mean_of(d, 0, 0, RS_DISSECT_FLIPPED)->mean, 7.0 / 12);
    NEAR(mean_of(d, 0, 0, RS_DISSECT_ACCURACY)->mean, 5.0 / 12);
    NEAR(mean_of(d, 0, 0, RS_DISSECT_TOP1)->mean, 47.0 / 48);
    /* one seed: the value, no interval */
    const rs_t_interval *ra = mean_of(d, 1, 0, RS_DISSECT_ROUTER);
    assert_int_equal(ra->n, 1);
    assert_false(ra->valid);
    NEAR(ra->mean, 0);
    NEAR(mean_of(d, 1, 0, RS_DISSECT_EXPERT)->mean, 1);
    NEAR(mean_of(d, 1, 0, RS_DISSECT_FLIPPED)->mean, 0.25);
    rs_dissect_free(d);
    rs_groups_free(g);
    rs_store_close(s);
}

/* Differences between groups over seed pairs, and Holm over them. vmoe seeds 0, 1 as above
 * against adv seeds 0 (above) and 1: noise {0,0,2,0} flips image 1, forced {0,1,2,0}
 * restores it (router 1, accuracy 3/4, flipped 1/4, Top-1 1). adv − vmoe per seed:
 *   accuracy 3/4 − 1/4 = 1/2, 3/4 − 1/2 = 1/4: mean 3/8, se 1/8, t = 3 on 1 df:
 *            p = 1 − 2 atan(3)/π = 0.204833; half-width 12.706205/8 = 1.588276, clipped to [−1, 1]
 *   flipped  −1/2, −1/4: mean −3/8, p 0.204833
 *   Top-1    1/16, 0: mean 1/32, t = 1: p = 0.5
 *   router   −2/3, +1/2: mean −1/12, se 7/12, t = 1/7: p = 1 − 2 atan(1/7)/π = 0.909666
 *   expert   +1/12, not in the family (minus the router's)
 * Holm over the four: 4 × 0.204833 = 0.819331 for accuracy and flips (the second step's
 * 3 × p is lower, so the running maximum keeps it), 1 for Top-1 and router. */
static void test_dissect_differences(void **state)
{
    (void)state;
    const char *path = tu_path(dir, "diff.db");
    static const int adv1[3][N] = {{0, 1, 2, 0}, {0, 0, 2, 0}, {0, 1, 2, 0}};
    int64_t v[2], a[2];
    for (int i = 0; i < 2; i++)
        v[i] = write_run(path, (char)('a' + i), "vmoe", i, vmoe[i], i == 0, views);
    a[0] = write_run(path, 'd', "adv", 0, adv, false, views);
    a[1] = write_run(path, 'e', "adv", 1, adv1, false, views);
    rs_store *s = open_ro(path);
    const char *names[2] = {"vmoe", "adv"};
    const int64_t *runs[2] = {v, a};
    const int sizes[2] = {2, 2};
    rs_stats_options opt = {.seed = 7, .resamples = -1, .name = path};
    rs_groups *g = NULL;
    rs_dissect *d = NULL;
    rs_error err = {0};
    assert_int_equal(rs_groups_compute(s, names, runs, sizes, 2, &opt, &g, &err), 0);
    assert_int_equal(rs_dissect_compute(s, g, &opt, &d, &err), 0);
    const int at = (1 * d->perturbations + 0) * RS_DISSECT_NUM_FIGURES;
    const rs_t_interval *acc = &d->diff[at + RS_DISSECT_ACCURACY], *flip = &d->diff[at + RS_DISSECT_FLIPPED];
    const rs_t_interval *top1 = &d->diff[at + RS_DISSECT_TOP1], *router = &d->diff[at + RS_DISSECT_ROUTER];
    assert_int_equal(acc->n, 2);
    assert_true(acc->valid);
    NEAR(acc->mean, 0.375), NEAR(acc->p, 0.204833), NEAR(acc->lo, -1), NEAR(acc->hi, 1);
    NEAR(flip->mean, -0.375), NEAR(flip->p, 0.204833);
    NEAR(top1->mean, 1.0 / 32), NEAR(top1->p, 0.5);
    NEAR(router->mean, -1.0 / 12), NEAR(router->p, 0.909666);
    NEAR(d->diff[at + RS_DISSECT_EXPERT].mean, 1.0 / 12);
    assert_int_equal(d->family, 4);
    NEAR(d->holm[at + RS_DISSECT_ACCURACY], 0.819331), NEAR(d->holm[at + RS_DISSECT_FLIPPED], 0.819331);
    NEAR(d->holm[at + RS_DISSECT_TOP1], 1), NEAR(d->holm[at + RS_DISSECT_ROUTER], 1);
    NEAR(d->holm[at + RS_DISSECT_EXPERT], -1);
    /* group 0 has no difference from itself */
    assert_int_equal(d->diff[RS_DISSECT_ACCURACY].n, 0);
    rs_dissect_free(d);
    rs_groups_free(g);
    rs_store_close(s);
}

/* Seeds without a flip have no share: the mean is over the others; and the interval of a
 * spread-out share is clipped to [0,1]. vmoe seeds: 2/3, 0 (seed 2 flips images 0, 1, 2
 * and restores none), and seed 1 without flips. Router over the two seeds: mean 1/3, sd
 * 0.471405, t_{0.975,1} = 12.706205: [−3.90, 4.57] clipped to [0, 1]. */
static void test_dissect_no_flips(void **state)
{
    (void)state;
    const char *path = tu_path(dir, "noflip.db");
    static const int p[3][3][N] = {
        {{0, 1, 2, 0}, {1, 1, 0, 2}, {0, 1, 0, 0}},
        {{0, 1, 2, 0}, {0, 1, 2, 0}, {0, 1, 2, 0}},
        {{0, 1, 2, 0}, {1, 2, 0, 0}, {1, 2, 0, 0}},
    };
    int64_t v[3];
    for (int i = 0; i < 3; i++)
        v[i] = write_run(path, (char)('a' + i), "vmoe", i, p[i], false, views);
    rs_store *s = open_ro(path);
    const char *names[1] = {"vmoe"};
    const int64_t *runs[1] = {v};
    const int sizes[1] = {3};
    rs_stats_options opt = {.seed = 7, .resamples = -1, .name = path};
    rs_groups *g = NULL;
    rs_dissect *d = NULL;
    rs_error err = {0};
    assert_int_equal(rs_groups_compute(s, names, runs, sizes, 1, &opt, &g, &err), 0);
    assert_int_equal(rs_dissect_compute(s, g, &opt, &d, &err), 0);
    const rs_t_interval *r = mean_of(d, 0, 0, RS_DISSECT_ROUTER);
    assert_int_equal(r->n, 2);
    assert_true(r->valid);
    NEAR(r->mean, 1.0 / 3);
    NEAR(r->lo, 0);
    NEAR(r->hi, 1);
    assert_int_equal(mean_of(d, 0, 0, RS_DISSECT_FLIPPED)->n, 3);
    rs_dissect_free(d);
    rs_groups_free(g);
    rs_store_close(s);
}

/* Runs without a forced view: nothing applies, and the computation refuses with one line. */
static void test_dissect_refused(void **state)
{
    (void)state;
    const char *path = tu_path(dir, "plain.db");
    static const char *const plain[] = {"clean", "noise:severity=1", "noise:severity=2"};
    int64_t v[1] = {write_run(path, 'a', "vmoe", 0, vmoe[0], false, plain)};
    rs_store *s = open_ro(path);
    const char *names[1] = {"vmoe"};
    const int64_t *runs[1] = {v};
    const int sizes[1] = {1};
    rs_stats_options opt = {.resamples = -1, .name = path};
    rs_groups *g = NULL;
    rs_dissect *d = NULL;
    rs_error err = {0};
    assert_int_equal(rs_groups_compute(s, names, runs, sizes, 1, &opt, &g, &err), 0);
    assert_false(rs_dissect_applies(&g->info[0]));
    assert_int_equal(rs_dissect_compute(s, g, &opt, &d, &err), RS_EINVAL);
    assert_null(d);
    assert_non_null(strstr(err.msg, "route:from=0"));
    rs_groups_free(g);
    rs_store_close(s);
}

int main(void)
{
    if (tu_scratch_dir("dissect", dir, sizeof dir)) {
        perror("mkdtemp");
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dissect_store),
        cmocka_unit_test(test_dissect_differences),
        cmocka_unit_test(test_dissect_no_flips),
        cmocka_unit_test(test_dissect_refused),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    tu_remove_dir(dir);
    return failed;
}

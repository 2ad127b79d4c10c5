/* Corruption statistics tests: the grid read from view specs, every row of a hand-built
 * corruption run (cells, corruptions, families, overall) against values worked out in the
 * comments, the bootstrap drawing rs_stats' resamples, and groups over seeds (differences
 * with their t interval, the relative form against the reference). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "input/corrupt.h"
#include "input/spec_text.h"
#include "stats/corrupt_stats.h"
#include "stats/groups.h"
#include "store/run.h"
#include "store/store.h"
#include "teststore.h"
#include "testutil.h"

static char dir[64];

#define NEAR(x, y) assert_true(fabs((double)(x) - (double)(y)) < 1e-12)

/* Views: clean; gaussian_noise 1 and 2; fog 1; speckle_noise 1 (an extra). Grid: corruptions
 * gaussian_noise, fog, speckle_noise (first-view order), severities 1, 2; fog 2 and
 * speckle 2 missing. */
#define V 5
static const char *const views[V] = {
    "clean", "corrupt:name=gaussian_noise,severity=1,set=cifar", "corrupt:name=gaussian_noise,severity=2,set=cifar",
    "corrupt:name=fog,severity=1,set=cifar", "corrupt:name=speckle_noise,severity=1,set=cifar"};

static void test_spec_and_grid(void **state)
{
    (void)state;
    rs_error err = {0};
    int id, sev;
    assert_int_equal(rs_spec_corruption("corrupt:name=fog,severity=3,set=cifar", &id, &sev, &err), 1);
    assert_int_equal(id, rs_corrupt_find("fog"));
    assert_int_equal(sev, 3);
    assert_int_equal(rs_spec_corruption("clean", &id, &sev, &err), 0);
    assert_int_equal(rs_spec_corruption("corrupt:name=fog,severity=3+flip:p=1", &id, &sev, &err), 0);
    assert_int_equal(rs_spec_corruption("corrupt:name=nope,severity=3", &id, &sev, &err), RS_EINVAL);

    rs_run_info run = {.id = 3, .num_views = V, .view_specs = (char **)views};
    rs_corrupt_grid g;
    assert_int_equal(rs_corrupt_grid_of(&run, &g, &err), 1);
    assert_int_equal(g.corruptions, 3);
    assert_int_equal(g.severities, 2);
    assert_int_equal(g.id[0], rs_corrupt_find("gaussian_noise"));
    assert_int_equal(g.id[1], rs_corrupt_find("fog"));
    assert_int_equal(g.family[0], 0);
    assert_int_equal(g.family[1], 2); /* weather */
    assert_int_equal(g.family[2], RS_CFAMILY_EXTRA);
    const int want[6] = {1, 2, 3, -1, 4, -1};
    for (int q = 0; q < 6; q++)
        assert_int_equal(g.view[q], want[q]);
    rs_corrupt_grid_clear(&g);

    char *bad[] = {"clean", "noise:severity=1"};
    run.num_views = 2, run.view_specs = bad;
    assert_int_equal(rs_corrupt_grid_of(&run, &g, &err), 0);
    assert_non_null(strstr(err.msg, "view 1 'noise:severity=1'"));
    char *twice[] = {"clean", "corrupt:name=fog,severity=1", "corrupt:name=fog,severity=1"};
    run.num_views = 3, run.view_specs = twice;
    assert_int_equal(rs_corrupt_grid_of(&run, &g, &err), 0);
    assert_non_null(strstr(err.msg, "repeats a cell"));
}

/* N = 2 images (labels 0, 1), 1 MoE layer, 4 patches, experts 0..3; every token routes
 * (0,1) except: view 1 image 0 one patch (2,3), image 1 one patch (0,2) (Top-1 agrees,
 * Top-2 does not); view 2 image 0 DIS2 patches (2,3), image 1 two; view 3 image 1 two;
 * view 4 image 0 four. Predictions: view 0 right; view 1 right, wrong; view 2 wrong, wrong;
 * view 3 right, right; view 4 right, wrong. */
#define N 2
#define NP 4
static int64_t write_run(const char *path, char sha_char, const char *config, int dis2)
{
    tb t = tb_new(N, V, 1, NP, 0, 2, 4, 3);
    static const int right[V][N] = {{1, 1}, {1, 0}, {0, 0}, {1, 1}, {1, 0}};
    for (int i = 0; i < N; i++) {
        t.labels[i] = i;
        for (int v = 0; v < V; v++)
            t.pred[i * V + v] = right[v][i] ? i : 2;
    }
    tb_set_top(&t, 0, 1, 0, 0, 2, 3);
    tb_set_top(&t, 1, 1, 0, 0, 0, 2);
    for (int j = 0; j < dis2; j++)
        tb_set_top(&t, 0, 2, 0, j, 2, 3);
    for (int j = 0; j < 2; j++) {
        tb_set_top(&t, 1, 2, 0, j, 2, 3);
        tb_set_top(&t, 1, 3, 0, j, 2, 3);
    }
    for (int j = 0; j < NP; j++)
        tb_set_top(&t, 0, 4, 0, j, 2, 3);
    char sha[65];
    memset(sha, sha_char, 64);
    sha[64] = '\0';
    rs_run_spec spec = tb_spec(&t, sha, 42, (const char *const *)views);
    spec.model_config = config;
    int64_t run = tb_write(&t, path, &spec);
    tb_free(&t);
    return run;
}

static rs_store *open_ro(const char *path)
{
    rs_store *s;
    rs_error err = {0};
    assert_int_equal(rs_store_open(path, true, &s, &err), 0);
    return s;
}

#define FIG(cs, row, m) (&(cs)->fig[(size_t)(row) * RS_CSTAT_NUM_FIGURES + (m)])

/* With DIS2 = 2, Top-1 per cell: gn1 7/8, gn2 4/8, fog1 6/8, speckle1 4/8; Top-2: gn1 6/8,
 * the rest as Top-1; accuracy gn1 1/2, gn2 0, fog1 1, speckle1 1/2.
 * gaussian_noise: Top-1 (7/8 + 4/8) / 2 = 0.6875, Top-2 0.625, accuracy 0.25; fog 0.75, 1.
 * noise family = gaussian_noise (speckle is an extra): s1 0.875, s2 0.5, all 0.6875.
 * weather: s1 0.75, s2 no cell (invalid), all 0.75. extra: 0.5.
 * overall: s1 (7/8 + 6/8) / 2 = 0.8125, s2 0.5, all (0.6875 + 0.75) / 2 = 0.71875 (the mean of
 * the corruptions' means, not of the three cells, 0.708333); accuracy all (0.25 + 1) / 2. */
static void test_run_figures(void **state)
{
    (void)state;
    const char *path = tu_path(dir, "one.db");
    int64_t id = write_run(path, 'a', "{\"top_k\": 2}", 2);
    rs_store *s = open_ro(path);
    rs_error err = {0};
    rs_run_info info = {0};
    rs_stats *st = NULL;
    rs_corrupt_stats *cs = NULL;
    rs_stats_options opt = {.seed = 5, .resamples = 300, .name = path};
    assert_int_equal(rs_run_load(s, path, id, &info, &err), 0);
    assert_int_equal(rs_stats_compute(s, id, &opt, &st, &err), 0);
    int rc = rs_corrupt_stats_compute(&info, st, &cs, &err);
    if (rc)
        print_message("  %s\n", err.msg);
    assert_int_equal(rc, 0);
    const rs_corrupt_grid *g = &cs->grid;
    assert_int_equal(cs->rows, rs_cstat_rows(g));
    NEAR(FIG(cs, rs_cstat_cell(g, 0, 0), RS_CSTAT_TOP1)->value, 0.875);
    NEAR(FIG(cs, rs_cstat_cell(g, 0, 0), RS_CSTAT_TOP2)->value, 0.75);
    NEAR(FIG(cs, rs_cstat_cell(g, 0, 0), RS_CSTAT_TOP2_UNORDERED)->value, 0.75);
    NEAR(FIG(cs, rs_cstat_cell(g, 0, 1), RS_CSTAT_TOP1)->value, 0.5);
    NEAR(FIG(cs, rs_cstat_cell(g, 0, 1), RS_CSTAT_ACCURACY)->value, 0);
    assert_false(FIG(cs, rs_cstat_cell(g, 1, 1), RS_CSTAT_TOP1)->valid); /* fog 2: no view */
    NEAR(FIG(cs, rs_cstat_corruption(g, 0), RS_CSTAT_TOP1)->value, 0.6875);
    NEAR(FIG(cs, rs_cstat_corruption(g, 0), RS_CSTAT_TOP2)->value, 0.625);
    NEAR(FIG(cs, rs_cstat_corruption(g, 0), RS_CSTAT_ACCURACY)->value, 0.25);
    NEAR(FIG(cs, rs_cstat_corruption(g, 1), RS_CSTAT_TOP1)->value, 0.75);
    NEAR(FIG(cs, rs_cstat_family(g, 0, 0), RS_CSTAT_TOP1)->value, 0.875);
    NEAR(FIG(cs, rs_cstat_family(g, 0, 1), RS_CSTAT_TOP1)->value, 0.5);
    NEAR(FIG(cs, rs_cstat_family(g, 0, 2), RS_CSTAT_TOP1)->value, 0.6875);
    NEAR(FIG(cs, rs_cstat_family(g, 2, 0), RS_CSTAT_TOP1)->value, 0.75);
    assert_false(FIG(cs, rs_cstat_family(g, 2, 1), RS_CSTAT_TOP1)->valid);
    NEAR(FIG(cs, rs_cstat_family(g, RS_CFAMILY_EXTRA, 2), RS_CSTAT_TOP1)->value, 0.5);
    assert_false(FIG(cs, rs_cstat_family(g, 1, 2), RS_CSTAT_TOP1)->valid); /* no blur */
    NEAR(FIG(cs, rs_cstat_overall(g, 0), RS_CSTAT_TOP1)->value, 0.8125);
    NEAR(FIG(cs, rs_cstat_overall(g, 1), RS_CSTAT_TOP1)->value, 0.5);
    NEAR(FIG(cs, rs_cstat_overall(g, 2), RS_CSTAT_TOP1)->value, 0.71875);
    NEAR(FIG(cs, rs_cstat_overall(g, 2), RS_CSTAT_ACCURACY)->value, 0.625);
    /* A cell's interval is its view's in rs_stats (the same resampled images). */
    for (int v = 1; v < V; v++) {
        int c = v <= 2 ? 0 : v - 2, sv = v == 2 ? 1 : 0;
        const rs_stats_rate *a = FIG(cs, rs_cstat_cell(g, c, sv), RS_CSTAT_TOP1);
        const rs_stats_rate *b = &st->agree[rs_stats_cell(st, v, st->layers)].rate[RS_STATS_TOP1];
        assert_true(a->boot_valid && b->boot_valid);
        NEAR(a->boot_lo, b->boot_lo);
        NEAR(a->boot_hi, b->boot_hi);
    }
    assert_true(FIG(cs, rs_cstat_overall(g, 2), RS_CSTAT_TOP1)->boot_valid);
    rs_corrupt_stats_free(cs);
    rs_stats_free(st);
    rs_run_info_clear(&info);
    rs_store_close(s);
}

/* vmoe seeds 0, 1 with DIS2 = 2, 1; prc seeds 0, 1 with DIS2 = 0 and 2.
 * Top-1 gaussian_noise means: vmoe (7/8 + 4/8) / 2 = 0.6875, (7/8 + 5/8) / 2 = 0.75;
 * prc 0.8125, 0.6875; fog 0.75 everywhere. Overall: vmoe 0.71875, 0.75; prc 0.78125, 0.71875.
 * Differences: +0.0625, −0.03125: mean 0.015625, sd 0.0662913, half-width
 * 12.7062047 · 0.0662913 / √2 = 0.5956033. Noise family: +0.125, −0.0625: mean 0.03125.
 * Relative, seed 0: gaussian_noise (1 − 0.8125) / (1 − 0.6875) = 0.6, fog 1: mean 0.8;
 * seed 1: (1 − 0.6875) / (1 − 0.75) = 1.25, fog 1: 1.125; mean over seeds 0.9625. */
static void test_groups(void **state)
{
    (void)state;
    const char *path = tu_path(dir, "groups.db");
    int64_t vmoe[2], prc[2];
    const int dis_v[2] = {2, 1}, dis_p[2] = {0, 2};
    char cfg[128];
    for (int i = 0; i < 2; i++) {
        snprintf(cfg, sizeof cfg, "{\"top_k\": 2, \"method\": \"vmoe\", \"train_seed\": %d}", i);
        vmoe[i] = write_run(path, (char)('a' + i), cfg, dis_v[i]);
        snprintf(cfg, sizeof cfg, "{\"top_k\": 2, \"method\": \"prc\", \"train_seed\": %d}", i);
        prc[i] = write_run(path, (char)('c' + i), cfg, dis_p[i]);
    }
    rs_store *s = open_ro(path);
    const char *names[2] = {"vmoe", "prc"};
    const int64_t *runs[2] = {vmoe, prc};
    const int sizes[2] = {2, 2};
    rs_stats_options opt = {.seed = 7, .resamples = 200, .name = path};
    rs_groups *g = NULL;
    rs_corrupt_groups *cg = NULL;
    rs_error err = {0};
    assert_int_equal(rs_groups_compute(s, names, runs, sizes, 2, &opt, &g, &err), 0);
    int rc = rs_corrupt_groups_compute(g, &cg, &err);
    if (rc)
        print_message("  %s\n", err.msg);
    assert_int_equal(rc, 0);
    const rs_corrupt_grid *gd = &cg->grid;
    const int F = RS_CSTAT_NUM_FIGURES, all = rs_cstat_overall(gd, gd->severities);
    NEAR(cg->summary[(size_t)all * F + RS_CSTAT_TOP1].mean, (0.71875 + 0.75) / 2);
    NEAR(cg->summary[((size_t)cg->rows + all) * F + RS_CSTAT_TOP1].mean, (0.78125 + 0.71875) / 2);
    const rs_t_interval *d = &cg->diff[((size_t)cg->rows + all) * F + RS_CSTAT_TOP1];
    assert_true(d->valid);
    assert_int_equal(d->n, 2);
    NEAR(d->mean, 0.015625);
    assert_true(fabs(d->lo - (0.015625 - 0.5956033)) < 1e-6);
    assert_true(fabs(d->hi - (0.015625 + 0.5956033)) < 1e-6);
    NEAR(cg->diff[((size_t)cg->rows + rs_cstat_family(gd, 0, gd->severities)) * F + RS_CSTAT_TOP1].mean, 0.03125);
    NEAR(cg->seed_diff[((size_t)(1 * 2 + 0) * cg->rows + all) * F + RS_CSTAT_TOP1].value, 0.0625);
    assert_true(cg->seed_diff[((size_t)(1 * 2 + 0) * cg->rows + all) * F + RS_CSTAT_TOP1].boot_valid);
    assert_false(cg->diff[(size_t)all * F + RS_CSTAT_TOP1].valid); /* the reference against itself */
    const int rel_all = gd->corruptions + RS_CFAMILIES;
    NEAR(cg->seed_rel[((size_t)(1 * 2 + 0) * cg->rel_rows + 0) * F + RS_CSTAT_TOP1].value, 0.6);
    NEAR(cg->seed_rel[((size_t)(1 * 2 + 0) * cg->rel_rows + rel_all) * F + RS_CSTAT_TOP1].value, 0.8);
    NEAR(cg->seed_rel[((size_t)(1 * 2 + 1) * cg->rel_rows + rel_all) * F + RS_CSTAT_TOP1].value, 1.125);
    NEAR(cg->rel[((size_t)cg->rel_rows + rel_all) * F + RS_CSTAT_TOP1].mean, 0.9625);
    NEAR(cg->rel[(size_t)rel_all * F + RS_CSTAT_TOP1].mean, 1); /* the reference: 100 % */
    rs_corrupt_groups_free(cg);
    rs_groups_free(g);
    rs_store_close(s);
}

int main(void)
{
    if (tu_scratch_dir("corrupt_stats", dir, sizeof dir)) {
        perror("mkdtemp");
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_spec_and_grid),
        cmocka_unit_test(test_run_figures),
        cmocka_unit_test(test_groups),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    tu_remove_dir(dir);
    return failed;
}

/* Attack statistics tests: reading the spec text (geometry, pgd eps), the ε grid of a
 * run, min-ε per patch with its histogram, median and the most changed images, the curves
 * against ε (agreement from rs_stats, accuracy with its bootstrap), the objective read from
 * an `attacks` table made here with store schema 4's layout, and the four figures, on a
 * tiny adversarial-style store built by hand (expected values worked out in comments). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "attack_plot.h"
#include "stats/attack_stats.h"
#include "input/spec_text.h"
#include "testutil.h"

static char dir[] = "/tmp/rs_test_attack_XXXXXX";

static const char *scratch(const char *name)
{
    return tu_path(dir, name);
}

#define NEAR(x, y, tol) assert_true(fabs((double)(x) - (double)(y)) < (tol))

/* ---- spec text ------------------------------------------------------------------------------ */

static void test_spec_text(void **state)
{
    (void)state;
    assert_true(rs_spec_has_geometric_op("crop:area=0.5-1+flip:p=0.5"));
    assert_true(rs_spec_has_geometric_op("noise:sigma=0.1+translate:px=2"));
    assert_true(rs_spec_has_geometric_op("rotate:deg=10"));
    assert_false(rs_spec_has_geometric_op("clean"));
    assert_false(rs_spec_has_geometric_op("noise:severity=3+jitter:b=0.2"));
    assert_false(rs_spec_has_geometric_op("base:view=0+pgd:eps=4/255,steps=10"));
    /* A spec that does not parse is taken as geometric (only matched patches compared). */
    assert_true(rs_spec_has_geometric_op("flipper:p=1"));

    rs_error err = {0};
    double e;
    assert_int_equal(rs_spec_attack_eps("base:view=0+pgd:eps=4/255,steps=10,loss=router", &e, &err), 1);
    NEAR(e, 4.0 / 255, 1e-15);
    assert_int_equal(rs_spec_attack_eps("noise:sigma=0.1+pgd:steps=3,eps=0.5", &e, &err), 1);
    NEAR(e, 0.5, 1e-15);
    assert_int_equal(rs_spec_attack_eps("pgd:eps=0", &e, &err), 1);
    NEAR(e, 0, 1e-15);
    assert_int_equal(rs_spec_attack_eps("clean", &e, &err), 0);
    assert_int_equal(rs_spec_attack_eps("noise:sigma=0.1", &e, &err), 0);
    assert_int_equal(rs_spec_attack_eps("pgd:eps=abc", &e, &err), RS_EINVAL);
    assert_non_null(strstr(err.msg, "'abc'"));
    assert_int_equal(rs_spec_attack_eps("pgd:eps=-1", &e, &err), RS_EINVAL);
    assert_int_equal(rs_spec_attack_eps("pgd:eps=1/0", &e, &err), RS_EINVAL);
    assert_int_equal(rs_spec_attack_eps("pgd:eps=4/255x", &e, &err), RS_EINVAL);
    assert_int_equal(rs_spec_attack_eps("pgd:steps=3", &e, &err), RS_EINVAL);
    assert_non_null(strstr(err.msg, "eps"));
    assert_int_equal(rs_spec_attack_eps("pgd", &e, &err), RS_EINVAL);
}

static void test_grid(void **state)
{
    (void)state;
    char *adv[] = {"clean", "base:view=0+pgd:eps=1/255", "base:view=0+pgd:eps=2/255,steps=5"};
    rs_run_info run = {.id = 7, .num_views = 3, .view_specs = adv};
    rs_error err = {0};
    double *eps;
    assert_int_equal(rs_attack_grid(&run, &eps, &err), 1);
    NEAR(eps[0], 0, 1e-15);
    NEAR(eps[1], 1.0 / 255, 1e-15);
    NEAR(eps[2], 2.0 / 255, 1e-15);
    free(eps);
    char *down[] = {"clean", "base:view=0+pgd:eps=2/255", "base:view=0+pgd:eps=2/255"};
    run.view_specs = down;
    assert_int_equal(rs_attack_grid(&run, &eps, &err), 0);
    assert_null(eps);
    assert_non_null(strstr(err.msg, "do not increase (view 2"));
    char *noise[] = {"clean", "noise:severity=1", "noise:severity=2"};
    run.view_specs = noise;
    assert_int_equal(rs_attack_grid(&run, &eps, &err), 0);
    assert_non_null(strstr(err.msg, "run 7 is not an adversarial run: a view has no pgd operation (view 1"));
    char *ref[] = {"pgd:eps=1/255", "base:view=0+pgd:eps=2/255", "base:view=0+pgd:eps=3/255"};
    run.view_specs = ref;
    assert_int_equal(rs_attack_grid(&run, &eps, &err), 0);
    char *bad[] = {"clean", "base:view=0+pgd:eps=x", "base:view=0+pgd:eps=3/255"};
    run.view_specs = bad;
    assert_int_equal(rs_attack_grid(&run, &eps, &err), RS_EINVAL);
    run.num_views = 1;
    assert_int_equal(rs_attack_grid(&run, &eps, &err), 0);
}

/* ---- a hand-made adversarial run ------------------------------------------------------------ */

enum { N = 2, V = 4, L = 2, NP = 4, T = NP + 1, R = 2, E = 4, K = 10 };

static int32_t top[N][V][L][T][R];

/* Top-1 of patch J (token J + 1) of image I, view VIEW, layer LAYER (second choice: the
 * next expert). */
static void set_top1(int i, int view, int layer, int j, int e)
{
    top[i][view][layer][j + 1][0] = e;
    top[i][view][layer][j + 1][1] = (e + 1) % E;
}

/* Views clean, 1/255, 2/255, 4/255; every token's top list (0, 1) unless changed:
 *   image 0 layer 0: patch 0 changes at view 2 only           -> min-ε view 2
 *                    patch 1 at views 1 and 3                  -> 1
 *                    patch 2 at view 3                         -> 3
 *                    patch 3 never; the class token changes at view 1 (must not count)
 *   image 0 layer 1: nothing changes                           -> never x4
 *   image 1 layer 0: patch 0 at view 1, patch 1 at view 3      -> 1, 3, never, never
 *   image 1 layer 1: patch 3 at view 2                         -> never, never, never, 2
 * Histogram layer 0: never 3, view 1: 2, view 2: 1, view 3: 2; layer 1: never 7, view 2: 1;
 * pooled: never 10, 2, 2, 2. Changed at the largest ε (view 3): image 0 two (l0 p1, p2),
 * image 1 one (l0 p1).
 * Labels 3 and 5; predictions right at view 0, image 0 wrong from view 1 on, image 1 wrong
 * at views 1 and 2 only -> accuracy 1, 0, 0, 1/2 (view 1: image 1 wrong too).
 * Top-1 agreement, layers pooled (16 pairs per view): view 1 changes img0 l0 p1 and img1 l0
 * p0 -> 14/16; view 2: img0 l0 p0, img1 l1 p3 -> 14/16; view 3: img0 l0 p1, p2, img1 l0 p1
 * -> 13/16. */
static const char *const specs[V] = {"clean", "base:view=0+pgd:eps=1/255,steps=2,loss=router",
                                     "base:view=0+pgd:eps=2/255,steps=2,loss=router",
                                     "base:view=0+pgd:eps=4/255,steps=2,loss=router"};
static const int blocks[L] = {1, 3};

static void fill_routing(void)
{
    for (int i = 0; i < N; i++)
        for (int v = 0; v < V; v++)
            for (int l = 0; l < L; l++)
                for (int t = 0; t < T; t++)
                    top[i][v][l][t][0] = 0, top[i][v][l][t][1] = 1;
    set_top1(0, 2, 0, 0, 2);
    set_top1(0, 1, 0, 1, 3), set_top1(0, 3, 0, 1, 3);
    set_top1(0, 3, 0, 2, 1);
    top[0][1][0][0][0] = 3, top[0][1][0][0][1] = 2;
    set_top1(1, 1, 0, 0, 1), set_top1(1, 3, 0, 1, 2);
    set_top1(1, 2, 1, 3, 3);
}

static int64_t write_run(const char *path)
{
    fill_routing();
    rs_store *s;
    rs_error err = {0};
    assert_int_equal(rs_store_open(path, false, &s, &err), 0);
    rs_run_spec spec = {
        .model_path = "models/fmnist-vmoe-k2.safetensors", .model_sha256 = "ab12", .model_config = "{}",
        .model_params = 1, .data = "fashion-mnist:test", .offset = 10, .count = N, .protocol = "adversarial",
        .num_views = V, .view_specs = specs, .seed = 1, .num_layers = L, .layer_blocks = blocks, .tokens = T,
        .patches = NP, .grid_h = 2, .grid_w = 2, .record_k = R, .num_experts = E, .num_classes = K, .top_k = 2,
        .channels = 1, .image_h = 8, .image_w = 8, .has_cls = true, .command = "test", .version = "test"};
    int64_t run;
    assert_int_equal(rs_store_begin_run(s, &spec, &run, &err), 0);
    static int16_t match[N][V][NP];
    static float gate[N][V][L][T][R], probs[N][V][L][T][E], pprob[N][V];
    static const char *params[N * V];
    for (int i = 0; i < N; i++)
        for (int v = 0; v < V; v++) {
            params[i * V + v] = "{}";
            for (int j = 0; j < NP; j++)
                match[i][v][j] = (int16_t)j;
        }
    for (size_t q = 0; q < sizeof probs / sizeof(float); q++)
        ((float *)probs)[q] = 1.0f / E;
    for (size_t q = 0; q < sizeof gate / sizeof(float); q++) /* uniform: every gate is 1/E (store.h's check) */
        ((float *)gate)[q] = 1.0f / E;
    int32_t labels[N] = {3, 5}, pred[N][V] = {{3, 0, 0, 0}, {5, 0, 0, 5}};
    rs_batch b = {.first = 10, .count = N, .num_views = V, .num_layers = L, .tokens = T, .record_k = R,
                  .num_experts = E, .patches = NP, .labels = labels, .predicted = &pred[0][0],
                  .pred_prob = &pprob[0][0], .view_params = params, .match = &match[0][0][0],
                  .top_idx = &top[0][0][0][0][0], .top_gate = &gate[0][0][0][0][0], .probs = &probs[0][0][0][0][0]};
    int rc = rs_store_write_batch(s, run, &b, &err);
    if (rc)
        print_message("  %s\n", err.msg);
    assert_int_equal(rc, 0);
    assert_int_equal(rs_store_set_status(s, run, RS_RUN_DONE, NULL, &err), 0);
    rs_store_close(s);
    return run;
}

typedef struct loaded {
    rs_store *store;
    rs_run_info info;
    rs_stats *st;
    rs_attack_stats *as;
} loaded;

static void load(const char *path, int64_t run, loaded *x)
{
    rs_error err = {0};
    memset(x, 0, sizeof *x);
    assert_int_equal(rs_store_open(path, true, &x->store, &err), 0);
    assert_int_equal(rs_store_get_run(x->store, run, &x->info, &err), 0);
    rs_stats_options opt = {.resamples = 200, .seed = 5, .name = path};
    assert_int_equal(rs_stats_compute(x->store, run, &opt, &x->st, &err), 0);
    int rc = rs_attack_stats_compute(x->store, &x->info, x->st, &opt, &x->as, &err);
    if (rc)
        print_message("  %s\n", err.msg);
    assert_int_equal(rc, 0);
}

static void unload(loaded *x)
{
    rs_attack_stats_free(x->as);
    rs_stats_free(x->st);
    rs_run_info_clear(&x->info);
    rs_store_close(x->store);
}

static void test_min_eps(void **state)
{
    (void)state;
    const char *path = scratch("adv.db");
    int64_t run = write_run(path);
    loaded x;
    load(path, run, &x);
    const rs_attack_stats *as = x.as;
    assert_int_equal(as->images, N);
    assert_int_equal(as->first_image, 10);
    static const uint8_t want[N][L][NP] = {{{2, 1, 3, 0}, {0, 0, 0, 0}}, {{1, 3, 0, 0}, {0, 0, 0, 2}}};
    assert_memory_equal(as->first, want, sizeof want);
    static const int64_t hist[L + 1][V] = {{3, 2, 1, 2}, {7, 0, 1, 0}, {10, 2, 2, 2}};
    assert_memory_equal(as->hist, hist, sizeof hist);
    assert_int_equal(as->changed_last[0], 2);
    assert_int_equal(as->changed_last[1], 1);
    assert_int_equal(as->median_first, 0); /* 16 pairs: rank 8 is never (only 6 change) */

    double val[NP];
    rs_attack_min_eps(as, 0, 0, val); /* image 0 */
    NEAR(val[0], 2.0 / 255, 1e-15);
    NEAR(val[1], 1.0 / 255, 1e-15);
    NEAR(val[2], 4.0 / 255, 1e-15);
    assert_true(isinf(val[3]));
    /* Lower median of two images: p0 {2,1} -> 1; p1 {1,3} -> 1; p2 {3,never} -> 3; p3 never. */
    rs_attack_min_eps(as, -1, 0, val);
    NEAR(val[0], 1.0 / 255, 1e-15);
    NEAR(val[1], 1.0 / 255, 1e-15);
    NEAR(val[2], 4.0 / 255, 1e-15);
    assert_true(isinf(val[3]));
    rs_attack_min_eps(as, -1, 1, val); /* p3 {never, 2} -> 2 */
    assert_true(isinf(val[0]));
    NEAR(val[3], 2.0 / 255, 1e-15);

    /* Curves. */
    const rs_stats_rate *c = as->curve;
    NEAR(c[0 * RS_ATTACK_NUM_CURVES + RS_ATTACK_TOP1].value, 1, 1e-12);
    assert_true(c[0 * RS_ATTACK_NUM_CURVES + RS_ATTACK_TOP1].boot_valid);
    NEAR(c[1 * RS_ATTACK_NUM_CURVES + RS_ATTACK_TOP1].value, 14.0 / 16, 1e-12);
    NEAR(c[2 * RS_ATTACK_NUM_CURVES + RS_ATTACK_TOP1].value, 14.0 / 16, 1e-12);
    NEAR(c[3 * RS_ATTACK_NUM_CURVES + RS_ATTACK_TOP1].value, 13.0 / 16, 1e-12);
    static const double acc[V] = {1, 0, 0, 0.5};
    for (int v = 0; v < V; v++) {
        const rs_stats_rate *a = &c[v * RS_ATTACK_NUM_CURVES + RS_ATTACK_ACCURACY];
        assert_true(a->valid);
        NEAR(a->value, acc[v], 1e-12);
        assert_true(a->boot_valid);
        assert_true(a->boot_lo <= a->value + 1e-12 && a->value <= a->boot_hi + 1e-12);
    }
    /* Both images right (view 0) or both wrong (views 1, 2): every resample agrees. */
    NEAR(c[0 * RS_ATTACK_NUM_CURVES + RS_ATTACK_ACCURACY].boot_lo, 1, 1e-12);
    NEAR(c[2 * RS_ATTACK_NUM_CURVES + RS_ATTACK_ACCURACY].boot_hi, 0, 1e-12);
    const rs_stats_rate *a3 = &c[3 * RS_ATTACK_NUM_CURVES + RS_ATTACK_ACCURACY];
    assert_true(a3->boot_lo == 0 && a3->boot_hi == 1); /* 200 resamples of two images reach both ends */
    NEAR(as->routing_changes[0].value, 0, 1e-12);
    assert_true(as->routing_changes[3].valid && as->routing_changes[3].value > 0);
    unload(&x);
}

/* The attacks table as store schema 4 lays it out, with rows of OBJECTIVE (float32 LE). */
static void add_attack(sqlite3 *db, int64_t run, int image, int view, int steps, const float *objective, int n)
{
    sqlite3_stmt *q;
    assert_int_equal(sqlite3_prepare_v2(db, "INSERT INTO attacks VALUES (?1, ?2, ?3, 0.01, 0.1, ?4, ?5)", -1, &q,
                                        NULL), SQLITE_OK);
    unsigned char blob[64];
    for (int s = 0; s < n; s++) {
        uint32_t u;
        memcpy(&u, &objective[s], 4);
        for (int b = 0; b < 4; b++)
            blob[4 * s + b] = (unsigned char)(u >> (8 * b));
    }
    sqlite3_bind_int64(q, 1, run);
    sqlite3_bind_int(q, 2, image);
    sqlite3_bind_int(q, 3, view);
    sqlite3_bind_int(q, 4, steps);
    sqlite3_bind_blob(q, 5, blob, 4 * n, SQLITE_TRANSIENT);
    assert_int_equal(sqlite3_step(q), SQLITE_DONE);
    sqlite3_finalize(q);
}

/* rs_attack_objective on a store opened for the call: the test changes the file between calls. */
static int objective(const char *path, const rs_run_info *run, double **mean, int *steps, rs_error *err)
{
    rs_store *store;
    int rc = rs_store_open(path, true, &store, err);
    if (!rc) {
        rc = rs_attack_objective(store, path, run, mean, steps, err);
        rs_store_close(store);
    }
    return rc;
}

static void test_objective(void **state)
{
    (void)state;
    char path[1100]; /* scratch() reuses its buffers: keep a copy */
    snprintf(path, sizeof path, "%s", scratch("obj.db"));
    int64_t run = write_run(path);
    loaded x;
    load(path, run, &x);
    rs_error err = {0};
    double *mean;
    int steps;
    /* No attacks table (stores before schema 4): nothing, no error. */
    assert_int_equal(objective(path, &x.info, &mean, &steps, &err), 0);
    assert_int_equal(steps, 0);
    assert_null(mean);

    sqlite3 *db;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "CREATE TABLE IF NOT EXISTS attacks(run_id INTEGER, image INTEGER, view INTEGER, "
                                      "linf REAL, l2 REAL, steps INTEGER, objective BLOB, "
                                      "PRIMARY KEY(run_id, image, view))", NULL, NULL, NULL), SQLITE_OK);
    /* View 1: [1,2,3] and [3,4,5] -> [2,3,4]; view 2: one image, one step [0.5,1.5] -> step 2
     * n/a; view 3: no row. */
    add_attack(db, run, 10, 1, 2, (float[]){1, 2, 3}, 3);
    add_attack(db, run, 11, 1, 2, (float[]){3, 4, 5}, 3);
    add_attack(db, run, 10, 2, 1, (float[]){0.5f, 1.5f}, 2);
    assert_int_equal(objective(path, &x.info, &mean, &steps, &err), 0);
    assert_int_equal(steps, 2);
    NEAR(mean[1 * 3 + 0], 2, 1e-12);
    NEAR(mean[1 * 3 + 1], 3, 1e-12);
    NEAR(mean[1 * 3 + 2], 4, 1e-12);
    NEAR(mean[2 * 3 + 0], 0.5, 1e-12);
    NEAR(mean[2 * 3 + 1], 1.5, 1e-12);
    assert_true(isnan(mean[2 * 3 + 2]));
    assert_true(isnan(mean[3 * 3 + 0]) && isnan(mean[0]));

    /* The four figures draw. */
    const rs_attack_stats *one[] = {x.as};
    const rs_run_info *runs[] = {&x.info};
    assert_int_equal(rs_render_attack_curves(one, runs, 1, scratch("curves.png"), &err), 0);
    assert_int_equal(rs_render_min_eps_map(x.as, &x.info, -1, -1, scratch("map.svg"), &err), 0);
    assert_int_equal(rs_render_min_eps_map(x.as, &x.info, 1, 1, scratch("map1.png"), &err), 0);
    assert_int_equal(rs_render_min_eps_hist(x.as, &x.info, scratch("hist.pdf"), &err), 0);
    assert_int_equal(rs_render_attack_objective(mean, steps, x.as, &x.info, scratch("obj.png"), &err), 0);
    struct stat sb;
    assert_int_equal(stat(scratch("obj.png"), &sb), 0);
    assert_true(sb.st_size > 1000);
    assert_int_equal(rs_render_min_eps_map(x.as, &x.info, 2, -1, scratch("x.png"), &err), RS_EINVAL);
    assert_int_equal(rs_render_min_eps_map(x.as, &x.info, -1, 2, scratch("x.png"), &err), RS_EINVAL);
    free(mean);

    /* A blob that does not hold steps + 1 floats is a format error naming the file. */
    add_attack(db, run, 11, 2, 3, (float[]){1, 2}, 2);
    assert_int_equal(objective(path, &x.info, &mean, &steps, &err), RS_EFORMAT);
    assert_non_null(strstr(err.msg, "obj.db"));
    assert_null(mean);
    sqlite3_close(db);
    unload(&x);
}

int main(void)
{
    if (!mkdtemp(dir))
        return 1;
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_spec_text), cmocka_unit_test(test_grid),
                                       cmocka_unit_test(test_min_eps), cmocka_unit_test(test_objective)};
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    tu_remove_dir(dir);
    return failed;
}

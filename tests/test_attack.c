/* The attack engine (analyze/replay/attack.h) against closed-form oracles: every attack stays in its
 * ε-ball and in [0,1] (vmoe mode excepted), vmoe mode matches a two-step case worked out by
 * hand, ε = 0 returns the start pixels bit for bit, and random starts depend on the seed
 * only (not on the batch or the image's place in it). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "replay/attack.h"
#include "input/view.h"

enum { NUMEL = 48, MAX_B = 4, MAX_STEPS = 64 };

/* value = -sum (x - c)^2 per image: the gradient 2 (c - x) points at C, so attacks run
 * into the ball's walls and the [0,1] clip. C holds one centre per image. */
typedef struct quadratic {
    const float *c;
    int calls;
} quadratic;

static int quadratic_oracle(void *ctx, const float *x, int batch, float *value, float *grad, rs_error *err)
{
    (void)err;
    quadratic *q = ctx;
    q->calls++;
    for (int i = 0; i < batch; i++) {
        double v = 0;
        for (int k = 0; k < NUMEL; k++) {
            size_t j = (size_t)i * NUMEL + k;
            double d = (double)q->c[j] - x[j];
            v -= d * d;
            grad[j] = (float)(2 * d);
        }
        value[i] = (float)v;
    }
    return 0;
}

static int failing_oracle(void *ctx, const float *x, int batch, float *value, float *grad, rs_error *err)
{
    (void)ctx, (void)x, (void)batch, (void)value, (void)grad;
    return rs_error_set(err, RS_EIO, "oracle broke");
}

static rs_attack_spec parse_attack(const char *text)
{
    rs_view_spec spec;
    rs_error err = {0};
    if (rs_view_spec_parse(text, &spec, &err))
        fail_msg("%s", err.msg);
    assert_true(spec.attack);
    return spec.pgd;
}

/* Start pixels on and near the [0,1] walls, and centres far outside the ball. */
static void fill(float *x0, float *c, int batch)
{
    for (int i = 0; i < batch * NUMEL; i++) {
        x0[i] = (float)((i * 37 % 11) / 10.0);
        c[i] = (i * 13 % 7) < 3 ? -2.0f : 3.0f;
        if (i % 9 == 0)
            c[i] = x0[i]; /* zero gradient there */
    }
}

typedef struct outcome {
    float x[MAX_B * NUMEL], linf[MAX_B], l2[MAX_B], objective[MAX_B * (MAX_STEPS + 1)];
} outcome;

static void run(const char *text, const float *x0, const float *c, int batch, const uint64_t *seeds, outcome *o)
{
    rs_attack_spec a = parse_attack(text);
    quadratic q = {.c = c};
    rs_attack_record_out rec = {o->linf, o->l2, o->objective};
    rs_error err = {0};
    if (rs_attack_run(&a, x0, batch, NUMEL, seeds, quadratic_oracle, &q, o->x, &rec, &err))
        fail_msg("%s", err.msg);
    assert_int_equal(q.calls, a.steps + 1);
}

static void test_stays_in_ball_and_box(void **state)
{
    (void)state;
    static const char *const specs[] = {
        "pgd:eps=8/255", "pgd:eps=4/255,steps=7,alpha=3/255", "pgd:eps=0.3,steps=5,start=zero",
        "pgd:eps=0.5,norm=l2", "pgd:eps=2,norm=l2,steps=3,alpha=1",
    };
    float x0[MAX_B * NUMEL], c[MAX_B * NUMEL];
    uint64_t seeds[MAX_B] = {1, 2, 3, 4};
    fill(x0, c, MAX_B);
    for (size_t s = 0; s < sizeof specs / sizeof *specs; s++) {
        rs_view_spec spec;
        rs_error err;
        assert_int_equal(rs_view_spec_parse(specs[s], &spec, &err), 0);
        outcome o;
        run(specs[s], x0, c, MAX_B, seeds, &o);
        const rs_attack_spec *a = &spec.pgd;
        for (int i = 0; i < MAX_B; i++) {
            double m = 0, s2 = 0;
            for (int k = 0; k < NUMEL; k++) {
                size_t j = (size_t)i * NUMEL + k;
                assert_true(o.x[j] >= 0 && o.x[j] <= 1);
                double d = fabs((double)o.x[j] - x0[j]);
                m = d > m ? d : m;
                s2 += d * d;
            }
            double norm = a->norm == RS_ATTACK_LINF ? m : sqrt(s2);
            if (norm > a->eps * (1 + 1e-6) + 1e-7)
                fail_msg("%s image %d: perturbation %.9g outside eps %.9g", specs[s], i, norm, a->eps);
            assert_float_equal(o.linf[i], m, 1e-6);
            assert_float_equal(o.l2[i], sqrt(s2), 1e-5);
            /* The attack pushes toward the centres: the objective rises from start to end. */
            assert_true(o.objective[i * (a->steps + 1) + a->steps] > o.objective[i * (a->steps + 1)]);
        }
        print_message("  %s: linf %.5f l2 %.5f\n", specs[s], o.linf[0], o.l2[0]);
    }
}

/* A linear pull from a zero start walks straight to the wall: x0 + eps sign(g), clipped. */
static void test_linf_reaches_the_wall(void **state)
{
    (void)state;
    float x0[NUMEL], c[NUMEL];
    fill(x0, c, 1);
    outcome o;
    uint64_t seed = 9;
    run("pgd:eps=0.125,steps=4,alpha=0.0625,start=zero", x0, c, 1, &seed, &o);
    for (int k = 0; k < NUMEL; k++) {
        double want = c[k] > x0[k] ? x0[k] + 0.125 : c[k] < x0[k] ? x0[k] - 0.125 : x0[k];
        want = want < 0 ? 0 : want > 1 ? 1 : want;
        assert_float_equal(o.x[k], (float)want, 0);
    }
}

/* x0 = (0.5, 0.25, 0, 1), c = (1, 0, 0.1, 1.6), eps = 0.5 in 2 steps of 0.25:
 *   g0 = 2(c - x0) = (1, -0.5, 0.2, 1.2)          -> x1 = (0.75, 0, 0.25, 1.25)
 *   g1 = 2(c - x1) = (0.5, 0, -0.3, 0.7)          -> x2 = (1, 0, 0, 1.5)
 * (the second coordinate has no gradient and stays; the last leaves [0,1]: no clip).
 * Objective -|c - x|^2: 0.6825, 0.2075, 0.02, negated. */
static void test_vmoe_two_steps_by_hand(void **state)
{
    (void)state;
    float x0[NUMEL] = {0.5f, 0.25f, 0.0f, 1.0f}, c[NUMEL] = {1.0f, 0.0f, 0.1f, 1.6f};
    for (int k = 4; k < NUMEL; k++)
        x0[k] = c[k] = 0.5f;
    outcome o;
    uint64_t seed = 1;
    rs_attack_spec a = parse_attack("pgd:eps=0.5,steps=2,mode=vmoe");
    assert_false(a.random_start);
    assert_float_equal(a.alpha, 0.25, 0);
    run("pgd:eps=0.5,steps=2,mode=vmoe", x0, c, 1, &seed, &o);
    const float want[4] = {1.0f, 0.0f, 0.0f, 1.5f};
    for (int k = 0; k < 4; k++)
        assert_float_equal(o.x[k], want[k], 0);
    for (int k = 4; k < NUMEL; k++)
        assert_float_equal(o.x[k], 0.5f, 0);
    assert_float_equal(o.objective[0], -0.6825, 1e-6);
    assert_float_equal(o.objective[1], -0.2075, 1e-6);
    assert_float_equal(o.objective[2], -0.02, 1e-6);
    assert_float_equal(o.linf[0], 0.5, 0);
    assert_float_equal(o.l2[0], sqrt(0.25 + 0.0625 + 0.25), 1e-6);
}

static void test_eps_zero_returns_the_start(void **state)
{
    (void)state;
    static const char *const specs[] = {"pgd:eps=0", "pgd:eps=0,alpha=0.1", "pgd:eps=0,norm=l2,alpha=0.5",
                                        "pgd:eps=0/255,mode=vmoe,steps=3"};
    float x0[MAX_B * NUMEL], c[MAX_B * NUMEL];
    uint64_t seeds[MAX_B] = {5, 6, 7, 8};
    fill(x0, c, MAX_B);
    for (size_t s = 0; s < sizeof specs / sizeof *specs; s++) {
        outcome o;
        run(specs[s], x0, c, MAX_B, seeds, &o);
        assert_memory_equal(o.x, x0, sizeof(float) * MAX_B * NUMEL);
        for (int i = 0; i < MAX_B; i++)
            assert_true(o.linf[i] == 0 && o.l2[i] == 0);
    }
}

/* Image 2 of a batch of 4 and the same image alone, with its seed: the same pixels; the
 * same seeds again: the same; another seed: another start. */
static void test_seeded_starts(void **state)
{
    (void)state;
    static const char *const specs[] = {"pgd:eps=8/255,steps=3", "pgd:eps=0.5,norm=l2,steps=3"};
    float x0[MAX_B * NUMEL], c[MAX_B * NUMEL];
    uint64_t seeds[MAX_B] = {11, 12, 13, 14}, other = 99;
    fill(x0, c, MAX_B);
    for (size_t s = 0; s < sizeof specs / sizeof *specs; s++) {
        outcome all, again, alone, moved;
        run(specs[s], x0, c, MAX_B, seeds, &all);
        run(specs[s], x0, c, MAX_B, seeds, &again);
        assert_memory_equal(all.x, again.x, sizeof all.x);
        run(specs[s], x0 + 2 * NUMEL, c + 2 * NUMEL, 1, &seeds[2], &alone);
        assert_memory_equal(alone.x, all.x + 2 * NUMEL, sizeof(float) * NUMEL);
        assert_memory_equal(alone.objective, all.objective + 2 * 4, sizeof(float) * 4);
        run(specs[s], x0 + 2 * NUMEL, c + 2 * NUMEL, 1, &other, &moved);
        assert_true(memcmp(moved.objective, alone.objective, sizeof(float)) != 0);
    }
}

static void test_oracle_errors_pass_through(void **state)
{
    (void)state;
    rs_attack_spec a = parse_attack("pgd:eps=0.1");
    float x0[NUMEL] = {0}, x[NUMEL], linf, l2, objective[16];
    rs_attack_record_out rec = {&linf, &l2, objective};
    uint64_t seed = 1;
    rs_error err = {0};
    assert_int_equal(rs_attack_run(&a, x0, 1, NUMEL, &seed, failing_oracle, NULL, x, &rec, &err), RS_EIO);
    assert_string_equal(err.msg, "oracle broke");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stays_in_ball_and_box),
        cmocka_unit_test(test_linf_reaches_the_wall),
        cmocka_unit_test(test_vmoe_two_steps_by_hand),
        cmocka_unit_test(test_eps_zero_returns_the_start),
        cmocka_unit_test(test_seeded_starts),
        cmocka_unit_test(test_oracle_errors_pass_through),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

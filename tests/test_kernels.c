/* Kernel tests: the vectorised exp and GELUs against libm in double precision, and the
 * row kernels against small cases worked out by hand (LayerNorm also on rows whose
 * variance is of the order of its epsilon). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "kernels.h"

#define N 200001

static void test_exp_relative_error(void **state)
{
    (void)state;
    float *x = malloc(sizeof(float) * N), *y = malloc(sizeof(float) * N);
    for (int i = 0; i < N; i++)
        x[i] = -87.0f + 174.0f * (float)i / (N - 1); /* the whole normal range */
    rs_exp(y, x, N);
    double worst = 0;
    for (int i = 0; i < N; i++) {
        double want = exp((double)x[i]);
        worst = fmax(worst, fabs(y[i] - want) / want);
    }
    print_message("exp: max relative error %.2e\n", worst);
    assert_true(worst <= 2e-7);
    /* Far below the range: tiny, never negative or NaN (softmax of -inf-like scores). */
    float lo[2] = {-1000.0f, -100.0f}, out[2];
    rs_exp(out, lo, 2);
    assert_true(out[0] >= 0 && out[0] < 1e-37f && out[1] >= 0 && out[1] < 1e-37f);
    free(x);
    free(y);
}

static void test_gelu_erf(void **state)
{
    (void)state;
    float *x = malloc(sizeof(float) * N);
    double worst = 0;
    for (int i = 0; i < N; i++)
        x[i] = -12.0f + 24.0f * (float)i / (N - 1);
    float *y = malloc(sizeof(float) * N);
    memcpy(y, x, sizeof(float) * N);
    rs_gelu_erf(y, N);
    for (int i = 0; i < N; i++) {
        double v = x[i], want = 0.5 * v * (1.0 + erf(v / sqrt(2.0)));
        worst = fmax(worst, fabs(y[i] - want) / fmax(1.0, fabs(v)));
    }
    print_message("gelu erf: max error %.2e (relative to max(1,|x|))\n", worst);
    assert_true(worst <= 1e-6);
    free(x);
    free(y);
}

static void test_gelu_tanh(void **state)
{
    (void)state;
    float x[N / 10];
    double worst = 0;
    for (int i = 0; i < N / 10; i++) {
        x[i] = -12.0f + 24.0f * (float)i / (N / 10 - 1);
    }
    float y[N / 10];
    memcpy(y, x, sizeof y);
    rs_gelu_tanh(y, N / 10);
    for (int i = 0; i < N / 10; i++) {
        double v = x[i];
        double want = 0.5 * v * (1.0 + tanh(sqrt(2.0 / M_PI) * (v + 0.044715 * v * v * v)));
        worst = fmax(worst, fabs(y[i] - want) / fmax(1.0, fabs(v)));
    }
    print_message("gelu tanh: max error %.2e\n", worst);
    assert_true(worst <= 1e-6);
}

static void test_gelu_by_hand(void **state)
{
    (void)state;
    float x[4] = {1, -1, 2, -2};
    rs_gelu_erf(x, 4);
    /* gelu(1) = 0.8413447..., gelu(-1) = -0.1586553..., gelu(2) = 1.9544997..., gelu(-2) = -0.0455003 */
    assert_float_equal(x[0], 0.84134475f, 1e-6);
    assert_float_equal(x[1], -0.15865525f, 1e-6);
    assert_float_equal(x[2], 1.95449974f, 1e-6);
    assert_float_equal(x[3], -0.04550026f, 1e-6);
}

static void test_layer_norm_by_hand(void **state)
{
    (void)state;
    /* Row (1,2,3,4): mean 2.5, variance 1.25, so (x - 2.5)/sqrt(1.25 + eps). */
    float x[8] = {1, 2, 3, 4, 5, 5, 5, 5}, y[8];
    float w[4] = {1, 2, 1, 1}, b[4] = {0, 0, 0, 1};
    rs_layer_norm(y, x, w, b, 2, 4, 1e-6f);
    double s = 1.0 / sqrt(1.25 + 1e-6);
    assert_float_equal(y[0], -1.5 * s, 1e-6);
    assert_float_equal(y[1], -0.5 * s * 2, 1e-6);
    assert_float_equal(y[2], 0.5 * s, 1e-6);
    assert_float_equal(y[3], 1.5 * s + 1, 1e-6);
    /* A constant row normalises to zero, then the bias. */
    assert_float_equal(y[4], 0, 1e-6);
    assert_float_equal(y[7], 1, 1e-6);
}

/* Rows whose variance is of the order of epsilon, where epsilon changes the result by tens of
 * percent (the row above, variance 1.25, cannot tell 1e-6 from 0). Each row is 0.5 +
 * k_i / 1024 with integer k_i summing to 0, so its mean is 0.5 exactly in float and its
 * variance sum(k_i²) / d / 2^20 (about 1e-6 to 1e-5); lengths 4, 11 and 19 leave remainders
 * after the vector lanes. Expected values in double: (x − mean) / sqrt(var + eps) · w + b,
 * for the epsilons of the configs (1e-6: V-MoE and timm; 1e-5: a golden model) and 1e-2. */
static void test_layer_norm_small_variance(void **state)
{
    (void)state;
    static const int k4[4] = {-1, 2, 0, -1}, k11[11] = {3, -1, 0, 2, -4, 1, 0, -2, 1, 1, -1},
                     k19[19] = {1, -2, 3, 0, -1, 2, -3, 1, 0, 4, -4, 2, -1, 0, 1, -2, 1, 0, -2};
    const int *rows[3] = {k4, k11, k19};
    const int lens[3] = {4, 11, 19};
    const float eps[3] = {1e-6f, 1e-5f, 1e-2f};
    for (int r = 0; r < 3; r++) {
        int d = lens[r];
        float x[19], w[19], b[19], y[19];
        int sum = 0;
        double ss = 0;
        for (int i = 0; i < d; i++) {
            x[i] = 0.5f + (float)rows[r][i] / 1024;
            w[i] = 1 + 0.25f * (float)(i % 3);
            b[i] = 0.125f * (float)(i % 2);
            sum += rows[r][i];
            ss += (double)rows[r][i] * rows[r][i];
        }
        assert_int_equal(sum, 0);
        double var = ss / d / 1048576.0;
        for (int e = 0; e < 3; e++) {
            rs_layer_norm(y, x, w, b, 1, (size_t)d, eps[e]);
            double s = 1 / sqrt(var + (double)eps[e]);
            for (int i = 0; i < d; i++) {
                double want = rows[r][i] / 1024.0 * s * w[i] + b[i];
                if (fabs(y[i] - want) > 1e-4 * fmax(1, fabs(want)))
                    fail_msg("d %d eps %g (variance %.3g): y[%d] = %.7g, want %.7g", d, (double)eps[e], var, i,
                             (double)y[i], want);
            }
        }
    }
}

static void test_bias_rows_by_hand(void **state)
{
    (void)state;
    /* Two rows of 2 inside a stride of 3: the third column is never touched. */
    float x[6] = {1, 2, 9, 3, 4, 9}, b[2] = {10, 20};
    rs_add_bias(x, b, 2, 2, 3);
    float want[6] = {11, 22, 9, 13, 24, 9};
    assert_memory_equal(x, want, sizeof x);
    rs_fill_rows(x, b, 2, 2, 3);
    float filled[6] = {10, 20, 9, 10, 20, 9};
    assert_memory_equal(x, filled, sizeof x);
}

static void test_softmax_by_hand(void **state)
{
    (void)state;
    /* softmax(0, ln 2, ln 3) = (1, 2, 3) / 6; the second row is shifted by 1000 and must
     * give the same (max subtraction keeps it finite). */
    float x[6] = {0, 0.69314718f, 1.09861229f, 1000, 1000.69314718f, 1001.09861229f};
    rs_softmax_rows(x, 2, 3);
    for (int r = 0; r < 2; r++) {
        assert_float_equal(x[3 * r + 0], 1.0 / 6, 2e-5);
        assert_float_equal(x[3 * r + 1], 2.0 / 6, 2e-5);
        assert_float_equal(x[3 * r + 2], 3.0 / 6, 2e-5);
    }
}

/* Non-finite inputs (a NaN weight once reached here) are well defined: exp clamps before
 * it converts to an integer, which for a NaN was undefined behaviour (UBSan, in the
 * sanitizer build, stops the test if it comes back). Infinities clamp to the range ends;
 * a NaN goes to the lower end, so it cannot make an infinity of its own. */
static void test_non_finite_inputs(void **state)
{
    (void)state;
    float in[4] = {NAN, INFINITY, -INFINITY, -NAN}, out[4];
    rs_exp(out, in, 4);
    assert_true(out[0] >= 0 && out[0] < 1e-37f);
    assert_true(isfinite(out[1]) && out[1] > 1e38f);
    assert_true(out[2] >= 0 && out[2] < 1e-37f);
    assert_true(out[3] >= 0 && out[3] < 1e-37f);
    float g[4];
    memcpy(g, in, sizeof g);
    rs_gelu_erf(g, 4);
    assert_true(g[1] == INFINITY);
    memcpy(g, in, sizeof g);
    rs_gelu_tanh(g, 4);
    assert_true(g[1] == INFINITY);
    float rows[2][4] = {{NAN, 0, 1, 2}, {INFINITY, 0, 1, 2}};
    rs_softmax_rows(&rows[0][0], 2, 4); /* defined, whatever it gives */
    float x[4] = {NAN, 1, 2, 3}, w[4] = {1, 1, 1, 1}, b[4] = {0}, y[4];
    rs_layer_norm(y, x, w, b, 1, 4, 1e-6f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exp_relative_error), cmocka_unit_test(test_gelu_erf),
        cmocka_unit_test(test_gelu_tanh),          cmocka_unit_test(test_gelu_by_hand),
        cmocka_unit_test(test_layer_norm_by_hand), cmocka_unit_test(test_softmax_by_hand),
        cmocka_unit_test(test_bias_rows_by_hand), cmocka_unit_test(test_non_finite_inputs),
        cmocka_unit_test(test_layer_norm_small_variance),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* The model's input and output rules (predict.h) on cases worked out by hand:
 * normalisation and its backward, and the prediction read from logits. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "predict.h"

/* Two channels of a 1x3 image: mean 0.5 / 0.25, std 0.5 / 2. */
static const rs_config CFG = {.image_h = 1, .image_w = 3, .channels = 2, .mean = {0.5f, 0.25f}, .std = {0.5f, 2.0f}};

static void test_normalize_by_hand(void **state)
{
    (void)state;
    float img[6] = {0.0f, 0.5f, 1.0f, 0.25f, 1.0f, 0.0f};
    rs_model_normalize(&CFG, img);
    const float want[6] = {-1.0f, 0.0f, 1.0f, 0.0f, 0.375f, -0.125f}; /* exact in binary */
    for (int i = 0; i < 6; i++)
        assert_true(img[i] == want[i]);
    /* A span of channel 1 into another buffer: the same values, the source untouched. */
    const float src[3] = {0.25f, 1.0f, 0.0f};
    float dst[3];
    rs_model_normalize_span(&CFG, 1, src, dst, 3);
    for (int i = 0; i < 3; i++)
        assert_true(dst[i] == want[3 + i]);
    assert_true(src[1] == 1.0f);
}

static void test_normalize_backward_by_hand(void **state)
{
    (void)state;
    /* d normalised / d pixel = 1 / std: 0.5 -> times 2, 2 -> halved. */
    float g[3] = {1.0f, -3.0f, 0.5f};
    rs_model_normalize_backward_span(&CFG, 0, g, g, 3);
    assert_true(g[0] == 2.0f && g[1] == -6.0f && g[2] == 1.0f);
    rs_model_normalize_backward_span(&CFG, 1, g, g, 3);
    assert_true(g[0] == 1.0f && g[1] == -3.0f && g[2] == 0.5f);
}

static void test_predict_by_hand(void **state)
{
    (void)state;
    /* Classes 1 and 2 tie: the lower wins; p = 1 / (e^-2 + 1 + 1 + e^-3). */
    const float logits[4] = {1.0f, 3.0f, 3.0f, 0.0f};
    float p = -1.0f;
    assert_int_equal(rs_model_predict(logits, 4, &p), 1);
    assert_float_equal(p, 1.0 / (exp(-2.0) + 2.0 + exp(-3.0)), 1e-7);
    assert_int_equal(rs_model_predict(logits, 4, NULL), 1);
    /* Equal logits: class 0 with 1/K; one class: itself with probability 1. */
    const float flat[5] = {-2.0f, -2.0f, -2.0f, -2.0f, -2.0f};
    assert_int_equal(rs_model_predict(flat, 5, &p), 0);
    assert_true(p == 0.2f);
    assert_int_equal(rs_model_predict(logits + 3, 1, &p), 0);
    assert_true(p == 1.0f);
    /* The largest last. */
    const float last[3] = {-1.0f, 0.5f, 0.75f};
    assert_int_equal(rs_model_predict(last, 3, NULL), 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_normalize_by_hand),
        cmocka_unit_test(test_normalize_backward_by_hand),
        cmocka_unit_test(test_predict_by_hand),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

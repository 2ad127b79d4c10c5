/* Half-precision conversion: every half survives half -> float -> half, and rounding of
 * floats to half follows round-to-nearest-even on cases worked out by hand; so does the
 * rounding of floats to bfloat16 (vmoe's bf16 dispatch), NaN kept a NaN. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "half.h"

static void test_round_trip_every_half(void **state)
{
    (void)state;
    for (uint32_t h = 0; h < 65536; h++) {
        float f = rs_half_to_float((uint16_t)h);
        if (isnan(f))
            assert_true(isnan(rs_half_to_float(rs_float_to_half(f))));
        else
            assert_int_equal(rs_float_to_half(f), h);
    }
}

static void test_values_by_hand(void **state)
{
    (void)state;
    assert_int_equal(rs_float_to_half(1.0f), 0x3c00);
    assert_int_equal(rs_float_to_half(-2.0f), 0xc000);
    assert_int_equal(rs_float_to_half(0.5f), 0x3800);
    assert_int_equal(rs_float_to_half(65504.0f), 0x7bff);      /* largest half */
    assert_int_equal(rs_float_to_half(65519.0f), 0x7bff);      /* still rounds down */
    assert_int_equal(rs_float_to_half(65520.0f), 0x7c00);      /* the tie goes to infinity */
    assert_int_equal(rs_float_to_half(1e10f), 0x7c00);
    /* 1 + 2^-11 is halfway between 1 and 1 + 2^-10: to even, 1. */
    assert_int_equal(rs_float_to_half(1.0f + 0x1p-11f), 0x3c00);
    /* 1 + 3*2^-11 is halfway between 1 + 2^-10 (odd) and 1 + 2^-9: to even, up. */
    assert_int_equal(rs_float_to_half(1.0f + 3 * 0x1p-11f), 0x3c02);
    assert_int_equal(rs_float_to_half(1.0f + 0x1p-11f + 0x1p-20f), 0x3c01); /* above the tie */
    /* Subnormals: 2^-24 is the smallest; 2^-25 ties to 0 (even); 3*2^-25 ties to 2*2^-24. */
    assert_int_equal(rs_float_to_half(0x1p-24f), 0x0001);
    assert_int_equal(rs_float_to_half(0x1p-25f), 0x0000);
    assert_int_equal(rs_float_to_half(3 * 0x1p-25f), 0x0002);
    assert_int_equal(rs_float_to_half(0x1p-14f), 0x0400);      /* smallest normal */
    assert_int_equal(rs_float_to_half(-0.0f), 0x8000);
    assert_true(isnan(rs_half_to_float(rs_float_to_half(NAN))));
    assert_true(rs_half_to_float(0x7c00) == INFINITY);
}

static float from_bits(uint32_t u)
{
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static uint32_t bits_of(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static void test_bf16_by_hand(void **state)
{
    (void)state;
    /* bfloat16 keeps 7 mantissa bits: near 1 the step is 2^-7. */
    assert_true(rs_float_round_bf16(1.0f) == 1.0f);
    assert_true(rs_float_round_bf16(1.0f + 0x1p-8f) == 1.0f);                 /* tie, to even (down) */
    assert_true(rs_float_round_bf16(1.0f + 3 * 0x1p-8f) == 1.0f + 0x1p-6f);   /* tie, to even (up) */
    assert_true(rs_float_round_bf16(1.0f + 0x1p-8f + 0x1p-20f) == 1.0f + 0x1p-7f); /* past the tie */
    assert_true(rs_float_round_bf16(-(1.0f + 0x1p-9f)) == -1.0f);
    assert_int_equal(bits_of(rs_float_round_bf16(-0.0f)), 0x80000000u);
    assert_int_equal(bits_of(rs_float_round_bf16(from_bits(0x00012345u))), 0x00010000u); /* subnormal */
    assert_true(isinf(rs_float_round_bf16(from_bits(0x7f7fffffu))));          /* FLT_MAX rounds to inf */
    assert_true(rs_float_round_bf16(INFINITY) == INFINITY);
    assert_true(isnan(rs_float_round_bf16(NAN)));
    assert_true(isnan(rs_float_round_bf16(from_bits(0x7f800001u))));          /* a NaN a carry would make inf */
    assert_true(isnan(rs_float_round_bf16(from_bits(0xffffffffu))));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip_every_half),
        cmocka_unit_test(test_values_by_hand),
        cmocka_unit_test(test_bf16_by_hand),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* rs_number: the one grammar of the numbers users type (decimal, whole, no blanks), on
 * cases worked out by hand, including what strtod would take and the grammar refuses. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "rs_number.h"

static void test_numbers(void **state)
{
    (void)state;
    static const struct { const char *text; double value; } good[] = {
        {"0", 0}, {"-1", -1}, {"0.0157", 0.0157}, {".5", 0.5}, {"5.", 5}, {"1e-3", 1e-3},
        {"2E+1", 20}, {"-0.25e1", -2.5}, {"007", 7},
    };
    for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
        double v = -99;
        assert_int_equal(rs_parse_number(good[i].text, &v), 0);
        assert_true(v == good[i].value);
    }
    static const char *const bad[] = {
        "", "-", ".", "+1", " 1", "1 ", "\t1", "0x10", "0X1p3", "inf", "-infinity", "nan", "1e", "1e+",
        "1e400", "1.2.3", "1,5", "1/2", "e5", "--1", "1-",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        double v = -99;
        if (rs_parse_number(bad[i], &v) != RS_EINVAL)
            fail_msg("'%s' read as %g", bad[i], v);
        assert_true(v == -99); /* nothing written on refusal */
    }
}

static void test_spans(void **state)
{
    (void)state;
    assert_int_equal(rs_number_span("0.05-1"), 4);
    assert_int_equal(rs_number_span("1e-1-1e1"), 4); /* the exponent's '-' stays */
    assert_int_equal(rs_number_span("-2-3"), 2);
    assert_int_equal(rs_number_span("1e-x"), 1);     /* no exponent digits: not an exponent */
    assert_int_equal(rs_number_span("x1"), 0);
    assert_int_equal(rs_number_span("0x10"), 1);
}

static void test_fractions(void **state)
{
    (void)state;
    double v = 0;
    assert_int_equal(rs_parse_fraction("4/255", &v), 0);
    assert_true(v == 4.0 / 255);
    assert_int_equal(rs_parse_fraction("0.0157", &v), 0);
    assert_true(v == 0.0157);
    assert_int_equal(rs_parse_fraction("-1/2", &v), 0);
    assert_true(v == -0.5);
    assert_int_equal(rs_parse_fraction("1e-1/1e1", &v), 0);
    assert_true(v == 0.1 / 10);
    static const char *const bad[] = {"4/0", "4/-1", "4/255/2", "/255", "4/", " 1/255", "1/ 255", "1 /255",
                                      "0x10", "0x10/1", "1/0x10", "inf/1", "1e308/1e-308"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        if (rs_parse_fraction(bad[i], &v) != RS_EINVAL)
            fail_msg("'%s' read as %g", bad[i], v);
}

static void test_integers(void **state)
{
    (void)state;
    long long v = 0;
    assert_int_equal(rs_parse_integer("42", 0, 100, &v), 0);
    assert_int_equal(v, 42);
    assert_int_equal(rs_parse_integer("-3", -5, 5, &v), 0);
    assert_int_equal(v, -3);
    assert_int_equal(rs_parse_integer("9223372036854775807", 0, INT64_MAX, &v), 0);
    assert_true(v == INT64_MAX);
    static const char *const bad[] = {"", "-", "+1", " 1", "1 ", "0x10", "1.0", "1e1", "101",
                                      "9223372036854775808", "-6"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        if (rs_parse_integer(bad[i], -5, 100, &v) != RS_EINVAL)
            fail_msg("'%s' read as %lld", bad[i], v);
    uint64_t u = 0;
    assert_int_equal(rs_parse_u64("18446744073709551615", &u), 0);
    assert_true(u == UINT64_MAX);
    assert_int_equal(rs_parse_u64("18446744073709551616", &u), RS_EINVAL);
    assert_int_equal(rs_parse_u64("-1", &u), RS_EINVAL);
    assert_int_equal(rs_parse_u64(" 1", &u), RS_EINVAL);
    assert_int_equal(rs_parse_u64("+1", &u), RS_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_numbers),
        cmocka_unit_test(test_spans),
        cmocka_unit_test(test_fractions),
        cmocka_unit_test(test_integers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

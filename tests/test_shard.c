/* Shard assignment tests: hand-computed slices, the cover property over many shapes, and
 * the refusals (docs/scale-out.md states the rule). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "replay/shard.h"

static void expect_slice(int count, int group, int index, int shards, int first, int len)
{
    int f, l;
    rs_error err = {0};
    assert_int_equal(rs_shard_slice(count, group, index, shards, &f, &l, &err), 0);
    assert_int_equal(f, first);
    assert_int_equal(l, len);
}

/* Worked by hand: 300 images in groups of 20 are 15 groups, 5 per shard; 301 images are 16
 * groups: floor(16/3) = 5, floor(32/3) = 10, so the last shard takes 6 groups, the last of
 * them one image. */
static void test_by_hand(void **state)
{
    (void)state;
    expect_slice(300, 20, 0, 3, 0, 100);
    expect_slice(300, 20, 1, 3, 100, 100);
    expect_slice(300, 20, 2, 3, 200, 100);
    expect_slice(301, 20, 0, 3, 0, 100);
    expect_slice(301, 20, 1, 3, 100, 100);
    expect_slice(301, 20, 2, 3, 200, 101);
    expect_slice(45, 20, 0, 2, 0, 20);   /* 3 groups: 1 + 2 */
    expect_slice(45, 20, 1, 2, 20, 25);
    expect_slice(7, 20, 0, 1, 0, 7);     /* one partial group */
}

/* For every shape: shards are contiguous, in order, start on group boundaries, cover the
 * job exactly, and hold floor or ceil of B/N groups. */
static void test_cover(void **state)
{
    (void)state;
    const int groups_sizes[] = {1, 3, 7, 20};
    for (int gi = 0; gi < 4; gi++) {
        int group = groups_sizes[gi];
        for (int count = 1; count <= 130; count++) {
            int groups = (count + group - 1) / group;
            for (int shards = 1; shards <= groups; shards++) {
                int next = 0;
                for (int i = 0; i < shards; i++) {
                    int f, l;
                    assert_int_equal(rs_shard_slice(count, group, i, shards, &f, &l, NULL), 0);
                    assert_int_equal(f, next);
                    assert_int_equal(f % group, 0);
                    assert_true(l > 0);
                    int g = (l + group - 1) / group;
                    assert_true(g == groups / shards || g == (groups + shards - 1) / shards);
                    next = f + l;
                }
                assert_int_equal(next, count);
            }
        }
    }
}

/* 64-bit arithmetic: index * groups exceeds int for a job of 2e9 images in groups of 1. */
static void test_large(void **state)
{
    (void)state;
    expect_slice(2000000000, 1, 999, 1000, 1998000000, 2000000);
    expect_slice(2000000000, 1, 0, 1000, 0, 2000000);
}

static void test_refusals(void **state)
{
    (void)state;
    int f, l;
    rs_error err = {0};
    assert_int_equal(rs_shard_slice(40, 20, 0, 3, &f, &l, &err), RS_EINVAL);
    assert_non_null(strstr(err.msg, "at most 2 shards"));
    assert_int_equal(rs_shard_slice(40, 20, 2, 2, &f, &l, &err), RS_EINVAL);
    assert_non_null(strstr(err.msg, "0 <= I < N"));
    assert_int_equal(rs_shard_slice(40, 20, -1, 2, &f, &l, &err), RS_EINVAL);
    assert_int_equal(rs_shard_slice(0, 20, 0, 1, &f, &l, &err), RS_EINVAL);
    assert_int_equal(rs_shard_slice(40, 0, 0, 1, &f, &l, &err), RS_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_by_hand),
        cmocka_unit_test(test_cover),
        cmocka_unit_test(test_large),
        cmocka_unit_test(test_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

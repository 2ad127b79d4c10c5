/* rs_error: a message too long for its buffer keeps its reason (the end of the message);
 * what is cut is the user text quoted before it (a path, a spec), in the middle. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "rs_error.h"

static bool ends_with(const char *s, const char *tail)
{
    size_t n = strlen(s), t = strlen(tail);
    return n >= t && !strcmp(s + n - t, tail);
}

/* A path of N bytes: "/data/" then 'd' up to N - 4, then "/x.y". */
static char *long_path(size_t n)
{
    char *p = malloc(n + 1);
    memset(p, 'd', n);
    memcpy(p, "/data/", 6);
    memcpy(p + n - 4, "/x.y", 4);
    p[n] = '\0';
    return p;
}

static void test_short_messages_stay_whole(void **state)
{
    (void)state;
    rs_error err;
    assert_int_equal(rs_error_set(&err, RS_EIO, "%s: cannot open: %s", "a.db", "No such file"), RS_EIO);
    assert_string_equal(err.msg, "a.db: cannot open: No such file");
    assert_int_equal(err.code, RS_EIO);
    assert_int_equal(rs_error_prefix(&err, "run 3"), RS_EIO);
    assert_string_equal(err.msg, "run 3: a.db: cannot open: No such file");
    /* Exactly the buffer's 255 bytes: whole, no mark. */
    char *p = long_path(255 - strlen(": x"));
    rs_error_set(&err, RS_EIO, "%s: x", p);
    assert_int_equal(strlen(err.msg), 255);
    assert_true(ends_with(err.msg, "/x.y: x") && !strstr(err.msg, "\u2026"));
    free(p);
    assert_int_equal(rs_error_set(NULL, RS_EINVAL, "%s", "nobody reads this"), RS_EINVAL);
}

static void test_long_path_keeps_the_reason(void **state)
{
    (void)state;
    rs_error err;
    const size_t lengths[] = {256, 300, 1000, 5000};
    for (size_t i = 0; i < sizeof lengths / sizeof *lengths; i++) {
        char *p = long_path(lengths[i]);
        rs_error_set(&err, RS_EIO, "%s: cannot open: %s", p, "No such file or directory");
        print_message("  %s\n", err.msg);
        assert_true(strlen(err.msg) <= 255);
        assert_true(!strncmp(err.msg, "/data/ddd", 9));
        assert_non_null(strstr(err.msg, "\u2026"));
        assert_true(ends_with(err.msg, "/x.y: cannot open: No such file or directory"));
        free(p);
    }
}

static void test_long_prefix_keeps_the_reason(void **state)
{
    (void)state;
    rs_error err;
    const size_t lengths[] = {250, 600, 5000};
    for (size_t i = 0; i < sizeof lengths / sizeof *lengths; i++) {
        char *p = long_path(lengths[i]);
        rs_error_set(&err, RS_EFORMAT, "tensor blocks.1.mlp: shape (4, 8) where (4, 16) was expected");
        assert_int_equal(rs_error_prefix(&err, p), RS_EFORMAT);
        print_message("  %s\n", err.msg);
        assert_true(strlen(err.msg) <= 255);
        assert_true(!strncmp(err.msg, "/data/ddd", 9));
        assert_true(ends_with(err.msg, "/x.y: tensor blocks.1.mlp: shape (4, 8) where (4, 16) was expected"));
        free(p);
    }
}

/* The cut never splits a UTF-8 character: the message stays valid UTF-8. */
static void test_cut_keeps_utf8_whole(void **state)
{
    (void)state;
    char text[700] = "";
    for (int i = 0; i < 199; i++)
        strcat(text, "\u00e9"); /* two bytes each */
    for (int shift = 0; shift < 3; shift++) {
        rs_error err;
        rs_error_set(&err, RS_EINVAL, "%.*s%s: bad", shift, "ab", text);
        for (const unsigned char *c = (const unsigned char *)err.msg; *c;) {
            int len = *c < 0x80 ? 1 : (*c & 0xe0) == 0xc0 ? 2 : (*c & 0xf0) == 0xe0 ? 3 : 0;
            assert_true(len > 0);
            for (int k = 1; k < len; k++)
                assert_int_equal(c[k] & 0xc0, 0x80);
            c += len;
        }
        assert_true(ends_with(err.msg, "\u00e9: bad"));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_short_messages_stay_whole),
        cmocka_unit_test(test_long_path_keeps_the_reason),
        cmocka_unit_test(test_long_prefix_keeps_the_reason),
        cmocka_unit_test(test_cut_keeps_utf8_whole),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

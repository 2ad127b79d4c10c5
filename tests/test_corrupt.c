/* Corruptions against pytorch/corruptions.py: every corruption x severity on a grey 28 px,
 * a colour 32 px and a colour 24 x 40 px image (cifar set) and a colour 64 px and a grey
 * 96 px image (imagenet set), both sides drawing from the same SplitMix64 uniforms
 * (tests/golden/corrupt/corrupt.txt). The pointwise corruptions, fog, pixelate,
 * jpeg_compression, motion_blur, snow and frost must match level for level; the
 * filters (sums in another order than scipy's) may differ by one 8-bit level on a few
 * pixels; glass_blur and elastic_transform, whose rounding of an intermediate can move a
 * pixel's source, by more on a few (tolerances in TOL below and docs/corruptions.md). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <zlib.h>

#include "testutil.h"
#include "input/corrupt.h"

static const char *golden_dir;

typedef struct splitmix {
    uint64_t s;
} splitmix;

static double splitmix_uniform(void *state)
{
    splitmix *g = state;
    uint64_t z = (g->s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    return (double)(z >> 11) * (1.0 / 9007199254740992.0);
}

/* Allowed differences per corruption: the largest level difference, and how many pixels
 * in a thousand may differ at all. */
typedef struct tolerance {
    int max_diff;
    int per_mille;
} tolerance;

static tolerance tol_of(int id)
{
    switch (id) {
    case RS_C_DEFOCUS_BLUR:
    case RS_C_GAUSSIAN_BLUR:
    case RS_C_ZOOM_BLUR: return (tolerance){1, 10};
    case RS_C_GLASS_BLUR:
    case RS_C_ELASTIC_TRANSFORM: return (tolerance){4, 20};
    default: return (tolerance){0, 0};
    }
}

static unsigned char *read_blob(size_t *len)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/corrupt/corrupt.bin.gz", golden_dir);
    gzFile f = gzopen(path, "rb");
    assert_non_null(f);
    size_t cap = 1 << 20, n = 0;
    unsigned char *b = malloc(cap);
    int got;
    while (b && (got = gzread(f, b + n, (unsigned)(cap - n))) > 0) {
        n += (size_t)got;
        if (n == cap)
            b = realloc(b, cap *= 2);
    }
    gzclose(f);
    assert_non_null(b);
    *len = n;
    return b;
}

static void test_goldens(void **state)
{
    (void)state;
    size_t len;
    unsigned char *blob = read_blob(&len);
    char path[1024], line[512];
    snprintf(path, sizeof path, "%s/corrupt/corrupt.txt", golden_dir);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    int cases = 0, failed = 0;
    while (fgets(line, sizeof line, f)) {
        char name[64], set[16];
        int sev, C, H, W;
        unsigned long long seed;
        size_t in_off, out_off;
        if (line[0] == '#' || sscanf(line, "%63s %d %15s %d %d %d %llx %zu %zu", name, &sev, set, &C, &H, &W, &seed,
                                     &in_off, &out_off) != 9)
            continue;
        size_t n = (size_t)C * H * W;
        assert_true(out_off + n <= len);
        float *img = malloc(sizeof(float) * n);
        assert_non_null(img);
        for (size_t i = 0; i < n; i++)
            img[i] = (float)(blob[in_off + i] / 255.0);
        int id = rs_corrupt_find(name);
        assert_true(id >= 0);
        splitmix g = {seed};
        rs_corrupt_rng rng = {splitmix_uniform, &g};
        rs_error err = {0};
        int rc = rs_corrupt_apply(id, sev, strcmp(set, "cifar") ? RS_CSET_IMAGENET : RS_CSET_CIFAR, &rng, img, C,
                                  H, W, &err);
        assert_int_equal(rc, 0);
        int maxd = 0, ndiff = 0;
        for (size_t i = 0; i < n; i++) {
            int lv = (int)lrintf(img[i] * 255), d = abs(lv - blob[out_off + i]);
            maxd = d > maxd ? d : maxd;
            ndiff += d > 0;
        }
        tolerance t = tol_of(id);
        if (maxd > t.max_diff || ndiff * 1000 > t.per_mille * (int)n) {
            fprintf(stderr, "%s %d %s %dx%dx%d: %d pixels differ (of %zu), by up to %d levels\n", name, sev, set, C, H,
                    W, ndiff, n, maxd);
            failed++;
        }
        cases++;
        free(img);
    }
    fclose(f);
    free(blob);
    assert_int_equal(cases, 5 * RS_CORRUPT_COUNT * 5);
    assert_int_equal(failed, 0);
}

/* Names, families, the default set and errors. */
static void test_names(void **state)
{
    (void)state;
    assert_int_equal(rs_corrupt_find("glass_blur"), RS_C_GLASS_BLUR);
    assert_int_equal(rs_corrupt_find("motion_blur"), RS_C_MOTION_BLUR);
    assert_int_equal(rs_corrupt_find("spatter"), -1);
    assert_string_equal(rs_corrupt_family(RS_C_SNOW), "weather");
    assert_string_equal(rs_corrupt_family(RS_C_MOTION_BLUR), "blur");
    assert_string_equal(rs_corrupt_family(RS_C_FOG), "weather");
    assert_string_equal(rs_corrupt_family(RS_C_JPEG_COMPRESSION), "digital");
    assert_int_equal(rs_corrupt_default_set(28, 28), RS_CSET_CIFAR);
    assert_int_equal(rs_corrupt_default_set(64, 64), RS_CSET_CIFAR);
    assert_int_equal(rs_corrupt_default_set(224, 224), RS_CSET_IMAGENET);
    float px[4] = {0.5f, 0.5f, 0.5f, 0.5f};
    splitmix g = {1};
    rs_corrupt_rng rng = {splitmix_uniform, &g};
    rs_error err = {0};
    assert_int_equal(rs_corrupt_apply(RS_C_FOG, 6, RS_CSET_AUTO, &rng, px, 1, 2, 2, &err), RS_EINVAL);
    assert_int_equal(rs_corrupt_apply(RS_C_FOG, 1, RS_CSET_AUTO, &rng, px, 2, 1, 2, &err), RS_EINVAL);
    assert_true(px[0] == 0.5f);
}

/* A grey image through brightness is clip(x + c) (HSV value on R = G = B), truncated. */
static void test_grey_brightness(void **state)
{
    (void)state;
    float px[3] = {0.0f, 100 / 255.0f, 250 / 255.0f};
    rs_error err = {0};
    assert_int_equal(rs_corrupt_apply(RS_C_BRIGHTNESS, 1, RS_CSET_CIFAR, NULL, px, 1, 1, 3, &err), 0);
    assert_int_equal((int)lrintf(px[0] * 255), (int)(0.05 * 255));
    assert_int_equal((int)lrintf(px[1] * 255), (int)(((double)(100 / 255.0f) + 0.05) * 255));
    assert_int_equal((int)lrintf(px[2] * 255), 255);
}

int main(void)
{
    golden_dir = tu_dir("RS_GOLDEN_DIR", "tests/golden");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_grey_brightness),
        cmocka_unit_test(test_goldens),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

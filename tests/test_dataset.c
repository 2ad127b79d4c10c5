/* IDX reader and --data sources: valid raw and gzip files, and every malformed file
 * (wrong magic, truncated, trailing bytes, label count mismatch, missing) gives one error
 * naming the file. Normalisation is checked by hand. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include <cmocka.h>

#include "dataset.h"
#include "idx.h"
#include "testutil.h"

static char tmpdir[] = "/tmp/rs_test_dataset_XXXXXX";

static const char *tmp(const char *name)
{
    static char path[4][256];
    static int next;
    char *p = path[next++ % 4];
    snprintf(p, 256, "%s/%s", tmpdir, name);
    return p;
}

/* An IDX file of MAGIC with DIMS sizes and PAYLOAD bytes; gzip when GZ. */
static void write_idx(const char *path, uint32_t magic, int ndim, const uint32_t *dims, const uint8_t *payload,
                      size_t n, int gz)
{
    uint8_t head[16];
    uint32_t words[4] = {magic, dims[0], ndim > 1 ? dims[1] : 0, ndim > 2 ? dims[2] : 0};
    for (int w = 0; w < 1 + ndim; w++)
        for (int b = 0; b < 4; b++)
            head[4 * w + b] = (uint8_t)(words[w] >> (24 - 8 * b));
    if (gz) {
        gzFile f = gzopen(path, "wb");
        gzwrite(f, head, 4 + 4 * (unsigned)ndim);
        if (n)
            gzwrite(f, payload, (unsigned)n);
        gzclose(f);
    } else {
        FILE *f = fopen(path, "wb");
        fwrite(head, 1, 4 + 4 * (size_t)ndim, f);
        fwrite(payload, 1, n, f);
        fclose(f);
    }
}

static uint8_t pixels[3 * 2 * 4] = {0, 255, 51, 102, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20};
static uint8_t labels[3] = {7, 0, 9};

static void expect_error(int rc, const rs_error *err, int code, const char *path, const char *fragment)
{
    print_message("  %s\n", err->msg);
    assert_int_equal(rc, code);
    assert_non_null(strstr(err->msg, path));
    if (!strstr(err->msg, fragment))
        fail_msg("'%s' lacks '%s'", err->msg, fragment);
}

static void test_reads_raw_and_gz(void **state)
{
    (void)state;
    uint32_t dims[3] = {3, 2, 4};
    for (int gz = 0; gz < 2; gz++) {
        const char *im = tmp(gz ? "im.gz" : "im.raw"), *lb = tmp(gz ? "lb.gz" : "lb.raw");
        write_idx(im, 0x803, 3, dims, pixels, sizeof pixels, gz);
        write_idx(lb, 0x801, 1, dims, labels, sizeof labels, gz);
        char spec[600];
        snprintf(spec, sizeof spec, "idx:%s,%s", im, lb);
        rs_dataset ds;
        rs_error err;
        assert_int_equal(rs_dataset_open(spec, &ds, &err), 0);
        assert_int_equal(ds.count, 3);
        assert_int_equal(ds.height, 2);
        assert_int_equal(ds.width, 4);
        assert_memory_equal(ds.pixels, pixels, sizeof pixels);
        assert_int_equal(ds.labels[0], 7);
        assert_int_equal(ds.labels[2], 9);
        rs_dataset_close(&ds);
    }
}

static void test_normalisation_by_hand(void **state)
{
    (void)state;
    uint32_t dims[3] = {3, 2, 4};
    const char *im = tmp("norm.raw");
    write_idx(im, 0x803, 3, dims, pixels, sizeof pixels, 0);
    char spec[300];
    snprintf(spec, sizeof spec, "idx:%s", im);
    rs_dataset ds;
    rs_error err;
    assert_int_equal(rs_dataset_open(spec, &ds, &err), 0);
    assert_int_equal(ds.labels[1], -1);
    rs_config cfg = {.image_h = 2, .image_w = 4, .channels = 3, .mean = {0.5f, 0.0f, 0.2f}, .std = {0.5f, 1.0f, 0.4f}};
    assert_int_equal(rs_dataset_check(&ds, &cfg, &err), 0);
    float out[3 * 8];
    rs_dataset_batch(&ds, &cfg, 0, 1, out);
    /* Pixel 0 -> -1 / 0 / -0.5; 255 -> 1 / 1 / 2; 51 = 0.2 -> -0.6 / 0.2 / 0. Grey goes to all channels. */
    assert_float_equal(out[0], -1.0f, 1e-6);
    assert_float_equal(out[1], 1.0f, 1e-6);
    assert_float_equal(out[2], -0.6f, 1e-6);
    assert_float_equal(out[8], 0.0f, 1e-6);
    assert_float_equal(out[9], 1.0f, 1e-6);
    assert_float_equal(out[16], -0.5f, 1e-6);
    assert_float_equal(out[17], 2.0f, 1e-6);
    assert_float_equal(out[18], 0.0f, 1e-6);
    cfg.image_w = 5;
    expect_error(rs_dataset_check(&ds, &cfg, &err), &err, RS_EINVAL, im, "images are 2x4x1 but the model wants 2x5x3");
    rs_dataset_close(&ds);
}

static void test_malformed_files(void **state)
{
    (void)state;
    rs_idx_images im;
    rs_error err;
    uint32_t dims[3] = {3, 2, 4};
    const char *p = tmp("bad.gz");

    write_idx(p, 0x801, 3, dims, pixels, sizeof pixels, 1);
    expect_error(rs_idx_read_images(p, &im, &err), &err, RS_EFORMAT, p, "magic 0x00000801 is not an IDX image file");

    write_idx(p, 0x803, 3, dims, pixels, sizeof pixels - 5, 1);
    expect_error(rs_idx_read_images(p, &im, &err), &err, RS_EFORMAT, p, "truncated: the pixels should be 24 bytes, only 19 present");

    uint32_t fewer[3] = {2, 2, 4};
    write_idx(p, 0x803, 3, fewer, pixels, sizeof pixels, 1);
    expect_error(rs_idx_read_images(p, &im, &err), &err, RS_EFORMAT, p, "more data than the header's count");

    uint32_t zero[3] = {0, 2, 4};
    write_idx(p, 0x803, 3, zero, pixels, 0, 0);
    expect_error(rs_idx_read_images(p, &im, &err), &err, RS_EFORMAT, p, "implausible image count");

    write_idx(p, 0x803, 1, dims, pixels, 0, 0); /* header cut short */
    expect_error(rs_idx_read_images(p, &im, &err), &err, RS_EFORMAT, p, "truncated: the header should be 16 bytes");

    const char *missing = tmp("absent.gz");
    expect_error(rs_idx_read_images(missing, &im, &err), &err, RS_EIO, missing, "cannot open");

    /* Labels that do not match the images. */
    const char *ims = tmp("ok.gz"), *lbs = tmp("two.gz");
    write_idx(ims, 0x803, 3, dims, pixels, sizeof pixels, 1);
    uint32_t two[1] = {2};
    write_idx(lbs, 0x801, 1, two, labels, 2, 1);
    char spec[600];
    snprintf(spec, sizeof spec, "idx:%s,%s", ims, lbs);
    rs_dataset ds;
    expect_error(rs_dataset_open(spec, &ds, &err), &err, RS_EFORMAT, lbs, "2 labels for 3 images");
}

static void test_bad_specs(void **state)
{
    (void)state;
    rs_dataset ds;
    rs_error err;
    expect_error(rs_dataset_open("mnist:test", &ds, &err), &err, RS_EINVAL, "mnist:test", "unknown source");
    expect_error(rs_dataset_open("fashion-mnist:val", &ds, &err), &err, RS_EINVAL, "fashion-mnist:val",
                 "split must be test or train");
    expect_error(rs_dataset_open("idx:", &ds, &err), &err, RS_EINVAL, "idx:", "want idx:IMAGES");
}

static void test_fashion_mnist_when_installed(void **state)
{
    (void)state;
    if (access(RS_FASHION_MNIST_DIR "/t10k-images-idx3-ubyte.gz", R_OK) != 0)
        skip();
    rs_dataset ds;
    rs_error err;
    assert_int_equal(rs_dataset_open("fashion-mnist:test", &ds, &err), 0);
    assert_int_equal(ds.count, 10000);
    assert_int_equal(ds.height, 28);
    assert_int_equal(ds.width, 28);
    int per_class[10] = {0};
    for (int i = 0; i < ds.count; i++)
        per_class[ds.labels[i]]++;
    for (int c = 0; c < 10; c++)
        assert_int_equal(per_class[c], 1000); /* the test split is balanced */
    rs_dataset_close(&ds);
}

int main(void)
{
    if (!mkdtemp(tmpdir))
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reads_raw_and_gz), cmocka_unit_test(test_normalisation_by_hand),
        cmocka_unit_test(test_malformed_files),  cmocka_unit_test(test_bad_specs),
        cmocka_unit_test(test_fashion_mnist_when_installed),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    tu_remove_dir(tmpdir);
    return failed;
}

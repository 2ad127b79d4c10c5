/* Image sources (analyze/input/source.h, analyze/input/image.h): the IDX reader, CIFAR binaries, PNG
 * and JPEG files written here with libpng and libjpeg, png: folders and list: files.
 * Pixels are checked exactly where the size matches, resizing against cases computed by
 * hand, normalisation by hand, concurrent loads against sequential ones, and every bad
 * input (truncated PNG, corrupt JPEG, IDX with a wrong magic or count, bad list line,
 * missing file) gives an RS_E* code and one message naming the file. */
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include <cmocka.h>
#include <jpeglib.h>
#include <png.h>

#include "input/idx.h"
#include "input/image.h"
#include "input/source.h"
#include "predict.h"
#include "testutil.h"

static char tmpdir[] = "/tmp/rs_test_source_XXXXXX";

/* Sub-folders made by subdir(), removed (files first) before TMPDIR. */
static char *subdirs[16];
static int nsubdirs;

static const char *tmp(const char *name)
{
    static char path[8][512];
    static int next;
    char *p = path[next++ % 8];
    snprintf(p, 512, "%s/%s", tmpdir, name);
    return p;
}

static const char *subdir(const char *name)
{
    char *p = malloc(512);
    snprintf(p, 512, "%s/%s", tmpdir, name);
    assert_int_equal(mkdir(p, 0700), 0);
    subdirs[nsubdirs++] = p;
    return p;
}

static void expect_error(int rc, const rs_error *err, int code, const char *path, const char *fragment)
{
    print_message("  %s\n", err->msg);
    assert_int_equal(rc, code);
    if (!strstr(err->msg, path))
        fail_msg("'%s' lacks the name '%s'", err->msg, path);
    if (!strstr(err->msg, fragment))
        fail_msg("'%s' lacks '%s'", err->msg, fragment);
    assert_null(strchr(err->msg, '\n'));
}

static void write_text(const char *path, const char *text)
{
    assert_int_equal(tu_write_file(path, text, strlen(text)), 0);
}

/* ---- writers -------------------------------------------------------------------------- */

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

/* A PNG of W x H with rows of ROWBYTES packed as the PNG stores them (16-bit samples
 * big-endian, sub-byte samples high bits first). PALETTE / TRANS may be NULL. */
static void write_png_ex(const char *path, int w, int h, int ctype, int depth, const uint8_t *data,
                         size_t rowbytes, const png_color *palette, int npal, const png_byte *trans, int ntrans,
                         int interlace)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    assert_non_null(info);
    if (setjmp(png_jmpbuf(png)))
        fail_msg("libpng could not write %s", path);
    png_init_io(png, f);
    png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, depth, ctype, interlace,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    if (palette)
        png_set_PLTE(png, info, palette, npal);
    if (trans)
        png_set_tRNS(png, info, trans, ntrans, NULL);
    png_write_info(png, info);
    for (int pass = png_set_interlace_handling(png); pass > 0; pass--)
        for (int y = 0; y < h; y++)
            png_write_row(png, data + (size_t)y * rowbytes);
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    fclose(f);
}

static void write_png(const char *path, int w, int h, int ctype, int depth, const uint8_t *data, size_t rowbytes,
                      const png_color *palette, int npal, const png_byte *trans, int ntrans)
{
    write_png_ex(path, w, h, ctype, depth, data, rowbytes, palette, npal, trans, ntrans, PNG_INTERLACE_NONE);
}

/* A JPEG of W x H, COMPS = 1 (grey) or 3 (RGB, interleaved), quality 100 without chroma
 * subsampling, so that flat 8x8 blocks come back within a grey level or two. */
static void write_jpeg(const char *path, int w, int h, int comps, const uint8_t *data)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    struct jpeg_compress_struct ci;
    struct jpeg_error_mgr jerr;
    ci.err = jpeg_std_error(&jerr);
    jpeg_create_compress(&ci);
    jpeg_stdio_dest(&ci, f);
    ci.image_width = (JDIMENSION)w;
    ci.image_height = (JDIMENSION)h;
    ci.input_components = comps;
    ci.in_color_space = comps == 3 ? JCS_RGB : JCS_GRAYSCALE;
    jpeg_set_defaults(&ci);
    jpeg_set_quality(&ci, 100, TRUE);
    for (int c = 0; c < ci.num_components; c++)
        ci.comp_info[c].h_samp_factor = ci.comp_info[c].v_samp_factor = 1;
    jpeg_start_compress(&ci, TRUE);
    while (ci.next_scanline < ci.image_height) {
        JSAMPROW row = (JSAMPROW)(data + (size_t)ci.next_scanline * w * comps);
        jpeg_write_scanlines(&ci, &row, 1);
    }
    jpeg_finish_compress(&ci);
    jpeg_destroy_compress(&ci);
    fclose(f);
}

/* An RGB image of W x H with smooth but varied content (PNG compresses it poorly, so its
 * IDAT is long enough to cut). */
static uint8_t *pattern_rgb(int w, int h, int seed)
{
    uint8_t *p = malloc((size_t)w * h * 3);
    for (int i = 0; i < w * h * 3; i++)
        p[i] = (uint8_t)((i * 37 + seed * 101 + (i / 3) * (i % 7)) % 251);
    return p;
}

/* Loads INDEX of SPEC's source fitted to (C,H,W) into a new array (caller frees). */
static float *load(rs_source *src, int index, int c, int h, int w)
{
    float *out = malloc(sizeof(float) * (size_t)c * h * w);
    rs_error err;
    int rc = rs_source_load(src, index, c, h, w, out, &err);
    if (rc)
        fail_msg("load %d of %s: %s", index, rs_source_name(src), err.msg);
    return out;
}

static rs_source *open_ok(const char *fmt, ...)
{
    char spec[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(spec, sizeof spec, fmt, ap);
    va_end(ap);
    rs_source *src;
    rs_error err;
    if (rs_source_open(spec, &src, &err))
        fail_msg("%s: %s", spec, err.msg);
    assert_string_equal(rs_source_name(src), spec);
    return src;
}

static int open_fails(rs_error *err, const char *fmt, ...)
{
    char spec[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(spec, sizeof spec, fmt, ap);
    va_end(ap);
    rs_source *src = (rs_source *)&src; /* must come back NULL */
    int rc = rs_source_open(spec, &src, err);
    assert_null(src);
    return rc;
}

/* ---- IDX (the checks of the former test_dataset.c) ------------------------------------ */

static uint8_t pixels[3 * 2 * 4] = {0, 255, 51, 102, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20};
static uint8_t labels[3] = {7, 0, 9};

static void test_idx_raw_and_gz(void **state)
{
    (void)state;
    uint32_t dims[3] = {3, 2, 4};
    for (int gz = 0; gz < 2; gz++) {
        const char *im = tmp(gz ? "im.gz" : "im.raw"), *lb = tmp(gz ? "lb.gz" : "lb.raw");
        write_idx(im, 0x803, 3, dims, pixels, sizeof pixels, gz);
        write_idx(lb, 0x801, 1, dims, labels, sizeof labels, gz);
        rs_source *src = open_ok("idx:%s,%s", im, lb);
        assert_int_equal(rs_source_count(src), 3);
        int c, h, w;
        assert_int_equal(rs_source_shape(src, &c, &h, &w), 1);
        assert_int_equal(c, 1);
        assert_int_equal(h, 2);
        assert_int_equal(w, 4);
        assert_null(rs_source_path(src, 0));
        assert_int_equal(rs_source_label(src, 0), 7);
        assert_int_equal(rs_source_label(src, 2), 9);
        assert_int_equal(rs_source_label(src, 3), -1);
        assert_int_equal(rs_source_label(src, -1), -1);
        for (int i = 0; i < 3; i++) {
            float *out = load(src, i, 1, 2, 4);
            for (int p = 0; p < 8; p++)
                assert_true(out[p] == (float)pixels[8 * i + p] / 255.0f); /* exact */
            free(out);
        }
        rs_source_close(src);
    }
}

static void test_normalisation_by_hand(void **state)
{
    (void)state;
    uint32_t dims[3] = {3, 2, 4};
    const char *im = tmp("norm.raw");
    write_idx(im, 0x803, 3, dims, pixels, sizeof pixels, 0);
    rs_source *src = open_ok("idx:%s", im);
    assert_int_equal(rs_source_label(src, 1), -1);
    rs_config cfg = {.image_h = 2, .image_w = 4, .channels = 3, .mean = {0.5f, 0.0f, 0.2f}, .std = {0.5f, 1.0f, 0.4f}};
    float *out = load(src, 0, 3, 2, 4); /* grey goes to all three channels */
    rs_model_normalize(&cfg, out);
    /* Pixel 0 -> -1 / 0 / -0.5; 255 -> 1 / 1 / 2; 51 = 0.2 -> -0.6 / 0.2 / 0. */
    assert_float_equal(out[0], -1.0f, 1e-6);
    assert_float_equal(out[1], 1.0f, 1e-6);
    assert_float_equal(out[2], -0.6f, 1e-6);
    assert_float_equal(out[8], 0.0f, 1e-6);
    assert_float_equal(out[9], 1.0f, 1e-6);
    assert_float_equal(out[10], 0.2f, 1e-6);
    assert_float_equal(out[16], -0.5f, 1e-6);
    assert_float_equal(out[17], 2.0f, 1e-6);
    assert_float_equal(out[18], 0.0f, 1e-6);
    /* The very operations of the PyTorch reference, (x/255 - m)/s, bit for bit. */
    for (int c = 0; c < 3; c++)
        for (int p = 0; p < 8; p++)
            assert_true(out[8 * c + p] == ((float)pixels[p] / 255.0f - cfg.mean[c]) / cfg.std[c]);
    free(out);
    rs_source_close(src);
}

static void test_idx_malformed(void **state)
{
    (void)state;
    rs_idx_images im;
    rs_error err;
    uint32_t dims[3] = {3, 2, 4};
    const char *p = tmp("bad.gz");

    write_idx(p, 0x801, 3, dims, pixels, sizeof pixels, 1);
    expect_error(rs_idx_read_images(p, &im, &err), &err, RS_EFORMAT, p, "magic 0x00000801 is not an IDX image file");
    expect_error(open_fails(&err, "idx:%s", p), &err, RS_EFORMAT, p, "is not an IDX image file");

    write_idx(p, 0x803, 3, dims, pixels, sizeof pixels - 5, 1);
    expect_error(rs_idx_read_images(p, &im, &err), &err, RS_EFORMAT, p, "truncated: the pixels should be 24 bytes, only 19 present");

    uint32_t fewer[3] = {2, 2, 4};
    write_idx(p, 0x803, 3, fewer, pixels, sizeof pixels, 1);
    expect_error(rs_idx_read_images(p, &im, &err), &err, RS_EFORMAT, p, "more data than the header's count");
    expect_error(open_fails(&err, "idx:%s", p), &err, RS_EFORMAT, p, "more data than the header's count");

    uint32_t zero[3] = {0, 2, 4};
    write_idx(p, 0x803, 3, zero, pixels, 0, 0);
    expect_error(rs_idx_read_images(p, &im, &err), &err, RS_EFORMAT, p, "implausible image count");

    write_idx(p, 0x803, 1, dims, pixels, 0, 0); /* header cut short */
    expect_error(rs_idx_read_images(p, &im, &err), &err, RS_EFORMAT, p, "truncated: the header's sizes should be 12 bytes");

    const char *missing = tmp("absent.gz");
    expect_error(rs_idx_read_images(missing, &im, &err), &err, RS_EIO, missing, "cannot open");
    expect_error(open_fails(&err, "idx:%s", missing), &err, RS_EIO, missing, "cannot open");

    /* Labels that do not match the images. */
    const char *ims = tmp("ok.gz"), *lbs = tmp("two.gz");
    write_idx(ims, 0x803, 3, dims, pixels, sizeof pixels, 1);
    uint32_t two[1] = {2};
    write_idx(lbs, 0x801, 1, two, labels, 2, 1);
    expect_error(open_fails(&err, "idx:%s,%s", ims, lbs), &err, RS_EFORMAT, lbs, "2 labels for 3 images");
}

static void test_bad_specs(void **state)
{
    (void)state;
    rs_error err;
    expect_error(open_fails(&err, "mnist:test"), &err, RS_EINVAL, "mnist:test", "unknown source");
    expect_error(open_fails(&err, "fashion-mnist:val"), &err, RS_EINVAL, "fashion-mnist:val",
                 "split must be test or train");
    expect_error(open_fails(&err, "idx:"), &err, RS_EINVAL, "idx:", "want idx:IMAGES");
    expect_error(open_fails(&err, "cifar10:%s,val", tmpdir), &err, RS_EINVAL, "val", "split must be test or train");
    expect_error(open_fails(&err, "cifar100:"), &err, RS_EINVAL, "cifar100:", "want cifar100:DIR");
    expect_error(open_fails(&err, "png:"), &err, RS_EINVAL, "png:", "want png:DIR");
    expect_error(open_fails(&err, "list:"), &err, RS_EINVAL, "list:", "want list:FILE");
    const char *nodir = tmp("no-such-folder");
    expect_error(open_fails(&err, "png:%s", nodir), &err, RS_EIO, nodir, "cannot open folder");
    expect_error(open_fails(&err, "list:%s", nodir), &err, RS_EIO, nodir, "cannot open");
    expect_error(open_fails(&err, "cifar10:%s", nodir), &err, RS_EIO, "no-such-folder/test_batch.bin", "cannot open");
}

static void test_fashion_mnist_when_installed(void **state)
{
    (void)state;
    if (access(RS_FASHION_MNIST_DIR "/t10k-images-idx3-ubyte.gz", R_OK) != 0)
        skip();
    rs_source *src = open_ok("fashion-mnist:test");
    assert_int_equal(rs_source_count(src), 10000);
    int c, h, w;
    assert_int_equal(rs_source_shape(src, &c, &h, &w), 1);
    assert_int_equal(h, 28);
    assert_int_equal(w, 28);
    int per_class[10] = {0};
    for (int i = 0; i < rs_source_count(src); i++)
        per_class[rs_source_label(src, i)]++;
    for (int k = 0; k < 10; k++)
        assert_int_equal(per_class[k], 1000); /* the test split is balanced */
    rs_source_close(src);
}

/* ---- fitting by hand ------------------------------------------------------------------ */

/* Fits a float image (h,w) of one channel whose pixel (y,x) is A·y + x to (H,W). */
static void fit_linear(int h, int w, float a, int H, int W, float *out)
{
    float *p = malloc(sizeof(float) * (size_t)h * w);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            p[y * w + x] = a * (float)y + (float)x;
    rs_image im = {.channels = 1, .height = h, .width = w, .pixels = p};
    rs_error err;
    assert_int_equal(rs_image_fit(&im, 1, H, W, out, "hand", &err), 0);
    free(p);
}

static void expect_floats(const float *got, const float *want, int n)
{
    for (int i = 0; i < n; i++)
        if (got[i] < want[i] - 1e-5f || got[i] > want[i] + 1e-5f)
            fail_msg("element %d: got %.7g, want %.7g", i, got[i], want[i]);
}

static void test_resize_by_hand(void **state)
{
    (void)state;
    float out[16];
    /* 2x4 -> 2x2: the scale is 1 (the height already fits); the centred window keeps
     * columns 1 and 2 untouched. */
    fit_linear(2, 4, 4, 2, 2, out);
    expect_floats(out, (float[]){1, 2, 5, 6}, 4);
    /* 4x4 -> 2x2: s = 1/2, source = 2·dst + 0.5, the mean of each 2x2 block. */
    fit_linear(4, 4, 4, 2, 2, out);
    expect_floats(out, (float[]){2.5f, 4.5f, 10.5f, 12.5f}, 4);
    /* 2x2 -> 4x4: s = 2, source = dst/2 - 0.25 clamped to [0,1]: weights 0, .25, .75, 1. */
    fit_linear(2, 2, 2, 4, 4, out);
    float a[4] = {0, 0.25f, 0.75f, 1};
    float want[16];
    for (int y = 0; y < 4; y++)
        for (int x = 0; x < 4; x++)
            want[y * 4 + x] = 2 * a[y] + a[x];
    expect_floats(out, want, 16);
    /* 2x4 -> 4x4: s = 2 covers the height; the scaled 4x8 image loses 2 columns on each
     * side: source x = (x + 2 + 0.5)/2 - 0.5 = 0.75, 1.25, 1.75, 2.25. */
    fit_linear(2, 4, 4, 4, 4, out);
    for (int y = 0; y < 4; y++)
        for (int x = 0; x < 4; x++)
            want[y * 4 + x] = 4 * a[y] + 0.75f + 0.5f * (float)x;
    expect_floats(out, want, 16);
    /* 3x5 -> 2x2: s = 2/3, scaled 2x3 (round(10/3) = 3), offset (3-2)/2 rounds down to 0:
     * source = 1.5·dst + 0.25 = 0.25, 1.75 on both axes. */
    fit_linear(3, 5, 5, 2, 2, out);
    expect_floats(out, (float[]){1.5f, 3.0f, 9.0f, 10.5f}, 4);

    /* Channels: RGB to luma; grey replicated after resizing; RGB to 2 channels refused. */
    float rgb[3 * 4] = {1, 0, 0, 0.5f, 0, 1, 0, 0.5f, 0, 0, 1, 0.5f};
    rs_image im = {.channels = 3, .height = 2, .width = 2, .pixels = rgb};
    rs_error err;
    assert_int_equal(rs_image_fit(&im, 1, 2, 2, out, "rgb", &err), 0);
    expect_floats(out, (float[]){0.299f, 0.587f, 0.114f, 0.5f}, 4);
    assert_int_equal(rs_image_fit(&im, 1, 1, 1, out, "rgb", &err), 0); /* mean of the four */
    expect_floats(out, (float[]){(0.299f + 0.587f + 0.114f + 0.5f) / 4}, 1);
    expect_error(rs_image_fit(&im, 2, 2, 2, out, "rgb.png", &err), &err, RS_EINVAL, "rgb.png", "cannot be fitted to 2 channels");
    float grey[4] = {0, 1, 2, 3};
    rs_image g = {.channels = 1, .height = 2, .width = 2, .pixels = grey};
    assert_int_equal(rs_image_fit(&g, 3, 1, 1, out, "grey", &err), 0);
    expect_floats(out, (float[]){1.5f, 1.5f, 1.5f}, 3);
}

/* ---- PNG ------------------------------------------------------------------------------ */

/* Loads PATH alone through a list: source, fitted to (C,H,W). */
static float *load_file(const char *path, int c, int h, int w)
{
    const char *list = tmp("one.list");
    FILE *f = fopen(list, "w");
    fprintf(f, "%s 0\n", path);
    fclose(f);
    rs_source *src = open_ok("list:%s", list);
    float *out = load(src, 0, c, h, w);
    rs_source_close(src);
    return out;
}

static void expect_u8(const float *got, const uint8_t *want, int n)
{
    for (int i = 0; i < n; i++)
        if (got[i] != (float)want[i] / 255.0f)
            fail_msg("element %d: got %.9g, want %d/255", i, got[i], want[i]);
}

static void test_png_kinds(void **state)
{
    (void)state;
    /* 8-bit grey, 2x4; to 3 channels replicated, exactly v/255. */
    uint8_t grey[8] = {0, 255, 51, 102, 1, 2, 3, 4};
    const char *p = tmp("grey.png");
    write_png(p, 4, 2, PNG_COLOR_TYPE_GRAY, 8, grey, 4, NULL, 0, NULL, 0);
    float *out = load_file(p, 3, 2, 4);
    for (int c = 0; c < 3; c++)
        expect_u8(out + 8 * c, grey, 8);
    free(out);
    /* The same 2x4 to 2x2: the centred columns 1 and 2, untouched. */
    out = load_file(p, 1, 2, 2);
    expect_u8(out, (uint8_t[]){255, 51, 2, 3}, 4);
    free(out);

    /* RGB and RGBA 2x2: planar R, G, B; alpha ignored; luma for one channel. */
    uint8_t rgb[12] = {10, 20, 30, 40, 50, 60, 70, 80, 90, 200, 210, 220};
    uint8_t rgba[16] = {10, 20, 30, 0, 40, 50, 60, 128, 70, 80, 90, 255, 200, 210, 220, 7};
    uint8_t planes[12] = {10, 40, 70, 200, 20, 50, 80, 210, 30, 60, 90, 220};
    write_png(tmp("rgb.png"), 2, 2, PNG_COLOR_TYPE_RGB, 8, rgb, 6, NULL, 0, NULL, 0);
    write_png(tmp("rgba.png"), 2, 2, PNG_COLOR_TYPE_RGBA, 8, rgba, 8, NULL, 0, NULL, 0);
    for (int k = 0; k < 2; k++) {
        const char *name = tmp(k ? "rgba.png" : "rgb.png");
        out = load_file(name, 3, 2, 2);
        expect_u8(out, planes, 12);
        free(out);
        out = load_file(name, 1, 2, 2);
        for (int i = 0; i < 4; i++) {
            float want = 0.299f * (planes[i] / 255.0f) + 0.587f * (planes[4 + i] / 255.0f) +
                         0.114f * (planes[8 + i] / 255.0f);
            assert_float_equal(out[i], want, 1e-6);
        }
        free(out);
    }

    /* Grey + alpha. */
    uint8_t ga[8] = {9, 0, 99, 50, 199, 100, 255, 255};
    write_png(tmp("ga.png"), 2, 2, PNG_COLOR_TYPE_GRAY_ALPHA, 8, ga, 4, NULL, 0, NULL, 0);
    out = load_file(tmp("ga.png"), 1, 2, 2);
    expect_u8(out, (uint8_t[]){9, 99, 199, 255}, 4);
    free(out);

    /* Palette, 4 bits, with a transparency entry (dropped like any alpha). */
    png_color pal[3] = {{255, 0, 0}, {0, 128, 0}, {1, 2, 3}};
    png_byte trans[1] = {0};
    uint8_t idx[2] = {0x01, 0x20}; /* 2x2: indices 0,1 / 2,0 */
    write_png(tmp("pal.png"), 2, 2, PNG_COLOR_TYPE_PALETTE, 4, idx, 1, pal, 3, trans, 1);
    out = load_file(tmp("pal.png"), 3, 2, 2);
    expect_u8(out, (uint8_t[]){255, 0, 1, 255, 0, 128, 2, 0, 0, 0, 3, 0}, 12);
    free(out);

    /* 1-bit and 2-bit grey: 8 pixels 1,0,1,1,0,0,0,1 and 4 pixels 0..3 (x85). */
    write_png(tmp("bit1.png"), 8, 1, PNG_COLOR_TYPE_GRAY, 1, (uint8_t[]){0xB1}, 1, NULL, 0, NULL, 0);
    out = load_file(tmp("bit1.png"), 1, 1, 8);
    expect_u8(out, (uint8_t[]){255, 0, 255, 255, 0, 0, 0, 255}, 8);
    free(out);
    write_png(tmp("bit2.png"), 4, 1, PNG_COLOR_TYPE_GRAY, 2, (uint8_t[]){0x1B}, 1, NULL, 0, NULL, 0);
    out = load_file(tmp("bit2.png"), 1, 1, 4);
    expect_u8(out, (uint8_t[]){0, 85, 170, 255}, 4);
    free(out);

    /* 16-bit grey and RGB: v/65535. */
    uint16_t g16[4] = {0, 65535, 257 * 51, 1000};
    uint8_t be[24];
    for (int i = 0; i < 4; i++)
        be[2 * i] = (uint8_t)(g16[i] >> 8), be[2 * i + 1] = (uint8_t)g16[i];
    write_png(tmp("g16.png"), 2, 2, PNG_COLOR_TYPE_GRAY, 16, be, 4, NULL, 0, NULL, 0);
    out = load_file(tmp("g16.png"), 1, 2, 2);
    for (int i = 0; i < 4; i++)
        assert_true(out[i] == (float)g16[i] / 65535.0f);
    free(out);
    uint16_t c16[6] = {1, 2, 60000, 65535, 0, 12345}; /* 2x1 RGB */
    for (int i = 0; i < 6; i++)
        be[2 * i] = (uint8_t)(c16[i] >> 8), be[2 * i + 1] = (uint8_t)c16[i];
    write_png(tmp("c16.png"), 2, 1, PNG_COLOR_TYPE_RGB, 16, be, 12, NULL, 0, NULL, 0);
    out = load_file(tmp("c16.png"), 3, 1, 2);
    uint16_t c16planes[6] = {1, 65535, 2, 0, 60000, 12345};
    for (int i = 0; i < 6; i++)
        assert_true(out[i] == (float)c16planes[i] / 65535.0f);
    free(out);

    /* 4x4 -> 2x2 through a file: the 2x2 block means. */
    uint8_t g44[16];
    for (int i = 0; i < 16; i++)
        g44[i] = (uint8_t)(i * 10);
    write_png(tmp("g44.png"), 4, 4, PNG_COLOR_TYPE_GRAY, 8, g44, 4, NULL, 0, NULL, 0);
    out = load_file(tmp("g44.png"), 1, 2, 2);
    expect_floats(out, (float[]){25 / 255.0f, 45 / 255.0f, 105 / 255.0f, 125 / 255.0f}, 4);
    free(out);
}

/* ---- JPEG ----------------------------------------------------------------------------- */

static void test_jpeg(void **state)
{
    (void)state;
    /* 16x16 RGB in four flat 8x8 quadrants: each block is one DC term, so the decode is
     * within a couple of levels of the truth. */
    uint8_t colours[4][3] = {{200, 30, 30}, {30, 200, 30}, {30, 30, 200}, {128, 128, 128}};
    uint8_t img[16 * 16 * 3];
    for (int y = 0; y < 16; y++)
        for (int x = 0; x < 16; x++)
            memcpy(img + (y * 16 + x) * 3, colours[(y / 8) * 2 + x / 8], 3);
    const char *p = tmp("quad.jpg");
    write_jpeg(p, 16, 16, 3, img);
    float *out = load_file(p, 3, 16, 16);
    for (int c = 0; c < 3; c++)
        for (int y = 0; y < 16; y++)
            for (int x = 0; x < 16; x++)
                assert_float_equal(out[(c * 16 + y) * 16 + x], colours[(y / 8) * 2 + x / 8][c] / 255.0f, 3.0 / 255);
    free(out);
    /* To 2x2 grey: each quadrant's luma. */
    out = load_file(p, 1, 2, 2);
    for (int q = 0; q < 4; q++)
        assert_float_equal(out[q], (0.299 * colours[q][0] + 0.587 * colours[q][1] + 0.114 * colours[q][2]) / 255,
                           3.0 / 255);
    free(out);

    /* A grey JPEG, named .png: the bytes decide, not the name. */
    uint8_t g[8 * 8];
    memset(g, 77, sizeof g);
    write_jpeg(tmp("grey-jpeg.png"), 8, 8, 1, g);
    out = load_file(tmp("grey-jpeg.png"), 3, 8, 8);
    for (int i = 0; i < 3 * 64; i++)
        assert_float_equal(out[i], 77 / 255.0, 1.0 / 255);
    free(out);
}

/* ---- CIFAR ---------------------------------------------------------------------------- */

static void write_cifar(const char *path, int nrec, int label_bytes, const uint8_t *labels_of, int seed)
{
    size_t record = (size_t)label_bytes + 3072;
    uint8_t *buf = malloc(record * nrec);
    for (int r = 0; r < nrec; r++) {
        uint8_t *rec = buf + r * record;
        for (int b = 0; b < label_bytes; b++)
            rec[b] = labels_of[r * label_bytes + b];
        for (int i = 0; i < 3072; i++)
            rec[label_bytes + i] = (uint8_t)((i * 7 + r * 13 + seed) % 256);
    }
    assert_int_equal(tu_write_file(path, buf, record * nrec), 0);
    free(buf);
}

static void test_cifar(void **state)
{
    (void)state;
    const char *dir = subdir("cifar");
    char path[600];
    snprintf(path, sizeof path, "%s/test_batch.bin", dir);
    write_cifar(path, 2, 1, (uint8_t[]){3, 9}, 0);
    rs_source *src = open_ok("cifar10:%s", dir);
    assert_int_equal(rs_source_count(src), 2);
    assert_int_equal(rs_source_label(src, 0), 3);
    assert_int_equal(rs_source_label(src, 1), 9);
    int c, h, w;
    assert_int_equal(rs_source_shape(src, &c, &h, &w), 1);
    assert_true(c == 3 && h == 32 && w == 32);
    float *out = load(src, 1, 3, 32, 32);
    for (int i = 0; i < 3072; i++)
        assert_true(out[i] == (float)((i * 7 + 13) % 256) / 255.0f); /* R, G, B planes as stored */
    free(out);
    rs_source_close(src);
    rs_source_close(open_ok("cifar10:%s/,test", dir));

    /* The training split is data_batch_1..5, in order. */
    rs_error err;
    expect_error(open_fails(&err, "cifar10:%s,train", dir), &err, RS_EIO, "data_batch_1.bin", "cannot open");
    for (int b = 1; b <= 5; b++) {
        snprintf(path, sizeof path, "%s/data_batch_%d.bin", dir, b);
        write_cifar(path, 1, 1, (uint8_t[]){(uint8_t)b}, b);
    }
    src = open_ok("cifar10:%s,train", dir);
    assert_int_equal(rs_source_count(src), 5);
    assert_int_equal(rs_source_label(src, 4), 5);
    out = load(src, 4, 3, 32, 32);
    assert_true(out[0] == (float)5 / 255.0f);
    free(out);
    rs_source_close(src);

    /* CIFAR-100: coarse then fine label; the fine one counts. */
    snprintf(path, sizeof path, "%s/test.bin", dir);
    write_cifar(path, 2, 2, (uint8_t[]){11, 87, 19, 99}, 0);
    src = open_ok("cifar100:%s", dir);
    assert_int_equal(rs_source_count(src), 2);
    assert_int_equal(rs_source_label(src, 0), 87);
    assert_int_equal(rs_source_label(src, 1), 99);
    out = load(src, 0, 3, 32, 32);
    for (int i = 0; i < 3072; i++)
        assert_true(out[i] == (float)((i * 7) % 256) / 255.0f);
    free(out);
    rs_source_close(src);

    /* A size that is not whole records, an empty file, a label out of range. */
    snprintf(path, sizeof path, "%s/test_batch.bin", dir);
    uint8_t junk[1234] = {0};
    tu_write_file(path, junk, sizeof junk);
    expect_error(open_fails(&err, "cifar10:%s", dir), &err, RS_EFORMAT, "cifar/test_batch.bin",
                 "size 1234 is not a multiple of 3073");
    tu_write_file(path, junk, 0);
    expect_error(open_fails(&err, "cifar10:%s", dir), &err, RS_EFORMAT, "cifar/test_batch.bin", "empty file");
    write_cifar(path, 2, 1, (uint8_t[]){3, 10}, 0);
    expect_error(open_fails(&err, "cifar10:%s", dir), &err, RS_EFORMAT, "cifar/test_batch.bin",
                 "record 1 has label 10");
}

/* ---- png: folders and list: files ----------------------------------------------------- */

static void test_png_folder(void **state)
{
    (void)state;
    const char *dir = subdir("pngs");
    char path[600];
    rs_error err;
    expect_error(open_fails(&err, "png:%s", dir), &err, RS_EFORMAT, dir, "no .png files");
    const char *names[3] = {"b.png", "a.png", "c.PNG"};
    for (int i = 0; i < 3; i++) {
        uint8_t px[4] = {(uint8_t)(10 * i), 1, 2, 3};
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        write_png(path, 2, 2, PNG_COLOR_TYPE_GRAY, 8, px, 2, NULL, 0, NULL, 0);
    }
    snprintf(path, sizeof path, "%s/notes.txt", dir);
    write_text(path, "not an image\n");
    snprintf(path, sizeof path, "%s/labels.txt", dir);
    write_text(path, "# file label\nb.png 4\n\nc.PNG 0\n");
    rs_source *src = open_ok("png:%s", dir);
    int c, h, w;
    assert_int_equal(rs_source_shape(src, &c, &h, &w), 0);
    assert_int_equal(rs_source_count(src), 3);
    /* Sorted by name in byte order: "a.png" < "b.png" < "c.PNG". */
    assert_non_null(strstr(rs_source_path(src, 0), "/a.png"));
    assert_non_null(strstr(rs_source_path(src, 2), "/c.PNG"));
    assert_int_equal(rs_source_label(src, 0), -1); /* not in labels.txt */
    assert_int_equal(rs_source_label(src, 1), 4);
    assert_int_equal(rs_source_label(src, 2), 0);
    float *out = load(src, 1, 1, 2, 2);
    expect_u8(out, (uint8_t[]){0, 1, 2, 3}, 4); /* b.png was written first, with 0 */
    free(out);
    rs_source_close(src);

    write_text(path, "b.png 4\nzzz.png 1\n");
    expect_error(open_fails(&err, "png:%s", dir), &err, RS_EFORMAT, "labels.txt:2", "'zzz.png' is not one of");
    write_text(path, "b.png four\n");
    expect_error(open_fails(&err, "png:%s", dir), &err, RS_EFORMAT, "labels.txt:1", "bad label 'four'");
    write_text(path, "b.png 1\nb.png 2\n");
    expect_error(open_fails(&err, "png:%s", dir), &err, RS_EFORMAT, "labels.txt:2", "labelled twice");
    write_text(path, "a.png 1\n");
}

static void test_list_file(void **state)
{
    (void)state;
    const char *dir = subdir("list");
    char path[600], text[2000];
    uint8_t px[4] = {5, 6, 7, 8};
    snprintf(path, sizeof path, "%s/one image.png", dir); /* a space in the name */
    write_png(path, 2, 2, PNG_COLOR_TYPE_GRAY, 8, px, 2, NULL, 0, NULL, 0);
    uint8_t g[64];
    memset(g, 200, sizeof g);
    snprintf(path, sizeof path, "%s/two.jpg", dir);
    write_jpeg(path, 8, 8, 1, g);
    /* Relative to the list's folder, absolute, comments, blank lines, CRLF, no label. */
    const char *list = tmp("images.list");
    snprintf(text, sizeof text, "# path label\n\nlist/one image.png 3\r\n  %s\t 7\nlist/two.jpg\n", path);
    write_text(list, text);
    rs_source *src = open_ok("list:%s", list);
    assert_int_equal(rs_source_count(src), 3);
    assert_int_equal(rs_source_label(src, 0), 3);
    assert_int_equal(rs_source_label(src, 1), 7);
    assert_int_equal(rs_source_label(src, 2), -1);
    assert_string_equal(rs_source_path(src, 1), path);
    float *out = load(src, 0, 1, 2, 2);
    expect_u8(out, px, 4);
    free(out);
    out = load(src, 1, 1, 4, 4);
    for (int i = 0; i < 16; i++)
        assert_float_equal(out[i], 200 / 255.0, 1.0 / 255);
    free(out);
    rs_source_close(src);

    /* Bad lines name the list file and the line. */
    rs_error err;
    write_text(list, "list/two.jpg 1\n# fine so far\nlist/two.jpg abc\n");
    expect_error(open_fails(&err, "list:%s", list), &err, RS_EFORMAT, "images.list:3", "bad label 'abc'");
    write_text(list, "list/two.jpg -2\n");
    expect_error(open_fails(&err, "list:%s", list), &err, RS_EFORMAT, "images.list:1", "bad label '-2'");
    write_text(list, "list/two.jpg 1\nlist/three.jpg 2\n");
    expect_error(open_fails(&err, "list:%s", list), &err, RS_EIO, "images.list:2", "list/three.jpg");
    write_text(list, "# nothing\n\n");
    expect_error(open_fails(&err, "list:%s", list), &err, RS_EFORMAT, "images.list", "lists no images");
    assert_int_equal(tu_write_file(list, "list/two.jpg 1\n\0\n", 17), 0);
    expect_error(open_fails(&err, "list:%s", list), &err, RS_EFORMAT, "images.list:2", "NUL byte");
}

/* ---- bad image files ------------------------------------------------------------------ */

/* Opens a one-line list naming PATH and returns rs_source_load's code for it. */
static int load_error(const char *path, rs_error *err)
{
    const char *list = tmp("bad.list");
    FILE *f = fopen(list, "w");
    fprintf(f, "%s 1\n", path);
    fclose(f);
    rs_source *src = open_ok("list:%s", list);
    float out[3 * 8 * 8];
    int rc = rs_source_load(src, 0, 3, 8, 8, out, err);
    rs_source_close(src);
    return rc;
}

/* Offset of the data of the first chunk of TYPE in PNG bytes, and its length. */
static size_t find_chunk(const uint8_t *b, size_t n, const char *type, size_t *len)
{
    for (size_t at = 8; at + 8 <= n;) {
        size_t l = (size_t)b[at] << 24 | (size_t)b[at + 1] << 16 | (size_t)b[at + 2] << 8 | b[at + 3];
        if (!memcmp(b + at + 4, type, 4)) {
            *len = l;
            return at + 8;
        }
        at += 12 + l;
    }
    fail_msg("no %s chunk", type);
    return 0;
}

static void test_bad_images(void **state)
{
    (void)state;
    rs_error err;
    uint8_t *rgb = pattern_rgb(32, 32, 1);
    const char *good = tmp("good.png");
    write_png(good, 32, 32, PNG_COLOR_TYPE_RGB, 8, rgb, 96, NULL, 0, NULL, 0);
    size_t n = 0, idat_len = 0;
    uint8_t *b = tu_read_file(good, &n);
    size_t idat = find_chunk(b, n, "IDAT", &idat_len);
    const char *p = tmp("cut.png");

    tu_write_file(p, b, idat + idat_len / 2); /* cut inside the IDAT data */
    expect_error(load_error(p, &err), &err, RS_EFORMAT, "cut.png", "truncated PNG (IDAT chunk cut short)");
    tu_write_file(p, b, idat + idat_len + 4); /* IDAT whole, IEND missing */
    expect_error(load_error(p, &err), &err, RS_EFORMAT, "cut.png", "truncated PNG (file ends after the IDAT chunk)");
    tu_write_file(p, b, 5);
    expect_error(load_error(p, &err), &err, RS_EFORMAT, "cut.png", "truncated PNG (signature cut short)");
    tu_write_file(p, b, 20);
    expect_error(load_error(p, &err), &err, RS_EFORMAT, "cut.png", "truncated PNG (IHDR chunk cut short)");
    b[idat + 3] ^= 0x55; /* a CRC error in IDAT */
    tu_write_file(p, b, n);
    expect_error(load_error(p, &err), &err, RS_EFORMAT, "cut.png", "corrupt PNG");
    b[idat + 3] ^= 0x55;

    const char *jp = tmp("bad.jpg");
    write_jpeg(jp, 32, 32, 3, rgb);
    size_t jn;
    uint8_t *j = tu_read_file(jp, &jn);
    tu_write_file(jp, j, jn / 2);
    expect_error(load_error(jp, &err), &err, RS_EFORMAT, "bad.jpg", "truncated JPEG");
    uint8_t head[64];
    memset(head, 0x42, sizeof head); /* SOI, then a frame header of impossible length */
    memcpy(head, (uint8_t[]){0xff, 0xd8, 0xff, 0xc0, 0x00, 0x02}, 6);
    tu_write_file(jp, head, sizeof head);
    expect_error(load_error(jp, &err), &err, RS_EFORMAT, "bad.jpg", "corrupt JPEG");
    memcpy(head, j, sizeof head); /* the header alone */
    tu_write_file(jp, head, sizeof head);
    int rc = load_error(jp, &err);
    expect_error(rc, &err, RS_EFORMAT, "bad.jpg", "JPEG");

    const char *txt = tmp("text.png");
    write_text(txt, "hello, world\n");
    expect_error(load_error(txt, &err), &err, RS_EFORMAT, "text.png", "not a PNG or JPEG file");
    tu_write_file(txt, "", 0);
    expect_error(load_error(txt, &err), &err, RS_EFORMAT, "text.png", "(empty)");

    /* A file that disappears after the source was opened. */
    const char *gone = tmp("gone.png");
    write_png(gone, 32, 32, PNG_COLOR_TYPE_RGB, 8, rgb, 96, NULL, 0, NULL, 0);
    const char *list = tmp("gone.list");
    write_text(list, "gone.png 1\n");
    rs_source *src = open_ok("list:%s", list);
    remove(gone);
    float out[8 * 8];
    expect_error(rs_source_load(src, 0, 1, 8, 8, out, &err), &err, RS_EIO, "gone.png", "cannot open");
    expect_error(rs_source_load(src, 1, 1, 8, 8, out, &err), &err, RS_EINVAL, list, "image 1 is outside 0..0");
    rs_source_close(src);

    /* Random damage never crashes the decoders (ASan / UBSan builds check the memory). */
    uint64_t x = 88172645463325252ull;
    for (int t = 0; t < 300; t++) {
        int png_case = t % 2;
        uint8_t *src_bytes = png_case ? b : j;
        size_t len = png_case ? n : jn;
        uint8_t *copy = malloc(len);
        memcpy(copy, src_bytes, len);
        for (int k = 0; k < 1 + t % 4; k++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            size_t at = (png_case ? 8 : 2) + x % (len - (png_case ? 8 : 2));
            copy[at] = (uint8_t)(x >> 32);
        }
        size_t keep = t % 5 == 0 ? len * (size_t)(t % 97 + 1) / 100 : len;
        const char *f = tmp(png_case ? "fuzz.png" : "fuzz.jpg");
        tu_write_file(f, copy, keep);
        free(copy);
        rc = load_error(f, &err);
        if (rc) {
            assert_true(rc == RS_EFORMAT);
            assert_non_null(strstr(err.msg, png_case ? "fuzz.png" : "fuzz.jpg"));
        }
    }
    free(j);
    free(b);
    free(rgb);
}

/* A list line naming something other than a file says what it is (it once said "Is a
 * directory" for a FIFO too). */
static void test_list_non_regular(void **state)
{
    (void)state;
    const char *dir = subdir("notfile");
    char fifo[600];
    snprintf(fifo, sizeof fifo, "%s/pipe", dir);
    assert_int_equal(mkfifo(fifo, 0600), 0);
    const char *list = tmp("notfile.list");
    rs_error err;
    write_text(list, "notfile 1\n");
    expect_error(open_fails(&err, "list:%s", list), &err, RS_EIO, "notfile.list:1", "is a directory, not an image file");
    write_text(list, "notfile/pipe 1\n");
    expect_error(open_fails(&err, "list:%s", list), &err, RS_EIO, "notfile.list:1", "is a FIFO, not an image file");
    write_text(list, "notfile/missing.png 1\n");
    expect_error(open_fails(&err, "list:%s", list), &err, RS_EIO, "notfile.list:1", "No such file or directory");
    remove(fifo);
}

#ifndef __SANITIZE_ADDRESS__
/* Runs WORK(ARG) in a child process whose address space may grow by at most HEADROOM bytes
 * past what it holds at the fork; returns WORK's result as the child's exit status (2: the
 * child died, 3/4: the limit could not be read or set). RLIMIT_AS and AddressSanitizer's
 * shadow memory do not mix, hence release builds only. */
static int run_within(size_t headroom, int (*work)(const char *arg), const char *arg)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        long pages = 0;
        FILE *f = fopen("/proc/self/statm", "r");
        if (!f || fscanf(f, "%ld", &pages) != 1)
            _exit(3);
        fclose(f);
        struct rlimit lim = {.rlim_cur = (rlim_t)pages * sysconf(_SC_PAGESIZE) + headroom};
        lim.rlim_max = lim.rlim_cur;
        _exit(setrlimit(RLIMIT_AS, &lim) != 0 ? 4 : work(arg));
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 2;
}

/* 0 when opening IDX file PATH fails as a truncated file, as it must. */
static int open_idx_refused(const char *path)
{
    rs_source *src;
    rs_error err;
    char spec[600];
    snprintf(spec, sizeof spec, "idx:%s", path);
    return rs_source_open(spec, &src, &err) == RS_EFORMAT ? 0 : 1;
}
#endif

/* An IDX header announcing 2.8 GB over 6 bytes of pixels (found by fuzz_source): the
 * truncation is reported, and the reader never allocated what the file does not hold
 * (release build: in a child whose address space may grow by 64 MB only). */
static void test_idx_header_larger_than_file(void **state)
{
    (void)state;
    const char *p = tmp("huge.idx");
    static const uint8_t payload[6] = {0xaa, 0xd1, 0xaa, 0xe8, 0xd1, 0x89};
    write_idx(p, 0x803, 3, (uint32_t[]){262144, 3, 3591}, payload, sizeof payload, 0);
    rs_error err;
    expect_error(open_fails(&err, "idx:%s", p), &err, RS_EFORMAT, "huge.idx",
                 "truncated: the pixels should be 2824077312 bytes, only 6 present");
#ifndef __SANITIZE_ADDRESS__
    assert_int_equal(run_within(64 << 20, open_idx_refused, p), 0);
#endif
}

/* ---- streaming fit, bombs, damaged scans ------------------------------------------------ */

static uint64_t fnv1a(const void *p, size_t n)
{
    const unsigned char *b = p;
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= 1099511628211ull;
    }
    return h;
}

/* Fitted pixels equal, bit for bit, what the whole-image fit gave before the streaming
 * fit existed (tests/golden/fit: files of every PNG and JPEG kind and their hashes). */
static void test_fit_as_before(void **state)
{
    (void)state;
    const char *golden = tu_dir("RS_GOLDEN_DIR", "tests/golden");
    char path[600], name[128], line[256];
    snprintf(path, sizeof path, "%s/fit/fit_hashes.txt", golden);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    int cases = 0;
    while (fgets(line, sizeof line, f)) {
        int c, h, w;
        unsigned long long want;
        if (line[0] == '#' || sscanf(line, "%127s %d %d %d %llx", name, &c, &h, &w, &want) != 5)
            continue;
        snprintf(path, sizeof path, "%s/fit/%s", golden, name);
        size_t n = (size_t)c * h * w;
        float *out = malloc(n * sizeof *out);
        rs_error err;
        assert_int_equal(rs_image_read_fit(path, c, h, w, out, &err), 0);
        if (fnv1a(out, n * sizeof *out) != want)
            fail_msg("%s fitted to %dx%dx%d: pixels differ from the whole-image fit's", name, c, h, w);
        free(out);
        cases++;
    }
    fclose(f);
    assert_true(cases >= 60);
}

/* Random bytes for pixels (noise is the hardest case for a resampler to get right by
 * accident); X is the xorshift state. */
static void noise_bytes(uint8_t *p, size_t n, uint64_t *x)
{
    for (size_t i = 0; i < n; i++) {
        *x ^= *x << 13, *x ^= *x >> 7, *x ^= *x << 17;
        p[i] = (uint8_t)(*x >> 29);
    }
}

/* rs_image_read_fit (rows resized as they arrive) against rs_image_decode + rs_image_fit
 * (the whole image, then the fit): the same floats, for PNGs of every channel layout, bit
 * depth and interlacing, and JPEGs off the bomb path, at sizes above, below and equal to
 * the target. */
static void test_streaming_fit_equals_whole_fit(void **state)
{
    (void)state;
    static const int ctypes[] = {PNG_COLOR_TYPE_GRAY, PNG_COLOR_TYPE_GRAY_ALPHA, PNG_COLOR_TYPE_RGB,
                                 PNG_COLOR_TYPE_RGB_ALPHA};
    static const int comps_of[] = {1, 2, 3, 4};
    static const int targets[][3] = {{1, 28, 28}, {3, 32, 24}, {3, 7, 9}, {1, 50, 3}, {3, 61, 47}};
    uint64_t x = 0x9e3779b97f4a7c15ull;
    int cases = 0;
    for (int t = 0; t < 24; t++) {
        int w = 1 + (int)(x % 97), h = 1 + (int)((x >> 20) % 89);
        if (t == 0)
            w = 61, h = 47; /* equal to one target: the exact copy */
        int kind = t % 4, depth = t % 3 == 2 ? 16 : 8, jpeg = t % 5 == 4;
        size_t rowbytes = (size_t)w * comps_of[kind] * (depth / 8);
        uint8_t *data = malloc(rowbytes * h);
        noise_bytes(data, rowbytes * h, &x);
        const char *p = tmp(jpeg ? "stream.jpg" : "stream.png");
        if (jpeg) {
            uint8_t *rgb = pattern_rgb(w, h, t);
            write_jpeg(p, w, h, kind % 2 ? 3 : 1, rgb);
            free(rgb);
        } else {
            write_png_ex(p, w, h, ctypes[kind], depth, data, rowbytes, NULL, 0, NULL, 0,
                         t % 3 == 1 ? PNG_INTERLACE_ADAM7 : PNG_INTERLACE_NONE);
        }
        free(data);
        rs_image im;
        rs_error err;
        assert_int_equal(rs_image_decode(p, &im, &err), 0);
        for (size_t k = 0; k < sizeof targets / sizeof *targets; k++) {
            int c = targets[k][0], th = targets[k][1], tw = targets[k][2];
            if (jpeg && w > 8 * tw && h > 8 * th)
                continue; /* the bomb path scales the DCT: tested below */
            size_t n = (size_t)c * th * tw;
            float *whole = malloc(n * sizeof *whole), *stream = malloc(n * sizeof *stream);
            assert_int_equal(rs_image_fit(&im, c, th, tw, whole, p, &err), 0);
            assert_int_equal(rs_image_read_fit(p, c, th, tw, stream, &err), 0);
            if (memcmp(whole, stream, n * sizeof *whole))
                fail_msg("case %d (%dx%d %s) to %dx%dx%d: streaming fit differs", t, w, h, jpeg ? "JPEG" : "PNG",
                         c, th, tw);
            free(whole);
            free(stream);
            cases++;
        }
        rs_image_free(&im);
    }
    assert_true(cases > 100);
}

/* A JPEG cut inside its scan data with the end marker appended: libjpeg would pad the
 * rest grey and warn; that is an error, not an image. */
static void test_jpeg_scan_cut_short(void **state)
{
    (void)state;
    uint8_t *rgb = pattern_rgb(256, 256, 5);
    const char *p = tmp("short_scan.jpg");
    write_jpeg(p, 256, 256, 3, rgb);
    free(rgb);
    size_t n;
    uint8_t *b = tu_read_file(p, &n);
    size_t sos = 0;
    for (size_t i = 2; i + 1 < n && !sos; i++)
        if (b[i] == 0xff && b[i + 1] == 0xda)
            sos = i + 2 + ((size_t)b[i + 2] << 8 | b[i + 3]);
    assert_true(sos > 0 && sos < n);
    size_t keep = sos + (n - 2 - sos) / 4; /* a quarter of the scan data */
    b[keep] = 0xff;
    b[keep + 1] = 0xd9;
    tu_write_file(p, b, keep + 2);
    free(b);
    float out[3 * 32 * 32];
    rs_error err;
    int rc = rs_image_read_fit(p, 3, 32, 32, out, &err);
    expect_error(rc, &err, RS_EFORMAT, "short_scan.jpg", "corrupt JPEG data (premature end of data segment)");
    rs_image im;
    expect_error(rs_image_decode(p, &im, &err), &err, RS_EFORMAT, "short_scan.jpg", "corrupt JPEG data");
}

/* Headers declaring more pixels than the cap are refused before any decoding: a PNG of
 * 11000 x 11000 and a JPEG of 65500 x 2049 (both once decoded at 2 GB). */
static void test_declared_size_over_cap(void **state)
{
    (void)state;
    uint8_t grey[16] = {0};
    const char *p = tmp("huge.png");
    write_png(p, 4, 4, PNG_COLOR_TYPE_GRAY, 8, grey, 4, NULL, 0, NULL, 0);
    size_t n;
    uint8_t *b = tu_read_file(p, &n);
    /* IHDR data at 16: width, height big-endian; then its CRC over type + data. */
    for (int i = 0; i < 4; i++)
        b[16 + i] = b[20 + i] = (uint8_t)(11000u >> (24 - 8 * i));
    uLong crc = crc32(0, b + 12, 17);
    for (int i = 0; i < 4; i++)
        b[29 + i] = (uint8_t)(crc >> (24 - 8 * i));
    tu_write_file(p, b, n);
    free(b);
    float out[28 * 28];
    rs_error err;
    expect_error(rs_image_read_fit(p, 1, 28, 28, out, &err), &err, RS_EFORMAT, "huge.png",
                 "PNG of 11000x11000 pixels is larger than we accept");

    const char *j = tmp("huge.jpg");
    write_jpeg(j, 16, 16, 1, grey);
    b = tu_read_file(j, &n);
    for (size_t i = 2; i + 8 < n; i++)
        if (b[i] == 0xff && b[i + 1] == 0xc0) { /* SOF0: length, precision, height, width */
            b[i + 5] = 2049 >> 8, b[i + 6] = 2049 & 0xff, b[i + 7] = 65500 >> 8, b[i + 8] = 65500 & 0xff;
            break;
        }
    tu_write_file(j, b, n);
    free(b);
    expect_error(rs_image_read_fit(j, 1, 28, 28, out, &err), &err, RS_EFORMAT, "huge.jpg",
                 "JPEG of 65500x2049 pixels is larger than we accept");
}

#ifndef __SANITIZE_ADDRESS__

static int fit_path(const char *path)
{
    float out[28 * 28];
    rs_error err;
    return rs_image_read_fit(path, 1, 28, 28, out, &err) ? 1 : 0;
}

static int decode_path(const char *path)
{
    rs_error err;
    rs_image im;
    return rs_image_decode(path, &im, &err) ? 1 : 0;
}

/* Fits PATH to 1x28x28 (or decodes it whole, WHOLE) in a child process whose address
 * space may grow by at most HEADROOM bytes; returns the child's status (0: success). */
static int fit_within(const char *path, int whole, size_t headroom)
{
    return run_within(headroom, whole ? decode_path : fit_path, path);
}
#endif

/* Decompression bombs inside the cap: a 4096 x 4096 PNG (a few kB of file, 64 MB as whole
 * floats) and a 4096 x 4096 JPEG fit to 28 x 28 in a few megabytes; the JPEG, more than
 * 8 times the target on each side, is decoded at 1/8 scale and its fit stays close to the
 * full-size one. The memory bound needs RLIMIT_AS, which AddressSanitizer's shadow memory
 * rules out: that part runs in the release build only. */
static void test_bombs_fit_in_little_memory(void **state)
{
    (void)state;
    enum { S = 4096 };
    uint8_t *grey = malloc((size_t)S * S);
    for (size_t y = 0; y < S; y++)
        for (size_t x = 0; x < S; x++)
            grey[y * S + x] = (uint8_t)((x + y) / 32);
    const char *p = tmp("bomb.png"), *j = tmp("bomb.jpg");
    write_png(p, S, S, PNG_COLOR_TYPE_GRAY, 8, grey, S, NULL, 0, NULL, 0);
    write_jpeg(j, S, S, 1, grey);
    free(grey);
    float scaled[28 * 28], whole[28 * 28];
    rs_error err;
    assert_int_equal(rs_image_read_fit(j, 1, 28, 28, scaled, &err), 0);
    rs_image im;
    assert_int_equal(rs_image_decode(j, &im, &err), 0);
    assert_int_equal(rs_image_fit(&im, 1, 28, 28, whole, j, &err), 0);
    rs_image_free(&im);
    for (int i = 0; i < 28 * 28; i++)
        assert_true(fabsf(scaled[i] - whole[i]) < 0.02f); /* a smooth ramp: close, not equal */
#ifndef __SANITIZE_ADDRESS__
    size_t mb = 1 << 20;
    assert_int_equal(fit_within(p, 0, 16 * mb), 0);
    assert_int_equal(fit_within(j, 0, 16 * mb), 0);
    /* The check can fail: a whole decode does not fit in that room. */
    assert_int_equal(fit_within(p, 1, 16 * mb), 1);
    assert_int_equal(fit_within(j, 1, 16 * mb), 1);
#endif
}

/* ---- threads -------------------------------------------------------------------------- */

typedef struct load_job {
    rs_source *src;
    int reverse;
    float *out; /* (count, 3, 12, 10) */
    int failures;
} load_job;

static void *load_all(void *arg)
{
    load_job *job = arg;
    int count = rs_source_count(job->src);
    for (int k = 0; k < count; k++) {
        int i = job->reverse ? count - 1 - k : k;
        rs_error err;
        job->failures += rs_source_load(job->src, i, 3, 12, 10, job->out + (size_t)i * 360, &err) != 0;
    }
    return NULL;
}

static void test_concurrent_loads(void **state)
{
    (void)state;
    const char *dir = subdir("threads");
    char path[600];
    const char *list = tmp("threads.list");
    FILE *f = fopen(list, "w");
    for (int i = 0; i < 12; i++) {
        int w = 9 + 5 * i, h = 7 + 3 * i;
        uint8_t *rgb = pattern_rgb(w, h, i);
        snprintf(path, sizeof path, "%s/%02d.%s", dir, i, i % 3 == 2 ? "jpg" : "png");
        if (i % 3 == 2)
            write_jpeg(path, w, h, 3, rgb);
        else
            write_png(path, w, h, i % 3 ? PNG_COLOR_TYPE_GRAY : PNG_COLOR_TYPE_RGB, 8, rgb, (size_t)w * (i % 3 ? 1 : 3),
                      NULL, 0, NULL, 0);
        free(rgb);
        fprintf(f, "threads/%02d.%s %d\n", i, i % 3 == 2 ? "jpg" : "png", i);
    }
    fclose(f);
    rs_source *src = open_ok("list:%s", list);
    size_t size = 12 * 360;
    float *seq = calloc(size, sizeof(float));
    load_job one = {.src = src, .out = seq};
    load_all(&one);
    assert_int_equal(one.failures, 0);
    load_job jobs[2] = {{.src = src, .reverse = 0, .out = calloc(size, sizeof(float))},
                        {.src = src, .reverse = 1, .out = calloc(size, sizeof(float))}};
    pthread_t threads[2];
    for (int t = 0; t < 2; t++)
        assert_int_equal(pthread_create(&threads[t], NULL, load_all, &jobs[t]), 0);
    for (int t = 0; t < 2; t++) {
        pthread_join(threads[t], NULL);
        assert_int_equal(jobs[t].failures, 0);
        assert_memory_equal(jobs[t].out, seq, size * sizeof(float));
        free(jobs[t].out);
    }
    free(seq);
    rs_source_close(src);
}

int main(void)
{
    if (!mkdtemp(tmpdir))
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_idx_raw_and_gz),
        cmocka_unit_test(test_normalisation_by_hand),
        cmocka_unit_test(test_idx_malformed),
        cmocka_unit_test(test_bad_specs),
        cmocka_unit_test(test_fashion_mnist_when_installed),
        cmocka_unit_test(test_resize_by_hand),
        cmocka_unit_test(test_png_kinds),
        cmocka_unit_test(test_jpeg),
        cmocka_unit_test(test_cifar),
        cmocka_unit_test(test_png_folder),
        cmocka_unit_test(test_list_file),
        cmocka_unit_test(test_bad_images),
        cmocka_unit_test(test_concurrent_loads),
        cmocka_unit_test(test_list_non_regular),
        cmocka_unit_test(test_idx_header_larger_than_file),
        cmocka_unit_test(test_fit_as_before),
        cmocka_unit_test(test_streaming_fit_equals_whole_fit),
        cmocka_unit_test(test_jpeg_scan_cut_short),
        cmocka_unit_test(test_declared_size_over_cap),
        cmocka_unit_test(test_bombs_fit_in_little_memory),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    for (int i = nsubdirs - 1; i >= 0; i--) {
        tu_remove_dir(subdirs[i]);
        free(subdirs[i]);
    }
    tu_remove_dir(tmpdir);
    return failed;
}

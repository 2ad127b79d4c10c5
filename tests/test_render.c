/* Render tests on a hand-made store: 1 image, 2 views, 2 MoE layers, a 3×3 patch grid plus
 * a class token, E = 4. View 0's top-1 at patch j is j % 4; view 1 equals it except patch 4
 * (changed to (4+1) % 4 = 1) in layer 0, and its patch 8 has no match in view 0.
 * Checked: in the grid PNG the border of the changed cell is red and an unchanged one's is
 * not, cell fills are exactly the palette colours (with and without the views' pixels), the unmatched cell is not an expert colour; PDF page
 * count (pdfinfo when installed); with most cells changed, red corners instead of borders;
 * a dashed box on view 0's thumbnail where a cropped (mirrored) view lies, none for a view
 * matched patch for patch and identical bytes for two renderings, rows named "block B" (read
 * back with pdftotext when installed); SVG is well
 * formed at its ends; heatmap values by hand; heatmap cells read back from the PNG with
 * libpng: cells of one value have one colour, the colour bar's at that value, with the
 * view's pixels drawn beside them; one panel fills the figure's width; plots render; bad
 * extensions are refused. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <png.h>

#include "grid.h"
#include "groups_plot.h"
#include "heatmap.h"
#include "plot.h"
#include "render.h"
#include "stats/stats.h"
#include "store/store.h"
#include "testutil.h"

enum { N = 1, V = 2, L = 2, GH = 3, GW = 3, NP = 9, T = 10, R = 2, E = 4, K = 10 };

static char dir[] = "/tmp/rs_test_render_XXXXXX";

static const char *scratch(const char *name)
{
    return tu_path(dir, name);
}

static int64_t run_id;
static rs_run_info info;

static size_t row(int v, int l, int tok) { return ((size_t)v * L + l) * T + tok; }

static void make_store(void)
{
    static int16_t match[V * NP];
    static int32_t labels[N] = {3}, pred[V] = {3, 5}, top[V * L * T * R];
    static float pprob[V] = {0.9f, 0.6f}, gate[V * L * T * R], probs[V * L * T * E];
    static const char *params[V] = {"{}", "{}"};
    for (int v = 0; v < V; v++)
        for (int j = 0; j < NP; j++)
            match[v * NP + j] = (int16_t)(v == 1 && j == 8 ? -1 : j);
    for (int v = 0; v < V; v++) {
        for (int l = 0; l < L; l++) {
            for (int tok = 0; tok < T; tok++) {
                int j = tok - 1, e1 = tok == 0 ? 0 : j % E;
                if (v == 1 && l == 0 && j == 4)
                    e1 = (e1 + 1) % E;
                size_t r = row(v, l, tok);
                top[r * R] = e1;
                top[r * R + 1] = (e1 + 1) % E;
                gate[r * R] = 0.7f;
                gate[r * R + 1] = 0.2f;
                for (int e = 0; e < E; e++)
                    probs[r * E + e] = e == e1 ? 0.7f : 0.1f;
            }
        }
    }
    static const char *views[V] = {"clean", "noise:severity=3"};
    static const int blocks[L] = {1, 3};
    rs_run_spec spec = {
        .model_path = "models/none.safetensors", .model_sha256 = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        .model_config = "{\"top_k\": 1}", .model_params = 1, .data = "fashion-mnist:test", .offset = 0, .count = N,
        .protocol = "custom", .num_views = V, .view_specs = views, .seed = 7, .num_layers = L, .layer_blocks = blocks,
        .tokens = T, .patches = NP, .grid_h = GH, .grid_w = GW, .record_k = R, .num_experts = E, .num_classes = K,
        .top_k = 1, .channels = 1, .image_h = 16, .image_w = 16, .has_cls = true, .command = "test", .version = "test",
    };
    rs_store *s;
    rs_error err = {0};
    assert_int_equal(rs_store_open(scratch("r.db"), false, &s, &err), 0);
    assert_int_equal(rs_store_begin_run(s, &spec, &run_id, &err), 0);
    rs_batch b = {
        .first = 0, .count = N, .num_views = V, .num_layers = L, .tokens = T, .record_k = R, .num_experts = E,
        .patches = NP, .labels = labels, .predicted = pred, .pred_prob = pprob, .view_params = params,
        .match = match, .top_idx = top, .top_gate = gate, .probs = probs,
    };
    int rc = rs_store_write_batch(s, run_id, &b, &err);
    if (rc)
        print_message("%s\n", err.msg);
    assert_int_equal(rc, 0);
    assert_int_equal(rs_store_get_run(s, run_id, &info, &err), 0);
    rs_store_close(s);
}

static int setup(void **state)
{
    (void)state;
    if (!mkdtemp(dir))
        return -1;
    make_store();
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    rs_run_info_clear(&info);
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static void load(rs_image_routing *r)
{
    rs_store *s;
    rs_error err = {0};
    assert_int_equal(rs_store_open(scratch("r.db"), true, &s, &err), 0);
    int rc = rs_run_image_routing(s, &info, 0, r, &err);
    if (rc)
        print_message("%s\n", err.msg);
    assert_int_equal(rc, 0);
    rs_store_close(s);
}

/* RGB (0..255) of the PNG pixel at drawing units (X, Y). */
static void pixel(cairo_surface_t *img, const rs_grid_layout *g, double x, double y, int rgb[3])
{
    int px = (int)(x * g->scale), py = (int)(y * g->scale);
    assert_true(px >= 0 && px < cairo_image_surface_get_width(img));
    assert_true(py >= 0 && py < cairo_image_surface_get_height(img));
    const unsigned char *d = cairo_image_surface_get_data(img);
    uint32_t p = *(const uint32_t *)(const void *)(d + (size_t)py * cairo_image_surface_get_stride(img) + 4 * (size_t)px);
    rgb[0] = (p >> 16) & 0xff, rgb[1] = (p >> 8) & 0xff, rgb[2] = p & 0xff;
}

static bool is_red(const int rgb[3]) { return rgb[0] > 180 && rgb[1] < 50 && rgb[2] < 50; }

/* Every matched cell's fill, away from the digit and the border, is exactly its expert's
 * palette colour (the legend's), to PNG rounding. */
static void check_fills(cairo_surface_t *img, const rs_grid_layout *g, const rs_image_routing *r)
{
    int c[3];
    double x, y;
    for (int v = 0; v < V; v++) {
        for (int l = 0; l < L; l++) {
            for (int j = 0; j < NP; j++) {
                if (v == 1 && j == 8)
                    continue;
                double rgb[3];
                rs_palette_expert(rs_image_top1(r, v, l, j), E, rgb);
                rs_grid_cell_xy(g, GW, v, l, j, &x, &y);
                pixel(img, g, x + g->cell * 0.2, y + g->cell * 0.2, c);
                for (int k = 0; k < 3; k++) {
                    double want = 255 * rgb[k];
                    if (fabs(c[k] - want) > 1)
                        print_message("view %d layer %d patch %d channel %d: %d, want %.1f\n", v, l, j, k, c[k], want);
                    assert_true(fabs(c[k] - want) <= 1);
                }
            }
        }
    }
}

/* With the views' pixels in the context (a dark-to-light ramp), the cells keep the exact
 * palette colours: the image is a thumbnail of its own, never under the cells. */
static void test_grid_fills_with_image(void **state)
{
    (void)state;
    rs_image_routing r;
    load(&r);
    enum { H = 12, W = 12 };
    static float px[V * H * W];
    for (int i = 0; i < V * H * W; i++)
        px[i] = (float)(i % W) / (W - 1);
    rs_render_context ctx = {.run = &info, .pixels = px, .channels = 1, .height = H, .width = W};
    rs_grid_layout g;
    rs_error err = {0};
    assert_int_equal(rs_render_grid(&r, &ctx, scratch("gi.png"), &g, &err), 0);
    cairo_surface_t *img = cairo_image_surface_create_from_png(scratch("gi.png"));
    assert_int_equal(cairo_surface_status(img), CAIRO_STATUS_SUCCESS);
    check_fills(img, &g, &r);
    cairo_surface_destroy(img);
    rs_image_routing_free(&r);
}

/* Sets the top-1 of patch J of view V, layer L in the loaded routing (scenarios the
 * hand-made store does not hold). */
static void set_top1(rs_image_routing *r, int v, int l, int j, int e)
{
    r->top_idx[(((size_t)v * r->layers + l) * r->tokens + j + r->has_cls) * r->record_k] = (uint8_t)e;
}

static bool is_yellow(const int rgb[3]) { return rgb[0] > 200 && rgb[1] > 170 && rgb[2] < 90; }

/* Most cells of a panel changed: each changed cell gets a red corner (top right), not a
 * border, so the panel does not turn into a red mesh; fills stay the palette's. */
static void test_grid_many_changes_corners(void **state)
{
    (void)state;
    rs_image_routing r;
    load(&r);
    for (int j = 0; j < NP; j++)
        set_top1(&r, 1, 1, j, (j + 2) % E); /* layer 1: every matched cell of view 1 changed */
    rs_grid_layout g;
    rs_error err = {0};
    rs_render_context ctx = {.run = &info};
    assert_int_equal(rs_render_grid(&r, &ctx, scratch("gc.png"), &g, &err), 0);
    cairo_surface_t *img = cairo_image_surface_create_from_png(scratch("gc.png"));
    assert_int_equal(cairo_surface_status(img), CAIRO_STATUS_SUCCESS);
    int c[3];
    double x, y;
    for (int l = 0; l < L; l++) {
        int j = l == 0 ? 4 : 0; /* a changed cell in each layer */
        rs_grid_cell_xy(&g, GW, 1, l, j, &x, &y);
        pixel(img, &g, x + g.cell - 1.5, y + 1.5, c), assert_true(is_red(c));
        pixel(img, &g, x + 1.5, y + g.cell / 2, c), assert_false(is_red(c));
        pixel(img, &g, x + g.cell / 2, y + g.cell - 1.0, c), assert_false(is_red(c));
    }
    check_fills(img, &g, &r);
    cairo_surface_destroy(img);
    rs_image_routing_free(&r);
}

/* Where view 1 lies on view 0: a dashed box on view 0's thumbnail when view 1 is a crop
 * (here mirrored), none when it matches patch for patch (noise). */
static void test_grid_view_box(void **state)
{
    (void)state;
    enum { H = 12, W = 12 };
    static float px[V * H * W]; /* black: the box's yellow stands out */
    rs_render_context ctx = {.run = &info, .pixels = px, .channels = 1, .height = H, .width = W};
    for (int mirrored = 0; mirrored < 2; mirrored++) {
        rs_image_routing r;
        load(&r);
        for (int j = 0; j < NP; j++)
            r.match[NP + j] = (int16_t)(mirrored ? (j / GW) * GW + (GW - 1 - j % GW) : j);
        rs_grid_layout g;
        rs_error err = {0};
        assert_int_equal(rs_render_grid(&r, &ctx, scratch("gb.png"), &g, &err), 0);
        cairo_surface_t *img = cairo_image_surface_create_from_png(scratch("gb.png"));
        assert_int_equal(cairo_surface_status(img), CAIRO_STATUS_SUCCESS);
        double thumb_top = g.top - g.panel_h - g.gap_y;
        int yellow = 0, c[3];
        for (double t = 4; t < g.panel_h - 4; t += 1.0) {
            pixel(img, &g, g.left + 1.0, thumb_top + t, c);
            yellow += is_yellow(c);
        }
        if (mirrored)
            assert_true(yellow > 5);
        else
            assert_int_equal(yellow, 0);
        check_fills(img, &g, &r);
        cairo_surface_destroy(img);
        rs_image_routing_free(&r);
    }
}

static void test_grid_png(void **state)
{
    (void)state;
    rs_image_routing r;
    load(&r);
    assert_int_equal(rs_image_top1(&r, 1, 0, 4), 1);
    rs_grid_layout g;
    rs_error err = {0};
    rs_render_context ctx = {.run = &info};
    int rc = rs_render_grid(&r, &ctx, scratch("g.png"), &g, &err);
    if (rc)
        print_message("%s\n", err.msg);
    assert_int_equal(rc, 0);
    cairo_surface_t *img = cairo_image_surface_create_from_png(scratch("g.png"));
    assert_int_equal(cairo_surface_status(img), CAIRO_STATUS_SUCCESS);
    assert_int_equal(cairo_image_surface_get_width(img), (int)ceil(g.width * g.scale));
    int c[3];
    double x, y;
    /* The changed cell (view 1, layer 0, patch 4): red on all four sides. */
    rs_grid_cell_xy(&g, GW, 1, 0, 4, &x, &y);
    pixel(img, &g, x + 1.5, y + g.cell / 2, c), assert_true(is_red(c));
    pixel(img, &g, x + g.cell - 1.5, y + g.cell / 2, c), assert_true(is_red(c));
    pixel(img, &g, x + g.cell / 2, y + 1.5, c), assert_true(is_red(c));
    pixel(img, &g, x + g.cell / 2, y + g.cell - 1.5, c), assert_true(is_red(c));
    /* Unchanged cells, in both views and layers, and the same patch in layer 1: not red. */
    int unchanged[][3] = {{1, 0, 3}, {1, 0, 0}, {1, 1, 4}, {0, 0, 4}, {0, 1, 4}, {1, 0, 8}};
    for (size_t i = 0; i < sizeof unchanged / sizeof *unchanged; i++) {
        rs_grid_cell_xy(&g, GW, unchanged[i][0], unchanged[i][1], unchanged[i][2], &x, &y);
        pixel(img, &g, x + 1.5, y + g.cell / 2, c);
        assert_false(is_red(c));
    }
    check_fills(img, &g, &r);
    /* The palette: E <= 10 colours are distinct. */
    for (int a = 0; a < 10; a++) {
        for (int b = a + 1; b < 10; b++) {
            double pa[3], pb[3];
            rs_palette_expert(a, 10, pa), rs_palette_expert(b, 10, pb);
            assert_true(fabs(pa[0] - pb[0]) + fabs(pa[1] - pb[1]) + fabs(pa[2] - pb[2]) > 0.1);
        }
    }
    cairo_surface_destroy(img);
    rs_image_routing_free(&r);
}

static unsigned char *slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *buf = malloc((size_t)len + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)len, f), (size_t)len);
    buf[len] = 0;
    fclose(f);
    *n = (size_t)len;
    return buf;
}

static void test_grid_pdf(void **state)
{
    (void)state;
    rs_image_routing r;
    load(&r);
    rs_error err = {0};
    rs_render_context ctx = {.run = &info};
    assert_int_equal(rs_render_grid(&r, &ctx, scratch("a.pdf"), NULL, &err), 0);
    assert_int_equal(rs_render_grid(&r, &ctx, scratch("b.pdf"), NULL, &err), 0);
    size_t na, nb;
    unsigned char *a = slurp(scratch("a.pdf"), &na), *b = slurp(scratch("b.pdf"), &nb);
    assert_true(na > 100 && !memcmp(a, "%PDF-", 5));
    assert_int_equal(na, nb);
    assert_memory_equal(a, b, na);
    /* Page objects in the file ("/Type /Page" but not "/Type /Pages"): one. */
    int pages = 0;
    for (size_t i = 0; i + 11 < na; i++)
        if (!memcmp(a + i, "/Type /Page", 11) && a[i + 11] != 's')
            pages++;
    assert_int_equal(pages, 1);
    free(a), free(b);
    if (system("command -v pdfinfo >/dev/null 2>&1") != 0) {
        print_message("pdfinfo not installed (poppler-utils): page count checked from the PDF objects only\n");
    } else {
        char cmd[1200];
        snprintf(cmd, sizeof cmd, "pdfinfo '%s' | grep -q '^Pages: *1$'", scratch("a.pdf"));
        assert_int_equal(system(cmd), 0);
    }
    /* Rows are named as --layer names them: "block B", not the MoE slot. */
    if (system("command -v pdftotext >/dev/null 2>&1") != 0) {
        print_message("pdftotext not installed (poppler-utils): row labels not read\n");
    } else {
        char cmd[1200];
        snprintf(cmd, sizeof cmd, "pdftotext '%s' - | grep -qx 'block 1'", scratch("a.pdf"));
        assert_int_equal(system(cmd), 0);
        snprintf(cmd, sizeof cmd, "pdftotext '%s' - | grep -qx 'block 3'", scratch("a.pdf"));
        assert_int_equal(system(cmd), 0);
        snprintf(cmd, sizeof cmd, "pdftotext '%s' - | grep -q 'MoE layer'", scratch("a.pdf"));
        assert_int_not_equal(system(cmd), 0);
    }
    rs_image_routing_free(&r);
}

static void test_grid_svg(void **state)
{
    (void)state;
    rs_image_routing r;
    load(&r);
    rs_error err = {0};
    assert_int_equal(rs_render_grid(&r, NULL, scratch("g.svg"), NULL, &err), 0);
    size_t n;
    unsigned char *s = slurp(scratch("g.svg"), &n);
    assert_true(n > 20 && !memcmp(s, "<?xml", 5));
    assert_non_null(strstr((char *)s, "<svg"));
    size_t e = n;
    while (e > 0 && (s[e - 1] == '\n' || s[e - 1] == ' '))
        e--;
    assert_true(e >= 6 && !memcmp(s + e - 6, "</svg>", 6));
    free(s);
    if (system("command -v xmllint >/dev/null 2>&1") != 0) {
        print_message("xmllint not installed (libxml2-utils): SVG checked for its frame only\n");
    } else {
        char cmd[1200];
        snprintf(cmd, sizeof cmd, "xmllint --noout '%s'", scratch("g.svg"));
        assert_int_equal(system(cmd), 0);
    }
    rs_image_routing_free(&r);
}

static void test_heatmap(void **state)
{
    (void)state;
    rs_image_routing r;
    load(&r);
    rs_error err = {0};
    double v[NP];
    assert_int_equal(rs_patch_values(&r, RS_PATCH_CHANGED, 0, 0, v, &err), 0);
    for (int j = 0; j < NP; j++) {
        if (j == 8)
            assert_true(isnan(v[j])); /* no patch of view 1 matches it */
        else
            assert_true(v[j] == (j == 4 ? 1.0 : 0.0));
    }
    assert_int_equal(rs_patch_values(&r, RS_PATCH_GATE, 1, 1, v, &err), 0);
    assert_true(fabs(v[0] - 0.7) < 1e-6);
    /* entropy of (0.7, 0.1, 0.1, 0.1) */
    double h = -(0.7 * log2(0.7) + 3 * 0.1 * log2(0.1));
    assert_int_equal(rs_patch_values(&r, RS_PATCH_ENTROPY, 0, 0, v, &err), 0);
    assert_true(fabs(v[3] - h) < 1e-3);
    /* JSD: patch 4 of view 1 (layer 0) has its 0.7 on another expert: JSD of
     * (0.7,.1,.1,.1) and (.1,.7,.1,.1) = H(.4,.4,.1,.1) - H(.7,.1,.1,.1). */
    assert_int_equal(rs_patch_values(&r, RS_PATCH_JSD, 1, 0, v, &err), 0);
    double hm = -(2 * 0.4 * log2(0.4) + 2 * 0.1 * log2(0.1));
    assert_true(fabs(v[4] - (hm - h)) < 1e-3);
    assert_true(fabs(v[3]) < 1e-6);
    assert_true(isnan(v[8]));
    assert_int_equal(rs_patch_values(&r, RS_PATCH_JSD, 0, 0, v, &err), RS_EINVAL);
    assert_int_equal(rs_patch_values(&r, RS_PATCH_GATE, 0, 2, v, &err), RS_EINVAL);
    for (int m = 0; m < 4; m++)
        assert_int_equal(rs_render_heatmap(&r, NULL, (rs_patch_metric)m, -1, -1, scratch("h.png"), &err), 0);
    assert_int_equal(rs_render_heatmap(&r, NULL, RS_PATCH_GATE, 0, 1, scratch("h.svg"), &err), 0);
    /* panels are named as --layer names them, as the grid's rows */
    rs_render_context ctx = {.run = &info};
    assert_int_equal(rs_render_heatmap(&r, &ctx, RS_PATCH_GATE, 0, -1, scratch("h.pdf"), &err), 0);
    if (system("command -v pdftotext >/dev/null 2>&1") == 0) {
        char cmd[1200];
        snprintf(cmd, sizeof cmd, "pdftotext '%s' - | grep -qx 'block 3'", scratch("h.pdf"));
        assert_int_equal(system(cmd), 0);
        snprintf(cmd, sizeof cmd, "pdftotext '%s' - | grep -q 'MoE layer'", scratch("h.pdf"));
        assert_int_not_equal(system(cmd), 0);
    }
    rs_image_routing_free(&r);
}

/* The PNG at PATH as RGB bytes (rows of 3 * *W), read with libpng (not cairo, which drew
   it); owned: free(). */
static unsigned char *read_png_rgb(const char *path, int *w, int *h)
{
    png_image im;
    memset(&im, 0, sizeof im);
    im.version = PNG_IMAGE_VERSION;
    assert_true(png_image_begin_read_from_file(&im, path));
    im.format = PNG_FORMAT_RGB;
    unsigned char *buf = malloc(PNG_IMAGE_SIZE(im));
    assert_non_null(buf);
    assert_true(png_image_finish_read(&im, NULL, buf, 0, NULL));
    *w = (int)im.width, *h = (int)im.height;
    return buf;
}

/* The RGB of the heatmap PNG BUF (W x H pixels) at drawing units (X, Y). */
static void heat_pixel(const unsigned char *buf, int w, int h, double x, double y, int rgb[3])
{
    int px = (int)(x * RS_RENDER_PNG_SCALE), py = (int)(y * RS_RENDER_PNG_SCALE);
    assert_true(px >= 0 && px < w && py >= 0 && py < h);
    const unsigned char *p = buf + ((size_t)py * w + px) * 3;
    rgb[0] = p[0], rgb[1] = p[1], rgb[2] = p[2];
}

/* Within TOL of 255 * WANT in each channel. */
static void assert_colour(const int got[3], const double want[3], double tol, const char *what)
{
    for (int k = 0; k < 3; k++) {
        if (fabs(got[k] - 255 * want[k]) > tol)
            print_message("%s: channel %d is %d, want %.1f\n", what, k, got[k], 255 * want[k]);
        assert_true(fabs(got[k] - 255 * want[k]) <= tol);
    }
}

/* With the view's pixels in the context (a dark-to-light ramp, which a blended cell would
 * show), every cell of a value has one colour: the palette's for value / hi, to PNG
 * rounding, and the colour bar's at the height of that value. Changed (0, 1 and an n/a
 * cell) and gate (0.7 everywhere) on the hand-made run. */
static void test_heatmap_flat_cells(void **state)
{
    (void)state;
    rs_image_routing r;
    load(&r);
    enum { H = 12, W = 12 };
    static float px[V * H * W];
    for (int i = 0; i < V * H * W; i++)
        px[i] = (float)(i % W) / (W - 1);
    rs_render_context ctx = {.run = &info, .pixels = px, .channels = 1, .height = H, .width = W};
    const rs_patch_metric metrics[2] = {RS_PATCH_CHANGED, RS_PATCH_GATE};
    for (int m = 0; m < 2; m++) {
        rs_error err = {0};
        rs_heatmap_layout g;
        assert_int_equal(rs_render_heatmap(&r, &ctx, metrics[m], 0, -1, scratch("hf.png"), &err), 0);
        assert_int_equal(rs_render_heatmap_layout(&r, &ctx, metrics[m], 0, -1, &g, &err), 0);
        assert_int_equal(g.panels, L);
        assert_true(g.thumb_x >= 0 && g.thumb_x + g.panel_w <= g.left);
        int w, h, c[3], first[3][3], seen[3] = {0}; /* per value 0, 0.7 and 1: the first cell's colour */
        unsigned char *buf = read_png_rgb(scratch("hf.png"), &w, &h);
        assert_int_equal(w, (int)ceil(g.width * RS_RENDER_PNG_SCALE));
        double v[NP];
        for (int l = 0; l < L; l++) {
            assert_int_equal(rs_patch_values(&r, metrics[m], 0, l, v, &err), 0);
            for (int j = 0; j < NP; j++) {
                if (isnan(v[j]))
                    continue;
                int slot = v[j] == 0 ? 0 : v[j] == 1 ? 2 : 1;
                assert_true(slot != 1 || fabs(v[j] - 0.7) < 1e-6);
                double x, y, want[3];
                rs_heatmap_cell_xy(&g, GW, l, j, &x, &y);
                heat_pixel(buf, w, h, x + g.cell * 0.15, y + g.cell * 0.15, c);
                rs_palette_viridis(v[j] / g.hi, want);
                assert_colour(c, want, 1, "cell");
                if (seen[slot]++)
                    assert_memory_equal(c, first[slot], sizeof c); /* equal values, equal colours */
                else
                    memcpy(first[slot], c, sizeof c);
                /* the bar at this value (clear of its frame at the ends): the map's colour
                   there, to the value a pixel's centre stands for */
                double by = fmin(g.top + g.panel_h - 1, fmax(g.top + 1, g.top + g.panel_h * (1 - v[j] / g.hi)));
                double centre = (floor(by * RS_RENDER_PNG_SCALE) + 0.5) / RS_RENDER_PNG_SCALE, bar[3];
                double t = (g.top + g.panel_h - centre) / g.panel_h;
                assert_true(fabs(t - v[j] / g.hi) < 1.5 / g.panel_h);
                rs_palette_viridis(t, bar);
                heat_pixel(buf, w, h, g.bar_x + g.bar_w / 2, by, c);
                assert_colour(c, bar, 2, "colour bar");
            }
        }
        assert_true(m == 0 ? seen[0] > 1 && seen[2] >= 1 : seen[1] == L * NP);
        free(buf);
    }
    rs_image_routing_free(&r);
}

/* One MoE layer (here LAYER 0 of the run: the same one panel a one-layer model draws) fills
 * the figure's width: the cells grow and the title wraps, nothing is left blank on the
 * right but the margin; every layer fills it too. */
/* Keeping views 0 and 2 of four moves view 2's predictions, matches, records and
 * probabilities into place 1 and leaves view 0's as they were. */
static void test_keep_views(void **state)
{
    (void)state;
    enum { KV = 4, KL = 2, KT = 3, KR = 2, KE = 4, KP = 2 };
    rs_image_routing r = {.views = KV, .layers = KL, .tokens = KT, .record_k = KR, .experts = KE, .patches = KP};
    size_t rows = (size_t)KV * KL * KT;
    r.predicted = malloc(sizeof(int) * KV), r.pred_prob = malloc(sizeof(float) * KV);
    r.match = malloc(sizeof(int16_t) * KV * KP), r.top_idx = malloc(rows * KR);
    r.top_gate = malloc(sizeof(float) * rows * KR), r.probs = malloc(sizeof(float) * rows * KE);
    assert_non_null(r.predicted), assert_non_null(r.pred_prob), assert_non_null(r.match);
    assert_non_null(r.top_idx), assert_non_null(r.top_gate), assert_non_null(r.probs);
    for (int v = 0; v < KV; v++) {
        r.predicted[v] = 10 + v, r.pred_prob[v] = 0.1f * (float)v;
        for (int j = 0; j < KP; j++)
            r.match[v * KP + j] = (int16_t)(100 * v + j);
        for (size_t q = 0; q < (size_t)KL * KT; q++) {
            size_t row = (size_t)v * KL * KT + q;
            for (int k = 0; k < KR; k++)
                r.top_idx[row * KR + k] = (uint8_t)(v * 50 + q * 2 + (size_t)k), r.top_gate[row * KR + k] = (float)(v + k);
            for (int e = 0; e < KE; e++)
                r.probs[row * KE + e] = (float)(1000 * v + e);
        }
    }
    const int keep[2] = {0, 2};
    rs_image_routing_keep_views(&r, keep, 2);
    assert_int_equal(r.views, 2);
    for (int i = 0; i < 2; i++) {
        int v = keep[i];
        assert_int_equal(r.predicted[i], 10 + v);
        assert_true(r.pred_prob[i] == 0.1f * (float)v);
        for (int j = 0; j < KP; j++)
            assert_int_equal(r.match[i * KP + j], 100 * v + j);
        for (size_t q = 0; q < (size_t)KL * KT; q++) {
            size_t row = (size_t)i * KL * KT + q;
            for (int k = 0; k < KR; k++) {
                assert_int_equal(r.top_idx[row * KR + k], v * 50 + q * 2 + (size_t)k);
                assert_true(r.top_gate[row * KR + k] == (float)(v + k));
            }
            for (int e = 0; e < KE; e++)
                assert_true(r.probs[row * KE + e] == (float)(1000 * v + e));
        }
    }
    rs_image_routing_free(&r);
}

static void test_heatmap_fills_width(void **state)
{
    (void)state;
    rs_image_routing r;
    load(&r);
    enum { H = 12, W = 12 };
    static float px[V * H * W];
    rs_render_context ctx = {.run = &info, .pixels = px, .channels = 1, .height = H, .width = W};
    for (int layer = -1; layer <= 0; layer++) {
        rs_heatmap_layout g;
        rs_error err = {0};
        assert_int_equal(rs_render_heatmap_layout(&r, &ctx, RS_PATCH_CHANGED, -1, layer, &g, &err), 0);
        assert_int_equal(g.panels, layer < 0 ? L : 1);
        print_message("  layer %d: cell %.1f, drawn to %.1f of %.1f\n", layer, g.cell, g.right, g.width);
        assert_true(g.width - g.right <= 16 + 1); /* the margin */
        assert_true(g.cell <= RS_HEATMAP_MAX_CELL);
        assert_int_equal(rs_render_heatmap(&r, &ctx, RS_PATCH_CHANGED, -1, layer, scratch("h1.png"), &err), 0);
    }
    rs_image_routing_free(&r);
}

static void test_plots_and_errors(void **state)
{
    (void)state;
    rs_store *s;
    rs_error err = {0};
    assert_int_equal(rs_store_open(scratch("r.db"), true, &s, &err), 0);
    rs_stats *st = NULL;
    rs_stats_options opt = {.resamples = 50, .seed = 1};
    assert_int_equal(rs_stats_compute(s, run_id, &opt, &st, &err), 0);
    const rs_stats *sts[2] = {st, st};
    const rs_run_info *runs[2] = {&info, &info};
    assert_int_equal(rs_render_sweep(sts, runs, 2, -1, scratch("s.png"), &err), 0);
    assert_int_equal(rs_render_sweep(sts, runs, 1, 1, scratch("s.pdf"), &err), 0);
    assert_int_equal(rs_render_sweep(sts, runs, 1, 2, scratch("s.pdf"), &err), RS_EINVAL);
    assert_int_equal(rs_render_accuracy(sts, runs, 2, scratch("a.png"), &err), 0);
    assert_int_equal(rs_render_load(st, &info, scratch("l.png"), &err), 0);
    assert_int_equal(rs_render_transition(st, &info, -1, scratch("t.png"), &err), 0);
    assert_int_equal(rs_render_transition(st, &info, 5, scratch("t.png"), &err), RS_EINVAL);
    assert_int_equal(rs_render_load(st, &info, scratch("l.jpg"), &err), RS_EINVAL);
    assert_non_null(strstr(err.msg, ".png, .pdf or .svg"));
    assert_int_equal(rs_render_load(st, &info, "/nonexistent-dir/x.png", &err), RS_EIO);
    assert_non_null(strstr(err.msg, "/nonexistent-dir/x.png"));
    rs_image_routing r;
    assert_int_equal(rs_run_image_routing(s, &info, 1, &r, &err), RS_EINVAL);
    rs_stats_free(st);
    rs_store_close(s);
}

/* The groups figure's panels: one row while five fit in the width, then balanced rows. */
static void test_groups_layout(void **state)
{
    (void)state;
    static const int want[][3] = {{1, 5, 1}, {2, 5, 1}, {3, 3, 2}, {4, 3, 2}, {5, 2, 3}, {16, 1, 5}};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        int cols = 0, rows = 0;
        rs_render_groups_layout(want[i][0], &cols, &rows);
        assert_int_equal(cols, want[i][1]);
        assert_int_equal(rows, want[i][2]);
        assert_true(cols * rows >= RS_GROUP_NUM_FIGURES);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_grid_png),
        cmocka_unit_test(test_grid_fills_with_image),
        cmocka_unit_test(test_grid_many_changes_corners),
        cmocka_unit_test(test_grid_view_box),
        cmocka_unit_test(test_grid_svg),
        cmocka_unit_test(test_grid_pdf),
        cmocka_unit_test(test_heatmap),
        cmocka_unit_test(test_heatmap_flat_cells),
        cmocka_unit_test(test_heatmap_fills_width),
        cmocka_unit_test(test_keep_views),
        cmocka_unit_test(test_plots_and_errors),
        cmocka_unit_test(test_groups_layout),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}

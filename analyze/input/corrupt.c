#include "corrupt.h"

#include <math.h>
#include <setjmp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>

/* ---- the benchmark's parameters ------------------------------------------------------
 * Index [set][severity - 1]; set 0 = imagenet (make_imagenet_c.py), 1 = cifar
 * (make_cifar_c.py). Each table names the function it comes from. */

static const double gaussian_noise_c[2][5] = {{.08, .12, .18, .26, .38}, {.04, .06, .08, .09, .10}};
static const double shot_noise_c[2][5] = {{60, 25, 12, 5, 3}, {500, 250, 100, 75, 50}};
static const double impulse_noise_c[2][5] = {{.03, .06, .09, .17, .27}, {.01, .02, .03, .05, .07}};
static const double speckle_noise_c[2][5] = {{.15, .2, .35, .45, .6}, {.06, .1, .12, .16, .2}};
static const double gaussian_blur_c[2][5] = {{1, 2, 3, 4, 6}, {.4, .6, .7, .8, 1}};
/* glass_blur: sigma, max_delta, iterations */
static const double glass_blur_c[2][5][3] = {
    {{0.7, 1, 2}, {0.9, 2, 1}, {1, 2, 3}, {1.1, 3, 2}, {1.5, 4, 2}},
    {{0.05, 1, 1}, {0.25, 1, 1}, {0.4, 1, 1}, {0.25, 1, 2}, {0.4, 1, 2}}};
/* defocus_blur: disk radius, alias_blur */
static const double defocus_blur_c[2][5][2] = {{{3, .1}, {4, .5}, {6, .5}, {8, .5}, {10, .5}},
                                               {{0.3, 0.4}, {0.4, 0.5}, {0.5, 0.6}, {1, 0.2}, {1.5, 0.1}}};
/* zoom_blur: np.arange(1, stop, step) */
static const double zoom_blur_c[2][5][2] = {{{1.11, .01}, {1.16, .01}, {1.21, .02}, {1.26, .02}, {1.31, .03}},
                                            {{1.06, .01}, {1.11, .01}, {1.16, .01}, {1.21, .01}, {1.26, .01}}};
/* fog: strength, wibbledecay; plasma_fractal's mapsize 256 / 32 */
static const double fog_c[2][5][2] = {{{1.5, 2}, {2, 2}, {2.5, 1.7}, {2.5, 1.5}, {3, 1.4}},
                                      {{.2, 3}, {.5, 3}, {0.75, 2.5}, {1, 2}, {1.5, 1.75}}};
static const int fog_mapsize[2] = {256, 32};
/* motion_blur: ImageMagick's radius and sigma (the angle is drawn: uniform in [-45, 45]) */
static const double motion_blur_c[2][5][2] = {{{10, 3}, {15, 5}, {15, 8}, {15, 12}, {20, 15}},
                                              {{6, 1}, {6, 1.5}, {6, 2}, {8, 2}, {9, 2.5}}};
/* snow: layer mean, layer sd, zoom, threshold, motion radius, motion sigma, image weight
 * (the angle is drawn: uniform in [-135, -45]) */
static const double snow_c[2][5][7] = {
    {{0.1, 0.3, 3, 0.5, 10, 4, 0.8}, {0.2, 0.3, 2, 0.5, 12, 4, 0.7}, {0.55, 0.3, 4, 0.9, 12, 8, 0.7},
     {0.55, 0.3, 4.5, 0.85, 12, 8, 0.65}, {0.55, 0.3, 2.5, 0.85, 12, 12, 0.55}},
    {{0.1, 0.2, 1, 0.6, 8, 3, 0.95}, {0.1, 0.2, 1, 0.5, 10, 4, 0.9}, {0.15, 0.3, 1.75, 0.55, 10, 4, 0.9},
     {0.25, 0.3, 2.25, 0.6, 12, 6, 0.85}, {0.3, 0.3, 1.25, 0.65, 14, 12, 0.8}}};
/* frost: image weight, frost weight (the frost texture is our substitute: see frost_texture) */
static const double frost_c[2][5][2] = {{{1, 0.4}, {0.8, 0.6}, {0.7, 0.7}, {0.65, 0.7}, {0.6, 0.75}},
                                        {{1, 0.2}, {1, 0.3}, {0.9, 0.4}, {0.85, 0.4}, {0.75, 0.45}}};
static const double contrast_c[2][5] = {{.4, .3, .2, .1, .05}, {.75, .5, .4, .3, .15}};
static const double brightness_c[2][5] = {{.1, .2, .3, .4, .5}, {.05, .1, .15, .2, .3}};
static const double saturate_c[2][5][2] = {{{0.3, 0}, {0.1, 0}, {2, 0}, {5, 0.1}, {20, 0.2}},
                                           {{0.3, 0}, {0.1, 0}, {1.5, 0}, {2, 0.1}, {2.5, 0.2}}};
static const int jpeg_quality_c[2][5] = {{25, 18, 15, 10, 7}, {80, 65, 58, 50, 40}};
static const double pixelate_c[2][5] = {{0.6, 0.5, 0.4, 0.3, 0.25}, {0.95, 0.9, 0.85, 0.75, 0.65}};
/* elastic_transform: alpha, sigma, affine jitter, in pixels as the code writes them
 * (244 * ... for ImageNet, IMSIZE = 32 for CIFAR) */
static const double elastic_c[2][5][3] = {
    {{244 * 2, 244 * 0.7, 244 * 0.1}, {244 * 2, 244 * 0.08, 244 * 0.2}, {244 * 0.05, 244 * 0.01, 244 * 0.02},
     {244 * 0.07, 244 * 0.01, 244 * 0.02}, {244 * 0.12, 244 * 0.01, 244 * 0.02}},
    {{32 * 0.0, 32 * 0.0, 32 * 0.08}, {32 * 0.05, 32 * 0.2, 32 * 0.07}, {32 * 0.08, 32 * 0.06, 32 * 0.06},
     {32 * 0.1, 32 * 0.04, 32 * 0.05}, {32 * 0.1, 32 * 0.03, 32 * 0.03}}};

static const struct {
    const char *name, *family;
} corruptions[RS_CORRUPT_COUNT] = {
    {"gaussian_noise", "noise"},  {"shot_noise", "noise"},   {"impulse_noise", "noise"},
    {"defocus_blur", "blur"},     {"glass_blur", "blur"},    {"zoom_blur", "blur"},
    {"fog", "weather"},           {"brightness", "weather"}, {"contrast", "digital"},
    {"elastic_transform", "digital"}, {"pixelate", "digital"}, {"jpeg_compression", "digital"},
    {"speckle_noise", "noise"},   {"gaussian_blur", "blur"}, {"saturate", "digital"},
    {"motion_blur", "blur"},      {"snow", "weather"},       {"frost", "weather"},
};

int rs_corrupt_find(const char *name)
{
    for (int i = 0; i < RS_CORRUPT_COUNT; i++)
        if (!strcmp(name, corruptions[i].name))
            return i;
    return -1;
}

const char *rs_corrupt_name(int id)
{
    return id >= 0 && id < RS_CORRUPT_COUNT ? corruptions[id].name : "?";
}

const char *rs_corrupt_family(int id)
{
    return id >= 0 && id < RS_CORRUPT_COUNT ? corruptions[id].family : "?";
}

const char *rs_corrupt_set_name(rs_corrupt_set set)
{
    return set == RS_CSET_CIFAR ? "cifar" : "imagenet";
}

rs_corrupt_set rs_corrupt_default_set(int height, int width)
{
    return height <= 64 && width <= 64 ? RS_CSET_CIFAR : RS_CSET_IMAGENET;
}

/* ---- draws made from uniforms (the reference makes them the same way) ---------------- */

static double uni(const rs_corrupt_rng *r)
{
    return r->uniform(r->state);
}

/* Box-Muller, one normal from two uniforms. */
static double normal(const rs_corrupt_rng *r)
{
    double u1 = uni(r), u2 = uni(r);
    return sqrt(-2 * log(1 - u1)) * cos(2 * M_PI * u2);
}

/* Poisson(lam) by inversion: the smallest k with u <= F(k). */
static double poisson(const rs_corrupt_rng *r, double lam)
{
    double u = uni(r), p = exp(-lam), F = p;
    int k = 0;
    while (u > F && !(p == 0 && k > lam)) {
        k++;
        p *= lam / k;
        F += p;
    }
    return k;
}

/* An integer in [lo, hi), as np.random.randint(lo, hi). */
static int randint(const rs_corrupt_rng *r, int lo, int hi)
{
    int v = lo + (int)floor(uni(r) * (hi - lo));
    return v < hi ? v : hi - 1;
}

/* ---- 8 bits, borders --------------------------------------------------------------- */

/* np.uint8(np.clip(v, 0, 1) * 255) */
static unsigned char level(double v)
{
    v = v < 0 ? 0 : v > 1 ? 1 : v;
    return (unsigned char)(v * 255);
}

/* The same in float32, for the corruptions the benchmark computes in float32. */
static unsigned char levelf(float v)
{
    v = v < 0 ? 0 : v > 1 ? 1 : v;
    return (unsigned char)(v * 255.0f);
}

/* Index I of a line of N under scipy's modes: 'nearest' (a a | a b), 'reflect' (b a | a b),
 * 'mirror' (c b | a b c; OpenCV's BORDER_REFLECT_101). */
typedef enum border { B_NEAREST, B_REFLECT, B_MIRROR } border;

static int border_index(int i, int n, border b)
{
    if (i >= 0 && i < n)
        return i;
    if (b == B_NEAREST || n == 1)
        return i < 0 ? 0 : n - 1;
    int period = b == B_REFLECT ? 2 * n : 2 * n - 2;
    int m = i % period;
    if (m < 0)
        m += period;
    if (m >= n)
        m = b == B_REFLECT ? period - 1 - m : period - m;
    return m;
}

/* ---- pointwise ------------------------------------------------------------------------ */

static void noise_op(int id, double c, const rs_corrupt_rng *r, const double *x, size_t n, unsigned char *out)
{
    for (size_t i = 0; i < n; i++) {
        double v = x[i];
        switch (id) {
        case RS_C_GAUSSIAN_NOISE: v = v + c * normal(r); break;
        case RS_C_SPECKLE_NOISE: v = v + v * (c * normal(r)); break;
        case RS_C_SHOT_NOISE: v = poisson(r, v * c) / c; break;
        default: { /* impulse: skimage's s&p, flipped with probability c, then salt or pepper */
            double flip = uni(r), salt = uni(r);
            if (flip < c)
                v = salt < 0.5 ? 1 : 0;
        }
        }
        out[i] = level(v);
    }
}

/* contrast: (x - mean) * c + mean per channel; the mean summed in raster order. */
static void contrast_op(double c, const double *x, int C, size_t plane, unsigned char *out)
{
    for (int ch = 0; ch < C; ch++) {
        const double *p = x + ch * plane;
        double sum = 0;
        for (size_t i = 0; i < plane; i++)
            sum += p[i];
        double mean = sum / (double)plane;
        for (size_t i = 0; i < plane; i++)
            out[ch * plane + i] = level((p[i] - mean) * c + mean);
    }
}

/* skimage.color.rgb2hsv for one pixel (ties: blue over green over red, as its order of
 * assignment). */
static void rgb2hsv(const double rgb[3], double hsv[3])
{
    double mx = fmax(fmax(rgb[0], rgb[1]), rgb[2]), mn = fmin(fmin(rgb[0], rgb[1]), rgb[2]);
    double delta = mx - mn, h = 0;
    hsv[2] = mx;
    hsv[1] = delta == 0 ? 0 : delta / mx;
    if (delta != 0) {
        if (rgb[2] == mx)
            h = 4. + (rgb[0] - rgb[1]) / delta;
        else if (rgb[1] == mx)
            h = 2. + (rgb[2] - rgb[0]) / delta;
        else
            h = (rgb[1] - rgb[2]) / delta;
        h = fmod(h / 6., 1.);
        if (h < 0)
            h += 1.;
    }
    hsv[0] = h;
}

/* skimage.color.hsv2rgb for one pixel. */
static void hsv2rgb(const double hsv[3], double rgb[3])
{
    double hi = floor(hsv[0] * 6), f = hsv[0] * 6 - hi, s = hsv[1], v = hsv[2];
    double p = v * (1 - s), q = v * (1 - f * s), t = v * (1 - (1 - f) * s);
    const double table[6][3] = {{v, t, p}, {q, v, p}, {p, v, t}, {p, q, v}, {t, p, v}, {v, p, q}};
    int k = ((int)hi % 6 + 6) % 6;
    memcpy(rgb, table[k], sizeof table[k]);
}

/* brightness (HSV value + c) and saturate (HSV saturation * a + b), each clipped to [0, 1].
 * A grey image runs as R = G = B and comes back as PIL's luma of the 8-bit result. */
static void hsv_op(int id, const double *c, const double *x, int C, size_t plane, unsigned char *out)
{
    for (size_t i = 0; i < plane; i++) {
        double rgb[3], hsv[3];
        for (int k = 0; k < 3; k++)
            rgb[k] = x[(C == 3 ? k : 0) * plane + i];
        rgb2hsv(rgb, hsv);
        if (id == RS_C_BRIGHTNESS)
            hsv[2] = fmin(fmax(hsv[2] + c[0], 0), 1);
        else
            hsv[1] = fmin(fmax(hsv[1] * c[0] + c[1], 0), 1);
        hsv2rgb(hsv, rgb);
        unsigned char l[3] = {level(rgb[0]), level(rgb[1]), level(rgb[2])};
        if (C == 3)
            for (int k = 0; k < 3; k++)
                out[k * plane + i] = l[k];
        else /* PIL's RGB -> L: (R 19595 + G 38470 + B 7471 + 2^15) >> 16 */
            out[i] = (unsigned char)((l[0] * 19595u + l[1] * 38470u + l[2] * 7471u + 0x8000u) >> 16);
    }
}

/* ---- filters --------------------------------------------------------------------------- */

/* One line of N samples (stride S) correlated with the symmetric kernel W[-R..R] (W points
 * at its centre), borders by B, summed as scipy's correlate1d does for a symmetric kernel:
 * centre first, then the pairs from the outside in. LINE: scratch of 2N + 2R. The loop
 * over the kernel is the outer one so that the inner one runs over the line (it
 * vectorises); each sample still sums its terms in scipy's order. */
static void correlate_line(double *data, int n, size_t s, const double *w, int r, border b, double *line)
{
    double *acc = line + n + 2 * r;
    for (int i = -r; i < n + r; i++)
        line[i + r] = data[(size_t)border_index(i, n, b) * s];
    for (int i = 0; i < n; i++)
        acc[i] = line[i + r] * w[0];
    for (int j = -r; j < 0; j++) {
        const double *lo = line + r + j, *hi = line + r - j;
        double wj = w[j];
        for (int i = 0; i < n; i++)
            acc[i] += (lo[i] + hi[i]) * wj;
    }
    for (int i = 0; i < n; i++)
        data[(size_t)i * s] = acc[i];
}

/* scipy.ndimage.gaussian_filter over the two axes of each (H,W) plane (rows first, as
 * scipy takes axis 0 first), radius int(truncate * sigma + 0.5). Returns RS_ENOMEM when it
 * cannot get its scratch (the kernel and a line). */
static int gaussian_planes(double *x, int C, int H, int W, double sigma, double truncate, border b)
{
    if (sigma <= 1e-15)
        return 0;
    int r = (int)(truncate * sigma + 0.5), n = H > W ? H : W;
    double *kern = malloc(sizeof(double) * (size_t)(2 * r + 1)), *line = malloc(sizeof(double) * (size_t)(2 * n + 2 * r));
    if (!kern || !line) {
        free(kern), free(line);
        return RS_ENOMEM;
    }
    double sum = 0;
    for (int i = -r; i <= r; i++)
        sum += kern[i + r] = exp(-0.5 / (sigma * sigma) * (double)(i * i));
    for (int i = 0; i <= 2 * r; i++)
        kern[i] /= sum;
    for (int ch = 0; ch < C; ch++) {
        double *p = x + (size_t)ch * H * W;
        for (int col = 0; col < W; col++)
            correlate_line(p + col, H, (size_t)W, kern + r, r, b, line);
        for (int row = 0; row < H; row++)
            correlate_line(p + (size_t)row * W, W, 1, kern + r, r, b, line);
    }
    free(kern), free(line);
    return 0;
}

/* The disk kernel of defocus_blur (the benchmark's disk()): the aliased disk of RADIUS on
 * [-8, 8]^2 (or [-R, R]^2 past 8), normalised, then blurred by cv2.GaussianBlur with ksize
 * 3 (5 past 8) and sigma ALIAS, borders reflected (BORDER_REFLECT_101). *SIDE: its width. */
static double *disk_kernel(double radius, double alias, int *side)
{
    int half = radius <= 8 ? 8 : (int)radius, n = 2 * half + 1, kr = radius <= 8 ? 1 : 2;
    double *k = calloc((size_t)n * n, sizeof *k), g[5], gs = 0;
    if (!k)
        return NULL;
    double sum = 0;
    for (int y = -half; y <= half; y++)
        for (int x = -half; x <= half; x++)
            sum += k[(y + half) * n + x + half] = x * x + y * y <= radius * radius ? 1 : 0;
    for (int i = 0; i < n * n; i++)
        k[i] /= sum;
    for (int i = -kr; i <= kr; i++)
        gs += g[i + kr] = exp(-(double)(i * i) / (2 * alias * alias));
    for (int i = 0; i <= 2 * kr; i++)
        g[i] /= gs;
    double *line = malloc(sizeof(double) * (size_t)(2 * n + 2 * kr));
    if (!line) {
        free(k);
        return NULL;
    }
    for (int y = 0; y < n; y++)
        correlate_line(k + (size_t)y * n, n, 1, g + kr, kr, B_MIRROR, line);
    for (int x = 0; x < n; x++)
        correlate_line(k + x, n, (size_t)n, g + kr, kr, B_MIRROR, line);
    free(line);
    *side = n;
    return k;
}

/* defocus_blur: each plane correlated with the disk kernel (cv2.filter2D, borders
 * BORDER_REFLECT_101). The plane is padded once; each output row sums the kernel's non-zero
 * taps in row-major order (a zero tap adds +0 to a sum of non-negative terms: the same
 * value), the loop over the row innermost so that it vectorises. */
static int defocus_op(const double *c, const double *x, int C, int H, int W, unsigned char *out)
{
    int n;
    double *k = disk_kernel(c[0], c[1], &n);
    if (!k)
        return RS_ENOMEM;
    int half = n / 2, PW = W + 2 * half, nt = 0;
    double *pad = malloc(sizeof(double) * ((size_t)(H + 2 * half) * PW + (size_t)W + (size_t)n * n));
    int *tap = malloc(sizeof(int) * 2 * (size_t)n * n);
    if (!pad || !tap) {
        free(k), free(pad), free(tap);
        return RS_ENOMEM;
    }
    double *acc = pad + (size_t)(H + 2 * half) * PW, *kv = acc + W;
    for (int i = 0; i < n * n; i++)
        if (k[i] != 0)
            kv[nt] = k[i], tap[2 * nt] = i / n, tap[2 * nt + 1] = i % n, nt++;
    for (int ch = 0; ch < C; ch++) {
        const double *p = x + (size_t)ch * H * W;
        for (int y = -half; y < H + half; y++)
            for (int xx = -half; xx < W + half; xx++)
                pad[(size_t)(y + half) * PW + xx + half] =
                    p[(size_t)border_index(y, H, B_MIRROR) * W + border_index(xx, W, B_MIRROR)];
        for (int y = 0; y < H; y++) {
            for (int xx = 0; xx < W; xx++)
                acc[xx] = 0;
            for (int t = 0; t < nt; t++) {
                const double *row = pad + (size_t)(y + tap[2 * t]) * PW + tap[2 * t + 1];
                double kt = kv[t];
                for (int xx = 0; xx < W; xx++)
                    acc[xx] += kt * row[xx];
            }
            for (int xx = 0; xx < W; xx++)
                out[(size_t)ch * H * W + (size_t)y * W + xx] = level(acc[xx]);
        }
    }
    free(k), free(pad), free(tap);
    return 0;
}

/* glass_blur: blur, to 8 bits, then ITER passes that swap each pixel (from the bottom right
 * to (d+1, d+1)) with one up to D away, then blur again. The benchmark's loop bounds 224
 * and 32 are the image's height and width here. */
static int glass_op(const double *c, const rs_corrupt_rng *r, double *x, int C, int H, int W, unsigned char *out)
{
    size_t plane = (size_t)H * W;
    int rc = gaussian_planes(x, C, H, W, c[0], 4.0, B_NEAREST), d = (int)c[1];
    if (rc)
        return rc;
    for (size_t i = 0; i < (size_t)C * plane; i++)
        x[i] = (double)(unsigned char)(x[i] * 255);
    for (int it = 0; it < (int)c[2]; it++)
        for (int h = H - d; h > d; h--)
            for (int w = W - d; w > d; w--) {
                int dx = randint(r, -d, d), dy = randint(r, -d, d);
                size_t a = (size_t)h * W + w, b = (size_t)(h + dy) * W + (w + dx);
                for (int ch = 0; ch < C; ch++) {
                    double t = x[ch * plane + a];
                    x[ch * plane + a] = x[ch * plane + b];
                    x[ch * plane + b] = t;
                }
            }
    for (size_t i = 0; i < (size_t)C * plane; i++)
        x[i] /= 255.;
    if ((rc = gaussian_planes(x, C, H, W, c[0], 4.0, B_NEAREST)))
        return rc;
    for (size_t i = 0; i < (size_t)C * plane; i++)
        out[i] = level(x[i]);
    return 0;
}

/* gaussian_blur: skimage's gaussian (scipy, mode 'nearest', truncate 4). */
static int gaussian_blur_op(double sigma, double *x, int C, int H, int W, unsigned char *out)
{
    int rc = gaussian_planes(x, C, H, W, sigma, 4.0, B_NEAREST);
    for (size_t i = 0; !rc && i < (size_t)C * H * W; i++)
        out[i] = level(x[i]);
    return rc;
}

/* ---- zoom_blur -------------------------------------------------------------------------- */

/* The taps of one output line of clipped_zoom: for each of the N kept outputs, the first
 * and second input (clamped into the crop) and their weights, 0 for a tap past the crop
 * (scipy's mode 'constant' reads 0 there) or of weight 0. IN: the crop's length, OUT: the
 * zoomed length, TRIM: the first kept output. */
static void zoom_line(int in, int out, int trim, int n, int *a0, int *a1, double *w0, double *w1)
{
    double z = out > 1 ? (double)(in - 1) / (double)(out - 1) : 1;
    for (int i = 0; i < n; i++) {
        double cc = (double)(i + trim) * z, f = floor(cc), t = cc - f;
        int lo = (int)f;
        a0[i] = lo < in ? lo : in - 1;
        w0[i] = lo < in ? 1 - t : 0;
        a1[i] = lo + 1 < in ? lo + 1 : in - 1;
        w1[i] = lo + 1 < in ? t : 0;
    }
}

/* clipped_zoom of one (H,W) plane P by Z into DST (H,W): the centre ceil(H/Z) x ceil(W/Z)
 * crop zoomed by Z with scipy's zoom(order=1) (computed in double whatever the array's
 * type; each output sums the four terms (wy * wx) * p in scipy's order: a tap of weight 0
 * adds a zero, which changes no sum), the centre H x W kept. */
static int clipped_zoom(const double *p, int H, int W, double z, double *dst)
{
    int chh = (int)ceil(H / z), chw = (int)ceil(W / z);
    int top = (H - chh) / 2, left = (W - chw) / 2;
    int oh = (int)nearbyint(chh * z), ow = (int)nearbyint(chw * z);
    int *ia = malloc(sizeof(int) * 2 * (size_t)(H + W));
    double *wa = malloc(sizeof(double) * 2 * (size_t)(H + W));
    if (!ia || !wa) {
        free(ia), free(wa);
        return RS_ENOMEM;
    }
    int *y0 = ia, *y1 = ia + H, *x0 = ia + 2 * H, *x1 = x0 + W;
    double *wy0 = wa, *wy1 = wa + H, *wx0 = wa + 2 * H, *wx1 = wx0 + W;
    zoom_line(chh, oh, (oh - H) / 2, H, y0, y1, wy0, wy1);
    zoom_line(chw, ow, (ow - W) / 2, W, x0, x1, wx0, wx1);
    for (int y = 0; y < H; y++) {
        const double *r0 = p + (size_t)(top + y0[y]) * W + left, *r1 = p + (size_t)(top + y1[y]) * W + left;
        double *d = dst + (size_t)y * W;
        for (int x = 0; x < W; x++) {
            double v = 0;
            v += wy0[y] * wx0[x] * r0[x0[x]];
            v += wy0[y] * wx1[x] * r0[x1[x]];
            v += wy1[y] * wx0[x] * r1[x0[x]];
            v += wy1[y] * wx1[x] * r1[x1[x]];
            d[x] = v;
        }
    }
    free(ia), free(wa);
    return 0;
}

/* The zoom factors np.arange(1, STOP, STEP): ceil((stop - 1) / step) of them, value i
 * 1 + i * ((1 + step) - 1) as numpy fills a float range. */
static int zoom_factors(double stop, double step, double *z)
{
    int n = (int)ceil((stop - 1) / step);
    double delta = (1 + step) - 1;
    for (int i = 0; i < n; i++)
        z[i] = i == 0 ? 1 : 1 + i * delta;
    return n;
}

/* zoom_blur: the image plus its clipped zooms, averaged, in float32 as the benchmark's arrays. */
static int zoom_op(const double *c, const double *x, int C, int H, int W, unsigned char *out)
{
    size_t plane = (size_t)H * W;
    double z[64];
    int nz = zoom_factors(c[0], c[1], z), rc = 0;
    double *xd = malloc(sizeof(double) * 2 * plane);
    float *acc = malloc(sizeof(float) * plane);
    if (!xd || !acc) {
        free(xd), free(acc);
        return RS_ENOMEM;
    }
    double *zoomed = xd + plane;
    for (int ch = 0; ch < C && !rc; ch++) {
        for (size_t i = 0; i < plane; i++)
            xd[i] = (float)x[ch * plane + i], acc[i] = 0;
        for (int k = 0; k < nz && !rc; k++) {
            rc = clipped_zoom(xd, H, W, z[k], zoomed);
            for (size_t i = 0; !rc && i < plane; i++)
                acc[i] += (float)zoomed[i];
        }
        for (size_t i = 0; i < plane; i++)
            out[ch * plane + i] = levelf(((float)xd[i] + acc[i]) / (float)(nz + 1));
    }
    free(xd), free(acc);
    return rc;
}

/* ---- fog -------------------------------------------------------------------------------- */

/* plasma_fractal: the diamond-square height map of side N (a power of two) in [0, 1],
 * drawn in the benchmark's order (squares, then the two diamond sets, row-major each). */
static void plasma(double *m, int n, double decay, const rs_corrupt_rng *r)
{
    double wibble = 100;
    m[0] = 0;
    for (int step = n; step >= 2; step /= 2, wibble /= decay) {
        int h = step / 2, k = n / step;
#define AT(i, j) m[(size_t)(i) * n + (j)]
#define WIB(v) ((v) / 4 + wibble * (-wibble + (wibble - -wibble) * uni(r)))
        for (int i = 0; i < k; i++)
            for (int j = 0; j < k; j++) {
                int i1 = (i + 1) % k, j1 = (j + 1) % k;
                double s = (AT(i * step, j * step) + AT(i1 * step, j * step)) +
                           (AT(i * step, j1 * step) + AT(i1 * step, j1 * step));
                AT(h + i * step, h + j * step) = WIB(s);
            }
        for (int i = 0; i < k; i++)
            for (int j = 0; j < k; j++) {
                int im = (i + k - 1) % k, j1 = (j + 1) % k;
                double s = (AT(h + i * step, h + j * step) + AT(h + im * step, h + j * step)) +
                           (AT(i * step, j * step) + AT(i * step, j1 * step));
                AT(i * step, h + j * step) = WIB(s);
            }
        for (int i = 0; i < k; i++)
            for (int j = 0; j < k; j++) {
                int jm = (j + k - 1) % k, i1 = (i + 1) % k;
                double s = (AT(h + i * step, h + j * step) + AT(h + i * step, h + jm * step)) +
                           (AT(i * step, j * step) + AT(i1 * step, j * step));
                AT(h + i * step, j * step) = WIB(s);
            }
#undef WIB
#undef AT
    }
    double mn = m[0], mx;
    for (size_t i = 1; i < (size_t)n * n; i++)
        mn = fmin(mn, m[i]);
    for (size_t i = 0; i < (size_t)n * n; i++)
        m[i] -= mn;
    mx = m[0];
    for (size_t i = 1; i < (size_t)n * n; i++)
        mx = fmax(mx, m[i]);
    for (size_t i = 0; i < (size_t)n * n; i++)
        m[i] /= mx;
}

/* fog: x + c * plasma (the map's top-left H x W), scaled by max / (max + c). The map is the
 * benchmark's size, or the next power of two past the image when that is larger. */
static int fog_op(const double *c, int set, const rs_corrupt_rng *r, const double *x, int C, int H, int W,
                  unsigned char *out)
{
    int n = fog_mapsize[set];
    while (n < H || n < W)
        n *= 2;
    double *m = malloc(sizeof(double) * (size_t)n * n);
    if (!m)
        return RS_ENOMEM;
    plasma(m, n, c[1], r);
    size_t plane = (size_t)H * W;
    double mx = x[0];
    for (size_t i = 1; i < plane * C; i++)
        mx = fmax(mx, x[i]);
    for (int ch = 0; ch < C; ch++)
        for (int y = 0; y < H; y++)
            for (int xx = 0; xx < W; xx++) {
                size_t i = ch * plane + (size_t)y * W + xx;
                double v = x[i] + c[0] * m[(size_t)y * n + xx];
                out[i] = level(v * mx / (mx + c[0]));
            }
    free(m);
    return 0;
}

/* ---- motion_blur, snow, frost -------------------------------------------------------- */

/* ImageMagick 6's MotionBlurImage (magick/effect.c) on one 8-bit plane IN (H,W), as the
 * benchmark calls it through Wand on a PNG: width 2 ceil(radius) + 1 taps (gem.c's
 * GetOptimalKernelWidth1D), tap i weighted exp(-i^2 / 2 sigma^2) normalised
 * (GetMotionBlurKernel) and read at (x + ceil(i cos a - 1/2), y + ceil(i sin a - 1/2)), off
 * the image the nearest edge pixel (the default virtual pixel method). Sums in 16-bit
 * quantum units as a Q16 build, rounded to a quantum, then to 8 bits as the PNG writer's
 * ScaleQuantumToChar. OUT (H,W). */
#define MOTION_MAX_TAPS 64
static int motion_blur_plane(const unsigned char *in, int H, int W, double radius, double sigma, double angle,
                             unsigned char *out)
{
    int n = (int)(2 * ceil(radius) + 1), ox[MOTION_MAX_TAPS], oy[MOTION_MAX_TAPS];
    double k[MOTION_MAX_TAPS], norm = 0, a = angle * M_PI / 180;
    double px = n * sin(a), py = n * cos(a), len = hypot(px, py);
    n = n > MOTION_MAX_TAPS ? MOTION_MAX_TAPS : n;
    for (int i = 0; i < n; i++) {
        norm += k[i] = exp(-((double)i * i) / (2.0 * sigma * sigma)) / (sqrt(2 * M_PI) * sigma);
        ox[i] = (int)ceil(i * py / len - 0.5);
        oy[i] = (int)ceil(i * px / len - 0.5);
    }
    for (int i = 0; i < n; i++)
        k[i] /= norm;
    /* The plane in quantum units (v * 257, exact), padded by N with its edge pixels; each
     * output row sums the taps in order, the loop over the row innermost. */
    int PW = W + 2 * n;
    double *pad = malloc(sizeof(double) * ((size_t)(H + 2 * n) * PW + (size_t)W));
    if (!pad)
        return RS_ENOMEM;
    double *acc = pad + (size_t)(H + 2 * n) * PW;
    for (int y = -n; y < H + n; y++)
        for (int x = -n; x < W + n; x++) {
            int sy = y < 0 ? 0 : y >= H ? H - 1 : y, sx = x < 0 ? 0 : x >= W ? W - 1 : x;
            pad[(size_t)(y + n) * PW + x + n] = in[(size_t)sy * W + sx] * 257.0;
        }
    for (int y = 0; y < H; y++) {
        for (int x = 0; x < W; x++)
            acc[x] = 0;
        for (int i = 0; i < n; i++) {
            const double *row = pad + (size_t)(y + n + oy[i]) * PW + n + ox[i];
            double ki = k[i];
            for (int x = 0; x < W; x++)
                acc[x] += ki * row[x];
        }
        for (int x = 0; x < W; x++) {
            double v = acc[x];
            unsigned q = v <= 0 ? 0 : v >= 65535 ? 65535 : (unsigned)(v + 0.5);
            out[(size_t)y * W + x] = (unsigned char)(((q + 128) - ((q + 128) >> 8)) >> 8);
        }
    }
    free(pad);
    return 0;
}

/* The 8-bit image the benchmark's PIL operations start from: round(x * 255). */
static unsigned char to_u8(double v)
{
    v = v < 0 ? 0 : v > 1 ? 1 : v;
    return (unsigned char)floor(v * 255 + 0.5);
}

/* motion_blur: the 8-bit image through ImageMagick's motion blur at an angle drawn
 * uniformly in [-45, 45] degrees, each channel alike. */
static int motion_op(const double *c, const rs_corrupt_rng *r, const double *x, int C, int H, int W,
                     unsigned char *out)
{
    size_t plane = (size_t)H * W;
    unsigned char *u = malloc(plane);
    if (!u)
        return RS_ENOMEM;
    double angle = -45 + (45 - -45) * uni(r);
    for (int ch = 0; ch < C; ch++) {
        for (size_t i = 0; i < plane; i++)
            u[i] = to_u8(x[ch * plane + i]);
        if (motion_blur_plane(u, H, W, c[0], c[1], angle, out + ch * plane)) {
            free(u);
            return RS_ENOMEM;
        }
    }
    free(u);
    return 0;
}

/* The snow layer of snow (H,W) in 8 bits, as the benchmark hands it back from ImageMagick:
 * normals N(mean, sd) per pixel, clipped_zoom by ZOOM, values below THRESHOLD set to 0,
 * truncated to 8 bits, motion-blurred at an angle drawn uniformly in [-135, -45]. */
static int snow_layer(const double *c, const rs_corrupt_rng *r, int H, int W, unsigned char *layer)
{
    size_t plane = (size_t)H * W;
    double *s = calloc(2 * plane, sizeof(double));
    unsigned char *u = calloc(plane, 1);
    int rc = !s || !u ? RS_ENOMEM : 0;
    if (!rc) {
        for (size_t i = 0; i < plane; i++)
            s[i] = c[0] + c[1] * normal(r);
        rc = clipped_zoom(s, H, W, c[2], s + plane);
    }
    if (!rc) {
        for (size_t i = 0; i < plane; i++) {
            double v = s[plane + i] < c[3] ? 0 : s[plane + i];
            u[i] = (unsigned char)((v < 0 ? 0 : v > 1 ? 1 : v) * 255);
        }
        rc = motion_blur_plane(u, H, W, c[4], c[5], -135 + (-45 - -135) * uni(r), layer);
    }
    free(s), free(u);
    return rc;
}

/* snow: the image brightened toward 1.5 grey + 0.5 (weight 1 - c6, in float32 as the
 * benchmark's array; grey is cv2's RGB2GRAY, 0.299 R + 0.587 G + 0.114 B), plus the snow
 * layer and the layer turned by 180 degrees. */
static int snow_op(const double *c, const rs_corrupt_rng *r, const double *x, int C, int H, int W,
                   unsigned char *out)
{
    size_t plane = (size_t)H * W;
    unsigned char *layer = malloc(plane);
    if (!layer)
        return RS_ENOMEM;
    int rc = snow_layer(c, r, H, W, layer);
    float keep = (float)c[6], mix = (float)(1 - c[6]);
    for (size_t i = 0; !rc && i < plane; i++) {
        float rgb[3];
        for (int k = 0; k < 3; k++)
            rgb[k] = (float)x[(C == 3 ? k : 0) * plane + i];
        float grey = rgb[0] * 0.299f + rgb[1] * 0.587f + rgb[2] * 0.114f, lift = grey * 1.5f + 0.5f;
        for (int ch = 0; ch < C; ch++) {
            float v = keep * rgb[ch] + mix * (rgb[ch] > lift ? rgb[ch] : lift);
            out[ch * plane + i] = level((double)v + layer[i] / 255. + layer[plane - 1 - i] / 255.);
        }
    }
    free(layer);
    return rc;
}

/* Our frost texture (the benchmark's is a crop of one of six photographs we do not have):
 * a plasma map m (the same diamond-square as fog, decay FROST_DECAY), folded into ridges
 * r = 1 - |2m - 1| along its mid level, which read as ice veins, squared to thin them, in
 * 8 bits: floor(r^2 * 255); the same on every channel. Mean about 0.53 * 255. */
#define FROST_DECAY 1.3

static int frost_op(const double *c, const rs_corrupt_rng *r, const double *x, int C, int H, int W,
                    unsigned char *out)
{
    int n = 32;
    while (n < H || n < W)
        n *= 2;
    double *m = malloc(sizeof(double) * (size_t)n * n);
    if (!m)
        return RS_ENOMEM;
    plasma(m, n, FROST_DECAY, r);
    size_t plane = (size_t)H * W;
    for (int y = 0; y < H; y++)
        for (int xx = 0; xx < W; xx++) {
            double ridge = 1 - fabs(2 * m[(size_t)y * n + xx] - 1);
            double f = (double)(unsigned char)(ridge * ridge * 255);
            for (int ch = 0; ch < C; ch++) {
                size_t i = ch * plane + (size_t)y * W + xx;
                double v = c[0] * to_u8(x[i]) + c[1] * f;
                out[i] = (unsigned char)(v < 0 ? 0 : v > 255 ? 255 : v);
            }
        }
    free(m);
    return 0;
}

/* ---- elastic_transform ---------------------------------------------------------------- */

/* Bilinear sample of plane P (H,W) at (row Y, column X), the taps outside the plane taken
 * by border rule B. With B_MIRROR (BORDER_REFLECT_101) it is cv2.warpAffine with
 * INTER_LINEAR (without its 1/32-pixel coordinate rounding). */
static double bilinear(const float *p, int H, int W, double y, double x, border b)
{
    double fy = floor(y), fx = floor(x), ty = y - fy, tx = x - fx;
    int y0 = (int)fy, x0 = (int)fx;
    double v = 0;
    for (int dy = 0; dy < 2; dy++)
        for (int dx = 0; dx < 2; dx++)
            v += (dy ? ty : 1 - ty) * (dx ? tx : 1 - tx) *
                 p[(size_t)border_index(y0 + dy, H, b) * W + border_index(x0 + dx, W, b)];
    return v;
}

/* scipy.ndimage.map_coordinates, order 1, mode 'reflect': the coordinate folded into the
 * line first, then the taps reflected. */
static double fold_reflect(double c, int n)
{
    double n2 = 2.0 * n;
    if (c < 0) {
        if (c < -n2)
            c = n2 * (int)(-c / n2) + c;
        c = c < -n ? c + n2 : -c - 1;
    } else if (c > n - 1) {
        c -= n2 * (int)(c / n2);
        if (c >= n)
            c = n2 - c - 1;
    }
    return c;
}

static double sample_reflect(const float *p, int H, int W, double y, double x)
{
    return bilinear(p, H, W, fold_reflect(y, H), fold_reflect(x, W), B_REFLECT);
}

/* The inverse of the affine map that takes the three points P to Q (cv2.getAffineTransform,
 * then warpAffine's inversion): INV maps (x, y) of the output to the input. */
static void affine_inverse(const double p[3][2], const double q[3][2], double inv[6])
{
    /* Solve [x y 1] * [a d; b e; c f] = [u v] for the three points (Cramer's rule). */
    double det = p[0][0] * (p[1][1] - p[2][1]) - p[0][1] * (p[1][0] - p[2][0]) + (p[1][0] * p[2][1] - p[2][0] * p[1][1]);
    double m[6];
    for (int k = 0; k < 2; k++) {
        double u0 = q[0][k], u1 = q[1][k], u2 = q[2][k];
        double a = (u0 * (p[1][1] - p[2][1]) - p[0][1] * (u1 - u2) + (u1 * p[2][1] - u2 * p[1][1])) / det;
        double b = (p[0][0] * (u1 - u2) - u0 * (p[1][0] - p[2][0]) + (p[1][0] * u2 - p[2][0] * u1)) / det;
        double c = (p[0][0] * (p[1][1] * u2 - p[2][1] * u1) - p[0][1] * (p[1][0] * u2 - p[2][0] * u1) +
                    u0 * (p[1][0] * p[2][1] - p[2][0] * p[1][1])) / det;
        m[3 * k] = a, m[3 * k + 1] = b, m[3 * k + 2] = c;
    }
    double d = m[0] * m[4] - m[1] * m[3];
    inv[0] = m[4] / d, inv[1] = -m[1] / d, inv[3] = -m[3] / d, inv[4] = m[0] / d;
    inv[2] = -(inv[0] * m[2] + inv[1] * m[5]);
    inv[5] = -(inv[3] * m[2] + inv[4] * m[5]);
}

/* The random affine of elastic_transform: three points around the centre, each moved by
 * up to JIT on each axis; points as the code writes them, (H//2 ± s, W//2 ± s) as (x, y). */
static void elastic_affine(double jit, int H, int W, const rs_corrupt_rng *r, double inv[6])
{
    float cs0 = (float)(H / 2), cs1 = (float)(W / 2), s = (float)((H < W ? H : W) / 3);
    float p1[3][2] = {{cs0 + s, cs1 + s}, {cs0 + s, cs1 - s}, {cs0 - s, cs1 - s}};
    double p[3][2], q[3][2];
    for (int i = 0; i < 3; i++)
        for (int k = 0; k < 2; k++) {
            float d = (float)(-jit + (jit - -jit) * uni(r));
            p[i][k] = p1[i][k];
            q[i][k] = (float)(p1[i][k] + d);
        }
    affine_inverse(p, q, inv);
}

/* A displacement field: uniform in [-1, 1] per pixel, gaussian-filtered (mode 'reflect',
 * truncate 3), times ALPHA, to float32. */
static int elastic_field(double alpha, double sigma, int H, int W, const rs_corrupt_rng *r, double *d)
{
    for (size_t i = 0; i < (size_t)H * W; i++)
        d[i] = -1 + (1 - -1) * uni(r);
    int rc = gaussian_planes(d, 1, H, W, sigma, 3.0, B_REFLECT);
    for (size_t i = 0; !rc && i < (size_t)H * W; i++)
        d[i] = (float)(d[i] * alpha);
    return rc;
}

static int elastic_op(const double *c, const rs_corrupt_rng *r, const double *x, int C, int H, int W,
                      unsigned char *out)
{
    size_t plane = (size_t)H * W;
    float *img = malloc(sizeof(float) * 2 * plane * C);
    double *dx = malloc(sizeof(double) * 2 * plane), inv[6];
    if (!img || !dx) {
        free(img), free(dx);
        return RS_ENOMEM;
    }
    double *dy = dx + plane;
    float *warped = img + plane * C;
    for (size_t i = 0; i < plane * C; i++)
        img[i] = (float)x[i];
    elastic_affine(c[2], H, W, r, inv);
    for (int ch = 0; ch < C; ch++)
        for (int y = 0; y < H; y++)
            for (int xx = 0; xx < W; xx++)
                warped[ch * plane + (size_t)y * W + xx] =
                    (float)bilinear(img + ch * plane, H, W, inv[3] * xx + inv[4] * y + inv[5],
                                    inv[0] * xx + inv[1] * y + inv[2], B_MIRROR);
    int rc = elastic_field(c[0], c[1], H, W, r, dx);
    if (!rc)
        rc = elastic_field(c[0], c[1], H, W, r, dy);
    for (int ch = 0; !rc && ch < C; ch++)
        for (int y = 0; y < H; y++)
            for (int xx = 0; xx < W; xx++) {
                size_t i = (size_t)y * W + xx;
                float v = (float)sample_reflect(warped + ch * plane, H, W, y + dy[i], xx + dx[i]);
                out[ch * plane + i] = levelf(v);
            }
    free(img), free(dx);
    return rc;
}

/* ---- pixelate (PIL's BOX resize) ------------------------------------------------------- */

/* PIL's resampling coefficients (precompute_coeffs with the box filter, then 8-bit fixed
 * point with 22 fraction bits): for each of OUT outputs, the first input XMIN, the count
 * XN and up to KMAX weights in K. */
#define PIL_PRECISION 22
static void box_coeffs(int in, int out, int kmax, int *xmin, int *xn, int *k)
{
    double scale = (double)in / out, fscale = scale < 1 ? 1 : scale, support = 0.5 * fscale;
    for (int o = 0; o < out; o++) {
        double center = (o + 0.5) * scale, ss = 1.0 / fscale, w[256], ww = 0;
        int lo = (int)(center - support + 0.5), hi = (int)(center + support + 0.5);
        lo = lo < 0 ? 0 : lo;
        hi = (hi > in ? in : hi) - lo;
        hi = hi > kmax ? kmax : hi;
        for (int x = 0; x < hi; x++) {
            double t = (x + lo - center + 0.5) * ss;
            ww += w[x] = t > -0.5 && t <= 0.5 ? 1.0 : 0.0;
        }
        for (int x = 0; x < hi; x++) {
            double v = ww != 0 ? w[x] / ww : w[x];
            k[o * kmax + x] = (int)(v < 0 ? -0.5 + v * (1 << PIL_PRECISION) : 0.5 + v * (1 << PIL_PRECISION));
        }
        xmin[o] = lo, xn[o] = hi;
    }
}

/* One PIL resampling pass over a line: IN (stride S_IN) of length N_IN to OUT (stride
 * S_OUT) of length N_OUT, rounded to 8 bits. */
static void box_line(const unsigned char *in, size_t s_in, int n_in, unsigned char *out, size_t s_out, int n_out,
                     const int *xmin, const int *xn, const int *k, int kmax)
{
    (void)n_in;
    for (int o = 0; o < n_out; o++) {
        long long ss = 1LL << (PIL_PRECISION - 1);
        for (int x = 0; x < xn[o]; x++)
            ss += (long long)in[(size_t)(xmin[o] + x) * s_in] * k[o * kmax + x];
        out[(size_t)o * s_out] = ss <= 0 ? 0 : ss >= (256LL << PIL_PRECISION) ? 255 : (unsigned char)(ss >> PIL_PRECISION);
    }
}

/* PIL's resize with the box filter of a (H,W) 8-bit plane to (OH,OW): horizontal pass
 * first, then vertical, each rounded to 8 bits. */
static int pil_box_resize(const unsigned char *in, int H, int W, unsigned char *out, int OH, int OW)
{
    int kmax = 256, n = (OH > OW ? OH : OW);
    int *xmin = malloc(sizeof(int) * 2 * (size_t)n), *k = malloc(sizeof(int) * (size_t)n * kmax);
    unsigned char *mid = malloc((size_t)H * OW);
    if (!xmin || !k || !mid) {
        free(xmin), free(k), free(mid);
        return RS_ENOMEM;
    }
    int *xn = xmin + n;
    box_coeffs(W, OW, kmax, xmin, xn, k);
    for (int y = 0; y < H; y++)
        box_line(in + (size_t)y * W, 1, W, mid + (size_t)y * OW, 1, OW, xmin, xn, k, kmax);
    box_coeffs(H, OH, kmax, xmin, xn, k);
    for (int x = 0; x < OW; x++)
        box_line(mid + x, (size_t)OW, H, out + x, (size_t)OW, OH, xmin, xn, k, kmax);
    free(xmin), free(k), free(mid);
    return 0;
}

/* pixelate: box-resize to int(W * c) x int(H * c), then back (the benchmark's 224 and 32
 * are the image's size here). */
static int pixelate_op(double c, const double *x, int C, int H, int W, unsigned char *out)
{
    size_t plane = (size_t)H * W;
    int sh = (int)(H * c), sw = (int)(W * c);
    unsigned char *u = malloc(plane + (size_t)sh * sw);
    if (!u)
        return RS_ENOMEM;
    int rc = 0;
    for (int ch = 0; ch < C && !rc; ch++) {
        for (size_t i = 0; i < plane; i++)
            u[i] = to_u8(x[ch * plane + i]);
        rc = pil_box_resize(u, H, W, u + plane, sh, sw);
        if (!rc)
            rc = pil_box_resize(u + plane, sh, sw, out + ch * plane, H, W);
    }
    free(u);
    return rc;
}

/* ---- jpeg_compression ------------------------------------------------------------------- */

typedef struct jpeg_err {
    struct jpeg_error_mgr pub; /* first: cinfo->err leads back here */
    jmp_buf jump;
} jpeg_err;

static void jpeg_fail(j_common_ptr cinfo)
{
    longjmp(((jpeg_err *)cinfo->err)->jump, 1);
}

static void jpeg_quiet(j_common_ptr cinfo, int level)
{
    (void)cinfo, (void)level;
}

/* Encodes the (H,W,C) 8-bit image PIX as PIL's save(quality=Q) does (libjpeg defaults:
 * 4:2:0 for colour, baseline tables, islow DCT) and decodes it back as PIL opens it (islow,
 * fancy upsampling), into PIX. Grey images are one-component JPEGs: the luma of an
 * R = G = B JPEG is the same image (its chroma is constant). */
static int jpeg_roundtrip(unsigned char *pix, int C, int H, int W, int q)
{
    struct jpeg_compress_struct ci;
    struct jpeg_decompress_struct di;
    jpeg_err je;
    unsigned char *buf = NULL;
    unsigned long len = 0;
    volatile int stage = 0;
    ci.err = di.err = jpeg_std_error(&je.pub);
    je.pub.error_exit = jpeg_fail;
    je.pub.emit_message = jpeg_quiet;
    if (setjmp(je.jump)) {
        if (stage >= 1)
            jpeg_destroy_compress(&ci);
        if (stage >= 2)
            jpeg_destroy_decompress(&di);
        free(buf);
        return RS_EFORMAT;
    }
    jpeg_create_compress(&ci);
    stage = 1;
    jpeg_mem_dest(&ci, &buf, &len);
    ci.image_width = (JDIMENSION)W, ci.image_height = (JDIMENSION)H;
    ci.input_components = C;
    ci.in_color_space = C == 3 ? JCS_RGB : JCS_GRAYSCALE;
    jpeg_set_defaults(&ci);
    jpeg_set_quality(&ci, q, TRUE);
    jpeg_start_compress(&ci, TRUE);
    for (int y = 0; y < H; y++) {
        JSAMPROW row = pix + (size_t)y * W * C;
        jpeg_write_scanlines(&ci, &row, 1);
    }
    jpeg_finish_compress(&ci);
    jpeg_destroy_compress(&ci);
    jpeg_create_decompress(&di);
    stage = 2;
    jpeg_mem_src(&di, buf, len);
    jpeg_read_header(&di, TRUE);
    di.out_color_space = C == 3 ? JCS_RGB : JCS_GRAYSCALE;
    jpeg_start_decompress(&di);
    while (di.output_scanline < di.output_height) {
        JSAMPROW row = pix + (size_t)di.output_scanline * W * C;
        jpeg_read_scanlines(&di, &row, 1);
    }
    jpeg_finish_decompress(&di);
    jpeg_destroy_decompress(&di);
    free(buf);
    return 0;
}

static int jpeg_op(int q, const double *x, int C, int H, int W, unsigned char *out)
{
    size_t plane = (size_t)H * W;
    unsigned char *pix = malloc(plane * C);
    if (!pix)
        return RS_ENOMEM;
    for (size_t i = 0; i < plane; i++)
        for (int ch = 0; ch < C; ch++)
            pix[i * C + ch] = to_u8(x[ch * plane + i]);
    int rc = jpeg_roundtrip(pix, C, H, W, q);
    for (size_t i = 0; !rc && i < plane; i++)
        for (int ch = 0; ch < C; ch++)
            out[ch * plane + i] = pix[i * C + ch];
    free(pix);
    return rc;
}

/* ---- dispatch --------------------------------------------------------------------------- */

static int run_op(int id, int s, int set, const rs_corrupt_rng *r, double *x, int C, int H, int W,
                  unsigned char *out)
{
    size_t plane = (size_t)H * W, n = plane * C;
    switch (id) {
    case RS_C_GAUSSIAN_NOISE: noise_op(id, gaussian_noise_c[set][s], r, x, n, out); return 0;
    case RS_C_SHOT_NOISE: noise_op(id, shot_noise_c[set][s], r, x, n, out); return 0;
    case RS_C_IMPULSE_NOISE: noise_op(id, impulse_noise_c[set][s], r, x, n, out); return 0;
    case RS_C_SPECKLE_NOISE: noise_op(id, speckle_noise_c[set][s], r, x, n, out); return 0;
    case RS_C_CONTRAST: contrast_op(contrast_c[set][s], x, C, plane, out); return 0;
    case RS_C_BRIGHTNESS: hsv_op(id, &brightness_c[set][s], x, C, plane, out); return 0;
    case RS_C_SATURATE: hsv_op(id, saturate_c[set][s], x, C, plane, out); return 0;
    case RS_C_GAUSSIAN_BLUR: return gaussian_blur_op(gaussian_blur_c[set][s], x, C, H, W, out);
    case RS_C_DEFOCUS_BLUR: return defocus_op(defocus_blur_c[set][s], x, C, H, W, out);
    case RS_C_GLASS_BLUR: return glass_op(glass_blur_c[set][s], r, x, C, H, W, out);
    case RS_C_ZOOM_BLUR: return zoom_op(zoom_blur_c[set][s], x, C, H, W, out);
    case RS_C_FOG: return fog_op(fog_c[set][s], set, r, x, C, H, W, out);
    case RS_C_ELASTIC_TRANSFORM: return elastic_op(elastic_c[set][s], r, x, C, H, W, out);
    case RS_C_PIXELATE: return pixelate_op(pixelate_c[set][s], x, C, H, W, out);
    case RS_C_MOTION_BLUR: return motion_op(motion_blur_c[set][s], r, x, C, H, W, out);
    case RS_C_SNOW: return snow_op(snow_c[set][s], r, x, C, H, W, out);
    case RS_C_FROST: return frost_op(frost_c[set][s], r, x, C, H, W, out);
    default: return jpeg_op(jpeg_quality_c[set][s], x, C, H, W, out);
    }
}

int rs_corrupt_apply(int id, int severity, rs_corrupt_set set, const rs_corrupt_rng *rng, float *img, int C, int H,
                     int W, rs_error *err)
{
    if (id < 0 || id >= RS_CORRUPT_COUNT || severity < 1 || severity > 5 || (C != 1 && C != 3))
        return rs_error_set(err, RS_EINVAL, "corruption %d at severity %d on %d channels: outside the contract", id,
                            severity, C);
    if (set == RS_CSET_AUTO)
        set = rs_corrupt_default_set(H, W);
    size_t n = (size_t)C * H * W;
    double *x = malloc(sizeof(double) * n);
    unsigned char *out = malloc(n);
    int rc = !x || !out ? RS_ENOMEM : 0;
    for (size_t i = 0; !rc && i < n; i++)
        x[i] = img[i];
    if (!rc)
        rc = run_op(id, severity - 1, set == RS_CSET_CIFAR, rng, x, C, H, W, out);
    for (size_t i = 0; !rc && i < n; i++)
        img[i] = (float)(out[i] / 255.0);
    free(x), free(out);
    if (rc == RS_ENOMEM)
        return rs_error_set(err, rc, "%s: out of memory", rs_corrupt_name(id));
    if (rc)
        return rs_error_set(err, rc, "%s: libjpeg failed", rs_corrupt_name(id));
    return 0;
}

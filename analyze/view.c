#include "view.h"

#include <errno.h>
#include <gsl/gsl_randist.h>
#include <gsl/gsl_rng.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const double severity_sigma[5] = {0.08, 0.12, 0.18, 0.26, 0.38};

/* ---- parsing ---------------------------------------------------------------------- */

static int parse_number(const char *spec, const char *key, const char *text, double *out, rs_error *err)
{
    char *end;
    errno = 0;
    double v = strtod(text, &end);
    if (errno || end == text || *end || !isfinite(v))
        return rs_error_set(err, RS_EINVAL, "view '%s': %s '%s' is not a number", spec, key, text);
    *out = v;
    return 0;
}

/* "A-B" into lo, hi (a single number gives lo = hi). strtod reads A, so exponents such as
 * 1e-3 stay part of the number; a '-' must follow it for a range. */
static int parse_range(const char *spec, const char *key, const char *text, double *lo, double *hi, rs_error *err)
{
    char *end;
    errno = 0;
    *lo = strtod(text, &end);
    if (errno || end == text || !isfinite(*lo) || (*end && *end != '-'))
        return rs_error_set(err, RS_EINVAL, "view '%s': %s '%s' is not a number or a range A-B", spec, key, text);
    if (!*end) {
        *hi = *lo;
        return 0;
    }
    int rc = parse_number(spec, key, end + 1, hi, err);
    if (!rc && *lo > *hi)
        rc = rs_error_set(err, RS_EINVAL, "view '%s': %s range '%s' runs backwards", spec, key, text);
    return rc;
}

static int check_range(const char *spec, const char *key, double v, double lo, double hi, rs_error *err)
{
    if (v < lo || v > hi)
        return rs_error_set(err, RS_EINVAL, "view '%s': %s %g outside [%g, %g]", spec, key, v, lo, hi);
    return 0;
}

typedef struct op_syntax {
    const char *name;
    rs_op_kind kind;
    const char *keys[3]; /* accepted keys, in p[] order (ranges take two slots) */
} op_syntax;

static const op_syntax ops_syntax[] = {
    {"clean", RS_OP_CLEAN, {NULL}},
    {"noise", RS_OP_NOISE, {"sigma", "severity", NULL}},
    {"crop", RS_OP_CROP, {"area", "ratio", NULL}},
    {"flip", RS_OP_FLIP, {"p", NULL}},
    {"rotate", RS_OP_ROTATE, {"deg", NULL}},
    {"translate", RS_OP_TRANSLATE, {"px", NULL}},
    {"jitter", RS_OP_JITTER, {"b", "c", "s"}},
};

static void op_defaults(rs_view_op *op)
{
    memset(op->p, 0, sizeof op->p);
    switch (op->kind) {
    case RS_OP_CROP: op->p[0] = 0.05, op->p[1] = 1, op->p[2] = 0.75, op->p[3] = 4.0 / 3; break;
    case RS_OP_FLIP: op->p[0] = 0.5; break;
    default: break;
    }
}

static int parse_param(const char *spec, rs_view_op *op, const char *key, const char *value, rs_error *err)
{
    double v = 0;
    int rc;
    switch (op->kind) {
    case RS_OP_NOISE:
        if (!strcmp(key, "sigma")) {
            if ((rc = parse_number(spec, key, value, &v, err)) || (rc = check_range(spec, key, v, 0, 10, err)))
                return rc;
            op->p[0] = v;
        } else {
            if ((rc = parse_number(spec, key, value, &v, err)))
                return rc;
            if (v != floor(v) || v < 1 || v > 5)
                return rs_error_set(err, RS_EINVAL, "view '%s': severity must be 1, 2, 3, 4 or 5", spec);
            op->p[0] = severity_sigma[(int)v - 1];
        }
        return 0;
    case RS_OP_CROP:
        if (!strcmp(key, "area")) {
            if ((rc = parse_range(spec, key, value, &op->p[0], &op->p[1], err)))
                return rc;
            if (op->p[0] <= 0 || op->p[1] > 1)
                return rs_error_set(err, RS_EINVAL, "view '%s': area must lie in (0, 1]", spec);
        } else {
            if ((rc = parse_range(spec, key, value, &op->p[2], &op->p[3], err)))
                return rc;
            if (op->p[2] <= 0)
                return rs_error_set(err, RS_EINVAL, "view '%s': ratio must be positive", spec);
        }
        return 0;
    case RS_OP_FLIP:
        if ((rc = parse_number(spec, key, value, &v, err)) || (rc = check_range(spec, key, v, 0, 1, err)))
            return rc;
        op->p[0] = v;
        return 0;
    case RS_OP_ROTATE:
    case RS_OP_TRANSLATE:
        if ((rc = parse_number(spec, key, value, &v, err)) || (rc = check_range(spec, key, v, 0, 360, err)))
            return rc;
        op->p[0] = v;
        return 0;
    case RS_OP_JITTER:
        if ((rc = parse_number(spec, key, value, &v, err)) || (rc = check_range(spec, key, v, 0, 1, err)))
            return rc;
        op->p[key[0] == 'b' ? 0 : key[0] == 'c' ? 1 : 2] = v;
        return 0;
    case RS_OP_CLEAN:
        break;
    }
    return rs_error_set(err, RS_EINVAL, "view '%s': unexpected parameter '%s'", spec, key);
}

/* One operation "name[:k=v,...]" (modified in place). */
static int parse_op(const char *spec, char *text, rs_view_op *op, rs_error *err)
{
    char *colon = strchr(text, ':');
    if (colon)
        *colon = '\0';
    const op_syntax *syn = NULL;
    for (size_t i = 0; i < sizeof ops_syntax / sizeof *ops_syntax; i++)
        if (!strcmp(text, ops_syntax[i].name))
            syn = &ops_syntax[i];
    if (!syn)
        return rs_error_set(err, RS_EINVAL,
                            "view '%s': unknown operation '%s' (want clean, noise, crop, flip, rotate, translate, jitter)",
                            spec, text);
    op->kind = syn->kind;
    op_defaults(op);
    bool need_param = op->kind == RS_OP_NOISE || op->kind == RS_OP_ROTATE || op->kind == RS_OP_TRANSLATE;
    int seen = 0;
    char *save = NULL;
    for (char *kv = colon ? strtok_r(colon + 1, ",", &save) : NULL; kv; kv = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(kv, '=');
        if (!eq)
            return rs_error_set(err, RS_EINVAL, "view '%s': '%s' is not KEY=VALUE", spec, kv);
        *eq = '\0';
        bool known = false;
        for (int k = 0; k < 3 && syn->keys[k]; k++)
            known |= !strcmp(kv, syn->keys[k]);
        if (!known)
            return rs_error_set(err, RS_EINVAL, "view '%s': %s has no parameter '%s'", spec, syn->name, kv);
        int rc = parse_param(spec, op, kv, eq + 1, err);
        if (rc)
            return rc;
        seen++;
    }
    if (need_param && !seen)
        return rs_error_set(err, RS_EINVAL, "view '%s': %s needs a parameter (%s=...)", spec, syn->name,
                            syn->keys[0]);
    return 0;
}

int rs_view_spec_parse(const char *text, rs_view_spec *out, rs_error *err)
{
    memset(out, 0, sizeof *out);
    if (!text[0] || strlen(text) >= sizeof out->text)
        return rs_error_set(err, RS_EINVAL, "view '%s': empty or longer than %zu characters", text,
                            sizeof out->text - 1);
    snprintf(out->text, sizeof out->text, "%s", text);
    size_t len = strlen(text);
    if (text[0] == '+' || text[len - 1] == '+' || strstr(text, "++"))
        return rs_error_set(err, RS_EINVAL, "view '%s': an empty operation between '+'", text);
    char buf[sizeof out->text];
    snprintf(buf, sizeof buf, "%s", text);
    char *save = NULL;
    for (char *part = strtok_r(buf, "+", &save); part; part = strtok_r(NULL, "+", &save)) {
        if (out->num_ops == RS_VIEW_MAX_OPS)
            return rs_error_set(err, RS_EINVAL, "view '%s': more than %d operations", text, RS_VIEW_MAX_OPS);
        int rc = parse_op(text, part, &out->ops[out->num_ops], err);
        if (rc)
            return rc;
        out->num_ops++;
    }
    if (out->num_ops == 0)
        return rs_error_set(err, RS_EINVAL, "view '%s': no operation", text);
    return 0;
}

/* ---- drawing ---------------------------------------------------------------------- */

/* splitmix64: turns (seed, image, view, stream) into well-mixed generator seeds. */
static uint64_t mix(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

static uint64_t stream_seed(uint64_t run_seed, int image, int view, int stream)
{
    return mix(mix(mix(mix(run_seed) ^ (uint64_t)(uint32_t)image) ^ (uint64_t)(uint32_t)view) ^ (uint64_t)stream);
}

/* 3x3 affine as [a b c; d e f; 0 0 1]: out = m * n. */
static void compose(double m[6], const double n[6])
{
    double r[6] = {m[0] * n[0] + m[1] * n[3], m[0] * n[1] + m[1] * n[4], m[0] * n[2] + m[1] * n[5] + m[2],
                   m[3] * n[0] + m[4] * n[3], m[3] * n[1] + m[4] * n[4], m[3] * n[2] + m[4] * n[5] + m[5]};
    memcpy(m, r, sizeof r);
}

/* torchvision's RandomResizedCrop box: x0, y0, w, h in whole pixels. */
static void draw_crop(gsl_rng *rng, const rs_view_op *op, int W, int H, double box[4])
{
    double area = (double)W * H, log_lo = log(op->p[2]), log_hi = log(op->p[3]);
    for (int attempt = 0; attempt < 10; attempt++) {
        double target = area * (op->p[0] + (op->p[1] - op->p[0]) * gsl_rng_uniform(rng));
        double aspect = exp(log_lo + (log_hi - log_lo) * gsl_rng_uniform(rng));
        long w = lround(sqrt(target * aspect)), h = lround(sqrt(target / aspect));
        if (w > 0 && h > 0 && w <= W && h <= H) {
            box[1] = (double)gsl_rng_uniform_int(rng, (unsigned long)(H - h + 1));
            box[0] = (double)gsl_rng_uniform_int(rng, (unsigned long)(W - w + 1));
            box[2] = (double)w;
            box[3] = (double)h;
            return;
        }
    }
    box[0] = box[1] = 0;
    box[2] = W;
    box[3] = H;
}

void rs_view_draw(const rs_view_spec *spec, int width, int height, uint64_t run_seed, int image, int view,
                  rs_view *out)
{
    memset(out, 0, sizeof *out);
    double m[6] = {1, 0, 0, 0, 1, 0};
    out->crop[2] = width;
    out->crop[3] = height;
    out->jitter[0] = out->jitter[1] = out->jitter[2] = 1;
    out->noise_seed = stream_seed(run_seed, image, view, 1);
    gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
    gsl_rng_set(rng, (unsigned long)stream_seed(run_seed, image, view, 0));
    double W = width, H = height, cx = W / 2, cy = H / 2;
    /* Each geometric op maps its output coordinates to its input; the view's map to the
     * source is their product, first op leftmost. */
    for (int i = 0; i < spec->num_ops; i++) {
        const rs_view_op *op = &spec->ops[i];
        switch (op->kind) {
        case RS_OP_CROP: {
            draw_crop(rng, op, width, height, out->crop);
            double n[6] = {out->crop[2] / W, 0, out->crop[0], 0, out->crop[3] / H, out->crop[1]};
            compose(m, n);
            break;
        }
        case RS_OP_FLIP:
            if (gsl_rng_uniform(rng) < op->p[0]) {
                double n[6] = {-1, 0, W, 0, 1, 0};
                compose(m, n);
                out->flipped = !out->flipped;
            }
            break;
        case RS_OP_ROTATE: {
            double deg = op->p[0] * (2 * gsl_rng_uniform(rng) - 1), a = deg * M_PI / 180;
            double c = cos(a), s = sin(a);
            double n[6] = {c, s, cx - c * cx - s * cy, -s, c, cy + s * cx - c * cy};
            compose(m, n);
            out->angle += deg;
            break;
        }
        case RS_OP_TRANSLATE: {
            double tx = op->p[0] * (2 * gsl_rng_uniform(rng) - 1), ty = op->p[0] * (2 * gsl_rng_uniform(rng) - 1);
            double n[6] = {1, 0, -tx, 0, 1, -ty};
            compose(m, n);
            out->shift[0] += tx;
            out->shift[1] += ty;
            break;
        }
        case RS_OP_JITTER:
            for (int k = 0; k < 3; k++)
                out->jitter[k] = 1 + op->p[k] * (2 * gsl_rng_uniform(rng) - 1);
            break;
        case RS_OP_NOISE:
            out->noise_sigma = op->p[0];
            break;
        case RS_OP_CLEAN:
            break;
        }
    }
    gsl_rng_free(rng);
    memcpy(out->affine, m, sizeof m);
    out->identity = m[0] == 1 && m[1] == 0 && m[2] == 0 && m[3] == 0 && m[4] == 1 && m[5] == 0;
}

/* ---- rendering -------------------------------------------------------------------- */

static float clip01(float v)
{
    return v < 0 ? 0 : v > 1 ? 1 : v;
}

/* Bilinear sample of PLANE (H,W) at index coordinates (x, y); taps outside are zero. */
static float sample(const float *plane, int H, int W, double x, double y)
{
    double fx = floor(x), fy = floor(y);
    int x0 = (int)fx, y0 = (int)fy;
    double ax = x - fx, ay = y - fy;
    double v = 0;
    for (int dy = 0; dy < 2; dy++) {
        int yy = y0 + dy;
        if (yy < 0 || yy >= H)
            continue;
        double wy = dy ? ay : 1 - ay;
        for (int dx = 0; dx < 2; dx++) {
            int xx = x0 + dx;
            if (xx < 0 || xx >= W)
                continue;
            v += wy * (dx ? ax : 1 - ax) * plane[(size_t)yy * W + xx];
        }
    }
    return (float)v;
}

static void jitter(const rs_view *v, float *img, int C, size_t plane)
{
    /* Brightness, contrast (towards the mean grey level), saturation (towards each
     * pixel's grey); grey images have no saturation to change. */
    static const float luma[3] = {0.299f, 0.587f, 0.114f};
    for (size_t i = 0; i < (size_t)C * plane; i++)
        img[i] = clip01(img[i] * (float)v->jitter[0]);
    double mean = 0;
    for (size_t p = 0; p < plane; p++) {
        if (C == 3)
            mean += luma[0] * img[p] + luma[1] * img[plane + p] + luma[2] * img[2 * plane + p];
        else
            mean += img[p];
    }
    mean /= (double)plane;
    for (size_t i = 0; i < (size_t)C * plane; i++)
        img[i] = clip01((float)((img[i] - mean) * v->jitter[1] + mean));
    if (C != 3)
        return;
    for (size_t p = 0; p < plane; p++) {
        float grey = luma[0] * img[p] + luma[1] * img[plane + p] + luma[2] * img[2 * plane + p];
        for (int c = 0; c < 3; c++)
            img[c * plane + p] = clip01((img[c * plane + p] - grey) * (float)v->jitter[2] + grey);
    }
}

void rs_view_render(const rs_view *v, const float *src, int C, int H, int W, float *out)
{
    size_t plane = (size_t)H * W;
    if (v->identity) {
        memcpy(out, src, sizeof(float) * C * plane);
    } else {
        const double *a = v->affine;
        for (int y = 0; y < H; y++) {
            for (int x = 0; x < W; x++) {
                double xv = x + 0.5, yv = y + 0.5;
                double xs = a[0] * xv + a[1] * yv + a[2], ys = a[3] * xv + a[4] * yv + a[5];
                for (int c = 0; c < C; c++)
                    out[c * plane + (size_t)y * W + x] = sample(src + c * plane, H, W, xs - 0.5, ys - 0.5);
            }
        }
    }
    if (v->jitter[0] != 1 || v->jitter[1] != 1 || v->jitter[2] != 1)
        jitter(v, out, C, plane);
    if (v->noise_sigma > 0) {
        gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
        gsl_rng_set(rng, (unsigned long)v->noise_seed);
        for (size_t i = 0; i < (size_t)C * plane; i++)
            out[i] = clip01(out[i] + (float)gsl_ran_gaussian_ziggurat(rng, v->noise_sigma));
        gsl_rng_free(rng);
    }
}

/* ---- correspondence --------------------------------------------------------------- */

/* Snaps values within 1e-9 of an integer to it, so that a centre that lands exactly on a
 * patch boundary in exact arithmetic is not pushed to the left/above by rounding. */
static double snap(double v)
{
    double r = nearbyint(v);
    return fabs(v - r) < 1e-9 ? r : v;
}

int rs_view_match(const rs_view *a, const rs_view *b, int height, int width, int patch, int16_t *match)
{
    int gh = height / patch, gw = width / patch, unmatched = 0;
    if (a->identity && b->identity) {
        for (int j = 0; j < gh * gw; j++)
            match[j] = (int16_t)j;
        return 0;
    }
    const double *A = a->affine, *B = b->affine;
    double det = A[0] * A[4] - A[1] * A[3];
    for (int r = 0; r < gh; r++) {
        for (int c = 0; c < gw; c++) {
            double xv = (c + 0.5) * patch, yv = (r + 0.5) * patch;
            double xs = B[0] * xv + B[1] * yv + B[2] - A[2], ys = B[3] * xv + B[4] * yv + B[5] - A[5];
            /* Source point into A's pixel coordinates: inverse of A's linear part. */
            double xa = snap((A[4] * xs - A[1] * ys) / det), ya = snap((-A[3] * xs + A[0] * ys) / det);
            int16_t m = -1;
            if (xa >= 0 && xa < width && ya >= 0 && ya < height)
                m = (int16_t)((int)floor(ya / patch) * gw + (int)floor(xa / patch));
            else
                unmatched++;
            match[r * gw + c] = m;
        }
    }
    return unmatched;
}

char *rs_view_params_json(const rs_view *v)
{
    char seed[24];
    snprintf(seed, sizeof seed, "%016llx", (unsigned long long)v->noise_seed);
    json_t *o = json_pack("{s:[f,f,f,f,f,f], s:b, s:[f,f,f,f], s:f, s:[f,f], s:[f,f,f], s:f, s:s}",
                          "affine", v->affine[0], v->affine[1], v->affine[2], v->affine[3], v->affine[4],
                          v->affine[5], "flip", v->flipped, "crop", v->crop[0], v->crop[1], v->crop[2], v->crop[3],
                          "angle", v->angle, "shift", v->shift[0], v->shift[1], "jitter", v->jitter[0],
                          v->jitter[1], v->jitter[2], "noise_sigma", v->noise_sigma, "noise_seed", seed);
    char *s = o ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(10)) : NULL;
    json_decref(o);
    return s;
}

/* ---- protocols -------------------------------------------------------------------- */

static void free_specs(char ***specs, int *count)
{
    for (int i = 0; i < *count; i++)
        free((*specs)[i]);
    free(*specs);
    *specs = NULL;
    *count = 0;
}

static int push(char ***specs, int *count, const char *text)
{
    char **grown = realloc(*specs, sizeof *grown * (size_t)(*count + 1));
    if (!grown)
        return -1;
    *specs = grown;
    if (!(grown[*count] = strdup(text)))
        return -1;
    (*count)++;
    return 0;
}

int rs_protocol_views(const char *protocol, const char *augment, const char *custom, char ***specs, int *count,
                      rs_error *err)
{
    *specs = NULL;
    *count = 0;
    int fail = 0;
    if (!strcmp(protocol, "pair")) {
        const char *aug = augment ? augment : RS_PAIR_AUGMENT;
        fail = push(specs, count, aug) || push(specs, count, aug);
    } else if (!strcmp(protocol, "noise")) {
        fail = push(specs, count, "clean");
        for (int k = 1; k <= 5 && !fail; k++) {
            char text[32];
            snprintf(text, sizeof text, "noise:severity=%d", k);
            fail = push(specs, count, text);
        }
    } else if (!strcmp(protocol, "custom")) {
        if (!custom || !custom[0])
            return rs_error_set(err, RS_EINVAL, "protocol custom needs --views 'SPEC;SPEC;...'");
        size_t len = strlen(custom);
        if (custom[0] == ';' || custom[len - 1] == ';' || strstr(custom, ";;"))
            return rs_error_set(err, RS_EINVAL, "--views '%s': an empty view between ';'", custom);
        char *buf = strdup(custom), *save = NULL;
        if (!buf)
            return rs_error_set(err, RS_ENOMEM, "out of memory");
        for (char *s = strtok_r(buf, ";", &save); s && !fail; s = strtok_r(NULL, ";", &save))
            fail = push(specs, count, s);
        free(buf);
        if (!fail && *count < 2) {
            free_specs(specs, count);
            return rs_error_set(err, RS_EINVAL, "protocol custom needs at least two views, got '%s'", custom);
        }
    } else {
        return rs_error_set(err, RS_EINVAL, "unknown protocol '%s' (want pair, noise or custom)", protocol);
    }
    if (fail) {
        free_specs(specs, count);
        return rs_error_set(err, RS_ENOMEM, "out of memory");
    }
    /* Parse every spec now, so a typo fails before any work starts. */
    for (int i = 0; i < *count; i++) {
        rs_view_spec parsed;
        int rc = rs_view_spec_parse((*specs)[i], &parsed, err);
        if (rc) {
            free_specs(specs, count);
            return rc;
        }
    }
    return 0;
}

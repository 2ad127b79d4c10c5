/* explorer.c — rs_report_explorer (explorer.h): the routing explorer's data as JSON, built
 * with jansson from the records store/run.h reads for one image. */
#include <inttypes.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "explorer.h"
#include "stats/patch.h"

/* The longest side a view's pixels keep in the page; larger images are box-averaged down
 * so that a 224 px model's 76 corruption views do not weigh megabytes. */
#define EXPLORER_MAX_SIDE 128

/* Appends V to array A, or notes the failure (V NULL: out of memory) in *BAD. */
static void push(json_t *a, json_t *v, bool *bad)
{
    if (!v || json_array_append_new(a, v))
        *bad = true;
}

static void set(json_t *o, const char *key, json_t *v, bool *bad)
{
    if (!v || json_object_set_new(o, key, v))
        *bad = true;
}

static char *base64(const unsigned char *p, size_t n)
{
    static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char *out = malloc(4 * ((n + 2) / 3) + 1), *q = out;
    if (!out)
        return NULL;
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned)p[i] << 16 | (i + 1 < n ? (unsigned)p[i + 1] << 8 : 0) | (i + 2 < n ? p[i + 2] : 0);
        *q++ = abc[v >> 18 & 63];
        *q++ = abc[v >> 12 & 63];
        *q++ = i + 1 < n ? abc[v >> 6 & 63] : '=';
        *q++ = i + 2 < n ? abc[v & 63] : '=';
    }
    *q = 0;
    return out;
}

/* The views' pixels, (V, C, H, W) in [0,1], as {"c","h","w","views":[base64 of (C,h,w)
 * bytes]}, each side divided by the smallest factor that brings it to EXPLORER_MAX_SIDE. */
static json_t *pixels_json(const float *px, int views, int c, int h, int w, bool *bad)
{
    int f = 1;
    while (h / f > EXPLORER_MAX_SIDE || w / f > EXPLORER_MAX_SIDE)
        f++;
    int oh = h / f, ow = w / f;
    size_t n = (size_t)c * oh * ow;
    unsigned char *bytes = malloc(n ? n : 1);
    json_t *o = json_object(), *list = json_array();
    if (!bytes || !o || !list) {
        free(bytes);
        json_decref(o);
        json_decref(list);
        *bad = true;
        return NULL;
    }
    for (int v = 0; v < views; v++) {
        const float *src = px + (size_t)v * c * h * w;
        for (int ch = 0; ch < c; ch++)
            for (int y = 0; y < oh; y++)
                for (int x = 0; x < ow; x++) {
                    double s = 0;
                    for (int dy = 0; dy < f; dy++)
                        for (int dx = 0; dx < f; dx++)
                            s += src[((size_t)ch * h + y * f + dy) * w + x * f + dx];
                    double t = s / (f * f);
                    bytes[((size_t)ch * oh + y) * ow + x] = (unsigned char)(t <= 0 ? 0 : t >= 1 ? 255 : t * 255 + 0.5);
                }
        char *b64 = base64(bytes, n);
        push(list, b64 ? json_string(b64) : NULL, bad);
        free(b64);
    }
    free(bytes);
    set(o, "c", json_integer(c), bad);
    set(o, "h", json_integer(oh), bad);
    set(o, "w", json_integer(ow), bad);
    set(o, "views", list, bad);
    return o;
}

/* RUN as the page names and colours it. */
static json_t *run_json(const rs_run_info *r, bool *bad)
{
    char buf[512];
    json_t *o = json_object(), *blocks = json_array(), *views = json_array(), *attacked = json_array(),
           *colors = json_array(), *ink = json_array();
    if (o) {
        set(o, "id", json_integer(r->id), bad);
        rs_run_label(r, buf, sizeof buf);
        set(o, "label", json_string(buf), bad);
        rs_run_short_label(r, buf, sizeof buf);
        set(o, "short", json_string(buf), bad);
        set(o, "protocol", json_string(r->protocol), bad);
        set(o, "k", json_integer(r->top_k), bad);
        set(o, "record_k", json_integer(r->record_k), bad);
        set(o, "experts", json_integer(r->num_experts), bad);
        set(o, "grid_h", json_integer(r->grid_h), bad);
        set(o, "grid_w", json_integer(r->grid_w), bad);
    }
    for (int l = 0; blocks && l < r->num_layers; l++)
        push(blocks, json_integer(r->layer_blocks[l]), bad);
    for (int v = 0; views && attacked && v < r->num_views; v++) {
        push(views, json_string(r->view_specs[v]), bad);
        push(attacked, json_boolean(rs_render_view_attacked(r, v, NULL)), bad);
    }
    for (int e = 0; colors && ink && e < r->num_experts; e++) {
        double rgb[3], on[3];
        rs_palette_expert(e, r->num_experts, rgb);
        rs_palette_text_on(rgb, on);
        snprintf(buf, sizeof buf, "#%02x%02x%02x", (int)(rgb[0] * 255 + 0.5), (int)(rgb[1] * 255 + 0.5),
                 (int)(rgb[2] * 255 + 0.5));
        push(colors, json_string(buf), bad);
        push(ink, json_string(on[0] > 0.5 ? "#fff" : "#000"), bad);
    }
    if (!o) {
        *bad = true;
        json_decref(blocks), json_decref(views), json_decref(attacked), json_decref(colors), json_decref(ink);
        return NULL;
    }
    set(o, "blocks", blocks, bad);
    set(o, "views", views, bad);
    set(o, "attacked", attacked, bad);
    set(o, "colors", colors, bad);
    set(o, "ink", ink, bad);
    return o;
}

/* Per view: an array of the patches' values, one per layer when LAYERED. WHAT: 0 top
 * experts, 1 their gates (Np x R each), 2 changed (Np), 3 match (Np, not layered). */
static json_t *per_view(const rs_image_routing *r, int what, bool *bad)
{
    json_t *out = json_array();
    if (!out) {
        *bad = true;
        return NULL;
    }
    int R = r->record_k, Np = r->patches;
    for (int v = 0; v < r->views; v++) {
        json_t *vl = what == 3 ? NULL : json_array();
        for (int l = 0; l < (what == 3 ? 1 : r->layers); l++) {
            json_t *a = json_array();
            for (int j = 0; a && j < Np; j++) {
                size_t t = (((size_t)v * r->layers + l) * r->tokens + j + r->has_cls) * R;
                if (what == 0)
                    for (int k = 0; k < R; k++)
                        push(a, json_integer(r->top_idx[t + k]), bad);
                else if (what == 1)
                    for (int k = 0; k < R; k++)
                        push(a, json_real(r->top_gate[t + k]), bad);
                else if (what == 2)
                    push(a, json_integer(v == 0 ? 0 : rs_patch_top1_changed(r, v, l, j)), bad);
                else
                    push(a, json_integer(r->match[(size_t)v * Np + j]), bad);
            }
            if (what == 3)
                push(out, a, bad);
            else if (vl)
                push(vl, a, bad);
            else
                json_decref(a);
        }
        if (what != 3)
            push(out, vl, bad);
    }
    return out;
}

/* One image of one run: its records (rs_run_image_routing), predictions and pixels. */
static json_t *case_json(rs_report_state *R, const rs_run_info *run, int run_index, int image, bool *bad)
{
    rs_image_routing r;
    R->d.rc = rs_run_image_routing(R->store, run, image, &r, R->d.err);
    if (R->d.rc)
        return NULL;
    json_t *o = json_object(), *pred = json_array();
    char buf[256];
    if (!o || !pred) {
        json_decref(o), json_decref(pred);
        rs_image_routing_free(&r);
        *bad = true;
        return NULL;
    }
    set(o, "run", json_integer(run_index), bad);
    set(o, "image", json_integer(image), bad);
    set(o, "label", json_string(rs_run_class_name(run, r.label, buf, sizeof buf)), bad);
    for (int v = 0; v < r.views; v++) {
        json_t *p = json_object();
        if (p) {
            set(p, "class", json_string(rs_run_class_name(run, r.predicted[v], buf, sizeof buf)), bad);
            set(p, "prob", json_real(r.pred_prob[v]), bad);
        }
        push(pred, p, bad);
    }
    set(o, "predicted", pred, bad);
    set(o, "match", per_view(&r, 3, bad), bad);
    set(o, "top", per_view(&r, 0, bad), bad);
    set(o, "gate", per_view(&r, 1, bad), bad);
    set(o, "changed", per_view(&r, 2, bad), bad);
    /* pixels are context: the explorer stands without them when the data is gone */
    float *px = NULL;
    rs_error no_pixels;
    if (!rs_run_view_pixels(run, image, &px, &no_pixels) && px)
        set(o, "pixels", pixels_json(px, r.views, run->channels, run->image_h, run->image_w, bad), bad);
    free(px);
    rs_image_routing_free(&r);
    return o;
}

/* With groups, one run per method (the model's stem for other methods), k and protocol:
 * the lowest training seed, the earlier run on a tie. */
static bool shown(const rs_report_state *R, int i)
{
    if (R->opt->num_groups <= 0)
        return true;
    const rs_run_info *a = &R->info[i];
    char sa[256], sb[256];
    rs_run_model_stem(a, sa, sizeof sa);
    for (int j = 0; j < R->n; j++) {
        const rs_run_info *b = &R->info[j];
        if (j == i || rs_run_method(b) != rs_run_method(a) || b->top_k != a->top_k ||
            strcmp(b->protocol, a->protocol))
            continue;
        rs_run_model_stem(b, sb, sizeof sb);
        if (rs_run_method(a) == RS_METHOD_OTHER && strcmp(sa, sb))
            continue;
        long long ta = rs_run_train_seed(a), tb = rs_run_train_seed(b);
        if (tb < ta || (tb == ta && j < i))
            return false;
    }
    return true;
}

/* The document: {"version", "runs": [...], "cases": [...]}, cases image by image in the
 * order of the examples, runs in the report's order. */
static json_t *explorer_json(rs_report_state *R, const int *images, int m, bool *bad)
{
    json_t *root = json_object(), *runs = json_array(), *cases = json_array();
    int *index = calloc((size_t)R->n, sizeof *index); /* report run -> "runs" entry, -1 none */
    if (!root || !runs || !cases || !index) {
        json_decref(root), json_decref(runs), json_decref(cases);
        free(index);
        *bad = true;
        return NULL;
    }
    int nruns = 0;
    for (int i = 0; i < R->n; i++) {
        const rs_run_info *r = &R->info[i];
        bool any = false;
        for (int k = 0; k < m; k++)
            any = any || (images[k] >= r->offset && images[k] < r->offset + r->images_done);
        index[i] = any && shown(R, i) ? nruns++ : -1;
        if (index[i] >= 0)
            push(runs, run_json(r, bad), bad);
    }
    for (int k = 0; k < m && !R->d.rc; k++)
        for (int i = 0; i < R->n && !R->d.rc; i++) {
            const rs_run_info *r = &R->info[i];
            if (index[i] >= 0 && images[k] >= r->offset && images[k] < r->offset + r->images_done)
                push(cases, case_json(R, r, index[i], images[k], bad), bad);
        }
    free(index);
    set(root, "version", json_integer(RS_EXPLORER_VERSION), bad);
    set(root, "start_pixels", json_string(RS_RENDER_START_PIXELS), bad);
    set(root, "runs", runs, bad);
    set(root, "cases", cases, bad);
    return root;
}

void rs_report_explorer(rs_report_state *R)
{
    if (R->d.rc || R->opt->images <= 0)
        return;
    int *images = malloc(sizeof *images * (size_t)R->opt->images);
    if (!images) {
        R->d.rc = rs_error_set(R->d.err, RS_ENOMEM, "out of memory");
        return;
    }
    int m = rs_report_example_images(R, images, R->opt->images);
    bool bad = false;
    json_t *root = m > 0 ? explorer_json(R, images, m, &bad) : NULL;
    free(images);
    if (root && !R->d.rc && !bad) {
        /* JSON_ESCAPE_SLASH: the text goes inside a <script> element, where "</" would end it */
        R->d.explorer = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_ESCAPE_SLASH |
                                             JSON_REAL_PRECISION(9));
        bad = R->d.explorer == NULL;
    }
    json_decref(root);
    if (bad && !R->d.rc)
        R->d.rc = rs_error_set(R->d.err, RS_ENOMEM, "out of memory");
}

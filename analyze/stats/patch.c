/* patch.c — the per-patch values of routing (see patch.h). */
#include "patch.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void rs_patch_dist(const float *stored, float *p, int E)
{
    double s = 0;
    for (int e = 0; e < E; e++)
        s += stored[e] > 0 ? stored[e] : 0;
    float inv = s > 0 ? (float)(1 / s) : 0;
    for (int e = 0; e < E; e++)
        p[e] = stored[e] > 0 ? stored[e] * inv : 0;
}

double rs_patch_entropy(const float *p, int E)
{
    double h = 0;
    for (int e = 0; e < E; e++)
        if (p[e] > 0)
            h -= (double)p[e] * log2((double)p[e]);
    return h;
}

double rs_patch_jsd(const float *p, const float *q, double hp, double hq, int E)
{
    double hm = 0;
    for (int e = 0; e < E; e++) {
        double x = 0.5 * ((double)p[e] + (double)q[e]);
        if (x > 0)
            hm -= x * log2(x);
    }
    double d = hm - 0.5 * (hp + hq);
    return d > 0 ? d : 0;
}

int rs_patch_top1_changed(const rs_image_routing *r, int v, int layer, int j)
{
    int m = r->match[(size_t)v * r->patches + j];
    if (m < 0 || m >= r->patches)
        return -1;
    return rs_image_top1(r, v, layer, j) != rs_image_top1(r, 0, layer, m);
}

void rs_patch_change_counts(const rs_image_routing *r, int layer, int *pairs, int *changed)
{
    const int Np = r->patches;
    memset(pairs, 0, sizeof *pairs * (size_t)Np);
    memset(changed, 0, sizeof *changed * (size_t)Np);
    for (int v = 1; v < r->views; v++) {
        for (int j = 0; j < Np; j++) {
            int c = rs_patch_top1_changed(r, v, layer, j);
            if (c < 0)
                continue;
            int m = r->match[(size_t)v * Np + j];
            pairs[m]++;
            changed[m] += c;
        }
    }
}

int rs_patch_metric_parse(const char *text, rs_patch_metric *out, rs_error *err)
{
    static const char *names[] = {"gate", "entropy", "jsd", "changed"};
    for (int i = 0; i < 4; i++) {
        if (text && !strcmp(text, names[i])) {
            *out = (rs_patch_metric)i;
            return 0;
        }
    }
    return rs_error_set(err, RS_EINVAL, "unknown metric '%s' (gate, entropy, jsd or changed)", text ? text : "");
}

const char *rs_patch_metric_name(rs_patch_metric m)
{
    switch (m) {
    case RS_PATCH_GATE: return "top-1 gate";
    case RS_PATCH_ENTROPY: return "routing entropy (bits)";
    case RS_PATCH_JSD: return "JSD to the matched reference patch (bits)";
    case RS_PATCH_CHANGED: return "fraction of views with a different top-1 expert";
    }
    return "?";
}

/* The stored row of patch J of view V, layer L (E values). */
static const float *stored_row(const rs_image_routing *r, int v, int l, int j)
{
    return r->probs + (((size_t)v * r->layers + l) * r->tokens + j + r->has_cls) * r->experts;
}

/* Entropy (VIEW) or JSD (VIEW against view 0) of every patch into VALUES; P and Q are
   scratch (E each). */
static void divergence_values(const rs_image_routing *r, bool jsd, int view, int layer, float *p, float *q,
                              double *values)
{
    const int E = r->experts, Np = r->patches;
    for (int j = 0; j < Np; j++) {
        int m = r->match[(size_t)view * Np + j];
        values[j] = NAN;
        if (jsd && (m < 0 || m >= Np))
            continue;
        rs_patch_dist(stored_row(r, view, layer, j), p, E);
        double hp = rs_patch_entropy(p, E);
        if (!jsd) {
            values[j] = hp;
            continue;
        }
        rs_patch_dist(stored_row(r, 0, layer, m), q, E);
        values[j] = rs_patch_jsd(q, p, rs_patch_entropy(q, E), hp, E);
    }
}

int rs_patch_values(const rs_image_routing *r, rs_patch_metric metric, int view, int layer, double *values,
                    rs_error *err)
{
    if (layer < 0 || layer >= r->layers)
        return rs_error_set(err, RS_EINVAL, "layer %d out of range (the run has %d MoE layers)", layer, r->layers);
    if (metric != RS_PATCH_CHANGED && (view < 0 || view >= r->views))
        return rs_error_set(err, RS_EINVAL, "view %d out of range (the run has %d views)", view, r->views);
    if (metric == RS_PATCH_JSD && view == 0)
        return rs_error_set(err, RS_EINVAL, "jsd compares a view with view 0: choose a view >= 1");
    const int E = r->experts, Np = r->patches;
    if (metric == RS_PATCH_GATE) {
        for (int j = 0; j < Np; j++)
            values[j] = r->top_gate[(((size_t)view * r->layers + layer) * r->tokens + j + r->has_cls) * r->record_k];
        return 0;
    }
    if (metric == RS_PATCH_CHANGED) {
        int *pairs = malloc(sizeof *pairs * 2 * (size_t)Np);
        if (!pairs)
            return rs_error_set(err, RS_ENOMEM, "out of memory");
        int *changed = pairs + Np;
        rs_patch_change_counts(r, layer, pairs, changed);
        for (int m = 0; m < Np; m++)
            values[m] = pairs[m] ? (double)changed[m] / pairs[m] : NAN;
        free(pairs);
        return 0;
    }
    if (!r->probs) /* callers holding the run say which (rs_run_lacks_softmax) */
        return rs_error_set(err, RS_EINVAL, "image %d: the run was recorded with --record topk: no softmax for %s",
                            r->image, metric == RS_PATCH_JSD ? "JSD" : "entropy");
    float *p = malloc(sizeof *p * 2 * (size_t)E);
    if (!p)
        return rs_error_set(err, RS_ENOMEM, "out of memory");
    divergence_values(r, metric == RS_PATCH_JSD, view, layer, p, p + E, values);
    free(p);
    return 0;
}

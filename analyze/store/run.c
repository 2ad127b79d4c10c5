/* run.c — a stored run as one object (contract in run.h). */
#include "run.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "input/source.h"
#include "input/view.h"

/* "1, 2, 5" (at most the first 20 ids) into BUF. */
static void list_ids(const rs_run_info *runs, int n, char *buf, size_t size)
{
    size_t len = 0;
    buf[0] = '\0';
    for (int i = 0; i < n && len < size; i++) {
        if (i == 20) {
            snprintf(buf + len, size - len, ", ...");
            break;
        }
        len += (size_t)snprintf(buf + len, size - len, i ? ", %" PRId64 : "%" PRId64, runs[i].id);
    }
}

int rs_run_load(rs_store *store, const char *name, int64_t run_id, rs_run_info *info, rs_error *err)
{
    /* A named run is read at once; the list of runs is only needed to pick the last
     * finished one or to say which runs there are. */
    if (run_id > 0) {
        int rc = rs_store_get_run(store, run_id, info, err);
        if (!rc && (rc = rs_store_check_run(store, run_id, err))) /* no reader reads a run that fails it */
            rs_run_info_clear(info);
        if (rc != RS_EINVAL)
            return rc;
    }
    rs_run_info *runs;
    int n;
    int rc = rs_store_list_runs(store, &runs, &n, err);
    if (rc)
        return rc;
    int pick = -1;
    for (int i = 0; i < n && run_id == 0; i++)
        if (runs[i].status == RS_RUN_DONE)
            pick = i;
    char ids[256];
    list_ids(runs, n, ids, sizeof ids);
    int64_t id = pick >= 0 ? runs[pick].id : 0;
    for (int i = 0; i < n; i++)
        rs_run_info_clear(&runs[i]);
    free(runs);
    if (pick >= 0) {
        if (!(rc = rs_store_get_run(store, id, info, err)) && (rc = rs_store_check_run(store, id, err)))
            rs_run_info_clear(info);
        return rc;
    }
    if (n == 0)
        return rs_error_set(err, RS_EINVAL, "%s: holds no runs", name);
    if (run_id > 0)
        return rs_error_set(err, RS_EINVAL, "%s: no run %" PRId64 " (runs here: %s)", name, run_id, ids);
    return rs_error_set(err, RS_EINVAL, "%s: no finished run (runs here: %s; see 'routerscope runs --db %s')", name,
                        ids, name);
}

const char *rs_run_class_name(const rs_run_info *run, int cls, char *buf, size_t size)
{
    if (cls < 0)
        snprintf(buf, size, "?");
    else if (run && run->class_names && cls < run->num_class_names)
        snprintf(buf, size, "%d %s", cls, run->class_names[cls]);
    else
        snprintf(buf, size, "%d", cls);
    return buf;
}

static const char *const method_keys[RS_METHOD_COUNT] = {"other", "vmoe", "prc", "jsd", "adv"};

rs_method rs_run_method(const rs_run_info *run)
{
    if (!run)
        return RS_METHOD_OTHER;
    if (run->method) {
        for (int m = RS_METHOD_VMOE; m < RS_METHOD_COUNT; m++)
            if (!strcmp(run->method, method_keys[m]))
                return (rs_method)m;
        return RS_METHOD_OTHER;
    }
    /* Checkpoints from before "method" existed are known by their file names
     * (models/fmnist-prc-k2.safetensors); the method names are tried before "vmoe". */
    if (!run->model_path)
        return RS_METHOD_OTHER;
    const char *base = strrchr(run->model_path, '/');
    base = base ? base + 1 : run->model_path;
    if (strcasestr(base, "prc"))
        return RS_METHOD_PRC;
    if (strcasestr(base, "jsd"))
        return RS_METHOD_JSD;
    if (strcasestr(base, "adv"))
        return RS_METHOD_ADV;
    if (strcasestr(base, "vmoe") || strcasestr(base, "v-moe"))
        return RS_METHOD_VMOE;
    return RS_METHOD_OTHER;
}

const char *rs_method_name(rs_method m)
{
    static const char *const names[RS_METHOD_COUNT] = {"other", "V-MoE", "V-MoE+PRC", "V-MoE+JSD", "V-MoE (adv.)"};
    return m >= 0 && m < RS_METHOD_COUNT ? names[m] : names[0];
}

const char *rs_method_key(rs_method m)
{
    return m >= 0 && m < RS_METHOD_COUNT ? method_keys[m] : method_keys[0];
}

void rs_image_routing_free(rs_image_routing *r)
{
    if (!r)
        return;
    free(r->predicted);
    free(r->pred_prob);
    free(r->match);
    free(r->top_idx);
    free(r->top_gate);
    free(r->probs);
    memset(r, 0, sizeof *r);
}

/* Shapes from RUN and zeroed arrays for them. */
static int image_routing_alloc(const rs_run_info *run, int image, rs_image_routing *r, rs_error *err)
{
    r->image = image, r->label = -1, r->views = run->num_views, r->layers = run->num_layers;
    r->tokens = run->tokens, r->record_k = run->record_k, r->experts = run->num_experts;
    r->patches = run->patches, r->grid_h = run->grid_h, r->grid_w = run->grid_w, r->has_cls = run->has_cls;
    size_t V = (size_t)r->views, rows = V * r->layers * r->tokens;
    r->predicted = calloc(V, sizeof *r->predicted);
    r->pred_prob = calloc(V, sizeof *r->pred_prob);
    r->match = calloc(V * r->patches, sizeof *r->match);
    r->top_idx = calloc(rows * r->record_k, 1);
    r->top_gate = calloc(rows * r->record_k, sizeof *r->top_gate);
    r->probs = calloc(rows * r->experts, sizeof *r->probs);
    if (!r->predicted || !r->pred_prob || !r->match || !r->top_idx || !r->top_gate || !r->probs)
        return rs_error_set(err, RS_ENOMEM, "out of memory reading image %d", image);
    return 0;
}

/* Copies one (view, layer) record into R; counts it in *SEEN. */
static void image_routing_take(rs_image_routing *r, const rs_routing_record *rec, size_t *seen)
{
    if (rec->view < 0 || rec->view >= r->views || rec->layer < 0 || rec->layer >= r->layers)
        return;
    size_t base = ((size_t)rec->view * r->layers + rec->layer) * r->tokens;
    memcpy(r->top_idx + base * r->record_k, rec->top_idx, (size_t)r->tokens * r->record_k);
    memcpy(r->top_gate + base * r->record_k, rec->top_gate, sizeof(float) * r->tokens * r->record_k);
    memcpy(r->probs + base * r->experts, rec->probs, sizeof(float) * r->tokens * r->experts);
    memcpy(r->match + (size_t)rec->view * r->patches, rec->match, sizeof(int16_t) * r->patches);
    r->predicted[rec->view] = rec->predicted;
    r->pred_prob[rec->view] = rec->pred_prob;
    r->label = rec->label;
    (*seen)++;
}

int rs_run_image_routing(rs_store *store, const rs_run_info *run, int image, rs_image_routing *out,
                         rs_error *err)
{
    memset(out, 0, sizeof *out);
    if (image < run->offset || image >= run->offset + run->images_done)
        return rs_error_set(err, RS_EINVAL, "run %" PRId64 " holds images %d..%d, not image %d", run->id,
                            run->offset, run->offset + run->images_done - 1, image);
    rs_store_cursor *cur = NULL;
    int rc = image_routing_alloc(run, image, out, err);
    if (!rc)
        rc = rs_store_cursor_open_images(store, run->id, image, image, &cur, err);
    size_t seen = 0, want = (size_t)out->views * out->layers;
    rs_routing_record rec;
    while (!rc && (rc = rs_store_cursor_next(cur, &rec, err)) == 1) {
        rc = 0;
        image_routing_take(out, &rec, &seen);
    }
    rs_store_cursor_close(cur);
    if (!rc && seen != want)
        rc = rs_error_set(err, RS_EFORMAT, "run %" PRId64 ": image %d has %zu routing records, expected %zu", run->id,
                          image, seen, want);
    for (size_t q = 0; !rc && q < want * out->tokens * out->record_k; q++)
        if (out->top_idx[q] >= out->experts)
            rc = rs_error_set(err, RS_EFORMAT, "run %" PRId64 ": image %d: expert id %d >= %d experts", run->id,
                              image, out->top_idx[q], out->experts);
    if (rc < 0)
        rs_image_routing_free(out);
    return rc < 0 ? rc : 0;
}

int rs_run_view_pixels(const rs_run_info *run, int image, float **pixels, rs_error *err)
{
    *pixels = NULL;
    int C = run->channels, H = run->image_h, W = run->image_w, V = run->num_views;
    if (C < 1 || H < 1 || W < 1 || V < 1)
        return rs_error_set(err, RS_EFORMAT, "run %" PRId64 ": the store does not know the model's input shape",
                            run->id);
    size_t n = (size_t)C * H * W;
    rs_source *src = NULL;
    float *source_px = malloc(sizeof(float) * n), *px = malloc(sizeof(float) * n * (size_t)V);
    int rc = !source_px || !px ? rs_error_set(err, RS_ENOMEM, "out of memory") : rs_source_open(run->data, &src, err);
    if (!rc)
        rc = rs_source_load(src, image, C, H, W, source_px, err);
    for (int v = 0; v < V && !rc; v++) {
        rs_view_spec spec;
        rs_view view;
        rc = rs_view_spec_parse(run->view_specs[v], &spec, err);
        if (!rc)
            rc = rs_view_spec_check_base(&spec, v, err);
        if (!rc) {
            /* A view with a base starts from its base's pixels (already in PX). */
            const float *from = spec.base >= 0 ? px + (size_t)spec.base * n : source_px;
            rs_view_draw(&spec, W, H, run->seed, image, v, &view);
            rs_view_render(&view, from, C, H, W, px + (size_t)v * n);
        }
    }
    rs_source_close(src);
    free(source_px);
    if (rc) {
        free(px);
        return rc;
    }
    *pixels = px;
    return 0;
}

int rs_run_image_top1(rs_store *store, const rs_run_info *run, int64_t **pairs_out, int64_t **agree_out,
                      rs_error *err)
{
    int N = run->images_done, L = run->num_layers, Np = run->patches, R = run->record_k;
    int64_t *pairs = calloc((size_t)(N > 0 ? N : 1), sizeof *pairs);
    int64_t *agree = calloc((size_t)(N > 0 ? N : 1), sizeof *agree);
    int *ref = malloc(sizeof(int) * (size_t)(L > 0 ? L : 1) * (size_t)(Np > 0 ? Np : 1));
    rs_store_cursor *cur = NULL;
    int rc = !pairs || !agree || !ref ? rs_error_set(err, RS_ENOMEM, "out of memory")
                                      : rs_store_cursor_open(store, run->id, &cur, err);
    rs_routing_record rec;
    while (!rc && (rc = rs_store_cursor_next(cur, &rec, err)) == 1) {
        rc = 0;
        int i = rec.image - run->offset;
        if (i < 0 || i >= N || rec.layer < 0 || rec.layer >= L)
            continue;
        const uint8_t *top = rec.top_idx + (size_t)run->has_cls * R;
        if (rec.view == 0) {
            for (int j = 0; j < Np; j++)
                ref[(size_t)rec.layer * Np + j] = top[(size_t)j * R];
            continue;
        }
        for (int j = 0; j < Np; j++) {
            int m = rec.match[j];
            if (m < 0 || m >= Np)
                continue;
            pairs[i]++;
            agree[i] += top[(size_t)j * R] == ref[(size_t)rec.layer * Np + m];
        }
    }
    rs_store_cursor_close(cur);
    free(ref);
    if (rc < 0) {
        free(pairs);
        free(agree);
        return rc;
    }
    *pairs_out = pairs;
    *agree_out = agree;
    return 0;
}

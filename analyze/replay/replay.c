#include "replay.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <time.h>

#include "attack.h"
#include "forward.h"
#include "grad.h"
#include "group_order.h"
#include "model.h"
#include "predict.h"
#include "shard.h"
#include "input/source.h"
#include "store/store.h"
#include "input/view.h"

/* Everything one replay holds; owned, released by engine_close. */
typedef struct engine {
    const rs_replay_options *opt;
    rs_model *model;
    rs_source *source;
    rs_store *store;
    rs_forward *forward;
    rs_grad *grad;         /* the attacks' oracle; NULL when no view has an attack */
    char **specs;          /* view specs */
    int num_views;
    rs_view_spec *parsed;  /* (V) */
    char sha256[65];
    char data[4096];       /* the --data spec with absolute paths: part of the run identity */
    int lock_fd;           /* flock on the database file: one replay writes it at a time */
    char *config_json;     /* the model's config text, for the store */
    char *labels_json;     /* its class names as a JSON array, or NULL */
    rs_run_info run;
    int group;             /* what batches and shards are cut in (rs_group_batch_unit) */
    int window;            /* with a group seed: its window of dispatch groups, else 0 */
    rs_dispatch dispatch;  /* as run: capacity_factor 0 = none */
    double decode_s, forward_s; /* time in decoding + fitting images and in the forward pass */
    double attack_s;       /* time in attacks (their forward + backward passes) */
    int batch;             /* images per batch, a multiple of the group size */
    int *keep_slot;        /* (V) slot in kept_px of a view that is another view's base, or -1 */
    int num_kept;
    int *attack_steps;     /* (V) steps of view v's attack, 0 without one; NULL: no attacks */
    int attack_stride;     /* max steps + 1 */
    uint8_t *forced;       /* (V, L) 1 where view v forces MoE layer l (route:); NULL: no view forces */
    /* Per-batch buffers, sized for `batch` images. */
    float *source_px;      /* (B, C,H,W) fitted source images, [0,1] */
    float *raw_px;         /* (B, C,H,W) one view of every image, [0,1] */
    float *view_px;        /* (B, C,H,W) the same, normalised */
    float *kept_px;        /* (B, num_kept, C,H,W) final [0,1] pixels of base views */
    rs_view *drawn;        /* (B, V) */
    int32_t *labels;       /* (B) */
    int32_t *predicted;    /* (B, V) */
    float *pred_prob;      /* (B, V) */
    char **params;         /* (B, V) owned JSON strings */
    int16_t *match;        /* (B, V, Np) */
    int32_t *top_idx;      /* (B, V, L, T, R) */
    float *top_gate;       /* (B, V, L, T, R) */
    float *probs;          /* (B, V, L, T, E) */
    uint8_t *kept;         /* (B, V, L, T, R), NULL without capacity */
    int32_t *order, *slot; /* (B) with a group seed: the batch's forward order (slot i runs
                              image order[i]) and its inverse; NULL in data order */
    /* Forced routing (allocated only when a view forces). */
    int32_t *executed;     /* (B, V, L, T, k) the experts each token ran */
    int32_t *forced_ids;   /* (L, B, T, k) the forced rows of the view being run, forward order */
    uint8_t *forced_run;   /* (L, B, T, k) which of them run (their source's kept), with capacity */
    int16_t *from_match;   /* (B, Np) its patches matched in its route source */
    /* Attacks (allocated only when a view has one). */
    float *attack_px;      /* (B, C,H,W) the attack's final pixels */
    float *ref_probs;      /* (L, B, T, E) router softmax of the attacked view's start pixels */
    uint64_t *seeds;       /* (B) */
    int32_t *attack_labels; /* (B) the labels in forward order, with a group seed */
    float *attack_linf, *attack_l2; /* (B, V) */
    float *attack_obj;     /* (B, V, attack_stride) */
    float *tmp_linf, *tmp_l2, *tmp_obj; /* (B), (B), (B, attack_stride): one view's records */
} engine;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void engine_close(engine *e)
{
    for (int i = 0; e->params && i < e->batch * e->num_views; i++)
        free(e->params[i]);
    free(e->params);
    void *bufs[] = {e->source_px, e->view_px, e->drawn, e->labels, e->predicted, e->pred_prob,
                    e->match, e->top_idx, e->top_gate, e->probs, e->kept, e->parsed, e->config_json, e->labels_json,
                    e->raw_px, e->kept_px, e->keep_slot, e->attack_steps, e->attack_px, e->ref_probs,
                    e->seeds, e->attack_linf, e->attack_l2, e->attack_obj, e->tmp_linf, e->tmp_l2,
                    e->tmp_obj, e->order, e->slot, e->forced, e->executed, e->forced_ids,
                    e->forced_run, e->from_match, e->attack_labels};
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++)
        free(bufs[i]);
    for (int i = 0; i < e->num_views; i++)
        free(e->specs[i]);
    free(e->specs);
    rs_run_info_clear(&e->run);
    rs_forward_free(e->forward);
    rs_grad_free(e->grad);
    rs_store_close(e->store);
    if (e->lock_fd >= 0)
        close(e->lock_fd); /* after SQLite has closed: closing any descriptor of the file
                              would drop the POSIX locks SQLite holds on it */
    rs_source_close(e->source);
    rs_model_close(e->model);
}

/* The model's config as JSON text (the metadata string, verbatim) and its class names as a
 * JSON array (NULL when the config has none), for the store. */
static int copy_config(engine *e, rs_error *err)
{
    const rs_config *c = &e->model->cfg;
    const char *text = rs_safetensors_metadata(e->model->file, "config");
    bool ok = (e->config_json = strdup(text ? text : "{}")) != NULL;
    if (ok && c->labels) {
        json_t *names = json_array();
        for (int i = 0; names && i < c->num_classes; i++)
            if (json_array_append_new(names, json_string(c->labels[i])))
                ok = false;
        ok = ok && names && (e->labels_json = json_dumps(names, JSON_COMPACT)) != NULL;
        json_decref(names);
    }
    return ok ? 0 : rs_error_set(err, RS_ENOMEM, "out of memory");
}

static int alloc_buffers(engine *e, rs_error *err)
{
    const rs_config *c = &e->model->cfg;
    size_t B = (size_t)e->batch, V = (size_t)e->num_views, L = (size_t)c->num_moe;
    size_t T = (size_t)rs_config_tokens(c), R = (size_t)rs_config_record_k(c), E = (size_t)c->num_experts;
    size_t img = (size_t)c->channels * c->image_h * c->image_w, Np = (size_t)rs_config_patches(c);
    bool ok = (e->source_px = malloc(sizeof(float) * B * img)) && (e->view_px = malloc(sizeof(float) * B * img)) &&
              (e->drawn = calloc(B * V, sizeof *e->drawn)) && (e->labels = malloc(sizeof(int32_t) * B)) &&
              (e->predicted = malloc(sizeof(int32_t) * B * V)) && (e->pred_prob = malloc(sizeof(float) * B * V)) &&
              (e->params = calloc(B * V, sizeof(char *))) && (e->match = malloc(sizeof(int16_t) * B * V * Np)) &&
              (e->top_idx = malloc(sizeof(int32_t) * B * V * L * T * R)) &&
              (e->top_gate = malloc(sizeof(float) * B * V * L * T * R)) &&
              (e->probs = malloc(sizeof(float) * B * V * L * T * E)) &&
              (e->dispatch.capacity_factor == 0 || (e->kept = malloc(B * V * L * T * R))) &&
              (!e->opt->has_group_seed ||
               ((e->order = malloc(sizeof(int32_t) * B)) && (e->slot = malloc(sizeof(int32_t) * B)))) &&
              (e->raw_px = malloc(sizeof(float) * B * img)) &&
              (e->kept_px = malloc(sizeof(float) * B * img * (size_t)(e->num_kept ? e->num_kept : 1)));
    if (ok && e->forced) {
        size_t k = (size_t)c->top_k;
        ok = (e->executed = malloc(sizeof(int32_t) * B * V * L * T * k)) &&
             (e->forced_ids = malloc(sizeof(int32_t) * L * B * T * k)) &&
             (!e->kept || (e->forced_run = malloc(L * B * T * k))) &&
             (e->from_match = malloc(sizeof(int16_t) * B * Np));
    }
    if (ok && e->attack_steps) {
        size_t S = (size_t)e->attack_stride;
        ok = (e->attack_px = malloc(sizeof(float) * B * img)) &&
             (e->ref_probs = malloc(sizeof(float) * L * B * T * E)) && (e->seeds = malloc(sizeof(uint64_t) * B)) &&
             (e->attack_linf = calloc(B * V, sizeof(float))) && (e->attack_l2 = calloc(B * V, sizeof(float))) &&
             (e->attack_obj = calloc(B * V * S, sizeof(float))) && (e->tmp_linf = malloc(sizeof(float) * B)) &&
             (e->tmp_l2 = malloc(sizeof(float) * B)) && (e->tmp_obj = malloc(sizeof(float) * B * S)) &&
             (!e->order || (e->attack_labels = malloc(sizeof(int32_t) * B)));
    }
    return ok ? 0 : rs_error_set(err, RS_ENOMEM, "out of memory for a batch of %d images", e->batch);
}


/* The identity's compute text of O (rs_run_spec.compute): NULL for OpenBLAS float32. */
static const char *compute_text(const rs_replay_options *o, char *buf, size_t size)
{
    if (o->gemm == RS_GEMM_OPENBLAS && o->precision == RS_PRECISION_F32)
        return NULL;
    snprintf(buf, size, "%s/%s", rs_gemm_backend_name(o->gemm), rs_precision_name(o->precision));
    return buf;
}

/* The backend and precision of a stored run's compute text (rs_run_info.compute). */
static int parse_compute(const char *text, rs_replay_options *o, rs_error *err)
{
    char name[32];
    const char *slash = strchr(text, '/');
    o->gemm = RS_GEMM_OPENBLAS;
    o->precision = RS_PRECISION_F32;
    if (!*text)
        return 0;
    if (!slash || (size_t)(slash - text) >= sizeof name)
        return rs_error_set(err, RS_EFORMAT, "run's gemm '%s': want BACKEND/PRECISION", text);
    memcpy(name, text, (size_t)(slash - text));
    name[slash - text] = 0;
    int rc = rs_gemm_backend_parse(name, &o->gemm, err);
    return rc ? rc : rs_precision_parse(slash + 1, &o->precision, err);
}
/* Opens the store and finds, resumes or begins the run. */
static int open_run(engine *e, rs_replay_summary *sum, rs_error *err)
{
    const rs_replay_options *o = e->opt;
    const rs_config *c = &e->model->cfg;
    int rc;
    int blocks[RS_MAX_DEPTH];
    memcpy(blocks, c->moe_layers, sizeof(int) * (size_t)c->num_moe);
    int count = rs_source_count(e->source) - o->offset;
    if (o->offset < 0 || count <= 0)
        return rs_error_set(err, RS_EINVAL, "%s: --offset %d but the source has %d images", rs_source_name(e->source),
                            o->offset, rs_source_count(e->source));
    if (o->limit > 0 && o->limit < count)
        count = o->limit;
    int first = o->offset, len = count;
    if (o->shard_count > 0 && (rc = rs_shard_slice(count, e->group, o->shard_index, o->shard_count, &first, &len,
                                                   err)))
        return rc;
    if (o->shard_count > 0)
        first += o->offset;
    char compute[32];
    rs_run_spec spec = {
        .model_path = o->model_path, .model_sha256 = e->sha256, .model_config = e->config_json,
        .model_labels = e->labels_json, .top_k = c->top_k, .channels = c->channels, .image_h = c->image_h,
        .image_w = c->image_w,
        .model_params = e->model->num_params, .data = e->data, .offset = first, .count = len,
        .shard_index = o->shard_index, .shard_count = o->shard_count, .job_offset = o->offset, .job_count = count,
        .protocol = o->protocol, .num_views = e->num_views, .view_specs = (const char *const *)e->specs,
        .seed = o->seed, .fit_version = rs_source_fit_version(e->source), .num_layers = c->num_moe,
        .layer_blocks = blocks, .tokens = rs_config_tokens(c),
        .patches = rs_config_patches(c), .grid_h = rs_config_grid_h(c), .grid_w = rs_config_grid_w(c),
        .record_k = rs_config_record_k(c), .num_experts = c->num_experts, .num_classes = c->num_classes,
        .has_cls = c->classifier == RS_CLASSIFIER_TOKEN, .command = o->command, .version = o->version,
        .capacity_factor = e->dispatch.capacity_factor, .group_images = e->dispatch.group_images,
        .bpr = e->dispatch.bpr, .has_group_seed = o->has_group_seed, .group_seed = o->group_seed,
        .compute = compute_text(o, compute, sizeof compute), .record = o->record,
        .bf16_dispatch = e->dispatch.bf16, .pad_last_group = e->dispatch.pad_last};
    int found = rs_store_find_run(e->store, &spec, &e->run, err);
    if (found < 0)
        return found;
    if (found && e->run.status == RS_RUN_DONE) {
        sum->already_done = true;
        return 0;
    }
    if (found) {
        sum->resumed = true;
        return rs_store_set_status(e->store, e->run.id, RS_RUN_RUNNING, NULL, err);
    }
    int64_t id;
    if ((rc = rs_store_begin_run(e->store, &spec, &id, err)))
        return rc;
    return rs_store_get_run(e->store, id, &e->run, err);
}

/* The attack's oracle: rs_grad on the view's objective, labels and reference routing. */
typedef struct oracle_ctx {
    rs_grad *grad;
    const rs_objective *objective;
    const int32_t *labels;
    const float *const *ref;
} oracle_ctx;

static int grad_oracle(void *ctx, const float *pixels, int batch, float *value, float *grad, rs_error *err)
{
    const oracle_ctx *o = ctx;
    return rs_grad_run(o->grad, o->objective, pixels, batch, o->labels, o->ref, value, grad, err);
}

/* The slot of the last forward pass that holds image I of the batch. */
static size_t image_slot(const engine *e, int i)
{
    return (size_t)(e->slot ? e->slot[i] : i);
}

/* The forward pass of E->raw_px (N images) through E->view_px, in the batch's forward
 * order: image i's outputs are in slot image_slot(e, i). FORCED as in
 * rs_forward_run_forced, rows in that order (NULL: the router's own routing). */
static int forward_raw(engine *e, int n, const rs_forced *forced, rs_error *err)
{
    const rs_config *c = &e->model->cfg;
    size_t img = (size_t)c->channels * c->image_h * c->image_w;
    #pragma omp parallel for num_threads(e->opt->threads) schedule(static)
    for (int i = 0; i < n; i++) {
        memcpy(e->view_px + i * img, e->raw_px + (e->order ? e->order[i] : i) * img, sizeof(float) * img);
        rs_model_normalize(c, e->view_px + i * img);
    }
    double t = now();
    int rc = rs_forward_run_forced(e->forward, e->view_px, n, forced, err);
    e->forward_s += now() - t;
    return rc;
}

/* The image at place P of the attack: the attack runs in the forward pass's order, so that
 * its gradient's dispatch groups hold the same images as the forward pass's. */
static int attack_image(const engine *e, int p)
{
    return e->order ? e->order[p] : p;
}

/* Attacks view V of the N images in E->raw_px (their start pixels), which it replaces by the
 * attacked pixels, and keeps the attack's records. The reference routing is the forward
 * pass of the start pixels; the labels come from the data. With a group seed the attack
 * runs on the images in forward order (in E->view_px, free until the next forward pass). */
static int attack_view(engine *e, int v, int first, int n, rs_error *err)
{
    const rs_config *c = &e->model->cfg;
    const rs_attack_spec *a = &e->parsed[v].pgd;
    int V = e->num_views, L = c->num_moe, S = e->attack_stride;
    size_t img = (size_t)c->channels * c->image_h * c->image_w, te = (size_t)rs_config_tokens(c) * c->num_experts;
    bool needs_ref = rs_objective_needs_ref(&a->objective), needs_labels = rs_objective_needs_labels(&a->objective);
    const float *ref[RS_MAX_DEPTH];
    for (int l = 0; l < L; l++)
        ref[l] = e->ref_probs + l * e->batch * te;
    if (needs_ref) {
        int rc = forward_raw(e, n, NULL, err);
        if (rc)
            return rc;
        const rs_forward_out *out = rs_forward_result(e->forward);
        for (int l = 0; l < L; l++)
            for (int p = 0; p < n; p++)
                memcpy(e->ref_probs + (l * e->batch + p) * te,
                       out->moe[l].probs + image_slot(e, attack_image(e, p)) * te, sizeof(float) * te);
    }
    for (int i = 0; i < n && needs_labels; i++)
        if (e->labels[i] < 0)
            return rs_error_set(err, RS_EINVAL, "view '%s': its loss needs labels, and image %d of %s has none",
                                e->specs[v], first + i, rs_source_name(e->source));
    const float *x0 = e->raw_px;
    const int32_t *labels = e->labels;
    if (e->order) {
        for (int p = 0; p < n; p++) {
            memcpy(e->view_px + p * img, e->raw_px + attack_image(e, p) * img, sizeof(float) * img);
            e->attack_labels[p] = e->labels[attack_image(e, p)];
        }
        x0 = e->view_px;
        labels = e->attack_labels;
    }
    for (int p = 0; p < n; p++)
        e->seeds[p] = e->drawn[(size_t)attack_image(e, p) * V + v].attack_seed;
    oracle_ctx ctx = {e->grad, &a->objective, needs_labels ? labels : NULL, needs_ref ? ref : NULL};
    rs_attack_record_out rec = {e->tmp_linf, e->tmp_l2, e->tmp_obj};
    double t = now();
    int rc = rs_attack_run(a, x0, n, img, e->seeds, grad_oracle, &ctx, e->attack_px, &rec, err);
    e->attack_s += now() - t;
    if (rc)
        return rc;
    for (int p = 0; p < n; p++) {
        size_t i = (size_t)attack_image(e, p), iv = i * V + v;
        memcpy(e->raw_px + i * img, e->attack_px + p * img, sizeof(float) * img);
        e->attack_linf[iv] = e->tmp_linf[p];
        e->attack_l2[iv] = e->tmp_l2[p];
        memcpy(e->attack_obj + iv * S, e->tmp_obj + (size_t)p * (a->steps + 1), sizeof(float) * (a->steps + 1));
    }
    return 0;
}

/* View V's start pixels of the N images into E->raw_px: rendered from the source, or from
 * its base view's final pixels (the view then takes its base's geometry), and its match.
 * RS_ENOMEM when a corruption could not get its scratch memory. */
static int render_view(engine *e, int v, int n, rs_error *err)
{
    int failed = 0;
    const rs_config *c = &e->model->cfg;
    int V = e->num_views, C = c->channels, H = c->image_h, W = c->image_w, Np = rs_config_patches(c);
    size_t img = (size_t)C * H * W;
    int base = e->parsed[v].base;
    #pragma omp parallel for num_threads(e->opt->threads) schedule(static)
    for (int i = 0; i < n; i++) {
        rs_view *view = &e->drawn[(size_t)i * V + v];
        const float *src = e->source_px + i * img;
        if (base >= 0)
            src = e->kept_px + ((size_t)i * e->num_kept + e->keep_slot[base]) * img;
        if (rs_view_render(view, src, C, H, W, e->raw_px + i * img)) {
            #pragma omp atomic write
            failed = 1;
        }
        if (base >= 0)
            rs_view_inherit(view, &e->drawn[(size_t)i * V + base]);
        rs_view_match(&e->drawn[(size_t)i * V], view, H, W, c->patch_size, e->match + ((size_t)i * V + v) * Np);
    }
    return failed ? rs_error_set(err, RS_ENOMEM, "view %d: out of memory for its corruption", v) : 0;
}

/* Predictions and routing of view V from the last forward pass. */
static int record_view(engine *e, int v, int n, rs_error *err)
{
    const rs_config *c = &e->model->cfg;
    int V = e->num_views, L = c->num_moe, T = rs_config_tokens(c), R = rs_config_record_k(c);
    int E = c->num_experts, K = c->num_classes;
    const rs_forward_out *out = rs_forward_result(e->forward);
    for (int i = 0; i < n; i++) {
        size_t iv = (size_t)i * V + v, at = image_slot(e, i);
        e->predicted[iv] = rs_model_predict(out->logits + at * K, K, &e->pred_prob[iv]);
        free(e->params[iv]);
        if (!(e->params[iv] = rs_view_params_json(&e->drawn[iv])))
            return rs_error_set(err, RS_ENOMEM, "out of memory");
        for (int l = 0; l < L; l++) {
            const rs_moe_routing *r = &out->moe[l];
            size_t dst = (iv * L + l) * T, src = at * T;
            memcpy(e->top_idx + dst * R, r->top_idx + src * R, sizeof(int32_t) * T * R);
            memcpy(e->top_gate + dst * R, r->top_gate + src * R, sizeof(float) * T * R);
            memcpy(e->probs + dst * E, r->probs + src * E, sizeof(float) * T * E);
            if (e->kept)
                memcpy(e->kept + dst * R, r->kept + src * R, (size_t)T * R);
            if (e->executed)
                memcpy(e->executed + dst * c->top_k, r->executed + src * c->top_k, sizeof(int32_t) * T * c->top_k);
        }
    }
    return 0;
}

/* The forced rows of view V (route:from=F) for its N images into FORCED (L entries, experts
 * NULL for a layer it leaves to the router), in forward order: each patch whose centre falls
 * in view F runs the experts F ran at the patch it falls in (F's executed ids; with a
 * capacity, those F dropped stay dropped); unmatched patches and the class token keep their
 * own. */
static void build_forced(engine *e, int v, int n, rs_forced *forced)
{
    const rs_config *c = &e->model->cfg;
    int V = e->num_views, L = c->num_moe, T = rs_config_tokens(c), k = c->top_k, Np = rs_config_patches(c);
    int F = e->parsed[v].route_from, cls = T - Np, R = rs_config_record_k(c);
    for (int i = 0; i < n; i++)
        rs_view_match(&e->drawn[(size_t)i * V + F], &e->drawn[(size_t)i * V + v], c->image_h, c->image_w,
                      c->patch_size, e->from_match + (size_t)i * Np);
    for (int l = 0; l < L; l++) {
        forced[l] = (rs_forced){0};
        if (!e->forced[(size_t)v * L + l])
            continue;
        size_t at = (size_t)l * e->batch * T * k;
        forced[l] = (rs_forced){e->forced_ids + at, e->forced_run ? e->forced_run + at : NULL};
        for (int i = 0; i < n; i++) {
            size_t src = (((size_t)i * V + F) * L + l) * T;
            for (int t = 0; t < T; t++) {
                size_t row = (image_slot(e, i) * T + (size_t)t) * k;
                int m = t < cls ? -1 : e->from_match[(size_t)i * Np + t - cls];
                if (m < 0) {
                    e->forced_ids[at + row] = -1;
                    continue;
                }
                memcpy(e->forced_ids + at + row, e->executed + (src + (size_t)(m + cls)) * k, sizeof(int32_t) * k);
                if (e->forced_run)
                    memcpy(e->forced_run + at + row, e->kept + (src + (size_t)(m + cls)) * R, (size_t)k);
            }
        }
    }
}

/* Decodes, views and runs one batch of N images starting at source index FIRST. Views run
 * in order, so a view's base (an earlier view) has its final pixels kept by then, and a
 * forced view's route source its executed experts. */
static int compute_batch(engine *e, int first, int n, rs_error *err)
{
    const rs_config *c = &e->model->cfg;
    int V = e->num_views, C = c->channels, H = c->image_h, W = c->image_w;
    size_t img = (size_t)C * H * W;
    const rs_run_info *run = &e->run;
    int job_first = run->shard_count > 0 ? run->job_offset : run->offset;
    int rc = e->order ? rs_group_order(e->opt->group_seed, e->window, first - job_first, n,
                                       run->shard_count > 0 ? run->job_count : run->count, e->order, e->slot, err)
                      : 0;
    double t0 = now();
    if (!rc)
        rc = rs_source_load_batch(e->source, first, n, C, H, W, e->opt->threads, e->source_px, err);
    e->decode_s += now() - t0;
    if (rc)
        return rc;
    for (int i = 0; i < n; i++) {
        e->labels[i] = rs_source_label(e->source, first + i);
        for (int v = 0; v < V; v++)
            rs_view_draw(&e->parsed[v], W, H, e->opt->seed, first + i, v, &e->drawn[(size_t)i * V + v]);
    }
    for (int v = 0; v < V && !rc; v++) {
        rc = render_view(e, v, n, err);
        if (!rc && e->parsed[v].attack)
            rc = attack_view(e, v, first, n, err);
        if (!rc && e->keep_slot[v] >= 0)
            for (int i = 0; i < n; i++)
                memcpy(e->kept_px + ((size_t)i * e->num_kept + e->keep_slot[v]) * img, e->raw_px + i * img,
                       sizeof(float) * img);
        rs_forced forced[RS_MAX_DEPTH];
        bool route = e->parsed[v].route_from >= 0;
        if (!rc && route)
            build_forced(e, v, n, forced);
        if (!rc)
            rc = forward_raw(e, n, route ? forced : NULL, err);
        if (!rc)
            rc = record_view(e, v, n, err);
    }
    return rc;
}

static long long db_bytes(const char *path)
{
    struct stat sb;
    long long total = stat(path, &sb) == 0 ? (long long)sb.st_size : 0;
    char wal[4096];
    snprintf(wal, sizeof wal, "%s-wal", path);
    if (stat(wal, &sb) == 0)
        total += (long long)sb.st_size;
    return total;
}

static int run_batches(engine *e, rs_replay_summary *sum, rs_error *err)
{
    const rs_config *c = &e->model->cfg;
    rs_run_info *run = &e->run;
    double t0 = now();
    int rc = 0;
    while (run->images_done < run->count) {
        int first = run->offset + run->images_done;
        int n = run->count - run->images_done < e->batch ? run->count - run->images_done : e->batch;
        if ((rc = compute_batch(e, first, n, err)))
            break;
        rs_batch b = {.first = first, .count = n, .num_views = e->num_views, .num_layers = c->num_moe,
                      .tokens = rs_config_tokens(c), .record_k = rs_config_record_k(c),
                      .num_experts = c->num_experts, .patches = rs_config_patches(c), .labels = e->labels,
                      .predicted = e->predicted, .pred_prob = e->pred_prob,
                      .view_params = (const char *const *)e->params, .match = e->match, .top_idx = e->top_idx,
                      .top_gate = e->top_gate, .probs = e->probs, .kept = e->kept, .top_k = c->top_k,
                      .forced = e->forced, .executed = e->executed, .attack_steps = e->attack_steps,
                      .attack_stride = e->attack_stride, .attack_linf = e->attack_linf, .attack_l2 = e->attack_l2,
                      .attack_objective = e->attack_obj};
        double t_store = now();
        rc = rs_store_write_batch(e->store, run->id, &b, err);
        sum->store_seconds += now() - t_store;
        if (rc)
            break;
        run->images_done += n;
        sum->images_this_call += n;
        sum->records += (long long)n * e->num_views * c->num_moe * rs_config_tokens(c);
        for (size_t j = 0; j < (size_t)n * e->num_views * rs_config_patches(c); j++)
            sum->unmatched += e->match[j] < 0;
        if (e->opt->progress)
            e->opt->progress(e->opt->progress_ctx, run->images_done, run->count, sum->images_this_call, now() - t0);
        if (e->opt->stop && *e->opt->stop && run->images_done < run->count) {
            sum->interrupted = true;
            break;
        }
    }
    sum->seconds = now() - t0;
    sum->decode_seconds = e->decode_s;
    sum->forward_seconds = e->forward_s;
    sum->attack_seconds = e->attack_s;
    return rc;
}

/* --resume: the run's own model, data, slice, protocol, views and seed; the caller's
 * threads and batch. Fills *RESUMED (strings borrowed from e->run). */
static int load_resumed_run(engine *e, const rs_replay_options *opt, rs_replay_options *resumed, rs_error *err)
{
    int rc = rs_store_get_run(e->store, opt->resume_run, &e->run, err);
    if (rc)
        return rc;
    *resumed = *opt;
    resumed->model_path = opt->model_path ? opt->model_path : e->run.model_path;
    resumed->data = e->run.data;
    resumed->offset = e->run.offset;
    resumed->limit = e->run.count;
    resumed->protocol = e->run.protocol;
    resumed->seed = e->run.seed;
    resumed->dispatch = (rs_dispatch){.capacity_factor = e->run.capacity_factor,
                                      .group_images = e->run.group_images, .bpr = e->run.bpr,
                                      .bf16 = e->run.bf16_dispatch, .pad_last = e->run.pad_last_group};
    resumed->dispatch_model = false;
    resumed->group_tokens = 0;
    resumed->has_group_seed = e->run.has_group_seed;
    resumed->group_seed = e->run.group_seed;
    if ((rc = parse_compute(e->run.compute, resumed, err)))
        return rs_error_prefix(err, opt->db_path);
    resumed->record = e->run.record;
    if (!(e->specs = calloc((size_t)e->run.num_views, sizeof *e->specs)))
        return rs_error_set(err, RS_ENOMEM, "out of memory");
    e->num_views = e->run.num_views;
    for (int v = 0; v < e->num_views; v++)
        if (!(e->specs[v] = strdup(e->run.view_specs[v])))
            return rs_error_set(err, RS_ENOMEM, "out of memory");
    return 0;
}

/* Which MoE layers each forced view (route:) forces, its layers= checked against the model. */
static int plan_routes(engine *e, rs_error *err)
{
    const rs_config *c = &e->model->cfg;
    int V = e->num_views, L = c->num_moe;
    for (int v = 0; v < V; v++) {
        const rs_view_spec *p = &e->parsed[v];
        rs_error why;
        if (p->route_from < 0)
            continue;
        if (L == 0)
            return rs_error_set(err, RS_EINVAL, "view '%s': the model has no MoE block to force", p->text);
        if (rs_config_check_moe_blocks(c, p->route_blocks, &why))
            return rs_error_set(err, RS_EINVAL, "view '%s': %s", p->text, why.msg);
        if (!e->forced && !(e->forced = calloc((size_t)V * L, 1)))
            return rs_error_set(err, RS_ENOMEM, "out of memory");
        for (int l = 0; l < L; l++)
            e->forced[(size_t)v * L + l] =
                !p->route_blocks || (c->moe_layers[l] < 32 && (p->route_blocks >> c->moe_layers[l] & 1u));
    }
    return 0;
}

/* What the views need beyond rendering: which are bases of others (their final pixels are
 * kept), which force routing, and the attacks' steps, each objective checked against the
 * model. */
static int plan_views(engine *e, rs_error *err)
{
    int V = e->num_views;
    if (!(e->keep_slot = malloc(sizeof(int) * (size_t)V)))
        return rs_error_set(err, RS_ENOMEM, "out of memory");
    bool any_attack = false;
    for (int v = 0; v < V; v++) {
        e->keep_slot[v] = -1;
        any_attack |= e->parsed[v].attack;
    }
    for (int v = 0; v < V; v++) {
        int rc = rs_view_spec_check_base(&e->parsed[v], v, err);
        if (rc)
            return rc;
        int base = e->parsed[v].base;
        if (base >= 0 && e->keep_slot[base] < 0)
            e->keep_slot[base] = e->num_kept++;
    }
    int rc = plan_routes(e, err);
    if (rc || !any_attack)
        return rc;
    if (!(e->attack_steps = calloc((size_t)V, sizeof(int))))
        return rs_error_set(err, RS_ENOMEM, "out of memory");
    for (int v = 0; v < V; v++) {
        const rs_view_spec *p = &e->parsed[v];
        rs_error why;
        if (!p->attack)
            continue;
        if (rs_objective_check(&p->pgd.objective, &e->model->cfg, &why))
            return rs_error_set(err, RS_EINVAL, "view '%s': %s", p->text, why.msg);
        e->attack_steps[v] = p->pgd.steps;
        if (p->pgd.steps + 1 > e->attack_stride)
            e->attack_stride = p->pgd.steps + 1;
    }
    return 0;
}

/* Model, views and source: everything that can be wrong with the request. */
static int open_inputs(engine *e, const rs_replay_options *opt, rs_error *err)
{
    int rc = rs_model_open(opt->model_path, &e->model, err);
    if (!rc)
        rc = rs_model_set_compute(e->model, opt->gemm, opt->precision, err);
    rs_protocol_args args = {.augment = opt->augment, .custom = opt->views, .attack = opt->attack, .eps = opt->eps,
                             .corruptions = opt->corruptions, .severities = opt->severities};
    if (!rc) {
        args.moe_blocks = e->model->cfg.moe_layers, args.num_moe = e->model->cfg.num_moe;
        args.input_h = e->model->cfg.image_h, args.input_w = e->model->cfg.image_w;
    }
    if (!rc && !e->specs)
        rc = rs_protocol_views(opt->protocol, &args, &e->specs, &e->num_views, err);
    if (!rc && !(e->parsed = calloc((size_t)e->num_views, sizeof *e->parsed)))
        rc = rs_error_set(err, RS_ENOMEM, "out of memory");
    for (int v = 0; !rc && v < e->num_views; v++)
        rc = rs_view_spec_parse(e->specs[v], &e->parsed[v], err);
    if (!rc)
        rc = plan_views(e, err);
    if (!rc)
        rc = rs_source_open(opt->data, &e->source, err);
    if (!rc)
        rc = rs_source_canonical_spec(opt->data, e->data, sizeof e->data, err);
    if (!rc) {
        rs_safetensors_sha256(e->model->file, e->sha256);
        rc = copy_config(e, err);
    }
    if (!rc)
        rc = rs_group_dispatch_resolve(&e->model->cfg, opt->model_path, opt->dispatch_model, &opt->dispatch,
                                       opt->group_tokens, opt->has_group_seed, &e->dispatch, err);
    return rc;
}

int rs_replay(const rs_replay_options *opt, rs_replay_summary *sum, rs_error *err)
{
    memset(sum, 0, sizeof *sum);
    engine e = {.opt = opt, .lock_fd = -1};
    rs_replay_options resumed;
    int rc;
    if (opt->resume_run > 0) {
        rc = rs_store_lock_file(opt->db_path, false, &e.lock_fd, err);
        if (!rc)
            rc = rs_store_open(opt->db_path, false, &e.store, err);
        if (!rc && !(rc = load_resumed_run(&e, opt, &resumed, err)))
            e.opt = opt = &resumed;
        if (!rc)
            rc = open_inputs(&e, opt, err);
        if (!rc && strcmp(e.sha256, e.run.model_sha256))
            rc = rs_error_set(err, RS_EINVAL, "%s: sha256 %.12s... differs from run %lld's model (%.12s...)",
                              opt->model_path, e.sha256, (long long)opt->resume_run, e.run.model_sha256);
        if (!rc) {
            sum->already_done = e.run.status == RS_RUN_DONE;
            sum->resumed = !sum->already_done;
            if (sum->resumed)
                rc = rs_store_set_status(e.store, e.run.id, RS_RUN_RUNNING, NULL, err);
        }
    } else {
        /* Check the request before creating anything on disk. */
        rc = open_inputs(&e, opt, err);
        if (!rc)
            rc = rs_group_batch_unit(e.model, &e.dispatch, opt->has_group_seed, &e.group, &e.window, err);
        if (!rc)
            rc = rs_store_lock_file(opt->db_path, true, &e.lock_fd, err);
        if (!rc)
            rc = rs_store_open(opt->db_path, false, &e.store, err);
        if (!rc)
            rc = open_run(&e, sum, err);
    }
    if (!rc && !sum->already_done) {
        /* Batches are whole groups of the forward pass: see "Determinism" in replay.h. */
        if (!e.group)
            rc = rs_group_batch_unit(e.model, &e.dispatch, opt->has_group_seed, &e.group, &e.window, err);
        if (!rc) {
            int want = opt->batch > 0 ? opt->batch : 256;
            if (want > e.run.count)
                want = e.run.count;
            e.batch = (want + e.group - 1) / e.group * e.group;
            rc = rs_forward_create_dispatch(e.model, e.batch, opt->threads, &e.dispatch, &e.forward, err);
        }
        if (!rc && e.attack_steps)
            rc = rs_grad_create_dispatch(e.model, e.batch, opt->threads, &e.dispatch, &e.grad, err);
        if (!rc)
            rc = alloc_buffers(&e, err);
        if (!rc)
            rc = run_batches(&e, sum, err);
        /* The run's fate: done, interrupted (resumable) or failed with its message — also
         * when marking it done fails (its final check), so that no run stays "running". */
        rs_error status_err;
        if (!rc)
            rc = rs_store_set_status(e.store, e.run.id, sum->interrupted ? RS_RUN_INTERRUPTED : RS_RUN_DONE, NULL,
                                     err);
        if (rc && e.store)
            rs_store_set_status(e.store, e.run.id, RS_RUN_FAILED, err->msg, &status_err);
    }
    if (e.run.id) {
        sum->run_id = e.run.id;
        sum->images_total = e.run.count;
        sum->first_image = e.run.offset;
        sum->shard_index = e.run.shard_index;
        sum->shard_count = e.run.shard_count;
        sum->images_done = e.run.images_done;
        sum->views = e.num_views;
        sum->layers = e.model ? e.model->cfg.num_moe : 0;
        sum->tokens = e.model ? rs_config_tokens(&e.model->cfg) : 0;
        sum->batch = e.batch;
    }
    sum->db_bytes = db_bytes(opt->db_path);
    engine_close(&e);
    return rc;
}

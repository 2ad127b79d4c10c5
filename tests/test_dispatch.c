/* Dispatch with expert capacity (model/dispatch.h, forward.h).
 *
 * Hand cases: the capacity arithmetic (vmoe's ceil, then a multiple of 4), the priority
 * order (all top-1 choices first; token order or, with BPR, decreasing top-1 gate; equal
 * gates keep token order), a token dropped from every expert.
 * Goldens (tests/golden/dispatch, pytorch/dispatch_golden.py, float64): logits within 1e-4,
 * router probabilities within 1e-5 and kept masks identical, with and without BPR, k = 1
 * and 2, the last group short of a full one; outputs bit-identical for any batch split into
 * whole groups of the forward pass (several dispatch groups each, model/group.h) and any
 * thread count, and every dispatch group of such a group dispatched exactly as alone (its
 * kept mask what rs_dispatch_assign gives its own recorded choices). A factor that drops nothing reproduces the plain
 * forward pass's reference, and capacity factor 0 is the plain forward pass bit for bit.
 * vmoe's numerics, against the same generator: bfloat16 dispatch (k2_bf16), a short last group
 * padded with zero images that take capacity (k1_pad, k2_bpr_bf16_pad: the reference pads
 * with explicit zero images; the same images unpadded keep other choices, which an unpadded
 * C run reproduces too), and both.
 * The config's optional "dispatch" key is read and checked (bf16 included), and --dispatch model
 * applies it with a padded last group.
 * Group order (analyze/replay/group_order.h): each window is a permutation of its own images, the
 * same for a seed whatever the batch split, pinned for seed 1 so that stored runs replay
 * alike across builds; batches that cut a window are refused; --group-size in tokens. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dispatch.h"
#include "forward.h"
#include "replay/group_order.h"
#include "model.h"
#include "testutil.h"

#define LOGIT_TOL 1e-4f
#define PROB_TOL 1e-5f

static const char *golden_dir;

static void capacity_arithmetic(void **state)
{
    (void)state;
    /* ceil(S*k*cf/E), then up to a multiple of 4. */
    assert_int_equal(rs_dispatch_capacity(10, 1, 4, 1.0), 4);      /* 2.5 -> 3 -> 4 */
    assert_int_equal(rs_dispatch_capacity(16, 2, 8, 1.0), 4);      /* exactly 4 */
    assert_int_equal(rs_dispatch_capacity(17, 2, 4, 0.5), 8);      /* 4.25 -> 5 -> 8 */
    assert_int_equal(rs_dispatch_capacity(400, 2, 8, 4.0), 400);   /* vmoe S/32 eval: 8 images x 50 */
    assert_int_equal(rs_dispatch_capacity(400, 2, 8, 1.05), 108);  /* training: 105 -> 108 */
    assert_int_equal(rs_dispatch_capacity(1, 1, 256, 0.01), 4);    /* tiny: 1 -> 4 */
    assert_int_equal(rs_dispatch_capacity(100, 1, 16, 1.0), 8);    /* 6.25 -> 7 -> 8 */
    /* No capacity: factor outside (0, max], no tokens. */
    assert_int_equal(rs_dispatch_capacity(10, 1, 4, 0.0), 0);
    assert_int_equal(rs_dispatch_capacity(10, 1, 4, -1.0), 0);
    assert_int_equal(rs_dispatch_capacity(10, 1, 4, NAN), 0);
    assert_int_equal(rs_dispatch_capacity(10, 1, 4, RS_DISPATCH_MAX_FACTOR * 2), 0);
    assert_int_equal(rs_dispatch_capacity(0, 1, 4, 1.0), 0);
}

/* Runs rs_dispatch_assign on S tokens with R = 2 recorded ranks. */
static void assign(const int32_t *idx, const float *gate, int S, int k, int E, int capacity, bool bpr,
                   uint8_t *kept)
{
    int32_t order[64], fill[16];
    rs_dispatch_assign(idx, gate, S, 2, k, E, capacity, bpr, order, fill, kept);
}

static void priority_order(void **state)
{
    (void)state;
    /* Three tokens whose top-1 is expert 0, capacity 1. Gates 0.5, 0.9, 0.7. */
    int32_t idx[] = {0, 1, 0, 1, 0, 1};
    float gate[] = {0.5f, 0.3f, 0.9f, 0.05f, 0.7f, 0.2f};
    uint8_t kept[6];
    assign(idx, gate, 3, 1, 2, 1, false, kept);
    assert_memory_equal(kept, ((uint8_t[]){1, 0, 0, 0, 0, 0}), 6); /* vanilla: the first token */
    assign(idx, gate, 3, 1, 2, 1, true, kept);
    assert_memory_equal(kept, ((uint8_t[]){0, 0, 1, 0, 0, 0}), 6); /* BPR: the largest gate */
    /* k = 2: top-2 choices (all expert 1) only after every top-1 choice; capacity 1 keeps
     * one of them, the first in priority order. */
    assign(idx, gate, 3, 2, 2, 1, false, kept);
    assert_memory_equal(kept, ((uint8_t[]){1, 1, 0, 0, 0, 0}), 6);
    assign(idx, gate, 3, 2, 2, 1, true, kept);
    assert_memory_equal(kept, ((uint8_t[]){0, 0, 1, 1, 0, 0}), 6);
}

static void ties_keep_token_order(void **state)
{
    (void)state;
    /* Equal top-1 gates: BPR keeps token order among them (stable), after larger gates. */
    int32_t idx[] = {0, 1, 0, 1, 0, 1, 0, 1};
    float gate[] = {0.6f, 0.1f, 0.8f, 0.1f, 0.8f, 0.1f, 0.8f, 0.1f};
    uint8_t kept[8];
    assign(idx, gate, 4, 1, 2, 2, true, kept);
    assert_memory_equal(kept, ((uint8_t[]){0, 0, 1, 0, 1, 0, 0, 0}), 8);
    assign(idx, gate, 4, 1, 2, 3, true, kept);
    assert_memory_equal(kept, ((uint8_t[]){0, 0, 1, 0, 1, 0, 1, 0}), 8);
}

static void top1_before_top2(void **state)
{
    (void)state;
    /* Token 0: e1 then e0. Token 1: e0 then e1. Token 2: e0 then e1. Capacity 1, k = 2.
     * Rank 1: t0 -> e1 kept, t1 -> e0 kept, t2 -> e0 dropped. Rank 2: every expert is full:
     * t0's e0 and t1's e1 are dropped although t0 comes first; token 2 is dropped from both
     * its experts and passes the layer on its residual alone. */
    int32_t idx[] = {1, 0, 0, 1, 0, 1};
    float gate[] = {0.6f, 0.4f, 0.7f, 0.3f, 0.9f, 0.1f};
    uint8_t kept[6];
    assign(idx, gate, 3, 2, 2, 1, false, kept);
    assert_memory_equal(kept, ((uint8_t[]){1, 0, 1, 0, 0, 0}), 6);
    /* BPR: token 2 (0.9) goes before token 1 (0.7) and takes expert 0. */
    assign(idx, gate, 3, 2, 2, 1, true, kept);
    assert_memory_equal(kept, ((uint8_t[]){1, 0, 0, 0, 1, 0}), 6);
    /* A NaN gate sorts last and breaks nothing. */
    gate[4] = NAN;
    assign(idx, gate, 3, 2, 2, 1, true, kept);
    assert_memory_equal(kept, ((uint8_t[]){1, 0, 1, 0, 0, 0}), 6);
}

typedef struct outputs {
    float *logits, *probs[8], *top_gate[8];
    int32_t *top_idx[8];
    uint8_t *kept[8];
} outputs;

/* Runs images in chunks of CHUNK (a multiple of the group) and copies the outputs. */
static outputs run(const rs_model *m, const rs_dispatch *d, const float *input, int B, int chunk, int threads)
{
    const rs_config *c = &m->cfg;
    size_t T = (size_t)rs_config_tokens(c), E = (size_t)c->num_experts, R = (size_t)rs_config_record_k(c);
    size_t K = (size_t)c->num_classes, img = (size_t)c->channels * c->image_h * c->image_w;
    assert_true(c->num_moe <= 8);
    outputs o = {.logits = malloc(sizeof(float) * B * K)};
    for (int s = 0; s < c->num_moe; s++) {
        o.probs[s] = malloc(sizeof(float) * B * T * E);
        o.top_idx[s] = malloc(sizeof(int32_t) * B * T * R);
        o.top_gate[s] = malloc(sizeof(float) * B * T * R);
        o.kept[s] = malloc(B * T * R);
    }
    rs_forward *f;
    rs_error err;
    if (rs_forward_create_dispatch(m, chunk, threads, d, &f, &err))
        fail_msg("%s", err.msg);
    if (d && d->capacity_factor > 0) { /* whole dispatch groups, a power of two of them (group.h) */
        int G = rs_forward_group_size(f), groups = G / d->group_images;
        assert_int_equal(G % d->group_images, 0);
        assert_true(groups >= 1 && (groups & (groups - 1)) == 0);
        assert_true(groups == 1 || (long)G * rs_config_tokens(c) <= 1024);
    }
    for (int b0 = 0; b0 < B; b0 += chunk) {
        int n = B - b0 < chunk ? B - b0 : chunk;
        assert_int_equal(rs_forward_run(f, input + b0 * img, n, &err), 0);
        const rs_forward_out *out = rs_forward_result(f);
        memcpy(o.logits + b0 * K, out->logits, sizeof(float) * n * K);
        for (int s = 0; s < c->num_moe; s++) {
            memcpy(o.probs[s] + b0 * T * E, out->moe[s].probs, sizeof(float) * n * T * E);
            memcpy(o.top_idx[s] + b0 * T * R, out->moe[s].top_idx, sizeof(int32_t) * n * T * R);
            memcpy(o.top_gate[s] + b0 * T * R, out->moe[s].top_gate, sizeof(float) * n * T * R);
            if (out->moe[s].kept)
                memcpy(o.kept[s] + b0 * T * R, out->moe[s].kept, n * T * R);
            else
                memset(o.kept[s] + b0 * T * R, 0xff, n * T * R);
        }
    }
    rs_forward_free(f);
    return o;
}

static void free_outputs(outputs *o, int num_moe)
{
    free(o->logits);
    for (int s = 0; s < num_moe; s++) {
        free(o->probs[s]);
        free(o->top_idx[s]);
        free(o->top_gate[s]);
        free(o->kept[s]);
    }
}

static rs_model *open_model(const char *path)
{
    rs_model *m;
    rs_error err;
    if (rs_model_open(path, &m, &err))
        fail_msg("%s", err.msg);
    return m;
}

/* O's kept masks against REF's tensors PREFIX.{block} (first B images); returns the top-k
 * choices dropped. */
static long check_kept(const rs_model *m, const rs_safetensors *ref, const char *prefix, const outputs *o, int B)
{
    const rs_config *c = &m->cfg;
    size_t T = (size_t)rs_config_tokens(c), R = (size_t)rs_config_record_k(c);
    long dropped = 0;
    for (int s = 0; s < c->num_moe; s++) {
        char tname[64];
        snprintf(tname, sizeof tname, "%s.%d", prefix, c->moe_layers[s]);
        float *kept = tu_tensor_f32(ref, tname, NULL);
        assert_non_null(kept);
        for (size_t i = 0; i < B * T * R; i++) {
            if (o->kept[s][i] != (uint8_t)kept[i])
                fail_msg("%s: block %d image %zu token %zu rank %zu: kept %d, reference %d", prefix,
                         c->moe_layers[s], i / (T * R), i / R % T, i % R, o->kept[s][i], (int)kept[i]);
            dropped += (i % R) < (size_t)c->top_k && !o->kept[s][i];
        }
        free(kept);
    }
    return dropped;
}

/* Whether REF's metadata KEY reads "true" (absent: false). */
static bool meta_true(const rs_safetensors *ref, const char *key)
{
    const char *v = rs_safetensors_metadata(ref, key);
    return v && !strcmp(v, "true");
}

/* Logits and router probabilities of O against reference REF (first B images). */
static void check_against(const rs_model *m, const rs_safetensors *ref, const outputs *o, int B)
{
    const rs_config *c = &m->cfg;
    size_t T = (size_t)rs_config_tokens(c), E = (size_t)c->num_experts, K = (size_t)c->num_classes;
    float *logits = tu_tensor_f32(ref, "logits", NULL);
    float worst_logit = 0, worst_prob = 0;
    for (size_t i = 0; i < B * K; i++)
        worst_logit = fmaxf(worst_logit, fabsf(o->logits[i] - logits[i]));
    for (int s = 0; s < c->num_moe; s++) {
        char name[64];
        snprintf(name, sizeof name, "router.%d", c->moe_layers[s]);
        float *p = tu_tensor_f32(ref, name, NULL);
        assert_non_null(p);
        for (size_t i = 0; i < B * T * E; i++)
            worst_prob = fmaxf(worst_prob, fabsf(o->probs[s][i] - p[i]));
        free(p);
    }
    print_message("  max |logit err| %.2e  max |prob err| %.2e\n", worst_logit, worst_prob);
    assert_true(worst_logit <= LOGIT_TOL);
    assert_true(worst_prob <= PROB_TOL);
    free(logits);
}

/* Whether A and B, runs of the same B images, hold the same bits. */
static void same_outputs(const rs_config *c, const outputs *a, const outputs *b, int B)
{
    size_t T = (size_t)rs_config_tokens(c), E = (size_t)c->num_experts, R = (size_t)rs_config_record_k(c);
    assert_memory_equal(a->logits, b->logits, sizeof(float) * B * c->num_classes);
    for (int s = 0; s < c->num_moe; s++) {
        assert_memory_equal(a->probs[s], b->probs[s], sizeof(float) * B * T * E);
        assert_memory_equal(a->kept[s], b->kept[s], B * T * R);
    }
}

/* Each dispatch group of O (B images; a padded short last one is not checked) was
 * dispatched exactly as alone: its kept mask is rs_dispatch_assign over its own
 * recorded choices with the capacity of its own tokens. Returns the choices dropped. */
static long alone_dispatch(const rs_config *c, const rs_dispatch *d, const outputs *o, int B)
{
    int T = rs_config_tokens(c), E = c->num_experts, R = rs_config_record_k(c), k = c->top_k;
    int S = d->group_images * T;
    int32_t *order = malloc(sizeof(int32_t) * 2 * S), fill[64];
    uint8_t *kept = malloc((size_t)S * R);
    long dropped = 0;
    assert_true(E <= 64);
    for (int s = 0; s < c->num_moe; s++)
        for (int g0 = 0; g0 < B; g0 += d->group_images) {
            int n = B - g0 < d->group_images ? B - g0 : d->group_images, rows = n * T;
            if (n < d->group_images && d->pad_last)
                continue; /* dispatched with its padding, which the outputs do not keep */
            size_t at = (size_t)g0 * T * R;
            rs_dispatch_assign(o->top_idx[s] + at, o->top_gate[s] + at, rows, R, k, E,
                               rs_dispatch_capacity(rows, k, E, d->capacity_factor), d->bpr, order, fill, kept);
            if (memcmp(kept, o->kept[s] + at, (size_t)rows * R))
                fail_msg("slot %d: the dispatch group at image %d was not dispatched as alone", s, g0);
            for (int i = 0; i < rows * R; i++)
                dropped += i % R < k && !kept[i];
        }
    free(order);
    free(kept);
    return dropped;
}

/* Records independent of the batch split and the thread count, and each dispatch group
 * dispatched as alone, on the golden's images tiled (each tile scaled its own way) to two
 * groups of the forward pass (group.h: several dispatch groups each) and a short last group
 * of a full and a short dispatch group. */
static void batch_splits(const rs_model *m, const rs_dispatch *d, const float *input, int B0)
{
    const rs_config *c = &m->cfg;
    size_t img = (size_t)c->channels * c->image_h * c->image_w;
    rs_forward *f;
    rs_error err;
    assert_int_equal(rs_forward_create_dispatch(m, 1, 1, d, &f, &err), 0);
    int G = rs_forward_group_size(f), dg = d->group_images, B = 2 * G + (dg > 1 ? 2 * dg - 1 : 1);
    assert_true(G > dg); /* the goldens' groups hold several dispatch groups */
    rs_forward_free(f);
    float *tiled = malloc(sizeof(float) * B * img);
    for (int i = 0; i < B; i++)
        for (size_t q = 0; q < img; q++)
            tiled[i * img + q] = input[(size_t)(i % B0) * img + q] * (1 + 0.03f * (float)(i / B0));
    outputs whole = run(m, d, tiled, B, B, 2), groups = run(m, d, tiled, B, G, 1), pairs = run(m, d, tiled, B, 2 * G, 2);
    same_outputs(c, &whole, &groups, B);
    same_outputs(c, &whole, &pairs, B);
    assert_true(alone_dispatch(c, d, &whole, B) > 0);
    free_outputs(&whole, c->num_moe);
    free_outputs(&groups, c->num_moe);
    free_outputs(&pairs, c->num_moe);
    free(tiled);
}

static void golden_case(void **state)
{
    const char *name = *state;
    char path[1024];
    rs_error err;
    rs_safetensors *ref;
    snprintf(path, sizeof path, "%s/dispatch/%s.ref.safetensors", golden_dir, name);
    if (rs_safetensors_open(path, &ref, &err))
        fail_msg("%s", err.msg);
    snprintf(path, sizeof path, "%s/dispatch/%s", golden_dir, rs_safetensors_metadata(ref, "model"));
    rs_model *m = open_model(path);
    const rs_config *c = &m->cfg;
    rs_dispatch d = {.capacity_factor = atof(rs_safetensors_metadata(ref, "capacity_factor")),
                     .group_images = atoi(rs_safetensors_metadata(ref, "group_images")),
                     .bpr = meta_true(ref, "bpr"), .bf16 = meta_true(ref, "bf16"),
                     .pad_last = meta_true(ref, "pad_last")};
    size_t n_in;
    float *input = tu_tensor_f32(ref, "input", &n_in);
    size_t img = (size_t)c->channels * c->image_h * c->image_w, T = (size_t)rs_config_tokens(c);
    size_t R = (size_t)rs_config_record_k(c);
    int B = (int)(n_in / img);
    (void)R;
    assert_true(B % d.group_images != 0); /* the last group is short */

    outputs whole = run(m, &d, input, B, B, 2);
    check_against(m, ref, &whole, B);
    assert_true(check_kept(m, ref, "kept", &whole, B) > 0);
    if (d.pad_last) { /* unpadded, the last group's images keep other choices, as the reference says */
        rs_dispatch plain = d;
        plain.pad_last = false;
        outputs unpadded = run(m, &plain, input, B, B, 1);
        check_kept(m, ref, "kept_unpadded", &unpadded, B);
        bool differ = false;
        for (int s = 0; s < c->num_moe; s++)
            differ |= memcmp(unpadded.kept[s], whole.kept[s], B * T * R) != 0;
        assert_true(differ);
        free_outputs(&unpadded, c->num_moe);
    }
    batch_splits(m, &d, input, B);
    free_outputs(&whole, c->num_moe);
    free(input);
    rs_safetensors_close(ref);
    rs_model_close(m);
}

/* A factor that drops nothing gives the plain reference; factor 0 is the plain pass. */
static void no_drop_is_plain(void **state)
{
    (void)state;
    char path[1024];
    rs_error err;
    rs_safetensors *ref;
    snprintf(path, sizeof path, "%s/token_k2_e4.ref.safetensors", golden_dir);
    if (rs_safetensors_open(path, &ref, &err))
        fail_msg("%s", err.msg);
    snprintf(path, sizeof path, "%s/token_k2_e4.safetensors", golden_dir);
    rs_model *m = open_model(path);
    const rs_config *c = &m->cfg;
    size_t n_in, img = (size_t)c->channels * c->image_h * c->image_w;
    float *input = tu_tensor_f32(ref, "input", &n_in);
    int B = (int)(n_in / img);
    size_t T = (size_t)rs_config_tokens(c), R = (size_t)rs_config_record_k(c);
    rs_dispatch wide = {.capacity_factor = 100, .group_images = 3, .bpr = true};
    outputs o = run(m, &wide, input, B, B, 1);
    check_against(m, ref, &o, B);
    for (int s = 0; s < c->num_moe; s++)
        for (size_t i = 0; i < B * T * R; i++)
            assert_int_equal(o.kept[s][i], (i % R) < (size_t)c->top_k);
    rs_dispatch none = {0};
    outputs zero = run(m, &none, input, B, B, 1), plain = run(m, NULL, input, B, B, 1);
    assert_memory_equal(zero.logits, plain.logits, sizeof(float) * B * c->num_classes);
    free_outputs(&o, c->num_moe);
    free_outputs(&zero, c->num_moe);
    free_outputs(&plain, c->num_moe);
    free(input);
    rs_safetensors_close(ref);
    rs_model_close(m);
}

static void bad_dispatch(void **state)
{
    (void)state;
    char path[1024];
    snprintf(path, sizeof path, "%s/token_k2_e4.safetensors", golden_dir);
    rs_model *m = open_model(path);
    rs_forward *f;
    rs_error err;
    rs_dispatch d = {.capacity_factor = -1, .group_images = 2};
    assert_int_equal(rs_forward_create_dispatch(m, 4, 1, &d, &f, &err), RS_EINVAL);
    assert_non_null(strstr(err.msg, "capacity factor"));
    d = (rs_dispatch){.capacity_factor = 1, .group_images = 0};
    assert_int_equal(rs_forward_create_dispatch(m, 4, 1, &d, &f, &err), RS_EINVAL);
    assert_non_null(strstr(err.msg, "group"));
    rs_model_close(m);
}

/* The config's optional "dispatch" key: read when valid, one clear error otherwise. */
static int parse_with(const char *base, const char *dispatch, rs_config *cfg, rs_error *err)
{
    char text[4096];
    size_t n = strlen(base);
    assert_true(n > 1 && base[n - 1] == '}' && n + strlen(dispatch) + 32 < sizeof text);
    snprintf(text, sizeof text, "%.*s, \"dispatch\": %s}", (int)(n - 1), base, dispatch);
    int rc = rs_config_parse(text, cfg, err);
    rs_config_free(cfg);
    return rc;
}

static void config_dispatch(void **state)
{
    (void)state;
    char path[1024];
    snprintf(path, sizeof path, "%s/token_k2_e4.safetensors", golden_dir);
    rs_model *m = open_model(path);
    assert_true(m->cfg.dispatch.capacity_factor == 0); /* absent: none */
    const char *base = rs_safetensors_metadata(m->file, "config");
    rs_config cfg;
    rs_error err;
    assert_int_equal(parse_with(base, "{\"capacity_factor\": 4.0, \"group_images\": 8, \"bpr\": true}", &cfg, &err), 0);
    assert_true(cfg.dispatch.capacity_factor == 4.0 && cfg.dispatch.group_images == 8 && cfg.dispatch.bpr);
    assert_int_equal(parse_with(base, "{\"capacity_factor\": 1.05, \"group_images\": 8}", &cfg, &err), 0);
    assert_false(cfg.dispatch.bpr);
    assert_int_equal(parse_with(base, "{\"capacity_factor\": 0, \"group_images\": 8}", &cfg, &err), RS_EFORMAT);
    assert_non_null(strstr(err.msg, "capacity_factor"));
    assert_int_equal(parse_with(base, "{\"capacity_factor\": 2, \"group_images\": 0}", &cfg, &err), RS_EFORMAT);
    assert_non_null(strstr(err.msg, "group_images"));
    assert_int_equal(parse_with(base, "{\"capacity_factor\": 2, \"group_images\": 2, \"bpr\": 1}", &cfg, &err),
                     RS_EFORMAT);
    assert_non_null(strstr(err.msg, "bpr"));
    assert_int_equal(parse_with(base, "4.0", &cfg, &err), RS_EFORMAT);
    assert_non_null(strstr(err.msg, "dispatch"));
    assert_false(cfg.dispatch.bf16); /* absent: float32 dispatch */
    assert_int_equal(parse_with(base, "{\"capacity_factor\": 1.5, \"group_images\": 4, \"bf16\": true}", &cfg, &err), 0);
    assert_true(cfg.dispatch.bf16);
    /* --dispatch model: the config's settings, bfloat16 included, with vmoe's padded last group */
    rs_dispatch out, none = {0};
    assert_int_equal(rs_group_dispatch_resolve(&cfg, "m", true, &none, 0, false, &out, &err), 0);
    assert_true(out.capacity_factor == 1.5 && out.group_images == 4 && out.bf16 && out.pad_last && !out.bpr);
    assert_int_equal(parse_with(base, "{\"capacity_factor\": 2, \"group_images\": 2, \"bf16\": 1}", &cfg, &err),
                     RS_EFORMAT);
    assert_non_null(strstr(err.msg, "bf16"));
    /* bfloat16 and padding belong to a capacity factor */
    rs_dispatch bf16_only = {.bf16 = true};
    assert_int_equal(rs_forward_create_dispatch(m, 2, 1, &bf16_only, &(rs_forward *){NULL}, &err), RS_EINVAL);
    assert_non_null(strstr(err.msg, "need a capacity factor"));
    rs_model_close(m);
}

/* Windows of 6 over a job of 20 images: [0,6) [6,12) [12,18) [18,20). */
static void group_order_windows(void **state)
{
    (void)state;
    enum { N = 20, W = 6 };
    int32_t order[N], slot[N], again[N], part_order[N], part_slot[N];
    rs_error err;
    assert_int_equal(rs_group_order(1, W, 0, N, N, order, slot, &err), 0);
    /* Pinned: GSL mt19937 seeded through rs_seed_mix(rs_seed_mix(1) ^ window). */
    static const int32_t seed1[N] = {2, 5, 4, 3, 0, 1, 9, 7, 8, 6, 10, 11, 14, 16, 17, 15, 12, 13, 19, 18};
    assert_memory_equal(order, seed1, sizeof order);
    bool seen[N] = {0};
    for (int i = 0; i < N; i++) {
        assert_true(order[i] / W == i / W); /* an image stays in its window */
        assert_false(seen[order[i]]);
        seen[order[i]] = true;
        assert_int_equal(slot[order[i]], i);
    }
    assert_int_equal(rs_group_order(1, W, 0, N, N, again, slot, &err), 0);
    assert_memory_equal(order, again, sizeof order);
    /* Batch independence: two windows, then the rest, give the whole job's order. */
    assert_int_equal(rs_group_order(1, W, 0, 12, N, part_order, part_slot, &err), 0);
    assert_int_equal(rs_group_order(1, W, 12, 8, N, part_order + 12, part_slot + 12, &err), 0);
    for (int i = 12; i < N; i++)
        part_order[i] += 12;
    assert_memory_equal(order, part_order, sizeof order);
    assert_int_equal(rs_group_order(2, W, 0, N, N, again, slot, &err), 0);
    assert_memory_not_equal(order, again, sizeof order);
    /* A batch must start and end on window boundaries (or at the job's end). */
    assert_int_equal(rs_group_order(1, W, 3, 6, N, order, slot, &err), RS_EINVAL);
    assert_non_null(strstr(err.msg, "whole windows of 6"));
    assert_int_equal(rs_group_order(1, W, 0, 10, N, order, slot, &err), RS_EINVAL);
    assert_int_equal(rs_group_order(1, W, 18, 3, N, order, slot, &err), RS_EINVAL);
    assert_int_equal(rs_group_order(1, W, 18, 2, N, order, slot, &err), 0);
    assert_int_equal(rs_group_window(8), 64);
}

/* --group-size: whole images only. */
static void group_size_tokens(void **state)
{
    (void)state;
    char path[1024];
    snprintf(path, sizeof path, "%s/token_k2_e4.safetensors", golden_dir);
    rs_model *m = open_model(path);
    int T = rs_config_tokens(&m->cfg), images = 0;
    rs_error err;
    assert_true(T > rs_config_patches(&m->cfg)); /* a class token: its message names it */
    assert_int_equal(rs_group_images_of_tokens(&m->cfg, 3LL * T, &images, &err), 0);
    assert_int_equal(images, 3);
    assert_int_equal(rs_group_images_of_tokens(&m->cfg, T, &images, &err), 0);
    assert_int_equal(images, 1);
    char want[64];
    snprintf(want, sizeof want, "must be a multiple of %d", T);
    assert_int_equal(rs_group_images_of_tokens(&m->cfg, 2LL * T + 1, &images, &err), RS_EINVAL);
    assert_non_null(strstr(err.msg, want));
    assert_non_null(strstr(err.msg, "class token"));
    assert_int_equal(rs_group_images_of_tokens(&m->cfg, T - 1, &images, &err), RS_EINVAL);
    assert_int_equal(rs_group_images_of_tokens(&m->cfg, (RS_DISPATCH_MAX_GROUP_IMAGES + 1LL) * T, &images, &err),
                     RS_EINVAL);
    assert_int_equal(images, 1);
    rs_model_close(m);
}

int main(void)
{
    golden_dir = tu_dir("RS_GOLDEN_DIR", "tests/golden");
    static const char *const cases[] = {"k1_bpr", "k1_vanilla", "k2_bpr", "k2_vanilla", "k2_bf16", "k1_pad",
                                        "k2_bpr_bf16_pad"};
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(capacity_arithmetic),
        cmocka_unit_test(priority_order),
        cmocka_unit_test(ties_keep_token_order),
        cmocka_unit_test(top1_before_top2),
        cmocka_unit_test_prestate(golden_case, (void *)cases[0]),
        cmocka_unit_test_prestate(golden_case, (void *)cases[1]),
        cmocka_unit_test_prestate(golden_case, (void *)cases[2]),
        cmocka_unit_test_prestate(golden_case, (void *)cases[3]),
        cmocka_unit_test_prestate(golden_case, (void *)cases[4]),
        cmocka_unit_test_prestate(golden_case, (void *)cases[5]),
        cmocka_unit_test_prestate(golden_case, (void *)cases[6]),
        cmocka_unit_test(no_drop_is_plain),
        cmocka_unit_test(bad_dispatch),
        cmocka_unit_test(config_dispatch),
        cmocka_unit_test(group_order_windows),
        cmocka_unit_test(group_size_tokens),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

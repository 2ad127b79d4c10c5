/* Golden test: the C forward pass against PyTorch (pytorch/golden.py, float64 reference).
 *
 * For every tests/golden/NAME.ref.safetensors: logits within 1e-4, every router
 * probability within 1e-5, and the top-r expert sets identical wherever the reference's
 * r-th and (r+1)-th probabilities differ by at least 1e-4 (r = 1..R).
 *
 * Determinism: the golden images tiled into 2G+3 images (G = the forward's group size)
 * give bit-identical outputs whether run as one batch on two threads or as batches of G
 * on one thread; and every tile still matches the reference.
 *
 * layer_norm_eps_every_block: a tiny model written by the test, with epsilon 0.01 and
 * activations where it matters, against a double forward pass computed in the test. */
#include <dirent.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "forward.h"
#include "model.h"
#include "testutil.h"

#define LOGIT_TOL 1e-4f
#define PROB_TOL 1e-5f
#define GAP_TOL 1e-4f

static const char *golden_dir;

typedef struct run_result {
    float *logits;   /* (B,K) */
    float **probs;   /* per MoE slot, (B,T,E) */
    int32_t **idx;   /* per MoE slot, (B,T,R) */
} run_result;

/* Runs the forward pass over INPUT in chunks of CHUNK images, copying the outputs. */
static run_result run(const rs_model *m, const float *input, int B, int chunk, int threads)
{
    const rs_config *c = &m->cfg;
    size_t T = (size_t)rs_config_tokens(c), E = (size_t)c->num_experts, R = (size_t)rs_config_record_k(c);
    size_t K = (size_t)c->num_classes, img = (size_t)c->channels * c->image_h * c->image_w;
    run_result r = {malloc(sizeof(float) * B * K), calloc((size_t)c->num_moe + 1, sizeof(float *)),
                    calloc((size_t)c->num_moe + 1, sizeof(int32_t *))};
    for (int s = 0; s < c->num_moe; s++) {
        r.probs[s] = malloc(sizeof(float) * B * T * E);
        r.idx[s] = malloc(sizeof(int32_t) * B * T * R);
    }
    rs_forward *f;
    rs_error err;
    assert_int_equal(rs_forward_create(m, chunk, threads, &f, &err), 0);
    for (int b0 = 0; b0 < B; b0 += chunk) {
        int n = B - b0 < chunk ? B - b0 : chunk;
        assert_int_equal(rs_forward_run(f, input + b0 * img, n, &err), 0);
        const rs_forward_out *o = rs_forward_result(f);
        assert_int_equal(o->batch, n);
        assert_int_equal(o->tokens, (int)T);
        memcpy(r.logits + b0 * K, o->logits, sizeof(float) * n * K);
        for (int s = 0; s < c->num_moe; s++) {
            assert_int_equal(o->moe[s].block, c->moe_layers[s]);
            memcpy(r.probs[s] + b0 * T * E, o->moe[s].probs, sizeof(float) * n * T * E);
            memcpy(r.idx[s] + b0 * T * R, o->moe[s].top_idx, sizeof(int32_t) * n * T * R);
            for (size_t i = 0; i < n * T * R; i++) /* gates are the probabilities of the ids */
                assert_true(o->moe[s].top_gate[i] == o->moe[s].probs[(i / R) * E + o->moe[s].top_idx[i]]);
        }
    }
    rs_forward_free(f);
    return r;
}

static void free_result(run_result *r, int num_moe)
{
    for (int s = 0; s < num_moe; s++) {
        free(r->probs[s]);
        free(r->idx[s]);
    }
    free(r->probs);
    free(r->idx);
    free(r->logits);
}

/* Reference order of one token's experts: decreasing probability, ties to lower index. */
static void ref_order(const float *p, int E, int *order)
{
    for (int e = 0; e < E; e++)
        order[e] = e;
    for (int i = 1; i < E; i++) /* insertion sort, stable */
        for (int j = i; j > 0 && p[order[j]] > p[order[j - 1]]; j--) {
            int t = order[j];
            order[j] = order[j - 1];
            order[j - 1] = t;
        }
}

static void check_topk(const float *ref_p, const int32_t *idx, int E, int R, size_t token, const char *name)
{
    int order[RS_MAX_EXPERTS];
    ref_order(ref_p, E, order);
    for (int r = 1; r <= R && r < E; r++) {
        if (ref_p[order[r - 1]] - ref_p[order[r]] < GAP_TOL)
            continue;
        /* The sets {top r} must agree: every C id among the first r is a reference top-r id. */
        for (int a = 0; a < r; a++) {
            int found = 0;
            for (int b = 0; b < r; b++)
                found |= idx[a] == order[b];
            if (!found)
                fail_msg("%s: token %zu: C top-%d has expert %d, not in the reference top-%d", name, token, r,
                         idx[a], r);
        }
    }
}

static void golden_case(void **state)
{
    const char *name = *state;
    char path[1024];
    rs_error err;
    rs_model *m;
    rs_safetensors *ref;
    snprintf(path, sizeof path, "%s/%s.ref.safetensors", golden_dir, name);
    if (rs_safetensors_open(path, &ref, &err))
        fail_msg("%s", err.msg);
    /* The reference names its model relative to the golden folder (bundled checkpoints
     * live in models/); older references sit next to NAME.safetensors. */
    const char *model_name = rs_safetensors_metadata(ref, "model");
    if (model_name)
        snprintf(path, sizeof path, "%s/%s", golden_dir, model_name);
    else
        snprintf(path, sizeof path, "%s/%s.safetensors", golden_dir, name);
    if (rs_model_open(path, &m, &err) || tu_set_backend(m, &err))
        fail_msg("%s", err.msg);
    const rs_config *c = &m->cfg;
    const rs_st_tensor *in_t = rs_safetensors_find(ref, "input");
    assert_non_null(in_t);
    int B = (int)in_t->shape[0];
    size_t T = (size_t)rs_config_tokens(c), E = (size_t)c->num_experts, R = (size_t)rs_config_record_k(c);
    size_t K = (size_t)c->num_classes;
    float *input = tu_tensor_f32(ref, "input", NULL);
    size_t n_logits;
    float *ref_logits = tu_tensor_f32(ref, "logits", &n_logits);
    assert_int_equal(n_logits, B * K);

    run_result one = run(m, input, B, B, 1);

    float worst_logit = 0, worst_prob = 0;
    for (size_t i = 0; i < B * K; i++)
        worst_logit = fmaxf(worst_logit, fabsf(one.logits[i] - ref_logits[i]));
    float **ref_p = calloc((size_t)c->num_moe + 1, sizeof *ref_p);
    for (int s = 0; s < c->num_moe; s++) {
        char tname[64];
        snprintf(tname, sizeof tname, "router.%d", c->moe_layers[s]);
        size_t n_probs;
        ref_p[s] = tu_tensor_f32(ref, tname, &n_probs);
        assert_non_null(ref_p[s]);
        assert_int_equal(n_probs, B * T * E);
        for (size_t i = 0; i < B * T * E; i++)
            worst_prob = fmaxf(worst_prob, fabsf(one.probs[s][i] - ref_p[s][i]));
        for (size_t t = 0; t < B * T; t++)
            check_topk(ref_p[s] + t * E, one.idx[s] + t * R, (int)E, (int)R, t, tname);
    }
    print_message("%-28s max |logit err| %.2e  max |prob err| %.2e\n", name, worst_logit, worst_prob);
    assert_true(worst_logit <= LOGIT_TOL);
    assert_true(worst_prob <= PROB_TOL);

    /* Tiles: more images than one group, so batches and threads really split the work. */
    rs_forward *probe;
    assert_int_equal(rs_forward_create(m, 1, 1, &probe, &err), 0);
    int G = rs_forward_group_size(probe), n = 2 * G + 3;
    rs_forward_free(probe);
    size_t img = (size_t)c->channels * c->image_h * c->image_w;
    float *tiled = malloc(sizeof(float) * n * img);
    for (int i = 0; i < n; i++)
        memcpy(tiled + i * img, input + (i % B) * img, sizeof(float) * img);
    run_result whole = run(m, tiled, n, n, 2);
    run_result groups = run(m, tiled, n, G, 1);
    assert_memory_equal(whole.logits, groups.logits, sizeof(float) * n * K);
    for (int s = 0; s < c->num_moe; s++) {
        assert_memory_equal(whole.probs[s], groups.probs[s], sizeof(float) * n * T * E);
        assert_memory_equal(whole.idx[s], groups.idx[s], sizeof(int32_t) * n * T * R);
    }
    for (int i = 0; i < n; i++) {
        int b = i % B;
        for (size_t k = 0; k < K; k++)
            assert_true(fabsf(whole.logits[i * K + k] - ref_logits[b * K + k]) <= LOGIT_TOL);
        for (int s = 0; s < c->num_moe; s++)
            for (size_t j = 0; j < T * E; j++)
                assert_true(fabsf(whole.probs[s][i * T * E + j] - ref_p[s][b * T * E + j]) <= PROB_TOL);
    }
    for (int s = 0; s < c->num_moe; s++)
        free(ref_p[s]);
    free(ref_p);
    free(tiled);
    free_result(&whole, c->num_moe);
    free_result(&groups, c->num_moe);
    free_result(&one, c->num_moe);
    free(input);
    free(ref_logits);
    rs_safetensors_close(ref);
    rs_model_close(m);
}

/* ---- epsilon in every LayerNorm: a tiny model built here ---------------------------------------- */

/* Every golden model but one uses epsilon 1e-6, on activations of variance near 1, where
 * a LayerNorm that used 1e-6 (or no epsilon) instead of the config's changes nothing
 * visible. This model is written here with epsilon 0.01 and activations of variance of
 * that order: one 2 x 2 patch, so T = 1 and GAP (attention over one token is its value
 * row), D = 4, M = 3, blocks 0 dense and 1 MoE (E = 3, k = 2), K = 3. Its forward pass is
 * computed here in double as docs/checkpoint.md states it, and the test first shows that
 * changing epsilon at any one of the five LayerNorms (norm1 and norm2 of each block, the
 * final norm) to 1e-6 or 0 moves a logit by more than 1e-2 or a router probability by more
 * than 1e-3 — a hundred times the tolerances — before holding the C forward to it. */
enum { HD = 4, HM = 3, HE = 3, HK = 3, HB = 2, HSITES = 5 };
#define HAND_EPS 0.01f

typedef struct hand_block {
    float n1w[HD], n1b[HD], qkv_w[3 * HD * HD], qkv_b[3 * HD], proj_w[HD * HD], proj_b[HD], n2w[HD], n2b[HD];
    float fc1_w[HE * HM * HD], fc1_b[HE * HM], fc2_w[HE * HD * HM], fc2_b[HE * HD]; /* dense: expert 0's part */
    float router[HE * HD];
} hand_block;

typedef struct hand_model {
    float patch_w[HD * 4], patch_b[HD], pos[HD], norm_w[HD], norm_b[HD], head_w[HK * HD], head_b[HK];
    hand_block b[2];
} hand_model;

/* Values uniform in [C - S, C + S] from a fixed LCG. */
static void hand_fill(float *x, int n, float c, float s, uint32_t *seed)
{
    for (int i = 0; i < n; i++) {
        *seed = *seed * 1664525u + 1013904223u;
        x[i] = c + s * (2.0f * (float)(*seed >> 8) / 16777216.0f - 1.0f);
    }
}

static void hand_make(hand_model *h)
{
    uint32_t seed = 12345;
    hand_fill(h->patch_w, HD * 4, 0, 0.1f, &seed);
    hand_fill(h->patch_b, HD, 0, 0.05f, &seed);
    hand_fill(h->pos, HD, 0, 0.05f, &seed);
    for (int i = 0; i < 2; i++) {
        hand_block *b = &h->b[i];
        hand_fill(b->n1w, HD, 1, 0.3f, &seed), hand_fill(b->n1b, HD, 0, 0.1f, &seed);
        hand_fill(b->qkv_w, 3 * HD * HD, 0, 0.5f, &seed), hand_fill(b->qkv_b, 3 * HD, 0, 0.05f, &seed);
        hand_fill(b->proj_w, HD * HD, 0, 0.1f, &seed), hand_fill(b->proj_b, HD, 0, 0.02f, &seed);
        hand_fill(b->n2w, HD, 1, 0.3f, &seed), hand_fill(b->n2b, HD, 0, 0.1f, &seed);
        hand_fill(b->fc1_w, HE * HM * HD, 0, 0.8f, &seed), hand_fill(b->fc1_b, HE * HM, 0, 0.1f, &seed);
        hand_fill(b->fc2_w, HE * HD * HM, 0, 0.1f, &seed), hand_fill(b->fc2_b, HE * HD, 0, 0.02f, &seed);
        hand_fill(b->router, HE * HD, 0, 2.0f, &seed);
    }
    hand_fill(h->norm_w, HD, 1, 0.3f, &seed), hand_fill(h->norm_b, HD, 0, 0.1f, &seed);
    hand_fill(h->head_w, HK * HD, 0, 1.0f, &seed), hand_fill(h->head_b, HK, 0, 0.1f, &seed);
}

/* ---- the reference, in double ---- */

static void ref_ln(double *y, const double *x, const float *w, const float *b, double eps)
{
    double mean = 0, var = 0;
    for (int i = 0; i < HD; i++)
        mean += x[i] / HD;
    for (int i = 0; i < HD; i++)
        var += (x[i] - mean) * (x[i] - mean) / HD;
    for (int i = 0; i < HD; i++)
        y[i] = (x[i] - mean) / sqrt(var + eps) * w[i] + b[i];
}

/* Y (OUT) = W (OUT,IN) X + B. */
static void ref_affine(double *y, const float *w, const float *b, const double *x, int out, int in)
{
    for (int o = 0; o < out; o++) {
        y[o] = b[o];
        for (int i = 0; i < in; i++)
            y[o] += (double)w[o * in + i] * x[i];
    }
}

/* X += expert E's MLP (dense: E = 0) of XN, times GATE. */
static void ref_mlp(double *x, const hand_block *b, int e, const double *xn, double gate)
{
    double h[HM], y[HD];
    ref_affine(h, b->fc1_w + e * HM * HD, b->fc1_b + e * HM, xn, HM, HD);
    for (int j = 0; j < HM; j++)
        h[j] = 0.5 * h[j] * (1 + erf(h[j] / sqrt(2.0)));
    ref_affine(y, b->fc2_w + e * HD * HM, b->fc2_b + e * HD, h, HD, HM);
    for (int i = 0; i < HD; i++)
        x[i] += gate * y[i];
}

/* Logits (HK) and block 1's router probabilities (HE) of image IMG (4 pixels), with
 * EPS[s] at LayerNorm site s: norm1 of blocks 0 and 1, norm2 of blocks 0 and 1, final. */
static void ref_forward(const hand_model *h, const float *img, const double eps[HSITES], double *logits,
                        double *probs)
{
    double x[HD], xn[HD], v[HD], u[HD], pix[4] = {img[0], img[1], img[2], img[3]};
    ref_affine(x, h->patch_w, h->patch_b, pix, HD, 4);
    for (int i = 0; i < HD; i++)
        x[i] += h->pos[i];
    for (int blk = 0; blk < 2; blk++) {
        const hand_block *b = &h->b[blk];
        ref_ln(xn, x, b->n1w, b->n1b, eps[blk]);
        /* One token: the attention weights are (1), so the output is the value row. */
        ref_affine(v, b->qkv_w + 2 * HD * HD, b->qkv_b + 2 * HD, xn, HD, HD);
        ref_affine(u, b->proj_w, b->proj_b, v, HD, HD);
        for (int i = 0; i < HD; i++)
            x[i] += u[i];
        ref_ln(xn, x, b->n2w, b->n2b, eps[2 + blk]);
        if (blk == 0) {
            ref_mlp(x, b, 0, xn, 1);
            continue;
        }
        static const float no_bias[HE];
        double z[HE], mx = -INFINITY, sum = 0;
        ref_affine(z, b->router, no_bias, xn, HE, HD);
        for (int e = 0; e < HE; e++)
            mx = fmax(mx, z[e]);
        for (int e = 0; e < HE; e++)
            sum += probs[e] = exp(z[e] - mx);
        int worst = 0; /* top 2 of 3: all but the least likely (ties: the higher index goes) */
        for (int e = 0; e < HE; e++) {
            probs[e] /= sum;
            if (e > 0 && probs[e] <= probs[worst])
                worst = e;
        }
        for (int e = 0; e < HE; e++)
            if (e != worst)
                ref_mlp(x, b, e, xn, probs[e]);
    }
    ref_ln(xn, x, h->norm_w, h->norm_b, eps[4]);
    ref_affine(logits, h->head_w, h->head_b, xn, HK, HD);
}

/* ---- the checkpoint file ---- */

static void hand_tensor(json_t *hdr, unsigned char *data, size_t *off, const char *name, const float *x, int n,
                        json_t *shape)
{
    json_t *t = json_object();
    json_object_set_new(t, "dtype", json_string("F32"));
    json_object_set_new(t, "shape", shape);
    json_object_set_new(t, "data_offsets", json_pack("[I, I]", (json_int_t)*off, (json_int_t)(*off + 4 * n)));
    json_object_set_new(hdr, name, t);
    memcpy(data + *off, x, sizeof(float) * (size_t)n);
    *off += sizeof(float) * (size_t)n;
}

static void hand_write(const hand_model *h, const char *path)
{
    json_t *cfg = json_pack("{s:[i,i], s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:[i], s:i, s:i, s:s, s:f, s:s, s:[f], "
                            "s:[f], s:b}",
                            "image_size", 2, 2, "channels", 1, "patch_size", 2, "hidden", HD, "depth", 2, "heads", 1,
                            "mlp_dim", HM, "num_classes", HK, "moe_layers", 1, "num_experts", HE, "top_k", 2,
                            "classifier", "gap", "layer_norm_eps", (double)HAND_EPS, "gelu", "erf", "mean", 0.0,
                            "std", 1.0, "representation", 0);
    assert_non_null(cfg);
    char *cfg_text = json_dumps(cfg, JSON_COMPACT);
    json_t *hdr = json_object();
    json_object_set_new(hdr, "__metadata__", json_pack("{s:s, s:s}", "format", "routerscope-vmoe", "config", cfg_text));
    unsigned char *data = malloc(sizeof *h);
    size_t off = 0;
    hand_tensor(hdr, data, &off, "patch_embed.weight", h->patch_w, HD * 4, json_pack("[i,i,i,i]", HD, 1, 2, 2));
    hand_tensor(hdr, data, &off, "patch_embed.bias", h->patch_b, HD, json_pack("[i]", HD));
    hand_tensor(hdr, data, &off, "pos_embed", h->pos, HD, json_pack("[i,i,i]", 1, 1, HD));
    for (int i = 0; i < 2; i++) {
        const hand_block *b = &h->b[i];
        char name[64];
#define HT(suffix, x, n, shape) \
    (snprintf(name, sizeof name, "blocks.%d.%s", i, suffix), hand_tensor(hdr, data, &off, name, x, n, shape))
        HT("norm1.weight", b->n1w, HD, json_pack("[i]", HD));
        HT("norm1.bias", b->n1b, HD, json_pack("[i]", HD));
        HT("attn.qkv.weight", b->qkv_w, 3 * HD * HD, json_pack("[i,i]", 3 * HD, HD));
        HT("attn.qkv.bias", b->qkv_b, 3 * HD, json_pack("[i]", 3 * HD));
        HT("attn.proj.weight", b->proj_w, HD * HD, json_pack("[i,i]", HD, HD));
        HT("attn.proj.bias", b->proj_b, HD, json_pack("[i]", HD));
        HT("norm2.weight", b->n2w, HD, json_pack("[i]", HD));
        HT("norm2.bias", b->n2b, HD, json_pack("[i]", HD));
        if (i == 0) {
            HT("mlp.fc1.weight", b->fc1_w, HM * HD, json_pack("[i,i]", HM, HD));
            HT("mlp.fc1.bias", b->fc1_b, HM, json_pack("[i]", HM));
            HT("mlp.fc2.weight", b->fc2_w, HD * HM, json_pack("[i,i]", HD, HM));
            HT("mlp.fc2.bias", b->fc2_b, HD, json_pack("[i]", HD));
        } else {
            HT("moe.router.weight", b->router, HE * HD, json_pack("[i,i]", HE, HD));
            HT("moe.experts.fc1.weight", b->fc1_w, HE * HM * HD, json_pack("[i,i,i]", HE, HM, HD));
            HT("moe.experts.fc1.bias", b->fc1_b, HE * HM, json_pack("[i,i]", HE, HM));
            HT("moe.experts.fc2.weight", b->fc2_w, HE * HD * HM, json_pack("[i,i,i]", HE, HD, HM));
            HT("moe.experts.fc2.bias", b->fc2_b, HE * HD, json_pack("[i,i]", HE, HD));
        }
#undef HT
    }
    hand_tensor(hdr, data, &off, "norm.weight", h->norm_w, HD, json_pack("[i]", HD));
    hand_tensor(hdr, data, &off, "norm.bias", h->norm_b, HD, json_pack("[i]", HD));
    hand_tensor(hdr, data, &off, "head.weight", h->head_w, HK * HD, json_pack("[i,i]", HK, HD));
    hand_tensor(hdr, data, &off, "head.bias", h->head_b, HK, json_pack("[i]", HK));
    char *text = json_dumps(hdr, JSON_COMPACT);
    size_t len = strlen(text), hlen = (len + 7) / 8 * 8; /* padded with spaces: tensors stay aligned */
    unsigned char *file = malloc(8 + hlen + off);
    for (int i = 0; i < 8; i++)
        file[i] = (unsigned char)((uint64_t)hlen >> (8 * i));
    memcpy(file + 8, text, len);
    memset(file + 8 + len, ' ', hlen - len);
    memcpy(file + 8 + hlen, data, off);
    assert_int_equal(tu_write_file(path, file, 8 + hlen + off), 0);
    free(file), free(text), free(data), free(cfg_text);
    json_decref(hdr), json_decref(cfg);
}

static double max_abs_diff(const double *a, const double *b, int n)
{
    double d = 0;
    for (int i = 0; i < n; i++)
        d = fmax(d, fabs(a[i] - b[i]));
    return d;
}

static void layer_norm_eps_every_block(void **state)
{
    (void)state;
    static hand_model h;
    hand_make(&h);
    const float img[HB * 4] = {0.9f, -0.4f, 0.3f, 1.2f, -1.1f, 0.5f, 0.8f, -0.2f};
    double eps[HSITES], logits[HB][HK], probs[HB][HE];
    for (int s = 0; s < HSITES; s++)
        eps[s] = (double)HAND_EPS; /* the float the config holds */
    for (int b = 0; b < HB; b++)
        ref_forward(&h, img + 4 * b, eps, logits[b], probs[b]);
    /* The test can see each site: another epsilon there moves the outputs far beyond the
     * tolerances below. */
    for (int s = 0; s < HSITES; s++)
        for (int alt = 0; alt < 2; alt++) {
            double e2[HSITES], l2[HK], p2[HE], dl = 0, dp = 0;
            memcpy(e2, eps, sizeof e2);
            e2[s] = alt ? 1e-6 : 0;
            for (int b = 0; b < HB; b++) {
                ref_forward(&h, img + 4 * b, e2, l2, p2);
                dl = fmax(dl, max_abs_diff(l2, logits[b], HK));
                dp = fmax(dp, max_abs_diff(p2, probs[b], HE));
            }
            if (!(dl > 100 * LOGIT_TOL || dp > 100 * PROB_TOL))
                fail_msg("epsilon %g at LayerNorm %d moves the logits by %.3g and the probabilities by %.3g only", e2[s],
                         s, dl, dp);
        }

    char dir[64], path[128];
    assert_int_equal(tu_scratch_dir("golden_eps", dir, sizeof dir), 0);
    snprintf(path, sizeof path, "%s/eps.safetensors", dir);
    hand_write(&h, path);
    rs_model *m;
    rs_forward *f;
    rs_error err = {0};
    if (rs_model_open(path, &m, &err) || tu_set_backend(m, &err))
        fail_msg("%s", err.msg);
    assert_true(m->cfg.layer_norm_eps == HAND_EPS);
    assert_int_equal(rs_forward_create(m, HB, 1, &f, &err), 0);
    assert_int_equal(rs_forward_run(f, img, HB, &err), 0);
    const rs_forward_out *o = rs_forward_result(f);
    for (int b = 0; b < HB; b++) {
        for (int k = 0; k < HK; k++)
            if (fabs(o->logits[b * HK + k] - logits[b][k]) > LOGIT_TOL)
                fail_msg("image %d logit %d: %.7g, the double reference %.7g", b, k, (double)o->logits[b * HK + k],
                         logits[b][k]);
        for (int e = 0; e < HE; e++)
            if (fabs(o->moe[0].probs[b * HE + e] - probs[b][e]) > PROB_TOL)
                fail_msg("image %d router probability %d: %.7g, the double reference %.7g", b, e,
                         (double)o->moe[0].probs[b * HE + e], probs[b][e]);
    }
    rs_forward_free(f);
    rs_model_close(m);
    tu_remove_dir(dir);
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int main(void)
{
    golden_dir = tu_dir("RS_GOLDEN_DIR", "tests/golden");
    DIR *d = opendir(golden_dir);
    if (!d) {
        fprintf(stderr, "test_golden: cannot open %s\n", golden_dir);
        return 1;
    }
    char *names[64];
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) && n < 64) {
        size_t len = strlen(de->d_name);
        const char *suffix = ".ref.safetensors";
        if (len > strlen(suffix) && !strcmp(de->d_name + len - strlen(suffix), suffix))
            names[n++] = strndup(de->d_name, len - strlen(suffix));
    }
    closedir(d);
    qsort(names, (size_t)n, sizeof *names, by_name);
    if (n < 6) {
        fprintf(stderr, "test_golden: only %d golden cases in %s\n", n, golden_dir);
        return 1;
    }
    struct CMUnitTest tests[65];
    for (int i = 0; i < n; i++)
        tests[i] = (struct CMUnitTest){.name = names[i], .test_func = golden_case, .initial_state = names[i]};
    tests[n] = (struct CMUnitTest)cmocka_unit_test(layer_norm_eps_every_block);
    int failed = _cmocka_run_group_tests("golden", tests, (size_t)n + 1, NULL, NULL);
    for (int i = 0; i < n; i++)
        free(names[i]);
    return failed;
}

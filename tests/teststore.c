/* teststore.c — hand-made runs written to a store (teststore.h). */
#include "teststore.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

tb tb_new(int N, int V, int L, int Np, int cls, int R, int E, int K)
{
    tb t = {.N = N, .V = V, .L = L, .Np = Np, .T = Np + cls, .R = R, .E = E, .K = K, .cls = cls, .k = R};
    size_t nv = (size_t)N * V, rows = nv * L * t.T;
    /* owned by T until tb_free */
    t.labels = malloc(sizeof *t.labels * (size_t)N);
    t.match = malloc(sizeof *t.match * nv * Np);
    t.pred = calloc(nv, sizeof *t.pred);
    t.pprob = calloc(nv, sizeof *t.pprob);
    t.params = malloc(sizeof *t.params * nv);
    t.top = malloc(sizeof *t.top * rows * R);
    t.gate = malloc(sizeof *t.gate * rows * R);
    t.probs = malloc(sizeof *t.probs * rows * E);
    assert_true(t.labels && t.match && t.pred && t.pprob && t.params && t.top && t.gate && t.probs);
    for (int i = 0; i < N; i++)
        t.labels[i] = -1;
    for (size_t q = 0; q < nv; q++) {
        t.params[q] = "{}";
        for (int j = 0; j < Np; j++)
            t.match[q * Np + j] = (int16_t)j;
    }
    for (size_t r = 0; r < rows; r++) {
        for (int k = 0; k < R; k++) {
            t.top[r * R + k] = k;
            t.gate[r * R + k] = 1.0f / E;
        }
        for (int e = 0; e < E; e++)
            t.probs[r * E + e] = 1.0f / E;
    }
    return t;
}

void tb_free(tb *t)
{
    free(t->labels), free(t->match), free(t->pred), free(t->pprob), free(t->params);
    free(t->top), free(t->gate), free(t->probs), free(t->kept);
}

size_t tb_row(const tb *t, int i, int v, int l, int tok)
{
    return (((size_t)i * t->V + v) * t->L + l) * t->T + tok;
}

void tb_set_top(tb *t, int i, int v, int l, int j, int a1, int a2)
{
    size_t r = tb_row(t, i, v, l, j + t->cls);
    t->top[r * t->R] = a1;
    t->top[r * t->R + 1] = a2;
}

void tb_set_cls_top(tb *t, int i, int v, int l, int a1, int a2)
{
    size_t r = tb_row(t, i, v, l, 0);
    t->top[r * t->R] = a1;
    t->top[r * t->R + 1] = a2;
}

void tb_set_probs(tb *t, int i, int v, int l, int j, const float *p)
{
    memcpy(t->probs + tb_row(t, i, v, l, j + t->cls) * t->E, p, sizeof *p * (size_t)t->E);
}

void tb_set_match(tb *t, int i, int v, const int *m)
{
    for (int j = 0; j < t->Np; j++)
        t->match[((size_t)i * t->V + v) * t->Np + j] = (int16_t)m[j];
}

static const int blocks[] = {1, 3, 5, 7};

rs_run_spec tb_spec(const tb *t, const char *sha, uint64_t seed, const char *const *views)
{
    return (rs_run_spec){
        .model_path = "models/test.safetensors", .model_sha256 = sha, .model_config = "{}",
        .model_params = 1, .data = "fashion-mnist:test", .offset = 0, .count = t->N,
        .protocol = "pair", .num_views = t->V, .view_specs = views, .seed = seed,
        .num_layers = t->L, .layer_blocks = blocks, .tokens = t->T, .patches = t->Np, .grid_h = 1,
        .grid_w = t->Np, .record_k = t->R, .num_experts = t->E, .num_classes = t->K, .top_k = t->k,
        .channels = 1, .image_h = 28, .image_w = 28, .has_cls = t->cls != 0, .command = "test", .version = "test",
        .capacity_factor = t->kept ? 0.5 : 0, .group_images = t->kept ? 2 : 0, .has_group_seed = t->has_group_seed,
        .group_seed = t->group_seed,
    };
}

int64_t tb_write(const tb *t, const char *path, const rs_run_spec *spec)
{
    rs_store *s;
    rs_error err = {0};
    assert_int_equal(rs_store_open(path, false, &s, &err), 0);
    int64_t run;
    int rc = rs_store_begin_run(s, spec, &run, &err);
    if (rc)
        print_message("  %s\n", err.msg);
    assert_int_equal(rc, 0);
    rs_batch b = {
        .first = 0, .count = t->N, .num_views = t->V, .num_layers = t->L, .tokens = t->T, .record_k = t->R,
        .num_experts = t->E, .patches = t->Np, .labels = t->labels, .predicted = t->pred, .pred_prob = t->pprob,
        .view_params = (const char *const *)t->params, .match = t->match, .top_idx = t->top, .top_gate = t->gate,
        .probs = t->probs, .kept = t->kept,
    };
    rc = rs_store_write_batch(s, run, &b, &err);
    if (rc)
        print_message("  %s\n", err.msg);
    assert_int_equal(rc, 0);
    rs_store_close(s);
    return run;
}

int64_t tb_write_run(const tb *t, const char *path, const char *sha, uint64_t seed, const char *const *views)
{
    rs_run_spec spec = tb_spec(t, sha, seed, views);
    return tb_write(t, path, &spec);
}

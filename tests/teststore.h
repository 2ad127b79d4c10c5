/* teststore.h — a run built by hand and written to a store, shared by the statistics and
 * groups tests (cmocka asserts inside: a failure fails the calling test).
 *
 * A tb holds N images x V views of L MoE layers, Np patches (T = Np + cls tokens), R
 * recorded experts, E experts and K classes, in the layouts of rs_batch (store.h).
 * tb_new's defaults: labels -1, predictions 0 with probability 0, identity match maps,
 * view parameters "{}", every token's top list 0, 1, ..., R - 1 with gates 1/E, uniform
 * router distributions, the model's k = R. Tests set what they need, then write. */
#ifndef RS_TESTSTORE_H
#define RS_TESTSTORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/store.h"

typedef struct tb {
    int N, V, L, Np, T, R, E, K, cls;
    int k;                        /* the model's k (default R) */
    int16_t *match;               /* (N,V,Np) */
    int32_t *labels, *pred, *top; /* (N), (N,V), (N,V,L,T,R) */
    float *pprob, *gate, *probs;  /* (N,V), (N,V,L,T,R), (N,V,L,T,E) */
    char **params;                /* (N,V) */
    uint8_t *kept;                /* (N,V,L,T,R) kept masks, or NULL: a run without capacity
                                     (owned: tb_free frees it; tests malloc it) */
    bool has_group_seed;          /* with kept: the run's group seed (else data order) */
    uint64_t group_seed;
} tb;

/* CLS is 1 with a class token (token 0), else 0. Free with tb_free. */
tb tb_new(int N, int V, int L, int Np, int cls, int R, int E, int K);
void tb_free(tb *t);

/* The row of token TOK (class token first when there is one) of image I, view V, layer L:
 * top and gate hold R entries per row, probs E. */
size_t tb_row(const tb *t, int i, int v, int l, int tok);
/* Top-2 of patch J (token J + cls) of image I, view V, layer L. */
void tb_set_top(tb *t, int i, int v, int l, int j, int a1, int a2);
/* Top-2 of the class token. */
void tb_set_cls_top(tb *t, int i, int v, int l, int a1, int a2);
/* Router distribution (E values) of patch J. */
void tb_set_probs(tb *t, int i, int v, int l, int j, const float *p);
/* Match map (Np values, -1: no match) of image I, view V. */
void tb_set_match(tb *t, int i, int v, const int *m);

/* A pair-protocol spec of T's shape: model models/test.safetensors with sha256 SHA and
 * config "{}", fashion-mnist:test from 0, view seed SEED, VIEWS (V specs), MoE layers in
 * blocks 1, 3, 5, 7 (L <= 4), a 1 x Np grid of 28 x 28 x 1 images; with kept masks,
 * capacity factor 0.5 in groups of 2 images and T's group seed. Callers change fields
 * before writing it with tb_write. */
rs_run_spec tb_spec(const tb *t, const char *sha, uint64_t seed, const char *const *views);
/* Writes T as a new run of SPEC into the store at PATH (created when missing); returns the
 * run id. */
int64_t tb_write(const tb *t, const char *path, const rs_run_spec *spec);
/* tb_write with tb_spec(T, SHA, SEED, VIEWS). */
int64_t tb_write_run(const tb *t, const char *path, const char *sha, uint64_t seed, const char *const *views);

#endif

/* Golden test: the C forward pass against PyTorch (pytorch/golden.py, float64 reference).
 *
 * For every tests/golden/NAME.ref.safetensors: logits within 1e-4, every router
 * probability within 1e-5, and the top-r expert sets identical wherever the reference's
 * r-th and (r+1)-th probabilities differ by at least 1e-4 (r = 1..R).
 *
 * Determinism: the golden images tiled into 2G+3 images (G = the forward's group size)
 * give bit-identical outputs whether run as one batch on two threads or as batches of G
 * on one thread; and every tile still matches the reference. */
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
    if (rs_model_open(path, &m, &err))
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
    struct CMUnitTest tests[64];
    for (int i = 0; i < n; i++)
        tests[i] = (struct CMUnitTest){.name = names[i], .test_func = golden_case, .initial_state = names[i]};
    int failed = _cmocka_run_group_tests("golden", tests, (size_t)n, NULL, NULL);
    for (int i = 0; i < n; i++)
        free(names[i]);
    return failed;
}

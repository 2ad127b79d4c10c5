/* Forced routing (forward.h, rs_forward_run_forced; model/layers.h).
 *
 * Hand cases on one MoE layer whose experts output their fc2 bias alone (fc1 is zero and
 * GELU(0) = 0), so each token's update is the sum of p_e * bias_e over the experts it ran:
 * a forced expert runs with the token's own gate, a token with -1 keeps its router's choice,
 * the recorded top-k stays the router's, and under a capacity forced choices are never
 * dropped by it (only as their run mask says) while the router's choices of forced tokens
 * still take their places.
 * On a golden model: forcing nothing (NULL, or every row -1) is the plain pass bit for bit,
 * forcing every token's own top-k gives the same bits, forcing one block leaves the blocks
 * before it untouched and records what ran, forcing the last block's patches leaves a
 * class-token model's logits, and bad rows are refused before anything runs. */
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
#include "gemm.h"
#include "layers.h"
#include "model.h"
#include "testutil.h"

static const char *golden_dir;

/* ---- one MoE layer by hand -------------------------------------------------------------- */

enum { D = 2, M = 1, E = 3, MAX_N = 6 };

/* The layer's weights: router W_r = [[1,0],[0,1],[0,0]], experts whose output is fc2's bias
 * BIAS[e] (D values) whatever the input. */
typedef struct hand_layer {
    rs_config c;
    rs_block_weights w;
    float router[E * D], fc1_w[E * M * D], fc1_b[E * M], fc2_w[E * D * M], fc2_b[E * D];
} hand_layer;

static void hand_init(hand_layer *h, int k)
{
    memset(h, 0, sizeof *h);
    h->c.hidden = D, h->c.mlp_dim = M, h->c.num_experts = E, h->c.top_k = k, h->c.gelu = RS_GELU_ERF;
    const float router[E * D] = {1, 0, 0, 1, 0, 0}, bias[E * D] = {1, 0, 0, 1, 10, 100};
    memcpy(h->router, router, sizeof router);
    memcpy(h->fc2_b, bias, sizeof bias);
    h->w = (rs_block_weights){.moe_slot = 0, .router_w = h->router, .efc1_w = h->fc1_w, .efc1_b = h->fc1_b,
                              .efc2_w = h->fc2_w, .efc2_b = h->fc2_b};
}

/* Runs the layer on N tokens XN (N,D) with FORCED (N,k or NULL) and DISPATCH (or NULL); X
 * starts at zero, so it ends as each token's expert update. PROBS, TOP_IDX, KEPT out. */
static void hand_run(const hand_layer *h, const float *xn_in, int N, const int32_t *forced, const uint8_t *run,
                     const rs_dispatch *dispatch, float *x, float *probs, int32_t *top_idx, uint8_t *kept)
{
    int R = rs_config_record_k(&h->c);
    float xn[MAX_N * D], hidden[MAX_N * M], gathered[MAX_N * D], y[MAX_N * D], top_gate[MAX_N * 2];
    int32_t rows[MAX_N * 2], start[2 * E + 1], order[2 * MAX_N];
    memcpy(xn, xn_in, sizeof(float) * (size_t)N * D);
    memset(x, 0, sizeof(float) * (size_t)N * D);
    rs_gemm *gemm = NULL; /* owned here: the layer's products go through the OpenBLAS backend */
    rs_error err;
    assert_int_equal(rs_gemm_create(RS_GEMM_OPENBLAS, RS_PRECISION_F32, &gemm, &err), 0);
    rs_group_bufs g = {.x = x, .xn = xn, .hidden = hidden, .gathered = gathered, .gemm = gemm};
    rs_block_bufs bb = {.y = y, .probs = probs, .top_idx = top_idx, .top_gate = top_gate, .route_rows = rows,
                        .route_start = start, .kept = kept, .forced = forced, .forced_run = run};
    assert_true(R == 2);
    rs_layer_moe(&h->c, &g, &bb, &h->w, N, dispatch, N, order);
    assert_int_equal(rs_gemm_status(gemm, &err), 0);
    rs_gemm_free(gemm);
}

static void forced_expert_runs_with_own_gate(void **state)
{
    (void)state;
    hand_layer h;
    hand_init(&h, 1);
    /* Router logits (2,0,0), (0,3,0), (1,1,0): top-1 e0, e1, e0 (a tie goes to the lower index). */
    const float xn[3 * D] = {2, 0, 0, 3, 1, 1};
    const int32_t forced[3] = {2, -1, 1};
    float x[3 * D], probs[3 * E];
    int32_t top_idx[3 * 2];
    hand_run(&h, xn, 3, forced, NULL, NULL, x, probs, top_idx, NULL);
    /* The router's own choice stays recorded. */
    assert_int_equal(top_idx[0], 0);
    assert_int_equal(top_idx[2], 1);
    assert_int_equal(top_idx[4], 0);
    /* Token 0 ran e2 with its own p_2 = 1/(e^2+2): update p_2 * (10, 100). */
    double p02 = 1 / (exp(2.0) + 2);
    assert_float_equal(probs[2], p02, 1e-6);
    assert_float_equal(x[0], 10 * p02, 1e-5);
    assert_float_equal(x[1], 100 * p02, 1e-4);
    /* Token 1 kept its own e1: p_1 * (0, 1). */
    assert_float_equal(x[2], 0, 0);
    assert_float_equal(x[3], probs[E + 1], 1e-7);
    /* Token 2 ran e1 (its router said e0): p_1 * (0, 1), p_1 = e/(2e+1). */
    assert_float_equal(x[4], 0, 0);
    assert_float_equal(x[5], exp(1.0) / (2 * exp(1.0) + 1), 1e-6);
}

static void k2_forced_pair(void **state)
{
    (void)state;
    hand_layer h;
    hand_init(&h, 2);
    const float xn[2 * D] = {2, 0, 0, 3};
    const int32_t forced[2 * 2] = {2, 1, -1, 0}; /* token 1: -1 first, the rest is ignored */
    float x[2 * D], probs[2 * E];
    int32_t top_idx[2 * 2];
    hand_run(&h, xn, 2, forced, NULL, NULL, x, probs, top_idx, NULL);
    /* Token 0 ran e2 and e1: p_2 (10, 100) + p_1 (0, 1). */
    assert_float_equal(x[0], 10 * probs[2], 1e-5);
    assert_float_equal(x[1], 100 * probs[2] + probs[1], 1e-4);
    /* Token 1 ran its own e1 and e0 (its top-2): p_1 (0, 1) + p_0 (1, 0). */
    assert_int_equal(top_idx[2], 1);
    assert_int_equal(top_idx[3], 0);
    assert_float_equal(x[2], probs[E + 0], 1e-7);
    assert_float_equal(x[3], probs[E + 1], 1e-7);
}

/* k = 2 with run masks that differ between the two slots. Six tokens, all (2, 1): router
 * logits (2, 1, 0), top-2 (e0, e1). Token 0 is forced to (e2, e1) with run (1, 0) and token
 * 5 to (e1, e2) with run (0, 1): each runs e2 alone, p_2 (10, 100), whichever slot holds it.
 * Capacity ceil(6 · 2 · 0.1 / 3) = 1, raised to 4: the router's rank-1 choices (all e0)
 * keep tokens 0-3, its rank-2 choices (all e1) tokens 0-3 again; forced tokens' router
 * choices still take their places, so tokens 1-3 run e0 and e1, token 4 nothing. The kept
 * rows of the forced tokens read their run masks, (1, 0) and (0, 1). Without a capacity the
 * masks hold the same and token 4 runs both. */
static void k2_forced_run_masks(void **state)
{
    (void)state;
    hand_layer h;
    hand_init(&h, 2);
    float xn[MAX_N * D];
    for (int n = 0; n < MAX_N; n++)
        xn[n * D] = 2, xn[n * D + 1] = 1;
    const int32_t forced[MAX_N * 2] = {2, 1, -1, 0, -1, 0, -1, 0, -1, 0, 1, 2};
    const uint8_t run[MAX_N * 2] = {1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1};
    rs_dispatch d = {.capacity_factor = 0.1, .group_images = 1};
    float x[MAX_N * D], probs[MAX_N * E];
    int32_t top_idx[MAX_N * 2];
    uint8_t kept[MAX_N * 2];
    for (int with_capacity = 1; with_capacity >= 0; with_capacity--) {
        hand_run(&h, xn, MAX_N, forced, run, with_capacity ? &d : NULL, x, probs, top_idx, with_capacity ? kept : NULL);
        double z = exp(2.0) + exp(1.0) + 1, p0 = exp(2.0) / z, p1 = exp(1.0) / z, p2 = 1 / z;
        for (int n = 0; n < MAX_N; n++) {
            if (top_idx[n * 2] != 0 || top_idx[n * 2 + 1] != 1)
                fail_msg("token %d: router top-2 (%d, %d), want (0, 1)", n, top_idx[n * 2], top_idx[n * 2 + 1]);
            bool forced_e2 = n == 0 || n == 5, both = !forced_e2 && (n < 4 || !with_capacity);
            double want[D] = {forced_e2 ? 10 * p2 : both ? p0 : 0, forced_e2 ? 100 * p2 : both ? p1 : 0};
            for (int i = 0; i < D; i++)
                if (fabs(x[n * D + i] - want[i]) > 1e-4)
                    fail_msg("%s capacity: token %d update[%d] = %.6g, want %.6g", with_capacity ? "with" : "without",
                             n, i, (double)x[n * D + i], want[i]);
        }
        if (with_capacity) {
            static const uint8_t want_kept[MAX_N * 2] = {1, 0, 1, 1, 1, 1, 1, 1, 0, 0, 0, 1};
            for (int q = 0; q < MAX_N * 2; q++)
                if (kept[q] != want_kept[q])
                    fail_msg("token %d slot %d: kept %d, want %d", q / 2, q % 2, kept[q], want_kept[q]);
        }
    }
}

static void forced_bypass_capacity(void **state)
{
    (void)state;
    hand_layer h;
    hand_init(&h, 1);
    /* Six tokens that all choose e0; capacity ceil(6 * 0.1 / 3) = 1, raised to 4: tokens 0-3
     * are kept, 4 and 5 dropped. */
    float xn[MAX_N * D];
    for (int n = 0; n < MAX_N; n++)
        xn[n * D] = 1 + 0.1f * (float)n, xn[n * D + 1] = 0;
    rs_dispatch d = {.capacity_factor = 0.1, .group_images = 1};
    float x[MAX_N * D], probs[MAX_N * E];
    int32_t top_idx[MAX_N * 2];
    uint8_t kept[MAX_N * 2];
    hand_run(&h, xn, MAX_N, NULL, NULL, &d, x, probs, top_idx, kept);
    assert_memory_equal(kept, ((uint8_t[]){1, 0, 1, 0, 1, 0, 1, 0, 0, 0, 0, 0}), MAX_N * 2);
    assert_float_equal(x[4 * D], 0, 0); /* dropped: no expert output */
    /* Token 0 forced to e2 and token 5 to e1: both run, whatever capacity says; token 0's
     * router choice (e0) still takes its place, so tokens 1-3 are kept and 4 dropped as
     * before. */
    int32_t forced[MAX_N] = {2, -1, -1, -1, -1, 1};
    hand_run(&h, xn, MAX_N, forced, NULL, &d, x, probs, top_idx, kept);
    assert_memory_equal(kept, ((uint8_t[]){1, 0, 1, 0, 1, 0, 1, 0, 0, 0, 1, 0}), MAX_N * 2);
    assert_float_equal(x[0], 10 * probs[2], 1e-5);
    assert_float_equal(x[4 * D], 0, 0);
    assert_float_equal(x[5 * D + 1], probs[5 * E + 1], 1e-7);
    /* A forced choice its source dropped stays dropped (run 0), whatever room there is:
     * token 5's e1 does not run, token 0's e2 does. */
    const uint8_t run[MAX_N] = {1, 1, 1, 1, 1, 0};
    hand_run(&h, xn, MAX_N, forced, run, &d, x, probs, top_idx, kept);
    assert_memory_equal(kept, ((uint8_t[]){1, 0, 1, 0, 1, 0, 1, 0, 0, 0, 0, 0}), MAX_N * 2);
    assert_float_equal(x[0], 10 * probs[2], 1e-5);
    assert_float_equal(x[5 * D + 1], 0, 0);
    /* Without a capacity the mask still holds: token 5 runs nothing. */
    hand_run(&h, xn, MAX_N, forced, run, NULL, x, probs, top_idx, NULL);
    assert_float_equal(x[5 * D + 1], 0, 0);
    assert_float_equal(x[4 * D], probs[4 * E], 1e-7); /* token 4 keeps its own e0: no capacity, it runs */
}

/* ---- the whole forward pass on a golden model --------------------------------------------- */

typedef struct golden {
    rs_model *m;
    float *input;
    int B;
} golden;

static golden open_golden(const char *name)
{
    char path[1024];
    rs_error err;
    rs_safetensors *ref;
    golden g = {0};
    snprintf(path, sizeof path, "%s/%s.ref.safetensors", golden_dir, name);
    if (rs_safetensors_open(path, &ref, &err))
        fail_msg("%s", err.msg);
    snprintf(path, sizeof path, "%s/%s.safetensors", golden_dir, name);
    if (rs_model_open(path, &g.m, &err))
        fail_msg("%s", err.msg);
    size_t n_in, img = (size_t)g.m->cfg.channels * g.m->cfg.image_h * g.m->cfg.image_w;
    g.input = tu_tensor_f32(ref, "input", &n_in);
    g.B = (int)(n_in / img);
    rs_safetensors_close(ref);
    return g;
}

/* A copy of one run's logits and, per MoE slot, probs, top_idx and executed. */
typedef struct snapshot {
    float *logits, *probs[4];
    int32_t *top_idx[4], *executed[4];
    bool forced[4];
} snapshot;

static snapshot take(const rs_forward *f, const rs_config *c, int B)
{
    const rs_forward_out *o = rs_forward_result(f);
    size_t T = (size_t)rs_config_tokens(c), E_ = (size_t)c->num_experts, R = (size_t)rs_config_record_k(c);
    size_t k = (size_t)c->top_k, K = (size_t)c->num_classes;
    snapshot s = {.logits = malloc(sizeof(float) * B * K)};
    memcpy(s.logits, o->logits, sizeof(float) * B * K);
    assert_true(c->num_moe <= 4);
    for (int l = 0; l < c->num_moe; l++) {
        s.probs[l] = malloc(sizeof(float) * B * T * E_);
        s.top_idx[l] = malloc(sizeof(int32_t) * B * T * R);
        s.executed[l] = malloc(sizeof(int32_t) * B * T * k);
        memcpy(s.probs[l], o->moe[l].probs, sizeof(float) * B * T * E_);
        memcpy(s.top_idx[l], o->moe[l].top_idx, sizeof(int32_t) * B * T * R);
        memcpy(s.executed[l], o->moe[l].executed, sizeof(int32_t) * B * T * k);
        s.forced[l] = o->moe[l].forced;
    }
    return s;
}

static void drop(snapshot *s, int L)
{
    free(s->logits);
    for (int l = 0; l < L; l++) {
        free(s->probs[l]);
        free(s->top_idx[l]);
        free(s->executed[l]);
    }
}

static void same_bits(const snapshot *a, const snapshot *b, const rs_config *c, int B)
{
    size_t T = (size_t)rs_config_tokens(c);
    assert_memory_equal(a->logits, b->logits, sizeof(float) * B * c->num_classes);
    for (int l = 0; l < c->num_moe; l++) {
        assert_memory_equal(a->probs[l], b->probs[l], sizeof(float) * B * T * c->num_experts);
        assert_memory_equal(a->top_idx[l], b->top_idx[l], sizeof(int32_t) * B * T * rs_config_record_k(c));
        assert_memory_equal(a->executed[l], b->executed[l], sizeof(int32_t) * B * T * c->top_k);
    }
}

static void forcing_nothing_or_own_choice_is_plain(void **state)
{
    (void)state;
    golden g = open_golden("token_k2_e4");
    const rs_config *c = &g.m->cfg;
    size_t T = (size_t)rs_config_tokens(c), R = (size_t)rs_config_record_k(c), k = (size_t)c->top_k;
    rs_forward *f;
    rs_error err;
    assert_int_equal(rs_forward_create(g.m, g.B, 2, &f, &err), 0);
    assert_int_equal(rs_forward_run(f, g.input, g.B, &err), 0);
    snapshot plain = take(f, c, g.B);
    for (int l = 0; l < c->num_moe; l++) {
        assert_false(plain.forced[l]);
        for (size_t n = 0; n < g.B * T; n++) /* executed = the router's first k */
            assert_memory_equal(plain.executed[l] + n * k, plain.top_idx[l] + n * R, sizeof(int32_t) * k);
    }
    /* NULL everywhere. */
    const rs_forced none[4] = {{0}};
    assert_int_equal(rs_forward_run_forced(f, g.input, g.B, none, &err), 0);
    snapshot s = take(f, c, g.B);
    same_bits(&plain, &s, c, g.B);
    drop(&s, c->num_moe);
    /* Every row -1: every token keeps its own choice. */
    int32_t *own = malloc(sizeof(int32_t) * g.B * T * k);
    rs_forced self[4] = {{0}};
    for (size_t i = 0; i < g.B * T * k; i++)
        own[i] = -1;
    const rs_forced all_own[4] = {{own, NULL}, {own, NULL}};
    assert_int_equal(rs_forward_run_forced(f, g.input, g.B, all_own, &err), 0);
    s = take(f, c, g.B);
    assert_true(s.forced[0] && s.forced[1]);
    same_bits(&plain, &s, c, g.B);
    drop(&s, c->num_moe);
    /* Forcing each token's own top-k (as a route from the view itself does) gives the same bits. */
    for (int l = 0; l < c->num_moe; l++)
        self[l].experts = plain.executed[l];
    assert_int_equal(rs_forward_run_forced(f, g.input, g.B, self, &err), 0);
    s = take(f, c, g.B);
    same_bits(&plain, &s, c, g.B);
    drop(&s, c->num_moe);
    free(own);
    drop(&plain, c->num_moe);
    rs_forward_free(f);
    free(g.input);
    rs_model_close(g.m);
}

/* A k = 1 model over several groups: forced rows are (batch, T, k), so a group starting at
 * token row ROW0 reads them from ROW0 · k (k = 1 here, where R = 2 records). Forcing every
 * token's own expert over 2G + 3 images (G the group size) gives the plain pass bit for
 * bit; forcing one expert everywhere runs it in every group. The rows are followed by as
 * many rows of -1, so that rows read at a wrong offset (ROW0 · R) fail an assertion
 * instead of reading past the end. */
static void k1_forced_across_groups(void **state)
{
    (void)state;
    golden g = open_golden("token_k1_e16_bias_fmnist");
    const rs_config *c = &g.m->cfg;
    assert_int_equal(c->top_k, 1);
    size_t T = (size_t)rs_config_tokens(c), img = (size_t)c->channels * c->image_h * c->image_w;
    rs_forward *f;
    rs_error err;
    assert_int_equal(rs_forward_create(g.m, 1, 1, &f, &err), 0);
    int G = rs_forward_group_size(f), B = 2 * G + 3;
    rs_forward_free(f);
    float *tiled = malloc(sizeof(float) * B * img);
    for (int i = 0; i < B; i++) /* the golden images, each tile scaled its own way: no two alike */
        for (size_t q = 0; q < img; q++)
            tiled[i * img + q] = g.input[(size_t)(i % g.B) * img + q] * (1 + 0.05f * (float)i);
    assert_int_equal(rs_forward_create(g.m, B, 1, &f, &err), 0);
    assert_int_equal(rs_forward_run(f, tiled, B, &err), 0);
    snapshot plain = take(f, c, B);
    rs_forced self[4] = {{0}};
    int32_t *rows[4] = {NULL};
    for (int l = 0; l < c->num_moe; l++) {
        rows[l] = malloc(sizeof(int32_t) * 2 * B * T);
        for (size_t n = 0; n < 2 * B * T; n++)
            rows[l][n] = n < B * T ? plain.executed[l][n] : -1;
        self[l].experts = rows[l];
    }
    assert_int_equal(rs_forward_run_forced(f, tiled, B, self, &err), 0);
    snapshot s = take(f, c, B);
    same_bits(&plain, &s, c, B);
    drop(&s, c->num_moe);
    /* Every token of slot 0 forced to expert 3: what ran is 3 in every group. */
    int32_t *three = rows[0];
    for (size_t n = 0; n < B * T; n++)
        three[n] = 3;
    const rs_forced all3[4] = {{three, NULL}};
    assert_int_equal(rs_forward_run_forced(f, tiled, B, all3, &err), 0);
    const rs_forward_out *o = rs_forward_result(f);
    for (size_t n = 0; n < B * T; n++)
        if (o->moe[0].executed[n] != 3)
            fail_msg("token row %zu (group %zu) ran expert %d, want 3", n, n / (T * G), o->moe[0].executed[n]);
    for (int l = 0; l < c->num_moe; l++)
        free(rows[l]);
    drop(&plain, c->num_moe);
    rs_forward_free(f);
    free(tiled);
    free(g.input);
    rs_model_close(g.m);
}

/* Rows that run, for every patch token, the two experts it did not choose at slot L of
 * PLAIN; the class token (token 0) keeps its own. */
static int32_t *other_experts(const snapshot *plain, const rs_config *c, int B, int l)
{
    size_t T = (size_t)rs_config_tokens(c), k = (size_t)c->top_k;
    int32_t *rows = malloc(sizeof(int32_t) * B * T * k);
    for (size_t n = 0; n < B * T; n++) {
        const int32_t *own = plain->executed[l] + n * k;
        int w = 0;
        for (int e = 0; e < c->num_experts && w < (int)k; e++)
            if (e != own[0] && e != own[1])
                rows[n * k + w++] = e;
        if (n % T == 0)
            rows[n * k] = -1;
    }
    return rows;
}

static double max_diff(const float *a, const float *b, size_t n)
{
    double worst = 0;
    for (size_t i = 0; i < n; i++)
        worst = fmax(worst, fabs(a[i] - b[i]));
    return worst;
}

static void forcing_one_block(void **state)
{
    (void)state;
    golden g = open_golden("token_k2_e4"); /* blocks 0-2, MoE blocks 1 and 2, E 4, k 2, class token */
    const rs_config *c = &g.m->cfg;
    size_t T = (size_t)rs_config_tokens(c), k = (size_t)c->top_k, K = (size_t)c->num_classes;
    size_t TE = T * c->num_experts, TR = T * rs_config_record_k(c);
    rs_forward *f;
    rs_error err;
    assert_int_equal(rs_forward_create(g.m, g.B, 1, &f, &err), 0);
    assert_int_equal(rs_forward_run(f, g.input, g.B, &err), 0);
    snapshot plain = take(f, c, g.B);
    /* Block 1 (slot 0) forced: its router is computed before its experts and stays as it
     * was; what ran is the forced rows (the class token its own); block 2 and the logits move. */
    int32_t *rows = other_experts(&plain, c, g.B, 0);
    const rs_forced first[4] = {{rows, NULL}};
    assert_int_equal(rs_forward_run_forced(f, g.input, g.B, first, &err), 0);
    snapshot s = take(f, c, g.B);
    assert_true(s.forced[0]);
    assert_false(s.forced[1]);
    assert_memory_equal(s.probs[0], plain.probs[0], sizeof(float) * g.B * TE);
    assert_memory_equal(s.top_idx[0], plain.top_idx[0], sizeof(int32_t) * g.B * TR);
    for (size_t n = 0; n < g.B * T; n++)
        assert_memory_equal(s.executed[0] + n * k, n % T == 0 ? plain.executed[0] + n * k : rows + n * k,
                            sizeof(int32_t) * k);
    assert_true(max_diff(s.probs[1], plain.probs[1], g.B * TE) > 1e-3);
    assert_true(max_diff(s.logits, plain.logits, g.B * K) > 1e-3);
    drop(&s, c->num_moe);
    free(rows);
    /* Block 2 (slot 1), the last block, forced alone: block 1 is untouched bit for bit, and
     * the class token, whose final state alone reaches the head, keeps its own experts and
     * attends to no patch after this block: the logits stay (up to the rounding of the
     * class token's row in other expert GEMMs). */
    rows = other_experts(&plain, c, g.B, 1);
    const rs_forced last[4] = {{0}, {rows, NULL}};
    assert_int_equal(rs_forward_run_forced(f, g.input, g.B, last, &err), 0);
    s = take(f, c, g.B);
    assert_memory_equal(s.probs[0], plain.probs[0], sizeof(float) * g.B * TE);
    assert_memory_equal(s.executed[0], plain.executed[0], sizeof(int32_t) * g.B * T * k);
    assert_memory_equal(s.top_idx[1], plain.top_idx[1], sizeof(int32_t) * g.B * TR);
    assert_true(max_diff(s.logits, plain.logits, g.B * K) < 1e-5);
    drop(&s, c->num_moe);
    free(rows);
    drop(&plain, c->num_moe);
    rs_forward_free(f);
    free(g.input);
    rs_model_close(g.m);
}

static void bad_rows_refused(void **state)
{
    (void)state;
    golden g = open_golden("token_k2_e4");
    const rs_config *c = &g.m->cfg;
    size_t n = (size_t)g.B * rs_config_tokens(c) * c->top_k;
    int32_t *rows = malloc(sizeof(int32_t) * n);
    rs_forward *f;
    rs_error err;
    assert_int_equal(rs_forward_create(g.m, g.B, 1, &f, &err), 0);
    const rs_forced forced[4] = {{rows, NULL}};
    const int32_t cases[][2] = {{4, 0}, {1, 1}, {0, -1}, {-2, 0}};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        for (size_t q = 0; q < n; q += 2)
            rows[q] = 0, rows[q + 1] = 1;
        rows[2 * 7] = cases[i][0], rows[2 * 7 + 1] = cases[i][1];
        err.msg[0] = 0;
        assert_int_equal(rs_forward_run_forced(f, g.input, g.B, forced, &err), RS_EINVAL);
        assert_non_null(strstr(err.msg, "block 1"));
    }
    free(rows);
    rs_forward_free(f);
    free(g.input);
    rs_model_close(g.m);
}

int main(void)
{
    golden_dir = tu_dir("RS_GOLDEN_DIR", "tests/golden");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(forced_expert_runs_with_own_gate),
        cmocka_unit_test(k2_forced_pair),
        cmocka_unit_test(k2_forced_run_masks),
        cmocka_unit_test(forced_bypass_capacity),
        cmocka_unit_test(forcing_nothing_or_own_choice_is_plain),
        cmocka_unit_test(k1_forced_across_groups),
        cmocka_unit_test(forcing_one_block),
        cmocka_unit_test(bad_rows_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

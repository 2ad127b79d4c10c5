#include "layers.h"

#include <math.h>
#include <string.h>

#include "half.h"
#include "predict.h"

void rs_layer_embed(const rs_model *m, const rs_group_bufs *g, const float *images, int G, bool normalise)
{
    const rs_config *c = &m->cfg;
    int C = c->channels, P = c->patch_size, H = c->image_h, W = c->image_w;
    int gw = rs_config_grid_w(c), Np = rs_config_patches(c), T = rs_config_tokens(c);
    int D = c->hidden, K = C * P * P, first = T - Np;
    /* im2col: row (image, patch), column (c, py, px) — the order of patch_embed.weight. */
    for (int bp = 0; bp < G * Np; bp++) {
        int b = bp / Np, p = bp % Np, r0 = (p / gw) * P, c0 = (p % gw) * P;
        float *dst = g->patches + (size_t)bp * K;
        for (int ch = 0; ch < C; ch++)
            for (int py = 0; py < P; py++) {
                const float *src = images + (((size_t)b * C + ch) * H + r0 + py) * W + c0;
                float *d = dst + (ch * P + py) * P;
                if (normalise)
                    rs_model_normalize_span(c, ch, src, d, (size_t)P);
                else
                    memcpy(d, src, sizeof(float) * P);
            }
    }
    rs_gemm_bias(g->gemm, G * Np, D, K, g->patches, K, m->patch_w, NULL, K, m->patch_b, false, g->xn, D);
    for (int b = 0; b < G; b++) {
        for (int t = 0; t < T; t++) {
            float *dst = g->x + ((size_t)b * T + t) * D;
            const float *pos = m->pos_embed + (size_t)t * D;
            const float *src = t < first ? m->cls_token : g->xn + ((size_t)b * Np + t - first) * D;
            for (int i = 0; i < D; i++)
                dst[i] = src[i] + pos[i];
        }
    }
}

void rs_layer_attention(const rs_config *c, const rs_group_bufs *g, const rs_block_bufs *bb,
                        const rs_block_weights *w, int G)
{
    int T = rs_config_tokens(c), D = c->hidden, H = c->heads, Dh = D / H, N = G * T;
    float scale = 1.0f / sqrtf((float)Dh);
    rs_layer_norm(g->xn, g->x, w->norm1_w, w->norm1_b, (size_t)N, (size_t)D, c->layer_norm_eps);
    rs_gemm_bias(g->gemm, N, 3 * D, D, g->xn, D, w->qkv_w, w->qkv_h, D, w->qkv_b, false, bb->qkv, 3 * D);
    for (int b = 0; b < G; b++) {
        for (int h = 0; h < H; h++) {
            const float *q = bb->qkv + (size_t)b * T * 3 * D + h * Dh;
            float *a = bb->att + ((size_t)b * H + h) * bb->att_stride;
            rs_gemm_f32(g->gemm, false, true, T, T, Dh, scale, q, 3 * D, q + D, 3 * D, 0.0f, a, T);
            rs_softmax_rows(a, (size_t)T, (size_t)T);
            rs_gemm_f32(g->gemm, false, false, T, Dh, T, 1.0f, a, T, q + 2 * D, 3 * D, 0.0f,
                        g->attn + (size_t)b * T * D + h * Dh, D);
        }
    }
    rs_gemm_bias(g->gemm, N, D, D, g->attn, D, w->proj_w, w->proj_h, D, w->proj_b, true, g->x, D);
}

void rs_layer_dense(const rs_config *c, const rs_group_bufs *g, const rs_block_bufs *bb,
                    const rs_block_weights *w, int N)
{
    int D = c->hidden, M = c->mlp_dim;
    float *h = bb->hpre ? bb->hpre : g->hidden;
    rs_gemm_bias(g->gemm, N, M, D, g->xn, D, w->fc1_w, w->fc1_h, D, w->fc1_b, false, h, M);
    if (bb->hpre)
        memcpy(g->hidden, bb->hpre, sizeof(float) * (size_t)N * M);
    rs_apply_gelu(c, g->hidden, (size_t)N * M);
    rs_gemm_bias(g->gemm, N, D, M, g->hidden, M, w->fc2_w, w->fc2_h, M, w->fc2_b, true, g->x, D);
}

/* Whether choice S of token N runs: a forced choice as forced_run says (all without it),
 * any other as dispatch kept it (all without a capacity). */
static bool choice_runs(const rs_block_bufs *bb, int n, int s, int R, int k)
{
    if (bb->forced && bb->forced[(size_t)n * k] >= 0)
        return !bb->forced_run || bb->forced_run[(size_t)n * k + s];
    return !bb->kept || bb->kept[(size_t)n * R + s];
}

/* Counting sort of the kept (token, slot) pairs by expert, tokens ascending inside a group. */
static void route(const rs_config *c, const rs_block_bufs *bb, int N)
{
    int E = c->num_experts, k = c->top_k, R = rs_config_record_k(c);
    int32_t *start = bb->route_start, *cursor = bb->route_start + E + 1;
    memset(start, 0, sizeof *start * (size_t)(E + 1));
    for (int n = 0; n < N; n++) {
        const int32_t *ids = rs_moe_choices(bb, n, R, k);
        for (int s = 0; s < k; s++)
            if (choice_runs(bb, n, s, R, k))
                start[ids[s] + 1]++;
    }
    for (int e = 0; e < E; e++)
        start[e + 1] += start[e];
    memcpy(cursor, start, sizeof *cursor * (size_t)E);
    for (int n = 0; n < N; n++) {
        const int32_t *ids = rs_moe_choices(bb, n, R, k);
        for (int s = 0; s < k; s++)
            if (choice_runs(bb, n, s, R, k))
                bb->route_rows[cursor[ids[s]]++] = n;
    }
}

/* X (N) rounded in place to bfloat16 values (dispatch.h's bf16). */
static void round_bf16(float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        x[i] = rs_float_round_bf16(x[i]);
}

/* Forced choices bypass this group's capacity: a forced token's ranks below k read kept as
 * its choices run. */
static void keep_forced(const rs_config *c, const rs_block_bufs *bb, int N)
{
    int k = c->top_k, R = rs_config_record_k(c);
    for (int n = 0; n < N; n++)
        for (int s = 0; bb->forced[(size_t)n * k] >= 0 && s < k; s++)
            bb->kept[(size_t)n * R + s] = choice_runs(bb, n, s, R, k);
}

/* The kept mask of N rows in dispatch groups of S rows, each dispatched on its own exactly
 * as when it runs alone: its own capacity (from its own rows, the last group's maybe fewer),
 * priority order and places. route_start serves as the fill counters until route() sorts. */
static void dispatch_groups(const rs_config *c, const rs_block_bufs *bb, int N, const rs_dispatch *dispatch, int S,
                            int32_t *order)
{
    int E = c->num_experts, R = rs_config_record_k(c);
    for (int s0 = 0; s0 < N; s0 += S) {
        int rows = N - s0 < S ? N - s0 : S;
        size_t at = (size_t)s0 * R;
        rs_dispatch_assign(bb->top_idx + at, bb->top_gate + at, rows, R, c->top_k, E,
                           rs_dispatch_capacity(rows, c->top_k, E, dispatch->capacity_factor), dispatch->bpr, order,
                           bb->route_start, bb->kept + at);
    }
}

void rs_layer_moe(const rs_config *c, const rs_group_bufs *g, const rs_block_bufs *bb, const rs_block_weights *w,
                  int N, const rs_dispatch *dispatch, int group_rows, int32_t *order)
{
    int D = c->hidden, M = c->mlp_dim, E = c->num_experts, R = rs_config_record_k(c);
    bool bf16 = dispatch && dispatch->bf16;
    float *probs = bb->probs;
    rs_gemm_bias(g->gemm, N, E, D, g->xn, D, w->router_w, NULL, D, w->router_b, false, probs, E);
    rs_softmax_rows(probs, (size_t)N, (size_t)E);
    for (int n = 0; n < N; n++)
        rs_top_experts(probs + (size_t)n * E, E, R, bb->top_idx + (size_t)n * R, bb->top_gate + (size_t)n * R);
    if (dispatch && bb->kept)
        dispatch_groups(c, bb, N, dispatch, group_rows, order);
    if (bb->forced && bb->kept)
        keep_forced(c, bb, N);
    route(c, bb, N);
    /* Experts in increasing index order, so every token sums its experts in that order. */
    const int32_t *start = bb->route_start;
    for (int e = 0; e < E; e++) {
        int count = start[e + 1] - start[e];
        if (count == 0)
            continue;
        const int32_t *rows = bb->route_rows + start[e];
        float *h = bb->hpre ? bb->hpre + (size_t)start[e] * M : g->hidden;
        float *y = bb->keep_y ? bb->y + (size_t)start[e] * D : bb->y;
        for (int i = 0; i < count; i++)
            memcpy(g->gathered + (size_t)i * D, g->xn + (size_t)rows[i] * D, sizeof(float) * D);
        if (bf16) /* vmoe's Bfloat16Dispatcher: the dispatched rows travel as bfloat16 */
            round_bf16(g->gathered, (size_t)count * D);
        rs_gemm_bias(g->gemm, count, M, D, g->gathered, D, w->efc1_w + (size_t)e * M * D,
                     w->efc1_h ? w->efc1_h + (size_t)e * M * D : NULL, D, w->efc1_b + (size_t)e * M,
                     false, h, M);
        if (bb->hpre)
            memcpy(g->hidden, h, sizeof(float) * (size_t)count * M);
        rs_apply_gelu(c, g->hidden, (size_t)count * M);
        rs_gemm_bias(g->gemm, count, D, M, g->hidden, M, w->efc2_w + (size_t)e * D * M,
                     w->efc2_h ? w->efc2_h + (size_t)e * D * M : NULL, M, w->efc2_b + (size_t)e * D, false,
                     y, D);
        if (bf16) /* and so do the expert outputs the combine reads (the gradient's tape keeps them so) */
            round_bf16(y, (size_t)count * D);
        for (int i = 0; i < count; i++) {
            float gate = probs[(size_t)rows[i] * E + e];
            float *dst = g->x + (size_t)rows[i] * D;
            const float *yi = y + (size_t)i * D;
            for (int j = 0; j < D; j++)
                dst[j] += gate * yi[j];
        }
    }
}

void rs_layer_head(const rs_model *m, const rs_group_bufs *g, int G, float *logits)
{
    const rs_config *c = &m->cfg;
    int T = rs_config_tokens(c), D = c->hidden, K = c->num_classes;
    if (c->classifier == RS_CLASSIFIER_TOKEN) {
        for (int b = 0; b < G; b++)
            rs_layer_norm(g->pooled + (size_t)b * D, g->x + (size_t)b * T * D, m->norm_w, m->norm_b, 1, (size_t)D,
                          c->layer_norm_eps);
    } else {
        rs_layer_norm(g->xn, g->x, m->norm_w, m->norm_b, (size_t)G * T, (size_t)D, c->layer_norm_eps);
        for (int b = 0; b < G; b++) {
            float *dst = g->pooled + (size_t)b * D;
            memset(dst, 0, sizeof(float) * D);
            for (int t = 0; t < T; t++)
                for (int i = 0; i < D; i++)
                    dst[i] += g->xn[((size_t)b * T + t) * D + i];
            for (int i = 0; i < D; i++)
                dst[i] /= (float)T;
        }
    }
    const float *feat = g->pooled;
    if (m->pre_logits_w) {
        rs_gemm_bias(g->gemm, G, D, D, g->pooled, D, m->pre_logits_w, NULL, D, m->pre_logits_b, false, g->pre, D);
        for (size_t i = 0; i < (size_t)G * D; i++)
            g->pre[i] = tanhf(g->pre[i]);
        feat = g->pre;
    }
    rs_gemm_bias(g->gemm, G, K, D, feat, D, m->head_w, NULL, D, m->head_b, false, logits, K);
}

#include "forward.h"

#include <cblas.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"
#include "layers.h"

#ifdef _OPENMP
#include <omp.h>
#endif

/* One thread's scratch space for one group of up to G images, N = G * T rows. */
typedef struct workspace {
    float *x;          /* (N,D) residual stream */
    float *xn;         /* (N,D) normalised input of the current sub-block */
    float *qkv;        /* (N,3D) */
    float *attn;       /* (N,D) attention output before the projection */
    float *hidden;     /* (N,M) MLP / expert hidden layer */
    float *gathered;   /* (N,D) tokens routed to one expert */
    float *expert_out; /* (N,D) */
    float *scores;     /* (T,T) one head's attention scores */
    float *patches;    /* (G*Np, C*P*P) im2col of the group */
    float *pooled;     /* (G,D) */
    float *pre;        /* (G,D) pre_logits output */
    int32_t *route_rows;  /* (N*top_k) token rows grouped by expert */
    int32_t *route_start; /* (E+1) start of each expert's group, then (E) fill cursors */
} workspace;

struct rs_forward {
    const rs_model *m;
    int max_batch, threads, group;
    workspace *ws;     /* one per thread, owned */
    rs_forward_out out;
};

void rs_blas_set_threads(int threads)
{
    openblas_set_num_threads(threads);
}

/* x (G,T,D) = [cls] + patches @ W^T + b, + pos_embed. */
static void embed(const rs_model *m, workspace *ws, const float *images, int G)
{
    const rs_config *c = &m->cfg;
    int C = c->channels, P = c->patch_size, H = c->image_h, W = c->image_w;
    int gw = rs_config_grid_w(c), Np = rs_config_patches(c), T = rs_config_tokens(c);
    int D = c->hidden, K = C * P * P, first = T - Np;
    /* im2col: row (image, patch), column (c, py, px) — the order of patch_embed.weight. */
    for (int bp = 0; bp < G * Np; bp++) {
        int b = bp / Np, p = bp % Np, r0 = (p / gw) * P, c0 = (p % gw) * P;
        float *dst = ws->patches + (size_t)bp * K;
        for (int ch = 0; ch < C; ch++)
            for (int py = 0; py < P; py++)
                memcpy(dst + (ch * P + py) * P, images + (((size_t)b * C + ch) * H + r0 + py) * W + c0,
                       sizeof(float) * P);
    }
    rs_gemm_bias(G * Np, D, K, ws->patches, K, m->patch_w, K, m->patch_b, false, ws->xn, D);
    for (int b = 0; b < G; b++) {
        for (int t = 0; t < T; t++) {
            float *dst = ws->x + ((size_t)b * T + t) * D;
            const float *pos = m->pos_embed + (size_t)t * D;
            const float *src = t < first ? m->cls_token : ws->xn + ((size_t)b * Np + t - first) * D;
            for (int i = 0; i < D; i++)
                dst[i] = src[i] + pos[i];
        }
    }
}

/* x += proj(MHSA(norm1(x))). */
static void attention(const rs_config *c, workspace *ws, const rs_block_weights *w, int G)
{
    int T = rs_config_tokens(c), D = c->hidden, H = c->heads, Dh = D / H, N = G * T;
    float scale = 1.0f / sqrtf((float)Dh);
    rs_layer_norm(ws->xn, ws->x, w->norm1_w, w->norm1_b, (size_t)N, (size_t)D, c->layer_norm_eps);
    rs_gemm_bias(N, 3 * D, D, ws->xn, D, w->qkv_w, D, w->qkv_b, false, ws->qkv, 3 * D);
    for (int b = 0; b < G; b++) {
        for (int h = 0; h < H; h++) {
            const float *q = ws->qkv + (size_t)b * T * 3 * D + h * Dh;
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, Dh, scale, q, 3 * D, q + D, 3 * D, 0.0f,
                        ws->scores, T);
            rs_softmax_rows(ws->scores, (size_t)T, (size_t)T);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, Dh, T, 1.0f, ws->scores, T, q + 2 * D,
                        3 * D, 0.0f, ws->attn + (size_t)b * T * D + h * Dh, D);
        }
    }
    rs_gemm_bias(N, D, D, ws->attn, D, w->proj_w, D, w->proj_b, true, ws->x, D);
}

/* x += fc2(gelu(fc1(norm2(x)))), xn already holds norm2(x). */
static void dense_mlp(const rs_config *c, workspace *ws, const rs_block_weights *w, int N)
{
    int D = c->hidden, M = c->mlp_dim;
    rs_gemm_bias(N, M, D, ws->xn, D, w->fc1_w, D, w->fc1_b, false, ws->hidden, M);
    rs_apply_gelu(c, ws->hidden, (size_t)N * M);
    rs_gemm_bias(N, D, M, ws->hidden, M, w->fc2_w, M, w->fc2_b, true, ws->x, D);
}

/* Routes norm2(x) (in xn) and adds each token's top_k expert outputs, weighted by their
 * probabilities, to x. PROBS (N,E), TOP_IDX and TOP_GATE (N,R) are this group's rows of
 * the caller's output. */
static void moe(const rs_config *c, workspace *ws, const rs_block_weights *w, int N, float *probs,
                int32_t *top_idx, float *top_gate)
{
    int D = c->hidden, M = c->mlp_dim, E = c->num_experts, k = c->top_k, R = rs_config_record_k(c);
    rs_gemm_bias(N, E, D, ws->xn, D, w->router_w, D, w->router_b, false, probs, E);
    rs_softmax_rows(probs, (size_t)N, (size_t)E);
    for (int n = 0; n < N; n++)
        rs_top_experts(probs + (size_t)n * E, E, R, top_idx + (size_t)n * R, top_gate + (size_t)n * R);

    /* Counting sort of (token, slot) pairs by expert, tokens ascending inside a group. */
    int32_t *start = ws->route_start, *cursor = ws->route_start + E + 1;
    memset(start, 0, sizeof *start * (size_t)(E + 1));
    for (int n = 0; n < N; n++)
        for (int s = 0; s < k; s++)
            start[top_idx[(size_t)n * R + s] + 1]++;
    for (int e = 0; e < E; e++)
        start[e + 1] += start[e];
    memcpy(cursor, start, sizeof *cursor * (size_t)E);
    for (int n = 0; n < N; n++)
        for (int s = 0; s < k; s++)
            ws->route_rows[cursor[top_idx[(size_t)n * R + s]]++] = n;

    /* Experts in increasing index order, so every token sums its experts in that order. */
    for (int e = 0; e < E; e++) {
        int count = start[e + 1] - start[e];
        if (count == 0)
            continue;
        const int32_t *rows = ws->route_rows + start[e];
        for (int i = 0; i < count; i++)
            memcpy(ws->gathered + (size_t)i * D, ws->xn + (size_t)rows[i] * D, sizeof(float) * D);
        rs_gemm_bias(count, M, D, ws->gathered, D, w->efc1_w + (size_t)e * M * D, D, w->efc1_b + (size_t)e * M,
                  false, ws->hidden, M);
        rs_apply_gelu(c, ws->hidden, (size_t)count * M);
        rs_gemm_bias(count, D, M, ws->hidden, M, w->efc2_w + (size_t)e * D * M, M, w->efc2_b + (size_t)e * D, false,
                  ws->expert_out, D);
        for (int i = 0; i < count; i++) {
            float g = probs[(size_t)rows[i] * E + e];
            float *dst = ws->x + (size_t)rows[i] * D;
            const float *y = ws->expert_out + (size_t)i * D;
            for (int j = 0; j < D; j++)
                dst[j] += g * y[j];
        }
    }
}

/* LOGITS (G,K) from the final hidden states. */
static void head(const rs_model *m, workspace *ws, int G, float *logits)
{
    const rs_config *c = &m->cfg;
    int T = rs_config_tokens(c), D = c->hidden, K = c->num_classes;
    if (c->classifier == RS_CLASSIFIER_TOKEN) {
        for (int b = 0; b < G; b++)
            rs_layer_norm(ws->pooled + (size_t)b * D, ws->x + (size_t)b * T * D, m->norm_w, m->norm_b, 1,
                          (size_t)D, c->layer_norm_eps);
    } else {
        rs_layer_norm(ws->xn, ws->x, m->norm_w, m->norm_b, (size_t)G * T, (size_t)D, c->layer_norm_eps);
        for (int b = 0; b < G; b++) {
            float *dst = ws->pooled + (size_t)b * D;
            memset(dst, 0, sizeof(float) * D);
            for (int t = 0; t < T; t++)
                for (int i = 0; i < D; i++)
                    dst[i] += ws->xn[((size_t)b * T + t) * D + i];
            for (int i = 0; i < D; i++)
                dst[i] /= (float)T;
        }
    }
    const float *feat = ws->pooled;
    if (m->pre_logits_w) {
        rs_gemm_bias(G, D, D, ws->pooled, D, m->pre_logits_w, D, m->pre_logits_b, false, ws->pre, D);
        for (size_t i = 0; i < (size_t)G * D; i++)
            ws->pre[i] = tanhf(ws->pre[i]);
        feat = ws->pre;
    }
    rs_gemm_bias(G, K, D, feat, D, m->head_w, D, m->head_b, false, logits, K);
}

/* The whole network for images FIRST .. FIRST+G-1 of the batch. */
static void forward_group(rs_forward *f, workspace *ws, const float *images, int first, int G)
{
    const rs_model *m = f->m;
    const rs_config *c = &m->cfg;
    size_t T = (size_t)rs_config_tokens(c), E = (size_t)c->num_experts, R = (size_t)rs_config_record_k(c);
    size_t img = (size_t)c->channels * c->image_h * c->image_w;
    int N = G * (int)T;
    embed(m, ws, images + first * img, G);
    for (int i = 0; i < c->depth; i++) {
        const rs_block_weights *w = &m->blocks[i];
        attention(c, ws, w, G);
        rs_layer_norm(ws->xn, ws->x, w->norm2_w, w->norm2_b, (size_t)N, (size_t)c->hidden, c->layer_norm_eps);
        if (w->moe_slot < 0) {
            dense_mlp(c, ws, w, N);
        } else {
            rs_moe_routing *r = &f->out.moe[w->moe_slot];
            size_t row0 = (size_t)first * T;
            moe(c, ws, w, N, r->probs + row0 * E, r->top_idx + row0 * R, r->top_gate + row0 * R);
        }
    }
    head(m, ws, G, f->out.logits + (size_t)first * c->num_classes);
}

int rs_forward_run(rs_forward *f, const float *images, int batch, rs_error *err)
{
    if (batch < 1 || batch > f->max_batch)
        return rs_error_set(err, RS_EINVAL, "forward: batch %d outside [1, %d]", batch, f->max_batch);
    int groups = (batch + f->group - 1) / f->group;
    /* Dynamic: groups cost the same, but a thread may lose its core for a while. */
    #pragma omp parallel for num_threads(f->threads) schedule(dynamic, 1) if(f->threads > 1 && groups > 1)
    for (int g = 0; g < groups; g++) {
        int tid = 0;
#ifdef _OPENMP
        tid = omp_get_thread_num();
#endif
        int first = g * f->group;
        int n = batch - first < f->group ? batch - first : f->group;
        forward_group(f, &f->ws[tid], images, first, n);
    }
    f->out.batch = batch;
    return 0;
}

const rs_forward_out *rs_forward_result(const rs_forward *f)
{
    return &f->out;
}

int rs_forward_group_size(const rs_forward *f)
{
    return f->group;
}

static void free_workspace(workspace *ws)
{
    float *bufs[] = {ws->x, ws->xn, ws->qkv, ws->attn, ws->hidden, ws->gathered, ws->expert_out,
                     ws->scores, ws->patches, ws->pooled, ws->pre};
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++)
        free(bufs[i]);
    free(ws->route_rows);
    free(ws->route_start);
}

static bool alloc_workspace(workspace *ws, const rs_config *c, int G)
{
    size_t T = (size_t)rs_config_tokens(c), N = (size_t)G * T;
    size_t D = (size_t)c->hidden, M = (size_t)c->mlp_dim, E = (size_t)c->num_experts;
    size_t img = (size_t)c->channels * c->image_h * c->image_w;
    return (ws->x = malloc(sizeof(float) * N * D)) && (ws->xn = malloc(sizeof(float) * N * D)) &&
           (ws->qkv = malloc(sizeof(float) * N * 3 * D)) && (ws->attn = malloc(sizeof(float) * N * D)) &&
           (ws->hidden = malloc(sizeof(float) * N * M)) && (ws->gathered = malloc(sizeof(float) * N * D)) &&
           (ws->expert_out = malloc(sizeof(float) * N * D)) && (ws->scores = malloc(sizeof(float) * T * T)) &&
           (ws->patches = malloc(sizeof(float) * (size_t)G * img)) &&
           (ws->pooled = malloc(sizeof(float) * (size_t)G * D)) && (ws->pre = malloc(sizeof(float) * (size_t)G * D)) &&
           (ws->route_rows = malloc(sizeof(int32_t) * N * (size_t)c->top_k)) &&
           (ws->route_start = malloc(sizeof(int32_t) * (2 * E + 1)));
}

void rs_forward_free(rs_forward *f)
{
    if (!f)
        return;
    for (int t = 0; f->ws && t < f->threads; t++)
        free_workspace(&f->ws[t]);
    free(f->ws);
    for (int s = 0; f->out.moe && s < f->m->cfg.num_moe; s++) {
        free(f->out.moe[s].probs);
        free(f->out.moe[s].top_idx);
        free(f->out.moe[s].top_gate);
    }
    free(f->out.moe);
    free(f->out.logits);
    free(f);
}

int rs_forward_create(const rs_model *model, int max_batch, int threads, rs_forward **out, rs_error *err)
{
    *out = NULL;
    if (max_batch < 1 || threads < 1)
        return rs_error_set(err, RS_EINVAL, "forward: max_batch %d and threads %d must be >= 1", max_batch,
                            threads);
    const rs_config *c = &model->cfg;
    size_t T = (size_t)rs_config_tokens(c), N = (size_t)max_batch * T;
    size_t E = (size_t)c->num_experts, R = (size_t)rs_config_record_k(c);
    int group = rs_group_images(c);
    rs_forward *f = calloc(1, sizeof *f);
    if (!f)
        return rs_error_set(err, RS_ENOMEM, "forward: out of memory");
    f->m = model;
    f->max_batch = max_batch;
    /* More threads than groups would only hold memory. */
    int groups = (max_batch + group - 1) / group;
    f->threads = threads < groups ? threads : groups;
    f->group = group;
    f->out.tokens = (int)T;
    f->out.record_k = (int)R;
    const char *path = rs_safetensors_path(model->file);
    bool ok = (f->ws = calloc((size_t)f->threads, sizeof *f->ws)) != NULL;
    for (int t = 0; ok && t < f->threads; t++)
        ok = alloc_workspace(&f->ws[t], c, group);
    if (!ok) {
        /* The workspace does not grow with the batch: its size comes from the model (the
         * T x T attention scores, the group's activations), so say so. */
        size_t D = (size_t)c->hidden, M = (size_t)c->mlp_dim, GT = (size_t)group * T;
        size_t mb = (sizeof(float) * (GT * (6 * D + M) + T * T) >> 20) + 1;
        rs_forward_free(f);
        return rs_error_set(err, RS_ENOMEM,
                            "%s: out of memory for the forward pass's workspace (about %zu MB per thread for "
                            "%zu tokens: %zu x %zu attention scores, %d image%s per group); fewer --threads need less",
                            path, mb, T, T, T, group, group == 1 ? "" : "s");
    }
    ok = (f->out.logits = malloc(sizeof(float) * (size_t)max_batch * c->num_classes)) &&
         (f->out.moe = calloc((size_t)(c->num_moe ? c->num_moe : 1), sizeof *f->out.moe));
    for (int s = 0; ok && s < c->num_moe; s++) {
        rs_moe_routing *r = &f->out.moe[s];
        r->block = c->moe_layers[s];
        ok = (r->probs = malloc(sizeof(float) * N * E)) && (r->top_idx = malloc(sizeof(int32_t) * N * R)) &&
             (r->top_gate = malloc(sizeof(float) * N * R));
    }
    if (!ok) {
        size_t mb = ((sizeof(float) * N * (E + 2 * R) * (size_t)c->num_moe) >> 20) + 1;
        rs_forward_free(f);
        return rs_error_set(err, RS_ENOMEM,
                            "%s: out of memory for the routing of a batch of %d images (about %zu MB); "
                            "a smaller --batch needs less", path, max_batch, mb);
    }
    /* Each of our threads runs whole groups; OpenBLAS itself must stay on the calling
     * thread, or two thread pools would fight over the cores. */
    rs_blas_set_threads(1);
    *out = f;
    return 0;
}

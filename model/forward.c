#include "forward.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"

#ifdef _OPENMP
#include <omp.h>
#endif

struct rs_forward {
    const rs_model *m;
    int max_batch, threads;
    /* Activations, N = max_batch * T rows; all owned. */
    float *x;        /* (N,D) residual stream */
    float *xn;       /* (N,D) normalised input of the current sub-block */
    float *qkv;      /* (N,3D) */
    float *attn;     /* (N,D) attention output before the projection */
    float *hidden;   /* (N,M) MLP / expert hidden layer */
    float *gathered; /* (N,D) tokens routed to one expert */
    float *expert_out; /* (N,D) */
    float *scores;   /* (threads,T,T) attention scores, one slice per thread */
    float *patches;  /* (B*Np, C*P*P) im2col of the batch */
    float *pooled;   /* (B,D) */
    float *pre;      /* (B,D) pre_logits output */
    int32_t *route_rows;  /* (N*top_k) token rows grouped by expert */
    int32_t *route_start; /* (E+1) start of each expert's group, then (E) fill cursors */
    rs_forward_out out;
};

void rs_blas_set_threads(int threads)
{
    openblas_set_num_threads(threads);
}

/* The rows [lo, hi) that thread T of NT takes out of ROWS: contiguous, static. */
static void thread_rows(int rows, int t, int nt, size_t *lo, size_t *hi)
{
    *lo = (size_t)rows * t / nt;
    *hi = (size_t)rows * (t + 1) / nt;
}

/* C (m,n) = A (m,k) * W (n,k)^T + beta * C: every dense layer, weights stored (out, in).
 * The rows of A are split between our threads, each calling a single-threaded
 * cblas_sgemm on its block: one thread pool (OpenMP) instead of two that would spin
 * against each other on a small machine, and no synchronisation inside a product. */
static void gemm_nt(const rs_forward *f, int m, int n, int k, const float *a, int lda, const float *w,
                    int ldw, float beta, float *c, int ldc)
{
    /* Below this many rows per thread the split costs more than it gains. */
    const int min_rows = 32;
    int nt = f->threads < m / min_rows ? f->threads : m / min_rows;
    if (nt < 1)
        nt = 1;
    #pragma omp parallel for num_threads(nt) schedule(static) if(nt > 1)
    for (int t = 0; t < nt; t++) {
        size_t lo, hi;
        thread_rows(m, t, nt, &lo, &hi);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)(hi - lo), n, k, 1.0f, a + lo * lda, lda, w,
                    ldw, beta, c + lo * ldc, ldc);
    }
}

static void layer_norm(rs_forward *f, float *y, const float *x, const float *w, const float *b, int rows)
{
    const rs_config *c = &f->m->cfg;
    size_t D = (size_t)c->hidden;
    #pragma omp parallel for num_threads(f->threads) schedule(static) if(f->threads > 1)
    for (int t = 0; t < f->threads; t++) {
        size_t lo, hi;
        thread_rows(rows, t, f->threads, &lo, &hi);
        rs_layer_norm(y + lo * D, x + lo * D, w, b, hi - lo, D, c->layer_norm_eps);
    }
}

static void bias_gelu(rs_forward *f, float *h, const float *bias, int rows)
{
    const rs_config *c = &f->m->cfg;
    size_t M = (size_t)c->mlp_dim;
    #pragma omp parallel for num_threads(f->threads) schedule(static) if(f->threads > 1)
    for (int t = 0; t < f->threads; t++) {
        size_t lo, hi;
        thread_rows(rows, t, f->threads, &lo, &hi);
        if (c->gelu == RS_GELU_ERF)
            rs_bias_gelu_erf(h + lo * M, bias, hi - lo, M);
        else
            rs_bias_gelu_tanh(h + lo * M, bias, hi - lo, M);
    }
}

static void add_bias(rs_forward *f, float *x, const float *bias, int rows, int n)
{
    #pragma omp parallel for num_threads(f->threads) schedule(static) if(f->threads > 1)
    for (int t = 0; t < f->threads; t++) {
        size_t lo, hi;
        thread_rows(rows, t, f->threads, &lo, &hi);
        rs_add_bias(x + lo * (size_t)n, bias, hi - lo, (size_t)n);
    }
}

static void softmax(rs_forward *f, float *x, int rows, int n)
{
    #pragma omp parallel for num_threads(f->threads) schedule(static) if(f->threads > 1)
    for (int t = 0; t < f->threads; t++) {
        size_t lo, hi;
        thread_rows(rows, t, f->threads, &lo, &hi);
        rs_softmax_rows(x + lo * (size_t)n, hi - lo, (size_t)n);
    }
}

/* x (B,T,D) = [cls] + patches @ W^T + b, + pos_embed. */
static void embed(rs_forward *f, const float *images, int B)
{
    const rs_model *m = f->m;
    const rs_config *c = &m->cfg;
    int C = c->channels, P = c->patch_size, H = c->image_h, W = c->image_w;
    int gw = rs_config_grid_w(c), Np = rs_config_patches(c), T = rs_config_tokens(c);
    int D = c->hidden, K = C * P * P, first = T - Np;
    /* im2col: row (b, patch), column (c, py, px) — the order of patch_embed.weight. */
    #pragma omp parallel for num_threads(f->threads) schedule(static) if(f->threads > 1)
    for (int bp = 0; bp < B * Np; bp++) {
        int b = bp / Np, p = bp % Np, r0 = (p / gw) * P, c0 = (p % gw) * P;
        float *dst = f->patches + (size_t)bp * K;
        for (int ch = 0; ch < C; ch++)
            for (int py = 0; py < P; py++)
                memcpy(dst + (ch * P + py) * P,
                       images + (((size_t)b * C + ch) * H + r0 + py) * W + c0, sizeof(float) * P);
    }
    gemm_nt(f, B * Np, D, K, f->patches, K, m->patch_w, K, 0.0f, f->xn, D);
    #pragma omp parallel for num_threads(f->threads) schedule(static) if(f->threads > 1)
    for (int b = 0; b < B; b++) {
        for (int t = 0; t < T; t++) {
            float *dst = f->x + ((size_t)b * T + t) * D;
            const float *pos = m->pos_embed + (size_t)t * D;
            if (t < first) {
                for (int i = 0; i < D; i++)
                    dst[i] = m->cls_token[i] + pos[i];
            } else {
                const float *src = f->xn + ((size_t)b * Np + t - first) * D;
                for (int i = 0; i < D; i++)
                    dst[i] = src[i] + m->patch_b[i] + pos[i];
            }
        }
    }
}

/* x += proj(MHSA(norm1(x))). */
static void attention(rs_forward *f, const rs_block_weights *w, int B)
{
    const rs_config *c = &f->m->cfg;
    int T = rs_config_tokens(c), D = c->hidden, H = c->heads, Dh = D / H, N = B * T;
    float scale = 1.0f / sqrtf((float)Dh);
    layer_norm(f, f->xn, f->x, w->norm1_w, w->norm1_b, N);
    gemm_nt(f, N, 3 * D, D, f->xn, D, w->qkv_w, D, 0.0f, f->qkv, 3 * D);
    add_bias(f, f->qkv, w->qkv_b, N, 3 * D);
    /* One (T,T) score matrix per (image, head); the products are small, so OpenBLAS runs
     * each on the calling thread and we spread the pairs over our threads. */
    #pragma omp parallel for num_threads(f->threads) schedule(static) if(f->threads > 1)
    for (int bh = 0; bh < B * H; bh++) {
        int b = bh / H, h = bh % H, tid = 0;
#ifdef _OPENMP
        tid = omp_get_thread_num();
#endif
        float *s = f->scores + (size_t)tid * T * T;
        const float *q = f->qkv + (size_t)b * T * 3 * D + h * Dh;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, Dh, scale, q, 3 * D, q + D, 3 * D,
                    0.0f, s, T);
        rs_softmax_rows(s, (size_t)T, (size_t)T);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, Dh, T, 1.0f, s, T, q + 2 * D, 3 * D,
                    0.0f, f->attn + (size_t)b * T * D + h * Dh, D);
    }
    add_bias(f, f->x, w->proj_b, N, D);
    gemm_nt(f, N, D, D, f->attn, D, w->proj_w, D, 1.0f, f->x, D);
}

/* x += fc2(gelu(fc1(norm2(x)))), xn already holds norm2(x). */
static void dense_mlp(rs_forward *f, const rs_block_weights *w, int N)
{
    const rs_config *c = &f->m->cfg;
    int D = c->hidden, M = c->mlp_dim;
    gemm_nt(f, N, M, D, f->xn, D, w->fc1_w, D, 0.0f, f->hidden, M);
    bias_gelu(f, f->hidden, w->fc1_b, N);
    add_bias(f, f->x, w->fc2_b, N, D);
    gemm_nt(f, N, D, M, f->hidden, M, w->fc2_w, M, 1.0f, f->x, D);
}

/* Top R experts of one token by decreasing probability; a strict '>' while scanning
 * upwards keeps the lower index on ties. R is small (<= E), so selection beats sorting. */
static void top_experts(const float *p, int E, int R, int32_t *idx, float *gate)
{
    for (int r = 0; r < R; r++) {
        int best = -1;
        for (int e = 0; e < E; e++) {
            int taken = 0;
            for (int q = 0; q < r; q++)
                taken |= idx[q] == e;
            if (!taken && (best < 0 || p[e] > p[best]))
                best = e;
        }
        idx[r] = best;
        gate[r] = p[best];
    }
}

/* Routes norm2(x) (in xn) and adds each token's top_k expert outputs, weighted by their
 * probabilities, to x. Records the full softmax and the top R into ROUTING. */
static void moe(rs_forward *f, const rs_block_weights *w, int N, rs_moe_routing *routing)
{
    const rs_config *c = &f->m->cfg;
    int D = c->hidden, M = c->mlp_dim, E = c->num_experts, k = c->top_k, R = rs_config_record_k(c);
    float *probs = routing->probs;
    gemm_nt(f, N, E, D, f->xn, D, w->router_w, D, 0.0f, probs, E);
    if (w->router_b)
        add_bias(f, probs, w->router_b, N, E);
    softmax(f, probs, N, E);
    #pragma omp parallel for num_threads(f->threads) schedule(static) if(f->threads > 1)
    for (int n = 0; n < N; n++)
        top_experts(probs + (size_t)n * E, E, R, routing->top_idx + (size_t)n * R,
                    routing->top_gate + (size_t)n * R);

    /* Counting sort of (token, slot) pairs by expert, tokens ascending inside a group. */
    int32_t *start = f->route_start;
    memset(start, 0, sizeof *start * (size_t)(E + 1));
    for (int n = 0; n < N; n++)
        for (int s = 0; s < k; s++)
            start[routing->top_idx[(size_t)n * R + s] + 1]++;
    for (int e = 0; e < E; e++)
        start[e + 1] += start[e];
    int32_t *cursor = start + E + 1;
    memcpy(cursor, start, sizeof *cursor * (size_t)E);
    for (int n = 0; n < N; n++)
        for (int s = 0; s < k; s++)
            f->route_rows[cursor[routing->top_idx[(size_t)n * R + s]]++] = n;

    for (int e = 0; e < E; e++) {
        int count = start[e + 1] - start[e];
        if (count == 0)
            continue;
        const int32_t *rows = f->route_rows + start[e];
        #pragma omp parallel for num_threads(f->threads) schedule(static) if(f->threads > 1)
        for (int i = 0; i < count; i++)
            memcpy(f->gathered + (size_t)i * D, f->xn + (size_t)rows[i] * D, sizeof(float) * D);
        gemm_nt(f, count, M, D, f->gathered, D, w->efc1_w + (size_t)e * M * D, D, 0.0f, f->hidden, M);
        bias_gelu(f, f->hidden, w->efc1_b + (size_t)e * M, count);
        gemm_nt(f, count, D, M, f->hidden, M, w->efc2_w + (size_t)e * D * M, M, 0.0f, f->expert_out, D);
        const float *b2 = w->efc2_b + (size_t)e * D;
        #pragma omp parallel for num_threads(f->threads) schedule(static) if(f->threads > 1)
        for (int i = 0; i < count; i++) {
            float g = probs[(size_t)rows[i] * E + e];
            float *dst = f->x + (size_t)rows[i] * D;
            const float *y = f->expert_out + (size_t)i * D;
            for (int j = 0; j < D; j++)
                dst[j] += g * (y[j] + b2[j]);
        }
    }
}

/* logits (B,K) from the final hidden states. */
static void head(rs_forward *f, int B)
{
    const rs_model *m = f->m;
    const rs_config *c = &m->cfg;
    int T = rs_config_tokens(c), D = c->hidden, K = c->num_classes;
    if (c->classifier == RS_CLASSIFIER_TOKEN) {
        for (int b = 0; b < B; b++)
            rs_layer_norm(f->pooled + (size_t)b * D, f->x + (size_t)b * T * D, m->norm_w, m->norm_b, 1,
                          (size_t)D, c->layer_norm_eps);
    } else {
        layer_norm(f, f->xn, f->x, m->norm_w, m->norm_b, B * T);
        for (int b = 0; b < B; b++) {
            float *dst = f->pooled + (size_t)b * D;
            memset(dst, 0, sizeof(float) * D);
            for (int t = 0; t < T; t++)
                for (int i = 0; i < D; i++)
                    dst[i] += f->xn[((size_t)b * T + t) * D + i];
            for (int i = 0; i < D; i++)
                dst[i] /= (float)T;
        }
    }
    const float *feat = f->pooled;
    if (m->pre_logits_w) {
        gemm_nt(f, B, D, D, f->pooled, D, m->pre_logits_w, D, 0.0f, f->pre, D);
        for (int b = 0; b < B; b++)
            for (int i = 0; i < D; i++)
                f->pre[(size_t)b * D + i] = tanhf(f->pre[(size_t)b * D + i] + m->pre_logits_b[i]);
        feat = f->pre;
    }
    gemm_nt(f, B, K, D, feat, D, m->head_w, D, 0.0f, f->out.logits, K);
    rs_add_bias(f->out.logits, m->head_b, (size_t)B, (size_t)K);
}

int rs_forward_run(rs_forward *f, const float *images, int batch, rs_error *err)
{
    if (batch < 1 || batch > f->max_batch)
        return rs_error_set(err, RS_EINVAL, "forward: batch %d outside [1, %d]", batch, f->max_batch);
    const rs_config *c = &f->m->cfg;
    int N = batch * rs_config_tokens(c);
    embed(f, images, batch);
    for (int i = 0; i < c->depth; i++) {
        const rs_block_weights *w = &f->m->blocks[i];
        attention(f, w, batch);
        layer_norm(f, f->xn, f->x, w->norm2_w, w->norm2_b, N);
        if (w->moe_slot < 0)
            dense_mlp(f, w, N);
        else
            moe(f, w, N, &f->out.moe[w->moe_slot]);
    }
    head(f, batch);
    f->out.batch = batch;
    return 0;
}

const rs_forward_out *rs_forward_result(const rs_forward *f)
{
    return &f->out;
}

void rs_forward_free(rs_forward *f)
{
    if (!f)
        return;
    float *bufs[] = {f->x, f->xn, f->qkv, f->attn, f->hidden, f->gathered, f->expert_out,
                     f->scores, f->patches, f->pooled, f->pre, f->out.logits};
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++)
        free(bufs[i]);
    for (int s = 0; f->out.moe && s < f->m->cfg.num_moe; s++) {
        free(f->out.moe[s].probs);
        free(f->out.moe[s].top_idx);
        free(f->out.moe[s].top_gate);
    }
    free(f->out.moe);
    free(f->route_rows);
    free(f->route_start);
    free(f);
}

int rs_forward_create(const rs_model *model, int max_batch, int threads, rs_forward **out, rs_error *err)
{
    *out = NULL;
    if (max_batch < 1 || threads < 1)
        return rs_error_set(err, RS_EINVAL, "forward: max_batch %d and threads %d must be >= 1", max_batch,
                            threads);
    const rs_config *c = &model->cfg;
    size_t B = (size_t)max_batch, T = (size_t)rs_config_tokens(c), N = B * T;
    size_t D = (size_t)c->hidden, M = (size_t)c->mlp_dim, E = (size_t)c->num_experts;
    size_t R = (size_t)rs_config_record_k(c);
    size_t img = (size_t)c->channels * c->image_h * c->image_w;
    rs_forward *f = calloc(1, sizeof *f);
    if (!f)
        return rs_error_set(err, RS_ENOMEM, "forward: out of memory");
    f->m = model;
    f->max_batch = max_batch;
    f->threads = threads;
    f->out.tokens = (int)T;
    f->out.record_k = (int)R;
    int ok = (f->x = malloc(sizeof(float) * N * D)) && (f->xn = malloc(sizeof(float) * N * D)) &&
             (f->qkv = malloc(sizeof(float) * N * 3 * D)) && (f->attn = malloc(sizeof(float) * N * D)) &&
             (f->hidden = malloc(sizeof(float) * N * M)) && (f->gathered = malloc(sizeof(float) * N * D)) &&
             (f->expert_out = malloc(sizeof(float) * N * D)) &&
             (f->scores = malloc(sizeof(float) * (size_t)threads * T * T)) &&
             (f->patches = malloc(sizeof(float) * B * img)) && (f->pooled = malloc(sizeof(float) * B * D)) &&
             (f->pre = malloc(sizeof(float) * B * D)) &&
             (f->out.logits = malloc(sizeof(float) * B * (size_t)c->num_classes)) &&
             (f->route_rows = malloc(sizeof(int32_t) * N * (size_t)c->top_k)) &&
             (f->route_start = malloc(sizeof(int32_t) * (2 * E + 1))) &&
             (f->out.moe = calloc((size_t)(c->num_moe ? c->num_moe : 1), sizeof *f->out.moe));
    for (int s = 0; ok && s < c->num_moe; s++) {
        rs_moe_routing *r = &f->out.moe[s];
        r->block = c->moe_layers[s];
        ok = (r->probs = malloc(sizeof(float) * N * E)) && (r->top_idx = malloc(sizeof(int32_t) * N * R)) &&
             (r->top_gate = malloc(sizeof(float) * N * R));
    }
    if (!ok) {
        rs_forward_free(f);
        return rs_error_set(err, RS_ENOMEM, "forward: out of memory for a batch of %d images", max_batch);
    }
    /* Our threads split every product; OpenBLAS itself must stay on the calling thread. */
    rs_blas_set_threads(1);
    *out = f;
    return 0;
}
